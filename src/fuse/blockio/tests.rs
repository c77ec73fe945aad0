//! Block I/O on a real backing file (no mount): holes, the end mark,
//! format-1 files, size limits.

use super::*;
use crate::format::{FileId, HEADER_FORMAT_VERSION, HEADER_LEN};
use std::os::unix::fs::MetadataExt;

const B: u64 = 4096;
const S: u64 = B + 28;
const H: u64 = HEADER_LEN as u64;

struct Fixture {
    _dir: tempfile::TempDir,
    file: File,
    cipher: ContentCipher,
    version: AtomicU16,
    tail: TailCache,
}

impl Fixture {
    /// An empty file of `version` (format 2 holds its empty end block).
    fn new(version: u16) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        file.write_all_at(&[0u8; HEADER_LEN], 0).unwrap();
        let cipher = ContentCipher::new(&[7; 32], FileId([1; 16]), B as u32).unwrap();
        let fx = Fixture {
            _dir: dir,
            file,
            cipher,
            version: AtomicU16::new(version),
            tail: TailCache::default(),
        };
        if version == HEADER_FORMAT_VERSION {
            let empty = fx
                .cipher
                .seal_block(0, BlockMark::Last { sparse: false }, &[])
                .unwrap();
            fx.file.write_all_at(&empty, H).unwrap();
        }
        fx
    }

    fn io(&self) -> BlockIo<'_> {
        BlockIo {
            file: &self.file,
            cipher: &self.cipher,
            path: &|| "/f".to_string(),
            version: &self.version,
            tail: &self.tail,
        }
    }

    fn backing_len(&self) -> u64 {
        self.file.metadata().unwrap().len()
    }

    fn backing_blocks(&self) -> u64 {
        self.file.metadata().unwrap().blocks()
    }

    fn read_all(&self) -> FsResult<Vec<u8>> {
        self.io().read(0, 1 << 40)
    }

    fn zero_backing(&self, from: u64, len: u64) {
        self.file
            .write_all_at(&vec![0u8; len as usize], from)
            .unwrap();
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn is_tampered(r: FsResult<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(FsError::Tampered { .. }))
}

/// A partial-block write assembles plaintext in the per-thread scratch
/// block; nothing of it may stay there after the request.
#[test]
fn partial_block_write_leaves_no_plaintext_in_scratch() {
    let fx = Fixture::new(HEADER_FORMAT_VERSION);
    let io = fx.io();
    io.write(0, &[0xAA; 5000]).unwrap();
    // Read-modify-write of both blocks: old plaintext and new bytes merged.
    io.write(10, &[0xBB; 4200]).unwrap();
    let mut want = vec![0xAA; 5000];
    want[10..4210].fill(0xBB);
    assert_eq!(io.read(0, 10_000).unwrap(), want);
    SCRATCH.with(|s| {
        let s = s.borrow();
        assert!(s.block.len() >= 4096);
        assert!(s.block.iter().all(|b| *b == 0), "plaintext left in scratch");
    });
}

/// Growing by truncate writes the new last block only: 100 MiB of plaintext
/// take a few backing blocks and read as zeros.
#[test]
fn truncate_up_leaves_a_hole() {
    let fx = Fixture::new(HEADER_FORMAT_VERSION);
    let io = fx.io();
    io.write(0, b"head").unwrap();
    io.truncate(100 << 20).unwrap();
    assert_eq!(io.sizes().unwrap().0, 100 << 20);
    assert_eq!(fx.backing_len(), io.layout().cipher_size(100 << 20));
    assert!(
        fx.backing_blocks() * 512 < 64 * 1024,
        "{} backing bytes allocated",
        fx.backing_blocks() * 512
    );
    let got = io.read(0, 3 * B).unwrap();
    assert_eq!(&got[..4], b"head");
    assert!(got[4..].iter().all(|b| *b == 0));
    let tail = io.read((100 << 20) - 10_000, 20_000).unwrap();
    assert_eq!(tail, vec![0u8; 10_000]);
    // Writing into the hole and past the end keeps everything else.
    io.write(50 << 20, b"middle").unwrap();
    io.write((200 << 20) + 1, b"far").unwrap();
    assert_eq!(io.read(50 << 20, 6).unwrap(), b"middle");
    assert_eq!(io.read(200 << 20, 4).unwrap(), b"\0far");
    assert_eq!(io.read(0, 4).unwrap(), b"head");
    assert_eq!(io.read(100 << 20, 8).unwrap(), vec![0; 8]);
}

