//! End-to-end: custodians' recipients. A share file encrypted to a custodian's key (age
//! X25519, ssh-ed25519 or ssh-rsa) at init is encrypted to the same key at every rekey and
//! recovery change, because the vault remembers the recipient in its certified manifest;
//! `--recipient` replaces it, `--no-recipient` drops it, and each is said per custodian. The
//! files are decrypted here by the age crate, by rage and by breakglass itself, with identities
//! and ssh keys this test makes. A recipient changed in the vault directory outside a quorum
//! is refused; a card of an encrypted share carries no words.

use std::path::{Path, PathBuf};
use std::process::Command;

use hsm_testing::tools::{cargo_program, system_program};

mod support;

use support::{Env, as_strs, stderr};

/// An ssh key pair made by ssh-keygen: the private key file and the public key line.
fn ssh_key(dir: &Path, name: &str, kind: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let mut keygen = Command::new(system_program("ssh-keygen", "openssh-client"));
    keygen
        .args([
            "-q",
            "-t",
            kind,
            "-N",
            "",
            "-C",
            &format!("{name}@test"),
            "-f",
        ])
        .arg(&key);
    if kind == "rsa" {
        keygen.args(["-b", "2048"]);
    }
    let output = keygen.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_owned())
}

/// An age X25519 identity made with the age crate, written as an identity file.
fn age_identity(dir: &Path, name: &str) -> (PathBuf, age::x25519::Identity, String) {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let file = dir.join(format!("{name}.agekey"));
    std::fs::write(&file, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    let public = identity.to_public().to_string();
    (file, identity, public)
}

/// The words of a plaintext share file.
fn words(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words in an age-encrypted share file, decrypted with the age crate.
fn decrypt_with_crate(file: &Path, identity: &age::x25519::Identity) -> String {
    let plaintext = age::decrypt(identity, &std::fs::read(file).unwrap()).unwrap();
    words(&String::from_utf8(plaintext).unwrap())
}

/// The words in an age-encrypted share file, decrypted by rage with `key`.
fn decrypt_with_rage(file: &Path, key: &Path) -> String {
    let output = Command::new(cargo_program("rage"))
        .arg("-d")
        .arg("-i")
        .arg(key)
        .arg(file)
        .output()
        .unwrap();
    assert!(output.status.success(), "rage: {}", stderr(&output));
    words(&String::from_utf8(output.stdout).unwrap())
}

/// vault.json, parsed.
fn vault_json(env: &Env) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(env.vault().join("vault.json")).unwrap()).unwrap()
}

