//! SLIP-39 secret sharing: the custodians' shares of the quorum secret.
//!
//! The whole standard (`slip-0039.md` of SatoshiLabs): two-level sharing (a group threshold over
//! groups, a member threshold within each), 15-bit identifier, extendable flag, iteration
//! exponent, passphrase encryption, digest share, RS1024 checksum, 10-bit words. Any
//! implementation of the standard (the Python reference, hardware wallets) recombines these
//! shares: breakglass is not the only program that can open its own quorum.
//!
//! Combining validates everything and names the share at fault by its position in the input
//! (1-based). Given more shares than the thresholds need, a bad share is found by trying subsets
//! and reported, while the good ones still recombine.

mod cipher;
mod gf256;
mod rs1024;
mod shamir;
mod share;
mod words;

use std::collections::BTreeMap;

use ring::rand::{SecureRandom, SystemRandom};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::secret::SecretBytes;
pub use share::{Share, ShareInfo};

/// The most groups, and the most members in a group.
pub const MAX_SHARES: u8 = 16;

/// A share or quorum failure, naming the share at fault by its 1-based position in the input.
/// Never carries share words or values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QuorumError {
    /// A word is not in the SLIP-39 wordlist.
    #[error(
        "share {share}: word {word} is not a SLIP-39 word{}",
        suggest(suggestions)
    )]
    UnknownWord {
        /// The share.
        share: usize,
        /// The word's position in the share (1-based).
        word: usize,
        /// The closest valid words.
        suggestions: Vec<&'static str>,
    },
    /// Fewer words than the shortest share (20).
    #[error("share {share} has {words} words; a share has at least 20 (is a line missing?)")]
    TooFewWords {
        /// The share.
        share: usize,
        /// How many words it has.
        words: usize,
    },
    /// A word count no share can have.
    #[error(
        "share {share} has {words} words, which no SLIP-39 share has (a word missing or extra?)"
    )]
    InvalidLength {
        /// The share.
        share: usize,
        /// How many words it has.
        words: usize,
    },
    /// The RS1024 checksum fails: a word is wrong.
    #[error("share {share}: checksum failed: a word is wrong or two are swapped")]
    Checksum {
        /// The share.
        share: usize,
    },
    /// The padding bits are not zero.
    #[error("share {share}: invalid padding (not a share made by a SLIP-39 implementation)")]
    Padding {
        /// The share.
        share: usize,
    },
    /// The share's secret length is not allowed (at least 128 bits, a multiple of 16 bits).
    #[error(
        "share {share}: a {bytes}-byte secret is not allowed (at least 16 bytes, an even number)"
    )]
    InvalidSecretLength {
        /// The share.
        share: usize,
        /// The length found.
        bytes: usize,
    },
    /// The share claims more groups needed than exist.
    #[error("share {share}: its group threshold is greater than its group count")]
    GroupThresholdExceedsCount {
        /// The share.
        share: usize,
    },
    /// A share does not belong with the first one.
    #[error("share {share} does not belong to the same set as share {first}: different {field}")]
    Mismatch {
        /// The share.
        share: usize,
        /// The share it was compared with.
        first: usize,
        /// What differs: identifier, extendable flag, iteration exponent, group threshold,
        /// group count, secret length, member threshold.
        field: &'static str,
    },
    /// The same share was given twice.
    #[error("share {share} is the same share as share {other}")]
    DuplicateShare {
        /// The share.
        share: usize,
        /// The earlier copy.
        other: usize,
    },
    /// Two different shares claim the same member of a group.
    #[error(
        "shares {other} and {share} claim the same member ({member}) of group {group}: one of them is not genuine"
    )]
    DuplicateMemberIndex {
        /// The later share.
        share: usize,
        /// The earlier share.
        other: usize,
        /// The group (1-based).
        group: u8,
        /// The member (1-based).
        member: u8,
    },
    /// Not enough shares yet.
    #[error("not enough shares: {}", describe_shortfall(*groups_needed, shortfall))]
    NotEnoughShares {
        /// How many more groups must be completed.
        groups_needed: u8,
        /// For each started group that is not complete: (group, shares given, threshold), 1-based group.
        shortfall: Vec<(u8, u8, u8)>,
    },
    /// The shares do not recombine: their digest fails. When more shares than needed were
    /// given and some subsets do recombine, [`Combined::rejected`] names the bad ones instead.
    #[error(
        "the shares {} do not recombine (digest mismatch): at least one of them is not genuine",
        list(shares)
    )]
    Digest {
        /// The shares involved.
        shares: Vec<usize>,
    },
    /// No shares at all.
    #[error("no shares given")]
    Empty,
    /// A sharing layout that SLIP-39 does not allow.
    #[error("invalid layout: {0}")]
    InvalidLayout(&'static str),
    /// The secret to split has a length SLIP-39 does not allow.
    #[error("a {0}-byte secret cannot be split: at least 16 bytes and an even number")]
    InvalidSecret(usize),
    /// The passphrase has characters outside printable ASCII.
    #[error("the passphrase must be printable ASCII (characters 32 to 126)")]
    InvalidPassphrase,
    /// The operating system's random generator failed.
    #[error("the operating system's random generator failed")]
    Random,
}

