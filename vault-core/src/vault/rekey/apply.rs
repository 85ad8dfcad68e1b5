//! Rekey, second step, and resuming it after an interruption: every envelope (and every kept
//! previous version) re-sealed to the new quorum key, every token PIN the quorum derives
//! changed, the new manifest written and recorded under a signed checkpoint, then the journal
//! removed. Each step is done once: what is found done (an envelope under the new key, a PIN
//! in the journal) is skipped when it runs again.

use secrecy::ExposeSecret;

use crate::hpke::{DhOracle, X25519SecretKey};
use crate::hsm::{HsmError, PinRole, TokenSelector};
use crate::manifest::PinSource;
use crate::quorum::Collector;
use crate::store::WriteLock;

use crate::store::{MANIFEST, SUCCESSION};
use crate::trust::CertifiedManifest;
use crate::trust::identity::{IdentityRecord, Succession};
use crate::trust::quorum_key::QuorumSigningKey;

use super::super::record::manifest_event;
use super::super::rewrap::{Change, Scope, rewrap};
use super::super::tokens::{Modules, PinProvider, derived_pin};
use super::super::{Vault, VaultError};
use super::journal::RekeyJournal;
use super::plan::RekeyPlan;

/// The two quorum secrets of a rekey.
struct Secrets<'a> {
    old: &'a [u8],
    new: &'a [u8],
}

impl Vault {
    /// Rekey, second step: every envelope (and every kept previous version) is re-sealed to the
    /// new quorum key; every token PIN derived from the quorum (user and SO) is changed to the
    /// new quorum's; the new manifest is written and recorded under a signed checkpoint. A
    /// journal (`rekey.json`, public data only) makes it resumable at any point with
    /// [`Vault::rekey_resume`]; until then the vault refuses every other operation. A failure
    /// is recorded as `rekey_failed` (saying whether the journal was kept). Returns the new
    /// fingerprint.
    pub fn rekey_commit(
        &mut self,
        plan: RekeyPlan,
        pins: &dyn PinProvider,
    ) -> Result<String, crate::Error> {
        let custodians = plan.custodians.clone();
        self.rekey_start(plan, pins).inspect_err(|error| {
            self.record_failure("rekey", error, None, |event| {
                event.custodians = custodians;
                let journal = if self.journal_path().exists() {
                    "kept: finish with rekey --resume"
                } else {
                    "none: nothing changed"
                };
                event.details.insert("journal".into(), journal.into());
            })
        })
    }

    fn rekey_start(
        &mut self,
        plan: RekeyPlan,
        pins: &dyn PinProvider,
    ) -> Result<String, crate::Error> {
        self.acting_operator(crate::trust::Role::SecurityOfficer)?;
        let lock = self.write_lock()?;
        self.refuse_pending_rekey()?;
        let modules = self.open_modules(None)?;
        self.quorum_tokens_present(&modules)?;
        let mut journal = RekeyJournal::new(&self.trusted, &plan.manifest, plan.custodians.clone());
        journal.authenticate(plan.old_q.expose_secret(), &self.manifest().vault_id);
        self.write_journal(&lock, &journal)?;
        let secrets = Secrets {
            old: plan.old_q.expose_secret(),
            new: plan.new_q.expose_secret(),
        };
        self.rekey_apply(&lock, &modules, journal, &secrets, pins)
    }

    /// Finishes an interrupted rekey: `old` must meet the quorum before the rekey and `new`
    /// the new one, and the journal must verify with the old quorum secret (it is refused,
    /// with nothing done, when it was edited). The caller checks the manifest before the rekey
    /// ([`Vault::pending_rekey`]) against the fingerprint it pinned.
    pub fn rekey_resume(
        &mut self,
        old: &Collector,
        new: &Collector,
        pins: &dyn PinProvider,
    ) -> Result<String, crate::Error> {
        self.acting_operator(crate::trust::Role::SecurityOfficer)?;
        let lock = self.write_lock()?;
        if !self.journal_path().exists() {
            return Err(VaultError::NoRekeyPending.into());
        }
        let journal = self.read_journal()?;
        let (_, target) = journal.manifests(&self.journal_path())?;
        // The old shares meet the quorum of the manifest before the rekey, whichever of the
        // two vault.json holds now: the vault was opened with the journal's, authenticated.
        let old_quorum = self.recombine(old)?;
        // Nothing in the journal is acted on until the old quorum vouches for it.
        journal
            .verify(old_quorum.secret.expose_secret(), &self.manifest().vault_id)
            .map_err(|reason| VaultError::JournalNotAuthentic {
                journal: self.journal_path(),
                reason,
            })?;
        let combined = new.combine(b"")?;
        let key = X25519SecretKey::derive_key_pair(combined.secret.expose_secret());
        if hex::encode(key.public_key()) != target.quorum.public_key {
            return Err(VaultError::WrongQuorum.into());
        }
        let modules = self.open_modules(None)?;
        let secrets = Secrets {
            old: old_quorum.secret.expose_secret(),
            new: combined.secret.expose_secret(),
        };
        self.rekey_apply(&lock, &modules, journal, &secrets, pins)
    }

