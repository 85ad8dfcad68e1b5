//! Operators added and removed by the quorum: each change is a vault change like enrolling a
//! token. A security officer (this machine's key, found in the authenticated manifest) asks for
//! it; the quorum key, recombined from the shares, certifies the manifest's next version with
//! the new operator list; a token logs in and its checkpoint signs the audit entry that records
//! the version. Everything that can be refused is refused before a share is asked for
//! ([`Vault::operators_after`]).

use secrecy::ExposeSecret;

use crate::quorum::Collector;
use crate::trust::operator::validate_operator_name;
use crate::trust::quorum_key::QuorumSigningKey;
use crate::trust::signature::SigningPublicKey;
use crate::trust::{Operator, OperatorKey, RetiredOperator, Role, TrustError};

use super::record::manifest_event;
use super::tokens::{PinProvider, TokenChoice};
use super::{Vault, VaultError};

/// A change to the vault's operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorChange {
    /// A new operator: name, roles and Ed25519 public key (hex, as `operator key` prints it).
    Add {
        /// The name.
        name: String,
        /// The roles.
        roles: Vec<Role>,
        /// The public key, as given.
        key: String,
    },
    /// The operator with this name leaves.
    Remove {
        /// The name.
        name: String,
    },
}

/// What [`Vault::change_operators`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorsChanged {
    /// The change was made: the manifest's next version (this one) written and recorded.
    Made(u64),
    /// The change was in force already, made by a run interrupted after writing `vault.json`
    /// and before its entry: the entry was recorded now for this version, nothing else changed.
    RecordedLate(u64),
}

impl OperatorChange {
    /// The audit event that records the change.
    fn event(&self) -> &'static str {
        match self {
            OperatorChange::Add { .. } => "operator_add",
            OperatorChange::Remove { .. } => "operator_remove",
        }
    }

    /// The operator concerned.
    pub fn name(&self) -> &str {
        match self {
            OperatorChange::Add { name, .. } | OperatorChange::Remove { name } => name,
        }
    }
}

impl Vault {
    /// This machine's operator for the vault, who must hold `role`: the key is found in the
    /// configuration directory and its public key looked up in the authenticated manifest.
    pub fn acting_operator(&self, role: Role) -> Result<(OperatorKey, Operator), crate::Error> {
        let (key, operator) = OperatorKey::find(&self.config, &self.trusted)?;
        if !operator.roles.contains(&role) {
            return Err(TrustError::MissingRole {
                vault_id: self.trusted.vault_id().to_owned(),
                name: operator.name.clone(),
                role,
            }
            .into());
        }
        let operator = operator.clone();
        Ok((key, operator))
    }

    /// The operator list `change` makes, or why it cannot be made: a malformed name or key
    /// (naming the field), a name or key already there, an unknown name, no role, or the last
    /// security officer removed. Nothing is asked for and nothing is written.
    pub fn operators_after(&self, change: &OperatorChange) -> Result<Vec<Operator>, crate::Error> {
        let mut operators = self.trusted.operators().to_vec();
        match change {
            OperatorChange::Add { name, roles, key } => {
                validate_operator_name(name)?;
                let key = SigningPublicKey::from_hex(key.trim(), "--key")
                    .map_err(|_| VaultError::OperatorChange {
                        name: name.clone(),
                        problem: "the --key given is not an Ed25519 public key (64 hex \
                                  characters, as `breakglass operator key` prints it)",
                    })?
                    .to_hex();
                if roles.is_empty() {
                    return Err(VaultError::OperatorChange {
                        name: name.clone(),
                        problem: "no role given (--role security-officer or cloud-admin)",
                    }
                    .into());
                }
                if operators.iter().any(|o| &o.name == name) {
                    return Err(VaultError::OperatorChange {
                        name: name.clone(),
                        problem: "an operator of that name exists already",
                    }
                    .into());
                }
                if let Some(holder) = operators.iter().find(|o| o.public_key == key) {
                    return Err(VaultError::OperatorKeyTaken {
                        name: name.clone(),
                        holder: holder.name.clone(),
                    }
                    .into());
                }
                let mut roles = roles.clone();
                roles.sort();
                roles.dedup();
                operators.push(Operator {
                    name: name.clone(),
                    roles,
                    public_key: key,
                });
            }
            OperatorChange::Remove { name } => {
                let before = operators.len();
                operators.retain(|o| &o.name != name);
                if operators.len() == before {
                    return Err(VaultError::OperatorChange {
                        name: name.clone(),
                        problem: "no operator of the vault has that name",
                    }
                    .into());
                }
                if !operators
                    .iter()
                    .any(|o| o.roles.contains(&Role::SecurityOfficer))
                {
                    return Err(VaultError::OperatorChange {
                        name: name.clone(),
                        problem: "it is the last security officer (add another one first: \
                                  someone must be able to change the vault)",
                    }
                    .into());
                }
            }
        }
        Ok(operators)
    }

