//! End-to-end: the emergency path cannot fail on the day. A sealed aws credential has what the
//! role needs (MFA seed, region), and every mistake that can be found before the custodians'
//! shares are asked for is refused first, with exit 2 and nothing recorded. Against SoftHSM and
//! the local AWS endpoint with authentication on, through the built binary and the AWS CLI.

mod support;

use std::process::{Command, Output, Stdio};

use hsm_testing::aws::{AccessKey, LocalAws};
use support::{Env, output_with_stdin, stderr};

/// A 2-of-3 dev vault, a break-glass user allowed to assume an emergency role, and a virtual MFA
/// device for the user created by the AWS CLI (its seed in `mfa-seed.txt`), not yet enabled.
struct Setup {
    env: Env,
    aws: LocalAws,
    role_arn: String,
    key: AccessKey,
    mfa_serial: String,
}

impl Setup {
    fn new() -> Setup {
        let env = Env::new();
        let aws = LocalAws::start();
        let key = aws.create_user_with_key("breakglass");
        aws.put_user_policy(
            "breakglass",
            "assume-emergency",
            &serde_json::json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity", "sts:GetCallerIdentity", "iam:ListMFADevices"], "Resource": "*"}]}),
        );
        let role_arn = aws.create_role("emergency", "arn:aws:iam::123456789012:user/breakglass");
        aws.enable_auth();
        let mut setup = Setup {
            env,
            aws,
            role_arn,
            key,
            mfa_serial: String::new(),
        };
        setup.env.init_vault(&["ana", "ben", "dan"], 2, &[]);
        let seed = setup.path("mfa-seed.txt");
        let created = setup.aws_cli(&[
            "iam",
            "create-virtual-mfa-device",
            "--virtual-mfa-device-name",
            "breakglass",
            "--bootstrap-method",
            "Base32StringSeed",
            "--outfile",
            seed.to_str().unwrap(),
        ]);
        setup.mfa_serial = created["VirtualMFADevice"]["SerialNumber"]
            .as_str()
            .unwrap()
            .to_owned();
        std::fs::write(
            setup.path("key.json"),
            serde_json::json!({"AccessKey": {"UserName": "breakglass", "AccessKeyId": setup.key.id, "SecretAccessKey": setup.key.secret, "Status": "Active"}}).to_string(),
        )
        .unwrap();
        setup
    }
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.env.path(name)
    }
    /// The binary against this vault and the local endpoint, with no region set by the caller.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.env.command(args);
        command
            .envs(self.aws.client_env())
            .env("PATH", path_with_venv())
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env_remove("BREAKGLASS_REASON");
        command
    }
    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        String::from_utf8(output.stdout).unwrap()
    }
    /// The AWS CLI as the account's administrator; its JSON answer.
    fn aws_cli(&self, args: &[&str]) -> serde_json::Value {
        let output = Command::new(hsm_testing::tools::venv_program("aws"))
            .args(args)
            .args(["--output", "json"])
            .envs(self.aws.client_env())
            .envs(self.aws.admin_env())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success(), "aws {args:?}: {}", stderr(&output));
        if output.stdout.iter().all(u8::is_ascii_whitespace) {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&output.stdout).unwrap()
    }
    fn shares(&self, names: &[&str]) -> Vec<String> {
        names
            .iter()
            .flat_map(|n| {
                [
                    "--share-file".to_owned(),
                    self.path("shares")
                        .join(format!("{n}.share"))
                        .display()
                        .to_string(),
                ]
            })
            .collect()
    }
    /// `args` followed by two custodians' share files.
    fn with_shares(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(self.shares(&["ana", "dan"]));
        all
    }
    /// Enables the MFA device with two consecutive codes printed by `breakglass mfa codes`.
    fn enable_mfa(&self) {
        let codes = self.ok(&[
            "mfa",
            "codes",
            "--seed-file",
            self.path("mfa-seed.txt").to_str().unwrap(),
        ]);
        let codes: Vec<&str> = codes.split_whitespace().collect();
        assert_eq!(codes.len(), 2, "{codes:?}");
        self.aws_cli(&[
            "iam",
            "enable-mfa-device",
            "--user-name",
            "breakglass",
            "--serial-number",
            &self.mfa_serial,
            "--authentication-code1",
            codes[0],
            "--authentication-code2",
            codes[1],
        ]);
    }
    /// Seals `prod` with the key, the role, the MFA device and its seed, in `region`.
    fn seal_with_mfa(&self, region: &str) {
        self.ok(&[
            "seal",
            "prod",
            "--kind",
            "aws",
            "--from-file",
            self.path("key.json").to_str().unwrap(),
            "--role-arn",
            &self.role_arn,
            "--mfa-serial",
            &self.mfa_serial,
            "--mfa-seed-file",
            self.path("mfa-seed.txt").to_str().unwrap(),
            "--region",
            region,
        ]);
    }
    fn audit_log(&self) -> String {
        std::fs::read_to_string(self.path("vault/audit.jsonl")).unwrap()
    }
}

