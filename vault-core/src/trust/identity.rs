//! The vault identity: what share cards and share files carry, what machines pin, what a
//! custodian compares before contributing.
//!
//! `fingerprint = SHA-256(Canonical["breakglass-identity/2", vault id, quorum layout,
//! "quorum signing key", signing public key])`, where the quorum layout is the manifest's
//! canonical quorum encoding (group threshold, every group's name, threshold and members with
//! their names and share commitments, the SLIP-39 identifier, iteration exponent and
//! extendable flag, the quorum X25519 public key) and `Canonical` is the length-prefixed
//! encoding of [`crate::manifest`] (`u32` big-endian length before every field, numbers as
//! 8-byte big-endian fields).
//!
//! It deliberately leaves out tokens, operators, the recovery set, audit keys, module paths and
//! policy: all of those are certified by the quorum signing key instead
//! ([`super::certified`]), so enrolling a token, an operator or a recovery set leaves every card
//! valid. The identity changes only when the shares are replaced (rekey); a [`Succession`],
//! signed by the outgoing quorum key, lets a machine that pinned the old identity follow.

use serde::{Deserialize, Serialize};

use super::TrustError;
use super::quorum_key::QuorumSigningKey;
use super::signature::{SigningPublicKey, decode_signature, encode_signature};
use crate::canonical::Canonical;
use crate::manifest::{Fingerprint, Quorum};

/// The identity's domain tag.
pub const IDENTITY_DOMAIN: &[u8] = b"breakglass-identity/2";
/// The domain tag of a succession signature.
pub const SUCCESSION_DOMAIN: &[u8] = b"breakglass-identity-succession/1";

/// The parts of a vault that make its identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityRecord {
    /// The vault id.
    pub vault_id: String,
    /// The quorum layout, commitments and X25519 public key.
    pub quorum: Quorum,
    /// The quorum signing public key (hex Ed25519).
    pub quorum_signing_key: String,
}

/// The identity fingerprint of `vault_id` with this quorum and quorum signing key.
pub fn identity_fingerprint(
    vault_id: &str,
    quorum: &Quorum,
    signing_key: &SigningPublicKey,
) -> Fingerprint {
    let mut c = Canonical::default();
    c.field(IDENTITY_DOMAIN).field(vault_id.as_bytes());
    quorum.encode(&mut c);
    c.field(b"quorum signing key").field(signing_key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&c.sha256());
    Fingerprint::from_bytes(out)
}

impl IdentityRecord {
    /// The record's fingerprint (its signing key must be 32 hex bytes).
    pub fn fingerprint(&self) -> Result<Fingerprint, TrustError> {
        let key = SigningPublicKey::from_hex(&self.quorum_signing_key, "the quorum signing key")?;
        Ok(identity_fingerprint(&self.vault_id, &self.quorum, &key))
    }
}

/// An identity fingerprint as someone holds it: the display form from a share card or share
/// file (32 base32 characters, the first 160 bits, dashes and case ignored), or the full 64 hex
/// characters a machine's anchor keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedIdentity {
    normalised: String,
}

impl PinnedIdentity {
    /// Parses either form.
    pub fn parse(text: &str) -> Result<PinnedIdentity, TrustError> {
        let normalised: String = text
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let display = normalised.len() == 32
            && normalised
                .bytes()
                .all(|b| matches!(b, b'A'..=b'Z' | b'2'..=b'7'));
        let full = normalised.len() == 64 && normalised.bytes().all(|b| b.is_ascii_hexdigit());
        if display || full {
            Ok(PinnedIdentity { normalised })
        } else {
            Err(TrustError::InvalidFingerprint {
                text: text.to_owned(),
            })
        }
    }

    /// The full form of `fingerprint`.
    pub fn of(fingerprint: &Fingerprint) -> PinnedIdentity {
        PinnedIdentity {
            normalised: hex::encode_upper(fingerprint.as_bytes()),
        }
    }

