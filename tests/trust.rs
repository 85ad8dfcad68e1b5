//! The vault directory as untrusted storage, tried as an attacker with write access to it
//! would: each attack against the built binary, refused with exit 5 and a message naming what
//! was wrong, while the genuine flow goes on working.

mod support;

use support::{Env, assert_exit, stderr};

impl Env {
    /// A 2-of-3 development vault with a `secret` credential `db-root`.
    fn two_of_three() -> Env {
        Env::two_of_three_with_db_root(&["--operator", "olivia"])
    }

    fn share(&self, custodian: &str) -> String {
        self.path("shares")
            .join(format!("{custodian}.share"))
            .display()
            .to_string()
    }

    /// `args` with the shares of alice and bob.
    fn with_quorum(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        for custodian in ["alice", "bob"] {
            all.push("--share-file".into());
            all.push(self.share(custodian));
        }
        all
    }

    fn unseal_args(&self) -> Vec<String> {
        let out = self.path("out");
        let _ = std::fs::remove_file(&out);
        self.with_quorum(&[
            "unseal",
            "db-root",
            "--output",
            &format!("file:{}", out.display()),
        ])
    }

    fn manifest(&self) -> std::path::PathBuf {
        self.vault().join("vault.json")
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Issue 12, attack 1: the module path edited to the attacker's library and an unsigned line
/// appended recording the edited file. The quorum's signature covers the whole manifest, so
/// nothing is loaded, no share is asked for, and the command stops with exit 5.
#[test]
fn a_module_path_edited_into_the_manifest_is_never_loaded() {
    let env = Env::two_of_three();
    let marker = env.path("shim-loaded");
    let shim = hsm_testing::shim::Shim::new().loaded_marker(&marker);
    let library = hsm_testing::shim::library();
    // The shim loads when it is given as the module: the marker shows loading.
    let mut check = env.command(&["hsm", "tokens", "--module", library.to_str().unwrap()]);
    shim.apply(&mut check);
    let _ = check.output().unwrap();
    assert!(marker.exists(), "the shim's marker shows when it is loaded");
    std::fs::remove_file(&marker).unwrap();

    let text = std::fs::read_to_string(env.manifest()).unwrap();
    let softhsm = hsm_testing::softhsm::module_path().display().to_string();
    assert!(text.contains(&softhsm), "{text}");
    let edited = text.replace(&softhsm, library.to_str().unwrap());
    std::fs::write(env.manifest(), &edited).unwrap();
    let hash = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        edited.as_bytes(),
    ));
    let log = env.vault().join("audit.jsonl");
    let lines = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    let forged = serde_json::json!({
        "seq": last["seq"].as_u64().unwrap() + 1,
        "time": "2026-11-30T12:00:00Z",
        "event": "manifest",
        "actor": {"user": "root", "host": "ops"},
        "details": {"manifest_sha256": hash},
    });
    std::fs::write(&log, format!("{lines}{forged}\n")).unwrap();

    let mut unseal = env.command(&strs(&env.unseal_args()));
    shim.apply(&mut unseal);
    let output = unseal.output().unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is not signed by its quorum"),
        "{}",
        stderr(&output)
    );
    assert!(!marker.exists(), "the attacker's library was loaded");
    assert!(!env.path("out").exists());
}

/// A manifest version put back after the vault moved on (here: before a token was enrolled):
/// this machine remembers the highest version it has seen, so the older one is refused on
/// every command, naming both versions.
#[test]
fn an_older_manifest_put_back_is_refused() {
    let env = Env::two_of_three();
    let version_1 = std::fs::read(env.manifest()).unwrap();
    let args = env.with_quorum(&["hsm", "enroll", "--token", "backup", "--init-token"]);
    let out = env.ok(&strs(&args));
    assert!(out.contains("fingerprint unchanged"), "{out}");
    assert_eq!(env.status()["manifest_version"], 2);
    std::fs::write(env.manifest(), &version_1).unwrap();
    for args in [
        vec!["status".to_owned()],
        env.unseal_args(),
        vec!["audit".into(), "verify".into()],
    ] {
        let output = env.run(&strs(&args));
        assert_exit(
            &output,
            5,
            &["is version 1, but this machine has seen version 2"],
            &args,
        );
    }
}

