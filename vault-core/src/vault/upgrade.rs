//! Upgrading in place a vault made by the previous release (format 1: a plain `vault.json`
//! that nothing certifies, no operators) to a quorum-certified manifest.
//!
//! The format-1 file is untrusted until the upgrade has checked it: its fingerprint (the
//! format-1 fingerprint, which the share cards and this machine's pin carry) must be the one
//! pinned or given, the shares must recombine to its quorum key, and a token must log in with
//! the PIN that quorum derives. Then the quorum signing key certifies version 1 with this
//! machine's operator (its key made if missing) as the first security officer and cloud
//! administrator, and a token checkpoint signs the `upgrade` entry.
//!
//! Two fields of a format-1 file were outside its fingerprint and are not certified as read:
//! every token's PKCS#11 module hint becomes the module this machine named for the upgrade
//! (never a path the directory alone names), and nothing else the file says about code is used.
//! Token PINs derived with `pin/1` stay `pin/1` (see `docs/design.md`, "Upgrading a format-1
//! vault"): changing a PIN on a token cannot be one atomic step with writing the manifest.

use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use crate::audit::Event;
use crate::manifest::Manifest;
use crate::quorum::Collector;
use crate::store::{MANIFEST, Store};
use crate::trust::identity::PinnedIdentity;
use crate::trust::machine::{ConfigDir, MachineAnchor};
use crate::trust::operator::validate_operator_name;
use crate::trust::quorum_key::QuorumSigningKey;
use crate::trust::{CertifiedManifest, Operator, OperatorKey, Role, TrustError};

use super::record::manifest_event;
use super::shares::recombine_against;
use super::tokens::{PinProvider, TokenChoice};
use super::{Vault, VaultError};

/// Refuses the format-1 `manifest` read from `file` when this machine has authenticated a
/// certified version of its vault (its anchor): the old file was put back.
pub(super) fn refuse_downgrade(
    config: &ConfigDir,
    file: PathBuf,
    manifest: &Manifest,
) -> Result<(), crate::Error> {
    match MachineAnchor::read(config, &manifest.vault_id)? {
        Some(anchor) => Err(VaultError::Downgraded {
            file,
            vault_id: manifest.vault_id.clone(),
            version: anchor.manifest.version,
        }
        .into()),
        None => Ok(()),
    }
}

/// What an upgrade did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgraded {
    /// The format-1 fingerprint the vault had.
    pub old_fingerprint: String,
    /// The vault identity now (what new share cards carry and machines pin).
    pub identity: String,
    /// The first operator's name.
    pub operator: String,
    /// This machine's operator key file.
    pub key_path: PathBuf,
    /// Whether the key was made by the upgrade.
    pub key_created: bool,
    /// Tokens that keep the vault-wide `pin/1` PIN.
    pub pin1_tokens: Vec<String>,
}

/// A format-1 vault, read and not yet trusted.
#[derive(Debug)]
pub struct FormatOneVault {
    store: Store,
    manifest: Manifest,
}

impl FormatOneVault {
    /// Reads the vault in `dir`: its `vault.json` must be a format-1 manifest, and this machine
    /// must not have authenticated a certified version of it (that would make the file a
    /// downgrade, not an old vault).
    pub fn read(dir: &Path, config: &ConfigDir) -> Result<FormatOneVault, crate::Error> {
        let store = Store::open(dir)?;
        let file = store.path(MANIFEST);
        let bytes = store.read(MANIFEST)?;
        if CertifiedManifest::from_bytes(&bytes, &file).is_ok() {
            return Err(VaultError::NotFormatOne { file }.into());
        }
        let manifest = Manifest::from_bytes(&bytes, &file)?;
        refuse_downgrade(config, file, &manifest)?;
        if super::rekey::journal_previous(&store)?.is_some() {
            return Err(VaultError::RekeyPending {
                journal: store.path("rekey.json"),
            }
            .into());
        }
        Ok(FormatOneVault { store, manifest })
    }

    /// The vault id.
    pub fn vault_id(&self) -> &str {
        &self.manifest.vault_id
    }

    /// The format-1 fingerprint (as the old share cards and pins carry it).
    pub fn fingerprint(&self) -> String {
        self.manifest.fingerprint().display()
    }

