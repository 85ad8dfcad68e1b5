//! `breakglass unseal`: a quorum of shares and an enrolled token open a credential.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use secrecy::ExposeSecret;
use vault_core::credential::AwsKeys;
use vault_core::envelope::Kind;
use vault_core::hsm::LoginWarning;
use vault_core::secret::SecretBuffer;
use vault_core::store::write_new_secret_file;
use vault_core::vault::{TokenChoice, Unsealed, Vault};

use crate::cli::{OutputArg, UnsealArgs};
use crate::exit::{Failure, fail};
use crate::prompt::{CliPins, confirm, gather_shares};

enum Output {
    File(PathBuf),
    Json,
    Env,
    Terminal,
}

fn output(output: Option<&OutputArg>) -> Result<Output> {
    Ok(match output {
        Some(OutputArg::Json) => Output::Json,
        Some(OutputArg::Env) => Output::Env,
        Some(OutputArg::File(path)) => Output::File(path.clone()),
        None if std::io::stdout().is_terminal() => Output::Terminal,
        None => {
            return Err(fail(
                Failure::Usage,
                "standard output is not a terminal and no --output is given, so the secret would go nowhere: \
                 pass --output file:PATH, json or env. Nothing was asked of the custodians",
            ));
        }
    })
}

/// Refuses a `file:` output that cannot be written as a new file: something (even a dangling
/// link) is at the path, or its directory is missing.
fn check_new_file(path: &Path) -> Result<()> {
    if path.symlink_metadata().is_ok() {
        return Err(fail(
            Failure::Usage,
            format!(
                "--output file:{}: something is already there (breakglass never overwrites a secret file, nor follows a link): choose a new path",
                path.display()
            ),
        ));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(fail(
            Failure::Usage,
            format!(
                "--output file:{}: the directory {} does not exist",
                path.display(),
                parent.display()
            ),
        ));
    }
    Ok(())
}

/// `breakglass unseal`.
pub fn run(vault_arg: Option<&Path>, args: &UnsealArgs) -> Result<()> {
    open_and_write(
        vault_arg,
        &args.name,
        args.output.as_ref(),
        args.reveal,
        args.reason.as_deref(),
        args.fingerprint.as_deref(),
        |vault, details| {
            let shares = gather_shares(vault, &args.shares)
                .inspect_err(|e| record_refused_shares(vault, &args.name, "unseal", e))?;
            let (unsealed, ()) = vault.unseal_with(
                &args.name,
                &shares,
                TokenChoice {
                    pins: &CliPins,
                    only: args.hsm.as_deref(),
                    force_pin: args.force_pin,
                },
                "unseal",
                |_, _, _| (details, ()),
            )?;
            Ok(unsealed)
        },
    )
}

/// Records an opening refused because a share given was not one of this vault's (or could not
/// be read): the custodians gave shares, and the attempt is on the record.
pub fn record_refused_shares(vault: &Vault, name: &str, purpose: &str, error: &anyhow::Error) {
    let failure = if crate::exit::classify(error) == crate::exit::Failure::Quorum {
        "quorum"
    } else {
        "shares"
    };
    vault.record_failed_opening(name, purpose, failure, &format!("{error:#}"), None);
}

