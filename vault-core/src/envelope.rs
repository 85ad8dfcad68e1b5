//! The sealed credential: one JSON file per credential.
//!
//! A random 32-byte file key `FK` is split 2-of-2: `FK_h` random, `FK_q = FK ⊕ FK_h`.
//! Each enrolled token gets a stanza sealing `FK_h` (HPKE, DHKEM(P-256)/HKDF-SHA256/AES-256-GCM);
//! the quorum gets a stanza sealing `FK_q` (HPKE, DHKEM(X25519)/HKDF-SHA256/AES-256-GCM); the
//! payload is AES-256-GCM under `FK`. Neither authority alone learns anything about `FK`.
//!
//! Authentication of every byte:
//! - `H0`, a hash of the canonical encoding of the header fields (format, vault id, name, kind,
//!   created, public metadata), goes into every stanza's HPKE `info` with the stanza's role and
//!   recipient key, so a stanza opens only in the envelope it was made for;
//! - the token stanzas are bound together by `hsm_mac`, an HMAC over `H0` and every token
//!   stanza under a key derived from `FK_h`: whoever opens `FK_h` (an enrolled token, or the
//!   recovery key) can add a stanza for another token without the payload ever being
//!   decrypted, and nobody else can add, drop or change one unnoticed;
//! - the payload's AAD is the hash of `H0` and the quorum stanza, so with the MAC every byte of
//!   the header is authenticated when the envelope opens;
//! - the file must be in canonical form (exactly what [`Envelope::to_bytes`] writes, base64
//!   strictly canonical), so even a change of white space or letter case is an integrity
//!   failure rather than something that still opens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::canonical::Canonical;
use crate::hpke::{self, Aead, DhOracle, Kem};
use crate::secret::SecretBytes;

/// The envelope format this version writes.
pub const FORMAT: &str = "breakglass-envelope/2";
/// The first format (no `hsm_mac`; the payload AAD covered every stanza): still read and
/// opened, re-sealed as [`FORMAT`] by `rekey`; a token cannot be added to it.
pub const FORMAT_V1: &str = "breakglass-envelope/1";
/// The domain tag of [`Envelope::record_digest`].
pub const RECORD_DOMAIN: &[u8] = b"breakglass-envelope-record/1";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// What kind of credential an envelope holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// AWS access keys (and an optional MFA seed): used through STS.
    Aws,
    /// An AWS root user's console login: shown on a terminal, never used programmatically.
    AwsRoot,
    /// Anything else: named fields or a file.
    Secret,
}

impl Kind {
    /// The name used on the command line and in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Aws => "aws",
            Kind::AwsRoot => "aws-root",
            Kind::Secret => "secret",
        }
    }
}

/// An envelope problem. Integrity failures name the file and the check that failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The file was altered, damaged, or is not an envelope.
    #[error("{}: integrity check failed: {check}", file.display())]
    Integrity {
        /// The envelope file.
        file: PathBuf,
        /// What failed.
        check: String,
    },
    /// The envelope belongs to another vault.
    #[error("{}: belongs to vault {found}, not to this vault ({expected})", file.display())]
    ForeignVault {
        /// The envelope file.
        file: PathBuf,
        /// This vault's id.
        expected: String,
        /// The envelope's.
        found: String,
    },
    /// A format 1 envelope whose token layer was asked to change.
    #[error(
        "{}: sealed in format 1, whose token stanzas cannot be changed without re-sealing the \
         payload: run `breakglass rekey` first (it re-seals every credential in the current format)",
        file.display()
    )]
    FormatTooOld {
        /// The envelope file.
        file: PathBuf,
    },
    /// No stanza for the token at hand.
    #[error("{}: has no stanza for the token with public key {token_key}...: is this token enrolled for this credential?", file.display())]
    NoStanzaForToken {
        /// The envelope file.
        file: PathBuf,
        /// The first bytes of the token's public key (hex).
        token_key: String,
    },
}

/// One HPKE stanza.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stanza {
    /// The recipient's public key (hex).
    pub recipient: String,
    /// The encapsulated key (base64).
    pub enc: String,
    /// The sealed key half (base64).
    pub ciphertext: String,
}

