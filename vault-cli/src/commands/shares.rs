//! `breakglass shares split|combine|inspect`: SLIP-39 on its own, like the reference
//! implementation's `shamir create`/`shamir recover`, for custodians and for checking interop.
//! Secrets come from stdin, the passphrase from an environment variable: never from argv.

use std::io::Read;

use anyhow::{Context, Result};
use secrecy::ExposeSecret;
use vault_core::quorum::{self, GroupSpec, Share, SplitParams};
use zeroize::Zeroizing;

use crate::cli::{SharesCombineArgs, SharesInspectArgs, SharesSplitArgs};
use crate::exit::{Failure, fail};

fn passphrase(var: Option<&str>) -> Result<Zeroizing<Vec<u8>>> {
    match var {
        None => Ok(Zeroizing::new(Vec::new())),
        Some(name) => {
            let value = std::env::var(name).map_err(|_| {
                fail(
                    Failure::Usage,
                    format!("--passphrase-env {name}: the variable is not set"),
                )
            })?;
            Ok(Zeroizing::new(value.into_bytes()))
        }
    }
}

fn read_stdin() -> Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading standard input")?;
    Ok(text)
}

/// Parses `T/N`.
fn group_spec(text: &str) -> Result<GroupSpec> {
    let parse = || -> Option<GroupSpec> {
        let (t, n) = text.split_once('/')?;
        Some(GroupSpec {
            threshold: t.trim().parse().ok()?,
            count: n.trim().parse().ok()?,
        })
    };
    parse().ok_or_else(|| {
        fail(
            Failure::Usage,
            format!("--group {text:?}: expected THRESHOLD/COUNT, e.g. 2/3"),
        )
    })
}

/// `breakglass shares split`.
pub fn split(args: &SharesSplitArgs) -> Result<()> {
    let passphrase = passphrase(args.passphrase_env.as_deref())?;
    let secret: Zeroizing<Vec<u8>> = if args.secret_stdin {
        let text = read_stdin()?;
        Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
            fail(
                Failure::Usage,
                "standard input: the secret must be hex (e.g. 32 hex digits for 128 bits)",
            )
        })?)
    } else {
        let mut bytes = Zeroizing::new(vec![0u8; usize::from(args.generate_bytes)]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| vault_core::Error::from(vault_core::vault::VaultError::Random))?;
        bytes
    };
    let groups = args
        .group
        .iter()
        .map(|g| group_spec(g))
        .collect::<Result<Vec<_>>>()?;
    let params = SplitParams {
        group_threshold: args.group_threshold,
        groups,
        iteration_exponent: args.iteration_exponent,
        extendable: !args.no_extendable,
    };
    let shares = quorum::split(&secret, &passphrase, &params).map_err(vault_core::Error::from)?;
    if args.json {
        let groups: Vec<Vec<String>> = shares
            .iter()
            .map(|g| {
                g.iter()
                    .map(|s| s.to_mnemonic().expose_secret().to_owned())
                    .collect()
            })
            .collect();
        let identifier = shares[0][0].info().identifier;
        println!(
            "{}",
            serde_json::json!({ "identifier": identifier, "groups": groups })
        );
        return Ok(());
    }
    for (i, group) in shares.iter().enumerate() {
        if i > 0 {
            println!();
        }
        for share in group {
            println!("{}", share.to_mnemonic().expose_secret());
        }
    }
    Ok(())
}

/// Reads mnemonics from stdin, one per line, blank lines ignored.
fn read_mnemonics() -> Result<Vec<Zeroizing<String>>> {
    let text = read_stdin()?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| Zeroizing::new(l.to_owned()))
        .collect())
}

/// `breakglass shares combine`.
pub fn combine(args: &SharesCombineArgs) -> Result<()> {
    let passphrase = passphrase(args.passphrase_env.as_deref())?;
    let mnemonics = read_mnemonics()?;
    let combined =
        quorum::combine_mnemonics(&mnemonics, &passphrase).map_err(vault_core::Error::from)?;
    if !combined.rejected.is_empty() {
        eprintln!(
            "breakglass: warning: shares {:?} (line order) do not belong with the others and were left out",
            combined.rejected
        );
    }
    println!("{}", hex::encode(combined.secret.expose_secret()));
    Ok(())
}

/// `breakglass shares inspect`: the public fields of each share, without combining.
pub fn inspect(args: &SharesInspectArgs) -> Result<()> {
    let mnemonics = read_mnemonics()?;
    let mut reports = Vec::new();
    for (i, mnemonic) in mnemonics.iter().enumerate() {
        let report = match Share::parse(mnemonic, i + 1) {
            Ok(share) => {
                let info = share.info();
                serde_json::json!({
                    "share": i + 1,
                    "checksum_valid": true,
                    "identifier": info.identifier,
                    "extendable": info.extendable,
                    "iteration_exponent": info.iteration_exponent,
                    "group_index": info.group_index + 1,
                    "group_threshold": info.group_threshold,
                    "group_count": info.group_count,
                    "member_index": info.member_index + 1,
                    "member_threshold": info.member_threshold,
                })
            }
            Err(error) => serde_json::json!({
                "share": i + 1,
                "checksum_valid": false,
                "error": error.to_string(),
            }),
        };
        reports.push(report);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            if let Some(error) = r.get("error") {
                println!(
                    "share {}: INVALID: {}",
                    r["share"],
                    error.as_str().unwrap_or_default()
                );
            } else {
                println!(
                    "share {}: identifier {} extendable {} iteration exponent {}; group {} of {} (need {} groups); member {} (need {}); checksum valid",
                    r["share"],
                    r["identifier"],
                    r["extendable"],
                    r["iteration_exponent"],
                    r["group_index"],
                    r["group_count"],
                    r["group_threshold"],
                    r["member_index"],
                    r["member_threshold"]
                );
            }
        }
    }
    if reports.iter().any(|r| r.get("error").is_some()) {
        return Err(fail(Failure::Quorum, "some shares are invalid (see above)"));
    }
    Ok(())
}
