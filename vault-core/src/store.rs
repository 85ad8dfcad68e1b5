//! The embedded vault store: a directory, friendly to git.
//!
//! ```text
//! vault.json                 the manifest
//! credentials/<name>.json    one sealed envelope per credential
//! credentials/.index.json   a cache of what listings show (vault::listing), never an authority
//! history/<name>/<n>.json    replaced versions of a credential
//! audit.jsonl                the hash-chained audit log
//! ceremonies/                remote ceremony state
//! vault.lock                 the writers' lock
//! ```
//!
//! Every write is atomic (a 0600 temporary file in the same directory, fsync, rename, fsync of
//! the directory); writers hold an exclusive lock on `vault.lock`. Directories are 0700.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The manifest's file name.
pub const MANIFEST: &str = "vault.json";
/// The audit log's file name.
pub const AUDIT_LOG: &str = "audit.jsonl";
/// The outgoing quorum's statement that the vault's identity moved at its last rekey.
pub const SUCCESSION: &str = "succession.json";
/// The statement, signed by a format-1 vault's audit key at its upgrade, that the vault's
/// format-1 fingerprint moved to the identity of the certified manifest.
pub const UPGRADE_STATEMENT: &str = "upgrade.json";
const CREDENTIALS: &str = "credentials";
const HISTORY: &str = "history";
/// Where a seal writes its new envelope before the audit log records it and it is renamed
/// into `credentials/` (`.NAME.json.tmp.PID`): a directory apart so that finding what a
/// killed writer left lists this one, nearly always empty, not every credential.
const STAGING: &str = "staging";
/// The directory of open ceremonies' requests and transport keys.
pub const CEREMONIES: &str = "ceremonies";
const LOCK: &str = "vault.lock";
/// Present while `init` has not finished (shares not all handed out, fingerprint not pinned):
/// holds the new vault's id. A vault directory with it is refused by every command.
pub const INIT_INCOMPLETE: &str = "init-incomplete";

/// A store failure, naming the file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An I/O failure on a file or directory.
    #[error("{}: {action}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        #[source]
        cause: std::io::Error,
    },
    /// The directory is not a vault.
    #[error("{} is not a breakglass vault (no {MANIFEST}); create one with `breakglass init` or pass --vault", path.display())]
    NotAVault {
        /// The directory.
        path: PathBuf,
    },
    /// A vault whose `init` was interrupted before it finished.
    #[error(
        "{} holds a vault whose `breakglass init` did not finish (interrupted before every share \
         was handed out): nothing can be sealed in it or opened from it; remove the directory \
         (and the share files that init wrote) and run `breakglass init` again",
        path.display()
    )]
    InitIncomplete {
        /// The directory.
        path: PathBuf,
    },
    /// `init` into a directory that already has content.
    #[error("{} is not empty: a new vault needs an empty or missing directory", path.display())]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// A credential name that could escape the directory or hide.
    #[error(
        "invalid credential name {name:?}: use 1 to 64 characters a-z, 0-9, '.', '_', '-', starting with a letter or digit"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// No credential with that name.
    #[error("no credential named {name:?} in {}", dir.display())]
    NoSuchCredential {
        /// The name.
        name: String,
        /// The credentials directory.
        dir: PathBuf,
    },
    /// Another command held the writers' lock for longer than the wait allows.
    #[error(
        "the vault is in use: {} is held by another breakglass command ({holder}); waited {waited_secs} s",
        path.display()
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as the holder wrote it into the lock file (pid and command).
        holder: String,
        /// How long this command waited.
        waited_secs: u64,
    },
    /// A credential exists and replacing was not asked for.
    #[error(
        "a credential named {name:?} exists already: pass --replace to replace it (the previous version is kept in history/)"
    )]
    CredentialExists {
        /// The name.
        name: String,
    },
}

fn io<'p>(path: &'p Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StoreError + 'p {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        action,
        cause: source,
    }
}

