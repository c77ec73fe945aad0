//! `kmsfs rewrap`, `kmsfs migrate` and `kmsfs rekey`: the volume-wide key
//! jobs of `kmsfs::rewrap`, with a progress bar on a terminal (plain lines
//! otherwise) and a summary (`--output json|text`).

use crate::cli::{EngineArgs, Output};
use crate::engine_access;
use crate::exit::CliError;
use crate::transport::{self, KmsUrl};
use crate::volume_lock::{User, VolumeLock};
use clap::Args;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use kms_engine::Principal;
use kmsfs::fuse::inode::PlainPath;
use kmsfs::fuse::status;
use kmsfs::keys::KeyService;
use kmsfs::rewrap::{self, Progress, RunOptions, Summary};
use kmsfs::volume::Volume;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a job runs (shared by rewrap, migrate and rekey).
#[derive(Debug, Clone, Args)]
pub struct JobArgs {
    /// Key-service calls in flight at once
    #[arg(long, default_value_t = 8, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,
    /// Files per batch: one journal write and one sync of the backing
    /// filesystem per batch
    #[arg(long, default_value_t = 4096, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch: u64,
    /// Embedded engine: audit records synced at least every MS milliseconds
    /// and 256 records instead of before each call returns (as mount
    /// --audit-flush-ms; a power failure can lose the last MS ms of records)
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub audit_flush_ms: u64,
}

impl JobArgs {
    fn run_options(&self) -> RunOptions {
        RunOptions {
            threads: self.threads as usize,
            batch: self.batch as usize,
        }
    }
}

#[derive(Debug, Args)]
pub struct RewrapArgs {
    /// The backing directory holding the ciphertext (not mounted)
    pub cipherdir: PathBuf,
    /// Re-wrap under this key (id, ARN or alias) of the same key service,
    /// which becomes the volume's key [default: the volume's key, newest
    /// version]
    #[arg(long, value_name = "KEY")]
    pub to_key: Option<String>,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The backing directory holding the ciphertext (not mounted)
    pub cipherdir: PathBuf,
    /// Move the volume to the embedded engine (--engine, --key-file or
    /// --passphrase-file) instead of the service --kms names
    #[arg(long, conflicts_with = "kms")]
    pub to_embedded: bool,
    /// The key on the new service [default: the key of an aws:// or
    /// https:// URL, else the volume's master_key_id, e.g. alias/kmsfs]
    #[arg(long, value_name = "KEY")]
    pub to_key: Option<String>,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// The backing directory holding the ciphertext (not mounted)
    pub cipherdir: PathBuf,
    /// Only the files at or below this plaintext path (e.g. /projects/x)
    #[arg(long, value_name = "PREFIX")]
    pub path: Option<String>,
    /// Also a new names key (for the whole volume) with every name, long
    /// name, symlink target and stored attribute encrypted again under it;
    /// resumable: after an interruption run it again (a mount refuses the
    /// volume until it has finished)
    #[arg(long)]
    pub names: bool,
    #[command(flatten)]
    pub job: JobArgs,
}

/// The cipher directory, canonical, refused when mounted.
/// Refuses a write-only volume: its files' data keys are wrapped for an
/// RSA key's public key, not under the master key these jobs work on.
fn refuse_write_only(cipherdir: &Path, what: &str) -> Result<(), CliError> {
    match kmsfs::volume::read_config(cipherdir) {
        Ok(config) => match config.write_only_key {
            Some(key) => Err(CliError::Usage(format!(
                "{} is a write-only volume: its files' data keys are wrapped for the public \
                 key of {key} (docs/file-format.md, \"Write-only volumes\"), not under a \
                 master key, so {what} does not apply; nothing was changed. To move the \
                 files to other keys, copy them into a new volume from a mount allowed to \
                 Decrypt with {key}",
                cipherdir.display()
            ))),
            None => Ok(()),
        },
        // Not readable as a volume: the job reports that itself.
        Err(_) => Ok(()),
    }
}

