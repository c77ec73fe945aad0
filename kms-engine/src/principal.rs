//! The caller of an engine operation: a local identity (uid, gid, groups and,
//! where known, their names).

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
}

impl Principal {
    /// A principal with only numeric ids.
    pub fn from_ids(uid: u32, gid: u32, groups: Vec<u32>) -> Self {
        Principal {
            uid,
            gid,
            groups,
            user_name: None,
            group_names: Vec::new(),
        }
    }

    /// A principal for a uid/gid, with user and group names and supplementary
    /// groups looked up in `/etc/passwd` and `/etc/group` (best effort: a
    /// missing entry leaves the name unset).
    pub fn resolve(uid: u32, gid: u32) -> Self {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        Self::resolve_from(uid, gid, &passwd, &group)
    }

    /// [`Principal::resolve`] against given passwd/group file contents.
    pub fn resolve_from(uid: u32, gid: u32, passwd: &str, group: &str) -> Self {
        let user_name = passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
        });
        let mut groups = Vec::new();
        let mut group_names = Vec::new();
        for l in group.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                continue;
            }
            let Ok(g) = f[2].parse::<u32>() else { continue };
            let member = user_name
                .as_deref()
                .is_some_and(|u| f[3].split(',').any(|m| m == u));
            if g == gid || member {
                group_names.push(f[0].to_string());
                if g != gid {
                    groups.push(g);
                }
            }
        }
        Principal {
            uid,
            gid,
            groups,
            user_name,
            group_names,
        }
    }

    /// The current process's real uid/gid, resolved.
    pub fn current_process() -> Self {
        let (uid, gid) = current_ids();
        Self::resolve(uid, gid)
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

fn current_ids() -> (u32, u32) {
    // /proc/self/status holds "Uid:\treal\teffective..." without any unsafe code.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    };
    (field("Uid:"), field("Gid:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nalice:x:1000:\nstaff:x:50:alice,bob\nother:x:60:bob\n";

    #[test]
    fn resolves_names_and_groups() {
        let p = Principal::resolve_from(1000, 1000, PASSWD, GROUP);
        assert_eq!(p.user_name.as_deref(), Some("alice"));
        assert_eq!(p.groups, vec![50]);
        assert!(p.matches("uid:1000"));
        assert!(p.matches("user:alice"));
        assert!(p.matches("group:staff"));
        assert!(p.matches("gid:50"));
        assert!(!p.matches("group:other"));
        assert_eq!(p.to_string(), "user:alice");
        assert_eq!(Principal::from_ids(7, 7, vec![]).to_string(), "uid:7");
    }
}
