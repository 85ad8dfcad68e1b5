//! What this machine remembers and decides about a vault, outside the vault directory.
//!
//! The configuration directory is `$BREAKGLASS_CONFIG_DIR` when set (tests), else
//! `$XDG_CONFIG_HOME/breakglass`, else `~/.config/breakglass`; directories 0700, files 0600:
//!
//! ```text
//! known_vaults.json          vault id -> pinned fingerprint (written at init)
//! anchors/<vault id>.json    identity, highest manifest version seen, last verified audit head
//! operators/<vault id>.key   this machine's operator key for the vault (see `operator`)
//! records/<vault id>.*       the envelope records it verified (see `records`)
//! verified/<vault id>.json   how much of the audit log it verified whole (`status`)
//! config.json                this machine's settings: { "pkcs11_module": "/path" }
//! ```
//!
//! **Anchors** turn "the log verifies" into "the log continues what this machine verified":
//! a log shorter than the remembered head, or whose line at the remembered offset is not the
//! remembered line, is a rollback. A command then verifies only what was appended since, so
//! its cost does not grow with history.
//!
//! **The PKCS#11 module** is code: it is loaded from the command line, else
//! `BREAKGLASS_PKCS11_MODULE`, else this machine's `config.json`, and only then from the hints
//! of an *authenticated* manifest, never from bytes the vault directory alone names.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use std::io::{Read, Seek, SeekFrom};

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use super::TrustError;
use super::certified::{AuthenticatedManifest, SeenManifest};
use crate::audit::ChainPoint;
use crate::manifest::Fingerprint;

/// The variable that overrides the configuration directory.
pub const CONFIG_DIR_VAR: &str = "BREAKGLASS_CONFIG_DIR";
/// The variable that names the PKCS#11 module.
pub const MODULE_VAR: &str = "BREAKGLASS_PKCS11_MODULE";
/// The anchor file format.
pub const ANCHOR_FORMAT: &str = "breakglass-anchor/1";

/// This machine's breakglass configuration directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDir {
    root: PathBuf,
}

fn non_empty(value: Option<OsString>) -> Option<OsString> {
    value.filter(|v| !v.is_empty())
}

impl ConfigDir {
    /// The directory at `root` (tests, or a caller that resolved it).
    pub fn at(root: &Path) -> ConfigDir {
        ConfigDir {
            root: root.to_path_buf(),
        }
    }

    /// The directory from these variables' values: the override, else `xdg/breakglass`, else
    /// `home/.config/breakglass`. Empty values count as unset; `None` when all are.
    pub fn resolve(
        override_dir: Option<OsString>,
        xdg_config_home: Option<OsString>,
        home: Option<OsString>,
    ) -> Option<ConfigDir> {
        let root = non_empty(override_dir).map(PathBuf::from).or_else(|| {
            non_empty(xdg_config_home)
                .map(PathBuf::from)
                .or_else(|| non_empty(home).map(|h| PathBuf::from(h).join(".config")))
                .map(|base| base.join("breakglass"))
        })?;
        Some(ConfigDir { root })
    }

    /// The directory from this process's environment.
    pub fn from_env() -> Option<ConfigDir> {
        ConfigDir::resolve(
            std::env::var_os(CONFIG_DIR_VAR),
            std::env::var_os("XDG_CONFIG_HOME"),
            std::env::var_os("HOME"),
        )
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn per_vault(&self, dir: &str, vault_id: &str, extension: &str) -> Result<PathBuf, TrustError> {
        validate_vault_id(vault_id)?;
        Ok(self.root.join(dir).join(format!("{vault_id}.{extension}")))
    }

    /// Where this machine's operator key for `vault_id` is.
    pub fn operator_key_path(&self, vault_id: &str) -> Result<PathBuf, TrustError> {
        self.per_vault("operators", vault_id, "key")
    }

    /// Where this machine's anchor for `vault_id` is.
    pub fn anchor_path(&self, vault_id: &str) -> Result<PathBuf, TrustError> {
        self.per_vault("anchors", vault_id, "json")
    }

    /// Where this machine keeps the envelope records it verified for `vault_id`.
    pub fn records_path(&self, vault_id: &str) -> Result<PathBuf, TrustError> {
        self.per_vault("records", vault_id, "records")
    }

    /// Where releases before the sorted records file kept them (removed when it is written).
    pub(crate) fn records_v1_path(&self, vault_id: &str) -> Result<PathBuf, TrustError> {
        self.per_vault("records", vault_id, "json")
    }

    /// Where this machine notes how far past its records for `vault_id` it has walked.
    pub fn records_through_path(&self, vault_id: &str) -> Result<PathBuf, TrustError> {
        self.per_vault("records", vault_id, "through.json")
    }

    /// Where this machine notes how much of `vault_id`'s audit log it verified whole.
    pub fn verified_path(&self, vault_id: &str) -> Result<PathBuf, TrustError> {
        self.per_vault("verified", vault_id, "json")
    }

    /// This machine's settings file.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// Creates the parent directories of `path` (0700).
    pub(crate) fn make_dir_for(&self, path: &Path) -> Result<(), TrustError> {
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| TrustError::Io {
                path: parent.to_path_buf(),
                action: "creating the configuration directory",
                cause: e,
            })
    }
}

