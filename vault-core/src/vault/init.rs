//! Creating a vault: a fresh quorum secret split for the custodians (and a recovery set when
//! asked), the token prepared and its sealing and audit keys generated inside it, the manifest
//! certified as version 1 by the quorum signing key (with this machine's new operator key as
//! the first security officer, holding both roles), written, and recorded under a checkpoint
//! signed by the new audit key. A failed init leaves nothing behind.

use std::collections::BTreeMap;
use std::path::Path;

use secrecy::ExposeSecret;

use crate::audit::Event;
use crate::hsm::{KeyPurpose, Module, PinRole};
use crate::manifest::{self, AuditKey, Manifest, PinDerivation, PinSource, Policy};
use crate::store::{INIT_INCOMPLETE, Store};
use crate::trust::machine::ConfigDir;
use crate::trust::operator::validate_operator_name;
use crate::trust::quorum_key::QuorumSigningKey;
use crate::trust::{CertifiedManifest, Operator, OperatorKey, Role};

use super::enroll::new_enrollment;
use super::record::manifest_event;
use super::shares::{
    CustodianShare, GroupDef, RecoveryDef, SetSpec, describe_set, new_quorum_set, new_recovery_set,
    validate_groups, validate_recovery_against,
};
use super::tokens::{PinProvider, Pins, TokenTarget, prepare_token};
use super::{Vault, now, random_bytes};

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
    /// This machine's configuration directory: the first operator's key is made there, and
    /// the vault's anchor.
    pub config: &'a ConfigDir,
    /// The first operator's name (a security officer who is also a cloud administrator until
    /// others are added).
    pub operator: String,
    /// Custodians' recipients to remember in the manifest (custodian name → `age1...`,
    /// `ssh-ed25519 ...` or `ssh-rsa ...`): their shares are encrypted to them, now by the
    /// caller and at every later rekey. Empty: none remembered.
    pub recipients: BTreeMap<String, String>,
}

