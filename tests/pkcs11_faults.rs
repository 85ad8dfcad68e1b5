//! End-to-end: PKCS#11 faults. The fault-injection module (hsm-testing's `shim`) stands between
//! breakglass and SoftHSM.
//!
//! - Every PKCS#11 call of `unseal`, `drill`, `hsm enroll`, `rekey`, and of `rotate --mfa` and
//!   `assume` (against a local AWS endpoint) is listed, and the lists are kept as reviewed data in
//!   `tests/data/pkcs11-calls/` (`BREAKGLASS_BLESS=1` rewrites them).
//! - The sweeps fail each listed call in turn, with two of the six return values of
//!   `shim::FAULTS` per call (one per round), from the same starting state each time, and check
//!   the properties of [`Property`]: exit 4, the function named, no partial file, nothing lost
//!   (every credential opens afterwards with the same quorum; after `rekey`, `--resume` finishes
//!   what the fault interrupted), the failed attempt recorded as `<event>_failed`. Every
//!   property is asserted at every fault of every command (docs/threat-model.md has the
//!   figures); a sweep that finds one broken fails with a summary of each fault that broke it.
//! - A token with a real PIN retry counter checks the guard that refuses a try that could lock
//!   it, and the load marker shows which commands load the module at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use hsm_testing::shim::{self, Call, FAULTS, Shim};
use hsm_testing::softhsm::SoftHsm;

mod support;

use support::sweep::{AWS_CREDENTIAL, AwsUser};
use support::{Env, stderr};

/// Where the tests keep what is not part of the state under test: shim logs, unsealed files,
/// the snapshot.
const SCRATCH: &str = "scratch";

/// A vault on a SoftHSM token reached through the shim (the manifest names the shim as the
/// module), two sealed credentials, and a snapshot of everything a command may change.
struct Lab {
    env: Env,
    hsm: SoftHsm,
    module: PathBuf,
    payloads: BTreeMap<&'static str, Vec<u8>>,
    runs: usize,
}

impl Lab {
    /// `init` through the shim (token `vault-a`, quorum-derived PINs, 2 of 3) and two sealed
    /// secrets.
    fn new() -> Lab {
        let payloads = BTreeMap::from([
            ("db-root", (0..=255u8).collect()),
            ("api-key", b"api key \n second secret".to_vec()),
        ]);
        Lab::init(payloads, &[], |_| Shim::new()).0
    }

    /// `init` through the shim (token `vault-a`, 2 of 3, `pin_args` saying where the PINs come
    /// from) with the shim `shim_for` gives for the lab, then `payloads` sealed.
    fn init(
        payloads: BTreeMap<&'static str, Vec<u8>>,
        pin_args: &[&str],
        shim_for: impl FnOnce(&Lab) -> Shim,
    ) -> (Lab, Shim) {
        let lab = Lab {
            env: Env::new(),
            hsm: SoftHsm::for_children(),
            module: shim::library(),
            payloads,
            runs: 0,
        };
        let shim = shim_for(&lab);
        std::fs::create_dir_all(lab.env.path(SCRATCH)).unwrap();
        let args = lab.env.init_token_args(
            &lab.module,
            "vault-a",
            &["alice", "bob", "carol"],
            2,
            pin_args,
        );
        let init = lab
            .command(&support::as_strs(&args), &shim, RIGHT_PIN)
            .output()
            .unwrap();
        assert!(init.status.success(), "{}", stderr(&init));
        for (name, payload) in &lab.payloads {
            let file = lab.env.path(&format!("{SCRATCH}/{name}.payload"));
            std::fs::write(&file, payload).unwrap();
            lab.env.ok(&[
                "seal",
                name,
                "--kind",
                "secret",
                "--from-file",
                file.to_str().unwrap(),
            ]);
        }
        (lab, shim)
    }

    /// The binary with `args`, its module loading the shim as `shim` says, the token PINs (for
    /// a lab whose PINs are not derived from the quorum) in `BG_PIN` and `BG_SO_PIN`.
    fn command(&self, args: &[&str], shim: &Shim, pin: &str) -> std::process::Command {
        let mut command = self.env.command(args);
        command
            .envs(self.hsm.env())
            .env("BG_PIN", pin)
            .env("BG_SO_PIN", "so-pin-87654321");
        shim.apply(&mut command);
        command
    }

    /// [`Lab::command`] run with the right PIN.
    fn run(&self, args: &[&str], shim: &Shim) -> Output {
        self.command(args, shim, RIGHT_PIN).output().unwrap()
    }

    /// `args` followed by `--share-file` for alice and carol (a quorum).
    fn with_quorum(&self, args: &[&str]) -> Vec<String> {
        self.with_shares("shares", args)
    }

    /// `args` followed by `--share-file` for alice's and carol's shares in `shares_dir`.
    fn with_shares(&self, shares_dir: &str, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        for custodian in ["alice", "carol"] {
            v.push("--share-file".into());
            v.push(
                self.env
                    .path(&format!("{shares_dir}/{custodian}.share"))
                    .display()
                    .to_string(),
            );
        }
        v
    }

    /// A fresh path in the scratch directory.
    fn scratch(&mut self, what: &str) -> PathBuf {
        self.runs += 1;
        self.env.path(&format!("{SCRATCH}/{}-{what}", self.runs))
    }

