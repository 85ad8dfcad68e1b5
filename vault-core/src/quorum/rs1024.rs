//! The RS1024 checksum over 10-bit words (SLIP-39's Reed-Solomon code over GF(1024)), which
//! detects any error in up to 3 words and almost all others.

const GENERATOR: [u32; 10] = [
    0x00E0_E040,
    0x01C1_C080,
    0x0383_8100,
    0x0707_0200,
    0x0E0E_0009,
    0x1C0C_2412,
    0x3808_6C24,
    0x3090_FC48,
    0x21B1_F890,
    0x03F3_F120,
];

/// Checksum length in words.
pub(super) const CHECKSUM_WORDS: usize = 3;

fn polymod(customization: &[u8], data: &[u16]) -> u32 {
    let mut checksum: u32 = 1;
    let values = customization
        .iter()
        .map(|b| u32::from(*b))
        .chain(data.iter().map(|w| u32::from(*w)));
    for value in values {
        let top = checksum >> 20;
        checksum = ((checksum & 0xF_FFFF) << 10) ^ value;
        for (i, generator) in GENERATOR.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                checksum ^= generator;
            }
        }
    }
    checksum
}

/// Whether `data` (checksum words included) verifies under `customization`.
pub(super) fn verify(customization: &[u8], data: &[u16]) -> bool {
    polymod(customization, data) == 1
}

/// The three checksum words for `data`.
pub(super) fn create(customization: &[u8], data: &[u16]) -> [u16; CHECKSUM_WORDS] {
    let mut padded = data.to_vec();
    padded.extend_from_slice(&[0; CHECKSUM_WORDS]);
    let value = polymod(customization, &padded) ^ 1;
    [
        ((value >> 20) & 1023) as u16,
        ((value >> 10) & 1023) as u16,
        (value & 1023) as u16,
    ]
}
