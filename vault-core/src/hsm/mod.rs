//! PKCS#11 token access through `cryptoki`.
//!
//! Being implemented (see issue "Foundation").

use thiserror::Error;

/// A token failure. Carries the PKCS#11 function and return value where one is involved.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HsmError {
    /// No token with the given label is present in the module.
    #[error("no token labelled {label:?} in PKCS#11 module {module}")]
    TokenNotFound {
        /// The label asked for.
        label: String,
        /// The module path.
        module: String,
    },
}
