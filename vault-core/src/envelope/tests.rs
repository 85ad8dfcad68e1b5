use std::collections::BTreeMap;

use super::*;
use crate::hpke::{P256SecretKey, X25519SecretKey};

struct Keys {
    hsm: P256SecretKey,
    backup: P256SecretKey,
    quorum: X25519SecretKey,
}

fn keys() -> Keys {
    Keys {
        hsm: P256SecretKey::generate().unwrap(),
        backup: P256SecretKey::generate().unwrap(),
        quorum: X25519SecretKey::generate().unwrap(),
    }
}

fn sealed(keys: &Keys, vault: &str, name: &str, payload: &[u8]) -> Envelope {
    let mut metadata = BTreeMap::new();
    metadata.insert(
        "role_arn".to_owned(),
        "arn:aws:iam::123456789012:role/breakglass".to_owned(),
    );
    metadata.insert("region".to_owned(), "eu-west-1".to_owned());
    seal(&SealInput {
        vault_id: vault,
        name,
        kind: Kind::Aws,
        created: "2026-11-24T12:00:00Z".to_owned(),
        metadata,
        payload,
        hsm_public_keys: &[keys.hsm.public_key_bytes(), keys.backup.public_key_bytes()],
        quorum_public_key: &keys.quorum.public_key_bytes(),
    })
    .unwrap()
}

fn file() -> &'static Path {
    Path::new("credentials/prod.json")
}

fn assert_integrity(result: Result<impl Sized, crate::Error>, context: &str) {
    match result {
        Err(crate::Error::Envelope(EnvelopeError::Integrity { file: f, .. })) => {
            assert_eq!(f, file(), "{context}")
        }
        Err(other) => panic!("{context}: expected an integrity error, got {other:?}"),
        Ok(_) => panic!("{context}: opened"),
    }
}

fn open_bytes(bytes: &[u8], keys: &Keys) -> Result<SecretBytes, crate::Error> {
    let envelope = Envelope::from_bytes(bytes, file())?;
    envelope.check_identity("vault-a", "prod", file())?;
    envelope.open(&keys.hsm, &keys.quorum, file())
}

#[test]
fn round_trip_with_either_token_and_neither_half_alone() {
    let keys = keys();
    let envelope = sealed(&keys, "vault-a", "prod", b"the secret payload");
    let bytes = envelope.to_bytes();
    let parsed = Envelope::from_bytes(&bytes, file()).unwrap();
    assert_eq!(parsed, envelope);
    assert_eq!(
        parsed
            .open(&keys.hsm, &keys.quorum, file())
            .unwrap()
            .expose_secret(),
        b"the secret payload"
    );
    assert_eq!(
        parsed
            .open(&keys.backup, &keys.quorum, file())
            .unwrap()
            .expose_secret(),
        b"the secret payload"
    );
    // A token that is not enrolled has no stanza.
    let stranger = P256SecretKey::generate().unwrap();
    assert!(matches!(
        parsed.open(&stranger, &keys.quorum, file()),
        Err(crate::Error::Envelope(
            EnvelopeError::NoStanzaForToken { .. }
        ))
    ));
    // Another quorum is refused.
    let other = X25519SecretKey::generate().unwrap();
    assert_integrity(parsed.open(&keys.hsm, &other, file()), "other quorum");
    // The text holds no plaintext.
    assert!(!String::from_utf8_lossy(&bytes).contains("secret payload"));
}

#[test]
fn every_single_byte_change_anywhere_fails_with_an_integrity_error() {
    let keys = keys();
    let bytes = sealed(&keys, "vault-a", "prod", b"payload").to_bytes();
    for i in 0..bytes.len() {
        for delta in [1u8, 0x20, 0x80] {
            let mut changed = bytes.clone();
            changed[i] = changed[i].wrapping_add(delta);
            match open_bytes(&changed, &keys) {
                Err(crate::Error::Envelope(EnvelopeError::Integrity { file: f, .. })) => {
                    assert_eq!(f, file())
                }
                // A changed vault id is reported as such (and would also fail to open).
                Err(crate::Error::Envelope(EnvelopeError::ForeignVault { .. })) => {}
                Err(crate::Error::Envelope(EnvelopeError::NoStanzaForToken { .. })) => {}
                Err(other) => panic!("byte {i} +{delta}: unexpected error {other:?}"),
                Ok(_) => panic!("byte {i} +{delta}: a changed file opened"),
            }
        }
    }
}

