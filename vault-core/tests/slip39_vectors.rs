//! The official SLIP-39 test vectors (passphrase "TREZOR"): the valid ones give the master
//! secret, the invalid ones fail with the error class their description names.

use secrecy::ExposeSecret;
use vault_core::quorum::{QuorumError, combine_mnemonics};

/// The error class each invalid vector must produce, by the words of its description.
fn expected_class(description: &str) -> fn(&QuorumError) -> bool {
    let d = description.to_lowercase();
    if d.contains("invalid checksum") {
        |e| matches!(e, QuorumError::Checksum { .. })
    } else if d.contains("invalid padding") {
        |e| matches!(e, QuorumError::Padding { .. })
    } else if d.contains("different identifiers") {
        |e| matches!(e, QuorumError::Mismatch { field, .. } if field.starts_with("identifier"))
    } else if d.contains("different iteration exponents") {
        |e| {
            matches!(
                e,
                QuorumError::Mismatch {
                    field: "iteration exponent",
                    ..
                }
            )
        }
    } else if d.contains("mismatching group thresholds") {
        |e| {
            matches!(
                e,
                QuorumError::Mismatch {
                    field: "group threshold",
                    ..
                }
            )
        }
    } else if d.contains("mismatching group counts") {
        |e| {
            matches!(
                e,
                QuorumError::Mismatch {
                    field: "group count",
                    ..
                }
            )
        }
    } else if d.contains("greater group threshold than group counts") {
        |e| matches!(e, QuorumError::GroupThresholdExceedsCount { .. })
    } else if d.contains("duplicate member indices") {
        |e| matches!(e, QuorumError::DuplicateMemberIndex { .. })
    } else if d.contains("mismatching member thresholds") {
        |e| {
            matches!(
                e,
                QuorumError::Mismatch {
                    field: "member threshold",
                    ..
                }
            )
        }
    } else if d.contains("invalid digest") {
        |e| matches!(e, QuorumError::Digest { .. })
    } else if d.contains("insufficient number of") || d.contains("basic sharing") {
        |e| matches!(e, QuorumError::NotEnoughShares { .. })
    } else if d.contains("insufficient length") {
        |e| matches!(e, QuorumError::TooFewWords { .. })
    } else if d.contains("invalid master secret length") {
        |e| {
            matches!(
                e,
                QuorumError::InvalidSecretLength { .. } | QuorumError::InvalidLength { .. }
            )
        }
    } else {
        panic!("no expected error class for vector {description:?}")
    }
}

#[test]
fn slip39_vectors_all() {
    let path = hsm_testing::tools::vectors_dir().join("slip39-vectors.json");
    let vectors: Vec<(String, Vec<String>, String, String)> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(vectors.len(), 45);
    let (mut valid, mut invalid) = (0, 0);
    for (description, mnemonics, master_secret, _xprv) in &vectors {
        let result = combine_mnemonics(mnemonics, b"TREZOR");
        if master_secret.is_empty() {
            let error = match result {
                Ok(_) => panic!("{description}: accepted an invalid set"),
                Err(error) => error,
            };
            assert!(
                expected_class(description)(&error),
                "{description}: wrong error {error:?}"
            );
            invalid += 1;
        } else {
            let combined = result.unwrap_or_else(|e| panic!("{description}: {e}"));
            assert_eq!(
                hex::encode(combined.secret.expose_secret()),
                *master_secret,
                "{description}"
            );
            assert!(combined.rejected.is_empty(), "{description}");
            valid += 1;
        }
    }
    assert_eq!((valid, invalid), (15, 30));
}
