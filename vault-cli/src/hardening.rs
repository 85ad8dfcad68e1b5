//! Process hardening for every command (each may handle a secret): no core dumps, no ptrace attachment by
//! other processes of the same user (`PR_SET_DUMPABLE` 0 also keeps /proc/PID/mem private).
//! And the default action of SIGPIPE for every command, so output cut short by its reader
//! (`breakglass audit show | head -1`) ends the process quietly as it ends `cat`, instead of a
//! failed write turning into a panic. And an allocator that clears every block as it is freed.

/// Restores the default action of SIGPIPE, which the Rust runtime sets to "ignore" (a write to
/// a closed pipe then fails, and `println!` panics on the failure). Sockets are unaffected:
/// the standard library sends on them with `MSG_NOSIGNAL`.
#[allow(unsafe_code)]
pub fn die_quietly_on_closed_output() {
    // SAFETY: signal() with a standard disposition, called once at start, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Turns off core dumps and makes the process non-dumpable. Called by `main` for every
/// command, before any argument is acted on (children started by `exec` inherit the core limit).
#[allow(unsafe_code)]
pub fn harden() -> anyhow::Result<()> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    if rc != 0 {
        anyhow::bail!(
            "cannot disable core dumps (setrlimit): {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes plain integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc != 0 {
        anyhow::bail!(
            "cannot make the process non-dumpable (prctl): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn harden_sets_the_core_limit_to_zero() {
        super::harden().unwrap();
        let mut limit = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        #[allow(unsafe_code)]
        // SAFETY: getrlimit writes into the struct we own.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) };
        assert_eq!(rc, 0);
        assert_eq!((limit.rlim_cur, limit.rlim_max), (0, 0));
        #[allow(unsafe_code)]
        // SAFETY: prctl(PR_GET_DUMPABLE) takes no pointer.
        let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
        assert_eq!(dumpable, 0);
    }
}

/// The binary's allocator: the system's, with every block cleared as it is freed (and so every
/// block a reallocation moves away from). breakglass keeps its own secrets in zeroising types,
/// but the libraries it calls make copies it cannot reach: the AWS SDK's request signing
/// formats `"AWS4" + secret access key` into a string it drops as it is, and parsers and
/// formatters leave partial copies in buffers they grow. Cleared on free, none of them is
/// left in memory the allocator hands out again, or in a swapped page
/// (`tests/freed_memory.rs` scans every free of the built binary for the secrets it handles).
pub struct ClearOnFree;

#[allow(unsafe_code)]
// SAFETY: every call is the system allocator's with the caller's own arguments; `dealloc` first
// overwrites the block the caller gives back (its own, `layout.size()` bytes, still live).
unsafe impl std::alloc::GlobalAlloc for ClearOnFree {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        use zeroize::Zeroize as _;
        unsafe {
            // Volatile writes: the compiler may not drop them as stores to memory being freed.
            std::slice::from_raw_parts_mut(ptr, layout.size()).zeroize();
            std::alloc::System.dealloc(ptr, layout);
        }
    }
    // `realloc` keeps the default: allocate, copy, and free (clearing) the old block.
}

#[global_allocator]
static ALLOCATOR: ClearOnFree = ClearOnFree;
