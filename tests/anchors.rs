//! End-to-end: the audit log cannot be rolled back under a machine that verified it. Each
//! attack an attacker with write access to the vault directory can make on the log (cut it
//! back to an earlier signed checkpoint, delete its tail, replace a line and re-chain the rest)
//! is first shown to pass on a machine that remembers nothing (`audit verify` says "intact";
//! a replaced line is refused there too, by its operator's signature), then refused with exit 5 by every command on the machine that verified the log, saying what
//! it remembered and what it found. A torn tail is still repaired: those bytes were never
//! verified. With a remembered head a command reads only the log after it.

use std::path::PathBuf;
use std::process::Output;

mod support;

use hsm_testing::shim::{self, Shim};
use hsm_testing::softhsm::SoftHsm;
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
    env.run_on("elsewhere", &["audit", "verify"])
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
                && text.contains(found)
                && text.contains("restore the log from a copy that holds that line"),
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
    // Line 7 is signed by the operator who sealed: even a machine that remembers nothing
    // finds the forgery at that line.
    let elsewhere = verify_elsewhere(&env);
    assert_eq!(elsewhere.status.code(), Some(5), "{}", stderr(&elsewhere));
    assert!(
        stderr(&elsewhere).contains("line 7") && stderr(&elsewhere).contains("signature"),
        "{}",
        stderr(&elsewhere)
    );
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
fn with_a_remembered_head_opening_reads_only_the_log_after_it_and_audit_verify_reads_all() {
    let env = vault();
    // Line 2 changed in place (same length): the remembered line 8 is untouched.
    let mut changed = lines(&env);
    assert!(changed[1].contains("hsm_enrol"));
    changed[1] = changed[1].replace("hsm_enrol", "hsm_enrox");
    write_lines(&env, &changed);
    // Opening the vault reads the remembered line and what follows it, not line 2 (verified
    // when this machine verified line 8): seal opens, appends, and moves the anchor...
    let output = env.seal_payload("new", b"x", false);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(anchor(&env, "config").0, 9);
    // ...while `audit verify` walks the whole chain and finds line 2's signature broken.
    let output = env.run(&["audit", "verify"]);
    assert!(!output.status.success());
    let report = String::from_utf8_lossy(&output.stdout).into_owned() + &stderr(&output);
    assert!(report.contains("line 2"), "{report}");
}

/// `args` on a second machine: its own configuration directory `config`, the vault pinned
/// there by the fingerprint from the share cards.
fn on_machine(env: &Env, config: &str, fingerprint: &str, args: &[&str]) -> Output {
    env.command_on(config, args)
        .env("BREAKGLASS_FINGERPRINT", fingerprint)
        .output()
        .unwrap()
}

fn unseal_args(env: &Env, out: &str) -> Vec<String> {
    let mut args = env.with_share_files(&["unseal", "db-root"], &quorum());
    args.extend([
        "--output".into(),
        format!("file:{}", env.path(out).display()),
    ]);
    args
}

#[test]
fn the_token_holds_the_head_so_another_machine_with_it_catches_a_rollback() {
    let env = vault();
    let fingerprint = env.status()["fingerprint"].as_str().unwrap().to_owned();
    // A second opening (lines 9 and 10): before signing its checkpoint, the token took the
    // head then (line 8, the seal of `web`) to hold.
    let (output, _) = env.unseal_with("db-root", &quorum(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(lines(&env).len(), 10);
    // Cut back to line 6 (db-root's seal and first opening kept, so its envelope is still
    // the one recorded).
    let mut cut = lines(&env);
    cut.truncate(6);
    write_lines(&env, &cut);
    // A second machine, which has verified nothing: the chain alone is intact...
    let verify = on_machine(&env, "machine-b", &fingerprint, &["audit", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    // ...but before the token signs anything, it compares the log with what it holds.
    let args = unseal_args(&env, "out-b");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = on_machine(&env, "machine-b", &fingerprint, &args);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("cut back or rewritten") && text.contains("token breakglass-dev saw line 8"),
        "{text}"
    );
    assert!(!env.path("out-b").exists(), "nothing released");
    assert_eq!(
        lines(&env)[..6],
        cut[..],
        "the history it found is untouched"
    );

    assert_eq!(lines(&env).len(), 7, "the failed attempt is recorded");
}

/// `args` through the fault-injection module in front of `hsm`'s SoftHSM, failing as `shim`
/// says.
fn through_shim(env: &Env, hsm: &SoftHsm, shim: &Shim, args: &[&str]) -> Output {
    let mut command = env.command(args);
    command
        .envs(hsm.env())
        .env("BREAKGLASS_PKCS11_MODULE", shim::library());
    shim.apply(&mut command);
    command.output().unwrap()
}

#[test]
fn a_token_without_room_for_the_head_is_named_and_nothing_is_signed_or_written() {
    let env = Env::new();
    let hsm = SoftHsm::for_children();
    let init = |token: &str| {
        env.init_token_args(&shim::library(), token, &["alice", "bob", "carol"], 2, &[])
    };
    // At init, the token has no room for the head: init says which token, and leaves nothing.
    let full = Shim::new().fail("C_CreateObject", 1, "CKR_DEVICE_MEMORY");
    let args = init("vault-full");
    let output = through_shim(&env, &hsm, &full, &support::as_strs(&args));
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("vault-full") && stderr(&output).contains("C_CreateObject"),
        "{}",
        stderr(&output)
    );
    assert!(!env.vault().join("vault.json").exists());

    // With room, init stores it; later, a token that cannot grow it refuses the unseal
    // before signing: nothing released, no checkpoint.
    let args = init("vault-a");
    let output = through_shim(&env, &hsm, &Shim::new(), &support::as_strs(&args));
    assert!(output.status.success(), "{}", stderr(&output));
    let output = env.seal_payload("db-root", b"root", false);
    assert!(output.status.success(), "{}", stderr(&output));
    let before = lines(&env).len();
    let full = Shim::new().fail("C_SetAttributeValue", 1, "CKR_DEVICE_MEMORY");
    let args = unseal_args(&env, "out");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = through_shim(&env, &hsm, &full, &args);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("vault-a") && stderr(&output).contains("C_SetAttributeValue"),
        "{}",
        stderr(&output)
    );
    assert!(!env.path("out").exists());
    let after = lines(&env);
    assert_eq!(
        after.len(),
        before + 1,
        "only the failed attempt is recorded"
    );
    assert!(after[before].contains("unseal_failed"), "{}", after[before]);
    let output = through_shim(&env, &hsm, &Shim::new(), &args);
    assert!(output.status.success(), "{}", stderr(&output));
}
