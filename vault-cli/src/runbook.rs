//! The emergency access runbook (`breakglass runbook`): the procedure for this vault, made from
//! the vault itself (custodians and quorum, tokens, recovery set, every credential and what it
//! opens, the exact commands for an in-person and a remote ceremony, what to do after, drills).
//!
//! What the runbook says is its *content*; when and from which audit head it was made is its
//! *provenance*, printed in its header and footer but kept out of the content's digest. When
//! `runbook --out FILE` writes a runbook it appends a `runbook` line to the audit log with the
//! digest, the head it was made from and the file; `status` makes the content again and
//! compares digests, so it says when the printed runbook is out of date. The digest changes
//! only when what the runbook says changes (a seal, rotation, drill, rekey, enrolment...),
//! never with the time or the vault's path.

use ring::digest::{SHA256, digest};
use serde::Serialize;
use vault_core::audit::Head;
use vault_core::envelope::{Envelope, Kind};
use vault_core::manifest::{Manifest, Quorum};

use crate::printable::{Block, Document, Text};
use crate::report::Record;

/// The audit event `runbook --out` appends.
pub const EVENT: &str = "runbook";

/// A sealed credential as the runbook describes it.
pub struct Credential {
    /// Its name.
    pub name: String,
    /// The envelope, or what is wrong with it.
    pub envelope: Result<Envelope, String>,
}

/// What a runbook is made from.
pub struct Inputs<'a> {
    /// The manifest.
    pub manifest: &'a Manifest,
    /// The vault identity's fingerprint (the one on the share cards).
    pub fingerprint: &'a str,
    /// The operators the quorum certified, with their roles.
    pub operators: &'a [vault_core::trust::Operator],
    /// Every sealed credential.
    pub credentials: &'a [Credential],
    /// The audit log's records (for drills).
    pub records: &'a [Record],
}

/// When and from what a runbook was made (not part of its digest).
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    /// When (RFC 3339).
    pub made: String,
    /// The audit head it was made from.
    pub head: Head,
    /// The vault directory, as given.
    pub vault_dir: String,
}

/// The runbook: its content blocks and its digest.
pub struct Runbook {
    content: Document,
    /// Hex SHA-256 of the content (as Markdown).
    pub digest: String,
}

impl Runbook {
    /// The runbook of the vault `inputs` describe.
    pub fn new(inputs: &Inputs<'_>) -> Runbook {
        let content = Document {
            title: title(inputs.manifest),
            blocks: content(inputs),
        };
        let digest = hex::encode(digest(&SHA256, content.blocks_markdown().as_bytes()));
        Runbook { content, digest }
    }

    /// The whole document: provenance, content, and the provenance again at the end (the page
    /// a reader turns to last).
    pub fn document(&self, provenance: &Provenance) -> Document {
        let made = Text::default()
            .plain(format!(
                "Made {} from audit line {} (SHA-256 ",
                provenance.made, provenance.head.seq
            ))
            .code(&provenance.head.hash)
            .plain(") of the vault directory ")
            .code(&provenance.vault_dir)
            .plain(". Content digest ")
            .code(&self.digest[..16])
            .plain(".");
        let mut blocks = vec![
            Block::Para(made.clone()),
            Block::Para(
                Text::default()
                    .strong("Print this again after every change to the vault")
                    .plain(" (seal, rotation, rekey, token, drill): ")
                    .code("breakglass runbook --out FILE")
                    .plain(". ")
                    .code("breakglass status")
                    .plain(" says when the runbook last written with --out is out of date."),
            ),
        ];
        blocks.extend(self.content.blocks.iter().cloned());
        blocks.push(Block::Heading(2, "This runbook".into()));
        blocks.push(Block::Para(made));
        Document {
            title: self.content.title.clone(),
            blocks,
        }
    }
}

fn title(m: &Manifest) -> String {
    format!("Emergency access runbook: vault {}", m.vault_id)
}

