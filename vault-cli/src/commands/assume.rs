//! `breakglass assume` and `breakglass exec`: a quorum opens the sealed keys, which assume the
//! emergency role through STS; the session goes to stdout in the asked format, or into a
//! command's environment.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use ring::rand::SecureRandom;
use secrecy::{ExposeSecret, SecretString};
use vault_core::credential::AwsKeys;
use vault_core::envelope::Kind;
use vault_core::totp::Totp;
use vault_core::vault::{TokenChoice, Vault};

use crate::aws::{self, AssumeRequest, MAX_SESSION_SECONDS, MIN_SESSION_SECONDS, Session};
use crate::cli::{AssumeArgs, AssumeCommon, ConsoleArgs, ExecArgs, SessionFormat};
use crate::exit::{Failure, fail};
use crate::prompt::{CliPins, gather_shares};

/// Variables that could make a child use other credentials than the session's.
const STALE_VARIABLES: [&str; 10] = [
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
];

/// Keeps the characters AWS allows in tag values, and the length. Spaces become `_` too: AWS
/// allows them, but not every STS-compatible endpoint signs them alike (the local test endpoint
/// does not), and the reason is in the audit log verbatim anyway.
fn tag_value(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() || "_.:/=+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(256)
        .collect()
}

fn ceremony_id() -> Result<String> {
    let mut bytes = [0u8; 6];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| vault_core::Error::from(vault_core::vault::VaultError::Random))?;
    Ok(hex::encode(bytes))
}

/// How far back the audit log is read for the last TOTP step used: a code AWS would refuse as
/// used is one of the last few 30-second steps, so the lines that matter are the last minutes'
/// (an hour allows for the clocks of the machines that wrote them being that far apart).
const MFA_LOOKBACK_SECONDS: u64 = 3600;

/// The last TOTP step this vault used for `credential` within [`MFA_LOOKBACK_SECONDS`], from
/// the audit log read back from its end: the lines written since then, not the whole history
/// (an assume at 100,000 lines read them all, 130 ms).
fn last_mfa_step(vault: &Vault, credential: &str) -> Option<u64> {
    let since = vault_core::clock::now_unix().saturating_sub(MFA_LOOKBACK_SECONDS);
    let step = |e: &vault_core::audit::Entry| e.details.get("mfa_step")?.parse().ok();
    for line in vault.audit().lines_back().ok()? {
        let (_, line) = line.ok()?;
        let Ok(entry) = serde_json::from_slice::<vault_core::audit::Entry>(&line) else {
            continue;
        };
        if entry.credential.as_deref() == Some(credential)
            && let Some(step) = step(&entry)
        {
            return Some(step);
        }
        if vault_core::clock::parse_rfc3339(&entry.time).is_some_and(|time| time < since) {
            return None;
        }
    }
    None
}

fn duration(common: &AssumeCommon, metadata: &BTreeMap<String, String>, vault: &Vault) -> i32 {
    let wanted = common
        .duration
        .or_else(|| metadata.get("session_duration")?.parse().ok())
        .unwrap_or(vault.manifest().policy.default_session_seconds as i32);
    let clamped = wanted.clamp(MIN_SESSION_SECONDS, MAX_SESSION_SECONDS);
    if clamped != wanted {
        eprintln!(
            "breakglass: session duration {wanted} s is outside what AWS allows; using {clamped} s"
        );
    }
    clamped
}

/// What an assume gives: the last session of the chain, the ceremony id, the sealed region.
struct Assumed {
    session: Session,
    ceremony: String,
    region: Option<String>,
}

/// The region to hand on with a session: the sealed one, unless the caller has chosen one
/// (`AWS_REGION` or `AWS_DEFAULT_REGION` set), which then stands.
fn region_to_export(sealed: Option<&str>) -> Option<&str> {
    let chosen = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|value| !value.is_empty()));
    if chosen { None } else { sealed }
}

