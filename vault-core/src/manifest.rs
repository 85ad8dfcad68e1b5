//! The vault manifest (`vault.json`) and its fingerprint.
//!
//! The manifest holds only public material: the quorum layout and custodians, share
//! commitments, the quorum public key, the enrolled tokens' public keys, the audit key. Its
//! **fingerprint** is a hash of a canonical encoding of that core (not of timestamps or
//! policy), printed at init, carried on share cards, and pinned per machine: `seal` refuses a
//! manifest whose fingerprint differs from the pinned one, since a swapped public key would
//! otherwise capture every newly sealed secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::canonical::Canonical;
use crate::quorum::Share;

/// The manifest format this version writes and reads.
pub const FORMAT: &str = "breakglass-vault/1";

/// The manifest format that also remembers custodians' recipients ([`Manifest::recipients`]):
/// written only when at least one is remembered, so a vault without any reads the same to
/// every version.
pub const FORMAT_RECIPIENTS: &str = "breakglass-vault/2";

/// The longest recipient a manifest remembers (an `ssh-rsa` key of 16384 bits is about 2,800
/// characters).
pub const MAX_RECIPIENT_LEN: usize = 4096;

/// A manifest problem, naming the file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file is not a valid manifest.
    #[error("{}: not a valid breakglass manifest: {reason}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// What is wrong (a parser message with line and column, or the field).
        reason: String,
    },
    /// The manifest's fingerprint is not the pinned one.
    #[error(
        "the manifest of vault {vault_id} has fingerprint {found}, but {expected} is pinned for it: \
         a public key or custodian was changed. Do not seal until the security officer has checked the vault"
    )]
    FingerprintMismatch {
        /// The vault.
        vault_id: String,
        /// The pinned fingerprint.
        expected: String,
        /// The manifest's.
        found: String,
    },
    /// A recipient cannot be remembered for this custodian.
    #[error("the recipient of {custodian}: {problem}")]
    Recipient {
        /// The custodian named.
        custodian: String,
        /// What is wrong.
        problem: &'static str,
    },
}

/// Where a token's user PIN comes from. Never the PIN itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum PinSource {
    /// Derived from the quorum secret: the token cannot even be logged into without a quorum.
    Quorum,
    /// Read from an environment variable.
    Env {
        /// The variable's name.
        var: String,
    },
    /// Read from a file (first line).
    File {
        /// The file.
        path: String,
    },
    /// Asked for on the terminal, without echo.
    Prompt,
}

/// One custodian: a member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Custodian {
    /// The custodian's name (unique in the vault).
    pub name: String,
    /// The salt of the share commitment (hex, 32 bytes).
    pub commitment_salt: String,
    /// The share commitment (hex SHA-256), see [`share_commitment`].
    pub commitment: String,
}

/// One group of custodians.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The group's name (e.g. "security-officers").
    pub name: String,
    /// Members needed.
    pub threshold: u8,
    /// The members, in share order (member index = position).
    pub members: Vec<Custodian>,
}

/// The quorum: SLIP-39 layout and public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quorum {
    /// Groups needed.
    pub group_threshold: u8,
    /// The groups, in share order (group index = position).
    pub groups: Vec<Group>,
    /// The SLIP-39 identifier of the share set.
    pub identifier: u16,
    /// The SLIP-39 iteration exponent.
    pub iteration_exponent: u8,
    /// Whether the share set is extendable.
    pub extendable: bool,
    /// The quorum's X25519 public key (hex), from `DeriveKeyPair(Q)`.
    pub public_key: String,
}

/// An enrolled token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmEnrollment {
    /// The token label.
    pub label: String,
    /// The token serial.
    pub serial: String,
    /// The manufacturer.
    pub manufacturer: String,
    /// The model.
    pub model: String,
    /// The PKCS#11 module path used at enrolment (a hint; `--module` overrides it).
    pub module: String,
    /// A SoftHSM configuration inside the vault, relative to it (`--dev-softhsm` vaults only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub softhsm_conf: Option<String>,
    /// The sealing key's CKA_ID (hex).
    pub seal_key_id: String,
    /// The sealing key's public key (hex, 65-byte SEC1).
    pub seal_public_key: String,
    /// Where the user PIN comes from.
    pub pin: PinSource,
    /// Where the SO PIN comes from, when breakglass initialised the token (a rekey changes a
    /// quorum-derived SO PIN along with the user PIN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub so_pin: Option<PinSource>,
    /// How a PIN from the quorum is derived for this token: absent in tokens enrolled before
    /// per-token PINs (one PIN per vault and role, `breakglass token pin/1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_derivation: Option<PinDerivation>,
}

