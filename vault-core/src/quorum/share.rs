//! One SLIP-39 share: its public fields, its value, and its mnemonic form.

use secrecy::SecretString;
use zeroize::Zeroizing;

use super::words::{self, RADIX_BITS};
use super::{QuorumError, rs1024};

/// Words of identifier, extendable flag and iteration exponent (15 + 1 + 4 bits).
const ID_EXP_WORDS: usize = 2;
/// Words of group index/threshold/count and member index/threshold (5 × 4 bits).
const PARAMS_WORDS: usize = 2;
/// Words that are not the share value.
const METADATA_WORDS: usize = ID_EXP_WORDS + PARAMS_WORDS + rs1024::CHECKSUM_WORDS;
/// The shortest mnemonic: 128-bit value.
pub(super) const MIN_WORDS: usize = METADATA_WORDS + 13;
/// The shortest secret, in bytes.
pub(super) const MIN_SECRET_BYTES: usize = 16;

/// The public fields of a share: everything but its value. Safe to show and log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ShareInfo {
    /// The random identifier common to all shares of one split (15 bits).
    pub identifier: u16,
    /// Whether the share set is extendable (the passphrase salt does not bind the identifier).
    pub extendable: bool,
    /// The passphrase encryption's iteration exponent (10000 × 2^e PBKDF2 iterations).
    pub iteration_exponent: u8,
    /// The group this share belongs to (0-based).
    pub group_index: u8,
    /// How many groups are needed.
    pub group_threshold: u8,
    /// How many groups there are.
    pub group_count: u8,
    /// The member index within the group (0-based).
    pub member_index: u8,
    /// How many members of this group are needed.
    pub member_threshold: u8,
}

/// One share: public fields and the secret value. No `Debug` of the value, no `Clone`.
pub struct Share {
    pub(super) info: ShareInfo,
    pub(super) value: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("info", &self.info)
            .field("value", &"[redacted]")
            .finish()
    }
}

pub(super) fn customization(extendable: bool) -> &'static [u8] {
    if extendable {
        b"shamir_extendable"
    } else {
        b"shamir"
    }
}

impl Share {
    /// The public fields.
    pub fn info(&self) -> ShareInfo {
        self.info
    }

    /// The share value (secret): only for computing commitments inside the crate.
    pub(crate) fn value_bytes(&self) -> &[u8] {
        &self.value
    }

    /// Whether two shares are the same share (same fields and value).
    pub fn same_as(&self, other: &Share) -> bool {
        self.info == other.info && self.value.as_slice() == other.value.as_slice()
    }

    /// Parses and checks one mnemonic (words, length, checksum, padding, parameters).
    /// `position` (1-based) names the share in errors.
    pub fn parse(mnemonic: &str, position: usize) -> Result<Share, QuorumError> {
        let typed: Vec<&str> = mnemonic.split_whitespace().collect();
        let mut data = Vec::with_capacity(typed.len());
        for (i, word) in typed.iter().enumerate() {
            match words::index_of(word) {
                Some(index) => data.push(index),
                None => {
                    return Err(QuorumError::UnknownWord {
                        share: position,
                        word: i + 1,
                        suggestions: words::suggestions(word),
                    });
                }
            }
        }
        if data.len() < MIN_WORDS {
            return Err(QuorumError::TooFewWords {
                share: position,
                words: data.len(),
            });
        }
        let padding = (RADIX_BITS * (data.len() - METADATA_WORDS)) % 16;
        if padding > 8 {
            return Err(QuorumError::InvalidLength {
                share: position,
                words: data.len(),
            });
        }
        let id_exp = (u32::from(data[0]) << 10) | u32::from(data[1]);
        let identifier = (id_exp >> 5) as u16;
        let extendable = (id_exp >> 4) & 1 == 1;
        let iteration_exponent = (id_exp & 0xf) as u8;
        if !rs1024::verify(customization(extendable), &data) {
            return Err(QuorumError::Checksum { share: position });
        }
        let params = (u32::from(data[2]) << 10) | u32::from(data[3]);
        let nibble = |shift: u32| ((params >> shift) & 0xf) as u8;
        let info = ShareInfo {
            identifier,
            extendable,
            iteration_exponent,
            group_index: nibble(16),
            group_threshold: nibble(12) + 1,
            group_count: nibble(8) + 1,
            member_index: nibble(4),
            member_threshold: nibble(0) + 1,
        };
        if info.group_threshold > info.group_count {
            return Err(QuorumError::GroupThresholdExceedsCount { share: position });
        }
        let value_words = &data[ID_EXP_WORDS + PARAMS_WORDS..data.len() - rs1024::CHECKSUM_WORDS];
        let value =
            words_to_bytes(value_words, padding).ok_or(QuorumError::Padding { share: position })?;
        if value.len() < MIN_SECRET_BYTES || !value.len().is_multiple_of(2) {
            return Err(QuorumError::InvalidSecretLength {
                share: position,
                bytes: value.len(),
            });
        }
        Ok(Share { info, value })
    }

