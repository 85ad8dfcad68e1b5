//! End-to-end: the built binary leaves no secret in memory it frees. Each command runs with the
//! freed-memory scanner preloaded (hsm-testing/free-scan), which searches every block the
//! process gives back for canaries: the sealed payloads (a secret and an AWS secret access
//! key), runs of the custodians' share words, and the recovery shares' words. A copy dropped
//! without zeroising (a `String` built for output, a buffer that grew, a library's copy such
//! as the AWS SDK's signing key) is reported with the command that left it. The binary clears
//! every block as it frees it (vault-cli hardening.rs); without that, `assume` leaves the
//! SDK's `"AWS4" + secret` behind, and did.
//!
//! Memory SoftHSM allocates is scanned too (it is in the same process), which is why the token
//! PIN is not a canary here: the library-level scan (vault-core/tests/freed_memory.rs) covers
//! the PIN on the Rust side.

use std::process::Output;

use hsm_testing::free_scan::FreeScan;

mod support;

use support::{Env, output_with_stdin, stderr};

const PAYLOAD: &str = "canary-payload-3b7d9a51e0c24f68-the-database-root-password";
const AWS_SECRET: &str = "canaryAwsSecret/K7MDENG+bPxRfiCY8e41d0c2b7a";

/// Eight words of a share file from its fifth on: the share's own words, past the identifier
/// and parameters every share of the set begins with.
fn words_of(env: &Env, file: &str) -> String {
    let text = std::fs::read_to_string(env.path(file)).unwrap();
    let mnemonic = text
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .expect("a mnemonic line");
    mnemonic
        .split(' ')
        .skip(4)
        .take(8)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A vault of three custodians (two needed) with a recovery set of three, a secret and an AWS
/// key sealed; the scan watching every secret in it.
fn vault() -> (Env, FreeScan) {
    let env = Env::new();
    env.init_vault(
        &["alice", "bob", "carol"],
        2,
        &["--recovery-threshold", "3"],
    );
    env.seal_secret("db-root", "payload", PAYLOAD.as_bytes());
    let key = serde_json::json!({
        "access_key_id": "AKIAEXAMPLEKEY000001",
        "secret_access_key": AWS_SECRET,
    });
    std::fs::write(env.path("key.json"), key.to_string()).unwrap();
    env.ok(&[
        "seal",
        "prod",
        "--kind",
        "aws",
        "--from-file",
        env.path("key.json").to_str().unwrap(),
        "--role-arn",
        "arn:aws:iam::123456789012:role/emergency",
    ]);
    let mut scan = FreeScan::new(env.path("scan.report"))
        .watch("the secret payload", PAYLOAD.as_bytes())
        .watch("the AWS secret access key", AWS_SECRET.as_bytes());
    for custodian in ["alice", "bob", "carol"] {
        let share = words_of(&env, &format!("shares/{custodian}.share"));
        scan = scan.watch(&format!("{custodian}'s share"), share.as_bytes());
        let recovery = words_of(&env, &format!("shares/{custodian}.recovery.share"));
        scan = scan.watch(
            &format!("{custodian}'s recovery share"),
            recovery.as_bytes(),
        );
    }
    (env, scan)
}

/// Runs `args` (with `input` on standard input, if any) under the scan; what leaked, as
/// `command: canaries` (empty when nothing did).
fn scanned(env: &Env, scan: &FreeScan, args: &[&str], input: Option<&[u8]>) -> Option<String> {
    let mut command = env.command(args);
    scan.apply(&mut command);
    let output: Output = match input {
        Some(bytes) => output_with_stdin(command, bytes),
        None => command.output().unwrap(),
    };
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    let report = scan.report();
    assert!(
        report.processes >= 1 && report.scanned > 100,
        "{args:?}: the scanner ran in the command ({report:?})"
    );
    let leaked = report.leaked();
    (!leaked.is_empty()).then(|| format!("{}: {}", args.join(" "), leaked.join(", ")))
}

#[test]
fn the_scan_finds_a_secret_another_program_frees_as_it_is() {
    // The control: the scanner finds a secret a program frees without clearing it (Python
    // frees a large bytes object with free(), as it was).
    let dir = tempfile::tempdir().unwrap();
    let canary = b"canary-control-5e0f7a9b3c1d2e4f";
    let scan = FreeScan::new(dir.path().join("control.report")).watch("the control", canary);
    let mut command = std::process::Command::new(hsm_testing::tools::venv_program("python"));
    command.args([
        "-c",
        "import sys; b = bytes.fromhex(sys.argv[1]) * 64; del b",
        &canary
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    ]);
    scan.apply(&mut command);
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report = scan.report();
    assert_eq!(report.leaked(), ["the control"], "{report:?}");
}

#[test]
fn commands_that_handle_secrets_leave_none_in_freed_memory() {
    let (env, scan) = vault();
    let quorum = env.share_files(&["bob", "carol"]);
    let with_quorum = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(quorum.iter().cloned());
        all
    };
    let out = env.path("opened");
    let out_arg = format!("file:{}", out.display());
    let recovery: Vec<String> = ["alice", "bob", "carol"]
        .iter()
        .flat_map(|c| {
            [
                "--share-file".to_owned(),
                env.path(&format!("shares/{c}.recovery.share"))
                    .display()
                    .to_string(),
            ]
        })
        .collect();
    let recovered = env.path("recovered");
    let recovered_arg = format!("file:{}", recovered.display());
    let stdin_shares = format!(
        "{}\n{}\n",
        mnemonic(&env, "shares/bob.share"),
        mnemonic(&env, "shares/carol.share")
    );

    let runs: Vec<(Vec<String>, Option<Vec<u8>>)> = vec![
        (
            strings(&["seal", "again", "--kind", "secret", "--from-stdin"]),
            Some(PAYLOAD.as_bytes().to_vec()),
        ),
        (
            with_quorum(&["unseal", "db-root", "--output", &out_arg]),
            None,
        ),
        (
            with_quorum(&["unseal", "db-root", "--output", "json"]),
            None,
        ),
        (
            with_quorum(&["unseal", "prod", "--output", "json", "--reveal"]),
            None,
        ),
        (
            with_quorum(&["unseal", "prod", "--output", "env", "--reveal"]),
            None,
        ),
        (
            strings(&["unseal", "db-root", "--shares-stdin", "--output", "json"]),
            Some(stdin_shares.into_bytes()),
        ),
        (with_quorum(&["drill"]), None),
        (
            {
                let mut args = strings(&["recover", "db-root", "--output", &recovered_arg]);
                args.extend(quorum.iter().cloned());
                args.extend(recovery.iter().cloned());
                args
            },
            None,
        ),
        (with_quorum(&["share", "verify"])[..4].to_vec(), None),
    ];
    let leaks: Vec<String> = runs
        .iter()
        .filter_map(|(args, input)| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            scanned(&env, &scan, &args, input.as_deref())
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "freed memory held secrets after:\n{}",
        leaks.join("\n")
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), PAYLOAD);
    assert_eq!(std::fs::read_to_string(&recovered).unwrap(), PAYLOAD);
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// The mnemonic line of a share file.
fn mnemonic(env: &Env, file: &str) -> String {
    std::fs::read_to_string(env.path(file))
        .unwrap()
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .expect("a mnemonic line")
        .to_owned()
}