/// `NAME (2 of 3: ann, bo, cy)` lines of a quorum's groups.
fn group_rows(q: &Quorum) -> Vec<Vec<Text>> {
    q.groups
        .iter()
        .map(|g| {
            vec![
                Text::default().strong(&g.name),
                Text::from(format!("{} of {}", g.threshold, g.members.len())),
                Text::from(
                    g.members
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ]
        })
        .collect()
}

fn content(inputs: &Inputs<'_>) -> Vec<Block> {
    let m = inputs.manifest;
    let mut blocks = Vec::new();
    vault_section(&mut blocks, m, inputs.fingerprint);
    people_section(&mut blocks, m, inputs.operators);
    token_section(&mut blocks, m);
    credential_section(&mut blocks, inputs);
    ceremony_sections(&mut blocks, inputs);
    after_section(&mut blocks, inputs);
    drill_section(&mut blocks, inputs);
    blocks
}

fn vault_section(blocks: &mut Vec<Block>, m: &Manifest, fingerprint: &str) {
    blocks.push(Block::Heading(2, "The vault".into()));
    blocks.push(Block::Facts(vec![
        ("Vault id".into(), Text::default().code(&m.vault_id)),
        ("Fingerprint".into(), Text::default().strong(fingerprint)),
        ("Created".into(), m.created.as_str().into()),
        (
            "Reason required".into(),
            if m.policy.require_reason {
                "yes: every opening needs --reason, recorded in the audit log".into()
            } else {
                "no (the policy lets openings run without --reason)".into()
            },
        ),
        (
            "Default session".into(),
            format!("{} seconds", m.policy.default_session_seconds).into(),
        ),
    ]));
    blocks.push(Block::Para(
        Text::default()
            .plain("Before anyone types a share, the coordinator reads the fingerprint aloud from ")
            .code("breakglass status")
            .plain(" and every custodian compares it with this page and with their card. ")
            .strong("If it differs, stop."),
    ));
}

fn people_section(
    blocks: &mut Vec<Block>,
    m: &Manifest,
    operators: &[vault_core::trust::Operator],
) {
    blocks.push(Block::Heading(2, "Custodians and quorum".into()));
    let q = &m.quorum;
    blocks.push(Block::Para(
        Text::default()
            .strong(format!(
                "{} of {} group{}",
                q.group_threshold,
                q.groups.len(),
                if q.groups.len() == 1 { "" } else { "s" }
            ))
            .plain(" needed, and in each group used, its own threshold of members:"),
    ));
    blocks.push(Block::Table(
        vec!["Group".into(), "Needed".into(), "Custodians".into()],
        group_rows(q),
    ));
    blocks.push(Block::Heading(3, "Recovery set".into()));
    match &m.recovery {
        Some(r) => {
            blocks.push(Block::Para(
                Text::default()
                    .plain("Enabled. When every token is lost, a quorum above ")
                    .strong("and")
                    .plain(" these recovery shares open every credential with no token:"),
            ));
            blocks.push(Block::Table(
                vec!["Set".into(), "Needed".into(), "Members".into()],
                group_rows(r),
            ));
        }
        None => blocks.push(Block::Para(
            Text::default()
                .strong("Not enabled")
                .plain(": losing every enrolled token loses every credential. Enable it with ")
                .code("breakglass recovery enable --threshold K")
                .plain("."),
        )),
    }
    blocks.push(Block::Heading(3, "Operators".into()));
    blocks.push(Block::Para(
        Text::default()
            .plain("Certified by the quorum with the manifest; each signs with a key kept on their own machine. The ")
            .strong("security officer")
            .plain(" decides custodians and thresholds, opens ceremonies and changes the vault; the ")
            .strong("cloud administrator")
            .plain(" seals, drills and rotates."),
    ));
    blocks.push(Block::Table(
        vec![
            "Operator".into(),
            "Roles".into(),
            "Public key (first 16 hex)".into(),
        ],
        operators
            .iter()
            .map(|o| {
                vec![
                    o.name.clone().into(),
                    o.roles
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                        .into(),
                    o.public_key.chars().take(16).collect::<String>().into(),
                ]
            })
            .collect(),
    ));
}

fn token_section(blocks: &mut Vec<Block>, m: &Manifest) {
    blocks.push(Block::Heading(2, "Tokens".into()));
    blocks.push(Block::Para(
        "Any one enrolled token serves, together with a quorum. The first one present is used; \
         name another with --hsm LABEL."
            .into(),
    ));
    let rows = m
        .hsms
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut holds = vec!["sealing key"];
            if h.label == m.audit.token {
                holds.push("audit key");
            }
            let role = if i == 0 { "primary" } else { "backup" };
            let mut model = format!("{} {}", h.manufacturer, h.model);
            if h.softhsm_conf.is_some() {
                model.push_str(
                    " (DEVELOPMENT SoftHSM inside the vault directory: not for production)",
                );
            }
            vec![
                Text::default().strong(&h.label),
                Text::default().code(&h.serial),
                model.into(),
                Text::from(format!("{role}; {}", holds.join(", "))),
                Text::default().code(&h.module),
                Text::default(),
            ]
        })
        .collect();
    blocks.push(Block::Table(
        [
            "Label",
            "Serial",
            "Model",
            "Role",
            "PKCS#11 module (hint)",
            "Kept at",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    ));
}

