//! One identity model: key policy statements that name users and groups by
//! name, by supplementary group and through NotPrincipal decide on a real
//! `--allow-other` mount exactly as `kmsfs policy check` says, and a Deny on
//! a path prefix covers non-UTF-8 names below it.
//!
//! The callers are real processes of test accounts (`kmsfst-alice`, a
//! member of `kmsfst-staff` through a supplementary group, and
//! `kmsfst-bob`), created as system accounts with `useradd`/`groupadd` when
//! absent (and kept) and started with `setpriv --init-groups` as a login
//! would. Needs root.
// Test code: panicking on a broken fixture is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{Fixture, force_unmount, is_mounted, kmsfs_bin, root};
use kms_engine::{PutKeyPolicyRequest, ReEncryptRequest};
use kmsfs::format::{FileHeader, HEADER_LEN, NamesMode};
use kmsfs::fuse::file_context;
use kmsfs::fuse::inode::PlainPath;
use kmsfs::keys::KeyService;
use kmsfs::volume::Volume;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub(crate) const ALICE: &str = "kmsfst-alice";
pub(crate) const BOB: &str = "kmsfst-bob";
pub(crate) const STAFF: &str = "kmsfst-staff";

/// True when the test runs as root; otherwise says why it skips.
pub(crate) fn root_or_skip(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIP {test}: needs root (creates test accounts and runs processes as them)");
    false
}

/// Runs an account tool; `ok_codes` are accepted besides 0 (useradd 9:
/// the name exists, when another test process created it first).
fn admin(cmd: &str, args: &[&str], ok_codes: &[i32]) {
    let st = Command::new(cmd).args(args).status().unwrap();
    let code = st.code().unwrap_or(-1);
    assert!(
        st.success() || ok_codes.contains(&code),
        "{cmd} {args:?}: {st}"
    );
}

fn exists(db: &str, name: &str) -> bool {
    Command::new("getent")
        .args([db, name])
        .output()
        .unwrap()
        .status
        .success()
}

/// Creates the test accounts once per process (idempotent across runs).
pub(crate) fn accounts() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        // System accounts (ids below 1000): other tests use raw uids such
        // as 1001 that must stay without an account.
        admin("groupadd", &["-f", "--system", STAFF], &[]);
        for user in [ALICE, BOB] {
            if !exists("passwd", user) {
                admin(
                    "useradd",
                    &["--system", "-M", "-U", "-s", "/usr/sbin/nologin", user],
                    &[9],
                );
            }
        }
        admin("usermod", &["-a", "-G", STAFF, ALICE], &[]);
    });
}

/// The gid of group `name`.
fn gid_of(name: &str) -> u32 {
    let out = Command::new("getent")
        .args(["group", name])
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    line.split(':').nth(2).unwrap().parse().unwrap()
}

/// A caller: an account by name (started as after a login: primary group
/// and supplementary groups from the account database) or a bare uid with
/// no account (gid = uid, no supplementary groups).
#[derive(Debug, Clone, Copy)]
enum Who<'a> {
    User(&'a str),
    Uid(u32),
}

impl Who<'_> {
    /// The `--principal` that names this caller.
    fn spec(&self) -> String {
        match self {
            Who::User(n) => format!("user:{n}"),
            Who::Uid(u) => format!("uid:{u}"),
        }
    }

    /// `cat PATH` as this caller.
    fn cat(&self, p: &Path) -> Output {
        let mut c = Command::new("setpriv");
        match self {
            Who::User(n) => c.args(["--reuid", n, "--regid", n, "--init-groups"]),
            Who::Uid(u) => c.args([
                format!("--reuid={u}"),
                format!("--regid={u}"),
                "--clear-groups".into(),
            ]),
        };
        c.args(["--", "cat"])
            .arg(p)
            .current_dir("/")
            .output()
            .unwrap()
    }

    /// Whether this caller may read `p` on the mount: true on success,
    /// false on EACCES; anything else fails the test.
    fn mount_allows(&self, p: &Path) -> bool {
        let out = self.cat(p);
        if out.status.success() {
            return true;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Permission denied"),
            "{} reading {}: {err}",
            self.spec(),
            p.display()
        );
        false
    }
}

/// A uid with no account.
fn unknown_uid() -> u32 {
    (4242..)
        .find(|u| !exists("passwd", &u.to_string()))
        .unwrap()
}

struct IdentityFixture {
    fx: Fixture,
}

impl IdentityFixture {
    fn new() -> Self {
        Self::with_names(NamesMode::Encrypted)
    }