    /// Whether `fingerprint` is the pinned identity.
    pub fn matches(&self, fingerprint: &Fingerprint) -> bool {
        if self.normalised.len() == 64 {
            self.normalised == hex::encode_upper(fingerprint.as_bytes())
        } else {
            fingerprint.matches_display(&self.normalised)
        }
    }
}

impl std::fmt::Display for PinnedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups: Vec<&str> = self
            .normalised
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        f.write_str(&groups.join("-"))
    }
}

/// The outgoing quorum's statement, made at a rekey, that the vault's identity moves from
/// `previous` to the identity with fingerprint `next`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Succession {
    /// The identity being replaced (so a machine can recompute the fingerprint it pinned).
    pub previous: IdentityRecord,
    /// Ed25519 by the previous quorum signing key over [`succession_message`] (base64).
    pub signature: String,
}

/// `Canonical[SUCCESSION_DOMAIN, vault id, previous fingerprint, next fingerprint]`.
pub fn succession_message(vault_id: &str, previous: &Fingerprint, next: &Fingerprint) -> Vec<u8> {
    let mut c = Canonical::default();
    c.field(SUCCESSION_DOMAIN)
        .field(vault_id.as_bytes())
        .field(previous.as_bytes())
        .field(next.as_bytes());
    c.into_bytes()
}

impl Succession {
    /// Signs the move from `previous` (whose quorum key `old_key` is) to `next`.
    pub fn sign(
        previous: IdentityRecord,
        old_key: &QuorumSigningKey,
        next: &Fingerprint,
    ) -> Result<Succession, TrustError> {
        if previous.quorum_signing_key != old_key.public_key().to_hex() {
            return Err(TrustError::KeyRejected {
                what: "the outgoing quorum key (not the key of the previous identity)",
            });
        }
        let message = succession_message(&previous.vault_id, &previous.fingerprint()?, next);
        let signature = encode_signature(&old_key.sign(&message)?);
        Ok(Succession {
            previous,
            signature,
        })
    }

