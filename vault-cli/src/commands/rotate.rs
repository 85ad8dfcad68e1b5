//! `breakglass rotate NAME`: replace the sealed AWS key with a new one, crash-safe.
//!
//! At every moment one sealed key works in AWS:
//! 1. with the sealed key K, list the user's keys; finish or clean up an interrupted run:
//!    a key that is an older sealed version (in history) is what a run left after sealing its
//!    new key: it is retired once K is proven; a key that was never sealed (a run stopped
//!    between CreateAccessKey and sealing; its secret is lost) is deleted;
//! 2. CreateAccessKey with K; seal the new key at once (K goes to history);
//! 3. prove the new key (GetCallerIdentity, retried while IAM propagates it);
//! 4. with the new key, deactivate then delete K.
//!
//! Re-running after an interruption resumes: it never leaves a third key. A new key that
//! cannot be sealed (a full disk) is deleted again at once, with K. With `--mfa` the
//! virtual MFA device is re-seeded the same way: list the user's devices and clean up what an
//! interrupted run left (a device sealed before, in history, is retired; a device this tool
//! made, `USER-breakglass-*`, that was never sealed is deleted: its seed is lost), create,
//! enable with two consecutive codes, seal the new seed at once, then retire the old device.
//! The sealed device is never touched before a new one is sealed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;
use secrecy::{ExposeSecret, SecretString};
use tokio::runtime::Runtime;
use vault_core::credential::AwsKeys;
use vault_core::envelope::{Envelope, Kind};
use vault_core::secret::SecretBytes;
use vault_core::trust::Role;
use vault_core::vault::{TokenChoice, Vault};

use crate::aws::{self, OwnKeys};
use crate::cli::RotateArgs;
use crate::exit::{Failure, fail};
use crate::prompt::{CliPins, gather_shares};

type Metadata = BTreeMap<String, String>;

/// What the previous sealed versions of a credential held.
#[derive(Default)]
struct SealedBefore {
    /// Their access key ids.
    keys: BTreeSet<String>,
    /// Their MFA devices' serials.
    devices: BTreeSet<String>,
}

/// The key ids and MFA devices of the previous sealed versions of `name`.
fn sealed_before(vault: &Vault, name: &str) -> Result<SealedBefore> {
    let mut before = SealedBefore::default();
    for path in vault.store().history(name)? {
        let bytes = std::fs::read(&path)?;
        if let Ok(envelope) = Envelope::from_bytes(&bytes, &path) {
            if let Some(id) = envelope.metadata.get("access_key_id") {
                before.keys.insert(id.clone());
            }
            if let Some(serial) = envelope.metadata.get("mfa_serial") {
                before.devices.insert(serial.clone());
            }
        }
    }
    Ok(before)
}

/// What one rotation works with.
struct Rotation<'a> {
    runtime: &'a Runtime,
    vault: &'a Vault,
    name: &'a str,
    pinned: &'a str,
}