/// `rekey --yes` with `old` shares (paths under the test directory) and `extra`.
fn rekey(env: &Env, old: &[&str], extra: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = vec!["rekey".into(), "--yes".into()];
    for share in old {
        args.push("--share-file".into());
        args.push(env.path(share).display().to_string());
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    env.run(&as_strs(&args))
}

fn recipient_arg(name: &str, public: &str) -> String {
    format!("{name}={public}")
}

/// A directory for the keys the custodians (and the attacker) make.
fn keys_dir(env: &Env) -> PathBuf {
    let keys = env.path("keys");
    std::fs::create_dir(&keys).unwrap();
    keys
}

/// `share verify` of the share file `file` (under the test directory) opened with `key`.
fn verify(env: &Env, file: &str, key: &Path) -> std::process::Output {
    env.run(&[
        "share",
        "verify",
        "--share-file",
        env.path(file).to_str().unwrap(),
        "--identity",
        key.to_str().unwrap(),
    ])
}

/// `recovery enable --yes`, 3 needed, with bob's and cy's shares, files in `recovery/`.
fn enable_recovery(env: &Env, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "recovery".to_owned(),
        "enable".into(),
        "--threshold".into(),
        "3".into(),
        "--yes".into(),
        "--shares-dir".into(),
        env.path("recovery").display().to_string(),
    ];
    for share in ["shares/bob.share", "shares/cy.share"] {
        args.extend(["--share-file".into(), env.path(share).display().to_string()]);
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    env.run(&as_strs(&args))
}

#[test]
fn rekey_keeps_each_custodians_recipient_unless_told_and_says_what_it_did() {
    let env = Env::new();
    let keys = keys_dir(&env);
    let (ann_file, ann_identity, ann_public) = age_identity(&keys, "ann");
    let (bob_key, bob_public) = ssh_key(&keys, "bob", "ed25519");
    let (cy_key, cy_public) = ssh_key(&keys, "cy", "rsa");
    env.init_vault(
        &["ann", "bob", "cy"],
        2,
        &[
            "--recipient",
            &recipient_arg("ann", &ann_public),
            "--recipient",
            &recipient_arg("bob", &bob_public),
        ],
    );
    // Remembered, authenticated: in the certified manifest, format 2, without the comment.
    let manifest = vault_json(&env);
    assert_eq!(manifest["manifest"]["format"], "breakglass-vault/2");
    assert_eq!(manifest["manifest"]["recipients"]["ann"], ann_public);
    let bob_remembered = manifest["manifest"]["recipients"]["bob"].as_str().unwrap();
    assert!(
        bob_remembered.starts_with("ssh-ed25519 AAAA"),
        "{bob_remembered}"
    );
    assert!(!bob_remembered.contains("bob@test"), "{bob_remembered}");
    assert!(manifest["manifest"]["recipients"].get("cy").is_none());
    let init_words = [
        decrypt_with_crate(&env.path("shares/ann.share.age"), &ann_identity),
        decrypt_with_rage(&env.path("shares/bob.share.age"), &bob_key),
    ];
    assert!(init_words.iter().all(|w| w.split(' ').count() == 33));

    // A rekey with no recipient options: ann and bob stay encrypted to their keys, cy's share
    // is in plaintext, and the rekey says so for each.
    let output = rekey(
        &env,
        &["shares/cy.share"],
        &[
            "--share-file",
            env.path("shares/ann.share.age").to_str().unwrap(),
            "--identity",
            ann_file.to_str().unwrap(),
            "--shares-dir",
            env.path("second").to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let said = stderr(&output);
    assert!(
        said.contains(&format!(
            "ann: encrypted to the remembered recipient {ann_public}"
        )),
        "{said}"
    );
    assert!(
        said.contains("bob: encrypted to the remembered recipient ssh-ed25519 SHA256:"),
        "{said}"
    );
    assert!(
        said.contains("cy: in plaintext (no recipient: give --recipient cy=... to encrypt it)"),
        "{said}"
    );
    assert!(!env.path("second/ann.share").exists());
    assert!(!env.path("second/bob.share").exists());
    let ann_second = decrypt_with_crate(&env.path("second/ann.share.age"), &ann_identity);
    let bob_second = decrypt_with_rage(&env.path("second/bob.share.age"), &bob_key);
    assert!(!init_words.contains(&ann_second) && !init_words.contains(&bob_second));
    assert_eq!(
        words(&std::fs::read_to_string(env.path("second/cy.share")).unwrap())
            .split(' ')
            .count(),
        33
    );
    // The fingerprint ssh-keygen prints for bob's key is the one the rekey named.
    let keygen = Command::new(system_program("ssh-keygen", "openssh-client"))
        .args(["-l", "-E", "sha256", "-f"])
        .arg(bob_key.with_extension("pub"))
        .output()
        .unwrap();
    let bob_fingerprint = String::from_utf8(keygen.stdout)
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(said.contains(&bob_fingerprint), "{bob_fingerprint}: {said}");

    // The new shares open the vault, bob's through breakglass with his ssh key.
    let output = verify(&env, "second/bob.share.age", &bob_key);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("bob"));

    // Told otherwise: ann's recipient dropped, cy's given (ssh-rsa); bob's kept.
    let output = rekey(
        &env,
        &["second/cy.share"],
        &[
            "--share-file",
            env.path("second/bob.share.age").to_str().unwrap(),
            "--identity",
            bob_key.to_str().unwrap(),
            "--shares-dir",
            env.path("third").to_str().unwrap(),
            "--no-recipient",
            "ann",
            "--recipient",
            &recipient_arg("cy", &cy_public),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let said = stderr(&output);
    assert!(said.contains("ann: in plaintext (--no-recipient"), "{said}");
    assert!(said.contains("cy: encrypted to ssh-rsa SHA256:"), "{said}");
    assert!(env.path("third/ann.share").exists());
    assert!(!env.path("third/cy.share").exists());
    let cy_third = decrypt_with_rage(&env.path("third/cy.share.age"), &cy_key);
    assert_eq!(cy_third.split(' ').count(), 33);
    decrypt_with_rage(&env.path("third/bob.share.age"), &bob_key);
    let recipients = &vault_json(&env)["manifest"]["recipients"];
    assert!(recipients.get("ann").is_none(), "{recipients}");
    assert!(recipients["cy"].as_str().unwrap().starts_with("ssh-rsa "));
    // cy opens their rsa-encrypted share with breakglass too.
    let output = verify(&env, "third/cy.share.age", &cy_key);
    assert!(output.status.success(), "{}", stderr(&output));

    // A passphrase-protected key with no terminal to ask on is named as such.
    let (locked, _) = ssh_key(&keys, "locked", "ed25519");
    let relock = Command::new(system_program("ssh-keygen", "openssh-client"))
        .args(["-q", "-p", "-N", "a passphrase", "-P", "", "-f"])
        .arg(&locked)
        .output()
        .unwrap();
    assert!(relock.status.success(), "{}", stderr(&relock));
    let output = verify(&env, "third/cy.share.age", &locked);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("protected by a passphrase"),
        "{}",
        stderr(&output)
    );

    // Dropping every recipient goes back to format 1.
    let output = rekey(
        &env,
        &["third/ann.share"],
        &[
            "--share-file",
            env.path("third/bob.share.age").to_str().unwrap(),
            "--identity",
            bob_key.to_str().unwrap(),
            "--shares-dir",
            env.path("fourth").to_str().unwrap(),
            "--no-recipient",
            "bob",
            "--no-recipient",
            "cy",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = vault_json(&env);
    assert_eq!(manifest["manifest"]["format"], "breakglass-vault/1");
    assert!(manifest["manifest"].get("recipients").is_none());
}

#[test]
fn recovery_enable_encrypts_to_the_remembered_recipients_and_keeps_the_fingerprint() {
    let env = Env::new();
    let keys = keys_dir(&env);
    let (_, ann_identity, ann_public) = age_identity(&keys, "ann");
    let (bob_key, bob_public) = ssh_key(&keys, "bob", "ed25519");
    env.init_vault(
        &["ann", "bob", "cy"],
        2,
        &["--recipient", &recipient_arg("ann", &ann_public)],
    );
    let before = env.status()["fingerprint"].clone();
    let output = enable_recovery(&env, &["--recipient", &recipient_arg("bob", &bob_public)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let said = stderr(&output);
    assert!(
        said.contains(&format!(
            "ann: encrypted to the remembered recipient {ann_public}"
        )),
        "{said}"
    );
    assert!(
        said.contains("bob: encrypted to ssh-ed25519 SHA256:"),
        "{said}"
    );
    assert!(said.contains("cy: in plaintext (no recipient"), "{said}");
    decrypt_with_crate(&env.path("recovery/ann.recovery.share.age"), &ann_identity);
    decrypt_with_rage(&env.path("recovery/bob.recovery.share.age"), &bob_key);
    assert!(env.path("recovery/cy.recovery.share").exists());
    // The recipients are not part of what custodians compare: the cards stay valid.
    assert_eq!(env.status()["fingerprint"], before);
    let recipients = &vault_json(&env)["manifest"]["recipients"];
    assert_eq!(recipients["ann"], ann_public);
    assert!(
        recipients["bob"]
            .as_str()
            .unwrap()
            .starts_with("ssh-ed25519 ")
    );
}

#[test]
fn a_malformed_or_unsupported_recipient_is_refused_naming_the_custodian_and_the_flag() {
    let env = Env::new();
    let keys = keys_dir(&env);
    let (_, ecdsa_public) = ssh_key(&keys, "dee", "ecdsa");
    for (recipient, reason) in [
        (
            "bob=ssh-ed25519 AAAAnot-base64",
            "not a valid OpenSSH public key line",
        ),
        ("bob=ssh-rsa", "not a valid OpenSSH public key line"),
        (&*format!("bob={ecdsa_public}"), "not supported by age"),
        ("bob=age1notbech32", "not an age X25519 recipient"),
        ("bob=AGE-SECRET-KEY-1XYZ", "expected an age recipient"),
    ] {
        let output = env.run(&as_strs(&env.init_args(
            &["ann", "bob"],
            2,
            &["--recipient", recipient],
        )));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{recipient}: {}",
            stderr(&output)
        );
        let said = stderr(&output);
        assert!(
            said.contains("--recipient bob=...") && said.contains(reason),
            "{said}"
        );
        assert!(!env.vault().exists(), "nothing is made");
    }
}

#[test]
fn a_remembered_recipient_is_never_dropped_silently() {
    let env = Env::new();
    let keys = keys_dir(&env);
    let (_, _, ann_public) = age_identity(&keys, "ann");
    env.init_vault(
        &["ann", "bob"],
        2,
        &["--recipient", &recipient_arg("ann", &ann_public)],
    );
    // Cards alone cannot hold ann's encrypted share.
    let output = rekey(
        &env,
        &["shares/bob.share"],
        &["--share-cards", env.path("cards").to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the vault remembers a recipient for ann"),
        "{}",
        stderr(&output)
    );
    assert!(!env.path("cards").exists());
    // --no-recipient names a custodian with a remembered recipient.
    for (name, said) in [
        ("bob", "the vault remembers no recipient for bob"),
        ("zed", "zed is not a custodian"),
    ] {
        let output = rekey(
            &env,
            &["shares/bob.share"],
            &[
                "--shares-dir",
                env.path("new").to_str().unwrap(),
                "--no-recipient",
                name,
            ],
        );
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains(said), "{}", stderr(&output));
    }
}

#[test]
fn a_recipient_changed_in_the_vault_directory_outside_a_quorum_is_refused() {
    let env = Env::new();
    let keys = keys_dir(&env);
    let (ann_file, _, ann_public) = age_identity(&keys, "ann");
    let (_, attacker, attacker_public) = age_identity(&keys, "mallory");
    env.init_vault(
        &["ann", "bob", "cy"],
        2,
        &["--recipient", &recipient_arg("ann", &ann_public)],
    );
    // The attacker, with write access to the vault directory only, swaps ann's recipient
    // for theirs (and adds one for bob) so that the next rekey hands them the shares.
    let path = env.vault().join("vault.json");
    let genuine = std::fs::read(&path).unwrap();
    let mut edited = vault_json(&env);
    edited["manifest"]["recipients"]["ann"] = attacker_public.clone().into();
    edited["manifest"]["recipients"]["bob"] = attacker_public.clone().into();
    std::fs::write(&path, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();

    let output = rekey(
        &env,
        &["shares/bob.share", "shares/cy.share"],
        &["--shares-dir", env.path("new").to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("vault.json"),
        "{}",
        stderr(&output)
    );
    assert!(!env.path("new").exists(), "no share was handed out");
    // Nor does recovery enable, or a card, use it.
    let output = enable_recovery(&env, &[]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(!env.path("recovery").exists());

    // Put back, the genuine recipient is used: ann's new share opens with ann's key only.
    std::fs::write(&path, genuine).unwrap();
    let output = rekey(
        &env,
        &["shares/bob.share", "shares/cy.share"],
        &["--shares-dir", env.path("new").to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let file = env.path("new/ann.share.age");
    assert!(age::decrypt(&attacker, &std::fs::read(&file).unwrap()).is_err());
    let output = verify(&env, "new/ann.share.age", &ann_file);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn the_card_of_an_encrypted_share_says_where_it_is_instead_of_the_words() {
    let env = Env::new();
    let keys = keys_dir(&env);
    let (ann_file, ann_identity, ann_public) = age_identity(&keys, "ann");
    let (_, bob_public) = ssh_key(&keys, "bob", "ed25519");
    env.init_vault(
        &["ann", "bob", "cy"],
        2,
        &[
            "--recipient",
            &recipient_arg("ann", &ann_public),
            "--recipient",
            &recipient_arg("bob", &bob_public),
            "--share-cards",
            env.path("cards").to_str().unwrap(),
        ],
    );
    let ann_words = decrypt_with_crate(&env.path("shares/ann.share.age"), &ann_identity);
    let card = std::fs::read_to_string(env.path("cards/ann.html")).unwrap();
    assert!(card.contains("Your share is not on this card"), "{card}");
    assert!(card.contains("ann.share.age"), "{card}");
    assert!(card.contains(&ann_public), "{card}");
    assert!(!card.contains("<svg"), "no QR code");
    for word in ann_words.split(' ') {
        assert!(
            !card.contains(&format!("</span> {word}</li>")),
            "the card shows the word {word}"
        );
    }
    let bob_card = std::fs::read_to_string(env.path("cards/bob.html")).unwrap();
    assert!(bob_card.contains("bob.share.age") && bob_card.contains("ssh-ed25519 SHA256:"));
    // cy has no recipient: the words are on the card as before.
    let cy_words = words(&std::fs::read_to_string(env.path("shares/cy.share")).unwrap());
    let cy_card = std::fs::read_to_string(env.path("cards/cy.html")).unwrap();
    let first = cy_words.split(' ').next().unwrap();
    assert!(
        cy_card.contains(&format!("</span> {first}</li>")),
        "{cy_card}"
    );

    // Printed again from the encrypted file, the card still carries no words.
    env.ok(&[
        "share",
        "card",
        "--share-file",
        env.path("shares/ann.share.age").to_str().unwrap(),
        "--identity",
        ann_file.to_str().unwrap(),
        "--out",
        env.path("reprint").to_str().unwrap(),
    ]);
    let card = std::fs::read_to_string(env.path("reprint/ann.html")).unwrap();
    assert!(card.contains("Your share is not on this card") && card.contains("ann.share.age"));
    assert!(!card.contains(&format!(
        "</span> {}</li>",
        ann_words.split(' ').next().unwrap()
    )));
}
