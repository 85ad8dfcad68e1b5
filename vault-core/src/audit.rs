//! The audit log, `audit.jsonl`: one JSON object per line, each carrying the SHA-256 of the
//! previous line's exact bytes, so an edited, removed, inserted or reordered line breaks the
//! chain at that line. Whenever the token is logged in, a checkpoint line signs the chain head
//! with the token's audit key (ECDSA P-256): rewriting history needs that key.
//!
//! Entries hold names and public identifiers only (custodians, credential, ceremony id, access
//! key id, expiry): never a secret. Appending is the caller's to serialise: hold the vault's
//! writers' lock.
//!
//! Bytes on disk: each append is one `write` of whole lines followed by `fsync`; a write that
//! fails (a full disk) is cut back to where the log ended. What a crash can still leave is a
//! **torn tail**: bytes after the last newline, or a last line that is not an entry. It is
//! reported as such ([`TornTail`]), never as a break in signed history: readers use the
//! complete lines before it, appenders refuse until [`AuditLog::repair`] moves it aside.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::audit_tail::Tail;
use crate::trust::AuthenticatedManifest;
use crate::trust::audit_line::{EntryActor, EntryBody, verify_line};

/// The hash of nothing: `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit log failure, naming the file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading or writing the log failed.
    #[error("{}", file.display())]
    Io {
        /// The log.
        file: PathBuf,
        /// The operating system's error.
        #[source]
        cause: std::io::Error,
    },
    /// The last line cannot be read, so nothing can be appended after it.
    #[error("{}: line {line} is damaged ({reason}); run `breakglass audit verify`", file.display())]
    Damaged {
        /// The log.
        file: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The torn bytes could not be put aside (nothing was cut from the log).
    #[error("{}: cannot keep the torn bytes there", file.display())]
    MoveAside {
        /// The file they were to go to.
        file: PathBuf,
        /// Why.
        #[source]
        cause: Box<crate::store::StoreError>,
    },
    /// The log ends with a torn write; nothing is appended after it until it is moved aside.
    #[error(
        "{}: the last write was cut short (a crash or a full disk): {} bytes of line {} are torn",
        file.display(), tail.len, tail.line
    )]
    TornTail {
        /// The log.
        file: PathBuf,
        /// Where the torn bytes are.
        tail: TornTail,
    },
}

/// The bytes after the log's last complete line: what a write cut short leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TornTail {
    /// The line they would have been (1-based).
    pub line: usize,
    /// Where they start: the length of the complete lines before them.
    pub offset: u64,
    /// How many bytes.
    pub len: u64,
}

/// What [`AuditLog::repair`] moved aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repaired {
    /// The torn bytes' place in the log.
    pub tail: TornTail,
    /// The file beside the log that now holds them.
    pub moved_to: PathBuf,
    /// Hex SHA-256 of the torn bytes.
    pub sha256: String,
}

/// The log's bytes split into complete lines and a torn tail (borrowed from the bytes read:
/// a walk of a 40 MB log holds it once, not a second time line by line).
struct Read<'a> {
    lines: Vec<&'a [u8]>,
    torn: Option<(TornTail, &'a [u8])>,
}

/// Whether `line` is an entry as this version writes them (a torn write never is).
fn is_entry(line: &[u8]) -> bool {
    serde_json::from_slice::<Entry>(line).is_ok()
}

/// Splits the log: bytes after the last newline are a torn tail; so is a last line that does
/// not parse (a torn write followed by a newline). Only the last line can be torn: anything
/// wrong before it is for [`AuditLog::verify`] to report.
fn split(bytes: &[u8]) -> Read<'_> {
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut lines: Vec<&[u8]> = bytes[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut torn_at = complete;
    if complete == bytes.len() && lines.last().is_some_and(|l| !is_entry(l)) {
        let last = lines.pop().unwrap_or_default();
        // The last line ends at the last byte that is not a newline (blank lines may follow).
        let end = bytes[..complete]
            .iter()
            .rposition(|b| *b != b'\n')
            .map_or(0, |i| i + 1);
        torn_at = bytes[..end]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        debug_assert_eq!(&bytes[torn_at..end], last);
    }
    let torn = (torn_at < bytes.len()).then(|| {
        (
            TornTail {
                line: lines.len() + 1,
                offset: torn_at as u64,
                len: (bytes.len() - torn_at) as u64,
            },
            &bytes[torn_at..],
        )
    });
    Read { lines, torn }
}

/// Whether `line` may carry `word` (a field name or a value, without its quotes) as a JSON
/// string: it holds the word's bytes, or escapes a character (`\u`), and so might spell the
/// word otherwise. A cheap test before parsing, for [`AuditLog::rfind_matching`].
pub fn may_name(line: &[u8], word: &str) -> bool {
    let contains = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
    contains(word.as_bytes()) || contains(b"\\u")
}

/// A file the tail reader reads (the log, or nothing for a log not written yet).
trait ReadSeek: std::io::Read + std::io::Seek {}
impl<T: std::io::Read + std::io::Seek> ReadSeek for T {}

/// Just the sequence number of a line (whatever else it carries).
#[derive(Deserialize)]
struct Numbered {
    seq: u64,
}

/// The complete lines of the log from its end backwards ([`AuditLog::lines_back`]).
pub struct LinesBack {
    tail: Tail<Box<dyn ReadSeek>>,
    path: PathBuf,
}

impl std::fmt::Debug for LinesBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinesBack")
            .field("path", &self.path)
            .finish()
    }
}

impl Iterator for LinesBack {
    /// Where the line starts in the file, and its bytes (without the newline).
    type Item = Result<(u64, Vec<u8>), AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.tail
            .next_back()
            .map_err(|cause| AuditError::Io {
                file: self.path.clone(),
                cause,
            })
            .transpose()
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// The operating-system user.
    pub user: String,
    /// The host name.
    pub host: String,
}

impl Actor {
    /// The current user and host, from the environment (`USER`, `/etc/hostname`).
    pub fn current() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .or_else(user_from_passwd)
            .unwrap_or_else(|| "unknown".into());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Actor { user, host }
    }
}

/// The name of this process's user, from its uid and `/etc/passwd`.
fn user_from_passwd() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2) == Some(&uid.as_str())).then(|| fields[0].to_owned())
    })
}

/// A signed checkpoint over the chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The hash of the line before the checkpoint (the head it signs).
    pub head: String,
    /// The audit key's CKA_ID (hex).
    pub key_id: String,
    /// ECDSA P-256 signature, `r || s`, base64.
    pub signature: String,
}

/// Who wrote a line: the user and host of a format-1 line, or the actor of a format-2 line
/// (an operator, who signed it; a custodian; a quorum holder without an operator key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LineActor {
    /// Format 1: the operating-system user and host (a claim, nothing more).
    Legacy(Actor),
    /// Format 2.
    Signed(EntryActor),
}

impl std::fmt::Display for LineActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineActor::Legacy(a) => write!(f, "{}@{}", a.user, a.host),
            LineActor::Signed(EntryActor::Operator(name)) => write!(f, "operator {name}"),
            LineActor::Signed(EntryActor::Custodian(name)) => write!(f, "custodian {name}"),
            LineActor::Signed(EntryActor::Quorum(name)) => write!(f, "{name} (no operator key)"),
        }
    }
}

/// One line of the log, as read for showing it: format 1, or format 2 (see
/// `trust::audit_line`), which [`AuditLog::verify`] checks strictly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The line format: absent in format 1, 2 for signed lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
    /// Sequence number, from 1.
    pub seq: u64,
    /// When (RFC 3339 UTC).
    pub time: String,
    /// What happened: `init`, `seal`, `unseal`, `share_verify`, `checkpoint`, ...
    pub event: String,
    /// Who.
    pub actor: LineActor,
    /// The credential concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The ceremony concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceremony: Option<String>,
    /// The custodians whose shares were used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custodians: Vec<String>,
    /// Other public facts (access key id, expiry, role, reason). Never a secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// The checkpoint, on `checkpoint` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// Hex SHA-256 of the previous line's bytes ([`GENESIS`] for the first).
    pub prev: String,
    /// The operator's signature (format 2, operator lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A format-1 line exactly (no format-2 member, not even `null`): what verification accepts
/// before the first signed line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FormatOneEntry {
    seq: u64,
    time: String,
    event: String,
    actor: Actor,
    #[serde(default)]
    credential: Option<String>,
    #[serde(default)]
    ceremony: Option<String>,
    #[serde(default)]
    custodians: Vec<String>,
    #[serde(default)]
    details: BTreeMap<String, String>,
    #[serde(default)]
    checkpoint: Option<Checkpoint>,
    prev: String,
}

/// What a line records, before a [`LineWriter`] gives it its format, actor and signature.
#[derive(Debug, Clone)]
pub struct LineRecord {
    /// Its sequence number.
    pub seq: u64,
    /// When.
    pub time: String,
    /// The event.
    pub event: Event,
    /// The checkpoint, on checkpoint lines.
    pub checkpoint: Option<Checkpoint>,
    /// The hash of the line before.
    pub prev: String,
}

impl LineRecord {
    /// The format-2 body of this record written by `actor`.
    pub fn body(&self, actor: EntryActor) -> EntryBody {
        EntryBody {
            v: crate::trust::audit_line::LINE_FORMAT,
            seq: self.seq,
            time: self.time.clone(),
            event: self.event.event.clone(),
            actor,
            credential: self.event.credential.clone(),
            ceremony: self.event.ceremony.clone(),
            custodians: self.event.custodians.clone(),
            details: self.event.details.clone(),
            checkpoint: self.checkpoint.clone(),
            prev: self.prev.clone(),
        }
    }
}

/// Makes a line's bytes (without the newline) from what it records: format 2 (an operator's
/// signed line, a custodian's or a quorum holder's, see `trust::audit_line`), or format 1 for
/// an [`Actor`] (how logs were written before line signatures; unit tests).
pub trait LineWriter {
    /// The line.
    fn line(&self, record: &LineRecord) -> Result<Vec<u8>, crate::Error>;
}

impl LineWriter for Actor {
    fn line(&self, record: &LineRecord) -> Result<Vec<u8>, crate::Error> {
        let entry = Entry {
            v: None,
            seq: record.seq,
            time: record.time.clone(),
            event: record.event.event.clone(),
            actor: LineActor::Legacy(self.clone()),
            credential: record.event.credential.clone(),
            ceremony: record.event.ceremony.clone(),
            custodians: record.event.custodians.clone(),
            details: record.event.details.clone(),
            checkpoint: record.checkpoint.clone(),
            prev: record.prev.clone(),
            signature: None,
        };
        // A struct of strings, numbers, maps and lists always serialises.
        Ok(serde_json::to_vec(&entry).unwrap_or_default())
    }
}

