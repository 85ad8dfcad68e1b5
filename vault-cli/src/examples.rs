//! The examples at the end of every command's `--help` (and in the man pages), the common case
//! first, kept apart from the clap types so that they read as one reviewed list; and the
//! complete command-line definition that `main`, `completions` and `man` all use.

use clap::CommandFactory;

use crate::cli::Cli;

/// Examples by command path (`"hsm check"`); each line is one shell command, `#` lines say
/// what the next one does.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "",
        "# A trial vault on a software token, 2 of 3 custodians, share files in ./shares:
breakglass --vault ./vault init --dev-softhsm --custodian ann --custodian bo --custodian cy --threshold 2 --shares-dir ./shares
# Seal a credential, then open it with two custodians' shares:
breakglass --vault ./vault seal db-root --kind secret --from-file db-root.txt
breakglass --vault ./vault unseal db-root --share-file shares/ann.share --share-file shares/bo.share --output file:db-root.out",
    ),
    (
        "hsm",
        "breakglass hsm tokens --module /usr/lib/softhsm/libsofthsm2.so
breakglass hsm check --module /usr/lib/softhsm/libsofthsm2.so --token vault-a --pin-source env:TOKEN_PIN",
    ),
    (
        "hsm tokens",
        "breakglass hsm tokens --module /usr/lib/softhsm/libsofthsm2.so
breakglass hsm tokens --module /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so --json",
    ),
    (
        "hsm enroll",
        "# A backup token for another site, its PIN derived from the quorum:
breakglass hsm enroll --module /usr/lib/softhsm/libsofthsm2.so --token vault-b --init-token --share-file ann.share --share-file bo.share
# Every token lost: a new one, from the quorum and the recovery shares, retiring the old one:
breakglass hsm enroll --recovery --module /usr/lib/softhsm/libsofthsm2.so --token vault-c --init-token --retire vault-a --share-file ann.share --share-file bo.share --share-file ann.recovery.share --share-file bo.recovery.share --share-file cy.recovery.share",
    ),
    (
        "hsm check",
        "# Before init: can this token do everything breakglass needs? (nothing on it changes)
TOKEN_PIN=... breakglass hsm check --module /usr/lib/softhsm/libsofthsm2.so --token vault-a --pin-source env:TOKEN_PIN
# A token whose PIN comes from the quorum: what needs no login
breakglass hsm check --module /usr/lib/softhsm/libsofthsm2.so --token vault-a --no-login",
    ),
    (
        "shares",
        "breakglass shares split --group 2/3 > shares.txt
breakglass shares combine < two-shares.txt",
    ),
    (
        "shares split",
        "# A fresh 256-bit secret in 2-of-3 shares:
breakglass shares split --group 2/3
# Your own secret (hex on stdin), two groups of which both are needed:
echo 00112233445566778899aabbccddeeff | breakglass shares split --secret-stdin --group-threshold 2 --group 1/1 --group 2/3",
    ),
    (
        "shares combine",
        "breakglass shares combine < two-shares.txt
SLIP39_PASSPHRASE=... breakglass shares combine --passphrase-env SLIP39_PASSPHRASE < shares.txt",
    ),
    (
        "shares inspect",
        "breakglass shares inspect < shares.txt
breakglass shares inspect --json < shares.txt",
    ),
    (
        "init",
        "# Trial: a software token inside the vault, 2 of 3, share files and printable cards:
breakglass --vault ./vault init --dev-softhsm --custodian ann --custodian bo --custodian cy --threshold 2 --shares-dir ./shares --share-cards ./cards
# A real token, initialised now, its PINs derived from the quorum; two groups, both needed:
breakglass --vault ./vault init --module /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so --token vault-a --init-token --group ops:2:ann,bo,cy --group exec:1:dee,eve --group-threshold 2 --shares-dir ./shares",
    ),
    (
        "seal",
        "breakglass seal db-root --kind secret --from-file db-root.txt
aws iam create-access-key --user-name breakglass > key.json
aws iam create-virtual-mfa-device --virtual-mfa-device-name breakglass --bootstrap-method Base32StringSeed --outfile mfa-seed.txt
breakglass seal aws-prod --kind aws --from-file key.json --account 123456789012 --user breakglass --role-arn arn:aws:iam::123456789012:role/breakglass-emergency --mfa-serial arn:aws:iam::123456789012:mfa/breakglass --mfa-seed-file mfa-seed.txt --region eu-west-1",
    ),
    ("list", "breakglass list\nbreakglass list --json"),
    ("status", "breakglass status\nbreakglass status --json"),
    (
        "unseal",
        "breakglass unseal db-root --reason \"INC-1234: restore\" --share-file ann.share --share-file bo.share --output file:db-root.out
# On a terminal, each custodian types their words when asked:
breakglass unseal db-root --reason \"INC-1234: restore\" --output file:db-root.out
# On a machine that has not pinned the vault: the fingerprint from a share card
breakglass unseal db-root --reason \"INC-1234: restore\" --fingerprint ABCD-EFGH-... --share-file ann.share --share-file bo.share --output file:db-root.out",
    ),
    (
        "assume",
        "breakglass assume aws-prod --reason \"INC-1234: SSO down\" --share-file ann.share --share-file bo.share --format env
breakglass assume aws-prod --reason \"INC-1234\" --cache --format json",
    ),
    (
        "exec",
        "breakglass exec aws-prod --reason \"INC-1234: SSO down\" -- aws sts get-caller-identity
# No command: your $SHELL, with the session (and the sealed region) in its environment
breakglass exec aws-prod --reason \"INC-1234: SSO down\"",
    ),
    (
        "console",
        "breakglass console aws-prod --reason \"INC-1234: SSO down\" --share-file ann.share --share-file bo.share",
    ),
    (
        "drill",
        "breakglass drill --share-file ann.share --share-file bo.share
breakglass drill --aws --json
# The recovery path (no token): the quorum's and the recovery set's shares together
breakglass drill --recovery --share-file ann.share --share-file bo.share --share-file ann.recovery.share --share-file bo.recovery.share --share-file cy.recovery.share",
    ),
    (
        "mfa",
        "breakglass mfa codes --seed-file mfa-seed.txt",
    ),
    (
        "mfa codes",
        "# Two consecutive codes for aws iam enable-mfa-device (the seed is never printed):
breakglass mfa codes --seed-file mfa-seed.txt",
    ),
    (
        "session",
        "breakglass session credentials --credential prod
breakglass session end --credential prod",
    ),
    (
        "session credentials",
        "# In ~/.aws/config (once; it serves each new break-glass session of prod):
#   credential_process = breakglass session credentials --credential prod
breakglass session credentials --credential prod",
    ),
    ("session end", "breakglass session end --credential prod"),
    (
        "aws-policy",
        "breakglass aws-policy --account 123456789012
breakglass aws-policy --account 123456789012 --user breakglass --role breakglass-emergency",
    ),
    (
        "aws-setup",
        "# A CloudFormation template: user, policy, role, and the alert to two addresses
breakglass aws-setup --account 123456789012 --permissions-arn arn:aws:iam::aws:policy/AdministratorAccess --alert-email security@example.com --alert-email oncall@example.com
breakglass aws-setup --account 123456789012 --permissions-file emergency-policy.json --format terraform
# Make it now with your own administrator credentials; the key and MFA seed go to a 0600 file for seal
breakglass aws-setup --apply --account 123456789012 --permissions-arn arn:aws:iam::aws:policy/AdministratorAccess --alert-email security@example.com --key-out /dev/shm/bg-key.json
# A member account's role, reached with assume --chain
breakglass aws-setup --account 210987654321 --member-of arn:aws:iam::123456789012:role/breakglass-emergency --role breakglass-member --permissions-arn arn:aws:iam::aws:policy/ReadOnlyAccess",
    ),
    (
        "review",
        "breakglass review 3f9c2a1b7e40 > review.md
breakglass review 3f9c2a1b7e40 --trail-bucket org-cloudtrail --trail-prefix trails --format html --out review.html",
    ),
    (
        "revoke-sessions",
        "breakglass revoke-sessions --role breakglass-emergency --user breakglass",
    ),
    (
        "rotate",
        "breakglass rotate aws-prod --share-file ann.share --share-file bo.share
breakglass rotate aws-prod --mfa --share-file ann.share --share-file bo.share",
    ),
    (
        "rekey",
        "# New shares for the same custodians (old shares stop working):
breakglass rekey --share-file ann.share --share-file bo.share --shares-dir ./new-shares
# Retire cy, add dee:
breakglass rekey --share-file ann.share --share-file bo.share --custodian ann --custodian bo --custodian dee --threshold 2 --shares-dir ./new-shares",
    ),
    (
        "operator",
        "# On the new operator's machine: the key to hand to a security officer
breakglass operator key > bo.pub
# The security officer adds them, with a quorum:
breakglass operator add bo --role cloud-admin --key \"$(cat bo.pub)\" --share-file ann.share --share-file cy.share
breakglass operator list",
    ),
    (
        "operator key",
        "# Printed on standard output, to hand to a security officer:
breakglass operator key > bo.pub",
    ),
    (
        "operator list",
        "breakglass operator list
breakglass operator list --json",
    ),
    (
        "operator add",
        "# A cloud administrator, who seals (bo.pub: what `operator key` printed on their machine):
breakglass operator add bo --role cloud-admin --key \"$(cat bo.pub)\" --share-file ann.share --share-file cy.share
# A second security officer, who may also seal:
breakglass operator add dee --role security-officer --role cloud-admin --key \"$(cat dee.pub)\" --share-file ann.share --share-file cy.share",
    ),
    (
        "operator remove",
        "breakglass operator remove bo --share-file ann.share --share-file cy.share",
    ),
    (
        "upgrade",
        "# A vault made by the previous release, on the machine that pinned it:
breakglass upgrade --operator ann --share-file ann.share --share-file bo.share
# On another machine, with the fingerprint on the old share cards and the token's module:
breakglass upgrade --operator ann --module /usr/lib/softhsm/libsofthsm2.so --fingerprint INV4-EJCA-FMXN-MG6M-BIYP-J2MF-DZEQ-QH63 --share-file ann.share --share-file bo.share",
    ),
    (
        "recovery",
        "breakglass recovery enable --threshold 3 --share-file ann.share --share-file bo.share --shares-dir ./recovery-shares",
    ),
    (
        "recovery enable",
        "breakglass recovery enable --threshold 3 --share-file ann.share --share-file bo.share --shares-dir ./recovery-shares
breakglass recovery enable --threshold 3 --custodian ann --custodian bo --custodian cy --custodian dee --shares-stdin --shares-dir ./recovery-shares",
    ),
    (
        "recover",
        "breakglass recover db-root --reason \"all tokens lost\" --share-file ann.share --share-file bo.share --share-file ann.recovery.share --share-file bo.recovery.share --share-file cy.recovery.share --output file:db-root.out",
    ),
    (
        "ceremony",
        "breakglass ceremony open --purpose assume --credential aws-prod --reason \"INC-1234\" --out request.json
breakglass ceremony contribute request.json --share-file ann.share --out ann.contribution",
    ),
    (
        "ceremony open",
        "breakglass ceremony open --purpose assume --credential aws-prod --reason \"INC-1234: SSO down\" --out request.json
breakglass ceremony open --purpose drill --reason \"quarterly drill\" --expires 2d --out drill-request.json",
    ),
    (
        "ceremony contribute",
        "breakglass ceremony contribute request.json --share-file ann.share --out ann.contribution
# Words typed on the terminal instead of a file:
breakglass ceremony contribute request.json --custodian ann --out ann.contribution",
    ),
    (
        "ceremony status",
        "breakglass ceremony status 3f9c2a1b --contribution ann.contribution --contribution bo.contribution
breakglass ceremony status 3f9c2a1b --json --contribution ann.contribution",
    ),
    (
        "ceremony cancel",
        "breakglass ceremony cancel 3f9c2a1b",
    ),
    (
        "ceremony close",
        "breakglass ceremony close 3f9c2a1b --contribution ann.contribution --contribution bo.contribution --format env
breakglass ceremony close 3f9c2a1b --contribution ann.contribution --contribution bo.contribution --shares-dir ./new-shares",
    ),
    (
        "share",
        "breakglass share verify --share-file ann.share
breakglass share card --share-file ann.share --out ./cards",
    ),
    (
        "share verify",
        "breakglass share verify --share-file ann.share
breakglass share verify --share-file ann.share.age --identity ann.key
# The words typed on the terminal (hidden):
breakglass share verify",
    ),
    (
        "share card",
        "# A lost or damaged card, printed again from the share file (no rekey):
breakglass share card --share-file ann.share --out ./cards
breakglass share card --share-file ann.share.age --identity ann.key --out ./cards",
    ),
    (
        "audit",
        "breakglass audit verify\nbreakglass audit show\nbreakglass audit report --format html > audit-report.html",
    ),
    ("audit verify", "breakglass audit verify\nbreakglass audit verify --json"),
    (
        "audit show",
        "breakglass audit show
# What happened to one credential since a day (UTC):
breakglass audit show --since 2026-11-01 --credential prod
# The last 20 lines, however long the log:
breakglass audit show --tail 20
breakglass audit show --json",
    ),
    (
        "audit report",
        "# For the auditors: every seal, ceremony, opening, drill... with the checkpoint covering it:
breakglass audit report --format html > audit-report.html
# One incident, for one credential:
breakglass audit report --since 2026-11-30 --credential prod --format md > incident-4521.md
breakglass audit report --format json",
    ),
    (
        "runbook",
        "# The printable procedure; status says when this file is out of date:
breakglass runbook --format html --out runbook.html
breakglass runbook > runbook.md",
    ),
    (
        "audit repair",
        "# after a crash or a full disk (exit 8), as the security officer:\nbreakglass audit repair\nbreakglass audit repair --yes",
    ),
    (
        "completions",
        "# bash (current shell, then for every new one):
source <(breakglass completions bash)
breakglass completions bash > ~/.local/share/bash-completion/completions/breakglass
breakglass completions zsh > ~/.zfunc/_breakglass
breakglass completions fish > ~/.config/fish/completions/breakglass.fish",
    ),
    (
        "man",
        "breakglass man --out ./man && man -l ./man/breakglass.1
sudo breakglass man --out /usr/local/share/man/man1",
    ),
];

