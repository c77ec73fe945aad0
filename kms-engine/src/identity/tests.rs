//! Resolver tests: names and groups from a given account database, the
//! fallbacks when groups are unreadable, fail-closed matching, the cache.

use super::*;
use crate::policy::{Effect, Match, PrincipalId, Principals};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                      alice:x:1000:1000::/home/alice:/bin/sh\n\
                      bob:x:1001:100::/home/bob:/bin/sh\n";
const GROUP: &str = "root:x:0:\nusers:x:100:\nalice:x:1000:\n\
                     staff:x:50:alice,bob\nother:x:60:bob\n";

fn files() -> FileAccounts {
    FileAccounts {
        passwd: PASSWD.into(),
        group: GROUP.into(),
    }
}

fn resolver() -> Resolver {
    Resolver::new(Box::new(files()), DEFAULT_TTL)
}

fn id(s: &str) -> PrincipalId {
    PrincipalId::parse(s).unwrap()
}

#[test]
fn names_and_groups_from_the_database_when_groups_are_not_given() {
    let p = resolver().principal(1000, 1000, None);
    assert_eq!(p.user_name.as_deref(), Some("alice"));
    assert_eq!(p.groups, vec![50]);
    assert_eq!(p.group_names, vec!["alice", "staff"]);
    assert!(p.is_resolved());
    for yes in [
        "uid:1000",
        "user:alice",
        "gid:1000",
        "gid:50",
        "group:staff",
    ] {
        assert_eq!(id(yes).test(&p), Match::Yes, "{yes}");
    }
    for no in ["uid:1001", "user:bob", "gid:60", "group:other"] {
        assert_eq!(id(no).test(&p), Match::No, "{no}");
    }
    assert_eq!(p.to_string(), "user:alice");
}

#[test]
fn the_callers_own_groups_win_over_the_database() {
    // A process that dropped `staff` and holds 60 (`other`) is what it is.
    let p = resolver().principal(1000, 1000, Some(&[60, 1000, 60]));
    assert_eq!(p.groups, vec![60]);
    assert_eq!(p.group_names, vec!["alice", "other"]);
    assert_eq!(id("group:staff").test(&p), Match::No);
    assert_eq!(id("group:other").test(&p), Match::Yes);
}

#[test]
fn a_uid_without_a_user_entry_has_unknown_groups_unless_given() {
    let r = resolver();
    let p = r.principal(4242, 100, None);
    assert_eq!(p.user_name, None);
    assert!(p.unresolved.groups && !p.unresolved.user_name);
    assert_eq!(p.group_names, vec!["users"]);
    // The primary group is known; anything else about groups is not.
    assert_eq!(id("gid:100").test(&p), Match::Yes);
    assert_eq!(id("group:users").test(&p), Match::Yes);
    assert_eq!(id("gid:50").test(&p), Match::Unknown);
    assert_eq!(id("group:staff").test(&p), Match::Unknown);
    // No user entry is a fact, not a failure: user:NAME is decided.
    assert_eq!(id("user:alice").test(&p), Match::No);
    assert_eq!(id("uid:4242").test(&p), Match::Yes);
    let given = r.principal(4242, 100, Some(&[]));
    assert!(given.is_resolved());
    assert_eq!(id("gid:50").test(&given), Match::No);
}

#[test]
fn unknown_groups_fail_closed_for_deny_and_not_principal() {
    let p = resolver().principal(4242, 100, None);
    let deny = Principals::Principal(vec![id("group:staff")]);
    assert!(deny.covers(&p, Effect::Deny));
    assert!(!deny.covers(&p, Effect::Allow));
    // NotPrincipal staff: "everyone but staff" cannot be decided either.
    let not = Principals::NotPrincipal(vec![id("gid:50")]);
    assert_eq!(not.test(&p), Match::Unknown);
    assert!(!not.covers(&p, Effect::Allow));
    assert!(not.covers(&p, Effect::Deny));
    // A certain match decides even when something else is unknown.
    let mixed = Principals::NotPrincipal(vec![id("gid:50"), id("uid:4242")]);
    assert_eq!(mixed.test(&p), Match::No);
    assert!(!mixed.covers(&p, Effect::Deny));
}

/// An account database whose every lookup fails, counting calls.
#[derive(Debug, Default)]
struct Failing(Arc<AtomicUsize>);

impl AccountDb for Failing {
    fn user_by_uid(&self, _: u32) -> Result<Option<Account>, IdentityError> {
        self.fail()
    }
    fn user_by_name(&self, _: &str) -> Result<Option<Account>, IdentityError> {
        self.fail()
    }
    fn group_name(&self, _: u32) -> Result<Option<String>, IdentityError> {
        self.fail()
    }
    fn group_list(&self, _: &str, _: u32) -> Result<Vec<u32>, IdentityError> {
        self.fail()
    }
}

