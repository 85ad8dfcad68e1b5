//! End-to-end: `aws-setup` (CloudFormation, Terraform, `--apply`), the alert on every use, and
//! `review`, against the local AWS endpoint (moto) with request authentication on.
//!
//! What the endpoint cannot do, and how each test stands in for it:
//! - EventBridge `TestEventPattern` is not implemented there (it answers nothing), and rules
//!   cannot send to SNS there: the deployed rule's own pattern is copied onto a rule sending to
//!   an SQS queue, and CloudTrail-shaped events are put on the bus.
//! - CloudTrail `LookupEvents` is not implemented there: `review` is tested here through trail
//!   files in S3; the LookupEvents path has a unit test against a recorded answer.
//! - AWS Config's `GetResourceConfigHistory` returns only the current item there (see the
//!   Config test for what the endpoint answers and how).
//! - Terraform cannot be installed from the registries this project uses (and `terraform
//!   validate` needs the AWS provider from registry.terraform.io): its output is parsed with
//!   python-hcl2 and its structure checked.
//! - Trust policies: the endpoint matches a role principal only against the exact caller ARN,
//!   so a member role trusting the emergency role (as AWS evaluates it: any session of that
//!   role) refuses the chained session there; see the chain test.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use hsm_testing::aws::LocalAws;
use hsm_testing::tools::venv_program;
use serde_json::{Value, json};
use support::{Env, stderr};

const ACCOUNT: &str = "123456789012";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/breakglass-emergency";
const MEMBER_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/breakglass-member";

/// A vault directory and a local AWS endpoint with authentication on.
struct Cloud {
    env: Env,
    aws: LocalAws,
}

impl Cloud {
    fn new() -> Cloud {
        let aws = LocalAws::start();
        aws.enable_auth();
        Cloud {
            env: Env::new(),
            aws,
        }
    }

    /// The binary against the endpoint; `admin`: with the administrator's own credentials.
    fn command(&self, args: &[&str], admin: bool) -> Command {
        let mut command = self.env.command(args);
        command
            .envs(self.aws.client_env())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE");
        if admin {
            command.envs(self.aws.admin_env());
        }
        command
    }

    fn run(&self, args: &[&str], admin: bool) -> Output {
        self.command(args, admin).output().unwrap()
    }

