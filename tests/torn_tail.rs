//! End-to-end: an audit log whose last write was cut short (a crash, a full disk). Reading
//! commands keep working and say so; writing commands refuse with exit 8 until `audit repair`
//! moves the torn bytes aside; `recover` moves them aside itself so that it is recorded. A full
//! disk at each file write of seal, unseal and rekey (the n-th write fails with ENOSPC after
//! half its bytes, through the test build's write faults; and once on a real full tmpfs) gives
//! a clear error, leaves no half-written file and no torn line, and loses nothing; the same at
//! each write of `rotate` and `assume` against a local AWS endpoint, where a full disk must
//! also leave no AWS key that nothing sealed.

use std::process::Command;

mod support;

use support::sweep::{AWS_CREDENTIAL, AwsSweep, CREDENTIALS, payloads};
use support::{Env, as_strs, stderr};

const TORN: &[u8] = br#"{"seq":99,"time":"2026-11-30T12:00:00Z","event":"unseal","checkpoin"#;

#[test]
fn a_torn_tail_leaves_reading_commands_working_and_writers_pointed_at_audit_repair() {
    let env = Env::new();
    env.sweep_vault();
    let log = env.vault().join("audit.jsonl");
    let intact = std::fs::read(&log).unwrap();
    let mut torn = intact.clone();
    torn.extend_from_slice(TORN);
    std::fs::write(&log, &torn).unwrap();
    let lines = intact.iter().filter(|b| **b == b'\n').count();

    // Reading commands work and say so, on standard error.
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["list"],
        &["audit", "verify"],
        &["audit", "show"],
    ] {
        let output = env.run(args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("cut short") && stderr(&output).contains("audit repair"),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).contains("damaged"), "{}", stderr(&output));
    }
    assert_eq!(
        env.status()["audit"]["torn_tail"]["line"],
        serde_json::json!(lines + 1)
    );
    let check = env.run(&[
        "share",
        "verify",
        "--share-file",
        env.path("shares/bob.share").to_str().unwrap(),
    ]);
    assert!(check.status.success(), "{}", stderr(&check));

    // Writing commands refuse, before anything is written, and name the way out.
    let before = env.vault_files();
    let seal = env.seal_payload("new", b"x", false);
    let (unseal, out) = env.unseal_with("db-root", &env.quorum_in("shares"), &[]);
    for output in [&seal, &unseal] {
        assert_eq!(output.status.code(), Some(8), "{}", stderr(output));
        assert!(
            stderr(output).contains("torn") && stderr(output).contains("breakglass audit repair"),
            "{}",
            stderr(output)
        );
    }
    assert!(
        !out.exists(),
        "no secret is released that could not be recorded"
    );
    assert_eq!(
        env.vault_files(),
        before,
        "a refused command writes nothing"
    );

    // Repair needs a confirmation.
    let refused = env.run(&["audit", "repair"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert_eq!(env.vault_files(), before);
    let repaired = env.ok(&["audit", "repair", "--yes"]);
    assert!(repaired.contains("moved to"), "{repaired}");
    let aside: Vec<_> = std::fs::read_dir(env.vault())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("audit.jsonl.torn-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), TORN);
    let log_now = std::fs::read(&log).unwrap();
    assert!(log_now.starts_with(&intact), "signed history untouched");
    let repairs = env.audit_events("audit_repair");
    assert_eq!(repairs.len(), 1);
    assert_eq!(
        repairs[0]["details"]["torn_bytes"],
        TORN.len().to_string().as_str()
    );
    assert_eq!(
        repairs[0]["details"]["torn_line"],
        (lines + 1).to_string().as_str()
    );
    env.assert_audit_intact();
    assert!(
        env.ok(&["audit", "repair", "--yes"])
            .contains("nothing to repair")
    );

    // Writers work again.
    assert!(env.seal_payload("new", b"x", false).status.success());
    env.assert_every_credential_opens(&env.quorum_in("shares"), &payloads());
    env.assert_audit_intact();
}

#[test]
fn recover_on_a_torn_tail_moves_it_aside_and_is_recorded() {
    let env = Env::new();
    env.sweep_vault();
    let log = env.vault().join("audit.jsonl");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"\0\0\0\0\0\0");
    std::fs::write(&log, &bytes).unwrap();
    let mut shares = env.quorum_in("shares");
    shares.extend(
        ["alice", "bob", "carol", "dave"]
            .iter()
            .map(|c| format!("shares/{c}.recovery.share")),
    );
    let out = env.path("recovered");
    let mut args = env.with_share_files(&["recover", "db-root"], &shares);
    args.extend(["--output".into(), format!("file:{}", out.display())]);
    let output = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("torn"), "{}", stderr(&output));
    assert_eq!(std::fs::read(&out).unwrap(), CREDENTIALS[0].1);
    assert_eq!(env.audit_events("audit_repair").len(), 1);
    assert_eq!(env.audit_events("recover").len(), 1);
    env.assert_audit_intact();
}

