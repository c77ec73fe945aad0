//! `kmsfs mount CIPHERDIR MOUNTPOINT`: mount a volume. By default the
//! command re-executes itself with `--foreground` as a detached child and
//! returns once the mount shows in /proc/self/mounts (or reports the
//! child's error). In the foreground it serves until unmounted or signalled
//! (SIGINT/SIGTERM/SIGHUP unmount cleanly) and keeps a status file for
//! `kmsfs status`. Every engine call made for FUSE callers is audited in
//! `<engine dir>/audit`. `--init` first creates what is missing (engine
//! store, volume, mount point).

use crate::cli::EngineArgs;
use crate::engine_access::{self, KdfChoice, Purpose, RootSecret};
use crate::exit::CliError;
use crate::transport::{self, KmsUrl};
use clap::Args;
use kms_engine::audit::{SyncMode, TrailOptions};
use kms_engine::{Engine, Principal};
use kmsfs::format::CONFIG_FILE_NAME;
use kmsfs::fuse::{Core, FsOptions, KmsFs, status};
use kmsfs::keys::KeyService;
use kmsfs::keys::remote::TransportKeys;
use kmsfs::volume::Volume;
use nix::sys::signal::{SigSet, Signal};
use std::io::{Read, Write};
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
    /// Opens one cached data key serves before the engine is asked again
    /// (the cache's max uses; unset: no limit, the age alone decides)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub cache_max_uses: Option<u64>,
    /// How a new file gets its data key: `background` (made here and
    /// wrapped by the key service with Encrypt while the file is written;
    /// close does not wait for it, fsync and the unmount do) or `create`
    /// (GenerateDataKey, waited for in create). Default: background on an
    /// AWS KMS service (aws:// and https:// volumes), create otherwise
    #[arg(long, value_enum, value_name = "WHEN")]
    pub new_keys: Option<NewKeys>,
    /// On an AWS KMS service: the calls made for these local users go out
    /// with the credentials of their own AWS profile (of the shared config
    /// and credentials files), so the service sees a principal per user;
    /// other users' calls use the mount's credentials. USER is a uid or a
    /// user name: `--aws-profile-map 1000=alice,bob=bob-kms`
    #[arg(long, value_name = "USER=PROFILE,...", value_parser = parse_profile_map)]
    pub aws_profile_map: Option<kmsfs::keys::aws::ProfileMap>,
    /// On an AWS KMS service: the longest one call to the service may take,
    /// its retries included (each attempt gets at most half of it, and 5 s)
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub kms_timeout: u64,
    /// No extended attributes: the kernel stops asking for them after the
    /// first request (ls -l and writes cost fewer round trips), and
    /// getxattr/setxattr/listxattr fail with EOPNOTSUPP; no POSIX ACLs
    #[arg(long)]
    pub no_xattr: bool,
    /// The kernel's writeback cache: small writes gather into large ones
    /// (untar of many small files ~17 % faster), the kernel keeps size and
    /// mtime while it holds unwritten data. Data not yet flushed (by fsync,
    /// close or the kernel) is lost if the mount process is killed, and
    /// sizes changed by another host are not seen: for a volume one mount
    /// writes. Not for write-only volumes
    #[arg(long)]
    pub writeback_cache: bool,
    /// Audit records reach the disk (fdatasync) before the call they audit
    /// returns (0, the default), or at least every MS milliseconds and every
    /// 256 records and before any fsync on the mount returns: faster (one
    /// fdatasync per created file otherwise), but a power failure can lose
    /// the records of the last MS milliseconds (a crash of the mount process
    /// loses none)
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub audit_flush_ms: u64,
    /// Set everything up first: create the engine store if there is none
    /// (asking for a new passphrase twice on a terminal, or using
    /// --passphrase-file/--key-file), create a volume in CIPHERDIR if it has
    /// no kmsfs.conf (making the directory if missing; a non-empty directory
    /// without kmsfs.conf is refused), and create MOUNTPOINT if missing
    #[arg(long)]
    pub init: bool,
    /// With --init, when a new store is created: Argon2id memory cost of
    /// its passphrase in KiB [default: 65536]; lower only for tests
    #[arg(long, value_name = "KIB", requires = "init")]
    pub kdf_memory_kib: Option<u32>,
    /// With --init, when a new store is created: Argon2id iterations [default: 3]
    #[arg(long, value_name = "N", requires = "init")]
    pub kdf_iterations: Option<u32>,
    /// Read the engine's root secret from standard input (how the
    /// background mount process gets it from the command that started it)
    #[arg(long, hide = true)]
    pub secret_stdin: bool,
}