impl Failing {
    fn fail<T>(&self) -> Result<T, IdentityError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(IdentityError::Lookup {
            what: "x".into(),
            reason: "NSS down".into(),
        })
    }
}

#[test]
fn failing_lookups_leave_everything_named_undecided_and_are_not_cached() {
    let calls = Arc::new(AtomicUsize::new(0));
    let r = Resolver::new(Box::new(Failing(calls.clone())), DEFAULT_TTL);
    let p = r.principal(1000, 1000, Some(&[50]));
    assert_eq!(
        p.unresolved,
        Unresolved {
            user_name: true,
            groups: false,
            group_names: true,
        }
    );
    assert_eq!(id("user:alice").test(&p), Match::Unknown);
    assert_eq!(id("group:staff").test(&p), Match::Unknown);
    assert_eq!(id("gid:50").test(&p), Match::Yes);
    assert_eq!(id("gid:60").test(&p), Match::No);
    assert_eq!(id("uid:1001").test(&p), Match::No);
    let n = calls.load(Ordering::SeqCst);
    let _ = r.principal(1000, 1000, Some(&[50]));
    assert_eq!(calls.load(Ordering::SeqCst), 2 * n);
    assert_eq!(r.cached_entries(), 0);
    // Without a user name there is no group list to fall back on.
    assert!(r.principal(1000, 1000, None).unresolved.groups);
}

/// Counts lookups that reach the database.
#[derive(Debug)]
struct Counting(FileAccounts, Arc<AtomicUsize>);

impl AccountDb for Counting {
    fn user_by_uid(&self, uid: u32) -> Result<Option<Account>, IdentityError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.user_by_uid(uid)
    }
    fn user_by_name(&self, name: &str) -> Result<Option<Account>, IdentityError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.user_by_name(name)
    }
    fn group_name(&self, gid: u32) -> Result<Option<String>, IdentityError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.group_name(gid)
    }
    fn group_list(&self, user: &str, gid: u32) -> Result<Vec<u32>, IdentityError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.group_list(user, gid)
    }
}

#[test]
fn lookups_are_cached_within_the_ttl_and_repeated_without_one() {
    let calls = Arc::new(AtomicUsize::new(0));
    let r = Resolver::new(Box::new(Counting(files(), calls.clone())), DEFAULT_TTL);
    let first = r.principal(1000, 1000, None);
    let n = calls.load(Ordering::SeqCst);
    assert_eq!(n, 4, "user, group list, two group names");
    assert_eq!(r.principal(1000, 1000, None), first);
    assert_eq!(calls.load(Ordering::SeqCst), n);
    // A zero TTL (an expired entry) asks the database again.
    let calls = Arc::new(AtomicUsize::new(0));
    let r = Resolver::new(Box::new(Counting(files(), calls.clone())), Duration::ZERO);
    let _ = r.principal(1000, 1000, None);
    let _ = r.principal(1000, 1000, None);
    assert_eq!(calls.load(Ordering::SeqCst), 2 * n);
}

#[test]
fn the_cache_stays_bounded() {
    let r = resolver();
    for uid in 0..(MAX_CACHE_ENTRIES as u32 + 100) {
        let _ = r.principal(uid + 5000, 100, Some(&[]));
    }
    assert!(r.cached_entries() <= MAX_CACHE_ENTRIES);
}

#[test]
fn principal_specs() {
    let r = resolver();
    let p = r.principal_for_spec("user:bob").unwrap();
    assert_eq!((p.uid, p.gid, p.groups.clone()), (1001, 100, vec![50, 60]));
    let p = r.principal_for_spec("uid:1000").unwrap();
    assert_eq!(p.user_name.as_deref(), Some("alice"));
    let p = r.principal_for_spec("uid:4242").unwrap();
    assert_eq!((p.uid, p.gid), (4242, 4242));
    assert!(p.unresolved.groups);
    assert_eq!(
        r.principal_for_spec("user:nobody-here"),
        Err(IdentityError::NoSuchUser("nobody-here".into()))
    );
    assert!(matches!(
        r.principal_for_spec("gid:5"),
        Err(IdentityError::BadSpec(_))
    ));
    assert!(matches!(
        r.principal_for_spec("uid:x"),
        Err(IdentityError::BadSpec(_))
    ));
}

#[test]
fn the_system_resolver_agrees_with_this_process() {
    // root exists on every system this runs on.
    let p = Resolver::system().principal(0, 0, None);
    assert_eq!(p.user_name.as_deref(), Some("root"));
    assert!(p.group_names.iter().any(|g| g == "root"));
    assert!(p.is_resolved());
    let q = Resolver::system().principal_for_spec("user:root").unwrap();
    assert_eq!(p, q);
}
