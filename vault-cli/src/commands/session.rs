//! The session cache: `$XDG_RUNTIME_DIR/breakglass/<ceremony>.json` (directory 0700, files
//! 0600), so that an AWS profile with `credential_process = breakglass session credentials
//! --credential NAME` serves the AWS CLI, SDKs and Terraform for the session's lifetime without
//! another ceremony. The line names the credential, not a ceremony, so a profile written once
//! keeps working after each break-glass: it serves the newest session of that credential that
//! has not expired. Expired sessions are removed when found.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::aws::Session;
use crate::cli::SessionArgs;
use crate::exit::{Failure, fail};

/// One cached session: whose it is, and the credential_process answer that serves it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cached {
    credential: String,
    ceremony: String,
    expiration: String,
    /// The AWS `credential_process` JSON, printed as it is.
    process: serde_json::Value,
}

impl Cached {
    /// Seconds since the epoch at which the session expires (the SDK writes a fraction, which
    /// is dropped: the session is treated as expired up to a second early).
    fn expires_at(&self) -> Option<u64> {
        let whole: String = self.expiration.chars().take(19).chain(['Z']).collect();
        vault_core::clock::parse_rfc3339(&whole)
    }

    fn expired(&self, now: u64) -> bool {
        self.expires_at().is_none_or(|t| t <= now)
    }
}

fn cache_dir() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| fail(Failure::Usage, "XDG_RUNTIME_DIR is not set: the session cache lives in the user's runtime directory"))?;
    Ok(base.join("breakglass"))
}

fn path(ceremony: &str) -> Result<PathBuf> {
    if ceremony.is_empty() || !ceremony.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(fail(
            Failure::Usage,
            format!("--ceremony {ceremony:?}: a ceremony id is hex, as printed by assume"),
        ));
    }
    Ok(cache_dir()?.join(format!("{ceremony}.json")))
}

fn read(file: &Path) -> Result<Cached> {
    let text = Zeroizing::new(
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?,
    );
    serde_json::from_str(&text).with_context(|| format!("{} is damaged", file.display()))
}

/// Caches the session of `credential` opened by `ceremony`; returns the file.
pub fn store(credential: &str, ceremony: &str, session: &Session) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = cache_dir()?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let file = path(ceremony)?;
    let cached = Cached {
        credential: credential.to_owned(),
        ceremony: ceremony.to_owned(),
        expiration: session.expiration.clone(),
        process: serde_json::from_str(&super::assume::credential_process_json(session))?,
    };
    let text = Zeroizing::new(serde_json::to_string(&cached)?);
    vault_core::store::write_atomic(&file, text.as_bytes())?;
    Ok(file)
}

/// The newest unexpired session of `credential`, removing expired ones on the way.
fn newest_of(credential: &str, now: u64) -> Result<Option<Cached>> {
    let dir = cache_dir()?;
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut newest: Option<Cached> = None;
    for entry in entries {
        let file = entry?.path();
        if file.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Ok(cached) = read(&file) else {
            continue;
        };
        if cached.expired(now) {
            let _ = std::fs::remove_file(&file);
            continue;
        }
        if cached.credential == credential
            && newest
                .as_ref()
                .is_none_or(|n| n.expires_at() < cached.expires_at())
        {
            newest = Some(cached);
        }
    }
    Ok(newest)
}

/// `breakglass session credentials`.
pub fn credentials(args: &SessionArgs) -> Result<()> {
    let now = vault_core::clock::now_unix();
    let cached = match (&args.ceremony, &args.credential) {
        (Some(ceremony), _) => {
            let file = path(ceremony)?;
            let cached = read(&file).map_err(|_| {
                fail(Failure::Other, format!("no cached session for ceremony {ceremony} (ended, expired, or made with assume without --cache)"))
            })?;
            if cached.expired(now) {
                let _ = std::fs::remove_file(&file);
                return Err(fail(
                    Failure::Aws,
                    format!(
                        "the session of ceremony {ceremony} expired at {}; it has been removed",
                        cached.expiration
                    ),
                ));
            }
            cached
        }
        (None, Some(credential)) => newest_of(credential, now)?.ok_or_else(|| {
            fail(
                Failure::Other,
                format!("no unexpired cached session of {credential} on this machine: run `breakglass assume {credential} --cache` (a ceremony)"),
            )
        })?,
        (None, None) => return Err(fail(Failure::Usage, "give --credential NAME or --ceremony ID")),
    };
    let text = Zeroizing::new(cached.process.to_string());
    println!("{}", text.as_str());
    Ok(())
}

/// `breakglass session end`.
pub fn end(args: &SessionArgs) -> Result<()> {
    let now = vault_core::clock::now_unix();
    let (file, what) = match (&args.ceremony, &args.credential) {
        (Some(ceremony), _) => (path(ceremony)?, format!("ceremony {ceremony}")),
        (None, Some(credential)) => {
            let cached = newest_of(credential, now)?.ok_or_else(|| {
                fail(Failure::Other, format!("no cached session of {credential}"))
            })?;
            (
                path(&cached.ceremony)?,
                format!("{credential} (ceremony {})", cached.ceremony),
            )
        }
        (None, None) => {
            return Err(fail(
                Failure::Usage,
                "give --credential NAME or --ceremony ID",
            ));
        }
    };
    match std::fs::remove_file(&file) {
        Ok(()) => {
            eprintln!(
                "session of {what} removed from this machine (it stays valid in AWS until it expires: revoke-sessions ends it there)"
            );
            Ok(())
        }
        Err(_) => Err(fail(
            Failure::Other,
            format!("no cached session for {what}"),
        )),
    }
}
