//! A PKCS#11 module for tests only: it loads the real module (SoftHSM), forwards every function
//! of the PKCS#11 2.40 list to it, and lets a test fail a chosen call, list every call, give the
//! token a PIN retry counter, and see that the module was loaded at all.
//!
//! Configured by the environment of the process that loads it:
//!
//! | variable | meaning |
//! |---|---|
//! | `BREAKGLASS_SHIM_MODULE` | the real module to forward to (required) |
//! | `BREAKGLASS_SHIM_FAIL` | `FUNCTION:OCCURRENCE:RV[,...]`, e.g. `C_DeriveKey:2:CKR_DEVICE_REMOVED`: the 2nd `C_DeriveKey` of the process returns `CKR_DEVICE_REMOVED` without reaching the real module |
//! | `BREAKGLASS_SHIM_LOG` | a file to which each call appends `FUNCTION OCCURRENCE RV`, plus ` injected` for a planned failure |
//! | `BREAKGLASS_SHIM_PIN_TRIES`, `BREAKGLASS_SHIM_PIN_STATE` | a PIN retry counter (see `pin_counter`) |
//! | `BREAKGLASS_SHIM_LOADED` | a file written (one line, the process id) when the library is loaded |
//!
//! A mistyped plan or a missing module makes `C_GetFunctionList` fail with
//! `CKR_GENERAL_ERROR`, saying why on standard error: a test never runs unfaulted by mistake.
//! `hsm-testing`'s `shim` module builds this library and sets these variables.

// A PKCS#11 module is a C interface: its entry points receive raw pointers from the caller and
// call the real module through raw function pointers. `unsafe` is allowed in this test-only
// crate alone (the workspace denies it everywhere else); every block passes the caller's
// arguments on unchanged, or fills a structure of its own.
#![allow(unsafe_code)]
// The entry points carry PKCS#11's names.
#![allow(non_snake_case)]

mod fault;
mod pin_counter;
mod return_value;

use std::ffi::c_void;
use std::sync::OnceLock;

use cryptoki_sys::*;

/// The loaded real module and this process's plan, counts and PIN counter.
struct Shim {
    real: &'static CK_FUNCTION_LIST,
    calls: fault::Calls,
    pins: Option<pin_counter::PinCounter>,
    /// Keeps the real module mapped (the shim lives as long as the process).
    _library: libloading::Library,
}

static SHIM: OnceLock<Result<Shim, String>> = OnceLock::new();

impl Shim {
    fn load() -> Result<Shim, String> {
        let path = std::env::var_os("BREAKGLASS_SHIM_MODULE").ok_or(
            "BREAKGLASS_SHIM_MODULE is not set: it names the real PKCS#11 module to forward to",
        )?;
        let shown = std::path::Path::new(&path).display().to_string();
        // SAFETY: loading a PKCS#11 module runs its initialisers, which is what loading one means.
        let library = unsafe { libloading::Library::new(&path) }
            .map_err(|e| format!("BREAKGLASS_SHIM_MODULE={shown}: {e}"))?;
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: C_GetFunctionList has this signature in every PKCS#11 module; `list` is ours.
        let rv = unsafe {
            let get: libloading::Symbol<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
                library
                    .get(b"C_GetFunctionList\0")
                    .map_err(|e| format!("BREAKGLASS_SHIM_MODULE={shown}: {e}"))?;
            get(&mut list)
        };
        if rv != CKR_OK || list.is_null() {
            return Err(format!(
                "BREAKGLASS_SHIM_MODULE={shown}: C_GetFunctionList returned {}",
                return_value::name(rv)
            ));
        }
        // SAFETY: the real module's list stays valid while it is loaded, and `_library` keeps it
        // loaded for the life of the process (the shim is never unloaded from its OnceLock).
        let real = unsafe { &*list };
        Ok(Shim {
            real,
            calls: fault::Calls::from_env(FUNCTIONS)?,
            pins: pin_counter::PinCounter::from_env()?,
            _library: library,
        })
    }

