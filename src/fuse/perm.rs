//! POSIX permission checks that kmsfs does itself.
//!
//! Who checks what depends on the mount:
//!
//! * `--allow-other` mounts keep the kernel's `default_permissions`: the
//!   kernel checks every access against the attributes kmsfs reports, for
//!   every user, also on cached path lookups that never reach kmsfs.
//! * Other mounts (the default) admit one identity only: the kernel lets a
//!   process in only when all its uids and gids equal the mount owner's,
//!   which are the uid and gid of the mount process. Without
//!   `default_permissions` the kernel skips the per-entry permission checks
//!   (and the parent-directory GETATTR each create and unlink would cost);
//!   kmsfs's backing-file system calls then run as that same uid and the
//!   backing filesystem applies the same rules (ownership for chmod, chown
//!   and explicit times, sticky directories, write and search permission
//!   on parents). What the backing filesystem cannot see is checked here:
//!   `access(2)` (FUSE ACCESS), and the access mode of OPEN, including exec
//!   (the kernel alone only asks that *some* execute bit is set).
//! * `--allow-other` mounts with POSIX ACLs (see `acl`; FUSE_POSIX_ACL):
//!   the kernel's check, which reads the ACLs kmsfs stores, decides alone;
//!   kmsfs skips its own OPEN check, which knows only the mode.
//!
//! [`may_access`] is the check of POSIX.1 "file access permissions": the
//! owner class if the caller owns the file, else the group class if the
//! file's group is the caller's group or one of its supplementary groups,
//! else the other class; uid 0 may do everything except execute a
//! non-directory that has no execute bit at all. Supplementary groups are
//! read from `/proc/<pid>/status` only when the owner and primary-group
//! tests do not decide; when they cannot be determined at all, only the
//! rights both the group and the other class grant are given.

use super::errno::{FsError, FsResult};
use kms_engine::{Principal, Resolver};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Read permission (as in `access(2)`'s `R_OK`).
pub const MAY_READ: u32 = 4;
/// Write permission (`W_OK`).
pub const MAY_WRITE: u32 = 2;
/// Execute or search permission (`X_OK`).
pub const MAY_EXEC: u32 = 1;

/// The identity of the process behind one FUSE request.
#[derive(Debug)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pid: u32,
    principal: OnceCell<Principal>,
    groups_cache: Option<Arc<GroupsCache>>,
}

/// Supplementary groups read from `/proc/<pid>/status`, kept per (pid,
/// uid, gid) for a short time: `tar -x` makes thousands of files from one
/// process, and each new file's GenerateDataKey needs the caller's groups
/// (reading them is a third of the mount's work on a small file's create).
/// An entry is used for at most `ttl` (at most 1 s and never longer than
/// the key cache's re-authorization interval, so `--reauth-secs 0` keeps
/// reading them per request); unreadable groups are not kept.
#[derive(Debug)]
pub struct GroupsCache {
    ttl: Duration,
    map: Mutex<HashMap<GroupsKey, (Instant, Vec<u32>)>>,
}

/// (pid, uid, gid) of a caller.
type GroupsKey = (u32, u32, u32);

/// Entries a [`GroupsCache`] holds before it drops the expired ones (and,
/// when all are fresh, all of them).
const GROUPS_CACHE_MAX: usize = 256;

impl GroupsCache {
    /// A cache keeping groups for `min(1 s, reauth_interval)`.
    pub fn new(reauth_interval: Duration) -> Self {
        GroupsCache {
            ttl: reauth_interval.min(Duration::from_secs(1)),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The supplementary groups of process `pid` acting as `uid`/`gid`.
    pub fn groups(&self, pid: u32, uid: u32, gid: u32) -> Option<Vec<u32>> {
        if self.ttl.is_zero() || pid == 0 {
            return proc_groups(pid);
        }
        let key = (pid, uid, gid);
        let now = Instant::now();
        if let Ok(map) = self.map.lock()
            && let Some((at, g)) = map.get(&key)
            && now.duration_since(*at) < self.ttl
        {
            return Some(g.clone());
        }
        let groups = proc_groups(pid)?;
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= GROUPS_CACHE_MAX {
                let ttl = self.ttl;
                map.retain(|_, (at, _)| now.duration_since(*at) < ttl);
                if map.len() >= GROUPS_CACHE_MAX {
                    map.clear();
                }
            }
            map.insert(key, (now, groups.clone()));
        }
        Some(groups)
    }
}

impl Caller {
    pub fn new(uid: u32, gid: u32, pid: u32) -> Self {
        Caller {
            uid,
            gid,
            pid,
            principal: OnceCell::new(),
            groups_cache: None,
        }
    }

