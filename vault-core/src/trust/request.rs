//! Ceremony requests signed by a security officer, and the check a custodian runs.
//!
//! A signed request ([`SIGNED_REQUEST_FORMAT`]) wraps the ceremony request (its bytes and hash
//! unchanged, so contributions still bind to the request's hash) with the requester's operator
//! name, the certified manifest, and the requester's Ed25519 signature over
//! `Canonical["breakglass-ceremony-request/2", vault id, SHA-256(request file bytes),
//! requester, manifest version, manifest certificate digest]`.
//!
//! A custodian holding only the signed request and their share file (which carries the vault
//! identity fingerprint) checks, offline, with [`SignedRequest::verify`]: the manifest's
//! identity is the one their share belongs to and its quorum signature holds; the request is
//! for that vault and names that identity; the requester is a security officer in it and
//! signed it; it has not expired and was not opened for longer than
//! [`MAX_CEREMONY_EXPIRY`]. A copy of the vault directory is not enough to make one: that
//! takes a security officer's key, which lives on their machine.

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use super::certified::{AuthenticatedManifest, CertifiedManifest, SeenManifest};
use super::duration::MAX_CEREMONY_EXPIRY;
use super::identity::PinnedIdentity;
use super::operator::{Operator, OperatorKey, Role, verify_operator};
use super::signature::{decode_signature, encode_signature};
use super::untrusted_text::render_untrusted;
use super::{RequestProblem, TrustError};
use crate::canonical::Canonical;
use crate::ceremony::{REQUEST_FORMAT, Request};
use crate::quorum::Share;

/// The signed request format.
pub const SIGNED_REQUEST_FORMAT: &str = "breakglass-signed-ceremony-request/1";
/// The domain tag of a request signature.
pub const REQUEST_DOMAIN: &[u8] = b"breakglass-ceremony-request/2";

/// A ceremony request as it travels: not yet trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRequest {
    /// Always [`SIGNED_REQUEST_FORMAT`].
    pub format: String,
    /// The ceremony request.
    pub request: Request,
    /// The requesting operator's name.
    pub requester: String,
    /// The vault's certified manifest.
    pub manifest: CertifiedManifest,
    /// The requester's signature (base64 Ed25519).
    pub signature: String,
}

fn message(
    request: &Request,
    requester: &str,
    manifest_version: u64,
    manifest_digest: &[u8; 32],
) -> Vec<u8> {
    let mut c = Canonical::default();
    c.field(REQUEST_DOMAIN)
        .field(request.vault_id.as_bytes())
        .field(digest(&SHA256, &request.to_bytes()).as_ref())
        .field(requester.as_bytes())
        .number(manifest_version)
        .field(manifest_digest);
    c.into_bytes()
}

impl SignedRequest {
    /// Signs `request` as the operator whose key is `key`, who must be a security officer of
    /// `manifest`.
    pub fn sign(
        request: Request,
        manifest: &AuthenticatedManifest,
        key: &OperatorKey,
    ) -> Result<SignedRequest, TrustError> {
        let public = key.public_key().to_hex();
        let requester = manifest
            .operators()
            .iter()
            .find(|o| o.public_key == public)
            .ok_or_else(|| TrustError::NotAnOperator {
                vault_id: manifest.vault_id().to_owned(),
                path: key.path().to_path_buf(),
                public_key: public,
            })?;
        manifest.operator_with_role(&requester.name, Role::SecurityOfficer)?;
        if request.vault_id != manifest.vault_id() {
            return Err(TrustError::Request {
                problem: RequestProblem::OtherVault {
                    request: request.vault_id.clone(),
                    manifest: manifest.vault_id().to_owned(),
                },
            });
        }
        let digest = manifest.document().digest()?;
        let signature = key.sign(&message(
            &request,
            &requester.name,
            manifest.version(),
            &digest,
        ))?;
        Ok(SignedRequest {
            format: SIGNED_REQUEST_FORMAT.into(),
            requester: requester.name.clone(),
            request,
            manifest: manifest.document().clone(),
            signature: encode_signature(&signature),
        })
    }