/// How a quorum-derived token PIN is derived (`trust::token_pin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PinDerivation {
    /// `breakglass token pin/2`: bound to the token's serial, fitted to its PIN lengths.
    #[serde(rename = "per-token/2")]
    PerToken,
}

/// The audit signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditKey {
    /// The label of the token holding it.
    pub token: String,
    /// Its CKA_ID (hex).
    pub key_id: String,
    /// Its public key (hex, 65-byte SEC1).
    pub public_key: String,
}

/// An audit key that was replaced (its token lost): it verifies checkpoints up to `last_line`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredAuditKey {
    /// The label of the token that held it.
    pub token: String,
    /// Its public key (hex, 65-byte SEC1).
    pub public_key: String,
    /// The last audit line its checkpoints may be on.
    pub last_line: u64,
}

/// Operating policy (not part of the fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Days between drills before `status` warns.
    pub drill_interval_days: u32,
    /// Default STS session duration in seconds.
    pub default_session_seconds: u32,
    /// Whether unseal, assume, exec, console and recover need a `--reason` (recorded in the
    /// audit log). On by default; written into the manifest only when turned off, so a
    /// manifest with the default reads the same to every version.
    #[serde(default = "reason_required", skip_serializing_if = "is_true")]
    pub require_reason: bool,
}

fn reason_required() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            drill_interval_days: 90,
            default_session_seconds: 3600,
            require_reason: true,
        }
    }
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The vault id (hex, 16 random bytes).
    pub vault_id: String,
    /// When the vault was made (RFC 3339 UTC).
    pub created: String,
    /// The quorum.
    pub quorum: Quorum,
    /// The enrolled tokens (any one of them serves).
    pub hsms: Vec<HsmEnrollment>,
    /// The audit key.
    pub audit: AuditKey,
    /// The recovery share set, when enabled: a stricter quorum whose secret derives a P-256
    /// key that every envelope also seals the token half to (its `public_key` is that key,
    /// 65-byte SEC1 hex), so the credentials survive the loss of every token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Quorum>,
    /// Audit keys replaced after their token was lost, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_audit_keys: Vec<RetiredAuditKey>,
    /// Custodians' recipients, by custodian name: an age X25519 recipient (`age1...`) or an
    /// OpenSSH public key line (`ssh-ed25519 ...`, `ssh-rsa ...`). Their share files are
    /// encrypted to it at every rekey and recovery change unless told otherwise. Public, but
    /// whoever replaces one receives that custodian's next share: it is certified with the rest
    /// of the manifest and left out of the identity (cards stay valid). Only in format
    /// [`FORMAT_RECIPIENTS`]; set through [`Manifest::set_recipients`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recipients: BTreeMap<String, String>,
    /// Policy.
    pub policy: Policy,
}

