//! A vault: the store, its manifest and audit log, and the operations over them. One room per
//! operation, so that a change to one is made in one place:
//!
//! - [`tokens`](self::tokens): finding an enrolled token that is present, its PINs, logging in;
//! - `record`: signed audit appends and the entries that record a new manifest;
//! - `anchors`: the audit log held to the head this machine remembers, verified from there on;
//! - `attempts`: the `<purpose>_failed` entry an operation leaves when it fails after shares
//!   were given;
//! - `listing`: the credential index `list` and `status` read, checked against every file;
//! - `rewrap`: the one loop that re-seals envelopes or adds and removes their token stanzas;
//! - `shares`: share sets (quorum and recovery), recombining them, layout validation;
//! - `init`, `seal`, `unseal` (with `recover`), `drill`, `enroll`, `rekey` (plan, journal,
//!   apply) and `recovery` (enabling a recovery set): the operations themselves.
//!
//! The library never prompts: PINs that do not come from the quorum are asked of the caller
//! through [`PinProvider`].

mod anchors;
mod attempts;
mod drill;
mod enroll;
mod envelopes;
mod init;
mod interrupted;
mod listing;
mod operators;
mod record;
mod recovery;
mod rekey;
mod rewrap;
mod seal;
mod shares;
mod sign_history;
#[cfg(test)]
pub(crate) mod test_vault;
mod tokens;
mod unseal;
mod upgrade;
mod verified;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::audit::AuditLog;
use crate::hsm::HsmError;
use crate::manifest::{Manifest, ManifestKeys};
use crate::store::{AUDIT_LOG, MANIFEST, SUCCESSION, Store};
use crate::trust::identity::{PinnedIdentity, Succession};
use crate::trust::machine::{ConfigDir, MachineAnchor};
use crate::trust::{AuthenticatedManifest, CertifiedManifest, TrustError};

