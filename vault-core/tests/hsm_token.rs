//! The PKCS#11 layer against a real token (SoftHSM by default; any module through
//! `BREAKGLASS_TEST_PKCS11_MODULE`). Each test is its own process with its own token directory.

use cryptoki::object::{Attribute, AttributeType};
use hsm_testing::softhsm::{self, SO_PIN, SoftHsm, USER_PIN};
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use secrecy::{ExposeSecret, SecretString};
use vault_core::hpke::{DhOracle, Kem};
use vault_core::hsm::{
    HsmError, KeyPurpose, LoginWarning, Module, PinRole, PinState, TokenSelector,
};

const LABEL: &str = "bg-test";

fn pin(value: &str) -> SecretString {
    SecretString::from(value.to_owned())
}

/// A fresh token, a loaded module, and the token found by label.
fn setup() -> (SoftHsm, Module) {
    let hsm = SoftHsm::new();
    hsm.init_token(LABEL, SO_PIN, USER_PIN);
    let module = Module::open(&softhsm::module_path()).expect("module loads");
    (hsm, module)
}

#[test]
fn token_is_found_by_label_and_by_serial_and_a_missing_one_is_named() {
    let (_hsm, module) = setup();
    let token = module
        .find_token(&TokenSelector::Label(LABEL.into()))
        .expect("by label");
    let serial = token.description().serial.clone();
    assert!(!serial.is_empty());
    let again = module
        .find_token(&TokenSelector::Serial(serial))
        .expect("by serial");
    assert_eq!(again.description(), token.description());

    let err = module
        .find_token(&TokenSelector::Label("nope".into()))
        .expect_err("no such token");
    let message = err.to_string();
    assert!(matches!(err, HsmError::TokenNotFound { .. }));
    assert!(
        message.contains("\"nope\"") && message.contains(LABEL),
        "{message}"
    );
}

#[test]
fn seal_key_is_generated_inside_and_never_leaves_the_token() {
    let (_hsm, module) = setup();
    let token = module
        .find_token(&TokenSelector::Label(LABEL.into()))
        .unwrap();
    let session = module.open_session(&token).unwrap();
    session.login(PinRole::User, &pin(USER_PIN), false).unwrap();
    let key = session.generate_key_pair("v1", KeyPurpose::Seal).unwrap();
    assert_eq!(key.label, "breakglass:v1:seal");
    assert_eq!(key.id.len(), 16);
    assert_eq!(key.public_key.len(), 65);
    assert_eq!(key.public_key[0], 0x04);
    assert_eq!(session.public_key(&key.id).unwrap(), key.public_key);
    assert_eq!(
        session.find_key_by_label("breakglass:v1:seal").unwrap(),
        key
    );

    let attributes = session
        .private_key_attributes(
            &key.id,
            &[
                AttributeType::Extractable,
                AttributeType::Sensitive,
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Derive,
                AttributeType::Sign,
            ],
        )
        .unwrap();
    for attribute in &attributes {
        match attribute {
            Attribute::Extractable(v) => assert!(!v, "CKA_EXTRACTABLE must be false"),
            Attribute::Sensitive(v) => assert!(v, "CKA_SENSITIVE must be true"),
            Attribute::Token(v) => assert!(v, "CKA_TOKEN must be true"),
            Attribute::Private(v) => assert!(v, "CKA_PRIVATE must be true"),
            Attribute::Derive(v) => assert!(v, "the sealing key derives"),
            Attribute::Sign(v) => assert!(!v, "the sealing key does not sign"),
            other => panic!("unexpected attribute {other:?}"),
        }
    }
    assert_eq!(attributes.len(), 6);

    // The value itself cannot be read: the token answers CKR_ATTRIBUTE_SENSITIVE, which
    // cryptoki reports by leaving the attribute out.
    let read = session
        .private_key_attributes(
            &key.id,
            &[AttributeType::Value, AttributeType::NeverExtractable],
        )
        .unwrap_or_default();
    assert!(
        !read.iter().any(|a| matches!(a, Attribute::Value(_))),
        "CKA_VALUE of the private key must not be readable"
    );
    assert!(
        read.contains(&Attribute::NeverExtractable(true)),
        "{read:?}"
    );
    // And the audit role is not granted: signing with the sealing key fails.
    assert!(session.sign(&key.id, b"x").is_err());
}

