//! In-process benchmarks for docs/performance.md (run by scripts/bench, release build).
//!
//! Prints Markdown table rows: operation, iterations, time per operation, operations per
//! second, and where a raw floor exists, the ratio to it. The floor for the token is a bare
//! cryptoki program doing the same PKCS#11 calls (C_DeriveKey, C_GetAttributeValue,
//! C_DestroyObject) on the same token in the same run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use secrecy::{ExposeSecret, SecretString};
use vault_core::envelope::{self, Envelope, Kind, SealInput};
use vault_core::hpke::{self, Aead, DhOracle, Kem, P256SecretKey, X25519SecretKey};
use vault_core::hsm::{KeyPurpose, Module, PinRole, TokenSelector};
use vault_core::quorum::{self, GroupSpec, SplitParams};

fn time<T>(iterations: u32, mut f: impl FnMut() -> T) -> Duration {
    for _ in 0..iterations.min(10) {
        std::hint::black_box(f());
    }
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(f());
    }
    start.elapsed() / iterations
}

fn row(name: &str, iterations: u32, per_op: Duration, floor: Option<Duration>) {
    let micros = per_op.as_secs_f64() * 1e6;
    let ratio = floor.map_or("".to_owned(), |f| {
        format!("{:.2}×", per_op.as_secs_f64() / f.as_secs_f64())
    });
    println!(
        "| {name} | {iterations} | {micros:.1} µs | {:.0} | {ratio} |",
        1.0 / per_op.as_secs_f64()
    );
}

