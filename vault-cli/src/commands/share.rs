//! `breakglass share verify|card`: a custodian alone checks their share, or prints their card
//! again.

use std::path::Path;

use anyhow::Result;
use vault_core::audit::Event;
use vault_core::manifest::Quorum;
use vault_core::quorum::Share;
use vault_core::vault::{CustodianShare, Vault};

use crate::card::Issue;
use crate::cli::{ShareCardArgs, ShareVerifyArgs};
use crate::exit::{Failure, fail};
use crate::prompt::own_share;

/// Whose share `share` is: the set (quorum or recovery), the custodian, and whether it is a
/// recovery share.
fn identify<'v>(vault: &'v Vault, share: &Share) -> Result<(&'v Quorum, String, bool)> {
    let manifest = vault.manifest();
    let vault_id = &manifest.vault_id;
    std::iter::once((&manifest.quorum, false))
        .chain(manifest.recovery.iter().map(|r| (r, true)))
        .find_map(|(set, recovery)| {
            set.verify_share(vault_id, share)
                .map(|c| (set, c.name.clone(), recovery))
        })
        .ok_or_else(|| {
            fail(
                Failure::Quorum,
                "this share is intact (its checksum holds) but it is not a share of this vault: it matches none of the custodians' commitments",
            )
        })
}

/// `breakglass share verify`.
pub fn verify(vault_arg: Option<&Path>, args: &ShareVerifyArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    let mnemonic = own_share(args.share_file.as_deref(), args.identity.as_deref())?;
    let share = Share::parse(&mnemonic, 1).map_err(vault_core::Error::from)?;
    // A share of the quorum, or of the recovery set.
    let (set, custodian, recovery) = identify(&vault, &share)?;
    let info = share.info();
    let group = &set.groups[usize::from(info.group_index)];
    let mut event =
        Event::new("share_verify").detail("set", if recovery { "recovery" } else { "quorum" });
    event.custodians = vec![custodian.clone()];
    if let Err(e) = vault.record(event) {
        eprintln!("breakglass: warning: could not record the check in the audit log: {e:#}");
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "custodian": custodian, "group": group.name, "member": info.member_index + 1,
                "recovery": recovery,
                "vault_id": vault.manifest().vault_id, "fingerprint": vault.identity(), "valid": true,
            })
        );
    } else {
        println!(
            "{} OK: custodian {custodian}, group {:?} member {}; vault {} fingerprint {}",
            if recovery { "recovery share" } else { "share" },
            group.name,
            info.member_index + 1,
            vault.manifest().vault_id,
            vault.identity()
        );
    }
    Ok(())
}

/// When the share set in use was issued: the time of the last audit entry that made it (init
/// or rekey; for the recovery set also recovery enable). `None` when the log has no such entry.
fn set_issued(vault: &Vault, recovery: bool) -> Option<String> {
    let makers: &[&str] = if recovery {
        &["init", "rekey", "recovery_enable"]
    } else {
        &["init", "rekey"]
    };
    let entries = vault.audit().entries().ok()?;
    entries
        .iter()
        .rev()
        .find(|e| makers.contains(&e.event.as_str()))
        .map(|e| e.time.clone())
}

/// `breakglass share card`: the card of one share, printed again from the share itself.
pub fn card(vault_arg: Option<&Path>, args: &ShareCardArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    let mnemonic = own_share(args.share_file.as_deref(), args.identity.as_deref())?;
    let share = Share::parse(&mnemonic, 1).map_err(vault_core::Error::from)?;
    let (set, custodian, recovery) = identify(&vault, &share)?;
    let group = set.groups[usize::from(share.info().group_index)]
        .name
        .clone();
    let issued = CustodianShare {
        custodian: custodian.clone(),
        group,
        recovery,
        share,
    };
    let issue = Issue {
        set_issued: set_issued(&vault, recovery),
        printed: vault_core::clock::rfc3339(vault_core::clock::now_unix()),
    };
    let path = args
        .out
        .join(format!("{}.html", crate::card::stem(&issued)));
    if path.exists() {
        return Err(fail(
            Failure::Usage,
            format!(
                "{} exists: breakglass never overwrites a share card (destroy the old card first, or pick another --out)",
                path.display()
            ),
        ));
    }
    let written = crate::card::write(
        vault.manifest(),
        &vault.identity(),
        std::slice::from_ref(&issued),
        &args.out,
        &issue,
    )?;
    let mut event =
        Event::new("share_card").detail("set", if recovery { "recovery" } else { "quorum" });
    event.custodians = vec![custodian.clone()];
    if let Err(e) = vault.record(event) {
        eprintln!("breakglass: warning: could not record the reissue in the audit log: {e:#}");
    }
    for path in written {
        println!(
            "{} card of custodian {custodian} written to {} (0600): print it, then delete the file",
            if recovery { "recovery share" } else { "share" },
            path.display()
        );
    }
    Ok(())
}
