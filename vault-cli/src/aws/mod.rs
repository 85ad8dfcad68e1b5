//! The AWS edge: the only place with tokio and the AWS SDK.
//!
//! Every client is built from static credentials that came out of a sealed envelope, never from
//! the default provider chain: no instance-metadata probing, no environment or profile keys.
//! The endpoint and region still come from the standard settings (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`), so tests and private endpoints work the way the AWS CLI does. Every client
//! uses the one HTTPS stack in `https`.

pub mod https;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::primitives::DateTimeFormat;
use secrecy::{ExposeSecret, SecretString};

use crate::exit::{Failure, fail};

pub mod review;
pub mod setup;

/// The provider name the SDK reports for credentials breakglass supplies.
const PROVIDER_NAME: &str = "breakglass-sealed";

/// STS limits on `DurationSeconds` for AssumeRole.
pub const MIN_SESSION_SECONDS: i32 = 900;
/// The largest duration a role can allow (its own MaxSessionDuration may be lower).
pub const MAX_SESSION_SECONDS: i32 = 43_200;

/// Builds the SDK configuration for static, unsealed credentials.
///
/// `region` overrides the environment's region (the credential's metadata carries one).
pub async fn sdk_config(
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<String>,
    region: Option<String>,
) -> SdkConfig {
    let credentials = Credentials::new(
        access_key_id,
        secret_access_key,
        session_token,
        None,
        PROVIDER_NAME,
    );
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https::sdk_http_client())
        .credentials_provider(credentials);
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    } else if std::env::var_os("AWS_REGION").is_none()
        && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        // STS is global; without a region the SDK refuses to build a request.
        loader = loader.region(Region::new("us-east-1"));
    }
    loader.load().await
}

/// A single-threaded runtime for one command's AWS calls.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// What AssumeRole is asked for.
#[derive(Debug, Clone)]
pub struct AssumeRequest {
    /// The role.
    pub role_arn: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// `SourceIdentity`.
    pub source_identity: String,
    /// Session tags.
    pub tags: Vec<(String, String)>,
    /// `DurationSeconds`.
    pub duration_seconds: i32,
    /// A scope-down session policy.
    pub policy: Option<String>,
    /// `ExternalId`.
    pub external_id: Option<String>,
    /// `SerialNumber` of the MFA device.
    pub mfa_serial: Option<String>,
    /// The region.
    pub region: Option<String>,
}

/// A temporary session.
pub struct Session {
    /// The session's access key id (public: logged, and seen in CloudTrail).
    pub access_key_id: String,
    /// The session's secret key.
    pub secret_access_key: SecretString,
    /// The session token.
    pub session_token: SecretString,
    /// Expiry, RFC 3339.
    pub expiration: String,
    /// The assumed-role ARN (with the session name).
    pub assumed_role_arn: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .field("assumed_role_arn", &self.assumed_role_arn)
            .finish_non_exhaustive()
    }
}

/// Whose credentials a call was made with: the advice differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// Keys out of a sealed envelope (or a session made with them).
    Sealed,
    /// The administrator's own credentials from the standard chain.
    Administrator,
}

/// Turns an SDK failure of a call made with sealed keys into a message that says what to do.
fn explain<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &str,
    error: SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> anyhow::Error {
    explain_as(Caller::Sealed, operation, error)
}

/// What AWS said: its error code and message, from the parsed error or, when the SDK could not
/// parse the body (the local test endpoint's auth-layer errors), from the XML or JSON body.
#[derive(Debug, Default, PartialEq, Eq)]
struct AwsSaid {
    code: Option<String>,
    message: Option<String>,
}

impl AwsSaid {
    fn from_body(body: &str) -> AwsSaid {
        let xml = |tag: &str| {
            let open = format!("<{tag}>");
            let start = body.find(&open)? + open.len();
            let end = start + body[start..].find(&format!("</{tag}>"))?;
            Some(body[start..end].trim().to_owned()).filter(|text| !text.is_empty())
        };
        let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let json_field = |names: &[&str]| {
            names.iter().find_map(|name| {
                json.as_ref()?
                    .get(*name)?
                    .as_str()
                    .map(|text| text.rsplit('#').next().unwrap_or(text).to_owned())
            })
        };
        AwsSaid {
            code: xml("Code").or_else(|| json_field(&["__type", "code", "Code"])),
            message: xml("Message").or_else(|| json_field(&["message", "Message"])),
        }
    }
}

