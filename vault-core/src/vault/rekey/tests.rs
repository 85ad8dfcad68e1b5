//! Rekey plan, apply and resume through the library alone, against a real token: a throw-away
//! SoftHSM token per test (each test is its own process under nextest, as a PKCS#11 module is
//! initialised once per process). A rekey applied whole; one stopped at each step its journal
//! records (the fault points, armed on the test's thread) and resumed to the same end; journals
//! edited, stripped of their tag or truncated, refused with nothing done; resumes with the wrong
//! quorum, refused with nothing done. The end-to-end suites (`tests/rekey_recovery.rs`,
//! `tests/crash_sweep.rs`) run the same paths through the binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hsm_testing::softhsm::SoftHsm;
use secrecy::{ExposeSecret, SecretString};

use crate::Error;
use crate::fault;
use crate::hpke::{DhOracle, X25519SecretKey};
use crate::hsm::{HsmError, Module, PinRole, TokenSelector};
use crate::manifest::ManifestError;
use crate::quorum::{Collector, QuorumError, Share};
use crate::secret::SecretBytes;
use crate::trust::machine::ConfigDir;

use super::super::rewrap::Scope;
use super::super::test_vault::{QuorumPinsOnly, init_vault, seal_secret};
use super::super::tokens::derived_pin;
use super::super::{TokenChoice, Vault, VaultError};
use super::RekeyOptions;
use super::journal::{REKEY_JOURNAL, RekeyJournal};

/// The credentials sealed before the rekey, current versions: name and payload.
const SEALED: [(&str, &[u8]); 2] = [("db-root", b"root password, second"), ("api-key", b"key")];
/// The version of `db-root` that the second seal replaced (kept in its history).
const REPLACED: &[u8] = b"root password, first";

/// A 2-of-3 vault (alice, bob, carol) on its own SoftHSM token, both token PINs derived from
/// the quorum, with two credentials sealed and one of them replaced (three envelopes in all).
struct Lab {
    _softhsm: SoftHsm,
    dir: tempfile::TempDir,
    config: ConfigDir,
    /// The custodians' shares (mnemonics) as init handed them out.
    shares: Vec<SecretString>,
}

impl Lab {
    fn new() -> Lab {
        let softhsm = SoftHsm::new();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = ConfigDir::at(&dir.path().join("config"));
        let (vault, issued) = init_vault(&softhsm, &dir.path().join("vault"), "vault-a", &config);
        seal_secret(&vault, "db-root", REPLACED, false);
        seal_secret(&vault, "db-root", SEALED[0].1, true);
        seal_secret(&vault, "api-key", SEALED[1].1, false);
        Lab {
            _softhsm: softhsm,
            dir,
            config,
            shares: issued.into_iter().map(|(_, share)| share).collect(),
        }
    }

    fn vault_dir(&self) -> PathBuf {
        self.dir.path().join("vault")
    }

    fn journal(&self) -> PathBuf {
        self.vault_dir().join(REKEY_JOURNAL)
    }

    fn open(&self) -> Result<Vault, Error> {
        Vault::open(&self.vault_dir(), &self.config)
    }

    fn open_resuming(&self) -> Vault {
        Vault::open_resuming(&self.vault_dir(), &self.config).expect("opened to resume")
    }

    /// alice's and bob's shares before the rekey.
    fn old_quorum(&self) -> Collector {
        quorum(&self.shares[..2])
    }

    /// Prepares a rekey (same custodians) with alice and bob and starts it with `fault` armed:
    /// it must stop there. Returns the new shares.
    fn stopped_at(&self, fault: &str) -> Vec<SecretString> {
        let mut vault = self.open().expect("open");
        let plan = vault
            .rekey_prepare(
                &self.old_quorum(),
                RekeyOptions::default(),
                &vault.identity(),
            )
            .expect("rekey prepared");
        let new = new_shares(&plan);
        fault::arm(Some(fault));
        let stopped = vault.rekey_commit(plan, &QuorumPinsOnly);
        fault::arm(None);
        match stopped {
            Err(Error::Vault(VaultError::FaultPoint(at))) if at == fault => new,
            other => panic!("the rekey did not stop at {fault}: {other:?}"),
        }
    }

    fn read_journal(&self) -> RekeyJournal {
        let path = self.journal();
        RekeyJournal::from_bytes(&std::fs::read(&path).expect("the journal"), &path)
            .expect("the journal parses")
    }

