//! Ed25519, as the trust model uses it: public keys written as 64 hex characters, signatures
//! as base64 of their 64 bytes, and the one secret key type (a zeroized 32-byte seed) that the
//! quorum signing key and operator keys share.
//!
//! ring's `Ed25519KeyPair` does not zeroize its expanded key on drop, so the long-lived form
//! is the seed, in [`Zeroizing`], and a key pair is built only for the moment of a signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

use super::TrustError;

/// An Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SigningPublicKey([u8; 32]);

impl SigningPublicKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> SigningPublicKey {
        SigningPublicKey(bytes)
    }

    /// Parses the hex form (64 characters), naming `what` on failure.
    pub fn from_hex(text: &str, what: &str) -> Result<SigningPublicKey, TrustError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| TrustError::InvalidPublicKey {
            what: what.to_owned(),
        })?;
        Ok(SigningPublicKey(bytes))
    }

    /// The hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `signature` (64 bytes) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

/// Encodes a signature for a file (base64).
pub fn encode_signature(signature: &[u8; 64]) -> String {
    B64.encode(signature)
}

/// Decodes a signature from a file: base64 of exactly 64 bytes, or `None`.
pub fn decode_signature(text: &str) -> Option<[u8; 64]> {
    B64.decode(text).ok()?.try_into().ok()
}

/// An Ed25519 secret key: its 32-byte seed, zeroized on drop, and the public key.
pub struct SigningSeed {
    seed: Zeroizing<[u8; 32]>,
    public: SigningPublicKey,
}

impl std::fmt::Debug for SigningSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningSeed")
            .field("public", &self.public.to_hex())
            .finish_non_exhaustive()
    }
}

impl SigningSeed {
    /// The key of `seed` (taken, so no copy is left with the caller).
    pub(crate) fn from_seed(seed: Zeroizing<[u8; 32]>) -> Result<SigningSeed, TrustError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed[..]).map_err(|_| {
            TrustError::KeyRejected {
                what: "Ed25519 seed",
            }
        })?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(SigningSeed {
            seed,
            public: SigningPublicKey(public),
        })
    }

    /// A new random key.
    pub(crate) fn generate() -> Result<SigningSeed, TrustError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed[..])
            .map_err(|_| TrustError::Random)?;
        SigningSeed::from_seed(seed)
    }

    /// The seed, for writing a key file.
    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The public key.
    pub fn public_key(&self) -> SigningPublicKey {
        self.public
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], TrustError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&self.seed[..]).map_err(|_| {
            TrustError::KeyRejected {
                what: "Ed25519 seed",
            }
        })?;
        let mut signature = [0u8; 64];
        signature.copy_from_slice(pair.sign(message).as_ref());
        Ok(signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_message_and_key() {
        let key = SigningSeed::generate().unwrap();
        let other = SigningSeed::generate().unwrap();
        let signature = key.sign(b"message").unwrap();
        assert!(key.public_key().verifies(b"message", &signature));
        assert!(!key.public_key().verifies(b"messagf", &signature));
        assert!(!other.public_key().verifies(b"message", &signature));
        let mut altered = signature;
        altered[10] ^= 1;
        assert!(!key.public_key().verifies(b"message", &altered));
        assert_eq!(
            decode_signature(&encode_signature(&signature)),
            Some(signature)
        );
        assert_eq!(decode_signature("AAAA"), None);
    }

    #[test]
    fn debug_shows_the_public_key_and_never_the_seed() {
        let key = SigningSeed::from_seed(Zeroizing::new([7u8; 32])).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.public_key().to_hex()));
        assert!(!shown.contains(&hex::encode([7u8; 32])));
        assert!(!shown.contains("7, 7"));
    }

    #[test]
    fn public_keys_parse_from_hex_only_at_32_bytes() {
        let key = SigningSeed::generate().unwrap().public_key();
        assert_eq!(SigningPublicKey::from_hex(&key.to_hex(), "k").unwrap(), key);
        assert!(matches!(
            SigningPublicKey::from_hex("abcd", "the operator key of alice"),
            Err(TrustError::InvalidPublicKey { what }) if what == "the operator key of alice"
        ));
    }
}
