//! `breakglass share verify|card`: a custodian alone checks their share, or prints their card
//! again.

use std::path::Path;

use anyhow::Result;
use vault_core::audit::{Event, may_name};
use vault_core::manifest::Quorum;
use vault_core::quorum::Share;
use vault_core::vault::{CustodianShare, Vault};

use crate::card::Issue;
use crate::cli::{ShareCardArgs, ShareVerifyArgs};
use crate::exit::{Failure, fail};
use crate::prompt::own_share;

/// The quorum share set the last rekey retired, read from the succession statement that rekey
/// left in the vault directory, and which rekey it was (from the audit log). Used only to say
/// why a share is refused: a share of it is refused either way, so the statement's signature
/// is not needed here (opening the vault checks it whenever it moves a pin).
pub struct RetiredSet {
    quorum: Quorum,
    vault_id: String,
    /// Read for the message only when a share of the retired set is found (reading the whole
    /// log on every gathering would cost every unseal the log's length).
    audit: vault_core::audit::AuditLog,
}

impl RetiredSet {
    /// The retired set of `vault`, if a rekey left one.
    pub fn of(vault: &Vault) -> Option<RetiredSet> {
        let bytes = std::fs::read(vault.store().path(vault_core::store::SUCCESSION)).ok()?;
        let succession: vault_core::trust::identity::Succession =
            serde_json::from_slice(&bytes).ok()?;
        Some(RetiredSet {
            quorum: succession.previous.quorum,
            vault_id: succession.previous.vault_id,
            audit: vault.audit(),
        })
    }

    /// "the rekey of TIME (manifest version N)", from the last rekey entry of the log.
    fn by(&self) -> String {
        let rekey = self
            .audit
            .rfind_matching(|line| may_name(line, "rekey"), |e| e.event == "rekey")
            .ok()
            .flatten();
        match rekey {
            Some(entry) => format!(
                "the rekey of {}{}",
                entry.time,
                entry
                    .details
                    .get("manifest_version")
                    .map(|v| format!(" (manifest version {v})"))
                    .unwrap_or_default()
            ),
            None => "a rekey".to_owned(),
        }
    }

    /// When `share` is a share of this retired set: what to tell its custodian. The statement
    /// and the log are read unauthenticated here, so what they say is shown with control
    /// characters made visible.
    pub fn explain(&self, share: &Share) -> Option<String> {
        use vault_core::trust::untrusted_text::render_untrusted;
        let custodian = self.quorum.verify_share(&self.vault_id, share)?;
        let name = render_untrusted(&custodian.name);
        Some(format!(
            "it is {name}'s share of the set retired by {}: it opens nothing any more; \
             use the share that rekey issued to {name}",
            render_untrusted(&self.by()),
        ))
    }
}

/// Whose share `share` is: the set (quorum or recovery), the custodian, and whether it is a
/// recovery share.
fn identify<'v>(vault: &'v Vault, share: &Share) -> Result<(&'v Quorum, String, bool)> {
    let manifest = vault.manifest();
    let vault_id = &manifest.vault_id;
    std::iter::once((&manifest.quorum, false))
        .chain(manifest.recovery.iter().map(|r| (r, true)))
        .find_map(|(set, recovery)| {
            set.verify_share(vault_id, share)
                .map(|c| (set, c.name.clone(), recovery))
        })
        .ok_or_else(|| {
            let why = RetiredSet::of(vault)
                .and_then(|retired| retired.explain(share))
                .unwrap_or_else(|| {
                    "it is not a share of this vault: it matches none of the custodians' commitments"
                        .to_owned()
                });
            fail(
                Failure::Quorum,
                format!("this share is intact (its checksum holds) but {why}"),
            )
        })
}

/// Compares fingerprints as cards and files show them: case, dashes and spaces ignored.
fn same_fingerprint(a: &str, b: &str) -> bool {
    let normalise = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    normalise(a) == normalise(b)
}

/// What a share file's comment lines say of it (docs/format.md, "Share files and cards"): the
/// one reader of share file headers (`share verify`, `ceremony contribute`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct FileHeader {
    pub custodian: Option<String>,
    pub recovery: bool,
    pub vault_id: Option<String>,
    pub fingerprint: Option<String>,
    pub group: Option<String>,
    /// Member (1-based), members, group threshold, group threshold of the set, groups.
    pub numbers: Option<[u8; 5]>,
}

