//! `breakglass`: emergency credentials sealed under a PKCS#11 key and a k-of-n custodian quorum.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {}
}
