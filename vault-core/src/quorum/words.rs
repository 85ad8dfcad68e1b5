//! The SLIP-39 wordlist (1024 words, a constant of the standard) and word lookup with
//! suggestions for a mistyped word.

use std::sync::OnceLock;

const WORDLIST: &str = include_str!("wordlist.txt");

/// Bits per word.
pub(super) const RADIX_BITS: usize = 10;

fn words() -> &'static [&'static str] {
    static WORDS: OnceLock<Vec<&'static str>> = OnceLock::new();
    WORDS.get_or_init(|| {
        WORDLIST
            .lines()
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect()
    })
}

/// The word for a 10-bit index.
pub(super) fn word(index: u16) -> &'static str {
    words()[usize::from(index)]
}

/// The index of a word (case-insensitive), if it is in the list.
pub(super) fn index_of(word: &str) -> Option<u16> {
    let lower = word.to_ascii_lowercase();
    words()
        .binary_search(&lower.as_str())
        .ok()
        .and_then(|i| u16::try_from(i).ok())
}

/// Up to three words of the list closest to a mistyped one: those sharing its first four letters
/// (every SLIP-39 word is unique by them), else the nearest by edit distance (at most 2).
pub(super) fn suggestions(typed: &str) -> Vec<&'static str> {
    let typed = typed.to_ascii_lowercase();
    let prefix: String = typed.chars().take(4).collect();
    if prefix.len() == 4 {
        let by_prefix: Vec<&'static str> = words()
            .iter()
            .copied()
            .filter(|w| w.starts_with(&prefix))
            .collect();
        if !by_prefix.is_empty() {
            return by_prefix;
        }
    }
    let mut scored: Vec<(usize, &'static str)> = words()
        .iter()
        .map(|w| (edit_distance(&typed, w), *w))
        .filter(|(d, _)| *d <= 2)
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, w)| w).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wordlist_is_the_standard_one() {
        assert_eq!(words().len(), 1024);
        assert!(
            words().windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        assert_eq!(word(0), "academic");
        assert_eq!(index_of("ACADEMIC"), Some(0));
        let mut prefixes: Vec<&str> = words().iter().map(|w| &w[..4.min(w.len())]).collect();
        prefixes.dedup();
        assert_eq!(prefixes.len(), 1024, "unique by four letters");
        // The file byte for byte as the specification publishes it (slip39-wordlist.txt).
        assert_eq!(
            hex::encode(ring::digest::digest(
                &ring::digest::SHA256,
                WORDLIST.as_bytes()
            )),
            "bcc4555340332d169718aed8bf31dd9d5248cb7da6e5d355140ef4f1e601eec3"
        );
    }

    #[test]
    fn suggestions_for_typos() {
        assert_eq!(suggestions("academik"), vec!["academic"]);
        assert!(suggestions("acdemic").contains(&"academic"));
        assert!(suggestions("zzzzzzzzzz").is_empty());
    }
}