    /// Every file under the vault and configuration directories, with its bytes.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut pending = vec![self.dir.path().to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    files.insert(path.clone(), std::fs::read(&path).expect("read"));
                }
            }
        }
        files
    }

    /// The rekey is finished, whichever way it got there: no journal, the vault opens as
    /// usual with the new identity, every envelope (history too) is sealed to the new quorum
    /// key and opens with the new quorum and the token, the old shares open nothing, the token
    /// takes only the new quorum's PINs, and the audit log records the rekey once, signed.
    fn assert_rekeyed(&self, fingerprint: &str, before: &str, new: &[SecretString]) {
        assert!(!self.journal().exists(), "the journal is removed");
        let vault = self.open().expect("the vault opens with no rekey pending");
        assert_eq!(vault.identity(), fingerprint);
        assert_ne!(fingerprint, before);
        assert!(vault.check_identity(before).is_err());

        let log = vault.audit();
        let report = vault.keys().verify_audit(&log).expect("the log verifies");
        // Signed: the rekey's checkpoint is the last line (before the openings below).
        assert!(
            report.is_intact() && report.unsigned_tail == 0,
            "{report:?}"
        );
        let rekeys: Vec<_> = log
            .entries()
            .expect("entries")
            .into_iter()
            .filter(|e| e.event == "rekey")
            .collect();
        assert_eq!(rekeys.len(), 1, "one rekey recorded");
        assert_eq!(rekeys[0].custodians, ["alice", "bob"]);

        let new_q = quorum(new)
            .combine(b"")
            .expect("the new shares recombine")
            .secret;
        let mut opened: Vec<Vec<u8>> = envelopes_opened(&vault, &new_q)
            .into_values()
            .map(|p| p.expose_secret().to_vec())
            .collect();
        opened.sort();
        let mut expected: Vec<Vec<u8>> = SEALED
            .iter()
            .map(|(_, p)| p.to_vec())
            .chain([REPLACED.to_vec()])
            .collect();
        expected.sort();
        assert_eq!(opened, expected, "every envelope and history copy opens");

        let token = TokenChoice {
            pins: &QuorumPinsOnly,
            only: None,
            force_pin: false,
        };
        for (name, payload) in SEALED {
            let unsealed = vault
                .unseal(name, &quorum(&new[1..]), token, "unseal")
                .expect("the new shares unseal");
            assert_eq!(unsealed.payload.expose_secret(), payload);
        }
        for old in [&self.shares[..2], &self.shares[1..]] {
            let refused = vault.unseal("db-root", &quorum(old), token, "unseal");
            assert!(
                matches!(refused, Err(Error::Vault(VaultError::WrongQuorum))),
                "old shares: {refused:?}"
            );
        }

        let old_q = self.old_quorum().combine(b"").expect("old").secret;
        for role in [PinRole::User, PinRole::SecurityOfficer] {
            assert_eq!(token_takes(&vault, &old_q, role), Some(false), "{role:?}");
            assert_eq!(token_takes(&vault, &new_q, role), Some(true), "{role:?}");
        }
    }
}

/// The shares `mnemonics`, collected at positions 1, 2, ...
fn quorum(mnemonics: &[SecretString]) -> Collector {
    let mut collector = Collector::new();
    for (i, words) in mnemonics.iter().enumerate() {
        let share = Share::parse(words.expose_secret(), i + 1).expect("a share");
        collector.add(i + 1, share).expect("accepted");
    }
    collector
}

/// The new custodians' shares of a plan.
fn new_shares(plan: &super::RekeyPlan) -> Vec<SecretString> {
    plan.shares()
        .iter()
        .filter(|s| !s.recovery)
        .map(|s| s.share.to_mnemonic())
        .collect()
}

/// Every envelope and kept previous version, opened with the token and the quorum secret `q`
/// (the token logged into with the PIN `q` derives).
fn envelopes_opened(vault: &Vault, q: &SecretBytes) -> BTreeMap<PathBuf, SecretBytes> {
    let modules = vault.open_modules(None).expect("modules");
    let present = vault.first_present(&modules).expect("the token");
    let (session, _) = present
        .login(&vault.pins(Some(q.expose_secret()), &QuorumPinsOnly), false)
        .expect("the token takes the quorum's PIN");
    let key = vault.seal_key_of(&present.enrollment).expect("seal key");
    let hsm = session.dh_oracle(&key);
    let quorum = X25519SecretKey::derive_key_pair(q.expose_secret());
    let files = vault.envelope_files(Scope::WithHistory).expect("envelopes");
    assert_eq!(
        files.len(),
        SEALED.len() + 1,
        "two credentials, one replaced"
    );
    files
        .into_iter()
        .map(|f| {
            let payload = f.envelope.open(&hsm, &quorum, &f.path).expect("opens");
            (f.path, payload)
        })
        .collect()
}

