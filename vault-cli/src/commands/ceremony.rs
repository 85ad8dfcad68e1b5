//! `breakglass ceremony open|contribute|status|close|cancel`: a quorum assembled from wherever the
//! custodians are, over any channel. The ceremony's state and checks are the library's
//! (`vault_core::ceremony`); this file turns options into a [`Purpose`], talks to the
//! custodian, and carries the purpose out with the gathered shares.

use std::path::Path;

use anyhow::{Context, Result};
use vault_core::ceremony::{self, LayoutGroup, Opening, Purpose};
use vault_core::quorum::Share;
use vault_core::trust::Role;
use vault_core::trust::certified::SeenManifest;
use vault_core::trust::identity::PinnedIdentity;
use vault_core::trust::request::{SignedRequest, VerifiedRequest};
use vault_core::trust::untrusted_text::render_untrusted;
use vault_core::vault::{RecoveryDef, Vault};

use crate::cli::{
    AssumeArgs, AssumeCommon, CeremonyCancelArgs, CeremonyCloseArgs, CeremonyContributeArgs,
    CeremonyOpenArgs, CeremonyStatusArgs, DrillArgs, PurposeArg, RekeyLayoutArgs, RotateArgs,
    ShareSources, UnsealArgs,
};
use crate::exit::{Failure, fail};
use crate::prompt::{confirmed, own_share};

use super::share::FileHeader;

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
    super::require_pin(&vault, args.fingerprint.as_deref())?;
    // Only a security officer opens ceremonies: their key, on this machine, signs the request.
    let requester = ceremony::requester(&vault)?;
    destroy_expired(&vault)?;
    let purpose = purpose(&vault, args)?;
    let signed = ceremony::open(
        &vault,
        &Opening {
            requester: &requester,
            purpose,
            reason: &args.reason,
            lifetime_seconds: args.expires.seconds(),
            out: &args.out,
        },
    )?;
    let request = signed.request();
    println!(
        "ceremony {} opened until {}; request signed by security officer {} and written to {}",
        request.id,
        request.expires,
        signed.requester,
        args.out.display()
    );
    println!(
        "each custodian runs: breakglass ceremony contribute {} --out CONTRIBUTION",
        args.out.display()
    );
    Ok(())
}

/// The header of the share file at `path` (nothing when there is no file, or no header).
fn share_header(path: Option<&Path>, identity: Option<&Path>) -> FileHeader {
    path.and_then(|p| crate::prompt::share_file_text(p, identity).ok())
        .map(|text| FileHeader::parse(&text))
        .unwrap_or_default()
}

/// The vault identity the custodian holds: their share file's, and `--fingerprint` (from their
/// card) when given; both must agree. Neither is a usage error: the request alone cannot say
/// which vault it should be for.
fn custodian_identity(header: &FileHeader, given: Option<&str>) -> Result<PinnedIdentity> {
    let parse = |text: &str| PinnedIdentity::parse(text).map_err(vault_core::Error::from);
    match (header.fingerprint.as_deref(), given) {
        (Some(file), Some(card)) => {
            let (file, card) = (parse(file)?, parse(card)?);
            if file != card {
                return Err(fail(
                    Failure::Integrity,
                    format!(
                        "your share file names fingerprint {file}, but --fingerprint is {card}: not contributed (check your card and share file)"
                    ),
                ));
            }
            Ok(file)
        }
        (Some(file), None) => Ok(parse(file)?),
        (None, Some(card)) => Ok(parse(card)?),
        (None, None) => Err(fail(
            Failure::Usage,
            "your share file names no vault fingerprint (or there is no share file): pass --fingerprint as printed on your share card, so the request can be checked against it",
        )),
    }
}

/// Shows the verified request to the custodian, every field written by the requester made
/// visible rather than obeyed by the terminal.
fn show_request(verified: &VerifiedRequest) {
    let shown: std::collections::BTreeMap<&str, String> = verified.shown().into_iter().collect();
    let field = |label: &str| shown.get(label).cloned().unwrap_or_default();
    eprintln!("ceremony {} of vault {}", field("Ceremony"), field("Vault"));
    eprintln!(
        "  security officer {} asks to {}",
        field("Requester"),
        field("Asks to")
    );
    eprintln!("  because: {}", field("Reason"));
    eprintln!("  contributions accepted until {}", field("Expires"));
    eprintln!(
        "  signed by {}, a security officer of this vault (certified manifest version {})",
        field("Requester"),
        field("Manifest version")
    );
    eprintln!(
        "  vault fingerprint {}: the one your share names; compare it with your share card too",
        field("Fingerprint")
    );
}

/// This machine's record of the vault's manifest, if it has one (a custodian's machine
/// usually has none): an older manifest than it has seen is refused.
fn seen_manifest(vault_id: &str) -> Result<Option<SeenManifest>> {
    let Some(config) = vault_core::trust::machine::ConfigDir::from_env() else {
        return Ok(None);
    };
    Ok(
        vault_core::trust::machine::MachineAnchor::read(&config, vault_id)
            .map_err(vault_core::Error::from)?
            .map(|anchor| anchor.manifest),
    )
}

