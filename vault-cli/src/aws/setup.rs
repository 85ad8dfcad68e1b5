//! `aws-setup --apply`: makes a [`Plan`] through the SDK with the administrator's own
//! credentials (the standard chain, never a sealed key), then the break-glass user's access key
//! and virtual MFA device, whose secrets go back to the caller only (for the seal), and
//! `drill --aws`'s check that the alert is armed, made with the sealed key itself.

use secrecy::{ExposeSecret, SecretString};
use vault_core::credential::AwsKeys;

use super::{Caller, admin_config, explain, explain_as, new_enabled_mfa_device, sdk_config};
use crate::commands::aws_setup::{
    CHAIN_POLICY_NAME, PERMISSIONS_POLICY_NAME, Permissions, Plan, RULE_STATE, USER_POLICY_NAME,
};
use crate::exit::{Failure, fail};

/// What `apply` made.
pub struct Made {
    /// One line per resource, for the administrator.
    pub resources: Vec<String>,
    /// The break-glass user's key and MFA seed (security account only).
    pub secrets: Option<UserSecrets>,
}

/// The new user's key and MFA device: sealed, never shown.
pub struct UserSecrets {
    /// The access key and MFA seed, as `seal --from-file` reads them.
    pub keys: AwsKeys,
    /// The MFA device's serial (public).
    pub mfa_serial: String,
}

impl std::fmt::Debug for UserSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSecrets")
            .field("access_key_id", &self.keys.access_key_id)
            .field("mfa_serial", &self.mfa_serial)
            .finish_non_exhaustive()
    }
}

/// Makes everything in the plan; on a failure, the error names what was already made.
/// `console_password`: the user's console password, when the plan gives it one.
pub async fn apply(plan: &Plan, console_password: Option<&SecretString>) -> anyhow::Result<Made> {
    let mut made = Made {
        resources: Vec::new(),
        secrets: None,
    };
    match apply_steps(plan, console_password, &mut made).await {
        Ok(()) => Ok(made),
        Err(e) if made.resources.is_empty() => Err(e),
        Err(e) => Err(e.context(format!(
            "aws-setup stopped part-way; already made: {} (delete them, or re-run against a clean account)",
            made.resources.join("; ")
        ))),
    }
}

async fn apply_steps(
    plan: &Plan,
    console_password: Option<&SecretString>,
    made: &mut Made,
) -> anyhow::Result<()> {
    let config = admin_config(Some(&plan.region)).await;
    let iam = aws_sdk_iam::Client::new(&config);
    if let Some(user) = &plan.user {
        iam.create_user()
            .user_name(&user.name)
            .send()
            .await
            .map_err(|e| explain_as(Caller::Administrator, "CreateUser", e))?;
        made.resources.push(format!("IAM user {}", user.arn));
        iam.put_user_policy()
            .user_name(&user.name)
            .policy_name(USER_POLICY_NAME)
            .policy_document(user.policy.to_string())
            .send()
            .await
            .map_err(|e| explain_as(Caller::Administrator, "PutUserPolicy", e))?;
        made.resources
            .push(format!("its only policy {USER_POLICY_NAME} (inline)"));
        if let Some(password) = console_password.filter(|_| user.console_password) {
            iam.create_login_profile()
                .user_name(&user.name)
                .password(password.expose_secret())
                .password_reset_required(false)
                .send()
                .await
                .map_err(|e| explain_as(Caller::Administrator, "CreateLoginProfile", e))?;
            made.resources.push(format!(
                "a console password for {} (the one you gave; never printed)",
                user.name
            ));
        }
    }
    create_role(&iam, plan).await?;
    made.resources.push(format!(
        "role {} (MaxSessionDuration {} s)",
        plan.role_arn, plan.max_session_seconds
    ));
    match &plan.permissions {
        Permissions::Managed(arn) => {
            iam.attach_role_policy()
                .role_name(&plan.role_name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| explain_as(Caller::Administrator, "AttachRolePolicy", e))?;
            made.resources.push(format!("the role's permissions {arn}"));
        }
        Permissions::Document(document) => {
            iam.put_role_policy()
                .role_name(&plan.role_name)
                .policy_name(PERMISSIONS_POLICY_NAME)
                .policy_document(document.to_string())
                .send()
                .await
                .map_err(|e| explain_as(Caller::Administrator, "PutRolePolicy", e))?;
            made.resources.push(format!(
                "the role's permissions {PERMISSIONS_POLICY_NAME} (inline)"
            ));
        }
    }
    if let Some(chain) = &plan.chain_policy {
        iam.put_role_policy()
            .role_name(&plan.role_name)
            .policy_name(CHAIN_POLICY_NAME)
            .policy_document(chain.to_string())
            .send()
            .await
            .map_err(|e| explain_as(Caller::Administrator, "PutRolePolicy", e))?;
        made.resources.push(format!(
            "the role's permission to chain into member roles {CHAIN_POLICY_NAME} (inline)"
        ));
    }
    make_alert(&config, plan, made).await?;
    if let Some(user) = &plan.user {
        made.secrets = Some(user_secrets(&iam, &user.name, made).await?);
    }
    Ok(())
}

