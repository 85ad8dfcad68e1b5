//! End-to-end: custodians can tell who asks. A ceremony request is signed by a security
//! officer's key, kept on the officer's machine; a custodian's `ceremony contribute`, given only
//! the request and their share file, checks it offline against the vault identity their share
//! file carries, and refuses (exit 5, saying what was wrong) before it reads their share.
//!
//! The attacker here has what a copy of the vault directory gives (the certified manifest, the
//! vault id and fingerprint, the audit log), keys of their own, and in one case a vault of
//! their own; never the security officer's key. Forged requests are written as an attacker
//! would: the file's bytes made by hand, signed with whatever key they hold, following
//! docs/format.md ("Signed ceremony requests") rather than breakglass's own signing code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

use support::{Env, assert_exit, stderr};
use vault_core::ceremony::{AuditHead, Purpose, REQUEST_FORMAT, Request};
use vault_core::trust::machine::ConfigDir;
use vault_core::trust::signature::encode_signature;
use vault_core::trust::{CertifiedManifest, Operator, OperatorKey, Role};

/// The security officer `init --operator` makes on the coordinator's machine.
const OFFICER: &str = "olivia";

impl Env {
    /// A 2-of-3 vault (alice, bob, carol) whose first operator is [`OFFICER`], with a `secret`
    /// credential `db-root`.
    fn vault_with_officer() -> Env {
        Env::two_of_three_with_db_root(&["--operator", OFFICER])
    }

    /// The vault's certified manifest as its directory holds it (what any copy gives).
    fn certified(&self) -> CertifiedManifest {
        let file = self.vault().join("vault.json");
        CertifiedManifest::from_bytes(&std::fs::read(&file).unwrap(), &file).unwrap()
    }

    /// `ceremony open --purpose drill` by the officer on this machine; the request file.
    fn open_drill(&self, expires: &str) -> PathBuf {
        let request = self.path(&format!("drill-{expires}.json"));
        self.ok(&[
            "ceremony",
            "open",
            "--purpose",
            "drill",
            "--reason",
            "quarterly drill",
            "--expires",
            expires,
            "--out",
            request.to_str().unwrap(),
        ]);
        request
    }
}

