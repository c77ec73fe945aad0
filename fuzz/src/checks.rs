//! The fuzz checks, one function per target: feed arbitrary bytes to a parser
//! of untrusted input and panic only when a property is broken (a panic inside
//! the parser is itself the finding). Used by the `cargo fuzz` targets in
//! `fuzz/fuzz_targets/` and, through `#[path]`, by the root crate's
//! `tests/fuzz_regressions.rs`, which replays the corpora with `cargo test`.
//!
//! Several targets take a leading *mode* byte so that one target can both
//! feed raw bytes to a decoder (must be refused, never panic) and build a
//! valid encoding from the input (must round-trip).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kms_engine::audit::chain;
use kms_engine::audit::digest::{Digest, SigningKey};
use kms_engine::audit::segment::{digest_name, segment_name};
use kms_engine::audit::{NullSink, PublicKey};
use kms_engine::blob::{self, BlobHeader};
use kms_engine::context::context_from;
use kms_engine::policy::{self, Policy, RequestContext};
use kms_engine::store::format::{StoreHeader, open_file, seal_file};
use kms_engine::store::root::{self as store_root, KdfParams, RootKind};
use kms_engine::{Engine, KeyId, ManualClock, Principal, RootKeySource};
use kmsfs::content::{BlockLayout, ContentCipher};
use kmsfs::format::{FileHeader, FileId, HEADER_LEN, NamesMode, VolumeConfig};
use kmsfs::names::{
    BackingKind, BackingName, DirIv, NameTransform, classify_backing_name, long_backing_name,
};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// The content data key every content check uses.
pub const FIXED_DEK: [u8; 32] = [0x42; 32];
/// The file id every content check uses.
pub const FIXED_FILE_ID: [u8; 16] = [0x11; 16];
/// The volume names key every names check uses.
pub const FIXED_NAMES_KEY: [u8; 32] = [0x33; 32];
/// The directory IV every names check uses.
pub const FIXED_DIR_IV: [u8; 16] = [0x44; 16];
/// The engine master key material the blob check opens with.
pub const FIXED_BLOB_KEY: [u8; 32] = [0x55; 32];
/// The store root key (key-file kind) the store check opens with.
pub const FIXED_ROOT_KEY: [u8; 32] = [0x66; 32];
/// The audit signing seed whose public key the audit check verifies against.
pub const FIXED_AUDIT_SEED: [u8; 32] = [0x77; 32];
/// Unix time of the manual clock of the engine checks.
pub const FIXED_NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// Splits off the leading mode byte.
fn mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(m, rest)| (*m, rest))
}

/// Reads a big-endian u64 from the first 8 bytes (zero-padded).
fn be_u64(data: &[u8]) -> (u64, &[u8]) {
    let n = data.len().min(8);
    let mut b = [0u8; 8];
    b[8 - n..].copy_from_slice(&data[..n]);
    (u64::from_be_bytes(b), &data[n..])
}

/// A block size 512..=65536 chosen by a byte.
fn block_size(b: u8) -> u32 {
    512 << (b % 8)
}

/// A fresh directory in tmpfs when there is one (the store and audit checks
/// write files on every input; fsync on a real disk would make them crawl).
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("kmsfs-fuzz-");
        b
    };
    match if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    } {
        Ok(d) => d,
        Err(e) => panic!("cannot create a scratch directory: {e}"),
    }
}

