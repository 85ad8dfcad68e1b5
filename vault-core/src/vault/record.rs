//! What the vault writes into its audit log: plain appends under the writers' lock, appends
//! followed by a checkpoint signed by the token's audit key, and the entry that records a new
//! manifest (its fingerprint and the SHA-256 of its exact bytes, which [`Vault::open`] checks
//! `vault.json` against).

use crate::audit::{Actor, Event, Head, Prepared, Repaired};
use crate::hsm::TokenSession;
use crate::manifest::Manifest;
use crate::store::{MANIFEST, Store, WriteLock};

use super::{Vault, VaultError, now};

/// The event that records a torn tail moved aside.
pub const AUDIT_REPAIR: &str = "audit_repair";

/// The audit detail that records the manifest's hash.
const MANIFEST_HASH: &str = "manifest_sha256";

/// A manifest as written to `vault.json`: what its audit entry records.
pub(super) struct WrittenManifest {
    /// Its fingerprint, as people read it.
    pub fingerprint: String,
    /// SHA-256 of its exact bytes (hex).
    sha256: String,
}

impl WrittenManifest {
    /// The bytes `manifest` is written as, and what records them.
    pub(super) fn of(manifest: &Manifest) -> (Vec<u8>, WrittenManifest) {
        let bytes = manifest.to_bytes();
        let written = WrittenManifest {
            fingerprint: manifest.fingerprint().display(),
            sha256: sha256_hex(&bytes),
        };
        (bytes, written)
    }