/// The sealed payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// AES-GCM nonce (base64).
    pub nonce: String,
    /// AES-256-GCM ciphertext with tag (base64).
    pub ciphertext: String,
}

/// A sealed credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Always [`FORMAT`].
    pub format: String,
    /// The vault it belongs to.
    pub vault_id: String,
    /// The credential's name.
    pub name: String,
    /// The kind.
    pub kind: Kind,
    /// When it was sealed (RFC 3339 UTC).
    pub created: String,
    /// Public metadata (account, role ARN, region, ...), readable without unsealing.
    pub metadata: BTreeMap<String, String>,
    /// One stanza per enrolled token (and one for the recovery key, when enabled).
    pub hsm_stanzas: Vec<Stanza>,
    /// HMAC-SHA256 over `H0` and every token stanza, keyed from `FK_h` (base64); absent in
    /// [`FORMAT_V1`] envelopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsm_mac: Option<String>,
    /// The quorum's stanza.
    pub quorum_stanza: Stanza,
    /// The payload.
    pub payload: Payload,
}

/// What to seal.
pub struct SealInput<'a> {
    /// The vault id.
    pub vault_id: &'a str,
    /// The credential's name.
    pub name: &'a str,
    /// The kind.
    pub kind: Kind,
    /// When (RFC 3339 UTC).
    pub created: String,
    /// Public metadata.
    pub metadata: BTreeMap<String, String>,
    /// The secret payload.
    pub payload: &'a [u8],
    /// Every enrolled token's sealing public key (65-byte SEC1).
    pub hsm_public_keys: &'a [Vec<u8>],
    /// The quorum's public key (32 bytes).
    pub quorum_public_key: &'a [u8],
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, hpke::HpkeError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| hpke::HpkeError::Random)?;
    Ok(bytes)
}

fn header_hash(
    format: &str,
    vault_id: &str,
    name: &str,
    kind: Kind,
    created: &str,
    metadata: &BTreeMap<String, String>,
) -> [u8; 32] {
    let mut c = Canonical::default();
    c.field(format.as_bytes())
        .field(vault_id.as_bytes())
        .field(name.as_bytes())
        .field(kind.as_str().as_bytes())
        .field(created.as_bytes())
        .number(metadata.len() as u64);
    for (key, value) in metadata {
        c.field(key.as_bytes()).field(value.as_bytes());
    }
    c.sha256()
}

fn stanza_info(h0: &[u8; 32], role: &str, recipient: &[u8]) -> Vec<u8> {
    let mut c = Canonical::default();
    c.field(b"breakglass-envelope/1 stanza")
        .field(h0)
        .field(role.as_bytes())
        .field(recipient);
    c.into_bytes()
}

/// The payload AAD of a [`FORMAT_V1`] envelope: `H0` and every stanza.
fn payload_aad_v1(h0: &[u8; 32], hsm: &[Stanza], quorum: &Stanza) -> [u8; 32] {
    let mut c = Canonical::default();
    c.field(b"breakglass-envelope/1 payload")
        .field(h0)
        .number(hsm.len() as u64);
    for stanza in hsm.iter().chain(std::iter::once(quorum)) {
        c.field(stanza.recipient.as_bytes())
            .field(stanza.enc.as_bytes())
            .field(stanza.ciphertext.as_bytes());
    }
    c.sha256()
}

fn payload_aad(h0: &[u8; 32], quorum: &Stanza) -> [u8; 32] {
    let mut c = Canonical::default();
    c.field(b"breakglass-envelope/1 payload")
        .field(h0)
        .field(quorum.recipient.as_bytes())
        .field(quorum.enc.as_bytes())
        .field(quorum.ciphertext.as_bytes());
    c.sha256()
}

/// The MAC binding the token stanzas to `H0`, keyed from the token half of the file key.
fn hsm_mac(hsm_half: &[u8], h0: &[u8; 32], hsm: &[Stanza]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::hmac::sign(&hsm_mac_key(hsm_half), &hsm_mac_input(h0, hsm)).as_ref());
    out
}

fn hsm_mac_key(hsm_half: &[u8]) -> ring::hmac::Key {
    let derive = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, hsm_half);
    let mac_key = ring::hmac::sign(&derive, b"breakglass-envelope/1 hsm mac key");
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, mac_key.as_ref())
}

