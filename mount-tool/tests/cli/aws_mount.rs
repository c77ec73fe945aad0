//! Volumes on an AWS-KMS-compatible service (`kmsfs init --kms
//! http://127.0.0.1:PORT/KEY`, the client being the official aws-sdk-kms),
//! with moto_server as the service: real FUSE mounts, real processes.
//! Through a fault-injecting proxy: a stopped service turns new opens into
//! EIO (one log line per outage) while open files keep working and the
//! mount recovers by itself; throttling, 5xx and garbage answers are
//! retried, then EIO; a refusal (AccessDenied, a disabled key) is EACCES.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::aws_service::{AWS_ENV, FaultProxy, Mode, Moto};
use crate::mount_cli::MountGuard;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// moto and a proxy in front of it.
struct MotoService {
    moto: Moto,
    proxy: FaultProxy,
}

/// A service (`svc`, kept running), its URL and a key on it, the AWS
/// credentials for it, and the directories of one volume.
struct Setup<S> {
    svc: S,
    base: String,
    key: String,
    aws_env: Vec<(String, String)>,
    _tmp: tempfile::TempDir,
    cipher: PathBuf,
    mnt: PathBuf,
    runtime: PathBuf,
}

impl Setup<MotoService> {
    /// moto behind the proxy, with a new key.
    fn new() -> Setup<MotoService> {
        let moto = Moto::start();
        let proxy = FaultProxy::start(moto.port);
        let key = moto.create_key();
        let base = proxy.url();
        let env = AWS_ENV
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .to_vec();
        Setup::with(MotoService { moto, proxy }, base, key, env)
    }
}

impl<S> Setup<S> {
    fn with(svc: S, base: String, key: String, aws_env: Vec<(String, String)>) -> Setup<S> {
        let tmp = tempfile::tempdir().unwrap();
        let [cipher, mnt, runtime] = ["cipher", "mnt", "runtime"].map(|n| tmp.path().join(n));
        for d in [&mnt, &runtime] {
            std::fs::create_dir(d).unwrap();
        }
        let mnt = std::fs::canonicalize(&mnt).unwrap();
        Setup {
            svc,
            base,
            key,
            aws_env,
            _tmp: tmp,
            cipher,
            mnt,
            runtime,
        }
    }

    /// The volume's engine URL: the key on the service.
    fn kms_url(&self) -> String {
        format!("{}/{}", self.base, self.key)
    }

