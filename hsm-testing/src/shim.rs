//! The fault-injection PKCS#11 module (`hsm-testing/pkcs11-shim`): building it, and the
//! environment that makes a child process load it in front of SoftHSM.
//!
//! The shim forwards every PKCS#11 2.40 call to the real module ([`module_path`]) and, as told
//! by its environment, fails one chosen call ([`Shim::fail`]), logs every call ([`Shim::log`],
//! read back with [`calls`]), counts wrong PINs until the token locks ([`Shim::pin_tries`]), and
//! writes a file when it is loaded ([`Shim::loaded_marker`]). A program under test is given
//! [`library`] as its PKCS#11 module (`--module`, or the vault manifest's `module`) and
//! [`Shim::env`] in its environment.
//!
//! [`module_path`]: crate::softhsm::module_path

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The package name of the shim in this workspace.
const PACKAGE: &str = "breakglass-pkcs11-shim";
/// The file cargo writes for it.
const LIBRARY: &str = "libbreakglass_pkcs11_shim.so";

/// The return values the fault sweeps inject (issue-tracker list: a device pulled out, a
/// session gone, a PIN locked, a device fault, a general error, no token).
pub const FAULTS: [&str; 6] = [
    "CKR_DEVICE_REMOVED",
    "CKR_SESSION_HANDLE_INVALID",
    "CKR_PIN_LOCKED",
    "CKR_DEVICE_ERROR",
    "CKR_GENERAL_ERROR",
    "CKR_TOKEN_NOT_PRESENT",
];

/// The shim library, built for the profile the running test was built with (cargo builds it
/// with the workspace, and again here when its sources changed); once per process.
///
/// # Panics
/// When cargo cannot build it, with cargo's output.
pub fn library() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| build_library(PACKAGE, LIBRARY, "the PKCS#11 shim"))
        .clone()
}

/// Builds the workspace's cdylib `package` (file `library`) for the profile the running test
/// was built with, into the test's own target directory; its path.
///
/// # Panics
/// When cargo cannot build it, with cargo's output.
pub fn build_library(package: &str, library: &str, what: &str) -> PathBuf {
    // A test executable lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps")
        .to_path_buf();
    let target_dir = profile_dir
        .parent()
        .expect("<target>/<profile>")
        .to_path_buf();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(name) => name.to_owned(),
        None => panic!("no profile directory above {}", exe.display()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "--package",
            package,
            "--profile",
            &profile,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(crate::tools::repo_root())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} to build {what}: {e}",
                Path::new(&cargo).display()
            )
        });
    assert!(
        output.status.success(),
        "building {what} failed (cargo build --package {package} --profile {profile}):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let built = profile_dir.join(library);
    assert!(
        built.exists(),
        "cargo built {package} but {} is missing",
        built.display()
    );
    built
}

/// What the shim is told to do in one child process.
#[derive(Debug, Clone, Default)]
pub struct Shim {
    fail: Vec<String>,
    log: Option<PathBuf>,
    pin_tries: Option<(u32, PathBuf)>,
    loaded_marker: Option<PathBuf>,
}

impl Shim {
    /// Forwards everything, does nothing else.
    pub fn new() -> Shim {
        Shim::default()
    }

    /// The `occurrence`-th call (from 1) of `function` returns `rv` (a `CKR_...` name).
    pub fn fail(mut self, function: &str, occurrence: usize, rv: &str) -> Shim {
        self.fail.push(format!("{function}:{occurrence}:{rv}"));
        self
    }

    /// Every call is appended to `path` (see [`calls`]).
    pub fn log(mut self, path: &Path) -> Shim {
        self.log = Some(path.to_path_buf());
        self
    }

    /// `tries` wrong PINs lock a PIN; the counts are kept in `state_dir` across processes.
    pub fn pin_tries(mut self, tries: u32, state_dir: &Path) -> Shim {
        self.pin_tries = Some((tries, state_dir.to_path_buf()));
        self
    }

    /// The shim writes `path` when a process loads it.
    pub fn loaded_marker(mut self, path: &Path) -> Shim {
        self.loaded_marker = Some(path.to_path_buf());
        self
    }

    /// The environment of a child process (the real module included); other `BREAKGLASS_SHIM_*`
    /// settings the caller's environment may hold are to be removed ([`Shim::apply`] does).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "BREAKGLASS_SHIM_MODULE".to_owned(),
            crate::softhsm::module_path().display().to_string(),
        )];
        if !self.fail.is_empty() {
            env.push(("BREAKGLASS_SHIM_FAIL".to_owned(), self.fail.join(",")));
        }
        if let Some(log) = &self.log {
            env.push(("BREAKGLASS_SHIM_LOG".to_owned(), log.display().to_string()));
        }
        if let Some((tries, dir)) = &self.pin_tries {
            env.push(("BREAKGLASS_SHIM_PIN_TRIES".to_owned(), tries.to_string()));
            env.push((
                "BREAKGLASS_SHIM_PIN_STATE".to_owned(),
                dir.display().to_string(),
            ));
        }
        if let Some(marker) = &self.loaded_marker {
            env.push((
                "BREAKGLASS_SHIM_LOADED".to_owned(),
                marker.display().to_string(),
            ));
        }
        env
    }

    /// Sets [`Shim::env`] on `command`, removing any other shim setting it would inherit.
    pub fn apply<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        for name in [
            "BREAKGLASS_SHIM_FAIL",
            "BREAKGLASS_SHIM_LOG",
            "BREAKGLASS_SHIM_PIN_TRIES",
            "BREAKGLASS_SHIM_PIN_STATE",
            "BREAKGLASS_SHIM_LOADED",
        ] {
            command.env_remove(name);
        }
        command.envs(self.env())
    }
}

/// One call in a shim log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The PKCS#11 function, e.g. `C_DeriveKey`.
    pub function: String,
    /// Which call of that function it was in its process, from 1.
    pub occurrence: usize,
    /// What the caller got, e.g. `CKR_OK`.
    pub rv: String,
    /// Whether the shim failed it on purpose.
    pub injected: bool,
}

/// The calls logged in `log` (empty when the file does not exist: nothing loaded the shim).
///
/// # Panics
/// On a line the shim does not write.
pub fn calls(log: &Path) -> Vec<Call> {
    let text = match std::fs::read_to_string(log) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("{}: {e}", log.display()),
    };
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields.as_slice() {
                [function, occurrence, rv, rest @ ..] if rest.len() <= 1 => Call {
                    function: (*function).to_owned(),
                    occurrence: occurrence
                        .parse()
                        .unwrap_or_else(|_| panic!("{}: bad line {line:?}", log.display())),
                    rv: (*rv).to_owned(),
                    injected: rest == ["injected"],
                },
                _ => panic!("{}: bad line {line:?}", log.display()),
            }
        })
        .collect()
}