/// Removes every entry of `dir` (not `dir` itself).
fn clear_dir(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

fn write(path: &Path, bytes: &[u8]) {
    if let Err(e) = std::fs::write(path, bytes) {
        panic!("cannot write {}: {e}", path.display());
    }
}

// ---------------------------------------------------------------------------
// kmsfs
// ---------------------------------------------------------------------------

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
            assert_eq!(
                layout.cipher_size(p),
                canonical,
                "plain_size({cipher_size}) = {p} does not map back (B = {bs})"
            );
            let _ = layout.block_count(p);
            let _ = layout.block_range(index, p);
            let _ = layout.spans(index, p).take(4).count();
        }
        let stored = rest;
        if cipher.open_block(index, stored).is_ok() {
            panic!("random stored block {index} authenticated");
        }
        let mut out = b"prefix".to_vec();
        if cipher.open_blocks_append(index, stored, &mut out).is_ok() && !stored.is_empty() {
            panic!("random stored blocks at {index} authenticated");
        }
        assert_eq!(out, b"prefix", "output not restored after a failed open");
    } else {
        let Some((flip, plain)) = mode(rest) else {
            return;
        };
        let plain = &plain[..plain.len().min(bs as usize)];
        let sealed = match cipher.seal_block(index, plain) {
            Ok(s) => s,
            Err(_) if plain.is_empty() => return,
            Err(e) => panic!("seal of {} bytes failed: {e}", plain.len()),
        };
        assert_eq!(sealed.len(), BlockLayout::stored_len(plain.len()));
        match cipher.open_block(index, &sealed) {
            Ok(p) => assert_eq!(p, plain, "content round trip differs"),
            Err(e) => panic!("sealed block does not open: {e}"),
        }
        assert!(
            cipher.open_block(index ^ 1, &sealed).is_err(),
            "block opened at another index"
        );
        let mut tampered = sealed.clone();
        let bit = usize::from(flip) % (tampered.len() * 8);
        tampered[bit / 8] ^= 1 << (bit % 8);
        assert!(
            cipher.open_block(index, &tampered).is_err(),
            "block with bit {bit} flipped opened"
        );
        let mut many = Vec::new();
        if let Err(e) = cipher.seal_blocks_append(index, plain, &mut many) {
            panic!("seal_blocks_append failed: {e}");
        }
        let mut back = Vec::new();
        match cipher.open_blocks_append(index, &many, &mut back) {
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

// ---------------------------------------------------------------------------
// kms-engine
// ---------------------------------------------------------------------------

/// The engine ciphertext blob. Mode 0: `parse_header` and `open` of
/// arbitrary bytes under a fixed key (never opens). Mode 1: seal the input
/// under a header taken from it, parse the header back, open (equal), and
/// check another encryption context is refused.
pub fn engine_blob(data: &[u8]) {
    let Some((m, rest)) = mode(data) else {
        return;
    };
    let key = match blob::aead_key(&FIXED_BLOB_KEY) {
        Ok(k) => k,
        Err(e) => panic!("blob key: {e}"),
    };
    let ctx = context_from([("kmsfs:volume", "v"), ("kmsfs:path", "/a")]);
    if m % 2 == 0 {
        let _ = blob::parse_header(rest);
        if blob::open(&key, rest, &ctx).is_ok()
            || blob::open(&key, rest, &Default::default()).is_ok()
        {
            panic!("random blob opened");
        }
    } else {
        if rest.len() < 21 {
            return;
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&rest[..16]);
        let header = BlobHeader {
            key_id: KeyId(id),
            key_version: u32::from_be_bytes([rest[16], rest[17], rest[18], rest[19]]),
        };
        let plain = &rest[20..];
        let sealed = match blob::seal(&key, header, plain, &ctx) {
            Ok(s) => s,
            Err(e) => panic!("seal failed: {e}"),
        };
        assert_eq!(sealed.len(), blob::OVERHEAD + plain.len());
        if plain.is_empty() {
            // The format needs at least one byte of plaintext.
            assert!(blob::parse_header(&sealed).is_err());
            return;
        }
        assert_eq!(blob::parse_header(&sealed).ok(), Some(header));
        match blob::open(&key, &sealed, &ctx) {
            Ok(p) => assert_eq!(p.as_slice(), plain),
            Err(e) => panic!("sealed blob does not open: {e}"),
        }
        let other = context_from([("kmsfs:volume", "v"), ("kmsfs:path", "/b")]);
        assert!(blob::open(&key, &sealed, &other).is_err());
    }
}

fn fixed_root() -> RootKeySource {
    RootKeySource::Key(Zeroizing::new(FIXED_ROOT_KEY))
}

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(FIXED_NOW))
}

