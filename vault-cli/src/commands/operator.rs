//! `breakglass operator key|list|add|remove`: this machine's operator key, the operators the
//! quorum certified, and adding or removing one (a vault change with a quorum and a token).

use std::path::Path;

use anyhow::Result;
use ring::digest::{SHA256, digest};
use vault_core::trust::{Operator, OperatorKey, Role};
use vault_core::vault::{OperatorChange, OperatorsChanged};

use crate::cli::{OperatorAddArgs, OperatorListArgs, OperatorRemoveArgs, RoleArg};
use crate::prompt::{CliPins, gather_shares};

/// The short form of an operator's public key people compare: the first 16 bytes of its
/// SHA-256, hex in groups of four.
fn key_fingerprint(public_key_hex: &str) -> String {
    let bytes = hex::decode(public_key_hex).unwrap_or_default();
    let hash = hex::encode(&digest(&SHA256, &bytes).as_ref()[..16]);
    hash.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

fn roles_text(operator: &Operator) -> String {
    operator
        .roles
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `breakglass operator key`: prints this machine's public key for the vault (made if
/// missing).
pub fn key(vault_arg: Option<&Path>) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    let vault_id = vault.manifest().vault_id.clone();
    let (key, created) = match OperatorKey::load(vault.config(), &vault_id)? {
        Some(key) => (key, false),
        None => (OperatorKey::generate(vault.config(), &vault_id)?, true),
    };
    let public = key.public_key().to_hex();
    println!("{public}");
    if created {
        eprintln!(
            "made this machine's operator key for vault {vault_id} in {} (0600; it never leaves this machine)",
            key.path().display()
        );
    }
    eprintln!("key fingerprint: {}", key_fingerprint(&public));
    match vault
        .certified()
        .operators()
        .iter()
        .find(|o| o.public_key == public)
    {
        Some(operator) => eprintln!(
            "this key is operator {} of the vault ({})",
            operator.name,
            roles_text(operator)
        ),
        None => eprintln!(
            "not an operator of the vault yet: give the key above to a security officer, who runs\n  breakglass operator add NAME --role cloud-admin --key {public} --share-file ..."
        ),
    }
    Ok(())
}

/// `breakglass operator list`.
pub fn list(vault_arg: Option<&Path>, args: &OperatorListArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    super::check_pin(&vault)?;
    let operators = vault.certified().operators();
    if args.json {
        let list: Vec<_> = operators
            .iter()
            .map(|o| {
                serde_json::json!({
                    "name": o.name,
                    "roles": o.roles,
                    "public_key": o.public_key,
                    "key_fingerprint": key_fingerprint(&o.public_key),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "operators of vault {} (manifest version {}):",
        vault.manifest().vault_id,
        vault.certified().version()
    );
    for operator in operators {
        println!(
            "  {:<24} key {}  {}",
            operator.name,
            key_fingerprint(&operator.public_key),
            roles_text(operator)
        );
    }
    Ok(())
}

/// Makes `change` with the quorum from `shares`: who runs it, the change itself and the
/// fingerprint are checked before any share is asked for.
fn change(
    vault_arg: Option<&Path>,
    change: &OperatorChange,
    shares: &crate::cli::ShareSources,
    fingerprint: Option<&str>,
) -> Result<()> {
    let mut vault = super::open_vault(vault_arg)?;
    let pinned = super::require_pin(&vault, fingerprint)?;
    let (_, acting) = vault.acting_operator(Role::SecurityOfficer)?;
    // A run interrupted after writing vault.json and before its entry made the change
    // already: running it again records the entry.
    if !vault.operator_change_unrecorded(change)? {
        vault.operators_after(change)?;
    }
    let shares = gather_shares(&vault, shares)?;
    let changed = crate::progress::run("operator", || {
        vault.change_operators(&shares, change, &CliPins, &pinned)
    })?;
    let version = match changed {
        OperatorsChanged::Made(version) => version,
        OperatorsChanged::RecordedLate(version) => {
            println!(
                "operator {} was {} by a run interrupted before its audit entry: the entry is \
                 recorded now; manifest version {version}",
                change.name(),
                match change {
                    OperatorChange::Add { .. } => "added",
                    OperatorChange::Remove { .. } => "removed",
                }
            );
            println!(
                "fingerprint unchanged: {} (the share cards stay valid)",
                vault.identity()
            );
            return Ok(());
        }
    };
    match change {
        OperatorChange::Add { name, .. } => {
            let added = vault.certified().operator(name)?;
            println!(
                "operator {name} added ({}) by {}; manifest version {version}",
                roles_text(added),
                acting.name
            );
        }
        OperatorChange::Remove { name } => {
            println!(
                "operator {name} removed by {}; manifest version {version}",
                acting.name
            );
        }
    }
    println!(
        "fingerprint unchanged: {} (the share cards stay valid)",
        vault.identity()
    );
    Ok(())
}

/// `breakglass operator add`.
pub fn add(vault_arg: Option<&Path>, args: &OperatorAddArgs) -> Result<()> {
    let roles = args
        .roles
        .iter()
        .map(|r| match r {
            RoleArg::SecurityOfficer => Role::SecurityOfficer,
            RoleArg::CloudAdmin => Role::CloudAdministrator,
        })
        .collect();
    let added = OperatorChange::Add {
        name: args.name.clone(),
        roles,
        key: args.key.clone(),
    };
    change(vault_arg, &added, &args.shares, args.fingerprint.as_deref())
}

/// `breakglass operator remove`.
pub fn remove(vault_arg: Option<&Path>, args: &OperatorRemoveArgs) -> Result<()> {
    let removed = OperatorChange::Remove {
        name: args.name.clone(),
    };
    change(
        vault_arg,
        &removed,
        &args.shares,
        args.fingerprint.as_deref(),
    )
}