fn edit(
    bytes: &[u8],
    change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    change(value.as_object_mut().unwrap());
    let mut out = serde_json::to_vec_pretty(&value).unwrap();
    out.push(b'\n');
    out
}

#[test]
fn removed_replaced_or_duplicated_fields_fail() {
    let keys = keys();
    let bytes = sealed(&keys, "vault-a", "prod", b"payload").to_bytes();
    let other = sealed(&keys, "vault-a", "prod", b"payload").to_bytes();
    let other_json: serde_json::Value = serde_json::from_slice(&other).unwrap();
    let original: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    for field in original.as_object().unwrap().keys() {
        let removed = edit(&bytes, |m| {
            m.remove(field);
        });
        assert_integrity(open_bytes(&removed, &keys), &format!("removed {field}"));
        if other_json[field] != original[field] {
            let replaced = edit(&bytes, |m| {
                m.insert(field.clone(), other_json[field].clone());
            });
            assert_integrity(
                open_bytes(&replaced, &keys),
                &format!("replaced {field} with another envelope's"),
            );
        }
    }
    // Metadata: a changed role ARN, an added key.
    let retargeted = edit(&bytes, |m| {
        m["metadata"]["role_arn"] = "arn:aws:iam::999999999999:role/attacker".into();
    });
    assert_integrity(open_bytes(&retargeted, &keys), "retargeted role");
    let added = edit(&bytes, |m| {
        m["metadata"]["external_id"] = "x".into();
    });
    assert_integrity(open_bytes(&added, &keys), "added metadata");
    // A duplicated key in the text.
    let text = String::from_utf8(bytes.clone()).unwrap();
    let duplicated = text.replacen(
        "\"kind\": \"aws\",",
        "\"kind\": \"aws\",\n  \"kind\": \"aws\",",
        1,
    );
    assert_ne!(duplicated, text);
    assert_integrity(open_bytes(duplicated.as_bytes(), &keys), "duplicated field");
    // A dropped token stanza.
    let dropped = edit(&bytes, |m| {
        m["hsm_stanzas"].as_array_mut().unwrap().pop();
    });
    assert_integrity(open_bytes(&dropped, &keys), "dropped stanza");
}

#[test]
fn a_stanza_moved_from_another_envelope_does_not_open() {
    let keys = keys();
    let victim = sealed(&keys, "vault-a", "prod", b"one").to_bytes();
    let donor = sealed(&keys, "vault-a", "prod", b"two").to_bytes();
    let donor_json: serde_json::Value = serde_json::from_slice(&donor).unwrap();
    for field in ["quorum_stanza", "hsm_stanzas"] {
        let moved = edit(&victim, |m| {
            m.insert(field.to_owned(), donor_json[field].clone());
        });
        assert_integrity(open_bytes(&moved, &keys), field);
    }
    // Even with the whole header of another credential of the same vault under another name.
    let renamed = sealed(&keys, "vault-a", "staging", b"three").to_bytes();
    let renamed_json: serde_json::Value = serde_json::from_slice(&renamed).unwrap();
    let moved = edit(&victim, |m| {
        m.insert(
            "quorum_stanza".into(),
            renamed_json["quorum_stanza"].clone(),
        );
    });
    assert_integrity(open_bytes(&moved, &keys), "stanza of another credential");
}

