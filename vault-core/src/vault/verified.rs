//! `status`'s check of the audit log: every line verified, as `audit verify` does, without
//! verifying again the signatures of lines this machine already verified whole. This machine
//! notes how far it verified the log from its first line and the SHA-256 of exactly those
//! bytes ([`VerifiedPrefix`]); hashing them again is about a thousand times cheaper than their
//! signatures, and equal bytes are lines already verified. Only the lines after them are
//! verified one by one. A log whose first bytes changed in any way is walked whole again, so
//! that the problem is named at its line.

use crate::audit::{ChainPoint, LogSummary, Problem, VerifyReport};
use crate::trust::machine::{VERIFIED_FORMAT, VerifiedPrefix};

use super::Vault;

impl Vault {
    /// The audit log verified as [`crate::manifest::ManifestKeys::verify_audit`] does (the
    /// chain, every checkpoint and operator signature), resuming after the lines this machine
    /// verified before when the log still starts with exactly those bytes. Notes how far the
    /// log verified, for the next call. A log whose verified lines were rewritten into another
    /// valid history (every line re-signed) is reported at the last of them.
    ///
    /// With the report comes what `status` shows of the history ([`LogSummary`]) when every
    /// line verified.
    pub fn verify_audit_remembered(
        &self,
    ) -> Result<(VerifyReport, Option<LogSummary>), crate::Error> {
        let audit = self.audit();
        let vault_id = self.trusted.vault_id();
        let retired = &self.keys.retired_audit_keys;
        let key = &self.keys.audit_public_key;
        let note = VerifiedPrefix::read(&self.config, vault_id);
        if let Some(note) = &note {
            let from = ChainPoint::from(&note.at);
            let (mut report, last) = audit.verify_from(Some(&from), retired, key)?;
            let digests = audit.prefix_digests(&[note.at.offset, last.offset])?;
            if digests[0].as_deref() == Some(note.prefix_sha256.as_str()) {
                report.checkpoints += note.checkpoints;
                report.last_checkpoint = report.last_checkpoint.or(note.last_checkpoint);
                report.unsigned_tail = report.entries - report.last_checkpoint.unwrap_or(0);
                report.signed_lines |= note.at.signed_lines;
                if !report.is_intact() {
                    return Ok((report, None));
                }
                let mut summary = note.summary.clone();
                audit.summarise(&mut summary, from.offset, last.offset)?;
                if last != from
                    && let Some(digest) = &digests[1]
                {
                    self.note_verified(&report, last, digest, &summary);
                }
                return Ok((report, Some(summary)));
            }
        }
        let (mut report, last) = audit.verify_from(None, retired, key)?;
        if report.is_intact() {
            if let Some(note) = note.filter(|n| n.at.seq > 0) {
                // Every line verifies, yet the bytes this machine verified are not there: the
                // history was rewritten and re-signed (an operator's key used to change what
                // was recorded), or cut back. Whichever, what was verified is gone.
                report.first_problem = Some(Problem {
                    line: note.at.seq as usize,
                    reason: format!(
                        "lines 1 to {} are not the ones this machine verified (their SHA-256 \
                         was {}): the log was cut back, or its history rewritten and each \
                         line signed again",
                        note.at.seq, note.prefix_sha256
                    ),
                });
                return Ok((report, None));
            }
            let mut summary = LogSummary::default();
            audit.summarise(&mut summary, 0, last.offset)?;
            if last.seq > 0
                && let Some(Some(digest)) = audit.prefix_digests(&[last.offset])?.pop()
            {
                self.note_verified(&report, last, &digest, &summary);
            }
            return Ok((report, Some(summary)));
        }
        Ok((report, None))
    }

    /// Notes that the log verified whole up to `last`, whose bytes up to it hash to `digest`.
    /// Best effort: a note not written costs the next `status` a longer walk.
    fn note_verified(
        &self,
        report: &VerifyReport,
        last: ChainPoint,
        digest: &str,
        summary: &LogSummary,
    ) {
        let _ = VerifiedPrefix {
            format: VERIFIED_FORMAT.into(),
            vault_id: self.trusted.vault_id().to_owned(),
            at: last.into(),
            prefix_sha256: digest.to_owned(),
            checkpoints: report.checkpoints,
            last_checkpoint: report.last_checkpoint,
            summary: summary.clone(),
        }
        .write(&self.config);
    }
}