/// Vault ids name files here: lowercase hex, 2 to 64 characters, nothing else.
fn validate_vault_id(vault_id: &str) -> Result<(), TrustError> {
    let ok = (2..=64).contains(&vault_id.len())
        && vault_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        Err(TrustError::InvalidVaultId {
            vault_id: vault_id.to_owned(),
        })
    }
}

/// The last audit head this machine verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditAnchor {
    /// Its sequence number.
    pub seq: u64,
    /// The hex SHA-256 of its exact line bytes (without the newline).
    pub hash: String,
    /// The byte offset just after its newline: the log's length when it was the last line.
    pub offset: u64,
    /// Whether signed (format 2) lines had begun by it: an unsigned line after it is refused.
    /// Not held by tokens (their head is only checked, never walked on from).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed_lines: bool,
}

/// The first line of the audit head a token holds (its data object's value).
pub const TOKEN_ANCHOR_FORMAT: &str = "breakglass-audit-head/1";

/// The label of the data object in which a token holds the audit head of `vault_id`.
pub fn token_anchor_label(vault_id: &str) -> String {
    format!("breakglass:{vault_id}:audit-head")
}

impl AuditAnchor {
    /// The value of the token's data object: five lines, `breakglass-audit-head/1`, the vault
    /// id, the sequence number, the line's hex SHA-256 and the byte offset after it, each
    /// followed by a newline.
    pub fn to_token_bytes(&self, vault_id: &str) -> Vec<u8> {
        format!(
            "{TOKEN_ANCHOR_FORMAT}\n{vault_id}\n{}\n{}\n{}\n",
            self.seq, self.hash, self.offset
        )
        .into_bytes()
    }

    /// Reads a token's data object for `vault_id` (see [`AuditAnchor::to_token_bytes`]).
    pub fn from_token_bytes(bytes: &[u8], vault_id: &str) -> Result<AuditAnchor, &'static str> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not text")?;
        let fields: Vec<&str> = text
            .strip_suffix('\n')
            .ok_or("no final newline")?
            .split('\n')
            .collect();
        let [format, vault, seq, hash, offset] = fields[..] else {
            return Err("not five lines");
        };
        if format != TOKEN_ANCHOR_FORMAT {
            return Err("an unknown format");
        }
        if vault != vault_id {
            return Err("it names another vault");
        }
        let hex_hash =
            hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !hex_hash {
            return Err("the line hash is not 64 lowercase hex digits");
        }
        Ok(AuditAnchor {
            seq: seq
                .parse()
                .map_err(|_| "the sequence number is not a number")?,
            hash: hash.to_owned(),
            offset: offset.parse().map_err(|_| "the offset is not a number")?,
            signed_lines: false,
        })
    }
}

/// What a machine remembers of one vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineAnchor {
    /// Always [`ANCHOR_FORMAT`].
    pub format: String,
    /// The vault.
    pub vault_id: String,
    /// The full identity fingerprint (hex).
    pub identity: String,
    /// The highest manifest version seen.
    pub manifest: SeenManifest,
    /// The last verified audit head (none before the first verification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditAnchor>,
}

