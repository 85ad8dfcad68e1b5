//! What the end-to-end tests share: a throw-away directory holding a vault, its development
//! SoftHSM token and a configuration directory, and the built binary run against it with
//! nothing from the caller's environment that could change what it does.

#![allow(dead_code)]

pub mod browser;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A vault directory (`vault/`) and configuration (`config/`) in a fresh temporary directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// Variables every command gets besides (a local AWS endpoint's, for instance).
    pub vars: Vec<(String, String)>,
}

impl Env {
    /// A committed vault (`tests/data/<name>`: `vault/`, `shares/` and the machine that made
    /// it, `config/`) copied into a fresh test directory: a token is written to when it is
    /// used, and the committed copy never changes.
    pub fn from_fixture(name: &str) -> Env {
        let env = Env::new();
        let fixture = hsm_testing::tools::repo_root()
            .join("tests/data")
            .join(name);
        for part in ["vault", "shares", "config"] {
            let copied = Command::new("cp")
                .arg("-r")
                .arg(fixture.join(part))
                .arg(env.path(part))
                .status()
                .unwrap();
            assert!(copied.success(), "copying {}", fixture.join(part).display());
        }
        // A checkout does not keep modes: operator keys are 0600 again, as breakglass requires.
        let keys = env.path("config/breakglass/operators");
        if let Ok(entries) = std::fs::read_dir(&keys) {
            use std::os::unix::fs::PermissionsExt;
            for entry in entries {
                let path = entry.unwrap().path();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
        env
    }

    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            vars: Vec::new(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn vault(&self) -> PathBuf {
        self.path("vault")
    }
    /// The binary with `args`, pointed at this vault, stdin not a terminal, and a reason for
    /// opening a credential in `BREAKGLASS_REASON` as a runbook's shell would have (the vault's
    /// policy requires one; tests of that requirement remove it).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_breakglass"));
        command
            .args(args)
            .env("BREAKGLASS_VAULT", self.vault())
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env_remove("SOFTHSM2_CONF")
            .env_remove("BREAKGLASS_FINGERPRINT")
            .env_remove("BREAKGLASS_TEST_FAULT")
            .env("BREAKGLASS_REASON", "end-to-end test")
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
    /// [`Env::command`] on another machine than the one that ran init: its configuration
    /// directory (`XDG_CONFIG_HOME`) is `<machine>` here, holding what that machine pinned and
    /// remembers (nothing, until something is put there).
    pub fn command_on(&self, machine: &str, args: &[&str]) -> Command {
        let mut command = self.command(args);
        command.env("XDG_CONFIG_HOME", self.path(machine));
        command
    }
    /// Runs [`Env::command_on`].
    pub fn run_on(&self, machine: &str, args: &[&str]) -> Output {
        self.command_on(machine, args).output().unwrap()
    }
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(args);
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    }
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        output_with_stdin(self.command(args), input)
    }
    /// Runs and requires success; returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
    /// The arguments of `init --dev-softhsm` for one group: `custodians`, `threshold` of them
    /// needed, share files in `shares/`, the fastest iteration exponent; then `extra`.
    pub fn init_args(&self, custodians: &[&str], threshold: u8, extra: &[&str]) -> Vec<String> {
        self.one_group_init(&["init", "--dev-softhsm"], custodians, threshold, extra)
    }
    /// The arguments of `init` on a fresh token labelled `token` that init initialises, in the
    /// PKCS#11 module at `module` (the fault-injection shim, say), for one group: otherwise as
    /// [`Env::init_args`].
    pub fn init_token_args(
        &self,
        module: &Path,
        token: &str,
        custodians: &[&str],
        threshold: u8,
        extra: &[&str],
    ) -> Vec<String> {
        let module = module.display().to_string();
        let head = [
            "init",
            "--module",
            &module,
            "--token",
            token,
            "--init-token",
        ];
        self.one_group_init(&head, custodians, threshold, extra)
    }
    fn one_group_init(
        &self,
        head: &[&str],
        custodians: &[&str],
        threshold: u8,
        extra: &[&str],
    ) -> Vec<String> {
        let mut args: Vec<String> = head.iter().map(|a| (*a).to_owned()).collect();
        for custodian in custodians {
            args.extend(["--custodian".into(), (*custodian).into()]);
        }
        args.extend([
            "--threshold".into(),
            threshold.to_string(),
            "--iteration-exponent".into(),
            "0".into(),
            "--shares-dir".into(),
            self.path("shares").display().to_string(),
        ]);
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    }
    /// The arguments of `init --dev-softhsm` for `groups` (`name:threshold:member,...`),
    /// `group_threshold` of them needed, share files in `shares/`, the fastest iteration
    /// exponent; then `extra`.
    pub fn init_group_args(
        &self,
        groups: &[&str],
        group_threshold: u8,
        extra: &[&str],
    ) -> Vec<String> {
        let mut args: Vec<String> = vec!["init".into(), "--dev-softhsm".into()];
        for group in groups {
            args.extend(["--group".into(), (*group).into()]);
        }
        args.extend([
            "--group-threshold".into(),
            group_threshold.to_string(),
            "--iteration-exponent".into(),
            "0".into(),
            "--shares-dir".into(),
            self.path("shares").display().to_string(),
        ]);
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    }
    /// A 2-of-3 development vault (alice, bob, carol; `extra` added to the init line) with the
    /// `secret` credential `db-root` sealed from the file `payload`.
    pub fn two_of_three_with_db_root(extra: &[&str]) -> Env {
        let env = Env::new();
        env.init_vault(&["alice", "bob", "carol"], 2, extra);
        env.seal_secret("db-root", "payload", b"the database root password");
        env
    }
    /// Writes `payload` to the file `file` here and seals it as the `secret` credential `name`
    /// (requires success).
    pub fn seal_secret(&self, name: &str, file: &str, payload: &[u8]) {
        std::fs::write(self.path(file), payload).unwrap();
        self.ok(&[
            "seal",
            name,
            "--kind",
            "secret",
            "--from-file",
            self.path(file).to_str().unwrap(),
        ]);
    }
    /// Runs [`Env::init_args`] and requires success; returns standard output.
    pub fn init_vault(&self, custodians: &[&str], threshold: u8, extra: &[&str]) -> String {
        self.ok(&as_strs(&self.init_args(custodians, threshold, extra)))
    }
    /// Runs [`Env::init_group_args`] and requires success; returns standard output.
    pub fn init_groups(&self, groups: &[&str], group_threshold: u8, extra: &[&str]) -> String {
        self.ok(&as_strs(&self.init_group_args(
            groups,
            group_threshold,
            extra,
        )))
    }
    /// `--share-file shares/<name>.share` for each custodian (share files written by
    /// `init --shares-dir shares`).
    pub fn share_files(&self, names: &[&str]) -> Vec<String> {
        names
            .iter()
            .flat_map(|n| {
                [
                    "--share-file".to_owned(),
                    self.path(&format!("shares/{n}.share"))
                        .display()
                        .to_string(),
                ]
            })
            .collect()
    }
    /// The audit entries named `event`, oldest first (`audit show --json`).
    pub fn audit_events(&self, event: &str) -> Vec<serde_json::Value> {
        let log: serde_json::Value =
            serde_json::from_str(&self.ok(&["audit", "show", "--json"])).unwrap();
        log.as_array()
            .expect("audit show --json prints an array")
            .iter()
            .filter(|e| e["event"] == event)
            .cloned()
            .collect()
    }
    /// `status --json`.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }
}

/// A custodian at home: the binary with `args`, run in `home` with no vault, their own
/// configuration under `home`, no fingerprint from the environment, stdin not a terminal.
pub fn custodian_command(home: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_breakglass"));
    command
        .args(args)
        .current_dir(home)
        .env_remove("BREAKGLASS_VAULT")
        .env_remove("BREAKGLASS_FINGERPRINT")
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("HOME", home)
        .env_remove("SOFTHSM2_CONF")
        .stdin(Stdio::null());
    command
}

/// Borrows owned arguments as the `&[&str]` the runners take.
pub fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Requires `output` to have exited with `code`, its standard error saying each of `says`.
/// `what` (the arguments, the command's name) heads the message when it is not.
pub fn assert_exit(output: &Output, code: i32, says: &[&str], what: impl std::fmt::Debug) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{what:?}: {err}");
    for said in says {
        assert!(err.contains(said), "{what:?}: {said:?} not said: {err}");
    }
}

/// Runs `command` with `input` on its standard input; its output.
pub fn output_with_stdin(mut command: Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}
pub mod sweep;