#[test]
fn token_ecdh_equals_software_ecdh_and_serves_as_hpke_oracle() {
    let (_hsm, module) = setup();
    let token = module
        .find_token(&TokenSelector::Label(LABEL.into()))
        .unwrap();
    let session = module.open_session(&token).unwrap();
    session.login(PinRole::User, &pin(USER_PIN), false).unwrap();
    let key = session.generate_key_pair("v1", KeyPurpose::Seal).unwrap();

    let rng = ring::rand::SystemRandom::new();
    let ephemeral =
        ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng).unwrap();
    let ephemeral_public = ephemeral.compute_public_key().unwrap().as_ref().to_vec();
    let token_public = ring::agreement::UnparsedPublicKey::new(
        &ring::agreement::ECDH_P256,
        key.public_key.clone(),
    );
    let software =
        ring::agreement::agree_ephemeral(ephemeral, &token_public, |s| s.to_vec()).unwrap();

    let from_token = session.ecdh(&key.id, &ephemeral_public).unwrap();
    assert_eq!(from_token.expose_secret(), software.as_slice());

    let oracle = session.dh_oracle(&key);
    assert_eq!(oracle.kem(), Kem::P256HkdfSha256);
    assert_eq!(oracle.public_key(), key.public_key);
    let via_oracle = oracle.dh(&ephemeral_public).unwrap();
    assert_eq!(via_oracle.expose_secret(), software.as_slice());

    // A peer that is not a P-256 point is refused before it reaches the token.
    let mut bad = ephemeral_public.clone();
    bad[64] ^= 1;
    assert!(matches!(
        session.ecdh(&key.id, &bad),
        Err(HsmError::BadPublicKey { .. })
    ));
}

#[test]
fn audit_key_signatures_verify_with_ring() {
    let (_hsm, module) = setup();
    let token = module
        .find_token(&TokenSelector::Label(LABEL.into()))
        .unwrap();
    let session = module.open_session(&token).unwrap();
    session.login(PinRole::User, &pin(USER_PIN), false).unwrap();
    let key = session.generate_key_pair("v1", KeyPurpose::Audit).unwrap();
    assert_eq!(key.label, "breakglass:v1:audit");
    let message = b"breakglass audit checkpoint";
    let signature = session.sign(&key.id, message).unwrap();
    assert_eq!(signature.len(), 64);
    let verifier = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key.public_key);
    verifier
        .verify(message, &signature)
        .expect("signature verifies");
    assert!(verifier.verify(b"another message", &signature).is_err());
    // The audit key cannot derive.
    let other = session.generate_key_pair("v1", KeyPurpose::Seal).unwrap();
    assert!(session.ecdh(&key.id, &other.public_key).is_err());
}

