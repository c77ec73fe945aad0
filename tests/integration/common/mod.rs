//! Shared helpers for the mount tests: an engine with a master key, a fresh
//! volume in a temp dir, and an in-process mount that always unmounts on drop.
// Test helpers: panicking on a broken fixture is the right failure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use kms_engine::audit::NullSink;
use kms_engine::{CreateKeyRequest, Engine, KdfParams, Principal, RootKeySource, SystemClock};
use kmsfs::format::NamesMode;
use kmsfs::fuse::{Core, FsOptions, KmsFs};
use kmsfs::keys::KeyService;
use kmsfs::keys::cache::CacheConfig;
use kmsfs::volume::{self, InitOptions, Volume};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use zeroize::Zeroizing;

/// An engine, a master key and an initialized volume.
pub struct Fixture {
    pub tmp: TempDir,
    pub cipher: PathBuf,
    pub mnt: PathBuf,
    pub engine_dir: PathBuf,
    pub engine: Arc<Engine>,
    pub key_id: String,
}

pub fn root() -> Principal {
    Principal::from_ids(0, 0, vec![])
}

impl Fixture {
    pub fn new(block_size: u32, names: NamesMode) -> Fixture {
        let _ = env_logger::builder().is_test(true).try_init();
        let tmp = tempfile::tempdir().expect("tempdir");
        let cipher = tmp.path().join("cipher");
        let mnt = tmp.path().join("mnt");
        let engine_dir = tmp.path().join("engine");
        std::fs::create_dir(&cipher).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        let engine = Arc::new(
            Engine::create(
                &engine_dir,
                RootKeySource::Passphrase(Zeroizing::new("test passphrase".into())),
                KdfParams::insecure_for_tests(),
                Arc::new(SystemClock),
                Arc::new(NullSink),
            )
            .expect("engine"),
        );
        let key_id = engine
            .create_key(&root(), CreateKeyRequest::default())
            .expect("create key")
            .key_metadata
            .key_id;
        volume::init(
            &cipher,
            &engine,
            &root(),
            &InitOptions {
                master_key_id: key_id.clone(),
                block_size,
                names_mode: names,
                long_names: true,
                kms: None,
                write_only_key: None,
            },
        )
        .expect("init volume");
        Fixture {
            tmp,
            cipher,
            mnt,
            engine_dir,
            engine,
            key_id,
        }
    }

    /// Replace the master key's policy with one that keeps root as the admin
    /// and lets any principal use the key for file data.
    pub fn allow_everyone_file_access(&self) {
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": ["uid:0"]},
                 "Action": "kms:*", "Resource": "*"},
                {"Sid": "Everyone", "Effect": "Allow", "Principal": "*",
                 "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncrypt*"],
                 "Resource": "*"}
            ]
        });
        self.engine
            .put_key_policy(
                &root(),
                kms_engine::PutKeyPolicyRequest {
                    key_id: self.key_id.clone(),
                    policy_name: None,
                    policy: policy.to_string(),
                    bypass_policy_lockout_safety_check: None,
                },
            )
            .expect("put key policy");
    }

    pub fn mount(&self) -> Mounted {
        self.mount_with(FsOptions::default(), true)
    }

    pub fn mount_with(&self, opts: FsOptions, allow_other: bool) -> Mounted {
        self.mount_on(Arc::new(self.engine.clone()), opts, allow_other)
    }

    /// Mounts with `ks` as the key service (a wrapper around the engine).
    pub fn mount_on(&self, ks: Arc<dyn KeyService>, opts: FsOptions, allow_other: bool) -> Mounted {
        let vol = Volume::open(&self.cipher, &ks, &root()).expect("open volume");
        let read_only = opts.read_only;
        let core = Core::new(vol, ks, opts).expect("core");
        let fs = KmsFs::new(core);
        let core = fs.core.clone();
        let spec = kmsfs::fuse::mount::MountSpec {
            cipherdir: self.cipher.clone(),
            mountpoint: self.mnt.clone(),
            read_only,
            allow_other,
        };
        let session = kmsfs::fuse::mount::mount(fs, &spec)
            .and_then(|m| m.spawn())
            .expect("mount");
        Mounted {
            session: Some(session),
            mnt: self.mnt.clone(),
            core,
        }
    }

    pub fn short_reauth() -> FsOptions {
        FsOptions {
            read_only: false,
            cache: CacheConfig {
                reauth_interval: Duration::from_secs(5),
                ..Default::default()
            },
            background_wrap: None,
            ..Default::default()
        }
    }
}

