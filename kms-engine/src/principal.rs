//! The caller of an engine operation: a local identity (uid, gid, groups and,
//! where known, their names).

use crate::identity::Resolver;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Who is calling. Policies name principals as `uid:N`, `user:NAME`,
/// `gid:N` or `group:NAME`; a principal matches any of the forms that
/// describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary group ids (the primary gid need not be repeated).
    pub groups: Vec<u32>,
    pub user_name: Option<String>,
    /// Names of the primary and supplementary groups, where known.
    pub group_names: Vec<String>,
    /// What the resolver could not determine; a policy statement that
    /// could name the principal through it fails closed.
    #[serde(default)]
    pub unresolved: Unresolved,
    /// The client that named this principal in an on-behalf-of request (a
    /// mount asking for one of its FUSE callers), set by the engine
    /// service; `None` for a direct call. Every key this call uses must also
    /// allow the client [`ON_BEHALF_OF_ACTION`], and the audit record names
    /// the client as `invokedBy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<Box<Principal>>,
}

/// The policy action a client needs on a key to run an operation on it for
/// another principal (in the spirit of AWS's `kms:ViaService`). Only key
/// policies can allow it: no grant operation covers it.
pub const ON_BEHALF_OF_ACTION: &str = "kms:CallOnBehalfOf";

/// Parts of a [`Principal`] that could not be determined (all false: fully
/// resolved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unresolved {
    /// The user entry lookup failed: `user:NAME` is undecided.
    pub user_name: bool,
    /// The supplementary groups are unknown: `gid:N` and `group:NAME` are
    /// undecided unless they name the primary group.
    pub groups: bool,
    /// Some group's name lookup failed: `group:NAME` is undecided.
    pub group_names: bool,
}

impl Principal {
    /// A principal with only numeric ids and no names (not looked up;
    /// see [`Resolver::principal`] for a resolved one).
    pub fn from_ids(uid: u32, gid: u32, groups: Vec<u32>) -> Self {
        Principal {
            uid,
            gid,
            groups,
            user_name: None,
            group_names: Vec::new(),
            unresolved: Unresolved::default(),
            invoked_by: None,
        }
    }

    /// The current process: its real uid/gid and supplementary groups,
    /// resolved by [`Resolver::system`].
    pub fn current_process() -> Self {
        let (uid, gid, groups) = current_ids();
        Resolver::system().principal(uid, gid, groups.as_deref())
    }

    /// True when every name and group of the principal was determined.
    pub fn is_resolved(&self) -> bool {
        self.unresolved == Unresolved::default()
    }

    /// Every identifier that names this principal: `uid:N`, `gid:N` for the
    /// primary and each supplementary group, `user:NAME`, `group:NAME`.
    pub fn identifiers(&self) -> Vec<String> {
        let mut ids = vec![format!("uid:{}", self.uid), format!("gid:{}", self.gid)];
        ids.extend(self.groups.iter().map(|g| format!("gid:{g}")));
        if let Some(u) = &self.user_name {
            ids.push(format!("user:{u}"));
        }
        ids.extend(self.group_names.iter().map(|g| format!("group:{g}")));
        ids
    }

    /// True when `id` (one of the forms of [`Principal::identifiers`]) names
    /// this principal.
    pub fn matches(&self, id: &str) -> bool {
        self.identifiers().iter().any(|i| i == id)
    }
}

impl fmt::Display for Principal {
    /// The canonical name used in audit records: `user:NAME` when known,
    /// else `uid:N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user_name {
            Some(u) => write!(f, "user:{u}"),
            None => write!(f, "uid:{}", self.uid),
        }
    }
}

/// This process's real uid and gid and its supplementary groups (`None`
/// when unreadable), from `/proc/self/status` without any unsafe code.
fn current_ids() -> (u32, u32, Option<Vec<u32>>) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    };
    (field("Uid:"), field("Gid:"), status_groups(&status))
}

/// Supplementary groups of process `pid` from `/proc/PID/status`; `None`
/// when the process is gone or the file is unreadable (`hidepid`), and,
/// when `euid` is given, when the process's effective uid is not `euid`
/// (a pid reused by another process since the caller learned it).
pub fn process_groups(pid: u32, euid: Option<u32>) -> Option<Vec<u32>> {
    if pid == 0 {
        return None;
    }
    let status = read_status(pid)?;
    if let Some(want) = euid {
        let effective = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if effective != Some(want) {
            return None;
        }
    }
    status_groups(&status)
}

/// `/proc/PID/status` up to and including its `Groups:` line (the whole
/// file when that line is missing), in as few reads as the kernel allows:
/// one 4 KiB read holds the whole file, where `read_to_string` would stat
/// it and read it in growing pieces (8 system calls instead of 3 on a
/// path taken by every file a mount creates).
fn read_status(pid: u32) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(format!("/proc/{pid}/status")).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !groups_line_complete(&buf) {
        match f.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    String::from_utf8(buf).ok()
}

/// True when `status` holds a whole `Groups:` line (its newline included).
fn groups_line_complete(status: &[u8]) -> bool {
    let at = if status.starts_with(b"Groups:") {
        Some(0)
    } else {
        status.windows(8).position(|w| w == b"\nGroups:")
    };
    at.is_some_and(|i| status[i + 1..].contains(&b'\n'))
}

/// The `Groups:` line of a `/proc/PID/status` text; `None` when absent or
/// malformed.
pub fn status_groups(status: &str) -> Option<Vec<u32>> {
    let rest = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    rest.split_whitespace()
        .map(|g| g.parse::<u32>().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_groups_parse() {
        let st = "Name:\tx\nGroups:\t4 24 27 \nNgid:\t0\n";
        assert_eq!(status_groups(st), Some(vec![4, 24, 27]));
        assert_eq!(status_groups("Groups:\n"), Some(vec![]));
        assert_eq!(status_groups("Name:\tx\n"), None);
        assert_eq!(status_groups("Groups:\t4 x\n"), None);
        assert_eq!(Principal::from_ids(7, 7, vec![]).to_string(), "uid:7");
    }

    #[test]
    fn process_groups_reads_the_groups_line() {
        let (_, _, mine) = current_ids();
        assert_eq!(process_groups(std::process::id(), None), mine);
        assert!(groups_line_complete(b"Name:\tx\nGroups:\t4 \nNgid:"));
        assert!(groups_line_complete(b"Groups:\t\n"));
        assert!(!groups_line_complete(b"Name:\tx\nGroups:\t4 2"));
        assert!(!groups_line_complete(b"Name:\tx\n"));
    }

    #[test]
    fn current_process_has_its_own_groups() {
        let me = Principal::current_process();
        let (uid, gid, groups) = current_ids();
        assert_eq!((me.uid, me.gid), (uid, gid));
        let mut want = groups.unwrap();
        want.retain(|g| *g != gid);
        want.sort_unstable();
        want.dedup();
        assert_eq!(me.groups, want);
        assert!(!me.unresolved.groups);
    }
}