#[test]
fn an_envelope_of_another_vault_or_name_is_refused() {
    let keys = keys();
    let foreign = sealed(&keys, "vault-b", "prod", b"x");
    assert!(matches!(
        foreign.check_identity("vault-a", "prod", file()),
        Err(EnvelopeError::ForeignVault { .. })
    ));
    let swapped = sealed(&keys, "vault-a", "staging", b"x");
    assert!(matches!(
        swapped.check_identity("vault-a", "prod", file()),
        Err(EnvelopeError::Integrity { .. })
    ));
}

#[test]
fn a_token_adds_a_stanza_for_another_without_the_quorum() {
    let keys = keys();
    let mut envelope = sealed(&keys, "vault-a", "prod", b"the secret payload");
    let payload_before = envelope.payload.clone();
    let quorum_before = envelope.quorum_stanza.clone();
    let new_token = P256SecretKey::generate().unwrap();
    // The backup token alone (no quorum key anywhere in this call) adds the new token.
    assert!(
        envelope
            .add_hsm_recipient(&keys.backup, &new_token.public_key_bytes(), file())
            .unwrap()
    );
    assert!(
        !envelope
            .add_hsm_recipient(&keys.hsm, &new_token.public_key_bytes(), file())
            .unwrap(),
        "a second add of the same key is a no-op"
    );
    // The payload and the quorum stanza were not touched: nothing was decrypted.
    assert_eq!(envelope.payload, payload_before);
    assert_eq!(envelope.quorum_stanza, quorum_before);
    let bytes = envelope.to_bytes();
    let parsed = Envelope::from_bytes(&bytes, file()).unwrap();
    for token in [&keys.hsm, &keys.backup, &new_token] {
        assert_eq!(
            parsed
                .open(token, &keys.quorum, file())
                .unwrap()
                .expose_secret(),
            b"the secret payload"
        );
    }
    // The new stanza alone opens nothing without the quorum: it holds only FK_h.
    assert_integrity(
        parsed.open(&new_token, &X25519SecretKey::generate().unwrap(), file()),
        "new token with another quorum",
    );
}

#[test]
fn a_stanza_added_without_a_token_is_refused() {
    let keys = keys();
    let envelope = sealed(&keys, "vault-a", "prod", b"payload");
    // Someone with the file but no token seals a made-up token half to their own key and
    // appends it: the MAC (keyed from the real token half) no longer matches.
    let intruder = P256SecretKey::generate().unwrap();
    let mut forged = envelope.clone();
    let h0 = forged.h0();
    let key = intruder.public_key_bytes();
    forged.hsm_stanzas.push(
        make_stanza(
            Kem::P256HkdfSha256,
            &key,
            &stanza_info(&h0, "hsm", &key),
            &[7u8; 32],
        )
        .unwrap(),
    );
    assert_integrity(
        forged.open(&keys.hsm, &keys.quorum, file()),
        "appended stanza, opened by an enrolled token",
    );
    // Moving the whole token layer (stanzas and MAC) from another envelope of the same
    // credential fails too: its token half does not fit this quorum half.
    let donor = sealed(&keys, "vault-a", "prod", b"other");
    let mut moved = envelope.clone();
    moved.hsm_stanzas = donor.hsm_stanzas.clone();
    moved.hsm_mac = donor.hsm_mac.clone();
    assert_integrity(
        moved.open(&keys.hsm, &keys.quorum, file()),
        "token layer of another envelope",
    );
}

