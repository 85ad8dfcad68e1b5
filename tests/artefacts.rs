//! End-to-end: the runbook and the audit report, made from a real vault (development SoftHSM
//! token, share files, a drill), read as text, judged by `status`, attacked with hostile text,
//! and printed by headless Chromium on A4 and Letter.

use std::path::Path;

mod support;

use support::browser::{PAPERS, assert_nothing_cut, pdf_pages, pdf_text, print_to_pdf};
use support::{Env, stderr};

const ROLE: &str = "arn:aws:iam::123456789012:role/breakglass-emergency";
const MFA: &str = "arn:aws:iam::123456789012:mfa/breakglass";

/// A vault of two groups (ops: 2 of ann, bo, cy; exec: 2 of dee, eve; both groups needed)
/// with a recovery set, an aws credential with its role and MFA device, and a secret.
fn vault() -> Env {
    let env = Env::new();
    env.init_groups(
        &["ops:2:ann,bo,cy", "exec:2:dee,eve"],
        2,
        &["--recovery-threshold", "5", "--drill-interval-days", "30"],
    );
    std::fs::write(
        env.path("key.json"),
        r#"{"access_key_id":"AKIAEXAMPLEKEY000001","secret_access_key":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#,
    )
    .unwrap();
    std::fs::write(env.path("seed.txt"), "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n").unwrap();
    env.ok(&[
        "seal",
        "prod-aws",
        "--kind",
        "aws",
        "--from-file",
        env.path("key.json").to_str().unwrap(),
        "--account",
        "123456789012",
        "--user",
        "breakglass",
        "--role-arn",
        ROLE,
        "--mfa-serial",
        MFA,
        "--mfa-seed-file",
        env.path("seed.txt").to_str().unwrap(),
        "--region",
        "eu-west-1",
        "--duration",
        "1800",
    ]);
    seal_secret(&env, "db-root");
    env
}

fn seal_secret(env: &Env, name: &str) {
    std::fs::write(env.path("secret.txt"), "correct horse battery staple").unwrap();
    env.ok(&[
        "seal",
        name,
        "--kind",
        "secret",
        "--from-file",
        env.path("secret.txt").to_str().unwrap(),
    ]);
}

fn ok_with(env: &Env, mut args: Vec<String>, names: &[&str]) -> String {
    args.extend(env.share_files(names));
    env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn drill(env: &Env) {
    ok_with(env, vec!["drill".into()], &["ann", "bo", "dee", "eve"]);
}

/// `audit report --format json` with `filter` options.
fn report_json(env: &Env, filter: &[&str]) -> serde_json::Value {
    let mut args = vec!["audit", "report", "--format", "json"];
    args.extend_from_slice(filter);
    serde_json::from_str(&env.ok(&args)).unwrap()
}

fn fingerprint(env: &Env) -> String {
    env.status()["fingerprint"].as_str().unwrap().to_owned()
}

/// The runbook is the procedure for this vault: who, which tokens, what each credential opens,
/// the commands to type in person and remotely, what to do after, and the drills.
#[test]
fn the_runbook_is_the_procedure_for_this_vault() {
    let env = vault();
    drill(&env);
    let md = env.ok(&["runbook"]);
    let status = env.status();
    let token = &status["tokens"][0];
    for fact in [
        fingerprint(&env).as_str(),
        status["vault_id"].as_str().unwrap(),
        // Custodians and quorum by group, and the recovery set.
        "**2 of 2 groups**",
        "| **ops** | 2 of 3 | ann, bo, cy |",
        "| **exec** | 2 of 2 | dee, eve |",
        "| **recovery** | 5 of 5 | ann, bo, cy, dee, eve |",
        // The operators the quorum certified (init's first one holds both roles).
        "| security-officer | security officer, cloud administrator |",
        // Tokens: label, serial, model.
        token["label"].as_str().unwrap(),
        token["serial"].as_str().unwrap(),
        token["model"].as_str().unwrap(),
        "primary; sealing key, audit key",
        // What the aws credential opens.
        "` prod-aws `",
        "**Account**: ` 123456789012 `",
        "**IAM user**: ` breakglass `",
        &format!("**Emergency role**: ` {ROLE} `"),
        "**Region**: ` eu-west-1 `",
        &format!("**MFA device**: ` {MFA} `"),
        "**Session duration**: 1800 seconds",
        // The commands, for this vault's credentials.
        "breakglass exec prod-aws --reason",
        "breakglass assume prod-aws --reason \"INC-NUMBER: why the glass is broken\" --format env",
        "breakglass unseal db-root --reason \"INC-NUMBER: why the glass is broken\" --output file:db-root.out",
        "breakglass ceremony open --purpose assume --credential prod-aws",
        "breakglass ceremony contribute request.json",
        "breakglass recover NAME",
        // After: revoke, review, rotate, rekey, report.
        &format!("breakglass revoke-sessions --role {ROLE} --user breakglass"),
        "breakglass review CEREMONY",
        "breakglass rotate prod-aws",
        "breakglass rekey --shares-dir",
        "breakglass audit report --since",
        // Drills: the schedule and the last one.
        "**Every 30 days**",
        "**Result**: **passed**",
        "**Custodians**: ann, bo, dee, eve",
        "**Next drill due**",
        "No recovery drill yet",
    ] {
        assert!(md.contains(fact), "the runbook lacks {fact:?}:\n{md}");
    }
    // It carries the head it was made from.
    let head = env.ok(&["audit", "show", "--json"]);
    let lines = serde_json::from_str::<serde_json::Value>(&head).unwrap();
    let last = lines.as_array().unwrap().len();
    assert!(
        md.contains(&format!("from audit line {last} (SHA-256")),
        "{md}"
    );

    let html = env.ok(&["runbook", "--format", "html"]);
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("@page{margin:15mm}"), "print CSS");
    assert!(html.contains("<b>2 of 2 groups</b>"));
    assert!(html.contains(&format!("<code>{ROLE}</code>")));
}

