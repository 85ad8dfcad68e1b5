//! `breakglass review CEREMONY`: after the incident, every action taken with the ceremony's
//! sessions, for the security officer. The audit log says who broke the glass, why, and which
//! session came of it; CloudTrail (the trail's files in S3, or LookupEvents) says what was
//! done. A record belongs to the ceremony when it carries the ceremony's SourceIdentity
//! (`breakglass-<id>`: every session of the ceremony, chained ones too, and the AssumeRole
//! calls that made them) or one of its sessions' access key ids.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};
use vault_core::clock;

use crate::aws::review::{
    ConfigItem, Lookup, RegionConfig, Touched, TrailBucket, config_changes, records_from_bucket,
    records_from_lookup, touched_by,
};
use crate::cli::{ReviewArgs, ReviewFormat};
use crate::exit::{Failure, fail};

/// How far before the assume and after the session's expiry records are looked for (clock
/// skew, and CloudTrail files cover five-minute spans named by their end).
const SLACK_SECONDS: u64 = 900;

/// One ceremony as the audit log tells it.
#[derive(Debug, Clone)]
pub struct Ceremony {
    /// The ceremony id.
    pub id: String,
    /// The credential.
    pub credential: String,
    /// When the glass was broken (RFC 3339).
    pub time: String,
    /// Why.
    pub reason: Option<String>,
    /// Whose shares.
    pub custodians: Vec<String>,
    /// The role assumed.
    pub role: String,
    /// The last session's role ARN (after any chain).
    pub assumed_role_arn: Option<String>,
    /// The session's access key id.
    pub session_access_key_id: Option<String>,
    /// When the session expired.
    pub expiration: Option<String>,
    /// An error, when the assume failed.
    pub error: Option<String>,
}

impl Ceremony {
    /// `breakglass-<id>`: the session name and SourceIdentity of every session.
    pub fn source_identity(&self) -> String {
        format!("{}{}", super::aws_setup::SOURCE_IDENTITY_PREFIX, self.id)
    }

    /// The window to look in, Unix seconds.
    fn window(&self) -> (u64, u64) {
        let start = clock::parse_rfc3339(&self.time).unwrap_or(0);
        let end = self
            .expiration
            .as_deref()
            .and_then(clock::parse_rfc3339)
            .unwrap_or(start + crate::aws::MAX_SESSION_SECONDS as u64);
        (
            start.saturating_sub(SLACK_SECONDS),
            end.max(start) + SLACK_SECONDS,
        )
    }

    /// The accounts the sessions acted in (the role's and, after a chain, the member's).
    fn accounts(&self) -> Vec<String> {
        let mut accounts = BTreeSet::new();
        for arn in std::iter::once(&self.role).chain(&self.assumed_role_arn) {
            if let Some(account) = arn.split(':').nth(4).filter(|a| !a.is_empty()) {
                accounts.insert(account.to_owned());
            }
        }
        accounts.into_iter().collect()
    }
}

/// The `assume_role` entry of ceremony `id` in the audit log.
pub fn ceremony_from_audit(entries: &[vault_core::audit::Entry], id: &str) -> Option<Ceremony> {
    let entry = entries.iter().find(|e| {
        e.event == "assume_role"
            && (e.details.get("ceremony").map(String::as_str) == Some(id)
                || e.ceremony.as_deref() == Some(id))
    })?;
    let detail = |key: &str| entry.details.get(key).cloned();
    Some(Ceremony {
        id: id.to_owned(),
        credential: entry.credential.clone().unwrap_or_default(),
        time: entry.time.clone(),
        reason: detail("reason"),
        custodians: entry.custodians.clone(),
        role: detail("role").unwrap_or_default(),
        assumed_role_arn: detail("assumed_role_arn"),
        session_access_key_id: detail("session_access_key_id"),
        expiration: detail("expiration"),
        error: detail("error"),
    })
}

fn text<'a>(record: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(record, |node, key| node.get(key))?
        .as_str()
}

/// Whether a CloudTrail record is an action of the ceremony's sessions (or the AssumeRole
/// that made one).
pub fn belongs(record: &Value, identity: &str, key_ids: &BTreeSet<String>) -> bool {
    text(
        record,
        &["userIdentity", "sessionContext", "sourceIdentity"],
    ) == Some(identity)
        || text(record, &["requestParameters", "sourceIdentity"]) == Some(identity)
        || text(record, &["userIdentity", "accessKeyId"]).is_some_and(|k| key_ids.contains(k))
}