    fn with_names(names: NamesMode) -> Self {
        accounts();
        let fx = Fixture::new(4096, names);
        // The test accounts must reach the mountpoint inside the temp dir.
        for d in [fx.tmp.path(), &fx.mnt] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        IdentityFixture { fx }
    }

    /// Root administers; everyone may use the key for file data; `deny`
    /// are further statements.
    fn put_policy(&self, deny: Vec<Value>) {
        let mut statements = vec![
            json!({"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": ["uid:0"]},
                   "Action": "kms:*", "Resource": "*"}),
            json!({"Sid": "Everyone", "Effect": "Allow", "Principal": "*",
                   "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncrypt*"],
                   "Resource": "*"}),
        ];
        statements.extend(deny);
        let policy = json!({"Version": "2012-10-17", "Statement": statements});
        self.fx
            .engine
            .put_key_policy(
                &root(),
                PutKeyPolicyRequest {
                    key_id: self.fx.key_id.clone(),
                    policy_name: None,
                    policy: policy.to_string(),
                    bypass_policy_lockout_safety_check: None,
                },
            )
            .unwrap();
    }

    /// `kmsfs policy check` for `who` decrypting `context_path`: the JSON
    /// answer.
    fn policy_check(&self, who: Who<'_>, context_path: &str) -> Value {
        let ctx = json!({ "kmsfs:path": context_path }).to_string();
        let out = Command::new(kmsfs_bin())
            .args(self.fx.engine_args())
            .args(["policy", "check", "--key-id", &self.fx.key_id])
            .args(["--principal", &who.spec()])
            .args(["--action", "kms:Decrypt", "--encryption-context", &ctx])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "policy check: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn policy_check_allows(&self, who: Who<'_>, context_path: &str) -> bool {
        self.policy_check(who, context_path)["Allowed"]
            .as_bool()
            .unwrap()
    }

    /// Checks that `who` reading `rel` below `mnt` (plaintext path
    /// `context_path`) gets `want` from the mount and from `policy check`.
    fn expect(&self, mnt: &Path, who: Who<'_>, rel: &OsStr, context_path: &str, want: bool) {
        let on_mount = who.mount_allows(&mnt.join(rel));
        let checked = self.policy_check_allows(who, context_path);
        assert_eq!(
            (on_mount, checked),
            (want, want),
            "{} reading {context_path:?}: (mount, policy check) allowed",
            who.spec()
        );
    }
}

/// Root writes `rel` below `mnt` (any bytes), readable by everyone.
fn root_file(mnt: &Path, rel: &OsStr) -> PathBuf {
    let p = mnt.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, b"secret").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    p
}

fn deny(sid: &str, principals: Value, prefix: &str) -> Value {
    let mut s = json!({
        "Sid": sid, "Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*",
        "Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": format!("{prefix}/*")}}
    });
    let obj = s.as_object_mut().unwrap();
    for (k, v) in principals.as_object().unwrap() {
        obj.insert(k.clone(), v.clone());
    }
    s
}

#[test]
fn deny_by_user_group_supplementary_gid_and_not_principal_agree_with_policy_check() {
    if !root_or_skip("fs_identity::deny_by_user_group...") {
        return;
    }
    let f = IdentityFixture::new();
    let staff = gid_of(STAFF);
    f.put_policy(vec![
        deny(
            "DenyBobByName",
            json!({"Principal": {"AWS": format!("user:{BOB}")}}),
            "/by-user",
        ),
        deny(
            "DenyStaffByName",
            json!({"Principal": {"AWS": format!("group:{STAFF}")}}),
            "/by-group",
        ),
        deny(
            "DenyStaffById",
            json!({"Principal": {"AWS": format!("gid:{staff}")}}),
            "/by-gid",
        ),
        // bob's primary group (useradd -U names it after him).
        deny(
            "DenyBobsGroupByName",
            json!({"Principal": {"AWS": format!("group:{BOB}")}}),
            "/by-primary-group",
        ),
        deny(
            "OnlyAlice",
            json!({"NotPrincipal": {"AWS": [format!("user:{ALICE}"), "uid:0"]}}),
            "/alice-only",
        ),
    ]);
    let m = f.fx.mount();
    // (file, alice allowed, bob allowed)
    let cases = [
        ("by-user/f", true, false),
        ("by-group/f", false, true),
        ("by-gid/f", false, true),
        ("by-primary-group/f", true, false),
        ("alice-only/f", true, false),
        ("open/f", true, true),
    ];
    for (rel, alice, bob) in cases {
        root_file(&m.mnt, OsStr::new(rel));
        let path = format!("/{rel}");
        f.expect(&m.mnt, Who::User(ALICE), OsStr::new(rel), &path, alice);
        f.expect(&m.mnt, Who::User(BOB), OsStr::new(rel), &path, bob);
    }
    m.unmount();
}