    /// The one place every call goes through: counts it, fails it if planned (the real module
    /// is then not called), otherwise forwards it, and logs what the caller got.
    fn intercept(&self, function: &'static str, forward: impl FnOnce() -> CK_RV) -> CK_RV {
        let (occurrence, planned) = self.calls.next(function);
        let rv = planned.unwrap_or_else(forward);
        self.calls.log(function, occurrence, rv, planned.is_some());
        rv
    }
}

/// The shim, loaded at the first call; `CKR_GENERAL_ERROR` (said once on standard error) when it
/// cannot be.
fn shim() -> Result<&'static Shim, CK_RV> {
    let mut first = false;
    let loaded = SHIM.get_or_init(|| {
        first = true;
        Shim::load()
    });
    loaded.as_ref().map_err(|why| {
        if first {
            eprintln!("breakglass-pkcs11-shim: {why}");
        }
        CKR_GENERAL_ERROR
    })
}

/// The module's one exported entry point: the shim's function list.
///
/// # Safety
/// `list` must be null or point to writable memory for one pointer, as PKCS#11 requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    let shim = match shim() {
        Ok(shim) => shim,
        Err(rv) => return rv,
    };
    shim.intercept("C_GetFunctionList", || {
        if list.is_null() {
            return CKR_ARGUMENTS_BAD;
        }
        // SAFETY: `list` is non-null and writable (the caller's contract). The list is a
        // static the caller only reads.
        unsafe { *list = (&raw const FUNCTION_LIST).cast_mut() };
        CKR_OK
    })
}

/// Defines one forwarding entry point per function, all through [`Shim::intercept`], and the
/// function list holding them. A function with `=> handler` is forwarded through that handler
/// (given the shim and the real function) instead of directly. The list's struct literal makes
/// the compiler check that every function of PKCS#11 2.40 is there.
macro_rules! function_list {
    ($( $name:ident ( $($arg:ident : $ty:ty),* ) $(=> $handler:path)? ; )*) => {
        $(
            unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
                let shim = match shim() {
                    Ok(shim) => shim,
                    Err(rv) => return rv,
                };
                shim.intercept(stringify!($name), || match shim.real.$name {
                    None => CKR_FUNCTION_NOT_SUPPORTED,
                    Some(real) => function_list!(@forward shim real ($($arg),*) $($handler)?),
                })
            }
        )*

        /// The function list handed out by [`C_GetFunctionList`].
        static FUNCTION_LIST: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
            version: CK_VERSION { major: 2, minor: 40 },
            C_GetFunctionList: Some(C_GetFunctionList),
            $( $name: Some($name), )*
        };

        /// The name of every function in the list (what a fault plan may name).
        const FUNCTIONS: &[&str] = &["C_GetFunctionList", $(stringify!($name)),*];
    };
    (@forward $shim:ident $real:ident ($($arg:ident),*)) => {
        // SAFETY: the caller's arguments, passed on unchanged to the same function of the
        // real module.
        unsafe { $real($($arg),*) }
    };
    (@forward $shim:ident $real:ident ($($arg:ident),*) $handler:path) => {
        // SAFETY: as above; the handler forwards them unchanged too.
        unsafe { $handler($shim, $real, $($arg),*) }
    };
}

type Slot = CK_SLOT_ID;
type Session = CK_SESSION_HANDLE;
type Object = CK_OBJECT_HANDLE;
type Ulong = CK_ULONG;
type Bytes = *mut CK_BYTE;
type Utf8 = *mut CK_UTF8CHAR;
type Mechanism = *mut CK_MECHANISM;
type Template = *mut CK_ATTRIBUTE;

