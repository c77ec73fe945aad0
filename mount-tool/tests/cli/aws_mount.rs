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