/// A dense file (never given a hole) refuses an all-zero block; a file
/// with holes reads it as zeros, as it must.
#[test]
fn zeroed_block_is_tampering_unless_the_file_has_holes() {
    let fx = Fixture::new(HEADER_FORMAT_VERSION);
    let io = fx.io();
    io.write(0, &pattern(3 * B as usize, 1)).unwrap();
    fx.zero_backing(H + S, S);
    assert!(is_tampered(fx.read_all()));
    assert!(is_tampered(io.write(B + 5, b"x")));

    let fx = Fixture::new(HEADER_FORMAT_VERSION);
    let io = fx.io();
    io.write(0, &pattern(B as usize, 1)).unwrap();
    io.write(2 * B, &pattern(B as usize, 2)).unwrap();
    // Block 1 is a hole; block 0 as well, once zeroed by an attacker.
    fx.zero_backing(H, S);
    let got = fx.read_all().unwrap();
    assert_eq!(&got[..2 * B as usize], &vec![0; 2 * B as usize][..]);
    // The end mark cannot be forged: zeroing the last block is tampering.
    fx.zero_backing(H + 2 * S, S);
    assert!(is_tampered(fx.read_all()));
}

/// Cutting the backing file at a block boundary (or to its header) is
/// tampering: the new last block has no end mark.
#[test]
fn truncation_at_a_block_boundary_is_detected() {
    for keep in [0u64, 1, 2] {
        let fx = Fixture::new(HEADER_FORMAT_VERSION);
        let io = fx.io();
        io.write(0, &pattern(3 * B as usize, 3)).unwrap();
        fx.file.set_len(H + keep * S).unwrap();
        if keep == 0 {
            assert!(is_tampered(io.sizes()), "cut to the header");
            assert!(is_tampered(io.check_if_empty()));
        } else {
            assert!(is_tampered(fx.read_all()), "cut to {keep} blocks");
        }
    }
    // An empty file cut to its header.
    let fx = Fixture::new(HEADER_FORMAT_VERSION);
    fx.io().check_if_empty().unwrap();
    fx.file.set_len(H).unwrap();
    assert!(is_tampered(fx.io().check_if_empty()));
}

/// Every size change keeps exactly one marked block at the end, and the
/// old last block stops being the end.
#[test]
fn appends_and_shrinks_move_the_end_mark() {
    let fx = Fixture::new(HEADER_FORMAT_VERSION);
    let io = fx.io();
    let mut model = Vec::new();
    let steps: &[(u64, usize)] = &[(0, 100), (100, 3996), (4096, 4096), (9000, 10), (20_000, 5)];
    for &(off, len) in steps {
        let data = pattern(len, off as u8);
        io.write(off, &data).unwrap();
        let end = off as usize + len;
        if model.len() < end {
            model.resize(end, 0);
        }
        model[off as usize..end].copy_from_slice(&data);
        assert_eq!(fx.read_all().unwrap(), model);
        // Cutting the last block off leaves a file whose end is unmarked.
        let n = io.sizes().unwrap().0;
        if n > B {
            let saved = fx.backing_len();
            let cut = H + ((n - 1) / B) * S;
            let tail = {
                let mut t = vec![0u8; (saved - cut) as usize];
                fx.file.read_exact_at(&mut t, cut).unwrap();
                t
            };
            fx.file.set_len(cut).unwrap();
            assert!(is_tampered(fx.read_all()), "after step at {off}");
            fx.file.write_all_at(&tail, cut).unwrap();
        }
    }
    for new in [20_004u64, 12_288, 8193, 4096, 1, 0, 7] {
        io.truncate(new).unwrap();
        model.resize(new as usize, 0);
        assert_eq!(fx.read_all().unwrap(), model, "truncate to {new}");
    }
    fx.io().check_if_empty().unwrap();
}

