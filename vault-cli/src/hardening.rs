//! Process hardening for every command (each may handle a secret): no core dumps, no ptrace attachment by
//! other processes of the same user (`PR_SET_DUMPABLE` 0 also keeps /proc/PID/mem private).
//! And the default action of SIGPIPE for every command, so output cut short by its reader
//! (`breakglass audit show | head -1`) ends the process quietly as it ends `cat`, instead of a
//! failed write turning into a panic.

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
