//! Share files encrypted to a custodian's age recipient (`--recipient NAME=age1...` at init),
//! and reading them back with the custodian's identity file (`--identity FILE`). The files are
//! standard ASCII-armored age files: the `age` and `rage` tools decrypt them too.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use crate::exit::{Failure, fail};

/// The armor line that starts an age file.
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

/// Parses `NAME=age1...`.
pub fn parse_recipient(text: &str) -> Result<(String, age::x25519::Recipient)> {
    let (name, key) = text.split_once('=').ok_or_else(|| {
        fail(
            Failure::Usage,
            format!("--recipient {text:?}: expected NAME=age1..."),
        )
    })?;
    let recipient = key.trim().parse::<age::x25519::Recipient>().map_err(|e| {
        fail(
            Failure::Usage,
            format!("--recipient {name}: not an age X25519 recipient ({e})"),
        )
    })?;
    Ok((name.trim().to_owned(), recipient))
}

/// Encrypts `plaintext` to `recipient`, armored.
pub fn encrypt(recipient: &age::x25519::Recipient, plaintext: &[u8]) -> Result<String> {
    age::encrypt_and_armor(recipient, plaintext)
        .map_err(|e| anyhow::anyhow!("age encryption failed: {e}"))
}

/// Whether a file's text is an armored age file.
pub fn is_age(text: &str) -> bool {
    text.trim_start().starts_with(ARMOR_BEGIN)
}

/// Decrypts an armored age file with the identities in `identity_file`.
pub fn decrypt(
    ciphertext: &str,
    identity_file: Option<&Path>,
    what: &Path,
) -> Result<Zeroizing<String>> {
    let identity_file = identity_file.ok_or_else(|| {
        fail(Failure::Usage, format!("{} is encrypted to a custodian's age key: pass --identity FILE (the custodian's age identity)", what.display()))
    })?;
    let identities = age::IdentityFile::from_file(identity_file.display().to_string())
        .with_context(|| format!("reading the age identity file {}", identity_file.display()))?
        .into_identities()
        .map_err(|e| {
            fail(
                Failure::Usage,
                format!(
                    "{}: not an age identity file ({e})",
                    identity_file.display()
                ),
            )
        })?;
    let decryptor = age::Decryptor::new(age::armor::ArmoredReader::new(ciphertext.as_bytes()))
        .map_err(|e| {
            fail(
                Failure::Integrity,
                format!("{}: not a valid age file ({e})", what.display()),
            )
        })?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|_| {
            fail(
                Failure::Quorum,
                format!(
                    "{}: the identity {} does not decrypt it (another custodian's file?)",
                    what.display(),
                    identity_file.display()
                ),
            )
        })?;
    let mut plaintext = Zeroizing::new(String::new());
    reader.read_to_string(&mut plaintext).map_err(|e| {
        fail(
            Failure::Integrity,
            format!("{}: damaged age file ({e})", what.display()),
        )
    })?;
    Ok(plaintext)
}
