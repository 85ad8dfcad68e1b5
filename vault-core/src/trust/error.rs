//! The trust model's error: what was not authentic, or not allowed, and what was expected.
//! Names vaults, operators, files and versions; never a key, seed, PIN or share.

use std::path::PathBuf;

use thiserror::Error;

use super::machine::{AuditAnchor, FoundHead};
use super::operator::Role;

/// A trust failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Key material that the cryptographic library, or the check at hand, refused.
    #[error("{what} was refused")]
    KeyRejected {
        /// Which key.
        what: &'static str,
    },
    /// A public key that is not 32 hex bytes.
    #[error("{what} is not an Ed25519 public key (64 hex characters)")]
    InvalidPublicKey {
        /// Which key.
        what: String,
    },
    /// A fingerprint that is neither the display form nor the full form.
    #[error(
        "{text:?} is not a vault fingerprint (32 base32 characters in groups of four, or 64 hex characters)"
    )]
    InvalidFingerprint {
        /// What was given.
        text: String,
    },
    /// The identity is not the pinned one.
    #[error(
        "vault {vault_id} presents identity {found}, but {expected} is pinned for it: this is not the vault the pin (or the share) belongs to"
    )]
    IdentityMismatch {
        /// The vault.
        vault_id: String,
        /// The pinned identity.
        expected: String,
        /// The presented one.
        found: String,
    },
    /// A rekey succession whose signature is not the previous quorum's.
    #[error(
        "the move of vault {vault_id} from identity {previous} to {next} is not signed by the previous quorum"
    )]
    SuccessionSignature {
        /// The vault.
        vault_id: String,
        /// The previous identity.
        previous: String,
        /// The claimed next one.
        next: String,
    },
    /// A value that has no canonical encoding.
    #[error("{what} has no canonical encoding")]
    NotCanonical {
        /// What.
        what: &'static str,
    },
    /// A certified manifest file that cannot be read.
    #[error("{}: not a valid certified manifest: {reason}", file.display())]
    InvalidManifest {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A certified manifest of another format.
    #[error(
        "the manifest of vault {vault_id} has format {found:?}, expected {}",
        super::certified::FORMAT
    )]
    ManifestFormat {
        /// The vault.
        vault_id: String,
        /// The format found.
        found: String,
    },
    /// The quorum signature over a manifest does not verify.
    #[error(
        "version {version} of the manifest of vault {vault_id} is not signed by its quorum: it was changed outside breakglass"
    )]
    ManifestSignature {
        /// The vault.
        vault_id: String,
        /// The version it claims.
        version: u64,
    },
    /// A manifest older than one this machine has seen.
    #[error(
        "the manifest of vault {vault_id} is version {found}, but this machine has seen version {highest_seen}: an older manifest was put back"
    )]
    ManifestRollback {
        /// The vault.
        vault_id: String,
        /// The version found.
        found: u64,
        /// The highest version seen.
        highest_seen: u64,
    },
    /// Two different manifests signed with the same version number.
    #[error(
        "version {version} of the manifest of vault {vault_id} has digest {found}, but this machine saw version {version} with digest {expected}"
    )]
    ManifestFork {
        /// The vault.
        vault_id: String,
        /// The version.
        version: u64,
        /// The digest seen before.
        expected: String,
        /// The digest found.
        found: String,
    },
    /// No operator of that name.
    #[error("{name:?} is not an operator of vault {vault_id}")]
    UnknownOperator {
        /// The vault.
        vault_id: String,
        /// The name.
        name: String,
    },
    /// An operator without the role an action needs.
    #[error("operator {name} of vault {vault_id} is not a {role}")]
    MissingRole {
        /// The vault.
        vault_id: String,
        /// The operator.
        name: String,
        /// The role needed.
        role: Role,
    },
    /// A signature that is not the named operator's.
    #[error("{what} is not signed by operator {name}")]
    OperatorSignature {
        /// The operator it names.
        name: String,
        /// What was signed.
        what: String,
    },
    /// An operator name outside the allowed characters.
    #[error(
        "invalid operator name {name:?}: use 1 to 64 characters a-z, A-Z, 0-9, '.', '_', '-', '@', starting with a letter or digit"
    )]
    InvalidOperatorName {
        /// The name.
        name: String,
    },
    /// An operator list that cannot be certified.
    #[error("the operators of vault {vault_id} are not valid: {reason}")]
    InvalidOperators {
        /// The vault.
        vault_id: String,
        /// What is wrong.
        reason: String,
    },
    /// An operator key file exists already.
    #[error("{} exists already: an operator key is never overwritten", path.display())]
    OperatorKeyExists {
        /// The file.
        path: PathBuf,
    },
    /// An operator key file others can read.
    #[error("{} has mode {mode:o}: an operator key must be readable by its owner only (0600)", path.display())]
    InsecureKeyFile {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// An operator key file that is not an Ed25519 PKCS#8 v2 key.
    #[error("{} is not an Ed25519 operator key (PKCS#8 v2)", path.display())]
    InvalidKeyFile {
        /// The file.
        path: PathBuf,
    },
    /// This machine has no operator key for the vault.
    #[error("this machine has no operator key for vault {vault_id} (looked for {})", path.display())]
    NoOperatorKey {
        /// The vault.
        vault_id: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// This machine's key is not an operator's of the vault.
    #[error(
        "the operator key {} (public key {public_key}) belongs to no operator of vault {vault_id}",
        path.display()
    )]
    NotAnOperator {
        /// The vault.
        vault_id: String,
        /// The key file.
        path: PathBuf,
        /// Its public key (hex).
        public_key: String,
    },
    /// A vault id that cannot name a file.
    #[error("{vault_id:?} is not a vault id (lowercase hex)")]
    InvalidVaultId {
        /// The id.
        vault_id: String,
    },
    /// A format-1 upgrade statement that does not move the pinned format-1 fingerprint to the
    /// identity presented.
    #[error(
        "vault {vault_id}: the upgrade statement moving format-1 fingerprint {previous} to identity {next} is refused: {problem}"
    )]
    UpgradeStatement {
        /// The vault.
        vault_id: String,
        /// The format-1 fingerprint.
        previous: String,
        /// The identity presented.
        next: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A format-1 upgrade statement that cannot be read.
    #[error("{}: not a valid upgrade statement: {reason}", file.display())]
    InvalidUpgradeStatement {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A succession statement that cannot be read.
    #[error("{}: not a valid succession statement: {reason}", file.display())]
    InvalidSuccession {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An anchor file that cannot be read.
    #[error("{}: not a valid anchor: {reason}", path.display())]
    InvalidAnchor {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The audit log does not continue the head this machine verified.
    #[error(
        "the audit log of vault {vault_id} was cut back or rewritten: this machine verified {expected}, but the log {found}"
    )]
    AuditRollback {
        /// The vault.
        vault_id: String,
        /// The remembered head.
        expected: Box<AuditAnchor>,
        /// What is there now.
        found: FoundHead,
    },
    /// The audit log does not continue the head the token saw at its last checkpoint.
    #[error(
        "the audit log of vault {vault_id} was cut back or rewritten: token {token} saw {expected} at its last checkpoint, but the log {found}"
    )]
    TokenAuditRollback {
        /// The token's label.
        token: String,
        /// The vault.
        vault_id: String,
        /// The head the token holds.
        expected: Box<AuditAnchor>,
        /// What is there now.
        found: Box<FoundHead>,
    },
    /// A credential file that is not the envelope the audit log last recorded for its name:
    /// rolled back to an older version, or sealed elsewhere with the vault's public keys.
    #[error("{0}")]
    EnvelopeNotRecorded(Box<NotRecorded>),
    /// The audit log cannot be trusted to say which envelopes are genuine.
    #[error(
        "the audit log of vault {vault_id} does not verify at line {line} ({reason}): no envelope is opened until `breakglass audit verify` is clean"
    )]
    AuditLogBroken {
        /// The vault.
        vault_id: String,
        /// The first line at fault.
        line: usize,
        /// What is wrong there.
        reason: String,
    },
    /// A vault whose audit log has no signed (format 2) lines yet.
    #[error(
        "vault {vault_id} was made by an earlier release: its audit log has no operator-signed lines, so nothing in it can be trusted to say which envelopes are genuine; a security officer upgrades it once with `breakglass upgrade` (a quorum and a token)"
    )]
    UnsignedHistory {
        /// The vault.
        vault_id: String,
    },
    /// The audit head a token holds for the vault cannot be read.
    #[error("token {token}: its audit head object for vault {vault_id} is not valid: {reason}")]
    InvalidTokenAnchor {
        /// The token's label.
        token: String,
        /// The vault.
        vault_id: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The machine configuration cannot be read.
    #[error("{}: not a valid breakglass machine configuration: {reason}", path.display())]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An audit line that is not authentic or not allowed.
    #[error("audit line {seq}: {problem}")]
    AuditLine {
        /// The line's place (its expected sequence number).
        seq: u64,
        /// What is wrong.
        problem: AuditLineProblem,
    },
    /// A ceremony request a custodian must not act on.
    #[error("the ceremony request {problem}")]
    Request {
        /// What is wrong.
        problem: RequestProblem,
    },
    /// A share that matches no commitment of the vault.
    #[error("this share is not one of vault {vault_id}'s (no custodian's commitment matches it)")]
    ShareNotInVault {
        /// The vault.
        vault_id: String,
    },
    /// A duration that does not parse.
    #[error("{text:?} is not a duration: {reason}")]
    InvalidDuration {
        /// What was given.
        text: String,
        /// Why.
        reason: &'static str,
    },
    /// A duration above the maximum.
    #[error("{text:?} is longer than the maximum of {max_seconds} seconds")]
    DurationTooLong {
        /// What was given.
        text: String,
        /// The maximum.
        max_seconds: u64,
    },
    /// A token whose PIN lengths leave no safe derived PIN.
    #[error(
        "token {serial} accepts PINs of {min} to {max} characters; a quorum-derived PIN needs at least {needed}"
    )]
    PinLength {
        /// The token's serial.
        serial: String,
        /// Its minimum.
        min: u64,
        /// Its maximum.
        max: u64,
        /// The shortest derived PIN.
        needed: usize,
    },
    /// A token without a serial number cannot have its own derived PIN.
    #[error("the token reports no serial number, so it cannot have its own quorum-derived PIN")]
    NoTokenSerial,
    /// A file operation.
    #[error("{}: {action}: {cause}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        #[source]
        cause: std::io::Error,
    },
    /// A write through the store's atomic or never-overwrite writers.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What is wrong with an audit line.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuditLineProblem {
    /// Not a format-2 line.
    #[error("not a valid entry ({reason})")]
    Invalid {
        /// The parser's message.
        reason: String,
    },
    /// The body is not in the form breakglass writes, so its bytes are not the signed ones.
    #[error("not in canonical form (edited)")]
    NotCanonical,
    /// Another sequence number than its place.
    #[error(
        "sequence number {found} where this one belongs (a line removed, inserted or replayed)"
    )]
    Sequence {
        /// The number found.
        found: u64,
    },
    /// Does not chain to the line before.
    #[error(
        "does not chain to the line before (that line or this one was changed, or lines were reordered)"
    )]
    Chain,
    /// An operator's line without a signature.
    #[error("claims operator {operator} but is not signed (appended outside breakglass)")]
    Unsigned {
        /// The operator named.
        operator: String,
    },
    /// An operator's line whose signature is not theirs.
    #[error("the signature is not operator {operator}'s (forged or altered)")]
    BadSignature {
        /// The operator named.
        operator: String,
    },
    /// Signed, but by someone not allowed to record this.
    #[error("not authorised: {cause}")]
    NotAuthorised {
        /// Why.
        #[source]
        cause: Box<TrustError>,
    },
    /// A signature on a custodian's line, or a line built for the wrong kind of actor.
    #[error(
        "the actor does not match the line's form (a custodian's line is never signed, an operator's always)"
    )]
    WrongActor,
    /// A custodian's line recording what only an operator may.
    #[error(
        "a line no operator signed (a custodian's, or one written without an operator key) cannot record {event}"
    )]
    CustodianAuthority {
        /// What it tried to record.
        event: String,
    },
}

