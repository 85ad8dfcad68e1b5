//! `breakglass hsm ...`: the tokens a PKCS#11 module offers.

use anyhow::{Context, Result};
use vault_core::hsm::Module;

use crate::cli::HsmTokensArgs;

/// `breakglass hsm tokens`: lists the initialised tokens of a module with their PIN state.
pub fn tokens(args: &HsmTokensArgs) -> Result<()> {
    let module = Module::open(&args.module)?;
    let tokens = module
        .tokens()
        .with_context(|| format!("listing the tokens of {}", args.module.display()))?;
    if args.json {
        let list: Vec<_> = tokens
            .iter()
            .map(|t| {
                let d = t.description();
                serde_json::json!({
                    "label": d.label,
                    "serial": d.serial,
                    "manufacturer": d.manufacturer,
                    "model": d.model,
                    "user_pin_initialized": d.pins.user_initialized,
                    "user_pin_count_low": d.pins.user_count_low,
                    "user_pin_final_try": d.pins.user_final_try,
                    "user_pin_locked": d.pins.user_locked,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if tokens.is_empty() {
        println!("no initialised token in {}", args.module.display());
    }
    for token in &tokens {
        let d = token.description();
        let pin = if d.pins.user_locked {
            "user PIN LOCKED"
        } else if d.pins.user_final_try {
            "user PIN at its FINAL TRY"
        } else if d.pins.user_count_low {
            "user PIN: wrong tries recorded"
        } else if d.pins.user_initialized {
            "user PIN set"
        } else {
            "user PIN not set"
        };
        println!(
            "{:<32} serial {:<16} {} {} ({pin})",
            d.label, d.serial, d.manufacturer, d.model
        );
    }
    Ok(())
}
