//! Command-line types (clap only; validation happens in the commands).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit::EXIT_CODES_HELP;

/// Emergency ("break-glass") credentials sealed under a PKCS#11 HSM key and a k-of-n quorum of
/// custodians.
#[derive(Debug, Parser)]
#[command(name = "breakglass", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// PKCS#11 tokens.
    #[command(subcommand)]
    Hsm(HsmCommand),
}

/// `breakglass hsm ...`
#[derive(Debug, Subcommand)]
pub enum HsmCommand {
    /// List the initialised tokens of a PKCS#11 module, with their PIN state.
    Tokens(HsmTokensArgs),
}

/// `breakglass hsm tokens`
#[derive(Debug, Args)]
pub struct HsmTokensArgs {
    /// Path of the PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long, env = "BREAKGLASS_PKCS11_MODULE")]
    pub module: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