/// Runs `run(env, fault)` with the n-th file write failing with ENOSPC, for n = 1, 2, ...
/// until the operation succeeds without reaching the fault; after each failure, `check` sees
/// the vault. A write whose failure the operation tolerates (a best-effort one: it succeeds,
/// the fault reached) is checked for what every fault must leave (no temporary file, the log
/// intact). Returns how many writes were faulted.
fn sweep_enospc(
    env: &Env,
    what: &str,
    run: impl Fn(&Env, &[(&str, &str)]) -> std::process::Output,
    check: impl Fn(&Env, usize),
) -> usize {
    let baseline = env.path(&format!("baseline-{what}"));
    env.save_vault(&baseline);
    for n in 1.. {
        env.restore_vault(&baseline);
        let spec = format!("{n}:enospc");
        let output = run(env, &[("BREAKGLASS_TEST_WRITE_FAULT", &spec)]);
        let reached = stderr(&output).contains(&format!("test fault: file write {n} failed"));
        if output.status.success() && reached {
            env.assert_no_temporary_files();
            env.assert_audit_intact();
            continue;
        }
        if output.status.success() {
            assert!(n > 1, "{what}: no file write was faulted");
            env.restore_vault(&baseline);
            return n - 1;
        }
        assert!(
            reached,
            "{what} write {n}: failed without its fault: {}",
            stderr(&output)
        );
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{what} write {n}: {err}");
        assert!(
            err.contains("No space left on device"),
            "{what} write {n}: {err}"
        );
        env.assert_no_temporary_files();
        env.assert_audit_intact();
        check(env, n);
        assert!(n < 60, "{what}: still failing after {n} faulted writes");
    }
    unreachable!()
}

#[test]
fn a_full_disk_at_each_write_of_seal_unseal_and_rekey_half_writes_nothing_and_loses_nothing() {
    let env = Env::new();
    env.sweep_vault();
    let quorum = env.quorum_in("shares");
    let mut faulted = Vec::new();

    // seal of a new credential: absent afterwards, or sealed whole.
    faulted.push(sweep_enospc(
        &env,
        "seal",
        |env, fault| env.seal_payload_with("new", b"new secret", false, fault),
        |env, _| {
            assert!(!env.vault().join("credentials/new.json").exists());
            env.assert_every_credential_opens(&quorum, &payloads());
        },
    ));
    // seal --replace: the old version opens (the new one was never written).
    faulted.push(sweep_enospc(
        &env,
        "seal-replace",
        |env, fault| env.seal_payload_with("db-root", b"replaced", true, fault),
        |env, _| env.assert_every_credential_opens(&quorum, &payloads()),
    ));
    // unseal: no secret released that the log did not record; the failure is recorded.
    faulted.push(sweep_enospc(
        &env,
        "unseal",
        |env, fault| {
            let (output, out) = env.unseal_with("api", &quorum, fault);
            if !output.status.success() {
                assert!(!out.exists(), "a secret released without its audit entry");
            }
            output
        },
        |env, n| {
            // Either the log could not take the opening (recorded as failed), or it could and
            // the output file could not be written (recorded, nothing released).
            let recorded =
                env.audit_events("unseal").len() + env.audit_events("unseal_failed").len();
            assert_eq!(recorded, 1, "unseal write {n}");
            env.assert_every_credential_opens(&quorum, &payloads());
        },
    ));
    // rekey: refused whole, or resumable from its journal with the old and new shares.
    let new_dir = "rekeyed";
    faulted.push(sweep_enospc(
        &env,
        "rekey",
        |env, fault| {
            let _ = std::fs::remove_dir_all(env.path(new_dir));
            let args = env.with_share_files(
                &[
                    "rekey",
                    "--yes",
                    "--shares-dir",
                    env.path(new_dir).to_str().unwrap(),
                ],
                &quorum,
            );
            env.run_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), fault)
        },
        |env, n| {
            if env.vault().join("rekey.json").exists() {
                let mut both = quorum.clone();
                both.extend(env.quorum_in(new_dir));
                let args = env.with_share_files(&["rekey", "--resume"], &both);
                let resumed = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
                assert!(
                    resumed.status.success(),
                    "resume after write {n}: {}",
                    stderr(&resumed)
                );
                env.assert_audit_intact();
                env.assert_every_credential_opens(&env.quorum_in(new_dir), &payloads());
            } else {
                // Refused whole, or complete: when this machine's pin could not follow the new
                // identity (its configuration is on the same full disk), the outgoing quorum's
                // succession statement moves it on the next command.
                let status = env.run(&["status"]);
                assert!(
                    status.status.success(),
                    "after write {n}: {}",
                    stderr(&status)
                );
                if env.audit_events("rekey").is_empty() {
                    env.assert_every_credential_opens(&quorum, &payloads());
                } else {
                    env.assert_every_credential_opens(&env.quorum_in(new_dir), &payloads());
                }
            }
        },
    ));
    eprintln!(
        "ENOSPC sweep: faulted writes per operation (seal, seal --replace, unseal, rekey): {faulted:?}"
    );
}