/// A format 1 envelope, sealed as the first version did (no MAC; AAD over every stanza).
fn sealed_v1(keys: &Keys, payload: &[u8]) -> Envelope {
    let metadata = BTreeMap::new();
    let created = "2026-11-01T12:00:00Z";
    let h0 = header_hash(
        FORMAT_V1,
        "vault-a",
        "prod",
        Kind::Secret,
        created,
        &metadata,
    );
    let file_key = [3u8; 32];
    let hsm_half = [5u8; 32];
    let quorum_half: Vec<u8> = file_key.iter().zip(hsm_half).map(|(a, b)| a ^ b).collect();
    let hsm_stanzas: Vec<Stanza> = [&keys.hsm, &keys.backup]
        .iter()
        .map(|k| {
            let key = k.public_key_bytes();
            make_stanza(
                Kem::P256HkdfSha256,
                &key,
                &stanza_info(&h0, "hsm", &key),
                &hsm_half,
            )
            .unwrap()
        })
        .collect();
    let quorum_key = keys.quorum.public_key_bytes();
    let quorum_stanza = make_stanza(
        Kem::X25519HkdfSha256,
        &quorum_key,
        &stanza_info(&h0, "quorum", &quorum_key),
        &quorum_half,
    )
    .unwrap();
    let aad = payload_aad_v1(&h0, &hsm_stanzas, &quorum_stanza);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &file_key).unwrap());
    let mut buffer = payload.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([9u8; 12]),
        Aad::from(aad),
        &mut buffer,
    )
    .unwrap();
    Envelope {
        format: FORMAT_V1.into(),
        vault_id: "vault-a".into(),
        name: "prod".into(),
        kind: Kind::Secret,
        created: created.into(),
        metadata,
        hsm_stanzas,
        hsm_mac: None,
        quorum_stanza,
        payload: Payload {
            nonce: B64.encode([9u8; 12]),
            ciphertext: B64.encode(&buffer),
        },
    }
}

#[test]
fn format_1_envelopes_still_open_and_a_reseal_brings_them_to_the_current_format() {
    let keys = keys();
    let v1 = sealed_v1(&keys, b"sealed by the first version");
    let bytes = v1.to_bytes();
    assert!(!String::from_utf8_lossy(&bytes).contains("hsm_mac"));
    let parsed = Envelope::from_bytes(&bytes, file()).unwrap();
    for token in [&keys.hsm, &keys.backup] {
        assert_eq!(
            parsed
                .open(token, &keys.quorum, file())
                .unwrap()
                .expose_secret(),
            b"sealed by the first version"
        );
    }
    // Every byte is still authenticated, the backup token's stanza included (by the v1 AAD).
    for i in 0..bytes.len() {
        let mut changed = bytes.clone();
        changed[i] ^= 0x01;
        let result = Envelope::from_bytes(&changed, file())
            .map_err(crate::Error::from)
            .and_then(|e| e.open(&keys.hsm, &keys.quorum, file()));
        assert!(result.is_err(), "byte {i} changed and it still opened");
    }
    // A MAC added to a format 1 envelope, or removed from a format 2 one, is refused.
    let mut with_mac = parsed.clone();
    with_mac.hsm_mac = sealed(&keys, "vault-a", "prod", b"x").hsm_mac;
    assert!(Envelope::from_bytes(&with_mac.to_bytes(), file()).is_err());
    let mut without_mac = sealed(&keys, "vault-a", "prod", b"x");
    without_mac.hsm_mac = None;
    assert!(Envelope::from_bytes(&without_mac.to_bytes(), file()).is_err());
    // Its token layer cannot be changed in place...
    let mut editable = parsed.clone();
    let new_token = P256SecretKey::generate().unwrap();
    assert!(matches!(
        editable.add_hsm_recipient(&keys.hsm, &new_token.public_key_bytes(), file()),
        Err(crate::Error::Envelope(EnvelopeError::FormatTooOld { .. }))
    ));
    // ...but a reseal (what rekey does) writes the current format, which opens and can be.
    let payload = parsed.open(&keys.hsm, &keys.quorum, file()).unwrap();
    let mut resealed = parsed
        .reseal(
            &payload,
            &[keys.hsm.public_key_bytes()],
            &keys.quorum.public_key_bytes(),
        )
        .unwrap();
    assert_eq!(resealed.format, FORMAT);
    assert_eq!(resealed.created, parsed.created);
    assert!(
        resealed
            .add_hsm_recipient(&keys.hsm, &new_token.public_key_bytes(), file())
            .unwrap()
    );
    assert_eq!(
        resealed
            .open(&new_token, &keys.quorum, file())
            .unwrap()
            .expose_secret(),
        b"sealed by the first version"
    );
}

