//! One module per command, and what they share: finding the vault.

pub mod assume;
pub mod audit;
pub mod aws_setup;
pub mod ceremony;
pub mod completions;
pub mod drill;
pub mod hsm;
pub mod init;
pub mod list;
pub mod mfa;
pub mod operator;
pub mod policy;
pub mod recovery;
pub mod rekey;
pub mod review;
pub mod rotate;
pub mod runbook;
pub mod seal;
pub mod session;
pub mod share;
pub mod shares;
pub mod unseal;
pub mod upgrade;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use vault_core::trust::Role;
use vault_core::trust::machine::ConfigDir;
use vault_core::vault::Vault;

use crate::exit::{Failure, fail};

/// The vault directory from `--vault` or `BREAKGLASS_VAULT`.
pub fn vault_dir(vault: Option<&Path>) -> Result<PathBuf> {
    vault.map(Path::to_path_buf).ok_or_else(|| {
        fail(
            Failure::Usage,
            "no vault: pass --vault DIR or set BREAKGLASS_VAULT",
        )
    })
}

/// Points this process's SoftHSM at a `--dev-softhsm` vault's own token directory.
pub fn use_dev_softhsm(dir: &Path) -> Result<()> {
    let conf = vault_core::hsm::write_dev_softhsm_conf(dir)?;
    set_softhsm_conf(&conf);
    Ok(())
}

/// Before `init --dev-softhsm`: points SoftHSM at where the vault's token will be (the file is
/// written by init itself, after it has made the vault directory).
pub fn use_dev_softhsm_path(dir: &Path) -> Result<()> {
    let conf = std::path::absolute(dir)?
        .join(vault_core::hsm::DEV_SOFTHSM_DIR)
        .join("softhsm2.conf");
    set_softhsm_conf(&conf);
    Ok(())
}

fn set_softhsm_conf(conf: &Path) {
    // SAFETY: called before the PKCS#11 module is loaded and before any thread is started (the
    // CLI is single-threaded until an AWS command builds its runtime, after this).
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", conf)
    };
}

/// This machine's configuration directory (`$BREAKGLASS_CONFIG_DIR`, else
/// `$XDG_CONFIG_HOME/breakglass`, else `~/.config/breakglass`): pins, anchors, operator keys.
pub fn machine_config() -> Result<ConfigDir> {
    ConfigDir::from_env().ok_or_else(|| {
        fail(
            Failure::Usage,
            "no configuration directory: set HOME, XDG_CONFIG_HOME or BREAKGLASS_CONFIG_DIR",
        )
    })
}

/// Opens the vault (its manifest authenticated against this machine's pin and anchor),
/// pointing SoftHSM at the vault's own token for `--dev-softhsm` vaults.
pub fn open_vault(vault: Option<&Path>) -> Result<Vault> {
    let dir = vault_dir(vault)?;
    let vault = Vault::open(&dir, &machine_config()?)?;
    dev_softhsm_for(&dir, vault)
}

/// Opens a certified vault whose audit log is not signed yet (for `upgrade` alone).
pub fn open_vault_unsigned(dir: &Path) -> Result<Vault> {
    let vault = Vault::open_unsigned(dir, &machine_config()?)?;
    dev_softhsm_for(dir, vault)
}

/// Opens the vault even when a rekey was interrupted (to resume it).
pub fn open_vault_resuming(vault: Option<&Path>) -> Result<Vault> {
    let dir = vault_dir(vault)?;
    let vault = Vault::open_resuming(&dir, &machine_config()?)?;
    dev_softhsm_for(&dir, vault)
}

fn dev_softhsm_for(dir: &Path, vault: Vault) -> Result<Vault> {
    let dir = dir.to_path_buf();
    if vault
        .manifest()
        .hsms
        .iter()
        .any(|h| h.softhsm_conf.is_some())
    {
        use_dev_softhsm(&dir)?;
    }
    Ok(vault)
}

/// `known_vaults.json` in this machine's configuration directory: the vault identities pinned
/// at init (or given at a rekey) on this machine.
pub fn known_vaults_path() -> Option<PathBuf> {
    ConfigDir::from_env().map(|c| vault_core::vault::known_vaults_path(&c))
}

/// The fingerprint pinned for `vault_id` on this machine, if any.
pub fn pinned_fingerprint(vault_id: &str) -> Result<Option<String>> {
    let Some(path) = known_vaults_path() else {
        return Ok(None);
    };
    Ok(vault_core::manifest::read_known_vaults(&path)?
        .get(vault_id)
        .cloned())
}

/// Refuses a vault whose identity is not the one pinned on this machine (opening checked the
/// anchor, which takes precedence; this checks `known_vaults.json` as well).
pub fn check_pin(vault: &Vault) -> Result<()> {
    if let Some(pinned) = pinned_fingerprint(&vault.manifest().vault_id)? {
        vault.check_identity(&pinned)?;
    }
    Ok(())
}

