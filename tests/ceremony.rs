//! End-to-end: a remote, asynchronous ceremony. The coordinator and three custodians work in
//! separate directories and share nothing but the request and contribution files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod support;

use support::{Env, stderr};

/// The coordinator's side: a 3-of-5 vault with a credential.
type Coordinator = Env;

impl Env {
    fn coordinator() -> Coordinator {
        let c = Env::new();
        c.init_vault(&["alice", "bob", "carol", "dave", "erin"], 3, &[]);
        std::fs::write(c.path("payload"), b"the database root password").unwrap();
        c.ok(&[
            "seal",
            "db-root",
            "--kind",
            "secret",
            "--from-file",
            c.path("payload").to_str().unwrap(),
        ]);
        c
    }
    /// Opens a ceremony; returns (id, request file).
    fn open(&self, purpose: &str, expires: &str) -> (String, PathBuf) {
        let request = self.path(&format!(
            "request-{}.json",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let out = self.ok(&[
            "ceremony",
            "open",
            "--purpose",
            purpose,
            "--credential",
            "db-root",
            "--reason",
            "IdP down, INC-7",
            "--expires",
            expires,
            "--out",
            request.to_str().unwrap(),
        ]);
        let id = out.split_whitespace().nth(1).unwrap().to_owned();
        (id, request)
    }
}

/// A custodian at home: their own directory with their share file and a copy of the request;
/// no vault, no token, no configuration shared with the coordinator.
fn contribute(
    coordinator: &Coordinator,
    custodian: &str,
    request: &Path,
    extra: &[&str],
) -> (Output, PathBuf) {
    let home = tempfile::tempdir().unwrap().keep();
    std::fs::copy(
        coordinator
            .path("shares")
            .join(format!("{custodian}.share")),
        home.join("my.share"),
    )
    .unwrap();
    std::fs::copy(request, home.join("request.json")).unwrap();
    let out = home.join("contribution.json");
    let mut args = vec![
        "ceremony",
        "contribute",
        "request.json",
        "--share-file",
        "my.share",
        "--yes",
        "--out",
        "contribution.json",
    ];
    args.extend_from_slice(extra);
    let output = support::custodian_command(&home, &args).output().unwrap();
    (output, out)
}

#[test]
fn three_custodians_at_home_unseal_through_files_alone() {
    let c = Env::coordinator();
    let (id, request) = c.open("unseal", "2h");
    let mut contributions = Vec::new();
    for custodian in ["alice", "carol", "erin"] {
        let (output, file) = contribute(&c, custodian, &request, &[]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("IdP down, INC-7") && stderr(&output).contains("fingerprint")
        );
        // The file carries no share words.
        let text = std::fs::read_to_string(&file).unwrap();
        let words =
            std::fs::read_to_string(c.path("shares").join(format!("{custodian}.share"))).unwrap();
        let first_word = words
            .lines()
            .find(|l| !l.starts_with('#'))
            .unwrap()
            .split(' ')
            .nth(4)
            .unwrap()
            .to_owned();
        assert!(!text.contains(&format!(" {first_word} ")));
        contributions.push(file.display().to_string());
    }
    let status = c.ok(&[
        "ceremony",
        "status",
        &id,
        "--contribution",
        &contributions[0],
        "--contribution",
        &contributions[1],
    ]);
    assert!(
        status.contains("contributed: alice, carol") && status.contains("not met"),
        "{status}"
    );
    let out = c.ok(&[
        "ceremony",
        "close",
        &id,
        "--contribution",
        &contributions[0],
        "--contribution",
        &contributions[1],
        "--contribution",
        &contributions[2],
        "--output",
        "json",
    ]);
    assert!(
        out.contains(
            &"the database root password"
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ) || out.contains("the database"),
        "{out}"
    );
    assert!(
        !c.path("vault/ceremonies")
            .join(format!("{id}.key"))
            .exists(),
        "the transport key is destroyed"
    );
    let log = std::fs::read_to_string(c.path("vault/audit.jsonl")).unwrap();
    assert!(log.contains("\"ceremony_opened\"") && log.contains("\"ceremony_closed\""));
    // Once closed, the same contributions open nothing.
    let again = c.run(&[
        "ceremony",
        "close",
        &id,
        "--contribution",
        &contributions[0],
    ]);
    assert!(!again.status.success());
}

#[test]
fn every_rejection_is_precise() {
    let c = Env::coordinator();
    let (id, request) = c.open("unseal", "2h");
    let (_, alice) = contribute(&c, "alice", &request, &[]);
    let (_, carol) = contribute(&c, "carol", &request, &[]);
    let alice = alice.display().to_string();
    let carol = carol.display().to_string();

    // A contribution for another ceremony (an intercepted file replayed elsewhere).
    let (other_id, other_request) = c.open("unseal", "2h");
    let (_, foreign) = contribute(&c, "erin", &other_request, &[]);
    let output = c.run(&[
        "ceremony",
        "close",
        &id,
        "--contribution",
        &alice,
        "--contribution",
        &carol,
        "--contribution",
        foreign.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains(&format!("made for another ceremony ({other_id})")),
        "{}",
        stderr(&output)
    );

    // A tampered contribution.
    let (_, erin) = contribute(&c, "erin", &request, &[]);
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&erin).unwrap()).unwrap();
    let ct = json["ciphertext"].as_str().unwrap().to_owned();
    let flipped = match ct.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &ct[1..]),
    };
    json["ciphertext"] = flipped.into();
    let tampered = c.path("tampered.json");
    std::fs::write(&tampered, json.to_string()).unwrap();
    let output = c.run(&[
        "ceremony",
        "close",
        &id,
        "--contribution",
        &alice,
        "--contribution",
        &carol,
        "--contribution",
        tampered.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(5));
    assert!(stderr(&output).contains("altered"), "{}", stderr(&output));

    // The same custodian twice.
    let output = c.run(&[
        "ceremony",
        "close",
        &id,
        "--contribution",
        &alice,
        "--contribution",
        &alice,
        "--contribution",
        &carol,
    ]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("alice has contributed already"),
        "{}",
        stderr(&output)
    );

    // A name that does not match the share.
    let (_, lying) = contribute(&c, "dave", &request, &["--custodian", "bob"]);
    let output = c.run(&[
        "ceremony",
        "close",
        &id,
        "--contribution",
        &alice,
        "--contribution",
        &carol,
        "--contribution",
        lying.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("signed as bob but holds the share of dave"),
        "{}",
        stderr(&output)
    );

    // An expired request: refused by the custodian's side (a request whose time is up is
    // not one a security officer is asking for now: exit 5, as any request that fails its
    // check) and by close (exit 3, as a quorum that cannot be used), saying when.
    let (expired_id, expired) = c.open("unseal", "1s");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (output, _) = contribute(&c, "alice", &expired, &[]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("expired at 20"),
        "{}",
        stderr(&output)
    );
    let output = c.run(&["ceremony", "close", &expired_id, "--contribution", &alice]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("ceremony {expired_id} expired at 20")),
        "{}",
        stderr(&output)
    );

    // History changed since the request: the audit head it embeds is gone.
    let log = c.path("vault/audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let changed = text.replacen("\"event\":\"seal\"", "\"event\":\"sael\"", 1);
    assert_ne!(changed, text);
    std::fs::write(&log, changed).unwrap();
    let (_, erin) = contribute(&c, "erin", &request, &[]);
    let output = c.run(&[
        "ceremony",
        "close",
        &id,
        "--contribution",
        &alice,
        "--contribution",
        &carol,
        "--contribution",
        erin.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("history was changed"),
        "{}",
        stderr(&output)
    );

    // Not on a terminal without --yes: refused before the share is read.
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .args([
            "ceremony",
            "contribute",
            request.to_str().unwrap(),
            "--share-file",
            c.path("shares/bob.share").to_str().unwrap(),
            "--out",
            home.path().join("x").to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--yes"));
}

#[test]
fn age_encrypted_share_files_open_with_the_identity_and_with_rage() {
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("alice.key");
    let keygen = Command::new(hsm_testing::tools::cargo_program("rage-keygen"))
        .arg("-o")
        .arg(&identity)
        .output()
        .unwrap();
    assert!(
        keygen.status.success(),
        "{}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let key_text = std::fs::read_to_string(&identity).unwrap();
    let public = key_text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .trim()
        .to_owned();
    let vault = dir.path().join("vault");
    let shares = dir.path().join("shares");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_breakglass"))
            .args(args)
            .env("BREAKGLASS_VAULT", &vault)
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("BREAKGLASS_REASON", "end-to-end test")
            .env_remove("SOFTHSM2_CONF")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let init = run(&[
        "init",
        "--dev-softhsm",
        "--custodian",
        "alice",
        "--custodian",
        "bob",
        "--threshold",
        "2",
        "--iteration-exponent",
        "0",
        "--shares-dir",
        shares.to_str().unwrap(),
        "--recipient",
        &format!("alice={public}"),
    ]);
    assert!(init.status.success(), "{}", stderr(&init));
    let encrypted = shares.join("alice.share.age");
    let text = std::fs::read_to_string(&encrypted).unwrap();
    assert!(text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    assert!(!shares.join("alice.share").exists());

    // rage decrypts it: the custodian is not tied to breakglass.
    let decrypted = Command::new(hsm_testing::tools::cargo_program("rage"))
        .arg("-d")
        .arg("-i")
        .arg(&identity)
        .arg(&encrypted)
        .output()
        .unwrap();
    assert!(
        decrypted.status.success(),
        "{}",
        String::from_utf8_lossy(&decrypted.stderr)
    );
    let plain = String::from_utf8(decrypted.stdout).unwrap();
    assert!(plain.contains("# breakglass share of custodian alice"));
    let plain_file = dir.path().join("alice-from-rage.share");
    std::fs::write(&plain_file, &plain).unwrap();
    let verify = run(&[
        "share",
        "verify",
        "--share-file",
        plain_file.to_str().unwrap(),
    ]);
    assert!(
        verify.status.success()
            && String::from_utf8_lossy(&verify.stdout).contains("custodian alice")
    );

    // breakglass reads it with the identity, and says what is missing without it.
    std::fs::write(dir.path().join("p"), b"x").unwrap();
    assert!(
        run(&[
            "seal",
            "s",
            "--kind",
            "secret",
            "--from-file",
            dir.path().join("p").to_str().unwrap()
        ])
        .status
        .success()
    );
    let bob = shares.join("bob.share");
    let without = run(&[
        "unseal",
        "s",
        "--share-file",
        encrypted.to_str().unwrap(),
        "--share-file",
        bob.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(without.status.code(), Some(2));
    assert!(
        stderr(&without).contains("--identity"),
        "{}",
        stderr(&without)
    );
    let with = run(&[
        "unseal",
        "s",
        "--share-file",
        encrypted.to_str().unwrap(),
        "--identity",
        identity.to_str().unwrap(),
        "--share-file",
        bob.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(with.status.success(), "{}", stderr(&with));
    let verify = run(&[
        "share",
        "verify",
        "--share-file",
        encrypted.to_str().unwrap(),
        "--identity",
        identity.to_str().unwrap(),
    ]);
    assert!(verify.status.success(), "{}", stderr(&verify));
}

#[test]
fn a_rekey_runs_as_a_remote_ceremony_and_retires_the_old_shares() {
    let c = Env::coordinator();
    let request = c.path("rekey-request.json");
    let out = c.ok(&[
        "ceremony",
        "open",
        "--purpose",
        "rekey",
        "--reason",
        "dave left the company",
        "--custodian",
        "alice",
        "--custodian",
        "bob",
        "--custodian",
        "carol",
        "--custodian",
        "erin",
        "--threshold",
        "3",
        "--out",
        request.to_str().unwrap(),
    ]);
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    // Custodian options belong to a rekey only.
    let misplaced = c.run(&[
        "ceremony",
        "open",
        "--purpose",
        "unseal",
        "--credential",
        "db-root",
        "--reason",
        "x",
        "--custodian",
        "mallory",
        "--out",
        c.path("misplaced.json").to_str().unwrap(),
    ]);
    assert_eq!(misplaced.status.code(), Some(2), "{}", stderr(&misplaced));
    let mut contributions = Vec::new();
    for custodian in ["bob", "dave", "erin"] {
        let (output, file) = contribute(&c, custodian, &request, &[]);
        assert!(output.status.success(), "{}", stderr(&output));
        // Each custodian is told plainly what a rekey does to their share.
        assert!(
            stderr(&output).contains("YOUR CURRENT SHARE STOPS WORKING")
                && stderr(&output).contains("3 of [alice, bob, carol, erin]"),
            "{}",
            stderr(&output)
        );
        contributions.push(file.display().to_string());
    }
    let new_shares = c.path("new-shares");
    let mut close = vec![
        "ceremony".to_owned(),
        "close".into(),
        id.clone(),
        "--shares-dir".into(),
        new_shares.display().to_string(),
    ];
    for file in &contributions {
        close.push("--contribution".into());
        close.push(file.clone());
    }
    let out = c.ok(&close.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("rekeyed"), "{out}");
    // The layout the custodians read is the one carried out: dave has no new share.
    assert!(new_shares.join("erin.share").exists());
    assert!(!new_shares.join("dave.share").exists());
    let unseal = |dir: &Path, who: [&str; 3]| {
        let mut args = vec![
            "unseal".to_owned(),
            "db-root".into(),
            "--output".into(),
            "json".into(),
        ];
        for name in who {
            args.push("--share-file".into());
            args.push(dir.join(format!("{name}.share")).display().to_string());
        }
        c.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let old = unseal(&c.path("shares"), ["alice", "carol", "erin"]);
    assert_eq!(old.status.code(), Some(3), "{}", stderr(&old));
    let new = unseal(&new_shares, ["alice", "carol", "erin"]);
    assert!(new.status.success(), "{}", stderr(&new));
    let log = std::fs::read_to_string(c.path("vault/audit.jsonl")).unwrap();
    assert!(log.contains("\"rekey\"") && log.contains("\"ceremony_closed\""));
}

#[test]
fn a_recovery_set_is_enabled_through_a_remote_ceremony() {
    let c = Env::coordinator();
    let request = c.path("recovery-request.json");
    let out = c.ok(&[
        "ceremony",
        "open",
        "--purpose",
        "recovery",
        "--recovery-threshold",
        "4",
        "--reason",
        "survive the loss of the HSM",
        "--out",
        request.to_str().unwrap(),
    ]);
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let mut close = vec![
        "ceremony".to_owned(),
        "close".into(),
        id,
        "--shares-dir".into(),
        c.path("recovery").display().to_string(),
    ];
    for custodian in ["alice", "bob", "carol"] {
        let (output, file) = contribute(&c, custodian, &request, &[]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("4 of [alice, bob, carol, dave, erin]")
                && stderr(&output).contains("WITHOUT THE TOKEN"),
            "{}",
            stderr(&output)
        );
        close.push("--contribution".into());
        close.push(file.display().to_string());
    }
    let out = c.ok(&close.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("recovery enabled"), "{out}");
    // The set works: a recovery drill opens the credential without the token.
    let mut drill = vec!["drill".to_owned(), "--recovery".into()];
    for file in [
        "shares/alice.share",
        "shares/bob.share",
        "shares/carol.share",
        "recovery/bob.recovery.share",
        "recovery/carol.recovery.share",
        "recovery/dave.recovery.share",
        "recovery/erin.recovery.share",
    ] {
        drill.push("--share-file".into());
        drill.push(c.path(file).display().to_string());
    }
    let out = c.ok(&drill.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("db-root: opened"), "{out}");
}

#[test]
fn a_cancelled_ceremony_loses_its_transport_key_and_is_recorded() {
    let c = Env::coordinator();
    let (id, request) = c.open("unseal", "2h");
    let (_, alice) = contribute(&c, "alice", &request, &[]);
    let key = c.path("vault/ceremonies").join(format!("{id}.key"));
    assert!(key.exists());
    let out = c.ok(&["ceremony", "cancel", &id]);
    assert!(out.contains("cancelled"), "{out}");
    assert!(!key.exists(), "the transport key is destroyed at cancel");
    let cancelled = c.audit_events("ceremony_cancelled");
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["ceremony"], id.as_str());
    // What was sent to it opens nothing any more, and it cannot be cancelled twice.
    let output = c.run(&[
        "ceremony",
        "close",
        &id,
        "--contribution",
        alice.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("transport key"),
        "{}",
        stderr(&output)
    );
    let again = c.run(&["ceremony", "cancel", &id]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("no open ceremony"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn an_expired_ceremony_loses_its_transport_key_at_the_next_command() {
    let c = Env::coordinator();
    // The live one first: opening it runs after the short one would have expired on a busy
    // machine, and would destroy its key before it is looked at.
    let (live, _) = c.open("unseal", "2h");
    let (id, _) = c.open("unseal", "1s");
    let key = |id: &str| c.path("vault/ceremonies").join(format!("{id}.key"));
    assert!(key(&id).exists());
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // Any ceremony command finds it expired and destroys its key, the live one keeps its own.
    let output = c.run(&["ceremony", "status", &live]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "ceremony {id} has expired: its transport key is destroyed"
        )),
        "{}",
        stderr(&output)
    );
    assert!(!key(&id).exists());
    assert!(key(&live).exists());
    // Its status says when it expired.
    let output = c.run(&["ceremony", "status", &id]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("ceremony {id} expired at 20")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_expiry_beyond_seven_days_or_beyond_any_number_is_a_clear_usage_error() {
    let c = Env::coordinator();
    for (expires, says) in [
        ("8d", "maximum of 604800 seconds"),
        ("604801", "maximum of 604800 seconds"),
        // Fits in u64 but overflowed "now + expiry" and panicked (exit 101) before.
        ("213503982334601d", "maximum of 604800 seconds"),
        ("99999999999999999999999d", "too large"),
        ("213503982334602d", "too large"),
        ("0m", "more than zero"),
        ("1w", "the unit must be"),
    ] {
        let output = c.run(&[
            "ceremony",
            "open",
            "--purpose",
            "drill",
            "--reason",
            "x",
            "--expires",
            expires,
            "--out",
            c.path("never.json").to_str().unwrap(),
        ]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{expires}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(says),
            "{expires}: {}",
            stderr(&output)
        );
        assert!(!c.path("never.json").exists());
    }
    // The longest allowed is accepted, in any unit.
    for expires in ["7d", "168h", "604800"] {
        let request = c.path(&format!("week-{expires}.json"));
        c.ok(&[
            "ceremony",
            "open",
            "--purpose",
            "drill",
            "--reason",
            "x",
            "--expires",
            expires,
            "--out",
            request.to_str().unwrap(),
        ]);
    }
}

#[test]
fn escape_sequences_in_a_request_reach_the_custodian_escaped() {
    let c = Env::coordinator();
    let request = c.path("request.json");
    // Clear the screen, then draw a fake approval and set the window title.
    let reason = "routine\x1b[2J\x1b[H\x1b[32mApproved by the security team\x1b[0m\x1b]0;ok\x07";
    c.ok(&[
        "ceremony",
        "open",
        "--purpose",
        "drill",
        "--reason",
        reason,
        "--out",
        request.to_str().unwrap(),
    ]);
    let (output, _) = contribute(&c, "alice", &request, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let shown = stderr(&output);
    assert!(
        !shown.contains('\x1b') && !shown.contains('\x07'),
        "control characters reached the terminal: {shown:?}"
    );
    assert!(
        shown.contains("routine\\x1b[2J\\x1b[H\\x1b[32mApproved by the security team"),
        "{shown}"
    );
}

#[test]
fn status_json_reports_a_foreign_contribution_without_failing_the_rest() {
    let c = Env::coordinator();
    let (id, request) = c.open("unseal", "2h");
    let (other, other_request) = c.open("unseal", "2h");
    let (_, alice) = contribute(&c, "alice", &request, &[]);
    let (_, bob) = contribute(&c, "bob", &request, &[]);
    let (_, foreign) = contribute(&c, "carol", &other_request, &[]);
    let out = c.ok(&[
        "ceremony",
        "status",
        &id,
        "--json",
        "--contribution",
        alice.to_str().unwrap(),
        "--contribution",
        foreign.to_str().unwrap(),
        "--contribution",
        bob.to_str().unwrap(),
    ]);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["id"], id.as_str());
    assert_eq!(status["purpose"], "unseal");
    assert_eq!(status["credential"], "db-root");
    assert_eq!(status["contributed"], serde_json::json!(["alice", "bob"]));
    assert_eq!(status["rejected"].as_array().unwrap().len(), 1);
    assert_eq!(status["rejected"][0]["file"], foreign.to_str().unwrap());
    assert!(
        status["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains(&format!("made for another ceremony ({other})")),
        "{status}"
    );
    assert_eq!(status["groups"][0]["contributed"], 2);
    assert_eq!(status["groups"][0]["needed"], 3);
    assert_eq!(status["quorum_met"], false);
    assert!(status["expires"].as_str().unwrap().starts_with("20"));
    assert!(status["seconds_left"].as_u64().unwrap() > 7000);
}

#[test]
fn contribute_refuses_a_share_of_another_vault_before_writing_anything() {
    let c = Env::coordinator();
    let other = Env::coordinator();
    let (_, request) = c.open("unseal", "2h");
    // alice keeps the share files of two vaults and picks the wrong one.
    let (output, out) = contribute(&other, "alice", &request, &[]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is a share of vault")
            && stderr(&output).contains("not contributed"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists(), "nothing is written");
}
