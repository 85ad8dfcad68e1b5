//! The token error: what failed, on which token, the PKCS#11 function and return value, and
//! what to do. Never a PIN.

use std::path::PathBuf;

use cryptoki::context::Function;
use cryptoki::error::{Error as Pkcs11Error, RvError};
use thiserror::Error;

/// A PKCS#11 function and the return value it gave, shown as the standard names them:
/// `C_DeriveKey returned CKR_DEVICE_REMOVED`.
#[derive(Debug, Clone, Copy)]
pub struct Returned {
    /// The function.
    pub function: Function,
    /// Its return value.
    pub rv: RvError,
}

impl Returned {
    /// The function and return value of a PKCS#11 failure, if it is one.
    pub fn of(error: &Pkcs11Error) -> Option<Returned> {
        match error {
            Pkcs11Error::Pkcs11(rv, function) => Some(Returned {
                function: *function,
                rv: *rv,
            }),
            _ => None,
        }
    }

    /// The function as PKCS#11 spells it, `C_DeriveKey`.
    pub fn function_name(&self) -> String {
        format!("C_{:?}", self.function)
    }

    /// The return value as PKCS#11 spells it, `CKR_DEVICE_REMOVED` (a value the standard does
    /// not name is given in hexadecimal).
    pub fn rv_name(&self) -> String {
        match self.rv {
            RvError::VendorDefined(code) => format!("CKR_VENDOR_DEFINED+{code:#x}"),
            RvError::UnknownErrorCode(code) => format!("return value {code:#x}"),
            named => {
                // The variants are the CKR_ names in camel case: DeviceRemoved.
                let camel = format!("{named:?}");
                let mut name = String::from("CKR");
                for c in camel.chars() {
                    if c.is_ascii_uppercase() {
                        name.push('_');
                    }
                    name.push(c.to_ascii_uppercase());
                }
                name
            }
        }
    }
}

impl std::fmt::Display for Returned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} returned {}", self.function_name(), self.rv_name())
    }
}

/// A cryptoki failure, shown as one line: the function and return value by name where it is a
/// PKCS#11 failure (cryptoki's own text gives a paragraph describing the value instead).
#[derive(Debug)]
pub struct Pkcs11Failure(pub Pkcs11Error);

impl std::fmt::Display for Pkcs11Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match Returned::of(&self.0) {
            Some(returned) => returned.fmt(f),
            None => self.0.fmt(f),
        }
    }
}

impl std::error::Error for Pkcs11Failure {}

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
        cause: Pkcs11Failure,
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
        "{role} PIN refused by token {token:?} ({returned}): check the PIN source; \
         each wrong try brings the token closer to locking"
    )]
    PinIncorrect {
        /// The token label.
        token: String,
        /// Which PIN.
        role: PinRole,
        /// The call that refused it (`C_Login` returned `CKR_PIN_INCORRECT`).
        returned: Returned,
    },
    /// The PIN is locked; the token refuses every try.
    #[error(
        "{role} PIN of token {token:?} is locked ({}): the security officer must reset it \
         (for the user PIN: log in as SO and set a new one)",
        returned.as_ref().map_or_else(|| "the token's flags say so; breakglass did not try it".to_owned(), Returned::to_string)
    )]
    PinLocked {
        /// The token label.
        token: String,
        /// Which PIN.
        role: PinRole,
        /// The call that said so, when a call did (`C_Login` or `C_InitToken` returned
        /// `CKR_PIN_LOCKED`); none when the token's flags said so before any try.
        returned: Option<Returned>,
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
        cause: Pkcs11Failure,
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
    /// The PKCS#11 function and return value behind this error, when a call failed.
    pub fn returned(&self) -> Option<Returned> {
        match self {
            HsmError::ModuleLoad { cause, .. } | HsmError::Token { cause, .. } => {
                Returned::of(&cause.0)
            }
            HsmError::PinIncorrect { returned, .. } => Some(*returned),
            HsmError::PinLocked { returned, .. } => *returned,
            _ => None,
        }
    }

    /// Maps a PKCS#11 failure during `operation` on `token` to the most specific error.
    pub(crate) fn from_pkcs11(
        token: &str,
        operation: &'static str,
        role: Option<PinRole>,
        source: Pkcs11Error,
    ) -> HsmError {
        match (Returned::of(&source), role) {
            (
                Some(
                    returned @ Returned {
                        rv: RvError::PinIncorrect,
                        ..
                    },
                ),
                Some(role),
            ) => HsmError::PinIncorrect {
                token: token.to_owned(),
                role,
                returned,
            },
            (
                Some(
                    returned @ Returned {
                        rv: RvError::PinLocked,
                        ..
                    },
                ),
                Some(role),
            ) => HsmError::PinLocked {
                token: token.to_owned(),
                role,
                returned: Some(returned),
            },
            _ => HsmError::Token {
                token: token.to_owned(),
                operation,
                cause: Pkcs11Failure(source),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_call_is_named_by_its_function_and_ckr_value() {
        let error = HsmError::from_pkcs11(
            "vault",
            "ECDH with the sealing key",
            None,
            Pkcs11Error::Pkcs11(RvError::DeviceRemoved, Function::DeriveKey),
        );
        // The fact, then its cause: the PKCS#11 function and return value by their names.
        assert_eq!(
            crate::error::with_causes(&error),
            "token \"vault\": ECDH with the sealing key failed: C_DeriveKey returned CKR_DEVICE_REMOVED"
        );
        let locked = HsmError::from_pkcs11(
            "vault",
            "initialising the token",
            Some(PinRole::SecurityOfficer),
            Pkcs11Error::Pkcs11(RvError::PinLocked, Function::InitToken),
        );
        assert!(
            locked
                .to_string()
                .contains("C_InitToken returned CKR_PIN_LOCKED"),
            "{locked}"
        );
        let named = |rv| {
            Returned {
                function: Function::Login,
                rv,
            }
            .rv_name()
        };
        assert_eq!(
            named(RvError::SessionHandleInvalid),
            "CKR_SESSION_HANDLE_INVALID"
        );
        assert_eq!(
            named(RvError::UserAnotherAlreadyLoggedIn),
            "CKR_USER_ANOTHER_ALREADY_LOGGED_IN"
        );
        assert_eq!(
            named(RvError::UnknownErrorCode(0x1234)),
            "return value 0x1234"
        );
    }
}
