//! Token PINs derived from the quorum secret, one per token, fitted to what the token accepts.
//!
//! `PIN = hex(HKDF-SHA256(ikm = Q, salt = vault id, info = Canonical["breakglass token pin/2",
//! vault id, token serial, role]))`, lowercase, cut to the token's length: 32 characters
//! (128 bits) when the token takes them, else its advertised maximum (`CK_TOKEN_INFO`
//! `ulMaxPinLen`; some hardware takes 16 or fewer), never fewer than [`MIN_DERIVED_PIN`] nor
//! than the token's `ulMinPinLen`. Hex because every token takes ASCII digits and letters.
//!
//! Binding the serial gives each token its own PIN: a PIN seen on one token (a logged session,
//! a shoulder) opens no other. Binding the role keeps the user and SO PINs apart. The PIN is
//! still a function of `Q` alone, so the token cannot be logged into without a quorum.

use secrecy::SecretString;
use zeroize::Zeroizing;

use super::TrustError;
use super::quorum_key::hkdf32;
use crate::canonical::Canonical;
use crate::hsm::PinRole;

/// The domain tag of a token PIN.
pub const TOKEN_PIN_DOMAIN: &[u8] = b"breakglass token pin/2";
/// The length of a derived PIN when the token allows it.
pub const PREFERRED_PIN: usize = 32;
/// The shortest derived PIN (32 bits against a token that locks after a few tries).
pub const MIN_DERIVED_PIN: usize = 8;

/// What a token says about its PINs (`CK_TOKEN_INFO`), in bytes. A maximum of 0 or beyond
/// [`PREFERRED_PIN`] (including `CK_UNAVAILABLE_INFORMATION`) leaves the preferred length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinLimits {
    /// `ulMinPinLen`.
    pub min: u64,
    /// `ulMaxPinLen`.
    pub max: u64,
}

/// The length a derived PIN takes on a token with these limits.
pub fn fitted_length(serial: &str, limits: PinLimits) -> Result<usize, TrustError> {
    let max = match usize::try_from(limits.max) {
        Ok(0) | Err(_) => PREFERRED_PIN,
        Ok(max) => max.min(PREFERRED_PIN),
    };
    let min = usize::try_from(limits.min)
        .unwrap_or(usize::MAX)
        .max(MIN_DERIVED_PIN);
    if max < min {
        return Err(TrustError::PinLength {
            serial: serial.to_owned(),
            min: limits.min,
            max: limits.max,
            needed: MIN_DERIVED_PIN,
        });
    }
    Ok(max)
}

/// The PIN for `role` on the token with `serial` in vault `vault_id`.
pub fn token_pin(
    q: &[u8],
    vault_id: &str,
    serial: &str,
    role: PinRole,
    limits: PinLimits,
) -> Result<SecretString, TrustError> {
    let serial_trimmed = serial.trim();
    if serial_trimmed.is_empty() {
        return Err(TrustError::NoTokenSerial);
    }
    let length = fitted_length(serial_trimmed, limits)?;
    let role = match role {
        PinRole::User => "user",
        PinRole::SecurityOfficer => "so",
    };
    let mut info = Canonical::default();
    info.field(TOKEN_PIN_DOMAIN)
        .field(vault_id.as_bytes())
        .field(serial_trimmed.as_bytes())
        .field(role.as_bytes());
    let key = hkdf32(q, vault_id.as_bytes(), &[info.into_bytes().as_slice()]);
    let mut text = Zeroizing::new(hex::encode(&key[..]));
    text.truncate(length);
    Ok(SecretString::from(text.as_str()))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const Q: [u8; 32] = [0x33; 32];
    const ANY: PinLimits = PinLimits { min: 4, max: 255 };

    fn pin(serial: &str, role: PinRole, limits: PinLimits) -> String {
        token_pin(&Q, "vault", serial, role, limits)
            .unwrap()
            .expose_secret()
            .to_owned()
    }

    #[test]
    fn the_pin_fits_the_tokens_advertised_lengths() {
        assert_eq!(pin("1", PinRole::User, ANY).len(), 32);
        assert_eq!(
            pin("1", PinRole::User, PinLimits { min: 4, max: 16 }).len(),
            16
        );
        assert_eq!(
            pin("1", PinRole::User, PinLimits { min: 6, max: 8 }).len(),
            8
        );
        assert_eq!(
            pin("1", PinRole::User, PinLimits { min: 0, max: 0 }).len(),
            32
        );
        assert_eq!(
            pin(
                "1",
                PinRole::User,
                PinLimits {
                    min: 4,
                    max: u64::MAX
                }
            )
            .len(),
            32
        );
        // A shorter PIN is the longer one cut: the same token always gets the same prefix.
        assert!(pin("1", PinRole::User, ANY).starts_with(&pin(
            "1",
            PinRole::User,
            PinLimits { min: 4, max: 16 }
        )));
        assert!(
            pin("1", PinRole::User, ANY)
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        );
        // Tokens that cannot take a safe PIN are refused, naming the serial and limits.
        for limits in [PinLimits { min: 4, max: 6 }, PinLimits { min: 40, max: 64 }] {
            assert!(matches!(
                token_pin(&Q, "vault", "77", PinRole::User, limits),
                Err(TrustError::PinLength { serial, .. }) if serial == "77"
            ));
        }
    }

    #[test]
    fn two_tokens_two_roles_two_vaults_and_two_quorums_get_different_pins() {
        let base = pin("0001", PinRole::User, ANY);
        assert_eq!(base, pin("0001", PinRole::User, ANY));
        assert_ne!(base, pin("0002", PinRole::User, ANY));
        assert_ne!(base, pin("0001", PinRole::SecurityOfficer, ANY));
        let other_vault = token_pin(&Q, "vault2", "0001", PinRole::User, ANY).unwrap();
        assert_ne!(base, other_vault.expose_secret());
        let other_q = token_pin(&[0x34; 32], "vault", "0001", PinRole::User, ANY).unwrap();
        assert_ne!(base, other_q.expose_secret());
        // PKCS#11 pads serials with spaces: the padding is not part of the identity.
        assert_eq!(base, pin("0001    ", PinRole::User, ANY));
        assert!(matches!(
            token_pin(&Q, "vault", "   ", PinRole::User, ANY),
            Err(TrustError::NoTokenSerial)
        ));
    }

    #[test]
    fn the_pin_is_never_shown_by_debug() {
        let secret = token_pin(&Q, "vault", "1", PinRole::User, ANY).unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains(&secret.expose_secret()[..8]));
    }
}
