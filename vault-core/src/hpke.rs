//! RFC 9180 HPKE, base mode, single-shot, implemented once over a DH oracle.
//!
//! - KEMs: DHKEM(P-256, HKDF-SHA256) (the token's sealing key) and DHKEM(X25519, HKDF-SHA256)
//!   (the quorum key, ceremony transport keys). KDF: HKDF-SHA256. AEADs: AES-128-GCM and
//!   AES-256-GCM (ring).
//! - Sealing is software only: it needs the recipient's public key and a fresh ephemeral key.
//! - Opening asks a [`DhOracle`] for `DH(skR, enc)`: a software key ([`X25519SecretKey`],
//!   [`P256SecretKey`]) or a token key (`hsm::TokenDh`) alike, so there is one decapsulation path.
//!
//! HKDF is written over ring's HMAC rather than ring's `hkdf` module because HPKE's labelled
//! extract/expand need the PRK as bytes between steps (e.g. `dkp_prk`), which ring's `Prk`
//! does not expose.

use ring::aead::{self, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret;
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

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

impl Kem {
    /// The RFC 9180 KEM identifier.
    pub fn id(self) -> u16 {
        match self {
            Kem::P256HkdfSha256 => 0x0010,
            Kem::X25519HkdfSha256 => 0x0020,
        }
    }

    /// Length of a serialised public key (`Npk`), which is also `Nenc`.
    pub fn public_key_len(self) -> usize {
        match self {
            Kem::P256HkdfSha256 => 65,
            Kem::X25519HkdfSha256 => 32,
        }
    }

    fn suite_id(self) -> Vec<u8> {
        let mut id = b"KEM".to_vec();
        id.extend_from_slice(&self.id().to_be_bytes());
        id
    }
}

/// The AEADs breakglass uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Aead {
    /// AES-128-GCM, AEAD id 0x0001 (the RFC vectors; not used for sealing).
    Aes128Gcm,
    /// AES-256-GCM, AEAD id 0x0002: every breakglass stanza.
    Aes256Gcm,
}

impl Aead {
    /// The RFC 9180 AEAD identifier.
    pub fn id(self) -> u16 {
        match self {
            Aead::Aes128Gcm => 0x0001,
            Aead::Aes256Gcm => 0x0002,
        }
    }

    fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm => 32,
        }
    }

    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Aead::Aes128Gcm => &aead::AES_128_GCM,
            Aead::Aes256Gcm => &aead::AES_256_GCM,
        }
    }
}

/// HKDF-SHA256's KDF identifier.
const KDF_HKDF_SHA256: u16 = 0x0001;
/// `Nh` of HKDF-SHA256, also `Nsecret` of both DHKEMs.
const NH: usize = 32;
/// `Nn`: AES-GCM nonce length.
const NONCE_LEN: usize = 12;
/// Base mode.
const MODE_BASE: u8 = 0x00;

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
    /// A public key (the recipient's or `enc`) is not a valid key of the KEM.
    #[error("invalid {kem:?} public key: {reason}")]
    InvalidPublicKey {
        /// The KEM.
        kem: Kem,
        /// What is wrong.
        reason: &'static str,
    },
    /// The DH result was all zeros (a small-order X25519 point), as RFC 9180 §7.1.4 forbids.
    #[error("X25519 produced an all-zero shared secret (small-order public key)")]
    ZeroSharedSecret,
    /// `DeriveKeyPair` found no valid P-256 scalar in 256 candidates (probability ~2^-8192).
    #[error("DeriveKeyPair failed to find a valid key")]
    DeriveKeyPairFailed,
    /// The operating system's random generator failed.
    #[error("the operating system's random generator failed")]
    Random,
    /// The message is longer than AES-GCM allows.
    #[error("plaintext too long for AES-GCM")]
    TooLong,
}

/// The output of a single-shot seal: the encapsulated key and the ciphertext (with its tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The serialised ephemeral public key.
    pub enc: Vec<u8>,
    /// The AEAD ciphertext, tag appended.
    pub ciphertext: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------
// HKDF-SHA256 and the labelled forms.

fn hkdf_extract(salt: &[u8], ikm: &[&[u8]]) -> Zeroizing<[u8; NH]> {
    let key = hmac::Key::new(
        hmac::HMAC_SHA256,
        if salt.is_empty() { &[0u8; NH] } else { salt },
    );
    let mut context = hmac::Context::with_key(&key);
    for part in ikm {
        context.update(part);
    }
    let mut prk = Zeroizing::new([0u8; NH]);
    prk.copy_from_slice(context.sign().as_ref());
    prk
}

