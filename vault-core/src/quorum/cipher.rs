//! SLIP-39 passphrase encryption: a 4-round Feistel network whose round function is
//! PBKDF2-HMAC-SHA256 (10000 × 2^e iterations in all).

use std::num::NonZeroU32;

use zeroize::Zeroizing;

const ROUNDS: u8 = 4;
const BASE_ITERATIONS: u32 = 10_000;

fn salt(identifier: u16, extendable: bool) -> Vec<u8> {
    if extendable {
        Vec::new()
    } else {
        let mut salt = b"shamir".to_vec();
        salt.extend_from_slice(&identifier.to_be_bytes());
        salt
    }
}

fn round(i: u8, passphrase: &[u8], exponent: u8, salt: &[u8], r: &[u8]) -> Zeroizing<Vec<u8>> {
    let iterations = (BASE_ITERATIONS << exponent) / u32::from(ROUNDS);
    let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    let mut password = Zeroizing::new(vec![i]);
    password.extend_from_slice(passphrase);
    let mut full_salt = salt.to_vec();
    full_salt.extend_from_slice(r);
    let mut out = Zeroizing::new(vec![0u8; r.len()]);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &full_salt,
        &password,
        &mut out,
    );
    out
}

fn feistel(
    input: &[u8],
    passphrase: &[u8],
    exponent: u8,
    identifier: u16,
    extendable: bool,
    order: impl Iterator<Item = u8>,
) -> Zeroizing<Vec<u8>> {
    let half = input.len() / 2;
    let mut l = Zeroizing::new(input[..half].to_vec());
    let mut r = Zeroizing::new(input[half..].to_vec());
    let salt = salt(identifier, extendable);
    for i in order {
        let f = round(i, passphrase, exponent, &salt, &r);
        let new_r: Vec<u8> = l.iter().zip(f.iter()).map(|(a, b)| a ^ b).collect();
        l = std::mem::replace(&mut r, Zeroizing::new(new_r));
    }
    let mut out = Zeroizing::new(r.to_vec());
    out.extend_from_slice(&l);
    out
}

/// Encrypts the master secret (even length) into the encrypted master secret.
pub(super) fn encrypt(
    secret: &[u8],
    passphrase: &[u8],
    exponent: u8,
    identifier: u16,
    extendable: bool,
) -> Zeroizing<Vec<u8>> {
    feistel(
        secret,
        passphrase,
        exponent,
        identifier,
        extendable,
        0..ROUNDS,
    )
}

/// Decrypts the encrypted master secret (even length).
pub(super) fn decrypt(
    encrypted: &[u8],
    passphrase: &[u8],
    exponent: u8,
    identifier: u16,
    extendable: bool,
) -> Zeroizing<Vec<u8>> {
    feistel(
        encrypted,
        passphrase,
        exponent,
        identifier,
        extendable,
        (0..ROUNDS).rev(),
    )
}
