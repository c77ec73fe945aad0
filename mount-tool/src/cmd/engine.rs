//! `kmsfs engine serve`: the key engine as a daemon. It unseals the store
//! once (key file, passphrase file, a systemd credential, or a prompt),
//! holds it alone (a second daemon, or an embedded user of the same store,
//! is refused), and answers engine calls on a Unix socket: every other
//! process (mounts, `kmsfs --kms unix://... kms ...`) asks it, the kernel
//! tells it who is asking, and none of them holds a master key or the
//! store's secret. SIGTERM or SIGINT stop it after the requests in flight
//! are answered. Readiness: `--ready-fd N`, and `READY=1` to systemd.
//! With `--http ADDR:PORT` the same daemon also serves the AWS KMS API over
//! HTTPS ([`https`]), and SIGTERM stops both listeners together.
//!
//! All serve options are one struct, [`ServeArgs`], and the tokio runtime
//! is built in one place, [`runtime`]; each listener is one task in
//! [`serve_until_stopped`].

mod https;
mod ready;
mod socket;

use crate::cli::EngineArgs as GlobalArgs;
use crate::engine_access::{self, Purpose, RootSecret};
use crate::exit::CliError;
use clap::{Args, Subcommand};
use kms_engine::Engine;
use kms_engine::store::holder::HoldKind;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct EngineArgs {
    #[command(subcommand)]
    pub command: EngineCommand,
}

#[derive(Debug, Subcommand)]
pub enum EngineCommand {
    /// Serve the engine store on a Unix socket until SIGTERM or SIGINT
    Serve(ServeArgs),
}

/// Every option of `kmsfs engine serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The socket to listen on [default: /run/kmsfs/engine.sock for root,
    /// else $XDG_RUNTIME_DIR/kmsfs/engine.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Permission bits of the socket (octal): who may connect at all; key
    /// policies decide what each caller may do
    #[arg(long, value_name = "MODE", default_value = "0660", value_parser = socket::parse_mode)]
    pub socket_mode: u32,
    /// Group owning the socket (name or gid), with --socket-mode 0660 the
    /// group whose members may connect
    #[arg(long, value_name = "GROUP", value_parser = socket::parse_group)]
    pub socket_group: Option<u32>,
    /// Write READY=1 and a newline to this open descriptor once serving
    #[arg(long, value_name = "N")]
    pub ready_fd: Option<i32>,
    /// Start the daemon in the background and return once it serves (its
    /// log goes next to the socket, SOCKET with the extension .log)
    #[arg(long)]
    pub background: bool,
    /// Audit records reach the disk before the call they audit returns (0,
    /// the default), or at least every MS milliseconds and every 256 records
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub audit_flush_ms: u64,
    /// Read the root secret from standard input (how the background daemon
    /// gets a prompted passphrase from the command that started it)
    #[arg(long, hide = true)]
    pub secret_stdin: bool,
    #[command(flatten)]
    pub http: https::HttpArgs,
}

/// The systemd credentials (`LoadCredential=` / `SetCredential=`) the
/// daemon unseals the store with, in `$CREDENTIALS_DIRECTORY`.
pub const CREDENTIAL_KEY: &str = "kmsfs-engine-key";
pub const CREDENTIAL_PASSPHRASE: &str = "kmsfs-engine-passphrase";

pub fn run(global: &GlobalArgs, args: EngineArgs) -> Result<(), CliError> {
    match args.command {
        EngineCommand::Serve(a) => serve(global, &a),
    }
}

