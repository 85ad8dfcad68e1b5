//! A vault: the store, its manifest and audit log, and the operations of the core flow (init,
//! seal, unseal, share verification). The library never prompts: PINs that do not come from the
//! quorum are asked of the caller through [`PinProvider`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::audit::{Actor, AuditLog, Event, Head};
use crate::envelope::{self, Envelope, Kind, SealInput};
use crate::hpke::{DhOracle, P256SecretKey, X25519SecretKey};
use crate::hsm::{KeyPurpose, KeyRef, LoginWarning, Module, PinRole, TokenSelector, TokenSession};
use crate::manifest::{
    self, AuditKey, Custodian, Group, HsmEnrollment, Manifest, PinSource, Policy, Quorum,
    RetiredAuditKey,
};
use crate::quorum::{self, Collector, GroupSpec, QuorumError, Share, SplitParams};
use crate::secret::SecretBytes;
use crate::store::{AUDIT_LOG, MANIFEST, Store};

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
    #[error("none of the vault's tokens ({tokens}) is present: {last_error}")]
    NoToken {
        /// The enrolled token labels.
        tokens: String,
        /// Why the last one failed.
        last_error: String,
    },
    /// No pinned fingerprint for this vault on this machine.
    #[error(
        "no fingerprint is pinned for vault {vault_id} on this machine: pass --fingerprint with the \
         fingerprint printed at init and on the share cards (or set BREAKGLASS_FINGERPRINT)"
    )]
    NotPinned {
        /// The vault.
        vault_id: String,
    },
    /// `vault.json` is not the version the audit log recorded.
    #[error(
        "vault.json is not the manifest the audit log recorded (audit line {line}): it was changed \
         outside breakglass. Compare its fingerprint with the share cards before using this vault"
    )]
    ManifestChanged {
        /// The audit line that recorded the manifest (0: none does).
        line: u64,
    },
    /// The operating system's random generator failed.
    #[error("the operating system's random generator failed")]
    Random,
    /// A rekey was interrupted; nothing else may run until it is finished.
    #[error(
        "a rekey of this vault was interrupted ({journal} exists): finish it with `breakglass rekey \
         --resume`, giving a quorum of the old shares and of the new ones"
    )]
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
         a rekey must change it, and every such token must be connected ({cause})"
    )]
    TokenAbsent {
        /// The token label.
        label: String,
        /// Its serial.
        serial: String,
        /// Why it could not be opened.
        cause: String,
    },
    /// The vault has no recovery share set.
    #[error("this vault has no recovery share set (enable one with `breakglass recovery enable`)")]
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

/// Stops an operation at a named point when `BREAKGLASS_TEST_FAULT` names it: the tests use it
/// to interrupt a rekey exactly there, as a crash or a killed terminal would.
fn fault_point(name: &str) -> Result<(), VaultError> {
    if std::env::var("BREAKGLASS_TEST_FAULT").as_deref() == Ok(name) {
        return Err(VaultError::FaultPoint(name.to_owned()));
    }
    Ok(())
}

/// The journal of a rekey in progress (public data only).
const REKEY_JOURNAL: &str = "rekey.json";

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RekeyJournal {
    /// The manifest before the rekey (its quorum is the one the old shares must meet).
    previous: String,
    /// The manifest the rekey installs (with the new quorum).
    manifest: String,
    /// The PIN changes done: `<serial>:user` and `<serial>:so`.
    pins_changed: Vec<String>,
    /// The custodians of the old quorum who authorised it.
    custodians: Vec<String>,
}

/// The audit detail that records the manifest's hash.
const MANIFEST_HASH: &str = "manifest_sha256";

/// One group of custodians as given at init.
#[derive(Debug, Clone)]
pub struct GroupDef {
    /// The group's name.
    pub name: String,
    /// Members needed.
    pub threshold: u8,
    /// The members' names, in order.
    pub members: Vec<String>,
}

/// Which token to use at init.
#[derive(Debug, Clone)]
pub struct TokenTarget {
    /// The PKCS#11 module.
    pub module: PathBuf,
    /// The token label.
    pub label: String,
    /// Initialise the token first (it must be uninitialised).
    pub init_token: bool,
    /// A SoftHSM configuration inside the vault (relative path), for `--dev-softhsm` vaults.
    pub softhsm_conf: Option<String>,
}

/// Asks the caller for PINs that do not come from the quorum (environment, file, terminal).
pub trait PinProvider {
    /// The PIN for `role` on the token `label`, from `source`.
    fn pin(
        &self,
        label: &str,
        role: PinRole,
        source: &PinSource,
    ) -> Result<SecretString, crate::Error>;
}

/// What `init` is asked to do.
pub struct InitOptions<'a> {
    /// Groups needed.
    pub group_threshold: u8,
    /// The groups.
    pub groups: Vec<GroupDef>,
    /// The token.
    pub token: TokenTarget,
    /// Where the user PIN comes from.
    pub user_pin: PinSource,
    /// Where the SO PIN comes from (used only with `init_token`).
    pub so_pin: PinSource,
    /// PINs not derived from the quorum.
    pub pins: &'a dyn PinProvider,
    /// Policy.
    pub policy: Policy,
    /// SLIP-39 iteration exponent.
    pub iteration_exponent: u8,
    /// A recovery share set to make as well.
    pub recovery: Option<RecoveryDef>,
}

/// A recovery share set to make: one group of `members`, `threshold` of them needed (more
/// than the normal quorum needs).
#[derive(Debug, Clone)]
pub struct RecoveryDef {
    /// Members needed.
    pub threshold: u8,
    /// The members' names, in order.
    pub members: Vec<String>,
}

/// A custodian's share, as `init` hands it out.
pub struct CustodianShare {
    /// The custodian.
    pub custodian: String,
    /// Their group's name.
    pub group: String,
    /// Whether it is a share of the recovery set (not of the quorum).
    pub recovery: bool,
    /// The share.
    pub share: Share,
}

impl std::fmt::Debug for CustodianShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustodianShare")
            .field("custodian", &self.custodian)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// An open vault.
#[derive(Debug, Clone)]
pub struct Vault {
    store: Store,
    manifest: Manifest,
}

/// The result of unsealing.
pub struct Unsealed {
    /// The secret payload.
    pub payload: SecretBytes,
    /// The envelope (public header).
    pub envelope: Envelope,
    /// The custodians whose shares were used.
    pub custodians: Vec<String>,
    /// Shares that were given but did not fit (position, custodian if known).
    pub rejected: Vec<(usize, Option<String>)>,
    /// The token that served.
    pub token: String,
    /// A PIN warning to show.
    pub warning: Option<LoginWarning>,
}

impl std::fmt::Debug for Unsealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsealed")
            .field("credential", &self.envelope.name)
            .field("custodians", &self.custodians)
            .finish_non_exhaustive()
    }
}

/// What a rekey changes besides the quorum secret.
#[derive(Debug, Default)]
pub struct RekeyOptions {
    /// New custodians (the current ones when `None`).
    pub layout: Option<(u8, Vec<GroupDef>)>,
    /// SLIP-39 iteration exponent (the current one when `None`).
    pub iteration_exponent: Option<u8>,
    /// What happens to the recovery set.
    pub recovery: RecoveryChange,
}

/// The recovery set at a rekey.
#[derive(Debug, Default)]
pub enum RecoveryChange {
    /// Renewed (new secret and shares) with the same threshold and members, when there is one.
    #[default]
    Keep,
    /// Made anew with this layout.
    Set(RecoveryDef),
    /// Removed.
    Drop,
}

/// A rekey prepared by [`Vault::rekey_prepare`]: the new shares to hand out, then commit.
pub struct RekeyPlan {
    old_q: SecretBytes,
    new_q: SecretBytes,
    manifest: Manifest,
    shares: Vec<CustodianShare>,
    custodians: Vec<String>,
}

impl RekeyPlan {
    /// The manifest the rekey installs.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The new shares, one per custodian.
    pub fn shares(&self) -> &[CustodianShare] {
        &self.shares
    }
}

impl std::fmt::Debug for RekeyPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RekeyPlan")
            .field("custodians", &self.custodians)
            .finish_non_exhaustive()
    }
}

/// A recovery set prepared by [`Vault::recovery_prepare`]: its shares to hand out, then commit.
pub struct RecoveryPlan {
    q: SecretBytes,
    manifest: Manifest,
    shares: Vec<CustodianShare>,
    custodians: Vec<String>,
}

impl RecoveryPlan {
    /// The manifest with the recovery set.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The recovery shares, one per member.
    pub fn shares(&self) -> &[CustodianShare] {
        &self.shares
    }
}

