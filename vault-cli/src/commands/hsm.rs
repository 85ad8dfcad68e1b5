//! `breakglass hsm tokens|enroll|check`: the tokens a PKCS#11 module offers, enrolling one in
//! a vault, and checking one can do what breakglass needs.

use anyhow::{Context, Result};
use vault_core::hsm::{CheckStatus, Module, PinRole, TokenSelector};
use vault_core::manifest::PinSource;
use vault_core::trust::Role;
use vault_core::vault::{Enrolment, NewToken, PinProvider};

use crate::cli::{HsmCheckArgs, HsmEnrollArgs, HsmTokensArgs};
use crate::exit::{Failure, fail};
use crate::prompt::{CliPins, gather_shares, gather_with_recovery};

/// `breakglass hsm tokens`: lists the initialised tokens of a module with their PIN state.
pub fn tokens(args: &HsmTokensArgs) -> Result<()> {
    let module = Module::open(&args.module)?;
    let tokens = module
        .tokens()
        .with_context(|| format!("listing the tokens of {}", args.module.display()))?;
    if args.json {
        let list: Vec<_> = tokens
            .iter()
            .map(|t| {
                let d = t.description();
                serde_json::json!({
                    "label": d.label,
                    "serial": d.serial,
                    "manufacturer": d.manufacturer,
                    "model": d.model,
                    "user_pin_initialized": d.pins.user_initialized,
                    "user_pin_count_low": d.pins.user_count_low,
                    "user_pin_final_try": d.pins.user_final_try,
                    "user_pin_locked": d.pins.user_locked,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if tokens.is_empty() {
        println!("no initialised token in {}", args.module.display());
    }
    for token in &tokens {
        let d = token.description();
        let pin = if d.pins.user_locked {
            "user PIN LOCKED"
        } else if d.pins.user_final_try {
            "user PIN at its FINAL TRY"
        } else if d.pins.user_count_low {
            "user PIN: wrong tries recorded"
        } else if d.pins.user_initialized {
            "user PIN set"
        } else {
            "user PIN not set"
        };
        println!(
            "{:<32} serial {:<16} {} {} ({pin})",
            d.label, d.serial, d.manufacturer, d.model
        );
    }
    Ok(())
}

/// `breakglass hsm enroll`.
pub fn enroll(vault_arg: Option<&std::path::Path>, args: &HsmEnrollArgs) -> Result<()> {
    let mut vault = super::open_vault(vault_arg)?;
    let pinned = super::require_pin(&vault, args.fingerprint.as_deref())?;
    super::require_role(&vault, Role::SecurityOfficer, "hsm enroll")?;
    let dev = vault
        .manifest()
        .hsms
        .iter()
        .find_map(|h| h.softhsm_conf.clone());
    let module = match (&args.module, &dev) {
        (Some(module), _) => module.clone(),
        (None, Some(_)) => vault_core::hsm::softhsm_module()
            .ok_or_else(|| fail(Failure::Hsm, "SoftHSM is not installed"))?,
        (None, None) => return Err(fail(Failure::Usage, "which module? pass --module PATH")),
    };
    let softhsm_conf = dev.filter(|_| Some(&module) == vault_core::hsm::softhsm_module().as_ref());
    let target = vault_core::vault::TokenTarget {
        module,
        label: args.token.clone(),
        init_token: args.init_token,
        softhsm_conf,
    };
    let user_pin = args.pin_source.clone();
    let so_pin = args.so_pin_source.clone();
    let new = NewToken {
        target: &target,
        user_pin: &user_pin,
        so_pin: &so_pin,
        pins: &CliPins,
    };
    if args.recovery {
        let (quorum, recovery) = gather_with_recovery(&vault, &args.shares)?;
        let fingerprint = crate::progress::run("hsm enroll", || {
            vault.enroll_from_recovery(&quorum, &recovery, &new, &pinned, &args.retire)
        })?;
        println!(
            "token {} enrolled from the recovery key; every credential now opens with it",
            args.token
        );
        if !args.retire.is_empty() {
            println!(
                "retired: {} (run `breakglass rekey` to give every credential fresh file keys too)",
                args.retire.join(", ")
            );
        }
        println!("fingerprint unchanged: {fingerprint} (the share cards stay valid)");
        return Ok(());
    }
    // The quorum certifies the manifest's next version (and derives the PINs it derives): the
    // envelopes' token halves are opened by the enrolled token alone, and the payloads are
    // never decrypted.
    let shares = gather_shares(&vault, &args.shares)?;
    match crate::progress::run("hsm enroll", || vault.enroll(&shares, &new, &pinned))? {
        Enrolment::Enrolled => println!(
            "token {} enrolled; every credential now opens with it too",
            args.token
        ),
        Enrolment::RecordedLate => println!(
            "token {} was enrolled by a run interrupted before its audit entry: the entry is \
             recorded now; every credential opens with it too",
            args.token
        ),
    }
    println!(
        "fingerprint unchanged: {} (the share cards stay valid; manifest version {})",
        vault.identity(),
        vault.certified().version()
    );
    Ok(())
}

/// `breakglass hsm check`: what the token does of what breakglass needs; exit 4 when something
/// is missing.
pub fn check(args: &HsmCheckArgs) -> Result<()> {
    let pin = if args.no_login {
        None
    } else {
        let source = args.pin_source.clone();
        if source == PinSource::Quorum {
            return Err(fail(
                Failure::Usage,
                "--pin-source quorum: hsm check has no vault and no shares to derive the PIN from; \
                 give the PIN with env:VAR, file:PATH or prompt, or check with --no-login",
            ));
        }
        Some(CliPins.pin(&args.token, PinRole::User, &source)?)
    };
    let module = Module::open(&args.module)?;
    let token = module.find_token(&TokenSelector::Label(args.token.clone()))?;
    let report = module.check_token(&token, pin.as_ref(), args.force_pin)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "token {:?} serial {} ({} {}, firmware {}), PINs of {} to {} characters",
            report.label,
            report.serial,
            report.manufacturer,
            report.model,
            report.firmware,
            report.min_pin_len,
            report.max_pin_len
        );
        for c in &report.checks {
            let status = match c.status {
                CheckStatus::Ok => "ok",
                CheckStatus::Missing => "MISSING",
                CheckStatus::NotRun => "not run",
            };
            println!("  {status:<8} {}: {}", c.name, c.detail);
            if c.status != CheckStatus::Ok {
                println!("           needed for {}", c.needed_for);
            }
        }
    }
    let missing: Vec<&str> = report.missing().map(|c| c.name).collect();
    if !missing.is_empty() {
        return Err(fail(
            Failure::Hsm,
            format!(
                "token {:?} lacks what breakglass needs: {} (see docs/hsm.md)",
                report.label,
                missing.join("; ")
            ),
        ));
    }
    if !args.json {
        println!(
            "{}",
            if pin.is_some() {
                "everything breakglass needs works on this token; nothing on it was changed"
            } else {
                "what needs no login is there; run again with a PIN to try the key operations"
            }
        );
    }
    Ok(())
}
