//! The `kmsfs` command: mount encrypted directories and administer the engine.

mod cli;
mod cmd;
mod engine_access;
mod exit;
mod mount_helper;
mod table;
mod transport;
mod volume_lock;

/// Keeps key material out of core dumps: the engine's master keys, data
/// keys and passphrases live in this process's memory. No core file
/// (RLIMIT_CORE 0, also for the mount process this one starts) and not
/// dumpable (no core through a pipe handler either, and no ptrace attach
/// by other processes of the same user). Best effort: a failure is logged.
fn keep_secrets_out_of_core_dumps() {
    use nix::sys::resource::{Resource, setrlimit};
    if let Err(e) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        log::warn!("cannot turn off core dumps (RLIMIT_CORE): {e}");
    }
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        log::warn!("cannot mark the process not dumpable: {e}");
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    keep_secrets_out_of_core_dumps();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.first().is_some_and(|a0| mount_helper::is_helper(a0)) {
        std::process::exit(mount_helper::run(&argv[1..]));
    }
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