fn caller() -> Principal {
    Principal::from_ids(1000, 1000, vec![100])
}

/// One scratch directory per process for the checks that need files.
fn scratch(slot: &'static Mutex<Option<tempfile::TempDir>>) -> PathBuf {
    let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
    g.get_or_insert_with(scratch_dir).path().to_path_buf()
}

static STORE_DIR: Mutex<Option<tempfile::TempDir>> = Mutex::new(None);

/// The engine store file. Mode 0: the input is a whole store file:
/// `StoreHeader::decode`, the key check and `open_file` under a fixed root
/// key, then `Engine::open` on it in a real directory; all must refuse
/// (random bytes never authenticate) without panicking. Mode 1: the input is
/// the *plaintext state*, sealed properly under the fixed root key, so the
/// state decoder and `Engine::open` see arbitrary authenticated state; the
/// engine may open it or refuse it, and when it opens, listing and
/// describing every key must not panic.
pub fn engine_store(data: &[u8]) {
    let Some((m, rest)) = mode(data) else {
        return;
    };
    let derived = store_root::derive(&FIXED_ROOT_KEY);
    let file = if m % 2 == 0 {
        if let Ok(h) = StoreHeader::decode(rest)
            && h.kind == RootKind::KeyFile
            && h.check_matches(&derived.check)
        {
            assert!(
                open_file(&derived.seal, rest).is_err(),
                "random store authenticated"
            );
        }
        rest.to_vec()
    } else {
        let header = StoreHeader {
            kind: RootKind::KeyFile,
            kdf: KdfParams {
                m_cost_kib: 0,
                t_cost: 0,
                p_cost: 0,
            },
            salt: [0; 16],
            check: derived.check,
        };
        match seal_file(&header, &derived.seal, rest) {
            Ok(f) => f,
            Err(e) => panic!("seal_file failed: {e}"),
        }
    };
    let dir = scratch(&STORE_DIR);
    clear_dir(&dir);
    write(&dir.join(kms_engine::store::STATE_FILE), &file);
    let opened = Engine::open(&dir, fixed_root(), manual_clock(), Arc::new(NullSink));
    if let Ok(engine) = opened {
        assert!(m % 2 == 1, "engine opened a store of random bytes");
        let who = caller();
        let _ = engine.dispatch(&who, "ListAliases", Value::Null);
        if let Ok(v) = engine.dispatch(&who, "ListKeys", Value::Null)
            && let Some(keys) = v.get("Keys").and_then(Value::as_array)
        {
            for k in keys.iter().take(8) {
                let id = k.get("KeyId").cloned().unwrap_or(Value::Null);
                let req = serde_json::json!({"KeyId": id});
                let _ = engine.dispatch(&who, "DescribeKey", req.clone());
                let _ = engine.dispatch(&who, "GetKeyRotationStatus", req.clone());
                let _ = engine.dispatch(&who, "ListKeyRotations", req.clone());
                let gdk = serde_json::json!({"KeyId": id, "KeySpec": "AES_256"});
                let _ = engine.dispatch(&who, "GenerateDataKey", gdk);
            }
        }
    }
}

/// A live engine for the dispatch check, with two keys, an alias and a
/// ciphertext to refer to.
struct DispatchEngine {
    engine: Engine,
    key1: String,
    key2_arn: String,
    blob_b64: String,
    uses: u32,
    _dir: tempfile::TempDir,
}

