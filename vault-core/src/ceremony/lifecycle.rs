//! A ceremony's life in the vault: opening it (a security officer's key on this machine signs
//! the request; a fresh transport key kept 0600 in the vault's `ceremonies/`, the signed
//! request beside it, an audit entry), gathering the contributions received (the request
//! checked as a custodian checks it, each contribution opened with the transport key and
//! checked against the vault's share commitments), and
//! closing it (still within its time, on the audit history it was opened on; the transport
//! key destroyed, an audit entry naming who contributed), or cancelling it. The transport key
//! is overwritten and removed at close, at cancel, and as soon as a command finds the request
//! expired. What the quorum is used for in between is the caller's: it matches on the
//! request's [`Purpose`].

use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::audit::Event;
use crate::hpke::X25519SecretKey;
use crate::quorum::{Collector, Share};
use crate::store::{CEREMONIES, StoreError, write_new_secret_file};
use crate::trust::identity::PinnedIdentity;
use crate::trust::request::SignedRequest;
use crate::trust::{OperatorKey, Role};
use crate::vault::{Vault, VaultError};

use super::{AuditHead, CeremonyError, Contribution, Purpose, REQUEST_FORMAT, Request};

/// What opening a ceremony needs.
#[derive(Debug)]
pub struct Opening<'a> {
    /// The requesting security officer, from [`requester`].
    pub requester: &'a Requester,
    /// What the quorum is for.
    pub purpose: Purpose,
    /// Why: shown to every custodian and recorded.
    pub reason: &'a str,
    /// How long contributions are accepted, in seconds (at most 7 days).
    pub lifetime_seconds: u64,
    /// Where to write the request for the custodians (a new file).
    pub out: &'a Path,
}

/// The contributions of a ceremony, opened and checked.
pub struct Gathered {
    /// The request.
    pub request: Request,
    /// The shares, each from the custodian who signed it.
    pub shares: Collector,
    /// Who contributed, in the order given.
    pub custodians: Vec<String>,
}

impl std::fmt::Debug for Gathered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gathered")
            .field("request", &self.request.id)
            .field("custodians", &self.custodians)
            .finish_non_exhaustive()
    }
}

/// The request and transport key files of ceremony `id` in the vault.
fn files(vault: &Vault, id: &str) -> Result<(PathBuf, PathBuf), CeremonyError> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CeremonyError::BadId { id: id.to_owned() });
    }
    let dir = vault.store().path(CEREMONIES);
    Ok((
        dir.join(format!("{id}.request.json")),
        dir.join(format!("{id}.key")),
    ))
}

/// The security officer who opens a ceremony: their key, found on this machine.
#[derive(Debug)]
pub struct Requester {
    key: OperatorKey,
    name: String,
}

