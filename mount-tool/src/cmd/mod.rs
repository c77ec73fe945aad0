//! One module per command family.

pub mod audit;
pub mod docs;
pub mod engine;
pub mod fsck;
pub mod init;
pub mod kms;
pub mod kms_policy;
pub mod mount;
pub mod policy;
pub mod rewrap;
pub mod status;
pub mod unmount;
pub mod upgrade_config;

use crate::cli::{Cli, Command};
use crate::exit::CliError;

pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Kms(args) => kms::run(&cli.engine, args),
        Command::Init(args) => init::run(&cli.engine, cli.engine.output, args),
        Command::Mount(args) => mount::run(&cli.engine, args),
        Command::Unmount(args) => unmount::run(args),
        Command::Status(args) => status::run(cli.engine.output, args),
        Command::Fsck(args) => fsck::run(&cli.engine, args),
        Command::UpgradeConfig(args) => upgrade_config::run(&cli.engine, cli.engine.output, args),
        Command::Policy(args) => policy::run(&cli.engine, args),
        Command::Audit(args) => audit::run(&cli.engine, args),
        Command::Engine(args) => engine::run(&cli.engine, args),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
        Command::Rewrap(args) => rewrap::run_rewrap(&cli.engine, args),
        Command::Rekey(args) => rewrap::run_rekey(&cli.engine, args),
        Command::Migrate(args) => rewrap::run_migrate(&cli.engine, args),
    }
}
