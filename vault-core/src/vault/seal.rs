//! Sealing a credential (offline: the authenticated manifest's public keys only, after checking
//! its identity against the pinned fingerprint) and reading an envelope back.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::audit::Event;
use crate::envelope::{self, Envelope, Kind, SealInput};

use super::{Vault, VaultError, now};

impl Vault {
    /// Seals `payload` as credential `name`, offline (public keys only), after checking the
    /// manifest against the pinned fingerprint.
    pub fn seal(
        &self,
        name: &str,
        kind: Kind,
        metadata: BTreeMap<String, String>,
        payload: &[u8],
        replace: bool,
        pinned: Option<&str>,
    ) -> Result<PathBuf, crate::Error> {
        let pinned = pinned.ok_or_else(|| VaultError::NotPinned {
            vault_id: self.manifest().vault_id.clone(),
        })?;
        self.check_identity(pinned)?;
        self.acting_operator(crate::trust::Role::CloudAdministrator)?;
        crate::store::validate_name(name)?;
        let hsm_keys = self.keys.hsm_recipients();
        let quorum_key = self.keys.quorum;
        let envelope = envelope::seal(&SealInput {
            vault_id: &self.manifest().vault_id,
            name,
            kind,
            created: now(),
            metadata,
            payload,
            hsm_public_keys: &hsm_keys,
            quorum_public_key: &quorum_key,
        })?;
        let lock = self.write_lock()?;
        // The envelope is written beside its place, recorded, then renamed in: a seal the
        // audit log could not record (a full disk) leaves the vault as it was.
        let staged = self
            .store
            .stage_credential(&lock, name, &envelope.to_bytes(), replace)?;
        let mut event = Event::new("seal")
            .detail(crate::audit::ENVELOPE_DETAIL, envelope.record_digest())
            .detail("kind", kind.as_str())
            .detail("replace", replace.to_string());
        event.credential = Some(name.to_owned());
        self.append(event)?;
        Ok(staged.commit()?)
    }

    /// Reads and checks the envelope of `name` (parse, canonical form, vault, name).
    /// Reads and checks the envelope of `name` (parse, canonical form, vault, name) and
    /// requires it to be the envelope the audit log's latest signed record names. A seal
    /// recorded whose rename a crash stopped is completed by the next writer; until then its
    /// envelope is opened where it was left.
    pub fn envelope(&self, name: &str) -> Result<(PathBuf, Envelope), crate::Error> {
        let read = self
            .store
            .read_credential(name)
            .map_err(crate::Error::from)
            .and_then(|(path, bytes)| {
                let envelope = Envelope::from_bytes(&bytes, &path)?;
                envelope.check_identity(&self.manifest().vault_id, name, &path)?;
                self.check_recorded(name, &path, &envelope)?;
                Ok((path, envelope))
            });
        match read {
            Ok(found) => Ok(found),
            Err(error) => match self.recorded_staged(name) {
                Ok(Some(staged)) => Ok(staged),
                _ => Err(error),
            },
        }
    }
}