/// A fingerprint: SHA-256 of the manifest's canonical core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// A fingerprint from its 32 bytes (the trust module's vault identity hash).
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Fingerprint {
        Fingerprint(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The form people read aloud and compare: 32 base32 characters of the first 20 bytes in
    /// groups of four, e.g. `K3QF-7M2A-...`.
    pub fn display(&self) -> String {
        let text = base32(&self.0[..20]);
        text.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Parses the display form (case and dashes and spaces ignored).
    pub fn matches_display(&self, text: &str) -> bool {
        let normalise = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_uppercase())
                .collect()
        };
        normalise(text) == normalise(&self.display())
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

impl Manifest {
    /// Parses a manifest strictly (unknown fields refused), naming `file` in errors.
    pub fn from_bytes(bytes: &[u8], file: &Path) -> Result<Manifest, ManifestError> {
        let invalid = |reason: String| ManifestError::Invalid {
            file: file.to_path_buf(),
            reason,
        };
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if manifest.format != FORMAT && manifest.format != FORMAT_RECIPIENTS {
            return Err(invalid(format!(
                "format {:?}, expected {FORMAT:?} or {FORMAT_RECIPIENTS:?}",
                manifest.format
            )));
        }
        manifest
            .check_recipients(&manifest.recipients)
            .map_err(|e| invalid(e.to_string()))?;
        if manifest.format != manifest.recipients_format() {
            return Err(invalid(format!(
                "format {:?} with {} remembered recipients: {:?} is the format for that",
                manifest.format,
                manifest.recipients.len(),
                manifest.recipients_format()
            )));
        }
        manifest.keys().map_err(|e| match e {
            ManifestError::Invalid { reason, .. } => invalid(reason),
            other => other,
        })?;
        Ok(manifest)
    }

    /// Serialises the manifest (pretty JSON, newline-terminated).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The quorum's public key bytes.
    pub fn quorum_public_key(&self) -> Result<[u8; 32], hex::FromHexError> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(&self.quorum.public_key, &mut key)?;
        Ok(key)
    }

    /// Every key the manifest names, parsed from hex once: a field that is not what it must
    /// be is an error naming it, never an empty key at a use site.
    pub fn keys(&self) -> Result<ManifestKeys, ManifestError> {
        let bad = |field: String| ManifestError::Invalid {
            file: PathBuf::from("vault.json"),
            reason: format!("{field} is not valid hex of the right length"),
        };
        let point = |text: &str, field: String| -> Result<Vec<u8>, ManifestError> {
            hex::decode(text)
                .ok()
                .filter(|k| k.len() == 65)
                .ok_or_else(|| bad(field))
        };
        let id = |text: &str, field: String| -> Result<Vec<u8>, ManifestError> {
            hex::decode(text)
                .ok()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| bad(field))
        };
        let quorum = self
            .quorum_public_key()
            .map_err(|_| bad("quorum.public_key".into()))?;
        let tokens = self
            .hsms
            .iter()
            .map(|h| {
                Ok(TokenKeys {
                    seal_key_id: id(&h.seal_key_id, format!("token {}: seal_key_id", h.label))?,
                    seal_public_key: point(
                        &h.seal_public_key,
                        format!("token {}: seal_public_key", h.label),
                    )?,
                })
            })
            .collect::<Result<Vec<_>, ManifestError>>()?;
        let retired_audit_keys = self
            .retired_audit_keys
            .iter()
            .map(|r| {
                Ok((
                    r.last_line,
                    point(&r.public_key, format!("retired audit key of {}", r.token))?,
                ))
            })
            .collect::<Result<Vec<_>, ManifestError>>()?;
        let recovery = self
            .recovery
            .as_ref()
            .map(|r| point(&r.public_key, "recovery.public_key".into()))
            .transpose()?;
        Ok(ManifestKeys {
            quorum,
            tokens,
            audit_key_id: id(&self.audit.key_id, "audit.key_id".into())?,
            audit_public_key: point(&self.audit.public_key, "audit.public_key".into())?,
            retired_audit_keys,
            recovery,
        })
    }

    /// The fingerprint of the canonical core: vault id, quorum layout with custodian names and
    /// share commitments, SLIP-39 parameters, quorum public key, every enrolled token's identity
    /// and public key, the audit key. Timestamps, module paths, PIN sources and policy are left
    /// out: they may change without changing who can open what.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut c = Canonical::default();
        c.field(b"breakglass-fingerprint/1")
            .field(self.vault_id.as_bytes());
        self.quorum.encode(&mut c);
        c.number(self.hsms.len() as u64);
        for hsm in &self.hsms {
            c.field(hsm.label.as_bytes())
                .field(hsm.serial.as_bytes())
                .field(hsm.seal_key_id.as_bytes())
                .field(hsm.seal_public_key.as_bytes());
        }
        c.field(self.audit.token.as_bytes())
            .field(self.audit.key_id.as_bytes())
            .field(self.audit.public_key.as_bytes());
        if let Some(recovery) = &self.recovery {
            c.field(b"recovery");
            recovery.encode(&mut c);
        }
        for retired in &self.retired_audit_keys {
            c.field(b"retired audit key")
                .field(retired.token.as_bytes())
                .field(retired.public_key.as_bytes())
                .number(retired.last_line);
        }
        Fingerprint(c.sha256())
    }

    /// Refuses the manifest unless its fingerprint is `pinned` (display form).
    pub fn check_pinned(&self, pinned: &str) -> Result<(), ManifestError> {
        let fingerprint = self.fingerprint();
        if fingerprint.matches_display(pinned) {
            Ok(())
        } else {
            Err(ManifestError::FingerprintMismatch {
                vault_id: self.vault_id.clone(),
                expected: pinned.to_owned(),
                found: fingerprint.display(),
            })
        }
    }

    /// The custodian who holds the share for (group index, member index), 0-based.
    pub fn custodian(&self, group: u8, member: u8) -> Option<&Custodian> {
        self.quorum
            .groups
            .get(usize::from(group))?
            .members
            .get(usize::from(member))
    }

    /// The custodian names in share order, for naming shares in messages.
    pub fn custodian_names(&self) -> Vec<&str> {
        self.quorum
            .groups
            .iter()
            .flat_map(|g| g.members.iter().map(|m| m.name.as_str()))
            .collect()
    }

    /// The recipient remembered for `custodian`, if any.
    pub fn recipient(&self, custodian: &str) -> Option<&str> {
        self.recipients.get(custodian).map(String::as_str)
    }

    /// Remembers exactly `recipients` (custodian name → recipient), replacing those remembered
    /// before, and sets the format that goes with them. Every name must be a custodian of the
    /// quorum or of the recovery set; every recipient must look like one (the caller parses it
    /// with age; see [`MAX_RECIPIENT_LEN`]).
    pub fn set_recipients(
        &mut self,
        recipients: BTreeMap<String, String>,
    ) -> Result<(), ManifestError> {
        self.check_recipients(&recipients)?;
        self.recipients = recipients;
        self.format = self.recipients_format().to_owned();
        Ok(())
    }

    /// The format a manifest with these recipients has.
    fn recipients_format(&self) -> &'static str {
        if self.recipients.is_empty() {
            FORMAT
        } else {
            FORMAT_RECIPIENTS
        }
    }

    fn check_recipients(&self, recipients: &BTreeMap<String, String>) -> Result<(), ManifestError> {
        let members: Vec<&str> = std::iter::once(&self.quorum)
            .chain(self.recovery.as_ref())
            .flat_map(|set| set.groups.iter())
            .flat_map(|g| g.members.iter().map(|m| m.name.as_str()))
            .collect();
        for (custodian, recipient) in recipients {
            let problem = if !members.contains(&custodian.as_str()) {
                Some("not a custodian of this vault")
            } else if !recipient_shape(recipient) {
                Some("not an age recipient (age1...) or an ssh-ed25519 / ssh-rsa public key")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ManifestError::Recipient {
                    custodian: custodian.clone(),
                    problem,
                });
            }
        }
        Ok(())
    }

    /// Checks `share` against the commitment of the custodian it claims to be: the share is
    /// intact and belongs to this vault. Returns the custodian.
    pub fn verify_share(&self, share: &Share) -> Option<&Custodian> {
        self.quorum.verify_share(&self.vault_id, share)
    }
}