function_list! {
    C_Initialize(init_args: *mut c_void);
    C_Finalize(reserved: *mut c_void);
    C_GetInfo(info: *mut CK_INFO);
    C_GetSlotList(token_present: CK_BBOOL, slots: *mut CK_SLOT_ID, count: *mut Ulong);
    C_GetSlotInfo(slot: Slot, info: *mut CK_SLOT_INFO);
    C_GetTokenInfo(slot: Slot, info: *mut CK_TOKEN_INFO) => pin_counter::token_info;
    C_GetMechanismList(slot: Slot, mechanisms: *mut CK_MECHANISM_TYPE, count: *mut Ulong);
    C_GetMechanismInfo(slot: Slot, mechanism: CK_MECHANISM_TYPE, info: *mut CK_MECHANISM_INFO);
    C_InitToken(slot: Slot, so_pin: Utf8, so_pin_len: Ulong, label: Utf8) => pin_counter::init_token;
    C_InitPIN(session: Session, pin: Utf8, pin_len: Ulong) => pin_counter::init_pin;
    C_SetPIN(session: Session, old: Utf8, old_len: Ulong, new: Utf8, new_len: Ulong);
    C_OpenSession(slot: Slot, flags: CK_FLAGS, application: *mut c_void, notify: CK_NOTIFY, session: *mut Session);
    C_CloseSession(session: Session);
    C_CloseAllSessions(slot: Slot);
    C_GetSessionInfo(session: Session, info: *mut CK_SESSION_INFO);
    C_GetOperationState(session: Session, state: Bytes, state_len: *mut Ulong);
    C_SetOperationState(session: Session, state: Bytes, state_len: Ulong, encryption_key: Object, authentication_key: Object);
    C_Login(session: Session, user_type: CK_USER_TYPE, pin: Utf8, pin_len: Ulong) => pin_counter::login;
    C_Logout(session: Session);
    C_CreateObject(session: Session, template: Template, count: Ulong, object: *mut Object);
    C_CopyObject(session: Session, object: Object, template: Template, count: Ulong, new_object: *mut Object);
    C_DestroyObject(session: Session, object: Object);
    C_GetObjectSize(session: Session, object: Object, size: *mut Ulong);
    C_GetAttributeValue(session: Session, object: Object, template: Template, count: Ulong);
    C_SetAttributeValue(session: Session, object: Object, template: Template, count: Ulong);
    C_FindObjectsInit(session: Session, template: Template, count: Ulong);
    C_FindObjects(session: Session, objects: *mut Object, max: Ulong, count: *mut Ulong);
    C_FindObjectsFinal(session: Session);
    C_EncryptInit(session: Session, mechanism: Mechanism, key: Object);
    C_Encrypt(session: Session, data: Bytes, data_len: Ulong, out: Bytes, out_len: *mut Ulong);
    C_EncryptUpdate(session: Session, part: Bytes, part_len: Ulong, out: Bytes, out_len: *mut Ulong);
    C_EncryptFinal(session: Session, out: Bytes, out_len: *mut Ulong);
    C_DecryptInit(session: Session, mechanism: Mechanism, key: Object);
    C_Decrypt(session: Session, data: Bytes, data_len: Ulong, out: Bytes, out_len: *mut Ulong);
    C_DecryptUpdate(session: Session, part: Bytes, part_len: Ulong, out: Bytes, out_len: *mut Ulong);
    C_DecryptFinal(session: Session, out: Bytes, out_len: *mut Ulong);
    C_DigestInit(session: Session, mechanism: Mechanism);
    C_Digest(session: Session, data: Bytes, data_len: Ulong, out: Bytes, out_len: *mut Ulong);
    C_DigestUpdate(session: Session, part: Bytes, part_len: Ulong);
    C_DigestKey(session: Session, key: Object);
    C_DigestFinal(session: Session, out: Bytes, out_len: *mut Ulong);
    C_SignInit(session: Session, mechanism: Mechanism, key: Object);
    C_Sign(session: Session, data: Bytes, data_len: Ulong, signature: Bytes, signature_len: *mut Ulong);
    C_SignUpdate(session: Session, part: Bytes, part_len: Ulong);
    C_SignFinal(session: Session, signature: Bytes, signature_len: *mut Ulong);
    C_SignRecoverInit(session: Session, mechanism: Mechanism, key: Object);
    C_SignRecover(session: Session, data: Bytes, data_len: Ulong, signature: Bytes, signature_len: *mut Ulong);
    C_VerifyInit(session: Session, mechanism: Mechanism, key: Object);
    C_Verify(session: Session, data: Bytes, data_len: Ulong, signature: Bytes, signature_len: Ulong);
    C_VerifyUpdate(session: Session, part: Bytes, part_len: Ulong);
    C_VerifyFinal(session: Session, signature: Bytes, signature_len: Ulong);
    C_VerifyRecoverInit(session: Session, mechanism: Mechanism, key: Object);
    C_VerifyRecover(session: Session, signature: Bytes, signature_len: Ulong, data: Bytes, data_len: *mut Ulong);
    C_DigestEncryptUpdate(session: Session, part: Bytes, part_len: Ulong, out: Bytes, out_len: *mut Ulong);
    C_DecryptDigestUpdate(session: Session, part: Bytes, part_len: Ulong, out: Bytes, out_len: *mut Ulong);
    C_SignEncryptUpdate(session: Session, part: Bytes, part_len: Ulong, out: Bytes, out_len: *mut Ulong);
    C_DecryptVerifyUpdate(session: Session, part: Bytes, part_len: Ulong, out: Bytes, out_len: *mut Ulong);
    C_GenerateKey(session: Session, mechanism: Mechanism, template: Template, count: Ulong, key: *mut Object);
    C_GenerateKeyPair(session: Session, mechanism: Mechanism, public_template: Template, public_count: Ulong, private_template: Template, private_count: Ulong, public_key: *mut Object, private_key: *mut Object);
    C_WrapKey(session: Session, mechanism: Mechanism, wrapping_key: Object, key: Object, wrapped: Bytes, wrapped_len: *mut Ulong);
    C_UnwrapKey(session: Session, mechanism: Mechanism, unwrapping_key: Object, wrapped: Bytes, wrapped_len: Ulong, template: Template, count: Ulong, key: *mut Object);
    C_DeriveKey(session: Session, mechanism: Mechanism, base_key: Object, template: Template, count: Ulong, key: *mut Object);
    C_SeedRandom(session: Session, seed: Bytes, seed_len: Ulong);
    C_GenerateRandom(session: Session, out: Bytes, out_len: Ulong);
    C_GetFunctionStatus(session: Session);
    C_CancelFunction(session: Session);
    C_WaitForSlotEvent(flags: CK_FLAGS, slot: *mut Slot, reserved: *mut c_void);
}

/// Writes `BREAKGLASS_SHIM_LOADED` (the process id) as soon as the library is loaded, before any
/// function is called: a test can tell whether a process loaded this module at all.
extern "C" fn on_load() {
    if let Some(path) = std::env::var_os("BREAKGLASS_SHIM_LOADED") {
        let line = format!("{}\n", std::process::id());
        if let Err(e) = std::fs::write(&path, line) {
            eprintln!(
                "breakglass-pkcs11-shim: BREAKGLASS_SHIM_LOADED={}: {e}",
                std::path::Path::new(&path).display()
            );
        }
    }
}

/// Runs [`on_load`] when the dynamic loader maps the library (ELF initialiser).
#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_holds_every_function_of_pkcs11_2_40() {
        // 68 functions, C_GetFunctionList included; the struct literal above fails to compile
        // if one is missing, and this catches a name listed twice.
        assert_eq!(FUNCTIONS.len(), 68);
        let mut names = FUNCTIONS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 68);
        assert_eq!(FUNCTION_LIST.version.major, 2);
    }
}
