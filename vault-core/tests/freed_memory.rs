//! Freed memory holds no secret: this test binary's global allocator looks, at every free, for
//! canary secrets in the block given back, while the library seals, recombines and opens.
//!
//! The canaries are the values a run would leak if a copy were left behind in memory returned
//! to the allocator (where the next allocation, a core file or a swapped page could show it):
//! the sealed payload, the recombined quorum secret, every custodian's share (a run of its own
//! words), and the token PIN. A buffer that grows (a `Vec` or
//! `String` reallocated while holding a secret) and a temporary that is dropped without being
//! zeroised are the faults this finds. Memory the PKCS#11 module allocates is its own
//! (SoftHSM's `malloc`), outside this check.
//!
//! Set `BREAKGLASS_FREED_MEMORY_BACKTRACE=1` to print where each leaking free happened.

// A global allocator is unsafe by nature; this one lives in this test binary only.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hsm_testing::softhsm::{SO_PIN, SoftHsm};
use secrecy::{ExposeSecret, SecretString};
use vault_core::hsm::PinRole;
use vault_core::manifest::{PinSource, Policy};
use vault_core::trust::machine::ConfigDir;
use vault_core::{
    Collector, GroupDef, InitOptions, Kind, PinProvider, TokenChoice, TokenTarget, Vault,
};

/// How many canaries, and how long each may be.
const SLOTS: usize = 16;
const MAX_LEN: usize = 256;