/// For every command that uses shares or a token: the vault must be the one this machine
/// pinned, and returns that fingerprint. With no pin yet, the fingerprint `given`
/// (`--fingerprint` or `BREAKGLASS_FINGERPRINT`, as on the share cards) is checked and pinned,
/// or a person at the terminal confirms the vault's fingerprint against their card (trust on
/// first use, said so); otherwise the command stops before anything is asked. A given
/// fingerprint that differs from the pin is an integrity failure, never an override.
pub fn require_pin(vault: &Vault, given: Option<&str>) -> Result<String> {
    // The fingerprint is the vault identity the quorum certified (share cards carry it).
    let vault_id = &vault.manifest().vault_id;
    let fingerprint = vault.identity();
    if let Some(pinned) = pinned_fingerprint(vault_id)? {
        vault.check_identity(&pinned)?;
        if let Some(given) = given
            && vault.check_identity(given).is_err()
        {
            return Err(fail(
                Failure::Integrity,
                format!(
                    "the fingerprint given ({given}) is not the one pinned on this machine for vault {vault_id} ({pinned}), which this vault matches: a pin is never overridden. If the vault was changed on purpose, check the new fingerprint with the security officer and remove vault {vault_id} from {}",
                    known_vaults_path()
                        .map_or_else(|| "known_vaults.json".into(), |p| p.display().to_string())
                ),
            ));
        }
        return Ok(pinned);
    }
    if let Some(given) = given {
        if vault.check_identity(given).is_err() {
            return Err(fail(
                Failure::Integrity,
                format!(
                    "vault {vault_id} has fingerprint {fingerprint}, not the {given} given: this is not the vault on the share cards (or it was changed). Nothing was done"
                ),
            ));
        }
        pin_fingerprint(vault_id, &fingerprint)?;
        eprintln!("fingerprint {fingerprint} of vault {vault_id} is now pinned on this machine");
        return Ok(fingerprint);
    }
    if crate::prompt::interactive() {
        eprintln!(
            "This machine has not seen vault {vault_id} before. Its fingerprint is

    {fingerprint}

Compare it, group by group, with the fingerprint on a share card or in the runbook."
        );
        if crate::prompt::confirm(
            "Is it the same, and should this machine trust the vault from now on?",
        )? {
            pin_fingerprint(vault_id, &fingerprint)?;
            eprintln!("fingerprint pinned on this machine (trusted on first use)");
            return Ok(fingerprint);
        }
        return Err(fail(
            Failure::Integrity,
            format!("vault {vault_id} not trusted: nothing was done"),
        ));
    }
    Err(
        vault_core::Error::from(vault_core::vault::VaultError::NotPinned {
            vault_id: vault_id.clone(),
        })
        .into(),
    )
}

/// Refuses (exit 5) unless this machine's operator key for the vault belongs to an operator who
/// holds `role` in the authenticated manifest ([`Vault::acting_operator`]): `command` is that
/// role's. Called right after the vault is opened and its pin checked, before any share is
/// asked for, a token touched or anything written. The refusal names the role needed and who
/// this machine's key belongs to (or that it belongs to nobody). Returns the operator's name.
pub fn require_role(vault: &Vault, role: Role, command: &str) -> Result<String> {
    match vault.acting_operator(role) {
        Ok((_, operator)) => Ok(operator.name),
        Err(e) => Err(anyhow::Error::from(e).context(format!(
            "`breakglass {command}` is for a {role} of the vault, on their own machine: nothing \
             was read or changed (the quorum gives an operator a role with `breakglass operator \
             add`)"
        ))),
    }
}

/// Refuses to go on without a reason when the vault's policy requires one (checked before any
/// share is asked for).
pub fn require_reason(vault: &Vault, reason: Option<&str>) -> Result<()> {
    if vault.manifest().policy.require_reason && reason.is_none_or(|r| r.trim().is_empty()) {
        return Err(fail(
            Failure::Usage,
            "--reason TEXT is required by this vault's policy (why the glass is broken; recorded in the audit log). Nothing was asked of the custodians",
        ));
    }
    Ok(())
}

/// Refuses to open a credential on a broken audit log (exit 5): the opening could not be
/// recorded on a trustworthy chain. Checked before any share is asked for.
pub fn require_intact_audit(vault: &Vault) -> Result<()> {
    match vault.check_history() {
        Ok(()) => Ok(()),
        Err(vault_core::Error::Trust(vault_core::trust::TrustError::AuditLogBroken {
            line,
            reason,
            ..
        })) => Err(fail(
            Failure::Integrity,
            format!(
                "the audit log is broken at line {line} ({reason}): no credential is opened on a record that cannot be trusted; run breakglass audit verify and restore the log from a copy. Nothing was asked of the custodians"
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Days since an RFC 3339 time, for ages.
pub fn days_since(time: &str) -> Option<u64> {
    let then = vault_core::clock::parse_rfc3339(time)?;
    Some(vault_core::clock::now_unix().saturating_sub(then) / 86_400)
}

/// Records the fingerprint in this machine's known-vaults file, so later commands check it.
pub fn pin_fingerprint(vault_id: &str, fingerprint: &str) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(path) = known_vaults_path() else {
        return Ok(());
    };
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let mut known = vault_core::manifest::read_known_vaults(&path)?;
    known.insert(vault_id.to_owned(), fingerprint.to_owned());
    vault_core::store::write_atomic(&path, serde_json::to_string_pretty(&known)?.as_bytes())
        .with_context(|| {
            format!(
                "the vault is changed and complete, but its new fingerprint {fingerprint} could not \
                 be pinned on this machine: check it against the share cards and put it for vault \
                 {vault_id} in {}",
                path.display()
            )
        })?;
    Ok(())
}
