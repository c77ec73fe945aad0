//! A full backing disk: the cipher directory lives on a small tmpfs, and
//! applications on the mount must see ENOSPC (never EIO), keep every byte
//! that was acknowledged, and be able to write again once space is freed.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Fixture, Mounted, is_mounted};
use kmsfs::format::NamesMode;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted over a directory; unmounted on drop, also on panic.
pub(crate) struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` over `dir`, keeping what `dir` held.
    pub(crate) fn over(dir: &Path, size: &str) -> Tmpfs {
        Tmpfs::with_options(dir, &format!("size={size}"))
    }

    /// Mounts a tmpfs with mount options `opts` over `dir`, keeping what
    /// `dir` held.
    pub(crate) fn with_options(dir: &Path, opts: &str) -> Tmpfs {
        let side = dir.with_extension("orig");
        copy_tree(dir, &side);
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("{opts},mode=0755")])
            .arg("tmpfs")
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "this test needs root to mount a tmpfs");
        let guard = Tmpfs(dir.to_path_buf());
        copy_tree(&side, dir);
        guard
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// The sorted names in a backing directory.
fn names_in(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    v.sort();
    v
}

/// Deterministic, incompressible-looking content for file `seed`.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("error without errno: {e:?}"))
}

fn assert_enospc(e: &std::io::Error, what: &str) {
    assert_eq!(errno(e), libc::ENOSPC, "{what}: expected ENOSPC, got {e:?}");
}

/// How far one attempt to write a whole file got.
pub(crate) struct Attempt {
    path: PathBuf,
    want: Vec<u8>,
    /// Bytes the kernel acknowledged (write returned them).
    acked: usize,
    /// The error that stopped it, if any; `None` = written, fsynced, closed.
    err: Option<std::io::Error>,
}

/// Creates `path` and writes `want` in 64 KiB calls, then fsync and close.
fn write_file(path: &Path, want: Vec<u8>) -> Attempt {
    let mut a = Attempt {
        path: path.to_path_buf(),
        want,
        acked: 0,
        err: None,
    };
    let mut f = match fs::File::create(path) {
        Ok(f) => f,
        Err(e) => {
            a.err = Some(e);
            return a;
        }
    };
    while a.acked < a.want.len() {
        let end = (a.acked + 65536).min(a.want.len());
        match f.write(&a.want[a.acked..end]) {
            Ok(0) => panic!("write returned 0"),
            Ok(n) => a.acked += n,
            Err(e) => {
                a.err = Some(e);
                return a;
            }
        }
    }
    if let Err(e) = f.sync_all() {
        a.err = Some(e);
        return a;
    }
    // Close reports through flush; std ignores close errors, so flush via
    // an explicit drop is all we can do here.
    drop(f);
    a
}

/// Writes files of `size` bytes named `{prefix}{i}` until one fails;
/// returns the complete ones and the failed attempt.
fn fill_with(m: &Mounted, prefix: &str, size: usize, seed0: u64) -> (Vec<Attempt>, Attempt) {
    let mut done = Vec::new();
    for i in 0..10_000u64 {
        let a = write_file(&m.path(&format!("{prefix}{i}")), content(seed0 + i, size));
        if a.err.is_some() {
            return (done, a);
        }
        done.push(a);
    }
    panic!("the small disk never filled up");
}

fn check_same(a: &Attempt) {
    let got = fs::read(&a.path).unwrap_or_else(|e| panic!("{}: {e:?}", a.path.display()));
    assert!(got == a.want, "{}: content changed", a.path.display());
}

/// The partly written file: reading it succeeds (or fails without EIO),
/// every acknowledged byte is what was written, and anything past that is
/// either the intended byte or a zero.
fn check_partial(a: &Attempt) {
    let mut f = match fs::File::open(&a.path) {
        Ok(f) => f,
        Err(e) => {
            assert_eq!(errno(&e), libc::ENOENT, "{}: {e:?}", a.path.display());
            assert_eq!(a.acked, 0, "acknowledged bytes of a file that is gone");
            return;
        }
    };
    let mut got = Vec::new();
    f.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("{}: reading back: {e:?}", a.path.display()));
    assert!(
        got.len() >= a.acked,
        "{}: {} bytes acknowledged, {} read back",
        a.path.display(),
        a.acked,
        got.len()
    );
    assert!(got.len() <= a.want.len(), "file grew past what was written");
    assert!(
        got[..a.acked] == a.want[..a.acked],
        "acknowledged bytes differ"
    );
    for (i, b) in got.iter().enumerate().skip(a.acked) {
        assert!(*b == a.want[i] || *b == 0, "garbage at offset {i}");
    }
}

#[test]
fn writes_on_a_full_disk_fail_with_enospc_and_keep_what_was_written() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let _disk = Tmpfs::over(&fx.cipher, "2m");
    let m = fx.mount();

    let (done, failed) = fill_with(&m, "f", 200_000, 1);
    assert!(done.len() >= 3, "only {} files fit", done.len());
    assert_enospc(failed.err.as_ref().unwrap(), "filling the disk");

    // The mount is still up and everything acknowledged+fsynced is intact.
    assert!(is_mounted(&m.mnt));
    for a in &done {
        check_same(a);
    }
    check_partial(&failed);

    // Appending to a complete file on the full disk: ENOSPC, old bytes kept.
    let victim = &done[0];
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(&victim.path)
        .unwrap();
    let e = f.write_all(&content(99, 300_000)).unwrap_err();
    assert_enospc(&e, "append on a full disk");
    drop(f);
    let got = fs::read(&victim.path).unwrap();
    assert!(got.len() >= victim.want.len());
    assert!(
        got[..victim.want.len()] == victim.want[..],
        "append damaged old bytes"
    );
    let set_len = |len: u64| {
        fs::OpenOptions::new()
            .write(true)
            .open(&victim.path)
            .unwrap()
            .set_len(len)
    };
    let len = victim.want.len() as u64;
    set_len(len).unwrap();
    check_same(victim);
    // Growing it with truncate leaves a hole (two blocks are written): it
    // fits in what is left or fails with ENOSPC; either way the old bytes
    // stay and a failure leaves the size as it was.
    match set_len(len + 4_000_000) {
        Ok(()) => {
            let got = fs::read(&victim.path).unwrap();
            assert_eq!(got.len() as u64, len + 4_000_000);
            assert!(
                got[..victim.want.len()] == victim.want[..],
                "truncate damaged old bytes"
            );
            assert!(
                got[victim.want.len()..].iter().all(|b| *b == 0),
                "growth is not zeros"
            );
        }
        Err(e) => {
            assert_enospc(&e, "truncate up on a full disk");
            check_same(victim);
        }
    }
    // Put it back the way it was for the checks below.
    set_len(len).unwrap();
    check_same(victim);

    // Freeing space makes writing work again.
    fs::remove_file(&done[1].path).unwrap();
    fs::remove_file(&failed.path).unwrap();
    let again = write_file(&m.path("again"), content(500, 150_000));
    assert!(again.err.is_none(), "after freeing space: {:?}", again.err);
    check_same(&again);

    // And it all survives an unmount and a fresh mount.
    m.unmount();
    let m = fx.mount();
    for a in done.iter().filter(|a| a.path != done[1].path) {
        check_same(&Attempt {
            path: m.path(a.path.file_name().unwrap().to_str().unwrap()),
            want: a.want.clone(),
            acked: a.acked,
            err: None,
        });
    }
    check_same(&again);
}

/// Fills the disk down to the last page: big files, then one-page files.
pub(crate) fn fill_completely(m: &Mounted) -> Vec<Attempt> {
    let (mut done, _) = fill_with(m, "big", 256_000, 1000);
    let (small, _) = fill_with(m, "small", 1000, 2000);
    done.extend(small);
    done
}

#[test]
fn create_without_room_for_a_header_fails_cleanly() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let _disk = Tmpfs::over(&fx.cipher, "1m");
    let m = fx.mount();
    let done = fill_completely(&m);

    // Now even an empty file (a header only) has no room.
    let mut made = Vec::new();
    let err = loop {
        let p = m.path(&format!("empty{}", made.len()));
        let before = names_in(&fx.cipher);
        match fs::File::create(&p) {
            Ok(_) => made.push(p),
            Err(e) => {
                // Nothing half-made in the backing directory either.
                assert_eq!(names_in(&fx.cipher), before, "debris of a failed create");
                break (p, e);
            }
        }
        assert!(made.len() < 1000, "creates never failed");
    };
    assert_enospc(&err.1, "create on a full disk");
    // No half-made entry: the name is either absent or a clean empty file.
    match fs::metadata(&err.0) {
        Err(e) => assert_eq!(errno(&e), libc::ENOENT, "{e:?}"),
        Ok(md) => {
            assert_eq!(md.len(), 0);
            assert_eq!(fs::read(&err.0).unwrap(), b"");
        }
    }
    // Every listed entry opens and reads without an error.
    for e in fs::read_dir(&m.mnt).unwrap() {
        let p = e.unwrap().path();
        fs::read(&p).unwrap_or_else(|e| panic!("{}: {e:?}", p.display()));
    }
    for p in &made {
        assert_eq!(fs::read(p).unwrap(), b"");
    }
    for a in &done {
        check_same(a);
    }
    // Free one file: creating works again.
    fs::remove_file(&done[0].path).unwrap();
    let a = write_file(&err.0, content(7, 5000));
    assert!(a.err.is_none(), "{:?}", a.err);
    check_same(&a);
}

#[test]
fn directory_rename_on_a_full_disk_is_refused_and_changes_nothing() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let _disk = Tmpfs::over(&fx.cipher, "1m");
    let m = fx.mount();
    fs::create_dir(m.path("a")).unwrap();
    fs::create_dir(m.path("a/sub")).unwrap();
    let mut tree = Vec::new();
    for (i, name) in ["a/one", "a/two", "a/sub/three"].iter().enumerate() {
        let a = write_file(&m.path(name), content(3000 + i as u64, 9000));
        assert!(a.err.is_none());
        tree.push(a);
    }
    let done = fill_completely(&m);

    let backing_before = names_in(&fx.cipher);
    let e = fs::rename(m.path("a"), m.path("b")).unwrap_err();
    assert_enospc(&e, "directory rename on a full disk");
    assert!(!m.path("b").exists(), "half-renamed directory visible");
    // No journal and no journal temp file left in the backing root.
    assert_eq!(names_in(&fx.cipher), backing_before);
    for a in &tree {
        check_same(a);
    }
    // Still the same after a remount (no journal left to roll anything).
    m.unmount();
    assert_fsck_clean(&fx);
    let m = fx.mount();
    assert!(!m.path("b").exists());
    for a in &tree {
        check_same(&Attempt {
            path: m.path(a.path.strip_prefix(&fx.mnt).unwrap().to_str().unwrap()),
            want: a.want.clone(),
            acked: a.acked,
            err: None,
        });
    }
    // With room again the rename goes through and the files follow.
    fs::remove_file(m.path(done[0].path.file_name().unwrap().to_str().unwrap())).unwrap();
    fs::rename(m.path("a"), m.path("b")).unwrap();
    for a in &tree {
        let rel = a.path.strip_prefix(&fx.mnt).unwrap().to_str().unwrap();
        let got = fs::read(m.path(&rel.replacen('a', "b", 1))).unwrap();
        assert!(got == a.want);
    }
}

/// Writes a filler file in `dir` until its disk is full; returns its path.
fn fill_dir(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).unwrap();
    let chunk = [0x5Au8; 4096];
    for _ in 0..100_000 {
        if let Err(e) = f.write_all(&chunk) {
            assert_enospc(&e, "filling the engine disk");
            return path;
        }
    }
    panic!("the small disk never filled up");
}

/// The engine's own store on a full disk: a file create whose data key
/// call has to write the store (a rotation fell due) reaches the
/// application as ENOSPC, not EIO, and leaves nothing behind.
#[test]
fn engine_store_on_a_full_disk_reaches_the_application_as_enospc() {
    use kms_engine::{EnableKeyRotationRequest, Engine, ManualClock, RootKeySource};
    use std::sync::Arc;
    let mut fx = Fixture::new(4096, NamesMode::Encrypted);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = ManualClock::new(i64::try_from(now).unwrap());
    let _engine_disk = Tmpfs::over(&fx.engine_dir, "256k");
    fx.engine = Arc::new(
        Engine::open(
            &fx.engine_dir,
            RootKeySource::Passphrase(zeroize::Zeroizing::new("test passphrase".into())),
            Arc::new(clock.clone()),
            Arc::new(kms_engine::audit::NullSink),
        )
        .unwrap(),
    );
    fx.engine
        .enable_key_rotation(
            &common::root(),
            EnableKeyRotationRequest {
                key_id: fx.key_id.clone(),
                rotation_period_in_days: Some(90),
            },
        )
        .unwrap();
    let m = fx.mount();
    fs::write(m.path("before"), b"kept").unwrap();
    let backing_before = names_in(&fx.cipher);

    let filler = fill_dir(&fx.engine_dir);
    clock.advance_days(91); // the rotation is due: the next call writes the store
    let e = fs::write(m.path("after"), b"new").unwrap_err();
    assert_enospc(&e, "create while the engine's disk is full");
    assert!(!m.path("after").exists());
    assert_eq!(names_in(&fx.cipher), backing_before);
    assert_eq!(fs::read(m.path("before")).unwrap(), b"kept");

    fs::remove_file(filler).unwrap();
    fs::write(m.path("after"), b"new").unwrap();
    assert_eq!(fs::read(m.path("after")).unwrap(), b"new");
    assert_eq!(fs::read(m.path("before")).unwrap(), b"kept");
}

/// Everything in a backing tree: each entry's relative path with its
/// content (a file's bytes, a symlink's stored target, nothing for a
/// directory), sorted. Two equal snapshots mean nothing changed, not even a
/// temporary file left behind.
fn backing_tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.push((rel, Vec::new()));
                walk(root, &p, out);
            } else if ft.is_symlink() {
                use std::os::unix::ffi::OsStrExt;
                let t = fs::read_link(&p).unwrap();
                out.push((rel, t.as_os_str().as_bytes().to_vec()));
            } else {
                out.push((rel, fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// `kmsfs fsck` of the unmounted volume finds nothing wrong.
fn assert_fsck_clean(fx: &Fixture) {
    let ks: std::sync::Arc<dyn kmsfs::keys::KeyService> = std::sync::Arc::new(fx.engine.clone());
    let vol = kmsfs::volume::Volume::open(&fx.cipher, &ks, &common::root()).unwrap();
    let report = kmsfs::fsck::check(&vol, ks.as_ref(), &common::root()).unwrap();
    assert!(report.problems.is_empty(), "fsck: {:?}", report.problems);
}

/// A target whose stored (encrypted) form is longer than the 128 bytes
/// tmpfs keeps inside the inode: a new symlink with it needs a page.
fn long_target(tag: char) -> String {
    format!("../{}", tag.to_string().repeat(200))
}

fn readlink(p: &Path) -> String {
    fs::read_link(p)
        .unwrap_or_else(|e| panic!("{}: {e:?}", p.display()))
        .into_os_string()
        .into_string()
        .unwrap()
}

/// Frees the first filler file (through the mount or, after a remount,
/// by its name).
fn free_one(m: &Mounted, done: &[Attempt]) {
    fs::remove_file(m.path(done[0].path.file_name().unwrap().to_str().unwrap())).unwrap();
}

/// The reported bug: `rename a/link b/link` across directories on a full
/// disk returned ENOSPC but moved the entry, and the moved link read EIO
/// from then on. Now the re-encrypted link is made before anything moves:
/// the rename fails with ENOSPC and changes nothing, also for an exchange.
#[test]
fn symlink_rename_across_dirs_on_a_full_disk_keeps_the_link() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let _disk = Tmpfs::over(&fx.cipher, "1m");
    let m = fx.mount();
    fs::create_dir(m.path("a")).unwrap();
    fs::create_dir(m.path("b")).unwrap();
    let target = long_target('x');
    std::os::unix::fs::symlink(&target, m.path("a/link")).unwrap();
    std::os::unix::fs::symlink("short", m.path("a/short")).unwrap();
    // A target too long for a backing symlink: stored in a long-link
    // target file, which the move writes again in the other directory.
    let max_target = "y".repeat(4095);
    std::os::unix::fs::symlink(&max_target, m.path("a/max")).unwrap();
    fs::write(m.path("b/file"), b"in b").unwrap();
    let done = fill_completely(&m);

    let before = backing_tree(&fx.cipher);
    let e = fs::rename(m.path("a/link"), m.path("b/link")).unwrap_err();
    assert_enospc(&e, "symlink rename across directories");
    let e = fs::rename(m.path("a/max"), m.path("b/max")).unwrap_err();
    assert_enospc(&e, "rename of a symlink with a long-link target file");
    // RENAME_EXCHANGE of the link with a file in the other directory.
    let e = rustix::fs::renameat_with(
        rustix::fs::CWD,
        m.path("a/link"),
        rustix::fs::CWD,
        m.path("b/file"),
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .unwrap_err();
    assert_eq!(e, rustix::io::Errno::NOSPC, "symlink exchange");
    assert_eq!(
        backing_tree(&fx.cipher),
        before,
        "a failed rename changed the backing tree"
    );
    assert_eq!(readlink(&m.path("a/link")), target);
    assert!(fs::symlink_metadata(m.path("b/link")).is_err());
    assert_eq!(readlink(&m.path("a/max")), max_target);
    assert!(fs::symlink_metadata(m.path("b/max")).is_err());
    assert_eq!(fs::read(m.path("b/file")).unwrap(), b"in b");

    // A short target fits in the inode: that move needs no page and works.
    fs::rename(m.path("a/short"), m.path("b/short")).unwrap();
    assert_eq!(readlink(&m.path("b/short")), "short");
    assert!(fs::symlink_metadata(m.path("a/short")).is_err());

    // Still readable after a remount, and fsck finds nothing.
    m.unmount();
    assert_fsck_clean(&fx);
    let m = fx.mount();
    assert_eq!(readlink(&m.path("a/link")), target);
    assert_eq!(readlink(&m.path("a/max")), max_target);
    // With room again both kinds of rename go through.
    free_one(&m, &done);
    fs::rename(m.path("a/link"), m.path("b/link")).unwrap();
    assert_eq!(readlink(&m.path("b/link")), target);
    fs::rename(m.path("a/max"), m.path("b/max")).unwrap();
    assert_eq!(readlink(&m.path("b/max")), max_target);
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        m.path("b/link"),
        rustix::fs::CWD,
        m.path("a/short"),
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .unwrap();
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        m.path("a/short"),
        rustix::fs::CWD,
        m.path("b/file"),
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .unwrap();
    assert_eq!(readlink(&m.path("b/file")), target);
    assert_eq!(fs::read(m.path("a/short")).unwrap(), b"in b");
    m.unmount();
    assert_fsck_clean(&fx);
}

/// A file moving to another directory gets its data key re-wrapped under
/// a journal: on a full disk the journal cannot be written, the rename
/// fails with ENOSPC before anything moved, and the file reads as before.
#[test]
fn file_rename_across_dirs_on_a_full_disk_changes_nothing() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let _disk = Tmpfs::over(&fx.cipher, "1m");
    let m = fx.mount();
    fs::create_dir(m.path("a")).unwrap();
    fs::create_dir(m.path("b")).unwrap();
    let f = write_file(&m.path("a/f"), content(4000, 9000));
    assert!(f.err.is_none());
    fs::write(m.path("b/g"), b"replaced?").unwrap();
    let done = fill_completely(&m);

    let before = backing_tree(&fx.cipher);
    let e = fs::rename(m.path("a/f"), m.path("b/f")).unwrap_err();
    assert_enospc(&e, "file rename across directories");
    let e = fs::rename(m.path("a/f"), m.path("b/g")).unwrap_err();
    assert_enospc(&e, "file rename over a file");
    assert_eq!(backing_tree(&fx.cipher), before);
    check_same(&f);
    assert_eq!(fs::read(m.path("b/g")).unwrap(), b"replaced?");
    m.unmount();
    assert_fsck_clean(&fx);

    let m = fx.mount();
    check_same(&f);
    free_one(&m, &done);
    fs::rename(m.path("a/f"), m.path("b/g")).unwrap();
    check_same(&Attempt {
        path: m.path("b/g"),
        want: f.want.clone(),
        acked: 0,
        err: None,
    });
    m.unmount();
    assert_fsck_clean(&fx);
}

/// A name too long for the backing filesystem once encrypted is stored
/// hashed, with a side file holding it: on a full disk the side file
/// cannot be written, and create and rename fail with ENOSPC leaving no
/// entry, no side file and no temporary file.
#[test]
fn long_name_create_and_rename_on_a_full_disk_leave_no_debris() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let _disk = Tmpfs::over(&fx.cipher, "1m");
    let m = fx.mount();
    let long = "L".repeat(240);
    fs::create_dir(m.path("a")).unwrap();
    fs::create_dir(m.path("b")).unwrap();
    fs::write(m.path("a/short"), b"short one").unwrap();
    fs::write(m.path(&format!("a/{long}")), b"long one").unwrap();
    std::os::unix::fs::symlink("short", m.path("a/link")).unwrap();
    let done = fill_completely(&m);

    let before = backing_tree(&fx.cipher);
    let e = fs::write(m.path(&format!("b/{long}")), b"x").unwrap_err();
    assert_enospc(&e, "create with a long name");
    let e = std::os::unix::fs::symlink("t", m.path(&format!("b/{long}"))).unwrap_err();
    assert_enospc(&e, "symlink with a long name");
    let e = fs::rename(m.path("a/short"), m.path(&format!("a/{long}2"))).unwrap_err();
    assert_enospc(&e, "rename to a long name");
    assert_eq!(backing_tree(&fx.cipher), before);
    assert_eq!(fs::read(m.path("a/short")).unwrap(), b"short one");
    assert_eq!(fs::read(m.path(&format!("a/{long}"))).unwrap(), b"long one");
    // Over an existing long name in the same directory the side file is
    // already there: nothing to write, and a symlink (no key to re-wrap,
    // same directory IV) moves without needing any space.
    fs::rename(m.path("a/link"), m.path(&format!("a/{long}"))).unwrap();
    assert_eq!(readlink(&m.path(&format!("a/{long}"))), "short");
    m.unmount();
    assert_fsck_clean(&fx);

    let m = fx.mount();
    free_one(&m, &done);
    fs::rename(m.path("a/short"), m.path(&format!("b/{long}"))).unwrap();
    assert_eq!(
        fs::read(m.path(&format!("b/{long}"))).unwrap(),
        b"short one"
    );
    fs::rename(m.path(&format!("a/{long}")), m.path(&format!("b/{long}2"))).unwrap();
    assert_eq!(readlink(&m.path(&format!("b/{long}2"))), "short");
    m.unmount();
    assert_fsck_clean(&fx);
}

/// Extended attributes on a tmpfs whose xattr space (bounded by its inode
/// count) is used up: a new attribute fails with ENOSPC, a replacement
/// either works or fails leaving the old value, and nothing else changes.
#[test]
fn setxattr_without_room_keeps_the_old_values() {
    let fx = Fixture::new(4096, NamesMode::Encrypted);
    let _disk = Tmpfs::with_options(&fx.cipher, "size=4m,nr_inodes=24");
    let m = fx.mount();
    let f = m.path("f");
    fs::write(&f, b"data").unwrap();
    rustix::fs::setxattr(
        &f,
        "user.keep",
        b"old value",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let big = vec![0x42u8; 1500];
    let mut n = 0;
    let err = loop {
        match rustix::fs::setxattr(
            &f,
            format!("user.k{n}"),
            &big,
            rustix::fs::XattrFlags::empty(),
        ) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 1000, "xattr space never ran out");
    };
    assert_eq!(err, rustix::io::Errno::NOSPC, "after {n} attributes");
    let get = |name: &str| {
        let mut buf = vec![0u8; 4096];
        let len = rustix::fs::getxattr(&f, name, &mut buf).unwrap();
        buf.truncate(len);
        buf
    };
    assert_eq!(get("user.keep"), b"old value");
    let before = backing_tree(&fx.cipher);
    match rustix::fs::setxattr(
        &f,
        "user.keep",
        &[7u8; 3000],
        rustix::fs::XattrFlags::REPLACE,
    ) {
        Ok(()) => assert_eq!(get("user.keep"), vec![7u8; 3000]),
        Err(e) => {
            assert_eq!(e, rustix::io::Errno::NOSPC);
            assert_eq!(get("user.keep"), b"old value");
        }
    }
    assert_eq!(backing_tree(&fx.cipher), before);
    for i in 0..n {
        assert_eq!(get(&format!("user.k{i}")), big);
    }
    assert_eq!(fs::read(&f).unwrap(), b"data");
    m.unmount();
    assert_fsck_clean(&fx);
}
