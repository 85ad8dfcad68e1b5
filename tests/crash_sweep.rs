//! End-to-end crash sweep: seal, seal --replace, rekey and hsm enroll are killed with SIGKILL
//! at each of their file writes in turn (the n-th write of the process writes half its bytes,
//! then the process kills itself: `BREAKGLASS_TEST_WRITE_FAULT=n:kill`, test builds only).
//! After each crash the vault opens, a torn audit tail is repaired with `audit repair`, an
//! interrupted rekey resumes, a re-run completes the operation (an enrolment written but not
//! recorded is recorded by enrolling again, as `audit verify` tells), the audit log verifies
//! with every manifest recorded, and every sealed credential opens with the quorum to its
//! payload. `hsm enroll`, `recovery enable` and `operator add|remove` are also killed at their
//! named points between `vault.json` and their entry, and running them again records it.
//! `rotate` (with and without `--mfa`) and `assume` are killed at each file write and at the
//! named points between their AWS steps, against a local AWS endpoint: the sealed key and MFA
//! device still work, and running `rotate` again deletes what the crash left unsealed.
//! `init` is killed (and, separately, given a full disk) at each of its file writes: what it
//! leaves is nothing, a complete vault, or a directory every command refuses and whose re-run
//! names exactly what to remove, after which `init` completes.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Output;

mod support;

use support::sweep::{AWS_CREDENTIAL, AwsSweep, CREDENTIALS, CUSTODIANS, payloads};
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
                let staged = std::fs::read_dir(env.vault().join("staging"))
                    .into_iter()
                    .flatten()
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

