//! PKCS#11 token access through `cryptoki`.
//!
//! - A [`Module`] is loaded and initialised once per process.
//! - Tokens are found by label or serial ([`TokenSelector`]), never by slot index: slot numbers
//!   change when tokens are added or removed.
//! - A [`TokenSession`] serves one batch of operations; the keys it uses are looked up once and
//!   remembered for the rest of the session.
//! - Logging in reads the token's PIN flags first and refuses a try that could lock it.
//!
//! The sealing key (P-256, derive only) answers one ECDH per unseal through [`TokenDh`], which
//! implements the HPKE [`DhOracle`](crate::hpke::DhOracle). The audit key (P-256, sign only)
//! signs audit checkpoints. Neither private key can leave the token.

mod check;
mod data;
mod error;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Slot, TokenInfo};
use ring::rand::SecureRandom;
use secrecy::SecretString;

pub use check::{Check, CheckReport, QUORUM_PIN_LEN, Status as CheckStatus};
pub use data::TokenData;
pub use error::{HsmError, PinRole, Pkcs11Failure, Returned};

use crate::hpke::{DhOracle, Kem};
use crate::secret::SecretBytes;

/// DER encoding of the named curve P-256 (OID 1.2.840.10045.3.1.7), the value of `CKA_EC_PARAMS`.
const P256_EC_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Length of an uncompressed SEC1 P-256 point (`04 || X || Y`).
pub const P256_POINT_LEN: usize = 65;

/// Length of a random `CKA_ID` given to every key breakglass generates.
const KEY_ID_LEN: usize = 16;

/// A loaded and initialised PKCS#11 module.
pub struct Module {
    context: Pkcs11,
    path: PathBuf,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("path", &self.path).finish()
    }
}

/// How a token is selected: by what is printed on it, never by slot index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSelector {
    /// The token label (`CKA_LABEL` of the token, up to 32 characters).
    Label(String),
    /// The token serial number.
    Serial(String),
}

impl std::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSelector::Label(label) => write!(f, "labelled {label:?}"),
            TokenSelector::Serial(serial) => write!(f, "with serial {serial:?}"),
        }
    }
}

/// The PIN state a token reports (`CKF_*_PIN_*` flags), read before every login.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinState {
    /// The user PIN has been set.
    pub user_initialized: bool,
    /// A wrong user PIN has been entered since the last success.
    pub user_count_low: bool,
    /// One more wrong user PIN locks it.
    pub user_final_try: bool,
    /// The user PIN is locked.
    pub user_locked: bool,
    /// A wrong SO PIN has been entered since the last success.
    pub so_count_low: bool,
    /// One more wrong SO PIN locks it.
    pub so_final_try: bool,
    /// The SO PIN is locked.
    pub so_locked: bool,
}

impl PinState {
    fn from_info(info: &TokenInfo) -> PinState {
        PinState {
            user_initialized: info.user_pin_initialized(),
            user_count_low: info.user_pin_count_low(),
            user_final_try: info.user_pin_final_try(),
            user_locked: info.user_pin_locked(),
            so_count_low: info.so_pin_count_low(),
            so_final_try: info.so_pin_final_try(),
            so_locked: info.so_pin_locked(),
        }
    }

    /// Whether a login as `role` may be tried, given these flags.
    ///
    /// A locked PIN is never tried; a PIN at its final try only when `force` is set. A low
    /// count is allowed and returned as [`LoginWarning::CountLow`] for the caller to show.
    pub fn check_login(
        &self,
        token: &str,
        role: PinRole,
        force: bool,
    ) -> Result<Option<LoginWarning>, HsmError> {
        let (locked, final_try, count_low) = match role {
            PinRole::User => (self.user_locked, self.user_final_try, self.user_count_low),
            PinRole::SecurityOfficer => (self.so_locked, self.so_final_try, self.so_count_low),
        };
        let token = token.to_owned();
        if locked {
            return Err(HsmError::PinLocked {
                token,
                role,
                returned: None,
            });
        }
        if final_try && !force {
            return Err(HsmError::PinFinalTry { token, role });
        }
        Ok(if final_try {
            Some(LoginWarning::FinalTryForced)
        } else if count_low {
            Some(LoginWarning::CountLow)
        } else {
            None
        })
    }
}

