//! The envelope records this machine verified in a vault's audit log, kept so that opening a
//! credential walks only the lines appended since (see `vault/envelopes.rs`).
//!
//! `<config>/records/<vault id>.records` (0600) is a header line, then one record per
//! credential sorted by name, each the same 130 bytes (the name padded with spaces to 64, a
//! space, the digest's 64 lowercase hex digits, a newline), so that opening finds one record
//! with a binary search of about 14 positioned reads, without reading them all (at 10,000
//! credentials, parsing them all was a fifth of an `unseal`):
//!
//! ```text
//! {"format":"breakglass-envelope-records/2","vault_id":"…","at":{"seq":…,"hash":"…","offset":…}}
//! db-admin                                                         5f0c…(64 hex digits)
//! prod-root                                                        9a1e…
//! ```
//!
//! `at` is the last line walked. Like the anchor, the file is this machine's memory, never
//! the vault directory's: a header of another format or vault, a body that is not whole
//! records, or a line the log no longer holds at `at`, and the file is ignored and the whole
//! log walked again. A record found damaged (or out of order) finds nothing, and an opening
//! that finds no record, or another digest, walks the whole log again before it refuses
//! (`Vault::check_recorded`): the file can make an opening slower, never refuse one.
//!
//! `<config>/records/<vault id>.through.json` ([`RecordsThrough`]) notes how far past the
//! records file the log was walked and recorded nothing, so that the records are rewritten
//! only when a record changes.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use super::TrustError;
use super::machine::{AuditAnchor, ConfigDir, read_note, write_note_unsynced};

/// The format of a [`RecordsFile`] (its header's `format`).
pub const RECORDS_FORMAT: &str = "breakglass-envelope-records/2";

/// The width a name is padded to: the longest breakglass accepts.
const NAME_WIDTH: usize = 64;
/// The length of a record's digest: a hex SHA-256.
const DIGEST_LEN: usize = 64;
/// The length of one record: name, space, digest, newline.
const RECORD_LEN: usize = NAME_WIDTH + 1 + DIGEST_LEN + 1;

/// A records file's first line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    vault_id: String,
    at: AuditAnchor,
}

/// Where a [`RecordsFile`]'s records are.
enum Body {
    /// Made by this process (and written from here).
    Memory(Vec<u8>),
    /// In the file, from byte `start` (read a record at a time).
    Disk { file: std::fs::File, start: u64 },
}

/// This machine's envelope records for a vault: up to the line `at`, each credential's latest
/// signed record.
pub struct RecordsFile {
    /// The vault.
    pub vault_id: String,
    /// The last line walked.
    pub at: AuditAnchor,
    body: Body,
    /// How many records.
    count: usize,
}

impl RecordsFile {
    /// The records `records` (credential name → digest, sorted by name), walked up to `at`;
    /// `None` if one of them cannot be written as a record (a name breakglass would refuse, a
    /// digest that is not a hex SHA-256: such a record is kept in memory, and not on disk, so
    /// that no older record shows through in its place).
    pub fn new<'a>(
        vault_id: &str,
        at: AuditAnchor,
        records: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<RecordsFile> {
        let mut body = Vec::new();
        let mut previous: Option<&str> = None;
        for (name, digest) in records {
            let mut record = [b' '; RECORD_LEN];
            let name_bytes = name.as_bytes();
            record
                .get_mut(..name_bytes.len())?
                .copy_from_slice(name_bytes);
            record
                .get_mut(NAME_WIDTH + 1..RECORD_LEN - 1)?
                .copy_from_slice(digest.as_bytes().get(..DIGEST_LEN)?);
            record[RECORD_LEN - 1] = b'\n';
            let ordered = previous.is_none_or(|p| p < name);
            if !ordered || digest.len() != DIGEST_LEN || parse(&record) != Some((name, digest)) {
                return None;
            }
            body.extend_from_slice(&record);
            previous = Some(name);
        }
        Some(RecordsFile {
            vault_id: vault_id.to_owned(),
            at,
            count: body.len() / RECORD_LEN,
            body: Body::Memory(body),
        })
    }