#[test]
fn wrong_pin_is_a_clear_error_naming_the_token_and_never_the_pin() {
    let (_hsm, module) = setup();
    let token = module
        .find_token(&TokenSelector::Label(LABEL.into()))
        .unwrap();
    let session = module.open_session(&token).unwrap();
    let err = session
        .login(PinRole::User, &pin("wrong-pin-0000"), false)
        .expect_err("wrong PIN");
    assert!(
        matches!(
            err,
            HsmError::PinIncorrect {
                role: PinRole::User,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(LABEL), "{message}");
    assert!(!message.contains("wrong-pin-0000"));
    assert!(!format!("{err:?}").contains("wrong-pin-0000"));
    // The right PIN still works afterwards.
    session.login(PinRole::User, &pin(USER_PIN), false).unwrap();
}

/// SoftHSM keeps no retry counter (it never sets the final-try or locked flags), so the guard is
/// checked on the flags themselves; the flags are read from the token before every login.
#[test]
fn login_guard_refuses_a_locked_pin_and_a_final_try_unless_forced() {
    let locked = PinState {
        user_locked: true,
        ..PinState::default()
    };
    assert!(matches!(
        locked.check_login("t", PinRole::User, true),
        Err(HsmError::PinLocked { .. })
    ));
    let final_try = PinState {
        user_final_try: true,
        ..PinState::default()
    };
    let err = final_try
        .check_login("t", PinRole::User, false)
        .unwrap_err();
    assert!(matches!(err, HsmError::PinFinalTry { .. }));
    assert!(err.to_string().contains("final try"));
    assert_eq!(
        final_try.check_login("t", PinRole::User, true).unwrap(),
        Some(LoginWarning::FinalTryForced)
    );
    let low = PinState {
        user_count_low: true,
        ..PinState::default()
    };
    assert_eq!(
        low.check_login("t", PinRole::User, false).unwrap(),
        Some(LoginWarning::CountLow)
    );
    // The SO flags guard the SO login, not the user's.
    let so_final = PinState {
        so_final_try: true,
        ..PinState::default()
    };
    assert_eq!(
        so_final.check_login("t", PinRole::User, false).unwrap(),
        None
    );
    assert!(
        so_final
            .check_login("t", PinRole::SecurityOfficer, false)
            .is_err()
    );

    // And the real token's flags are what the session reads.
    let (_hsm, module) = setup();
    let token = module
        .find_token(&TokenSelector::Label(LABEL.into()))
        .unwrap();
    let session = module.open_session(&token).unwrap();
    let state = session.pin_state().unwrap();
    assert!(state.user_initialized && !state.user_locked && !state.user_final_try);
}

#[test]
fn token_is_initialised_and_pins_set_and_changed_through_the_module() {
    let _hsm = SoftHsm::new();
    let module = Module::open(&softhsm::module_path()).unwrap();
    let token = module.init_token("fresh-token", &pin(SO_PIN)).unwrap();
    assert_eq!(token.label(), "fresh-token");
    {
        let session = module.open_session(&token).unwrap();
        session
            .login(PinRole::SecurityOfficer, &pin(SO_PIN), false)
            .unwrap();
        session.init_user_pin(&pin(USER_PIN)).unwrap();
    }
    {
        let session = module.open_session(&token).unwrap();
        session.login(PinRole::User, &pin(USER_PIN), false).unwrap();
        session
            .change_pin(&pin(USER_PIN), &pin("new-user-pin-1"))
            .unwrap();
    }
    let session = module.open_session(&token).unwrap();
    assert!(session.login(PinRole::User, &pin(USER_PIN), false).is_err());
    session
        .login(PinRole::User, &pin("new-user-pin-1"), false)
        .unwrap();
}

#[test]
fn missing_key_is_named_by_id() {
    let (_hsm, module) = setup();
    let token = module
        .find_token(&TokenSelector::Label(LABEL.into()))
        .unwrap();
    let session = module.open_session(&token).unwrap();
    session.login(PinRole::User, &pin(USER_PIN), false).unwrap();
    let err = session.ecdh(&[0xab; 16], &[4u8; 65]).unwrap_err();
    // the peer check comes first; use a real point
    let key = session.generate_key_pair("v1", KeyPurpose::Seal).unwrap();
    let err2 = session.ecdh(&[0xab; 16], &key.public_key).unwrap_err();
    assert!(matches!(err, HsmError::BadPublicKey { .. }));
    assert!(matches!(err2, HsmError::KeyNotFound { .. }));
    assert!(err2.to_string().contains(&"ab".repeat(16)));
}
