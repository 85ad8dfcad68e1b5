//! Exit codes, one per kind of failure a script or a person must tell apart.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other error |
//! | 2 | usage: unknown command or option, missing argument |
//! | 3 | quorum or share error (bad word, checksum, wrong vault, too few shares) |
//! | 4 | HSM or token error (module, token, PIN, key) |
//! | 5 | integrity failure (a tampered or foreign file; a format-1 vault to upgrade; an operator without the role a command needs) |
//! | 6 | AWS error |
//! | 7 | the vault is busy: another command held its writers' lock longer than `BREAKGLASS_LOCK_WAIT` |
//! | 8 | the audit log ends with a torn write (a crash or a full disk): run `breakglass audit repair` |
//! | 70 | stopped at a fault point (`BREAKGLASS_TEST_FAULT`; test builds only) |
//!
//! The kinds of vault-core's errors come from vault-core itself ([`vault_core::ErrorKind`]);
//! this file only says which code each kind gets.

use std::process::ExitCode;

use vault_core::ErrorKind;

/// The table above, for `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 ok, 1 other error, 2 usage, 3 quorum or share error, \
4 HSM/token error, 5 integrity failure (tampered or foreign file), 6 AWS error, 7 vault busy \
(another command holds its lock), 8 torn audit tail (run audit repair).";

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
    /// 7: another command holds the vault's lock.
    Busy = 7,
    /// 8: the audit log ends with a torn write.
    TornAudit = 8,
    /// 70: stopped at a test fault point (test builds only).
    Interrupted = 70,
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

/// The class of an error: the first typed error found along its chain decides, by the kind
/// vault-core gives it ([`vault_core::kind_of`], the one mapping) or by an explicit [`fail`].
pub fn classify(error: &anyhow::Error) -> Failure {
    for cause in error.chain() {
        if let Some(classified) = cause.downcast_ref::<Classified>() {
            return classified.failure;
        }
        if let Some(kind) = vault_core::kind_of(cause) {
            return Failure::from(kind);
        }
    }
    Failure::Other
}

/// What to do next, for the failures where the library's message (a fact) leaves a person
/// asking: the first error along the chain that has advice gives it.
pub fn advice(error: &anyhow::Error) -> Option<&'static str> {
    use vault_core::ceremony::CeremonyError;
    use vault_core::hsm::HsmError;
    use vault_core::vault::VaultError;
    error.chain().find_map(|cause| {
        let cause = match cause.downcast_ref::<vault_core::Error>() {
            Some(vault_core::Error::Vault(e)) => e as &(dyn std::error::Error + 'static),
            Some(vault_core::Error::Hsm(e)) => e,
            Some(vault_core::Error::Ceremony(e)) => e,
            Some(vault_core::Error::Trust(e)) => e,
            Some(vault_core::Error::Audit(e)) => e,
            Some(vault_core::Error::Store(e)) => e,
            _ => cause,
        };
        if let Some(vault_core::audit::AuditError::TornTail { .. }) = cause.downcast_ref() {
            return Some(
                "the entries before it are intact; a security officer moves the torn bytes aside \
                 (kept in a file beside the log) with `breakglass audit repair`, then run this again",
            );
        }
        if let Some(vault_core::store::StoreError::Busy { .. }) = cause.downcast_ref() {
            return Some(
                "wait for that command to finish and run this again, or set BREAKGLASS_LOCK_WAIT \
                 (seconds) to wait longer",
            );
        }
        if let Some(e) = cause.downcast_ref::<VaultError>() {
            return match e {
                VaultError::NotPinned { .. } => Some(
                    "pass --fingerprint with the fingerprint printed at init and on the share cards \
                     (or set BREAKGLASS_FINGERPRINT)",
                ),
                VaultError::RekeyPending { .. } => Some(
                    "finish it with `breakglass rekey --resume`, giving a quorum of the old shares and \
                     of the new ones",
                ),
                VaultError::NoRecovery => Some("enable one with `breakglass recovery enable`"),
                VaultError::FormatOne { .. } => Some(
                    "if the vault was made by the previous release, a security officer upgrades it \
                     with `breakglass upgrade --operator NAME` and a quorum of shares",
                ),
                VaultError::Downgraded { .. } => Some(
                    "restore the certified vault.json from a copy you trust; never upgrade the old \
                     file again",
                ),
                _ => None,
            };
        }
        if let Some(
            vault_core::trust::TrustError::ManifestSignature { .. }
            | vault_core::trust::TrustError::ManifestRollback { .. }
            | vault_core::trust::TrustError::ManifestFork { .. }
            | vault_core::trust::TrustError::IdentityMismatch { .. }
            | vault_core::trust::TrustError::UpgradeStatement { .. },
        ) = cause.downcast_ref::<vault_core::trust::TrustError>()
        {
            return Some(
                "vault.json was changed or put back outside breakglass: restore it from a copy \
                 you trust and compare the fingerprint with the share cards",
            );
        }
        match cause.downcast_ref::<vault_core::trust::TrustError>() {
            Some(
                vault_core::trust::TrustError::NoOperatorKey { .. }
                | vault_core::trust::TrustError::NotAnOperator { .. },
            ) => {
                return Some(
                    "run this on the machine of an operator of the vault (where `breakglass init \
                     --operator` or the quorum made their key); the vault directory alone grants \
                     no authority",
                );
            }
            Some(vault_core::trust::TrustError::Request {
                problem: vault_core::trust::RequestProblem::Expired { .. },
            }) => return Some("ask the security officer for a new request"),
            Some(vault_core::trust::TrustError::Request { .. })
            | Some(vault_core::trust::TrustError::OperatorSignature { .. })
            | Some(vault_core::trust::TrustError::UnknownOperator { .. }) => {
                return Some(
                    "do not contribute: ask the security officer, by a channel you already trust, \
                     whether they sent this request",
                );
            }
            Some(vault_core::trust::TrustError::TokenAuditRollback { .. }) => {
                return Some(
                    "audit.jsonl was cut back or rewritten outside breakglass: restore the log from a copy that holds \
                     that line (a backup, another copy of the vault directory); the token signs no \
                     checkpoint over a log that does not",
                );
            }
            Some(vault_core::trust::TrustError::AuditRollback { .. }) => {
                return Some(
                    "audit.jsonl was cut back or rewritten outside breakglass: restore the log from a copy that holds \
                     that line (a backup, another copy of the vault directory); if the whole \
                     directory was restored on purpose from an older backup, a security officer \
                     who has checked it removes this machine's anchors/<vault id>.json in the \
                     breakglass configuration directory",
                );
            }
            _ => {}
        }
        match cause.downcast_ref::<HsmError>() {
            Some(HsmError::ModuleLoad { .. }) => {
                return Some("check the path; for SoftHSM: apt-get install softhsm2");
            }
            Some(_) => return None,
            None => {}
        }
        match cause.downcast_ref::<CeremonyError>() {
            Some(CeremonyError::Expired { .. } | CeremonyError::TransportKeyGone { .. }) => {
                Some("open a new ceremony")
            }
            _ => None,
        }
    })
}

impl From<ErrorKind> for Failure {
    fn from(kind: ErrorKind) -> Failure {
        match kind {
            ErrorKind::Quorum => Failure::Quorum,
            ErrorKind::Token => Failure::Hsm,
            ErrorKind::Integrity => Failure::Integrity,
            ErrorKind::Invalid => Failure::Usage,
            ErrorKind::Interrupted => Failure::Interrupted,
            ErrorKind::Busy => Failure::Busy,
            ErrorKind::TornAudit => Failure::TornAudit,
            _ => Failure::Other,
        }
    }
}