/// How many envelopes (history too) are sealed to the quorum key of `q`.
fn sealed_to(vault: &Vault, q: &SecretBytes) -> usize {
    let public = hex::encode(X25519SecretKey::derive_key_pair(q.expose_secret()).public_key());
    vault
        .envelope_files(Scope::WithHistory)
        .expect("envelopes")
        .iter()
        .filter(|f| f.envelope.quorum_stanza.recipient == public)
        .count()
}

/// Whether the vault's token takes the `role` PIN that the quorum secret `q` derives
/// (`None`: it failed otherwise than on the PIN).
fn token_takes(vault: &Vault, q: &SecretBytes, role: PinRole) -> Option<bool> {
    let enrollment = &vault.manifest().hsms[0];
    let module = Module::open(Path::new(&enrollment.module)).expect("module");
    let token = module
        .find_token(&TokenSelector::Serial(enrollment.serial.clone()))
        .expect("token");
    let pin = derived_pin(
        q.expose_secret(),
        &vault.manifest().vault_id,
        enrollment.pin_derivation,
        token.description(),
        role,
    )
    .expect("derived PIN");
    let session = module.open_session(&token).expect("session");
    match session.login(role, &pin, false) {
        Ok(_) => Some(true),
        Err(HsmError::PinIncorrect { .. }) => Some(false),
        Err(_) => None,
    }
}

#[test]
fn a_rekey_applied_whole_moves_every_envelope_token_pin_and_the_identity_to_the_new_quorum() {
    let lab = Lab::new();
    let mut vault = lab.open().expect("open");
    let before = vault.identity();
    let plan = vault
        .rekey_prepare(&lab.old_quorum(), RekeyOptions::default(), &before)
        .expect("prepared");
    // Preparing changes nothing.
    let untouched = lab.snapshot();
    let new = new_shares(&plan);
    assert_eq!(new.len(), 3);
    assert_eq!(lab.snapshot(), untouched);
    let announced = plan.identity();
    let fingerprint = vault.rekey_commit(plan, &QuorumPinsOnly).expect("rekey");
    assert_eq!(fingerprint, announced, "the identity the new cards carry");
    assert_eq!(vault.identity(), fingerprint);
    assert!(matches!(
        vault.rekey_resume(&lab.old_quorum(), &quorum(&new), &QuorumPinsOnly),
        Err(Error::Vault(VaultError::NoRekeyPending))
    ));
    lab.assert_rekeyed(&fingerprint, &before, &new);
}

/// What a rekey stopped at a fault point has done, as the journal and the token show it.
struct Stopped {
    /// Envelopes (of three) already sealed to the new quorum key.
    envelopes_resealed: usize,
    /// The PIN changes the journal records (`user`, `so`).
    pins_journalled: &'static [&'static str],
    /// Which token PINs are already the new quorum's: user, SO.
    pins_changed: (bool, bool),
    /// Whether `vault.json` already holds the new manifest.
    manifest_written: bool,
}

/// A rekey stopped at `fault` has done what `expected` says, refuses every other operation,
/// and the old and new shares resume it to the same end as a rekey applied whole.
fn stopped_and_resumed(fault: &str, expected: Stopped) {
    let lab = Lab::new();
    let before = lab.open().expect("open").identity();
    let old_manifest = std::fs::read(lab.vault_dir().join("vault.json")).expect("manifest");
    let new = lab.stopped_at(fault);

    assert!(
        matches!(lab.open(), Err(Error::Vault(VaultError::RekeyPending { journal })) if journal == lab.journal()),
        "every other operation waits for the rekey"
    );
    let mut vault = lab.open_resuming();
    assert_eq!(
        vault.identity(),
        before,
        "opened as it was before the rekey"
    );
    let old_q = lab.old_quorum().combine(b"").expect("old").secret;
    let new_q = quorum(&new).combine(b"").expect("new").secret;
    let (previous, target) = vault.pending_rekey().expect("journal").expect("pending");
    assert_eq!(&previous, vault.manifest());
    assert_eq!(
        target.quorum.public_key,
        hex::encode(X25519SecretKey::derive_key_pair(new_q.expose_secret()).public_key())
    );

    let journal = lab.read_journal();
    assert_eq!(journal.custodians, ["alice", "bob"]);
    let serial = &vault.manifest().hsms[0].serial;
    let journalled: Vec<String> = expected
        .pins_journalled
        .iter()
        .map(|role| format!("{serial}:{role}"))
        .collect();
    assert_eq!(journal.pins_changed, journalled);
    assert_eq!(
        journal.verify(old_q.expose_secret(), &vault.manifest().vault_id),
        Ok(())
    );
    assert_eq!(sealed_to(&vault, &new_q), expected.envelopes_resealed);
    assert_eq!(sealed_to(&vault, &old_q), 3 - expected.envelopes_resealed);
    let (user, so) = expected.pins_changed;
    assert_eq!(token_takes(&vault, &new_q, PinRole::User), Some(user));
    assert_eq!(
        token_takes(&vault, &new_q, PinRole::SecurityOfficer),
        Some(so)
    );
    let manifest_now = std::fs::read(lab.vault_dir().join("vault.json")).expect("manifest");
    assert_eq!(manifest_now != old_manifest, expected.manifest_written);

    // Other old custodians than those who started it (bob and carol), and two new shares.
    let fingerprint = vault
        .rekey_resume(
            &quorum(&lab.shares[1..]),
            &quorum(&new[..2]),
            &QuorumPinsOnly,
        )
        .expect("resumed");
    lab.assert_rekeyed(&fingerprint, &before, &new);
}

