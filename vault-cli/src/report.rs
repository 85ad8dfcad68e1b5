//! The audit report for auditors (`breakglass audit report`): every seal, rotation, ceremony,
//! unseal, role assumption, drill, revocation, rekey and enrolment, with the chain's verification
//! result and the signed checkpoint that covers each entry; and the filters `audit show` shares
//! (`--since`, `--credential`).
//!
//! This is the one place the command line reads audit lines for a document: [`Record`] is
//! made from the audit module's reading API ([`Record::from_entry`]) and everything else here
//! (and the runbook's drill history) works on records.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};
use vault_core::audit::{Entry, VerifyReport};
use vault_core::manifest::Manifest;

use crate::printable::{Block, Document, Text};

/// One audit line as the documents see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The line number (1-based).
    pub line: u64,
    /// When (RFC 3339 UTC, as written).
    pub time: String,
    /// The event name.
    pub event: String,
    /// Who: `user@host`.
    pub actor: String,
    /// The credential concerned.
    pub credential: Option<String>,
    /// The ceremony concerned.
    pub ceremony: Option<String>,
    /// The custodians whose shares were used.
    pub custodians: Vec<String>,
    /// Public details (role, session key id, expiry, reason, outcome per credential, ...).
    pub details: BTreeMap<String, String>,
    /// Whether the line is a signed checkpoint.
    pub checkpoint: bool,
}

impl Record {
    /// The record of an audit entry.
    pub fn from_entry(entry: &Entry) -> Record {
        let mut details = entry.details.clone();
        // The manifest's hash is for the chain, not for readers.
        details.remove("manifest_sha256");
        let ceremony = entry
            .ceremony
            .clone()
            .or_else(|| entry.details.get("ceremony").cloned());
        details.remove("ceremony");
        Record {
            line: entry.seq,
            time: entry.time.clone(),
            event: entry.event.clone(),
            actor: entry.actor.to_string(),
            credential: entry.credential.clone(),
            ceremony,
            custodians: entry.custodians.clone(),
            details,
            checkpoint: entry.checkpoint.is_some(),
        }
    }

    /// The credentials a drill line reports on (`credential:NAME` details).
    pub fn drilled(&self) -> impl Iterator<Item = (&str, &str)> {
        self.details.iter().filter_map(|(key, outcome)| {
            key.strip_prefix("credential:")
                .map(|name| (name, outcome.as_str()))
        })
    }

    /// Whether the line concerns credential `name`.
    fn concerns(&self, name: &str) -> bool {
        self.credential.as_deref() == Some(name) || self.drilled().any(|(c, _)| c == name)
    }
}

/// The records of a vault's audit log, oldest first.
pub fn records(
    log: &vault_core::audit::AuditLog,
) -> Result<Vec<Record>, vault_core::audit::AuditError> {
    Ok(log.entries()?.iter().map(Record::from_entry).collect())
}

/// Calls `each` with the records of `log` from the newest back, reading the log from its end,
/// until `each` breaks (the whole log only when it never does). A torn tail is left out, and so
/// is a line that is no entry (`audit verify` reports it): readers that want the last few
/// records cost those, not the history.
pub fn each_record_back(
    log: &vault_core::audit::AuditLog,
    mut each: impl FnMut(Record) -> std::ops::ControlFlow<()>,
) -> Result<(), vault_core::audit::AuditError> {
    for line in log.lines_back()? {
        let (_, bytes) = line?;
        let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else {
            continue;
        };
        if each(Record::from_entry(&entry)).is_break() {
            break;
        }
    }
    Ok(())
}

/// `--since DATE`: a day (`2026-11-30`, from its start, UTC) or an instant
/// (`2026-11-30T14:00:00Z`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// What was given.
    pub text: String,
    /// Its Unix time.
    pub unix: u64,
}

impl Since {
    /// Parses `--since`.
    pub fn parse(text: &str) -> Result<Since, String> {
        let instant = if text.len() == 10 {
            format!("{text}T00:00:00Z")
        } else {
            text.to_owned()
        };
        vault_core::clock::parse_rfc3339(&instant)
            .map(|unix| Since {
                text: text.to_owned(),
                unix,
            })
            .ok_or_else(|| {
                format!("{text:?} is not a date: give YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)")
            })
    }
}

/// Which records a report or `audit show` keeps.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only records at or after this time.
    pub since: Option<Since>,
    /// Only records about this credential.
    pub credential: Option<String>,
}