/// Checks a credential name: `[a-z0-9][a-z0-9._-]{0,63}`, so it is a plain file name that
/// cannot climb out of `credentials/` or hide.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// A vault directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// The exclusive writers' lock, released on drop.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

fn make_dir(path: &Path) -> Result<(), StoreError> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(io(path, "creating the directory")(e)),
    }
}

/// Removes `dir/file_name` when it is a temporary file (`.NAME.tmp.PID`, see [`write_atomic`])
/// of a writer no longer running: one killed between creating it and renaming it into place.
/// Nothing reads such a file; a live writer's (its pid has a `/proc` entry) is left alone, and
/// nothing is removed where `/proc` cannot say.
fn remove_if_stale(dir: &Path, file_name: &std::ffi::OsStr) {
    if is_stale_temp(file_name) {
        let _ = fs::remove_file(dir.join(file_name));
    }
}

/// Whether `file_name` is a temporary file of a writer no longer running (see
/// [`remove_if_stale`]).
fn is_stale_temp(file_name: &std::ffi::OsStr) -> bool {
    let Some(pid) = file_name
        .to_str()
        .and_then(|name| name.strip_prefix('.'))
        .and_then(|name| name.rsplit_once(".tmp."))
        .and_then(|(_, pid)| pid.parse::<u32>().ok())
    else {
        return false;
    };
    let proc = Path::new("/proc");
    !(pid == std::process::id()
        || !proc.join("self").exists()
        || proc.join(pid.to_string()).exists())
}

/// [`remove_if_stale`] over one directory's entries (errors ignored: this only tidies).
fn remove_stale_in(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            remove_if_stale(dir, &entry.file_name());
        }
    }
}

impl Store {
    /// Creates a new vault directory (missing or empty), with its subdirectories, 0700.
    pub fn create(root: &Path) -> Result<Store, StoreError> {
        if root.exists() {
            let mut entries = fs::read_dir(root).map_err(io(root, "reading the directory"))?;
            if entries.next().is_some() {
                return Err(StoreError::NotEmpty {
                    path: root.to_path_buf(),
                });
            }
            fs::set_permissions(root, fs::Permissions::from_mode(0o700))
                .map_err(io(root, "setting permissions"))?;
        } else {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(io(root, "creating the vault directory"))?;
        }
        let store = Store {
            root: root.to_path_buf(),
        };
        for dir in [CREDENTIALS, HISTORY, CEREMONIES] {
            make_dir(&root.join(dir))?;
        }
        Ok(store)
    }