    fn rekey_apply(
        &mut self,
        lock: &WriteLock,
        modules: &Modules,
        mut journal: RekeyJournal,
        secrets: &Secrets<'_>,
        pins: &dyn PinProvider,
    ) -> Result<String, crate::Error> {
        let (_, target) = journal.manifests(&self.journal_path())?;
        let (resealed, total) = self.reseal_envelopes(modules, &target, secrets, pins)?;
        crate::fault::point("rekey-after-envelopes")?;
        let changed = self.change_quorum_pins(lock, modules, &mut journal, secrets)?;

        // The new manifest, certified by the new quorum as the next version, recorded and
        // signed; then the journal goes, then this machine's anchor follows the new identity.
        let new_key = QuorumSigningKey::derive(secrets.new, &target.vault_id)?;
        let trusted = CertifiedManifest::certify_with_retired(
            target,
            self.trusted.version() + 1,
            self.trusted.operators().to_vec(),
            self.trusted.retired_operators().to_vec(),
            &new_key,
        )?;
        // First the outgoing quorum's statement that the identity moves to the new one: a
        // machine that pinned the old identity (this one, if it stops before its anchor moves;
        // every other one) follows it, and nothing else moves a pin.
        let previous = IdentityRecord {
            vault_id: self.trusted.vault_id().to_owned(),
            quorum: self.manifest().quorum.clone(),
            quorum_signing_key: self.trusted.document().quorum_signing_key.clone(),
        };
        let old_key = QuorumSigningKey::derive(secrets.old, &previous.vault_id)?;
        let succession = Succession::sign(previous, &old_key, trusted.identity())?;
        let mut bytes = serde_json::to_vec_pretty(&succession).unwrap_or_default();
        bytes.push(b'\n');
        self.store.write(lock, SUCCESSION, &bytes)?;
        self.store
            .write(lock, MANIFEST, &trusted.document().to_bytes())?;
        self.keys = trusted.manifest().keys()?;
        self.trusted = trusted;
        crate::fault::point("rekey-after-manifest")?;
        let mut event = manifest_event("rekey", &self.trusted)
            .detail(
                "new_custodians",
                self.manifest().custodian_names().join(","),
            )
            .detail(
                "group_threshold",
                self.manifest().quorum.group_threshold.to_string(),
            )
            .detail("envelopes_resealed", format!("{resealed} of {total}"))
            .detail("token_pins_changed", changed.join(","));
        event.custodians = journal.custodians.clone();
        // Every envelope is now the new quorum's: each is recorded anew, in the same write.
        let mut events = vec![event];
        events.extend(self.envelope_records("rekey")?);
        // A token fault here stops the rekey with its error and leaves the journal: envelopes
        // and PINs are already the new quorum's and the new manifest is written, so nothing is
        // lost, and `rekey --resume` (which finds every step done) records and signs it. Not
        // retried here: a token that just failed (pulled out, device error) rarely answers a
        // moment later, and an unsigned entry in place of the checkpoint would hide the fault.
        match self.audit_token(modules)? {
            Some(present) => {
                let (session, _) = present.login(&self.pins(Some(secrets.new), pins), false)?;
                self.append_signed_all(events, &session, &present.enrollment.label)?;
            }
            None => {
                self.append_all(events)?;
            }
        }
        let journal_path = self.journal_path();
        std::fs::remove_file(&journal_path).map_err(|cause| crate::store::StoreError::Io {
            path: journal_path.clone(),
            action: "removing the finished rekey journal",
            cause,
        })?;
        let anchor =
            crate::trust::machine::MachineAnchor::read(&self.config, self.trusted.vault_id())?;
        super::super::remember(&self.config, &self.trusted, anchor)?;
        Ok(self.identity())
    }

