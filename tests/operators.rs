//! Operators added and removed by the quorum, each on their own machine (configuration
//! directory), and the upgrade of a vault made by the previous release (format 1), against the
//! built binary.

mod support;

use std::path::PathBuf;
use std::process::Output;

use support::{Env, as_strs, stderr};

impl Env {
    /// A 2-of-3 development vault made by olivia (security officer and cloud administrator).
    fn with_olivia() -> Env {
        let env = Env::new();
        env.init_vault(&["alice", "bob", "carol"], 2, &["--operator", "olivia"]);
        env
    }

    /// `args` with the shares of alice and bob.
    fn quorum(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(self.share_files(&["alice", "bob"]));
        all
    }

    fn fingerprint(&self) -> String {
        self.status()["fingerprint"].as_str().unwrap().to_owned()
    }

    fn operators(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["operator", "list", "--json"])).unwrap()
    }
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

/// A new operator's machine prints its key (made once, 0600, the same on every call), a
/// security officer adds it with a quorum as a cloud administrator: the next manifest version,
/// recorded in the audit log, the fingerprint unchanged. The cloud administrator then seals from
/// their own machine; every vault change they try is refused; removed, they are no operator.
#[test]
fn a_security_officer_adds_a_cloud_administrator_who_seals_and_changes_nothing() {
    let env = Env::with_olivia();
    let fingerprint = env.fingerprint();
    let out = env.run_on("bob-machine", &["operator", "key"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(key.len(), 64, "{key}");
    assert!(stderr(&out).contains("not an operator of the vault yet"));
    let again = env.run_on("bob-machine", &["operator", "key"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), key);
    let vault_id = env.status()["vault_id"].as_str().unwrap().to_owned();
    let key_file: PathBuf = env.path(&format!("bob-machine/breakglass/operators/{vault_id}.key"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let add = env.quorum(&[
        "operator",
        "add",
        "bob",
        "--role",
        "cloud-admin",
        "--key",
        &key,
    ]);
    let printed = env.ok(&as_strs(&add));
    assert!(
        printed.contains("operator bob added (cloud administrator) by olivia"),
        "{printed}"
    );
    assert!(printed.contains("manifest version 2"), "{printed}");
    assert_eq!(env.fingerprint(), fingerprint, "the cards stay valid");
    let operators = env.operators();
    assert_eq!(operators.as_array().unwrap().len(), 2, "{operators}");
    assert_eq!(operators[1]["name"], "bob");
    assert_eq!(
        operators[1]["roles"],
        serde_json::json!(["cloud_administrator"])
    );
    assert_eq!(operators[1]["public_key"], key.as_str());
    let added = env.audit_events("operator_add");
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["details"]["operator"], "bob");
    assert_eq!(added[0]["details"]["by"], "olivia");
    assert_eq!(added[0]["details"]["manifest_version"], "2");
    assert_eq!(added[0]["custodians"], serde_json::json!(["alice", "bob"]));
    env.ok(&["audit", "verify"]);

    // Bob's machine pins the vault and sees himself as an operator.
    let out = env.run_on("bob-machine", &["operator", "key"]);
    assert!(stderr(&out).contains("this key is operator bob of the vault (cloud administrator)"));
    // Bob seals from his machine.
    std::fs::write(env.path("payload"), b"a secret").unwrap();
    let out = env.run_on(
        "bob-machine",
        &[
            "seal",
            "api-key",
            "--kind",
            "secret",
            "--from-file",
            env.path("payload").to_str().unwrap(),
            "--fingerprint",
            &fingerprint,
        ],
    );
    assert!(out.status.success(), "bob seals: {}", stderr(&out));

    // Bob changes no operator: refused before any share is read (exit 5, naming his role).
    let carol = env.run_on("carol-machine", &["operator", "key"]);
    let carol_key = String::from_utf8_lossy(&carol.stdout).trim().to_owned();
    let mut try_add = env.quorum(&[
        "operator",
        "add",
        "carol",
        "--role",
        "security-officer",
        "--key",
        &carol_key,
    ]);
    try_add.extend(["--fingerprint".into(), fingerprint.clone()]);
    let out = env.run_on("bob-machine", &as_strs(&try_add));
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("operator bob of vault")
            && stderr(&out).contains("is not a security officer"),
        "{}",
        stderr(&out)
    );
    let out = env.run_on(
        "bob-machine",
        &as_strs(&env.quorum(&["operator", "remove", "olivia"])),
    );
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    assert_eq!(env.operators().as_array().unwrap().len(), 2);
    // A machine with no operator key changes nothing either (exit 5, naming the path looked at).
    let mut dan_remove = env.quorum(&["operator", "remove", "bob"]);
    dan_remove.extend(["--fingerprint".into(), fingerprint.clone()]);
    let out = env.run_on("dan-machine", &as_strs(&dan_remove));
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("this machine has no operator key for vault"),
        "{}",
        stderr(&out)
    );

    // Olivia removes bob: version 3, recorded; bob is no operator any more.
    let printed = env.ok(&as_strs(&env.quorum(&["operator", "remove", "bob"])));
    assert!(
        printed.contains("operator bob removed by olivia; manifest version 3"),
        "{printed}"
    );
    assert_eq!(env.operators().as_array().unwrap().len(), 1);
    assert_eq!(env.audit_events("operator_remove").len(), 1);
    let out = env.run_on("bob-machine", &["operator", "key"]);
    assert!(
        stderr(&out).contains("not an operator of the vault yet"),
        "{}",
        stderr(&out)
    );
    env.ok(&["audit", "verify"]);
}

/// Every change that cannot be made is refused before a share is read, naming what is wrong,
/// exit 2, and nothing is written: the last security officer, a name or key already there, a
/// malformed key or name, an unknown operator, a missing role.
#[test]
fn impossible_operator_changes_are_refused_before_any_share_is_read() {
    let env = Env::with_olivia();
    let manifest = std::fs::read(env.vault().join("vault.json")).unwrap();
    let log = std::fs::read(env.vault().join("audit.jsonl")).unwrap();
    let olivia_key = env.operators()[0]["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_key = "ab".repeat(32);
    // No shares given: each refusal comes before they would be asked for.
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["operator", "remove", "olivia"],
            "last security officer",
        ),
        (
            vec!["operator", "remove", "nobody"],
            "no operator of the vault has that name",
        ),
        (
            vec![
                "operator",
                "add",
                "olivia",
                "--role",
                "cloud-admin",
                "--key",
                &other_key,
            ],
            "an operator of that name exists already",
        ),
        (
            vec![
                "operator",
                "add",
                "dan",
                "--role",
                "cloud-admin",
                "--key",
                &olivia_key,
            ],
            "is operator olivia's already",
        ),
        (
            vec![
                "operator",
                "add",
                "dan",
                "--role",
                "cloud-admin",
                "--key",
                "abcd",
            ],
            "the --key given is not an Ed25519 public key",
        ),
        (
            vec![
                "operator",
                "add",
                "dan\u{1b}[2J",
                "--role",
                "cloud-admin",
                "--key",
                &other_key,
            ],
            "operator name",
        ),
    ];
    for (args, expected) in &cases {
        let out = env.run(args);
        assert_eq!(code(&out), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // No role at all: clap refuses it.
    let out = env.run(&["operator", "add", "dan", "--key", &other_key]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(env.vault().join("vault.json")).unwrap(),
        manifest
    );
    assert_eq!(std::fs::read(env.vault().join("audit.jsonl")).unwrap(), log);
}

/// A second security officer added, the first can then be removed by the second: the last
/// one is what is kept, not the first.
#[test]
fn the_first_security_officer_can_leave_once_another_one_is_added() {
    let env = Env::with_olivia();
    let fingerprint = env.fingerprint();
    let out = env.run_on("sam-machine", &["operator", "key"]);
    let sam = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    env.ok(&as_strs(&env.quorum(&[
        "operator",
        "add",
        "sam",
        "--role",
        "security-officer",
        "--role",
        "cloud-admin",
        "--key",
        &sam,
    ])));
    let mut remove = env.quorum(&["operator", "remove", "olivia"]);
    remove.extend(["--fingerprint".into(), fingerprint]);
    let out = env.run_on("sam-machine", &as_strs(&remove));
    assert!(out.status.success(), "{}", stderr(&out));
    let operators = env.operators();
    assert_eq!(operators.as_array().unwrap().len(), 1);
    assert_eq!(operators[0]["name"], "sam");
    // Olivia's machine still holds her key, which is no operator's now.
    let out = env.run(&as_strs(&env.quorum(&["operator", "remove", "sam"])));
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("belongs to no operator"),
        "{}",
        stderr(&out)
    );
}

/// The format-1 fixture (made by the previous release, `tests/data/format-1-vault`) copied into
/// this test's directory.
fn format_1_vault() -> Env {
    Env::from_fixture("format-1-vault")
}

const OLD_FINGERPRINT: &str = "INV4-EJCA-FMXN-MG6M-BIYP-J2MF-DZEQ-QH63";

/// A vault made by the previous release: every command says it is format 1 and names
/// `breakglass upgrade` (exit 5); the upgrade, with a quorum and the token, certifies version 1
/// with the operator who ran it, and the credential sealed before opens after. Putting the old
/// `vault.json` back is then a downgrade (exit 5), and upgrading it again is refused.
#[test]
fn a_format_1_vault_is_refused_until_upgraded_and_the_old_file_is_refused_after() {
    let env = format_1_vault();
    let old_manifest = std::fs::read(env.vault().join("vault.json")).unwrap();
    let out_file = env.path("out");
    let unseal = env.quorum(&[
        "unseal",
        "db-root",
        "--output",
        &format!("file:{}", out_file.display()),
    ]);
    for args in [
        vec!["status".to_owned()],
        vec!["list".to_owned()],
        unseal.clone(),
    ] {
        let out = env.run(&as_strs(&args));
        assert_eq!(code(&out), Some(5), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("is a format-1 manifest"),
            "{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("breakglass upgrade"),
            "{}",
            stderr(&out)
        );
    }

    // A wrong fingerprint, or too few shares: nothing changes.
    let mut wrong = env.quorum(&["upgrade", "--operator", "olivia"]);
    wrong.extend([
        "--fingerprint".into(),
        "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA".into(),
    ]);
    let out = env.run(&as_strs(&wrong));
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    let mut short: Vec<String> = ["upgrade", "--operator", "olivia"]
        .map(String::from)
        .to_vec();
    short.extend(env.share_files(&["alice"]));
    let out = env.run(&as_strs(&short));
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(env.vault().join("vault.json")).unwrap(),
        old_manifest
    );
    assert!(!env.path("config/breakglass/operators").exists());

    let printed = env.ok(&as_strs(&env.quorum(&["upgrade", "--operator", "olivia"])));
    assert!(
        printed.contains("manifest version 1 certified by the quorum"),
        "{printed}"
    );
    assert!(
        printed.contains("token PINs unchanged (pin/1) for: breakglass-dev"),
        "{printed}"
    );
    let status = env.status();
    let identity = status["fingerprint"].as_str().unwrap().to_owned();
    assert_ne!(identity, OLD_FINGERPRINT);
    let known = std::fs::read_to_string(env.path("config/breakglass/known_vaults.json")).unwrap();
    assert!(
        known.contains(&identity) && !known.contains(OLD_FINGERPRINT),
        "{known}"
    );
    let operators = env.operators();
    assert_eq!(operators[0]["name"], "olivia");
    assert_eq!(
        operators[0]["roles"],
        serde_json::json!(["security_officer", "cloud_administrator"])
    );
    let upgrade = env.audit_events("upgrade");
    assert_eq!(upgrade.len(), 1);
    assert_eq!(upgrade[0]["details"]["old_fingerprint"], OLD_FINGERPRINT);
    assert_eq!(upgrade[0]["details"]["manifest_version"], "1");
    env.ok(&["audit", "verify"]);
    // The credential sealed by the previous release opens (the token's pin/1 PIN kept).
    env.ok(&as_strs(&unseal));
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        b"the database root password"
    );
    std::fs::remove_file(&out_file).unwrap();

    // The downgrade: the old file put back. Refused, exit 5, said as such.
    let certified = std::fs::read(env.vault().join("vault.json")).unwrap();
    std::fs::write(env.vault().join("vault.json"), &old_manifest).unwrap();
    for args in [vec!["status".to_owned()], unseal.clone()] {
        let out = env.run(&as_strs(&args));
        assert_eq!(code(&out), Some(5), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("the old file was put back"),
            "{}",
            stderr(&out)
        );
    }
    let out = env.run(&as_strs(&env.quorum(&["upgrade", "--operator", "olivia"])));
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the old file was put back"),
        "{}",
        stderr(&out)
    );
    std::fs::write(env.vault().join("vault.json"), &certified).unwrap();
    // Upgrading a certified vault: nothing to do (exit 2).
    let out = env.run(&as_strs(&env.quorum(&["upgrade", "--operator", "olivia"])));
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing to upgrade"),
        "{}",
        stderr(&out)
    );
}

