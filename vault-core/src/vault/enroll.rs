//! Enrolling another token: a backup (an enrolled token opens the token half of each file key
//! and a stanza for the new token is added), or a replacement when every token is lost (the
//! recovery key opens the token half instead, lost tokens are retired, and the audit key moves
//! to the new token when its own is gone).

use secrecy::ExposeSecret;

use crate::hsm::{KeyPurpose, KeyRef, Module, PinRole, Token, TokenDescription};
use crate::manifest::{AuditKey, HsmEnrollment, PinDerivation, PinSource, RetiredAuditKey};
use crate::quorum::Collector;

use crate::trust::quorum_key::QuorumSigningKey;

use super::record::manifest_event;
use super::rewrap::{Change, Scope, rewrap, rewrapped};
use super::tokens::{Modules, PinProvider, Pins, TokenTarget, prepare_token};
use super::{Vault, VaultError};

/// The token to enrol and where its PINs come from.
#[derive(Clone, Copy)]
pub struct NewToken<'a> {
    /// The token.
    pub target: &'a TokenTarget,
    /// Where its user PIN comes from.
    pub user_pin: &'a PinSource,
    /// Where its SO PIN comes from (used only with `init_token`).
    pub so_pin: &'a PinSource,
    /// PINs not derived from the quorum.
    pub pins: &'a dyn PinProvider,
}

impl std::fmt::Debug for NewToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("target", self.target)
            .field("user_pin", self.user_pin)
            .finish_non_exhaustive()
    }
}

/// What [`Vault::enroll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrolment {
    /// The token was enrolled: a stanza for it on every credential, the manifest's next
    /// version written and recorded.
    Enrolled,
    /// The token was enrolled already by a run interrupted before its audit entry: the entry
    /// was recorded now, and nothing else changed.
    RecordedLate,
}

/// The manifest entry of a token enrolled with `key` as its sealing key.
pub(super) fn new_enrollment(
    description: &TokenDescription,
    target: &TokenTarget,
    key: &KeyRef,
    user_pin: &PinSource,
    so_pin: &PinSource,
) -> HsmEnrollment {
    HsmEnrollment {
        label: description.label.clone(),
        serial: description.serial.clone(),
        manufacturer: description.manufacturer.clone(),
        model: description.model.clone(),
        module: target.module.display().to_string(),
        softhsm_conf: target.softhsm_conf.clone(),
        seal_key_id: hex::encode(&key.id),
        seal_public_key: hex::encode(&key.public_key),
        pin: user_pin.clone(),
        so_pin: target.init_token.then(|| so_pin.clone()),
        pin_derivation: Some(PinDerivation::PerToken),
    }
}

