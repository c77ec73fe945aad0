//! The status file a mount process keeps under its runtime directory, read
//! by `kmsfs status`.

use crate::keys::ServiceStats;
use crate::keys::cache::CacheStats;
use kms_engine::safe_fs::Dir;
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// What a running mount reports about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusReport {
    pub pid: u32,
    /// When the mount process started (clock ticks after boot, field 22 of
    /// `/proc/PID/stat`), so that a reused pid is not taken for it.
    #[serde(default)]
    pub started: Option<u64>,
    pub mountpoint: PathBuf,
    pub cipherdir: PathBuf,
    pub volume_id: String,
    pub key_id: String,
    pub read_only: bool,
    pub open_files: u64,
    pub known_inodes: u64,
    pub cache: CacheStats,
    /// Calls to a remote key service (AWS KMS or compatible); absent for
    /// an engine that keeps no such counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceStats>,
    /// New files' data keys wrapped in the background (absent when the
    /// mount wraps them in `create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wraps: Option<crate::keys::wrap::WrapStats>,
    /// Write requests served so far (shows whether the kernel sends large writes).
    #[serde(default)]
    pub writes: WriteStats,
    /// FUSE requests served so far, by operation (only those seen).
    #[serde(default)]
    pub requests: std::collections::BTreeMap<String, OpStat>,
    /// Files by the key and version their data key is wrapped under,
    /// counted from the headers at mount and every 10 minutes (empty before
    /// the first count, and when the key service's blobs name no version):
    /// files under a version below the key's newest need `kmsfs rewrap`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_versions: Vec<crate::rewrap::VersionFiles>,
    /// A write-only volume: the RSA key new files' keys are wrapped for
    /// and this mount's slot (once it made one, at its first new file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_only: Option<WriteOnlyStatus>,
}

/// The write-only part of a status report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WriteOnlyStatus {
    /// The volume's RSA key (its ARN).
    pub key_id: String,
    /// This mount's slot file name in `kmsfs.writers/`, once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
}

/// Count and total service time of one kind of FUSE request.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpStat {
    /// Requests served.
    pub count: u64,
    /// Time spent serving them in the mount process, in microseconds.
    pub total_us: u64,
}

/// Every FUSE operation kmsfs serves, for [`OpCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lookup,
    Forget,
    Getattr,
    Setattr,
    Readlink,
    Mknod,
    Mkdir,
    Unlink,
    Rmdir,
    Symlink,
    Rename,
    Link,
    Open,
    Read,
    Write,
    Flush,
    Release,
    Fsync,
    Opendir,
    Readdir,
    Readdirplus,
    Releasedir,
    Fsyncdir,
    Statfs,
    Setxattr,
    Getxattr,
    Listxattr,
    Removexattr,
    Access,
    Create,
    Fallocate,
    CopyFileRange,
    Lseek,
}

impl Op {
    /// Every operation, in the order of the enum.
    pub const ALL: [Op; 33] = [
        Op::Lookup,
        Op::Forget,
        Op::Getattr,
        Op::Setattr,
        Op::Readlink,
        Op::Mknod,
        Op::Mkdir,
        Op::Unlink,
        Op::Rmdir,
        Op::Symlink,
        Op::Rename,
        Op::Link,
        Op::Open,
        Op::Read,
        Op::Write,
        Op::Flush,
        Op::Release,
        Op::Fsync,
        Op::Opendir,
        Op::Readdir,
        Op::Readdirplus,
        Op::Releasedir,
        Op::Fsyncdir,
        Op::Statfs,
        Op::Setxattr,
        Op::Getxattr,
        Op::Listxattr,
        Op::Removexattr,
        Op::Access,
        Op::Create,
        Op::Fallocate,
        Op::CopyFileRange,
        Op::Lseek,
    ];

