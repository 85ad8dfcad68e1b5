//! A ceremony request: who asks for what and why, until when, on which audit head, and the
//! transport key contributions are sealed to. The purpose carries its own data
//! ([`Purpose`]), so every place that acts on a purpose is named by the compiler when one is
//! added. The file is canonical JSON: its hash, which every contribution is bound to, is over
//! exactly the bytes written.

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use super::CeremonyError;

/// The request format.
pub const REQUEST_FORMAT: &str = "breakglass-ceremony-request/1";

/// What a ceremony's quorum is for, with what that purpose needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Open a credential.
    Unseal {
        /// The credential.
        credential: String,
    },
    /// Open an aws credential and assume its emergency role.
    Assume {
        /// The credential.
        credential: String,
    },
    /// Prove the emergency path works: every credential opens.
    Drill,
    /// Replace a sealed AWS key with a new one.
    Rotate {
        /// The credential.
        credential: String,
    },
    /// A new quorum secret and shares, for this layout.
    Rekey(RekeyLayout),
    /// Enable a recovery share set: this one.
    Recovery(LayoutGroup),
}

impl Purpose {
    /// The purpose's name, as the request file and the audit log write it.
    pub fn name(&self) -> &'static str {
        match self {
            Purpose::Unseal { .. } => "unseal",
            Purpose::Assume { .. } => "assume",
            Purpose::Drill => "drill",
            Purpose::Rotate { .. } => "rotate",
            Purpose::Rekey(_) => "rekey",
            Purpose::Recovery(_) => "recovery",
        }
    }

    /// The credential it is about, for those about one.
    pub fn credential(&self) -> Option<&str> {
        match self {
            Purpose::Unseal { credential }
            | Purpose::Assume { credential }
            | Purpose::Rotate { credential } => Some(credential),
            Purpose::Drill | Purpose::Rekey(_) | Purpose::Recovery(_) => None,
        }
    }
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
#[serde(into = "RequestFile", try_from = "RequestFile")]
pub struct Request {
    /// Always [`REQUEST_FORMAT`].
    pub format: String,
    /// The ceremony id (hex).
    pub id: String,
    /// The vault.
    pub vault_id: String,
    /// The vault's fingerprint, to compare with the share card.
    pub fingerprint: String,
    /// What the quorum is for.
    pub purpose: Purpose,
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
}

/// The request as its file holds it: the purpose's data in fields of their own.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFile {
    format: String,
    id: String,
    vault_id: String,
    fingerprint: String,
    purpose: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credential: Option<String>,
    reason: String,
    requester: String,
    created: String,
    expires: String,
    audit_head: AuditHead,
    transport_public_key: String,
    /// For a rekey: the custodians and recovery set it makes, shown to every custodian and
    /// carried out as written (the request's hash covers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rekey: Option<RekeyLayout>,
    /// For enabling recovery: the recovery set it makes (the request's hash covers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recovery: Option<LayoutGroup>,
}

impl From<Request> for RequestFile {
    fn from(request: Request) -> RequestFile {
        let credential = request.purpose.credential().map(str::to_owned);
        let name = request.purpose.name().to_owned();
        let (rekey, recovery) = match request.purpose {
            Purpose::Rekey(layout) => (Some(layout), None),
            Purpose::Recovery(set) => (None, Some(set)),
            _ => (None, None),
        };
        RequestFile {
            format: request.format,
            id: request.id,
            vault_id: request.vault_id,
            fingerprint: request.fingerprint,
            purpose: name,
            credential,
            reason: request.reason,
            requester: request.requester,
            created: request.created,
            expires: request.expires,
            audit_head: request.audit_head,
            transport_public_key: request.transport_public_key,
            rekey,
            recovery,
        }
    }
}

impl TryFrom<RequestFile> for Request {
    type Error = String;

    fn try_from(file: RequestFile) -> Result<Request, String> {
        let purpose = match (
            file.purpose.as_str(),
            file.credential,
            file.rekey,
            file.recovery,
        ) {
            ("unseal", Some(credential), None, None) => Purpose::Unseal { credential },
            ("assume", Some(credential), None, None) => Purpose::Assume { credential },
            ("rotate", Some(credential), None, None) => Purpose::Rotate { credential },
            ("drill", None, None, None) => Purpose::Drill,
            ("rekey", None, Some(layout), None) => Purpose::Rekey(layout),
            ("recovery", None, None, Some(set)) => Purpose::Recovery(set),
            (purpose @ ("unseal" | "assume" | "rotate" | "drill" | "rekey" | "recovery"), ..) => {
                return Err(format!(
                    "purpose {purpose} with fields that do not go with it (or without those it needs)"
                ));
            }
            (other, ..) => return Err(format!("unknown purpose {other:?}")),
        };
        Ok(Request {
            format: file.format,
            id: file.id,
            vault_id: file.vault_id,
            fingerprint: file.fingerprint,
            purpose,
            reason: file.reason,
            requester: file.requester,
            created: file.created,
            expires: file.expires,
            audit_head: file.audit_head,
            transport_public_key: file.transport_public_key,
        })
    }
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

