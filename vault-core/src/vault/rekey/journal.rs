//! The journal of a rekey in progress, `rekey.json` (public data only): the certified
//! manifest before (authenticated again when the vault is opened to resume) and the manifest
//! after (certified by the new quorum when it is installed), the PIN changes done, and who
//! authorised it. While it exists the vault refuses every operation but resuming.
//!
//! The vault directory is untrusted storage, so the journal is authenticated: each write
//! carries `HMAC-SHA256(K, Canonical["breakglass-rekey-journal/1", vault id, previous,
//! manifest, pins_changed..., custodians...])` with `K = HKDF-SHA256(ikm = old Q, salt = vault
//! id, info = "breakglass rekey journal/1")`. Only the old quorum's holders can write one that
//! verifies; resuming recombines the old quorum (against `previous`, authenticated when the
//! vault was opened) and verifies the tag before anything is done.

use ring::hmac;
use zeroize::Zeroizing;

use crate::canonical::Canonical;
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
    /// The authentication tag (hex) over everything above, keyed by the old quorum secret
    /// (missing in a journal written before journals were authenticated: refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// The domain of the journal's key and tag.
const JOURNAL_DOMAIN: &[u8] = b"breakglass-rekey-journal/1";

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
            tag: None,
        }
    }

    fn key(old_q: &[u8], vault_id: &str) -> hmac::Key {
        let key: Zeroizing<[u8; 32]> = crate::trust::quorum_key::hkdf32(
            old_q,
            vault_id.as_bytes(),
            &[b"breakglass rekey journal/1"],
        );
        hmac::Key::new(hmac::HMAC_SHA256, &key[..])
    }

    fn message(&self, vault_id: &str) -> Vec<u8> {
        let mut c = Canonical::default();
        c.field(JOURNAL_DOMAIN)
            .field(vault_id.as_bytes())
            .field(self.previous.as_bytes())
            .field(self.manifest.as_bytes());
        c.number(self.pins_changed.len() as u64);
        for step in &self.pins_changed {
            c.field(step.as_bytes());
        }
        c.number(self.custodians.len() as u64);
        for custodian in &self.custodians {
            c.field(custodian.as_bytes());
        }
        c.into_bytes()
    }

    /// Sets the tag for what the journal now holds, with the old quorum secret.
    pub fn authenticate(&mut self, old_q: &[u8], vault_id: &str) {
        let tag = hmac::sign(&Self::key(old_q, vault_id), &self.message(vault_id));
        self.tag = Some(hex::encode(tag.as_ref()));
    }

    /// Checks the tag with the old quorum secret; `Err` says what does not hold.
    pub fn verify(&self, old_q: &[u8], vault_id: &str) -> Result<(), &'static str> {
        let tag = self
            .tag
            .as_deref()
            .ok_or("it carries no authentication tag")?;
        let tag = hex::decode(tag).map_err(|_| "its authentication tag is not hex")?;
        hmac::verify(&Self::key(old_q, vault_id), &self.message(vault_id), &tag)
            .map_err(|_| "its authentication tag does not verify with the old quorum secret")
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
            tag: None,
        }
    }

    #[test]
    fn only_the_old_quorum_writes_a_journal_that_verifies_and_every_field_is_covered() {
        let q = [7u8; 32];
        let mut genuine = journal();
        assert_eq!(
            genuine.verify(&q, "v1"),
            Err("it carries no authentication tag")
        );
        genuine.authenticate(&q, "v1");
        assert_eq!(genuine.verify(&q, "v1"), Ok(()));
        let read =
            RekeyJournal::from_bytes(&genuine.to_bytes(), std::path::Path::new("j")).unwrap();
        assert_eq!(read.verify(&q, "v1"), Ok(()));
        // Another quorum secret or another vault: refused.
        assert!(genuine.verify(&[8u8; 32], "v1").is_err());
        assert!(genuine.verify(&q, "v2").is_err());
        // Any field changed: refused.
        let edits: [fn(&mut RekeyJournal); 5] = [
            |j| j.previous.push(' '),
            |j| j.manifest = "{\"module\": \"/tmp/evil.so\"}\n".into(),
            |j| j.pins_changed.push("0002:so".into()),
            |j| j.custodians[1] = "mallory".into(),
            |j| j.tag = Some("00".repeat(32)),
        ];
        for edit in edits {
            let mut edited = genuine.clone();
            edit(&mut edited);
            assert!(edited.verify(&q, "v1").is_err());
        }
        // Moving a step between lists does not collide (the lists are counted).
        let mut a = journal();
        a.pins_changed = vec!["x".into()];
        a.custodians = vec![];
        let mut b = journal();
        b.pins_changed = vec![];
        b.custodians = vec!["x".into()];
        a.authenticate(&q, "v1");
        b.tag = a.tag.clone();
        assert!(b.verify(&q, "v1").is_err());
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