    /// Opens an existing vault directory.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        if root.join(INIT_INCOMPLETE).exists() {
            return Err(StoreError::InitIncomplete {
                path: root.to_path_buf(),
            });
        }
        if !root.join(MANIFEST).is_file() {
            return Err(StoreError::NotAVault {
                path: root.to_path_buf(),
            });
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// The vault directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the vault.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Takes the exclusive writers' lock (`flock` on `vault.lock`), waiting for another writer
    /// to finish for at most [`lock_wait`]; then [`StoreError::Busy`] names the holder. The
    /// holder's pid and command are written into the lock file for that message.
    pub fn lock(&self) -> Result<WriteLock, StoreError> {
        let path = self.root.join(LOCK);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path, "opening the lock file"))?;
        let wait = lock_wait();
        let start = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    let holder = fs::read_to_string(&path).unwrap_or_default();
                    let holder = holder.trim();
                    return Err(StoreError::Busy {
                        path,
                        holder: if holder.is_empty() {
                            "unknown".into()
                        } else {
                            holder.to_owned()
                        },
                        waited_secs: start.elapsed().as_secs(),
                    });
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(io(&path, "taking the writers' lock")(e));
                }
            }
        }
        let command: Vec<String> = std::env::args().skip(1).take(2).collect();
        let holder = format!(
            "pid {}, breakglass {}",
            std::process::id(),
            command.join(" ")
        );
        // Only for the message a waiting command prints: a failure here changes nothing.
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all(holder.as_bytes()));
        // A writer killed mid-write left its temporary file; the small directories are tidied
        // here, credentials/ and history/ as they are listed.
        remove_stale_in(&self.root);
        remove_stale_in(&self.root.join(CEREMONIES));
        Ok(WriteLock { _file: file })
    }

    /// Reads a file of the vault.
    pub fn read(&self, relative: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.root.join(relative);
        fs::read(&path).map_err(io(&path, "reading"))
    }

    /// Writes a file of the vault atomically, 0600 (the caller holds the lock).
    pub fn write(&self, _lock: &WriteLock, relative: &str, bytes: &[u8]) -> Result<(), StoreError> {
        write_atomic(&self.root.join(relative), bytes)
    }

    /// The envelope path of credential `name`.
    pub fn credential_path(&self, name: &str) -> Result<PathBuf, StoreError> {
        validate_name(name)?;
        Ok(self.root.join(CREDENTIALS).join(format!("{name}.json")))
    }

    /// The names of the sealed credentials, sorted.
    pub fn credentials(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join(CREDENTIALS);
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir, "listing credentials"))? {
            let entry = entry.map_err(io(&dir, "listing credentials"))?;
            let file = entry.file_name();
            // A dead writer's temporary file (an envelope re-wrapped in place, the index) is
            // never read: removed. (A new envelope waits in `staging/`, not here.)
            let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".json")) else {
                remove_if_stale(&dir, &file);
                continue;
            };
            if validate_name(name).is_ok() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The envelopes a writer killed between recording a seal and renaming the new envelope
    /// into place left in `staging/` (`.NAME.json.tmp.PID` of a process no longer running),
    /// with their credential names: the vault renames one in when the audit log records it,
    /// and removes the others ([`Store::settle_staged`]). Lists `staging/` alone (empty but
    /// after such a crash), so its cost does not grow with the number of credentials.
    pub fn stale_staged(&self) -> Vec<(String, PathBuf)> {
        let dir = self.root.join(STAGING);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let file = entry.file_name();
            if !is_stale_temp(&file) {
                continue;
            }
            let name = file
                .to_str()
                .and_then(|f| f.strip_prefix('.'))
                .and_then(|f| f.rsplit_once(".tmp."))
                .and_then(|(f, _)| f.strip_suffix(".json"))
                .filter(|n| validate_name(n).is_ok());
            match name {
                Some(name) => found.push((name.to_owned(), dir.join(&file))),
                // Not an envelope's name: nothing of breakglass's, and never read.
                None => {
                    let _ = fs::remove_file(dir.join(&file));
                }
            }
        }
        found.sort();
        found
    }

    /// Renames the stale envelope `staged` in as credential `name` (`keep`), or removes it.
    pub fn settle_staged(
        &self,
        _lock: &WriteLock,
        name: &str,
        staged: &Path,
        keep: bool,
    ) -> Result<(), StoreError> {
        if keep {
            rename_into_place(staged, &self.credential_path(name)?)
        } else {
            fs::remove_file(staged).map_err(io(staged, "removing"))
        }
    }

    /// Reads the envelope of credential `name`.
    pub fn read_credential(&self, name: &str) -> Result<(PathBuf, Vec<u8>), StoreError> {
        let path = self.credential_path(name)?;
        match fs::read(&path) {
            Ok(bytes) => Ok((path, bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NoSuchCredential {
                    name: name.to_owned(),
                    dir: self.root.join(CREDENTIALS),
                })
            }
            Err(e) => Err(io(&path, "reading")(e)),
        }
    }

    /// Writes the envelope of credential `name`. An existing one is refused unless `replace`,
    /// and then kept as `history/<name>/<n>.json` before the new one takes its place.
    pub fn write_credential(
        &self,
        lock: &WriteLock,
        name: &str,
        bytes: &[u8],
        replace: bool,
    ) -> Result<PathBuf, StoreError> {
        self.stage_credential(lock, name, bytes, replace)?.commit()
    }

    /// Everything [`Store::write_credential`] does but the last rename: the new envelope is
    /// written (and synced) beside its place and the previous version kept in history. The
    /// caller records it, then [`StagedCredential::commit`]s; dropped uncommitted (the record
    /// failed: a full disk), it removes what it wrote and the vault is as it was.
    pub fn stage_credential(
        &self,
        _lock: &WriteLock,
        name: &str,
        bytes: &[u8],
        replace: bool,
    ) -> Result<StagedCredential, StoreError> {
        let path = self.credential_path(name)?;
        let mut history_copy = None;
        if path.exists() {
            if !replace {
                return Err(StoreError::CredentialExists {
                    name: name.to_owned(),
                });
            }
            let history = self.root.join(HISTORY).join(name);
            make_dir(&self.root.join(HISTORY))?;
            make_dir(&history)?;
            let next = fs::read_dir(&history)
                .map_err(io(&history, "listing history"))?
                .filter_map(|e| {
                    e.ok()?
                        .file_name()
                        .to_str()?
                        .strip_suffix(".json")?
                        .parse::<u64>()
                        .ok()
                })
                .max()
                .map_or(1, |n| n + 1);
            let previous = fs::read(&path).map_err(io(&path, "reading"))?;
            let copy = history.join(format!("{next}.json"));
            write_atomic(&copy, &previous)?;
            history_copy = Some(copy);
        }
        let staging = self.root.join(STAGING);
        make_dir(&staging)?;
        let mut staged = StagedCredential {
            temp: None,
            path,
            history_copy,
        };
        let file_name = format!("{name}.json");
        staged.temp = Some(write_temp(&staging.join(&file_name), bytes)?);
        // Its name made durable too: once the log records the envelope, a power cut before
        // the rename must leave it here for the next writer to rename in.
        File::open(&staging)
            .and_then(|d| d.sync_all())
            .map_err(io(&staging, "syncing the directory"))?;
        Ok(staged)
    }

    /// The credentials that have previous versions in `history/` (one directory listing, so a
    /// listing of many credentials does not look for each one's history).
    pub fn names_with_history(&self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let dir = self.root.join(HISTORY);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(io(&dir, "listing history")(e)),
        };
        let mut names = std::collections::BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(io(&dir, "listing history"))?;
            if let Some(name) = entry.file_name().to_str()
                && validate_name(name).is_ok()
            {
                names.insert(name.to_owned());
            }
        }
        Ok(names)
    }

    /// The previous versions of credential `name`, oldest first.
    pub fn history(&self, name: &str) -> Result<Vec<PathBuf>, StoreError> {
        validate_name(name)?;
        let dir = self.root.join(HISTORY).join(name);
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut versions: Vec<(u64, PathBuf)> = fs::read_dir(&dir)
            .map_err(io(&dir, "listing history"))?
            .filter_map(|e| {
                let entry = e.ok()?;
                remove_if_stale(&dir, &entry.file_name());
                let path = entry.path();
                let n = path.file_stem()?.to_str()?.parse::<u64>().ok()?;
                Some((n, path))
            })
            .collect();
        versions.sort();
        Ok(versions.into_iter().map(|(_, p)| p).collect())
    }
}

