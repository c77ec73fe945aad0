//! `kmsfs mount --audit-flush-ms`: a mount whose audit trail flushes in
//! batches still records every open (with `--reauth-secs 0`, one Decrypt per
//! open) and leaves a trail that verifies; a bad value is refused. The mount
//! is unmounted by a guard, also when the test fails.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Env {
    tmp: tempfile::TempDir,
    engine: PathBuf,
    pass: PathBuf,
}

impl Env {
    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kmsfs"));
        for var in ["KMSFS_ENGINE", "KMSFS_PASSPHRASE_FILE", "KMSFS_KEY_FILE"] {
            c.env_remove(var);
        }
        c.arg("--engine")
            .arg(&self.engine)
            .arg("--passphrase-file")
            .arg(&self.pass)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Unmounts on drop, also when the test panics.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        if kmsfs::fuse::status::is_mounted(&self.0) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.0)
                .stderr(Stdio::null())
                .status();
        }
        if kmsfs::fuse::status::is_mounted(&self.0) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Whether a process whose command line names `mnt` and `--foreground` runs.
fn mount_process_alive(mnt: &Path) -> bool {
    let needle = mnt.to_str().unwrap();
    std::fs::read_dir("/proc").unwrap().any(|e| {
        let Ok(e) = e else { return false };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            return false;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.contains(&needle.as_bytes()) && args.contains(&&b"--foreground"[..])
    })
}

#[test]
fn batched_audit_mount_records_every_open_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let pass = tmp.path().join("passphrase");
    std::fs::write(&pass, "audit flush passphrase\n").unwrap();
    let env = Env {
        engine: tmp.path().join("engine"),
        pass,
        tmp,
    };
    let cipher = env.tmp.path().join("cipher");
    let mnt = env.tmp.path().join("mnt");
    let guard = MountGuard(mnt.clone());
    let (c, m) = (cipher.to_str().unwrap(), mnt.to_str().unwrap());
    let args = [
        "mount",
        "--init",
        "--kdf-memory-kib",
        "8",
        "--kdf-iterations",
        "1",
        "--reauth-secs",
        "0",
        "--audit-flush-ms",
        "20",
        c,
        m,
    ];
    env.ok(&args);
    let mnt = std::fs::canonicalize(&mnt).unwrap();
    for i in 0..5 {
        std::fs::write(mnt.join(format!("f{i}")), b"x").unwrap();
    }
    let opens = 20;
    for _ in 0..opens / 5 {
        for i in 0..5 {
            assert_eq!(std::fs::read(mnt.join(format!("f{i}"))).unwrap(), b"x");
        }
    }
    env.ok(&["unmount", mnt.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while mount_process_alive(&mnt) {
        assert!(Instant::now() < deadline, "mount process still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(guard);

    let decrypts: Vec<Value> = env
        .ok(&["audit", "show", "--event", "Decrypt"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| {
            r["requestParameters"]["encryptionContext"]["kmsfs:path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/f"))
        })
        .collect();
    // The cache is off: each open of an existing file asked the engine.
    assert!(decrypts.len() >= opens, "{} Decrypts", decrypts.len());
    let v = env.ok(&["audit", "verify", "--output", "text"]);
    assert!(v.trim_end().ends_with("valid"), "{v}");
}

#[test]
fn fail_audit_flush_ms_must_be_a_number() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env {
        engine: tmp.path().join("engine"),
        pass: tmp.path().join("passphrase"),
        tmp,
    };
    let out = env.run(&[
        "mount",
        "--audit-flush-ms",
        "soon",
        "/nonexistent-c",
        "/nonexistent-m",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--audit-flush-ms"));
}
