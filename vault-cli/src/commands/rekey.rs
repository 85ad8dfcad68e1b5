//! `breakglass rekey`: a new quorum secret and new shares, with the current quorum's consent.
//! The old shares stop working; every credential is re-sealed; token PINs derived from the
//! quorum change with it. Crash-safe: an interrupted rekey is finished with `--resume`.

use std::path::Path;

use anyhow::{Context, Result};
use vault_core::ceremony::{LayoutGroup, RekeyLayout};
use vault_core::trust::Role;
use vault_core::vault::{GroupDef, RecoveryChange, RecoveryDef, RekeyOptions, Vault};

use crate::cli::{HandoutArgs, RekeyArgs, RekeyLayoutArgs, ShareSources};
use crate::exit::{Failure, fail};
use crate::prompt::{CliPins, ShareSet, confirmed, gather_sets, gather_shares};

use super::init::{check_handout, deliver, layout};

/// `breakglass rekey`.
pub fn run(vault_arg: Option<&Path>, args: &RekeyArgs) -> Result<()> {
    if args.resume {
        return resume(vault_arg, args);
    }
    let vault = super::open_vault(vault_arg)?;
    super::require_pin(&vault, args.fingerprint.as_deref())?;
    super::require_role(&vault, Role::SecurityOfficer, "rekey")?;
    let target = resolve(&vault, &args.target)?;
    execute(
        vault,
        &args.shares,
        &target,
        &args.handout,
        args.iteration_exponent,
        args.fingerprint.as_deref(),
        args.yes,
    )
}

/// The custodians and recovery set a rekey makes, from the options and the vault as it is.
pub(super) fn resolve(vault: &Vault, args: &RekeyLayoutArgs) -> Result<RekeyLayout> {
    let (group_threshold, groups) = layout(&args.layout)?.unwrap_or_else(|| vault.layout());
    let members: Vec<String> = groups.iter().flat_map(|g| g.members.clone()).collect();
    let change = if args.no_recovery {
        RecoveryChange::Drop
    } else if args.recovery_threshold.is_some() || !args.recovery_custodians.is_empty() {
        let current = vault.rekey_recovery(&groups, RecoveryChange::Keep);
        RecoveryChange::Set(RecoveryDef {
            threshold: args
                .recovery_threshold
                .or(current.as_ref().map(|d| d.threshold))
                .ok_or_else(|| {
                    fail(
                        Failure::Usage,
                        "--recovery-custodian needs --recovery-threshold K (this vault has no recovery set)",
                    )
                })?,
            members: if args.recovery_custodians.is_empty() {
                current.map(|d| d.members).unwrap_or_else(|| members.clone())
            } else {
                args.recovery_custodians.clone()
            },
        })
    } else {
        RecoveryChange::Keep
    };
    let recovery = vault.rekey_recovery(&groups, change);
    Ok(RekeyLayout {
        group_threshold,
        groups: groups
            .into_iter()
            .map(|g| LayoutGroup {
                name: g.name,
                threshold: g.threshold,
                members: g.members,
            })
            .collect(),
        recovery: recovery.map(|r| LayoutGroup {
            name: vault_core::vault::RECOVERY_GROUP.into(),
            threshold: r.threshold,
            members: r.members,
        }),
    })
}

