//! What a token can do of what breakglass needs, found by doing it without changing the token:
//! the check behind `breakglass hsm check`.
//!
//! Everything made here is a session object (`CKA_TOKEN` false): the keys and the data object
//! are destroyed before the check returns, and a token discards session objects when the
//! session closes in any case. Reading the token information and the mechanism list needs no
//! login; the rest needs the user PIN, which is checked against the token's PIN flags first
//! (a locked PIN or one at its final try is not tried, as everywhere in breakglass).

use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use ring::rand::SecureRandom;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{HsmError, KeyPurpose, Module, PinRole, Token, TokenSession};

/// Length of the user PIN breakglass derives from the quorum secret (`--pin-source quorum`,
/// the default): 32 hexadecimal characters.
pub const QUORUM_PIN_LEN: usize = 32;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The token does it.
    Ok,
    /// The token does not offer it, or refused it.
    Missing,
    /// Not tried: no PIN was given, or what it depends on is missing.
    NotRun,
}

/// One thing breakglass needs, and whether the token does it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked, e.g. `ECDH1 derive`.
    pub name: &'static str,
    /// What breakglass uses it for.
    pub needed_for: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found: the mechanism's flags, the PKCS#11 error, the reason it was not run.
    pub detail: String,
}

/// The token's answers, in the order they were asked.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The token label.
    pub label: String,
    /// Its serial number.
    pub serial: String,
    /// Its manufacturer.
    pub manufacturer: String,
    /// Its model.
    pub model: String,
    /// Its firmware version, `major.minor`.
    pub firmware: String,
    /// The shortest PIN it accepts.
    pub min_pin_len: usize,
    /// The longest PIN it accepts.
    pub max_pin_len: usize,
    /// The checks.
    pub checks: Vec<Check>,
}

impl CheckReport {
    /// The checks whose status is [`Status::Missing`].
    pub fn missing(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Missing)
    }
}

struct Needs {
    checks: Vec<Check>,
}

impl Needs {
    fn push(
        &mut self,
        name: &'static str,
        needed_for: &'static str,
        status: Status,
        detail: impl Into<String>,
    ) -> bool {
        self.checks.push(Check {
            name,
            needed_for,
            status,
            detail: detail.into(),
        });
        status == Status::Ok
    }

    fn outcome<T>(
        &mut self,
        name: &'static str,
        needed_for: &'static str,
        result: Result<T, HsmError>,
        describe: impl FnOnce(&T) -> String,
    ) -> Option<T> {
        match result {
            Ok(value) => {
                let detail = describe(&value);
                self.push(name, needed_for, Status::Ok, detail);
                Some(value)
            }
            Err(e) => {
                self.push(name, needed_for, Status::Missing, e.to_string());
                None
            }
        }
    }

    fn not_run(&mut self, name: &'static str, needed_for: &'static str, why: &str) {
        self.push(name, needed_for, Status::NotRun, why);
    }
}

/// The mechanisms breakglass uses, what for, and the flag each must carry.
const MECHANISMS: [(&str, MechanismType, &str, &str); 3] = [
    (
        "CKM_EC_KEY_PAIR_GEN",
        MechanismType::ECC_KEY_PAIR_GEN,
        "making the sealing and audit keys inside the token (init, hsm enroll)",
        "generate_key_pair",
    ),
    (
        "CKM_ECDH1_DERIVE",
        MechanismType::ECDH1_DERIVE,
        "opening an envelope's token half (unseal, drill, rotate, rekey)",
        "derive",
    ),
    (
        "CKM_ECDSA",
        MechanismType::ECDSA,
        "signing audit checkpoints",
        "sign",
    ),
];

const KEYGEN: &str = "P-256 key pair (session objects)";
const ECDH: &str = "ECDH1 derive (CKD_NULL)";
const ECDSA: &str = "ECDSA sign";
const DATA: &str = "data object (session object)";

