//! The journal of a rekey in progress, `rekey.json` (public data only): the certified
//! manifest before (authenticated again when the vault is opened to resume) and the manifest
//! after (certified by the new quorum when it is installed), the PIN changes done, and who
//! authorised it. While it exists the vault refuses every operation but resuming.

use crate::manifest::{Manifest, ManifestError};
use crate::store::{Store, WriteLock};
use crate::trust::{AuthenticatedManifest, CertifiedManifest};

use super::super::{Vault, VaultError};

/// The journal file, in the vault directory.
pub(super) const REKEY_JOURNAL: &str = "rekey.json";

/// A rekey in progress.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RekeyJournal {
    /// The certified manifest before the rekey (its quorum is the one the old shares must
    /// meet).
    pub previous: String,
    /// The manifest the rekey installs (with the new quorum).
    pub manifest: String,
    /// The PIN changes done: `<serial>:user` and `<serial>:so`.
    pub pins_changed: Vec<String>,
    /// The custodians of the old quorum who authorised it.
    pub custodians: Vec<String>,
}

impl RekeyJournal {
    /// A journal for a rekey from `previous` to `target`, nothing done yet.
    pub fn new(
        previous: &AuthenticatedManifest,
        target: &Manifest,
        custodians: Vec<String>,
    ) -> RekeyJournal {
        RekeyJournal {
            previous: String::from_utf8_lossy(&previous.document().to_bytes()).into_owned(),
            manifest: String::from_utf8_lossy(&target.to_bytes()).into_owned(),
            pins_changed: Vec::new(),
            custodians,
        }
    }

    /// The file bytes (pretty JSON, newline-terminated).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Parses the journal file at `file`.
    pub fn from_bytes(bytes: &[u8], file: &std::path::Path) -> Result<RekeyJournal, ManifestError> {
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid {
            file: file.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The manifests before and after, parsed (the one before is not authenticated here).
    pub fn manifests(&self, file: &std::path::Path) -> Result<(Manifest, Manifest), crate::Error> {
        Ok((
            CertifiedManifest::from_bytes(self.previous.as_bytes(), file)?.manifest,
            Manifest::from_bytes(self.manifest.as_bytes(), file)?,
        ))
    }

    /// Whether the PIN change `step` (`<serial>:user`, `<serial>:so`) is done.
    pub fn done(&self, step: &str) -> bool {
        self.pins_changed.iter().any(|s| s == step)
    }
}

impl Vault {
    /// The journal's path.
    pub(super) fn journal_path(&self) -> std::path::PathBuf {
        self.store.path(REKEY_JOURNAL)
    }

    /// Refuses to go on while a rekey is unfinished.
    pub(in crate::vault) fn refuse_pending_rekey(&self) -> Result<(), crate::Error> {
        let journal = self.journal_path();
        if journal.exists() {
            return Err(VaultError::RekeyPending { journal }.into());
        }
        Ok(())
    }

    pub(super) fn read_journal(&self) -> Result<RekeyJournal, crate::Error> {
        let bytes = self.store.read(REKEY_JOURNAL)?;
        Ok(RekeyJournal::from_bytes(&bytes, &self.journal_path())?)
    }

    pub(super) fn write_journal(
        &self,
        lock: &WriteLock,
        journal: &RekeyJournal,
    ) -> Result<(), crate::Error> {
        Ok(self.store.write(lock, REKEY_JOURNAL, &journal.to_bytes())?)
    }

    /// The manifests before and after an interrupted rekey, if one was interrupted.
    pub fn pending_rekey(&self) -> Result<Option<(Manifest, Manifest)>, crate::Error> {
        if !self.journal_path().exists() {
            return Ok(None);
        }
        Ok(Some(self.read_journal()?.manifests(&self.journal_path())?))
    }
}

/// The certified manifest before an interrupted rekey, as its journal in `store` keeps it
/// (`None` when no rekey is pending).
pub(in crate::vault) fn journal_previous(store: &Store) -> Result<Option<Vec<u8>>, crate::Error> {
    let path = store.path(REKEY_JOURNAL);
    if !path.exists() {
        return Ok(None);
    }
    let journal = RekeyJournal::from_bytes(&store.read(REKEY_JOURNAL)?, &path)?;
    Ok(Some(journal.previous.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> RekeyJournal {
        RekeyJournal {
            previous: "{}\n".into(),
            manifest: "{\"new\": 1}\n".into(),
            pins_changed: vec!["0001:user".into()],
            custodians: vec!["alice".into(), "bob".into()],
        }
    }

    #[test]
    fn a_journal_reads_back_as_written_and_knows_which_pins_are_done() {
        let path = std::path::Path::new("rekey.json");
        let bytes = journal().to_bytes();
        assert!(bytes.ends_with(b"}\n"));
        let read = RekeyJournal::from_bytes(&bytes, path).unwrap();
        assert_eq!(read, journal());
        assert!(read.done("0001:user"));
        assert!(!read.done("0001:so"));
        assert!(!read.done("0001"));
    }

    #[test]
    fn a_journal_with_unknown_fields_or_damaged_is_refused_with_its_file_named() {
        let path = std::path::Path::new("/v/rekey.json");
        let mut value: serde_json::Value = serde_json::from_slice(&journal().to_bytes()).unwrap();
        value["extra"] = serde_json::json!(true);
        let extra = RekeyJournal::from_bytes(value.to_string().as_bytes(), path).unwrap_err();
        assert!(extra.to_string().contains("/v/rekey.json"), "{extra}");
        assert!(RekeyJournal::from_bytes(b"{\"previous\"", path).is_err());
    }
}