impl Rotation<'_> {
    /// The key part; returns (old id, new id, the working keys, their metadata).
    fn rotate_key(
        &self,
        envelope: &Envelope,
        payload: &SecretBytes,
        history: &SealedBefore,
        details: &mut Metadata,
    ) -> Result<(String, String, AwsKeys, Metadata)> {
        let current = AwsKeys::from_payload(payload.expose_secret())?;
        details.insert(
            "old_access_key_id".to_owned(),
            current.access_key_id.clone(),
        );
        let own = self.runtime.block_on(OwnKeys::new(
            &current.access_key_id,
            &current.secret_access_key,
        ));
        for key in self.runtime.block_on(own.list())? {
            if key.id == current.access_key_id {
                continue;
            }
            if history.keys.contains(&key.id) {
                self.runtime.block_on(aws::prove(
                    &current.access_key_id,
                    &current.secret_access_key,
                ))?;
                self.runtime.block_on(own.retire(&key.id))?;
                eprintln!(
                    "finished an interrupted rotation: retired {} (the key sealed before {})",
                    key.id, current.access_key_id
                );
                details.insert("resumed".into(), "retired the previous key".into());
                let id = current.access_key_id.clone();
                return Ok((key.id, id, current, envelope.metadata.clone()));
            }
            eprintln!(
                "deleting {}: a key created by an interrupted rotation and never sealed (its secret is lost)",
                key.id
            );
            self.runtime.block_on(own.retire(&key.id))?;
            details.insert("deleted_unsealed_key".into(), key.id.clone());
        }
        let (new_id, new_secret) = self.runtime.block_on(own.create())?;
        // A crash from here until the seal leaves a key nobody holds: the next run deletes it.
        vault_core::fault::point("rotate-after-create")?;
        let new_keys = AwsKeys {
            access_key_id: new_id.clone(),
            secret_access_key: new_secret,
            mfa_seed: current
                .mfa_seed
                .as_ref()
                .map(|s| SecretString::from(s.expose_secret().to_owned())),
        };
        let mut metadata = envelope.metadata.clone();
        metadata.insert("access_key_id".into(), new_id.clone());
        if let Err(error) = self.vault.seal(
            self.name,
            Kind::Aws,
            metadata.clone(),
            &new_keys.to_payload(),
            true,
            Some(self.pinned),
        ) {
            // Not sealed (a full disk, a busy vault): the new key's secret is lost, so it goes
            // again at once, with the sealed key, which still works.
            self.delete_unsealed(&own, &new_id, &current.access_key_id, details);
            return Err(error.into());
        }
        vault_core::fault::point("rotate-after-seal")?;
        self.runtime.block_on(aws::prove(
            &new_keys.access_key_id,
            &new_keys.secret_access_key,
        ))?;
        let with_new = self.runtime.block_on(OwnKeys::new(
            &new_keys.access_key_id,
            &new_keys.secret_access_key,
        ));
        self.runtime
            .block_on(with_new.retire(&current.access_key_id))?;
        vault_core::fault::point("rotate-after-retire")?;
        Ok((current.access_key_id.clone(), new_id, new_keys, metadata))
    }

    /// Deletes `new_id`, a key just created that could not be sealed, and says so; when that
    /// fails too, names the key to delete and the run that deletes it.
    fn delete_unsealed(
        &self,
        own: &OwnKeys,
        new_id: &str,
        sealed_id: &str,
        details: &mut Metadata,
    ) {
        match self.runtime.block_on(own.retire(new_id)) {
            Ok(()) => {
                eprintln!(
                    "breakglass: {new_id} was created but could not be sealed: it is deleted again; \
                     {sealed_id} is still the sealed key and works"
                );
                details.insert("deleted_unsealed_key".into(), new_id.to_owned());
            }
            Err(e) => {
                eprintln!(
                    "breakglass: {new_id} was created but could not be sealed, and deleting it \
                     failed ({e:#}): its secret is lost; delete it in IAM, or run `breakglass \
                     rotate {}` again, which deletes it first; {sealed_id} is still the sealed key",
                    self.name
                );
                details.insert("unsealed_key_left".into(), new_id.to_owned());
            }
        }
    }

    /// Retires the devices of `user` an interrupted `rotate --mfa` left besides the sealed one
    /// (`sealed`): one sealed before (in history: its successor was sealed, the run stopped
    /// before retiring it), or one this tool made (`USER-breakglass-*`) whose seed was never
    /// sealed (the run stopped between enabling it and the seal: nobody holds its seed). A
    /// device of another name that no version sealed is not this tool's, and is left alone.
    fn clean_up_devices(
        &self,
        own: &OwnKeys,
        user: &str,
        sealed: Option<&str>,
        history: &SealedBefore,
        details: &mut Metadata,
    ) -> Result<()> {
        let devices = self.runtime.block_on(own.mfa_devices(user))?;
        let ours = format!(":mfa/{user}-breakglass-");
        let mut retired = Vec::new();
        let mut deleted = Vec::new();
        for serial in devices {
            if Some(serial.as_str()) == sealed {
                continue;
            }
            if history.devices.contains(&serial) {
                self.runtime
                    .block_on(own.retire_mfa_device(user, &serial))?;
                eprintln!(
                    "finished an interrupted re-seeding: retired MFA device {serial} (sealed before {})",
                    sealed.unwrap_or("the device sealed now")
                );
                retired.push(serial);
            } else if serial.contains(&ours) {
                eprintln!(
                    "deleting MFA device {serial}: made by an interrupted `rotate --mfa` and never \
                     sealed (its seed is lost)"
                );
                self.runtime
                    .block_on(own.retire_mfa_device(user, &serial))?;
                deleted.push(serial);
            }
        }
        if !retired.is_empty() {
            details.insert("retired_previous_mfa_device".into(), retired.join(","));
        }
        if !deleted.is_empty() {
            details.insert("deleted_unsealed_mfa_device".into(), deleted.join(","));
        }
        Ok(())
    }

    /// Re-seeds the virtual MFA device with the working keys, after cleaning up what an
    /// interrupted run left ([`Rotation::clean_up_devices`]).
    fn reseed_mfa(
        &self,
        keys: &AwsKeys,
        metadata: &mut Metadata,
        history: &SealedBefore,
        details: &mut Metadata,
    ) -> Result<()> {
        let arn = self
            .runtime
            .block_on(aws::prove(&keys.access_key_id, &keys.secret_access_key))?;
        let user = arn
            .rsplit('/')
            .next()
            .filter(|_| arn.contains(":user/"))
            .ok_or_else(|| fail(Failure::Aws, format!("{arn} is not an IAM user")))?
            .to_owned();
        let own = self
            .runtime
            .block_on(OwnKeys::new(&keys.access_key_id, &keys.secret_access_key));
        let sealed = metadata.get("mfa_serial").cloned();
        self.clean_up_devices(&own, &user, sealed.as_deref(), history, details)?;
        let (serial, seed) = self.runtime.block_on(own.new_mfa_device(&user))?;
        // A crash from here until the seal leaves an enabled device nobody holds: the next
        // `rotate --mfa` deletes it.
        vault_core::fault::point("rotate-mfa-after-create")?;
        let reseeded = AwsKeys {
            access_key_id: keys.access_key_id.clone(),
            secret_access_key: SecretString::from(
                keys.secret_access_key.expose_secret().to_owned(),
            ),
            mfa_seed: Some(seed),
        };
        let old_serial = metadata.insert("mfa_serial".into(), serial.clone());
        self.vault.seal(
            self.name,
            Kind::Aws,
            metadata.clone(),
            &reseeded.to_payload(),
            true,
            Some(self.pinned),
        )?;
        // A crash here leaves the previous device enabled, sealed in history: the next
        // `rotate --mfa` retires it.
        vault_core::fault::point("rotate-mfa-after-seal")?;
        if let Some(old) = old_serial.filter(|old| *old != serial) {
            self.runtime.block_on(own.retire_mfa_device(&user, &old))?;
            details.insert("old_mfa_serial".into(), old);
        }
        details.insert("mfa_serial".into(), serial);
        Ok(())
    }
}

