//! The written specification (`docs/format.md`) against the code: an independent reader and
//! writer in Python (`interop/python/breakglass_format.py`, third-party libraries only) opens
//! what the built binary sealed, with the custodians' share files and the vault's SoftHSM token
//! through PKCS#11, and seals what `breakglass unseal` and `recover` then open; it recomputes
//! the derivations and checks the known-answer vectors. It authenticates the certified manifest
//! (identity, digest, quorum signature, retired operators, version chain) and verifies the audit
//! log (chain, checkpoints, remembered heads, operator-signed format-2 lines and what each actor
//! may record) to the report `breakglass audit verify` gives, refuses what breakglass refuses,
//! writes operator-signed lines and token-signed checkpoints breakglass accepts, seals envelopes
//! it records as breakglass does, opens only the envelope the log's latest signed record names,
//! and reads the committed whole-vault known answer (`tests/data/known-answer-vault`, made before
//! signed lines) as a format-1 log, then opens it once `breakglass upgrade` has signed its
//! history. Any disagreement fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

use support::{Env, stderr};

/// The Python program, run with the virtualenv's interpreter (`scripts/setup` installs the
/// pinned packages it imports; a missing one fails loudly with that advice).
fn python(args: &[&str]) -> Output {
    Command::new(hsm_testing::tools::venv_program("python"))
        .arg(hsm_testing::tools::repo_root().join("interop/python/breakglass_format.py"))
        .args(args)
        .env_remove("SOFTHSM2_CONF")
        .output()
        .unwrap()
}

