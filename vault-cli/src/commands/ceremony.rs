//! `breakglass ceremony open|contribute|status|close`: a quorum assembled from wherever the
//! custodians are, over any channel.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ring::rand::SecureRandom;
use secrecy::ExposeSecret;
use vault_core::audit::{Actor, Event};
use vault_core::ceremony::{AuditHead, Contribution, LayoutGroup, REQUEST_FORMAT, Request};
use vault_core::hpke::X25519SecretKey;
use vault_core::quorum::{Collector, Share};
use vault_core::store::write_new_secret_file;
use vault_core::vault::Vault;

use crate::cli::{
    AssumeArgs, AssumeCommon, CeremonyCloseArgs, CeremonyContributeArgs, CeremonyOpenArgs,
    CeremonyStatusArgs, DrillArgs, RotateArgs, ShareSources, UnsealArgs,
};
use crate::exit::{Failure, fail};
use crate::prompt::{confirmed, own_share};

fn duration_seconds(text: &str) -> Result<u64> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| {
        fail(
            Failure::Usage,
            format!("--expires {text:?}: expected e.g. 30m, 4h, 2d"),
        )
    })?;
    let factor = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(fail(
                Failure::Usage,
                format!("--expires {text:?}: expected e.g. 30m, 4h, 2d"),
            ));
        }
    };
    Ok(n * factor)
}

fn paths(vault: &Vault, id: &str) -> Result<(PathBuf, PathBuf)> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(fail(Failure::Usage, format!("{id:?} is not a ceremony id")));
    }
    let dir = vault.store().path("ceremonies");
    Ok((
        dir.join(format!("{id}.request.json")),
        dir.join(format!("{id}.key")),
    ))
}

/// `breakglass ceremony open`.
pub fn open(vault_arg: Option<&Path>, args: &CeremonyOpenArgs) -> Result<()> {
    crate::hardening::harden()?;
    let vault = super::open_vault(vault_arg)?;
    super::check_pin(&vault)?;
    if matches!(args.purpose.as_str(), "unseal" | "assume" | "rotate") {
        let name = args.credential.as_deref().ok_or_else(|| {
            fail(
                Failure::Usage,
                format!("--purpose {} needs --credential NAME", args.purpose),
            )
        })?;
        vault.envelope(name)?;
    }
    let given = &args.rekey;
    let layout_given = !given.layout.custodians.is_empty()
        || !given.layout.groups.is_empty()
        || given.layout.threshold.is_some()
        || given.recovery_threshold.is_some()
        || !given.recovery_custodians.is_empty()
        || given.no_recovery;
    let rekey = match args.purpose.as_str() {
        "rekey" => {
            let target = super::rekey::resolve(&vault, given)?;
            eprintln!("the rekey makes: {}", target.describe());
            Some(target)
        }
        _ if layout_given && args.purpose != "recovery" => {
            return Err(fail(
                Failure::Usage,
                "custodian and recovery options are for --purpose rekey (and recovery)",
            ));
        }
        _ => None,
    };
    let recovery = match args.purpose.as_str() {
        "recovery" => {
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
            let def = super::recovery::resolve(&vault, threshold, &given.recovery_custodians);
            vault_core::vault::validate_recovery(&vault.manifest().quorum, &def)?;
            Some(LayoutGroup {
                name: vault_core::vault::RECOVERY_GROUP.into(),
                threshold: def.threshold,
                members: def.members,
            })
        }
        _ => None,
    };
    let mut id = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| anyhow::anyhow!("the random generator failed"))?;
    let id = hex::encode(id);
    let transport = X25519SecretKey::generate()?;
    let head = vault.audit().head()?;
    let now = vault_core::clock::now_unix();
    let actor = Actor::current();
    let request = Request {
        format: REQUEST_FORMAT.into(),
        id: id.clone(),
        vault_id: vault.manifest().vault_id.clone(),
        fingerprint: vault.manifest().fingerprint().display(),
        purpose: args.purpose.clone(),
        credential: args.credential.clone(),
        reason: args.reason.clone(),
        requester: format!("{}@{}", actor.user, actor.host),
        created: vault_core::clock::rfc3339(now),
        expires: vault_core::clock::rfc3339(now + duration_seconds(&args.expires)?),
        audit_head: AuditHead {
            seq: head.seq,
            hash: head.hash,
        },
        transport_public_key: hex::encode(transport.public_key_bytes()),
        rekey,
        recovery,
    };
    let (request_path, key_path) = paths(&vault, &id)?;
    write_new_secret_file(
        &key_path,
        hex::encode(transport.to_secret_bytes().expose_secret()).as_bytes(),
    )?;
    write_new_secret_file(&request_path, &request.to_bytes())?;
    write_new_secret_file(&args.out, &request.to_bytes())?;
    let mut event = Event::new("ceremony_opened")
        .detail("purpose", args.purpose.clone())
        .detail("reason", args.reason.clone())
        .detail("expires", request.expires.clone());
    event.ceremony = Some(id.clone());
    event.credential = args.credential.clone();
    vault.record(event)?;
    println!(
        "ceremony {id} opened until {}; request written to {}",
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
    crate::hardening::harden()?;
    let bytes = std::fs::read(&args.request)
        .with_context(|| format!("reading {}", args.request.display()))?;
    let request = Request::from_bytes(&bytes, &format!("request {}", args.request.display()))?;
    request.check_not_expired(vault_core::clock::now_unix())?;
    eprintln!("ceremony {} of vault {}", request.id, request.vault_id);
    let what = match (request.purpose.as_str(), request.credential.as_deref()) {
        ("rekey", _) => format!(
            "the vault: YOUR CURRENT SHARE STOPS WORKING; new shares for {}",
            request
                .rekey
                .as_ref()
                .map(|r| r.describe())
                .unwrap_or_else(|| "the same custodians".into())
        ),
        ("drill", _) => "(all credentials: a drill)".to_owned(),
        ("recovery", _) => format!(
            "enable a recovery set: {}; with a quorum, it would open every credential WITHOUT THE TOKEN",
            request
                .recovery
                .as_ref()
                .map(|r| format!("{} of [{}]", r.threshold, r.members.join(", ")))
                .unwrap_or_default()
        ),
        ("rotate", Some(name)) => {
            format!("{name}: a new AWS key is made and sealed, the old one deleted")
        }
        (_, Some(name)) => name.to_owned(),
        (_, None) => String::new(),
    };
    eprintln!("  {} asks to {} {what}", request.requester, request.purpose);
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
    let contribution = Contribution::seal(&request, &custodian, &mnemonic)?;
    write_new_secret_file(&args.out, &contribution.to_bytes())?;
    println!(
        "contribution of {custodian} written to {}: send it to the coordinator by any channel",
        args.out.display()
    );
    Ok(())
}

