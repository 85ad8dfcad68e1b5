//! The history builder and the token floors for scripts/bench's growth table (release build).
//!
//! ```text
//! scale build VAULT CREDENTIALS ENTRIES SHARE_FILE...   grow a vault made by `breakglass init`
//! scale floor-setup DIR                                  a SoftHSM token of its own with one seal key
//! scale floor DIR KEY_ID                                 the bare PKCS#11 cold unseal (one process)
//! scale floor-warm DIR KEY_ID                            one warm token ECDH, microseconds
//! scale floor-unseal DIR KEY_ID                          the bare PKCS#11 program doing every
//!                                                        token operation of an unseal
//! scale pbkdf2                                           SLIP-39 combine of 2 shares at e=0, ms
//! scale signature-floor LOG                              the bare signature checks LOG's lines
//!                                                        carry (ring), ms: on one core, then
//!                                                        divided among the machine's cores
//! scale open VAULT RUNS                                  `Vault::open`, median ms: with this
//!                                                        machine's audit anchor, then without
//! ```
//!
//! `open` times opening the vault in process, as every command does first: with the audit head
//! this machine remembers (only the lines after it are read and verified), then with a copy of
//! this machine's configuration whose anchor remembers no head, rewritten so before each run
//! (the whole log is read and verified, as on a machine opening the vault for the first time).
//!
//! `build` seals CREDENTIALS envelopes with the library's `envelope::seal` for the vault's own
//! keys, then extends the audit log to at least ENTRIES lines with entries the library's
//! `AuditLog` makes: each one chained to the line before it, a checkpoint signed by the vault's
//! audit key (through the token, logged in with the PIN the shares derive) after every
//! `unseal`. For speed, the log is grown in short runs in a scratch log that starts from a copy
//! of the real log's last line (all `AuditLog` reads to find the head), and each run's new lines
//! are then appended to the real log as they are: the chain, the sequence numbers and the
//! signatures are those `AuditLog` wrote.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use secrecy::{ExposeSecret, SecretString};
use vault_core::audit::{AuditLog, CheckpointSigner, ENVELOPE_DETAIL, Event, LineWriter};
use vault_core::envelope::{self, Kind, SealInput};
use vault_core::hsm::{KeyPurpose, Module, PinRole, TokenSelector};
use vault_core::manifest::PinSource;
use vault_core::quorum::{self, Collector, GroupSpec, Share, SplitParams};
use vault_core::store::AUDIT_LOG;
use vault_core::vault::{PinProvider, Vault};

/// Lines grown in the scratch log before they move to the real one.
const RUN: usize = 200;
/// The floor token's label and PINs.
const FLOOR_LABEL: &str = "floor";
const FLOOR_SO_PIN: &str = "floor-so-12345678";
const FLOOR_PIN: &str = "floor-user-12345678";
/// The generator of P-256, uncompressed: a valid peer point for the floor's ECDH.
const PEER: &str = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296\
                    4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";

type Outcome = Result<(), Box<dyn std::error::Error>>;

fn main() -> Outcome {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> Result<&str, String> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("missing argument {i}; see the comment at the top of scale.rs"))
    };
    match arg(0)? {
        "build" => build(
            Path::new(arg(1)?),
            arg(2)?.parse()?,
            arg(3)?.parse()?,
            &args[4..],
        ),
        "floor-setup" => floor_setup(Path::new(arg(1)?)),
        "floor" => floor(Path::new(arg(1)?), arg(2)?, 0),
        "floor-warm" => floor(Path::new(arg(1)?), arg(2)?, 500),
        "floor-unseal" => floor_unseal(arg(2)?),
        "pbkdf2" => pbkdf2(),
        "signature-floor" => signature_floor(Path::new(arg(1)?)),
        "open" => open_cost(Path::new(arg(1)?), arg(2)?.parse()?),
        other => Err(format!("unknown command {other:?}").into()),
    }
}

/// Every PIN of a bench vault comes from the quorum: nothing to ask.
struct QuorumOnly;

