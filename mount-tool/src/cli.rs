//! The command-line tree. Each subcommand's arguments live with its command
//! in `cmd/`.

use crate::cmd;
use crate::transport::KmsUrl;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kmsfs",
    version,
    about = "Encrypted filesystem with a per-file key bound to its path, and a local KMS"
)]
pub struct Cli {
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Which engine to use, and how to reach and open the embedded one.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// The engine: unix:///path/to/engine.sock for an engine daemon
    /// (`kmsfs engine serve`), aws://[REGION/]KEY or https://ENDPOINT/KEY
    /// for a volume's data keys on AWS KMS or a compatible service; unset:
    /// the embedded store (--engine)
    #[arg(long, global = true, env = "KMSFS_KMS", value_name = "URL",
          value_parser = KmsUrl::parse)]
    pub kms: Option<KmsUrl>,
    /// Engine store directory [default: $XDG_DATA_HOME/kmsfs/engine]
    #[arg(long, global = true, env = "KMSFS_ENGINE", value_name = "DIR")]
    pub engine: Option<PathBuf>,
    /// Read the engine passphrase from this file (first line)
    #[arg(
        long,
        global = true,
        env = "KMSFS_PASSPHRASE_FILE",
        value_name = "FILE"
    )]
    pub passphrase_file: Option<PathBuf>,
    /// Use a 32-byte key file as the engine's root key instead of a passphrase
    #[arg(long, global = true, env = "KMSFS_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Output format: json (for scripts, the default), text (aws CLI text:
    /// tab-separated), table (boxed tables for people)
    #[arg(long, global = true, value_enum, env = "KMSFS_OUTPUT", default_value_t = Output::Json)]
    pub output: Output,
    /// Open an engine store older than the generation its audit trail
    /// anchors (after a deliberate restore from a backup): it is written
    /// again past that generation and the acceptance is audited
    #[arg(long, global = true)]
    pub accept_store_rollback: bool,
    /// Whether `--output` (or KMSFS_OUTPUT) was given rather than defaulted:
    /// commands whose own default is not JSON (`fsck`) follow it only then.
    #[arg(skip)]
    pub output_explicit: bool,
}

impl Cli {
    /// Parses the process arguments; exits with code 2 and clap's message on
    /// a mistake. An option given on the command line overrides the other
    /// root-key source set in the environment (`--key-file` beats
    /// `KMSFS_PASSPHRASE_FILE`, `--passphrase-file` beats `KMSFS_KEY_FILE`).
    pub fn parse_args() -> Cli {
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if let Err(e) = cli.engine.pick_root_source(&matches) {
            e.exit()
        }
        cli.engine.output_explicit = matches!(
            output_source(&matches),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        cli
    }
}

/// Where `--output` came from; it is global, so the subcommand that was
/// given holds it when it was written after the subcommand.
fn output_source(matches: &ArgMatches) -> Option<ValueSource> {
    let mut m = matches;
    let mut source = m.value_source("output");
    while let Some((_, sub)) = m.subcommand() {
        if let Some(s) = sub.value_source("output")
            && s != ValueSource::DefaultValue
        {
            source = Some(s);
        }
        m = sub;
    }
    source
}

impl EngineArgs {
    /// Keeps one of `--key-file` and `--passphrase-file` when both are set:
    /// the one from the command line. Both on the command line (or both only
    /// in the environment) is a usage error.
    fn pick_root_source(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        if self.key_file.is_none() || self.passphrase_file.is_none() {
            return Ok(());
        }
        let on_command_line = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        match (
            on_command_line("key_file"),
            on_command_line("passphrase_file"),
        ) {
            (true, false) => self.passphrase_file = None,
            (false, true) => self.key_file = None,
            _ => {
                return Err(Cli::command().error(
                    ErrorKind::ArgumentConflict,
                    "give either a key file (--key-file, KMSFS_KEY_FILE) or a passphrase \
                     file (--passphrase-file, KMSFS_PASSPHRASE_FILE), not both",
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Json,
    Text,
    /// For people: tables (`aws --output table`); commands without a
    /// table of their own print their text form.
    Table,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Key engine operations, mirroring `aws kms`
    Kms(cmd::kms::KmsArgs),
    /// Create an encrypted volume in an empty directory
    Init(cmd::init::InitArgs),
    /// Mount a volume (in the background unless --foreground)
    Mount(cmd::mount::MountArgs),
    /// Unmount a kmsfs mount
    Unmount(cmd::unmount::UnmountArgs),
    /// Mounted volumes, their keys, open files and key-cache figures
    Status(cmd::status::StatusArgs),
    /// Check an unmounted volume end to end and report every problem (changes nothing)
    Fsck(cmd::fsck::FsckArgs),
    /// Authenticate an old (format 1) kmsfs.conf: bind its fields to the volume's names key
    UpgradeConfig(cmd::upgrade_config::UpgradeConfigArgs),
    /// Explain key policy decisions
    Policy(cmd::policy::PolicyArgs),
    /// Read, follow and verify the audit trail
    Audit(cmd::audit::AuditArgs),
    /// Run the key engine as a daemon other processes use over a socket
    Engine(cmd::engine::EngineArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(cmd::docs::CompletionsArgs),
    /// Write man pages for kmsfs and every subcommand into a directory
    Man(cmd::docs::ManArgs),
    /// Re-wrap every file's data key under the newest version of the volume's key (or --to-key)
    Rewrap(cmd::rewrap::RewrapArgs),
    /// New data keys and re-encrypted content for every file (or --path PREFIX)
    Rekey(cmd::rewrap::RekeyArgs),
    /// Move a volume's data keys to another key service (--kms URL or --to-embedded)
    Migrate(cmd::rewrap::MigrateArgs),
}
