//! End-to-end crash sweep: seal, seal --replace, rekey and hsm enroll are killed with SIGKILL
//! at each of their file writes in turn (the n-th write of the process writes half its bytes,
//! then the process kills itself: `BREAKGLASS_TEST_WRITE_FAULT=n:kill`, test builds only).
//! After each crash the vault opens, a torn audit tail is repaired with `audit repair`, an
//! interrupted rekey resumes, a re-run completes the operation, the audit log verifies, and
//! every sealed credential opens with the quorum to its payload.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Output;

mod support;

use support::sweep::payloads;
use support::{Env, stderr};

/// What one crash left and what it took to get going again.
#[derive(Debug, Default)]
struct Tally {
    crashes: usize,
    torn_tails_repaired: usize,
    resumed: usize,
    manifest_unrecorded: Vec<usize>,
}

/// Kills `run` at its n-th file write for n = 1, 2, ... until it completes unkilled; after each
/// crash, repairs a torn audit tail if there is one and calls `recover` (which finishes the
/// operation as a person would: resume or re-run) and then `check`.
fn sweep_kills(
    env: &Env,
    what: &str,
    run: impl Fn(&Env, &[(&str, &str)]) -> Output,
    recover: impl Fn(&Env, usize, &mut Tally),
    check: impl Fn(&Env),
) -> Tally {
    let baseline = env.path(&format!("baseline-{what}"));
    env.save_vault(&baseline);
    let mut tally = Tally::default();
    for n in 1.. {
        env.restore_vault(&baseline);
        let spec = format!("{n}:kill");
        let output = run(env, &[("BREAKGLASS_TEST_WRITE_FAULT", &spec)]);
        if output.status.success() {
            assert!(n > 1, "{what}: no file write was reached");
            check(env);
            env.restore_vault(&baseline);
            return tally;
        }
        assert_eq!(
            output.status.signal(),
            Some(9),
            "{what} write {n}: not killed: {}",
            stderr(&output)
        );
        tally.crashes += 1;
        // The log reads at once, whatever the crash left; the vault opens, or says that an
        // interrupted rekey must be resumed first.
        let verify = env.run(&["audit", "verify"]);
        assert!(
            verify.status.success(),
            "{what} write {n}: audit verify: {}",
            stderr(&verify)
        );
        if stderr(&verify).contains("cut short") {
            let repaired = env.run(&["audit", "repair", "--yes"]);
            assert!(repaired.status.success(), "{}", stderr(&repaired));
            tally.torn_tails_repaired += 1;
        }
        // Killed after a rekey changed the vault's identity, before this machine's pin
        // followed: the outgoing quorum's succession statement moves it, nothing by hand.
        let status = env.run(&["status"]);
        assert!(
            !stderr(&status).contains("is pinned for it"),
            "{what} write {n}: the pin did not follow the rekey: {}",
            stderr(&status)
        );
        if stderr(&status).contains("not the manifest the audit log recorded") {
            // Killed between writing vault.json and the entry that records it: the vault
            // refuses the unrecorded manifest (exit 5) rather than trust it. A known gap of
            // hsm enroll (docs/threat-model.md): counted, and the sweep goes on.
            assert_eq!(status.status.code(), Some(5), "{}", stderr(&status));
            tally.manifest_unrecorded.push(n);
            continue;
        }
        assert!(
            status.status.success() || stderr(&status).contains("rekey --resume"),
            "{what} write {n}: status: {}",
            stderr(&status)
        );
        recover(env, n, &mut tally);
        env.assert_audit_intact();
        check(env);
        // The killed writer's temporary file is gone: removed by the next writer's lock
        // (vault directory, ceremonies) or the next listing (credentials, history).
        env.ok(&["list"]);
        env.assert_no_temporary_files();
        assert!(n < 80, "{what}: still crashing after {n} writes");
    }
    unreachable!()
}

fn rerun_until_ok(env: &Env, args: &[String], what: &str) {
    let output = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{what}: {}", stderr(&output));
}

