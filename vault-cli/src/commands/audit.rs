//! `breakglass audit verify|show|report|repair`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use vault_core::audit::{Entry, TornTail};
use vault_core::trust::Role;

use super::list::JsonArray;

use crate::cli::{
    AuditFilterArgs, AuditRepairArgs, AuditReportArgs, AuditShowArgs, ReportArgs, ReportFormat,
};
use crate::exit::{Failure, fail};
use crate::printable::Format;
use crate::prompt::confirmed;
use crate::report::{Filter, Inputs, Record};

fn filter(args: &AuditFilterArgs) -> Filter {
    Filter {
        since: args.since.clone(),
        credential: args.credential.clone(),
    }
}

/// The note every reading command prints about a torn tail (on standard error).
pub fn warn_torn_tail(log: &Path, tail: &TornTail) {
    eprintln!(
        "breakglass: warning: {}: the last write was cut short (a crash or a full disk): {} bytes \
         of line {} are torn and left out; the entries before them are intact. Writing commands \
         refuse until a security officer runs `breakglass audit repair`.",
        log.display(),
        tail.len,
        tail.line
    );
}

/// The note `audit verify` prints when no entry records the manifest as it is (on standard
/// error): a change stopped between writing `vault.json` and recording it.
fn warn_unrecorded_manifest(vault: &vault_core::vault::Vault) {
    eprintln!(
        "breakglass: warning: vault.json is version {} of the manifest, certified by the quorum, \
         but no audit entry records it: the change that made it (hsm enroll, recovery enable, an \
         operator change) stopped before its entry was written. Running that change again with \
         a quorum records it and changes nothing else: `breakglass hsm enroll --token LABEL`, \
         `breakglass recovery enable`, or the same `breakglass operator add` or `operator remove`.",
        vault.certified().version()
    );
}

/// `breakglass audit repair`: moves a torn tail aside and records it.
pub fn repair(vault_arg: Option<&Path>, args: &AuditRepairArgs) -> Result<()> {
    // An interrupted rekey is resumed after the repair (its resume appends to the log).
    let vault = super::open_vault_resuming(vault_arg)?;
    super::require_role(&vault, Role::SecurityOfficer, "audit repair")?;
    let log = vault.store().path(vault_core::store::AUDIT_LOG);
    let Some(tail) = vault.audit().torn_tail()? else {
        println!("{}: no torn tail: nothing to repair", log.display());
        return Ok(());
    };
    warn_torn_tail(&log, &tail);
    confirmed(
        args.yes,
        "audit repair moves bytes out of the audit log: confirm with --yes when not on a terminal",
        &format!(
            "Move the {} torn bytes of line {} into a file beside the log and record the repair?",
            tail.len, tail.line
        ),
        "nothing was changed",
    )?;
    match vault.repair_audit()? {
        Some(repaired) => println!(
            "{}: {} torn bytes (sha256 {}) moved to {}; the repair is recorded at line {}",
            log.display(),
            repaired.tail.len,
            repaired.sha256,
            repaired.moved_to.display(),
            repaired.tail.line
        ),
        None => println!("{}: no torn tail: nothing to repair", log.display()),
    }
    Ok(())
}

