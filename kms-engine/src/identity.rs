//! One resolver from numeric ids to a [`Principal`]: the user's name, the
//! supplementary groups and every group's name, from the system's account
//! database (NSS: `getpwuid_r`, `getpwnam_r`, `getgrgid_r`, `getgrouplist`).
//!
//! The mount (FUSE callers), the CLI (its own process), `kmsfs policy check`
//! (a principal named on the command line) and the engine daemon (socket
//! peers) all build principals here, so a policy naming `user:NAME` or
//! `group:NAME` gets the same answer from each.
//!
//! Groups: a caller's own supplementary groups (`/proc/PID/status`, or
//! `getgroups` for this process) are used when the transport can read them.
//! When it cannot (`/proc` mounted with `hidepid`, a process that exited),
//! the groups are the account database's groups for the user's name
//! (`getgrouplist`, what a login session gets). When that is impossible too
//! (a uid with no user entry, a failing lookup), the principal records its
//! groups as unresolved and policy matching fails closed
//! ([`crate::policy::PrincipalId::test`]).
//!
//! Lookups are cached for [`DEFAULT_TTL`] (an open would otherwise cost
//! several NSS calls); failures are not cached. The cache is bounded by
//! [`MAX_CACHE_ENTRIES`].

use crate::principal::{Principal, Unresolved};
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use thiserror::Error;

/// How long a looked-up name or group list is reused: a change to the
/// account database (a user added to a group) is seen within this time.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// Most cached lookups kept at once.
pub const MAX_CACHE_ENTRIES: usize = 4096;

/// A user entry of the account database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
}

/// A failure to resolve an identity.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    /// The account database could not be read (an NSS error, not "no such
    /// entry").
    #[error("account database lookup of {what} failed: {reason}")]
    Lookup { what: String, reason: String },
    /// `user:NAME` names no user.
    #[error("no user named {0:?} in the account database")]
    NoSuchUser(String),
    /// A principal written in a form other than `uid:N` / `user:NAME`.
    #[error("principal {0:?} must be uid:N or user:NAME")]
    BadSpec(String),
}

/// Where accounts come from: the system ([`SystemAccounts`]) or given
/// passwd/group text ([`FileAccounts`], tests and offline tools).
pub trait AccountDb: Send + Sync + std::fmt::Debug {
    fn user_by_uid(&self, uid: u32) -> Result<Option<Account>, IdentityError>;
    fn user_by_name(&self, name: &str) -> Result<Option<Account>, IdentityError>;
    fn group_name(&self, gid: u32) -> Result<Option<String>, IdentityError>;
    /// Every group `user` belongs to, `gid` included.
    fn group_list(&self, user: &str, gid: u32) -> Result<Vec<u32>, IdentityError>;
}

/// The system's account database through NSS.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemAccounts;

fn lookup_error(what: String, e: nix::Error) -> IdentityError {
    IdentityError::Lookup {
        what,
        reason: e.desc().to_string(),
    }
}

impl AccountDb for SystemAccounts {
    fn user_by_uid(&self, uid: u32) -> Result<Option<Account>, IdentityError> {
        nix::unistd::User::from_uid(uid.into())
            .map(|u| u.map(account))
            .map_err(|e| lookup_error(format!("uid {uid}"), e))
    }
    fn user_by_name(&self, name: &str) -> Result<Option<Account>, IdentityError> {
        nix::unistd::User::from_name(name)
            .map(|u| u.map(account))
            .map_err(|e| lookup_error(format!("user {name:?}"), e))
    }
    fn group_name(&self, gid: u32) -> Result<Option<String>, IdentityError> {
        nix::unistd::Group::from_gid(gid.into())
            .map(|g| g.map(|g| g.name))
            .map_err(|e| lookup_error(format!("gid {gid}"), e))
    }
    fn group_list(&self, user: &str, gid: u32) -> Result<Vec<u32>, IdentityError> {
        let what = || format!("groups of {user:?}");
        let name = CString::new(user).map_err(|_| IdentityError::Lookup {
            what: what(),
            reason: "name contains NUL".into(),
        })?;
        nix::unistd::getgrouplist(&name, gid.into())
            .map(|gs| gs.into_iter().map(|g| g.as_raw()).collect())
            .map_err(|e| lookup_error(what(), e))
    }
}

fn account(u: nix::unistd::User) -> Account {
    Account {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }
}

/// An account database read from `/etc/passwd`- and `/etc/group`-format
/// text.
#[derive(Debug, Clone, Default)]
pub struct FileAccounts {
    pub passwd: String,
    pub group: String,
}

impl FileAccounts {
    fn users(&self) -> impl Iterator<Item = Account> + '_ {
        self.passwd.lines().filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Account {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
    }
    /// (name, gid, members) of each group line.
    fn groups(&self) -> impl Iterator<Item = (&str, u32, &str)> + '_ {
        self.group.lines().filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((*f.first()?, f.get(2)?.parse().ok()?, *f.get(3)?))
        })
    }
}