fn path_with_venv() -> String {
    format!(
        "{}:{}",
        hsm_testing::tools::venv_dir().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn args(strings: &[String]) -> Vec<&str> {
    strings.iter().map(String::as_str).collect()
}

fn credentials(setup: &Setup) -> serde_json::Value {
    serde_json::from_str(&setup.ok(&["list", "--json"])).unwrap()
}

#[test]
fn an_aws_credential_naming_an_mfa_device_without_its_seed_is_refused_with_the_way_to_give_it() {
    let setup = Setup::new();
    let output = setup.run(&[
        "seal",
        "prod",
        "--kind",
        "aws",
        "--from-file",
        setup.path("key.json").to_str().unwrap(),
        "--role-arn",
        &setup.role_arn,
        "--mfa-serial",
        &setup.mfa_serial,
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("--mfa-seed-file") && message.contains("--mfa-seed-stdin"),
        "{message}"
    );
    assert_eq!(credentials(&setup), serde_json::json!([]));
    // The QR-code variant of the device's bootstrap file is refused with a hint.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&[0u8; 64]);
    std::fs::write(setup.path("qr.png"), &png).unwrap();
    let output = setup.run(&[
        "seal",
        "prod",
        "--kind",
        "aws",
        "--from-file",
        setup.path("key.json").to_str().unwrap(),
        "--role-arn",
        &setup.role_arn,
        "--mfa-serial",
        &setup.mfa_serial,
        "--mfa-seed-file",
        setup.path("qr.png").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Base32StringSeed"),
        "{}",
        stderr(&output)
    );
    // A seed that is not base32 is refused too.
    let output = setup.command(&[
        "seal",
        "prod",
        "--kind",
        "aws",
        "--from-file",
        setup.path("key.json").to_str().unwrap(),
        "--role-arn",
        &setup.role_arn,
        "--mfa-serial",
        &setup.mfa_serial,
        "--mfa-seed-stdin",
    ]);
    let output = output_with_stdin(output, b"not base32 at all!\n");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(credentials(&setup), serde_json::json!([]));
}

#[test]
fn the_seed_from_create_virtual_mfa_device_enables_the_device_and_assume_sends_its_code() {
    let setup = Setup::new();
    let seed = std::fs::read_to_string(setup.path("mfa-seed.txt")).unwrap();
    // `mfa codes` prints two consecutive codes and never the seed.
    let codes = setup.ok(&[
        "mfa",
        "codes",
        "--seed-file",
        setup.path("mfa-seed.txt").to_str().unwrap(),
    ]);
    assert!(!codes.contains(seed.trim()));
    let codes: Vec<&str> = codes.split_whitespace().collect();
    assert!(
        codes.len() == 2
            && codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())),
        "{codes:?}"
    );
    setup.enable_mfa();
    let devices = setup.aws.boto(
        "result = [d['SerialNumber'] for d in iam.list_mfa_devices(UserName='breakglass')['MFADevices']]",
        serde_json::json!({}),
    );
    assert_eq!(devices, serde_json::json!([setup.mfa_serial]));
    setup.seal_with_mfa("eu-west-1");
    // The drill checks that the sealed seed makes codes.
    let drill: serde_json::Value =
        serde_json::from_str(&setup.ok(&args(&setup.with_shares(&["drill", "--aws", "--json"]))))
            .unwrap();
    let outcome = drill["credentials"]["prod"].as_str().unwrap();
    assert!(outcome.contains("MFA"), "{outcome}");
    // assume sends a code from the sealed seed: the audit log records the TOTP step.
    setup.ok(&args(&setup.with_shares(&[
        "assume", "prod", "--format", "json", "--reason", "INC-1",
    ])));
    assert!(
        setup
            .audit_log()
            .lines()
            .any(|l| l.contains("\"assume_role\"") && l.contains("mfa_step")),
        "{}",
        setup.audit_log()
    );
    assert!(!setup.audit_log().contains(seed.trim()));
}

#[test]
fn the_sealed_region_is_exported_unless_the_caller_set_one() {
    let setup = Setup::new();
    setup.enable_mfa();
    setup.seal_with_mfa("eu-west-1");
    let env =
        setup.ok(&args(&setup.with_shares(&[
            "assume", "prod", "--format", "env", "--reason", "INC-2",
        ])));
    assert!(env.contains("export AWS_REGION=eu-west-1\n"), "{env}");
    assert!(
        env.contains("export AWS_DEFAULT_REGION=eu-west-1\n"),
        "{env}"
    );
    // The caller's own region wins.
    let mut command =
        setup.command(&args(&setup.with_shares(&[
            "assume", "prod", "--format", "env", "--reason", "INC-2",
        ])));
    command.env("AWS_REGION", "ap-south-1");
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let env = String::from_utf8(output.stdout).unwrap();
    assert!(!env.contains("REGION="), "{env}");
    // exec gives the child the sealed region.
    let mut exec = setup.with_shares(&["exec", "prod", "--reason", "INC-2"]);
    exec.extend(["--", "sh", "-c", "echo \"$AWS_REGION $AWS_DEFAULT_REGION\""].map(String::from));
    let out = setup.ok(&args(&exec));
    assert_eq!(out.trim(), "eu-west-1 eu-west-1");
}

impl Setup {
    /// Seals `prod` (the key and the role, no MFA device) and `db` (a text secret).
    fn seal_plain(&self) {
        self.ok(&[
            "seal",
            "prod",
            "--kind",
            "aws",
            "--from-file",
            self.path("key.json").to_str().unwrap(),
            "--role-arn",
            &self.role_arn,
            "--region",
            "us-east-1",
        ]);
        let output = output_with_stdin(
            self.command(&["seal", "db", "--kind", "secret", "--from-stdin"]),
            b"hunter2",
        );
        assert!(output.status.success(), "{}", stderr(&output));
    }
}

#[test]
fn every_mistake_found_before_the_shares_is_refused_with_exit_2_and_nothing_recorded() {
    let setup = Setup::new();
    setup.seal_plain();
    let before = setup.audit_log();
    std::fs::write(setup.path("taken"), b"").unwrap();
    std::os::unix::fs::symlink(setup.path("nowhere"), setup.path("dangling")).unwrap();
    std::fs::write(setup.path("not-executable"), b"#!/bin/sh\n").unwrap();
    let file = |name: &str| format!("file:{}", setup.path(name).display());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            setup.with_shares(&["unseal", "db", "--reason", "r"]),
            "--output",
        ),
        (
            setup.with_shares(&["unseal", "db", "--reason", "r", "--output", &file("taken")]),
            "already there",
        ),
        (
            setup.with_shares(&[
                "unseal",
                "db",
                "--reason",
                "r",
                "--output",
                &file("dangling"),
            ]),
            "already there",
        ),
        (
            setup.with_shares(&[
                "unseal",
                "db",
                "--reason",
                "r",
                "--output",
                &file("missing/db"),
            ]),
            "does not exist",
        ),
        (
            setup.with_shares(&["unseal", "db", "--output", "json"]),
            "--reason",
        ),
        (
            setup.with_shares(&["recover", "db", "--output", "json"]),
            "--reason",
        ),
        (
            setup.with_shares(&["assume", "prod", "--reason", "r"]),
            "--format",
        ),
        (
            setup.with_shares(&["assume", "prod", "--format", "json"]),
            "--reason",
        ),
        (setup.with_shares(&["console", "prod"]), "--reason"),
        (
            setup.with_shares(&["exec", "prod", "--", "true"]),
            "--reason",
        ),
        (
            setup.with_shares(&[
                "exec",
                "prod",
                "--reason",
                "r",
                "--",
                "no-such-command-here",
            ]),
            "no-such-command-here",
        ),
        (
            setup.with_shares(&[
                "exec",
                "prod",
                "--reason",
                "r",
                "--",
                setup.path("not-executable").to_str().unwrap(),
            ]),
            "not-executable",
        ),
    ];
    for (case, expected) in cases {
        let output = setup.run(&args(&case));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{case:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expected),
            "{case:?}: {}",
            stderr(&output)
        );
        assert_eq!(setup.audit_log(), before, "{case:?} recorded something");
    }
    assert!(std::fs::read(setup.path("taken")).unwrap().is_empty());
    assert!(!setup.path("nowhere").exists());
    // With a reason, the unseal goes through and the reason is recorded.
    let out = setup.ok(&args(&setup.with_shares(&[
        "unseal",
        "db",
        "--reason",
        "INC-7 db restore",
        "--output",
        "json",
    ])));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"credential": "db", "kind": "secret", "encoding": "text", "secret": "hunter2"})
    );
    let log = setup.audit_log();
    let entry = log.lines().rfind(|l| l.contains("\"unseal\"")).unwrap();
    assert!(entry.contains("INC-7 db restore"), "{entry}");
}