/// One of the notes a machine keeps of what it verified, if `path` holds one that parses (a
/// note that does not is ignored: what it saved is done again).
pub(crate) fn read_note<T: serde::de::DeserializeOwned>(
    path: Result<PathBuf, TrustError>,
) -> Option<T> {
    let bytes = std::fs::read(path.ok()?).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes a note atomically, 0600, making its directory (0700).
pub(crate) fn write_note<T: Serialize>(
    config: &ConfigDir,
    path: PathBuf,
    note: &T,
) -> Result<(), TrustError> {
    write_note_with(config, &path, note, crate::store::write_atomic)
}

/// Writes a note whose loss costs only time as [`write_note`] does, without syncing it
/// ([`crate::store::replace_unsynced`]): after a crash it may be the note before or none,
/// and [`read_note`] ignores one that does not read.
pub(crate) fn write_note_unsynced<T: Serialize>(
    config: &ConfigDir,
    path: PathBuf,
    note: &T,
) -> Result<(), TrustError> {
    write_note_with(config, &path, note, crate::store::replace_unsynced)
}

fn write_note_with<T: Serialize>(
    config: &ConfigDir,
    path: &Path,
    note: &T,
    write: fn(&Path, &[u8]) -> Result<(), crate::store::StoreError>,
) -> Result<(), TrustError> {
    config.make_dir_for(path)?;
    let bytes = serde_json::to_vec(note).unwrap_or_default();
    write(path, &bytes).map_err(TrustError::Store)
}

/// The format of [`VerifiedPrefix`].
pub const VERIFIED_FORMAT: &str = "breakglass-audit-verified/1";

/// How much of a vault's audit log this machine has verified line by line from its first
/// line (chain, checkpoints, operator signatures), and the SHA-256 of exactly those bytes
/// (`<config>/verified/<vault id>.json`, 0600). `status` hashes the log's first `at.offset`
/// bytes (tens of milliseconds for 100,000 lines) instead of verifying every signature again:
/// equal bytes are the lines already verified, so only the lines after them are. Any change
/// to those bytes (a line edited, removed, inserted or re-signed) changes the digest, and the
/// whole log is walked again to name the line. Like the anchor, it is this machine's memory;
/// one that does not read is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifiedPrefix {
    /// Always [`VERIFIED_FORMAT`].
    pub format: String,
    /// The vault.
    pub vault_id: String,
    /// The last line verified.
    pub at: AuditAnchor,
    /// The hex SHA-256 of the log's bytes up to `at.offset`.
    pub prefix_sha256: String,
    /// How many token checkpoints those lines hold, and the line of the last one.
    pub checkpoints: usize,
    /// The line of the last checkpoint among them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checkpoint: Option<usize>,
    /// What `status` shows of those lines.
    pub summary: crate::audit::LogSummary,
}

impl VerifiedPrefix {
    /// Reads this machine's note for `vault_id`, if it has a readable one.
    pub fn read(config: &ConfigDir, vault_id: &str) -> Option<VerifiedPrefix> {
        let note: VerifiedPrefix = read_note(config.verified_path(vault_id))?;
        (note.format == VERIFIED_FORMAT && note.vault_id == vault_id).then_some(note)
    }

    /// Writes it atomically, 0600.
    pub fn write(&self, config: &ConfigDir) -> Result<(), TrustError> {
        write_note(config, config.verified_path(&self.vault_id)?, self)
    }
}

/// What was found where an anchored audit head should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundHead {
    /// The log's length in bytes.
    pub length: u64,
    /// The hash of the line that ends at the anchored offset, if one does.
    pub line_hash: Option<String>,
}

impl std::fmt::Display for AuditAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {} (hash {}) ending at byte {}",
            self.seq, self.hash, self.offset
        )
    }
}

impl std::fmt::Display for FoundHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.line_hash {
            Some(hash) => write!(
                f,
                "is {} bytes long and its line at that place hashes to {hash}",
                self.length
            ),
            None => write!(
                f,
                "is {} bytes long and has no line ending at that place",
                self.length
            ),
        }
    }
}

impl MachineAnchor {
    /// The first anchor for a vault: its authenticated manifest, no audit head yet.
    pub fn new(manifest: &AuthenticatedManifest) -> MachineAnchor {
        MachineAnchor {
            format: ANCHOR_FORMAT.into(),
            vault_id: manifest.vault_id().to_owned(),
            identity: hex::encode(manifest.identity().as_bytes()),
            manifest: manifest.seen(),
            audit: None,
        }
    }

    /// Whether this anchor is for the identity `fingerprint`.
    pub fn is_for(&self, fingerprint: &Fingerprint) -> bool {
        self.identity == hex::encode(fingerprint.as_bytes())
    }