fn new_dispatch_engine() -> DispatchEngine {
    let dir = scratch_dir();
    let engine = match Engine::create(
        &dir.path().join("engine"),
        fixed_root(),
        KdfParams::insecure_for_tests(),
        manual_clock(),
        Arc::new(NullSink),
    ) {
        Ok(e) => e,
        Err(e) => panic!("engine create: {e}"),
    };
    let who = caller();
    let mk = |desc: &str| -> Value {
        match engine.dispatch(&who, "CreateKey", serde_json::json!({"Description": desc})) {
            Ok(v) => v,
            Err(e) => panic!("CreateKey: {e}"),
        }
    };
    let k1 = mk("fuzz key 1");
    let k2 = mk("fuzz key 2");
    let field = |v: &Value, f: &str| -> String {
        v["KeyMetadata"][f]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| panic!("CreateKey response without {f}: {v}"))
    };
    let key1 = field(&k1, "KeyId");
    let key2_arn = field(&k2, "Arn");
    if let Err(e) = engine.dispatch(
        &who,
        "CreateAlias",
        serde_json::json!({"AliasName": "alias/fuzz", "TargetKeyId": key1}),
    ) {
        panic!("CreateAlias: {e}");
    }
    let enc = match engine.dispatch(
        &who,
        "Encrypt",
        serde_json::json!({"KeyId": key1, "Plaintext": "aGVsbG8=", "EncryptionContext": {"a": "b"}}),
    ) {
        Ok(v) => v,
        Err(e) => panic!("Encrypt: {e}"),
    };
    let blob_b64 = enc["CiphertextBlob"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("Encrypt response without CiphertextBlob: {enc}"));
    DispatchEngine {
        engine,
        key1,
        key2_arn,
        blob_b64,
        uses: 0,
        _dir: dir,
    }
}

/// Replaces the placeholder strings `@key1`, `@key2` and `@blob` anywhere in
/// the request by the live engine's key id, second key's ARN and a real
/// ciphertext (so the fuzzer reaches past "key not found").
fn substitute(v: &mut Value, e: &DispatchEngine) {
    match v {
        Value::String(s) => match s.as_str() {
            "@key1" => *s = e.key1.clone(),
            "@key2" => *s = e.key2_arn.clone(),
            "@blob" => *s = e.blob_b64.clone(),
            _ => {}
        },
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, e)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, e)),
        _ => {}
    }
}

static DISPATCH: Mutex<Option<DispatchEngine>> = Mutex::new(None);

/// `Engine::dispatch` with arbitrary JSON against a live engine. The first
/// byte picks an operation of [`kms_engine::ops::dispatch::OPERATIONS`], or
/// (past the end of the list) takes the operation name from the input up to
/// the first newline. Errors are fine; panics are not; an unknown operation
/// name must give `UnsupportedOperation`. The engine is recreated every 256
/// inputs so that created keys and deletions do not pile up.
pub fn engine_dispatch(data: &[u8]) {
    let Some((m, rest)) = mode(data) else {
        return;
    };
    let ops = kms_engine::ops::dispatch::OPERATIONS;
    let (op, json): (String, &[u8]) = match ops.get(usize::from(m)) {
        Some(op) => ((*op).to_string(), rest),
        None => {
            let cut = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            (
                String::from_utf8_lossy(&rest[..cut]).into_owned(),
                rest.get(cut + 1..).unwrap_or_default(),
            )
        }
    };
    let Ok(mut request) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let mut g = DISPATCH.lock().unwrap_or_else(|p| p.into_inner());
    if g.as_ref().is_none_or(|e| e.uses >= 256) {
        *g = None;
        *g = Some(new_dispatch_engine());
    }
    let Some(e) = g.as_mut() else {
        return;
    };
    e.uses += 1;
    substitute(&mut request, e);
    let result = e.engine.dispatch(&caller(), &op, request);
    if !ops.contains(&op.as_str()) {
        match result {
            Err(kms_engine::KmsError::UnsupportedOperation(_)) => {}
            other => panic!("unknown operation {op:?} gave {other:?}"),
        }
    }
}

static AUDIT_DIR: Mutex<Option<tempfile::TempDir>> = Mutex::new(None);

/// Separator between the parts of an audit check input (0xff never occurs
/// in UTF-8, so it cannot appear inside a JSON line).
pub const AUDIT_PART_SEPARATOR: &[u8] = b"\xff\xfe";

