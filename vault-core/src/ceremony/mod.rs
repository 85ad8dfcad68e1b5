//! Remote, asynchronous ceremonies: when custodians cannot be in one room.
//!
//! A security officer opens a **request** (purpose, reason, requester, expiry, the audit chain
//! head, and a fresh X25519 transport public key; the private key stays 0600 in the vault's
//! `ceremonies/`), signed with their operator key ([`crate::trust::request::SignedRequest`]).
//! Each custodian, on any machine, checks offline that a security officer of the vault their
//! share belongs to signed it, reads who asks for what and why, and writes a
//! **contribution**: their share HPKE-sealed to the transport key, with the request's hash in
//! the HPKE `info` and their name in the `aad`. Files travel by any channel: an intercepted
//! contribution opens nothing without the transport key, and cannot be replayed into another
//! ceremony (another hash) or under another name.
//!
//! - `request`: the request and its [`Purpose`], which carries what each purpose needs;
//! - `contribution`: a custodian's sealed share;
//! - `lifecycle`: [`open`], [`gather`], [`close`] and [`cancel`] in the vault; the transport
//!   key is overwritten and removed at close, at cancel, and when the request is found expired.

mod contribution;
mod lifecycle;
mod request;

use std::path::PathBuf;

use thiserror::Error;

pub use contribution::{CONTRIBUTION_FORMAT, Contribution};
pub use lifecycle::{
    Gathered, Opening, Rejected, Requester, cancel, close, destroy_expired, gather, gather_each,
    open, requester,
};
pub use request::{AuditHead, LayoutGroup, Purpose, REQUEST_FORMAT, RekeyLayout, Request};

/// A ceremony that cannot go on, and why. Names the file's role, never share words.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CeremonyError {
    /// Not a request or contribution of this format.
    #[error("{what} is not valid: {reason}")]
    Invalid {
        /// Which file.
        what: String,
        /// Why.
        reason: String,
    },
    /// The request expired.
    #[error("ceremony {id} expired at {expires}")]
    Expired {
        /// The ceremony.
        id: String,
        /// When it expired.
        expires: String,
    },
    /// A contribution made for another ceremony or vault.
    #[error("{what} was made for another ceremony ({found}), not {expected}")]
    OtherCeremony {
        /// Which file.
        what: String,
        /// This ceremony.
        expected: String,
        /// The contribution's.
        found: String,
    },
    /// The contribution does not open: altered, or its name was changed.
    #[error(
        "{what} does not open with this ceremony's transport key: it was altered or its custodian name changed"
    )]
    Tampered {
        /// Which file.
        what: String,
    },
    /// Not a ceremony id (hex).
    #[error("{id:?} is not a ceremony id")]
    BadId {
        /// What was given.
        id: String,
    },
    /// No such ceremony is open in this vault.
    #[error("no open ceremony {id} in this vault (closed, cancelled, or never opened)")]
    NotOpen {
        /// The ceremony.
        id: String,
    },
    /// The request is there but its transport key is not.
    #[error("the transport key of ceremony {id} is gone")]
    TransportKeyGone {
        /// The ceremony.
        id: String,
    },
    /// The transport key file is not a key.
    #[error("{} is damaged", file.display())]
    TransportKeyDamaged {
        /// The key file.
        file: PathBuf,
    },
    /// A second contribution from the same custodian.
    #[error("{what}: {custodian} has contributed already")]
    ContributedTwice {
        /// Which file.
        what: String,
        /// The custodian.
        custodian: String,
    },
    /// A contribution signed with one custodian's name holding another's share.
    #[error("{what}: signed as {signed} but holds the share of {owner}")]
    WrongCustodian {
        /// Which file.
        what: String,
        /// The name it was sealed under.
        signed: String,
        /// Whose share it holds.
        owner: String,
    },
    /// A contribution whose share is nobody's in this vault.
    #[error("{what}: the share of {custodian} does not belong to this vault")]
    ForeignShare {
        /// Which file.
        what: String,
        /// The name it was sealed under.
        custodian: String,
    },
    /// A contribution whose share cannot be used (words, checksum, another share set).
    #[error("{what}")]
    Share {
        /// Which file.
        what: String,
        /// What is wrong with the share.
        #[source]
        source: crate::quorum::QuorumError,
    },
    /// A ceremony asked to stay open for no time, or longer than the maximum.
    #[error(
        "a ceremony stays open between 1 second and {max_seconds} seconds (7 days), not {seconds}"
    )]
    Lifetime {
        /// What was asked.
        seconds: u64,
        /// The maximum ([`crate::trust::duration::MAX_CEREMONY_EXPIRY`]).
        max_seconds: u64,
    },
    /// The audit log no longer holds the head the ceremony was opened on.
    #[error(
        "the audit log no longer holds the head ceremony {id} was opened on (line {line}): history was changed"
    )]
    HistoryChanged {
        /// The ceremony.
        id: String,
        /// The audit line it was opened on.
        line: u64,
    },
}
