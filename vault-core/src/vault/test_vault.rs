//! A throw-away vault on a SoftHSM token, for vault-core's own tests (one module initialised
//! per process: nextest runs each test in its own). The end-to-end suites make theirs through
//! the binary (`tests/support`).

use std::path::Path;

use hsm_testing::softhsm::SoftHsm;
use secrecy::SecretString;

use crate::hsm::PinRole;
use crate::manifest::{PinSource, Policy};
use crate::trust::machine::ConfigDir;

use super::{GroupDef, InitOptions, PinProvider, TokenTarget, Vault};

/// Every PIN of these vaults comes from the quorum: the caller is never asked (a test that
/// asks fails, naming the token and the PIN).
pub(crate) struct QuorumPinsOnly;

impl PinProvider for QuorumPinsOnly {
    fn pin(&self, label: &str, role: PinRole, _: &PinSource) -> Result<SecretString, crate::Error> {
        panic!(
            "the {role:?} PIN of token {label} was asked of the caller: it comes from the quorum"
        )
    }
}

/// A 2-of-3 vault (custodians alice, bob, carol) made at `dir` on a new token of `softhsm`
/// labelled `label`, both of its PINs derived from the quorum; `config` is this machine's
/// configuration, where its first operator, olivia (security officer and cloud
/// administrator), keeps her key. Returns it with each custodian's share (name, mnemonic), as
/// init handed them out.
pub(crate) fn init_vault(
    softhsm: &SoftHsm,
    dir: &Path,
    label: &str,
    config: &ConfigDir,
) -> (Vault, Vec<(String, SecretString)>) {
    let (vault, issued) = Vault::init(
        dir,
        &InitOptions {
            group_threshold: 1,
            groups: vec![GroupDef {
                name: "custodians".into(),
                threshold: 2,
                members: vec!["alice".into(), "bob".into(), "carol".into()],
            }],
            token: TokenTarget {
                module: softhsm.module_path(),
                label: label.into(),
                init_token: true,
                softhsm_conf: None,
            },
            user_pin: PinSource::Quorum,
            so_pin: PinSource::Quorum,
            pins: &QuorumPinsOnly,
            policy: Policy::default(),
            iteration_exponent: 0,
            recovery: None,
            config,
            operator: "olivia".into(),
            recipients: std::collections::BTreeMap::new(),
        },
    )
    .expect("init");
    let shares = issued
        .iter()
        .map(|s| (s.custodian.clone(), s.share.to_mnemonic()))
        .collect();
    (vault, shares)
}

/// Seals `payload` as the secret `name` through `vault`, as the operator this machine's
/// configuration holds (a cloud administrator in [`init_vault`]'s vaults).
pub(crate) fn seal_secret(vault: &Vault, name: &str, payload: &[u8], replace: bool) {
    vault
        .seal(
            name,
            crate::Kind::Secret,
            std::collections::BTreeMap::new(),
            payload,
            replace,
            Some(&vault.identity()),
        )
        .expect("seal");
}
