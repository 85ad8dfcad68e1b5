//! Upgrading in place a vault whose manifest is certified but whose audit log was written
//! before lines were signed by their operator (format-1 lines): until then nothing in the log
//! can say which envelope of a credential is genuine, so every other command refuses it.
//!
//! A security officer of the vault, with a quorum and a token, appends an `upgrade` line that
//! records the manifest version in force, and one `envelope_recorded` line per credential
//! recording its envelope as it is now, all signed with their operator key and followed by a
//! token checkpoint. The quorum so vouches for the envelopes present at the upgrade (say so to
//! the officer: an envelope substituted before it is not told apart). From then on every line
//! is signed and an unsigned one is refused.

use secrecy::ExposeSecret;

use crate::quorum::Collector;
use crate::trust::{Role, TrustError};

use super::record::manifest_event;
use super::tokens::{PinProvider, TokenChoice};
use super::{Vault, VaultError};

/// What [`Vault::sign_history`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySigned {
    /// The operator who signed.
    pub operator: String,
    /// The credentials whose envelopes were recorded.
    pub envelopes: Vec<String>,
    /// The lines of the log before the upgrade (unsigned, covered by its checkpoints).
    pub unsigned_lines: usize,
}

impl Vault {
    /// Whether the audit log has signed lines (see [`Vault::sign_history`]).
    pub fn history_signed(&self) -> Result<bool, crate::Error> {
        Ok(self.audit().has_signed_head()?)
    }

    /// Signs the history of this vault: see the module documentation. `pinned` must be the
    /// vault's identity; this machine's operator must be a security officer; the log as it is
    /// must verify (chain and checkpoints); the shares must meet the quorum and the first
    /// token present log in with the PIN they derive, before anything is written.
    pub fn sign_history(
        &self,
        shares: &Collector,
        pins: &dyn PinProvider,
        pinned: &str,
    ) -> Result<HistorySigned, crate::Error> {
        self.check_identity(pinned)?;
        let (_key, acting) = self.acting_operator(Role::SecurityOfficer)?;
        if self.history_signed()? {
            return Err(VaultError::HistorySignedAlready {
                vault_id: self.trusted.vault_id().to_owned(),
            }
            .into());
        }
        let report = self.keys.verify_audit(&self.audit())?;
        if let Some(problem) = &report.first_problem {
            return Err(TrustError::AuditLogBroken {
                vault_id: self.trusted.vault_id().to_owned(),
                line: problem.line,
                reason: problem.reason.clone(),
            }
            .into());
        }
        if let Some(line) = report.bad_signature {
            return Err(TrustError::AuditLogBroken {
                vault_id: self.trusted.vault_id().to_owned(),
                line,
                reason: "its checkpoint signature does not verify".into(),
            }
            .into());
        }
        let quorum = self.recombine(shares)?;
        let mut event = manifest_event("upgrade", &self.trusted)
            .detail("from", "unsigned audit lines (format 1)")
            .detail("operator", acting.name.clone());
        event.custodians = quorum.custodians.clone();
        let records = self.envelope_records("upgrade")?;
        let envelopes: Vec<String> = records
            .iter()
            .filter_map(|e| e.credential.clone())
            .collect();
        let choice = TokenChoice {
            pins,
            only: None,
            force_pin: false,
        };
        let lock = self.write_lock()?;
        // The token logs in with the PIN the quorum derives, and signs the checkpoint, before
        // anything is written.
        let closing = self.with_token(
            Some(quorum.secret.expose_secret()),
            choice,
            |session, enrollment, _, _| {
                let mut events = vec![event];
                events.extend(records);
                self.prepare_closing_all(events, session, &enrollment.label)
            },
        )?;
        self.append_closing(closing)?;
        drop(lock);
        Ok(HistorySigned {
            operator: acting.name,
            envelopes,
            unsigned_lines: report.entries,
        })
    }
}
