//! End-to-end: the AWS edge against the local endpoint (moto) with request authentication on,
//! through the real AWS SDK in the binary, and the AWS CLI as a real consumer of our outputs.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use hsm_testing::aws::LocalAws;

struct Setup {
    dir: tempfile::TempDir,
    aws: LocalAws,
    role_arn: String,
    user_key_id: String,
}

impl Setup {
    /// A break-glass user allowed to assume an emergency role, its key sealed in a 2-of-3 dev
    /// vault; authentication turned on.
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let aws = LocalAws::start();
        let key = aws.create_user_with_key("breakglass");
        aws.put_user_policy(
            "breakglass",
            "assume-emergency",
            &serde_json::json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity", "sts:GetCallerIdentity",
                 "iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:ListAccessKeys",
                 "iam:CreateVirtualMFADevice", "iam:EnableMFADevice", "iam:DeactivateMFADevice", "iam:DeleteVirtualMFADevice", "iam:ListMFADevices"], "Resource": "*"}]}),
        );
        let role_arn = aws.create_role("emergency", "arn:aws:iam::123456789012:user/breakglass");
        aws.enable_auth();
        let setup = Setup {
            dir,
            aws,
            role_arn,
            user_key_id: key.id.clone(),
        };
        setup.ok(&[
            "init",
            "--dev-softhsm",
            "--custodian",
            "a",
            "--custodian",
            "b",
            "--custodian",
            "c",
            "--threshold",
            "2",
            "--iteration-exponent",
            "0",
            "--shares-dir",
            setup.path("shares").to_str().unwrap(),
        ]);
        let input = serde_json::json!({"AccessKey": {"UserName": "breakglass", "AccessKeyId": key.id, "SecretAccessKey": key.secret, "Status": "Active"}});
        std::fs::write(setup.path("key.json"), input.to_string()).unwrap();
        setup.ok(&[
            "seal",
            "prod",
            "--kind",
            "aws",
            "--from-file",
            setup.path("key.json").to_str().unwrap(),
            "--role-arn",
            &setup.role_arn,
            "--region",
            "us-east-1",
            "--duration",
            "900",
        ]);
        std::fs::remove_file(setup.path("key.json")).unwrap();
        setup
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_breakglass"));
        let venv_bin = hsm_testing::tools::venv_dir().join("bin");
        command
            .args(args)
            .envs(self.aws.client_env())
            .env("BREAKGLASS_VAULT", self.path("vault"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    venv_bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env_remove("SOFTHSM2_CONF")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env("BREAKGLASS_REASON", "end-to-end test")
            .stdin(Stdio::null());
        command
    }
    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
    fn with_shares<'a>(&'a self, args: &[&'a str], shares: &'a [String]) -> Vec<&'a str> {
        let mut all: Vec<&str> = args.to_vec();
        for share in shares {
            all.push("--share-file");
            all.push(share);
        }
        all
    }
    fn shares(&self, names: &[&str]) -> Vec<String> {
        names
            .iter()
            .map(|n| {
                self.path("shares")
                    .join(format!("{n}.share"))
                    .display()
                    .to_string()
            })
            .collect()
    }
}

