//! Properties of the sharing, over random layouts: any qualifying subset recovers, any
//! non-qualifying subset fails, and any single changed word is detected.

use proptest::prelude::*;
use secrecy::ExposeSecret;
use vault_core::quorum::{GroupSpec, QuorumError, Share, SplitParams, combine, split};

fn layout() -> impl Strategy<Value = (u8, Vec<(u8, u8)>)> {
    prop::collection::vec(
        (1u8..=4).prop_flat_map(|count| {
            let threshold = if count == 1 {
                Just(1u8).boxed()
            } else {
                (2..=count).boxed()
            };
            (threshold, Just(count))
        }),
        1..=4,
    )
    .prop_flat_map(|groups| {
        let n = groups.len() as u8;
        (1..=n, Just(groups))
    })
}

fn params(group_threshold: u8, groups: &[(u8, u8)]) -> SplitParams {
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Taking `take[g]` members of group g: recovers exactly when enough groups have enough.
    #[test]
    fn qualifying_subsets_recover_and_others_fail(
        (group_threshold, groups) in layout(),
        secret in prop::collection::vec(any::<u8>(), 16..=16),
        picks in prop::collection::vec(0u8..=4, 4),
    ) {
        let shares = split(&secret, b"", &params(group_threshold, &groups)).unwrap();
        let mut chosen: Vec<Share> = Vec::new();
        let mut complete = 0;
        for (g, group) in shares.iter().enumerate() {
            let take = usize::from(picks[g]).min(group.len());
            if take >= usize::from(groups[g].0) { complete += 1; }
            for share in group.iter().take(take) {
                chosen.push(Share::parse(share.to_mnemonic().expose_secret(), chosen.len() + 1).unwrap());
            }
        }
        let result = combine(&chosen, b"");
        if complete >= usize::from(group_threshold) {
            let combined = result.unwrap();
            prop_assert_eq!(combined.secret.expose_secret(), secret.as_slice());
        } else {
            let err = result.unwrap_err();
            prop_assert!(matches!(err, QuorumError::NotEnoughShares { .. } | QuorumError::Empty), "{:?}", err);
        }
    }

    #[test]
    fn any_single_word_change_is_detected(
        secret in prop::collection::vec(any::<u8>(), 32..=32),
        position in 0usize..33,
        replacement in 0usize..1024,
    ) {
        let share = split(&secret, b"", &params(1, &[(1, 1)])).unwrap().remove(0).remove(0);
        let mnemonic = share.to_mnemonic().expose_secret().to_owned();
        let mut words: Vec<&str> = mnemonic.split(' ').collect();
        let wordlist: Vec<&str> = include_str!("../src/quorum/wordlist.txt").lines().collect();
        prop_assume!(words[position] != wordlist[replacement]);
        words[position] = wordlist[replacement];
        prop_assert!(Share::parse(&words.join(" "), 1).is_err());
    }
}