/// The advice that fits a refusal of `operation` with `code`, for `caller`.
fn advice(caller: Caller, operation: &str, code: &str) -> Option<String> {
    let assume = operation.starts_with("AssumeRole");
    Some(match (caller, code) {
        (Caller::Administrator, "InvalidClientTokenId" | "SignatureDoesNotMatch") => {
            "your own credentials (profile, SSO or environment) were refused: check them with \
             `aws sts get-caller-identity`"
                .to_owned()
        }
        (
            Caller::Administrator,
            "AccessDenied" | "AccessDeniedException" | "AuthorizationError",
        ) => {
            format!(
                "your own credentials may not call {operation}: this needs an administrator's \
                 IAM, SNS, EventBridge, S3 or CloudTrail rights (docs/aws-setup.md)"
            )
        }
        (Caller::Sealed, "InvalidClientTokenId") => "the sealed key is no longer valid in AWS \
             (deleted or deactivated): rotate it, or re-seal a valid key"
            .to_owned(),
        (Caller::Sealed, "SignatureDoesNotMatch") => "the sealed secret key does not match its \
             key id: re-seal the credential"
            .to_owned(),
        (Caller::Sealed, "AccessDenied") if assume => "check the role's trust policy (this user, \
             MFA, sts:SetSourceIdentity and sts:TagSession allowed) and the user's permission to \
             assume it (`breakglass aws-policy` prints both)"
            .to_owned(),
        (Caller::Sealed, "AccessDenied") => format!(
            "the break-glass user may not call {operation}: its policy must allow everything \
             breakglass does (`breakglass aws-policy` prints it)"
        ),
        (_, "ExpiredToken" | "RequestExpired") => {
            "the request or token expired: check this machine's clock".to_owned()
        }
        (_, "MultiFactorAuthentication" | "InvalidAuthenticationCode") if assume => {
            "the MFA code was refused: check the sealed MFA seed with `breakglass drill --aws`, \
             and this machine's clock"
                .to_owned()
        }
        _ => return None,
    })
}

/// An error and its causes on one line (the SDK's own text for its first layer says only
/// "dispatch failure").
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// Turns an SDK failure into a message that says what to do, classed as an AWS error (exit 6):
/// AWS's own code and message first, then advice that fits the call and whose credentials made
/// it.
fn explain_as<E: ProvideErrorMetadata + std::error::Error + 'static>(
    caller: Caller,
    operation: &str,
    error: SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> anyhow::Error {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "the AWS endpoint".into());
    let message = match &error {
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => format!(
            "{operation}: cannot reach {endpoint}: check the network, proxy and AWS_ENDPOINT_URL"
        ),
        SdkError::TimeoutError(_) => format!(
            "{operation}: {endpoint} did not answer in time: check the network, proxy and \
             AWS_ENDPOINT_URL"
        ),
        SdkError::DispatchFailure(_) if caller == Caller::Administrator => {
            // Failures before sending, such as no credentials in the default chain.
            format!(
                "{operation}: {}: this call uses your own administrator credentials (profile, \
                 SSO or environment), never the sealed ones: check them with \
                 `aws sts get-caller-identity`",
                causes(&error)
            )
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let body = service
                .raw()
                .body()
                .bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let from_body = AwsSaid::from_body(&body);
            let said = AwsSaid {
                code: service.err().code().map(str::to_owned).or(from_body.code),
                message: service
                    .err()
                    .message()
                    .map(str::to_owned)
                    .or(from_body.message),
            };
            let mut text = match (&said.code, &said.message) {
                (Some(code), Some(message)) => {
                    format!("{operation}: AWS refused it: {code}: {message} (HTTP {status})")
                }
                (Some(code), None) => {
                    format!("{operation}: AWS refused it: {code} (HTTP {status})")
                }
                (None, _) => format!("{operation}: AWS refused it (HTTP {status})"),
            };
            if let Some(advice) = said
                .code
                .as_deref()
                .and_then(|c| advice(caller, operation, c))
            {
                text.push_str("; ");
                text.push_str(&advice);
            }
            if matches!(
                said.code.as_deref(),
                Some("ExpiredToken" | "RequestExpired")
            ) {
                text.push_str(&format!(
                    " (server's HTTP Date: {})",
                    service.raw().headers().get("date").unwrap_or("unknown")
                ));
            }
            text
        }
        other => format!("{operation}: {}", causes(other)),
    };
    fail(Failure::Aws, message)
}

