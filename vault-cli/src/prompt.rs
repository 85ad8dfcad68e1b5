//! Terminal and file input of secrets: PINs, shares. Secrets are read without echo from the
//! terminal, or from files and standard input; never from argv. When standard input is not a
//! terminal, nothing waits on a prompt: the command fails at once naming the option to use.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use secrecy::SecretString;
use vault_core::hsm::PinRole;
use vault_core::manifest::PinSource;
use vault_core::quorum::{Collector, Progress, Share};
use vault_core::vault::{PinProvider, Vault};
use zeroize::Zeroizing;

use crate::cli::ShareSources;
use crate::commands::share::RetiredSet;
use crate::exit::{Failure, fail};

/// Whether a person is at the terminal (stdin and stderr both terminals).
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Reads one line without echo from the terminal.
pub fn hidden(prompt: &str) -> Result<Zeroizing<String>> {
    Ok(Zeroizing::new(
        rpassword::prompt_password(prompt).context("reading from the terminal")?,
    ))
}

/// Asks a yes/no question on the terminal.
pub fn confirm(question: &str) -> Result<bool> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Goes on only when `yes` was given or the person at the terminal answers yes to `question`;
/// off a terminal without `yes`, fails naming why `--yes` is needed (`without_terminal`).
pub fn confirmed(yes: bool, without_terminal: &str, question: &str, refused: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !interactive() {
        return Err(fail(Failure::Usage, without_terminal.to_owned()));
    }
    if !confirm(question)? {
        return Err(fail(Failure::Usage, refused.to_owned()));
    }
    Ok(())
}

/// PINs from the environment, a file, or the terminal.
pub struct CliPins;

impl PinProvider for CliPins {
    fn pin(
        &self,
        label: &str,
        role: PinRole,
        source: &PinSource,
    ) -> Result<SecretString, vault_core::Error> {
        let problem = |message: String| {
            vault_core::Error::Hsm(vault_core::hsm::HsmError::PinUnavailable {
                token: label.to_owned(),
                reason: message,
            })
        };
        match source {
            PinSource::Env { var } => std::env::var(var).map(SecretString::from).map_err(|_| {
                problem(format!(
                    "the {role} PIN comes from the environment variable {var}, which is not set"
                ))
            }),
            PinSource::File { path } => std::fs::read_to_string(path)
                .map(Zeroizing::new)
                .map(|text| SecretString::from(text.lines().next().unwrap_or_default().to_owned()))
                .map_err(|e| problem(format!("the {role} PIN comes from the file {path}: {e}"))),
            PinSource::Prompt if interactive() => {
                rpassword::prompt_password(format!("{role} PIN for token {label:?}: "))
                    .map(SecretString::from)
                    .map_err(|e| problem(format!("reading the PIN from the terminal: {e}")))
            }
            PinSource::Prompt => Err(problem(format!(
                "the {role} PIN is asked on the terminal, but there is none: run on a terminal"
            ))),
            PinSource::Quorum => Err(problem("the PIN comes from the quorum".into())),
        }
    }
}

/// A share file's text; an age-encrypted one is decrypted with `identity`.
pub fn share_file_text(path: &Path, identity: Option<&Path>) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading share file {}", path.display()))?,
    );
    if crate::custodian_keys::is_age(&text) {
        return crate::custodian_keys::decrypt(&text, identity, path);
    }
    Ok(text)
}

/// A custodian's own share: from `share_file` (age-encrypted ones with `identity`), or typed
/// on the terminal without echo.
pub fn own_share(share_file: Option<&Path>, identity: Option<&Path>) -> Result<Zeroizing<String>> {
    match share_file {
        Some(path) => mnemonic_from_file(path, identity),
        None if interactive() => hidden("your share (hidden): "),
        None => Err(fail(
            Failure::Usage,
            "no --share-file and no terminal to ask on",
        )),
    }
}

/// The mnemonic in a share file: every line that is not blank and not a `#` comment.
pub fn mnemonic_from_file(path: &Path, identity: Option<&Path>) -> Result<Zeroizing<String>> {
    let text = share_file_text(path, identity)?;
    let words: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    Ok(Zeroizing::new(words.join(" ")))
}

fn describe(progress: &Progress) -> String {
    let groups: Vec<String> = progress
        .groups
        .iter()
        .map(|(g, have, need)| format!("group {g}: {have} of {need}"))
        .collect();
    format!(
        "{} (need {} of {} groups)",
        groups.join(", "),
        progress.group_threshold,
        progress.group_count
    )
}

