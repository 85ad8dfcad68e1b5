//! Throw-away SoftHSM tokens.
//!
//! [`SoftHsm::new`] makes a temporary directory with its own `softhsm2.conf` and token
//! directory and points this process's `SOFTHSM2_CONF` at it; [`SoftHsm::env`] gives the same
//! setting to child processes. The user's SoftHSM configuration is never read or written.
//!
//! A PKCS#11 module is initialised once per process and reads its configuration then, so each
//! test that uses a token must be its own process: run the suite with `cargo nextest`.
//!
//! ## Another PKCS#11 module
//!
//! `BREAKGLASS_TEST_PKCS11_MODULE` names the module to test against (default: SoftHSM from the
//! Debian package). For a module other than SoftHSM the tests cannot make tokens: provide one
//! uninitialised token slot the tests may initialise, and that module's own configuration
//! variable. PINs here are 8 characters or more, as many tokens require.

use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::UserType;
use secrecy::SecretString;

/// The SO PIN the fixtures use.
pub const SO_PIN: &str = "so-pin-12345678";
/// The user PIN the fixtures use.
pub const USER_PIN: &str = "user-pin-12345678";

/// Where Debian and Ubuntu install SoftHSM's module.
const SOFTHSM_PATHS: [&str; 3] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
];

/// The PKCS#11 module the tests use: `BREAKGLASS_TEST_PKCS11_MODULE`, else SoftHSM.
///
/// # Panics
/// When no module is found: SoftHSM is missing, and the message says how to install it.
pub fn module_path() -> PathBuf {
    if let Some(path) = std::env::var_os("BREAKGLASS_TEST_PKCS11_MODULE") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "BREAKGLASS_TEST_PKCS11_MODULE={} does not exist",
            path.display()
        );
        return path;
    }
    SOFTHSM_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no PKCS#11 module for the tests: SoftHSM is not installed (looked in {}). \
                 Run scripts/setup, or apt-get install softhsm2, or set BREAKGLASS_TEST_PKCS11_MODULE",
                SOFTHSM_PATHS.join(", ")
            )
        })
}

/// A SoftHSM configuration of its own, removed on drop.
pub struct SoftHsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl SoftHsm {
    /// Makes the directory and configuration and sets `SOFTHSM2_CONF` for this process.
    pub fn new() -> SoftHsm {
        let dir = tempfile::tempdir().expect("temp dir for the SoftHSM token");
        let conf = write_config(dir.path());
        set_process_env("SOFTHSM2_CONF", &conf);
        SoftHsm { dir, conf }
    }

    /// Makes the directory and configuration without touching this process's environment (for
    /// tests that only run child processes).
    pub fn for_children() -> SoftHsm {
        let dir = tempfile::tempdir().expect("temp dir for the SoftHSM token");
        let conf = write_config(dir.path());
        SoftHsm { dir, conf }
    }

    /// The configuration file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The directory holding the configuration and the tokens.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The module path (see [`module_path`]).
    pub fn module_path(&self) -> PathBuf {
        module_path()
    }

    /// The environment a child process needs to see these tokens.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("SOFTHSM2_CONF".to_owned(), self.conf.display().to_string())]
    }

    /// Initialises a token with `label` in a free slot and sets its user PIN, through a module
    /// context of its own (finalised before returning).
    pub fn init_token(&self, label: &str, so_pin: &str, user_pin: &str) {
        let pkcs11 = Pkcs11::new(module_path()).expect("load the PKCS#11 module");
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            Err(e) => panic!("C_Initialize: {e}"),
        }
        let slot = pkcs11
            .get_slots_with_token()
            .expect("list slots")
            .into_iter()
            .find(|s| {
                !pkcs11
                    .get_token_info(*s)
                    .expect("token info")
                    .token_initialized()
            })
            .expect("a slot with an uninitialised token");
        let so = SecretString::from(so_pin.to_owned());
        pkcs11.init_token(slot, &so, label).expect("C_InitToken");
        let session = pkcs11.open_rw_session(slot).expect("open session");
        session.login(UserType::So, Some(&so)).expect("SO login");
        session
            .init_pin(&SecretString::from(user_pin.to_owned()))
            .expect("C_InitPIN");
        drop(session);
        pkcs11.finalize().expect("C_Finalize");
    }
}

impl Default for SoftHsm {
    fn default() -> SoftHsm {
        SoftHsm::new()
    }
}

fn write_config(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("token directory");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .expect("write softhsm2.conf");
    conf
}

/// Sets an environment variable of this test process.
fn set_process_env(name: &str, value: &Path) {
    // SAFETY: called at the start of a test, which nextest runs alone in its own process,
    // before the test starts threads or loads the PKCS#11 module.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(name, value)
    };
}

/// Imports a P-256 private key (the 32-byte scalar) into the token labelled `token_label` as a
/// derive-capable, sensitive token object with `id`; for checking known-answer vectors against
/// the token (a real vault never imports keys: they are generated inside the token).
pub fn import_p256_private_key(token_label: &str, user_pin: &str, id: &[u8], scalar: &[u8]) {
    let pkcs11 = Pkcs11::new(module_path()).expect("load the PKCS#11 module");
    pkcs11
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    let slot = pkcs11
        .get_slots_with_initialized_token()
        .expect("list slots")
        .into_iter()
        .find(|s| {
            pkcs11
                .get_token_info(*s)
                .expect("token info")
                .label()
                .trim_end()
                == token_label
        })
        .expect("the token to import into");
    let session = pkcs11.open_rw_session(slot).expect("open session");
    session
        .login(
            UserType::User,
            Some(&SecretString::from(user_pin.to_owned())),
        )
        .expect("user login");
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::EcParams(vec![
                0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
            ]),
            Attribute::Value(scalar.to_vec()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Derive(true),
            Attribute::Id(id.to_vec()),
        ])
        .expect("C_CreateObject");
    drop(session);
    pkcs11.finalize().expect("C_Finalize");
}
