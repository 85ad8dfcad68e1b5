//! Opening a credential: with a quorum of shares and an enrolled token ([`Vault::unseal`],
//! [`Vault::unseal_with`] for an action while the token is logged in), or with no token at
//! all, through the recovery share set ([`Vault::recover`]). Each is recorded in the audit log.

use std::collections::BTreeMap;

use secrecy::ExposeSecret;

use crate::audit::{Event, Repaired};
use crate::envelope::Envelope;
use crate::hsm::LoginWarning;
use crate::quorum::Collector;
use crate::secret::SecretBytes;

use super::{TokenChoice, Vault};

/// What the audit log and the result name as the token of a tokenless opening.
const NO_TOKEN: &str = "none (recovery key)";

/// The result of unsealing.
pub struct Unsealed {
    /// The secret payload.
    pub payload: SecretBytes,
    /// The envelope (public header).
    pub envelope: Envelope,
    /// The custodians whose shares were used.
    pub custodians: Vec<String>,
    /// Shares that were given but did not fit (position, custodian if known).
    pub rejected: Vec<(usize, Option<String>)>,
    /// The token that served.
    pub token: String,
    /// A PIN warning to show.
    pub warning: Option<LoginWarning>,
    /// A torn audit tail moved aside to record this opening (`recover` only).
    pub repaired: Option<Repaired>,
}

impl std::fmt::Debug for Unsealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsealed")
            .field("credential", &self.envelope.name)
            .field("custodians", &self.custodians)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Unseals credential `name` with the collected shares and an enrolled token; records the
    /// unseal as `purpose` (with the custodians) and signs a checkpoint with the audit key.
    pub fn unseal(
        &self,
        name: &str,
        shares: &Collector,
        token: TokenChoice<'_>,
        purpose: &str,
    ) -> Result<Unsealed, crate::Error> {
        let (unsealed, ()) = self.unseal_with(name, shares, token, purpose, |_, _, _| {
            (BTreeMap::new(), ())
        })?;
        Ok(unsealed)
    }

    /// Unseals as [`Vault::unseal`] and, while the token is still logged in, runs `act` on the
    /// payload (e.g. assuming the AWS role). What `act` returns as details (public facts only:
    /// session key id, expiry) goes into the audit entry, which the checkpoint then signs; its
    /// own result is handed back as it is, success or not.
    pub fn unseal_with<R>(
        &self,
        name: &str,
        shares: &Collector,
        token: TokenChoice<'_>,
        purpose: &str,
        act: impl FnOnce(&Envelope, &SecretBytes, &[String]) -> (BTreeMap<String, String>, R),
    ) -> Result<(Unsealed, R), crate::Error> {
        // Refused before any token work: the opening could not be recorded.
        self.audit().refuse_torn_tail()?;
        let mut acted = None;
        let result = self.open_and_record(name, shares, token, purpose, act, &mut acted);
        if let Err(error) = &result {
            // What `act` did before the failure is recorded with it: a session STS issued
            // before the token failed to sign its entry is named (never printed), so that it
            // can be looked up and revoked.
            self.record_failure(purpose, error, Some(shares), |event| {
                event.credential = Some(name.to_owned());
                for (key, value) in acted.unwrap_or_default() {
                    event.details.entry(key).or_insert(value);
                }
            });
        }
        result
    }

    /// Records a failed opening of credential `name` (shares were given, e.g. one that is not
    /// this vault's, or the token failed) as `<purpose>_failed`, with the kind of failure, its
    /// message (errors carry no secret) and, when they were gathered, how many shares were given
    /// and the custodians they belong to as the manifest knows them. Best effort: a log that cannot take it (torn, busy,
    /// a full disk) is left as it is.
    pub fn record_failed_opening(
        &self,
        name: &str,
        purpose: &str,
        failure: &str,
        message: &str,
        shares: Option<&Collector>,
    ) {
        let mut event = self.failed_event(purpose, failure, message, shares);
        event.credential = Some(name.to_owned());
        let _ = self.record(event);
    }

    fn open_and_record<R>(
        &self,
        name: &str,
        shares: &Collector,
        token: TokenChoice<'_>,
        purpose: &str,
        act: impl FnOnce(&Envelope, &SecretBytes, &[String]) -> (BTreeMap<String, String>, R),
        acted: &mut Option<BTreeMap<String, String>>,
    ) -> Result<(Unsealed, R), crate::Error> {
        let (path, envelope) = self.envelope(name)?;
        let quorum = self.recombine(shares)?;
        self.with_token(
            Some(quorum.secret.expose_secret()),
            token,
            |session, enrollment, key, warning| {
                let payload = envelope.open(&session.dh_oracle(key), &quorum.key, &path)?;
                let (details, result) = act(&envelope, &payload, &quorum.custodians);
                *acted = Some(details.clone());
                let _lock = self.write_lock()?;
                let mut event = Event::new(purpose).detail("token", enrollment.label.clone());
                event.details.extend(details);
                event.credential = Some(name.to_owned());
                event.custodians = quorum.custodians.clone();
                self.append_signed(event, session, &enrollment.label)?;
                Ok((
                    Unsealed {
                        payload,
                        envelope,
                        custodians: quorum.custodians.clone(),
                        rejected: quorum.rejected.clone(),
                        token: enrollment.label.clone(),
                        warning,
                        repaired: None,
                    },
                    result,
                ))
            },
        )
    }

    /// Opens credential `name` with no token at all: the quorum's shares open the quorum half,
    /// the recovery shares (a stricter quorum) derive the recovery key, which opens the token
    /// half. Recorded in the audit log (unsigned: the audit key is on a token).
    /// `details` (public facts only, e.g. the reason) go into the audit entry.
    pub fn recover(
        &self,
        name: &str,
        shares: &Collector,
        recovery_shares: &Collector,
        details: BTreeMap<String, String>,
    ) -> Result<Unsealed, crate::Error> {
        let (path, envelope) = self.envelope(name)?;
        let (quorum, recovery) = self.recovery_keys(shares, recovery_shares)?;
        let payload = envelope.open(&recovery.key, &quorum.key, &path)?;
        let mut event = Event::new("recover")
            .detail("token", NO_TOKEN)
            .detail("recovery_custodians", recovery.custodians.join(","));
        event.details.extend(details);
        event.credential = Some(name.to_owned());
        event.custodians = quorum.custodians.clone();
        let (_, repaired) = self.record_repairing(event)?;
        Ok(Unsealed {
            payload,
            envelope,
            custodians: quorum.custodians,
            rejected: Vec::new(),
            token: NO_TOKEN.into(),
            warning: None,
            repaired,
        })
    }
}
