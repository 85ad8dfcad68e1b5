//! What the vault writes into its audit log: plain appends under the writers' lock, appends
//! followed by a checkpoint signed by the token's audit key, and the entry that records a new
//! certified manifest version (its identity, version and certificate digest).

use crate::audit::{Actor, Event, Head, LineRecord, LineWriter, Prepared, Repaired};
use crate::hsm::TokenSession;
use crate::trust::audit_line::{
    CUSTODIAN_EVENTS, EntryActor, custodian_line, operator_line, quorum_line,
};
use crate::trust::{AuthenticatedManifest, OperatorKey};

use crate::store::WriteLock;

use super::{Vault, now};

/// The event that records a torn tail moved aside.
pub const AUDIT_REPAIR: &str = "audit_repair";

/// An audit entry `name` recording the manifest version `trusted`.
pub(super) fn manifest_event(name: &str, trusted: &AuthenticatedManifest) -> Event {
    Event::new(name)
        .detail("fingerprint", trusted.identity().display())
        .detail("manifest_version", trusted.version().to_string())
        .detail("manifest_digest", trusted.digest_hex())
}

/// Writes the vault's audit lines in format 2: signed by this machine's operator when it holds
/// an operator's key; otherwise unsigned, as a custodian's line (`share_verify`,
/// `ceremony_contribute`) or a quorum holder's (`user@host`), which may record no change of the
/// vault (see `trust::audit_line`).
pub(crate) struct VaultWriter<'a> {
    manifest: &'a AuthenticatedManifest,
    operator: Option<(OperatorKey, String)>,
}

impl LineWriter for VaultWriter<'_> {
    fn line(&self, record: &LineRecord) -> Result<Vec<u8>, crate::Error> {
        Ok(match &self.operator {
            Some((key, name)) => operator_line(
                self.manifest,
                &record.body(EntryActor::Operator(name.clone())),
                key,
            )?,
            None if CUSTODIAN_EVENTS.contains(&record.event.event.as_str()) => {
                let name = record
                    .event
                    .custodians
                    .first()
                    .cloned()
                    .unwrap_or_else(|| user_at_host(&Actor::current()));
                custodian_line(&record.body(EntryActor::Custodian(name)))?
            }
            None => quorum_line(&record.body(EntryActor::Quorum(user_at_host(&Actor::current()))))?,
        })
    }
}

fn user_at_host(actor: &Actor) -> String {
    format!("{}@{}", actor.user, actor.host)
}

/// An audit entry ready to append: signed by a checkpoint made already, or plain (the session
/// was not on the token holding the audit key).
pub(super) enum Closing {
    /// The entry and its checkpoint.
    Signed(Box<Prepared>),
    /// The entries alone.
    Plain(Vec<Event>),
}