/// Something the caller should tell a person after a successful login check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginWarning {
    /// Wrong PINs were entered since the last success: few tries may remain.
    CountLow,
    /// The login was forced although the PIN was at its final try.
    FinalTryForced,
}

/// What identifies a token and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenDescription {
    /// The token label.
    pub label: String,
    /// The serial number.
    pub serial: String,
    /// The manufacturer.
    pub manufacturer: String,
    /// The model.
    pub model: String,
    /// The PIN flags.
    pub pins: PinState,
    /// The PIN lengths the token accepts (`ulMinPinLen`, `ulMaxPinLen`).
    pub pin_limits: crate::trust::token_pin::PinLimits,
}

impl TokenDescription {
    fn from_info(info: &TokenInfo) -> TokenDescription {
        TokenDescription {
            label: info.label().trim_end().to_owned(),
            serial: info.serial_number().trim_end().to_owned(),
            manufacturer: info.manufacturer_id().trim_end().to_owned(),
            model: info.model().trim_end().to_owned(),
            pins: PinState::from_info(info),
            pin_limits: crate::trust::token_pin::PinLimits {
                min: u64::try_from(info.min_pin_length()).unwrap_or(u64::MAX),
                max: u64::try_from(info.max_pin_length()).unwrap_or(u64::MAX),
            },
        }
    }
}

/// A token found in a module.
#[derive(Debug, Clone)]
pub struct Token {
    slot: Slot,
    description: TokenDescription,
}

impl Token {
    /// What identifies the token.
    pub fn description(&self) -> &TokenDescription {
        &self.description
    }

    /// The token label.
    pub fn label(&self) -> &str {
        &self.description.label
    }
}

/// Which of the two breakglass keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// The sealing key: P-256, derive only (ECDH for HPKE decapsulation).
    Seal,
    /// The audit key: P-256, sign only (audit checkpoints).
    Audit,
}

impl KeyPurpose {
    fn suffix(self) -> &'static str {
        match self {
            KeyPurpose::Seal => "seal",
            KeyPurpose::Audit => "audit",
        }
    }
}

/// A key pair in a token: its `CKA_ID`, label and public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    /// The `CKA_ID` shared by the private and public objects.
    pub id: Vec<u8>,
    /// The label, `breakglass:<vault-id>:seal` or `:audit`.
    pub label: String,
    /// The public key, uncompressed SEC1 (65 bytes).
    pub public_key: Vec<u8>,
}

