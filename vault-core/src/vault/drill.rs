//! Drills: proving the emergency path works without using it. The shares recombine, the token
//! (or, for a recovery drill, the recovery key) answers, and every envelope opens; the
//! plaintext goes only to the caller's check and is then dropped. The outcome is recorded,
//! and so is a drill that fails.

use std::collections::BTreeMap;

use secrecy::ExposeSecret;

use crate::audit::Event;
use crate::envelope::Envelope;
use crate::hpke::DhOracle;
use crate::quorum::Collector;
use crate::secret::SecretBytes;

use super::{TokenChoice, Vault};

/// What a drill found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillReport {
    /// The custodians whose shares were used.
    pub custodians: Vec<String>,
    /// The members of the recovery set whose shares were used (a recovery drill: the token
    /// was not used).
    pub recovery_custodians: Option<Vec<String>>,
    /// What the check said of each credential, or `FAILED: ...` when it did not open.
    pub outcomes: BTreeMap<String, String>,
}

impl DrillReport {
    /// Whether every credential opened and passed its check (no outcome says `FAILED`).
    pub fn all_passed(&self) -> bool {
        self.outcomes.values().all(|o| !o.contains("FAILED"))
    }
}

/// The check a drill runs on each opened credential: what it says goes into the report.
type Check<'a> = dyn FnMut(&str, &Envelope, &SecretBytes) -> String + 'a;

impl Vault {
    /// A drill: the shares recombine, the token answers, and every envelope opens (the
    /// plaintext goes only to `check`, e.g. to test AWS keys, and is then dropped). Records a
    /// `drill` entry with the participants and what `check` reported, signed by a checkpoint;
    /// a drill that fails (the shares, the token, the log) is recorded as `drill_failed`.
    pub fn drill(
        &self,
        shares: &Collector,
        token: TokenChoice<'_>,
        check: impl FnMut(&str, &Envelope, &SecretBytes) -> String,
    ) -> Result<DrillReport, crate::Error> {
        self.drill_with_token(shares, token, check)
            .inspect_err(|error| self.record_failure("drill", error, Some(shares), |_| {}))
    }

    fn drill_with_token(
        &self,
        shares: &Collector,
        token: TokenChoice<'_>,
        mut check: impl FnMut(&str, &Envelope, &SecretBytes) -> String,
    ) -> Result<DrillReport, crate::Error> {
        let quorum = self.recombine(shares)?;
        self.with_token(
            Some(quorum.secret.expose_secret()),
            token,
            |session, enrollment, key, _| {
                let outcomes = self.open_each(&session.dh_oracle(key), &quorum.key, &mut check)?;
                let _lock = self.write_lock()?;
                let mut event =
                    outcome_event("drill", &outcomes).detail("token", enrollment.label.clone());
                event.custodians = quorum.custodians.clone();
                self.append_signed(event, session, &enrollment.label)?;
                Ok(DrillReport {
                    custodians: quorum.custodians.clone(),
                    recovery_custodians: None,
                    outcomes,
                })
            },
        )
    }

    /// A recovery drill: the quorum and the recovery set recombine, and every envelope opens
    /// with the recovery key in place of a token (the plaintext goes only to `check`). Records
    /// a `recovery_drill` entry with both sets' participants.
    pub fn drill_recovery(
        &self,
        shares: &Collector,
        recovery_shares: &Collector,
        mut check: impl FnMut(&str, &Envelope, &SecretBytes) -> String,
    ) -> Result<DrillReport, crate::Error> {
        let (quorum, recovery) = self.recovery_keys(shares, recovery_shares)?;
        let outcomes = self.open_each(&recovery.key, &quorum.key, &mut check)?;
        let mut event = outcome_event("recovery_drill", &outcomes)
            .detail("token", "none (recovery key)")
            .detail("recovery_custodians", recovery.custodians.join(","));
        event.custodians = quorum.custodians.clone();
        self.record(event)?;
        Ok(DrillReport {
            custodians: quorum.custodians,
            recovery_custodians: Some(recovery.custodians),
            outcomes,
        })
    }

    /// Opens every credential with `hsm` and `quorum` and runs `check` on each payload. An
    /// envelope that does not open is a finding of the drill (`FAILED: ...`); a token that
    /// fails is not a finding about the envelopes, so it stops the drill with its error.
    ///
    /// The token's work is the drill's critical path, so everything else runs beside it: a
    /// second thread reads and checks each envelope and opens its quorum half (software), a
    /// few credentials ahead of the token, which opens the token halves one after another on
    /// the one session.
    fn open_each(
        &self,
        hsm: &dyn DhOracle,
        quorum: &(dyn DhOracle + Sync),
        check: &mut Check<'_>,
    ) -> Result<BTreeMap<String, String>, crate::Error> {
        let names = self.store.credentials()?;
        let total = names.len();
        std::thread::scope(|scope| {
            let (ahead, prepared) = std::sync::mpsc::sync_channel(AHEAD);
            scope.spawn(move || {
                for name in names {
                    let half = self.envelope(&name).and_then(|(path, envelope)| {
                        let half = envelope.open_quorum_half(quorum, &path)?;
                        Ok((path, envelope, half))
                    });
                    // The drill stopped (a token failure): nothing more to prepare.
                    if ahead.send((name, half)).is_err() {
                        break;
                    }
                }
            });
            let mut outcomes = BTreeMap::new();
            for (done, (name, half)) in prepared.into_iter().enumerate() {
                let outcome = match half {
                    Ok((path, envelope, half)) => {
                        match envelope.open_with_quorum_half(hsm, &half, &path) {
                            Ok(payload) => check(&name, &envelope, &payload),
                            Err(e @ crate::Error::Hsm(_)) => return Err(e),
                            Err(e) => format!("FAILED: {}", crate::error::with_causes(&e)),
                        }
                    }
                    Err(e) => format!("FAILED: {}", crate::error::with_causes(&e)),
                };
                outcomes.insert(name, outcome);
                crate::progress::step("opening credentials", done + 1, total);
            }
            Ok(outcomes)
        })
    }
}

/// How many credentials the preparing thread may be ahead of the token.
const AHEAD: usize = 32;

/// The audit entry of a drill: one `credential:<name>` detail per outcome.
fn outcome_event(name: &str, outcomes: &BTreeMap<String, String>) -> Event {
    let mut event = Event::new(name);
    for (credential, outcome) in outcomes {
        event
            .details
            .insert(format!("credential:{credential}"), outcome.clone());
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drill_entry_names_every_credential_and_the_report_tells_a_failure() {
        let outcomes: BTreeMap<String, String> = [
            ("db".to_owned(), "opened".to_owned()),
            (
                "aws".to_owned(),
                "opened; AWS key AKIA FAILED: denied".to_owned(),
            ),
        ]
        .into();
        let event = outcome_event("drill", &outcomes);
        assert_eq!(event.details["credential:db"], "opened");
        assert!(event.details["credential:aws"].contains("FAILED"));
        let report = DrillReport {
            custodians: vec!["alice".into()],
            recovery_custodians: None,
            outcomes,
        };
        assert!(!report.all_passed());
    }
}