impl Requester {
    /// Their operator name, as the certified manifest lists it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// This machine's operator key for the vault ([`OperatorKey::find`]), which must be a
/// security officer's: only they open ceremonies. A machine with no key for the vault is
/// refused naming where the key was looked for.
pub fn requester(vault: &Vault) -> Result<Requester, crate::Error> {
    let (key, operator) = OperatorKey::find(vault.config(), vault.certified())?;
    let name = vault
        .certified()
        .operator_with_role(&operator.name, Role::SecurityOfficer)?
        .name
        .clone();
    Ok(Requester { key, name })
}

/// Opens a ceremony as the security officer `opening.requester`: a fresh id and
/// transport key, the request signed by that officer ([`SignedRequest`]) and written into the
/// vault and to `opening.out`, and a `ceremony_opened` audit entry naming them. The key of an
/// operator who is not a security officer opens nothing and writes nothing. Returns the signed
/// request.
pub fn open(vault: &Vault, opening: &Opening<'_>) -> Result<SignedRequest, crate::Error> {
    let max_seconds = crate::trust::duration::MAX_CEREMONY_EXPIRY;
    if opening.lifetime_seconds == 0 || opening.lifetime_seconds > max_seconds {
        return Err(CeremonyError::Lifetime {
            seconds: opening.lifetime_seconds,
            max_seconds,
        }
        .into());
    }
    let mut id = [0u8; 8];
    SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| VaultError::Random)?;
    let id = hex::encode(id);
    let transport = X25519SecretKey::generate()?;
    let head = vault.audit().head()?;
    let now = crate::clock::now_unix();
    let request = Request {
        format: REQUEST_FORMAT.into(),
        id: id.clone(),
        vault_id: vault.manifest().vault_id.clone(),
        fingerprint: vault.identity(),
        purpose: opening.purpose.clone(),
        reason: opening.reason.to_owned(),
        requester: opening.requester.name.clone(),
        created: crate::clock::rfc3339(now),
        expires: crate::clock::rfc3339(now + opening.lifetime_seconds),
        audit_head: AuditHead {
            seq: head.seq,
            hash: head.hash,
        },
        transport_public_key: hex::encode(transport.public_key_bytes()),
    };
    let signed = SignedRequest::sign(request, vault.certified(), &opening.requester.key)?;
    let (request_path, key_path) = files(vault, &id)?;
    write_new_secret_file(
        &key_path,
        hex::encode(transport.to_secret_bytes().expose_secret()).as_bytes(),
    )?;
    write_new_secret_file(&request_path, &signed.to_bytes())?;
    write_new_secret_file(opening.out, &signed.to_bytes())?;
    let request = signed.request();
    let mut event = Event::new("ceremony_opened")
        .detail("purpose", request.purpose.name())
        .detail("reason", request.reason.clone())
        .detail("expires", request.expires.clone())
        .detail("requester", signed.requester.clone());
    event.ceremony = Some(id);
    event.credential = request.purpose.credential().map(str::to_owned);
    vault.record(event)?;
    Ok(signed)
}

/// Reads the vault's copy of ceremony `id`'s signed request (not yet verified).
fn read_signed(vault: &Vault, id: &str) -> Result<SignedRequest, crate::Error> {
    let (request_path, _) = files(vault, id)?;
    let bytes =
        std::fs::read(&request_path).map_err(|_| CeremonyError::NotOpen { id: id.to_owned() })?;
    Ok(SignedRequest::from_bytes(&bytes)?)
}

/// Ceremony `id`'s request and transport key, loaded. An expired request has its transport
/// key destroyed here and is refused ("expired at ...").
struct Loaded {
    request: Request,
    transport: X25519SecretKey,
}