impl Module {
    /// Loads the module at `path` and initialises it (OS locking).
    pub fn open(path: &Path) -> Result<Module, HsmError> {
        let load_error = |source| HsmError::ModuleLoad {
            module: path.to_path_buf(),
            cause: Pkcs11Failure(source),
        };
        let context = Pkcs11::new(path).map_err(load_error)?;
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(load_error(e)),
        }
        Ok(Module {
            context,
            path: path.to_path_buf(),
        })
    }

    /// The module path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn module_error(&self, operation: &'static str) -> impl Fn(Pkcs11Error) -> HsmError + '_ {
        move |source| HsmError::Token {
            token: self.path.display().to_string(),
            operation,
            cause: Pkcs11Failure(source),
        }
    }

    /// Every initialised token present.
    pub fn tokens(&self) -> Result<Vec<Token>, HsmError> {
        let slots = self
            .context
            .get_slots_with_initialized_token()
            .map_err(self.module_error("listing slots"))?;
        slots
            .into_iter()
            .map(|slot| {
                let info = self
                    .context
                    .get_token_info(slot)
                    .map_err(self.module_error("reading token information"))?;
                Ok(Token {
                    slot,
                    description: TokenDescription::from_info(&info),
                })
            })
            .collect()
    }

    /// The one token matching `selector`.
    pub fn find_token(&self, selector: &TokenSelector) -> Result<Token, HsmError> {
        let tokens = self.tokens()?;
        let matching: Vec<&Token> = tokens
            .iter()
            .filter(|t| match selector {
                TokenSelector::Label(label) => &t.description.label == label,
                TokenSelector::Serial(serial) => &t.description.serial == serial,
            })
            .collect();
        match matching.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(HsmError::TokenNotFound {
                wanted: selector.to_string(),
                module: self.path.clone(),
                present: tokens.iter().map(|t| t.description.label.clone()).collect(),
            }),
            several => Err(HsmError::AmbiguousLabel {
                label: several[0].description.label.clone(),
                serials: several
                    .iter()
                    .map(|t| t.description.serial.clone())
                    .collect(),
            }),
        }
    }

    /// Initialises the token in the first slot holding an uninitialised one, with the given
    /// label and SO PIN, and returns it. The user PIN is set afterwards with
    /// [`TokenSession::init_user_pin`].
    pub fn init_token(&self, label: &str, so_pin: &SecretString) -> Result<Token, HsmError> {
        let slots = self
            .context
            .get_slots_with_token()
            .map_err(self.module_error("listing slots"))?;
        for slot in slots {
            let info = self
                .context
                .get_token_info(slot)
                .map_err(self.module_error("reading token information"))?;
            if info.token_initialized() {
                continue;
            }
            self.context.init_token(slot, so_pin, label).map_err(|e| {
                HsmError::from_pkcs11(
                    label,
                    "initialising the token",
                    Some(PinRole::SecurityOfficer),
                    e,
                )
            })?;
            return self.find_token(&TokenSelector::Label(label.to_owned()));
        }
        Err(HsmError::NoFreeSlot {
            module: self.path.clone(),
        })
    }

    /// Opens a read-write session on `token`. Its PIN state is read afresh at login.
    pub fn open_session(&self, token: &Token) -> Result<TokenSession<'_>, HsmError> {
        let session = self
            .context
            .open_rw_session(token.slot)
            .map_err(|e| HsmError::from_pkcs11(token.label(), "opening a session", None, e))?;
        Ok(TokenSession {
            module: self,
            session,
            token: token.clone(),
            private_keys: RefCell::new(HashMap::new()),
        })
    }
}

/// A session on one token, for one batch of operations. Private key handles are looked up once.
pub struct TokenSession<'m> {
    module: &'m Module,
    session: Session,
    token: Token,
    private_keys: RefCell<HashMap<Vec<u8>, ObjectHandle>>,
}

impl std::fmt::Debug for TokenSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSession")
            .field("token", &self.token.description.label)
            .finish()
    }
}