    /// The caller of `req`, its groups taken from `cache`.
    pub fn cached(req: &fuser::Request, cache: &Arc<GroupsCache>) -> Self {
        Caller {
            groups_cache: Some(cache.clone()),
            ..Caller::from_request(req)
        }
    }

    /// A caller whose supplementary groups are known (tests).
    pub fn with_groups(uid: u32, gid: u32, groups: Vec<u32>) -> Self {
        let c = Caller::new(uid, gid, 0);
        let _ = c
            .principal
            .set(Resolver::system().principal(uid, gid, Some(&groups)));
        c
    }

    pub fn from_request(req: &fuser::Request) -> Self {
        Caller::new(req.uid(), req.gid(), req.pid())
    }

    /// Whether `gid` is the caller's primary or a supplementary group;
    /// `None` when its groups could not be determined.
    pub fn in_group(&self, gid: u32) -> Option<bool> {
        if gid == self.gid {
            return Some(true);
        }
        let p = self.principal();
        if p.groups.contains(&gid) {
            Some(true)
        } else if p.unresolved.groups {
            None
        } else {
            Some(false)
        }
    }

    /// The caller as an engine principal, resolved once per caller by the
    /// one identity resolver (names, and groups from `/proc/<pid>/status`
    /// or, when that is unreadable, from the account database), shared
    /// with the permission checks.
    pub fn principal(&self) -> &Principal {
        self.principal.get_or_init(|| {
            let groups = match &self.groups_cache {
                Some(c) => c.groups(self.pid, self.uid, self.gid),
                None => proc_groups(self.pid),
            };
            Resolver::system().principal(self.uid, self.gid, groups.as_deref())
        })
    }

    /// True once the principal (and with it the groups) was resolved
    /// (tests).
    pub fn groups_read(&self) -> bool {
        self.principal.get().is_some()
    }
}

/// Supplementary groups of `pid` from `/proc/<pid>/status`; `None` when
/// the process is gone or the file unreadable (`hidepid`).
fn proc_groups(pid: u32) -> Option<Vec<u32>> {
    kms_engine::principal::process_groups(pid, None)
}

/// True when `caller` may access a file of type and mode `st_mode`, owner
/// `uid` and group `gid` for every right in `mask` ([`MAY_READ`],
/// [`MAY_WRITE`], [`MAY_EXEC`]; 0 only asks for existence).
pub fn may_access(caller: &Caller, st_mode: u32, uid: u32, gid: u32, mask: u32) -> bool {
    let mask = mask & 7;
    if caller.uid == 0 {
        let is_dir = st_mode & libc::S_IFMT == libc::S_IFDIR;
        return mask & MAY_EXEC == 0 || is_dir || st_mode & 0o111 != 0;
    }
    let bits = if caller.uid == uid {
        st_mode >> 6
    } else {
        match caller.in_group(gid) {
            Some(true) => st_mode >> 3,
            Some(false) => st_mode,
            // Unknown groups: only what both classes grant (fail closed).
            None => (st_mode >> 3) & st_mode,
        }
    } & 7;
    bits & mask == mask
}

/// The rights an OPEN with `flags` asks for: read and/or write by access
/// mode; execute instead of read when the kernel opens the file for
/// `execve` (`__FMODE_EXEC` in the flags).
pub fn open_mask(flags: i32) -> u32 {
    /// The kernel's `__FMODE_EXEC`, set in the open flags of an exec.
    const FMODE_EXEC: i32 = 0x20;
    if flags & FMODE_EXEC != 0 {
        return MAY_EXEC;
    }
    match flags & libc::O_ACCMODE {
        libc::O_WRONLY => MAY_WRITE,
        libc::O_RDWR => MAY_READ | MAY_WRITE,
        _ => MAY_READ,
    }
}

impl super::Core {
    /// FUSE ACCESS (`access(2)`, `chdir`): `mask` of `R_OK`, `W_OK`, `X_OK`
    /// (0 for `F_OK`) against the node's current attributes.
    pub(crate) fn access(&self, req: &fuser::Request, ino: u64, mask: u32) -> FsResult<()> {
        let caller = self.caller(req);
        if mask & 7 == 0 {
            // F_OK: the node exists if getattr finds it.
            return self.getattr(ino).map(|_| ());
        }
        let node = self.node(ino)?;
        let meta = std::fs::symlink_metadata(&node.backing)?;
        if may_access(&caller, meta.mode(), meta.uid(), meta.gid(), mask) {
            Ok(())
        } else {
            Err(FsError::Denied)
        }
    }