/// A live mount; unmounted on drop, also when a test panics.
pub struct Mounted {
    session: Option<kmsfs::fuse::mount::Background>,
    pub mnt: PathBuf,
    pub core: Arc<Core>,
}

impl Mounted {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn unmount(mut self) {
        self.do_unmount();
    }

    fn do_unmount(&mut self) {
        if let Some(s) = self.session.take()
            && s.umount_and_join().is_err()
        {
            force_unmount(&self.mnt);
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.do_unmount();
    }
}

/// Lazy-unmounts whatever is mounted at `mnt` (best effort).
pub fn force_unmount(mnt: &Path) {
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(mnt)
        .stderr(std::process::Stdio::null())
        .status();
    let _ = std::process::Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(mnt)
        .stderr(std::process::Stdio::null())
        .status();
}

/// Every regular file below `dir` in the backing directory (not kmsfs's own).
pub fn backing_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        let n = name.to_string_lossy();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.extend(backing_files(&e.path()));
        } else if ft.is_file() && !n.starts_with("kmsfs.") {
            out.push(e.path());
        }
    }
    out
}

/// True when `cmd` is on PATH.
pub fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The `kmsfs` binary next to the test executable (built on demand).
pub fn kmsfs_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let bin = dir.join("kmsfs");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = std::process::Command::new(cargo)
            .args(["build", "-p", "mount-tool"])
            .status()
            .unwrap();
        assert!(st.success(), "building the kmsfs binary failed");
    }
    bin
}

/// True when `mnt` shows as a kmsfs mount.
pub fn is_mounted(mnt: &Path) -> bool {
    kmsfs::fuse::status::is_mounted(mnt)
}

impl Fixture {
    /// Writes the engine passphrase to a file and returns the global
    /// engine arguments for the `kmsfs` binary.
    pub fn engine_args(&self) -> Vec<std::ffi::OsString> {
        let pf = self.tmp.path().join("passphrase");
        std::fs::write(&pf, "test passphrase\n").unwrap();
        vec![
            "--engine".into(),
            self.engine_dir.clone().into(),
            "--passphrase-file".into(),
            pf.into(),
        ]
    }
}

/// A `kmsfs mount --foreground` child; killed and unmounted on drop.
pub struct ChildMount {
    pub child: std::process::Child,
    pub mnt: PathBuf,
}

impl ChildMount {
    pub fn start(fx: &Fixture) -> ChildMount {
        ChildMount::start_with(fx, |_| {})
    }

    /// Like [`ChildMount::start`], with the command adjusted by `setup`
    /// (environment, where stderr goes) before it starts.
    pub fn start_with(fx: &Fixture, setup: impl FnOnce(&mut std::process::Command)) -> ChildMount {
        let mut cmd = std::process::Command::new(kmsfs_bin());
        cmd.args(fx.engine_args())
            .arg("mount")
            .arg("--foreground")
            .arg(&fx.cipher)
            .arg(&fx.mnt);
        setup(&mut cmd);
        let child = cmd.spawn().unwrap();
        let mut cm = ChildMount {
            child,
            mnt: std::fs::canonicalize(&fx.mnt).unwrap(),
        };
        let start = std::time::Instant::now();
        while !is_mounted(&cm.mnt) {
            if let Ok(Some(st)) = cm.child.try_wait() {
                panic!("kmsfs mount exited early: {st}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "mount did not appear"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        cm
    }
}

impl Drop for ChildMount {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        force_unmount(&self.mnt);
    }
}
