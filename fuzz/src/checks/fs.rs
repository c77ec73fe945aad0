//! Checks of the kmsfs on-disk parsers: file header, volume config, content
//! blocks and names.

use super::{FIXED_DEK, FIXED_DIR_IV, FIXED_FILE_ID, FIXED_NAMES_KEY, be_u64, block_size, mode};
use kmsfs::content::{BlockLayout, BlockMark, ContentCipher, Opened};
use kmsfs::format::{FileHeader, FileId, HEADER_LEN, NamesMode, VolumeConfig};
use kmsfs::names::{
    BackingKind, BackingName, DirIv, NameTransform, classify_backing_name, long_backing_name,
};

/// `FileHeader::decode` on arbitrary bytes; a decoded header re-encodes to
/// exactly the first 128 bytes (the decoder is strict, so the encoding is
/// unique).
pub fn file_header(data: &[u8]) {
    let Ok(h) = FileHeader::decode(data) else {
        return;
    };
    let enc = match h.encode() {
        Ok(e) => e,
        Err(e) => panic!("decoded header does not encode: {e}"),
    };
    assert_eq!(&enc[..], &data[..HEADER_LEN], "header round trip differs");
    assert_eq!(FileHeader::decode(&enc).ok(), Some(h));
}

/// `VolumeConfig::decode` on arbitrary bytes; a decoded config encodes, the
/// encoding decodes to an equal config, and encoding is a fixed point.
pub fn volume_config(data: &[u8]) {
    let Ok(cfg) = VolumeConfig::decode(data) else {
        return;
    };
    let enc = match cfg.encode() {
        Ok(e) => e,
        Err(e) => panic!("decoded config does not encode: {e}"),
    };
    let again = match VolumeConfig::decode(&enc) {
        Ok(c) => c,
        Err(e) => panic!("encoded config does not decode: {e}"),
    };
    assert_eq!(again, cfg, "config round trip differs");
    match again.encode() {
        Ok(e2) => assert_eq!(e2, enc, "config encoding is not a fixed point"),
        Err(e) => panic!("config re-encode failed: {e}"),
    }
}

/// Content blocks. Mode 0: `plain_size` of an arbitrary backing size (when
/// accepted, `cipher_size` gives the same size back) and `open_block` /
/// `open_blocks_append` of arbitrary stored bytes under a fixed key, which
/// must be refused. Mode 1: seal the input as plaintext, open it again
/// (equal), and check that the wrong index or one flipped bit is refused.
pub fn content_block(data: &[u8]) {
    let Some((m, rest)) = mode(data) else {
        return;
    };
    let Some((bs, rest)) = mode(rest) else {
        return;
    };
    let bs = block_size(bs);
    let layout = match BlockLayout::new(bs) {
        Ok(l) => l,
        Err(e) => panic!("valid block size refused: {e}"),
    };
    let cipher = match ContentCipher::new(&FIXED_DEK, FileId(FIXED_FILE_ID), bs) {
        Ok(c) => c,
        Err(e) => panic!("content cipher: {e}"),
    };
    let (raw_index, rest) = be_u64(rest);
    // Real indices come from byte offsets (offset / B), so never exceed u64::MAX / B.
    let index = raw_index % (u64::MAX / u64::from(bs));
    if m % 2 == 0 {
        let (cipher_size, _) = be_u64(&data[2..]);
        if let Ok(p) = layout.plain_size(cipher_size) {
            // A 0-byte backing file (no header yet) is an empty file, whose
            // canonical backing size is the bare header.
            let canonical = if cipher_size == 0 {
                HEADER_LEN as u64
            } else {
                cipher_size
            };
            // 156 bytes: an empty format-2 file (header and end block).
            assert!(
                layout.cipher_size(p) == canonical || layout.file_cipher_size(2, p) == canonical,
                "plain_size({cipher_size}) = {p} does not map back (B = {bs})"
            );
            let _ = layout.block_count(p);
            let _ = layout.block_range(index, p);
            let _ = layout.spans(index, p).take(4).count();
        }
        let stored = rest;
        if cipher.open_block(index, BlockMark::V1, stored).is_ok() {
            panic!("random stored block {index} authenticated");
        }
        let mut buf = vec![0u8; stored.len()];
        // As the last block of a format-2 file nothing random opens (an
        // all-zero block included); in the middle only all zeros do, as a hole.
        if cipher.open_at(2, index, index, stored, &mut buf).is_ok() {
            panic!("random stored block {index} opened as a last block");
        }
        if let Ok(o) = cipher.open_at(2, index, index.saturating_add(1), stored, &mut buf) {
            assert!(
                matches!(o, Opened::Hole { .. }) && stored.iter().all(|b| *b == 0),
                "random stored block {index} opened as a middle block"
            );
        }
        let mut out = b"prefix".to_vec();
        if cipher
            .open_blocks_append_v1(index, stored, &mut out)
            .is_ok()
            && !stored.is_empty()
        {
            panic!("random stored blocks at {index} authenticated");
        }
        assert_eq!(out, b"prefix", "output not restored after a failed open");
    } else {
        let Some((flip, plain)) = mode(rest) else {
            return;
        };
        let plain = &plain[..plain.len().min(bs as usize)];
        let mark = match flip % 3 {
            0 => BlockMark::V1,
            1 => BlockMark::Middle,
            _ => BlockMark::Last {
                sparse: flip & 8 != 0,
            },
        };
        let sealed = match cipher.seal_block(index, mark, plain) {
            Ok(s) => s,
            Err(_) if plain.is_empty() => return,
            Err(e) => panic!("seal of {} bytes failed: {e}", plain.len()),
        };
        assert_eq!(sealed.len(), BlockLayout::stored_len(plain.len()));
        match cipher.open_block(index, mark, &sealed) {
            Ok(p) => assert_eq!(p, plain, "content round trip differs"),
            Err(e) => panic!("sealed block does not open: {e}"),
        }
        assert!(
            cipher.open_block(index ^ 1, mark, &sealed).is_err(),
            "block opened at another index"
        );
        for other in [BlockMark::V1, BlockMark::Middle] {
            if other != mark {
                assert!(
                    cipher.open_block(index, other, &sealed).is_err(),
                    "block sealed with {mark:?} opened as {other:?}"
                );
            }
        }
        let mut tampered = sealed.clone();
        let bit = usize::from(flip) % (tampered.len() * 8);
        tampered[bit / 8] ^= 1 << (bit % 8);
        assert!(
            cipher.open_block(index, mark, &tampered).is_err(),
            "block with bit {bit} flipped opened"
        );
        let mut many = Vec::new();
        if plain.is_empty() {
            return;
        }
        if let Err(e) = cipher.seal_blocks_append_v1(index, plain, &mut many) {
            panic!("seal_blocks_append failed: {e}");
        }
        let mut back = Vec::new();
        match cipher.open_blocks_append_v1(index, &many, &mut back) {
            Ok(()) => assert_eq!(back, plain),
            Err(e) => panic!("open_blocks_append of sealed blocks failed: {e}"),
        }
    }
}