/// The module path of a format-1 `vault.json` was outside its fingerprint: the upgrade never
/// loads it and certifies the module this machine named instead.
#[test]
fn the_upgrade_never_loads_or_certifies_the_old_files_module_path() {
    let env = format_1_vault();
    let marker = env.path("shim-loaded");
    let text = std::fs::read_to_string(env.vault().join("vault.json")).unwrap();
    let library = hsm_testing::shim::library();
    let old_path = "/usr/lib/softhsm/libsofthsm2.so";
    let softhsm = hsm_testing::softhsm::module_path().display().to_string();
    assert!(text.contains(old_path), "the fixture names SoftHSM");
    std::fs::write(
        env.vault().join("vault.json"),
        text.replace(old_path, library.to_str().unwrap()),
    )
    .unwrap();
    let shim = hsm_testing::shim::Shim::new().loaded_marker(&marker);
    let mut command = env.command(&as_strs(&env.quorum(&["upgrade", "--operator", "olivia"])));
    shim.apply(&mut command);
    let out = command.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !marker.exists(),
        "the module path from the old vault.json was loaded"
    );
    let certified = std::fs::read_to_string(env.vault().join("vault.json")).unwrap();
    assert!(
        !certified.contains(library.to_str().unwrap()),
        "{certified}"
    );
    assert!(certified.contains(&softhsm));
}