impl Filter {
    /// Whether `record` passes. A time that cannot be read is kept: a filter never hides a
    /// line whose time it cannot judge.
    pub fn keeps(&self, record: &Record) -> bool {
        let recent = self.since.as_ref().is_none_or(|since| {
            vault_core::clock::parse_rfc3339(&record.time).is_none_or(|t| t >= since.unix)
        });
        let about = self
            .credential
            .as_deref()
            .is_none_or(|name| record.concerns(name));
        recent && about
    }

    fn is_empty(&self) -> bool {
        self.since.is_none() && self.credential.is_none()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(since) = &self.since {
            parts.push(format!("since {}", since.text));
        }
        if let Some(name) = &self.credential {
            parts.push(format!("credential {name}"));
        }
        if parts.is_empty() {
            "the whole log".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// How far a line is vouched for by the chain and its signed checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// A valid checkpoint on this line signs a head that includes it.
    Signed(u64),
    /// No valid checkpoint after it (yet: the next token login signs the head).
    Unsigned,
    /// At or after the first broken line: nothing vouches for it.
    AfterBreak,
}

impl Coverage {
    fn describe(self) -> String {
        match self {
            Coverage::Signed(line) => format!("checkpoint line {line}"),
            Coverage::Unsigned => "unsigned".to_owned(),
            Coverage::AfterBreak => "AFTER THE BREAK".to_owned(),
        }
    }
}

/// The line at which the chain stops being trustworthy, if it does.
fn break_line(verify: &VerifyReport) -> Option<u64> {
    verify
        .first_problem
        .as_ref()
        .map(|p| p.line)
        .or(verify.bad_signature)
        .map(|l| l as u64)
}

/// The coverage of every line of `all` (the unfiltered log).
fn coverage(all: &[Record], verify: &VerifyReport) -> BTreeMap<u64, Coverage> {
    let broken = break_line(verify);
    let valid: Vec<u64> = all
        .iter()
        .filter(|r| r.checkpoint && broken.is_none_or(|b| r.line < b))
        .map(|r| r.line)
        .collect();
    all.iter()
        .map(|r| {
            let cover = if broken.is_some_and(|b| r.line >= b) {
                Coverage::AfterBreak
            } else {
                valid
                    .iter()
                    .find(|c| **c > r.line)
                    .map_or(Coverage::Unsigned, |c| Coverage::Signed(*c))
            };
            (r.line, cover)
        })
        .collect()
}

/// The report's sections, in the order an auditor reads them: the event names each holds.
const SECTIONS: &[(&str, &[&str])] = &[
    ("Seals", &["seal"]),
    ("Rotations", &["rotate"]),
    ("Unseals and recoveries", &["unseal", "recover"]),
    ("Role assumptions", &["assume_role"]),
    ("Drills", &["drill", "recovery_drill"]),
    ("Revocations", &["revoke_sessions"]),
    ("Rekeys", &["rekey"]),
    ("Enrolments", &["init", "hsm_enrol", "recovery_enable"]),
];

/// The section an event belongs to (`Other` when none names it; ceremonies have their own).
fn section_of(event: &str) -> &'static str {
    if event.starts_with("ceremony_") {
        return "Ceremonies";
    }
    SECTIONS
        .iter()
        .find(|(_, events)| events.contains(&event))
        .map_or("Other", |(name, _)| name)
}

/// A remote ceremony, from its opening and closing lines.
#[derive(Debug, Clone, Serialize)]
struct Ceremony {
    id: String,
    requested_by: String,
    purpose: String,
    credential: Option<String>,
    reason: Option<String>,
    opened: String,
    opened_line: u64,
    expires: Option<String>,
    closed: Option<String>,
    custodians: Vec<String>,
    outcome: String,
}

/// The ceremonies opened in `kept`, each closed (or not) anywhere in `all` (a filter on the
/// credential keeps the opening, which names it, and not the closing, which does not).
fn ceremonies(kept: &[&Record], all: &[Record], now: u64) -> Vec<Ceremony> {
    let mut out: Vec<Ceremony> = Vec::new();
    for r in kept.iter().filter(|r| r.event == "ceremony_opened") {
        let Some(id) = &r.ceremony else { continue };
        let closing = all
            .iter()
            .find(|c| c.event == "ceremony_closed" && c.ceremony.as_ref() == Some(id));
        let expires = r.details.get("expires").cloned();
        let expired = expires
            .as_deref()
            .and_then(vault_core::clock::parse_rfc3339)
            .is_some_and(|t| t < now);
        let outcome = match (closing, expired) {
            (Some(_), _) => "carried out",
            (None, true) => "expired without a quorum",
            (None, false) => "open",
        };
        out.push(Ceremony {
            id: id.clone(),
            requested_by: r.actor.clone(),
            purpose: r.details.get("purpose").cloned().unwrap_or_default(),
            credential: r.credential.clone(),
            reason: r.details.get("reason").cloned(),
            opened: r.time.clone(),
            opened_line: r.line,
            expires,
            closed: closing.map(|c| c.time.clone()),
            custodians: closing.map(|c| c.custodians.clone()).unwrap_or_default(),
            outcome: outcome.to_owned(),
        });
    }
    out
}

/// What the report is made from.
pub struct Inputs<'a> {
    /// The vault's manifest.
    pub manifest: &'a Manifest,
    /// The vault identity's fingerprint (the one on the share cards).
    pub fingerprint: &'a str,
    /// Every record of the log (unfiltered), or `None` when the log cannot be read.
    pub all: Option<&'a [Record]>,
    /// The chain's verification.
    pub verify: &'a VerifyReport,
    /// Which records to show.
    pub filter: &'a Filter,
    /// When the report is made (Unix seconds).
    pub now: u64,
}

