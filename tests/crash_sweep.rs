//! End-to-end crash sweep: seal, seal --replace, rekey and hsm enroll are killed with SIGKILL
//! at each of their file writes in turn (the n-th write of the process writes half its bytes,
//! then the process kills itself: `BREAKGLASS_TEST_WRITE_FAULT=n:kill`, test builds only).
//! After each crash the vault opens, a torn audit tail is repaired with `audit repair`, an
//! interrupted rekey resumes, a re-run completes the operation (an enrolment written but not
//! recorded is recorded by enrolling again, as `audit verify` tells), the audit log verifies
//! with every manifest recorded, and every sealed credential opens with the quorum to its
//! payload. `hsm enroll` is also killed at its named point between `vault.json` and its entry.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Output;

mod support;

use support::sweep::{AWS_CREDENTIAL, AwsSweep, payloads};
use support::{Env, as_strs, stderr};

/// What one crash left and what it took to get going again.
#[derive(Debug, Default)]
struct Tally {
    crashes: usize,
    torn_tails_repaired: usize,
    resumed: usize,
    /// Crashes after which no audit entry recorded the manifest (`audit verify` says so) until
    /// the operation was run again.
    manifest_unrecorded: Vec<usize>,
}

/// What `audit verify` says of a manifest no entry records.
const UNRECORDED: &str = "no audit entry records it";

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
        // Killed between writing vault.json and the entry recording it (or in the entry,
        // moved aside as torn): `audit verify` says so, and `recover` must record it.
        let verify = env.run(&["audit", "verify"]);
        if stderr(&verify).contains(UNRECORDED) {
            tally.manifest_unrecorded.push(n);
        }
        // Killed after a rekey changed the vault's identity, before this machine's pin
        // followed: the outgoing quorum's succession statement moves it, nothing by hand.
        let status = env.run(&["status"]);
        assert!(
            !stderr(&status).contains("is pinned for it"),
            "{what} write {n}: the pin did not follow the rekey: {}",
            stderr(&status)
        );
        assert!(
            status.status.success() || stderr(&status).contains("rekey --resume"),
            "{what} write {n}: status: {}",
            stderr(&status)
        );
        recover(env, n, &mut tally);
        env.assert_audit_intact();
        check(env);
        // The killed writer's temporary file is gone: removed by the next writer's lock
        // (vault directory, ceremonies; in credentials, renamed in when the log recorded it),
        // or the next listing (history).
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
                // Killed after its record and before the rename, the seal is completed by the
                // next writer (the recorded envelope renamed into place): re-run as a replace.
                let staged = std::fs::read_dir(env.vault().join("credentials"))
                    .unwrap()
                    .flatten()
                    .any(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(".new.json.tmp.")
                    });
                let replace = env.vault().join("credentials/new.json").exists() || staged;
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
            |env, n, _| recover_enroll(env, &enroll_args(env, false), &format!("write {n}")),
            |env| {
                let status = env.status();
                assert_eq!(status["tokens"].as_array().unwrap().len(), 2, "{status}");
                env.assert_every_credential_opens(&quorum, &payloads());
            },
        ),
    );
    // hsm enroll killed after writing vault.json and before one byte of its entry (the named
    // fault point; the write sweep above always writes half the entry): the same recovery.
    let baseline = env.path("baseline-enroll-manifest");
    env.save_vault(&baseline);
    let enrolments = env.audit_events("hsm_enrol").len(); // init's, of the first token
    let args = enroll_args(&env, true);
    let killed = env.run_with(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("BREAKGLASS_TEST_FAULT", "enroll-after-manifest:kill")],
    );
    assert_eq!(killed.status.signal(), Some(9), "{}", stderr(&killed));
    let verify = env.run(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(
        stderr(&verify).contains(UNRECORDED) && stderr(&verify).contains("hsm enroll"),
        "the operator is told that the enrolment is unrecorded and what records it: {}",
        stderr(&verify)
    );
    assert_eq!(env.audit_events("hsm_enrol").len(), enrolments);
    recover_enroll(&env, &enroll_args(&env, false), "enroll-after-manifest");
    let recorded = env.audit_events("hsm_enrol");
    assert_eq!(recorded.len(), enrolments + 1, "{recorded:?}");
    let late = &recorded[enrolments];
    assert_eq!(late["details"]["token"], "backup", "{late}");
    assert!(late["details"]["recorded_late"].is_string(), "{late}");
    env.assert_audit_intact();
    assert_eq!(env.status()["tokens"].as_array().unwrap().len(), 2);
    env.assert_every_credential_opens(&quorum, &payloads());
    env.restore_vault(&baseline);

    eprintln!("crash sweep: {report:#?}");
    for (what, tally) in &report {
        assert!(tally.crashes > 0, "{what}: no crash point reached");
        if *what == "hsm enroll" {
            // The crash in the entry's own write leaves it torn; moved aside, the enrolment is
            // unrecorded until enrolling again records it.
            assert!(!tally.manifest_unrecorded.is_empty(), "{what}: {tally:?}");
        } else {
            assert!(tally.manifest_unrecorded.is_empty(), "{what}: {tally:?}");
        }
    }
}

