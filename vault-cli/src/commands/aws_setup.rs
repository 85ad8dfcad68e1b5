//! `breakglass aws-setup`: the whole AWS side of a break-glass credential as one plan (user,
//! its least-privilege policy, emergency role, member-account roles, the alert on every use),
//! rendered as a CloudFormation template, as Terraform, or made directly through the SDK.
//!
//! Every policy document comes from `policy.rs` (the same ones `aws-policy` prints) and every
//! output renders the same [`Plan`]: the three cannot drift apart. The access key and the
//! virtual MFA device are made only by `--apply`, whose secrets go to a new 0600 key file for
//! `seal`; a template cannot hand out a secret safely (see docs/aws-setup.md for the steps after
//! deploying one).

use std::path::Path;

use anyhow::{Context, Result};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::policy::{AlertArns, trust_policy, user_policy};
use crate::cli::{AwsSetupArgs, SetupFormat};
use crate::exit::{Failure, fail};

/// The prefix of every SourceIdentity breakglass sets (`breakglass-<ceremony>`).
pub const SOURCE_IDENTITY_PREFIX: &str = "breakglass-";

/// The role's permissions.
#[derive(Debug, Clone)]
pub enum Permissions {
    /// A managed policy attached to the role.
    Managed(String),
    /// An inline policy document.
    Document(Value),
}

/// The break-glass user (security account only).
#[derive(Debug, Clone)]
pub struct UserPlan {
    /// The user name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Its only policy.
    pub policy: Value,
    /// Whether it gets an AWS console password (a login profile).
    pub console_password: bool,
}

/// The alert: an EventBridge rule sending to an SNS topic.
#[derive(Debug, Clone)]
pub struct AlertPlan {
    /// The rule's and the topic's name.
    pub name: String,
    /// Their ARNs.
    pub arns: AlertArns,
    /// The rule's event pattern.
    pub pattern: Value,
    /// The topic policy: EventBridge may publish.
    pub topic_policy: Value,
    /// E-mail subscriptions.
    pub emails: Vec<String>,
    /// An HTTPS subscription.
    pub webhook: Option<String>,
}

/// Everything aws-setup makes in one account.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The account.
    pub account: String,
    /// The region of the alert (us-east-1 sees IAM, global STS and console sign-in events).
    pub region: String,
    /// The break-glass user, in the security account; `None` for a member account.
    pub user: Option<UserPlan>,
    /// The role's name.
    pub role_name: String,
    /// The role's ARN.
    pub role_arn: String,
    /// The role's trust policy.
    pub trust_policy: Value,
    /// The role's permissions.
    pub permissions: Permissions,
    /// Member-account roles the emergency role may chain into (an inline policy when any).
    pub chain_policy: Option<Value>,
    /// `MaxSessionDuration`.
    pub max_session_seconds: i32,
    /// The alert.
    pub alert: AlertPlan,
}

/// The alert rule's state: AssumeRole, and the break-glass user's reads, are read-only
/// management events, which EventBridge delivers only to rules in this state.
pub const RULE_STATE: &str = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS";

/// The inline policy names aws-setup writes.
pub const USER_POLICY_NAME: &str = "breakglass-least-privilege";
/// The role's inline permissions, when given as a document.
pub const PERMISSIONS_POLICY_NAME: &str = "breakglass-emergency-permissions";
/// The role's permission to chain into member-account roles.
pub const CHAIN_POLICY_NAME: &str = "breakglass-chain-to-member-roles";

