//! Which envelope of a credential is genuine: the one the audit log's latest signed record for
//! its name names. A seal (and a rotation, a rekey, the upgrade of a log made before lines
//! were signed) records the envelope's digest ([`Envelope::record_digest`]) in a line signed by
//! the operator who made it; opening refuses any other file for that name (an older copy put
//! back, or an envelope sealed elsewhere with the vault's public keys), exit 5.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::audit::ChainPoint;
use crate::audit::{ENVELOPE_DETAIL, Event};
use crate::envelope::Envelope;
use crate::trust::NotRecorded;
use crate::trust::TrustError;
use crate::trust::audit_line::ENVELOPE_RECORDED;
use crate::trust::machine::{MachineAnchor, check_head_file};
use crate::trust::records::{RECORDS_THROUGH_FORMAT, RecordsFile, RecordsThrough};

use super::Vault;

/// Every credential's latest signed record: this machine's records file, with the records of
/// the lines walked after it laid over it.
#[derive(Debug)]
pub(super) struct Recorded {
    /// The records file (none: this machine has none yet).
    file: Option<RecordsFile>,
    /// Credential name → digest, from the lines walked after the file's line.
    pub(super) later: BTreeMap<String, String>,
    /// Whether this process walked the whole log for them (nothing on this machine's word).
    whole: bool,
}

impl Recorded {
    /// The digest the latest record of `name` names.
    pub(super) fn get(&self, name: &str) -> Option<String> {
        match self.later.get(name) {
            Some(digest) => Some(digest.clone()),
            None => self.file.as_ref()?.get(name),
        }
    }
}

/// What this machine remembers of a vault's envelope records ([`Vault::remembered_records`]).
pub(super) struct Remembered {
    /// Where a walk goes on from: the records file's line, or the later one its note names.
    pub(super) from: Option<ChainPoint>,
    /// The records up to `from` (the walk adds to `later`).
    pub(super) recorded: Recorded,
}

impl Remembered {
    /// Nothing: a walk of the whole log.
    fn none() -> Remembered {
        Remembered {
            from: None,
            recorded: Recorded {
                file: None,
                later: BTreeMap::new(),
                whole: false,
            },
        }
    }
}

impl Vault {
    /// Forgets the records walked for (something was appended).
    pub(super) fn forget_recorded(&self) {
        if let Ok(mut recorded) = self.recorded.lock() {
            *recorded = None;
        }
    }

    /// Walks the whole log (once per opened vault: what opening a credential then uses):
    /// every line must verify, chain, checkpoints and operator signatures
    /// ([`TrustError::AuditLogBroken`] names the first that does not).
    pub fn check_history(&self) -> Result<(), crate::Error> {
        self.recorded_envelopes().map(|_| ())
    }

    /// Every credential's latest signed record, walking the whole log once: every line must
    /// verify (chain, checkpoints, operator signatures), or no envelope is trusted.
    pub(super) fn recorded_envelopes(&self) -> Result<Arc<Recorded>, crate::Error> {
        if let Ok(recorded) = self.recorded.lock()
            && let Some(recorded) = recorded.as_ref()
        {
            return Ok(recorded.clone());
        }
        // Walk on from what this machine verified before (the whole log the first time).
        self.walk_records(self.remembered_records())
    }

    /// Walks the log on from `remembered` for the envelope records; every line walked must
    /// verify (chain, checkpoints, operator signatures), or no envelope is trusted.
    fn walk_records(&self, mut remembered: Remembered) -> Result<Arc<Recorded>, crate::Error> {
        let (report, last) = self.audit().verify_recording(
            remembered.from.as_ref(),
            &self.keys.retired_audit_keys,
            &self.keys.audit_public_key,
            Some(&mut remembered.recorded.later),
        )?;
        let broken = |line: usize, reason: String| TrustError::AuditLogBroken {
            vault_id: self.trusted.vault_id().to_owned(),
            line,
            reason,
        };
        if let Some(problem) = report.first_problem {
            return Err(broken(problem.line, problem.reason).into());
        }
        if let Some(line) = report.bad_signature {
            return Err(broken(line, "its checkpoint signature does not verify".into()).into());
        }
        if !report.signed_lines && !last.signed_lines {
            return Err(TrustError::UnsignedHistory {
                vault_id: self.trusted.vault_id().to_owned(),
            }
            .into());
        }
        Ok(self.remember_records(remembered, &report, last))
    }

    /// The envelope records this machine walked before, and where to walk on from (the
    /// whole log when it has none): each file counts only while the log still holds its line
    /// at its offset.
    pub(super) fn remembered_records(&self) -> Remembered {
        let vault_id = self.trusted.vault_id();
        let log = self.store.path(crate::store::AUDIT_LOG);
        let file = RecordsFile::read(&self.config, vault_id)
            .filter(|f| check_head_file(&f.at, &log).is_ok());
        let through = file
            .as_ref()
            .and_then(|f| RecordsThrough::read(&self.config, f))
            .filter(|t| check_head_file(&t.at, &log).is_ok());
        let from = match (&file, through) {
            (Some(_), Some(through)) => Some(ChainPoint::from(&through.at)),
            (Some(file), None) => Some(ChainPoint::from(&file.at)),
            (None, _) => None,
        };
        Remembered {
            from,
            recorded: Recorded {
                file,
                later: BTreeMap::new(),
                whole: false,
            },
        }
    }