    /// The records of `previous` (if any) with `later` (records walked after it, which win)
    /// laid over them, up to the line `at`. `None` if one cannot be written, or one of
    /// `previous`'s does not read.
    pub fn updated(
        previous: Option<&RecordsFile>,
        vault_id: &str,
        at: AuditAnchor,
        later: &BTreeMap<String, String>,
    ) -> Option<RecordsFile> {
        let older = match previous {
            Some(previous) => previous.records()?,
            None => Vec::new(),
        };
        let mut merged: BTreeMap<&str, &str> = older
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_str()))
            .collect();
        merged.extend(later.iter().map(|(n, d)| (n.as_str(), d.as_str())));
        RecordsFile::new(vault_id, at, merged)
    }

    /// Opens this machine's records for `vault_id`, if it has a file whose header is this
    /// format's and this vault's, and whose body is whole records (none of which is read yet).
    pub fn read(config: &ConfigDir, vault_id: &str) -> Option<RecordsFile> {
        let file = std::fs::File::open(config.records_path(vault_id).ok()?).ok()?;
        let length = file.metadata().ok()?.len();
        // The header: JSON well under 1 KiB (a vault id and a line's anchor).
        let mut first = vec![0u8; 1024.min(usize::try_from(length).ok()?)];
        file.read_exact_at(&mut first, 0).ok()?;
        let split = first.iter().position(|b| *b == b'\n')?;
        let header: Header = serde_json::from_slice(&first[..split]).ok()?;
        if header.format != RECORDS_FORMAT || header.vault_id != vault_id {
            return None;
        }
        let start = u64::try_from(split).ok()? + 1;
        let body = usize::try_from(length - start).ok()?;
        if body % RECORD_LEN != 0 {
            return None;
        }
        Some(RecordsFile {
            vault_id: header.vault_id,
            at: header.at,
            body: Body::Disk { file, start },
            count: body / RECORD_LEN,
        })
    }

    /// Writes them atomically, 0600 (and removes the file of the format before, which no
    /// release reads again).
    pub fn write(&self, config: &ConfigDir) -> Result<(), TrustError> {
        let Body::Memory(body) = &self.body else {
            return Ok(());
        };
        let path = config.records_path(&self.vault_id)?;
        config.make_dir_for(&path)?;
        let header = Header {
            format: RECORDS_FORMAT.into(),
            vault_id: self.vault_id.clone(),
            at: self.at.clone(),
        };
        let mut bytes = serde_json::to_vec(&header).unwrap_or_default();
        bytes.push(b'\n');
        bytes.extend_from_slice(body);
        crate::store::write_atomic(&path, &bytes).map_err(TrustError::Store)?;
        if let Ok(before) = config.records_v1_path(&self.vault_id) {
            let _ = std::fs::remove_file(before);
        }
        Ok(())
    }

    /// The digest the latest record of `name` names, by a binary search of the records. `None`
    /// if there is none, or a record it reads is damaged (see the module's documentation).
    pub fn get(&self, name: &str) -> Option<String> {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = low + (high - low) / 2;
            let record = self.record(middle)?;
            let (found, digest) = parse(&record)?;
            match found.cmp(name) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Some(digest.to_owned()),
            }
        }
        None
    }

    /// How many credentials have a record.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every record (name, digest), in the file's order: `None` if one is damaged or out of
    /// order.
    pub fn records(&self) -> Option<Vec<(String, String)>> {
        let all;
        let body = match &self.body {
            Body::Memory(body) => body.as_slice(),
            Body::Disk { file, start } => {
                let mut bytes = vec![0u8; self.count * RECORD_LEN];
                file.read_exact_at(&mut bytes, *start).ok()?;
                all = bytes;
                all.as_slice()
            }
        };
        let mut records: Vec<(String, String)> = Vec::with_capacity(self.count);
        for record in body.chunks_exact(RECORD_LEN) {
            let (name, digest) = parse(record)?;
            if records
                .last()
                .is_some_and(|(last, _)| last.as_str() >= name)
            {
                return None;
            }
            records.push((name.to_owned(), digest.to_owned()));
        }
        Some(records)
    }

    /// Record `i`'s bytes.
    fn record(&self, i: usize) -> Option<Vec<u8>> {
        let at = i.checked_mul(RECORD_LEN)?;
        match &self.body {
            Body::Memory(body) => body.get(at..at + RECORD_LEN).map(<[u8]>::to_vec),
            Body::Disk { file, start } => {
                let mut record = vec![0u8; RECORD_LEN];
                file.read_exact_at(&mut record, start + u64::try_from(at).ok()?)
                    .ok()?;
                Some(record)
            }
        }
    }
}

impl std::fmt::Debug for RecordsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordsFile")
            .field("vault_id", &self.vault_id)
            .field("at", &self.at)
            .field("records", &self.count)
            .finish_non_exhaustive()
    }
}

