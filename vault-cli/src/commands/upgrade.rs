//! `breakglass upgrade`: a vault made by an earlier release upgraded in place, with a quorum
//! and a token: a format-1 vault to a quorum-certified manifest and signed audit lines; a
//! certified vault whose audit log is not signed yet, to signed lines (its envelopes recorded).

use std::path::Path;

use anyhow::Result;
use vault_core::trust::machine::MachineConfig;
use vault_core::vault::FormatOneVault;

use crate::cli::UpgradeArgs;
use crate::exit::{Failure, fail};
use crate::prompt::{CliPins, gather_quorum_shares};

/// `breakglass upgrade`.
pub fn run(vault_arg: Option<&Path>, args: &UpgradeArgs) -> Result<()> {
    let dir = super::vault_dir(vault_arg)?;
    let config = super::machine_config()?;
    let certified = std::fs::read(dir.join(vault_core::store::MANIFEST))
        .ok()
        .is_some_and(|bytes| {
            vault_core::trust::CertifiedManifest::from_bytes(&bytes, Path::new("vault.json"))
                .is_ok()
        });
    if certified {
        return sign_history(&dir, args);
    }
    let Some(operator) = &args.operator else {
        return Err(fail(
            Failure::Usage,
            "--operator NAME is needed to upgrade a format-1 vault: your name as its first operator (security officer and cloud administrator)",
        ));
    };
    let old = FormatOneVault::read(&dir, &config)?;
    let dev = old.manifest().hsms.iter().any(|h| h.softhsm_conf.is_some());
    if dev {
        super::use_dev_softhsm(&dir)?;
    }
    // Code is loaded only from a path this machine names: the old vault.json's module hints
    // were outside its fingerprint.
    let module = match (&args.module, MachineConfig::read(&config)?.pkcs11_module) {
        (Some(module), _) => module.clone(),
        (None, Some(module)) => module,
        (None, None) if dev => vault_core::hsm::softhsm_module().ok_or_else(|| {
            fail(
                Failure::Hsm,
                "SoftHSM is not installed (apt-get install softhsm2)",
            )
        })?,
        (None, None) => {
            return Err(fail(
                Failure::Usage,
                "which PKCS#11 module do the tokens use? pass --module PATH (or set BREAKGLASS_PKCS11_MODULE); the path in the old vault.json is not used",
            ));
        }
    };
    let pinned = match (
        super::pinned_fingerprint(old.vault_id())?,
        &args.fingerprint,
    ) {
        (Some(pinned), Some(given))
            if vault_core::trust::identity::PinnedIdentity::parse(given)
                .ok()
                .zip(vault_core::trust::identity::PinnedIdentity::parse(&pinned).ok())
                .is_none_or(|(g, p)| g != p) =>
        {
            return Err(fail(
                Failure::Integrity,
                format!(
                    "the fingerprint given ({given}) is not the one pinned on this machine for vault {} ({pinned}): a pin is never overridden. Nothing was done",
                    old.vault_id()
                ),
            ));
        }
        (Some(pinned), _) => pinned,
        (None, Some(given)) => given.clone(),
        (None, None) => {
            return Err(fail(
                Failure::Usage,
                format!(
                    "this machine has not pinned vault {}: pass --fingerprint with the fingerprint on the share cards (or set BREAKGLASS_FINGERPRINT). Nothing was asked of the custodians",
                    old.vault_id()
                ),
            ));
        }
    };
    // Checked before any share is asked for (and again by the library).
    old.check_fingerprint(&pinned)?;
    vault_core::trust::operator::validate_operator_name(operator)?;
    let shares = gather_quorum_shares(old.manifest(), None, &args.shares)?;
    let (vault, upgraded) = crate::progress::run("upgrade", || {
        old.upgrade(&config, &shares, &CliPins, &pinned, operator, &module)
    })?;
    super::pin_fingerprint(&vault.manifest().vault_id, &upgraded.identity)?;
    println!(
        "vault {} upgraded: manifest version 1 certified by the quorum",
        vault.manifest().vault_id
    );
    println!(
        "operator {}: security officer and cloud administrator (key {} {})",
        upgraded.operator,
        upgraded.key_path.display(),
        if upgraded.key_created {
            "made now"
        } else {
            "already on this machine"
        }
    );
    println!(
        "token module: {} (certified for every token; other machines name theirs with BREAKGLASS_PKCS11_MODULE)",
        module.display()
    );
    if !upgraded.pin1_tokens.is_empty() {
        println!(
            "token PINs unchanged (pin/1) for: {}",
            upgraded.pin1_tokens.join(", ")
        );
    }
    println!(
        "new fingerprint: {} (was {}): pinned on this machine; reissue the share cards with `breakglass share card`",
        upgraded.identity, upgraded.old_fingerprint
    );
    if upgraded.statement_written {
        println!(
            "other machines that pinned {} move to the new fingerprint by themselves: upgrade.json, signed by the vault's audit key, says so (keep it with the vault)",
            upgraded.old_fingerprint
        );
    } else {
        println!(
            "the token used does not hold the audit key, so no upgrade statement was written: on other machines remove the old pin and pin the new fingerprint"
        );
    }
    Ok(())
}

/// A certified vault whose audit log has no signed lines yet: this machine's operator (a
/// security officer), with a quorum and a token, signs its history on (see
/// `Vault::sign_history`).
fn sign_history(dir: &Path, args: &UpgradeArgs) -> Result<()> {
    let vault = super::open_vault_unsigned(dir)?;
    if vault.history_signed()? {
        return Err(
            vault_core::Error::from(vault_core::vault::VaultError::HistorySignedAlready {
                vault_id: vault.manifest().vault_id.clone(),
            })
            .into(),
        );
    }
    if args.operator.is_some() {
        return Err(fail(
            Failure::Usage,
            "--operator is for format-1 vaults: this vault's operators are certified already, and this machine's operator signs the upgrade. Nothing was done",
        ));
    }
    let pinned = super::require_pin(&vault, args.fingerprint.as_deref())?;
    // Checked before any share is asked for (and again by the library).
    vault.acting_operator(vault_core::trust::Role::SecurityOfficer)?;
    let shares = gather_quorum_shares(vault.manifest(), None, &args.shares)?;
    let signed =
        crate::progress::run("upgrade", || vault.sign_history(&shares, &CliPins, &pinned))?;
    println!(
        "vault {} upgraded: its audit log is signed from line {} on, by operator {}",
        vault.manifest().vault_id,
        signed.unsigned_lines + 1,
        signed.operator
    );
    println!(
        "recorded as they are now ({}): {}",
        signed.envelopes.len(),
        if signed.envelopes.is_empty() {
            "no credentials".to_owned()
        } else {
            signed.envelopes.join(", ")
        }
    );
    println!(
        "the quorum vouched for these envelopes: from now on each credential opens only as the envelope its latest signed record names"
    );
    Ok(())
}
