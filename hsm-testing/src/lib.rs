//! Test harness for breakglass: throw-away SoftHSM tokens (each with its own `SOFTHSM2_CONF`,
//! never the user's), a local AWS endpoint (`moto_server` on loopback), and the outside tools
//! the tests compare against (the Python reference implementations in the repo's `.venv`), and a
//! fault-injection PKCS#11 module in front of SoftHSM ([`shim`], built from `pkcs11-shim/`), and
//! a freed-memory scanner preloaded into a command ([`free_scan`], built from `free-scan/`).
//!
//! A missing SoftHSM module or Python tool is a loud failure with the install hint, never a skip.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod aws;
pub mod free_scan;
pub mod shim;
pub mod softhsm;
pub mod tools;