/// Loads the request and transport key; opens and checks every contribution.
fn gather(vault: &Vault, id: &str, files: &[PathBuf]) -> Result<(Request, Collector, Vec<String>)> {
    let (request_path, key_path) = paths(vault, id)?;
    let request = Request::from_bytes(
        &std::fs::read(&request_path).map_err(|_| {
            fail(
                Failure::Usage,
                format!("no open ceremony {id} in this vault (closed, or never opened)"),
            )
        })?,
        &format!("request {}", request_path.display()),
    )?;
    let key_hex = zeroize::Zeroizing::new(std::fs::read_to_string(&key_path).map_err(|_| {
        fail(
            Failure::Other,
            format!("the transport key of ceremony {id} is gone: open a new ceremony"),
        )
    })?);
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(key_hex.trim(), key.as_mut()).map_err(|_| {
        fail(
            Failure::Integrity,
            format!("{} is damaged", key_path.display()),
        )
    })?;
    let transport = X25519SecretKey::from_bytes(&key);
    let mut collector = Collector::new();
    let mut custodians = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, file) in files.iter().enumerate() {
        let what = format!("contribution {}", file.display());
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let contribution = Contribution::from_bytes(&bytes, &what)?;
        let mnemonic = contribution.open(&request, &transport, &what)?;
        if !seen.insert(contribution.custodian.clone()) {
            return Err(fail(
                Failure::Quorum,
                format!("{what}: {} has contributed already", contribution.custodian),
            ));
        }
        let share = Share::parse(&mnemonic, i + 1)
            .map_err(vault_core::Error::from)
            .with_context(|| what.clone())?;
        match vault.custodian_of(&share) {
            Some(owner) if owner == contribution.custodian => {}
            Some(owner) => {
                return Err(fail(
                    Failure::Quorum,
                    format!(
                        "{what}: signed as {} but holds the share of {owner}",
                        contribution.custodian
                    ),
                ));
            }
            None => {
                return Err(fail(
                    Failure::Quorum,
                    format!(
                        "{what}: the share of {} does not belong to this vault",
                        contribution.custodian
                    ),
                ));
            }
        }
        collector
            .add(i + 1, share)
            .map_err(vault_core::Error::from)
            .with_context(|| what.clone())?;
        custodians.push(contribution.custodian);
    }
    Ok((request, collector, custodians))
}