fn serve(global: &GlobalArgs, args: &ServeArgs) -> Result<(), CliError> {
    if let Some(url) = &global.kms {
        return Err(CliError::Usage(format!(
            "engine serve serves the engine store (--engine); --kms/KMSFS_KMS ({url}) names \
             a daemon to use instead: unset it"
        )));
    }
    // systemd socket activation: the .socket unit made the socket (its
    // path, mode and group) and keeps it; the daemon only accepts on it.
    let activated = socket::activated()?;
    let socket = match (&activated, &args.socket) {
        (Some((_, path)), Some(asked)) if asked != path => {
            return Err(CliError::Usage(format!(
                "--socket {} differs from the socket systemd passed ({}): drop --socket",
                asked.display(),
                path.display()
            )));
        }
        (Some((_, path)), _) => path.clone(),
        (None, Some(p)) => p.clone(),
        (None, None) => socket::default_path()?,
    };
    if args.background {
        if activated.is_some() {
            return Err(CliError::Usage(
                "--background with socket activation: systemd runs the daemon already".into(),
            ));
        }
        return spawn_background(global, args, &socket);
    }
    let http_plan = https::plan(&args.http)?;
    let sigs = super::mount::block_termination_signals()?;
    // A connection is a descriptor: 1,000 clients must not meet EMFILE
    // under a soft limit of 1,024.
    super::mount::raise_open_file_limit();
    let dir = engine_access::engine_dir(global)?;
    if !engine_access::store_exists(&dir)? {
        return Err(CliError::EngineNotFound(dir));
    }
    let secret = unseal_secret(global, args)?;
    let engine = engine_access::open_held(
        &dir,
        secret,
        super::mount::trail_options(args.audit_flush_ms),
        global.accept_store_rollback,
        HoldKind::Exclusive,
    )?;
    let owned_socket = activated.is_none();
    let listener = match activated {
        Some((listener, _)) => listener,
        None => {
            let ours = socket::prepare_dir(&socket)?;
            socket::open_dir_to(&socket, args.socket_mode, ours)?;
            socket::bind(&socket, args.socket_mode, args.socket_group)?
        }
    };
    // The socket file goes with the daemon (a leftover one is replaced at
    // the next start anyway); systemd's stays, for the next activation.
    let remove_socket = || {
        if owned_socket {
            let _ = std::fs::remove_file(&socket);
        }
    };
    let http = match &http_plan {
        Some(plan) => match https::bind(plan, &args.http, &engine, &dir) {
            Ok(b) => Some(b),
            Err(e) => {
                remove_socket();
                return Err(e);
            }
        },
        None => None,
    };
    let pid = std::process::id();
    engine_access::describe_holder(&format!("pid {pid} socket {}", socket.display()))?;
    eprintln!(
        "kmsfs: engine daemon (pid {pid}) serving {} on {}",
        dir.display(),
        socket.display()
    );
    let served = serve_until_stopped(engine, listener, http, args, sigs);
    remove_socket();
    served
}

/// The root secret: `--secret-stdin`, else a key file or passphrase file
/// option, else a systemd credential, else a prompt on the terminal.
fn unseal_secret(global: &GlobalArgs, args: &ServeArgs) -> Result<RootSecret, CliError> {
    if args.secret_stdin {
        return super::mount::secret_from_stdin();
    }
    if global.key_file.is_none()
        && global.passphrase_file.is_none()
        && let Some(secret) = credential()?
    {
        return Ok(secret);
    }
    engine_access::root_secret(global, Purpose::Open)
}

/// The store's secret from `$CREDENTIALS_DIRECTORY` (systemd), when set:
/// the key file credential, else the passphrase credential.
fn credential() -> Result<Option<RootSecret>, CliError> {
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from) else {
        return Ok(None);
    };
    let key = dir.join(CREDENTIAL_KEY);
    if key.exists() {
        return engine_access::read_key_file(&key).map(|k| Some(RootSecret::Key(k)));
    }
    let pass = dir.join(CREDENTIAL_PASSPHRASE);
    if pass.exists() {
        return engine_access::read_passphrase_file(&pass).map(|p| Some(RootSecret::Passphrase(p)));
    }
    Ok(None)
}

/// The daemon's tokio runtime: the one place it is built.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kmsfs-engine")
        .build()
        .map_err(|e| CliError::io("starting the engine daemon's runtime", e))
}

