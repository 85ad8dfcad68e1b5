//! End-to-end: the command line around the commands: shell completions that a shell loads, man
//! pages that groff renders without a warning, an example in every command's help, and colour
//! only on a terminal and never with NO_COLOR.

use std::process::Command;

use hsm_testing::tools::system_program;

mod support;

use support::{Env, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

#[test]
fn the_bash_completion_script_loads_and_completes_subcommands() {
    let script = format!(
        "source <('{BIN}' completions bash) && complete -p breakglass && \
         COMP_WORDS=(breakglass hsm ch) COMP_CWORD=2 COMP_LINE='breakglass hsm ch' COMP_POINT=17 && \
         _breakglass breakglass ch hsm && printf 'reply:%s\\n' \"${{COMPREPLY[@]}}\""
    );
    let output = Command::new(system_program("bash", "bash"))
        .args(["--norc", "--noprofile", "-c", &script])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{:?}: {out}{}",
        output.status,
        stderr(&output)
    );
    assert!(out.contains("-F _breakglass breakglass"), "{out}");
    assert!(
        out.contains("reply:check"),
        "hsm ch<TAB> completes to check: {out}"
    );
}

#[test]
fn completion_scripts_exist_for_zsh_fish_powershell_and_elvish() {
    let env = Env::new();
    for (shell, marker) in [
        ("zsh", "#compdef breakglass"),
        ("fish", "complete -c breakglass"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[breakglass]"),
    ] {
        let out = env.ok(&["completions", shell]);
        assert!(out.contains(marker), "{shell}: {out}");
        assert!(out.contains("share") && out.contains("card"), "{shell}");
    }
    let bad = env.run(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_man_pages_render_without_warnings_and_carry_the_examples() {
    let env = Env::new();
    let dir = env.path("man");
    let out = env.ok(&["man", "--out", dir.to_str().unwrap()]);
    assert!(out.contains("man pages written"), "{out}");
    let mut pages: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    for name in [
        "breakglass.1",
        "breakglass-hsm-check.1",
        "breakglass-share-card.1",
        "breakglass-completions.1",
    ] {
        assert!(dir.join(name).exists(), "{name} in {pages:?}");
    }
    let groff = system_program("groff", "groff-base");
    for page in &pages {
        let output = Command::new(&groff)
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(page)
            .output()
            .unwrap();
        assert!(
            output.status.success() && output.stderr.is_empty(),
            "{}: {}",
            page.display(),
            stderr(&output)
        );
    }
    let output = Command::new(system_program("man", "man-db"))
        .arg("-l")
        .arg(dir.join("breakglass-hsm-check.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        text.contains("Examples:") && text.contains("hsm check --module"),
        "{text}"
    );
}

#[test]
fn the_help_says_what_the_tool_is_and_every_command_shows_an_example() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    assert!(
        help.starts_with("A vault for emergency (\"break-glass\") credentials"),
        "{help}"
    );
    for command in [
        vec!["init"],
        vec!["unseal"],
        vec!["hsm", "check"],
        vec!["share", "card"],
        vec!["ceremony", "contribute"],
        vec!["completions"],
    ] {
        let mut args = command.clone();
        args.push("--help");
        let text = env.ok(&args);
        let examples = text
            .find("Examples:")
            .unwrap_or_else(|| panic!("{command:?}: {text}"));
        assert!(
            text[examples..].contains(&format!(" {} ", command.join(" "))),
            "{command:?}: the first example runs the command: {text}"
        );
    }
}

/// Runs `breakglass ARGS` on a pseudo-terminal (util-linux `script`), returning what it wrote.
fn on_terminal(args: &str, no_color: bool) -> String {
    let mut command = Command::new(system_program("script", "bsdutils"));
    command
        .args(["-q", "-e", "-c", &format!("'{BIN}' {args}"), "/dev/null"])
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR");
    if no_color {
        command.env("NO_COLOR", "1");
    }
    let output = command.output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn colour_appears_only_on_a_terminal_and_never_with_no_color() {
    // On a terminal, clap colours the help and its errors...
    assert!(on_terminal("--help", false).contains("\x1b["));
    assert!(on_terminal("--no-such-option", false).contains("\x1b["));
    // ...but not with NO_COLOR,
    assert!(!on_terminal("--help", true).contains("\x1b["));
    assert!(!on_terminal("--no-such-option", true).contains("\x1b["));
    // nor into a pipe.
    let env = Env::new();
    let piped = env.run(&["--no-such-option"]);
    assert!(!String::from_utf8_lossy(&piped.stderr).contains('\x1b'));
    assert!(!env.ok(&["--help"]).contains('\x1b'));
    // Our own output has no colour at all, even on a terminal.
    let words = on_terminal("shares split --group 1/1 --generate-bytes 16", false);
    assert_eq!(words.split_whitespace().count(), 20, "{words}");
    assert!(!words.contains('\x1b'), "{words:?}");
}