/// `--aws-profile-map`: `USER=PROFILE` pairs, comma-separated; USER a uid
/// or a user name.
fn parse_profile_map(s: &str) -> Result<kmsfs::keys::aws::ProfileMap, String> {
    let mut map = kmsfs::keys::aws::ProfileMap::new();
    for pair in s.split(',').filter(|p| !p.is_empty()) {
        let (user, profile) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair}: expected USER=PROFILE"))?;
        if profile.is_empty() {
            return Err(format!("{pair}: the profile name is empty"));
        }
        let uid = match user.parse::<u32>() {
            Ok(uid) => uid,
            Err(_) => nix::unistd::User::from_name(user)
                .map_err(|e| format!("{user}: {e}"))?
                .ok_or_else(|| format!("{user}: no such user"))?
                .uid
                .as_raw(),
        };
        if map.insert(uid, profile.to_string()).is_some() {
            return Err(format!("uid {uid} is mapped twice"));
        }
    }
    if map.is_empty() {
        return Err("no USER=PROFILE pair".into());
    }
    Ok(map)
}

/// When a new file's data key is wrapped (`--new-keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NewKeys {
    /// Made by the mount, wrapped (Encrypt) in the background
    Background,
    /// GenerateDataKey in create
    Create,
}

impl MountArgs {
    /// The background wrapping of new keys, from `--new-keys` (default:
    /// on for a remote AWS-KMS-compatible service).
    fn background_wrap(&self, aws: bool) -> Option<kmsfs::keys::wrap::WrapLimits> {
        let on = match self.new_keys {
            Some(n) => n == NewKeys::Background,
            None => aws,
        };
        on.then(kmsfs::keys::wrap::WrapLimits::default)
    }

    /// The AWS client's limits, from `--kms-timeout`.
    fn aws_limits(&self) -> kmsfs::keys::aws::AwsLimits {
        let d = kmsfs::keys::aws::AwsLimits::default();
        let call = Duration::from_secs(self.kms_timeout);
        kmsfs::keys::aws::AwsLimits {
            call_timeout: call,
            attempt_timeout: d.attempt_timeout.min(call / 2),
            connect_timeout: d.connect_timeout.min(call / 2),
            ..d
        }
    }

    /// The audit trail's flushing, from `--audit-flush-ms`.
    fn trail_options(&self) -> TrailOptions {
        trail_options(self.audit_flush_ms)
    }

    fn kdf(&self) -> KdfChoice {
        KdfChoice {
            memory_kib: self.kdf_memory_kib,
            iterations: self.kdf_iterations,
        }
    }
}