/// The hashes every envelope is bound by, over fixed inputs: pinned, so the canonical encoder
/// they are computed with cannot change a byte unnoticed.
#[test]
fn the_canonical_hashes_of_a_fixed_envelope_are_pinned() {
    let metadata = BTreeMap::from([
        ("account".to_owned(), "123456789012".to_owned()),
        (
            "role_arn".to_owned(),
            "arn:aws:iam::123456789012:role/bg".to_owned(),
        ),
    ]);
    let h0 = header_hash(
        FORMAT,
        "vault-a",
        "prod",
        Kind::Aws,
        "2026-11-01T12:00:00Z",
        &metadata,
    );
    let stanza = Stanza {
        recipient: "04".repeat(33),
        enc: "ZW5j".into(),
        ciphertext: "Y2lwaGVy".into(),
    };
    let sha =
        |bytes: &[u8]| hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    let pinned = [
        hex::encode(h0),
        sha(&stanza_info(&h0, "hsm", &[4; 65])),
        sha(&hsm_mac_input(&h0, std::slice::from_ref(&stanza))),
        hex::encode(payload_aad(&h0, &stanza)),
        hex::encode(payload_aad_v1(&h0, std::slice::from_ref(&stanza), &stanza)),
    ];
    assert_eq!(
        pinned,
        [
            "10feccea7d099dfb0ea08330652bb6a9c7a19b93e5de6532c4a8ef9c794c8fb5",
            "ad41136caea47f856cdffd4557ae4775c1f1b4b7e16adefc877f30f70701c9c4",
            "17ea191f5ccd8fb1015572c0a2a3d357015b7ebd5562df98a7b644df226b15a6",
            "0f009850b17df05102dc9bc8b3e7e03613e3828a06b2db02b72939efb695ebbe",
            "833216e25d01f8c9610b2619e8dd5f3621ceedf761a0bbb9317abe9903754645",
        ]
    );
}

/// A 32-byte value for the known-answer vectors: SHA-256 of a label, so anyone can recompute it.
fn kat_bytes(label: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, label.as_bytes()).as_ref());
    out
}

/// A stanza sealed with the ephemeral key `DeriveKeyPair(SHA-256(label))`.
fn kat_stanza(
    kem: Kem,
    recipient: &[u8],
    info: &[u8],
    half: &[u8],
    label: &str,
) -> Result<Stanza, crate::Error> {
    let sealed = hpke::seal_with_derived_ephemeral(
        kem,
        &kat_bytes(label),
        Aead::Aes256Gcm,
        recipient,
        info,
        b"",
        half,
    )?;
    Ok(Stanza {
        recipient: hex::encode(recipient),
        enc: B64.encode(&sealed.enc),
        ciphertext: B64.encode(&sealed.ciphertext),
    })
}