impl FileHeader {
    /// The header of a share file's `text` (the words below it are not looked at).
    pub fn parse(text: &str) -> FileHeader {
        let mut header = FileHeader::default();
        for line in text.lines().filter_map(|l| l.strip_prefix("# ")) {
            if let Some(name) = line.strip_prefix("breakglass share of custodian ") {
                header.custodian = Some(name.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("breakglass RECOVERY share") {
                header.recovery = true;
                header.custodian = rest
                    .rsplit_once(" of custodian ")
                    .map(|(_, name)| name.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("vault ") {
                let (id, fingerprint) = match rest.split_once(',') {
                    Some((id, more)) => (id, more.trim().strip_prefix("fingerprint ")),
                    None => (rest, None),
                };
                header.vault_id = Some(id.trim().to_owned());
                header.fingerprint = fingerprint.map(|f| f.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("group ")
                && let Some((name, numbers)) = rest.rsplit_once(": member ")
            {
                header.group = serde_json::from_str::<String>(name).ok();
                let found: Vec<u8> = numbers
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|n| n.parse().ok())
                    .collect();
                header.numbers = <[u8; 5]>::try_from(found).ok();
            }
        }
        header
    }
}

/// `share verify` with no vault directory: the share's own checksum, and its file's header
/// against the fingerprint the custodian's card shows and against the share's words.
fn verify_offline(args: &ShareVerifyArgs, fingerprint: &str) -> Result<()> {
    let (text, mnemonic) = match &args.share_file {
        Some(path) => (
            crate::prompt::share_file_text(path, args.identity.as_deref())?,
            crate::prompt::mnemonic_from_file(path, args.identity.as_deref())?,
        ),
        None => (
            zeroize::Zeroizing::new(String::new()),
            own_share(None, args.identity.as_deref())?,
        ),
    };
    let share = Share::parse(&mnemonic, 1).map_err(vault_core::Error::from)?;
    let info = share.info();
    let header = FileHeader::parse(&text);
    let mut checked =
        vec!["the words and their checksum (a wrong or swapped word fails here)".to_owned()];
    let mut not_checked = vec![format!(
        "that these words are the ones the vault's commitment{} was made from, and that the \
         share set is still current (not retired by a rekey): that needs the vault directory \
         (breakglass share verify --vault DIR)",
        header
            .custodian
            .as_deref()
            .map(|c| format!(" for {c}"))
            .unwrap_or_default()
    )];
    match &header.fingerprint {
        Some(named) if same_fingerprint(named, fingerprint) => checked.push(format!(
            "the share file names vault {} with fingerprint {named}, the one you gave",
            header.vault_id.as_deref().unwrap_or("?")
        )),
        Some(named) => {
            return Err(fail(
                Failure::Quorum,
                format!(
                    "the share file names the vault with fingerprint {named}, not {fingerprint}: \
                     this share is of another vault (or the card is)"
                ),
            ));
        }
        None => not_checked.push(
            "the vault it is of: no share file header names a fingerprint (words typed, or a \
             file without its header)"
                .to_owned(),
        ),
    }
    if let Some([member, _, threshold, group_threshold, groups]) = header.numbers {
        let words = [
            info.member_index + 1,
            info.member_threshold,
            info.group_threshold,
            info.group_count,
        ];
        if words != [member, threshold, group_threshold, groups] {
            return Err(fail(
                Failure::Quorum,
                format!(
                    "the share file's header (member {member}, {threshold} of the group needed, \
                     {group_threshold} of {groups} groups) does not describe its words (member {}, \
                     {} of the group, {} of {} groups): the words or the header were changed",
                    words[0], words[1], words[2], words[3]
                ),
            ));
        }
        checked.push("the header's member number and thresholds are the words' own".to_owned());
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "offline": true,
                "custodian": header.custodian, "group": header.group,
                "member": info.member_index + 1, "recovery": header.recovery,
                "share_set": info.identifier,
                "vault_id": header.vault_id, "fingerprint": fingerprint,
                "checked": checked, "not_checked": not_checked,
            })
        );
    } else {
        println!(
            "{} intact (offline check): custodian {}, group {} member {}, share set {}",
            if header.recovery {
                "recovery share"
            } else {
                "share"
            },
            header.custodian.as_deref().unwrap_or("(not named)"),
            header
                .group
                .as_deref()
                .map(|g| format!("{g:?}"))
                .unwrap_or_else(|| format!("{}", info.group_index + 1)),
            info.member_index + 1,
            info.identifier
        );
        for line in &checked {
            println!("  checked: {line}");
        }
        for line in &not_checked {
            println!("  not checked: {line}");
        }
    }
    Ok(())
}

/// `breakglass share verify`.
pub fn verify(vault_arg: Option<&Path>, args: &ShareVerifyArgs) -> Result<()> {
    if vault_arg.is_none()
        && let Some(fingerprint) = &args.fingerprint
    {
        return verify_offline(args, fingerprint);
    }
    let vault = super::open_vault(vault_arg)?;
    if let Some(fingerprint) = &args.fingerprint
        && !same_fingerprint(fingerprint, &vault.identity())
    {
        return Err(fail(
            Failure::Integrity,
            format!(
                "the vault directory's fingerprint is {}, not {fingerprint}: it is not the vault \
                 your card names",
                vault.identity()
            ),
        ));
    }
    let mnemonic = own_share(args.share_file.as_deref(), args.identity.as_deref())?;
    let share = Share::parse(&mnemonic, 1).map_err(vault_core::Error::from)?;
    // A share of the quorum, or of the recovery set.
    let (set, custodian, recovery) = identify(&vault, &share)?;
    let info = share.info();
    let group = &set.groups[usize::from(info.group_index)];
    let mut event =
        Event::new("share_verify").detail("set", if recovery { "recovery" } else { "quorum" });
    event.custodians = vec![custodian.clone()];
    if let Err(e) = vault.record(event) {
        eprintln!("breakglass: warning: could not record the check in the audit log: {e:#}");
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "custodian": custodian, "group": group.name, "member": info.member_index + 1,
                "recovery": recovery,
                "vault_id": vault.manifest().vault_id, "fingerprint": vault.identity(), "valid": true,
            })
        );
    } else {
        println!(
            "{} OK: custodian {custodian}, group {:?} member {}; vault {} fingerprint {}",
            if recovery { "recovery share" } else { "share" },
            group.name,
            info.member_index + 1,
            vault.manifest().vault_id,
            vault.identity()
        );
    }
    Ok(())
}