    /// The manifest as read (untrusted).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Refuses `pinned` (the format-1 fingerprint this machine pinned, or the one on the old
    /// cards) unless it is this file's.
    pub fn check_fingerprint(&self, pinned: &str) -> Result<(), crate::Error> {
        let fingerprint = self.manifest.fingerprint();
        match PinnedIdentity::parse(pinned) {
            Ok(pin) if pin.matches(&fingerprint) => Ok(()),
            _ => Err(TrustError::IdentityMismatch {
                vault_id: self.manifest.vault_id.clone(),
                expected: pinned.to_owned(),
                found: fingerprint.display(),
            }
            .into()),
        }
    }

    /// Upgrades the vault: `pinned` (the format-1 fingerprint this machine pinned, or the one
    /// on the cards) must be this file's; the shares must recombine to its quorum key; the
    /// first token present in `module` must log in with the PIN they derive. `operator` names
    /// this machine's operator, who becomes the first security officer and cloud
    /// administrator. Writes `vault.json` (certified version 1), this machine's anchor and an
    /// `upgrade` entry under a token checkpoint; the caller pins the new identity.
    pub fn upgrade(
        self,
        config: &ConfigDir,
        shares: &Collector,
        pins: &dyn PinProvider,
        pinned: &str,
        operator: &str,
        module: &Path,
    ) -> Result<(Vault, Upgraded), crate::Error> {
        validate_operator_name(operator)?;
        self.check_fingerprint(pinned)?;
        let old_fingerprint = self.manifest.fingerprint();
        let quorum = recombine_against(&self.manifest, shares)?;
        let vault_id = self.manifest.vault_id.clone();
        let quorum_key = QuorumSigningKey::derive(quorum.secret.expose_secret(), &vault_id)?;
        let mut manifest = self.manifest;
        for token in &mut manifest.hsms {
            token.module = module.display().to_string();
        }
        let pin1_tokens: Vec<String> = manifest
            .hsms
            .iter()
            .filter(|h| h.pin_derivation.is_none())
            .map(|h| h.label.clone())
            .collect();
        let (key, key_created) = match OperatorKey::load(config, &vault_id)? {
            Some(key) => (key, false),
            None => (OperatorKey::generate(config, &vault_id)?, true),
        };
        let mut installed = false;
        let result = (|| {
            let operators = vec![Operator {
                name: operator.to_owned(),
                roles: vec![Role::SecurityOfficer, Role::CloudAdministrator],
                public_key: key.public_key().to_hex(),
            }];
            let trusted = CertifiedManifest::certify(manifest, 1, operators, &quorum_key)?;
            let mut vault = Vault::with(self.store, trusted.clone(), config.clone())?;
            let mut event: Event = manifest_event("upgrade", &trusted)
                .detail("from", crate::manifest::FORMAT)
                .detail("old_fingerprint", old_fingerprint.display())
                .detail("operator", operator.to_owned())
                .detail("module", module.display().to_string())
                .detail("pin1_tokens", pin1_tokens.join(","));
            event.custodians = quorum.custodians.clone();
            let choice = TokenChoice {
                pins,
                only: None,
                force_pin: false,
            };
            let lock = vault.write_lock()?;
            // The token logs in with the PIN the quorum derives, and signs the checkpoint,
            // before anything is written.
            let closing = vault.with_token(
                Some(quorum.secret.expose_secret()),
                choice,
                |session, enrollment, _, _| {
                    // Every envelope as it is now is recorded, signed, with the upgrade.
                    let mut events = vec![event];
                    events.extend(vault.envelope_records("upgrade")?);
                    vault.prepare_closing_all(events, session, &enrollment.label)
                },
            )?;
            vault.install(&lock, trusted)?;
            installed = true;
            vault.append_closing(closing)?;
            drop(lock);
            Ok::<Vault, crate::Error>(vault)
        })();
        let vault = match result {
            Ok(vault) => vault,
            Err(e) => {
                // A key made for a vault that was not upgraded is removed; once vault.json
                // names it, it stays.
                if key_created && !installed {
                    let _ = std::fs::remove_file(key.path());
                }
                return Err(e);
            }
        };
        let upgraded = Upgraded {
            old_fingerprint: old_fingerprint.display(),
            identity: vault.identity(),
            operator: operator.to_owned(),
            key_path: key.path().to_path_buf(),
            key_created,
            pin1_tokens,
        };
        Ok((vault, upgraded))
    }
}
