//! Rekey, first step (changes nothing): the old quorum recombines, a new quorum secret is
//! split for the new layout, and the recovery set is renewed, replaced or dropped.

use secrecy::ExposeSecret;

use crate::manifest::{Fingerprint, Manifest};
use crate::quorum::Collector;
use crate::secret::SecretBytes;
use crate::trust::identity::identity_fingerprint;
use crate::trust::quorum_key::QuorumSigningKey;

use super::super::shares::{
    CustodianShare, GroupDef, RecoveryDef, SetSpec, new_quorum_set, new_recovery_set,
    validate_groups,
};
use super::super::{Vault, VaultError};

/// What a rekey changes besides the quorum secret.
#[derive(Debug, Default)]
pub struct RekeyOptions {
    /// New custodians (the current ones when `None`).
    pub layout: Option<(u8, Vec<GroupDef>)>,
    /// SLIP-39 iteration exponent (the current one when `None`).
    pub iteration_exponent: Option<u8>,
    /// What happens to the recovery set.
    pub recovery: RecoveryChange,
}

/// The recovery set at a rekey.
#[derive(Debug, Default)]
pub enum RecoveryChange {
    /// Renewed (new secret and shares) with the same threshold and members, when there is one.
    #[default]
    Keep,
    /// Made anew with this layout.
    Set(RecoveryDef),
    /// Removed.
    Drop,
}

/// A rekey prepared by [`Vault::rekey_prepare`]: the new shares to hand out, then commit.
pub struct RekeyPlan {
    pub(super) old_q: SecretBytes,
    pub(super) new_q: SecretBytes,
    pub(super) manifest: Manifest,
    pub(super) identity: Fingerprint,
    pub(super) shares: Vec<CustodianShare>,
    pub(super) custodians: Vec<String>,
}

impl RekeyPlan {
    /// The manifest the rekey installs.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The vault identity after the rekey (what the new share cards carry).
    pub fn identity(&self) -> String {
        self.identity.display()
    }
    /// The new shares, one per custodian.
    pub fn shares(&self) -> &[CustodianShare] {
        &self.shares
    }
    /// Remembers exactly `recipients` in the manifest the rekey installs (by default the
    /// continuing custodians keep theirs), see [`Manifest::set_recipients`].
    pub fn set_recipients(
        &mut self,
        recipients: std::collections::BTreeMap<String, String>,
    ) -> Result<(), crate::Error> {
        Ok(self.manifest.set_recipients(recipients)?)
    }
}

impl std::fmt::Debug for RekeyPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RekeyPlan")
            .field("custodians", &self.custodians)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// The recovery set a rekey to `groups` makes: renewed with the same threshold and members
    /// by default (following the custodians when it was made of all of them), as given, or none.
    pub fn rekey_recovery(
        &self,
        groups: &[GroupDef],
        change: RecoveryChange,
    ) -> Option<RecoveryDef> {
        match (change, &self.manifest().recovery) {
            (RecoveryChange::Drop, _) | (RecoveryChange::Keep, None) => None,
            (RecoveryChange::Set(def), _) => Some(def),
            (RecoveryChange::Keep, Some(current)) => {
                let members: Vec<String> = current
                    .groups
                    .iter()
                    .flat_map(|g| g.members.iter().map(|m| m.name.clone()))
                    .collect();
                let mut sorted_members = members.clone();
                sorted_members.sort();
                let mut old_custodians: Vec<String> = self
                    .manifest()
                    .custodian_names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                old_custodians.sort();
                Some(RecoveryDef {
                    threshold: current.groups.first().map_or(0, |g| g.threshold),
                    members: if sorted_members == old_custodians {
                        groups.iter().flat_map(|g| g.members.clone()).collect()
                    } else {
                        members
                    },
                })
            }
        }
    }

    /// Rekey, first step (changes nothing): the current quorum recombines; a new quorum secret
    /// is split for `layout` (the current one when `None`). The caller hands the new shares out
    /// (writes and checks the share files) before [`Vault::rekey_commit`].
    pub fn rekey_prepare(
        &self,
        shares: &Collector,
        options: RekeyOptions,
        pinned: &str,
    ) -> Result<RekeyPlan, crate::Error> {
        self.check_identity(pinned)?;
        let old = self
            .recombine(shares)
            .inspect_err(|error| self.record_failure("rekey", error, Some(shares), |_| {}))?;
        let RekeyOptions {
            layout,
            iteration_exponent,
            recovery,
        } = options;
        let (group_threshold, groups) = layout.unwrap_or_else(|| self.layout());
        validate_groups(group_threshold, &groups)?;
        let spec = SetSpec {
            group_threshold,
            groups: &groups,
            iteration_exponent: iteration_exponent
                .unwrap_or(self.manifest().quorum.iteration_exponent),
            recovery: false,
        };
        let vault_id = &self.manifest().vault_id;
        let (new_q, quorum, mut all_shares) = loop {
            let (new_q, quorum, new_shares) = new_quorum_set(vault_id, &spec)?;
            // A new identifier, so an old share is told apart from a new one at once.
            if quorum.identifier != self.manifest().quorum.identifier {
                break (new_q, quorum, new_shares);
            }
        };
        // The recovery set is renewed too (its old shares stop working as well), unless it is
        // dropped: same threshold and members by default, following the custodians when it
        // was made of all of them.
        let recovery_set = match self.rekey_recovery(&groups, recovery) {
            Some(def) => {
                let (set, shares) =
                    new_recovery_set(vault_id, &quorum, &def, spec.iteration_exponent).map_err(
                        |e| match e {
                            crate::Error::Vault(VaultError::Layout(reason)) => {
                                crate::Error::Vault(VaultError::Layout(format!(
                                    "{reason} (the recovery set is renewed with the rekey: give \
                                     --recovery-threshold, or --no-recovery to drop it)"
                                )))
                            }
                            other => other,
                        },
                    )?;
                all_shares.extend(shares);
                Some(set)
            }
            None => None,
        };
        let mut manifest = self.manifest().clone();
        manifest.quorum = quorum;
        manifest.recovery = recovery_set;
        // Continuing custodians keep their recipients (the caller may change them with
        // [`RekeyPlan::set_recipients`]); those who leave take theirs along.
        let continuing = manifest
            .recipients
            .iter()
            .filter(|(name, _)| {
                std::iter::once(&manifest.quorum)
                    .chain(manifest.recovery.as_ref())
                    .flat_map(|set| set.groups.iter())
                    .any(|g| g.members.iter().any(|m| &m.name == *name))
            })
            .map(|(name, recipient)| (name.clone(), recipient.clone()))
            .collect();
        manifest.set_recipients(continuing)?;
        let new_key = QuorumSigningKey::derive(new_q.expose_secret(), vault_id)?;
        let identity = identity_fingerprint(vault_id, &manifest.quorum, &new_key.public_key());
        Ok(RekeyPlan {
            old_q: old.secret,
            new_q,
            manifest,
            identity,
            shares: all_shares,
            custodians: old.custodians,
        })
    }
}