/// The EventBridge pattern for every use: the break-glass user's API calls and console
/// sign-ins, any AssumeRole of the watched roles, and anything done or asked for with a
/// SourceIdentity `breakglass-*`.
pub fn alert_pattern(user_arn: Option<&str>, role_arns: &[String]) -> Value {
    let mut any = Vec::new();
    if let Some(user_arn) = user_arn {
        any.push(json!({ "detail": { "userIdentity": { "arn": [user_arn] } } }));
    }
    any.push(json!({ "detail": {
        "eventName": ["AssumeRole"],
        "requestParameters": { "roleArn": role_arns },
    } }));
    any.push(json!({ "detail": { "userIdentity": { "sessionContext": {
        "sourceIdentity": [{ "prefix": SOURCE_IDENTITY_PREFIX }],
    } } } }));
    any.push(json!({ "detail": { "requestParameters": {
        "sourceIdentity": [{ "prefix": SOURCE_IDENTITY_PREFIX }],
    } } }));
    json!({
        "detail-type": ["AWS API Call via CloudTrail", "AWS Console Sign In via CloudTrail"],
        "$or": any,
    })
}

fn topic_policy(topic_arn: &str, rule_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "TheBreakGlassAlertRulePublishes",
            "Effect": "Allow",
            "Principal": { "Service": "events.amazonaws.com" },
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": { "ArnEquals": { "aws:SourceArn": rule_arn } },
        }],
    })
}

fn read_json_file(path: &Path, what: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        fail(
            Failure::Usage,
            format!("{what} {}: not JSON ({e})", path.display()),
        )
    })
}

fn check_role_arn(arn: &str, option: &str) -> Result<()> {
    if arn.starts_with("arn:") && arn.contains(":role/") {
        Ok(())
    } else {
        Err(fail(
            Failure::Usage,
            format!("{option} {arn:?}: expected a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
        ))
    }
}

/// Validates the arguments into a plan.
pub fn plan(args: &AwsSetupArgs) -> Result<Plan> {
    let account = &args.account;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail(
            Failure::Usage,
            format!("--account {account:?}: expected a 12-digit AWS account id"),
        ));
    }
    if !(crate::aws::MIN_SESSION_SECONDS..=crate::aws::MAX_SESSION_SECONDS)
        .contains(&args.max_session)
    {
        return Err(fail(
            Failure::Usage,
            format!(
                "--max-session {}: AWS allows {} to {} seconds",
                args.max_session,
                crate::aws::MIN_SESSION_SECONDS,
                crate::aws::MAX_SESSION_SECONDS
            ),
        ));
    }
    for member in &args.member_roles {
        check_role_arn(member, "--member-role")?;
    }
    if let Some(webhook) = &args.alert_webhook
        && !webhook.starts_with("https://")
    {
        return Err(fail(
            Failure::Usage,
            format!("--alert-webhook {webhook:?}: SNS delivers to https:// URLs only"),
        ));
    }
    let permissions = match (&args.permissions_arn, &args.permissions_file) {
        (Some(arn), None) if arn.starts_with("arn:") && arn.contains(":policy/") => {
            Permissions::Managed(arn.clone())
        }
        (Some(arn), None) => {
            return Err(fail(
                Failure::Usage,
                format!("--permissions-arn {arn:?}: expected a managed policy ARN"),
            ));
        }
        (None, Some(path)) => Permissions::Document(read_json_file(path, "--permissions-file")?),
        _ => {
            return Err(fail(
                Failure::Usage,
                "name the role's permissions: --permissions-arn ARN or --permissions-file FILE",
            ));
        }
    };
    let role_arn = format!("arn:aws:iam::{account}:role/{}", args.role);
    let rule_arn = format!(
        "arn:aws:events:{}:{account}:rule/{}",
        args.region, args.alert_name
    );
    let topic_arn = format!("arn:aws:sns:{}:{account}:{}", args.region, args.alert_name);
    let arns = AlertArns {
        rule: rule_arn.clone(),
        topic: topic_arn.clone(),
    };
    let (user, trust) = match &args.member_of {
        Some(_) if args.console_password => {
            return Err(fail(
                Failure::Usage,
                "--console-password with --member-of: a member account has no break-glass user to sign in as",
            ));
        }
        Some(security_role) => {
            check_role_arn(security_role, "--member-of")?;
            (None, trust_policy(security_role, false))
        }
        None => {
            let arn = format!("arn:aws:iam::{account}:user/{}", args.user);
            let policy = user_policy(account, &args.user, &role_arn, Some(&arns));
            let trust = trust_policy(&arn, true);
            (
                Some(UserPlan {
                    name: args.user.clone(),
                    arn,
                    policy,
                    console_password: args.console_password,
                }),
                trust,
            )
        }
    };
    let chain_policy = (!args.member_roles.is_empty()).then(|| {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "ChainIntoMemberAccounts",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                "Resource": args.member_roles,
            }],
        })
    });
    let mut watched = vec![role_arn.clone()];
    watched.extend(args.member_roles.iter().cloned());
    Ok(Plan {
        account: account.clone(),
        region: args.region.clone(),
        role_name: args.role.clone(),
        role_arn,
        trust_policy: trust,
        permissions,
        chain_policy,
        max_session_seconds: args.max_session,
        alert: AlertPlan {
            name: args.alert_name.clone(),
            pattern: alert_pattern(user.as_ref().map(|u| u.arn.as_str()), &watched),
            topic_policy: topic_policy(&topic_arn, &rule_arn),
            arns,
            emails: args.alert_emails.clone(),
            webhook: args.alert_webhook.clone(),
        },
        user,
    })
}

