//! End-to-end secret hygiene. Every command runs with core dumps off and not dumpable: checked
//! from outside, in `/proc/PID`, while each command waits for its input (a pipe, a FIFO). And a
//! full flow (init, seal, unseal, share verify, drill, rekey, recover, status, audit) is scanned
//! for its secrets (the payloads, every share's words, the quorum secret, the PINs derived from
//! it): none may appear in any command's standard output or error, the audit log, or any file
//! the vault or the configuration holds. Only the share files and the outputs asked for hold them.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

mod support;

use support::sweep::{CREDENTIALS, CUSTODIANS};
use support::{Env, stderr};

/// The user the commands run as when the test runs as root: a process's `/proc/PID` belongs
/// to root when it is not dumpable, so the difference shows only for another user.
const NOBODY: u32 = 65534;

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// `command` as a user other than root (the test's own, or nobody when the test is root, with
/// the test directory given to nobody).
fn as_unprivileged(env: &Env, mut command: Command) -> Command {
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(env.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        command.uid(NOBODY).gid(NOBODY);
    }
    command
}

/// Waits until the process has turned its core limit to 0 (its first act), then checks, while
/// it still runs (waiting for input), that it is not dumpable and may dump no core.
fn assert_hardened(what: &str, child: &mut Child) {
    let pid = child.id();
    let proc_dir = format!("/proc/{pid}");
    let started = Instant::now();
    let core_limit = loop {
        let limits = std::fs::read_to_string(format!("{proc_dir}/limits")).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .unwrap()
            .to_owned();
        let fields: Vec<&str> = line.split_whitespace().skip(4).take(2).collect();
        if fields == ["0", "0"] || started.elapsed() > Duration::from_secs(10) {
            break line;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        core_limit
            .split_whitespace()
            .skip(4)
            .take(2)
            .collect::<Vec<_>>(),
        ["0", "0"],
        "{what}: {core_limit}"
    );
    let status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap();
    let euid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(euid, 0, "{what}: the check needs a command not run as root");
    // Core limit first, then not dumpable: a moment apart.
    let started = Instant::now();
    let owner = loop {
        let owner = std::fs::metadata(format!("{proc_dir}/status"))
            .unwrap()
            .uid();
        if owner == 0 || started.elapsed() > Duration::from_secs(5) {
            break owner;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        owner, 0,
        "{what}: /proc/{pid} belongs to its user {euid}: the process is dumpable"
    );
    if child.try_wait().unwrap().is_some() {
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        panic!("{what}: it must still be waiting for its input, but it ended: {err}");
    }
}

fn make_fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo (coreutils) is needed");
}

/// Every command that handles a secret, each stopped where it waits for one: shares (stdin, a
/// share file, a contribution), a payload, a seed, a secret to split, a PIN file. The check
/// runs while the command waits, so it holds at the moment the secret arrives.
/// Waits until the process sleeps where it reads its input: opening a FIFO no one writes yet,
/// or reading a pipe (the kernel's wait channel: `wait_for_partner`, `fifo_open`, `pipe_read`,
/// `anon_pipe_read`, `pipe_wait`, by kernel version). A command that stops or blocks
/// elsewhere first (a network check, a lock) is not tested where it handles its secret.
fn assert_waiting_for_input(what: &str, child: &mut Child) {
    let wchan = format!("/proc/{}/wchan", child.id());
    let started = Instant::now();
    loop {
        let at = std::fs::read_to_string(&wchan).unwrap_or_default();
        if ["pipe", "fifo", "partner"].iter().any(|w| at.contains(w)) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("{what}: it ended ({status}) before reading its input: {err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: not waiting for its input after 10 s (wait channel {at:?})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A federation endpoint that answers every request 400: enough for `console`'s check that
/// the endpoint can be reached (any answer counts) before it asks for shares.
fn answering_endpoint() -> String {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    format!("http://127.0.0.1:{port}/federation")
}

#[test]
fn every_kind_of_command_is_undumpable_with_core_dumps_off_while_it_waits_for_input() {
    let env = Env::new();
    env.sweep_vault();
    let opened = env.ok(&[
        "ceremony",
        "open",
        "--purpose",
        "unseal",
        "--credential",
        "db-root",
        "--reason",
        "hygiene",
        "--expires",
        "30m",
        "--out",
        env.path("request.json").to_str().unwrap(),
    ]);
    let ceremony = opened.split_whitespace().nth(1).unwrap().to_owned();
    // An aws credential (made-up keys: nothing here reaches AWS) for the commands that use one.
    let keys = env.path("aws-key.json");
    std::fs::write(
        &keys,
        serde_json::json!({"AccessKey": {"UserName": "breakglass",
            "AccessKeyId": "AKIAIOSFODNN7EXAMPLE",
            "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "Status": "Active"}})
        .to_string(),
    )
    .unwrap();
    env.ok(&[
        "seal",
        "aws-prod",
        "--kind",
        "aws",
        "--from-file",
        keys.to_str().unwrap(),
        "--role-arn",
        "arn:aws:iam::123456789012:role/breakglass",
        "--region",
        "eu-west-1",
    ]);
    let newcomer = env.run_on("newcomer", &["operator", "key"]);
    assert!(newcomer.status.success(), "{}", stderr(&newcomer));
    let operator_key = String::from_utf8(newcomer.stdout)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(operator_key.len(), 64, "{operator_key}");
    let fifo = env.path("input.fifo");
    make_fifo(&fifo);
    let fifo = fifo.to_str().unwrap().to_owned();
    let path = |name: &str| env.path(name).to_str().unwrap().to_owned();
    let (request, new_shares, recovery_shares, cards, contribution, other_vault) = (
        path("request.json"),
        path("new-shares"),
        path("recovery-shares"),
        path("cards"),
        path("contribution.json"),
        path("other-vault"),
    );
    let pin_file = format!("file:{fifo}");
    let federation = answering_endpoint();
    let waiting: Vec<(&str, Vec<&str>)> = vec![
        (
            "unseal (shares on stdin)",
            vec!["unseal", "db-root", "--shares-stdin", "--output", "json"],
        ),
        ("shares combine (stdin)", vec!["shares", "combine"]),
        (
            "ceremony status (a contribution file)",
            vec!["ceremony", "status", &ceremony, "--contribution", &fifo],
        ),
        (
            "seal (the payload file)",
            vec!["seal", "waiting", "--kind", "secret", "--from-file", &fifo],
        ),
        (
            "mfa codes (the seed on stdin)",
            vec!["mfa", "codes", "--seed-stdin"],
        ),
        (
            "unseal (a share file)",
            vec![
                "unseal",
                "db-root",
                "--share-file",
                &fifo,
                "--output",
                "json",
            ],
        ),
        (
            "assume (a share file)",
            vec![
                "assume",
                "aws-prod",
                "--share-file",
                &fifo,
                "--format",
                "json",
            ],
        ),
        (
            "exec (a share file)",
            vec!["exec", "aws-prod", "--share-file", &fifo, "--", "true"],
        ),
        (
            "console (a share file)",
            vec![
                "console",
                "aws-prod",
                "--federation-endpoint",
                &federation,
                "--share-file",
                &fifo,
            ],
        ),
        (
            "rotate (a share file)",
            vec!["rotate", "aws-prod", "--share-file", &fifo],
        ),
        ("drill (a share file)", vec!["drill", "--share-file", &fifo]),
        (
            "recover (a share file)",
            vec![
                "recover",
                "db-root",
                "--share-file",
                &fifo,
                "--output",
                "json",
            ],
        ),
        (
            "rekey (a share file)",
            vec![
                "rekey",
                "--yes",
                "--custodian",
                "alice",
                "--custodian",
                "bob",
                "--threshold",
                "2",
                "--shares-dir",
                &new_shares,
                "--share-file",
                &fifo,
            ],
        ),
        (
            "hsm enroll (a share file)",
            vec![
                "hsm",
                "enroll",
                "--token",
                "backup",
                "--init-token",
                "--share-file",
                &fifo,
            ],
        ),
        (
            "recovery enable (a share file)",
            vec![
                "recovery",
                "enable",
                "--threshold",
                "4",
                "--yes",
                "--shares-dir",
                &recovery_shares,
                "--share-file",
                &fifo,
            ],
        ),
        (
            "share verify (a share file)",
            vec!["share", "verify", "--share-file", &fifo],
        ),
        (
            "share card (a share file)",
            vec!["share", "card", "--share-file", &fifo, "--out", &cards],
        ),
        (
            "ceremony contribute (a share file)",
            vec![
                "ceremony",
                "contribute",
                &request,
                "--share-file",
                &fifo,
                "--yes",
                "--out",
                &contribution,
            ],
        ),
        (
            "ceremony close (a contribution file)",
            vec!["ceremony", "close", &ceremony, "--contribution", &fifo],
        ),
        (
            "shares split (the secret on stdin)",
            vec!["shares", "split", "--group", "2/3", "--secret-stdin"],
        ),
        ("shares inspect (stdin)", vec!["shares", "inspect"]),
        (
            "seal (the payload on stdin)",
            vec!["seal", "waiting", "--kind", "secret", "--from-stdin"],
        ),
        (
            "init (a PIN file)",
            vec![
                "init",
                "--dev-softhsm",
                "--vault",
                &other_vault,
                "--custodian",
                "alice",
                "--custodian",
                "bob",
                "--threshold",
                "2",
                "--pin-source",
                &pin_file,
                "--so-pin-source",
                &pin_file,
                "--shares-dir",
                &new_shares,
            ],
        ),
        (
            "operator add (a share file)",
            vec![
                "operator",
                "add",
                "newcomer",
                "--role",
                "cloud-admin",
                "--key",
                &operator_key,
                "--share-file",
                &fifo,
            ],
        ),
    ];
    let mut ended = Vec::new();
    for (what, args) in waiting {
        let mut command = as_unprivileged(&env, env.command(&args));
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_hardened(what, &mut child);
            assert_waiting_for_input(what, &mut child);
        })) {
            Ok(()) => {}
            Err(e) => ended.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| what.to_owned()),
            ),
        }
        let _ = child.kill();
        child.wait().unwrap();
    }
    assert!(ended.is_empty(), "{}", ended.join("\n"));
}

/// Everything a secret must not be found in, and what it must be found in only.
struct Scan {
    outputs: Vec<(String, Vec<u8>)>,
}

impl Scan {
    fn run(&mut self, env: &Env, args: &[String]) -> Output {
        let output = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        self.outputs
            .push((format!("{args:?} stdout"), output.stdout.clone()));
        self.outputs
            .push((format!("{args:?} stderr"), output.stderr.clone()));
        output
    }
    fn ok(&mut self, env: &Env, args: &[String]) -> Output {
        let output = self.run(env, args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        output
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The words of a share file (its one line that is not a comment).
fn mnemonic(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap()
        .trim()
        .to_owned()
}

/// What reveals a share: its words from the fifth on (the first four are the set's identifier
/// and group data, the same on every share), five at a time.
fn share_needles(words: &str) -> Vec<Vec<u8>> {
    let words: Vec<&str> = words.split_whitespace().collect();
    words[4..]
        .windows(5)
        .map(|w| w.join(" ").into_bytes())
        .collect()
}

fn pin(q: &[u8], vault_id: &str, role: &str) -> String {
    // The derivation docs/design.md gives: HMAC-SHA256(Q, "breakglass token pin/1\n<vault
    // id>\n<role>"), the first 16 bytes in hex.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, q);
    let tag = ring::hmac::sign(
        &key,
        format!("breakglass token pin/1\n{vault_id}\n{role}").as_bytes(),
    );
    hex::encode(&tag.as_ref()[..16])
}

fn files_under(dir: &Path, into: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, into);
        } else {
            into.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
}

#[test]
fn a_full_flow_leaves_no_secret_in_outputs_logs_or_vault_files() {
    let env = Env::new();
    let mut scan = Scan {
        outputs: Vec::new(),
    };
    env.sweep_vault();
    let quorum = env.quorum_in("shares");
    let share = |s: &String| env.path(s).display().to_string();
    let with_shares = |args: &[&str], shares: &[String]| {
        let mut all = strings(args);
        for s in shares {
            all.push("--share-file".into());
            all.push(share(s));
        }
        all
    };
    let out = env.path("opened");
    let mut unseal = with_shares(&["unseal", "db-root"], &quorum);
    unseal.extend(["--output".into(), format!("file:{}", out.display())]);
    scan.ok(&env, &unseal);
    assert_eq!(std::fs::read(&out).unwrap(), CREDENTIALS[0].1);
    // A wrong share: the failure is recorded, with no secret.
    let mut wrong = with_shares(&["unseal", "api"], &quorum[..2]);
    wrong.extend([
        "--share-file".into(),
        share(&"shares/alice.recovery.share".to_owned()),
    ]);
    wrong.extend([
        "--output".into(),
        format!("file:{}", env.path("never").display()),
    ]);
    assert!(!scan.run(&env, &wrong).status.success());
    scan.ok(
        &env,
        &strings(&[
            "share",
            "verify",
            "--share-file",
            &share(&"shares/bob.share".to_owned()),
        ]),
    );
    scan.ok(&env, &with_shares(&["drill"], &quorum));
    let mut recover = with_shares(&["recover", "api"], &quorum);
    for c in &CUSTODIANS[..4] {
        recover.extend([
            "--share-file".into(),
            share(&format!("shares/{c}.recovery.share")),
        ]);
    }
    recover.extend([
        "--output".into(),
        format!("file:{}", env.path("recovered").display()),
    ]);
    scan.ok(&env, &recover);
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["list"],
        &["audit", "show", "--json"],
        &["audit", "verify"],
    ] {
        scan.ok(&env, &strings(args));
    }

    // The secrets: payloads, share words, the quorum secret and the PINs it derives.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.vault().join("vault.json")).unwrap()).unwrap();
    // vault.json is the certified manifest: the manifest proper is inside it.
    let manifest = manifest["manifest"].clone();
    let vault_id = manifest["vault_id"].as_str().unwrap().to_owned();
    let mnemonics: Vec<String> = quorum.iter().map(|s| mnemonic(&env.path(s))).collect();
    let combined = support::output_with_stdin(
        env.command(&["shares", "combine"]),
        mnemonics.join("\n").as_bytes(),
    );
    assert!(combined.status.success(), "{}", stderr(&combined));
    let q_hex = String::from_utf8(combined.stdout)
        .unwrap()
        .trim()
        .to_owned();
    let q = hex::decode(&q_hex).unwrap();
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, payload) in CREDENTIALS {
        needles.push((format!("payload {name}"), payload.to_vec()));
        needles.push((
            format!("payload {name} (base64)"),
            base64::engine::general_purpose::STANDARD
                .encode(payload)
                .into_bytes(),
        ));
    }
    needles.push(("quorum secret (hex)".into(), q_hex.clone().into_bytes()));
    needles.push((
        "quorum secret (HEX)".into(),
        q_hex.to_uppercase().into_bytes(),
    ));
    needles.push((
        "quorum secret (base64)".into(),
        base64::engine::general_purpose::STANDARD
            .encode(&q)
            .into_bytes(),
    ));
    needles.push(("quorum secret (bytes)".into(), q.clone()));
    for role in ["user", "so"] {
        needles.push((format!("{role} PIN"), pin(&q, &vault_id, role).into_bytes()));
    }
    for c in CUSTODIANS {
        for file in [
            format!("shares/{c}.share"),
            format!("shares/{c}.recovery.share"),
        ] {
            for needle in share_needles(&mnemonic(&env.path(&file))) {
                needles.push((format!("words of {file}"), needle));
            }
        }
    }

    // Where they must not be.
    let mut haystacks = scan.outputs;
    files_under(&env.vault(), &mut haystacks);
    files_under(&env.path("config"), &mut haystacks);
    assert!(
        haystacks
            .iter()
            .any(|(name, _)| name.ends_with("audit.jsonl"))
    );
    let mut found = Vec::new();
    for (what, needle) in &needles {
        for (place, bytes) in &haystacks {
            if bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                found.push(format!("{what} in {place}"));
            }
        }
    }
    assert!(found.is_empty(), "secrets found: {found:#?}");
    // The failed attempt is recorded.
    let failed = env.audit_events("unseal_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["credential"], "api");
    assert_eq!(failed[0]["details"]["failure"], "quorum");
    eprintln!(
        "hygiene scan: {} secret patterns in {} outputs and files",
        needles.len(),
        haystacks.len()
    );
    let _ = std::io::stderr().flush();
}
