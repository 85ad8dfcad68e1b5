//! HPKE against an independent implementation (pyhpke), both directions, every suite breakglass
//! can use: pyhpke opens what we seal, we open what pyhpke seals, and both derive the same key
//! pair from the same input keying material.

use std::io::Write;
use std::process::{Command, Stdio};

use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret;
use vault_core::hpke::{self, Aead, DhOracle, Kem, P256SecretKey, X25519SecretKey};

const CASES_PER_SUITE: usize = 8;

const PYTHON: &str = r#"
import json, sys
from pyhpke import AEADId, CipherSuite, KDFId, KEMId
kems = {16: KEMId.DHKEM_P256_HKDF_SHA256, 32: KEMId.DHKEM_X25519_HKDF_SHA256}
aeads = {1: AEADId.AES128_GCM, 2: AEADId.AES256_GCM}
out = []
for c in json.load(sys.stdin):
    suite = CipherSuite.new(kems[c["kem"]], KDFId.HKDF_SHA256, aeads[c["aead"]])
    pair = suite.kem.derive_key_pair(bytes.fromhex(c["ikm"]))
    info, aad = bytes.fromhex(c["info"]), bytes.fromhex(c["aad"])
    recipient = suite.create_recipient_context(bytes.fromhex(c["enc"]), pair.private_key, info=info)
    opened = recipient.open(bytes.fromhex(c["ct"]), aad=aad)
    enc, sender = suite.create_sender_context(pair.public_key, info=info)
    ct = sender.seal(bytes.fromhex(c["pt2"]), aad=aad)
    out.append({"pk": pair.public_key.to_public_bytes().hex(), "opened": opened.hex(), "enc": enc.hex(), "ct": ct.hex()})
json.dump(out, sys.stdout)
"#;

fn random(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    SystemRandom::new().fill(&mut bytes).unwrap();
    bytes
}

fn recipient(kem: Kem, ikm: &[u8]) -> Box<dyn DhOracle> {
    match kem {
        Kem::X25519HkdfSha256 => Box::new(X25519SecretKey::derive_key_pair(ikm)),
        _ => Box::new(P256SecretKey::derive_key_pair(ikm).unwrap()),
    }
}

#[test]
fn pyhpke_and_breakglass_open_each_others_ciphertexts() {
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for kem in [Kem::X25519HkdfSha256, Kem::P256HkdfSha256] {
        for aead in [Aead::Aes128Gcm, Aead::Aes256Gcm] {
            for i in 0..CASES_PER_SUITE {
                let ikm = random(32);
                let key = recipient(kem, &ikm);
                let (info, aad, pt, pt2) = (
                    random(i * 3),
                    random(i * 5),
                    random(1 + i * 7),
                    random(2 + i * 11),
                );
                let sealed = hpke::seal(kem, aead, &key.public_key(), &info, &aad, &pt).unwrap();
                cases.push(serde_json::json!({
                    "kem": kem.id(), "aead": aead.id(), "ikm": hex::encode(&ikm),
                    "info": hex::encode(&info), "aad": hex::encode(&aad),
                    "enc": hex::encode(&sealed.enc), "ct": hex::encode(&sealed.ciphertext),
                    "pt2": hex::encode(&pt2),
                }));
                ours.push((kem, aead, key, info, aad, pt, pt2));
            }
        }
    }
    let python = hsm_testing::tools::venv_program("python");
    let mut child = Command::new(&python)
        .args(["-c", PYTHON])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the virtualenv's python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "pyhpke failed (is it installed? run scripts/setup):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answers.len(), ours.len());
    for (answer, (kem, aead, key, info, aad, pt, pt2)) in answers.iter().zip(&ours) {
        let field = |name: &str| hex::decode(answer[name].as_str().unwrap()).unwrap();
        assert_eq!(
            field("pk"),
            key.public_key(),
            "DeriveKeyPair agrees ({kem:?})"
        );
        assert_eq!(
            &field("opened"),
            pt,
            "pyhpke opened ours ({kem:?}, {aead:?})"
        );
        let opened =
            hpke::open(*aead, key.as_ref(), &field("enc"), info, aad, &field("ct")).unwrap();
        assert_eq!(
            opened.expose_secret(),
            pt2.as_slice(),
            "we opened pyhpke's ({kem:?}, {aead:?})"
        );
    }
}