/// The known-answer vectors: every key and random value fixed (each the SHA-256 of a label),
/// the envelope they make, and the values in between. Committed in
/// `test-vectors/envelope-kat.json`; this test rebuilds the file byte for byte and opens every
/// vector, and the independent reader (`interop/python`, `tests/interop_format.rs`) checks the
/// same file. `BREAKGLASS_WRITE_KAT=1` writes it anew, for a deliberate format change only.
fn known_answer_vectors() -> serde_json::Value {
    let token_labels = ["kat token 1", "kat token 2"];
    let tokens: Vec<P256SecretKey> = token_labels
        .iter()
        .map(|l| P256SecretKey::derive_key_pair(&kat_bytes(l)).unwrap())
        .collect();
    let quorum = X25519SecretKey::derive_key_pair(&kat_bytes("kat quorum secret"));
    let (file_key, hsm_half) = (kat_bytes("kat file key"), kat_bytes("kat hsm half"));
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&kat_bytes("kat nonce")[..NONCE_LEN]);
    let ephemeral = |position: usize| format!("kat ephemeral {}", position + 1);
    let keys = |count: usize| {
        serde_json::json!({
            "quorum_ikm": hex::encode(kat_bytes("kat quorum secret")),
            "hsm_private_keys": tokens[..count]
                .iter()
                .map(|t| hex::encode(t.to_secret_bytes().expose_secret()))
                .collect::<Vec<_>>(),
            "hsm_ephemeral_ikm": (0..count).map(|p| hex::encode(kat_bytes(&ephemeral(p)))).collect::<Vec<_>>(),
            "quorum_ephemeral_ikm": hex::encode(kat_bytes(&ephemeral(count))),
            "file_key": hex::encode(file_key),
            "hsm_half": hex::encode(hsm_half),
            "nonce": hex::encode(nonce),
        })
    };
    let public: Vec<Vec<u8>> = tokens.iter().map(|t| t.public_key_bytes()).collect();
    let quorum_public = quorum.public_key_bytes();
    let expected = |envelope: &Envelope, plaintext: &[u8]| {
        let h0 = envelope.h0();
        let aad = match envelope.hsm_mac {
            Some(_) => payload_aad(&h0, &envelope.quorum_stanza),
            None => payload_aad_v1(&h0, &envelope.hsm_stanzas, &envelope.quorum_stanza),
        };
        let mut out = serde_json::json!({
            "h0": hex::encode(h0),
            "payload_aad": hex::encode(aad),
            "hsm_half": hex::encode(hsm_half),
            "file_key": hex::encode(file_key),
            "plaintext": hex::encode(plaintext),
        });
        if envelope.hsm_mac.is_some() {
            out["hsm_mac"] = hex::encode(hsm_mac(&hsm_half, &h0, &envelope.hsm_stanzas)).into();
            out["mac_input"] = hex::encode(hsm_mac_input(&h0, &envelope.hsm_stanzas)).into();
        }
        out
    };

    // Format 2: kind aws, two tokens, metadata (one value non-ASCII, one with a quote).
    let payload_v2 = br#"{"access_key_id":"AKIAKAT","secret_access_key":"kat/secret"}"#;
    let metadata = BTreeMap::from([
        ("account".to_owned(), "123456789012".to_owned()),
        ("note".to_owned(), "caf\u{e9} \"quoted\"".to_owned()),
        ("region".to_owned(), "eu-west-1".to_owned()),
    ]);
    let v2 = seal_with(
        &SealInput {
            vault_id: "00112233445566778899aabbccddeeff",
            name: "prod-root",
            kind: Kind::Aws,
            created: "2026-11-30T12:00:00Z".to_owned(),
            metadata,
            payload: payload_v2,
            hsm_public_keys: &public,
            quorum_public_key: &quorum_public,
        },
        &file_key,
        &hsm_half,
        &nonce,
        &|kem, recipient, info, half, position| {
            kat_stanza(kem, recipient, info, half, &ephemeral(position))
        },
    )
    .unwrap();

    // Format 1 (read, never written now): kind secret, one token, no metadata.
    let payload_v1 = b"sealed by the first format\n";
    let mut v1 = Envelope {
        format: FORMAT_V1.into(),
        vault_id: "00112233445566778899aabbccddeeff".into(),
        name: "db-root".into(),
        kind: Kind::Secret,
        created: "2026-01-02T03:04:05Z".into(),
        metadata: BTreeMap::new(),
        hsm_stanzas: Vec::new(),
        hsm_mac: None,
        quorum_stanza: Stanza {
            recipient: String::new(),
            enc: String::new(),
            ciphertext: String::new(),
        },
        payload: Payload {
            nonce: B64.encode(nonce),
            ciphertext: String::new(),
        },
    };
    let h0 = v1.h0();
    v1.hsm_stanzas = vec![
        kat_stanza(
            Kem::P256HkdfSha256,
            &public[0],
            &stanza_info(&h0, "hsm", &public[0]),
            &hsm_half,
            &ephemeral(0),
        )
        .unwrap(),
    ];
    let quorum_half: Vec<u8> = file_key.iter().zip(hsm_half).map(|(a, b)| a ^ b).collect();
    v1.quorum_stanza = kat_stanza(
        Kem::X25519HkdfSha256,
        &quorum_public,
        &stanza_info(&h0, "quorum", &quorum_public),
        &quorum_half,
        &ephemeral(1),
    )
    .unwrap();
    let aad = payload_aad_v1(&h0, &v1.hsm_stanzas, &v1.quorum_stanza);
    let mut buffer = payload_v1.to_vec();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &file_key).unwrap())
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buffer,
        )
        .unwrap();
    v1.payload.ciphertext = B64.encode(&buffer);

    let text = |e: &Envelope| String::from_utf8(e.to_bytes()).unwrap();
    serde_json::json!({
        "about": "breakglass sealed-credential known-answer vectors (docs/format.md). Every fixed \
                  value is SHA-256 of a label: token private keys and the quorum key are \
                  DeriveKeyPair(SHA-256(\"kat token N\")) of DHKEM(P-256) and \
                  DeriveKeyPair(SHA-256(\"kat quorum secret\")) of DHKEM(X25519); the ephemeral \
                  key of the stanza at position p (tokens first, then the quorum) is \
                  DeriveKeyPair(SHA-256(\"kat ephemeral p+1\")); FK, FK_h and the nonce are \
                  SHA-256 of \"kat file key\", \"kat hsm half\" and \"kat nonce\" (its first 12 \
                  bytes). Hex throughout, except `envelope`, the exact file text.",
        "vectors": [
            {
                "description": "format 2, kind aws, two tokens, metadata",
                "keys": keys(2),
                "envelope": text(&v2),
                "expected": expected(&v2, payload_v2),
            },
            {
                "description": "format 1, kind secret, one token, no metadata",
                "keys": keys(1),
                "envelope": text(&v1),
                "expected": expected(&v1, payload_v1),
            },
        ],
    })
}