#[test]
fn a_crash_at_any_write_of_seal_rekey_or_enroll_loses_nothing_and_completes_on_rerun() {
    let env = Env::new();
    env.sweep_vault();
    let quorum = env.quorum_in("shares");
    let mut report = BTreeMap::new();

    // seal of a new credential: afterwards it is absent or opens whole; re-running completes.
    let mut with_new = payloads();
    with_new.insert("new".into(), b"new secret".to_vec());
    report.insert(
        "seal",
        sweep_kills(
            &env,
            "seal",
            |env, fault| env.seal_payload_with("new", b"new secret", false, fault),
            |env, _, _| {
                let replace = env.vault().join("credentials/new.json").exists();
                let output = env.seal_payload("new", b"new secret", replace);
                assert!(output.status.success(), "{}", stderr(&output));
            },
            |env| env.assert_every_credential_opens(&quorum, &with_new),
        ),
    );

    // seal --replace: the old or the new version, never neither; the history keeps the old.
    let mut replaced = payloads();
    replaced.insert("db-root".into(), b"replaced".to_vec());
    report.insert(
        "seal --replace",
        sweep_kills(
            &env,
            "seal-replace",
            |env, fault| env.seal_payload_with("db-root", b"replaced", true, fault),
            |env, _, _| {
                let output = env.seal_payload("db-root", b"replaced", true);
                assert!(output.status.success(), "{}", stderr(&output));
            },
            |env| env.assert_every_credential_opens(&quorum, &replaced),
        ),
    );

    // rekey: refused whole (re-run) or resumed from its journal with old and new shares.
    let rekey_args = |env: &Env| {
        env.with_share_files(
            &[
                "rekey",
                "--yes",
                "--shares-dir",
                env.path("rekeyed").to_str().unwrap(),
            ],
            &quorum,
        )
    };
    report.insert(
        "rekey",
        sweep_kills(
            &env,
            "rekey",
            |env, fault| {
                let _ = std::fs::remove_dir_all(env.path("rekeyed"));
                let args = rekey_args(env);
                env.run_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), fault)
            },
            |env, n, tally| {
                if env.vault().join("rekey.json").exists() {
                    let mut both = quorum.clone();
                    both.extend(env.quorum_in("rekeyed"));
                    rerun_until_ok(
                        env,
                        &env.with_share_files(&["rekey", "--resume"], &both),
                        &format!("rekey --resume after write {n}"),
                    );
                    tally.resumed += 1;
                } else if env.audit_events("rekey").is_empty() {
                    // Killed before its journal: nothing changed, the new shares are void.
                    let _ = std::fs::remove_dir_all(env.path("rekeyed"));
                    rerun_until_ok(env, &rekey_args(env), &format!("rekey after write {n}"));
                }
            },
            |env| env.assert_every_credential_opens(&env.quorum_in("rekeyed"), &payloads()),
        ),
    );

    // hsm enroll of a backup token: re-running completes; every credential opens with it.
    let enroll_args = |env: &Env, init: bool| {
        let mut args = vec!["hsm", "enroll", "--token", "backup"];
        if init {
            args.push("--init-token");
        }
        env.with_share_files(&args, &quorum)
    };
    report.insert(
        "hsm enroll",
        sweep_kills(
            &env,
            "enroll",
            |env, fault| {
                let args = enroll_args(env, true);
                env.run_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), fault)
            },
            |env, n, _| {
                // The crashed run initialised the token before its first vault write:
                // enrolling it again, as it is, does the rest (or finds it done).
                let status = env.status();
                if status["tokens"].as_array().unwrap().len() < 2 {
                    rerun_until_ok(
                        env,
                        &enroll_args(env, false),
                        &format!("hsm enroll after write {n}"),
                    );
                }
            },
            |env| {
                let status = env.status();
                assert_eq!(status["tokens"].as_array().unwrap().len(), 2, "{status}");
                env.assert_every_credential_opens(&quorum, &payloads());
            },
        ),
    );
    eprintln!("crash sweep: {report:#?}");
    for (what, tally) in &report {
        assert!(tally.crashes > 0, "{what}: no crash point reached");
        if *what != "hsm enroll" {
            assert!(tally.manifest_unrecorded.is_empty(), "{what}: {tally:?}");
        }
    }
}
