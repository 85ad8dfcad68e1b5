//! Command-line types (clap only; validation happens in the commands).

use clap::{Parser, Subcommand};

/// Emergency ("break-glass") credentials sealed under a PKCS#11 HSM key and a k-of-n quorum of
/// custodians.
#[derive(Debug, Parser)]
#[command(name = "breakglass", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {}