impl Module {
    /// Runs every operation breakglass needs against `token` without changing it, and says what
    /// each gave. With `pin` `None`, only what needs no login is checked.
    pub fn check_token(
        &self,
        token: &Token,
        pin: Option<&SecretString>,
        force_pin: bool,
    ) -> Result<CheckReport, HsmError> {
        let info = self
            .context
            .get_token_info(token.slot)
            .map_err(self.module_error("reading token information"))?;
        let description = token.description();
        let firmware = info.firmware_version();
        let mut report = CheckReport {
            label: description.label.clone(),
            serial: description.serial.clone(),
            manufacturer: description.manufacturer.clone(),
            model: description.model.clone(),
            firmware: format!("{}.{}", firmware.major(), firmware.minor()),
            min_pin_len: info.min_pin_length(),
            max_pin_len: info.max_pin_length(),
            checks: Vec::new(),
        };
        let mut needs = Needs { checks: Vec::new() };
        let (min, max) = (report.min_pin_len, report.max_pin_len);
        needs.push(
            "PIN length for a quorum-derived PIN",
            "--pin-source quorum (the default): the token PIN is 32 characters derived from the quorum secret",
            if (min..=max).contains(&QUORUM_PIN_LEN) {
                Status::Ok
            } else {
                Status::Missing
            },
            format!(
                "the token takes PINs of {min} to {max} characters{}",
                if (min..=max).contains(&QUORUM_PIN_LEN) {
                    ""
                } else {
                    "; a 32-character PIN does not fit: give the token a PIN it accepts with --pin-source env:VAR, file:PATH or prompt"
                }
            ),
        );
        if info.write_protected() {
            needs.push(
                "token writable",
                "init and hsm enroll store the keys on the token",
                Status::Missing,
                "the token says it is write-protected (CKF_WRITE_PROTECTED)",
            );
        }
        let mechanisms = self
            .context
            .get_mechanism_list(token.slot)
            .map_err(|e| HsmError::from_pkcs11(token.label(), "listing mechanisms", None, e))?;
        let mut offered = [false; MECHANISMS.len()];
        for (i, (name, mechanism, needed_for, flag)) in MECHANISMS.iter().enumerate() {
            if !mechanisms.contains(mechanism) {
                needs.push(
                    name,
                    needed_for,
                    Status::Missing,
                    "not in the token's mechanism list",
                );
                continue;
            }
            match self.context.get_mechanism_info(token.slot, *mechanism) {
                Ok(mi) => {
                    let has_flag = match *flag {
                        "generate_key_pair" => mi.generate_key_pair(),
                        "derive" => mi.derive(),
                        _ => mi.sign(),
                    };
                    let sizes = (mi.min_key_size(), mi.max_key_size());
                    // Key sizes of EC mechanisms are in bits (some tokens give bytes).
                    let fits =
                        (sizes.0..=sizes.1).contains(&256) || (sizes.0..=sizes.1).contains(&32);
                    let detail = format!(
                        "listed; key sizes {}..{}; CKF_{} {}{}{}",
                        sizes.0,
                        sizes.1,
                        flag.to_uppercase(),
                        if has_flag { "set" } else { "NOT set" },
                        if mi.hardware() { "; in hardware" } else { "" },
                        if fits {
                            ""
                        } else {
                            "; P-256 is outside the key sizes"
                        }
                    );
                    offered[i] = has_flag && fits;
                    needs.push(
                        name,
                        needed_for,
                        if offered[i] {
                            Status::Ok
                        } else {
                            Status::Missing
                        },
                        detail,
                    );
                }
                Err(e) => {
                    needs.push(
                        name,
                        needed_for,
                        Status::Missing,
                        format!("listed, but C_GetMechanismInfo failed: {e}"),
                    );
                }
            }
        }
        let session = self.open_session(token)?;
        let Some(pin) = pin else {
            for (name, needed_for) in login_checks() {
                needs.not_run(name, needed_for, "no PIN given: not logged in");
            }
            report.checks = needs.checks;
            return Ok(report);
        };
        let login = session.login(PinRole::User, pin, force_pin);
        if needs
            .outcome(
                "log in as user",
                "every operation with the token's keys",
                login,
                |warning| match warning {
                    Some(w) => format!("logged in ({w:?})"),
                    None => "logged in".to_owned(),
                },
            )
            .is_none()
        {
            for (name, needed_for) in login_checks().into_iter().skip(1) {
                needs.not_run(name, needed_for, "the login failed");
            }
            report.checks = needs.checks;
            return Ok(report);
        }
        run_key_checks(&session, &mut needs, offered);
        data_object_check(&session, &mut needs);
        let _ = session.session.logout();
        report.checks = needs.checks;
        Ok(report)
    }
}

fn login_checks() -> [(&'static str, &'static str); 5] {
    [
        ("log in as user", "every operation with the token's keys"),
        (KEYGEN, MECHANISMS[0].2),
        (ECDH, MECHANISMS[1].2),
        (ECDSA, MECHANISMS[2].2),
        (DATA, "storing small records on the token"),
    ]
}