#[test]
fn assume_returns_the_role_session_named_after_the_ceremony_and_logs_it() {
    let setup = Setup::new();
    let shares = setup.shares(&["a", "c"]);
    let out = setup.ok(&setup.with_shares(
        &[
            "assume",
            "prod",
            "--format",
            "json",
            "--reason",
            "IdP outage INC-42",
        ],
        &shares,
    ));
    let session: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ceremony = session["Ceremony"].as_str().unwrap();
    assert_eq!(
        session["AssumedRoleArn"].as_str().unwrap(),
        format!("arn:aws:sts::123456789012:assumed-role/emergency/breakglass-{ceremony}")
    );
    let session_key = session["AccessKeyId"].as_str().unwrap();
    assert_ne!(session_key, setup.user_key_id);
    // The session works: GetCallerIdentity as the assumed role, through the AWS CLI.
    let cli = Command::new(hsm_testing::tools::venv_program("aws"))
        .args(["sts", "get-caller-identity", "--output", "json"])
        .envs(setup.aws.client_env())
        .env("AWS_ACCESS_KEY_ID", session_key)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            session["SecretAccessKey"].as_str().unwrap(),
        )
        .env(
            "AWS_SESSION_TOKEN",
            session["SessionToken"].as_str().unwrap(),
        )
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(String::from_utf8_lossy(&cli.stdout).contains("assumed-role/emergency"));
    // The audit log has the session's key id, expiry, role, custodians and reason; no secret.
    let log = std::fs::read_to_string(setup.path("vault/audit.jsonl")).unwrap();
    let entry = log.lines().find(|l| l.contains("\"assume_role\"")).unwrap();
    for needle in [
        session_key,
        ceremony,
        "IdP outage INC-42",
        "\"custodians\":[\"a\",\"c\"]",
        "expiration",
    ] {
        assert!(entry.contains(needle), "{needle} missing from {entry}");
    }
    assert!(!log.contains(session["SecretAccessKey"].as_str().unwrap()));
    assert!(!log.contains(session["SessionToken"].as_str().unwrap()));
    let verify: serde_json::Value =
        serde_json::from_str(&setup.ok(&["audit", "verify", "--json"])).unwrap();
    assert_eq!(
        verify["unsigned_tail"], 0,
        "the assume entry is signed: {verify}"
    );
}

#[test]
fn the_aws_cli_uses_our_credential_process_output_and_exec_runs_it_with_the_session() {
    let setup = Setup::new();
    let shares = setup.shares(&["b", "c"]);
    let out = setup.ok(&setup.with_shares(
        &["assume", "prod", "--format", "credential-process"],
        &shares,
    ));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["Version"], 1);
    let cached = setup.path("session.json");
    std::fs::write(&cached, &out).unwrap();
    let config = setup.path("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile breakglass]\ncredential_process = cat {}\nregion = us-east-1\n",
            cached.display()
        ),
    )
    .unwrap();
    let cli = Command::new(hsm_testing::tools::venv_program("aws"))
        .args([
            "sts",
            "get-caller-identity",
            "--profile",
            "breakglass",
            "--output",
            "json",
        ])
        .envs(setup.aws.client_env())
        .env("AWS_CONFIG_FILE", &config)
        .env_remove("AWS_ACCESS_KEY_ID")
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(String::from_utf8_lossy(&cli.stdout).contains("assumed-role/emergency/breakglass-"));

    // exec: stale credentials in the environment are cleared, the session is put in.
    let mut command = setup.command(&setup.with_shares(&["exec", "prod"], &shares));
    command
        .args([
            "--",
            "aws",
            "sts",
            "get-caller-identity",
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIASTALESTALESTALE0")
        .env("AWS_PROFILE", "nonexistent");
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("assumed-role/emergency/breakglass-"));
    // The command's exit code comes back.
    let failing = setup
        .command(&setup.with_shares(&["exec", "prod"], &shares))
        .args(["--", "sh", "-c", "exit 7"])
        .output()
        .unwrap();
    assert_eq!(failing.status.code(), Some(7));
}