/// Checks the output options, the reason and the audit chain, opens credential `name` with
/// `open` (after those checks, so a quorum is never gathered for a run that will be refused;
/// `open` gets the audit details to record, the reason), and writes the secret out.
pub fn open_and_write(
    vault_arg: Option<&Path>,
    name: &str,
    output_arg: Option<&OutputArg>,
    reveal: bool,
    reason: Option<&str>,
    fingerprint: Option<&str>,
    open: impl FnOnce(&Vault, BTreeMap<String, String>) -> Result<Unsealed>,
) -> Result<()> {
    let output = output(output_arg)?;
    let vault = super::open_vault(vault_arg)?;
    super::require_pin(&vault, fingerprint)?;
    let (_, envelope) = vault.envelope(name)?;
    let long_term_aws = envelope.kind == Kind::Aws;
    if long_term_aws && !reveal && !matches!(output, Output::Terminal) {
        return Err(fail(
            Failure::Usage,
            "this is an aws credential: its long-term keys are written out only with --reveal (to use them, assume the role instead)",
        ));
    }
    if matches!(output, Output::Env) && !long_term_aws {
        return Err(fail(Failure::Usage, "--output env is for aws credentials"));
    }
    if let Output::File(path) = &output {
        check_new_file(path)?;
    }
    super::require_reason(&vault, reason)?;
    super::require_intact_audit(&vault)?;
    let details = reason
        .map(|r| BTreeMap::from([("reason".to_owned(), r.to_owned())]))
        .unwrap_or_default();
    let unsealed = open(&vault, details)?;
    for (position, custodian) in &unsealed.rejected {
        eprintln!(
            "breakglass: warning: share {position}{} does not recombine with the others and was left out: ask its custodian to verify it",
            custodian
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        );
    }
    match unsealed.warning {
        Some(LoginWarning::CountLow) => eprintln!(
            "breakglass: warning: token {} reports wrong PIN tries since the last success",
            unsealed.token
        ),
        Some(LoginWarning::FinalTryForced) => eprintln!(
            "breakglass: warning: the PIN of token {} was at its final try",
            unsealed.token
        ),
        _ => {}
    }
    eprintln!(
        "unsealed {} with token {}; custodians: {}",
        name,
        unsealed.token,
        unsealed.custodians.join(", ")
    );
    let payload = unsealed.payload.expose_secret();
    match output {
        Output::File(path) => {
            write_new_secret_file(&path, payload)?;
            eprintln!("wrote {} (0600)", path.display());
        }
        Output::Json => crate::reveal::print(json_output(name, unsealed.envelope.kind, payload))?,
        Output::Env => {
            let keys = AwsKeys::from_payload(payload)?;
            let secret = keys.secret_access_key.expose_secret();
            let mut out = SecretBuffer::with_capacity(64 + keys.access_key_id.len() + secret.len());
            write!(
                out,
                "export AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={secret}\n",
                keys.access_key_id
            )?;
            crate::reveal::print(out)?;
        }
        Output::Terminal if long_term_aws && !reveal => {
            eprintln!(
                "(aws credential: long-term keys not shown; pass --reveal to show them, or assume the role)"
            );
        }
        Output::Terminal => {
            if confirm("Show the secret on this terminal?")? {
                std::io::stdout().write_all(payload)?;
                println!();
            }
        }
    }
    Ok(())
}

/// `--output json`: the credential, its kind, and the secret as it was sealed: the fields of an
/// aws or aws-root credential, a text secret as text, anything else as base64 (`encoding`
/// says which); one line. The fields of a structured credential are its sealed JSON as it is
/// (checked to be one JSON value without copying a string out of it), so no parsed copy of a
/// secret is made and freed.
fn json_output(name: &str, kind: Kind, payload: &[u8]) -> SecretBuffer {
    use crate::reveal::json_string;
    let structured =
        kind != Kind::Secret && serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok();
    let mut out = SecretBuffer::with_capacity(2 * payload.len() + name.len() + 96);
    out.extend_from_slice(b"{\"credential\":");
    json_string(&mut out, name);
    match (structured, std::str::from_utf8(payload)) {
        (true, _) => {
            out.extend_from_slice(b",\"encoding\":\"json\",\"kind\":");
            json_string(&mut out, kind.as_str());
            out.extend_from_slice(b",\"secret\":");
            out.extend_from_slice(payload.trim_ascii());
        }
        (false, Ok(text)) => {
            out.extend_from_slice(b",\"encoding\":\"text\",\"kind\":");
            json_string(&mut out, kind.as_str());
            out.extend_from_slice(b",\"secret\":");
            json_string(&mut out, text);
        }
        (false, Err(_)) => {
            out.extend_from_slice(b",\"encoding\":\"base64\",\"kind\":");
            json_string(&mut out, kind.as_str());
            out.extend_from_slice(b",\"secret\":\"");
            {
                let mut encoder = base64::write::EncoderWriter::new(
                    &mut out,
                    &base64::engine::general_purpose::STANDARD,
                );
                // Writing into memory cannot fail.
                encoder.write_all(payload).expect("base64 into memory");
                encoder.finish().expect("base64 into memory");
            }
            out.extend_from_slice(b"\"");
        }
    }
    out.extend_from_slice(b"}\n");
    out
}