/// The request is checked as a custodian checks it (signed by a security officer of this
/// vault, over a manifest of this vault's identity), and its signer must still be a security
/// officer in the vault's current manifest: a request planted in `ceremonies/` is carried out
/// by no one.
fn load(vault: &Vault, id: &str, now: u64) -> Result<Loaded, crate::Error> {
    let (_, key_path) = files(vault, id)?;
    let signed = read_signed(vault, id)?;
    if let Err(expired) = signed.request().check_not_expired(now) {
        destroy_transport_key(&key_path)?;
        return Err(expired.into());
    }
    let trusted = vault.certified();
    let verified = signed.verify(&PinnedIdentity::of(trusted.identity()), None, now)?;
    trusted.operator_with_role(&verified.requester()?.name, Role::SecurityOfficer)?;
    let request = verified.request().clone();
    let key_hex = Zeroizing::new(
        std::fs::read_to_string(&key_path)
            .map_err(|_| CeremonyError::TransportKeyGone { id: id.to_owned() })?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(key_hex.trim(), key.as_mut()).map_err(|_| {
        CeremonyError::TransportKeyDamaged {
            file: key_path.clone(),
        }
    })?;
    Ok(Loaded {
        request,
        transport: X25519SecretKey::from_bytes(&key),
    })
}

/// A contribution that was not accepted, and why.
#[derive(Debug)]
pub struct Rejected {
    /// The file.
    pub file: PathBuf,
    /// Why it was not accepted.
    pub error: crate::Error,
}

/// Loads ceremony `id`'s request and transport key, and opens and checks every contribution
/// in `contributions`: each opens with the transport key for this request, each custodian
/// contributes once, and each share is the one the vault's commitments give that custodian.
/// The first contribution that fails a check is the error.
pub fn gather(
    vault: &Vault,
    id: &str,
    contributions: &[PathBuf],
) -> Result<Gathered, crate::Error> {
    let (gathered, rejected) = gather_each(vault, id, contributions)?;
    match rejected.into_iter().next() {
        Some(first) => Err(first.error),
        None => Ok(gathered),
    }
}

/// As [`gather`], but a contribution that fails a check is set aside with its reason and the
/// others are still gathered (for a status report). The request itself failing (unknown,
/// expired, key gone) is still the error.
pub fn gather_each(
    vault: &Vault,
    id: &str,
    contributions: &[PathBuf],
) -> Result<(Gathered, Vec<Rejected>), crate::Error> {
    let loaded = load(vault, id, crate::clock::now_unix())?;
    let mut shares = Collector::new();
    let mut custodians = Vec::new();
    let mut rejected = Vec::new();
    for (i, file) in contributions.iter().enumerate() {
        match accept(vault, &loaded, &mut shares, &custodians, i + 1, file) {
            Ok(custodian) => custodians.push(custodian),
            Err(error) => rejected.push(Rejected {
                file: file.clone(),
                error,
            }),
        }
    }
    Ok((
        Gathered {
            request: loaded.request,
            shares,
            custodians,
        },
        rejected,
    ))
}

/// Opens and checks one contribution and adds its share; returns its custodian.
fn accept(
    vault: &Vault,
    loaded: &Loaded,
    shares: &mut Collector,
    custodians: &[String],
    position: usize,
    file: &Path,
) -> Result<String, crate::Error> {
    let what = format!("contribution {}", file.display());
    let bytes = std::fs::read(file).map_err(|cause| StoreError::Io {
        path: file.to_path_buf(),
        action: "reading",
        cause,
    })?;
    let contribution = Contribution::from_bytes(&bytes, &what)?;
    let mnemonic = contribution.open(&loaded.request, &loaded.transport, &what)?;
    if custodians.contains(&contribution.custodian) {
        return Err(CeremonyError::ContributedTwice {
            what,
            custodian: contribution.custodian,
        }
        .into());
    }
    let unusable = |source| CeremonyError::Share {
        what: what.clone(),
        source,
    };
    let share = Share::parse(&mnemonic, position).map_err(unusable)?;
    match vault.custodian_of(&share) {
        Some(owner) if owner == contribution.custodian => {}
        Some(owner) => {
            return Err(CeremonyError::WrongCustodian {
                what,
                signed: contribution.custodian,
                owner,
            }
            .into());
        }
        None => {
            return Err(CeremonyError::ForeignShare {
                what,
                custodian: contribution.custodian,
            }
            .into());
        }
    }
    shares.add(position, share).map_err(unusable)?;
    Ok(contribution.custodian)
}

impl Gathered {
    /// Checks that the ceremony may be carried out now: not expired, and the audit log still
    /// holds the head it was opened on (history was not rewritten since).
    pub fn check_closable(&self, vault: &Vault, now: u64) -> Result<(), crate::Error> {
        let request = &self.request;
        request.check_not_expired(now)?;
        if request.audit_head.seq > 0
            && vault
                .audit()
                .hash_of_line(request.audit_head.seq)?
                .as_deref()
                != Some(request.audit_head.hash.as_str())
        {
            return Err(CeremonyError::HistoryChanged {
                id: request.id.clone(),
                line: request.audit_head.seq,
            }
            .into());
        }
        Ok(())
    }
}

/// Closes a ceremony whose purpose was carried out: its transport key is destroyed and a
/// `ceremony_closed` entry names who contributed.
pub fn close(
    vault: &Vault,
    request: &Request,
    custodians: Vec<String>,
) -> Result<(), crate::Error> {
    let (_, key_path) = files(vault, &request.id)?;
    if !destroy_transport_key(&key_path)? {
        return Err(CeremonyError::TransportKeyGone {
            id: request.id.clone(),
        }
        .into());
    }
    let mut event = Event::new("ceremony_closed").detail("purpose", request.purpose.name());
    event.ceremony = Some(request.id.clone());
    event.custodians = custodians;
    vault.record(event)?;
    Ok(())
}

/// Cancels ceremony `id` before it is carried out: its transport key is destroyed, so no
/// contribution sent to it can ever be opened, and a `ceremony_cancelled` entry records it.
/// Returns the request. An expired ceremony whose key is still there can be cancelled too.
pub fn cancel(vault: &Vault, id: &str) -> Result<Request, crate::Error> {
    let (_, key_path) = files(vault, id)?;
    let request = read_signed(vault, id)?.request().clone();
    if !destroy_transport_key(&key_path)? {
        return Err(CeremonyError::NotOpen { id: id.to_owned() }.into());
    }
    let mut event = Event::new("ceremony_cancelled").detail("purpose", request.purpose.name());
    event.ceremony = Some(request.id.clone());
    event.credential = request.purpose.credential().map(str::to_owned);
    vault.record(event)?;
    Ok(request)
}

/// Destroys the transport key of every ceremony of the vault whose request has expired.
/// Returns the ids of those whose key was destroyed now.
pub fn destroy_expired(vault: &Vault, now: u64) -> Result<Vec<String>, crate::Error> {
    let dir = vault.store().path(CEREMONIES);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(cause) => {
            return Err(StoreError::Io {
                path: dir,
                action: "listing",
                cause,
            }
            .into());
        }
    };
    let mut destroyed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".request.json")) else {
            continue;
        };
        let Ok((request_path, key_path)) = files(vault, id) else {
            continue;
        };
        if !key_path.exists() {
            continue;
        }
        // A request that cannot be read keeps its key: nothing says it expired, and the
        // commands that use it name what is wrong with it.
        let Some(signed) = std::fs::read(&request_path)
            .ok()
            .and_then(|bytes| SignedRequest::from_bytes(&bytes).ok())
        else {
            continue;
        };
        let request = signed.request();
        if request.check_not_expired(now).is_err() && destroy_transport_key(&key_path)? {
            destroyed.push(id.to_owned());
        }
    }
    destroyed.sort();
    Ok(destroyed)
}