    /// Keeps the records walked from `remembered.from` to `last` (with no problem: the
    /// caller's check), for this command and the next ones. The records file is rewritten
    /// only when a line walked recorded an envelope; otherwise a small note says how far past
    /// it nothing was. Best effort: a file not written costs the next command a longer walk.
    pub(super) fn remember_records(
        &self,
        remembered: Remembered,
        report: &crate::audit::VerifyReport,
        last: ChainPoint,
    ) -> Arc<Recorded> {
        let vault_id = self.trusted.vault_id();
        let Remembered { from, mut recorded } = remembered;
        recorded.whole = from.is_none();
        match &recorded.file {
            // Nothing recorded since the records file: at most the note moves on.
            Some(file) if report.records == 0 => {
                let moved = from.as_ref() != Some(&last);
                let note = RecordsThrough {
                    format: RECORDS_THROUGH_FORMAT.into(),
                    vault_id: vault_id.to_owned(),
                    records_at: file.at.clone(),
                    at: last.into(),
                };
                let _ = moved.then(|| note.write(&self.config));
            }
            _ if last.seq > 0 => {
                let file = RecordsFile::updated(
                    recorded.file.as_ref(),
                    vault_id,
                    last.into(),
                    &recorded.later,
                );
                match file {
                    Some(file) => {
                        let _ = file.write(&self.config);
                        recorded = Recorded {
                            file: Some(file),
                            later: BTreeMap::new(),
                            whole: recorded.whole,
                        };
                    }
                    // A record that cannot be written as one (a signed line naming a digest
                    // that is no SHA-256), or a file found damaged: this walk's records are
                    // kept in memory, and the file goes (the next opening walks the log).
                    None => {
                        if let Ok(path) = self.config.records_path(vault_id) {
                            let _ = std::fs::remove_file(path);
                        }
                    }
                }
            }
            _ => {}
        }
        let recorded = Arc::new(recorded);
        if let Ok(mut held) = self.recorded.lock() {
            *held = Some(recorded.clone());
        }
        recorded
    }

    /// Refuses `envelope`, read from `file` as credential `name`, unless it is the envelope
    /// the log's latest signed record for `name` names.
    pub(super) fn check_recorded(
        &self,
        name: &str,
        file: &Path,
        envelope: &Envelope,
    ) -> Result<(), crate::Error> {
        let found = envelope.record_digest();
        let recorded = self.recorded_envelopes()?;
        let mut expected = recorded.get(name);
        // Before refusing on the word of this machine's records file (damaged since it was
        // written?), the whole log is walked again and only that walk's records count: once
        // per process, and only when the answer came from the file (a record in the lines
        // just walked is the log's own word).
        if expected.as_ref() != Some(&found)
            && !recorded.whole
            && !recorded.later.contains_key(name)
        {
            expected = self.walk_records(Remembered::none())?.get(name);
        }
        match expected {
            Some(expected) if expected == found => Ok(()),
            expected => Err(TrustError::EnvelopeNotRecorded(Box::new(NotRecorded {
                file: file.to_path_buf(),
                name: name.to_owned(),
                expected,
                found,
            }))
            .into()),
        }
    }

    /// Settles what a writer killed mid-seal left in `credentials/` (under the writers' lock):
    /// an envelope the audit log's latest record for its name names (the seal was recorded,
    /// the rename did not happen) is renamed into place; any other is removed (the record was
    /// never written). Nothing is settled while the log does not verify: such files stay until
    /// it does. Best effort: this tidies, it never stops the command that took the lock.
    pub(super) fn settle_staged(&self, lock: &crate::store::WriteLock) {
        let staged = self.store.stale_staged();
        if staged.is_empty() {
            return;
        }
        let Ok(recorded) = self.recorded_envelopes() else {
            return;
        };
        for (name, path) in staged {
            let digest = |path: &Path| {
                std::fs::read(path)
                    .ok()
                    .and_then(|bytes| Envelope::from_bytes(&bytes, path).ok())
                    .filter(|e| {
                        e.check_identity(&self.manifest().vault_id, &name, path)
                            .is_ok()
                    })
                    .map(|e| e.record_digest())
            };
            let expected = recorded.get(&name);
            let current = self
                .store
                .credential_path(&name)
                .ok()
                .and_then(|p| digest(&p));
            let keep = expected.is_some() && digest(&path) == expected && current != expected;
            let _ = self.store.settle_staged(lock, &name, &path, keep);
        }
    }

