//! SLIP-39 against the reference implementation (`shamir-mnemonic`), both directions: the
//! reference recombines shares we make, and we recombine shares the reference makes. Random
//! secrets (16 and 32 bytes), random group layouts, with and without a passphrase.

use std::io::Write;
use std::process::{Command, Stdio};

use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret;
use vault_core::quorum::{GroupSpec, SplitParams, combine_mnemonics, split};

const CASES: usize = 100;

const PYTHON: &str = r#"
import json, sys, random
import shamir_mnemonic as sm
out = {"ours": [], "theirs": []}
cases = json.load(sys.stdin)
for c in cases["ours"]:
    out["ours"].append(sm.combine_mnemonics(c["mnemonics"], c["passphrase"].encode()).hex())
for c in cases["theirs"]:
    groups = sm.generate_mnemonics(c["group_threshold"], [tuple(g) for g in c["groups"]],
        bytes.fromhex(c["secret"]), c["passphrase"].encode(), c["extendable"], c["iteration_exponent"])
    out["theirs"].append(groups)
json.dump(out, sys.stdout)
"#;

/// A small deterministic generator seeded from the OS, for layouts and subset choices.
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let mut seed = [0u8; 8];
        SystemRandom::new().fill(&mut seed).unwrap();
        Dice(u64::from_le_bytes(seed) | 1)
    }
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.below(256) as u8).collect()
    }
    fn layout(&mut self) -> (u8, Vec<(u8, u8)>) {
        let group_count = 1 + self.below(4);
        let groups: Vec<(u8, u8)> = (0..group_count)
            .map(|_| {
                let count = 1 + self.below(5) as u8;
                let threshold = if count == 1 {
                    1
                } else {
                    2 + self.below(count as usize - 1) as u8
                };
                (threshold, count)
            })
            .collect();
        (1 + self.below(group_count) as u8, groups)
    }
    fn passphrase(&mut self) -> String {
        if self.below(2) == 0 {
            String::new()
        } else {
            format!("pass phrase {}", self.below(1000))
        }
    }
    /// A qualifying subset: `group_threshold` random groups, `threshold` random members of each,
    /// shuffled.
    fn qualifying<T: Clone>(
        &mut self,
        group_threshold: u8,
        groups: &[Vec<T>],
        thresholds: &[u8],
    ) -> Vec<T> {
        let mut order: Vec<usize> = (0..groups.len()).collect();
        self.shuffle(&mut order);
        let mut chosen = Vec::new();
        for &g in order.iter().take(group_threshold as usize) {
            let mut members: Vec<usize> = (0..groups[g].len()).collect();
            self.shuffle(&mut members);
            chosen.extend(
                members
                    .iter()
                    .take(thresholds[g] as usize)
                    .map(|&m| groups[g][m].clone()),
            );
        }
        self.shuffle(&mut chosen);
        chosen
    }
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

#[test]
fn reference_implementation_and_breakglass_recombine_each_others_shares() {
    let mut dice = Dice::new();
    let mut ours = Vec::new();
    let mut ours_expected = Vec::new();
    let mut theirs = Vec::new();
    let mut theirs_cases = Vec::new();
    for i in 0..CASES {
        let length = if i % 2 == 0 { 16 } else { 32 };
        // Our shares, for the reference to recombine.
        let secret = dice.bytes(length);
        let (group_threshold, groups) = dice.layout();
        let passphrase = dice.passphrase();
        let params = SplitParams {
            group_threshold,
            groups: groups
                .iter()
                .map(|&(threshold, count)| GroupSpec { threshold, count })
                .collect(),
            iteration_exponent: dice.below(2) as u8,
            extendable: dice.below(2) == 0,
        };
        let shares = split(&secret, passphrase.as_bytes(), &params).unwrap();
        let mnemonics: Vec<Vec<String>> = shares
            .iter()
            .map(|g| {
                g.iter()
                    .map(|s| s.to_mnemonic().expose_secret().to_owned())
                    .collect()
            })
            .collect();
        let thresholds: Vec<u8> = groups.iter().map(|g| g.0).collect();
        let subset = dice.qualifying(group_threshold, &mnemonics, &thresholds);
        ours.push(serde_json::json!({ "mnemonics": subset, "passphrase": passphrase }));
        ours_expected.push(hex::encode(&secret));

        // The reference's shares, for us to recombine.
        let secret = dice.bytes(length);
        let (group_threshold, groups) = dice.layout();
        let passphrase = dice.passphrase();
        theirs.push(serde_json::json!({
            "group_threshold": group_threshold, "groups": groups, "secret": hex::encode(&secret),
            "passphrase": passphrase, "extendable": dice.below(2) == 0,
            "iteration_exponent": dice.below(2),
        }));
        theirs_cases.push((secret, group_threshold, groups, passphrase));
    }

    let python = hsm_testing::tools::venv_program("python");
    let mut child = Command::new(&python)
        .args(["-c", PYTHON])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::json!({ "ours": ours, "theirs": theirs });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "shamir-mnemonic failed (run scripts/setup):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let recovered = answer["ours"].as_array().unwrap();
    assert_eq!(recovered.len(), CASES);
    for (i, (got, want)) in recovered.iter().zip(&ours_expected).enumerate() {
        assert_eq!(
            got.as_str().unwrap(),
            want,
            "case {i}: the reference recombined our shares"
        );
    }
    let made = answer["theirs"].as_array().unwrap();
    assert_eq!(made.len(), CASES);
    for (i, (groups_json, (secret, group_threshold, groups, passphrase))) in
        made.iter().zip(&theirs_cases).enumerate()
    {
        let mnemonics: Vec<Vec<String>> = serde_json::from_value(groups_json.clone()).unwrap();
        let thresholds: Vec<u8> = groups.iter().map(|g| g.0).collect();
        let subset = dice.qualifying(*group_threshold, &mnemonics, &thresholds);
        let combined = combine_mnemonics(&subset, passphrase.as_bytes())
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(
            combined.secret.expose_secret(),
            secret.as_slice(),
            "case {i}: we recombined the reference's"
        );
        // One share short of the quorum never recombines.
        let short = &subset[1..];
        assert!(
            combine_mnemonics(short, passphrase.as_bytes()).is_err(),
            "case {i}: short subset"
        );
    }
}