    /// Whether `change` is what the manifest in force already shows while no audit entry
    /// records that manifest: a run of it was interrupted after writing `vault.json` and
    /// before its entry. Running it again records the entry ([`Vault::change_operators`]
    /// returns [`OperatorsChanged::RecordedLate`]) instead of refusing a name that is there
    /// already (or gone already).
    pub fn operator_change_unrecorded(
        &self,
        change: &OperatorChange,
    ) -> Result<bool, crate::Error> {
        let operators = self.trusted.operators();
        let in_force = match change {
            OperatorChange::Add { name, roles, key } => {
                let mut roles = roles.clone();
                roles.sort();
                roles.dedup();
                SigningPublicKey::from_hex(key.trim(), "--key").is_ok_and(|key| {
                    operators.iter().any(|o| {
                        &o.name == name && o.public_key == key.to_hex() && o.roles == roles
                    })
                })
            }
            OperatorChange::Remove { name } => !operators.iter().any(|o| &o.name == name),
        };
        Ok(in_force && !self.manifest_recorded()?)
    }

    /// Makes `change`: this machine's operator must be a security officer; the quorum
    /// (`shares`) certifies the manifest's next version with the new operator list; the first
    /// enrolled token present logs in and, when it holds the audit key, signs the checkpoint
    /// over the entry that records it. A change that a run interrupted before its entry made
    /// already ([`Vault::operator_change_unrecorded`]) is not made again: its entry is
    /// recorded, with the quorum and the audit token's checkpoint as a change's would be.
    pub fn change_operators(
        &mut self,
        shares: &Collector,
        change: &OperatorChange,
        pins: &dyn PinProvider,
        pinned: &str,
    ) -> Result<OperatorsChanged, crate::Error> {
        self.check_identity(pinned)?;
        let (_key, acting) = self.acting_operator(Role::SecurityOfficer)?;
        if self.operator_change_unrecorded(change)? {
            let event = operator_event(change, &self.trusted, &acting.name);
            self.record_late(shares, event, "the operator change", pins)?;
            return Ok(OperatorsChanged::RecordedLate(self.trusted.version()));
        }
        let operators = self.operators_after(change)?;
        let quorum = self.recombine(shares)?;
        let vault_id = self.manifest().vault_id.clone();
        let quorum_key = QuorumSigningKey::derive(quorum.secret.expose_secret(), &vault_id)?;
        let lock = self.write_lock()?;
        // A removed operator's key keeps verifying the lines they signed: up to the line that
        // removes them and its checkpoint, never after.
        let retiring = match change {
            OperatorChange::Remove { name } => {
                let head = self.audit().head()?;
                self.trusted
                    .operators()
                    .iter()
                    .filter(|o| &o.name == name)
                    .map(|o| RetiredOperator {
                        name: o.name.clone(),
                        roles: o.roles.clone(),
                        public_key: o.public_key.clone(),
                        last_line: head.seq + 2,
                    })
                    .collect()
            }
            OperatorChange::Add { .. } => Vec::new(),
        };
        let trusted = self.trusted.certify_next_retiring(
            self.manifest().clone(),
            operators,
            retiring,
            &quorum_key,
        )?;
        let mut event = operator_event(change, &trusted, &acting.name);
        event.custodians = quorum.custodians.clone();
        let choice = TokenChoice {
            pins,
            only: None,
            force_pin: false,
        };
        let version = trusted.version();
        // The token logs in (and signs the checkpoint) before anything is written: a token
        // that fails leaves the vault as it was.
        let closing = self.with_token(
            Some(quorum.secret.expose_secret()),
            choice,
            |session, enrollment, _, _| self.prepare_closing(event, session, &enrollment.label),
        )?;
        self.install(&lock, trusted)?;
        // A crash here leaves an operator list in force that no entry records: running the
        // same change again records it.
        crate::fault::point("operator-after-manifest")?;
        self.append_closing(closing)?;
        drop(lock);
        Ok(OperatorsChanged::Made(version))
    }
}

/// The entry recording `change` in the manifest version `trusted`, asked for by `by`.
fn operator_event(
    change: &OperatorChange,
    trusted: &crate::trust::AuthenticatedManifest,
    by: &str,
) -> crate::audit::Event {
    let mut event = manifest_event(change.event(), trusted)
        .detail("operator", change.name().to_owned())
        .detail("by", by.to_owned());
    if let OperatorChange::Add { .. } = change
        && let Ok(added) = trusted.operator(change.name())
    {
        let roles: Vec<String> = added.roles.iter().map(ToString::to_string).collect();
        event = event
            .detail("roles", roles.join(","))
            .detail("public_key", added.public_key.clone());
    }
    event
}