fn suggest(suggestions: &[&str]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", suggestions.join(", "))
    }
}

fn list(shares: &[usize]) -> String {
    shares
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_shortfall(groups_needed: u8, shortfall: &[(u8, u8, u8)]) -> String {
    let mut parts: Vec<String> = shortfall
        .iter()
        .map(|(group, have, need)| {
            format!(
                "group {group} needs {} more (has {have} of {need})",
                need - have
            )
        })
        .collect();
    if usize::from(groups_needed) > shortfall.len() || groups_needed > 1 {
        parts.push(format!(
            "{groups_needed} more group{} must be completed",
            if groups_needed == 1 { "" } else { "s" }
        ));
    }
    parts.join("; ")
}

/// One group of a layout: `threshold` of `count` members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupSpec {
    /// Members needed.
    pub threshold: u8,
    /// Members in the group.
    pub count: u8,
}

/// How a secret is split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitParams {
    /// Groups needed.
    pub group_threshold: u8,
    /// The groups.
    pub groups: Vec<GroupSpec>,
    /// Passphrase-encryption iteration exponent (0 to 15; 10000 × 2^e PBKDF2 iterations).
    pub iteration_exponent: u8,
    /// Extendable share sets (recommended by the current standard).
    pub extendable: bool,
}

impl SplitParams {
    /// Checks the layout against the standard's rules.
    pub fn validate(&self) -> Result<(), QuorumError> {
        let count = self.groups.len();
        if count == 0 || count > usize::from(MAX_SHARES) {
            return Err(QuorumError::InvalidLayout("between 1 and 16 groups"));
        }
        if self.group_threshold == 0 || usize::from(self.group_threshold) > count {
            return Err(QuorumError::InvalidLayout(
                "the group threshold must be between 1 and the number of groups",
            ));
        }
        if self.iteration_exponent > 15 {
            return Err(QuorumError::InvalidLayout(
                "the iteration exponent is at most 15",
            ));
        }
        for group in &self.groups {
            if group.count == 0 || group.count > MAX_SHARES {
                return Err(QuorumError::InvalidLayout(
                    "a group has between 1 and 16 members",
                ));
            }
            if group.threshold == 0 || group.threshold > group.count {
                return Err(QuorumError::InvalidLayout(
                    "a member threshold must be between 1 and the group's size",
                ));
            }
            if group.threshold == 1 && group.count > 1 {
                return Err(QuorumError::InvalidLayout(
                    "a group with threshold 1 must have 1 member (identical copies: use a 1-of-1 group)",
                ));
            }
        }
        Ok(())
    }
}

fn check_passphrase(passphrase: &[u8]) -> Result<(), QuorumError> {
    if passphrase.iter().all(|b| (32..=126).contains(b)) {
        Ok(())
    } else {
        Err(QuorumError::InvalidPassphrase)
    }
}

