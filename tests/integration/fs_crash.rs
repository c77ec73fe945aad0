//! Crash safety and the `kmsfs` binary: init/mount/status/unmount through
//! the CLI, and `kill -9` of the mount process during heavy writes, after
//! which every fsynced file reads back intact.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{ChildMount, Fixture, force_unmount, is_mounted, kmsfs_bin};
use kmsfs::format::NamesMode;
use std::fs;
use std::io::Write;
use std::process::Command;

#[test]
fn kill_9_during_writes_keeps_fsynced_data() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let mut cm = ChildMount::start(&fx);
    let mut synced: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..24u32 {
        let name = format!("synced-{i}");
        let data: Vec<u8> = (0..(64 * 1024 + i as usize * 777))
            .map(|k| (k as u32).wrapping_mul(31).wrapping_add(i) as u8)
            .collect();
        let mut f = fs::File::create(fx.mnt.join(&name)).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        synced.push((name, data));
    }
    // Heavy unsynced writes in flight while the process dies.
    let mnt = fx.mnt.clone();
    let writer = std::thread::spawn(move || {
        let mut n = 0u64;
        if let Ok(mut f) = fs::File::create(mnt.join("in-flight")) {
            while f.write_all(&[0x5a; 256 * 1024]).is_ok() {
                n += 1;
                if n > 4000 {
                    break;
                }
            }
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    cm.child.kill().unwrap(); // SIGKILL
    cm.child.wait().unwrap();
    force_unmount(&cm.mnt);
    let _ = writer.join();
    drop(cm);
    let m = fx.mount();
    for (name, data) in &synced {
        assert!(fs::read(m.path(name)).unwrap() == *data, "{name}");
    }
    // The interrupted file is readable or a clean error, never garbage.
    if let Ok(bytes) = fs::read(m.path("in-flight")) {
        assert!(bytes.iter().all(|b| *b == 0x5a));
    }
}

#[test]
fn cli_init_mount_status_unmount() {
    let tmp = tempfile::tempdir().unwrap();
    let (engine, cipher, mnt) = (
        tmp.path().join("engine"),
        tmp.path().join("cipher"),
        tmp.path().join("mnt"),
    );
    fs::create_dir(&mnt).unwrap();
    let key = tmp.path().join("root.key");
    fs::write(&key, [9u8; 32]).unwrap();
    let runtime = tmp.path().join("run");
    let kmsfs = |args: &[&std::ffi::OsStr]| {
        Command::new(kmsfs_bin())
            .env("KMSFS_ENGINE", &engine)
            .env("KMSFS_KEY_FILE", &key)
            .env("KMSFS_RUNTIME_DIR", &runtime)
            .args(args)
            .output()
            .unwrap()
    };
    let out = kmsfs(&[
        "init".as_ref(),
        cipher.as_os_str(),
        "--block-size".as_ref(),
        "8192".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["block_size"], 8192);
    // Init refuses a second time.
    assert!(
        !kmsfs(&["init".as_ref(), cipher.as_os_str()])
            .status
            .success()
    );
    // Background mount returns once mounted.
    let out = kmsfs(&["mount".as_ref(), cipher.as_os_str(), mnt.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mnt = fs::canonicalize(&mnt).unwrap();
    struct Guard(std::path::PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            force_unmount(&self.0);
        }
    }
    let _g = Guard(mnt.clone());
    assert!(is_mounted(&mnt));
    fs::write(mnt.join("hello"), b"via the binary").unwrap();
    let _keep_open = fs::File::open(mnt.join("hello")).unwrap();
    // The status file is written once a second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let out = kmsfs(&["status".as_ref()]);
    assert!(out.status.success());
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mounts = s["mounts"].as_array().unwrap();
    let me = mounts
        .iter()
        .find(|m| m["mountpoint"] == mnt.to_str().unwrap())
        .unwrap();
    assert_eq!(me["status"]["key_id"], v["key_id"]);
    assert_eq!(me["status"]["open_files"], 1);
    drop(_keep_open);
    // A second mount on the same point is refused with the mount exit code.
    let out = kmsfs(&["mount".as_ref(), cipher.as_os_str(), mnt.as_os_str()]);
    assert_eq!(out.status.code(), Some(7));
    let out = kmsfs(&["unmount".as_ref(), mnt.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_mounted(&mnt));
    // A wrong key file fails the mount with a clear error.
    fs::write(&key, [8u8; 32]).unwrap();
    let out = kmsfs(&["mount".as_ref(), cipher.as_os_str(), mnt.as_os_str()]);
    assert!(!out.status.success());
    assert!(!is_mounted(&mnt));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
}
