//! The RFC 9180 P-256 vector's recipient key imported into a token: the token's ECDH, through the
//! same decapsulation path as software keys, must give the vector's shared secret and open the
//! vector's first ciphertext.

use hsm_testing::softhsm::{self, SO_PIN, SoftHsm, USER_PIN};
use secrecy::{ExposeSecret, SecretString};
use vault_core::hpke::{self, Aead};
use vault_core::hsm::{KeyRef, Module, PinRole, TokenSelector};

#[test]
fn token_decapsulates_the_rfc9180_p256_vectors() {
    let path = hsm_testing::tools::vectors_dir().join("hpke-rfc9180-base.json");
    let vectors: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let vector = vectors
        .iter()
        .find(|v| v["kem_id"] == "16")
        .expect("the P-256 vector");
    let (info, keys) = hsm_testing::tools::hpke_vector_keys(vector);
    let hex = |name: &str| hex::decode(vector[name].as_str().unwrap()).unwrap();

    let hsm = SoftHsm::new();
    hsm.init_token("vector-token", SO_PIN, USER_PIN);
    let id = b"rfc9180-a3".to_vec();
    softhsm::import_p256_private_key("vector-token", USER_PIN, &id, &keys["skRm"]);

    let module = Module::open(&softhsm::module_path()).unwrap();
    let token = module
        .find_token(&TokenSelector::Label("vector-token".into()))
        .unwrap();
    let session = module.open_session(&token).unwrap();
    session
        .login(
            PinRole::User,
            &SecretString::from(USER_PIN.to_owned()),
            false,
        )
        .unwrap();
    let key = KeyRef {
        id,
        label: "imported".into(),
        public_key: keys["pkRm"].clone(),
    };
    let oracle = session.dh_oracle(&key);
    let shared = hpke::kem_shared_secret(&oracle, &hex("enc")).unwrap();
    assert_eq!(shared.expose_secret(), hex("shared_secret").as_slice());

    let first = &vector["encryptions"][0];
    assert_eq!(first["sequence_number"], "0");
    let field = |name: &str| hex::decode(first[name].as_str().unwrap()).unwrap();
    let opened = hpke::open(
        Aead::Aes128Gcm,
        &oracle,
        &hex("enc"),
        &info,
        &field("aad"),
        &field("ct"),
    )
    .unwrap();
    assert_eq!(opened.expose_secret(), field("pt").as_slice());
}
