//! The fuzz harness: one function per parser of breakglass, each taking arbitrary bytes as the
//! file (or text) that parser reads, and checking what must hold whatever the bytes are:
//! no panic, and whatever parses writes back to the same meaning (the canonical formats:
//! to the same bytes). The fuzz targets in `fuzz_targets/` are one line each around these;
//! the workspace's tests run the same functions over the corpus and the regression inputs.
//!
//! The AWS key JSON is parsed in vault-core (`credential::AwsKeys::from_input`), so it is
//! fuzzed there. The age share-file reader lives in the `breakglass` binary, which has no
//! library: its module is compiled in here from `vault-cli/src` as it is.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use vault_core::audit::AuditLog;
use vault_core::ceremony::{Contribution, Request};
use vault_core::credential::{self, AwsKeys};
use vault_core::envelope::Envelope;
use vault_core::manifest::Manifest;
use vault_core::quorum::{Collector, Share};
use vault_core::secret::ExposeSecret;
use vault_core::trust::machine::ConfigDir;
use vault_core::vault::Vault;

pub mod fixtures;

// vault-cli's age share-file reader, with the error classes it reports through.
#[allow(dead_code)]
#[path = "../../vault-cli/src/custodian_keys.rs"]
mod custodian_keys;
#[allow(dead_code)]
#[path = "../../vault-cli/src/exit.rs"]
mod exit;

/// A fuzz target: its name (the directory of its corpus) and its harness.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    ("share_mnemonics", share_mnemonics),
    ("envelope", envelope),
    ("manifest", manifest),
    ("ceremony_request", ceremony_request),
    ("ceremony_contribution", ceremony_contribution),
    ("audit_log", audit_log),
    ("rekey_journal", rekey_journal),
    ("aws_keys", aws_keys),
    ("age_share_file", age_share_file),
];

/// A scratch directory for the targets that read files, made once per process.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("breakglass-fuzz-")
            .tempdir()
            .expect("a temporary directory")
    })
    .path()
}

fn file(name: &str) -> PathBuf {
    PathBuf::from(name)
}

/// Share mnemonics, one per line (as `shares combine`, `--shares-stdin` and share files give
/// them): each is parsed, written back and parsed again; then they are collected and, when
/// they make a quorum, recombined (iteration exponent 0 only: higher ones cost seconds).
pub fn share_mnemonics(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut collector = Collector::new();
    let mut cheap = true;
    for (i, line) in text.lines().enumerate() {
        let Ok(share) = Share::parse(line, i + 1) else {
            continue;
        };
        let again = Share::parse(share.to_mnemonic().expose_secret(), i + 1)
            .expect("a written mnemonic parses");
        assert!(
            again.same_as(&share),
            "a mnemonic round trip changed the share"
        );
        cheap &= share.info().iteration_exponent == 0;
        let _ = collector.add(i + 1, share);
    }
    if cheap && collector.progress().complete {
        let _ = collector.combine(b"");
    }
}

/// An envelope file: parsed strictly; one that parses is its own canonical form, passes or
/// fails the identity check, and is opened with the fixture keys.
pub fn envelope(data: &[u8]) {
    let path = file("credentials/prod-breakglass.json");
    let Ok(envelope) = Envelope::from_bytes(data, &path) else {
        return;
    };
    assert_eq!(envelope.to_bytes(), data, "a parsed envelope is canonical");
    let _ = envelope.check_identity(fixtures::VAULT_ID, fixtures::CREDENTIAL, &path);
    if let Ok(payload) = envelope.open(&keys().token, &keys().quorum, &path) {
        let _ = AwsKeys::from_payload(payload.expose_secret());
    }
}

/// A manifest (`vault.json`): one that parses writes back to the same manifest, and its
/// fingerprint, token recipients and quorum arithmetic work on whatever it holds.
pub fn manifest(data: &[u8]) {
    let path = file("vault.json");
    let Ok(manifest) = Manifest::from_bytes(data, &path) else {
        return;
    };
    let again =
        Manifest::from_bytes(&manifest.to_bytes(), &path).expect("a written manifest parses");
    assert_eq!(again, manifest, "a manifest round trip changed it");
    let keys = manifest.keys().expect("a parsed manifest's keys parse");
    let _ = keys.hsm_recipients();
    let _ = manifest.fingerprint();
    let _ = manifest.quorum.minimum_shares();
    let _ = manifest.custodian_names();
    if let Some(recovery) = &manifest.recovery {
        let _ = recovery.minimum_shares();
    }
}

/// A ceremony request: one that parses is canonical, has a hash, an expiry and a layout that
/// can be described. The signed form custodians read: one that parses is checked (against the
/// identity its own manifest claims, so the signature checks are reached) without panicking.
pub fn ceremony_request(data: &[u8]) {
    if let Ok(signed) = vault_core::trust::request::SignedRequest::from_bytes(data) {
        if let Ok(claimed) = signed.manifest.identity_fingerprint() {
            let pin = vault_core::trust::identity::PinnedIdentity::of(&claimed);
            let _ = signed.verify(&pin, None, 1_800_000_000);
        }
        return;
    }
    let Ok(request) = Request::from_bytes(data, "the request") else {
        return;
    };
    assert_eq!(request.to_bytes(), data, "a parsed request is canonical");
    let _ = request.hash();
    let _ = request.check_not_expired(1_800_000_000);
    let _ = request.describe();
    if let vault_core::ceremony::Purpose::Rekey(layout) = &request.purpose {
        let _ = layout.describe();
    }
}