fn hkdf_expand(prk: &[u8], info: &[&[u8]], len: usize) -> Zeroizing<Vec<u8>> {
    debug_assert!(len <= 255 * NH);
    let key = hmac::Key::new(hmac::HMAC_SHA256, prk);
    let mut okm = Zeroizing::new(Vec::with_capacity(len + NH));
    let mut previous = Zeroizing::new(Vec::new());
    let mut counter = 1u8;
    while okm.len() < len {
        let mut context = hmac::Context::with_key(&key);
        context.update(&previous);
        for part in info {
            context.update(part);
        }
        context.update(&[counter]);
        previous.zeroize();
        previous.extend_from_slice(context.sign().as_ref());
        okm.extend_from_slice(&previous);
        counter = counter.wrapping_add(1);
    }
    okm.truncate(len);
    okm
}

fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; NH]> {
    hkdf_extract(salt, &[b"HPKE-v1", suite_id, label, ikm])
}

fn labeled_expand(
    suite_id: &[u8],
    prk: &[u8],
    label: &[u8],
    info: &[u8],
    len: usize,
) -> Zeroizing<Vec<u8>> {
    let len_bytes = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
    hkdf_expand(prk, &[&len_bytes, b"HPKE-v1", suite_id, label, info], len)
}

// ---------------------------------------------------------------------------------------------
// DHKEM.

fn extract_and_expand(kem: Kem, dh: &[u8], kem_context: &[u8]) -> Zeroizing<Vec<u8>> {
    let suite = kem.suite_id();
    let eae_prk = labeled_extract(&suite, b"", b"eae_prk", dh);
    labeled_expand(&suite, eae_prk.as_ref(), b"shared_secret", kem_context, NH)
}

/// `Decap(enc, skR)`: the KEM shared secret, with the private key behind any [`DhOracle`].
pub fn kem_shared_secret(
    recipient: &dyn DhOracle,
    enc: &[u8],
) -> Result<SecretBytes, crate::Error> {
    let kem = recipient.kem();
    validate_public_key(kem, enc)?;
    let dh = recipient.dh(enc)?;
    let mut kem_context = enc.to_vec();
    kem_context.extend_from_slice(&recipient.public_key());
    let shared = extract_and_expand(kem, dh.expose_secret(), &kem_context);
    Ok(SecretBytes::from(shared.to_vec()))
}

/// Checks that `public` is a valid serialised public key of `kem`.
pub fn validate_public_key(kem: Kem, public: &[u8]) -> Result<(), HpkeError> {
    if public.len() != kem.public_key_len() {
        return Err(HpkeError::InvalidPublicKey {
            kem,
            reason: "wrong length",
        });
    }
    if kem == Kem::P256HkdfSha256 {
        if public[0] != 0x04 {
            return Err(HpkeError::InvalidPublicKey {
                kem,
                reason: "not an uncompressed point",
            });
        }
        p256::PublicKey::from_sec1_bytes(public).map_err(|_| HpkeError::InvalidPublicKey {
            kem,
            reason: "not a point on the curve",
        })?;
    }
    Ok(())
}

/// A given ephemeral private key, for the sender side (the RFC vectors).
#[cfg(test)]
enum SenderKey {
    X25519(x25519_dalek::StaticSecret),
    P256(p256::SecretKey),
}

#[cfg(test)]
impl SenderKey {
    fn public_key(&self) -> Vec<u8> {
        match self {
            SenderKey::X25519(secret) => x25519_dalek::PublicKey::from(secret).as_bytes().to_vec(),
            SenderKey::P256(secret) => p256_public_bytes(secret),
        }
    }

    fn dh(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
        match self {
            SenderKey::X25519(secret) => x25519_dh(secret, peer),
            SenderKey::P256(secret) => p256_dh(secret, peer),
        }
    }
}

fn x25519_dh(
    secret: &x25519_dalek::StaticSecret,
    peer: &[u8],
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    let peer: [u8; 32] = peer.try_into().map_err(|_| HpkeError::InvalidPublicKey {
        kem: Kem::X25519HkdfSha256,
        reason: "wrong length",
    })?;
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(peer));
    if !shared.was_contributory() {
        return Err(HpkeError::ZeroSharedSecret);
    }
    Ok(Zeroizing::new(shared.as_bytes().to_vec()))
}

