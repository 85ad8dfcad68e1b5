//! Remote, asynchronous ceremonies: when custodians cannot be in one room.
//!
//! The coordinator opens a **request** (purpose, credential, reason, requester, expiry, the
//! audit chain head, and a fresh X25519 transport public key; the private key stays 0600 in the
//! vault's `ceremonies/`). Each custodian, on any machine, checks who asks for what and why and
//! writes a **contribution**: their share HPKE-sealed to the transport key, with the request's
//! hash in the HPKE `info` and their name in the `aad`. Files travel by any channel: an
//! intercepted contribution opens nothing without the transport key, and cannot be replayed into
//! another ceremony (another hash) or under another name.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::hpke::{self, Aead, Kem, X25519SecretKey};

/// The request format.
pub const REQUEST_FORMAT: &str = "breakglass-ceremony-request/1";
/// The contribution format.
pub const CONTRIBUTION_FORMAT: &str = "breakglass-ceremony-contribution/1";

/// A ceremony file that cannot be used, and why. Names the file's role, never share words.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CeremonyError {
    /// Not a request or contribution of this format.
    #[error("{what} is not valid: {reason}")]
    Invalid {
        /// Which file.
        what: String,
        /// Why.
        reason: String,
    },
    /// The request expired.
    #[error("ceremony {id} expired at {expires}: open a new one")]
    Expired {
        /// The ceremony.
        id: String,
        /// When it expired.
        expires: String,
    },
    /// A contribution made for another ceremony or vault.
    #[error("{what} was made for another ceremony ({found}), not {expected}")]
    OtherCeremony {
        /// Which file.
        what: String,
        /// This ceremony.
        expected: String,
        /// The contribution's.
        found: String,
    },
    /// The contribution does not open: altered, or its name was changed.
    #[error(
        "{what} does not open with this ceremony's transport key: it was altered or its custodian name changed"
    )]
    Tampered {
        /// Which file.
        what: String,
    },
}

/// The audit head a request embeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    /// Sequence number of the last line.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// A ceremony request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Always [`REQUEST_FORMAT`].
    pub format: String,
    /// The ceremony id (hex).
    pub id: String,
    /// The vault.
    pub vault_id: String,
    /// The vault's fingerprint, to compare with the share card.
    pub fingerprint: String,
    /// unseal, assume or drill.
    pub purpose: String,
    /// The credential, for unseal and assume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Why.
    pub reason: String,
    /// Who asks (user@host).
    pub requester: String,
    /// When (RFC 3339).
    pub created: String,
    /// Until when contributions are accepted (RFC 3339).
    pub expires: String,
    /// The audit chain head when the request was made.
    pub audit_head: AuditHead,
    /// The transport public key (hex X25519).
    pub transport_public_key: String,
    /// For a rekey: the custodians and recovery set it makes, shown to every custodian and
    /// carried out as written (the request's hash covers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey: Option<RekeyLayout>,
    /// For enabling recovery: the recovery set it makes (the request's hash covers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<LayoutGroup>,
}

/// The layout a rekey ceremony makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RekeyLayout {
    /// Groups needed.
    pub group_threshold: u8,
    /// The groups.
    pub groups: Vec<LayoutGroup>,
    /// The recovery set after the rekey (none: no recovery set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<LayoutGroup>,
}

/// One group of a layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutGroup {
    /// Its name.
    pub name: String,
    /// Members needed.
    pub threshold: u8,
    /// The members.
    pub members: Vec<String>,
}

impl RekeyLayout {
    /// "2 of [alice, bob, frank] (custodians)", groups joined by "; ", for people to read.
    pub fn describe(&self) -> String {
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|g| format!("{} of [{}] ({})", g.threshold, g.members.join(", "), g.name))
            .collect();
        let recovery = match &self.recovery {
            Some(r) => format!(
                "recovery set: {} of [{}]",
                r.threshold,
                r.members.join(", ")
            ),
            None => "no recovery set".to_owned(),
        };
        format!(
            "{} of {} groups: {}; {recovery}",
            self.group_threshold,
            self.groups.len(),
            groups.join("; ")
        )
    }
}

impl Request {
    /// The file bytes (pretty JSON, newline-terminated). The request's hash is over these.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Parses a request file.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Request, CeremonyError> {
        let invalid = |reason: String| CeremonyError::Invalid {
            what: what.to_owned(),
            reason,
        };
        let request: Request = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if request.format != REQUEST_FORMAT {
            return Err(invalid(format!("format {:?}", request.format)));
        }
        if request.to_bytes() != bytes {
            return Err(invalid("not in canonical form (edited)".into()));
        }
        Ok(request)
    }

    /// SHA-256 of the request file (hex): what contributions are bound to.
    pub fn hash(&self) -> String {
        hex::encode(digest(&SHA256, &self.to_bytes()).as_ref())
    }

    /// Refuses an expired request.
    pub fn check_not_expired(&self, now: u64) -> Result<(), CeremonyError> {
        match crate::clock::parse_rfc3339(&self.expires) {
            Some(t) if t > now => Ok(()),
            _ => Err(CeremonyError::Expired {
                id: self.id.clone(),
                expires: self.expires.clone(),
            }),
        }
    }
}

/// A custodian's contribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contribution {
    /// Always [`CONTRIBUTION_FORMAT`].
    pub format: String,
    /// The ceremony id.
    pub ceremony: String,
    /// The request's hash.
    pub request_sha256: String,
    /// The custodian's name (bound by the HPKE aad).
    pub custodian: String,
    /// HPKE enc (base64).
    pub enc: String,
    /// The sealed share (base64).
    pub ciphertext: String,
}