/// What is wrong with a ceremony request.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RequestProblem {
    /// A ceremony request without a security officer's signature (the unsigned form earlier
    /// releases wrote, or one written by hand).
    #[error(
        "is not signed: anyone with a copy of the vault directory can write one; a request comes \
         signed by a security officer of the vault"
    )]
    Unsigned,
    /// Not a signed request of this format.
    #[error("is not valid: {reason}")]
    Invalid {
        /// Why.
        reason: String,
    },
    /// The request names another vault than its manifest.
    #[error("is for vault {request}, but carries the manifest of vault {manifest}")]
    OtherVault {
        /// The request's vault.
        request: String,
        /// The manifest's.
        manifest: String,
    },
    /// The request names another identity than its manifest's.
    #[error("names fingerprint {request}, but its manifest's identity is {manifest}")]
    OtherIdentity {
        /// The request's fingerprint (rendered).
        request: String,
        /// The manifest's.
        manifest: String,
    },
    /// A lifetime that is unreadable, empty or longer than the maximum.
    #[error(
        "runs from {created} to {expires}: a request must expire after it is made, within 7 days"
    )]
    Lifetime {
        /// When it was made (rendered).
        created: String,
        /// When it expires (rendered).
        expires: String,
    },
    /// Expired.
    #[error("{id} expired at {expires}")]
    Expired {
        /// The ceremony (rendered).
        id: String,
        /// When (rendered).
        expires: String,
    },
}

/// What [`TrustError::EnvelopeNotRecorded`] found.
#[derive(Debug)]
pub struct NotRecorded {
    /// The file.
    pub file: PathBuf,
    /// The credential.
    pub name: String,
    /// The digest the log records last for the name, if any.
    pub expected: Option<String>,
    /// The file's digest.
    pub found: String,
}

impl std::fmt::Display for NotRecorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = &self.name;
        write!(
            f,
            "{}: credential {name} is not the envelope the audit log records for it (",
            self.file.display()
        )?;
        match &self.expected {
            Some(expected) => write!(f, "the last signed record of {name} is {expected}")?,
            None => write!(f, "no signed line records {name}")?,
        }
        write!(
            f,
            "; this file's digest is {}): it was put back from an older copy or sealed outside this vault's log",
            self.found
        )
    }
}