pub fn run(engine_args: &EngineArgs, args: MountArgs) -> Result<(), CliError> {
    let engine_args = &transport::with_volume_engine(engine_args, &args.cipherdir)?;
    if engine_args.key_file.is_some() && args.kdf().is_set() {
        return Err(CliError::Usage(
            "--kdf-memory-kib and --kdf-iterations set the passphrase's Argon2id cost; \
             a key file is used as it is"
                .into(),
        ));
    }
    let sigs = if args.foreground {
        Some(block_termination_signals()?)
    } else {
        None
    };
    if let Some(url) = &engine_args.kms {
        return run_client(url, sigs, &args);
    }
    if args.aws_profile_map.is_some() {
        return Err(CliError::Usage(
            "--aws-profile-map is for a volume on an AWS KMS service; the embedded engine \
             knows each caller by its uid already"
                .into(),
        ));
    }
    // The engine opened (and the volume created) by --init, or by a
    // foreground mount; the background parent hands only the secret on.
    let mut opened: Option<(Arc<Engine>, RootSecret)> = None;
    if args.init {
        opened = Some(prepare(engine_args, &args)?);
    }
    let mountpoint = std::fs::canonicalize(&args.mountpoint)
        .map_err(|e| CliError::io(args.mountpoint.display().to_string(), e))?;
    check_not_mounted(&mountpoint)?;
    if !args.secret_stdin {
        warn_unauthenticated(&args.cipherdir);
    }
    if let Some(sigs) = sigs {
        let engine = match opened {
            Some((engine, _)) => engine,
            None => {
                let dir = engine_access::engine_dir(engine_args)?;
                if !engine_access::store_exists(&dir)? {
                    return Err(CliError::EngineNotFound(dir));
                }
                engine_access::open_with_trail(
                    &dir,
                    secret(engine_args, &args, Purpose::Open)?,
                    args.trail_options(),
                    engine_args.accept_store_rollback,
                )?
            }
        };
        serve(Arc::new(engine), false, sigs, &args, &mountpoint)
    } else {
        let secret = match opened {
            // Close this process's engine (and its audit trail) first.
            Some((_engine, secret)) => secret,
            None => {
                let dir = engine_access::engine_dir(engine_args)?;
                if !engine_access::store_exists(&dir)? {
                    return Err(CliError::EngineNotFound(dir));
                }
                secret(engine_args, &args, Purpose::Open)?
            }
        };
        spawn_background(&mountpoint, Some(&secret))
    }
}

/// A mount whose engine is a daemon (`--kms`): this process never opens
/// the store nor holds its secret; every data key comes over the socket.
fn run_client(url: &KmsUrl, sigs: Option<SigSet>, args: &MountArgs) -> Result<(), CliError> {
    if args.init {
        prepare_client(url, args)?;
    }
    let mountpoint = std::fs::canonicalize(&args.mountpoint)
        .map_err(|e| CliError::io(args.mountpoint.display().to_string(), e))?;
    check_not_mounted(&mountpoint)?;
    match sigs {
        Some(sigs) => {
            let profiles = args.aws_profile_map.clone().unwrap_or_default();
            let keys = transport::mount_key_service(url, &profiles, args.aws_limits())?;
            serve(keys, matches!(url, KmsUrl::Aws(_)), sigs, args, &mountpoint)
        }
        None => {
            warn_unauthenticated(&args.cipherdir);
            spawn_background(&mountpoint, None)
        }
    }
}

/// `--init` through a daemon: creates the volume (and its master key)
/// when CIPHERDIR has no kmsfs.conf, and MOUNTPOINT when missing.
fn prepare_client(url: &KmsUrl, args: &MountArgs) -> Result<(), CliError> {
    if !args.cipherdir.join(CONFIG_FILE_NAME).exists() {
        super::init::check_empty_or_missing(&args.cipherdir)?;
        let new = super::init::NewVolume::default_with(Some(url.to_string()));
        let config = match url {
            KmsUrl::Aws(target) => super::init::create_on_aws(url, target, &args.cipherdir, new)?,
            KmsUrl::Unix(_) => {
                let kms = transport::connect(url)?;
                let keys = TransportKeys::new(kms.clone());
                super::init::create_volume(Some(kms.as_ref()), &keys, &args.cipherdir, new)?
            }
        };
        eprintln!(
            "kmsfs: created volume {} in {} (master key {})",
            config.volume_id,
            args.cipherdir.display(),
            config.master_key_id
        );
    }
    if !args.mountpoint.exists() {
        std::fs::create_dir_all(&args.mountpoint)
            .map_err(|e| CliError::io(args.mountpoint.display().to_string(), e))?;
    }
    Ok(())
}

