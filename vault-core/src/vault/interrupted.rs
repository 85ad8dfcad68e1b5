//! A vault change interrupted between writing `vault.json` and appending the entry that records
//! it (a crash, or that entry torn and moved aside by `audit repair`): the manifest in force is
//! certified by the quorum, but no audit entry records it, and `audit verify` says so. Running
//! the same change again records the entry, marked `recorded_late`, and changes nothing else:
//! `hsm enroll` of the token enrolled already, `recovery enable` once its recovery set is in
//! force, an operator change the manifest already shows.

use secrecy::ExposeSecret;

use crate::audit::Event;
use crate::quorum::Collector;

use super::Vault;
use super::tokens::PinProvider;

impl Vault {
    /// Records `event`, the entry of a change that was installed but never recorded
    /// (`interrupted` names it, as in "the enrolment"): the quorum recombines as the change's
    /// did, and the entry is signed by a checkpoint of the token holding the audit key when it
    /// is present. Nothing else changes.
    pub(super) fn record_late(
        &self,
        shares: &Collector,
        event: Event,
        interrupted: &str,
        provider: &dyn PinProvider,
    ) -> Result<(), crate::Error> {
        let quorum = self.recombine(shares)?;
        let modules = self.open_modules(None)?;
        let mut event = event.detail(
            "recorded_late",
            format!("{interrupted} was interrupted after writing vault.json and before this entry"),
        );
        event.custodians = quorum.custodians.clone();
        match self.audit_token(&modules)? {
            Some(present) => {
                let pins = self.pins(Some(quorum.secret.expose_secret()), provider);
                let (session, _) = present.login(&pins, false)?;
                let _lock = self.write_lock()?;
                self.append_signed(event, &session, &present.enrollment.label)?;
            }
            None => {
                self.record(event)?;
            }
        }
        Ok(())
    }
}