fn p256_dh(secret: &p256::SecretKey, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    validate_public_key(Kem::P256HkdfSha256, peer)?;
    let peer = p256::PublicKey::from_sec1_bytes(peer).map_err(|_| HpkeError::InvalidPublicKey {
        kem: Kem::P256HkdfSha256,
        reason: "not a point on the curve",
    })?;
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
    Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
}

fn p256_public_bytes(secret: &p256::SecretKey) -> Vec<u8> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    secret
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec()
}

fn random_32() -> Result<Zeroizing<[u8; 32]>, HpkeError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| HpkeError::Random)?;
    Ok(bytes)
}

/// A software X25519 private key (the quorum key, transport keys). Zeroized on drop; no
/// `Debug` of the secret, no `Clone`.
pub struct X25519SecretKey {
    secret: x25519_dalek::StaticSecret,
    /// Its public key, computed once (a drill or a rekey asks for it at every envelope, and
    /// each time was a scalar multiplication).
    public: [u8; 32],
}

impl std::fmt::Debug for X25519SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X25519SecretKey")
            .field("public", &hex::encode(self.public_key_bytes()))
            .finish_non_exhaustive()
    }
}

impl X25519SecretKey {
    /// A fresh key from the OS random generator.
    pub fn generate() -> Result<X25519SecretKey, HpkeError> {
        Ok(X25519SecretKey::of(x25519_dalek::StaticSecret::from(
            *random_32()?,
        )))
    }

    fn of(secret: x25519_dalek::StaticSecret) -> X25519SecretKey {
        let public = *x25519_dalek::PublicKey::from(&secret).as_bytes();
        X25519SecretKey { secret, public }
    }

    /// RFC 9180 `DeriveKeyPair(ikm)` for DHKEM(X25519, HKDF-SHA256).
    pub fn derive_key_pair(ikm: &[u8]) -> X25519SecretKey {
        let suite = Kem::X25519HkdfSha256.suite_id();
        let dkp_prk = labeled_extract(&suite, b"", b"dkp_prk", ikm);
        let sk = labeled_expand(&suite, dkp_prk.as_ref(), b"sk", b"", 32);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&sk);
        X25519SecretKey::of(x25519_dalek::StaticSecret::from(*bytes))
    }

    /// Restores a key from its 32 private bytes (e.g. a ceremony transport key at rest).
    pub fn from_bytes(bytes: &[u8; 32]) -> X25519SecretKey {
        X25519SecretKey::of(x25519_dalek::StaticSecret::from(*bytes))
    }

    /// The 32 private bytes, for storing a key in a 0600 file.
    pub fn to_secret_bytes(&self) -> SecretBytes {
        SecretBytes::from(self.secret.to_bytes().to_vec())
    }

    /// The public key (32 bytes).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        self.public.to_vec()
    }
}

impl DhOracle for X25519SecretKey {
    fn kem(&self) -> Kem {
        Kem::X25519HkdfSha256
    }

    fn public_key(&self) -> Vec<u8> {
        self.public_key_bytes()
    }

    fn dh(&self, peer: &[u8]) -> Result<SecretBytes, crate::Error> {
        Ok(SecretBytes::from(x25519_dh(&self.secret, peer)?.to_vec()))
    }
}

/// A software P-256 private key (tests, and recovery without a token). Zeroized on drop.
pub struct P256SecretKey {
    secret: p256::SecretKey,
}

impl std::fmt::Debug for P256SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P256SecretKey")
            .field("public", &hex::encode(self.public_key_bytes()))
            .finish_non_exhaustive()
    }
}

impl P256SecretKey {
    /// A fresh key from the OS random generator.
    pub fn generate() -> Result<P256SecretKey, HpkeError> {
        loop {
            let candidate = random_32()?;
            if let Ok(secret) = p256::SecretKey::from_slice(candidate.as_ref()) {
                return Ok(P256SecretKey { secret });
            }
        }
    }

