//! Audit lines signed by the operator who wrote them (line format 2).
//!
//! A line is one JSON object and the chain stays what it is today: each line's `prev` is the
//! hex SHA-256 of the previous line's exact bytes (without the newline). A line is built from
//! its **body**, the [`EntryBody`] serialised compactly by serde (fields in declaration order,
//! ending with `"prev":"<hex>"}`):
//!
//! ```text
//! operator line:   <body without its final "}"> ,"signature":"<base64 Ed25519>"}
//! custodian line:  <body>
//! ```
//!
//! The operator's signature is over
//! `Canonical["breakglass-audit-entry/2", vault id, seq, prev, operator name, SHA-256(body)]`,
//! where `body` is the exact bytes above: the line with its trailing `,"signature":"…"` member
//! cut off and `}` put back. A verifier recovers them by cutting the line at the last
//! `,"signature":"` (base64 has no quote, and the body must re-serialise to the same bytes, so
//! the cut is unambiguous), so what was signed is what is on disk, not a re-encoding. Binding
//! the vault id, sequence number and previous hash means a genuine line cannot be replayed into
//! another vault or at another place in the chain.
//!
//! Commands a custodian runs alone (`share verify`, `ceremony contribute`) carry no operator
//! authority: their lines have the actor `{"custodian":"name"}` (the name is the custodian's
//! claim, nothing more), no signature, and may only record [`CUSTODIAN_EVENTS`], never a
//! checkpoint, and never a detail that records a manifest or an envelope
//! ([`AUTHORITY_DETAILS`]). Token checkpoints still sign the head over all of them.

use std::collections::BTreeMap;

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use super::certified::AuthenticatedManifest;
use super::operator::{OperatorKey, Role};
use super::signature::{decode_signature, encode_signature};
use super::{AuditLineProblem, TrustError};
use crate::audit::Checkpoint;
use crate::canonical::Canonical;

/// The line format number, the body's first field.
pub const LINE_FORMAT: u8 = 2;
/// The domain tag of an entry signature.
pub const ENTRY_DOMAIN: &[u8] = b"breakglass-audit-entry/2";
/// What separates the body from the signature.
const SIGNATURE_MEMBER: &[u8] = b",\"signature\":\"";
/// Events a custodian's line may record.
pub const CUSTODIAN_EVENTS: &[&str] = &["share_verify", "ceremony_contribute"];
/// Details that record authority (a manifest version, an envelope): operators only.
pub const AUTHORITY_DETAILS: &[&str] = &[
    "manifest_sha256",
    "manifest_version",
    "manifest_digest",
    "envelope_digest",
];

/// Who wrote a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EntryActor {
    /// An operator of the vault, who signs the line.
    Operator(String),
    /// A custodian acting alone: no signature, no authority.
    Custodian(String),
    /// Whoever ran a command with the quorum and a token on a machine that holds no operator
    /// key for the vault (`user@host`, their claim): no signature, no authority. Such a line
    /// records what the token then signs a checkpoint over, or a failed attempt; never a
    /// change of the vault (see [`quorum_line`]).
    Quorum(String),
}

/// The body of a line: everything but the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryBody {
    /// Always [`LINE_FORMAT`].
    pub v: u8,
    /// Sequence number, from 1.
    pub seq: u64,
    /// When (RFC 3339 UTC).
    pub time: String,
    /// What happened.
    pub event: String,
    /// Who.
    pub actor: EntryActor,
    /// The credential concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The ceremony concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceremony: Option<String>,
    /// The custodians whose shares were used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custodians: Vec<String>,
    /// Other public facts. Never a secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// The token checkpoint, on `checkpoint` lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// Hex SHA-256 of the previous line's bytes.
    pub prev: String,
}

/// The event that records an envelope as it is, without sealing it: what `rekey` and `hsm
/// enroll` re-wrap, and every envelope when a vault's log is upgraded to signed lines.
pub const ENVELOPE_RECORDED: &str = "envelope_recorded";

/// The detail of a signed line that records a credential's envelope: its
/// `Envelope::record_digest` (hex).
pub const ENVELOPE_DETAIL: &str = "envelope_digest";
/// The only events whose lines record an envelope (a cloud administrator's seal, a security
/// officer's record of a re-sealed or upgraded envelope): the role table so decides who may.
pub const RECORD_EVENTS: &[&str] = &["seal", ENVELOPE_RECORDED];