    /// `kmsfs ARGS` with the service's credentials in the environment, no
    /// engine named unless `kms` (a volume's recorded engine is followed).
    fn kmsfs(&self, args: &[&str], kms: Option<&str>) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"));
        for var in [
            "KMSFS_ENGINE",
            "KMSFS_PASSPHRASE_FILE",
            "KMSFS_KEY_FILE",
            "KMSFS_KMS",
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_KMS",
            "AWS_SESSION_TOKEN",
        ] {
            c.env_remove(var);
        }
        c.envs(self.aws_env.iter().map(|(k, v)| (k, v)));
        if let Some(url) = kms {
            c.env("KMSFS_KMS", url);
        }
        c.env("XDG_RUNTIME_DIR", &self.runtime)
            .env("HOME", "/nonexistent")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str], kms: Option<&str>) -> String {
        let out = self.kmsfs(args, kms);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn init(&self, extra: &[&str]) {
        let mut args = vec!["init", self.cipher.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.ok(&args, Some(&self.kms_url()));
    }

    /// A background mount of the volume (reauth 0: every open asks the
    /// service), on the engine the volume recorded.
    fn mount(&self) -> MountGuard {
        let guard = MountGuard::new(&self.mnt);
        let (c, m) = (self.cipher.to_str().unwrap(), self.mnt.to_str().unwrap());
        self.ok(&["mount", c, m, "--reauth-secs", "0"], None);
        guard
    }

    fn unmount(&self, guard: MountGuard) {
        self.ok(&["unmount", self.mnt.to_str().unwrap()], None);
        guard.wait_for_mount_process();
    }

    fn file(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    /// The service counters `kmsfs status` shows for this mount.
    fn service_stats(&self) -> serde_json::Value {
        let out = self.ok(&["status", "--output", "json"], None);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let m = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountpoint"] == self.mnt.to_str().unwrap())
            .unwrap()
            .clone();
        m["status"]["service"].clone()
    }

    /// The service counters once `ok` holds for them (the mount writes its
    /// status file once a second), or a failure showing the last ones.
    fn service_stats_when(&self, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let stats = self.service_stats();
            if ok(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "kmsfs status shows {stats}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn mount_log(&self) -> String {
        let mut text = String::new();
        for e in std::fs::read_dir(self.runtime.join("kmsfs")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "log") {
                text.push_str(&std::fs::read_to_string(p).unwrap());
            }
        }
        text
    }
}

fn cat(p: &Path) -> Output {
    Command::new("cat")
        .arg(p)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn content(i: usize) -> String {
    format!("file {i} on a remote key service\n").repeat(i % 7 + 1)
}

#[test]
fn a_volume_on_an_aws_kms_service_reads_back_after_remount_and_binds_paths() {
    let s = Setup::new();
    s.init(&["--plaintext-names"]);
    // The config records the service and the key's ARN, never a credential.
    let conf = std::fs::read_to_string(s.cipher.join("kmsfs.conf")).unwrap();
    let arn = format!("arn:aws:kms:us-east-1:123456789012:key/{}", s.key);
    assert!(
        conf.contains(&format!("\"kms\": \"{}/{arn}\"", s.base)),
        "{conf}"
    );
    assert!(
        conf.contains(&format!("\"master_key_id\": \"{arn}\"")),
        "{conf}"
    );
    for (_, secret) in AWS_ENV.iter().filter(|(k, _)| k.contains("SECRET")) {
        assert!(!conf.contains(secret), "{conf}");
    }

    let guard = s.mount();
    std::fs::create_dir_all(s.file("d/e")).unwrap();
    for i in 0..40 {
        std::fs::write(s.file(&format!("d/e/f{i}")), content(i)).unwrap();
    }
    std::fs::write(s.file("a"), "alpha\n").unwrap();
    std::fs::write(s.file("b"), "beta\n").unwrap();
    // A rename re-wraps the file's key (ReEncrypt); a directory rename
    // re-wraps every file below it.
    std::fs::rename(s.file("a"), s.file("a2")).unwrap();
    std::fs::rename(s.file("d"), s.file("d2")).unwrap();
    let stats = s.service_stats_when(|v| v["requests"].as_u64().is_some_and(|n| n >= 44));
    assert_eq!(stats["errors"], 0, "{stats}");
    s.unmount(guard);

    let guard = s.mount();
    for i in 0..40 {
        let got = std::fs::read_to_string(s.file(&format!("d2/e/f{i}"))).unwrap();
        assert_eq!(got, content(i));
    }
    assert_eq!(std::fs::read_to_string(s.file("a2")).unwrap(), "alpha\n");
    assert_eq!(std::fs::read_to_string(s.file("b")).unwrap(), "beta\n");
    s.unmount(guard);

    // A ciphertext moved to another path does not decrypt there: its data
    // key is bound to the path it was written at.
    std::fs::copy(s.cipher.join("a2"), s.cipher.join("b")).unwrap();
    let guard = s.mount();
    let r = cat(&s.file("b"));
    assert!(!r.status.success(), "a moved ciphertext was read");
    assert_eq!(std::fs::read_to_string(s.file("a2")).unwrap(), "alpha\n");
    s.unmount(guard);

    // A service that refuses the mount (AccessDenied, given by the proxy)
    // stops it with the service's own error.
    s.svc.proxy.set(Mode::Answer(
        400,
        r#"{"__type":"AccessDeniedException","message":"not allowed"}"#.into(),
    ));
    let (c, m) = (s.cipher.to_str().unwrap(), s.mnt.to_str().unwrap());
    let out = s.kmsfs(&["mount", c, m], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("AccessDenied"), "{}", stderr(&out));
    drop(s.svc.moto);
}

#[test]
fn a_mount_on_an_aws_kms_service_survives_outages_and_maps_refusals() {
    let s = Setup::new();
    s.init(&[]);
    let _guard = s.mount();
    let (a, b) = (s.file("a"), s.file("b"));
    std::fs::write(&a, "hello\n").unwrap();
    std::fs::write(&b, "world\n").unwrap();

    // A reader that opens `a` now and reads it when told.
    let mut reader = Command::new("sh")
        .arg("-c")
        .arg(r#"exec 3<"$1" && echo opened && read go && cat <&3"#)
        .arg("sh")
        .arg(&a)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(reader.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "opened\n");

    // The service stopped: new opens and creates fail with EIO, twice in
    // one episode, and nothing hangs.
    s.svc.proxy.set(Mode::Refuse);
    for _ in 0..2 {
        let r = cat(&b);
        assert!(!r.status.success(), "opened b without the service");
        assert!(stderr(&r).contains("Input/output error"), "{}", stderr(&r));
    }
    let e = std::fs::write(s.file("new"), "x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(5), "{e}"); // EIO
    // The file opened before keeps working.
    writeln!(reader.stdin.take().unwrap(), "go").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(reader.wait().unwrap().success());
    assert_eq!(rest, "hello\n");

    // The service back: the mount recovers without a remount.
    s.svc.proxy.set(Mode::Forward(Duration::ZERO));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = cat(&b);
        if r.status.success() {
            assert_eq!(String::from_utf8_lossy(&r.stdout), "world\n");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", stderr(&r));
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = s.mount_log();
    assert_eq!(log.matches("is unreachable").count(), 1, "{log}");
    assert_eq!(log.matches("reachable again").count(), 1, "{log}");
    let before = s.service_stats_when(|v| v["requests"].is_u64());

    // Throttling, 5xx and garbage are retried, then EIO.
    for (status, body) in [
        (
            400,
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ),
        (500, r#"{"__type":"KMSInternalException","message":"boom"}"#),
        (200, "this is not JSON"),
    ] {
        s.svc.proxy.set(Mode::Answer(status, body.into()));
        let r = cat(&b);
        assert!(
            stderr(&r).contains("Input/output error"),
            "{status}: {}",
            stderr(&r)
        );
        s.svc.proxy.set(Mode::Forward(Duration::ZERO));
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "world\n");
    }
    let delta = |after: &serde_json::Value, k: &str| {
        after[k]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(before[k].as_u64().unwrap())
    };
    // Each of the three failed after all its attempts (4: 3 retries).
    s.service_stats_when(|after| {
        delta(after, "throttles") >= 2
            && delta(after, "retries") >= 6
            && delta(after, "errors") >= 3
    });

    // A refusal is EACCES, at once: AccessDenied, and what the service
    // answers for a disabled key (moto itself does not refuse data-key
    // calls on a disabled key, so the proxy gives its answer).
    for exception in ["AccessDeniedException", "DisabledException"] {
        let body = format!(r#"{{"__type":"{exception}","message":"refused"}}"#);
        s.svc.proxy.set(Mode::Answer(400, body));
        let r = cat(&b);
        assert!(
            stderr(&r).contains("Permission denied"),
            "{exception}: {}",
            stderr(&r)
        );
    }
    // Nothing written was lost.
    s.svc.proxy.set(Mode::Forward(Duration::ZERO));
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "hello\n");
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "world\n");
    assert!(!s.file("new").exists());
}

/// This project's own AWS JSON 1.1 endpoint over HTTPS (its self-signed
/// certificate trusted through AWS_CA_BUNDLE; SigV4 with an access key the
/// engine issued) on loopback, over an engine in this process.
struct EngineService {
    engine: std::sync::Arc<kms_engine::Engine>,
    me: kms_engine::Principal,
    _running: kms_engine::service::http::RunningEndpoint,
    _dir: tempfile::TempDir,
}

impl EngineService {
    fn call(&self, op: &str, req: serde_json::Value) -> serde_json::Value {
        self.engine.dispatch(&self.me, op, req).unwrap()
    }
}

impl Setup<EngineService> {
    fn on_engine() -> Setup<EngineService> {
        use kms_engine::service::http::{Endpoint, Limits, RunningEndpoint, SigV4Authenticator};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(
            kms_engine::Engine::create(
                &dir.path().join("engine"),
                kms_engine::RootKeySource::Key(zeroize::Zeroizing::new([7; 32])),
                kms_engine::KdfParams::insecure_for_tests(),
                Arc::new(kms_engine::SystemClock),
                Arc::new(kms_engine::audit::MemorySink::default()),
            )
            .unwrap(),
        );
        let me = kms_engine::Principal::current_process();
        let cert =
            kms_engine::service::http::tls::self_signed(&dir.path().join("engine"), &[]).unwrap();
        let endpoint = Endpoint::new(
            engine.clone(),
            Arc::new(SigV4Authenticator::new(engine.clone())),
            Some(cert.config.clone()),
            Limits::default(),
        );
        let running = RunningEndpoint::start(endpoint, "127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let base = format!("https://localhost:{}", running.addr().port());
        let svc = EngineService {
            engine,
            me,
            _running: running,
            _dir: dir,
        };
        let key = svc.call("CreateKey", serde_json::json!({}))["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_string();
        let uid = nix::unistd::geteuid().as_raw();
        let ak = svc.call(
            "CreateAccessKey",
            serde_json::json!({"Principal": format!("uid:{uid}")}),
        );
        let ak = &ak["AccessKey"];
        let env = [
            ("AWS_ACCESS_KEY_ID", ak["AccessKeyId"].as_str().unwrap()),
            (
                "AWS_SECRET_ACCESS_KEY",
                ak["SecretAccessKey"].as_str().unwrap(),
            ),
            ("AWS_REGION", kms_engine::service::http::sigv4::arn_region()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CA_BUNDLE", cert.cert_path.to_str().unwrap()),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec();
        Setup::with(svc, base, key, env)
    }
}

#[test]
fn a_volume_on_this_projects_endpoint_follows_key_state_and_path_policies() {
    let s = Setup::on_engine();
    s.init(&["--plaintext-names"]);
    let conf = std::fs::read_to_string(s.cipher.join("kmsfs.conf")).unwrap();
    assert!(
        conf.contains(&format!("\"kms\": \"{}/arn:", s.base)),
        "{conf}"
    );
    assert!(conf.contains(&format!(":key/{}\"", s.key)), "{conf}");
    let guard = s.mount();
    std::fs::create_dir_all(s.file("secret")).unwrap();
    std::fs::create_dir_all(s.file("public")).unwrap();
    std::fs::write(s.file("secret/s"), "classified\n").unwrap();
    std::fs::write(s.file("public/p"), "open\n").unwrap();
    std::fs::write(s.file("a"), "alpha\n").unwrap();
    std::fs::rename(s.file("a"), s.file("a2")).unwrap();
    std::fs::rename(s.file("public"), s.file("pub2")).unwrap();
    assert_eq!(std::fs::read_to_string(s.file("pub2/p")).unwrap(), "open\n");

    // A disabled key stops new opens (reauth 0), and enabling it again
    // lets them through.
    s.svc
        .call("DisableKey", serde_json::json!({"KeyId": s.key}));
    let r = cat(&s.file("pub2/p"));
    assert!(stderr(&r).contains("Permission denied"), "{}", stderr(&r));
    s.svc.call("EnableKey", serde_json::json!({"KeyId": s.key}));
    assert_eq!(std::fs::read_to_string(s.file("pub2/p")).unwrap(), "open\n");

    // A key policy that denies Decrypt under /secret/ refuses that path
    // only: the encryption context carries the path.
    let uid = nix::unistd::geteuid().as_raw();
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": format!("uid:{uid}")},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "NoSecrets", "Effect": "Deny", "Principal": {"AWS": "*"},
         "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": "/secret/*"}}}
    ]});
    s.svc.call(
        "PutKeyPolicy",
        serde_json::json!({"KeyId": s.key, "PolicyName": "default", "Policy": policy.to_string()}),
    );
    let r = cat(&s.file("secret/s"));
    assert!(stderr(&r).contains("Permission denied"), "{}", stderr(&r));
    assert_eq!(std::fs::read_to_string(s.file("pub2/p")).unwrap(), "open\n");
    assert_eq!(std::fs::read_to_string(s.file("a2")).unwrap(), "alpha\n");
    s.unmount(guard);

    // A ciphertext moved to another path fails there; files read back
    // after a remount.
    std::fs::copy(s.cipher.join("a2"), s.cipher.join("pub2/p")).unwrap();
    let _guard = s.mount();
    let r = cat(&s.file("pub2/p"));
    assert!(!r.status.success(), "a moved ciphertext was read");
    assert_eq!(std::fs::read_to_string(s.file("a2")).unwrap(), "alpha\n");
    let stats = s.service_stats_when(|v| v["requests"].as_u64().is_some_and(|n| n >= 2));
    assert_eq!(stats["throttles"], 0, "{stats}");
    drop(_guard);

    // Without the CA bundle the self-signed certificate is not trusted.
    let mut untrusting = s;
    untrusting.aws_env.retain(|(k, _)| k != "AWS_CA_BUNDLE");
    let (c, m) = (
        untrusting.cipher.to_str().unwrap(),
        untrusting.mnt.to_str().unwrap(),
    );
    let out = untrusting.kmsfs(&["mount", c, m], None);
    assert!(
        !out.status.success(),
        "mounted without trusting the endpoint"
    );
    assert!(
        stderr(&out).contains("invalid peer certificate"),
        "{}",
        stderr(&out)
    );
}

/// Runs `script` with `sh -c` as system account `user` (uid, gid and groups).
fn as_user(user: &str, script: &str) -> Output {
    Command::new("setpriv")
        .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
        .args(["sh", "-c", script])
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The uid of system account `name`, created (no home, no login) when
/// missing; useradd's 9 means another test process created it first.
fn system_account(name: &str) -> u32 {
    let id = || Command::new("id").args(["-u", name]).output().unwrap();
    if !id().status.success() {
        let st = Command::new("useradd")
            .args(["--system", "-M", "-U", "-s", "/usr/sbin/nologin", name])
            .status()
            .unwrap();
        assert!(st.success() || st.code() == Some(9), "useradd {name}: {st}");
    }
    String::from_utf8(id().stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_profile_map_gives_each_local_user_a_principal_of_their_own_at_the_service() {
    use std::os::unix::fs::PermissionsExt;
    let (alice, bob) = ("kmsfst-alice", "kmsfst-bob");
    let (alice_uid, bob_uid) = (system_account(alice), system_account(bob));
    let mut s = Setup::on_engine();
    std::fs::set_permissions(s._tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    s.init(&["--plaintext-names"]);
    // Two access keys, for two service principals that are not the mount's.
    let (alice_principal, bob_principal) = ("uid:4001", "uid:4002");
    let mut creds = String::new();
    for (profile, principal) in [("alice", alice_principal), ("bob", bob_principal)] {
        let ak = s.svc.call(
            "CreateAccessKey",
            serde_json::json!({ "Principal": principal }),
        );
        let ak = &ak["AccessKey"];
        creds.push_str(&format!(
            "[{profile}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            ak["AccessKeyId"].as_str().unwrap(),
            ak["SecretAccessKey"].as_str().unwrap()
        ));
    }
    let creds_file = s._tmp.path().join("credentials");
    std::fs::write(&creds_file, creds).unwrap();
    s.aws_env.push((
        "AWS_SHARED_CREDENTIALS_FILE".into(),
        creds_file.to_str().unwrap().into(),
    ));
    s.aws_env.push((
        "AWS_CONFIG_FILE".into(),
        s._tmp.path().join("no-config").to_str().unwrap().into(),
    ));
    // The mount's own principal administers the key; alice's may use it
    // for file data, bob's is denied.
    let me = nix::unistd::geteuid().as_raw();
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": format!("uid:{me}")},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "Alice", "Effect": "Allow", "Principal": {"AWS": alice_principal},
         "Action": ["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt", "kms:ReEncrypt*"],
         "Resource": "*"},
        {"Sid": "NotBob", "Effect": "Deny", "Principal": {"AWS": bob_principal},
         "Action": "kms:*", "Resource": "*"}
    ]});
    s.svc.call(
        "PutKeyPolicy",
        serde_json::json!({"KeyId": s.key, "PolicyName": "default", "Policy": policy.to_string()}),
    );
    let map = format!("{alice}=alice,{bob_uid}=bob");
    let (c, m) = (s.cipher.to_str().unwrap(), s.mnt.to_str().unwrap());
    // A profile that does not exist is refused at mount time, by name.
    let wrong = MountGuard::new(&s.mnt);
    let out = s.kmsfs(
        &[
            "mount",
            c,
            m,
            "--allow-other",
            "--aws-profile-map",
            "1=nobody-here",
        ],
        None,
    );
    assert!(!out.status.success(), "mounted with a missing profile");
    assert!(stderr(&out).contains("nobody-here"), "{}", stderr(&out));
    drop(wrong);

    let guard = MountGuard::new(&s.mnt);
    s.ok(
        &[
            "mount",
            c,
            m,
            "--allow-other",
            "--reauth-secs",
            "0",
            "--aws-profile-map",
            &map,
        ],
        None,
    );
    std::fs::create_dir(s.file("shared")).unwrap();
    std::fs::set_permissions(s.file("shared"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let a = s.file("shared/a");
    let a = a.to_str().unwrap();
    let w = as_user(
        alice,
        &format!("echo from-alice > {a} && chmod 644 {a} && cat {a}"),
    );
    assert!(w.status.success(), "alice: {}", stderr(&w));
    assert_eq!(String::from_utf8_lossy(&w.stdout), "from-alice\n");
    // Bob's calls go out as bob's principal: denied at the service, though
    // POSIX lets him read the file.
    let r = as_user(bob, &format!("cat {a}"));
    assert!(!r.status.success(), "bob read alice's file");
    assert!(stderr(&r).contains("Permission denied"), "{}", stderr(&r));
    // A file bob creates never gets a key (his Encrypt is refused).
    let b = s.file("shared/b");
    let b = b.to_str().unwrap();
    let r = as_user(bob, &format!("echo from-bob > {b}; cat {b}"));
    assert!(stderr(&r).contains("Permission denied"), "{}", stderr(&r));
    // Root is not mapped: the mount's own credentials.
    assert_eq!(
        std::fs::read_to_string(s.file("shared/a")).unwrap(),
        "from-alice\n"
    );
    s.unmount(guard);
    assert!(alice_uid != bob_uid);

    // Without the map the service sees the mount's principal for everyone:
    // bob reads alice's file (only POSIX permissions tell them apart).
    let guard = MountGuard::new(&s.mnt);
    s.ok(
        &["mount", c, m, "--allow-other", "--reauth-secs", "0"],
        None,
    );
    let r = as_user(bob, &format!("cat {a}"));
    assert!(r.status.success(), "bob: {}", stderr(&r));
    assert_eq!(String::from_utf8_lossy(&r.stdout), "from-alice\n");
    s.unmount(guard);
}

/// Polls `f` until it returns `Some` (the other mount's kernel caches
/// entries and attributes for 1 s), failing after 20 s with `what`.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_mounts_of_one_cipher_directory_see_what_the_admin_guide_promises() {
    let s = Setup::on_engine();
    s.init(&[]);
    let mnt_b = s._tmp.path().join("mnt-b");
    std::fs::create_dir(&mnt_b).unwrap();
    let mnt_b = std::fs::canonicalize(&mnt_b).unwrap();
    let guard_a = s.mount();
    let guard_b = MountGuard::new(&mnt_b);
    let c = s.cipher.to_str().unwrap();
    s.ok(
        &["mount", c, mnt_b.to_str().unwrap(), "--reauth-secs", "0"],
        None,
    );
    let (a, b) = (|p: &str| s.file(p), |p: &str| mnt_b.join(p));

    // Written and closed on A: readable on B at once (its key is wrapped in
    // the background on A; B waits for the final header).
    std::fs::create_dir(a("d")).unwrap();
    for i in 0..20 {
        std::fs::write(a(&format!("d/f{i}")), content(i)).unwrap();
    }
    for i in 0..20 {
        assert_eq!(
            std::fs::read_to_string(b(&format!("d/f{i}"))).unwrap(),
            content(i)
        );
    }
    // Rewritten on A: B reads the new content at its next open.
    std::fs::write(a("d/f0"), "second version\n").unwrap();
    eventually("B never saw the new content", || {
        (std::fs::read_to_string(b("d/f0")).ok()? == "second version\n").then_some(())
    });
    // Renamed on A (its key re-wrapped for the new path): B finds it under
    // the new name and no longer under the old one once its entry expired.
    std::fs::rename(a("d/f1"), a("d/g1")).unwrap();
    std::fs::rename(a("d"), a("e")).unwrap();
    eventually("B still sees the old names", || {
        (!b("d").exists() && !b("e/f1").exists()).then_some(())
    });
    assert_eq!(std::fs::read_to_string(b("e/g1")).unwrap(), content(1));
    assert_eq!(std::fs::read_to_string(b("e/f2")).unwrap(), content(2));
    // Both ways: made on B, read on A; removed on B, gone on A.
    std::fs::write(b("e/from-b"), "hello from B\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(a("e/from-b")).unwrap(),
        "hello from B\n"
    );
    std::fs::remove_file(b("e/f3")).unwrap();
    eventually("A still sees a file B removed", || {
        (!a("e/f3").exists()).then_some(())
    });
    // A file open on B keeps reading (its key is in B's handle) after A
    // renamed it.
    let mut held = std::fs::File::open(b("e/f4")).unwrap();
    std::fs::rename(a("e/f4"), a("e/h4")).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut held, &mut text).unwrap();
    assert_eq!(text, content(4));
    drop(held);
    s.ok(&["unmount", mnt_b.to_str().unwrap()], None);
    guard_b.wait_for_mount_process();
    s.unmount(guard_a);
    // Everything both wrote reads back on one mount.
    let _guard = s.mount();
    assert_eq!(
        std::fs::read_to_string(s.file("e/from-b")).unwrap(),
        "hello from B\n"
    );
    assert_eq!(std::fs::read_to_string(s.file("e/h4")).unwrap(), content(4));
    assert_eq!(
        std::fs::read_to_string(s.file("e/f0")).unwrap(),
        "second version\n"
    );
}

#[test]
fn a_slow_or_garbled_service_fails_opens_within_the_timeout_and_loses_no_new_file() {
    let s = Setup::new();
    s.init(&[]);
    let guard = MountGuard::new(&s.mnt);
    let (c, m) = (s.cipher.to_str().unwrap(), s.mnt.to_str().unwrap());
    s.ok(
        &["mount", c, m, "--reauth-secs", "0", "--kms-timeout", "2"],
        None,
    );
    std::fs::write(s.file("a"), "hello\n").unwrap();
    std::fs::write(s.file("b"), "world\n").unwrap();
    assert_eq!(std::fs::read_to_string(s.file("b")).unwrap(), "world\n");
    let mut held = std::fs::File::open(s.file("a")).unwrap();

    // Slower than a call may take (2 s, attempts of 1 s): a file created
    // now is kept (its key waits for the service), an open fails with EIO,
    // a create once the service is known to be down fails with EIO, the
    // file already open keeps reading.
    s.svc.proxy.set(Mode::Forward(Duration::from_secs(3)));
    std::fs::write(s.file("slow"), "written while the service was slow\n").unwrap();
    let r = cat(&s.file("b"));
    assert!(!r.status.success(), "read b through a stalled service");
    assert!(stderr(&r).contains("Input/output error"), "{}", stderr(&r));
    let e = std::fs::write(s.file("refused"), "x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(5), "{e}");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut held, &mut text).unwrap();
    assert_eq!(text, "hello\n");

    // Back: opens work again, the file made while slow reads back.
    s.svc.proxy.set(Mode::Forward(Duration::ZERO));
    eventually("no recovery", || {
        cat(&s.file("b")).status.success().then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(s.file("slow")).unwrap(),
        "written while the service was slow\n"
    );
    // Garbage answers while a new file's key is wrapped: retried until the
    // service answers properly.
    s.svc
        .proxy
        .set(Mode::Answer(200, "this is not JSON".into()));
    std::fs::write(
        s.file("garbled"),
        "written while the answers were garbage\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    s.svc.proxy.set(Mode::Forward(Duration::ZERO));
    let garbled = std::fs::read_to_string(s.file("garbled"));
    assert_eq!(
        garbled
            .as_deref()
            .map_err(|e| format!("{e}: {}", s.mount_log())),
        Ok("written while the answers were garbage\n")
    );
    assert!(!s.file("refused").exists());
    drop(held);
    s.unmount(guard);

    // Nothing written was lost.
    let _guard = s.mount();
    for (f, text) in [
        ("a", "hello\n"),
        ("b", "world\n"),
        ("slow", "written while the service was slow\n"),
        ("garbled", "written while the answers were garbage\n"),
    ] {
        assert_eq!(std::fs::read_to_string(s.file(f)).unwrap(), text, "{f}");
    }
    let log = s.mount_log();
    assert!(!log.contains("could not be wrapped"), "{log}");
}

#[test]
fn tampering_on_a_volume_on_this_projects_endpoint_gives_eio_never_plaintext() {
    use std::os::unix::fs::FileExt;
    let s = Setup::on_engine();
    s.init(&["--plaintext-names"]);
    let guard = s.mount();
    for name in ["flip", "cut", "swap1", "swap2", "key"] {
        std::fs::write(s.file(name), format!("{name}: {}", content(9))).unwrap();
    }
    s.unmount(guard);
    let backing = |n: &str| s.cipher.join(n);
    let open_rw = |n: &str| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(backing(n))
            .unwrap()
    };
    // A content byte, the file cut to its header, two headers swapped, a
    // byte of the wrapped key.
    let f = open_rw("flip");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 150).unwrap();
    f.write_all_at(&[b[0] ^ 1], 150).unwrap();
    open_rw("cut").set_len(128).unwrap();
    let (h1, h2) = (open_rw("swap1"), open_rw("swap2"));
    let (mut x, mut y) = ([0u8; 128], [0u8; 128]);
    h1.read_exact_at(&mut x, 0).unwrap();
    h2.read_exact_at(&mut y, 0).unwrap();
    h1.write_all_at(&y, 0).unwrap();
    h2.write_all_at(&x, 0).unwrap();
    let k = open_rw("key");
    k.read_exact_at(&mut b, 40).unwrap();
    k.write_all_at(&[b[0] ^ 0x80], 40).unwrap();
    let _guard = s.mount();
    for name in ["flip", "cut", "swap1", "swap2", "key"] {
        let r = cat(&s.file(name));
        assert!(!r.status.success(), "{name} read after tampering");
        assert!(
            stderr(&r).contains("Input/output error"),
            "{name}: {}",
            stderr(&r)
        );
        assert!(r.stdout.is_empty() || !String::from_utf8_lossy(&r.stdout).contains(name));
    }
}

#[test]
fn a_directory_rename_cut_short_on_this_projects_endpoint_is_finished_at_the_next_mount() {
    let mut s = Setup::on_engine();
    s.init(&["--plaintext-names"]);
    // The mount process aborts after the backing rename and one of the
    // three header rewrites (a debug-build crash point).
    s.aws_env.push(("KMSFS_FAULT_RENAME".into(), "1".into()));
    let guard = s.mount();
    std::fs::create_dir(s.file("d")).unwrap();
    for i in 0..3 {
        std::fs::write(s.file(&format!("d/f{i}")), content(i)).unwrap();
    }
    assert!(std::fs::rename(s.file("d"), s.file("e")).is_err());
    assert!(s.cipher.join("kmsfs.journal").exists());
    drop(guard);
    s.aws_env.retain(|(k, _)| k != "KMSFS_FAULT_RENAME");
    // The next mount rolls the journal forward: every file opens at its
    // new path (its key re-wrapped there by the service), none at the old.
    let _guard = s.mount();
    assert!(!s.cipher.join("kmsfs.journal").exists());
    for i in 0..3 {
        assert_eq!(
            std::fs::read_to_string(s.file(&format!("e/f{i}"))).unwrap(),
            content(i)
        );
    }
    assert!(!s.file("d").exists());
}

#[test]
fn a_write_only_volume_on_this_projects_endpoint_goes_through_the_aws_sdk() {
    let s = Setup::on_engine();
    let rsa = s.svc.call(
        "CreateKey",
        serde_json::json!({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}),
    )["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    // init asks GetPublicKey through the SDK and records the key's ARN.
    s.init(&["--write-only-key", &rsa]);
    let conf = std::fs::read_to_string(s.cipher.join("kmsfs.conf")).unwrap();
    assert!(
        conf.contains(&format!("\"write_only_key\": \"{rsa}\"")),
        "{conf}"
    );
    let uid = nix::unistd::geteuid().as_raw();
    let put = |deny_decrypt: bool| {
        let mut statements = vec![serde_json::json!({"Sid": "Admin", "Effect": "Allow",
            "Principal": {"AWS": format!("uid:{uid}")}, "Action": "kms:*", "Resource": "*"})];
        if deny_decrypt {
            statements.push(serde_json::json!({"Sid": "WriteOnly", "Effect": "Deny",
                "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}));
        }
        let policy = serde_json::json!({"Version": "2012-10-17", "Statement": statements});
        s.svc.call(
            "PutKeyPolicy",
            serde_json::json!({"KeyId": rsa, "PolicyName": "default",
                               "Policy": policy.to_string()}),
        );
    };
    put(true);
    let guard = s.mount();
    std::fs::write(s.file("log.txt"), "line 1\n").unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.file("log.txt"))
        .unwrap();
    f.write_all(b"line 2\n").unwrap();
    drop(f);
    std::fs::write(s.file("other.txt"), "another file\n").unwrap();
    let r = cat(&s.file("log.txt"));
    assert!(stderr(&r).contains("Permission denied"), "{}", stderr(&r));
    s.unmount(guard);

    // Allowed to Decrypt (the SDK's Decrypt with KeyId and
    // EncryptionAlgorithm RSAES_OAEP_SHA_256): everything reads back, and
    // a ciphertext moved to another path does not.
    put(false);
    let guard = s.mount();
    assert_eq!(
        std::fs::read_to_string(s.file("log.txt")).unwrap(),
        "line 1\nline 2\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.file("other.txt")).unwrap(),
        "another file\n"
    );
    s.unmount(guard);
    let backing: Vec<PathBuf> = std::fs::read_dir(&s.cipher)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("kmsfs.")
        })
        .collect();
    assert_eq!(backing.len(), 2, "{backing:?}");
    let (log_b, other_b) = if std::fs::metadata(&backing[0]).unwrap().len() == 128 + 28 + 14 {
        (&backing[0], &backing[1])
    } else {
        (&backing[1], &backing[0])
    };
    std::fs::copy(other_b, log_b).unwrap();
    let _guard = s.mount();
    let r = cat(&s.file("log.txt"));
    assert!(stderr(&r).contains("Input/output error"), "{}", stderr(&r));
}
