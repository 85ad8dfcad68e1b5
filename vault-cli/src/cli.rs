//! Command-line types (clap only; validation happens in the commands).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use vault_core::envelope::Kind;
use vault_core::manifest::PinSource;

use crate::exit::EXIT_CODES_HELP;

/// A vault for emergency ("break-glass") credentials: sealed offline, opened only by a k-of-n
/// quorum of custodians together with a PKCS#11 hardware token.
#[derive(Debug, Parser)]
#[command(name = "breakglass", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// The vault directory.
    #[arg(long, global = true, env = "BREAKGLASS_VAULT", value_name = "DIR")]
    pub vault: Option<PathBuf>,
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
    /// Create a vault: quorum secret, custodians' shares, token keys, manifest.
    Init(InitArgs),
    /// Seal a credential (offline: needs neither the token nor the shares).
    Seal(SealArgs),
    /// List the sealed credentials with their public metadata.
    List(ReportArgs),
    /// Show the vault: fingerprint, tokens, custodians, credentials, drills, audit chain.
    Status(ReportArgs),
    /// Open a credential with a quorum of shares and an enrolled token.
    Unseal(UnsealArgs),
    /// Open an aws credential with a quorum and assume its emergency role through STS.
    Assume(AssumeArgs),
    /// Assume the role and run a command with the session in its environment.
    Exec(ExecArgs),
    /// Assume the role and print a console sign-in URL for the session.
    Console(ConsoleArgs),
    /// Prove the emergency path works without using it: shares, token, every envelope.
    Drill(DrillArgs),
    /// Sessions cached by `assume --cache`, for AWS `credential_process` profiles.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Print least-privilege IAM documents for the break-glass user and the emergency role.
    AwsPolicy(AwsPolicyArgs),
    /// The AWS side as code: user, least-privilege policy, emergency role, member roles, and
    /// an alert on every use (CloudFormation, Terraform, or made now with --apply).
    AwsSetup(Box<AwsSetupArgs>),
    /// After the incident: every action taken with a ceremony's sessions, from CloudTrail, and
    /// the changes AWS Config recorded to what they touched.
    Review(ReviewArgs),
    /// After the incident: deny every session of the role (and user) issued before now.
    RevokeSessions(RevokeArgs),
    /// Replace the sealed AWS key with a new one, crash-safe (needs a quorum).
    Rotate(RotateArgs),
    /// New quorum secret and shares (optionally new custodians): old shares stop working.
    Rekey(RekeyArgs),
    /// The recovery share set, for the day every token is lost.
    #[command(subcommand)]
    Recovery(RecoveryCommand),
    /// Open a credential with no token: the quorum's shares and the recovery shares.
    Recover(RecoverArgs),
    /// Remote, asynchronous ceremonies: custodians contribute from wherever they are.
    #[command(subcommand)]
    Ceremony(CeremonyCommand),
    /// A custodian's own share.
    #[command(subcommand)]
    Share(ShareCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The people who operate the vault: security officers and cloud administrators.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Upgrade in place a vault made by an earlier release (format 1, or a certified vault whose
    /// audit log is not signed yet), with a quorum and a token; no other command uses such a
    /// vault.
    Upgrade(UpgradeArgs),
    /// The emergency access runbook for this vault, printable (Markdown or HTML).
    Runbook(RunbookArgs),
    /// The virtual MFA device's seed: the codes that enable it.
    #[command(subcommand)]
    Mfa(MfaCommand),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Write the man pages (breakglass.1 and one per command) into a directory.
    Man(ManArgs),
}

/// `breakglass mfa ...`
#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// Print two consecutive codes from a seed, for `aws iam enable-mfa-device` (never the seed).
    Codes(MfaCodesArgs),
}

/// `breakglass mfa codes`
#[derive(Debug, Args)]
pub struct MfaCodesArgs {
    /// The seed file `aws iam create-virtual-mfa-device --bootstrap-method Base32StringSeed
    /// --outfile FILE` wrote.
    #[arg(long, value_name = "FILE", conflicts_with = "seed_stdin")]
    pub seed_file: Option<PathBuf>,
    /// Read the base32 seed from standard input.
    #[arg(long)]
    pub seed_stdin: bool,
}

/// `breakglass completions`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `breakglass man`
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory the pages go into (made if missing; pages there are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Where shares come from (unseal, drill, ...).
#[derive(Debug, Args)]
pub struct ShareSources {
    /// A share file (as written by `init --shares-dir`, or one mnemonic); repeat per share.
    #[arg(long = "share-file", value_name = "FILE")]
    pub share_files: Vec<PathBuf>,
    /// Read shares from standard input, one mnemonic per line.
    #[arg(long)]
    pub shares_stdin: bool,
    /// An age identity file or OpenSSH private key, for share files encrypted to a custodian's key.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Shares already gathered (a remote ceremony's contributions).
    #[arg(skip)]
    pub collected: std::cell::RefCell<Option<vault_core::quorum::Collector>>,
}

/// Who the custodians are and how many are needed.
#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// A custodian (repeat); with --threshold: one group of custodians.
    #[arg(long = "custodian", value_name = "NAME")]
    pub custodians: Vec<String>,
    /// How many custodians are needed (with --custodian).
    #[arg(long)]
    pub threshold: Option<u8>,
    /// A group as NAME:THRESHOLD:MEMBER,MEMBER,... (repeat), with --group-threshold.
    #[arg(long = "group", value_name = "NAME:T:MEMBERS")]
    pub groups: Vec<String>,
    /// How many groups are needed (with --group).
    #[arg(long, default_value_t = 1)]
    pub group_threshold: u8,
}

