//! End-to-end: rekey (old shares stop working, new ones work, interrupted rekeys resume),
//! recovery from the loss of every token, and enrolling a backup token with the token alone.
//! Each test drives the built binary with its own vault, SoftHSM token and configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

use support::{Env, as_strs, stderr};

impl Env {
    /// `init --dev-softhsm` with five custodians, 3 needed, shares in `shares/`, and `extra`.
    fn init(&self, extra: &[&str]) -> Output {
        let args = self.init_args(&["alice", "bob", "carol", "dave", "erin"], 3, extra);
        self.run(&as_strs(&args))
    }
    fn seal(&self, name: &str, payload: &[u8], replace: bool) {
        let file = self.path(&format!("{name}.payload"));
        std::fs::write(&file, payload).unwrap();
        let mut args = vec![
            "seal",
            name,
            "--kind",
            "secret",
            "--from-file",
            file.to_str().unwrap(),
        ];
        if replace {
            args.push("--replace");
        }
        self.ok(&args);
    }
    /// Runs `command` with `--share-file` for each of `shares` (paths relative to the test
    /// directory) and writes the secret to a new file; returns the output and the file.
    fn open_with(&self, command: &[&str], shares: &[&str]) -> (Output, PathBuf) {
        let out = self.path(&format!(
            "out-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        for share in shares {
            args.push("--share-file".into());
            args.push(self.path(share).display().to_string());
        }
        args.push("--output".into());
        args.push(format!("file:{}", out.display()));
        let output = self.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        (output, out)
    }
    /// Deletes every token directory of the vault's development SoftHSM.
    fn lose_every_token(&self) {
        let tokens = self.vault().join("softhsm/tokens");
        for entry in std::fs::read_dir(&tokens).unwrap() {
            std::fs::remove_dir_all(entry.unwrap().path()).unwrap();
        }
    }
}

fn with_share_files(args: &[&str], env: &Env, shares: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    for share in shares {
        v.push("--share-file".into());
        v.push(env.path(share).display().to_string());
    }
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn rage_identity(dir: &Path) -> (PathBuf, String) {
    let identity = dir.join("frank.key");
    let keygen = Command::new(hsm_testing::tools::cargo_program("rage-keygen"))
        .arg("-o")
        .arg(&identity)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", stderr(&keygen));
    let public = std::fs::read_to_string(&identity)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    (identity, public)
}

#[test]
fn rekey_makes_old_shares_fail_and_new_shares_work() {
    let env = Env::new();
    let init = env.init(&[]);
    assert!(init.status.success(), "{}", stderr(&init));
    env.seal("db-root", b"first version", false);
    env.seal("db-root", b"the database root password", true);
    env.seal("api-token", b"an api token", false);
    let before = env.status();
    let old = [
        "shares/alice.share",
        "shares/bob.share",
        "shares/carol.share",
    ];

    // New custodians: alice and bob stay, frank joins (his share encrypted to his age key),
    // 2 of 3 needed.
    let (identity, public) = rage_identity(env.dir.path());
    let args = with_share_files(
        &[
            "rekey",
            "--yes",
            "--custodian",
            "alice",
            "--custodian",
            "bob",
            "--custodian",
            "frank",
            "--threshold",
            "2",
            "--shares-dir",
            env.path("new-shares").to_str().unwrap(),
            "--recipient",
            &format!("frank={public}"),
        ],
        &env,
        &old,
    );
    let out = env.ok(&strs(&args));
    assert!(out.contains("new fingerprint"), "{out}");
    assert!(env.path("new-shares/frank.share.age").exists());
    assert!(!env.path("new-shares/frank.share").exists());
    let after = env.status();
    assert_ne!(after["fingerprint"], before["fingerprint"]);
    assert_eq!(
        after["quorum"]["groups"][0]["members"],
        serde_json::json!(["alice", "bob", "frank"])
    );

    // The old shares no longer open anything, and are refused as retired by this rekey.
    let (output, _) = env.open_with(&["unseal", "db-root"], &old);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("share of the set retired by the rekey of"),
        "{}",
        stderr(&output)
    );

    // The new shares do, frank's through his age identity; the token logged in with the PIN
    // the new quorum derives.
    let mut args = with_share_files(&["unseal", "db-root"], &env, &["new-shares/alice.share"]);
    let out_file = env.path("db-root.out");
    args.extend([
        "--share-file".into(),
        env.path("new-shares/frank.share.age").display().to_string(),
        "--identity".into(),
        identity.display().to_string(),
        "--output".into(),
        format!("file:{}", out_file.display()),
    ]);
    let output = env.run(&strs(&args));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        b"the database root password"
    );
    let (output, file) = env.open_with(
        &["unseal", "api-token"],
        &["new-shares/alice.share", "new-shares/bob.share"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(file).unwrap(), b"an api token");

    // The kept previous version was re-sealed to the new quorum key as well.
    let quorum_key = after_quorum_key(&env);
    let history = env.vault().join("history/db-root/1.json");
    let old_version: serde_json::Value =
        serde_json::from_slice(&std::fs::read(history).unwrap()).unwrap();
    assert_eq!(old_version["quorum_stanza"]["recipient"], quorum_key);

    // The audit log records it, with the old quorum's custodians, and verifies.
    let rekeys = env.audit_events("rekey");
    assert_eq!(rekeys.len(), 1, "{rekeys:?}");
    let rekey = &rekeys[0];
    assert_eq!(
        rekey["custodians"],
        serde_json::json!(["alice", "bob", "carol"])
    );
    assert_eq!(rekey["details"]["new_custodians"], "alice,bob,frank");
    env.ok(&["audit", "verify"]);
}

fn after_quorum_key(env: &Env) -> serde_json::Value {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.vault().join("vault.json")).unwrap()).unwrap();
    manifest["manifest"]["quorum"]["public_key"].clone()
}

