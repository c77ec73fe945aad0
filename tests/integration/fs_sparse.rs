//! Sparse files, huge sizes and the end mark on a real mount: holes stay
//! holes in the backing file, sizes beyond what can be stored are EFBIG
//! with the file unchanged, a zeroed block of a file without holes and a
//! file cut at a block boundary give EIO (and fsck names them), fallocate
//! and SEEK_HOLE/SEEK_DATA behave as on the backing filesystem, and a
//! format-1 file keeps working and converts when emptied.

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Fixture, root};
use kmsfs::content::{BlockMark, ContentCipher};
use kmsfs::format::{FileHeader, HEADER_FORMAT_V1, HEADER_LEN, NamesMode};
use kmsfs::keys::KeyService;
use kmsfs::volume::Volume;
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

const B: u64 = 4096;
const S: u64 = B + 28;
const H: u64 = HEADER_LEN as u64;

fn rw(p: &Path) -> fs::File {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap()
}

fn eio(p: &Path) {
    let e = fs::read(p).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{}", p.display());
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ seed)
        .collect()
}

/// fallocate(2) on `f`; Err(errno).
fn falloc(f: &fs::File, mode: i32, off: u64, len: u64) -> Result<(), i32> {
    let flags = rustix::fs::FallocateFlags::from_bits_retain(mode as u32);
    rustix::fs::fallocate(f, flags, off, len).map_err(|e| e.raw_os_error())
}

/// lseek(SEEK_DATA / SEEK_HOLE); Err(errno).
fn seek(f: &fs::File, off: u64, hole: bool) -> Result<u64, i32> {
    use rustix::fs::SeekFrom;
    let from = if hole {
        SeekFrom::Hole(off)
    } else {
        SeekFrom::Data(off)
    };
    rustix::fs::seek(f, from).map_err(|e| e.raw_os_error())
}

/// `truncate -s 100M` writes a few blocks, not 100 MB, and reads zeros.
#[test]
fn truncate_up_keeps_a_hole_in_the_backing_file() {
    let fx = Fixture::new(B as u32, NamesMode::Plaintext);
    let m = fx.mount();
    fs::write(m.path("f"), b"start").unwrap();
    rw(&m.path("f")).set_len(100 << 20).unwrap();
    let meta = fs::metadata(fx.cipher.join("f")).unwrap();
    assert_eq!(meta.len(), H + 25_600 * S);
    assert!(
        meta.blocks() * 512 <= 64 << 10,
        "100 MiB truncate allocated {} backing bytes",
        meta.blocks() * 512
    );
    let got = fs::read(m.path("f")).unwrap();
    assert_eq!(got.len(), 100 << 20);
    assert_eq!(&got[..5], b"start");
    assert!(
        got[5..].iter().all(|b| *b == 0),
        "hole does not read as zeros"
    );
    // st_blocks through the mount follows the backing file.
    assert!(fs::metadata(m.path("f")).unwrap().blocks() * 512 <= 64 << 10);
    m.unmount();
    // fsck: clean, and the file counts as sparse.
    let report = fsck(&fx);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.sparse_files, 1);
    assert_eq!(report.old_format_files, 0);
}

/// A size the format cannot store is EFBIG at once and changes nothing; a
/// huge size the backing filesystem can hold sparsely works in
/// milliseconds, and one it cannot is EFBIG with the file unchanged.
#[test]
fn huge_sizes_are_efbig_or_sparse_and_never_partial() {
    let fx = Fixture::new(B as u32, NamesMode::Plaintext);
    let m = fx.mount();
    let p = m.path("f");
    fs::write(&p, b"keep me").unwrap();
    let before = fs::read(fx.cipher.join("f")).unwrap();
    let f = rw(&p);
    // Past the format's limit (the backing offset would overflow off_t).
    let e = f.set_len(i64::MAX as u64).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG));
    let e = f.write_at(b"x", (i64::MAX - 10) as u64).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG));
    assert_eq!(fs::read(fx.cipher.join("f")).unwrap(), before);
    // pjdfstest truncate/12: 999999999999999.
    match f.set_len(999_999_999_999_999) {
        Ok(()) => {
            assert_eq!(fs::metadata(&p).unwrap().len(), 999_999_999_999_999);
            assert!(fs::metadata(fx.cipher.join("f")).unwrap().blocks() * 512 <= 64 << 10);
            let mut tail = [1u8; 16];
            f.read_exact_at(&mut tail, 999_999_999_999_999 - 16)
                .unwrap();
            assert_eq!(tail, [0; 16]);
            f.set_len(7).unwrap();
        }
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
            assert_eq!(fs::read(fx.cipher.join("f")).unwrap(), before);
        }
    }
    assert_eq!(fs::read(&p).unwrap(), b"keep me");
}

