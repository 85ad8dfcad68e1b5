//! The crate's top-level error and its kinds. Each domain module has its own typed error; this
//! wraps them so a caller that crosses modules (a ceremony uses the quorum, the token and HPKE)
//! has one type. [`ErrorKind`] is the one place that says what kind of failure each error is:
//! a caller that must tell failures apart (the CLI's exit codes) asks [`Error::kind`] or
//! [`kind_of`], never its own table.

use thiserror::Error;

use crate::audit::AuditError;
use crate::ceremony::CeremonyError;
use crate::credential::CredentialError;
use crate::envelope::EnvelopeError;
use crate::hpke::HpkeError;
use crate::hsm::HsmError;
use crate::manifest::ManifestError;
use crate::quorum::QuorumError;
use crate::store::StoreError;
use crate::totp::TotpError;
use crate::trust::TrustError;
use crate::vault::VaultError;

/// Any failure of a vault-core operation. Never carries secret material.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A SLIP-39 share or quorum problem.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// A PKCS#11 token problem.
    #[error(transparent)]
    Hsm(#[from] HsmError),
    /// An HPKE failure (bad key, failed decryption).
    #[error(transparent)]
    Hpke(#[from] HpkeError),
    /// A vault directory problem.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sealed-credential problem (integrity, foreign vault).
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// An audit log problem.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A vault-level problem (wrong quorum, no token, no pinned fingerprint).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A credential payload problem.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// An MFA seed problem.
    #[error(transparent)]
    Totp(#[from] TotpError),
    /// A remote ceremony problem.
    #[error(transparent)]
    Ceremony(#[from] CeremonyError),
    /// A manifest problem.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// What the vault directory says could not be authenticated (or a trust primitive failed).
    #[error(transparent)]
    Trust(#[from] TrustError),
}

/// What kind of failure an error is: what a caller must tell apart to decide what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The shares: a bad word or checksum, too few, from another vault or an older set.
    Quorum,
    /// The token: module, token, PIN, key.
    Token,
    /// A file that was altered, is damaged or belongs elsewhere.
    Integrity,
    /// A request that cannot be carried out as given (a layout, an id, a missing recovery
    /// set).
    Invalid,
    /// Stopped at a test fault point (test builds only).
    Interrupted,
    /// Another command holds the vault's writers' lock and did not let go in time.
    Busy,
    /// The audit log ends with a torn write: a writing command waits for `audit repair`.
    TornAudit,
    /// Anything else: I/O, a format too old, the random generator, a rekey to finish.
    Other,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Quorum(_) => ErrorKind::Quorum,
            Error::Hsm(_) => ErrorKind::Token,
            Error::Hpke(e) => hpke_kind(e),
            Error::Envelope(e) => envelope_kind(e),
            Error::Audit(e) => audit_kind(e),
            Error::Manifest(e) => manifest_kind(e),
            Error::Vault(e) => vault_kind(e),
            Error::Ceremony(e) => ceremony_kind(e),
            Error::Trust(e) => trust_kind(e),
            Error::Store(e) => store_kind(e),
            Error::Credential(_) | Error::Totp(_) => ErrorKind::Other,
        }
    }
}

/// The kind of any error of this crate, whether wrapped in [`Error`] or not (a caller that
/// holds a chain of causes asks this of each).
pub fn kind_of(error: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    if let Some(e) = error.downcast_ref::<Error>() {
        return Some(e.kind());
    }
    if error.downcast_ref::<QuorumError>().is_some() {
        return Some(ErrorKind::Quorum);
    }
    if error.downcast_ref::<HsmError>().is_some() {
        return Some(ErrorKind::Token);
    }
    if let Some(e) = error.downcast_ref::<AuditError>() {
        return Some(audit_kind(e));
    }
    if let Some(e) = error.downcast_ref::<StoreError>() {
        return Some(store_kind(e));
    }
    if let Some(e) = error.downcast_ref::<HpkeError>() {
        return Some(hpke_kind(e));
    }
    if let Some(e) = error.downcast_ref::<EnvelopeError>() {
        return Some(envelope_kind(e));
    }
    if let Some(e) = error.downcast_ref::<ManifestError>() {
        return Some(manifest_kind(e));
    }
    if let Some(e) = error.downcast_ref::<VaultError>() {
        return Some(vault_kind(e));
    }
    if let Some(e) = error.downcast_ref::<CeremonyError>() {
        return Some(ceremony_kind(e));
    }
    if let Some(e) = error.downcast_ref::<TrustError>() {
        return Some(trust_kind(e));
    }
    if error.downcast_ref::<CredentialError>().is_some()
        || error.downcast_ref::<TotpError>().is_some()
    {
        return Some(ErrorKind::Other);
    }
    None
}

/// An error and its causes, as one line: `what: why: why...`.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

fn audit_kind(e: &AuditError) -> ErrorKind {
    match e {
        // A full disk or an unreadable file is no sign of tampering.
        AuditError::Io { .. } | AuditError::MoveAside { .. } => ErrorKind::Other,
        AuditError::TornTail { .. } => ErrorKind::TornAudit,
        _ => ErrorKind::Integrity,
    }
}

fn store_kind(e: &StoreError) -> ErrorKind {
    match e {
        StoreError::Busy { .. } => ErrorKind::Busy,
        _ => ErrorKind::Other,
    }
}

fn hpke_kind(_: &HpkeError) -> ErrorKind {
    ErrorKind::Integrity
}

fn envelope_kind(e: &EnvelopeError) -> ErrorKind {
    match e {
        EnvelopeError::FormatTooOld { .. } => ErrorKind::Other,
        _ => ErrorKind::Integrity,
    }
}

fn manifest_kind(e: &ManifestError) -> ErrorKind {
    match e {
        ManifestError::FingerprintMismatch { .. } | ManifestError::Invalid { .. } => {
            ErrorKind::Integrity
        }
        ManifestError::Recipient { .. } => ErrorKind::Invalid,
    }
}

fn vault_kind(e: &VaultError) -> ErrorKind {
    match e {
        VaultError::WrongQuorum
        | VaultError::WrongRecovery
        | VaultError::NotEnoughShares { .. } => ErrorKind::Quorum,
        VaultError::NoToken { .. }
        | VaultError::TokenPin { .. }
        | VaultError::NoSuchToken { .. }
        | VaultError::TokenAbsent { .. } => ErrorKind::Token,
        VaultError::FormatOne { .. }
        | VaultError::Downgraded { .. }
        | VaultError::JournalNotAuthentic { .. } => ErrorKind::Integrity,
        VaultError::Layout(_)
        | VaultError::NoRecovery
        | VaultError::NotPinned { .. }
        | VaultError::NotFormatOne { .. }
        | VaultError::HistorySignedAlready { .. }
        | VaultError::OperatorChange { .. }
        | VaultError::OperatorKeyTaken { .. } => ErrorKind::Invalid,
        VaultError::FaultPoint(_) => ErrorKind::Interrupted,
        _ => ErrorKind::Other,
    }
}

fn trust_kind(e: &TrustError) -> ErrorKind {
    match e {
        TrustError::Random
        | TrustError::Io { .. }
        | TrustError::Store(_)
        | TrustError::OperatorKeyExists { .. } => ErrorKind::Other,
        TrustError::InvalidOperatorName { .. }
        | TrustError::InvalidDuration { .. }
        | TrustError::DurationTooLong { .. }
        | TrustError::InvalidFingerprint { .. } => ErrorKind::Invalid,
        TrustError::PinLength { .. } | TrustError::NoTokenSerial => ErrorKind::Token,
        _ => ErrorKind::Integrity,
    }
}

fn ceremony_kind(e: &CeremonyError) -> ErrorKind {
    match e {
        CeremonyError::Tampered { .. }
        | CeremonyError::TransportKeyDamaged { .. }
        | CeremonyError::HistoryChanged { .. } => ErrorKind::Integrity,
        CeremonyError::BadId { .. }
        | CeremonyError::NotOpen { .. }
        | CeremonyError::Lifetime { .. } => ErrorKind::Invalid,
        CeremonyError::TransportKeyGone { .. } => ErrorKind::Other,
        _ => ErrorKind::Quorum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_and_a_bare_module_error_are_of_the_same_kind() {
        let bare = CeremonyError::HistoryChanged {
            id: "00".into(),
            line: 3,
        };
        let wrapped = Error::from(bare.clone());
        assert_eq!(wrapped.kind(), ErrorKind::Integrity);
        assert_eq!(kind_of(&bare), Some(ErrorKind::Integrity));
        assert_eq!(kind_of(&wrapped), Some(ErrorKind::Integrity));
        assert_eq!(
            Error::from(VaultError::WrongRecovery).kind(),
            ErrorKind::Quorum
        );
        assert_eq!(kind_of(&std::fmt::Error), None);
    }
}
