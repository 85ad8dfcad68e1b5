//! The quorum signing key: an Ed25519 key pair derived from the recombined quorum secret `Q`.
//!
//! `seed = HKDF-SHA256(ikm = Q, salt = vault id, info = "breakglass quorum signing key/1")`,
//! 32 bytes, used as the Ed25519 seed. Only a quorum can produce it, so a signature by it says
//! "a quorum agreed". Its public key is part of the vault identity ([`super::identity`]); it
//! certifies every manifest version ([`super::certified`]). Every change to a vault already
//! needs `Q` (quorum-derived token PINs), so every change can re-sign.

use ring::hkdf;
use zeroize::Zeroizing;

use super::TrustError;
use super::signature::{SigningPublicKey, SigningSeed};

/// The HKDF `info` of the quorum signing key.
pub const QUORUM_SIGNING_KEY_INFO: &[u8] = b"breakglass quorum signing key/1";

/// The quorum signing key. No `Clone`, no `Debug` of the seed.
#[derive(Debug)]
pub struct QuorumSigningKey(SigningSeed);

/// `HKDF-SHA256(ikm, salt, info)` to 32 bytes, zeroized on drop.
pub(crate) fn hkdf32(ikm: &[u8], salt: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit (255 * 32): neither call can fail.
    if let Ok(okm) = prk.expand(info, hkdf::HKDF_SHA256) {
        let _ = okm.fill(&mut out[..]);
    }
    out
}

impl QuorumSigningKey {
    /// The signing key of vault `vault_id` from its quorum secret `q`.
    pub fn derive(q: &[u8], vault_id: &str) -> Result<QuorumSigningKey, TrustError> {
        let seed = hkdf32(q, vault_id.as_bytes(), &[QUORUM_SIGNING_KEY_INFO]);
        Ok(QuorumSigningKey(SigningSeed::from_seed(seed)?))
    }

    /// The public key (part of the vault identity).
    pub fn public_key(&self) -> SigningPublicKey {
        self.0.public_key()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], TrustError> {
        self.0.sign(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_a_function_of_the_quorum_secret_and_the_vault() {
        let q = [0x42u8; 32];
        let a = QuorumSigningKey::derive(&q, "vault-a").unwrap();
        assert_eq!(
            a.public_key(),
            QuorumSigningKey::derive(&q, "vault-a")
                .unwrap()
                .public_key()
        );
        // Another vault, or another secret (after a rekey), gives another key.
        assert_ne!(
            a.public_key(),
            QuorumSigningKey::derive(&q, "vault-b")
                .unwrap()
                .public_key()
        );
        assert_ne!(
            a.public_key(),
            QuorumSigningKey::derive(&[0x43u8; 32], "vault-a")
                .unwrap()
                .public_key()
        );
        let signature = a.sign(b"m").unwrap();
        assert!(a.public_key().verifies(b"m", &signature));
    }

    #[test]
    fn the_derivation_is_hkdf_sha256_with_the_documented_parameters() {
        // Recomputed by hand from RFC 5869 (HMAC-SHA256 extract, one expand block), so the
        // documented formula and the code cannot drift apart.
        let q = [0x01u8; 32];
        let hmac = |key: &[u8], data: &[u8]| {
            ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), data)
        };
        let prk = hmac(b"0123456789abcdef0123456789abcdef", &q);
        let mut block = QUORUM_SIGNING_KEY_INFO.to_vec();
        block.push(1);
        let okm = hmac(prk.as_ref(), &block);
        let derived = hkdf32(
            &q,
            b"0123456789abcdef0123456789abcdef",
            &[QUORUM_SIGNING_KEY_INFO],
        );
        assert_eq!(&derived[..], okm.as_ref());
    }

    #[test]
    fn debug_never_shows_the_seed() {
        let q = [0x42u8; 32];
        let key = QuorumSigningKey::derive(&q, "v").unwrap();
        let seed = hkdf32(&q, b"v", &[QUORUM_SIGNING_KEY_INFO]);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex::encode(&seed[..])));
        assert!(shown.contains(&key.public_key().to_hex()));
    }
}