    /// Reads the anchor for `vault_id` (none yet: `None`).
    pub fn read(config: &ConfigDir, vault_id: &str) -> Result<Option<MachineAnchor>, TrustError> {
        let path = config.anchor_path(vault_id)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(TrustError::Io {
                    path,
                    action: "reading the anchor",
                    cause: e,
                });
            }
        };
        let invalid = |reason: String| TrustError::InvalidAnchor {
            path: path.clone(),
            reason,
        };
        let anchor: MachineAnchor =
            serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if anchor.format != ANCHOR_FORMAT || anchor.vault_id != vault_id {
            return Err(invalid(format!(
                "format {:?} for vault {:?}, expected {ANCHOR_FORMAT:?} for {vault_id:?}",
                anchor.format, anchor.vault_id
            )));
        }
        Ok(Some(anchor))
    }

    /// Writes the anchor atomically, 0600.
    pub fn write(&self, config: &ConfigDir) -> Result<(), TrustError> {
        let path = config.anchor_path(&self.vault_id)?;
        config.make_dir_for(&path)?;
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        crate::store::write_atomic(&path, &bytes).map_err(TrustError::Store)
    }

    /// Moves the remembered manifest forward to `manifest` (never back).
    pub fn advance_manifest(&mut self, manifest: &AuthenticatedManifest) -> Result<(), TrustError> {
        let seen = manifest.seen();
        if seen.version < self.manifest.version {
            return Err(TrustError::ManifestRollback {
                vault_id: self.vault_id.clone(),
                found: seen.version,
                highest_seen: self.manifest.version,
            });
        }
        self.identity = hex::encode(manifest.identity().as_bytes());
        self.manifest = seen;
        Ok(())
    }

    /// Moves the remembered audit head forward to `head` (never back: a lower sequence number
    /// or offset is a rollback).
    pub fn advance_audit(&mut self, head: AuditAnchor) -> Result<(), TrustError> {
        if let Some(current) = &self.audit
            && (head.seq < current.seq || head.offset < current.offset)
        {
            return Err(TrustError::AuditRollback {
                vault_id: self.vault_id.clone(),
                expected: Box::new(current.clone()),
                found: FoundHead {
                    length: head.offset,
                    line_hash: Some(head.hash),
                },
            });
        }
        self.audit = Some(head);
        Ok(())
    }

    /// Checks that `log` (the audit log's bytes) continues the remembered head: at least as
    /// long, and the line ending at the remembered offset is the remembered line. Only the bytes
    /// after that offset are left to verify.
    pub fn check_audit_log(&self, log: &[u8]) -> Result<(), TrustError> {
        let Some(anchor) = &self.audit else {
            return Ok(());
        };
        check_head(anchor, &mut std::io::Cursor::new(log)).map_err(|e| match e {
            HeadCheck::Rollback(found) => self.rollback(found),
            HeadCheck::Io(cause) => TrustError::Io {
                path: PathBuf::new(),
                action: "reading the audit log at the remembered head",
                cause,
            },
        })
    }

    /// As [`MachineAnchor::check_audit_log`], for the log file at `path`, reading only the
    /// remembered line (the log's length comes from its metadata).
    pub fn check_audit_file(&self, path: &Path) -> Result<(), TrustError> {
        let Some(anchor) = &self.audit else {
            return Ok(());
        };
        check_head_file(anchor, path).map_err(|e| match e {
            HeadCheck::Rollback(found) => self.rollback(found),
            HeadCheck::Io(cause) => TrustError::Io {
                path: path.to_path_buf(),
                action: "reading the audit log at the remembered head",
                cause,
            },
        })
    }

    fn rollback(&self, found: FoundHead) -> TrustError {
        TrustError::AuditRollback {
            vault_id: self.vault_id.clone(),
            expected: Box::new(self.audit.clone().unwrap_or(AuditAnchor {
                seq: 0,
                hash: String::new(),
                offset: 0,
                signed_lines: false,
            })),
            found,
        }
    }
}

/// Why a log does not continue a remembered head.
#[derive(Debug)]
pub enum HeadCheck {
    /// It does not: what is there instead.
    Rollback(FoundHead),
    /// It could not be read.
    Io(std::io::Error),
}

/// Checks that the log at `path` continues `anchor` (a missing log is an empty one).
pub fn check_head_file(anchor: &AuditAnchor, path: &Path) -> Result<(), HeadCheck> {
    match std::fs::File::open(path) {
        Ok(mut file) => check_head(anchor, &mut file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            check_head(anchor, &mut std::io::Cursor::new(&[][..]))
        }
        Err(e) => Err(HeadCheck::Io(e)),
    }
}

/// How much of the log is read at a time, backwards from the remembered offset, to find the
/// start of the remembered line.
const LINE_WINDOW: u64 = 4096;