/// The metadata keys a credential's description shows, with their names.
const OPENS: &[(&str, &str)] = &[
    ("account", "Account"),
    ("user", "IAM user"),
    ("role_arn", "Emergency role"),
    ("region", "Region"),
    ("mfa_serial", "MFA device"),
    ("external_id", "External id"),
    ("alert_rule", "Alert rule"),
    ("alert_topic", "Alert topic"),
];

fn credential_section(blocks: &mut Vec<Block>, inputs: &Inputs<'_>) {
    let m = inputs.manifest;
    blocks.push(Block::Heading(2, "Credentials".into()));
    if inputs.credentials.is_empty() {
        blocks.push(Block::Para(
            Text::default()
                .strong("None sealed yet")
                .plain(": there is nothing to open. Seal with ")
                .code("breakglass seal NAME --kind aws ...")
                .plain("."),
        ));
    }
    for c in inputs.credentials {
        blocks.push(Block::Heading(3, Text::default().code(&c.name)));
        let envelope = match &c.envelope {
            Ok(envelope) => envelope,
            Err(problem) => {
                blocks.push(Block::Para(
                    Text::default()
                        .strong("DAMAGED: ")
                        .plain(problem.as_str())
                        .plain(". Restore it from a copy and drill."),
                ));
                continue;
            }
        };
        let what = match envelope.kind {
            Kind::Aws => "AWS access keys of the break-glass IAM user, used through STS",
            Kind::AwsRoot => "an AWS root user's console login, shown on a terminal",
            Kind::Secret => "a secret (named fields or a file)",
        };
        let mut facts = vec![
            (
                "Kind".into(),
                Text::default()
                    .code(envelope.kind.as_str())
                    .plain(format!(": {what}")),
            ),
            ("Sealed".into(), envelope.created.as_str().into()),
        ];
        for (key, name) in OPENS {
            if let Some(value) = envelope.metadata.get(*key) {
                facts.push(((*name).into(), Text::default().code(value)));
            }
        }
        if envelope.kind == Kind::Aws && envelope.metadata.contains_key("role_arn") {
            let seconds = envelope
                .metadata
                .get("session_duration")
                .cloned()
                .unwrap_or_else(|| {
                    format!("{} (the vault's default)", m.policy.default_session_seconds)
                });
            facts.push((
                "Session duration".into(),
                format!("{seconds} seconds").into(),
            ));
            facts.push((
                "Session policy".into(),
                if envelope.metadata.contains_key("session_policy") {
                    "scoped down by a session policy sealed with it".into()
                } else {
                    "none: the role's own permissions".into()
                },
            ));
        }
        facts.push((
            "Tokens".into(),
            if envelope.hsm_stanzas.len() == m.hsms.len() && m.hsms.len() == 1 {
                "opens with the enrolled token".into()
            } else if envelope.hsm_stanzas.len() == m.hsms.len() {
                format!("opens with any of the {} enrolled tokens", m.hsms.len()).into()
            } else {
                Text::default().strong(format!(
                    "sealed to {} of {} enrolled tokens: run breakglass rekey or hsm enroll to reseal",
                    envelope.hsm_stanzas.len(),
                    m.hsms.len()
                ))
            },
        ));
        blocks.push(Block::Facts(facts));
    }
}