/// How long [`Store::lock`] waits for another writer: `BREAKGLASS_LOCK_WAIT` seconds, 30 by
/// default.
pub fn lock_wait() -> std::time::Duration {
    let secs = std::env::var("BREAKGLASS_LOCK_WAIT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(DEFAULT_LOCK_WAIT_SECS);
    std::time::Duration::from_secs(secs)
}

/// The default of [`lock_wait`].
const DEFAULT_LOCK_WAIT_SECS: u64 = 30;

/// Writes `bytes` to `path` atomically: a 0600 temporary file beside it, fsync, rename over
/// the target, fsync of the directory. A crash leaves the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let temp = write_temp(path, bytes)?;
    rename_into_place(&temp, path)
}

/// Replaces `path` with `bytes` through a 0600 temporary file beside it and a rename, as
/// [`write_atomic`] does but without its two syncs: for this machine's notes whose loss costs
/// only time (how far a walk of the log got). After a crash the file may hold the old note,
/// the new one or (on a file system that orders the rename before the data) nothing: the
/// reader ignores a note that does not read. Never for anything the vault or its trust
/// depends on.
pub fn replace_unsynced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let temp = temp_path(path);
    let result =
        new_file(&temp, bytes).and_then(|_| fs::rename(&temp, path).map_err(io(path, "replacing")));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// A new 0600 file `temp` holding `bytes` (not synced).
