use secrecy::ExposeSecret;

use super::*;

fn layout(group_threshold: u8, groups: &[(u8, u8)]) -> SplitParams {
    SplitParams {
        group_threshold,
        groups: groups
            .iter()
            .map(|&(threshold, count)| GroupSpec { threshold, count })
            .collect(),
        iteration_exponent: 0,
        extendable: true,
    }
}

#[test]
fn split_and_combine_round_trip_through_mnemonics() {
    let secret: Vec<u8> = (0..32).collect();
    let shares = split(&secret, b"", &layout(2, &[(1, 1), (2, 3), (3, 5)])).unwrap();
    let mnemonics: Vec<String> = [&shares[0][0], &shares[2][4], &shares[2][0], &shares[2][2]]
        .iter()
        .map(|s| s.to_mnemonic().expose_secret().to_owned())
        .collect();
    let combined = combine_mnemonics(&mnemonics, b"").unwrap();
    assert_eq!(combined.secret.expose_secret(), secret.as_slice());
    assert!(combined.rejected.is_empty());
}

#[test]
fn a_bad_extra_share_is_named_and_the_good_ones_still_recombine() {
    let secret = [7u8; 16];
    let mut shares = split(&secret, b"", &layout(1, &[(3, 5)]))
        .unwrap()
        .remove(0);
    // Corrupt member 2's value (a share with a valid checksum but a wrong value, as a cheating
    // custodian would make).
    shares[1].value[0] ^= 0x55;
    let combined = combine(&shares[..4], b"").unwrap();
    assert_eq!(combined.secret.expose_secret(), &secret);
    assert_eq!(combined.rejected, vec![2]);
    assert_eq!(combined.used, vec![1, 3, 4]);
    // With exactly the threshold, the same bad share can only be reported as a digest failure.
    let err = combine(&shares[..3], b"").unwrap_err();
    assert_eq!(
        err,
        QuorumError::Digest {
            shares: vec![1, 2, 3]
        }
    );
}

#[test]
fn too_few_shares_says_how_many_more_in_which_group() {
    let shares = split(&[1u8; 16], b"", &layout(2, &[(2, 3), (3, 5), (1, 1)])).unwrap();
    let given = [&shares[1][0], &shares[1][1], &shares[0][2]];
    let mut collector = Collector::new();
    for (i, share) in given.iter().enumerate() {
        let copy = Share::parse(share.to_mnemonic().expose_secret(), i + 1).unwrap();
        collector.add(i + 1, copy).unwrap();
    }
    let err = collector.combine(b"").unwrap_err();
    assert_eq!(
        err,
        QuorumError::NotEnoughShares {
            groups_needed: 2,
            shortfall: vec![(1, 1, 2), (2, 2, 3)]
        }
    );
    let text = err.to_string();
    assert!(text.contains("group 2 needs 1 more (has 2 of 3)"), "{text}");
    assert!(!collector.progress().complete);
}

