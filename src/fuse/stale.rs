//! Status files whose mount process is gone. A mount process killed with
//! SIGKILL leaves its status file behind (and a dead FUSE mount that reads
//! ENOTCONN until it is unmounted); `kmsfs status` uses [`load_status`] to
//! tell such a file from a live one and removes it.

use super::status::{StatusReport, read_status};
use std::path::Path;

/// What the status file of a mount says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusFile {
    /// Written by a mount process that still runs.
    Live(Box<StatusReport>),
    /// Written by process `pid`, which is gone; the file was removed.
    Stale { pid: u32 },
    /// No readable status file.
    Missing,
}

/// When process `pid` started: field 22 (`starttime`) of `/proc/PID/stat`,
/// in clock ticks after boot; None if there is no such process.
pub fn process_started(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces
    // and ')': the fields after it start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts with field 3 (state): field 22 is the 20th.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that wrote `report` still runs: its pid exists and,
/// when the report records its start time, started then (a pid reused by
/// another process does not count).
pub fn writer_alive(report: &StatusReport) -> bool {
    match (process_started(report.pid), report.started) {
        (None, _) => false,
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
    }
}

/// Reads the status file at `path`; one whose writer is gone is removed
/// and reported as [`StatusFile::Stale`].
pub fn load_status(path: &Path) -> StatusFile {
    let Ok(report) = read_status(path) else {
        return StatusFile::Missing;
    };
    if writer_alive(&report) {
        return StatusFile::Live(Box::new(report));
    }
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        log::warn!("cannot remove stale status file {}: {e}", path.display());
    }
    StatusFile::Stale { pid: report.pid }
}

/// Removes every status file (`*.json`) in `dir` whose writer is gone,
/// also those of mount points no longer mounted; returns how many.
pub fn remove_stale_status_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter(|e| matches!(load_status(&e.path()), StatusFile::Stale { .. }))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuse::status::write_status;

    fn report(pid: u32, started: Option<u64>) -> StatusReport {
        let mut r: StatusReport = serde_json::from_value(serde_json::json!({
            "pid": pid, "mountpoint": "/m", "cipherdir": "/c", "volume_id": "v",
            "key_id": "k", "read_only": false, "open_files": 0, "known_inodes": 1,
            "cache": {"hits": 0, "misses": 0, "entries": 0},
        }))
        .unwrap();
        r.started = started;
        r
    }

    /// A pid that is not running: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[test]
    fn own_start_time_is_read_and_stable() {
        let me = std::process::id();
        let t = process_started(me).unwrap();
        assert_eq!(process_started(me), Some(t));
        assert!(writer_alive(&report(me, Some(t))));
        assert!(writer_alive(&report(me, None)));
        // The same pid with another start time is another process.
        assert!(!writer_alive(&report(me, Some(t + 1))));
        assert!(!writer_alive(&report(dead_pid(), None)));
    }

    #[test]
    fn a_dead_writers_file_is_removed_a_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("run");
        let me = std::process::id();
        let live = run.join("live.json");
        let dead = run.join("dead.json");
        write_status(&live, &report(me, process_started(me))).unwrap();
        write_status(&dead, &report(dead_pid(), Some(1))).unwrap();
        std::fs::write(run.join("dead.log"), b"kept").unwrap();
        assert!(matches!(load_status(&live), StatusFile::Live(_)));
        assert!(matches!(load_status(&dead), StatusFile::Stale { .. }));
        assert!(!dead.exists() && live.exists());
        assert_eq!(load_status(&dead), StatusFile::Missing);

        write_status(&dead, &report(dead_pid(), None)).unwrap();
        assert_eq!(remove_stale_status_files(&run), 1);
        assert!(!dead.exists() && live.exists() && run.join("dead.log").exists());
        assert_eq!(remove_stale_status_files(&d.path().join("absent")), 0);
    }
}