    /// Every credential opens, unfaulted, with the same quorum, byte for byte; the problems
    /// found otherwise.
    fn nothing_lost(&mut self, shares_dir: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, payload) in self.payloads.clone() {
            let out = self.scratch("unsealed");
            let args = self.with_shares(
                shares_dir,
                &[
                    "unseal",
                    name,
                    "--output",
                    &format!("file:{}", out.display()),
                ],
            );
            let output = self.run(&strs(&args), &Shim::new());
            if !output.status.success() {
                problems.push(format!("{name} no longer unseals: {}", stderr(&output)));
            } else if std::fs::read(&out).unwrap() != payload {
                problems.push(format!("{name} unseals to other bytes"));
            }
        }
        problems
    }

    /// Copies the test directory (scratch aside) and the token directory into the snapshot.
    fn snapshot(&self) {
        let snapshot = self.env.path(&format!("{SCRATCH}/snapshot"));
        let _ = std::fs::remove_dir_all(&snapshot);
        copy_tree(self.env.dir.path(), &snapshot.join("test"), &[SCRATCH]);
        copy_tree(
            &self.hsm.dir().join("tokens"),
            &snapshot.join("tokens"),
            &[],
        );
    }

    /// Puts the test directory and the tokens back as they were at [`Lab::snapshot`].
    fn restore(&self) {
        let snapshot = self.env.path(&format!("{SCRATCH}/snapshot"));
        for entry in std::fs::read_dir(self.env.dir.path()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != SCRATCH {
                remove(&entry.path());
            }
        }
        copy_tree(&snapshot.join("test"), self.env.dir.path(), &[]);
        let tokens = self.hsm.dir().join("tokens");
        remove(&tokens);
        copy_tree(&snapshot.join("tokens"), &tokens, &[]);
    }

    /// Every file and directory of the test directory with its contents, the scratch directory
    /// the audit log and the lock file aside.
    fn tree(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let mut tree = BTreeMap::new();
        walk(self.env.dir.path(), Path::new(""), &mut tree);
        // The audit log records the attempt; the lock file names its last holder.
        // The envelope records this machine verified follow the log like its anchor (made at
        // the first opening, moved on by every later one).
        tree.retain(|path, _| {
            !path.starts_with(SCRATCH)
                && path != Path::new("vault/audit.jsonl")
                && path != Path::new("vault/vault.lock")
                && !path.starts_with("config/breakglass/records")
        });
        // This machine's anchor follows the audit log's head (tests/anchors.rs checks where it
        // points); everything else it remembers must not change.
        for (path, bytes) in tree.iter_mut() {
            if path.starts_with("config/breakglass/anchors")
                && let Some(contents) = bytes
            {
                let mut anchor: serde_json::Value = serde_json::from_slice(contents).unwrap();
                anchor.as_object_mut().unwrap().remove("audit");
                *contents = serde_json::to_vec(&anchor).unwrap();
            }
        }
        tree
    }
}

fn walk(root: &Path, relative: &Path, tree: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
    for entry in std::fs::read_dir(root.join(relative)).unwrap() {
        let entry = entry.unwrap();
        let path = relative.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            tree.insert(path.clone(), None);
            walk(root, &path, tree);
        } else {
            tree.insert(path.clone(), Some(std::fs::read(root.join(&path)).unwrap()));
        }
    }
}

fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::metadata(from).unwrap().permissions()).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if skip.iter().any(|s| entry.file_name() == *s) {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, &[]);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path).unwrap(),
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Whether `text` names `function` (`C_DeriveKey`), as PKCS#11 or as cryptoki
/// (`Function::DeriveKey`) spells it.
fn names_function(text: &str, function: &str) -> bool {
    text.contains(function)
        || text.contains(&format!(
            "Function::{}",
            function.strip_prefix("C_").unwrap_or(function)
        ))
}

/// Calls whose failure cryptoki does not return (it drops the return value of
/// `C_FindObjectsFinal` and `C_CloseSession` in its `Drop` implementations): the command may then
/// succeed, or fail at the next call (`CKR_OPERATION_ACTIVE`), which is what it names, with that
/// call's return value.
const SWALLOWED: [&str; 2] = ["C_FindObjectsFinal", "C_CloseSession"];

/// The commands swept, each run with a quorum (alice and carol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Swept {
    Unseal,
    Drill,
    Enroll,
    Rekey,
}

impl Swept {
    const ALL: [Swept; 4] = [Swept::Unseal, Swept::Drill, Swept::Enroll, Swept::Rekey];

    fn name(self) -> &'static str {
        match self {
            Swept::Unseal => "unseal",
            Swept::Drill => "drill",
            Swept::Enroll => "hsm-enroll",
            Swept::Rekey => "rekey",
        }
    }

    fn args(self, lab: &Lab) -> Vec<String> {
        let module = lab.module.display().to_string();
        let new_shares = lab.env.path("new-shares").display().to_string();
        lab.with_quorum(&match self {
            Swept::Unseal => vec!["unseal", "db-root", "--output", "json"],
            Swept::Drill => vec!["drill", "--json"],
            Swept::Enroll => vec![
                "hsm",
                "enroll",
                "--module",
                &module,
                "--token",
                "vault-b",
                "--init-token",
            ],
            Swept::Rekey => vec!["rekey", "--yes", "--shares-dir", &new_shares],
        })
    }

    /// The audit event the command records (`<event>_failed` when it fails).
    fn event(self) -> &'static str {
        match self {
            Swept::Unseal => "unseal",
            Swept::Drill => "drill",
            Swept::Enroll => "hsm_enrol",
            Swept::Rekey => "rekey",
        }
    }

    /// Where the quorum's shares are once the command has succeeded.
    fn shares_after_success(self) -> &'static str {
        match self {
            Swept::Rekey => "new-shares",
            _ => "shares",
        }
    }
}