fn check_not_mounted(mountpoint: &Path) -> Result<(), CliError> {
    if status::is_mounted(mountpoint) {
        return Err(CliError::Mount(format!(
            "{} is already a kmsfs mount",
            mountpoint.display()
        )));
    }
    Ok(())
}

/// The command the user ran warns about an unauthenticated config (a
/// background mount process's output goes to its log); a config that does
/// not decode is reported when the volume is opened.
fn warn_unauthenticated(cipherdir: &Path) {
    if let Ok(config) = kmsfs::volume::read_config(cipherdir) {
        super::init::warn_unauthenticated(cipherdir, &config);
    }
}

/// The audit trail's flushing for `--audit-flush-ms MS` (the mount's and
/// the engine daemon's): every record synced before its call returns (0),
/// or at least every MS milliseconds and every 256 records.
pub(crate) fn trail_options(audit_flush_ms: u64) -> TrailOptions {
    let sync = match audit_flush_ms {
        0 => SyncMode::EveryRecord,
        ms => SyncMode::Batched {
            max_records: 256,
            max_delay: Duration::from_millis(ms),
        },
    };
    TrailOptions {
        sync,
        ..TrailOptions::default()
    }
}

/// Blocks the termination signals in this thread, before any other thread
/// starts (the engine's audit thread included), so that only the thread
/// that waits for them sees them, and it unmounts.
pub(crate) fn block_termination_signals() -> Result<SigSet, CliError> {
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGINT);
    sigs.add(Signal::SIGTERM);
    sigs.add(Signal::SIGHUP);
    sigs.thread_block()
        .map_err(|e| CliError::Mount(format!("blocking signals: {e}")))?;
    Ok(sigs)
}

/// The root secret: from standard input for the background process, else
/// as the global engine arguments say.
fn secret(
    engine_args: &EngineArgs,
    args: &MountArgs,
    purpose: Purpose,
) -> Result<RootSecret, CliError> {
    if !args.secret_stdin {
        return engine_access::root_secret(engine_args, purpose);
    }
    secret_from_stdin()
}

/// The root secret handed over standard input by the command that started
/// this background process ([`RootSecret::to_wire`]).
pub(crate) fn secret_from_stdin() -> Result<RootSecret, CliError> {
    let mut bytes = Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::io("reading the root secret from standard input", e))?;
    RootSecret::from_wire(&bytes).ok_or_else(|| {
        CliError::Usage("--secret-stdin: standard input holds no root secret".into())
    })
}

/// `--init`: opens or creates the engine store, creates the volume when
/// CIPHERDIR has no kmsfs.conf, and creates MOUNTPOINT when missing.
fn prepare(
    engine_args: &EngineArgs,
    args: &MountArgs,
) -> Result<(Arc<Engine>, RootSecret), CliError> {
    let has_volume = args.cipherdir.join(CONFIG_FILE_NAME).exists();
    if !has_volume {
        // Refuse a non-empty directory before creating anything.
        super::init::check_empty_or_missing(&args.cipherdir)?;
    }
    let dir = engine_access::engine_dir(engine_args)?;
    let opened = if engine_access::store_exists(&dir)? {
        let secret = secret(engine_args, args, Purpose::Open)?;
        (
            engine_access::open_with_trail(
                &dir,
                secret.clone(),
                args.trail_options(),
                engine_args.accept_store_rollback,
            )?,
            secret,
        )
    } else {
        let secret = secret(engine_args, args, Purpose::Create)?;
        let created = engine_access::create_with_trail(
            &dir,
            secret.clone(),
            args.kdf(),
            args.trail_options(),
        )?;
        eprintln!("kmsfs: created the engine store in {}", dir.display());
        (created.engine, secret)
    };
    if !has_volume {
        let new = super::init::NewVolume::default_with(None);
        let config =
            super::init::create_volume(Some(opened.0.as_ref()), &opened.0, &args.cipherdir, new)?;
        eprintln!(
            "kmsfs: created volume {} in {} (master key {})",
            config.volume_id,
            args.cipherdir.display(),
            config.master_key_id
        );
    }
    if !args.mountpoint.exists() {
        std::fs::create_dir_all(&args.mountpoint)
            .map_err(|e| CliError::io(args.mountpoint.display().to_string(), e))?;
    }
    Ok(opened)
}

