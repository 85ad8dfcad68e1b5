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

/// A growable buffer for secret bytes that leaves no copy behind. A `Vec` that grows frees
/// its old allocation as it was, secret and all (even inside `Zeroizing`, which only clears
/// the last one); this buffer grows by copying into a new allocation and zeroising the old.
/// Serialisers write into it through [`std::io::Write`].
pub struct SecretBuffer(zeroize::Zeroizing<Vec<u8>>);

impl SecretBuffer {
    /// An empty buffer with room for `capacity` bytes before it first grows.
    pub fn with_capacity(capacity: usize) -> SecretBuffer {
        SecretBuffer(zeroize::Zeroizing::new(Vec::with_capacity(capacity)))
    }

    /// Appends `bytes`.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let needed = self.0.len() + bytes.len();
        if needed > self.0.capacity() {
            let mut grown = Vec::with_capacity(needed.max(2 * self.0.capacity()));
            grown.extend_from_slice(&self.0);
            // The old allocation is zeroised as the replaced `Zeroizing` drops.
            self.0 = zeroize::Zeroizing::new(grown);
        }
        self.0.extend_from_slice(bytes);
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, still zeroised when dropped.
    pub fn into_zeroizing(self) -> zeroize::Zeroizing<Vec<u8>> {
        self.0
    }
}

impl std::io::Write for SecretBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for SecretBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBuffer([{} bytes redacted])", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::SecretBuffer;

    #[test]
    fn a_secret_buffer_grows_keeping_every_byte_and_never_shows_them() {
        let mut buffer = SecretBuffer::with_capacity(4);
        buffer.extend_from_slice(b"abc");
        write!(buffer, "defghij").unwrap();
        buffer.extend_from_slice(b"");
        assert_eq!(buffer.as_bytes(), b"abcdefghij");
        assert!(buffer.0.capacity() >= 10);
        assert_eq!(format!("{buffer:?}"), "SecretBuffer([10 bytes redacted])");
        assert_eq!(&buffer.into_zeroizing()[..], b"abcdefghij");
    }
}