/// After a crashed `hsm enroll`: enrolling the token again, as the crashed run left it (it
/// initialised the token before its first vault write), does the rest, or records the entry
/// of an enrolment written but not recorded (and says so), or finds it done.
fn recover_enroll(env: &Env, args: &[String], after: &str) {
    let tokens = env.status()["tokens"].as_array().unwrap().len();
    let unrecorded = stderr(&env.run(&["audit", "verify"])).contains(UNRECORDED);
    if tokens < 2 || unrecorded {
        let output = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            output.status.success(),
            "hsm enroll after {after}: {}",
            stderr(&output)
        );
        let said = String::from_utf8_lossy(&output.stdout).into_owned();
        assert_eq!(
            said.contains("recorded now"),
            unrecorded,
            "after {after}: {said}"
        );
    }
}

/// After a crashed `rotate` that started from the sealed key `old`: nothing is lost (the sealed
/// key, old or new, is in IAM and works; every credential opens), and running `rotate` again
/// completes with exactly one key, the sealed one. What it tells the operator is checked: the
/// id of a key a crash left unsealed (deleted), or the previous key retired. Returns the keys
/// the crash left that nothing sealed.
fn after_rotate_crash(lab: &AwsSweep, old: &str, quorum: &[String], after: &str) -> Vec<String> {
    let (sealed, drilled) = lab.assert_sealed_key_works_drilled(quorum);
    let keys = lab.iam_keys();
    let orphans: Vec<String> = keys
        .iter()
        .filter(|k| **k != sealed && *k != old)
        .cloned()
        .collect();
    assert!(orphans.len() <= 1, "after {after}: {keys:?}");
    // Before anyone runs rotate again, a drill names every key besides the sealed one.
    for other in keys.iter().filter(|k| **k != sealed) {
        assert!(
            drilled.contains(&format!("IAM also has key {other}")),
            "after {after}, drill --aws does not name {other}: {drilled}"
        );
    }
    let args = lab
        .env
        .with_share_files(&["rotate", AWS_CREDENTIAL], quorum);
    let rerun = lab.env.run(&as_strs(&args));
    let told = stderr(&rerun);
    assert!(rerun.status.success(), "rotate after {after}: {told}");
    for orphan in &orphans {
        assert!(
            told.contains(&format!("deleting {orphan}")) && told.contains("never sealed"),
            "rotate after {after} does not name the unsealed key {orphan} it deletes: {told}"
        );
    }
    if sealed != old && keys.iter().any(|k| k == old) {
        assert!(
            told.contains(&format!("retired {old}")),
            "after {after}: {told}"
        );
    }
    assert_eq!(lab.iam_keys(), vec![lab.sealed_key_id()], "after {after}");
    orphans
}