/// A token's keys, as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKeys {
    /// The sealing key's CKA_ID.
    pub seal_key_id: Vec<u8>,
    /// The sealing key's public key (65-byte SEC1).
    pub seal_public_key: Vec<u8>,
}

/// The manifest's keys as bytes ([`Manifest::keys`]), tokens in the manifest's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestKeys {
    /// The quorum's X25519 public key.
    pub quorum: [u8; 32],
    /// Each enrolled token's keys, in the order of `hsms`.
    pub tokens: Vec<TokenKeys>,
    /// The audit key's CKA_ID.
    pub audit_key_id: Vec<u8>,
    /// The audit key's public key (65-byte SEC1).
    pub audit_public_key: Vec<u8>,
    /// Retired audit keys: the last line each verifies, and its public key.
    pub retired_audit_keys: Vec<(u64, Vec<u8>)>,
    /// The recovery key (65-byte SEC1), when a recovery set is enabled.
    pub recovery: Option<Vec<u8>>,
}

impl ManifestKeys {
    /// Verifies the audit log with the current audit key and the retired ones.
    pub fn verify_audit(
        &self,
        log: &crate::audit::AuditLog,
    ) -> Result<crate::audit::VerifyReport, crate::audit::AuditError> {
        log.verify_with_retired(&self.retired_audit_keys, &self.audit_public_key)
    }

    /// Every key the token half of a file key is sealed to: the enrolled tokens' sealing keys,
    /// then the recovery key when enabled.
    pub fn hsm_recipients(&self) -> Vec<Vec<u8>> {
        self.tokens
            .iter()
            .map(|t| t.seal_public_key.clone())
            .chain(self.recovery.iter().cloned())
            .collect()
    }
}