/// Carries out a rekey to `target` with a quorum of the current shares from `sources`.
pub(super) fn execute(
    mut vault: Vault,
    sources: &ShareSources,
    target: &RekeyLayout,
    handout: &HandoutArgs,
    iteration_exponent: Option<u8>,
    fingerprint: Option<&str>,
    yes: bool,
) -> Result<()> {
    let pinned = super::require_pin(&vault, fingerprint)?;
    let groups: Vec<GroupDef> = target
        .groups
        .iter()
        .map(|g| GroupDef {
            name: g.name.clone(),
            threshold: g.threshold,
            members: g.members.clone(),
        })
        .collect();
    let recovery = target.recovery.as_ref().map(|r| RecoveryDef {
        threshold: r.threshold,
        members: r.members.clone(),
    });
    let members: Vec<String> = groups.iter().flat_map(|g| g.members.clone()).collect();
    let mut stems = members.clone();
    let mut recipients_for = members.clone();
    if let Some(def) = &recovery {
        stems.extend(def.members.iter().map(|m| format!("{m}.recovery")));
        recipients_for.extend(def.members.iter().cloned());
    }
    let recipients = check_handout(
        handout,
        &stems,
        &recipients_for,
        &vault.manifest().recipients,
    )?;
    // Before any share is read: a token that fails here has seen no share, so there is no
    // attempt to record.
    vault
        .check_quorum_tokens_present()
        .context("checking the tokens before any share is read (nothing was read or changed)")?;
    eprintln!(
        "Rekey of vault {}: new shares for {} ({} of {} groups needed). The current shares stop \
         working, every credential is re-sealed, and token PINs derived from the quorum change.",
        vault.manifest().vault_id,
        members.join(", "),
        target.group_threshold,
        groups.len()
    );
    match &recovery {
        Some(def) => eprintln!(
            "The recovery set is renewed as well: {} of {} ({}); its current shares stop working too.",
            def.threshold,
            def.members.len(),
            def.members.join(", ")
        ),
        None if vault.manifest().recovery.is_some() => {
            eprintln!(
                "The recovery set is dropped: afterwards nothing opens a credential without a token."
            )
        }
        None => {}
    }
    recipients.tell();
    confirmed(
        yes,
        "a rekey replaces every custodian's share: confirm with --yes when not on a terminal",
        "Rekey now?",
        "rekey cancelled; nothing changed",
    )?;
    let shares = gather_shares(&vault, sources)?;
    let mut plan = vault.rekey_prepare(
        &shares,
        RekeyOptions {
            layout: Some((target.group_threshold, groups)),
            iteration_exponent,
            recovery: match recovery {
                Some(def) => RecoveryChange::Set(def),
                None => RecoveryChange::Drop,
            },
        },
        &pinned,
    )?;
    plan.set_recipients(recipients.remembered(&plan.manifest().recipients, &recipients_for))?;
    // The new shares are handed out (written and read back) before anything changes: a crash
    // after this point is finished with --resume, which needs them.
    let written = deliver(
        plan.manifest(),
        &plan.identity(),
        plan.shares(),
        handout,
        &recipients,
    )?;
    let fingerprint = match crate::progress::run("rekey", || vault.rekey_commit(plan, &CliPins)) {
        Ok(fingerprint) => fingerprint,
        Err(e) if vault.pending_rekey().ok().flatten().is_none() => {
            return Err(anyhow::Error::from(e).context(
                "the rekey did not start: nothing changed, and the new shares just handed out are void (delete them)",
            ));
        }
        Err(e) => {
            return Err(anyhow::Error::from(e).context(
                "the rekey was interrupted: what it did is in the journal (rekey.json in the vault), nothing is lost, and every other command refuses until it is finished: run `breakglass rekey --resume` with a quorum of the old and of the new shares",
            ));
        }
    };
    super::pin_fingerprint(&vault.manifest().vault_id, &fingerprint)?;
    for path in &written {
        println!("  wrote {}", path.display());
    }
    println!("rekeyed: the previous shares no longer open anything");
    println!("new fingerprint: {fingerprint} (give it with the new shares; update the runbook)");
    Ok(())
}

fn resume(vault_arg: Option<&Path>, args: &RekeyArgs) -> Result<()> {
    let mut vault = super::open_vault_resuming(vault_arg)?;
    let (previous, target) = vault
        .pending_rekey()?
        .ok_or_else(|| fail(Failure::Usage, "there is no interrupted rekey to resume"))?;
    let vault_id = vault.manifest().vault_id.clone();
    // The journal is vault-directory data: the manifest it resumes from must be the one this
    // machine pinned (or the fingerprint given where nothing is pinned yet), and the library
    // then checks the journal with the old quorum secret.
    let pinned = match (
        super::pinned_fingerprint(&vault_id)?,
        args.fingerprint.as_deref(),
    ) {
        (Some(pinned), _) => pinned,
        (None, Some(given)) => given.to_owned(),
        (None, None) => {
            return Err(
                vault_core::Error::from(vault_core::vault::VaultError::NotPinned { vault_id })
                    .into(),
            );
        }
    };
    // The vault was opened with the journal's manifest before the rekey (authenticated by the
    // old quorum's signature): its identity must be the one pinned here.
    vault.check_identity(&pinned)?;
    if let Some(given) = args.fingerprint.as_deref()
        && vault.check_identity(given).is_err()
    {
        return Err(fail(
            Failure::Integrity,
            format!(
                "the fingerprint given ({given}) is not the one pinned on this machine for vault {vault_id}: a pin is never overridden"
            ),
        ));
    }
    // Finishing a rekey is the same vault change as starting one: a security officer's, by
    // the operators of the manifest it resumes from.
    super::require_role(&vault, Role::SecurityOfficer, "rekey --resume")?;
    let sets = [
        ShareSet {
            label: "old quorum",
            set: &previous.quorum,
        },
        ShareSet {
            label: "new quorum",
            set: &target.quorum,
        },
    ];
    let mut collectors = gather_sets(&vault_id, &args.shares, &sets)?;
    let new = collectors.pop().unwrap_or_default();
    let old = collectors.pop().unwrap_or_default();
    let fingerprint = crate::progress::run("rekey", || vault.rekey_resume(&old, &new, &CliPins))?;
    super::pin_fingerprint(&vault_id, &fingerprint)?;
    println!("rekey finished: the previous shares no longer open anything");
    println!("new fingerprint: {fingerprint}");
    Ok(())
}
