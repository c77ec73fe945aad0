//! The `kmsfs` command: mount encrypted directories and administer the engine.

mod cli;
mod cmd;
mod engine_access;
mod exit;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = cli::Cli::parse_args();
    let code = match cmd::run(cli) {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            eprintln!("kmsfs: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