fn hsm_mac_input(h0: &[u8; 32], hsm: &[Stanza]) -> Vec<u8> {
    let mut c = Canonical::default();
    c.field(b"breakglass-envelope/1 hsm stanzas")
        .field(h0)
        .number(hsm.len() as u64);
    for stanza in hsm {
        c.field(stanza.recipient.as_bytes())
            .field(stanza.enc.as_bytes())
            .field(stanza.ciphertext.as_bytes());
    }
    c.into_bytes()
}

fn make_stanza(
    kem: Kem,
    recipient: &[u8],
    info: &[u8],
    key_half: &[u8],
) -> Result<Stanza, crate::Error> {
    let sealed = hpke::seal(kem, Aead::Aes256Gcm, recipient, info, b"", key_half)?;
    Ok(Stanza {
        recipient: hex::encode(recipient),
        enc: B64.encode(&sealed.enc),
        ciphertext: B64.encode(&sealed.ciphertext),
    })
}

/// Seals a credential (software only: public keys, no token, no shares).
pub fn seal(input: &SealInput<'_>) -> Result<Envelope, crate::Error> {
    let file_key = random::<KEY_LEN>()?;
    let hsm_half = random::<KEY_LEN>()?;
    let nonce = random::<NONCE_LEN>()?;
    seal_with(
        input,
        &file_key,
        &hsm_half,
        &nonce,
        &|kem, recipient, info, half, _| make_stanza(kem, recipient, info, half),
    )
}

/// Makes the stanza sealing `half` to `recipient` with `info`; the last argument is the
/// stanza's position (token stanzas first, then the quorum's), which fixes the ephemeral key
/// of a known-answer vector.
type StanzaMaker<'a> = dyn Fn(Kem, &[u8], &[u8], &[u8], usize) -> Result<Stanza, crate::Error> + 'a;

/// The sealing itself, with its randomness given: fresh from [`seal`], fixed in the
/// known-answer vectors (`test-vectors/envelope-kat.json`).
fn seal_with(
    input: &SealInput<'_>,
    file_key: &[u8; KEY_LEN],
    hsm_half: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    make_stanza: &StanzaMaker<'_>,
) -> Result<Envelope, crate::Error> {
    let h0 = header_hash(
        FORMAT,
        input.vault_id,
        input.name,
        input.kind,
        &input.created,
        &input.metadata,
    );
    let mut quorum_half = Zeroizing::new([0u8; KEY_LEN]);
    for i in 0..KEY_LEN {
        quorum_half[i] = file_key[i] ^ hsm_half[i];
    }
    let hsm_stanzas = input
        .hsm_public_keys
        .iter()
        .enumerate()
        .map(|(position, key)| {
            make_stanza(
                Kem::P256HkdfSha256,
                key,
                &stanza_info(&h0, "hsm", key),
                hsm_half,
                position,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let quorum_stanza = make_stanza(
        Kem::X25519HkdfSha256,
        input.quorum_public_key,
        &stanza_info(&h0, "quorum", input.quorum_public_key),
        quorum_half.as_ref(),
        hsm_stanzas.len(),
    )?;
    let mac = hsm_mac(hsm_half, &h0, &hsm_stanzas);
    let aad = payload_aad(&h0, &quorum_stanza);
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, file_key).map_err(|_| hpke::HpkeError::Random)?,
    );
    let mut buffer = input.payload.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(*nonce),
        Aad::from(aad),
        &mut buffer,
    )
    .map_err(|_| hpke::HpkeError::TooLong)?;
    Ok(Envelope {
        format: FORMAT.to_owned(),
        vault_id: input.vault_id.to_owned(),
        name: input.name.to_owned(),
        kind: input.kind,
        created: input.created.clone(),
        metadata: input.metadata.clone(),
        hsm_stanzas,
        hsm_mac: Some(B64.encode(mac)),
        quorum_stanza,
        payload: Payload {
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(&buffer),
        },
    })
}