#[test]
fn a_deleted_sealed_key_fails_with_exit_6_and_says_what_to_do_and_drill_reports_it() {
    let setup = Setup::new();
    let shares = setup.shares(&["a", "b"]);
    let drill = setup.ok(&setup.with_shares(&["drill", "--aws", "--json"], &shares));
    let report: serde_json::Value = serde_json::from_str(&drill).unwrap();
    assert!(
        report["credentials"]["prod"]
            .as_str()
            .unwrap()
            .contains("valid in AWS as arn:aws:iam::123456789012:user/breakglass"),
        "{report}"
    );

    setup.aws.boto(
        "iam.delete_access_key(UserName='breakglass', AccessKeyId=args['key'])",
        serde_json::json!({"key": setup.user_key_id}),
    );
    let output = setup.run(&setup.with_shares(&["assume", "prod", "--format", "json"], &shares));
    assert_eq!(
        output.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("the sealed key is no longer valid in AWS") && err.contains("rotate"),
        "{err}"
    );
    assert!(output.stdout.is_empty());
    let drill = setup.run(&setup.with_shares(&["drill", "--aws"], &shares));
    assert_eq!(drill.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&drill.stdout).contains("FAILED"));
    // The failed attempt is in the audit log too.
    let log = std::fs::read_to_string(setup.path("vault/audit.jsonl")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("\"assume_role\"") && l.contains("no longer valid"))
    );
    // status shows the drills.
    let status: serde_json::Value = serde_json::from_str(&setup.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["days_since_last_drill"], 0);
}

#[test]
fn an_ini_profile_works_in_the_aws_cli_and_durations_take_units() {
    let setup = Setup::new();
    let shares = setup.shares(&["a", "c"]);
    // Below what AWS allows: refused before any share is read (exit 2), with the limit.
    let short = setup.run(&setup.with_shares(
        &["assume", "prod", "--format", "ini", "--duration", "10m"],
        &shares,
    ));
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 900 s"));
    let out = setup.ok(&setup.with_shares(
        &["assume", "prod", "--format", "ini", "--duration", "1h"],
        &shares,
    ));
    assert!(out.contains("[prod]\naws_access_key_id = ASIA"), "{out}");
    let credentials = setup.path("aws-credentials");
    std::fs::write(&credentials, &out).unwrap();
    let cli = Command::new(hsm_testing::tools::venv_program("aws"))
        .args(["sts", "get-caller-identity", "--profile", "prod"])
        .envs(setup.aws.client_env())
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env_remove("AWS_ACCESS_KEY_ID")
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(String::from_utf8_lossy(&cli.stdout).contains("assumed-role/emergency/breakglass-"));
    // The session lasts the hour asked for (moto answers with the expiry STS would give).
    let expires = out
        .lines()
        .next()
        .and_then(|l| l.rsplit("expires ").next())
        .expect("the profile's comment line");
    // Whole seconds: the SDK writes the expiry with a fraction.
    let whole = format!("{}Z", expires.trim().split(['.', 'Z']).next().unwrap());
    let expires = vault_core::clock::parse_rfc3339(&whole).expect(expires);
    let now = vault_core::clock::now_unix();
    assert!(
        (now + 3_300..=now + 3_600).contains(&expires),
        "expires {expires}, now {now}"
    );
}

