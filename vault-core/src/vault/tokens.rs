//! Tokens: which enrolled token is present, where its PINs come from (derived from the quorum
//! secret, or asked of the caller through [`PinProvider`]) and logging in. Every operation that
//! uses a token finds it and logs in to it here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::audit::CheckpointSigner;
use crate::hsm::{
    HsmError, KeyRef, LoginWarning, Module, PinRole, Token, TokenDescription, TokenSelector,
    TokenSession,
};
use crate::manifest::{HsmEnrollment, PinDerivation, PinSource};
use crate::quorum::Collector;
use crate::trust::machine::{MODULE_VAR, MachineConfig, ModuleSource, choose_modules};

use super::{Vault, VaultError};

/// Asks the caller for PINs that do not come from the quorum (environment, file, terminal).
pub trait PinProvider {
    /// The PIN for `role` on the token `label`, from `source`.
    fn pin(
        &self,
        label: &str,
        role: PinRole,
        source: &PinSource,
    ) -> Result<SecretString, crate::Error>;
}

/// Which token to use at init or to enrol.
#[derive(Debug, Clone)]
pub struct TokenTarget {
    /// The PKCS#11 module.
    pub module: PathBuf,
    /// The token label.
    pub label: String,
    /// Initialise the token first (it must be uninitialised).
    pub init_token: bool,
    /// A SoftHSM configuration inside the vault (relative path), for `--dev-softhsm` vaults.
    pub softhsm_conf: Option<String>,
}

/// Which enrolled token an operation may use, and how to log in to it.
#[derive(Clone, Copy)]
pub struct TokenChoice<'a> {
    /// PINs not derived from the quorum.
    pub pins: &'a dyn PinProvider,
    /// Only the token with this label (otherwise the first enrolled token that is present).
    pub only: Option<&'a str>,
    /// Log in even if the token says the PIN is at its final try.
    pub force_pin: bool,
}

impl std::fmt::Debug for TokenChoice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenChoice")
            .field("only", &self.only)
            .field("force_pin", &self.force_pin)
            .finish_non_exhaustive()
    }
}

/// Where the PINs of one operation come from: the quorum secret when it is at hand, the caller
/// otherwise.
#[derive(Clone, Copy)]
pub(super) struct Pins<'a> {
    /// The quorum secret, when the operation has recombined it.
    pub q: Option<&'a [u8]>,
    /// The vault (part of the derivation).
    pub vault_id: &'a str,
    /// The caller.
    pub provider: &'a dyn PinProvider,
}

impl Pins<'_> {
    /// The PIN for `role` on `token`, from `source` (derived from the quorum as
    /// `derivation` says).
    pub fn pin(
        &self,
        token: &TokenDescription,
        derivation: Option<PinDerivation>,
        role: PinRole,
        source: &PinSource,
    ) -> Result<SecretString, crate::Error> {
        match (source, self.q) {
            (PinSource::Quorum, Some(q)) => derived_pin(q, self.vault_id, derivation, token, role),
            (PinSource::Quorum, None) => Err(VaultError::Layout(
                "the PIN comes from the quorum, which is not at hand".into(),
            )
            .into()),
            (other, _) => self.provider.pin(&token.label, role, other),
        }
    }

    /// Logs `session` in as `role`, with the PIN from `source`.
    pub fn login(
        &self,
        session: &TokenSession<'_>,
        derivation: Option<PinDerivation>,
        role: PinRole,
        source: &PinSource,
        force: bool,
    ) -> Result<Option<LoginWarning>, crate::Error> {
        let pin = self.pin(session.token().description(), derivation, role, source)?;
        Ok(session.login(role, &pin, force)?)
    }
}

/// The PIN the quorum secret `q` gives `role` on `token`: per token (`pin/2`, fitted to the
/// token's PIN lengths) for tokens enrolled with it, else the vault-wide `pin/1`.
pub(super) fn derived_pin(
    q: &[u8],
    vault_id: &str,
    derivation: Option<PinDerivation>,
    token: &TokenDescription,
    role: PinRole,
) -> Result<SecretString, crate::Error> {
    match derivation {
        None => Ok(quorum_pin(q, vault_id, role)),
        Some(PinDerivation::PerToken) => Ok(crate::trust::token_pin::token_pin(
            q,
            vault_id,
            &token.serial,
            role,
            token.pin_limits,
        )
        .map_err(|cause| VaultError::TokenPin {
            label: token.label.clone(),
            cause,
        })?),
    }
}