impl PinProvider for QuorumOnly {
    fn pin(
        &self,
        label: &str,
        _: PinRole,
        source: &PinSource,
    ) -> Result<SecretString, vault_core::Error> {
        Err(vault_core::vault::VaultError::Layout(format!(
            "the bench vault's token {label} takes its PIN from {source:?}, not the quorum"
        ))
        .into())
    }
}

fn build(dir: &Path, credentials: usize, entries: u64, share_files: &[String]) -> Outcome {
    // The machine's configuration (pins, anchors) as the CLI finds it: the bench runs both
    // with the same environment.
    let config = vault_core::trust::machine::ConfigDir::from_env()
        .ok_or("no configuration directory: set BREAKGLASS_CONFIG_DIR or HOME")?;
    let vault = Vault::open(dir, &config)?;
    let mut shares = Collector::new();
    for (position, file) in share_files.iter().enumerate() {
        let text = std::fs::read_to_string(file)?;
        let words: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        shares.add(position + 1, Share::parse(&words.join(" "), position + 1)?)?;
    }
    let manifest = vault.manifest();
    let hsm_keys = vault.keys().hsm_recipients();
    let quorum_key = manifest.quorum_public_key()?;
    let now = vault_core::clock::rfc3339(vault_core::clock::now_unix());
    let started = Instant::now();
    let mut names = Vec::with_capacity(credentials);
    let mut digests = Vec::with_capacity(credentials);
    for i in 0..credentials {
        let name = format!("c{i:05}");
        let payload = format!("secret number {i} of the bench vault");
        let sealed = envelope::seal(&SealInput {
            vault_id: &manifest.vault_id,
            name: &name,
            kind: Kind::Secret,
            created: now.clone(),
            metadata: BTreeMap::from([("owner".to_owned(), "bench".to_owned())]),
            payload: payload.as_bytes(),
            hsm_public_keys: &hsm_keys,
            quorum_public_key: &quorum_key,
        })?;
        let path = vault.store().credential_path(&name)?;
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?
            .write_all(&sealed.to_bytes())?;
        names.push(name);
        digests.push(sealed.record_digest());
    }
    eprintln!(
        "scale: sealed {credentials} credentials in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let real = vault.store().path(AUDIT_LOG);
    let vault_id = manifest.vault_id.clone();
    let custodians: Vec<String> = manifest
        .custodian_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let writer = vault.line_writer()?;
    let added = vault.with_audit_signer(&shares, &QuorumOnly, |signer| {
        grow_log(
            &real,
            &vault_id,
            (&names, &digests),
            &custodians,
            entries,
            signer,
            &*writer,
        )
        .map_err(|e| vault_core::vault::VaultError::Layout(e.to_string()).into())
    })?;
    eprintln!(
        "scale: appended {added} audit lines in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One `seal` entry per credential in `names` (recording its envelope's digest), then
/// `unseal` (each with its signed checkpoint) and `share_verify` entries until the log has at
/// least `entries` lines, each line written (signed) by `writer`, this machine's operator.
/// Returns the lines added.
fn grow_log(
    real: &Path,
    vault_id: &str,
    (names, digests): (&[String], &[String]),
    custodians: &[String],
    entries: u64,
    signer: &dyn CheckpointSigner,
    writer: &dyn LineWriter,
) -> Result<u64, Box<dyn std::error::Error>> {
    let existing = std::fs::read(real)?;
    let mut last = existing
        .split(|b| *b == b'\n')
        .rfind(|l| !l.is_empty())
        .ok_or("the vault's audit log is empty")?
        .to_vec();
    let mut lines = existing
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64;
    drop(existing);
    let scratch_dir = tempfile::Builder::new()
        .prefix("breakglass-scale-")
        .tempdir_in(scratch_root())?;
    let scratch = scratch_dir.path().join("audit.jsonl");
    let time = vault_core::clock::rfc3339(vault_core::clock::now_unix());
    let mut out = OpenOptions::new().append(true).open(real)?;
    let mut step = 0usize;
    let mut added = 0u64;
    let pair = &custodians[..custodians.len().min(2)];
    while (step < names.len()) || lines < entries {
        let mut start = last.clone();
        start.push(b'\n');
        std::fs::write(&scratch, &start)?;
        let log = AuditLog::new(&scratch, vault_id);
        let mut in_run = 0;
        while in_run < RUN && (step < names.len() || lines + (in_run as u64) < entries) {
            if let Some(name) = names.get(step) {
                let mut event = Event::new("seal")
                    .detail(ENVELOPE_DETAIL, digests[step].clone())
                    .detail("kind", "secret")
                    .detail("replace", "false");
                event.credential = Some(name.clone());
                log.append(event, writer, &time)?;
                in_run += 1;
            } else if step.is_multiple_of(2) {
                let mut event = Event::new("unseal").detail("token", "primary");
                event.credential = names.get(step % names.len().max(1)).cloned();
                event.custodians = pair.to_vec();
                log.append(event, writer, &time)?;
                log.append_checkpoint(signer, writer, &time)?;
                in_run += 2;
            } else {
                let mut event = Event::new("share_verify").detail("set", "quorum");
                event.custodians = vec![custodians[step % custodians.len()].clone()];
                log.append(event, writer, &time)?;
                in_run += 1;
            }
            step += 1;
        }
        let grown = std::fs::read(&scratch)?;
        let new = &grown[start.len()..];
        out.write_all(new)?;
        last = new
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .ok_or("a run added nothing")?
            .to_vec();
        lines += in_run as u64;
        added += in_run as u64;
    }
    out.sync_all()?;
    Ok(added)
}

/// The median of `runs` timings of `Vault::open` with `config`, `before` run before each one.
fn median_open(
    dir: &Path,
    config: &vault_core::trust::machine::ConfigDir,
    runs: usize,
    before: &dyn Fn() -> Outcome,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        before()?;
        let started = Instant::now();
        Vault::open(dir, config)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Prints the median milliseconds of opening the vault with this machine's audit anchor, then
/// without one (see the comment at the top).
fn open_cost(dir: &Path, runs: usize) -> Outcome {
    use vault_core::trust::machine::{ConfigDir, MachineAnchor};
    let config = ConfigDir::from_env()
        .ok_or("no configuration directory: set BREAKGLASS_CONFIG_DIR or HOME")?;
    let vault = Vault::open(dir, &config)?;
    let vault_id = vault.manifest().vault_id.clone();
    let anchored = median_open(dir, &config, runs, &|| Ok(()))?;
    let mut headless = MachineAnchor::read(&config, &vault_id)?
        .ok_or("this machine has no anchor for the vault: run a command on it first")?;
    headless.audit = None;
    let scratch = tempfile::tempdir()?;
    let fresh = ConfigDir::at(scratch.path());
    std::fs::copy(
        vault_core::vault::known_vaults_path(&config),
        vault_core::vault::known_vaults_path(&fresh),
    )?;
    let full = median_open(dir, &fresh, runs, &|| Ok(headless.write(&fresh)?))?;
    println!("{anchored:.2} {full:.2}");
    Ok(())
}

/// A memory file system for the scratch log when there is one (its fsyncs cost nothing).
fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A SoftHSM configuration in `dir` (`SOFTHSM2_CONF` must already name `dir/softhsm2.conf`)
/// with one token holding one seal key; prints the key's id (hex).
fn floor_setup(dir: &Path) -> Outcome {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    std::fs::write(
        dir.join("softhsm2.conf"),
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )?;
    let module = Module::open(&hsm_testing::softhsm::module_path())?;
    let so = SecretString::from(FLOOR_SO_PIN.to_owned());
    let user = SecretString::from(FLOOR_PIN.to_owned());
    let token = module.init_token(FLOOR_LABEL, &so)?;
    let session = module.open_session(&token)?;
    session.login(PinRole::SecurityOfficer, &so, false)?;
    session.init_user_pin(&user)?;
    drop(session);
    let token = module.find_token(&TokenSelector::Label(FLOOR_LABEL.into()))?;
    let session = module.open_session(&token)?;
    session.login(PinRole::User, &user, false)?;
    let key = session.generate_key_pair("floor", KeyPurpose::Seal)?;
    session.generate_key_pair("floor", KeyPurpose::Audit)?;
    session.write_data(FLOOR_HEAD, b"a head", None)?;
    println!("{}", hex::encode(&key.id));
    Ok(())
}

/// What every floor program does first: load the module, find the floor token, open a
/// session and log in.
fn floor_login() -> Result<Session, Box<dyn std::error::Error>> {
    let pkcs11 = Pkcs11::new(hsm_testing::softhsm::module_path())?;
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let slot = pkcs11
        .get_slots_with_initialized_token()?
        .into_iter()
        .find(|s| {
            pkcs11
                .get_token_info(*s)
                .is_ok_and(|t| t.label().trim_end() == FLOOR_LABEL)
        })
        .ok_or("no floor token: run scale floor-setup first")?;
    let session = pkcs11.open_rw_session(slot)?;
    session.login(
        UserType::User,
        Some(&SecretString::from(FLOOR_PIN.to_owned())),
    )?;
    Ok(session)
}

/// The label of the floor token's data object (as the audit head a vault's token holds).
const FLOOR_HEAD: &str = "floor:audit-head";

/// The bare PKCS#11 program doing every token operation of an `unseal`: what [`floor`] does
/// (load, find the token, session, login, find the key, ECDH), then the audit's: find the
/// signing key and sign a digest (the checkpoint), find the data object holding the audit
/// head, read it, and replace it (SoftHSM changes no value in place: create, then destroy).
fn floor_unseal(key_id: &str) -> Outcome {
    let session = floor_login()?;
    let find = |template: &[Attribute]| -> Result<cryptoki::object::ObjectHandle, String> {
        session
            .find_objects(template)
            .map_err(|e| e.to_string())?
            .first()
            .copied()
            .ok_or_else(|| "the floor token lacks an object: run scale floor-setup".to_owned())
    };
    let private = find(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Id(hex::decode(key_id)?),
    ])?;
    std::hint::black_box(ecdh(&session, private, &hex::decode(PEER)?)?);
    let signer = find(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Sign(true),
    ])?;
    std::hint::black_box(session.sign(&Mechanism::Ecdsa, signer, &[0x42; 32])?);
    let head = find(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Label(FLOOR_HEAD.as_bytes().to_vec()),
    ])?;
    std::hint::black_box(session.get_attributes(head, &[AttributeType::Value])?);
    session.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Modifiable(true),
        Attribute::Label(FLOOR_HEAD.as_bytes().to_vec()),
        Attribute::Value(b"the next head".to_vec()),
    ])?;
    session.destroy_object(head)?;
    Ok(())
}