#[test]
fn assuming_the_role_leaves_the_sealed_key_in_no_freed_memory() {
    let aws = hsm_testing::aws::LocalAws::start();
    let key = aws.create_user_with_key("breakglass");
    aws.put_user_policy(
        "breakglass",
        "assume",
        &serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"], "Resource": "*"}]}),
    );
    let role = aws.create_role("emergency", "arn:aws:iam::123456789012:user/breakglass");
    aws.enable_auth();
    let env = Env::new();
    env.init_vault(&["alice", "bob", "carol"], 2, &[]);
    let input = serde_json::json!({"access_key_id": key.id, "secret_access_key": key.secret});
    std::fs::write(env.path("key.json"), input.to_string()).unwrap();
    env.ok(&[
        "seal",
        "prod",
        "--kind",
        "aws",
        "--from-file",
        env.path("key.json").to_str().unwrap(),
        "--role-arn",
        &role,
        "--region",
        "us-east-1",
    ]);
    let scan = FreeScan::new(env.path("scan.report"))
        .watch("the sealed AWS secret access key", key.secret.as_bytes());
    let mut args = vec!["assume", "prod", "--format", "json"];
    let quorum = env.share_files(&["bob", "carol"]);
    args.extend(quorum.iter().map(String::as_str));
    let mut command = env.command(&args);
    command.envs(aws.client_env());
    scan.apply(&mut command);
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report = scan.report();
    assert!(report.scanned > 100, "{report:?}");
    assert_eq!(
        report.found,
        [],
        "assume freed memory holding the sealed key"
    );
}