impl std::fmt::Debug for RecoveryPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryPlan")
            .field("custodians", &self.custodians)
            .finish_non_exhaustive()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

fn random_bytes(len: usize) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| VaultError::Random)?;
    Ok(bytes)
}

/// The token PIN derived from the quorum secret: 32 hex characters of HMAC-SHA256(Q, label).
fn quorum_pin(q: &[u8], vault_id: &str, role: PinRole) -> SecretString {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, q);
    let role = match role {
        PinRole::User => "user",
        PinRole::SecurityOfficer => "so",
    };
    let tag = ring::hmac::sign(
        &key,
        format!("breakglass token pin/1\n{vault_id}\n{role}").as_bytes(),
    );
    SecretString::from(hex::encode(&tag.as_ref()[..16]))
}

fn pin_for(
    q: Option<&[u8]>,
    vault_id: &str,
    label: &str,
    role: PinRole,
    source: &PinSource,
    pins: &dyn PinProvider,
) -> Result<SecretString, crate::Error> {
    match (source, q) {
        (PinSource::Quorum, Some(q)) => Ok(quorum_pin(q, vault_id, role)),
        (PinSource::Quorum, None) => Err(VaultError::Layout(
            "the PIN comes from the quorum, which is not at hand".into(),
        )
        .into()),
        (other, _) => pins.pin(label, role, other),
    }
}

