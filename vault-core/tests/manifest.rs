//! The manifest's fingerprint and share commitments.

use secrecy::ExposeSecret;
use vault_core::manifest::{
    AuditKey, Custodian, Group, HsmEnrollment, Manifest, ManifestError, PinSource, Policy, Quorum,
    share_commitment,
};
use vault_core::quorum::{GroupSpec, Share, SplitParams, split};

fn manifest(shares: &[Share]) -> Manifest {
    let salt = [7u8; 32];
    Manifest {
        format: vault_core::manifest::FORMAT.into(),
        vault_id: "00112233445566778899aabbccddeeff".into(),
        created: "2026-11-24T12:00:00Z".into(),
        quorum: Quorum {
            group_threshold: 1,
            groups: vec![Group {
                name: "custodians".into(),
                threshold: 2,
                members: shares
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Custodian {
                        name: format!("custodian-{i}"),
                        commitment_salt: hex::encode(salt),
                        commitment: share_commitment("00112233445566778899aabbccddeeff", &salt, s),
                    })
                    .collect(),
            }],
            identifier: shares[0].info().identifier,
            iteration_exponent: 0,
            extendable: true,
            public_key: "11".repeat(32),
        },
        hsms: vec![HsmEnrollment {
            label: "token".into(),
            serial: "123".into(),
            manufacturer: "m".into(),
            model: "x".into(),
            module: "/usr/lib/softhsm/libsofthsm2.so".into(),
            softhsm_conf: None,
            seal_key_id: "aa".into(),
            seal_public_key: format!("04{}", "22".repeat(64)),
            pin: PinSource::Quorum,
            so_pin: None,
            pin_derivation: None,
        }],
        audit: AuditKey {
            token: "token".into(),
            key_id: "bb".into(),
            public_key: format!("04{}", "33".repeat(64)),
        },
        recovery: None,
        retired_audit_keys: Vec::new(),
        recipients: Default::default(),
        policy: Policy::default(),
    }
}

fn shares() -> Vec<Share> {
    let params = SplitParams {
        group_threshold: 1,
        groups: vec![GroupSpec {
            threshold: 2,
            count: 3,
        }],
        iteration_exponent: 0,
        extendable: true,
    };
    split(&[5u8; 32], b"", &params).unwrap().remove(0)
}

#[test]
fn fingerprint_covers_keys_and_custodians_but_not_policy_or_time() {
    let shares = shares();
    let base = manifest(&shares);
    let fp = base.fingerprint();
    let display = fp.display();
    assert_eq!(display.len(), 39, "{display}");
    assert_eq!(display.matches('-').count(), 7);
    type Change = Box<dyn Fn(&mut Manifest)>;
    let changes: Vec<Change> = vec![
        Box::new(|m| m.quorum.public_key = "12".repeat(32)),
        Box::new(|m| m.hsms[0].seal_public_key = format!("04{}", "23".repeat(64))),
        Box::new(|m| m.audit.public_key = format!("04{}", "34".repeat(64))),
        Box::new(|m| m.quorum.groups[0].members[1].name = "mallory".into()),
        Box::new(|m| m.quorum.groups[0].threshold = 1),
        Box::new(|m| m.quorum.groups[0].members[0].commitment = "00".repeat(32)),
        Box::new(|m| m.vault_id = "ff".repeat(16)),
        Box::new(|m| m.hsms.push(m.hsms[0].clone())),
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut changed = base.clone();
        change(&mut changed);
        assert_ne!(changed.fingerprint(), fp, "change {i}");
        assert!(matches!(
            changed.check_pinned(&display),
            Err(ManifestError::FingerprintMismatch { .. })
        ));
    }
    let mut same = base.clone();
    same.created = "2030-01-01T00:00:00Z".into();
    same.policy.drill_interval_days = 7;
    same.hsms[0].module = "/elsewhere.so".into();
    assert_eq!(same.fingerprint(), fp);
    same.check_pinned(&display.to_lowercase().replace('-', " "))
        .unwrap();
}

#[test]
fn a_custodian_checks_their_share_alone() {
    let shares = shares();
    let m = manifest(&shares);
    for (i, share) in shares.iter().enumerate() {
        let reparsed = Share::parse(share.to_mnemonic().expose_secret(), 1).unwrap();
        assert_eq!(
            m.verify_share(&reparsed).unwrap().name,
            format!("custodian-{i}")
        );
    }
    let foreign = self::shares();
    assert!(m.verify_share(&foreign[0]).is_none());
    let bytes = m.to_bytes();
    let parsed = Manifest::from_bytes(&bytes, std::path::Path::new("vault.json")).unwrap();
    assert_eq!(parsed, m);
    let broken = String::from_utf8(bytes)
        .unwrap()
        .replace("\"policy\"", "\"polcy\"");
    let err =
        Manifest::from_bytes(broken.as_bytes(), std::path::Path::new("vault.json")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("vault.json: not a valid breakglass manifest"),
        "{err}"
    );
}