    /// RFC 9180 `DeriveKeyPair(ikm)` for DHKEM(P-256, HKDF-SHA256) (rejection sampling).
    pub fn derive_key_pair(ikm: &[u8]) -> Result<P256SecretKey, HpkeError> {
        let suite = Kem::P256HkdfSha256.suite_id();
        let dkp_prk = labeled_extract(&suite, b"", b"dkp_prk", ikm);
        for counter in 0u8..=255 {
            let candidate = labeled_expand(&suite, dkp_prk.as_ref(), b"candidate", &[counter], 32);
            // The bitmask for P-256 is 0xff: the candidate is used as it is.
            if let Ok(secret) = p256::SecretKey::from_slice(&candidate) {
                return Ok(P256SecretKey { secret });
            }
        }
        Err(HpkeError::DeriveKeyPairFailed)
    }

    /// The 32-byte scalar, for importing a known key into a token in tests.
    pub fn to_secret_bytes(&self) -> SecretBytes {
        SecretBytes::from(self.secret.to_bytes().to_vec())
    }

    /// The public key, uncompressed SEC1 (65 bytes).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        p256_public_bytes(&self.secret)
    }
}

impl DhOracle for P256SecretKey {
    fn kem(&self) -> Kem {
        Kem::P256HkdfSha256
    }

    fn public_key(&self) -> Vec<u8> {
        self.public_key_bytes()
    }

    fn dh(&self, peer: &[u8]) -> Result<SecretBytes, crate::Error> {
        Ok(SecretBytes::from(p256_dh(&self.secret, peer)?.to_vec()))
    }
}

// ---------------------------------------------------------------------------------------------
// Key schedule and single-shot seal/open.

/// The base-mode context: key and nonce for a sequence of messages.
struct Context {
    aead: Aead,
    key: Zeroizing<Vec<u8>>,
    base_nonce: [u8; NONCE_LEN],
    #[cfg(test)]
    exporter_secret: Zeroizing<Vec<u8>>,
    #[cfg(test)]
    ks_context: Vec<u8>,
    #[cfg(test)]
    secret: Vec<u8>,
}

fn hpke_suite_id(kem: Kem, aead: Aead) -> Vec<u8> {
    let mut id = b"HPKE".to_vec();
    id.extend_from_slice(&kem.id().to_be_bytes());
    id.extend_from_slice(&KDF_HKDF_SHA256.to_be_bytes());
    id.extend_from_slice(&aead.id().to_be_bytes());
    id
}