impl Quorum {
    pub(crate) fn encode(&self, c: &mut Canonical) {
        c.number(u64::from(self.group_threshold))
            .number(self.groups.len() as u64);
        for group in &self.groups {
            c.field(group.name.as_bytes())
                .number(u64::from(group.threshold))
                .number(group.members.len() as u64);
            for member in &group.members {
                c.field(member.name.as_bytes())
                    .field(member.commitment_salt.as_bytes())
                    .field(member.commitment.as_bytes());
            }
        }
        c.number(u64::from(self.identifier))
            .number(u64::from(self.iteration_exponent))
            .number(u64::from(self.extendable))
            .field(self.public_key.as_bytes());
    }

    /// Checks `share` against the commitment of the custodian it claims to be in this share
    /// set of vault `vault_id`. Returns the custodian.
    pub fn verify_share(&self, vault_id: &str, share: &Share) -> Option<&Custodian> {
        let info = share.info();
        if info.identifier != self.identifier {
            return None;
        }
        let custodian = self
            .groups
            .get(usize::from(info.group_index))?
            .members
            .get(usize::from(info.member_index))?;
        let salt = hex::decode(&custodian.commitment_salt).ok()?;
        let expected = share_commitment(vault_id, &salt, share);
        (expected == custodian.commitment).then_some(custodian)
    }

    /// The fewest shares that can meet this quorum.
    pub fn minimum_shares(&self) -> usize {
        minimum_shares(
            self.group_threshold,
            self.groups.iter().map(|g| g.threshold),
        )
    }
}

/// Whether `text` has the shape of a recipient a manifest may remember: `age1` and lower-case
/// bech32 characters, or `ssh-ed25519 ` / `ssh-rsa ` and printable ASCII without control
/// characters, at most [`MAX_RECIPIENT_LEN`] long. The shape only: age parses the key itself.
pub fn recipient_shape(text: &str) -> bool {
    const BECH32: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    if text.is_empty() || text.len() > MAX_RECIPIENT_LEN {
        return false;
    }
    if let Some(data) = text.strip_prefix("age1") {
        return !data.is_empty() && data.chars().all(|c| BECH32.contains(c));
    }
    (text.starts_with("ssh-ed25519 ") || text.starts_with("ssh-rsa "))
        && text.chars().all(|c| c == ' ' || c.is_ascii_graphic())
}

/// The fewest shares that meet `group_threshold` groups with these member thresholds: the
/// smallest thresholds, added up.
pub fn minimum_shares(group_threshold: u8, thresholds: impl IntoIterator<Item = u8>) -> usize {
    let mut thresholds: Vec<usize> = thresholds.into_iter().map(usize::from).collect();
    thresholds.sort_unstable();
    thresholds.iter().take(usize::from(group_threshold)).sum()
}

/// The commitment to one share: hex SHA-256 over a domain tag, the vault id, a 32-byte random
/// salt, the share's public fields and its value. The value carries at least 128 bits of
/// entropy, so the commitment reveals nothing a search could use; the salt keeps commitments of
/// different vaults unlinkable.
pub fn share_commitment(vault_id: &str, salt: &[u8], share: &Share) -> String {
    let info = share.info();
    let mut c = Canonical::default();
    c.field(b"breakglass-share-commitment/1")
        .field(vault_id.as_bytes())
        .field(salt);
    c.number(u64::from(info.identifier))
        .number(u64::from(info.group_index))
        .number(u64::from(info.member_index))
        .number(u64::from(info.member_threshold))
        .field(share.value_bytes());
    hex::encode(c.sha256())
}

/// The known-vaults file: vault id → pinned fingerprint, written at init on this machine.
pub type KnownVaults = BTreeMap<String, String>;

