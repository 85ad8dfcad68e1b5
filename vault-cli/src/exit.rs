//! Exit codes, one per kind of failure a script or a person must tell apart.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other error |
//! | 2 | usage: unknown command or option, missing argument |
//! | 3 | quorum or share error (bad word, checksum, wrong vault, too few shares) |
//! | 4 | HSM or token error (module, token, PIN, key) |
//! | 5 | integrity failure (a tampered or foreign file) |
//! | 6 | AWS error |

use std::process::ExitCode;

use vault_core::hsm::HsmError;

/// The table above, for `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 ok, 1 other error, 2 usage, 3 quorum or share error, \
4 HSM/token error, 5 integrity failure (tampered or foreign file), 6 AWS error.";

/// A failure class with its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 1.
    Other = 1,
    /// 2.
    Usage = 2,
    /// 3.
    Quorum = 3,
    /// 4.
    Hsm = 4,
    /// 5.
    Integrity = 5,
    /// 6.
    Aws = 6,
}

impl From<Failure> for ExitCode {
    fn from(failure: Failure) -> ExitCode {
        ExitCode::from(failure as u8)
    }
}

/// Marks an error with a failure class explicitly (for failures that are not a typed
/// vault-core error, e.g. an AWS call or a usage problem found after parsing).
#[derive(Debug)]
pub struct Classified {
    /// The class.
    pub failure: Failure,
    /// What happened.
    pub message: String,
}

impl std::fmt::Display for Classified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Classified {}

/// Builds an error of the given class.
pub fn fail(failure: Failure, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Classified {
        failure,
        message: message.into(),
    })
}

/// The class of an error: the first typed error found along its chain decides.
pub fn classify(error: &anyhow::Error) -> Failure {
    for cause in error.chain() {
        if let Some(classified) = cause.downcast_ref::<Classified>() {
            return classified.failure;
        }
        if cause
            .downcast_ref::<vault_core::quorum::QuorumError>()
            .is_some()
        {
            return Failure::Quorum;
        }
        if cause.downcast_ref::<HsmError>().is_some() {
            return Failure::Hsm;
        }
        if let Some(core) = cause.downcast_ref::<vault_core::Error>() {
            return classify_core(core);
        }
        if let Some(failure) = classify_module(cause) {
            return failure;
        }
    }
    Failure::Other
}

/// Module errors that reached anyhow without the `vault_core::Error` wrapper.
fn classify_module(cause: &(dyn std::error::Error + 'static)) -> Option<Failure> {
    use vault_core::ceremony::CeremonyError;
    use vault_core::envelope::EnvelopeError;
    use vault_core::manifest::ManifestError;
    use vault_core::vault::VaultError;
    if let Some(e) = cause.downcast_ref::<CeremonyError>() {
        return Some(classify_core(&vault_core::Error::Ceremony(e.clone())));
    }
    if let Some(EnvelopeError::FormatTooOld { .. }) = cause.downcast_ref::<EnvelopeError>() {
        return Some(Failure::Other);
    }
    if cause.downcast_ref::<EnvelopeError>().is_some()
        || cause
            .downcast_ref::<vault_core::audit::AuditError>()
            .is_some()
    {
        return Some(Failure::Integrity);
    }
    if let Some(ManifestError::FingerprintMismatch { .. } | ManifestError::Invalid { .. }) =
        cause.downcast_ref::<ManifestError>()
    {
        return Some(Failure::Integrity);
    }
    match cause.downcast_ref::<VaultError>() {
        Some(VaultError::WrongQuorum | VaultError::WrongRecovery) => Some(Failure::Quorum),
        Some(VaultError::NoToken { .. } | VaultError::TokenAbsent { .. }) => Some(Failure::Hsm),
        Some(VaultError::ManifestChanged { .. }) => Some(Failure::Integrity),
        Some(VaultError::Layout(_) | VaultError::NoRecovery) => Some(Failure::Usage),
        _ => None,
    }
}

fn classify_core(error: &vault_core::Error) -> Failure {
    use vault_core::manifest::ManifestError;
    use vault_core::vault::VaultError;
    match error {
        vault_core::Error::Quorum(_) => Failure::Quorum,
        vault_core::Error::Hsm(_) => Failure::Hsm,
        vault_core::Error::Envelope(vault_core::envelope::EnvelopeError::FormatTooOld {
            ..
        }) => Failure::Other,
        vault_core::Error::Hpke(_)
        | vault_core::Error::Envelope(_)
        | vault_core::Error::Audit(_) => Failure::Integrity,
        vault_core::Error::Manifest(
            ManifestError::FingerprintMismatch { .. } | ManifestError::Invalid { .. },
        ) => Failure::Integrity,
        vault_core::Error::Vault(VaultError::WrongQuorum | VaultError::WrongRecovery) => {
            Failure::Quorum
        }
        vault_core::Error::Vault(VaultError::TokenAbsent { .. }) => Failure::Hsm,
        vault_core::Error::Vault(VaultError::Layout(_) | VaultError::NoRecovery) => Failure::Usage,
        vault_core::Error::Ceremony(
            vault_core::ceremony::CeremonyError::Tampered { .. }
            | vault_core::ceremony::CeremonyError::TransportKeyDamaged { .. }
            | vault_core::ceremony::CeremonyError::HistoryChanged { .. },
        ) => Failure::Integrity,
        vault_core::Error::Ceremony(
            vault_core::ceremony::CeremonyError::BadId { .. }
            | vault_core::ceremony::CeremonyError::NotOpen { .. },
        ) => Failure::Usage,
        vault_core::Error::Ceremony(vault_core::ceremony::CeremonyError::TransportKeyGone {
            ..
        }) => Failure::Other,
        vault_core::Error::Ceremony(_) => Failure::Quorum,
        vault_core::Error::Vault(VaultError::NoToken { .. }) => Failure::Hsm,
        vault_core::Error::Vault(VaultError::ManifestChanged { .. }) => Failure::Integrity,
        _ => Failure::Other,
    }
}
