//! End-to-end: the built binary against a throw-away SoftHSM token.

use std::process::Command;

use hsm_testing::softhsm::{self, SO_PIN, SoftHsm, USER_PIN};

fn breakglass(hsm: &SoftHsm) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_breakglass"));
    command
        .envs(hsm.env())
        .env_remove("BREAKGLASS_PKCS11_MODULE");
    command
}

#[test]
fn hsm_tokens_lists_the_token_with_its_pin_state() {
    let hsm = SoftHsm::new();
    hsm.init_token("e2e-token", SO_PIN, USER_PIN);
    let output = breakglass(&hsm)
        .args(["hsm", "tokens", "--json", "--module"])
        .arg(softhsm::module_path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tokens: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(tokens[0]["label"], "e2e-token");
    assert_eq!(tokens[0]["user_pin_initialized"], true);
    assert_eq!(tokens[0]["user_pin_locked"], false);
}

#[test]
fn a_missing_module_is_an_hsm_error_with_exit_4_naming_the_path() {
    let hsm = SoftHsm::for_children();
    let output = breakglass(&hsm)
        .args(["hsm", "tokens", "--module", "/nonexistent/libpkcs11.so"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/libpkcs11.so"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes() {
    let hsm = SoftHsm::for_children();
    let output = breakglass(&hsm).args(["no-such-command"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let help = breakglass(&hsm).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Exit codes: 0 ok"), "{text}");
}
