//! Upgrading in place a vault made by the previous release (format 1: a plain `vault.json`
//! that nothing certifies, no operators) to a quorum-certified manifest.
//!
//! The format-1 file is untrusted until the upgrade has checked it: its fingerprint (the
//! format-1 fingerprint, which the share cards and this machine's pin carry) must be the one
//! pinned or given, the shares must recombine to its quorum key, and a token must log in with
//! the PIN that quorum derives. Then the quorum signing key certifies version 1 with this
//! machine's operator (its key made if missing) as the first security officer and cloud
//! administrator, and a token checkpoint signs the `upgrade` entry.
//!
//! Two fields of a format-1 file were outside its fingerprint and are not certified as read:
//! every token's PKCS#11 module hint becomes the module this machine named for the upgrade
//! (never a path the directory alone names), and nothing else the file says about code is used.
//! Token PINs derived with `pin/1` stay `pin/1` (see `docs/design.md`, "Upgrading a format-1
//! vault"): changing a PIN on a token cannot be one atomic step with writing the manifest.
//!
//! Other machines pinned the format-1 fingerprint. The upgrade leaves an [`UpgradeStatement`]
//! (`upgrade.json`): the format-1 manifest and a signature by its audit key, made by the token
//! that logged in with the quorum-derived PIN, over the move from the format-1 fingerprint to
//! the new identity. The audit public key is inside the format-1 fingerprint, so a machine that
//! pinned that fingerprint checks the statement with nothing but its pin, and moves its pin
//! to the new identity ([`follow_upgrade`]).

use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::audit::Event;
use crate::canonical::Canonical;
use crate::manifest::{Fingerprint, Manifest};
use crate::quorum::Collector;
use crate::store::{MANIFEST, Store, UPGRADE_STATEMENT};
use crate::trust::identity::PinnedIdentity;
use crate::trust::machine::{ConfigDir, MachineAnchor};
use crate::trust::operator::validate_operator_name;
use crate::trust::quorum_key::QuorumSigningKey;
use crate::trust::{CertifiedManifest, Operator, OperatorKey, Role, TrustError};

use super::record::manifest_event;
use super::shares::recombine_against;
use super::tokens::{PinProvider, TokenChoice};
use super::{Vault, VaultError};

/// Refuses the format-1 `manifest` read from `file` when this machine has authenticated a
/// certified version of its vault (its anchor): the old file was put back.
pub(super) fn refuse_downgrade(
    config: &ConfigDir,
    file: PathBuf,
    manifest: &Manifest,
) -> Result<(), crate::Error> {
    match MachineAnchor::read(config, &manifest.vault_id)? {
        Some(anchor) => Err(VaultError::Downgraded {
            file,
            vault_id: manifest.vault_id.clone(),
            version: anchor.manifest.version,
        }
        .into()),
        None => Ok(()),
    }
}

/// The format of [`UpgradeStatement`].
pub const UPGRADE_STATEMENT_FORMAT: &str = "breakglass-upgrade-statement/1";
/// The domain tag of an upgrade statement's signature.
pub const UPGRADE_DOMAIN: &[u8] = b"breakglass-format-1-upgrade/1";

/// `Canonical[UPGRADE_DOMAIN, vault id, format-1 fingerprint, new identity]`, the message the
/// format-1 audit key signs (ECDSA P-256 over its SHA-256, as a checkpoint is signed; a
/// checkpoint's message is text starting `breakglass-audit-checkpoint/1`, this one a length
/// prefix, so neither can pass for the other).
pub fn upgrade_message(vault_id: &str, previous: &Fingerprint, next: &Fingerprint) -> Vec<u8> {
    let mut c = Canonical::default();
    c.field(UPGRADE_DOMAIN)
        .field(vault_id.as_bytes())
        .field(previous.as_bytes())
        .field(next.as_bytes());
    c.into_bytes()
}

/// What the upgrade of a format-1 vault leaves in the vault directory (`upgrade.json`), so
/// that a machine that pinned the format-1 fingerprint can move its pin to the new identity
/// without trusting the directory: the format-1 manifest (its fingerprint is recomputed and
/// must be the pin) and the signature of its audit key over [`upgrade_message`]. The audit key
/// is inside the format-1 fingerprint and lives on the token, which the upgrade logged into
/// with the PIN the quorum derives: only the quorum, with the token, makes this statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeStatement {
    /// Always [`UPGRADE_STATEMENT_FORMAT`].
    pub format: String,
    /// The format-1 manifest (module hints as the upgrade certified them; they are not part
    /// of the fingerprint).
    pub previous: Manifest,
    /// The audit key's signature, 64 bytes `r || s`, base64.
    pub signature: String,
}