/// The plan as a CloudFormation template (JSON, which is also YAML).
/// The Secrets Manager secret a template's console password is read from.
pub fn console_password_secret(user: &str) -> String {
    format!("{user}-console-password")
}

/// A CloudFormation dynamic reference to that secret.
fn console_password_reference(user: &str) -> String {
    format!(
        "{{{{resolve:secretsmanager:{}}}}}",
        console_password_secret(user)
    )
}

pub fn cloudformation(plan: &Plan) -> Value {
    let mut resources = serde_json::Map::new();
    let mut role_depends = Vec::new();
    let mut outputs = serde_json::Map::new();
    if let Some(user) = &plan.user {
        let mut properties = json!({ "UserName": user.name });
        if user.console_password {
            // The password never passes through the template or its parameters: CloudFormation
            // resolves it from the Secrets Manager secret the administrator made beforehand.
            properties["LoginProfile"] = json!({
                "Password": console_password_reference(&user.name),
                "PasswordResetRequired": false,
            });
        }
        resources.insert(
            "BreakGlassUser".into(),
            json!({ "Type": "AWS::IAM::User", "Properties": properties }),
        );
        resources.insert(
            "BreakGlassUserPolicy".into(),
            json!({ "Type": "AWS::IAM::Policy", "Properties": {
                "PolicyName": USER_POLICY_NAME,
                "Users": [{ "Ref": "BreakGlassUser" }],
                "PolicyDocument": user.policy,
            } }),
        );
        // IAM checks a trust policy's principal exists when the role is made.
        role_depends.push("BreakGlassUser");
        outputs.insert(
            "UserArn".into(),
            json!({ "Value": { "Fn::GetAtt": ["BreakGlassUser", "Arn"] } }),
        );
    }
    let mut properties = json!({
        "RoleName": plan.role_name,
        "AssumeRolePolicyDocument": plan.trust_policy,
        "MaxSessionDuration": plan.max_session_seconds,
    });
    match &plan.permissions {
        Permissions::Managed(arn) => properties["ManagedPolicyArns"] = json!([arn]),
        Permissions::Document(document) => {
            resources.insert(
                "EmergencyPermissions".into(),
                json!({ "Type": "AWS::IAM::Policy", "Properties": {
                    "PolicyName": PERMISSIONS_POLICY_NAME,
                    "Roles": [{ "Ref": "EmergencyRole" }],
                    "PolicyDocument": document,
                } }),
            );
        }
    }
    let mut role = json!({ "Type": "AWS::IAM::Role", "Properties": properties });
    if !role_depends.is_empty() {
        role["DependsOn"] = json!(role_depends);
    }
    resources.insert("EmergencyRole".into(), role);
    if let Some(chain) = &plan.chain_policy {
        resources.insert(
            "ChainToMemberRoles".into(),
            json!({ "Type": "AWS::IAM::Policy", "Properties": {
                "PolicyName": CHAIN_POLICY_NAME,
                "Roles": [{ "Ref": "EmergencyRole" }],
                "PolicyDocument": chain,
            } }),
        );
    }
    let alert = &plan.alert;
    let mut subscriptions: Vec<Value> = alert
        .emails
        .iter()
        .map(|e| json!({ "Protocol": "email", "Endpoint": e }))
        .collect();
    if let Some(webhook) = &alert.webhook {
        subscriptions.push(json!({ "Protocol": "https", "Endpoint": webhook }));
    }
    resources.insert(
        "AlertTopic".into(),
        json!({ "Type": "AWS::SNS::Topic", "Properties": {
            "TopicName": alert.name, "Subscription": subscriptions,
        } }),
    );
    resources.insert(
        "AlertTopicPolicy".into(),
        json!({ "Type": "AWS::SNS::TopicPolicy", "Properties": {
            "Topics": [{ "Ref": "AlertTopic" }], "PolicyDocument": alert.topic_policy,
        } }),
    );
    resources.insert(
        "AlertRule".into(),
        json!({ "Type": "AWS::Events::Rule", "DependsOn": ["AlertTopic"], "Properties": {
            "Name": alert.name,
            "Description": "breakglass: every use of the break-glass user and emergency role",
            "State": RULE_STATE,
            "EventPattern": alert.pattern,
            "Targets": [{ "Id": "breakglass-alert-topic", "Arn": alert.arns.topic }],
        } }),
    );
    outputs.insert(
        "RoleArn".into(),
        json!({ "Value": { "Fn::GetAtt": ["EmergencyRole", "Arn"] } }),
    );
    outputs.insert("AlertTopicArn".into(), json!({ "Value": alert.arns.topic }));
    outputs.insert("AlertRuleName".into(), json!({ "Value": alert.name }));
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "breakglass: the break-glass user, its least-privilege policy, the emergency role and the alert on every use (made by breakglass aws-setup)",
        "Resources": resources,
        "Outputs": outputs,
    })
}

