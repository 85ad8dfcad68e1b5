//! `breakglass list` and `breakglass status`: everything readable without unsealing.

use std::collections::BTreeSet;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::Result;
use vault_core::audit::{AuditLog, LogSummary};
use vault_core::vault::{Listed, Vault};

use crate::report::Record;

use crate::cli::ReportArgs;
use crate::exit::{Failure, fail};

/// Every credential as `list --json` shows it, to `each` in name order as the index yields
/// it (nothing waits for the whole vault).
fn each_credential(
    vault: &Vault,
    mut each: impl FnMut(serde_json::Value) -> Result<()>,
) -> Result<()> {
    let with_history = vault.store().names_with_history()?;
    vault.each_credential(|listed| {
        let entry = match listed {
            Listed::Sealed { name, listing } => {
                let versions = if with_history.contains(&name) {
                    vault.store().history(&name)?.len()
                } else {
                    0
                };
                serde_json::json!({
                    "name": name,
                    "kind": listing.kind,
                    "sealed": listing.sealed,
                    "age_days": super::days_since(&listing.sealed),
                    "metadata": listing.metadata,
                    "tokens": listing.tokens,
                    "versions_in_history": versions,
                })
            }
            Listed::Damaged { name, error } => {
                serde_json::json!({ "name": name, "error": format!("{error:#}") })
            }
        };
        each(entry)
    })
}

/// Writes a JSON array to `out` one element at a time, laid out as `to_string_pretty` lays out
/// the whole array, `indent` spaces in: the first element is out before the last is read.
pub(super) struct JsonArray {
    indent: usize,
    count: usize,
}

impl JsonArray {
    pub(super) fn new(indent: usize) -> JsonArray {
        JsonArray { indent, count: 0 }
    }

    pub(super) fn push(
        &mut self,
        out: &mut dyn Write,
        value: &impl serde::Serialize,
    ) -> Result<()> {
        let pad = " ".repeat(self.indent + 2);
        let text = serde_json::to_string_pretty(value)?.replace('\n', &format!("\n{pad}"));
        let lead = if self.count == 0 { "[" } else { "," };
        write!(out, "{lead}\n{pad}{text}")?;
        self.count += 1;
        Ok(())
    }

    pub(super) fn finish(self, out: &mut dyn Write) -> Result<()> {
        if self.count == 0 {
            write!(out, "[]")?;
        } else {
            write!(out, "\n{}]", " ".repeat(self.indent))?;
        }
        Ok(())
    }
}

/// `breakglass list`.
pub fn list(vault_arg: Option<&Path>, args: &ReportArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    super::check_pin(&vault)?;
    if let Some(tail) = vault.audit().torn_tail()? {
        super::audit::warn_torn_tail(&vault.store().path(vault_core::store::AUDIT_LOG), &tail);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        let mut array = JsonArray::new(0);
        each_credential(&vault, |c| array.push(&mut out, &c))?;
        array.finish(&mut out)?;
        writeln!(out)?;
        return Ok(out.flush()?);
    }
    let mut any = false;
    each_credential(&vault, |c| {
        any = true;
        print_credential(&mut out, "", &c)
    })?;
    if !any {
        writeln!(
            out,
            "no credentials sealed yet (breakglass seal NAME --kind ...)"
        )?;
    }
    Ok(out.flush()?)
}