#[test]
fn the_known_answer_vectors_are_rebuilt_byte_for_byte_and_open() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/envelope-kat.json");
    let built = serde_json::to_string_pretty(&known_answer_vectors()).unwrap() + "\n";
    if std::env::var_os("BREAKGLASS_WRITE_KAT").is_some() {
        std::fs::write(&path, &built).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the committed known-answer vectors)",
            path.display()
        )
    });
    assert_eq!(
        committed, built,
        "the envelope format no longer reproduces its known-answer vectors"
    );
    let vectors: serde_json::Value = serde_json::from_str(&committed).unwrap();
    let quorum = X25519SecretKey::derive_key_pair(&kat_bytes("kat quorum secret"));
    for vector in vectors["vectors"].as_array().unwrap() {
        let envelope =
            Envelope::from_bytes(vector["envelope"].as_str().unwrap().as_bytes(), file()).unwrap();
        for (i, _) in envelope.hsm_stanzas.iter().enumerate() {
            let token = P256SecretKey::derive_key_pair(&kat_bytes(&format!("kat token {}", i + 1)))
                .unwrap();
            let plaintext = envelope.open(&token, &quorum, file()).unwrap();
            assert_eq!(
                hex::encode(plaintext.expose_secret()),
                vector["expected"]["plaintext"].as_str().unwrap(),
                "{}",
                vector["description"]
            );
        }
    }
}

#[test]
fn every_seal_draws_a_fresh_file_key_token_half_and_nonce() {
    let keys = keys();
    let a = sealed(&keys, "vault-a", "prod", b"same payload");
    let b = sealed(&keys, "vault-a", "prod", b"same payload");
    assert_ne!(a.payload.nonce, b.payload.nonce, "nonce reused");
    assert_ne!(a.payload.ciphertext, b.payload.ciphertext);
    let (half_a, half_b) = (
        a.open_hsm_half(&keys.hsm, file()).unwrap(),
        b.open_hsm_half(&keys.hsm, file()).unwrap(),
    );
    assert_ne!(half_a.as_ref(), half_b.as_ref(), "token half reused");
    let (quorum_a, quorum_b) = (
        a.open_quorum_half(&keys.quorum, file()).unwrap(),
        b.open_quorum_half(&keys.quorum, file()).unwrap(),
    );
    assert_ne!(quorum_a.as_ref(), quorum_b.as_ref(), "file key reused");
}

