//! `breakglass list` and `breakglass status`: everything readable without unsealing.

use std::path::Path;

use anyhow::Result;
use vault_core::vault::Vault;

use crate::cli::ReportArgs;
use crate::exit::{Failure, fail};

fn credentials(vault: &Vault) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for name in vault.store().credentials()? {
        let entry = match vault.envelope(&name) {
            Ok((_, envelope)) => serde_json::json!({
                "name": name,
                "kind": envelope.kind.as_str(),
                "sealed": envelope.created,
                "age_days": super::days_since(&envelope.created),
                "metadata": envelope.metadata,
                "tokens": envelope.hsm_stanzas.len(),
                "versions_in_history": vault.store().history(&name)?.len(),
            }),
            Err(e) => serde_json::json!({ "name": name, "error": format!("{e:#}") }),
        };
        out.push(entry);
    }
    Ok(out)
}

/// `breakglass list`.
pub fn list(vault_arg: Option<&Path>, args: &ReportArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    super::check_pin(&vault)?;
    if let Some(tail) = vault.audit().torn_tail()? {
        super::audit::warn_torn_tail(&vault.store().path(vault_core::store::AUDIT_LOG), &tail);
    }
    let creds = credentials(&vault)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&creds)?);
        return Ok(());
    }
    if creds.is_empty() {
        println!("no credentials sealed yet (breakglass seal NAME --kind ...)");
    }
    for c in &creds {
        print_credential(c);
    }
    Ok(())
}

fn print_credential(c: &serde_json::Value) {
    if let Some(error) = c.get("error") {
        println!(
            "{:<24} DAMAGED: {}",
            c["name"].as_str().unwrap_or_default(),
            error.as_str().unwrap_or_default()
        );
        return;
    }
    let metadata: Vec<String> = c["metadata"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "session_policy")
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    println!(
        "{:<24} {:<8} sealed {} ({} days ago)  {}",
        c["name"].as_str().unwrap_or_default(),
        c["kind"].as_str().unwrap_or_default(),
        c["sealed"].as_str().unwrap_or_default(),
        c["age_days"],
        metadata.join(" ")
    );
}

