//! Key policies and grants enforced on a real `--allow-other` mount, with two
//! unprivileged uids acting through child processes (`cat`, `sh`, `mv`), and
//! every decision checked in the file audit trail the engine writes.
// Test code: panicking on a broken fixture is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Fixture, Mounted, root};
use kms_engine::audit::query::{self, Filter};
use kms_engine::audit::record::RecordView;
use kms_engine::audit::{FileAuditTrail, TrailOptions};
use kms_engine::grant::GrantOperation;
use kms_engine::{
    CreateGrantRequest, CreateKeyRequest, Engine, GrantConstraintsWire, KdfParams,
    PutKeyPolicyRequest, RevokeGrantRequest, RootKeySource, SystemClock,
};
use kmsfs::format::NamesMode;
use kmsfs::fuse::FsOptions;
use kmsfs::keys::cache::CacheConfig;
use kmsfs::volume::{self, InitOptions};
use serde_json::{Map, Value};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// uid A: may use the key under `/shared/*` only (key policy).
const UID_A: u32 = 1001;
/// uid B: may decrypt under one path prefix only (grant).
const UID_B: u32 = 1002;
const PRINCIPAL_A: &str = "uid:1001";
const PRINCIPAL_B: &str = "uid:1002";
/// The reauth interval the mounts here use: short, so revocation is quick.
const REAUTH: Duration = Duration::from_secs(1);
/// How long a revocation may take before the test fails (generous: the
/// bound is REAUTH; this only guards against a hang on a loaded machine).
const REVOCATION_DEADLINE: Duration = Duration::from_secs(30);

/// A [`Fixture`] whose engine audits to a [`FileAuditTrail`] in
/// `<tmp>/audit`, with the temp dir traversable by other uids.
struct PolicyFixture {
    fx: Fixture,
    trail: PathBuf,
}

impl PolicyFixture {
    fn new() -> PolicyFixture {
        let _ = env_logger::builder().is_test(true).try_init();
        let tmp = tempfile::tempdir().unwrap();
        // Other uids must reach the mountpoint inside the temp dir.
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let cipher = tmp.path().join("cipher");
        let mnt = tmp.path().join("mnt");
        let engine_dir = tmp.path().join("engine");
        let trail = tmp.path().join("audit");
        fs::create_dir(&cipher).unwrap();
        fs::create_dir(&mnt).unwrap();
        fs::set_permissions(&mnt, fs::Permissions::from_mode(0o755)).unwrap();
        let sink = FileAuditTrail::open(
            &trail,
            Zeroizing::new([0x5a; 32]),
            TrailOptions {
                background: false,
                ..TrailOptions::default()
            },
        )
        .unwrap();
        let engine = Arc::new(
            Engine::create(
                &engine_dir,
                RootKeySource::Passphrase(Zeroizing::new("test passphrase".into())),
                KdfParams::insecure_for_tests(),
                Arc::new(SystemClock),
                Arc::new(sink),
            )
            .unwrap(),
        );
        let key_id = engine
            .create_key(&root(), CreateKeyRequest::default())
            .unwrap()
            .key_metadata
            .key_id;
        volume::init(
            &cipher,
            &engine,
            &root(),
            &InitOptions {
                master_key_id: key_id.clone(),
                block_size: 4096,
                names_mode: NamesMode::Encrypted,
                long_names: true,
                kms: None,
                write_only_key: None,
            },
        )
        .unwrap();
        PolicyFixture {
            fx: Fixture {
                tmp,
                cipher,
                mnt,
                engine_dir,
                engine,
                key_id,
            },
            trail,
        }
    }

    /// Mounts with `--allow-other` and a [`REAUTH`] cache interval.
    fn mount(&self) -> Mounted {
        self.fx.mount_with(
            FsOptions {
                read_only: false,
                cache: CacheConfig {
                    reauth_interval: REAUTH,
                    ..CacheConfig::default()
                },
                background_wrap: None,
                ..Default::default()
            },
            true,
        )
    }

    /// Replaces the key policy: root stays the administrator, `extra` are
    /// further statements.
    fn put_policy(&self, extra: Vec<Value>) {
        let mut statements = vec![serde_json::json!({
            "Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": ["uid:0"]},
            "Action": "kms:*", "Resource": "*"
        })];
        statements.extend(extra);
        let policy = serde_json::json!({"Version": "2012-10-17", "Statement": statements});
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