/// Punch a hole and zero a range: whole blocks become backing holes, the
/// edges are zeroed, and SEEK_HOLE / SEEK_DATA find them.
#[test]
fn punch_zero_range_and_seek() {
    let fx = Fixture::new(HEADER_FORMAT_VERSION);
    let io = fx.io();
    let n = 16 * B as usize;
    let mut model = pattern(n, 9);
    io.write(0, &model).unwrap();
    assert_eq!(io.seek(0, Seek::Hole).unwrap(), n as u64);
    let before = fx.backing_blocks();
    io.punch(B + 100, 8 * B).unwrap();
    model[(B + 100) as usize..(9 * B + 100) as usize].fill(0);
    assert_eq!(fx.read_all().unwrap(), model);
    assert!(fx.backing_blocks() < before, "punch freed nothing");
    let hole = io.seek(0, Seek::Hole).unwrap();
    assert!((2 * B..=3 * B).contains(&hole), "first hole at {hole}");
    let data = io.seek(hole, Seek::Data).unwrap();
    assert!(
        data > hole && data <= 9 * B,
        "data after the hole at {data}"
    );
    assert_eq!(io.seek(10, Seek::Data).unwrap(), 10);
    assert!(matches!(
        io.seek(n as u64, Seek::Data),
        Err(FsError::NoSuchOffset)
    ));
    // Zero range past the end grows the file.
    io.zero_range(15 * B, 4 * B, false).unwrap();
    model[15 * B as usize..].fill(0);
    model.resize(19 * B as usize, 0);
    assert_eq!(fx.read_all().unwrap(), model);
    // Punching the very end zeroes the last block but keeps it.
    io.punch(0, 1 << 30).unwrap();
    assert_eq!(fx.read_all().unwrap(), vec![0; 19 * B as usize]);
    // Block 0 shares its first backing page with the header, so the
    // first whole hole may start at block 1.
    assert!(io.seek(0, Seek::Hole).unwrap() <= B);
}

/// Sizes past the format's limit are EFBIG before anything is written.
#[test]
fn huge_sizes_are_efbig_and_change_nothing() {
    let fx = Fixture::new(HEADER_FORMAT_VERSION);
    let io = fx.io();
    io.write(0, b"keep").unwrap();
    let before = std::fs::read(fx._dir.path().join("f")).unwrap();
    let max = io.layout().max_plain_size();
    assert!(matches!(io.truncate(max + 1), Err(FsError::TooBig)));
    assert!(matches!(io.write(max, b"xy"), Err(FsError::TooBig)));
    assert!(matches!(io.allocate(max, 2, false), Err(FsError::TooBig)));
    assert_eq!(std::fs::read(fx._dir.path().join("f")).unwrap(), before);
}

/// A format-1 file keeps reading and writing as format 1 (dense), and
/// becomes format 2 when truncated to zero.
#[test]
fn format_1_files_stay_dense_and_convert_when_emptied() {
    let fx = Fixture::new(HEADER_FORMAT_V1);
    let io = fx.io();
    io.write(0, b"old").unwrap();
    io.write(3 * B, b"gap").unwrap();
    assert_eq!(fx.backing_len(), io.layout().cipher_size(3 * B + 3));
    let got = fx.read_all().unwrap();
    assert_eq!(&got[..3], b"old");
    assert_eq!(&got[3 * B as usize..], b"gap");
    // No end mark in format 1: a cut at a block boundary reads shorter.
    fx.file.set_len(H + S).unwrap();
    assert_eq!(fx.read_all().unwrap().len(), B as usize);
    // Seek: all data.
    assert_eq!(io.seek(0, Seek::Hole).unwrap(), B);
    io.truncate(0).unwrap();
    assert_eq!(fx.version.load(Ordering::Acquire), HEADER_FORMAT_VERSION);
    let mut v = [0u8; 2];
    fx.file.read_exact_at(&mut v, 4).unwrap();
    assert_eq!(u16::from_be_bytes(v), HEADER_FORMAT_VERSION);
    assert_eq!(fx.backing_len(), H + 28);
    io.check_if_empty().unwrap();
    io.write(0, b"new").unwrap();
    assert_eq!(fx.read_all().unwrap(), b"new");
}

/// The state a crash leaves between the two steps of an append: the new
/// last block is written, the old one still carries the end mark. The file
/// reads in full, and the next append proceeds from it.
#[test]
fn a_crash_between_the_append_steps_leaves_a_readable_file() {
    let fx = Fixture::new(HEADER_FORMAT_VERSION);
    let io = fx.io();
    let first = pattern(B as usize, 4);
    io.write(0, &first).unwrap();
    // Step 2 of an append of 100 bytes, without step 3.
    let second = pattern(100, 5);
    let sealed = fx
        .cipher
        .seal_block(1, BlockMark::Last { sparse: false }, &second)
        .unwrap();
    fx.file.write_all_at(&sealed, H + S).unwrap();
    let mut want = first.clone();
    want.extend_from_slice(&second);
    assert_eq!(fx.read_all().unwrap(), want);
    io.write(want.len() as u64, b"more").unwrap();
    want.extend_from_slice(b"more");
    assert_eq!(fx.read_all().unwrap(), want);
    // Cut back to the block that kept its mark: not detected (documented).
    fx.file.set_len(H + S).unwrap();
    assert_eq!(fx.read_all().unwrap(), first);
}