/// One share set to gather shares for: the quorum, the recovery set, or the new quorum of an
/// interrupted rekey. Shares go to the set whose identifier they carry.
pub struct ShareSet<'a> {
    /// How the set is called in messages ("quorum", "recovery", ...).
    pub label: &'a str,
    /// Its layout and commitments.
    pub set: &'a vault_core::manifest::Quorum,
}

/// What a share set needs, for people: "3 of [alice, bob, carol]" or, with groups,
/// "2 of 3 groups: 2 of [..] (admins); ...".
fn requirement(set: &vault_core::manifest::Quorum) -> String {
    let groups: Vec<String> = set
        .groups
        .iter()
        .map(|g| {
            let members: Vec<&str> = g.members.iter().map(|m| m.name.as_str()).collect();
            format!("{} of [{}]", g.threshold, members.join(", "))
        })
        .collect();
    if groups.len() == 1 {
        groups.join("")
    } else {
        format!(
            "{} of {} groups: {}",
            set.group_threshold,
            groups.len(),
            groups.join("; ")
        )
    }
}

fn describe_all(sets: &[ShareSet<'_>], collectors: &[Collector]) -> String {
    if sets.len() == 1 {
        return describe(&collectors[0].progress());
    }
    sets.iter()
        .zip(collectors)
        .map(|(set, c)| {
            if c.is_empty() {
                format!("{}: none yet (needs {})", set.label, requirement(set.set))
            } else {
                format!("{}: {}", set.label, describe(&c.progress()))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks one share against the share sets and adds it to its set's collection; returns its
/// custodian (with the set's name when there are several).
fn accept(
    vault_id: &str,
    sets: &[ShareSet<'_>],
    retired: Option<&RetiredSet>,
    collectors: &mut [Collector],
    position: usize,
    mnemonic: &str,
    source: &str,
) -> Result<String> {
    let share = Share::parse(mnemonic, position)
        .map_err(vault_core::Error::from)
        .with_context(|| source.to_owned())?;
    let found = sets.iter().enumerate().find_map(|(i, s)| {
        s.set
            .verify_share(vault_id, &share)
            .map(|c| (i, c.name.clone()))
    });
    let Some((index, custodian)) = found else {
        if let Some(why) = retired.and_then(|r| r.explain(&share)) {
            return Err(fail(
                Failure::Quorum,
                format!("{source}: share {position}: {why}"),
            ));
        }
        let what = sets
            .iter()
            .map(|s| s.label)
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(fail(
            Failure::Quorum,
            format!(
                "{source}: share {position} does not belong to this vault's {what} (it matches none of the custodians' commitments)"
            ),
        ));
    };
    collectors[index]
        .add(position, share)
        .map_err(vault_core::Error::from)
        .with_context(|| source.to_owned())?;
    Ok(if sets.len() == 1 {
        custodian
    } else {
        format!("{custodian}, {}", sets[index].label)
    })
}

/// Gathers shares from files, stdin, or the terminal, validating each on entry.
pub fn gather_shares(vault: &Vault, sources: &ShareSources) -> Result<Collector> {
    gather_quorum_shares(vault.manifest(), Some(vault), sources)
}

/// Gathers a quorum of the shares of `manifest` (one not authenticated yet: a format-1 vault
/// being upgraded).
pub fn gather_quorum_shares(
    manifest: &vault_core::manifest::Manifest,
    retired_of: Option<&Vault>,
    sources: &ShareSources,
) -> Result<Collector> {
    if let Some(collected) = sources.collected.borrow_mut().take() {
        return Ok(collected);
    }
    let set = ShareSet {
        label: "quorum",
        set: &manifest.quorum,
    };
    let retired = retired_of.and_then(RetiredSet::of);
    let mut collectors = gather_sets_with(&manifest.vault_id, sources, &[set], retired.as_ref())?;
    Ok(collectors.remove(0))
}

/// Gathers a quorum of the vault's shares and of its recovery set's, mixed in any order.
pub fn gather_with_recovery(
    vault: &Vault,
    sources: &ShareSources,
) -> Result<(Collector, Collector)> {
    let manifest = vault.manifest();
    let recovery = manifest
        .recovery
        .as_ref()
        .ok_or(vault_core::vault::VaultError::NoRecovery)?;
    let sets = [
        ShareSet {
            label: "quorum",
            set: &manifest.quorum,
        },
        ShareSet {
            label: "recovery",
            set: recovery,
        },
    ];
    let retired = RetiredSet::of(vault);
    let mut collectors = gather_sets_with(&manifest.vault_id, sources, &sets, retired.as_ref())?;
    let recovery = collectors.pop().unwrap_or_default();
    let quorum = collectors.pop().unwrap_or_default();
    Ok((quorum, recovery))
}

/// Gathers shares for several share sets at once (each share goes to the set it belongs to),
/// from files, stdin, or the terminal, validating each on entry. A terminal asks until every
/// set is complete.
pub fn gather_sets(
    vault_id: &str,
    sources: &ShareSources,
    sets: &[ShareSet<'_>],
) -> Result<Vec<Collector>> {
    gather_sets_with(vault_id, sources, sets, None)
}

/// [`gather_sets`], saying of a share of the set a rekey retired that it was retired, and by
/// which rekey.
fn gather_sets_with(
    vault_id: &str,
    sources: &ShareSources,
    sets: &[ShareSet<'_>],
    retired: Option<&RetiredSet>,
) -> Result<Vec<Collector>> {
    let mut collectors: Vec<Collector> = sets.iter().map(|_| Collector::new()).collect();
    let mut position = 0;
    for path in &sources.share_files {
        position += 1;
        let mnemonic = mnemonic_from_file(path, sources.identity.as_deref())?;
        let custodian = accept(
            vault_id,
            sets,
            retired,
            &mut collectors,
            position,
            &mnemonic,
            &format!("share file {}", path.display()),
        )?;
        eprintln!(
            "accepted share {position} ({custodian}) from {}",
            path.display()
        );
    }
    if sources.shares_stdin {
        // Sized beyond any share, so reading a line never grows it (growing would free the
        // smaller buffer with the words read so far).
        let mut line = Zeroizing::new(String::with_capacity(8192));
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        loop {
            line.clear();
            if lock
                .read_line(&mut line)
                .context("reading shares from standard input")?
                == 0
            {
                break;
            }
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            position += 1;
            let custodian = accept(
                vault_id,
                sets,
                retired,
                &mut collectors,
                position,
                line.trim(),
                "standard input",
            )?;
            eprintln!("accepted share {position} ({custodian}) from standard input");
        }
    }
    if position == 0 {
        if !interactive() {
            return Err(fail(
                Failure::Usage,
                "no shares given and no terminal to ask on: pass --share-file FILE (repeat) or --shares-stdin",
            ));
        }
        eprintln!("Enter the custodians' shares, one at a time (input is hidden).");
        while !collectors.iter().all(|c| c.progress().complete) {
            position += 1;
            let mnemonic = hidden(&format!("share {position}: "))?;
            if mnemonic.trim().is_empty() {
                return Err(fail(
                    Failure::Quorum,
                    format!(
                        "stopped before the quorum was met: {}",
                        describe_all(sets, &collectors)
                    ),
                ));
            }
            match accept(
                vault_id,
                sets,
                retired,
                &mut collectors,
                position,
                &mnemonic,
                "terminal",
            ) {
                Ok(custodian) => eprintln!(
                    "  accepted: {custodian}. {}",
                    describe_all(sets, &collectors)
                ),
                Err(e) => {
                    eprintln!("  refused: {e:#}. Try again.");
                    position -= 1;
                }
            }
        }
    }
    for (set, collector) in sets.iter().zip(&collectors) {
        if sets.len() > 1 && !collector.progress().complete {
            let needs = requirement(set.set);
            return Err(fail(
                Failure::Quorum,
                if collector.is_empty() {
                    format!(
                        "no share of the {} set was given: it needs {needs}",
                        set.label
                    )
                } else {
                    format!(
                        "the {} share set is not complete: {}; it needs {needs}",
                        set.label,
                        describe(&collector.progress())
                    )
                },
            ));
        }
    }
    Ok(collectors)
}

/// Reads a secret input (a credential to seal) from a file or stdin.
pub fn read_secret_input(
    from_file: Option<&PathBuf>,
    from_stdin: bool,
) -> Result<Option<Zeroizing<Vec<u8>>>> {
    if let Some(path) = from_file {
        return Ok(Some(Zeroizing::new(
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )));
    }
    if from_stdin {
        let mut bytes = Zeroizing::new(Vec::new());
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .context("reading standard input")?;
        return Ok(Some(bytes));
    }
    Ok(None)
}
