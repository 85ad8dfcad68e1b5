//! Other machines after `breakglass upgrade`: a machine that pinned the format-1 fingerprint
//! (from the previous release, or from the old share cards) moves to the upgraded vault's
//! identity through the statement the upgrade leaves (`upgrade.json`), signed by the format-1
//! vault's audit key, which that fingerprint covers; a statement it cannot verify, or none,
//! is refused with exit 5. Against the built binary and the format-1 fixture.

mod support;

use std::process::{Command, Output};

use support::{Env, as_strs, assert_exit, stderr};
use vault_core::trust::quorum_key::QuorumSigningKey;
use vault_core::trust::{CertifiedManifest, Operator, Role};

/// The format-1 fingerprint of `tests/data/format-1-vault`.
const OLD_FINGERPRINT: &str = "INV4-EJCA-FMXN-MG6M-BIYP-J2MF-DZEQ-QH63";

/// The format-1 fixture upgraded by olivia on the machine that made it; `machine-b` pinned
/// the format-1 fingerprint before (a copy of that machine's `known_vaults.json`).
fn upgraded_with_a_second_machine() -> Env {
    let env = Env::from_fixture("format-1-vault");
    std::fs::create_dir_all(env.path("machine-b/breakglass")).unwrap();
    std::fs::copy(
        env.path("config/breakglass/known_vaults.json"),
        env.path("machine-b/breakglass/known_vaults.json"),
    )
    .unwrap();
    let mut upgrade: Vec<String> = ["upgrade", "--operator", "olivia"]
        .map(String::from)
        .to_vec();
    upgrade.extend(env.share_files(&["alice", "bob"]));
    let printed = env.ok(&as_strs(&upgrade));
    assert!(
        printed.contains("move to the new fingerprint by themselves"),
        "{printed}"
    );
    env
}

/// The independent reader (`interop/python/breakglass_format.py manifest`) on the vault,
/// pinned to `pin`.
fn python_manifest(env: &Env, pin: &str) -> Output {
    Command::new(hsm_testing::tools::venv_program("python"))
        .arg(hsm_testing::tools::repo_root().join("interop/python/breakglass_format.py"))
        .args(["manifest", env.vault().to_str().unwrap(), "--pin", pin])
        .env_remove("SOFTHSM2_CONF")
        .output()
        .unwrap()
}

fn pinned_on_b(env: &Env) -> String {
    std::fs::read_to_string(env.path("machine-b/breakglass/known_vaults.json")).unwrap()
}

/// Machine B, pinned to the format-1 fingerprint, opens the upgraded vault with no
/// `--fingerprint`: it verifies the statement against its pin and moves its pin to the new
/// identity, then opens the credential the previous release sealed.
#[test]
fn a_machine_that_pinned_the_format_1_fingerprint_follows_the_upgrade() {
    let env = upgraded_with_a_second_machine();
    let identity = env.status()["fingerprint"].as_str().unwrap().to_owned();
    assert_ne!(identity, OLD_FINGERPRINT);
    assert!(pinned_on_b(&env).contains(OLD_FINGERPRINT));

    let out = env.run_on("machine-b", &["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["fingerprint"], identity.as_str());
    let pinned = pinned_on_b(&env);
    assert!(
        pinned.contains(&identity) && !pinned.contains(OLD_FINGERPRINT),
        "{pinned}"
    );
    let file = env.path("b-opened");
    let mut unseal: Vec<String> = [
        "unseal",
        "db-root",
        "--output",
        &format!("file:{}", file.display()),
    ]
    .map(String::from)
    .to_vec();
    unseal.extend(env.share_files(&["alice", "bob"]));
    let out = env.run_on("machine-b", &as_strs(&unseal));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), b"the database root password");

    // The independent reader follows the statement from the format-1 pin too.
    let out = python_manifest(&env, OLD_FINGERPRINT);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pin"], "upgrade", "{report}");
    assert_eq!(report["fingerprint"], identity.as_str(), "{report}");
}