impl Env {
    /// What a quorum change of the operators does: alice and bob recombine the quorum secret,
    /// and the next manifest version, with the operators as `change` leaves them, is certified
    /// and written as `vault.json`. Returns it.
    fn certify_next_with(
        &self,
        change: impl FnOnce(&mut Vec<Operator>),
    ) -> vault_core::trust::AuthenticatedManifest {
        let manifest = self.certified();
        let vault_id = manifest.manifest.vault_id.clone();
        let words: Vec<String> = ["alice", "bob"]
            .iter()
            .map(|name| {
                std::fs::read_to_string(self.path(&format!("shares/{name}.share")))
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let q = vault_core::quorum::combine_mnemonics(&words, b"").unwrap();
        let quorum_key = vault_core::trust::quorum_key::QuorumSigningKey::derive(
            secrecy::ExposeSecret::expose_secret(&q.secret),
            &vault_id,
        )
        .unwrap();
        let pin = vault_core::trust::identity::PinnedIdentity::of(
            &manifest.identity_fingerprint().unwrap(),
        );
        let current = manifest.authenticate(&pin, None).unwrap();
        let mut operators = current.operators().to_vec();
        change(&mut operators);
        let next = current
            .certify_next(current.manifest().clone(), operators, &quorum_key)
            .unwrap();
        std::fs::write(self.vault().join("vault.json"), next.document().to_bytes()).unwrap();
        next
    }
}

/// A custodian at home: their own directory holding their share file and the request they
/// were sent, their own configuration, no vault. Runs `ceremony contribute`; returns its output
/// and where the contribution would be.
fn contribute(share_file: &Path, request: &[u8]) -> (Output, PathBuf) {
    let home = tempfile::tempdir().unwrap().keep();
    std::fs::copy(share_file, home.join("my.share")).unwrap();
    std::fs::write(home.join("request.json"), request).unwrap();
    let output = support::custodian_command(
        &home,
        &[
            "ceremony",
            "contribute",
            "request.json",
            "--share-file",
            "my.share",
            "--yes",
            "--out",
            "contribution.json",
        ],
    )
    .output()
    .unwrap();
    (output, home.join("contribution.json"))
}

/// Requires `contribute` to have refused with exit 5, saying `says`, with nothing written and
/// the share words never echoed.
fn assert_refused(what: &str, (output, contribution): &(Output, PathBuf), says: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(5), "{what}: {err}");
    assert!(err.contains(says), "{what}: expected {says:?} in: {err}");
    assert!(err.contains("not contributed"), "{what}: {err}");
    assert!(
        !err.contains("Contribute your share"),
        "{what}: the custodian is asked nothing: {err}"
    );
    assert!(!contribution.exists(), "{what}: nothing is written");
}

/// A request as the attacker writes it: for `manifest`'s vault and identity, a drill whose
/// contributions are sealed to a transport key of the attacker's.
fn attacker_request(manifest: &CertifiedManifest, requester: &str) -> Request {
    let now = vault_core::clock::now_unix();
    Request {
        format: REQUEST_FORMAT.into(),
        id: "00aa11bb22cc33dd".into(),
        vault_id: manifest.manifest.vault_id.clone(),
        fingerprint: manifest.identity_fingerprint().unwrap().display(),
        purpose: Purpose::Drill,
        reason: "quarterly drill".into(),
        requester: requester.into(),
        created: vault_core::clock::rfc3339(now),
        expires: vault_core::clock::rfc3339(now + 3600),
        audit_head: AuditHead {
            seq: 1,
            hash: "00".repeat(32),
        },
        transport_public_key: "5a".repeat(32),
    }
}

/// docs/format.md: the bytes a request's signature covers,
/// `Canonical["breakglass-ceremony-request/2", vault id, SHA-256(request file bytes),
/// requester, num(manifest version), manifest digest]`, every field a `u32` big-endian length
/// then its bytes, numbers as 8 big-endian bytes.
fn signed_bytes(request: &Request, requester: &str, manifest: &CertifiedManifest) -> Vec<u8> {
    let hash = ring::digest::digest(&ring::digest::SHA256, &request.to_bytes());
    let mut out = Vec::new();
    for field in [
        b"breakglass-ceremony-request/2".as_slice(),
        request.vault_id.as_bytes(),
        hash.as_ref(),
        requester.as_bytes(),
        &manifest.version.to_be_bytes(),
        &manifest.digest().unwrap(),
    ] {
        out.extend_from_slice(&u32::try_from(field.len()).unwrap().to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// The signed request file, its signature made with `key` in the name of `requester`.
fn signed_file(
    request: &Request,
    requester: &str,
    manifest: &CertifiedManifest,
    key: &OperatorKey,
) -> Vec<u8> {
    let signature = key
        .sign(&signed_bytes(request, requester, manifest))
        .unwrap();
    let file = serde_json::json!({
        "format": "breakglass-signed-ceremony-request/1",
        "request": request,
        "requester": requester,
        "manifest": manifest,
        "signature": encode_signature(&signature),
    });
    let mut bytes = serde_json::to_vec_pretty(&file).unwrap();
    bytes.push(b'\n');
    bytes
}

/// A key of the attacker's own, as `OperatorKey` writes one (the attacker's tools are free to
/// produce the same Ed25519 keys).
fn own_key(dir: &Path, vault_id: &str) -> OperatorKey {
    OperatorKey::generate(&ConfigDir::at(dir), vault_id).unwrap()
}

/// Issue 12, attack 2: from a copy of the vault directory, with no token and no operator key,
/// a "drill" request is made for the genuine vault id and fingerprint. `ceremony open` on the
/// copy refuses on a machine without a security officer's key, naming where it looked; a
/// request written by hand, unsigned, is refused by the custodian before their share is read.
#[test]
fn a_request_forged_from_a_copy_of_the_vault_directory_gets_no_share() {
    let c = Env::vault_with_officer();
    let attacker = Env::new();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(c.vault())
        .arg(attacker.vault())
        .status()
        .unwrap();
    assert!(copied.success());
    let manifest = attacker.certified();
    let fingerprint = manifest.identity_fingerprint().unwrap().display();
    let vault_id = manifest.manifest.vault_id.clone();

    // breakglass itself, on the attacker's machine, pinned to the genuine fingerprint.
    let forged = attacker.path("forged.json");
    let output = attacker.run(&[
        "ceremony",
        "open",
        "--purpose",
        "drill",
        "--reason",
        "quarterly drill",
        "--fingerprint",
        &fingerprint,
        "--out",
        forged.to_str().unwrap(),
    ]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(5), "{err}");
    let looked = attacker
        .path("config")
        .join("breakglass/operators")
        .join(format!("{vault_id}.key"));
    assert!(
        err.contains("no operator key") && err.contains(looked.to_str().unwrap()),
        "{err}"
    );
    assert!(!forged.exists(), "no request is written");
    let ceremonies = attacker.vault().join("ceremonies");
    assert_eq!(
        std::fs::read_dir(&ceremonies).map_or(0, |d| d.count()),
        std::fs::read_dir(c.vault().join("ceremonies")).map_or(0, |d| d.count()),
        "nothing is added to the copy's ceremonies/"
    );

    // The request file written by hand: the unsigned form custodians used to accept.
    let unsigned = attacker_request(&manifest, "olivia@coordinator");
    for custodian in ["alice", "bob"] {
        let refused = contribute(
            &c.path(&format!("shares/{custodian}.share")),
            &unsigned.to_bytes(),
        );
        assert_refused("an unsigned request", &refused, "is not signed");
    }
}

/// A request signed with a key that is no operator's of the vault (the attacker's own, in the
/// officer's name or a name of their own); then a manifest edited to list that key, whose
/// quorum signature no longer holds.
#[test]
fn a_request_signed_by_a_key_outside_the_manifest_is_refused() {
    let c = Env::vault_with_officer();
    let manifest = c.certified();
    let alice = c.path("shares/alice.share");
    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger = own_key(stranger_dir.path(), &manifest.manifest.vault_id);

    let request = attacker_request(&manifest, OFFICER);
    let in_officers_name = signed_file(&request, OFFICER, &manifest, &stranger);
    assert_refused(
        "signed by a stranger in the officer's name",
        &contribute(&alice, &in_officers_name),
        &format!("is not signed by operator {OFFICER}"),
    );
    let in_own_name = signed_file(&request, "mallory", &manifest, &stranger);
    assert_refused(
        "signed by a stranger in their own name",
        &contribute(&alice, &in_own_name),
        "\"mallory\" is not an operator of vault",
    );
    let mut listed = manifest.clone();
    listed.operators.push(Operator {
        name: "mallory".into(),
        roles: vec![Role::SecurityOfficer],
        public_key: stranger.public_key().to_hex(),
    });
    let with_stranger = signed_file(&request, "mallory", &listed, &stranger);
    assert_refused(
        "signed by a stranger who listed themselves",
        &contribute(&alice, &with_stranger),
        "is not signed by its quorum",
    );
}

/// A cloud administrator the quorum added is an operator of the vault, but seals credentials
/// only: `ceremony open` on their machine refuses, and a request they sign by hand is refused
/// by the custodian.
#[test]
fn a_cloud_administrator_cannot_ask_for_shares() {
    let c = Env::vault_with_officer();
    let manifest = c.certified();
    let vault_id = manifest.manifest.vault_id.clone();
    // The quorum (alice and bob) certifies the next version with a cloud administrator, adam,
    // whose key is on his own machine.
    let admin_config = c.path("adam-config");
    let admin = own_key(&admin_config.join("breakglass"), &vault_id);
    let next = c.certify_next_with(|operators| {
        operators.push(Operator {
            name: "adam".into(),
            roles: vec![Role::CloudAdministrator],
            public_key: admin.public_key().to_hex(),
        });
    });

    // On adam's machine, pinned to the vault: breakglass refuses to open a ceremony.
    let request_file = c.path("adam-request.json");
    let output = c.run_with(
        &[
            "ceremony",
            "open",
            "--purpose",
            "drill",
            "--reason",
            "quarterly drill",
            "--fingerprint",
            &manifest.identity_fingerprint().unwrap().display(),
            "--out",
            request_file.to_str().unwrap(),
        ],
        &[("XDG_CONFIG_HOME", admin_config.to_str().unwrap())],
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(5), "{err}");
    assert!(
        err.contains("operator adam of vault") && err.contains("is not a security officer"),
        "{err}"
    );
    assert!(!request_file.exists());

    // Signed by hand with adam's key over the certified manifest that lists him.
    let request = attacker_request(next.document(), "adam");
    let by_admin = signed_file(&request, "adam", next.document(), &admin);
    assert_refused(
        "signed by a cloud administrator",
        &contribute(&c.path("shares/alice.share"), &by_admin),
        "operator adam of vault",
    );
    // The genuine officer still opens ceremonies on the vault's new version.
    let genuine = c.open_drill("1h");
    let (output, contribution) = contribute(
        &c.path("shares/bob.share"),
        &std::fs::read(&genuine).unwrap(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(contribution.exists());
}

/// A request of another vault: signed by a genuine security officer, of a vault of their own,
/// relabelled with this vault's id and fingerprint. The manifest it carries is not the identity
/// the custodian's share file names.
#[test]
fn a_request_of_another_vault_is_refused() {
    let c = Env::vault_with_officer();
    let other = Env::vault_with_officer();
    let theirs = other.certified();
    let their_key = OperatorKey::load(
        &ConfigDir::at(&other.path("config").join("breakglass")),
        &theirs.manifest.vault_id,
    )
    .unwrap()
    .unwrap();
    let mut request = attacker_request(&c.certified(), OFFICER);
    let relabelled = signed_file(&request, OFFICER, &theirs, &their_key);
    assert_refused(
        "another vault's manifest under this vault's id",
        &contribute(&c.path("shares/alice.share"), &relabelled),
        "is pinned for it",
    );
    // With their own vault id and fingerprint, but this vault's custodian: their share file
    // names this vault's identity, which is not the request's.
    request.vault_id = theirs.manifest.vault_id.clone();
    request.fingerprint = theirs.identity_fingerprint().unwrap().display();
    let theirs_throughout = signed_file(&request, OFFICER, &theirs, &their_key);
    let (output, contribution) = contribute(&c.path("shares/alice.share"), &theirs_throughout);
    assert!(!output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not contributed"),
        "{}",
        stderr(&output)
    );
    assert!(!contribution.exists());
}

/// A genuine request whose time is up, or whose text was changed after the officer signed it.
#[test]
fn an_expired_or_altered_request_is_refused() {
    let c = Env::vault_with_officer();
    let alice = c.path("shares/alice.share");
    let expired = c.open_drill("1s");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_refused(
        "an expired request",
        &contribute(&alice, &std::fs::read(&expired).unwrap()),
        "expired at 20",
    );

    let genuine = std::fs::read(c.open_drill("1h")).unwrap();
    let text = String::from_utf8(genuine.clone()).unwrap();
    let changes = [
        ("the reason", "quarterly drill", "IdP down, urgent"),
        (
            "the purpose",
            "\"purpose\": \"drill\"",
            "\"purpose\": \"drill \"",
        ),
        (
            "the requester",
            "\"requester\": \"olivia\"",
            "\"requester\": \"oliv1a\"",
        ),
    ];
    for (what, from, to) in changes {
        assert!(text.contains(from), "{what}: {text}");
        let altered = text.replacen(from, to, 1);
        let refused = contribute(&alice, altered.as_bytes());
        assert_eq!(
            refused.0.status.code(),
            Some(5),
            "{what}: {}",
            stderr(&refused.0)
        );
        assert!(stderr(&refused.0).contains("not contributed"), "{what}");
        assert!(!refused.1.exists(), "{what}");
    }
    let reason = text.replacen("quarterly drill", "IdP down, urgent", 1);
    assert_refused(
        "the reason changed after signing",
        &contribute(&alice, reason.as_bytes()),
        &format!("is not signed by operator {OFFICER}"),
    );
    // The genuine request, as signed, is contributed to.
    let (output, contribution) = contribute(&alice, &genuine);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(contribution.exists());
}

/// The custodian is shown who asks: the security officer's name from the certified manifest,
/// checked against the signature, never the requesting machine's `$USER`.
#[test]
fn the_custodian_sees_the_officer_who_signed_not_the_login_name() {
    let c = Env::vault_with_officer();
    let request = c.path("request.json");
    let output = c.run_with(
        &[
            "ceremony",
            "open",
            "--purpose",
            "unseal",
            "--credential",
            "db-root",
            "--reason",
            "INC-7",
            "--out",
            request.to_str().unwrap(),
        ],
        &[("USER", "mallory"), ("LOGNAME", "mallory")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let signed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&request).unwrap()).unwrap();
    assert_eq!(signed["format"], "breakglass-signed-ceremony-request/1");
    assert_eq!(signed["requester"], OFFICER);
    assert_eq!(signed["request"]["requester"], OFFICER);
    let (output, _) = contribute(
        &c.path("shares/carol.share"),
        &std::fs::read(&request).unwrap(),
    );
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "security officer {OFFICER} asks to unseal db-root"
        )),
        "{err}"
    );
    assert!(err.contains("signed by"), "{err}");
    assert!(!err.contains("mallory"), "{err}");
}

/// The coordinator's side reads the vault's copy of the request as a custodian would: a
/// request planted in `ceremonies/` (with a transport key of the planter's) is not carried out,
/// nor is one whose signer is no longer a security officer when the ceremony closes.
#[test]
fn the_coordinator_carries_out_only_a_request_a_current_security_officer_signed() {
    let c = Env::vault_with_officer();
    let request = c.open_drill("1h");
    let id = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&request).unwrap())
        .unwrap()["request"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut close = vec!["ceremony".to_owned(), "close".into(), id.clone()];
    for custodian in ["alice", "bob"] {
        let (output, contribution) = contribute(
            &c.path(&format!("shares/{custodian}.share")),
            &std::fs::read(&request).unwrap(),
        );
        assert!(output.status.success(), "{}", stderr(&output));
        let kept = c.path(&format!("{custodian}.contribution"));
        std::fs::copy(&contribution, &kept).unwrap();
        close.push("--contribution".into());
        close.push(kept.display().to_string());
    }

    // Planted: an unsigned request and its transport key, written into ceremonies/.
    let planted = attacker_request(&c.certified(), OFFICER);
    let ceremonies = c.vault().join("ceremonies");
    std::fs::write(
        ceremonies.join(format!("{}.request.json", planted.id)),
        planted.to_bytes(),
    )
    .unwrap();
    std::fs::write(
        ceremonies.join(format!("{}.key", planted.id)),
        "11".repeat(32),
    )
    .unwrap();
    for command in ["status", "close"] {
        let output = c.run(&[
            "ceremony",
            command,
            &planted.id,
            "--contribution",
            &close[4],
        ]);
        assert_exit(&output, 5, &["is not signed"], command);
    }

    // The quorum makes adam the security officer and olivia a cloud administrator only: her
    // open ceremony is no longer carried out.
    let adam_dir = tempfile::tempdir().unwrap();
    let adam = own_key(adam_dir.path(), &c.certified().manifest.vault_id);
    c.certify_next_with(|operators| {
        for operator in operators.iter_mut() {
            operator.roles = vec![Role::CloudAdministrator];
        }
        operators.push(Operator {
            name: "adam".into(),
            roles: vec![Role::SecurityOfficer],
            public_key: adam.public_key().to_hex(),
        });
    });
    let output = c.run(&close.iter().map(String::as_str).collect::<Vec<_>>());
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(5), "{err}");
    assert!(
        err.contains(&format!("operator {OFFICER} of vault"))
            && err.contains("is not a security officer"),
        "{err}"
    );
    assert!(
        c.vault()
            .join("ceremonies")
            .join(format!("{id}.key"))
            .exists(),
        "nothing was carried out: the transport key is still there"
    );
}