    /// Checks that this succession starts at the `pinned` identity and that the pinned
    /// identity's quorum signed the move to `next`, in vault `vault_id`. A machine may then
    /// pin `next` in place of `pinned`.
    pub fn verify(
        &self,
        vault_id: &str,
        pinned: &PinnedIdentity,
        next: &Fingerprint,
    ) -> Result<(), TrustError> {
        let previous = self.previous.fingerprint()?;
        if self.previous.vault_id != vault_id || !pinned.matches(&previous) {
            return Err(TrustError::IdentityMismatch {
                vault_id: vault_id.to_owned(),
                expected: pinned.to_string(),
                found: previous.display(),
            });
        }
        let key = SigningPublicKey::from_hex(
            &self.previous.quorum_signing_key,
            "the previous quorum signing key",
        )?;
        let message = succession_message(vault_id, &previous, next);
        match decode_signature(&self.signature) {
            Some(signature) if key.verifies(&message, &signature) => Ok(()),
            _ => Err(TrustError::SuccessionSignature {
                vault_id: vault_id.to_owned(),
                previous: previous.display(),
                next: next.display(),
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::manifest::{Custodian, Group};

    pub(crate) fn quorum(public_key: &str) -> Quorum {
        Quorum {
            group_threshold: 1,
            groups: vec![Group {
                name: "custodians".into(),
                threshold: 2,
                members: ["alice", "bob", "carol"]
                    .iter()
                    .map(|n| Custodian {
                        name: (*n).into(),
                        commitment_salt: "11".repeat(32),
                        commitment: format!("{:0>64}", hex::encode(n)),
                    })
                    .collect(),
            }],
            identifier: 1234,
            iteration_exponent: 1,
            extendable: false,
            public_key: public_key.to_owned(),
        }
    }

    fn key(byte: u8) -> QuorumSigningKey {
        QuorumSigningKey::derive(&[byte; 32], "vault").unwrap()
    }

    #[test]
    fn every_part_of_the_identity_changes_the_fingerprint() {
        let signing = key(1).public_key();
        let base = quorum(&"ab".repeat(32));
        let fingerprint = identity_fingerprint("vault", &base, &signing);
        assert_eq!(
            fingerprint,
            identity_fingerprint("vault", &base.clone(), &signing)
        );
        let mut changes: Vec<Quorum> = Vec::new();
        let mut q = base.clone();
        q.group_threshold = 2;
        changes.push(q);
        let mut q = base.clone();
        q.groups[0].threshold = 3;
        changes.push(q);
        let mut q = base.clone();
        q.groups[0].members[1].name = "mallory".into();
        changes.push(q);
        let mut q = base.clone();
        q.groups[0].members[2].commitment = "00".repeat(32);
        changes.push(q);
        let mut q = base.clone();
        q.identifier = 1;
        changes.push(q);
        let mut q = base.clone();
        q.public_key = "cd".repeat(32);
        changes.push(q);
        for changed in &changes {
            assert_ne!(
                identity_fingerprint("vault", changed, &signing),
                fingerprint
            );
        }
        assert_ne!(identity_fingerprint("other", &base, &signing), fingerprint);
        assert_ne!(
            identity_fingerprint("vault", &base, &key(2).public_key()),
            fingerprint
        );
    }

    #[test]
    fn a_succession_is_accepted_only_from_the_pinned_identity_and_its_quorum() {
        let old = key(1);
        let previous = IdentityRecord {
            vault_id: "vault".into(),
            quorum: quorum(&"ab".repeat(32)),
            quorum_signing_key: old.public_key().to_hex(),
        };
        let pinned = PinnedIdentity::parse(&previous.fingerprint().unwrap().display()).unwrap();
        let new = key(2);
        let next = identity_fingerprint("vault", &quorum(&"cd".repeat(32)), &new.public_key());
        let succession = Succession::sign(previous.clone(), &old, &next).unwrap();
        succession.verify("vault", &pinned, &next).unwrap();
        // Not to another identity than the one signed for.
        let elsewhere = identity_fingerprint("vault", &quorum(&"ef".repeat(32)), &new.public_key());
        assert!(matches!(
            succession.verify("vault", &pinned, &elsewhere),
            Err(TrustError::SuccessionSignature { .. })
        ));
        // Not from an identity this machine did not pin.
        assert!(matches!(
            succession.verify("vault", &PinnedIdentity::of(&next), &next),
            Err(TrustError::IdentityMismatch { .. })
        ));
        // Not signed by anyone else: a forger who puts their own key in the previous identity
        // no longer starts from the pinned fingerprint, and one who keeps it cannot sign.
        let forger = key(9);
        assert!(Succession::sign(previous.clone(), &forger, &next).is_err());
        let mut forged = succession.clone();
        forged.signature = encode_signature(
            &forger
                .sign(&succession_message(
                    "vault",
                    &previous.fingerprint().unwrap(),
                    &next,
                ))
                .unwrap(),
        );
        assert!(matches!(
            forged.verify("vault", &pinned, &next),
            Err(TrustError::SuccessionSignature { .. })
        ));
    }

    #[test]
    fn a_pin_matches_in_display_or_full_form_and_nothing_else_parses() {
        let fingerprint =
            identity_fingerprint("vault", &quorum(&"ab".repeat(32)), &key(1).public_key());
        let other = identity_fingerprint("vault", &quorum(&"cd".repeat(32)), &key(1).public_key());
        let display = PinnedIdentity::parse(&fingerprint.display().to_lowercase()).unwrap();
        let full = PinnedIdentity::parse(&hex::encode(fingerprint.as_bytes())).unwrap();
        assert!(display.matches(&fingerprint) && full.matches(&fingerprint));
        assert!(!display.matches(&other) && !full.matches(&other));
        assert_eq!(display.to_string(), fingerprint.display());
        assert!(PinnedIdentity::of(&fingerprint).matches(&fingerprint));
        for bad in [
            "",
            "ABCD",
            &fingerprint.display()[..20],
            "0123456789",
            &"g".repeat(64),
        ] {
            assert!(
                matches!(
                    PinnedIdentity::parse(bad),
                    Err(TrustError::InvalidFingerprint { .. })
                ),
                "{bad}"
            );
        }
    }
}
