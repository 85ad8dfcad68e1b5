//! Enabling a recovery share set on a vault that has none: the quorum recombines, a recovery
//! secret is split for its members (a stricter threshold than the quorum's), and an enrolled
//! token adds a stanza for the recovery key to every credential. Two steps, so that the caller
//! hands the shares out before anything changes.

use secrecy::ExposeSecret;

use crate::manifest::Manifest;
use crate::quorum::Collector;
use crate::secret::SecretBytes;

use super::record::write_manifest;
use super::rewrap::{Change, Scope, rewrap};
use super::shares::{CustodianShare, RecoveryDef, describe_set, new_recovery_set};
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
}

impl std::fmt::Debug for RecoveryPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryPlan")
            .field("custodians", &self.custodians)
            .finish_non_exhaustive()
    }
}

impl Vault {
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
        self.manifest.check_pinned(pinned)?;
        if self.manifest.recovery.is_some() {
            return Err(
                VaultError::Layout("this vault has a recovery share set already".into()).into(),
            );
        }
        let quorum = self.recombine(shares)?;
        let (set, shares) = new_recovery_set(
            &self.manifest.vault_id,
            &self.manifest.quorum,
            def,
            iteration_exponent,
        )?;
        let mut manifest = self.manifest.clone();
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
    /// recorded under a signed checkpoint. Returns the new fingerprint.
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
        let recovery_key = hex::decode(&recovery.public_key).unwrap_or_default();
        let fingerprint = self.with_token(
            Some(plan.q.expose_secret()),
            token,
            |session, enrollment, key, _| {
                let lock = self.write_lock()?;
                let oracle = session.dh_oracle(key);
                rewrap(
                    self.envelope_files(Scope::Current)?,
                    &Change::Stanzas {
                        hsm: &oracle,
                        add: &recovery_key,
                        remove: &[],
                    },
                    |_| Ok(()),
                )?;
                let written = write_manifest(&self.store, &lock, &plan.manifest)?;
                let mut event = written
                    .event("recovery_enable")
                    .detail("recovery", describe_set(&recovery));
                event.custodians = plan.custodians.clone();
                self.append_signed(event, session, &enrollment.label)?;
                drop(lock);
                Ok(written.fingerprint)
            },
        )?;
        self.manifest = plan.manifest;
        Ok(fingerprint)
    }
}