    /// What the custodian is asked to agree to, for people to read: "unseal prod", "rekey the
    /// vault: ...".
    pub fn describe(&self) -> String {
        let what = match &self.purpose {
            Purpose::Rekey(layout) => format!(
                "the vault: YOUR CURRENT SHARE STOPS WORKING; new shares for {}",
                layout.describe()
            ),
            Purpose::Drill => "(all credentials: a drill)".to_owned(),
            Purpose::Recovery(set) => format!(
                "enable a recovery set: {} of [{}]; with a quorum, it would open every credential WITHOUT THE TOKEN",
                set.threshold,
                set.members.join(", ")
            ),
            Purpose::Rotate { credential } => {
                format!("{credential}: a new AWS key is made and sealed, the old one deleted")
            }
            Purpose::Unseal { credential } | Purpose::Assume { credential } => credential.clone(),
        };
        format!("{} {what}", self.purpose.name())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A request for `purpose` with fixed values.
    pub fn request(purpose: Purpose, transport_public_key: String) -> Request {
        Request {
            format: REQUEST_FORMAT.into(),
            id: "0011223344556677".into(),
            vault_id: "vault".into(),
            fingerprint: "AAAA-BBBB".into(),
            purpose,
            reason: "IdP down".into(),
            requester: "coordinator@host".into(),
            created: "2026-11-24T12:00:00Z".into(),
            expires: "2026-11-24T16:00:00Z".into(),
            audit_head: AuditHead {
                seq: 3,
                hash: "ab".repeat(32),
            },
            transport_public_key,
        }
    }

    fn group(name: &str) -> LayoutGroup {
        LayoutGroup {
            name: name.into(),
            threshold: 2,
            members: vec!["alice".into(), "bob".into(), "carol".into()],
        }
    }

    #[test]
    fn every_purpose_reads_back_as_written() {
        let purposes = [
            Purpose::Unseal {
                credential: "prod".into(),
            },
            Purpose::Assume {
                credential: "prod".into(),
            },
            Purpose::Drill,
            Purpose::Rotate {
                credential: "prod".into(),
            },
            Purpose::Rekey(RekeyLayout {
                group_threshold: 1,
                groups: vec![group("custodians")],
                recovery: None,
            }),
            Purpose::Recovery(group("recovery")),
        ];
        for purpose in purposes {
            let request = request(purpose, "00".repeat(32));
            let bytes = request.to_bytes();
            assert_eq!(Request::from_bytes(&bytes, "request").unwrap(), request);
        }
    }

    #[test]
    fn the_request_file_keeps_its_format_byte_for_byte() {
        let request = request(
            Purpose::Unseal {
                credential: "prod".into(),
            },
            "00".repeat(32),
        );
        let expected = format!(
            "{{\n  \"format\": \"breakglass-ceremony-request/1\",\n  \"id\": \"0011223344556677\",\n  \
             \"vault_id\": \"vault\",\n  \"fingerprint\": \"AAAA-BBBB\",\n  \"purpose\": \"unseal\",\n  \
             \"credential\": \"prod\",\n  \"reason\": \"IdP down\",\n  \"requester\": \"coordinator@host\",\n  \
             \"created\": \"2026-11-24T12:00:00Z\",\n  \"expires\": \"2026-11-24T16:00:00Z\",\n  \
             \"audit_head\": {{\n    \"seq\": 3,\n    \"hash\": \"{}\"\n  }},\n  \
             \"transport_public_key\": \"{}\"\n}}\n",
            "ab".repeat(32),
            "00".repeat(32)
        );
        assert_eq!(String::from_utf8(request.to_bytes()).unwrap(), expected);
    }

    #[test]
    fn an_unknown_purpose_or_a_purpose_without_its_data_is_refused() {
        let request = request(Purpose::Drill, "00".repeat(32));
        let text = String::from_utf8(request.to_bytes()).unwrap();
        let unknown = text.replace("\"drill\"", "\"dril\"");
        let error = Request::from_bytes(unknown.as_bytes(), "request r.json").unwrap_err();
        assert!(error.to_string().contains("unknown purpose"), "{error}");
        let no_credential = text.replace("\"drill\"", "\"unseal\"");
        assert!(Request::from_bytes(no_credential.as_bytes(), "request").is_err());
        let no_layout = text.replace("\"drill\"", "\"rekey\"");
        assert!(Request::from_bytes(no_layout.as_bytes(), "request").is_err());
    }

    /// A request is accepted until the second before `expires` and refused from that second
    /// on; an `expires` that is not a time is refused as expired.
    #[test]
    fn a_request_is_refused_from_the_second_it_expires() {
        let request = request(Purpose::Drill, "00".repeat(32));
        let expires = crate::clock::parse_rfc3339(&request.expires).unwrap();
        request.check_not_expired(expires - 1).unwrap();
        for now in [expires, expires + 1] {
            assert!(matches!(
                request.check_not_expired(now),
                Err(CeremonyError::Expired { .. })
            ));
        }
        let mut unreadable = request.clone();
        unreadable.expires = "tomorrow".into();
        assert!(unreadable.check_not_expired(0).is_err());
    }
}