impl UpgradeStatement {
    /// Whether the statement starts at `pinned`: its format-1 manifest has that fingerprint.
    pub fn starts_at(&self, pinned: &PinnedIdentity) -> bool {
        pinned.matches(&self.previous.fingerprint())
    }

    /// Checks that the statement moves vault `vault_id` from the format-1 fingerprint
    /// `pinned` to the identity `next` (whose certified manifest has `next_quorum`): the
    /// carried manifest is a format-1 manifest of that vault with that fingerprint, its quorum
    /// is the new one's (an upgrade replaces no share), and its audit key signed the move.
    pub fn verify(
        &self,
        vault_id: &str,
        pinned: &PinnedIdentity,
        next: &Fingerprint,
        next_quorum: &crate::manifest::Quorum,
    ) -> Result<(), crate::Error> {
        let previous = self.previous.fingerprint();
        if self.format != UPGRADE_STATEMENT_FORMAT
            || self.previous.format != crate::manifest::FORMAT
            || self.previous.vault_id != vault_id
            || !pinned.matches(&previous)
        {
            return Err(TrustError::IdentityMismatch {
                vault_id: vault_id.to_owned(),
                expected: pinned.to_string(),
                found: previous.display(),
            }
            .into());
        }
        let refused = |problem| TrustError::UpgradeStatement {
            vault_id: vault_id.to_owned(),
            previous: previous.display(),
            next: next.display(),
            problem,
        };
        if &self.previous.quorum != next_quorum {
            return Err(refused(
                "the certified manifest's quorum is not the format-1 vault's (an upgrade replaces no share)",
            )
            .into());
        }
        let key = hex::decode(&self.previous.audit.public_key).unwrap_or_default();
        let signature = crate::trust::signature::decode_signature(&self.signature);
        let verifier =
            ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, key);
        match signature {
            Some(signature)
                if verifier
                    .verify(&upgrade_message(vault_id, &previous, next), &signature)
                    .is_ok() => {}
            _ => {
                return Err(refused(
                    "it is not signed by the format-1 vault's audit key for that identity",
                )
                .into());
            }
        }
        Ok(())
    }
}

/// The upgrade statement's signature over `message` by the format-1 audit key, when the
/// token logged into (`token`) is the one that holds it; `None` otherwise.
fn statement_signature(
    vault: &Vault,
    session: &crate::hsm::TokenSession<'_>,
    token: &str,
    message: &[u8],
) -> Result<Option<[u8; 64]>, crate::Error> {
    if token != vault.manifest().audit.token {
        return Ok(None);
    }
    let signature = session.sign(&vault.keys.audit_key_id, message)?;
    let signature = signature.try_into().map_err(|_| TrustError::KeyRejected {
        what: "the audit key's signature (not 64 bytes)",
    })?;
    Ok(Some(signature))
}

/// The upgrade statement in the vault directory, if any (not yet verified).
pub(super) fn read_statement(store: &Store) -> Result<Option<UpgradeStatement>, crate::Error> {
    let file = store.path(UPGRADE_STATEMENT);
    if !file.exists() {
        return Ok(None);
    }
    let bytes = store.read(UPGRADE_STATEMENT)?;
    let statement =
        serde_json::from_slice(&bytes).map_err(|e| TrustError::InvalidUpgradeStatement {
            file,
            reason: e.to_string(),
        })?;
    Ok(Some(statement))
}

