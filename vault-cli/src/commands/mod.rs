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
pub mod policy;
pub mod recovery;
pub mod rekey;
pub mod review;
pub mod rotate;
pub mod seal;
pub mod session;
pub mod share;
pub mod shares;
pub mod unseal;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
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

/// Opens the vault, pointing SoftHSM at the vault's own token for `--dev-softhsm` vaults.
pub fn open_vault(vault: Option<&Path>) -> Result<Vault> {
    let dir = vault_dir(vault)?;
    let vault = Vault::open(&dir)?;
    dev_softhsm_for(&dir, vault)
}

/// Opens the vault even when a rekey was interrupted (to resume it).
pub fn open_vault_resuming(vault: Option<&Path>) -> Result<Vault> {
    let dir = vault_dir(vault)?;
    let vault = Vault::open_resuming(&dir)?;
    dev_softhsm_for(&dir, vault)
}

/// The fingerprint to check a manifest change against: `--fingerprint`, else the one pinned
/// on this machine.
pub fn pinned_or(vault: &Vault, given: Option<&str>, what: &str) -> Result<String> {
    match given {
        Some(f) => Ok(f.to_owned()),
        None => pinned_fingerprint(&vault.manifest().vault_id)?.ok_or_else(|| {
            fail(
                Failure::Usage,
                format!("{what} changes the manifest: pass --fingerprint (as on the share cards) or run where init pinned it"),
            )
        }),
    }
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

/// `$XDG_CONFIG_HOME/breakglass/known_vaults.json` (or `~/.config/...`): fingerprints pinned at
/// init on this machine.
pub fn known_vaults_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("breakglass").join("known_vaults.json"))
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

/// Refuses a vault whose manifest does not match the fingerprint pinned on this machine.
pub fn check_pin(vault: &Vault) -> Result<()> {
    if let Some(pinned) = pinned_fingerprint(&vault.manifest().vault_id)? {
        vault.manifest().check_pinned(&pinned)?;
    }
    Ok(())
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
    let report = vault.manifest().verify_audit(&vault.audit())?;
    let line = report
        .first_problem
        .as_ref()
        .map(|p| p.line)
        .or(report.bad_signature);
    match line {
        None => Ok(()),
        Some(line) => Err(fail(
            Failure::Integrity,
            format!(
                "the audit log is broken at line {line}: no credential is opened on a record that cannot be trusted; run breakglass audit verify and restore the log from a copy. Nothing was asked of the custodians"
            ),
        )),
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