    /// The access mode of an OPEN with `flags` against the opened backing
    /// `file` (its own attributes, so no rename can slip in between).
    pub(crate) fn check_open(
        &self,
        caller: &Caller,
        file: &std::fs::File,
        flags: i32,
    ) -> FsResult<()> {
        let mask = open_mask(flags);
        if caller.uid == 0 && mask & MAY_EXEC == 0 {
            return Ok(());
        }
        let meta = file.metadata()?;
        if may_access(caller, meta.mode(), meta.uid(), meta.gid(), mask) {
            Ok(())
        } else {
            Err(FsError::Denied)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REG: u32 = libc::S_IFREG;
    const DIR: u32 = libc::S_IFDIR;

    /// (case, caller uid, gid, supplementary groups, st_mode, file uid,
    /// file gid, mask, allowed)
    #[allow(clippy::type_complexity)]
    const CASES: &[(&str, u32, u32, &[u32], u32, u32, u32, u32, bool)] = &[
        (
            "owner reads 0600",
            1000,
            100,
            &[],
            REG | 0o600,
            1000,
            5,
            MAY_READ,
            true,
        ),
        (
            "owner writes 0400",
            1000,
            100,
            &[],
            REG | 0o400,
            1000,
            5,
            MAY_WRITE,
            false,
        ),
        (
            "owner rw 0600",
            1000,
            100,
            &[],
            REG | 0o600,
            1000,
            5,
            MAY_READ | MAY_WRITE,
            true,
        ),
        (
            "owner rw 0400",
            1000,
            100,
            &[],
            REG | 0o400,
            1000,
            5,
            MAY_READ | MAY_WRITE,
            false,
        ),
        // The owner class decides even when group/other would allow.
        (
            "owner 0077 denied",
            1000,
            5,
            &[],
            REG | 0o077,
            1000,
            5,
            MAY_READ,
            false,
        ),
        (
            "owner exec 0655",
            1000,
            100,
            &[],
            REG | 0o655,
            1000,
            5,
            MAY_EXEC,
            false,
        ),
        (
            "owner exec 0755",
            1000,
            100,
            &[],
            REG | 0o755,
            1000,
            5,
            MAY_EXEC,
            true,
        ),
        (
            "group reads 0640",
            1001,
            5,
            &[],
            REG | 0o640,
            1000,
            5,
            MAY_READ,
            true,
        ),
        (
            "group writes 0640",
            1001,
            5,
            &[],
            REG | 0o640,
            1000,
            5,
            MAY_WRITE,
            false,
        ),
        // The group class decides even when other would allow.
        (
            "group 0607 denied",
            1001,
            5,
            &[],
            REG | 0o607,
            1000,
            5,
            MAY_READ,
            false,
        ),
        (
            "supplementary group",
            1001,
            100,
            &[7, 5],
            REG | 0o060,
            1000,
            5,
            MAY_WRITE,
            true,
        ),
        (
            "suppl. group 0604 denied",
            1001,
            100,
            &[5],
            REG | 0o604,
            1000,
            5,
            MAY_READ,
            false,
        ),
        (
            "other reads 0604",
            1001,
            100,
            &[7],
            REG | 0o604,
            1000,
            5,
            MAY_READ,
            true,
        ),
        (
            "other reads 0640",
            1001,
            100,
            &[7],
            REG | 0o640,
            1000,
            5,
            MAY_READ,
            false,
        ),
        (
            "other search 0711 dir",
            1001,
            100,
            &[],
            DIR | 0o711,
            1000,
            5,
            MAY_EXEC,
            true,
        ),
        (
            "other list 0711 dir",
            1001,
            100,
            &[],
            DIR | 0o711,
            1000,
            5,
            MAY_READ,
            false,
        ),
        (
            "other w+x 0777 dir",
            1001,
            100,
            &[],
            DIR | 0o777,
            1000,
            5,
            MAY_WRITE | MAY_EXEC,
            true,
        ),
        (
            "other w+x 0775 dir",
            1001,
            100,
            &[],
            DIR | 0o775,
            1000,
            5,
            MAY_WRITE | MAY_EXEC,
            false,
        ),
        ("existence only", 1001, 100, &[], REG, 1000, 5, 0, true),
        (
            "root reads 0000",
            0,
            0,
            &[],
            REG,
            1000,
            5,
            MAY_READ | MAY_WRITE,
            true,
        ),
        (
            "root searches 0000 dir",
            0,
            0,
            &[],
            DIR,
            1000,
            5,
            MAY_EXEC,
            true,
        ),
        (
            "root exec 0644",
            0,
            0,
            &[],
            REG | 0o644,
            0,
            0,
            MAY_EXEC,
            false,
        ),
        (
            "root exec 0010",
            0,
            0,
            &[],
            REG | 0o010,
            1000,
            5,
            MAY_EXEC,
            true,
        ),
        (
            "root exec 0001",
            0,
            0,
            &[],
            REG | 0o001,
            1000,
            5,
            MAY_EXEC,
            true,
        ),
        (
            "root exec fifo 0600",
            0,
            0,
            &[],
            libc::S_IFIFO | 0o600,
            0,
            0,
            MAY_EXEC,
            false,
        ),
        // Mode bits above 0o777 grant nothing.
        (
            "setuid is not exec",
            1000,
            100,
            &[],
            REG | 0o4600,
            1000,
            5,
            MAY_EXEC,
            false,
        ),
        (
            "sticky is not x",
            1001,
            100,
            &[],
            DIR | 0o1776,
            1000,
            5,
            MAY_EXEC,
            false,
        ),
    ];

    #[test]
    fn may_access_table() {
        for &(case, uid, gid, groups, mode, fuid, fgid, mask, want) in CASES {
            let c = Caller::with_groups(uid, gid, groups.to_vec());
            assert_eq!(may_access(&c, mode, fuid, fgid, mask), want, "{case}");
        }
    }

    #[test]
    fn groups_are_read_only_when_needed() {
        let me = std::process::id();
        // Owner, primary group and root decide without /proc.
        for (uid, gid, fuid, fgid) in [(1000, 100, 1000, 5), (1001, 5, 1000, 5), (0, 0, 7, 7)] {
            let c = Caller::new(uid, gid, me);
            let _ = may_access(&c, REG | 0o640, fuid, fgid, MAY_READ);
            assert!(!c.groups_read(), "{uid}/{gid}");
        }
        // Neither owner nor primary group: the groups are read, once.
        let c = Caller::new(1001, 100, me);
        let _ = may_access(&c, REG | 0o640, 1000, 5, MAY_READ);
        assert!(c.groups_read());
    }

    #[test]
    fn principal_carries_the_groups_read_for_the_checks_without_the_primary_one() {
        let c = Caller::with_groups(1000, 100, vec![100, 7, 5]);
        let p = c.principal();
        assert_eq!((p.uid, p.gid, p.groups.clone()), (1000, 100, vec![5, 7]));
    }

    #[test]
    fn proc_groups_of_this_process_and_of_none() {
        let own = proc_groups(std::process::id()).unwrap();
        let want: Vec<u32> = rustix::process::getgroups()
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        assert_eq!(own, want);
        // A pid that cannot exist, or none at all: groups unreadable.
        assert_eq!(proc_groups(u32::MAX), None);
        assert_eq!(proc_groups(0), None);
    }

    #[test]
    fn groups_cache_keeps_groups_per_process_and_ids_for_its_interval_only() {
        let me = std::process::id();
        let real = proc_groups(me).unwrap();
        let c = GroupsCache::new(Duration::from_secs(5));
        assert_eq!(c.ttl, Duration::from_secs(1), "at most 1 s");
        assert_eq!(c.groups(me, 1000, 100), Some(real.clone()));
        // A fresh entry is what the caller gets (a marker stands in for
        // groups changed since they were read) ...
        let key = (me, 1000, 100);
        c.map
            .lock()
            .unwrap()
            .insert(key, (Instant::now(), vec![4242]));
        let caller = Caller {
            groups_cache: Some(Arc::new(GroupsCache {
                ttl: c.ttl,
                map: Mutex::new(c.map.lock().unwrap().clone()),
            })),
            ..Caller::new(1000, 100, me)
        };
        assert_eq!(caller.principal().groups, vec![4242]);
        // ... for those ids only ...
        assert_eq!(c.groups(me, 1001, 100), Some(real.clone()));
        assert_eq!(c.groups(me, 1000, 101), Some(real.clone()));
        // ... and never after its interval: then /proc is read again.
        let old = Instant::now().checked_sub(Duration::from_secs(2)).unwrap();
        c.map.lock().unwrap().insert(key, (old, vec![4242]));
        assert_eq!(c.groups(me, 1000, 100), Some(real.clone()));
        // Unreadable groups are not kept.
        assert_eq!(c.groups(u32::MAX, 1000, 100), None);
        assert!(!c.map.lock().unwrap().contains_key(&(u32::MAX, 1000, 100)));
        // --reauth-secs 0: nothing kept, /proc read for every caller.
        let none = GroupsCache::new(Duration::ZERO);
        assert_eq!(none.groups(me, 1000, 100), Some(real));
        assert!(none.map.lock().unwrap().is_empty());
        // Bounded: a full cache drops its entries.
        for pid in 0..(GROUPS_CACHE_MAX as u32 + 10) {
            c.map
                .lock()
                .unwrap()
                .insert((pid + 1_000_000, 0, 0), (Instant::now(), vec![]));
        }
        let _ = c.groups(me, 0, 0);
        assert!(c.map.lock().unwrap().len() <= GROUPS_CACHE_MAX);
    }

    #[test]
    fn unknown_groups_grant_only_what_group_and_other_both_allow() {
        // A uid with no user entry and an unreadable /proc: groups unknown.
        let c = Caller::new(4_000_000_001, 4_000_000_001, u32::MAX);
        assert_eq!(c.in_group(5), None);
        assert_eq!(c.in_group(4_000_000_001), Some(true));
        assert!(!may_access(&c, REG | 0o060, 1000, 5, MAY_READ));
        assert!(!may_access(&c, REG | 0o604, 1000, 5, MAY_READ));
        assert!(may_access(&c, REG | 0o644, 1000, 5, MAY_READ));
        assert!(!may_access(&c, REG | 0o646, 1000, 5, MAY_WRITE));
    }

    #[test]
    fn open_mask_by_flags() {
        assert_eq!(open_mask(libc::O_RDONLY), MAY_READ);
        assert_eq!(open_mask(libc::O_WRONLY | libc::O_APPEND), MAY_WRITE);
        assert_eq!(
            open_mask(libc::O_RDWR | libc::O_CREAT),
            MAY_READ | MAY_WRITE
        );
        assert_eq!(open_mask(libc::O_RDONLY | 0x20), MAY_EXEC);
        assert_eq!(
            open_mask(libc::O_RDONLY | libc::O_LARGEFILE | 0x20),
            MAY_EXEC
        );
    }
}