/// `breakglass audit verify`: exit 5 when the chain or a signature is broken.
pub fn verify(vault_arg: Option<&Path>, args: &ReportArgs) -> Result<()> {
    // The audit keys come from the authenticated manifest (its identity pinned on this
    // machine, its quorum signature checked), never from vault.json alone; while a rekey is
    // interrupted, the one its journal resumes from (a reading command keeps working).
    let vault = super::open_vault_resuming(vault_arg)?;
    let report = vault.keys().verify_audit(&vault.audit())?;
    let file = vault.store().path(vault_core::store::AUDIT_LOG);
    if let Some(tail) = &report.torn_tail {
        warn_torn_tail(&file, tail);
    }
    if !vault.manifest_recorded()? {
        warn_unrecorded_manifest(&vault);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.is_intact() {
        println!(
            "{}: intact: {} entries, {} signed checkpoints (last at line {}), {} entries after it not yet signed",
            file.display(),
            report.entries,
            report.checkpoints,
            report.last_checkpoint.map_or("-".into(), |l| l.to_string()),
            report.unsigned_tail
        );
    }
    if let Some(problem) = &report.first_problem {
        return Err(fail(
            Failure::Integrity,
            format!(
                "{}: line {}: {}",
                file.display(),
                problem.line,
                problem.reason
            ),
        ));
    }
    if let Some(line) = report.bad_signature {
        return Err(fail(
            Failure::Integrity,
            format!(
                "{}: line {line}: the checkpoint's signature does not verify with the vault's audit key",
                file.display()
            ),
        ));
    }
    Ok(())
}

/// `breakglass audit show`: each line printed as it is read (the log is never held whole);
/// `--tail N` reads back from the end of the log only as far as the last N lines kept.
pub fn show(vault_arg: Option<&Path>, args: &AuditShowArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    let filter = filter(&args.filter);
    let log = vault.audit();
    let file = vault.store().path(vault_core::store::AUDIT_LOG);
    if let Some(tail) = log.torn_tail()? {
        warn_torn_tail(&file, &tail);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut array = args.json.then(|| JsonArray::new(0));
    let mut print = |entry: Entry| -> Result<()> {
        if !filter.keeps(&Record::from_entry(&entry)) {
            return Ok(());
        }
        match &mut array {
            Some(array) => array.push(&mut out, &entry),
            None => print_entry(&mut out, &entry),
        }
    };
    match args.tail {
        None => log.each_entry(&mut print)?,
        Some(n) => {
            let mut last = Vec::new();
            for line in log.lines_back()? {
                if last.len() == n {
                    break;
                }
                let (offset, bytes) = line?;
                let entry: Entry = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "{}: the line at byte {offset} is damaged: run breakglass audit verify",
                        file.display()
                    )
                })?;
                if filter.keeps(&Record::from_entry(&entry)) {
                    last.push(entry);
                }
            }
            for entry in last.into_iter().rev() {
                print(entry)?;
            }
        }
    }
    if let Some(array) = array {
        array.finish(&mut out)?;
        writeln!(out)?;
    }
    Ok(out.flush()?)
}

/// One line of `audit show`.
fn print_entry(out: &mut dyn Write, e: &Entry) -> Result<()> {
    let mut line = format!(
        "{:>4} {} {:<16} {}",
        e.seq,
        e.time,
        e.event,
        vault_core::trust::untrusted_text::render_untrusted(&e.actor.to_string())
    );
    if let Some(c) = &e.credential {
        line.push_str(&format!(" credential={c}"));
    }
    if !e.custodians.is_empty() {
        line.push_str(&format!(" custodians={}", e.custodians.join(",")));
    }
    for (k, v) in &e.details {
        if k != "manifest_sha256" {
            line.push_str(&format!(" {k}={v}"));
        }
    }
    if let Some(cp) = &e.checkpoint {
        line.push_str(&format!(" signed-head={}…", &cp.head[..12]));
    }
    writeln!(out, "{line}")?;
    Ok(())
}

/// `breakglass audit report`: the report, then exit 5 when the chain is broken (the report
/// says where), so that a script cannot take it for a clean record.
pub fn report(vault_arg: Option<&Path>, args: &AuditReportArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    super::check_pin(&vault)?;
    let log = vault.audit();
    let verify = vault.keys().verify_audit(&log)?;
    let all = crate::report::records(&log).ok();
    let identity = vault.identity();
    let inputs = Inputs {
        manifest: vault.manifest(),
        fingerprint: &identity,
        all: all.as_deref(),
        verify: &verify,
        filter: &filter(&args.filter),
        now: vault_core::clock::now_unix(),
    };
    match args.format {
        ReportFormat::Md => print!(
            "{}",
            crate::report::document(&inputs).render(Format::Markdown)
        ),
        ReportFormat::Html => print!("{}", crate::report::document(&inputs).render(Format::Html)),
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&crate::report::json(&inputs))?
        ),
    }
    if verify.is_intact() {
        Ok(())
    } else {
        Err(fail(
            Failure::Integrity,
            "the audit log is broken (the report says where): run breakglass audit verify",
        ))
    }
}