fn new_file(temp: &Path, bytes: &[u8]) -> Result<File, StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
        .map_err(io(temp, "creating a temporary file"))?;
    crate::fault::write_all(&mut file, bytes).map_err(io(temp, "writing"))?;
    Ok(file)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The first half of [`write_atomic`]: `bytes` in a new 0600 temporary file beside `path`,
/// synced; on failure nothing is left.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf, StoreError> {
    let temp = temp_path(path);
    let result =
        new_file(&temp, bytes).and_then(|file| file.sync_all().map_err(io(&temp, "syncing")));
    match result {
        Ok(()) => Ok(temp),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// The second half of [`write_atomic`]: the rename over `path`, then fsync of the directory.
fn rename_into_place(temp: &Path, path: &Path) -> Result<(), StoreError> {
    let dir = parent_dir(path);
    if let Err(e) = fs::rename(temp, path) {
        let _ = fs::remove_file(temp);
        return Err(io(path, "replacing")(e));
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "syncing the directory"))
}

/// Replaces each of `files` (path, new bytes) as [`write_atomic`] does, without its two syncs
/// one after the other per file (a rekey or an enrolment replaces every envelope, and those
/// syncs were most of their time): each new version is written to a temporary file beside its
/// place, the temporary files are synced together ([`sync_files`]), then each is renamed over
/// its place, `after_each` running after each rename with its index, and each directory is
/// synced once. A crash leaves every file whole, old or new: the caller's journal (or running
/// it again) finishes the rest.
pub fn write_atomic_all<E: From<StoreError>>(
    files: &[(PathBuf, Vec<u8>)],
    mut after_each: impl FnMut(usize) -> Result<(), E>,
) -> Result<(), E> {
    let remove = |temps: &[PathBuf]| {
        for temp in temps {
            let _ = fs::remove_file(temp);
        }
    };
    // (Each file is closed once written: ten thousand envelopes would be past the limit of
    // open files.)
    let mut temps: Vec<PathBuf> = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        let temp = temp_path(path);
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io(&temp, "creating a temporary file"))
            .and_then(|mut file| {
                crate::fault::write_all(&mut file, bytes).map_err(io(&temp, "writing"))
            });
        temps.push(temp);
        if let Err(e) = written {
            remove(&temps);
            return Err(e.into());
        }
    }
    if let Err(e) = sync_files(&temps) {
        remove(&temps);
        return Err(e.into());
    }
    let mut dirs = std::collections::BTreeSet::new();
    let mut result = Ok(());
    for (i, (temp, (path, _))) in temps.iter().zip(files).enumerate() {
        if let Err(e) = fs::rename(temp, path) {
            remove(&temps[i..]);
            result = Err(io(path, "replacing")(e).into());
            break;
        }
        dirs.insert(parent_dir(path).to_path_buf());
        if let Err(e) = after_each(i) {
            remove(&temps[i + 1..]);
            result = Err(e);
            break;
        }
    }
    for dir in dirs {
        let synced = File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir, "syncing the directory"));
        if let Err(e) = synced
            && result.is_ok()
        {
            result = Err(e.into());
        }
    }
    result
}

