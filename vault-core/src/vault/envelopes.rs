//! Which envelope of a credential is genuine: the one the audit log's latest signed record for
//! its name names. A seal (and a rotation, a rekey, the upgrade of a log made before lines
//! were signed) records the envelope's digest ([`Envelope::record_digest`]) in a line signed by
//! the operator who made it; opening refuses any other file for that name (an older copy put
//! back, or an envelope sealed elsewhere with the vault's public keys), exit 5.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::audit::{ENVELOPE_DETAIL, Event};
use crate::envelope::Envelope;
use crate::trust::NotRecorded;
use crate::trust::TrustError;
use crate::trust::audit_line::ENVELOPE_RECORDED;
use crate::trust::machine::MachineAnchor;

use super::Vault;

/// Credential name → the digest its latest signed record names.
pub(super) type Recorded = BTreeMap<String, String>;

impl Vault {
    /// Forgets the records walked for (something was appended).
    pub(super) fn forget_recorded(&self) {
        if let Ok(mut recorded) = self.recorded.lock() {
            *recorded = None;
        }
    }

    /// Every credential's latest signed record, walking the whole log once: every line must
    /// verify (chain, checkpoints, operator signatures), or no envelope is trusted.
    pub(super) fn recorded_envelopes(&self) -> Result<Arc<Recorded>, crate::Error> {
        if let Ok(recorded) = self.recorded.lock()
            && let Some(recorded) = recorded.as_ref()
        {
            return Ok(recorded.clone());
        }
        let mut map = BTreeMap::new();
        let (report, _) = self.audit().verify_recording(
            None,
            &self.keys.retired_audit_keys,
            &self.keys.audit_public_key,
            Some(&mut map),
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
        if !report.signed_lines {
            return Err(TrustError::UnsignedHistory {
                vault_id: self.trusted.vault_id().to_owned(),
            }
            .into());
        }
        let map = Arc::new(map);
        if let Ok(mut recorded) = self.recorded.lock() {
            *recorded = Some(map.clone());
        }
        Ok(map)
    }

    /// Refuses `envelope`, read from `file` as credential `name`, unless it is the envelope
    /// the log's latest signed record for `name` names.
    pub(super) fn check_recorded(
        &self,
        name: &str,
        file: &Path,
        envelope: &Envelope,
    ) -> Result<(), crate::Error> {
        let recorded = self.recorded_envelopes()?;
        let found = envelope.record_digest();
        match recorded.get(name) {
            Some(expected) if *expected == found => Ok(()),
            expected => Err(TrustError::EnvelopeNotRecorded(Box::new(NotRecorded {
                file: file.to_path_buf(),
                name: name.to_owned(),
                expected: expected.cloned(),
                found,
            }))
            .into()),
        }
    }

    /// Refuses a vault whose audit log has no signed lines yet (made by an earlier release):
    /// it must be upgraded first. Cheap: this machine's anchor says so, or the last line.
    pub(super) fn refuse_unsigned_history(&self) -> Result<(), crate::Error> {
        let anchored = MachineAnchor::read(&self.config, self.trusted.vault_id())?
            .and_then(|a| a.audit)
            .is_some_and(|a| a.signed_lines);
        if anchored || self.audit().has_signed_head()? {
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