#[test]
fn a_vault_made_with_reason_optional_opens_without_a_reason() {
    let env = Env::new();
    env.init_vault(&["ana", "ben"], 2, &["--reason-optional"]);
    let output = env.run_stdin(
        &["seal", "db", "--kind", "secret", "--from-stdin"],
        b"s3cret",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let shares: Vec<String> = ["ana", "ben"]
        .iter()
        .map(|n| {
            env.path("shares")
                .join(format!("{n}.share"))
                .display()
                .to_string()
        })
        .collect();
    let output = env
        .command(&[
            "unseal",
            "db",
            "--output",
            "json",
            "--share-file",
            &shares[0],
            "--share-file",
            &shares[1],
        ])
        .env_remove("BREAKGLASS_REASON")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

/// A 2-of-2 dev vault with a text secret `db`, no AWS.
fn plain_vault() -> (Env, Vec<String>) {
    let env = Env::new();
    env.init_vault(&["ana", "ben"], 2, &[]);
    let output = env.run_stdin(
        &["seal", "db", "--kind", "secret", "--from-stdin"],
        b"s3cret",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let shares = ["ana", "ben"]
        .iter()
        .flat_map(|n| {
            [
                "--share-file".to_owned(),
                env.path("shares")
                    .join(format!("{n}.share"))
                    .display()
                    .to_string(),
            ]
        })
        .collect();
    (env, shares)
}

#[test]
fn a_broken_audit_log_makes_status_exit_5_and_unseal_refuse_before_the_shares() {
    let (env, shares) = plain_vault();
    let mut drill = vec!["drill".to_owned()];
    drill.extend(shares.clone());
    env.ok(&args(&drill));
    assert!(env.run(&["status"]).status.success());
    // Change one recorded fact in the first entry: the chain no longer holds.
    let log_path = env.path("vault/audit.jsonl");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let first = log.lines().next().unwrap();
    let changed = first.replacen("\"time\":\"2", "\"time\":\"1", 1);
    assert_ne!(changed, first);
    let tampered = log.replacen(first, &changed, 1);
    std::fs::write(&log_path, &tampered).unwrap();
    let output = env.run(&["status"]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("BROKEN"));
    let output = env.run(&["status", "--json"]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    let mut unseal = vec![
        "unseal".to_owned(),
        "db".into(),
        "--output".into(),
        "json".into(),
    ];
    unseal.extend(shares);
    // A machine that never verified this log walks all of it before asking for a share, and
    // refuses. (This machine verified the envelope records before the edit and walks only what
    // was appended since: what it would open is what it verified, and `status` and `audit
    // verify` report the break.)
    let fingerprint = serde_json::from_str::<serde_json::Value>(&String::from_utf8_lossy(
        &env.run(&["status", "--json"]).stdout,
    ))
    .unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let output = env
        .command_on("other-machine", &args(&unseal))
        .env("BREAKGLASS_FINGERPRINT", &fingerprint)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("audit log"), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&log_path).unwrap(), tampered);
}

#[test]
fn output_cut_short_by_its_reader_ends_quietly_without_a_panic() {
    let (env, _) = plain_vault();
    for command in [
        &["audit", "show"][..],
        &["status"],
        &["list"],
        &["audit", "show", "--json"],
    ] {
        let mut child = env
            .command(command)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the first line is written (as `head -1` does after it).
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        assert!(
            !stderr(&output).contains("panicked"),
            "{command:?}: {}",
            stderr(&output)
        );
        assert_ne!(output.status.code(), Some(101), "{command:?}");
    }
}

#[test]
fn status_shows_a_failed_drill_as_failed() {
    let setup = Setup::new();
    setup.seal_plain();
    // The sealed key is deleted in AWS: the drill fails, and status says so.
    setup.aws.boto(
        "iam.delete_access_key(UserName='breakglass', AccessKeyId=args['id'])",
        serde_json::json!({"id": setup.key.id}),
    );
    let output = setup.run(&args(&setup.with_shares(&["drill", "--aws"])));
    assert_ne!(output.status.code(), Some(0), "{}", stderr(&output));
    let status = setup.ok(&["status"]);
    let line = status
        .lines()
        .find(|l| l.starts_with("last drill"))
        .unwrap();
    assert!(line.contains("FAILED for prod"), "{status}");
    let json: serde_json::Value = serde_json::from_str(&setup.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["last_drill_failures"], serde_json::json!(["prod"]));
}

#[test]
fn drill_aws_checks_the_sealed_mfa_device_is_one_of_the_users_own() {
    let setup = Setup::new();
    setup.enable_mfa();
    setup.seal_with_mfa("us-east-1");
    let drill: serde_json::Value =
        serde_json::from_str(&setup.ok(&args(&setup.with_shares(&["drill", "--aws", "--json"]))))
            .unwrap();
    let outcome = drill["credentials"]["prod"].as_str().unwrap();
    assert!(
        outcome.contains(&format!("MFA device {} is breakglass's", setup.mfa_serial)),
        "{outcome}"
    );

    // Sealed naming another device (made, never enabled for this user): the seed still makes
    // codes, but AWS would ask for the user's own device, so the drill fails (exit 6).
    let other = setup.aws.boto(
        "result = iam.create_virtual_mfa_device(VirtualMFADeviceName='someone-else')['VirtualMFADevice']['SerialNumber']",
        serde_json::json!({}),
    );
    let other = other.as_str().unwrap().to_owned();
    setup.ok(&[
        "seal",
        "prod",
        "--replace",
        "--kind",
        "aws",
        "--from-file",
        setup.path("key.json").to_str().unwrap(),
        "--role-arn",
        &setup.role_arn,
        "--mfa-serial",
        &other,
        "--mfa-seed-file",
        setup.path("mfa-seed.txt").to_str().unwrap(),
    ]);
    let output = setup.run(&args(&setup.with_shares(&["drill", "--aws"])));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(6), "{stdout}{}", stderr(&output));
    assert!(
        stdout.contains(&format!(
            "MFA device FAILED: {other} is not an MFA device of breakglass (its devices: {})",
            setup.mfa_serial
        )),
        "{stdout}"
    );
}
