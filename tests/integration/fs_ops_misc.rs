//! copy_file_range (decrypt + re-encrypt by kmsfs, not the kernel's splice
//! fallback), rename with RENAME_WHITEOUT (as overlayfs does it), requests
//! kmsfs does not serve logged once per kind, and `kmsfs status` after the
//! mount process was killed with SIGKILL.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{ChildMount, Fixture, Mounted, force_unmount, is_mounted, kmsfs_bin};
use kmsfs::format::NamesMode;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;

/// Deterministic bytes that differ from block to block.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// copy_file_range of `len` bytes between the given offsets; bytes copied.
fn copy_range(src: &File, off_in: u64, dst: &File, off_out: u64, len: usize) -> usize {
    let (mut i, mut o) = (off_in, off_out);
    rustix::fs::copy_file_range(src, Some(&mut i), dst, Some(&mut o), len).unwrap()
}

/// How many copy_file_range requests the mount has served itself.
fn copies_served(m: &Mounted) -> u64 {
    let s = m.core.status(&m.mnt);
    s.requests.get("copy_file_range").map_or(0, |o| o.count)
}

fn rw(p: &Path) -> File {
    OpenOptions::new().read(true).write(true).open(p).unwrap()
}

#[test]
fn copy_file_range_across_files_matches_a_model_and_survives_a_remount() {
    let fx = Fixture::new(BLOCK as u32, NamesMode::Encrypted);
    let m = fx.mount();
    let src_data = pattern(5 * BLOCK + 123, 1);
    let mut model = pattern(2 * BLOCK + 7, 2);
    fs::write(m.path("src"), &src_data).unwrap();
    fs::write(m.path("dst"), &model).unwrap();
    let (src, dst) = (rw(&m.path("src")), rw(&m.path("dst")));

    // Unaligned, inside the destination, crossing block edges.
    assert_eq!(copy_range(&src, 1000, &dst, 300, 6000), 6000);
    model[300..6300].copy_from_slice(&src_data[1000..7000]);
    // Past the destination's end, leaving a gap that reads as zeros.
    let at = model.len() + 5000;
    assert_eq!(copy_range(&src, 10, &dst, at as u64, 3 * BLOCK), 3 * BLOCK);
    model.resize(at, 0);
    model.extend_from_slice(&src_data[10..10 + 3 * BLOCK]);
    // More than the source holds: the copy stops at its end of file.
    let tail = src_data.len() - 4000;
    assert_eq!(copy_range(&src, tail as u64, &dst, 0, 1 << 20), 4000);
    model[..4000].copy_from_slice(&src_data[tail..]);
    // At or past the end of the source: nothing to copy.
    assert_eq!(copy_range(&src, src_data.len() as u64, &dst, 0, 100), 0);
    assert_eq!(copy_range(&src, 1 << 30, &dst, 0, 100), 0);
    // (A request is counted just after its reply: wait for the count.)
    wait_for(
        "kmsfs did not serve the copies (the kernel fell back to splice)",
        || copies_served(&m) >= 3,
    );
    drop((src, dst));
    assert!(fs::read(m.path("dst")).unwrap() == model);
    assert!(fs::read(m.path("src")).unwrap() == src_data);
    m.unmount();
    // The copied blocks are sealed under the destination's own key.
    let m = fx.mount();
    assert!(fs::read(m.path("dst")).unwrap() == model);
    assert!(fs::read(m.path("src")).unwrap() == src_data);
}

#[test]
fn copy_file_range_within_one_file_refuses_overlap() {
    let fx = Fixture::new(BLOCK as u32, NamesMode::Encrypted);
    let m = fx.mount();
    let mut model = pattern(4 * BLOCK, 3);
    fs::write(m.path("f"), &model).unwrap();
    let f = rw(&m.path("f"));
    // Two handles of one file count as the same file.
    let g = rw(&m.path("f"));
    assert_eq!(
        copy_range(&f, 0, &g, 2 * BLOCK as u64, BLOCK + 10),
        BLOCK + 10
    );
    model.copy_within(0..BLOCK + 10, 2 * BLOCK);
    for (off_in, off_out) in [(0u64, 100u64), (100, 0), (500, 500)] {
        let (mut i, mut o) = (off_in, off_out);
        let err =
            rustix::fs::copy_file_range(&f, Some(&mut i), &f, Some(&mut o), 1000).unwrap_err();
        assert_eq!(err, rustix::io::Errno::INVAL, "{off_in} -> {off_out}");
    }
    // Adjacent ranges do not overlap.
    assert_eq!(copy_range(&f, 0, &f, 1000, 1000), 1000);
    model.copy_within(0..1000, 1000);
    wait_for("kmsfs did not serve the copies", || copies_served(&m) >= 2);
    drop((f, g));
    assert!(fs::read(m.path("f")).unwrap() == model);
}

