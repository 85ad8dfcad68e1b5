//! Share files encrypted to a custodian's recipient (`--recipient NAME=age1...`, or an
//! `ssh-ed25519` / `ssh-rsa` public key as age accepts them), and reading them back with the
//! custodian's identity file (`--identity FILE`: an age identity file or an OpenSSH private
//! key). The files are standard ASCII-armored age files: the `age` and `rage` tools decrypt
//! them too. The vault remembers each recipient in its certified manifest, in the text form
//! [`CustodianRecipient::text`] gives.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use zeroize::Zeroizing;

use crate::exit::{Failure, fail};

/// The armor line that starts an age file.
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

/// A custodian's recipient: an age X25519 key or an SSH public key.
#[derive(Clone)]
pub struct CustodianRecipient {
    text: String,
    key: RecipientKey,
}

#[derive(Clone)]
enum RecipientKey {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
}

impl std::fmt::Debug for CustodianRecipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl CustodianRecipient {
    /// Parses `age1...`, or an OpenSSH public key line (`ssh-ed25519 AAAA... [comment]`,
    /// `ssh-rsa AAAA... [comment]`; the comment is not kept). The error says why not.
    pub fn parse(text: &str) -> std::result::Result<CustodianRecipient, String> {
        let text = text.trim();
        if text.starts_with("age1") {
            let key = text
                .parse::<age::x25519::Recipient>()
                .map_err(|e| format!("not an age X25519 recipient ({e})"))?;
            return Ok(CustodianRecipient {
                text: key.to_string(),
                key: RecipientKey::X25519(key),
            });
        }
        if ["ssh-", "ecdsa-", "sk-"]
            .iter()
            .any(|p| text.starts_with(p))
        {
            use age::ssh::ParseRecipientKeyError as E;
            let key = text.parse::<age::ssh::Recipient>().map_err(|e| match e {
                E::Unsupported(kind) => format!(
                    "{kind} keys are not supported by age (use an ssh-ed25519 or ssh-rsa key)"
                ),
                E::RsaModulusTooSmall => "the ssh-rsa key is shorter than 2048 bits".into(),
                E::RsaModulusTooLarge => "the ssh-rsa key is longer than 4096 bits".into(),
                _ => "not a valid OpenSSH public key line".into(),
            })?;
            return Ok(CustodianRecipient {
                text: key.to_string(),
                key: RecipientKey::Ssh(key),
            });
        }
        Err("expected an age recipient (age1...) or an ssh-ed25519 / ssh-rsa public key".into())
    }

    /// The form the manifest remembers: `age1...`, or `ssh-ed25519 AAAA...` without comment.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What a card and a message show to identify the key: the `age1...` recipient itself
    /// (it is short), or for an SSH key its type and `SHA256:` fingerprint as
    /// `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        match &self.key {
            RecipientKey::X25519(_) => self.text.clone(),
            RecipientKey::Ssh(_) => {
                let mut parts = self.text.split(' ');
                let kind = parts.next().unwrap_or_default();
                let blob = parts
                    .next()
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .unwrap_or_default();
                let digest = ring::digest::digest(&ring::digest::SHA256, &blob);
                format!(
                    "{kind} SHA256:{}",
                    base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref())
                )
            }
        }
    }

    /// Encrypts `plaintext` to this recipient, armored.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String> {
        let armored = match &self.key {
            RecipientKey::X25519(key) => age::encrypt_and_armor(key, plaintext),
            RecipientKey::Ssh(key) => age::encrypt_and_armor(key, plaintext),
        };
        armored.map_err(|e| anyhow::anyhow!("age encryption failed: {e}"))
    }
}