/// After a crashed `rotate` that started from the sealed key `old` (and, for `rotate --mfa`,
/// the sealed MFA device `old_device`): nothing is lost (the sealed key, old or new, is in IAM
/// and works; the sealed device, old or new, is one of the user's; every credential opens),
/// and running `rotate` (`--mfa`) again completes with exactly one key, the sealed one, and
/// one device, the sealed one. What it tells the operator is checked: the id of a key or the
/// serial of a device a crash left unsealed (deleted), or the previous key or device retired.
/// Returns the keys and the devices the crash left that nothing sealed.
fn after_rotate_crash(
    lab: &AwsSweep,
    old: &str,
    old_device: Option<&str>,
    quorum: &[String],
    after: &str,
) -> (Vec<String>, Vec<String>) {
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
    let mut rotate = vec!["rotate", AWS_CREDENTIAL];
    let (devices, sealed_device, orphan_devices) = match old_device {
        Some(old_device) => {
            rotate.push("--mfa");
            let sealed_device = lab.sealed_mfa_serial().expect("no MFA device sealed: lost");
            let devices = lab.mfa_devices();
            assert!(
                devices.contains(&sealed_device),
                "after {after}: the sealed MFA device {sealed_device} is not in IAM ({devices:?}): lost"
            );
            assert!(
                drilled.contains(&format!("MFA device {sealed_device} is breakglass's")),
                "after {after}: {drilled}"
            );
            let orphans: Vec<String> = devices
                .iter()
                .filter(|d| **d != sealed_device && *d != old_device)
                .cloned()
                .collect();
            assert!(orphans.len() <= 1, "after {after}: {devices:?}");
            for other in devices.iter().filter(|d| **d != sealed_device) {
                assert!(
                    drilled.contains(&format!("IAM also has MFA device {other}")),
                    "after {after}, drill --aws does not name the device {other}: {drilled}"
                );
            }
            (devices, Some(sealed_device), orphans)
        }
        None => (Vec::new(), None, Vec::new()),
    };
    let args = lab.env.with_share_files(&rotate, quorum);
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
    if let (Some(old_device), Some(sealed_device)) = (old_device, &sealed_device) {
        for orphan in &orphan_devices {
            assert!(
                told.contains(&format!("deleting MFA device {orphan}"))
                    && told.contains("never sealed"),
                "rotate --mfa after {after} does not name the unsealed device {orphan} it deletes: {told}"
            );
        }
        if sealed_device != old_device && devices.iter().any(|d| d == old_device) {
            assert!(
                told.contains(&format!("retired MFA device {old_device}")),
                "after {after}: {told}"
            );
        }
        let sealed_now = lab.sealed_mfa_serial().unwrap();
        assert_ne!(&sealed_now, sealed_device, "after {after}: not re-seeded");
        assert_eq!(lab.mfa_devices(), vec![sealed_now], "after {after}");
    }
    (orphans, orphan_devices)
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
            let (orphans, _) =
                after_rotate_crash(&lab, &old.borrow(), None, &quorum, &format!("write {n}"));
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
        let (orphans, _) = after_rotate_crash(&lab, &before, None, &quorum, point);
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

/// A `rotate --mfa` that completed: one key and one MFA device, the sealed ones; the key works,
/// the sealed seed makes codes for a device of the user's, and `assume` sends its code; the
/// other credentials open to their payloads.
fn rotated_with_mfa(lab: &AwsSweep, quorum: &[String]) {
    let (sealed, drilled) = lab.assert_sealed_key_works_drilled(quorum);
    assert_eq!(lab.iam_keys(), vec![sealed]);
    let device = lab.sealed_mfa_serial().expect("an MFA device sealed");
    assert_eq!(lab.mfa_devices(), vec![device.clone()]);
    assert!(
        drilled.contains(&format!("MFA seed for {device} makes codes"))
            && drilled.contains(&format!("MFA device {device} is breakglass's")),
        "{drilled}"
    );
    let assumed = lab.assume(quorum, &[]);
    assert!(assumed.status.success(), "{}", stderr(&assumed));
    let last = lab.env.audit_events("assume_role").pop().unwrap();
    assert!(last["details"]["mfa_step"].is_string(), "{last}");
}

#[test]
fn a_crash_at_any_write_of_rotate_mfa_loses_no_key_or_device_and_a_rerun_deletes_what_it_left() {
    let lab = AwsSweep::new();
    let env = &lab.env;
    let quorum = env.quorum_in("shares");
    let before = std::cell::RefCell::new((String::new(), String::new()));
    let (orphan_keys, orphan_devices) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let rotate_args = env.with_share_files(&["rotate", AWS_CREDENTIAL, "--mfa"], &quorum);
    let tally = sweep_kills(
        env,
        "rotate-mfa",
        |env, fault| {
            *before.borrow_mut() = lab.fresh_key_with_mfa();
            env.run_with(&as_strs(&rotate_args), fault)
        },
        |_, n, _| {
            let (key, device) = before.borrow().clone();
            let (keys, devices) =
                after_rotate_crash(&lab, &key, Some(&device), &quorum, &format!("write {n}"));
            orphan_keys.set(orphan_keys.get() + keys.len());
            orphan_devices.set(orphan_devices.get() + devices.len());
        },
        |_| rotated_with_mfa(&lab, &quorum),
    );
    eprintln!(
        "crash sweep (rotate --mfa): {tally:#?}; left unsealed by a crash, named and deleted by \
         the next run: {} keys, {} MFA devices",
        orphan_keys.get(),
        orphan_devices.get()
    );
    assert!(tally.crashes > 0, "no crash point reached");
    assert!(tally.manifest_unrecorded.is_empty(), "{tally:?}");
    // The key's seal comes after CreateAccessKey, the seed's after CreateVirtualMFADevice: a
    // crash in either leaves what nobody sealed, which the next run must name and delete.
    assert!(orphan_keys.get() > 0, "no crash left an unsealed key");
    assert!(
        orphan_devices.get() > 0,
        "no crash left an unsealed MFA device"
    );
}

#[test]
fn a_crash_at_each_aws_step_of_rotate_mfa_loses_no_key_or_device() {
    let lab = AwsSweep::new();
    let env = &lab.env;
    let quorum = env.quorum_in("shares");
    let rotate_args = env.with_share_files(&["rotate", AWS_CREDENTIAL, "--mfa"], &quorum);
    // The key's three steps as for `rotate`, then the device's: after the new device is made
    // and enabled, before its seed is sealed (a device nobody holds); after the seal, before
    // the old device is retired.
    for point in [
        "rotate-after-create",
        "rotate-after-seal",
        "rotate-after-retire",
        "rotate-mfa-after-create",
        "rotate-mfa-after-seal",
    ] {
        let (key, device) = lab.fresh_key_with_mfa();
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
        let devices = lab.mfa_devices();
        let sealed_device = lab.sealed_mfa_serial().unwrap();
        match point {
            "rotate-mfa-after-create" => assert!(
                sealed_device == device && devices.len() == 2,
                "a device nobody sealed: {devices:?}"
            ),
            "rotate-mfa-after-seal" => assert!(
                sealed_device != device && devices.contains(&device),
                "the previous device still enabled: {devices:?}"
            ),
            _ => assert_eq!(devices, vec![device.clone()], "{point}"),
        }
        let (keys, devices) = after_rotate_crash(&lab, &key, Some(&device), &quorum, point);
        assert_eq!(
            keys.len(),
            usize::from(point == "rotate-after-create"),
            "{point}"
        );
        assert_eq!(
            devices.len(),
            usize::from(point == "rotate-mfa-after-create"),
            "{point}"
        );
        env.assert_audit_intact();
        rotated_with_mfa(&lab, &quorum);
    }
}

/// Runs `args` killed at the fault point `point` (after `vault.json` is written, before the
/// entry recording it): `audit verify` names the unrecorded manifest and `names` (the command
/// that records it), no `event` entry was added; running `args` again records it, once, marked
/// `recorded_late`, and says so; the log then verifies with every manifest recorded and every
/// credential opens with the quorum. Returns the entry recorded late.
fn killed_before_entry_then_rerun(
    env: &Env,
    args: &[String],
    point: &str,
    event: &str,
    names: &str,
) -> serde_json::Value {
    let recorded = env.audit_events(event).len();
    let version = env.status()["manifest_version"].clone();
    let killed = env.run_with(
        &as_strs(args),
        &[("BREAKGLASS_TEST_FAULT", &format!("{point}:kill"))],
    );
    assert_eq!(
        killed.status.signal(),
        Some(9),
        "{point}: {}",
        stderr(&killed)
    );
    assert_ne!(
        env.status()["manifest_version"],
        version,
        "{point}: vault.json not written"
    );
    let verify = env.run(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(
        stderr(&verify).contains(UNRECORDED) && stderr(&verify).contains(names),
        "{point}: the operator is told that the change is unrecorded and what records it: {}",
        stderr(&verify)
    );
    assert_eq!(env.audit_events(event).len(), recorded, "{point}");
    let rerun = env.run(&as_strs(args));
    assert!(
        rerun.status.success(),
        "{point}, run again: {}",
        stderr(&rerun)
    );
    let said = String::from_utf8_lossy(&rerun.stdout);
    assert!(said.contains("recorded now"), "{point}: {said}");
    let entries = env.audit_events(event);
    assert_eq!(entries.len(), recorded + 1, "{point}: {entries:?}");
    let late = entries.last().unwrap().clone();
    assert!(late["details"]["recorded_late"].is_string(), "{late}");
    assert_eq!(
        late["details"]["manifest_version"],
        env.status()["manifest_version"].to_string(),
        "{late}"
    );
    env.assert_audit_intact();
    env.assert_every_credential_opens(&env.quorum_in("shares"), &payloads());
    // Recorded: running it once more is refused as a change made already, and records nothing.
    let again = env.run(&as_strs(args));
    assert!(
        !again.status.success(),
        "{point}: {}",
        String::from_utf8_lossy(&again.stdout)
    );
    assert_eq!(env.audit_events(event).len(), recorded + 1, "{point}");
    late
}

#[test]
fn a_recovery_enable_or_operator_change_killed_before_its_entry_is_recorded_by_running_it_again() {
    let env = Env::new();
    env.init_vault(&CUSTODIANS, 3, &[]);
    for (name, payload) in CREDENTIALS {
        let output = env.seal_payload(name, payload, false);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let quorum = env.quorum_in("shares");

    // recovery enable: the recovery shares the killed run handed out are the set in force.
    let recovery_dir = env.path("recovery");
    let enable = env.with_share_files(
        &[
            "recovery",
            "enable",
            "--threshold",
            "4",
            "--yes",
            "--shares-dir",
            recovery_dir.to_str().unwrap(),
        ],
        &quorum,
    );
    let late = killed_before_entry_then_rerun(
        &env,
        &enable,
        "recovery-after-manifest",
        "recovery_enable",
        "`breakglass recovery enable`",
    );
    assert!(late["details"]["recovery"].is_string(), "{late}");
    let mut both = quorum.clone();
    both.extend(["alice", "bob", "carol", "dave"].map(|c| format!("recovery/{c}.recovery.share")));
    let drill = env.with_share_files(&["drill", "--recovery", "--json"], &both);
    let report: serde_json::Value = serde_json::from_str(&env.ok(&as_strs(&drill))).unwrap();
    for (name, _) in CREDENTIALS {
        assert_eq!(report["credentials"][name], "opened", "{report}");
    }

    // operator add, then remove: the operator list in force is the one recorded late.
    let key = env.run_on("bob-machine", &["operator", "key"]);
    assert!(key.status.success(), "{}", stderr(&key));
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    let add = env.with_share_files(
        &[
            "operator",
            "add",
            "bob",
            "--role",
            "cloud-admin",
            "--key",
            &key,
        ],
        &quorum,
    );
    let late = killed_before_entry_then_rerun(
        &env,
        &add,
        "operator-after-manifest",
        "operator_add",
        "`breakglass operator add`",
    );
    assert_eq!(late["details"]["operator"], "bob", "{late}");
    assert_eq!(late["details"]["public_key"], key.as_str(), "{late}");
    let remove = env.with_share_files(&["operator", "remove", "bob"], &quorum);
    let late = killed_before_entry_then_rerun(
        &env,
        &remove,
        "operator-after-manifest",
        "operator_remove",
        "`operator remove`",
    );
    assert_eq!(late["details"]["operator"], "bob", "{late}");
    let operators: serde_json::Value =
        serde_json::from_str(&env.ok(&["operator", "list", "--json"])).unwrap();
    assert!(!operators.to_string().contains("\"bob\""), "{operators}");
}

#[test]
fn a_crash_at_any_write_of_recovery_enable_or_operator_add_loses_nothing_and_completes_on_rerun() {
    let env = Env::new();
    env.init_vault(&CUSTODIANS, 3, &[]);
    for (name, payload) in CREDENTIALS {
        let output = env.seal_payload(name, payload, false);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let quorum = env.quorum_in("shares");
    let mut report = BTreeMap::new();

    // recovery enable: afterwards the recovery shares open every credential with the quorum.
    let enable = env.with_share_files(
        &[
            "recovery",
            "enable",
            "--threshold",
            "4",
            "--yes",
            "--shares-dir",
            env.path("recovery").to_str().unwrap(),
        ],
        &quorum,
    );
    let mut with_recovery = quorum.clone();
    with_recovery
        .extend(["alice", "bob", "carol", "dave"].map(|c| format!("recovery/{c}.recovery.share")));
    report.insert(
        "recovery enable",
        sweep_kills(
            &env,
            "recovery-enable",
            |env, fault| {
                let _ = std::fs::remove_dir_all(env.path("recovery"));
                env.run_with(&as_strs(&enable), fault)
            },
            |env, n, _| {
                if env.status()["recovery"].is_null() {
                    // Killed before vault.json: the shares handed out are void.
                    let _ = std::fs::remove_dir_all(env.path("recovery"));
                    rerun_until_ok(env, &enable, &format!("recovery enable after write {n}"));
                } else if stderr(&env.run(&["audit", "verify"])).contains(UNRECORDED) {
                    let rerun = env.run(&as_strs(&enable));
                    assert!(
                        rerun.status.success(),
                        "after write {n}: {}",
                        stderr(&rerun)
                    );
                    let said = String::from_utf8_lossy(&rerun.stdout);
                    assert!(said.contains("recorded now"), "after write {n}: {said}");
                }
            },
            |env| {
                env.assert_every_credential_opens(&quorum, &payloads());
                // One token stanza and one for the recovery key in force: none left for the
                // key of a killed run, whose shares (written first) are void but would still
                // open what it had rewrapped.
                for (name, _) in CREDENTIALS {
                    let file = env.vault().join(format!("credentials/{name}.json"));
                    let envelope: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
                    let stanzas = envelope["hsm_stanzas"].as_array().unwrap().len();
                    assert_eq!(stanzas, 2, "{name}: {envelope}");
                }
                let drill =
                    env.with_share_files(&["drill", "--recovery", "--json"], &with_recovery);
                let report: serde_json::Value =
                    serde_json::from_str(&env.ok(&as_strs(&drill))).unwrap();
                for (name, _) in CREDENTIALS {
                    assert_eq!(report["credentials"][name], "opened", "{report}");
                }
            },
        ),
    );

    // operator add: afterwards bob is an operator, recorded.
    let key = env.run_on("bob-machine", &["operator", "key"]);
    assert!(key.status.success(), "{}", stderr(&key));
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    let add = env.with_share_files(
        &[
            "operator",
            "add",
            "bob",
            "--role",
            "cloud-admin",
            "--key",
            &key,
        ],
        &quorum,
    );
    let has_bob = |env: &Env| env.ok(&["operator", "list", "--json"]).contains("\"bob\"");
    report.insert(
        "operator add",
        sweep_kills(
            &env,
            "operator-add",
            |env, fault| env.run_with(&as_strs(&add), fault),
            |env, n, _| {
                if !has_bob(env) || stderr(&env.run(&["audit", "verify"])).contains(UNRECORDED) {
                    rerun_until_ok(env, &add, &format!("operator add after write {n}"));
                }
            },
            |env| {
                assert!(has_bob(env));
                env.assert_every_credential_opens(&quorum, &payloads());
            },
        ),
    );
    eprintln!("crash sweep: {report:#?}");
    for (what, tally) in &report {
        assert!(tally.crashes > 0, "{what}: no crash point reached");
    }
}

/// What `init` killed at one write left, and what it took.
#[derive(Debug, Default)]
struct InitTally {
    /// Runs that reached their fault.
    faults: usize,
    /// Crashes that left a directory every command refused, and init run again said exactly
    /// what to remove (then completed).
    refused_then_removed: usize,
    /// Crashes that left a complete vault.
    complete: usize,
    /// Crashes that left no vault directory at all (init run again completed).
    nothing: usize,
}

/// Every file under `dir` holding a secret (share files, this machine's operator keys) is
/// readable by its owner only.
fn assert_private(dir: &std::path::Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        if path.is_dir() {
            assert_private(&path, what);
        } else {
            assert_eq!(mode & 0o077, 0, "{what}: {} is {mode:o}", path.display());
        }
    }
}

/// A complete vault: it opens, its log verifies with the manifest recorded, and a credential
/// sealed in it opens with a quorum of the shares init wrote.
fn assert_complete_vault(env: &Env, what: &str) {
    env.assert_audit_intact();
    let sealed = env.seal_payload("after-init", b"sealed after init", false);
    assert!(sealed.status.success(), "{what}: seal: {}", stderr(&sealed));
    let payloads = BTreeMap::from([("after-init".to_owned(), b"sealed after init".to_vec())]);
    env.assert_every_credential_opens(&env.quorum_in("shares"), &payloads);
    env.assert_audit_intact();
    env.assert_no_temporary_files();
}

/// Runs `init` with the n-th file write faulted as `how` says (`kill`: SIGKILL, as a crash;
/// `enospc`: a full disk) for n = 1, 2, ... until a run no longer reaches its fault; after
/// each, checks what it left: nothing, a vault refused by every command whose re-run names
/// exactly what to remove, or a complete vault; then `init` again completes.
fn sweep_init(how: &str) -> InitTally {
    let env = Env::new();
    let init = env.init_args(&CUSTODIANS, 3, &["--recovery-threshold", "4"]);
    let clean = || {
        for dir in ["vault", "shares", "config"] {
            let _ = std::fs::remove_dir_all(env.path(dir));
        }
    };
    let mut tally = InitTally::default();
    for n in 1.. {
        clean();
        let spec = format!("{n}:{how}");
        let output = env.run_with(&as_strs(&init), &[("BREAKGLASS_TEST_WRITE_FAULT", &spec)]);
        let what = format!("init, write {n} faulted ({how})");
        let reached = if how == "kill" {
            !output.status.success()
        } else {
            stderr(&output).contains("test fault: file write")
        };
        if output.status.success() && !reached {
            assert!(n > 1, "init: no file write was reached");
            assert!(!env.vault().join("init-incomplete").exists());
            assert_complete_vault(&env, "init unfaulted");
            break;
        }
        if how == "kill" {
            assert_eq!(
                output.status.signal(),
                Some(9),
                "{what}: not killed: {}",
                stderr(&output)
            );
        } else if !output.status.success() {
            assert!(
                stderr(&output).contains("No space left on device"),
                "{what}: {}",
                stderr(&output)
            );
        }
        tally.faults += 1;
        // A full disk (not a crash) that leaves the vault unfinished says so.
        let exited_failing = output.status.code().is_some_and(|c| c != 0);
        if exited_failing && env.vault().join("init-incomplete").exists() {
            assert!(
                stderr(&output).contains("was not made"),
                "{what}: {}",
                stderr(&output)
            );
        }
        // Nothing secret where it does not belong: share files, the operator key and the
        // half-written ones are the owner's alone.
        assert_private(&env.path("shares"), &what);
        assert_private(&env.path("config"), &what);
        if !env.vault().exists() {
            // Undone by init itself: nothing of the vault that never was stays on this machine.
            tally.nothing += 1;
            let keys = std::fs::read_dir(env.path("config/breakglass/operators"))
                .map(|d| d.count())
                .unwrap_or(0);
            assert_eq!(keys, 0, "{what}: an operator key for no vault");
        } else if env.run(&["status"]).status.success() {
            tally.complete += 1;
            assert_complete_vault(&env, &what);
            continue;
        } else {
            // Half made: refused by every command, clearly.
            for args in [
                &["status"][..],
                &["list"],
                &["audit", "verify"],
                &["audit", "show"],
                &["share", "verify", "--share-file", "/dev/null"],
            ] {
                let refused = env.run(args);
                assert!(!refused.status.success(), "{what}: {args:?} accepted it");
                assert!(
                    stderr(&refused).contains("did not finish"),
                    "{what}: {args:?}: {}",
                    stderr(&refused)
                );
            }
            let sealed = env.seal_payload("x", b"x", false);
            assert!(!sealed.status.success(), "{what}: seal accepted it");
            assert!(stderr(&sealed).contains("did not finish"), "{what}");
            // init again refuses and says exactly what to remove: the directory, the share
            // files it wrote, this machine's key for the vault that never was.
            let again = env.run(&as_strs(&init));
            assert!(!again.status.success(), "{what}: init again accepted it");
            let said = stderr(&again);
            let mut listed: Vec<std::path::PathBuf> = said
                .lines()
                .filter_map(|l| {
                    let l = l.trim();
                    l.strip_prefix("rm -r ").or_else(|| l.strip_prefix("rm "))
                })
                .map(std::path::PathBuf::from)
                .collect();
            listed.sort();
            let mut expected = vec![env.vault()];
            for dir in [
                "shares",
                "config/breakglass/operators",
                "config/breakglass/anchors",
            ] {
                if let Ok(entries) = std::fs::read_dir(env.path(dir)) {
                    expected.extend(entries.flatten().map(|e| e.path()));
                }
            }
            expected.sort();
            assert_eq!(listed, expected, "{what}: init again said: {said}");
            for path in &listed {
                if path.is_dir() {
                    std::fs::remove_dir_all(path).unwrap();
                } else {
                    std::fs::remove_file(path).unwrap();
                }
            }
            tally.refused_then_removed += 1;
        }
        let again = env.run(&as_strs(&init));
        assert!(
            again.status.success(),
            "{what}, init again: {}",
            stderr(&again)
        );
        assert_complete_vault(&env, &what);
    }
    clean();
    tally
}

#[test]
fn a_crash_at_any_write_of_init_leaves_a_vault_refused_clearly_and_init_again_completes() {
    let tally = sweep_init("kill");
    eprintln!("crash sweep (init): {tally:#?}");
    assert!(tally.refused_then_removed > 0, "{tally:?}");
}

#[test]
fn a_full_disk_at_any_write_of_init_leaves_nothing_or_a_vault_refused_clearly() {
    let tally = sweep_init("enospc");
    eprintln!("full disk sweep (init): {tally:#?}");
    assert!(tally.faults > 0, "{tally:?}");
}