/// Runs the Python program and requires success; its JSON report.
fn python_ok(args: &[&str]) -> serde_json::Value {
    let output = python(args);
    assert!(
        output.status.success(),
        "breakglass_format.py {args:?} failed (exit {:?}): {}",
        output.status.code(),
        stderr(&output)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A dev vault: 2 of alice, bob, carol, a recovery set needing all three, a sealed `secret`.
fn vault() -> (Env, Vec<u8>) {
    let env = Env::new();
    env.init_vault(
        &["alice", "bob", "carol"],
        2,
        &["--recovery-threshold", "3"],
    );
    let payload: Vec<u8> = (0..=255u8)
        .chain(b"\n\"binary\" secret".iter().copied())
        .collect();
    env.seal_secret("db-root", "payload.bin", &payload);
    (env, payload)
}

fn share(env: &Env, file: &str) -> String {
    env.path("shares").join(file).display().to_string()
}

fn vault_arg(env: &Env) -> String {
    env.vault().display().to_string()
}

fn module() -> String {
    hsm_testing::softhsm::module_path().display().to_string()
}

/// This machine's breakglass configuration directory (`XDG_CONFIG_HOME/breakglass`): where
/// init left the operator key the Python writer signs with.
fn config_arg(env: &Env) -> String {
    env.path("config/breakglass").display().to_string()
}

/// `open VAULT NAME --share ... --module ... --out OUT`: with the vault's token.
fn python_open(env: &Env, name: &str, shares: &[&str], out: &Path) -> Output {
    let mut args = vec!["open".to_owned(), vault_arg(env), name.to_owned()];
    for file in shares {
        args.extend(["--share".to_owned(), share(env, file)]);
    }
    args.extend([
        "--module".to_owned(),
        module(),
        "--out".to_owned(),
        out.display().to_string(),
    ]);
    python(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn the_python_reader_opens_what_breakglass_sealed_with_two_shares_and_the_token() {
    let (env, payload) = vault();
    let out = env.path("opened.bin");
    let output = python_open(&env, "db-root", &["carol.share", "alice.share"], &out);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["format"], "breakglass-envelope/2", "{report}");
    assert!(
        report["via"].as_str().unwrap().starts_with("token"),
        "{report}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), payload);
}

#[test]
fn the_python_reader_opens_with_the_recovery_shares_and_no_token() {
    let (env, payload) = vault();
    let out = env.path("recovered.bin");
    let mut args = vec![
        "open".to_owned(),
        vault_arg(&env),
        "db-root".to_owned(),
        "--share".to_owned(),
        share(&env, "bob.share"),
        "--share".to_owned(),
        share(&env, "carol.share"),
        "--out".to_owned(),
        out.display().to_string(),
    ];
    for who in ["alice", "bob", "carol"] {
        args.push("--recovery-share".to_owned());
        args.push(share(&env, &format!("{who}.recovery.share")));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = python_ok(&args);
    assert_eq!(report["via"], "recovery key", "{report}");
    assert_eq!(std::fs::read(&out).unwrap(), payload);
}

#[test]
fn every_derivation_recomputed_in_python_matches_the_manifest() {
    let (env, _) = vault();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.vault().join("vault.json")).unwrap()).unwrap();
    // vault.json is the certified manifest: the manifest proper is inside it.
    let manifest = manifest["manifest"].clone();
    let report = python_ok(&[
        "derive",
        &vault_arg(&env),
        "--share",
        &share(&env, "alice.share"),
        "--share",
        &share(&env, "bob.share"),
        "--recovery-share",
        &share(&env, "alice.recovery.share"),
        "--recovery-share",
        &share(&env, "bob.recovery.share"),
        "--recovery-share",
        &share(&env, "carol.recovery.share"),
    ]);
    assert_eq!(
        report["quorum_public_key"],
        manifest["quorum"]["public_key"]
    );
    assert_eq!(
        report["recovery_public_key"],
        manifest["recovery"]["public_key"]
    );
    assert_eq!(
        report["commitments"],
        serde_json::json!({"alice": true, "bob": true}),
        "{report}"
    );
    assert_eq!(
        report["recovery_commitments"],
        serde_json::json!({"alice": true, "bob": true, "carol": true}),
        "{report}"
    );
    // The PIN derivation: the user PIN Python derived logs in to the token (pkcs11-tool, a
    // third program), and a PIN from other shares' secret would not.
    let pin = report["pins"]["user"].as_str().unwrap();
    assert_eq!(pin.len(), 32);
    let login = |pin: &str| {
        Command::new(hsm_testing::tools::system_program("pkcs11-tool", "opensc"))
            .args([
                "--module",
                &module(),
                "--login",
                "--pin",
                pin,
                "--list-objects",
            ])
            .env(
                "SOFTHSM2_CONF",
                env.vault()
                    .join(manifest["hsms"][0]["softhsm_conf"].as_str().unwrap()),
            )
            .output()
            .unwrap()
    };
    let output = login(pin);
    assert!(output.status.success(), "{}", stderr(&output));
    let wrong = login(&"0".repeat(32));
    assert!(!wrong.status.success(), "a wrong PIN logged in");
}

#[test]
fn breakglass_unseals_and_recovers_what_the_python_writer_sealed() {
    let (env, _) = vault();
    let payload = "sealed by the independent writer: caf\u{e9}\n".as_bytes();
    std::fs::write(env.path("python-payload.bin"), payload).unwrap();
    python_ok(&[
        "seal",
        &vault_arg(&env),
        "from-python",
        "--kind",
        "secret",
        "--created",
        "2026-11-30T12:00:00Z",
        "--in",
        env.path("python-payload.bin").to_str().unwrap(),
        "--meta",
        "note=\"quoted\" and caf\u{e9}",
        "--meta",
        "account=123456789012",
        "--config",
        &config_arg(&env),
    ]);
    // The writer recorded the envelope as breakglass does: a `seal` line signed by this
    // machine's operator, naming its record digest.
    let seal = env.audit_events("seal").pop().unwrap();
    assert_eq!(seal["credential"], "from-python", "{seal}");
    assert_eq!(seal["actor"]["operator"], "security-officer", "{seal}");
    let inspected = python_ok(&[
        "inspect",
        env.vault()
            .join("credentials/from-python.json")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(
        seal["details"]["envelope_digest"], inspected["record_digest"],
        "{seal}"
    );
    both_accept(&env);
    let out = env.path("unsealed.bin");
    let output = env.run(&[
        "unseal",
        "from-python",
        "--share-file",
        &share(&env, "alice.share"),
        "--share-file",
        &share(&env, "bob.share"),
        "--output",
        &format!("file:{}", out.display()),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(&out).unwrap(), payload);
    // The recovery stanza the writer made opens too, with no token.
    let recovered = env.path("recovered.bin");
    let output = env.run(&[
        "recover",
        "from-python",
        "--share-file",
        &share(&env, "alice.share"),
        "--share-file",
        &share(&env, "carol.share"),
        "--share-file",
        &share(&env, "alice.recovery.share"),
        "--share-file",
        &share(&env, "bob.recovery.share"),
        "--share-file",
        &share(&env, "carol.recovery.share"),
        "--output",
        &format!("file:{}", recovered.display()),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(&recovered).unwrap(), payload);
}

/// Which envelope is genuine is what the log's latest signed record names: an older copy put
/// back after a re-seal, and an envelope sealed with the vault's public keys outside its log
/// (here: recorded in another copy of the vault), are refused by both implementations before
/// any share is used, each naming the file; the genuine one opens in both.
#[test]
fn both_implementations_open_only_the_envelope_the_latest_signed_record_names() {
    let (env, payload) = vault();
    let file = env.vault().join("credentials/db-root.json");
    let first = std::fs::read(&file).unwrap();
    std::fs::write(env.path("new.bin"), b"the new secret").unwrap();
    env.ok(&[
        "seal",
        "db-root",
        "--kind",
        "secret",
        "--from-file",
        env.path("new.bin").to_str().unwrap(),
        "--replace",
    ]);
    let out = env.path("python.out");
    let output = python_open(&env, "db-root", &["alice.share", "bob.share"], &out);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(&out).unwrap(), b"the new secret");
    // The first envelope put back: genuine once, not what the log names now.
    std::fs::write(&file, &first).unwrap();
    let refused = |name: &str, what: &str| {
        let out = env.path(&format!("{name}-{what}.python"));
        let output = python_open(&env, name, &["alice.share", "bob.share"], &out);
        assert_eq!(output.status.code(), Some(1), "{what}: {}", stderr(&output));
        let file = env.vault().join(format!("credentials/{name}.json"));
        assert!(
            stderr(&output).contains(&format!(
                "{}: credential {name} is not the envelope",
                file.display()
            )),
            "{what}: {}",
            stderr(&output)
        );
        assert!(!out.exists(), "{what}");
        let mut unseal = vec![
            "unseal".to_owned(),
            name.to_owned(),
            "--output".to_owned(),
            format!(
                "file:{}",
                env.path(&format!("{name}-{what}.rust")).display()
            ),
        ];
        unseal.extend(env.share_files(&["alice", "bob"]));
        let output = env.run(&support::as_strs(&unseal));
        assert_eq!(output.status.code(), Some(5), "{what}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(&file.display().to_string()),
            "{what}: {}",
            stderr(&output)
        );
    };
    refused("db-root", "put back");
    // Sealed with the vault's public keys, and recorded, in a copy of the vault: this vault's
    // log records no such envelope.
    let copy = env.path("copy");
    let copied = Command::new("cp")
        .args(["-r", env.vault().to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::write(env.path("elsewhere.bin"), &payload).unwrap();
    python_ok(&[
        "seal",
        copy.to_str().unwrap(),
        "elsewhere",
        "--kind",
        "secret",
        "--created",
        "2026-11-30T12:00:00Z",
        "--in",
        env.path("elsewhere.bin").to_str().unwrap(),
        "--config",
        &config_arg(&env),
    ]);
    std::fs::copy(
        copy.join("credentials/elsewhere.json"),
        env.vault().join("credentials/elsewhere.json"),
    )
    .unwrap();
    refused("elsewhere", "sealed elsewhere");
}

/// A rekey re-seals every envelope under a new quorum and records each in a signed
/// `envelope_recorded` line: the Python reader follows the old pin to the new identity through
/// the succession statement, verifies the log to breakglass's report, and opens the re-sealed
/// envelope with the new shares because the latest record names it; the envelope of before the
/// rekey, put back, is refused by both, naming the file.
#[test]
fn after_a_rekey_both_open_the_envelope_its_latest_record_names() {
    let (env, payload) = vault();
    let old_fingerprint = env.status()["fingerprint"].as_str().unwrap().to_owned();
    let file = env.vault().join("credentials/db-root.json");
    let before = std::fs::read(&file).unwrap();
    let mut rekey = vec![
        "rekey".to_owned(),
        "--yes".to_owned(),
        "--shares-dir".to_owned(),
        env.path("new-shares").display().to_string(),
    ];
    rekey.extend(env.share_files(&["alice", "bob"]));
    env.ok(&support::as_strs(&rekey));
    let manifest = python_ok(&["manifest", &vault_arg(&env), "--pin", &old_fingerprint]);
    assert_eq!(manifest["pin"], "succession", "{manifest}");
    assert_ne!(
        manifest["fingerprint"],
        old_fingerprint.as_str(),
        "{manifest}"
    );
    let (_, python_report) = both_accept(&env);
    let recorded = env.audit_events("envelope_recorded").pop().unwrap();
    assert_eq!(recorded["details"]["cause"], "rekey", "{recorded}");
    assert_eq!(
        python_report["envelope_records"]["db-root"], recorded["details"]["envelope_digest"],
        "{python_report}"
    );
    let out = env.path("rekeyed.python");
    let mut open = vec!["open".to_owned(), vault_arg(&env), "db-root".to_owned()];
    for who in ["alice", "carol"] {
        open.extend([
            "--share".to_owned(),
            env.path(&format!("new-shares/{who}.share"))
                .display()
                .to_string(),
        ]);
    }
    open.extend([
        "--module".to_owned(),
        module(),
        "--out".to_owned(),
        out.display().to_string(),
    ]);
    let report = python_ok(&support::as_strs(&open));
    assert_eq!(
        report["recorded"], recorded["details"]["envelope_digest"],
        "{report}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), payload);
    std::fs::write(&file, &before).unwrap();
    std::fs::remove_file(&out).unwrap();
    let output = python(&support::as_strs(&open));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "{}: credential db-root is not the envelope",
            file.display()
        )),
        "{}",
        stderr(&output)
    );
    let mut unseal = vec![
        "unseal".to_owned(),
        "db-root".to_owned(),
        "--output".to_owned(),
        format!("file:{}", env.path("rekeyed.rust").display()),
    ];
    for who in ["alice", "carol"] {
        unseal.extend([
            "--share-file".to_owned(),
            env.path(&format!("new-shares/{who}.share"))
                .display()
                .to_string(),
        ]);
    }
    let output = env.run(&support::as_strs(&unseal));
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&file.display().to_string()),
        "{}",
        stderr(&output)
    );
}

/// An envelope whose MAC was altered, or only its layout, is refused by both implementations,
/// each naming the check that failed.
#[test]
fn both_implementations_refuse_the_same_altered_envelope() {
    let (env, _) = vault();
    let file = env.vault().join("credentials/db-root.json");
    let original = std::fs::read_to_string(&file).unwrap();
    let report = python_ok(&["inspect", file.to_str().unwrap()]);
    assert_eq!(report["format"], "breakglass-envelope/2");
    // The hsm_mac with its first character changed: still canonical base64, wrong MAC.
    let envelope: serde_json::Value = serde_json::from_str(&original).unwrap();
    let mac = envelope["hsm_mac"].as_str().unwrap();
    let flipped = format!(
        "{}{}",
        if mac.starts_with('A') { "B" } else { "A" },
        &mac[1..]
    );
    std::fs::write(&file, original.replace(mac, &flipped)).unwrap();
    let out = env.path("python-out.bin");
    let output = python_open(&env, "db-root", &["alice.share", "bob.share"], &out);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("hsm_mac"), "{}", stderr(&output));
    assert!(!out.exists());
    let output = env.run(&[
        "unseal",
        "db-root",
        "--share-file",
        &share(&env, "alice.share"),
        "--share-file",
        &share(&env, "bob.share"),
        "--output",
        &format!("file:{}", env.path("rust-out.bin").display()),
    ]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("hsm_mac"), "{}", stderr(&output));
    // A change of layout only (one more space) is refused by both as not canonical.
    std::fs::write(&file, original.replacen("{\n", "{ \n", 1)).unwrap();
    let output = python(&["inspect", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("canonical form"),
        "{}",
        stderr(&output)
    );
    let output = env.run(&[
        "unseal",
        "db-root",
        "--share-file",
        &share(&env, "alice.share"),
        "--share-file",
        &share(&env, "bob.share"),
        "--output",
        &format!("file:{}", env.path("rust-out-2.bin").display()),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("canonical form"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_python_reader_checks_the_known_answer_vectors() {
    let vectors: PathBuf = hsm_testing::tools::repo_root().join("test-vectors/envelope-kat.json");
    assert!(
        Path::new(&vectors).is_file(),
        "{} is missing",
        vectors.display()
    );
    let report = python_ok(&["kat", vectors.to_str().unwrap()]);
    assert_eq!(report["vectors"], 2, "{report}");
    assert_eq!(report["checked"][0]["resealed"], true, "{report}");
    assert_eq!(
        report["checked"][1]["format"], "breakglass-envelope/1",
        "{report}"
    );
}

/// The members of an audit verification report both implementations print, but the reasons'
/// wording: entries, checkpoints, the last checkpoint, the unsigned tail, the first broken
/// line, the first bad signature, the head, a torn tail, whether the log has signed lines.
fn verdict(report: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "signed_lines": report["signed_lines"],
        "entries": report["entries"],
        "checkpoints": report["checkpoints"],
        "last_checkpoint": report["last_checkpoint"],
        "unsigned_tail": report["unsigned_tail"],
        "first_problem_line": report["first_problem"]["line"],
        "bad_signature": report["bad_signature"],
        "head": report["head"],
        "torn_tail": report["torn_tail"],
    })
}

/// `audit verify --json` by the binary and `audit-verify` by the Python reader: their exit
/// statuses and reports.
fn both_verify(
    env: &Env,
) -> (
    (Option<i32>, serde_json::Value),
    (Option<i32>, serde_json::Value),
) {
    let rust = env.run(&["audit", "verify", "--json"]);
    let python = python(&["audit-verify", &vault_arg(env)]);
    let parse = |output: &Output| -> serde_json::Value {
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "no report ({e}): {}{}",
                String::from_utf8_lossy(&output.stdout),
                stderr(output)
            )
        })
    };
    (
        (rust.status.code(), parse(&rust)),
        (python.status.code(), parse(&python)),
    )
}

/// Both implementations find the log intact and report the same; the binary's report and
/// Python's.
fn both_accept(env: &Env) -> (serde_json::Value, serde_json::Value) {
    let ((rust_code, rust), (python_code, python)) = both_verify(env);
    assert_eq!(
        (rust_code, python_code),
        (Some(0), Some(0)),
        "{rust}\n{python}"
    );
    assert_eq!(verdict(&python), verdict(&rust));
    (rust, python)
}

/// Both implementations refuse the log (breakglass exit 5, Python exit 1) with the same
/// report; the binary's report.
fn both_refuse(env: &Env, what: &str) -> serde_json::Value {
    let ((rust_code, rust), (python_code, python)) = both_verify(env);
    assert_eq!(
        (rust_code, python_code),
        (Some(5), Some(1)),
        "{what}: {rust}\n{python}"
    );
    assert_eq!(verdict(&python), verdict(&rust), "{what}");
    rust
}

/// The binary with `args` and the share files of `custodians`; requires success, returns
/// standard output.
fn ok_with_shares(env: &Env, args: &[&str], custodians: &[&str]) -> String {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    all.extend(env.share_files(custodians));
    env.ok(&support::as_strs(&all))
}

/// `unseal db-root` into `out` with the shares of `custodians`; requires success.
fn unseal_db_root(env: &Env, out: &Path, custodians: &[&str]) {
    let output = format!("file:{}", out.display());
    ok_with_shares(env, &["unseal", "db-root", "--output", &output], custodians);
}

fn anchor_file(env: &Env) -> PathBuf {
    let vault_id = env.status()["vault_id"].as_str().unwrap().to_owned();
    env.path(&format!("config/breakglass/anchors/{vault_id}.json"))
}

/// The certified manifest authenticated in Python from the document alone: the identity the
/// binary prints and this machine pinned, the version, the certificate digest its anchor and
/// audit log recorded, the versions the log records up to the one in force. A change to any
/// member is refused by both (the data-model encoding covers it), a change of layout by neither
/// (the signature is over the data, not the bytes), and the previous version put back is a
/// rollback to both.
#[test]
fn the_python_reader_authenticates_the_manifest_as_breakglass_does() {
    let (env, _) = vault();
    let status = env.status();
    let fingerprint = status["fingerprint"].as_str().unwrap().to_owned();
    let anchor_path = anchor_file(&env);
    let anchor_arg = anchor_path.to_str().unwrap();
    let anchor: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&anchor_path).unwrap()).unwrap();
    let vault = vault_arg(&env);
    let check_manifest = || {
        python_ok(&[
            "manifest",
            &vault,
            "--pin",
            &fingerprint,
            "--anchor",
            anchor_arg,
        ])
    };
    let report = check_manifest();
    assert_eq!(report["fingerprint"], fingerprint.as_str(), "{report}");
    assert_eq!(report["identity"], anchor["identity"], "{report}");
    assert_eq!(report["version"], status["manifest_version"], "{report}");
    assert_eq!(report["digest"], anchor["manifest"]["digest"], "{report}");
    let init = &env.audit_events("init")[0];
    assert_eq!(init["details"]["fingerprint"], fingerprint.as_str());
    assert_eq!(init["details"]["manifest_digest"], report["digest"]);
    assert_eq!(report["versions_recorded"][0]["version"], 1, "{report}");

    // Version 2: an operator added with a quorum.
    let version_1 = std::fs::read(env.vault().join("vault.json")).unwrap();
    let other_machine = env.path("other-machine");
    let key = env.run_with(
        &["operator", "key"],
        &[("XDG_CONFIG_HOME", other_machine.to_str().unwrap())],
    );
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    assert_eq!(key.len(), 64, "{key}");
    ok_with_shares(
        &env,
        &[
            "operator",
            "add",
            "bob",
            "--role",
            "cloud-admin",
            "--key",
            &key,
        ],
        &["alice", "bob"],
    );
    let report = check_manifest();
    assert_eq!(report["version"], 2, "{report}");
    assert_eq!(report["version"], env.status()["manifest_version"]);
    assert_eq!(
        report["fingerprint"],
        fingerprint.as_str(),
        "the cards stay valid"
    );
    let recorded: Vec<&serde_json::Value> = report["versions_recorded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["version"])
        .collect();
    assert_eq!(recorded, [1, 2], "{report}");
    let version_2 = std::fs::read_to_string(env.vault().join("vault.json")).unwrap();

    // The same document laid out otherwise: accepted by both.
    let document: serde_json::Value = serde_json::from_str(&version_2).unwrap();
    std::fs::write(
        env.vault().join("vault.json"),
        serde_json::to_vec(&document).unwrap(),
    )
    .unwrap();
    env.ok(&["status"]);
    python_ok(&["manifest", &vault_arg(&env), "--pin", &fingerprint]);

    // Each change refused by both: Python exits 1 naming the check, breakglass exits 5.
    let changes: [(&str, &str, &str, &str); 4] = [
        (
            "policy",
            "\"drill_interval_days\": 90",
            "\"drill_interval_days\": 3650",
            "quorum signature",
        ),
        (
            "custodian",
            "\"name\": \"carol\"",
            "\"name\": \"mallory\"",
            "is not the pinned",
        ),
        (
            "operator role",
            "\"cloud_administrator\"\n      ],\n      \"public_key\": \"",
            "\"security_officer\"\n      ],\n      \"public_key\": \"",
            "quorum signature",
        ),
        (
            "unknown member",
            "\"version\": 2,",
            "\"version\": 2,\n  \"module\": \"/tmp/evil.so\",",
            "unknown member",
        ),
    ];
    for (what, from, to, python_says) in changes {
        assert!(version_2.contains(from), "{what}: {from} not in vault.json");
        std::fs::write(
            env.vault().join("vault.json"),
            version_2.replacen(from, to, 1),
        )
        .unwrap();
        let output = python(&["manifest", &vault_arg(&env), "--pin", &fingerprint]);
        assert_eq!(output.status.code(), Some(1), "{what}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(python_says),
            "{what}: {}",
            stderr(&output)
        );
        let output = env.run(&["status"]);
        assert_eq!(output.status.code(), Some(5), "{what}: {}", stderr(&output));
    }

    // Version 1 put back: a rollback, refused against the anchor and the log by Python, and by
    // breakglass.
    std::fs::write(env.vault().join("vault.json"), &version_1).unwrap();
    let output = python(&["manifest", &vault_arg(&env), "--anchor", anchor_arg]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("rollback"), "{}", stderr(&output));
    let output = python(&["manifest", &vault_arg(&env)]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the audit log records version 2"),
        "{}",
        stderr(&output)
    );
    let output = env.run(&["status"]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
}

/// A manifest that remembers a custodian's recipient (format `breakglass-vault/2`): the Python
/// reader authenticates it as breakglass does and verifies its log; a recipient replaced in
/// `vault.json` fails the quorum signature in both, and a format string that contradicts the
/// recipients is refused by both as malformed.
#[test]
fn the_python_reader_authenticates_a_manifest_that_remembers_recipients() {
    const AGE: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    let env = Env::new();
    env.init_vault(
        &["alice", "bob", "carol"],
        2,
        &["--recipient", &format!("carol={AGE}")],
    );
    let fingerprint = env.status()["fingerprint"].as_str().unwrap().to_owned();
    let file = env.vault().join("vault.json");
    let original = std::fs::read_to_string(&file).unwrap();
    let document: serde_json::Value = serde_json::from_str(&original).unwrap();
    assert_eq!(document["manifest"]["format"], "breakglass-vault/2");
    assert_eq!(document["manifest"]["recipients"]["carol"], AGE);
    let report = python_ok(&["manifest", &vault_arg(&env), "--pin", &fingerprint]);
    assert_eq!(report["fingerprint"], fingerprint.as_str(), "{report}");
    both_accept(&env);
    let other = AGE.replace("age1ql3", "age1ql4");
    for (what, changed, python_says) in [
        (
            "recipient replaced",
            original.replace(AGE, &other),
            "quorum signature",
        ),
        (
            "format 1 with a recipient",
            original.replace("breakglass-vault/2", "breakglass-vault/1"),
            "is the format for that",
        ),
    ] {
        std::fs::write(&file, &changed).unwrap();
        let output = python(&["manifest", &vault_arg(&env), "--pin", &fingerprint]);
        assert_eq!(output.status.code(), Some(1), "{what}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(python_says),
            "{what}: {}",
            stderr(&output)
        );
        let output = env.run(&["status"]);
        assert_eq!(output.status.code(), Some(5), "{what}: {}", stderr(&output));
    }
}

/// An operator the quorum removes is kept in the certified manifest as a retired operator with
/// the last line they may have signed: the Python reader authenticates `retired_operators` and
/// reports it, the lines they signed while an operator (a seal from their own machine) still
/// verify in both implementations, their envelope still opens in both, and a line signed with
/// their key after that line is refused by both.
#[test]
fn a_removed_operators_lines_verify_in_both_up_to_their_last_line() {
    let (env, _) = vault();
    let fingerprint = env.status()["fingerprint"].as_str().unwrap().to_owned();
    let output = env.run_on("bob-machine", &["operator", "key"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let key = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    ok_with_shares(
        &env,
        &[
            "operator",
            "add",
            "bob",
            "--role",
            "cloud-admin",
            "--key",
            &key,
        ],
        &["alice", "bob"],
    );
    std::fs::write(env.path("api.bin"), b"bob's secret").unwrap();
    let output = env.run_on(
        "bob-machine",
        &[
            "seal",
            "api-key",
            "--kind",
            "secret",
            "--from-file",
            env.path("api.bin").to_str().unwrap(),
            "--fingerprint",
            &fingerprint,
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let seal = env.audit_events("seal").pop().unwrap();
    assert_eq!(seal["actor"]["operator"], "bob", "{seal}");
    ok_with_shares(&env, &["operator", "remove", "bob"], &["alice", "bob"]);

    let manifest = python_ok(&["manifest", &vault_arg(&env), "--pin", &fingerprint]);
    assert_eq!(manifest["version"], 3, "{manifest}");
    let retired = &manifest["retired_operators"];
    assert_eq!(retired[0]["name"], "bob", "{manifest}");
    assert_eq!(
        retired[0]["roles"],
        serde_json::json!(["cloud_administrator"]),
        "{manifest}"
    );
    let last_line = retired[0]["last_line"].as_u64().unwrap();
    assert!(
        last_line > seal["seq"].as_u64().unwrap(),
        "bob's seal is before his last line: {manifest}"
    );
    let (_, python) = both_accept(&env);
    assert!(
        python["envelope_records"]["api-key"].is_string(),
        "{python}"
    );
    let out = env.path("api.python");
    let output = python_open(&env, "api-key", &["alice.share", "carol.share"], &out);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(&out).unwrap(), b"bob's secret");

    // Bob's key signs again, after his last line: refused by both at that line.
    let log = env.vault().join("audit.jsonl");
    let entries = std::fs::read_to_string(&log).unwrap().lines().count() as u64;
    assert!(
        entries + 1 > last_line,
        "{entries} lines, last_line {last_line}"
    );
    python_ok(&[
        "audit-append",
        &vault_arg(&env),
        "--event",
        "unseal",
        "--config",
        env.path("bob-machine/breakglass").to_str().unwrap(),
        "--forge",
        "retired",
    ]);
    let rust = both_refuse(&env, "a retired operator's line");
    assert_eq!(rust["first_problem"]["line"], entries + 1, "{rust}");
}

/// A fresh vault after seal, unseal, drill, a custodian's share check and an unseal on a machine
/// with no operator key: the Python reader verifies its audit log from the document alone
/// (operator-signed lines, a custodian's and a quorum holder's unsigned lines) and reports what
/// `breakglass audit verify` reports.
#[test]
fn a_fresh_vaults_audit_log_verifies_in_python_as_in_breakglass() {
    let (env, _) = vault();
    unseal_db_root(&env, &env.path("out.bin"), &["alice", "bob"]);
    ok_with_shares(&env, &["drill"], &["bob", "carol"]);
    let fingerprint = env.status()["fingerprint"].as_str().unwrap().to_owned();
    let output = env.run_on(
        "carol-machine",
        &[
            "share",
            "verify",
            "--share-file",
            &share(&env, "carol.share"),
            "--fingerprint",
            &fingerprint,
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let mut unseal = vec![
        "unseal".to_owned(),
        "db-root".to_owned(),
        "--fingerprint".to_owned(),
        fingerprint,
        "--output".to_owned(),
        format!("file:{}", env.path("elsewhere.bin").display()),
    ];
    unseal.extend(env.share_files(&["alice", "carol"]));
    let output = env.run_on("no-key-machine", &support::as_strs(&unseal));
    assert!(output.status.success(), "{}", stderr(&output));
    let log = std::fs::read_to_string(env.vault().join("audit.jsonl")).unwrap();
    for actor in [
        "\"actor\":{\"operator\":\"security-officer\"}",
        "\"actor\":{\"custodian\":\"carol\"}",
        "\"actor\":{\"quorum\":",
    ] {
        assert!(log.contains(actor), "no line by {actor}: {log}");
    }
    let (rust, python) = both_accept(&env);
    assert_eq!(rust["signed_lines"], true, "{rust}");
    assert!(rust["checkpoints"].as_u64().unwrap() >= 3, "{rust}");
    assert_eq!(
        python["noncanonical_lines"],
        serde_json::json!([]),
        "{python}"
    );
    // A write cut short at the end: no line of the chain, the same torn tail to both.
    let log = env.vault().join("audit.jsonl");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"{\"seq\":99,\"time\":\"2026-");
    std::fs::write(&log, &bytes).unwrap();
    let (rust, _) = both_accept(&env);
    assert_eq!(rust["torn_tail"]["len"], 23, "{rust}");
}

/// Lines appended outside breakglass that need no signature to be written, each chained
/// correctly onto the log: unsigned format-2 lines claiming what only an operator may record
/// (a seal, an envelope record, a manifest version, a custodian's checkpoint, a custodian
/// event in a quorum holder's name), an operator's line without its signature, a format-1 line
/// after signed lines, and an operator's signed line relabelled as a custodian's. Each is
/// refused by both implementations at that line.
#[test]
fn unsigned_lines_that_claim_authority_are_refused_by_both_at_their_line() {
    let (env, _) = vault();
    let log = env.vault().join("audit.jsonl");
    let pristine = std::fs::read_to_string(&log).unwrap();
    let anchor = anchor_file(&env);
    let remembered = std::fs::read(&anchor).unwrap();
    let (rust, _) = both_accept(&env);
    let seq = rust["entries"].as_u64().unwrap() + 1;
    let head = rust["head"].as_str().unwrap().to_owned();
    let digest = "ab".repeat(32);
    let time = "\"time\":\"2026-11-30T12:00:00Z\"";
    let cases = [
        (
            "a custodian's seal",
            format!(
                "{{\"v\":2,\"seq\":{seq},{time},\"event\":\"seal\",\"actor\":{{\"custodian\":\"carol\"}},\"credential\":\"db-root\",\"prev\":\"{head}\"}}"
            ),
        ),
        (
            "a custodian's envelope record",
            format!(
                "{{\"v\":2,\"seq\":{seq},{time},\"event\":\"share_verify\",\"actor\":{{\"custodian\":\"carol\"}},\"credential\":\"db-root\",\"details\":{{\"envelope_digest\":\"{digest}\"}},\"prev\":\"{head}\"}}"
            ),
        ),
        (
            "a custodian's checkpoint",
            format!(
                "{{\"v\":2,\"seq\":{seq},{time},\"event\":\"share_verify\",\"actor\":{{\"custodian\":\"carol\"}},\"checkpoint\":{{\"head\":\"{head}\",\"key_id\":\"00\",\"signature\":\"AA==\"}},\"prev\":\"{head}\"}}"
            ),
        ),
        (
            "a quorum holder's seal",
            format!(
                "{{\"v\":2,\"seq\":{seq},{time},\"event\":\"seal\",\"actor\":{{\"quorum\":\"mallory@host\"}},\"credential\":\"db-root\",\"prev\":\"{head}\"}}"
            ),
        ),
        (
            "a quorum holder's manifest version",
            format!(
                "{{\"v\":2,\"seq\":{seq},{time},\"event\":\"unseal\",\"actor\":{{\"quorum\":\"mallory@host\"}},\"details\":{{\"manifest_digest\":\"{digest}\",\"manifest_version\":\"9\"}},\"prev\":\"{head}\"}}"
            ),
        ),
        (
            "a quorum holder's share check",
            format!(
                "{{\"v\":2,\"seq\":{seq},{time},\"event\":\"share_verify\",\"actor\":{{\"quorum\":\"mallory@host\"}},\"prev\":\"{head}\"}}"
            ),
        ),
        (
            "an operator's line without a signature",
            format!(
                "{{\"v\":2,\"seq\":{seq},{time},\"event\":\"unseal\",\"actor\":{{\"operator\":\"security-officer\"}},\"prev\":\"{head}\"}}"
            ),
        ),
        (
            "a format-1 line after signed lines",
            format!(
                "{{\"seq\":{seq},{time},\"event\":\"unseal\",\"actor\":{{\"user\":\"mallory\",\"host\":\"host\"}},\"prev\":\"{head}\"}}"
            ),
        ),
    ];
    for (what, line) in cases {
        std::fs::write(&log, format!("{pristine}{line}\n")).unwrap();
        std::fs::write(&anchor, &remembered).unwrap();
        let rust = both_refuse(&env, what);
        assert_eq!(rust["first_problem"]["line"], seq, "{what}: {rust}");
    }
    // An operator's signed share check relabelled as a custodian's: a signature on an unsigned
    // actor's line is refused by both.
    std::fs::write(&log, &pristine).unwrap();
    std::fs::write(&anchor, &remembered).unwrap();
    python_ok(&[
        "audit-append",
        &vault_arg(&env),
        "--event",
        "share_verify",
        "--config",
        &config_arg(&env),
    ]);
    let signed = std::fs::read_to_string(&log).unwrap();
    std::fs::write(
        &log,
        signed.replace(
            "\"event\":\"share_verify\",\"actor\":{\"operator\":\"security-officer\"}",
            "\"event\":\"share_verify\",\"actor\":{\"custodian\":\"security-officer\"}",
        ),
    )
    .unwrap();
    let rust = both_refuse(&env, "a borrowed signature");
    assert_eq!(rust["first_problem"]["line"], seq, "{rust}");
    // The same custodian line without the authority it claimed is accepted by both.
    std::fs::write(
        &log,
        format!("{pristine}{{\"v\":2,\"seq\":{seq},{time},\"event\":\"share_verify\",\"actor\":{{\"custodian\":\"carol\"}},\"credential\":\"db-root\",\"prev\":\"{head}\"}}\n"),
    )
    .unwrap();
    std::fs::write(&anchor, &remembered).unwrap();
    let (rust, _) = both_accept(&env);
    assert_eq!(rust["entries"], seq, "{rust}");
}

/// A line altered, removed, or two lines swapped: refused by both, at the same line, on a
/// machine that remembers the log's head (breakglass refuses to open the vault) and on one
/// that pinned the identity only (both walk the whole log).
#[test]
fn an_altered_removed_or_reordered_line_is_refused_by_both_at_the_same_line() {
    let (env, _) = vault();
    ok_with_shares(&env, &["drill"], &["alice", "bob"]);
    let log = env.vault().join("audit.jsonl");
    let pristine = std::fs::read_to_string(&log).unwrap();
    let anchor = anchor_file(&env);
    let remembered = std::fs::read(&anchor).unwrap();
    let lines: Vec<&str> = pristine.lines().collect();
    assert!(lines.len() >= 6, "{pristine}");
    let join = |lines: &[&str]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    let seal_line = lines
        .iter()
        .position(|l| l.contains("\"event\":\"seal\""))
        .unwrap();
    let mut removed = lines.clone();
    removed.remove(1);
    let mut swapped = lines.clone();
    swapped.swap(seal_line, seal_line + 1);
    let cases = [
        // The seal line's signature covers its body: refused at that line (in a format-1 log
        // only the next line's chain hash would catch it).
        (
            "altered",
            pristine.replacen("\"kind\":\"secret\"", "\"kind\":\"aws\"", 1),
            seal_line + 1,
        ),
        ("removed", join(&removed), 2),
        ("swapped", join(&swapped), seal_line + 1),
    ];
    for (what, tampered, line) in cases {
        assert_ne!(tampered, pristine, "{what}");
        std::fs::write(&log, &tampered).unwrap();
        std::fs::write(&anchor, &remembered).unwrap();
        let output = env.run(&["audit", "verify"]);
        assert_eq!(output.status.code(), Some(5), "{what}: {}", stderr(&output));
        let output = python(&[
            "audit-verify",
            &vault_arg(&env),
            "--anchor",
            anchor.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(1), "{what}: {}", stderr(&output));
        std::fs::remove_file(&anchor).unwrap();
        let rust = both_refuse(&env, what);
        assert_eq!(rust["first_problem"]["line"], line, "{what}: {rust}");
    }
}

/// A log cut back to an earlier line is an intact chain: the log alone cannot tell. What
/// remembers its head can: this machine's anchor (breakglass refuses to open the vault; the
/// Python reader refuses with `--anchor`), and, on a machine that remembers nothing, the head
/// the token holds (breakglass refuses before the token signs again; the Python reader reads
/// the token's data object through PKCS#11 and refuses).
#[test]
fn a_log_cut_back_is_refused_by_both_against_the_anchor_and_the_token_head() {
    let (env, _) = vault();
    ok_with_shares(&env, &["drill"], &["alice", "bob"]);
    let log = env.vault().join("audit.jsonl");
    let pristine = std::fs::read_to_string(&log).unwrap();
    let anchor = anchor_file(&env);
    let token_head = [
        "--token-head",
        "--share",
        &share(&env, "alice.share"),
        "--share",
        &share(&env, "bob.share"),
        "--module",
        &module(),
    ];
    let mut args = vec!["audit-verify".to_owned(), vault_arg(&env)];
    args.extend(token_head.iter().map(|a| (*a).to_owned()));
    let report = python_ok(&support::as_strs(&args));
    let held = report["token_head"]["seq"].as_u64().unwrap();
    assert!(held >= 3, "{report}");
    // Cut back to the lines before the one the token holds.
    let kept: String = pristine
        .lines()
        .take(held as usize - 1)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&log, &kept).unwrap();
    let output = python(&["audit-verify", &vault_arg(&env)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = env.run(&["audit", "verify"]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("cut back"), "{}", stderr(&output));
    let output = python(&[
        "audit-verify",
        &vault_arg(&env),
        "--anchor",
        anchor.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("cut back"), "{}", stderr(&output));
    // A machine that remembers nothing.
    std::fs::remove_file(&anchor).unwrap();
    let output = python(&support::as_strs(&args));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("token breakglass-dev remembers"),
        "{}",
        stderr(&output)
    );
    let mut drill = vec!["drill".to_owned()];
    drill.extend(env.share_files(&["alice", "bob"]));
    let output = env.run(&support::as_strs(&drill));
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
}

/// The Python writer appends a format-2 entry signed by this machine's operator key and a
/// checkpoint line (signed by the operator too) whose checkpoint the token's audit key signs
/// through PKCS#11: `breakglass audit verify` accepts them and the vault goes on working. Each
/// forgery is refused by both, at the same line: on the token's side the chain hash of another
/// line, the checkpoint signing its own number, another vault's id, another key, an older head
/// (a bad checkpoint); on the operator's side the entry changed after signing, its signature
/// altered, a signature by a key that is no operator's, no signature, a checkpoint line signed
/// by a key that is no operator's, and another encoding of the entry's body signed as it is
/// (a broken line).
#[test]
fn breakglass_accepts_what_the_python_writer_signed_and_refuses_each_forgery() {
    let (env, _) = vault();
    let log = env.vault().join("audit.jsonl");
    let pristine = std::fs::read(&log).unwrap();
    let anchor = anchor_file(&env);
    let remembered = std::fs::read(&anchor).unwrap();
    let entries = |env: &Env| env.status()["audit"]["entries"].as_u64().unwrap();
    let before = entries(&env);
    let append = |forge: Option<&str>| {
        let mut args = vec![
            "audit-append".to_owned(),
            vault_arg(&env),
            "--event".to_owned(),
            "external_review".to_owned(),
            "--detail".to_owned(),
            "reviewer=independent \"auditor\"".to_owned(),
            "--checkpoint".to_owned(),
            "--module".to_owned(),
            module(),
            "--config".to_owned(),
            config_arg(&env),
        ];
        for who in ["alice.share", "carol.share"] {
            args.extend(["--share".to_owned(), share(&env, who)]);
        }
        if let Some(forge) = forge {
            args.extend(["--forge".to_owned(), forge.to_owned()]);
        }
        python_ok(&support::as_strs(&args))
    };
    let appended = append(None);
    assert_eq!(
        appended["appended"],
        serde_json::json!([before + 1, before + 2])
    );
    let (rust, _) = both_accept(&env);
    assert_eq!(rust["last_checkpoint"], before + 2, "{rust}");
    assert_eq!(rust["head"], appended["head"]);
    let events = env.audit_events("external_review");
    assert_eq!(events[0]["details"]["reviewer"], "independent \"auditor\"");
    assert_eq!(events[0]["actor"]["operator"], "security-officer");
    assert_eq!(events[0]["v"], 2, "{}", events[0]);
    // The vault goes on: an unseal appends and the token signs after the Python lines.
    unseal_db_root(&env, &env.path("out.bin"), &["alice", "bob"]);
    let (rust, _) = both_accept(&env);
    assert!(
        rust["last_checkpoint"].as_u64().unwrap() > before + 2,
        "the token signed after the Python lines: {rust}"
    );

    let (broken, bad_checkpoint) = (true, false);
    for (forge, line, is_broken) in [
        ("prev", before + 1, broken),
        ("seq", before + 2, bad_checkpoint),
        ("vault-id", before + 2, bad_checkpoint),
        ("other-key", before + 2, bad_checkpoint),
        ("head", before + 2, bad_checkpoint),
        ("body", before + 1, broken),
        ("signature", before + 1, broken),
        ("stranger", before + 1, broken),
        ("unsigned", before + 1, broken),
        ("checkpoint-stranger", before + 2, broken),
        ("noncanonical", before + 1, broken),
    ] {
        std::fs::write(&log, &pristine).unwrap();
        std::fs::write(&anchor, &remembered).unwrap();
        append(Some(forge));
        let rust = both_refuse(&env, forge);
        let at = if is_broken {
            &rust["first_problem"]["line"]
        } else {
            &rust["bad_signature"]
        };
        assert_eq!(*at, line, "{forge}: {rust}");
    }
}

/// The Python writer appends under breakglass's writers' lock (`flock` on `vault.lock`): while
/// another writer holds it, nothing is appended; once released, the entry is, after whatever
/// that writer appended.
#[test]
fn the_python_writer_waits_for_the_writers_lock() {
    let (env, _) = vault();
    let log = env.vault().join("audit.jsonl");
    let before = std::fs::read(&log).unwrap();
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(env.vault().join("vault.lock"))
        .unwrap();
    lock.lock().unwrap();
    let mut child = Command::new(hsm_testing::tools::venv_program("python"))
        .arg(hsm_testing::tools::repo_root().join("interop/python/breakglass_format.py"))
        .args([
            "audit-append",
            &vault_arg(&env),
            "--event",
            "external_review",
            "--config",
            &config_arg(&env),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the writer did not wait"
    );
    assert_eq!(
        std::fs::read(&log).unwrap(),
        before,
        "appended under the lock"
    );
    lock.unlock().unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let (rust, _) = both_accept(&env);
    assert_eq!(env.audit_events("external_review").len(), 1, "{rust}");
}

/// The whole-vault known answer (`tests/data/known-answer-vault`, made once by an earlier
/// build): copied into this test's directory, `vault/`, `shares/` and the machine's pin.
fn known_answer_vault() -> (Env, serde_json::Value) {
    let env = Env::from_fixture("known-answer-vault");
    let fixture = hsm_testing::tools::repo_root().join("tests/data/known-answer-vault");
    let expected =
        serde_json::from_slice(&std::fs::read(fixture.join("expected.json")).unwrap()).unwrap();
    (env, expected)
}

/// `open` by the Python reader of credential `name` of the known-answer vault, with the token
/// (quorum shares of alice and carol) and with the recovery shares and no token (bob and carol,
/// then all three recovery shares), each giving the recorded plaintext; `extra` arguments
/// appended. The two reports.
fn python_opens_known_answer(
    env: &Env,
    name: &str,
    answer: &serde_json::Value,
    extra: &[&str],
) -> [serde_json::Value; 2] {
    let plaintext = answer["plaintext"].as_str().unwrap();
    let mut reports = Vec::new();
    for (how, shares, recovery) in [
        ("token", ["alice", "carol"], false),
        ("recovery", ["bob", "carol"], true),
    ] {
        let out = env.path(&format!("{name}.python-{how}-{}", extra.len()));
        let mut args = vec!["open".to_owned(), vault_arg(env), name.to_owned()];
        for who in shares {
            args.extend(["--share".to_owned(), share(env, &format!("{who}.share"))]);
        }
        if recovery {
            for who in ["alice", "bob", "carol"] {
                args.extend([
                    "--recovery-share".to_owned(),
                    share(env, &format!("{who}.recovery.share")),
                ]);
            }
        } else {
            args.extend(["--module".to_owned(), module()]);
        }
        args.extend(["--out".to_owned(), out.display().to_string()]);
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let report = python_ok(&support::as_strs(&args));
        assert_eq!(report["format"], answer["format"], "{name}: {report}");
        let via = report["via"].as_str().unwrap();
        assert_eq!(via == "recovery key", recovery, "{name}: {report}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), plaintext, "{name}");
        reports.push(report);
    }
    reports.try_into().unwrap()
}

/// The formats are pinned across versions. The committed vault (made before audit lines were
/// signed) is authenticated and its log verified as a format-1-line log by the Python reader,
/// giving the recorded answers (identity, manifest digest, audit head, keys, PINs); it opens
/// its envelopes only when told to trust what no signed line records. Today's breakglass
/// refuses it until `breakglass upgrade` (this machine's security officer, a quorum, the
/// token) signs its history on, recording every envelope as it is. Then both implementations
/// authenticate it, verify its log to the same report, keep the first nine lines and their head
/// as recorded, and open every credential to its recorded plaintext (with the token, and with
/// the recovery shares and no token), the Python reader because the upgrade's signed records
/// name these very files.
#[test]
fn the_known_answer_vault_opens_in_both_implementations() {
    let (env, expected) = known_answer_vault();
    let vault = vault_arg(&env);
    let credentials = expected["credentials"].as_object().unwrap();
    let pin = expected["fingerprint"].as_str().unwrap();
    let check_manifest = || {
        let manifest = python_ok(&["manifest", &vault, "--pin", pin]);
        for (member, answer) in [
            ("vault_id", "vault_id"),
            ("fingerprint", "fingerprint"),
            ("identity", "identity"),
            ("fingerprint_v1", "fingerprint_v1"),
            ("version", "manifest_version"),
            ("digest", "manifest_digest"),
        ] {
            assert_eq!(manifest[member], expected[answer], "{member}: {manifest}");
        }
        manifest
    };

    // As committed, to the Python reader, from the document alone.
    check_manifest();
    let audit = python_ok(&["audit-verify", &vault]);
    for (member, answer) in expected["audit"].as_object().unwrap() {
        assert_eq!(&audit[member], answer, "audit {member}: {audit}");
    }
    assert_eq!(audit["signed_lines"], false, "{audit}");
    assert_eq!(audit["envelope_records"], serde_json::json!({}), "{audit}");
    let mut derive = vec![
        "derive".to_owned(),
        vault.clone(),
        "--share".to_owned(),
        share(&env, "alice.share"),
        "--share".to_owned(),
        share(&env, "carol.share"),
    ];
    for who in ["alice", "bob", "carol"] {
        derive.extend([
            "--recovery-share".to_owned(),
            share(&env, &format!("{who}.recovery.share")),
        ]);
    }
    let derived = python_ok(&support::as_strs(&derive));
    assert_eq!(derived["quorum_public_key"], expected["quorum_public_key"]);
    assert_eq!(
        derived["recovery_public_key"],
        expected["recovery_public_key"]
    );
    assert_eq!(derived["pins"], expected["token_pins"]);
    for (name, answer) in credentials {
        // Nothing in this log says which envelope is genuine: refused, unless told.
        let out = env.path(&format!("{name}.unrecorded"));
        let output = python_open(&env, name, &["alice.share", "carol.share"], &out);
        assert_eq!(output.status.code(), Some(1), "{name}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("no signed lines"),
            "{name}: {}",
            stderr(&output)
        );
        for report in python_opens_known_answer(&env, name, answer, &["--unrecorded"]) {
            assert_eq!(report["recorded"], serde_json::Value::Null, "{report}");
        }
    }

    // Today's breakglass refuses it until its history is signed.
    let output = env.run(&["audit", "verify", "--json"]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("upgrade"), "{}", stderr(&output));
    let plaintext = credentials["db-root"]["plaintext"].as_str().unwrap();
    let out = env.path("db-root.refused");
    let output = env.run(&support::as_strs(
        &[
            vec![
                "unseal".to_owned(),
                "db-root".to_owned(),
                "--output".to_owned(),
                format!("file:{}", out.display()),
            ],
            env.share_files(&["alice", "carol"]),
        ]
        .concat(),
    ));
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(!out.exists());
    let printed = ok_with_shares(&env, &["upgrade"], &["alice", "carol"]);
    assert!(printed.contains("aws-breakglass, db-root"), "{printed}");

    // Upgraded: the same identity, version and digest (the upgrade line records the version in
    // force again), the committed lines unchanged, then the signed ones.
    let manifest = check_manifest();
    let recorded: Vec<&serde_json::Value> = manifest["versions_recorded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["version"])
        .collect();
    assert_eq!(recorded, [1, 1], "{manifest}");
    let (rust, python) = both_accept(&env);
    assert_eq!(rust["signed_lines"], true, "{rust}");
    let committed = expected["audit"]["entries"].as_u64().unwrap();
    assert_eq!(
        rust["entries"].as_u64().unwrap(),
        committed + 1 + credentials.len() as u64 + 1,
        "the upgrade line, a record per credential, a checkpoint: {rust}"
    );
    let log = std::fs::read(env.vault().join("audit.jsonl")).unwrap();
    let line = log
        .split(|b| *b == b'\n')
        .nth(committed as usize - 1)
        .unwrap();
    assert_eq!(
        hex::encode(ring::digest::digest(&ring::digest::SHA256, line)),
        expected["audit"]["head"].as_str().unwrap(),
        "the committed lines are kept as they were"
    );
    for (name, answer) in credentials {
        let inspected = python_ok(&[
            "inspect",
            env.vault()
                .join(format!("credentials/{name}.json"))
                .to_str()
                .unwrap(),
        ]);
        assert_eq!(
            python["envelope_records"][name], inspected["record_digest"],
            "{name}: {python}"
        );
        for report in python_opens_known_answer(&env, name, answer, &[]) {
            assert_eq!(
                report["recorded"], inspected["record_digest"],
                "{name}: {report}"
            );
        }
    }

    // Today's breakglass: the same identity and version, the same plaintexts (db-root opened
    // with the token and with the recovery shares; every credential in a drill).
    let status = env.status();
    assert_eq!(status["vault_id"], expected["vault_id"]);
    assert_eq!(status["fingerprint"], expected["fingerprint"]);
    assert_eq!(status["manifest_version"], expected["manifest_version"]);
    let out = env.path("db-root.unsealed");
    unseal_db_root(&env, &out, &["alice", "carol"]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), plaintext);
    let out = env.path("db-root.recovered");
    let mut recover = vec![
        "recover".to_owned(),
        "db-root".to_owned(),
        "--output".to_owned(),
        format!("file:{}", out.display()),
    ];
    recover.extend(env.share_files(&["bob", "carol"]));
    for who in ["alice", "bob", "carol"] {
        recover.extend([
            "--share-file".to_owned(),
            share(&env, &format!("{who}.recovery.share")),
        ]);
    }
    env.ok(&support::as_strs(&recover));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), plaintext);
    let printed = ok_with_shares(&env, &["drill"], &["alice", "bob"]);
    for name in credentials.keys() {
        assert!(printed.contains(&format!("{name}: opened")), "{printed}");
    }
    // And what breakglass appended since verifies in Python.
    both_accept(&env);
}

/// The previous release's vault (`tests/data/format-1-vault`, a bare `breakglass-vault/1`
/// manifest): the Python reader computes the format-1 fingerprint its machine pinned, verifies
/// its audit log with the audit key that pin vouches for, and opens its credential when told
/// to trust an envelope no signed line records (`--unrecorded`: the log has none), never
/// without.
#[test]
fn the_python_reader_reads_the_previous_releases_vault_by_its_format_1_fingerprint() {
    let env = Env::from_fixture("format-1-vault");
    let pins: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.path("config/breakglass/known_vaults.json")).unwrap(),
    )
    .unwrap();
    let (vault_id, pinned) = pins.as_object().unwrap().iter().next().unwrap();
    let pinned = pinned.as_str().unwrap();
    let manifest = python_ok(&["manifest", &vault_arg(&env)]);
    assert_eq!(manifest["format"], "breakglass-vault/1", "{manifest}");
    assert_eq!(manifest["vault_id"], vault_id.as_str(), "{manifest}");
    assert_eq!(manifest["fingerprint_v1"], pinned, "{manifest}");
    let audit = python_ok(&["audit-verify", &vault_arg(&env), "--pin", pinned]);
    assert!(audit["checkpoints"].as_u64().unwrap() >= 1, "{audit}");
    let output = python(&["audit-verify", &vault_arg(&env)]);
    assert_eq!(output.status.code(), Some(1), "trusted without a pin");
    assert_eq!(audit["signed_lines"], false, "{audit}");
    let out = env.path("db-root.out");
    let output = python_open(&env, "db-root", &["alice.share", "bob.share"], &out);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no signed lines"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());
    let report = python_ok(&[
        "open",
        &vault_arg(&env),
        "db-root",
        "--share",
        &share(&env, "alice.share"),
        "--share",
        &share(&env, "bob.share"),
        "--module",
        &module(),
        "--out",
        out.to_str().unwrap(),
        "--unrecorded",
    ]);
    assert_eq!(report["recorded"], serde_json::Value::Null, "{report}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "the database root password"
    );
}