/// STS `AssumeRole` with the sealed long-term keys; `mfa_code` is the TOTP code, if any.
pub async fn assume_role(
    access_key_id: &str,
    secret_access_key: &SecretString,
    request: &AssumeRequest,
    mfa_code: Option<String>,
) -> anyhow::Result<Session> {
    let config = sdk_config(
        access_key_id,
        secret_access_key.expose_secret(),
        None,
        request.region.clone(),
    )
    .await;
    let sts = aws_sdk_sts::Client::new(&config);
    let mut call = sts
        .assume_role()
        .role_arn(&request.role_arn)
        .role_session_name(&request.session_name)
        .source_identity(&request.source_identity)
        .duration_seconds(request.duration_seconds)
        .set_policy(request.policy.clone())
        .set_external_id(request.external_id.clone());
    for (key, value) in &request.tags {
        call = call.tags(
            aws_sdk_sts::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| fail(Failure::Aws, format!("session tag {key}: {e}")))?,
        );
    }
    if let (Some(serial), Some(code)) = (&request.mfa_serial, mfa_code) {
        call = call.serial_number(serial).token_code(code);
    }
    let output = call.send().await.map_err(|e| explain("AssumeRole", e))?;
    session_from(&output)
}

/// The session an AssumeRole answer carries.
fn session_from(
    output: &aws_sdk_sts::operation::assume_role::AssumeRoleOutput,
) -> anyhow::Result<Session> {
    let credentials = output
        .credentials()
        .ok_or_else(|| fail(Failure::Aws, "AssumeRole returned no credentials"))?;
    Ok(Session {
        access_key_id: credentials.access_key_id().to_owned(),
        secret_access_key: SecretString::from(credentials.secret_access_key().to_owned()),
        session_token: SecretString::from(credentials.session_token().to_owned()),
        expiration: credentials
            .expiration()
            .fmt(DateTimeFormat::DateTime)
            .unwrap_or_default(),
        assumed_role_arn: output
            .assumed_role_user()
            .map(|u| u.arn().to_owned())
            .unwrap_or_default(),
    })
}

/// STS `GetCallerIdentity` with the given keys: the caller's ARN.
pub async fn caller_identity(
    access_key_id: &str,
    secret_access_key: &SecretString,
    session_token: Option<&SecretString>,
    region: Option<String>,
) -> anyhow::Result<String> {
    let config = sdk_config(
        access_key_id,
        secret_access_key.expose_secret(),
        session_token.map(|t| t.expose_secret().to_owned()),
        region,
    )
    .await;
    let output = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| explain("GetCallerIdentity", e))?;
    Ok(output.arn().unwrap_or_default().to_owned())
}

/// The serials of `user`'s MFA devices (IAM `ListMFADevices`), asked with the user's own key.
pub async fn mfa_devices(
    access_key_id: &str,
    secret_access_key: &SecretString,
    user: &str,
) -> anyhow::Result<Vec<String>> {
    let config = sdk_config(access_key_id, secret_access_key.expose_secret(), None, None).await;
    list_mfa_devices(&aws_sdk_iam::Client::new(&config), user).await
}

/// The serials of `user`'s MFA devices, every page of `ListMFADevices`.
async fn list_mfa_devices(iam: &aws_sdk_iam::Client, user: &str) -> anyhow::Result<Vec<String>> {
    let mut serials = Vec::new();
    let mut marker = None;
    loop {
        let page = iam
            .list_mfa_devices()
            .user_name(user)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| explain("ListMFADevices", e))?;
        serials.extend(
            page.mfa_devices()
                .iter()
                .map(|d| d.serial_number().to_owned()),
        );
        marker = page
            .marker()
            .map(str::to_owned)
            .filter(|_| page.is_truncated());
        if marker.is_none() {
            return Ok(serials);
        }
    }
}

/// STS `AssumeRole` with a session's credentials (role chaining into member accounts).
pub async fn assume_role_with_session(
    session: &Session,
    request: &AssumeRequest,
) -> anyhow::Result<Session> {
    let config = sdk_config(
        &session.access_key_id,
        session.secret_access_key.expose_secret(),
        Some(session.session_token.expose_secret().to_owned()),
        request.region.clone(),
    )
    .await;
    let output = aws_sdk_sts::Client::new(&config)
        .assume_role()
        .role_arn(&request.role_arn)
        .role_session_name(&request.session_name)
        .source_identity(&request.source_identity)
        .duration_seconds(request.duration_seconds)
        .send()
        .await
        .map_err(|e| explain("AssumeRole (chained)", e))?;
    session_from(&output)
}