/// A JSON document as an HCL expression: JSON objects and arrays are HCL expressions once
/// template sequences are escaped.
fn hcl_json(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    format!(
        "jsonencode({})",
        text.replace("${", "$${").replace("%{", "%%{")
    )
}

fn hcl_string(text: &str) -> String {
    hcl_json(&Value::String(text.to_owned()))
        .trim_start_matches("jsonencode(")
        .trim_end_matches(')')
        .to_owned()
}

/// The plan as Terraform (HCL, AWS provider).
pub fn terraform(plan: &Plan) -> String {
    let mut out = String::from(
        "# breakglass: the break-glass user, its least-privilege policy, the emergency role and the\n\
         # alert on every use (made by breakglass aws-setup).\n\
         terraform {\n  required_providers {\n    aws = {\n      source  = \"hashicorp/aws\"\n      version = \">= 5.0\"\n    }\n  }\n}\n\n",
    );
    let mut block = |kind: &str, name: &str, body: &[(&str, String)]| {
        out.push_str(&format!("resource \"{kind}\" \"{name}\" {{\n"));
        for (key, value) in body {
            out.push_str(&format!("  {key} = {}\n", value.replace('\n', "\n  ")));
        }
        out.push_str("}\n\n");
    };
    let mut role_depends = None;
    if let Some(user) = &plan.user {
        block(
            "aws_iam_user",
            "breakglass",
            &[("name", hcl_string(&user.name))],
        );
        block(
            "aws_iam_user_policy",
            "breakglass",
            &[
                ("name", hcl_string(USER_POLICY_NAME)),
                ("user", "aws_iam_user.breakglass.name".into()),
                ("policy", hcl_json(&user.policy)),
            ],
        );
        if user.console_password {
            // The provider makes the password (it cannot be given); with a PGP key it keeps only
            // the encrypted password, readable by that key's holder.
            block(
                "aws_iam_user_login_profile",
                "breakglass",
                &[
                    ("user", "aws_iam_user.breakglass.name".into()),
                    ("password_reset_required", "false".into()),
                    ("password_length", "32".into()),
                    ("pgp_key", "var.console_password_pgp_key".into()),
                ],
            );
        }
        role_depends = Some("[aws_iam_user.breakglass]".to_owned());
    }
    let mut role = vec![
        ("name", hcl_string(&plan.role_name)),
        ("max_session_duration", plan.max_session_seconds.to_string()),
        ("assume_role_policy", hcl_json(&plan.trust_policy)),
    ];
    role.extend(role_depends.map(|d| ("depends_on", d)));
    block("aws_iam_role", "emergency", &role);
    match &plan.permissions {
        Permissions::Managed(arn) => block(
            "aws_iam_role_policy_attachment",
            "emergency",
            &[
                ("role", "aws_iam_role.emergency.name".into()),
                ("policy_arn", hcl_string(arn)),
            ],
        ),
        Permissions::Document(document) => block(
            "aws_iam_role_policy",
            "emergency",
            &[
                ("name", hcl_string(PERMISSIONS_POLICY_NAME)),
                ("role", "aws_iam_role.emergency.name".into()),
                ("policy", hcl_json(document)),
            ],
        ),
    }
    if let Some(chain) = &plan.chain_policy {
        block(
            "aws_iam_role_policy",
            "chain_to_member_roles",
            &[
                ("name", hcl_string(CHAIN_POLICY_NAME)),
                ("role", "aws_iam_role.emergency.name".into()),
                ("policy", hcl_json(chain)),
            ],
        );
    }
    let alert = &plan.alert;
    block(
        "aws_sns_topic",
        "alert",
        &[("name", hcl_string(&alert.name))],
    );
    block(
        "aws_sns_topic_policy",
        "alert",
        &[
            ("arn", "aws_sns_topic.alert.arn".into()),
            ("policy", hcl_json(&alert.topic_policy)),
        ],
    );
    let mut subscriptions: Vec<(&str, &str)> =
        alert.emails.iter().map(|e| ("email", e.as_str())).collect();
    if let Some(webhook) = &alert.webhook {
        subscriptions.push(("https", webhook.as_str()));
    }
    for (index, (protocol, endpoint)) in subscriptions.iter().enumerate() {
        block(
            "aws_sns_topic_subscription",
            &format!("alert_{index}"),
            &[
                ("topic_arn", "aws_sns_topic.alert.arn".into()),
                ("protocol", hcl_string(protocol)),
                ("endpoint", hcl_string(endpoint)),
            ],
        );
    }
    block(
        "aws_cloudwatch_event_rule",
        "alert",
        &[
            ("name", hcl_string(&alert.name)),
            (
                "description",
                hcl_string("breakglass: every use of the break-glass user and emergency role"),
            ),
            ("state", hcl_string(RULE_STATE)),
            ("event_pattern", hcl_json(&alert.pattern)),
        ],
    );
    block(
        "aws_cloudwatch_event_target",
        "alert",
        &[
            ("rule", "aws_cloudwatch_event_rule.alert.name".into()),
            ("target_id", hcl_string("breakglass-alert-topic")),
            ("arn", "aws_sns_topic.alert.arn".into()),
        ],
    );
    out.push_str(
        "output \"role_arn\" {\n  value = aws_iam_role.emergency.arn\n}\n\noutput \"alert_topic_arn\" {\n  value = aws_sns_topic.alert.arn\n}\n",
    );
    if plan.user.as_ref().is_some_and(|u| u.console_password) {
        out.push_str(
            "\nvariable \"console_password_pgp_key\" {\n  description = \"A PGP public key (base64, or keybase:NAME) the console password is encrypted to\"\n  type        = string\n}\n\noutput \"console_password_encrypted\" {\n  value = aws_iam_user_login_profile.breakglass.encrypted_password\n}\n",
        );
    }
    out
}

