//! Threat-model claims about shares and the token, proved against the built binary and a real
//! token (SoftHSM, behind the logging PKCS#11 shim where the claim is about what reaches the
//! token): another vault's shares are refused before any token login, and shares retired by a
//! rekey are refused and derive a PIN the token does not take. The library proves the rest of
//! each claim in its own tests (`docs/threat-model.md` names them).

use std::path::Path;
use std::process::Output;

use hsm_testing::shim::{self, Shim};
use secrecy::ExposeSecret;

mod support;

use support::{Env, assert_exit, stderr};

fn share(env: &Env, custodian: &str) -> String {
    env.path(&format!("shares/{custodian}.share"))
        .display()
        .to_string()
}

/// `args`, then `--share-file` for each of `custodians` of `of`.
fn with_shares(of: &Env, args: &[&str], custodians: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    for custodian in custodians {
        all.push("--share-file".into());
        all.push(share(of, custodian));
    }
    all
}

/// Runs `args` with the vault's token reached through the shim, which logs every PKCS#11 call
/// the command makes to `log`.
fn through_logging_shim(env: &Env, args: &[String], log: &Path) -> Output {
    let _ = std::fs::remove_file(log);
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = env.command(&strs);
    command.env("BREAKGLASS_PKCS11_MODULE", shim::library());
    Shim::new().log(log).apply(&mut command);
    command.output().unwrap()
}

/// The PKCS#11 functions the last command called, in order.
fn functions(log: &Path) -> Vec<String> {
    shim::calls(log).into_iter().map(|c| c.function).collect()
}

/// The words of a share file.
fn words(env: &Env, custodian: &str) -> String {
    std::fs::read_to_string(share(env, custodian))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect()
}

/// Another vault of the same layout (2 of alice, bob and carol): its shares are well-formed
/// SLIP-39 shares that recombine, and they are refused with exit 3, naming the share that
/// belongs to no custodian of this vault, before any PKCS#11 call logs in (the shim's log has
/// no `C_Login`), and nothing is released. The same shares of this vault log in and open.
#[test]
fn another_vaults_shares_of_the_same_layout_are_refused_before_any_token_login() {
    let env = Env::two_of_three_with_db_root(&[]);
    let other = Env::two_of_three_with_db_root(&[]);
    let log = env.path("pkcs11.log");
    let out = env.path("released");
    let output_to = format!("file:{}", out.display());
    let unseal = ["unseal", "db-root", "--output", &output_to];

    // The control: this vault's own shares, through the same shim, log in and open.
    let genuine = through_logging_shim(&env, &with_shares(&env, &unseal, &["alice", "bob"]), &log);
    assert!(genuine.status.success(), "{}", stderr(&genuine));
    assert!(functions(&log).iter().any(|f| f == "C_Login"));
    assert_eq!(std::fs::read(&out).unwrap(), b"the database root password");
    std::fs::remove_file(&out).unwrap();

    // Both sets recombine on their own: the other vault's are a genuine quorum of it.
    let q_other =
        vault_core::quorum::combine_mnemonics(&[words(&other, "alice"), words(&other, "bob")], b"")
            .unwrap()
            .secret;
    let q = vault_core::quorum::combine_mnemonics(&[words(&env, "alice"), words(&env, "bob")], b"")
        .unwrap()
        .secret;
    assert_ne!(q.expose_secret(), q_other.expose_secret());

    for args in [
        with_shares(&other, &unseal, &["alice", "bob"]),
        with_shares(&other, &["drill"], &["alice", "carol"]),
    ] {
        let refused = through_logging_shim(&env, &args, &log);
        assert_exit(
            &refused,
            3,
            &[
                &share(&other, "alice"),
                "share 1 does not belong to this vault",
                "it matches none of the custodians' commitments",
            ],
            &args,
        );
        let called = functions(&log);
        assert!(
            !called.iter().any(|f| f == "C_Login"),
            "{args:?}: the token was logged into: {called:?}"
        );
        assert!(!out.exists(), "{args:?}: something was released");
        assert!(refused.stdout.is_empty(), "{args:?}");
    }
}