/// The shell script run in a mount namespace of its own with a 1 MiB tmpfs at `mnt`: a vault
/// made there, filled to the last page, then a seal (must fail with ENOSPC), an unseal (must
/// either succeed and be recorded, or fail and release nothing), then the space freed and the
/// seal again.
const FULL_DISK_SCRIPT: &str = r#"
set -u
mount -t tmpfs -o size=1m,mode=0700 none "$MNT" || { echo "cannot mount a tmpfs" >&2; exit 90; }
export BREAKGLASS_VAULT="$MNT/vault"
"$BIN" init --dev-softhsm --custodian alice --custodian bob --custodian carol --threshold 2 \
  --iteration-exponent 0 --shares-dir "$OUT/shares" >/dev/null 2>"$OUT/init.err" || exit 91
printf 'sealed before the disk filled' > "$OUT/one"
"$BIN" seal one --kind secret --from-file "$OUT/one" 2>"$OUT/seal1.err" || exit 92
cp -a "$MNT/vault" "$OUT/before"
dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null
printf 'sealed on a full disk' > "$OUT/two"
"$BIN" seal two --kind secret --from-file "$OUT/two" 2>"$OUT/seal-full.err"; echo $? > "$OUT/seal-full.rc"
"$BIN" unseal one --share-file "$OUT/shares/alice.share" --share-file "$OUT/shares/bob.share" \
  --output "file:$OUT/opened" 2>"$OUT/unseal-full.err"; echo $? > "$OUT/unseal-full.rc"
"$BIN" audit verify >/dev/null 2>"$OUT/verify-full.err"; echo $? > "$OUT/verify-full.rc"
cp -a "$MNT/vault" "$OUT/after"
rm "$MNT/filler"
"$BIN" seal two --kind secret --from-file "$OUT/two" 2>"$OUT/seal-freed.err"; echo $? > "$OUT/seal-freed.rc"
"$BIN" unseal two --share-file "$OUT/shares/alice.share" --share-file "$OUT/shares/carol.share" \
  --output "file:$OUT/opened-two" 2>"$OUT/unseal-two.err"; echo $? > "$OUT/unseal-two.rc"
"$BIN" audit verify >/dev/null 2>"$OUT/verify-freed.err"; echo $? > "$OUT/verify-freed.rc"
"#;