/// Unseals and assumes the role (and the chain).
/// `before_shares` runs after every local check and before any share is asked for (console's
/// check that its endpoint answers).
fn assume(
    vault_arg: Option<&Path>,
    common: &AssumeCommon,
    before_shares: impl FnOnce() -> Result<()>,
) -> Result<Assumed> {
    let vault = super::open_vault(vault_arg)?;
    super::require_pin(&vault, common.fingerprint.as_deref())?;
    let (_, envelope) = vault.envelope(&common.name)?;
    if envelope.kind != Kind::Aws {
        return Err(fail(
            Failure::Usage,
            format!(
                "{} is a {} credential: assume needs an aws one",
                common.name,
                envelope.kind.as_str()
            ),
        ));
    }
    let role_arn = envelope.metadata.get("role_arn").cloned().ok_or_else(|| {
        fail(
            Failure::Usage,
            format!(
                "{} has no role to assume: re-seal it with --role-arn",
                common.name
            ),
        )
    })?;
    let ceremony = ceremony_id()?;
    let identity = format!("breakglass-{ceremony}");
    let request = AssumeRequest {
        role_arn: role_arn.clone(),
        session_name: identity.clone(),
        source_identity: identity.clone(),
        tags: Vec::new(),
        duration_seconds: duration(common, &envelope.metadata, &vault),
        policy: envelope.metadata.get("session_policy").cloned(),
        external_id: envelope.metadata.get("external_id").cloned(),
        mfa_serial: envelope.metadata.get("mfa_serial").cloned(),
        region: envelope.metadata.get("region").cloned(),
    };
    super::require_reason(&vault, common.reason.as_deref())?;
    super::require_intact_audit(&vault)?;
    before_shares()?;
    // (Only a credential with an MFA device uses a code.)
    let last_step = request
        .mfa_serial
        .as_ref()
        .and_then(|_| last_mfa_step(&vault, &common.name));
    let shares = gather_shares(&vault, &common.shares).inspect_err(|e| {
        super::unseal::record_refused_shares(&vault, &common.name, "assume_role", e)
    })?;
    let runtime = aws::runtime()?;
    let (unsealed, result) = vault.unseal_with(&common.name, &shares, TokenChoice { pins: &CliPins, only: common.hsm.as_deref(), force_pin: common.force_pin }, "assume_role", |_, payload, custodians| {
        let mut details = BTreeMap::from([("role".to_owned(), role_arn.clone()), ("ceremony".to_owned(), ceremony.clone())]);
        if let Some(reason) = &common.reason {
            details.insert("reason".into(), reason.clone());
        }
        let outcome = (|| -> Result<Session> {
            let keys = AwsKeys::from_payload(payload.expose_secret())?;
            let mut request = request.clone();
            request.tags.push(("breakglass-ceremony".into(), ceremony.clone()));
            request.tags.push(("breakglass-custodians".into(), tag_value(&custodians.join("+"))));
            if let Some(reason) = &common.reason {
                request.tags.push(("breakglass-reason".into(), tag_value(reason)));
            }
            let mfa_code = match (&keys.mfa_seed, &request.mfa_serial) {
                (Some(seed), Some(_)) => {
                    let totp = Totp::from_base32(seed.expose_secret())?;
                    let (code, step, wait) = totp.next_unused(last_step, vault_core::clock::now_unix());
                    if wait > 0 {
                        eprintln!("the current MFA code was already used by this vault; waiting {wait} s for the next one");
                        std::thread::sleep(std::time::Duration::from_secs(wait));
                    }
                    details.insert("mfa_step".into(), step.to_string());
                    Some(code)
                }
                _ => None,
            };
            let mut session = runtime.block_on(aws::assume_role(&keys.access_key_id, &keys.secret_access_key, &request, mfa_code))?;
            for next in &common.chain {
                let chained = AssumeRequest { role_arn: next.clone(), mfa_serial: None, policy: None, external_id: None, tags: Vec::new(), duration_seconds: MIN_SESSION_SECONDS.max(3600), ..request.clone() };
                session = runtime.block_on(aws::assume_role_with_session(&session, &chained))?;
            }
            Ok(session)
        })();
        match &outcome {
            Ok(session) => {
                details.insert("session_access_key_id".into(), session.access_key_id.clone());
                details.insert("expiration".into(), session.expiration.clone());
                details.insert("assumed_role_arn".into(), session.assumed_role_arn.clone());
            }
            Err(e) => {
                details.insert("error".into(), format!("{e:#}"));
            }
        }
        (details, outcome)
    })?;
    let session = result?;
    eprintln!(
        "assumed {} as {} until {} (ceremony {ceremony}; custodians: {})",
        role_arn,
        session.assumed_role_arn,
        session.expiration,
        unsealed.custodians.join(", ")
    );
    Ok(Assumed {
        session,
        ceremony,
        region: request.region,
    })
}

