//! Fault points: named places where the end-to-end tests stop an operation as a killed
//! terminal would (`BREAKGLASS_TEST_FAULT=<name>`: an error) or as a crash does
//! (`BREAKGLASS_TEST_FAULT=<name>:kill`: SIGKILL), to prove that what follows resumes;
//! and faulty file writes (`BREAKGLASS_TEST_WRITE_FAULT=<n>:<enospc|kill>`): the n-th file
//! write of the process (every vault file, share file and audit append goes through
//! [`write_all`]) writes half its bytes, then fails with ENOSPC as a full disk does, or kills
//! the process with SIGKILL as a crash does. They exist only in builds with the `test-faults`
//! feature, which only the tests turn on (as a dev-dependency feature); in any other build
//! [`point`] does nothing and [`write_all`] is the plain call. The crate's own unit tests have
//! the fault points too, armed for the calling thread by `arm` rather than the environment, so
//! that a library test stops an operation where the end-to-end tests stop the binary.

use std::fs::File;
use std::io::Write;

/// Stops here with [`VaultError::FaultPoint`](crate::vault::VaultError::FaultPoint) when
/// `BREAKGLASS_TEST_FAULT` names this point or (in the crate's unit tests) `arm` armed it on
/// this thread, or kills the process when the variable names it followed by `:kill` (test
/// builds only).
#[cfg(any(test, feature = "test-faults"))]
pub fn point(name: &str) -> Result<(), crate::Error> {
    if armed(name) {
        return Err(crate::vault::VaultError::FaultPoint(name.to_owned()).into());
    }
    let Ok(spec) = std::env::var("BREAKGLASS_TEST_FAULT") else {
        return Ok(());
    };
    match spec.strip_prefix(name) {
        Some("") => Err(crate::vault::VaultError::FaultPoint(name.to_owned()).into()),
        Some(":kill") => kill(),
        _ => Ok(()),
    }
}

/// SIGKILL to this process, as a crash: nothing after it runs, no destructor, no flush.
#[cfg(any(test, feature = "test-faults"))]
fn kill() -> ! {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
thread_local! {
    /// The fault point a unit test armed on its thread.
    static ARMED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Arms the fault point `name` on this thread (`None` disarms): the crate's unit tests stop an
/// operation there without touching the process's environment.
#[cfg(test)]
pub(crate) fn arm(name: Option<&str>) {
    ARMED.with(|armed| *armed.borrow_mut() = name.map(str::to_owned));
}

#[cfg(test)]
fn armed(name: &str) -> bool {
    ARMED.with(|armed| armed.borrow().as_deref() == Some(name))
}

#[cfg(all(not(test), feature = "test-faults"))]
fn armed(_name: &str) -> bool {
    false
}

/// Does nothing: this build has no fault points.
#[cfg(not(any(test, feature = "test-faults")))]
#[inline(always)]
pub fn point(_name: &str) -> Result<(), crate::Error> {
    Ok(())
}

/// Writes all of `bytes` to `file`; the file write that `BREAKGLASS_TEST_WRITE_FAULT` names
/// is cut short (test builds only).
#[cfg(feature = "test-faults")]
pub fn write_all(file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let n = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
    let Ok(spec) = std::env::var("BREAKGLASS_TEST_WRITE_FAULT") else {
        return file.write_all(bytes);
    };
    let (at, how) = spec.split_once(':').unwrap_or((spec.as_str(), "enospc"));
    if at.parse::<usize>().ok() != Some(n) {
        return file.write_all(bytes);
    }
    file.write_all(&bytes[..bytes.len() / 2])?;
    if how == "kill" {
        let _ = file.sync_all();
        kill();
    }
    // Said on standard error, so that a sweep knows the fault was reached even when the
    // command goes on without that write (a best-effort one, like this machine's anchor).
    eprintln!("test fault: file write {n} failed with ENOSPC");
    Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
}

/// Writes all of `bytes` to `file` (this build has no write faults).
#[cfg(not(feature = "test-faults"))]
#[inline(always)]
pub fn write_all(file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)
}
