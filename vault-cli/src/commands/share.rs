//! `breakglass share verify`: a custodian alone checks their share.

use std::path::Path;

use anyhow::Result;
use vault_core::audit::Event;
use vault_core::quorum::Share;

use crate::cli::ShareVerifyArgs;
use crate::exit::{Failure, fail};
use crate::prompt::own_share;

/// `breakglass share verify`.
pub fn verify(vault_arg: Option<&Path>, args: &ShareVerifyArgs) -> Result<()> {
    crate::hardening::harden()?;
    let vault = super::open_vault(vault_arg)?;
    let mnemonic = own_share(args.share_file.as_deref(), args.identity.as_deref())?;
    let share = Share::parse(&mnemonic, 1).map_err(vault_core::Error::from)?;
    // A share of the quorum, or of the recovery set.
    let manifest = vault.manifest();
    let vault_id = &manifest.vault_id;
    let (set, custodian, recovery) = std::iter::once((&manifest.quorum, false))
        .chain(manifest.recovery.iter().map(|r| (r, true)))
        .find_map(|(set, recovery)| {
            set.verify_share(vault_id, &share)
                .map(|c| (set, c.name.clone(), recovery))
        })
        .ok_or_else(|| {
            fail(
                Failure::Quorum,
                "this share is intact (its checksum holds) but it is not a share of this vault: it matches none of the custodians' commitments",
            )
        })?;
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
                "vault_id": vault.manifest().vault_id, "fingerprint": vault.manifest().fingerprint().display(), "valid": true,
            })
        );
    } else {
        println!(
            "{} OK: custodian {custodian}, group {:?} member {}; vault {} fingerprint {}",
            if recovery { "recovery share" } else { "share" },
            group.name,
            info.member_index + 1,
            vault.manifest().vault_id,
            vault.manifest().fingerprint()
        );
    }
    Ok(())
}