#[test]
fn an_unreachable_endpoint_is_named() {
    let setup = Setup::new();
    let shares = setup.shares(&["a", "b"]);
    let mut command =
        setup.command(&setup.with_shares(&["assume", "prod", "--format", "json"], &shares));
    command.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(6));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot reach http://127.0.0.1:9"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn revoke_sessions_without_administrator_credentials_names_the_credentials_not_the_network() {
    let setup = Setup::new();
    // No administrator credentials anywhere: not in the environment, no profile files.
    let output = setup
        .command(&["revoke-sessions", "--role", &setup.role_arn])
        .env("HOME", setup.path("home"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{err}");
    assert!(
        err.contains("PutRolePolicy") && err.contains("your own administrator credentials"),
        "{err}"
    );
    assert!(!err.contains("cannot reach"), "{err}");
}

#[test]
fn a_call_the_sealed_user_may_not_make_shows_aws_code_and_message_then_the_policy_to_fix() {
    let setup = Setup::new();
    let shares = setup.shares(&["a", "b"]);
    // The break-glass user loses its IAM rights: rotation's first call is refused by AWS.
    setup.aws.put_user_policy(
        "breakglass",
        "assume-emergency",
        &serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:GetCallerIdentity"], "Resource": "*"}]}),
    );
    let output = setup.run(&setup.with_shares(&["rotate", "prod"], &shares));
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{err}");
    // AWS's own code and message first, then advice that fits this call.
    let code_at = err.find("AccessDenied").expect("AWS's code");
    let advice_at = err.find("breakglass aws-policy").expect("advice");
    assert!(code_at < advice_at, "{err}");
    assert!(err.contains("iam:ListAccessKeys"), "AWS's message: {err}");
    assert!(err.contains("may not call ListAccessKeys"), "{err}");
    assert!(
        !err.contains("trust policy"),
        "advice for AssumeRole: {err}"
    );
}

#[test]
fn a_profile_line_naming_the_credential_serves_its_newest_cached_session_until_ended() {
    let setup = Setup::new();
    let runtime = setup.path("runtime");
    std::fs::create_dir(&runtime).unwrap();
    let shares = setup.shares(&["a", "b"]);
    let assume_cached = || {
        let mut command = setup.command(
            &setup.with_shares(&["assume", "prod", "--cache", "--format", "json"], &shares),
        );
        command.env("XDG_RUNTIME_DIR", &runtime);
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let session: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        session["Ceremony"].as_str().unwrap().to_owned()
    };
    let first = assume_cached();
    use std::os::unix::fs::PermissionsExt;
    let cached = |ceremony: &str| runtime.join("breakglass").join(format!("{ceremony}.json"));
    assert_eq!(
        std::fs::metadata(cached(&first))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(runtime.join("breakglass"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    // The profile is written once and names the credential, not a ceremony.
    let config = setup.path("aws-config");
    std::fs::write(
        &config,
        format!("[profile bg]\ncredential_process = {} session credentials --credential prod\nregion = us-east-1\n", env!("CARGO_BIN_EXE_breakglass")),
    )
    .unwrap();
    let aws_cli = || {
        Command::new(hsm_testing::tools::venv_program("aws"))
            .args([
                "sts",
                "get-caller-identity",
                "--profile",
                "bg",
                "--output",
                "json",
            ])
            .envs(setup.aws.client_env())
            .env("AWS_CONFIG_FILE", &config)
            .env("XDG_RUNTIME_DIR", &runtime)
            .output()
            .unwrap()
    };
    let served = || {
        let cli = aws_cli();
        assert!(
            cli.status.success(),
            "{}",
            String::from_utf8_lossy(&cli.stderr)
        );
        String::from_utf8_lossy(&cli.stdout).into_owned()
    };
    assert!(served().contains(&format!("assumed-role/emergency/breakglass-{first}")));

    // The next break-glass: the same line serves the newer session.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let second = assume_cached();
    assert_ne!(first, second);
    assert!(served().contains(&format!("assumed-role/emergency/breakglass-{second}")));

    // Ending one ceremony's session falls back to the other; ending the credential's last one
    // leaves the profile with nothing to serve.
    let end = |args: &[&str]| {
        let mut command = setup.command(args);
        command.env("XDG_RUNTIME_DIR", &runtime);
        assert!(command.output().unwrap().status.success());
    };
    end(&["session", "end", "--ceremony", &second]);
    assert!(!cached(&second).exists());
    assert!(served().contains(&format!("assumed-role/emergency/breakglass-{first}")));
    end(&["session", "end", "--credential", "prod"]);
    assert!(!cached(&first).exists());
    assert!(
        !aws_cli().status.success(),
        "an ended session no longer serves the profile"
    );
}

#[test]
fn aws_policy_documents_are_accepted_by_iam() {
    let setup = Setup::new();
    let out = setup.ok(&[
        "aws-policy",
        "--account",
        "123456789012",
        "--user",
        "bg2",
        "--role",
        "emergency2",
    ]);
    let docs: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        docs["role"]["trust_policy"]["Statement"][0]["Condition"]["Bool"]["aws:MultiFactorAuthPresent"],
        "true"
    );
    setup.aws.boto(
        "iam.create_user(UserName='bg2')\n\
         iam.put_user_policy(UserName='bg2', PolicyName='breakglass', PolicyDocument=json.dumps(args['user']))\n\
         iam.create_role(RoleName='emergency2', AssumeRolePolicyDocument=json.dumps(args['trust']))\n\
         result = iam.get_role(RoleName='emergency2')['Role']['Arn']",
        serde_json::json!({ "user": docs["user"]["policy"], "trust": docs["role"]["trust_policy"] }),
    );
}

#[test]
fn revoke_sessions_writes_the_deny_on_older_tokens() {
    let setup = Setup::new();
    let mut command = setup.command(&[
        "revoke-sessions",
        "--role",
        &setup.role_arn,
        "--user",
        "breakglass",
    ]);
    command.envs(setup.aws.admin_env());
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let policy = setup.aws.boto(
        "result = [iam.get_role_policy(RoleName='emergency', PolicyName='AWSRevokeOlderSessions')['PolicyDocument'],\n\
         iam.get_user_policy(UserName='breakglass', PolicyName='AWSRevokeOlderSessions')['PolicyDocument']]",
        serde_json::json!({}),
    );
    for document in policy.as_array().unwrap() {
        let statement = &document["Statement"][0];
        assert_eq!(statement["Effect"], "Deny");
        assert!(
            statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
                .as_str()
                .unwrap()
                .starts_with("20"),
            "{document}"
        );
    }
    let log = std::fs::read_to_string(setup.path("vault/audit.jsonl")).unwrap();
    assert!(log.contains("\"revoke_sessions\""));
}

fn iam_keys(setup: &Setup) -> Vec<String> {
    let keys = setup.aws.boto("result = [k['AccessKeyId'] for k in iam.list_access_keys(UserName='breakglass')['AccessKeyMetadata']]", serde_json::json!({}));
    serde_json::from_value(keys).unwrap()
}

fn sealed_key_id(setup: &Setup) -> String {
    let list: serde_json::Value = serde_json::from_str(&setup.ok(&["list", "--json"])).unwrap();
    list[0]["metadata"]["access_key_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn rotate_leaves_exactly_the_new_sealed_working_key_and_resumes_after_interruptions() {
    let setup = Setup::new();
    let shares = setup.shares(&["a", "b"]);
    assert_eq!(sealed_key_id(&setup), setup.user_key_id);
    let out = setup.ok(&setup.with_shares(&["rotate", "prod"], &shares));
    assert!(out.contains("rotated prod"), "{out}");
    let after_first = sealed_key_id(&setup);
    assert_ne!(after_first, setup.user_key_id);
    assert_eq!(iam_keys(&setup), vec![after_first.clone()]);
    setup.ok(&setup.with_shares(&["assume", "prod", "--format", "json"], &shares));

    // Interrupted right after sealing the new key: the old key is still in IAM. Re-running
    // finishes the job instead of making a third key.
    let mut interrupted = setup.command(&setup.with_shares(&["rotate", "prod"], &shares));
    interrupted.env("BREAKGLASS_TEST_FAULT", "rotate-after-seal");
    assert_eq!(interrupted.output().unwrap().status.code(), Some(70));
    let after_second = sealed_key_id(&setup);
    assert_ne!(after_second, after_first);
    assert_eq!(iam_keys(&setup).len(), 2);
    let resumed = setup.run(&setup.with_shares(&["rotate", "prod"], &shares));
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("finished an interrupted rotation"));
    assert_eq!(iam_keys(&setup), vec![after_second.clone()]);
    assert_eq!(sealed_key_id(&setup), after_second);

    // Interrupted between CreateAccessKey and sealing (simulated: a key nobody sealed): it is
    // deleted, and the rotation goes through with one key at the end.
    setup.aws.boto(
        "iam.create_access_key(UserName='breakglass')",
        serde_json::json!({}),
    );
    assert_eq!(iam_keys(&setup).len(), 2);
    let cleaned = setup.run(&setup.with_shares(&["rotate", "prod"], &shares));
    assert!(
        cleaned.status.success(),
        "{}",
        String::from_utf8_lossy(&cleaned.stderr)
    );
    assert!(String::from_utf8_lossy(&cleaned.stderr).contains("never sealed"));
    let keys = iam_keys(&setup);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0], sealed_key_id(&setup));
    setup.ok(&setup.with_shares(&["assume", "prod", "--format", "json"], &shares));
    let report: serde_json::Value =
        serde_json::from_str(&setup.ok(&["audit", "verify", "--json"])).unwrap();
    assert_eq!(report["first_problem"], serde_json::Value::Null);
}

#[test]
fn a_rotation_runs_as_a_remote_ceremony() {
    let setup = Setup::new();
    let request = setup.path("rotate-request.json");
    let out = setup.ok(&[
        "ceremony",
        "open",
        "--purpose",
        "rotate",
        "--credential",
        "prod",
        "--reason",
        "quarterly rotation",
        "--out",
        request.to_str().unwrap(),
    ]);
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let mut close = vec!["ceremony".to_owned(), "close".into(), id];
    for (name, share) in ["a", "c"].iter().zip(setup.shares(&["a", "c"])) {
        let contribution = setup.path(&format!("{name}.contribution"));
        let output = setup.run(&[
            "ceremony",
            "contribute",
            request.to_str().unwrap(),
            "--share-file",
            &share,
            "--yes",
            "--out",
            contribution.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stderr).contains("a new AWS key is made"));
        close.push("--contribution".into());
        close.push(contribution.display().to_string());
    }
    let out = setup.ok(&close.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("rotated prod"), "{out}");
    let sealed = sealed_key_id(&setup);
    assert_ne!(sealed, setup.user_key_id);
    assert_eq!(iam_keys(&setup), vec![sealed]);
}

/// A stand-in for the AWS federation endpoint that follows its documented protocol: it answers
/// `getSigninToken` with a token and records the session it was given.
const FEDERATION: &str = r#"
import http.server, json, sys, urllib.parse
log = open(sys.argv[2], "w")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        if q.get("Action") == ["getSigninToken"] and sys.argv[3:] == ["refuse-signin"]:
            self.send_response(503); self.end_headers()
        elif q.get("Action") == ["getSigninToken"]:
            session = json.loads(q["Session"][0])
            assert set(session) == {"sessionId", "sessionKey", "sessionToken"}
            log.write(session["sessionId"] + "\n"); log.flush()
            body = json.dumps({"SigninToken": "token/with+chars"}).encode()
            self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers(); self.wfile.write(body)
        else:
            self.send_response(400); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

/// A local federation endpoint (the FEDERATION script with `mode` arguments): the child, its
/// URL, and the file it logs session ids to.
fn federation_endpoint(setup: &Setup, mode: &[&str]) -> (std::process::Child, String, PathBuf) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = setup.path("federation.log");
    let server = Command::new(hsm_testing::tools::venv_program("python"))
        .args(["-c", FEDERATION, &port.to_string(), log.to_str().unwrap()])
        .args(mode)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (server, format!("http://127.0.0.1:{port}/federation"), log)
}