fn audit_key() -> SigningKey {
    match SigningKey::from_seed(&Zeroizing::new(FIXED_AUDIT_SEED)) {
        Ok(k) => k,
        Err(e) => panic!("audit signing key: {e}"),
    }
}

/// Re-links the JSON lines of a segment into a valid hash chain starting
/// after `prev` (sets `previousHash`, recomputes `hash`, writes canonical
/// form); other lines and a torn tail are kept as they are.
fn relink(segment: &[u8], prev: &mut String) -> Vec<u8> {
    let mut out = Vec::with_capacity(segment.len());
    for line in segment.split_inclusive(|b| *b == b'\n') {
        let (body, nl) = match line.strip_suffix(b"\n") {
            Some(b) => (b, true),
            None => (line, false),
        };
        match serde_json::from_slice::<Map<String, Value>>(body) {
            Ok(mut rec) if nl => {
                rec.insert("previousHash".into(), Value::String(prev.clone()));
                let (text, hash) = chain::seal(rec);
                out.extend_from_slice(text.as_bytes());
                out.push(b'\n');
                *prev = hash;
            }
            _ => out.extend_from_slice(line),
        }
    }
    out
}

/// The audit trail verifier over arbitrary trail files. The input is parts
/// separated by [`AUDIT_PART_SEPARATOR`]: the first part's first byte holds
/// flags (bit 0: re-link segment lines into a valid hash chain; bit 1:
/// re-sign digests with the fixed key), the rest of it is the first segment
/// (starting at sequence 1). Later parts start with `S` + one byte (a
/// segment whose first sequence is that byte) or `D` (a digest, named by its
/// `digestEndSequence` when it parses, else by its position). `verify` must
/// not panic, and can only report a valid trail with records when the
/// input's chain was real or re-linked.
pub fn audit_verify(data: &[u8]) {
    let Some((flags, _)) = mode(data) else {
        return;
    };
    let relink_chain = flags & 1 != 0;
    let resign = flags & 2 != 0;
    let key = audit_key();
    let dir = scratch(&AUDIT_DIR);
    clear_dir(&dir);
    let mut prev = chain::GENESIS_HASH.to_string();
    let mut parts = split_parts(&data[1..]).into_iter();
    let write_segment = |first: u64, bytes: &[u8], prev: &mut String| {
        let bytes = if relink_chain {
            relink(bytes, prev)
        } else {
            bytes.to_vec()
        };
        write(&dir.join(segment_name(first)), &bytes);
    };
    if let Some(first) = parts.next() {
        write_segment(1, first, &mut prev);
    }
    for (i, part) in parts.enumerate() {
        match part.split_first() {
            Some((b'S', rest)) => {
                let (first, body) = match rest.split_first() {
                    Some((n, body)) => (u64::from(*n), body),
                    None => (0, rest),
                };
                write_segment(first, body, &mut prev);
            }
            Some((b'D', body)) => match serde_json::from_slice::<Digest>(body) {
                Ok(mut d) => {
                    let bytes = if resign {
                        key.sign(&mut d);
                        d.to_canonical_json().into_bytes()
                    } else {
                        body.to_vec()
                    };
                    write(&dir.join(digest_name(d.digest_end_sequence)), &bytes);
                }
                Err(_) => write(&dir.join(digest_name(i as u64 + 1)), body),
            },
            _ => {}
        }
    }
    let public: PublicKey = key.public_key();
    if let Ok(report) = kms_engine::audit::verify(&dir, &public) {
        assert!(report.sealed_through <= report.last_sequence);
        assert_eq!(
            report.unsealed_records,
            report.last_sequence - report.sealed_through
        );
    }
}

fn split_parts(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest
        .windows(AUDIT_PART_SEPARATOR.len())
        .position(|w| w == AUDIT_PART_SEPARATOR)
    {
        parts.push(&rest[..i]);
        rest = &rest[i + AUDIT_PART_SEPARATOR.len()..];
    }
    parts.push(rest);
    parts
}

