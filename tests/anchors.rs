//! End-to-end: the audit log cannot be rolled back under a machine that verified it. Each
//! attack an attacker with write access to the vault directory can make on the log (cut it
//! back to an earlier signed checkpoint, delete its tail, replace a line and re-chain the rest)
//! is first shown to pass on a machine that remembers nothing (`audit verify` says "intact"),
//! then refused with exit 5 by every command on the machine that verified the log, saying what
//! it remembered and what it found. A torn tail is still repaired: those bytes were never
//! verified. With a remembered head a command reads only the log after it.

use std::path::PathBuf;
use std::process::Output;

mod support;

use support::{Env, stderr};

/// A 2-of-3 vault with `db-root` sealed and opened (a signed checkpoint on line 6), then
/// `api` and `web` sealed (two unsigned lines after it, 7 and 8).
fn vault() -> Env {
    let env = Env::new();
    env.init_vault(&["alice", "bob", "carol"], 2, &[]);
    for name in ["db-root", "api", "web"] {
        assert!(
            env.seal_payload(name, name.as_bytes(), false)
                .status
                .success()
        );
        if name == "db-root" {
            let (output, _) = env.unseal_with(name, &quorum(), &[]);
            assert!(output.status.success(), "{}", stderr(&output));
        }
    }
    assert_eq!(lines(&env).len(), 8);
    env
}

fn quorum() -> Vec<String> {
    vec!["shares/alice.share".into(), "shares/bob.share".into()]
}

fn log_path(env: &Env) -> PathBuf {
    env.vault().join("audit.jsonl")
}