/// Splits `secret` by `params`; the shares come grouped, in group and member order.
pub fn split(
    secret: &[u8],
    passphrase: &[u8],
    params: &SplitParams,
) -> Result<Vec<Vec<Share>>, QuorumError> {
    params.validate()?;
    check_passphrase(passphrase)?;
    if secret.len() < share::MIN_SECRET_BYTES || !secret.len().is_multiple_of(2) {
        return Err(QuorumError::InvalidSecret(secret.len()));
    }
    let mut id = [0u8; 2];
    SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| QuorumError::Random)?;
    let identifier = u16::from_be_bytes(id) & 0x7fff;
    let encrypted = cipher::encrypt(
        secret,
        passphrase,
        params.iteration_exponent,
        identifier,
        params.extendable,
    );
    let group_count = params.groups.len() as u8;
    let group_secrets = shamir::split(params.group_threshold, group_count, &encrypted)?;
    let mut out = Vec::with_capacity(params.groups.len());
    for (group_index, (group_secret, spec)) in group_secrets.iter().zip(&params.groups).enumerate()
    {
        let members = shamir::split(spec.threshold, spec.count, group_secret)?;
        out.push(
            members
                .into_iter()
                .enumerate()
                .map(|(member_index, value)| Share {
                    info: ShareInfo {
                        identifier,
                        extendable: params.extendable,
                        iteration_exponent: params.iteration_exponent,
                        group_index: group_index as u8,
                        group_threshold: params.group_threshold,
                        group_count,
                        member_index: member_index as u8,
                        member_threshold: spec.threshold,
                    },
                    value,
                })
                .collect(),
        );
    }
    Ok(out)
}

/// The recombined secret, and the shares found bad along the way (positions, 1-based).
pub struct Combined {
    /// The master secret.
    pub secret: SecretBytes,
    /// Shares that were given but are not part of any recombining subset.
    pub rejected: Vec<usize>,
    /// Shares that took part in the recombination.
    pub used: Vec<usize>,
}

impl std::fmt::Debug for Combined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Combined")
            .field("secret", &"[redacted]")
            .field("rejected", &self.rejected)
            .field("used", &self.used)
            .finish()
    }
}

/// Checks that `share` (at `position`) belongs with the shares already accepted.
fn check_against(
    accepted: &[(usize, &Share)],
    position: usize,
    share: &Share,
) -> Result<(), QuorumError> {
    let Some((first_position, first)) = accepted.first() else {
        return Ok(());
    };
    let (a, b) = (first.info, share.info);
    let mismatch = |field| QuorumError::Mismatch {
        share: position,
        first: *first_position,
        field,
    };
    if a.identifier != b.identifier {
        return Err(mismatch("identifier (another vault or another share set)"));
    }
    if a.extendable != b.extendable {
        return Err(mismatch("extendable flag"));
    }
    if a.iteration_exponent != b.iteration_exponent {
        return Err(mismatch("iteration exponent"));
    }
    if a.group_threshold != b.group_threshold {
        return Err(mismatch("group threshold"));
    }
    if a.group_count != b.group_count {
        return Err(mismatch("group count"));
    }
    if first.value.len() != share.value.len() {
        return Err(mismatch("secret length"));
    }
    for (other_position, other) in accepted {
        if other.info.group_index != b.group_index {
            continue;
        }
        if other.info.member_threshold != b.member_threshold {
            return Err(QuorumError::Mismatch {
                share: position,
                first: *other_position,
                field: "member threshold",
            });
        }
        if other.info.member_index == b.member_index {
            if other.same_as(share) {
                return Err(QuorumError::DuplicateShare {
                    share: position,
                    other: *other_position,
                });
            }
            return Err(QuorumError::DuplicateMemberIndex {
                share: position,
                other: *other_position,
                group: b.group_index + 1,
                member: b.member_index + 1,
            });
        }
    }
    Ok(())
}

/// Collects shares one at a time, checking each on entry against those already given, and
/// reports progress per group: what an interactive ceremony shows after every share.
#[derive(Debug, Default)]
pub struct Collector {
    shares: Vec<(usize, Share)>,
}

/// Progress of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Groups needed.
    pub group_threshold: u8,
    /// Groups in the set.
    pub group_count: u8,
    /// Per started group (1-based index): (group, shares given, threshold).
    pub groups: Vec<(u8, u8, u8)>,
    /// Whether enough shares are in to recombine.
    pub complete: bool,
}