/// `breakglass aws-setup`.
/// The console password `--apply` gives the user: the first line of --console-password-file or
/// of standard input, or typed twice at a hidden prompt; never from argv.
fn console_password(args: &AwsSetupArgs) -> Result<SecretString> {
    let given = crate::prompt::read_secret_input(
        args.console_password_file.as_ref(),
        args.console_password_stdin,
    )?;
    let password = match given {
        Some(bytes) => {
            let source = match &args.console_password_file {
                Some(path) => format!("--console-password-file {}", path.display()),
                None => "--console-password-stdin".to_owned(),
            };
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                fail(
                    Failure::Usage,
                    format!("{source}: the password is not text"),
                )
            })?;
            let line = text.lines().next().unwrap_or_default();
            if line.is_empty() {
                return Err(fail(
                    Failure::Usage,
                    format!("{source}: no password in it (its first line is empty)"),
                ));
            }
            SecretString::from(line.to_owned())
        }
        None if crate::prompt::interactive() => {
            let first = crate::prompt::hidden("console password for the break-glass user: ")?;
            let second = crate::prompt::hidden("the same again: ")?;
            if first.is_empty() || *first != *second {
                return Err(fail(
                    Failure::Usage,
                    "the two console passwords typed differ (or are empty): nothing was made",
                ));
            }
            SecretString::from(first.to_string())
        }
        None => {
            return Err(fail(
                Failure::Usage,
                "--apply --console-password needs the password: --console-password-file FILE, \
                 --console-password-stdin, or a terminal to type it at (never on the command line)",
            ));
        }
    };
    Ok(password)
}

