//! A custodian's contribution: their share HPKE-sealed to the ceremony's transport key, with
//! the request's hash in the HPKE `info` and their name in the `aad`, so that it opens only
//! with that key, for that request, under that name.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::hpke::{self, Aead, Kem, X25519SecretKey};

use super::{CeremonyError, Request};

/// The contribution format.
pub const CONTRIBUTION_FORMAT: &str = "breakglass-ceremony-contribution/1";

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
    use super::super::Purpose;
    use super::super::request::tests::request;
    use super::*;

    #[test]
    fn an_intercepted_contribution_opens_nothing_without_the_transport_key() {
        let transport = X25519SecretKey::generate().unwrap();
        let request = request(
            Purpose::Unseal {
                credential: "prod".into(),
            },
            hex::encode(transport.public_key_bytes()),
        );
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

    /// The request's hash is in the HPKE `info`, not only in the file's `request_sha256`: a
    /// contribution relabelled with another request's hash (same ceremony id, same transport
    /// key) passes the label check and still does not open.
    #[test]
    fn a_contribution_relabelled_for_another_request_does_not_open() {
        let transport = X25519SecretKey::generate().unwrap();
        let first = request(
            Purpose::Unseal {
                credential: "prod".into(),
            },
            hex::encode(transport.public_key_bytes()),
        );
        let mut second = first.clone();
        second.purpose = Purpose::Drill;
        assert_ne!(first.hash(), second.hash());
        let contribution = Contribution::seal(&first, "alice", "academic acid").unwrap();
        assert_eq!(contribution.request_sha256, first.hash());
        let mut relabelled = contribution.clone();
        relabelled.request_sha256 = second.hash();
        assert!(matches!(
            relabelled.open(&second, &transport, "file"),
            Err(crate::Error::Ceremony(CeremonyError::Tampered { .. }))
        ));
        assert_eq!(
            contribution
                .open(&first, &transport, "file")
                .unwrap()
                .as_str(),
            "academic acid"
        );
    }
}
