//! One module per command family.

pub mod audit;
pub mod kms;

use crate::cli::{Cli, Command};
use crate::exit::CliError;

pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Kms(args) => kms::run(&cli.engine, args),
        Command::Audit(args) => audit::run(&cli.engine, args),
    }
}
