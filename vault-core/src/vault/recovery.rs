//! Enabling a recovery share set on a vault that has none: the quorum recombines, a recovery
//! secret is split for its members (a stricter threshold than the quorum's), and an enrolled
//! token adds a stanza for the recovery key to every credential. Two steps, so that the caller
//! hands the shares out before anything changes.

use secrecy::ExposeSecret;

use crate::manifest::Manifest;
use crate::quorum::Collector;
use crate::secret::SecretBytes;
use crate::trust::quorum_key::QuorumSigningKey;

use super::record::manifest_event;
use super::rewrap::{Change, Scope, rewrap};
use super::shares::{CustodianShare, RecoveryDef, describe_set, new_recovery_set};
use super::tokens::PinProvider;
use super::{TokenChoice, Vault, VaultError};

/// A recovery set prepared by [`Vault::recovery_prepare`]: its shares to hand out, then commit.
pub struct RecoveryPlan {
    q: SecretBytes,
    manifest: Manifest,
    shares: Vec<CustodianShare>,
    custodians: Vec<String>,
}

impl RecoveryPlan {
    /// The manifest with the recovery set.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The recovery shares, one per member.
    pub fn shares(&self) -> &[CustodianShare] {
        &self.shares
    }
    /// Remembers exactly `recipients` in the manifest (by default those remembered already),
    /// see [`Manifest::set_recipients`].
    pub fn set_recipients(
        &mut self,
        recipients: std::collections::BTreeMap<String, String>,
    ) -> Result<(), crate::Error> {
        Ok(self.manifest.set_recipients(recipients)?)
    }
}

impl std::fmt::Debug for RecoveryPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryPlan")
            .field("custodians", &self.custodians)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Whether the recovery set in force was enabled by a run interrupted after writing
    /// `vault.json` and before its entry (no audit entry records the manifest): running
    /// `recovery enable` again records it ([`Vault::record_interrupted_recovery`]) and makes no
    /// new set; the recovery shares that run handed out (before it wrote anything) are the
    /// ones in force.
    pub fn recovery_unrecorded(&self) -> Result<bool, crate::Error> {
        Ok(self.manifest().recovery.is_some() && !self.manifest_recorded()?)
    }

    /// Records the `recovery_enable` entry of a recovery set in force that no entry records
    /// ([`Vault::recovery_unrecorded`]), with a quorum (`shares`) and, when the token holding
    /// the audit key is present, its checkpoint; nothing else changes. Returns the set, as the
    /// entry describes it.
    pub fn record_interrupted_recovery(
        &self,
        shares: &Collector,
        pins: &dyn PinProvider,
        pinned: &str,
    ) -> Result<String, crate::Error> {
        self.check_identity(pinned)?;
        let recovery = self
            .manifest()
            .recovery
            .clone()
            .ok_or(VaultError::NoRecovery)?;
        if !self.recovery_unrecorded()? {
            return Err(VaultError::Layout(
                "the recovery share set in force is recorded already".into(),
            )
            .into());
        }
        let described = describe_set(&recovery);
        let event =
            manifest_event("recovery_enable", &self.trusted).detail("recovery", described.clone());
        self.record_late(shares, event, "enabling recovery", pins)?;
        Ok(described)
    }

    /// The recipients of token-layer stanzas in `files` that are no enrolled token's key (the
    /// vault has no recovery set yet, so none is a recovery key in force): what a `recovery
    /// enable` killed after rewriting envelopes and before writing `vault.json` added for its
    /// recovery key. That run wrote its recovery shares first; they are void, but with a
    /// quorum they would still open those envelopes, so the next run removes the stanzas.
    fn unknown_stanzas(&self, files: &[super::rewrap::EnvelopeFile]) -> Vec<Vec<u8>> {
        let known: Vec<String> = self
            .keys
            .tokens
            .iter()
            .map(|t| hex::encode(&t.seal_public_key))
            .collect();
        let stale: std::collections::BTreeSet<Vec<u8>> = files
            .iter()
            .flat_map(|f| f.envelope.hsm_stanzas.iter())
            .filter(|s| !known.contains(&s.recipient))
            .filter_map(|s| hex::decode(&s.recipient).ok())
            .collect();
        stale.into_iter().collect()
    }

    /// Recovery, first step (changes nothing): the quorum recombines and a recovery secret is
    /// split for `def`. The caller hands the recovery shares out before
    /// [`Vault::recovery_commit`].
    pub fn recovery_prepare(
        &self,
        shares: &Collector,
        def: &RecoveryDef,
        iteration_exponent: u8,
        pinned: &str,
    ) -> Result<RecoveryPlan, crate::Error> {
        self.check_identity(pinned)?;
        if self.manifest().recovery.is_some() {
            return Err(
                VaultError::Layout("this vault has a recovery share set already".into()).into(),
            );
        }
        let quorum = self.recombine(shares)?;
        let (set, shares) = new_recovery_set(
            &self.manifest().vault_id,
            &self.manifest().quorum,
            def,
            iteration_exponent,
        )?;
        let mut manifest = self.manifest().clone();
        manifest.recovery = Some(set);
        Ok(RecoveryPlan {
            q: quorum.secret,
            manifest,
            shares,
            custodians: quorum.custodians,
        })
    }

    /// Recovery, second step: an enrolled token adds a stanza for the recovery key to every
    /// credential (only the token half of each file key is opened), then the new manifest is
    /// certified by the quorum as the next version and recorded under a signed checkpoint.
    /// Returns the vault identity (unchanged).
    pub fn recovery_commit(
        &mut self,
        plan: RecoveryPlan,
        token: TokenChoice<'_>,
    ) -> Result<String, crate::Error> {
        let recovery = plan
            .manifest
            .recovery
            .clone()
            .ok_or(VaultError::NoRecovery)?;
        let quorum_key =
            QuorumSigningKey::derive(plan.q.expose_secret(), &self.manifest().vault_id)?;
        let trusted = self.trusted.certify_next(
            plan.manifest.clone(),
            self.trusted.operators().to_vec(),
            &quorum_key,
        )?;
        let recovery_key = trusted
            .manifest()
            .keys()?
            .recovery
            .ok_or(VaultError::NoRecovery)?;
        let (closing, lock) = self.with_token(
            Some(plan.q.expose_secret()),
            token,
            |session, enrollment, key, _| {
                let lock = self.write_lock()?;
                let oracle = session.dh_oracle(key);
                let files = self.envelope_files(Scope::Current)?;
                let stale = self.unknown_stanzas(&files);
                rewrap(
                    files,
                    &Change::Stanzas {
                        hsm: &oracle,
                        add: &recovery_key,
                        remove: &stale,
                    },
                    |_| Ok(()),
                )?;
                let mut event = manifest_event("recovery_enable", &trusted)
                    .detail("recovery", describe_set(&recovery));
                event.custodians = plan.custodians.clone();
                // Signed before the manifest is installed: the checkpoint is the token's, and
                // nothing is written unless it succeeds.
                let closing = self.prepare_closing(event, session, &enrollment.label)?;
                Ok((closing, lock))
            },
        )?;
        self.install(&lock, trusted)?;
        // A crash here leaves a recovery set in force that no entry records: running
        // `recovery enable` again records it ([`Vault::record_interrupted_recovery`]).
        crate::fault::point("recovery-after-manifest")?;
        self.append_closing(closing)?;
        drop(lock);
        Ok(self.identity())
    }
}
