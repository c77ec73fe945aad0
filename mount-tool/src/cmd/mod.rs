//! One module per command family.

pub mod kms;
pub mod kms_policy;
pub mod policy;

use crate::cli::{Cli, Command};
use crate::exit::CliError;

pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Kms(args) => kms::run(&cli.engine, args),
        Command::Policy(args) => policy::run(&cli.engine, args),
    }
}