/// Serves `listener` (and the HTTPS endpoint, when there is one) until one
/// of `sigs` arrives, then stops accepting on both, answers the requests
/// in flight and returns.
fn serve_until_stopped(
    engine: Arc<Engine>,
    listener: std::os::unix::net::UnixListener,
    http: Option<https::Bound>,
    args: &ServeArgs,
    sigs: nix::sys::signal::SigSet,
) -> Result<(), CliError> {
    let rt = runtime()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    std::thread::Builder::new()
        .name("kmsfs-signals".into())
        .spawn(move || {
            if let Ok(sig) = sigs.wait() {
                eprintln!("kmsfs: {sig}: finishing the requests in flight, then stopping");
                ready::sd_notify("STOPPING=1");
            }
            let _ = stop_tx.send(true);
        })
        .map_err(|e| CliError::io("starting the signal thread", e))?;
    let ready_fd = args.ready_fd;
    rt.block_on(async move {
        listener
            .set_nonblocking(true)
            .map_err(|e| CliError::io("preparing the socket", e))?;
        let listener = tokio::net::UnixListener::from_std(listener)
            .map_err(|e| CliError::io("preparing the socket", e))?;
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            // An error: the signal thread is gone, which it never is
            // before sending; stop either way.
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let http = http.map(https::Bound::listen).transpose()?;
        let config = kms_engine::service::ServerConfig::default();
        let server = kms_engine::service::serve(engine, listener, config, stopped(stop_rx.clone()));
        let endpoint = async {
            match http {
                Some(h) => h.serve(stopped(stop_rx)).await,
                None => Ok(()),
            }
        };
        ready::ready(ready_fd);
        let ((), served) = tokio::join!(server, endpoint);
        served
    })
}

/// `--background`: starts this command again without it and with
/// `--ready-fd 1` on a pipe, and returns once the daemon wrote READY (or
/// with its error line when it exited first). A passphrase that would be
/// prompted for is asked here and handed over standard input.
fn spawn_background(global: &GlobalArgs, args: &ServeArgs, socket: &Path) -> Result<(), CliError> {
    let prompted = if global.key_file.is_none()
        && global.passphrase_file.is_none()
        && !args.secret_stdin
        && credential()?.is_none()
    {
        Some(engine_access::root_secret(global, Purpose::Open)?)
    } else {
        None
    };
    socket::prepare_dir(socket)?;
    let log_path = socket.with_extension("log");
    let log = kms_engine::safe_fs::split(&log_path)
        .and_then(|(dir, name)| kms_engine::safe_fs::Dir::open(dir)?.create_replacing(name, 0o600))
        .map_err(|e| CliError::io(log_path.display().to_string(), e))?;
    let exe = std::env::current_exe().map_err(|e| CliError::io("finding own executable", e))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1).filter(|a| a != "--background"))
        .args(["--ready-fd", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(log);
    if prompted.is_some() {
        cmd.arg("--secret-stdin")
            .stdin(std::process::Stdio::piped());
    } else {
        cmd.stdin(std::process::Stdio::null());
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::io("starting the engine daemon", e))?;
    if let (Some(mut stdin), Some(secret)) = (child.stdin.take(), prompted) {
        let sent = stdin.write_all(&secret.to_wire());
        drop(stdin);
        if let Err(e) = sent {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CliError::io("handing the root secret to the daemon", e));
        }
    }
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        // Blocks until the daemon is ready or gone (EOF): no timeout needed.
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    if line == ready::READY_LINE {
        eprintln!(
            "kmsfs: engine daemon (pid {}) serving on {}; log in {}",
            child.id(),
            socket.display(),
            log_path.display()
        );
        // Where the HTTPS endpoint listens and how to trust it.
        let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
        for l in log_text.lines().filter(|l| https::is_endpoint_line(l)) {
            eprintln!("{l}");
        }
        return Ok(());
    }
    let status = child
        .wait()
        .map_err(|e| CliError::io("waiting for the engine daemon", e))?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    Err(super::mount::child_failure(status, &text))
}
