//! End-to-end: `breakglass shares` as a user runs it, and the reference implementation reading
//! its output.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::{Env, as_strs, stderr};

fn run(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

const SECRET: &str = "bb54aac4b89dc868ba37d9cc21b2cece";

#[test]
fn split_then_combine_with_a_passphrase_from_the_environment() {
    let env = [("BG_PASS", "correct horse")];
    let out = stdout(&run(
        &[
            "shares",
            "split",
            "--secret-stdin",
            "--group-threshold",
            "2",
            "--group",
            "2/3",
            "--group",
            "1/1",
            "--passphrase-env",
            "BG_PASS",
        ],
        SECRET,
        &env,
    ));
    let groups: Vec<Vec<&str>> = out.split("\n\n").map(|g| g.lines().collect()).collect();
    assert_eq!(groups.len(), 2);
    assert_eq!((groups[0].len(), groups[1].len()), (3, 1));
    let chosen = format!("{}\n\n{}\n{}\n", groups[0][2], groups[1][0], groups[0][0]);
    let secret = stdout(&run(
        &["shares", "combine", "--passphrase-env", "BG_PASS"],
        &chosen,
        &env,
    ));
    assert_eq!(secret.trim(), SECRET);
    // Without the passphrase the shares still combine (SLIP-39 has no passphrase check) but to
    // another secret.
    let other = stdout(&run(&["shares", "combine"], &chosen, &[]));
    assert_ne!(other.trim(), SECRET);
}

#[test]
fn json_output_is_recombined_by_the_reference_implementation() {
    let out = stdout(&run(
        &[
            "shares",
            "split",
            "--secret-stdin",
            "--group",
            "3/5",
            "--json",
            "--no-extendable",
            "--iteration-exponent",
            "0",
        ],
        SECRET,
        &[],
    ));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(json["identifier"].as_u64().unwrap() < 1 << 15);
    let mnemonics: Vec<String> = serde_json::from_value(json["groups"][0].clone()).unwrap();
    assert_eq!(mnemonics.len(), 5);
    let python = hsm_testing::tools::venv_program("python");
    let script = "import sys, shamir_mnemonic as s; print(s.combine_mnemonics(sys.stdin.read().split('\\n')[:3]).hex())";
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(mnemonics[1..4].join("\n").as_bytes())
        .unwrap();
    let reference = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&reference.stdout).trim(), SECRET);
}

#[test]
fn share_errors_exit_3_and_name_the_share() {
    let out = stdout(&run(
        &["shares", "split", "--secret-stdin", "--group", "2/3"],
        SECRET,
        &[],
    ));
    let lines: Vec<&str> = out.lines().collect();
    // Too few.
    let short = run(&["shares", "combine"], lines[0], &[]);
    assert_eq!(short.status.code(), Some(3));
    let err = String::from_utf8_lossy(&short.stderr);
    assert!(err.contains("group 1 needs 1 more (has 1 of 2)"), "{err}");
    // A mistyped word in the second share.
    let mut words: Vec<String> = lines[1].split(' ').map(str::to_owned).collect();
    let intended = words[4].clone();
    words[4] = format!("{}q", &intended[..intended.len() - 1]);
    let typo = run(
        &["shares", "combine"],
        &format!("{}\n{}\n", lines[0], words.join(" ")),
        &[],
    );
    assert_eq!(typo.status.code(), Some(3));
    let err = String::from_utf8_lossy(&typo.stderr);
    assert!(
        err.contains("share 2: word 5 is not a SLIP-39 word"),
        "{err}"
    );
    assert!(err.contains(&intended), "suggests {intended}: {err}");
    // The same share twice.
    let dup = run(
        &["shares", "combine"],
        &format!("{}\n{}\n", lines[2], lines[2]),
        &[],
    );
    assert_eq!(dup.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("share 2 is the same share as share 1"));
    // Nothing secret on stderr.
    for output in [&short, &typo, &dup] {
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!err.contains(SECRET));
        assert!(!err.contains(lines[0]));
    }
}

