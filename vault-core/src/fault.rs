//! Fault points: named places where the end-to-end tests stop an operation as a killed
//! terminal would (`BREAKGLASS_TEST_FAULT=<name>`: an error) or as a crash does
//! (`BREAKGLASS_TEST_FAULT=<name>:kill`: SIGKILL), to prove that what follows resumes;
//! and faulty file writes (`BREAKGLASS_TEST_WRITE_FAULT=<n>:<enospc|kill>`): the n-th file
//! write of the process (every vault file, share file and audit append goes through
//! [`write_all`]) writes half its bytes, then fails with ENOSPC as a full disk does, or kills
//! the process with SIGKILL as a crash does. They exist only in builds with the `test-faults`
//! feature, which only the tests turn on (as a dev-dependency feature); in any other build
//! [`point`] does nothing and [`write_all`] is the plain call.

use std::fs::File;
use std::io::Write;

/// Stops here with [`VaultError::FaultPoint`](crate::vault::VaultError::FaultPoint) when
/// `BREAKGLASS_TEST_FAULT` names this point, or kills the process when it names it followed by
/// `:kill` (test builds only).
#[cfg(feature = "test-faults")]
pub fn point(name: &str) -> Result<(), crate::Error> {
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
#[cfg(feature = "test-faults")]
fn kill() -> ! {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    loop {
        std::thread::park();
    }
}

/// Does nothing: this build has no fault points.
#[cfg(not(feature = "test-faults"))]
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