/// The token PIN of vaults made before per-token PINs (`pin/1`): 32 hex characters of
/// HMAC-SHA256(Q, label), the same on every token of the vault.
pub(super) fn quorum_pin(q: &[u8], vault_id: &str, role: PinRole) -> SecretString {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, q);
    let role = match role {
        PinRole::User => "user",
        PinRole::SecurityOfficer => "so",
    };
    let tag = ring::hmac::sign(
        &key,
        format!("breakglass token pin/1\n{vault_id}\n{role}").as_bytes(),
    );
    SecretString::from(hex::encode(&tag.as_ref()[..16]))
}

/// The PKCS#11 modules an operation uses, each loaded once (a module is initialised once per
/// process); a module that does not load keeps the reason.
pub(super) struct Modules {
    loaded: BTreeMap<PathBuf, Result<Module, Arc<HsmError>>>,
    /// The module this machine names (`BREAKGLASS_PKCS11_MODULE`, else `config.json`): every
    /// enrolled token is looked for in it. `None`: each token's enrolment hint, read from the
    /// authenticated manifest.
    machine: Option<PathBuf>,
}

impl Modules {
    /// The module an enrolled token is looked for in.
    pub fn of(&self, enrollment: &HsmEnrollment) -> Result<&Module, Arc<HsmError>> {
        self.get(
            self.machine
                .as_deref()
                .unwrap_or(Path::new(&enrollment.module)),
        )
    }

    /// The module at `path`, or why it is not at hand.
    pub fn get(&self, path: &Path) -> Result<&Module, Arc<HsmError>> {
        match self.loaded.get(path) {
            Some(Ok(module)) => Ok(module),
            Some(Err(reason)) => Err(reason.clone()),
            None => Err(Arc::new(HsmError::TokenNotFound {
                wanted: "in a module this operation did not load".into(),
                module: path.to_path_buf(),
                present: Vec::new(),
            })),
        }
    }

    /// The enrolled token, when it is present.
    pub fn find<'m>(&'m self, enrollment: &HsmEnrollment) -> Result<Present<'m>, Arc<HsmError>> {
        let module = self.of(enrollment)?;
        let token = module
            .find_token(&TokenSelector::Serial(enrollment.serial.clone()))
            .map_err(Arc::new)?;
        Ok(Present {
            module,
            token,
            enrollment: enrollment.clone(),
        })
    }
}

/// An enrolled token that is present.
pub(super) struct Present<'m> {
    /// Its module.
    pub module: &'m Module,
    /// The token.
    pub token: Token,
    /// Its manifest entry.
    pub enrollment: HsmEnrollment,
}

impl<'m> Present<'m> {
    /// A session on the token, logged in as the user.
    pub fn login(
        &self,
        pins: &Pins<'_>,
        force_pin: bool,
    ) -> Result<(TokenSession<'m>, Option<LoginWarning>), crate::Error> {
        let session = self.module.open_session(&self.token)?;
        let warning = pins.login(
            &session,
            self.enrollment.pin_derivation,
            PinRole::User,
            &self.enrollment.pin,
            force_pin,
        )?;
        Ok((session, warning))
    }
}

