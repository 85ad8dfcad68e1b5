//! RFC 6238 TOTP, as AWS virtual MFA devices use it: HMAC-SHA1, 6 digits, 30-second steps, seed
//! given in base32. SHA-256 and SHA-512 are there for the RFC's own vectors.

use secrecy::{ExposeSecret, SecretSlice};
use thiserror::Error;

/// A TOTP seed that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TotpError {
    /// A character outside the base32 alphabet.
    #[error("the MFA seed is not base32: character {position} is not A-Z or 2-7")]
    InvalidCharacter {
        /// 1-based position of the character (spaces and '=' skipped).
        position: usize,
    },
    /// An empty seed.
    #[error("the MFA seed is empty")]
    Empty,
}

/// The HMAC of a TOTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1 (AWS virtual MFA, most authenticator apps).
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// A TOTP generator. The seed is zeroized on drop and never printed.
pub struct Totp {
    seed: SecretSlice<u8>,
    algorithm: Algorithm,
    digits: u32,
    step: u64,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Totp")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .finish_non_exhaustive()
    }
}

/// Decodes RFC 4648 base32 (case-insensitive; spaces, dashes and '=' padding ignored).
pub fn decode_base32(text: &str) -> Result<Vec<u8>, TotpError> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u64, 0u32);
    let mut position = 0;
    for c in text.chars() {
        if c == ' ' || c == '-' || c == '=' {
            continue;
        }
        position += 1;
        let value = match c.to_ascii_uppercase() {
            u @ 'A'..='Z' => u as u64 - 'A' as u64,
            d @ '2'..='7' => d as u64 - '2' as u64 + 26,
            _ => return Err(TotpError::InvalidCharacter { position }),
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    if out.is_empty() {
        return Err(TotpError::Empty);
    }
    Ok(out)
}

impl Totp {
    /// The AWS virtual MFA form: base32 seed, SHA-1, 6 digits, 30 seconds.
    pub fn from_base32(seed: &str) -> Result<Totp, TotpError> {
        Ok(Totp::new(decode_base32(seed)?, Algorithm::Sha1, 6))
    }

    /// Any seed, algorithm and number of digits, 30-second steps.
    pub fn new(seed: Vec<u8>, algorithm: Algorithm, digits: u32) -> Totp {
        Totp {
            seed: SecretSlice::from(seed),
            algorithm,
            digits,
            step: 30,
        }
    }

    /// The time step of a Unix time.
    pub fn step_at(&self, unix_time: u64) -> u64 {
        unix_time / self.step
    }

    /// The code for time step `counter` (RFC 4226 dynamic truncation).
    pub fn code_for_step(&self, counter: u64) -> String {
        let algorithm = match self.algorithm {
            Algorithm::Sha1 => ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::Sha256 => ring::hmac::HMAC_SHA256,
            Algorithm::Sha512 => ring::hmac::HMAC_SHA512,
        };
        let key = ring::hmac::Key::new(algorithm, self.seed.expose_secret());
        let tag = ring::hmac::sign(&key, &counter.to_be_bytes());
        let mac = tag.as_ref();
        let offset = usize::from(mac[mac.len() - 1] & 0x0f);
        let binary = u32::from_be_bytes([
            mac[offset] & 0x7f,
            mac[offset + 1],
            mac[offset + 2],
            mac[offset + 3],
        ]);
        let code = binary % 10u32.pow(self.digits);
        format!("{code:0width$}", width = self.digits as usize)
    }

    /// The code at a Unix time.
    pub fn code_at(&self, unix_time: u64) -> String {
        self.code_for_step(self.step_at(unix_time))
    }

    /// The code to use now, given the last step this vault already used (AWS refuses a code
    /// used before): the current step, or the next one with how many seconds to wait for it.
    pub fn next_unused(&self, last_used_step: Option<u64>, now: u64) -> (String, u64, u64) {
        let current = self.step_at(now);
        if last_used_step.is_some_and(|last| last >= current) {
            let next = last_used_step.unwrap_or(current) + 1;
            let wait = next * self.step - now;
            (self.code_for_step(next), next, wait)
        } else {
            (self.code_for_step(current), current, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: seeds are the ASCII strings "12345678901234567890" repeated to the
    /// hash's length, 8 digits.
    #[test]
    fn rfc6238_appendix_b() {
        let sha1 = b"12345678901234567890".to_vec();
        let sha256 = b"12345678901234567890123456789012".to_vec();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let cases: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (time, c1, c256, c512) in cases {
            assert_eq!(
                Totp::new(sha1.clone(), Algorithm::Sha1, 8).code_at(time),
                c1,
                "SHA1 at {time}"
            );
            assert_eq!(
                Totp::new(sha256.clone(), Algorithm::Sha256, 8).code_at(time),
                c256,
                "SHA256 at {time}"
            );
            assert_eq!(
                Totp::new(sha512.clone(), Algorithm::Sha512, 8).code_at(time),
                c512,
                "SHA512 at {time}"
            );
        }
        // Six digits are the last six of eight.
        assert_eq!(Totp::new(sha1, Algorithm::Sha1, 6).code_at(59), "287082");
    }

    #[test]
    fn base32_and_next_unused_window() {
        // "12345678901234567890" in base32.
        let totp = Totp::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap();
        assert_eq!(totp.code_at(59), "287082");
        assert_eq!(decode_base32("MZXW6==="), Ok(b"foo".to_vec()));
        assert_eq!(
            decode_base32("MZ1W6").unwrap_err(),
            TotpError::InvalidCharacter { position: 3 }
        );
        let (code, step, wait) = totp.next_unused(None, 65);
        assert_eq!((step, wait), (2, 0));
        assert_eq!(code, totp.code_for_step(2));
        let (_, step, wait) = totp.next_unused(Some(2), 65);
        assert_eq!((step, wait), (3, 25));
        assert!(!format!("{totp:?}").contains("12345"));
    }
}