/// The ceremony's records, once each (by eventID), in time order.
pub fn select(records: Vec<Value>, ceremony: &Ceremony) -> Vec<Value> {
    let identity = ceremony.source_identity();
    let mut key_ids: BTreeSet<String> = ceremony.session_access_key_id.iter().cloned().collect();
    // The keys of every session the ceremony's AssumeRole calls made (the first one of a chain
    // is in no audit entry).
    for record in &records {
        if text(record, &["requestParameters", "sourceIdentity"]) == Some(identity.as_str())
            && let Some(key) = text(record, &["responseElements", "credentials", "accessKeyId"])
        {
            key_ids.insert(key.to_owned());
        }
    }
    let mut seen = BTreeSet::new();
    let mut selected: Vec<Value> = records
        .into_iter()
        .filter(|r| belongs(r, &identity, &key_ids))
        .filter(|r| seen.insert(text(r, &["eventID"]).unwrap_or_default().to_owned()))
        .collect();
    selected.sort_by(|a, b| {
        text(a, &["eventTime"])
            .unwrap_or_default()
            .cmp(text(b, &["eventTime"]).unwrap_or_default())
    });
    selected
}

/// The UTC days (`YYYY/MM/DD`) a window touches.
pub fn days(start: u64, end: u64) -> Vec<String> {
    let mut days = Vec::new();
    let mut day = start - start % 86_400;
    while day <= end {
        days.push(clock::rfc3339(day)[..10].replace('-', "/"));
        day += 86_400;
    }
    days
}

/// What AWS Config says, region by region, of the resources the ceremony's records name: what
/// it recorded of them in the window, that it does not record there, or why it could not be
/// read (the review goes on without it).
struct ConfigSection {
    regions: Vec<(String, Result<RegionConfig, String>)>,
}

impl ConfigSection {
    /// Asks AWS Config in each region the records name a resource in.
    fn gather(
        runtime: &tokio::runtime::Runtime,
        records: &[Value],
        (start, end): (u64, u64),
    ) -> ConfigSection {
        let touched: Vec<Touched> = records
            .iter()
            .flat_map(touched_by)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let regions: BTreeSet<String> = touched.iter().map(|t| t.region.clone()).collect();
        ConfigSection {
            regions: regions
                .into_iter()
                .map(|region| {
                    let found = runtime
                        .block_on(config_changes(&region, &touched, start, end))
                        .map_err(|e| format!("{e:#}"));
                    (region, found)
                })
                .collect(),
        }
    }

    fn item_count(&self) -> usize {
        self.regions
            .iter()
            .map(|(_, found)| match found {
                Ok(RegionConfig::Recorded { items, .. }) => items.len(),
                _ => 0,
            })
            .sum()
    }

    /// One line per region saying what Config had to say, for the report's text forms.
    fn lines(&self) -> Vec<String> {
        if self.regions.is_empty() {
            return vec!["the actions name no resource AWS Config could have recorded".into()];
        }
        self.regions
            .iter()
            .map(|(region, found)| match found {
                Ok(RegionConfig::NotRecording) => format!(
                    "{region}: AWS Config is not recording there (no configuration recorder on): \
                     no recorded changes to show"
                ),
                Ok(RegionConfig::Recorded {
                    items,
                    not_discovered,
                }) => {
                    let mut line = format!(
                        "{region}: AWS Config recorded {} change(s) in the session's window",
                        items.len()
                    );
                    if !not_discovered.is_empty() {
                        line.push_str("; no configuration item for ");
                        line.push_str(
                            &not_discovered
                                .iter()
                                .map(|t| format!("{} {}", t.resource_type, t.name))
                                .collect::<Vec<_>>()
                                .join(", "),
                        );
                    }
                    line
                }
                Err(error) => format!("{region}: AWS Config could not be read: {error}"),
            })
            .collect()
    }

    fn items(&self) -> impl Iterator<Item = (&str, &ConfigItem)> {
        self.regions.iter().flat_map(|(region, found)| {
            let items = match found {
                Ok(RegionConfig::Recorded { items, .. }) => items.as_slice(),
                _ => &[],
            };
            items.iter().map(move |item| (region.as_str(), item))
        })
    }