/// Whether an emergency role is sealed with the credential (assume, exec, console).
fn assumable(envelope: &Envelope) -> bool {
    envelope.kind == Kind::Aws && envelope.metadata.contains_key("role_arn")
}

/// The command that opens credential `name` in person, by kind, with what it gives.
fn open_commands(name: &str, envelope: &Envelope) -> Vec<String> {
    let reason = "--reason \"INC-NUMBER: why the glass is broken\"";
    match envelope.kind {
        _ if assumable(envelope) => vec![
            format!("# {name}: a shell with the emergency role's session in its environment"),
            format!("breakglass exec {name} {reason}"),
            format!("# or: the session as environment variables, or a console sign-in URL"),
            format!("breakglass assume {name} {reason} --format env"),
            format!("breakglass console {name} {reason}"),
        ],
        Kind::Aws => vec![
            format!("# {name}: no role sealed with it; the long-term keys into a new 0600 file"),
            format!("breakglass unseal {name} {reason} --output file:{name}.json --reveal"),
        ],
        Kind::AwsRoot => vec![
            format!("# {name}: the root login, shown on this terminal"),
            format!("breakglass unseal {name} {reason}"),
        ],
        Kind::Secret => vec![
            format!("# {name}: the secret into a new 0600 file"),
            format!("breakglass unseal {name} {reason} --output file:{name}.out"),
        ],
    }
}

