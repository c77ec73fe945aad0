//! `kmsfs fsck CIPHERDIR [--json] [--repair]`: checks an unmounted volume
//! end to end (`kmsfs::fsck`) and reports every problem, changing nothing;
//! with `--repair`, repairs what it can and quarantines what it cannot
//! (`kmsfs::repair`). The engine is opened with its audit trail like for
//! any command: the Decrypt of each file's data key is audited. Exit 0 when
//! clean (after repair, with `--repair`), 6 when problems are (left).
//! A progress bar on a terminal (standard error), plain lines otherwise.

use crate::cli::{EngineArgs, Output};
use crate::exit::CliError;
use crate::transport;
use crate::volume_lock::{User, VolumeLock};
use clap::Args;
use kms_engine::Principal;
use kmsfs::fsck::{QUARANTINE_DIR_NAME, Report};
use kmsfs::fuse::status;
use kmsfs::volume::Volume;
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a plain progress line is printed when standard error is not
/// a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// The backing directory holding the ciphertext (not mounted)
    pub cipherdir: PathBuf,
    /// Print the report as one JSON object instead of lines (also
    /// `--output json` given explicitly)
    #[arg(long)]
    pub json: bool,
    /// Repair: finish a pending rename, restore or recreate directory IVs
    /// and long-name side files, move everything else that is damaged or
    /// stray into CIPHERDIR/kmsfs.quarantine/ (never deletes anything)
    #[arg(long)]
    pub repair: bool,
}

pub fn run(engine_args: &EngineArgs, args: FsckArgs) -> Result<(), CliError> {
    let root = std::fs::canonicalize(&args.cipherdir)
        .map_err(|e| CliError::io(args.cipherdir.display().to_string(), e))?;
    refuse_if_mounted(&root)?;
    let _lock = VolumeLock::take(
        &root,
        if args.repair {
            User::Job("fsck --repair")
        } else {
            User::Reader("fsck")
        },
    )?;
    let engine_args = &transport::with_volume_engine(engine_args, &root)?;
    let ks = transport::open_key_service(engine_args)?;
    let caller = Principal::current_process();
    let vol = Volume::open(&root, &ks, &caller).map_err(super::init::volume_error)?;
    super::init::warn_unauthenticated(&root, &vol.config);
    let json = args.json || (engine_args.output_explicit && engine_args.output == Output::Json);
    let mut bar = Progress::new(count_files(&root));
    if args.repair {
        let report = kmsfs::repair::repair(&vol, &ks, &caller, &mut |r| bar.tick(r))
            .map_err(|e| CliError::io(format!("repairing {}", root.display()), e))?;
        bar.finish();
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
        } else {
            print!("{}", kmsfs::repair::report_text(&report));
        }
        return match report.after.problems.len() {
            0 => Ok(()),
            n => Err(CliError::FsckProblems(n)),
        };
    }
    let report = kmsfs::fsck::check_with_progress(&vol, &ks, &caller, Some(&mut |r| bar.tick(r)))
        .map_err(|e| CliError::io(format!("checking {}", root.display()), e))?;
    bar.finish();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        for p in &report.problems {
            println!("{}: {}", p.path, p.what);
        }
        println!(
            "checked {} files, {} directories, {} symlinks, {} other, {} xattrs: {} problems",
            report.files,
            report.dirs,
            report.symlinks,
            report.other,
            report.xattrs,
            report.problems.len()
        );
        if let Some(k) = report
            .key_versions
            .as_ref()
            .filter(|k| k.older_versions + k.other_keys > 0)
        {
            println!(
                "{} files under an older version of the volume's key and {} under another key \
                 ({} under the newest): kmsfs rewrap re-wraps them",
                k.older_versions, k.other_keys, k.newest
            );
        }
        if report.old_format_files > 0 {
            println!(
                "{} files in content format 1 (no end mark: a file cut at a block boundary \
                 is not detected in them); each converts when truncated to zero bytes",
                report.old_format_files
            );
        }
    }
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::FsckProblems(report.problems.len()))
    }
}

/// Regular files below `root` (the quarantine aside): the length of the
/// progress bar. Counting reads directories only.
fn count_files(root: &Path) -> u64 {
    let mut n = 0;
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() && e.file_name() != QUARANTINE_DIR_NAME => todo.push(e.path()),
                Ok(t) if t.is_file() && !kmsfs::names::is_reserved(e.file_name().as_bytes()) => {
                    n += 1
                }
                _ => {}
            }
        }
    }
    n
}

/// Progress of the check: an indicatif bar on a terminal, else a plain
/// line on standard error at most every few seconds.
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { total: u64, last: Instant },
}

impl Progress {
    fn new(total: u64) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {bar:40} {pos}/{len} files {msg} ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                total,
                last: Instant::now(),
            }
        }
    }

    fn tick(&mut self, r: &Report) {
        match self {
            Progress::Bar(bar) => {
                // A repair checks again after each pass: the bar restarts.
                if r.files < bar.position() {
                    bar.reset();
                }
                bar.set_position(r.files);
                bar.set_message(format!("{} problems", r.problems.len()));
            }
            Progress::Lines { total, last } => {
                if last.elapsed() >= PLAIN_PROGRESS_EVERY {
                    *last = Instant::now();
                    eprintln!(
                        "kmsfs fsck: {} of {} files checked, {} problems so far",
                        r.files,
                        total,
                        r.problems.len()
                    );
                }
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// A mounted volume changes under the check: refuse, naming the mount.
pub(crate) fn refuse_if_mounted(root: &std::path::Path) -> Result<(), CliError> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mounts") else {
        return Ok(());
    };
    for m in status::kmsfs_mounts(&text) {
        // The mount's source is its cipher directory (the status file says
        // so too, with the path the mount was given).
        let from_status = || {
            status::read_status(&status::status_file_for(&m.mountpoint))
                .ok()
                .and_then(|st| std::fs::canonicalize(st.cipherdir).ok())
        };
        if m.source == root || from_status().as_deref() == Some(root) {
            return Err(CliError::Usage(format!(
                "{} is mounted on {}: unmount it first (fsck checks an unmounted volume)",
                root.display(),
                m.mountpoint.display()
            )));
        }
    }
    Ok(())
}
