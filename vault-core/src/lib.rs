//! breakglass core: everything that keeps an emergency credential sealed under dual control.
//!
//! Two independent authorities must both act to open a sealed credential: a PKCS#11 token
//! (an EC P-256 key that never leaves it, asked for one ECDH) and a quorum of custodians whose
//! SLIP-39 shares recombine the quorum secret. This crate is synchronous and knows nothing of
//! AWS; it never prompts: secrets reach it through the caller.
//!
//! Modules, one per domain noun:
//! - [`quorum`]: SLIP-39 secret sharing (the custodians' shares).
//! - [`hpke`]: RFC 9180 HPKE base mode over a DH oracle (software key or token key).
//! - [`hsm`]: PKCS#11 access through `cryptoki`.
//! - [`envelope`]: one sealed credential.
//! - [`manifest`]: the vault manifest and its fingerprint.
//! - [`store`]: the vault directory (atomic writes, writers' lock).
//! - [`audit`]: the hash-chained audit log with signed checkpoints.
//! - [`vault`]: the operations of the core flow over all of the above.
//! - [`totp`]: RFC 6238 codes for the sealed MFA seed.
//! - [`ceremony`]: remote ceremony requests and contributions.
//! - [`clock`]: RFC 3339 timestamps.
//! - [`secret`]: the secret-holding types shared by the other modules.
//! - [`trust`]: the vault directory as untrusted storage: quorum-certified manifests, operator
//!   keys, signed audit lines and requests, machine anchors.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod audit;
pub mod ceremony;
pub mod clock;
pub mod credential;
pub mod envelope;
mod error;
pub mod hpke;
pub mod hsm;
pub mod manifest;
pub mod quorum;
pub mod secret;
pub mod store;
pub mod totp;
pub mod trust;
pub mod vault;

pub use error::Error;
