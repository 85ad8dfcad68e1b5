//! Test-only `LD_PRELOAD` library: every block the process gives back to the C library
//! (`free`, and the old block of a `realloc`) is searched for canary secrets first, and each
//! one found is reported. It shows whether a program leaves copies of its secrets in freed
//! memory (where the next allocation, a core file or a swapped page could show them), without
//! building the program any differently: the binary under test is the one users run.
//!
//! Told by its environment (read at the first free, without allocating):
//! - `BREAKGLASS_FREE_SCAN_CANARIES`: the secrets to look for, hex, separated by commas (at
//!   most 32, each 8 to 256 bytes). Without it the library only forwards.
//! - `BREAKGLASS_FREE_SCAN_REPORT`: a file the findings are appended to, one line each:
//!   `active <canaries>` once the scan starts, `found <canary index> <block size>` per block,
//!   and `scanned <frees> found <blocks>` when the process exits.
//!
//! `realloc` is done as allocate, copy, scan and free, so a buffer that grows always leaves
//! its old copy where the scan sees it (as a moving reallocation would).

#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering};

const SLOTS: usize = 32;
const MAX_LEN: usize = 256;

/// The scan has not been set up yet, is being set up, runs, or is off (no canaries).
const UNREAD: u8 = 0;
const READING: u8 = 1;
const SCANNING: u8 = 2;
const OFF: u8 = 3;

struct Canaries {
    lens: [usize; SLOTS],
    bytes: [[u8; MAX_LEN]; SLOTS],
    count: usize,
}

/// Written once while [`STATE`] is [`READING`] (by the one thread that moved it there), read
/// only once it is [`SCANNING`].
struct Registry(UnsafeCell<Canaries>);
// SAFETY: see the comment on the type; the state's release/acquire orders the two.
unsafe impl Sync for Registry {}

static CANARIES: Registry = Registry(UnsafeCell::new(Canaries {
    lens: [0; SLOTS],
    bytes: [[0; MAX_LEN]; SLOTS],
    count: 0,
}));
static STATE: AtomicU8 = AtomicU8::new(UNREAD);
static REPORT: AtomicI32 = AtomicI32::new(-1);
static SCANNED: AtomicUsize = AtomicUsize::new(0);
static FOUND: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" {
    fn __libc_malloc(size: usize) -> *mut c_void;
    fn __libc_free(ptr: *mut c_void);
    fn malloc_usable_size(ptr: *mut c_void) -> usize;
}

/// # Safety
/// As the C library's `free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    if !ptr.is_null() {
        // SAFETY: a live block from the C library, `malloc_usable_size` bytes long.
        unsafe { scan(ptr, malloc_usable_size(ptr)) };
    }
    // SAFETY: forwarded as given.
    unsafe { __libc_free(ptr) }
}

/// # Safety
/// As the C library's `realloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: each branch is what the C library's realloc does in that case.
    unsafe {
        if ptr.is_null() {
            return __libc_malloc(size);
        }
        if size == 0 {
            free(ptr);
            return std::ptr::null_mut();
        }
        let old = malloc_usable_size(ptr);
        let new = __libc_malloc(size);
        if new.is_null() {
            return new; // The old block stays as it was, as realloc leaves it.
        }
        std::ptr::copy_nonoverlapping(ptr as *const u8, new as *mut u8, old.min(size));
        free(ptr);
        new
    }
}