fn unmounted_root(cipherdir: &Path, what: &str) -> Result<(PathBuf, VolumeLock), CliError> {
    let root = std::fs::canonicalize(cipherdir)
        .map_err(|e| CliError::io(cipherdir.display().to_string(), e))?;
    super::fsck::refuse_if_mounted(&root).map_err(|e| match e {
        CliError::Usage(m) => {
            CliError::Usage(m.replace("fsck checks", &format!("{what} works on")))
        }
        other => other,
    })?;
    // A mount serving shows in the list above (with the clearer message);
    // the lock refuses one that is still starting, and keeps mounts and
    // other jobs out while this one runs.
    let lock = VolumeLock::take(&root, User::Job(what))?;
    // Temporary files a killed run (or mount) left at the root, such as a
    // half-written job journal: nothing else writes there while unmounted.
    kms_engine::safe_fs::Dir::open(&root)
        .and_then(|d| d.remove_temps())
        .map_err(|e| CliError::io(root.display().to_string(), e))?;
    Ok((root, lock))
}

/// The key service `args` pick, the embedded engine with the job's audit
/// flushing.
fn key_service(args: &EngineArgs, job: &JobArgs) -> Result<Arc<dyn KeyService>, CliError> {
    if args.kms.is_some() || job.audit_flush_ms == 0 {
        return transport::open_key_service(args);
    }
    let dir = engine_access::engine_dir(args)?;
    if !engine_access::store_exists(&dir)? {
        return Err(CliError::EngineNotFound(dir));
    }
    let secret = engine_access::root_secret(args, engine_access::Purpose::Open)?;
    let engine = engine_access::open_with_trail(
        &dir,
        secret,
        super::mount::trail_options(job.audit_flush_ms),
        args.accept_store_rollback,
    )?;
    Ok(Arc::new(engine))
}

/// Opens the volume (its recorded engine unless one is named), finishing a
/// rename a crashed mount left in its journal first, as a mount would.
fn open_volume(
    root: &Path,
    ks: &Arc<dyn KeyService>,
    caller: &Principal,
) -> Result<Volume, CliError> {
    if rewrap::names::pending(root) {
        return Err(names_pending(root));
    }
    open_volume_any(root, ks, caller)
}

fn names_pending(root: &Path) -> CliError {
    CliError::Usage(format!(
        "a names rekey of {} is pending ({}): finish it with kmsfs rekey --names first",
        root.display(),
        rewrap::names::NAMES_STATE_NAME
    ))
}

