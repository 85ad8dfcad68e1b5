//! Secret-holding types shared across modules.
//!
//! Rules: no `Debug` that shows bytes, no `Clone`, `Copy`, `Default` or `Serialize`; bytes are
//! zeroized on drop; read only through [`secrecy::ExposeSecret`].

pub use secrecy::{ExposeSecret, SecretBox, SecretSlice, SecretString};

/// Secret bytes of any length (shared secrets, derived keys, plaintext payloads).
pub type SecretBytes = SecretSlice<u8>;

/// Wraps a vector as secret bytes, taking ownership so no copy is left behind.
pub fn secret_bytes(bytes: Vec<u8>) -> SecretBytes {
    SecretBytes::from(bytes)
}