/// Zeros written to a file without holes stay sealed data when the file
/// grows past them: its end mark still refuses a zeroed block.
#[test]
fn written_zeros_keep_a_file_without_holes() {
    let fx = Fixture::new(HEADER_FORMAT_VERSION);
    let io = fx.io();
    io.write(0, &pattern(B as usize, 1)).unwrap();
    io.write(B, &vec![0; B as usize]).unwrap();
    io.write(2 * B, &pattern(B as usize, 2)).unwrap();
    assert_eq!(
        fx.read_all().unwrap()[B as usize..2 * B as usize],
        vec![0; B as usize][..]
    );
    fx.zero_backing(H, S);
    assert!(is_tampered(fx.read_all()));
}

impl TailCache {
    fn held(&self) -> bool {
        self.0.lock().unwrap().is_some()
    }
}

/// Appends of `tar`'s size reuse the last block from the cache, and the
/// file they leave is the one a write from disk would leave, byte for byte.
#[test]
fn appends_through_the_tail_cache_write_what_reads_from_disk_write() {
    let cached = Fixture::new(HEADER_FORMAT_VERSION);
    let plain = Fixture::new(HEADER_FORMAT_VERSION);
    let data = pattern(100_000, 3);
    let mut at = 0;
    for len in [9728usize, 10240, 10240, 1318, 4096, 1, 4095, 20_000, 3] {
        cached.io().write(at as u64, &data[at..at + len]).unwrap();
        assert!(cached.tail.held(), "an append keeps the last block");
        plain.io().write(at as u64, &data[at..at + len]).unwrap();
        plain.tail.clear();
        at += len;
    }
    assert_eq!(cached.read_all().unwrap(), data[..at]);
    let backing = |fx: &Fixture| {
        let mut b = vec![0u8; fx.backing_len() as usize];
        fx.file.read_exact_at(&mut b, 0).unwrap();
        b
    };
    // Same key and file id: the same blocks (GCM-SIV is deterministic
    // per nonce; the nonces are per block), so the same bytes on disk.
    assert_eq!(backing(&cached).len(), backing(&plain).len());
    assert_eq!(plain.read_all().unwrap(), cached.read_all().unwrap());
}

/// Every other change of the content empties the cache, so the next
/// append reads the last block as it now is.
#[test]
fn tail_cache_follows_punch_truncate_and_other_writers() {
    let fx = Fixture::new(HEADER_FORMAT_VERSION);
    let io = fx.io();
    io.write(0, &[1u8; 14_000]).unwrap();
    // Whole blocks become holes and the last block's mark now allows
    // them: an append from a stale cached block would drop that mark, and
    // the holes would then read as tampering.
    io.punch(4096, 8192).unwrap();
    assert!(!fx.tail.held(), "punch empties the cache");
    io.write(14_000, &[2u8; 10]).unwrap();
    let mut want = vec![1u8; 14_000];
    want[4096..12_288].fill(0);
    want.extend_from_slice(&[2u8; 10]);
    assert_eq!(fx.read_all().unwrap(), want);

    io.truncate(5000).unwrap();
    io.write(5000, &[3u8; 5]).unwrap();
    want.truncate(5000);
    want.extend_from_slice(&[3u8; 5]);
    assert_eq!(fx.read_all().unwrap(), want);

    // Another writer (another host: its own cache) appends: the size
    // changed, so this one's cached block is not used.
    let other_tail = TailCache::default();
    let other = BlockIo {
        tail: &other_tail,
        ..fx.io()
    };
    other.write(5005, &[4u8; 7]).unwrap();
    assert!(fx.tail.held());
    io.write(5012, &[5u8; 3]).unwrap();
    want.extend_from_slice(&[4u8; 7]);
    want.extend_from_slice(&[5u8; 3]);
    assert_eq!(fx.read_all().unwrap(), want);

    // A failed write leaves the cache empty and the file as it was.
    let max = io.layout().max_plain_size();
    assert!(matches!(io.write(max, b"x"), Err(FsError::TooBig)));
    io.write(5015, b"!").unwrap();
    want.push(b'!');
    assert_eq!(fx.read_all().unwrap(), want);
}