    fn json(&self) -> Value {
        Value::Array(
            self.regions
                .iter()
                .map(|(region, found)| match found {
                    Ok(RegionConfig::NotRecording) => {
                        json!({"region": region, "state": "not_recording"})
                    }
                    Ok(RegionConfig::Recorded {
                        items,
                        not_discovered,
                    }) => json!({
                        "region": region,
                        "state": "recording",
                        "items": items.iter().map(|i| json!({
                            "time": i.time,
                            "resource_type": i.resource_type,
                            "resource_id": i.resource_id,
                            "resource_name": i.resource_name,
                            "status": i.status,
                            "related_events": i.related_events,
                            "configuration": i.configuration,
                        })).collect::<Vec<_>>(),
                        "not_discovered": not_discovered.iter().map(|t| json!({
                            "resource_type": t.resource_type, "name": t.name,
                        })).collect::<Vec<_>>(),
                    }),
                    Err(error) => json!({"region": region, "state": "unreadable", "error": error}),
                })
                .collect(),
        )
    }
}

/// A configuration item's cells: time, region, resource, status, related events, configuration.
fn config_cells(region: &str, item: &ConfigItem) -> [String; 6] {
    let resource = match &item.resource_name {
        Some(name) if *name != item.resource_id => {
            format!("{} {name} ({})", item.resource_type, item.resource_id)
        }
        _ => format!("{} {}", item.resource_type, item.resource_id),
    };
    [
        item.time.clone(),
        region.to_owned(),
        resource,
        item.status.clone(),
        item.related_events.join(", "),
        item.configuration
            .as_deref()
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect(),
    ]
}

/// One line of the report's table.
struct Row {
    time: String,
    action: String,
    principal: String,
    region: String,
    source: String,
    outcome: String,
    request: String,
}

fn row(record: &Value) -> Row {
    let get = |path: &[&str]| text(record, path).unwrap_or_default().to_owned();
    let service = get(&["eventSource"]);
    let service = service.trim_end_matches(".amazonaws.com");
    let outcome = match text(record, &["errorCode"]) {
        Some(code) => format!("{code}: {}", get(&["errorMessage"])),
        None => "ok".to_owned(),
    };
    let request = record
        .get("requestParameters")
        .filter(|r| !r.is_null())
        .map(Value::to_string)
        .unwrap_or_default();
    Row {
        time: get(&["eventTime"]),
        action: format!("{service}:{}", get(&["eventName"])),
        principal: get(&["userIdentity", "arn"]),
        region: get(&["awsRegion"]),
        source: get(&["sourceIPAddress"]),
        outcome,
        request: request.chars().take(300).collect(),
    }
}

fn head(ceremony: &Ceremony, source: &str, count: usize) -> Vec<(&'static str, String)> {
    vec![
        ("Ceremony", ceremony.id.clone()),
        ("Credential", ceremony.credential.clone()),
        ("Broken at", ceremony.time.clone()),
        (
            "Reason",
            ceremony
                .reason
                .clone()
                .unwrap_or_else(|| "(none given)".into()),
        ),
        ("Custodians", ceremony.custodians.join(", ")),
        ("Role", ceremony.role.clone()),
        (
            "Session",
            format!(
                "{} ({}), until {}",
                ceremony.assumed_role_arn.as_deref().unwrap_or("none"),
                ceremony
                    .session_access_key_id
                    .as_deref()
                    .unwrap_or("no key"),
                ceremony.expiration.as_deref().unwrap_or("unknown")
            ),
        ),
        ("SourceIdentity", ceremony.source_identity()),
        ("Assume error", ceremony.error.clone().unwrap_or_default()),
        ("Source", source.to_owned()),
        ("Actions found", count.to_string()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect()
}

fn markdown(
    ceremony: &Ceremony,
    source: &str,
    records: &[Value],
    config: &ConfigSection,
) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = format!("# Break-glass review: ceremony {}\n\n", ceremony.id);
    for (key, value) in head(ceremony, source, records.len()) {
        out.push_str(&format!("- **{key}**: {}\n", cell(&value)));
    }
    out.push_str("\n| time | action | principal | region | source IP | outcome | request |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for r in records.iter().map(row) {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | `{}` |\n",
            cell(&r.time),
            cell(&r.action),
            cell(&r.principal),
            cell(&r.region),
            cell(&r.source),
            cell(&r.outcome),
            cell(&r.request).replace('`', "'")
        ));
    }
    out.push_str("\n## Changes AWS Config recorded\n\n");
    for line in config.lines() {
        out.push_str(&format!("- {}\n", cell(&line)));
    }
    if config.item_count() > 0 {
        out.push_str("\n| time | region | resource | status | related events | configuration |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for (region, item) in config.items() {
            let cells = config_cells(region, item).map(|c| cell(&c));
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | `{}` |\n",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                cells[5].replace('`', "'")
            ));
        }
    }
    out
}

