//! `breakglass share verify`: a custodian alone checks their share.

use std::path::Path;

use anyhow::Result;
use vault_core::audit::Event;
use vault_core::quorum::Share;

use crate::cli::ShareVerifyArgs;
use crate::exit::{Failure, fail};
use crate::prompt::{hidden, interactive, mnemonic_from_file};

/// `breakglass share verify`.
pub fn verify(vault_arg: Option<&Path>, args: &ShareVerifyArgs) -> Result<()> {
    crate::hardening::harden()?;
    let vault = super::open_vault(vault_arg)?;
    let mnemonic = match &args.share_file {
        Some(path) => mnemonic_from_file(path, args.identity.as_deref())?,
        None if interactive() => hidden("your share (hidden): ")?,
        None => {
            return Err(fail(
                Failure::Usage,
                "no --share-file and no terminal to ask on",
            ));
        }
    };
    let share = Share::parse(&mnemonic, 1).map_err(vault_core::Error::from)?;
    let custodian = vault.custodian_of(&share).ok_or_else(|| {
        fail(
            Failure::Quorum,
            "this share is intact (its checksum holds) but it is not a share of this vault: it matches none of the custodians' commitments",
        )
    })?;
    let info = share.info();
    let group = &vault.manifest().quorum.groups[usize::from(info.group_index)];
    let mut event = Event::new("share_verify");
    event.custodians = vec![custodian.clone()];
    if let Err(e) = vault.record(event) {
        eprintln!("breakglass: warning: could not record the check in the audit log: {e:#}");
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "custodian": custodian, "group": group.name, "member": info.member_index + 1,
                "vault_id": vault.manifest().vault_id, "fingerprint": vault.manifest().fingerprint().display(), "valid": true,
            })
        );
    } else {
        println!(
            "share OK: custodian {custodian}, group {:?} member {}; vault {} fingerprint {}",
            group.name,
            info.member_index + 1,
            vault.manifest().vault_id,
            vault.manifest().fingerprint()
        );
    }
    Ok(())
}