/// Where new shares go.
#[derive(Debug, Args)]
pub struct HandoutArgs {
    /// Write one share file per custodian into DIR (DIR/<custodian>.share, 0600, never overwriting).
    #[arg(long, value_name = "DIR")]
    pub shares_dir: Option<PathBuf>,
    /// Encrypt that custodian's share file to their key (repeat): NAME=age1..., or
    /// NAME="ssh-ed25519 AAAA..." / NAME="ssh-rsa AAAA..." (an OpenSSH public key line).
    /// Written as DIR/<custodian>.share.age, readable with --identity, age or rage. The vault
    /// remembers it: later rekeys and recovery changes encrypt to it again.
    #[arg(
        long = "recipient",
        value_name = "NAME=RECIPIENT",
        requires = "shares_dir"
    )]
    pub recipients: Vec<String>,
    /// Forget the recipient the vault remembers for this custodian (repeat): their new share
    /// is handed out in plaintext (rekey, recovery enable).
    #[arg(long = "no-recipient", value_name = "NAME")]
    pub no_recipients: Vec<String>,
    /// Write a printable HTML share card per custodian into DIR.
    #[arg(long, value_name = "DIR")]
    pub share_cards: Option<PathBuf>,
}

/// `breakglass init`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The custodians.
    #[command(flatten)]
    pub layout: LayoutArgs,
    /// Create a SoftHSM token inside the vault directory (a software token: trials and demos).
    #[arg(long, conflicts_with_all = ["module", "token"])]
    pub dev_softhsm: bool,
    /// PKCS#11 module path.
    #[arg(long, requires = "token")]
    pub module: Option<PathBuf>,
    /// Token label.
    #[arg(long, requires = "module")]
    pub token: Option<String>,
    /// Initialise the token first (it must be uninitialised; needs --so-pin-source).
    #[arg(long)]
    pub init_token: bool,
    /// Where the token's user PIN comes from: quorum (derived from the quorum secret: the token
    /// cannot be logged into without a quorum), env:VAR, file:PATH, prompt.
    #[arg(long, default_value = "quorum", value_parser = parse_pin_source)]
    pub pin_source: PinSource,
    /// Where the SO PIN comes from, with --init-token (same forms as --pin-source).
    #[arg(long, default_value = "quorum", value_parser = parse_pin_source)]
    pub so_pin_source: PinSource,
    /// Where the shares go (without these, a terminal shows each custodian theirs).
    #[command(flatten)]
    pub handout: HandoutArgs,
    /// Also make a recovery share set: K members needed (more than the quorum needs). Its
    /// secret opens the token layer with no token at all; see docs/design.md for the trade-off.
    #[arg(long, value_name = "K")]
    pub recovery_threshold: Option<u8>,
    /// A member of the recovery set (repeat; default: every custodian).
    #[arg(
        long = "recovery-custodian",
        value_name = "NAME",
        requires = "recovery_threshold"
    )]
    pub recovery_custodians: Vec<String>,
    /// Days between drills before status warns.
    #[arg(long, default_value_t = 90)]
    pub drill_interval_days: u32,
    /// Let unseal, assume, exec, console and recover run without --reason (by default the
    /// vault's policy requires one, recorded in the audit log).
    #[arg(long)]
    pub reason_optional: bool,
    /// SLIP-39 iteration exponent for the shares.
    #[arg(long, default_value_t = 1)]
    pub iteration_exponent: u8,
    /// Your name as the vault's first operator: a security officer and cloud administrator,
    /// whose signing key is made on this machine (outside the vault directory).
    #[arg(long, value_name = "NAME", default_value = "security-officer")]
    pub operator: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `breakglass seal`
#[derive(Debug, Args)]
pub struct SealArgs {
    /// The credential's name.
    pub name: String,
    /// aws (access keys), aws-root (console login), secret (anything).
    #[arg(long, value_enum)]
    pub kind: KindArg,
    /// Read the secret from this file (for aws: the JSON of `aws iam create-access-key`, or
    /// {"access_key_id", "secret_access_key", "mfa_seed"}).
    #[arg(long, value_name = "FILE", conflicts_with = "from_stdin")]
    pub from_file: Option<PathBuf>,
    /// Read the secret from standard input.
    #[arg(long)]
    pub from_stdin: bool,
    /// Replace an existing credential (the previous version is kept in history/).
    #[arg(long)]
    pub replace: bool,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
    /// AWS account id.
    #[arg(long)]
    pub account: Option<String>,
    /// IAM user name of the break-glass user.
    #[arg(long)]
    pub user: Option<String>,
    /// The emergency role to assume.
    #[arg(long)]
    pub role_arn: Option<String>,
    /// The MFA device's serial (ARN); its seed must be sealed with it (--mfa-seed-file,
    /// --mfa-seed-stdin, or "mfa_seed" in the input).
    #[arg(long)]
    pub mfa_serial: Option<String>,
    /// The MFA device's seed: the file `aws iam create-virtual-mfa-device --bootstrap-method
    /// Base32StringSeed --outfile FILE` wrote.
    #[arg(
        long,
        value_name = "FILE",
        requires = "mfa_serial",
        conflicts_with = "mfa_seed_stdin"
    )]
    pub mfa_seed_file: Option<PathBuf>,
    /// Read the MFA device's base32 seed from standard input.
    #[arg(long, requires = "mfa_serial", conflicts_with = "from_stdin")]
    pub mfa_seed_stdin: bool,
    /// The role's external id.
    #[arg(long)]
    pub external_id: Option<String>,
    /// AWS region.
    #[arg(long)]
    pub region: Option<String>,
    /// The EventBridge rule of the alert (made by aws-setup): drill --aws checks it is enabled.
    #[arg(long, value_name = "NAME", requires = "alert_topic")]
    pub alert_rule: Option<String>,
    /// The SNS topic of the alert (ARN): drill --aws checks it exists.
    #[arg(long, value_name = "ARN", requires = "alert_rule")]
    pub alert_topic: Option<String>,
    /// Session duration: seconds (`900`) or with a unit (`15m`, `1h`), 15 minutes to 12 hours.
    #[arg(long, value_name = "DURATION", value_parser = parse_session_duration)]
    pub duration: Option<i32>,
    /// A scope-down session policy (JSON file).
    #[arg(long, value_name = "FILE")]
    pub session_policy: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `breakglass list` and `status`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `breakglass unseal`
