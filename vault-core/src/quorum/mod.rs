//! SLIP-39 secret sharing: the custodians' shares of the quorum secret.
//!
//! Being implemented (see issue "Quorum").

use thiserror::Error;

/// A share or quorum failure, naming the share at fault. Never carries share words.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum QuorumError {
    /// Fewer shares than the threshold.
    #[error("not enough shares: {missing} more needed")]
    NotEnoughShares {
        /// How many more shares are needed.
        missing: usize,
    },
}