impl Vault {
    /// Opens a session on the first enrolled token that is present (or the one labelled
    /// `choice.only`), logged in as the user, and runs `action` with it, its entry, its sealing
    /// key and any PIN warning.
    pub(super) fn with_token<T>(
        &self,
        q: Option<&[u8]>,
        choice: TokenChoice<'_>,
        action: impl FnOnce(
            &TokenSession<'_>,
            &HsmEnrollment,
            &KeyRef,
            Option<LoginWarning>,
        ) -> Result<T, crate::Error>,
    ) -> Result<T, crate::Error> {
        let mut candidates = self
            .manifest()
            .hsms
            .iter()
            .filter(|h| choice.only.is_none_or(|o| o == h.label))
            .peekable();
        if candidates.peek().is_none() {
            return Err(VaultError::NoSuchToken {
                label: choice.only.unwrap_or_default().to_owned(),
            }
            .into());
        }
        let modules = self.open_modules(None)?;
        let pins = self.pins(q, choice.pins);
        let mut last_error = None;
        for enrollment in candidates {
            match modules.find(enrollment) {
                Ok(present) => {
                    let (session, warning) = present.login(&pins, choice.force_pin)?;
                    let key = self.seal_key_of(enrollment)?;
                    return action(&session, enrollment, &key, warning);
                }
                Err(reason) => last_error = Some(reason),
            }
        }
        Err(self.no_token(last_error))
    }

    /// Runs `action` with the audit key of the token that holds it, logged in with the PIN
    /// the collected shares derive (or `pins` gives): for a tool that appends many entries and
    /// signs their checkpoints in one session (the benchmark's history builder). Writes
    /// nothing itself.
    pub fn with_audit_signer<T>(
        &self,
        shares: &Collector,
        pins: &dyn PinProvider,
        action: impl FnOnce(&dyn CheckpointSigner) -> Result<T, crate::Error>,
    ) -> Result<T, crate::Error> {
        let quorum = self.recombine(shares)?;
        let choice = TokenChoice {
            pins,
            only: Some(&self.manifest().audit.token),
            force_pin: false,
        };
        self.with_token(
            Some(quorum.secret.expose_secret()),
            choice,
            |session, _, _, _| action(&session.audit_signer(&self.keys.audit_key_id)),
        )
    }