#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// The credential's name.
    pub name: String,
    /// Where shares come from (without these, a terminal prompts for them).
    #[command(flatten)]
    pub shares: ShareSources,
    /// Where the secret goes: file:PATH (0600, new file), json (stdout), env (stdout, aws).
    /// Required unless standard output is a terminal.
    #[arg(long, value_name = "WHERE", value_parser = OutputArg::parse)]
    pub output: Option<OutputArg>,
    /// Allow printing an aws credential's long-term keys.
    #[arg(long)]
    pub reveal: bool,
    /// Why the credential is opened: recorded in the audit log (required by default).
    #[arg(long, env = "BREAKGLASS_REASON", hide_env_values = true)]
    pub reason: Option<String>,
    /// Use this enrolled token (label) rather than the first one present.
    #[arg(long, value_name = "LABEL")]
    pub hsm: Option<String>,
    /// Log in even if the token says the PIN is at its final try.
    #[arg(long)]
    pub force_pin: bool,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
}

/// `breakglass share ...`
#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// Check, alone, that your share (or recovery share) is intact and belongs to this vault.
    Verify(ShareVerifyArgs),
    /// Print your share card again (lost or damaged card) from your share file, without a rekey.
    Card(ShareCardArgs),
}

/// `breakglass share card`
#[derive(Debug, Args)]
pub struct ShareCardArgs {
    /// The share file (otherwise a terminal prompts for the words, hidden).
    #[arg(long, value_name = "FILE")]
    pub share_file: Option<PathBuf>,
    /// Your age identity file or OpenSSH private key, when your share file is age-encrypted.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Where the card goes: DIR/<custodian>.html (0600, never overwriting).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `breakglass share verify`
#[derive(Debug, Args)]
pub struct ShareVerifyArgs {
    /// The share file (otherwise a terminal prompts for the words, hidden).
    #[arg(long, value_name = "FILE")]
    pub share_file: Option<PathBuf>,
    /// Your age identity file or OpenSSH private key, when your share file is age-encrypted.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// The vault's fingerprint, as your share card shows it. With no vault directory (no
    /// --vault, no BREAKGLASS_VAULT) the share is checked offline against it and its file's
    /// header; with one, the vault must have this fingerprint.
    #[arg(long, value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `breakglass audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and every signed checkpoint (exit 5 on failure).
    Verify(ReportArgs),
    /// Print the audit log.
    Show(AuditShowArgs),
    /// The credential management and access record for auditors, with the chain's
    /// verification and the checkpoint covering each entry (exit 5 after it when broken).
    Report(AuditReportArgs),
    /// Move a torn last write (a crash or a full disk) aside and record the repair.
    ///
    /// For the security officer. The torn bytes go to `audit.jsonl.torn-<time>` beside the log
    /// (kept, never deleted); an `audit_repair` entry records that file, their length and
    /// SHA-256. Only the bytes after the last complete line are moved: signed history is never
    /// touched. Writing commands refuse (exit 8) until this has run.
    Repair(AuditRepairArgs),
}

/// `breakglass audit repair`
#[derive(Debug, Args)]
pub struct AuditRepairArgs {
    /// Do not ask for confirmation (required when not on a terminal).
    #[arg(long)]
    pub yes: bool,
}

/// Which audit lines `audit show` and `audit report` cover.
#[derive(Debug, Args)]
pub struct AuditFilterArgs {
    /// Only lines from this day (YYYY-MM-DD, UTC) or instant (YYYY-MM-DDTHH:MM:SSZ) on.
    #[arg(long, value_name = "DATE", value_parser = crate::report::Since::parse)]
    pub since: Option<crate::report::Since>,
    /// Only lines about this credential (its seals, openings, rotations, ceremonies, drills).
    #[arg(long, value_name = "NAME")]
    pub credential: Option<String>,
}

/// `breakglass audit show`
#[derive(Debug, Args)]
pub struct AuditShowArgs {
    /// Which lines.
    #[command(flatten)]
    pub filter: AuditFilterArgs,
    /// Only the last N lines the other filters keep, read from the end of the log (the
    /// history before them is not read).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `breakglass audit report`
#[derive(Debug, Args)]
pub struct AuditReportArgs {
    /// Which lines.
    #[command(flatten)]
    pub filter: AuditFilterArgs,
    /// Markdown, a printable HTML page, or JSON.
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub format: ReportFormat,
}

/// `audit report --format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Markdown.
    Md,
    /// A standalone HTML page with print CSS.
    Html,
    /// JSON.
    Json,
}

/// `breakglass runbook`
#[derive(Debug, Args)]
pub struct RunbookArgs {
    /// Markdown, or a printable HTML page.
    #[arg(long, value_enum, default_value_t = DocumentFormat::Md)]
    pub format: DocumentFormat,
    /// Write the runbook to FILE (replacing it) and record it in the audit log, so that
    /// `status` says when it is out of date; otherwise it goes to standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `runbook --format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DocumentFormat {
    /// Markdown.
    Md,
    /// A standalone HTML page with print CSS.
    Html,
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
    /// Enrol another token (a backup in another site): every credential gets a stanza for it.
    ///
    /// Safe to run again after an interruption (a crash, a full disk): a token that a stopped
    /// run enrolled is not enrolled twice, and when that run wrote vault.json but not its audit
    /// entry (`audit verify` says so), running it again with a quorum records the entry and
    /// changes nothing else.
    Enroll(Box<HsmEnrollArgs>),
    /// Run every operation breakglass needs against a token, without changing it, and say
    /// which are missing.
    Check(HsmCheckArgs),
}

/// `breakglass hsm check`
#[derive(Debug, Args)]
pub struct HsmCheckArgs {
    /// Path of the PKCS#11 module.
    #[arg(long, env = "BREAKGLASS_PKCS11_MODULE")]
    pub module: PathBuf,
    /// The token's label.
    #[arg(long)]
    pub token: String,
    /// Where the user PIN comes from: env:VAR, file:PATH, prompt (a quorum-derived PIN needs
    /// the vault's shares: check such a token with --no-login, or before init).
    #[arg(
        long,
        default_value = "prompt",
        conflicts_with = "no_login",
        value_parser = parse_pin_source
    )]
    pub pin_source: PinSource,
    /// Check only what needs no login: token information, PIN length limits, mechanisms.
    #[arg(long)]
    pub no_login: bool,
    /// Log in even if the token says the PIN is at its final try.
    #[arg(long)]
    pub force_pin: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `breakglass hsm enroll`