/// After a rekey, the retired shares open nothing and do not log into the token: `unseal` and
/// `drill` with two of them are refused with exit 3 (saying which rekey retired them) before
/// any `C_Login`, and the user and SO PINs the old quorum secret derives for the token are
/// refused by the token itself (`CKR_PIN_INCORRECT`), while the new shares' PINs log in.
#[test]
fn a_share_retired_by_a_rekey_is_refused_and_its_pin_does_not_log_into_the_token() {
    use vault_core::hsm::{HsmError, Module, PinRole, TokenSelector};
    use vault_core::trust::token_pin::token_pin;

    let env = Env::two_of_three_with_db_root(&[]);
    let old_q =
        vault_core::quorum::combine_mnemonics(&[words(&env, "alice"), words(&env, "bob")], b"")
            .unwrap()
            .secret;
    let new_shares = env.path("new-shares");
    let mut rekey = with_shares(&env, &["rekey", "--yes"], &["alice", "bob"]);
    for arg in [
        "--custodian",
        "alice",
        "--custodian",
        "bob",
        "--custodian",
        "carol",
        "--threshold",
        "2",
        "--shares-dir",
        new_shares.to_str().unwrap(),
    ] {
        rekey.push(arg.to_owned());
    }
    let strs: Vec<&str> = rekey.iter().map(String::as_str).collect();
    env.ok(&strs);
    let new_words = |custodian: &str| {
        std::fs::read_to_string(new_shares.join(format!("{custodian}.share")))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect::<String>()
    };
    let new_q =
        vault_core::quorum::combine_mnemonics(&[new_words("alice"), new_words("carol")], b"")
            .unwrap()
            .secret;
    assert_ne!(old_q.expose_secret(), new_q.expose_secret());

    let log = env.path("pkcs11.log");
    let out = env.path("released");
    let output_to = format!("file:{}", out.display());
    for args in [
        with_shares(
            &env,
            &["unseal", "db-root", "--output", &output_to],
            &["alice", "bob"],
        ),
        with_shares(&env, &["drill"], &["bob", "carol"]),
    ] {
        let refused = through_logging_shim(&env, &args, &log);
        assert_exit(&refused, 3, &["of the set retired by the rekey of"], &args);
        let called = functions(&log);
        assert!(
            !called.iter().any(|f| f == "C_Login"),
            "{args:?}: the token was logged into: {called:?}"
        );
        assert!(!out.exists(), "{args:?}: something was released");
    }

    // The control: the new shares, through the same shim, log in and open.
    let mut unseal: Vec<String> = ["unseal", "db-root", "--output", &output_to]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    for custodian in ["alice", "carol"] {
        unseal.push("--share-file".into());
        unseal.push(
            new_shares
                .join(format!("{custodian}.share"))
                .display()
                .to_string(),
        );
    }
    let opened = through_logging_shim(&env, &unseal, &log);
    assert!(opened.status.success(), "{}", stderr(&opened));
    assert!(functions(&log).iter().any(|f| f == "C_Login"));
    assert_eq!(std::fs::read(&out).unwrap(), b"the database root password");

    // The token itself: the PINs the old quorum derives are refused, the new ones log in.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.vault().join("vault.json")).unwrap()).unwrap();
    let manifest = &manifest["manifest"];
    let vault_id = manifest["vault_id"].as_str().unwrap();
    let serial = manifest["hsms"][0]["serial"].as_str().unwrap().to_owned();
    assert_eq!(manifest["hsms"][0]["pin_derivation"], "per-token/2");
    // This process loads the vault's own SoftHSM token directory, as the binary does.
    // SAFETY: set before the module is loaded, and this test starts no thread.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(
            "SOFTHSM2_CONF",
            env.vault().join("softhsm").join("softhsm2.conf"),
        )
    };
    let module = Module::open(&hsm_testing::softhsm::module_path()).unwrap();
    let token = module
        .find_token(&TokenSelector::Serial(serial.clone()))
        .unwrap();
    let limits = token.description().pin_limits;
    for role in [PinRole::User, PinRole::SecurityOfficer] {
        let retired = token_pin(old_q.expose_secret(), vault_id, &serial, role, limits).unwrap();
        let current = token_pin(new_q.expose_secret(), vault_id, &serial, role, limits).unwrap();
        let session = module.open_session(&token).unwrap();
        assert!(
            matches!(
                session.login(role, &retired, false),
                Err(HsmError::PinIncorrect { .. })
            ),
            "{role:?}: the retired quorum's PIN"
        );
        session.login(role, &current, false).unwrap();
    }
}