/// What someone who can write to the vault directory tries on machine B, which pinned the
/// format-1 fingerprint: each is refused with exit 5 and B's pin stays where it was. The
/// genuine statement with its signature altered; a vault.json certified by a quorum key of the
/// attacker's (another identity) beside the genuine statement; a statement whose format-1
/// manifest carries the attacker's audit key (so it no longer has the pinned fingerprint);
/// and no statement at all.
#[test]
fn a_forged_or_missing_upgrade_statement_is_refused() {
    let env = upgraded_with_a_second_machine();
    let statement_file = env.vault().join("upgrade.json");
    let manifest_file = env.vault().join("vault.json");
    let genuine_statement = std::fs::read(&statement_file).unwrap();
    let genuine_manifest = std::fs::read(&manifest_file).unwrap();
    let statement: serde_json::Value = serde_json::from_slice(&genuine_statement).unwrap();

    // 1. The signature altered (its first character changed: r is another number).
    let mut altered = statement.clone();
    let signature = altered["signature"].as_str().unwrap().to_owned();
    let first = if signature.starts_with('A') { "B" } else { "A" };
    altered["signature"] = format!("{first}{}", &signature[1..]).into();
    std::fs::write(&statement_file, serde_json::to_vec(&altered).unwrap()).unwrap();
    let out = env.run_on("machine-b", &["status", "--json"]);
    assert_exit(
        &out,
        5,
        &["is not signed by the format-1 vault's audit key"],
        "signature altered",
    );
    let out = python_manifest(&env, OLD_FINGERPRINT);
    assert!(
        !out.status.success() && stderr(&out).contains("not signed by the format-1 audit key"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&statement_file, &genuine_statement).unwrap();

    // 2. The attacker certifies the manifest with a quorum key of their own, listing
    // themselves as the security officer: another identity, which the genuine statement does
    // not name.
    let document = CertifiedManifest::from_bytes(&genuine_manifest, &manifest_file).unwrap();
    let vault_id = document.manifest.vault_id.clone();
    let attacker = QuorumSigningKey::derive(&[7u8; 32], &vault_id).unwrap();
    let forged = CertifiedManifest::certify(
        document.manifest.clone(),
        1,
        vec![Operator {
            name: "mallory".into(),
            roles: vec![Role::SecurityOfficer, Role::CloudAdministrator],
            public_key: "ab".repeat(32),
        }],
        &attacker,
    )
    .unwrap();
    std::fs::write(&manifest_file, forged.document().to_bytes()).unwrap();
    let out = env.run_on("machine-b", &["status", "--json"]);
    assert_exit(
        &out,
        5,
        &["is not signed by the format-1 vault's audit key"],
        "attacker's identity",
    );
    std::fs::write(&manifest_file, &genuine_manifest).unwrap();

    // 3. The statement's format-1 manifest with another audit key (the attacker would sign
    // with theirs): it is no longer the manifest whose fingerprint B pinned.
    let mut other_key = statement.clone();
    let key = other_key["previous"]["audit"]["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let last = if key.ends_with('0') { "1" } else { "0" };
    other_key["previous"]["audit"]["public_key"] =
        format!("{}{last}", &key[..key.len() - 1]).into();
    std::fs::write(&statement_file, serde_json::to_vec(&other_key).unwrap()).unwrap();
    let out = env.run_on("machine-b", &["status", "--json"]);
    assert_exit(&out, 5, &[OLD_FINGERPRINT], "another audit key");

    // 4. No statement: the new identity is not the one pinned.
    std::fs::remove_file(&statement_file).unwrap();
    let out = env.run_on("machine-b", &["status", "--json"]);
    assert_exit(&out, 5, &["is pinned for it"], "no statement");
    assert!(pinned_on_b(&env).contains(OLD_FINGERPRINT));
    assert!(!env.path("machine-b/breakglass/anchors").exists());

    // The genuine statement back: B follows.
    std::fs::write(&statement_file, &genuine_statement).unwrap();
    let out = env.run_on("machine-b", &["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!pinned_on_b(&env).contains(OLD_FINGERPRINT));
}