#[test]
fn a_rekey_stopped_after_its_first_envelope_resumes_to_the_same_end() {
    stopped_and_resumed(
        "rekey-after-first-envelope",
        Stopped {
            envelopes_resealed: 1,
            pins_journalled: &[],
            pins_changed: (false, false),
            manifest_written: false,
        },
    );
}

#[test]
fn a_rekey_stopped_after_every_envelope_resumes_to_the_same_end() {
    stopped_and_resumed(
        "rekey-after-envelopes",
        Stopped {
            envelopes_resealed: 3,
            pins_journalled: &[],
            pins_changed: (false, false),
            manifest_written: false,
        },
    );
}

#[test]
fn a_rekey_stopped_between_a_pin_change_and_its_journal_entry_resumes_to_the_same_end() {
    stopped_and_resumed(
        "rekey-before-pin-journal",
        Stopped {
            envelopes_resealed: 3,
            pins_journalled: &[],
            pins_changed: (true, false),
            manifest_written: false,
        },
    );
}

#[test]
fn a_rekey_stopped_after_the_user_pin_resumes_to_the_same_end() {
    stopped_and_resumed(
        "rekey-after-pin",
        Stopped {
            envelopes_resealed: 3,
            pins_journalled: &["user"],
            pins_changed: (true, false),
            manifest_written: false,
        },
    );
}

#[test]
fn a_rekey_stopped_after_the_new_manifest_resumes_to_the_same_end() {
    stopped_and_resumed(
        "rekey-after-manifest",
        Stopped {
            envelopes_resealed: 3,
            pins_journalled: &["user", "so"],
            pins_changed: (true, true),
            manifest_written: true,
        },
    );
}

/// A change made to the journal's JSON.
type JournalEdit = fn(&mut serde_json::Value);

/// The journal as JSON, edited by `edit`, written back.
fn edit_journal(lab: &Lab, genuine: &[u8], edit: impl FnOnce(&mut serde_json::Value)) {
    let mut value: serde_json::Value = serde_json::from_slice(genuine).expect("json");
    edit(&mut value);
    std::fs::write(
        lab.journal(),
        serde_json::to_vec_pretty(&value).expect("json"),
    )
    .expect("written");
}