/// The name and digest of one record, if it is one: a name breakglass accepts padded with
/// spaces to [`NAME_WIDTH`], a space, 64 lowercase hex digits, a newline.
fn parse(record: &[u8]) -> Option<(&str, &str)> {
    if record.len() != RECORD_LEN || record[NAME_WIDTH] != b' ' || record[RECORD_LEN - 1] != b'\n' {
        return None;
    }
    let padded = &record[..NAME_WIDTH];
    let length = padded.iter().position(|b| *b == b' ').unwrap_or(NAME_WIDTH);
    let name = std::str::from_utf8(&padded[..length]).ok()?;
    let padding_ok = padded[length..].iter().all(|b| *b == b' ');
    let digest = &record[NAME_WIDTH + 1..RECORD_LEN - 1];
    let digest_ok = digest
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    if !padding_ok || !digest_ok || crate::store::validate_name(name).is_err() {
        return None;
    }
    Some((name, std::str::from_utf8(digest).ok()?))
}

/// The format of [`RecordsThrough`].
pub const RECORDS_THROUGH_FORMAT: &str = "breakglass-envelope-records-through/1";

/// How far past a [`RecordsFile`] this machine has walked the log and found no new record
/// (`<config>/records/<vault id>.through.json`, 0600): a few hundred bytes rewritten when
/// commands append lines that record no envelope (an unseal, a drill), so that the records
/// themselves (one line per credential) are rewritten only when a record changes. It counts
/// only beside the records it names (`records_at`, their `at`); otherwise it is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsThrough {
    /// Always [`RECORDS_THROUGH_FORMAT`].
    pub format: String,
    /// The vault.
    pub vault_id: String,
    /// The `at` of the records this continues.
    pub records_at: AuditAnchor,
    /// The last line walked: none after `records_at` up to it records an envelope.
    pub at: AuditAnchor,
}

impl RecordsThrough {
    /// Reads this machine's note for `vault_id` if it continues `records` (else `None`).
    pub fn read(config: &ConfigDir, records: &RecordsFile) -> Option<RecordsThrough> {
        let through: RecordsThrough = read_note(config.records_through_path(&records.vault_id))?;
        (through.format == RECORDS_THROUGH_FORMAT
            && through.vault_id == records.vault_id
            && through.records_at == records.at
            && through.at.seq > records.at.seq)
            .then_some(through)
    }

