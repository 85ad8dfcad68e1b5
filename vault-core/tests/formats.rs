//! The formats stay byte for byte what they were: a fixed manifest's bytes and fingerprint are
//! pinned here, so a change to the canonical encoder or to the manifest's types that moves one
//! byte fails this test (the envelope's hashes are pinned beside the envelope code).

use vault_core::manifest::{
    AuditKey, Custodian, Group, HsmEnrollment, Manifest, PinSource, Policy, Quorum, RetiredAuditKey,
};

fn manifest() -> Manifest {
    let group = |name: &str, threshold, members: &[&str]| Group {
        name: name.into(),
        threshold,
        members: members
            .iter()
            .enumerate()
            .map(|(i, m)| Custodian {
                name: (*m).into(),
                commitment_salt: format!("{i:02x}").repeat(32),
                commitment: format!("{:02x}", i + 16).repeat(32),
            })
            .collect(),
    };
    Manifest {
        format: vault_core::manifest::FORMAT.into(),
        vault_id: "00112233445566778899aabbccddeeff".into(),
        created: "2026-11-24T12:00:00Z".into(),
        quorum: Quorum {
            group_threshold: 1,
            groups: vec![group("custodians", 2, &["alice", "bob", "carol"])],
            identifier: 4242,
            iteration_exponent: 1,
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
            seal_key_id: "aa".repeat(16),
            seal_public_key: format!("04{}", "22".repeat(64)),
            pin: PinSource::Quorum,
            so_pin: Some(PinSource::Env {
                var: "SO_PIN".into(),
            }),
            pin_derivation: None,
        }],
        audit: AuditKey {
            token: "token".into(),
            key_id: "bb".repeat(16),
            public_key: format!("04{}", "33".repeat(64)),
        },
        recovery: Some(Quorum {
            group_threshold: 1,
            groups: vec![group("recovery", 3, &["alice", "bob", "carol", "dave"])],
            identifier: 99,
            iteration_exponent: 1,
            extendable: true,
            public_key: format!("04{}", "44".repeat(64)),
        }),
        retired_audit_keys: vec![RetiredAuditKey {
            token: "old".into(),
            public_key: format!("04{}", "55".repeat(64)),
            last_line: 7,
        }],
        recipients: Default::default(),
        policy: Policy::default(),
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

#[test]
fn a_fixed_manifest_keeps_its_bytes_and_its_fingerprint() {
    let manifest = manifest();
    let bytes = manifest.to_bytes();
    assert_eq!(
        sha256(&bytes),
        "4cf06636dec3c32f9e9f23b1b96feffaada27b27dbd656d71c546b45e95c1340"
    );
    assert_eq!(
        manifest.fingerprint().display(),
        "B7RI-T7HQ-OJSW-IHHB-VBNZ-DLST-YR2E-L65J"
    );
    let read = Manifest::from_bytes(&bytes, std::path::Path::new("vault.json")).unwrap();
    assert_eq!(read.to_bytes(), bytes);
    assert_eq!(
        read.fingerprint().display(),
        manifest.fingerprint().display()
    );
}