#[derive(Debug, Args)]
pub struct HsmEnrollArgs {
    /// The new token's PKCS#11 module (default for a --dev-softhsm vault: SoftHSM).
    #[arg(long)]
    pub module: Option<PathBuf>,
    /// The new token's label.
    #[arg(long)]
    pub token: String,
    /// Initialise the new token first (it must be uninitialised).
    #[arg(long)]
    pub init_token: bool,
    /// Where the new token's user PIN comes from: quorum, env:VAR, file:PATH, prompt.
    #[arg(long, default_value = "quorum", value_parser = parse_pin_source)]
    pub pin_source: PinSource,
    /// Where its SO PIN comes from, with --init-token.
    #[arg(long, default_value = "quorum", value_parser = parse_pin_source)]
    pub so_pin_source: PinSource,
    /// The quorum's shares: needed only where a token PIN comes from the quorum (the default),
    /// since the envelopes' token halves are opened by an enrolled token alone. With
    /// --recovery: the quorum's and the recovery set's shares, together.
    #[command(flatten)]
    pub shares: ShareSources,
    /// The enrolled tokens are lost: open the token halves with the recovery key instead (a
    /// quorum and the recovery threshold of recovery shares). The audit key moves to the new
    /// token when its token is gone.
    #[arg(long)]
    pub recovery: bool,
    /// With --recovery: remove this lost token from the vault (repeat): its stanzas and its
    /// entry. Rekey afterwards to give every credential fresh file keys as well.
    #[arg(long = "retire", value_name = "LABEL", requires = "recovery")]
    pub retire: Vec<String>,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
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

/// What `assume` and `exec` share.
#[derive(Debug, Args)]
pub struct AssumeCommon {
    /// The credential's name (kind aws).
    pub name: String,
    /// Where shares come from (without these, a terminal prompts for them).
    #[command(flatten)]
    pub shares: ShareSources,
    /// Why the glass is broken: recorded in the audit log and as a session tag (required by
    /// default: the vault's policy).
    #[arg(long, env = "BREAKGLASS_REASON", hide_env_values = true)]
    pub reason: Option<String>,
    /// Session duration: seconds (`900`) or with a unit (`15m`, `1h`), 15 minutes to 12 hours
    /// (default: the credential's metadata, else the vault policy).
    #[arg(long, value_name = "DURATION", value_parser = parse_session_duration)]
    pub duration: Option<i32>,
    /// Then assume these roles in turn with the session (member accounts); repeat.
    #[arg(long = "chain", value_name = "ROLE_ARN")]
    pub chain: Vec<String>,
    /// Use this enrolled token (label) rather than the first one present.
    #[arg(long, value_name = "LABEL")]
    pub hsm: Option<String>,
    /// Log in even if the token says the PIN is at its final try.
    #[arg(long)]
    pub force_pin: bool,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
}

/// `breakglass assume`
#[derive(Debug, Args)]
pub struct AssumeArgs {
    /// The credential, shares and session options.
    #[command(flatten)]
    pub common: AssumeCommon,
    /// Print the session as shell exports (env), JSON (json), the AWS credential_process JSON
    /// (credential-process), or a shared-credentials-file profile (ini). Without it, only the session's identity and expiry are shown.
    #[arg(long, value_enum)]
    pub format: Option<SessionFormat>,
    /// Keep the session in $XDG_RUNTIME_DIR/breakglass/ (0600) until it expires, for a profile
    /// with `credential_process = breakglass session credentials --credential NAME`.
    #[arg(long)]
    pub cache: bool,
}

/// `breakglass session ...`
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Print a cached session as AWS credential_process JSON (for the AWS CLI, SDKs, Terraform).
    Credentials(SessionArgs),
    /// Remove a cached session now.
    End(SessionArgs),
}

/// `breakglass session credentials|end`
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SessionArgs {
    /// The credential: its newest cached session that has not expired (the stable line for a
    /// profile: it keeps working after each break-glass).
    #[arg(long, value_name = "NAME")]
    pub credential: Option<String>,
    /// One ceremony's session, by the id printed by `assume`.
    #[arg(long, value_name = "ID")]
    pub ceremony: Option<String>,
}