impl Envelope {
    /// The canonical file bytes (pretty JSON, newline-terminated).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Parses an envelope file strictly: valid JSON, no unknown or duplicate fields, canonical
    /// form, canonical encodings. Any deviation is an integrity failure naming `file`.
    pub fn from_bytes(bytes: &[u8], file: &Path) -> Result<Envelope, EnvelopeError> {
        let fail = |check: String| EnvelopeError::Integrity {
            file: file.to_path_buf(),
            check,
        };
        let envelope: Envelope = serde_json::from_slice(bytes)
            .map_err(|e| fail(format!("not a valid envelope ({e})")))?;
        if envelope.to_bytes() != bytes {
            return Err(fail(
                "the file is not in canonical form (edited or damaged)".into(),
            ));
        }
        match (envelope.format.as_str(), &envelope.hsm_mac) {
            (FORMAT, Some(_)) | (FORMAT_V1, None) => {}
            (FORMAT, None) => return Err(fail("hsm_mac is missing".into())),
            (FORMAT_V1, Some(_)) => {
                return Err(fail("hsm_mac in a format 1 envelope".into()));
            }
            (other, _) => return Err(fail(format!("unknown format {other:?}"))),
        }
        for stanza in envelope
            .hsm_stanzas
            .iter()
            .chain(std::iter::once(&envelope.quorum_stanza))
        {
            canonical_hex(&stanza.recipient)
                .ok_or_else(|| fail("a stanza recipient is not canonical hex".into()))?;
            canonical_b64(&stanza.enc)
                .ok_or_else(|| fail("a stanza's enc is not canonical base64".into()))?;
            canonical_b64(&stanza.ciphertext)
                .ok_or_else(|| fail("a stanza's ciphertext is not canonical base64".into()))?;
        }
        if let Some(mac) = &envelope.hsm_mac
            && canonical_b64(mac).map(|m| m.len()) != Some(32)
        {
            return Err(fail("hsm_mac is not 32 bytes of canonical base64".into()));
        }
        let nonce = canonical_b64(&envelope.payload.nonce)
            .ok_or_else(|| fail("the payload nonce is not canonical base64".into()))?;
        if nonce.len() != NONCE_LEN {
            return Err(fail("the payload nonce has the wrong length".into()));
        }
        canonical_b64(&envelope.payload.ciphertext)
            .ok_or_else(|| fail("the payload is not canonical base64".into()))?;
        Ok(envelope)
    }

    /// The digest the audit log records for this envelope (hex):
    /// `SHA-256(Canonical["breakglass-envelope-record/1", H0, quorum recipient, quorum enc,
    /// quorum ciphertext, payload nonce, payload ciphertext])`, the members as their text in the
    /// file. It covers what the envelope opens to and everything only a seal (or a rekey)
    /// makes; not the token stanzas and their MAC, which enrolling or removing a token changes
    /// with the token alone (whoever holds `FK_h`), so enrolment needs no new record.
    pub fn record_digest(&self) -> String {
        let h0 = header_hash(
            &self.format,
            &self.vault_id,
            &self.name,
            self.kind,
            &self.created,
            &self.metadata,
        );
        let mut c = Canonical::default();
        c.field(RECORD_DOMAIN)
            .field(&h0)
            .field(self.quorum_stanza.recipient.as_bytes())
            .field(self.quorum_stanza.enc.as_bytes())
            .field(self.quorum_stanza.ciphertext.as_bytes())
            .field(self.payload.nonce.as_bytes())
            .field(self.payload.ciphertext.as_bytes());
        hex::encode(c.sha256())
    }

    /// Checks that the envelope belongs to `vault_id` and is the credential `name` (the file
    /// name it was read from): a file copied over another credential's is refused.
    pub fn check_identity(
        &self,
        vault_id: &str,
        name: &str,
        file: &Path,
    ) -> Result<(), EnvelopeError> {
        if self.vault_id != vault_id {
            return Err(EnvelopeError::ForeignVault {
                file: file.to_path_buf(),
                expected: vault_id.to_owned(),
                found: self.vault_id.clone(),
            });
        }
        if self.name != name {
            return Err(EnvelopeError::Integrity {
                file: file.to_path_buf(),
                check: format!("it holds credential {:?}, not {name:?}", self.name),
            });
        }
        Ok(())
    }

    fn h0(&self) -> [u8; 32] {
        header_hash(
            &self.format,
            &self.vault_id,
            &self.name,
            self.kind,
            &self.created,
            &self.metadata,
        )
    }