fn info(request_hash: &str) -> Vec<u8> {
    format!("breakglass-ceremony/1\n{request_hash}").into_bytes()
}

impl Contribution {
    /// Seals `mnemonic` for `request` as `custodian`.
    pub fn seal(
        request: &Request,
        custodian: &str,
        mnemonic: &str,
    ) -> Result<Contribution, crate::Error> {
        let transport =
            hex::decode(&request.transport_public_key).map_err(|_| CeremonyError::Invalid {
                what: "the request".into(),
                reason: "transport_public_key is not hex".into(),
            })?;
        let hash = request.hash();
        let sealed = hpke::seal(
            Kem::X25519HkdfSha256,
            Aead::Aes256Gcm,
            &transport,
            &info(&hash),
            custodian.as_bytes(),
            mnemonic.as_bytes(),
        )?;
        Ok(Contribution {
            format: CONTRIBUTION_FORMAT.into(),
            ceremony: request.id.clone(),
            request_sha256: hash,
            custodian: custodian.to_owned(),
            enc: B64.encode(&sealed.enc),
            ciphertext: B64.encode(&sealed.ciphertext),
        })
    }

    /// The file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Parses a contribution file.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Contribution, CeremonyError> {
        let contribution: Contribution =
            serde_json::from_slice(bytes).map_err(|e| CeremonyError::Invalid {
                what: what.to_owned(),
                reason: e.to_string(),
            })?;
        if contribution.format != CONTRIBUTION_FORMAT {
            return Err(CeremonyError::Invalid {
                what: what.to_owned(),
                reason: format!("format {:?}", contribution.format),
            });
        }
        Ok(contribution)
    }

    /// Opens the share with the ceremony's transport key, after checking it is for `request`.
    pub fn open(
        &self,
        request: &Request,
        transport: &X25519SecretKey,
        what: &str,
    ) -> Result<Zeroizing<String>, crate::Error> {
        if self.ceremony != request.id || self.request_sha256 != request.hash() {
            return Err(CeremonyError::OtherCeremony {
                what: what.to_owned(),
                expected: request.id.clone(),
                found: self.ceremony.clone(),
            }
            .into());
        }
        let tampered = || {
            crate::Error::from(CeremonyError::Tampered {
                what: what.to_owned(),
            })
        };
        let enc = B64.decode(&self.enc).map_err(|_| tampered())?;
        let ciphertext = B64.decode(&self.ciphertext).map_err(|_| tampered())?;
        let share = hpke::open(
            Aead::Aes256Gcm,
            transport,
            &enc,
            &info(&self.request_sha256),
            self.custodian.as_bytes(),
            &ciphertext,
        )
        .map_err(|_| tampered())?;
        let text = String::from_utf8(secrecy::ExposeSecret::expose_secret(&share).to_vec())
            .map_err(|_| tampered())?;
        Ok(Zeroizing::new(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(transport: &X25519SecretKey) -> Request {
        Request {
            format: REQUEST_FORMAT.into(),
            id: "0011223344556677".into(),
            vault_id: "vault".into(),
            fingerprint: "AAAA-BBBB".into(),
            purpose: "unseal".into(),
            credential: Some("prod".into()),
            reason: "IdP down".into(),
            requester: "coordinator@host".into(),
            created: "2026-11-24T12:00:00Z".into(),
            expires: "2026-11-24T16:00:00Z".into(),
            audit_head: AuditHead {
                seq: 3,
                hash: "ab".repeat(32),
            },
            transport_public_key: hex::encode(transport.public_key_bytes()),
            rekey: None,
            recovery: None,
        }
    }

    #[test]
    fn an_intercepted_contribution_opens_nothing_without_the_transport_key() {
        let transport = X25519SecretKey::generate().unwrap();
        let request = request(&transport);
        let words = "academic acid acrobat romp chubby";
        let contribution = Contribution::seal(&request, "alice", words).unwrap();
        let bytes = contribution.to_bytes();
        assert!(!String::from_utf8_lossy(&bytes).contains("acrobat"));
        let read = Contribution::from_bytes(&bytes, "file").unwrap();
        assert_eq!(
            read.open(&request, &transport, "file").unwrap().as_str(),
            words
        );
        // Whoever intercepts the request and the contribution holds every public part; with
        // any key but the coordinator's transport key the share stays sealed.
        let interceptor = X25519SecretKey::generate().unwrap();
        assert!(matches!(
            read.open(&request, &interceptor, "file"),
            Err(crate::Error::Ceremony(CeremonyError::Tampered { .. }))
        ));
        // Nor can the interceptor make it theirs by pointing a copy of the request at their
        // own key: the contribution is bound to the original request's hash.
        let mut swapped = request.clone();
        swapped.transport_public_key = hex::encode(interceptor.public_key_bytes());
        assert!(matches!(
            read.open(&swapped, &interceptor, "file"),
            Err(crate::Error::Ceremony(CeremonyError::OtherCeremony { .. }))
        ));
        // And relabelling it with another custodian's name breaks the seal (the name is the aad).
        let mut relabelled = read.clone();
        relabelled.custodian = "bob".into();
        assert!(matches!(
            relabelled.open(&request, &transport, "file"),
            Err(crate::Error::Ceremony(CeremonyError::Tampered { .. }))
        ));
    }
}
