//! `kmsfs kms <command>`: the engine's operations with `aws kms` names.

use crate::cli::EngineArgs;
use crate::exit::CliError;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct KmsArgs {
    #[command(subcommand)]
    pub command: KmsCommand,
}

#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// Create an engine store
    InitEngine,
}

pub fn run(_engine: &EngineArgs, args: KmsArgs) -> Result<(), CliError> {
    match args.command {
        KmsCommand::InitEngine => Err(CliError::Usage("init-engine is not built yet".into())),
    }
}