    /// The file bytes (pretty JSON, newline-terminated).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Parses a signed request file strictly. A file in the unsigned request format is
    /// [`RequestProblem::Unsigned`], so the custodian is told what is missing rather than
    /// which field.
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedRequest, TrustError> {
        let invalid = |reason: String| TrustError::Request {
            problem: RequestProblem::Invalid { reason },
        };
        let signed: SignedRequest = match serde_json::from_slice(bytes) {
            Ok(signed) => signed,
            Err(e) => {
                let format = serde_json::from_slice::<serde_json::Value>(bytes)
                    .ok()
                    .and_then(|v| v.get("format").and_then(|f| f.as_str()).map(str::to_owned));
                if format.as_deref() == Some(REQUEST_FORMAT) {
                    return Err(TrustError::Request {
                        problem: RequestProblem::Unsigned,
                    });
                }
                return Err(invalid(e.to_string()));
            }
        };
        if signed.format != SIGNED_REQUEST_FORMAT {
            return Err(invalid(format!("format {:?}", signed.format)));
        }
        if signed.request.format != REQUEST_FORMAT {
            return Err(invalid(format!(
                "request format {:?}",
                signed.request.format
            )));
        }
        Ok(signed)
    }

    /// The request inside, not yet verified: for the vault's own copy in `ceremonies/`, whose
    /// key and state the coordinator's commands manage (contributions are still bound to it).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The custodian's check (see the module documentation). `pinned` is the identity from the
    /// custodian's share file or card; `seen` what their machine remembers, if anything; `now`
    /// Unix seconds.
    pub fn verify(
        self,
        pinned: &PinnedIdentity,
        seen: Option<&SeenManifest>,
        now: u64,
    ) -> Result<VerifiedRequest, TrustError> {
        let problem = |problem| TrustError::Request { problem };
        let manifest = self.manifest.authenticate(pinned, seen)?;
        let request = self.request;
        if request.vault_id != manifest.vault_id() {
            return Err(problem(RequestProblem::OtherVault {
                request: request.vault_id.clone(),
                manifest: manifest.vault_id().to_owned(),
            }));
        }
        if !manifest.identity().matches_display(&request.fingerprint) {
            return Err(problem(RequestProblem::OtherIdentity {
                request: render_untrusted(&request.fingerprint),
                manifest: manifest.identity().display(),
            }));
        }
        let signature =
            decode_signature(&self.signature).ok_or_else(|| TrustError::OperatorSignature {
                name: self.requester.clone(),
                what: "the ceremony request".into(),
            })?;
        let digest = manifest.document().digest()?;
        verify_operator(
            &manifest,
            &self.requester,
            Some(Role::SecurityOfficer),
            &message(&request, &self.requester, manifest.version(), &digest),
            &signature,
            "the ceremony request",
        )?;
        let created = crate::clock::parse_rfc3339(&request.created);
        let expires = crate::clock::parse_rfc3339(&request.expires);
        match (created, expires) {
            (Some(created), Some(expires))
                if expires > created && expires - created <= MAX_CEREMONY_EXPIRY => {}
            _ => {
                return Err(problem(RequestProblem::Lifetime {
                    created: render_untrusted(&request.created),
                    expires: render_untrusted(&request.expires),
                }));
            }
        }
        request.check_not_expired(now).map_err(|_| {
            problem(RequestProblem::Expired {
                id: render_untrusted(&request.id),
                expires: render_untrusted(&request.expires),
            })
        })?;
        let requester = self.requester;
        Ok(VerifiedRequest {
            request,
            requester,
            manifest,
        })
    }
}

/// A request a custodian may act on: authentic, from a security officer of the vault their
/// share belongs to, still open.
#[derive(Debug, Clone)]
pub struct VerifiedRequest {
    request: Request,
    requester: String,
    manifest: AuthenticatedManifest,
}

impl VerifiedRequest {
    /// The request (its text is still the requester's: show it through [`Self::shown`]).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The authenticated manifest it carried (to check the custodian's share commitment).
    pub fn manifest(&self) -> &AuthenticatedManifest {
        &self.manifest
    }

    /// The requesting security officer.
    pub fn requester(&self) -> Result<&Operator, TrustError> {
        self.manifest
            .operator_with_role(&self.requester, Role::SecurityOfficer)
    }

    /// The custodian `share` belongs to in the authenticated manifest (the quorum, or the
    /// recovery set): the share is intact and is one of this vault's, so the identity the
    /// custodian compared is the one their share was made for.
    pub fn custodian_of(&self, share: &Share) -> Result<&str, TrustError> {
        let manifest = self.manifest.manifest();
        manifest
            .verify_share(share)
            .or_else(|| {
                manifest
                    .recovery
                    .as_ref()
                    .and_then(|r| r.verify_share(&manifest.vault_id, share))
            })
            .map(|c| c.name.as_str())
            .ok_or_else(|| TrustError::ShareNotInVault {
                vault_id: manifest.vault_id.clone(),
            })
    }

