//! End-to-end: `breakglass hsm check` against SoftHSM: every operation breakglass needs works,
//! nothing on the token changes, and a token that lacks ECDH (SoftHSM told to withhold it) is
//! reported as missing it with exit 4.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use hsm_testing::softhsm::{SO_PIN, SoftHsm, USER_PIN};

mod support;

use support::stderr;

/// Every file under `dir` with its contents; for SoftHSM's `token.object`, without its first
/// eight bytes (a generation counter SoftHSM bumps on every session), so that what is compared
/// is the token's objects and attributes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let mut bytes = std::fs::read(&path).unwrap();
                if path.file_name().unwrap() == "token.object" {
                    bytes.drain(..8.min(bytes.len()));
                }
                files.insert(path.strip_prefix(dir).unwrap().display().to_string(), bytes);
            }
        }
    }
    files
}

fn check(hsm: &SoftHsm, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .args(["hsm", "check", "--module"])
        .arg(hsm.module_path())
        .args(["--token", "probe"])
        .args(extra)
        .envs(hsm.env())
        .env("PROBE_PIN", USER_PIN)
        .env_remove("BREAKGLASS_PKCS11_MODULE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            stderr(output)
        )
    })
}

fn status_of<'a>(report: &'a serde_json::Value, name: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {report}"))["status"]
        .as_str()
        .unwrap()
}

#[test]
fn hsm_check_runs_every_operation_on_softhsm_and_leaves_the_token_as_it_was() {
    let hsm = SoftHsm::new();
    hsm.init_token("probe", SO_PIN, USER_PIN);
    let before = snapshot(hsm.dir());
    let output = check(&hsm, &["--pin-source", "env:PROBE_PIN", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = json(&output);
    for name in [
        "PIN length for a quorum-derived PIN",
        "CKM_EC_KEY_PAIR_GEN",
        "CKM_ECDH1_DERIVE",
        "CKM_ECDSA",
        "log in as user",
        "P-256 key pair (session objects)",
        "ECDH1 derive (CKD_NULL)",
        "ECDSA sign",
        "data object (session object)",
    ] {
        assert_eq!(status_of(&report, name), "ok", "{name}: {report}");
    }
    assert_eq!(report["label"], "probe");
    assert!(report["max_pin_len"].as_u64().unwrap() >= 32, "{report}");
    assert_eq!(
        snapshot(hsm.dir()),
        before,
        "the token directory is unchanged: every object made was a session object"
    );

    let text = check(&hsm, &["--pin-source", "env:PROBE_PIN"]);
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(
        out.contains("everything breakglass needs works on this token"),
        "{out}"
    );
    assert!(!out.contains(USER_PIN));
}

#[test]
fn hsm_check_without_a_pin_reads_what_needs_no_login_and_a_quorum_pin_source_is_refused() {
    let hsm = SoftHsm::new();
    hsm.init_token("probe", SO_PIN, USER_PIN);
    let output = check(&hsm, &["--no-login", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = json(&output);
    assert_eq!(status_of(&report, "CKM_ECDH1_DERIVE"), "ok");
    assert_eq!(status_of(&report, "ECDH1 derive (CKD_NULL)"), "not_run");

    let quorum = check(&hsm, &["--pin-source", "quorum"]);
    assert_eq!(quorum.status.code(), Some(2), "{}", stderr(&quorum));
    assert!(stderr(&quorum).contains("--no-login"));

    let wrong = Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .args(["hsm", "check", "--module"])
        .arg(hsm.module_path())
        .args(["--token", "probe", "--pin-source", "env:PROBE_PIN"])
        .envs(hsm.env())
        .env("PROBE_PIN", "not-the-pin-0000")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(4), "{}", stderr(&wrong));
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("MISSING  log in as user"));
}

#[test]
fn hsm_check_reports_a_token_without_ecdh_as_missing_it() {
    let hsm = SoftHsm::new();
    hsm.init_token("probe", SO_PIN, USER_PIN);
    // SoftHSM's own switch: this configuration offers only EC key generation and ECDSA, so
    // CKM_ECDH1_DERIVE is withheld from every slot (SoftHSM 2.6 honours an allow-list here).
    let conf = std::fs::read_to_string(hsm.conf()).unwrap();
    std::fs::write(
        hsm.conf(),
        format!("{conf}slots.mechanisms = CKM_EC_KEY_PAIR_GEN,CKM_ECDSA\n"),
    )
    .unwrap();
    let output = check(&hsm, &["--pin-source", "env:PROBE_PIN", "--json"]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let report = json(&output);
    assert_eq!(status_of(&report, "CKM_ECDH1_DERIVE"), "missing");
    assert_eq!(status_of(&report, "ECDH1 derive (CKD_NULL)"), "not_run");
    assert_eq!(status_of(&report, "ECDSA sign"), "ok");
    assert!(
        stderr(&output).contains("CKM_ECDH1_DERIVE"),
        "the error names what is missing: {}",
        stderr(&output)
    );
}
