//! A PIN retry counter, which SoftHSM lacks (it never locks a PIN).
//!
//! With `BREAKGLASS_SHIM_PIN_TRIES=N`, every `C_Login` refused with `CKR_PIN_INCORRECT` counts
//! against that token's PIN (user or SO, per token serial); a successful login resets the count,
//! as `C_InitPIN` does for the user PIN and `C_InitToken` for both. After `N` wrong tries the
//! PIN is locked: `C_Login` returns `CKR_PIN_LOCKED` without reaching SoftHSM. `C_GetTokenInfo`
//! reports the count as real tokens do: `CKF_*_PIN_COUNT_LOW` after a wrong try,
//! `CKF_*_PIN_FINAL_TRY` when one more wrong try locks, `CKF_*_PIN_LOCKED` once locked.
//!
//! The counts live in `BREAKGLASS_SHIM_PIN_STATE/<serial>.pin-tries` (a directory next to the
//! token directory), so they survive the process as a token's own counter would.

use std::path::PathBuf;

use cryptoki_sys::*;

use crate::Shim;

type LoginFn =
    unsafe extern "C" fn(CK_SESSION_HANDLE, CK_USER_TYPE, *mut CK_UTF8CHAR, CK_ULONG) -> CK_RV;
type TokenInfoFn = unsafe extern "C" fn(CK_SLOT_ID, *mut CK_TOKEN_INFO) -> CK_RV;
type InitPinFn = unsafe extern "C" fn(CK_SESSION_HANDLE, *mut CK_UTF8CHAR, CK_ULONG) -> CK_RV;
type InitTokenFn =
    unsafe extern "C" fn(CK_SLOT_ID, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR) -> CK_RV;

/// Which PIN a login uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    SecurityOfficer,
}

impl Role {
    fn of(user_type: CK_USER_TYPE) -> Role {
        if user_type == CKU_SO {
            Role::SecurityOfficer
        } else {
            Role::User
        }
    }
}

/// Wrong tries since the last success, per PIN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    user: u32,
    so: u32,
}

impl Counts {
    fn get_mut(&mut self, role: Role) -> &mut u32 {
        match role {
            Role::User => &mut self.user,
            Role::SecurityOfficer => &mut self.so,
        }
    }

    fn parse(text: &str) -> Counts {
        let mut counts = Counts::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("user", n)) => counts.user = n.trim().parse().unwrap_or(0),
                Some(("so", n)) => counts.so = n.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        counts
    }
}

/// The counter: how many tries a PIN has, and where the counts are kept.
pub(crate) struct PinCounter {
    tries: u32,
    dir: PathBuf,
}