fn key_schedule(kem: Kem, aead: Aead, shared_secret: &[u8], info: &[u8]) -> Context {
    let suite = hpke_suite_id(kem, aead);
    let psk_id_hash = labeled_extract(&suite, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(&suite, b"", b"info_hash", info);
    let mut ks_context = vec![MODE_BASE];
    ks_context.extend_from_slice(psk_id_hash.as_ref());
    ks_context.extend_from_slice(info_hash.as_ref());
    let secret = labeled_extract(&suite, shared_secret, b"secret", b"");
    let key = labeled_expand(&suite, secret.as_ref(), b"key", &ks_context, aead.key_len());
    let nonce = labeled_expand(
        &suite,
        secret.as_ref(),
        b"base_nonce",
        &ks_context,
        NONCE_LEN,
    );
    let mut base_nonce = [0u8; NONCE_LEN];
    base_nonce.copy_from_slice(&nonce);
    Context {
        aead,
        key,
        base_nonce,
        #[cfg(test)]
        exporter_secret: labeled_expand(&suite, secret.as_ref(), b"exp", &ks_context, NH),
        #[cfg(test)]
        ks_context: ks_context.clone(),
        #[cfg(test)]
        secret: secret.to_vec(),
    }
}

impl Context {
    fn nonce(&self, sequence: u64) -> Nonce {
        let mut nonce = self.base_nonce;
        for (byte, seq) in nonce[NONCE_LEN - 8..]
            .iter_mut()
            .zip(sequence.to_be_bytes())
        {
            *byte ^= seq;
        }
        Nonce::assume_unique_for_key(nonce)
    }

    fn aead_key(&self) -> LessSafeKey {
        // The key length always matches the algorithm: both come from `self.aead`.
        LessSafeKey::new(
            UnboundKey::new(self.aead.algorithm(), &self.key).unwrap_or_else(|_| unreachable!()),
        )
    }

    fn seal(&self, sequence: u64, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HpkeError> {
        let mut buffer = plaintext.to_vec();
        self.aead_key()
            .seal_in_place_append_tag(self.nonce(sequence), aead::Aad::from(aad), &mut buffer)
            .map_err(|_| HpkeError::TooLong)?;
        Ok(buffer)
    }

    fn open(&self, sequence: u64, aad: &[u8], ciphertext: &[u8]) -> Result<SecretBytes, HpkeError> {
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plaintext = self
            .aead_key()
            .open_in_place(self.nonce(sequence), aead::Aad::from(aad), &mut buffer)
            .map_err(|_| HpkeError::OpenFailed)?;
        Ok(SecretBytes::from(plaintext.to_vec()))
    }
}

/// Single-shot base-mode seal of `plaintext` to `recipient_public`, with a fresh ephemeral key.
///
/// The fresh ephemeral key and its DH come from ring (its P-256 is several times faster than a
/// generic implementation); a given ephemeral key (the RFC vectors) takes the other path.
pub fn seal(
    kem: Kem,
    aead: Aead,
    recipient_public: &[u8],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, HpkeError> {
    validate_public_key(kem, recipient_public)?;
    let algorithm = match kem {
        Kem::P256HkdfSha256 => &ring::agreement::ECDH_P256,
        Kem::X25519HkdfSha256 => &ring::agreement::X25519,
    };
    let ephemeral = ring::agreement::EphemeralPrivateKey::generate(algorithm, &SystemRandom::new())
        .map_err(|_| HpkeError::Random)?;
    let enc = ephemeral
        .compute_public_key()
        .map_err(|_| HpkeError::Random)?
        .as_ref()
        .to_vec();
    let peer = ring::agreement::UnparsedPublicKey::new(algorithm, recipient_public);
    let dh = ring::agreement::agree_ephemeral(ephemeral, &peer, |shared| {
        if shared.iter().all(|b| *b == 0) {
            None
        } else {
            Some(Zeroizing::new(shared.to_vec()))
        }
    })
    .map_err(|_| HpkeError::InvalidPublicKey {
        kem,
        reason: "rejected by the DH",
    })?
    .ok_or(HpkeError::ZeroSharedSecret)?;
    finish_seal(kem, aead, &dh, enc, recipient_public, info, aad, plaintext)
}

#[allow(clippy::too_many_arguments)]
fn finish_seal(
    kem: Kem,
    aead: Aead,
    dh: &[u8],
    enc: Vec<u8>,
    recipient_public: &[u8],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, HpkeError> {
    let mut kem_context = enc.clone();
    kem_context.extend_from_slice(recipient_public);
    let shared_secret = extract_and_expand(kem, dh, &kem_context);
    let context = key_schedule(kem, aead, &shared_secret, info);
    Ok(Sealed {
        enc,
        ciphertext: context.seal(0, aad, plaintext)?,
    })
}

/// Single-shot seal with the ephemeral key `DeriveKeyPair(ikm)` of `kem`: the known-answer
/// vectors' fixed randomness (tests only; a real seal takes a fresh key from [`seal`]).
#[cfg(test)]
pub(crate) fn seal_with_derived_ephemeral(
    kem: Kem,
    ikm: &[u8],
    aead: Aead,
    recipient_public: &[u8],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, HpkeError> {
    let ephemeral = match kem {
        Kem::P256HkdfSha256 => SenderKey::P256(P256SecretKey::derive_key_pair(ikm)?.secret),
        Kem::X25519HkdfSha256 => SenderKey::X25519(X25519SecretKey::derive_key_pair(ikm).secret),
    };
    seal_with_ephemeral(
        &ephemeral,
        kem,
        aead,
        recipient_public,
        info,
        aad,
        plaintext,
    )
}

#[cfg(test)]
fn seal_with_ephemeral(
    ephemeral: &SenderKey,
    kem: Kem,
    aead: Aead,
    recipient_public: &[u8],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, HpkeError> {
    validate_public_key(kem, recipient_public)?;
    let dh = ephemeral.dh(recipient_public)?;
    finish_seal(
        kem,
        aead,
        &dh,
        ephemeral.public_key(),
        recipient_public,
        info,
        aad,
        plaintext,
    )
}

/// Single-shot base-mode open: decapsulates `enc` through `recipient` and decrypts.
pub fn open(
    aead: Aead,
    recipient: &dyn DhOracle,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<SecretBytes, crate::Error> {
    let shared_secret = kem_shared_secret(recipient, enc)?;
    let context = key_schedule(recipient.kem(), aead, shared_secret.expose_secret(), info);
    Ok(context.open(0, aad, ciphertext)?)
}

#[cfg(test)]
mod tests;
