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
use crate::hpke::{DhOracle, X25519SecretKey};
use crate::hsm::{KeyPurpose, KeyRef, LoginWarning, Module, PinRole, TokenSelector, TokenSession};
use crate::manifest::{
    self, AuditKey, Custodian, Group, HsmEnrollment, Manifest, PinSource, Policy, Quorum,
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
}

/// A custodian's share, as `init` hands it out.
pub struct CustodianShare {
    /// The custodian.
    pub custodian: String,
    /// Their group's name.
    pub group: String,
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
        let store = Store::open(dir)?;
        let bytes = store.read(MANIFEST)?;
        let manifest = Manifest::from_bytes(&bytes, &store.path(MANIFEST))?;
        let vault = Vault { store, manifest };
        vault.check_manifest_recorded(&bytes)?;
        Ok(vault)
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
        let params = SplitParams {
            group_threshold: options.group_threshold,
            groups: options
                .groups
                .iter()
                .map(|g| GroupSpec {
                    threshold: g.threshold,
                    count: g.members.len() as u8,
                })
                .collect(),
            iteration_exponent: options.iteration_exponent,
            extendable: true,
        };
        let split = quorum::split(&q, b"", &params)?;
        let quorum_key = X25519SecretKey::derive_key_pair(&q);

        let module = Module::open(&options.token.module)?;
        let token = prepare_token(
            &module,
            &q,
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

        let mut shares_out = Vec::new();
        let mut groups = Vec::new();
        for (group_def, group_shares) in options.groups.iter().zip(split) {
            let mut members = Vec::new();
            for (name, share) in group_def.members.iter().zip(group_shares) {
                let salt = random_bytes(32)?;
                members.push(Custodian {
                    name: name.clone(),
                    commitment_salt: hex::encode(salt.as_slice()),
                    commitment: manifest::share_commitment(&vault_id, &salt, &share),
                });
                shares_out.push(CustodianShare {
                    custodian: name.clone(),
                    group: group_def.name.clone(),
                    share,
                });
            }
            groups.push(Group {
                name: group_def.name.clone(),
                threshold: group_def.threshold,
                members,
            });
        }
        let description = token.description();
        let manifest = Manifest {
            format: manifest::FORMAT.into(),
            vault_id: vault_id.clone(),
            created: crate::clock::rfc3339(crate::clock::now_unix()),
            quorum: Quorum {
                group_threshold: options.group_threshold,
                groups,
                identifier: shares_out[0].share.info().identifier,
                iteration_exponent: options.iteration_exponent,
                extendable: true,
                public_key: hex::encode(quorum_key.public_key_bytes()),
            },
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
            }],
            audit: AuditKey {
                token: description.label.clone(),
                key_id: hex::encode(&audit_key.id),
                public_key: hex::encode(&audit_key.public_key),
            },
            policy: options.policy.clone(),
        };
        for issued in &shares_out {
            if manifest
                .verify_share(&issued.share)
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
        let hsm_keys: Vec<Vec<u8>> = self
            .manifest
            .hsms
            .iter()
            .map(|h| hex::decode(&h.seal_public_key).unwrap_or_default())
            .collect();
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

    /// Enrols another token (a backup in another site): generates its sealing key, re-seals
    /// every credential with a stanza for it (the payload's AAD covers the stanzas, so each
    /// envelope is opened with the quorum and a token already enrolled, and sealed again), then
    /// records the new manifest in the audit log under a checkpoint. Returns the new fingerprint.
    pub fn enroll(
        &mut self,
        shares: &Collector,
        target: &TokenTarget,
        user_pin: &PinSource,
        so_pin: &PinSource,
        pins: &dyn PinProvider,
        pinned: &str,
    ) -> Result<String, crate::Error> {
        self.manifest.check_pinned(pinned)?;
        let (q, quorum_key, custodians, _) = self.recombine(shares)?;
        let q = q.expose_secret();
        let vault_id = self.manifest.vault_id.clone();
        // Every module involved, opened once (a module is initialised once per process).
        let mut paths: Vec<PathBuf> = self
            .manifest
            .hsms
            .iter()
            .map(|h| PathBuf::from(&h.module))
            .collect();
        paths.push(target.module.clone());
        paths.sort();
        paths.dedup();
        let modules: BTreeMap<PathBuf, Module> = paths
            .into_iter()
            .filter_map(|p| Module::open(&p).ok().map(|m| (p, m)))
            .collect();
        let new_module = modules
            .get(&target.module)
            .ok_or_else(|| VaultError::NoToken {
                tokens: target.label.clone(),
                last_error: format!("cannot load {}", target.module.display()),
            })?;
        let token = prepare_token(new_module, q, &vault_id, target, user_pin, so_pin, pins)?;
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
        let new_session = new_module.open_session(&token)?;
        new_session.login(
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
        let new_key = new_session.generate_key_pair(&vault_id, KeyPurpose::Seal)?;

        // A token already enrolled opens every envelope.
        let mut last_error = String::from("no enrolled token is present");
        let mut primary = None;
        for enrollment in &self.manifest.hsms {
            let Some(module) = modules.get(&PathBuf::from(&enrollment.module)) else {
                continue;
            };
            match module.find_token(&TokenSelector::Serial(enrollment.serial.clone())) {
                Ok(found) => {
                    primary = Some((module, found, enrollment.clone()));
                    break;
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        let (module, found, enrollment) = primary.ok_or_else(|| VaultError::NoToken {
            tokens: self
                .manifest
                .hsms
                .iter()
                .map(|h| h.label.clone())
                .collect::<Vec<_>>()
                .join(", "),
            last_error,
        })?;
        let session = module.open_session(&found)?;
        session.login(
            PinRole::User,
            &pin_for(
                Some(q),
                &vault_id,
                &enrollment.label,
                PinRole::User,
                &enrollment.pin,
                pins,
            )?,
            false,
        )?;
        let key = KeyRef {
            id: hex::decode(&enrollment.seal_key_id).unwrap_or_default(),
            label: format!("breakglass:{vault_id}:seal"),
            public_key: hex::decode(&enrollment.seal_public_key).unwrap_or_default(),
        };
        let mut hsm_keys: Vec<Vec<u8>> = self
            .manifest
            .hsms
            .iter()
            .map(|h| hex::decode(&h.seal_public_key).unwrap_or_default())
            .collect();
        hsm_keys.push(new_key.public_key.clone());
        let quorum_public = self
            .manifest
            .quorum_public_key()
            .map_err(|_| VaultError::Layout("quorum key".into()))?;

        let lock = self.store.lock()?;
        let now = crate::clock::rfc3339(crate::clock::now_unix());
        // Envelopes first: a crash before the manifest is written leaves stanzas for a token
        // the manifest does not know yet, which is harmless.
        for name in self.store.credentials()? {
            let (path, envelope) = self.envelope(&name)?;
            let payload = envelope.open(&session.dh_oracle(&key), &quorum_key, &path)?;
            let resealed = envelope::seal(&SealInput {
                vault_id: &vault_id,
                name: &name,
                kind: envelope.kind,
                created: now.clone(),
                metadata: envelope.metadata.clone(),
                payload: payload.expose_secret(),
                hsm_public_keys: &hsm_keys,
                quorum_public_key: &quorum_public,
            })?;
            self.store
                .write_credential(&lock, &name, &resealed.to_bytes(), true)?;
        }
        let description = token.description();
        self.manifest.hsms.push(HsmEnrollment {
            label: description.label.clone(),
            serial: description.serial.clone(),
            manufacturer: description.manufacturer.clone(),
            model: description.model.clone(),
            module: target.module.display().to_string(),
            softhsm_conf: target.softhsm_conf.clone(),
            seal_key_id: hex::encode(&new_key.id),
            seal_public_key: hex::encode(&new_key.public_key),
            pin: user_pin.clone(),
        });
        let manifest_bytes = self.manifest.to_bytes();
        self.store.write(&lock, MANIFEST, &manifest_bytes)?;
        let fingerprint = self.manifest.fingerprint().display();
        let mut event = Event::new("hsm_enrol")
            .detail("token", description.label.clone())
            .detail("serial", description.serial.clone())
            .detail("fingerprint", fingerprint.clone())
            .detail(
                MANIFEST_HASH,
                hex::encode(ring::digest::digest(&ring::digest::SHA256, &manifest_bytes).as_ref()),
            );
        event.custodians = custodians;
        self.append_signed(event, &session, &enrollment.label, &now)?;
        drop(lock);
        Ok(fingerprint)
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

/// The token `target` names: initialised first when asked (SO PIN set, user PIN set), else
/// found by label.
fn prepare_token(
    module: &Module,
    q: &[u8],
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
        Some(q),
        vault_id,
        &target.label,
        PinRole::SecurityOfficer,
        so_pin,
        pins,
    )?;
    let token = module.init_token(&target.label, &so)?;
    let session = module.open_session(&token)?;
    session.login(PinRole::SecurityOfficer, &so, false)?;
    session.init_user_pin(&pin_for(
        Some(q),
        vault_id,
        &target.label,
        PinRole::User,
        user_pin,
        pins,
    )?)?;
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