impl Vault {
    /// Opens the vault in `dir`.
    pub fn open(dir: &Path) -> Result<Vault, crate::Error> {
        let vault = Vault::open_resuming(dir)?;
        let journal = vault.store.path(REKEY_JOURNAL);
        if journal.exists() {
            return Err(VaultError::RekeyPending { journal }.into());
        }
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
            Err(e) => match vault.read_journal() {
                Ok(journal) if journal.manifest.as_bytes() == bytes.as_slice() => Ok(vault),
                _ => Err(e),
            },
        }
    }

    /// The manifest's exact bytes must be the version the audit log last recorded (at init,
    /// rekey or enrolment, each followed by a checkpoint signed by the token's audit key): any
    /// byte changed in `vault.json`, even outside the fingerprinted core, is found here.
    fn check_manifest_recorded(&self, bytes: &[u8]) -> Result<(), crate::Error> {
        let actual = hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
        let entries = self.audit().entries()?;
        let recorded = entries
            .iter()
            .rev()
            .find_map(|e| e.details.get(MANIFEST_HASH).map(|h| (e.seq, h)));
        match recorded {
            Some((_, hash)) if *hash == actual => Ok(()),
            Some((seq, _)) => Err(VaultError::ManifestChanged { line: seq }.into()),
            None => Err(VaultError::ManifestChanged { line: 0 }.into()),
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

    /// Appends `event` and, when `session` is on the token holding the audit key, a checkpoint
    /// signing it (the caller holds the writers' lock).
    fn append_signed(
        &self,
        event: Event,
        session: &TokenSession<'_>,
        token_label: &str,
        now: &str,
    ) -> Result<(), crate::Error> {
        let audit = self.audit();
        let actor = Actor::current();
        audit.append(event, &actor, now)?;
        if self.manifest.audit.token == token_label {
            let audit_key = hex::decode(&self.manifest.audit.key_id).unwrap_or_default();
            audit.append_checkpoint(&session.audit_signer(&audit_key), &actor, now)?;
        }
        Ok(())
    }

    /// Appends an event to the audit log under the writers' lock.
    pub fn record(&self, event: Event) -> Result<Head, crate::Error> {
        let _lock = self.store.lock()?;
        Ok(self.audit().append(
            event,
            &Actor::current(),
            &crate::clock::rfc3339(crate::clock::now_unix()),
        )?)
    }

    /// Creates a vault: quorum secret, shares, token keys, manifest, first audit entries.
    /// Returns the vault and every custodian's share (checked against the commitments).
    pub fn init(
        dir: &Path,
        options: &InitOptions<'_>,
    ) -> Result<(Vault, Vec<CustodianShare>), crate::Error> {
        validate_groups(options.group_threshold, &options.groups)?;
        if let Some(def) = &options.recovery {
            validate_recovery_against(
                manifest::minimum_shares(
                    options.group_threshold,
                    options.groups.iter().map(|g| g.threshold),
                ),
                def,
            )?;
        }
        let existed = dir.exists();
        let store = Store::create(dir)?;
        let result = Vault::init_in(store, dir, options);
        if result.is_err() {
            // Nothing half-made: the directory was missing or empty before, so everything in it
            // is ours (a token made inside it for --dev-softhsm included).
            if existed {
                if let Ok(entries) = std::fs::read_dir(dir) {
                    for entry in entries.flatten() {
                        let path = entry.path();
                        let _ = if path.is_dir() {
                            std::fs::remove_dir_all(&path)
                        } else {
                            std::fs::remove_file(&path)
                        };
                    }
                }
            } else {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        result
    }

    fn init_in(
        store: Store,
        dir: &Path,
        options: &InitOptions<'_>,
    ) -> Result<(Vault, Vec<CustodianShare>), crate::Error> {
        if options.token.softhsm_conf.is_some() {
            crate::hsm::write_dev_softhsm_conf(dir).map_err(|source| {
                crate::store::StoreError::Io {
                    path: dir.join(crate::hsm::DEV_SOFTHSM_DIR),
                    action: "creating the development SoftHSM token directory",
                    cause: source,
                }
            })?;
        }
        let vault_id = hex::encode(random_bytes(16)?.as_slice());
        let q = random_bytes(QUORUM_SECRET_BYTES)?;
        let quorum_key = X25519SecretKey::derive_key_pair(&q);

        let module = Module::open(&options.token.module)?;
        let token = prepare_token(
            &module,
            Some(&q),
            &vault_id,
            &options.token,
            &options.user_pin,
            &options.so_pin,
            options.pins,
        )?;
        let session = module.open_session(&token)?;
        let user_pin = pin_for(
            Some(&q),
            &vault_id,
            token.label(),
            PinRole::User,
            &options.user_pin,
            options.pins,
        )?;
        session.login(PinRole::User, &user_pin, false)?;
        let seal_key = session.generate_key_pair(&vault_id, KeyPurpose::Seal)?;
        let audit_key = session.generate_key_pair(&vault_id, KeyPurpose::Audit)?;
        // The quorum's share set (and the recovery set), checked against their commitments.

        let (quorum, mut shares_out) = make_share_set(
            &vault_id,
            &q,
            options.group_threshold,
            &options.groups,
            options.iteration_exponent,
            hex::encode(quorum_key.public_key_bytes()),
            false,
        )?;
        let recovery = match &options.recovery {
            Some(def) => {
                let (set, shares) =
                    new_recovery_set(&vault_id, &quorum, def, options.iteration_exponent)?;
                shares_out.extend(shares);
                Some(set)
            }
            None => None,
        };
        let description = token.description();
        let manifest = Manifest {
            format: manifest::FORMAT.into(),
            vault_id: vault_id.clone(),
            created: crate::clock::rfc3339(crate::clock::now_unix()),
            quorum,
            hsms: vec![HsmEnrollment {
                label: description.label.clone(),
                serial: description.serial.clone(),
                manufacturer: description.manufacturer.clone(),
                model: description.model.clone(),
                module: options.token.module.display().to_string(),
                softhsm_conf: options.token.softhsm_conf.clone(),
                seal_key_id: hex::encode(&seal_key.id),
                seal_public_key: hex::encode(&seal_key.public_key),
                pin: options.user_pin.clone(),
                so_pin: options.token.init_token.then(|| options.so_pin.clone()),
            }],
            audit: AuditKey {
                token: description.label.clone(),
                key_id: hex::encode(&audit_key.id),
                public_key: hex::encode(&audit_key.public_key),
            },
            recovery,
            retired_audit_keys: Vec::new(),
            policy: options.policy.clone(),
        };
        let lock = store.lock()?;
        let manifest_bytes = manifest.to_bytes();
        store.write(&lock, MANIFEST, &manifest_bytes)?;
        let manifest_hash =
            hex::encode(ring::digest::digest(&ring::digest::SHA256, &manifest_bytes).as_ref());
        let vault = Vault { store, manifest };
        let audit = vault.audit();
        let now = crate::clock::rfc3339(crate::clock::now_unix());
        let actor = Actor::current();
        audit.append(
            Event::new("init")
                .detail("fingerprint", vault.manifest.fingerprint().display())
                .detail("token", description.label.clone())
                .detail("custodians", vault.manifest.custodian_names().join(","))
                .detail("group_threshold", options.group_threshold.to_string())
                .detail(
                    "recovery",
                    vault
                        .manifest
                        .recovery
                        .as_ref()
                        .map(describe_set)
                        .unwrap_or_else(|| "none".into()),
                )
                .detail(MANIFEST_HASH, manifest_hash),
            &actor,
            &now,
        )?;
        audit.append(
            Event::new("hsm_enrol")
                .detail("token", description.label.clone())
                .detail("serial", description.serial.clone()),
            &actor,
            &now,
        )?;
        audit.append_checkpoint(&session.audit_signer(&audit_key.id), &actor, &now)?;
        drop(lock);
        Ok((vault, shares_out))
    }

    /// Seals `payload` as credential `name`, offline (public keys only), after checking the
    /// manifest against the pinned fingerprint.
    pub fn seal(
        &self,
        name: &str,
        kind: Kind,
        metadata: BTreeMap<String, String>,
        payload: &[u8],
        replace: bool,
        pinned: Option<&str>,
    ) -> Result<PathBuf, crate::Error> {
        let pinned = pinned.ok_or_else(|| VaultError::NotPinned {
            vault_id: self.manifest.vault_id.clone(),
        })?;
        self.manifest.check_pinned(pinned)?;
        crate::store::validate_name(name)?;
        let hsm_keys = self.manifest.hsm_recipients();
        let quorum_key = self
            .manifest
            .quorum_public_key()
            .map_err(|_| VaultError::Layout("quorum key".into()))?;
        let envelope = envelope::seal(&SealInput {
            vault_id: &self.manifest.vault_id,
            name,
            kind,
            created: crate::clock::rfc3339(crate::clock::now_unix()),
            metadata,
            payload,
            hsm_public_keys: &hsm_keys,
            quorum_public_key: &quorum_key,
        })?;
        let lock = self.store.lock()?;
        let path = self
            .store
            .write_credential(&lock, name, &envelope.to_bytes(), replace)?;
        let mut event = Event::new("seal")
            .detail("kind", kind.as_str())
            .detail("replace", replace.to_string());
        event.credential = Some(name.to_owned());
        self.audit().append(
            event,
            &Actor::current(),
            &crate::clock::rfc3339(crate::clock::now_unix()),
        )?;
        Ok(path)
    }

    /// Reads and checks the envelope of `name` (parse, canonical form, vault, name).
    pub fn envelope(&self, name: &str) -> Result<(PathBuf, Envelope), crate::Error> {
        let (path, bytes) = self.store.read_credential(name)?;
        let envelope = Envelope::from_bytes(&bytes, &path)?;
        envelope.check_identity(&self.manifest.vault_id, name, &path)?;
        Ok((path, envelope))
    }

    /// The custodian a share belongs to, by the manifest's commitments.
    pub fn custodian_of(&self, share: &Share) -> Option<String> {
        self.manifest.verify_share(share).map(|c| c.name.clone())
    }

    /// Recombines the collected shares into the quorum key, checking it against the manifest.
    /// Returns the quorum secret, the key, the custodians used and the shares rejected.
    #[allow(clippy::type_complexity)]
    pub fn recombine(
        &self,
        shares: &Collector,
    ) -> Result<
        (
            SecretBytes,
            X25519SecretKey,
            Vec<String>,
            Vec<(usize, Option<String>)>,
        ),
        crate::Error,
    > {
        let combined = shares.combine(b"")?;
        let key = X25519SecretKey::derive_key_pair(combined.secret.expose_secret());
        if hex::encode(key.public_key()) != self.manifest.quorum.public_key {
            return Err(VaultError::WrongQuorum.into());
        }
        let by_position: BTreeMap<usize, &Share> = shares.shares().collect();
        let name = |p: &usize| by_position.get(p).and_then(|s| self.custodian_of(s));
        let custodians = combined
            .used
            .iter()
            .map(|p| name(p).unwrap_or_else(|| format!("share {p}")))
            .collect();
        let rejected = combined.rejected.iter().map(|p| (*p, name(p))).collect();
        Ok((combined.secret, key, custodians, rejected))
    }

    /// Opens a session on the first enrolled token that is present (or the one labelled
    /// `only`), logged in as the user; returns it with its key and any PIN warning.
    pub fn with_token<T>(
        &self,
        q: Option<&[u8]>,
        only: Option<&str>,
        pins: &dyn PinProvider,
        module_override: Option<&Path>,
        force_pin: bool,
        action: impl FnOnce(
            &TokenSession<'_>,
            &HsmEnrollment,
            &KeyRef,
            Option<LoginWarning>,
        ) -> Result<T, crate::Error>,
    ) -> Result<T, crate::Error> {
        let mut last_error = String::from("no token enrolled");
        let mut candidates = self
            .manifest
            .hsms
            .iter()
            .filter(|h| only.is_none_or(|o| o == h.label))
            .peekable();
        if candidates.peek().is_none() {
            return Err(VaultError::NoToken {
                tokens: only.unwrap_or_default().to_owned(),
                last_error: "no enrolled token has that label".into(),
            }
            .into());
        }
        for enrollment in candidates {
            let module_path = module_override
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(&enrollment.module));
            let attempt = (|| -> Result<(Module, crate::hsm::Token), crate::Error> {
                let module = Module::open(&module_path)?;
                let token = module.find_token(&TokenSelector::Serial(enrollment.serial.clone()))?;
                Ok((module, token))
            })();
            let (module, token) = match attempt {
                Ok(found) => found,
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            let session = module.open_session(&token)?;
            let pin = pin_for(
                q,
                &self.manifest.vault_id,
                &enrollment.label,
                PinRole::User,
                &enrollment.pin,
                pins,
            )?;
            let warning = session.login(PinRole::User, &pin, force_pin)?;
            let key = KeyRef {
                id: hex::decode(&enrollment.seal_key_id).unwrap_or_default(),
                label: format!("breakglass:{}:seal", self.manifest.vault_id),
                public_key: hex::decode(&enrollment.seal_public_key).unwrap_or_default(),
            };
            return action(&session, enrollment, &key, warning);
        }
        Err(VaultError::NoToken {
            tokens: self
                .manifest
                .hsms
                .iter()
                .map(|h| h.label.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            last_error,
        }
        .into())
    }

    /// The sealing key of an enrolled token, as a key reference.
    fn seal_key_of(&self, enrollment: &HsmEnrollment) -> KeyRef {
        KeyRef {
            id: hex::decode(&enrollment.seal_key_id).unwrap_or_default(),
            label: format!("breakglass:{}:seal", self.manifest.vault_id),
            public_key: hex::decode(&enrollment.seal_public_key).unwrap_or_default(),
        }
    }

    /// Every module the enrolled tokens (and `extra`) use, each opened once (a module is
    /// initialised once per process). Modules that do not load are left out.
    fn open_modules(&self, extra: Option<&Path>) -> BTreeMap<PathBuf, Module> {
        let mut paths: Vec<PathBuf> = self
            .manifest
            .hsms
            .iter()
            .map(|h| PathBuf::from(&h.module))
            .chain(extra.map(Path::to_path_buf))
            .collect();
        paths.sort();
        paths.dedup();
        paths
            .into_iter()
            .filter_map(|p| Module::open(&p).ok().map(|m| (p, m)))
            .collect()
    }

    /// The first enrolled token that is present in `modules`.
    fn first_present<'m>(
        &self,
        modules: &'m BTreeMap<PathBuf, Module>,
    ) -> Result<(&'m Module, crate::hsm::Token, HsmEnrollment), crate::Error> {
        let mut last_error = String::from("no enrolled token is present");
        for enrollment in &self.manifest.hsms {
            let Some(module) = modules.get(&PathBuf::from(&enrollment.module)) else {
                last_error = format!("cannot load {}", enrollment.module);
                continue;
            };
            match module.find_token(&TokenSelector::Serial(enrollment.serial.clone())) {
                Ok(found) => return Ok((module, found, enrollment.clone())),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(VaultError::NoToken {
            tokens: self
                .manifest
                .hsms
                .iter()
                .map(|h| h.label.clone())
                .collect::<Vec<_>>()
                .join(", "),
            last_error,
        }
        .into())
    }

    /// The token `target` names, prepared (initialised when asked) and not enrolled yet.
    fn new_token<'m>(
        &self,
        modules: &'m BTreeMap<PathBuf, Module>,
        q: Option<&[u8]>,
        target: &TokenTarget,
        user_pin: &PinSource,
        so_pin: &PinSource,
        pins: &dyn PinProvider,
    ) -> Result<(&'m Module, crate::hsm::Token), crate::Error> {
        let module = modules
            .get(&target.module)
            .ok_or_else(|| VaultError::NoToken {
                tokens: target.label.clone(),
                last_error: format!("cannot load {}", target.module.display()),
            })?;
        let token = prepare_token(
            module,
            q,
            &self.manifest.vault_id,
            target,
            user_pin,
            so_pin,
            pins,
        )?;
        if self
            .manifest
            .hsms
            .iter()
            .any(|h| h.serial == token.description().serial)
        {
            return Err(
                VaultError::Layout(format!("token {} is enrolled already", token.label())).into(),
            );
        }
        Ok((module, token))
    }

    /// Enrols another token (a backup in another site): generates its sealing key and adds a
    /// stanza for it to every credential. Only the token half of each file key is opened, by
    /// a token already enrolled: the payloads are never decrypted and the quorum's half is
    /// never touched. `shares` are needed only where a PIN comes from the quorum (the enrolled
    /// token's, or the new token's). Records the new manifest under a signed checkpoint and
    /// returns the new fingerprint.
    pub fn enroll(
        &mut self,
        shares: Option<&Collector>,
        target: &TokenTarget,
        user_pin: &PinSource,
        so_pin: &PinSource,
        pins: &dyn PinProvider,
        pinned: &str,
    ) -> Result<String, crate::Error> {
        self.manifest.check_pinned(pinned)?;
        let (q, custodians) = match shares {
            Some(shares) => {
                let (q, _, custodians, _) = self.recombine(shares)?;
                (Some(q), custodians)
            }
            None => (None, Vec::new()),
        };
        let q: Option<&[u8]> = q.as_ref().map(|q| q.expose_secret());
        let vault_id = self.manifest.vault_id.clone();
        let modules = self.open_modules(Some(&target.module));
        // The enrolled token first: nothing is done to the new one unless it can log in.
        let (module, found, enrollment) = self.first_present(&modules)?;
        let session = module.open_session(&found)?;
        session.login(
            PinRole::User,
            &pin_for(
                q,
                &vault_id,
                &enrollment.label,
                PinRole::User,
                &enrollment.pin,
                pins,
            )?,
            false,
        )?;
        let key = self.seal_key_of(&enrollment);
        let (new_module, token) = self.new_token(&modules, q, target, user_pin, so_pin, pins)?;
        let new_session = new_module.open_session(&token)?;
        new_session.login(
            PinRole::User,
            &pin_for(q, &vault_id, token.label(), PinRole::User, user_pin, pins)?,
            false,
        )?;
        let new_key = new_session.generate_key_pair(&vault_id, KeyPurpose::Seal)?;

        let lock = self.store.lock()?;
        let now = crate::clock::rfc3339(crate::clock::now_unix());
        // Envelopes first: a crash before the manifest is written leaves stanzas for a token
        // the manifest does not know yet, which is harmless (and skipped when run again).
        let oracle = session.dh_oracle(&key);
        for name in self.store.credentials()? {
            let (path, mut envelope) = self.envelope(&name)?;
            if envelope.add_hsm_recipient(&oracle, &new_key.public_key, &path)? {
                crate::store::write_atomic(&path, &envelope.to_bytes())?;
            }
        }
        let description = token.description();
        self.manifest.hsms.push(new_enrollment(
            description,
            target,
            &new_key,
            user_pin,
            so_pin,
        ));
        let manifest_bytes = self.manifest.to_bytes();
        self.store.write(&lock, MANIFEST, &manifest_bytes)?;
        let fingerprint = self.manifest.fingerprint().display();
        let mut event = Event::new("hsm_enrol")
            .detail("token", description.label.clone())
            .detail("serial", description.serial.clone())
            .detail("fingerprint", fingerprint.clone())
            .detail(MANIFEST_HASH, sha256_hex(&manifest_bytes));
        event.custodians = custodians;
        self.append_signed(event, &session, &enrollment.label, &now)?;
        drop(lock);
        Ok(fingerprint)
    }

    /// Enrols a replacement token when the enrolled tokens are lost: the recovery key (from
    /// the recovery shares, with a quorum) opens the token half of each file key and a stanza
    /// for the new token is added. The tokens in `retire` are removed (their stanzas and their
    /// entries). When the token holding the audit key is retired or absent, a new audit key is
    /// made in the new token and the old one is kept as retired: it still verifies the
    /// checkpoints up to this point and nothing after. Returns the new fingerprint.
    #[allow(clippy::too_many_arguments)]
    pub fn enroll_from_recovery(
        &mut self,
        shares: &Collector,
        recovery_shares: &Collector,
        target: &TokenTarget,
        user_pin: &PinSource,
        so_pin: &PinSource,
        pins: &dyn PinProvider,
        pinned: &str,
        retire: &[String],
    ) -> Result<String, crate::Error> {
        self.manifest.check_pinned(pinned)?;
        for label in retire {
            if !self.manifest.hsms.iter().any(|h| &h.label == label) {
                return Err(VaultError::Layout(format!(
                    "--retire {label}: no enrolled token has that label"
                ))
                .into());
            }
        }
        let (q, _, mut custodians, _) = self.recombine(shares)?;
        let (recovery_key, recovery_custodians) = self.recovery_key(recovery_shares)?;
        custodians.extend(
            recovery_custodians
                .iter()
                .map(|c| format!("{c} (recovery)")),
        );
        let q: &[u8] = q.expose_secret();
        let vault_id = self.manifest.vault_id.clone();
        let modules = self.open_modules(Some(&target.module));
        let (new_module, token) =
            self.new_token(&modules, Some(q), target, user_pin, so_pin, pins)?;
        let audit_token_present = !retire.contains(&self.manifest.audit.token)
            && self
                .manifest
                .hsms
                .iter()
                .filter(|h| h.label == self.manifest.audit.token)
                .any(|h| {
                    modules.get(&PathBuf::from(&h.module)).is_some_and(|m| {
                        m.find_token(&TokenSelector::Serial(h.serial.clone()))
                            .is_ok()
                    })
                });
        let session = new_module.open_session(&token)?;
        session.login(
            PinRole::User,
            &pin_for(
                Some(q),
                &vault_id,
                token.label(),
                PinRole::User,
                user_pin,
                pins,
            )?,
            false,
        )?;
        let new_key = session.generate_key_pair(&vault_id, KeyPurpose::Seal)?;
        let new_audit = if audit_token_present {
            None
        } else {
            Some(session.generate_key_pair(&vault_id, KeyPurpose::Audit)?)
        };
        let retired_keys: Vec<Vec<u8>> = self
            .manifest
            .hsms
            .iter()
            .filter(|h| retire.contains(&h.label))
            .map(|h| hex::decode(&h.seal_public_key).unwrap_or_default())
            .collect();

        let lock = self.store.lock()?;
        let now = crate::clock::rfc3339(crate::clock::now_unix());
        for name in self.store.credentials()? {
            let (path, mut envelope) = self.envelope(&name)?;
            let mut changed =
                envelope.add_hsm_recipient(&recovery_key, &new_key.public_key, &path)?;
            for key in &retired_keys {
                changed |= envelope.remove_hsm_recipient(&recovery_key, key, &path)?;
            }
            if changed {
                crate::store::write_atomic(&path, &envelope.to_bytes())?;
            }
        }
        let description = token.description();
        self.manifest.hsms.retain(|h| !retire.contains(&h.label));
        self.manifest.hsms.push(new_enrollment(
            description,
            target,
            &new_key,
            user_pin,
            so_pin,
        ));
        let mut event = Event::new("hsm_enrol")
            .detail("token", description.label.clone())
            .detail("serial", description.serial.clone())
            .detail("opened_with", "the recovery key (no enrolled token)")
            .detail("retired", retire.join(","));
        if let Some(audit_key) = &new_audit {
            let last_line = self.audit().head()?.seq;
            let previous = std::mem::replace(
                &mut self.manifest.audit,
                AuditKey {
                    token: description.label.clone(),
                    key_id: hex::encode(&audit_key.id),
                    public_key: hex::encode(&audit_key.public_key),
                },
            );
            self.manifest.retired_audit_keys.push(RetiredAuditKey {
                token: previous.token.clone(),
                public_key: previous.public_key,
                last_line,
            });
            event = event.detail(
                "audit_key",
                format!(
                    "replaced: the key of {} verifies lines up to {last_line}; {} holds the new one",
                    previous.token, description.label
                ),
            );
        }
        let manifest_bytes = self.manifest.to_bytes();
        self.store.write(&lock, MANIFEST, &manifest_bytes)?;
        let fingerprint = self.manifest.fingerprint().display();
        event = event
            .detail("fingerprint", fingerprint.clone())
            .detail(MANIFEST_HASH, sha256_hex(&manifest_bytes));
        event.custodians = custodians;
        self.append_signed(event, &session, &description.label, &now)?;
        drop(lock);
        Ok(fingerprint)
    }

    /// The current custodian layout, as init would take it.
    pub fn layout(&self) -> (u8, Vec<GroupDef>) {
        (
            self.manifest.quorum.group_threshold,
            self.manifest
                .quorum
                .groups
                .iter()
                .map(|g| GroupDef {
                    name: g.name.clone(),
                    threshold: g.threshold,
                    members: g.members.iter().map(|m| m.name.clone()).collect(),
                })
                .collect(),
        )
    }

    /// The recovery set a rekey to `groups` makes: renewed with the same threshold and members
    /// by default (following the custodians when it was made of all of them), as given, or none.
    pub fn rekey_recovery(
        &self,
        groups: &[GroupDef],
        change: RecoveryChange,
    ) -> Option<RecoveryDef> {
        match (change, &self.manifest.recovery) {
            (RecoveryChange::Drop, _) | (RecoveryChange::Keep, None) => None,
            (RecoveryChange::Set(def), _) => Some(def),
            (RecoveryChange::Keep, Some(current)) => {
                let members: Vec<String> = current
                    .groups
                    .iter()
                    .flat_map(|g| g.members.iter().map(|m| m.name.clone()))
                    .collect();
                let mut sorted_members = members.clone();
                sorted_members.sort();
                let mut old_custodians: Vec<String> = self
                    .manifest
                    .custodian_names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                old_custodians.sort();
                Some(RecoveryDef {
                    threshold: current.groups.first().map_or(0, |g| g.threshold),
                    members: if sorted_members == old_custodians {
                        groups.iter().flat_map(|g| g.members.clone()).collect()
                    } else {
                        members
                    },
                })
            }
        }
    }

    /// Rekey, first step (changes nothing): the current quorum recombines; a new quorum secret
    /// is split for `layout` (the current one when `None`). The caller hands the new shares out
    /// (writes and checks the share files) before [`Vault::rekey_commit`].
    pub fn rekey_prepare(
        &self,
        shares: &Collector,
        options: RekeyOptions,
        pinned: &str,
    ) -> Result<RekeyPlan, crate::Error> {
        self.manifest.check_pinned(pinned)?;
        let (old_q, _, custodians, _) = self.recombine(shares)?;
        let RekeyOptions {
            layout,
            iteration_exponent,
            recovery,
        } = options;
        let (group_threshold, groups) = layout.unwrap_or_else(|| self.layout());
        validate_groups(group_threshold, &groups)?;
        let iteration_exponent =
            iteration_exponent.unwrap_or(self.manifest.quorum.iteration_exponent);
        let vault_id = &self.manifest.vault_id;
        let (new_q, quorum, new_shares) = loop {
            let new_q = random_bytes(QUORUM_SECRET_BYTES)?;
            let key = X25519SecretKey::derive_key_pair(&new_q);
            let (quorum, new_shares) = make_share_set(
                vault_id,
                &new_q,
                group_threshold,
                &groups,
                iteration_exponent,
                hex::encode(key.public_key_bytes()),
                false,
            )?;
            // A new identifier, so an old share is told apart from a new one at once.
            if quorum.identifier != self.manifest.quorum.identifier {
                break (SecretBytes::from(new_q.to_vec()), quorum, new_shares);
            }
        };
        // The recovery set is renewed too (its old shares stop working as well), unless it is
        // dropped: same threshold and members by default, following the custodians when it
        // was made of all of them.
        let recovery_def = self.rekey_recovery(&groups, recovery);
        let mut all_shares = new_shares;
        let recovery_set = match &recovery_def {
            Some(def) => {
                let (set, shares) = new_recovery_set(vault_id, &quorum, def, iteration_exponent)
                    .map_err(|e| match e {
                        crate::Error::Vault(VaultError::Layout(reason)) => {
                            crate::Error::Vault(VaultError::Layout(format!(
                                "{reason} (the recovery set is renewed with the rekey: give \
                                 --recovery-threshold, or --no-recovery to drop it)"
                            )))
                        }
                        other => other,
                    })?;
                all_shares.extend(shares);
                Some(set)
            }
            None => None,
        };
        let mut manifest = self.manifest.clone();
        manifest.quorum = quorum;
        manifest.recovery = recovery_set;
        Ok(RekeyPlan {
            old_q,
            new_q,
            manifest,
            shares: all_shares,
            custodians,
        })
    }

    /// Rekey, second step: every envelope (and every kept previous version) is re-sealed to the
    /// new quorum key; every token PIN derived from the quorum (user and SO) is changed to the
    /// new quorum's; the new manifest is written and recorded under a signed checkpoint. A
    /// journal (`rekey.json`, public data only) makes it resumable at any point with
    /// [`Vault::rekey_resume`]; until then the vault refuses every other operation. Returns
    /// the new fingerprint.
    pub fn rekey_commit(
        &mut self,
        plan: RekeyPlan,
        pins: &dyn PinProvider,
    ) -> Result<String, crate::Error> {
        let lock = self.store.lock()?;
        if self.store.path(REKEY_JOURNAL).exists() {
            return Err(VaultError::RekeyPending {
                journal: self.store.path(REKEY_JOURNAL),
            }
            .into());
        }
        let modules = self.open_modules(None);
        self.quorum_tokens_present(&modules)?;
        let journal = RekeyJournal {
            previous: String::from_utf8_lossy(&self.manifest.to_bytes()).into_owned(),
            manifest: String::from_utf8_lossy(&plan.manifest.to_bytes()).into_owned(),
            pins_changed: Vec::new(),
            custodians: plan.custodians.clone(),
        };
        self.write_journal(&lock, &journal)?;
        self.rekey_apply(
            &lock,
            &modules,
            journal,
            plan.old_q.expose_secret(),
            plan.new_q.expose_secret(),
            pins,
        )
    }

    /// Checks that every token whose PIN the quorum derives is connected (a rekey must change
    /// those PINs), before anything changes.
    pub fn check_quorum_tokens_present(&self) -> Result<(), crate::Error> {
        self.quorum_tokens_present(&self.open_modules(None))
    }

    fn quorum_tokens_present(
        &self,
        modules: &BTreeMap<PathBuf, Module>,
    ) -> Result<(), crate::Error> {
        // Before anything changes: every token whose PIN the quorum derives must be here.
        for enrollment in &self.manifest.hsms {
            if enrollment.pin != PinSource::Quorum && enrollment.so_pin != Some(PinSource::Quorum) {
                continue;
            }
            let present = modules
                .get(&PathBuf::from(&enrollment.module))
                .ok_or_else(|| format!("cannot load {}", enrollment.module))
                .and_then(|m| {
                    m.find_token(&TokenSelector::Serial(enrollment.serial.clone()))
                        .map_err(|e| e.to_string())
                });
            if let Err(cause) = present {
                return Err(VaultError::TokenAbsent {
                    label: enrollment.label.clone(),
                    serial: enrollment.serial.clone(),
                    cause,
                }
                .into());
            }
        }
        Ok(())
    }

    /// The manifests before and after an interrupted rekey, if one was interrupted.
    pub fn pending_rekey(&self) -> Result<Option<(Manifest, Manifest)>, crate::Error> {
        let path = self.store.path(REKEY_JOURNAL);
        if !path.exists() {
            return Ok(None);
        }
        let journal = self.read_journal()?;
        Ok(Some((
            Manifest::from_bytes(journal.previous.as_bytes(), &path)?,
            Manifest::from_bytes(journal.manifest.as_bytes(), &path)?,
        )))
    }

    /// Finishes an interrupted rekey: `old` must meet the current quorum and `new` the new one.
    pub fn rekey_resume(
        &mut self,
        old: &Collector,
        new: &Collector,
        pins: &dyn PinProvider,
    ) -> Result<String, crate::Error> {
        let lock = self.store.lock()?;
        if !self.store.path(REKEY_JOURNAL).exists() {
            return Err(VaultError::NoRekeyPending.into());
        }
        let journal = self.read_journal()?;
        let journal_path = self.store.path(REKEY_JOURNAL);
        let previous = Manifest::from_bytes(journal.previous.as_bytes(), &journal_path)?;
        let target = Manifest::from_bytes(journal.manifest.as_bytes(), &journal_path)?;
        // The old shares meet the quorum of the manifest before the rekey, whichever of the
        // two vault.json holds now.
        let before = Vault {
            store: self.store.clone(),
            manifest: previous.clone(),
        };
        let (old_q, _, _, _) = before.recombine(old)?;
        self.manifest = previous;
        let combined = new.combine(b"")?;
        let key = X25519SecretKey::derive_key_pair(combined.secret.expose_secret());
        if hex::encode(key.public_key()) != target.quorum.public_key {
            return Err(VaultError::WrongQuorum.into());
        }
        let modules = self.open_modules(None);
        self.rekey_apply(
            &lock,
            &modules,
            journal,
            old_q.expose_secret(),
            combined.secret.expose_secret(),
            pins,
        )
    }

    fn read_journal(&self) -> Result<RekeyJournal, crate::Error> {
        let path = self.store.path(REKEY_JOURNAL);
        let bytes = self.store.read(REKEY_JOURNAL)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            crate::manifest::ManifestError::Invalid {
                file: path,
                reason: e.to_string(),
            }
            .into()
        })
    }

    fn write_journal(
        &self,
        lock: &crate::store::WriteLock,
        journal: &RekeyJournal,
    ) -> Result<(), crate::Error> {
        let mut bytes = serde_json::to_vec_pretty(journal).unwrap_or_default();
        bytes.push(b'\n');
        Ok(self.store.write(lock, REKEY_JOURNAL, &bytes)?)
    }

    fn rekey_apply(
        &mut self,
        lock: &crate::store::WriteLock,
        modules: &BTreeMap<PathBuf, Module>,
        mut journal: RekeyJournal,
        old_q: &[u8],
        new_q: &[u8],
        pins: &dyn PinProvider,
    ) -> Result<String, crate::Error> {
        let journal_path = self.store.path(REKEY_JOURNAL);
        let target = Manifest::from_bytes(journal.manifest.as_bytes(), &journal_path)?;
        let vault_id = self.manifest.vault_id.clone();
        let old_key = X25519SecretKey::derive_key_pair(old_q);
        let new_public = target
            .quorum_public_key()
            .map_err(|_| VaultError::Layout("quorum key".into()))?;
        let new_public_hex = hex::encode(new_public);
        let recipients = target.hsm_recipients();

        // 1. Every envelope and kept previous version not yet sealed to the new quorum.
        let mut pending = Vec::new();
        let mut total = 0usize;
        for name in self.store.credentials()? {
            let mut files = vec![self.store.credential_path(&name)?];
            files.extend(self.store.history(&name)?);
            for path in files {
                total += 1;
                let bytes = std::fs::read(&path).map_err(|cause| crate::store::StoreError::Io {
                    path: path.clone(),
                    action: "reading",
                    cause,
                })?;
                let envelope = Envelope::from_bytes(&bytes, &path)?;
                envelope.check_identity(&vault_id, &name, &path)?;
                if envelope.quorum_stanza.recipient != new_public_hex {
                    pending.push((path, envelope));
                }
            }
        }
        if !pending.is_empty() {
            let (module, found, enrollment) = self.first_present(modules)?;
            let session = module.open_session(&found)?;
            session.login(
                PinRole::User,
                &pin_for(
                    Some(old_q),
                    &vault_id,
                    &enrollment.label,
                    PinRole::User,
                    &enrollment.pin,
                    pins,
                )?,
                false,
            )?;
            let key = self.seal_key_of(&enrollment);
            let oracle = session.dh_oracle(&key);
            for (i, (path, envelope)) in pending.iter().enumerate() {
                let payload = envelope.open(&oracle, &old_key, path)?;
                let resealed = envelope.reseal(&payload, &recipients, &new_public)?;
                crate::store::write_atomic(path, &resealed.to_bytes())?;
                if i == 0 {
                    fault_point("rekey-after-first-envelope")?;
                }
            }
        }
        fault_point("rekey-after-envelopes")?;

        // 2. The token PINs the quorum derives, user then SO, one journal entry each.
        let mut changed = Vec::new();
        for enrollment in &self.manifest.hsms {
            let mut roles = Vec::new();
            if enrollment.pin == PinSource::Quorum {
                roles.push((PinRole::User, "user"));
            }
            if enrollment.so_pin == Some(PinSource::Quorum) {
                roles.push((PinRole::SecurityOfficer, "so"));
            }
            for (role, role_name) in roles {
                let step = format!("{}:{role_name}", enrollment.serial);
                if journal.pins_changed.contains(&step) {
                    continue;
                }
                let module = modules
                    .get(&PathBuf::from(&enrollment.module))
                    .ok_or_else(|| VaultError::TokenAbsent {
                        label: enrollment.label.clone(),
                        serial: enrollment.serial.clone(),
                        cause: format!("cannot load {}", enrollment.module),
                    })?;
                let token = module.find_token(&TokenSelector::Serial(enrollment.serial.clone()))?;
                let old_pin = quorum_pin(old_q, &vault_id, role);
                let new_pin = quorum_pin(new_q, &vault_id, role);
                {
                    let session = module.open_session(&token)?;
                    match session.login(role, &old_pin, false) {
                        Ok(_) => session.change_pin(&old_pin, &new_pin)?,
                        // Changed before an interruption that came before the journal entry.
                        Err(crate::hsm::HsmError::PinIncorrect { .. }) => {
                            session.login(role, &new_pin, false)?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                fault_point("rekey-before-pin-journal")?;
                journal.pins_changed.push(step.clone());
                self.write_journal(lock, &journal)?;
                changed.push(format!("{}:{role_name}", enrollment.label));
                fault_point("rekey-after-pin")?;
            }
        }

        // 3. The new manifest, recorded and signed; then the journal goes.
        let manifest_bytes = target.to_bytes();
        self.store.write(lock, MANIFEST, &manifest_bytes)?;
        self.manifest = target;
        fault_point("rekey-after-manifest")?;
        let fingerprint = self.manifest.fingerprint().display();
        let mut event = Event::new("rekey")
            .detail("fingerprint", fingerprint.clone())
            .detail("new_custodians", self.manifest.custodian_names().join(","))
            .detail(
                "group_threshold",
                self.manifest.quorum.group_threshold.to_string(),
            )
            .detail(
                "envelopes_resealed",
                format!("{} of {total}", pending.len()),
            )
            .detail("token_pins_changed", changed.join(","))
            .detail(MANIFEST_HASH, sha256_hex(&manifest_bytes));
        event.custodians = journal.custodians.clone();
        let now = crate::clock::rfc3339(crate::clock::now_unix());
        let audit_token = self
            .manifest
            .hsms
            .iter()
            .find(|h| h.label == self.manifest.audit.token)
            .cloned();
        let signed = audit_token.and_then(|enrollment| {
            let module = modules.get(&PathBuf::from(&enrollment.module))?;
            let token = module
                .find_token(&TokenSelector::Serial(enrollment.serial.clone()))
                .ok()?;
            Some((module, token, enrollment))
        });
        match signed {
            Some((module, token, enrollment)) => {
                let session = module.open_session(&token)?;
                session.login(
                    PinRole::User,
                    &pin_for(
                        Some(new_q),
                        &vault_id,
                        &enrollment.label,
                        PinRole::User,
                        &enrollment.pin,
                        pins,
                    )?,
                    false,
                )?;
                self.append_signed(event, &session, &enrollment.label, &now)?;
            }
            None => {
                self.audit().append(event, &Actor::current(), &now)?;
            }
        }
        std::fs::remove_file(&journal_path).map_err(|cause| crate::store::StoreError::Io {
            path: journal_path.clone(),
            action: "removing the finished rekey journal",
            cause,
        })?;
        Ok(fingerprint)
    }

    /// Recovery, first step (changes nothing): the quorum recombines and a recovery secret is
    /// split for `def`. The caller hands the recovery shares out before
    /// [`Vault::recovery_commit`].
    pub fn recovery_prepare(
        &self,
        shares: &Collector,
        def: &RecoveryDef,
        iteration_exponent: u8,
        pinned: &str,
    ) -> Result<RecoveryPlan, crate::Error> {
        self.manifest.check_pinned(pinned)?;
        if self.manifest.recovery.is_some() {
            return Err(
                VaultError::Layout("this vault has a recovery share set already".into()).into(),
            );
        }
        let (q, _, custodians, _) = self.recombine(shares)?;
        let (set, shares) = new_recovery_set(
            &self.manifest.vault_id,
            &self.manifest.quorum,
            def,
            iteration_exponent,
        )?;
        let mut manifest = self.manifest.clone();
        manifest.recovery = Some(set);
        Ok(RecoveryPlan {
            q,
            manifest,
            shares,
            custodians,
        })
    }

    /// Recovery, second step: an enrolled token adds a stanza for the recovery key to every
    /// credential (only the token half of each file key is opened), then the new manifest is
    /// recorded under a signed checkpoint. Returns the new fingerprint.
    pub fn recovery_commit(
        &mut self,
        plan: RecoveryPlan,
        pins: &dyn PinProvider,
        only_token: Option<&str>,
    ) -> Result<String, crate::Error> {
        let recovery = plan
            .manifest
            .recovery
            .clone()
            .ok_or(VaultError::NoRecovery)?;
        let recovery_key = hex::decode(&recovery.public_key).unwrap_or_default();
        let manifest_bytes = plan.manifest.to_bytes();
        let fingerprint = plan.manifest.fingerprint().display();
        self.with_token(
            Some(plan.q.expose_secret()),
            only_token,
            pins,
            None,
            false,
            |session, enrollment, key, _| {
                let lock = self.store.lock()?;
                let oracle = session.dh_oracle(key);
                for name in self.store.credentials()? {
                    let (path, mut envelope) = self.envelope(&name)?;
                    if envelope.add_hsm_recipient(&oracle, &recovery_key, &path)? {
                        crate::store::write_atomic(&path, &envelope.to_bytes())?;
                    }
                }
                self.store.write(&lock, MANIFEST, &manifest_bytes)?;
                let mut event = Event::new("recovery_enable")
                    .detail("recovery", describe_set(&recovery))
                    .detail("fingerprint", fingerprint.clone())
                    .detail(MANIFEST_HASH, sha256_hex(&manifest_bytes));
                event.custodians = plan.custodians.clone();
                let now = crate::clock::rfc3339(crate::clock::now_unix());
                self.append_signed(event, session, &enrollment.label, &now)?;
                drop(lock);
                Ok(())
            },
        )?;
        self.manifest = plan.manifest;
        Ok(fingerprint)
    }

    /// The custodian a recovery share belongs to, by the recovery set's commitments.
    pub fn recovery_custodian_of(&self, share: &Share) -> Option<String> {
        self.manifest
            .recovery
            .as_ref()?
            .verify_share(&self.manifest.vault_id, share)
            .map(|c| c.name.clone())
    }

    /// Opens credential `name` with no token at all: the quorum's shares open the quorum half,
    /// the recovery shares (a stricter quorum) derive the recovery key, which opens the token
    /// half. Recorded in the audit log (unsigned: the audit key is on a token).
    pub fn recover(
        &self,
        name: &str,
        shares: &Collector,
        recovery_shares: &Collector,
    ) -> Result<Unsealed, crate::Error> {
        let (path, envelope) = self.envelope(name)?;
        let (quorum_key, key, custodians, recovery_custodians) =
            self.recovery_keys(shares, recovery_shares)?;
        let payload = envelope.open(&key, &quorum_key, &path)?;
        let mut event = Event::new("recover")
            .detail("token", "none (recovery key)")
            .detail("recovery_custodians", recovery_custodians.join(","));
        event.credential = Some(name.to_owned());
        event.custodians = custodians.clone();
        self.record(event)?;
        Ok(Unsealed {
            payload,
            envelope,
            custodians,
            rejected: Vec::new(),
            token: "none (recovery key)".into(),
            warning: None,
        })
    }

    /// A drill: the shares recombine, the token answers, and every envelope opens (the
    /// plaintext goes only to `check`, e.g. to test AWS keys, and is then dropped). Records a
    /// `drill` entry with the participants and what `check` reported, signed by a checkpoint.
    pub fn drill(
        &self,
        shares: &Collector,
        pins: &dyn PinProvider,
        only_token: Option<&str>,
        force_pin: bool,
        mut check: impl FnMut(&str, &Envelope, &SecretBytes) -> String,
    ) -> Result<(Vec<String>, BTreeMap<String, String>), crate::Error> {
        let (q, quorum_key, custodians, _) = self.recombine(shares)?;
        self.with_token(
            Some(q.expose_secret()),
            only_token,
            pins,
            None,
            force_pin,
            |session, enrollment, key, _| {
                let mut results = BTreeMap::new();
                for name in self.store.credentials()? {
                    let outcome = match self.envelope(&name) {
                        Ok((path, envelope)) => {
                            match envelope.open(&session.dh_oracle(key), &quorum_key, &path) {
                                Ok(payload) => check(&name, &envelope, &payload),
                                Err(e) => format!("FAILED: {e}"),
                            }
                        }
                        Err(e) => format!("FAILED: {e}"),
                    };
                    results.insert(name, outcome);
                }
                let lock = self.store.lock()?;
                let now = crate::clock::rfc3339(crate::clock::now_unix());
                let mut event = Event::new("drill").detail("token", enrollment.label.clone());
                for (name, outcome) in &results {
                    event
                        .details
                        .insert(format!("credential:{name}"), outcome.clone());
                }
                event.custodians = custodians.clone();
                self.append_signed(event, session, &enrollment.label, &now)?;
                drop(lock);
                Ok((custodians.clone(), results))
            },
        )
    }

    /// A recovery drill: the quorum and the recovery set recombine, and every envelope opens
    /// with the recovery key in place of a token (the plaintext goes only to `check`). Records
    /// a `recovery_drill` entry with both sets' participants. Returns (custodians, recovery
    /// custodians, outcome per credential).
    #[allow(clippy::type_complexity)]
    pub fn drill_recovery(
        &self,
        shares: &Collector,
        recovery_shares: &Collector,
        mut check: impl FnMut(&str, &Envelope, &SecretBytes) -> String,
    ) -> Result<(Vec<String>, Vec<String>, BTreeMap<String, String>), crate::Error> {
        let (quorum_key, recovery_key, custodians, recovery_custodians) =
            self.recovery_keys(shares, recovery_shares)?;
        let mut results = BTreeMap::new();
        for name in self.store.credentials()? {
            let outcome = match self.envelope(&name) {
                Ok((path, envelope)) => match envelope.open(&recovery_key, &quorum_key, &path) {
                    Ok(payload) => check(&name, &envelope, &payload),
                    Err(e) => format!("FAILED: {e}"),
                },
                Err(e) => format!("FAILED: {e}"),
            };
            results.insert(name, outcome);
        }
        let mut event = Event::new("recovery_drill")
            .detail("token", "none (recovery key)")
            .detail("recovery_custodians", recovery_custodians.join(","));
        for (name, outcome) in &results {
            event
                .details
                .insert(format!("credential:{name}"), outcome.clone());
        }
        event.custodians = custodians.clone();
        self.record(event)?;
        Ok((custodians, recovery_custodians, results))
    }

    /// The quorum key and the recovery key from the two share sets, with their custodians.
    #[allow(clippy::type_complexity)]
    fn recovery_keys(
        &self,
        shares: &Collector,
        recovery_shares: &Collector,
    ) -> Result<(X25519SecretKey, P256SecretKey, Vec<String>, Vec<String>), crate::Error> {
        if self.manifest.recovery.is_none() {
            return Err(VaultError::NoRecovery.into());
        }
        let (_, quorum_key, custodians, _) = self.recombine(shares)?;
        let (key, recovery_custodians) = self.recovery_key(recovery_shares)?;
        Ok((quorum_key, key, custodians, recovery_custodians))
    }

    /// The recovery key from the recovery shares, checked against the manifest, with the
    /// members whose shares were used.
    fn recovery_key(
        &self,
        recovery_shares: &Collector,
    ) -> Result<(P256SecretKey, Vec<String>), crate::Error> {
        let recovery = self
            .manifest
            .recovery
            .as_ref()
            .ok_or(VaultError::NoRecovery)?;
        let combined = recovery_shares.combine(b"")?;
        let key = P256SecretKey::derive_key_pair(combined.secret.expose_secret())?;
        if hex::encode(key.public_key_bytes()) != recovery.public_key {
            return Err(VaultError::WrongRecovery.into());
        }
        let by_position: BTreeMap<usize, &Share> = recovery_shares.shares().collect();
        let recovery_custodians = combined
            .used
            .iter()
            .map(|p| {
                by_position
                    .get(p)
                    .and_then(|s| self.recovery_custodian_of(s))
                    .unwrap_or_else(|| format!("share {p}"))
            })
            .collect();
        Ok((key, recovery_custodians))
    }

    /// Unseals credential `name` with the collected shares and an enrolled token; records the
    /// unseal (with the custodians) and signs a checkpoint with the audit key.
    pub fn unseal(
        &self,
        name: &str,
        shares: &Collector,
        pins: &dyn PinProvider,
        only_token: Option<&str>,
        force_pin: bool,
        purpose: &str,
    ) -> Result<Unsealed, crate::Error> {
        let (unsealed, ()) = self.unseal_with(
            name,
            shares,
            pins,
            only_token,
            force_pin,
            purpose,
            |_, _, _| (BTreeMap::new(), ()),
        )?;
        Ok(unsealed)
    }

    /// Unseals as [`Vault::unseal`] and, while the token is still logged in, runs `act` on the
    /// payload (e.g. assuming the AWS role). What `act` returns as details (public facts only:
    /// session key id, expiry) goes into the audit entry, which the checkpoint then signs; its
    /// own result is handed back as it is, success or not.
    #[allow(clippy::too_many_arguments)]
    pub fn unseal_with<R>(
        &self,
        name: &str,
        shares: &Collector,
        pins: &dyn PinProvider,
        only_token: Option<&str>,
        force_pin: bool,
        purpose: &str,
        act: impl FnOnce(&Envelope, &SecretBytes, &[String]) -> (BTreeMap<String, String>, R),
    ) -> Result<(Unsealed, R), crate::Error> {
        let (path, envelope) = self.envelope(name)?;
        let (q, quorum_key, custodians, rejected) = self.recombine(shares)?;
        self.with_token(
            Some(q.expose_secret()),
            only_token,
            pins,
            None,
            force_pin,
            |session, enrollment, key, warning| {
                let payload = envelope.open(&session.dh_oracle(key), &quorum_key, &path)?;
                let (details, result) = act(&envelope, &payload, &custodians);
                let lock = self.store.lock()?;
                let now = crate::clock::rfc3339(crate::clock::now_unix());
                let mut event = Event::new(purpose).detail("token", enrollment.label.clone());
                event.details.extend(details);
                event.credential = Some(name.to_owned());
                event.custodians = custodians.clone();
                self.append_signed(event, session, &enrollment.label, &now)?;
                drop(lock);
                Ok((
                    Unsealed {
                        payload,
                        envelope,
                        custodians,
                        rejected,
                        token: enrollment.label.clone(),
                        warning,
                    },
                    result,
                ))
            },
        )
    }
}

/// The manifest entry of a token enrolled with `key` as its sealing key.
fn new_enrollment(
    description: &crate::hsm::TokenDescription,
    target: &TokenTarget,
    key: &KeyRef,
    user_pin: &PinSource,
    so_pin: &PinSource,
) -> HsmEnrollment {
    HsmEnrollment {
        label: description.label.clone(),
        serial: description.serial.clone(),
        manufacturer: description.manufacturer.clone(),
        model: description.model.clone(),
        module: target.module.display().to_string(),
        softhsm_conf: target.softhsm_conf.clone(),
        seal_key_id: hex::encode(&key.id),
        seal_public_key: hex::encode(&key.public_key),
        pin: user_pin.clone(),
        so_pin: target.init_token.then(|| so_pin.clone()),
    }
}

/// Splits `secret` into the share set `groups` describe, with a salted commitment per share,
/// and checks every share against its commitment.
fn make_share_set(
    vault_id: &str,
    secret: &[u8],
    group_threshold: u8,
    groups: &[GroupDef],
    iteration_exponent: u8,
    public_key: String,
    recovery: bool,
) -> Result<(Quorum, Vec<CustodianShare>), crate::Error> {
    let params = SplitParams {
        group_threshold,
        groups: groups
            .iter()
            .map(|g| GroupSpec {
                threshold: g.threshold,
                count: g.members.len() as u8,
            })
            .collect(),
        iteration_exponent,
        extendable: true,
    };
    let split = quorum::split(secret, b"", &params)?;
    let mut shares_out = Vec::new();
    let mut groups_out = Vec::new();
    for (group_def, group_shares) in groups.iter().zip(split) {
        let mut members = Vec::new();
        for (name, share) in group_def.members.iter().zip(group_shares) {
            let salt = random_bytes(32)?;
            members.push(Custodian {
                name: name.clone(),
                commitment_salt: hex::encode(salt.as_slice()),
                commitment: manifest::share_commitment(vault_id, &salt, &share),
            });
            shares_out.push(CustodianShare {
                custodian: name.clone(),
                group: group_def.name.clone(),
                recovery,
                share,
            });
        }
        groups_out.push(Group {
            name: group_def.name.clone(),
            threshold: group_def.threshold,
            members,
        });
    }
    let set = Quorum {
        group_threshold,
        groups: groups_out,
        identifier: shares_out
            .first()
            .map(|s| s.share.info().identifier)
            .unwrap_or_default(),
        iteration_exponent,
        extendable: true,
        public_key,
    };
    for issued in &shares_out {
        if set
            .verify_share(vault_id, &issued.share)
            .map(|c| c.name.as_str())
            != Some(issued.custodian.as_str())
        {
            return Err(VaultError::Layout(format!(
                "the share issued to {} does not match its commitment",
                issued.custodian
            ))
            .into());
        }
    }
    Ok((set, shares_out))
}

/// The group name of a recovery share set.
pub const RECOVERY_GROUP: &str = "recovery";

/// Checks a recovery layout against the quorum: it must need more shares than the quorum does
/// (otherwise it would be a way around the token that is no harder than the normal path).
pub fn validate_recovery(quorum: &Quorum, def: &RecoveryDef) -> Result<(), crate::Error> {
    validate_recovery_against(quorum.minimum_shares(), def)
}

fn validate_recovery_against(normal: usize, def: &RecoveryDef) -> Result<(), crate::Error> {
    let group = GroupDef {
        name: RECOVERY_GROUP.into(),
        threshold: def.threshold,
        members: def.members.clone(),
    };
    validate_groups(1, std::slice::from_ref(&group))?;
    if usize::from(def.threshold) <= normal {
        return Err(VaultError::Layout(format!(
            "the recovery threshold ({}) must be stricter than the quorum, which can be met with {normal} \
             shares: use at least {}",
            def.threshold,
            normal + 1
        ))
        .into());
    }
    Ok(())
}

/// A fresh recovery secret, its share set and its key, for `def`.
fn new_recovery_set(
    vault_id: &str,
    quorum: &Quorum,
    def: &RecoveryDef,
    iteration_exponent: u8,
) -> Result<(Quorum, Vec<CustodianShare>), crate::Error> {
    validate_recovery(quorum, def)?;
    let r = random_bytes(QUORUM_SECRET_BYTES)?;
    let key = P256SecretKey::derive_key_pair(&r)?;
    make_share_set(
        vault_id,
        &r,
        1,
        &[GroupDef {
            name: RECOVERY_GROUP.into(),
            threshold: def.threshold,
            members: def.members.clone(),
        }],
        iteration_exponent,
        hex::encode(key.public_key_bytes()),
        true,
    )
}

/// "4 of alice,bob,..." for the audit log.
fn describe_set(set: &Quorum) -> String {
    set.groups
        .iter()
        .map(|g| {
            format!(
                "{} of {}",
                g.threshold,
                g.members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The token `target` names: initialised first when asked (SO PIN set, user PIN set), else
/// found by label.
fn prepare_token(
    module: &Module,
    q: Option<&[u8]>,
    vault_id: &str,
    target: &TokenTarget,
    user_pin: &PinSource,
    so_pin: &PinSource,
    pins: &dyn PinProvider,
) -> Result<crate::hsm::Token, crate::Error> {
    if !target.init_token {
        return Ok(module.find_token(&TokenSelector::Label(target.label.clone()))?);
    }
    let so = pin_for(
        q,
        vault_id,
        &target.label,
        PinRole::SecurityOfficer,
        so_pin,
        pins,
    )?;
    let user = pin_for(q, vault_id, &target.label, PinRole::User, user_pin, pins)?;
    let token = module.init_token(&target.label, &so)?;
    let session = module.open_session(&token)?;
    session.login(PinRole::SecurityOfficer, &so, false)?;
    session.init_user_pin(&user)?;
    Ok(token)
}

fn validate_groups(group_threshold: u8, groups: &[GroupDef]) -> Result<(), crate::Error> {
    let mut names = std::collections::BTreeSet::new();
    for group in groups {
        if group.members.is_empty() {
            return Err(
                VaultError::Layout(format!("group {:?} has no members", group.name)).into(),
            );
        }
        for member in &group.members {
            if member.trim().is_empty()
                || !member
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
            {
                return Err(VaultError::Layout(format!(
                    "custodian name {member:?}: use letters, digits, '.', '_', '-', '@'"
                ))
                .into());
            }
            if !names.insert(member.clone()) {
                return Err(
                    VaultError::Layout(format!("custodian {member:?} appears twice")).into(),
                );
            }
        }
    }
    let params = SplitParams {
        group_threshold,
        groups: groups
            .iter()
            .map(|g| GroupSpec {
                threshold: g.threshold,
                count: g.members.len().min(255) as u8,
            })
            .collect(),
        iteration_exponent: 0,
        extendable: true,
    };
    params
        .validate()
        .map_err(|e: QuorumError| crate::Error::from(e))
}
