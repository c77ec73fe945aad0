//! `kmsfs fsck CIPHERDIR [--json]`: checks an unmounted volume end to end
//! (`kmsfs::fsck`) and reports every problem, changing nothing. The engine
//! is opened with its audit trail like for any command: the Decrypt of each
//! file's data key is audited. Exit 0 when clean, 6 when problems are found.

use crate::cli::EngineArgs;
use crate::exit::CliError;
use crate::transport;
use clap::Args;
use kms_engine::Principal;
use kmsfs::fuse::status;
use kmsfs::volume::Volume;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// The backing directory holding the ciphertext (not mounted)
    pub cipherdir: PathBuf,
    /// Print the report as one JSON object instead of lines
    #[arg(long)]
    pub json: bool,
}

pub fn run(engine_args: &EngineArgs, args: FsckArgs) -> Result<(), CliError> {
    let root = std::fs::canonicalize(&args.cipherdir)
        .map_err(|e| CliError::io(args.cipherdir.display().to_string(), e))?;
    refuse_if_mounted(&root)?;
    let engine_args = &transport::with_volume_engine(engine_args, &root)?;
    let ks = transport::open_key_service(engine_args)?;
    let caller = Principal::current_process();
    let vol = Volume::open(&root, &ks, &caller).map_err(super::init::volume_error)?;
    super::init::warn_unauthenticated(&root, &vol.config);
    let report = kmsfs::fsck::check(&vol, &ks, &caller)
        .map_err(|e| CliError::io(format!("checking {}", root.display()), e))?;
    if args.json {
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
