//! The certified manifest: every manifest version is signed by the quorum signing key, over
//! everything it says.
//!
//! On disk ([`CertifiedManifest`], format [`FORMAT`]):
//!
//! ```text
//! { "format": "breakglass-certified-manifest/1",
//!   "version": 7,                      monotonic: every change is the previous version + 1
//!   "quorum_signing_key": "<hex>",     part of the identity
//!   "operators": [ { "name", "roles", "public_key" } ... ],
//!   "manifest": { ...the vault manifest, module hints, tokens, audit key, recovery, policy... },
//!   "signature": "<base64 Ed25519>" }
//! ```
//!
//! The signature is by the quorum signing key over
//! `Canonical["breakglass-manifest-certificate/1", vault id, version, identity fingerprint,
//! SHA-256(V)]`, where `V` is the canonical encoding of the **whole document except
//! `signature`**, taken from serde's data model rather than from a hand-written field list:
//! every value is a tag field then its content (`n` null; `b` bool as a number; `u` unsigned or
//! `i` signed integer as 8 big-endian bytes; `s` string; `a` array: count then items; `o`
//! object: count then key, value pairs in byte order of the keys). A field added to the
//! manifest later is covered without anyone remembering to add it, and strict parsing
//! (unknown fields refused) means nothing in the file escapes the encoding.
//!
//! [`CertifiedManifest::authenticate`] is the only way to an [`AuthenticatedManifest`] from
//! bytes: identity fingerprint equal to the pin, quorum signature valid, version not below
//! (and at the same version not different from) the highest this machine has seen. The type
//! has no public constructor, no `Deserialize`: an unauthenticated manifest cannot reach an
//! operation that asks for it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::TrustError;
use super::identity::{PinnedIdentity, identity_fingerprint};
use super::operator::{Operator, Role, validate_operators};
use super::quorum_key::QuorumSigningKey;
use super::signature::{SigningPublicKey, decode_signature, encode_signature};
use crate::canonical::Canonical;
use crate::manifest::{Fingerprint, Manifest};

/// The certified manifest format.
pub const FORMAT: &str = "breakglass-certified-manifest/1";
/// The domain tag of a manifest certificate.
pub const CERTIFICATE_DOMAIN: &[u8] = b"breakglass-manifest-certificate/1";

/// A manifest version as stored: not yet trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertifiedManifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The version: 1 at init, one more at every change.
    pub version: u64,
    /// The quorum signing public key (hex Ed25519).
    pub quorum_signing_key: String,
    /// The operators and their roles.
    pub operators: Vec<Operator>,
    /// Operators removed from the vault, kept so that the audit lines they signed while they
    /// were operators still verify: each signs nothing after its `last_line`. Left out when
    /// empty (so documents made before it existed keep their digest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_operators: Vec<RetiredOperator>,
    /// The vault manifest.
    pub manifest: Manifest,
    /// The quorum signature (base64 Ed25519), see the module documentation.
    pub signature: String,
}

/// An operator removed from the vault: their key verifies the audit lines up to `last_line`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredOperator {
    /// Their name.
    pub name: String,
    /// The roles they held.
    pub roles: Vec<Role>,
    /// Their Ed25519 public key (hex).
    pub public_key: String,
    /// The last audit line they may have signed (the line that removed them, or its checkpoint).
    pub last_line: u64,
}

/// The manifest version a machine has seen last: the highest version and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenManifest {
    /// The version.
    pub version: u64,
    /// Its certificate digest (hex SHA-256 of the canonical document without the signature).
    pub digest: String,
}

/// Appends the canonical encoding of a serde value (see the module documentation).
fn encode_value(value: &Value, c: &mut Canonical) -> Result<(), TrustError> {
    match value {
        Value::Null => {
            c.field(b"n");
        }
        Value::Bool(b) => {
            c.field(b"b").number(u64::from(*b));
        }
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                c.field(b"u").number(u);
            } else if let Some(i) = n.as_i64() {
                c.field(b"i").field(&i.to_be_bytes());
            } else {
                return Err(TrustError::NotCanonical {
                    what: "a fractional number (the manifest has none)",
                });
            }
        }
        Value::String(s) => {
            c.field(b"s").field(s.as_bytes());
        }
        Value::Array(items) => {
            c.field(b"a").number(items.len() as u64);
            for item in items {
                encode_value(item, c)?;
            }
        }
        Value::Object(map) => {
            c.field(b"o").number(map.len() as u64);
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            for (key, value) in entries {
                c.field(key.as_bytes());
                encode_value(value, c)?;
            }
        }
    }
    Ok(())
}