    /// The FUSE name of the operation, lower case.
    pub fn name(self) -> &'static str {
        match self {
            Op::Lookup => "lookup",
            Op::Forget => "forget",
            Op::Getattr => "getattr",
            Op::Setattr => "setattr",
            Op::Readlink => "readlink",
            Op::Mknod => "mknod",
            Op::Mkdir => "mkdir",
            Op::Unlink => "unlink",
            Op::Rmdir => "rmdir",
            Op::Symlink => "symlink",
            Op::Rename => "rename",
            Op::Link => "link",
            Op::Open => "open",
            Op::Read => "read",
            Op::Write => "write",
            Op::Flush => "flush",
            Op::Release => "release",
            Op::Fsync => "fsync",
            Op::Opendir => "opendir",
            Op::Readdir => "readdir",
            Op::Readdirplus => "readdirplus",
            Op::Releasedir => "releasedir",
            Op::Fsyncdir => "fsyncdir",
            Op::Statfs => "statfs",
            Op::Setxattr => "setxattr",
            Op::Getxattr => "getxattr",
            Op::Listxattr => "listxattr",
            Op::Removexattr => "removexattr",
            Op::Access => "access",
            Op::Create => "create",
            Op::Fallocate => "fallocate",
            Op::CopyFileRange => "copy_file_range",
            Op::Lseek => "lseek",
        }
    }
}

const N_OPS: usize = Op::ALL.len();

/// Lock-free per-operation request counters and service times.
#[derive(Debug)]
pub struct OpCounters {
    count: [std::sync::atomic::AtomicU64; N_OPS],
    nanos: [std::sync::atomic::AtomicU64; N_OPS],
}

impl Default for OpCounters {
    fn default() -> Self {
        OpCounters {
            count: std::array::from_fn(|_| std::sync::atomic::AtomicU64::new(0)),
            nanos: std::array::from_fn(|_| std::sync::atomic::AtomicU64::new(0)),
        }
    }
}

/// Times one request of its operation: the request is counted when it
/// starts (so a caller that has seen the reply also sees it counted, however
/// late the serving thread runs again after replying), its time when dropped.
#[must_use]
#[derive(Debug)]
pub struct OpTimer<'a> {
    counters: &'a OpCounters,
    op: Op,
    start: std::time::Instant,
}

impl Drop for OpTimer<'_> {
    fn drop(&mut self) {
        let ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters.nanos[self.op as usize].fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
    }
}

impl OpCounters {
    /// Starts timing one request of `op`.
    pub fn start(&self, op: Op) -> OpTimer<'_> {
        self.count[op as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpTimer {
            counters: self,
            op,
            start: std::time::Instant::now(),
        }
    }

    /// Counts one request of `op` that took `nanos` (tests: requests are
    /// counted by [`OpCounters::start`]).
    #[cfg(test)]
    pub fn record(&self, op: Op, nanos: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.count[op as usize].fetch_add(1, Relaxed);
        self.nanos[op as usize].fetch_add(nanos, Relaxed);
    }

    /// The operations seen so far, by name.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, OpStat> {
        use std::sync::atomic::Ordering::Relaxed;
        Op::ALL
            .iter()
            .filter_map(|&op| {
                let count = self.count[op as usize].load(Relaxed);
                (count > 0).then(|| {
                    let total_us = self.nanos[op as usize].load(Relaxed) / 1000;
                    (op.name().to_string(), OpStat { count, total_us })
                })
            })
            .collect()
    }
}

/// Counters of the FUSE write requests a mount served.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WriteStats {
    /// Number of write requests.
    pub requests: u64,
    /// Bytes written through them.
    pub bytes: u64,
    /// The largest single request, in bytes.
    pub largest: u64,
    /// Requests of at least 1 MiB (the configured maximum).
    pub full_size: u64,
}

/// Lock-free [`WriteStats`] updated on every write.
#[derive(Debug, Default)]
pub struct WriteCounters {
    requests: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
    largest: std::sync::atomic::AtomicU64,
    full_size: std::sync::atomic::AtomicU64,
}

impl WriteCounters {
    /// Counts one write request of `len` bytes.
    pub fn record(&self, len: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let len = len as u64;
        self.requests.fetch_add(1, Relaxed);
        self.bytes.fetch_add(len, Relaxed);
        self.largest.fetch_max(len, Relaxed);
        if len >= u64::from(super::MAX_WRITE) {
            self.full_size.fetch_add(1, Relaxed);
        }
    }