impl TokenSession<'_> {
    /// The token this session is on.
    pub fn token(&self) -> &Token {
        &self.token
    }

    fn label(&self) -> &str {
        &self.token.description.label
    }

    fn error(&self, operation: &'static str) -> impl Fn(Pkcs11Error) -> HsmError + '_ {
        move |source| HsmError::from_pkcs11(self.label(), operation, None, source)
    }

    /// The token's PIN flags, read now.
    pub fn pin_state(&self) -> Result<PinState, HsmError> {
        let info = self
            .module
            .context
            .get_token_info(self.token.slot)
            .map_err(self.error("reading token information"))?;
        Ok(PinState::from_info(&info))
    }

    /// Logs in as `role`, after reading the PIN flags: a locked PIN is never tried, a PIN at its
    /// final try only with `force`. Returns a warning the caller should show, if any.
    pub fn login(
        &self,
        role: PinRole,
        pin: &SecretString,
        force: bool,
    ) -> Result<Option<LoginWarning>, HsmError> {
        let warning = self.pin_state()?.check_login(self.label(), role, force)?;
        let user_type = match role {
            PinRole::User => UserType::User,
            PinRole::SecurityOfficer => UserType::So,
        };
        match self.session.login(user_type, Some(pin)) {
            Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(warning),
            Err(e) => Err(HsmError::from_pkcs11(
                self.label(),
                "logging in",
                Some(role),
                e,
            )),
        }
    }

    /// Sets the user PIN (the session must be logged in as the security officer).
    pub fn init_user_pin(&self, pin: &SecretString) -> Result<(), HsmError> {
        self.session
            .init_pin(pin)
            .map_err(self.error("setting the user PIN"))
    }

    /// Changes the PIN of whoever is logged in (or the user PIN when nobody is).
    pub fn change_pin(&self, old: &SecretString, new: &SecretString) -> Result<(), HsmError> {
        self.session.set_pin(old, new).map_err(|e| {
            HsmError::from_pkcs11(self.label(), "changing a PIN", Some(PinRole::User), e)
        })
    }

    /// Generates a P-256 key pair for `purpose` inside the token, labelled
    /// `breakglass:<vault_id>:seal|audit` with a random `CKA_ID`. The private key is a token
    /// object, private, sensitive and never extractable; the sealing key can only derive, the
    /// audit key can only sign.
    pub fn generate_key_pair(
        &self,
        vault_id: &str,
        purpose: KeyPurpose,
    ) -> Result<KeyRef, HsmError> {
        self.generate_pair(vault_id, purpose, true)
    }

    /// [`generate_key_pair`](Self::generate_key_pair) with the same templates, as token objects
    /// or (`token_object` false: `hsm check`) as session objects that vanish with the session.
    fn generate_pair(
        &self,
        vault_id: &str,
        purpose: KeyPurpose,
        token_object: bool,
    ) -> Result<KeyRef, HsmError> {
        let mut id = vec![0u8; KEY_ID_LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut id)
            .map_err(|_| HsmError::BadPublicKey {
                token: self.label().to_owned(),
                reason: "the operating system's random generator failed".to_owned(),
            })?;
        let label = format!("breakglass:{vault_id}:{}", purpose.suffix());
        let derive = purpose == KeyPurpose::Seal;
        let sign = purpose == KeyPurpose::Audit;
        let public_template = [
            Attribute::Token(token_object),
            Attribute::Private(false),
            Attribute::KeyType(KeyType::EC),
            Attribute::EcParams(P256_EC_PARAMS.to_vec()),
            Attribute::Verify(sign),
            Attribute::Derive(false),
            Attribute::Id(id.clone()),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let private_template = [
            Attribute::Token(token_object),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Derive(derive),
            Attribute::Sign(sign),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Id(id.clone()),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let (public, private) = self
            .session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &public_template,
                &private_template,
            )
            .map_err(self.error("generating a P-256 key pair"))?;
        self.private_keys.borrow_mut().insert(id.clone(), private);
        let public_key = self.read_ec_point(public)?;
        Ok(KeyRef {
            id,
            label,
            public_key,
        })
    }

    /// The public key of the key pair with `id`, uncompressed SEC1 (65 bytes).
    pub fn public_key(&self, id: &[u8]) -> Result<Vec<u8>, HsmError> {
        let public = self.find_one(ObjectClass::PUBLIC_KEY, id, "public key")?;
        self.read_ec_point(public)
    }

    /// The key pairs with `label` on the token (both breakglass labels are unique per vault).
    pub fn find_key_by_label(&self, label: &str) -> Result<KeyRef, HsmError> {
        let template = [
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let found = self
            .session
            .find_objects(&template)
            .map_err(self.error("finding a key"))?;
        let public = *found.first().ok_or_else(|| HsmError::KeyNotFound {
            token: self.label().to_owned(),
            what: "public key labelled so",
            id: label.to_owned(),
        })?;
        let attributes = self
            .session
            .get_attributes(public, &[AttributeType::Id])
            .map_err(self.error("reading a key's CKA_ID"))?;
        let id = attributes
            .into_iter()
            .find_map(|a| match a {
                Attribute::Id(id) => Some(id),
                _ => None,
            })
            .unwrap_or_default();
        let public_key = self.read_ec_point(public)?;
        Ok(KeyRef {
            id,
            label: label.to_owned(),
            public_key,
        })
    }

    /// ECDH with the private key `id` and the peer's uncompressed P-256 point
    /// (`CKM_ECDH1_DERIVE`, `CKD_NULL`): the 32-byte x-coordinate of the shared point. The
    /// derived secret object is read and destroyed at once, also when reading fails.
    pub fn ecdh(&self, id: &[u8], peer_public: &[u8]) -> Result<SecretBytes, HsmError> {
        check_p256_point(self.label(), peer_public)?;
        let private = self.private_key(id)?;
        let params = Ecdh1DeriveParams::new(EcKdf::null(), peer_public);
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::ValueLen(32.into()),
        ];
        let derived = self
            .session
            .derive_key(&Mechanism::Ecdh1Derive(params), private, &template)
            .map_err(self.error("ECDH with the sealing key"))?;
        let read = self
            .session
            .get_attributes(derived, &[AttributeType::Value]);
        let destroyed = self.session.destroy_object(derived);
        let attributes = read.map_err(self.error("reading the ECDH result"))?;
        destroyed.map_err(self.error("destroying the ECDH result"))?;
        for attribute in attributes {
            if let Attribute::Value(value) = attribute {
                return Ok(SecretBytes::from(value));
            }
        }
        Err(HsmError::BadPublicKey {
            token: self.label().to_owned(),
            reason: "the token returned no value for the ECDH result".to_owned(),
        })
    }

    /// Signs `message` with the audit key `id`: SHA-256 in software (not every token has
    /// `CKM_ECDSA_SHA256`), then `CKM_ECDSA` in the token. Returns the 64-byte `r || s`.
    pub fn sign(&self, id: &[u8], message: &[u8]) -> Result<Vec<u8>, HsmError> {
        let private = self.private_key(id)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, message);
        self.session
            .sign(&Mechanism::Ecdsa, private, digest.as_ref())
            .map_err(self.error("signing with the audit key"))
    }

    /// The sealing key `key` as an HPKE DH oracle.
    pub fn dh_oracle<'s>(&'s self, key: &'s KeyRef) -> TokenDh<'s> {
        TokenDh { session: self, key }
    }

    /// Reads boolean and value attributes of the private key `id` (for checks and tests).
    pub fn private_key_attributes(
        &self,
        id: &[u8],
        attributes: &[AttributeType],
    ) -> Result<Vec<Attribute>, HsmError> {
        let private = self.private_key(id)?;
        self.session
            .get_attributes(private, attributes)
            .map_err(self.error("reading private key attributes"))
    }

    fn private_key(&self, id: &[u8]) -> Result<ObjectHandle, HsmError> {
        if let Some(handle) = self.private_keys.borrow().get(id) {
            return Ok(*handle);
        }
        let handle = self.find_one(ObjectClass::PRIVATE_KEY, id, "private key")?;
        self.private_keys.borrow_mut().insert(id.to_vec(), handle);
        Ok(handle)
    }

    fn find_one(
        &self,
        class: ObjectClass,
        id: &[u8],
        what: &'static str,
    ) -> Result<ObjectHandle, HsmError> {
        let template = [Attribute::Class(class), Attribute::Id(id.to_vec())];
        let found = self
            .session
            .find_objects(&template)
            .map_err(self.error("finding a key"))?;
        found.first().copied().ok_or_else(|| HsmError::KeyNotFound {
            token: self.label().to_owned(),
            what,
            id: hex::encode(id),
        })
    }

    fn read_ec_point(&self, public: ObjectHandle) -> Result<Vec<u8>, HsmError> {
        let attributes = self
            .session
            .get_attributes(public, &[AttributeType::EcPoint])
            .map_err(self.error("reading a public key (C_GetAttributeValue CKA_EC_POINT)"))?;
        let raw = attributes
            .into_iter()
            .find_map(|a| match a {
                Attribute::EcPoint(point) => Some(point),
                _ => None,
            })
            .unwrap_or_default();
        let point = unwrap_ec_point(&raw).to_vec();
        check_p256_point(self.label(), &point)?;
        Ok(point)
    }
}

