//! `breakglass`: emergency credentials sealed under a PKCS#11 key and a k-of-n custodian quorum.
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::FromArgMatches;

mod aws;
mod card;
mod cli;
mod commands;
mod custodian_keys;
mod examples;
mod exit;
mod hardening;
mod printable;
mod progress;
mod prompt;
mod report;
mod reveal;
mod runbook;

use cli::{
    AuditCommand, CeremonyCommand, Cli, Command, HsmCommand, MfaCommand, OperatorCommand,
    RecoveryCommand, SessionCommand, ShareCommand, SharesCommand,
};

fn main() -> ExitCode {
    hardening::die_quietly_on_closed_output();
    let cli = match examples::command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return if usage {
                exit::Failure::Usage.into()
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Every command, before it reads anything: which commands handle a secret is not a list
    // to keep up to date (a session's keys, an MFA seed, a ceremony's transport key...).
    if let Err(error) = hardening::harden() {
        eprintln!("breakglass: {error:#}");
        return exit::Failure::Other.into();
    }
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("breakglass: {error:#}");
            if let Some(advice) = exit::advice(&error) {
                eprintln!("breakglass: {advice}");
            }
            exit::classify(&error).into()
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let vault = cli.vault.as_deref();
    if let Command::Exec(args) = &cli.command {
        return commands::assume::exec(vault, args);
    }
    match cli.command {
        Command::Assume(args) => commands::assume::run(vault, &args),
        Command::Console(args) => commands::assume::console(vault, &args),
        Command::Drill(args) => commands::drill::run(vault, &args),
        Command::Ceremony(CeremonyCommand::Open(args)) => commands::ceremony::open(vault, &args),
        Command::Ceremony(CeremonyCommand::Contribute(args)) => {
            commands::ceremony::contribute(&args)
        }
        Command::Ceremony(CeremonyCommand::Status(args)) => {
            commands::ceremony::status(vault, &args)
        }
        Command::Ceremony(CeremonyCommand::Close(args)) => commands::ceremony::close(vault, &args),
        Command::Ceremony(CeremonyCommand::Cancel(args)) => {
            commands::ceremony::cancel(vault, &args)
        }
        Command::Session(SessionCommand::Credentials(args)) => {
            commands::session::credentials(&args)
        }
        Command::Session(SessionCommand::End(args)) => commands::session::end(&args),
        Command::AwsPolicy(args) => commands::policy::run(&args),
        Command::AwsSetup(args) => commands::aws_setup::run(&args),
        Command::Review(args) => commands::review::run(vault, &args),
        Command::RevokeSessions(args) => commands::policy::revoke(vault, &args),
        Command::Rotate(args) => commands::rotate::run(vault, &args),
        Command::Rekey(args) => commands::rekey::run(vault, &args),
        Command::Recovery(RecoveryCommand::Enable(args)) => {
            commands::recovery::enable(vault, &args)
        }
        Command::Recover(args) => commands::recovery::recover(vault, &args),
        Command::Exec(_) => unreachable!("handled above"),
        Command::Init(args) => commands::init::run(vault, &args),
        Command::Seal(args) => commands::seal::run(vault, &args),
        Command::List(args) => commands::list::list(vault, &args),
        Command::Status(args) => commands::list::status(vault, &args),
        Command::Unseal(args) => commands::unseal::run(vault, &args),
        Command::Share(ShareCommand::Verify(args)) => commands::share::verify(vault, &args),
        Command::Share(ShareCommand::Card(args)) => commands::share::card(vault, &args),
        Command::Audit(AuditCommand::Verify(args)) => commands::audit::verify(vault, &args),
        Command::Audit(AuditCommand::Show(args)) => commands::audit::show(vault, &args),
        Command::Audit(AuditCommand::Report(args)) => commands::audit::report(vault, &args),
        Command::Runbook(args) => commands::runbook::run(vault, &args),
        Command::Audit(AuditCommand::Repair(args)) => commands::audit::repair(vault, &args),
        Command::Operator(OperatorCommand::Key) => commands::operator::key(vault),
        Command::Operator(OperatorCommand::List(args)) => commands::operator::list(vault, &args),
        Command::Operator(OperatorCommand::Add(args)) => commands::operator::add(vault, &args),
        Command::Operator(OperatorCommand::Remove(args)) => {
            commands::operator::remove(vault, &args)
        }
        Command::Upgrade(args) => commands::upgrade::run(vault, &args),
        Command::Hsm(HsmCommand::Tokens(args)) => commands::hsm::tokens(&args),
        Command::Hsm(HsmCommand::Enroll(args)) => commands::hsm::enroll(vault, &args),
        Command::Hsm(HsmCommand::Check(args)) => commands::hsm::check(&args),
        Command::Mfa(MfaCommand::Codes(args)) => commands::mfa::codes(&args),
        Command::Completions(args) => commands::completions::completions(&args),
        Command::Man(args) => commands::completions::man(&args),
        Command::Shares(SharesCommand::Split(args)) => commands::shares::split(&args),
        Command::Shares(SharesCommand::Combine(args)) => commands::shares::combine(&args),
        Command::Shares(SharesCommand::Inspect(args)) => commands::shares::inspect(&args),
    }
    .map(|()| ExitCode::SUCCESS)
}
