//! `breakglass`: emergency credentials sealed under a PKCS#11 key and a k-of-n custodian quorum.
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

#[allow(dead_code)]
mod aws;
mod cli;

#[allow(unreachable_code)] // until the first command lands
fn main() -> ExitCode {
    let cli::Cli { command } = cli::Cli::parse();
    match command {}
}