/// Searches the block for every canary.
///
/// # Safety
/// `ptr` points at `len` readable bytes.
unsafe fn scan(ptr: *mut c_void, len: usize) {
    if STATE.load(Ordering::Acquire) == UNREAD {
        set_up();
    }
    if STATE.load(Ordering::Acquire) != SCANNING {
        return;
    }
    SCANNED.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the caller's promise.
    let block = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
    // SAFETY: the registry is no longer written once the state is SCANNING.
    let canaries = unsafe { &*CANARIES.0.get() };
    for (index, (bytes, &n)) in canaries.bytes.iter().zip(&canaries.lens).enumerate() {
        if index == canaries.count {
            break;
        }
        let needle = &bytes[..n];
        if block.len() >= n && block.windows(n).any(|w| w == needle) {
            FOUND.fetch_add(1, Ordering::Relaxed);
            let mut line = Line::new();
            line.text(b"found ")
                .number(index)
                .text(b" ")
                .number(len)
                .text(b"\n");
            line.write();
        }
    }
}

/// Reads the canaries and opens the report (one thread; the others forward meanwhile).
fn set_up() {
    if STATE
        .compare_exchange(UNREAD, READING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    // SAFETY: this thread alone writes the registry, before publishing SCANNING.
    let canaries = unsafe { &mut *CANARIES.0.get() };
    let Some(hex) = env(c"BREAKGLASS_FREE_SCAN_CANARIES") else {
        STATE.store(OFF, Ordering::Release);
        return;
    };
    for item in hex.split(|&b| b == b',') {
        let n = item.len() / 2;
        if canaries.count == SLOTS || item.len() % 2 != 0 || !(8..=MAX_LEN).contains(&n) {
            STATE.store(OFF, Ordering::Release);
            return;
        }
        let slot = &mut canaries.bytes[canaries.count];
        for (i, pair) in item.chunks(2).enumerate() {
            match (nibble(pair[0]), nibble(pair[1])) {
                (Some(hi), Some(lo)) => slot[i] = hi << 4 | lo,
                _ => {
                    STATE.store(OFF, Ordering::Release);
                    return;
                }
            }
        }
        canaries.lens[canaries.count] = n;
        canaries.count += 1;
    }
    // SAFETY: `getenv` gives NULL or a NUL-terminated string living as long as the process.
    let path = unsafe { libc::getenv(c"BREAKGLASS_FREE_SCAN_REPORT".as_ptr()) };
    if !path.is_null() {
        // SAFETY: a NUL-terminated path; the descriptor is ours until exit.
        let fd = unsafe {
            libc::open(
                path,
                libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
                0o600 as c_int,
            )
        };
        REPORT.store(fd, Ordering::Release);
    }
    let mut line = Line::new();
    line.text(b"active ").number(canaries.count).text(b"\n");
    line.write();
    // SAFETY: registering a plain function to run at exit.
    unsafe { libc::atexit(summary) };
    STATE.store(SCANNING, Ordering::Release);
}

extern "C" fn summary() {
    let mut line = Line::new();
    line.text(b"scanned ")
        .number(SCANNED.load(Ordering::Relaxed))
        .text(b" found ")
        .number(FOUND.load(Ordering::Relaxed))
        .text(b"\n");
    line.write();
}

/// An environment variable's bytes, without allocating.
fn env(name: &std::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: `getenv` returns NULL or a NUL-terminated string living as long as the process
    // (nothing here changes the environment).
    unsafe {
        let value: *const c_char = libc::getenv(name.as_ptr());
        if value.is_null() {
            return None;
        }
        Some(std::ffi::CStr::from_ptr(value).to_bytes())
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// One report line, built on the stack.
struct Line {
    buf: [u8; 96],
    len: usize,
}

impl Line {
    fn new() -> Line {
        Line {
            buf: [0; 96],
            len: 0,
        }
    }
    fn text(&mut self, text: &[u8]) -> &mut Line {
        let n = text.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&text[..n]);
        self.len += n;
        self
    }
    fn number(&mut self, mut value: usize) -> &mut Line {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.text(&digits[i..])
    }
    fn write(&self) {
        let fd = REPORT.load(Ordering::Acquire);
        if fd >= 0 {
            // SAFETY: writing our own stack buffer to a descriptor we opened.
            unsafe { libc::write(fd, self.buf.as_ptr() as *const c_void, self.len) };
        }
    }
}