#[test]
fn rename_whiteout_leaves_a_whiteout_at_the_source() {
    for names in [NamesMode::Encrypted, NamesMode::Plaintext] {
        let fx = Fixture::new(BLOCK as u32, names);
        let m = fx.mount();
        // A name long enough for a long-name side file when encrypted.
        let long = "w".repeat(200);
        fs::create_dir(m.path("d")).unwrap();
        fs::write(m.path(&long), b"moved content").unwrap();
        fs::write(m.path("plain"), b"other").unwrap();
        for (from, to) in [(long.as_str(), "d/moved"), ("plain", "plain2")] {
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                m.path(from),
                rustix::fs::CWD,
                m.path(to),
                rustix::fs::RenameFlags::WHITEOUT,
            )
            .unwrap();
        }
        let check = |m: &Mounted| {
            assert_eq!(fs::read(m.path("d/moved")).unwrap(), b"moved content");
            assert_eq!(fs::read(m.path("plain2")).unwrap(), b"other");
            for w in [long.as_str(), "plain"] {
                let md = fs::symlink_metadata(m.path(w)).unwrap();
                assert!(md.file_type().is_char_device(), "{w}: {md:?}");
                assert_eq!(md.rdev(), 0, "{w}");
            }
            let mut names: Vec<String> = fs::read_dir(m.path(""))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            assert_eq!(names, ["d", "plain", "plain2", long.as_str()]);
        };
        check(&m);
        m.unmount();
        let m = fx.mount();
        check(&m);
        // A whiteout is removed like any entry, and the name is free again.
        fs::remove_file(m.path(&long)).unwrap();
        fs::write(m.path(&long), b"new").unwrap();
        assert_eq!(fs::read(m.path(&long)).unwrap(), b"new");
    }
}

/// Waits until `cond` holds (the mount process works in its own time).
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unsupported_requests_are_logged_once_per_kind() {
    let fx = Fixture::new(BLOCK as u32, NamesMode::Encrypted);
    let log = fx.tmp.path().join("mount.log");
    let log_file = File::create(&log).unwrap();
    let mut cm = ChildMount::start_with(&fx, |c| {
        c.stderr(log_file).env("RUST_LOG", "warn");
    });
    fs::write(cm.mnt.join("f"), b"x").unwrap();
    let f = File::open(cm.mnt.join("f")).unwrap();
    for _ in 0..50 {
        // FS_IOC_GETFLAGS (lsattr): kmsfs has no inode flags.
        let err = rustix::fs::ioctl_getflags(&f).unwrap_err();
        assert_eq!(err, rustix::io::Errno::NOTTY);
    }
    drop(f);
    cm.child.kill().unwrap();
    cm.child.wait().unwrap();
    force_unmount(&cm.mnt);
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("ioctl")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("not supported"), "{text}");
    assert!(!text.contains("Not Implemented"), "{text}");
}