#[test]
fn inspect_shows_public_fields_and_flags_bad_shares() {
    let out = stdout(&run(
        &[
            "shares",
            "split",
            "--secret-stdin",
            "--group-threshold",
            "1",
            "--group",
            "2/3",
            "--group",
            "3/4",
        ],
        SECRET,
        &[],
    ));
    let first = out.lines().next().unwrap().to_owned();
    let report = stdout(&run(&["shares", "inspect", "--json"], &first, &[]));
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(json[0]["group_count"], 2);
    assert_eq!(json[0]["member_threshold"], 2);
    assert_eq!(json[0]["checksum_valid"], true);
    let mut words: Vec<&str> = first.split(' ').collect();
    words.swap(5, 6);
    let bad = run(&["shares", "inspect"], &words.join(" "), &[]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("share 1: INVALID"));
}

#[test]
fn a_secret_never_comes_from_argv() {
    let output = run(&["shares", "split", "--group", "2/3", SECRET], "", &[]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a positional secret is a usage error"
    );
}

/// A share of the set a rekey retired is refused (exit 3) saying so: whose it was, which rekey
/// retired it, and what to use instead; a share of another vault still says it is not this
/// vault's.
#[test]
fn a_share_retired_by_a_rekey_says_so_and_which_rekey() {
    let env = Env::new();
    env.init_vault(&["alice", "bob", "carol"], 2, &[]);
    let payload = env.path("db.payload");
    std::fs::write(&payload, b"the database root password").unwrap();
    env.ok(&[
        "seal",
        "db",
        "--kind",
        "secret",
        "--from-file",
        payload.to_str().unwrap(),
    ]);
    let mut rekey: Vec<String> = [
        "rekey",
        "--yes",
        "--custodian",
        "alice",
        "--custodian",
        "bob",
        "--custodian",
        "dan",
        "--threshold",
        "2",
        "--shares-dir",
        env.path("new-shares").to_str().unwrap(),
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    rekey.extend(env.share_files(&["alice", "bob"]));
    env.ok(&as_strs(&rekey));
    let version = env.audit_events("rekey")[0]["details"]["manifest_version"]
        .as_str()
        .unwrap()
        .to_owned();

    let old = env.path("shares/carol.share");
    let output = env.run(&["share", "verify", "--share-file", old.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let said = stderr(&output);
    assert!(
        said.contains("carol's share of the set retired by the rekey of")
            && said.contains(&format!("(manifest version {version})"))
            && said.contains("use the share that rekey issued to carol")
            && !said.contains("not a share of this vault"),
        "{said}"
    );

    // The same when the old shares are offered to open something.
    let mut drill = vec!["drill".to_owned()];
    drill.extend(env.share_files(&["alice", "carol"]));
    let output = env.run(&as_strs(&drill));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("alice's share of the set retired by the rekey of"),
        "{}",
        stderr(&output)
    );

    // Another vault's share is not called retired.
    let other = Env::new();
    other.init_vault(&["erin", "fay"], 2, &[]);
    let foreign = other.path("shares/erin.share");
    let output = env.run(&["share", "verify", "--share-file", foreign.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("not a share of this vault"),
        "{}",
        stderr(&output)
    );
}

/// `share verify` with only the share file and the card's fingerprint: no vault directory, no
/// configuration; what it checks and what it could not are both said.
#[test]
fn share_verify_offline_checks_the_file_against_the_cards_fingerprint_and_says_what_it_cannot() {
    let env = Env::new();
    env.init_vault(&["alice", "bob", "carol"], 2, &[]);
    let alice = env.path("shares/alice.share");
    let online: serde_json::Value = serde_json::from_str(&env.ok(&[
        "share",
        "verify",
        "--share-file",
        alice.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    let fingerprint = online["fingerprint"].as_str().unwrap().to_owned();
    let elsewhere = tempfile::tempdir().unwrap();
    let offline = |file: &std::path::Path, fingerprint: &str| {
        Command::new(env!("CARGO_BIN_EXE_breakglass"))
            .args(["share", "verify", "--share-file"])
            .arg(file)
            .args(["--fingerprint", fingerprint])
            .env_remove("BREAKGLASS_VAULT")
            .env("XDG_CONFIG_HOME", elsewhere.path())
            .env("HOME", elsewhere.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    // As typed from the card: any case, dashes or not.
    let typed = fingerprint.replace('-', " ").to_lowercase();
    let said = stdout(&offline(&alice, &typed));
    assert!(
        said.starts_with(
            "share intact (offline check): custodian alice, group \"custodians\" member 1"
        ) && said.contains(&format!(
            "checked: the share file names vault {} with fingerprint {fingerprint}",
            online["vault_id"].as_str().unwrap()
        )) && said.contains("checked: the header's member number and thresholds")
            && said.contains(
                "not checked: that these words are the ones the vault's commitment for alice"
            ),
        "{said}"
    );

    // Another vault's fingerprint: refused, exit 3.
    let other = Env::new();
    other.init_vault(&["erin", "fay"], 2, &[]);
    let other_fingerprint: serde_json::Value = serde_json::from_str(&other.ok(&[
        "share",
        "verify",
        "--share-file",
        other.path("shares/erin.share").to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    let output = offline(&alice, other_fingerprint["fingerprint"].as_str().unwrap());
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("another vault"),
        "{}",
        stderr(&output)
    );

    // A header that does not describe its words, and a changed word: refused, exit 3.
    let text = std::fs::read_to_string(&alice).unwrap();
    let edited = elsewhere.path().join("edited.share");
    std::fs::write(
        &edited,
        text.replace(": member 1 of 3;", ": member 2 of 3;"),
    )
    .unwrap();
    let output = offline(&edited, &fingerprint);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("does not describe its words"),
        "{}",
        stderr(&output)
    );
    let words: Vec<&str> = text.lines().last().unwrap().split(' ').collect();
    let mut changed = words.clone();
    changed[5] = if words[5] == "academic" {
        "acid"
    } else {
        "academic"
    };
    let lines: Vec<&str> = text.lines().collect();
    let swapped = format!(
        "{}\n{}\n",
        lines[..lines.len() - 1].join("\n"),
        changed.join(" ")
    );
    let bad_word = elsewhere.path().join("bad-word.share");
    std::fs::write(&bad_word, swapped).unwrap();
    let output = offline(&bad_word, &fingerprint);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));

    // With the vault directory, a fingerprint that is not the vault's is an integrity failure.
    let output = env.run(&[
        "share",
        "verify",
        "--share-file",
        alice.to_str().unwrap(),
        "--fingerprint",
        other_fingerprint["fingerprint"].as_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
}

/// `init` handing the shares out on a terminal (a pseudo-terminal from util-linux `script`):
/// "n" at "Ready?" shows no share, the screen is cleared with its scrollback (`ESC[3J`), and
/// the vault is not left behind half handed out.
#[test]
fn init_on_a_terminal_stops_at_no_before_showing_a_share_and_leaves_no_vault() {
    let env = Env::new();
    let script = hsm_testing::tools::system_program("script", "bsdutils");
    let init = format!(
        "'{}' init --dev-softhsm --custodian ana --custodian ben --threshold 2 --iteration-exponent 0",
        env!("CARGO_BIN_EXE_breakglass")
    );
    let mut command = Command::new(script);
    command
        .args(["-q", "-e", "-c", &init, "/dev/null"])
        .env("BREAKGLASS_VAULT", env.vault())
        .env("XDG_CONFIG_HOME", env.path("config"))
        .env("TERM", "xterm");
    let output = support::output_with_stdin(command, b"n\n");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{screen}");
    assert!(screen.contains("Share for custodian ana"), "{screen}");
    assert!(
        screen.contains("\x1b[3J") && screen.matches("\x1b[3J").count() >= 2,
        "cleared with the scrollback before and after: {screen:?}"
    );
    assert!(
        screen.contains("stopped before ana's share was shown")
            && screen.contains("the vault was not made")
            && !screen.contains("Write these words down"),
        "{screen}"
    );
    assert!(!env.vault().exists(), "the vault directory is removed");
}
