//! `breakglass runbook`: the emergency access procedure made from the vault, to standard output
//! or, recorded in the audit log, to a file.

use std::path::Path;

use anyhow::{Context, Result};
use vault_core::audit::Event;
use vault_core::vault::Vault;

use crate::cli::{DocumentFormat, RunbookArgs};
use crate::printable::Format;
use crate::report::Record;
use crate::runbook::{Credential, Inputs, Provenance, Runbook};

/// The runbook of `vault` as it is now, and the records it was made from (those
/// [`runbook_records`] reads).
pub fn current(vault: &Vault) -> Result<(Runbook, Vec<Record>)> {
    let records = runbook_records(vault)?;
    let credentials: Vec<Credential> = vault
        .store()
        .credentials()?
        .into_iter()
        .map(|name| {
            let envelope = vault
                .envelope(&name)
                .map(|(_, e)| e)
                .map_err(|e| format!("{e:#}"));
            Credential { name, envelope }
        })
        .collect();
    let runbook = Runbook::new(&Inputs {
        manifest: vault.manifest(),
        fingerprint: &vault.identity(),
        operators: vault.certified().operators(),
        credentials: &credentials,
        records: &records,
    });
    Ok((runbook, records))
}

/// Whether a runbook was ever written with `--out` (its record in the log): read back from
/// the end, parsing only the lines that may name the event.
pub fn written(vault: &Vault) -> Result<bool> {
    let event = crate::runbook::EVENT;
    Ok(vault
        .audit()
        .rfind_matching(
            |line| vault_core::audit::may_name(line, event),
            |entry| entry.event == event,
        )?
        .is_some())
}

/// The records a runbook and its freshness read, oldest first: every record from the last
/// runbook written on, the last drill and, in a vault with a recovery set, the last recovery
/// drill. Read back from the end of the log, no further than the oldest of them.
fn runbook_records(vault: &Vault) -> Result<Vec<Record>> {
    use std::ops::ControlFlow;
    let (mut drill, mut recovery_drill, mut written) =
        (false, vault.manifest().recovery.is_none(), false);
    let mut kept = Vec::new();
    crate::report::each_record_back(&vault.audit(), |record| {
        let is_drill = record.event == "drill";
        let is_recovery_drill = record.event == "recovery_drill";
        let is_written = record.event == crate::runbook::EVENT;
        if !written || (is_drill && !drill) || (is_recovery_drill && !recovery_drill) {
            kept.push(record);
        }
        drill |= is_drill;
        recovery_drill |= is_recovery_drill;
        written |= is_written;
        if drill && recovery_drill && written {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    kept.reverse();
    Ok(kept)
}

/// `breakglass runbook`.
pub fn run(vault_arg: Option<&Path>, args: &RunbookArgs) -> Result<()> {
    let dir = super::vault_dir(vault_arg)?;
    let vault = super::open_vault(vault_arg)?;
    super::check_pin(&vault)?;
    let (runbook, _) = current(&vault)?;
    let head = vault.audit().head()?;
    let provenance = Provenance {
        made: vault_core::clock::rfc3339(vault_core::clock::now_unix()),
        head: head.clone(),
        vault_dir: std::path::absolute(&dir)
            .unwrap_or(dir)
            .display()
            .to_string(),
    };
    let format = match args.format {
        DocumentFormat::Md => Format::Markdown,
        DocumentFormat::Html => Format::Html,
    };
    let text = runbook.document(&provenance).render(format);
    let Some(out) = &args.out else {
        print!("{text}");
        return Ok(());
    };
    vault_core::store::write_atomic(out, text.as_bytes())
        .with_context(|| format!("writing the runbook to {}", out.display()))?;
    let file = std::path::absolute(out).unwrap_or_else(|_| out.clone());
    vault.record(
        Event::new(crate::runbook::EVENT)
            .detail("digest", runbook.digest.clone())
            .detail("head_line", head.seq.to_string())
            .detail("head_hash", head.hash)
            .detail("file", file.display().to_string()),
    )?;
    eprintln!(
        "runbook written to {} (from audit line {}); print it, and run this again after any change: breakglass status says when it is out of date",
        out.display(),
        head.seq
    );
    Ok(())
}
