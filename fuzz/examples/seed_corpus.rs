//! Writes the seed inputs of every fuzz target into `fuzz/corpus/<target>/seed-*`: valid files
//! made by the library with the fixture keys (see `breakglass_fuzz::fixtures`), so that the
//! fuzzer starts from inputs that pass every check. `cargo run -p breakglass-fuzz --example
//! seed_corpus`; the shares are random, so each run writes different (equally valid) seeds.

use std::path::Path;

use breakglass_fuzz::fixtures;
use vault_core::secret::ExposeSecret;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("creating the corpus directory");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("writing a seed");
}

fn main() {
    let shares = fixtures::shares();
    let manifest = fixtures::manifest(&shares);

    // Enough shares for a quorum (group 0: 2 of 3, group 1: 1 of 1), and a short one.
    let quorum: Vec<String> = [&shares[0][0], &shares[0][2], &shares[1][0]]
        .iter()
        .map(|s| s.to_mnemonic().expose_secret().to_owned())
        .collect();
    write(
        "share_mnemonics",
        "quorum",
        (quorum.join("\n") + "\n").as_bytes(),
    );
    write(
        "share_mnemonics",
        "one",
        shares[2][4].to_mnemonic().expose_secret().as_bytes(),
    );

    write("envelope", "aws", &fixtures::envelope().to_bytes());
    write("manifest", "vault", &manifest.to_bytes());
    let mut with_recovery = manifest.clone();
    let mut recovery = manifest.quorum.clone();
    recovery.public_key = hex::encode(fixtures::token_key().public_key_bytes());
    with_recovery.recovery = Some(recovery);
    write("manifest", "recovery", &with_recovery.to_bytes());

    write("ceremony_request", "rekey", &fixtures::request().to_bytes());
    write(
        "ceremony_contribution",
        "g0m0",
        &fixtures::contribution("g0m0", &shares[0][0]).to_bytes(),
    );
    write("audit_log", "checkpoints", &fixtures::audit_log());

    let mut next = manifest.clone();
    next.quorum.groups.truncate(1);
    next.quorum.group_threshold = 1;
    write(
        "rekey_journal",
        "rekey",
        &fixtures::rekey_journal(&fixtures::certified(manifest.clone(), 1), &next),
    );

    write(
        "aws_keys",
        "create-access-key",
        fixtures::CREATE_ACCESS_KEY_JSON.as_bytes(),
    );
    write(
        "aws_keys",
        "payload",
        &vault_core::credential::AwsKeys::from_input(fixtures::CREATE_ACCESS_KEY_JSON.as_bytes())
            .expect("the fixture parses")
            .to_payload(),
    );

    write(
        "age_share_file",
        "armored",
        fixtures::age_share_file("g2m0", &shares[2][0]).as_bytes(),
    );
    write(
        "age_share_file",
        "plain",
        fixtures::share_file("g2m1", &shares[2][1]).as_bytes(),
    );
}
