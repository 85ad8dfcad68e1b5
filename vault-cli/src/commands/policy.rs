//! `breakglass aws-policy`: least-privilege IAM documents for the cloud administrator.

use anyhow::Result;

use crate::cli::{AwsPolicyArgs, RevokeArgs};

/// What the break-glass user may do on its own (assume, rotate its key and MFA device, check
/// the alert); everything else is denied.
const ASSUME_ACTIONS: [&str; 3] = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"];
const KEY_ACTIONS: [&str; 4] = [
    "iam:CreateAccessKey",
    "iam:UpdateAccessKey",
    "iam:DeleteAccessKey",
    "iam:ListAccessKeys",
];
const MFA_ACTIONS: [&str; 6] = [
    "iam:CreateVirtualMFADevice",
    "iam:EnableMFADevice",
    "iam:ResyncMFADevice",
    "iam:DeactivateMFADevice",
    "iam:DeleteVirtualMFADevice",
    "iam:ListMFADevices",
];
const ALERT_CHECK_ACTIONS: [&str; 3] = [
    "events:DescribeRule",
    "events:ListTargetsByRule",
    "sns:GetTopicAttributes",
];

/// The alert a break-glass user may check (read only) with its own key, in `drill --aws`.
#[derive(Debug, Clone)]
pub struct AlertArns {
    /// The EventBridge rule.
    pub rule: String,
    /// The SNS topic.
    pub topic: String,
}

/// The break-glass user's least-privilege policy: assume the role, rotate its own key and MFA
/// device (named as `rotate --mfa` names them), check the alert when there is one; nothing else.
pub fn user_policy(
    account: &str,
    user: &str,
    role_arn: &str,
    alert: Option<&AlertArns>,
) -> serde_json::Value {
    let user_arn = format!("arn:aws:iam::{account}:user/{user}");
    let mut allowed: Vec<&str> = ASSUME_ACTIONS
        .into_iter()
        .chain(["sts:GetCallerIdentity"])
        .collect();
    allowed.extend(KEY_ACTIONS);
    allowed.extend(MFA_ACTIONS);
    let mut statements = vec![
        serde_json::json!({
            "Sid": "AssumeTheEmergencyRole",
            "Effect": "Allow",
            "Action": ASSUME_ACTIONS,
            "Resource": role_arn,
        }),
        serde_json::json!({
            "Sid": "RotateOwnAccessKey",
            "Effect": "Allow",
            "Action": KEY_ACTIONS,
            "Resource": user_arn,
        }),
        serde_json::json!({
            "Sid": "ManageOwnMfaDevice",
            "Effect": "Allow",
            "Action": MFA_ACTIONS,
            "Resource": [
                user_arn.clone(),
                format!("arn:aws:iam::{account}:mfa/{user}"),
                format!("arn:aws:iam::{account}:mfa/{user}-breakglass-*"),
            ],
        }),
    ];
    if let Some(alert) = alert {
        allowed.extend(ALERT_CHECK_ACTIONS);
        statements.push(serde_json::json!({
            "Sid": "CheckTheAlert",
            "Effect": "Allow",
            "Action": ALERT_CHECK_ACTIONS,
            "Resource": [alert.rule, alert.topic],
        }));
    }
    statements.push(serde_json::json!({
        "Sid": "DenyEverythingElse",
        "Effect": "Deny",
        "NotAction": allowed,
        "Resource": "*",
    }));
    serde_json::json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The emergency role's trust policy: `principal` only (the break-glass user, or in a member
/// account the security account's emergency role), SourceIdentity `breakglass-*` required,
/// MFA when asked (a chained session carries no MFA of its own), session tags allowed.
pub fn trust_policy(principal: &str, require_mfa: bool) -> serde_json::Value {
    let mut condition = serde_json::json!({
        "StringLike": { "sts:SourceIdentity": "breakglass-*" },
    });
    if require_mfa {
        condition["Bool"] = serde_json::json!({ "aws:MultiFactorAuthPresent": "true" });
    }
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OnlyTheBreakGlassUser",
                "Effect": "Allow",
                "Principal": { "AWS": principal },
                "Action": "sts:AssumeRole",
                "Condition": condition,
            },
            {
                "Sid": "SourceIdentityAndTags",
                "Effect": "Allow",
                "Principal": { "AWS": principal },
                "Action": ["sts:SetSourceIdentity", "sts:TagSession"],
            },
        ],
    })
}

/// `breakglass aws-policy`: prints the user's policy and the role's trust policy as JSON.
pub fn run(args: &AwsPolicyArgs) -> Result<()> {
    let account = &args.account;
    let user_arn = format!("arn:aws:iam::{account}:user/{}", args.user);
    let role_arn = format!("arn:aws:iam::{account}:role/{}", args.role);
    let user_policy = user_policy(account, &args.user, &role_arn, None);
    let trust_policy = trust_policy(&user_arn, args.require_mfa);
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "user": { "name": args.user, "arn": user_arn, "policy": user_policy },
            "role": { "name": args.role, "arn": role_arn, "trust_policy": trust_policy,
                       "note": "attach only the permissions the emergency needs; MaxSessionDuration bounds --duration; breakglass aws-setup makes all of it, with the alert" },
        }))?
    );
    Ok(())
}

/// The inline policy AWS's "revoke active sessions" writes: deny everything to tokens issued
/// before `now`.
pub fn revoke_older_sessions_policy(now: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Deny",
            "Action": ["*"],
            "Resource": ["*"],
            "Condition": { "DateLessThan": { "aws:TokenIssueTime": now } },
        }],
    })
}

/// `breakglass revoke-sessions`: writes the deny policy on the role (and user).
///
/// This runs after the incident, with the administrator's own AWS credentials (the standard
/// chain: profile, SSO, environment), not with a sealed key: the break-glass user is
/// deliberately not allowed to change the role's policies.
pub fn revoke(vault_arg: Option<&std::path::Path>, args: &RevokeArgs) -> Result<()> {
    let role_name = args
        .role
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && args.role.starts_with("arn:"))
        .ok_or_else(|| {
            crate::exit::fail(
                crate::exit::Failure::Usage,
                format!("--role {:?}: expected a role ARN", args.role),
            )
        })?;
    let now = vault_core::clock::rfc3339(vault_core::clock::now_unix());
    let policy = revoke_older_sessions_policy(&now).to_string();
    let runtime = crate::aws::runtime()?;
    runtime.block_on(crate::aws::revoke_older_sessions(
        role_name,
        args.user.as_deref(),
        &policy,
    ))?;
    println!(
        "sessions of {} issued before {now} are denied (inline policy AWSRevokeOlderSessions){}",
        args.role,
        args.user
            .as_ref()
            .map(|u| format!("; also user {u}"))
            .unwrap_or_default()
    );
    eprintln!(
        "next: breakglass review CEREMONY lists what each session did (ceremony ids: breakglass audit show)"
    );
    if let Some(dir) = vault_arg {
        // Opened without pointing SoftHSM anywhere: the AWS runtime's threads are running,
        // and no token is used.
        let vault = vault_core::vault::Vault::open(dir, &super::machine_config()?)?;
        vault.record(
            vault_core::audit::Event::new("revoke_sessions")
                .detail("role", args.role.clone())
                .detail("before", now.clone()),
        )?;
    }
    Ok(())
}