impl Vault {
    /// The token `new` names, prepared (initialised when asked) and not enrolled yet.
    fn new_token<'m>(
        &self,
        modules: &'m Modules,
        pins: &Pins<'_>,
        new: &NewToken<'_>,
    ) -> Result<(&'m Module, Token), crate::Error> {
        let module = modules
            .get(&new.target.module)
            .map_err(|reason| VaultError::NoToken {
                tokens: new.target.label.clone(),
                last_error: Some(reason),
            })?;
        let token = prepare_token(module, pins, new.target, new.user_pin, new.so_pin)?;
        if self
            .manifest()
            .hsms
            .iter()
            .any(|h| h.serial == token.description().serial)
        {
            return Err(
                VaultError::Layout(format!("token {} is enrolled already", token.label())).into(),
            );
        }
        Ok((module, token))
    }

    /// Enrols another token (a backup in another site): generates its sealing key and adds a
    /// stanza for it to every credential. Only the token half of each file key is opened, by
    /// a token already enrolled: the payloads are never decrypted and the quorum's half is
    /// never touched. The quorum (`shares`) certifies the manifest's next version, which
    /// is recorded under a signed checkpoint. The vault identity is unchanged (share cards stay
    /// valid). A token enrolled by a run that stopped before recording it is not enrolled
    /// again: its entry is recorded ([`Enrolment::RecordedLate`]). A failure is recorded as
    /// `hsm_enrol_failed`.
    pub fn enroll(
        &mut self,
        shares: &Collector,
        new: &NewToken<'_>,
        pinned: &str,
    ) -> Result<Enrolment, crate::Error> {
        self.enroll_backup(shares, new, pinned)
            .inspect_err(|error| {
                self.record_failure("hsm_enrol", error, Some(shares), |event| {
                    event
                        .details
                        .insert("token".into(), new.target.label.clone());
                })
            })
    }

    fn enroll_backup(
        &mut self,
        shares: &Collector,
        new: &NewToken<'_>,
        pinned: &str,
    ) -> Result<Enrolment, crate::Error> {
        self.check_identity(pinned)?;
        if let Some(enrolled) = self
            .manifest()
            .hsms
            .iter()
            .find(|h| h.label == new.target.label)
            .cloned()
            && !self.manifest_recorded()?
        {
            self.record_interrupted_enrolment(shares, &enrolled, new.pins)?;
            return Ok(Enrolment::RecordedLate);
        }
        let quorum = self.recombine(shares)?;
        let custodians = quorum.custodians.clone();
        let vault_id = self.manifest().vault_id.clone();
        let quorum_key = QuorumSigningKey::derive(quorum.secret.expose_secret(), &vault_id)?;
        let pins = Pins {
            q: Some(quorum.secret.expose_secret()),
            vault_id: &vault_id,
            provider: new.pins,
        };
        let modules = self.open_modules(Some(&new.target.module))?;
        // The enrolled token first: nothing is done to the new one unless it can log in.
        let present = self.first_present(&modules)?;
        let (session, _) = present.login(&pins, false)?;
        let key = self.seal_key_of(&present.enrollment)?;
        let (new_module, token) = self.new_token(&modules, &pins, new)?;
        let new_session = new_module.open_session(&token)?;
        pins.login(
            &new_session,
            Some(PinDerivation::PerToken),
            PinRole::User,
            new.user_pin,
            false,
        )?;
        let new_key = new_session.generate_key_pair(&vault_id, KeyPurpose::Seal)?;

        let lock = self.write_lock()?;
        // Every token operation first (the token half of each file key for the new stanzas,
        // then the checkpoint signing the entry that records the new manifest), nothing
        // written until all have succeeded: a token that fails leaves the vault as it was.
        let oracle = session.dh_oracle(&key);
        let envelopes = rewrapped(
            self.envelope_files(Scope::Current)?,
            &Change::Stanzas {
                hsm: &oracle,
                add: &new_key.public_key,
                remove: &[],
            },
        )?;
        let description = token.description();
        let mut manifest = self.manifest().clone();
        manifest.hsms.push(new_enrollment(
            description,
            new.target,
            &new_key,
            new.user_pin,
            new.so_pin,
        ));
        let trusted =
            self.trusted
                .certify_next(manifest, self.trusted.operators().to_vec(), &quorum_key)?;
        let mut event = manifest_event("hsm_enrol", &trusted)
            .detail("token", description.label.clone())
            .detail("serial", description.serial.clone());
        event.custodians = custodians;
        let closing = self.prepare_closing(event, &session, &present.enrollment.label)?;
        // Envelopes first: a crash before the manifest is written leaves stanzas for a token
        // the manifest does not know yet, which is harmless (and skipped when run again).
        envelopes.write(|_| Ok(()))?;
        self.install(&lock, trusted)?;
        // A crash here leaves a manifest no entry records: enrolling the token again records
        // it ([`Vault::record_interrupted_enrolment`]).
        crate::fault::point("enroll-after-manifest")?;
        self.append_closing(closing)?;
        drop(lock);
        Ok(Enrolment::Enrolled)
    }

    /// Records the entry of an enrolment that was installed but never recorded (a crash
    /// between writing `vault.json` and appending its entry, or a torn entry moved aside): see
    /// [`Vault::record_late`].
    fn record_interrupted_enrolment(
        &self,
        shares: &Collector,
        enrolled: &HsmEnrollment,
        provider: &dyn PinProvider,
    ) -> Result<(), crate::Error> {
        let event = manifest_event("hsm_enrol", &self.trusted)
            .detail("token", enrolled.label.clone())
            .detail("serial", enrolled.serial.clone());
        self.record_late(shares, event, "the enrolment", provider)
    }

    /// Enrols a replacement token when the enrolled tokens are lost: the recovery key (from
    /// the recovery shares, with a quorum) opens the token half of each file key and a stanza
    /// for the new token is added. The tokens in `retire` are removed (their stanzas and their
    /// entries). When the token holding the audit key is retired or absent, a new audit key is
    /// made in the new token and the old one is kept as retired: it still verifies the
    /// checkpoints up to this point and nothing after. The quorum certifies the manifest's
    /// next version. Returns the vault identity (unchanged).
    pub fn enroll_from_recovery(
        &mut self,
        shares: &Collector,
        recovery_shares: &Collector,
        new: &NewToken<'_>,
        pinned: &str,
        retire: &[String],
    ) -> Result<String, crate::Error> {
        self.check_identity(pinned)?;
        for label in retire {
            if !self.manifest().hsms.iter().any(|h| &h.label == label) {
                return Err(VaultError::Layout(format!(
                    "--retire {label}: no enrolled token has that label"
                ))
                .into());
            }
        }
        let quorum = self.recombine(shares)?;
        let recovery = self.recovery_key(recovery_shares)?;
        let mut custodians = quorum.custodians.clone();
        custodians.extend(
            recovery
                .custodians
                .iter()
                .map(|c| format!("{c} (recovery)")),
        );
        let vault_id = self.manifest().vault_id.clone();
        let quorum_key = QuorumSigningKey::derive(quorum.secret.expose_secret(), &vault_id)?;
        let pins = Pins {
            q: Some(quorum.secret.expose_secret()),
            vault_id: &vault_id,
            provider: new.pins,
        };
        let modules = self.open_modules(Some(&new.target.module))?;
        let (new_module, token) = self.new_token(&modules, &pins, new)?;
        // A module that no longer loads is a lost token here; a token that fails is not.
        let audit_token_present = !retire.contains(&self.manifest().audit.token)
            && match self.audit_token(&modules) {
                Ok(present) => present.is_some(),
                Err(crate::Error::Vault(VaultError::TokenAbsent { .. })) => false,
                Err(e) => return Err(e),
            };
        let session = new_module.open_session(&token)?;
        pins.login(
            &session,
            Some(PinDerivation::PerToken),
            PinRole::User,
            new.user_pin,
            false,
        )?;
        let new_key = session.generate_key_pair(&vault_id, KeyPurpose::Seal)?;
        let new_audit = if audit_token_present {
            None
        } else {
            Some(session.generate_key_pair(&vault_id, KeyPurpose::Audit)?)
        };
        let retired_keys: Vec<Vec<u8>> = self
            .manifest()
            .hsms
            .iter()
            .zip(&self.keys.tokens)
            .filter(|(h, _)| retire.contains(&h.label))
            .map(|(_, keys)| keys.seal_public_key.clone())
            .collect();

        let lock = self.write_lock()?;
        rewrap(
            self.envelope_files(Scope::Current)?,
            &Change::Stanzas {
                hsm: &recovery.key,
                add: &new_key.public_key,
                remove: &retired_keys,
            },
            |_| Ok(()),
        )?;
        let description = token.description();
        let mut manifest = self.manifest().clone();
        manifest.hsms.retain(|h| !retire.contains(&h.label));
        manifest.hsms.push(new_enrollment(
            description,
            new.target,
            &new_key,
            new.user_pin,
            new.so_pin,
        ));
        let mut audit_key_moved = None;
        if let Some(audit_key) = &new_audit {
            let last_line = self.audit().head()?.seq;
            let previous = std::mem::replace(
                &mut manifest.audit,
                AuditKey {
                    token: description.label.clone(),
                    key_id: hex::encode(&audit_key.id),
                    public_key: hex::encode(&audit_key.public_key),
                },
            );
            audit_key_moved = Some(format!(
                "replaced: the key of {} verifies lines up to {last_line}; {} holds the new one",
                previous.token, description.label
            ));
            manifest.retired_audit_keys.push(RetiredAuditKey {
                token: previous.token,
                public_key: previous.public_key,
                last_line,
            });
        }
        let trusted =
            self.trusted
                .certify_next(manifest, self.trusted.operators().to_vec(), &quorum_key)?;
        self.install(&lock, trusted)?;
        let mut event = manifest_event("hsm_enrol", &self.trusted)
            .detail("token", description.label.clone())
            .detail("serial", description.serial.clone())
            .detail("opened_with", "the recovery key (no enrolled token)")
            .detail("retired", retire.join(","));
        if let Some(moved) = audit_key_moved {
            event = event.detail("audit_key", moved);
        }
        event.custodians = custodians;
        self.append_signed(event, &session, &description.label)?;
        drop(lock);
        Ok(self.identity())
    }
}