    /// Where this vault's PINs come from, with the quorum secret `q` when it is at hand.
    pub(super) fn pins<'a>(
        &'a self,
        q: Option<&'a [u8]>,
        provider: &'a dyn PinProvider,
    ) -> Pins<'a> {
        Pins {
            q,
            vault_id: &self.manifest().vault_id,
            provider,
        }
    }

    /// None of the enrolled tokens could be used, the last for `last_error`.
    fn no_token(&self, last_error: Option<Arc<HsmError>>) -> crate::Error {
        VaultError::NoToken {
            tokens: self
                .manifest()
                .hsms
                .iter()
                .map(|h| h.label.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            last_error,
        }
        .into()
    }

    /// The sealing key of an enrolled token, as a key reference.
    pub(super) fn seal_key_of(&self, enrollment: &HsmEnrollment) -> Result<KeyRef, crate::Error> {
        let keys = self
            .manifest()
            .hsms
            .iter()
            .zip(&self.keys.tokens)
            .find(|(h, _)| h.serial == enrollment.serial)
            .map(|(_, keys)| keys)
            .ok_or_else(|| VaultError::NoSuchToken {
                label: enrollment.label.clone(),
            })?;
        Ok(KeyRef {
            id: keys.seal_key_id.clone(),
            label: format!("breakglass:{}:seal", self.manifest().vault_id),
            public_key: keys.seal_public_key.clone(),
        })
    }

    /// Every module the enrolled tokens (and `extra`, a token being enrolled) use, each loaded
    /// once. Code is loaded only from what this machine names (`BREAKGLASS_PKCS11_MODULE`,
    /// else `<config>/config.json`) or, failing that, from the enrolment hints of the
    /// authenticated manifest: never from a path the vault directory alone names.
    pub(super) fn open_modules(&self, extra: Option<&Path>) -> Result<Modules, crate::Error> {
        let machine = MachineConfig::read(&self.config)?;
        let choices = choose_modules(
            None,
            std::env::var_os(MODULE_VAR).as_deref(),
            &machine,
            Some(&self.trusted),
        );
        let machine = choices
            .first()
            .filter(|c| !matches!(c.source, ModuleSource::AuthenticatedManifest { .. }))
            .map(|c| c.path.clone());
        let mut paths: Vec<PathBuf> = choices
            .into_iter()
            .map(|c| c.path)
            .chain(extra.map(Path::to_path_buf))
            .collect();
        paths.sort();
        paths.dedup();
        Ok(Modules {
            loaded: paths
                .into_iter()
                .map(|p| {
                    let module = Module::open(&p).map_err(Arc::new);
                    (p, module)
                })
                .collect(),
            machine,
        })
    }

    /// The first enrolled token that is present in `modules`.
    pub(super) fn first_present<'m>(
        &self,
        modules: &'m Modules,
    ) -> Result<Present<'m>, crate::Error> {
        let mut last_error = None;
        for enrollment in &self.manifest().hsms {
            match modules.find(enrollment) {
                Ok(present) => return Ok(present),
                Err(reason) => last_error = Some(reason),
            }
        }
        Err(self.no_token(last_error))
    }

    /// The token holding the audit key: `None` when no token has it or the module reports it
    /// absent; an error when the module does not load or fails while looking (a fault is not
    /// an absent token, and must not turn a signed checkpoint into an unsigned entry).
    pub(super) fn audit_token<'m>(
        &self,
        modules: &'m Modules,
    ) -> Result<Option<Present<'m>>, crate::Error> {
        let Some(enrollment) = self
            .manifest()
            .hsms
            .iter()
            .find(|h| h.label == self.manifest().audit.token)
        else {
            return Ok(None);
        };
        let module = modules
            .of(enrollment)
            .map_err(|cause| VaultError::TokenAbsent {
                label: enrollment.label.clone(),
                serial: enrollment.serial.clone(),
                cause,
            })?;
        match module.find_token(&TokenSelector::Serial(enrollment.serial.clone())) {
            Ok(token) => Ok(Some(Present {
                module,
                token,
                enrollment: enrollment.clone(),
            })),
            Err(HsmError::TokenNotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks that every token whose PIN the quorum derives is connected (a rekey must change
    /// those PINs), before anything changes.
    pub fn check_quorum_tokens_present(&self) -> Result<(), crate::Error> {
        self.quorum_tokens_present(&self.open_modules(None)?)
    }

    pub(super) fn quorum_tokens_present(&self, modules: &Modules) -> Result<(), crate::Error> {
        for enrollment in &self.manifest().hsms {
            if enrollment.pin != PinSource::Quorum && enrollment.so_pin != Some(PinSource::Quorum) {
                continue;
            }
            if let Err(cause) = modules.find(enrollment) {
                return Err(VaultError::TokenAbsent {
                    label: enrollment.label.clone(),
                    serial: enrollment.serial.clone(),
                    cause,
                }
                .into());
            }
        }
        Ok(())
    }
}

/// The token `target` names: initialised first when asked (SO PIN set, user PIN set), else
/// found by label. Quorum PINs are derived per token (`pin/2`): a token's serial is known only
/// once it is initialised, so a quorum-derived SO PIN is set in two steps (a one-time random
/// PIN at initialisation, changed at once to the derived one).
pub(super) fn prepare_token(
    module: &Module,
    pins: &Pins<'_>,
    target: &TokenTarget,
    user_pin: &PinSource,
    so_pin: &PinSource,
) -> Result<Token, crate::Error> {
    if !target.init_token {
        return Ok(module.find_token(&TokenSelector::Label(target.label.clone()))?);
    }
    let derivation = Some(PinDerivation::PerToken);
    let initial_so = match so_pin {
        PinSource::Quorum => one_time_pin()?,
        other => pins
            .provider
            .pin(&target.label, PinRole::SecurityOfficer, other)?,
    };
    let token = module.init_token(&target.label, &initial_so)?;
    let description = token.description();
    let user = pins.pin(description, derivation, PinRole::User, user_pin)?;
    let session = module.open_session(&token)?;
    session.login(PinRole::SecurityOfficer, &initial_so, false)?;
    session.init_user_pin(&user)?;
    if *so_pin == PinSource::Quorum {
        let so = pins.pin(description, derivation, PinRole::SecurityOfficer, so_pin)?;
        session.change_pin(&initial_so, &so)?;
    }
    Ok(token)
}

/// A random PIN used once, while a token is initialised.
fn one_time_pin() -> Result<SecretString, crate::Error> {
    use ring::rand::SecureRandom;
    let mut bytes = zeroize::Zeroizing::new([0u8; 16]);
    ring::rand::SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| VaultError::Random)?;
    Ok(SecretString::from(hex::encode(bytes.as_ref())))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::hsm::PinState;

    struct NoPins;
    impl PinProvider for NoPins {
        fn pin(
            &self,
            label: &str,
            _: PinRole,
            _: &PinSource,
        ) -> Result<SecretString, crate::Error> {
            Ok(SecretString::from(format!("asked for {label}")))
        }
    }

    #[test]
    fn quorum_pins_differ_by_role_vault_and_secret_and_are_32_hex_characters() {
        let user = quorum_pin(&[7; 32], "v1", PinRole::User);
        let so = quorum_pin(&[7; 32], "v1", PinRole::SecurityOfficer);
        let other_vault = quorum_pin(&[7; 32], "v2", PinRole::User);
        let other_secret = quorum_pin(&[8; 32], "v1", PinRole::User);
        let all = [&user, &so, &other_vault, &other_secret].map(|p| p.expose_secret().to_owned());
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a.len(), 32);
            assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Stable: the PIN set at init must be the one derived at every later unseal.
        assert_eq!(
            quorum_pin(&[7; 32], "v1", PinRole::User).expose_secret(),
            user.expose_secret()
        );
    }

    fn token(serial: &str, max: u64) -> TokenDescription {
        TokenDescription {
            label: "t".into(),
            serial: serial.into(),
            manufacturer: "m".into(),
            model: "x".into(),
            pins: PinState::default(),
            pin_limits: crate::trust::token_pin::PinLimits { min: 4, max },
        }
    }

    #[test]
    fn a_quorum_pin_without_the_quorum_is_refused_and_other_sources_ask_the_caller() {
        let without = Pins {
            q: None,
            vault_id: "v1",
            provider: &NoPins,
        };
        let t = token("0001", 255);
        assert!(matches!(
            without.pin(&t, None, PinRole::User, &PinSource::Quorum),
            Err(crate::Error::Vault(VaultError::Layout(_)))
        ));
        let asked = without
            .pin(&t, None, PinRole::User, &PinSource::Prompt)
            .unwrap();
        assert_eq!(asked.expose_secret(), "asked for t");
        let with = Pins {
            q: Some(&[7; 32]),
            ..without
        };
        assert_eq!(
            with.pin(&t, None, PinRole::User, &PinSource::Quorum)
                .unwrap()
                .expose_secret(),
            quorum_pin(&[7; 32], "v1", PinRole::User).expose_secret()
        );
    }

    #[test]
    fn tokens_enrolled_per_token_get_their_own_fitted_pin_and_older_ones_keep_pin_1() {
        let pins = Pins {
            q: Some(&[7; 32]),
            vault_id: "v1",
            provider: &NoPins,
        };
        let per_token = Some(PinDerivation::PerToken);
        let pin = |t: &TokenDescription, d| {
            pins.pin(t, d, PinRole::User, &PinSource::Quorum)
                .unwrap()
                .expose_secret()
                .to_owned()
        };
        let (a, b) = (token("0001", 255), token("0002", 255));
        assert_ne!(pin(&a, per_token), pin(&b, per_token));
        assert_eq!(pin(&a, per_token).len(), 32);
        assert_eq!(pin(&token("0001", 16), per_token).len(), 16);
        // Older enrolments: the vault-wide PIN, the same on both tokens.
        assert_eq!(pin(&a, None), pin(&b, None));
        assert_ne!(pin(&a, None), pin(&a, per_token));
        // A token that takes no PIN of 8 characters: refused, naming the token.
        assert!(matches!(
            pins.pin(&token("0003", 6), per_token, PinRole::User, &PinSource::Quorum),
            Err(crate::Error::Vault(VaultError::TokenPin { label, .. })) if label == "t"
        ));
    }

    /// Against a real token (a SoftHSM token of this test's own; nextest runs each test in its
    /// own process, as a PKCS#11 module is initialised once per process).
    mod on_a_token {
        use std::path::{Path, PathBuf};

        use hsm_testing::softhsm::SoftHsm;
        use secrecy::{ExposeSecret, SecretString};

        use super::super::derived_pin;
        use crate::Error;
        use crate::hsm::{HsmError, Module, PinRole, TokenSelector};
        use crate::quorum::{Collector, Share};
        use crate::trust::machine::ConfigDir;
        use crate::vault::test_vault::{QuorumPinsOnly, init_vault, seal_secret};
        use crate::vault::{TokenChoice, Vault, VaultError};

        /// A 2-of-3 vault on a token of its own labelled `label`, both PINs derived from the
        /// quorum, in `dir/<label>` with its configuration in `dir/<label>-config`; one
        /// credential sealed. Returns it with its custodians' shares.
        fn new_vault(softhsm: &SoftHsm, dir: &Path, label: &str) -> (Vault, Vec<SecretString>) {
            let config = ConfigDir::at(&dir.join(format!("{label}-config")));
            let (vault, issued) = init_vault(softhsm, &dir.join(label), label, &config);
            seal_secret(&vault, "db-root", b"the root password", false);
            let shares = issued.into_iter().map(|(_, share)| share).collect();
            (vault, shares)
        }

        fn quorum(mnemonics: &[SecretString]) -> Collector {
            let mut collector = Collector::new();
            for (i, words) in mnemonics.iter().enumerate() {
                let share = Share::parse(words.expose_secret(), i + 1).expect("a share");
                collector.add(i + 1, share).expect("accepted");
            }
            collector
        }

        /// Every file under `dir`, with its bytes.
        fn files_under(dir: &Path, into: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).expect("a directory") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    files_under(&path, into);
                } else {
                    into.push((path.clone(), std::fs::read(&path).expect("readable")));
                }
            }
        }

        /// What `C_Login` says to `pin` as `role` on the vault's token (a session of its own,
        /// closed after).
        fn login(vault: &Vault, role: PinRole, pin: &SecretString) -> Result<(), HsmError> {
            let enrollment = &vault.manifest().hsms[0];
            let module = Module::open(Path::new(&enrollment.module)).expect("module");
            let token = module
                .find_token(&TokenSelector::Serial(enrollment.serial.clone()))
                .expect("token");
            let session = module.open_session(&token).expect("session");
            session.login(role, pin, false).map(|_| ())
        }

        /// The PIN `q` derives for `role` on `vault`'s token.
        fn pin_of(vault: &Vault, q: &[u8], role: PinRole) -> SecretString {
            let enrollment = &vault.manifest().hsms[0];
            let module = Module::open(Path::new(&enrollment.module)).expect("module");
            let token = module
                .find_token(&TokenSelector::Serial(enrollment.serial.clone()))
                .expect("token");
            derived_pin(
                q,
                &vault.manifest().vault_id,
                enrollment.pin_derivation,
                token.description(),
                role,
            )
            .expect("a PIN")
        }

        /// A token whose PINs come from the quorum cannot be logged into without `Q`: its PINs
        /// are nowhere in the vault directory or this machine's configuration, the library
        /// asks nobody for them when `Q` is not at hand, and the PINs another quorum derives
        /// for this very vault and token (same layout, same derivation) are refused by
        /// `C_Login` with `CKR_PIN_INCORRECT`, as user and as SO, leaving the token unlocked:
        /// the genuine quorum's PINs log in afterwards.
        #[test]
        fn a_quorum_pin_token_cannot_be_logged_into_without_the_quorum() {
            let softhsm = SoftHsm::new();
            let dir = tempfile::tempdir().expect("a temporary directory");
            let (vault, shares) = new_vault(&softhsm, dir.path(), "vault-a");
            let (_other, other_shares) = new_vault(&softhsm, dir.path(), "vault-b");
            let q = quorum(&shares[..2]).combine(b"").expect("Q").secret;
            let other_q = quorum(&other_shares[1..]).combine(b"").expect("Q'").secret;
            assert_ne!(q.expose_secret(), other_q.expose_secret());

            // At rest, nowhere: every file of both vaults and both configurations.
            let mut files = Vec::new();
            files_under(dir.path(), &mut files);
            assert!(files.iter().any(|(p, _)| p.ends_with("vault.json")));
            assert!(files.iter().any(|(p, _)| p.ends_with("audit.jsonl")));
            for role in [PinRole::User, PinRole::SecurityOfficer] {
                let pin = pin_of(&vault, q.expose_secret(), role);
                let needle = pin.expose_secret().as_bytes();
                assert!(needle.len() >= 8, "{role:?}");
                for (path, bytes) in &files {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle),
                        "the {role:?} PIN is in {}",
                        path.display()
                    );
                }
            }

            // Without Q the library has no PIN to give, and asks no one for it.
            let choice = TokenChoice {
                pins: &QuorumPinsOnly,
                only: None,
                force_pin: false,
            };
            let refused = vault.with_token(None, choice, |_, _, _, _| Ok(()));
            assert!(
                matches!(refused, Err(Error::Vault(VaultError::Layout(ref m))) if m.contains("quorum")),
                "{refused:?}"
            );

            for role in [PinRole::User, PinRole::SecurityOfficer] {
                let wrong = pin_of(&vault, other_q.expose_secret(), role);
                match login(&vault, role, &wrong) {
                    Err(HsmError::PinIncorrect { returned, .. }) => assert_eq!(
                        returned.rv,
                        cryptoki::error::RvError::PinIncorrect,
                        "{role:?}"
                    ),
                    other => panic!("{role:?}: another quorum's PIN: {other:?}"),
                }
            }
            let enrollment = &vault.manifest().hsms[0];
            let module = Module::open(Path::new(&enrollment.module)).expect("module");
            let token = module
                .find_token(&TokenSelector::Serial(enrollment.serial.clone()))
                .expect("token");
            let flags = module
                .open_session(&token)
                .expect("session")
                .pin_state()
                .expect("flags");
            assert!(!flags.user_locked && !flags.so_locked, "{flags:?}");
            for role in [PinRole::User, PinRole::SecurityOfficer] {
                login(&vault, role, &pin_of(&vault, q.expose_secret(), role))
                    .unwrap_or_else(|e| panic!("{role:?}: the genuine PIN: {e}"));
            }
        }

        /// The recombined secret is checked against the manifest's quorum key before any token
        /// is logged into: another vault's shares, of the same layout and accepted by the
        /// collector (a library caller need not check commitments on entry), recombine, and
        /// are refused as another quorum. Had the token been tried first, the PIN they derive
        /// would have been refused by the token instead (`CKR_PIN_INCORRECT`).
        #[test]
        fn another_vaults_shares_are_refused_against_the_quorum_key_before_the_token() {
            let softhsm = SoftHsm::new();
            let dir = tempfile::tempdir().expect("a temporary directory");
            let (vault, shares) = new_vault(&softhsm, dir.path(), "vault-a");
            let (_other, other_shares) = new_vault(&softhsm, dir.path(), "vault-b");
            let choice = TokenChoice {
                pins: &QuorumPinsOnly,
                only: None,
                force_pin: false,
            };
            let foreign = quorum(&other_shares[..2]);
            assert!(
                foreign.progress().complete,
                "a full quorum of the other vault"
            );
            let before = std::fs::read(dir.path().join("vault-a/audit.jsonl")).expect("log");
            let refused = vault.unseal("db-root", &foreign, choice, "unseal");
            assert!(
                matches!(refused, Err(Error::Vault(VaultError::WrongQuorum))),
                "{refused:?}"
            );
            assert!(
                matches!(
                    vault.recombine(&foreign),
                    Err(Error::Vault(VaultError::WrongQuorum))
                ),
                "recombine"
            );
            // Nothing released, and the genuine shares open it.
            let after = std::fs::read(dir.path().join("vault-a/audit.jsonl")).expect("log");
            assert!(after.starts_with(&before));
            let unsealed = vault
                .unseal("db-root", &quorum(&shares[1..]), choice, "unseal")
                .expect("the vault's own shares");
            assert_eq!(unsealed.payload.expose_secret(), b"the root password");
        }
    }
}