/// The examples for the command at `path` (`""` for the top level).
pub fn for_command(path: &str) -> Option<&'static str> {
    EXAMPLES.iter().find(|(p, _)| *p == path).map(|(_, e)| *e)
}

/// `text` as the "Examples:" section.
fn section(text: &str) -> String {
    let lines: Vec<String> = text.lines().map(|l| format!("  {l}")).collect();
    format!("Examples:\n{}", lines.join("\n"))
}

fn with_examples(mut command: clap::Command, path: &str) -> clap::Command {
    if let Some(text) = for_command(path) {
        let mut help = section(text);
        if let Some(existing) = command.get_after_help() {
            help = format!("{help}\n\n{existing}");
        }
        command = command.after_help(help);
    }
    let names: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        command = command.mut_subcommand(&name, |sub| with_examples(sub, &sub_path));
    }
    command
}

/// The whole command line: the clap definitions with the examples attached.
pub fn command() -> clap::Command {
    with_examples(Cli::command(), "")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn paths(command: &clap::Command, path: &str, out: &mut Vec<String>) {
        out.push(path.to_owned());
        for sub in command.get_subcommands() {
            let sub_path = if path.is_empty() {
                sub.get_name().to_owned()
            } else {
                format!("{path} {}", sub.get_name())
            };
            paths(sub, &sub_path, out);
        }
    }

    #[test]
    fn every_command_has_examples_and_every_example_names_a_command() {
        let mut all = Vec::new();
        paths(&Cli::command(), "", &mut all);
        for path in &all {
            assert!(
                for_command(path).is_some(),
                "`breakglass {path}` has no example"
            );
        }
        for (path, _) in EXAMPLES {
            assert!(all.contains(&path.to_string()), "no command {path:?}");
        }
    }

    /// Every example line that runs breakglass parses with the real definitions (shell
    /// variables and redirections aside).
    #[test]
    fn every_example_parses() {
        for (path, text) in EXAMPLES {
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                // Where breakglass is the command run: at the start, after a pipe, a process
                // substitution, sudo or an environment assignment (not as an argument of another
                // program, e.g. `aws iam ... --user-name breakglass`).
                let Some((at, _)) = line.match_indices("breakglass ").find(|(at, _)| {
                    let before = line[..*at].trim_end();
                    let last = before.split_whitespace().last().unwrap_or("");
                    before.is_empty()
                        || before.ends_with('(')
                        || before.ends_with('|')
                        || last == "sudo"
                        || last.contains('=')
                }) else {
                    continue;
                };
                let rest = &line[at..];
                let rest = rest.split(" > ").next().unwrap();
                let rest = rest.split(" < ").next().unwrap();
                let rest = rest.split(" && ").next().unwrap();
                let words = shell_words(rest.trim_end_matches(')'));
                let parsed = command().try_get_matches_from(&words);
                assert!(
                    parsed.is_ok(),
                    "example of {path:?}: {rest}: {}",
                    parsed.err().map(|e| e.to_string()).unwrap_or_default()
                );
            }
        }
    }

    /// Splits on spaces, keeping "double-quoted words" together.
    pub(crate) fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !current.is_empty() {
                        words.push(std::mem::take(&mut current));
                    }
                }
                _ => current.push(c),
            }
        }
        if !current.is_empty() {
            words.push(current);
        }
        words
    }
}