fn names_transform(mode: NamesMode) -> NameTransform {
    match NameTransform::new(&FIXED_NAMES_KEY, mode) {
        Ok(t) => t,
        Err(e) => panic!("name transform: {e}"),
    }
}

/// Names under a fixed names key and directory IV. Mode 0: `decode_name`
/// of an arbitrary backing name in both names modes (a decoded name encodes
/// back to the same backing name). Mode 1: `decode_long_name` with the
/// input as side file (backing name derived from it, and the raw split).
/// Mode 2: `decrypt_symlink` (random input never authenticates). Mode 3:
/// encode the input as a plaintext name and decode it back.
pub fn names(data: &[u8]) {
    let Some((m, rest)) = mode(data) else {
        return;
    };
    let iv = DirIv(FIXED_DIR_IV);
    let enc = names_transform(NamesMode::Encrypted);
    let _ = classify_backing_name(rest);
    match m % 4 {
        0 => {
            for t in [&enc, &names_transform(NamesMode::Plaintext)] {
                if let Ok(name) = t.decode_name(&iv, rest) {
                    match t.encode_name(&iv, &name) {
                        Ok(BackingName::Short(b)) => {
                            assert_eq!(b, rest, "decoded name does not encode back")
                        }
                        Ok(BackingName::Long { .. }) => {
                            panic!("short backing name decoded to a long name")
                        }
                        Err(e) => panic!("decoded name does not encode: {e}"),
                    }
                }
            }
        }
        1 => {
            if let Ok(side) = std::str::from_utf8(rest) {
                let backing = long_backing_name(side);
                assert_eq!(
                    classify_backing_name(backing.as_bytes()),
                    BackingKind::LongName
                );
                if let Ok(name) = enc.decode_long_name(&iv, backing.as_bytes(), rest) {
                    match enc.encode_name(&iv, &name) {
                        Ok(BackingName::Long { encoded, .. }) => {
                            assert_eq!(encoded.as_bytes(), rest, "long name round trip")
                        }
                        Ok(BackingName::Short(_)) => panic!("long name decoded to a short name"),
                        Err(e) => panic!("decoded long name does not encode: {e}"),
                    }
                }
            }
            let cut = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            let (backing, side) = rest.split_at(cut);
            let _ = enc.decode_long_name(&iv, backing, side.get(1..).unwrap_or_default());
        }
        2 => {
            if let Ok(t) = enc.decrypt_symlink(&iv, rest) {
                // Only a real encryption under FIXED_NAMES_KEY gets here; it
                // re-encrypts (random nonce) to something that decrypts alike.
                match enc.encrypt_symlink(&iv, &t) {
                    Ok(s) => assert_eq!(enc.decrypt_symlink(&iv, s.as_bytes()).ok(), Some(t)),
                    Err(e) => panic!("decrypted symlink target does not encrypt: {e}"),
                }
            }
        }
        _ => {
            for t in [&enc, &names_transform(NamesMode::Plaintext)] {
                let Ok(b) = t.encode_name(&iv, rest) else {
                    continue;
                };
                let back = match &b {
                    BackingName::Short(n) => t.decode_name(&iv, n),
                    BackingName::Long { name, encoded, .. } => {
                        t.decode_long_name(&iv, name.as_bytes(), encoded.as_bytes())
                    }
                };
                assert_eq!(back.ok().as_deref(), Some(rest), "name round trip differs");
                assert!(
                    t.decode_name(&DirIv([0x45; 16]), b.name()).is_err()
                        || t.mode() == NamesMode::Plaintext
                        || b.is_long(),
                    "name decoded under another directory IV"
                );
            }
        }
    }
}