    /// The mnemonic words, space-separated.
    pub fn to_mnemonic(&self) -> SecretString {
        let info = &self.info;
        let id_exp = (u32::from(info.identifier) << 5)
            | (u32::from(info.extendable) << 4)
            | u32::from(info.iteration_exponent);
        let params = (u32::from(info.group_index) << 16)
            | (u32::from(info.group_threshold - 1) << 12)
            | (u32::from(info.group_count - 1) << 8)
            | (u32::from(info.member_index) << 4)
            | u32::from(info.member_threshold - 1);
        let mut data: Zeroizing<Vec<u16>> = Zeroizing::new(vec![
            (id_exp >> 10) as u16,
            (id_exp & 1023) as u16,
            (params >> 10) as u16,
            (params & 1023) as u16,
        ]);
        data.extend_from_slice(&bytes_to_words(&self.value));
        let checksum = rs1024::create(customization(info.extendable), &data);
        data.extend_from_slice(&checksum);
        let mut text = String::with_capacity(data.len() * 9);
        for (i, index) in data.iter().enumerate() {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(words::word(*index));
        }
        SecretString::from(text)
    }
}

/// Big-endian bytes to 10-bit words, left-padded with zero bits.
fn bytes_to_words(bytes: &[u8]) -> Zeroizing<Vec<u16>> {
    let bits = bytes.len() * 8;
    let count = bits.div_ceil(RADIX_BITS);
    let padding = count * RADIX_BITS - bits;
    let mut out = Zeroizing::new(Vec::with_capacity(count));
    let mut accumulator: u32 = 0;
    let mut filled = padding; // leading zero bits already "in" the accumulator
    for byte in bytes {
        accumulator = (accumulator << 8) | u32::from(*byte);
        filled += 8;
        while filled >= RADIX_BITS {
            filled -= RADIX_BITS;
            out.push(((accumulator >> filled) & 1023) as u16);
        }
        accumulator &= (1 << filled) - 1;
    }
    out
}

/// 10-bit words to big-endian bytes, dropping `padding` leading bits, which must be zero.
fn words_to_bytes(words: &[u16], padding: usize) -> Option<Zeroizing<Vec<u8>>> {
    let bits = words.len() * RADIX_BITS - padding;
    if !bits.is_multiple_of(8) {
        return None;
    }
    if padding > 0
        && words
            .first()
            .is_some_and(|w| (w >> (RADIX_BITS - padding)) != 0)
    {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(bits / 8));
    let mut accumulator: u32 = 0;
    let mut filled: i64 = -(padding as i64);
    for word in words {
        accumulator = (accumulator << RADIX_BITS) | u32::from(*word);
        filled += RADIX_BITS as i64;
        while filled >= 8 {
            filled -= 8;
            out.push(((accumulator >> filled) & 0xff) as u8);
        }
        accumulator &= (1 << filled.max(0)) - 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_packing_round_trips() {
        for len in [16usize, 18, 20, 32, 64] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let words = bytes_to_words(&bytes);
            let padding = words.len() * RADIX_BITS - len * 8;
            assert_eq!(
                words_to_bytes(&words, padding).unwrap().as_slice(),
                bytes.as_slice()
            );
        }
    }
}
