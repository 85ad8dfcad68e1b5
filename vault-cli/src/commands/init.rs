//! `breakglass init`: a new vault, its token keys and the custodians' shares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use secrecy::ExposeSecret;
use vault_core::manifest::{Manifest, PinSource, Policy};
use vault_core::quorum::Share;
use vault_core::store::write_new_secret_file;
use vault_core::vault::{CustodianShare, GroupDef, InitOptions, RecoveryDef, TokenTarget, Vault};

use crate::card::{set_of, stem};
use crate::cli::{HandoutArgs, InitArgs, LayoutArgs};
use crate::custodian_keys::CustodianRecipient;
use crate::exit::{Failure, fail};
use crate::prompt::{CliPins, hidden, interactive};

/// The layout the options give; `None` when they give none.
pub(super) fn layout(args: &LayoutArgs) -> Result<Option<(u8, Vec<GroupDef>)>> {
    match (args.custodians.is_empty(), args.groups.is_empty()) {
        (false, true) => {
            let threshold = args.threshold.ok_or_else(|| {
                fail(
                    Failure::Usage,
                    "--custodian needs --threshold K (how many custodians are needed)",
                )
            })?;
            Ok(Some((
                1,
                vec![GroupDef {
                    name: "custodians".into(),
                    threshold,
                    members: args.custodians.clone(),
                }],
            )))
        }
        (true, false) => {
            let groups = args
                .groups
                .iter()
                .map(|g| {
                    let parts: Vec<&str> = g.splitn(3, ':').collect();
                    let bad = || {
                        fail(
                            Failure::Usage,
                            format!("--group {g:?}: expected NAME:THRESHOLD:MEMBER,MEMBER,..."),
                        )
                    };
                    let [name, threshold, members] = parts.as_slice() else {
                        return Err(bad());
                    };
                    Ok(GroupDef {
                        name: (*name).to_owned(),
                        threshold: threshold.parse().map_err(|_| bad())?,
                        members: members
                            .split(',')
                            .map(|m| m.trim().to_owned())
                            .filter(|m| !m.is_empty())
                            .collect(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Some((args.group_threshold, groups)))
        }
        (false, false) => Err(fail(
            Failure::Usage,
            "use either --custodian/--threshold or --group/--group-threshold, not both",
        )),
        (true, true) => Ok(None),
    }
}

fn share_file_text(m: &Manifest, identity: &str, issued: &CustodianShare) -> String {
    let set = set_of(m, issued);
    let info = issued.share.info();
    let group = &set.groups[usize::from(info.group_index)];
    let kind = if issued.recovery {
        "RECOVERY share (only for `breakglass recover`, when every token is lost)"
    } else {
        "share"
    };
    format!(
        "# breakglass {kind} of custodian {custodian}\n\
         # vault {vault_id}, fingerprint {fingerprint}\n\
         # group {group:?}: member {member} of {count}; {threshold} of this group needed; {gt} of {gc} groups needed\n\
         # Keep this secret and offline. Check it any day: breakglass share verify --share-file FILE\n\
         # In an emergency: give it to the coordinator's `breakglass unseal NAME --share-file FILE`,\n\
         # or type the words when asked. Any SLIP-39 tool can read it too.\n\
         {mnemonic}\n",
        custodian = issued.custodian,
        vault_id = m.vault_id,
        fingerprint = identity,
        group = group.name,
        member = info.member_index + 1,
        count = group.members.len(),
        threshold = group.threshold,
        gt = set.group_threshold,
        gc = set.groups.len(),
        mnemonic = issued.share.to_mnemonic().expose_secret(),
    )
}

fn ensure_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Writes every share file and reads it back: the file holds the custodian's share intact.
/// Returns the files in the order of `shares`.
pub(super) fn write_share_files(
    m: &Manifest,
    identity: &str,
    shares: &[CustodianShare],
    dir: &Path,
    recipients: &Recipients,
) -> Result<Vec<PathBuf>> {
    ensure_dir(dir)?;
    let mut written = Vec::new();
    for issued in shares {
        let text = zeroize::Zeroizing::new(share_file_text(m, identity, issued));
        // Checked before it is written (and encrypted): the text reads back as this custodian's
        // share of this vault.
        let words: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        let share = Share::parse(&words.join(" "), 1).map_err(vault_core::Error::from)?;
        anyhow::ensure!(
            set_of(m, issued)
                .verify_share(&m.vault_id, &share)
                .map(|c| c.name.as_str())
                == Some(issued.custodian.as_str()),
            "the share file of {} does not read back as their share",
            issued.custodian
        );
        let path = match recipients.get(&issued.custodian) {
            Some(recipient) => {
                let path = dir.join(format!("{}.share.age", stem(issued)));
                write_new_secret_file(&path, recipient.encrypt(text.as_bytes())?.as_bytes())?;
                path
            }
            None => {
                let path = dir.join(format!("{}.share", stem(issued)));
                write_new_secret_file(&path, text.as_bytes())?;
                let mnemonic = crate::prompt::mnemonic_from_file(&path, None)?;
                anyhow::ensure!(
                    Share::parse(&mnemonic, 1).is_ok(),
                    "{} does not read back",
                    path.display()
                );
                path
            }
        };
        written.push(path);
    }
    Ok(written)
}

/// Clears the screen and its scrollback (`ESC[3J`), where a share shown earlier would stay.
const CLEAR: &str = "\x1b[H\x1b[2J\x1b[3J";

/// Shows each custodian their share on a cleared screen and has them type it back. Anything but
/// "yes" at "Ready?" stops before that share is shown.
pub(super) fn hand_out_on_terminal(identity: &str, shares: &[CustodianShare]) -> Result<()> {
    for issued in shares {
        eprint!("{CLEAR}");
        eprintln!(
            "{} for custodian {} (group {}). Only {} should look now.",
            if issued.recovery {
                "RECOVERY share"
            } else {
                "Share"
            },
            issued.custodian,
            issued.group,
            issued.custodian
        );
        if !crate::prompt::confirm("Ready?")? {
            eprint!("{CLEAR}");
            return Err(fail(
                Failure::Usage,
                format!(
                    "stopped before {}'s share was shown: the shares are not all handed out",
                    issued.custodian
                ),
            ));
        }
        eprintln!("\n{}\n", issued.share.to_mnemonic().expose_secret());
        eprintln!("Write these words down. Fingerprint of this vault: {identity}");
        crate::prompt::confirm("Written down?")?;
        eprint!("{CLEAR}");
        loop {
            let typed = hidden(&format!(
                "{}: type your share back to confirm: ",
                issued.custodian
            ))?;
            match Share::parse(&typed, 1) {
                Ok(share) if share.same_as(&issued.share) => break,
                Ok(_) => eprintln!("that is another share; try again"),
                Err(e) => eprintln!("{e}; try again"),
            }
        }
    }
    eprint!("{CLEAR}");
    Ok(())
}

/// Whose share files are encrypted, and to what: decided before anything changes, from the
/// recipients the vault remembers, `--recipient` and `--no-recipient`.
#[derive(Debug, Default)]
pub(super) struct Recipients {
    /// Custodian → the recipient their share files are encrypted to.
    keys: BTreeMap<String, CustodianRecipient>,
    /// What was decided for each custodian, in order, for the operator to read.
    notes: Vec<String>,
}

impl Recipients {
    /// The recipient `custodian`'s share files are encrypted to.
    pub(super) fn get(&self, custodian: &str) -> Option<&CustodianRecipient> {
        self.keys.get(custodian)
    }

    /// What the manifest remembers next: `current`, with this handout's decision for each of
    /// `members` (encrypted: remembered; plaintext: forgotten).
    pub(super) fn remembered(
        &self,
        current: &BTreeMap<String, String>,
        members: &[String],
    ) -> BTreeMap<String, String> {
        let mut next = current.clone();
        for member in members {
            match self.keys.get(member) {
                Some(recipient) => next.insert(member.clone(), recipient.text().to_owned()),
                None => next.remove(member),
            };
        }
        next
    }

    /// Says, per custodian, what happens to their share file.
    pub(super) fn tell(&self) {
        if !self.notes.is_empty() {
            eprintln!("Share files:");
        }
        for note in &self.notes {
            eprintln!("  {note}");
        }
    }
}

/// Decides each member's recipient: `--recipient` replaces, `--no-recipient` drops, otherwise
/// the one `remembered` is kept. A remembered recipient needs share files (`--shares-dir`).
fn decide_recipients(
    handout: &HandoutArgs,
    members: &[String],
    remembered: &BTreeMap<String, String>,
) -> Result<Recipients> {
    let mut given = BTreeMap::new();
    for text in &handout.recipients {
        let (name, recipient) = crate::custodian_keys::parse_recipient(text)?;
        if !members.contains(&name) {
            return Err(fail(
                Failure::Usage,
                format!("--recipient {name}=...: {name} is not a custodian"),
            ));
        }
        if handout.no_recipients.contains(&name) {
            return Err(fail(
                Failure::Usage,
                format!("--recipient {name}=... and --no-recipient {name}: give one of them"),
            ));
        }
        given.insert(name, recipient);
    }
    for name in &handout.no_recipients {
        if !members.contains(name) {
            return Err(fail(
                Failure::Usage,
                format!("--no-recipient {name}: {name} is not a custodian"),
            ));
        }
        if !remembered.contains_key(name) {
            return Err(fail(
                Failure::Usage,
                format!("--no-recipient {name}: the vault remembers no recipient for {name}"),
            ));
        }
    }
    let mut recipients = Recipients::default();
    let mut seen = std::collections::BTreeSet::new();
    for name in members.iter().filter(|m| seen.insert(m.as_str())) {
        let old = remembered.get(name);
        let note = if let Some(recipient) = given.remove(name) {
            let note = match old {
                Some(old) if old == recipient.text() => format!(
                    "{name}: encrypted to {} (as before)",
                    recipient.fingerprint()
                ),
                Some(_) => format!(
                    "{name}: encrypted to the new recipient {} (--recipient; it replaces the one remembered)",
                    recipient.fingerprint()
                ),
                None => format!(
                    "{name}: encrypted to {} (--recipient; remembered for later rekeys)",
                    recipient.fingerprint()
                ),
            };
            recipients.keys.insert(name.clone(), recipient);
            note
        } else if handout.no_recipients.contains(name) {
            format!("{name}: in plaintext (--no-recipient: the remembered recipient is dropped)")
        } else if let Some(text) = old {
            let recipient = CustodianRecipient::parse(text).map_err(|reason| {
                fail(
                    Failure::Usage,
                    format!(
                        "the recipient the vault remembers for {name} is not usable ({reason}): \
                         replace it with --recipient {name}=... or drop it with --no-recipient {name}"
                    ),
                )
            })?;
            let note = format!(
                "{name}: encrypted to the remembered recipient {}",
                recipient.fingerprint()
            );
            recipients.keys.insert(name.clone(), recipient);
            note
        } else {
            format!(
                "{name}: in plaintext (no recipient: give --recipient {name}=... to encrypt it)"
            )
        };
        recipients.notes.push(note);
    }
    if handout.shares_dir.is_none() {
        recipients.notes.clear();
        if !recipients.keys.is_empty() {
            let names: Vec<&str> = recipients.keys.keys().map(String::as_str).collect();
            return Err(fail(
                Failure::Usage,
                format!(
                    "the vault remembers a recipient for {}: their shares are handed out only as \
                     files encrypted to it: give --shares-dir DIR (or --no-recipient NAME to hand \
                     that share out in plaintext)",
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(recipients)
}

/// Checked before anything changes: a terminal or a place for the shares, recipients that
/// name members (those `remembered` kept unless `--recipient` or `--no-recipient` says
/// otherwise), and no share file or card that exists already.
pub(super) fn check_handout(
    handout: &HandoutArgs,
    stems: &[String],
    members: &[String],
    remembered: &BTreeMap<String, String>,
) -> Result<Recipients> {
    if handout.shares_dir.is_none() && handout.share_cards.is_none() && !interactive() {
        return Err(fail(
            Failure::Usage,
            "no --shares-dir or --share-cards, and no terminal to show the shares on",
        ));
    }
    let recipients = decide_recipients(handout, members, remembered)?;
    for (dir, extension) in [
        (&handout.shares_dir, "share"),
        (&handout.shares_dir, "share.age"),
        (&handout.share_cards, "html"),
    ] {
        let Some(dir) = dir else { continue };
        for stem in stems {
            let path = dir.join(format!("{stem}.{extension}"));
            if path.exists() {
                return Err(fail(
                    Failure::Usage,
                    format!(
                        "{} exists: breakglass never overwrites a share",
                        path.display()
                    ),
                ));
            }
        }
    }
    Ok(recipients)
}

/// Hands the shares out: files (read back), cards, or the terminal. Returns the files written.
/// The card of a share encrypted to its custodian says where the file is instead of the words.
pub(super) fn deliver(
    m: &Manifest,
    identity: &str,
    shares: &[CustodianShare],
    handout: &HandoutArgs,
    recipients: &Recipients,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut encrypted = BTreeMap::new();
    if let Some(shares_dir) = &handout.shares_dir {
        let files = write_share_files(m, identity, shares, shares_dir, recipients)?;
        for (issued, file) in shares.iter().zip(&files) {
            if let Some(recipient) = recipients.get(&issued.custodian) {
                encrypted.insert(
                    stem(issued),
                    crate::card::EncryptedShare {
                        file: file.clone(),
                        recipient: Some(recipient.fingerprint()),
                    },
                );
            }
        }
        written.extend(files);
    }
    if let Some(cards_dir) = &handout.share_cards {
        written.extend(crate::card::write(
            m,
            identity,
            shares,
            cards_dir,
            &crate::card::Issue::now(),
            &encrypted,
        )?);
    }
    if handout.shares_dir.is_none() && handout.share_cards.is_none() {
        hand_out_on_terminal(identity, shares)?;
    }
    Ok(written)
}

/// The refusal of `init` into `dir`, where an `init` of vault `vault_id` was interrupted: what
/// to remove, exactly (the directory, the share files and cards of the planned `stems` that
/// exist, this machine's key and anchor for the vault that never was), then run init again.
fn unfinished(
    dir: &Path,
    vault_id: &str,
    config: &vault_core::trust::machine::ConfigDir,
    stems: &[String],
    handout: &HandoutArgs,
) -> anyhow::Error {
    let mut remove = vec![format!("rm -r {}", dir.display())];
    for (place, extension) in [
        (&handout.shares_dir, "share"),
        (&handout.shares_dir, "share.age"),
        (&handout.share_cards, "html"),
    ] {
        let Some(place) = place else { continue };
        for stem in stems {
            let path = place.join(format!("{stem}.{extension}"));
            if path.exists() {
                remove.push(format!("rm {}", path.display()));
            }
        }
    }
    // This machine's key and anchor for that vault, and a temporary file of either that the
    // interruption left: every file there named after the vault.
    let machine = [
        config.operator_key_path(vault_id).ok(),
        config.anchor_path(vault_id).ok(),
    ];
    for place in machine.iter().flatten().filter_map(|p| p.parent()) {
        let Ok(entries) = std::fs::read_dir(place) else {
            continue;
        };
        let mut named: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(vault_id))
            .map(|e| e.path())
            .collect();
        named.sort();
        remove.extend(named.iter().map(|p| format!("rm {}", p.display())));
    }
    fail(
        Failure::Usage,
        format!(
            "{} holds vault {vault_id}, whose `breakglass init` was interrupted before every share \
             was handed out: it was never made. Remove what that init left, then run init again:\n  {}",
            dir.display(),
            remove.join("\n  ")
        ),
    )
}

/// `breakglass init`.
pub fn run(vault_arg: Option<&Path>, args: &InitArgs) -> Result<()> {
    let dir = super::vault_dir(vault_arg)?;
    let config = super::machine_config()?;
    let (group_threshold, groups) = layout(&args.layout)?.ok_or_else(|| {
        fail(
            Failure::Usage,
            "no custodians: pass --custodian NAME (repeat) with --threshold K, or --group NAME:T:MEMBERS",
        )
    })?;
    let custodians: Vec<String> = groups.iter().flat_map(|g| g.members.clone()).collect();
    let recovery = args.recovery_threshold.map(|threshold| RecoveryDef {
        threshold,
        members: if args.recovery_custodians.is_empty() {
            custodians.clone()
        } else {
            args.recovery_custodians.clone()
        },
    });
    // Nothing half-made: every share file and card must be new before the vault is created.
    let mut stems = custodians.clone();
    let mut members = custodians.clone();
    if let Some(def) = &recovery {
        stems.extend(def.members.iter().map(|m| format!("{m}.recovery")));
        members.extend(def.members.iter().cloned());
    }
    if let Some(vault_id) = Vault::unfinished_init(&dir) {
        return Err(unfinished(&dir, &vault_id, &config, &stems, &args.handout));
    }
    let recipients = check_handout(&args.handout, &stems, &members, &BTreeMap::new())?;
    if recovery.is_some() {
        eprintln!("{}\n", super::recovery::RECOVERY_TRADE_OFF);
    }
    let user_pin = args.pin_source.clone();
    let so_pin = args.so_pin_source.clone();
    let token = if args.dev_softhsm {
        super::use_dev_softhsm_path(&dir)?;
        TokenTarget {
            module: vault_core::hsm::softhsm_module().ok_or_else(|| {
                fail(
                    Failure::Hsm,
                    "--dev-softhsm needs SoftHSM: apt-get install softhsm2 (or run scripts/setup)",
                )
            })?,
            label: "breakglass-dev".into(),
            init_token: true,
            softhsm_conf: Some(format!(
                "{}/softhsm2.conf",
                vault_core::hsm::DEV_SOFTHSM_DIR
            )),
        }
    } else {
        let (Some(module), Some(label)) = (&args.module, &args.token) else {
            return Err(fail(
                Failure::Usage,
                "which token? pass --module PATH --token LABEL, or --dev-softhsm for a trial vault",
            ));
        };
        if user_pin == PinSource::Quorum && !args.init_token {
            return Err(fail(
                Failure::Usage,
                "--pin-source quorum sets the token's user PIN, so it needs --init-token (an uninitialised token)",
            ));
        }
        TokenTarget {
            module: module.clone(),
            label: label.clone(),
            init_token: args.init_token,
            softhsm_conf: None,
        }
    };
    let options = InitOptions {
        group_threshold,
        groups,
        token,
        user_pin,
        so_pin,
        pins: &CliPins,
        policy: Policy {
            require_reason: !args.reason_optional,
            drill_interval_days: args.drill_interval_days,
            ..Policy::default()
        },
        iteration_exponent: args.iteration_exponent,
        recovery,
        config: &config,
        operator: args.operator.clone(),
        recipients: recipients.remembered(&BTreeMap::new(), &members),
    };
    let existed = dir.exists();
    let (vault, shares) = Vault::init_pending(&dir, &options)?;
    let fingerprint = vault.identity();
    // Shown on the terminal, every share must be confirmed before the vault counts as made:
    // otherwise it is removed again and nothing is pinned.
    let written = match deliver(
        vault.manifest(),
        &fingerprint,
        &shares,
        &args.handout,
        &recipients,
    ) {
        Ok(written) => written,
        Err(e) if args.handout.shares_dir.is_none() && args.handout.share_cards.is_none() => {
            drop(vault);
            Vault::discard_new(&dir, existed);
            return Err(e.context(format!(
                "the vault was not made: {} removed (run init again to start over)",
                dir.display()
            )));
        }
        Err(e) => {
            return Err(e.context(format!(
                "the vault in {} was not made: its shares are not all written; run the same \
                 init again, which lists what to remove",
                dir.display()
            )));
        }
    };
    // Pinned before the vault counts as made: a vault this machine has not pinned would need
    // its fingerprint typed in, and init has not printed it yet.
    super::pin_fingerprint(&vault.manifest().vault_id, &fingerprint).map_err(|e| {
        anyhow::anyhow!(
            "{}: the fingerprint of the new vault could not be pinned on this machine ({}), so \
             the vault was not made: run the same init again, which lists what to remove",
            dir.display(),
            e.root_cause()
        )
    })?;
    // Every share is out and the fingerprint pinned: from here on the vault is one.
    vault.finish_init()?;
    let (files, cards): (Vec<PathBuf>, Vec<PathBuf>) = written
        .into_iter()
        .partition(|p| p.extension().is_none_or(|e| e != "html"));
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "vault": dir, "vault_id": vault.manifest().vault_id, "fingerprint": fingerprint,
                "custodians": vault.manifest().custodian_names(),
                "share_files": files, "share_cards": cards,
            })
        );
    } else {
        println!(
            "vault {} created in {}",
            vault.manifest().vault_id,
            dir.display()
        );
        println!("fingerprint: {fingerprint}");
        println!(
            "custodians: {}",
            vault.manifest().custodian_names().join(", ")
        );
        for f in files.iter().chain(&cards) {
            println!("  wrote {}", f.display());
        }
        println!("Give each custodian their share; keep the fingerprint with the runbook.");
    }
    Ok(())
}
