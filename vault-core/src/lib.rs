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
//! - [`ceremony`]: remote ceremonies: the request and its purpose, contributions, and opening,
//!   gathering and closing one in the vault.
//! - [`clock`]: RFC 3339 timestamps.
//! - [`secret`]: the secret-holding types shared by the other modules.
//! - [`trust`]: the vault directory as untrusted storage: quorum-certified manifests, operator
//!   keys, signed audit lines and requests, machine anchors.
//! - [`fault`]: the tests' fault points (no-ops outside test builds).
//!
//! # Example
//!
//! Create a vault for three custodians (two of them needed) on a token, seal a secret with the
//! public keys alone, and open it with two shares and the token. Here the token is a
//! throw-away SoftHSM token from the test harness; any PKCS#11 module is used the same way.
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use secrecy::{ExposeSecret, SecretString};
//! use vault_core::hsm::PinRole;
//! use vault_core::manifest::{PinSource, Policy};
//! use vault_core::trust::machine::ConfigDir;
//! use vault_core::{
//!     Collector, GroupDef, InitOptions, Kind, PinProvider, TokenChoice, TokenTarget, Vault,
//! };
//! # use hsm_testing::softhsm::{SO_PIN, SoftHsm, USER_PIN};
//!
//! /// The caller answers for PINs that the quorum does not derive (a terminal, a file...).
//! struct Pins;
//! impl PinProvider for Pins {
//!     fn pin(&self, _: &str, _: PinRole, _: &PinSource) -> Result<SecretString, vault_core::Error> {
//!         Ok(SecretString::from(USER_PIN))
//!     }
//! }
//!
//! # fn main() -> Result<(), vault_core::Error> {
//! let softhsm = SoftHsm::new();
//! softhsm.init_token("demo", SO_PIN, USER_PIN);
//! let dir = tempfile::tempdir().expect("a temporary directory");
//! // This machine's configuration: the operator key init makes, the pin, the anchor.
//! let config = ConfigDir::at(&dir.path().join("config"));
//! let (vault, shares) = Vault::init(
//!     &dir.path().join("vault"),
//!     &InitOptions {
//!         group_threshold: 1,
//!         groups: vec![GroupDef {
//!             name: "custodians".into(),
//!             threshold: 2,
//!             members: vec!["alice".into(), "bob".into(), "carol".into()],
//!         }],
//!         token: TokenTarget {
//!             module: softhsm.module_path(),
//!             label: "demo".into(),
//!             init_token: false,
//!             softhsm_conf: None,
//!         },
//!         user_pin: PinSource::Prompt,
//!         so_pin: PinSource::Prompt,
//!         pins: &Pins,
//!         policy: Policy::default(),
//!         iteration_exponent: 0,
//!         recovery: None,
//!         config: &config,
//!         operator: "olivia".into(),
//!         recipients: Default::default(),
//!     },
//! )?;
//!
//! // Sealing needs neither the token nor the shares, only the fingerprint people compare:
//! // the vault identity, which the quorum's signature on the manifest proves.
//! let fingerprint = vault.identity();
//! vault.seal("db-root", Kind::Secret, BTreeMap::new(), b"hunter2", false, Some(&fingerprint))?;
//!
//! // Opening needs two of the three shares and the token.
//! let mut quorum = Collector::new();
//! for (position, issued) in shares.into_iter().skip(1).enumerate() {
//!     quorum.add(position + 1, issued.share)?;
//! }
//! let token = TokenChoice { pins: &Pins, only: None, force_pin: false };
//! let opened = vault.unseal("db-root", &quorum, token, "unseal")?;
//! assert_eq!(opened.payload.expose_secret(), b"hunter2");
//! assert_eq!(opened.custodians, ["bob", "carol"]);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod audit;
mod audit_tail;
mod canonical;
pub mod ceremony;
pub mod clock;
pub mod credential;
pub mod envelope;
mod error;
pub mod fault;
pub mod hpke;
pub mod hsm;
pub mod manifest;
pub mod progress;
pub mod quorum;
pub mod secret;
pub mod store;
pub mod totp;
pub mod trust;
pub mod vault;

pub use error::{Error, ErrorKind, kind_of};

// What a library user needs most, at the crate's root.
pub use ceremony::{Purpose, Request};
pub use envelope::{Envelope, Kind};
pub use quorum::{Collector, Share};
pub use secret::SecretBytes;
pub use vault::{
    DrillReport, GroupDef, InitOptions, NewToken, PinProvider, RecoveryDef, TokenChoice,
    TokenTarget, Unsealed, Vault,
};