/// A ceremony contribution: one that parses writes back to the same contribution, and is
/// opened for the fixture request with the fixture transport key.
pub fn ceremony_contribution(data: &[u8]) {
    let Ok(contribution) = Contribution::from_bytes(data, "the contribution") else {
        return;
    };
    let again = Contribution::from_bytes(&contribution.to_bytes(), "the contribution")
        .expect("a written contribution parses");
    assert_eq!(again, contribution, "a contribution round trip changed it");
    if let Ok(mnemonic) = contribution.open(&keys().request, &keys().transport, "the contribution")
    {
        let _ = Share::parse(&mnemonic, 1);
    }
}

/// An audit log (`audit.jsonl`): read, walked and verified with the fixture audit key; when
/// it verifies, its head is the verified chain's head.
pub fn audit_log(data: &[u8]) {
    let path = scratch().join("audit.jsonl");
    std::fs::write(&path, data).expect("writing the scratch audit log");
    let log = AuditLog::new(&path, fixtures::VAULT_ID);
    let head = log.head();
    let entries = log.entries();
    let _ = log.hash_of_line(2);
    let key = fixtures::token_key().public_key_bytes();
    let retired = [(2, key.clone())];
    let whole = log.verify_with_retired(&retired, &key);
    // Read from its end (the torn tail, the lines back) or streamed, the log is the log the
    // whole-file reader splits.
    if let Ok(whole) = &whole {
        assert_eq!(
            log.torn_tail().ok().flatten(),
            whole.torn_tail,
            "the torn tail found from the end is the whole log's"
        );
    }
    if let Ok(entries) = &entries {
        let mut streamed = Vec::new();
        log.each_entry(|e| {
            streamed.push(e);
            Ok::<_, vault_core::audit::AuditError>(())
        })
        .expect("a log whose entries read streams");
        assert_eq!(&streamed, entries, "streamed entries are the entries");
        let mut back: Vec<vault_core::audit::Entry> = log
            .lines_back()
            .expect("the log opens")
            .map(|line| serde_json::from_slice(&line.expect("the log reads").1).expect("an entry"))
            .collect();
        back.reverse();
        assert_eq!(&back, entries, "the lines read back are the entries");
    }
    if let (Ok(report), Ok(head)) = (log.verify(&key), head)
        && report.is_intact()
    {
        assert_eq!(
            head.hash, report.head,
            "the head is the verified chain's head"
        );
    }
}

/// A rekey journal (`rekey.json`) in a vault whose manifest and audit log are intact: the
/// vault opens for resuming, and the pending rekey's two manifests are read from the journal.
pub fn rekey_journal(data: &[u8]) {
    let dir = journal_vault();
    std::fs::write(dir.join("rekey.json"), data).expect("writing the scratch journal");
    let config = ConfigDir::at(&scratch().join("config"));
    let Ok(vault) = Vault::open_resuming(dir, &config) else {
        return;
    };
    let _ = vault.pending_rekey();
}

/// AWS key JSON, as `seal --kind aws` reads it (ours or `aws iam create-access-key`'s), and
/// the sealed payload form: what parses seals and reads back to the same keys.
pub fn aws_keys(data: &[u8]) {
    if let Ok(keys) = AwsKeys::from_input(data) {
        let again = AwsKeys::from_payload(&keys.to_payload()).expect("a written payload parses");
        assert_eq!(again.access_key_id, keys.access_key_id);
        assert_eq!(
            again.secret_access_key.expose_secret(),
            keys.secret_access_key.expose_secret()
        );
        assert_eq!(
            again
                .mfa_seed
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            keys.mfa_seed.as_ref().map(|s| s.expose_secret().to_owned())
        );
    }
    let _ = AwsKeys::from_payload(data);
    let _ = credential::aws_root_payload(data);
}

/// A share file that may be age-encrypted, as `--share-file` reads it: decrypted with the
/// fixture identity when armored, then its words (every line not blank and not a comment)
/// parsed as a share.
pub fn age_share_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let plain = if custodian_keys::is_age(text) {
        match custodian_keys::decrypt(text, Some(age_identity_file()), Path::new("share")) {
            Ok(plain) => plain,
            Err(_) => return,
        }
    } else {
        zeroize::Zeroizing::new(text.to_owned())
    };
    let words: Vec<&str> = plain
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let _ = Share::parse(&words.join(" "), 1);
}

struct Keys {
    token: vault_core::hpke::P256SecretKey,
    quorum: vault_core::hpke::X25519SecretKey,
    transport: vault_core::hpke::X25519SecretKey,
    request: Request,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        token: fixtures::token_key(),
        quorum: fixtures::quorum_key(),
        transport: fixtures::transport_key(),
        request: fixtures::request(),
    })
}

fn age_identity_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = scratch().join("identity.txt");
        std::fs::write(&path, format!("{}\n", fixtures::AGE_IDENTITY))
            .expect("writing the scratch identity");
        path
    })
}

/// A vault directory with the fixture manifest recorded in its audit log, for the journal.
fn journal_vault() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch().join("vault");
        std::fs::create_dir_all(&dir).expect("creating the scratch vault");
        let manifest = fixtures::certified(fixtures::manifest(&fixtures::shares()), 1);
        std::fs::write(dir.join("vault.json"), manifest.document().to_bytes())
            .expect("writing the manifest");
        dir
    })
}