fn ceremony_sections(blocks: &mut Vec<Block>, inputs: &Inputs<'_>) {
    let m = inputs.manifest;
    let opened: Vec<(&str, &Envelope)> = inputs
        .credentials
        .iter()
        .filter_map(|c| c.envelope.as_ref().ok().map(|e| (c.name.as_str(), e)))
        .collect();
    let fingerprint = inputs.fingerprint.to_owned();

    blocks.push(Block::Heading(2, "In-person ceremony".into()));
    let mut setup = vec![
        "# On the coordinator's machine, with the vault directory and a token attached:".to_owned(),
        "export BREAKGLASS_VAULT=/path/to/the/vault".to_owned(),
        "breakglass status".to_owned(),
    ];
    setup.push(format!("# The fingerprint it prints must be {fingerprint}"));
    blocks.push(Block::Commands(setup));
    blocks.push(Block::Steps(vec![
        Text::default()
            .plain("Read the fingerprint aloud; every custodian compares it with their card: ")
            .strong(&fingerprint)
            .plain("."),
        "Run the command for the credential below. The reason, the output and the audit chain \
         are checked before anyone is asked for words."
            .into(),
        "Each custodian in turn types their words at the hidden prompt; progress per group is \
         shown until the quorum is met."
            .into(),
        "Use the credential; keep the session short. Then follow \"After the emergency\".".into(),
    ]));
    let mut commands = Vec::new();
    for (name, envelope) in &opened {
        commands.extend(open_commands(name, envelope));
    }
    if commands.is_empty() {
        commands.push("# no credential is sealed yet".to_owned());
    }
    blocks.push(Block::Commands(commands));
    if m.hsms.len() > 1 {
        blocks.push(Block::Para(
            Text::default()
                .plain("With a backup token rather than the primary, add ")
                .code(format!("--hsm {}", m.hsms[1].label))
                .plain("."),
        ));
    }
    if m.recovery.is_some() {
        blocks.push(Block::Para(
            Text::default()
                .plain("Every token lost: the quorum's shares and the recovery shares open a credential with no token: ")
                .code("breakglass recover NAME --reason \"...\" --output file:PATH")
                .plain("."),
        ));
    }

    blocks.push(Block::Heading(2, "Remote ceremony".into()));
    blocks.push(Block::Para(
        "When the custodians cannot meet: the request file holds nothing secret and travels by any \
         channel; each contribution opens only with the ceremony's key, which stays in the vault."
            .into(),
    ));
    let mut remote = vec![
        "# 1. The coordinator opens the ceremony and sends request.json to the custodians:"
            .to_owned(),
    ];
    // The example: an aws credential with a role if there is one (the common emergency).
    let first = opened.iter().find(|(_, e)| assumable(e)).or(opened.first());
    match first {
        Some((name, envelope)) => {
            let purpose = if envelope.kind == Kind::Aws && envelope.metadata.contains_key("role_arn") {
                "assume"
            } else {
                "unseal"
            };
            remote.push(format!(
                "breakglass ceremony open --purpose {purpose} --credential {name} --reason \"INC-NUMBER: why\" --expires 4h --out request.json"
            ));
        }
        None => remote.push(
            "breakglass ceremony open --purpose drill --reason \"quarterly drill\" --expires 4h --out request.json"
                .to_owned(),
        ),
    }
    remote.push(format!(
        "# 2. Each custodian, on their own machine (no vault needed), checks the fingerprint {fingerprint}:"
    ));
    remote.push(
        "breakglass ceremony contribute request.json --share-file MY.share --out MY-NAME.json"
            .to_owned(),
    );
    remote.push(
        "# 3. The coordinator, as the contributions come back (ID is in request.json):".to_owned(),
    );
    remote.push(
        "breakglass ceremony status ID --contribution ann.json --contribution bo.json".to_owned(),
    );
    match first {
        Some((_, envelope)) if envelope.kind == Kind::Aws && envelope.metadata.contains_key("role_arn") => {
            remote.push("breakglass ceremony close ID --contribution ann.json --contribution bo.json --format env".to_owned());
        }
        Some((name, _)) => remote.push(format!(
            "breakglass ceremony close ID --contribution ann.json --contribution bo.json --output file:{name}.out"
        )),
        None => remote.push("breakglass ceremony close ID --contribution ann.json --contribution bo.json".to_owned()),
    }
    blocks.push(Block::Commands(remote));
    if opened.len() > 1 {
        blocks.push(Block::Para(
            "For another credential, put its name after --credential (--purpose assume for an aws \
             credential with a role, unseal otherwise)."
                .into(),
        ));
    }
}

fn after_section(blocks: &mut Vec<Block>, inputs: &Inputs<'_>) {
    blocks.push(Block::Heading(2, "After the emergency".into()));
    let roles: Vec<(&str, &str, Option<&String>)> = inputs
        .credentials
        .iter()
        .filter_map(|c| {
            let e = c.envelope.as_ref().ok()?;
            Some((
                c.name.as_str(),
                e.metadata.get("role_arn")?.as_str(),
                e.metadata.get("user"),
            ))
        })
        .collect();
    let mut steps = Vec::new();
    let mut revoke = Vec::new();
    for (_, role, user) in &roles {
        revoke.push(match user {
            Some(user) => format!("breakglass revoke-sessions --role {role} --user {user}"),
            None => format!("breakglass revoke-sessions --role {role}"),
        });
    }
    steps.push(
        Text::default()
            .strong("Revoke the sessions")
            .plain(" issued during the emergency, once the work is done"),
    );
    if revoke.is_empty() {
        revoke.push("# no credential with an emergency role: nothing to revoke in AWS".to_owned());
    }
    let mut commands = revoke;
    steps.push(
        Text::default()
            .strong("Review")
            .plain(" what each session did, from CloudTrail (the ceremony id is in the audit log)"),
    );
    commands.push("breakglass review CEREMONY --format html --out review.html".to_owned());
    steps.push(
        Text::default()
            .strong("Rotate")
            .plain(" every credential that was opened: a new key is sealed, the old one deleted"),
    );
    for c in inputs.credentials {
        if let Ok(e) = &c.envelope
            && e.kind == Kind::Aws
        {
            commands.push(format!("breakglass rotate {}", c.name));
        }
    }
    steps.push(Text::default().strong("Rekey").plain(
        " if a share may have been seen or a custodian leaves: new shares, old ones open nothing",
    ));
    commands.push("breakglass rekey --shares-dir NEW-SHARES".to_owned());
    steps.push(
        Text::default()
            .strong("Audit")
            .plain(": check the chain and give the auditors the record of the incident"),
    );
    commands.push("breakglass audit verify".to_owned());
    commands.push(
        "breakglass audit report --since YYYY-MM-DD --format html > incident-report.html"
            .to_owned(),
    );
    steps.push(
        Text::default()
            .strong("Drill and reprint")
            .plain(": prove the path works again and print this runbook anew"),
    );
    commands.push("breakglass drill".to_owned());
    commands.push("breakglass runbook --format html --out runbook.html".to_owned());
    blocks.push(Block::Steps(steps));
    blocks.push(Block::Commands(commands));
}

