//! Showing a secret the user asked to see (`--output json`, `--output env`, a session's keys):
//! the text is built in a [`SecretBuffer`], which grows without leaving copies behind, and
//! reaches standard output in one write that ends with a newline, so standard output's own
//! line buffer never holds it. Nothing is left in freed memory (`tests/freed_memory.rs`).

use std::io::Write;

use vault_core::secret::SecretBuffer;

/// Writes `text` (which ends with a newline) to standard output and zeroises it.
pub fn print(text: SecretBuffer) -> std::io::Result<()> {
    debug_assert!(text.as_bytes().ends_with(b"\n"));
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    lock.write_all(text.as_bytes())?;
    lock.flush()
}

/// `value` as a JSON string, escaped, written into `out` without an intermediate copy.
pub fn json_string(out: &mut SecretBuffer, value: &str) {
    // Writing into a SecretBuffer cannot fail, and a &str always serialises.
    serde_json::to_writer(out, value).expect("a string serialises into memory");
}
