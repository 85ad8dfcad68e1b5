//! The secret payloads of the credential kinds, and the inputs `seal` accepts for them.
//!
//! - `aws`: `{"access_key_id", "secret_access_key", "mfa_seed"?}`; the JSON that
//!   `aws iam create-access-key` prints is accepted as input too.
//! - `aws-root`: `{"email", "password", "mfa_seed"?}`.
//! - `secret`: any bytes (named fields as JSON, or a file).

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

/// A payload that is not what its kind needs. Never carries the payload.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Not JSON of the expected shape.
    #[error("the {kind} input is not valid: {reason}")]
    Invalid {
        /// The kind.
        kind: &'static str,
        /// What is missing or wrong (field names only).
        reason: String,
    },
}

/// An IAM user's access keys, with the MFA device's TOTP seed if it has one.
pub struct AwsKeys {
    /// The access key id (`AKIA...`): an identifier, shown in the audit log and CloudTrail.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// The virtual MFA device's base32 seed.
    pub mfa_seed: Option<SecretString>,
}

impl std::fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKeys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Ours {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    mfa_seed: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateAccessKey {
    access_key: CreateAccessKeyInner,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateAccessKeyInner {
    access_key_id: String,
    secret_access_key: String,
}

#[derive(Serialize)]
struct OursOut<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_seed: Option<&'a str>,
}

fn invalid(kind: &'static str, reason: impl Into<String>) -> CredentialError {
    CredentialError::Invalid {
        kind,
        reason: reason.into(),
    }
}

impl AwsKeys {
    /// Parses `seal` input: our payload form, or `aws iam create-access-key` output.
    pub fn from_input(bytes: &[u8]) -> Result<AwsKeys, CredentialError> {
        if let Ok(ours) = serde_json::from_slice::<Ours>(bytes) {
            return AwsKeys::checked(ours.access_key_id, ours.secret_access_key, ours.mfa_seed);
        }
        let created: CreateAccessKey = serde_json::from_slice(bytes).map_err(|_| {
            invalid(
                "aws",
                "expected the JSON of `aws iam create-access-key` ({\"AccessKey\": {\"AccessKeyId\", \"SecretAccessKey\"}}) or {\"access_key_id\", \"secret_access_key\", \"mfa_seed\"}",
            )
        })?;
        AwsKeys::checked(
            created.access_key.access_key_id,
            created.access_key.secret_access_key,
            None,
        )
    }

    fn checked(
        id: String,
        secret: String,
        seed: Option<String>,
    ) -> Result<AwsKeys, CredentialError> {
        if id.len() < 16 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "aws",
                "access_key_id does not look like an AWS access key id",
            ));
        }
        if secret.is_empty() {
            return Err(invalid("aws", "secret_access_key is empty"));
        }
        Ok(AwsKeys {
            access_key_id: id,
            secret_access_key: SecretString::from(secret),
            mfa_seed: seed.map(SecretString::from),
        })
    }

    /// The payload bytes sealed in the envelope.
    pub fn to_payload(&self) -> Zeroizing<Vec<u8>> {
        let fields = OursOut {
            access_key_id: &self.access_key_id,
            secret_access_key: self.secret_access_key.expose_secret(),
            mfa_seed: self.mfa_seed.as_ref().map(|s| s.expose_secret()),
        };
        // Into a buffer that leaves no copy behind as it grows (serde_json::to_vec's would).
        let mut out = crate::secret::SecretBuffer::with_capacity(256);
        // Plain strings always serialise, and writing into memory cannot fail.
        serde_json::to_writer(&mut out, &fields).expect("an aws payload serialises");
        out.into_zeroizing()
    }

    /// Reads an unsealed payload.
    pub fn from_payload(bytes: &[u8]) -> Result<AwsKeys, CredentialError> {
        let ours: Ours = serde_json::from_slice(bytes)
            .map_err(|_| invalid("aws", "the sealed payload is not an aws credential"))?;
        AwsKeys::checked(ours.access_key_id, ours.secret_access_key, ours.mfa_seed)
    }
}

/// Checks an `aws-root` input: `{"email", "password", "mfa_seed"?}`; returns it as the payload.
pub fn aws_root_payload(bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, CredentialError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Root {
        email: String,
        password: String,
        #[serde(default)]
        mfa_seed: Option<String>,
    }
    let root: Root = serde_json::from_slice(bytes).map_err(|_| {
        invalid(
            "aws-root",
            "expected {\"email\", \"password\", \"mfa_seed\"}",
        )
    })?;
    if !root.email.contains('@') || root.password.is_empty() {
        return Err(invalid("aws-root", "email or password is missing"));
    }
    let _ = root.mfa_seed;
    Ok(Zeroizing::new(bytes.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_access_key_output_is_accepted_and_debug_hides_the_secret() {
        let input = br#"{"AccessKey": {"UserName": "bg", "AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "Status": "Active",
            "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "CreateDate": "2026-11-24T12:00:00Z"}}"#;
        let keys = AwsKeys::from_input(input).unwrap();
        assert_eq!(keys.access_key_id, "AKIAIOSFODNN7EXAMPLE");
        assert!(!format!("{keys:?}").contains("wJalr"));
        let again = AwsKeys::from_payload(&keys.to_payload()).unwrap();
        assert_eq!(
            again.secret_access_key.expose_secret(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        );
        assert!(AwsKeys::from_input(b"{\"nope\": 1}").is_err());
    }
}
