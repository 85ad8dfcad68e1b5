//! The trust model: the vault directory is untrusted storage.
//!
//! Anyone who can write to a vault directory (a git remote, a file share, a backup) must not be
//! able to defeat dual control, replace what a quorum opens, rewrite history, or make custodians
//! hand over their shares. Nothing read from the directory is trusted until one of these
//! primitives has authenticated it against something held outside it:
//!
//! - [`signature`]: Ed25519 public keys and signatures (hex keys, base64 signatures).
//! - [`quorum_key`]: the quorum signing key, derived from the recombined quorum secret.
//! - [`identity`]: the vault identity fingerprint that share cards carry and machines pin.
//! - [`certified`]: the quorum-certified manifest, and [`AuthenticatedManifest`], the only
//!   form of a manifest the operations accept.
//! - [`operator`]: operators (security officers, cloud administrators) and their keys, kept on
//!   their own machines.
//! - [`audit_line`]: audit lines signed by the operator who wrote them; custodian lines that
//!   carry no authority.
//! - [`request`]: ceremony requests signed by a security officer, verified by custodians.
//! - [`untrusted_text`]: request text shown with control characters made visible.
//! - [`machine`]: per-machine state: the configuration directory, anchors against rollback,
//!   the PKCS#11 module choice.
//! - [`records`]: the envelope records a machine verified, found without reading them all.
//! - [`token_pin`]: per-token PINs derived from the quorum secret, fitted to the token.
//! - [`duration`]: bounded, overflow-safe durations for expiries.
//!
//! `docs/design.md` ("Trust model: the vault directory is untrusted storage") gives the byte
//! formats and the reasons.

pub mod audit_line;
pub mod certified;
pub mod duration;
mod error;
pub mod identity;
pub mod machine;
pub mod operator;
pub mod quorum_key;
pub mod records;
pub mod request;
pub mod signature;
pub mod token_pin;
pub mod untrusted_text;

pub use certified::{AuthenticatedManifest, CertifiedManifest, RetiredOperator};
pub use error::{AuditLineProblem, NotRecorded, RequestProblem, TrustError};
pub use operator::{Operator, OperatorKey, Role};
