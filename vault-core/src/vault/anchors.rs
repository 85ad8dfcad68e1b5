//! The audit log held to what remembers its head: this machine's anchor
//! (`anchors/<vault id>.json`, see `trust::machine`) and the token's (a data object
//! `breakglass:<vault id>:audit-head`). Opening a vault checks that the log still holds the
//! remembered line at the remembered offset (a log cut back, or rewritten before it, is
//! refused), verifies only the lines appended after it, and moves the anchor to the last of
//! them that verified; every append moves it over the lines it wrote. Before the token signs a
//! checkpoint, the log must continue the head the token holds, so that a machine that
//! remembers nothing (a fresh configuration) also catches a rollback; the token then holds the
//! head the checkpoint is about to follow.

use crate::audit::ChainPoint;
use crate::hsm::TokenSession;
use crate::store::AUDIT_LOG;
use crate::trust::TrustError;
use crate::trust::machine::{
    AuditAnchor, HeadCheck, MachineAnchor, check_head_file, token_anchor_label,
};

use super::Vault;

impl Vault {
    /// Refuses a log that does not continue this machine's remembered head; verifies the lines
    /// after it (the chain, the checkpoints' signatures) and remembers the last that verified.
    /// A line that does not verify stops the anchor before it, and is for `audit verify` to
    /// report. Nothing is remembered on a machine that pinned nothing for the vault.
    ///
    /// Remembering is best effort: an anchor that could not be written (a full disk) stays at
    /// an earlier line of the same log, which the next command checks and moves on from; the
    /// command itself is neither refused nor left half done for it.
    pub(super) fn follow_audit(&self) -> Result<(), crate::Error> {
        let Some(mut anchor) = MachineAnchor::read(&self.config, self.trusted.vault_id())? else {
            return Ok(());
        };
        anchor.check_audit_file(&self.store.path(AUDIT_LOG))?;
        let from = anchor.audit.as_ref().map(ChainPoint::from);
        // A machine with no envelope records yet (the first opening walks the whole log for
        // both): one walk serves both; the anchor's own walk is needed only if that one
        // stopped before it. (With records, they are walked on when a credential is opened:
        // reading them at every opening would cost more than it saves.)
        let seq = |point: &Option<ChainPoint>| point.as_ref().map_or(0, |p| p.seq);
        let mut records = self
            .config
            .records_path(self.trusted.vault_id())
            .is_ok_and(|path| !path.exists())
            .then(|| self.remembered_records());
        let walk_from = records.as_ref().map_or(from.clone(), |r| r.from.clone());
        let (report, mut last) = self.audit().verify_recording(
            walk_from.as_ref(),
            &self.keys.retired_audit_keys,
            &self.keys.audit_public_key,
            records.as_mut().map(|r| &mut r.recorded.later),
        )?;
        if let Some(records) = records
            && report.is_intact()
            && (report.signed_lines || last.signed_lines)
        {
            self.remember_records(records, &report, last.clone());
        }
        if last.seq < seq(&from) {
            (_, last) = self.audit().verify_from(
                from.as_ref(),
                &self.keys.retired_audit_keys,
                &self.keys.audit_public_key,
            )?;
        }
        if from.as_ref() != Some(&last) && last.seq > 0 {
            anchor.advance_audit(last.into())?;
            let _ = anchor.write(&self.config);
        }
        Ok(())
    }

    /// The last line of the audit log that verifies now, walking on from this machine's
    /// remembered head (the whole log when it remembers none).
    fn verified_head(&self) -> Result<ChainPoint, crate::Error> {
        let remembered = MachineAnchor::read(&self.config, self.trusted.vault_id())?
            .and_then(|anchor| anchor.audit);
        let from = remembered.as_ref().map(ChainPoint::from);
        let (_, last) = self.audit().verify_from(
            from.as_ref(),
            &self.keys.retired_audit_keys,
            &self.keys.audit_public_key,
        )?;
        Ok(last)
    }

    /// Refuses a log that does not continue the head token `token_label` holds (exit 5), then
    /// has the token hold the head that verifies now (never an earlier one). Called before the
    /// token signs a checkpoint, so that a token without room refuses before anything is
    /// signed or written. The token so holds the head as it was before its latest checkpoint:
    /// the lines that checkpoint adds are held by the machine that wrote them, and by the token
    /// from its next checkpoint on (a write after the append could fail after the opening was
    /// recorded, and a head written before it would be ahead of a log whose append failed).
    pub(super) fn hold_token_head(
        &self,
        session: &TokenSession<'_>,
        token_label: &str,
    ) -> Result<(), crate::Error> {
        let vault_id = self.trusted.vault_id();
        let label = token_anchor_label(vault_id);
        let data = session.read_data(&label)?;
        let held = data
            .as_ref()
            .map(|data| {
                AuditAnchor::from_token_bytes(&data.value, vault_id).map_err(|reason| {
                    TrustError::InvalidTokenAnchor {
                        token: token_label.to_owned(),
                        vault_id: vault_id.to_owned(),
                        reason,
                    }
                })
            })
            .transpose()?;
        if let Some(held) = &held {
            let log = self.store.path(AUDIT_LOG);
            check_head_file(held, &log).map_err(|e| match e {
                HeadCheck::Rollback(found) => TrustError::TokenAuditRollback {
                    token: token_label.to_owned(),
                    vault_id: vault_id.to_owned(),
                    expected: Box::new(held.clone()),
                    found: Box::new(found),
                },
                HeadCheck::Io(cause) => TrustError::Io {
                    path: log.clone(),
                    action: "reading the audit log at the token's head",
                    cause,
                },
            })?;
        }
        let head = AuditAnchor::from(self.verified_head()?);
        if head.seq == 0 || held.is_some_and(|held| held.seq >= head.seq) {
            return Ok(());
        }
        session.write_data(&label, &head.to_token_bytes(vault_id), data.as_ref())?;
        Ok(())
    }
}
