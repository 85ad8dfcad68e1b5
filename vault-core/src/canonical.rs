//! The length-prefixed canonical encoding that the manifest fingerprint and the envelope
//! header hash are computed over: every field is `u32 big-endian length || bytes`, so no two
//! different sequences of fields encode alike. One encoder, so both hashes stay defined the
//! same way. (A commitment to a share is computed over it too.)

use ring::digest::{SHA256, digest};

/// A canonical encoding being built. It may hold secret bytes (a share commitment covers the
/// share's value): it is zeroized when dropped.
#[derive(Default)]
pub(crate) struct Canonical(Vec<u8>);

impl Drop for Canonical {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl Canonical {
    /// Appends one field.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Canonical {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
        self
    }

    /// Appends a number, as a field of its 8 big-endian bytes.
    pub fn number(&mut self, n: u64) -> &mut Canonical {
        self.field(&n.to_be_bytes())
    }

    /// The encoding.
    pub fn into_bytes(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }

    /// SHA-256 of the encoding.
    pub fn sha256(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, &self.0).as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_field_is_its_length_then_its_bytes() {
        let mut c = Canonical::default();
        c.field(b"ab").number(1).field(b"");
        assert_eq!(
            c.0,
            [
                &[0, 0, 0, 2][..],
                b"ab",
                &[0, 0, 0, 8],
                &[0, 0, 0, 0, 0, 0, 0, 1],
                &[0, 0, 0, 0]
            ]
            .concat()
        );
    }

    #[test]
    fn moving_a_byte_between_fields_changes_the_hash() {
        let mut a = Canonical::default();
        a.field(b"ab").field(b"c");
        let mut b = Canonical::default();
        b.field(b"a").field(b"bc");
        assert_ne!(a.sha256(), b.sha256());
    }
}