fn main() {
    println!("| operation | iterations | per operation | per second (one core) | ratio to floor |");
    println!("|---|---|---|---|---|");
    // SLIP-39.
    let secret = [7u8; 32];
    let params = SplitParams {
        group_threshold: 1,
        groups: vec![GroupSpec {
            threshold: 3,
            count: 5,
        }],
        iteration_exponent: 0,
        extendable: true,
    };
    row(
        "SLIP-39 split, 256-bit, 3 of 5, e=0 (PBKDF2 10k)",
        200,
        time(200, || quorum::split(&secret, b"", &params).unwrap()),
        None,
    );
    let shares = quorum::split(&secret, b"", &params).unwrap().remove(0);
    let mnemonics: Vec<String> = shares[..3]
        .iter()
        .map(|s| s.to_mnemonic().expose_secret().to_owned())
        .collect();
    row(
        "SLIP-39 combine, 3 shares (parse, checksum, digest, decrypt)",
        200,
        time(200, || quorum::combine_mnemonics(&mnemonics, b"").unwrap()),
        None,
    );
    let five: Vec<String> = shares
        .iter()
        .map(|s| s.to_mnemonic().expose_secret().to_owned())
        .collect();
    row(
        "SLIP-39 combine, 5 shares (all 10 subsets tried)",
        100,
        time(100, || quorum::combine_mnemonics(&five, b"").unwrap()),
        None,
    );

    // HPKE and envelope, software only.
    let x = X25519SecretKey::generate().unwrap();
    let p = P256SecretKey::generate().unwrap();
    let x_pk = x.public_key_bytes();
    let p_pk = p.public_key_bytes();
    row(
        "HPKE seal X25519 / AES-256-GCM, 32 bytes",
        2000,
        time(2000, || {
            hpke::seal(
                Kem::X25519HkdfSha256,
                Aead::Aes256Gcm,
                &x_pk,
                b"info",
                b"",
                &[1u8; 32],
            )
            .unwrap()
        }),
        None,
    );
    row(
        "HPKE seal P-256 / AES-256-GCM, 32 bytes",
        1000,
        time(1000, || {
            hpke::seal(
                Kem::P256HkdfSha256,
                Aead::Aes256Gcm,
                &p_pk,
                b"info",
                b"",
                &[1u8; 32],
            )
            .unwrap()
        }),
        None,
    );
    let sealed = hpke::seal(
        Kem::X25519HkdfSha256,
        Aead::Aes256Gcm,
        &x_pk,
        b"info",
        b"",
        &[1u8; 32],
    )
    .unwrap();
    row(
        "HPKE open X25519 (software)",
        2000,
        time(2000, || {
            hpke::open(
                Aead::Aes256Gcm,
                &x,
                &sealed.enc,
                b"info",
                b"",
                &sealed.ciphertext,
            )
            .unwrap()
        }),
        None,
    );
    let mut metadata = BTreeMap::new();
    metadata.insert(
        "role_arn".to_owned(),
        "arn:aws:iam::123456789012:role/emergency".to_owned(),
    );
    let hsm_keys = vec![p_pk.clone()];
    let input = SealInput {
        vault_id: "00112233445566778899aabbccddeeff",
        name: "prod",
        kind: Kind::Aws,
        created: "2026-11-24T12:00:00Z".into(),
        metadata,
        payload: &[9u8; 120],
        hsm_public_keys: &hsm_keys,
        quorum_public_key: &x_pk,
    };
    let seal_time = time(3000, || envelope::seal(&input).unwrap().to_bytes());
    row(
        "envelope seal (1 token + quorum stanza, 120-byte payload, to file bytes)",
        3000,
        seal_time,
        None,
    );
    let bytes = envelope::seal(&input).unwrap().to_bytes();
    let path = std::path::Path::new("prod.json");
    row(
        "envelope open, software keys (parse, canonical check, 2 HPKE opens, payload)",
        1000,
        time(1000, || {
            Envelope::from_bytes(&bytes, path)
                .unwrap()
                .open(&p, &x, path)
                .unwrap()
        }),
        None,
    );
    eprintln!(
        "seal throughput: {:.0} envelopes/s on one core",
        1.0 / seal_time.as_secs_f64()
    );

    // The token: breakglass's ECDH path against a bare cryptoki program doing the same calls.
    let hsm = hsm_testing::softhsm::SoftHsm::new();
    hsm.init_token(
        "bench",
        hsm_testing::softhsm::SO_PIN,
        hsm_testing::softhsm::USER_PIN,
    );
    let module = Module::open(&hsm_testing::softhsm::module_path()).unwrap();
    let token = module
        .find_token(&TokenSelector::Label("bench".into()))
        .unwrap();
    let session = module.open_session(&token).unwrap();
    session
        .login(
            PinRole::User,
            &SecretString::from(hsm_testing::softhsm::USER_PIN.to_owned()),
            false,
        )
        .unwrap();
    let key = session
        .generate_key_pair("bench", KeyPurpose::Seal)
        .unwrap();
    let peer = P256SecretKey::generate().unwrap().public_key_bytes();
    let ours = time(500, || session.ecdh(&key.id, &peer).unwrap());
    // The floor: raw cryptoki on a session of its own, private key handle found once.
    let pkcs11 = cryptoki::context::Pkcs11::new(hsm_testing::softhsm::module_path()).unwrap();
    let _ = pkcs11.initialize(cryptoki::context::CInitializeArgs::new(
        cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
    ));
    let slot = pkcs11.get_slots_with_initialized_token().unwrap()[0];
    let raw = pkcs11.open_rw_session(slot).unwrap();
    let _ = raw.login(
        cryptoki::session::UserType::User,
        Some(&SecretString::from(
            hsm_testing::softhsm::USER_PIN.to_owned(),
        )),
    );
    let private = raw
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(key.id.clone()),
        ])
        .unwrap()[0];
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::ValueLen(32.into()),
    ];
    let floor = time(500, || {
        let params = Ecdh1DeriveParams::new(EcKdf::null(), &peer);
        let derived = raw
            .derive_key(&Mechanism::Ecdh1Derive(params), private, &template)
            .unwrap();
        let value = raw
            .get_attributes(derived, &[AttributeType::Value])
            .unwrap();
        raw.destroy_object(derived).unwrap();
        value
    });
    row(
        "token ECDH, bare cryptoki (derive, read, destroy): the floor",
        500,
        floor,
        Some(floor),
    );
    row(
        "token ECDH through breakglass (point check, cached key, zeroizing)",
        500,
        ours,
        Some(floor),
    );
    let sealed = hpke::seal(
        Kem::P256HkdfSha256,
        Aead::Aes256Gcm,
        &key.public_key,
        b"info",
        b"",
        &[1u8; 32],
    )
    .unwrap();
    let oracle = session.dh_oracle(&key);
    row(
        "HPKE open with the token's key (ECDH in the token + key schedule + AEAD)",
        500,
        time(500, || {
            hpke::open(
                Aead::Aes256Gcm,
                &oracle,
                &sealed.enc,
                b"info",
                b"",
                &sealed.ciphertext,
            )
            .unwrap()
        }),
        Some(floor),
    );
    let _ = oracle.kem();
}
