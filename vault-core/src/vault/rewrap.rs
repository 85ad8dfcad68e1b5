//! The one loop that rewrites envelopes: re-sealing them to a new quorum key (rekey), or
//! adding and removing token stanzas (enrolment, recovery) where only the token half of each
//! file key is opened. It reads every envelope first and checks that each belongs to this
//! vault under its name, so a foreign or damaged file stops the operation before anything is
//! written; each changed envelope is then replaced atomically.

use std::path::PathBuf;

use crate::envelope::Envelope;
use crate::hpke::DhOracle;

use super::Vault;

/// Which files an operation rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// The current version of every credential.
    Current,
    /// Every credential and every previous version kept in its history.
    WithHistory,
}

/// An envelope file, read and checked.
pub(super) struct EnvelopeFile {
    /// Where it is.
    pub path: PathBuf,
    /// What it holds.
    pub envelope: Envelope,
}

/// What is done to each envelope.
pub(super) enum Change<'a> {
    /// Opened with `hsm` and `quorum`, then sealed anew to `recipients` and `quorum_public`.
    Reseal {
        /// Opens the token half.
        hsm: &'a dyn DhOracle,
        /// Opens the quorum half.
        quorum: &'a dyn DhOracle,
        /// The tokens' public keys to seal to.
        recipients: &'a [Vec<u8>],
        /// The quorum public key to seal to.
        quorum_public: &'a [u8],
    },
    /// A token stanza added for `add` and those of `remove` dropped; `hsm` opens the token
    /// half of the file key and nothing else.
    Stanzas {
        /// Opens the token half.
        hsm: &'a dyn DhOracle,
        /// A recipient to add (nothing is done when it is there already).
        add: &'a [u8],
        /// Recipients to remove.
        remove: &'a [Vec<u8>],
    },
}

impl Vault {
    /// Every envelope `scope` names, read and checked against this vault and its name.
    pub(super) fn envelope_files(&self, scope: Scope) -> Result<Vec<EnvelopeFile>, crate::Error> {
        let mut files = Vec::new();
        for name in self.store.credentials()? {
            let (path, bytes) = self.store.read_credential(&name)?;
            files.push(self.checked(&name, path, &bytes)?);
            if scope == Scope::WithHistory {
                for path in self.store.history(&name)? {
                    let bytes =
                        std::fs::read(&path).map_err(|cause| crate::store::StoreError::Io {
                            path: path.clone(),
                            action: "reading",
                            cause,
                        })?;
                    files.push(self.checked(&name, path, &bytes)?);
                }
            }
        }
        Ok(files)
    }

    fn checked(
        &self,
        name: &str,
        path: PathBuf,
        bytes: &[u8],
    ) -> Result<EnvelopeFile, crate::Error> {
        let envelope = Envelope::from_bytes(bytes, &path)?;
        envelope.check_identity(&self.manifest().vault_id, name, &path)?;
        Ok(EnvelopeFile { path, envelope })
    }
}

/// Applies `change` to each of `files`, replacing those it changes; `after_write` runs after
/// each replacement with its index (a fault point). Every envelope is changed in memory first
/// (every token operation done), and only then are the files written: a token that fails
/// midway leaves every envelope as it was. Returns how many were replaced.
pub(super) fn rewrap(
    files: Vec<EnvelopeFile>,
    change: &Change<'_>,
    after_write: impl FnMut(usize) -> Result<(), crate::Error>,
) -> Result<usize, crate::Error> {
    rewrapped(files, change)?.write(after_write)
}

/// Envelopes changed in memory, not written yet.
pub(super) struct Rewrapped(Vec<(PathBuf, Vec<u8>)>);

impl Rewrapped {
    /// Replaces each file; `after_write` runs after each with its index. Returns how many.
    pub fn write(
        self,
        mut after_write: impl FnMut(usize) -> Result<(), crate::Error>,
    ) -> Result<usize, crate::Error> {
        let total = self.0.len();
        crate::store::write_atomic_all(&self.0, |written| {
            after_write(written)?;
            crate::progress::step("writing envelopes", written + 1, total);
            Ok::<(), crate::Error>(())
        })?;
        Ok(total)
    }
}