/// `breakglass aws-policy`
#[derive(Debug, Args)]
pub struct AwsPolicyArgs {
    /// The account id.
    #[arg(long)]
    pub account: String,
    /// The break-glass IAM user's name.
    #[arg(long, default_value = "breakglass")]
    pub user: String,
    /// The emergency role's name.
    #[arg(long, default_value = "breakglass-emergency")]
    pub role: String,
    /// Require MFA in the role's trust policy (recommended; the vault seals the MFA seed).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub require_mfa: bool,
}

/// `breakglass exec`
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The credential, shares and session options.
    #[command(flatten)]
    pub common: AssumeCommon,
    /// The command to run, after `--` (without one: the user's $SHELL, with the session).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `breakglass drill`
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Where shares come from (without these, a terminal prompts for them).
    #[command(flatten)]
    pub shares: ShareSources,
    /// Also check each sealed AWS key with STS GetCallerIdentity (no role is assumed), and,
    /// where the credential names an alert (seal --alert-rule), that the alert is armed.
    #[arg(long)]
    pub aws: bool,
    /// Use this enrolled token (label) rather than the first one present.
    #[arg(long, value_name = "LABEL")]
    pub hsm: Option<String>,
    /// Drill the recovery path instead: the quorum's and the recovery set's shares open every
    /// envelope with no token.
    #[arg(long, conflicts_with = "hsm")]
    pub recovery: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
}

/// `breakglass revoke-sessions`
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The emergency role whose older sessions stop working.
    #[arg(long)]
    pub role: String,
    /// Also the break-glass IAM user (sessions from GetSessionToken).
    #[arg(long)]
    pub user: Option<String>,
}

/// `breakglass rotate`
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The credential's name (kind aws).
    pub name: String,
    /// Where shares come from (without these, a terminal prompts for them).
    #[command(flatten)]
    pub shares: ShareSources,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
    /// Use this enrolled token (label) rather than the first one present.
    #[arg(long, value_name = "LABEL")]
    pub hsm: Option<String>,
    /// Also re-seed the virtual MFA device: create a new one, enable it with two consecutive
    /// codes, seal its seed, retire the old device.
    #[arg(long)]
    pub mfa: bool,
}

/// `breakglass console`
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The credential, shares and session options.
    #[command(flatten)]
    pub common: AssumeCommon,
    /// The federation endpoint (AWS: https://signin.aws.amazon.com/federation).
    #[arg(
        long,
        env = "BREAKGLASS_FEDERATION_ENDPOINT",
        default_value = "https://signin.aws.amazon.com/federation"
    )]
    pub federation_endpoint: String,
    /// Where the console opens.
    #[arg(long, default_value = "https://console.aws.amazon.com/")]
    pub destination: String,
}

/// `breakglass ceremony ...`
#[derive(Debug, Subcommand)]
pub enum CeremonyCommand {
    /// Coordinator: write a ceremony request for the custodians.
    Open(CeremonyOpenArgs),
    /// Custodian: check a request and contribute your share, sealed to it (no vault needed).
    Contribute(CeremonyContributeArgs),
    /// Coordinator: who has contributed, what is missing per group, time left.
    Status(CeremonyStatusArgs),
    /// Coordinator: carry out the purpose with the contributions.
    Close(CeremonyCloseArgs),
    /// Security officer: cancel an open ceremony; its transport key is destroyed, so nothing
    /// sent to it can be opened.
    Cancel(CeremonyCancelArgs),
}

/// `breakglass ceremony open`
#[derive(Debug, Args)]
pub struct CeremonyOpenArgs {
    /// What the quorum is for.
    #[arg(long, value_enum)]
    pub purpose: PurposeArg,
    /// The credential (unseal, assume, rotate).
    #[arg(long)]
    pub credential: Option<String>,
    /// Why: shown to every custodian and recorded.
    #[arg(long)]
    pub reason: String,
    /// How long contributions are accepted, e.g. 900 (seconds), 30m, 4h, 2d; at most 7d.
    #[arg(long, default_value = "4h", value_parser = Lifetime::parse)]
    pub expires: Lifetime,
    /// For rekey: the new custodians and recovery set (default: as now); for recovery: the
    /// recovery set to enable (--recovery-threshold, --recovery-custodian). Written into the
    /// request for every custodian to read.
    #[command(flatten)]
    pub rekey: RekeyLayoutArgs,
    /// Where to write the request.
    #[arg(long)]
    pub out: PathBuf,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
}

/// `breakglass ceremony contribute`
#[derive(Debug, Args)]
pub struct CeremonyContributeArgs {
    /// The request file.
    pub request: PathBuf,
    /// Your share file (otherwise a terminal prompts for the words, hidden).
    #[arg(long)]
    pub share_file: Option<PathBuf>,
    /// Your age identity file or OpenSSH private key, when your share file is age-encrypted.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Your custodian name (read from the share file's header when it has one).
    #[arg(long)]
    pub custodian: Option<String>,
    /// The vault's fingerprint, as on your share card: needed when no share file header
    /// names it (the words typed); one that differs from the share file's is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
    /// Confirm without asking (required when not on a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Where to write the contribution (a new file, 0600).
    #[arg(long)]
    pub out: PathBuf,
}