/// Parses `NAME=RECIPIENT` (the `--recipient` option).
pub fn parse_recipient(text: &str) -> Result<(String, CustodianRecipient)> {
    let (name, key) = text.split_once('=').ok_or_else(|| {
        fail(
            Failure::Usage,
            format!("--recipient {text:?}: expected NAME=age1... or NAME=\"ssh-ed25519 AAAA...\""),
        )
    })?;
    let name = name.trim();
    let recipient = CustodianRecipient::parse(key)
        .map_err(|reason| fail(Failure::Usage, format!("--recipient {name}=...: {reason}")))?;
    Ok((name.to_owned(), recipient))
}

/// Whether a file's text is an armored age file.
pub fn is_age(text: &str) -> bool {
    text.trim_start().starts_with(ARMOR_BEGIN)
}

/// Asks for an encrypted SSH key's passphrase on the terminal (age's callbacks; nothing else
/// is asked). Self-contained (no `crate::prompt`): the fuzz crate compiles this file alone.
#[derive(Clone, Copy)]
struct PassphrasePrompt;

impl PassphrasePrompt {
    /// Whether there is a terminal to ask on.
    fn available() -> bool {
        use std::io::IsTerminal;
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
    }
}

impl age::Callbacks for PassphrasePrompt {
    fn display_message(&self, message: &str) {
        eprintln!("{message}");
    }
    fn confirm(&self, _: &str, _: &str, _: Option<&str>) -> Option<bool> {
        None
    }
    fn request_public_string(&self, _: &str) -> Option<String> {
        None
    }
    fn request_passphrase(&self, description: &str) -> Option<age::secrecy::SecretString> {
        if !PassphrasePrompt::available() {
            return None;
        }
        let typed = Zeroizing::new(rpassword::prompt_password(format!("{description} ")).ok()?);
        Some(age::secrecy::SecretString::from(typed.as_str().to_owned()))
    }
}

/// The identities in `identity_file`: an OpenSSH private key (`ssh-ed25519` or `ssh-rsa`, its
/// passphrase asked for on the terminal when it has one) or an age identity file.
fn identities(identity_file: &Path) -> Result<Vec<Box<dyn age::Identity>>> {
    let bytes = Zeroizing::new(
        std::fs::read(identity_file)
            .with_context(|| format!("reading the identity file {}", identity_file.display()))?,
    );
    let not_identity = |e: &dyn std::fmt::Display| {
        fail(
            Failure::Usage,
            format!(
                "{}: not an age identity file or an OpenSSH private key ({e})",
                identity_file.display()
            ),
        )
    };
    if bytes.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----")
        || bytes.starts_with(b"-----BEGIN RSA PRIVATE KEY-----")
    {
        let key =
            age::ssh::Identity::from_buffer(&bytes[..], Some(identity_file.display().to_string()))
                .map_err(|e| not_identity(&e))?;
        match &key {
            age::ssh::Identity::Unsupported(kind) => {
                return Err(not_identity(&format!("{kind:?}")));
            }
            age::ssh::Identity::Encrypted(_) if !PassphrasePrompt::available() => {
                return Err(fail(
                    Failure::Usage,
                    format!(
                        "{} is protected by a passphrase, and there is no terminal to ask for it \
                         on: run this on a terminal, or decrypt the share file with age or rage",
                        identity_file.display()
                    ),
                ));
            }
            _ => {}
        }
        return Ok(vec![Box::new(key.with_callbacks(PassphrasePrompt))]);
    }
    Ok(age::IdentityFile::from_buffer(&bytes[..])
        .map_err(|e| not_identity(&e))?
        .into_identities()
        .map_err(|e| not_identity(&e))?
        .into_iter()
        .map(|identity| identity as Box<dyn age::Identity>)
        .collect())
}

/// Decrypts an armored age file with the identities in `identity_file`.
pub fn decrypt(
    ciphertext: &str,
    identity_file: Option<&Path>,
    what: &Path,
) -> Result<Zeroizing<String>> {
    let identity_file = identity_file.ok_or_else(|| {
        fail(Failure::Usage, format!("{} is encrypted to a custodian's key: pass --identity FILE (the custodian's age identity file or SSH private key)", what.display()))
    })?;
    let identities = identities(identity_file)?;
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