/// Checks that `log` is at least as long as `anchor.offset` and that the line ending there is
/// the anchored line, reading only that line.
pub fn check_head(anchor: &AuditAnchor, log: &mut (impl Read + Seek)) -> Result<(), HeadCheck> {
    let length = log.seek(SeekFrom::End(0)).map_err(HeadCheck::Io)?;
    let rollback = |line_hash: Option<String>| HeadCheck::Rollback(FoundHead { length, line_hash });
    if anchor.offset == 0 {
        return Ok(());
    }
    if anchor.offset > length {
        return Err(rollback(None));
    }
    // The bytes before the offset, read backwards until the newline before the line.
    let mut line: Vec<u8> = Vec::new();
    let mut end = anchor.offset;
    loop {
        let begin = end.saturating_sub(LINE_WINDOW);
        let mut chunk = vec![0u8; (end - begin) as usize];
        log.seek(SeekFrom::Start(begin)).map_err(HeadCheck::Io)?;
        log.read_exact(&mut chunk).map_err(HeadCheck::Io)?;
        chunk.extend_from_slice(&line);
        line = chunk;
        if end == anchor.offset && line.last() != Some(&b'\n') {
            return Err(rollback(None));
        }
        // The newline that ends the line itself is the last byte; look before it.
        let body = &line[..line.len() - 1];
        if let Some(p) = body.iter().rposition(|b| *b == b'\n') {
            line.drain(..=p);
            break;
        }
        if begin == 0 {
            break;
        }
        end = begin;
    }
    line.pop();
    let found = hex::encode(digest(&SHA256, &line).as_ref());
    if found == anchor.hash {
        Ok(())
    } else {
        Err(rollback(Some(found)))
    }
}

impl From<&AuditAnchor> for ChainPoint {
    fn from(anchor: &AuditAnchor) -> ChainPoint {
        ChainPoint {
            seq: anchor.seq,
            hash: anchor.hash.clone(),
            offset: anchor.offset,
            signed_lines: anchor.signed_lines,
        }
    }
}

impl From<ChainPoint> for AuditAnchor {
    fn from(point: ChainPoint) -> AuditAnchor {
        AuditAnchor {
            seq: point.seq,
            hash: point.hash,
            offset: point.offset,
            signed_lines: point.signed_lines,
        }
    }
}

/// This machine's settings (`config.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// The PKCS#11 module this machine uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_module: Option<PathBuf>,
}

impl MachineConfig {
    /// Reads `config.json` (missing: the defaults).
    pub fn read(config: &ConfigDir) -> Result<MachineConfig, TrustError> {
        let path = config.config_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TrustError::InvalidConfig {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(MachineConfig::default()),
            Err(e) => Err(TrustError::Io {
                path,
                action: "reading the machine configuration",
                cause: e,
            }),
        }
    }
}

/// Where a PKCS#11 module path came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleSource {
    /// `--module`.
    CommandLine,
    /// [`MODULE_VAR`].
    Environment,
    /// This machine's `config.json`.
    MachineConfig,
    /// The enrolment hint of this token in an authenticated manifest.
    AuthenticatedManifest {
        /// The token's label.
        token: String,
    },
}

/// A module to load, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleChoice {
    /// The module's path.
    pub path: PathBuf,
    /// Where it came from.
    pub source: ModuleSource,
}