impl CertifiedManifest {
    /// Parses the file strictly, naming `file` in errors; the inner manifest gets the same
    /// checks as a plain one.
    pub fn from_bytes(bytes: &[u8], file: &Path) -> Result<CertifiedManifest, TrustError> {
        let invalid = |reason: String| TrustError::InvalidManifest {
            file: file.to_path_buf(),
            reason,
        };
        let document: CertifiedManifest =
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if document.format != FORMAT {
            return Err(invalid(format!(
                "format {:?}, expected {FORMAT:?}",
                document.format
            )));
        }
        Manifest::from_bytes(&document.manifest.to_bytes(), file)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(document)
    }

    /// The file bytes (pretty JSON, newline-terminated).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// SHA-256 of the canonical encoding of everything but the signature.
    pub fn digest(&self) -> Result<[u8; 32], TrustError> {
        let mut value = serde_json::to_value(self).map_err(|_| TrustError::NotCanonical {
            what: "the manifest (not representable as JSON)",
        })?;
        if let Value::Object(map) = &mut value {
            map.remove("signature");
        }
        let mut c = Canonical::default();
        encode_value(&value, &mut c)?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&c.sha256());
        Ok(out)
    }

    /// The identity fingerprint this document claims.
    pub fn identity_fingerprint(&self) -> Result<Fingerprint, TrustError> {
        Ok(identity_fingerprint(
            &self.manifest.vault_id,
            &self.manifest.quorum,
            &self.signing_key()?,
        ))
    }

    fn signing_key(&self) -> Result<SigningPublicKey, TrustError> {
        SigningPublicKey::from_hex(&self.quorum_signing_key, "the quorum signing key")
    }

    fn message(&self, identity: &Fingerprint, digest: &[u8; 32]) -> Vec<u8> {
        let mut c = Canonical::default();
        c.field(CERTIFICATE_DOMAIN)
            .field(self.manifest.vault_id.as_bytes())
            .number(self.version)
            .field(identity.as_bytes())
            .field(digest);
        c.into_bytes()
    }

    /// Signs version `version` of `manifest` with `operators` under the quorum key.
    pub fn certify(
        manifest: Manifest,
        version: u64,
        operators: Vec<Operator>,
        key: &QuorumSigningKey,
    ) -> Result<AuthenticatedManifest, TrustError> {
        CertifiedManifest::certify_with_retired(manifest, version, operators, Vec::new(), key)
    }

    /// As [`CertifiedManifest::certify`], keeping `retired` operators (see
    /// [`RetiredOperator`]).
    pub fn certify_with_retired(
        manifest: Manifest,
        version: u64,
        operators: Vec<Operator>,
        retired_operators: Vec<RetiredOperator>,
        key: &QuorumSigningKey,
    ) -> Result<AuthenticatedManifest, TrustError> {
        validate_operators(&manifest.vault_id, &operators)?;
        let mut document = CertifiedManifest {
            format: FORMAT.into(),
            version,
            quorum_signing_key: key.public_key().to_hex(),
            operators,
            retired_operators,
            manifest,
            signature: String::new(),
        };
        let digest = document.digest()?;
        let identity = document.identity_fingerprint()?;
        document.signature = encode_signature(&key.sign(&document.message(&identity, &digest))?);
        Ok(AuthenticatedManifest {
            document,
            digest,
            identity,
        })
    }

    /// Authenticates this document against the identity `pinned` on this machine and the
    /// highest version this machine has seen (`None` when it has seen none).
    pub fn authenticate(
        self,
        pinned: &PinnedIdentity,
        seen: Option<&SeenManifest>,
    ) -> Result<AuthenticatedManifest, TrustError> {
        let vault_id = self.manifest.vault_id.clone();
        if self.format != FORMAT {
            return Err(TrustError::ManifestFormat {
                vault_id,
                found: self.format,
            });
        }
        let identity = self.identity_fingerprint()?;
        if !pinned.matches(&identity) {
            return Err(TrustError::IdentityMismatch {
                vault_id,
                expected: pinned.to_string(),
                found: identity.display(),
            });
        }
        let digest = self.digest()?;
        let message = self.message(&identity, &digest);
        let valid = decode_signature(&self.signature).is_some_and(|signature| {
            self.signing_key()
                .is_ok_and(|k| k.verifies(&message, &signature))
        });
        if !valid {
            return Err(TrustError::ManifestSignature {
                vault_id,
                version: self.version,
            });
        }
        if let Some(seen) = seen {
            if self.version < seen.version {
                return Err(TrustError::ManifestRollback {
                    vault_id,
                    found: self.version,
                    highest_seen: seen.version,
                });
            }
            if self.version == seen.version && hex::encode(digest) != seen.digest {
                return Err(TrustError::ManifestFork {
                    vault_id,
                    version: self.version,
                    expected: seen.digest.clone(),
                    found: hex::encode(digest),
                });
            }
        }
        validate_operators(&vault_id, &self.operators)?;
        Ok(AuthenticatedManifest {
            document: self,
            digest,
            identity,
        })
    }
}