/// The bare PKCS#11 program: load the module, find the token, open a session, log in, find the
/// private key, ECDH (derive, read, destroy). With `warm` > 0, then times `warm` more ECDHs on
/// the same session and prints microseconds per ECDH.
fn floor(_dir: &Path, key_id: &str, warm: u32) -> Outcome {
    let session = floor_login()?;
    let private = *session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(hex::decode(key_id)?),
        ])?
        .first()
        .ok_or("the floor key is missing")?;
    let peer = hex::decode(PEER)?;
    let value = ecdh(&session, private, &peer)?;
    std::hint::black_box(value);
    if warm > 0 {
        for _ in 0..10 {
            ecdh(&session, private, &peer)?;
        }
        let started = Instant::now();
        for _ in 0..warm {
            std::hint::black_box(ecdh(&session, private, &peer)?);
        }
        println!(
            "{:.1}",
            started.elapsed().as_secs_f64() * 1e6 / f64::from(warm)
        );
    }
    Ok(())
}

fn ecdh(
    session: &Session,
    private: cryptoki::object::ObjectHandle,
    peer: &[u8],
) -> Result<usize, cryptoki::error::Error> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::ValueLen(32.into()),
    ];
    let params = Ecdh1DeriveParams::new(EcKdf::null(), peer);
    let derived = session.derive_key(&Mechanism::Ecdh1Derive(params), private, &template)?;
    let value = session.get_attributes(derived, &[AttributeType::Value])?;
    session.destroy_object(derived)?;
    Ok(value.len())
}