/// When this machine pinned a format-1 fingerprint (`pinned`) and the vault now presents the
/// certified identity `claimed`: the upgrade statement that starts at the pin, verified. `None`
/// when the directory holds none that starts there (a rekey's succession may apply instead);
/// one that starts there and does not verify is refused.
pub(super) fn follow_upgrade(
    store: &Store,
    vault_id: &str,
    pinned: &PinnedIdentity,
    claimed: &Fingerprint,
    quorum: &crate::manifest::Quorum,
) -> Result<bool, crate::Error> {
    match read_statement(store)? {
        Some(statement) if statement.starts_at(pinned) => {
            statement.verify(vault_id, pinned, claimed, quorum)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// What an upgrade did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgraded {
    /// The format-1 fingerprint the vault had.
    pub old_fingerprint: String,
    /// The vault identity now (what new share cards carry and machines pin).
    pub identity: String,
    /// The first operator's name.
    pub operator: String,
    /// This machine's operator key file.
    pub key_path: PathBuf,
    /// Whether the key was made by the upgrade.
    pub key_created: bool,
    /// Tokens that keep the vault-wide `pin/1` PIN.
    pub pin1_tokens: Vec<String>,
    /// Whether the upgrade statement was written (the token that logged in held the audit
    /// key): other machines that pinned the format-1 fingerprint follow it.
    pub statement_written: bool,
}

/// A format-1 vault, read and not yet trusted.
#[derive(Debug)]
pub struct FormatOneVault {
    store: Store,
    manifest: Manifest,
}

impl FormatOneVault {
    /// Reads the vault in `dir`: its `vault.json` must be a format-1 manifest, and this machine
    /// must not have authenticated a certified version of it (that would make the file a
    /// downgrade, not an old vault).
    pub fn read(dir: &Path, config: &ConfigDir) -> Result<FormatOneVault, crate::Error> {
        let store = Store::open(dir)?;
        let file = store.path(MANIFEST);
        let bytes = store.read(MANIFEST)?;
        if CertifiedManifest::from_bytes(&bytes, &file).is_ok() {
            return Err(VaultError::NotFormatOne { file }.into());
        }
        let manifest = Manifest::from_bytes(&bytes, &file)?;
        refuse_downgrade(config, file, &manifest)?;
        if super::rekey::journal_previous(&store)?.is_some() {
            return Err(VaultError::RekeyPending {
                journal: store.path("rekey.json"),
            }
            .into());
        }
        Ok(FormatOneVault { store, manifest })
    }

    /// The vault id.
    pub fn vault_id(&self) -> &str {
        &self.manifest.vault_id
    }

    /// The format-1 fingerprint (as the old share cards and pins carry it).
    pub fn fingerprint(&self) -> String {
        self.manifest.fingerprint().display()
    }

    /// The manifest as read (untrusted).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Refuses `pinned` (the format-1 fingerprint this machine pinned, or the one on the old
    /// cards) unless it is this file's.
    pub fn check_fingerprint(&self, pinned: &str) -> Result<(), crate::Error> {
        let fingerprint = self.manifest.fingerprint();
        match PinnedIdentity::parse(pinned) {
            Ok(pin) if pin.matches(&fingerprint) => Ok(()),
            _ => Err(TrustError::IdentityMismatch {
                vault_id: self.manifest.vault_id.clone(),
                expected: pinned.to_owned(),
                found: fingerprint.display(),
            }
            .into()),
        }
    }

    /// Upgrades the vault: `pinned` (the format-1 fingerprint this machine pinned, or the one
    /// on the cards) must be this file's; the shares must recombine to its quorum key; the
    /// first token present in `module` must log in with the PIN they derive. `operator` names
    /// this machine's operator, who becomes the first security officer and cloud
    /// administrator. Writes `vault.json` (certified version 1), this machine's anchor and an
    /// `upgrade` entry under a token checkpoint; the caller pins the new identity.
    pub fn upgrade(
        self,
        config: &ConfigDir,
        shares: &Collector,
        pins: &dyn PinProvider,
        pinned: &str,
        operator: &str,
        module: &Path,
    ) -> Result<(Vault, Upgraded), crate::Error> {
        validate_operator_name(operator)?;
        self.check_fingerprint(pinned)?;
        let old_fingerprint = self.manifest.fingerprint();
        let quorum = recombine_against(&self.manifest, shares)?;
        let vault_id = self.manifest.vault_id.clone();
        let quorum_key = QuorumSigningKey::derive(quorum.secret.expose_secret(), &vault_id)?;
        let mut manifest = self.manifest;
        for token in &mut manifest.hsms {
            token.module = module.display().to_string();
        }
        let pin1_tokens: Vec<String> = manifest
            .hsms
            .iter()
            .filter(|h| h.pin_derivation.is_none())
            .map(|h| h.label.clone())
            .collect();
        let (key, key_created) = match OperatorKey::load(config, &vault_id)? {
            Some(key) => (key, false),
            None => (OperatorKey::generate(config, &vault_id)?, true),
        };
        let mut installed = false;
        let mut statement_written = false;
        let result = (|| {
            let operators = vec![Operator {
                name: operator.to_owned(),
                roles: vec![Role::SecurityOfficer, Role::CloudAdministrator],
                public_key: key.public_key().to_hex(),
            }];
            let trusted = CertifiedManifest::certify(manifest, 1, operators, &quorum_key)?;
            let mut vault = Vault::with(self.store, trusted.clone(), config.clone())?;
            let mut event: Event = manifest_event("upgrade", &trusted)
                .detail("from", crate::manifest::FORMAT)
                .detail("old_fingerprint", old_fingerprint.display())
                .detail("operator", operator.to_owned())
                .detail("module", module.display().to_string())
                .detail("pin1_tokens", pin1_tokens.join(","));
            event.custodians = quorum.custodians.clone();
            let choice = TokenChoice {
                pins,
                only: None,
                force_pin: false,
            };
            let lock = vault.write_lock()?;
            let message = upgrade_message(&vault_id, &old_fingerprint, trusted.identity());
            let mut signature = None;
            // The token logs in with the PIN the quorum derives, and signs the checkpoint,
            // before anything is written.
            let closing = vault.with_token(
                Some(quorum.secret.expose_secret()),
                choice,
                |session, enrollment, _, _| {
                    signature = statement_signature(&vault, session, &enrollment.label, &message)?;
                    // Every envelope as it is now is recorded, signed, with the upgrade.
                    let mut events = vec![event];
                    events.extend(vault.envelope_records("upgrade")?);
                    vault.prepare_closing_all(events, session, &enrollment.label)
                },
            )?;
            // The statement before vault.json, as a rekey writes its succession: a statement
            // left by an upgrade that stopped here names an identity no vault.json presents.
            if let Some(signature) = signature {
                let statement = UpgradeStatement {
                    format: UPGRADE_STATEMENT_FORMAT.into(),
                    previous: trusted.manifest().clone(),
                    signature: crate::trust::signature::encode_signature(&signature),
                };
                let mut bytes = serde_json::to_vec_pretty(&statement).unwrap_or_default();
                bytes.push(b'\n');
                vault.store.write(&lock, UPGRADE_STATEMENT, &bytes)?;
                statement_written = true;
            }
            vault.install(&lock, trusted)?;
            installed = true;
            vault.append_closing(closing)?;
            drop(lock);
            Ok::<Vault, crate::Error>(vault)
        })();
        let vault = match result {
            Ok(vault) => vault,
            Err(e) => {
                // A key made for a vault that was not upgraded is removed; once vault.json
                // names it, it stays.
                if key_created && !installed {
                    let _ = std::fs::remove_file(key.path());
                }
                return Err(e);
            }
        };
        let upgraded = Upgraded {
            old_fingerprint: old_fingerprint.display(),
            identity: vault.identity(),
            operator: operator.to_owned(),
            key_path: key.path().to_path_buf(),
            key_created,
            pin1_tokens,
            statement_written,
        };
        Ok((vault, upgraded))
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    use super::*;
    use crate::trust::certified::tests::manifest;

    /// A format-1 manifest whose audit key is `key`'s, and a statement signed by `key` moving
    /// its fingerprint to `next`.
    fn signed(key: &EcdsaKeyPair, next: &Fingerprint) -> UpgradeStatement {
        let mut previous = manifest();
        previous.audit.public_key = hex::encode(key.public_key().as_ref());
        let message = upgrade_message(&previous.vault_id, &previous.fingerprint(), next);
        let signature = key.sign(&SystemRandom::new(), &message).unwrap();
        UpgradeStatement {
            format: UPGRADE_STATEMENT_FORMAT.into(),
            previous,
            signature: base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                signature.as_ref(),
            ),
        }
    }

    fn audit_key() -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
    }

    #[test]
    fn an_upgrade_statement_moves_only_its_own_pin_to_the_identity_its_audit_key_signed() {
        let key = audit_key();
        let next = Fingerprint::from_bytes([9; 32]);
        let statement = signed(&key, &next);
        let vault_id = statement.previous.vault_id.clone();
        let quorum = statement.previous.quorum.clone();
        let pin = PinnedIdentity::of(&statement.previous.fingerprint());
        assert!(statement.starts_at(&pin));
        statement.verify(&vault_id, &pin, &next, &quorum).unwrap();

        // Another identity than the one signed.
        let other = Fingerprint::from_bytes([8; 32]);
        let refused = statement.verify(&vault_id, &pin, &other, &quorum);
        assert!(
            matches!(
                refused,
                Err(crate::Error::Trust(TrustError::UpgradeStatement { .. }))
            ),
            "{refused:?}"
        );
        // A certified manifest with another quorum (an upgrade replaces no share).
        let mut other_quorum = quorum.clone();
        other_quorum.identifier += 1;
        let refused = statement.verify(&vault_id, &pin, &next, &other_quorum);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("quorum")),
            "{refused:?}"
        );
        // Another pin, or another vault id: the statement does not start there.
        let elsewhere = PinnedIdentity::of(&Fingerprint::from_bytes([7; 32]));
        assert!(!statement.starts_at(&elsewhere));
        assert!(
            statement
                .verify(&vault_id, &elsewhere, &next, &quorum)
                .is_err()
        );
        assert!(
            statement
                .verify("ffeeddccbbaa99887766554433221100", &pin, &next, &quorum)
                .is_err()
        );
        // A format-1 manifest carrying another audit key is another fingerprint: it no longer
        // starts at the pin, whoever signed it.
        let forged = signed(&audit_key(), &next);
        assert!(!forged.starts_at(&pin));
    }

    #[test]
    fn the_upgrade_message_cannot_pass_for_a_checkpoint() {
        let message = upgrade_message(
            "00112233445566778899aabbccddeeff",
            &Fingerprint::from_bytes([1; 32]),
            &Fingerprint::from_bytes([2; 32]),
        );
        assert!(!message.starts_with(b"breakglass-audit-checkpoint/1"));
        assert_eq!(&message[..4], &(UPGRADE_DOMAIN.len() as u32).to_be_bytes());
    }
}
