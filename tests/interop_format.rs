//! The written specification (`docs/format.md`) against the code: an independent reader and
//! writer in Python (`interop/python/breakglass_format.py`, third-party libraries only) opens
//! what the built binary sealed, with the custodians' share files and the vault's SoftHSM token
//! through PKCS#11, and seals what `breakglass unseal` and `recover` then open; it recomputes
//! the derivations and checks the known-answer vectors. Any disagreement fails.

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
    ]);
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
