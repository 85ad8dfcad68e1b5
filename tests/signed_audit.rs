//! End-to-end: audit lines signed by the operator who wrote them, and envelopes recorded by
//! those lines (issue 12, attacks 1 and 4), against the built binary. Each attack an attacker
//! with write access to the vault directory could make (append a line, put back an older
//! envelope, put in an envelope sealed elsewhere with the vault's public keys) is refused with
//! exit 5 naming what is wrong; the genuine flows, on an operator's machine and on a machine
//! that holds no operator key, go on.

mod support;

use std::path::PathBuf;

use support::{Env, stderr};

/// A 2-of-3 vault with `db-root` sealed (lines 1-4: init, enrolment, checkpoint, seal).
fn vault() -> Env {
    let env = Env::new();
    env.init_vault(&["alice", "bob", "carol"], 2, &[]);
    let out = env.seal_payload("db-root", b"the genuine secret", false);
    assert!(out.status.success(), "{}", stderr(&out));
    env
}

fn quorum() -> Vec<String> {
    vec!["shares/alice.share".into(), "shares/bob.share".into()]
}

fn log(env: &Env) -> PathBuf {
    env.vault().join("audit.jsonl")
}

fn lines(env: &Env) -> Vec<String> {
    std::fs::read_to_string(log(env))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Appends `line` (without newline) to the log.
fn append(env: &Env, line: &str) {
    let mut text = std::fs::read_to_string(log(env)).unwrap();
    text.push_str(line);
    text.push('\n');
    std::fs::write(log(env), text).unwrap();
}

/// Unseals `db-root` with the quorum: the output and what was released (if anything).
fn unseal(env: &Env) -> (std::process::Output, Option<Vec<u8>>) {
    let (output, file) = env.unseal_with("db-root", &quorum(), &[]);
    let released = std::fs::read(&file).ok();
    (output, released)
}

fn assert_refused(output: &std::process::Output, says: &[&str]) {
    assert_eq!(output.status.code(), Some(5), "{}", stderr(output));
    for s in says {
        assert!(
            stderr(output).contains(s),
            "{s:?} not in: {}",
            stderr(output)
        );
    }
}

#[test]
fn every_line_is_signed_by_its_operator_and_a_seal_records_its_envelope() {
    let env = vault();
    let lines = lines(&env);
    assert_eq!(lines.len(), 4);
    for line in &lines {
        assert!(line.starts_with(r#"{"v":2,"#), "{line}");
        assert!(line.contains(r#""actor":{"operator":"#), "{line}");
        assert!(line.contains(r#","signature":""#), "{line}");
    }
    let seal: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
    assert_eq!(seal["event"], "seal");
    assert_eq!(seal["credential"], "db-root");
    assert_eq!(
        seal["details"]["envelope_digest"].as_str().unwrap().len(),
        64
    );
    let (output, released) = unseal(&env);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(released.unwrap(), b"the genuine secret");
    env.assert_audit_intact();
}

#[test]
fn an_appended_line_is_refused_signed_or_not() {
    // (a) The attack of today's log: a format-1 line appended after signed lines.
    let env = vault();
    let head = sha256(lines(&env).last().unwrap().as_bytes());
    append(
        &env,
        &format!(
            r#"{{"seq":5,"time":"2026-12-01T00:00:00Z","event":"seal","actor":{{"user":"root","host":"x"}},"credential":"db-root","prev":"{head}"}}"#
        ),
    );
    let verify = env.run(&["audit", "verify"]);
    assert_refused(
        &verify,
        &["line 5", "unsigned (format 1) line after signed lines"],
    );
    let (output, released) = unseal(&env);
    assert_refused(&output, &["line 5"]);
    assert!(released.is_none(), "nothing released");

    // (b) A format-2 line in an operator's name without a signature, and (c) one with a
    // signature that is not theirs (the genuine seal line's signature on another body).
    for forged in ["unsigned", "borrowed"] {
        let env = vault();
        let lines_now = lines(&env);
        let seal = &lines_now[3];
        let head = sha256(seal.as_bytes());
        let signature = &seal[seal.rfind(r#","signature":""#).unwrap()..];
        let body = format!(
            r#"{{"v":2,"seq":5,"time":"2026-12-01T00:00:00Z","event":"seal","actor":{{"operator":"security-officer"}},"credential":"db-root","details":{{"envelope_digest":"{}"}},"prev":"{head}"}}"#,
            "ab".repeat(32)
        );
        let line = match forged {
            "unsigned" => body,
            _ => format!("{}{signature}", &body[..body.len() - 1]),
        };
        append(&env, &line);
        let verify = env.run(&["audit", "verify"]);
        let reason = if forged == "unsigned" {
            "is not signed"
        } else {
            "signature is not operator security-officer's"
        };
        assert_refused(&verify, &["line 5", reason]);
        let (output, released) = unseal(&env);
        assert_refused(&output, &["line 5"]);
        assert!(released.is_none(), "{forged}: nothing released");
    }
}

#[test]
fn an_older_envelope_put_back_is_refused() {
    let env = vault();
    let current = env.vault().join("credentials/db-root.json");
    let old = std::fs::read(&current).unwrap();
    let out = env.seal_payload("db-root", b"the rotated secret", true);
    assert!(out.status.success(), "{}", stderr(&out));
    // The attacker restores the previous version (a backup, the history copy).
    std::fs::write(&current, &old).unwrap();
    let (output, released) = unseal(&env);
    assert_refused(
        &output,
        &[
            "db-root.json",
            "is not the envelope the audit log records",
            "older copy",
        ],
    );
    assert!(released.is_none(), "the old secret is not released");
    // The genuine file back: it opens.
    let out = env.seal_payload("db-root", b"sealed again", true);
    assert!(out.status.success(), "{}", stderr(&out));
    let (output, released) = unseal(&env);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(released.unwrap(), b"sealed again");
}

#[test]
fn an_envelope_sealed_elsewhere_with_the_vaults_public_keys_is_refused() {
    let env = vault();
    // A copy of the vault directory is enough to seal with its public keys (sealing needs no
    // secret): the attacker seals their own payload in the copy, with the operator key of a
    // machine the copy trusts, and puts the envelope into the genuine vault.
    let copy = env.path("copy");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(env.vault())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    // The attacker's sealing tool: here breakglass itself on a machine of theirs (a copy of
    // an operator's configuration; sealing needs no secret of the vault).
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(env.path("config"))
        .arg(env.path("attacker"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(env.path("evil"), b"attacker's keys").unwrap();
    let out = env
        .command_on(
            "attacker",
            &[
                "seal",
                "db-root",
                "--kind",
                "secret",
                "--replace",
                "--from-file",
                env.path("evil").to_str().unwrap(),
            ],
        )
        .env("BREAKGLASS_VAULT", &copy)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::copy(
        copy.join("credentials/db-root.json"),
        env.vault().join("credentials/db-root.json"),
    )
    .unwrap();
    let (output, released) = unseal(&env);
    assert_refused(
        &output,
        &["db-root.json", "is not the envelope the audit log records"],
    );
    assert!(
        released.is_none(),
        "the substituted payload is not released"
    );
    // A drill says so too, and names the credential.
    let drill = env.run(
        &{
            let mut args = vec!["drill".to_owned()];
            args.extend(env.share_files(&["alice", "bob"]));
            args
        }
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert_ne!(drill.status.code(), Some(0), "{}", stderr(&drill));
    let said = String::from_utf8_lossy(&drill.stdout).into_owned() + &stderr(&drill);
    assert!(said.contains("db-root"), "{said}");
}

#[test]
fn a_machine_without_an_operator_key_opens_with_the_quorum_and_records_it_unsigned() {
    let env = vault();
    let fingerprint = env.status()["fingerprint"].as_str().unwrap().to_owned();
    let out = env.path("out-b");
    let mut args = env.with_share_files(&["unseal", "db-root"], &quorum());
    args.extend(["--output".into(), format!("file:{}", out.display())]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = env
        .command_on("machine-b", &args)
        .env("BREAKGLASS_FINGERPRINT", &fingerprint)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(&out).unwrap(), b"the genuine secret");
    let lines = lines(&env);
    let opening: serde_json::Value = serde_json::from_str(&lines[lines.len() - 2]).unwrap();
    assert_eq!(opening["event"], "unseal");
    assert!(opening["actor"]["quorum"].is_string(), "{opening}");
    assert!(opening.get("signature").is_none());
    let checkpoint: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert!(checkpoint["checkpoint"].is_object(), "the token signed it");
    env.assert_audit_intact();
    // That machine has no authority: it cannot seal.
    std::fs::write(env.path("p"), b"x").unwrap();
    let seal = env
        .command_on(
            "machine-b",
            &[
                "seal",
                "other",
                "--kind",
                "secret",
                "--from-file",
                env.path("p").to_str().unwrap(),
            ],
        )
        .env("BREAKGLASS_FINGERPRINT", &fingerprint)
        .output()
        .unwrap();
    assert_refused(&seal, &["no operator key"]);
    assert!(!env.vault().join("credentials/other.json").exists());
}

#[test]
fn a_removed_operators_lines_still_verify_and_their_key_signs_nothing_after() {
    let env = vault();
    let out = env.run_on("carl-machine", &["operator", "key"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut add: Vec<String> = [
        "operator",
        "add",
        "carl",
        "--role",
        "cloud-admin",
        "--key",
        &key,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    add.extend(env.share_files(&["alice", "bob"]));
    env.ok(&add.iter().map(String::as_str).collect::<Vec<_>>());
    // Carl seals from his machine (which pins the vault by its fingerprint).
    let fingerprint = env.status()["fingerprint"].as_str().unwrap().to_owned();
    std::fs::write(env.path("p"), b"carl's").unwrap();
    let carl_seals = |name: &str| {
        env.command_on(
            "carl-machine",
            &[
                "seal",
                name,
                "--kind",
                "secret",
                "--from-file",
                env.path("p").to_str().unwrap(),
            ],
        )
        .env("BREAKGLASS_FINGERPRINT", &fingerprint)
        .output()
        .unwrap()
    };
    let sealed = carl_seals("carls");
    assert!(sealed.status.success(), "{}", stderr(&sealed));
    let mut remove: Vec<String> = ["operator", "remove", "carl"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    remove.extend(env.share_files(&["alice", "bob"]));
    env.ok(&remove.iter().map(String::as_str).collect::<Vec<_>>());
    // His seal line still verifies (his key is kept as retired up to his removal)...
    env.assert_audit_intact();
    let (output, _) = env.unseal_with("carls", &quorum(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    // ...and his machine can no longer write one.
    let refused = carl_seals("later");
    assert_refused(&refused, &["belongs to no operator"]);
    // A line he signs anyway with his key and appends is refused: he signs nothing after.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.vault().join("vault.json")).unwrap()).unwrap();
    let retired = &manifest["retired_operators"][0];
    assert_eq!(retired["name"], "carl");
    assert_eq!(retired["public_key"], key.as_str());
    assert!(retired["last_line"].as_u64().unwrap() < lines(&env).len() as u64 + 1);
}

#[test]
fn a_vault_whose_log_was_written_before_signed_lines_is_upgraded_once() {
    // Made by an earlier build: a certified manifest, format-1 lines.
    let env = Env::from_fixture("known-answer-vault");
    let status = env.run(&["status"]);
    assert_refused(&status, &["breakglass upgrade"]);
    let expected: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            hsm_testing::tools::repo_root().join("tests/data/known-answer-vault/expected.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // The log as the earlier build left it, as its known answers record it.
    let history = lines(&env);
    let before = history.len();
    assert_eq!(
        before as u64,
        expected["audit"]["entries"].as_u64().unwrap()
    );
    let head =
        |line: &str| hex::encode(ring::digest::digest(&ring::digest::SHA256, line.as_bytes()));
    assert_eq!(
        head(&history[before - 1]),
        expected["audit"]["head"].as_str().unwrap()
    );
    let mut args = vec!["upgrade".to_owned()];
    for share in std::fs::read_dir(env.path("shares")).unwrap() {
        let path = share.unwrap().path();
        if path.to_string_lossy().contains("recovery") {
            continue;
        }
        args.push("--share-file".into());
        args.push(path.display().to_string());
    }
    let out = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("signed from line {} on", before + 1)),
        "{text}"
    );
    env.assert_audit_intact();
    let after = lines(&env);
    // Its history is kept byte for byte; only signed lines follow it.
    assert_eq!(after[..before], history[..]);
    assert!(after[before..].iter().all(|l| l.starts_with(r#"{"v":2,"#)));
    assert_eq!(env.status()["fingerprint"], expected["fingerprint"]);
    // Once: a second upgrade says there is nothing to do.
    let again = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("upgraded already"),
        "{}",
        stderr(&again)
    );
}