/// The role an event needs: vault changes and ceremonies need a security officer, seals and
/// AWS key changes a cloud administrator; any operator may do the rest.
pub fn required_role(event: &str) -> Option<Role> {
    match event {
        "init" | "manifest" | "hsm_enrol" | "rekey" | "recovery_enable" | "operator_add"
        | "operator_remove" | "ceremony_opened" | "ceremony_cancelled" | "upgrade" | "policy" => {
            Some(Role::SecurityOfficer)
        }
        "seal" | "rotate" | "revoke_sessions" => Some(Role::CloudAdministrator),
        ENVELOPE_RECORDED => Some(Role::SecurityOfficer),
        _ => None,
    }
}

/// `Canonical[ENTRY_DOMAIN, vault id, seq, prev, operator, SHA-256(body)]`.
pub fn entry_message(vault_id: &str, seq: u64, prev: &str, operator: &str, body: &[u8]) -> Vec<u8> {
    let mut c = Canonical::default();
    c.field(ENTRY_DOMAIN)
        .field(vault_id.as_bytes())
        .number(seq)
        .field(prev.as_bytes())
        .field(operator.as_bytes())
        .field(digest(&SHA256, body).as_ref());
    c.into_bytes()
}

fn body_bytes(body: &EntryBody) -> Vec<u8> {
    // A struct of strings, numbers, maps and lists always serialises.
    serde_json::to_vec(body).unwrap_or_default()
}

/// The line (without newline) an operator writes: `body` signed with this machine's key, in
/// the vault of `manifest`. The body's actor must be the operator whose key it is, holding the
/// role its event needs, so a line that would not verify is never written.
pub fn operator_line(
    manifest: &AuthenticatedManifest,
    body: &EntryBody,
    key: &OperatorKey,
) -> Result<Vec<u8>, TrustError> {
    let EntryActor::Operator(name) = &body.actor else {
        return Err(TrustError::AuditLine {
            seq: body.seq,
            problem: AuditLineProblem::WrongActor,
        });
    };
    let operator = match required_role(&body.event) {
        Some(role) => manifest.operator_with_role(name, role)?,
        None => manifest.operator(name)?,
    };
    if operator.public_key != key.public_key().to_hex() {
        return Err(TrustError::NotAnOperator {
            vault_id: manifest.vault_id().to_owned(),
            path: key.path().to_path_buf(),
            public_key: key.public_key().to_hex(),
        });
    }
    signed_line(manifest.vault_id(), body, name, key)
}

/// `body` signed as operator `name` with `key`, unchecked: [`operator_line`] checks first.
fn signed_line(
    vault_id: &str,
    body: &EntryBody,
    name: &str,
    key: &OperatorKey,
) -> Result<Vec<u8>, TrustError> {
    let bytes = body_bytes(body);
    let signature = key.sign(&entry_message(vault_id, body.seq, &body.prev, name, &bytes))?;
    let mut line = bytes;
    line.pop();
    line.extend_from_slice(SIGNATURE_MEMBER);
    line.extend_from_slice(encode_signature(&signature).as_bytes());
    line.extend_from_slice(b"\"}");
    Ok(line)
}

/// The line (without newline) a custodian's command writes: unsigned, refused if it would
/// record anything beyond what a custodian may.
pub fn custodian_line(body: &EntryBody) -> Result<Vec<u8>, TrustError> {
    check_custodian_body(body)?;
    Ok(body_bytes(body))
}

/// The line (without newline) a command run on a machine without an operator key writes:
/// unsigned, refused if it would record a change of the vault or anything an operator's role
/// is needed for.
pub fn quorum_line(body: &EntryBody) -> Result<Vec<u8>, TrustError> {
    check_quorum_body(body)?;
    Ok(body_bytes(body))
}

