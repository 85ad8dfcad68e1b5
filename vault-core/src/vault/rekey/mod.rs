//! Rekey: a new quorum secret and shares (optionally new custodians and a new recovery set),
//! after which the old shares open nothing.
//!
//! - `plan`: the first step, which changes nothing: the old quorum recombines and the new
//!   secret is split ([`RekeyPlan`]);
//! - `journal`: the public record (`rekey.json`) of a rekey in progress, which makes it
//!   resumable and makes the vault refuse everything else until it is finished;
//! - `apply`: the second step, and resuming it: envelopes re-sealed, quorum-derived PINs
//!   changed, the new manifest written and recorded.

mod apply;
mod journal;
mod plan;

pub use plan::{RecoveryChange, RekeyOptions, RekeyPlan};

use super::VaultError;

/// Stops an operation at a named point when `BREAKGLASS_TEST_FAULT` names it: the tests use it
/// to interrupt a rekey exactly there, as a crash or a killed terminal would.
fn fault_point(name: &str) -> Result<(), VaultError> {
    if std::env::var("BREAKGLASS_TEST_FAULT").as_deref() == Ok(name) {
        return Err(VaultError::FaultPoint(name.to_owned()));
    }
    Ok(())
}