/// The verification result in a sentence.
fn verdict(verify: &VerifyReport) -> String {
    if let Some(problem) = &verify.first_problem {
        format!(
            "BROKEN at line {}: {}. Nothing from that line on can be trusted; earlier lines are vouched for by the checkpoints before it.",
            problem.line, problem.reason
        )
    } else if let Some(line) = verify.bad_signature {
        format!(
            "BROKEN at line {line}: the checkpoint's signature does not verify with the vault's audit key. Nothing from that line on can be trusted."
        )
    } else {
        format!(
            "Intact: {} lines chain without a gap, {} signed checkpoints verify with the vault's audit key (the last on line {}), {} lines after it are not yet signed.",
            verify.entries,
            verify.checkpoints,
            verify
                .last_checkpoint
                .map_or("-".to_owned(), |l| l.to_string()),
            verify.unsigned_tail
        )
    }
}

/// Details as `key=value` pairs, in a stable order.
fn details_text(details: &BTreeMap<String, String>, skip: &[&str]) -> String {
    details
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn opt(value: Option<&String>) -> Text {
    Text::default().plain(value.map_or("-", String::as_str))
}

/// The report as a document (Markdown or HTML).
pub fn document(inputs: &Inputs<'_>) -> Document {
    let m = inputs.manifest;
    let mut blocks = vec![Block::Facts(vec![
        ("Vault".into(), Text::default().code(&m.vault_id)),
        (
            "Fingerprint".into(),
            Text::default().code(inputs.fingerprint),
        ),
        ("Made".into(), vault_core::clock::rfc3339(inputs.now).into()),
        ("Covers".into(), inputs.filter.describe().into()),
        (
            "Audit head".into(),
            Text::default()
                .plain(format!("line {}, SHA-256 ", inputs.verify.entries))
                .code(&inputs.verify.head),
        ),
    ])];
    blocks.push(Block::Heading(2, "Verification of the audit chain".into()));
    blocks.push(Block::Para(Text::default().strong(verdict(inputs.verify))));
    blocks.push(Block::Para(
        "Every line carries the hash of the line before it; a checkpoint line signs the chain head \
         with the token's audit key and so vouches for every line before it. Each entry below names \
         the first checkpoint that covers it."
            .into(),
    ));
    let Some(all) = inputs.all else {
        blocks.push(Block::Para(Text::default().strong(
            "The log cannot be read line by line: no entries are listed.",
        )));
        return Document {
            title: format!(
                "Credential management and access record: vault {}",
                m.vault_id
            ),
            blocks,
        };
    };
    let cover = coverage(all, inputs.verify);
    let kept: Vec<&Record> = all
        .iter()
        .filter(|r| !r.checkpoint && inputs.filter.keeps(r))
        .collect();
    let covered = |r: &Record| Text::from(cover[&r.line].describe());

    let ceremonies = ceremonies(&kept, all, inputs.now);
    blocks.push(Block::Heading(2, "Ceremonies".into()));
    if ceremonies.is_empty() {
        blocks.push(Block::Para("None.".into()));
    } else {
        let rows = ceremonies
            .iter()
            .map(|c| {
                vec![
                    Text::default().code(&c.id),
                    c.requested_by.as_str().into(),
                    Text::default().plain(&c.purpose).plain(
                        c.credential
                            .as_deref()
                            .map_or(String::new(), |n| format!(" {n}")),
                    ),
                    opt(c.reason.as_ref()),
                    Text::from(format!(
                        "{} to {}",
                        c.opened,
                        c.expires.as_deref().unwrap_or("-")
                    )),
                    Text::from(c.custodians.join(", ")),
                    Text::default().strong(&c.outcome).plain(
                        c.closed
                            .as_deref()
                            .map_or(String::new(), |t| format!(" ({t})")),
                    ),
                    Text::from(cover[&c.opened_line].describe()),
                ]
            })
            .collect();
        blocks.push(Block::Table(
            [
                "Ceremony",
                "Requested by",
                "Purpose",
                "Reason",
                "Open",
                "Custodians",
                "Outcome",
                "Covered by",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        ));
    }

    for (section, _) in SECTIONS.iter().chain(&[("Other", &[][..])]) {
        let in_section: Vec<&&Record> = kept
            .iter()
            .filter(|r| section_of(&r.event) == *section)
            .collect();
        if in_section.is_empty() && *section == "Other" {
            continue;
        }
        blocks.push(Block::Heading(2, (*section).into()));
        if in_section.is_empty() {
            blocks.push(Block::Para("None.".into()));
            continue;
        }
        let assume = *section == "Role assumptions";
        let mut head = vec!["Line", "Time", "Event", "By", "Credential", "Custodians"];
        if assume {
            head.extend(["Role", "Session access key id", "Expires"]);
        }
        head.extend(["Details", "Covered by"]);
        let rows = in_section
            .iter()
            .map(|r| {
                let mut row = vec![
                    Text::from(r.line.to_string()),
                    r.time.as_str().into(),
                    r.event.as_str().into(),
                    r.actor.as_str().into(),
                    opt(r.credential.as_ref()),
                    Text::from(r.custodians.join(", ")),
                ];
                let mut skip = vec![];
                if assume {
                    row.push(opt(r.details.get("role")));
                    row.push(
                        r.details
                            .get("session_access_key_id")
                            .map_or(Text::from("-"), |k| Text::default().code(k)),
                    );
                    row.push(opt(r.details.get("expiration")));
                    skip = vec!["role", "session_access_key_id", "expiration"];
                }
                let mut details = details_text(&r.details, &skip);
                if let Some(id) = &r.ceremony {
                    details = format!("ceremony={id}; {details}");
                }
                row.push(details.into());
                row.push(covered(r));
                row
            })
            .collect();
        blocks.push(Block::Table(
            head.into_iter().map(String::from).collect(),
            rows,
        ));
    }
    if inputs.filter.is_empty() {
        blocks.push(Block::Para(
            Text::default()
                .plain("For what was done with a session in AWS, start from its access key id: ")
                .code("breakglass review CEREMONY"),
        ));
    }
    Document {
        title: format!(
            "Credential management and access record: vault {}",
            m.vault_id
        ),
        blocks,
    }
}

/// The report as JSON.
pub fn json(inputs: &Inputs<'_>) -> Value {
    let m = inputs.manifest;
    let (entries, ceremonies) = match inputs.all {
        Some(all) => {
            let cover = coverage(all, inputs.verify);
            let kept: Vec<&Record> = all
                .iter()
                .filter(|r| !r.checkpoint && inputs.filter.keeps(r))
                .collect();
            let entries: Vec<Value> = kept
                .iter()
                .map(|r| {
                    let (covered_by, trust) = match cover[&r.line] {
                        Coverage::Signed(line) => (Some(line), "signed"),
                        Coverage::Unsigned => (None, "unsigned"),
                        Coverage::AfterBreak => (None, "after the break"),
                    };
                    json!({
                        "line": r.line,
                        "time": r.time,
                        "event": r.event,
                        "section": section_of(&r.event),
                        "actor": r.actor,
                        "credential": r.credential,
                        "ceremony": r.ceremony,
                        "custodians": r.custodians,
                        "details": r.details,
                        "covered_by_checkpoint": covered_by,
                        "trust": trust,
                    })
                })
                .collect();
            (Some(entries), ceremonies(&kept, all, inputs.now))
        }
        None => (None, Vec::new()),
    };
    let checkpoints: BTreeSet<u64> = inputs
        .all
        .unwrap_or_default()
        .iter()
        .filter(|r| r.checkpoint)
        .map(|r| r.line)
        .collect();
    json!({
        "vault_id": m.vault_id,
        "fingerprint": inputs.fingerprint,
        "made": vault_core::clock::rfc3339(inputs.now),
        "filter": {
            "since": inputs.filter.since.as_ref().map(|s| s.text.clone()),
            "credential": inputs.filter.credential,
        },
        "verification": {
            "intact": inputs.verify.is_intact(),
            "summary": verdict(inputs.verify),
            "lines": inputs.verify.entries,
            "checkpoints": inputs.verify.checkpoints,
            "checkpoint_lines": checkpoints,
            "last_checkpoint": inputs.verify.last_checkpoint,
            "unsigned_tail": inputs.verify.unsigned_tail,
            "first_problem": inputs.verify.first_problem,
            "bad_signature": inputs.verify.bad_signature,
            "head": inputs.verify.head,
        },
        "ceremonies": ceremonies,
        "entries": entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: u64, event: &str, checkpoint: bool) -> Record {
        Record {
            line,
            time: format!("2026-11-{:02}T10:00:00Z", line.min(28)),
            event: event.into(),
            actor: "ann@h".into(),
            credential: (event == "seal").then(|| "prod".to_owned()),
            ceremony: None,
            custodians: Vec::new(),
            details: BTreeMap::new(),
            checkpoint,
        }
    }

    fn log() -> Vec<Record> {
        vec![
            record(1, "init", false),
            record(2, "checkpoint", true),
            record(3, "seal", false),
            record(4, "drill", false),
            record(5, "checkpoint", true),
            record(6, "share_verify", false),
        ]
    }

    #[test]
    fn each_line_is_covered_by_the_first_valid_checkpoint_after_it() {
        let verify = VerifyReport {
            entries: 6,
            checkpoints: 2,
            last_checkpoint: Some(5),
            unsigned_tail: 1,
            ..VerifyReport::default()
        };
        let cover = coverage(&log(), &verify);
        assert_eq!(cover[&1], Coverage::Signed(2));
        assert_eq!(cover[&3], Coverage::Signed(5));
        assert_eq!(cover[&4], Coverage::Signed(5));
        assert_eq!(cover[&6], Coverage::Unsigned);
    }

    #[test]
    fn nothing_at_or_after_a_break_is_covered_even_by_a_later_checkpoint() {
        let verify = VerifyReport {
            entries: 6,
            checkpoints: 1,
            last_checkpoint: Some(2),
            bad_signature: Some(5),
            ..VerifyReport::default()
        };
        let cover = coverage(&log(), &verify);
        assert_eq!(cover[&1], Coverage::Signed(2));
        // Line 3 comes before the break, but the only checkpoint after it is the bad one.
        assert_eq!(cover[&3], Coverage::Unsigned);
        assert_eq!(cover[&5], Coverage::AfterBreak);
        assert_eq!(cover[&6], Coverage::AfterBreak);
    }

    #[test]
    fn the_filters_keep_lines_since_a_day_and_about_a_credential() {
        let since = Filter {
            since: Some(Since::parse("2026-11-04").unwrap()),
            credential: None,
        };
        let kept: Vec<u64> = log()
            .iter()
            .filter(|r| since.keeps(r))
            .map(|r| r.line)
            .collect();
        assert_eq!(kept, vec![4, 5, 6]);
        let mut drill = record(4, "drill", false);
        drill
            .details
            .insert("credential:prod".into(), "opened".into());
        let about = Filter {
            since: None,
            credential: Some("prod".into()),
        };
        assert!(about.keeps(&record(3, "seal", false)));
        assert!(about.keeps(&drill));
        assert!(!about.keeps(&record(6, "share_verify", false)));
        assert!(Since::parse("30/11/2026").is_err());
        assert_eq!(
            Since::parse("2026-11-30T14:00:00Z").unwrap().unix,
            vault_core::clock::parse_rfc3339("2026-11-30T14:00:00Z").unwrap()
        );
    }
}