/// [`open_volume`], also while a names rekey is pending.
fn open_volume_any(
    root: &Path,
    ks: &Arc<dyn KeyService>,
    caller: &Principal,
) -> Result<Volume, CliError> {
    if root.join(rewrap::MIGRATE_STATE_NAME).exists() {
        return Err(CliError::Usage(format!(
            "a migration of {} to another key service is pending ({}): finish it with kmsfs \
             migrate first",
            root.display(),
            rewrap::MIGRATE_STATE_NAME
        )));
    }
    let vol = Volume::open(root, ks, caller).map_err(super::init::volume_error)?;
    super::init::warn_unauthenticated(root, &vol.config);
    kmsfs::fuse::rename::recover_journal(&vol).map_err(|e| {
        CliError::io(
            format!("finishing the rename journal of {}", root.display()),
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(vol)
}

/// Shows a run's progress: a bar on a terminal, else a line every 5 s.
struct Reporter {
    what: &'static str,
    /// What is counted: files, or names for `rekey --names`.
    unit: &'static str,
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
    started: Instant,
}

impl Reporter {
    fn new(what: &'static str) -> Reporter {
        let unit = if what.ends_with("--names") {
            "names"
        } else {
            "files"
        };
        let bar = std::io::stderr().is_terminal().then(|| {
            let template = if unit == "names" {
                "{prefix} [{bar:30}] {pos}/{len} names {per_sec} ETA {eta}".to_string()
            } else {
                "{prefix} [{bar:30}] {pos}/{len} files {msg} {per_sec} ETA {eta}".to_string()
            };
            let style = ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = ProgressBar::new(0).with_style(style).with_prefix(what);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Reporter {
            what,
            unit,
            bar,
            last_line: None,
            started: Instant::now(),
        }
    }

    fn update(&mut self, p: &Progress) {
        if let Some(bar) = &self.bar {
            bar.set_length(p.files_total);
            bar.set_position(p.files_done);
            bar.set_message(format!(
                "{}/{}",
                HumanBytes(p.bytes_done),
                HumanBytes(p.bytes_total)
            ));
            return;
        }
        let done = p.files_done == p.files_total;
        let due = self
            .last_line
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
        if !(due || done && p.files_total > 0) {
            return;
        }
        self.last_line = Some(Instant::now());
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            p.files_done as f64 / secs
        } else {
            0.0
        };
        let eta = if rate > 0.0 {
            format!("{:.0} s", (p.files_total - p.files_done) as f64 / rate)
        } else {
            "-".to_string()
        };
        let unit = self.unit;
        if unit == "names" {
            eprintln!(
                "kmsfs {}: {}/{} {unit}, {rate:.0} {unit}/s, ETA {eta}",
                self.what, p.files_done, p.files_total,
            );
            return;
        }
        eprintln!(
            "kmsfs {}: {}/{} {unit}, {} of {}, {rate:.0} {unit}/s, ETA {eta}",
            self.what,
            p.files_done,
            p.files_total,
            HumanBytes(p.bytes_done),
            HumanBytes(p.bytes_total)
        );
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Prints the summary and turns skipped files into the exit status.
fn report(output: Output, what: &str, s: &Summary) -> Result<(), CliError> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(s).unwrap_or_default()),
        Output::Text | Output::Table => {
            for p in &s.problems {
                println!("{}: {}", p.path, p.what);
            }
            let version = s
                .key_version
                .map_or_else(String::new, |v| format!(" version {v}"));
            println!(
                "{what}: {} files ({}), {} changed, {} already current, {} skipped, in \
                 {:.1} s ({:.0} files/s); key {}{version}",
                s.files,
                HumanBytes(s.bytes),
                s.changed,
                s.current,
                s.skipped,
                s.seconds,
                s.files_per_second,
                s.key_id
            );
            if let Some(n) = &s.names {
                let state = if n.switched {
                    "the volume is now under the new names key"
                } else {
                    "NOT finished: the volume stays under the old names key, run again"
                };
                println!(
                    "names: {} entries in {} directories, {} renamed ({} long names), {} \
                     already under the new key, {} symlink targets and {} attributes sealed \
                     again{}; {state}",
                    n.entries,
                    n.dirs,
                    n.renamed,
                    n.long_names,
                    n.current,
                    n.symlinks,
                    n.xattrs,
                    if n.resumed { ", resumed" } else { "" }
                );
            }
        }
    }
    if s.skipped > 0 {
        return Err(CliError::JobProblems {
            what: what.to_string(),
            count: s.skipped as usize,
        });
    }
    Ok(())
}

fn io(root: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::io(root.display().to_string(), e)
}

/// The mount point `root` is mounted on, if it is.
fn mounted_on(root: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mounts").ok()?;
    status::kmsfs_mounts(&text).into_iter().find_map(|m| {
        let from_status = || {
            status::read_status(&status::status_file_for(&m.mountpoint))
                .ok()
                .and_then(|st| std::fs::canonicalize(st.cipherdir).ok())
        };
        (m.source == root || from_status().as_deref() == Some(root)).then_some(m.mountpoint)
    })
}

/// `kmsfs rewrap` of a mounted volume: the mount process does it (see
/// `kmsfs::fuse::control`); this shows its progress and summary.
fn rewrap_through_mount(
    output: Output,
    mountpoint: &Path,
    args: &RewrapArgs,
) -> Result<(), CliError> {
    use kmsfs::fuse::control::{Reply, Request, control_socket_for};
    use std::io::{BufRead, Write};
    if args.to_key.is_some() {
        return Err(CliError::Usage(format!(
            "rewrap --to-key changes the key new files are created under: unmount {} first",
            mountpoint.display()
        )));
    }
    let path = control_socket_for(mountpoint);
    let unreachable = |e: std::io::Error| {
        CliError::io(
            format!(
                "the mount on {} (control socket {})",
                mountpoint.display(),
                path.display()
            ),
            e,
        )
    };
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(unreachable)?;
    let request = Request::Rewrap {
        threads: args.job.threads as usize,
        batch: args.job.batch as usize,
    };
    let mut line = serde_json::to_vec(&request).unwrap_or_default();
    line.push(b'\n');
    stream.write_all(&line).map_err(unreachable)?;
    let mut rep = Reporter::new("rewrap");
    for line in std::io::BufReader::new(stream).lines() {
        let line = line.map_err(unreachable)?;
        match serde_json::from_str::<Reply>(&line) {
            Ok(Reply::Progress(p)) => rep.update(&p),
            Ok(Reply::Done(s)) => {
                rep.finish();
                return report(output, "rewrap", &s);
            }
            Ok(Reply::Error(e)) => {
                rep.finish();
                return Err(CliError::Usage(format!(
                    "the mount on {} refused: {e}",
                    mountpoint.display()
                )));
            }
            Err(e) => {
                return Err(unreachable(std::io::Error::other(format!(
                    "unreadable answer: {e}"
                ))));
            }
        }
    }
    rep.finish();
    Err(unreachable(std::io::Error::other(
        "the mount closed the connection before the end (it goes on: run kmsfs rewrap \
         again to see it finish)",
    )))
}

pub fn run_rewrap(engine_args: &EngineArgs, args: RewrapArgs) -> Result<(), CliError> {
    refuse_write_only(&args.cipherdir, "rewrap")?;
    let canonical = std::fs::canonicalize(&args.cipherdir)
        .map_err(|e| CliError::io(args.cipherdir.display().to_string(), e))?;
    if let Some(mnt) = mounted_on(&canonical) {
        return rewrap_through_mount(engine_args.output, &mnt, &args);
    }
    let (root, _lock) = unmounted_root(&args.cipherdir, "rewrap")?;
    let engine_args = &transport::with_volume_engine(engine_args, &root)?;
    let ks = key_service(engine_args, &args.job)?;
    let caller = Principal::current_process();
    let mut vol = open_volume(&root, &ks, &caller)?;
    // The names key first: with --to-key the config then names the new key,
    // so an interrupted run resumes towards it without --to-key.
    match &args.to_key {
        Some(k) if *k != vol.config.master_key_id => {
            let kms = vol.config.kms.clone();
            vol.rebind(&ks, &caller, k, kms)
        }
        _ => vol.rewrap_names_key(&ks, &caller),
    }
    .map_err(super::init::volume_error)?;
    let dest_key = vol.bound_key_id().to_string();
    let target =
        rewrap::blob_key_version(&vol.config.wrapped_names_key).filter(|kv| kv.key_id == dest_key);
    let listing = rewrap::walk(&vol, None);
    let job = rewrap::Rewrap {
        keys: &ks,
        caller: &caller,
        volume_id: vol.config.volume_id.clone(),
        dest_key: dest_key.clone(),
        target: target.clone(),
    };
    let mut rep = Reporter::new("rewrap");
    let mut s = rewrap::run(
        &root,
        &listing.files,
        &job,
        args.job.run_options(),
        &mut |p| rep.update(p),
        &|| (),
    )
    .map_err(io(&root))?;
    rep.finish();
    s.key_id = dest_key;
    s.key_version = target.map(|t| t.version);
    s.skipped += listing.problems.len() as u64;
    s.problems.splice(0..0, listing.problems);
    report(engine_args.output, "rewrap", &s)
}

pub fn run_migrate(engine_args: &EngineArgs, args: MigrateArgs) -> Result<(), CliError> {
    refuse_write_only(&args.cipherdir, "migrate")?;
    let (root, _lock) = unmounted_root(&args.cipherdir, "migrate")?;
    let (dest_url, dest_ks): (Option<KmsUrl>, Arc<dyn KeyService>) =
        match (&engine_args.kms, args.to_embedded) {
            (Some(url), _) => (Some(url.clone()), transport::key_service(url)?),
            (None, true) => {
                let embedded = EngineArgs {
                    kms: None,
                    ..engine_args.clone()
                };
                (None, key_service(&embedded, &args.job)?)
            }
            (None, false) => {
                return Err(CliError::Usage(
                    "name the new key service: kmsfs migrate CIPHERDIR --kms URL, or \
                 --to-embedded for the embedded engine"
                        .into(),
                ));
            }
        };
    // The source: the service the volume records, else the embedded engine.
    let src_args = transport::with_volume_engine(
        &EngineArgs {
            kms: None,
            ..engine_args.clone()
        },
        &root,
    )?;
    let caller = Principal::current_process();
    let src_ks = if src_args.kms.is_none() && dest_url.is_none() {
        return Err(CliError::Usage(format!(
            "{} already uses the embedded engine (to move it to another key of the same \
             engine: kmsfs rewrap --to-key KEY)",
            root.display()
        )));
    } else {
        key_service(&src_args, &args.job)?
    };
    if rewrap::names::pending(&root) {
        return Err(names_pending(&root));
    }
    let mut vol = Volume::open(&root, &src_ks, &caller).map_err(super::init::volume_error)?;
    kmsfs::fuse::rename::recover_journal(&vol).map_err(|e| {
        CliError::io(
            format!("finishing the rename journal of {}", root.display()),
            std::io::Error::other(e.to_string()),
        )
    })?;
    let dest_kms = dest_url.as_ref().map(ToString::to_string);
    if dest_kms == vol.config.kms {
        return Err(CliError::Usage(format!(
            "{} already uses {}",
            root.display(),
            dest_kms.as_deref().unwrap_or("the embedded engine")
        )));
    }
    let dest_key = match (&args.to_key, &dest_url) {
        (Some(k), _) => k.clone(),
        (None, Some(KmsUrl::Aws(t))) => t.key.clone(),
        (None, _) => vol.config.master_key_id.clone(),
    };
    let up = rewrap::migrate_config(&root, &vol, &dest_ks, &caller, &dest_key, dest_kms)
        .map_err(super::init::volume_error)?;
    let dest_key_id = dest_ks
        .wrapping_key_id(&up.wrapped_names_key)
        .map_err(CliError::Kms)?;
    let readable_id = rewrap::blob_key_version(&up.wrapped_names_key)
        .map(|kv| kv.key_id)
        .filter(|id| *id == dest_key_id || kmsfs::keys::aws::key_id_of(&dest_key_id) == id);
    let listing = rewrap::walk(&vol, None);
    let job = rewrap::Migrate {
        from: &src_ks,
        to: &dest_ks,
        caller: &caller,
        volume_id: vol.config.volume_id.clone(),
        dest_key: dest_key_id.clone(),
        dest_key_id: readable_id,
    };
    let mut rep = Reporter::new("migrate");
    let mut s = rewrap::run(
        &root,
        &listing.files,
        &job,
        args.job.run_options(),
        &mut |p| rep.update(p),
        &|| (),
    )
    .map_err(io(&root))?;
    rep.finish();
    s.skipped += listing.problems.len() as u64;
    s.problems.splice(0..0, listing.problems);
    s.key_id = dest_key_id;
    if s.retryable > 0 {
        eprintln!(
            "kmsfs: {} files could not be moved (see above): the volume stays on its old \
             key service; run kmsfs migrate again",
            s.retryable
        );
    } else {
        vol.install_config(&dest_ks, &caller, up)
            .map_err(super::init::volume_error)?;
        rewrap::finish_migration(&root).map_err(io(&root))?;
    }
    report(engine_args.output, "migrate", &s)
}

pub fn run_rekey(engine_args: &EngineArgs, args: RekeyArgs) -> Result<(), CliError> {
    refuse_write_only(&args.cipherdir, "rekey")?;
    let prefix = match &args.path {
        None => None,
        Some(p) if p.starts_with('/') => {
            let trimmed = p.trim_end_matches('/');
            Some(PlainPath::from_bytes(if trimmed.is_empty() {
                b"/".to_vec()
            } else {
                trimmed.as_bytes().to_vec()
            }))
        }
        Some(p) => {
            return Err(CliError::Usage(format!(
                "--path {p:?}: give a plaintext path from the volume's root, e.g. /projects"
            )));
        }
    };
    let (root, _lock) = unmounted_root(&args.cipherdir, "rekey")?;
    let engine_args = &transport::with_volume_engine(engine_args, &root)?;
    let ks = key_service(engine_args, &args.job)?;
    let caller = Principal::current_process();
    let pending = rewrap::names::pending(&root);
    if pending && !args.names {
        return Err(names_pending(&root));
    }
    let mut vol = open_volume_any(&root, &ks, &caller)?;
    let mut s = Summary::default();
    if pending {
        // The contents were rekeyed by the run that was interrupted.
        eprintln!(
            "kmsfs rekey: finishing the interrupted names rekey of {}",
            root.display()
        );
    } else {
        if args.names {
            names_preflight(&mut vol, &ks, &caller)?;
        }
        let listing = rewrap::walk(&vol, prefix.as_ref());
        let mut rep = Reporter::new("rekey");
        s = rewrap::rekey::run(
            &vol,
            &ks,
            &caller,
            &listing.files,
            args.job.run_options(),
            &mut |p| rep.update(p),
        )
        .map_err(io(&root))?;
        rep.finish();
        s.skipped += listing.problems.len() as u64;
        s.problems.splice(0..0, listing.problems);
    }
    if args.names {
        let mut rep = Reporter::new("rekey --names");
        let (n, problems) =
            rewrap::names::run(&mut vol, &ks, &caller, false, &mut |p| rep.update(p))
                .map_err(io(&root))?;
        rep.finish();
        if !problems.is_empty() {
            eprintln!(
                "kmsfs: {} names could not be moved to the new names key (see below): the \
                 volume stays under the old one and the rekey pending; run kmsfs rekey --names \
                 again",
                problems.len()
            );
        }
        s.skipped += problems.len() as u64;
        s.problems.extend(problems);
        s.names = Some(n);
    }
    s.key_id = vol.bound_key_id().to_string();
    report(engine_args.output, "rekey", &s)
}

/// Before anything changes: every name, symlink target and attribute of
/// the volume must open under its names key, or it could not be moved to
/// the new one (run `kmsfs fsck --repair` first).
fn names_preflight(
    vol: &mut Volume,
    ks: &Arc<dyn KeyService>,
    caller: &Principal,
) -> Result<(), CliError> {
    let journal = kmsfs::rewrap::journal::REWRAP_JOURNAL_NAME;
    if vol.root.join(journal).exists() {
        return Err(CliError::Usage(format!(
            "an interrupted kmsfs rewrap is pending ({journal}): run it again to finish it \
             before rekey --names"
        )));
    }
    let (_, problems) =
        rewrap::names::run(vol, ks, caller, true, &mut |_| {}).map_err(io(&vol.root.clone()))?;
    if problems.is_empty() {
        return Ok(());
    }
    for p in &problems {
        eprintln!("{}: {}", p.path, p.what);
    }
    Err(CliError::Usage(format!(
        "{} names, symlink targets or attributes of {} do not decrypt under its names key, so \
         they could not be moved to a new one: nothing was changed; run kmsfs fsck --repair \
         first",
        problems.len(),
        vol.root.display()
    )))
}