/// The whole manifest replaced by another vault's, made by the attacker with their own quorum
/// under this vault's id: another identity than the one pinned here, refused.
#[test]
fn a_manifest_from_another_quorum_is_another_identity() {
    let env = Env::two_of_three();
    let other = Env::two_of_three();
    let mine: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.manifest()).unwrap()).unwrap();
    let vault_id = mine["manifest"]["vault_id"].as_str().unwrap();
    std::fs::copy(other.manifest(), env.manifest()).unwrap();
    // Its own vault id is pinned nowhere here: nothing is opened before a fingerprint is given
    // (exit 2), and this vault's fingerprint is not its identity (exit 5).
    let output = env.run(&strs(&env.unseal_args()));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(!env.path("out").exists());
    // Under this vault's id, the signature no longer covers it.
    let theirs = std::fs::read_to_string(env.manifest()).unwrap();
    let their_id =
        serde_json::from_str::<serde_json::Value>(&theirs).unwrap()["manifest"]["vault_id"]
            .as_str()
            .unwrap()
            .to_owned();
    std::fs::write(env.manifest(), theirs.replace(&their_id, vault_id)).unwrap();
    let output = env.run(&strs(&env.unseal_args()));
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(!env.path("out").exists());
}

/// The genuine flow: init makes this machine's operator key (0600, outside the vault) and the
/// first certified manifest, whose operator holds both roles.
#[test]
fn init_makes_the_first_operator_and_certifies_version_1() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::two_of_three();
    let status = env.status();
    assert_eq!(status["manifest_version"], 1);
    assert_eq!(
        status["operators"],
        serde_json::json!([{"name": "olivia", "roles": ["security_officer", "cloud_administrator"]}])
    );
    let vault_id = status["vault_id"].as_str().unwrap();
    let key = env
        .path("config")
        .join("breakglass/operators")
        .join(format!("{vault_id}.key"));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !std::fs::read_dir(env.vault()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".key"))
    );
    let output = env.run(&strs(&env.unseal_args()));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read(env.path("out")).unwrap(),
        b"the database root password"
    );
    env.ok(&["audit", "verify"]);
}

/// The downgrade: `vault.json` replaced by a format-1 manifest (what the earlier release wrote,
/// which nothing certifies) with the same keys. Named as such and refused, exit 5.
#[test]
fn a_format_1_manifest_put_in_place_of_the_certified_one_is_refused() {
    let env = Env::two_of_three();
    let certified: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.manifest()).unwrap()).unwrap();
    let mut old = serde_json::to_vec_pretty(&certified["manifest"]).unwrap();
    old.push(b'\n');
    std::fs::write(env.manifest(), old).unwrap();
    for args in [vec!["status".to_owned()], env.unseal_args()] {
        let output = env.run(&strs(&args));
        assert_exit(&output, 5, &["is a format-1 manifest"], &args);
    }
    assert!(!env.path("out").exists());
}

/// A rekey moves the vault to a new identity. Another machine that pinned the old one follows
/// it through the outgoing quorum's succession statement (signed with the old quorum key), and
/// only through it: with the statement removed or signed by anyone else, the new identity is
/// refused there (exit 5).
#[test]
fn another_machine_follows_a_rekey_only_through_the_outgoing_quorums_statement() {
    let env = Env::two_of_three();
    let before = env.status()["fingerprint"].as_str().unwrap().to_owned();
    // Two other machines that pinned the vault before the rekey.
    for machine in ["machine-b", "machine-c"] {
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(env.path("config"))
            .arg(env.path(machine))
            .status()
            .unwrap();
        assert!(copied.success());
    }
    let args = env.with_quorum(&[
        "rekey",
        "--yes",
        "--shares-dir",
        env.path("new-shares").to_str().unwrap(),
    ]);
    env.ok(&strs(&args));
    let after = env.status()["fingerprint"].as_str().unwrap().to_owned();
    assert_ne!(before, after);
    let status_on = |machine: &str| env.run_on(machine, &["status", "--json"]);

    // Without the statement, machine C refuses the new identity.
    let statement = std::fs::read(env.vault().join("succession.json")).unwrap();
    std::fs::remove_file(env.vault().join("succession.json")).unwrap();
    let output = status_on("machine-c");
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    // A statement whose signature is not the old quorum's: refused too.
    let mut forged: serde_json::Value = serde_json::from_slice(&statement).unwrap();
    let signature = forged["signature"].as_str().unwrap().to_owned();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    forged["signature"] = format!("{flipped}{}", &signature[1..]).into();
    std::fs::write(env.vault().join("succession.json"), forged.to_string()).unwrap();
    let output = status_on("machine-c");
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));

    // With the genuine statement, machine B follows and its pin moves to the new identity.
    std::fs::write(env.vault().join("succession.json"), &statement).unwrap();
    let output = status_on("machine-b");
    assert!(output.status.success(), "{}", stderr(&output));
    let known =
        std::fs::read_to_string(env.path("machine-b/breakglass/known_vaults.json")).unwrap();
    assert!(known.contains(&after), "{known}");
    assert!(!known.contains(&before), "{known}");
}
