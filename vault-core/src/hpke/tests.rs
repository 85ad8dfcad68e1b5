//! Known answers (RFC 9180 appendix vectors, when present) and internal properties.

use super::*;

fn hex_field(vector: &serde_json::Value, name: &str) -> Vec<u8> {
    hex::decode(
        vector[name]
            .as_str()
            .unwrap_or_else(|| panic!("vector field {name}")),
    )
    .unwrap_or_else(|_| panic!("vector field {name} is hex"))
}

/// Per suite: DeriveKeyPair from ikmE/ikmR, Encap with the vector's ephemeral key, Decap, the
/// shared secret, the key schedule's outputs and six encryptions (sequence numbers 0, 1, 2, 4,
/// 255, 256). The token side of the P-256 vector is in `tests/hpke_token.rs`.
#[test]
fn hpke_rfc9180_vectors_key_schedule_and_encryptions() {
    let path = hsm_testing::tools::vectors_dir().join("hpke-rfc9180-base.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let vectors: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut suites = Vec::new();
    for vector in &vectors {
        let kem = match vector["kem_id"].as_str().unwrap() {
            "16" => Kem::P256HkdfSha256,
            "32" => Kem::X25519HkdfSha256,
            other => panic!("unexpected KEM {other}"),
        };
        assert_eq!(vector["mode"], "0", "base mode only");
        assert_eq!(vector["kdf_id"], "1");
        let aead = match vector["aead_id"].as_str().unwrap() {
            "1" => Aead::Aes128Gcm,
            "2" => Aead::Aes256Gcm,
            other => panic!("unexpected AEAD {other}"),
        };
        let enc = hex_field(vector, "enc");
        assert_eq!(enc.len(), kem.public_key_len());
        validate_public_key(kem, &enc).expect("the vector's enc is a valid key");
        let (info, keys) = hsm_testing::tools::hpke_vector_keys(vector);
        let shared_secret = hex_field(vector, "shared_secret");
        check_vector_kem(kem, aead, &keys, &enc, &shared_secret, &info);
        let context = key_schedule(kem, aead, &shared_secret, &info);
        assert_eq!(
            context.ks_context,
            hex_field(vector, "key_schedule_context")
        );
        assert_eq!(context.secret, hex_field(vector, "secret"));
        assert_eq!(*context.key, hex_field(vector, "key"));
        assert_eq!(context.base_nonce.to_vec(), hex_field(vector, "base_nonce"));
        assert_eq!(
            *context.exporter_secret,
            hex_field(vector, "exporter_secret")
        );
        let encryptions = vector["encryptions"].as_array().unwrap();
        assert_eq!(encryptions.len(), 6);
        for encryption in encryptions {
            let sequence: u64 = encryption["sequence_number"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(
                context.nonce(sequence).as_ref().to_vec(),
                hex_field(encryption, "nonce")
            );
            let (pt, aad, ct) = (
                hex_field(encryption, "pt"),
                hex_field(encryption, "aad"),
                hex_field(encryption, "ct"),
            );
            assert_eq!(
                context.seal(sequence, &aad, &pt).unwrap(),
                ct,
                "seq {sequence}"
            );
            assert_eq!(
                context.open(sequence, &aad, &ct).unwrap().expose_secret(),
                pt.as_slice()
            );
        }
        suites.push(kem);
    }
    assert!(suites.contains(&Kem::P256HkdfSha256) && suites.contains(&Kem::X25519HkdfSha256));
}

/// DeriveKeyPair, Encap with the vector's ephemeral key, and Decap, against the vector.
fn check_vector_kem(
    kem: Kem,
    aead: Aead,
    keys: &std::collections::HashMap<String, Vec<u8>>,
    enc: &[u8],
    shared_secret: &[u8],
    info: &[u8],
) {
    let (sender, recipient): (SenderKey, Box<dyn DhOracle>) = match kem {
        Kem::X25519HkdfSha256 => {
            let e = X25519SecretKey::derive_key_pair(&keys["ikmE"]);
            let r = X25519SecretKey::derive_key_pair(&keys["ikmR"]);
            assert_eq!(e.to_secret_bytes().expose_secret(), keys["skEm"].as_slice());
            assert_eq!(r.to_secret_bytes().expose_secret(), keys["skRm"].as_slice());
            (SenderKey::X25519(e.secret), Box::new(r))
        }
        _ => {
            let e = P256SecretKey::derive_key_pair(&keys["ikmE"]).unwrap();
            let r = P256SecretKey::derive_key_pair(&keys["ikmR"]).unwrap();
            assert_eq!(e.to_secret_bytes().expose_secret(), keys["skEm"].as_slice());
            assert_eq!(r.to_secret_bytes().expose_secret(), keys["skRm"].as_slice());
            (SenderKey::P256(e.secret), Box::new(r))
        }
    };
    assert_eq!(sender.public_key(), keys["pkEm"]);
    assert_eq!(sender.public_key(), enc);
    assert_eq!(recipient.public_key(), keys["pkRm"]);
    let decapsulated = kem_shared_secret(recipient.as_ref(), enc).unwrap();
    assert_eq!(decapsulated.expose_secret(), shared_secret);
    let sealed =
        seal_with_ephemeral(&sender, kem, aead, &keys["pkRm"], info, b"aad", b"pt").unwrap();
    assert_eq!(sealed.enc, enc);
    let opened = open(
        aead,
        recipient.as_ref(),
        &sealed.enc,
        info,
        b"aad",
        &sealed.ciphertext,
    )
    .unwrap();
    assert_eq!(opened.expose_secret(), b"pt");
}

#[test]
fn round_trip_both_kems_both_aeads() {
    let x = X25519SecretKey::generate().unwrap();
    let p = P256SecretKey::generate().unwrap();
    let recipients: [&dyn DhOracle; 2] = [&x, &p];
    for recipient in recipients {
        for aead in [Aead::Aes128Gcm, Aead::Aes256Gcm] {
            let sealed = seal(
                recipient.kem(),
                aead,
                &recipient.public_key(),
                b"info",
                b"aad",
                b"file key",
            )
            .unwrap();
            assert_eq!(sealed.enc.len(), recipient.kem().public_key_len());
            let opened = open(
                aead,
                recipient,
                &sealed.enc,
                b"info",
                b"aad",
                &sealed.ciphertext,
            )
            .unwrap();
            assert_eq!(opened.expose_secret(), b"file key");
        }
    }
}

#[test]
fn every_bit_flip_of_enc_ciphertext_info_aad_fails() {
    let x = X25519SecretKey::generate().unwrap();
    let p = P256SecretKey::generate().unwrap();
    let recipients: [&dyn DhOracle; 2] = [&x, &p];
    for recipient in recipients {
        let (info, aad) = (b"info-bytes".to_vec(), b"aad-bytes".to_vec());
        let sealed = seal(
            recipient.kem(),
            Aead::Aes256Gcm,
            &recipient.public_key(),
            &info,
            &aad,
            b"secret",
        )
        .unwrap();
        let try_open = |enc: &[u8], info: &[u8], aad: &[u8], ct: &[u8]| {
            open(Aead::Aes256Gcm, recipient, enc, info, aad, ct)
        };
        for i in 0..sealed.enc.len() * 8 {
            let mut enc = sealed.enc.clone();
            enc[i / 8] ^= 1 << (i % 8);
            assert!(
                try_open(&enc, &info, &aad, &sealed.ciphertext).is_err(),
                "enc bit {i}"
            );
        }
        for i in 0..sealed.ciphertext.len() * 8 {
            let mut ct = sealed.ciphertext.clone();
            ct[i / 8] ^= 1 << (i % 8);
            let err = try_open(&sealed.enc, &info, &aad, &ct).unwrap_err();
            assert!(
                matches!(err, crate::Error::Hpke(HpkeError::OpenFailed)),
                "ct bit {i}"
            );
        }
        for i in 0..info.len() * 8 {
            let mut bad = info.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(try_open(&sealed.enc, &bad, &aad, &sealed.ciphertext).is_err());
        }
        for i in 0..aad.len() * 8 {
            let mut bad = aad.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(try_open(&sealed.enc, &info, &bad, &sealed.ciphertext).is_err());
        }
        // Another recipient of the same KEM cannot open.
        let other: Box<dyn DhOracle> = match recipient.kem() {
            Kem::X25519HkdfSha256 => Box::new(X25519SecretKey::generate().unwrap()),
            _ => Box::new(P256SecretKey::generate().unwrap()),
        };
        assert!(
            open(
                Aead::Aes256Gcm,
                other.as_ref(),
                &sealed.enc,
                &info,
                &aad,
                &sealed.ciphertext
            )
            .is_err()
        );
    }
}

#[test]
fn small_order_x25519_enc_is_refused() {
    let x = X25519SecretKey::generate().unwrap();
    let zero = [0u8; 32];
    let err = open(Aead::Aes256Gcm, &x, &zero, b"", b"", &[0u8; 32]).unwrap_err();
    assert!(
        matches!(err, crate::Error::Hpke(HpkeError::ZeroSharedSecret)),
        "{err:?}"
    );
}

#[test]
fn derive_key_pair_is_deterministic_and_debug_shows_no_secret() {
    let a = X25519SecretKey::derive_key_pair(b"quorum secret bytes");
    let b = X25519SecretKey::derive_key_pair(b"quorum secret bytes");
    assert_eq!(a.public_key_bytes(), b.public_key_bytes());
    assert_ne!(
        a.public_key_bytes(),
        X25519SecretKey::derive_key_pair(b"other").public_key_bytes()
    );
    let secret_hex = hex::encode(a.to_secret_bytes().expose_secret());
    assert!(!format!("{a:?}").contains(&secret_hex));
    let p = P256SecretKey::derive_key_pair(b"ikm").unwrap();
    let secret_hex = hex::encode(p.to_secret_bytes().expose_secret());
    assert!(!format!("{p:?}").contains(&secret_hex));
    assert_eq!(
        p.public_key_bytes(),
        P256SecretKey::derive_key_pair(b"ikm")
            .unwrap()
            .public_key_bytes()
    );
}

/// The public-key check that seal and open (every `enc`) go through: a key of the wrong
/// length, a P-256 point that is not uncompressed, and a P-256 point off the curve are refused
/// naming the KEM and why; an X25519 key is any 32 bytes, whatever its first byte.
#[test]
fn malformed_public_keys_are_refused_naming_why() {
    let p256 = P256SecretKey::generate().unwrap().public_key_bytes();
    let x25519 = X25519SecretKey::generate().unwrap().public_key_bytes();
    validate_public_key(Kem::P256HkdfSha256, &p256).unwrap();
    validate_public_key(Kem::X25519HkdfSha256, &x25519).unwrap();
    let reason = |kem: Kem, key: &[u8]| match validate_public_key(kem, key) {
        Err(HpkeError::InvalidPublicKey { kem: named, reason }) => {
            assert_eq!(named, kem);
            reason
        }
        other => panic!("{kem:?} key {}: {other:?}", hex::encode(key)),
    };
    assert_eq!(reason(Kem::P256HkdfSha256, &p256[..64]), "wrong length");
    assert_eq!(reason(Kem::P256HkdfSha256, &x25519), "wrong length");
    assert_eq!(reason(Kem::X25519HkdfSha256, &x25519[..31]), "wrong length");
    assert_eq!(reason(Kem::X25519HkdfSha256, &p256), "wrong length");
    let mut compressed = p256.clone();
    compressed[0] = 0x02;
    assert_eq!(
        reason(Kem::P256HkdfSha256, &compressed),
        "not an uncompressed point"
    );
    let mut off_curve = p256.clone();
    off_curve[64] ^= 1;
    assert_eq!(
        reason(Kem::P256HkdfSha256, &off_curve),
        "not a point on the curve"
    );
    let mut x25519_04 = x25519.clone();
    x25519_04[0] = 0x04;
    validate_public_key(Kem::X25519HkdfSha256, &x25519_04).unwrap();
    // Seal refuses such a recipient, and open such an `enc`, before any DH.
    assert!(matches!(
        seal(
            Kem::P256HkdfSha256,
            Aead::Aes256Gcm,
            &off_curve,
            b"",
            b"",
            b"pt"
        ),
        Err(HpkeError::InvalidPublicKey { .. })
    ));
}