fn drill_section(blocks: &mut Vec<Block>, inputs: &Inputs<'_>) {
    let m = inputs.manifest;
    let interval = m.policy.drill_interval_days;
    blocks.push(Block::Heading(2, "Drills".into()));
    let mut schedule = vec![
        Text::default()
            .strong(format!("Every {interval} days"))
            .plain(": ")
            .code("breakglass drill --aws")
            .plain(" with a quorum (in person or ")
            .code("ceremony open --purpose drill")
            .plain("); vary who takes part."),
        Text::default()
            .strong("Every month")
            .plain(", each custodian alone: ")
            .code("breakglass share verify --share-file FILE")
            .plain("."),
    ];
    if m.recovery.is_some() {
        schedule.push(
            Text::default()
                .strong("Twice a year")
                .plain(": ")
                .code("breakglass drill --recovery")
                .plain(", and a drill with each backup token (")
                .code("--hsm LABEL")
                .plain(")."),
        );
    }
    blocks.push(Block::List(schedule));
    let last = inputs.records.iter().rev().find(|r| r.event == "drill");
    match last {
        Some(drill) => {
            let failed: Vec<&str> = drill
                .drilled()
                .filter(|(_, outcome)| outcome.contains("FAILED"))
                .map(|(name, _)| name)
                .collect();
            let result = if failed.is_empty() {
                Text::default().strong("passed")
            } else {
                Text::default().strong(format!("FAILED for {}", failed.join(", ")))
            };
            let due = vault_core::clock::parse_rfc3339(&drill.time).map(|t| {
                vault_core::clock::rfc3339(t + u64::from(interval) * 86_400)[..10].to_owned()
            });
            blocks.push(Block::Facts(vec![
                (
                    "Last drill".into(),
                    Text::from(format!(
                        "{} (audit line {}) by {}",
                        drill.time, drill.line, drill.actor
                    )),
                ),
                ("Result".into(), result),
                ("Custodians".into(), drill.custodians.join(", ").into()),
                (
                    "Next drill due".into(),
                    due.unwrap_or_else(|| "-".into()).into(),
                ),
            ]));
            let rows: Vec<Vec<Text>> = drill
                .drilled()
                .map(|(name, outcome)| vec![Text::default().code(name), outcome.into()])
                .collect();
            if !rows.is_empty() {
                blocks.push(Block::Table(
                    vec!["Credential".into(), "Outcome".into()],
                    rows,
                ));
            }
        }
        None => blocks.push(Block::Para(
            Text::default()
                .strong("No drill yet")
                .plain(": run ")
                .code("breakglass drill")
                .plain(" now."),
        )),
    }
    if m.recovery.is_some() {
        let last = inputs
            .records
            .iter()
            .rev()
            .find(|r| r.event == "recovery_drill");
        blocks.push(Block::Para(match last {
            Some(r) => Text::from(format!(
                "Last recovery drill: {} (audit line {}).",
                r.time, r.line
            )),
            None => Text::default()
                .strong("No recovery drill yet")
                .plain(": ")
                .code("breakglass drill --recovery")
                .plain("."),
        }));
    }
}