    /// Every envelope and kept previous version not yet sealed to the new quorum, re-sealed.
    /// Returns how many were, of how many.
    fn reseal_envelopes(
        &self,
        modules: &Modules,
        target: &crate::manifest::Manifest,
        secrets: &Secrets<'_>,
        pins: &dyn PinProvider,
    ) -> Result<(usize, usize), crate::Error> {
        let target_keys = target.keys()?;
        let new_public = target_keys.quorum;
        let new_public_hex = hex::encode(new_public);
        let files = self.envelope_files(Scope::WithHistory)?;
        let total = files.len();
        let pending: Vec<_> = files
            .into_iter()
            .filter(|f| f.envelope.quorum_stanza.recipient != new_public_hex)
            .collect();
        // Only what the log records is re-sealed (and so vouched for by the new quorum): a
        // current envelope put back from an older copy or sealed elsewhere stops the rekey.
        for file in &pending {
            if self
                .store
                .credential_path(&file.envelope.name)
                .is_ok_and(|current| current == file.path)
            {
                self.check_recorded(&file.envelope.name, &file.path, &file.envelope)?;
            }
        }
        if pending.is_empty() {
            return Ok((0, total));
        }
        let present = self.first_present(modules)?;
        let (session, _) = present.login(&self.pins(Some(secrets.old), pins), false)?;
        let key = self.seal_key_of(&present.enrollment)?;
        let oracle = session.dh_oracle(&key);
        let old_key = X25519SecretKey::derive_key_pair(secrets.old);
        let recipients = target_keys.hsm_recipients();
        let resealed = rewrap(
            pending,
            &Change::Reseal {
                hsm: &oracle,
                quorum: &old_key,
                recipients: &recipients,
                quorum_public: &new_public,
            },
            |i| {
                if i == 0 {
                    crate::fault::point("rekey-after-first-envelope")?;
                }
                Ok(())
            },
        )?;
        Ok((resealed, total))
    }

    /// The token PINs the quorum derives, user then SO, one journal entry each. Returns the
    /// changes made now (`<label>:user`, `<label>:so`).
    fn change_quorum_pins(
        &self,
        lock: &WriteLock,
        modules: &Modules,
        journal: &mut RekeyJournal,
        secrets: &Secrets<'_>,
    ) -> Result<Vec<String>, crate::Error> {
        let vault_id = &self.manifest().vault_id;
        let mut changed = Vec::new();
        for enrollment in &self.manifest().hsms {
            let mut roles = Vec::new();
            if enrollment.pin == PinSource::Quorum {
                roles.push((PinRole::User, "user"));
            }
            if enrollment.so_pin == Some(PinSource::Quorum) {
                roles.push((PinRole::SecurityOfficer, "so"));
            }
            for (role, role_name) in roles {
                let step = format!("{}:{role_name}", enrollment.serial);
                if journal.done(&step) {
                    continue;
                }
                let module = modules
                    .of(enrollment)
                    .map_err(|cause| VaultError::TokenAbsent {
                        label: enrollment.label.clone(),
                        serial: enrollment.serial.clone(),
                        cause,
                    })?;
                let token = module.find_token(&TokenSelector::Serial(enrollment.serial.clone()))?;
                let description = token.description();
                let derivation = enrollment.pin_derivation;
                let old_pin = derived_pin(secrets.old, vault_id, derivation, description, role)?;
                let new_pin = derived_pin(secrets.new, vault_id, derivation, description, role)?;
                {
                    let session = module.open_session(&token)?;
                    match session.login(role, &old_pin, false) {
                        Ok(_) => session.change_pin(&old_pin, &new_pin)?,
                        // Changed before an interruption that came before the journal entry.
                        Err(HsmError::PinIncorrect { .. }) => {
                            session.login(role, &new_pin, false)?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                crate::fault::point("rekey-before-pin-journal")?;
                journal.pins_changed.push(step);
                journal.authenticate(secrets.old, vault_id);
                self.write_journal(lock, journal)?;
                changed.push(format!("{}:{role_name}", enrollment.label));
                crate::fault::point("rekey-after-pin")?;
            }
        }
        Ok(changed)
    }
}
