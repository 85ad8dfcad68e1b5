//! End-to-end: writers at the same time. Seals and unseals run as concurrent processes are
//! serialised by the writers' lock (`flock` on `vault.lock`): no audit line is lost or
//! interleaved, every credential opens. A writer that finds the lock held longer than
//! `BREAKGLASS_LOCK_WAIT` exits 7 naming the holder and how long it waited.

use std::fs::OpenOptions;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod support;

use support::sweep::payloads;
use support::{Env, stderr};

#[test]
fn concurrent_seals_and_unseals_lose_no_line_and_interleave_nothing() {
    let env = Env::new();
    env.sweep_vault();
    let quorum = env.quorum_in("shares");
    let before = env.audit_events("seal").len();
    let names: Vec<String> = (0..6).map(|i| format!("concurrent-{i}")).collect();
    let mut children = Vec::new();
    for name in &names {
        let file = env.path(&format!("{name}.in"));
        let mut command = env.seal_command(name, format!("payload of {name}").as_bytes(), &file);
        children.push((
            name.clone(),
            command.stderr(Stdio::piped()).spawn().unwrap(),
        ));
    }
    for round in 0..2 {
        let out = env.path(&format!("opened-{round}"));
        let mut args = env.with_share_files(&["unseal", "db-root"], &quorum);
        args.extend(["--output".into(), format!("file:{}", out.display())]);
        let mut command = env.command(&args.iter().map(String::as_str).collect::<Vec<_>>());
        children.push((
            format!("unseal {round}"),
            command.stderr(Stdio::piped()).spawn().unwrap(),
        ));
    }
    for (what, child) in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{what}: {}", stderr(&output));
    }
    assert_eq!(env.audit_events("seal").len(), before + names.len());
    assert_eq!(env.audit_events("unseal").len(), 2);
    env.assert_audit_intact();
    let log = std::fs::read_to_string(env.vault().join("audit.jsonl")).unwrap();
    for (i, line) in log.lines().enumerate() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(entry["seq"], i + 1, "{line}");
    }
    let mut all = payloads();
    for name in &names {
        all.insert(name.clone(), format!("payload of {name}").into_bytes());
    }
    env.assert_every_credential_opens(&quorum, &all);
}

#[test]
fn a_writer_kept_waiting_past_the_bound_exits_7_naming_the_holder() {
    let env = Env::new();
    env.sweep_vault();
    // Another process (this test) holds the writers' lock, as a long seal would.
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .open(env.vault().join("vault.lock"))
        .unwrap();
    lock.lock().unwrap();
    lock.set_len(0).unwrap();
    lock.write_all(b"pid 4242, breakglass rekey").unwrap();

    let started = Instant::now();
    let output = env.seal_payload_with("waiting", b"x", false, &[("BREAKGLASS_LOCK_WAIT", "1")]);
    let waited = started.elapsed();
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("in use")
            && err.contains("pid 4242, breakglass rekey")
            && err.contains("waited 1 s")
            && err.contains("BREAKGLASS_LOCK_WAIT"),
        "{err}"
    );
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert!(!env.vault().join("credentials/waiting.json").exists());

    // A writer within its bound goes on as soon as the lock is let go.
    let child = env
        .seal_command("later", b"sealed after the wait", &env.path("later.in"))
        .env("BREAKGLASS_LOCK_WAIT", "30")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    lock.unlock().unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let mut all = payloads();
    all.insert("later".into(), b"sealed after the wait".to_vec());
    env.assert_every_credential_opens(&env.quorum_in("shares"), &all);
    env.assert_audit_intact();
}