/// `breakglass assume`.
pub fn run(vault_arg: Option<&Path>, args: &AssumeArgs) -> Result<()> {
    if args.format.is_none() && !args.cache && !std::io::stdout().is_terminal() {
        return Err(fail(
            Failure::Usage,
            "standard output is not a terminal and no --format is given, so the session would go nowhere: \
             pass --format env, json, ini or credential-process (or --cache), or use breakglass exec. \
             Nothing was asked of the custodians",
        ));
    }
    let Assumed {
        session,
        ceremony,
        region,
    } = assume(vault_arg, &args.common, || Ok(()))?;
    let region = region_to_export(region.as_deref());
    if args.cache {
        let path = super::session::store(&args.common.name, &ceremony, &session)?;
        eprintln!(
            "session cached in {} until {}; profile line: credential_process = breakglass session credentials --credential {}",
            path.display(),
            session.expiration,
            args.common.name
        );
    }
    match args.format {
        Some(SessionFormat::Env) => {
            println!("export AWS_ACCESS_KEY_ID={}", session.access_key_id);
            println!(
                "export AWS_SECRET_ACCESS_KEY={}",
                session.secret_access_key.expose_secret()
            );
            println!(
                "export AWS_SESSION_TOKEN={}",
                session.session_token.expose_secret()
            );
            println!("export AWS_CREDENTIAL_EXPIRATION={}", session.expiration);
            if let Some(region) = region {
                println!("export AWS_REGION={region}");
                println!("export AWS_DEFAULT_REGION={region}");
            }
        }
        Some(SessionFormat::Json) => println!(
            "{}",
            serde_json::json!({
                "AccessKeyId": session.access_key_id, "SecretAccessKey": session.secret_access_key.expose_secret(),
                "SessionToken": session.session_token.expose_secret(), "Expiration": session.expiration,
                "AssumedRoleArn": session.assumed_role_arn, "Ceremony": ceremony,
            })
        ),
        Some(SessionFormat::CredentialProcess) => {
            println!("{}", credential_process_json(&session))
        }
        Some(SessionFormat::Ini) => print!(
            "{}",
            credentials_file_profile(&args.common.name, &session, region)
        ),
        None => eprintln!(
            "(session not printed: pass --format env|json|credential-process|ini, or use breakglass exec)"
        ),
    }
    Ok(())
}

/// A profile for the AWS shared credentials file, in the keys the AWS CLI and SDKs read; the
/// profile is named after the credential.
fn credentials_file_profile(profile: &str, session: &Session, region: Option<&str>) -> String {
    let mut text = format!(
        "# breakglass session {}, expires {}\n[{profile}]\naws_access_key_id = {}\n\
         aws_secret_access_key = {}\naws_session_token = {}\n",
        session.assumed_role_arn,
        session.expiration,
        session.access_key_id,
        session.secret_access_key.expose_secret(),
        session.session_token.expose_secret(),
    );
    if let Some(region) = region {
        text.push_str(&format!("region = {region}\n"));
    }
    text
}

/// The AWS `credential_process` output, Version 1.
pub fn credential_process_json(session: &Session) -> String {
    serde_json::json!({
        "Version": 1,
        "AccessKeyId": session.access_key_id,
        "SecretAccessKey": session.secret_access_key.expose_secret(),
        "SessionToken": session.session_token.expose_secret(),
        "Expiration": session.expiration,
    })
    .to_string()
}

/// The command `exec` runs: the one given, else the user's `$SHELL`.
fn command_line(args: &ExecArgs) -> Result<Vec<String>> {
    if !args.command.is_empty() {
        return Ok(args.command.clone());
    }
    match std::env::var("SHELL") {
        Ok(shell) if !shell.is_empty() => Ok(vec![shell]),
        _ => Err(fail(
            Failure::Usage,
            "no command after -- and no $SHELL to start: give the command, e.g. breakglass exec NAME -- aws sts get-caller-identity",
        )),
    }
}

/// Finds `program` as the child's `execvp` would (a path, or a search of `PATH`) and checks
/// that it is an executable file: a typo must not cost a quorum and a session.
fn resolve_program(program: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.contains('/') {
        let path = PathBuf::from(program);
        executable(&path).then_some(path)
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|path| executable(path))
        })
    };
    found.ok_or_else(|| {
        fail(
            Failure::Usage,
            format!(
                "cannot run {program}: {} Nothing was asked of the custodians",
                if program.contains('/') {
                    "no executable file there."
                } else {
                    "no executable of that name on PATH."
                }
            ),
        )
    })
}

