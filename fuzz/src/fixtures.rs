//! The fixed keys and the valid files the fuzz targets start from: the same keys open what
//! the seed corpus holds, so a mutated file that still parses goes on through the checks that
//! follow parsing (HPKE, MACs, signatures, share checksums) instead of stopping at a missing key.
//!
//! Every key here is derived from a public label: test material, never used for a real vault.

use std::collections::BTreeMap;

use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use vault_core::audit::{Actor, AuditLog, CheckpointSigner, Event};
use vault_core::ceremony::{AuditHead, Contribution, LayoutGroup, Purpose, RekeyLayout, Request};
use vault_core::envelope::{self, Envelope, Kind, SealInput};
use vault_core::hpke::{P256SecretKey, X25519SecretKey};
use vault_core::manifest::{
    self, AuditKey, Custodian, Group, HsmEnrollment, Manifest, PinSource, Policy, Quorum,
};
use vault_core::quorum::{self, GroupSpec, Share, SplitParams};
use vault_core::secret::ExposeSecret;
use vault_core::trust::quorum_key::QuorumSigningKey;
use vault_core::trust::{AuthenticatedManifest, CertifiedManifest, Operator, Role};

/// The vault every fixture belongs to.
pub const VAULT_ID: &str = "f0220000000000000000000000000001";
/// The time every fixture was made.
pub const CREATED: &str = "2026-11-24T12:00:00Z";
/// The credential the envelope fixture holds.
pub const CREDENTIAL: &str = "prod-breakglass";
/// The quorum secret `Q` the share fixtures split (16 bytes).
pub const QUORUM_SECRET: &[u8; 16] = b"fuzz quorum Q 16";
/// An age identity for the share-file fixtures (made for these tests, public here).
pub const AGE_IDENTITY: &str =
    "AGE-SECRET-KEY-1P2Z4TM7SKXAMUT28MVKDPLP7M9ZJPCEVQWNQ7PR6EXGVPMGPW3USUSACXT";
/// The AWS key JSON as `aws iam create-access-key` prints it (AWS's documented example key).
pub const CREATE_ACCESS_KEY_JSON: &str = r#"{
    "AccessKey": {
        "UserName": "breakglass",
        "AccessKeyId": "AKIAIOSFODNN7EXAMPLE",
        "Status": "Active",
        "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "CreateDate": "2026-11-24T12:00:00+00:00"
    }
}
"#;

/// The token's sealing and audit key (one key plays both roles here).
pub fn token_key() -> P256SecretKey {
    P256SecretKey::derive_key_pair(b"breakglass-fuzz token").expect("a P-256 key derives")
}

/// The quorum key, `DeriveKeyPair(Q)` as the vault derives it.
pub fn quorum_key() -> X25519SecretKey {
    X25519SecretKey::derive_key_pair(QUORUM_SECRET)
}

/// The ceremony's transport key.
pub fn transport_key() -> X25519SecretKey {
    X25519SecretKey::derive_key_pair(b"breakglass-fuzz transport")
}

/// The age identity the share-file fixtures are encrypted to.
pub fn age_identity() -> age::x25519::Identity {
    AGE_IDENTITY
        .parse()
        .expect("the fixture age identity parses")
}

/// Signs audit checkpoints with [`token_key`].
pub struct Signer(EcdsaKeyPair);

impl Signer {
    /// The signer of [`token_key`].
    pub fn new() -> Signer {
        let key = token_key();
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            key.to_secret_bytes().expose_secret(),
            &key.public_key_bytes(),
            &ring::rand::SystemRandom::new(),
        )
        .expect("the token key is a valid ECDSA key");
        Signer(pair)
    }
}

impl Default for Signer {
    fn default() -> Signer {
        Signer::new()
    }
}