/// Overwrites the transport key file with zeros, flushes it to disk, and removes it. Returns
/// whether there was a key to destroy.
fn destroy_transport_key(path: &Path) -> Result<bool, crate::Error> {
    use std::io::Write;
    let io = |action: &'static str| {
        move |cause| StoreError::Io {
            path: path.to_path_buf(),
            action,
            cause,
        }
    };
    let length = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(cause) => return Err(io("reading")(cause).into()),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io("overwriting"))?;
    let zeros = vec![0u8; usize::try_from(length).unwrap_or(0)];
    file.write_all(&zeros).map_err(io("overwriting"))?;
    file.sync_all().map_err(io("overwriting"))?;
    drop(file);
    std::fs::remove_file(path).map_err(io("removing"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    //! The lifecycle through the library alone, against a real token (a throw-away SoftHSM
    //! token per test; nextest runs each test in its own process). The end-to-end suites
    //! (`tests/ceremony.rs`, `tests/ceremony_trust.rs`) run the same paths through the binary.

    use secrecy::SecretString;

    use hsm_testing::softhsm::SoftHsm;

    use super::*;
    use crate::trust::machine::ConfigDir;
    use crate::vault::test_vault::init_vault;

    /// A 2-of-3 vault (alice, bob, carol) whose first operator, olivia, is a security officer
    /// with her key on this machine.
    struct Lab {
        _softhsm: SoftHsm,
        dir: tempfile::TempDir,
        vault: Vault,
        /// Each custodian's share, as init handed it out.
        shares: Vec<(String, SecretString)>,
    }

    impl Lab {
        fn new() -> Lab {
            let softhsm = SoftHsm::new();
            let dir = tempfile::tempdir().expect("a temporary directory");
            let config = ConfigDir::at(&dir.path().join("config"));
            let (vault, shares) =
                init_vault(&softhsm, &dir.path().join("vault"), "vault-a", &config);
            Lab {
                _softhsm: softhsm,
                dir,
                vault,
                shares,
            }
        }

        fn share(&self, custodian: &str) -> &str {
            self.shares
                .iter()
                .find(|(c, _)| c == custodian)
                .map(|(_, s)| s.expose_secret())
                .expect("a custodian of the vault")
        }

        /// Opens a ceremony for `lifetime` seconds; returns the signed request.
        fn open(&self, lifetime: u64) -> Result<SignedRequest, crate::Error> {
            let requester = requester(&self.vault)?;
            let out = self
                .dir
                .path()
                .join(format!("request-{}.json", rand_suffix()));
            open(
                &self.vault,
                &Opening {
                    requester: &requester,
                    purpose: Purpose::Unseal {
                        credential: "db-root".into(),
                    },
                    reason: "drill",
                    lifetime_seconds: lifetime,
                    out: &out,
                },
            )
        }

        /// `custodian`'s contribution to `request` holding `mnemonic`, written to a file.
        fn contribution(&self, request: &Request, custodian: &str, mnemonic: &str) -> PathBuf {
            let file = self
                .dir
                .path()
                .join(format!("{custodian}-{}.json", rand_suffix()));
            let contribution = Contribution::seal(request, custodian, mnemonic).unwrap();
            std::fs::write(&file, contribution.to_bytes()).unwrap();
            file
        }

        fn key_file(&self, id: &str) -> PathBuf {
            files(&self.vault, id).unwrap().1
        }
    }

    fn rand_suffix() -> String {
        let mut bytes = [0u8; 6];
        SystemRandom::new().fill(&mut bytes).unwrap();
        hex::encode(bytes)
    }

    fn ceremony_error(result: Result<impl std::fmt::Debug, crate::Error>) -> CeremonyError {
        match result {
            Err(crate::Error::Ceremony(e)) => e,
            other => panic!("expected a ceremony error, got {other:?}"),
        }
    }

    #[test]
    fn a_ceremony_gathers_each_custodian_once_then_closes_and_loses_its_key() {
        let lab = Lab::new();
        let before = crate::clock::now_unix();
        let signed = lab.open(3_600).unwrap();
        let request = signed.request().clone();
        assert_eq!(signed.requester, "olivia");
        assert_eq!(requester(&lab.vault).unwrap().name(), "olivia");
        assert_eq!(request.vault_id, lab.vault.manifest().vault_id);
        assert!(request.audit_head.seq > 0);
        // The request lives exactly as long as asked, from now.
        let created = crate::clock::parse_rfc3339(&request.created).unwrap();
        let expires = crate::clock::parse_rfc3339(&request.expires).unwrap();
        assert!(created >= before && created <= crate::clock::now_unix());
        assert_eq!(expires - created, 3_600);
        let key = lab.key_file(&request.id);
        assert!(key.exists());

        let alice = lab.contribution(&request, "alice", lab.share("alice"));
        let bob = lab.contribution(&request, "bob", lab.share("bob"));
        let gathered = gather(&lab.vault, &request.id, &[alice.clone(), bob.clone()]).unwrap();
        assert_eq!(gathered.custodians, ["alice", "bob"]);
        assert_eq!(gathered.request, request);
        let shown = format!("{gathered:?}");
        assert!(
            shown.contains(&request.id) && shown.contains("bob"),
            "{shown}"
        );
        assert!(gathered.shares.progress().complete);
        assert_eq!(
            gathered.shares.shares().map(|(p, _)| p).collect::<Vec<_>>(),
            [1, 2]
        );
        gathered
            .check_closable(&lab.vault, crate::clock::now_unix())
            .unwrap();

        close(&lab.vault, &gathered.request, gathered.custodians.clone()).unwrap();
        assert!(!key.exists(), "the transport key outlived the ceremony");
        // Nothing opens or closes it again.
        assert_eq!(
            ceremony_error(close(&lab.vault, &request, Vec::new())),
            CeremonyError::TransportKeyGone {
                id: request.id.clone()
            }
        );
        assert!(gather(&lab.vault, &request.id, &[alice]).is_err());
    }

    #[test]
    fn a_contribution_is_refused_under_another_name_twice_or_with_a_foreign_share() {
        let lab = Lab::new();
        // A share of another secret, made with the same layout.
        let params = crate::quorum::SplitParams {
            group_threshold: 1,
            groups: vec![crate::quorum::GroupSpec {
                threshold: 2,
                count: 3,
            }],
            iteration_exponent: 0,
            extendable: false,
        };
        let other = crate::quorum::split(&[0x52; 32], b"", &params).unwrap();
        let other_bob = other[0][1].to_mnemonic();
        let signed = lab.open(3_600).unwrap();
        let request = signed.request().clone();
        let alice = lab.contribution(&request, "alice", lab.share("alice"));
        let again = lab.contribution(&request, "alice", lab.share("alice"));
        let bob_as_carol = lab.contribution(&request, "carol", lab.share("bob"));
        let foreign = lab.contribution(&request, "bob", other_bob.expose_secret());
        let (gathered, rejected) = gather_each(
            &lab.vault,
            &request.id,
            &[
                alice.clone(),
                again.clone(),
                bob_as_carol.clone(),
                foreign.clone(),
            ],
        )
        .unwrap();
        assert_eq!(gathered.custodians, ["alice"]);
        let reasons: Vec<(PathBuf, CeremonyError)> = rejected
            .into_iter()
            .map(|r| (r.file, ceremony_error(Err::<(), _>(r.error))))
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert_eq!(reasons[0].0, again);
        assert!(
            matches!(&reasons[0].1, CeremonyError::ContributedTwice { custodian, .. } if custodian == "alice")
        );
        assert_eq!(reasons[1].0, bob_as_carol);
        assert!(matches!(
            &reasons[1].1,
            CeremonyError::WrongCustodian { signed, owner, .. } if signed == "carol" && owner == "bob"
        ));
        assert_eq!(reasons[2].0, foreign);
        assert!(matches!(
            &reasons[2].1,
            CeremonyError::ForeignShare { custodian, .. } if custodian == "bob"
        ));
        // gather stops at the first.
        assert!(matches!(
            ceremony_error(gather(&lab.vault, &request.id, &[alice, again])),
            CeremonyError::ContributedTwice { .. }
        ));
    }

    #[test]
    fn a_ceremony_is_refused_when_history_changed_since_it_was_opened() {
        let lab = Lab::new();
        let request = lab.open(3_600).unwrap().request().clone();
        let alice = lab.contribution(&request, "alice", lab.share("alice"));
        let mut gathered = gather(&lab.vault, &request.id, &[alice]).unwrap();
        let now = crate::clock::now_unix();
        gathered.check_closable(&lab.vault, now).unwrap();
        // The line it was opened on no longer hashes to what the request recorded.
        let seq = gathered.request.audit_head.seq;
        gathered.request.audit_head.hash = "00".repeat(32);
        assert_eq!(
            ceremony_error(gathered.check_closable(&lab.vault, now)),
            CeremonyError::HistoryChanged {
                id: request.id.clone(),
                line: seq
            }
        );
        // A request opened on an empty log has no line to check.
        gathered.request.audit_head.seq = 0;
        gathered.check_closable(&lab.vault, now).unwrap();
        // Not once it has expired.
        gathered.request = request.clone();
        let expires = crate::clock::parse_rfc3339(&request.expires).unwrap();
        assert!(matches!(
            ceremony_error(gathered.check_closable(&lab.vault, expires)),
            CeremonyError::Expired { .. }
        ));
    }

    #[test]
    fn a_ceremony_stays_open_between_one_second_and_seven_days() {
        let lab = Lab::new();
        let max = crate::trust::duration::MAX_CEREMONY_EXPIRY;
        for seconds in [0, max + 1] {
            assert_eq!(
                ceremony_error(lab.open(seconds)),
                CeremonyError::Lifetime {
                    seconds,
                    max_seconds: max
                }
            );
        }
        for seconds in [1, max] {
            let request = lab.open(seconds).unwrap().request().clone();
            let created = crate::clock::parse_rfc3339(&request.created).unwrap();
            let expires = crate::clock::parse_rfc3339(&request.expires).unwrap();
            assert_eq!(expires - created, seconds);
        }
    }

    #[test]
    fn cancelling_or_expiring_destroys_the_transport_key_once() {
        let lab = Lab::new();
        // No ceremony directory (a vault made before ceremonies): nothing to destroy, no error.
        let dir = lab.vault.store().path(CEREMONIES);
        let aside = lab.dir.path().join("ceremonies-aside");
        std::fs::rename(&dir, &aside).unwrap();
        let now = crate::clock::now_unix();
        assert_eq!(
            destroy_expired(&lab.vault, now).unwrap(),
            Vec::<String>::new()
        );
        std::fs::rename(&aside, &dir).unwrap();
        let cancelled = lab.open(3_600).unwrap().request().clone();
        let expiring = lab.open(60).unwrap().request().clone();
        let open = lab.open(3_600).unwrap().request().clone();
        let returned = cancel(&lab.vault, &cancelled.id).unwrap();
        assert_eq!(returned, cancelled);
        assert!(!lab.key_file(&cancelled.id).exists());
        assert_eq!(
            ceremony_error(cancel(&lab.vault, &cancelled.id)),
            CeremonyError::NotOpen {
                id: cancelled.id.clone()
            }
        );
        // Ids name files: anything but hex is refused before a file is touched.
        for id in ["", "../x", "0011/../22"] {
            assert_eq!(
                ceremony_error(cancel(&lab.vault, id)),
                CeremonyError::BadId { id: id.into() }
            );
        }
        // Nothing has expired yet.
        assert_eq!(
            destroy_expired(&lab.vault, now).unwrap(),
            Vec::<String>::new()
        );
        assert!(lab.key_file(&expiring.id).exists());
        // Ten minutes later the 60-second one has, and only it; its key is destroyed once.
        let later = now + 600;
        assert_eq!(
            destroy_expired(&lab.vault, later).unwrap(),
            vec![expiring.id.clone()]
        );
        assert!(!lab.key_file(&expiring.id).exists());
        assert!(lab.key_file(&open.id).exists());
        assert_eq!(
            destroy_expired(&lab.vault, later).unwrap(),
            Vec::<String>::new()
        );
        // A ceremony found expired by gather loses its key there.
        let expired_by_gather = lab.open(1).unwrap().request().clone();
        std::thread::sleep(std::time::Duration::from_millis(2_100));
        assert!(matches!(
            ceremony_error(gather(&lab.vault, &expired_by_gather.id, &[])),
            CeremonyError::Expired { .. }
        ));
        assert!(!lab.key_file(&expired_by_gather.id).exists());
    }
    #[test]
    fn a_ceremony_directory_that_cannot_be_read_is_an_error_not_an_empty_one() {
        // `ceremonies` made a file: every look inside it fails, and not with "not found".
        // A key that cannot be looked at is not a key that is gone: closing names the failure
        // instead of "the transport key is gone", and destroy_expired does not answer that
        // nothing expired.
        let lab = Lab::new();
        let request = lab.open(3_600).unwrap().request().clone();
        let dir = lab.vault.store().path(CEREMONIES);
        std::fs::rename(&dir, lab.dir.path().join("ceremonies-aside")).unwrap();
        std::fs::write(&dir, b"not a directory").unwrap();
        let unreadable = |result: Result<(), crate::Error>| match result {
            Err(crate::Error::Store(StoreError::Io { path, action, .. })) => (path, action),
            other => panic!("expected an I/O error, got {other:?}"),
        };
        let (path, action) = unreadable(destroy_expired(&lab.vault, u64::MAX / 2).map(|_| ()));
        assert_eq!((path, action), (dir.clone(), "listing"));
        let (path, action) = unreadable(close(&lab.vault, &request, Vec::new()));
        assert_eq!(
            (path, action),
            (dir.join(format!("{}.key", request.id)), "reading")
        );
    }
}
