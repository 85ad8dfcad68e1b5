//! Share sets: splitting the quorum secret (and the recovery secret) for a custodian layout
//! with a salted commitment per share, recombining collected shares into the quorum key or
//! the recovery key and naming whose shares they were, and checking a layout before anything
//! is made from it.

use std::collections::{BTreeMap, BTreeSet};

use secrecy::ExposeSecret;

use crate::hpke::{DhOracle, P256SecretKey, X25519SecretKey};
use crate::manifest::{self, Custodian, Group, Manifest, Quorum};
use crate::quorum::{self, Collector, GroupSpec, QuorumError, Share, SplitParams};
use crate::secret::SecretBytes;

use super::{QUORUM_SECRET_BYTES, Vault, VaultError, random_bytes};

/// The group name of a recovery share set.
pub const RECOVERY_GROUP: &str = "recovery";

/// One group of custodians as given at init.
#[derive(Debug, Clone)]
pub struct GroupDef {
    /// The group's name.
    pub name: String,
    /// Members needed.
    pub threshold: u8,
    /// The members' names, in order.
    pub members: Vec<String>,
}

/// A recovery share set to make: one group of `members`, `threshold` of them needed (more
/// than the normal quorum needs).
#[derive(Debug, Clone)]
pub struct RecoveryDef {
    /// Members needed.
    pub threshold: u8,
    /// The members' names, in order.
    pub members: Vec<String>,
}

/// A custodian's share, as `init` hands it out.
pub struct CustodianShare {
    /// The custodian.
    pub custodian: String,
    /// Their group's name.
    pub group: String,
    /// Whether it is a share of the recovery set (not of the quorum).
    pub recovery: bool,
    /// The share.
    pub share: Share,
}

impl std::fmt::Debug for CustodianShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustodianShare")
            .field("custodian", &self.custodian)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// Collected shares recombined into this vault's quorum secret.
pub struct Recombined {
    /// The quorum secret.
    pub secret: SecretBytes,
    /// The quorum key derived from it (it matches the manifest's).
    pub key: X25519SecretKey,
    /// The custodians whose shares were used.
    pub custodians: Vec<String>,
    /// Shares that were given but did not fit (position, custodian if known).
    pub rejected: Vec<(usize, Option<String>)>,
}

impl std::fmt::Debug for Recombined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recombined")
            .field("custodians", &self.custodians)
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

/// The recovery key from the recovery shares, with the members whose shares were used.
pub(super) struct RecoveryKey {
    pub key: P256SecretKey,
    pub custodians: Vec<String>,
}

/// How a share set is made: the layout, the SLIP-39 iteration exponent, and which set it is.
pub(super) struct SetSpec<'a> {
    pub group_threshold: u8,
    pub groups: &'a [GroupDef],
    pub iteration_exponent: u8,
    pub recovery: bool,
}

impl Vault {
    /// The custodian a share belongs to, by the manifest's commitments.
    pub fn custodian_of(&self, share: &Share) -> Option<String> {
        custodian_in(self.manifest(), share)
    }

    /// The custodian a recovery share belongs to, by the recovery set's commitments.
    pub fn recovery_custodian_of(&self, share: &Share) -> Option<String> {
        self.manifest()
            .recovery
            .as_ref()?
            .verify_share(&self.manifest().vault_id, share)
            .map(|c| c.name.clone())
    }

    /// Recombines the collected shares into the quorum key, checking it against the manifest.
    pub fn recombine(&self, shares: &Collector) -> Result<Recombined, crate::Error> {
        recombine_against(self.manifest(), shares)
    }
}

/// The custodian a share belongs to, by `manifest`'s commitments.
fn custodian_in(manifest: &Manifest, share: &Share) -> Option<String> {
    manifest.verify_share(share).map(|c| c.name.clone())
}

/// Recombines the collected shares into the quorum key, checking it against `manifest` (which
/// need not be authenticated yet: the upgrade of a format-1 vault recombines before it can
/// certify anything).
pub(super) fn recombine_against(
    manifest: &Manifest,
    shares: &Collector,
) -> Result<Recombined, crate::Error> {
    let combined = shares
        .combine(b"")
        .map_err(|e| name_shortfall(manifest, shares, e))?;
    let key = X25519SecretKey::derive_key_pair(combined.secret.expose_secret());
    if hex::encode(key.public_key()) != manifest.quorum.public_key {
        return Err(VaultError::WrongQuorum.into());
    }
    let by_position: BTreeMap<usize, &Share> = shares.shares().collect();
    let name = |p: &usize| by_position.get(p).and_then(|s| custodian_in(manifest, s));
    let custodians = combined
        .used
        .iter()
        .map(|p| name(p).unwrap_or_else(|| format!("share {p}")))
        .collect();
    let rejected = combined.rejected.iter().map(|p| (*p, name(p))).collect();
    Ok(Recombined {
        secret: combined.secret,
        key,
        custodians,
        rejected,
    })
}