struct Canaries {
    names: [&'static str; SLOTS],
    lens: [usize; SLOTS],
    bytes: [[u8; MAX_LEN]; SLOTS],
    count: usize,
}

/// Written only while [`SCANNING`] is off, read only while it is on (one test per process).
struct Registry(UnsafeCell<Canaries>);
// SAFETY: see the comment on the type: writes and reads never overlap in time.
unsafe impl Sync for Registry {}

static CANARIES: Registry = Registry(UnsafeCell::new(Canaries {
    names: [""; SLOTS],
    lens: [0; SLOTS],
    bytes: [[0; MAX_LEN]; SLOTS],
    count: 0,
}));
static SCANNING: AtomicBool = AtomicBool::new(false);
static BACKTRACES: AtomicBool = AtomicBool::new(false);
static FREES_SCANNED: AtomicUsize = AtomicUsize::new(0);
static HITS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

thread_local! {
    /// Set while this thread prints a backtrace (which allocates and frees itself).
    static REPORTING: Cell<bool> = const { Cell::new(false) };
}

fn contains(block: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && block.len() >= needle.len()
        && block.windows(needle.len()).any(|w| w == needle)
}

struct Scanning;

// SAFETY: every call is forwarded to the system allocator with its own arguments; the scan
// only reads the block being freed, before it is freed.
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if SCANNING.load(Ordering::Acquire) && !REPORTING.with(Cell::get) {
            FREES_SCANNED.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the caller gives back a live block of `layout.size()` bytes.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            // SAFETY: the registry is not written while scanning (see `Registry`).
            let canaries = unsafe { &*CANARIES.0.get() };
            let watched = canaries.bytes.iter().zip(canaries.lens).zip(canaries.names);
            for (slot, ((bytes, len), name)) in watched.enumerate().take(canaries.count) {
                if contains(block, &bytes[..len]) {
                    HITS[slot].fetch_add(1, Ordering::Relaxed);
                    if BACKTRACES.load(Ordering::Relaxed) {
                        REPORTING.with(|r| r.set(true));
                        eprintln!(
                            "freed block of {} bytes holds {}:\n{}",
                            layout.size(),
                            name,
                            std::backtrace::Backtrace::force_capture()
                        );
                        REPORTING.with(|r| r.set(false));
                    }
                }
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

/// Adds a canary (scanning must be off).
fn watch(name: &'static str, value: &[u8]) {
    assert!(
        !SCANNING.load(Ordering::Acquire),
        "canaries are added between scans"
    );
    assert!(
        value.len() >= 16 && value.len() <= MAX_LEN,
        "{name}: 16 to {MAX_LEN} bytes"
    );
    // SAFETY: scanning is off, so nothing reads the registry now.
    let canaries = unsafe { &mut *CANARIES.0.get() };
    let slot = canaries.count;
    assert!(slot < SLOTS, "at most {SLOTS} canaries");
    canaries.names[slot] = name;
    canaries.lens[slot] = value.len();
    canaries.bytes[slot][..value.len()].copy_from_slice(value);
    canaries.count += 1;
}

/// Runs `work` with every free scanned; the canaries found in freed blocks, by name.
fn scanned<T>(work: impl FnOnce() -> T) -> (T, Vec<(&'static str, usize)>) {
    for hit in &HITS {
        hit.store(0, Ordering::Relaxed);
    }
    SCANNING.store(true, Ordering::Release);
    let out = work();
    SCANNING.store(false, Ordering::Release);
    // SAFETY: scanning is off again.
    let canaries = unsafe { &*CANARIES.0.get() };
    let found = (0..canaries.count)
        .filter_map(|slot| {
            let n = HITS[slot].load(Ordering::Relaxed);
            (n > 0).then_some((canaries.names[slot], n))
        })
        .collect();
    (out, found)
}

const PAYLOAD: &[u8] = b"canary-payload-3b7d9a51e0c24f68-the-database-root-password";
const USER_PIN: &str = "canary-pin-9c2e71f04ab3";

struct Pins;
impl PinProvider for Pins {
    fn pin(&self, _: &str, _: PinRole, _: &PinSource) -> Result<SecretString, vault_core::Error> {
        Ok(SecretString::from(USER_PIN))
    }
}

#[test]
fn sealing_recombining_and_opening_leave_no_secret_in_freed_memory() {
    BACKTRACES.store(
        std::env::var_os("BREAKGLASS_FREED_MEMORY_BACKTRACE").is_some(),
        Ordering::Relaxed,
    );
    let softhsm = SoftHsm::new();
    softhsm.init_token("canary", SO_PIN, USER_PIN);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = ConfigDir::at(&dir.path().join("config"));
    let (vault, shares) = Vault::init(
        &dir.path().join("vault"),
        &InitOptions {
            group_threshold: 1,
            groups: vec![GroupDef {
                name: "custodians".into(),
                threshold: 2,
                members: vec!["alice".into(), "bob".into(), "carol".into()],
            }],
            token: TokenTarget {
                module: softhsm.module_path(),
                label: "canary".into(),
                init_token: false,
                softhsm_conf: None,
            },
            user_pin: PinSource::Prompt,
            so_pin: PinSource::Prompt,
            pins: &Pins,
            policy: Policy::default(),
            iteration_exponent: 0,
            recovery: None,
            config: &config,
            operator: "olivia".into(),
            recipients: Default::default(),
        },
    )
    .expect("init");

    // The canaries: what each share says (its words and, on its own, every word run long
    // enough to be unique), the quorum secret the shares recombine, the payload and the PIN.
    let mnemonics: Vec<SecretString> = shares.iter().map(|s| s.share.to_mnemonic()).collect();
    let names = ["alice's share", "bob's share", "carol's share"];
    for (name, mnemonic) in names.iter().zip(&mnemonics) {
        let words: Vec<&str> = mnemonic.expose_secret().split(' ').collect();
        // The share's own words, past the identifier and parameters shared by the set.
        let tail = words[4..12].join(" ");
        watch(name, tail.as_bytes());
    }
    let quorum = {
        let mut collector = Collector::new();
        for (position, mnemonic) in mnemonics.iter().enumerate().skip(1) {
            let share = vault_core::quorum::Share::parse(mnemonic.expose_secret(), position)
                .expect("a share parses");
            collector.add(position, share).expect("a share");
        }
        collector
    };
    {
        let combined = quorum.combine(b"").expect("the quorum recombines");
        watch("the quorum secret", combined.secret.expose_secret());
    }
    watch("the payload", PAYLOAD);
    watch("the token PIN", USER_PIN.as_bytes());

    // The check itself: a copy of a secret dropped without zeroising is found.
    let ((), leaked) = scanned(|| drop(std::hint::black_box(PAYLOAD.to_vec())));
    assert_eq!(
        leaked,
        [("the payload", 1)],
        "the scan finds a plain copy freed"
    );
    let ((), leaked) = scanned(|| {
        drop(std::hint::black_box(zeroize::Zeroizing::new(
            PAYLOAD.to_vec(),
        )))
    });
    assert_eq!(leaked, [], "...and not a zeroised one");

    let fingerprint = vault.identity();
    let (sealed, leaked) = scanned(|| {
        vault.seal(
            "db-root",
            Kind::Secret,
            BTreeMap::new(),
            PAYLOAD,
            false,
            Some(&fingerprint),
        )
    });
    sealed.expect("seal");
    assert_eq!(leaked, [], "seal freed memory holding these secrets");

    let (recombined, leaked) = scanned(|| {
        let mut collector = Collector::new();
        for (position, mnemonic) in mnemonics.iter().enumerate().skip(1) {
            let share = vault_core::quorum::Share::parse(mnemonic.expose_secret(), position)
                .expect("a share parses");
            collector.add(position, share).expect("a share");
        }
        collector.combine(b"").map(|c| c.used.len())
    });
    assert_eq!(recombined.expect("recombined"), 2);
    assert_eq!(
        leaked,
        [],
        "parsing shares and recombining freed memory holding these secrets"
    );

    let (opened, leaked) = scanned(|| {
        let token = TokenChoice {
            pins: &Pins,
            only: None,
            force_pin: false,
        };
        let opened = vault.unseal("db-root", &quorum, token, "unseal")?;
        let same = opened.payload.expose_secret() == PAYLOAD;
        drop(opened);
        Ok::<bool, vault_core::Error>(same)
    });
    assert!(opened.expect("unseal"), "the payload opens unchanged");
    assert_eq!(leaked, [], "unseal freed memory holding these secrets");
    assert!(
        FREES_SCANNED.load(Ordering::Relaxed) > 500,
        "the scan saw the frees of the work ({} of them)",
        FREES_SCANNED.load(Ordering::Relaxed)
    );
}