/// Reads the known-vaults file (missing means empty).
pub fn read_known_vaults(path: &Path) -> Result<KnownVaults, ManifestError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ManifestError::Invalid {
            file: path.to_path_buf(),
            reason: e.to_string(),
        }),
        Err(_) => Ok(KnownVaults::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_parsed_once_and_a_field_that_is_not_a_key_is_named() {
        let manifest = crate::trust::certified::tests::manifest();
        let keys = manifest.keys().unwrap();
        assert_eq!(keys.tokens[0].seal_key_id, vec![1]);
        assert_eq!(keys.audit_public_key.len(), 65);
        assert_eq!(keys.hsm_recipients().len(), 1);
        let bad = |change: &dyn Fn(&mut Manifest), field: &str| {
            let mut m = manifest.clone();
            change(&mut m);
            let error = Manifest::from_bytes(&m.to_bytes(), Path::new("/v/vault.json"))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(field) && error.contains("/v/vault.json"),
                "{field}: {error}"
            );
        };
        bad(&|m| m.hsms[0].seal_key_id.clear(), "seal_key_id");
        bad(
            &|m| m.hsms[0].seal_public_key = "04zz".into(),
            "seal_public_key",
        );
        bad(&|m| m.audit.public_key = "04".into(), "audit.public_key");
        bad(&|m| m.audit.key_id = "x".into(), "audit.key_id");
        bad(&|m| m.quorum.public_key = "00".into(), "quorum.public_key");
    }

    /// The display form people compare is base32 (RFC 4648) of the first 20 bytes in groups of
    /// four; matching it ignores case, dashes and spaces, and a prefix or a changed character
    /// does not match.
    #[test]
    fn the_display_form_is_base32_of_the_first_20_bytes_in_groups_of_four() {
        let fingerprint = Fingerprint::from_bytes(std::array::from_fn(|i| i as u8));
        let display = "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4IB-CEQT";
        assert_eq!(fingerprint.display(), display);
        assert_eq!(fingerprint.to_string(), display);
        assert_eq!(
            Fingerprint::from_bytes([0xff; 32]).display(),
            "7777-7777-7777-7777-7777-7777-7777-7777"
        );
        assert!(fingerprint.matches_display(display));
        assert!(fingerprint.matches_display("aaaq eaye audaocajbifqydiob4ibceqt"));
        assert!(!fingerprint.matches_display("AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4IB-CEQA"));
        assert!(!fingerprint.matches_display("AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4IB"));
    }

    const AGE: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    #[test]
    fn recipients_are_remembered_for_custodians_only_in_format_2_and_leave_the_fingerprint_alone() {
        let mut manifest = crate::trust::certified::tests::manifest();
        let name = manifest.custodian_names()[0].to_owned();
        let fingerprint = manifest.fingerprint();
        manifest
            .set_recipients(BTreeMap::from([(name.clone(), AGE.to_owned())]))
            .unwrap();
        assert_eq!(manifest.format, FORMAT_RECIPIENTS);
        assert_eq!(manifest.recipient(&name), Some(AGE));
        assert_eq!(manifest.fingerprint(), fingerprint);
        let path = Path::new("vault.json");
        assert_eq!(
            Manifest::from_bytes(&manifest.to_bytes(), path).unwrap(),
            manifest
        );

        // The format says whether there are recipients, both ways.
        let mut wrong = manifest.clone();
        wrong.format = FORMAT.into();
        assert!(Manifest::from_bytes(&wrong.to_bytes(), path).is_err());
        let mut empty = manifest.clone();
        empty.recipients.clear();
        assert!(Manifest::from_bytes(&empty.to_bytes(), path).is_err());
        manifest.set_recipients(BTreeMap::new()).unwrap();
        assert_eq!(manifest.format, FORMAT);
        assert!(
            !String::from_utf8(manifest.to_bytes())
                .unwrap()
                .contains("recipients")
        );

        // A name that is not a custodian, or a value that is not a recipient, is refused.
        let refused = |name: &str, recipient: &str| {
            let mut m = manifest.clone();
            let error = m
                .set_recipients(BTreeMap::from([(name.to_owned(), recipient.to_owned())]))
                .unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
            let mut m = manifest.clone();
            m.recipients = BTreeMap::from([(name.to_owned(), recipient.to_owned())]);
            m.format = FORMAT_RECIPIENTS.into();
            assert!(Manifest::from_bytes(&m.to_bytes(), path).is_err());
        };
        refused("nobody", AGE);
        refused(&name, "AGE-SECRET-KEY-1");
        refused(&name, "ssh-ed25519 AAAA\u{1b}[2J");
    }

    #[test]
    fn a_recipient_has_the_shape_of_an_age_or_ssh_public_key() {
        assert!(recipient_shape(AGE));
        assert!(recipient_shape("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"));
        assert!(recipient_shape("ssh-rsa AAAAB3NzaC1yc2E="));
        for bad in [
            "",
            "age1",
            "age1UPPER",
            "ssh-ed25519",
            "ssh-dss AAAA",
            "ssh-rsa AAAA\nssh-rsa BBBB",
            "ssh-rsa AAAA\u{7f}",
        ] {
            assert!(!recipient_shape(bad), "{bad:?}");
        }
        assert!(!recipient_shape(&format!(
            "ssh-rsa {}",
            "A".repeat(MAX_RECIPIENT_LEN)
        )));
    }
}