/// `breakglass ceremony status`
#[derive(Debug, Args)]
pub struct CeremonyStatusArgs {
    /// The ceremony id.
    pub id: String,
    /// Contribution files received so far.
    #[arg(long = "contribution")]
    pub contributions: Vec<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `breakglass ceremony cancel`
#[derive(Debug, Args)]
pub struct CeremonyCancelArgs {
    /// The ceremony id.
    pub id: String,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
}

/// `breakglass ceremony close`
#[derive(Debug, Args)]
pub struct CeremonyCloseArgs {
    /// The ceremony id.
    pub id: String,
    /// The contribution files (repeat).
    #[arg(long = "contribution", required = true)]
    pub contributions: Vec<PathBuf>,
    /// For unseal: where the secret goes (file:PATH, json, env).
    #[arg(long, value_name = "WHERE", value_parser = OutputArg::parse)]
    pub output: Option<OutputArg>,
    /// For unseal: allow writing an aws credential's long-term keys.
    #[arg(long)]
    pub reveal: bool,
    /// For assume: env, json or credential-process.
    #[arg(long, value_enum)]
    pub format: Option<SessionFormat>,
    /// For drill: also check the AWS keys.
    #[arg(long)]
    pub aws: bool,
    /// For rotate: also re-seed the virtual MFA device.
    #[arg(long)]
    pub mfa: bool,
    /// For rekey and recovery: where the new shares go (the custodians are those the request
    /// names).
    #[command(flatten)]
    pub handout: HandoutArgs,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
}

/// What a rekey makes: custodians and recovery set.
#[derive(Debug, Args)]
pub struct RekeyLayoutArgs {
    /// The new custodians (default: the current ones, with the current thresholds).
    #[command(flatten)]
    pub layout: LayoutArgs,
    /// The recovery set is renewed with the rekey (same threshold and members by default):
    /// K members needed instead.
    #[arg(long, value_name = "K", conflicts_with = "no_recovery")]
    pub recovery_threshold: Option<u8>,
    /// A member of the renewed recovery set (repeat; default: as before, or every custodian).
    #[arg(
        long = "recovery-custodian",
        value_name = "NAME",
        conflicts_with = "no_recovery"
    )]
    pub recovery_custodians: Vec<String>,
    /// Drop the recovery set: with the rekey, no share set opens a credential without a token.
    #[arg(long)]
    pub no_recovery: bool,
}

/// `breakglass rekey`
#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// The current quorum's shares (with --resume: the old and the new shares together).
    #[command(flatten)]
    pub shares: ShareSources,
    /// The new custodians and recovery set.
    #[command(flatten)]
    pub target: RekeyLayoutArgs,
    /// Where the new shares go (without these, a terminal shows each custodian theirs).
    #[command(flatten)]
    pub handout: HandoutArgs,
    /// SLIP-39 iteration exponent for the new shares (default: the current one).
    #[arg(long)]
    pub iteration_exponent: Option<u8>,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
    /// Finish an interrupted rekey (give a quorum of the old shares and of the new ones).
    #[arg(long)]
    pub resume: bool,
    /// Confirm without asking (required when not on a terminal).
    #[arg(long)]
    pub yes: bool,
}

/// `breakglass recovery ...`
#[derive(Debug, Subcommand)]
pub enum RecoveryCommand {
    /// Add a recovery share set to a vault (needs the quorum and an enrolled token).
    ///
    /// Safe to run again after an interruption: when a stopped run wrote vault.json but not its
    /// audit entry (`audit verify` says so), running it again with a quorum records the entry,
    /// makes no new set and hands out no share (the recovery shares that run handed out, before
    /// it wrote anything, are the ones in force).
    Enable(RecoveryEnableArgs),
}

/// `breakglass recovery enable`
#[derive(Debug, Args)]
pub struct RecoveryEnableArgs {
    /// How many members of the recovery set are needed (more than the quorum needs).
    #[arg(long, value_name = "K")]
    pub threshold: u8,
    /// A member of the recovery set (repeat; default: every custodian).
    #[arg(long = "custodian", value_name = "NAME")]
    pub custodians: Vec<String>,
    /// The quorum's shares.
    #[command(flatten)]
    pub shares: ShareSources,
    /// Where the recovery shares go (without these, a terminal shows each member theirs).
    #[command(flatten)]
    pub handout: HandoutArgs,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
    /// Use this enrolled token (label) rather than the first one present.
    #[arg(long, value_name = "LABEL")]
    pub hsm: Option<String>,
    /// Confirm the trade-off without asking (required when not on a terminal).
    #[arg(long)]
    pub yes: bool,
}

/// `breakglass recover`
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The credential's name.
    pub name: String,
    /// The quorum's shares and the recovery shares, together (each goes to its set).
    #[command(flatten)]
    pub shares: ShareSources,
    /// Where the secret goes: file:PATH (0600, new file), json (stdout), env (stdout, aws).
    /// Required unless standard output is a terminal.
    #[arg(long, value_name = "WHERE", value_parser = OutputArg::parse)]
    pub output: Option<OutputArg>,
    /// Allow printing an aws credential's long-term keys.
    #[arg(long)]
    pub reveal: bool,
    /// Why the credential is opened: recorded in the audit log (required by default).
    #[arg(long, env = "BREAKGLASS_REASON", hide_env_values = true)]
    pub reason: Option<String>,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
}

/// What a ceremony's quorum is for (`ceremony open --purpose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PurposeArg {
    /// Open a credential (with --credential).
    Unseal,
    /// Assume an aws credential's emergency role (with --credential).
    Assume,
    /// Prove every credential opens.
    Drill,
    /// Replace a sealed AWS key (with --credential).
    Rotate,
    /// New quorum secret and shares.
    Rekey,
    /// Enable a recovery share set.
    Recovery,
}

impl PurposeArg {
    /// The name as typed.
    pub fn name(self) -> &'static str {
        match self {
            PurposeArg::Unseal => "unseal",
            PurposeArg::Assume => "assume",
            PurposeArg::Drill => "drill",
            PurposeArg::Rotate => "rotate",
            PurposeArg::Rekey => "rekey",
            PurposeArg::Recovery => "recovery",
        }
    }
}

/// How long a ceremony stays open: `900` (seconds), `15m`, `4h`, `2d`; at most 7 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime(u64);

