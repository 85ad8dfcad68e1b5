//! The audit log, `audit.jsonl`: one JSON object per line, each carrying the SHA-256 of the
//! previous line's exact bytes, so an edited, removed, inserted or reordered line breaks the
//! chain at that line. Whenever the token is logged in, a checkpoint line signs the chain head
//! with the token's audit key (ECDSA P-256): rewriting history needs that key.
//!
//! Entries hold names and public identifiers only (custodians, credential, ceremony id, access
//! key id, expiry): never a secret. Appending is the caller's to serialise: hold the vault's
//! writers' lock.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The hash of nothing: `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit log failure, naming the file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading or writing the log failed.
    #[error("{}", file.display())]
    Io {
        /// The log.
        file: PathBuf,
        /// The operating system's error.
        #[source]
        cause: std::io::Error,
    },
    /// The last line cannot be read, so nothing can be appended after it.
    #[error("{}: line {line} is damaged ({reason}); run `breakglass audit verify`", file.display())]
    Damaged {
        /// The log.
        file: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// The operating-system user.
    pub user: String,
    /// The host name.
    pub host: String,
}

impl Actor {
    /// The current user and host, from the environment (`USER`, `/etc/hostname`).
    pub fn current() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .or_else(user_from_passwd)
            .unwrap_or_else(|| "unknown".into());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Actor { user, host }
    }
}

/// The name of this process's user, from its uid and `/etc/passwd`.
fn user_from_passwd() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2) == Some(&uid.as_str())).then(|| fields[0].to_owned())
    })
}

/// A signed checkpoint over the chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The hash of the line before the checkpoint (the head it signs).
    pub head: String,
    /// The audit key's CKA_ID (hex).
    pub key_id: String,
    /// ECDSA P-256 signature, `r || s`, base64.
    pub signature: String,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Sequence number, from 1.
    pub seq: u64,
    /// When (RFC 3339 UTC).
    pub time: String,
    /// What happened: `init`, `seal`, `unseal`, `share_verify`, `checkpoint`, ...
    pub event: String,
    /// Who.
    pub actor: Actor,
    /// The credential concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The ceremony concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceremony: Option<String>,
    /// The custodians whose shares were used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custodians: Vec<String>,
    /// Other public facts (access key id, expiry, role, reason). Never a secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// The checkpoint, on `checkpoint` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// Hex SHA-256 of the previous line's bytes ([`GENESIS`] for the first).
    pub prev: String,
}

/// What an event records, before the log numbers and chains it.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// The event name.
    pub event: String,
    /// The credential.
    pub credential: Option<String>,
    /// The ceremony.
    pub ceremony: Option<String>,
    /// Custodians whose shares were used.
    pub custodians: Vec<String>,
    /// Public details.
    pub details: BTreeMap<String, String>,
}

impl Event {
    /// An event with just a name.
    pub fn new(event: &str) -> Event {
        Event {
            event: event.to_owned(),
            ..Event::default()
        }
    }

    /// Adds a public detail.
    pub fn detail(mut self, key: &str, value: impl Into<String>) -> Event {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// Signs checkpoints: the token's audit key, or a software key in tests.
pub trait CheckpointSigner {
    /// The key's id (hex CKA_ID).
    fn key_id(&self) -> String;
    /// ECDSA P-256 with SHA-256 over `message`: the 64-byte `r || s`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, crate::Error>;
}

/// The chain head: the last line's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The last sequence number (0 for an empty log).
    pub seq: u64,
    /// The last line's hash ([`GENESIS`] for an empty log).
    pub hash: String,
}

fn line_hash(line: &[u8]) -> String {
    hex::encode(digest(&SHA256, line).as_ref())
}

fn checkpoint_message(vault_id: &str, seq: u64, head: &str) -> Vec<u8> {
    format!("breakglass-audit-checkpoint/1\n{vault_id}\n{seq}\n{head}").into_bytes()
}

/// An event and its signed checkpoint, ready to append after the head they were made for.
#[derive(Debug)]
pub struct Prepared {
    after: Head,
    entries: [Entry; 2],
}

/// The audit log of one vault.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    vault_id: String,
}

impl AuditLog {
    /// The log at `path`, for `vault_id` (the file may not exist yet).
    pub fn new(path: &Path, vault_id: &str) -> AuditLog {
        AuditLog {
            path: path.to_path_buf(),
            vault_id: vault_id.to_owned(),
        }
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
        |source| AuditError::Io {
            file: self.path.clone(),
            cause: source,
        }
    }