/// What an event records, before the log numbers and chains it.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// The event name.
    pub event: String,
    /// The credential.
    pub credential: Option<String>,
    /// The ceremony.
    pub ceremony: Option<String>,
    /// Custodians whose shares were used.
    pub custodians: Vec<String>,
    /// Public details.
    pub details: BTreeMap<String, String>,
}

impl Event {
    /// An event with just a name.
    pub fn new(event: &str) -> Event {
        Event {
            event: event.to_owned(),
            ..Event::default()
        }
    }

    /// Adds a public detail.
    pub fn detail(mut self, key: &str, value: impl Into<String>) -> Event {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// Signs checkpoints: the token's audit key, or a software key in tests.
pub trait CheckpointSigner {
    /// The key's id (hex CKA_ID).
    fn key_id(&self) -> String;
    /// ECDSA P-256 with SHA-256 over `message`: the 64-byte `r || s`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, crate::Error>;
}

/// The chain head: the last line's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The last sequence number (0 for an empty log).
    pub seq: u64,
    /// The last line's hash ([`GENESIS`] for an empty log).
    pub hash: String,
}

/// The lines `writer` makes of `events`, chained on from `head`, and the head after them.
fn chained_lines(
    head: &Head,
    events: Vec<Event>,
    writer: &dyn LineWriter,
    time: &str,
) -> Result<(Vec<Vec<u8>>, Head), crate::Error> {
    let mut lines = Vec::with_capacity(events.len() + 1);
    let mut last = head.clone();
    for event in events {
        let line = writer.line(&LineRecord {
            seq: last.seq + 1,
            time: time.to_owned(),
            event,
            checkpoint: None,
            prev: last.hash,
        })?;
        last = Head {
            seq: last.seq + 1,
            hash: line_hash(&line),
        };
        lines.push(line);
    }
    Ok((lines, last))
}

fn line_hash(line: &[u8]) -> String {
    hex::encode(digest(&SHA256, line).as_ref())
}

fn checkpoint_message(vault_id: &str, seq: u64, head: &str) -> Vec<u8> {
    format!("breakglass-audit-checkpoint/1\n{vault_id}\n{seq}\n{head}").into_bytes()
}

/// An event and its signed checkpoint, ready to append after the head they were made for.
#[derive(Debug)]
pub struct Prepared {
    after: Head,
    lines: Vec<Vec<u8>>,
}

/// The audit log of one vault.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    vault_id: String,
    signers: Option<Box<AuthenticatedManifest>>,
}

impl AuditLog {
    /// The log at `path`, for `vault_id` (the file may not exist yet).
    pub fn new(path: &Path, vault_id: &str) -> AuditLog {
        AuditLog {
            path: path.to_path_buf(),
            vault_id: vault_id.to_owned(),
            signers: None,
        }
    }

    /// The log at `path` of the vault of `manifest`, whose operators (and retired operators)
    /// are who may sign its format-2 lines. A log made with [`AuditLog::new`] knows no
    /// operators: every signed line fails its verification.
    pub fn of_vault(path: &Path, manifest: &AuthenticatedManifest) -> AuditLog {
        AuditLog {
            path: path.to_path_buf(),
            vault_id: manifest.vault_id().to_owned(),
            signers: Some(Box::new(manifest.clone())),
        }
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
        |source| AuditError::Io {
            file: self.path.clone(),
            cause: source,
        }
    }