    fn open_stanza(
        &self,
        stanza: &Stanza,
        role: &str,
        oracle: &dyn DhOracle,
        file: &Path,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, crate::Error> {
        let recipient = oracle.public_key();
        let info = stanza_info(&self.h0(), role, &recipient);
        let enc = B64.decode(&stanza.enc).unwrap_or_default();
        let ciphertext = B64.decode(&stanza.ciphertext).unwrap_or_default();
        let half = match hpke::open(Aead::Aes256Gcm, oracle, &enc, &info, b"", &ciphertext) {
            Ok(half) => half,
            Err(crate::Error::Hpke(_)) => {
                return Err(EnvelopeError::Integrity {
                    file: file.to_path_buf(),
                    check: format!(
                        "the {role} stanza does not open (altered, or moved from another envelope)"
                    ),
                }
                .into());
            }
            Err(other) => return Err(other),
        };
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        if half.expose_secret().len() != KEY_LEN {
            return Err(EnvelopeError::Integrity {
                file: file.to_path_buf(),
                check: format!("the {role} stanza holds a key of the wrong length"),
            }
            .into());
        }
        out.copy_from_slice(half.expose_secret());
        Ok(out)
    }

    /// Opens the token's half of the file key with `hsm` (the stanza for its public key).
    pub fn open_hsm_half(
        &self,
        hsm: &dyn DhOracle,
        file: &Path,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, crate::Error> {
        let recipient = hex::encode(hsm.public_key());
        let stanza = self
            .hsm_stanzas
            .iter()
            .find(|s| s.recipient == recipient)
            .ok_or_else(|| EnvelopeError::NoStanzaForToken {
                file: file.to_path_buf(),
                token_key: recipient.chars().take(16).collect(),
            })?;
        let half = self.open_stanza(stanza, "hsm", hsm, file)?;
        let Some(mac) = &self.hsm_mac else {
            // Format 1: the payload's AAD covers the token stanzas instead.
            return Ok(half);
        };
        let found = B64.decode(mac).unwrap_or_default();
        let input = hsm_mac_input(&self.h0(), &self.hsm_stanzas);
        if ring::hmac::verify(&hsm_mac_key(half.as_ref()), &input, &found).is_err() {
            return Err(EnvelopeError::Integrity {
                file: file.to_path_buf(),
                check: "the token stanzas were altered, added or removed (hsm_mac)".into(),
            }
            .into());
        }
        Ok(half)
    }

    /// Adds a stanza for another token (or the recovery key) `recipient` (65-byte SEC1),
    /// opening only the token half of the file key with `hsm`: the payload is never
    /// decrypted, and the quorum is not needed. Returns false when `recipient` has a stanza
    /// already.
    pub fn add_hsm_recipient(
        &mut self,
        hsm: &dyn DhOracle,
        recipient: &[u8],
        file: &Path,
    ) -> Result<bool, crate::Error> {
        let encoded = hex::encode(recipient);
        if self.hsm_stanzas.iter().any(|s| s.recipient == encoded) {
            return Ok(false);
        }
        self.check_token_layer_editable(file)?;
        let half = self.open_hsm_half(hsm, file)?;
        let h0 = self.h0();
        self.hsm_stanzas.push(make_stanza(
            Kem::P256HkdfSha256,
            recipient,
            &stanza_info(&h0, "hsm", recipient),
            half.as_ref(),
        )?);
        self.hsm_mac = Some(B64.encode(hsm_mac(half.as_ref(), &h0, &self.hsm_stanzas)));
        Ok(true)
    }

    /// A format 1 envelope binds its token stanzas in the payload AAD: changing them needs
    /// the payload re-sealed, which a rekey does.
    fn check_token_layer_editable(&self, file: &Path) -> Result<(), crate::Error> {
        if self.hsm_mac.is_none() {
            return Err(EnvelopeError::FormatTooOld {
                file: file.to_path_buf(),
            }
            .into());
        }
        Ok(())
    }

    /// Removes the stanza of `recipient` (a lost token), opening the token half with `hsm`
    /// (another enrolled token or the recovery key) to recompute the MAC. Returns false when
    /// there is no such stanza. The token half itself stays the same: to give every credential
    /// fresh file keys as well, rekey.
    pub fn remove_hsm_recipient(
        &mut self,
        hsm: &dyn DhOracle,
        recipient: &[u8],
        file: &Path,
    ) -> Result<bool, crate::Error> {
        let encoded = hex::encode(recipient);
        if !self.hsm_stanzas.iter().any(|s| s.recipient == encoded) {
            return Ok(false);
        }
        self.check_token_layer_editable(file)?;
        let half = self.open_hsm_half(hsm, file)?;
        self.hsm_stanzas.retain(|s| s.recipient != encoded);
        self.hsm_mac = Some(B64.encode(hsm_mac(half.as_ref(), &self.h0(), &self.hsm_stanzas)));
        Ok(true)
    }

    /// Seals the same payload again, with fresh keys, for `hsm_public_keys` and
    /// `quorum_public_key` (rekey), keeping the header (name, kind, created, metadata).
    pub fn reseal(
        &self,
        payload: &SecretBytes,
        hsm_public_keys: &[Vec<u8>],
        quorum_public_key: &[u8],
    ) -> Result<Envelope, crate::Error> {
        seal(&SealInput {
            vault_id: &self.vault_id,
            name: &self.name,
            kind: self.kind,
            created: self.created.clone(),
            metadata: self.metadata.clone(),
            payload: payload.expose_secret(),
            hsm_public_keys,
            quorum_public_key,
        })
    }

    /// Opens the quorum's half of the file key.
    pub fn open_quorum_half(
        &self,
        quorum: &dyn DhOracle,
        file: &Path,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, crate::Error> {
        if self.quorum_stanza.recipient != hex::encode(quorum.public_key()) {
            return Err(EnvelopeError::Integrity {
                file: file.to_path_buf(),
                check: "the quorum stanza is for another quorum key".into(),
            }
            .into());
        }
        self.open_stanza(&self.quorum_stanza, "quorum", quorum, file)
    }

    /// Opens the payload with both authorities.
    pub fn open(
        &self,
        hsm: &dyn DhOracle,
        quorum: &dyn DhOracle,
        file: &Path,
    ) -> Result<SecretBytes, crate::Error> {
        let quorum_half = self.open_quorum_half(quorum, file)?;
        self.open_with_quorum_half(hsm, &quorum_half, file)
    }

    /// Opens the payload with `hsm` and the quorum's half of the file key that
    /// [`Envelope::open_quorum_half`] gave (a drill opens the quorum halves beside the token's
    /// work).
    pub fn open_with_quorum_half(
        &self,
        hsm: &dyn DhOracle,
        quorum_half: &[u8; KEY_LEN],
        file: &Path,
    ) -> Result<SecretBytes, crate::Error> {
        let hsm_half = self.open_hsm_half(hsm, file)?;
        let mut file_key = Zeroizing::new([0u8; KEY_LEN]);
        for i in 0..KEY_LEN {
            file_key[i] = hsm_half[i] ^ quorum_half[i];
        }
        let integrity = |check: &str| -> crate::Error {
            EnvelopeError::Integrity {
                file: file.to_path_buf(),
                check: check.to_owned(),
            }
            .into()
        };
        let aad = match self.hsm_mac {
            Some(_) => payload_aad(&self.h0(), &self.quorum_stanza),
            None => payload_aad_v1(&self.h0(), &self.hsm_stanzas, &self.quorum_stanza),
        };
        let nonce: [u8; NONCE_LEN] = B64
            .decode(&self.payload.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| integrity("the payload nonce is invalid"))?;
        let mut buffer = Zeroizing::new(
            B64.decode(&self.payload.ciphertext)
                .map_err(|_| integrity("the payload is not base64"))?,
        );
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, file_key.as_ref()).map_err(|_| integrity("file key"))?,
        );
        let plaintext = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buffer,
            )
            .map_err(|_| {
                integrity("the payload does not decrypt: the header or payload was altered")
            })?;
        Ok(SecretBytes::from(plaintext.to_vec()))
    }
}

fn canonical_b64(text: &str) -> Option<Vec<u8>> {
    let bytes = B64.decode(text).ok()?;
    (B64.encode(&bytes) == text).then_some(bytes)
}

fn canonical_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = hex::decode(text).ok()?;
    (hex::encode(&bytes) == text).then_some(bytes)
}

#[cfg(test)]
mod tests;
