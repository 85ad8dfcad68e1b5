//! The virtual MFA device's seed: reading it for `seal` (the file `aws iam
//! create-virtual-mfa-device --outfile` writes, or standard input), and `breakglass mfa codes`,
//! which prints the two consecutive codes that enable the device, never the seed.

use std::path::PathBuf;

use anyhow::{Context, Result};
use secrecy::{ExposeSecret, SecretString};
use vault_core::totp::Totp;
use zeroize::Zeroizing;

use crate::cli::MfaCodesArgs;
use crate::exit::{Failure, fail};

/// The first bytes of a PNG file: `--bootstrap-method QRCodePNG` writes one.
const PNG_MAGIC: &[u8] = b"\x89PNG";

/// Reads an MFA seed from `file` or standard input (`stdin`); `None` when neither is given.
/// The seed is checked to be base32 that makes TOTP codes.
pub fn read_seed(file: Option<&PathBuf>, stdin: bool, flag: &str) -> Result<Option<SecretString>> {
    let (bytes, source) = match (file, stdin) {
        (Some(path), _) => (
            Zeroizing::new(
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            ),
            path.display().to_string(),
        ),
        (None, true) => {
            let mut bytes = Zeroizing::new(Vec::new());
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                .context("reading the MFA seed from standard input")?;
            (bytes, "standard input".to_owned())
        }
        (None, false) => return Ok(None),
    };
    parse_seed(&bytes, &source, flag).map(Some)
}

fn parse_seed(bytes: &[u8], source: &str, flag: &str) -> Result<SecretString> {
    if bytes.starts_with(PNG_MAGIC) {
        return Err(fail(
            Failure::Usage,
            format!(
                "{flag} {source}: this is the QR-code image (--bootstrap-method QRCodePNG), which breakglass cannot read: \
                 create the device again with `aws iam create-virtual-mfa-device --bootstrap-method Base32StringSeed --outfile FILE` \
                 and give that FILE"
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| {
        fail(
            Failure::Usage,
            format!("{flag} {source}: not text: expected the device's Base32StringSeed"),
        )
    })?;
    let seed = SecretString::from(text.trim().to_owned());
    check_seed(&seed).map_err(|reason| {
        fail(
            Failure::Usage,
            format!("{flag} {source}: not a base32 MFA seed ({reason}): expected the device's Base32StringSeed"),
        )
    })?;
    Ok(seed)
}

/// Checks that a seed makes TOTP codes; the reason if not (never the seed).
pub fn check_seed(seed: &SecretString) -> Result<Totp, String> {
    Totp::from_base32(seed.expose_secret()).map_err(|e| e.to_string())
}

/// `breakglass mfa codes`: two consecutive codes, current step first, on one line.
pub fn codes(args: &MfaCodesArgs) -> Result<()> {
    let seed = read_seed(args.seed_file.as_ref(), args.seed_stdin, seed_flag(args))?
        .ok_or_else(|| {
            fail(
                Failure::Usage,
                "no seed: pass --seed-file FILE (as written by create-virtual-mfa-device --outfile) or --seed-stdin",
            )
        })?;
    let totp = Totp::from_base32(seed.expose_secret())?;
    let step = totp.step_at(vault_core::clock::now_unix());
    println!(
        "{} {}",
        totp.code_for_step(step),
        totp.code_for_step(step + 1)
    );
    eprintln!(
        "two consecutive codes: give them as --authentication-code1 and --authentication-code2 of \
         `aws iam enable-mfa-device` within the next minute; AWS refuses a code twice, so wait a minute before the first assume"
    );
    Ok(())
}

fn seed_flag(args: &MfaCodesArgs) -> &'static str {
    if args.seed_file.is_some() {
        "--seed-file"
    } else {
        "--seed-stdin"
    }
}