impl CheckpointSigner for Signer {
    fn key_id(&self) -> String {
        "01".into()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, vault_core::Error> {
        Ok(self
            .0
            .sign(&ring::rand::SystemRandom::new(), message)
            .expect("ECDSA signing")
            .as_ref()
            .to_vec())
    }
}

/// Shares of [`QUORUM_SECRET`]: 2 of 3 groups (2 of 3, 1 of 1, 3 of 5), iteration exponent 0
/// so that recombining stays cheap inside a fuzz loop.
pub fn shares() -> Vec<Vec<Share>> {
    let params = SplitParams {
        group_threshold: 2,
        groups: vec![
            GroupSpec {
                threshold: 2,
                count: 3,
            },
            GroupSpec {
                threshold: 1,
                count: 1,
            },
            GroupSpec {
                threshold: 3,
                count: 5,
            },
        ],
        iteration_exponent: 0,
        extendable: true,
    };
    quorum::split(QUORUM_SECRET, b"", &params).expect("the fixture layout splits")
}

/// A manifest for `shares` (custodians `g<group>m<member>`), with one token enrolled.
pub fn manifest(shares: &[Vec<Share>]) -> Manifest {
    let token = token_key();
    let info = shares[0][0].info();
    let groups = shares
        .iter()
        .enumerate()
        .map(|(g, members)| Group {
            name: format!("group-{g}"),
            threshold: members[0].info().member_threshold,
            members: members
                .iter()
                .enumerate()
                .map(|(m, share)| {
                    let salt = [g as u8 * 16 + m as u8; 32];
                    Custodian {
                        name: format!("g{g}m{m}"),
                        commitment_salt: hex::encode(salt),
                        commitment: manifest::share_commitment(VAULT_ID, &salt, share),
                    }
                })
                .collect(),
        })
        .collect();
    Manifest {
        format: manifest::FORMAT.into(),
        vault_id: VAULT_ID.into(),
        created: CREATED.into(),
        quorum: Quorum {
            group_threshold: info.group_threshold,
            groups,
            identifier: info.identifier,
            iteration_exponent: info.iteration_exponent,
            extendable: info.extendable,
            public_key: hex::encode(quorum_key().public_key_bytes()),
        },
        hsms: vec![HsmEnrollment {
            label: "breakglass-1".into(),
            serial: "0123456789abcdef".into(),
            manufacturer: "SoftHSM project".into(),
            model: "SoftHSM v2".into(),
            module: "/usr/lib/softhsm/libsofthsm2.so".into(),
            softhsm_conf: None,
            seal_key_id: "01".into(),
            seal_public_key: hex::encode(token.public_key_bytes()),
            pin: PinSource::Quorum,
            so_pin: Some(PinSource::Env {
                var: "BREAKGLASS_SO_PIN".into(),
            }),
            pin_derivation: None,
        }],
        audit: AuditKey {
            token: "breakglass-1".into(),
            key_id: "01".into(),
            public_key: hex::encode(token.public_key_bytes()),
        },
        recovery: None,
        retired_audit_keys: Vec::new(),
        recipients: Default::default(),
        policy: Policy::default(),
    }
}

/// `manifest` certified as `version` by the fixture quorum's signing key, with one operator
/// (a security officer and cloud administrator).
pub fn certified(manifest: Manifest, version: u64) -> AuthenticatedManifest {
    let quorum = QuorumSigningKey::derive(QUORUM_SECRET, VAULT_ID).expect("the quorum signing key");
    let operator = QuorumSigningKey::derive(b"fuzz operator key", VAULT_ID)
        .expect("an operator key")
        .public_key()
        .to_hex();
    CertifiedManifest::certify(
        manifest,
        version,
        vec![Operator {
            name: "olivia".into(),
            roles: vec![Role::SecurityOfficer, Role::CloudAdministrator],
            public_key: operator,
        }],
        &quorum,
    )
    .expect("the fixture manifest certifies")
}

/// An `aws` envelope sealed to [`token_key`] and [`quorum_key`].
pub fn envelope() -> Envelope {
    let mut metadata = BTreeMap::new();
    metadata.insert("account".to_owned(), "123456789012".to_owned());
    metadata.insert(
        "role_arn".to_owned(),
        "arn:aws:iam::123456789012:role/emergency".to_owned(),
    );
    let keys = vault_core::credential::AwsKeys::from_input(CREATE_ACCESS_KEY_JSON.as_bytes())
        .expect("the fixture AWS key JSON parses");
    envelope::seal(&SealInput {
        vault_id: VAULT_ID,
        name: CREDENTIAL,
        kind: Kind::Aws,
        created: CREATED.into(),
        metadata,
        payload: &keys.to_payload(),
        hsm_public_keys: &[token_key().public_key_bytes()],
        quorum_public_key: &quorum_key().public_key_bytes(),
    })
    .expect("the fixture envelope seals")
}

/// A rekey ceremony request to [`transport_key`] (fixed fields, so its hash is fixed too).
pub fn request() -> Request {
    let member = |name: &str| name.to_owned();
    Request {
        format: vault_core::ceremony::REQUEST_FORMAT.into(),
        id: "c0ffee0000000001".into(),
        vault_id: VAULT_ID.into(),
        fingerprint: "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH".into(),
        purpose: Purpose::Rekey(RekeyLayout {
            group_threshold: 1,
            groups: vec![LayoutGroup {
                name: "custodians".into(),
                threshold: 2,
                members: vec![member("g0m0"), member("g0m1"), member("frank")],
            }],
            recovery: None,
        }),
        reason: "custodian g0m2 left".into(),
        requester: "alice@ops".into(),
        created: CREATED.into(),
        expires: "2099-01-01T00:00:00Z".into(),
        audit_head: AuditHead {
            seq: 3,
            hash: "ab".repeat(32),
        },
        transport_public_key: hex::encode(transport_key().public_key_bytes()),
    }
}

/// A contribution of `share` to [`request`] by custodian `name`.
pub fn contribution(name: &str, share: &Share) -> Contribution {
    Contribution::seal(&request(), name, share.to_mnemonic().expose_secret())
        .expect("the fixture contribution seals")
}

/// An audit log of a few events and a checkpoint signed by [`token_key`], as file bytes.
pub fn audit_log() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::new(&path, VAULT_ID);
    let actor = Actor {
        user: "alice".into(),
        host: "ops".into(),
    };
    let signer = Signer::new();
    log.append(Event::new("init"), &actor, CREATED)
        .expect("append");
    log.append_checkpoint(&signer, &actor, CREATED)
        .expect("checkpoint");
    let mut seal = Event::new("seal").detail("access_key_id", "AKIAIOSFODNN7EXAMPLE");
    seal.credential = Some(CREDENTIAL.into());
    log.append(seal, &actor, CREATED).expect("append");
    let mut unseal = Event::new("unseal");
    unseal.credential = Some(CREDENTIAL.into());
    unseal.custodians = vec!["g0m0".into(), "g2m1".into()];
    log.append(unseal, &actor, CREATED).expect("append");
    log.append_checkpoint(&signer, &actor, CREATED)
        .expect("checkpoint");
    std::fs::read(&path).expect("the log reads back")
}

/// A rekey journal (`rekey.json`) from `previous` (certified) to `next`, as the vault writes
/// it.
pub fn rekey_journal(previous: &AuthenticatedManifest, next: &Manifest) -> Vec<u8> {
    let journal = serde_json::json!({
        "previous": String::from_utf8_lossy(&previous.document().to_bytes()),
        "manifest": String::from_utf8_lossy(&next.to_bytes()),
        "pins_changed": ["0123456789abcdef:user"],
        "custodians": ["g0m0", "g0m1"],
    });
    let mut bytes = serde_json::to_vec_pretty(&journal).expect("JSON");
    bytes.push(b'\n');
    bytes
}

/// A share file as `init --shares-dir` writes it (comments, then the words).
pub fn share_file(custodian: &str, share: &Share) -> String {
    format!(
        "# breakglass share of custodian {custodian}\n# vault {VAULT_ID}\n{}\n",
        share.to_mnemonic().expose_secret()
    )
}

/// A share file encrypted to [`age_identity`], armored, as `init --recipient` writes it.
pub fn age_share_file(custodian: &str, share: &Share) -> String {
    age::encrypt_and_armor(
        &age_identity().to_public(),
        share_file(custodian, share).as_bytes(),
    )
    .expect("age encryption")
}
