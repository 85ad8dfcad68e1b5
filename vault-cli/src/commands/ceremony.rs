//! `breakglass ceremony open|contribute|status|close`: a quorum assembled from wherever the
//! custodians are, over any channel. The ceremony's state and checks are the library's
//! (`vault_core::ceremony`); this file turns options into a [`Purpose`], talks to the
//! custodian, and carries the purpose out with the gathered shares.

use std::path::Path;

use anyhow::{Context, Result};
use vault_core::ceremony::{self, LayoutGroup, Opening, Purpose, Request};
use vault_core::quorum::Share;
use vault_core::vault::{RecoveryDef, Vault};

use crate::cli::{
    AssumeArgs, AssumeCommon, CeremonyCloseArgs, CeremonyContributeArgs, CeremonyOpenArgs,
    CeremonyStatusArgs, DrillArgs, PurposeArg, RekeyLayoutArgs, RotateArgs, ShareSources,
    UnsealArgs,
};
use crate::exit::{Failure, fail};
use crate::prompt::{confirmed, own_share};

/// The purpose `args` ask for, with its data: the credential (checked to exist), the rekey's
/// layout or the recovery set.
fn purpose(vault: &Vault, args: &CeremonyOpenArgs) -> Result<Purpose> {
    let given = &args.rekey;
    let credential = || -> Result<String> {
        let name = args.credential.clone().ok_or_else(|| {
            fail(
                Failure::Usage,
                format!("--purpose {} needs --credential NAME", args.purpose.name()),
            )
        })?;
        vault.envelope(&name)?;
        Ok(name)
    };
    if args.credential.is_some()
        && matches!(
            args.purpose,
            PurposeArg::Drill | PurposeArg::Rekey | PurposeArg::Recovery
        )
    {
        return Err(fail(
            Failure::Usage,
            format!(
                "--purpose {} is about the whole vault: it takes no --credential",
                args.purpose.name()
            ),
        ));
    }
    if layout_given(given) && !matches!(args.purpose, PurposeArg::Rekey | PurposeArg::Recovery) {
        return Err(fail(
            Failure::Usage,
            "custodian and recovery options are for --purpose rekey (and recovery)",
        ));
    }
    Ok(match args.purpose {
        PurposeArg::Unseal => Purpose::Unseal {
            credential: credential()?,
        },
        PurposeArg::Assume => Purpose::Assume {
            credential: credential()?,
        },
        PurposeArg::Rotate => Purpose::Rotate {
            credential: credential()?,
        },
        PurposeArg::Drill => Purpose::Drill,
        PurposeArg::Rekey => {
            let target = super::rekey::resolve(vault, given)?;
            eprintln!("the rekey makes: {}", target.describe());
            Purpose::Rekey(target)
        }
        PurposeArg::Recovery => {
            if !given.layout.custodians.is_empty()
                || !given.layout.groups.is_empty()
                || given.no_recovery
            {
                return Err(fail(
                    Failure::Usage,
                    "--purpose recovery takes --recovery-threshold K and --recovery-custodian NAME only",
                ));
            }
            let threshold = given.recovery_threshold.ok_or_else(|| {
                fail(
                    Failure::Usage,
                    "--purpose recovery needs --recovery-threshold K",
                )
            })?;
            let def = super::recovery::resolve(vault, threshold, &given.recovery_custodians);
            vault_core::vault::validate_recovery(&vault.manifest().quorum, &def)?;
            Purpose::Recovery(LayoutGroup {
                name: vault_core::vault::RECOVERY_GROUP.into(),
                threshold: def.threshold,
                members: def.members,
            })
        }
    })
}

fn layout_given(given: &RekeyLayoutArgs) -> bool {
    !given.layout.custodians.is_empty()
        || !given.layout.groups.is_empty()
        || given.layout.threshold.is_some()
        || given.recovery_threshold.is_some()
        || !given.recovery_custodians.is_empty()
        || given.no_recovery
}

/// `breakglass ceremony open`.
pub fn open(vault_arg: Option<&Path>, args: &CeremonyOpenArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    super::check_pin(&vault)?;
    let purpose = purpose(&vault, args)?;
    let request = ceremony::open(
        &vault,
        &Opening {
            purpose,
            reason: &args.reason,
            lifetime_seconds: args.expires.seconds(),
            out: &args.out,
        },
    )?;
    println!(
        "ceremony {} opened until {}; request written to {}",
        request.id,
        request.expires,
        args.out.display()
    );
    println!(
        "each custodian runs: breakglass ceremony contribute {} --out CONTRIBUTION",
        args.out.display()
    );
    Ok(())
}

/// The custodian named in a share file's header, if any.
fn custodian_from_header(path: &Path, identity: Option<&Path>) -> Option<String> {
    let text = crate::prompt::share_file_text(path, identity).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix("# breakglass share of custodian ")
            .map(|n| n.trim().to_owned())
    })
}