/// The properties a sweep checks, every one at every fault of every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Property {
    /// Exit code 4 (HSM or token error).
    Exit4,
    /// Standard error names the PKCS#11 function.
    FunctionNamed,
    /// No file of the test directory changed (the audit log aside); for `rekey`, the vault is
    /// either unchanged or holds a resumable journal.
    NoPartialFile,
    /// Every credential still opens with the same shares (for `rekey`, after `--resume` where a
    /// journal was left, with the new ones).
    NothingLost,
    /// Standard error names the return value (`CKR_DEVICE_REMOVED`).
    ReturnValueNamed,
    /// The failed attempt is in the audit log (a `<event>_failed` entry appended), unless the
    /// command stopped before reading any share and says so (`rekey`'s check of its tokens).
    InAuditLog,
}

const PROPERTIES: [Property; 6] = [
    Property::Exit4,
    Property::FunctionNamed,
    Property::NoPartialFile,
    Property::NothingLost,
    Property::ReturnValueNamed,
    Property::InAuditLog,
];

/// The return value call number `index` gets in `round` (0 or 1): over both rounds each call
/// fails with two different values, and every value of [`FAULTS`] is used.
fn fault_for(index: usize, round: usize) -> &'static str {
    FAULTS[(index + 3 * round) % FAULTS.len()]
}

/// What one sweep found: per property, the faults at which it did not hold.
#[derive(Debug, Default)]
struct Findings {
    failed: Vec<(Property, String)>,
}

impl Findings {
    fn add(&mut self, property: Property, finding: String) {
        self.failed.push((property, finding));
    }

    /// Per property, how many faults broke it, then each: the fault and the last line the
    /// command wrote.
    fn summary(&self) -> String {
        let mut text = String::new();
        for property in PROPERTIES {
            let found: Vec<&String> = self
                .failed
                .iter()
                .filter(|(p, _)| *p == property)
                .map(|(_, f)| f)
                .collect();
            text += &format!("{property:?}: fails at {} faults\n", found.len());
            for finding in found {
                let mut lines = finding.lines();
                let first = lines.next().unwrap_or_default();
                let last: String = lines.last().unwrap_or_default().chars().take(200).collect();
                text += &format!("  {first} => {last}\n");
            }
        }
        text
    }
}

/// Lists the calls `swept` makes, then fails every `parts`-th of them (from `part`) with the
/// return value of `round`, from the same starting state each time, and checks every property.
fn sweep(swept: Swept, round: usize, part: usize, parts: usize) {
    let mut lab = Lab::new();
    let args = swept.args(&lab);
    let args = strs(&args);
    lab.snapshot();
    let log = lab.scratch("calls.log");
    let clean = lab.run(&args, &Shim::new().log(&log));
    assert!(clean.status.success(), "{args:?}: {}", stderr(&clean));
    let calls = shim::calls(&log);
    assert!(!calls.is_empty(), "{args:?} made no PKCS#11 call");
    let mut findings = Findings::default();
    let mut faults = 0;
    let mut valid_shares = "shares";
    for (index, call) in calls.iter().enumerate().skip(part).step_by(parts) {
        let (function, occurrence) = (&call.function, call.occurrence);
        let rv = fault_for(index, round);
        let what = format!("{} {function}#{occurrence} {rv}", swept.name());
        lab.restore();
        let before = lab.tree();
        let audit_before = std::fs::read(lab.env.vault().join("audit.jsonl")).unwrap();
        let log = lab.scratch("fault.log");
        let output = lab.run(&args, &Shim::new().fail(function, occurrence, rv).log(&log));
        faults += 1;
        assert!(
            shim::calls(&log)
                .iter()
                .any(|c| c.injected && &c.function == function && c.occurrence == occurrence),
            "{what}: the fault was never reached"
        );
        let err = stderr(&output);
        let swallowed = SWALLOWED.contains(&function.as_str());
        let journal = lab.env.vault().join("rekey.json").exists();
        valid_shares = "shares";
        if output.status.success() {
            // The command did its whole job: what it leaves must open with the shares it
            // leaves valid.
            valid_shares = swept.shares_after_success();
            if !swallowed {
                findings.add(Property::Exit4, format!("{what}: exit 0\n{err}"));
            }
            for problem in lab.drill_opens_everything(valid_shares) {
                findings.add(Property::NothingLost, format!("{what} (exit 0): {problem}"));
            }
            continue;
        }
        if output.status.code() != Some(4) {
            let code = output.status.code();
            findings.add(Property::Exit4, format!("{what}: exit {code:?}\n{err}"));
        }
        // A swallowed value cannot be named: the call that failed next is, with its own.
        let named = if swallowed {
            err.contains(" returned CKR_")
        } else {
            names_function(&err, function)
        };
        if !named {
            findings.add(Property::FunctionNamed, format!("{what}\n{err}"));
        }
        if !swallowed && !err.contains(rv) {
            findings.add(Property::ReturnValueNamed, format!("{what}\n{err}"));
        }
        let audit_after = std::fs::read(lab.env.vault().join("audit.jsonl")).unwrap();
        let failed = format!("\"event\":\"{}_failed\"", swept.event());
        let appended = audit_after
            .strip_prefix(audit_before.as_slice())
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        // A rekey checks its tokens before it reads a share, and says so: nothing to record.
        let before_shares = err.contains("before any share is read");
        let exempt = swept == Swept::Rekey && before_shares;
        if !appended.contains(&failed) && !exempt {
            findings.add(Property::InAuditLog, format!("{what}: no {failed} entry"));
        }
        if swept == Swept::Rekey && journal {
            // An interrupted rekey is finished with --resume and a quorum of each set.
            let resume = lab.resume_rekey();
            if !resume.status.success() {
                let problem = stderr(&resume);
                findings.add(
                    Property::NothingLost,
                    format!("{what}: rekey --resume fails\n{problem}"),
                );
            }
            valid_shares = swept.shares_after_success();
        } else {
            let after = lab.tree();
            if after != before {
                let changed: Vec<String> = before
                    .keys()
                    .chain(after.keys())
                    .filter(|p| before.get(*p) != after.get(*p))
                    .map(|p| p.display().to_string())
                    .collect();
                findings.add(
                    Property::NoPartialFile,
                    format!("{what}: {}\n{err}", changed.join(", ")),
                );
            }
        }
        for problem in lab.drill_opens_everything(valid_shares) {
            findings.add(Property::NothingLost, format!("{what}: {problem}"));
        }
    }
    // After the last fault, byte for byte.
    for problem in lab.nothing_lost(valid_shares) {
        findings.add(Property::NothingLost, format!("after the sweep: {problem}"));
    }
    let summary = findings.summary();
    eprintln!(
        "{} (round {}, part {}/{parts}): {} calls, {faults} faults injected\n{summary}",
        swept.name(),
        round + 1,
        part + 1,
        calls.len(),
    );
    let broken: Vec<Property> = PROPERTIES
        .into_iter()
        .filter(|p| findings.failed.iter().any(|(q, _)| q == p))
        .collect();
    assert!(
        broken.is_empty(),
        "{}: {broken:?} broken\n{summary}",
        swept.name()
    );
}