    fn lines(&self) -> Result<Vec<Vec<u8>>, AuditError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(self.io()(e)),
        }
    }

    /// The chain head.
    pub fn head(&self) -> Result<Head, AuditError> {
        let lines = self.lines()?;
        let Some(last) = lines.last() else {
            return Ok(Head {
                seq: 0,
                hash: GENESIS.into(),
            });
        };
        let entry: Entry = serde_json::from_slice(last).map_err(|e| AuditError::Damaged {
            file: self.path.clone(),
            line: lines.len(),
            reason: e.to_string(),
        })?;
        Ok(Head {
            seq: entry.seq,
            hash: line_hash(last),
        })
    }

    /// The hash of line `seq` (1-based) as it is now, if the log has that line.
    pub fn hash_of_line(&self, seq: u64) -> Result<Option<String>, AuditError> {
        let lines = self.lines()?;
        Ok(usize::try_from(seq)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| lines.get(i))
            .map(|l| line_hash(l)))
    }

    /// The entries, in order (for `audit show`).
    pub fn entries(&self) -> Result<Vec<Entry>, AuditError> {
        self.lines()?
            .iter()
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_slice(line).map_err(|e| AuditError::Damaged {
                    file: self.path.clone(),
                    line: i + 1,
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    fn write_entry(&self, entry: &Entry) -> Result<Head, AuditError> {
        let mut line = serde_json::to_vec(entry).map_err(|e| AuditError::Damaged {
            file: self.path.clone(),
            line: 0,
            reason: e.to_string(),
        })?;
        let hash = line_hash(&line);
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(self.io())?;
        file.write_all(&line).map_err(self.io())?;
        file.sync_all().map_err(self.io())?;
        Ok(Head {
            seq: entry.seq,
            hash,
        })
    }

    /// Appends an event (the caller holds the vault's writers' lock) and returns the new head.
    pub fn append(&self, event: Event, actor: &Actor, time: &str) -> Result<Head, AuditError> {
        let head = self.head()?;
        self.write_entry(&Entry {
            seq: head.seq + 1,
            time: time.to_owned(),
            event: event.event,
            actor: actor.clone(),
            credential: event.credential,
            ceremony: event.ceremony,
            custodians: event.custodians,
            details: event.details,
            checkpoint: None,
            prev: head.hash,
        })
    }

    /// An event and a checkpoint signing it, made (and signed) now and appended later with
    /// [`AuditLog::append_prepared`]: an operation that must not write anything unless the
    /// token can sign does every token operation first.
    pub fn prepare_signed(
        &self,
        event: Event,
        signer: &dyn CheckpointSigner,
        actor: &Actor,
        time: &str,
    ) -> Result<Prepared, crate::Error> {
        let head = self.head()?;
        let entry = Entry {
            seq: head.seq + 1,
            time: time.to_owned(),
            event: event.event,
            actor: actor.clone(),
            credential: event.credential,
            ceremony: event.ceremony,
            custodians: event.custodians,
            details: event.details,
            checkpoint: None,
            prev: head.hash.clone(),
        };
        let line = serde_json::to_vec(&entry).map_err(|e| AuditError::Damaged {
            file: self.path.clone(),
            line: 0,
            reason: e.to_string(),
        })?;
        let hash = line_hash(&line);
        let signature = signer.sign(&checkpoint_message(&self.vault_id, entry.seq, &hash))?;
        let checkpoint = Entry {
            seq: entry.seq + 1,
            time: time.to_owned(),
            event: "checkpoint".into(),
            actor: actor.clone(),
            credential: None,
            ceremony: None,
            custodians: Vec::new(),
            details: BTreeMap::new(),
            checkpoint: Some(Checkpoint {
                head: hash.clone(),
                key_id: signer.key_id(),
                signature: B64.encode(signature),
            }),
            prev: hash,
        };
        Ok(Prepared {
            after: head,
            entries: [entry, checkpoint],
        })
    }

    /// Appends what [`AuditLog::prepare_signed`] made, if the log has not moved since (the
    /// caller holds the writers' lock throughout).
    pub fn append_prepared(&self, prepared: Prepared) -> Result<Head, AuditError> {
        if self.head()? != prepared.after {
            return Err(AuditError::Damaged {
                file: self.path.clone(),
                line: 0,
                reason: "the log changed between preparing and appending a signed entry".into(),
            });
        }
        let [entry, checkpoint] = prepared.entries;
        self.write_entry(&entry)?;
        self.write_entry(&checkpoint)
    }

    /// Appends a checkpoint signing the current head.
    pub fn append_checkpoint(
        &self,
        signer: &dyn CheckpointSigner,
        actor: &Actor,
        time: &str,
    ) -> Result<Head, crate::Error> {
        let head = self.head()?;
        let signature = signer.sign(&checkpoint_message(&self.vault_id, head.seq, &head.hash))?;
        Ok(self.write_entry(&Entry {
            seq: head.seq + 1,
            time: time.to_owned(),
            event: "checkpoint".into(),
            actor: actor.clone(),
            credential: None,
            ceremony: None,
            custodians: Vec::new(),
            details: BTreeMap::new(),
            checkpoint: Some(Checkpoint {
                head: head.hash.clone(),
                key_id: signer.key_id(),
                signature: B64.encode(signature),
            }),
            prev: head.hash,
        })?)
    }

    /// Walks the whole chain and checks every checkpoint with `audit_public_key` (65-byte SEC1).
    pub fn verify(&self, audit_public_key: &[u8]) -> Result<VerifyReport, AuditError> {
        self.verify_with_retired(&[], audit_public_key)
    }

    /// As [`AuditLog::verify`], for a vault whose audit key was replaced (its token lost):
    /// a checkpoint on line `n` is checked with the first retired key `(last_line, key)` whose
    /// `last_line` is at least `n`, and with `audit_public_key` after the last of them. A
    /// retired key cannot sign anything after the line it was retired at.
    pub fn verify_with_retired(
        &self,
        retired: &[(u64, Vec<u8>)],
        audit_public_key: &[u8],
    ) -> Result<VerifyReport, AuditError> {
        let lines = self.lines()?;
        let key_for = |line: u64| -> &[u8] {
            retired
                .iter()
                .find(|(last, _)| line <= *last)
                .map_or(audit_public_key, |(_, key)| key.as_slice())
        };
        let mut report = VerifyReport {
            entries: lines.len(),
            ..VerifyReport::default()
        };
        let mut prev = GENESIS.to_owned();
        for (i, line) in lines.iter().enumerate() {
            let number = i + 1;
            let problem = |reason: String| Problem {
                line: number,
                reason,
            };
            let entry: Entry = match serde_json::from_slice(line) {
                Ok(entry) => entry,
                Err(e) => {
                    report.first_problem = Some(problem(format!("not a valid entry ({e})")));
                    return Ok(report);
                }
            };
            if entry.seq != number as u64 {
                report.first_problem = Some(problem(format!(
                    "sequence number {} where {number} belongs (a line removed or inserted)",
                    entry.seq
                )));
                return Ok(report);
            }
            if entry.prev != prev {
                report.first_problem = Some(problem("does not chain to the line before (that line or this one was changed, or lines were reordered)".into()));
                return Ok(report);
            }
            if let Some(checkpoint) = &entry.checkpoint {
                let message = checkpoint_message(&self.vault_id, entry.seq - 1, &checkpoint.head);
                let signature = B64.decode(&checkpoint.signature).unwrap_or_default();
                let verifier = ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    key_for(number as u64),
                );
                if checkpoint.head != prev || verifier.verify(&message, &signature).is_err() {
                    report.bad_signature = Some(number);
                    return Ok(report);
                }
                report.last_checkpoint = Some(number);
                report.checkpoints += 1;
            }
            prev = line_hash(line);
        }
        report.unsigned_tail = lines.len() - report.last_checkpoint.unwrap_or(0);
        report.head = prev;
        Ok(report)
    }
}

/// A problem found at a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The line (1-based).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// What [`AuditLog::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Lines in the log.
    pub entries: usize,
    /// Valid checkpoints.
    pub checkpoints: usize,
    /// The line of the last valid checkpoint.
    pub last_checkpoint: Option<usize>,
    /// Entries after the last checkpoint (not yet signed).
    pub unsigned_tail: usize,
    /// The first broken line, if any.
    pub first_problem: Option<Problem>,
    /// The first checkpoint whose signature does not verify, if any.
    pub bad_signature: Option<usize>,
    /// The head hash, when the chain is intact.
    pub head: String,
}