fn html(ceremony: &Ceremony, source: &str, records: &[Value], config: &ConfigSection) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Break-glass review: ceremony {id}</title>\n\
         <style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:2px 6px;vertical-align:top}}code{{font-size:85%}}</style>\n\
         </head><body>\n<h1>Break-glass review: ceremony {id}</h1>\n<dl>\n",
        id = esc(&ceremony.id)
    );
    for (key, value) in head(ceremony, source, records.len()) {
        out.push_str(&format!("<dt>{key}</dt><dd>{}</dd>\n", esc(&value)));
    }
    out.push_str("</dl>\n<table>\n<tr><th>time</th><th>action</th><th>principal</th><th>region</th><th>source IP</th><th>outcome</th><th>request</th></tr>\n");
    for r in records.iter().map(row) {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>\n",
            esc(&r.time),
            esc(&r.action),
            esc(&r.principal),
            esc(&r.region),
            esc(&r.source),
            esc(&r.outcome),
            esc(&r.request)
        ));
    }
    out.push_str("</table>\n<h2>Changes AWS Config recorded</h2>\n<ul>\n");
    for line in config.lines() {
        out.push_str(&format!("<li>{}</li>\n", esc(&line)));
    }
    out.push_str("</ul>\n");
    if config.item_count() > 0 {
        out.push_str("<table>\n<tr><th>time</th><th>region</th><th>resource</th><th>status</th><th>related events</th><th>configuration</th></tr>\n");
        for (region, item) in config.items() {
            let cells = config_cells(region, item).map(|c| esc(&c));
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>\n",
                cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
            ));
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}

fn report_json(
    ceremony: &Ceremony,
    source: &str,
    records: &[Value],
    config: &ConfigSection,
) -> Value {
    json!({
        "ceremony": ceremony.id,
        "credential": ceremony.credential,
        "time": ceremony.time,
        "reason": ceremony.reason,
        "custodians": ceremony.custodians,
        "role": ceremony.role,
        "assumed_role_arn": ceremony.assumed_role_arn,
        "session_access_key_id": ceremony.session_access_key_id,
        "expiration": ceremony.expiration,
        "source_identity": ceremony.source_identity(),
        "error": ceremony.error,
        "source": source,
        "records": records,
        "config": config.json(),
    })
}