impl Lab {
    /// `rekey --resume` with alice's and carol's old and new shares, unfaulted.
    fn resume_rekey(&self) -> Output {
        let mut args = self.with_shares("shares", &["rekey", "--resume"]);
        args.extend(self.with_shares("new-shares", &[]));
        self.run(&strs(&args), &Shim::new())
    }

    /// `drill` with the shares in `shares_dir` (alice's and carol's), unfaulted: the problems
    /// found if not every credential opens.
    fn drill_opens_everything(&mut self, shares_dir: &str) -> Vec<String> {
        let args = self.with_shares(shares_dir, &["drill", "--json"]);
        let output = self.run(&strs(&args), &Shim::new());
        if !output.status.success() {
            return vec![format!("drill fails: {}", stderr(&output))];
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        self.payloads
            .keys()
            .filter(|name| report["credentials"][**name] != "opened")
            .map(|name| format!("drill: {name}: {}", report["credentials"][*name]))
            .collect()
    }
}

#[test]
fn every_pkcs11_call_of_each_command_is_listed() {
    let mut lab = Lab::new();
    lab.snapshot();
    for swept in Swept::ALL {
        lab.restore();
        let log = lab.scratch("calls.log");
        let args = swept.args(&lab);
        let output = lab.run(&strs(&args), &Shim::new().log(&log));
        assert!(output.status.success(), "{}", stderr(&output));
        let listed: String = shim::calls(&log)
            .iter()
            .map(|c| format!("{}\n", c.function))
            .collect();
        let file = hsm_testing::tools::repo_root()
            .join("tests/data/pkcs11-calls")
            .join(format!("{}.txt", swept.name()));
        if std::env::var_os("BREAKGLASS_BLESS").is_some() {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &listed).unwrap();
        }
        let expected = std::fs::read_to_string(&file).unwrap_or_default();
        assert_eq!(
            listed,
            expected,
            "{} makes other PKCS#11 calls than {} lists: review them (the fault sweep covers \
             whatever is made), then rerun with BREAKGLASS_BLESS=1 to rewrite the file",
            swept.name(),
            file.display()
        );
    }
}

macro_rules! sweeps {
    ($($test:ident: $swept:expr, round $round:expr, part $part:expr, of $parts:expr;)*) => {$(
        #[test]
        fn $test() {
            sweep($swept, $round, $part, $parts);
        }
    )*};
}

// Split so that each test stays well inside the runner's slow-test period.
sweeps! {
    faults_at_every_pkcs11_call_of_unseal_are_clean_round_1: Swept::Unseal, round 0, part 0, of 1;
    faults_at_every_pkcs11_call_of_unseal_are_clean_round_2: Swept::Unseal, round 1, part 0, of 1;
    faults_at_every_pkcs11_call_of_drill_are_clean_round_1: Swept::Drill, round 0, part 0, of 1;
    faults_at_every_pkcs11_call_of_drill_are_clean_round_2: Swept::Drill, round 1, part 0, of 1;
    faults_at_every_pkcs11_call_of_hsm_enroll_are_clean_round_1_even: Swept::Enroll, round 0, part 0, of 2;
    faults_at_every_pkcs11_call_of_hsm_enroll_are_clean_round_1_odd: Swept::Enroll, round 0, part 1, of 2;
    faults_at_every_pkcs11_call_of_hsm_enroll_are_clean_round_2_even: Swept::Enroll, round 1, part 0, of 2;
    faults_at_every_pkcs11_call_of_hsm_enroll_are_clean_round_2_odd: Swept::Enroll, round 1, part 1, of 2;
    faults_at_every_pkcs11_call_of_rekey_are_clean_round_1_a: Swept::Rekey, round 0, part 0, of 3;
    faults_at_every_pkcs11_call_of_rekey_are_clean_round_1_b: Swept::Rekey, round 0, part 1, of 3;
    faults_at_every_pkcs11_call_of_rekey_are_clean_round_1_c: Swept::Rekey, round 0, part 2, of 3;
    faults_at_every_pkcs11_call_of_rekey_are_clean_round_2_a: Swept::Rekey, round 1, part 0, of 3;
    faults_at_every_pkcs11_call_of_rekey_are_clean_round_2_b: Swept::Rekey, round 1, part 1, of 3;
    faults_at_every_pkcs11_call_of_rekey_are_clean_round_2_c: Swept::Rekey, round 1, part 2, of 3;
}