    fn ok(&self, args: &[&str], admin: bool) -> String {
        let output = self.run(args, admin);
        assert!(
            output.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            stderr(&output)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn write_json(&self, name: &str, value: &Value) -> String {
        let path = self.env.path(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path.display().to_string()
    }

    /// A Python snippet with boto3 under the given keys (`session`: a session token too); it
    /// sees `boto3`, `json` and `args`, and assigns `result`.
    fn python_as(&self, keys: &[(&str, &str)], snippet: &str, args: &Value) -> Output {
        let script = format!(
            "import json, sys, boto3, botocore\nargs = json.loads(sys.argv[1])\nresult = None\n{snippet}\nprint(json.dumps(result, default=str))\n"
        );
        Command::new(venv_program("python"))
            .arg("-c")
            .arg(script)
            .arg(args.to_string())
            .envs(self.aws.client_env())
            .env_remove("AWS_PROFILE")
            .envs(keys.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .output()
            .unwrap()
    }
}

/// The emergency role's permissions in the tests: list buckets, and nothing else.
fn permissions() -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListAllMyBuckets"], "Resource": "*"}]})
}

/// The break-glass CloudTrail records of tests/data, with the placeholders filled in.
fn sample_records(ceremony: &str, session_key: &str, user_key: &str, time: &str) -> Value {
    let text = std::fs::read_to_string(
        hsm_testing::tools::repo_root().join("tests/data/breakglass-session.cloudtrail.json"),
    )
    .unwrap()
    .replace("{{ACCOUNT}}", ACCOUNT)
    .replace("{{CEREMONY}}", ceremony)
    .replace("{{OTHER}}", "0ther0ther00")
    .replace("{{USER_KEY}}", user_key)
    .replace("{{SESSION_KEY}}", session_key)
    .replace("{{TIME}}", time);
    serde_json::from_str(&text).unwrap()
}

fn event_ids(records: &Value) -> BTreeSet<String> {
    records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["eventID"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_cloudformation_template_passes_cfn_lint_and_deploys_on_the_local_endpoint() {
    let cloud = Cloud::new();
    let permissions_file = cloud.write_json("permissions.json", &permissions());
    let template = cloud.ok(
        &[
            "aws-setup",
            "--account",
            ACCOUNT,
            "--permissions-file",
            &permissions_file,
            "--member-role",
            MEMBER_ROLE_ARN,
            "--alert-email",
            "security@example.com",
            "--alert-webhook",
            "https://hooks.example.com/breakglass",
            "--format",
            "cloudformation",
        ],
        false,
    );
    let parsed: Value = serde_json::from_str(&template).expect("the template is JSON (and YAML)");
    let path = cloud.env.path("breakglass.template.json");
    std::fs::write(&path, &template).unwrap();
    let lint = Command::new(venv_program("cfn-lint"))
        .arg(&path)
        .output()
        .expect("cfn-lint (run scripts/setup)");
    assert!(
        lint.status.success(),
        "cfn-lint found problems:\n{}{}",
        String::from_utf8_lossy(&lint.stdout),
        stderr(&lint)
    );

    let deployed = cloud.aws.boto(
        "cfn = boto3.client('cloudformation')\n\
         cfn.create_stack(StackName='breakglass', TemplateBody=args['template'], Capabilities=['CAPABILITY_NAMED_IAM'])\n\
         status = cfn.describe_stacks(StackName='breakglass')['Stacks'][0]['StackStatus']\n\
         events = boto3.client('events')\n\
         sns = boto3.client('sns')\n\
         rule = events.describe_rule(Name='breakglass-alert')\n\
         result = {\n\
           'status': status,\n\
           'user_policy': iam.get_user_policy(UserName='breakglass', PolicyName='breakglass-least-privilege')['PolicyDocument'],\n\
           'trust': iam.get_role(RoleName='breakglass-emergency')['Role']['AssumeRolePolicyDocument'],\n\
           'max_session': iam.get_role(RoleName='breakglass-emergency')['Role']['MaxSessionDuration'],\n\
           'permissions': iam.get_role_policy(RoleName='breakglass-emergency', PolicyName='breakglass-emergency-permissions')['PolicyDocument'],\n\
           'chain': iam.get_role_policy(RoleName='breakglass-emergency', PolicyName='breakglass-chain-to-member-roles')['PolicyDocument'],\n\
           'rule_state': rule['State'], 'pattern': json.loads(rule['EventPattern']),\n\
           'targets': [t['Arn'] for t in events.list_targets_by_rule(Rule='breakglass-alert')['Targets']],\n\
           'subscriptions': sorted((s['Protocol'], s['Endpoint']) for s in sns.list_subscriptions()['Subscriptions']),\n\
         }",
        json!({ "template": template }),
    );
    assert_eq!(deployed["status"], "CREATE_COMPLETE");
    let resources = &parsed["Resources"];
    let as_json = |v: &Value| match v {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        other => other.clone(),
    };
    assert_eq!(
        as_json(&deployed["user_policy"]),
        resources["BreakGlassUserPolicy"]["Properties"]["PolicyDocument"]
    );
    assert_eq!(
        as_json(&deployed["trust"]),
        resources["EmergencyRole"]["Properties"]["AssumeRolePolicyDocument"]
    );
    assert_eq!(deployed["max_session"], 3600);
    assert_eq!(as_json(&deployed["permissions"]), permissions());
    assert_eq!(
        as_json(&deployed["chain"])["Statement"][0]["Resource"],
        json!([MEMBER_ROLE_ARN])
    );
    assert_eq!(
        deployed["rule_state"],
        "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    );
    assert_eq!(
        deployed["pattern"],
        resources["AlertRule"]["Properties"]["EventPattern"]
    );
    assert_eq!(
        deployed["targets"],
        json!(["arn:aws:sns:us-east-1:123456789012:breakglass-alert"])
    );
    assert_eq!(
        deployed["subscriptions"],
        json!([
            ["email", "security@example.com"],
            ["https", "https://hooks.example.com/breakglass"]
        ])
    );
    // The user's policy is aws-policy's, extended with the read-only check of the alert.
    let printed: Value = serde_json::from_str(&cloud.ok(
        &[
            "aws-policy",
            "--account",
            ACCOUNT,
            "--role",
            "breakglass-emergency",
        ],
        false,
    ))
    .unwrap();
    let user_policy = as_json(&deployed["user_policy"]);
    for statement in printed["user"]["policy"]["Statement"].as_array().unwrap() {
        if statement["Effect"] == "Allow" {
            assert!(
                user_policy["Statement"]
                    .as_array()
                    .unwrap()
                    .contains(statement),
                "{statement} is in aws-policy but not in aws-setup"
            );
        }
    }
}

#[test]
fn the_terraform_output_parses_as_hcl2_and_declares_the_same_resources_and_documents() {
    let cloud = Cloud::new();
    let permissions_file = cloud.write_json("permissions.json", &permissions());
    let args = [
        "aws-setup",
        "--account",
        ACCOUNT,
        "--permissions-file",
        &permissions_file,
        "--alert-email",
        "security@example.com",
    ];
    let mut terraform_args = args.to_vec();
    terraform_args.extend(["--format", "terraform"]);
    let terraform = cloud.ok(&terraform_args, false);
    let template: Value = serde_json::from_str(&cloud.ok(&args, false)).unwrap();
    let parsed = cloud.python_as(
        &[],
        &python(&[
            "import hcl2",
            "doc = hcl2.loads(args['text'])",
            "resources = {}",
            "for block in doc['resource']:",
            "    for kind, named in block.items():",
            "        for name, body in named.items():",
            "            resources[kind.strip('\"') + '.' + name.strip('\"')] = body",
            "result = {'resources': resources, 'providers': doc['terraform'][0]['required_providers']}",
        ]),
        &json!({ "text": terraform }),
    );
    assert!(parsed.status.success(), "python-hcl2: {}", stderr(&parsed));
    let parsed: Value = serde_json::from_slice(&parsed.stdout).unwrap();
    let kinds: BTreeSet<&str> = parsed["resources"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "aws_iam_user.breakglass",
            "aws_iam_user_policy.breakglass",
            "aws_iam_role.emergency",
            "aws_iam_role_policy.emergency",
            "aws_sns_topic.alert",
            "aws_sns_topic_policy.alert",
            "aws_sns_topic_subscription.alert_0",
            "aws_cloudwatch_event_rule.alert",
            "aws_cloudwatch_event_target.alert",
        ])
    );
    let resources = &parsed["resources"];
    assert!(
        parsed["providers"].to_string().contains("hashicorp/aws"),
        "{}",
        parsed["providers"]
    );
    assert_eq!(
        resources["aws_sns_topic_subscription.alert_0"]["endpoint"],
        "\"security@example.com\""
    );
    assert_eq!(
        resources["aws_iam_role.emergency"]["max_session_duration"],
        3600
    );
    // Each document is the template's, inside jsonencode() (the parser writes objects back
    // with HCL's `=` between key and value; our documents have no " = " inside a string).
    for (resource, key, document) in [
        (
            "aws_iam_user_policy.breakglass",
            "policy",
            &template["Resources"]["BreakGlassUserPolicy"]["Properties"]["PolicyDocument"],
        ),
        (
            "aws_iam_role.emergency",
            "assume_role_policy",
            &template["Resources"]["EmergencyRole"]["Properties"]["AssumeRolePolicyDocument"],
        ),
        (
            "aws_cloudwatch_event_rule.alert",
            "event_pattern",
            &template["Resources"]["AlertRule"]["Properties"]["EventPattern"],
        ),
    ] {
        let expression = resources[resource][key].as_str().unwrap();
        assert!(
            expression.starts_with("${jsonencode(") && expression.ends_with(")}"),
            "{resource}.{key} = {expression}"
        );
        let inner = &expression["${jsonencode(".len()..expression.len() - 2];
        let inner: Value = serde_json::from_str(&inner.replace("\" = ", "\": "))
            .unwrap_or_else(|e| panic!("{resource}.{key} is not JSON inside jsonencode: {e}"));
        assert_eq!(&inner, document, "{resource}.{key}");
    }
}

/// `aws-setup --apply` in a fresh account, a vault with its key sealed by the printed command.
struct Applied {
    cloud: Cloud,
    stdout: String,
    user_key: String,
}

impl Applied {
    fn new() -> Applied {
        let cloud = Cloud::new();
        // The emergency role may list buckets, and nothing else.
        let permissions_file = cloud.write_json("permissions.json", &permissions());
        let key_out = cloud.env.path("bg-key.json").display().to_string();
        let stdout = cloud.ok(
            &[
                "aws-setup",
                "--apply",
                "--account",
                ACCOUNT,
                "--permissions-file",
                &permissions_file,
                "--member-role",
                MEMBER_ROLE_ARN,
                "--alert-email",
                "security@example.com",
                "--key-out",
                &key_out,
            ],
            true,
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is 0600");
        let key: Value = serde_json::from_str(&std::fs::read_to_string(&key_out).unwrap()).unwrap();
        let user_key = key["access_key_id"].as_str().unwrap().to_owned();
        assert!(
            !stdout.contains(key["secret_access_key"].as_str().unwrap())
                && !stdout.contains(key["mfa_seed"].as_str().unwrap()),
            "no secret on the terminal"
        );
        cloud.ok(
            &[
                "init",
                "--dev-softhsm",
                "--custodian",
                "ana",
                "--custodian",
                "ben",
                "--custodian",
                "cat",
                "--threshold",
                "2",
                "--iteration-exponent",
                "0",
                "--shares-dir",
                cloud.env.path("shares").to_str().unwrap(),
            ],
            false,
        );
        // The seal command aws-setup printed, as the administrator would paste it.
        let line = stdout
            .lines()
            .find(|l| l.starts_with("breakglass seal "))
            .expect("a seal command line");
        let (seal, shred) = line.split_once(" && ").unwrap();
        assert_eq!(shred, format!("shred -u {key_out}"));
        let words: Vec<&str> = seal.split(' ').skip(1).collect();
        cloud.ok(&words, false);
        Applied {
            cloud,
            stdout,
            user_key,
        }
    }

    fn shares(&self) -> Vec<String> {
        ["ana", "cat"]
            .iter()
            .flat_map(|n| {
                [
                    "--share-file".to_owned(),
                    self.cloud
                        .env
                        .path("shares")
                        .join(format!("{n}.share"))
                        .display()
                        .to_string(),
                ]
            })
            .collect()
    }

    /// `assume prod --format json` (plus `extra`): the session's JSON.
    fn assume(&self, extra: &[&str]) -> Value {
        let shares = self.shares();
        let mut args = vec![
            "assume",
            "prod",
            "--format",
            "json",
            "--reason",
            "IdP-outage-INC-42",
        ];
        args.extend(extra);
        args.extend(shares.iter().map(String::as_str));
        serde_json::from_str(&self.cloud.ok(&args, false)).unwrap()
    }
}

fn session_keys(session: &Value) -> Vec<(&'static str, String)> {
    vec![
        (
            "AWS_ACCESS_KEY_ID",
            session["AccessKeyId"].as_str().unwrap().to_owned(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            session["SecretAccessKey"].as_str().unwrap().to_owned(),
        ),
        (
            "AWS_SESSION_TOKEN",
            session["SessionToken"].as_str().unwrap().to_owned(),
        ),
    ]
}

fn borrowed<'a>(keys: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    keys.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Lists buckets, then tries to create a user: "ok" or the error code of each.
const TWO_CALLS: [&str; 8] = [
    "def attempt(call):",
    "    try:",
    "        call()",
    "        return 'ok'",
    "    except botocore.exceptions.ClientError as e:",
    "        return e.response['Error']['Code']",
    "result = [attempt(lambda: boto3.client('s3').list_buckets()),",
    "          attempt(lambda: boto3.client('iam').create_user(UserName='intruder'))]",
];

/// Python source from its lines (indentation kept, as Python needs).
fn python(lines: &[&str]) -> String {
    lines.join("\n")
}

#[test]
fn apply_makes_the_resources_and_assume_gets_exactly_the_roles_permissions() {
    let applied = Applied::new();
    let cloud = &applied.cloud;
    for made in [
        "IAM user arn:aws:iam::123456789012:user/breakglass",
        "role arn:aws:iam::123456789012:role/breakglass-emergency",
        "SNS topic arn:aws:sns:us-east-1:123456789012:breakglass-alert",
        "EventBridge rule arn:aws:events:us-east-1:123456789012:rule/breakglass-alert",
        "subscription email security@example.com",
        "virtual MFA device arn:aws:iam::123456789012:mfa/breakglass-breakglass-",
    ] {
        assert!(
            applied.stdout.contains(made),
            "{made} missing from:\n{}",
            applied.stdout
        );
    }
    // The same documents the template carries.
    let permissions_file = cloud.write_json("permissions-again.json", &permissions());
    let template: Value = serde_json::from_str(&cloud.ok(
        &[
            "aws-setup",
            "--account",
            ACCOUNT,
            "--permissions-file",
            &permissions_file,
            "--member-role",
            MEMBER_ROLE_ARN,
        ],
        false,
    ))
    .unwrap();
    let made = cloud.aws.boto(
        "result = {'user_policy': iam.get_user_policy(UserName='breakglass', PolicyName='breakglass-least-privilege')['PolicyDocument'],\n\
         'user_policies': iam.list_user_policies(UserName='breakglass')['PolicyNames'],\n\
         'attached': iam.list_attached_user_policies(UserName='breakglass')['AttachedPolicies'],\n\
         'trust': iam.get_role(RoleName='breakglass-emergency')['Role']['AssumeRolePolicyDocument'],\n\
         'mfa': [d['SerialNumber'] for d in iam.list_mfa_devices(UserName='breakglass')['MFADevices']]}",
        json!({}),
    );
    let as_json = |v: &Value| match v {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        other => other.clone(),
    };
    assert_eq!(
        as_json(&made["user_policy"]),
        template["Resources"]["BreakGlassUserPolicy"]["Properties"]["PolicyDocument"]
    );
    assert_eq!(made["user_policies"], json!(["breakglass-least-privilege"]));
    assert_eq!(made["attached"], json!([]));
    assert_eq!(
        as_json(&made["trust"]),
        template["Resources"]["EmergencyRole"]["Properties"]["AssumeRolePolicyDocument"]
    );
    assert_eq!(made["mfa"].as_array().unwrap().len(), 1);
    // No console password unless asked.
    let login = cloud.aws.boto(
        "try:\n    iam.get_login_profile(UserName='breakglass')\n    result = 'present'\nexcept iam.exceptions.NoSuchEntityException:\n    result = 'none'",
        json!({}),
    );
    assert_eq!(login, json!("none"));

    // The session has exactly the role's permissions: buckets yes, IAM no.
    let session = applied.assume(&[]);
    assert!(
        session["AssumedRoleArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:sts::123456789012:assumed-role/breakglass-emergency/breakglass-"),
        "{session}"
    );
    let keys = session_keys(&session);
    let out = cloud.python_as(&borrowed(&keys), &python(&TWO_CALLS), &json!({}));
    assert!(out.status.success(), "{}", stderr(&out));
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome[0], "ok");
    assert_ne!(outcome[1], "ok", "the session must not create users");

    // The break-glass user itself can do neither.
    let key: Value =
        serde_json::from_str(&std::fs::read_to_string(cloud.env.path("bg-key.json")).unwrap())
            .unwrap();
    let user = [
        ("AWS_ACCESS_KEY_ID", key["access_key_id"].as_str().unwrap()),
        (
            "AWS_SECRET_ACCESS_KEY",
            key["secret_access_key"].as_str().unwrap(),
        ),
    ];
    assert_eq!(applied.user_key, user[0].1);
    let out = cloud.python_as(&user, &python(&TWO_CALLS), &json!({}));
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(outcome[0], "ok", "the user must not list buckets");
    assert_ne!(outcome[1], "ok", "the user must not create users");
}

#[test]
fn drill_aws_checks_the_alert_is_armed_and_fails_when_it_is_disabled() {
    let applied = Applied::new();
    let cloud = &applied.cloud;
    // The endpoint checks a policy's Resource only for IAM and STS calls: for EventBridge and
    // SNS it matches statements against "*", so the user's statement scoped to the rule's and
    // the topic's ARNs never applies there. The same three read-only actions on "*" stand in
    // for it on the endpoint (AWS itself evaluates the scoped statement).
    cloud.aws.put_user_policy(
        "breakglass",
        "endpoint-resource-star",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["events:DescribeRule", "events:ListTargetsByRule", "sns:GetTopicAttributes"],
            "Resource": "*"}]}),
    );
    let shares = applied.shares();
    let mut args = vec!["drill", "--aws"];
    args.extend(shares.iter().map(String::as_str));
    let out = cloud.ok(&args, false);
    assert!(
        out.contains("alert rule breakglass-alert enabled, topic arn:aws:sns:us-east-1:123456789012:breakglass-alert present"),
        "{out}"
    );
    cloud.aws.boto(
        "boto3.client('events').disable_rule(Name='breakglass-alert')",
        json!({}),
    );
    let output = cloud.run(&args, false);
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains("AWS alert FAILED") && out.contains("is DISABLED"),
        "{out}"
    );
}