    /// The policy of the issue: uid A may read and write under `/shared/*`.
    fn shared_only_policy_for_a(&self) {
        self.put_policy(vec![serde_json::json!({
            "Sid": "SharedOnly", "Effect": "Allow",
            "Principal": {"AWS": [PRINCIPAL_A]},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncrypt*"],
            "Resource": "*",
            "Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": "/shared/*"}}
        })]);
    }

    /// A Decrypt grant for uid B below `prefix`; returns the grant id.
    fn grant_b(&self, prefix: &str) -> String {
        self.fx
            .engine
            .create_grant(
                &root(),
                CreateGrantRequest {
                    key_id: self.fx.key_id.clone(),
                    grantee_principal: PRINCIPAL_B.into(),
                    retiring_principal: None,
                    operations: vec![GrantOperation::Decrypt],
                    constraints: Some(GrantConstraintsWire {
                        encryption_context_equals: None,
                        encryption_context_subset: None,
                        kmsfs_path_prefix: Some(prefix.into()),
                    }),
                    grant_tokens: None,
                    name: None,
                },
            )
            .unwrap()
            .grant_id
    }

    /// Records of `principal` in the audit trail (only failures when
    /// `errors_only`), read back with the query API `kmsfs audit show` uses.
    fn audit(&self, principal: &str, errors_only: bool) -> Vec<Map<String, Value>> {
        query::show(
            &self.trail,
            &Filter {
                principal: Some(principal.into()),
                errors_only,
                ..Filter::default()
            },
        )
        .unwrap()
        .into_iter()
        .map(|r| r.record)
        .collect()
    }

    /// Asserts a record of `principal` for `event` on `path` with `error`
    /// (None: allowed) exists.
    fn assert_audited(&self, principal: &str, event: &str, path: &str, error: Option<&str>) {
        let recs = self.audit(principal, error.is_some());
        let found = recs.iter().any(|r| {
            r.str_at(&["eventName"]) == Some(event)
                && r.str_at(&["requestParameters", "encryptionContext", "kmsfs:path"]) == Some(path)
                && r.str_at(&["errorCode"]) == error
                && r.str_at(&["requestParameters", "keyId"]).is_some()
        });
        assert!(
            found,
            "no {event} record for {principal} on {path} with error {error:?}; records:\n{}",
            recs.iter()
                .map(|r| Value::Object(r.clone()).to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

impl PolicyFixture {
    /// Reads `p` as `uid` until an allowed Decrypt of `path` by `principal`
    /// is in the trail (the cache re-asks the engine after REAUTH); panics
    /// after [`REVOCATION_DEADLINE`].
    fn read_until_audited(&self, uid: u32, principal: &str, p: &Path, path: &str) {
        let start = Instant::now();
        loop {
            assert_ok(&cat(uid, p), "read while waiting for the audit record");
            let seen = self.audit(principal, false).iter().any(|r| {
                r.str_at(&["eventName"]) == Some("Decrypt")
                    && r.str_at(&["requestParameters", "encryptionContext", "kmsfs:path"])
                        == Some(path)
                    && r.get("errorCode").is_none()
            });
            if seen {
                return;
            }
            assert!(
                start.elapsed() < REVOCATION_DEADLINE,
                "no allowed Decrypt of {path} by {principal} was audited"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Runs `sh -c script` as `uid` (gid = uid) with `args` as `$1...`.
fn as_uid(uid: u32, script: &str, args: &[&Path]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .current_dir("/")
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap()
}

fn cat(uid: u32, p: &Path) -> Output {
    as_uid(uid, r#"cat "$1""#, &[p])
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The command failed with EACCES (strerror(EACCES) on stderr).
fn assert_eacces(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Permission denied"),
        "{what}: expected EACCES, got {:?} stdout={:?} stderr={err:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

fn is_eacces(out: &Output) -> bool {
    !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Permission denied")
}

/// A directory on the mount that every uid may create files in.
fn open_dir(m: &Mounted, rel: &str) -> PathBuf {
    let p = m.path(rel);
    fs::create_dir_all(&p).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
    p
}

/// A file root writes on the mount, readable and writable by every uid as
/// far as POSIX goes.
fn root_file(m: &Mounted, rel: &str, content: &[u8]) -> PathBuf {
    let p = m.path(rel);
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
    p
}

/// Polls `cat` as `uid` until it fails with EACCES; panics after
/// [`REVOCATION_DEADLINE`]. Every attempt before must still succeed.
fn wait_until_denied(uid: u32, p: &Path) {
    let start = Instant::now();
    loop {
        let out = cat(uid, p);
        if is_eacces(&out) {
            return;
        }
        assert_ok(&out, "read before the revocation took effect");
        assert!(
            start.elapsed() < REVOCATION_DEADLINE,
            "uid {uid} could still open {} {:?} after the revocation",
            p.display(),
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child that holds a file open (fd 3) as some uid, then reads it
/// through that descriptor when told to; killed on drop.
struct HeldOpen {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl HeldOpen {
    fn start(uid: u32, p: &Path) -> HeldOpen {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec 3<"$1" || exit 9; echo opened; read _go; cat <&3"#)
            .arg("sh")
            .arg(p)
            .current_dir("/")
            .uid(uid)
            .gid(uid)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "opened\n", "the held open failed");
        HeldOpen { child, out }
    }

    /// Reads the whole file through the descriptor opened at start.
    fn read_through_handle(mut self) -> (bool, Vec<u8>, String) {
        self.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let mut data = Vec::new();
        self.out.read_to_end(&mut data).unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut err).unwrap();
        }
        let ok = self.child.wait().unwrap().success();
        (ok, data, err)
    }
}

impl Drop for HeldOpen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn policy_confines_uid_a_to_shared() {
    let pf = PolicyFixture::new();
    pf.shared_only_policy_for_a();
    let m = pf.mount();
    let shared = open_dir(&m, "shared");
    let hr = open_dir(&m, "hr");
    let y = root_file(&m, "hr/y", b"salaries\n");

    // A creates, writes, appends and reads under /shared.
    let x = shared.join("x");
    assert_ok(
        &as_uid(UID_A, r#"echo hello > "$1""#, &[&x]),
        "A creates /shared/x",
    );
    assert_ok(
        &as_uid(UID_A, r#"echo world >> "$1""#, &[&x]),
        "A appends to /shared/x",
    );
    let out = cat(UID_A, &x);
    assert_ok(&out, "A reads /shared/x");
    assert_eq!(out.stdout, b"hello\nworld\n");
    assert_eq!(fs::metadata(&x).unwrap().uid(), UID_A);

    // POSIX allows A to read and write /hr/y (0666); the key policy does not.
    assert_eacces(&cat(UID_A, &y), "A reads /hr/y");
    assert_eacces(
        &as_uid(UID_A, r#"echo overwrite > "$1""#, &[&y]),
        "A truncates /hr/y",
    );
    // truncate(2) without an open handle unwraps the key as the caller too.
    assert_eacces(
        &as_uid(UID_A, r#"truncate -s 3 "$1""#, &[&y]),
        "A truncates /hr/y by path",
    );
    assert_eq!(fs::read(&y).unwrap(), b"salaries\n", "/hr/y was changed");
    // Creating under /hr is refused, and leaves nothing behind.
    let z = hr.join("z");
    assert_eacces(
        &as_uid(UID_A, r#"echo new > "$1""#, &[&z]),
        "A creates /hr/z",
    );
    assert!(!z.exists(), "a refused create left an entry");
    assert_eq!(
        fs::read_dir(&hr).unwrap().count(),
        1,
        "a refused create left an entry in /hr"
    );
    // A path that only looks like /shared is outside it.
    let lookalike = open_dir(&m, "shared2");
    assert_eacces(
        &as_uid(UID_A, r#"echo x > "$1""#, &[&lookalike.join("f")]),
        "A creates /shared2/f",
    );
    // uid B has no statement and no grant: nothing opens.
    assert_eacces(&cat(UID_B, &x), "B reads /shared/x");
    // root (the administrator) still reads everything.
    assert_eq!(fs::read(&x).unwrap(), b"hello\nworld\n");

    // Every decision is in the audit trail.
    pf.assert_audited(PRINCIPAL_A, "GenerateDataKey", "/shared/x", None);
    // A's opens right after the create are served from the data key cache
    // (the creator's key is cached); once the cached authorization is older
    // than REAUTH the engine decides again, and that Decrypt is audited.
    pf.read_until_audited(UID_A, PRINCIPAL_A, &x, "/shared/x");
    pf.assert_audited(
        PRINCIPAL_A,
        "Decrypt",
        "/hr/y",
        Some("AccessDeniedException"),
    );
    pf.assert_audited(
        PRINCIPAL_A,
        "GenerateDataKey",
        "/hr/z",
        Some("AccessDeniedException"),
    );
    pf.assert_audited(
        PRINCIPAL_A,
        "GenerateDataKey",
        "/shared2/f",
        Some("AccessDeniedException"),
    );
    pf.assert_audited(
        PRINCIPAL_B,
        "Decrypt",
        "/shared/x",
        Some("AccessDeniedException"),
    );
    // No allowed use of /hr by A was ever recorded.
    assert!(
        pf.audit(PRINCIPAL_A, false).iter().all(|r| {
            r.get("errorCode").is_some()
                || !r
                    .str_at(&["requestParameters", "encryptionContext", "kmsfs:path"])
                    .is_some_and(|p| p.starts_with("/hr/"))
        }),
        "an allowed key use by A under /hr was audited"
    );
    m.unmount();
}

#[test]
fn grant_lets_uid_b_read_one_prefix_only() {
    let pf = PolicyFixture::new();
    pf.shared_only_policy_for_a();
    let m = pf.mount();
    open_dir(&m, "proj/b");
    open_dir(&m, "proj/other");
    open_dir(&m, "proj/bb");
    let f1 = root_file(&m, "proj/b/f1", b"for b\n");
    let deep = {
        open_dir(&m, "proj/b/sub");
        root_file(&m, "proj/b/sub/deep", b"deep\n")
    };
    let other = root_file(&m, "proj/other/f2", b"not for b\n");
    let bb = root_file(&m, "proj/bb/f3", b"prefix lookalike\n");
    open_dir(&m, "shared");
    let s = root_file(&m, "shared/s", b"shared\n");

    // Before the grant B opens nothing.
    assert_eacces(&cat(UID_B, &f1), "B reads /proj/b/f1 without a grant");
    pf.grant_b("/proj/b");
    // The grant works at once (a denial is never cached).
    let out = cat(UID_B, &f1);
    assert_ok(&out, "B reads /proj/b/f1");
    assert_eq!(out.stdout, b"for b\n");
    let out = cat(UID_B, &deep);
    assert_ok(&out, "B reads /proj/b/sub/deep");
    assert_eq!(out.stdout, b"deep\n");
    // Nothing else: another directory, a name sharing the prefix string,
    // /shared (A's policy does not name B).
    assert_eacces(&cat(UID_B, &other), "B reads /proj/other/f2");
    assert_eacces(&cat(UID_B, &bb), "B reads /proj/bb/f3");
    assert_eacces(&cat(UID_B, &s), "B reads /shared/s");
    // A Decrypt grant does not allow creating files (GenerateDataKey).
    let newf = m.path("proj/b/new");
    assert_eacces(
        &as_uid(UID_B, r#"echo x > "$1""#, &[&newf]),
        "B creates /proj/b/new",
    );
    assert!(!newf.exists());
    // And A's policy does not reach /proj.
    assert_eacces(&cat(UID_A, &f1), "A reads /proj/b/f1");

    pf.assert_audited(PRINCIPAL_B, "Decrypt", "/proj/b/f1", None);
    pf.assert_audited(PRINCIPAL_B, "Decrypt", "/proj/b/sub/deep", None);
    for p in ["/proj/other/f2", "/proj/bb/f3", "/shared/s"] {
        pf.assert_audited(PRINCIPAL_B, "Decrypt", p, Some("AccessDeniedException"));
    }
    pf.assert_audited(
        PRINCIPAL_B,
        "GenerateDataKey",
        "/proj/b/new",
        Some("AccessDeniedException"),
    );
    pf.assert_audited(
        PRINCIPAL_A,
        "Decrypt",
        "/proj/b/f1",
        Some("AccessDeniedException"),
    );
    m.unmount();
}

#[test]
fn revoked_grant_stops_new_opens_but_not_open_handles() {
    let pf = PolicyFixture::new();
    let m = pf.mount();
    open_dir(&m, "proj/b");
    let f1 = root_file(&m, "proj/b/f1", b"held content\n");
    let f2 = root_file(&m, "proj/b/f2", b"second\n");
    let grant_id = pf.grant_b("/proj/b");
    // B reads (and so caches the key for REAUTH), and holds f1 open.
    assert_ok(&cat(UID_B, &f1), "B reads /proj/b/f1");
    assert_ok(&cat(UID_B, &f2), "B reads /proj/b/f2");
    let held = HeldOpen::start(UID_B, &f1);

    pf.fx
        .engine
        .revoke_grant(
            &root(),
            RevokeGrantRequest {
                key_id: pf.fx.key_id.clone(),
                grant_id,
            },
        )
        .unwrap();
    // New opens fail once the cached authorization is older than REAUTH.
    wait_until_denied(UID_B, &f1);
    wait_until_denied(UID_B, &f2);
    // The descriptor opened before the revocation keeps working.
    let (ok, data, err) = held.read_through_handle();
    assert!(ok, "read through the held handle failed: {err}");
    assert_eq!(data, b"held content\n");
    // And it stays revoked.
    assert_eacces(&cat(UID_B, &f1), "B reads /proj/b/f1 after revocation");

    pf.assert_audited(PRINCIPAL_B, "Decrypt", "/proj/b/f1", None);
    pf.assert_audited(
        PRINCIPAL_B,
        "Decrypt",
        "/proj/b/f1",
        Some("AccessDeniedException"),
    );
    pf.assert_audited(
        PRINCIPAL_B,
        "Decrypt",
        "/proj/b/f2",
        Some("AccessDeniedException"),
    );
    assert!(
        pf.audit("uid:0", false).iter().any(
            |r| r.str_at(&["eventName"]) == Some("RevokeGrant") && r.get("errorCode").is_none()
        ),
        "the RevokeGrant itself is not audited"
    );
    m.unmount();
}

#[test]
fn policy_change_stops_new_opens_of_uid_a() {
    let pf = PolicyFixture::new();
    pf.shared_only_policy_for_a();
    let m = pf.mount();
    let shared = open_dir(&m, "shared");
    let x = shared.join("x");
    assert_ok(
        &as_uid(UID_A, r#"echo mine > "$1""#, &[&x]),
        "A creates /shared/x",
    );
    assert_ok(&cat(UID_A, &x), "A reads /shared/x");
    let held = HeldOpen::start(UID_A, &x);
    // The administrator takes A's statement away while mounted.
    pf.put_policy(vec![]);
    wait_until_denied(UID_A, &x);
    assert_eacces(
        &as_uid(UID_A, r#"echo more > "$1""#, &[&shared.join("new")]),
        "A creates /shared/new after the policy change",
    );
    let (ok, data, err) = held.read_through_handle();
    assert!(ok, "read through the held handle failed: {err}");
    assert_eq!(data, b"mine\n");
    pf.assert_audited(
        PRINCIPAL_A,
        "Decrypt",
        "/shared/x",
        Some("AccessDeniedException"),
    );
    pf.assert_audited(
        PRINCIPAL_A,
        "GenerateDataKey",
        "/shared/new",
        Some("AccessDeniedException"),
    );
    m.unmount();
}

#[test]
fn rename_across_the_policy_boundary_is_refused() {
    let pf = PolicyFixture::new();
    pf.shared_only_policy_for_a();
    let m = pf.mount();
    let shared = open_dir(&m, "shared");
    let hr = open_dir(&m, "hr");
    let x = shared.join("x");
    assert_ok(
        &as_uid(UID_A, r#"echo payload > "$1""#, &[&x]),
        "A creates /shared/x",
    );

    // Out of /shared: ReEncryptTo under /hr/x is denied.
    let out = as_uid(UID_A, r#"mv "$1" "$2""#, &[&x, &hr.join("x")]);
    assert_eacces(&out, "A moves /shared/x to /hr/x");
    assert!(!hr.join("x").exists(), "/hr/x appeared");
    let out = cat(UID_A, &x);
    assert_ok(&out, "A reads /shared/x after the refused rename");
    assert_eq!(out.stdout, b"payload\n");
    assert_eq!(fs::read(&x).unwrap(), b"payload\n");
    assert!(
        !pf.fx.cipher.join(kmsfs::volume::JOURNAL_FILE_NAME).exists(),
        "a refused rename left its journal"
    );

    // Into /shared: ReEncryptFrom under /hr/y is denied (A may rename it as
    // far as POSIX goes: /hr is 0777 without the sticky bit).
    let y = root_file(&m, "hr/y", b"hr data\n");
    let out = as_uid(UID_A, r#"mv "$1" "$2""#, &[&y, &shared.join("y")]);
    assert_eacces(&out, "A moves /hr/y to /shared/y");
    assert!(!shared.join("y").exists());
    assert_eq!(fs::read(&y).unwrap(), b"hr data\n");

    // A directory with a file inside: every file's key must move.
    let d = shared.join("d");
    assert_ok(
        &as_uid(UID_A, r#"mkdir "$1" && echo inner > "$1/f""#, &[&d]),
        "A creates /shared/d/f",
    );
    let out = as_uid(UID_A, r#"mv "$1" "$2""#, &[&d, &hr.join("d")]);
    assert_eacces(&out, "A moves /shared/d to /hr/d");
    assert!(!hr.join("d").exists());
    let out = cat(UID_A, &d.join("f"));
    assert_ok(&out, "A reads /shared/d/f after the refused rename");
    assert_eq!(out.stdout, b"inner\n");

    // Onto an existing empty directory: the refused rename must leave the
    // target directory usable (its IV file was once dropped before the
    // ReEncrypt, so it could no longer be listed or written).
    let target = hr.join("target");
    fs::create_dir(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o777)).unwrap();
    let out = as_uid(UID_A, r#"mv -T "$1" "$2""#, &[&d, &target]);
    assert_eacces(&out, "A moves /shared/d onto the empty /hr/target");
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
    fs::write(target.join("z"), b"still usable\n").unwrap();
    assert_eq!(fs::read(target.join("z")).unwrap(), b"still usable\n");

    // Within /shared the rename works and the file reads at its new path.
    let x2 = shared.join("x2");
    assert_ok(
        &as_uid(UID_A, r#"mv "$1" "$2""#, &[&x, &x2]),
        "A moves /shared/x to /shared/x2",
    );
    assert!(!x.exists());
    let out = cat(UID_A, &x2);
    assert_ok(&out, "A reads /shared/x2");
    assert_eq!(out.stdout, b"payload\n");
    let e = shared.join("e");
    assert_ok(
        &as_uid(UID_A, r#"mv "$1" "$2""#, &[&d, &e]),
        "A moves /shared/d to /shared/e",
    );
    assert_eq!(cat(UID_A, &e.join("f")).stdout, b"inner\n");

    // ReEncrypt records carry the destination context.
    pf.assert_audited(
        PRINCIPAL_A,
        "ReEncrypt",
        "/hr/x",
        Some("AccessDeniedException"),
    );
    pf.assert_audited(
        PRINCIPAL_A,
        "ReEncrypt",
        "/shared/y",
        Some("AccessDeniedException"),
    );
    pf.assert_audited(
        PRINCIPAL_A,
        "ReEncrypt",
        "/hr/d/f",
        Some("AccessDeniedException"),
    );
    pf.assert_audited(PRINCIPAL_A, "ReEncrypt", "/shared/x2", None);
    pf.assert_audited(PRINCIPAL_A, "ReEncrypt", "/shared/e/f", None);
    // The refused ReEncrypt from /hr/y names the source in its parameters.
    assert!(
        pf.audit(PRINCIPAL_A, true).iter().any(|r| {
            r.str_at(&["eventName"]) == Some("ReEncrypt")
                && r.str_at(&["requestParameters", "sourceEncryptionContext", "kmsfs:path"])
                    == Some("/hr/y")
        }),
        "the refused ReEncrypt does not name its source path"
    );
    m.unmount();
}