/// The SLIP-39 part of every unseal: combining two shares at iteration exponent 0 (PBKDF2,
/// 4 rounds of 2,500 iterations), median of 21, in milliseconds.
/// The floor of `audit verify` on LOG: each operator-signed line's Ed25519 check and each
/// checkpoint's ECDSA P-256 check, timed with ring on fixed messages of a line's size (the
/// median of 5 runs of 2,000 each), times how many LOG has; printed for one core, then
/// divided among the cores `audit verify` uses.
fn signature_floor(log: &Path) -> Outcome {
    use ring::signature::{self, KeyPair as _};
    let text = std::fs::read_to_string(log)?;
    let signed = text
        .lines()
        .filter(|l| l.contains("\"signature\":\""))
        .count();
    let checkpoints = text
        .lines()
        .filter(|l| l.contains("\"checkpoint\":{"))
        .count();
    let rng = ring::rand::SystemRandom::new();
    let message = [0x5au8; 400];
    let ring_error = |e: &dyn std::fmt::Debug| format!("ring: {e:?}");
    let ed = signature::Ed25519KeyPair::from_pkcs8(
        signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|e| ring_error(&e))?
            .as_ref(),
    )
    .map_err(|e| ring_error(&e))?;
    let ed_signature = ed.sign(&message);
    let ed_key = signature::UnparsedPublicKey::new(&signature::ED25519, ed.public_key().as_ref());
    let p256 = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let ec = signature::EcdsaKeyPair::from_pkcs8(
        p256,
        signature::EcdsaKeyPair::generate_pkcs8(p256, &rng)
            .map_err(|e| ring_error(&e))?
            .as_ref(),
        &rng,
    )
    .map_err(|e| ring_error(&e))?;
    let ec_signature = ec.sign(&rng, &message).map_err(|e| ring_error(&e))?;
    let ec_key = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        ec.public_key().as_ref(),
    );
    let per = |check: &dyn Fn() -> bool| {
        let mut runs: Vec<f64> = (0..5)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..2000 {
                    assert!(check());
                }
                started.elapsed().as_secs_f64() * 1e3 / 2000.0
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        runs[2]
    };
    let ed_ms = per(&|| ed_key.verify(&message, ed_signature.as_ref()).is_ok());
    let ec_ms = per(&|| ec_key.verify(&message, ec_signature.as_ref()).is_ok());
    let one_core = signed as f64 * ed_ms + checkpoints as f64 * ec_ms;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    println!(
        "{one_core:.1} {:.1} {cores} {signed} {checkpoints} {:.1} {:.1}",
        one_core / cores as f64,
        ed_ms * 1e3,
        ec_ms * 1e3
    );
    Ok(())
}

fn pbkdf2() -> Outcome {
    let params = SplitParams {
        group_threshold: 1,
        groups: vec![GroupSpec {
            threshold: 2,
            count: 3,
        }],
        iteration_exponent: 0,
        extendable: true,
    };
    let shares = quorum::split(&[7u8; 32], b"", &params)?.remove(0);
    let two: Vec<String> = shares[..2]
        .iter()
        .map(|s| s.to_mnemonic().expose_secret().to_owned())
        .collect();
    let mut times: Vec<f64> = (0..21)
        .map(|_| {
            let started = Instant::now();
            let combined = quorum::combine_mnemonics(&two, b"");
            std::hint::black_box(combined.is_ok());
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{:.2}", times[times.len() / 2]);
    Ok(())
}