#[test]
fn console_checks_the_federation_endpoint_before_the_shares_and_keeps_a_session_it_made() {
    let setup = Setup::new();
    let shares = setup.shares(&["a", "c"]);
    // Nothing listens there: refused before any share is read or role assumed.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/federation", listener.local_addr().unwrap())
    };
    let output = setup.run(&setup.with_shares(
        &["console", "prod", "--federation-endpoint", &closed],
        &shares,
    ));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!("the federation endpoint {closed}"))
            && stderr.contains("no role was assumed"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
    let audit = std::fs::read_to_string(setup.path("vault/audit.jsonl")).unwrap();
    assert!(
        !audit.contains("assume_role") && !audit.contains("accepted share"),
        "{audit}"
    );

    // The endpoint answers, then refuses the sign-in: the session assumed is printed, not lost.
    let (mut server, endpoint, _) = federation_endpoint(&setup, &["refuse-signin"]);
    let output = setup.run(&setup.with_shares(
        &["console", "prod", "--federation-endpoint", &endpoint],
        &shares,
    ));
    let _ = server.kill();
    let _ = server.wait();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("getSigninToken") && stderr.contains("HTTP 503"),
        "{stderr}"
    );
    let session: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let key = session["AccessKeyId"].as_str().unwrap();
    assert!(key.starts_with("ASIA"), "{session}");
    let audit = std::fs::read_to_string(setup.path("vault/audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"assume_role\"") && l.contains(key)),
        "{audit}"
    );
}

