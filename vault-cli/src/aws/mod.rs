//! The AWS edge: the only place with tokio and the AWS SDK.
//!
//! Every client is built from static credentials that came out of a sealed envelope, never from
//! the default provider chain: no instance-metadata probing, no environment or profile keys.
//! The endpoint and region still come from the standard settings (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`), so tests and private endpoints work the way the AWS CLI does.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// The provider name the SDK reports for credentials breakglass supplies.
const PROVIDER_NAME: &str = "breakglass-sealed";

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
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).credentials_provider(credentials);
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    loader.load().await
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
        let config = sdk_config(&key.id, &key.secret, None, None).await;
        let sts = aws_sdk_sts::Client::new(&config);
        let identity = sts
            .get_caller_identity()
            .send()
            .await
            .expect("GetCallerIdentity");
        assert_eq!(
            identity.arn(),
            Some("arn:aws:iam::123456789012:user/breakglass-user")
        );

        // With authentication on, an unknown key is refused: the endpoint really checks.
        let bogus = sdk_config("AKIAIOSFODNN7EXAMPLE", "not-a-real-secret", None, None).await;
        let refused = aws_sdk_sts::Client::new(&bogus)
            .get_caller_identity()
            .send()
            .await;
        assert!(refused.is_err(), "an unknown key must be refused");
    }
}