/// `breakglass review`.
pub fn run(vault_arg: Option<&Path>, args: &ReviewArgs) -> Result<()> {
    let vault =
        vault_core::vault::Vault::open(&super::vault_dir(vault_arg)?, &super::machine_config()?)?;
    super::check_pin(&vault)?;
    let entries = vault.audit().entries()?;
    let ceremony = ceremony_from_audit(&entries, &args.ceremony).ok_or_else(|| {
        fail(
            Failure::Usage,
            format!(
                "ceremony {}: no assume in this vault's audit log has that id (breakglass audit show lists them)",
                args.ceremony
            ),
        )
    })?;
    let (start, end) = ceremony.window();
    let runtime = crate::aws::runtime()?;
    let (records, source) = match &args.trail_bucket {
        Some(bucket) => {
            let trail = TrailBucket {
                bucket: bucket.clone(),
                prefix: args.trail_prefix.clone().unwrap_or_default(),
                org: args.trail_org.clone(),
            };
            let records = runtime.block_on(records_from_bucket(
                &trail,
                &ceremony.accounts(),
                &days(start, end),
            ))?;
            (records, format!("trail files in s3://{bucket}/"))
        }
        None => {
            let lookup = Lookup {
                access_key_ids: ceremony.session_access_key_id.iter().cloned().collect(),
                user_names: vec![ceremony.source_identity()],
                start,
                end,
            };
            (
                runtime.block_on(records_from_lookup(&lookup))?,
                "CloudTrail LookupEvents".to_owned(),
            )
        }
    };
    let records = select(records, &ceremony);
    let config = ConfigSection::gather(&runtime, &records, (start, end));
    let report = match args.format {
        ReviewFormat::Md => markdown(&ceremony, &source, &records, &config),
        ReviewFormat::Html => html(&ceremony, &source, &records, &config),
        ReviewFormat::Json => {
            serde_json::to_string_pretty(&report_json(&ceremony, &source, &records, &config))?
                + "\n"
        }
    };
    match &args.out {
        Some(path) => {
            vault_core::store::write_new_secret_file(path, report.as_bytes())?;
            eprintln!(
                "review of ceremony {}: {} actions, written to {}",
                ceremony.id,
                records.len(),
                path.display()
            );
        }
        None => print!("{report}"),
    }
    vault.record(
        vault_core::audit::Event::new("review")
            .detail("ceremony", ceremony.id.clone())
            .detail("actions", records.len().to_string())
            .detail("config_items", config.item_count().to_string())
            .detail("source", source),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;

    fn ceremony(id: &str, key: &str) -> Ceremony {
        Ceremony {
            id: id.to_owned(),
            credential: "prod".into(),
            time: "2026-01-01T09:59:00Z".into(),
            reason: Some("INC-42".into()),
            custodians: vec!["ana".into(), "cat".into()],
            role: "arn:aws:iam::123456789012:role/breakglass-emergency".into(),
            assumed_role_arn: None,
            session_access_key_id: Some(key.to_owned()),
            expiration: Some("2026-01-01T10:14:00Z".into()),
            error: None,
        }
    }

    #[test]
    fn a_window_spanning_midnight_reads_both_days_files() {
        let start = clock::parse_rfc3339("2026-01-01T23:50:00Z").unwrap();
        let end = clock::parse_rfc3339("2026-01-02T00:20:00Z").unwrap();
        assert_eq!(days(start, end), ["2026/01/01", "2026/01/02"]);
    }

    /// The local test endpoint does not implement CloudTrail LookupEvents, so this path is
    /// tested against a LOOKUPEVENTS ANSWER WRITTEN FROM THE API REFERENCE
    /// (tests/data/lookup-events.answer.json), served over HTTP to the real SDK client.
    #[test]
    fn lookup_events_against_a_written_answer_asks_by_key_and_session_name_and_keeps_the_ceremonys()
    {
        let (id, key) = ("c0ffee123456", "ASIAEXAMPLESESSION01");
        let data = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/data/lookup-events.answer.json"),
        )
        .unwrap()
        .replace("{{CEREMONY}}", id)
        .replace("{{SESSION_KEY}}", key);
        let answer = serde_json::from_str::<Value>(&data).unwrap()["answer"].to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            for stream in listener.incoming().take(2) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                bodies.push(String::from_utf8(body).unwrap());
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: recorded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                )
                .unwrap();
            }
            bodies
        });
        for (name, value) in [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEREVIEWER1"),
            ("AWS_SECRET_ACCESS_KEY", "not-a-real-secret"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ] {
            // SAFETY: nextest runs this test alone in its own process, and no other thread
            // reads the environment while it is set.
            #[allow(unsafe_code)]
            unsafe {
                std::env::set_var(name, value)
            };
        }
        let ceremony = ceremony(id, key);
        let (start, end) = ceremony.window();
        let lookup = Lookup {
            access_key_ids: vec![key.to_owned()],
            user_names: vec![ceremony.source_identity()],
            start,
            end,
        };
        let records = crate::aws::runtime()
            .unwrap()
            .block_on(records_from_lookup(&lookup))
            .unwrap();
        let bodies = server.join().unwrap();
        assert!(
            bodies[0].contains("\"AttributeKey\":\"AccessKeyId\"") && bodies[0].contains(key),
            "{}",
            bodies[0]
        );
        assert!(
            bodies[1].contains("\"AttributeKey\":\"Username\"")
                && bodies[1].contains(&format!("breakglass-{id}")),
            "{}",
            bodies[1]
        );
        // Both answers carried both events; the review keeps the ceremony's, once.
        assert_eq!(records.len(), 4);
        let kept: Vec<String> = select(records, &ceremony)
            .iter()
            .map(|r| r["eventID"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kept, vec![format!("{id}-lookup-1")]);
    }
}