pub use drill::DrillReport;
pub use enroll::{Enrolment, NewToken};
pub use init::InitOptions;
pub use listing::{Listed, Listing};
pub use operators::{OperatorChange, OperatorsChanged};
pub use record::AUDIT_REPAIR;
pub use recovery::RecoveryPlan;
pub use rekey::{RecoveryChange, RekeyOptions, RekeyPlan};
pub use shares::{
    CustodianShare, GroupDef, RECOVERY_GROUP, Recombined, RecoveryDef, validate_recovery,
};
pub use sign_history::HistorySigned;
pub use tokens::{PinProvider, TokenChoice, TokenTarget};
pub use unseal::Unsealed;
pub use upgrade::{FormatOneVault, Upgraded};

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
    /// `vault.json` is a manifest of the first format (made by an earlier release), which
    /// nothing certifies: it must be upgraded before anything else runs.
    #[error(
        "{} is a format-1 manifest (made by an earlier release): nothing in it is certified by the \
         quorum, so no command uses it until the vault is upgraded with `breakglass upgrade`",
        file.display()
    )]
    FormatOne {
        /// The manifest file.
        file: PathBuf,
    },
    /// `vault.json` is a format-1 manifest, but this machine has authenticated a certified
    /// version of the vault already: the old file was put back (a downgrade).
    #[error(
        "{} is a format-1 manifest, but this machine has seen version {version} of vault {vault_id} \
         certified by its quorum: the old file was put back in place of the certified one",
        file.display()
    )]
    Downgraded {
        /// The manifest file.
        file: PathBuf,
        /// The vault.
        vault_id: String,
        /// The highest certified version this machine has seen.
        version: u64,
    },
    /// `upgrade` on a vault whose audit log is signed already.
    #[error(
        "vault {vault_id} is upgraded already: its manifest is certified and its audit lines are signed; there is nothing to upgrade"
    )]
    HistorySignedAlready {
        /// The vault.
        vault_id: String,
    },
    /// `upgrade` on a vault that is certified already.
    #[error("{} is a certified manifest already: there is nothing to upgrade", file.display())]
    NotFormatOne {
        /// The manifest file.
        file: PathBuf,
    },
    /// An operator change that cannot be made.
    #[error("operator {name}: {problem}")]
    OperatorChange {
        /// The operator named.
        name: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A key given for a new operator is another operator's already.
    #[error("operator {name}: the key given is operator {holder}'s already (one key, one person)")]
    OperatorKeyTaken {
        /// The operator named.
        name: String,
        /// Who holds the key.
        holder: String,
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
    /// The journal of an interrupted rekey is not the one the rekey wrote: it was edited, or
    /// written by something without the old quorum secret.
    #[error(
        "{} was changed since the rekey wrote it ({reason}): nothing was resumed and this machine's pin is unchanged",
        journal.display()
    )]
    JournalNotAuthentic {
        /// The journal file.
        journal: PathBuf,
        /// What does not hold.
        reason: &'static str,
    },
    /// The quorum cannot derive a PIN this token accepts.
    #[error("token {label}: no PIN can be derived for it")]
    TokenPin {
        /// The token.
        label: String,
        /// Why.
        #[source]
        cause: crate::trust::TrustError,
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
    /// The quorum is not met: which group needs how many more, by name.
    #[error("not enough shares: {detail}")]
    NotEnoughShares {
        /// Each group short of its threshold, with whose shares it has and could take.
        detail: String,
        /// The count the SLIP-39 layer gave.
        #[source]
        cause: crate::quorum::QuorumError,
    },
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

/// An open vault: its manifest authenticated against what this machine holds.
#[derive(Debug, Clone)]
pub struct Vault {
    store: Store,
    trusted: AuthenticatedManifest,
    /// The manifest's keys, parsed once from `trusted`.
    keys: ManifestKeys,
    config: ConfigDir,
    /// The envelope each credential's latest signed record names, once walked for (see
    /// `envelopes.rs`); forgotten at every append.
    recorded: Arc<std::sync::Mutex<Option<Arc<envelopes::Recorded>>>>,
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

/// The identity this machine holds for `vault_id`: its anchor's (the full identity) and the
/// fingerprint pinned in `known_vaults.json`; both must agree when both are there. `None`
/// when this machine has pinned nothing for the vault.
fn machine_pin(
    config: &ConfigDir,
    vault_id: &str,
) -> Result<(Option<PinnedIdentity>, Option<MachineAnchor>), crate::Error> {
    let anchor = MachineAnchor::read(config, vault_id)?;
    let known = crate::manifest::read_known_vaults(&known_vaults_path(config))?
        .get(vault_id)
        .map(|f| PinnedIdentity::parse(f))
        .transpose()?;
    let pin = match (&anchor, known) {
        (Some(anchor), _) => Some(PinnedIdentity::parse(&anchor.identity)?),
        (None, known) => known,
    };
    Ok((pin, anchor))
}

/// `known_vaults.json` in the configuration directory: vault id → pinned fingerprint.
pub fn known_vaults_path(config: &ConfigDir) -> PathBuf {
    config.root().join("known_vaults.json")
}

/// Reads `vault.json` as a certified manifest; a format-1 manifest is named as such: a
/// downgrade when this machine has authenticated a certified version of that vault, else an
/// old vault to upgrade.
fn read_certified(
    config: &ConfigDir,
    store: &Store,
    bytes: &[u8],
) -> Result<CertifiedManifest, crate::Error> {
    let file = store.path(MANIFEST);
    match CertifiedManifest::from_bytes(bytes, &file) {
        Ok(document) => Ok(document),
        Err(e) => {
            if let Ok(old) = Manifest::from_bytes(bytes, &file) {
                upgrade::refuse_downgrade(config, file.clone(), &old)?;
                return Err(VaultError::FormatOne { file }.into());
            }
            Err(e.into())
        }
    }
}

/// Authenticates `document` against this machine's pin and anchor (the identity it claims
/// when this machine has pinned nothing), and moves the anchor forward when pinned. A rekey
/// changes the identity: when the pinned one is not the document's, the succession statement
/// the rekey left (`succession.json`, signed by the outgoing quorum, which the pin names) moves
/// the pin to the new identity. A format-1 fingerprint pinned before an upgrade is moved by
/// the upgrade's statement (`upgrade.json`, signed by the format-1 audit key, which that
/// fingerprint covers). Nothing else moves a pin.
fn authenticate(
    config: &ConfigDir,
    store: &Store,
    document: CertifiedManifest,
) -> Result<AuthenticatedManifest, crate::Error> {
    let vault_id = document.manifest.vault_id.clone();
    let (pin, anchor) = machine_pin(config, &vault_id)?;
    let Some(mut pin) = pin else {
        let claimed = PinnedIdentity::of(&document.identity_fingerprint()?);
        return Ok(document.authenticate(&claimed, None)?);
    };
    let claimed = document.identity_fingerprint()?;
    let mut succeeded = false;
    if !pin.matches(&claimed)
        && upgrade::follow_upgrade(store, &vault_id, &pin, &claimed, &document.manifest.quorum)?
    {
        // A format-1 fingerprint pinned here, moved by the upgrade's statement.
        pin = PinnedIdentity::of(&claimed);
        succeeded = true;
    } else if !pin.matches(&claimed)
        && let Some(succession) = read_succession(store)?
    {
        succession.verify(&vault_id, &pin, &claimed)?;
        pin = PinnedIdentity::of(&claimed);
        succeeded = true;
    }
    let trusted = document.authenticate(&pin, anchor.as_ref().map(|a| &a.manifest))?;
    remember(config, &trusted, anchor)?;
    // The pin in known_vaults.json follows too: moved with the anchor above, or left behind
    // when a rekey on this machine stopped after moving the anchor and before pinning.
    let known = crate::manifest::read_known_vaults(&known_vaults_path(config))?
        .get(&vault_id)
        .map(|f| PinnedIdentity::parse(f))
        .transpose()?;
    if let Some(known) = known
        && !known.matches(trusted.identity())
        && (succeeded || succession_verifies(store, &vault_id, &known, trusted.identity()))
    {
        repin_known(config, &vault_id, &trusted.identity().display())?;
    }
    Ok(trusted)
}

/// The succession statement a rekey left in the vault directory, if any (not yet verified).
fn read_succession(store: &Store) -> Result<Option<Succession>, crate::Error> {
    if !store.path(SUCCESSION).exists() {
        return Ok(None);
    }
    let bytes = store.read(SUCCESSION)?;
    let succession = serde_json::from_slice(&bytes).map_err(|e| TrustError::InvalidSuccession {
        file: store.path(SUCCESSION),
        reason: e.to_string(),
    })?;
    Ok(Some(succession))
}

/// Whether the vault's succession statement moves `pinned` to `next` (a missing or unreadable
/// statement does not).
fn succession_verifies(
    store: &Store,
    vault_id: &str,
    pinned: &PinnedIdentity,
    next: &crate::manifest::Fingerprint,
) -> bool {
    read_succession(store)
        .ok()
        .flatten()
        .is_some_and(|s| s.verify(vault_id, pinned, next).is_ok())
}

/// Moves the fingerprint pinned for `vault_id` in `known_vaults.json`, when one is there.
fn repin_known(config: &ConfigDir, vault_id: &str, fingerprint: &str) -> Result<(), crate::Error> {
    let path = known_vaults_path(config);
    let mut known = crate::manifest::read_known_vaults(&path)?;
    if let Some(pinned) = known.get_mut(vault_id) {
        *pinned = fingerprint.to_owned();
        let mut bytes = serde_json::to_vec_pretty(&known).unwrap_or_default();
        bytes.push(b'\n');
        crate::store::write_atomic(&path, &bytes)?;
    }
    Ok(())
}

/// Moves this machine's anchor for the vault to `trusted` (made when there is none).
fn remember(
    config: &ConfigDir,
    trusted: &AuthenticatedManifest,
    anchor: Option<MachineAnchor>,
) -> Result<(), TrustError> {
    let anchor = match anchor {
        Some(mut anchor) => {
            if anchor.manifest == trusted.seen() && anchor.is_for(trusted.identity()) {
                return Ok(());
            }
            anchor.advance_manifest(trusted)?;
            anchor
        }
        None => MachineAnchor::new(trusted),
    };
    anchor.write(config)
}

impl Vault {
    /// Opens the vault in `dir`, authenticating its manifest against what this machine holds
    /// in `config` (see [`Vault::open_resuming`]).
    pub fn open(dir: &Path, config: &ConfigDir) -> Result<Vault, crate::Error> {
        let vault = Vault::open_resuming(dir, config)?;
        vault.refuse_pending_rekey()?;
        Ok(vault)
    }

    /// Opens the vault in `dir` even when a rekey was interrupted (to resume it). The manifest
    /// is authenticated: its identity is the one this machine pinned (its anchor, or
    /// `known_vaults.json`), its quorum signature verifies, and its version is not below the
    /// highest this machine has seen; the audit log continues the head this machine last
    /// verified, and what was appended since verifies. While a rekey is unfinished, the manifest before it
    /// (kept in the journal) is the one authenticated: its quorum is the one that resumes.
    pub fn open_resuming(dir: &Path, config: &ConfigDir) -> Result<Vault, crate::Error> {
        let store = Store::open(dir)?;
        let bytes = match rekey::journal_previous(&store)? {
            Some(previous) => previous,
            None => store.read(MANIFEST)?,
        };
        let document = read_certified(config, &store, &bytes)?;
        let trusted = authenticate(config, &store, document)?;
        let vault = Vault::with(store, trusted, config.clone())?;
        vault.follow_audit()?;
        vault.refuse_unsigned_history()?;
        // A writer killed between recording a seal and renaming its envelope in: settled now
        // (under the writers' lock), so that every command sees the recorded envelope in
        // place. Rare, and best effort: a busy lock leaves it to the next writer.
        if !vault.store.stale_staged().is_empty() {
            let _ = vault.write_lock();
        }
        Ok(vault)
    }

    /// Opens a vault whose manifest is certified but whose audit log has no signed lines yet
    /// (made by an earlier release), for `breakglass upgrade` alone: see
    /// [`Vault::sign_history`].
    pub fn open_unsigned(dir: &Path, config: &ConfigDir) -> Result<Vault, crate::Error> {
        let store = Store::open(dir)?;
        let bytes = store.read(MANIFEST)?;
        let document = read_certified(config, &store, &bytes)?;
        let trusted = authenticate(config, &store, document)?;
        let vault = Vault::with(store, trusted, config.clone())?;
        vault.follow_audit()?;
        Ok(vault)
    }

    fn with(
        store: Store,
        trusted: AuthenticatedManifest,
        config: ConfigDir,
    ) -> Result<Vault, crate::Error> {
        let keys = trusted.manifest().keys()?;
        Ok(Vault {
            store,
            trusted,
            keys,
            config,
            recorded: Arc::default(),
        })
    }

    /// Replaces the manifest by a newly certified version, writes it as `vault.json` (the
    /// caller holds the writers' lock) and moves this machine's anchor to it.
    fn install(
        &mut self,
        lock: &crate::store::WriteLock,
        trusted: AuthenticatedManifest,
    ) -> Result<(), crate::Error> {
        let keys = trusted.manifest().keys()?;
        self.store
            .write(lock, MANIFEST, &trusted.document().to_bytes())?;
        let anchor = MachineAnchor::read(&self.config, trusted.vault_id())?;
        remember(&self.config, &trusted, anchor)?;
        self.trusted = trusted;
        self.keys = keys;
        Ok(())
    }

    /// Whether an audit entry records the manifest as it is (its digest). Not so after a crash
    /// between writing `vault.json` and appending the entry that records it, or once such an
    /// entry, torn, was moved aside by `audit repair`. Read back from the end of the log,
    /// stopping at the entry that records it (normally the last entry recording a manifest);
    /// only lines that can carry a digest are parsed. Not the last recording entry alone: while
    /// a rekey is unfinished, the manifest authenticated is the one before it, and the rekey's
    /// entry may follow the one that records it.
    pub fn manifest_recorded(&self) -> Result<bool, crate::Error> {
        let digest = self.trusted.digest_hex();
        let recording = self.audit().rfind_matching(
            |line| crate::audit::may_name(line, "manifest_digest"),
            |e| e.details.get("manifest_digest") == Some(&digest),
        )?;
        Ok(recording.is_some())
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        self.trusted.manifest()
    }

    /// The authenticated manifest: version, operators, identity.
    pub fn certified(&self) -> &AuthenticatedManifest {
        &self.trusted
    }

    /// The vault identity (what share cards carry and machines pin).
    pub fn identity(&self) -> String {
        self.trusted.identity().display()
    }

    /// The manifest's keys.
    pub fn keys(&self) -> &ManifestKeys {
        &self.keys
    }

    /// This machine's configuration directory.
    pub fn config(&self) -> &ConfigDir {
        &self.config
    }

    /// Refuses `pinned` (a fingerprint given for a change, or pinned) unless it is this
    /// vault's identity.
    pub fn check_identity(&self, pinned: &str) -> Result<(), crate::Error> {
        // Text that is no fingerprint at all is not this vault's either.
        match PinnedIdentity::parse(pinned) {
            Ok(pin) if pin.matches(self.trusted.identity()) => Ok(()),
            _ => Err(TrustError::IdentityMismatch {
                vault_id: self.trusted.vault_id().to_owned(),
                expected: pinned.to_owned(),
                found: self.identity(),
            }
            .into()),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The audit log.
    pub fn audit(&self) -> AuditLog {
        AuditLog::of_vault(&self.store.path(AUDIT_LOG), &self.trusted)
    }
}