/// What `status` says about the runbook last written with `--out`.
#[derive(Debug, Clone, Serialize)]
pub struct Freshness {
    /// When it was written.
    pub made: String,
    /// The file written.
    pub file: String,
    /// The audit line it was made from.
    pub head_line: u64,
    /// Whether what it says is what the vault says now.
    pub up_to_date: bool,
    /// The events after the line it was made from (when out of date).
    pub changed_by: Vec<String>,
}

/// The last runbook written with `--out`, judged against `current` (the runbook made now).
pub fn freshness(records: &[Record], current: &Runbook) -> Option<Freshness> {
    let written = records.iter().rev().find(|r| r.event == EVENT)?;
    let detail = |key: &str| written.details.get(key).cloned().unwrap_or_default();
    let head_line: u64 = detail("head_line").parse().unwrap_or(0);
    let up_to_date = detail("digest") == current.digest;
    let mut changed_by: Vec<String> = Vec::new();
    if !up_to_date {
        for r in records.iter().filter(|r| r.line > head_line) {
            if r.event != EVENT && r.event != "checkpoint" && !changed_by.contains(&r.event) {
                changed_by.push(r.event.clone());
            }
        }
    }
    Some(Freshness {
        made: written.time.clone(),
        file: detail("file"),
        head_line,
        up_to_date,
        changed_by,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use vault_core::envelope::{Payload, Stanza};
    use vault_core::manifest::{AuditKey, Custodian, Group, HsmEnrollment, PinSource, Policy};

    use super::*;
    use crate::printable::Block;

    fn group(name: &str, threshold: u8, members: &[&str]) -> Group {
        Group {
            name: name.into(),
            threshold,
            members: members
                .iter()
                .map(|m| Custodian {
                    name: (*m).into(),
                    commitment_salt: "00".repeat(32),
                    commitment: "00".repeat(32),
                })
                .collect(),
        }
    }

    fn token(label: &str) -> HsmEnrollment {
        HsmEnrollment {
            label: label.into(),
            serial: "0123456789abcdef".into(),
            manufacturer: "Yubico".into(),
            model: "YubiHSM 2".into(),
            module: "/usr/lib/x86_64-linux-gnu/pkcs11/yubihsm_pkcs11.so".into(),
            softhsm_conf: None,
            seal_key_id: "01".into(),
            seal_public_key: "04".into(),
            pin: PinSource::Quorum,
            so_pin: None,
            pin_derivation: None,
        }
    }

    fn manifest() -> Manifest {
        let quorum = vault_core::manifest::Quorum {
            group_threshold: 2,
            groups: vec![
                group("ops", 2, &["ann", "bo", "cy"]),
                group("exec", 1, &["dee"]),
            ],
            identifier: 7,
            iteration_exponent: 1,
            extendable: false,
            public_key: "11".repeat(32),
        };
        Manifest {
            format: vault_core::manifest::FORMAT.into(),
            vault_id: "00112233445566778899aabbccddeeff".into(),
            created: "2026-11-01T09:00:00Z".into(),
            recovery: Some(vault_core::manifest::Quorum {
                group_threshold: 1,
                groups: vec![group("recovery", 4, &["ann", "bo", "cy", "dee"])],
                ..quorum.clone()
            }),
            quorum,
            hsms: vec![token("vault-a"), token("vault-b")],
            audit: AuditKey {
                token: "vault-a".into(),
                key_id: "02".into(),
                public_key: "04".into(),
            },
            retired_audit_keys: Vec::new(),
            recipients: Default::default(),
            policy: Policy::default(),
        }
    }

    fn envelope(name: &str, kind: Kind, metadata: &[(&str, &str)]) -> Credential {
        let stanza = || Stanza {
            recipient: String::new(),
            enc: String::new(),
            ciphertext: String::new(),
        };
        Credential {
            name: name.into(),
            envelope: Ok(Envelope {
                format: vault_core::envelope::FORMAT.into(),
                vault_id: "00112233445566778899aabbccddeeff".into(),
                name: name.into(),
                kind,
                created: "2026-11-02T09:00:00Z".into(),
                metadata: metadata
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
                hsm_stanzas: vec![stanza(), stanza()],
                hsm_mac: None,
                quorum_stanza: stanza(),
                payload: Payload {
                    nonce: String::new(),
                    ciphertext: String::new(),
                },
            }),
        }
    }

    /// Every `breakglass` line the runbook prints, for every kind of credential, parses with
    /// the real command-line definitions (a placeholder date aside): a reader can type them.
    #[test]
    fn every_command_in_the_runbook_parses() {
        let m = manifest();
        let credentials = [
            envelope(
                "prod",
                Kind::Aws,
                &[("role_arn", "arn:aws:iam::1:role/e"), ("user", "bg")],
            ),
            envelope("keys-only", Kind::Aws, &[]),
            envelope("root", Kind::AwsRoot, &[]),
            envelope("db-root", Kind::Secret, &[]),
        ];
        let runbook = Runbook::new(&Inputs {
            manifest: &m,
            fingerprint: "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH",
            operators: &[vault_core::trust::Operator {
                name: "olivia".into(),
                roles: vec![
                    vault_core::trust::Role::SecurityOfficer,
                    vault_core::trust::Role::CloudAdministrator,
                ],
                public_key: "ab".repeat(32),
            }],
            credentials: &credentials,
            records: &[],
        });
        let mut checked = 0;
        for block in &runbook.content.blocks {
            let Block::Commands(lines) = block else {
                continue;
            };
            for line in lines.iter().filter(|l| l.starts_with("breakglass ")) {
                let line = line
                    .split(" > ")
                    .next()
                    .unwrap()
                    .replace("YYYY-MM-DD", "2026-11-30");
                let words = crate::examples::tests::shell_words(&line);
                let parsed = crate::examples::command().try_get_matches_from(&words);
                assert!(parsed.is_ok(), "{line}: {}", parsed.unwrap_err());
                checked += 1;
            }
        }
        assert!(checked >= 20, "only {checked} commands found");
        let md = runbook.content.blocks_markdown();
        for expected in [
            "breakglass exec prod",
            "breakglass unseal keys-only",
            "breakglass unseal root --reason",
            "--hsm vault-b",
            "breakglass revoke-sessions --role arn:aws:iam::1:role/e --user bg",
        ] {
            assert!(md.contains(expected), "{expected:?} is not in\n{md}");
        }
    }

    #[test]
    fn freshness_compares_content_and_names_what_came_after() {
        let line = |n: u64, event: &str, details: &[(&str, &str)]| Record {
            line: n,
            time: "2026-11-30T10:00:00Z".into(),
            event: event.into(),
            actor: "ann@h".into(),
            credential: None,
            ceremony: None,
            custodians: Vec::new(),
            details: details
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            checkpoint: event == "checkpoint",
        };
        let current = Runbook {
            content: Document {
                title: "t".into(),
                blocks: Vec::new(),
            },
            digest: "abc".into(),
        };
        assert!(freshness(&[line(1, "init", &[])], &current).is_none());
        let written = [("digest", "abc"), ("head_line", "1"), ("file", "/r.html")];
        let mut log = vec![line(1, "init", &[]), line(2, EVENT, &written)];
        let fresh = freshness(&log, &current).unwrap();
        assert!(fresh.up_to_date);
        assert_eq!(fresh.file, "/r.html");
        log.push(line(3, "seal", &[]));
        log.push(line(4, "checkpoint", &[]));
        log.push(line(5, "drill", &[]));
        let changed = Runbook {
            digest: "def".into(),
            ..current
        };
        let stale = freshness(&log, &changed).unwrap();
        assert!(!stale.up_to_date);
        assert_eq!(stale.changed_by, vec!["seal", "drill"]);
    }
}