/// Remembers on this machine the manifest version a verified request carried, so that a later
/// request over an older version (one that still lists an operator the quorum has removed
/// since, say) is refused here. Kept in the machine's anchor for the vault: made when there is
/// none (unless this machine pinned another fingerprint for the vault), moved forward when it
/// is for the same identity, never moved across identities (a rekey's succession does that).
/// Best effort, like every anchor write: a machine that cannot write remembers less.
fn remember_manifest(verified: &VerifiedRequest) {
    use vault_core::trust::machine::{ConfigDir, MachineAnchor};
    let Some(config) = ConfigDir::from_env() else {
        return;
    };
    let manifest = verified.manifest();
    let vault_id = manifest.vault_id();
    let anchor = match MachineAnchor::read(&config, vault_id) {
        Ok(Some(mut anchor)) if anchor.is_for(manifest.identity()) => {
            if anchor.manifest.version >= manifest.version()
                || anchor.advance_manifest(manifest).is_err()
            {
                return;
            }
            anchor
        }
        Ok(None) => {
            let pinned_elsewhere = super::pinned_fingerprint(vault_id)
                .ok()
                .flatten()
                .is_some_and(|known| {
                    !PinnedIdentity::parse(&known).is_ok_and(|p| p.matches(manifest.identity()))
                });
            if pinned_elsewhere {
                return;
            }
            MachineAnchor::new(manifest)
        }
        _ => return,
    };
    let _ = anchor.write(&config);
}

/// `breakglass ceremony contribute` (custodian side, no vault needed). The request is checked
/// offline before the share is read: signed by a security officer of the vault whose identity
/// the share file (or card) names, and not expired.
pub fn contribute(args: &CeremonyContributeArgs) -> Result<()> {
    let bytes = std::fs::read(&args.request)
        .with_context(|| format!("reading {}", args.request.display()))?;
    let refused = || format!("{}: not contributed", args.request.display());
    let signed = SignedRequest::from_bytes(&bytes)
        .map_err(vault_core::Error::from)
        .with_context(refused)?;
    // A share file of another vault is refused before anything is asked or written.
    let header = share_header(args.share_file.as_deref(), args.identity.as_deref());
    let request_vault = signed.request().vault_id.clone();
    if let Some(vault_id) = &header.vault_id
        && *vault_id != request_vault
    {
        return Err(fail(
            Failure::Quorum,
            format!(
                "your share file is a share of vault {}, but this request is for vault {}: not contributed (check that you picked the right share file)",
                render_untrusted(vault_id),
                render_untrusted(&request_vault)
            ),
        ));
    }
    let pinned = custodian_identity(&header, args.fingerprint.as_deref())?;
    let seen = seen_manifest(&request_vault).with_context(refused)?;
    let verified = signed
        .verify(&pinned, seen.as_ref(), vault_core::clock::now_unix())
        .map_err(vault_core::Error::from)
        .with_context(refused)?;
    remember_manifest(&verified);
    show_request(&verified);
    confirmed(
        args.yes,
        "not on a terminal: pass --yes once you have checked the request",
        "Contribute your share to this ceremony?",
        "not contributed",
    )?;
    let mnemonic = own_share(args.share_file.as_deref(), args.identity.as_deref())?;
    // Checked before it leaves this machine: words and checksum, and that it is one of this
    // vault's shares (the coordinator checks again, and that it is this custodian's).
    let share = Share::parse(&mnemonic, 1).map_err(vault_core::Error::from)?;
    let owner = verified.custodian_of(&share).map_err(|_| {
        fail(
            Failure::Quorum,
            format!(
                "the share you gave is none of vault {}'s custodians' shares (another vault's, or one retired by a rekey): not contributed",
                render_untrusted(&request_vault)
            ),
        )
    })?;
    let custodian = args
        .custodian
        .clone()
        .or(header.custodian)
        .unwrap_or_else(|| owner.to_owned());
    let contribution =
        vault_core::ceremony::Contribution::seal(verified.request(), &custodian, &mnemonic)?;
    vault_core::store::write_new_secret_file(&args.out, &contribution.to_bytes())?;
    println!(
        "contribution of {custodian} written to {}: send it to the coordinator by any channel",
        args.out.display()
    );
    Ok(())
}

/// Destroys the transport key of every expired ceremony of the vault, saying so.
fn destroy_expired(vault: &Vault) -> Result<()> {
    for id in ceremony::destroy_expired(vault, vault_core::clock::now_unix())? {
        eprintln!("ceremony {id} has expired: its transport key is destroyed");
    }
    Ok(())
}