/// `runbook --out` records what it wrote; `status` says it is up to date until the vault
/// changes in a way the runbook shows, then names what changed, until it is written again.
#[test]
fn status_says_when_the_written_runbook_is_out_of_date() {
    let env = vault();
    let out = env.ok(&["status"]);
    assert!(out.contains("runbook: none written yet"), "{out}");
    assert!(env.status()["runbook"].is_null());

    let file = env.path("runbook.html");
    let written = env.run(&[
        "runbook",
        "--format",
        "html",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(written.status.success(), "{}", stderr(&written));
    assert!(
        written.stdout.is_empty(),
        "the runbook goes to the file only"
    );
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.contains("Emergency access runbook"));
    assert_eq!(env.audit_events("runbook").len(), 1);
    let status = env.status();
    assert_eq!(status["runbook"]["up_to_date"], true, "{status}");
    assert_eq!(status["runbook"]["file"], file.display().to_string());
    assert!(env.ok(&["status"]).contains(": up to date"));

    // A custodian checking a share changes nothing the runbook says.
    let mut verify = vec!["share".to_owned(), "verify".to_owned()];
    verify.extend(env.share_files(&["eve"])[..2].iter().cloned());
    env.ok(&verify.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(env.status()["runbook"]["up_to_date"], true);

    // A new credential and a drill do.
    seal_secret(&env, "ldap-admin");
    drill(&env);
    let status = env.status();
    assert_eq!(status["runbook"]["up_to_date"], false, "{status}");
    assert_eq!(
        status["runbook"]["changed_by"],
        serde_json::json!(["share_verify", "seal", "drill"])
    );
    let text = env.ok(&["status"]);
    assert!(
        text.contains("is OUT OF DATE: the vault changed since (share_verify, seal, drill): run breakglass runbook --out FILE"),
        "{text}"
    );

    // Written again (over the old file, named relative to the working directory): up to
    // date, and it names the new credential.
    let again = env
        .command(&["runbook", "--format", "html", "--out", "runbook.html"])
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    env.ok(&[
        "runbook",
        "--format",
        "html",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(env.status()["runbook"]["up_to_date"], true);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("ldap-admin")
    );
}

/// The audit report lists each kind of event in its section with the checkpoint that covers
/// it, opens with the chain's verification, and keeps only what --since and --credential ask
/// for; `audit show` takes the same filters.
#[test]
fn the_audit_report_gives_each_entry_its_checkpoint_and_filters_like_audit_show() {
    let env = vault();
    drill(&env);
    ok_with(
        &env,
        vec![
            "unseal".into(),
            "db-root".into(),
            "--reason".into(),
            "INC-7: database locked out".into(),
            "--output".into(),
            format!("file:{}", env.path("db.out").display()),
        ],
        &["ann", "cy", "dee", "eve"],
    );
    seal_secret(&env, "ldap-admin");

    let report: serde_json::Value =
        serde_json::from_str(&env.ok(&["audit", "report", "--format", "json"])).unwrap();
    assert_eq!(report["verification"]["intact"], true, "{report}");
    let entries = report["entries"].as_array().unwrap();
    let find = |event: &str, credential: &str| {
        entries
            .iter()
            .find(|e| e["event"] == event && e["credential"] == credential)
            .unwrap_or_else(|| panic!("no {event} of {credential} in {report}"))
    };
    // Sealing needs no token, so the seals are signed by the next checkpoint (the drill's);
    // the last seal is not signed yet.
    let seal = find("seal", "prod-aws");
    let drill = entries.iter().find(|e| e["event"] == "drill").unwrap();
    assert_eq!(seal["section"], "Seals");
    assert_eq!(seal["trust"], "signed");
    assert_eq!(
        seal["covered_by_checkpoint"].as_u64().unwrap(),
        drill["line"].as_u64().unwrap() + 1
    );
    let unseal = find("unseal", "db-root");
    assert_eq!(unseal["section"], "Unseals and recoveries");
    assert_eq!(unseal["details"]["reason"], "INC-7: database locked out");
    assert_eq!(
        unseal["custodians"],
        serde_json::json!(["ann", "cy", "dee", "eve"])
    );
    assert_eq!(
        unseal["covered_by_checkpoint"].as_u64().unwrap(),
        unseal["line"].as_u64().unwrap() + 1
    );
    let last = find("seal", "ldap-admin");
    assert_eq!(last["trust"], "unsigned");
    assert!(last["covered_by_checkpoint"].is_null());
    assert!(entries.iter().any(|e| e["section"] == "Enrolments"));
    assert!(entries.iter().all(|e| e["event"] != "checkpoint"));

    let md = env.ok(&["audit", "report"]);
    for heading in [
        "## Verification of the audit chain",
        "**Intact:",
        "## Ceremonies",
        "## Seals",
        "## Rotations",
        "## Unseals and recoveries",
        "## Role assumptions",
        "## Drills",
        "## Revocations",
        "## Rekeys",
        "## Enrolments",
        "INC-7: database locked out",
        "| unsigned |",
    ] {
        assert!(md.contains(heading), "{heading:?} is not in\n{md}");
    }

    // --credential keeps the lines about one credential (its seal, opening and the drill that
    // opened it); --since a future day keeps none.
    let about: serde_json::Value = report_json(&env, &["--credential", "db-root"]);
    let events: Vec<&str> = about["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, vec!["seal", "drill", "unseal"]);
    let future: serde_json::Value = report_json(&env, &["--since", "2999-01-01"]);
    assert_eq!(future["entries"], serde_json::json!([]));
    // The verification covers the whole log whatever the filter.
    assert_eq!(future["verification"]["intact"], true);

    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["audit", "show", "--json", "--credential", "db-root"]))
            .unwrap();
    let shown: Vec<&str> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(shown, vec!["seal", "drill", "unseal"]);
    let today = &env.status()["created"].as_str().unwrap()[..10].to_owned();
    let text = env.ok(&["audit", "show", "--since", today]);
    assert!(text.contains(" init "), "{text}");
    assert!(
        env.ok(&["audit", "show", "--since", "2999-01-01T00:00:00Z"])
            .is_empty()
    );
    let bad = env.run(&["audit", "show", "--since", "30/11/2026"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("YYYY-MM-DD"), "{}", stderr(&bad));
}

/// A changed line breaks the chain: the report still comes out, says where it broke, marks
/// every entry from there on, and the command exits 5.
#[test]
fn the_audit_report_of_a_broken_log_says_where_and_exits_5() {
    let env = vault();
    drill(&env);
    let log = env.vault().join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    // The first seal's line claims another credential.
    let changed: Vec<String> = text
        .lines()
        .map(|l| {
            if l.contains("\"event\":\"seal\"") && l.contains("\"prod-aws\"") {
                l.replace("\"prod-aws\"", "\"prod-awz\"")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert_ne!(changed.join("\n") + "\n", text);
    let seal_line = text
        .lines()
        .position(|l| l.contains("\"event\":\"seal\""))
        .unwrap() as u64
        + 1;
    std::fs::write(&log, changed.join("\n") + "\n").unwrap();
    let output = env.run(&["audit", "report", "--format", "json"]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verification"]["intact"], false);
    let broken = report["verification"]["first_problem"]["line"]
        .as_u64()
        .unwrap();
    assert!(broken == seal_line || broken == seal_line + 1, "{report}");
    for e in report["entries"].as_array().unwrap() {
        let line = e["line"].as_u64().unwrap();
        if line >= broken {
            assert_eq!(e["trust"], "after the break", "{e}");
        } else {
            assert_ne!(e["trust"], "after the break", "{e}");
        }
    }
    // init's line was signed by the first checkpoint, before the break.
    let init = &report["entries"][0];
    assert_eq!(init["event"], "init");
    assert_eq!(init["trust"], "signed", "{init}");
    let md = env.run(&["audit", "report"]);
    assert_eq!(md.status.code(), Some(5));
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(md.contains(&format!("**BROKEN at line {broken}")), "{md}");
    assert!(md.contains("AFTER THE BREAK"), "{md}");
}

/// Text from the vault directory (a credential's metadata, a reason in the audit log) cannot
/// become markup or terminal control in the runbook or the report: it is shown, escaped.
#[test]
fn vault_text_is_shown_escaped_in_the_runbook_and_the_report() {
    let env = vault();
    let hostile = "<img src=x onerror=alert(1)>\u{1b}[2J\u{202e}";
    env.ok(&[
        "seal",
        "odd",
        "--kind",
        "aws",
        "--from-file",
        env.path("key.json").to_str().unwrap(),
        "--account",
        hostile,
        "--region",
        "eu-west-1\n# Approved by security",
    ]);
    ok_with(
        &env,
        vec![
            "unseal".into(),
            "db-root".into(),
            "--reason".into(),
            format!("</td><script>alert(2)</script>{hostile}"),
            "--output".into(),
            format!("file:{}", env.path("db.out").display()),
        ],
        &["ann", "bo", "dee", "eve"],
    );
    let runbook = env.ok(&["runbook", "--format", "html"]);
    let report = env.ok(&["audit", "report", "--format", "html"]);
    for (what, html) in [("runbook", &runbook), ("report", &report)] {
        assert!(!html.contains("<img"), "{what}: {html}");
        assert!(!html.contains("<script"), "{what}: {html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;\\x1b[2J\\u{202e}"),
            "{what}: {html}"
        );
        assert!(
            !html.contains('\u{1b}') && !html.contains('\u{202e}'),
            "{what}"
        );
    }
    assert!(report.contains("&lt;/td&gt;&lt;script&gt;alert(2)&lt;/script&gt;"));
    let md = env.ok(&["runbook"]);
    assert!(md.contains("eu-west-1\\x0a# Approved by security"), "{md}");
    assert!(!md.lines().any(|l| l.starts_with("# Approved")), "{md}");
    assert!(!md.contains('\u{1b}'));
}

/// Prints `page` on A4 and Letter: between `min` and `max` pages, nothing outside a page, and
/// every one of `words` in the PDF's text.
fn check_print(work: &Path, page: &Path, (min, max): (u32, u32), words: &[&str]) {
    for size in PAPERS {
        let pdf = print_to_pdf(work, page, size);
        let pages = pdf_pages(&pdf);
        assert!(
            (min..=max).contains(&pages),
            "{}: {pages} pages on {size}, expected {min} to {max}",
            page.display()
        );
        assert_nothing_cut(&pdf, size);
        let text = pdf_text(&pdf);
        for word in words {
            assert!(
                text.contains(word),
                "{} on {size}: {word:?} is not in the PDF's text:\n{text}",
                page.display()
            );
        }
    }
}

/// The runbook and the report print (Chromium, A4 and Letter) on a few pages each, with the
/// words that matter in the PDF's text.
#[test]
fn the_runbook_and_the_audit_report_print_on_a4_and_letter() {
    let env = vault();
    drill(&env);
    let work = env.path("render");
    std::fs::create_dir(&work).unwrap();
    let runbook = work.join("runbook.html");
    env.ok(&[
        "runbook",
        "--format",
        "html",
        "--out",
        runbook.to_str().unwrap(),
    ]);
    let fingerprint = fingerprint(&env);
    check_print(
        &work,
        &runbook,
        (2, 6),
        &[
            "Emergency access runbook",
            &fingerprint,
            "In-person ceremony",
            "Remote ceremony",
            "After the emergency",
            "prod-aws",
            "123456789012",
            "breakglass-emergency",
            "ann, bo, cy",
            "passed",
        ],
    );
    let report = work.join("report.html");
    std::fs::write(&report, env.ok(&["audit", "report", "--format", "html"])).unwrap();
    check_print(
        &work,
        &report,
        (1, 6),
        &[
            "Credential management and access record",
            "Verification of the audit chain",
            "Intact:",
            "Seals",
            "Drills",
            "prod-aws",
            "checkpoint line",
        ],
    );
}

/// A remote ceremony appears in the report as one row: who asked, for what, why, which
/// custodians contributed, and that it was carried out; also when the report is filtered to
/// the credential (the closing line does not name it).
#[test]
fn the_audit_report_gives_a_remote_ceremony_its_requester_purpose_reason_custodians_and_outcome() {
    let env = vault();
    let request = env.path("request.json");
    let out = env.ok(&[
        "ceremony",
        "open",
        "--purpose",
        "unseal",
        "--credential",
        "db-root",
        "--reason",
        "INC-9: database locked out, custodians at home",
        "--out",
        request.to_str().unwrap(),
    ]);
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let mut close = vec![
        "ceremony".to_owned(),
        "close".to_owned(),
        id.clone(),
        "--output".to_owned(),
        format!("file:{}", env.path("db.out").display()),
    ];
    for custodian in ["ann", "bo", "dee", "eve"] {
        let contribution = env.path(&format!("{custodian}.contribution.json"));
        let output = env
            .command(&[
                "ceremony",
                "contribute",
                request.to_str().unwrap(),
                "--share-file",
                env.path(&format!("shares/{custodian}.share"))
                    .to_str()
                    .unwrap(),
                "--yes",
                "--out",
                contribution.to_str().unwrap(),
            ])
            .env_remove("BREAKGLASS_VAULT")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        close.push("--contribution".to_owned());
        close.push(contribution.display().to_string());
    }
    env.ok(&close.iter().map(String::as_str).collect::<Vec<_>>());

    let report: serde_json::Value = report_json(&env, &["--credential", "db-root"]);
    let ceremonies = report["ceremonies"].as_array().unwrap();
    assert_eq!(ceremonies.len(), 1, "{report}");
    let c = &ceremonies[0];
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["purpose"], "unseal");
    assert_eq!(c["credential"], "db-root");
    assert_eq!(
        c["reason"],
        "INC-9: database locked out, custodians at home"
    );
    // The security officer who signed the request's line, by their operator name.
    assert!(
        c["requested_by"].as_str().unwrap().starts_with("operator "),
        "{c}"
    );
    assert_eq!(
        c["custodians"],
        serde_json::json!(["ann", "bo", "dee", "eve"])
    );
    assert_eq!(c["outcome"], "carried out");
    assert!(c["closed"].is_string());
    let md = env.ok(&["audit", "report"]);
    assert!(md.contains("| **carried out** ("), "{md}");
    assert!(md.contains("| ann, bo, dee, eve |"), "{md}");
}