    pub fn snapshot(&self) -> WriteStats {
        use std::sync::atomic::Ordering::Relaxed;
        WriteStats {
            requests: self.requests.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            largest: self.largest.load(Relaxed),
            full_size: self.full_size.load(Relaxed),
        }
    }
}

/// Where status files live: `$KMSFS_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/kmsfs`, else `/run/kmsfs/mounts` for root and
/// `/tmp/kmsfs-<uid>` for others. Root's is a subdirectory because it is
/// made private (0700) at every open, and `/run/kmsfs` holds the engine
/// daemon's socket, which other users must reach.
pub fn runtime_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KMSFS_RUNTIME_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        return PathBuf::from(d).join("kmsfs");
    }
    let uid = rustix::process::getuid().as_raw();
    if uid == 0 {
        PathBuf::from("/run/kmsfs/mounts")
    } else {
        PathBuf::from(format!("/tmp/kmsfs-{uid}"))
    }
}

/// The status file for a mount point (named by a hash of its path).
pub fn status_file_for(mountpoint: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let h = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        mountpoint.as_os_str().as_bytes(),
    );
    let name: String = h.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    runtime_dir().join(format!("{name}.json"))
}

/// Opens the runtime directory holding `path` (creating it 0700): the
/// fallback `/tmp/kmsfs-<uid>` has a predictable name, and a directory
/// planted there by another user would let them redirect our writes, so
/// it must be owned by this user ([`Dir::open_private`]). Returns it with
/// `path`'s file name.
pub fn open_runtime_dir(path: &Path) -> std::io::Result<(Dir, &OsStr)> {
    let (dir, name) = kms_engine::safe_fs::split(path)?;
    Ok((Dir::open_private(dir, true)?, name))
}

/// Writes `report` atomically (random temp name created exclusively, mode
/// 0600, rename) into its private runtime directory; a symlink planted at
/// any name there is never followed.
pub fn write_status(path: &Path, report: &StatusReport) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    let (dir, name) = open_runtime_dir(path)?;
    dir.write_atomic(name, &json, 0o600)
}

/// Reads a status file.
pub fn read_status(path: &Path) -> std::io::Result<StatusReport> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}

/// A kmsfs entry of /proc/mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount's source: the cipher directory.
    pub source: PathBuf,
    pub mountpoint: PathBuf,
    pub options: String,
}

/// The kmsfs mounts listed in a /proc/mounts style text ("source target
/// fstype options ..."): those of type [`MOUNT_TYPE`](super::mount::MOUNT_TYPE),
/// whatever their source.
pub fn kmsfs_mounts(proc_mounts: &str) -> Vec<MountEntry> {
    proc_mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() < 4 || f[2] != super::mount::MOUNT_TYPE {
                return None;
            }
            Some(MountEntry {
                source: PathBuf::from(unescape_mount_field(f[0])),
                mountpoint: PathBuf::from(unescape_mount_field(f[1])),
                options: f[3].to_string(),
            })
        })
        .collect()
}

/// /proc/mounts escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_field(s: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        if let Some(v) = octal {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    std::ffi::OsString::from_vec(out)
}