/// Applies `change` to each of `files` in memory (every token operation is made here); the
/// changed ones are returned to be written.
pub(super) fn rewrapped(
    files: Vec<EnvelopeFile>,
    change: &Change<'_>,
) -> Result<Rewrapped, crate::Error> {
    let mut replacements = Vec::new();
    let total = files.len();
    for (done, EnvelopeFile { path, mut envelope }) in files.into_iter().enumerate() {
        let replacement = match change {
            Change::Reseal {
                hsm,
                quorum,
                recipients,
                quorum_public,
            } => {
                let payload = envelope.open(*hsm, *quorum, &path)?;
                Some(envelope.reseal(&payload, recipients, quorum_public)?)
            }
            Change::Stanzas { hsm, add, remove } => {
                let mut changed = envelope.add_hsm_recipient(*hsm, add, &path)?;
                for key in *remove {
                    changed |= envelope.remove_hsm_recipient(*hsm, key, &path)?;
                }
                changed.then_some(envelope)
            }
        };
        if let Some(envelope) = replacement {
            replacements.push((path, envelope.to_bytes()));
        }
        crate::progress::step("opening envelopes", done + 1, total);
    }
    Ok(Rewrapped(replacements))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::envelope::{Kind, SealInput, seal};
    use crate::hpke::{P256SecretKey, X25519SecretKey};

    use super::*;

    struct Keys {
        token: P256SecretKey,
        quorum: X25519SecretKey,
    }

    fn sealed(dir: &std::path::Path, name: &str, keys: &Keys, payload: &[u8]) -> EnvelopeFile {
        let envelope = seal(&SealInput {
            vault_id: "vault",
            name,
            kind: Kind::Secret,
            created: "2026-11-24T12:00:00Z".into(),
            metadata: BTreeMap::new(),
            payload,
            hsm_public_keys: &[keys.token.public_key_bytes()],
            quorum_public_key: &keys.quorum.public_key_bytes(),
        })
        .unwrap();
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, envelope.to_bytes()).unwrap();
        EnvelopeFile { path, envelope }
    }

    fn read(path: &std::path::Path) -> Envelope {
        Envelope::from_bytes(&std::fs::read(path).unwrap(), path).unwrap()
    }

    fn keys() -> Keys {
        Keys {
            token: P256SecretKey::generate().unwrap(),
            quorum: X25519SecretKey::generate().unwrap(),
        }
    }

    #[test]
    fn a_stanza_change_writes_only_the_envelopes_it_changes_and_the_new_token_opens_them() {
        let dir = tempfile::tempdir().unwrap();
        let old = keys();
        let backup = P256SecretKey::generate().unwrap();
        let files = vec![sealed(dir.path(), "one", &old, b"first")];
        let add = backup.public_key_bytes();
        let change = Change::Stanzas {
            hsm: &old.token,
            add: &add,
            remove: &[],
        };
        assert_eq!(rewrap(files, &change, |_| Ok(())).unwrap(), 1);
        let path = dir.path().join("one.json");
        let payload = read(&path).open(&backup, &old.quorum, &path).unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&payload), b"first");
        // Run again: the stanza is there already, nothing is written.
        let again = vec![EnvelopeFile {
            envelope: read(&path),
            path: path.clone(),
        }];
        assert_eq!(rewrap(again, &change, |_| Ok(())).unwrap(), 0);
        // Removing the old token leaves the new one alone able to open it.
        let removed = vec![EnvelopeFile {
            envelope: read(&path),
            path: path.clone(),
        }];
        let drop_old = Change::Stanzas {
            hsm: &backup,
            add: &add,
            remove: &[old.token.public_key_bytes()],
        };
        assert_eq!(rewrap(removed, &drop_old, |_| Ok(())).unwrap(), 1);
        assert!(read(&path).open(&old.token, &old.quorum, &path).is_err());
        assert!(read(&path).open(&backup, &old.quorum, &path).is_ok());
    }

    #[test]
    fn a_reseal_moves_every_envelope_to_the_new_quorum_and_stops_where_told() {
        let dir = tempfile::tempdir().unwrap();
        let old = keys();
        let new = keys();
        let files = vec![
            sealed(dir.path(), "one", &old, b"first"),
            sealed(dir.path(), "two", &old, b"second"),
        ];
        let recipients = [new.token.public_key_bytes()];
        let quorum_public = new.quorum.public_key_bytes();
        let change = Change::Reseal {
            hsm: &old.token,
            quorum: &old.quorum,
            recipients: &recipients,
            quorum_public: &quorum_public,
        };
        let stopped = rewrap(files, &change, |i| {
            if i == 0 {
                Err(super::super::VaultError::FaultPoint("test".into()).into())
            } else {
                Ok(())
            }
        });
        assert!(stopped.is_err());
        let one = dir.path().join("one.json");
        let two = dir.path().join("two.json");
        assert!(read(&one).open(&new.token, &new.quorum, &one).is_ok());
        assert!(read(&two).open(&old.token, &old.quorum, &two).is_ok());
    }
}