#[test]
fn on_a_real_full_tmpfs_seal_fails_cleanly_and_works_once_space_is_freed() {
    let env = Env::new();
    let mnt = env.path("mnt");
    let out = env.path("out");
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    // A user and mount namespace of its own (util-linux `unshare`), so no privilege is needed
    // to mount the small file system, and nothing outside the test sees it.
    let output = Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            FULL_DISK_SCRIPT,
        ])
        .env("MNT", &mnt)
        .env("OUT", &out)
        .env("BIN", env!("CARGO_BIN_EXE_breakglass"))
        .env("XDG_CONFIG_HOME", env.path("config"))
        .env("BREAKGLASS_REASON", "full disk test")
        .env_remove("SOFTHSM2_CONF")
        .env_remove("BREAKGLASS_TEST_WRITE_FAULT")
        .output()
        .unwrap_or_else(|e| panic!("unshare (util-linux) must be installed: {e}"));
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    assert!(
        output.status.success(),
        "the full-disk script failed ({:?}; exit 90: user namespaces or tmpfs mounts are not \
         allowed here): {}{}{}",
        output.status.code(),
        stderr(&output),
        read("init.err"),
        read("seal1.err")
    );
    // On the full disk: the seal fails, naming the file and the cause, and leaves nothing.
    assert_eq!(
        read("seal-full.rc").trim(),
        "1",
        "{}",
        read("seal-full.err")
    );
    assert!(
        read("seal-full.err").contains("No space left on device"),
        "{}",
        read("seal-full.err")
    );
    let files = |dir: &str| {
        let env = Env::new();
        std::fs::rename(out.join(dir), env.vault()).unwrap();
        let files = env.vault_files();
        (env, files)
    };
    let (_b, before) = files("before");
    let (after_env, after) = files("after");
    after_env.assert_no_temporary_files();
    assert!(!after.contains_key(std::path::Path::new("credentials/two.json")));
    // The unseal either was recorded whole or released nothing; the log has no torn line.
    let unsealed = read("unseal-full.rc").trim() == "0";
    let log_before = &before[std::path::Path::new("audit.jsonl")];
    let log_after = &after[std::path::Path::new("audit.jsonl")];
    assert_eq!(
        log_after.last(),
        Some(&b'\n'),
        "no torn line on a full disk"
    );
    if unsealed {
        assert!(log_after.len() > log_before.len());
    } else {
        assert!(!out.join("opened").exists(), "{}", read("unseal-full.err"));
    }
    assert_eq!(
        read("verify-full.rc").trim(),
        "0",
        "{}",
        read("verify-full.err")
    );
    // Space freed: everything works, nothing was lost.
    assert_eq!(
        read("seal-freed.rc").trim(),
        "0",
        "{}",
        read("seal-freed.err")
    );
    assert_eq!(
        read("unseal-two.rc").trim(),
        "0",
        "{}",
        read("unseal-two.err")
    );
    assert_eq!(
        std::fs::read(out.join("opened-two")).unwrap(),
        b"sealed on a full disk"
    );
    assert_eq!(
        read("verify-freed.rc").trim(),
        "0",
        "{}",
        read("verify-freed.err")
    );
}

#[test]
fn a_full_disk_at_each_write_of_rotate_and_assume_loses_no_key_and_leaves_none_unsealed() {
    let lab = AwsSweep::new();
    let quorum = lab.env.quorum_in("shares");
    let rotate_args = lab
        .env
        .with_share_files(&["rotate", AWS_CREDENTIAL], &quorum);
    let deleted_again = std::cell::Cell::new(0);
    // rotate: the sealed key (the old or the new) is IAM's only key and works; a new key that
    // could not be sealed was deleted again at once, and the operator was told so.
    let rotate = sweep_enospc(
        &lab.env,
        "rotate",
        |env, fault| {
            let old = lab.fresh_key();
            let output = env.run_with(&as_strs(&rotate_args), fault);
            if !output.status.success() && lab.sealed_key_id() == old {
                let err = stderr(&output);
                if err.contains("could not be sealed") {
                    assert!(err.contains("deleted again"), "{err}");
                    deleted_again.set(deleted_again.get() + 1);
                }
            }
            output
        },
        |_, n| {
            let sealed = lab.assert_sealed_key_works(&quorum);
            assert_eq!(
                lab.iam_keys(),
                vec![sealed],
                "rotate write {n}: a key left unsealed"
            );
            lab.env.assert_every_credential_opens(&quorum, &payloads());
        },
    );
    assert!(
        deleted_again.get() > 0,
        "no full disk hit the seal of the new key"
    );
    // assume: no session released that the log did not record; the attempt is recorded.
    lab.fresh_key();
    let assume = sweep_enospc(
        &lab.env,
        "assume",
        |_, fault| lab.assume(&quorum, fault),
        |env, n| {
            let recorded = env.audit_events("assume_role").len()
                + env.audit_events("assume_role_failed").len();
            assert_eq!(recorded, 1, "assume write {n}");
            lab.assert_sealed_key_works(&quorum);
        },
    );
    eprintln!(
        "ENOSPC sweep: faulted writes of rotate {rotate}, assume {assume}; {} new keys deleted \
         again because they could not be sealed",
        deleted_again.get()
    );
}
