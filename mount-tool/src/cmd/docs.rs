//! `kmsfs completions SHELL` and `kmsfs man --dir DIR`: shell completions
//! (clap_complete) and man pages (clap_mangen) generated from the clap
//! definition itself, so every subcommand, including ones added later, is
//! covered without a hand-kept list.

use crate::cli::Cli;
use crate::exit::CliError;
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for (to standard output)
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write the pages into (kmsfs.1, kmsfs-mount.1, ...;
    /// created if missing)
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

/// Writes the completion script for `args.shell` to standard output.
pub fn completions(args: CompletionsArgs) -> Result<(), CliError> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "kmsfs", &mut out);
    crate::cmd::kms::print(&String::from_utf8_lossy(&out))
}

/// Writes one man page per command and subcommand into `args.dir`.
pub fn man(args: ManArgs) -> Result<(), CliError> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| CliError::io(args.dir.display().to_string(), e))?;
    clap_mangen::generate_to(Cli::command(), &args.dir)
        .map_err(|e| CliError::io(format!("writing man pages to {}", args.dir.display()), e))
}
