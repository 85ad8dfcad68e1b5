//! End-to-end: the fingerprint a machine pinned is enforced by every command that uses shares
//! or a token. A machine that has not pinned the vault is told to give the fingerprint from a
//! share card before anyone is asked for a share; a fingerprint given on the command line never
//! overrides the pin.

use std::process::Output;

mod support;

use support::{Env, assert_exit, stderr};

/// A 2-of-3 vault with one credential; returns it and its fingerprint.
fn vault() -> (Env, String) {
    let env = Env::two_of_three_with_db_root(&[]);
    let fingerprint = env.status()["fingerprint"].as_str().unwrap().to_owned();
    (env, fingerprint)
}

/// The commands that use shares or a token, each with what it needs (shares from files).
fn commands(env: &Env) -> Vec<Vec<String>> {
    let share = |name: &str| {
        env.path(&format!("shares/{name}.share"))
            .display()
            .to_string()
    };
    let with_shares = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        for name in ["alice", "bob"] {
            v.push("--share-file".into());
            v.push(share(name));
        }
        v
    };
    let payload = env.path("payload").display().to_string();
    vec![
        with_shares(&["unseal", "db-root", "--output", "json"]),
        with_shares(&["drill"]),
        with_shares(&["rekey", "--yes", "--shares-dir", "/nonexistent/new"]),
        with_shares(&["hsm", "enroll", "--token", "backup", "--init-token"]),
        vec![
            "ceremony".into(),
            "open".into(),
            "--purpose".into(),
            "drill".into(),
            "--reason".into(),
            "x".into(),
            "--out".into(),
            env.path("request.json").display().to_string(),
        ],
        vec![
            "seal".into(),
            "other".into(),
            "--kind".into(),
            "secret".into(),
            "--from-file".into(),
            payload,
        ],
    ]
}

fn run(env: &Env, args: &[String], extra_env: &[(&str, &str)]) -> Output {
    env.run_with(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        extra_env,
    )
}

#[test]
fn a_machine_that_has_not_pinned_the_vault_asks_for_the_fingerprint_before_any_share() {
    let (env, fingerprint) = vault();
    // Another machine: the vault directory, no configuration (no pin).
    std::fs::remove_dir_all(env.path("config")).unwrap();
    let log = std::fs::read(env.vault().join("audit.jsonl")).unwrap();
    for args in commands(&env) {
        let output = run(&env, &args, &[]);
        let says = ["no fingerprint is pinned for vault", "--fingerprint"];
        assert_exit(&output, 2, &says, &args);
    }
    // Nothing happened: no audit line, no request, nothing pinned.
    assert_eq!(std::fs::read(env.vault().join("audit.jsonl")).unwrap(), log);
    assert!(!env.path("request.json").exists());
    assert!(!env.path("config/breakglass/known_vaults.json").exists());

    // A wrong fingerprint is an integrity failure, and pins nothing.
    let unseal = &commands(&env)[0];
    let output = run(
        &env,
        unseal,
        &[(
            "BREAKGLASS_FINGERPRINT",
            "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH",
        )],
    );
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not the vault on the share cards"),
        "{}",
        stderr(&output)
    );
    assert!(!env.path("config/breakglass/known_vaults.json").exists());

    // The fingerprint from the cards (here in lower case, without dashes) is checked, then
    // pinned: later commands need it no more.
    let typed = fingerprint.replace('-', "").to_lowercase();
    let output = run(&env, unseal, &[("BREAKGLASS_FINGERPRINT", &typed)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("is now pinned on this machine"));
    let output = run(&env, unseal, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_fingerprint_that_differs_from_the_pin_is_refused_never_an_override() {
    let (env, fingerprint) = vault();
    let known = env.path("config/breakglass/known_vaults.json");
    // The vault as it is, but a different fingerprint given: refused, whatever the command.
    for args in commands(&env) {
        let mut args = args.clone();
        args.push("--fingerprint".into());
        args.push("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH".into());
        let output = run(&env, &args, &[]);
        assert_exit(&output, 5, &["a pin is never overridden"], &args);
    }
    // This machine pinned another fingerprint for the vault (the directory was replaced by a
    // vault whose fingerprint the attacker hands out with it): giving the directory's own
    // fingerprint does not override the pin. It used to, for seal.
    let pinned = std::fs::read_to_string(&known).unwrap();
    let log = std::fs::read(env.vault().join("audit.jsonl")).unwrap();
    let other = "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567";
    std::fs::write(&known, pinned.replace(&fingerprint, other)).unwrap();
    for args in commands(&env) {
        let mut args = args.clone();
        args.push("--fingerprint".into());
        args.push(fingerprint.clone());
        let output = run(&env, &args, &[]);
        assert_exit(&output, 5, &[other], &args);
    }
    assert!(std::fs::read_to_string(&known).unwrap().contains(other));
    assert_eq!(std::fs::read(env.vault().join("audit.jsonl")).unwrap(), log);
    assert!(!env.path("request.json").exists());
}

/// The share words of `custodian` (the file without its comment lines).
fn words(env: &Env, custodian: &str) -> String {
    std::fs::read_to_string(env.path(&format!("shares/{custodian}.share")))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect()
}

#[test]
fn each_token_logs_in_only_with_its_own_pin_derived_from_the_quorum() {
    use secrecy::ExposeSecret;
    use vault_core::hsm::{HsmError, Module, PinRole, TokenSelector};
    use vault_core::trust::token_pin::token_pin;

    let (env, _) = vault();
    let share = |name: &str| {
        env.path(&format!("shares/{name}.share"))
            .display()
            .to_string()
    };
    env.ok(&[
        "hsm",
        "enroll",
        "--token",
        "backup",
        "--init-token",
        "--share-file",
        &share("alice"),
        "--share-file",
        &share("bob"),
    ]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.vault().join("vault.json")).unwrap()).unwrap();
    // vault.json is the certified manifest: the manifest proper is inside it.
    let manifest = manifest["manifest"].clone();
    let vault_id = manifest["vault_id"].as_str().unwrap();
    let serials: Vec<String> = manifest["hsms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert_eq!(h["pin_derivation"], "per-token/2", "{h}");
            h["serial"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(serials.len(), 2);
    let q =
        vault_core::quorum::combine_mnemonics(&[words(&env, "alice"), words(&env, "carol")], b"")
            .unwrap()
            .secret;

    // This process loads the vault's own SoftHSM token directory, as the binary does.
    // SAFETY: set before the module is loaded, and this test starts no thread.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(
            "SOFTHSM2_CONF",
            env.vault().join("softhsm").join("softhsm2.conf"),
        )
    };
    let module = Module::open(
        &vault_core::hsm::softhsm_module().expect("SoftHSM is not installed: run scripts/setup"),
    )
    .unwrap();
    for (serial, other) in [(&serials[0], &serials[1]), (&serials[1], &serials[0])] {
        let token = module
            .find_token(&TokenSelector::Serial(serial.clone()))
            .unwrap();
        let limits = token.description().pin_limits;
        for role in [PinRole::User, PinRole::SecurityOfficer] {
            let own = token_pin(q.expose_secret(), vault_id, serial, role, limits).unwrap();
            let others = token_pin(q.expose_secret(), vault_id, other, role, limits).unwrap();
            let session = module.open_session(&token).unwrap();
            // The other token's PIN, seen once, opens nothing here.
            assert!(
                matches!(
                    session.login(role, &others, true),
                    Err(HsmError::PinIncorrect { .. })
                ),
                "{serial} {role:?}"
            );
            session.login(role, &own, true).unwrap();
        }
    }
}