/// `CKA_EC_POINT` is a DER OCTET STRING around the SEC1 point (PKCS#11 2.20 onwards); some tokens
/// return the bare point. Either way, the bare point comes out.
pub fn unwrap_ec_point(raw: &[u8]) -> &[u8] {
    match raw {
        [0x04, len, rest @ ..]
            if usize::from(*len) == rest.len() && rest.len() == P256_POINT_LEN =>
        {
            rest
        }
        [0x04, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        _ => raw,
    }
}

fn check_p256_point(token: &str, point: &[u8]) -> Result<(), HsmError> {
    let bad = |reason: &str| HsmError::BadPublicKey {
        token: token.to_owned(),
        reason: reason.to_owned(),
    };
    if point.len() != P256_POINT_LEN || point[0] != 0x04 {
        return Err(bad(
            "a P-256 public key must be a 65-byte uncompressed point (04 || X || Y)",
        ));
    }
    p256::PublicKey::from_sec1_bytes(point)
        .map_err(|_| bad("the public key is not a point on P-256"))?;
    Ok(())
}

/// The token's sealing key answering HPKE's `DH(skR, pkE)`.
pub struct TokenDh<'s> {
    session: &'s TokenSession<'s>,
    key: &'s KeyRef,
}

impl DhOracle for TokenDh<'_> {
    fn kem(&self) -> Kem {
        Kem::P256HkdfSha256
    }

    fn public_key(&self) -> Vec<u8> {
        self.key.public_key.clone()
    }

    fn dh(&self, peer: &[u8]) -> Result<SecretBytes, crate::Error> {
        Ok(self.session.ecdh(&self.key.id, peer)?)
    }
}