/// `breakglass status`.
pub fn status(vault_arg: Option<&Path>, args: &ReportArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    super::check_pin(&vault)?;
    let m = vault.manifest();
    let audit = vault.audit();
    let report = vault.keys().verify_audit(&audit)?;
    if let Some(tail) = &report.torn_tail {
        super::audit::warn_torn_tail(&vault.store().path(vault_core::store::AUDIT_LOG), tail);
    }
    let entries = audit.entries().unwrap_or_default();
    let last_drill = entries.iter().rev().find(|e| e.event == "drill");
    let last_recovery_drill = entries.iter().rev().find(|e| e.event == "recovery_drill");
    let interval = u64::from(m.policy.drill_interval_days);
    let recent_participants: std::collections::BTreeSet<&str> = entries
        .iter()
        // Every entry that names custodians is one they took part in (drills, openings, share
        // checks, rekeys, ceremonies closed with their contributions).
        .filter(|e| super::days_since(&e.time).is_some_and(|d| d <= interval))
        .flat_map(|e| e.custodians.iter().map(String::as_str))
        .collect();
    let absent: Vec<&str> = m
        .custodian_names()
        .into_iter()
        .filter(|c| !recent_participants.contains(c))
        .collect();
    let pinned = super::pinned_fingerprint(&m.vault_id)?;
    let runbook = super::runbook::current(&vault)
        .ok()
        .and_then(|(now, records)| crate::runbook::freshness(&records, &now));
    let status = serde_json::json!({
        "vault_id": m.vault_id,
        "fingerprint": vault.identity(),
        "manifest_version": vault.certified().version(),
        "operators": vault.certified().operators().iter().map(|o| serde_json::json!({
            "name": o.name, "roles": o.roles,
        })).collect::<Vec<_>>(),
        "pinned_on_this_machine": pinned.is_some(),
        "created": m.created,
        "quorum": {
            "group_threshold": m.quorum.group_threshold,
            "groups": m.quorum.groups.iter().map(|g| serde_json::json!({
                "name": g.name, "threshold": g.threshold,
                "members": g.members.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        },
        "recovery": m.recovery.as_ref().map(|r| serde_json::json!({
            "threshold": r.groups.first().map(|g| g.threshold),
            "members": r.groups.iter().flat_map(|g| g.members.iter().map(|c| c.name.clone())).collect::<Vec<_>>(),
        })),
        "tokens": m.hsms.iter().map(|h| serde_json::json!({
            "label": h.label, "serial": h.serial, "manufacturer": h.manufacturer, "model": h.model,
            "pin_source": h.pin, "development_softhsm": h.softhsm_conf.is_some(),
        })).collect::<Vec<_>>(),
        "credentials": credentials(&vault)?,
        "last_drill": last_drill.map(|e| e.time.clone()),
        "last_drill_failures": last_drill.map(drill_failures),
        "last_recovery_drill": last_recovery_drill.map(|e| e.time.clone()),
        "days_since_last_drill": last_drill.and_then(|e| super::days_since(&e.time)),
        "drill_interval_days": interval,
        "custodians_without_recent_participation": absent,
        "runbook": runbook,
        "audit": report,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return audit_intact(&report);
    }
    println!(
        "vault {}  fingerprint {}{}",
        m.vault_id,
        vault.identity(),
        if pinned.is_some() {
            " (pinned here)"
        } else {
            ""
        }
    );
    let groups: Vec<String> = m
        .quorum
        .groups
        .iter()
        .map(|g| {
            format!(
                "{} of [{}] ({})",
                g.threshold,
                g.members
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                g.name
            )
        })
        .collect();
    println!(
        "quorum: {} of {} groups: {}",
        m.quorum.group_threshold,
        m.quorum.groups.len(),
        groups.join("; ")
    );
    match &m.recovery {
        Some(r) => println!(
            "recovery: {} of [{}]: with a quorum, opens every credential with no token",
            r.groups.first().map_or(0, |g| g.threshold),
            r.groups
                .iter()
                .flat_map(|g| g.members.iter().map(|c| c.name.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => println!("recovery: not enabled (losing every token loses the credentials)"),
    }
    if m.recovery.is_some() {
        match last_recovery_drill {
            Some(d) => println!("last recovery drill: {}", d.time),
            None => println!("last recovery drill: never: run breakglass drill --recovery"),
        }
    }
    for h in &m.hsms {
        println!(
            "token: {} (serial {}, {} {}){}",
            h.label,
            h.serial,
            h.manufacturer,
            h.model,
            if h.softhsm_conf.is_some() {
                " DEVELOPMENT SoftHSM inside the vault: not for production"
            } else {
                ""
            }
        );
    }
    println!("credentials:");
    for c in status["credentials"].as_array().into_iter().flatten() {
        print!("  ");
        print_credential(c);
    }
    match last_drill {
        Some(d) => {
            let failed = drill_failures(d);
            println!(
                "last drill: {} ({} days ago; policy: every {interval} days){}",
                d.time,
                super::days_since(&d.time).unwrap_or(0),
                if failed.is_empty() {
                    ": passed".to_owned()
                } else {
                    format!(": FAILED for {}: fix and drill again", failed.join(", "))
                }
            );
        }
        None => println!("last drill: never (policy: every {interval} days): run breakglass drill"),
    }
    if !absent.is_empty() {
        println!(
            "custodians who have not taken part in the last {interval} days: {}",
            absent.join(", ")
        );
    }
    print_runbook(runbook.as_ref());
    if report.is_intact() {
        println!(
            "audit log: intact, {} entries, {} signed checkpoints, {} unsigned at the end",
            report.entries, report.checkpoints, report.unsigned_tail
        );
        if let Some(tail) = &report.torn_tail {
            println!(
                "audit log: the last write was cut short ({} torn bytes after line {}): run breakglass audit repair",
                tail.len,
                tail.line - 1
            );
        }
    } else {
        println!("audit log: BROKEN (run breakglass audit verify)");
    }
    audit_intact(&report)
}

/// Whether the runbook last written with `runbook --out` still says what the vault says.
/// The file name and events come from the audit log, so they are shown escaped.
fn print_runbook(runbook: Option<&crate::runbook::Freshness>) {
    use vault_core::trust::untrusted_text::render_untrusted as shown;
    match runbook {
        None => println!("runbook: none written yet (breakglass runbook --format html --out FILE)"),
        Some(r) if r.up_to_date => println!(
            "runbook: {} (written {}, from audit line {}): up to date",
            shown(&r.file),
            shown(&r.made),
            r.head_line
        ),
        Some(r) => println!(
            "runbook: {} (written {}, from audit line {}) is OUT OF DATE: the vault changed since ({}): run breakglass runbook --out FILE and print it again",
            shown(&r.file),
            shown(&r.made),
            r.head_line,
            shown(&r.changed_by.join(", "))
        ),
    }
}

/// The credentials a drill entry records as failed.
fn drill_failures(entry: &vault_core::audit::Entry) -> Vec<String> {
    entry
        .details
        .iter()
        .filter(|(key, outcome)| key.starts_with("credential:") && outcome.contains("FAILED"))
        .map(|(key, _)| key.trim_start_matches("credential:").to_owned())
        .collect()
}

/// Exit 5 after the report when the audit log is broken: a script must not read it as healthy.
fn audit_intact(report: &vault_core::audit::VerifyReport) -> Result<()> {
    if report.is_intact() {
        Ok(())
    } else {
        Err(fail(
            Failure::Integrity,
            "the audit log is broken: run breakglass audit verify",
        ))
    }
}