impl PinCounter {
    /// Reads `BREAKGLASS_SHIM_PIN_TRIES` and `BREAKGLASS_SHIM_PIN_STATE`; none without the first.
    pub(crate) fn from_env() -> Result<Option<PinCounter>, String> {
        let Some(tries) = std::env::var_os("BREAKGLASS_SHIM_PIN_TRIES") else {
            return Ok(None);
        };
        let tries = tries
            .to_str()
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|t| *t >= 1)
            .ok_or_else(|| {
                format!(
                    "BREAKGLASS_SHIM_PIN_TRIES={tries:?}: expected a number of tries, 1 or more"
                )
            })?;
        let dir = std::env::var_os("BREAKGLASS_SHIM_PIN_STATE")
            .map(PathBuf::from)
            .ok_or("BREAKGLASS_SHIM_PIN_TRIES needs BREAKGLASS_SHIM_PIN_STATE: the directory keeping the counts")?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("BREAKGLASS_SHIM_PIN_STATE={}: {e}", dir.display()))?;
        Ok(Some(PinCounter { tries, dir }))
    }

    fn file(&self, serial: &str) -> PathBuf {
        let name: String = serial
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        self.dir.join(format!("{name}.pin-tries"))
    }

    fn read(&self, serial: &str) -> Counts {
        std::fs::read_to_string(self.file(serial))
            .map(|text| Counts::parse(&text))
            .unwrap_or_default()
    }

    /// Writes the counts (whole file, then renamed into place).
    ///
    /// # Panics
    /// When the directory cannot be written: a counter that silently forgot would let a test
    /// believe a token locks when it does not.
    fn write(&self, serial: &str, counts: Counts) {
        let file = self.file(serial);
        let temporary = file.with_extension("pin-tries.new");
        std::fs::write(
            &temporary,
            format!("user={}\nso={}\n", counts.user, counts.so),
        )
        .and_then(|()| std::fs::rename(&temporary, &file))
        .unwrap_or_else(|e| panic!("PIN counter {}: {e}", file.display()));
    }

    /// The `CKF_*_PIN_*` flags for these counts.
    fn flags(&self, counts: Counts) -> CK_FLAGS {
        let for_role = |count: u32, low: CK_FLAGS, final_try: CK_FLAGS, locked: CK_FLAGS| {
            if count >= self.tries {
                locked
            } else {
                let mut flags = 0;
                if count > 0 {
                    flags |= low;
                }
                if count + 1 == self.tries {
                    flags |= final_try;
                }
                flags
            }
        };
        for_role(
            counts.user,
            CKF_USER_PIN_COUNT_LOW,
            CKF_USER_PIN_FINAL_TRY,
            CKF_USER_PIN_LOCKED,
        ) | for_role(
            counts.so,
            CKF_SO_PIN_COUNT_LOW,
            CKF_SO_PIN_FINAL_TRY,
            CKF_SO_PIN_LOCKED,
        )
    }
}

/// Every flag the counter owns (SoftHSM's own are replaced).
const PIN_FLAGS: CK_FLAGS = CKF_USER_PIN_COUNT_LOW
    | CKF_USER_PIN_FINAL_TRY
    | CKF_USER_PIN_LOCKED
    | CKF_SO_PIN_COUNT_LOW
    | CKF_SO_PIN_FINAL_TRY
    | CKF_SO_PIN_LOCKED;

/// The serial number of the token in `slot`, asked of the real module.
fn serial_of_slot(shim: &Shim, slot: CK_SLOT_ID) -> Option<String> {
    let get_token_info = shim.real.C_GetTokenInfo?;
    let mut info = CK_TOKEN_INFO::default();
    // SAFETY: `info` is a valid CK_TOKEN_INFO for the real module to fill.
    let rv = unsafe { get_token_info(slot, &mut info) };
    (rv == CKR_OK).then(|| serial_of(&info))
}

/// The serial number of the token `session` is open on, asked of the real module.
fn serial_of_session(shim: &Shim, session: CK_SESSION_HANDLE) -> Option<String> {
    let get_session_info = shim.real.C_GetSessionInfo?;
    let mut info = CK_SESSION_INFO::default();
    // SAFETY: `info` is a valid CK_SESSION_INFO for the real module to fill.
    let rv = unsafe { get_session_info(session, &mut info) };
    if rv != CKR_OK {
        return None;
    }
    serial_of_slot(shim, info.slotID)
}

fn serial_of(info: &CK_TOKEN_INFO) -> String {
    String::from_utf8_lossy(&info.serialNumber)
        .trim_end()
        .to_owned()
}

/// `C_Login`: refused once the PIN is locked; a wrong PIN counts, a right one resets the count.
///
/// # Safety
/// The caller's arguments, as for the real `C_Login`.
pub(crate) unsafe fn login(
    shim: &Shim,
    real: LoginFn,
    session: CK_SESSION_HANDLE,
    user_type: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's arguments, passed on unchanged.
    let forward = || unsafe { real(session, user_type, pin, pin_len) };
    let (Some(counter), Some(serial)) = (&shim.pins, serial_of_session(shim, session)) else {
        return forward();
    };
    let role = Role::of(user_type);
    let mut counts = counter.read(&serial);
    if *counts.get_mut(role) >= counter.tries {
        return CKR_PIN_LOCKED;
    }
    let rv = forward();
    let count = counts.get_mut(role);
    match rv {
        CKR_PIN_INCORRECT => *count += 1,
        CKR_OK | CKR_USER_ALREADY_LOGGED_IN if *count > 0 => *count = 0,
        _ => return rv,
    }
    counter.write(&serial, counts);
    rv
}