fn lines(env: &Env) -> Vec<String> {
    std::fs::read_to_string(log_path(env))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(env: &Env, lines: &[String]) {
    std::fs::write(log_path(env), lines.join("\n") + "\n").unwrap();
}

/// The audit head this machine remembers: (seq, offset).
fn anchor(env: &Env, config: &str) -> (u64, u64) {
    let dir = env.path(config).join("breakglass/anchors");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let anchor: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    (
        anchor["audit"]["seq"].as_u64().unwrap(),
        anchor["audit"]["offset"].as_u64().unwrap(),
    )
}

/// `audit verify` on another machine that remembers nothing (a fresh configuration): what the
/// chain alone says.
fn verify_elsewhere(env: &Env) -> Output {
    env.command(&["audit", "verify"])
        .env("XDG_CONFIG_HOME", env.path("elsewhere"))
        .output()
        .unwrap()
}

/// Every kind of command on this machine refuses the log with exit 5, names the remembered
/// head and what it found, and writes nothing.
fn assert_refused_everywhere(env: &Env, found: &str) {
    let before = env.vault_files();
    let mut outputs = Vec::new();
    for args in [
        &["audit", "verify"][..],
        &["audit", "show"],
        &["status"],
        &["list"],
    ] {
        outputs.push((format!("{args:?}"), env.run(args)));
    }
    outputs.push(("seal".into(), env.seal_payload("new", b"x", false)));
    outputs.push((
        "unseal".into(),
        env.unseal_with("db-root", &quorum(), &[]).0,
    ));
    let check = env.run(&[
        "share",
        "verify",
        "--share-file",
        env.path("shares/carol.share").to_str().unwrap(),
    ]);
    outputs.push(("share verify".into(), check));
    for (what, output) in outputs {
        assert_eq!(output.status.code(), Some(5), "{what}: {}", stderr(&output));
        let text = stderr(&output);
        assert!(
            text.contains("cut back or rewritten")
                && text.contains("this machine verified line 8")
                && text.contains(found),
            "{what}: {text}"
        );
    }
    assert_eq!(
        env.vault_files(),
        before,
        "a refused command writes nothing"
    );
}

#[test]
fn every_command_remembers_the_head_it_verified_and_moves_it_with_what_it_appends() {
    let env = vault();
    let length = std::fs::metadata(log_path(&env)).unwrap().len();
    assert_eq!(anchor(&env, "config"), (8, length));
    env.ok(&["status"]);
    assert_eq!(anchor(&env, "config"), (8, length), "reading moves nothing");
    assert!(env.seal_payload("new", b"x", false).status.success());
    let length = std::fs::metadata(log_path(&env)).unwrap().len();
    assert_eq!(anchor(&env, "config"), (9, length));
}

#[test]
fn a_log_cut_back_to_an_earlier_signed_checkpoint_is_refused() {
    let env = vault();
    // Line 6 is the checkpoint the token signed after the unseal; cut everything after it...
    let mut cut = lines(&env);
    assert!(cut[5].contains(r#""event":"checkpoint""#));
    cut.truncate(6);
    write_lines(&env, &cut);
    let length = std::fs::metadata(log_path(&env)).unwrap().len();
    // ...and the chain alone still says "intact"...
    let elsewhere = verify_elsewhere(&env);
    assert!(elsewhere.status.success(), "{}", stderr(&elsewhere));
    assert!(String::from_utf8_lossy(&elsewhere.stdout).contains("intact"));
    // ...but not to this machine.
    assert_refused_everywhere(
        &env,
        &format!("the log is {length} bytes long and has no line ending at that place"),
    );
    // Cut back to the checkpoint before (line 3): the same.
    cut.truncate(3);
    write_lines(&env, &cut);
    assert!(verify_elsewhere(&env).status.success());
    assert_refused_everywhere(&env, "has no line ending at that place");
}

#[test]
fn a_deleted_tail_is_refused() {
    let env = vault();
    let mut cut = lines(&env);
    cut.pop();
    write_lines(&env, &cut);
    assert!(verify_elsewhere(&env).status.success());
    assert_refused_everywhere(&env, "has no line ending at that place");
    // An empty log too.
    std::fs::write(log_path(&env), b"").unwrap();
    assert_refused_everywhere(&env, "the log is 0 bytes long");
    std::fs::remove_file(log_path(&env)).unwrap();
    let output = env.run(&["status"]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
}

/// The SHA-256 of `line`, hex.
fn sha256(line: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, line.as_bytes()).as_ref())
}

#[test]
fn a_line_replaced_and_the_rest_re_chained_is_refused() {
    let env = vault();
    let mut forged = lines(&env);
    // Line 7 recorded sealing `api`: make it `apx` (the same length), then re-chain line 8.
    assert!(forged[6].contains(r#""credential":"api""#));
    forged[6] = forged[6].replace(r#""credential":"api""#, r#""credential":"apx""#);
    let mut entry: serde_json::Value = serde_json::from_str(&forged[7]).unwrap();
    entry["prev"] = sha256(&forged[6]).into();
    forged[7] = serde_json::to_string(&entry).unwrap();
    assert_eq!(forged[7].len(), lines(&env)[7].len());
    write_lines(&env, &forged);
    let elsewhere = verify_elsewhere(&env);
    assert!(elsewhere.status.success(), "{}", stderr(&elsewhere));
    assert!(String::from_utf8_lossy(&elsewhere.stdout).contains("intact"));
    assert_refused_everywhere(
        &env,
        &format!("its line at that place hashes to {}", sha256(&forged[7])),
    );
}

#[test]
fn a_torn_tail_is_still_repaired_its_bytes_were_never_verified() {
    let env = vault();
    let (seq, offset) = anchor(&env, "config");
    let mut bytes = std::fs::read(log_path(&env)).unwrap();
    bytes.extend_from_slice(br#"{"seq":9,"time":"2026-11-30T12:00:00Z","event":"uns"#);
    std::fs::write(log_path(&env), &bytes).unwrap();
    // Reading commands work; the anchor stays at the last complete line.
    env.ok(&["status"]);
    assert_eq!(anchor(&env, "config"), (seq, offset));
    let seal = env.seal_payload("new", b"x", false);
    assert_eq!(seal.status.code(), Some(8), "{}", stderr(&seal));
    env.ok(&["audit", "repair", "--yes"]);
    assert!(env.seal_payload("new", b"x", false).status.success());
    let length = std::fs::metadata(log_path(&env)).unwrap().len();
    assert_eq!(
        anchor(&env, "config"),
        (10, length),
        "the repair line and the seal"
    );
    env.assert_audit_intact();
}

#[test]
fn with_a_remembered_head_a_command_reads_only_the_log_after_it_and_audit_verify_reads_all() {
    let env = vault();
    // Line 2 changed in place (same length): the remembered line 8 is untouched.
    let mut changed = lines(&env);
    assert!(changed[1].contains("hsm_enrol"));
    changed[1] = changed[1].replace("hsm_enrol", "hsm_enrox");
    write_lines(&env, &changed);
    // A command reads the remembered line and what follows it, not line 2 (verified when
    // this machine verified line 8)...
    let (output, _) = env.unseal_with("db-root", &quorum(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(anchor(&env, "config").0, 10);
    // ...while `audit verify` walks the whole chain and finds the break at line 3.
    let output = env.run(&["audit", "verify"]);
    assert!(!output.status.success());
    let report = String::from_utf8_lossy(&output.stdout).into_owned() + &stderr(&output);
    assert!(report.contains("line 3"), "{report}");
}