/// A manifest version whose identity matched the pin, whose quorum signature verified and
/// which is not older than what this machine has seen; or one just certified with the quorum
/// key. Only [`CertifiedManifest::authenticate`] and [`CertifiedManifest::certify`] make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedManifest {
    document: CertifiedManifest,
    digest: [u8; 32],
    identity: Fingerprint,
}

impl AuthenticatedManifest {
    /// The vault manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.document.manifest
    }

    /// The vault id.
    pub fn vault_id(&self) -> &str {
        &self.document.manifest.vault_id
    }

    /// The version.
    pub fn version(&self) -> u64 {
        self.document.version
    }

    /// The identity fingerprint (what cards carry and machines pin).
    pub fn identity(&self) -> &Fingerprint {
        &self.identity
    }

    /// What a machine remembers of this version.
    pub fn seen(&self) -> SeenManifest {
        SeenManifest {
            version: self.document.version,
            digest: hex::encode(self.digest),
        }
    }

    /// The certificate digest (hex), for audit entries that record this version.
    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest)
    }

    /// The operators.
    pub fn operators(&self) -> &[Operator] {
        &self.document.operators
    }

    /// The operator named `name`.
    pub fn operator(&self, name: &str) -> Result<&Operator, TrustError> {
        self.operators()
            .iter()
            .find(|o| o.name == name)
            .ok_or_else(|| TrustError::UnknownOperator {
                vault_id: self.vault_id().to_owned(),
                name: name.to_owned(),
            })
    }

    /// The operators removed from the vault.
    pub fn retired_operators(&self) -> &[RetiredOperator] {
        &self.document.retired_operators
    }

    /// The keys that may have signed audit line `seq` as operator `name` holding `role`
    /// (`None`: any role): the operator of that name now, and any removed operator of that
    /// name whose `last_line` is at least `seq`. Why none may, when there is none.
    pub fn signers_at(
        &self,
        name: &str,
        role: Option<Role>,
        seq: u64,
    ) -> Result<Vec<Operator>, TrustError> {
        let current = match role {
            Some(role) => self.operator_with_role(name, role),
            None => self.operator(name),
        };
        let retired = self
            .retired_operators()
            .iter()
            .filter(|r| r.name == name && r.last_line >= seq)
            .filter(|r| role.is_none_or(|role| r.roles.contains(&role)))
            .map(|r| Operator {
                name: r.name.clone(),
                roles: r.roles.clone(),
                public_key: r.public_key.clone(),
            });
        let signers: Vec<Operator> = current
            .as_ref()
            .ok()
            .map(|o| (*o).clone())
            .into_iter()
            .chain(retired)
            .collect();
        match (signers.is_empty(), current) {
            (true, Err(e)) => Err(e),
            (true, Ok(_)) => Err(TrustError::UnknownOperator {
                vault_id: self.vault_id().to_owned(),
                name: name.to_owned(),
            }),
            (false, _) => Ok(signers),
        }
    }

    /// The operator named `name` with `role`, or why not.
    pub fn operator_with_role(&self, name: &str, role: Role) -> Result<&Operator, TrustError> {
        let operator = self.operator(name)?;
        if !operator.roles.contains(&role) {
            return Err(TrustError::MissingRole {
                vault_id: self.vault_id().to_owned(),
                name: name.to_owned(),
                role,
            });
        }
        Ok(operator)
    }

    /// The stored document (for writing `vault.json` and embedding in requests).
    pub fn document(&self) -> &CertifiedManifest {
        &self.document
    }

    /// Certifies the next version: `manifest` and `operators` as changed, version + 1, signed
    /// by `key`, which must be this identity's quorum key (a rekey makes a new identity, and
    /// its first version continues the numbering through [`CertifiedManifest::certify`]).
    pub fn certify_next(
        &self,
        manifest: Manifest,
        operators: Vec<Operator>,
        key: &QuorumSigningKey,
    ) -> Result<AuthenticatedManifest, TrustError> {
        self.certify_next_retiring(manifest, operators, Vec::new(), key)
    }

    /// As [`AuthenticatedManifest::certify_next`], also retiring `retiring` (operators removed
    /// by this version, see [`RetiredOperator`]); operators retired before stay retired.
    pub fn certify_next_retiring(
        &self,
        manifest: Manifest,
        operators: Vec<Operator>,
        retiring: Vec<RetiredOperator>,
        key: &QuorumSigningKey,
    ) -> Result<AuthenticatedManifest, TrustError> {
        if key.public_key().to_hex() != self.document.quorum_signing_key
            || manifest.vault_id != self.vault_id()
        {
            return Err(TrustError::KeyRejected {
                what: "the quorum key (it is not this vault's: recombine this vault's shares)",
            });
        }
        let mut retired = self.document.retired_operators.clone();
        retired.extend(retiring);
        CertifiedManifest::certify_with_retired(
            manifest,
            self.version() + 1,
            operators,
            retired,
            key,
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::manifest::{AuditKey, HsmEnrollment, PinSource, Policy};
    use crate::trust::identity::tests::quorum;
    use crate::trust::operator::tests::operator;

    pub(crate) fn manifest() -> Manifest {
        Manifest {
            format: crate::manifest::FORMAT.into(),
            vault_id: "00112233445566778899aabbccddeeff".into(),
            created: "2026-11-30T12:00:00Z".into(),
            quorum: quorum(&"ab".repeat(32)),
            hsms: vec![HsmEnrollment {
                label: "primary".into(),
                serial: "1234".into(),
                manufacturer: "m".into(),
                model: "x".into(),
                module: "/usr/lib/softhsm/libsofthsm2.so".into(),
                softhsm_conf: None,
                seal_key_id: "01".into(),
                seal_public_key: format!("04{}", "11".repeat(64)),
                pin: PinSource::Quorum,
                pin_derivation: None,
                so_pin: None,
            }],
            audit: AuditKey {
                token: "primary".into(),
                key_id: "02".into(),
                public_key: format!("04{}", "22".repeat(64)),
            },
            recovery: None,
            retired_audit_keys: Vec::new(),
            recipients: Default::default(),
            policy: Policy::default(),
        }
    }

    pub(crate) fn quorum_key() -> QuorumSigningKey {
        QuorumSigningKey::derive(&[0x51; 32], "00112233445566778899aabbccddeeff").unwrap()
    }

    pub(crate) fn certified(version: u64) -> AuthenticatedManifest {
        CertifiedManifest::certify(
            manifest(),
            version,
            vec![operator(
                "alice",
                &[Role::SecurityOfficer, Role::CloudAdministrator],
                1,
            )],
            &quorum_key(),
        )
        .unwrap()
    }

    pub(crate) fn pin(m: &AuthenticatedManifest) -> PinnedIdentity {
        PinnedIdentity::parse(&m.identity().display()).unwrap()
    }

    fn reread(m: &AuthenticatedManifest) -> CertifiedManifest {
        CertifiedManifest::from_bytes(&m.document().to_bytes(), Path::new("vault.json")).unwrap()
    }

    #[test]
    fn a_certified_manifest_authenticates_against_its_pin() {
        let genuine = certified(3);
        let read = reread(&genuine);
        let authenticated = read
            .authenticate(&pin(&genuine), Some(&genuine.seen()))
            .unwrap();
        assert_eq!(authenticated, genuine);
        assert_eq!(authenticated.version(), 3);
    }

    /// Every field of the document, changed in the file, makes authentication fail: the ones
    /// in the identity as a mismatch with the pin, all others as a bad quorum signature.
    /// A change made to a stored document.
    type Change = Box<dyn Fn(&mut CertifiedManifest)>;

    #[test]
    fn a_change_to_any_field_is_refused() {
        let genuine = certified(3);
        let pin = pin(&genuine);
        let changes: Vec<(&str, Change)> = vec![
            (
                "module path",
                Box::new(|d: &mut CertifiedManifest| {
                    d.manifest.hsms[0].module = "/tmp/evil.so".into()
                }),
            ),
            (
                "softhsm conf",
                Box::new(|d: &mut CertifiedManifest| {
                    d.manifest.hsms[0].softhsm_conf = Some("x.conf".into())
                }),
            ),
            (
                "pin source",
                Box::new(|d: &mut CertifiedManifest| d.manifest.hsms[0].pin = PinSource::Prompt),
            ),
            (
                "token key",
                Box::new(|d: &mut CertifiedManifest| {
                    d.manifest.hsms[0].seal_public_key = format!("04{}", "33".repeat(64))
                }),
            ),
            (
                "token added",
                Box::new(|d: &mut CertifiedManifest| {
                    let h = d.manifest.hsms[0].clone();
                    d.manifest.hsms.push(h)
                }),
            ),
            (
                "audit key",
                Box::new(|d: &mut CertifiedManifest| {
                    d.manifest.audit.public_key = format!("04{}", "44".repeat(64))
                }),
            ),
            (
                "recovery set",
                Box::new(|d: &mut CertifiedManifest| {
                    d.manifest.recovery = Some(quorum(&format!("04{}", "55".repeat(64))))
                }),
            ),
            (
                "policy",
                Box::new(|d: &mut CertifiedManifest| d.manifest.policy.drill_interval_days = 9999),
            ),
            (
                "created",
                Box::new(|d: &mut CertifiedManifest| {
                    d.manifest.created = "2020-01-01T00:00:00Z".into()
                }),
            ),
            (
                "operator added",
                Box::new(|d: &mut CertifiedManifest| {
                    d.operators
                        .push(operator("mallory", &[Role::SecurityOfficer], 9))
                }),
            ),
            (
                "operator key",
                Box::new(|d: &mut CertifiedManifest| {
                    d.operators[0] = operator(
                        "alice",
                        &[Role::SecurityOfficer, Role::CloudAdministrator],
                        9,
                    )
                }),
            ),
            (
                "operator role",
                Box::new(|d: &mut CertifiedManifest| {
                    d.operators[0].roles.pop().map(|_| ()).unwrap_or(())
                }),
            ),
            (
                "version",
                Box::new(|d: &mut CertifiedManifest| d.version = 4),
            ),
        ];
        for (what, change) in &changes {
            let mut document = genuine.document().clone();
            change(&mut document);
            let reread =
                CertifiedManifest::from_bytes(&document.to_bytes(), Path::new("vault.json"))
                    .unwrap();
            assert!(
                matches!(
                    reread.authenticate(&pin, None),
                    Err(TrustError::ManifestSignature { .. })
                ),
                "{what}: accepted"
            );
        }
        for (what, change) in [
            (
                "custodian",
                Box::new(|d: &mut CertifiedManifest| {
                    d.manifest.quorum.groups[0].members[0].name = "eve".into()
                }) as Change,
            ),
            (
                "quorum key",
                Box::new(|d: &mut CertifiedManifest| {
                    d.manifest.quorum.public_key = "ef".repeat(32)
                }),
            ),
            (
                "signing key",
                Box::new(|d: &mut CertifiedManifest| d.quorum_signing_key = "ef".repeat(32)),
            ),
            (
                "vault id",
                Box::new(|d: &mut CertifiedManifest| d.manifest.vault_id = "ff".repeat(16)),
            ),
        ] {
            let mut document = genuine.document().clone();
            change(&mut document);
            assert!(
                matches!(
                    document.authenticate(&pin, None),
                    Err(TrustError::IdentityMismatch { .. })
                ),
                "{what}: accepted"
            );
        }
    }

    #[test]
    fn a_manifest_signed_by_another_quorum_is_refused_even_with_a_matching_pin_for_it() {
        // An attacker with a copy builds a manifest with the genuine custodians and
        // commitments, their own keys, and signs it: its identity is not the pinned one.
        let genuine = certified(3);
        let forger = QuorumSigningKey::derive(&[0x66; 32], genuine.vault_id()).unwrap();
        let mut evil = manifest();
        evil.hsms[0].module = "/tmp/evil.so".into();
        let forged =
            CertifiedManifest::certify(evil, 4, genuine.operators().to_vec(), &forger).unwrap();
        assert!(matches!(
            forged.document().clone().authenticate(&pin(&genuine), None),
            Err(TrustError::IdentityMismatch { .. })
        ));
        // Keeping the genuine signing key in the document and signing with another: refused.
        let mut spliced = forged.document().clone();
        spliced.quorum_signing_key = genuine.document().quorum_signing_key.clone();
        assert!(matches!(
            spliced.authenticate(&pin(&genuine), None),
            Err(TrustError::ManifestSignature { .. })
        ));
        // A signature that is not base64 of 64 bytes: refused, not a panic.
        let mut garbled = genuine.document().clone();
        garbled.signature = "!!".into();
        assert!(matches!(
            garbled.authenticate(&pin(&genuine), None),
            Err(TrustError::ManifestSignature { .. })
        ));
    }

    #[test]
    fn an_older_version_or_a_different_one_at_the_same_number_is_refused() {
        let v3 = certified(3);
        let v4 = v3
            .certify_next(
                {
                    let mut m = manifest();
                    m.policy.drill_interval_days = 30;
                    m
                },
                v3.operators().to_vec(),
                &quorum_key(),
            )
            .unwrap();
        assert_eq!(v4.version(), 4);
        // Replaying version 3 to a machine that has seen version 4.
        assert!(matches!(
            reread(&v3).authenticate(&pin(&v3), Some(&v4.seen())),
            Err(TrustError::ManifestRollback {
                found: 3,
                highest_seen: 4,
                ..
            })
        ));
        // Newer is fine, the same is fine.
        reread(&v4)
            .authenticate(&pin(&v3), Some(&v3.seen()))
            .unwrap();
        reread(&v4)
            .authenticate(&pin(&v3), Some(&v4.seen()))
            .unwrap();
        // Two different documents both signed as version 4 (a fork): the second is refused.
        let other4 =
            CertifiedManifest::certify(manifest(), 4, v3.operators().to_vec(), &quorum_key())
                .unwrap();
        assert!(matches!(
            reread(&other4).authenticate(&pin(&v3), Some(&v4.seen())),
            Err(TrustError::ManifestFork { version: 4, .. })
        ));
        // certify_next refuses another vault's quorum key.
        let foreign = QuorumSigningKey::derive(&[0x77; 32], v3.vault_id()).unwrap();
        assert!(
            v3.certify_next(manifest(), v3.operators().to_vec(), &foreign)
                .is_err()
        );
    }

    #[test]
    fn the_canonical_encoding_is_injective_on_structure_and_independent_of_key_order() {
        let encode = |text: &str| {
            let mut c = Canonical::default();
            encode_value(&serde_json::from_str(text).unwrap(), &mut c).unwrap();
            c.into_bytes()
        };
        assert_eq!(encode(r#"{"a":1,"b":"x"}"#), encode(r#"{"b":"x","a":1}"#));
        for (x, y) in [
            (r#"["ab","c"]"#, r#"["a","bc"]"#),
            (r#"{"a":"1"}"#, r#"{"a":1}"#),
            (r#"[null]"#, r#"[]"#),
            (r#"{"a":[1]}"#, r#"{"a":1}"#),
            (r#"[true]"#, r#"[1]"#),
            (r#"[-1]"#, r#"[18446744073709551615]"#),
        ] {
            assert_ne!(encode(x), encode(y), "{x} and {y}");
        }
        let mut c = Canonical::default();
        assert!(encode_value(&serde_json::from_str("[1.5]").unwrap(), &mut c).is_err());
    }

    #[test]
    fn unknown_fields_and_other_formats_are_refused_when_read() {
        let genuine = certified(1);
        let text = String::from_utf8(genuine.document().to_bytes()).unwrap();
        let extra = text.replacen(
            "\"version\"",
            "\"module\": \"/tmp/evil.so\",\n  \"version\"",
            1,
        );
        assert!(matches!(
            CertifiedManifest::from_bytes(extra.as_bytes(), Path::new("v.json")),
            Err(TrustError::InvalidManifest { .. })
        ));
        let other = text.replace(FORMAT, "breakglass-certified-manifest/0");
        assert!(CertifiedManifest::from_bytes(other.as_bytes(), Path::new("v.json")).is_err());
    }

    #[test]
    fn the_recorded_digest_is_the_certificate_digest_and_the_id_the_manifests() {
        let genuine = certified(3);
        let digest = genuine.document().digest().unwrap();
        assert_eq!(genuine.digest_hex(), hex::encode(digest));
        assert_eq!(genuine.seen().digest, hex::encode(digest));
        assert_eq!(genuine.seen().version, 3);
        assert_eq!(genuine.vault_id(), manifest().vault_id);
        assert_eq!(genuine.manifest(), &manifest());
        assert_eq!(
            genuine.identity(),
            &genuine.document().identity_fingerprint().unwrap()
        );
        // Another version, another digest.
        assert_ne!(certified(4).digest_hex(), genuine.digest_hex());
    }
}