/// `breakglass ceremony status`.
pub fn status(vault_arg: Option<&Path>, args: &CeremonyStatusArgs) -> Result<()> {
    crate::hardening::harden()?;
    let vault = super::open_vault(vault_arg)?;
    destroy_expired(&vault)?;
    let (gathered, rejected) = ceremony::gather_each(&vault, &args.id, &args.contributions)?;
    let request = &gathered.request;
    let now = vault_core::clock::now_unix();
    let left = vault_core::clock::parse_rfc3339(&request.expires)
        .map(|t| t.saturating_sub(now))
        .unwrap_or(0);
    let progress = gathered.shares.progress();
    let groups: Vec<(String, usize, u8)> = vault
        .manifest()
        .quorum
        .groups
        .iter()
        .enumerate()
        .map(|(index, group)| {
            let have = progress
                .groups
                .iter()
                .find(|(g, _, _)| usize::from(*g) == index + 1)
                .map_or(0, |(_, h, _)| usize::from(*h));
            (group.name.clone(), have, group.threshold)
        })
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "id": request.id,
                "purpose": request.purpose.name(),
                "credential": request.purpose.credential(),
                "reason": request.reason,
                "requester": request.requester,
                "created": request.created,
                "expires": request.expires,
                "seconds_left": left,
                "contributed": gathered.custodians,
                "rejected": rejected.iter().map(|r| serde_json::json!({
                    "file": r.file.display().to_string(),
                    "error": with_causes(&r.error),
                })).collect::<Vec<_>>(),
                "groups": groups.iter().map(|(name, have, needed)| serde_json::json!({
                    "name": name, "contributed": have, "needed": needed,
                })).collect::<Vec<_>>(),
                "quorum_met": progress.complete,
            })
        );
        return Ok(());
    }
    println!(
        "ceremony {}: {} {} ({})",
        request.id,
        request.purpose.name(),
        request.purpose.credential().unwrap_or(""),
        vault_core::trust::untrusted_text::render_untrusted(&request.reason)
    );
    println!("expires at {} ({} min left)", request.expires, left / 60);
    println!(
        "contributed: {}",
        if gathered.custodians.is_empty() {
            "nobody yet".to_owned()
        } else {
            gathered.custodians.join(", ")
        }
    );
    for rejected in &rejected {
        println!("  not accepted: {}", with_causes(&rejected.error));
    }
    for (name, have, needed) in &groups {
        println!("  group {name}: {have} of {needed} needed");
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

/// An error and its causes on one line.
fn with_causes(error: &vault_core::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        let line = c.to_string();
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = c.source();
    }
    text
}

/// `breakglass ceremony cancel`.
pub fn cancel(vault_arg: Option<&Path>, args: &CeremonyCancelArgs) -> Result<()> {
    crate::hardening::harden()?;
    let vault = super::open_vault(vault_arg)?;
    super::require_pin(&vault, args.fingerprint.as_deref())?;
    super::require_role(&vault, Role::SecurityOfficer, "ceremony cancel")?;
    let request = ceremony::cancel(&vault, &args.id)?;
    println!(
        "ceremony {} ({}) cancelled: its transport key is destroyed, so no contribution sent to it can be opened",
        request.id,
        request.purpose.name()
    );
    Ok(())
}

/// Before any contribution is opened: closing a ceremony carries out its purpose on this
/// machine, so a rekey or a recovery set needs this machine's operator to be a security
/// officer, and a rotation a cloud administrator, as the commands themselves do. The request
/// is read from the vault and verified as `close` verifies it; one that does not verify (or a
/// malformed id) is left for `close` to refuse with its own message.
fn require_closer_role(vault: &Vault, id: &str) -> Result<()> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(());
    }
    let file = vault
        .store()
        .path(vault_core::store::CEREMONIES)
        .join(format!("{id}.request.json"));
    let Some(signed) = std::fs::read(&file)
        .ok()
        .and_then(|bytes| SignedRequest::from_bytes(&bytes).ok())
    else {
        return Ok(());
    };
    let pin = PinnedIdentity::of(vault.certified().identity());
    let Ok(verified) = signed.verify(&pin, None, vault_core::clock::now_unix()) else {
        return Ok(());
    };
    let (role, command) = match &verified.request().purpose {
        Purpose::Rekey(_) => (Role::SecurityOfficer, "ceremony close (a rekey)"),
        Purpose::Recovery(_) => (Role::SecurityOfficer, "ceremony close (recovery enable)"),
        Purpose::Rotate { .. } => (Role::CloudAdministrator, "ceremony close (a rotation)"),
        _ => return Ok(()),
    };
    super::require_role(vault, role, command)?;
    Ok(())
}

/// `breakglass ceremony close`: checks everything, then carries out the purpose.
pub fn close(vault_arg: Option<&Path>, args: &CeremonyCloseArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    super::require_pin(&vault, args.fingerprint.as_deref())?;
    require_closer_role(&vault, &args.id)?;
    destroy_expired(&vault)?;
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
                fingerprint: None,
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
                    fingerprint: None,
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
                fingerprint: None,
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