/// `breakglass ceremony status`.
pub fn status(vault_arg: Option<&Path>, args: &CeremonyStatusArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    let (request, collector, custodians) = gather(&vault, &args.id, &args.contributions)?;
    let now = vault_core::clock::now_unix();
    let left = vault_core::clock::parse_rfc3339(&request.expires)
        .map(|t| t.saturating_sub(now))
        .unwrap_or(0);
    println!(
        "ceremony {}: {} {} ({})",
        request.id,
        request.purpose,
        request.credential.as_deref().unwrap_or(""),
        request.reason
    );
    println!("time left: {} min", left / 60);
    println!(
        "contributed: {}",
        if custodians.is_empty() {
            "nobody yet".to_owned()
        } else {
            custodians.join(", ")
        }
    );
    let progress = collector.progress();
    let m = vault.manifest();
    for (index, group) in m.quorum.groups.iter().enumerate() {
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
    crate::hardening::harden()?;
    let vault = super::open_vault(vault_arg)?;
    super::check_pin(&vault)?;
    let (request, collector, custodians) = gather(&vault, &args.id, &args.contributions)?;
    request.check_not_expired(vault_core::clock::now_unix())?;
    if request.audit_head.seq > 0
        && vault
            .audit()
            .hash_of_line(request.audit_head.seq)?
            .as_deref()
            != Some(request.audit_head.hash.as_str())
    {
        return Err(fail(
            Failure::Integrity,
            format!(
                "the audit log no longer holds the head ceremony {} was opened on (line {}): history was changed",
                request.id, request.audit_head.seq
            ),
        ));
    }
    let shares = ShareSources {
        share_files: Vec::new(),
        shares_stdin: false,
        identity: None,
        collected: std::cell::RefCell::new(Some(collector)),
    };
    let credential = request.credential.clone().unwrap_or_default();
    match request.purpose.as_str() {
        "unseal" => super::unseal::run(
            vault_arg,
            &UnsealArgs {
                name: credential,
                shares,
                output: args.output.clone(),
                reveal: args.reveal,
                hsm: None,
                force_pin: false,
            },
        )?,
        "assume" => super::assume::run(
            vault_arg,
            &AssumeArgs {
                common: AssumeCommon {
                    name: credential,
                    shares,
                    reason: Some(request.reason.clone()),
                    duration: None,
                    chain: Vec::new(),
                    hsm: None,
                    force_pin: false,
                },
                format: args.format.clone(),
                cache: false,
            },
        )?,
        "rotate" => super::rotate::run(
            vault_arg,
            &RotateArgs {
                name: credential,
                shares,
                fingerprint: None,
                hsm: None,
                mfa: args.mfa,
            },
        )?,
        "rekey" => {
            let target = request.rekey.clone().ok_or_else(|| {
                fail(
                    Failure::Integrity,
                    format!(
                        "ceremony {}: a rekey request without its layout",
                        request.id
                    ),
                )
            })?;
            super::rekey::execute(
                super::open_vault(vault_arg)?,
                &shares,
                &target,
                &args.handout,
                None,
                None,
                true,
            )?
        }
        "recovery" => {
            let set = request.recovery.clone().ok_or_else(|| {
                fail(
                    Failure::Integrity,
                    format!(
                        "ceremony {}: a recovery request without its set",
                        request.id
                    ),
                )
            })?;
            super::recovery::execute(
                super::open_vault(vault_arg)?,
                &shares,
                &vault_core::vault::RecoveryDef {
                    threshold: set.threshold,
                    members: set.members,
                },
                &args.handout,
                None,
                None,
                true,
            )?
        }
        _ => super::drill::run(
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
    let (_, key_path) = paths(&vault, &request.id)?;
    std::fs::remove_file(&key_path).with_context(|| format!("removing {}", key_path.display()))?;
    let mut event = Event::new("ceremony_closed").detail("purpose", request.purpose.clone());
    event.ceremony = Some(request.id.clone());
    event.custodians = custodians;
    vault.record(event)?;
    eprintln!(
        "ceremony {} closed; its transport key is destroyed",
        request.id
    );
    Ok(())
}
