//! Rekey: a new quorum secret and shares (optionally new custodians and a new recovery set),
//! after which the old shares open nothing.
//!
//! - `plan`: the first step, which changes nothing: the old quorum recombines and the new
//!   secret is split ([`RekeyPlan`]);
//! - `journal`: the public record (`rekey.json`) of a rekey in progress, which makes it
//!   resumable and makes the vault refuse everything else until it is finished;
//! - `apply`: the second step, and resuming it: envelopes re-sealed, quorum-derived PINs
//!   changed, the new manifest written and recorded.
//!
//! `tests` runs all three against a SoftHSM token without the binary: whole, stopped at every
//! fault point and resumed, with edited journals and with the wrong quorum.

mod apply;
mod journal;
mod plan;
#[cfg(test)]
mod tests;

pub(super) use journal::journal_previous;
pub use plan::{RecoveryChange, RekeyOptions, RekeyPlan};
