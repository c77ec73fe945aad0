//! The command-line tree. Each subcommand's arguments live with its command
//! in `cmd/`.

use crate::cmd;
use clap::{Args, Parser, Subcommand, ValueEnum};
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

/// How to reach and open the embedded engine.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
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
    #[arg(
        long,
        global = true,
        env = "KMSFS_KEY_FILE",
        value_name = "FILE",
        conflicts_with = "passphrase_file"
    )]
    pub key_file: Option<PathBuf>,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = Output::Json)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Key engine operations, mirroring `aws kms`
    Kms(cmd::kms::KmsArgs),
    /// Read, follow and verify the audit trail
    Audit(cmd::audit::AuditArgs),
}