/// True when `mountpoint` is currently a kmsfs mount.
pub fn is_mounted(mountpoint: &Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    kmsfs_mounts(&text)
        .iter()
        .any(|m| m.mountpoint == mountpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn report() -> StatusReport {
        StatusReport {
            pid: 1,
            started: Some(7),
            mountpoint: PathBuf::from("/mnt/m"),
            cipherdir: PathBuf::from("/c"),
            volume_id: "v".into(),
            key_id: "k".into(),
            read_only: false,
            open_files: 2,
            known_inodes: 3,
            cache: CacheStats::default(),
            service: Some(ServiceStats {
                requests: 5,
                errors: 1,
                retries: 2,
                throttles: 1,
            }),
            wraps: None,
            write_only: None,
            writes: WriteStats::default(),
            requests: [(
                "lookup".to_string(),
                OpStat {
                    count: 4,
                    total_us: 9,
                },
            )]
            .into_iter()
            .collect(),
            key_versions: vec![crate::rewrap::VersionFiles {
                key_id: "k".into(),
                version: 2,
                files: 3,
            }],
        }
    }

    #[test]
    fn op_counters_count_and_time_by_operation() {
        let c = OpCounters::default();
        assert!(c.snapshot().is_empty());
        c.record(Op::Unlink, 1_500);
        c.record(Op::Unlink, 2_500);
        let in_flight = c.start(Op::Getattr);
        // Counted while still being served: a caller that saw the reply
        // never reads a count without it.
        assert_eq!(c.snapshot()["getattr"].count, 1);
        drop(in_flight);
        let s = c.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s["unlink"],
            OpStat {
                count: 2,
                total_us: 4
            }
        );
        assert_eq!(s["getattr"].count, 1);
        // Every operation has its own slot and a distinct name.
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i);
        }
        let names: std::collections::BTreeSet<_> = Op::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(names.len(), Op::ALL.len());
    }

    #[test]
    fn status_without_request_counters_still_reads() {
        // A status file from a mount started before the counters existed.
        let mut v = serde_json::to_value(report()).unwrap();
        v.as_object_mut().unwrap().remove("requests");
        let r: StatusReport = serde_json::from_value(v).unwrap();
        assert!(r.requests.is_empty());
    }

    #[test]
    fn status_round_trip_in_a_private_dir() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run/kmsfs/abc.json");
        write_status(&p, &report()).unwrap();
        assert_eq!(read_status(&p).unwrap(), report());
        let mode = std::fs::metadata(p.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        // A stale temp file left by a killed writer does not stop the next write.
        std::fs::write(p.with_extension("json.tmp"), b"stale").unwrap();
        write_status(&p, &report()).unwrap();
    }

    /// Another user may pre-create the predictable `/tmp/kmsfs-<uid>`:
    /// a foreign directory or a symlink is refused, a loose mode of our own
    /// directory is put back to 0700, and a symlink planted at the old temp
    /// name or at the final name is never followed.
    #[test]
    fn fail_status_dir_not_private_or_symlink_planted() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();

        let foreign = d.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::os::unix::fs::chown(&foreign, Some(4242), None).unwrap();
        let err = write_status(&foreign.join("abc.json"), &report()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(!foreign.join("abc.json").exists());

        let shared = d.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&shared, &link).unwrap();
        let err = write_status(&link.join("abc.json"), &report()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        std::os::unix::fs::symlink(&victim, shared.join("abc.json.tmp")).unwrap();
        std::os::unix::fs::symlink(&victim, shared.join("abc.json")).unwrap();
        write_status(&shared.join("abc.json"), &report()).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(read_status(&shared.join("abc.json")).unwrap(), report());
        let m = std::fs::metadata(&shared).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o700);
        let m = std::fs::symlink_metadata(shared.join("abc.json")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn parses_proc_mounts() {
        let text = "proc /proc proc rw 0 0\n\
                    /srv/c\\040one /mnt/my\\040dir fuse.kmsfs rw,nosuid,nodev,user_id=0 0 0\n\
                    kmsfs /mnt/other fuse rw 0 0\n\
                    gocryptfs /mnt/g fuse.gocryptfs rw 0 0\n";
        let m = kmsfs_mounts(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mountpoint, PathBuf::from("/mnt/my dir"));
        assert_eq!(m[0].source, PathBuf::from("/srv/c one"));
    }

    #[test]
    fn unescape_never_overflows() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(unescape_mount_field("a\\134b").as_bytes(), b"a\\b");
        assert_eq!(unescape_mount_field("\\377").as_bytes(), [0xff]);
        // Out of byte range or cut short: kept as they are.
        assert_eq!(unescape_mount_field("\\777").as_bytes(), b"\\777");
        assert_eq!(unescape_mount_field("x\\04").as_bytes(), b"x\\04");
        assert_eq!(unescape_mount_field("\\040").as_bytes(), b" ");
    }
}