/// The SDK configuration of the administrator running the command: the standard chain
/// (profile, SSO, environment), never a sealed key; `region` overrides the environment's.
pub async fn admin_config(region: Option<&str>) -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).http_client(https::sdk_http_client());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader.load().await
}

/// The name of the inline policy that revokes older sessions (as the IAM console names it).
pub const REVOKE_POLICY_NAME: &str = "AWSRevokeOlderSessions";

/// Writes the revoke policy on the role (and user) with the administrator's own credentials.
pub async fn revoke_older_sessions(
    role_name: &str,
    user: Option<&str>,
    policy: &str,
) -> anyhow::Result<()> {
    let config = admin_config(None).await;
    let iam = aws_sdk_iam::Client::new(&config);
    iam.put_role_policy()
        .role_name(role_name)
        .policy_name(REVOKE_POLICY_NAME)
        .policy_document(policy)
        .send()
        .await
        .map_err(|e| explain_as(Caller::Administrator, "PutRolePolicy", e))?;
    if let Some(user) = user {
        iam.put_user_policy()
            .user_name(user)
            .policy_name(REVOKE_POLICY_NAME)
            .policy_document(policy)
            .send()
            .await
            .map_err(|e| explain_as(Caller::Administrator, "PutUserPolicy", e))?;
    }
    Ok(())
}

/// An IAM access key as ListAccessKeys reports it.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    /// The access key id.
    pub id: String,
}

/// IAM calls for rotating the break-glass user's own key, made with that key.
pub struct OwnKeys {
    iam: aws_sdk_iam::Client,
}

impl OwnKeys {
    /// An IAM client with the given static keys.
    pub async fn new(access_key_id: &str, secret_access_key: &SecretString) -> OwnKeys {
        let config = sdk_config(access_key_id, secret_access_key.expose_secret(), None, None).await;
        OwnKeys {
            iam: aws_sdk_iam::Client::new(&config),
        }
    }