/// The token's audit key signing audit checkpoints.
pub struct TokenSigner<'s> {
    session: &'s TokenSession<'s>,
    key_id: Vec<u8>,
}

impl TokenSession<'_> {
    /// The audit key with CKA_ID `key_id` as a checkpoint signer.
    pub fn audit_signer(&self, key_id: &[u8]) -> TokenSigner<'_> {
        TokenSigner {
            session: self,
            key_id: key_id.to_vec(),
        }
    }
}

impl crate::audit::CheckpointSigner for TokenSigner<'_> {
    fn key_id(&self) -> String {
        hex::encode(&self.key_id)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, crate::Error> {
        Ok(self.session.sign(&self.key_id, message)?)
    }
}

/// Where a `--dev-softhsm` vault keeps its token: `<vault>/softhsm/`.
pub const DEV_SOFTHSM_DIR: &str = "softhsm";

/// Debian and Ubuntu paths of SoftHSM's module.
const SOFTHSM_MODULE_PATHS: [&str; 3] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
];

/// The installed SoftHSM module, if any.
pub fn softhsm_module() -> Option<PathBuf> {
    SOFTHSM_MODULE_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Writes (or rewrites, with the vault's current absolute path) the SoftHSM configuration of a
/// `--dev-softhsm` vault, and its token directory; returns the configuration's path. The
/// process must point `SOFTHSM2_CONF` at it before loading the module.
pub fn write_dev_softhsm_conf(vault_dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let root = std::path::absolute(vault_dir)?.join(DEV_SOFTHSM_DIR);
    let tokens = root.join("tokens");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&tokens)?;
    let conf = root.join("softhsm2.conf");
    let text = format!(
        "# SoftHSM configuration of a breakglass --dev-softhsm vault (a software token: for trials only)\n\
         directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
        tokens.display()
    );
    if std::fs::read_to_string(&conf).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&conf, text)?;
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(conf)
}