#[test]
fn assume_chains_into_a_member_role_made_by_aws_setup_member_of() {
    let applied = Applied::new();
    let cloud = &applied.cloud;
    let member_permissions = cloud.write_json("member.json", &permissions());
    let out = cloud.ok(
        &[
            "aws-setup",
            "--apply",
            "--account",
            ACCOUNT,
            "--member-of",
            ROLE_ARN,
            "--role",
            "breakglass-member",
            "--permissions-file",
            &member_permissions,
            "--alert-name",
            "breakglass-member-alert",
        ],
        true,
    );
    assert!(out.contains(&format!("--chain {MEMBER_ROLE_ARN}")), "{out}");
    let trust = cloud.aws.boto(
        "result = iam.get_role(RoleName='breakglass-member')['Role']['AssumeRolePolicyDocument']",
        json!({}),
    );
    assert_eq!(trust["Statement"][0]["Principal"]["AWS"], ROLE_ARN);
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringLike"]["sts:SourceIdentity"],
        "breakglass-*"
    );
    // The endpoint compares a role principal with the caller's session ARN as a string, where
    // AWS accepts every session of that role; its trust is widened here to any principal,
    // which the endpoint accepts, so that the chained call itself (and the emergency role's
    // permission to make it, which the endpoint does check) is what this test exercises.
    let mut widened = trust.clone();
    widened["Statement"][0]["Principal"]["AWS"] = json!("*");
    widened["Statement"][1]["Principal"]["AWS"] = json!("*");
    cloud.aws.boto(
        "iam.update_assume_role_policy(RoleName='breakglass-member', PolicyDocument=json.dumps(args['doc']))",
        json!({ "doc": widened }),
    );
    let session = applied.assume(&["--chain", MEMBER_ROLE_ARN]);
    assert!(
        session["AssumedRoleArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:sts::123456789012:assumed-role/breakglass-member/breakglass-"),
        "{session}"
    );
}