/// `Policy::parse` on arbitrary text; a parsed policy is evaluated and
/// explained for several callers and actions (with and without encryption
/// context and the optional request fields), and run through the lockout
/// check, none of which may panic; `evaluate` and `explain` must agree.
pub fn policy_parse(data: &[u8]) {
    let Ok(doc) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = Policy::parse(doc) else {
        return;
    };
    let key_id = "00112233-4455-4677-8899-aabbccddeeff";
    let arn = format!("arn:aws:kms:local:000000000000:key/{key_id}");
    let mut named = Principal::from_ids(1000, 50, vec![100, 101]);
    named.user_name = Some("alice".into());
    named.group_names = vec!["staff".into(), "wheel".into()];
    let callers = [Principal::from_ids(0, 0, vec![]), named];
    let ctx = context_from([("kmsfs:volume", "v"), ("kmsfs:path", "/a/b")]);
    let ops = [kms_engine::grant::GrantOperation::Decrypt];
    for who in &callers {
        for action in [
            "Decrypt",
            "kms:Encrypt",
            "PutKeyPolicy",
            "CreateGrant",
            "ReEncryptFrom",
            "GenerateDataKey",
            "kms:",
            "",
        ] {
            for now in [0, FIXED_NOW, i64::MAX] {
                let mut rc = RequestContext::new(who, action, &arn, key_id, now);
                check_policy_decision(&p, &rc);
                rc = rc.with_encryption_context(&ctx);
                rc.grant_operations = Some(&ops);
                rc.grantee_principal = Some("uid:1000");
                rc.retiring_principal = Some("user:bob");
                rc.request_alias = Some("alias/fuzz");
                rc.key_spec = Some("SYMMETRIC_DEFAULT");
                rc.key_usage = Some("ENCRYPT_DECRYPT");
                rc.encryption_algorithm = Some("SYMMETRIC_DEFAULT");
                rc.bypass_policy_lockout_safety_check = Some(true);
                check_policy_decision(&p, &rc);
            }
        }
        let _ = policy::check_lockout(&p, who, &arn, key_id, FIXED_NOW);
    }
}

fn check_policy_decision(p: &Policy, rc: &RequestContext<'_>) {
    let d = policy::evaluate(p, rc);
    let x = policy::explain(p, &[], rc);
    assert_eq!(x.decision, d, "explain and evaluate disagree");
    let _ = x.to_json();
    let _ = d.reason.to_string();
    let _ = format!("{x:?}");
}

/// Reference wildcard matcher: dynamic programming over characters.
fn glob_reference(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    // dp[j]: p[..i] matches t[..j]
    let mut dp = vec![false; t.len() + 1];
    dp[0] = true;
    for &pc in &p {
        let mut next = vec![false; t.len() + 1];
        if pc == '*' {
            let mut any = false;
            for j in 0..=t.len() {
                any |= dp[j];
                next[j] = any;
            }
        } else {
            for j in 1..=t.len() {
                next[j] = dp[j - 1] && (pc == '?' || eq(pc, t[j - 1]));
            }
        }
        dp = next;
    }
    dp[t.len()]
}

/// The policy wildcard matcher (`*`, `?`) against a reference implementation,
/// case-sensitive and not. Input: pattern, a 0 byte, text (both UTF-8).
pub fn policy_wildcard(data: &[u8]) {
    let cut = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (Ok(pattern), Ok(text)) = (
        std::str::from_utf8(&data[..cut]),
        std::str::from_utf8(data.get(cut + 1..).unwrap_or_default()),
    ) else {
        return;
    };
    if pattern.len() > 256 || text.len() > 256 {
        return;
    }
    assert_eq!(
        policy::wildcard::matches(pattern, text),
        glob_reference(pattern, text, false),
        "matches({pattern:?}, {text:?})"
    );
    assert_eq!(
        policy::wildcard::matches_ignore_ascii_case(pattern, text),
        glob_reference(pattern, text, true),
        "matches_ignore_ascii_case({pattern:?}, {text:?})"
    );
}