pub fn run(args: &AwsSetupArgs) -> Result<()> {
    let plan = plan(args)?;
    if !args.apply {
        match args.format {
            SetupFormat::Cloudformation => {
                println!("{}", serde_json::to_string_pretty(&cloudformation(&plan))?)
            }
            SetupFormat::Terraform => print!("{}", terraform(&plan)),
        }
        return Ok(());
    }
    let key_out = match (&plan.user, &args.key_out) {
        (Some(_), Some(path)) => Some(path.clone()),
        (Some(_), None) => {
            return Err(fail(
                Failure::Usage,
                "--apply makes the break-glass user's key and MFA device: pass --key-out FILE (a new 0600 file for seal)",
            ));
        }
        (None, _) => None,
    };
    if let Some(path) = &key_out
        && path.exists()
    {
        return Err(fail(
            Failure::Usage,
            format!(
                "--key-out {}: the file exists; name a new one",
                path.display()
            ),
        ));
    }
    let console_password = match &plan.user {
        Some(user) if user.console_password => Some(console_password(args)?),
        _ => None,
    };
    let runtime = crate::aws::runtime()?;
    let made = runtime.block_on(crate::aws::setup::apply(&plan, console_password.as_ref()))?;
    for line in &made.resources {
        println!("made {line}");
    }
    if let (Some(path), Some(secrets)) = (&key_out, &made.secrets) {
        vault_core::store::write_new_secret_file(path, &secrets.keys.to_payload())?;
        println!(
            "wrote the access key and MFA seed to {} (0600); seal it, then destroy it:",
            path.display()
        );
        println!(
            "breakglass seal {} --kind aws --from-file {} --account {} --user {} --role-arn {} --mfa-serial {} --region {} --alert-rule {} --alert-topic {} && shred -u {}",
            args.seal_name,
            path.display(),
            plan.account,
            plan.user
                .as_ref()
                .map(|u| u.name.as_str())
                .unwrap_or_default(),
            plan.role_arn,
            secrets.mfa_serial,
            plan.region,
            plan.alert.name,
            plan.alert.arns.topic,
            path.display()
        );
    } else {
        println!(
            "member role ready: breakglass assume NAME --chain {}",
            plan.role_arn
        );
    }
    Ok(())
}