    /// The caller's access keys.
    pub async fn list(&self) -> anyhow::Result<Vec<KeyStatus>> {
        let output = self
            .iam
            .list_access_keys()
            .send()
            .await
            .map_err(|e| explain("ListAccessKeys", e))?;
        Ok(output
            .access_key_metadata()
            .iter()
            .map(|k| KeyStatus {
                id: k.access_key_id().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// A new key for the caller: its id and secret.
    pub async fn create(&self) -> anyhow::Result<(String, SecretString)> {
        let output = self
            .iam
            .create_access_key()
            .send()
            .await
            .map_err(|e| explain("CreateAccessKey", e))?;
        let key = output
            .access_key()
            .ok_or_else(|| fail(Failure::Aws, "CreateAccessKey returned no key"))?;
        Ok((
            key.access_key_id().to_owned(),
            SecretString::from(key.secret_access_key().to_owned()),
        ))
    }

    /// Deactivates, then deletes, a key of the caller.
    pub async fn retire(&self, id: &str) -> anyhow::Result<()> {
        self.iam
            .update_access_key()
            .access_key_id(id)
            .status(aws_sdk_iam::types::StatusType::Inactive)
            .send()
            .await
            .map_err(|e| explain("UpdateAccessKey", e))?;
        self.iam
            .delete_access_key()
            .access_key_id(id)
            .send()
            .await
            .map_err(|e| explain("DeleteAccessKey", e))?;
        Ok(())
    }
}

impl OwnKeys {
    /// A new virtual MFA device for `user`, made and enabled with the user's own key
    /// (`rotate --mfa`): see [`new_enabled_mfa_device`].
    pub async fn new_mfa_device(&self, user: &str) -> anyhow::Result<(String, SecretString)> {
        new_enabled_mfa_device(&self.iam, Caller::Sealed, user).await
    }

    /// The serials of `user`'s MFA devices: see [`mfa_devices`].
    pub async fn mfa_devices(&self, user: &str) -> anyhow::Result<Vec<String>> {
        list_mfa_devices(&self.iam, user).await
    }

    /// Deactivates and deletes an MFA device of `user`.
    pub async fn retire_mfa_device(&self, user: &str, serial: &str) -> anyhow::Result<()> {
        self.iam
            .deactivate_mfa_device()
            .user_name(user)
            .serial_number(serial)
            .send()
            .await
            .map_err(|e| explain("DeactivateMFADevice", e))?;
        self.iam
            .delete_virtual_mfa_device()
            .serial_number(serial)
            .send()
            .await
            .map_err(|e| explain("DeleteVirtualMFADevice", e))?;
        Ok(())
    }
}

/// A new virtual MFA device for `user`, enabled with two consecutive codes of its seed: its
/// serial (ARN) and base32 seed. Named `USER-breakglass-<8 hex digits>`, a fresh name every
/// time (two rotations may fall in the same second), inside the `mfa/USER-breakglass-*`
/// resource the user's policy allows. `aws-setup --apply` (administrator's credentials) and
/// `rotate --mfa` (the sealed key) both make their devices here.
async fn new_enabled_mfa_device(
    iam: &aws_sdk_iam::Client,
    caller: Caller,
    user: &str,
) -> anyhow::Result<(String, SecretString)> {
    let mut suffix = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix)
        .map_err(|_| vault_core::Error::from(vault_core::vault::VaultError::Random))?;
    let output = iam
        .create_virtual_mfa_device()
        .virtual_mfa_device_name(format!("{user}-breakglass-{}", hex::encode(suffix)))
        .send()
        .await
        .map_err(|e| explain_as(caller, "CreateVirtualMFADevice", e))?;
    let device = output
        .virtual_mfa_device()
        .ok_or_else(|| fail(Failure::Aws, "CreateVirtualMFADevice returned no device"))?;
    let seed = device
        .base32_string_seed()
        .ok_or_else(|| fail(Failure::Aws, "CreateVirtualMFADevice returned no seed"))?;
    let seed = SecretString::from(
        String::from_utf8(seed.as_ref().to_vec())
            .map_err(|_| fail(Failure::Aws, "the MFA seed is not text"))?,
    );
    let serial = device.serial_number().to_owned();
    let totp = vault_core::totp::Totp::from_base32(seed.expose_secret())?;
    let step = totp.step_at(vault_core::clock::now_unix());
    iam.enable_mfa_device()
        .user_name(user)
        .serial_number(&serial)
        .authentication_code1(totp.code_for_step(step))
        .authentication_code2(totp.code_for_step(step + 1))
        .send()
        .await
        .map_err(|e| explain_as(caller, "EnableMFADevice", e))?;
    Ok((serial, seed))
}

/// Proves a key works (GetCallerIdentity), retrying with backoff while IAM propagates it.
pub async fn prove(
    access_key_id: &str,
    secret_access_key: &SecretString,
) -> anyhow::Result<String> {
    let mut delay = std::time::Duration::from_millis(500);
    let mut last = None;
    for _ in 0..8 {
        match caller_identity(access_key_id, secret_access_key, None, None).await {
            Ok(arn) => return Ok(arn),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(10));
    }
    Err(last.unwrap_or_else(|| fail(Failure::Aws, "the new key could not be proven")))
}

#[cfg(test)]
mod tests {
    use hsm_testing::aws::LocalAws;

    use super::*;

    /// The foundation check: the real SDK reaches the local endpoint through `AWS_ENDPOINT_URL`
    /// alone, with static credentials the endpoint knows, while it authenticates requests.
    #[tokio::test]
    async fn local_endpoint_answers_get_caller_identity_through_aws_endpoint_url() {
        let aws = LocalAws::start();
        let key = aws.create_user_with_key("breakglass-user");
        aws.enable_auth();
        for (name, value) in aws.client_env() {
            // SAFETY: nextest runs this test alone in its own process, and no other thread
            // reads the environment while it is set.
            #[allow(unsafe_code)]
            unsafe {
                std::env::set_var(name, value)
            };
        }
        let arn = caller_identity(&key.id, &SecretString::from(key.secret.clone()), None, None)
            .await
            .expect("GetCallerIdentity");
        assert_eq!(arn, "arn:aws:iam::123456789012:user/breakglass-user");

        // With authentication on, an unknown key is refused, and the message says what to do.
        let refused = caller_identity(
            "AKIAIOSFODNN7EXAMPLE",
            &SecretString::from("not-a-real-secret".to_owned()),
            None,
            None,
        )
        .await
        .unwrap_err();
        assert!(refused.to_string().contains("no longer valid"), "{refused}");
        assert_eq!(crate::exit::classify(&refused), Failure::Aws);
    }
}