    /// Writes it atomically, 0600, unsynced: every opening that walks new lines moves it, and
    /// after a crash an older note (or none: [`RecordsThrough::read`] ignores one that does not
    /// read) only makes the next opening walk further. The records file it continues is synced
    /// before it names it.
    pub fn write(&self, config: &ConfigDir) -> Result<(), TrustError> {
        write_note_unsynced(config, config.records_through_path(&self.vault_id)?, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::trust::machine::tests::config;

    fn at(seq: u64) -> AuditAnchor {
        AuditAnchor {
            seq,
            hash: "cd".repeat(32),
            offset: seq * 100,
            signed_lines: true,
        }
    }

    fn digest(i: usize) -> String {
        format!("{i:064x}")
    }

    /// Records for `n` credentials named `c0000`…, each with its own digest.
    fn records(n: usize) -> BTreeMap<String, String> {
        (0..n).map(|i| (format!("c{i:04}"), digest(i))).collect()
    }

    fn listed(file: &RecordsFile) -> BTreeMap<String, String> {
        file.records().expect("whole records").into_iter().collect()
    }

    /// Every record found by its name and no other name finding one, in memory and on disk.
    fn check_lookups(file: &RecordsFile, all: &BTreeMap<String, String>) {
        assert_eq!(file.len(), all.len());
        assert_eq!(file.is_empty(), all.is_empty());
        for (name, digest) in all {
            assert_eq!(file.get(name).as_ref(), Some(digest), "{name}");
        }
        assert_eq!(&listed(file), all);
        // Before the first, between two, after the last, a prefix of one, one longer.
        for absent in ["a", "c0000a", "c00", "c9999", "d", "c0001 "] {
            assert_eq!(file.get(absent), None, "{absent}");
        }
    }

    #[test]
    fn every_record_is_found_by_its_name_and_no_other_name_finds_one() {
        let (_dir, config) = config();
        let vault_id = "0a".repeat(16);
        for n in [0, 1, 2, 3, 10, 1000] {
            let all = records(n);
            let file = RecordsFile::updated(None, &vault_id, at(7), &all).unwrap();
            check_lookups(&file, &all);
            file.write(&config).unwrap();
            let read = RecordsFile::read(&config, &vault_id).unwrap();
            assert_eq!(read.at, at(7));
            check_lookups(&read, &all);
        }
        // The longest name breakglass accepts fills its field.
        let long = BTreeMap::from([("l".repeat(64), digest(1))]);
        let file = RecordsFile::updated(None, &vault_id, at(7), &long).unwrap();
        check_lookups(&file, &long);
    }

    #[test]
    fn the_records_walked_later_win_and_the_others_are_kept() {
        let (_dir, config) = config();
        let vault_id = "0a".repeat(16);
        RecordsFile::updated(None, &vault_id, at(7), &records(3))
            .unwrap()
            .write(&config)
            .unwrap();
        let before = RecordsFile::read(&config, &vault_id).unwrap();
        let later = BTreeMap::from([
            ("c0001".to_owned(), digest(100)),
            ("b".to_owned(), digest(101)),
            ("z".to_owned(), digest(102)),
        ]);
        let after = RecordsFile::updated(Some(&before), &vault_id, at(9), &later).unwrap();
        assert_eq!(after.at, at(9));
        let expected = [
            ("b", digest(101)),
            ("c0000", digest(0)),
            ("c0001", digest(100)),
            ("c0002", digest(2)),
            ("z", digest(102)),
        ];
        let expected: BTreeMap<String, String> = expected
            .into_iter()
            .map(|(n, d)| (n.to_owned(), d))
            .collect();
        assert_eq!(listed(&after), expected);
        // A record that cannot be written as one: no file (the caller keeps it in memory).
        for (name, digest) in [
            ("Upper", digest(1)),
            ("two words", digest(1)),
            (&*"l".repeat(65), digest(1)),
            ("c0001", "ab".into()),
            ("c0001", "AB".repeat(32)),
            ("c0001", format!("{}0", "ab".repeat(32))),
            ("c0001", format!("{} ", "ab".repeat(32))),
        ] {
            let bad = BTreeMap::from([(name.to_owned(), digest.clone())]);
            assert!(
                RecordsFile::updated(Some(&before), &vault_id, at(9), &bad).is_none(),
                "{name} {digest}"
            );
        }
    }

    #[test]
    fn the_file_is_read_only_for_its_vault_in_its_format_and_a_damaged_record_finds_nothing() {
        let (_dir, config) = config();
        let vault_id = "0a".repeat(16);
        let file = RecordsFile::updated(None, &vault_id, at(7), &records(3)).unwrap();
        assert!(RecordsFile::read(&config, &vault_id).is_none());
        // The file of the format before is removed when this one is written.
        let v1 = config.records_v1_path(&vault_id).unwrap();
        config.make_dir_for(&v1).unwrap();
        std::fs::write(&v1, b"{}").unwrap();
        file.write(&config).unwrap();
        assert!(!v1.exists());
        let path = config.records_path(&vault_id).unwrap();
        assert_eq!(
            path,
            config
                .root()
                .join("records")
                .join(format!("{vault_id}.records"))
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(header["format"], RECORDS_FORMAT);
        assert_eq!(header["vault_id"], vault_id.as_str());
        assert_eq!(header["at"]["seq"], 7);
        let first = format!("c0000{} {}", " ".repeat(59), digest(0));
        assert_eq!(lines.next(), Some(first.as_str()));
        // Copied in place of another vault's records: not that vault's.
        let other = "0b".repeat(16);
        std::fs::copy(&path, config.records_path(&other).unwrap()).unwrap();
        assert!(RecordsFile::read(&config, &other).is_none());
        // Another header, or not whole records: not read (the whole log is walked again).
        let header_line = &text[..=text.find('\n').unwrap()];
        for altered in [
            text.replace(RECORDS_FORMAT, "breakglass-envelope-records/1"),
            text.replace("\"at\"", "\"extra\":1,\"at\""),
            text[..text.len() - 1].to_owned(),
            format!("{text}\n"),
            "{".to_owned(),
            String::new(),
        ] {
            std::fs::write(&path, &altered).unwrap();
            assert!(RecordsFile::read(&config, &vault_id).is_none(), "{altered}");
        }
        // Whole records, one damaged (or out of order): what reads it finds nothing, and the
        // records do not list.
        let record = |i: usize| format!("c{i:04}{} {}\n", " ".repeat(59), digest(i));
        let damaged = [
            record(1).replace("c0001", "C0001"),
            record(1).replace("c0001 ", "c0001\0"),
            record(1).replace("c0001 ", "c00 1 "),
            record(1).replace("01\n", "0g\n"),
            record(1).replace("01\n", "0A\n"),
            record(1).replace("01\n", "01 "),
            record(1).replace(&format!(" {}", digest(1)), &format!("-{}", digest(1))),
        ];
        for damaged in damaged {
            assert_eq!(damaged.len(), RECORD_LEN);
            let altered = format!("{header_line}{}{damaged}{}", record(0), record(2));
            std::fs::write(&path, &altered).unwrap();
            let read = RecordsFile::read(&config, &vault_id).unwrap();
            assert_eq!(read.get("c0001"), None, "{damaged}");
            assert_eq!(read.records(), None, "{damaged}");
            assert!(RecordsFile::updated(Some(&read), &vault_id, at(9), &records(1)).is_none());
        }
        let swapped = format!("{header_line}{}{}{}", record(1), record(0), record(2));
        std::fs::write(&path, &swapped).unwrap();
        let read = RecordsFile::read(&config, &vault_id).unwrap();
        assert_eq!(read.records(), None);
        let twice = format!("{header_line}{}{}{}", record(0), record(1), record(1));
        std::fs::write(&path, &twice).unwrap();
        let read = RecordsFile::read(&config, &vault_id).unwrap();
        assert_eq!(read.records(), None);
        // A header and no record reads (a vault with nothing sealed).
        std::fs::write(&path, header_line).unwrap();
        assert!(RecordsFile::read(&config, &vault_id).unwrap().is_empty());
    }

    #[test]
    fn records_given_out_of_order_or_twice_make_no_file_and_its_debug_form_shows_no_digest() {
        let vault_id = "0a".repeat(16);
        let d = digest(1);
        let make = |names: &[&str]| {
            RecordsFile::new(&vault_id, at(7), names.iter().map(|n| (*n, d.as_str())))
        };
        assert!(make(&["b", "a"]).is_none());
        assert!(make(&["a", "a"]).is_none());
        assert!(make(&["a", "c", "b"]).is_none());
        let file = make(&["a", "b"]).unwrap();
        assert_eq!(file.get("b"), Some(d.clone()));
        let shown = format!("{file:?}");
        assert!(
            shown.contains(&vault_id) && shown.contains("records: 2") && !shown.contains(&d),
            "{shown}"
        );
    }

    #[test]
    fn a_through_note_counts_only_beside_the_records_it_continues_and_past_their_line() {
        let (_dir, config) = config();
        let vault_id = "0a".repeat(16);
        let file = RecordsFile::updated(None, &vault_id, at(7), &records(2)).unwrap();
        assert_eq!(RecordsThrough::read(&config, &file), None);
        let note = RecordsThrough {
            format: RECORDS_THROUGH_FORMAT.into(),
            vault_id: vault_id.clone(),
            records_at: at(7),
            at: at(8),
        };
        note.write(&config).unwrap();
        let path = config.records_through_path(&vault_id).unwrap();
        assert_eq!(
            path,
            config
                .root()
                .join("records")
                .join(format!("{vault_id}.through.json"))
        );
        assert_eq!(RecordsThrough::read(&config, &file), Some(note.clone()));
        // Each fact but one right: ignored (what it saved is walked again).
        let other_hash = AuditAnchor {
            hash: "ef".repeat(32),
            ..at(7)
        };
        for altered in [
            RecordsThrough {
                format: "breakglass-envelope-records-through/2".into(),
                ..note.clone()
            },
            RecordsThrough {
                vault_id: "0b".repeat(16),
                ..note.clone()
            },
            RecordsThrough {
                records_at: at(6),
                ..note.clone()
            },
            RecordsThrough {
                records_at: other_hash,
                ..note.clone()
            },
            RecordsThrough {
                at: at(7),
                ..note.clone()
            },
            RecordsThrough {
                at: at(6),
                ..note.clone()
            },
        ] {
            write_note_unsynced(&config, path.clone(), &altered).unwrap();
            assert_eq!(RecordsThrough::read(&config, &file), None, "{altered:?}");
        }
        // Torn or emptied by a crash (the note is not synced): ignored.
        for torn in [&b"{"[..], b""] {
            std::fs::write(&path, torn).unwrap();
            assert_eq!(RecordsThrough::read(&config, &file), None);
        }
    }
}
