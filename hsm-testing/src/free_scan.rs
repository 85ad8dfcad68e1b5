//! The freed-memory scanner (`hsm-testing/free-scan`): building it, and running a command with
//! it preloaded so that every block the command frees is searched for canary secrets.
//!
//! ```no_run
//! # use std::process::Command;
//! let scan = hsm_testing::free_scan::FreeScan::new(std::env::temp_dir().join("scan.report"))
//!     .watch("the payload", b"canary-payload-0123456789");
//! let mut command = Command::new("breakglass");
//! scan.apply(&mut command);
//! let output = command.output().unwrap();
//! let report = scan.report();
//! assert!(report.leaked().is_empty(), "{report:?}");
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The package name of the scanner in this workspace.
const PACKAGE: &str = "breakglass-free-scan";
/// The file cargo writes for it.
const LIBRARY: &str = "libbreakglass_free_scan.so";

/// The scanner library, built once per process for the running test's profile.
pub fn library() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| crate::shim::build_library(PACKAGE, LIBRARY, "the freed-memory scanner"))
        .clone()
}

/// What one command is scanned for, and where the findings go.
#[derive(Debug, Clone)]
pub struct FreeScan {
    report: PathBuf,
    canaries: Vec<(String, Vec<u8>)>,
}

/// What the scanner saw in one or more processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Processes that started scanning.
    pub processes: usize,
    /// Frees searched, over all of them.
    pub scanned: usize,
    /// Per block found holding a canary: the canary's name and the block's size.
    pub found: Vec<(String, usize)>,
}

impl Report {
    /// The canaries found, each once, by name.
    pub fn leaked(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.found.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

impl FreeScan {
    /// A scan reporting into `report` (emptied now and by [`FreeScan::apply`]).
    pub fn new(report: PathBuf) -> FreeScan {
        FreeScan {
            report,
            canaries: Vec::new(),
        }
    }

    /// Also looks for `value` (8 to 256 bytes; at most 32 canaries), reported as `name`.
    pub fn watch(mut self, name: &str, value: &[u8]) -> FreeScan {
        assert!(
            (8..=256).contains(&value.len()),
            "{name}: a canary is 8 to 256 bytes"
        );
        assert!(self.canaries.len() < 32, "at most 32 canaries");
        self.canaries.push((name.to_owned(), value.to_vec()));
        self
    }

    /// Preloads the scanner into `command` and empties the report.
    pub fn apply(&self, command: &mut Command) {
        std::fs::write(&self.report, b"").expect("the scan report can be written");
        let canaries: Vec<String> = self.canaries.iter().map(|(_, v)| hex(v)).collect();
        command
            .env("LD_PRELOAD", library())
            .env("BREAKGLASS_FREE_SCAN_CANARIES", canaries.join(","))
            .env("BREAKGLASS_FREE_SCAN_REPORT", &self.report);
    }

    /// What the scanned processes reported.
    ///
    /// # Panics
    /// When the report is unreadable or says something it should not (a process that did not
    /// finish its report counts as a process, not as a clean one).
    pub fn report(&self) -> Report {
        read_report(&self.report, &self.canaries)
    }
}

fn read_report(path: &Path, canaries: &[(String, Vec<u8>)]) -> Report {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the scan report {}: {e}", path.display()));
    let mut report = Report {
        processes: 0,
        scanned: 0,
        found: Vec::new(),
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let number = |i: usize| -> usize {
            words
                .get(i)
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("scan report line {line:?}"))
        };
        match words[0] {
            "active" => {
                assert_eq!(number(1), canaries.len(), "the scanner read every canary");
                report.processes += 1;
            }
            "found" => report
                .found
                .push((canaries[number(1)].0.clone(), number(2))),
            "scanned" => report.scanned += number(1),
            _ => panic!("scan report line {line:?}"),
        }
    }
    report
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