/// `rotate --mfa` through the shim: a [`Lab`] whose vault also seals the key and MFA device of
/// an [`AwsUser`] on a local AWS endpoint as [`AWS_CREDENTIAL`]. Its PKCS#11 calls are listed
/// (`tests/data/pkcs11-calls/rotate-mfa.txt`) and each is failed in turn with the return value
/// of `round`, from a freshly sealed key and device each time (a fault after the AWS step
/// leaves them rotated). Besides the properties of [`sweep`] (a fault after the AWS step leaves
/// the rotated key and device sealed whole, not the files as they were): nothing is lost in AWS
/// either (the sealed key is in IAM and valid, the sealed device is the user's, `drill --aws`
/// opens every credential) and no key or device is left that nothing sealed, once `rotate
/// --mfa` has run again.
fn sweep_rotate_mfa(round: usize, part: usize, parts: usize) {
    let user = AwsUser::start();
    let mut lab = Lab::new();
    lab.env.vars = user.aws.client_env();
    user.fresh_key_with_mfa(&lab.env);
    let args = lab.with_quorum(&["rotate", AWS_CREDENTIAL, "--mfa"]);
    let args = strs(&args);
    let log = lab.scratch("calls.log");
    let clean = lab.run(&args, &Shim::new().log(&log));
    assert!(clean.status.success(), "{args:?}: {}", stderr(&clean));
    let calls = shim::calls(&log);
    assert_listed("rotate-mfa", &calls);
    let mut findings = Findings::default();
    let mut faults = 0;
    let mut rotated_then_failed = 0;
    for (index, call) in calls.iter().enumerate().skip(part).step_by(parts) {
        let (function, occurrence) = (&call.function, call.occurrence);
        let rv = fault_for(index, round);
        let what = format!("rotate --mfa {function}#{occurrence} {rv}");
        let (old_key, old_device) = user.fresh_key_with_mfa(&lab.env);
        let before = lab.tree();
        let audit_before = std::fs::read(lab.env.vault().join("audit.jsonl")).unwrap();
        let log = lab.scratch("fault.log");
        let output = lab.run(&args, &Shim::new().fail(function, occurrence, rv).log(&log));
        faults += 1;
        assert!(
            shim::calls(&log)
                .iter()
                .any(|c| c.injected && &c.function == function && c.occurrence == occurrence),
            "{what}: the fault was never reached"
        );
        // Before `list` refreshes the listing cache.
        let after = lab.tree();
        let err = stderr(&output);
        let swallowed = SWALLOWED.contains(&function.as_str());
        let rotated = lab.env.sealed_aws("access_key_id").as_deref() != Some(old_key.as_str());
        if output.status.success() {
            if !swallowed {
                findings.add(Property::Exit4, format!("{what}: exit 0\n{err}"));
            }
        } else {
            if output.status.code() != Some(4) {
                let code = output.status.code();
                findings.add(Property::Exit4, format!("{what}: exit {code:?}\n{err}"));
            }
            let named = if swallowed {
                err.contains(" returned CKR_")
            } else {
                names_function(&err, function)
            };
            if !named {
                findings.add(Property::FunctionNamed, format!("{what}\n{err}"));
            }
            if !swallowed && !err.contains(rv) {
                findings.add(Property::ReturnValueNamed, format!("{what}\n{err}"));
            }
            let audit_after = std::fs::read(lab.env.vault().join("audit.jsonl")).unwrap();
            let appended = audit_after
                .strip_prefix(audit_before.as_slice())
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            if !appended.contains("\"event\":\"rotate_failed\"") {
                findings.add(
                    Property::InAuditLog,
                    format!("{what}: no rotate_failed entry"),
                );
            }
            if rotated {
                rotated_then_failed += 1;
                // The rotation was made and sealed whole; the command must say so, or the
                // operator believes nothing changed.
                if !err.contains("is sealed and works") {
                    findings.add(
                        Property::NoPartialFile,
                        format!("{what}: rotated, and the message does not say so\n{err}"),
                    );
                }
            } else {
                let changed: Vec<String> = before
                    .keys()
                    .chain(after.keys())
                    .filter(|p| before.get(*p) != after.get(*p))
                    .map(|p| p.display().to_string())
                    .collect();
                if !changed.is_empty() {
                    findings.add(
                        Property::NoPartialFile,
                        format!("{what}: {}\n{err}", changed.join(", ")),
                    );
                }
            }
        }
        for problem in lab.aws_nothing_lost(&user, &old_device) {
            findings.add(Property::NothingLost, format!("{what}: {problem}"));
        }
    }
    let summary = findings.summary();
    eprintln!(
        "rotate --mfa (round {}, part {}/{parts}): {} calls, {faults} faults injected, \
         {rotated_then_failed} after the rotation was made\n{summary}",
        round + 1,
        part + 1,
        calls.len(),
    );
    let broken: Vec<Property> = PROPERTIES
        .into_iter()
        .filter(|p| findings.failed.iter().any(|(q, _)| q == p))
        .collect();
    assert!(
        broken.is_empty(),
        "rotate --mfa: {broken:?} broken\n{summary}"
    );
}