    /// An audit entry `name` recording this manifest.
    pub fn event(&self, name: &str) -> Event {
        Event::new(name)
            .detail("fingerprint", self.fingerprint.clone())
            .detail(MANIFEST_HASH, self.sha256.clone())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Writes the bytes [`WrittenManifest::of`] gave as the store's `vault.json` (the caller holds
/// the writers' lock).
pub(super) fn write_manifest_bytes(
    store: &Store,
    lock: &WriteLock,
    bytes: &[u8],
) -> Result<(), crate::Error> {
    store.write(lock, MANIFEST, bytes)?;
    Ok(())
}

/// An audit entry ready to append: signed by a checkpoint made already, or plain (the session
/// was not on the token holding the audit key).
pub(super) enum Closing {
    /// The entry and its checkpoint.
    Signed(Box<Prepared>),
    /// The entry alone.
    Plain(Event),
}

/// Writes `manifest` as the store's `vault.json` (the caller holds the writers' lock).
pub(super) fn write_manifest(
    store: &Store,
    lock: &WriteLock,
    manifest: &Manifest,
) -> Result<WrittenManifest, crate::Error> {
    let (bytes, written) = WrittenManifest::of(manifest);
    store.write(lock, MANIFEST, &bytes)?;
    Ok(written)
}

impl Vault {
    /// The manifest's exact bytes must be the version the audit log last recorded (at init,
    /// rekey or enrolment, each followed by a checkpoint signed by the token's audit key): any
    /// byte changed in `vault.json`, even outside the fingerprinted core, is found here.
    pub(super) fn check_manifest_recorded(&self, bytes: &[u8]) -> Result<(), crate::Error> {
        let actual = sha256_hex(bytes);
        let entries = self.audit().entries()?;
        let recorded = entries
            .iter()
            .rev()
            .find_map(|e| e.details.get(MANIFEST_HASH).map(|h| (e.seq, h)));
        match recorded {
            Some((_, hash)) if *hash == actual => Ok(()),
            Some((seq, _)) => Err(VaultError::ManifestChanged { line: seq }.into()),
            None => Err(VaultError::ManifestChanged { line: 0 }.into()),
        }
    }

    /// Appends `event` and, when `session` is on the token holding the audit key, a checkpoint
    /// signing it, in one write (the caller holds the writers' lock): signed first, so a token
    /// that fails leaves the log untouched, and written together, so a full disk leaves neither.
    pub(super) fn append_signed(
        &self,
        event: Event,
        session: &TokenSession<'_>,
        token_label: &str,
    ) -> Result<(), crate::Error> {
        let closing = self.prepare_closing(event, session, token_label)?;
        self.append_closing(closing)
    }

    /// What [`Vault::append_signed`] would append, with the checkpoint signed now (the token
    /// operation) and nothing written: see [`Vault::append_closing`].
    pub(super) fn prepare_closing(
        &self,
        event: Event,
        session: &TokenSession<'_>,
        token_label: &str,
    ) -> Result<Closing, crate::Error> {
        if self.manifest.audit.token != token_label {
            return Ok(Closing::Plain(event));
        }
        let audit_key = hex::decode(&self.manifest.audit.key_id).unwrap_or_default();
        let prepared = self.audit().prepare_signed(
            event,
            &session.audit_signer(&audit_key),
            &Actor::current(),
            &now(),
        )?;
        Ok(Closing::Signed(Box::new(prepared)))
    }

    /// Appends what [`Vault::prepare_closing`] made (the caller holds the writers' lock).
    pub(super) fn append_closing(&self, closing: Closing) -> Result<(), crate::Error> {
        match closing {
            Closing::Signed(prepared) => {
                self.audit().append_prepared(*prepared)?;
            }
            Closing::Plain(event) => {
                self.append(event)?;
            }
        }
        Ok(())
    }

    /// Takes the writers' lock and refuses when the audit log ends with a torn write: every
    /// operation that changes the vault takes its lock here, before it writes anything.
    pub(super) fn write_lock(&self) -> Result<WriteLock, crate::Error> {
        let lock = self.store.lock()?;
        self.audit().refuse_torn_tail()?;
        Ok(lock)
    }

    /// Appends an event to the audit log under the writers' lock.
    pub fn record(&self, event: Event) -> Result<Head, crate::Error> {
        let _lock = self.write_lock()?;
        self.append(event)
    }

    /// Moves a torn tail of the audit log aside (into `audit.jsonl.torn-<time>` beside it) and
    /// records an `audit_repair` entry naming that file, the torn bytes' length and SHA-256.
    /// `None`: the log had no torn tail, and nothing was written.
    pub fn repair_audit(&self) -> Result<Option<Repaired>, crate::Error> {
        let _lock = self.store.lock()?;
        self.repair_audit_locked()
    }

    fn repair_audit_locked(&self) -> Result<Option<Repaired>, crate::Error> {
        let stamp = crate::clock::rfc3339(crate::clock::now_unix()).replace(':', "");
        let Some(repaired) = self.audit().repair(&stamp)? else {
            return Ok(None);
        };
        let moved_to = repaired
            .moved_to
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.append(
            Event::new(AUDIT_REPAIR)
                .detail("torn_line", repaired.tail.line.to_string())
                .detail("torn_bytes", repaired.tail.len.to_string())
                .detail("torn_sha256", repaired.sha256.clone())
                .detail("moved_to", moved_to),
        )?;
        Ok(Some(repaired))
    }

    /// Appends `event` under the writers' lock even when the audit log ends with a torn write:
    /// the torn bytes are moved aside first, as [`Vault::repair_audit`] does (for `recover`,
    /// the way in when nothing else works, which must neither be refused nor go unrecorded).
    pub(super) fn record_repairing(
        &self,
        event: Event,
    ) -> Result<(Head, Option<Repaired>), crate::Error> {
        let _lock = self.store.lock()?;
        let repaired = self.repair_audit_locked()?;
        Ok((self.append(event)?, repaired))
    }

    /// Appends an event (the caller holds the writers' lock).
    pub(super) fn append(&self, event: Event) -> Result<Head, crate::Error> {
        Ok(self.audit().append(event, &Actor::current(), &now())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_entry_records_the_fingerprint_and_the_hash_of_the_exact_bytes() {
        let written = WrittenManifest {
            fingerprint: "ABCD-EFGH".into(),
            sha256: sha256_hex(b"abc"),
        };
        let event = written.event("rekey");
        assert_eq!(event.event, "rekey");
        assert_eq!(event.details["fingerprint"], "ABCD-EFGH");
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            event.details[MANIFEST_HASH],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