/// Re-executes `kmsfs ... --foreground` detached and waits for the mount;
/// hands it the root secret of an embedded engine over a pipe.
fn spawn_background(mountpoint: &Path, secret: Option<&RootSecret>) -> Result<(), CliError> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| CliError::io("finding own executable", e))?;
    let log_path = status::status_file_for(mountpoint).with_extension("log");
    // The runtime directory may be the predictable /tmp/kmsfs-<uid>: it
    // must be ours, and the log is a fresh 0600 file that replaces
    // (never follows) whatever had its name.
    let log = status::open_runtime_dir(&log_path)
        .and_then(|(dir, name)| dir.create_replacing(name, 0o600))
        .map_err(|e| CliError::io(log_path.display().to_string(), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| CliError::io(log_path.display().to_string(), e))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1)).arg("--foreground");
    if secret.is_some() {
        cmd.arg("--secret-stdin")
            .stdin(std::process::Stdio::piped());
    } else {
        cmd.stdin(std::process::Stdio::null());
    }
    let mut child = cmd
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| CliError::io("starting the mount process", e))?;
    // Hand the root secret over the pipe, then close it (EOF ends the read).
    if let (Some(mut stdin), Some(secret)) = (child.stdin.take(), secret) {
        let sent = stdin.write_all(&secret.to_wire());
        drop(stdin);
        if let Err(e) = sent {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CliError::io(
                "handing the root secret to the mount process",
                e,
            ));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if status::is_mounted(mountpoint) {
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(child_failure(st, &text));
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

/// The error for a background mount process that exited before its mount
/// appeared: its own error line (it prints `kmsfs: LINE` and exits with the
/// code for it) and its exit code, or the whole log when there is no such line.
pub(crate) fn child_failure(status: std::process::ExitStatus, log: &str) -> CliError {
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("kmsfs: "))
        .map(str::to_owned);
    let message = line.unwrap_or_else(|| {
        let log = log.trim();
        format!(
            "mount process exited ({status}){}{log}",
            if log.is_empty() { "" } else { ": " }
        )
    });
    match status.code() {
        Some(code) => CliError::MountProcess { code, message },
        None => CliError::Mount(message),
    }
}

/// Every file open on the mount holds a backing file open in this process,
/// and every directory a descriptor until its first read: the soft limit on
/// open files (often 1024) is raised to the hard limit, so that programs
/// holding many files open do not see EMFILE from kmsfs first.
pub(crate) fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                log::warn!("cannot raise the open-file limit from {soft} to {hard}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => log::warn!("cannot read the open-file limit: {e}"),
    }
}