#[test]
fn the_alert_pattern_delivers_every_break_glass_event_and_nothing_else() {
    let cloud = Cloud::new();
    let permissions_file = cloud.write_json("permissions.json", &permissions());
    let template: Value = serde_json::from_str(&cloud.ok(
        &[
            "aws-setup",
            "--account",
            ACCOUNT,
            "--permissions-file",
            &permissions_file,
        ],
        false,
    ))
    .unwrap();
    let pattern = &template["Resources"]["AlertRule"]["Properties"]["EventPattern"];
    let samples = sample_records(
        "c0ffee123456",
        "ASIAEXAMPLESESSION01",
        "AKIAEXAMPLEBREAKGLAS",
        "2026-01-15T10:00:00Z",
    );
    let mut events = Vec::new();
    for group in ["ceremony", "other_ceremony", "console_sign_in", "unrelated"] {
        for record in samples[group].as_array().unwrap() {
            let detail_type = if record["eventType"] == "AwsConsoleSignIn" {
                "AWS Console Sign In via CloudTrail"
            } else {
                "AWS API Call via CloudTrail"
            };
            events.push(json!({
                "Source": format!("aws.{}", record["eventSource"].as_str().unwrap().trim_end_matches(".amazonaws.com")),
                "DetailType": detail_type,
                "Detail": record.to_string(),
            }));
        }
    }
    let delivered = cloud.aws.boto(
        &python(&[
            "events = boto3.client('events')",
            "sqs = boto3.client('sqs')",
            "queue = sqs.create_queue(QueueName='alert-copy')['QueueUrl']",
            "queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=['QueueArn'])['Attributes']['QueueArn']",
            "events.put_rule(Name='alert-copy', EventPattern=json.dumps(args['pattern']), State='ENABLED')",
            "events.put_targets(Rule='alert-copy', Targets=[{'Id': 'q', 'Arn': queue_arn}])",
            "for event in args['events']:",
            "    answer = events.put_events(Entries=[event])",
            "    assert answer['FailedEntryCount'] == 0, answer",
            "seen = []",
            "while True:",
            "    batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get('Messages', [])",
            "    if not batch:",
            "        break",
            "    seen += [json.loads(m['Body'])['detail']['eventID'] for m in batch]",
            "try:",
            "    events.test_event_pattern(EventPattern=json.dumps(args['pattern']), Event=json.dumps({}))",
            "    test_event_pattern = 'answered'",
            "except Exception as e:",
            "    test_event_pattern = type(e).__name__",
            "result = {'seen': sorted(seen), 'test_event_pattern': test_event_pattern}",
        ]),
        json!({ "pattern": pattern, "events": events }),
    );
    let mut expected: BTreeSet<String> = event_ids(&samples["ceremony"]);
    expected.extend(event_ids(&samples["other_ceremony"]));
    expected.extend(event_ids(&samples["console_sign_in"]));
    let seen: BTreeSet<String> = delivered["seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, expected, "{delivered}");
    eprintln!(
        "EventBridge TestEventPattern on the local endpoint: {}",
        delivered["test_event_pattern"]
    );
}

/// Writes `files` into bucket `org-trail` under prefix `trails` as CloudTrail names and places
/// them (gzipped `{"Records": [...]}`, one file per slice, in the day folder of `time`), with a
/// file that is no log beside them.
fn put_trail_files(cloud: &Cloud, time: &str, files: &[&[Value]]) {
    let day = time[..10].replace('-', "/");
    let stamp = format!(
        "{}{}Z",
        time[..10].replace('-', ""),
        &time[10..16].replace(':', "")
    );
    let prefix = format!("trails/AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/{day}/");
    let named: serde_json::Map<String, Value> = files
        .iter()
        .enumerate()
        .map(|(n, records)| {
            (
                format!("{ACCOUNT}_CloudTrail_us-east-1_{stamp}_{n:04}.json.gz"),
                json!(records),
            )
        })
        .collect();
    cloud.aws.boto(
        &python(&[
            "import gzip",
            "s3 = boto3.client('s3')",
            "if 'org-trail' not in [b['Name'] for b in s3.list_buckets()['Buckets']]:",
            "    s3.create_bucket(Bucket='org-trail')",
            "for name, records in args['files'].items():",
            "    body = gzip.compress(json.dumps({'Records': records}).encode())",
            "    s3.put_object(Bucket='org-trail', Key=args['prefix'] + name, Body=body)",
            "s3.put_object(Bucket='org-trail', Key=args['prefix'] + 'digest-not-a-log.txt', Body=b'ignored')",
        ]),
        json!({"prefix": prefix, "files": named}),
    );
}

#[test]
fn review_lists_exactly_the_ceremonys_actions_from_trail_files_in_s3() {
    let applied = Applied::new();
    let cloud = &applied.cloud;
    let session = applied.assume(&[]);
    let ceremony = session["Ceremony"].as_str().unwrap();
    let session_key = session["AccessKeyId"].as_str().unwrap();
    let now = vault_core::clock::now_unix();
    let time = vault_core::clock::rfc3339(now);
    let samples = sample_records(ceremony, session_key, &applied.user_key, &time);
    let mut all = Vec::new();
    for group in ["ceremony", "other_ceremony", "console_sign_in", "unrelated"] {
        all.extend(samples[group].as_array().unwrap().iter().cloned());
    }
    // Two files, as CloudTrail names and places them: the records split across them.
    let (first, second) = all.split_at(3);
    put_trail_files(cloud, &time, &[first, second]);
    let report: Value = serde_json::from_str(&cloud.ok(
        &[
            "review",
            ceremony,
            "--trail-bucket",
            "org-trail",
            "--trail-prefix",
            "trails",
            "--format",
            "json",
        ],
        true,
    ))
    .unwrap();
    assert_eq!(
        event_ids(&report["records"]),
        event_ids(&samples["ceremony"]),
        "{report}"
    );
    assert_eq!(report["reason"], "IdP-outage-INC-42");
    assert_eq!(report["custodians"], json!(["ana", "cat"]));
    assert_eq!(report["session_access_key_id"], session_key);
    // The endpoint's Config has no recorder in either region the session acted in: the
    // report says so, and lists nothing from it.
    assert_eq!(
        report["config"],
        json!([{"region": "eu-west-1", "state": "not_recording"},
               {"region": "us-east-1", "state": "not_recording"}])
    );

    let markdown = cloud.ok(
        &[
            "review",
            ceremony,
            "--trail-bucket",
            "org-trail",
            "--trail-prefix",
            "trails",
        ],
        true,
    );
    let head: String = markdown.lines().take(12).collect::<Vec<_>>().join("\n");
    assert!(
        head.contains("IdP-outage-INC-42") && head.contains("ana, cat") && head.contains(ceremony),
        "{markdown}"
    );
    assert!(
        markdown.contains("| ec2:TerminateInstances |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("Client.UnauthorizedOperation"),
        "{markdown}"
    );
    assert!(
        !markdown.contains("DeleteBucketPolicy") && !markdown.contains("CreateBucket"),
        "{markdown}"
    );
    let html_path = cloud.env.path("review.html");
    cloud.ok(
        &[
            "review",
            ceremony,
            "--trail-bucket",
            "org-trail",
            "--trail-prefix",
            "trails",
            "--format",
            "html",
            "--out",
            html_path.to_str().unwrap(),
        ],
        true,
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("UpdateLoginProfile"),
        "{html}"
    );

    // An unknown ceremony is a usage error that names it.
    let output = cloud.run(
        &["review", "000000000000", "--trail-bucket", "org-trail"],
        true,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("000000000000"),
        "{}",
        stderr(&output)
    );
}

/// AWS Config on the local endpoint: `DescribeConfigurationRecorderStatus` and
/// `ListDiscoveredResources` answer as AWS does; `GetResourceConfigHistory` returns only the
/// current item of a resource (no history, the window ignored: `review` keeps the items
/// captured in the window itself) and writes its capture time as text, which the SDK cannot
/// parse (review reads that answer's body); it knows S3 buckets and IAM roles, not IAM users.
#[test]
fn review_adds_what_aws_config_recorded_of_the_resources_the_session_named() {
    let applied = Applied::new();
    let cloud = &applied.cloud;
    // Made before the glass is broken, inside the window review looks in: a role the session
    // changes, and a bucket nobody touches.
    cloud.aws.boto(
        "iam.create_role(RoleName='app-deploy', AssumeRolePolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': []}))\n\
         boto3.client('s3').create_bucket(Bucket='bystander')",
        json!({}),
    );
    let session = applied.assume(&[]);
    let ceremony = session["Ceremony"].as_str().unwrap();
    let session_key = session["AccessKeyId"].as_str().unwrap();
    let time = vault_core::clock::rfc3339(vault_core::clock::now_unix());
    let samples = sample_records(ceremony, session_key, &applied.user_key, &time);
    // What the session did: the sample's calls, then a bucket made and a role's policy changed
    // (the latter with the `resources` list CloudTrail adds to some events).
    let template = samples["ceremony"][1].clone();
    let call = |name: &str, source: &str, request: Value, resources: Option<Value>| {
        let mut record = template.clone();
        record["eventName"] = json!(name);
        record["eventSource"] = json!(source);
        record["requestParameters"] = request;
        record["eventID"] = json!(format!("{ceremony}-{name}"));
        if let Some(resources) = resources {
            record["resources"] = resources;
        }
        record
    };
    let mut records: Vec<Value> = samples["ceremony"].as_array().unwrap().clone();
    records.push(call(
        "CreateBucket",
        "s3.amazonaws.com",
        json!({"bucketName": "incident-bucket"}),
        None,
    ));
    records.push(call(
        "PutRolePolicy",
        "iam.amazonaws.com",
        json!({"policyName": "hotfix"}),
        Some(json!([{"accountId": ACCOUNT, "type": "AWS::IAM::Role",
            "ARN": format!("arn:aws:iam::{ACCOUNT}:role/app-deploy")}])),
    ));
    records.extend(
        samples["other_ceremony"]
            .as_array()
            .unwrap()
            .iter()
            .cloned(),
    );
    put_trail_files(cloud, &time, &[&records]);
    cloud.aws.boto(
        "boto3.client('s3').create_bucket(Bucket='incident-bucket')",
        json!({}),
    );
    let review = |format: &str| {
        cloud.ok(
            &[
                "review",
                ceremony,
                "--trail-bucket",
                "org-trail",
                "--trail-prefix",
                "trails",
                "--format",
                format,
            ],
            true,
        )
    };

    // No configuration recorder: the report says Config has nothing, and the review goes on.
    let report: Value = serde_json::from_str(&review("json")).unwrap();
    assert_eq!(
        report["config"],
        json!([{"region": "eu-west-1", "state": "not_recording"},
               {"region": "us-east-1", "state": "not_recording"}]),
        "{report}"
    );
    assert!(
        review("md").contains("us-east-1: AWS Config is not recording there"),
        "the Markdown says so too"
    );

    // Config recording in us-east-1 (not in eu-west-1, where the session's refused EC2 call
    // was): the items it captured of the resources the session named, and which named
    // resources it has no item for; nothing of the bystander or another ceremony's.
    cloud.aws.boto(
        &python(&[
            "config = boto3.client('config')",
            "config.put_configuration_recorder(ConfigurationRecorder={'name': 'default', 'roleARN': 'arn:aws:iam::123456789012:role/config', 'recordingGroup': {'allSupported': True, 'includeGlobalResourceTypes': True}})",
            "config.put_delivery_channel(DeliveryChannel={'name': 'default', 's3BucketName': 'org-trail'})",
            "config.start_configuration_recorder(ConfigurationRecorderName='default')",
        ]),
        json!({}),
    );
    let report: Value = serde_json::from_str(&review("json")).unwrap();
    assert_eq!(report["config"][0]["state"], "not_recording", "{report}");
    let region = &report["config"][1];
    assert_eq!(region["state"], "recording", "{report}");
    let items: BTreeSet<(String, String)> = region["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["resource_type"].as_str().unwrap().to_owned(),
                i["resource_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        items,
        BTreeSet::from([
            ("AWS::IAM::Role".to_owned(), "app-deploy".to_owned()),
            ("AWS::S3::Bucket".to_owned(), "incident-bucket".to_owned()),
        ]),
        "{report}"
    );
    // The bucket's capture time, which the endpoint writes as UTC text, reads as RFC 3339 (its
    // IAM items carry a time with no zone, which is shown as written, never guessed).
    let bucket = region["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["resource_type"] == "AWS::S3::Bucket")
        .unwrap();
    let captured = vault_core::clock::parse_rfc3339(bucket["time"].as_str().unwrap())
        .unwrap_or_else(|| panic!("an RFC 3339 capture time: {bucket}"));
    assert!(
        captured.abs_diff(vault_core::clock::now_unix()) < 600,
        "{bucket}"
    );
    let not_discovered: BTreeSet<String> = region["not_discovered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{} {}", t["resource_type"], t["name"]).replace('"', ""))
        .collect();
    assert_eq!(
        not_discovered,
        BTreeSet::from(["AWS::IAM::User idp-admin".to_owned()])
    );
    let markdown = review("md");
    assert!(
        markdown.contains("## Changes AWS Config recorded")
            && markdown.contains("AWS::S3::Bucket incident-bucket")
            && markdown.contains("no configuration item for AWS::IAM::User idp-admin")
            && markdown.contains("eu-west-1: AWS Config is not recording there"),
        "{markdown}"
    );
    assert!(
        !markdown.contains("bystander") && !markdown.contains("audit-logs"),
        "{markdown}"
    );
}

/// `--console-password`: none unless asked; with `--apply` the password is read from standard
/// input (never argv, never printed) and becomes the user's login profile; off a terminal with
/// no source it is refused before anything is made; the template reads it from a Secrets
/// Manager secret and Terraform makes a login profile encrypted to a PGP key.
#[test]
fn a_console_password_is_made_only_when_asked_and_read_from_stdin_never_shown() {
    let cloud = Cloud::new();
    let permissions_file = cloud.write_json("permissions.json", &permissions());
    let key_out = cloud.env.path("bg-key.json").display().to_string();
    let apply = [
        "aws-setup",
        "--apply",
        "--account",
        ACCOUNT,
        "--permissions-file",
        &permissions_file,
        "--key-out",
        &key_out,
        "--console-password",
    ];
    let login_profile = "try:\n    iam.get_login_profile(UserName='breakglass')\n    result = 'present'\nexcept iam.exceptions.NoSuchEntityException:\n    result = 'none'\nexcept Exception as e:\n    result = type(e).__name__";
    let users = "result = [u['UserName'] for u in iam.list_users()['Users']]";

    // No source and no terminal: exit 2, nothing made.
    let output = cloud
        .command(&apply, true)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--console-password-stdin"),
        "{}",
        stderr(&output)
    );
    let before = cloud.aws.boto(users, json!({}));
    assert!(!before.to_string().contains("\"breakglass\""), "{before}");

    let password = "Break-Glass-Console-9f3e1c";
    let mut with_stdin = apply.to_vec();
    with_stdin.push("--console-password-stdin");
    let output = support::output_with_stdin(
        cloud.command(&with_stdin, true),
        format!("{password}\n").as_bytes(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("made a console password for breakglass"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(password) && !stderr(&output).contains(password),
        "the password is never shown"
    );
    assert!(
        !std::fs::read_to_string(&key_out)
            .unwrap()
            .contains(password),
        "nor written to the key file"
    );
    assert_eq!(cloud.aws.boto(login_profile, json!({})), json!("present"));

    // The templates: a reference to a Secrets Manager secret, or a login profile encrypted to a
    // PGP key; none without the option.
    let template_args = [
        "aws-setup",
        "--account",
        ACCOUNT,
        "--permissions-file",
        &permissions_file,
    ];
    let plain: Value = serde_json::from_str(&cloud.ok(&template_args, false)).unwrap();
    assert!(
        plain["Resources"]["BreakGlassUser"]["Properties"]
            .get("LoginProfile")
            .is_none()
    );
    let mut asked = template_args.to_vec();
    asked.push("--console-password");
    let template: Value = serde_json::from_str(&cloud.ok(&asked, false)).unwrap();
    assert_eq!(
        template["Resources"]["BreakGlassUser"]["Properties"]["LoginProfile"]["Password"],
        json!("{{resolve:secretsmanager:breakglass-console-password}}")
    );
    // cfn-lint accepts it with no warning (a plain or NoEcho parameter draws W1011).
    let template_path = cloud.write_json("console.template.json", &template);
    let lint = Command::new(venv_program("cfn-lint"))
        .arg(&template_path)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        stderr(&lint)
    );
    asked.extend(["--format", "terraform"]);
    let terraform = cloud.ok(&asked, false);
    assert!(
        terraform.contains("resource \"aws_iam_user_login_profile\" \"breakglass\"")
            && terraform.contains("pgp_key = var.console_password_pgp_key"),
        "{terraform}"
    );
    let mut plain_tf = template_args.to_vec();
    plain_tf.extend(["--format", "terraform"]);
    assert!(!cloud.ok(&plain_tf, false).contains("login_profile"));

    // A member account has no user to sign in as.
    let output = cloud.run(
        &[
            "aws-setup",
            "--account",
            ACCOUNT,
            "--member-of",
            ROLE_ARN,
            "--permissions-file",
            &permissions_file,
            "--console-password",
        ],
        false,
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}