fn print_credential(out: &mut dyn Write, lead: &str, c: &serde_json::Value) -> Result<()> {
    if let Some(error) = c.get("error") {
        writeln!(
            out,
            "{lead}{:<24} DAMAGED: {}",
            c["name"].as_str().unwrap_or_default(),
            error.as_str().unwrap_or_default()
        )?;
        return Ok(());
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
    writeln!(
        out,
        "{lead}{:<24} {:<8} sealed {} ({} days ago)  {}",
        c["name"].as_str().unwrap_or_default(),
        c["kind"].as_str().unwrap_or_default(),
        c["sealed"].as_str().unwrap_or_default(),
        c["age_days"],
        metadata.join(" ")
    )?;
    Ok(())
}

/// `breakglass status`.
pub fn status(vault_arg: Option<&Path>, args: &ReportArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    super::check_pin(&vault)?;
    let m = vault.manifest();
    let audit = vault.audit();
    let (report, summary) = vault.verify_audit_remembered()?;
    if let Some(tail) = &report.torn_tail {
        super::audit::warn_torn_tail(&vault.store().path(vault_core::store::AUDIT_LOG), tail);
    }
    let interval = u64::from(m.policy.drill_interval_days);
    let history = match &summary {
        Some(summary) => History::of_summary(&audit, summary, interval)?,
        None => History::read(&audit, interval, m.recovery.is_some())?,
    };
    let last_drill = history.last_drill.as_ref();
    let last_recovery_drill = history.last_recovery_drill.as_ref();
    let absent: Vec<&str> = m
        .custodian_names()
        .into_iter()
        .filter(|c| !history.participants.contains(*c))
        .collect();
    let pinned = super::pinned_fingerprint(&m.vault_id)?;
    // Building the runbook reads every envelope: only when one was written to compare with.
    let written = match &summary {
        Some(summary) => summary.last_event.contains_key(crate::runbook::EVENT),
        None => super::runbook::written(&vault)?,
    };
    let runbook = if written {
        super::runbook::current(&vault)
            .ok()
            .and_then(|(now, records)| crate::runbook::freshness(&records, &now))
    } else {
        None
    };
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
        "last_drill": last_drill.map(|e| e.time.clone()),
        "last_drill_failures": last_drill.map(drill_failures),
        "last_recovery_drill": last_recovery_drill.map(|e| e.time.clone()),
        "days_since_last_drill": last_drill.and_then(|e| super::days_since(&e.time)),
        "drill_interval_days": interval,
        "custodians_without_recent_participation": absent,
        "runbook": runbook,
        "audit": report,
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        stream_status_json(&mut out, &vault, status)?;
        out.flush()?;
        return audit_intact(&report);
    }
    drop(out);
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
    {
        let mut out = std::io::BufWriter::new(stdout.lock());
        each_credential(&vault, |c| print_credential(&mut out, "  ", &c))?;
        out.flush()?;
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

/// `status --json`: the object `to_string_pretty` would print with its `credentials` array in
/// key order, that array streamed from the index as each credential is known.
fn stream_status_json(out: &mut dyn Write, vault: &Vault, status: serde_json::Value) -> Result<()> {
    let serde_json::Value::Object(mut fields) = status else {
        unreachable!("the status is built as an object")
    };
    fields.insert("credentials".into(), serde_json::Value::Null);
    write!(out, "{{")?;
    for (i, (key, value)) in fields.iter().enumerate() {
        write!(
            out,
            "{}\n  {}: ",
            if i == 0 { "" } else { "," },
            serde_json::to_string(key)?
        )?;
        if key == "credentials" {
            let mut array = JsonArray::new(2);
            each_credential(vault, |c| array.push(out, &c))?;
            array.finish(out)?;
        } else {
            let text = serde_json::to_string_pretty(value)?.replace('\n', "\n  ");
            write!(out, "{text}")?;
        }
    }
    writeln!(out, "\n}}")?;
    Ok(())
}

/// What `status` shows of the vault's history, read back from the end of the audit log.
struct History {
    /// The last drill.
    last_drill: Option<Record>,
    /// The last recovery drill.
    last_recovery_drill: Option<Record>,
    /// The custodians named by entries of the last `interval` days: every entry that names
    /// custodians is one they took part in (drills, openings, share checks, rekeys, ceremonies
    /// closed with their contributions).
    participants: BTreeSet<String>,
}

impl History {
    /// From what this machine gathered as it verified the log: the last drills read at their
    /// lines, the custodians whose last part is within `interval` days.
    fn of_summary(audit: &AuditLog, summary: &LogSummary, interval: u64) -> Result<History> {
        let record = |event: &str| -> Result<Option<Record>> {
            summary
                .last_event
                .get(event)
                .map(|place| Ok(Record::from_entry(&audit.entry_at(place)?)))
                .transpose()
        };
        Ok(History {
            last_drill: record("drill")?,
            last_recovery_drill: record("recovery_drill")?,
            participants: summary
                .last_participation
                .iter()
                .filter(|(_, time)| super::days_since(time).is_some_and(|days| days <= interval))
                .map(|(custodian, _)| custodian.clone())
                .collect(),
        })
    }

    /// Reads back from the end of the log until the last drill is found, the last recovery
    /// drill too (for a vault with a recovery set; otherwise only as far as the rest takes the
    /// scan), and an entry older than `interval` days is reached (the log is appended in time
    /// order, so none before it counts as recent).
    fn read(audit: &AuditLog, interval: u64, recovery: bool) -> Result<History> {
        let mut history = History {
            last_drill: None,
            last_recovery_drill: None,
            participants: BTreeSet::new(),
        };
        let mut past_interval = false;
        crate::report::each_record_back(audit, |record| {
            match super::days_since(&record.time) {
                Some(days) if days <= interval => {
                    history
                        .participants
                        .extend(record.custodians.iter().cloned());
                }
                Some(_) => past_interval = true,
                None => {}
            }
            match record.event.as_str() {
                "drill" if history.last_drill.is_none() => history.last_drill = Some(record),
                "recovery_drill" if history.last_recovery_drill.is_none() => {
                    history.last_recovery_drill = Some(record);
                }
                _ => {}
            }
            let done = past_interval
                && history.last_drill.is_some()
                && (history.last_recovery_drill.is_some() || !recovery);
            if done {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(history)
    }
}

/// The credentials a drill entry records as failed.
fn drill_failures(entry: &Record) -> Vec<String> {
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
