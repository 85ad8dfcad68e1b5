//! `breakglass seal`: offline; needs only the manifest's public keys.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use secrecy::SecretString;
use vault_core::credential::{AwsKeys, aws_root_payload};
use vault_core::envelope::Kind;
use vault_core::trust::Role;
use zeroize::Zeroizing;

use crate::cli::SealArgs;
use crate::exit::{Failure, fail};
use crate::prompt::{hidden, interactive, read_secret_input};

fn metadata(args: &SealArgs) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    let fields = [
        ("account", &args.account),
        ("user", &args.user),
        ("role_arn", &args.role_arn),
        ("mfa_serial", &args.mfa_serial),
        ("external_id", &args.external_id),
        ("region", &args.region),
        ("alert_rule", &args.alert_rule),
        ("alert_topic", &args.alert_topic),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            m.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(duration) = args.duration {
        m.insert("session_duration".into(), duration.to_string());
    }
    if let Some(path) = &args.session_policy {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the session policy {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            fail(
                Failure::Usage,
                format!("--session-policy {}: not JSON ({e})", path.display()),
            )
        })?;
        m.insert("session_policy".into(), value.to_string());
    }
    Ok(m)
}

/// Asks for an aws credential's keys on the terminal.
fn prompt_aws() -> Result<Zeroizing<Vec<u8>>> {
    eprint!("access key id: ");
    let mut id = String::new();
    std::io::stdin().read_line(&mut id)?;
    let secret = hidden("secret access key (hidden): ")?;
    let seed = hidden("MFA seed, base32 (hidden; empty if none): ")?;
    let json = serde_json::json!({
        "access_key_id": id.trim(),
        "secret_access_key": secret.as_str(),
        "mfa_seed": if seed.is_empty() { None } else { Some(seed.as_str()) },
    });
    Ok(Zeroizing::new(json.to_string().into_bytes()))
}

/// Puts the seed given apart into the keys, and refuses an MFA device named without its seed
/// (the role's trust policy then refuses every assume) or a seed with no device named.
fn with_mfa_seed(keys: &mut AwsKeys, args: &SealArgs, seed: Option<SecretString>) -> Result<()> {
    if let Some(seed) = seed {
        if keys.mfa_seed.is_some() {
            return Err(fail(
                Failure::Usage,
                "the input already has an \"mfa_seed\": give the seed once",
            ));
        }
        keys.mfa_seed = Some(seed);
    } else if let Some(seed) = &keys.mfa_seed {
        super::mfa::check_seed(seed).map_err(|reason| {
            fail(
                Failure::Usage,
                format!("the input's \"mfa_seed\" is not a base32 MFA seed ({reason})"),
            )
        })?;
    }
    match (&args.mfa_serial, &keys.mfa_seed) {
        (Some(serial), None) => Err(fail(
            Failure::Usage,
            format!(
                "--mfa-serial {serial} names an MFA device but its seed is not given, so assume could send no code \
                 and a role that requires MFA would refuse it: pass --mfa-seed-file FILE (the file \
                 `aws iam create-virtual-mfa-device --bootstrap-method Base32StringSeed --outfile FILE` wrote) \
                 or --mfa-seed-stdin"
            ),
        )),
        (None, Some(_)) => Err(fail(
            Failure::Usage,
            "an MFA seed is given but no device: pass --mfa-serial ARN (the device's SerialNumber)",
        )),
        _ => Ok(()),
    }
}

/// `breakglass seal`.
pub fn run(vault_arg: Option<&Path>, args: &SealArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    // Before the secret is asked for: the vault must be the one pinned here, and this
    // machine's operator a cloud administrator of it.
    let pinned = Some(super::require_pin(&vault, args.fingerprint.as_deref())?);
    super::require_role(&vault, Role::CloudAdministrator, "seal")?;
    let kind = Kind::from(args.kind);
    let mut metadata = metadata(args)?;
    let seed_flag = if args.mfa_seed_file.is_some() {
        "--mfa-seed-file"
    } else {
        "--mfa-seed-stdin"
    };
    let seed = super::mfa::read_seed(args.mfa_seed_file.as_ref(), args.mfa_seed_stdin, seed_flag)?;
    if seed.is_some() && kind != Kind::Aws {
        return Err(fail(
            Failure::Usage,
            format!(
                "{seed_flag} is for --kind aws (an aws-root input carries its own \"mfa_seed\")"
            ),
        ));
    }
    let input = match read_secret_input(args.from_file.as_ref(), args.from_stdin)? {
        Some(input) => input,
        None if interactive() && kind == Kind::Aws => prompt_aws()?,
        None if interactive() => {
            Zeroizing::new(hidden("secret (hidden, one line): ")?.as_bytes().to_vec())
        }
        None => {
            return Err(fail(
                Failure::Usage,
                "no secret given and no terminal to ask on: pass --from-file FILE or --from-stdin",
            ));
        }
    };
    let payload = match kind {
        Kind::Aws => {
            let mut keys = AwsKeys::from_input(&input)?;
            with_mfa_seed(&mut keys, args, seed)?;
            // The key id is public (CloudTrail shows it): kept in the header, so list, status and
            // rotate know which key is sealed without unsealing.
            metadata.insert("access_key_id".into(), keys.access_key_id.clone());
            keys.to_payload()
        }
        Kind::AwsRoot => aws_root_payload(&input)?,
        Kind::Secret => input,
    };
    let path = vault.seal(
        &args.name,
        kind,
        metadata,
        &payload,
        args.replace,
        pinned.as_deref(),
    )?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "credential": args.name, "kind": kind.as_str(), "file": path })
        );
    } else {
        println!(
            "sealed {} ({}) into {}",
            args.name,
            kind.as_str(),
            path.display()
        );
    }
    Ok(())
}