    /// The envelope a writer killed mid-seal left for `name` that the latest record names, if
    /// any (see [`Vault::settle_staged`]): what opening uses until a writer settles it.
    pub(super) fn recorded_staged(
        &self,
        name: &str,
    ) -> Result<Option<(std::path::PathBuf, Envelope)>, crate::Error> {
        let recorded = self.recorded_envelopes()?;
        let Some(expected) = recorded.get(name) else {
            return Ok(None);
        };
        for (staged_name, path) in self.store.stale_staged() {
            if staged_name != name {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(envelope) = Envelope::from_bytes(&bytes, &path) else {
                continue;
            };
            if envelope
                .check_identity(&self.manifest().vault_id, name, &path)
                .is_ok()
                && envelope.record_digest() == expected
            {
                return Ok(Some((path, envelope)));
            }
        }
        Ok(None)
    }

    /// Refuses a vault whose audit log has no signed lines yet (made by an earlier release):
    /// it must be upgraded first. Cheap: this machine's anchor says so, or the last line.
    pub(super) fn refuse_unsigned_history(&self) -> Result<(), crate::Error> {
        let anchored = MachineAnchor::read(&self.config, self.trusted.vault_id())?
            .and_then(|a| a.audit)
            .is_some_and(|a| a.signed_lines);
        // An empty log has nothing unsigned to distrust (and records no envelope, so nothing
        // opens from it; a machine that verified lines refuses it as a rollback).
        if anchored || self.audit().has_signed_head()? || self.audit().is_empty()? {
            return Ok(());
        }
        // The last line is unsigned: a log never upgraded, or one with a line appended (or
        // rewritten) outside breakglass after its signed lines. The whole walk tells which.
        let report = self.keys.verify_audit(&self.audit())?;
        let vault_id = self.trusted.vault_id().to_owned();
        if let Some(problem) = report.first_problem {
            return Err(TrustError::AuditLogBroken {
                vault_id,
                line: problem.line,
                reason: problem.reason,
            }
            .into());
        }
        if let Some(line) = report.bad_signature {
            return Err(TrustError::AuditLogBroken {
                vault_id,
                line,
                reason: "its checkpoint signature does not verify".into(),
            }
            .into());
        }
        Err(TrustError::UnsignedHistory { vault_id }.into())
    }

    /// One `envelope_recorded` event per credential, recording its envelope as it is now
    /// (`cause` says why: `upgrade`, `rekey`).
    pub(super) fn envelope_records(&self, cause: &str) -> Result<Vec<Event>, crate::Error> {
        let mut events = Vec::new();
        for name in self.store.credentials()? {
            let (path, bytes) = self.store.read_credential(&name)?;
            let envelope = Envelope::from_bytes(&bytes, &path)?;
            envelope.check_identity(&self.manifest().vault_id, &name, &path)?;
            let mut event = Event::new(ENVELOPE_RECORDED)
                .detail(ENVELOPE_DETAIL, envelope.record_digest())
                .detail("cause", cause);
            event.credential = Some(name);
            events.push(event);
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    //! Which envelope opens, through the library alone against a real token (a throw-away
    //! SoftHSM token per test; nextest runs each test in its own process). The end-to-end
    //! suites run the same paths through the binary.

    use std::collections::BTreeMap;

    use hsm_testing::softhsm::SoftHsm;
    use secrecy::{ExposeSecret, SecretString};

    use super::*;
    use crate::audit::VerifyReport;
    use crate::hsm::PinRole;
    use crate::trust::machine::ConfigDir;
    use crate::vault::test_vault::{init_vault, seal_secret};

    /// A 2-of-3 vault whose first operator, olivia (both roles), has her key on this machine.
    struct Lab {
        _softhsm: SoftHsm,
        dir: tempfile::TempDir,
        config: ConfigDir,
        vault: Vault,
        /// The custodians' shares (mnemonics), as init issued them.
        shares: Vec<SecretString>,
    }

    /// The log's bytes with line 3's time changed in place (the last digit of its year: the
    /// same length, so every line stays at its offset), which its signature no longer covers.
    fn third_lines_time_changed(log: &[u8]) -> Vec<u8> {
        let mut bytes = log.to_vec();
        let third = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(1)
            .unwrap()
            .0
            + 1;
        let key = b"\"time\":\"";
        let year = third
            + bytes[third..]
                .windows(key.len())
                .position(|w| w == key)
                .unwrap()
            + key.len();
        bytes[year + 3] = if bytes[year + 3] == b'5' { b'4' } else { b'5' };
        bytes
    }

    /// Requires `opened` to be the refusal of `db-root`'s envelope with digest `found`, the
    /// latest record naming `expected`.
    fn assert_not_recorded<T: std::fmt::Debug>(
        opened: Result<T, crate::Error>,
        expected: &str,
        found: &str,
    ) {
        match opened {
            Err(crate::Error::Trust(TrustError::EnvelopeNotRecorded(not))) => {
                assert_eq!(not.name, "db-root");
                assert_eq!(not.expected.as_deref(), Some(expected));
                assert_eq!(not.found, found);
            }
            other => panic!("{other:?}"),
        }
    }

    impl Lab {
        fn new() -> Lab {
            let softhsm = SoftHsm::new();
            let dir = tempfile::tempdir().expect("a temporary directory");
            let config = ConfigDir::at(&dir.path().join("config"));
            let (vault, issued) =
                init_vault(&softhsm, &dir.path().join("vault"), "vault-a", &config);
            Lab {
                _softhsm: softhsm,
                dir,
                config,
                vault,
                shares: issued.into_iter().map(|(_, share)| share).collect(),
            }
        }

        fn seal(&self, vault: &Vault, payload: &[u8], replace: bool) {
            seal_secret(vault, "db-root", payload, replace);
        }

        fn open(&self) -> Vault {
            Vault::open(&self.dir.path().join("vault"), &self.config).expect("open")
        }
    }

    #[test]
    fn only_the_envelope_the_latest_record_names_opens_and_a_seal_is_seen_at_once() {
        let lab = Lab::new();
        let vault = &lab.vault;
        lab.seal(vault, b"first", false);
        let (path, first) = vault.envelope("db-root").unwrap();
        let first_bytes = std::fs::read(&path).unwrap();
        // Sealed again through the same vault: what it walked before is forgotten, and the
        // new envelope opens.
        lab.seal(vault, b"second", true);
        let (_, second) = vault.envelope("db-root").unwrap();
        assert_ne!(first.record_digest(), second.record_digest());
        // The first envelope put back in place: a genuine envelope of this vault, but not the
        // one recorded last; refused, through this vault and a fresh one.
        std::fs::write(&path, &first_bytes).unwrap();
        for vault in [vault, &lab.open()] {
            assert_not_recorded(
                vault.envelope("db-root"),
                &second.record_digest(),
                &first.record_digest(),
            )
        }
    }

    #[test]
    fn the_walk_is_remembered_at_the_head_and_a_line_after_it_that_fails_is_refused() {
        let lab = Lab::new();
        lab.seal(&lab.vault, b"first", false);
        let vault_id = lab.vault.certified().vault_id().to_owned();
        let records = lab.config.records_path(&vault_id).unwrap();
        let _ = std::fs::remove_file(&records);
        let vault = lab.open();
        vault.check_history().unwrap();
        // This machine remembers the walk up to the log's last line, with the seal's record.
        let cache = RecordsFile::read(&lab.config, &vault_id).expect("records remembered");
        let head = vault.audit().head().unwrap();
        assert_eq!(
            (cache.at.seq, cache.at.hash.as_str()),
            (head.seq, head.hash.as_str())
        );
        let (_, envelope) = vault.envelope("db-root").unwrap();
        assert_eq!(cache.get("db-root"), Some(envelope.record_digest()));
        // A line appended outside breakglass (the last line again): the walk on from the
        // remembered line refuses it.
        let log = vault.store.path(crate::store::AUDIT_LOG);
        let bytes = std::fs::read(&log).unwrap();
        let last = bytes[..bytes.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let mut forged = bytes.clone();
        forged.extend_from_slice(&bytes[last..]);
        std::fs::write(&log, &forged).unwrap();
        let result = lab.open().check_history();
        assert!(
            matches!(
                result,
                Err(crate::Error::Trust(TrustError::AuditLogBroken { line, .. }))
                    if line as u64 == head.seq + 1
            ),
            "{result:?}"
        );
        // An empty log records nothing signed: no envelope is trusted from it.
        std::fs::write(&log, &bytes).unwrap();
        let opened = lab.open();
        std::fs::write(&log, b"").unwrap();
        // (Opening walked the log already, for its anchor and the records: walk again.)
        opened.forget_recorded();
        let result = opened.check_history();
        assert!(
            matches!(
                result,
                Err(crate::Error::Trust(TrustError::UnsignedHistory { .. }))
            ),
            "{result:?}"
        );
    }

    #[test]
    fn a_machine_that_remembers_no_signed_head_opens_a_signed_log_and_refuses_only_an_unsigned_one()
    {
        let lab = Lab::new();
        lab.seal(&lab.vault, b"first", false);
        let (_, sealed) = lab.vault.envelope("db-root").unwrap();
        let vault_id = lab.vault.certified().vault_id().to_owned();
        let dir = lab.dir.path().join("vault");
        // Two other machines: one that pinned nothing (no anchor, no walk at opening), one
        // that pinned the fingerprint alone in `known_vaults.json` (its anchor is made at its
        // first opening, with no audit head until a walk reaches a line).
        let machine = |name: &str, pinned: bool| {
            let config = ConfigDir::at(&lab.dir.path().join(name));
            std::fs::create_dir_all(config.root()).unwrap();
            if pinned {
                let known = BTreeMap::from([(vault_id.clone(), lab.vault.identity())]);
                std::fs::write(
                    crate::vault::known_vaults_path(&config),
                    serde_json::to_vec(&known).unwrap(),
                )
                .unwrap();
            }
            config
        };
        let unsigned_history = |result: Result<Vault, crate::Error>| {
            let vault = result.expect("opened: the log's history is for the walk to judge");
            match vault.check_history() {
                Err(crate::Error::Trust(TrustError::UnsignedHistory { vault_id: id })) => {
                    assert_eq!(id, vault_id);
                }
                other => panic!("{other:?}"),
            }
            assert!(vault.envelope("db-root").is_err());
        };
        // The log's last line is signed: opened on its last line's word, without a walk, and
        // the sealed envelope opens.
        for config in [machine("fresh", false), machine("pinned", true)] {
            let vault = Vault::open(&dir, &config).expect("a signed log opens anywhere");
            assert_eq!(
                vault.envelope("db-root").unwrap().1.record_digest(),
                sealed.record_digest()
            );
        }
        let log = dir.join(crate::store::AUDIT_LOG);
        let signed = std::fs::read(&log).unwrap();
        // The log emptied: nothing unsigned to distrust, so it opens (on machines that never
        // walked it; the others refuse it as a rollback), but no envelope is trusted from it.
        std::fs::write(&log, b"").unwrap();
        for config in [machine("fresh-empty", false), machine("pinned-empty", true)] {
            unsigned_history(Vault::open(&dir, &config));
        }
        // A format-1 line (unsigned) appended after the signed ones, chained as breakglass
        // chained lines before it signed them: a machine whose anchor says signed lines began
        // (this one, or one pinned by fingerprint whose first opening walks up to that line)
        // opens the vault and refuses the line when a credential is opened; a machine that
        // remembers nothing refuses it at once, naming it.
        std::fs::write(&log, &signed).unwrap();
        let head = lab.vault.audit().head().unwrap();
        let outsider = crate::audit::Actor {
            user: "mallory".into(),
            host: "elsewhere".into(),
        };
        lab.vault
            .audit()
            .append(Event::new("seal"), &outsider, "2026-12-01T00:00:00Z")
            .unwrap();
        assert!(!lab.vault.audit().has_signed_head().unwrap());
        let at_that_line = |result: Result<(), crate::Error>| match result {
            Err(crate::Error::Trust(TrustError::AuditLogBroken { line, .. })) => {
                assert_eq!(line as u64, head.seq + 1);
            }
            other => panic!("{other:?}"),
        };
        for anchored in [
            lab.open(),
            Vault::open(&dir, &machine("pinned-unsigned", true)).unwrap(),
        ] {
            at_that_line(anchored.check_history());
        }
        at_that_line(Vault::open(&dir, &machine("fresh-unsigned", false)).map(drop));
    }

    #[test]
    fn a_seal_among_many_lines_walked_at_once_moves_the_records_and_not_only_the_note() {
        let lab = Lab::new();
        lab.seal(&lab.vault, b"first", false);
        let vault_id = lab.vault.certified().vault_id().to_owned();
        // A first opening walks the log and remembers the first envelope's record.
        let (path, first) = lab.open().envelope("db-root").unwrap();
        let first_bytes = std::fs::read(&path).unwrap();
        let remembered = || RecordsFile::read(&lab.config, &vault_id).expect("records");
        assert_eq!(remembered().get("db-root"), Some(first.record_digest()));
        // The second seal, then three other credentials: the next opening walks all their
        // lines at once (split into parts, in these tests, from 4 lines), and the merge of
        // the parts must count the records they found, or only the note past them moves.
        lab.seal(&lab.vault, b"second", true);
        for name in ["app-a", "app-b", "app-c"] {
            seal_secret(&lab.vault, name, b"other", false);
        }
        let walked = lab.vault.audit().head().unwrap().seq - remembered().at.seq;
        assert!(walked >= 4, "{walked} lines");
        let (_, second) = lab.open().envelope("db-root").unwrap();
        let records = remembered();
        assert_eq!(records.get("db-root"), Some(second.record_digest()));
        assert_eq!(records.len(), 4);
        // The first envelope put back: refused on the records' word, with nothing to walk.
        std::fs::write(&path, &first_bytes).unwrap();
        assert_not_recorded(
            lab.open().envelope("db-root"),
            &second.record_digest(),
            &first.record_digest(),
        )
    }

    #[test]
    fn a_seal_forgets_the_records_this_vault_walked_so_the_envelope_it_replaced_is_refused() {
        let lab = Lab::new();
        let vault = &lab.vault;
        lab.seal(vault, b"first", false);
        // Opening the first walks the log, and this vault keeps that walk.
        let (path, first) = vault.envelope("db-root").unwrap();
        let first_bytes = std::fs::read(&path).unwrap();
        lab.seal(vault, b"second", true);
        let second_bytes = std::fs::read(&path).unwrap();
        let second = Envelope::from_bytes(&second_bytes, &path).unwrap();
        // The first put back before anything else reads the log through this vault: what it
        // walked before the seal (which named the first) must not decide.
        std::fs::write(&path, &first_bytes).unwrap();
        assert_not_recorded(
            vault.envelope("db-root"),
            &second.record_digest(),
            &first.record_digest(),
        )
    }

    #[test]
    fn a_line_changed_before_the_remembered_head_is_named_by_the_walk_and_moves_no_anchor() {
        let lab = Lab::new();
        lab.seal(&lab.vault, b"first", false);
        for name in ["app-a", "app-b", "app-c"] {
            seal_secret(&lab.vault, name, b"other", false);
        }
        let vault_id = lab.vault.certified().vault_id().to_owned();
        lab.open().check_history().unwrap();
        let anchor = || {
            MachineAnchor::read(&lab.config, &vault_id)
                .unwrap()
                .and_then(|a| a.audit)
                .expect("an audit head")
        };
        let head = anchor();
        assert_eq!(head.seq, lab.vault.audit().head().unwrap().seq);
        assert!(head.seq >= 5, "{head:?}");
        // Line 3's time changed in place (same length, so the remembered head is still where
        // it was): its operator signature fails. This machine's records are gone too, so the
        // opening walks the whole log for them, and that walk stops before line 3.
        let log = lab.vault.store.path(crate::store::AUDIT_LOG);
        let bytes = std::fs::read(&log).unwrap();
        std::fs::write(&log, third_lines_time_changed(&bytes)).unwrap();
        std::fs::remove_file(lab.config.records_path(&vault_id).unwrap()).unwrap();
        // The vault opens (its remembered head is still there, and nothing after it is to
        // walk); the anchor stays; opening a credential walks the whole log and names line 3.
        let vault = lab.open();
        assert_eq!(anchor(), head);
        match vault.check_history() {
            Err(crate::Error::Trust(TrustError::AuditLogBroken { line, .. })) => {
                assert_eq!(line, 3);
            }
            other => panic!("{other:?}"),
        }
        assert!(vault.envelope("db-root").is_err());
    }

    #[test]
    fn the_token_holds_the_verified_head_moves_it_forward_only_and_refuses_a_log_cut_below_it() {
        use crate::hsm::{Module, TokenSelector};
        use crate::trust::machine::{AuditAnchor, token_anchor_label};
        let lab = Lab::new();
        lab.seal(&lab.vault, b"first", false);
        let vault = lab.open();
        let vault_id = vault.certified().vault_id().to_owned();
        // A user session on the vault's token, with the PIN two custodians' quorum derives.
        let enrollment = &vault.manifest().hsms[0];
        let module = Module::open(Path::new(&enrollment.module)).unwrap();
        let token = module
            .find_token(&TokenSelector::Serial(enrollment.serial.clone()))
            .unwrap();
        let session = module.open_session(&token).unwrap();
        let mut collector = crate::quorum::Collector::new();
        for (i, words) in lab.shares[..2].iter().enumerate() {
            let share = crate::quorum::Share::parse(words.expose_secret(), i + 1).unwrap();
            collector.add(i + 1, share).unwrap();
        }
        let q = collector.combine(b"").unwrap().secret;
        let pin = super::super::tokens::derived_pin(
            q.expose_secret(),
            &vault_id,
            enrollment.pin_derivation,
            token.description(),
            PinRole::User,
        )
        .unwrap();
        session.login(PinRole::User, &pin, false).unwrap();
        let label = token_anchor_label(&vault_id);
        let held = || {
            let data = session
                .read_data(&label)
                .unwrap()
                .expect("a head on the token");
            AuditAnchor::from_token_bytes(&data.value, &vault_id).unwrap()
        };
        let log = vault.store.path(crate::store::AUDIT_LOG);
        let at_head = |vault: &Vault| {
            let head = vault.audit().head().unwrap();
            (head.seq, head.hash, std::fs::metadata(&log).unwrap().len())
        };
        // The token takes the head the log verifies to now, and moves on with it.
        vault.hold_token_head(&session, "vault-a").unwrap();
        let first = held();
        assert_eq!(
            (first.seq, first.hash.clone(), first.offset),
            at_head(&vault)
        );
        for name in ["app-a", "app-b"] {
            seal_secret(&vault, name, b"x", false);
        }
        vault.hold_token_head(&session, "vault-a").unwrap();
        let second = held();
        assert_eq!(
            (second.seq, second.hash.clone(), second.offset),
            at_head(&vault)
        );
        assert!(second.seq > first.seq && second.seq >= 3, "{second:?}");
        // A machine that remembers nothing, where line 3 (before the token's head) was changed
        // in place, the head's own line still at its offset: the log verifies only up to
        // line 1 there, and the token keeps its head; it never moves back.
        let genuine = std::fs::read(&log).unwrap();
        let changed = third_lines_time_changed(&genuine);
        std::fs::write(&log, &changed).unwrap();
        let fresh = ConfigDir::at(&lab.dir.path().join("fresh"));
        let elsewhere = Vault::open(&lab.dir.path().join("vault"), &fresh).unwrap();
        let broken = elsewhere.check_history();
        assert!(
            matches!(
                broken,
                Err(crate::Error::Trust(TrustError::AuditLogBroken {
                    line: 3,
                    ..
                }))
            ),
            "{broken:?}"
        );
        elsewhere.hold_token_head(&session, "vault-a").unwrap();
        assert_eq!(held(), second);
        // The log cut back below the token's head: refused, naming the token.
        std::fs::write(&log, &genuine[..first.offset as usize]).unwrap();
        match elsewhere.hold_token_head(&session, "vault-a") {
            Err(crate::Error::Trust(TrustError::TokenAuditRollback {
                token, expected, ..
            })) => {
                assert_eq!(token, "vault-a");
                assert_eq!(*expected, second);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(held(), second);
    }

    #[test]
    fn status_resumes_after_its_note_past_a_torn_tail_and_reports_what_a_whole_walk_reports() {
        use crate::trust::machine::{AuditAnchor, VerifiedPrefix};
        let lab = Lab::new();
        lab.seal(&lab.vault, b"first", false);
        let vault_id = lab.vault.certified().vault_id().to_owned();
        // `status` walks the log whole and notes how far it verified.
        let (report, summary) = lab.open().verify_audit_remembered().unwrap();
        assert!(report.is_intact() && summary.is_some(), "{report:?}");
        let noted =
            VerifiedPrefix::read(&lab.config, &vault_id).expect("a note of how far it verified");
        // Lines appended since, then a write cut short (a crash mid-append).
        for name in ["app-a", "app-b"] {
            seal_secret(&lab.vault, name, b"x", false);
        }
        let log = lab.vault.store.path(crate::store::AUDIT_LOG);
        let complete = std::fs::read(&log).unwrap();
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut file, b"{\"v\":2,\"seq\":").unwrap();
        drop(file);
        // The next `status` resumes after the note (its lines summarised since, none of the
        // torn bytes) and reports what a machine that walks everything reports.
        let (resumed, resumed_summary) = lab.open().verify_audit_remembered().unwrap();
        let fresh = ConfigDir::at(&lab.dir.path().join("fresh"));
        let whole = Vault::open(&lab.dir.path().join("vault"), &fresh).unwrap();
        let (walked, walked_summary) = whole.verify_audit_remembered().unwrap();
        assert!(resumed.torn_tail.is_some(), "{resumed:?}");
        assert_eq!(
            VerifyReport {
                records: 0,
                ..resumed
            },
            VerifyReport {
                records: 0,
                ..walked
            }
        );
        let summary = resumed_summary.expect("a summary");
        assert_eq!(Some(&summary), walked_summary.as_ref());
        assert_eq!(summary.last_event["seal"].seq, resumed.entries as u64);
        let note = VerifiedPrefix::read(&lab.config, &vault_id).unwrap();
        assert!(note.at.seq > noted.at.seq, "{note:?}");
        // A note made before the log's lines were signed (as on a machine that ran `status`
        // before the upgrade), then a signed line (after the torn write is taken away): the
        // report says signed lines began.
        std::fs::write(&log, &complete).unwrap();
        VerifiedPrefix {
            at: AuditAnchor {
                signed_lines: false,
                ..note.at.clone()
            },
            ..note
        }
        .write(&lab.config)
        .unwrap();
        lab.seal(&lab.vault, b"second", true);
        let (resumed, _) = lab.open().verify_audit_remembered().unwrap();
        assert!(resumed.signed_lines && resumed.is_intact(), "{resumed:?}");
        // The log cut back below what a machine noted (one that pinned nothing, so that no
        // anchor refuses the opening): every line left verifies, yet the lines it verified are
        // gone, and `status` names the last of them.
        let (_, _) = whole.verify_audit_remembered().unwrap();
        let noted = VerifiedPrefix::read(&fresh, &vault_id).unwrap();
        let bytes = std::fs::read(&log).unwrap();
        let cut = bytes[..bytes.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .unwrap()
            + 1;
        std::fs::write(&log, &bytes[..cut]).unwrap();
        let (report, summary) = Vault::open(&lab.dir.path().join("vault"), &fresh)
            .unwrap()
            .verify_audit_remembered()
            .unwrap();
        assert_eq!(
            report.first_problem.as_ref().map(|p| p.line as u64),
            Some(noted.at.seq),
            "{report:?}"
        );
        assert!(summary.is_none());
    }

    #[test]
    fn records_damaged_on_this_machine_cost_a_walk_of_the_log_and_never_decide_an_opening() {
        let lab = Lab::new();
        lab.seal(&lab.vault, b"first", false);
        let vault_id = lab.vault.certified().vault_id().to_owned();
        let (path, genuine) = lab.open().envelope("db-root").unwrap();
        let first_bytes = std::fs::read(&path).unwrap();
        lab.seal(&lab.vault, b"second", true);
        let (_, second) = lab.open().envelope("db-root").unwrap();
        let records = lab.config.records_path(&vault_id).unwrap();
        let written = std::fs::read(&records).unwrap();
        let digest = second.record_digest();
        // This machine's records file names another digest (a bit flipped on its disk), or
        // is damaged: the genuine envelope still opens, and the file is written again whole.
        let other = format!(
            "{}{}",
            &digest[..63],
            if digest.ends_with('0') { '1' } else { '0' }
        );
        let text = String::from_utf8(written.clone()).unwrap();
        for damaged in [
            text.replace(&digest, &other),
            text.replace(&digest, &digest.to_uppercase()),
        ] {
            assert_ne!(damaged.as_bytes(), written.as_slice());
            std::fs::write(&records, &damaged).unwrap();
            let (_, opened) = lab.open().envelope("db-root").unwrap();
            assert_eq!(opened.record_digest(), digest);
            assert_eq!(std::fs::read(&records).unwrap(), written);
        }
        // The records file naming the envelope recorded before (put back from a backup of
        // this machine's configuration): the genuine envelope is not refused for it. (Like
        // the anchor beside it, the file is this machine's memory: whoever can write it can
        // also unpin the vault.)
        let first = genuine.record_digest();
        std::fs::write(&records, text.replace(&digest, &first)).unwrap();
        let (_, opened) = lab.open().envelope("db-root").unwrap();
        assert_eq!(opened.record_digest(), digest);
        assert_eq!(std::fs::read(&records).unwrap(), written);
        // With it whole again, the older envelope put back is refused.
        std::fs::write(&path, &first_bytes).unwrap();
        assert_not_recorded(lab.open().envelope("db-root"), &digest, &first)
    }

    #[test]
    fn a_refusal_walks_the_whole_log_again_once_in_a_process_and_only_on_the_files_word() {
        let lab = Lab::new();
        lab.seal(&lab.vault, b"first", false);
        let vault_id = lab.vault.certified().vault_id().to_owned();
        let (path, first) = lab.open().envelope("db-root").unwrap();
        let first_bytes = std::fs::read(&path).unwrap();
        lab.seal(&lab.vault, b"second", true);
        let (_, second) = lab.open().envelope("db-root").unwrap();
        let (first, second) = (first.record_digest(), second.record_digest());
        let records = lab.config.records_path(&vault_id).unwrap();
        // The older envelope put back, and this machine's records naming neither digest.
        std::fs::write(&path, &first_bytes).unwrap();
        let text = std::fs::read_to_string(&records).unwrap();
        let other = format!(
            "{}{}",
            &second[..63],
            if second.ends_with('0') { '1' } else { '0' }
        );
        std::fs::write(&records, text.replace(&second, &other)).unwrap();
        // The refusal names what the whole log records (walked again, the file written again).
        let vault = lab.open();
        assert_not_recorded(vault.envelope("db-root"), &second, &first);
        assert!(std::fs::read_to_string(&records).unwrap().contains(&second));
        // Refused again in the same process: the walk it made stands (the file, gone now, is
        // not written again).
        std::fs::remove_file(&records).unwrap();
        assert_not_recorded(vault.envelope("db-root"), &second, &first);
        assert!(!records.exists());
    }

    #[test]
    fn a_writer_settles_a_staged_envelope_in_only_when_the_log_records_it() {
        let lab = Lab::new();
        let vault = &lab.vault;
        lab.seal(vault, b"first", false);
        let (path, first) = vault.envelope("db-root").unwrap();
        let first_bytes = std::fs::read(&path).unwrap();
        lab.seal(vault, b"second", true);
        let second_bytes = std::fs::read(&path).unwrap();
        // A process that no longer runs left its staged file (pid 4294967295 runs nowhere).
        let staging = lab.dir.path().join("vault/staging");
        std::fs::create_dir_all(&staging).unwrap();
        let staged = staging.join(".db-root.json.tmp.4294967295");
        // Opening settles it (under the writers' lock).
        let settle = || drop(lab.open());
        // Killed after recording the second seal, before its rename: the recorded envelope
        // is renamed in over the older one.
        std::fs::write(&path, &first_bytes).unwrap();
        std::fs::write(&staged, &second_bytes).unwrap();
        settle();
        assert_eq!(std::fs::read(&path).unwrap(), second_bytes);
        assert!(!staged.exists());
        // A staged envelope the log does not record last (an older one): removed, the current
        // one stays.
        std::fs::write(&staged, &first_bytes).unwrap();
        settle();
        assert_eq!(std::fs::read(&path).unwrap(), second_bytes);
        assert!(!staged.exists());
        // With no envelope in place, an unrecorded staged one is still removed, not renamed in.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&staged, &first_bytes).unwrap();
        settle();
        assert!(!path.exists() && !staged.exists());
        std::fs::write(&path, &second_bytes).unwrap();
        // The recorded one staged again while it is already in place: removed, nothing moves.
        std::fs::write(&staged, &second_bytes).unwrap();
        settle();
        assert_eq!(std::fs::read(&path).unwrap(), second_bytes);
        assert!(!staged.exists());
        assert_ne!(
            first.record_digest(),
            lab.open().envelope("db-root").unwrap().1.record_digest()
        );
    }

    #[test]
    fn until_it_is_settled_the_recorded_staged_envelope_is_the_one_opened() {
        let lab = Lab::new();
        let vault = &lab.vault;
        lab.seal(vault, b"first", false);
        let (path, _) = vault.envelope("db-root").unwrap();
        let first_bytes = std::fs::read(&path).unwrap();
        lab.seal(vault, b"second", true);
        let (_, second) = vault.envelope("db-root").unwrap();
        let second_bytes = std::fs::read(&path).unwrap();
        // Killed between recording the second seal and its rename; no writer since.
        let staging = lab.dir.path().join("vault/staging");
        std::fs::create_dir_all(&staging).unwrap();
        let staged = staging.join(".db-root.json.tmp.4294967295");
        std::fs::write(&path, &first_bytes).unwrap();
        std::fs::write(&staged, &second_bytes).unwrap();
        let (found, envelope) = vault.envelope("db-root").unwrap();
        assert_eq!(found, staged);
        assert_eq!(envelope.record_digest(), second.record_digest());
        // A staged envelope the log does not record last opens nothing.
        std::fs::write(&staged, &first_bytes).unwrap();
        let result = vault.envelope("db-root");
        assert!(
            matches!(
                result,
                Err(crate::Error::Trust(TrustError::EnvelopeNotRecorded(_)))
            ),
            "{result:?}"
        );
    }
}