/// Generates the two key pairs as session objects, runs ECDH and ECDSA with them and checks the
/// results in software, then destroys the keys.
fn run_key_checks(session: &TokenSession<'_>, needs: &mut Needs, offered: [bool; 3]) {
    let keygen_for = MECHANISMS[0].2;
    if !offered[0] {
        needs.not_run(KEYGEN, keygen_for, "CKM_EC_KEY_PAIR_GEN is missing");
        needs.not_run(ECDH, MECHANISMS[1].2, "no key to derive with");
        needs.not_run(ECDSA, MECHANISMS[2].2, "no key to sign with");
        return;
    }
    let seal = session.generate_pair("check", KeyPurpose::Seal, false);
    let audit = session.generate_pair("check", KeyPurpose::Audit, false);
    let keys = match (seal, audit) {
        (Ok(seal), Ok(audit)) => {
            // Some tokens ignore CKA_TOKEN false and store every object; say so (the keys are
            // destroyed below either way).
            let stored = session
                .private_key_attributes(&seal.id, &[AttributeType::Token])
                .map(|attributes| {
                    attributes
                        .iter()
                        .any(|a| matches!(a, Attribute::Token(true)))
                })
                .unwrap_or(false);
            needs.push(
                KEYGEN,
                keygen_for,
                Status::Ok,
                if stored {
                    "a derive-only and a sign-only P-256 key pair; the token stored them as token objects although asked for session objects (they are destroyed again)"
                } else {
                    "a derive-only and a sign-only P-256 key pair, private keys sensitive and not extractable"
                },
            );
            Some((seal, audit))
        }
        (Err(e), _) | (_, Err(e)) => {
            needs.push(KEYGEN, keygen_for, Status::Missing, e.to_string());
            None
        }
    };
    let Some((seal, audit)) = keys else {
        needs.not_run(ECDH, MECHANISMS[1].2, "no key to derive with");
        needs.not_run(ECDSA, MECHANISMS[2].2, "no key to sign with");
        return;
    };
    if offered[1] {
        let result = ecdh_matches_software(session, &seal.id, &seal.public_key);
        needs.outcome(ECDH, MECHANISMS[1].2, result, |()| {
            "the token's shared secret equals the one computed in software".to_owned()
        });
    } else {
        needs.not_run(ECDH, MECHANISMS[1].2, "CKM_ECDH1_DERIVE is missing");
    }
    if offered[2] {
        let message = b"breakglass hsm check";
        let result = session.sign(&audit.id, message).and_then(|signature| {
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                &audit.public_key,
            )
            .verify(message, &signature)
            .map_err(|_| HsmError::CheckFailed {
                token: session.label().to_owned(),
                what: "the token's ECDSA signature does not verify with its public key",
            })
        });
        needs.outcome(ECDSA, MECHANISMS[2].2, result, |()| {
            "the signature verifies in software (SHA-256, then CKM_ECDSA)".to_owned()
        });
    } else {
        needs.not_run(ECDSA, MECHANISMS[2].2, "CKM_ECDSA is missing");
    }
    for key in [&seal, &audit] {
        let _ = session.destroy_key_pair(&key.id);
    }
}

/// ECDH on the token with a fresh software key's public point, compared with the same DH done
/// in software with the token's public key.
fn ecdh_matches_software(
    session: &TokenSession<'_>,
    id: &[u8],
    token_public: &[u8],
) -> Result<(), HsmError> {
    let bad = |what: &'static str| HsmError::CheckFailed {
        token: session.label().to_owned(),
        what,
    };
    let mut scalar = zeroize::Zeroizing::new([0u8; 32]);
    let secret = loop {
        ring::rand::SystemRandom::new()
            .fill(scalar.as_mut())
            .map_err(|_| bad("the operating system's random generator failed"))?;
        if let Ok(secret) = p256::SecretKey::from_slice(scalar.as_ref()) {
            break secret;
        }
    };
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let peer = secret.public_key().to_encoded_point(false);
    let on_token = session.ecdh(id, peer.as_bytes())?;
    let token_key = p256::PublicKey::from_sec1_bytes(token_public)
        .map_err(|_| bad("the token's public key is not a point on P-256"))?;
    let in_software = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), token_key.as_affine());
    if on_token.expose_secret() == &in_software.raw_secret_bytes()[..] {
        Ok(())
    } else {
        Err(bad(
            "the token's ECDH result differs from the one computed in software",
        ))
    }
}

/// Creates a private data object as a session object, reads its value back, destroys it.
fn data_object_check(session: &TokenSession<'_>, needs: &mut Needs) {
    let value = b"breakglass hsm check".to_vec();
    let template = [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Label(b"breakglass:check:data".to_vec()),
        Attribute::Application(b"breakglass".to_vec()),
        Attribute::Value(value.clone()),
    ];
    let result = session
        .session
        .create_object(&template)
        .map_err(session.error("creating a data object"))
        .and_then(|object| {
            let read = session
                .session
                .get_attributes(object, &[AttributeType::Value])
                .map_err(session.error("reading the data object"));
            let destroyed = session
                .session
                .destroy_object(object)
                .map_err(session.error("destroying the data object"));
            let read = read?;
            destroyed?;
            let same = read
                .iter()
                .any(|a| matches!(a, Attribute::Value(v) if *v == value));
            if same {
                Ok(())
            } else {
                Err(HsmError::CheckFailed {
                    token: session.label().to_owned(),
                    what: "the data object's value read back differs from what was written",
                })
            }
        });
    needs.outcome(DATA, "storing small records on the token", result, |()| {
        "created, read back and destroyed".to_owned()
    });
}

impl TokenSession<'_> {
    /// Destroys the private and public key objects with CKA_ID `id`.
    fn destroy_key_pair(&self, id: &[u8]) -> Result<(), HsmError> {
        let template = [Attribute::Id(id.to_vec())];
        let found = self
            .session
            .find_objects(&template)
            .map_err(self.error("finding a key"))?;
        for object in found {
            self.session
                .destroy_object(object)
                .map_err(self.error("destroying a key"))?;
        }
        self.private_keys.borrow_mut().remove(id);
        Ok(())
    }
}
