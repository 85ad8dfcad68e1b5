//! End-to-end: what keeps a large vault usable. `list` and `status` read a credential index
//! that is checked against every envelope file and rebuilt when it disagrees (never trusted
//! over the files), and stream their JSON; `audit show` streams the log and `--tail` reads it
//! from its end only; long work over many credentials (drill, rekey, hsm enroll) shows a
//! progress line on a terminal and nothing anywhere else. (That the log's head and torn tail
//! are found reading a bounded number of bytes is counted in `vault-core`'s `audit_tail` unit
//! tests.)

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use hsm_testing::tools::system_program;

mod support;

use support::{Env, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

impl Env {
    fn share(&self, custodian: &str) -> String {
        self.path("shares")
            .join(format!("{custodian}.share"))
            .display()
            .to_string()
    }

    /// A 2-of-3 dev vault with the credentials `names` sealed.
    fn with_credentials(names: &[&str]) -> Env {
        let env = Env::new();
        env.init_vault(&["alice", "bob", "carol"], 2, &[]);
        for name in names {
            env.seal(name, &[]);
        }
        env
    }

    /// Seals (or replaces) `name` as a secret, with `extra` options.
    fn seal(&self, name: &str, extra: &[&str]) {
        let file = self.path("payload");
        std::fs::write(&file, format!("the secret of {name}")).unwrap();
        let mut args = vec![
            "seal",
            name,
            "--kind",
            "secret",
            "--from-file",
            file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        if self
            .vault()
            .join(format!("credentials/{name}.json"))
            .exists()
        {
            args.push("--replace");
        }
        self.ok(&args);
    }

    fn index(&self) -> serde_json::Value {
        let bytes = std::fs::read(self.vault().join("credentials/.index.json")).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn listed(&self) -> Vec<serde_json::Value> {
        let text = self.ok(&["list", "--json"]);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        // Streamed, but laid out exactly as the whole array printed at once.
        assert_eq!(
            text,
            format!("{}\n", serde_json::to_string_pretty(&value).unwrap())
        );
        value.as_array().unwrap().clone()
    }

    /// `breakglass ARGS` with the two share files, on a pseudo-terminal (util-linux `script`):
    /// what the terminal showed.
    fn on_terminal(&self, args: &str) -> String {
        let command = format!(
            "'{BIN}' {args} --share-file '{}' --share-file '{}'",
            self.share("alice"),
            self.share("bob")
        );
        let output = Command::new(system_program("script", "bsdutils"))
            .args(["-q", "-e", "-c", &command, "/dev/null"])
            .env("BREAKGLASS_VAULT", self.vault())
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("BREAKGLASS_REASON", "end-to-end test")
            .env("TERM", "xterm-256color")
            .env_remove("SOFTHSM2_CONF")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("script (util-linux) runs the command on a terminal");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{args}: {text}");
        text
    }
}

fn names(listed: &[serde_json::Value]) -> Vec<&str> {
    listed.iter().map(|c| c["name"].as_str().unwrap()).collect()
}

#[test]
fn list_reads_an_index_checked_against_every_envelope_and_rebuilt_when_it_disagrees() {
    let env = Env::with_credentials(&["db", "api", "mail"]);
    let first = env.listed();
    assert_eq!(names(&first), ["api", "db", "mail"]);
    // The index records each envelope's hash and what a listing shows of it.
    let index = env.index();
    let envelope = std::fs::read(env.vault().join("credentials/db.json")).unwrap();
    let hash = hex::encode(ring_free_sha256(&envelope));
    assert_eq!(index["entries"]["db"][0], hash.as_str());
    assert_eq!(index["entries"]["db"][1]["kind"], "secret");
    // A listing from the index is the listing from the files.
    assert_eq!(env.listed(), first);

    // A credential replaced, one removed and one added behind the index's back: the listing
    // follows the files, and the index is rewritten to match them.
    env.seal("db", &["--account", "123456789012"]);
    std::fs::remove_file(env.vault().join("credentials/mail.json")).unwrap();
    env.seal("web", &[]);
    let listed = env.listed();
    assert_eq!(names(&listed), ["api", "db", "web"]);
    assert_eq!(listed[1]["metadata"]["account"], "123456789012");
    assert_eq!(listed[1]["versions_in_history"], 1);
    assert_eq!(listed[0]["versions_in_history"], 0);
    let index = env.index();
    assert_eq!(
        index["entries"]["db"][1]["metadata"]["account"],
        "123456789012"
    );
    assert!(index["entries"].get("mail").is_none());

    // An envelope damaged under an entry made for its old bytes is reported damaged, not
    // listed from the cache.
    let path = env.vault().join("credentials/api.json");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, &bytes).unwrap();
    let listed = env.listed();
    assert!(listed[0]["error"].is_string(), "{listed:?}");
    assert!(env.index()["entries"].get("api").is_none());
    let text = env.ok(&["list"]);
    assert!(text.contains("api") && text.contains("DAMAGED"), "{text}");

    // An index that is not an index is rebuilt from the files, and so is one of another vault.
    std::fs::write(env.vault().join("credentials/.index.json"), b"{not json").unwrap();
    assert_eq!(env.listed(), listed);
    assert!(env.index()["entries"]["web"].is_array());
    let mut foreign = env.index();
    foreign["vault_id"] = "another-vault".into();
    foreign["entries"]["web"][1]["kind"] = "aws-root".into();
    std::fs::write(
        env.vault().join("credentials/.index.json"),
        serde_json::to_vec(&foreign).unwrap(),
    )
    .unwrap();
    assert_eq!(env.listed()[2]["kind"], "secret");

    // The index never counts as a credential.
    let status = env.status();
    assert_eq!(
        names(status["credentials"].as_array().unwrap()),
        ["api", "db", "web"]
    );
}

#[test]
fn status_json_streams_the_credentials_inside_the_object_laid_out_as_one_document() {
    let env = Env::with_credentials(&["db", "api"]);
    let text = env.ok(&["status", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        text,
        format!("{}\n", serde_json::to_string_pretty(&value).unwrap())
    );
    assert_eq!(
        names(value["credentials"].as_array().unwrap()),
        ["api", "db"]
    );
    assert!(value["audit"]["first_problem"].is_null(), "{value}");
    // An empty vault's credentials are an empty array.
    let empty = Env::with_credentials(&[]);
    assert_eq!(empty.status()["credentials"], serde_json::json!([]));
    assert_eq!(
        empty.ok(&["list"]),
        "no credentials sealed yet (breakglass seal NAME --kind ...)\n"
    );
}

#[test]
fn audit_show_streams_the_log_and_tail_reads_only_its_end() {
    let env = Env::with_credentials(&["db", "api"]);
    for _ in 0..3 {
        env.seal("db", &[]);
        env.seal("api", &[]);
    }
    let log_path = env.vault().join("audit.jsonl");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Streamed, laid out as the whole array of entries printed at once, every line in order.
    let text = env.ok(&["audit", "show", "--json"]);
    let entries: Vec<vault_core::audit::Entry> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        text,
        format!("{}\n", serde_json::to_string_pretty(&entries).unwrap())
    );
    let shown: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(shown.as_array().unwrap(), &lines);
    let seqs = |text: &str| -> Vec<u64> {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };
    let n = lines.len() as u64;
    assert_eq!(
        seqs(&env.ok(&["audit", "show", "--json", "--tail", "3"])),
        [n - 2, n - 1, n]
    );
    // The last lines the filters keep, oldest first, as the whole listing has them.
    let about_db: Vec<u64> = lines
        .iter()
        .filter(|e| e["credential"] == "db")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(about_db.len() > 2, "{about_db:?}");
    assert_eq!(
        seqs(&env.ok(&[
            "audit",
            "show",
            "--json",
            "--tail",
            "2",
            "--credential",
            "db"
        ])),
        about_db[about_db.len() - 2..]
    );
    let plain = env.ok(&["audit", "show", "--tail", "1"]);
    assert_eq!(plain.lines().count(), 1, "{plain}");
    assert!(plain.trim_start().starts_with(&format!("{n} ")), "{plain}");
    assert_eq!(env.ok(&["audit", "show", "--json", "--tail", "0"]), "[]\n");

    // An early line made unreadable in place (same length: the remembered head, further on,
    // is untouched): the whole listing stops at it, naming it; `--tail` never reads it.
    let second_start = log.find('\n').unwrap() + 1;
    let second_end = second_start + log[second_start..].find('\n').unwrap();
    let mut damaged = log.clone().into_bytes();
    damaged[second_start..second_end].fill(b'x');
    std::fs::write(&log_path, &damaged).unwrap();
    let whole = env.run(&["audit", "show"]);
    assert!(!whole.status.success());
    assert!(stderr(&whole).contains("line 2"), "{}", stderr(&whole));
    assert_eq!(
        seqs(&env.ok(&["audit", "show", "--json", "--tail", "3"])),
        [n - 2, n - 1, n]
    );
}

#[test]
fn drill_rekey_and_enroll_show_progress_on_a_terminal_and_nothing_in_a_pipe() {
    let env = Env::with_credentials(&["c1", "c2", "c3"]);
    // On a terminal: one line, rewritten in place, ending at the total.
    let drill = env.on_terminal("drill");
    assert!(
        drill.contains("drill: opening credentials: 3 of 3"),
        "{drill:?}"
    );
    assert!(drill.contains('\r'), "{drill:?}");
    // In a pipe: no progress at all, on either stream.
    let output = env.run(&[
        "drill",
        "--share-file",
        &env.share("alice"),
        "--share-file",
        &env.share("bob"),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert!(!all.contains("of 3"), "{all}");
    assert!(!all.contains('\r'), "{all:?}");

    let enroll = env.on_terminal("hsm enroll --token backup --init-token");
    assert!(
        enroll.contains("hsm enroll: opening envelopes: 3 of 3"),
        "{enroll:?}"
    );
    assert!(
        enroll.contains("hsm enroll: writing envelopes: 3 of 3"),
        "{enroll:?}"
    );
    let rekey = env.on_terminal(&format!(
        "rekey --yes --shares-dir '{}'",
        env.path("new-shares").display()
    ));
    assert!(
        rekey.contains("rekey: opening envelopes: 3 of 3"),
        "{rekey:?}"
    );
    assert!(
        rekey.contains("rekey: writing envelopes: 3 of 3"),
        "{rekey:?}"
    );
}

/// SHA-256, as the index records it (through the `sha256sum` of coreutils, so the test does
/// not share the code it checks).
fn ring_free_sha256(bytes: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bytes");
    std::fs::write(&file, bytes).unwrap();
    let output = Command::new(system_program("sha256sum", "coreutils"))
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    hex::decode(text.split_whitespace().next().unwrap()).unwrap()
}

impl Env {
    /// `status --json` on `machine` (its own configuration, the vault pinned by fingerprint).
    fn status_on(&self, machine: &str, fingerprint: &str) -> (Option<i32>, serde_json::Value) {
        let output = self
            .command_on(machine, &["status", "--json"])
            .env("BREAKGLASS_FINGERPRINT", fingerprint)
            .output()
            .unwrap();
        let value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", stderr(&output)));
        (output.status.code(), value)
    }

    /// This machine's note of how far it verified the log (`<config>/verified/<id>.json`).
    fn verified_note(&self, vault_id: &str) -> std::path::PathBuf {
        self.path("config")
            .join(format!("breakglass/verified/{vault_id}.json"))
    }

    /// `unseal NAME` with alice's and bob's shares, to JSON.
    fn try_unseal(&self, name: &str) -> std::process::Output {
        let (a, b) = (self.share("alice"), self.share("bob"));
        self.run(&[
            "unseal",
            name,
            "--share-file",
            &a,
            "--share-file",
            &b,
            "--output",
            "json",
        ])
    }

    fn unseal(&self, name: &str) {
        let output = self.try_unseal(name);
        assert!(output.status.success(), "{}", stderr(&output));
    }
}

/// What `status --json` says of the log's history and health (all but the machine's own).
fn history_of(status: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "audit": status["audit"],
        "last_drill": status["last_drill"],
        "last_drill_failures": status["last_drill_failures"],
        "absent": status["custodians_without_recent_participation"],
        "runbook": status["runbook"],
    })
}

#[test]
fn status_verifies_only_the_lines_appended_since_and_any_change_before_them_is_found() {
    let env = Env::with_credentials(&["db", "api"]);
    let (a, b) = (env.share("alice"), env.share("bob"));
    env.ok(&["drill", "--share-file", &a, "--share-file", &b]);
    let first = env.status();
    let vault_id = first["vault_id"].as_str().unwrap().to_owned();
    let fingerprint = first["fingerprint"].as_str().unwrap().to_owned();
    let note_path = env.verified_note(&vault_id);
    let note: serde_json::Value = serde_json::from_slice(&std::fs::read(&note_path).unwrap())
        .expect("status notes how far it verified the log");
    let entries = first["audit"]["entries"].as_u64().unwrap();
    assert_eq!(note["at"]["seq"], entries);
    assert_eq!(
        std::fs::metadata(&note_path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Lines appended since: verified on from the note, and what status says of the history
    // is what a machine that never saw the log finds walking all of it.
    env.unseal("db");
    env.seal("web", &[]);
    env.ok(&["share", "verify", "--share-file", &env.share("carol")]);
    let here = env.status();
    let note: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&note_path).unwrap()).unwrap();
    assert_eq!(note["at"]["seq"], here["audit"]["entries"]);
    assert!(here["audit"]["entries"].as_u64().unwrap() > entries);
    let (code, elsewhere) = env.status_on("never-saw-it", &fingerprint);
    assert_eq!(code, Some(0), "{elsewhere}");
    assert_eq!(history_of(&here), history_of(&elsewhere));
    assert_eq!(
        here["custodians_without_recent_participation"],
        serde_json::json!([])
    );
    let verify: serde_json::Value =
        serde_json::from_str(&env.ok(&["audit", "verify", "--json"])).unwrap();
    assert_eq!(here["audit"], verify);

    // The lines the note covers are not verified again: a count only the note holds shows
    // through (this machine's own memory, as trusted as its anchor).
    let mut marked = note.clone();
    marked["checkpoints"] = (note["checkpoints"].as_u64().unwrap() + 1000).into();
    std::fs::write(&note_path, serde_json::to_vec(&marked).unwrap()).unwrap();
    let status = env.status();
    assert_eq!(
        status["audit"]["checkpoints"].as_u64().unwrap(),
        verify["checkpoints"].as_u64().unwrap() + 1000
    );
    std::fs::write(&note_path, serde_json::to_vec(&note).unwrap()).unwrap();

    // Bytes other than those it verified (the note's digest no longer matches: what a
    // rewritten history, every line signed again, looks like): the whole log is walked,
    // every line verifies, and the rewrite is reported all the same.
    let mut other = note.clone();
    other["prefix_sha256"] = "00".repeat(32).into();
    std::fs::write(&note_path, serde_json::to_vec(&other).unwrap()).unwrap();
    let (code, status) = env.status_on("config", &fingerprint);
    assert_eq!(code, Some(5), "{status}");
    let problem = &status["audit"]["first_problem"];
    assert_eq!(problem["line"], note["at"]["seq"], "{status}");
    assert!(
        problem["reason"]
            .as_str()
            .unwrap()
            .contains("not the ones this machine verified"),
        "{status}"
    );
    std::fs::write(&note_path, serde_json::to_vec(&note).unwrap()).unwrap();
    assert_eq!(env.status()["audit"], verify);

    // One byte changed in a line the note covers (a signature, same length): found at its
    // line, as `audit verify` finds it.
    let log_path = env.vault().join("audit.jsonl");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let third = log.lines().nth(2).unwrap();
    let at = third.find("\"signature\":\"").unwrap() + "\"signature\":\"".len();
    let mut changed = third.to_owned();
    let flipped = if &third[at..=at] == "A" { "B" } else { "A" };
    changed.replace_range(at..=at, flipped);
    std::fs::write(&log_path, log.replacen(third, &changed, 1)).unwrap();
    let (code, status) = env.status_on("config", &fingerprint);
    assert_eq!(code, Some(5), "{status}");
    assert_eq!(status["audit"]["first_problem"]["line"], 3, "{status}");
    let output = env.run(&["audit", "verify"]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
}

#[test]
fn opening_rewrites_the_envelope_records_only_when_a_line_walked_records_one() {
    let env = Env::with_credentials(&["db", "api"]);
    let vault_id = env.status()["vault_id"].as_str().unwrap().to_owned();
    let records = env
        .path("config")
        .join(format!("breakglass/records/{vault_id}.records"));
    // The records file's header (its first line) and its records (name, digest).
    let read = |bytes: &[u8]| {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let (header, body) = text.split_once('\n').unwrap();
        let header: serde_json::Value = serde_json::from_str(header).unwrap();
        let records: BTreeMap<String, String> = body
            .lines()
            .map(|line| {
                let (name, digest) = line.split_once(' ').unwrap();
                (name.to_owned(), digest.trim_start().to_owned())
            })
            .collect();
        (header, records)
    };
    let through = env
        .path("config")
        .join(format!("breakglass/records/{vault_id}.through.json"));
    env.unseal("db");
    let written = std::fs::read(&records).unwrap();
    // Openings append lines that record nothing: the records stay as they are, and a small
    // note says how far past them the log was walked.
    env.unseal("db");
    env.unseal("api");
    assert_eq!(std::fs::read(&records).unwrap(), written);
    let note: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&through).unwrap()).unwrap();
    let (cache, recorded) = read(&written);
    assert_eq!(recorded.keys().collect::<Vec<_>>(), ["api", "db"]);
    assert_eq!(note["records_at"], cache["at"]);
    assert!(note["at"]["seq"].as_u64() > cache["at"]["seq"].as_u64());
    // A seal records an envelope: the next opening rewrites the records with it.
    env.seal("web", &[]);
    env.unseal("web");
    let (_, recorded) = read(&std::fs::read(&records).unwrap());
    assert_eq!(recorded["web"].len(), 64, "{recorded:?}");
    assert_eq!(recorded.len(), 3);
    // An older envelope put back is refused with the note in use as without it.
    env.seal("db", &[]);
    env.unseal("db");
    env.unseal("api");
    let previous = env.vault().join("history/db/1.json");
    std::fs::copy(&previous, env.vault().join("credentials/db.json")).unwrap();
    let output = env.try_unseal("db");
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("db"), "{}", stderr(&output));
}
