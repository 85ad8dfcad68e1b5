//! The session cache: `$XDG_RUNTIME_DIR/breakglass/<ceremony>.json` (directory 0700, files
//! 0600), so that an AWS profile with `credential_process = breakglass session credentials
//! --ceremony ID` serves the AWS CLI, SDKs and Terraform for the session's lifetime without
//! another ceremony. An expired session is removed when asked for.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::aws::Session;
use crate::cli::SessionArgs;
use crate::exit::{Failure, fail};

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

/// Caches a session; returns the file.
pub fn store(ceremony: &str, session: &Session) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = cache_dir()?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let file = path(ceremony)?;
    vault_core::store::write_atomic(
        &file,
        super::assume::credential_process_json(session).as_bytes(),
    )?;
    Ok(file)
}

/// `breakglass session credentials`.
pub fn credentials(args: &SessionArgs) -> Result<()> {
    let file = path(&args.ceremony)?;
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(&file).map_err(|_| {
        fail(Failure::Other, format!("no cached session for ceremony {} (ended, expired, or made with assume without --cache)", args.ceremony))
    })?);
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", file.display()))?;
    let expiration = json["Expiration"].as_str().unwrap_or_default();
    let expired = vault_core::clock::parse_rfc3339(
        &expiration
            .chars()
            .take(19)
            .chain("Z".chars())
            .collect::<String>(),
    )
    .is_none_or(|t| t <= vault_core::clock::now_unix());
    if expired {
        let _ = std::fs::remove_file(&file);
        return Err(fail(
            Failure::Aws,
            format!(
                "the session of ceremony {} expired at {expiration}; it has been removed",
                args.ceremony
            ),
        ));
    }
    println!("{}", text.as_str().trim_end());
    Ok(())
}

/// `breakglass session end`.
pub fn end(args: &SessionArgs) -> Result<()> {
    let file = path(&args.ceremony)?;
    match std::fs::remove_file(&file) {
        Ok(()) => {
            eprintln!(
                "session of ceremony {} removed from this machine (it stays valid in AWS until it expires: revoke-sessions ends it there)",
                args.ceremony
            );
            Ok(())
        }
        Err(_) => Err(fail(
            Failure::Other,
            format!("no cached session for ceremony {}", args.ceremony),
        )),
    }
}
