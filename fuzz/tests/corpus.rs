//! Every input kept in the repository for a fuzz target (its corpus, and the crashes found
//! and fixed, under `regressions/`) runs through that target's harness: a crash that came back
//! fails here, in the ordinary test suite, without a fuzzer.

use std::path::Path;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("a directory entry").path())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

#[test]
fn every_corpus_and_regression_input_runs_through_its_target_without_a_crash() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, harness) in breakglass_fuzz::TARGETS {
        let corpus = inputs(&root.join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz target {name} has no corpus in fuzz/corpus/{name}: seed it (fuzz/README.md)"
        );
        for input in corpus
            .iter()
            .chain(&inputs(&root.join("regressions").join(name)))
        {
            let bytes = std::fs::read(input).expect("reading a corpus input");
            harness(&bytes);
        }
    }
}

#[test]
fn the_fixture_files_parse_and_open_with_the_fixture_keys() {
    use vault_core::secret::ExposeSecret;
    let shares = breakglass_fuzz::fixtures::shares();
    let envelope = breakglass_fuzz::fixtures::envelope();
    let token = breakglass_fuzz::fixtures::token_key();
    let quorum = breakglass_fuzz::fixtures::quorum_key();
    let payload = envelope
        .open(&token, &quorum, Path::new("prod.json"))
        .expect("the fixture envelope opens");
    assert!(vault_core::credential::AwsKeys::from_payload(payload.expose_secret()).is_ok());
    let request = breakglass_fuzz::fixtures::request();
    let contribution = breakglass_fuzz::fixtures::contribution("g0m0", &shares[0][0]);
    let mnemonic = contribution
        .open(
            &request,
            &breakglass_fuzz::fixtures::transport_key(),
            "contribution",
        )
        .expect("the fixture contribution opens");
    assert_eq!(
        mnemonic.as_str(),
        shares[0][0].to_mnemonic().expose_secret()
    );
}
