//! `breakglass unseal`: a quorum of shares and an enrolled token open a credential.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use secrecy::ExposeSecret;
use vault_core::credential::AwsKeys;
use vault_core::envelope::Kind;
use vault_core::hsm::LoginWarning;
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
    Nothing,
}

fn output(output: Option<&OutputArg>) -> Output {
    match output {
        Some(OutputArg::Json) => Output::Json,
        Some(OutputArg::Env) => Output::Env,
        Some(OutputArg::File(path)) => Output::File(path.clone()),
        None if std::io::stdout().is_terminal() => Output::Terminal,
        None => Output::Nothing,
    }
}

/// `breakglass unseal`.
pub fn run(vault_arg: Option<&Path>, args: &UnsealArgs) -> Result<()> {
    open_and_write(
        vault_arg,
        &args.name,
        args.output.as_ref(),
        args.reveal,
        |vault| {
            let shares = gather_shares(vault, &args.shares)?;
            Ok(vault.unseal(
                &args.name,
                &shares,
                TokenChoice {
                    pins: &CliPins,
                    only: args.hsm.as_deref(),
                    force_pin: args.force_pin,
                },
                "unseal",
            )?)
        },
    )
}

/// Checks the output options, opens credential `name` with `open` (after those checks, so a
/// quorum is never gathered for an output that will be refused), and writes the secret out.
pub fn open_and_write(
    vault_arg: Option<&Path>,
    name: &str,
    output_arg: Option<&OutputArg>,
    reveal: bool,
    open: impl FnOnce(&Vault) -> Result<Unsealed>,
) -> Result<()> {
    crate::hardening::harden()?;
    let output = output(output_arg);
    let vault = super::open_vault(vault_arg)?;
    super::check_pin(&vault)?;
    let (_, envelope) = vault.envelope(name)?;
    let long_term_aws = envelope.kind == Kind::Aws;
    if long_term_aws && !reveal && !matches!(output, Output::Nothing | Output::Terminal) {
        return Err(fail(
            Failure::Usage,
            "this is an aws credential: its long-term keys are written out only with --reveal (to use them, assume the role instead)",
        ));
    }
    if matches!(output, Output::Env) && !long_term_aws {
        return Err(fail(Failure::Usage, "--output env is for aws credentials"));
    }
    if let Output::File(path) = &output
        && path.exists()
    {
        return Err(fail(
            Failure::Usage,
            format!(
                "--output file:{}: the file exists; breakglass never overwrites a secret file",
                path.display()
            ),
        ));
    }
    let unsealed = open(&vault)?;
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
        Output::Json => {
            let value: serde_json::Value = serde_json::from_slice(payload)
                .unwrap_or_else(|_| serde_json::json!({ "hex": hex_encode(payload) }));
            println!("{value}");
        }
        Output::Env => {
            let keys = AwsKeys::from_payload(payload)?;
            println!("export AWS_ACCESS_KEY_ID={}", keys.access_key_id);
            println!(
                "export AWS_SECRET_ACCESS_KEY={}",
                keys.secret_access_key.expose_secret()
            );
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
        Output::Nothing => {
            eprintln!("(nothing written: pass --output file:PATH, json or env)");
        }
    }
    Ok(())
}

fn hex_encode(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    // The payload of a `secret` that is not JSON: hex keeps it printable without another crate.
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