#[test]
fn status_after_kill_9_reports_the_dead_mount_and_removes_its_file() {
    let fx = Fixture::new(BLOCK as u32, NamesMode::Encrypted);
    let runtime = fx.tmp.path().join("run");
    let mut cm = ChildMount::start_with(&fx, |c| {
        c.env("KMSFS_RUNTIME_DIR", &runtime);
    });
    let status_file = runtime.join(
        kmsfs::fuse::status::status_file_for(&cm.mnt)
            .file_name()
            .unwrap(),
    );
    let kmsfs_status = || {
        let out = std::process::Command::new(kmsfs_bin())
            .env("KMSFS_RUNTIME_DIR", &runtime)
            .args(["--output", "json", "status"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountpoint"] == cm.mnt.to_str().unwrap())
            .cloned()
            .unwrap()
    };
    wait_for("status file written", || status_file.exists());
    let live = kmsfs_status();
    assert_eq!(live["status"]["pid"], cm.child.id());
    assert!(live.get("dead_pid").is_none(), "{live}");
    let pid = cm.child.id();
    cm.child.kill().unwrap(); // SIGKILL
    cm.child.wait().unwrap();
    // An orphan status file of a mount that is gone altogether goes too.
    let orphan = runtime.join("0123456789abcdef.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&fs::read(&status_file).unwrap()).unwrap();
    v["mountpoint"] = "/nowhere".into();
    fs::write(&orphan, v.to_string()).unwrap();
    assert!(is_mounted(&cm.mnt), "the dead mount stays until unmounted");
    let dead = kmsfs_status();
    assert!(dead["status"].is_null(), "{dead}");
    assert_eq!(dead["dead_pid"], pid);
    assert!(!status_file.exists() && !orphan.exists());
    // The dead mount unmounts with the command `status` suggests.
    let out = std::process::Command::new(kmsfs_bin())
        .args(["unmount", "--lazy"])
        .arg(&cm.mnt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!is_mounted(&cm.mnt));
    force_unmount(&cm.mnt);
}

/// `--no-xattr`: every xattr call fails with EOPNOTSUPP, answered by the
/// kernel itself after kmsfs's first ENOSYS of each kind (the request
/// counters show one request per kind, however many calls), so writes,
/// chowns and `ls -l`'s xattr lookups cost no round trip; files work as
/// before. A default mount serves every call (the counters grow with them).
#[test]
fn no_xattr_mount_answers_each_xattr_kind_once() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    // The outcome of the four calls, the same for each of 20 files.
    let calls = |m: &Mounted| {
        let mut seen = Vec::new();
        for i in 0..20 {
            let p = m.path(&format!("f{i}"));
            fs::write(&p, pattern(5000, i as u8)).unwrap();
            std::os::unix::fs::chown(&p, Some(0), Some(0)).unwrap();
            let mut buf = [0u8; 64];
            let get = rustix::fs::lgetxattr(&p, "security.selinux", &mut buf);
            let list = rustix::fs::llistxattr(&p, &mut buf);
            let set = rustix::fs::lsetxattr(&p, "user.a", b"1", rustix::fs::XattrFlags::empty());
            let remove = rustix::fs::lremovexattr(&p, "user.a");
            seen.push((get.err(), list.ok(), set.err(), remove.err()));
        }
        seen.dedup();
        assert_eq!(seen.len(), 1, "{seen:?}");
        seen[0]
    };
    let count = |m: &Mounted, op: &str| {
        m.core
            .status(&m.mnt)
            .requests
            .get(op)
            .map_or(0, |s| s.count)
    };

    let m = fx.mount_with(
        kmsfs::fuse::FsOptions {
            no_xattr: true,
            ..Default::default()
        },
        false,
    );
    let (get, list, set, remove) = calls(&m);
    let unsupported = Some(rustix::io::Errno::OPNOTSUPP);
    assert_eq!((get, set, remove), (unsupported, unsupported, unsupported));
    // listxattr of a filesystem without xattrs: EOPNOTSUPP too.
    assert_eq!(list, None);
    for op in ["getxattr", "listxattr", "setxattr", "removexattr"] {
        assert_eq!(count(&m, op), 1, "{op} requests");
    }
    for i in 0..20 {
        assert_eq!(
            fs::read(m.path(&format!("f{i}"))).unwrap(),
            pattern(5000, i as u8)
        );
    }
    m.unmount();

    let m = fx.mount_with(kmsfs::fuse::FsOptions::default(), false);
    let (get, list, set, remove) = calls(&m);
    assert_eq!(get, Some(rustix::io::Errno::NODATA));
    assert_eq!(list, Some(0));
    assert_eq!((set, remove), (None, None));
    // 20 lookups, and the kernel's security.capability checks on top.
    assert!(count(&m, "getxattr") >= 20, "{}", count(&m, "getxattr"));
    assert_eq!(count(&m, "setxattr"), 20);
}

/// Times set through the mount read back exactly, through the mount and
/// after `fsck` and a remount (neither reads the files' access times
/// away), also before 1970 with a fraction of a second (the
/// kernel sends 1969-12-31T23:59:58.75Z as -2 s + 750 ms, which fuser
/// 0.18 decodes as 2.75 s before the epoch; see `attr::timespec`): by
/// path (utimensat on a file, a directory and, not following it, a
/// symlink) and through an open file (futimens).
#[test]
fn times_set_through_the_mount_read_back_exactly_also_before_1970() {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};
    let fx = Fixture::new(BLOCK as u32, NamesMode::Encrypted);
    let m = fx.mount();
    fs::write(m.path("f"), b"x").unwrap();
    fs::write(m.path("g"), b"y").unwrap();
    fs::create_dir(m.path("d")).unwrap();
    std::os::unix::fs::symlink("f", m.path("l")).unwrap();
    // (name, atime, mtime), each as (seconds, nanoseconds).
    type Times = (i64, i64);
    let cases: [(&str, Times, Times); 4] = [
        ("f", (-2, 750_000_000), (1_700_000_000, 123_456_789)),
        ("d", (-86_400, 0), (-1, 1)),
        ("l", (5, 999_999_999), (-315_619_200, 500_000_000)),
        ("g", (-3, 250_000_000), (-100, 999_999_999)),
    ];
    let ts = |(s, n): Times| Timespec {
        tv_sec: s,
        tv_nsec: n,
    };
    for (name, atime, mtime) in cases {
        let times = Timestamps {
            last_access: ts(atime),
            last_modification: ts(mtime),
        };
        if name == "g" {
            let f = OpenOptions::new().write(true).open(m.path(name)).unwrap();
            rustix::fs::futimens(&f, &times).unwrap();
        } else {
            rustix::fs::utimensat(CWD, m.path(name), &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
        }
    }
    let check = |m: &Mounted, when: &str| {
        for (name, atime, mtime) in cases {
            let md = fs::symlink_metadata(m.path(name)).unwrap();
            assert_eq!((md.mtime(), md.mtime_nsec()), mtime, "{name} {when}");
            // A symlink's target is read from the backing symlink when it
            // is looked up again, which updates its atime there (relatime)
            // as reading it anywhere would.
            if name != "l" || when == "through the mount" {
                assert_eq!((md.atime(), md.atime_nsec()), atime, "{name} {when}");
            }
        }
        // The symlink's target was not touched.
        assert_ne!(fs::metadata(m.path("f")).unwrap().mtime(), -315_619_200);
    };
    check(&m, "through the mount");
    m.unmount();
    // A check of the volume is no read of its files: access times stay.
    let ks: std::sync::Arc<dyn kmsfs::keys::KeyService> = std::sync::Arc::new(fx.engine.clone());
    let vol = kmsfs::volume::Volume::open(&fx.cipher, &ks, &common::root()).unwrap();
    let report = kmsfs::fsck::check(&vol, ks.as_ref(), &common::root()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let m = fx.mount();
    check(&m, "after fsck and a remount");
    m.unmount();
}

/// `--writeback-cache`: small writes reach kmsfs as few WRITE requests (64
/// writes of 1 KiB to a new file: at most 4 requests, against 64 on a
/// default mount), and what the kernel does for kmsfs is right: a
/// write-only handle's partial overwrite in a cold cache (the kernel reads
/// the page first), O_APPEND placed by the kernel (kmsfs takes the offsets
/// as sent, whichever handle writes the pages back), and a time set with
/// futimens before close kept after the data is written back; every file
/// reads back as written after a remount.
#[test]
fn writeback_cache_gathers_writes_and_keeps_contents_and_times() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let writes = |m: &Mounted| {
        m.core
            .status(&m.mnt)
            .requests
            .get("write")
            .map_or(0, |s| s.count)
    };
    let piece = pattern(1024, 3);
    let small_writes = |m: &Mounted, name: &str| {
        let before = writes(m);
        let mut f = File::create(m.path(name)).unwrap();
        for _ in 0..64 {
            std::io::Write::write_all(&mut f, &piece).unwrap();
        }
        drop(f);
        writes(m) - before
    };
    let opts = || kmsfs::fuse::FsOptions {
        writeback_cache: true,
        ..Default::default()
    };

    let m = fx.mount();
    assert_eq!(
        small_writes(&m, "plain"),
        64,
        "a default mount: one per write"
    );
    m.unmount();

    let m = fx.mount_with(opts(), true);
    let sent = small_writes(&m, "gathered");
    assert!(sent <= 4, "{sent} WRITE requests for 64 small writes");
    fs::write(m.path("f"), pattern(10_000, 1)).unwrap();
    m.unmount();

    // Cold cache: the kernel reads the page to merge a 5-byte write.
    let m = fx.mount_with(opts(), true);
    let f = OpenOptions::new().write(true).open(m.path("f")).unwrap();
    rustix::io::pwrite(&f, b"HELLO", 5000).unwrap();
    drop(f);
    let mut a = OpenOptions::new().append(true).open(m.path("f")).unwrap();
    std::io::Write::write_all(&mut a, b"TAIL").unwrap();
    std::io::Write::write_all(&mut a, b"END").unwrap();
    // tar: write, set the time through the descriptor, close.
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_200_000_000,
            tv_nsec: 0,
        },
    };
    rustix::fs::futimens(&a, &t).unwrap();
    drop(a);
    assert_eq!(fs::metadata(m.path("f")).unwrap().mtime(), 1_200_000_000);
    m.unmount();

    let m = fx.mount();
    let mut want = pattern(10_000, 1);
    want[5000..5005].copy_from_slice(b"HELLO");
    want.extend_from_slice(b"TAILEND");
    let same = |got: Vec<u8>, want: &[u8]| {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        assert!(
            got == want,
            "{} bytes read, {} written; first difference at {at:?}",
            got.len(),
            want.len()
        );
    };
    same(fs::read(m.path("f")).unwrap(), &want);
    assert_eq!(fs::metadata(m.path("f")).unwrap().mtime(), 1_200_000_000);
    same(fs::read(m.path("gathered")).unwrap(), &piece.repeat(64));
    m.unmount();
}