impl std::fmt::Debug for InitOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitOptions")
            .field("group_threshold", &self.group_threshold)
            .field("groups", &self.groups)
            .field("token", &self.token)
            .field("operator", &self.operator)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Creates a vault: quorum secret, shares, token keys, manifest, first audit entries.
    /// Returns the vault and every custodian's share (checked against the commitments).
    pub fn init(
        dir: &Path,
        options: &InitOptions<'_>,
    ) -> Result<(Vault, Vec<CustodianShare>), crate::Error> {
        let (vault, shares) = Vault::init_pending(dir, options)?;
        vault.finish_init()?;
        Ok((vault, shares))
    }

    /// [`Vault::init`], the vault left marked unfinished ([`INIT_INCOMPLETE`]) until
    /// [`Vault::finish_init`]: the caller hands the shares out in between. A process killed
    /// before that leaves a directory every command refuses (its shares are not all out, so
    /// nothing may be sealed in it), rather than a vault nobody can open.
    pub fn init_pending(
        dir: &Path,
        options: &InitOptions<'_>,
    ) -> Result<(Vault, Vec<CustodianShare>), crate::Error> {
        validate_groups(options.group_threshold, &options.groups)?;
        validate_operator_name(&options.operator)?;
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
            remove_half_made(dir, existed);
        }
        result
    }

    /// Undoes a vault [`Vault::init`] made whose shares could not all be handed out: removes
    /// the vault directory (or, when it `existed` before init, everything init put in it,
    /// the development token included). The caller drops the vault first.
    pub fn discard_new(dir: &Path, existed: bool) {
        remove_half_made(dir, existed);
    }

    /// Marks the vault [`Vault::init_pending`] made as finished: every share is handed out.
    pub fn finish_init(&self) -> Result<(), crate::Error> {
        let marker = self.store.path(INIT_INCOMPLETE);
        let removed = std::fs::remove_file(&marker)
            .and_then(|()| std::fs::File::open(self.store.root()).and_then(|d| d.sync_all()));
        removed.map_err(|cause| {
            crate::store::StoreError::Io {
                path: marker,
                action: "removing the mark of an unfinished init",
                cause,
            }
            .into()
        })
    }

    /// The id of the vault whose `init` did not finish in `dir`, if `dir` holds one.
    pub fn unfinished_init(dir: &Path) -> Option<String> {
        let text = std::fs::read_to_string(dir.join(INIT_INCOMPLETE)).ok()?;
        Some(text.trim().to_owned())
    }

    fn init_in(
        store: Store,
        dir: &Path,
        options: &InitOptions<'_>,
    ) -> Result<(Vault, Vec<CustodianShare>), crate::Error> {
        let vault_id = hex::encode(random_bytes(16)?.as_slice());
        // First of all, before the token or any file: marked unfinished (not a fault point: the
        // mark is what a crash at every later step leaves).
        mark_unfinished(dir, &vault_id)?;
        if options.token.softhsm_conf.is_some() {
            crate::hsm::write_dev_softhsm_conf(dir).map_err(|source| {
                crate::store::StoreError::Io {
                    path: dir.join(crate::hsm::DEV_SOFTHSM_DIR),
                    action: "creating the development SoftHSM token directory",
                    cause: source,
                }
            })?;
        }
        // The quorum's share set (and the recovery set), checked against their commitments.
        let (q, quorum, mut shares_out) = new_quorum_set(
            &vault_id,
            &SetSpec {
                group_threshold: options.group_threshold,
                groups: &options.groups,
                iteration_exponent: options.iteration_exponent,
                recovery: false,
            },
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

        let pins = Pins {
            q: Some(q.expose_secret()),
            vault_id: &vault_id,
            provider: options.pins,
        };
        let module = Module::open(&options.token.module)?;
        let token = prepare_token(
            &module,
            &pins,
            &options.token,
            &options.user_pin,
            &options.so_pin,
        )?;
        let session = module.open_session(&token)?;
        pins.login(
            &session,
            Some(PinDerivation::PerToken),
            PinRole::User,
            &options.user_pin,
            false,
        )?;
        let seal_key = session.generate_key_pair(&vault_id, KeyPurpose::Seal)?;
        let audit_key = session.generate_key_pair(&vault_id, KeyPurpose::Audit)?;
        let description = token.description();
        let mut manifest = Manifest {
            format: manifest::FORMAT.into(),
            vault_id: vault_id.clone(),
            created: now(),
            quorum,
            hsms: vec![new_enrollment(
                description,
                &options.token,
                &seal_key,
                &options.user_pin,
                &options.so_pin,
            )],
            audit: AuditKey {
                token: description.label.clone(),
                key_id: hex::encode(&audit_key.id),
                public_key: hex::encode(&audit_key.public_key),
            },
            recovery,
            retired_audit_keys: Vec::new(),
            recipients: BTreeMap::new(),
            policy: options.policy.clone(),
        };
        manifest.set_recipients(options.recipients.clone())?;
        let quorum_key = QuorumSigningKey::derive(q.expose_secret(), &vault_id)?;
        let operator_key = OperatorKey::generate(options.config, &vault_id)?;
        let recorded = (|| {
            let operators = vec![Operator {
                name: options.operator.clone(),
                roles: vec![Role::SecurityOfficer, Role::CloudAdministrator],
                public_key: operator_key.public_key().to_hex(),
            }];
            let trusted = CertifiedManifest::certify(manifest, 1, operators, &quorum_key)?;
            let lock = store.lock()?;
            let mut vault = Vault::with(store, trusted.clone(), options.config.clone())?;
            vault.install(&lock, trusted)?;
            let init = manifest_event("init", vault.certified())
                .detail("token", description.label.clone())
                .detail("operator", options.operator.clone())
                .detail("custodians", vault.manifest().custodian_names().join(","))
                .detail("group_threshold", options.group_threshold.to_string())
                .detail(
                    "recovery",
                    vault
                        .manifest()
                        .recovery
                        .as_ref()
                        .map(describe_set)
                        .unwrap_or_else(|| "none".into()),
                );
            vault.append(init)?;
            let enrol = Event::new("hsm_enrol")
                .detail("token", description.label.clone())
                .detail("serial", description.serial.clone());
            vault.append_signed(enrol, &session, &description.label)?;
            drop(lock);
            Ok::<Vault, crate::Error>(vault)
        })();
        let vault = match recorded {
            Ok(vault) => vault,
            Err(e) => {
                // Nothing half-made on this machine either: the key and anchor of a vault
                // that does not exist.
                let _ = std::fs::remove_file(operator_key.path());
                if let Ok(anchor) = options.config.anchor_path(&vault_id) {
                    let _ = std::fs::remove_file(anchor);
                }
                return Err(e);
            }
        };
        Ok((vault, shares_out))
    }
}

/// Creates the [`INIT_INCOMPLETE`] mark holding `vault_id`, durably (file and directory synced).
fn mark_unfinished(dir: &Path, vault_id: &str) -> Result<(), crate::Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(INIT_INCOMPLETE);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| {
            file.write_all(format!("{vault_id}\n").as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::File::open(dir).and_then(|d| d.sync_all()));
    written.map_err(|cause| {
        crate::store::StoreError::Io {
            path,
            action: "marking the vault unfinished",
            cause,
        }
        .into()
    })
}

/// Nothing half-made: the directory was missing or empty before, so everything in it is ours
/// (a token made inside it for `--dev-softhsm` included).
fn remove_half_made(dir: &Path, existed: bool) {
    if !existed {
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
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
}