/// The PKCS#11 modules to load: the command line, else the environment's
/// [`MODULE_VAR`] (`environment`, empty counts as unset), else the machine configuration, each
/// alone; else the enrolment hints of the authenticated manifest, one per distinct path, in
/// enrolment order. Empty when nothing names a module.
pub fn choose_modules(
    command_line: Option<&Path>,
    environment: Option<&OsStr>,
    machine: &MachineConfig,
    manifest: Option<&AuthenticatedManifest>,
) -> Vec<ModuleChoice> {
    let single = |path: &Path, source| {
        vec![ModuleChoice {
            path: path.to_path_buf(),
            source,
        }]
    };
    if let Some(path) = command_line {
        return single(path, ModuleSource::CommandLine);
    }
    if let Some(path) = environment.filter(|e| !e.is_empty()) {
        return single(Path::new(path), ModuleSource::Environment);
    }
    if let Some(path) = &machine.pkcs11_module {
        return single(path, ModuleSource::MachineConfig);
    }
    let mut choices: Vec<ModuleChoice> = Vec::new();
    for hsm in manifest
        .map(|m| m.manifest().hsms.as_slice())
        .unwrap_or_default()
    {
        let path = PathBuf::from(&hsm.module);
        if !hsm.module.is_empty() && !choices.iter().any(|c| c.path == path) {
            choices.push(ModuleChoice {
                path,
                source: ModuleSource::AuthenticatedManifest {
                    token: hsm.label.clone(),
                },
            });
        }
    }
    choices
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::trust::certified::tests::certified;

    /// A configuration directory of its own (in a temporary directory, kept while it lives).
    pub(crate) fn config() -> (tempfile::TempDir, ConfigDir) {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigDir::at(&dir.path().join("cfg"));
        (dir, config)
    }

    #[test]
    fn the_config_dir_follows_override_then_xdg_then_home() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            ConfigDir::resolve(os("/o"), os("/x"), os("/h"))
                .unwrap()
                .root(),
            Path::new("/o")
        );
        assert_eq!(
            ConfigDir::resolve(None, os("/x"), os("/h")).unwrap().root(),
            Path::new("/x/breakglass")
        );
        assert_eq!(
            ConfigDir::resolve(os(""), os(""), os("/h")).unwrap().root(),
            Path::new("/h/.config/breakglass")
        );
        assert_eq!(ConfigDir::resolve(None, None, None), None);
    }

    /// A log of `n` lines and the anchor of its line `at` (1-based).
    fn log(n: usize) -> Vec<u8> {
        (1..=n)
            .map(|i| format!("{{\"seq\":{i}}}\n"))
            .collect::<String>()
            .into_bytes()
    }

    fn anchor_at(log: &[u8], seq: usize) -> AuditAnchor {
        let lines: Vec<&[u8]> = log.split(|b| *b == b'\n').take(seq).collect();
        let offset: usize = lines.iter().map(|l| l.len() + 1).sum();
        AuditAnchor {
            seq: seq as u64,
            hash: hex::encode(digest(&SHA256, lines[seq - 1]).as_ref()),
            offset: offset as u64,
            signed_lines: false,
        }
    }

    #[test]
    fn the_head_check_of_a_file_passes_the_log_and_names_a_missing_cut_or_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let genuine = log(6);
        let head = anchor_at(&genuine, 4);
        std::fs::write(&path, &genuine).unwrap();
        assert!(check_head_file(&head, &path).is_ok());
        // Ending exactly at the remembered line is the log that wrote it.
        std::fs::write(&path, &genuine[..head.offset as usize]).unwrap();
        assert!(check_head_file(&head, &path).is_ok());
        // A missing log is one cut to nothing, never an I/O error to pass over.
        std::fs::remove_file(&path).unwrap();
        match check_head_file(&head, &path) {
            Err(HeadCheck::Rollback(found)) => {
                assert_eq!(found.length, 0);
                assert_eq!(found.line_hash, None);
            }
            other => panic!("{other:?}"),
        }
        // Cut one byte short: no line ends at the remembered offset (not "a line that hashes
        // to something else").
        std::fs::write(&path, &genuine[..head.offset as usize - 1]).unwrap();
        assert!(matches!(
            check_head_file(&head, &path),
            Err(HeadCheck::Rollback(FoundHead {
                line_hash: None,
                ..
            }))
        ));
        // The remembered offset now falls inside a longer line: no newline just before it.
        let mut longer = genuine.clone();
        longer.insert(head.offset as usize - 2, b'x');
        std::fs::write(&path, &longer).unwrap();
        assert!(matches!(
            check_head_file(&head, &path),
            Err(HeadCheck::Rollback(FoundHead {
                line_hash: None,
                ..
            }))
        ));
        // The remembered line rewritten in place: a line ends there, hashing to another value.
        let mut rewritten = genuine.clone();
        rewritten[head.offset as usize - 3] = b'9';
        std::fs::write(&path, &rewritten).unwrap();
        assert!(matches!(
            check_head_file(&head, &path),
            Err(HeadCheck::Rollback(FoundHead {
                line_hash: Some(_),
                ..
            }))
        ));
        // Nothing remembered yet: any log continues it.
        let nothing = AuditAnchor {
            seq: 0,
            hash: String::new(),
            offset: 0,
            signed_lines: false,
        };
        assert!(check_head_file(&nothing, &path).is_ok());
    }

    #[test]
    fn a_log_that_continues_the_anchor_passes_and_a_cut_or_rewritten_one_is_a_rollback() {
        let mut anchor = MachineAnchor::new(&certified(1));
        let genuine = log(6);
        anchor.advance_audit(anchor_at(&genuine, 4)).unwrap();
        anchor.check_audit_log(&genuine).unwrap();
        anchor
            .check_audit_log(&genuine[..anchor.audit.as_ref().unwrap().offset as usize])
            .unwrap();

        // Cut back to before the remembered head.
        let cut = &genuine[..anchor_at(&genuine, 3).offset as usize];
        match anchor.check_audit_log(cut) {
            Err(TrustError::AuditRollback {
                expected, found, ..
            }) => {
                assert_eq!(expected.seq, 4);
                assert_eq!(found.length, cut.len() as u64);
                assert_eq!(found.line_hash, None);
            }
            other => panic!("{other:?}"),
        }
        // Cut in the middle of the remembered line.
        let mid = &genuine[..anchor.audit.as_ref().unwrap().offset as usize - 2];
        assert!(matches!(
            anchor.check_audit_log(mid),
            Err(TrustError::AuditRollback { .. })
        ));
        // The remembered line rewritten (same length), or an earlier one removed and the rest
        // renumbered: the line at the offset is not the remembered one.
        let mut rewritten = genuine.clone();
        let at = anchor.audit.as_ref().unwrap().offset as usize - 3;
        rewritten[at] = b'9';
        assert!(matches!(
            anchor.check_audit_log(&rewritten),
            Err(TrustError::AuditRollback {
                found: FoundHead {
                    line_hash: Some(_),
                    ..
                },
                ..
            })
        ));
        let shifted: Vec<u8> = genuine
            .split(|b| *b == b'\n')
            .skip(1)
            .filter(|l| !l.is_empty())
            .flat_map(|l| [l, &b"\n"[..]].concat())
            .collect();
        assert!(anchor.check_audit_log(&shifted).is_err());
        // An empty log.
        assert!(anchor.check_audit_log(b"").is_err());
        // The anchor itself never moves back.
        assert!(matches!(
            anchor.advance_audit(anchor_at(&genuine, 2)),
            Err(TrustError::AuditRollback { .. })
        ));
        anchor.advance_audit(anchor_at(&genuine, 6)).unwrap();
        anchor.check_audit_log(&genuine).unwrap();
    }

    #[test]
    fn the_token_holds_the_head_as_five_lines_and_anything_else_is_refused() {
        let head = AuditAnchor {
            seq: 12,
            hash: "ab".repeat(32),
            offset: 4096,
            signed_lines: false,
        };
        let bytes = head.to_token_bytes("0a1b");
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            format!(
                "breakglass-audit-head/1\n0a1b\n12\n{}\n4096\n",
                "ab".repeat(32)
            )
        );
        assert_eq!(AuditAnchor::from_token_bytes(&bytes, "0a1b"), Ok(head));
        assert_eq!(
            AuditAnchor::from_token_bytes(&bytes, "0a1c"),
            Err("it names another vault")
        );
        for bad in [
            &bytes[..bytes.len() - 1],
            b"breakglass-audit-head/2\n0a1b\n1\nab\n1\n",
            b"breakglass-audit-head/1\n0a1b\n1\nab\n1\n",
            b"\xff",
        ] {
            assert!(
                AuditAnchor::from_token_bytes(bad, "0a1b").is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(token_anchor_label("0a1b"), "breakglass:0a1b:audit-head");
    }

    #[test]
    fn the_anchor_is_written_0600_and_read_back_and_the_manifest_version_only_advances() {
        let (_dir, config) = config();
        let v1 = certified(1);
        let v2 = certified(2);
        let mut anchor = MachineAnchor::new(&v2);
        anchor
            .advance_audit(AuditAnchor {
                seq: 3,
                hash: "ab".repeat(32),
                offset: 300,
                signed_lines: false,
            })
            .unwrap();
        anchor.write(&config).unwrap();
        let path = config.anchor_path(v1.vault_id()).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let read = MachineAnchor::read(&config, v1.vault_id())
            .unwrap()
            .unwrap();
        assert_eq!(read, anchor);
        assert!(read.is_for(v1.identity()));
        assert!(matches!(
            anchor.clone().advance_manifest(&v1),
            Err(TrustError::ManifestRollback {
                found: 1,
                highest_seen: 2,
                ..
            })
        ));
        // An anchor file for another vault copied in place of this one is refused.
        let other_id = "ee".repeat(16);
        let other = config.anchor_path(&other_id).unwrap();
        std::fs::copy(&path, &other).unwrap();
        assert!(matches!(
            MachineAnchor::read(&config, &other_id),
            Err(TrustError::InvalidAnchor { .. })
        ));
        assert_eq!(
            MachineAnchor::read(&config, &"12".repeat(16)).unwrap(),
            None
        );
    }

    #[test]
    fn the_module_comes_from_the_command_line_then_env_then_machine_then_authenticated_manifest() {
        let (_dir, config) = config();
        let manifest = certified(1);
        let machine = MachineConfig {
            pkcs11_module: Some("/machine.so".into()),
        };
        let none = MachineConfig::default();
        let env = OsStr::new("/env.so");
        let pick = |cli: Option<&str>, env: Option<&OsStr>, machine: &MachineConfig| {
            choose_modules(cli.map(Path::new), env, machine, Some(&manifest))
        };
        assert_eq!(
            pick(Some("/cli.so"), Some(env), &machine)[0].source,
            ModuleSource::CommandLine
        );
        assert_eq!(
            pick(None, Some(env), &machine)[0].path,
            Path::new("/env.so")
        );
        assert_eq!(
            pick(None, Some(OsStr::new("")), &machine)[0].source,
            ModuleSource::MachineConfig
        );
        assert_eq!(pick(None, None, &machine).len(), 1);
        assert_eq!(
            pick(None, None, &none),
            vec![ModuleChoice {
                path: "/usr/lib/softhsm/libsofthsm2.so".into(),
                source: ModuleSource::AuthenticatedManifest {
                    token: "primary".into()
                },
            }]
        );
        assert!(choose_modules(None, None, &none, None).is_empty());
        // The machine configuration is read from config.json, strictly.
        assert_eq!(MachineConfig::read(&config).unwrap(), none);
        std::fs::create_dir_all(config.root()).unwrap();
        std::fs::write(config.config_path(), br#"{"pkcs11_module": "/machine.so"}"#).unwrap();
        assert_eq!(MachineConfig::read(&config).unwrap(), machine);
        std::fs::write(config.config_path(), br#"{"module": "/x.so"}"#).unwrap();
        assert!(matches!(
            MachineConfig::read(&config),
            Err(TrustError::InvalidConfig { .. })
        ));
    }

    #[test]
    fn the_anchor_is_for_one_identity_and_its_heads_never_move_back() {
        let v1 = certified(1);
        let mut anchor = MachineAnchor::new(&v1);
        assert!(anchor.is_for(v1.identity()));
        assert!(!anchor.is_for(&Fingerprint::from_bytes([0x5a; 32])));
        // The same manifest version again (every command reads it again) is no rollback.
        anchor.advance_manifest(&v1).unwrap();
        assert_eq!(anchor.manifest, v1.seen());
        let head = |seq, offset| AuditAnchor {
            seq,
            hash: "ab".repeat(32),
            offset,
            signed_lines: false,
        };
        anchor.advance_audit(head(3, 300)).unwrap();
        // The same head again, then further on.
        anchor.advance_audit(head(3, 300)).unwrap();
        anchor.advance_audit(head(4, 400)).unwrap();
        // A lower sequence number alone, a lower offset alone, or both: a rollback.
        for (seq, offset) in [(3, 400), (4, 399), (3, 399)] {
            assert!(
                matches!(
                    anchor.clone().advance_audit(head(seq, offset)),
                    Err(TrustError::AuditRollback { .. })
                ),
                "line {seq} at {offset}"
            );
        }
        // An anchor that cannot be looked at (`anchors` made a file) is an error, not "none".
        let (_dir, config) = config();
        std::fs::create_dir_all(config.root()).unwrap();
        std::fs::write(config.root().join("anchors"), b"not a directory").unwrap();
        assert!(matches!(
            MachineAnchor::read(&config, v1.vault_id()),
            Err(TrustError::Io { .. })
        ));
    }

    #[test]
    fn a_chain_point_and_an_audit_anchor_carry_the_same_four_facts() {
        let anchor = AuditAnchor {
            seq: 5,
            hash: "cd".repeat(32),
            offset: 500,
            signed_lines: true,
        };
        let point = ChainPoint::from(&anchor);
        assert_eq!(
            point,
            ChainPoint {
                seq: 5,
                hash: "cd".repeat(32),
                offset: 500,
                signed_lines: true,
            }
        );
        assert_eq!(AuditAnchor::from(point), anchor);
        assert_eq!(
            anchor.to_string(),
            format!("line 5 (hash {}) ending at byte 500", "cd".repeat(32))
        );
    }

    #[test]
    fn the_file_check_of_the_anchor_names_what_was_remembered_and_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut anchor = MachineAnchor::new(&certified(1));
        // Nothing remembered yet: any log continues it, a missing one too.
        anchor.check_audit_file(&path).unwrap();
        let genuine = log(6);
        let head = anchor_at(&genuine, 4);
        anchor.advance_audit(head.clone()).unwrap();
        std::fs::write(&path, &genuine).unwrap();
        anchor.check_audit_file(&path).unwrap();
        // The remembered line rewritten in place.
        let mut rewritten = genuine.clone();
        rewritten[head.offset as usize - 3] = b'9';
        std::fs::write(&path, &rewritten).unwrap();
        let found_hash = anchor_at(&rewritten, 4).hash;
        match anchor.check_audit_file(&path) {
            Err(TrustError::AuditRollback {
                vault_id,
                expected,
                found,
            }) => {
                assert_eq!(vault_id, anchor.vault_id);
                assert_eq!(*expected, head);
                assert_eq!(found.line_hash.as_deref(), Some(found_hash.as_str()));
                assert_eq!(
                    found.to_string(),
                    format!(
                        "is {} bytes long and its line at that place hashes to {found_hash}",
                        rewritten.len()
                    )
                );
            }
            other => panic!("{other:?}"),
        }
        // Removed: a log cut to nothing.
        std::fs::remove_file(&path).unwrap();
        match anchor.check_audit_file(&path) {
            Err(TrustError::AuditRollback { found, .. }) => assert_eq!(
                found.to_string(),
                "is 0 bytes long and has no line ending at that place"
            ),
            other => panic!("{other:?}"),
        }
    }
}
