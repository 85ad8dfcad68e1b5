//! The audit log held to what remembers its head: this machine's anchor
//! (`anchors/<vault id>.json`, see `trust::machine`). Opening a vault checks that the log still
//! holds the remembered line at the remembered offset (a log cut back, or rewritten before it,
//! is refused), verifies only the lines appended after it, and moves the anchor to the last of
//! them that verified; every append moves it over the lines it wrote.

use crate::audit::{ChainPoint, VerifyReport};
use crate::store::AUDIT_LOG;
use crate::trust::machine::MachineAnchor;

use super::Vault;

impl Vault {
    /// Refuses a log that does not continue this machine's remembered head; verifies the lines
    /// after it (the chain, the checkpoints' signatures) and remembers the last that verified.
    /// A line that does not verify stops the anchor there, and is for `audit verify` to report.
    /// Nothing is remembered on a machine that pinned nothing for the vault (`None`); else
    /// the report on the lines after the remembered head.
    pub(super) fn follow_audit(&self) -> Result<Option<VerifyReport>, crate::Error> {
        let Some(mut anchor) = MachineAnchor::read(&self.config, self.trusted.vault_id())? else {
            return Ok(None);
        };
        anchor.check_audit_file(&self.store.path(AUDIT_LOG))?;
        let from = anchor.audit.as_ref().map(ChainPoint::from);
        let (report, last) = self.audit().verify_from(
            from.as_ref(),
            &self.keys.retired_audit_keys,
            &self.keys.audit_public_key,
        )?;
        if from.as_ref() != Some(&last) && last.seq > 0 {
            anchor.advance_audit(last.into())?;
            anchor.write(&self.config)?;
        }
        Ok(Some(report))
    }

    /// The first line of the audit log that does not verify (a broken chain or a checkpoint
    /// whose signature fails), if any: from what opening the vault verified after this
    /// machine's remembered head (history before it was verified when the head was
    /// remembered), else from a walk of the whole log.
    pub fn audit_break(&self) -> Result<Option<usize>, crate::Error> {
        let report = match &self.followed {
            Some(report) => report.clone(),
            None => self.keys.verify_audit(&self.audit())?,
        };
        Ok(report
            .first_problem
            .as_ref()
            .map(|p| p.line)
            .or(report.bad_signature))
    }
}