fn check_quorum_body(body: &EntryBody) -> Result<(), TrustError> {
    let problem = |problem| TrustError::AuditLine {
        seq: body.seq,
        problem,
    };
    if !matches!(body.actor, EntryActor::Quorum(_)) {
        return Err(problem(AuditLineProblem::WrongActor));
    }
    if required_role(&body.event).is_some() || CUSTODIAN_EVENTS.contains(&body.event.as_str()) {
        return Err(problem(AuditLineProblem::CustodianAuthority {
            event: body.event.clone(),
        }));
    }
    if let Some(key) = body
        .details
        .keys()
        .find(|k| AUTHORITY_DETAILS.contains(&k.as_str()))
    {
        return Err(problem(AuditLineProblem::CustodianAuthority {
            event: format!("{} with {key}", body.event),
        }));
    }
    Ok(())
}

fn check_custodian_body(body: &EntryBody) -> Result<(), TrustError> {
    let problem = |problem| TrustError::AuditLine {
        seq: body.seq,
        problem,
    };
    if !matches!(body.actor, EntryActor::Custodian(_)) {
        return Err(problem(AuditLineProblem::WrongActor));
    }
    if !CUSTODIAN_EVENTS.contains(&body.event.as_str()) || body.checkpoint.is_some() {
        return Err(problem(AuditLineProblem::CustodianAuthority {
            event: body.event.clone(),
        }));
    }
    if let Some(key) = body
        .details
        .keys()
        .find(|k| AUTHORITY_DETAILS.contains(&k.as_str()))
    {
        return Err(problem(AuditLineProblem::CustodianAuthority {
            event: format!("{} with {key}", body.event),
        }));
    }
    Ok(())
}

/// A line that passed [`verify_line`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLine {
    /// The body.
    pub body: EntryBody,
    /// The hex SHA-256 of the whole line: the next line's `prev`.
    pub hash: String,
    /// Whether an operator signed it (false: a custodian's line).
    pub signed: bool,
}

/// Splits a line into its body bytes and signature, if it has one.
fn split(line: &[u8]) -> (std::borrow::Cow<'_, [u8]>, Option<&[u8]>) {
    let Some(rest) = line.strip_suffix(b"\"}") else {
        return (line.into(), None);
    };
    let Some(at) = rest
        .windows(SIGNATURE_MEMBER.len())
        .rposition(|w| w == SIGNATURE_MEMBER)
    else {
        return (line.into(), None);
    };
    let signature = &rest[at + SIGNATURE_MEMBER.len()..];
    if !signature
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return (line.into(), None);
    }
    let mut body = line[..at].to_vec();
    body.push(b'}');
    (body.into(), Some(signature))
}

