//! `lseek(SEEK_DATA | SEEK_HOLE)` on a real mount answers as tmpfs does:
//! the same files built by the same calls on a kmsfs mount (over an ext4
//! and over a tmpfs backing) and on a tmpfs give the same offset or errno
//! at every block edge, for holes of many sizes, leading, trailing and
//! punched holes, and negative offsets (xfstests generic/448, 490).

// Helpers in test files panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::fs_fulldisk::Tmpfs;

use common::Fixture;
use kmsfs::format::NamesMode;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

const B: u64 = 4096;

/// One step building a test file.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Writes this many bytes of non-zero data at this offset.
    Write(u64, u64),
    /// Writes this many zero bytes at this offset (data, not a hole).
    WriteZeros(u64, u64),
    Truncate(u64),
    /// fallocate PUNCH_HOLE | KEEP_SIZE.
    Punch(u64, u64),
    /// fallocate mode 0: reserved, unwritten space (a hole to lseek).
    Allocate(u64, u64),
}

/// The files: name and the calls that build it.
fn cases() -> Vec<(String, Vec<Op>)> {
    use Op::*;
    let mut v = vec![
        ("empty".into(), vec![]),
        ("one_byte".into(), vec![Write(0, 1)]),
        ("dense".into(), vec![Write(0, 3 * B + 100)]),
        ("trailing_hole".into(), vec![Write(0, B), Truncate(10 * B)]),
        (
            "trailing_partial_hole".into(),
            vec![Write(0, B + 7), Truncate(3 * B + 500)],
        ),
        ("only_a_hole".into(), vec![Truncate(5 * B + 3)]),
        // seek_sanity's probe for unwritten extents, and its test 15.
        ("allocated".into(), vec![Allocate(0, 2 * B)]),
        (
            "allocated_then_data_after_it".into(),
            vec![Allocate(0, 64 * B), Write(0, B), Write(64 * B, B)],
        ),
        (
            "truncated_up_then_data_after_it".into(),
            vec![Write(0, 10), Truncate(8 * B), Write(8 * B, 3)],
        ),
        // Written zeros are data on tmpfs, also once the file grows.
        (
            "written_zeros_then_data_after_them".into(),
            vec![WriteZeros(0, B + 10), Write(2 * B, B)],
        ),
        ("leading_hole".into(), vec![Write(5 * B, B)]),
        (
            "data_in_a_partial_last_block".into(),
            vec![Write(0, 100), Write(10 * B + 5, 10)],
        ),
        // generic/490: the only data is the last block after a long hole.
        (
            "long_hole_then_data".into(),
            vec![Write((12 + B / 4) * B, B)],
        ),
        (
            "punched".into(),
            vec![
                Write(0, 40 * B),
                Punch(3 * B + 17, 10 * B),
                Punch(20 * B, B),
                Punch(25 * B, 2 * B),
                Punch(30 * B + 1, B),
            ],
        ),
    ];
    // Holes of many sizes between data blocks, and after the last data.
    for k in [1, 2, 3, 4, 5, 7, 8, 13, 31, 100, 257, 1040] {
        v.push((
            format!("holes_of_{k}"),
            vec![
                Write(0, B),
                Write((k + 1) * B, B),
                Write((2 * k + 2) * B + 10, 2 * B),
                Truncate((3 * k + 5) * B + 99),
            ],
        ));
    }
    v
}

fn build(dir: &Path, name: &str, ops: &[Op]) {
    let f = fs::File::create(dir.join(name)).unwrap();
    for op in ops {
        match *op {
            Op::Write(off, len) => {
                let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
                f.write_all_at(&data, off).unwrap();
            }
            Op::WriteZeros(off, len) => f.write_all_at(&vec![0; len as usize], off).unwrap(),
            Op::Truncate(size) => f.set_len(size).unwrap(),
            Op::Punch(off, len) => {
                let flags =
                    rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
                rustix::fs::fallocate(&f, flags, off, len).unwrap();
            }
            Op::Allocate(off, len) => {
                let flags = rustix::fs::FallocateFlags::empty();
                rustix::fs::fallocate(&f, flags, off, len).unwrap();
            }
        }
    }
}

/// Every block edge of a file of `size` bytes, a byte either side, the
/// end, and offsets far past it.
fn offsets(size: u64) -> Vec<u64> {
    let mut v = vec![size.saturating_sub(1), size, size + 1, u64::MAX >> 1];
    for j in 0..=size / B + 1 {
        v.extend([j * B, j * B + 1, (j * B).saturating_sub(1)]);
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// The answer of one lseek: an offset or an errno.
type Answer = Result<u64, i32>;

/// SEEK_DATA and SEEK_HOLE of `path` at each offset.
fn answers(path: &Path, at: &[u64]) -> Vec<(u64, Answer, Answer)> {
    use rustix::fs::{SeekFrom, seek};
    let f = fs::File::open(path).unwrap();
    at.iter()
        .map(|&o| {
            let data = seek(&f, SeekFrom::Data(o)).map_err(|e| e.raw_os_error());
            let hole = seek(&f, SeekFrom::Hole(o)).map_err(|e| e.raw_os_error());
            (o, data, hole)
        })
        .collect()
}

/// SEEK_DATA and SEEK_HOLE at negative offsets (which rustix cannot
/// pass), through python's `os.lseek`: one line per file and offset.
fn negative_answers(dir: &Path, names: &[String]) -> String {
    let script = r#"
import os, sys
for name in sys.argv[2:]:
    fd = os.open(os.path.join(sys.argv[1], name), os.O_RDONLY)
    for off in (-1, -4096, -(1 << 63)):
        for w, how in (("data", os.SEEK_DATA), ("hole", os.SEEK_HOLE)):
            try:
                r = os.lseek(fd, off, how)
            except OSError as e:
                r = "errno %d" % e.errno
            print(name, off, w, r)
    os.close(fd)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir)
        .args(names)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Builds every case in `ours` and in `theirs` and compares the answers.
fn compare(ours: &Path, theirs: &Path) {
    let cases = cases();
    for (name, ops) in &cases {
        build(ours, name, ops);
        build(theirs, name, ops);
        let size = fs::metadata(theirs.join(name)).unwrap().len();
        assert_eq!(fs::metadata(ours.join(name)).unwrap().len(), size);
        let at = offsets(size);
        let want = answers(&theirs.join(name), &at);
        let got = answers(&ours.join(name), &at);
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(
                g, w,
                "{name} ({size} bytes): (offset, SEEK_DATA, SEEK_HOLE)"
            );
        }
    }
    let names: Vec<String> = cases.into_iter().map(|(n, _)| n).collect();
    let want = negative_answers(theirs, &names);
    assert!(want.contains("errno 6"), "tmpfs: {want}");
    assert_eq!(negative_answers(ours, &names), want);
}

#[test]
fn seek_data_and_hole_answer_as_tmpfs_does() {
    for backing_on_tmpfs in [false, true] {
        let fx = Fixture::new(B as u32, NamesMode::Plaintext);
        let reference = fx.tmp.path().join("reference");
        fs::create_dir(&reference).unwrap();
        let _theirs = Tmpfs::over(&reference, "64m");
        let _backing = backing_on_tmpfs.then(|| Tmpfs::over(&fx.cipher, "64m"));
        let m = fx.mount();
        compare(&m.mnt, &reference);
        // The files read back as on tmpfs too.
        for (name, _) in cases() {
            let got = fs::read(m.path(&name)).unwrap();
            assert!(got == fs::read(reference.join(&name)).unwrap(), "{name}");
        }
        m.unmount();
    }
}