/// Compares the functions of `calls` with `tests/data/pkcs11-calls/<name>.txt`
/// (`BREAKGLASS_BLESS=1` rewrites it).
fn assert_listed(name: &str, calls: &[Call]) {
    let listed: String = calls.iter().map(|c| format!("{}\n", c.function)).collect();
    let file = hsm_testing::tools::repo_root()
        .join("tests/data/pkcs11-calls")
        .join(format!("{name}.txt"));
    if std::env::var_os("BREAKGLASS_BLESS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &listed).unwrap();
    }
    let expected = std::fs::read_to_string(&file).unwrap_or_default();
    assert_eq!(
        listed,
        expected,
        "{name} makes other PKCS#11 calls than {} lists: review them (the fault sweep covers \
         whatever is made), then rerun with BREAKGLASS_BLESS=1 to rewrite the file",
        file.display()
    );
}

/// The access key ids of every session STS (the local endpoint) has issued so far.
fn sts_sessions(user: &AwsUser) -> Vec<String> {
    let sessions = user.aws.boto(
        "import urllib.request\n\
         data = json.loads(urllib.request.urlopen(args['url'] + '/moto-api/data.json').read())\n\
         result = sorted(r['access_key_id'] for r in data['sts']['AssumedRole'])",
        serde_json::json!({"url": user.aws.endpoint_url()}),
    );
    serde_json::from_value(sessions).unwrap()
}

impl Lab {
    /// After a faulted `rotate --mfa` that started from the device `old_device`: the problems
    /// found if the sealed key is not in IAM or not valid, the sealed device is not the user's,
    /// `drill --aws` does not open every credential, or `rotate --mfa` run again unfaulted does
    /// not leave exactly one key and one device, the sealed ones.
    fn aws_nothing_lost(&mut self, user: &AwsUser, old_device: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let sealed = self.env.sealed_aws("access_key_id").unwrap_or_default();
        let device = self.env.sealed_aws("mfa_serial").unwrap_or_default();
        if !user.iam_keys().contains(&sealed) {
            problems.push(format!("the sealed key {sealed} is not in IAM"));
        }
        if !user.mfa_devices().contains(&device) {
            problems.push(format!("the sealed MFA device {device} is not the user's"));
        }
        let args = self.with_quorum(&["drill", "--aws", "--json"]);
        let drill = self.run(&strs(&args), &Shim::new());
        if !drill.status.success() {
            problems.push(format!("drill --aws fails: {}", stderr(&drill)));
            return problems;
        }
        let report: serde_json::Value = serde_json::from_slice(&drill.stdout).unwrap();
        let outcome = report["credentials"][AWS_CREDENTIAL]
            .as_str()
            .unwrap_or_default();
        if !outcome.contains(&format!("key {sealed} valid in AWS"))
            || !outcome.contains(&format!("MFA device {device} is breakglass's"))
        {
            problems.push(format!("drill --aws: {outcome}"));
        }
        for name in self.payloads.keys() {
            if report["credentials"][*name] != "opened" {
                problems.push(format!("drill: {name}: {}", report["credentials"][*name]));
            }
        }
        let args = self.with_quorum(&["rotate", AWS_CREDENTIAL, "--mfa"]);
        let rerun = self.run(&strs(&args), &Shim::new());
        if !rerun.status.success() {
            problems.push(format!("rotate --mfa again fails: {}", stderr(&rerun)));
            return problems;
        }
        let (keys, devices) = (user.iam_keys(), user.mfa_devices());
        let sealed = self.env.sealed_aws("access_key_id").unwrap_or_default();
        let device = self.env.sealed_aws("mfa_serial").unwrap_or_default();
        if keys != [sealed] || devices != [device.clone()] || device == old_device {
            problems.push(format!(
                "after rotate --mfa again: keys {keys:?}, devices {devices:?} (sealed {device})"
            ));
        }
        problems
    }
}

// Split as the others are: a fault run here also rotates in AWS and drills against it.
#[test]
fn faults_at_every_pkcs11_call_of_rotate_mfa_lose_nothing_round_1_even() {
    sweep_rotate_mfa(0, 0, 2);
}

#[test]
fn faults_at_every_pkcs11_call_of_rotate_mfa_lose_nothing_round_1_odd() {
    sweep_rotate_mfa(0, 1, 2);
}

#[test]
fn faults_at_every_pkcs11_call_of_rotate_mfa_lose_nothing_round_2_even() {
    sweep_rotate_mfa(1, 0, 2);
}

#[test]
fn faults_at_every_pkcs11_call_of_rotate_mfa_lose_nothing_round_2_odd() {
    sweep_rotate_mfa(1, 1, 2);
}

