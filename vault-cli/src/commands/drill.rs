//! `breakglass drill`: the whole ceremony except using the credential.

use std::path::Path;

use anyhow::Result;
use secrecy::ExposeSecret;
use vault_core::credential::AwsKeys;
use vault_core::envelope::{Envelope, Kind};
use vault_core::secret::SecretBytes;
use vault_core::vault::{DrillReport, TokenChoice};

use crate::cli::DrillArgs;
use crate::exit::{Failure, fail};
use crate::prompt::{CliPins, gather_shares, gather_with_recovery};

/// `breakglass drill`.
pub fn run(vault_arg: Option<&Path>, args: &DrillArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    super::require_pin(&vault, args.fingerprint.as_deref())?;
    let runtime = if args.aws {
        Some(crate::aws::runtime()?)
    } else {
        None
    };
    let check = |name: &str, envelope: &Envelope, payload: &SecretBytes| -> String {
        let Some(runtime) = &runtime else {
            return "opened".to_owned();
        };
        if envelope.kind != Kind::Aws {
            return "opened".to_owned();
        }
        let keys = match AwsKeys::from_payload(payload.expose_secret()) {
            Ok(keys) => keys,
            Err(e) => return format!("FAILED: {e}"),
        };
        let region = envelope.metadata.get("region").cloned();
        let arn = match runtime.block_on(crate::aws::caller_identity(
            &keys.access_key_id,
            &keys.secret_access_key,
            None,
            region.clone(),
        )) {
            Ok(arn) => arn,
            Err(e) => return format!("opened; AWS key {} FAILED: {e}", keys.access_key_id),
        };
        let mut key = format!(
            "opened; key {} valid in AWS as {arn}; {}",
            keys.access_key_id,
            mfa_outcome(envelope, &keys)
        );
        key.push_str(&other_keys(runtime, name, &keys));
        if let Some(serial) = envelope.metadata.get("mfa_serial")
            && keys.mfa_seed.is_some()
        {
            key.push_str("; ");
            key.push_str(&device_outcome(runtime, name, &keys, &arn, serial));
        }
        let (Some(rule), Some(topic)) = (
            envelope.metadata.get("alert_rule"),
            envelope.metadata.get("alert_topic"),
        ) else {
            return key;
        };
        match runtime.block_on(crate::aws::setup::check_alert(&keys, region, rule, topic)) {
            Ok(armed) => format!("{key}; {armed}"),
            Err(e) => format!("{key}; AWS alert FAILED: {e:#}"),
        }
    };
    let report = if args.recovery {
        let (quorum, recovery) = gather_with_recovery(&vault, &args.shares)?;
        crate::progress::run("drill", || vault.drill_recovery(&quorum, &recovery, check))?
    } else {
        let shares = gather_shares(&vault, &args.shares)?;
        let token = TokenChoice {
            pins: &CliPins,
            only: args.hsm.as_deref(),
            force_pin: false,
        };
        crate::progress::run("drill", || vault.drill(&shares, token, check))?
    };
    let DrillReport {
        custodians,
        recovery_custodians,
        outcomes: results,
    } = &report;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "custodians": custodians, "recovery_custodians": recovery_custodians,
                "credentials": results,
            })
        );
    } else {
        match recovery_custodians {
            Some(recovery) => println!(
                "recovery drill: shares of {} and recovery shares of {} recombined; no token used",
                custodians.join(", "),
                recovery.join(", ")
            ),
            None => println!(
                "drill: shares of {} recombined; the token answered",
                custodians.join(", ")
            ),
        }
        for (name, outcome) in results {
            println!("  {name}: {outcome}");
        }
    }
    if !report.all_passed() {
        return Err(fail(
            if results.values().any(|r| {
                r.contains("AWS key") || r.contains("AWS alert") || r.contains("MFA device FAILED")
            }) {
                Failure::Aws
            } else {
                Failure::Integrity
            },
            "the drill found problems (see above)",
        ));
    }
    Ok(())
}

/// The user's other access keys, named (empty when there are none, or when the sealed key may
/// not list them): a key besides the sealed one is what an interrupted `rotate` leaves (a new
/// key never sealed, or the previous one not retired yet), and running it again deletes it.
fn other_keys(runtime: &tokio::runtime::Runtime, name: &str, keys: &AwsKeys) -> String {
    let own = runtime.block_on(crate::aws::OwnKeys::new(
        &keys.access_key_id,
        &keys.secret_access_key,
    ));
    let Ok(listed) = runtime.block_on(own.list()) else {
        return String::new();
    };
    listed
        .iter()
        .filter(|k| k.id != keys.access_key_id)
        .map(|k| {
            format!(
                "; IAM also has key {}, which is not the sealed one: an interrupted rotation left \
                 it (`breakglass rotate {name}` deletes it)",
                k.id
            )
        })
        .collect()
}

/// Whether the sealed MFA seed can answer the device the credential names.
fn mfa_outcome(envelope: &Envelope, keys: &AwsKeys) -> String {
    match (envelope.metadata.get("mfa_serial"), &keys.mfa_seed) {
        (None, None) => "no MFA device".to_owned(),
        (Some(serial), None) => format!(
            "MFA FAILED: device {serial} is named but no seed is sealed (re-seal with --mfa-seed-file)"
        ),
        (None, Some(_)) => {
            "MFA FAILED: a seed is sealed but no device is named (re-seal with --mfa-serial)"
                .to_owned()
        }
        (Some(serial), Some(seed)) => match super::mfa::check_seed(seed) {
            Ok(_) => format!("MFA seed for {serial} makes codes"),
            Err(reason) => format!("MFA FAILED: the sealed seed makes no codes ({reason})"),
        },
    }
}

/// Whether the device the credential names is an MFA device of the user the sealed key
/// belongs to (IAM `ListMFADevices` with that key): a seed that makes codes is no use if AWS
/// asks for another device's. A key that may not list its devices leaves it unchecked. The
/// user's other devices are named: one that an interrupted `rotate --mfa` left (made by it and
/// never sealed, or the previous one not retired yet) is deleted by running it again.
fn device_outcome(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    keys: &AwsKeys,
    arn: &str,
    serial: &str,
) -> String {
    let Some(user) = arn
        .split_once(":user/")
        .map(|(_, path)| path.rsplit('/').next().unwrap_or(path))
    else {
        return format!("MFA device {serial} not checked: {arn} is not an IAM user");
    };
    match runtime.block_on(crate::aws::mfa_devices(
        &keys.access_key_id,
        &keys.secret_access_key,
        user,
    )) {
        Ok(devices) if devices.iter().any(|d| d == serial) => {
            let ours = format!(":mfa/{user}-breakglass-");
            let others: String = devices
                .iter()
                .filter(|d| *d != serial)
                .map(|d| {
                    if d.contains(&ours) {
                        format!(
                            "; IAM also has MFA device {d}, which is not the sealed one: an \
                             interrupted `rotate --mfa` left it (`breakglass rotate {name} --mfa` \
                             deletes it)"
                        )
                    } else {
                        format!("; IAM also has MFA device {d}, which is not the sealed one")
                    }
                })
                .collect();
            format!("MFA device {serial} is {user}'s{others}")
        }
        Ok(devices) => format!(
            "MFA device FAILED: {serial} is not an MFA device of {user} (its devices: {}); \
             re-seal with the device enabled for {user} and its seed, or `breakglass rotate --mfa`",
            if devices.is_empty() {
                "none".to_owned()
            } else {
                devices.join(", ")
            }
        ),
        Err(e) => format!("MFA device {serial} not checked ({e:#})"),
    }
}
