//! `kmsfs status`: the mounted kmsfs volumes, their keys, open files and
//! key-cache figures (from the status file each mount process keeps).

use crate::cli::Output;
use crate::exit::CliError;
use clap::Args;
use kmsfs::fuse::stale::{self, StatusFile};
use kmsfs::fuse::status::{self, StatusReport};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct StatusArgs {}

#[derive(Debug, Serialize)]
struct MountStatus {
    mountpoint: PathBuf,
    /// The mount's source in /proc/mounts: the cipher directory.
    source: PathBuf,
    options: String,
    /// None when the mount process left no (readable) status file, or is gone.
    status: Option<StatusReport>,
    /// The pid of a mount process that is gone (killed): the mount is dead
    /// and its status file was removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_pid: Option<u32>,
}

pub fn run(output: Output, _args: StatusArgs) -> Result<(), CliError> {
    let text = std::fs::read_to_string("/proc/self/mounts")
        .map_err(|e| CliError::io("reading /proc/self/mounts", e))?;
    let mounts: Vec<MountStatus> = status::kmsfs_mounts(&text)
        .into_iter()
        .map(|m| {
            let (status, dead_pid) =
                match stale::load_status(&status::status_file_for(&m.mountpoint)) {
                    StatusFile::Live(s) => (Some(*s), None),
                    StatusFile::Stale { pid } => (None, Some(pid)),
                    StatusFile::Missing => (None, None),
                };
            MountStatus {
                mountpoint: m.mountpoint,
                source: m.source,
                options: m.options,
                status,
                dead_pid,
            }
        })
        .collect();
    // Files of killed mounts that are no longer mounted either.
    stale::remove_stale_status_files(&status::runtime_dir());
    match output {
        Output::Json => {
            let v = serde_json::json!({ "mounts": mounts });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Output::Table => print!("{}", status_table(&mounts)),
        Output::Text => {
            if mounts.is_empty() {
                println!("no kmsfs volumes mounted");
            }
            for m in &mounts {
                println!("{} (from {})", m.mountpoint.display(), m.source.display());
                match &m.status {
                    Some(s) => {
                        println!("  cipherdir:   {}", s.cipherdir.display());
                        println!("  volume id:   {}", s.volume_id);
                        println!("  master key:  {}", s.key_id);
                        println!("  pid:         {}", s.pid);
                        println!("  read-only:   {}", s.read_only);
                        println!("  open files:  {}", s.open_files);
                        println!(
                            "  key cache:   {} hits, {} misses, {} entries",
                            s.cache.hits, s.cache.misses, s.cache.entries
                        );
                        println!(
                            "  key limits:  max age {} s, max uses {}",
                            s.cache.max_age_secs,
                            s.cache
                                .max_uses
                                .map_or_else(|| "unlimited".to_string(), |n| n.to_string())
                        );
                        if let Some(wo) = &s.write_only {
                            println!(
                                "  write-only:  new files readable only with Decrypt on {} \
                                 (this mount's slot: {})",
                                wo.key_id,
                                wo.slot.as_deref().unwrap_or("none yet")
                            );
                        }
                        for v in &s.key_versions {
                            println!(
                                "  key version: {} v{}: {} files",
                                v.key_id, v.version, v.files
                            );
                        }
                        if let Some(k) = &s.service {
                            println!(
                                "  key service: {} requests, {} errors, {} retries, {} throttled",
                                k.requests, k.errors, k.retries, k.throttles
                            );
                        }
                        if let Some(w) = &s.wraps {
                            println!(
                                "  new keys:    {} pending, {} wrapped, {} failed (wrapped in \
                                 the background)",
                                w.pending, w.wrapped, w.failed
                            );
                        }
                        if !s.requests.is_empty() {
                            println!("  requests:    count, mean service time");
                            let mut ops: Vec<_> = s.requests.iter().collect();
                            ops.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
                            for (name, op) in ops {
                                let mean = op.total_us as f64 / op.count.max(1) as f64;
                                println!("    {name:<12} {:>10} {mean:>9.1} µs", op.count);
                            }
                        }
                    }
                    None => match m.dead_pid {
                        Some(pid) => println!(
                            "  mount process {pid} is gone: the mount is dead \
                             (kmsfs unmount --lazy {})",
                            m.mountpoint.display()
                        ),
                        None => println!("  (no status file)"),
                    },
                }
            }
        }
    }
    Ok(())
}

/// One row per mount for people: where, from where, its process, open
/// files and key-cache figures; a dead or silent mount says so.
fn status_table(mounts: &[MountStatus]) -> String {
    if mounts.is_empty() {
        return "no kmsfs volumes mounted\n".to_string();
    }
    let rows: Vec<Vec<String>> = mounts
        .iter()
        .map(|m| {
            let mut row = vec![
                m.mountpoint.display().to_string(),
                m.source.display().to_string(),
            ];
            match (&m.status, m.dead_pid) {
                (Some(s), _) => row.extend([
                    s.key_id.clone(),
                    s.pid.to_string(),
                    if s.read_only { "ro" } else { "rw" }.to_string(),
                    s.open_files.to_string(),
                    format!("{}/{}", s.cache.hits, s.cache.misses),
                    s.cache.entries.to_string(),
                    s.service.as_ref().map_or_else(
                        || "-".to_string(),
                        |k| format!("{}/{}", k.requests, k.errors),
                    ),
                ]),
                (None, Some(pid)) => {
                    row.extend(["-".to_string(), format!("{pid} (gone: unmount --lazy)")])
                }
                (None, None) => row.extend(["-".to_string(), "(no status file)".to_string()]),
            }
            row
        })
        .collect();
    crate::table::grid(
        &[
            "Mountpoint",
            "Cipherdir",
            "Master key",
            "Pid",
            "Mode",
            "Open files",
            "Cache hits/misses",
            "Cached keys",
            "Service requests/errors",
        ],
        &rows,
    )
}