impl Lifetime {
    /// Parses `900`, `900s`, `30m`, `4h`, `2d` (at most 7 days; never overflows).
    pub fn parse(text: &str) -> Result<Lifetime, String> {
        vault_core::trust::duration::parse_duration(
            text,
            vault_core::trust::duration::MAX_CEREMONY_EXPIRY,
        )
        .map(Lifetime)
        .map_err(|e| match e {
            vault_core::trust::TrustError::DurationTooLong { .. } => {
                format!("{e}: a ceremony stays open 7d at most")
            }
            _ => e.to_string(),
        })
    }

    /// In seconds.
    pub fn seconds(self) -> u64 {
        self.0
    }
}

/// A credential's kind (`seal --kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// AWS access keys (and an MFA seed).
    Aws,
    /// An AWS root user's console login.
    AwsRoot,
    /// Anything else.
    Secret,
}

impl From<KindArg> for Kind {
    fn from(kind: KindArg) -> Kind {
        match kind {
            KindArg::Aws => Kind::Aws,
            KindArg::AwsRoot => Kind::AwsRoot,
            KindArg::Secret => Kind::Secret,
        }
    }
}

/// Where an opened secret goes (`--output`): `file:PATH`, `json` or `env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputArg {
    /// A new 0600 file.
    File(PathBuf),
    /// JSON on standard output.
    Json,
    /// Shell exports on standard output (aws credentials).
    Env,
}

impl OutputArg {
    /// Parses `file:PATH`, `json`, `env`.
    pub fn parse(text: &str) -> Result<OutputArg, String> {
        match text {
            "json" => Ok(OutputArg::Json),
            "env" => Ok(OutputArg::Env),
            other => match other.strip_prefix("file:") {
                Some(path) if !path.is_empty() => Ok(OutputArg::File(PathBuf::from(path))),
                _ => Err("expected file:PATH, json or env".to_owned()),
            },
        }
    }
}

/// How `assume` prints the session (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SessionFormat {
    /// Shell exports.
    Env,
    /// JSON.
    Json,
    /// The JSON of an AWS `credential_process`.
    CredentialProcess,
    /// A profile for the AWS shared credentials file (`~/.aws/credentials`), named after the
    /// credential.
    Ini,
}

/// Parses an STS session duration: the units of every duration breakglass takes (`900`,
/// `900s`, `15m`, `1h`), within what AssumeRole accepts (15 minutes to 12 hours).
pub fn parse_session_duration(text: &str) -> Result<i32, String> {
    use crate::aws::{MAX_SESSION_SECONDS, MIN_SESSION_SECONDS};
    let seconds = vault_core::trust::duration::parse_duration(text, MAX_SESSION_SECONDS as u64)
        .map_err(|e| e.to_string())?;
    let seconds = i32::try_from(seconds).map_err(|_| format!("{text}: too large"))?;
    if seconds < MIN_SESSION_SECONDS {
        return Err(format!(
            "{text}: AWS sessions last at least {MIN_SESSION_SECONDS} s (15m)"
        ));
    }
    Ok(seconds)
}

/// Parses a PIN source: `quorum`, `env:VAR`, `file:PATH`, `prompt`.
pub fn parse_pin_source(text: &str) -> Result<PinSource, String> {
    match text.split_once(':') {
        None if text == "quorum" => Ok(PinSource::Quorum),
        None if text == "prompt" => Ok(PinSource::Prompt),
        Some(("env", var)) if !var.is_empty() => Ok(PinSource::Env {
            var: var.to_owned(),
        }),
        Some(("file", path)) if !path.is_empty() => Ok(PinSource::File {
            path: path.to_owned(),
        }),
        _ => Err("expected quorum, env:VAR, file:PATH or prompt".to_owned()),
    }
}

/// What `aws-setup` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SetupFormat {
    /// A CloudFormation template (JSON, which is also YAML).
    Cloudformation,
    /// Terraform (HCL, AWS provider).
    Terraform,
}

/// `breakglass aws-setup`
#[derive(Debug, Args)]
pub struct AwsSetupArgs {
    /// The account id.
    #[arg(long)]
    pub account: String,
    /// The break-glass IAM user's name.
    #[arg(long, default_value = "breakglass")]
    pub user: String,
    /// The emergency role's name.
    #[arg(long, default_value = "breakglass-emergency")]
    pub role: String,
    /// The role's permissions: a managed policy (e.g. arn:aws:iam::aws:policy/AdministratorAccess).
    #[arg(long, value_name = "ARN")]
    pub permissions_arn: Option<String>,
    /// The role's permissions: a policy document (JSON file), written inline.
    #[arg(long, value_name = "FILE", conflicts_with = "permissions_arn")]
    pub permissions_file: Option<PathBuf>,
    /// The role's MaxSessionDuration in seconds (bounds assume --duration).
    #[arg(long, default_value_t = 3600)]
    pub max_session: i32,
    /// A member account's role the emergency role may chain into (assume --chain); repeat.
    #[arg(long = "member-role", value_name = "ROLE_ARN")]
    pub member_roles: Vec<String>,
    /// Set up a member account instead: its role trusts this emergency role of the security
    /// account (no user, no MFA of its own: the chained session carries the SourceIdentity).
    #[arg(long, value_name = "ROLE_ARN")]
    pub member_of: Option<String>,
    /// The alert's EventBridge rule and SNS topic name.
    #[arg(long, default_value = "breakglass-alert")]
    pub alert_name: String,
    /// Send the alert to this address (an SNS e-mail subscription); repeat.
    #[arg(long = "alert-email", value_name = "ADDRESS")]
    pub alert_emails: Vec<String>,
    /// Also send the alert to this https:// URL (an SNS HTTPS subscription).
    #[arg(long, value_name = "URL")]
    pub alert_webhook: Option<String>,
    /// The alert's region: us-east-1 receives IAM, global STS and console sign-in events.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// What to print (without --apply).
    #[arg(long, value_enum, default_value_t = SetupFormat::Cloudformation)]
    pub format: SetupFormat,
    /// Make it all now through the AWS API with your own administrator credentials (the
    /// standard chain: profile, SSO, environment), and the user's key and MFA device.
    #[arg(long)]
    pub apply: bool,
    /// With --apply: the new 0600 file the user's access key and MFA seed go to, for seal.
    #[arg(long, value_name = "FILE")]
    pub key_out: Option<PathBuf>,
    /// Give the break-glass user an AWS console password (none without this): the template
    /// reads it from the Secrets Manager secret USER-console-password, Terraform makes one
    /// encrypted to a PGP key, --apply reads it from --console-password-file,
    /// --console-password-stdin or a hidden prompt (never argv).
    #[arg(long)]
    pub console_password: bool,
    /// With --apply --console-password: read the password from this file (its first line).
    #[arg(
        long,
        value_name = "FILE",
        requires = "console_password",
        conflicts_with = "console_password_stdin"
    )]
    pub console_password_file: Option<PathBuf>,
    /// With --apply --console-password: read the password from standard input (its first line).
    #[arg(long, requires = "console_password")]
    pub console_password_stdin: bool,
    /// The credential name in the printed seal command.
    #[arg(long, default_value = "prod", value_name = "NAME")]
    pub seal_name: String,
}