/// CreateRole, retried while IAM does not yet see the user the trust policy names.
async fn create_role(iam: &aws_sdk_iam::Client, plan: &Plan) -> anyhow::Result<()> {
    let mut delay = std::time::Duration::from_secs(1);
    for attempt in 0.. {
        let result = iam
            .create_role()
            .role_name(&plan.role_name)
            .assume_role_policy_document(plan.trust_policy.to_string())
            .max_session_duration(plan.max_session_seconds)
            .send()
            .await;
        match result {
            Ok(_) => return Ok(()),
            Err(e)
                if attempt < 6
                    && e.as_service_error()
                        .is_some_and(|s| s.is_malformed_policy_document_exception()) =>
            {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(explain_as(Caller::Administrator, "CreateRole", e)),
        }
    }
    unreachable!("the loop returns")
}

async fn make_alert(
    config: &aws_config::SdkConfig,
    plan: &Plan,
    made: &mut Made,
) -> anyhow::Result<()> {
    let alert = &plan.alert;
    let sns = aws_sdk_sns::Client::new(config);
    let topic = sns
        .create_topic()
        .name(&alert.name)
        .send()
        .await
        .map_err(|e| explain_as(Caller::Administrator, "CreateTopic", e))?;
    let topic_arn = topic
        .topic_arn()
        .unwrap_or(alert.arns.topic.as_str())
        .to_owned();
    made.resources.push(format!("SNS topic {topic_arn}"));
    sns.set_topic_attributes()
        .topic_arn(&topic_arn)
        .attribute_name("Policy")
        .attribute_value(alert.topic_policy.to_string())
        .send()
        .await
        .map_err(|e| explain_as(Caller::Administrator, "SetTopicAttributes", e))?;
    let mut subscriptions: Vec<(&str, &str)> =
        alert.emails.iter().map(|e| ("email", e.as_str())).collect();
    if let Some(webhook) = &alert.webhook {
        subscriptions.push(("https", webhook.as_str()));
    }
    for (protocol, endpoint) in subscriptions {
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol(protocol)
            .endpoint(endpoint)
            .send()
            .await
            .map_err(|e| explain_as(Caller::Administrator, "Subscribe", e))?;
        made.resources.push(format!(
            "subscription {protocol} {endpoint} (pending until its owner confirms it)"
        ));
    }
    let events = aws_sdk_eventbridge::Client::new(config);
    events
        .put_rule()
        .name(&alert.name)
        .description("breakglass: every use of the break-glass user and emergency role")
        .event_pattern(alert.pattern.to_string())
        .state(aws_sdk_eventbridge::types::RuleState::from(RULE_STATE))
        .send()
        .await
        .map_err(|e| explain_as(Caller::Administrator, "PutRule", e))?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("breakglass-alert-topic")
        .arn(&topic_arn)
        .build()
        .map_err(|e| fail(Failure::Aws, format!("the rule's target: {e}")))?;
    let answer = events
        .put_targets()
        .rule(&alert.name)
        .targets(target)
        .send()
        .await
        .map_err(|e| explain_as(Caller::Administrator, "PutTargets", e))?;
    if answer.failed_entry_count() > 0 {
        return Err(fail(
            Failure::Aws,
            format!("PutTargets: EventBridge refused the topic {topic_arn} as the rule's target"),
        ));
    }
    made.resources.push(format!(
        "EventBridge rule {} sending every use to the topic",
        alert.arns.rule
    ));
    Ok(())
}

/// The user's access key and an enabled virtual MFA device (named as `rotate --mfa` names them).
async fn user_secrets(
    iam: &aws_sdk_iam::Client,
    user: &str,
    made: &mut Made,
) -> anyhow::Result<UserSecrets> {
    let key = iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .map_err(|e| explain_as(Caller::Administrator, "CreateAccessKey", e))?;
    let key = key
        .access_key()
        .ok_or_else(|| fail(Failure::Aws, "CreateAccessKey returned no key"))?;
    made.resources
        .push(format!("access key {} of {user}", key.access_key_id()));
    let (serial, seed) = new_enabled_mfa_device(iam, Caller::Administrator, user).await?;
    made.resources
        .push(format!("virtual MFA device {serial}, enabled for {user}"));
    Ok(UserSecrets {
        keys: AwsKeys {
            access_key_id: key.access_key_id().to_owned(),
            secret_access_key: SecretString::from(key.secret_access_key().to_owned()),
            mfa_seed: Some(seed),
        },
        mfa_serial: serial,
    })
}

/// `drill --aws`: with the sealed key, checks that the alert rule exists and is enabled and
/// that it still sends to its topic, which exists; returns what was found, or what is wrong.
pub async fn check_alert(
    keys: &AwsKeys,
    region: Option<String>,
    rule: &str,
    topic_arn: &str,
) -> anyhow::Result<String> {
    let config = sdk_config(
        &keys.access_key_id,
        keys.secret_access_key.expose_secret(),
        None,
        region,
    )
    .await;
    let described = aws_sdk_eventbridge::Client::new(&config)
        .describe_rule()
        .name(rule)
        .send()
        .await
        .map_err(|e| explain("DescribeRule", e))?;
    let state = described.state().map(|s| s.as_str().to_owned());
    if state.as_deref() != Some("ENABLED") && state.as_deref() != Some(RULE_STATE) {
        return Err(fail(
            Failure::Aws,
            format!(
                "the alert rule {rule} is {}: nobody is told when the glass is broken",
                state.as_deref().unwrap_or("in no state")
            ),
        ));
    }
    let targets = aws_sdk_eventbridge::Client::new(&config)
        .list_targets_by_rule()
        .rule(rule)
        .send()
        .await
        .map_err(|e| explain("ListTargetsByRule", e))?;
    if !targets.targets().iter().any(|t| t.arn() == topic_arn) {
        return Err(fail(
            Failure::Aws,
            format!("the alert rule {rule} no longer sends to {topic_arn}"),
        ));
    }
    aws_sdk_sns::Client::new(&config)
        .get_topic_attributes()
        .topic_arn(topic_arn)
        .send()
        .await
        .map_err(|e| explain("GetTopicAttributes", e))?;
    Ok(format!(
        "alert rule {rule} enabled, topic {topic_arn} present"
    ))
}
