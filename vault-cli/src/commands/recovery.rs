//! `breakglass recovery enable` and `breakglass recover`: a second, stricter share set whose
//! secret stands in for the token when every token is lost.

use std::path::Path;

use anyhow::Result;
use vault_core::trust::Role;
use vault_core::vault::{RecoveryDef, TokenChoice, Vault, validate_recovery};

use crate::cli::{HandoutArgs, RecoverArgs, RecoveryEnableArgs, ShareSources};
use crate::prompt::{CliPins, confirmed, gather_shares, gather_with_recovery};

use super::init::{check_handout, deliver};

/// What `--recovery-threshold` / `recovery enable` show before making a recovery set.
pub(super) const RECOVERY_TRADE_OFF: &str = "\
A recovery share set is a second SLIP-39 share set with a stricter threshold. Its secret
opens the token layer of every credential with no token at all, so that losing every HSM
does not lose the credentials. The price: the HSM is no longer needed to open a credential
by those who hold enough shares of BOTH sets. Colluding custodians who meet the recovery
threshold, with a copy of the vault directory, can open everything without the token, and
no token-signed audit checkpoint records it. Keep recovery shares apart from normal shares
(another safe, another site), and make the recovery threshold as strict as you can bear.";

/// `breakglass recovery enable`.
pub fn enable(vault_arg: Option<&Path>, args: &RecoveryEnableArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    super::require_pin(&vault, args.fingerprint.as_deref())?;
    super::require_role(&vault, Role::SecurityOfficer, "recovery enable")?;
    let def = resolve(&vault, args.threshold, &args.custodians);
    execute(
        vault,
        &args.shares,
        &def,
        &args.handout,
        args.fingerprint.as_deref(),
        args.hsm.as_deref(),
        args.yes,
    )
}

/// The recovery set `threshold` and `custodians` (default: every custodian) describe.
pub(super) fn resolve(vault: &Vault, threshold: u8, custodians: &[String]) -> RecoveryDef {
    RecoveryDef {
        threshold,
        members: if custodians.is_empty() {
            vault
                .manifest()
                .custodian_names()
                .into_iter()
                .map(str::to_owned)
                .collect()
        } else {
            custodians.to_vec()
        },
    }
}

/// Adds the recovery set `def`, with a quorum of the shares from `sources`.
pub(super) fn execute(
    mut vault: Vault,
    sources: &ShareSources,
    def: &RecoveryDef,
    handout: &HandoutArgs,
    fingerprint: Option<&str>,
    hsm: Option<&str>,
    yes: bool,
) -> Result<()> {
    let pinned = super::require_pin(&vault, fingerprint)?;
    if vault.recovery_unrecorded()? {
        return record_interrupted(&vault, sources, &pinned);
    }
    validate_recovery(&vault.manifest().quorum, def)?;
    let members = &def.members;
    let stems: Vec<String> = members.iter().map(|m| format!("{m}.recovery")).collect();
    let recipients = check_handout(handout, &stems, members, &vault.manifest().recipients)?;
    eprintln!("{RECOVERY_TRADE_OFF}\n");
    eprintln!(
        "Recovery set: {} of {} ({}).",
        def.threshold,
        members.len(),
        members.join(", ")
    );
    recipients.tell();
    confirmed(
        yes,
        "enabling recovery weakens the token's part in opening a credential: confirm with --yes when not on a terminal",
        "Enable recovery with this trade-off?",
        "cancelled; nothing changed",
    )?;
    let shares = gather_shares(&vault, sources)?;
    let iteration_exponent = vault.manifest().quorum.iteration_exponent;
    let mut plan = vault.recovery_prepare(&shares, def, iteration_exponent, &pinned)?;
    plan.set_recipients(recipients.remembered(&plan.manifest().recipients, members))?;
    let written = deliver(
        plan.manifest(),
        &vault.identity(),
        plan.shares(),
        handout,
        &recipients,
    )?;
    let committed = vault.recovery_commit(
        plan,
        TokenChoice {
            pins: &CliPins,
            only: hsm,
            force_pin: false,
        },
    );
    let fingerprint = match committed {
        Ok(fingerprint) => fingerprint,
        // Written, but not recorded (the audit log could not take its entry): the shares
        // just handed out open the set in force.
        Err(e) if vault.recovery_unrecorded().unwrap_or(false) => {
            return Err(anyhow::Error::from(e).context(
                "recovery was enabled (vault.json) but its audit entry was not written: keep the \
                 recovery shares just handed out, they are the set in force; once the log takes \
                 entries again, run `breakglass recovery enable` again with a quorum to record it",
            ));
        }
        Err(e) => {
            return Err(anyhow::Error::from(e).context(
                "recovery was not enabled: the recovery shares just handed out are void (delete them)",
            ));
        }
    };
    for path in &written {
        println!("  wrote {}", path.display());
    }
    println!(
        "recovery enabled: {} of {} recovery shares, with a quorum, open any credential without a token",
        def.threshold,
        members.len()
    );
    println!("fingerprint unchanged: {fingerprint} (the share cards stay valid)");
    Ok(())
}

/// `recovery enable` run again after a run interrupted after writing `vault.json` and before
/// its audit entry: the entry is recorded with a quorum; no new set is made, and no share is
/// handed out (the interrupted run handed out the ones in force before it wrote anything).
fn record_interrupted(vault: &Vault, sources: &ShareSources, pinned: &str) -> Result<()> {
    eprintln!(
        "breakglass: the recovery set in vault.json was enabled by a run interrupted before its \
         audit entry: recording it (no new set is made, no share handed out)"
    );
    let shares = gather_shares(vault, sources)?;
    let described = vault.record_interrupted_recovery(&shares, &CliPins, pinned)?;
    println!(
        "recovery was enabled by a run interrupted before its audit entry: the entry is recorded \
         now; the set in force is {described}, and its shares are the ones that run handed out"
    );
    println!(
        "fingerprint unchanged: {} (the share cards stay valid)",
        vault.identity()
    );
    Ok(())
}

/// `breakglass recover`.
pub fn recover(vault_arg: Option<&Path>, args: &RecoverArgs) -> Result<()> {
    super::unseal::open_and_write(
        vault_arg,
        &args.name,
        args.output.as_ref(),
        args.reveal,
        args.reason.as_deref(),
        args.fingerprint.as_deref(),
        |vault, details| {
            let (quorum, recovery) = gather_with_recovery(vault, &args.shares)?;
            eprintln!(
                "breakglass: recovering {} without a token, with the recovery share set",
                args.name
            );
            let unsealed = vault.recover(&args.name, &quorum, &recovery, details)?;
            if let Some(repaired) = &unsealed.repaired {
                eprintln!(
                    "breakglass: the audit log ended with a torn write: its {} bytes were moved to {} \
                     (recorded as audit_repair) so that this recovery is recorded",
                    repaired.tail.len,
                    repaired.moved_to.display()
                );
            }
            Ok(unsealed)
        },
    )
}