    /// The whole log's bytes (a missing file is an empty log): [`split`] them.
    fn read(&self) -> Result<Vec<u8>, AuditError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(self.io()(e)),
        }
    }

    /// The end of the log, read from the end (a missing file is an empty log).
    fn tail(&self) -> Result<Tail<Box<dyn ReadSeek>>, AuditError> {
        let file: Box<dyn ReadSeek> = match std::fs::File::open(&self.path) {
            Ok(file) => Box::new(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Box::new(std::io::Cursor::new(Vec::new()))
            }
            Err(e) => return Err(self.io()(e)),
        };
        Tail::new(file, is_entry).map_err(self.io())
    }

    /// The torn tail at `torn` (`offset`, `len`), its line number counted from the start (the
    /// one figure the end of the log cannot give; only read when the log is torn).
    fn torn_at(&self, torn: Option<(u64, u64)>) -> Result<Option<TornTail>, AuditError> {
        torn.map(|(offset, len)| {
            Ok(TornTail {
                line: self.count_lines(offset)? + 1,
                offset,
                len,
            })
        })
        .transpose()
    }

    /// How many lines the first `end` bytes of the log hold (blank lines are no lines).
    fn count_lines(&self, end: u64) -> Result<usize, AuditError> {
        match std::fs::File::open(&self.path) {
            Ok(file) => crate::audit_tail::count_lines(file, end).map_err(self.io()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(self.io()(e)),
        }
    }

    /// The bytes from `offset` to the end (none when the file is missing or shorter).
    fn bytes_from(&self, offset: u64) -> Result<Vec<u8>, AuditError> {
        use std::io::{Read as _, Seek as _};
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io()(e)),
        };
        let mut bytes = Vec::new();
        file.seek(std::io::SeekFrom::Start(offset))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(self.io())?;
        Ok(bytes)
    }

    /// The hex SHA-256 of the log's first `end` bytes, for each of `ends` (ascending), in
    /// one pass over the file: `None` for an end past the log's length.
    pub fn prefix_digests(&self, ends: &[u64]) -> Result<Vec<Option<String>>, AuditError> {
        use std::io::Read as _;
        let mut digests = Vec::with_capacity(ends.len());
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ends
                    .iter()
                    .map(|end| {
                        (*end == 0)
                            .then(|| hex::encode(ring::digest::digest(&ring::digest::SHA256, b"")))
                    })
                    .collect());
            }
            Err(e) => return Err(self.io()(e)),
        };
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        let mut at = 0u64;
        let mut buffer = vec![0u8; 1 << 16];
        for &end in ends {
            while at < end {
                let want = usize::try_from(end - at)
                    .unwrap_or(usize::MAX)
                    .min(buffer.len());
                let read = file.read(&mut buffer[..want]).map_err(self.io())?;
                if read == 0 {
                    break;
                }
                context.update(&buffer[..read]);
                at += read as u64;
            }
            digests.push((at == end).then(|| hex::encode(context.clone().finish())));
        }
        Ok(digests)
    }

    /// The complete lines (a torn tail left out).
    fn lines(&self) -> Result<Vec<Vec<u8>>, AuditError> {
        let bytes = self.read()?;
        Ok(split(&bytes)
            .lines
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect())
    }

    /// The torn tail, if the log ends with one (read from the end: see `audit_tail`).
    pub fn torn_tail(&self) -> Result<Option<TornTail>, AuditError> {
        let tail = self.tail()?;
        self.torn_at(tail.torn)
    }

    /// Refuses with [`AuditError::TornTail`] when the log ends with a torn write: a writing
    /// command checks this before it changes anything.
    pub fn refuse_torn_tail(&self) -> Result<(), AuditError> {
        match self.torn_tail()? {
            Some(tail) => Err(AuditError::TornTail {
                file: self.path.clone(),
                tail,
            }),
            None => Ok(()),
        }
    }

    /// The chain head, to append after: refused when the log ends with a torn tail. Reads the
    /// last line from the end of the file, not the history before it.
    pub fn head(&self) -> Result<Head, AuditError> {
        let mut tail = self.tail()?;
        if let Some(tail) = self.torn_at(tail.torn)? {
            return Err(AuditError::TornTail {
                file: self.path.clone(),
                tail,
            });
        }
        let Some((_, last)) = tail.next_back().map_err(self.io())? else {
            return Ok(Head {
                seq: 0,
                hash: GENESIS.into(),
            });
        };
        let entry: Entry = match serde_json::from_slice(&last) {
            Ok(entry) => entry,
            Err(e) => {
                return Err(AuditError::Damaged {
                    file: self.path.clone(),
                    line: self.count_lines(u64::MAX)?,
                    reason: e.to_string(),
                });
            }
        };
        Ok(Head {
            seq: entry.seq,
            hash: line_hash(&last),
        })
    }

    /// Whether the last complete line is a signed (format 2) line: the log has been upgraded
    /// (or was made by a release that signs its lines).
    pub fn has_signed_head(&self) -> Result<bool, AuditError> {
        let mut tail = self.tail()?;
        Ok(tail
            .next_back()
            .map_err(self.io())?
            .is_some_and(|(_, l)| l.starts_with(FORMAT_TWO_START)))
    }

    /// Whether the log has no complete line (missing, empty, or only a torn write).
    pub fn is_empty(&self) -> Result<bool, AuditError> {
        let mut tail = self.tail()?;
        Ok(tail.next_back().map_err(self.io())?.is_none())
    }

    /// The hash of line `seq` as it is now, if the log has that line: the line numbered `seq`,
    /// found reading back from the end of the log, each line on the way carrying the number
    /// one below the line after it. `None` when no line carries it, or when a line between it
    /// and the end does not carry its number (lines removed, inserted or damaged after it: a
    /// history changed since line `seq`, which `verify` locates). In a log whose numbering is
    /// intact (every log breakglass writes) line `seq` is the `seq`-th line.
    pub fn hash_of_line(&self, seq: u64) -> Result<Option<String>, AuditError> {
        if seq == 0 {
            return Ok(None);
        }
        let mut tail = self.tail()?;
        let mut expected = None;
        while let Some((_, line)) = tail.next_back().map_err(self.io())? {
            let Ok(Numbered { seq: number }) = serde_json::from_slice(&line) else {
                return Ok(None);
            };
            if expected.is_some_and(|expected| expected != number) || number < seq {
                return Ok(None);
            }
            if number == seq {
                return Ok(Some(line_hash(&line)));
            }
            expected = Some(number - 1);
        }
        Ok(None)
    }

    /// The last entry `wanted` accepts, reading the log backwards from its end and stopping
    /// there (the whole log only when no entry is wanted). A torn tail is left out, and so is a
    /// line that is no entry (a break `verify` reports): it records nothing to find.
    pub fn rfind(
        &self,
        mut wanted: impl FnMut(&Entry) -> bool,
    ) -> Result<Option<Entry>, AuditError> {
        self.rfind_matching(|_| true, |entry| wanted(entry))
    }

    /// As [`AuditLog::rfind`], parsing only the lines `candidate` accepts as bytes (a cheap
    /// test that a line may be wanted, so that the lines skipped are not parsed; it must accept
    /// every line `wanted` could accept, escaped spellings included: see [`may_name`]).
    pub fn rfind_matching(
        &self,
        candidate: impl Fn(&[u8]) -> bool,
        mut wanted: impl FnMut(&Entry) -> bool,
    ) -> Result<Option<Entry>, AuditError> {
        let mut tail = self.tail()?;
        while let Some((_, line)) = tail.next_back().map_err(self.io())? {
            if !candidate(&line) {
                continue;
            }
            if let Ok(entry) = serde_json::from_slice::<Entry>(&line)
                && wanted(&entry)
            {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    /// The complete lines from the end of the log backwards (a torn tail left out), each with
    /// the offset it starts at: for readers that want the last lines only (`audit show --tail`).
    pub fn lines_back(&self) -> Result<LinesBack, AuditError> {
        Ok(LinesBack {
            tail: self.tail()?,
            path: self.path.clone(),
        })
    }

    /// Adds to `summary` every entry on the lines from byte `from` (a line's start) up to
    /// byte `to` (a line's end), reading forwards one line at a time.
    pub fn summarise(
        &self,
        summary: &mut LogSummary,
        from: u64,
        to: u64,
    ) -> Result<(), AuditError> {
        use std::io::{BufRead as _, Seek as _};
        if to <= from {
            return Ok(());
        }
        let mut file = std::fs::File::open(&self.path).map_err(self.io())?;
        file.seek(std::io::SeekFrom::Start(from))
            .map_err(self.io())?;
        let mut reader = std::io::BufReader::new(std::io::Read::take(file, to - from));
        let mut line = Vec::new();
        let mut at = from;
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line).map_err(self.io())?;
            if read == 0 {
                return Ok(());
            }
            let start = at;
            at += read as u64;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Entry>(&line) {
                Ok(entry) => summary.add(&entry, start),
                Err(e) => {
                    return Err(AuditError::Damaged {
                        file: self.path.clone(),
                        line: self.count_lines(start)? + 1,
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    /// The entry on line `place` (one read of that line).
    pub fn entry_at(&self, place: &LinePlace) -> Result<Entry, AuditError> {
        let offset = place.offset;
        use std::io::{BufRead as _, Seek as _};
        let mut file = std::fs::File::open(&self.path).map_err(self.io())?;
        file.seek(std::io::SeekFrom::Start(offset))
            .map_err(self.io())?;
        let mut line = Vec::new();
        std::io::BufReader::new(file)
            .read_until(b'\n', &mut line)
            .map_err(self.io())?;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        serde_json::from_slice::<Entry>(&line)
            .ok()
            .filter(|entry| entry.seq == place.seq)
            .ok_or_else(|| AuditError::Damaged {
                file: self.path.clone(),
                line: usize::try_from(place.seq).unwrap_or(usize::MAX),
                reason: format!("no entry {} starts at byte {offset}", place.seq),
            })
    }

    /// Calls `each` with every entry in order, reading the log forwards one line at a time
    /// (never the whole log at once), up to its last complete line; stops at the first error
    /// `each` returns, or at a line that is no entry ([`AuditError::Damaged`]).
    pub fn each_entry<E: From<AuditError>>(
        &self,
        mut each: impl FnMut(Entry) -> Result<(), E>,
    ) -> Result<(), E> {
        use std::io::BufRead as _;
        let end = match self.tail()?.torn {
            Some((offset, _)) => offset,
            None => u64::MAX,
        };
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io()(e).into()),
        };
        let mut reader = std::io::BufReader::new(std::io::Read::take(file, end));
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(self.io())? == 0 {
                return Ok(());
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line.is_empty() {
                continue;
            }
            number += 1;
            let entry = serde_json::from_slice(&line).map_err(|e| AuditError::Damaged {
                file: self.path.clone(),
                line: number,
                reason: e.to_string(),
            })?;
            each(entry)?;
        }
    }

    /// The entries, in order (for `audit show`).
    pub fn entries(&self) -> Result<Vec<Entry>, AuditError> {
        self.lines()?
            .iter()
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_slice(line).map_err(|e| AuditError::Damaged {
                    file: self.path.clone(),
                    line: i + 1,
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Appends `lines` (each without its newline; `seq` the first one's number) in one write,
    /// then fsync. A write or sync that fails is cut back to where the log ended, so a full
    /// disk leaves no half line (a crash still can: see [`TornTail`]).
    fn write_lines(&self, first_seq: u64, lines: &[Vec<u8>]) -> Result<Head, AuditError> {
        let mut bytes = Vec::new();
        let mut head = None;
        for (i, line) in lines.iter().enumerate() {
            head = Some(Head {
                seq: first_seq + i as u64,
                hash: line_hash(line),
            });
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
        }
        let Some(head) = head else {
            return self.head();
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(self.io())?;
        let end = file.metadata().map_err(self.io())?.len();
        let written = crate::fault::write_all(&mut file, &bytes).and_then(|()| file.sync_all());
        if let Err(cause) = written {
            // Nothing of this append stays: the log ends where it ended.
            let _ = file.set_len(end).and_then(|()| file.sync_all());
            return Err(AuditError::Io {
                file: self.path.clone(),
                cause,
            });
        }
        Ok(head)
    }

    /// Moves a torn tail aside: its bytes go to a new 0600 file beside the log, named with
    /// `stamp` (`audit.jsonl.torn-<stamp>`), and the log is cut back to its complete lines.
    /// The caller holds the writers' lock and records the repair. `None`: nothing was torn.
    pub fn repair(&self, stamp: &str) -> Result<Option<Repaired>, AuditError> {
        let read = self.read()?;
        let Some((tail, bytes)) = split(&read).torn else {
            return Ok(None);
        };
        let name = self.path.file_name().map_or_else(
            || "audit.jsonl".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        let moved_to = self.path.with_file_name(format!("{name}.torn-{stamp}"));
        crate::store::write_new_secret_file(&moved_to, bytes).map_err(|cause| {
            AuditError::MoveAside {
                file: moved_to.clone(),
                cause: Box::new(cause),
            }
        })?;
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(self.io())?;
        file.set_len(tail.offset).map_err(self.io())?;
        file.sync_all().map_err(self.io())?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(self.io())?;
        }
        Ok(Some(Repaired {
            tail,
            moved_to,
            sha256: line_hash(bytes),
        }))
    }

    /// Appends an event written by `writer` (the caller holds the vault's writers' lock) and
    /// returns the new head.
    pub fn append(
        &self,
        event: Event,
        writer: &dyn LineWriter,
        time: &str,
    ) -> Result<Head, crate::Error> {
        self.append_all(vec![event], writer, time)
    }

    /// An event and a checkpoint signing it, made (and signed) now and appended later with
    /// [`AuditLog::append_prepared`]: an operation that must not write anything unless the
    /// token can sign does every token operation first.
    pub fn prepare_signed(
        &self,
        event: Event,
        signer: &dyn CheckpointSigner,
        writer: &dyn LineWriter,
        time: &str,
    ) -> Result<Prepared, crate::Error> {
        self.prepare_signed_all(vec![event], signer, writer, time)
    }

    /// As [`AuditLog::prepare_signed`] for several events, in order, and one checkpoint
    /// signing the last of them.
    pub fn prepare_signed_all(
        &self,
        events: Vec<Event>,
        signer: &dyn CheckpointSigner,
        writer: &dyn LineWriter,
        time: &str,
    ) -> Result<Prepared, crate::Error> {
        let head = self.head()?;
        let (mut lines, last) = chained_lines(&head, events, writer, time)?;
        lines.push(self.checkpoint_line(last.seq, &last.hash, signer, writer, time)?);
        Ok(Prepared { after: head, lines })
    }

    /// Appends `events` written by `writer` in one write (the caller holds the writers' lock).
    pub fn append_all(
        &self,
        events: Vec<Event>,
        writer: &dyn LineWriter,
        time: &str,
    ) -> Result<Head, crate::Error> {
        let head = self.head()?;
        let (lines, _) = chained_lines(&head, events, writer, time)?;
        Ok(self.write_lines(head.seq + 1, &lines)?)
    }

    /// The checkpoint line signing line `seq` hashed `hash`, written by `writer`.
    fn checkpoint_line(
        &self,
        seq: u64,
        hash: &str,
        signer: &dyn CheckpointSigner,
        writer: &dyn LineWriter,
        time: &str,
    ) -> Result<Vec<u8>, crate::Error> {
        let signature = signer.sign(&checkpoint_message(&self.vault_id, seq, hash))?;
        writer.line(&LineRecord {
            seq: seq + 1,
            time: time.to_owned(),
            event: Event::new("checkpoint"),
            checkpoint: Some(Checkpoint {
                head: hash.to_owned(),
                key_id: signer.key_id(),
                signature: B64.encode(signature),
            }),
            prev: hash.to_owned(),
        })
    }

    /// Appends what [`AuditLog::prepare_signed`] made, if the log has not moved since (the
    /// caller holds the writers' lock throughout).
    pub fn append_prepared(&self, prepared: Prepared) -> Result<Head, AuditError> {
        if self.head()? != prepared.after {
            return Err(AuditError::Damaged {
                file: self.path.clone(),
                line: 0,
                reason: "the log changed between preparing and appending a signed entry".into(),
            });
        }
        self.write_lines(prepared.after.seq + 1, &prepared.lines)
    }

    /// Appends a checkpoint signing the current head.
    pub fn append_checkpoint(
        &self,
        signer: &dyn CheckpointSigner,
        writer: &dyn LineWriter,
        time: &str,
    ) -> Result<Head, crate::Error> {
        let head = self.head()?;
        let line = self.checkpoint_line(head.seq, &head.hash, signer, writer, time)?;
        Ok(self.write_lines(head.seq + 1, &[line])?)
    }

    /// Walks the whole chain and checks every checkpoint with `audit_public_key` (65-byte SEC1).
    pub fn verify(&self, audit_public_key: &[u8]) -> Result<VerifyReport, AuditError> {
        self.verify_with_retired(&[], audit_public_key)
    }

    /// As [`AuditLog::verify_with_retired`], reading only the bytes after `from` (a line
    /// verified before; the whole log when `None`) and chaining on from it. Also returns the
    /// last line that verified (`from` when none after it did): where the next call resumes.
    /// The report's counts cover the lines after `from` only; whether the log still holds
    /// `from` itself is the caller's check (`trust::machine`).
    pub fn verify_from(
        &self,
        from: Option<&ChainPoint>,
        retired: &[(u64, Vec<u8>)],
        audit_public_key: &[u8],
    ) -> Result<(VerifyReport, ChainPoint), AuditError> {
        self.verify_recording(from, retired, audit_public_key, None)
    }

    /// As [`AuditLog::verify_from`], also putting into `envelopes` the envelope each signed
    /// line after `from` records (credential name → hex SHA-256 of the file; a later record
    /// of a name replaces an earlier one). Only what precedes the first problem is recorded.
    pub fn verify_recording(
        &self,
        from: Option<&ChainPoint>,
        retired: &[(u64, Vec<u8>)],
        audit_public_key: &[u8],
        envelopes: Option<&mut BTreeMap<String, String>>,
    ) -> Result<(VerifyReport, ChainPoint), AuditError> {
        let start = from.cloned().unwrap_or(ChainPoint {
            seq: 0,
            hash: GENESIS.into(),
            offset: 0,
            signed_lines: false,
        });
        let bytes = self.bytes_from(start.offset)?;
        let read = split(&bytes);
        // Where each complete line ends, as `split` keeps them (blank lines left out).
        let mut ends = Vec::with_capacity(read.lines.len());
        let mut at = 0u64;
        for segment in bytes.split(|b| *b == b'\n') {
            at += segment.len() as u64 + 1;
            if !segment.is_empty() && ends.len() < read.lines.len() {
                ends.push(start.offset + at);
            }
        }
        let report = self.walk_parallel(&read, &start, retired, audit_public_key, envelopes);
        // A line that breaks the chain, or a checkpoint that fails, puts the line before it in
        // doubt too (either may have been changed): the verified run ends before both.
        let broken = report
            .first_problem
            .as_ref()
            .map(|p| p.line)
            .or(report.bad_signature);
        let good = broken
            .map_or(report.entries, |line| line.saturating_sub(2))
            .saturating_sub(start.seq as usize);
        let last = match good.checked_sub(1) {
            Some(i) => ChainPoint {
                seq: start.seq + good as u64,
                hash: line_hash(read.lines[i]),
                offset: ends[i],
                signed_lines: start.signed_lines || read.lines[i].starts_with(FORMAT_TWO_START),
            },
            None => start,
        };
        Ok((report, last))
    }

    /// As [`AuditLog::verify`], for a vault whose audit key was replaced (its token lost):
    /// a checkpoint on line `n` is checked with the first retired key `(last_line, key)` whose
    /// `last_line` is at least `n`, and with `audit_public_key` after the last of them. A
    /// retired key cannot sign anything after the line it was retired at.
    pub fn verify_with_retired(
        &self,
        retired: &[(u64, Vec<u8>)],
        audit_public_key: &[u8],
    ) -> Result<VerifyReport, AuditError> {
        Ok(self.verify_from(None, retired, audit_public_key)?.0)
    }

    /// [`AuditLog::walk`] over `read`, in as many parts as the machine has cores when it is
    /// long (each line's check needs only the line before it and the manifest, so the parts
    /// are independent): the same report, the first problem in the log's order. Signature
    /// checks are nearly all of a long walk's time.
    fn walk_parallel(
        &self,
        read: &Read<'_>,
        start: &ChainPoint,
        retired: &[(u64, Vec<u8>)],
        audit_public_key: &[u8],
        envelopes: Option<&mut BTreeMap<String, String>>,
    ) -> VerifyReport {
        // A short walk (an opening's few new lines) stays on this thread without asking how
        // many cores there are (the answer reads three files of /proc and /sys).
        let parts = if read.lines.len() < PARALLEL_FROM {
            1
        } else {
            let parts = std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get)
                .min(MAX_WALKERS);
            #[cfg(test)]
            let parts = parts.max(TEST_PARTS);
            parts
        };
        self.walk_in_parts(parts, read, start, retired, audit_public_key, envelopes)
    }

    /// [`AuditLog::walk_parallel`] in `parts` parts.
    fn walk_in_parts(
        &self,
        parts: usize,
        read: &Read<'_>,
        start: &ChainPoint,
        retired: &[(u64, Vec<u8>)],
        audit_public_key: &[u8],
        envelopes: Option<&mut BTreeMap<String, String>>,
    ) -> VerifyReport {
        let lines = read.lines.as_slice();
        let torn = read.torn.as_ref().map(|(tail, _)| tail);
        if parts < 2 || lines.is_empty() {
            return self
                .walk(lines, torn, start, retired, audit_public_key, envelopes)
                .0;
        }
        let size = lines.len().div_ceil(parts);
        let collect = envelopes.is_some();
        let walked: Vec<(VerifyReport, BTreeMap<String, String>)> = std::thread::scope(|scope| {
            let walkers: Vec<_> = lines
                .chunks(size)
                .enumerate()
                .map(|(k, part)| {
                    // A part goes on from the line before it: its hash, and whether signed
                    // lines had begun (if the parts before it are sound, they had exactly when
                    // that line is signed; if not, the earlier part reports first).
                    let from = match k.checked_sub(1) {
                        None => start.clone(),
                        Some(_) => {
                            let before = &lines[k * size - 1];
                            ChainPoint {
                                seq: start.seq + (k * size) as u64,
                                hash: line_hash(before),
                                offset: 0,
                                signed_lines: before.starts_with(FORMAT_TWO_START),
                            }
                        }
                    };
                    scope.spawn(move || {
                        let mut found = BTreeMap::new();
                        let sink = collect.then_some(&mut found);
                        let (report, _) =
                            self.walk(part, None, &from, retired, audit_public_key, sink);
                        (report, found)
                    })
                })
                .collect();
            walkers
                .into_iter()
                .map(|w| w.join().expect("an audit walker panicked"))
                .collect()
        });
        let first = start.seq as usize;
        let mut merged = VerifyReport::of_lines(start, lines.len(), torn);
        let mut sink = envelopes;
        for (report, found) in walked {
            merged.checkpoints += report.checkpoints;
            merged.last_checkpoint = report.last_checkpoint.or(merged.last_checkpoint);
            merged.records += report.records;
            if let Some(sink) = sink.as_deref_mut() {
                sink.extend(found);
            }
            if !report.is_intact() {
                // As one walk stopped there reports it: no head, no tail counts.
                merged.first_problem = report.first_problem;
                merged.bad_signature = report.bad_signature;
                merged.signed_lines = false;
                merged.head = String::new();
                return merged;
            }
            merged.head = report.head;
            merged.signed_lines = report.signed_lines;
        }
        merged.unsigned_tail = merged.entries - merged.last_checkpoint.unwrap_or(first);
        merged
    }

    /// Checks `lines` (the lines after `start`, then `torn`, a torn tail after them) chaining
    /// on from `start`; the envelopes that signed lines record go into `envelopes` when given
    /// (credential name → hex SHA-256, the latest record winning).
    fn walk(
        &self,
        lines: &[&[u8]],
        torn: Option<&TornTail>,
        start: &ChainPoint,
        retired: &[(u64, Vec<u8>)],
        audit_public_key: &[u8],
        mut envelopes: Option<&mut BTreeMap<String, String>>,
    ) -> (VerifyReport, bool) {
        let key_for = |line: u64| -> &[u8] {
            retired
                .iter()
                .find(|(last, _)| line <= *last)
                .map_or(audit_public_key, |(_, key)| key.as_slice())
        };
        let first = start.seq as usize;
        let mut report = VerifyReport::of_lines(start, lines.len(), torn);
        let mut prev = start.hash.clone();
        let mut signed_lines = start.signed_lines;
        for (i, line) in lines.iter().enumerate() {
            let number = first + i + 1;
            let problem = |reason: String| Problem {
                line: number,
                reason,
            };
            let checkpoint = if line.starts_with(FORMAT_TWO_START) {
                let Some(signers) = &self.signers else {
                    report.first_problem = Some(problem(
                        "a signed (format 2) line, and no manifest to check it against".into(),
                    ));
                    return (report, signed_lines);
                };
                let verified = match verify_line(line, number as u64, &prev, signers) {
                    Ok(verified) => verified,
                    Err(crate::trust::TrustError::AuditLine { problem: p, .. }) => {
                        report.first_problem = Some(problem(p.to_string()));
                        return (report, signed_lines);
                    }
                    Err(e) => {
                        report.first_problem = Some(problem(e.to_string()));
                        return (report, signed_lines);
                    }
                };
                signed_lines = true;
                if verified.signed
                    && let (Some(sink), Some(name), Some(sha)) = (
                        envelopes.as_deref_mut(),
                        &verified.body.credential,
                        verified.body.details.get(ENVELOPE_DETAIL),
                    )
                {
                    sink.insert(name.clone(), sha.clone());
                    report.records += 1;
                }
                verified.body.checkpoint
            } else {
                if signed_lines {
                    report.first_problem = Some(problem(
                        "an unsigned (format 1) line after signed lines: every line since the \
                         log was upgraded is written by breakglass in format 2 (a line appended \
                         outside breakglass)"
                            .into(),
                    ));
                    return (report, signed_lines);
                }
                let entry: FormatOneEntry = match serde_json::from_slice(line) {
                    Ok(entry) => entry,
                    Err(e) => {
                        report.first_problem = Some(problem(format!("not a valid entry ({e})")));
                        return (report, signed_lines);
                    }
                };
                if entry.seq != number as u64 {
                    report.first_problem = Some(problem(format!(
                        "sequence number {} where {number} belongs (a line removed or inserted)",
                        entry.seq
                    )));
                    return (report, signed_lines);
                }
                if entry.prev != prev {
                    report.first_problem = Some(problem("does not chain to the line before (that line or this one was changed, or lines were reordered)".into()));
                    return (report, signed_lines);
                }
                entry.checkpoint
            };
            if let Some(checkpoint) = &checkpoint {
                let message =
                    checkpoint_message(&self.vault_id, number as u64 - 1, &checkpoint.head);
                let signature = B64.decode(&checkpoint.signature).unwrap_or_default();
                let verifier = ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    key_for(number as u64),
                );
                if checkpoint.head != prev || verifier.verify(&message, &signature).is_err() {
                    report.bad_signature = Some(number);
                    return (report, signed_lines);
                }
                report.last_checkpoint = Some(number);
                report.checkpoints += 1;
            }
            prev = line_hash(line);
        }
        report.signed_lines = signed_lines;
        report.unsigned_tail = report.entries - report.last_checkpoint.unwrap_or(first);
        report.head = prev;
        (report, signed_lines)
    }
}

/// A walk of at least this many lines is split among the cores ([`AuditLog::walk_parallel`]).
#[cfg(not(test))]
const PARALLEL_FROM: usize = 4096;

/// In vault-core's own tests a walk of a few lines is split too, into at least
/// [`TEST_PARTS`] parts whatever the machine: so every test of what a walk finds or records
/// (the envelope records, the resume points) runs through the merge of the parts as well.
#[cfg(test)]
const PARALLEL_FROM: usize = 4;

/// See [`PARALLEL_FROM`] (tests).
#[cfg(test)]
const TEST_PARTS: usize = 3;

/// At most this many walkers.
const MAX_WALKERS: usize = 8;

/// How a format-2 line starts (format-1 lines start with `{"seq":`).
pub const FORMAT_TWO_START: &[u8] = b"{\"v\":";

pub use crate::trust::audit_line::ENVELOPE_DETAIL;

/// Where a line is: its sequence number and the byte offset it starts at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinePlace {
    /// Its sequence number.
    pub seq: u64,
    /// The byte offset its first byte is at.
    pub offset: u64,
}

/// What `status` shows of a log's history, gathered line by line as the log is verified
/// (kept with this machine's note of how far it verified, so that `status` reads only the
/// lines appended since): the last line of each event, and when each custodian last took
/// part in one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSummary {
    /// Event name → the last line recording it.
    pub last_event: BTreeMap<String, LinePlace>,
    /// Custodian → the time of the last line naming them among its custodians.
    pub last_participation: BTreeMap<String, String>,
}

impl LogSummary {
    /// Adds `entry`, whose line starts at byte `offset` (entries in the log's order).
    pub fn add(&mut self, entry: &Entry, offset: u64) {
        let place = LinePlace {
            seq: entry.seq,
            offset,
        };
        match self.last_event.get_mut(&entry.event) {
            Some(last) => *last = place,
            None => {
                self.last_event.insert(entry.event.clone(), place);
            }
        }
        for custodian in &entry.custodians {
            match self.last_participation.get_mut(custodian) {
                Some(time) => time.clone_from(&entry.time),
                None => {
                    self.last_participation
                        .insert(custodian.clone(), entry.time.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod summary_tests {
    use super::*;

    fn actor() -> Actor {
        Actor {
            user: "alice".into(),
            host: "h".into(),
        }
    }

    #[test]
    fn prefix_digests_hash_exactly_the_first_bytes_in_one_pass() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&dir.path().join("audit.jsonl"), "vault");
        let sha = |bytes: &[u8]| hex::encode(digest(&SHA256, bytes));
        assert_eq!(log.prefix_digests(&[0]).unwrap(), [Some(sha(b""))]);
        assert_eq!(log.prefix_digests(&[1]).unwrap(), [None]);
        for i in 0..3 {
            log.append(Event::new("seal").detail("n", i.to_string()), &actor(), "t")
                .unwrap();
        }
        let bytes = std::fs::read(dir.path().join("audit.jsonl")).unwrap();
        let len = bytes.len() as u64;
        let ends = [0, 1, 70_000.min(len - 1), len, len + 1];
        let expected: Vec<Option<String>> = ends
            .iter()
            .map(|&end| (end <= len).then(|| sha(&bytes[..end as usize])))
            .collect();
        assert_eq!(log.prefix_digests(&ends).unwrap(), expected);
    }

    #[test]
    fn a_summary_keeps_the_last_line_of_each_event_and_each_custodians_last_part() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&dir.path().join("audit.jsonl"), "vault");
        let with = |event: &str, custodians: &[&str]| Event {
            custodians: custodians.iter().map(|c| (*c).to_owned()).collect(),
            ..Event::new(event)
        };
        let lines = [
            (with("unseal", &["a", "b"]), "2026-01-01T00:00:00Z"),
            (with("drill", &["b", "c"]), "2026-02-01T00:00:00Z"),
            (with("seal", &[]), "2026-03-01T00:00:00Z"),
            (with("drill", &["a"]), "2026-04-01T00:00:00Z"),
        ];
        for (event, time) in lines {
            log.append(event, &actor(), time).unwrap();
        }
        let bytes = std::fs::read(dir.path().join("audit.jsonl")).unwrap();
        let starts: Vec<u64> = std::iter::once(0)
            .chain(
                bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i as u64 + 1),
            )
            .collect();
        let mut whole = LogSummary::default();
        log.summarise(&mut whole, 0, bytes.len() as u64).unwrap();
        assert_eq!(
            whole.last_event["drill"],
            LinePlace {
                seq: 4,
                offset: starts[3]
            }
        );
        assert_eq!(whole.last_event["unseal"].seq, 1);
        assert_eq!(whole.last_event["seal"].seq, 3);
        assert_eq!(whole.last_participation["a"], "2026-04-01T00:00:00Z");
        assert_eq!(whole.last_participation["b"], "2026-02-01T00:00:00Z");
        assert_eq!(whole.last_participation["c"], "2026-02-01T00:00:00Z");
        assert_eq!(log.entry_at(&whole.last_event["drill"]).unwrap().seq, 4);
        // A place that is not a line's start, or names another line, is refused.
        assert!(
            log.entry_at(&LinePlace {
                seq: 3,
                offset: starts[3]
            })
            .is_err()
        );
        assert!(
            log.entry_at(&LinePlace {
                seq: 4,
                offset: starts[3] + 1
            })
            .is_err()
        );
        // Two halves summarised one after the other make the whole.
        let mut halves = LogSummary::default();
        log.summarise(&mut halves, 0, starts[2]).unwrap();
        assert_eq!(halves.last_event["drill"].seq, 2);
        log.summarise(&mut halves, starts[2], bytes.len() as u64)
            .unwrap();
        assert_eq!(halves, whole);
        // Nothing between equal bounds.
        let mut none = LogSummary::default();
        log.summarise(&mut none, starts[2], starts[2]).unwrap();
        assert_eq!(none, LogSummary::default());
    }

    #[test]
    fn a_summary_reads_its_lines_alone_up_to_a_torn_tail_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::new(&path, "vault");
        for (event, custodian) in [
            ("unseal", "a"),
            ("drill", "b"),
            ("seal", "c"),
            ("drill", "d"),
        ] {
            let event = Event {
                custodians: vec![custodian.to_owned()],
                ..Event::new(event)
            };
            log.append(event, &actor(), "2026-01-01T00:00:00Z").unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        let ends: Vec<u64> = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i as u64 + 1)
            .collect();
        // Lines 2 and 3 alone (from a line's start after the first up to the end of the
        // third): nothing of the lines around them.
        let mut middle = LogSummary::default();
        log.summarise(&mut middle, ends[0], ends[2]).unwrap();
        assert_eq!(
            middle.last_event.keys().collect::<Vec<_>>(),
            ["drill", "seal"]
        );
        assert_eq!(middle.last_event["drill"].seq, 2);
        assert_eq!(
            middle.last_participation.keys().collect::<Vec<_>>(),
            ["b", "c"]
        );
        // `status` noted the first two lines; two were appended since, then a torn write
        // (a crash mid-append). Summarising the lines after the note up to the last that
        // verified reads none of the torn bytes, and makes what one summary of every complete
        // line makes.
        let mut whole = LogSummary::default();
        log.summarise(&mut whole, 0, ends[3]).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, b"{\"seq\":5,\"time\":\"2026").unwrap();
        drop(file);
        let mut noted = LogSummary::default();
        log.summarise(&mut noted, 0, ends[1]).unwrap();
        log.summarise(&mut noted, ends[1], ends[3]).unwrap();
        assert_eq!(noted, whole);
        assert_eq!(whole.last_event["drill"].seq, 4);
    }

    #[test]
    fn a_summary_skips_blank_lines_and_names_a_line_that_is_no_entry_by_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::new(&path, "vault");
        for event in ["unseal", "drill", "seal"] {
            log.append(Event::new(event), &actor(), "2026-01-01T00:00:00Z")
                .unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        let first_end = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
        // A blank line after the first (blank lines are no lines): skipped, and each line
        // after it is at its place in the file.
        let mut blank = bytes[..first_end].to_vec();
        blank.push(b'\n');
        blank.extend_from_slice(&bytes[first_end..]);
        std::fs::write(&path, &blank).unwrap();
        let third = blank[..blank.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .unwrap()
            + 1;
        let mut summary = LogSummary::default();
        log.summarise(&mut summary, first_end as u64, blank.len() as u64)
            .unwrap();
        assert_eq!(
            summary.last_event.keys().collect::<Vec<_>>(),
            ["drill", "seal"]
        );
        assert_eq!(
            summary.last_event["seal"],
            LinePlace {
                seq: 3,
                offset: third as u64
            }
        );
        // The third line damaged: named by its number (the blank line not counted).
        let mut damaged = blank.clone();
        damaged[third] = b'x';
        std::fs::write(&path, &damaged).unwrap();
        let result = log.summarise(
            &mut LogSummary::default(),
            first_end as u64,
            damaged.len() as u64,
        );
        assert!(
            matches!(result, Err(AuditError::Damaged { line: 3, .. })),
            "{result:?}"
        );
    }

    #[test]
    fn a_log_that_cannot_be_opened_is_an_error_not_an_empty_log() {
        // A path through a regular file (ENOTDIR): an opening that fails for another reason
        // than a missing file, which a test running as root can stage (permissions it cannot).
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let log = AuditLog::new(&file.join("audit.jsonl"), "vault");
        let io = |what: &str, result: Result<String, AuditError>| {
            assert!(
                matches!(result, Err(AuditError::Io { .. })),
                "{what}: {result:?}"
            );
        };
        io(
            "prefix_digests",
            log.prefix_digests(&[0]).map(|d| format!("{d:?}")),
        );
        io("is_empty", log.is_empty().map(|e| e.to_string()));
        io(
            "has_signed_head",
            log.has_signed_head().map(|e| e.to_string()),
        );
        io("head", log.head().map(|h| format!("{h:?}")));
        io("verify", log.verify(&[4; 65]).map(|r| format!("{r:?}")));
        // Missing, the same log is empty.
        let missing = AuditLog::new(&dir.path().join("audit.jsonl"), "vault");
        let empty = hex::encode(digest(&SHA256, b""));
        assert_eq!(
            missing.prefix_digests(&[0, 1]).unwrap(),
            [Some(empty), None]
        );
        assert!(missing.is_empty().unwrap());
        assert!(missing.verify(&[4; 65]).unwrap().is_intact());
    }
}

#[cfg(test)]
mod parallel_tests {
    use ring::signature::KeyPair as _;

    use super::*;

    struct Key(ring::signature::EcdsaKeyPair);

    impl CheckpointSigner for Key {
        fn key_id(&self) -> String {
            "k".into()
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, crate::Error> {
            let rng = ring::rand::SystemRandom::new();
            Ok(self.0.sign(&rng, message).unwrap().as_ref().to_vec())
        }
    }

    fn key() -> Key {
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Key(ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
    }

    /// Walking in 1, 2, 3 and 7 parts gives one report, and `from` a line as from the start.
    fn same_in_every_split(log: &AuditLog, public: &[u8], from: &ChainPoint) -> VerifyReport {
        let bytes = log.bytes_from(from.offset).unwrap();
        let read = split(&bytes);
        let one = log.walk_in_parts(1, &read, from, &[], public, Some(&mut BTreeMap::new()));
        for parts in [2, 3, 7] {
            let many = log.walk_in_parts(parts, &read, from, &[], public, None);
            assert_eq!(many, one, "{parts} parts");
        }
        one
    }

    #[test]
    fn a_walk_in_parts_reports_what_one_walk_reports_whatever_breaks_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::new(&path, "vault");
        let signer = key();
        let public = signer.0.public_key().as_ref().to_vec();
        let actor = Actor {
            user: "a".into(),
            host: "h".into(),
        };
        for i in 0..60 {
            log.append(Event::new("seal").detail("n", i.to_string()), &actor, "t")
                .unwrap();
            if i % 9 == 0 {
                log.append_checkpoint(&signer, &actor, "t").unwrap();
            }
        }
        let start = ChainPoint {
            seq: 0,
            hash: GENESIS.into(),
            offset: 0,
            signed_lines: false,
        };
        let intact = same_in_every_split(&log, &public, &start);
        assert!(intact.is_intact() && intact.checkpoints == 7, "{intact:?}");
        // From a line in the middle, as a machine that verified up to it resumes.
        let at_30 = {
            let text = std::fs::read_to_string(&path).unwrap();
            let offset: usize = text.lines().take(30).map(|l| l.len() + 1).sum();
            let line = text.lines().nth(29).unwrap();
            ChainPoint {
                seq: 30,
                hash: line_hash(line.as_bytes()),
                offset: offset as u64,
                signed_lines: false,
            }
        };
        same_in_every_split(&log, &public, &at_30);
        let original = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = original.lines().collect();
        let write = |lines: &[String]| std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let owned = || lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
        // A changed line in each place a part can start or end, a bad checkpoint signature,
        // two lines swapped, a torn tail.
        for at in [0, 1, 22, 23, 24, 33, 34, 45, 46, 65, 66] {
            let mut changed = owned();
            changed[at] = changed[at].replacen("\"t\"", "\"u\"", 1);
            write(&changed);
            let report = same_in_every_split(&log, &public, &start);
            // The last line is in the unsigned tail: nothing after it chains to it.
            assert_eq!(report.is_intact(), at == 66, "line {}", at + 1);
        }
        let mut swapped = owned();
        swapped.swap(40, 41);
        write(&swapped);
        assert!(!same_in_every_split(&log, &public, &start).is_intact());
        let checkpoint = lines
            .iter()
            .position(|l| l.contains("checkpoint") && l.contains("signature"))
            .unwrap();
        let mut forged = owned();
        forged[checkpoint] =
            forged[checkpoint].replacen("\"signature\":\"", "\"signature\":\"AA", 1);
        write(&forged);
        let report = same_in_every_split(&log, &public, &start);
        assert!(report.bad_signature.is_some() || report.first_problem.is_some());
        std::fs::write(&path, original.clone() + "{\"seq\":99,\"ti").unwrap();
        let torn = same_in_every_split(&log, &public, &start);
        assert!(torn.is_intact() && torn.torn_tail.is_some(), "{torn:?}");
    }
}

/// A line of the chain and where it ends: what verification resumes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPoint {
    /// Its sequence number (0: before the first line).
    pub seq: u64,
    /// The hex SHA-256 of its bytes ([`GENESIS`] before the first line).
    pub hash: String,
    /// The byte offset just after its newline.
    pub offset: u64,
    /// Whether signed (format 2) lines have begun at or before it: no unsigned line may
    /// follow.
    pub signed_lines: bool,
}

/// A problem found at a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The line (1-based).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// What [`AuditLog::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Lines in the log.
    pub entries: usize,
    /// Valid checkpoints.
    pub checkpoints: usize,
    /// The line of the last valid checkpoint.
    pub last_checkpoint: Option<usize>,
    /// Entries after the last checkpoint (not yet signed).
    pub unsigned_tail: usize,
    /// The first broken line, if any.
    pub first_problem: Option<Problem>,
    /// The first checkpoint whose signature does not verify, if any.
    pub bad_signature: Option<usize>,
    /// The head hash, when the chain is intact.
    pub head: String,
    /// A write cut short at the end of the log (not part of the chain; see [`TornTail`]).
    pub torn_tail: Option<TornTail>,
    /// Whether the log has signed (format 2) lines (it has been upgraded, or made by a
    /// release that signs them).
    pub signed_lines: bool,
    /// How many lines walked recorded an envelope (counted when they were collected).
    #[serde(skip)]
    pub records: usize,
}

impl VerifyReport {
    /// The report of `count` lines after `start` (and the torn tail after them, if any),
    /// before any is checked.
    fn of_lines(start: &ChainPoint, count: usize, torn: Option<&TornTail>) -> VerifyReport {
        let first = start.seq as usize;
        VerifyReport {
            entries: first + count,
            torn_tail: torn.map(|tail| TornTail {
                line: first + tail.line,
                offset: start.offset + tail.offset,
                len: tail.len,
            }),
            ..VerifyReport::default()
        }
    }

    /// Whether the chain is intact and every checkpoint verifies (an unsigned tail is allowed:
    /// it is reported, and signed at the next token login; so is a torn tail, which is no
    /// line of the chain).
    pub fn is_intact(&self) -> bool {
        self.first_problem.is_none() && self.bad_signature.is_none()
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    use super::*;

    struct SoftSigner(EcdsaKeyPair);

    impl CheckpointSigner for SoftSigner {
        fn key_id(&self) -> String {
            "soft".into()
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, crate::Error> {
            Ok(self
                .0
                .sign(&ring::rand::SystemRandom::new(), message)
                .unwrap()
                .as_ref()
                .to_vec())
        }
    }

    fn signer() -> SoftSigner {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        SoftSigner(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn log_with(n: usize, signer: &SoftSigner) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&dir.path().join("audit.jsonl"), "vault");
        let actor = Actor {
            user: "alice".into(),
            host: "h".into(),
        };
        for i in 0..n {
            log.append(
                Event::new("seal").detail("n", i.to_string()),
                &actor,
                "2026-11-24T12:00:00Z",
            )
            .unwrap();
            if i == n / 2 {
                log.append_checkpoint(signer, &actor, "2026-11-24T12:00:00Z")
                    .unwrap();
            }
        }
        (dir, log)
    }

    #[test]
    fn an_intact_chain_verifies_and_reports_the_unsigned_tail() {
        let signer = signer();
        let (_dir, log) = log_with(10, &signer);
        let report = log.verify(signer.0.public_key().as_ref()).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(
            (
                report.entries,
                report.checkpoints,
                report.last_checkpoint,
                report.unsigned_tail
            ),
            (11, 1, Some(7), 4)
        );
        assert_eq!(log.head().unwrap().hash, report.head);
    }

    #[test]
    fn every_changed_byte_is_found_at_its_line() {
        let signer = signer();
        let (_dir, log) = log_with(6, &signer);
        let original = std::fs::read(&log.path).unwrap();
        let key = signer.0.public_key().as_ref().to_vec();
        let last_line_start = original[..original.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .unwrap()
            + 1;
        let mut line = 1;
        // The last line has no successor to chain to it: a change there is only visible
        // through a later checkpoint (or a head recorded elsewhere), so `verify` reports it as
        // the unsigned tail. Every other line is covered by the chain.
        assert!(log.verify(&key).unwrap().unsigned_tail > 0);
        for i in 0..last_line_start {
            if original[i] == b'\n' {
                line += 1;
                continue;
            }
            let mut changed = original.clone();
            changed[i] ^= 0x01;
            std::fs::write(&log.path, &changed).unwrap();
            let report = log.verify(&key).unwrap();
            assert!(
                !report.is_intact(),
                "byte {i} changed and the chain still verifies"
            );
            let found = report
                .first_problem
                .map(|p| p.line)
                .or(report.bad_signature)
                .unwrap();
            // A change is found at its own line or, when it leaves that line valid, at the next
            // line, whose `prev` no longer matches.
            assert!(
                found == line || found == line + 1,
                "byte {i} on line {line}: reported at {found}"
            );
        }
    }

    #[test]
    fn removed_reordered_and_inserted_lines_and_a_wrong_key_are_reported() {
        let signer = signer();
        let (_dir, log) = log_with(6, &signer);
        let key = signer.0.public_key().as_ref().to_vec();
        let original = std::fs::read_to_string(&log.path).unwrap();
        let lines: Vec<&str> = original.lines().collect();
        let write = |ls: &[&str]| std::fs::write(&log.path, ls.join("\n") + "\n").unwrap();
        let mut removed = lines.clone();
        removed.remove(2);
        write(&removed);
        assert_eq!(log.verify(&key).unwrap().first_problem.unwrap().line, 3);
        let mut reordered = lines.clone();
        reordered.swap(1, 2);
        write(&reordered);
        assert_eq!(log.verify(&key).unwrap().first_problem.unwrap().line, 2);
        write(&lines);
        let other = self::signer();
        assert_eq!(
            log.verify(other.0.public_key().as_ref())
                .unwrap()
                .bad_signature,
            Some(5)
        );
        // A truncated last line (a crash mid-write) is a torn tail, not a break in the chain.
        std::fs::write(&log.path, &original[..original.len() - 10]).unwrap();
        let report = log.verify(&key).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.torn_tail.unwrap().line, lines.len());
    }

    #[test]
    fn a_torn_tail_is_reported_apart_from_the_chain_appends_refuse_and_repair_moves_it_aside() {
        let signer = signer();
        let key = signer.0.public_key().as_ref().to_vec();
        let actor = Actor {
            user: "alice".into(),
            host: "h".into(),
        };
        for (i, torn) in [
            &br#"{"seq":6,"time":"2026-11-24T12:00:00Z","event":"checkpoin"#[..],
            b"\0\0\0\0\0\0\0\0",
            b"{\"seq\":6,\"ti\n",
        ]
        .into_iter()
        .enumerate()
        {
            let (dir, log) = log_with(4, &signer);
            let intact = std::fs::read(&log.path).unwrap();
            let entries = log.entries().unwrap();
            let mut bytes = intact.clone();
            bytes.extend_from_slice(torn);
            std::fs::write(&log.path, &bytes).unwrap();
            let report = log.verify(&key).unwrap();
            assert!(report.is_intact(), "{i}: {report:?}");
            let expected = TornTail {
                line: entries.len() + 1,
                offset: intact.len() as u64,
                len: torn.len() as u64,
            };
            assert_eq!(report.torn_tail.as_ref(), Some(&expected), "{i}");
            assert_eq!(log.entries().unwrap(), entries, "{i}");
            assert!(matches!(log.head(), Err(AuditError::TornTail { .. })));
            assert!(matches!(
                log.append(Event::new("seal"), &actor, "2026-11-24T12:00:00Z"),
                Err(crate::Error::Audit(AuditError::TornTail { .. }))
            ));
            assert_eq!(
                std::fs::read(&log.path).unwrap(),
                bytes,
                "{i}: refused appends write nothing"
            );

            let repaired = log.repair("20261124T120000Z").unwrap().unwrap();
            assert_eq!(repaired.tail, expected);
            assert_eq!(
                repaired.moved_to,
                dir.path().join("audit.jsonl.torn-20261124T120000Z")
            );
            assert_eq!(std::fs::read(&repaired.moved_to).unwrap(), torn);
            assert_eq!(std::fs::read(&log.path).unwrap(), intact);
            assert_eq!(log.repair("later").unwrap(), None, "nothing left to repair");
            log.append(Event::new("seal"), &actor, "2026-11-24T12:00:00Z")
                .unwrap();
            assert!(log.verify(&key).unwrap().is_intact());
        }
    }

    #[test]
    fn a_format_one_line_with_a_format_two_member_is_refused_even_null() {
        let signer = signer();
        let (_dir, log) = log_with(2, &signer);
        let key = signer.0.public_key().as_ref().to_vec();
        let text = std::fs::read_to_string(&log.path).unwrap();
        for member in [r#""v":null,"#, r#""signature":null,"#] {
            let changed = text.replacen("{\"seq\":2,", &format!("{{{member}\"seq\":2,"), 1);
            assert_ne!(changed, text);
            std::fs::write(&log.path, &changed).unwrap();
            let report = log.verify(&key).unwrap();
            assert_eq!(report.first_problem.unwrap().line, 2, "{member}");
        }
    }

    #[test]
    fn only_the_last_line_can_be_torn_a_damaged_line_before_it_is_a_break() {
        let signer = signer();
        let (_dir, log) = log_with(4, &signer);
        let original = std::fs::read_to_string(&log.path).unwrap();
        let mut lines: Vec<String> = original.lines().map(str::to_owned).collect();
        lines[2].truncate(20);
        std::fs::write(&log.path, lines.join("\n") + "\n").unwrap();
        let report = log.verify(signer.0.public_key().as_ref()).unwrap();
        assert_eq!(report.torn_tail, None);
        assert_eq!(report.first_problem.unwrap().line, 3);
    }

    #[test]
    fn a_torn_last_line_followed_by_blank_lines_is_one_torn_tail() {
        // Found by the audit_log fuzz target: the torn line was located from the last newline,
        // which was a blank line's.
        let signer = signer();
        let (_dir, log) = log_with(3, &signer);
        let original = std::fs::read(&log.path).unwrap();
        let complete = log.entries().unwrap().len();
        let mut bytes = original.clone();
        bytes.extend_from_slice(b"{\"v\":1,\"seq\":9,\"ev\n\n");
        std::fs::write(&log.path, &bytes).unwrap();
        let tail = log.torn_tail().unwrap().expect("a torn tail");
        assert_eq!(tail.offset, original.len() as u64);
        assert_eq!(tail.len, (bytes.len() - original.len()) as u64);
        assert_eq!(log.entries().unwrap().len(), complete);
    }

    #[test]
    fn head_torn_tail_and_hash_of_line_read_from_the_end_agree_with_the_whole_log() {
        let signer = signer();
        let (_dir, log) = log_with(7, &signer);
        let intact = std::fs::read(&log.path).unwrap();
        let long = format!(
            "{{\"seq\":9,\"event\":\"{}\"}}",
            "x".repeat(3 * crate::audit_tail::WINDOW)
        );
        let variants: Vec<Vec<u8>> = vec![
            Vec::new(),
            intact.clone(),
            [&intact[..], b"\n\n"].concat(),
            [&intact[..], b"{\"seq\":9,\"ti"].concat(),
            [&intact[..], b"{\"seq\":9,\"ti\n"].concat(),
            [&intact[..], b"{\"seq\":9,\"ti\n\n\n"].concat(),
            [&intact[..], b"\0"].concat(),
            [&intact[..], long.as_bytes(), b"\n"].concat(),
            [&intact[..], long.as_bytes()].concat(),
            intact[..intact.len() - 1].to_vec(),
            intact[..intact.len() / 2].to_vec(),
            // A line removed in the middle: the numbering from the end is not the lines'.
            {
                let lines: Vec<&[u8]> = intact.split(|b| *b == b'\n').collect();
                [lines[..3].join(&b'\n'), lines[4..].join(&b'\n')].join(&b'\n')
            },
        ];
        for (i, bytes) in variants.iter().enumerate() {
            std::fs::write(&log.path, bytes).unwrap();
            let whole = split(bytes);
            let torn = whole.torn.as_ref().map(|(tail, _)| tail.clone());
            assert_eq!(log.torn_tail().unwrap(), torn, "{i}");
            match (log.head(), &torn) {
                (Err(AuditError::TornTail { tail, .. }), Some(torn)) => assert_eq!(&tail, torn),
                (Ok(head), None) => {
                    let expected = whole
                        .lines
                        .last()
                        .map_or(GENESIS.to_owned(), |l| line_hash(l));
                    assert_eq!(head.hash, expected, "{i}");
                }
                (other, _) => panic!("{i}: {other:?}"),
            }
            // The line numbered `seq`, when every line after it numbers on from it.
            let numbers: Vec<Option<u64>> = whole
                .lines
                .iter()
                .map(|l| serde_json::from_slice::<Numbered>(l).ok().map(|n| n.seq))
                .collect();
            for seq in 0..whole.lines.len() as u64 + 3 {
                let expected = numbers.iter().position(|n| *n == Some(seq)).and_then(|at| {
                    numbers[at..]
                        .windows(2)
                        .all(|w| w[0].is_some_and(|a| w[1] == Some(a + 1)))
                        .then(|| line_hash(whole.lines[at]))
                });
                assert_eq!(log.hash_of_line(seq).unwrap(), expected, "{i}: line {seq}");
                // In a log numbered as breakglass numbers it, line `seq` is the `seq`-th line.
                if numbers
                    .iter()
                    .enumerate()
                    .all(|(n, s)| *s == Some(n as u64 + 1))
                {
                    let nth = usize::try_from(seq)
                        .ok()
                        .and_then(|n| n.checked_sub(1))
                        .and_then(|n| whole.lines.get(n))
                        .map(|l| line_hash(l));
                    assert_eq!(expected, nth, "{i}: line {seq}");
                }
            }
            let mut streamed = Vec::new();
            let each = log.each_entry(|e| {
                streamed.push(e);
                Ok::<_, AuditError>(())
            });
            match log.entries() {
                Ok(entries) => {
                    each.unwrap();
                    assert_eq!(streamed, entries, "{i}");
                }
                Err(AuditError::Damaged { line, .. }) => {
                    assert!(matches!(each, Err(AuditError::Damaged { line: l, .. }) if l == line));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn rfind_reads_back_from_the_end_and_stops_at_the_first_entry_wanted() {
        let signer = signer();
        let (_dir, log) = log_with(6, &signer);
        let found = log.rfind(|e| e.event == "seal").unwrap().unwrap();
        assert_eq!(found.details["n"], "5");
        let first = log.rfind(|e| e.details.get("n").is_some_and(|n| n == "0"));
        assert_eq!(first.unwrap().unwrap().seq, 1);
        assert_eq!(log.rfind(|e| e.event == "drill").unwrap(), None);
        // A torn tail is no entry to find.
        let mut bytes = std::fs::read(&log.path).unwrap();
        bytes.extend_from_slice(br#"{"seq":8,"event":"seal"#);
        std::fs::write(&log.path, &bytes).unwrap();
        assert_eq!(log.rfind(|e| e.event == "seal").unwrap().unwrap().seq, 7);
        let back: Vec<u64> = log
            .lines_back()
            .unwrap()
            .map(|l| serde_json::from_slice::<Entry>(&l.unwrap().1).unwrap().seq)
            .collect();
        assert_eq!(back, (1..=7).rev().collect::<Vec<_>>());

        // Lines that cannot name what is looked for are not parsed; a line that escapes a
        // character might, and is.
        let actor = Actor {
            user: "alice".into(),
            host: "h".into(),
        };
        std::fs::write(&log.path, b"").unwrap();
        log.append(
            Event::new("hsm_enrol").detail("manifest_digest", "aa"),
            &actor,
            "2026-11-24T12:00:00Z",
        )
        .unwrap();
        log.append(Event::new("seal"), &actor, "2026-11-24T12:00:00Z")
            .unwrap();
        let carries = |e: &Entry| e.details.contains_key("manifest_digest");
        let found = |log: &AuditLog| {
            log.rfind_matching(|l| may_name(l, "manifest_digest"), carries)
                .unwrap()
                .map(|e| e.seq)
        };
        assert_eq!(found(&log), Some(1));
        let escaped = std::fs::read_to_string(&log.path)
            .unwrap()
            .replace("\"manifest_digest\"", "\"manifest\\u005fdigest\"");
        std::fs::write(&log.path, &escaped).unwrap();
        assert_eq!(log.rfind(carries).unwrap().unwrap().seq, 1);
        assert_eq!(found(&log), Some(1));
        assert!(!may_name(br#"{"seq":2,"event":"seal"}"#, "manifest_digest"));
    }

    #[test]
    fn a_signed_entry_and_its_checkpoint_are_appended_in_one_write() {
        let signer = signer();
        let (_dir, log) = log_with(2, &signer);
        let actor = Actor {
            user: "alice".into(),
            host: "h".into(),
        };
        let before = std::fs::read(&log.path).unwrap().len();
        let prepared = log
            .prepare_signed(
                Event::new("unseal"),
                &signer,
                &actor,
                "2026-11-24T12:00:00Z",
            )
            .unwrap();
        let head = log.append_prepared(prepared).unwrap();
        let bytes = std::fs::read(&log.path).unwrap();
        let appended = &bytes[before..];
        assert_eq!(appended.iter().filter(|b| **b == b'\n').count(), 2);
        assert_eq!(head, log.head().unwrap());
        assert!(
            log.verify(signer.0.public_key().as_ref())
                .unwrap()
                .is_intact()
        );
    }

    #[test]
    fn verification_resumes_after_a_verified_line_reading_only_what_follows_it() {
        let signer = signer();
        let key = signer.0.public_key().as_ref().to_vec();
        let (_dir, log) = log_with(8, &signer);
        let (whole, end) = log.verify_from(None, &[], &key).unwrap();
        let bytes = std::fs::read(&log.path).unwrap();
        assert_eq!(end.offset, bytes.len() as u64);
        assert_eq!((end.seq, end.hash.as_str()), (9, whole.head.as_str()));
        // From line 3: the same head, and the lines before it are not read (a change there
        // goes unseen; `verify` from the start sees it).
        let third = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(2)
            .unwrap()
            .0 as u64
            + 1;
        let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        let from = ChainPoint {
            seq: 3,
            hash: line_hash(lines[2]),
            offset: third,
            signed_lines: false,
        };
        let mut changed = bytes.clone();
        changed[20] ^= 1;
        std::fs::write(&log.path, &changed).unwrap();
        let (tail, resumed) = log.verify_from(Some(&from), &[], &key).unwrap();
        assert!(tail.is_intact(), "{tail:?}");
        assert_eq!(resumed, end);
        assert!(!log.verify(&key).unwrap().is_intact());
        // A broken line after it: the walk stops at the line before.
        std::fs::write(&log.path, &bytes).unwrap();
        let mut broken = bytes.clone();
        let at = lines[..6].iter().map(|l| l.len() + 1).sum::<usize>() + 20;
        broken[at] ^= 1;
        std::fs::write(&log.path, &broken).unwrap();
        let (tail, stopped) = log.verify_from(Some(&from), &[], &key).unwrap();
        assert_eq!(tail.first_problem.unwrap().line, 8);
        assert_eq!(stopped.seq, 6);
        assert_eq!(stopped.hash, line_hash(lines[5]));
    }

    #[test]
    fn a_retired_key_verifies_up_to_its_line_and_nothing_after() {
        let old = signer();
        let new = signer();
        let (_dir, log) = log_with(4, &old);
        let actor = Actor {
            user: "alice".into(),
            host: "h".into(),
        };
        let retired_at = log.head().unwrap().seq;
        log.append(Event::new("hsm_enrol"), &actor, "2026-11-24T12:00:00Z")
            .unwrap();
        log.append_checkpoint(&new, &actor, "2026-11-24T12:00:00Z")
            .unwrap();
        let retired = [(retired_at, old.0.public_key().as_ref().to_vec())];
        let report = log
            .verify_with_retired(&retired, new.0.public_key().as_ref())
            .unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.checkpoints, 2);
        // The new key alone does not verify the old checkpoints.
        assert!(
            log.verify(new.0.public_key().as_ref())
                .unwrap()
                .bad_signature
                .is_some()
        );
        // Whoever holds the lost token cannot sign anything after its retirement.
        log.append_checkpoint(&old, &actor, "2026-11-24T12:00:00Z")
            .unwrap();
        let report = log
            .verify_with_retired(&retired, new.0.public_key().as_ref())
            .unwrap();
        assert_eq!(report.bad_signature, Some(report.entries));
    }

    /// Writes format-2 lines as a machine without an operator key does (unsigned, no key).
    struct QuorumWriter;

    impl LineWriter for QuorumWriter {
        fn line(&self, record: &LineRecord) -> Result<Vec<u8>, crate::Error> {
            let body = record.body(EntryActor::Quorum("root@h".into()));
            Ok(crate::trust::audit_line::quorum_line(&body)?)
        }
    }

    #[test]
    fn a_checkpoint_signs_the_documented_message_for_its_vault_and_line() {
        let signer = signer();
        let key = signer.0.public_key().as_ref().to_vec();
        // Lines 1 to 3, the checkpoint (line 4, signing line 3), line 5.
        let (_dir, log) = log_with(4, &signer);
        let lines = log.lines().unwrap();
        let entry: Entry = serde_json::from_slice(&lines[3]).unwrap();
        assert_eq!(entry.event, "checkpoint");
        let checkpoint = entry.checkpoint.unwrap();
        assert_eq!(
            checkpoint.head,
            hex::encode(digest(&SHA256, &lines[2]).as_ref())
        );
        // docs/format.md: "breakglass-audit-checkpoint/1\n" || vault id || "\n" || decimal seq
        // || "\n" || H, written out here rather than through `checkpoint_message`.
        let message = format!(
            "breakglass-audit-checkpoint/1\nvault\n3\n{}",
            checkpoint.head
        );
        let signature = B64.decode(&checkpoint.signature).unwrap();
        let verifier = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            &key,
        );
        verifier.verify(message.as_bytes(), &signature).unwrap();
        for other in [
            format!(
                "breakglass-audit-checkpoint/1\nvault\n4\n{}",
                checkpoint.head
            ),
            format!(
                "breakglass-audit-checkpoint/1\nvaulT\n3\n{}",
                checkpoint.head
            ),
            format!(
                "breakglass-audit-checkpoint/2\nvault\n3\n{}",
                checkpoint.head
            ),
        ] {
            assert!(
                verifier.verify(other.as_bytes(), &signature).is_err(),
                "{other}"
            );
        }
        assert!(log.verify(&key).unwrap().is_intact());
        // The same lines read as another vault's log: its checkpoint signs nothing there.
        let other = AuditLog::new(&log.path, "another-vault");
        let report = other.verify(&key).unwrap();
        assert_eq!(report.bad_signature, Some(4), "{report:?}");
        assert!(!report.is_intact());
    }

    #[test]
    fn the_head_is_signed_while_the_last_complete_line_is_format_two() {
        let signer = signer();
        let (dir, log) = log_with(2, &signer);
        let actor = Actor {
            user: "alice".into(),
            host: "h".into(),
        };
        let time = "2026-11-24T12:00:00Z";
        assert!(!log.has_signed_head().unwrap());
        let missing = AuditLog::new(&dir.path().join("none.jsonl"), "vault");
        assert!(!missing.has_signed_head().unwrap());
        // Lines 1 and 2, the checkpoint (3): the line appended is line 4, and its head is the
        // log's.
        let head = log
            .append(Event::new("unseal"), &QuorumWriter, time)
            .unwrap();
        assert_eq!(head.seq, 4);
        assert_eq!(head, log.head().unwrap());
        assert!(log.has_signed_head().unwrap());
        assert!(
            log.lines()
                .unwrap()
                .last()
                .unwrap()
                .starts_with(FORMAT_TWO_START)
        );
        // A torn write after it is no line: the head is still the signed line.
        let mut file = OpenOptions::new().append(true).open(&log.path).unwrap();
        std::io::Write::write_all(&mut file, b"{\"seq\":9,\"ti").unwrap();
        assert!(log.has_signed_head().unwrap());
        log.repair("1").unwrap().unwrap();
        // A format-1 line appended after it.
        log.append(Event::new("seal"), &actor, time).unwrap();
        assert!(!log.has_signed_head().unwrap());
    }

    #[test]
    fn each_entry_and_entries_read_in_order_name_a_damaged_line_and_a_missing_log_is_empty() {
        let signer = signer();
        let (dir, log) = log_with(3, &signer);
        let mut seen = Vec::new();
        log.each_entry(|entry| {
            seen.push(entry.seq);
            Ok::<(), AuditError>(())
        })
        .unwrap();
        assert_eq!(seen, [1, 2, 3, 4]);
        // A line that is no entry stops the reading there, named by its number.
        let text = std::fs::read_to_string(&log.path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[2] = "not an entry";
        std::fs::write(&log.path, lines.join("\n") + "\n").unwrap();
        let mut seen = Vec::new();
        let result = log.each_entry(|entry| {
            seen.push(entry.seq);
            Ok::<(), AuditError>(())
        });
        assert!(
            matches!(result, Err(AuditError::Damaged { line: 3, .. })),
            "{result:?}"
        );
        assert_eq!(seen, [1, 2]);
        let result = log.entries();
        assert!(
            matches!(result, Err(AuditError::Damaged { line: 3, .. })),
            "{result:?}"
        );
        let missing = AuditLog::new(&dir.path().join("none.jsonl"), "vault");
        let mut called = false;
        missing
            .each_entry(|_| {
                called = true;
                Ok::<(), AuditError>(())
            })
            .unwrap();
        assert!(!called);
    }

    #[test]
    fn the_resume_point_ends_where_its_line_ends_past_blank_lines_and_knows_signed_lines_began() {
        let signer = signer();
        let key = signer.0.public_key().as_ref().to_vec();
        let manifest = crate::trust::certified::tests::certified(1);
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::of_vault(&dir.path().join("audit.jsonl"), &manifest);
        let actor = Actor {
            user: "alice".into(),
            host: "h".into(),
        };
        let time = "2026-11-24T12:00:00Z";
        for i in 0..3 {
            log.append(Event::new("seal").detail("n", i.to_string()), &actor, time)
                .unwrap();
        }
        let head = log.append_checkpoint(&signer, &actor, time).unwrap();
        assert_eq!(head.seq, 4);
        assert_eq!(head, log.head().unwrap());
        // Blank lines between lines are no lines: the point after line 4 is the end of the
        // file, not a blank line's end.
        let text = std::fs::read_to_string(&log.path).unwrap();
        let blank = text.replacen('\n', "\n\n\n", 2);
        std::fs::write(&log.path, &blank).unwrap();
        let (report, end) = log.verify_from(None, &[], &key).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(
            (end.seq, end.offset, end.signed_lines),
            (4, blank.len() as u64, false)
        );
        assert_eq!(end.hash, head.hash);
        // Signed (format 2) lines after it: the point after them says they have begun, read
        // from the start or resumed from line 4.
        log.append(Event::new("unseal"), &QuorumWriter, time)
            .unwrap();
        let last = log.append_checkpoint(&signer, &QuorumWriter, time).unwrap();
        let length = std::fs::metadata(&log.path).unwrap().len();
        let (whole, after) = log.verify_from(None, &[], &key).unwrap();
        assert!(whole.is_intact() && whole.signed_lines, "{whole:?}");
        assert_eq!(
            (
                after.seq,
                after.hash.as_str(),
                after.offset,
                after.signed_lines
            ),
            (6, last.hash.as_str(), length, true)
        );
        let (resumed, again) = log.verify_from(Some(&end), &[], &key).unwrap();
        assert!(resumed.is_intact() && resumed.signed_lines, "{resumed:?}");
        assert_eq!(again, after);
    }

    #[test]
    fn a_missing_log_is_an_empty_one_and_a_torn_one_is_refused_for_writing() {
        let signer = signer();
        let key = signer.0.public_key().as_ref().to_vec();
        let dir = tempfile::tempdir().unwrap();
        let missing = AuditLog::new(&dir.path().join("none.jsonl"), "vault");
        assert!(missing.is_empty().unwrap());
        let report = missing.verify(&key).unwrap();
        assert!(report.is_intact() && report.entries == 0, "{report:?}");
        assert!(missing.entries().unwrap().is_empty());
        assert_eq!(missing.repair("1").unwrap(), None);
        missing.refuse_torn_tail().unwrap();
        let (_logs, log) = log_with(2, &signer);
        assert!(!log.is_empty().unwrap());
        log.refuse_torn_tail().unwrap();
        let mut file = OpenOptions::new().append(true).open(&log.path).unwrap();
        std::io::Write::write_all(&mut file, b"{\"seq\":4,\"ti").unwrap();
        assert!(matches!(
            log.refuse_torn_tail(),
            Err(AuditError::TornTail { .. })
        ));
        // A log holding only a torn write has no line.
        let torn = AuditLog::new(&dir.path().join("torn.jsonl"), "vault");
        std::fs::write(&torn.path, b"{\"seq\":1,\"ti").unwrap();
        assert!(torn.is_empty().unwrap());
        // A log that cannot be read is an error, not an empty log.
        let unreadable = AuditLog::new(dir.path(), "vault");
        assert!(matches!(unreadable.entries(), Err(AuditError::Io { .. })));
    }
}
