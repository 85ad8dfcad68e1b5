//! What the vault writes into its audit log: plain appends under the writers' lock, appends
//! followed by a checkpoint signed by the token's audit key, and the entry that records a new
//! certified manifest version (its identity, version and certificate digest).

use crate::audit::{Actor, Event, Head, Prepared};
use crate::hsm::TokenSession;
use crate::trust::AuthenticatedManifest;

use super::{Vault, now};

/// An audit entry `name` recording the manifest version `trusted`.
pub(super) fn manifest_event(name: &str, trusted: &AuthenticatedManifest) -> Event {
    Event::new(name)
        .detail("fingerprint", trusted.identity().display())
        .detail("manifest_version", trusted.version().to_string())
        .detail("manifest_digest", trusted.digest_hex())
}

/// An audit entry ready to append: signed by a checkpoint made already, or plain (the session
/// was not on the token holding the audit key).
pub(super) enum Closing {
    /// The entry and its checkpoint.
    Signed(Box<Prepared>),
    /// The entry alone.
    Plain(Event),
}

impl Vault {
    /// Appends `event` and, when `session` is on the token holding the audit key, a checkpoint
    /// signing it (the caller holds the writers' lock).
    pub(super) fn append_signed(
        &self,
        event: Event,
        session: &TokenSession<'_>,
        token_label: &str,
    ) -> Result<(), crate::Error> {
        let audit = self.audit();
        let actor = Actor::current();
        let now = now();
        audit.append(event, &actor, &now)?;
        if self.manifest().audit.token == token_label {
            audit.append_checkpoint(
                &session.audit_signer(&self.keys.audit_key_id),
                &actor,
                &now,
            )?;
        }
        Ok(())
    }

    /// What [`Vault::append_signed`] would append, with the checkpoint signed now (the token
    /// operation) and nothing written: see [`Vault::append_closing`].
    pub(super) fn prepare_closing(
        &self,
        event: Event,
        session: &TokenSession<'_>,
        token_label: &str,
    ) -> Result<Closing, crate::Error> {
        if self.manifest().audit.token != token_label {
            return Ok(Closing::Plain(event));
        }
        let prepared = self.audit().prepare_signed(
            event,
            &session.audit_signer(&self.keys.audit_key_id),
            &Actor::current(),
            &now(),
        )?;
        Ok(Closing::Signed(Box::new(prepared)))
    }

    /// Appends what [`Vault::prepare_closing`] made (the caller holds the writers' lock).
    pub(super) fn append_closing(&self, closing: Closing) -> Result<(), crate::Error> {
        match closing {
            Closing::Signed(prepared) => {
                self.audit().append_prepared(*prepared)?;
            }
            Closing::Plain(event) => {
                self.append(event)?;
            }
        }
        Ok(())
    }

    /// Appends an event to the audit log under the writers' lock.
    pub fn record(&self, event: Event) -> Result<Head, crate::Error> {
        let _lock = self.store.lock()?;
        self.append(event)
    }

    /// Appends an event (the caller holds the writers' lock).
    pub(super) fn append(&self, event: Event) -> Result<Head, crate::Error> {
        Ok(self.audit().append(event, &Actor::current(), &now())?)
    }
}
