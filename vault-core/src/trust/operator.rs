//! Operators: the people who run the vault, in the seed's two roles.
//!
//! A **security officer** opens ceremonies and changes the vault (tokens, operators, recovery
//! set, rekey); a **cloud administrator** seals credentials. The certified manifest lists each
//! operator's name, roles and Ed25519 public key. The private key lives only on the operator's
//! own machine, in the per-machine configuration directory (never in the vault directory):
//! `<config>/operators/<vault id>.key`, PKCS#8 v2 DER (RFC 8410, readable by
//! `openssl pkey -inform DER`), 0600, created once and never overwritten.
//!
//! Keys are **found, not passed**: [`OperatorKey::find`] loads this machine's key for the vault
//! and looks for the operator whose public key it is, so a command needs no key argument and
//! an operator cannot act under another's name.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::TrustError;
use super::certified::AuthenticatedManifest;
use super::machine::ConfigDir;
use super::signature::{SigningPublicKey, SigningSeed};

/// An operator's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Opens ceremonies and changes the vault.
    SecurityOfficer,
    /// Seals credentials.
    CloudAdministrator,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::SecurityOfficer => "security officer",
            Role::CloudAdministrator => "cloud administrator",
        })
    }
}

/// An operator as the manifest lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    /// The name (unique in the vault), see [`validate_operator_name`].
    pub name: String,
    /// The roles held.
    pub roles: Vec<Role>,
    /// The Ed25519 public key (hex).
    pub public_key: String,
}

impl Operator {
    /// The public key.
    pub fn key(&self) -> Result<SigningPublicKey, TrustError> {
        SigningPublicKey::from_hex(
            &self.public_key,
            &format!("the public key of operator {}", self.name),
        )
    }
}

/// Checks an operator name: 1 to 64 characters `a-z A-Z 0-9 . _ - @`, starting with a letter or
/// digit. Names appear in audit lines, requests and terminals: nothing that could escape a
/// string or a terminal.
pub fn validate_operator_name(name: &str) -> Result<(), TrustError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(TrustError::InvalidOperatorName {
            name: name.to_owned(),
        })
    }
}

/// Checks an operator list: valid unique names, valid unique keys, at least one role each, and
/// at least one security officer (someone must be able to change the vault).
pub(crate) fn validate_operators(vault_id: &str, operators: &[Operator]) -> Result<(), TrustError> {
    let invalid = |reason: String| TrustError::InvalidOperators {
        vault_id: vault_id.to_owned(),
        reason,
    };
    for (i, operator) in operators.iter().enumerate() {
        validate_operator_name(&operator.name)?;
        operator.key()?;
        if operator.roles.is_empty() {
            return Err(invalid(format!("operator {} has no role", operator.name)));
        }
        for other in &operators[..i] {
            if other.name == operator.name {
                return Err(invalid(format!(
                    "operator {} is listed twice",
                    operator.name
                )));
            }
            if other.public_key == operator.public_key {
                return Err(invalid(format!(
                    "operators {} and {} have the same key",
                    other.name, operator.name
                )));
            }
        }
    }
    if !operators
        .iter()
        .any(|o| o.roles.contains(&Role::SecurityOfficer))
    {
        return Err(invalid("no security officer".into()));
    }
    Ok(())
}

/// The PKCS#8 v2 (RFC 8410 `OneAsymmetricKey`) layout ring writes for Ed25519: this prefix, the
/// 32-byte seed, [`PKCS8_MIDDLE`], the 32-byte public key.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const PKCS8_MIDDLE: [u8; 3] = [0x81, 0x21, 0x00];
const PKCS8_LEN: usize = 16 + 32 + 3 + 32;

/// This machine's key for one vault. No `Clone`; `Debug` shows the public key only.
#[derive(Debug)]
pub struct OperatorKey {
    seed: SigningSeed,
    path: PathBuf,
}

