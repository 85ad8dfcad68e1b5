//! A vault: the store, its manifest and audit log, and the operations over them. One room per
//! operation, so that a change to one is made in one place:
//!
//! - [`tokens`](self::tokens): finding an enrolled token that is present, its PINs, logging in;
//! - `record`: signed audit appends and the entries that record a new manifest;
//! - `listing`: the credential index `list` and `status` read, checked against every file;
//! - `rewrap`: the one loop that re-seals envelopes or adds and removes their token stanzas;
//! - `shares`: share sets (quorum and recovery), recombining them, layout validation;
//! - `init`, `seal`, `unseal` (with `recover`), `drill`, `enroll`, `rekey` (plan, journal,
//!   apply) and `recovery` (enabling a recovery set): the operations themselves.
//!
//! The library never prompts: PINs that do not come from the quorum are asked of the caller
//! through [`PinProvider`].

mod drill;
mod enroll;
mod init;
mod listing;
mod record;
mod recovery;
mod rekey;
mod rewrap;
mod seal;
mod shares;
mod tokens;
mod unseal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::audit::AuditLog;
use crate::hsm::HsmError;
use crate::manifest::Manifest;
use crate::store::{AUDIT_LOG, MANIFEST, Store};

pub use drill::DrillReport;
pub use enroll::NewToken;
pub use init::InitOptions;
pub use listing::{Listed, Listing};
pub use recovery::RecoveryPlan;
pub use rekey::{RecoveryChange, RekeyOptions, RekeyPlan};
pub use shares::{
    CustodianShare, GroupDef, RECOVERY_GROUP, Recombined, RecoveryDef, validate_recovery,
};
pub use tokens::{PinProvider, TokenChoice, TokenTarget};
pub use unseal::Unsealed;

/// The length of the quorum secret (and of the recovery secret).
const QUORUM_SECRET_BYTES: usize = 32;

/// A vault-level failure that is not a module's own.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The shares recombine, but not to this vault's quorum secret.
    #[error(
        "the shares recombine, but not to this vault's quorum key: they are from another vault or an \
         older share set (before a rekey), or the passphrase is wrong"
    )]
    WrongQuorum,
    /// A custodian layout problem.
    #[error("invalid custodians: {0}")]
    Layout(String),
    /// No enrolled token could be used.
    #[error("none of the vault's tokens ({tokens}) is present")]
    NoToken {
        /// The enrolled token labels.
        tokens: String,
        /// Why the last one tried could not be used.
        #[source]
        last_error: Option<Arc<HsmError>>,
    },
    /// No enrolled token carries the label asked for.
    #[error("no enrolled token is labelled {label:?}")]
    NoSuchToken {
        /// The label.
        label: String,
    },
    /// No pinned fingerprint for this vault on this machine.
    #[error("no fingerprint is pinned for vault {vault_id} on this machine")]
    NotPinned {
        /// The vault.
        vault_id: String,
    },
    /// `vault.json` is not the version the audit log recorded.
    #[error(
        "vault.json is not the manifest the audit log recorded (audit line {line}): it was changed \
         outside breakglass"
    )]
    ManifestChanged {
        /// The audit line that recorded the manifest (0: none does).
        line: u64,
    },
    /// The operating system's random generator failed.
    #[error("the operating system's random generator failed")]
    Random,
    /// A rekey was interrupted; nothing else may run until it is finished.
    #[error("a rekey of this vault was interrupted ({journal} exists)")]
    RekeyPending {
        /// The journal file.
        journal: PathBuf,
    },
    /// No interrupted rekey to resume.
    #[error("there is no interrupted rekey to resume")]
    NoRekeyPending,
    /// A token whose PIN comes from the quorum is not present for a rekey.
    #[error(
        "token {label} (serial {serial}) is not present: its PIN is derived from the quorum secret, so \
         a rekey must change it, and every such token must be connected"
    )]
    TokenAbsent {
        /// The token label.
        label: String,
        /// Its serial.
        serial: String,
        /// Why it could not be opened.
        #[source]
        cause: Arc<HsmError>,
    },
    /// The vault has no recovery share set.
    #[error("this vault has no recovery share set")]
    NoRecovery,
    /// The recovery shares recombine to another key.
    #[error(
        "the recovery shares recombine, but not to this vault's recovery key: they are from another \
         vault or an older recovery set"
    )]
    WrongRecovery,
    /// Stopped at a test fault point (`BREAKGLASS_TEST_FAULT`), as a crash would.
    #[error("stopped at fault point {0} (BREAKGLASS_TEST_FAULT)")]
    FaultPoint(String),
}

/// An open vault.
#[derive(Debug, Clone)]
pub struct Vault {
    store: Store,
    manifest: Manifest,
}

/// `len` bytes from the operating system's generator.
fn random_bytes(len: usize) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| VaultError::Random)?;
    Ok(bytes)
}

/// The current time, as the audit log and the manifest write it.
fn now() -> String {
    crate::clock::rfc3339(crate::clock::now_unix())
}

impl Vault {
    /// Opens the vault in `dir`.
    pub fn open(dir: &Path) -> Result<Vault, crate::Error> {
        let vault = Vault::open_resuming(dir)?;
        vault.refuse_pending_rekey()?;
        Ok(vault)
    }

    /// Opens the vault in `dir` even when a rekey was interrupted (to resume it).
    pub fn open_resuming(dir: &Path) -> Result<Vault, crate::Error> {
        let store = Store::open(dir)?;
        let bytes = store.read(MANIFEST)?;
        let manifest = Manifest::from_bytes(&bytes, &store.path(MANIFEST))?;
        let vault = Vault { store, manifest };
        match vault.check_manifest_recorded(&bytes) {
            Ok(()) => Ok(vault),
            // Interrupted between writing the new manifest and recording it: the journal
            // holds exactly these bytes, and resuming records them.
            Err(_) if vault.journal_holds(&bytes) => Ok(vault),
            Err(e) => Err(e),
        }
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The audit log.
    pub fn audit(&self) -> AuditLog {
        AuditLog::new(&self.store.path(AUDIT_LOG), &self.manifest.vault_id)
    }
}