#[test]
fn a_crash_at_any_write_of_rotate_loses_no_key_and_a_rerun_deletes_what_it_left() {
    let lab = AwsSweep::new();
    let env = &lab.env;
    let quorum = env.quorum_in("shares");
    let old = std::cell::RefCell::new(String::new());
    let orphans_found = std::cell::Cell::new(0);
    let rotate_args = env.with_share_files(&["rotate", AWS_CREDENTIAL], &quorum);
    let tally = sweep_kills(
        env,
        "rotate",
        |env, fault| {
            *old.borrow_mut() = lab.fresh_key();
            env.run_with(&as_strs(&rotate_args), fault)
        },
        |_, n, _| {
            let orphans = after_rotate_crash(&lab, &old.borrow(), &quorum, &format!("write {n}"));
            orphans_found.set(orphans_found.get() + orphans.len());
        },
        // A rotation that completed: one key, the sealed one, and it works; the other
        // credentials open to their payloads.
        |env| {
            let sealed = lab.assert_sealed_key_works(&quorum);
            assert_eq!(lab.iam_keys(), vec![sealed]);
            env.assert_every_credential_opens(&quorum, &payloads());
        },
    );
    eprintln!(
        "crash sweep (rotate): {tally:#?}; {} keys left unsealed by a crash, named and deleted by the next run",
        orphans_found.get()
    );
    assert!(tally.crashes > 0, "no crash point reached");
    assert!(tally.manifest_unrecorded.is_empty(), "{tally:?}");
    // The seal's own writes come after CreateAccessKey: a crash there leaves a key nobody
    // sealed, which the next run must name and delete.
    assert!(
        orphans_found.get() > 0,
        "no crash left an unsealed key: {tally:?}"
    );
}

#[test]
fn a_crash_at_each_aws_step_of_rotate_or_any_write_of_assume_loses_no_key() {
    let lab = AwsSweep::new();
    let env = &lab.env;
    let quorum = env.quorum_in("shares");
    let rotate_args = env.with_share_files(&["rotate", AWS_CREDENTIAL], &quorum);
    // The crashes that are not file writes: between CreateAccessKey and the seal (the new
    // key's secret is lost), between the seal and retiring the old key, and after retiring it
    // before the entry that records the rotation.
    for (point, what) in [
        ("rotate-after-create", "a key nobody sealed"),
        ("rotate-after-seal", "the previous key still active"),
        ("rotate-after-retire", "no rotate entry"),
    ] {
        let before = lab.fresh_key();
        let killed = env.run_with(
            &as_strs(&rotate_args),
            &[("BREAKGLASS_TEST_FAULT", &format!("{point}:kill"))],
        );
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "{point}: {}",
            stderr(&killed)
        );
        env.assert_audit_intact();
        let keys = lab.iam_keys();
        let sealed = lab.sealed_key_id();
        match point {
            "rotate-after-create" => {
                assert!(sealed == before && keys.len() == 2, "{what}: {keys:?}")
            }
            "rotate-after-seal" => assert!(
                sealed != before && keys.contains(&before),
                "{what}: {keys:?}"
            ),
            _ => assert_eq!(keys, vec![sealed.clone()], "{what}"),
        }
        let orphans = after_rotate_crash(&lab, &before, &quorum, point);
        assert_eq!(
            orphans.len(),
            usize::from(point == "rotate-after-create"),
            "{point}"
        );
        env.assert_audit_intact();
    }

    // assume: a crash releases no session; the sealed key is untouched and assume works again.
    let tally = sweep_kills(
        env,
        "assume",
        |_, fault| lab.assume(&quorum, fault),
        |_, n, _| {
            let output = lab.assume(&quorum, &[]);
            assert!(
                output.status.success(),
                "assume after write {n}: {}",
                stderr(&output)
            );
            let session: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            assert!(session["SessionToken"].is_string(), "{session}");
        },
        |env| {
            lab.assert_sealed_key_works(&quorum);
            env.assert_every_credential_opens(&quorum, &payloads());
        },
    );
    eprintln!("crash sweep (rotate: 3 AWS steps; assume): {tally:#?}");
    assert!(tally.crashes > 0, "assume: no crash point reached");
    assert!(tally.manifest_unrecorded.is_empty(), "{tally:?}");
}
