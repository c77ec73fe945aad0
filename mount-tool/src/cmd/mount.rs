//! `kmsfs mount CIPHERDIR MOUNTPOINT`: mount a volume. By default the
//! command re-executes itself with `--foreground` as a detached child and
//! returns once the mount shows in /proc/self/mounts (or reports the
//! child's error). In the foreground it serves until unmounted or signalled
//! (SIGINT/SIGTERM/SIGHUP unmount cleanly) and keeps a status file for
//! `kmsfs status`.

use crate::cli::EngineArgs;
use crate::exit::CliError;
use clap::Args;
use kms_engine::audit::NullSink;
use kms_engine::{Engine, KdfParams, KmsError, Principal, RootKeySource, SystemClock};
use kmsfs::fuse::{Core, FsOptions, KmsFs, mount_config, status};
use kmsfs::keys::KeyService;
use kmsfs::volume::Volume;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

#[derive(Debug, Args)]
pub struct MountArgs {
    /// The backing directory holding the ciphertext
    pub cipherdir: PathBuf,
    /// Where to mount the plaintext view
    pub mountpoint: PathBuf,
    /// Stay in the foreground and serve until unmounted
    #[arg(long)]
    pub foreground: bool,
    /// Let other users access the mount (key policy still applies per user)
    #[arg(long)]
    pub allow_other: bool,
    /// Mount read-only
    #[arg(long)]
    pub read_only: bool,
    /// Seconds after which a cached data key is re-authorized with the engine
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub reauth_secs: u64,
}

/// The default engine directory: `$XDG_DATA_HOME/kmsfs/engine`, else
/// `~/.local/share/kmsfs/engine`.
fn default_engine_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("kmsfs/engine");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".local/share/kmsfs/engine")
}

fn root_source(args: &EngineArgs) -> Result<RootKeySource, CliError> {
    if let Some(k) = &args.key_file {
        return Ok(RootKeySource::KeyFile(k.clone()));
    }
    if let Some(p) = &args.passphrase_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(p).map_err(|e| CliError::io(p.display().to_string(), e))?,
        );
        let line = text.lines().next().unwrap_or("").to_string();
        return Ok(RootKeySource::Passphrase(Zeroizing::new(line)));
    }
    Err(CliError::Kms(KmsError::WrongPassphrase))
}

/// Opens the embedded engine named by the global engine arguments (and
/// creates it when `create` and none exists). Local helper until the
/// shared engine-access module lands.
pub(crate) fn open_engine(args: &EngineArgs, create: bool) -> Result<Arc<Engine>, CliError> {
    let dir = args.engine.clone().unwrap_or_else(default_engine_dir);
    let clock = Arc::new(SystemClock);
    let audit = Arc::new(NullSink);
    match Engine::open(&dir, root_source(args)?, clock.clone(), audit.clone()) {
        Ok(e) => Ok(Arc::new(e)),
        Err(KmsError::StoreNotFound(_)) if create => Ok(Arc::new(Engine::create(
            &dir,
            root_source(args)?,
            KdfParams::default(),
            clock,
            audit,
        )?)),
        Err(e) => Err(e.into()),
    }
}

pub fn run(engine_args: &EngineArgs, args: MountArgs) -> Result<(), CliError> {
    let mountpoint = std::fs::canonicalize(&args.mountpoint)
        .map_err(|e| CliError::io(args.mountpoint.display().to_string(), e))?;
    if status::is_mounted(&mountpoint) {
        return Err(CliError::Mount(format!(
            "{} is already a kmsfs mount",
            mountpoint.display()
        )));
    }
    if args.foreground {
        serve(engine_args, &args, &mountpoint)
    } else {
        spawn_background(&mountpoint)
    }
}

/// Re-executes `kmsfs ... --foreground` detached and waits for the mount.
fn spawn_background(mountpoint: &Path) -> Result<(), CliError> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| CliError::io("finding own executable", e))?;
    let log_path = status::status_file_for(mountpoint).with_extension("log");
    if let Some(d) = log_path.parent() {
        std::fs::create_dir_all(d).map_err(|e| CliError::io(d.display().to_string(), e))?;
    }
    let log = std::fs::File::create(&log_path)
        .map_err(|e| CliError::io(log_path.display().to_string(), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| CliError::io(log_path.display().to_string(), e))?;
    let mut child = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .arg("--foreground")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| CliError::io("starting the mount process", e))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if status::is_mounted(mountpoint) {
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let msg = text.trim();
            return Err(CliError::Mount(format!(
                "mount process exited ({st}){}{msg}",
                if msg.is_empty() { "" } else { ": " }
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(CliError::Mount(format!(
                "{} did not appear mounted within 60 s",
                mountpoint.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Mounts and serves in this process until unmounted or signalled.
fn serve(engine_args: &EngineArgs, args: &MountArgs, mountpoint: &Path) -> Result<(), CliError> {
    use nix::sys::signal::{SigSet, Signal};
    // Block the termination signals before any thread starts: one thread
    // waits for them and unmounts.
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGINT);
    sigs.add(Signal::SIGTERM);
    sigs.add(Signal::SIGHUP);
    sigs.thread_block()
        .map_err(|e| CliError::Mount(format!("blocking signals: {e}")))?;

    let engine = open_engine(engine_args, false)?;
    let caller = Principal::current_process();
    let ks: Arc<dyn KeyService> = Arc::new(engine);
    let vol = Volume::open(&args.cipherdir, &ks, &caller).map_err(super::init::volume_error)?;
    let opts = FsOptions {
        read_only: args.read_only,
        cache: kmsfs::keys::cache::CacheConfig {
            reauth_interval: Duration::from_secs(args.reauth_secs),
            ..Default::default()
        },
    };
    let core = Core::new(vol, ks, opts)
        .map_err(|e| CliError::Mount(format!("opening the volume: {e}")))?;
    let fs = KmsFs::new(core);
    let core = fs.core.clone();
    let cfg = mount_config(args.read_only, args.allow_other);
    let session = fuser::Session::new(fs, mountpoint, &cfg)
        .map_err(|e| CliError::Mount(format!("mounting {}: {e}", mountpoint.display())))?;

    let mp = mountpoint.to_path_buf();
    std::thread::spawn(move || {
        if sigs.wait().is_ok() {
            let _ = nix::mount::umount2(&mp, nix::mount::MntFlags::MNT_DETACH);
        }
    });
    let status_path = status::status_file_for(mountpoint);
    let (mp, sp) = (mountpoint.to_path_buf(), status_path.clone());
    std::thread::spawn(move || {
        loop {
            if let Err(e) = status::write_status(&sp, &core.status(&mp)) {
                log::debug!("status file {}: {e}", sp.display());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let res = session.run();
    let _ = std::fs::remove_file(&status_path);
    res.map_err(|e| CliError::Mount(format!("serving {}: {e}", mountpoint.display())))
}
