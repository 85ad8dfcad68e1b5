//! `breakglass aws-policy`: least-privilege IAM documents for the cloud administrator.

use anyhow::Result;

use crate::cli::{AwsPolicyArgs, RevokeArgs};

/// `breakglass aws-policy`: prints the user's policy and the role's trust policy as JSON.
pub fn run(args: &AwsPolicyArgs) -> Result<()> {
    let account = &args.account;
    let user_arn = format!("arn:aws:iam::{account}:user/{}", args.user);
    let role_arn = format!("arn:aws:iam::{account}:role/{}", args.role);
    let user_policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AssumeTheEmergencyRole",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                "Resource": role_arn,
            },
            {
                "Sid": "RotateOwnAccessKey",
                "Effect": "Allow",
                "Action": ["iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:ListAccessKeys"],
                "Resource": user_arn,
            },
            {
                "Sid": "ManageOwnMfaDevice",
                "Effect": "Allow",
                "Action": ["iam:CreateVirtualMFADevice", "iam:EnableMFADevice", "iam:ResyncMFADevice", "iam:DeactivateMFADevice", "iam:DeleteVirtualMFADevice", "iam:ListMFADevices"],
                "Resource": [user_arn, format!("arn:aws:iam::{account}:mfa/{}", args.user)],
            },
            {
                "Sid": "DenyEverythingElse",
                "Effect": "Deny",
                "NotAction": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity", "sts:GetCallerIdentity", "iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:ListAccessKeys", "iam:CreateVirtualMFADevice", "iam:EnableMFADevice", "iam:ResyncMFADevice", "iam:DeactivateMFADevice", "iam:DeleteVirtualMFADevice", "iam:ListMFADevices"],
                "Resource": "*",
            },
        ],
    });
    let mut condition = serde_json::json!({
        "StringLike": { "sts:SourceIdentity": "breakglass-*" },
    });
    if args.require_mfa {
        condition["Bool"] = serde_json::json!({ "aws:MultiFactorAuthPresent": "true" });
    }
    let trust_policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OnlyTheBreakGlassUser",
                "Effect": "Allow",
                "Principal": { "AWS": user_arn },
                "Action": "sts:AssumeRole",
                "Condition": condition,
            },
            {
                "Sid": "SourceIdentityAndTags",
                "Effect": "Allow",
                "Principal": { "AWS": user_arn },
                "Action": ["sts:SetSourceIdentity", "sts:TagSession"],
            },
        ],
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "user": { "name": args.user, "arn": user_arn, "policy": user_policy },
            "role": { "name": args.role, "arn": role_arn, "trust_policy": trust_policy,
                       "note": "attach only the permissions the emergency needs; MaxSessionDuration bounds --duration" },
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
    if let Some(dir) = vault_arg {
        let vault = vault_core::vault::Vault::open(dir)?;
        vault.record(
            vault_core::audit::Event::new("revoke_sessions")
                .detail("role", args.role.clone())
                .detail("before", now.clone()),
        )?;
    }
    Ok(())
}
