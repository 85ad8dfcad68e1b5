//! Failed attempts: an operation that fails once custodians have given their shares (a share
//! that is not this vault's, a token that fails, a full disk) leaves a `<purpose>_failed` entry
//! in the audit log, so that no use of the shares goes unrecorded. Errors carry no secret, so
//! the entry holds the kind of failure and its message, and whose shares were given.

use crate::audit::Event;
use crate::quorum::Collector;

use super::Vault;

impl Vault {
    /// The entry of a failed `purpose`: `<purpose>_failed` with the kind of failure, its
    /// message and, when they were gathered, how many shares were given and the custodians
    /// they belong to as the manifest knows them.
    pub(super) fn failed_event(
        &self,
        purpose: &str,
        failure: &str,
        message: &str,
        shares: Option<&Collector>,
    ) -> Event {
        let mut event = Event::new(&format!("{purpose}_failed"))
            .detail("failure", failure)
            .detail("error", message);
        if let Some(shares) = shares {
            event = event.detail("shares_given", shares.len().to_string());
            event.custodians = shares
                .shares()
                .filter_map(|(_, share)| self.custodian_of(share))
                .collect();
        }
        event
    }

    /// Records `error`, the failure of `purpose` after `shares` were given, as
    /// [`Vault::failed_event`] completed by `complete` (the credential, the token, the
    /// custodians when no collector is at hand). Best effort: a log that is torn or held by
    /// another writer takes nothing now, and one that cannot take it (a full disk) is left as
    /// it is; the caller returns `error` either way.
    pub(super) fn record_failure(
        &self,
        purpose: &str,
        error: &crate::Error,
        shares: Option<&Collector>,
        complete: impl FnOnce(&mut Event),
    ) {
        if matches!(
            error.kind(),
            crate::ErrorKind::TornAudit | crate::ErrorKind::Busy
        ) {
            return;
        }
        let failure = format!("{:?}", error.kind()).to_lowercase();
        let mut event =
            self.failed_event(purpose, &failure, &crate::error::with_causes(error), shares);
        complete(&mut event);
        let _ = self.record(event);
    }
}