impl OperatorKey {
    /// Makes this machine's key for `vault_id` and writes it, 0600, in a 0700 directory.
    /// An existing key file is never overwritten.
    pub fn generate(config: &ConfigDir, vault_id: &str) -> Result<OperatorKey, TrustError> {
        let path = config.operator_key_path(vault_id)?;
        config.make_dir_for(&path)?;
        let seed = SigningSeed::generate()?;
        let mut der = Zeroizing::new(Vec::with_capacity(PKCS8_LEN));
        der.extend_from_slice(&PKCS8_PREFIX);
        der.extend_from_slice(seed.seed());
        der.extend_from_slice(&PKCS8_MIDDLE);
        der.extend_from_slice(seed.public_key().as_bytes());
        crate::store::write_new_secret_file(&path, &der).map_err(|e| match &e {
            crate::store::StoreError::Io { cause, .. }
                if cause.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                TrustError::OperatorKeyExists { path: path.clone() }
            }
            _ => TrustError::Store(e),
        })?;
        Ok(OperatorKey { seed, path })
    }

    /// This machine's key for `vault_id`, if it has one. A file readable by others, or one that
    /// is not an Ed25519 PKCS#8 v2 key whose public key matches its seed, is refused.
    pub fn load(config: &ConfigDir, vault_id: &str) -> Result<Option<OperatorKey>, TrustError> {
        let path = config.operator_key_path(vault_id)?;
        let metadata = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(TrustError::Io {
                    path,
                    action: "reading the operator key",
                    cause: e,
                });
            }
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TrustError::InsecureKeyFile { path, mode });
        }
        let der = Zeroizing::new(std::fs::read(&path).map_err(|e| TrustError::Io {
            path: path.clone(),
            action: "reading the operator key",
            cause: e,
        })?);
        Ok(Some(OperatorKey::from_pkcs8(&der, &path)?))
    }

    fn from_pkcs8(der: &[u8], path: &Path) -> Result<OperatorKey, TrustError> {
        let invalid = || TrustError::InvalidKeyFile {
            path: path.to_path_buf(),
        };
        if der.len() != PKCS8_LEN || der[..16] != PKCS8_PREFIX || der[48..51] != PKCS8_MIDDLE {
            return Err(invalid());
        }
        // ring checks the embedded public key against the seed.
        ring::signature::Ed25519KeyPair::from_pkcs8(der).map_err(|_| invalid())?;
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&der[16..48]);
        Ok(OperatorKey {
            seed: SigningSeed::from_seed(seed)?,
            path: path.to_path_buf(),
        })
    }

    /// Finds this machine's key for the vault and the operator it belongs to.
    pub fn find<'m>(
        config: &ConfigDir,
        manifest: &'m AuthenticatedManifest,
    ) -> Result<(OperatorKey, &'m Operator), TrustError> {
        let vault_id = manifest.vault_id();
        let key =
            OperatorKey::load(config, vault_id)?.ok_or_else(|| TrustError::NoOperatorKey {
                vault_id: vault_id.to_owned(),
                path: config.operator_key_path(vault_id).unwrap_or_default(),
            })?;
        let public = key.public_key().to_hex();
        let operator = manifest
            .operators()
            .iter()
            .find(|o| o.public_key == public)
            .ok_or_else(|| TrustError::NotAnOperator {
                vault_id: vault_id.to_owned(),
                path: key.path.clone(),
                public_key: public,
            })?;
        Ok((key, operator))
    }

    /// The public key.
    pub fn public_key(&self) -> SigningPublicKey {
        self.seed.public_key()
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], TrustError> {
        self.seed.sign(message)
    }
}