#[test]
fn a_token_removes_another_tokens_stanza_and_the_mac_follows() {
    let keys = keys();
    let mut envelope = sealed(&keys, "vault-a", "prod", b"payload");
    let stranger = P256SecretKey::generate().unwrap().public_key_bytes();
    assert!(
        !envelope
            .remove_hsm_recipient(&keys.hsm, &stranger, file())
            .unwrap(),
        "a key with no stanza is not removed"
    );
    assert!(
        envelope
            .remove_hsm_recipient(&keys.hsm, &keys.backup.public_key_bytes(), file())
            .unwrap()
    );
    assert_eq!(envelope.hsm_stanzas.len(), 1);
    let reread = Envelope::from_bytes(&envelope.to_bytes(), file()).unwrap();
    assert_eq!(
        reread
            .open(&keys.hsm, &keys.quorum, file())
            .unwrap()
            .expose_secret(),
        b"payload"
    );
    assert!(matches!(
        reread.open(&keys.backup, &keys.quorum, file()),
        Err(crate::Error::Envelope(
            EnvelopeError::NoStanzaForToken { .. }
        ))
    ));
    assert!(
        !envelope
            .remove_hsm_recipient(&keys.hsm, &keys.backup.public_key_bytes(), file())
            .unwrap(),
        "removed already"
    );
    let mut v1 = sealed_v1(&keys, b"x");
    assert!(matches!(
        v1.remove_hsm_recipient(&keys.hsm, &keys.backup.public_key_bytes(), file()),
        Err(crate::Error::Envelope(EnvelopeError::FormatTooOld { .. }))
    ));
}

/// A format-2 envelope rewritten as format 1 (the format string changed, `hsm_mac` removed)
/// has the shape of a valid format-1 envelope and is parsed as one, but does not open, with
/// either token: the format is part of `H0`, which every stanza's HPKE `info` and the payload
/// AAD bind, and the format-1 AAD covers the token stanzas the format-2 AAD leaves to the MAC.
/// The other way, a format-1 envelope dressed as format 2 by a token holder, who can compute
/// the MAC from the token half, does not open either.
#[test]
fn a_format_2_envelope_rewritten_as_format_1_does_not_open() {
    let keys = keys();
    let genuine = sealed(&keys, "vault-a", "prod", b"sealed as format 2");
    let mut downgraded = genuine.clone();
    downgraded.format = FORMAT_V1.into();
    downgraded.hsm_mac = None;
    let bytes = downgraded.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains(FORMAT_V1) && !text.contains("hsm_mac"),
        "{text}"
    );
    let parsed = Envelope::from_bytes(&bytes, file()).expect("the shape of a format-1 envelope");
    for token in [&keys.hsm, &keys.backup] {
        assert_integrity(
            parsed.open(token, &keys.quorum, file()),
            "format 2 downgraded to format 1",
        );
    }
    // The genuine one still opens: the refusal is the downgrade's.
    assert_eq!(
        genuine
            .open(&keys.hsm, &keys.quorum, file())
            .unwrap()
            .expose_secret(),
        b"sealed as format 2"
    );

    // Format 1 dressed as format 2, with a MAC the token holder computed over the new header.
    let v1 = sealed_v1(&keys, b"sealed as format 1");
    let hsm_half = v1.open_hsm_half(&keys.hsm, file()).unwrap();
    let mut upgraded = v1.clone();
    upgraded.format = FORMAT.into();
    upgraded.hsm_mac = Some(B64.encode(hsm_mac(
        hsm_half.as_ref(),
        &upgraded.h0(),
        &upgraded.hsm_stanzas,
    )));
    let parsed = Envelope::from_bytes(&upgraded.to_bytes(), file()).expect("a format-2 shape");
    assert_integrity(
        parsed.open(&keys.hsm, &keys.quorum, file()),
        "format 1 dressed as format 2",
    );
}
