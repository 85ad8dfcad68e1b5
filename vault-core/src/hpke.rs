//! RFC 9180 HPKE, base mode, single-shot, implemented once over a DH oracle.
//!
//! Being implemented (see issue "Sealing core"). Planned public API beside the types below:
//! - `seal(kem, aead, recipient_public, info, aad, plaintext) -> Result<Sealed { enc, ciphertext }, HpkeError>`
//! - `open(aead, &dyn DhOracle, enc, info, aad, ciphertext) -> Result<SecretBytes, crate::Error>`
//! - `X25519SecretKey::derive_key_pair(ikm)` (DeriveKeyPair), implementing [`DhOracle`].

use thiserror::Error;

use crate::secret::SecretBytes;

/// The key encapsulation mechanisms breakglass uses (KDF inside the KEM: HKDF-SHA256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kem {
    /// DHKEM(P-256, HKDF-SHA256), KEM id 0x0010: the token's sealing key.
    P256HkdfSha256,
    /// DHKEM(X25519, HKDF-SHA256), KEM id 0x0020: the quorum key and ceremony transport keys.
    X25519HkdfSha256,
}

/// The recipient side of a DHKEM: whoever holds the private key answers one DH.
///
/// Software keys and token keys implement it alike, so decapsulation has one code path.
pub trait DhOracle {
    /// The KEM this key belongs to.
    fn kem(&self) -> Kem;
    /// The recipient public key `pkR`, serialised as the KEM specifies (65-byte uncompressed SEC1
    /// point for P-256, 32 bytes for X25519).
    fn public_key(&self) -> Vec<u8>;
    /// `DH(skR, peer)`: the raw shared secret (the x-coordinate for P-256, 32 bytes for X25519).
    /// `peer` is the serialised ephemeral public key `enc`.
    fn dh(&self, peer: &[u8]) -> Result<SecretBytes, crate::Error>;
}

/// An HPKE failure. Carries no key material.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HpkeError {
    /// Decryption failed: wrong key, or the ciphertext, `enc`, `info` or `aad` was altered.
    #[error("HPKE open failed: wrong key or altered ciphertext")]
    OpenFailed,
}
