//! End-to-end: the core flow (init, seal, list/status, unseal, share verify, audit) driving the
//! built binary against fresh SoftHSM tokens, each test with its own vault, token directory and
//! configuration directory.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod support;

use support::{Env, stderr};

impl Env {
    fn share(&self, custodian: &str) -> String {
        self.path("shares")
            .join(format!("{custodian}.share"))
            .display()
            .to_string()
    }
    /// A 3-of-5 dev vault with a `secret` credential sealed from a file.
    fn three_of_five() -> (Env, Vec<u8>) {
        let env = Env::new();
        env.init_vault(&["alice", "bob", "carol", "dave", "erin"], 3, &[]);
        let payload: Vec<u8> = (0..=255u8)
            .chain(b"binary \n secret".iter().copied())
            .collect();
        env.seal_secret("db-root", "payload.bin", &payload);
        (env, payload)
    }
}

#[test]
fn three_of_five_unseals_with_exactly_the_quorum_byte_for_byte() {
    let (env, payload) = Env::three_of_five();
    let out = env.path("out.bin");
    let (alice, carol, erin) = (env.share("alice"), env.share("carol"), env.share("erin"));
    let output = env.run(&[
        "unseal",
        "db-root",
        "--share-file",
        &alice,
        "--share-file",
        &carol,
        "--share-file",
        &erin,
        "--output",
        &format!("file:{}", out.display()),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(&out).unwrap(), payload);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(stderr(&output).contains("custodians: alice, carol, erin"));
    // The file is never overwritten.
    let again = env.run(&[
        "unseal",
        "db-root",
        "--share-file",
        &alice,
        "--share-file",
        &carol,
        "--share-file",
        &erin,
        "--output",
        &format!("file:{}", out.display()),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("never overwrites"),
        "{}",
        stderr(&again)
    );
    // The audit log names the custodians and verifies, signed to the end.
    let log = std::fs::read_to_string(env.vault().join("audit.jsonl")).unwrap();
    assert!(log.contains("\"custodians\":[\"alice\",\"carol\",\"erin\"]"));
    assert!(!log.contains("binary"), "no payload in the audit log");
    let verify = env.ok(&["audit", "verify", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&verify).unwrap();
    assert_eq!(
        report["unsigned_tail"], 0,
        "the unseal is signed by a checkpoint: {report}"
    );
    assert_eq!(
        report["entries"], 6,
        "the refused second attempt left no entry: {report}"
    );
}

#[test]
fn too_few_shares_exit_3_and_say_how_many_more() {
    let (env, _) = Env::three_of_five();
    let output = env.run(&[
        "unseal",
        "db-root",
        "--share-file",
        &env.share("bob"),
        "--share-file",
        &env.share("dave"),
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    // Named: the group, whose shares it has, and whose it could still take.
    assert!(
        stderr(&output).contains(
            "not enough shares: group \"custodians\" needs 1 more (has 2 of 3: bob, dave) of alice, carol, erin"
        ),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_share_of_another_vault_a_typo_and_a_duplicate_are_named() {
    let (env, _) = Env::three_of_five();
    let (other, _) = Env::three_of_five();
    let foreign = other.share("bob");
    let output = env.run(&[
        "unseal",
        "db-root",
        "--share-file",
        &env.share("alice"),
        "--share-file",
        &foreign,
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(3));
    let err = stderr(&output);
    assert!(
        err.contains(&foreign) && err.contains("does not belong to this vault"),
        "{err}"
    );

    // A mistyped word: named by share and position, with the intended word suggested.
    let text = std::fs::read_to_string(env.share("carol")).unwrap();
    let words_line = text
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .to_owned();
    let mut words: Vec<String> = words_line.split(' ').map(str::to_owned).collect();
    let intended = words[7].clone();
    words[7] = format!("{}x", &intended[..intended.len() - 1]);
    let typo = env.path("typo.share");
    std::fs::write(&typo, words.join(" ")).unwrap();
    let output = env.run(&[
        "unseal",
        "db-root",
        "--share-file",
        &env.share("alice"),
        "--share-file",
        typo.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(3));
    let err = stderr(&output);
    assert!(
        err.contains("share 2: word 8 is not a SLIP-39 word") && err.contains(&intended),
        "{err}"
    );

    let output = env.run(&[
        "unseal",
        "db-root",
        "--share-file",
        &env.share("alice"),
        "--share-file",
        &env.share("alice"),
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("share 2 is the same share as share 1"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn two_groups_need_both_groups() {
    let env = Env::new();
    env.init_groups(
        &["security-officers:1:sam", "cloud-admins:2:ana,ben,cat"],
        2,
        &[],
    );
    std::fs::write(env.path("p"), b"two groups").unwrap();
    env.ok(&[
        "seal",
        "s",
        "--kind",
        "secret",
        "--from-file",
        env.path("p").to_str().unwrap(),
    ]);
    let admins = env.run(&[
        "unseal",
        "s",
        "--share-file",
        &env.share("ana"),
        "--share-file",
        &env.share("ben"),
        "--share-file",
        &env.share("cat"),
        "--output",
        "json",
    ]);
    assert_eq!(admins.status.code(), Some(3));
    assert!(
        stderr(&admins).contains("1 more group"),
        "{}",
        stderr(&admins)
    );
    let out = env.ok(&[
        "unseal",
        "s",
        "--share-file",
        &env.share("cat"),
        "--share-file",
        &env.share("sam"),
        "--share-file",
        &env.share("ana"),
        "--output",
        "json",
    ]);
    assert!(
        out.contains(&hex_of(b"two groups")) || out.contains("two groups"),
        "{out}"
    );
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_changed_byte_in_an_envelope_the_manifest_or_the_audit_log_is_exit_5() {
    let (env, _) = Env::three_of_five();
    let shares = [env.share("alice"), env.share("bob"), env.share("carol")];
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["unseal".into(), "db-root".into()];
        for s in &shares {
            v.push("--share-file".into());
            v.push(s.clone());
        }
        v.push("--output".into());
        v.push("json".into());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |env: &Env| {
        let a = args(&[]);
        env.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let flip = |path: &Path, at: usize| {
        let mut bytes = std::fs::read(path).unwrap();
        let i = at.min(bytes.len() - 2);
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        std::fs::write(path, bytes).unwrap();
    };
    let envelope = env.vault().join("credentials/db-root.json");
    let original = std::fs::read(&envelope).unwrap();
    flip(&envelope, original.len() * 2 / 3);
    let output = run(&env);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("db-root.json: integrity check failed"),
        "{}",
        stderr(&output)
    );
    std::fs::write(&envelope, &original).unwrap();
    assert!(run(&env).status.success());

    let manifest = env.vault().join("vault.json");
    let original = std::fs::read(&manifest).unwrap();
    let text = String::from_utf8(original.clone())
        .unwrap()
        .replace("\"drill_interval_days\": 90", "\"drill_interval_days\": 91");
    std::fs::write(&manifest, text).unwrap();
    let output = run(&env);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is not signed by its quorum"),
        "{}",
        stderr(&output)
    );
    std::fs::write(&manifest, &original).unwrap();

    let log = env.vault().join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap().replacen(
        "\"event\":\"seal\"",
        "\"event\":\"sael\"",
        1,
    );
    std::fs::write(&log, text).unwrap();
    let output = env.run(&["audit", "verify"]);
    assert_eq!(output.status.code(), Some(5));
    assert!(stderr(&output).contains("line 5"), "{}", stderr(&output));
}

#[test]
fn a_wrong_pin_fails_with_exit_4_without_locking_the_token() {
    let env = Env::new();
    let hsm = hsm_testing::softhsm::SoftHsm::for_children();
    let module = hsm_testing::softhsm::module_path();
    let with_token = |args: &[&str], pin: &str| {
        env.command(args)
            .envs(hsm.env())
            .env("BG_PIN", pin)
            .env("BG_SO_PIN", "so-pin-87654321")
            .output()
            .unwrap()
    };
    let init = with_token(
        &[
            "init",
            "--module",
            module.to_str().unwrap(),
            "--token",
            "ops-token",
            "--init-token",
            "--pin-source",
            "env:BG_PIN",
            "--so-pin-source",
            "env:BG_SO_PIN",
            "--custodian",
            "a",
            "--custodian",
            "b",
            "--threshold",
            "2",
            "--iteration-exponent",
            "0",
            "--shares-dir",
            env.path("shares").to_str().unwrap(),
        ],
        "user-pin-12345678",
    );
    assert!(init.status.success(), "{}", stderr(&init));
    std::fs::write(env.path("p"), b"x").unwrap();
    assert!(
        with_token(
            &[
                "seal",
                "s",
                "--kind",
                "secret",
                "--from-file",
                env.path("p").to_str().unwrap()
            ],
            ""
        )
        .status
        .success()
    );
    let unseal = |pin: &str| {
        with_token(
            &[
                "unseal",
                "s",
                "--share-file",
                &env.share("a"),
                "--share-file",
                &env.share("b"),
                "--output",
                "json",
            ],
            pin,
        )
    };
    for _ in 0..3 {
        let wrong = unseal("wrong-pin-0000");
        assert_eq!(wrong.status.code(), Some(4), "{}", stderr(&wrong));
        assert!(
            stderr(&wrong).contains("PIN refused by token \"ops-token\""),
            "{}",
            stderr(&wrong)
        );
        assert!(!stderr(&wrong).contains("wrong-pin-0000"));
    }
    let tokens = with_token(
        &[
            "hsm",
            "tokens",
            "--json",
            "--module",
            module.to_str().unwrap(),
        ],
        "",
    );
    let tokens: serde_json::Value = serde_json::from_slice(&tokens.stdout).unwrap();
    assert_eq!(tokens[0]["user_pin_locked"], false);
    let right = unseal("user-pin-12345678");
    assert!(right.status.success(), "{}", stderr(&right));
    // An unset PIN variable is named.
    let unset = env
        .command(&[
            "unseal",
            "s",
            "--share-file",
            &env.share("a"),
            "--share-file",
            &env.share("b"),
            "--output",
            "json",
        ])
        .envs(hsm.env())
        .output()
        .unwrap();
    assert_eq!(unset.status.code(), Some(4));
    assert!(stderr(&unset).contains("BG_PIN"), "{}", stderr(&unset));
}

#[test]
fn two_writers_at_once_are_serialised_with_nothing_lost() {
    let (env, _) = Env::three_of_five();
    let children: Vec<_> = (0..6)
        .map(|i| {
            let file = env.path(&format!("p{i}"));
            std::fs::write(&file, format!("secret {i}")).unwrap();
            env.command(&[
                "seal",
                &format!("c{i}"),
                "--kind",
                "secret",
                "--from-file",
                file.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 7);
    let report: serde_json::Value =
        serde_json::from_str(&env.ok(&["audit", "verify", "--json"])).unwrap();
    assert_eq!(report["entries"], 4 + 6, "{report}");
}

#[test]
fn stdin_that_is_not_a_terminal_never_hangs() {
    let (env, _) = Env::three_of_five();
    let start = Instant::now();
    let output = env.run(&["unseal", "db-root", "--output", "json"]);
    assert!(start.elapsed() < Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--share-file"),
        "{}",
        stderr(&output)
    );
    let output = env.run(&["seal", "x", "--kind", "secret"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--from-file"),
        "{}",
        stderr(&output)
    );
    let output = env.run(&["share", "verify"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn shares_from_stdin_status_list_and_share_verify() {
    let (env, _) = Env::three_of_five();
    let mnemonics: String = ["bob", "dave", "erin"]
        .iter()
        .map(|c| std::fs::read_to_string(env.share(c)).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let output = env.run_stdin(
        &["unseal", "db-root", "--shares-stdin", "--output", "json"],
        mnemonics.as_bytes(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["credentials"][0]["name"], "db-root");
    assert_eq!(status["audit"]["first_problem"], serde_json::Value::Null);
    assert_eq!(status["pinned_on_this_machine"], true);
    let absent: Vec<String> =
        serde_json::from_value(status["custodians_without_recent_participation"].clone()).unwrap();
    assert_eq!(absent, vec!["alice", "carol"]);
    let verify = env.ok(&[
        "share",
        "verify",
        "--share-file",
        &env.share("carol"),
        "--json",
    ]);
    assert!(verify.contains("\"custodian\":\"carol\""), "{verify}");
    // Sealing against an unpinned vault needs the fingerprint; a wrong one is refused with exit 5.
    let fingerprint = status["fingerprint"].as_str().unwrap().to_owned();
    // The operator's machine forgets its pins (not its operator key: sealing needs a cloud
    // administrator's).
    let config = env.path("config").join("breakglass");
    std::fs::remove_file(config.join("known_vaults.json")).unwrap();
    std::fs::remove_dir_all(config.join("anchors")).unwrap();
    let p = env.path("p");
    std::fs::write(&p, b"x").unwrap();
    let unpinned = env.run(&[
        "seal",
        "y",
        "--kind",
        "secret",
        "--from-file",
        p.to_str().unwrap(),
    ]);
    assert_eq!(unpinned.status.code(), Some(2));
    assert!(stderr(&unpinned).contains("--fingerprint"));
    let wrong = env.run(&[
        "seal",
        "y",
        "--kind",
        "secret",
        "--from-file",
        p.to_str().unwrap(),
        "--fingerprint",
        "AAAA-BBBB",
    ]);
    assert_eq!(wrong.status.code(), Some(5));
    env.ok(&[
        "seal",
        "y",
        "--kind",
        "secret",
        "--from-file",
        p.to_str().unwrap(),
        "--fingerprint",
        &fingerprint,
    ]);
}

#[test]
fn share_cards_carry_the_words_the_fingerprint_and_a_qr_code() {
    let env = Env::new();
    let out = env.ok(&[
        "init",
        "--dev-softhsm",
        "--custodian",
        "ann",
        "--custodian",
        "bo",
        "--threshold",
        "2",
        "--iteration-exponent",
        "0",
        "--share-cards",
        env.path("cards").to_str().unwrap(),
        "--json",
    ]);
    let init: serde_json::Value = serde_json::from_str(&out).unwrap();
    let fingerprint = init["fingerprint"].as_str().unwrap();
    let card = env.path("cards").join("ann.html");
    let html = std::fs::read_to_string(&card).unwrap();
    assert!(
        html.contains(fingerprint) && html.contains("<svg") && html.contains("<li><span> 1</span>"),
        "{html}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&card).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Cards are never overwritten: a second init into another vault with the same card
    // directory fails before touching the existing cards.
    let again = env
        .command(&[
            "--vault",
            env.path("vault2").to_str().unwrap(),
            "init",
            "--dev-softhsm",
            "--custodian",
            "ann",
            "--custodian",
            "bo",
            "--threshold",
            "2",
            "--share-cards",
            env.path("cards").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));
    assert_eq!(std::fs::read_to_string(&card).unwrap(), html);
    assert!(
        !env.path("vault2").exists(),
        "no half-made vault is left behind"
    );
}

#[test]
fn a_failed_init_leaves_nothing_behind() {
    let env = Env::new();
    let output = env.run(&[
        "init",
        "--module",
        "/nonexistent/pkcs11.so",
        "--token",
        "t",
        "--init-token",
        "--custodian",
        "a",
        "--custodian",
        "b",
        "--threshold",
        "2",
        "--shares-dir",
        env.path("shares").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(stderr(&output).contains("/nonexistent/pkcs11.so"));
    assert!(!env.vault().exists());
    assert!(!env.path("shares").exists());
}

#[test]
fn a_backup_token_unseals_when_the_primary_token_is_gone() {
    let (env, payload) = Env::three_of_five();
    let shares = [env.share("alice"), env.share("bob"), env.share("carol")];
    let with_shares = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        for s in &shares {
            v.push("--share-file".into());
            v.push(s.clone());
        }
        v
    };
    let before: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    let args = with_shares(&["hsm", "enroll", "--token", "backup", "--init-token"]);
    let out = env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("fingerprint unchanged"), "{out}");
    let after: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    // The identity leaves the tokens out (the quorum certifies them): the cards stay valid.
    assert_eq!(after["fingerprint"], before["fingerprint"]);
    assert_eq!(
        after["manifest_version"].as_u64(),
        before["manifest_version"].as_u64().map(|v| v + 1)
    );
    assert_eq!(after["tokens"].as_array().unwrap().len(), 2);
    assert_eq!(after["credentials"][0]["tokens"], 2);

    // The backup alone opens the credential.
    let out_file = env.path("via-backup.bin");
    let args = with_shares(&[
        "unseal",
        "db-root",
        "--hsm",
        "backup",
        "--output",
        &format!("file:{}", out_file.display()),
    ]);
    let output = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(&out_file).unwrap(), payload);

    // The primary token's directory deleted: the backup serves without being named.
    let tokens = env.vault().join("softhsm/tokens");
    let primary = std::fs::read_dir(&tokens)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|dir| {
            std::fs::read(dir.join("token.object"))
                .map(|b| b.windows(14).any(|w| w == b"breakglass-dev"))
                .unwrap_or(false)
        })
        .expect("the primary token's directory");
    std::fs::remove_dir_all(&primary).unwrap();
    let out_file = env.path("after-loss.bin");
    let args = with_shares(&[
        "unseal",
        "db-root",
        "--output",
        &format!("file:{}", out_file.display()),
    ]);
    let output = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("token backup"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(&out_file).unwrap(), payload);
}