impl Vault {
    /// Who writes this machine's audit lines: its operator, found by the key in its
    /// configuration directory when that key is an operator's of the vault; else nobody's
    /// (unsigned lines that record no change).
    pub(crate) fn writer(&self) -> Result<VaultWriter<'_>, crate::Error> {
        let operator = OperatorKey::load(&self.config, self.trusted.vault_id())?.and_then(|key| {
            let public = key.public_key().to_hex();
            self.trusted
                .operators()
                .iter()
                .find(|o| o.public_key == public)
                .map(|o| o.name.clone())
                .map(|name| (key, name))
        });
        Ok(VaultWriter {
            manifest: &self.trusted,
            operator,
        })
    }

    /// This machine's writer of audit lines (see [`Vault::writer`]), for tools that write
    /// lines of their own (the bench's vault grower).
    pub fn line_writer(&self) -> Result<Box<dyn LineWriter + '_>, crate::Error> {
        Ok(Box::new(self.writer()?))
    }

    /// Appends `event` and, when `session` is on the token holding the audit key, a checkpoint
    /// signing it, in one write (the caller holds the writers' lock): signed first, so a token
    /// that fails leaves the log untouched, and written together, so a full disk leaves neither.
    pub(super) fn append_signed(
        &self,
        event: Event,
        session: &TokenSession<'_>,
        token_label: &str,
    ) -> Result<(), crate::Error> {
        self.append_signed_all(vec![event], session, token_label)
    }

    /// As [`Vault::append_signed`] for several events, in one write.
    pub(super) fn append_signed_all(
        &self,
        events: Vec<Event>,
        session: &TokenSession<'_>,
        token_label: &str,
    ) -> Result<(), crate::Error> {
        let closing = self.prepare_closing_all(events, session, token_label)?;
        self.append_closing(closing)
    }

    /// What [`Vault::append_signed`] would append, with the checkpoint signed now (the token
    /// operation) and nothing written: see [`Vault::append_closing`].
    pub(super) fn prepare_closing(
        &self,
        event: Event,
        session: &TokenSession<'_>,
        token_label: &str,
    ) -> Result<Closing, crate::Error> {
        self.prepare_closing_all(vec![event], session, token_label)
    }

    /// As [`Vault::prepare_closing`] for several events (one checkpoint after the last).
    pub(super) fn prepare_closing_all(
        &self,
        events: Vec<Event>,
        session: &TokenSession<'_>,
        token_label: &str,
    ) -> Result<Closing, crate::Error> {
        if self.manifest().audit.token != token_label {
            return Ok(Closing::Plain(events));
        }
        self.hold_token_head(session, token_label)?;
        let prepared = self.audit().prepare_signed_all(
            events,
            &session.audit_signer(&self.keys.audit_key_id),
            &self.writer()?,
            &now(),
        )?;
        Ok(Closing::Signed(Box::new(prepared)))
    }

    /// Appends what [`Vault::prepare_closing`] made (the caller holds the writers' lock).
    pub(super) fn append_closing(&self, closing: Closing) -> Result<(), crate::Error> {
        match closing {
            Closing::Signed(prepared) => {
                self.audit().append_prepared(*prepared)?;
                self.forget_recorded();
                let _ = self.follow_audit();
            }
            Closing::Plain(events) => {
                self.append_all(events)?;
            }
        }
        Ok(())
    }

    /// Takes the writers' lock and refuses when the audit log ends with a torn write: every
    /// operation that changes the vault takes its lock here, before it writes anything.
    pub(super) fn write_lock(&self) -> Result<WriteLock, crate::Error> {
        let lock = self.store.lock()?;
        self.audit().refuse_torn_tail()?;
        self.settle_staged(&lock);
        Ok(lock)
    }

    /// Appends an event to the audit log under the writers' lock.
    pub fn record(&self, event: Event) -> Result<Head, crate::Error> {
        let _lock = self.write_lock()?;
        self.append(event)
    }

    /// Moves a torn tail of the audit log aside (into `audit.jsonl.torn-<time>` beside it) and
    /// records an `audit_repair` entry naming that file, the torn bytes' length and SHA-256.
    /// `None`: the log had no torn tail, and nothing was written.
    pub fn repair_audit(&self) -> Result<Option<Repaired>, crate::Error> {
        let _lock = self.store.lock()?;
        self.repair_audit_locked()
    }

    fn repair_audit_locked(&self) -> Result<Option<Repaired>, crate::Error> {
        let stamp = crate::clock::rfc3339(crate::clock::now_unix()).replace(':', "");
        let Some(repaired) = self.audit().repair(&stamp)? else {
            return Ok(None);
        };
        let moved_to = repaired
            .moved_to
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.append(
            Event::new(AUDIT_REPAIR)
                .detail("torn_line", repaired.tail.line.to_string())
                .detail("torn_bytes", repaired.tail.len.to_string())
                .detail("torn_sha256", repaired.sha256.clone())
                .detail("moved_to", moved_to),
        )?;
        Ok(Some(repaired))
    }

    /// Appends `event` under the writers' lock even when the audit log ends with a torn write:
    /// the torn bytes are moved aside first, as [`Vault::repair_audit`] does (for `recover`,
    /// the way in when nothing else works, which must neither be refused nor go unrecorded).
    pub(super) fn record_repairing(
        &self,
        event: Event,
    ) -> Result<(Head, Option<Repaired>), crate::Error> {
        let _lock = self.store.lock()?;
        let repaired = self.repair_audit_locked()?;
        Ok((self.append(event)?, repaired))
    }

    /// Appends an event (the caller holds the writers' lock).
    pub(super) fn append(&self, event: Event) -> Result<Head, crate::Error> {
        self.append_all(vec![event])
    }

    /// Appends events in one write (the caller holds the writers' lock).
    pub(super) fn append_all(&self, events: Vec<Event>) -> Result<Head, crate::Error> {
        let head = self.audit().append_all(events, &self.writer()?, &now())?;
        self.forget_recorded();
        let _ = self.follow_audit();
        Ok(head)
    }
}