/// When the share set in use was issued: the time of the last audit entry that made it (init
/// or rekey; for the recovery set also recovery enable). `None` when the log has no such entry.
fn set_issued(vault: &Vault, recovery: bool) -> Option<String> {
    let makers: &[&str] = if recovery {
        &["init", "rekey", "recovery_enable"]
    } else {
        &["init", "rekey"]
    };
    vault
        .audit()
        .rfind_matching(
            |line| makers.iter().any(|m| may_name(line, m)),
            |e| makers.contains(&e.event.as_str()),
        )
        .ok()?
        .map(|e| e.time)
}

/// `breakglass share card`: the card of one share, printed again from the share itself.
pub fn card(vault_arg: Option<&Path>, args: &ShareCardArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    let mnemonic = own_share(args.share_file.as_deref(), args.identity.as_deref())?;
    let share = Share::parse(&mnemonic, 1).map_err(vault_core::Error::from)?;
    let (set, custodian, recovery) = identify(&vault, &share)?;
    let group = set.groups[usize::from(share.info().group_index)]
        .name
        .clone();
    let issued = CustodianShare {
        custodian: custodian.clone(),
        group,
        recovery,
        share,
    };
    let issue = Issue {
        set_issued: set_issued(&vault, recovery),
        printed: vault_core::clock::rfc3339(vault_core::clock::now_unix()),
    };
    let path = args
        .out
        .join(format!("{}.html", crate::card::stem(&issued)));
    if path.exists() {
        return Err(fail(
            Failure::Usage,
            format!(
                "{} exists: breakglass never overwrites a share card (destroy the old card first, or pick another --out)",
                path.display()
            ),
        ));
    }
    // A share kept encrypted to the custodian's key gets a card without its words, as at init.
    let mut encrypted = std::collections::BTreeMap::new();
    if let Some(file) = &args.share_file
        && std::fs::read_to_string(file).is_ok_and(|t| crate::custodian_keys::is_age(&t))
    {
        encrypted.insert(
            crate::card::stem(&issued),
            crate::card::EncryptedShare {
                file: file.clone(),
                recipient: None,
            },
        );
    }
    let written = crate::card::write(
        vault.manifest(),
        &vault.identity(),
        std::slice::from_ref(&issued),
        &args.out,
        &issue,
        &encrypted,
    )?;
    let mut event =
        Event::new("share_card").detail("set", if recovery { "recovery" } else { "quorum" });
    event.custodians = vec![custodian.clone()];
    if let Err(e) = vault.record(event) {
        eprintln!("breakglass: warning: could not record the reissue in the audit log: {e:#}");
    }
    for path in written {
        println!(
            "{} card of custodian {custodian} written to {} (0600): print it, then delete the file",
            if recovery { "recovery share" } else { "share" },
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::FileHeader;

    #[test]
    fn a_share_file_header_is_read_as_init_writes_it_and_what_is_missing_stays_unknown() {
        let quorum = FileHeader::parse(
            "# breakglass share of custodian alice\n\
             # vault 0123abcd, fingerprint ABCD-EFGH\n\
             # group \"ops\": member 2 of 3; 2 of this group needed; 1 of 1 groups needed\n\
             # Keep this secret and offline.\n\
             word word word\n",
        );
        assert_eq!(
            quorum,
            FileHeader {
                custodian: Some("alice".into()),
                recovery: false,
                vault_id: Some("0123abcd".into()),
                fingerprint: Some("ABCD-EFGH".into()),
                group: Some("ops".into()),
                numbers: Some([2, 3, 2, 1, 1]),
            }
        );
        let recovery = FileHeader::parse(
            "# breakglass RECOVERY share (only for `breakglass recover`, when every token is lost) of custodian bob\n\
             # vault 0123abcd, fingerprint ABCD-EFGH\n",
        );
        assert!(recovery.recovery);
        assert_eq!(recovery.custodian.as_deref(), Some("bob"));
        assert_eq!(recovery.vault_id.as_deref(), Some("0123abcd"));
        assert_eq!(recovery.fingerprint.as_deref(), Some("ABCD-EFGH"));
        // A vault line without its fingerprint still names the vault.
        let bare = FileHeader::parse("# vault 0123abcd\nword word\n");
        assert_eq!(bare.vault_id.as_deref(), Some("0123abcd"));
        assert_eq!(bare.fingerprint, None);
        assert_eq!(FileHeader::parse("word word\n"), FileHeader::default());
    }
}