/// Syncs each of `paths` to disk, several at once: a file system's journal commits the syncs
/// that wait together in one write, where syncs one after the other wait for one commit each.
fn sync_files(paths: &[PathBuf]) -> Result<(), StoreError> {
    const SYNCERS: usize = 8;
    let sync = |path: &PathBuf| {
        File::open(path)
            .and_then(|file| file.sync_all())
            .map_err(io(path, "syncing"))
    };
    if paths.len() < 2 {
        return paths.iter().try_for_each(sync);
    }
    let share = paths.len().div_ceil(SYNCERS);
    std::thread::scope(|scope| {
        let syncers: Vec<_> = paths
            .chunks(share)
            .map(|chunk| scope.spawn(move || chunk.iter().try_for_each(sync)))
            .collect();
        syncers.into_iter().try_for_each(|syncer| {
            syncer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })
}

/// The temporary file a new version of `path` is written to, beside it (named for this
/// process, so that a dead writer's is told apart and removed).
fn temp_path(path: &Path) -> PathBuf {
    let file_name = path.file_name().and_then(|f| f.to_str()).unwrap_or("file");
    parent_dir(path).join(format!(".{file_name}.tmp.{}", std::process::id()))
}

/// A credential written beside its place by [`Store::stage_credential`], waiting for its audit
/// entry.
#[derive(Debug)]
pub struct StagedCredential {
    temp: Option<PathBuf>,
    path: PathBuf,
    history_copy: Option<PathBuf>,
}

impl StagedCredential {
    /// Puts the new envelope in its place; returns its path.
    pub fn commit(mut self) -> Result<PathBuf, StoreError> {
        if let Some(temp) = self.temp.take() {
            rename_into_place(&temp, &self.path)?;
        }
        self.history_copy = None;
        Ok(self.path.clone())
    }
}

impl Drop for StagedCredential {
    fn drop(&mut self) {
        // Not committed: the new envelope and the history copy go; the current one stays.
        if let Some(temp) = self.temp.take() {
            let _ = fs::remove_file(temp);
        }
        if let Some(copy) = self.history_copy.take() {
            let _ = fs::remove_file(copy);
        }
    }
}

/// Creates a new file with `bytes`, 0600, refusing to overwrite an existing one (share files).
pub fn write_new_secret_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path, "creating (it must not exist yet)"))?;
    let written = crate::fault::write_all(&mut file, bytes)
        .map_err(io(path, "writing"))
        .and_then(|()| file.sync_all().map_err(io(path, "syncing")));
    if written.is_err() {
        // Nothing half-written stays behind.
        let _ = fs::remove_file(path);
        return written;
    }
    let dir = parent_dir(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "syncing the directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_files_are_replaced_whole_in_order_and_a_stop_midway_leaves_the_rest_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("history");
        fs::create_dir(&sub).unwrap();
        let paths: Vec<PathBuf> = (0..20)
            .map(|i| {
                if i % 2 == 0 {
                    dir.path()
                } else {
                    sub.as_path()
                }
                .join(format!("{i}.json"))
            })
            .collect();
        for path in &paths {
            fs::write(path, b"old").unwrap();
        }
        let files: Vec<(PathBuf, Vec<u8>)> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), format!("new {i}").into_bytes()))
            .collect();
        let listing = |dir: &Path| {
            let mut names: Vec<String> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let before = (listing(dir.path()), listing(&sub));
        // Stopped after the 5th rename (a fault, a crash): those are new, the others old, and
        // no temporary file is left.
        let mut seen = Vec::new();
        let stopped = write_atomic_all(&files, |i| {
            seen.push(i);
            if i == 4 {
                return Err(StoreError::InvalidName {
                    name: "stop".into(),
                });
            }
            Ok::<(), StoreError>(())
        });
        assert!(matches!(stopped, Err(StoreError::InvalidName { .. })));
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        for (i, path) in paths.iter().enumerate() {
            let expected = if i <= 4 {
                format!("new {i}")
            } else {
                "old".into()
            };
            assert_eq!(fs::read_to_string(path).unwrap(), expected, "{i}");
        }
        assert_eq!((listing(dir.path()), listing(&sub)), before);
        // All of them, each new and 0600.
        let mut seen = Vec::new();
        write_atomic_all(&files, |i| {
            seen.push(i);
            Ok::<(), StoreError>(())
        })
        .unwrap();
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
        for (path, bytes) in &files {
            assert_eq!(&fs::read(path).unwrap(), bytes);
            assert_eq!(
                fs::metadata(path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!((listing(dir.path()), listing(&sub)), before);
        // A file that cannot be written (its directory is gone): nothing is replaced, and no
        // temporary file is left.
        let mut broken = files.clone();
        broken[7].0 = dir.path().join("gone/7.json");
        for (path, _) in &files {
            fs::write(path, b"old").unwrap();
        }
        let failed = write_atomic_all(&broken, |_| Ok::<(), StoreError>(()));
        assert!(matches!(failed, Err(StoreError::Io { .. })), "{failed:?}");
        for path in &paths {
            assert_eq!(fs::read_to_string(path).unwrap(), "old");
        }
        assert_eq!((listing(dir.path()), listing(&sub)), before);
    }

    #[test]
    fn an_unsynced_note_is_replaced_whole_0600_and_a_failed_replacement_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("note.json");
        fs::write(&path, b"old").unwrap();
        replace_unsynced(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names = |dir: &Path| fs::read_dir(dir).unwrap().count();
        assert_eq!(names(dir.path()), 1);
        // A place that cannot be replaced (a directory holding a file): the error names it and
        // no temporary file stays.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"x").unwrap();
        let failed = replace_unsynced(&blocked, b"new");
        assert!(
            matches!(&failed, Err(StoreError::Io { path, .. }) if path == &blocked),
            "{failed:?}"
        );
        assert_eq!(names(dir.path()), 2);
        // A directory that is not there: an error, nothing made.
        assert!(replace_unsynced(&dir.path().join("gone/note.json"), b"new").is_err());
        assert_eq!(names(dir.path()), 2);
    }

    #[test]
    fn a_dead_writers_temporary_files_are_removed_and_a_live_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("vault")).unwrap();
        fs::write(store.path(MANIFEST), b"{}").unwrap();
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        dead.wait().unwrap();
        let mut live = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let files = [
            // A dead writer's envelope is the vault's to settle (it may be the recorded one).
            (format!("staging/.db.json.tmp.{}", dead.id()), true),
            (format!("staging/.db.json.tmp.{}", live.id()), true),
            // An envelope re-wrapped in place, and the listing's index: removed by a listing.
            (format!("credentials/.db.json.tmp.{}", dead.id()), false),
            (format!("credentials/..index.json.tmp.{}", dead.id()), false),
            (format!("credentials/.db.json.tmp.{}", live.id()), true),
            // Not an envelope's name: nothing breakglass wrote, removed when staging is listed.
            (format!("staging/.Not A Name.json.tmp.{}", dead.id()), false),
            (format!(".vault.json.tmp.{}", dead.id()), false),
            (format!("ceremonies/.ab.request.tmp.{}", dead.id()), false),
            (format!("history/db/.1.json.tmp.{}", dead.id()), false),
            ("staging/.db.json.tmp.notapid".to_owned(), true),
            ("credentials/db.json".to_owned(), true),
        ];
        make_dir(&store.path("staging")).unwrap();
        make_dir(&store.path("history/db")).unwrap();
        for (file, _) in &files {
            fs::write(store.path(file), b"x").unwrap();
        }
        drop(store.lock().unwrap());
        store.credentials().unwrap();
        store.history("db").unwrap();
        assert_eq!(
            store.stale_staged().len(),
            1,
            "the dead writer's envelope alone"
        );
        live.kill().unwrap();
        live.wait().unwrap();
        for (file, kept) in &files {
            assert_eq!(store.path(file).exists(), *kept, "{file}");
        }
        // Both writers are gone now: both envelopes are the vault's to settle.
        let staged = store.stale_staged();
        let mut expected = vec![
            (
                "db".to_owned(),
                store.path(&format!("staging/.db.json.tmp.{}", dead.id())),
            ),
            (
                "db".to_owned(),
                store.path(&format!("staging/.db.json.tmp.{}", live.id())),
            ),
        ];
        expected.sort();
        assert_eq!(staged, expected);
        let lock = store.lock().unwrap();
        for (name, path) in &staged {
            store.settle_staged(&lock, name, path, false).unwrap();
        }
        assert!(store.stale_staged().is_empty());
    }

    #[test]
    fn names_that_could_escape_or_hide_are_refused() {
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "A",
            "x..y",
            "-x",
            &"a".repeat(65),
            "name with space",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        for good in ["prod", "prod-breakglass", "aws.root_2", "0"] {
            assert!(validate_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn create_refuses_a_non_empty_directory_and_sets_permissions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), b"").unwrap();
        assert!(matches!(
            Store::create(dir.path()),
            Err(StoreError::NotEmpty { .. })
        ));
        let root = dir.path().join("vault");
        let store = Store::create(&root).unwrap();
        let mode = std::fs::metadata(store.root())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
        assert!(matches!(
            Store::open(&root),
            Err(StoreError::NotAVault { .. })
        ));
    }

    #[test]
    fn a_vault_whose_init_did_not_finish_is_refused_even_with_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("v")).unwrap();
        fs::write(store.path(MANIFEST), b"{}").unwrap();
        fs::write(store.path(INIT_INCOMPLETE), b"ab\n").unwrap();
        let refused = Store::open(store.root()).unwrap_err();
        assert!(matches!(refused, StoreError::InitIncomplete { .. }));
        assert!(refused.to_string().contains("did not finish"), "{refused}");
        fs::remove_file(store.path(INIT_INCOMPLETE)).unwrap();
        assert!(Store::open(store.root()).is_ok());
    }

    #[test]
    fn credentials_are_written_0600_and_replacing_keeps_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("v")).unwrap();
        let lock = store.lock().unwrap();
        let path = store
            .write_credential(&lock, "prod", b"one", false)
            .unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(
            store.write_credential(&lock, "prod", b"two", false),
            Err(StoreError::CredentialExists { .. })
        ));
        store.write_credential(&lock, "prod", b"two", true).unwrap();
        store
            .write_credential(&lock, "prod", b"three", true)
            .unwrap();
        assert_eq!(store.read_credential("prod").unwrap().1, b"three");
        let history = store.history("prod").unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(std::fs::read(&history[0]).unwrap(), b"one");
        assert_eq!(std::fs::read(&history[1]).unwrap(), b"two");
        assert_eq!(store.credentials().unwrap(), vec!["prod".to_owned()]);
        assert!(matches!(
            store.read_credential("nope"),
            Err(StoreError::NoSuchCredential { .. })
        ));
    }

    #[test]
    fn the_lock_serialises_writers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("v")).unwrap();
        let counter = store.path("counter");
        std::fs::write(&counter, b"0").unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let lock = store.lock().unwrap();
                        let n: u32 = std::fs::read_to_string(&counter).unwrap().parse().unwrap();
                        std::thread::yield_now();
                        store
                            .write(&lock, "counter", (n + 1).to_string().as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(std::fs::read_to_string(&counter).unwrap(), "160");
    }
}