impl AccountDb for FileAccounts {
    fn user_by_uid(&self, uid: u32) -> Result<Option<Account>, IdentityError> {
        Ok(self.users().find(|a| a.uid == uid))
    }
    fn user_by_name(&self, name: &str) -> Result<Option<Account>, IdentityError> {
        Ok(self.users().find(|a| a.name == name))
    }
    fn group_name(&self, gid: u32) -> Result<Option<String>, IdentityError> {
        Ok(self.groups().find(|g| g.1 == gid).map(|g| g.0.to_string()))
    }
    fn group_list(&self, user: &str, gid: u32) -> Result<Vec<u32>, IdentityError> {
        let mut out = vec![gid];
        out.extend(
            self.groups()
                .filter(|g| g.2.split(',').any(|m| m == user))
                .map(|g| g.1),
        );
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CacheKey {
    Uid(u32),
    Name(String),
    Gid(u32),
    List(String, u32),
}

#[derive(Debug, Clone)]
enum Cached {
    User(Option<Account>),
    Group(Option<String>),
    List(Vec<u32>),
}

/// Builds principals from ids; see the module documentation.
#[derive(Debug)]
pub struct Resolver {
    db: Box<dyn AccountDb>,
    ttl: Duration,
    cache: Mutex<HashMap<CacheKey, (Instant, Cached)>>,
}

impl Resolver {
    /// A resolver over `db` that reuses lookups for `ttl` (zero: never).
    pub fn new(db: Box<dyn AccountDb>, ttl: Duration) -> Self {
        Resolver {
            db,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The process-wide resolver over the system's account database.
    pub fn system() -> &'static Resolver {
        static SYSTEM: OnceLock<Resolver> = OnceLock::new();
        SYSTEM.get_or_init(|| Resolver::new(Box::new(SystemAccounts), DEFAULT_TTL))
    }

    /// The principal for `uid`/`gid` with the caller's supplementary
    /// `groups` when the transport could read them (`None`: take the
    /// account database's groups for the user, or mark them unresolved).
    pub fn principal(&self, uid: u32, gid: u32, groups: Option<&[u32]>) -> Principal {
        let mut unresolved = Unresolved::default();
        let user_name = match self.user_by_uid(uid) {
            Ok(a) => a.map(|a| a.name),
            Err(e) => {
                log::warn!("uid {uid}: {e}; policies naming users fail closed");
                unresolved.user_name = true;
                None
            }
        };
        let groups = match (groups, &user_name) {
            (Some(g), _) => Some(g.to_vec()),
            (None, Some(name)) => self
                .group_list(name, gid)
                .map_err(|e| log::warn!("uid {uid}: {e}; policies naming groups fail closed"))
                .ok(),
            (None, None) => None,
        };
        let mut groups = groups.unwrap_or_else(|| {
            unresolved.groups = true;
            Vec::new()
        });
        groups.retain(|g| *g != gid);
        groups.sort_unstable();
        groups.dedup();
        let mut group_names = Vec::new();
        for g in std::iter::once(gid).chain(groups.iter().copied()) {
            match self.group_name(g) {
                Ok(Some(n)) => group_names.push(n),
                Ok(None) => {}
                Err(e) => {
                    log::warn!("{e}; policies naming groups fail closed");
                    unresolved.group_names = true;
                }
            }
        }
        Principal {
            uid,
            gid,
            groups,
            user_name,
            group_names,
            unresolved,
            invoked_by: None,
        }
    }

    /// The principal a `--principal` option names: `uid:N` (primary group
    /// from the user entry, else N) or `user:NAME`; groups from the account
    /// database.
    pub fn principal_for_spec(&self, spec: &str) -> Result<Principal, IdentityError> {
        let (uid, gid) = match spec.split_once(':') {
            Some(("uid", n)) => {
                let uid: u32 = n.parse().map_err(|_| IdentityError::BadSpec(spec.into()))?;
                let gid = self.user_by_uid(uid)?.map_or(uid, |a| a.gid);
                (uid, gid)
            }
            Some(("user", name)) => {
                let a = self
                    .user_by_name(name)?
                    .ok_or_else(|| IdentityError::NoSuchUser(name.into()))?;
                (a.uid, a.gid)
            }
            _ => return Err(IdentityError::BadSpec(spec.into())),
        };
        Ok(self.principal(uid, gid, None))
    }

    fn user_by_uid(&self, uid: u32) -> Result<Option<Account>, IdentityError> {
        match self.cached(CacheKey::Uid(uid), || {
            self.db.user_by_uid(uid).map(Cached::User)
        })? {
            Cached::User(a) => Ok(a),
            _ => Ok(None),
        }
    }

    fn user_by_name(&self, name: &str) -> Result<Option<Account>, IdentityError> {
        match self.cached(CacheKey::Name(name.into()), || {
            self.db.user_by_name(name).map(Cached::User)
        })? {
            Cached::User(a) => Ok(a),
            _ => Ok(None),
        }
    }

    fn group_name(&self, gid: u32) -> Result<Option<String>, IdentityError> {
        match self.cached(CacheKey::Gid(gid), || {
            self.db.group_name(gid).map(Cached::Group)
        })? {
            Cached::Group(n) => Ok(n),
            _ => Ok(None),
        }
    }

    fn group_list(&self, user: &str, gid: u32) -> Result<Vec<u32>, IdentityError> {
        match self.cached(CacheKey::List(user.into(), gid), || {
            self.db.group_list(user, gid).map(Cached::List)
        })? {
            Cached::List(l) => Ok(l),
            _ => Ok(Vec::new()),
        }
    }

    /// A fresh cached value for `key`, else `look()`'s (kept when it
    /// succeeded). The lookup runs without the lock held.
    fn cached(
        &self,
        key: CacheKey,
        look: impl FnOnce() -> Result<Cached, IdentityError>,
    ) -> Result<Cached, IdentityError> {
        let now = Instant::now();
        if let Ok(c) = self.cache.lock()
            && let Some((at, v)) = c.get(&key)
            && now.duration_since(*at) < self.ttl
        {
            return Ok(v.clone());
        }
        let v = look()?;
        if !self.ttl.is_zero()
            && let Ok(mut c) = self.cache.lock()
        {
            if c.len() >= MAX_CACHE_ENTRIES {
                c.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
                if c.len() >= MAX_CACHE_ENTRIES {
                    c.clear();
                }
            }
            c.insert(key, (now, v.clone()));
        }
        Ok(v)
    }

    /// Number of cached lookups (tests).
    pub fn cached_entries(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