/// `breakglass exec`: runs the command (or `$SHELL`) with the session, clearing stale
/// credentials. The command is found before any share is asked for.
pub fn exec(vault_arg: Option<&Path>, args: &ExecArgs) -> Result<ExitCode> {
    let command_line = command_line(args)?;
    let (program, rest) = command_line
        .split_first()
        .ok_or_else(|| fail(Failure::Usage, "exec needs a command after --"))?;
    let resolved = resolve_program(program)?;
    let Assumed {
        session,
        ceremony,
        region,
    } = assume(vault_arg, &args.common, || Ok(()))?;
    let mut command = std::process::Command::new(resolved);
    command.args(rest);
    for variable in STALE_VARIABLES {
        command.env_remove(variable);
    }
    let secret: &SecretString = &session.secret_access_key;
    command
        .env("AWS_ACCESS_KEY_ID", &session.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret.expose_secret())
        .env("AWS_SESSION_TOKEN", session.session_token.expose_secret())
        .env("AWS_CREDENTIAL_EXPIRATION", &session.expiration)
        .env("BREAKGLASS_CEREMONY", &ceremony);
    if let Some(region) = region_to_export(region.as_deref()) {
        command
            .env("AWS_REGION", region)
            .env("AWS_DEFAULT_REGION", region);
    }
    let status = command
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run {program}: {e}"))?;
    Ok(ExitCode::from(
        status.code().map_or(1, |c| c.clamp(0, 255) as u8),
    ))
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Before any share is asked for: does the federation endpoint answer at all? Any HTTP answer
/// counts (without a session it refuses the request); no answer means the console cannot be
/// reached, and the glass is not broken for nothing.
fn check_federation_endpoint(runtime: &tokio::runtime::Runtime, endpoint: &str) -> Result<()> {
    match runtime.block_on(aws::https::get_text(endpoint, Duration::from_secs(10))) {
        Ok(_) | Err(aws::https::GetError::Status(_)) => Ok(()),
        Err(aws::https::GetError::BadUrl) => Err(fail(
            Failure::Usage,
            format!("--federation-endpoint {endpoint}: not a usable URL"),
        )),
        Err(e) => Err(fail(
            Failure::Aws,
            format!(
                "the federation endpoint {endpoint}: {e}: no role was assumed and no share was \
                 asked for; check the network and proxy (or use `breakglass assume` or `exec` \
                 for the API without the console)"
            ),
        )),
    }
}

/// `getSigninToken` with the session: the sign-in token.
fn signin_token(
    runtime: &tokio::runtime::Runtime,
    endpoint: &str,
    session: &Session,
) -> Result<String> {
    let session_json = serde_json::json!({
        "sessionId": session.access_key_id,
        "sessionKey": session.secret_access_key.expose_secret(),
        "sessionToken": session.session_token.expose_secret(),
    })
    .to_string();
    let request = format!(
        "{endpoint}?Action=getSigninToken&Session={}",
        url_encode(&session_json)
    );
    let text = runtime
        .block_on(aws::https::get_text(&request, Duration::from_secs(20)))
        .map_err(|e| fail(Failure::Aws, format!("getSigninToken at {endpoint}: {e}")))?;
    let body: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
        fail(
            Failure::Aws,
            format!("getSigninToken at {endpoint}: the answer is not JSON"),
        )
    })?;
    body["SigninToken"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            fail(
                Failure::Aws,
                format!("getSigninToken at {endpoint}: no SigninToken in the answer"),
            )
        })
}

/// `breakglass console`: the federation endpoint's documented protocol: `getSigninToken` with
/// the session, then a `login` URL carrying the sign-in token. The endpoint is checked before
/// any share is asked for; when the sign-in fails after the role was assumed, the session is
/// printed (credential_process JSON) so that the broken glass is not wasted.
pub fn console(vault_arg: Option<&Path>, args: &ConsoleArgs) -> Result<()> {
    let runtime = aws::runtime()?;
    let Assumed {
        session, ceremony, ..
    } = assume(vault_arg, &args.common, || {
        check_federation_endpoint(&runtime, &args.federation_endpoint)
    })?;
    let token = match signin_token(&runtime, &args.federation_endpoint, &session) {
        Ok(token) => token,
        Err(e) => {
            println!("{}", credential_process_json(&session));
            eprintln!(
                "the role was assumed (ceremony {ceremony}) but no console sign-in URL could be \
                 made; the session is on standard output as credential_process JSON, valid until \
                 {}: use it with the AWS CLI, or retry the sign-in",
                session.expiration
            );
            return Err(e);
        }
    };
    println!(
        "{}?Action=login&Issuer={}&Destination={}&SigninToken={}",
        args.federation_endpoint,
        url_encode(&format!("breakglass-{ceremony}")),
        url_encode(&args.destination),
        url_encode(&token)
    );
    eprintln!("(the URL signs in as the session until it expires: treat it as a secret)");
    Ok(())
}