/// Zeroing a block in the backing file of a file without holes is EIO;
/// a file with holes reads its holes as zeros; the end mark cannot be
/// zeroed away.
#[test]
fn zeroed_block_is_eio_unless_the_file_has_holes() {
    let fx = Fixture::new(B as u32, NamesMode::Plaintext);
    let m = fx.mount();
    fs::write(m.path("dense"), pattern(3 * B as usize, 1)).unwrap();
    let f = fs::File::create(m.path("holey")).unwrap();
    f.write_all_at(&pattern(B as usize, 2), 0).unwrap();
    f.write_all_at(&pattern(B as usize, 3), 3 * B).unwrap();
    drop(f);
    fs::write(m.path("ok"), b"fine").unwrap();
    m.unmount();
    let zero = |name: &str, block: u64| {
        rw(&fx.cipher.join(name))
            .write_all_at(&vec![0u8; S as usize], H + block * S)
            .unwrap();
    };
    zero("dense", 1);
    let m = fx.mount();
    eio(&m.path("dense"));
    let got = fs::read(m.path("holey")).unwrap();
    assert_eq!(&got[..B as usize], &pattern(B as usize, 2)[..]);
    assert!(got[B as usize..3 * B as usize].iter().all(|b| *b == 0));
    m.unmount();
    zero("holey", 3);
    let m = fx.mount();
    eio(&m.path("holey"));
    assert_eq!(fs::read(m.path("ok")).unwrap(), b"fine");
    m.unmount();
    let report = fsck(&fx);
    let what = |p: &str| -> Vec<String> {
        report
            .problems
            .iter()
            .filter(|q| q.path == p)
            .map(|q| q.what.clone())
            .collect()
    };
    assert!(
        what("/dense")
            .iter()
            .any(|w| w.contains("all-zero blocks in a file without holes")),
        "{:?}",
        report.problems
    );
    assert!(
        what("/holey")
            .iter()
            .any(|w| w.contains("fail authentication")),
        "{:?}",
        report.problems
    );
    assert!(what("/ok").is_empty());
}

/// Cutting whole blocks off the end of the backing file (or everything but
/// the header) is EIO on read, and fsck names it.
#[test]
fn cut_at_a_block_boundary_is_eio_and_fsck_reports_it() {
    let fx = Fixture::new(B as u32, NamesMode::Plaintext);
    let m = fx.mount();
    fs::write(m.path("three"), pattern(3 * B as usize, 4)).unwrap();
    fs::write(m.path("odd"), pattern(2 * B as usize + 100, 5)).unwrap();
    fs::write(m.path("empty-later"), b"x").unwrap();
    fs::write(m.path("empty"), b"").unwrap();
    m.unmount();
    rw(&fx.cipher.join("three")).set_len(H + 2 * S).unwrap();
    rw(&fx.cipher.join("odd")).set_len(H + 2 * S).unwrap();
    rw(&fx.cipher.join("empty-later")).set_len(H).unwrap();
    rw(&fx.cipher.join("empty")).set_len(H).unwrap();
    let m = fx.mount();
    for name in ["three", "odd", "empty-later", "empty"] {
        eio(&m.path(name));
    }
    m.unmount();
    let report = fsck(&fx);
    let has = |p: &str, w: &str| {
        report
            .problems
            .iter()
            .any(|q| q.path == p && q.what.contains(w))
    };
    assert!(has("/three", "has no end mark"), "{:?}", report.problems);
    assert!(has("/odd", "has no end mark"), "{:?}", report.problems);
    assert!(
        has("/empty", "cut down to its header"),
        "{:?}",
        report.problems
    );
    assert!(has("/empty-later", "cut down to its header"));
    assert_eq!(report.problems.len(), 4, "{:?}", report.problems);
}