    /// What a custodian is shown, label then text, every text made safe for a terminal: who
    /// asks (the security officer who signed), to do what, why, until when, for which vault.
    pub fn shown(&self) -> Vec<(&'static str, String)> {
        let r = &self.request;
        vec![
            ("Ceremony", render_untrusted(&r.id)),
            ("Vault", render_untrusted(&r.vault_id)),
            ("Requester", render_untrusted(&self.requester)),
            ("Asks to", render_untrusted(&r.describe())),
            ("Reason", render_untrusted(&r.reason)),
            ("Expires", render_untrusted(&r.expires)),
            ("Fingerprint", self.manifest.identity().display()),
            ("Manifest version", self.manifest.version().to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceremony::Purpose;
    use crate::ceremony::{AuditHead, REQUEST_FORMAT};
    use crate::trust::certified::tests::{certified, manifest, pin, quorum_key};
    use crate::trust::machine::ConfigDir;

    const NOW: u64 = 1_796_126_400; // 2026-12-01T12:00:00Z

    struct Fixture {
        dir: tempfile::TempDir,
        manifest: AuthenticatedManifest,
        officer: OperatorKey,
        admin: OperatorKey,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let v1 = certified(1);
        let officer =
            OperatorKey::generate(&ConfigDir::at(&dir.path().join("o")), v1.vault_id()).unwrap();
        let admin =
            OperatorKey::generate(&ConfigDir::at(&dir.path().join("a")), v1.vault_id()).unwrap();
        let manifest = v1
            .certify_next(
                manifest(),
                vec![
                    Operator {
                        name: "olivia".into(),
                        roles: vec![Role::SecurityOfficer],
                        public_key: officer.public_key().to_hex(),
                    },
                    Operator {
                        name: "adam".into(),
                        roles: vec![Role::CloudAdministrator],
                        public_key: admin.public_key().to_hex(),
                    },
                ],
                &quorum_key(),
            )
            .unwrap();
        Fixture {
            dir,
            manifest,
            officer,
            admin,
        }
    }

    fn request(manifest: &AuthenticatedManifest) -> Request {
        Request {
            format: REQUEST_FORMAT.into(),
            id: "0011223344556677".into(),
            vault_id: manifest.vault_id().to_owned(),
            fingerprint: manifest.identity().display(),
            purpose: Purpose::Unseal {
                credential: "prod".into(),
            },
            reason: "IdP down\x1b[2J".into(),
            requester: "olivia@host".into(),
            created: "2026-12-01T10:00:00Z".into(),
            expires: "2026-12-01T16:00:00Z".into(),
            audit_head: AuditHead {
                seq: 3,
                hash: "ab".repeat(32),
            },
            transport_public_key: "cd".repeat(32),
        }
    }

    fn reread(signed: &SignedRequest) -> SignedRequest {
        SignedRequest::from_bytes(&signed.to_bytes()).unwrap()
    }

    #[test]
    fn a_security_officers_request_verifies_for_the_custodian() {
        let f = fixture();
        let signed = SignedRequest::sign(request(&f.manifest), &f.manifest, &f.officer).unwrap();
        assert_eq!(reread(&signed).request(), &request(&f.manifest));
        let verified = reread(&signed)
            .verify(&pin(&f.manifest), None, NOW)
            .unwrap();
        assert_eq!(verified.requester().unwrap().name, "olivia");
        assert_eq!(verified.request(), &request(&f.manifest));
        assert_eq!(
            verified.request().hash(),
            request(&f.manifest).hash(),
            "contributions bind as before"
        );
        let shown = verified.shown();
        let reason = &shown.iter().find(|(l, _)| *l == "Reason").unwrap().1;
        assert_eq!(reason, "IdP down\\x1b[2J");
        assert!(!shown.iter().any(|(_, t)| t.chars().any(char::is_control)));
    }

    #[test]
    fn a_request_from_a_copy_of_the_vault_directory_is_refused() {
        let f = fixture();
        // The forger has the vault directory (manifest, fingerprint) but no operator key.
        let stranger = OperatorKey::generate(
            &ConfigDir::at(&f.dir.path().join("s")),
            f.manifest.vault_id(),
        )
        .unwrap();
        assert!(matches!(
            SignedRequest::sign(request(&f.manifest), &f.manifest, &stranger),
            Err(TrustError::NotAnOperator { .. })
        ));
        // Signing anyway, in the security officer's name.
        let genuine = SignedRequest::sign(request(&f.manifest), &f.manifest, &f.officer).unwrap();
        let mut forged = genuine.clone();
        let digest = f.manifest.document().digest().unwrap();
        forged.signature = encode_signature(
            &stranger
                .sign(&message(&forged.request, "olivia", 2, &digest))
                .unwrap(),
        );
        assert!(matches!(
            reread(&forged).verify(&pin(&f.manifest), None, NOW),
            Err(TrustError::OperatorSignature { .. })
        ));
        // Adding themselves as an operator to the manifest breaks its quorum signature.
        let mut with_stranger = genuine.clone();
        with_stranger.manifest.operators.push(Operator {
            name: "mallory".into(),
            roles: vec![Role::SecurityOfficer],
            public_key: stranger.public_key().to_hex(),
        });
        with_stranger.requester = "mallory".into();
        assert!(matches!(
            reread(&with_stranger).verify(&pin(&f.manifest), None, NOW),
            Err(TrustError::ManifestSignature { .. })
        ));
    }

    #[test]
    fn an_unsigned_request_is_named_as_such_and_a_foreign_inner_format_is_refused() {
        let f = fixture();
        let unsigned = request(&f.manifest).to_bytes();
        assert!(matches!(
            SignedRequest::from_bytes(&unsigned),
            Err(TrustError::Request {
                problem: RequestProblem::Unsigned
            })
        ));
        assert!(matches!(
            SignedRequest::from_bytes(b"{\"format\": \"something else\"}"),
            Err(TrustError::Request {
                problem: RequestProblem::Invalid { .. }
            })
        ));
        let mut signed =
            SignedRequest::sign(request(&f.manifest), &f.manifest, &f.officer).unwrap();
        signed.request.format = "breakglass-ceremony-request/0".into();
        assert!(matches!(
            SignedRequest::from_bytes(&signed.to_bytes()),
            Err(TrustError::Request {
                problem: RequestProblem::Invalid { .. }
            })
        ));
    }

    /// A change made to a request after it was signed.
    type Change = Box<dyn Fn(&mut Request)>;

    #[test]
    fn an_altered_replayed_or_foreign_request_is_refused() {
        let f = fixture();
        let genuine = SignedRequest::sign(request(&f.manifest), &f.manifest, &f.officer).unwrap();
        let refuses =
            |signed: &SignedRequest| reread(signed).verify(&pin(&f.manifest), None, NOW).is_err();
        // Any field of the request changed after signing.
        let changes: Vec<Change> = vec![
            Box::new(|r: &mut Request| {
                r.purpose = Purpose::Assume {
                    credential: "prod".into(),
                }
            }),
            Box::new(|r: &mut Request| {
                r.purpose = Purpose::Unseal {
                    credential: "root".into(),
                }
            }),
            Box::new(|r: &mut Request| r.reason = "drill".into()),
            Box::new(|r: &mut Request| r.transport_public_key = "ef".repeat(32)),
            Box::new(|r: &mut Request| r.expires = "2026-12-01T17:00:00Z".into()),
            Box::new(|r: &mut Request| r.audit_head.seq = 4),
            Box::new(|r: &mut Request| r.id = "ffff".into()),
        ];
        for change in &changes {
            let mut altered = genuine.clone();
            change(&mut altered.request);
            assert!(refuses(&altered), "{:?}", altered.request);
        }
        // Relabelled with another requester.
        let mut relabelled = genuine.clone();
        relabelled.requester = "adam".into();
        assert!(refuses(&relabelled));
        // A cloud administrator cannot ask for shares.
        assert!(matches!(
            SignedRequest::sign(request(&f.manifest), &f.manifest, &f.admin),
            Err(TrustError::MissingRole { .. })
        ));
        // Expired; or open for longer than seven days.
        assert!(matches!(
            reread(&genuine).verify(&pin(&f.manifest), None, NOW + 86_400),
            Err(TrustError::Request {
                problem: RequestProblem::Expired { .. }
            })
        ));
        let mut long = request(&f.manifest);
        long.expires = "2026-12-09T10:00:01Z".into();
        let long = SignedRequest::sign(long, &f.manifest, &f.officer).unwrap();
        assert!(matches!(
            reread(&long).verify(&pin(&f.manifest), None, NOW),
            Err(TrustError::Request {
                problem: RequestProblem::Lifetime { .. }
            })
        ));
        // For another vault: the custodian's pin is not that vault's identity.
        let other = CertifiedManifest::certify(
            {
                let mut m = manifest();
                m.vault_id = "ff".repeat(16);
                m
            },
            1,
            f.manifest.operators().to_vec(),
            &crate::trust::quorum_key::QuorumSigningKey::derive(&[0x51; 32], &"ff".repeat(16))
                .unwrap(),
        )
        .unwrap();
        let foreign = SignedRequest::sign(request(&other), &other, &f.officer).unwrap();
        assert!(matches!(
            reread(&foreign).verify(&pin(&f.manifest), None, NOW),
            Err(TrustError::IdentityMismatch { .. })
        ));
        // A request that names another fingerprint than its manifest's.
        let mut mislabelled = request(&f.manifest);
        mislabelled.fingerprint = "AAAA-BBBB".into();
        let mislabelled = SignedRequest::sign(mislabelled, &f.manifest, &f.officer).unwrap();
        assert!(matches!(
            reread(&mislabelled).verify(&pin(&f.manifest), None, NOW),
            Err(TrustError::Request {
                problem: RequestProblem::OtherIdentity { .. }
            })
        ));
        // Signed against an older manifest version than the custodian's machine has seen.
        let newer = f
            .manifest
            .certify_next(manifest(), f.manifest.operators().to_vec(), &quorum_key())
            .unwrap();
        assert!(matches!(
            reread(&genuine).verify(&pin(&f.manifest), Some(&newer.seen()), NOW),
            Err(TrustError::ManifestRollback { .. })
        ));
    }

    #[test]
    fn the_custodian_finds_their_share_in_the_authenticated_manifest_and_no_other() {
        use crate::manifest::{Custodian, Group, share_commitment};
        use crate::quorum::{GroupSpec, SplitParams, split};
        let params = SplitParams {
            group_threshold: 1,
            groups: vec![GroupSpec {
                threshold: 2,
                count: 3,
            }],
            iteration_exponent: 0,
            extendable: false,
        };
        let shares = split(&[0x51; 32], b"", &params).unwrap();
        let stranger = split(&[0x52; 32], b"", &params).unwrap();
        let mut vault = manifest();
        let salt = [9u8; 32];
        vault.quorum.identifier = shares[0][0].info().identifier;
        vault.quorum.iteration_exponent = 0;
        vault.quorum.groups = vec![Group {
            name: "custodians".into(),
            threshold: 2,
            members: ["alice", "bob", "carol"]
                .iter()
                .zip(&shares[0])
                .map(|(name, share)| Custodian {
                    name: (*name).into(),
                    commitment_salt: hex::encode(salt),
                    commitment: share_commitment(&vault.vault_id, &salt, share),
                })
                .collect(),
        }];
        let dir = tempfile::tempdir().unwrap();
        let officer = OperatorKey::generate(&ConfigDir::at(dir.path()), &vault.vault_id).unwrap();
        let operators = vec![Operator {
            name: "olivia".into(),
            roles: vec![Role::SecurityOfficer],
            public_key: officer.public_key().to_hex(),
        }];
        let certified = CertifiedManifest::certify(vault, 1, operators, &quorum_key()).unwrap();
        let signed = SignedRequest::sign(request(&certified), &certified, &officer).unwrap();
        let verified = reread(&signed).verify(&pin(&certified), None, NOW).unwrap();
        assert_eq!(verified.custodian_of(&shares[0][1]).unwrap(), "bob");
        assert!(matches!(
            verified.custodian_of(&stranger[0][1]),
            Err(TrustError::ShareNotInVault { .. })
        ));
    }

    #[test]
    fn a_request_that_expires_when_or_before_it_is_created_is_refused() {
        // Created in the future, so only the lifetime check stands between it and a
        // custodian: a zero or negative lifetime is refused, exactly seven days is allowed.
        let f = fixture();
        let verify = |created: &str, expires: &str| {
            let mut r = request(&f.manifest);
            r.created = created.into();
            r.expires = expires.into();
            let signed = SignedRequest::sign(r, &f.manifest, &f.officer).unwrap();
            reread(&signed).verify(&pin(&f.manifest), None, NOW)
        };
        for (created, expires) in [
            ("2026-12-01T13:00:00Z", "2026-12-01T13:00:00Z"),
            ("2026-12-01T14:00:00Z", "2026-12-01T13:00:00Z"),
        ] {
            assert!(
                matches!(
                    verify(created, expires),
                    Err(TrustError::Request {
                        problem: RequestProblem::Lifetime { .. }
                    })
                ),
                "{created} to {expires}"
            );
        }
        verify("2026-12-01T10:00:00Z", "2026-12-08T10:00:00Z").unwrap();
    }
}
