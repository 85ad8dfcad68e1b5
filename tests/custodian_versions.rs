//! A custodian's `ceremony contribute` and the versions of the vault's certified manifest:
//! any authenticated version of the identity their share names is accepted (enrolling a token
//! or adding an operator changes neither the identity nor the share card), and a machine
//! remembers the highest version it has authenticated, so that a request over an older one
//! (which may still list an operator the quorum has removed) is refused there. Against the
//! built binary; each custodian at home with their own configuration and no vault.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::{Env, as_strs, stderr};

/// A custodian's home: their share file (copied from the vault's `shares/`) and their own
/// configuration directory, kept across contributions.
struct Home {
    dir: PathBuf,
}

impl Home {
    fn of(env: &Env, custodian: &str) -> Home {
        let dir = env.path(&format!("{custodian}-home"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(
            env.path(&format!("shares/{custodian}.share")),
            dir.join("my.share"),
        )
        .unwrap();
        Home { dir }
    }

    /// `ceremony contribute` on `request`; the output and the contribution's path.
    fn contribute(&self, request: &Path) -> (Output, PathBuf) {
        let out = self.dir.join(format!(
            "{}.contribution",
            request.file_stem().unwrap().to_str().unwrap()
        ));
        let output = support::custodian_command(
            &self.dir,
            &[
                "ceremony",
                "contribute",
                request.to_str().unwrap(),
                "--share-file",
                "my.share",
                "--yes",
                "--out",
                out.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
        (output, out)
    }

    fn contributes(&self, request: &Path) {
        let (output, out) = self.contribute(request);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(out.exists());
    }
}

/// `ceremony open --purpose drill` on `machine`, given the vault's fingerprint (the init
/// machine for `None`); the request.
fn open_drill(env: &Env, machine: Option<(&str, &str)>, name: &str) -> PathBuf {
    let request = env.path(&format!("{name}.json"));
    let args = [
        "ceremony",
        "open",
        "--purpose",
        "drill",
        "--reason",
        "quarterly drill",
        "--out",
        request.to_str().unwrap(),
    ];
    let output = match machine {
        None => env.run(&args),
        Some((machine, fingerprint)) => env
            .command_on(machine, &args)
            .env("BREAKGLASS_FINGERPRINT", fingerprint)
            .output()
            .unwrap(),
    };
    assert!(output.status.success(), "{}", stderr(&output));
    request
}

fn version_of(request: &Path) -> u64 {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(request).unwrap()).unwrap();
    json["manifest"]["version"].as_u64().unwrap()
}

fn with_quorum(env: &Env, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    all.extend(env.share_files(&["alice", "bob"]));
    all
}

/// A token enrolled and an operator added after the custodians got their shares: requests
/// over the newer versions are accepted by a custodian who contributed at version 1 and by
/// one who never contributed, with the share file (and card) they were given at init.
#[test]
fn a_custodian_accepts_a_request_over_any_newer_version_of_their_vault() {
    let env = Env::two_of_three_with_db_root(&["--operator", "olivia"]);
    let alice = Home::of(&env, "alice");
    let first = open_drill(&env, None, "first");
    assert_eq!(version_of(&first), 1);
    alice.contributes(&first);

    env.ok(&as_strs(&with_quorum(
        &env,
        &["hsm", "enroll", "--token", "backup", "--init-token"],
    )));
    let key = env.run_on("sam-machine", &["operator", "key"]);
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    env.ok(&as_strs(&with_quorum(
        &env,
        &[
            "operator",
            "add",
            "sam",
            "--role",
            "security-officer",
            "--key",
            &key,
        ],
    )));
    let later = open_drill(&env, None, "later");
    assert_eq!(version_of(&later), 3);
    alice.contributes(&later);
    Home::of(&env, "bob").contributes(&later);
}

/// Sam, a security officer the quorum added (version 2), opens a ceremony, and is removed
/// by the quorum (version 3) while his request is still valid. A custodian machine that has
/// seen version 3 (it contributed to olivia's request over it) refuses his request: it
/// carries version 2, older than the machine has seen (exit 5, nothing written).
#[test]
fn a_custodian_machine_refuses_a_request_over_an_older_version_than_it_has_seen() {
    let env = Env::two_of_three_with_db_root(&["--operator", "olivia"]);
    let fingerprint = env.status()["fingerprint"].as_str().unwrap().to_owned();
    let key = env.run_on("sam-machine", &["operator", "key"]);
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    env.ok(&as_strs(&with_quorum(
        &env,
        &[
            "operator",
            "add",
            "sam",
            "--role",
            "security-officer",
            "--key",
            &key,
        ],
    )));
    let sams = open_drill(&env, Some(("sam-machine", &fingerprint)), "sams");
    assert_eq!(version_of(&sams), 2);
    env.ok(&as_strs(&with_quorum(&env, &["operator", "remove", "sam"])));

    let alice = Home::of(&env, "alice");
    let olivias = open_drill(&env, None, "olivias");
    assert_eq!(version_of(&olivias), 3);
    alice.contributes(&olivias);

    let (output, contribution) = alice.contribute(&sams);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(5), "{err}");
    assert!(err.contains("not contributed"), "{err}");
    assert!(
        err.contains("is version 2, but this machine has seen version 3"),
        "{err}"
    );
    assert!(!err.contains("Contribute your share"), "{err}");
    assert!(!contribution.exists());
}