impl Env {
    /// A rekey with `shares` into `dir`, stopped at the fault point `fault` (it must be there
    /// that it stopped, not earlier for another reason).
    fn interrupted_rekey(&self, shares: &[&str], dir: &str, fault: &str) {
        let args = with_share_files(
            &[
                "rekey",
                "--yes",
                "--shares-dir",
                self.path(dir).to_str().unwrap(),
            ],
            self,
            shares,
        );
        let output = self.run_with(&strs(&args), &[("BREAKGLASS_TEST_FAULT", fault)]);
        assert!(
            !output.status.success()
                && stderr(&output).contains(&format!("fault point {fault}"))
                && stderr(&output).contains("rekey --resume"),
            "{}",
            stderr(&output)
        );
    }
    /// `rekey --resume` with `shares` (old and new mixed).
    fn resume(&self, shares: &[&str]) -> Output {
        self.run(&strs(&with_share_files(
            &["rekey", "--resume"],
            self,
            shares,
        )))
    }
    /// Unseals `name` with `shares` and checks the payload.
    fn unseals(&self, name: &str, shares: &[&str], payload: &[u8]) {
        let (output, file) = self.open_with(&["unseal", name], shares);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(std::fs::read(file).unwrap(), payload);
    }
    /// While a rekey is unfinished, nothing else runs, and the message says what to do.
    fn refuses_until_resumed(&self, shares: &[&str]) {
        let (output, _) = self.open_with(&["unseal", "one"], shares);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("rekey --resume"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn an_edited_rekey_journal_is_refused_and_never_re_pins_the_machine() {
    let env = Env::new();
    let init = env.init(&[]);
    assert!(init.status.success(), "{}", stderr(&init));
    env.seal("one", b"payload one", false);
    let old = [
        "shares/alice.share",
        "shares/bob.share",
        "shares/carol.share",
    ];
    env.interrupted_rekey(&old, "new1", "rekey-after-first-envelope");
    let journal = env.vault().join("rekey.json");
    let genuine = std::fs::read_to_string(&journal).unwrap();
    let known = env.path("config/breakglass/known_vaults.json");
    let pinned = std::fs::read(&known).unwrap();
    let both = [
        "shares/alice.share",
        "shares/bob.share",
        "shares/carol.share",
        "new1/alice.share",
        "new1/bob.share",
        "new1/carol.share",
    ];
    // Someone with write access to the directory edits the manifest the rekey installs: the
    // new quorum key stays (the new shares must still fit it), the token's module is theirs.
    let mut edited: serde_json::Value = serde_json::from_str(&genuine).unwrap();
    let mut target: serde_json::Value =
        serde_json::from_str(edited["manifest"].as_str().unwrap()).unwrap();
    target["hsms"][0]["module"] = "/tmp/attacker/libpkcs11.so".into();
    edited["manifest"] = format!("{}\n", serde_json::to_string_pretty(&target).unwrap()).into();
    std::fs::write(&journal, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
    let output = env.resume(&both);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("rekey.json was changed since the rekey wrote it")
            && stderr(&output).contains("does not verify with the old quorum secret"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read(&known).unwrap(),
        pinned,
        "the pin is unchanged"
    );
    // A journal with its tag removed (as an older release wrote it, or a forger would):
    // refused the same way.
    let mut untagged: serde_json::Value = serde_json::from_str(&genuine).unwrap();
    untagged.as_object_mut().unwrap().remove("tag");
    std::fs::write(&journal, serde_json::to_string_pretty(&untagged).unwrap()).unwrap();
    let output = env.resume(&both);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("carries no authentication tag"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(&known).unwrap(), pinned);
    // The journal as the rekey wrote it resumes, and only then is the new vault pinned.
    std::fs::write(&journal, &genuine).unwrap();
    let resumed = env.resume(&both);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_ne!(std::fs::read(&known).unwrap(), pinned);
    env.unseals(
        "one",
        &["new1/alice.share", "new1/bob.share", "new1/carol.share"],
        b"payload one",
    );
}

#[test]
fn an_interrupted_rekey_is_refused_until_resumed_and_then_complete() {
    let env = Env::new();
    let init = env.init(&[]);
    assert!(init.status.success(), "{}", stderr(&init));
    env.seal("one", b"payload one", false);
    env.seal("two", b"payload two", false);
    let old = [
        "shares/alice.share",
        "shares/bob.share",
        "shares/carol.share",
    ];

    // After the first envelope was re-sealed: some envelopes are under the new quorum key,
    // some under the old; the PINs are the old ones.
    env.interrupted_rekey(&old, "new1", "rekey-after-first-envelope");
    env.refuses_until_resumed(&old);
    // Resume takes the old and the new shares mixed, each to its set.
    let resumed = env.resume(&[
        "shares/alice.share",
        "new1/alice.share",
        "shares/bob.share",
        "new1/dave.share",
        "shares/erin.share",
        "new1/carol.share",
    ]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("rekey finished"));
    let new1 = ["new1/bob.share", "new1/dave.share", "new1/erin.share"];
    env.unseals("one", &new1, b"payload one");
    env.unseals("two", &new1, b"payload two");

    // After the user PIN changed, before the SO PIN and the manifest: the token already
    // answers only to the new quorum's PIN.
    env.interrupted_rekey(&new1, "new2", "rekey-after-pin");
    env.refuses_until_resumed(&new1);
    // The new shares alone do not resume it: the old quorum must agree too.
    let new2 = ["new2/carol.share", "new2/dave.share", "new2/erin.share"];
    let output = env.resume(&new2);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("old quorum"),
        "{}",
        stderr(&output)
    );
    let both: Vec<&str> = new1.iter().chain(&new2).copied().collect();
    assert!(env.resume(&both).status.success());
    env.unseals("two", &new2, b"payload two");
    let (output, _) = env.open_with(&["unseal", "two"], &new1);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    env.ok(&["audit", "verify"]);

    // Between a PIN change and its journal entry: the resume finds the token already on the
    // new PIN and goes on (this rekey also logs in as the SO with the PIN the previous resume
    // set, so that one was changed too).
    env.interrupted_rekey(&new2, "new3", "rekey-before-pin-journal");
    let new3 = ["new3/alice.share", "new3/bob.share", "new3/carol.share"];
    let both: Vec<&str> = new2.iter().chain(&new3).copied().collect();
    assert!(env.resume(&both).status.success());
    env.unseals("one", &new3, b"payload one");
    env.ok(&["audit", "verify"]);

    // After the new manifest was written, before the audit log recorded it: vault.json is
    // the journal's, and the old shares still resume it.
    env.interrupted_rekey(&new3, "new4", "rekey-after-manifest");
    env.refuses_until_resumed(&new3);
    let new4 = ["new4/alice.share", "new4/dave.share", "new4/erin.share"];
    let both: Vec<&str> = new3.iter().chain(&new4).copied().collect();
    assert!(env.resume(&both).status.success());
    env.unseals("two", &new4, b"payload two");
    env.ok(&["audit", "verify"]);
    env.ok(&["status"]);
}

#[test]
fn with_no_token_recovery_works_with_the_stricter_quorum_and_fails_with_the_normal_one() {
    let env = Env::new();
    let init = env.init(&["--recovery-threshold", "4"]);
    assert!(init.status.success(), "{}", stderr(&init));
    // The trade-off is shown when enabling it.
    assert!(
        stderr(&init).contains("no longer needed to open a credential"),
        "{}",
        stderr(&init)
    );
    assert!(env.path("shares/alice.recovery.share").exists());
    // A custodian checks a recovery share alone, as any share.
    let check: serde_json::Value = serde_json::from_str(&env.ok(&[
        "share",
        "verify",
        "--json",
        "--share-file",
        env.path("shares/alice.recovery.share").to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(check["custodian"], "alice");
    assert_eq!(check["recovery"], true);
    env.seal("db-root", b"the database root password", false);
    assert_eq!(env.status()["recovery"]["threshold"], 4);
    // A threshold no stricter than the quorum is refused, naming the minimum.
    let weak = Env::new();
    let output = weak.init(&["--recovery-threshold", "3"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("at least 4"),
        "{}",
        stderr(&output)
    );

    env.lose_every_token();
    let normal = [
        "shares/alice.share",
        "shares/bob.share",
        "shares/carol.share",
    ];
    // The normal path needs a token.
    let (output, _) = env.open_with(&["unseal", "db-root"], &normal);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    // The normal quorum alone does not recover.
    let (output, _) = env.open_with(&["recover", "db-root"], &normal);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("recovery"), "{}", stderr(&output));
    // Three recovery shares (the normal threshold) do not either.
    let mut three = normal.to_vec();
    three.extend([
        "shares/alice.recovery.share",
        "shares/bob.recovery.share",
        "shares/carol.recovery.share",
    ]);
    let (output, file) = env.open_with(&["recover", "db-root"], &three);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(!file.exists());
    // Four recovery shares without the quorum's do not either.
    let (output, _) = env.open_with(
        &["recover", "db-root"],
        &[
            "shares/alice.recovery.share",
            "shares/bob.recovery.share",
            "shares/carol.recovery.share",
            "shares/dave.recovery.share",
        ],
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    // The stricter quorum with the normal one recovers, with no token at all.
    let mut four = three.clone();
    four.push("shares/erin.recovery.share");
    let (output, file) = env.open_with(&["recover", "db-root"], &four);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(file).unwrap(), b"the database root password");
    // One recover entry (the refused attempts record nothing), naming both sets' custodians.
    let recovers = env.audit_events("recover");
    assert_eq!(recovers.len(), 1, "{recovers:?}");
    assert_eq!(
        recovers[0]["custodians"],
        serde_json::json!(["alice", "bob", "carol"])
    );
    assert_eq!(
        recovers[0]["details"]["recovery_custodians"],
        "alice,bob,carol,erin"
    );
    env.ok(&["audit", "verify"]);
}

#[test]
fn recovery_enabled_later_covers_every_credential() {
    let env = Env::new();
    let init = env.init(&[]);
    assert!(init.status.success(), "{}", stderr(&init));
    env.seal("db-root", b"sealed before recovery", false);
    let normal = [
        "shares/alice.share",
        "shares/bob.share",
        "shares/carol.share",
    ];
    // The trade-off must be confirmed.
    let args = with_share_files(
        &[
            "recovery",
            "enable",
            "--threshold",
            "4",
            "--shares-dir",
            env.path("recovery").to_str().unwrap(),
        ],
        &env,
        &normal,
    );
    let output = env.run(&strs(&args));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--yes"), "{}", stderr(&output));
    assert!(!env.path("recovery").exists());
    let mut confirmed = args.clone();
    confirmed.push("--yes".into());
    let out = env.ok(&strs(&confirmed));
    assert!(out.contains("recovery enabled"), "{out}");
    env.seal("api-token", b"sealed after recovery", false);
    assert_eq!(env.status()["last_recovery_drill"], serde_json::Value::Null);
    // A recovery drill proves the path while the token is still there, without using it.
    let drill = with_share_files(
        &["drill", "--recovery", "--json"],
        &env,
        &[
            "shares/alice.share",
            "shares/bob.share",
            "shares/carol.share",
            "recovery/bob.recovery.share",
            "recovery/carol.recovery.share",
            "recovery/dave.recovery.share",
            "recovery/erin.recovery.share",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&env.ok(&strs(&drill))).unwrap();
    assert_eq!(report["credentials"]["db-root"], "opened");
    assert_eq!(report["credentials"]["api-token"], "opened");
    assert_eq!(
        report["recovery_custodians"],
        serde_json::json!(["bob", "carol", "dave", "erin"])
    );
    assert!(env.status()["last_recovery_drill"].is_string());

    env.lose_every_token();
    for (name, payload) in [
        ("db-root", &b"sealed before recovery"[..]),
        ("api-token", &b"sealed after recovery"[..]),
    ] {
        let (output, file) = env.open_with(
            &["recover", name],
            &[
                "shares/dave.share",
                "recovery/alice.recovery.share",
                "shares/erin.share",
                "recovery/bob.recovery.share",
                "recovery/carol.recovery.share",
                "shares/alice.share",
                "recovery/dave.recovery.share",
            ],
        );
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(std::fs::read(file).unwrap(), payload);
    }
}

#[test]
fn a_backup_token_is_enrolled_by_the_token_with_a_quorum_certifying_the_change() {
    let env = Env::new();
    let pins = [
        ("PRIMARY_PIN", "primary-user-pin"),
        ("PRIMARY_SO", "primary-so-pin"),
        ("BACKUP_PIN", "backup-user-pin"),
        ("BACKUP_SO", "backup-so-pin"),
    ];
    let args = env.init_args(
        &["alice", "bob"],
        2,
        &[
            "--pin-source",
            "env:PRIMARY_PIN",
            "--so-pin-source",
            "env:PRIMARY_SO",
        ],
    );
    let init = env.run_with(&as_strs(&args), &pins);
    assert!(init.status.success(), "{}", stderr(&init));
    env.seal("db-root", b"the database root password", false);
    let before = std::fs::read(env.vault().join("credentials/db-root.json")).unwrap();
    let enroll = [
        "hsm",
        "enroll",
        "--token",
        "backup",
        "--init-token",
        "--pin-source",
        "env:BACKUP_PIN",
        "--so-pin-source",
        "env:BACKUP_SO",
    ];
    // No shares given, stdin not a terminal: refused before anything changes, since the
    // quorum must certify the manifest's next version.
    let refused = env.run_with(&enroll, &pins);
    assert!(!refused.status.success(), "{}", stderr(&refused));
    assert_eq!(
        std::fs::read(env.vault().join("credentials/db-root.json")).unwrap(),
        before
    );
    // With a quorum, the enrolled token adds the backup's stanzas.
    let alice = env.path("shares/alice.share");
    let bob = env.path("shares/bob.share");
    let mut with_quorum = enroll.to_vec();
    with_quorum.extend([
        "--share-file",
        alice.to_str().unwrap(),
        "--share-file",
        bob.to_str().unwrap(),
    ]);
    let output = env.run_with(&with_quorum, &pins);
    assert!(output.status.success(), "{}", stderr(&output));
    let after_bytes = std::fs::read(env.vault().join("credentials/db-root.json")).unwrap();
    let before: serde_json::Value = serde_json::from_slice(&before).unwrap();
    let after: serde_json::Value = serde_json::from_slice(&after_bytes).unwrap();
    // Only the token layer changed: the payload and the quorum stanza are the same bytes.
    assert_eq!(after["payload"], before["payload"]);
    assert_eq!(after["quorum_stanza"], before["quorum_stanza"]);
    assert_eq!(after["hsm_stanzas"].as_array().unwrap().len(), 2);
    // Recorded with the custodians whose shares certified it, and the version they signed.
    let enrolments = env.audit_events("hsm_enrol");
    let backup = enrolments
        .iter()
        .find(|e| e["details"]["token"] == "backup")
        .unwrap_or_else(|| panic!("no enrolment of backup in {enrolments:?}"));
    assert_eq!(backup["custodians"], serde_json::json!(["alice", "bob"]));
    assert_eq!(backup["details"]["manifest_version"], "2");

    // With the primary gone, the backup opens it (with the quorum, as always).
    let tokens = env.vault().join("softhsm/tokens");
    for entry in std::fs::read_dir(&tokens).unwrap() {
        let dir = entry.unwrap().path();
        if std::fs::read(dir.join("token.object"))
            .map(|b| b.windows(14).any(|w| w == b"breakglass-dev"))
            .unwrap_or(false)
        {
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    let out_file = env.path("via-backup");
    let output = env.run_with(
        &[
            "unseal",
            "db-root",
            "--share-file",
            env.path("shares/alice.share").to_str().unwrap(),
            "--share-file",
            env.path("shares/bob.share").to_str().unwrap(),
            "--output",
            &format!("file:{}", out_file.display()),
        ],
        &pins,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("token backup"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read(out_file).unwrap(),
        b"the database root password"
    );
}

#[test]
fn a_rekey_renews_the_recovery_set_or_drops_it() {
    let env = Env::new();
    let init = env.init(&["--recovery-threshold", "4"]);
    assert!(init.status.success(), "{}", stderr(&init));
    env.seal("db-root", b"the database root password", false);
    let old = [
        "shares/alice.share",
        "shares/bob.share",
        "shares/carol.share",
    ];
    let args = with_share_files(
        &[
            "rekey",
            "--yes",
            "--shares-dir",
            env.path("new").to_str().unwrap(),
        ],
        &env,
        &old,
    );
    let output = env.run(&strs(&args));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("recovery set is renewed"),
        "{}",
        stderr(&output)
    );
    assert!(env.path("new/erin.recovery.share").exists());
    assert_eq!(env.status()["recovery"]["threshold"], 4);

    env.lose_every_token();
    let new_normal = ["new/alice.share", "new/bob.share", "new/carol.share"];
    // The old recovery shares stopped working with the old quorum shares.
    let mut with_old_recovery = new_normal.to_vec();
    with_old_recovery.extend([
        "shares/alice.recovery.share",
        "shares/bob.recovery.share",
        "shares/carol.recovery.share",
        "shares/dave.recovery.share",
    ]);
    let (output, _) = env.open_with(&["recover", "db-root"], &with_old_recovery);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let mut with_new_recovery = new_normal.to_vec();
    with_new_recovery.extend([
        "new/bob.recovery.share",
        "new/carol.recovery.share",
        "new/dave.recovery.share",
        "new/erin.recovery.share",
    ]);
    let (output, file) = env.open_with(&["recover", "db-root"], &with_new_recovery);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(file).unwrap(), b"the database root password");

    // --no-recovery drops it: the envelopes keep only the token's stanza.
    let other = Env::new();
    assert!(other.init(&["--recovery-threshold", "5"]).status.success());
    other.seal("db-root", b"x", false);
    let envelope = |e: &Env| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(e.vault().join("credentials/db-root.json")).unwrap())
            .unwrap()
    };
    assert_eq!(envelope(&other)["hsm_stanzas"].as_array().unwrap().len(), 2);
    let args = with_share_files(
        &[
            "rekey",
            "--yes",
            "--no-recovery",
            "--shares-dir",
            other.path("new").to_str().unwrap(),
        ],
        &other,
        &old,
    );
    other.ok(&strs(&args));
    assert_eq!(other.status()["recovery"], serde_json::Value::Null);
    assert_eq!(envelope(&other)["hsm_stanzas"].as_array().unwrap().len(), 1);
    assert!(!other.path("new/alice.recovery.share").exists());
}

#[test]
fn after_losing_every_token_a_replacement_is_enrolled_from_the_recovery_key() {
    let env = Env::new();
    let init = env.init(&["--recovery-threshold", "4"]);
    assert!(init.status.success(), "{}", stderr(&init));
    env.seal("db-root", b"the database root password", false);
    let normal = [
        "shares/alice.share",
        "shares/bob.share",
        "shares/carol.share",
    ];
    let (output, _) = env.open_with(&["unseal", "db-root"], &normal);
    assert!(output.status.success(), "{}", stderr(&output));
    env.lose_every_token();

    let mut both = normal.to_vec();
    both.extend([
        "shares/alice.recovery.share",
        "shares/bob.recovery.share",
        "shares/dave.recovery.share",
        "shares/erin.recovery.share",
    ]);
    let args = with_share_files(
        &[
            "hsm",
            "enroll",
            "--recovery",
            "--token",
            "replacement",
            "--init-token",
            "--retire",
            "breakglass-dev",
        ],
        &env,
        &both,
    );
    let out = env.ok(&strs(&args));
    assert!(out.contains("from the recovery key"), "{out}");
    let status = env.status();
    let tokens: Vec<&str> = status["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["label"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, ["replacement"]);
    let envelope: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.vault().join("credentials/db-root.json")).unwrap(),
    )
    .unwrap();
    // The replacement's stanza and the recovery key's; the lost token's is gone.
    assert_eq!(envelope["hsm_stanzas"].as_array().unwrap().len(), 2);

    // Back to normal: the quorum and the new token, no recovery shares.
    let (output, file) = env.open_with(&["unseal", "db-root"], &normal);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("token replacement"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(file).unwrap(), b"the database root password");
    // The audit log verifies across the change of audit key: the lost token's checkpoints
    // with its retired key, the rest with the new token's.
    let report: serde_json::Value =
        serde_json::from_str(&env.ok(&["audit", "verify", "--json"])).unwrap();
    assert_eq!(report["first_problem"], serde_json::Value::Null, "{report}");
    assert_eq!(report["bad_signature"], serde_json::Value::Null, "{report}");
    assert!(report["checkpoints"].as_u64().unwrap() >= 3, "{report}");
    // And a rekey gives fresh file keys on the new token.
    let rekey = with_share_files(
        &[
            "rekey",
            "--yes",
            "--shares-dir",
            env.path("new").to_str().unwrap(),
        ],
        &env,
        &normal,
    );
    env.ok(&strs(&rekey));
    let (output, file) = env.open_with(
        &["unseal", "db-root"],
        &["new/bob.share", "new/dave.share", "new/erin.share"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(file).unwrap(), b"the database root password");
    env.ok(&["audit", "verify"]);
}

#[test]
fn recover_asks_for_both_share_sets_on_a_terminal() {
    let env = Env::new();
    let init = env.init(&["--recovery-threshold", "4"]);
    assert!(init.status.success(), "{}", stderr(&init));
    env.seal("db-root", b"the database root password", false);
    env.lose_every_token();
    // The words as custodians would type them, the two sets interleaved, one a typo first.
    let words = |file: &str| -> String {
        std::fs::read_to_string(env.path(file))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut typed = String::new();
    typed.push_str(&words("shares/alice.share").replacen(' ', " zzzz ", 1));
    typed.push('\n');
    for file in [
        "shares/alice.share",
        "shares/bob.recovery.share",
        "shares/bob.share",
        "shares/carol.recovery.share",
        "shares/dave.recovery.share",
        "shares/carol.share",
        "shares/erin.recovery.share",
    ] {
        typed.push_str(&words(file));
        typed.push('\n');
    }
    std::fs::write(env.path("typed"), typed).unwrap();
    let out = env.path("recovered");
    // `script` gives the command a terminal (util-linux, in every Debian).
    let command = format!(
        "{} recover db-root --output file:{}",
        env!("CARGO_BIN_EXE_breakglass"),
        out.display()
    );
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("BREAKGLASS_VAULT", env.vault())
        .env("XDG_CONFIG_HOME", env.path("config"))
        .env("BREAKGLASS_REASON", "end-to-end test")
        .env_remove("SOFTHSM2_CONF")
        .stdin(std::fs::File::open(env.path("typed")).unwrap())
        .output()
        .expect("script (util-linux) runs the command on a terminal");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("refused"), "{text}");
    assert!(
        text.contains("recovery: none yet (needs 4 of [alice, bob, carol, dave, erin])"),
        "{text}"
    );
    assert!(text.contains("accepted: erin, recovery"), "{text}");
    assert_eq!(std::fs::read(out).unwrap(), b"the database root password");
}