/// A quorum that is not met, said with the groups' and custodians' names: which group needs
/// how many more, whose shares it has and whose it could still take. Other errors pass.
fn name_shortfall(manifest: &Manifest, shares: &Collector, error: QuorumError) -> crate::Error {
    let QuorumError::NotEnoughShares {
        groups_needed,
        shortfall,
    } = &error
    else {
        return error.into();
    };
    let groups = &manifest.quorum.groups;
    let mut given: BTreeMap<u8, Vec<String>> = BTreeMap::new();
    for (position, share) in shares.shares() {
        let name = custodian_in(manifest, share).unwrap_or_else(|| format!("share {position}"));
        given
            .entry(share.info().group_index)
            .or_default()
            .push(name);
    }
    let mut parts = Vec::new();
    for (group, have, need) in shortfall {
        let index = usize::from(group.saturating_sub(1));
        let Some(def) = groups.get(index) else {
            return error.into();
        };
        let has = given.get(&(group - 1)).cloned().unwrap_or_default();
        let could: Vec<&str> = def
            .members
            .iter()
            .map(|m| m.name.as_str())
            .filter(|m| !has.iter().any(|h| h == m))
            .collect();
        parts.push(format!(
            "group {:?} needs {} more (has {have} of {need}: {}) of {}",
            def.name,
            need - have,
            has.join(", "),
            could.join(", ")
        ));
    }
    let unstarted: Vec<String> = groups
        .iter()
        .enumerate()
        .filter(|(i, _)| !given.contains_key(&(*i as u8)))
        .map(|(_, g)| format!("{:?} ({} of {})", g.name, g.threshold, g.members.len()))
        .collect();
    if usize::from(*groups_needed) > shortfall.len() && !unstarted.is_empty() {
        parts.push(format!(
            "{} more group{} to complete, of {}",
            usize::from(*groups_needed) - shortfall.len(),
            if usize::from(*groups_needed) - shortfall.len() == 1 {
                ""
            } else {
                "s"
            },
            unstarted.join(", ")
        ));
    }
    VaultError::NotEnoughShares {
        detail: parts.join("; "),
        cause: error,
    }
    .into()
}

impl Vault {
    /// The recovery key from the recovery shares, checked against the manifest.
    pub(super) fn recovery_key(
        &self,
        recovery_shares: &Collector,
    ) -> Result<RecoveryKey, crate::Error> {
        let recovery = self
            .manifest()
            .recovery
            .as_ref()
            .ok_or(VaultError::NoRecovery)?;
        let combined = recovery_shares.combine(b"")?;
        let key = P256SecretKey::derive_key_pair(combined.secret.expose_secret())?;
        if hex::encode(key.public_key_bytes()) != recovery.public_key {
            return Err(VaultError::WrongRecovery.into());
        }
        let by_position: BTreeMap<usize, &Share> = recovery_shares.shares().collect();
        let custodians = combined
            .used
            .iter()
            .map(|p| {
                by_position
                    .get(p)
                    .and_then(|s| self.recovery_custodian_of(s))
                    .unwrap_or_else(|| format!("share {p}"))
            })
            .collect();
        Ok(RecoveryKey { key, custodians })
    }

    /// The quorum and the recovery key from the two share sets (the tokenless path).
    pub(super) fn recovery_keys(
        &self,
        shares: &Collector,
        recovery_shares: &Collector,
    ) -> Result<(Recombined, RecoveryKey), crate::Error> {
        if self.manifest().recovery.is_none() {
            return Err(VaultError::NoRecovery.into());
        }
        Ok((self.recombine(shares)?, self.recovery_key(recovery_shares)?))
    }

    /// The current custodian layout, as init would take it.
    pub fn layout(&self) -> (u8, Vec<GroupDef>) {
        (
            self.manifest().quorum.group_threshold,
            self.manifest()
                .quorum
                .groups
                .iter()
                .map(|g| GroupDef {
                    name: g.name.clone(),
                    threshold: g.threshold,
                    members: g.members.iter().map(|m| m.name.clone()).collect(),
                })
                .collect(),
        )
    }
}