/// Checks that `signature` over `message` is by operator `name` of the manifest, who holds
/// `role`.
pub fn verify_operator(
    manifest: &AuthenticatedManifest,
    name: &str,
    role: Option<Role>,
    message: &[u8],
    signature: &[u8],
    what: &str,
) -> Result<(), TrustError> {
    let operator = match role {
        Some(role) => manifest.operator_with_role(name, role)?,
        None => manifest.operator(name)?,
    };
    if operator.key()?.verifies(message, signature) {
        Ok(())
    } else {
        Err(TrustError::OperatorSignature {
            name: name.to_owned(),
            what: what.to_owned(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::trust::certified::CertifiedManifest;
    use crate::trust::certified::tests::{certified, manifest, quorum_key};

    /// An operator whose key is derived from `seed_byte` (see [`key`]).
    pub(crate) fn operator(name: &str, roles: &[Role], seed_byte: u8) -> Operator {
        Operator {
            name: name.into(),
            roles: roles.to_vec(),
            public_key: key(seed_byte).public_key().to_hex(),
        }
    }

    /// A software key from one repeated byte, for tests.
    pub(crate) fn key(seed_byte: u8) -> SigningSeed {
        SigningSeed::from_seed(Zeroizing::new([seed_byte; 32])).unwrap()
    }

    fn config() -> (tempfile::TempDir, ConfigDir) {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigDir::at(&dir.path().join("breakglass"));
        (dir, config)
    }

    #[test]
    fn a_key_is_written_0600_found_by_its_vault_and_never_overwritten() {
        let (_dir, config) = config();
        let vault = certified(1);
        let key = OperatorKey::generate(&config, vault.vault_id()).unwrap();
        let mode = std::fs::metadata(key.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(key.path().parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert!(key.path().starts_with(config.root()));
        let bytes = std::fs::read(key.path()).unwrap();
        assert!(matches!(
            OperatorKey::generate(&config, vault.vault_id()),
            Err(TrustError::OperatorKeyExists { .. })
        ));
        assert_eq!(
            std::fs::read(key.path()).unwrap(),
            bytes,
            "the key file was changed"
        );

        // Not an operator of this vault yet: found, but refused, naming the key.
        assert!(matches!(
            OperatorKey::find(&config, &vault),
            Err(TrustError::NotAnOperator { public_key, .. }) if public_key == key.public_key().to_hex()
        ));
        let with_key = vault
            .certify_next(
                manifest(),
                vec![
                    operator("alice", &[Role::SecurityOfficer], 1),
                    Operator {
                        name: "bob".into(),
                        roles: vec![Role::CloudAdministrator],
                        public_key: key.public_key().to_hex(),
                    },
                ],
                &quorum_key(),
            )
            .unwrap();
        let (found, operator) = OperatorKey::find(&config, &with_key).unwrap();
        assert_eq!(operator.name, "bob");
        let signature = found.sign(b"m").unwrap();
        verify_operator(
            &with_key,
            "bob",
            Some(Role::CloudAdministrator),
            b"m",
            &signature,
            "m",
        )
        .unwrap();
        // Bob is no security officer; alice did not sign it.
        assert!(matches!(
            verify_operator(
                &with_key,
                "bob",
                Some(Role::SecurityOfficer),
                b"m",
                &signature,
                "m"
            ),
            Err(TrustError::MissingRole {
                role: Role::SecurityOfficer,
                ..
            })
        ));
        assert!(matches!(
            verify_operator(&with_key, "alice", None, b"m", &signature, "m"),
            Err(TrustError::OperatorSignature { .. })
        ));
        assert!(matches!(
            verify_operator(&with_key, "mallory", None, b"m", &signature, "m"),
            Err(TrustError::UnknownOperator { .. })
        ));
    }

    #[test]
    fn the_key_file_is_standard_pkcs8_that_ring_reads() {
        let (_dir, config) = config();
        let key = OperatorKey::generate(&config, &"ab".repeat(16)).unwrap();
        let der = std::fs::read(key.path()).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&der).unwrap();
        assert_eq!(
            ring::signature::KeyPair::public_key(&pair).as_ref(),
            key.public_key().as_bytes()
        );
        let loaded = OperatorKey::load(&config, &"ab".repeat(16))
            .unwrap()
            .unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        // Debug shows the public key, never the seed.
        let shown = format!("{loaded:?}");
        assert!(!shown.contains(&hex::encode(&der[16..48])));
    }

    #[test]
    fn a_missing_readable_or_damaged_key_file_is_refused() {
        let (_dir, config) = config();
        let vault_id = "cd".repeat(16);
        assert!(OperatorKey::load(&config, &vault_id).unwrap().is_none());
        assert!(matches!(
            OperatorKey::find(&config, &certified(1)),
            Err(TrustError::NoOperatorKey { .. })
        ));
        let key = OperatorKey::generate(&config, &vault_id).unwrap();
        std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            OperatorKey::load(&config, &vault_id),
            Err(TrustError::InsecureKeyFile { mode: 0o644, .. })
        ));
        std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut der = std::fs::read(key.path()).unwrap();
        // Another public key than the seed's.
        der[60] ^= 1;
        std::fs::write(key.path(), &der).unwrap();
        assert!(matches!(
            OperatorKey::load(&config, &vault_id),
            Err(TrustError::InvalidKeyFile { .. })
        ));
        std::fs::write(key.path(), b"not a key").unwrap();
        assert!(matches!(
            OperatorKey::load(&config, &vault_id),
            Err(TrustError::InvalidKeyFile { .. })
        ));
        // A vault id that could leave the directory is refused before any file is touched.
        assert!(matches!(
            OperatorKey::load(&config, "../x"),
            Err(TrustError::InvalidVaultId { .. })
        ));
    }

    #[test]
    fn operator_lists_need_unique_valid_names_keys_and_a_security_officer() {
        let vault_id = "v";
        let alice = operator("alice", &[Role::SecurityOfficer], 1);
        validate_operators(vault_id, std::slice::from_ref(&alice)).unwrap();
        for bad in [
            vec![operator("bob", &[Role::CloudAdministrator], 2)],
            vec![
                alice.clone(),
                operator("alice", &[Role::CloudAdministrator], 2),
            ],
            vec![
                alice.clone(),
                operator("bob", &[Role::CloudAdministrator], 1),
            ],
            vec![alice.clone(), operator("bob", &[], 2)],
            vec![Operator {
                public_key: "zz".into(),
                ..alice.clone()
            }],
        ] {
            assert!(validate_operators(vault_id, &bad).is_err(), "{bad:?}");
        }
        for name in ["", "-x", "a b", "a\"b", "a\u{1b}b", &"a".repeat(65), "é"] {
            assert!(validate_operator_name(name).is_err(), "{name:?}");
        }
        for name in ["alice", "Bob.Smith", "ops@example.org", "x_1-2"] {
            validate_operator_name(name).unwrap();
        }
        // The manifest refuses to certify a bad list.
        assert!(CertifiedManifest::certify(manifest(), 1, vec![], &quorum_key()).is_err());
    }

    #[test]
    fn a_key_that_cannot_be_looked_at_is_an_error_not_a_missing_key() {
        // `operators` made a file: looking for the key fails, and not with "not found".
        let (_dir, config) = config();
        std::fs::create_dir_all(config.root()).unwrap();
        std::fs::write(config.root().join("operators"), b"not a directory").unwrap();
        assert!(matches!(
            OperatorKey::load(&config, &"cd".repeat(16)),
            Err(TrustError::Io {
                action: "reading the operator key",
                ..
            })
        ));
    }

    #[test]
    fn roles_are_named_as_people_say_them() {
        assert_eq!(Role::SecurityOfficer.to_string(), "security officer");
        assert_eq!(Role::CloudAdministrator.to_string(), "cloud administrator");
    }
}