/// `breakglass ceremony contribute` (custodian side, no vault needed).
pub fn contribute(args: &CeremonyContributeArgs) -> Result<()> {
    let bytes = std::fs::read(&args.request)
        .with_context(|| format!("reading {}", args.request.display()))?;
    let request = Request::from_bytes(&bytes, &format!("request {}", args.request.display()))?;
    request.check_not_expired(vault_core::clock::now_unix())?;
    eprintln!("ceremony {} of vault {}", request.id, request.vault_id);
    eprintln!("  {} asks to {}", request.requester, request.describe());
    eprintln!("  because: {}", request.reason);
    eprintln!("  contributions accepted until {}", request.expires);
    eprintln!(
        "  vault fingerprint {}: compare it with your share card before you go on",
        request.fingerprint
    );
    confirmed(
        args.yes,
        "not on a terminal: pass --yes once you have checked the request",
        "Contribute your share to this ceremony?",
        "not contributed",
    )?;
    let mnemonic = own_share(args.share_file.as_deref(), args.identity.as_deref())?;
    // Checked before it leaves this machine: words and checksum (the coordinator checks that it
    // belongs to the vault and to this custodian).
    Share::parse(&mnemonic, 1).map_err(vault_core::Error::from)?;
    let custodian = args
        .custodian
        .clone()
        .or_else(|| {
            args.share_file
                .as_deref()
                .and_then(|p| custodian_from_header(p, args.identity.as_deref()))
        })
        .ok_or_else(|| {
            fail(
                Failure::Usage,
                "which custodian are you? pass --custodian NAME",
            )
        })?;
    let contribution = vault_core::ceremony::Contribution::seal(&request, &custodian, &mnemonic)?;
    vault_core::store::write_new_secret_file(&args.out, &contribution.to_bytes())?;
    println!(
        "contribution of {custodian} written to {}: send it to the coordinator by any channel",
        args.out.display()
    );
    Ok(())
}

/// `breakglass ceremony status`.
pub fn status(vault_arg: Option<&Path>, args: &CeremonyStatusArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    let gathered = ceremony::gather(&vault, &args.id, &args.contributions)?;
    let request = &gathered.request;
    let now = vault_core::clock::now_unix();
    let left = vault_core::clock::parse_rfc3339(&request.expires)
        .map(|t| t.saturating_sub(now))
        .unwrap_or(0);
    println!(
        "ceremony {}: {} {} ({})",
        request.id,
        request.purpose.name(),
        request.purpose.credential().unwrap_or(""),
        request.reason
    );
    println!("time left: {} min", left / 60);
    println!(
        "contributed: {}",
        if gathered.custodians.is_empty() {
            "nobody yet".to_owned()
        } else {
            gathered.custodians.join(", ")
        }
    );
    let progress = gathered.shares.progress();
    for (index, group) in vault.manifest().quorum.groups.iter().enumerate() {
        let have = progress
            .groups
            .iter()
            .find(|(g, _, _)| usize::from(*g) == index + 1)
            .map_or(0, |(_, h, _)| *h);
        println!(
            "  group {}: {have} of {} needed",
            group.name, group.threshold
        );
    }
    println!(
        "{}",
        if progress.complete {
            "the quorum is met: breakglass ceremony close"
        } else {
            "the quorum is not met yet"
        }
    );
    Ok(())
}

/// `breakglass ceremony close`: checks everything, then carries out the purpose.
pub fn close(vault_arg: Option<&Path>, args: &CeremonyCloseArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    super::check_pin(&vault)?;
    let gathered = ceremony::gather(&vault, &args.id, &args.contributions)?;
    gathered.check_closable(&vault, vault_core::clock::now_unix())?;
    let ceremony::Gathered {
        request,
        shares: collector,
        custodians,
    } = gathered;
    let shares = ShareSources {
        share_files: Vec::new(),
        shares_stdin: false,
        identity: None,
        collected: std::cell::RefCell::new(Some(collector)),
    };
    match &request.purpose {
        Purpose::Unseal { credential } => super::unseal::run(
            vault_arg,
            &UnsealArgs {
                name: credential.clone(),
                shares,
                output: args.output.clone(),
                reveal: args.reveal,
                reason: Some(request.reason.clone()),
                hsm: None,
                force_pin: false,
            },
        )?,
        Purpose::Assume { credential } => super::assume::run(
            vault_arg,
            &AssumeArgs {
                common: AssumeCommon {
                    name: credential.clone(),
                    shares,
                    reason: Some(request.reason.clone()),
                    duration: None,
                    chain: Vec::new(),
                    hsm: None,
                    force_pin: false,
                },
                format: args.format,
                cache: false,
            },
        )?,
        Purpose::Rotate { credential } => super::rotate::run(
            vault_arg,
            &RotateArgs {
                name: credential.clone(),
                shares,
                fingerprint: None,
                hsm: None,
                mfa: args.mfa,
            },
        )?,
        Purpose::Rekey(target) => super::rekey::execute(
            super::open_vault(vault_arg)?,
            &shares,
            target,
            &args.handout,
            None,
            None,
            true,
        )?,
        Purpose::Recovery(set) => super::recovery::execute(
            super::open_vault(vault_arg)?,
            &shares,
            &RecoveryDef {
                threshold: set.threshold,
                members: set.members.clone(),
            },
            &args.handout,
            None,
            None,
            true,
        )?,
        Purpose::Drill => super::drill::run(
            vault_arg,
            &DrillArgs {
                shares,
                aws: args.aws,
                hsm: None,
                recovery: false,
                json: false,
            },
        )?,
    }
    ceremony::close(&vault, &request, custodians)?;
    eprintln!(
        "ceremony {} closed; its transport key is destroyed",
        request.id
    );
    Ok(())
}
