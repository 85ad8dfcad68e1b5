//! The command line's words as reviewed data: the help of every command and the main error
//! messages, each with its exit code, are kept in `tests/snapshots/`, so a change of wording
//! (or of an exit code) is a visible diff there. After a deliberate change, run the test with
//! `BREAKGLASS_BLESS=1` to rewrite the files, and review the diff like code.

mod support;

use std::path::PathBuf;

use support::Env;

/// One run's text: the command line, the exit code, standard output and standard error.
fn transcript(env: &Env, args: &[&str], vault: Option<&str>) -> String {
    let mut command = env.command(args);
    command.env("COLUMNS", "100").env("NO_COLOR", "1");
    match vault {
        Some(v) => command.env("BREAKGLASS_VAULT", env.path(v)),
        None => command.env_remove("BREAKGLASS_VAULT"),
    };
    let output = command.output().unwrap();
    let hide = |text: &[u8]| {
        String::from_utf8_lossy(text).replace(&env.dir.path().display().to_string(), "[TMP]")
    };
    format!(
        "$ breakglass {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        output
            .status
            .code()
            .map_or("signal".into(), |c| c.to_string()),
        hide(&output.stdout),
        hide(&output.stderr)
    )
}

/// Compares `text` with the snapshot `name` (or writes it, with `BREAKGLASS_BLESS=1`).
/// Returns a description of the difference, if any.
fn check(name: &str, text: &str) -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("BREAKGLASS_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return None;
    }
    match std::fs::read_to_string(&path) {
        Ok(expected) if expected == text => None,
        Ok(expected) => Some(format!(
            "{} differs (BREAKGLASS_BLESS=1 rewrites it after a deliberate change)\n--- expected\n{expected}\n--- actual\n{text}",
            path.display()
        )),
        Err(_) => Some(format!(
            "{} is missing (BREAKGLASS_BLESS=1 writes it)\n--- actual\n{text}",
            path.display()
        )),
    }
}

/// The subcommands `help` lists under "Commands:".
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // A command's line starts two spaces in; a wrapped description, further.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_help_of_every_command_is_as_reviewed() {
    let env = Env::new();
    let mut pending = vec![Vec::<String>::new()];
    let mut problems = Vec::new();
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let text = transcript(&env, &args, None);
        assert!(text.contains("\nexit: 0\n"), "{text}");
        let name = if path.is_empty() {
            "help/breakglass".to_owned()
        } else {
            format!("help/{}", path.join("-"))
        };
        problems.extend(check(&name, &text));
        seen += 1;
        for sub in subcommands(&text) {
            let mut next = path.clone();
            next.push(sub);
            pending.push(next);
        }
    }
    // Every top-level command and every subcommand of the groups (hsm, shares, ceremony, ...).
    assert!(seen > 30, "only {seen} help texts found");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn the_main_error_messages_and_their_exit_codes_are_as_reviewed() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("empty")).unwrap();
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        ("no-vault", &["list"], None),
        ("not-a-vault", &["list"], Some("empty")),
        (
            "unknown-kind",
            &["seal", "db", "--kind", "password"],
            Some("vault"),
        ),
        (
            "unknown-purpose",
            &[
                "ceremony",
                "open",
                "--purpose",
                "dril",
                "--reason",
                "r",
                "--out",
                "r.json",
            ],
            Some("vault"),
        ),
        (
            "bad-expiry",
            &[
                "ceremony",
                "open",
                "--purpose",
                "drill",
                "--reason",
                "r",
                "--expires",
                "4 hours",
                "--out",
                "r.json",
            ],
            Some("vault"),
        ),
        (
            "unknown-output",
            &["unseal", "db", "--output", "stdout"],
            Some("vault"),
        ),
        (
            "unknown-format",
            &["assume", "prod", "--format", "yaml"],
            Some("vault"),
        ),
        (
            "unknown-pin-source",
            &[
                "init",
                "--custodian",
                "a",
                "--threshold",
                "1",
                "--dev-softhsm",
                "--pin-source",
                "pin:1234",
            ],
            Some("vault"),
        ),
        ("unknown-command", &["unsael", "db"], Some("vault")),
        (
            "bad-since",
            &["audit", "report", "--since", "30/11/2026"],
            Some("vault"),
        ),
    ];
    let problems: Vec<String> = cases
        .iter()
        .filter_map(|(name, args, vault)| {
            check(&format!("errors/{name}"), &transcript(&env, args, *vault))
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