/// How `review` reports.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReviewFormat {
    /// Markdown.
    Md,
    /// A standalone HTML page.
    Html,
    /// JSON: the ceremony and the CloudTrail records themselves.
    Json,
}

/// `breakglass review`
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The ceremony id (as printed by assume, and in the audit log).
    pub ceremony: String,
    /// Read the trail's log files from this S3 bucket instead of CloudTrail LookupEvents.
    #[arg(long, value_name = "BUCKET")]
    pub trail_bucket: Option<String>,
    /// The trail's S3 key prefix (the part before AWSLogs/).
    #[arg(long, value_name = "PREFIX", requires = "trail_bucket")]
    pub trail_prefix: Option<String>,
    /// The organization id, for an organization trail (AWSLogs/ORG_ID/ACCOUNT/...).
    #[arg(long, value_name = "ORG_ID", requires = "trail_bucket")]
    pub trail_org: Option<String>,
    /// The report's format.
    #[arg(long, value_enum, default_value_t = ReviewFormat::Md)]
    pub format: ReviewFormat,
    /// Write the report to this new file rather than standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `breakglass operator ...`
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Print this machine's operator public key for the vault (made, 0600, if missing), to
    /// hand to a security officer who adds you.
    Key,
    /// List the operators the quorum certified: name, roles, key fingerprint.
    List(OperatorListArgs),
    /// Add an operator: a vault change, run by a security officer with a quorum and a token.
    ///
    /// Safe to run again after an interruption: when a stopped run wrote vault.json but not its
    /// audit entry (`audit verify` says so), running the same command again with a quorum
    /// records the entry and changes nothing else.
    Add(OperatorAddArgs),
    /// Remove an operator: a vault change, run by a security officer with a quorum and a token.
    ///
    /// Safe to run again after an interruption: when a stopped run wrote vault.json but not its
    /// audit entry (`audit verify` says so), running the same command again with a quorum
    /// records the entry and changes nothing else.
    Remove(OperatorRemoveArgs),
}

/// `breakglass operator list`
#[derive(Debug, Args)]
pub struct OperatorListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// An operator's role, as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Opens ceremonies and changes the vault (tokens, operators, recovery set, rekey).
    SecurityOfficer,
    /// Seals credentials.
    CloudAdmin,
}

/// `breakglass operator add`
#[derive(Debug, Args)]
pub struct OperatorAddArgs {
    /// The new operator's name (letters, digits, `.`, `_`, `-`, `@`).
    pub name: String,
    /// Their role (repeat for both).
    #[arg(long = "role", value_name = "ROLE", required = true)]
    pub roles: Vec<RoleArg>,
    /// Their public key, as `breakglass operator key` printed it on their machine.
    #[arg(long, value_name = "KEY")]
    pub key: String,
    /// The quorum's shares (the quorum certifies the manifest's next version).
    #[command(flatten)]
    pub shares: ShareSources,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
}

/// `breakglass operator remove`
#[derive(Debug, Args)]
pub struct OperatorRemoveArgs {
    /// The operator's name.
    pub name: String,
    /// The quorum's shares (the quorum certifies the manifest's next version).
    #[command(flatten)]
    pub shares: ShareSources,
    /// The vault's fingerprint, as on the share cards: needed where this machine has not
    /// pinned the vault yet (it is then pinned); one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
}

/// `breakglass upgrade`
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Your name as the vault's first operator: a security officer and cloud administrator
    /// (your key is made on this machine if it has none for the vault). Needed for a format-1
    /// vault; a certified vault whose audit log is not signed yet is upgraded by this
    /// machine's operator, a security officer.
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// The tokens' PKCS#11 module (default: this machine's configuration; SoftHSM for a
    /// --dev-softhsm vault). Never a path read from the old vault.json.
    #[arg(long, env = "BREAKGLASS_PKCS11_MODULE", value_name = "PATH")]
    pub module: Option<PathBuf>,
    /// The quorum's shares.
    #[command(flatten)]
    pub shares: ShareSources,
    /// The vault's format-1 fingerprint, as on the old share cards: needed where this machine
    /// has not pinned the vault; one that differs from the pin is refused.
    #[arg(long, env = "BREAKGLASS_FINGERPRINT", value_name = "FINGERPRINT")]
    pub fingerprint: Option<String>,
}