/// Splits `secret` into the share set `spec` describes, with a salted commitment per share,
/// and checks every share against its commitment. `public_key` is the key the secret derives.
pub(super) fn make_share_set(
    vault_id: &str,
    secret: &[u8],
    spec: &SetSpec<'_>,
    public_key: String,
) -> Result<(Quorum, Vec<CustodianShare>), crate::Error> {
    let params = SplitParams {
        group_threshold: spec.group_threshold,
        groups: spec
            .groups
            .iter()
            .map(|g| GroupSpec {
                threshold: g.threshold,
                count: g.members.len() as u8,
            })
            .collect(),
        iteration_exponent: spec.iteration_exponent,
        extendable: true,
    };
    let split = quorum::split(secret, b"", &params)?;
    let mut shares_out = Vec::new();
    let mut groups_out = Vec::new();
    for (group_def, group_shares) in spec.groups.iter().zip(split) {
        let mut members = Vec::new();
        for (name, share) in group_def.members.iter().zip(group_shares) {
            let salt = random_bytes(32)?;
            members.push(Custodian {
                name: name.clone(),
                commitment_salt: hex::encode(salt.as_slice()),
                commitment: manifest::share_commitment(vault_id, &salt, &share),
            });
            shares_out.push(CustodianShare {
                custodian: name.clone(),
                group: group_def.name.clone(),
                recovery: spec.recovery,
                share,
            });
        }
        groups_out.push(Group {
            name: group_def.name.clone(),
            threshold: group_def.threshold,
            members,
        });
    }
    let set = Quorum {
        group_threshold: spec.group_threshold,
        groups: groups_out,
        identifier: shares_out
            .first()
            .map(|s| s.share.info().identifier)
            .unwrap_or_default(),
        iteration_exponent: spec.iteration_exponent,
        extendable: true,
        public_key,
    };
    for issued in &shares_out {
        if set
            .verify_share(vault_id, &issued.share)
            .map(|c| c.name.as_str())
            != Some(issued.custodian.as_str())
        {
            return Err(VaultError::Layout(format!(
                "the share issued to {} does not match its commitment",
                issued.custodian
            ))
            .into());
        }
    }
    Ok((set, shares_out))
}

/// A fresh quorum secret split for a layout: the secret, its share set and the shares.
pub(super) fn new_quorum_set(
    vault_id: &str,
    spec: &SetSpec<'_>,
) -> Result<(SecretBytes, Quorum, Vec<CustodianShare>), crate::Error> {
    let q = random_bytes(QUORUM_SECRET_BYTES)?;
    let key = X25519SecretKey::derive_key_pair(&q);
    let (set, shares) = make_share_set(vault_id, &q, spec, hex::encode(key.public_key_bytes()))?;
    Ok((SecretBytes::from(q.to_vec()), set, shares))
}

/// Checks a recovery layout against the quorum: it must need more shares than the quorum does
/// (otherwise it would be a way around the token that is no harder than the normal path).
pub fn validate_recovery(quorum: &Quorum, def: &RecoveryDef) -> Result<(), crate::Error> {
    validate_recovery_against(quorum.minimum_shares(), def)
}

/// As [`validate_recovery`], against a quorum met with `normal` shares.
pub(super) fn validate_recovery_against(
    normal: usize,
    def: &RecoveryDef,
) -> Result<(), crate::Error> {
    validate_groups(1, std::slice::from_ref(&recovery_group(def)))?;
    if usize::from(def.threshold) <= normal {
        return Err(VaultError::Layout(format!(
            "the recovery threshold ({}) must be stricter than the quorum, which can be met with {normal} \
             shares: use at least {}",
            def.threshold,
            normal + 1
        ))
        .into());
    }
    Ok(())
}

fn recovery_group(def: &RecoveryDef) -> GroupDef {
    GroupDef {
        name: RECOVERY_GROUP.into(),
        threshold: def.threshold,
        members: def.members.clone(),
    }
}

/// A fresh recovery secret, its share set and its key, for `def`.
pub(super) fn new_recovery_set(
    vault_id: &str,
    quorum: &Quorum,
    def: &RecoveryDef,
    iteration_exponent: u8,
) -> Result<(Quorum, Vec<CustodianShare>), crate::Error> {
    validate_recovery(quorum, def)?;
    let r = random_bytes(QUORUM_SECRET_BYTES)?;
    let key = P256SecretKey::derive_key_pair(&r)?;
    make_share_set(
        vault_id,
        &r,
        &SetSpec {
            group_threshold: 1,
            groups: &[recovery_group(def)],
            iteration_exponent,
            recovery: true,
        },
        hex::encode(key.public_key_bytes()),
    )
}