/// Verifies one line at its place in the chain of the vault of `manifest` (the manifest in
/// force at that line): it is line `seq`, follows the line hashed `prev`, and is either signed
/// by an operator of `manifest` who holds the role its event needs, or a custodian's line that
/// claims no authority.
pub fn verify_line(
    line: &[u8],
    seq: u64,
    prev: &str,
    manifest: &AuthenticatedManifest,
) -> Result<VerifiedLine, TrustError> {
    let problem = |problem| TrustError::AuditLine { seq, problem };
    let (body_bytes_found, signature) = split(line);
    let body: EntryBody = serde_json::from_slice(&body_bytes_found).map_err(|e| {
        problem(AuditLineProblem::Invalid {
            reason: e.to_string(),
        })
    })?;
    if body.v != LINE_FORMAT {
        return Err(problem(AuditLineProblem::Invalid {
            reason: format!("line format {}, expected {LINE_FORMAT}", body.v),
        }));
    }
    if body_bytes(&body) != *body_bytes_found {
        return Err(problem(AuditLineProblem::NotCanonical));
    }
    if body.seq != seq {
        return Err(problem(AuditLineProblem::Sequence { found: body.seq }));
    }
    if body.prev != prev {
        return Err(problem(AuditLineProblem::Chain));
    }
    let signed = match (&body.actor, signature) {
        (EntryActor::Operator(name), Some(signature)) => {
            let signature = std::str::from_utf8(signature)
                .ok()
                .and_then(decode_signature)
                .ok_or_else(|| {
                    problem(AuditLineProblem::BadSignature {
                        operator: name.clone(),
                    })
                })?;
            let message = entry_message(manifest.vault_id(), seq, prev, name, &body_bytes_found);
            let signers = manifest
                .signers_at(name, required_role(&body.event), seq)
                .map_err(|cause| {
                    problem(AuditLineProblem::NotAuthorised {
                        cause: Box::new(cause),
                    })
                })?;
            let verifies = signers
                .iter()
                .any(|o| o.key().is_ok_and(|key| key.verifies(&message, &signature)));
            if !verifies {
                return Err(problem(AuditLineProblem::BadSignature {
                    operator: name.clone(),
                }));
            }
            if body.details.contains_key(ENVELOPE_DETAIL)
                && !RECORD_EVENTS.contains(&body.event.as_str())
            {
                return Err(problem(AuditLineProblem::Invalid {
                    reason: format!(
                        "a {} line records an envelope: only seal and envelope_recorded lines do",
                        body.event
                    ),
                }));
            }
            true
        }
        (EntryActor::Operator(name), None) => {
            return Err(problem(AuditLineProblem::Unsigned {
                operator: name.clone(),
            }));
        }
        (EntryActor::Custodian(_) | EntryActor::Quorum(_), Some(_)) => {
            return Err(problem(AuditLineProblem::WrongActor));
        }
        (EntryActor::Quorum(_), None) => {
            check_quorum_body(&body).map_err(|e| match e {
                TrustError::AuditLine { problem: p, .. } => problem(p),
                other => other,
            })?;
            false
        }
        (EntryActor::Custodian(_), None) => {
            check_custodian_body(&body).map_err(|e| match e {
                TrustError::AuditLine { problem: p, .. } => problem(p),
                other => other,
            })?;
            false
        }
    };
    Ok(VerifiedLine {
        body,
        hash: hex::encode(digest(&SHA256, line).as_ref()),
        signed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::GENESIS;
    use crate::trust::certified::CertifiedManifest;
    use crate::trust::certified::tests::{certified, manifest, quorum_key};
    use crate::trust::machine::ConfigDir;
    use crate::trust::operator::Operator;
    use crate::trust::operator::tests::operator;
    use crate::trust::quorum_key::QuorumSigningKey;

    struct Fixture {
        _dir: tempfile::TempDir,
        manifest: AuthenticatedManifest,
        alice: OperatorKey,
        bob: OperatorKey,
    }

    /// Alice (security officer) and Bob (cloud administrator), each with a key on their own
    /// machine.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let v1 = certified(1);
        let alice =
            OperatorKey::generate(&ConfigDir::at(&dir.path().join("a")), v1.vault_id()).unwrap();
        let bob =
            OperatorKey::generate(&ConfigDir::at(&dir.path().join("b")), v1.vault_id()).unwrap();
        let manifest = v1
            .certify_next(
                manifest(),
                vec![
                    Operator {
                        name: "alice".into(),
                        roles: vec![Role::SecurityOfficer],
                        public_key: alice.public_key().to_hex(),
                    },
                    Operator {
                        name: "bob".into(),
                        roles: vec![Role::CloudAdministrator],
                        public_key: bob.public_key().to_hex(),
                    },
                ],
                &quorum_key(),
            )
            .unwrap();
        Fixture {
            _dir: dir,
            manifest,
            alice,
            bob,
        }
    }

    fn body(seq: u64, prev: &str, event: &str, actor: EntryActor) -> EntryBody {
        EntryBody {
            v: LINE_FORMAT,
            seq,
            time: "2026-11-30T12:00:00Z".into(),
            event: event.into(),
            actor,
            credential: Some("prod".into()),
            ceremony: None,
            custodians: vec!["carol".into()],
            details: BTreeMap::from([("signature".to_owned(), "x".to_owned())]),
            checkpoint: None,
            prev: prev.into(),
        }
    }

    fn op(name: &str) -> EntryActor {
        EntryActor::Operator(name.into())
    }

    #[test]
    fn a_signed_line_verifies_at_its_place_and_hashes_its_exact_bytes() {
        let f = fixture();
        let line =
            operator_line(&f.manifest, &body(1, GENESIS, "seal", op("bob")), &f.bob).unwrap();
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(text.starts_with("{\"v\":2,\"seq\":1,"), "{text}");
        assert!(text.contains("\"prev\":\"0000"), "{text}");
        assert!(
            serde_json::from_slice::<serde_json::Value>(&line).is_ok(),
            "one JSON object"
        );
        let verified = verify_line(&line, 1, GENESIS, &f.manifest).unwrap();
        assert!(verified.signed);
        assert_eq!(verified.hash, hex::encode(digest(&SHA256, &line).as_ref()));
        let second = operator_line(
            &f.manifest,
            &body(2, &verified.hash, "ceremony_opened", op("alice")),
            &f.alice,
        )
        .unwrap();
        verify_line(&second, 2, &verified.hash, &f.manifest).unwrap();
    }

    #[test]
    fn every_changed_byte_of_a_signed_line_is_refused() {
        let f = fixture();
        let line =
            operator_line(&f.manifest, &body(1, GENESIS, "seal", op("bob")), &f.bob).unwrap();
        for i in 0..line.len() {
            for flip in [0x01u8, 0x20] {
                let mut changed = line.clone();
                changed[i] ^= flip;
                assert!(
                    verify_line(&changed, 1, GENESIS, &f.manifest).is_err(),
                    "byte {i} ^ {flip:#x} accepted: {}",
                    String::from_utf8_lossy(&changed)
                );
            }
        }
    }

    #[test]
    fn forged_replayed_foreign_and_unauthorised_lines_are_refused() {
        let f = fixture();
        let id = f.manifest.vault_id().to_owned();
        let genuine =
            operator_line(&f.manifest, &body(1, GENESIS, "seal", op("bob")), &f.bob).unwrap();
        let refused =
            |line: &[u8], seq, prev: &str| verify_line(line, seq, prev, &f.manifest).unwrap_err();
        // An appended line without a signature, in an operator's name (today's attack).
        let unsigned = serde_json::to_vec(&body(1, GENESIS, "seal", op("bob"))).unwrap();
        assert!(matches!(
            refused(&unsigned, 1, GENESIS),
            TrustError::AuditLine {
                problem: AuditLineProblem::Unsigned { .. },
                ..
            }
        ));
        // Signed by someone who is not an operator, in bob's name.
        let stranger =
            OperatorKey::generate(&ConfigDir::at(&f._dir.path().join("s")), &id).unwrap();
        let forged =
            signed_line(&id, &body(1, GENESIS, "seal", op("bob")), "bob", &stranger).unwrap();
        assert!(matches!(
            refused(&forged, 1, GENESIS),
            TrustError::AuditLine {
                problem: AuditLineProblem::BadSignature { .. },
                ..
            }
        ));
        // Alice's signature, relabelled as bob's (a spoofed actor).
        let alice_seal = signed_line(
            &id,
            &body(1, GENESIS, "seal", op("alice")),
            "alice",
            &f.alice,
        )
        .unwrap();
        let relabelled = String::from_utf8(alice_seal.clone())
            .unwrap()
            .replace("\"operator\":\"alice\"", "\"operator\":\"bob\"");
        assert!(verify_line(relabelled.as_bytes(), 1, GENESIS, &f.manifest).is_err());
        // Alice is no cloud administrator: her seal is refused though her signature is good.
        assert!(matches!(
            refused(&alice_seal, 1, GENESIS),
            TrustError::AuditLine {
                problem: AuditLineProblem::NotAuthorised { .. },
                ..
            }
        ));
        // Bob cannot open a ceremony.
        let bob_opens = signed_line(
            &id,
            &body(1, GENESIS, "ceremony_opened", op("bob")),
            "bob",
            &f.bob,
        )
        .unwrap();
        assert!(matches!(
            refused(&bob_opens, 1, GENESIS),
            TrustError::AuditLine {
                problem: AuditLineProblem::NotAuthorised { .. },
                ..
            }
        ));
        // The genuine line replayed at another place, after another line, or in another vault.
        assert!(matches!(
            refused(&genuine, 2, GENESIS),
            TrustError::AuditLine {
                problem: AuditLineProblem::Sequence { found: 1 },
                ..
            }
        ));
        assert!(matches!(
            refused(&genuine, 1, &"ab".repeat(32)),
            TrustError::AuditLine {
                problem: AuditLineProblem::Chain,
                ..
            }
        ));
        let foreign_id = "ff".repeat(16);
        let foreign = CertifiedManifest::certify(
            {
                let mut m = manifest();
                m.vault_id = foreign_id.clone();
                m
            },
            1,
            f.manifest.operators().to_vec(),
            &QuorumSigningKey::derive(&[0x51; 32], &foreign_id).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            verify_line(&genuine, 1, GENESIS, &foreign),
            Err(TrustError::AuditLine {
                problem: AuditLineProblem::BadSignature { .. },
                ..
            })
        ));
        // A line with its seq and prev rewritten to fit elsewhere: the signature covers them.
        let moved = String::from_utf8(genuine.clone())
            .unwrap()
            .replace("\"seq\":1,", "\"seq\":2,");
        assert!(verify_line(moved.as_bytes(), 2, GENESIS, &f.manifest).is_err());
        // Another encoding of the same body (spaces, key order) is not the signed bytes.
        let spaced =
            String::from_utf8(genuine.clone())
                .unwrap()
                .replacen("\"v\":2,", "\"v\": 2,", 1);
        assert!(matches!(
            refused(spaced.as_bytes(), 1, GENESIS),
            TrustError::AuditLine {
                problem: AuditLineProblem::NotCanonical,
                ..
            }
        ));
        // A truncated signature.
        let mut truncated = genuine.clone();
        truncated.drain(truncated.len() - 10..truncated.len() - 2);
        assert!(verify_line(&truncated, 1, GENESIS, &f.manifest).is_err());
        // An operator removed from the manifest can no longer sign.
        let without_bob = f
            .manifest
            .certify_next(
                manifest(),
                vec![operator("alice", &[Role::SecurityOfficer], 1)],
                &quorum_key(),
            )
            .unwrap();
        assert!(verify_line(&genuine, 1, GENESIS, &without_bob).is_err());
    }

    #[test]
    fn custodian_lines_are_unsigned_and_carry_no_authority() {
        let f = fixture();
        let carol = || EntryActor::Custodian("carol".into());
        let line = custodian_line(&body(1, GENESIS, "share_verify", carol())).unwrap();
        let verified = verify_line(&line, 1, GENESIS, &f.manifest).unwrap();
        assert!(!verified.signed);
        assert!(
            String::from_utf8(line.clone())
                .unwrap()
                .contains("{\"custodian\":\"carol\"}")
        );
        // A custodian can never record a seal, a manifest or a checkpoint.
        assert!(custodian_line(&body(1, GENESIS, "seal", carol())).is_err());
        let mut manifest_line = body(1, GENESIS, "share_verify", carol());
        manifest_line
            .details
            .insert("manifest_sha256".into(), "ab".into());
        assert!(custodian_line(&manifest_line).is_err());
        let forged = serde_json::to_vec(&manifest_line).unwrap();
        assert!(matches!(
            verify_line(&forged, 1, GENESIS, &f.manifest),
            Err(TrustError::AuditLine {
                problem: AuditLineProblem::CustodianAuthority { .. },
                ..
            })
        ));
        let seal = serde_json::to_vec(&body(1, GENESIS, "seal", carol())).unwrap();
        assert!(verify_line(&seal, 1, GENESIS, &f.manifest).is_err());
        // Nor can a custodian line borrow an operator's signature.
        let signed = operator_line(
            &f.manifest,
            &body(1, GENESIS, "share_verify", op("bob")),
            &f.bob,
        )
        .unwrap();
        let borrowed = String::from_utf8(signed)
            .unwrap()
            .replace("{\"operator\":\"bob\"}", "{\"custodian\":\"bob\"}");
        assert!(matches!(
            verify_line(borrowed.as_bytes(), 1, GENESIS, &f.manifest),
            Err(TrustError::AuditLine {
                problem: AuditLineProblem::WrongActor,
                ..
            })
        ));
        // And an operator line cannot be built in a custodian's name, nor the reverse.
        assert!(
            operator_line(
                &f.manifest,
                &body(1, GENESIS, "share_verify", carol()),
                &f.bob
            )
            .is_err()
        );
        assert!(custodian_line(&body(1, GENESIS, "share_verify", op("bob"))).is_err());
    }

    #[test]
    fn quorum_lines_are_unsigned_and_record_no_change() {
        let f = fixture();
        let quorum = || EntryActor::Quorum("root@host".into());
        // An opening, its checkpoint or a failed attempt, by a machine with no operator key.
        for event in ["unseal", "drill", "unseal_failed"] {
            let line = quorum_line(&body(1, GENESIS, event, quorum())).unwrap();
            assert_eq!(
                line,
                serde_json::to_vec(&body(1, GENESIS, event, quorum())).unwrap()
            );
            let verified = verify_line(&line, 1, GENESIS, &f.manifest).unwrap();
            assert!(!verified.signed, "{event}");
        }
        // Never an event a role is needed for, nor a custodian's, nor authority details.
        for event in ["seal", "hsm_enrol", ENVELOPE_RECORDED, "share_verify"] {
            assert!(
                quorum_line(&body(1, GENESIS, event, quorum())).is_err(),
                "{event}"
            );
            let forged = serde_json::to_vec(&body(1, GENESIS, event, quorum())).unwrap();
            assert!(
                verify_line(&forged, 1, GENESIS, &f.manifest).is_err(),
                "{event}"
            );
        }
        for detail in AUTHORITY_DETAILS {
            let mut opening = body(1, GENESIS, "unseal", quorum());
            opening.details.insert((*detail).into(), "ab".into());
            assert!(quorum_line(&opening).is_err(), "{detail}");
            let forged = serde_json::to_vec(&opening).unwrap();
            assert!(matches!(
                verify_line(&forged, 1, GENESIS, &f.manifest),
                Err(TrustError::AuditLine {
                    problem: AuditLineProblem::CustodianAuthority { .. },
                    ..
                })
            ));
        }
        // Nor an operator's body, and never a signature.
        assert!(quorum_line(&body(1, GENESIS, "unseal", op("bob"))).is_err());
        let signed =
            operator_line(&f.manifest, &body(1, GENESIS, "unseal", op("bob")), &f.bob).unwrap();
        let borrowed = String::from_utf8(signed)
            .unwrap()
            .replace("{\"operator\":\"bob\"}", "{\"quorum\":\"bob\"}");
        assert!(matches!(
            verify_line(borrowed.as_bytes(), 1, GENESIS, &f.manifest),
            Err(TrustError::AuditLine {
                problem: AuditLineProblem::WrongActor,
                ..
            })
        ));
    }

    #[test]
    fn only_seal_and_envelope_recorded_lines_record_an_envelope() {
        let f = fixture();
        let mut unseal = body(1, GENESIS, "unseal", op("bob"));
        unseal
            .details
            .insert(ENVELOPE_DETAIL.into(), "ab".repeat(32));
        let line = operator_line(&f.manifest, &unseal, &f.bob).unwrap();
        assert!(matches!(
            verify_line(&line, 1, GENESIS, &f.manifest),
            Err(TrustError::AuditLine {
                problem: AuditLineProblem::Invalid { .. },
                ..
            })
        ));
        let mut seal = body(1, GENESIS, "seal", op("bob"));
        seal.details.insert(ENVELOPE_DETAIL.into(), "ab".repeat(32));
        let line = operator_line(&f.manifest, &seal, &f.bob).unwrap();
        assert!(verify_line(&line, 1, GENESIS, &f.manifest).is_ok());
        // A cloud administrator cannot record an envelope without sealing it.
        let mut recorded = body(1, GENESIS, ENVELOPE_RECORDED, op("bob"));
        recorded
            .details
            .insert(ENVELOPE_DETAIL.into(), "ab".repeat(32));
        assert!(operator_line(&f.manifest, &recorded, &f.bob).is_err());
    }

    #[test]
    fn an_operator_writes_only_lines_that_verify() {
        let f = fixture();
        // Alice's key in Bob's name, Alice sealing, Bob opening a ceremony: refused at writing.
        assert!(matches!(
            operator_line(
                &f.manifest,
                &body(1, GENESIS, "unseal", op("bob")),
                &f.alice
            ),
            Err(TrustError::NotAnOperator { .. })
        ));
        assert!(matches!(
            operator_line(
                &f.manifest,
                &body(1, GENESIS, "seal", op("alice")),
                &f.alice
            ),
            Err(TrustError::MissingRole {
                role: Role::CloudAdministrator,
                ..
            })
        ));
        assert!(matches!(
            operator_line(
                &f.manifest,
                &body(1, GENESIS, "ceremony_opened", op("bob")),
                &f.bob
            ),
            Err(TrustError::MissingRole {
                role: Role::SecurityOfficer,
                ..
            })
        ));
        assert!(matches!(
            operator_line(
                &f.manifest,
                &body(1, GENESIS, "unseal", op("mallory")),
                &f.bob
            ),
            Err(TrustError::UnknownOperator { .. })
        ));
    }
}
