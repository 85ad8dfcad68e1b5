//! The crate's top-level error: each domain module has its own typed error; this wraps them so a
//! caller that crosses modules (a ceremony uses the quorum, the token and HPKE) has one type.

use thiserror::Error;

/// Any failure of a vault-core operation. Never carries secret material.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A SLIP-39 share or quorum problem.
    #[error(transparent)]
    Quorum(#[from] crate::quorum::QuorumError),
    /// A PKCS#11 token problem.
    #[error(transparent)]
    Hsm(#[from] crate::hsm::HsmError),
    /// An HPKE failure (bad key, failed decryption).
    #[error(transparent)]
    Hpke(#[from] crate::hpke::HpkeError),
    /// A vault directory problem.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A sealed-credential problem (integrity, foreign vault).
    #[error(transparent)]
    Envelope(#[from] crate::envelope::EnvelopeError),
    /// An audit log problem.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// A vault-level problem (wrong quorum, no token, no pinned fingerprint).
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    /// A credential payload problem.
    #[error(transparent)]
    Credential(#[from] crate::credential::CredentialError),
    /// An MFA seed problem.
    #[error(transparent)]
    Totp(#[from] crate::totp::TotpError),
    /// A remote ceremony problem.
    #[error(transparent)]
    Ceremony(#[from] crate::ceremony::CeremonyError),
    /// A manifest problem.
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
}