/// PUNCH_HOLE, ZERO_RANGE, mode-0 fallocate and SEEK_DATA/SEEK_HOLE give
/// the same contents and sizes as the same calls on a backing file.
#[test]
fn fallocate_and_seek_behave_like_the_backing_filesystem() {
    let fx = Fixture::new(B as u32, NamesMode::Plaintext);
    let m = fx.mount();
    let ours = fs::File::create(m.path("f")).unwrap();
    let refp = fx.tmp.path().join("reference");
    let theirs = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&refp)
        .unwrap();
    let ours = {
        drop(ours);
        rw(&m.path("f"))
    };
    const KEEP: i32 = libc::FALLOC_FL_KEEP_SIZE;
    const PUNCH: i32 = libc::FALLOC_FL_PUNCH_HOLE;
    const ZERO: i32 = libc::FALLOC_FL_ZERO_RANGE;
    let data = pattern(40 * B as usize, 6);
    for f in [&ours, &theirs] {
        f.write_all_at(&data, 0).unwrap();
    }
    let ops: &[(i32, u64, u64)] = &[
        (PUNCH | KEEP, 3 * B + 17, 10 * B),
        (ZERO | KEEP, 20 * B, 3 * B + 5),
        (ZERO, 38 * B, 5 * B),
        (0, 50 * B, 2 * B),
        (KEEP, 60 * B, B),
        (PUNCH | KEEP, 0, 100),
        (PUNCH | KEEP, 41 * B, 30 * B),
    ];
    for &(mode, off, len) in ops {
        let a = falloc(&ours, mode, off, len);
        let b = falloc(&theirs, mode, off, len);
        assert_eq!(a, b, "fallocate mode {mode:#x} at {off}+{len}");
        let (x, y) = (
            ours.metadata().unwrap().len(),
            theirs.metadata().unwrap().len(),
        );
        assert_eq!(x, y, "size after mode {mode:#x}");
        let mut got = vec![0u8; x as usize];
        let mut want = vec![0u8; y as usize];
        ours.read_exact_at(&mut got, 0).unwrap();
        theirs.read_exact_at(&mut want, 0).unwrap();
        assert!(
            got == want,
            "contents differ after mode {mode:#x} at {off}+{len}"
        );
    }
    // Unsupported modes are refused, not faked.
    assert_eq!(
        falloc(&ours, libc::FALLOC_FL_COLLAPSE_RANGE, 0, B),
        Err(libc::EOPNOTSUPP)
    );
    // Holes: the punched range holds a hole at block granularity, data
    // around it, a hole at the end, ENXIO past the end.
    let size = ours.metadata().unwrap().len();
    let hole = seek(&ours, 0, true).unwrap();
    assert!((4 * B..=5 * B).contains(&hole), "first hole at {hole}");
    assert_eq!(
        seek(&ours, 0, false),
        Ok(0),
        "first data (a 100-byte punch is no hole)"
    );
    let data_after = seek(&ours, hole, false).unwrap();
    assert!(
        data_after > hole && data_after <= 13 * B + 17,
        "data after the hole at {data_after}"
    );
    // The punch reached the end: the last byte is in a trailing hole.
    assert_eq!(seek(&ours, size - 1, true), seek(&theirs, size - 1, true));
    assert_eq!(seek(&ours, size - 1, true), Ok(size - 1));
    assert_eq!(seek(&ours, size - 1, false), Err(libc::ENXIO));
    assert_eq!(seek(&ours, size, false), Err(libc::ENXIO));
    // The backing file really has the holes.
    let backing = fs::metadata(fx.cipher.join("f")).unwrap();
    assert!(
        backing.blocks() * 512 < 40 * B,
        "{} bytes",
        backing.blocks() * 512
    );
    drop(ours);
    m.unmount();
    let report = fsck(&fx);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// On a full backing disk every size change that needs a new block fails