impl Collector {
    /// An empty collection.
    pub fn new() -> Collector {
        Collector::default()
    }

    /// Adds the share at `position` after checking it against the others.
    pub fn add(&mut self, position: usize, share: Share) -> Result<Progress, QuorumError> {
        let accepted: Vec<(usize, &Share)> = self.shares.iter().map(|(p, s)| (*p, s)).collect();
        check_against(&accepted, position, &share)?;
        self.shares.push((position, share));
        Ok(self.progress())
    }

    /// How many shares have been accepted.
    pub fn len(&self) -> usize {
        self.shares.len()
    }

    /// Whether no share has been accepted yet.
    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }

    /// The accepted shares with their positions.
    pub fn shares(&self) -> impl Iterator<Item = (usize, &Share)> {
        self.shares.iter().map(|(p, s)| (*p, s))
    }

    /// Progress per group.
    pub fn progress(&self) -> Progress {
        let Some((_, first)) = self.shares.first() else {
            return Progress {
                group_threshold: 0,
                group_count: 0,
                groups: Vec::new(),
                complete: false,
            };
        };
        let mut groups: BTreeMap<u8, (u8, u8)> = BTreeMap::new();
        for (_, share) in &self.shares {
            let entry = groups
                .entry(share.info.group_index)
                .or_insert((0, share.info.member_threshold));
            entry.0 += 1;
        }
        let complete_groups = groups.values().filter(|(have, need)| have >= need).count();
        Progress {
            group_threshold: first.info.group_threshold,
            group_count: first.info.group_count,
            groups: groups
                .iter()
                .map(|(g, (have, need))| (g + 1, *have, *need))
                .collect(),
            complete: complete_groups >= usize::from(first.info.group_threshold),
        }
    }

    /// Recombines the collected shares (see [`combine`]).
    pub fn combine(&self, passphrase: &[u8]) -> Result<Combined, QuorumError> {
        let shares: Vec<(usize, &Share)> = self.shares.iter().map(|(p, s)| (*p, s)).collect();
        combine_positioned(&shares, passphrase)
    }
}

/// Parses mnemonics (positions 1, 2, ... in order) and recombines them.
pub fn combine_mnemonics<S: AsRef<str>>(
    mnemonics: &[S],
    passphrase: &[u8],
) -> Result<Combined, QuorumError> {
    let mut collector = Collector::new();
    for (i, mnemonic) in mnemonics.iter().enumerate() {
        collector.add(i + 1, Share::parse(mnemonic.as_ref(), i + 1)?)?;
    }
    collector.combine(passphrase)
}

/// Recombines shares (positions 1, 2, ... in order) into the master secret.
pub fn combine(shares: &[Share], passphrase: &[u8]) -> Result<Combined, QuorumError> {
    let mut accepted: Vec<(usize, &Share)> = Vec::with_capacity(shares.len());
    for (i, share) in shares.iter().enumerate() {
        check_against(&accepted, i + 1, share)?;
        accepted.push((i + 1, share));
    }
    combine_positioned(&accepted, passphrase)
}

/// A point of a recombination: x, value, and the input shares behind it.
struct Point {
    x: u8,
    value: Zeroizing<Vec<u8>>,
    shares: Vec<usize>,
}

/// Recombined value, the shares used, the shares rejected.
type Recovered = (Zeroizing<Vec<u8>>, Vec<usize>, Vec<usize>);