#[test]
fn deny_on_a_prefix_covers_non_utf8_names_below_it() {
    if !root_or_skip("fs_identity::deny_on_a_prefix...") {
        return;
    }
    let f = IdentityFixture::new();
    f.put_policy(vec![deny(
        "NoSharedForBob",
        json!({"Principal": {"AWS": format!("user:{BOB}")}}),
        "/shared",
    )]);
    let m = f.fx.mount();
    // "caf\xe9" (Latin-1), a name that is not UTF-8.
    let shared = OsStr::from_bytes(b"shared/caf\xe9");
    let elsewhere = OsStr::from_bytes(b"other/caf\xe9");
    root_file(&m.mnt, shared);
    root_file(&m.mnt, elsewhere);
    // The context string keeps the UTF-8 prefix; the bad byte is NUL + hex.
    let (alice, bob) = (Who::User(ALICE), Who::User(BOB));
    f.expect(&m.mnt, bob, shared, "/shared/caf\0e9", false);
    f.expect(&m.mnt, bob, elsewhere, "/other/caf\0e9", true);
    f.expect(&m.mnt, alice, shared, "/shared/caf\0e9", true);
    // Root wrote them and reads them back (the key opens under this path).
    assert_eq!(fs::read(m.mnt.join(shared)).unwrap(), b"secret");
    m.unmount();
}

/// `kmsfs mount --foreground --allow-other` in a new PID namespace: every
/// caller outside it has pid 0 there, so the mount cannot read any caller's
/// groups from /proc (as with `hidepid`). Killed and unmounted on drop.
struct PidNsMount {
    child: Child,
    mnt: PathBuf,
}