impl VerifyReport {
    /// Whether the chain is intact and every checkpoint verifies (an unsigned tail is allowed:
    /// it is reported, and signed at the next token login).
    pub fn is_intact(&self) -> bool {
        self.first_problem.is_none() && self.bad_signature.is_none()
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    use super::*;

    struct SoftSigner(EcdsaKeyPair);

    impl CheckpointSigner for SoftSigner {
        fn key_id(&self) -> String {
            "soft".into()
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, crate::Error> {
            Ok(self
                .0
                .sign(&ring::rand::SystemRandom::new(), message)
                .unwrap()
                .as_ref()
                .to_vec())
        }
    }

    fn signer() -> SoftSigner {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        SoftSigner(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn log_with(n: usize, signer: &SoftSigner) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&dir.path().join("audit.jsonl"), "vault");
        let actor = Actor {
            user: "alice".into(),
            host: "h".into(),
        };
        for i in 0..n {
            log.append(
                Event::new("seal").detail("n", i.to_string()),
                &actor,
                "2026-11-24T12:00:00Z",
            )
            .unwrap();
            if i == n / 2 {
                log.append_checkpoint(signer, &actor, "2026-11-24T12:00:00Z")
                    .unwrap();
            }
        }
        (dir, log)
    }

    #[test]
    fn an_intact_chain_verifies_and_reports_the_unsigned_tail() {
        let signer = signer();
        let (_dir, log) = log_with(10, &signer);
        let report = log.verify(signer.0.public_key().as_ref()).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(
            (
                report.entries,
                report.checkpoints,
                report.last_checkpoint,
                report.unsigned_tail
            ),
            (11, 1, Some(7), 4)
        );
        assert_eq!(log.head().unwrap().hash, report.head);
    }

    #[test]
    fn every_changed_byte_is_found_at_its_line() {
        let signer = signer();
        let (_dir, log) = log_with(6, &signer);
        let original = std::fs::read(&log.path).unwrap();
        let key = signer.0.public_key().as_ref().to_vec();
        let last_line_start = original[..original.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .unwrap()
            + 1;
        let mut line = 1;
        // The last line has no successor to chain to it: a change there is only visible
        // through a later checkpoint (or a head recorded elsewhere), so `verify` reports it as
        // the unsigned tail. Every other line is covered by the chain.
        assert!(log.verify(&key).unwrap().unsigned_tail > 0);
        for i in 0..last_line_start {
            if original[i] == b'\n' {
                line += 1;
                continue;
            }
            let mut changed = original.clone();
            changed[i] ^= 0x01;
            std::fs::write(&log.path, &changed).unwrap();
            let report = log.verify(&key).unwrap();
            assert!(
                !report.is_intact(),
                "byte {i} changed and the chain still verifies"
            );
            let found = report
                .first_problem
                .map(|p| p.line)
                .or(report.bad_signature)
                .unwrap();
            // A change is found at its own line or, when it leaves that line valid, at the next
            // line, whose `prev` no longer matches.
            assert!(
                found == line || found == line + 1,
                "byte {i} on line {line}: reported at {found}"
            );
        }
    }

    #[test]
    fn removed_reordered_and_inserted_lines_and_a_wrong_key_are_reported() {
        let signer = signer();
        let (_dir, log) = log_with(6, &signer);
        let key = signer.0.public_key().as_ref().to_vec();
        let original = std::fs::read_to_string(&log.path).unwrap();
        let lines: Vec<&str> = original.lines().collect();
        let write = |ls: &[&str]| std::fs::write(&log.path, ls.join("\n") + "\n").unwrap();
        let mut removed = lines.clone();
        removed.remove(2);
        write(&removed);
        assert_eq!(log.verify(&key).unwrap().first_problem.unwrap().line, 3);
        let mut reordered = lines.clone();
        reordered.swap(1, 2);
        write(&reordered);
        assert_eq!(log.verify(&key).unwrap().first_problem.unwrap().line, 2);
        write(&lines);
        let other = self::signer();
        assert_eq!(
            log.verify(other.0.public_key().as_ref())
                .unwrap()
                .bad_signature,
            Some(5)
        );
        // A truncated last line (a crash mid-write) is named.
        std::fs::write(&log.path, &original[..original.len() - 10]).unwrap();
        assert_eq!(
            log.verify(&key).unwrap().first_problem.unwrap().line,
            lines.len()
        );
    }

    #[test]
    fn a_retired_key_verifies_up_to_its_line_and_nothing_after() {
        let old = signer();
        let new = signer();
        let (_dir, log) = log_with(4, &old);
        let actor = Actor {
            user: "alice".into(),
            host: "h".into(),
        };
        let retired_at = log.head().unwrap().seq;
        log.append(Event::new("hsm_enrol"), &actor, "2026-11-24T12:00:00Z")
            .unwrap();
        log.append_checkpoint(&new, &actor, "2026-11-24T12:00:00Z")
            .unwrap();
        let retired = [(retired_at, old.0.public_key().as_ref().to_vec())];
        let report = log
            .verify_with_retired(&retired, new.0.public_key().as_ref())
            .unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.checkpoints, 2);
        // The new key alone does not verify the old checkpoints.
        assert!(
            log.verify(new.0.public_key().as_ref())
                .unwrap()
                .bad_signature
                .is_some()
        );
        // Whoever holds the lost token cannot sign anything after its retirement.
        log.append_checkpoint(&old, &actor, "2026-11-24T12:00:00Z")
            .unwrap();
        let report = log
            .verify_with_retired(&retired, new.0.public_key().as_ref())
            .unwrap();
        assert_eq!(report.bad_signature, Some(report.entries));
    }
}