#[test]
fn duplicates_and_foreign_shares_are_named_on_entry() {
    let a = split(&[1u8; 16], b"", &layout(1, &[(2, 3)]))
        .unwrap()
        .remove(0);
    let b = split(&[1u8; 16], b"", &layout(1, &[(2, 3)]))
        .unwrap()
        .remove(0);
    let reparse = |s: &Share, p| Share::parse(s.to_mnemonic().expose_secret(), p).unwrap();
    let mut collector = Collector::new();
    collector.add(1, reparse(&a[0], 1)).unwrap();
    assert_eq!(
        collector.add(2, reparse(&a[0], 2)).unwrap_err(),
        QuorumError::DuplicateShare { share: 2, other: 1 }
    );
    let err = collector.add(3, reparse(&b[1], 3)).unwrap_err();
    assert!(
        matches!(
            err,
            QuorumError::Mismatch {
                share: 3,
                first: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let progress = collector.add(4, reparse(&a[2], 4)).unwrap();
    assert!(progress.complete);
}

#[test]
fn every_single_word_change_is_detected() {
    let share = split(&[9u8; 16], b"", &layout(1, &[(1, 1)]))
        .unwrap()
        .remove(0)
        .remove(0);
    let mnemonic = share.to_mnemonic().expose_secret().to_owned();
    let original: Vec<&str> = mnemonic.split(' ').collect();
    for position in 0..original.len() {
        for replacement in [0u16, 1, 511, 1023] {
            let word = words::word(replacement);
            if word == original[position] {
                continue;
            }
            let mut changed = original.clone();
            changed[position] = word;
            assert!(
                Share::parse(&changed.join(" "), 1).is_err(),
                "word {position} -> {word}"
            );
        }
    }
}

#[test]
fn unknown_word_is_named_with_suggestions() {
    let share = split(&[9u8; 16], b"", &layout(1, &[(1, 1)]))
        .unwrap()
        .remove(0)
        .remove(0);
    let mnemonic = share.to_mnemonic().expose_secret().to_owned();
    let mut words: Vec<String> = mnemonic.split(' ').map(str::to_owned).collect();
    let intended = words[5].clone();
    words[5] = format!("{}x", &intended[..intended.len() - 1]);
    match Share::parse(&words.join(" "), 3).unwrap_err() {
        QuorumError::UnknownWord {
            share,
            word,
            suggestions,
        } => {
            assert_eq!((share, word), (3, 6));
            assert!(
                suggestions.contains(&intended.as_str()),
                "{suggestions:?} lacks {intended}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn passphrase_changes_the_secret_and_debug_hides_values() {
    let secret = [3u8; 16];
    let shares = split(&secret, b"TREZOR", &layout(1, &[(2, 2)]))
        .unwrap()
        .remove(0);
    let with = combine(&shares, b"TREZOR").unwrap();
    assert_eq!(with.secret.expose_secret(), &secret);
    let without = combine(&shares, b"").unwrap();
    assert_ne!(without.secret.expose_secret(), &secret);
    let debug = format!("{:?} {with:?}", shares[0]);
    assert!(!debug.contains(&format!("{:?}", shares[0].value.as_slice())));
    assert!(debug.contains("redacted"));
}

#[test]
fn layouts_the_standard_forbids_are_refused() {
    assert!(split(&[0u8; 16], b"", &layout(1, &[(1, 2)])).is_err());
    assert!(split(&[0u8; 16], b"", &layout(3, &[(1, 1), (1, 1)])).is_err());
    assert!(split(&[0u8; 16], b"", &layout(1, &[(2, 17)])).is_err());
    assert!(split(&[0u8; 15], b"", &layout(1, &[(1, 1)])).is_err());
    assert!(split(&[0u8; 17], b"", &layout(1, &[(1, 1)])).is_err());
    assert!(split(&[0u8; 16], "é".as_bytes(), &layout(1, &[(1, 1)])).is_err());
}

#[test]
fn subsets_enumerates_combinations() {
    assert_eq!(subsets(4, 2).len(), 6);
    assert_eq!(subsets(3, 3), vec![vec![0, 1, 2]]);
    assert!(subsets(2, 3).is_empty());
}

/// Every rule of a layout at its edge: the last value allowed passes, the first one past it is
/// refused with the rule's own message.
#[test]
fn every_layout_rule_holds_at_its_edge() {
    let allowed = |params: &SplitParams| params.validate().unwrap();
    let refused = |params: &SplitParams, rule: &str| match params.validate() {
        Err(QuorumError::InvalidLayout(reason)) => assert!(reason.contains(rule), "{reason}"),
        other => panic!("{params:?}: {other:?}"),
    };
    allowed(&layout(1, &[(1, 1); 16]));
    refused(&layout(1, &[(1, 1); 17]), "between 1 and 16 groups");
    refused(&layout(1, &[]), "between 1 and 16 groups");
    allowed(&layout(3, &[(1, 1); 3]));
    refused(&layout(4, &[(1, 1); 3]), "group threshold");
    refused(&layout(0, &[(1, 1); 3]), "group threshold");
    let mut exponent = layout(1, &[(1, 1)]);
    exponent.iteration_exponent = 15;
    allowed(&exponent);
    exponent.iteration_exponent = 16;
    refused(&exponent, "iteration exponent");
    allowed(&layout(1, &[(16, 16)]));
    allowed(&layout(1, &[(2, 16)]));
    refused(&layout(1, &[(16, 17)]), "between 1 and 16 members");
    refused(&layout(1, &[(0, 0)]), "between 1 and 16 members");
    allowed(&layout(1, &[(3, 3)]));
    refused(&layout(1, &[(4, 3)]), "member threshold");
    refused(&layout(1, &[(0, 3)]), "member threshold");
    allowed(&layout(1, &[(1, 1)]));
    refused(&layout(1, &[(1, 2)]), "threshold 1");
}

/// Two share sets under one identifier (a forger's, or a mix-up): each pair recombines on its
/// own, so together they are refused naming every share, never resolved to one of the two
/// secrets.
#[test]
fn two_share_sets_under_one_identifier_are_refused_together() {
    let params = layout(1, &[(2, 4)]);
    let mut first = split(&[1u8; 16], b"", &params).unwrap().remove(0);
    let mut second = split(&[2u8; 16], b"", &params).unwrap().remove(0);
    let identifier = first[0].info.identifier;
    let (third, fourth) = (second.remove(2), second.remove(2));
    let mut mixed = vec![first.remove(0), first.remove(0), third, fourth];
    for share in &mut mixed[2..] {
        share.info.identifier = identifier;
    }
    let alone = combine(&mixed[..2], b"").unwrap();
    assert_eq!(alone.secret.expose_secret(), &[1u8; 16]);
    let alone = combine(&mixed[2..], b"").unwrap();
    assert_eq!(alone.secret.expose_secret(), &[2u8; 16]);
    match combine(&mixed, b"") {
        Err(QuorumError::Digest { shares }) => assert_eq!(shares, vec![1, 2, 3, 4]),
        other => panic!("{other:?}"),
    }
}

/// With a threshold of 1 there is no digest, so the points must agree: a strict majority
/// recombines and the others are named; a tie (here two groups of four agree, the other two
/// each say something else) is refused naming every share.
#[test]
fn single_share_groups_recombine_only_by_a_strict_majority() {
    let secret = [9u8; 16];
    let forged = |changes: &[usize]| -> Vec<Share> {
        let mut shares: Vec<Share> = split(&secret, b"", &layout(1, &[(1, 1); 4]))
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        for (n, &i) in changes.iter().enumerate() {
            shares[i].value[0] ^= 1 << n;
        }
        shares
    };
    let majority = combine(&forged(&[3]), b"").unwrap();
    assert_eq!(majority.secret.expose_secret(), &secret);
    assert_eq!(majority.rejected, vec![4]);
    assert_eq!(majority.used, vec![1, 2, 3]);
    match combine(&forged(&[2, 3]), b"") {
        Err(QuorumError::Digest { shares }) => assert_eq!(shares, vec![1, 2, 3, 4]),
        other => panic!("{other:?}"),
    }
}

/// Multiplication in GF(256) as SLIP-39 defines it (x^8 + x^4 + x^3 + x + 1), carry-less and
/// reduced bit by bit: independent of the log tables the splitting uses.
fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    while b != 0 {
        if b & 1 == 1 {
            product ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    product
}

/// Pearson's statistic of `counts` against the uniform distribution (255 degrees of freedom).
fn chi_squared_uniform(counts: &[u64; 256]) -> f64 {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / 256.0;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// Pearson's statistic of the 2 × 256 table of two samples of equal size: whether they come
/// from one distribution (255 degrees of freedom).
fn chi_squared_same(a: &[u64; 256], b: &[u64; 256]) -> f64 {
    assert_eq!(a.iter().sum::<u64>(), b.iter().sum::<u64>());
    a.iter()
        .zip(b)
        .filter(|(x, y)| **x + **y > 0)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2) / (x + y) as f64)
        .sum()
}

/// The bound on a statistic with 255 degrees of freedom: P(χ² > 500) = 4.4e-18, so the
/// 2,322 comparisons below fail by chance with probability below 1.1e-14 together (with 512
/// expected per cell, Pearson's statistic follows χ² closely). Measured on broken splits:
/// a random share fixed at zero gives one projection of two derived shares a single value
/// (χ² = 33,423,360); random bytes that are never zero (a zero drawn becomes 1) make one
/// cell of that projection twice as likely as the others (χ² about 1,200).
const CHI_SQUARED_BOUND: f64 = 500.0;

/// Splits per secret; each gives one sample per byte of the 32-byte secret (the bytes are split
/// by independent polynomials), so 131,072 samples and 512 expected per cell.
const SPLITS: usize = 4096;

/// The values at x-coordinates `xs` of `SPLITS` splits of `secret` (`threshold` of 5), one
/// tuple per split and byte position.
fn share_values(secret: &[u8; 32], threshold: u8, xs: &[u8]) -> Vec<Vec<u8>> {
    let mut samples = Vec::with_capacity(SPLITS * 32);
    for _ in 0..SPLITS {
        let shares = shamir::split(threshold, 5, secret).unwrap();
        samples.extend(
            (0..secret.len())
                .map(|byte| xs.iter().map(|&x| shares[usize::from(x)][byte]).collect()),
        );
    }
    samples
}

/// k-1 shares reveal nothing: for two secrets, the values of any two shares of a 3-of-5 split
/// (the random one and derived ones alike) are uniform over GF(256)², and so is one share of a
/// 2-of-5 split, whatever the secret. Uniform on GF(256)² is tested through its 257
/// projections `c·x + d·y` (a distribution there is uniform exactly when every one of them
/// is): each projection's 256 counts are compared with the uniform distribution for each
/// secret, and the two secrets' counts with each other. The Shamir layer is tested directly
/// (with the digest share, as `split` uses it): in front of it the Feistel encryption keyed by
/// the random identifier would make even a broken split look uniform across splits, while the
/// identifier is public and the shares would still give the secret away.
#[test]
fn fewer_shares_than_the_threshold_are_uniform_whatever_the_secret() {
    let secrets: [[u8; 32]; 2] = [
        [0; 32],
        std::array::from_fn(|i| 0xa5 ^ (i as u8).wrapping_mul(37)),
    ];
    let mul: Vec<[u8; 256]> = (0..=255u8)
        .map(|d| std::array::from_fn(|y| gf_mul(d, y as u8)))
        .collect();
    let mut comparisons = 0;
    let mut check = |what: String, statistic: f64| {
        comparisons += 1;
        assert!(
            statistic < CHI_SQUARED_BOUND,
            "{what}: χ² = {statistic:.1} (bound {CHI_SQUARED_BOUND})"
        );
    };

    for pair in [[0u8, 1], [1, 2], [3, 4]] {
        // The joint counts of (x, y) for each secret, then every projection from them.
        let joint: Vec<Vec<u64>> = secrets
            .iter()
            .map(|secret| {
                let mut counts = vec![0u64; 65536];
                for sample in share_values(secret, 3, &pair) {
                    counts[usize::from(sample[0]) << 8 | usize::from(sample[1])] += 1;
                }
                counts
            })
            .collect();
        // (1 : d) for every d, then (0 : 1).
        let directions = mul.iter().map(Some).chain(std::iter::once(None));
        for (d, row) in directions.enumerate() {
            let projections: Vec<[u64; 256]> = joint
                .iter()
                .map(|counts| {
                    let mut histogram = [0u64; 256];
                    for (cell, &n) in counts.iter().enumerate() {
                        let (x, y) = (cell >> 8, cell & 0xff);
                        let value = match row {
                            Some(row) => x ^ usize::from(row[y]),
                            None => y,
                        };
                        histogram[value] += n;
                    }
                    histogram
                })
                .collect();
            let direction = match row {
                Some(_) => format!("x + {d}·y"),
                None => "y".to_owned(),
            };
            for (secret, histogram) in projections.iter().enumerate() {
                check(
                    format!("shares {pair:?} of 3, secret {secret}, {direction}: uniform"),
                    chi_squared_uniform(histogram),
                );
            }
            check(
                format!("shares {pair:?} of 3, {direction}: the same for both secrets"),
                chi_squared_same(&projections[0], &projections[1]),
            );
        }
    }

    for x in 0..3u8 {
        let histograms: Vec<[u64; 256]> = secrets
            .iter()
            .map(|secret| {
                let mut histogram = [0u64; 256];
                for sample in share_values(secret, 2, &[x]) {
                    histogram[usize::from(sample[0])] += 1;
                }
                histogram
            })
            .collect();
        for (secret, histogram) in histograms.iter().enumerate() {
            check(
                format!("share {x} of 2, secret {secret}: uniform"),
                chi_squared_uniform(histogram),
            );
        }
        check(
            format!("share {x} of 2: the same for both secrets"),
            chi_squared_same(&histograms[0], &histograms[1]),
        );
    }
    assert_eq!(comparisons, 3 * 257 * 3 + 3 * 3);
}