/// `assume` of the AWS key of an [`AwsUser`] on a local AWS endpoint, sealed as
/// [`AWS_CREDENTIAL`]. Its PKCS#11 calls are listed (`tests/data/pkcs11-calls/assume.txt`) and
/// each is failed in turn with the return value of `round`. Besides the properties of [`sweep`]
/// (no file changed but the audit log, nothing lost, the attempt recorded as
/// `assume_role_failed`): a failing `assume` prints nothing on standard output, so no session
/// is released; that includes a fault after the credential was opened and STS asked for the
/// session (the calls that sign its audit entry), where the session STS issued is dropped
/// unprinted. Afterwards an unfaulted `assume` still works.
fn sweep_assume(round: usize) {
    let user = AwsUser::start();
    let mut lab = Lab::new();
    lab.env.vars = user.aws.client_env();
    user.fresh_key(&lab.env);
    let args = lab.with_quorum(&["assume", AWS_CREDENTIAL, "--format", "json"]);
    let args = strs(&args);
    let log = lab.scratch("calls.log");
    let clean = lab.run(&args, &Shim::new().log(&log));
    assert!(clean.status.success(), "{args:?}: {}", stderr(&clean));
    let calls = shim::calls(&log);
    assert_listed("assume", &calls);
    let mut findings = Findings::default();
    let (mut faults, mut after_sts) = (0, 0);
    for (index, call) in calls.iter().enumerate() {
        let (function, occurrence) = (&call.function, call.occurrence);
        let rv = fault_for(index, round);
        let what = format!("assume {function}#{occurrence} {rv}");
        let before = lab.tree();
        let audit_before = std::fs::read(lab.env.vault().join("audit.jsonl")).unwrap();
        let sessions = sts_sessions(&user);
        let log = lab.scratch("fault.log");
        let output = lab.run(&args, &Shim::new().fail(function, occurrence, rv).log(&log));
        faults += 1;
        assert!(
            shim::calls(&log)
                .iter()
                .any(|c| c.injected && &c.function == function && c.occurrence == occurrence),
            "{what}: the fault was never reached"
        );
        let err = stderr(&output);
        let swallowed = SWALLOWED.contains(&function.as_str());
        let issued: Vec<String> = sts_sessions(&user)
            .into_iter()
            .filter(|s| !sessions.contains(s))
            .collect();
        if output.status.success() {
            if !swallowed {
                findings.add(Property::Exit4, format!("{what}: exit 0\n{err}"));
            }
        } else {
            if !issued.is_empty() {
                after_sts += 1;
                // STS issued a session, then the token failed: the session goes nowhere, and
                // the failed attempt names it (its key id) for the security officer.
                let appended = std::fs::read(lab.env.vault().join("audit.jsonl")).unwrap();
                let appended = String::from_utf8_lossy(&appended[audit_before.len()..]);
                for session in &issued {
                    if !appended.contains(&format!("\"session_access_key_id\":\"{session}\"")) {
                        findings.add(
                            Property::InAuditLog,
                            format!("{what}: the session {session} STS issued is not recorded"),
                        );
                    }
                    if err.contains(session.as_str()) {
                        findings.add(
                            Property::NoPartialFile,
                            format!("{what}: the session {session} is named\n{err}"),
                        );
                    }
                }
            }
            if !output.stdout.is_empty() {
                findings.add(
                    Property::NoPartialFile,
                    format!("{what}: failed, and a session was printed\n{err}"),
                );
            }
            if output.status.code() != Some(4) {
                let code = output.status.code();
                findings.add(Property::Exit4, format!("{what}: exit {code:?}\n{err}"));
            }
            let named = if swallowed {
                err.contains(" returned CKR_")
            } else {
                names_function(&err, function)
            };
            if !named {
                findings.add(Property::FunctionNamed, format!("{what}\n{err}"));
            }
            if !swallowed && !err.contains(rv) {
                findings.add(Property::ReturnValueNamed, format!("{what}\n{err}"));
            }
            let audit_after = std::fs::read(lab.env.vault().join("audit.jsonl")).unwrap();
            let appended = audit_after
                .strip_prefix(audit_before.as_slice())
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            if !appended.contains("\"event\":\"assume_role_failed\"") {
                findings.add(
                    Property::InAuditLog,
                    format!("{what}: no assume_role_failed entry"),
                );
            }
            if appended.contains("\"event\":\"assume_role\"") {
                findings.add(
                    Property::InAuditLog,
                    format!("{what}: failed, and recorded as a session released"),
                );
            }
        }
        let after = lab.tree();
        let changed: Vec<String> = before
            .keys()
            .chain(after.keys())
            .filter(|p| before.get(*p) != after.get(*p))
            .map(|p| p.display().to_string())
            .collect();
        if !changed.is_empty() {
            findings.add(
                Property::NoPartialFile,
                format!("{what}: {}\n{err}", changed.join(", ")),
            );
        }
        for problem in lab.drill_opens_everything("shares") {
            findings.add(Property::NothingLost, format!("{what}: {problem}"));
        }
    }
    // After the last fault: the sealed key still assumes the role, and the other credentials
    // open byte for byte.
    let again = lab.run(&args, &Shim::new());
    if !again.status.success() {
        let problem = stderr(&again);
        findings.add(
            Property::NothingLost,
            format!("after the sweep: assume fails\n{problem}"),
        );
    }
    for problem in lab.nothing_lost("shares") {
        findings.add(Property::NothingLost, format!("after the sweep: {problem}"));
    }
    let summary = findings.summary();
    eprintln!(
        "assume (round {}): {} calls, {faults} faults injected, {after_sts} after STS issued \
         the session\n{summary}",
        round + 1,
        calls.len(),
    );
    assert!(after_sts > 0, "no fault came after STS issued the session");
    let broken: Vec<Property> = PROPERTIES
        .into_iter()
        .filter(|p| findings.failed.iter().any(|(q, _)| q == p))
        .collect();
    assert!(broken.is_empty(), "assume: {broken:?} broken\n{summary}");
}

