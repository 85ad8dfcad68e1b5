//! The token error: what failed, on which token, the PKCS#11 function and return value, and
//! what to do. Never a PIN.

use std::path::PathBuf;

use cryptoki::error::{Error as Pkcs11Error, RvError};
use thiserror::Error;

/// Which PIN a login used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinRole {
    /// The normal user (`CKU_USER`): everyday operations.
    User,
    /// The security officer (`CKU_SO`): token initialisation and the user PIN.
    SecurityOfficer,
}

impl std::fmt::Display for PinRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PinRole::User => "user",
            PinRole::SecurityOfficer => "security officer",
        })
    }
}

/// A token failure. Carries the PKCS#11 function and return value where one is involved.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HsmError {
    /// The PKCS#11 module could not be loaded or initialised.
    #[error("cannot load PKCS#11 module {}", module.display())]
    ModuleLoad {
        /// The module path.
        module: PathBuf,
        /// What the loader or `C_Initialize` said.
        #[source]
        cause: Pkcs11Error,
    },
    /// No token matches the label or serial asked for.
    #[error("no token {wanted} in PKCS#11 module {}; tokens present: {}", module.display(), list_or_none(present))]
    TokenNotFound {
        /// What was asked for, e.g. `labelled "vault"`.
        wanted: String,
        /// The module path.
        module: PathBuf,
        /// The labels of the tokens that are present.
        present: Vec<String>,
    },
    /// Several tokens carry the label asked for: name it by serial instead.
    #[error("several tokens are labelled {label:?} (serials {}): select one by serial", serials.join(", "))]
    AmbiguousLabel {
        /// The label.
        label: String,
        /// Their serial numbers.
        serials: Vec<String>,
    },
    /// No slot holds an uninitialised token to initialise.
    #[error("no free slot with an uninitialised token in PKCS#11 module {}", module.display())]
    NoFreeSlot {
        /// The module path.
        module: PathBuf,
    },
    /// The PIN was refused.
    #[error(
        "{role} PIN refused by token {token:?} (C_Login: CKR_PIN_INCORRECT): check the PIN source; \
         each wrong try brings the token closer to locking"
    )]
    PinIncorrect {
        /// The token label.
        token: String,
        /// Which PIN.
        role: PinRole,
    },
    /// The PIN is locked; the token refuses every try.
    #[error(
        "{role} PIN of token {token:?} is locked: the security officer must reset it \
         (for the user PIN: log in as SO and set a new one)"
    )]
    PinLocked {
        /// The token label.
        token: String,
        /// Which PIN.
        role: PinRole,
    },
    /// The next wrong PIN would lock the token, so breakglass did not try.
    #[error(
        "{role} PIN of token {token:?} is at its final try: breakglass did not log in, since one \
         more wrong PIN would lock the token; make sure of the PIN, then force the attempt"
    )]
    PinFinalTry {
        /// The token label.
        token: String,
        /// Which PIN.
        role: PinRole,
    },
    /// The PIN could not be obtained from its source.
    #[error("token {token:?}: {reason}")]
    PinUnavailable {
        /// The token label.
        token: String,
        /// Why (the source named, never the PIN).
        reason: String,
    },
    /// A key the vault expects is not on the token.
    #[error(
        "token {token:?} holds no {what} with CKA_ID {id}: is this the token the vault was made with?"
    )]
    KeyNotFound {
        /// The token label.
        token: String,
        /// What kind of object, e.g. "private key".
        what: &'static str,
        /// The CKA_ID, hex.
        id: String,
    },
    /// A public key from the token or the caller is not a P-256 point.
    #[error("token {token:?}: {reason}")]
    BadPublicKey {
        /// The token label.
        token: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An operation succeeded but gave a wrong result (found by `hsm check`, which compares
    /// the token's answers with software).
    #[error("token {token:?}: {what}")]
    CheckFailed {
        /// The token label.
        token: String,
        /// What was wrong.
        what: &'static str,
    },
    /// Any other PKCS#11 failure: the function and return value are in `source`.
    #[error("token {token:?}: {operation} failed")]
    Token {
        /// The token label (or the module path when no token is involved yet).
        token: String,
        /// What breakglass was doing.
        operation: &'static str,
        /// The PKCS#11 function and return value.
        #[source]
        cause: Pkcs11Error,
    },
}

fn list_or_none(labels: &[String]) -> String {
    if labels.is_empty() {
        "none".to_owned()
    } else {
        labels
            .iter()
            .map(|l| format!("{l:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl HsmError {
    /// Maps a PKCS#11 failure during `operation` on `token` to the most specific error.
    pub(crate) fn from_pkcs11(
        token: &str,
        operation: &'static str,
        role: Option<PinRole>,
        source: Pkcs11Error,
    ) -> HsmError {
        match (&source, role) {
            (Pkcs11Error::Pkcs11(RvError::PinIncorrect, _), Some(role)) => HsmError::PinIncorrect {
                token: token.to_owned(),
                role,
            },
            (Pkcs11Error::Pkcs11(RvError::PinLocked, _), Some(role)) => HsmError::PinLocked {
                token: token.to_owned(),
                role,
            },
            _ => HsmError::Token {
                token: token.to_owned(),
                operation,
                cause: source,
            },
        }
    }
}