/// "4 of alice,bob,..." for the audit log.
pub(super) fn describe_set(set: &Quorum) -> String {
    set.groups
        .iter()
        .map(|g| {
            format!(
                "{} of {}",
                g.threshold,
                g.members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks a custodian layout: members named with safe characters, nobody twice, thresholds
/// SLIP-39 can split for.
pub(super) fn validate_groups(
    group_threshold: u8,
    groups: &[GroupDef],
) -> Result<(), crate::Error> {
    let mut names = BTreeSet::new();
    for group in groups {
        if group.members.is_empty() {
            return Err(
                VaultError::Layout(format!("group {:?} has no members", group.name)).into(),
            );
        }
        for member in &group.members {
            if member.trim().is_empty()
                || !member
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
            {
                return Err(VaultError::Layout(format!(
                    "custodian name {member:?}: use letters, digits, '.', '_', '-', '@'"
                ))
                .into());
            }
            if !names.insert(member.clone()) {
                return Err(
                    VaultError::Layout(format!("custodian {member:?} appears twice")).into(),
                );
            }
        }
    }
    let params = SplitParams {
        group_threshold,
        groups: groups
            .iter()
            .map(|g| GroupSpec {
                threshold: g.threshold,
                count: g.members.len().min(255) as u8,
            })
            .collect(),
        iteration_exponent: 0,
        extendable: true,
    };
    params
        .validate()
        .map_err(|e: QuorumError| crate::Error::from(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, threshold: u8, members: &[&str]) -> GroupDef {
        GroupDef {
            name: name.into(),
            threshold,
            members: members.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    fn layout_error(result: Result<(), crate::Error>) -> String {
        match result {
            Err(crate::Error::Vault(VaultError::Layout(reason))) => reason,
            other => panic!("expected a layout error, got {other:?}"),
        }
    }

    #[test]
    fn a_layout_names_what_is_wrong_with_it() {
        let empty = layout_error(validate_groups(1, &[group("ops", 1, &[])]));
        assert!(empty.contains("\"ops\" has no members"), "{empty}");
        let twice = layout_error(validate_groups(
            1,
            &[group("a", 1, &["alice"]), group("b", 1, &["alice"])],
        ));
        assert!(twice.contains("\"alice\" appears twice"), "{twice}");
        let odd = layout_error(validate_groups(1, &[group("a", 1, &["al ice"])]));
        assert!(odd.contains("\"al ice\""), "{odd}");
        assert!(matches!(
            validate_groups(1, &[group("a", 3, &["alice", "bob"])]),
            Err(crate::Error::Quorum(_))
        ));
        validate_groups(1, &[group("a", 2, &["alice", "bob", "carol"])]).unwrap();
    }

    #[test]
    fn a_recovery_set_must_be_stricter_than_the_quorum() {
        let def = |threshold| RecoveryDef {
            threshold,
            members: ["a", "b", "c", "d"].map(str::to_owned).to_vec(),
        };
        let reason = layout_error(validate_recovery_against(3, &def(3)));
        assert!(reason.contains("use at least 4"), "{reason}");
        validate_recovery_against(3, &def(4)).unwrap();
    }

    #[test]
    fn every_share_of_a_new_set_matches_its_commitment_and_recombines_to_the_secret() {
        let groups = [group("ops", 2, &["alice", "bob", "carol"])];
        let spec = SetSpec {
            group_threshold: 1,
            groups: &groups,
            iteration_exponent: 0,
            recovery: false,
        };
        let (q, set, shares) = new_quorum_set("vault", &spec).unwrap();
        assert_eq!(shares.len(), 3);
        assert_eq!(set.identifier, shares[0].share.info().identifier);
        assert_eq!(set.minimum_shares(), 2);
        let mut collector = Collector::new();
        for (i, issued) in shares.into_iter().enumerate().skip(1) {
            assert_eq!(
                set.verify_share("vault", &issued.share)
                    .map(|c| c.name.as_str()),
                Some(issued.custodian.as_str())
            );
            // A commitment is bound to the vault: the same share is nobody's in another.
            assert!(set.verify_share("other", &issued.share).is_none());
            collector.add(i, issued.share).unwrap();
        }
        let combined = collector.combine(b"").unwrap();
        assert_eq!(
            combined.secret.expose_secret(),
            q.expose_secret(),
            "two of three recombine to the secret"
        );
        assert_eq!(
            set.public_key,
            hex::encode(X25519SecretKey::derive_key_pair(q.expose_secret()).public_key_bytes())
        );
    }
}
