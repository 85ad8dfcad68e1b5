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
    /// SLIP-39 shares on their own: split a secret, combine shares, inspect shares.
    #[command(subcommand)]
    Shares(SharesCommand),
}

/// `breakglass shares ...`
#[derive(Debug, Subcommand)]
pub enum SharesCommand {
    /// Split a secret into SLIP-39 shares (hex secret on stdin, or a fresh random one).
    ///
    /// Prints one mnemonic per line, groups separated by a blank line.
    Split(SharesSplitArgs),
    /// Combine SLIP-39 shares from stdin (one per line) and print the secret in hex.
    ///
    /// Any share error exits with code 3 and names the share (by line order) and the problem.
    Combine(SharesCombineArgs),
    /// Show the public fields of SLIP-39 shares from stdin, without combining them.
    Inspect(SharesInspectArgs),
}

/// `breakglass shares split`
#[derive(Debug, Args)]
pub struct SharesSplitArgs {
    /// How many groups are needed.
    #[arg(long, default_value_t = 1)]
    pub group_threshold: u8,
    /// A group as THRESHOLD/COUNT (e.g. 2/3); repeat for more groups.
    #[arg(long, required = true)]
    pub group: Vec<String>,
    /// Read the secret, in hex, from standard input (otherwise a random one is generated).
    #[arg(long)]
    pub secret_stdin: bool,
    /// Length in bytes of a generated secret (16 to 32, even).
    #[arg(long, default_value_t = 32, conflicts_with = "secret_stdin")]
    pub generate_bytes: u8,
    /// Name of an environment variable holding the passphrase (never the passphrase itself).
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// Passphrase-encryption iteration exponent (10000 × 2^E PBKDF2 iterations).
    #[arg(long, default_value_t = 1)]
    pub iteration_exponent: u8,
    /// Make a non-extendable share set (older SLIP-39 implementations).
    #[arg(long)]
    pub no_extendable: bool,
    /// Print {"identifier": ..., "groups": [[mnemonic, ...], ...]}.
    #[arg(long)]
    pub json: bool,
}

/// `breakglass shares combine`
#[derive(Debug, Args)]
pub struct SharesCombineArgs {
    /// Name of an environment variable holding the passphrase.
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
}

/// `breakglass shares inspect`
#[derive(Debug, Args)]
pub struct SharesInspectArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
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