/// Mounts and serves in this process until unmounted or signalled. `aws`:
/// the key service is an AWS-KMS-compatible one (see `--new-keys`).
fn serve(
    ks: Arc<dyn KeyService>,
    aws: bool,
    sigs: SigSet,
    args: &MountArgs,
    mountpoint: &Path,
) -> Result<(), CliError> {
    raise_open_file_limit();
    let caller = Principal::current_process();
    // Held until this process ends: no offline job runs while it serves.
    let _volume_lock =
        crate::volume_lock::VolumeLock::take(&args.cipherdir, crate::volume_lock::User::Mount)?;
    if args
        .cipherdir
        .join(kmsfs::rewrap::MIGRATE_STATE_NAME)
        .exists()
    {
        return Err(CliError::Usage(format!(
            "a migration of {} to another key service is pending: finish it with kmsfs \
             migrate first",
            args.cipherdir.display()
        )));
    }
    if kmsfs::rewrap::names::pending(&args.cipherdir) {
        return Err(CliError::Usage(format!(
            "a names rekey of {} is pending ({}): finish it with kmsfs rekey --names first",
            args.cipherdir.display(),
            kmsfs::rewrap::names::NAMES_STATE_NAME
        )));
    }
    let vol = Volume::open(&args.cipherdir, &ks, &caller).map_err(super::init::volume_error)?;
    if args.writeback_cache && vol.config.write_only_key.is_some() {
        return Err(CliError::Usage(format!(
            "--writeback-cache cannot be used on {}: it is a write-only volume, and the \
             kernel's writeback cache reads a page before it writes part of it",
            args.cipherdir.display()
        )));
    }
    let opts = FsOptions {
        read_only: args.read_only,
        cache: kmsfs::keys::cache::CacheConfig {
            reauth_interval: Duration::from_secs(args.reauth_secs),
            max_uses: args.cache_max_uses,
            ..Default::default()
        },
        background_wrap: args.background_wrap(aws),
        no_xattr: args.no_xattr,
        writeback_cache: args.writeback_cache,
    };
    let core = Core::new(vol, ks, opts)
        .map_err(|e| CliError::Mount(format!("opening the volume: {e}")))?;
    let fs = KmsFs::new(core);
    let core = fs.core.clone();
    let spec = kmsfs::fuse::mount::MountSpec {
        cipherdir: std::fs::canonicalize(&args.cipherdir)
            .map_err(|e| CliError::io(args.cipherdir.display().to_string(), e))?,
        mountpoint: mountpoint.to_path_buf(),
        read_only: args.read_only,
        allow_other: args.allow_other,
    };
    let session = kmsfs::fuse::mount::mount(fs, &spec)
        .map_err(|e| CliError::Mount(format!("mounting {}: {e}", mountpoint.display())))?;

    let mp = mountpoint.to_path_buf();
    std::thread::spawn(move || {
        if sigs.wait().is_ok() {
            let _ = nix::mount::umount2(&mp, nix::mount::MntFlags::MNT_DETACH);
        }
    });
    let control_path = kmsfs::fuse::control::control_socket_for(mountpoint);
    if let Err(e) = kmsfs::fuse::control::serve(core.clone(), &control_path) {
        log::warn!(
            "control socket {}: {e} (kmsfs rewrap cannot reach this mount)",
            control_path.display()
        );
    }
    let status_path = status::status_file_for(mountpoint);
    let (mp, sp) = (mountpoint.to_path_buf(), status_path.clone());
    let status_core = core.clone();
    // Files by key version, for `kmsfs status`: counted from the headers
    // at mount, after an online rewrap and every 10 minutes.
    let versions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (vcore, vcount) = (core.clone(), versions.clone());
    std::thread::spawn(move || {
        let mut last: Option<std::time::Instant> = None;
        loop {
            let due = kmsfs::fuse::control::recount_due()
                || last.is_none_or(|t| t.elapsed() >= Duration::from_secs(600));
            if due {
                let v = vcore.key_versions();
                if let Ok(mut g) = vcount.lock() {
                    *g = v;
                }
                last = Some(std::time::Instant::now());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    std::thread::spawn(move || {
        let core = status_core;
        loop {
            let mut report = core.status(&mp);
            report.key_versions = versions.lock().map(|g| g.clone()).unwrap_or_default();
            if let Err(e) = status::write_status(&sp, &report) {
                log::debug!("status file {}: {e}", sp.display());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let res = session.run();
    // New files' keys still being wrapped: wrapped (or given up) before
    // the process ends.
    core.finish_pending_keys();
    let _ = std::fs::remove_file(&status_path);
    let _ = std::fs::remove_file(&control_path);
    res.map_err(|e| CliError::Mount(format!("serving {}: {e}", mountpoint.display())))
}