/// Recovers from `points` with `threshold`, trying every subset when more points are given, and
/// sorting the shares into used and rejected.
fn recover_points(threshold: u8, points: &[Point]) -> Result<Recovered, QuorumError> {
    let all_shares = || {
        let mut all: Vec<usize> = points
            .iter()
            .flat_map(|p| p.shares.iter().copied())
            .collect();
        all.sort_unstable();
        all
    };
    let mut good: Option<Zeroizing<Vec<u8>>> = None;
    let mut in_good_subset = vec![false; points.len()];
    for subset in subsets(points.len(), usize::from(threshold)) {
        let chosen: Vec<(u8, &[u8])> = subset
            .iter()
            .map(|i| (points[*i].x, points[*i].value.as_slice()))
            .collect();
        // With threshold 1 there is no digest: every point must then carry the same value.
        let recovered = if threshold == 1 {
            let value = Zeroizing::new(chosen[0].1.to_vec());
            let agreeing = points
                .iter()
                .filter(|p| p.value.as_slice() == value.as_slice())
                .count();
            (agreeing * 2 > points.len() || points.len() == 1).then_some(value)
        } else {
            shamir::recover(threshold, &chosen)
        };
        let Some(value) = recovered else { continue };
        match &good {
            Some(previous) if previous.as_slice() != value.as_slice() => {
                return Err(QuorumError::Digest {
                    shares: all_shares(),
                });
            }
            _ => {}
        }
        for i in &subset {
            in_good_subset[*i] = true;
        }
        good = Some(value);
    }
    let Some(value) = good else {
        return Err(QuorumError::Digest {
            shares: all_shares(),
        });
    };
    let (mut used, mut rejected) = (Vec::new(), Vec::new());
    for (point, ok) in points.iter().zip(&in_good_subset) {
        if *ok { &mut used } else { &mut rejected }.extend(point.shares.iter().copied());
    }
    used.sort_unstable();
    rejected.sort_unstable();
    Ok((value, used, rejected))
}

/// All `k`-element subsets of `0..n`, in lexicographic order.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    if k == 0 || k > n {
        return out;
    }
    let mut current: Vec<usize> = (0..k).collect();
    loop {
        out.push(current.clone());
        let Some(i) = (0..k).rev().find(|&i| current[i] != i + n - k) else {
            return out;
        };
        current[i] += 1;
        for j in i + 1..k {
            current[j] = current[j - 1] + 1;
        }
    }
}

fn combine_positioned(
    shares: &[(usize, &Share)],
    passphrase: &[u8],
) -> Result<Combined, QuorumError> {
    check_passphrase(passphrase)?;
    let Some((_, first)) = shares.first() else {
        return Err(QuorumError::Empty);
    };
    let info = first.info;
    let mut groups: BTreeMap<u8, Vec<(usize, &Share)>> = BTreeMap::new();
    for (position, share) in shares {
        groups
            .entry(share.info.group_index)
            .or_default()
            .push((*position, share));
    }
    let complete: Vec<(&u8, &Vec<(usize, &Share)>)> = groups
        .iter()
        .filter(|(_, members)| members.len() >= usize::from(members[0].1.info.member_threshold))
        .collect();
    if complete.len() < usize::from(info.group_threshold) {
        return Err(QuorumError::NotEnoughShares {
            groups_needed: info.group_threshold - complete.len() as u8,
            shortfall: groups
                .iter()
                .filter(|(_, m)| m.len() < usize::from(m[0].1.info.member_threshold))
                .map(|(g, m)| (g + 1, m.len() as u8, m[0].1.info.member_threshold))
                .collect(),
        });
    }
    let mut group_points = Vec::new();
    let mut rejected = Vec::new();
    let mut failure = None;
    for (group_index, members) in complete {
        let points: Vec<Point> = members
            .iter()
            .map(|(position, share)| Point {
                x: share.info.member_index,
                value: Zeroizing::new(share.value.to_vec()),
                shares: vec![*position],
            })
            .collect();
        match recover_points(members[0].1.info.member_threshold, &points) {
            Ok((value, used, bad)) => {
                rejected.extend(bad);
                group_points.push(Point {
                    x: *group_index,
                    value,
                    shares: used,
                });
            }
            Err(error) => {
                if let QuorumError::Digest { shares } = &error {
                    rejected.extend(shares.iter().copied());
                }
                failure = Some(error);
            }
        }
    }
    if group_points.len() < usize::from(info.group_threshold) {
        return Err(failure.unwrap_or(QuorumError::Empty));
    }
    let (encrypted, used, bad) = recover_points(info.group_threshold, &group_points)?;
    rejected.extend(bad);
    rejected.sort_unstable();
    let secret = cipher::decrypt(
        &encrypted,
        passphrase,
        info.iteration_exponent,
        info.identifier,
        info.extendable,
    );
    Ok(Combined {
        secret: SecretBytes::from(secret.to_vec()),
        rejected,
        used,
    })
}

#[cfg(test)]
mod tests;