impl PidNsMount {
    fn start(fx: &Fixture) -> PidNsMount {
        let child = Command::new("unshare")
            .args(["--pid", "--kill-child", "--"])
            .arg(kmsfs_bin())
            .args(fx.engine_args())
            .args(["mount", "--foreground", "--allow-other"])
            .arg(&fx.cipher)
            .arg(&fx.mnt)
            .spawn()
            .unwrap();
        let mut m = PidNsMount {
            child,
            mnt: fs::canonicalize(&fx.mnt).unwrap(),
        };
        let start = Instant::now();
        while !is_mounted(&m.mnt) {
            if let Ok(Some(st)) = m.child.try_wait() {
                panic!("kmsfs mount exited early: {st}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "mount did not appear"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }
}

impl Drop for PidNsMount {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        force_unmount(&self.mnt);
    }
}

#[test]
fn unreadable_groups_come_from_the_account_database_or_fail_closed() {
    if !root_or_skip("fs_identity::unreadable_groups...") {
        return;
    }
    let f = IdentityFixture::new();
    let staff = gid_of(STAFF);
    f.put_policy(vec![
        deny(
            "DenyStaffByName",
            json!({"Principal": {"AWS": format!("group:{STAFF}")}}),
            "/by-group",
        ),
        deny(
            "DenyStaffById",
            json!({"Principal": {"AWS": format!("gid:{staff}")}}),
            "/by-gid",
        ),
        deny(
            "StaffOnly",
            json!({"NotPrincipal": {"AWS": [format!("group:{STAFF}"), "uid:0"]}}),
            "/staff-only",
        ),
    ]);
    let m = PidNsMount::start(&f.fx);
    let nameless = Who::Uid(unknown_uid());
    // policy check says why it fails closed for the uid without an account.
    let v = f.policy_check(nameless, "/open/f");
    assert_eq!(v["Principal"]["Unresolved"], json!(["Groups"]), "{v}");
    let v = f.policy_check(Who::User(ALICE), "/open/f");
    assert_eq!(v["Principal"]["Unresolved"], json!([]), "{v}");
    assert_eq!(v["Principal"]["Name"], format!("user:{ALICE}"));
    // (file, alice, bob, a uid without an account)
    let cases = [
        // alice's staff membership comes from getgrouplist; the uid with
        // no account has no group list at all, so the Deny applies.
        ("by-group/f", false, true, false),
        ("by-gid/f", false, true, false),
        // NotPrincipal: "not staff" cannot be ruled out for the nameless
        // uid, so the Deny applies to it too.
        ("staff-only/f", true, false, false),
        ("open/f", true, true, true),
    ];
    for (rel, alice, bob, other) in cases {
        root_file(&m.mnt, OsStr::new(rel));
        let path = format!("/{rel}");
        let rel = OsStr::new(rel);
        f.expect(&m.mnt, Who::User(ALICE), rel, &path, alice);
        f.expect(&m.mnt, Who::User(BOB), rel, &path, bob);
        f.expect(&m.mnt, nameless, rel, &path, other);
    }
}

/// Rewraps the data key in the header of `backing` from the context of
/// `plain` (current form) to the pre-escape `base64url:` form, as files
/// written by earlier versions have it.
fn rewrap_to_legacy(fx: &Fixture, backing: &Path, plain: &PlainPath) {
    let ks: Arc<dyn KeyService> = Arc::new(fx.engine.clone());
    let volume_id = Volume::open(&fx.cipher, &ks, &root())
        .unwrap()
        .config
        .volume_id;
    let current = file_context(&volume_id, plain);
    let mut legacy = current.clone();
    legacy.insert("kmsfs:path".into(), plain.legacy_context_string().unwrap());
    let bytes = fs::read(backing).unwrap();
    let header = FileHeader::decode(&bytes[..HEADER_LEN]).unwrap();
    let blob = fx
        .engine
        .re_encrypt(
            &root(),
            ReEncryptRequest {
                ciphertext_blob: header.wrapped_dek.clone(),
                source_encryption_context: current,
                source_key_id: None,
                destination_key_id: fx.key_id.clone(),
                destination_encryption_context: legacy,
                source_encryption_algorithm: None,
                destination_encryption_algorithm: None,
                grant_tokens: None,
            },
        )
        .unwrap()
        .ciphertext_blob;
    let new = FileHeader::new(header.file_id, blob)
        .unwrap()
        .encode()
        .unwrap();
    let f = fs::OpenOptions::new().write(true).open(backing).unwrap();
    f.write_all_at(&new, 0).unwrap();
}

#[test]
fn a_non_utf8_file_keyed_under_the_old_context_still_opens_renames_and_obeys_denies() {
    if !root_or_skip("fs_identity::a_non_utf8_file_keyed_under_the_old_context...") {
        return;
    }
    // Plaintext names: the backing file of /shared/caf\xe9 is at that path.
    let f = IdentityFixture::with_names(NamesMode::Plaintext);
    f.put_policy(vec![deny(
        "NoSharedForBob",
        json!({"Principal": {"AWS": format!("user:{BOB}")}}),
        "/shared",
    )]);
    let name = OsStr::from_bytes(b"shared/caf\xe9");
    let m = f.fx.mount();
    root_file(&m.mnt, name);
    m.unmount();
    let plain = PlainPath::from_bytes(b"/shared/caf\xe9".to_vec());
    rewrap_to_legacy(&f.fx, &f.fx.cipher.join(name), &plain);
    // fsck opens it too.
    let ks: Arc<dyn KeyService> = Arc::new(f.fx.engine.clone());
    let vol = Volume::open(&f.fx.cipher, &ks, &root()).unwrap();
    let report = kmsfs::fsck::check(&vol, ks.as_ref(), &root()).unwrap();
    assert!(report.problems.is_empty(), "fsck: {:?}", report.problems);
    assert_eq!(report.files, 1);

    let m = f.fx.mount();
    // The old key opens for root (after the current context's miss) ...
    assert_eq!(fs::read(m.mnt.join(name)).unwrap(), b"secret");
    // ... and the Deny on the prefix, decided under the current context,
    // still keeps bob out.
    assert!(!Who::User(BOB).mount_allows(&m.mnt.join(name)));
    assert!(Who::User(ALICE).mount_allows(&m.mnt.join(name)));
    // A rename re-wraps from the old form to the current one.
    let moved = OsStr::from_bytes(b"shared/na\xefve");
    fs::rename(m.mnt.join(name), m.mnt.join(moved)).unwrap();
    m.unmount();
    let bytes = fs::read(f.fx.cipher.join(moved)).unwrap();
    let header = FileHeader::decode(&bytes[..HEADER_LEN]).unwrap();
    let now = PlainPath::from_bytes(b"/shared/na\xefve".to_vec());
    let ctx = file_context(&vol.config.volume_id, &now);
    ks.decrypt_data_key(&root(), &header.wrapped_dek, &ctx)
        .expect("the renamed file's key opens under the current context string");
    let m = f.fx.mount();
    assert_eq!(fs::read(m.mnt.join(moved)).unwrap(), b"secret");
    m.unmount();
}
