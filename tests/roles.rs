//! Each command checks, before it reads a share, touches a token or writes anything, that
//! this machine's operator key belongs to an operator who holds the role the command needs:
//! security officers change the vault (tokens, recovery set, rekey, ceremonies, audit repair),
//! cloud administrators seal and rotate credentials. The first operator, made by `init`, holds
//! both, so a one-person vault works as before. Against the built binary, each operator on
//! their own machine (configuration directory).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{Env, as_strs, assert_exit, stderr};

/// A 2-of-3 development vault (alice, bob, carol) made by olivia (both roles), with the
/// `secret` credential `db-root`; adam added by the quorum as a cloud administrator and sam
/// as a security officer, each with their key on their own machine. Returns the fingerprint.
fn vault_with_operators() -> (Env, String) {
    let env = Env::two_of_three_with_db_root(&["--operator", "olivia"]);
    let fingerprint = env.status()["fingerprint"].as_str().unwrap().to_owned();
    for (name, role) in [("adam", "cloud-admin"), ("sam", "security-officer")] {
        let out = env.run_on(&format!("{name}-machine"), &["operator", "key"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let mut add: Vec<String> = ["operator", "add", name, "--role", role, "--key", &key]
            .map(String::from)
            .to_vec();
        add.extend(env.share_files(&["alice", "bob"]));
        env.ok(&as_strs(&add));
    }
    (env, fingerprint)
}

/// `args` on `machine`, pinned by the fingerprint from the cards, with this machine's PKCS#11
/// module the fault-injection shim, which writes `marker` if anything loads it.
fn on_machine(env: &Env, machine: &str, fingerprint: &str, marker: &Path, args: &[&str]) -> Output {
    let mut command: Command = env.command_on(machine, args);
    command
        .env("BREAKGLASS_FINGERPRINT", fingerprint)
        .env("BREAKGLASS_PKCS11_MODULE", hsm_testing::shim::library());
    hsm_testing::shim::Shim::new()
        .loaded_marker(marker)
        .apply(&mut command);
    command.output().unwrap()
}

/// What a refused command must have left as it was: the manifest, the audit log, the
/// credentials, the tokens of the vault's development SoftHSM.
fn snapshot(env: &Env) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![env.vault()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n != "vault.lock") {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

/// `ceremony open` by olivia with `purpose` (and its options); the ceremony's id.
fn open_ceremony(env: &Env, purpose: &[&str]) -> String {
    let request = env.path(&format!("request-{}.json", purpose.join("-")));
    let mut args = vec!["ceremony", "open", "--reason", "planned"];
    args.extend(purpose);
    args.extend(["--out", request.to_str().unwrap()]);
    env.ok(&args);
    serde_json::from_slice::<serde_json::Value>(&std::fs::read(&request).unwrap()).unwrap()
        ["request"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn with_shares(args: &[&str], shares: &[String]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    all.extend(shares.iter().cloned());
    all
}

/// Issue 12: a cloud administrator's machine, and a machine with no operator key for the
/// vault, change nothing: `hsm enroll`, `recovery enable`, `rekey` (and `--resume`),
/// `ceremony open`, `ceremony cancel`, closing a rekey ceremony and `audit repair` are each
/// refused with exit 5, naming the role needed and who this machine's key belongs to, before
/// a share is read (one of the share files given does not exist), before any PKCS#11 module is
/// loaded, and with nothing in the vault directory changed. Olivia, who holds both roles,
/// still does all of it.
#[test]
fn a_cloud_administrator_or_a_machine_without_an_operator_key_changes_nothing() {
    let (env, fingerprint) = vault_with_operators();
    let marker = env.path("module-loaded");
    let id = open_ceremony(&env, &["--purpose", "drill"]);
    let rekey_id = open_ceremony(&env, &["--purpose", "rekey"]);
    let recovery_id = open_ceremony(
        &env,
        &["--purpose", "recovery", "--recovery-threshold", "3"],
    );

    // The attack as it was: adam, a cloud administrator, enrols a token of his own with a
    // genuine quorum (two custodians talked into it), which would then open every credential.
    let quorum = env.share_files(&["alice", "bob"]);
    let before = snapshot(&env);
    let enrol = with_shares(
        &["hsm", "enroll", "--token", "adams-token", "--init-token"],
        &quorum,
    );
    let out = on_machine(
        &env,
        "adam-machine",
        &fingerprint,
        &marker,
        &as_strs(&enrol),
    );
    assert_exit(
        &out,
        5,
        &[
            "`breakglass hsm enroll` is for a security officer",
            "operator adam of vault",
            "is not a security officer",
        ],
        "adam enrols a token",
    );

    // Every security officer's command, with one share file that does not exist: refused
    // before it would be read.
    let missing = vec![
        "--share-file".to_owned(),
        env.path("shares/alice.share").display().to_string(),
        "--share-file".to_owned(),
        env.path("no-such.share").display().to_string(),
    ];
    let new_shares = env.path("new-shares");
    let new_shares = new_shares.to_str().unwrap();
    let drill_out = env.path("adam-drill.json");
    let commands: Vec<(Vec<String>, &str)> = vec![
        (enrol.clone(), "hsm enroll"),
        (
            with_shares(
                &["hsm", "enroll", "--token", "t2", "--init-token"],
                &missing,
            ),
            "hsm enroll",
        ),
        (
            with_shares(
                &[
                    "recovery",
                    "enable",
                    "--threshold",
                    "2",
                    "--yes",
                    "--shares-dir",
                    new_shares,
                ],
                &missing,
            ),
            "recovery enable",
        ),
        (
            with_shares(&["rekey", "--yes", "--shares-dir", new_shares], &missing),
            "rekey",
        ),
        (
            [
                "ceremony",
                "open",
                "--purpose",
                "drill",
                "--reason",
                "x",
                "--out",
                drill_out.to_str().unwrap(),
            ]
            .map(String::from)
            .to_vec(),
            "",
        ),
        (
            ["ceremony", "cancel", &id].map(String::from).to_vec(),
            "ceremony cancel",
        ),
        (
            [
                "ceremony",
                "close",
                &rekey_id,
                "--contribution",
                env.path("no-such.contribution").to_str().unwrap(),
                "--shares-dir",
                new_shares,
            ]
            .map(String::from)
            .to_vec(),
            "ceremony close (a rekey)",
        ),
        (
            [
                "ceremony",
                "close",
                &recovery_id,
                "--contribution",
                env.path("no-such.contribution").to_str().unwrap(),
                "--shares-dir",
                new_shares,
            ]
            .map(String::from)
            .to_vec(),
            "ceremony close (recovery enable)",
        ),
    ];
    for (machine, whose) in [
        ("adam-machine", "operator adam of vault"),
        ("dan-machine", "this machine has no operator key for vault"),
    ] {
        for (args, command) in &commands {
            let out = on_machine(&env, machine, &fingerprint, &marker, &as_strs(args));
            let mut says = vec![whose];
            let named = format!("`breakglass {command}` is for a security officer");
            if !command.is_empty() {
                says.push(&named);
            }
            assert_exit(&out, 5, &says, (machine, args));
        }
    }
    assert_eq!(
        snapshot(&env),
        before,
        "nothing in the vault directory changed"
    );
    assert!(!marker.exists(), "no PKCS#11 module was loaded");
    assert!(!Path::new(new_shares).exists());
    assert!(!drill_out.exists());

    // A torn tail: only a security officer moves it aside.
    let log = env.vault().join("audit.jsonl");
    let mut torn = std::fs::read(&log).unwrap();
    torn.extend_from_slice(b"{\"seq\":");
    std::fs::write(&log, &torn).unwrap();
    for (machine, whose) in [
        ("adam-machine", "operator adam of vault"),
        ("dan-machine", "this machine has no operator key for vault"),
    ] {
        let out = on_machine(
            &env,
            machine,
            &fingerprint,
            &marker,
            &["audit", "repair", "--yes"],
        );
        let says = [whose, "`breakglass audit repair` is for a security officer"];
        assert_exit(&out, 5, &says, (machine, "audit repair"));
    }
    assert_eq!(std::fs::read(&log).unwrap(), torn);

    // Olivia (both roles) and sam (security officer) do what the others could not.
    env.ok(&["audit", "repair", "--yes"]);
    let out = env.run_on(
        "sam-machine",
        &["ceremony", "cancel", &id, "--fingerprint", &fingerprint],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let enrolled = with_shares(
        &["hsm", "enroll", "--token", "backup", "--init-token"],
        &quorum,
    );
    env.ok(&as_strs(&enrolled));
    assert_eq!(env.status()["tokens"].as_array().map(Vec::len), Some(2));
}

/// Sealing and rotating are a cloud administrator's: sam, a security officer only, and a
/// machine with no operator key are refused (exit 5) before the secret is read or a share
/// asked for, naming the role; adam (cloud administrator) and olivia (both roles) seal.
#[test]
fn sealing_and_rotating_need_a_cloud_administrator() {
    let (env, fingerprint) = vault_with_operators();
    let marker = env.path("module-loaded");
    std::fs::write(env.path("payload"), b"another secret").unwrap();
    let payload = env.path("payload");
    let seal = [
        "seal",
        "api-key",
        "--kind",
        "secret",
        "--from-file",
        payload.to_str().unwrap(),
    ];
    let rotate = with_shares(&["rotate", "db-root"], &env.share_files(&["alice", "bob"]));
    let rotation = open_ceremony(&env, &["--purpose", "rotate", "--credential", "db-root"]);
    let close_rotation = [
        "ceremony",
        "close",
        &rotation,
        "--contribution",
        env.path("no-such.contribution").to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let before = snapshot(&env);
    for (machine, whose) in [
        ("sam-machine", "operator sam of vault"),
        ("dan-machine", "this machine has no operator key for vault"),
    ] {
        let out = on_machine(&env, machine, &fingerprint, &marker, &seal);
        let says = [whose, "`breakglass seal` is for a cloud administrator"];
        assert_exit(&out, 5, &says, (machine, "seal"));
        let out = on_machine(&env, machine, &fingerprint, &marker, &as_strs(&rotate));
        let says = [whose, "`breakglass rotate` is for a cloud administrator"];
        assert_exit(&out, 5, &says, (machine, "rotate"));
        let out = on_machine(
            &env,
            machine,
            &fingerprint,
            &marker,
            &as_strs(&close_rotation),
        );
        let says = [
            whose,
            "`breakglass ceremony close (a rotation)` is for a cloud administrator",
        ];
        assert_exit(&out, 5, &says, (machine, "closing a rotation"));
    }
    let out = on_machine(&env, "sam-machine", &fingerprint, &marker, &seal);
    assert!(
        stderr(&out).contains("is not a cloud administrator"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        snapshot(&env),
        before,
        "nothing in the vault directory changed"
    );
    assert!(!marker.exists(), "no PKCS#11 module was loaded");

    let out = on_machine(&env, "adam-machine", &fingerprint, &marker, &seal);
    assert!(out.status.success(), "adam seals: {}", stderr(&out));
    env.seal_secret("olivias-key", "payload", b"olivia seals too");
    let listed = env.ok(&["list"]);
    assert!(
        listed.contains("api-key") && listed.contains("olivias-key"),
        "{listed}"
    );
}

/// Finishing an interrupted rekey is the same vault change as starting one: adam, a cloud
/// administrator, is refused (exit 5) before a share is read or a module loaded; olivia
/// finishes it.
#[test]
fn only_a_security_officer_finishes_an_interrupted_rekey() {
    let (env, fingerprint) = vault_with_operators();
    let marker = env.path("module-loaded");
    let new_shares = env.path("new-shares");
    let rekey = with_shares(
        &[
            "rekey",
            "--yes",
            "--shares-dir",
            new_shares.to_str().unwrap(),
        ],
        &env.share_files(&["alice", "bob"]),
    );
    let fault = "rekey-after-first-envelope";
    let out = env.run_with(&as_strs(&rekey), &[("BREAKGLASS_TEST_FAULT", fault)]);
    assert!(
        stderr(&out).contains(&format!("fault point {fault}")),
        "{}",
        stderr(&out)
    );
    let mut resume = with_shares(&["rekey", "--resume"], &env.share_files(&["alice", "bob"]));
    for name in ["alice", "bob"] {
        resume.push("--share-file".into());
        resume.push(
            new_shares
                .join(format!("{name}.share"))
                .display()
                .to_string(),
        );
    }
    let before = snapshot(&env);
    let out = on_machine(
        &env,
        "adam-machine",
        &fingerprint,
        &marker,
        &as_strs(&resume),
    );
    let says = [
        "`breakglass rekey --resume` is for a security officer",
        "operator adam of vault",
    ];
    assert_exit(&out, 5, &says, "adam resumes");
    assert_eq!(
        snapshot(&env),
        before,
        "nothing in the vault directory changed"
    );
    assert!(!marker.exists(), "no PKCS#11 module was loaded");
    let printed = env.ok(&as_strs(&resume));
    assert!(printed.contains("rekey finished"), "{printed}");
}