#[test]
fn faults_at_every_pkcs11_call_of_assume_release_no_session_and_lose_nothing_round_1() {
    sweep_assume(0);
}

#[test]
fn faults_at_every_pkcs11_call_of_assume_release_no_session_and_lose_nothing_round_2() {
    sweep_assume(1);
}

/// A lab whose token PINs come from `BG_PIN` / `BG_SO_PIN` and whose token locks after three
/// wrong user PINs (the counter kept next to the token directory).
fn lab_with_pin_counter() -> (Lab, Shim) {
    Lab::init(
        BTreeMap::from([("s", b"pin-guarded".to_vec())]),
        &[
            "--pin-source",
            "env:BG_PIN",
            "--so-pin-source",
            "env:BG_SO_PIN",
        ],
        |lab| Shim::new().pin_tries(3, &lab.hsm.dir().join("pin-tries")),
    )
}

const RIGHT_PIN: &str = "user-pin-12345678";

impl Lab {
    /// `unseal s` with `pin` (and `--force-pin` if asked); the output and the calls it made.
    fn unseal_with_pin(&mut self, shim: &Shim, pin: &str, force: bool) -> (Output, Vec<Call>) {
        let log = self.scratch("unseal.log");
        let mut args = self.with_quorum(&["unseal", "s", "--output", "json"]);
        if force {
            args.push("--force-pin".into());
        }
        let output = self
            .command(&strs(&args), &shim.clone().log(&log), pin)
            .output()
            .unwrap();
        (output, shim::calls(&log))
    }

    /// The token's user PIN flags as `hsm tokens --json` reports them: (count low, final try,
    /// locked).
    fn user_pin_flags(&self, shim: &Shim) -> (bool, bool, bool) {
        let output = self
            .command(
                &[
                    "hsm",
                    "tokens",
                    "--json",
                    "--module",
                    self.module.to_str().unwrap(),
                ],
                shim,
                "",
            )
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let tokens: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let token = &tokens[0];
        (
            token["user_pin_count_low"].as_bool().unwrap(),
            token["user_pin_final_try"].as_bool().unwrap(),
            token["user_pin_locked"].as_bool().unwrap(),
        )
    }
}

fn logins(calls: &[Call]) -> usize {
    calls.iter().filter(|c| c.function == "C_Login").count()
}

#[test]
fn the_pin_guard_refuses_the_try_that_would_lock_a_token_that_really_locks() {
    let (mut lab, counter) = lab_with_pin_counter();
    assert_eq!(lab.user_pin_flags(&counter), (false, false, false));

    // Two wrong PINs: each reaches the token and is refused; the token counts them.
    let (wrong, calls) = lab.unseal_with_pin(&counter, "wrong-pin-0000", false);
    assert_eq!(wrong.status.code(), Some(4), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("PIN refused"), "{}", stderr(&wrong));
    assert_eq!(logins(&calls), 1);
    assert_eq!(lab.user_pin_flags(&counter), (true, false, false));
    let (wrong, _) = lab.unseal_with_pin(&counter, "wrong-pin-0000", false);
    assert_eq!(wrong.status.code(), Some(4), "{}", stderr(&wrong));
    assert_eq!(lab.user_pin_flags(&counter), (true, true, false));

    // At the final try breakglass does not log in at all, whatever the PIN.
    for pin in ["wrong-pin-0000", RIGHT_PIN] {
        let (refused, calls) = lab.unseal_with_pin(&counter, pin, false);
        assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
        assert!(
            stderr(&refused).contains("final try"),
            "{}",
            stderr(&refused)
        );
        assert_eq!(logins(&calls), 0, "no C_Login at the final try: {calls:?}");
    }
    assert_eq!(lab.user_pin_flags(&counter), (true, true, false));

    // Forced with the right PIN, it logs in and the count starts again.
    let (forced, calls) = lab.unseal_with_pin(&counter, RIGHT_PIN, true);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(logins(&calls), 1);
    assert_eq!(lab.user_pin_flags(&counter), (false, false, false));

    // The token really locks: forced at the final try with a wrong PIN, the third wrong try
    // locks it, and from then on not even the right PIN is tried.
    for _ in 0..2 {
        lab.unseal_with_pin(&counter, "wrong-pin-0000", false);
    }
    let (last, _) = lab.unseal_with_pin(&counter, "wrong-pin-0000", true);
    assert_eq!(last.status.code(), Some(4), "{}", stderr(&last));
    assert_eq!(lab.user_pin_flags(&counter), (false, false, true));
    let (locked, calls) = lab.unseal_with_pin(&counter, RIGHT_PIN, true);
    assert_eq!(locked.status.code(), Some(4), "{}", stderr(&locked));
    assert!(stderr(&locked).contains("is locked"), "{}", stderr(&locked));
    assert_eq!(logins(&calls), 0, "a locked PIN is never tried: {calls:?}");
}

#[test]
fn the_shim_shows_whether_a_command_loaded_the_module() {
    let (lab, _) = lab_with_pin_counter();
    let marker = lab.env.path(&format!("{SCRATCH}/loaded"));
    let marked = Shim::new().loaded_marker(&marker);
    // `status` reads the vault directory only: no module is loaded.
    let status = lab
        .command(&["status", "--json"], &marked, "")
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(!marker.exists(), "status loaded the PKCS#11 module");
    // `hsm tokens` loads it.
    lab.user_pin_flags(&marked);
    let pid = std::fs::read_to_string(&marker).expect("hsm tokens loaded the module");
    assert!(pid.trim().parse::<u32>().is_ok(), "{pid:?}");
}