/// `C_GetTokenInfo`: the PIN flags come from the counter.
///
/// # Safety
/// The caller's arguments, as for the real `C_GetTokenInfo`.
pub(crate) unsafe fn token_info(
    shim: &Shim,
    real: TokenInfoFn,
    slot: CK_SLOT_ID,
    info: *mut CK_TOKEN_INFO,
) -> CK_RV {
    // SAFETY: the caller's arguments, passed on unchanged.
    let rv = unsafe { real(slot, info) };
    if let (CKR_OK, Some(counter)) = (rv, &shim.pins) {
        // SAFETY: the real module returned CKR_OK, so `info` is a valid, filled CK_TOKEN_INFO.
        let info = unsafe { &mut *info };
        let counts = counter.read(&serial_of(info));
        info.flags = (info.flags & !PIN_FLAGS) | counter.flags(counts);
    }
    rv
}

/// `C_InitPIN`: setting the user PIN unlocks it.
///
/// # Safety
/// The caller's arguments, as for the real `C_InitPIN`.
pub(crate) unsafe fn init_pin(
    shim: &Shim,
    real: InitPinFn,
    session: CK_SESSION_HANDLE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's arguments, passed on unchanged.
    let rv = unsafe { real(session, pin, pin_len) };
    if let (CKR_OK, Some(counter), Some(serial)) =
        (rv, &shim.pins, serial_of_session(shim, session))
    {
        let mut counts = counter.read(&serial);
        counts.user = 0;
        counter.write(&serial, counts);
    }
    rv
}

/// `C_InitToken`: a fresh token starts with fresh counts.
///
/// # Safety
/// The caller's arguments, as for the real `C_InitToken`.
pub(crate) unsafe fn init_token(
    shim: &Shim,
    real: InitTokenFn,
    slot: CK_SLOT_ID,
    so_pin: *mut CK_UTF8CHAR,
    so_pin_len: CK_ULONG,
    label: *mut CK_UTF8CHAR,
) -> CK_RV {
    // SAFETY: the caller's arguments, passed on unchanged.
    let rv = unsafe { real(slot, so_pin, so_pin_len, label) };
    if let (CKR_OK, Some(counter), Some(serial)) = (rv, &shim.pins, serial_of_slot(shim, slot)) {
        counter.write(&serial, Counts::default());
    }
    rv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(tries: u32) -> PinCounter {
        PinCounter {
            tries,
            dir: PathBuf::new(),
        }
    }

    #[test]
    fn the_flags_follow_the_count_as_a_real_token_reports_them() {
        let three = counter(3);
        let user = |n| three.flags(Counts { user: n, so: 0 });
        assert_eq!(user(0), 0);
        assert_eq!(user(1), CKF_USER_PIN_COUNT_LOW);
        assert_eq!(user(2), CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY);
        assert_eq!(user(3), CKF_USER_PIN_LOCKED);
        assert_eq!(
            three.flags(Counts { user: 0, so: 2 }),
            CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_FINAL_TRY
        );
        // With a single try, every try is the final one.
        assert_eq!(
            counter(1).flags(Counts::default()),
            CKF_USER_PIN_FINAL_TRY | CKF_SO_PIN_FINAL_TRY
        );
    }

    #[test]
    fn counts_round_trip_through_their_file_text() {
        assert_eq!(Counts::parse("user=2\nso=1\n"), Counts { user: 2, so: 1 });
        assert_eq!(Counts::parse(""), Counts::default());
    }
}