/// `breakglass rotate`.
pub fn run(vault_arg: Option<&Path>, args: &RotateArgs) -> Result<()> {
    let vault = super::open_vault(vault_arg)?;
    let pinned = super::require_pin(&vault, args.fingerprint.as_deref())?;
    super::require_role(&vault, Role::CloudAdministrator, "rotate")?;
    let (_, envelope) = vault.envelope(&args.name)?;
    if envelope.kind != Kind::Aws {
        return Err(fail(
            Failure::Usage,
            format!("{} is not an aws credential", args.name),
        ));
    }
    let history = sealed_before(&vault, &args.name)?;
    let shares = gather_shares(&vault, &args.shares)?;
    let runtime = aws::runtime()?;
    let rotation = Rotation {
        runtime: &runtime,
        vault: &vault,
        name: &args.name,
        pinned: &pinned,
    };
    // What the rotation did, whether or not its entry can be signed afterwards.
    let made = std::cell::RefCell::new(None);
    let opened = vault.unseal_with(
        &args.name,
        &shares,
        TokenChoice {
            pins: &CliPins,
            only: args.hsm.as_deref(),
            force_pin: false,
        },
        "rotate",
        |envelope, payload, _| {
            let mut details = Metadata::new();
            let result = (|| -> Result<(String, String)> {
                let (old, new, working, mut metadata) =
                    rotation.rotate_key(envelope, payload, &history, &mut details)?;
                if args.mfa {
                    rotation.reseed_mfa(&working, &mut metadata, &history, &mut details)?;
                }
                Ok((old, new))
            })();
            match &result {
                Ok((old_id, new_id)) => {
                    details.insert("new_access_key_id".into(), new_id.clone());
                    *made.borrow_mut() = Some((old_id.clone(), new_id.clone()));
                }
                Err(e) => {
                    details.insert("error".into(), format!("{e:#}"));
                }
            }
            (details, result)
        },
    );
    let (_, outcome) = match (opened, made.into_inner()) {
        (Ok(opened), _) => opened,
        // The rotation was made, and then its entry failed (the token signing it, the lock):
        // the new key is sealed and the old one gone, which the operator must not take for
        // nothing done.
        (Err(e), Some((old, new))) => {
            return Err(anyhow::Error::from(e).context(format!(
                "{} was rotated all the same: {new} is sealed and works, {old} is deactivated \
                 and deleted{}; only the audit entry recording it could not be written (the \
                 attempt is recorded as rotate_failed where the log can take it)",
                args.name,
                if args.mfa {
                    ", and the MFA device was re-seeded"
                } else {
                    ""
                }
            )));
        }
        (Err(e), None) => return Err(e.into()),
    };
    let (old, new) = outcome?;
    println!(
        "rotated {}: {new} is sealed and works; {old} is deactivated and deleted",
        args.name
    );
    if args.mfa {
        println!("the MFA device was re-seeded and its new seed sealed");
    }
    eprintln!(
        "next: breakglass review CEREMONY lists what the emergency sessions did (ceremony ids: breakglass audit show)"
    );
    Ok(())
}