#[test]
fn console_prints_a_sign_in_url_through_the_federation_protocol() {
    let setup = Setup::new();
    let (mut server, endpoint, log) = federation_endpoint(&setup, &[]);
    let shares = setup.shares(&["a", "c"]);
    let output = setup.run(&setup.with_shares(
        &["console", "prod", "--federation-endpoint", &endpoint],
        &shares,
    ));
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let url = String::from_utf8(output.stdout).unwrap();
    assert!(
        url.starts_with(&format!("{endpoint}?Action=login&Issuer=breakglass-")),
        "{url}"
    );
    assert!(
        url.contains(
            "&Destination=https%3A%2F%2Fconsole.aws.amazon.com%2F&SigninToken=token%2Fwith%2Bchars"
        ),
        "{url}"
    );
    let session_id = std::fs::read_to_string(&log).unwrap();
    assert!(
        session_id.trim().starts_with("ASIA"),
        "the session's key, not the sealed one: {session_id}"
    );
    let audit = std::fs::read_to_string(setup.path("vault/audit.jsonl")).unwrap();
    assert!(audit.contains(session_id.trim()));
}

#[test]
fn rotate_with_mfa_reseeds_the_device_and_assume_sends_its_code() {
    let setup = Setup::new();
    let shares = setup.shares(&["b", "c"]);
    setup.ok(&setup.with_shares(&["rotate", "prod", "--mfa"], &shares));
    let list: serde_json::Value = serde_json::from_str(&setup.ok(&["list", "--json"])).unwrap();
    let first_serial = list[0]["metadata"]["mfa_serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let devices = setup.aws.boto("result = [d['SerialNumber'] for d in iam.list_mfa_devices(UserName='breakglass')['MFADevices']]", serde_json::json!({}));
    assert_eq!(devices, serde_json::json!([first_serial]));
    // The sealed seed is used: assume records the TOTP step it spent. A second assume at once
    // finds that step (reading the log back from its end) and spends a later one, waiting for
    // it (AWS refuses a code used before).
    let steps = || -> Vec<u64> {
        let log = std::fs::read_to_string(setup.path("vault/audit.jsonl")).unwrap();
        log.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["event"] == "assume_role")
            .filter_map(|e| e["details"]["mfa_step"].as_str()?.parse().ok())
            .collect()
    };
    setup.ok(&setup.with_shares(&["assume", "prod", "--format", "json"], &shares));
    setup.ok(&setup.with_shares(&["assume", "prod", "--format", "json"], &shares));
    let spent = steps();
    assert_eq!(spent.len(), 2, "{spent:?}");
    assert!(spent[1] > spent[0], "{spent:?}");
    // Re-seeding again retires the first device.
    setup.ok(&setup.with_shares(&["rotate", "prod", "--mfa"], &shares));
    let list: serde_json::Value = serde_json::from_str(&setup.ok(&["list", "--json"])).unwrap();
    let second_serial = list[0]["metadata"]["mfa_serial"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(second_serial, first_serial);
    let devices = setup.aws.boto("result = [d['SerialNumber'] for d in iam.list_mfa_devices(UserName='breakglass')['MFADevices']]", serde_json::json!({}));
    assert_eq!(devices, serde_json::json!([second_serial]));
    assert_eq!(iam_keys(&setup).len(), 1);
}