#[test]
fn an_edited_or_truncated_journal_is_refused_and_nothing_is_done() {
    let lab = Lab::new();
    let before = lab.open().expect("open").identity();
    let new = lab.stopped_at("rekey-after-pin");
    let genuine = std::fs::read(lab.journal()).expect("journal");
    let untouched = lab.snapshot();

    let edits: [(&str, JournalEdit); 7] = [
        (
            "its authentication tag does not verify with the old quorum secret",
            |j| j["tag"] = "00".repeat(32).into(),
        ),
        ("it carries no authentication tag", |j| {
            j.as_object_mut().expect("object").remove("tag");
        }),
        ("its authentication tag is not hex", |j| {
            j["tag"] = "not hex".into()
        }),
        // The SO PIN claimed changed: the resume would skip it.
        (
            "its authentication tag does not verify with the old quorum secret",
            |j| {
                let user = j["pins_changed"][0].as_str().expect("user step").to_owned();
                j["pins_changed"] = serde_json::json!([user, user.replace(":user", ":so")]);
            },
        ),
        (
            "its authentication tag does not verify with the old quorum secret",
            |j| j["custodians"][1] = "mallory".into(),
        ),
        // The manifest before, as the same document in other bytes (it still authenticates).
        (
            "its authentication tag does not verify with the old quorum secret",
            |j| {
                let previous = j["previous"].as_str().expect("previous").to_owned();
                j["previous"] = format!("{}\n", previous.trim_end())
                    .replace("\n", "\n ")
                    .into();
            },
        ),
        // The manifest it installs, with the token's module someone else's (the new quorum key
        // kept, so the new shares still fit it).
        (
            "its authentication tag does not verify with the old quorum secret",
            |j| {
                let mut target: serde_json::Value =
                    serde_json::from_str(j["manifest"].as_str().expect("manifest")).expect("json");
                target["hsms"][0]["module"] = "/tmp/attacker/libpkcs11.so".into();
                j["manifest"] =
                    format!("{}\n", serde_json::to_string_pretty(&target).expect("json")).into();
            },
        ),
    ];
    for (says, edit) in edits {
        edit_journal(&lab, &genuine, edit);
        let edited = std::fs::read(lab.journal()).expect("journal");
        let mut vault = lab.open_resuming();
        let refused = vault.rekey_resume(&lab.old_quorum(), &quorum(&new), &QuorumPinsOnly);
        match refused {
            Err(Error::Vault(VaultError::JournalNotAuthentic { journal, reason })) => {
                assert_eq!(journal, lab.journal());
                assert_eq!(reason, says);
            }
            other => panic!("{says}: {other:?}"),
        }
        // Nothing done: every file as it was, but the journal as edited.
        let mut now = lab.snapshot();
        assert_eq!(now.insert(lab.journal(), genuine.clone()), Some(edited));
        assert!(now == untouched, "{says}: a file changed");
    }

    // Truncated (a torn copy): refused when the vault is opened, the journal named.
    std::fs::write(lab.journal(), &genuine[..genuine.len() / 2]).expect("written");
    match Vault::open_resuming(&lab.vault_dir(), &lab.config) {
        Err(Error::Manifest(ManifestError::Invalid { file, .. })) => {
            assert_eq!(file, lab.journal());
        }
        other => panic!("truncated journal: {other:?}"),
    }
    let mut now = lab.snapshot();
    now.insert(lab.journal(), genuine.clone());
    assert!(now == untouched, "truncated: a file changed");

    // The journal as the rekey wrote it resumes.
    std::fs::write(lab.journal(), &genuine).expect("written");
    let fingerprint = lab
        .open_resuming()
        .rekey_resume(&lab.old_quorum(), &quorum(&new), &QuorumPinsOnly)
        .expect("resumed");
    lab.assert_rekeyed(&fingerprint, &before, &new);
}

#[test]
fn a_resume_without_both_quorums_is_refused_and_nothing_is_done() {
    let lab = Lab::new();
    let before = lab.open().expect("open").identity();
    let new = lab.stopped_at("rekey-after-first-envelope");
    let untouched = lab.snapshot();
    let mut vault = lab.open_resuming();
    let attempts: [(&str, Collector, Collector); 5] = [
        // The new shares alone: the old quorum must agree too.
        ("new for old", quorum(&new[..2]), quorum(&new[1..])),
        // The old shares alone: they do not open the new quorum key.
        ("old for new", lab.old_quorum(), quorum(&lab.shares[1..])),
        ("old and new swapped", quorum(&new[..2]), lab.old_quorum()),
        ("one old share", quorum(&lab.shares[..1]), quorum(&new[..2])),
        ("one new share", lab.old_quorum(), quorum(&new[..1])),
    ];
    for (what, old, new) in attempts {
        let refused = vault.rekey_resume(&old, &new, &QuorumPinsOnly);
        let expected = match what {
            // Named by group and custodian against the manifest before the rekey.
            "one old share" => matches!(
                refused,
                Err(Error::Vault(VaultError::NotEnoughShares { .. }))
            ),
            "one new share" => matches!(
                refused,
                Err(Error::Quorum(QuorumError::NotEnoughShares { .. }))
            ),
            _ => matches!(refused, Err(Error::Vault(VaultError::WrongQuorum))),
        };
        assert!(expected, "{what}: {refused:?}");
        assert!(lab.snapshot() == untouched, "{what}: a file changed");
    }
    let fingerprint = vault
        .rekey_resume(&lab.old_quorum(), &quorum(&new), &QuorumPinsOnly)
        .expect("resumed");
    lab.assert_rekeyed(&fingerprint, &before, &new);
}