/// with ENOSPC and leaves the backing file byte for byte as it was; once
/// space is free the same calls work.
#[test]
fn size_changes_on_a_full_disk_fail_cleanly() {
    let fx = Fixture::new(B as u32, NamesMode::Plaintext);
    let _disk = crate::fs_fulldisk::Tmpfs::over(&fx.cipher, "1m");
    let m = fx.mount();
    let plain = pattern(B as usize + 1000, 8);
    fs::write(m.path("victim"), &plain).unwrap();
    let done = crate::fs_fulldisk::fill_completely(&m);
    let backing = fx.cipher.join("victim");
    let before = fs::read(&backing).unwrap();
    let f = rw(&m.path("victim"));
    let enospc = |r: std::io::Result<()>, what: &str| {
        let e = r.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{what}: {e}");
        assert_eq!(
            fs::read(&backing).unwrap(),
            before,
            "{what} changed the file"
        );
    };
    enospc(f.set_len(50 << 20), "truncate up");
    enospc(f.write_all_at(b"far", 30 << 20), "write past the end");
    enospc(
        falloc(&f, 0, 0, 10 << 20).map_err(std::io::Error::from_raw_os_error),
        "fallocate",
    );
    assert_eq!(fs::read(m.path("victim")).unwrap(), plain);
    fs::remove_file(m.path("big0")).unwrap();
    assert!(!done.is_empty());
    f.set_len(50 << 20).unwrap();
    f.write_all_at(b"far", 30 << 20).unwrap();
    let got = fs::read(m.path("victim")).unwrap();
    assert_eq!(&got[..plain.len()], &plain[..]);
    assert_eq!(&got[30 << 20..(30 << 20) + 3], b"far");
}

/// A format-1 file (as written before the end mark) reads, grows densely,
/// is counted by fsck, and converts to format 2 when truncated to zero.
#[test]
fn format_1_file_reads_and_converts_when_emptied() {
    let fx = Fixture::new(B as u32, NamesMode::Plaintext);
    let m = fx.mount();
    let plain = pattern(2 * B as usize + 300, 7);
    fs::write(m.path("old"), &plain).unwrap();
    m.unmount();
    downgrade_to_v1(&fx, "old", &plain);
    assert_eq!(fsck(&fx).old_format_files, 1);
    let m = fx.mount();
    assert_eq!(fs::read(m.path("old")).unwrap(), plain);
    // Appends and gaps are dense in format 1.
    let f = rw(&m.path("old"));
    f.write_all_at(b"tail", 5 * B).unwrap();
    let mut want = plain.clone();
    want.resize(5 * B as usize, 0);
    want.extend_from_slice(b"tail");
    assert_eq!(fs::read(m.path("old")).unwrap(), want);
    let backing = fx.cipher.join("old");
    let mut v = [0u8; 2];
    fs::File::open(&backing)
        .unwrap()
        .read_exact_at(&mut v, 4)
        .unwrap();
    assert_eq!(u16::from_be_bytes(v), HEADER_FORMAT_V1);
    // Truncating to zero converts it; then it has an end mark.
    f.set_len(0).unwrap();
    fs::File::open(&backing)
        .unwrap()
        .read_exact_at(&mut v, 4)
        .unwrap();
    assert_eq!(u16::from_be_bytes(v), 2);
    f.write_all_at(b"new", 0).unwrap();
    drop(f);
    assert_eq!(fs::read(m.path("old")).unwrap(), b"new");
    m.unmount();
    let report = fsck(&fx);
    assert_eq!(report.old_format_files, 0);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// Rewrites the backing file `name` (plaintext `plain`) as format 1: the
/// same header with version 1 and every block sealed without end mark.
fn downgrade_to_v1(fx: &Fixture, name: &str, plain: &[u8]) {
    let path = fx.cipher.join(name);
    let bytes = fs::read(&path).unwrap();
    let header = FileHeader::decode(&bytes).unwrap();
    let ks: Arc<dyn KeyService> = Arc::new(fx.engine.clone());
    let vol = Volume::open(&fx.cipher, &ks, &root()).unwrap();
    let ctx = kmsfs::fuse::file_context(
        &vol.config.volume_id,
        &kmsfs::fuse::inode::PlainPath::root().child(std::ffi::OsStr::new(name)),
    );
    let dek = ks
        .decrypt_data_key(&root(), &header.wrapped_dek, &ctx)
        .unwrap();
    let c = ContentCipher::new(&dek, header.file_id, B as u32).unwrap();
    let mut out = bytes[..HEADER_LEN].to_vec();
    out[4..6].copy_from_slice(&HEADER_FORMAT_V1.to_be_bytes());
    for (i, chunk) in plain.chunks(B as usize).enumerate() {
        out.extend_from_slice(&c.seal_block(i as u64, BlockMark::V1, chunk).unwrap());
    }
    fs::write(&path, out).unwrap();
}

fn fsck(fx: &Fixture) -> kmsfs::fsck::Report {
    let ks: Arc<dyn KeyService> = Arc::new(fx.engine.clone());
    let vol = Volume::open(&fx.cipher, &ks, &root()).unwrap();
    kmsfs::fsck::check(&vol, ks.as_ref(), &root()).unwrap()
}
