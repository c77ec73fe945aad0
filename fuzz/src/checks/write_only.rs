//! Checks of the write-only volumes' formats (`kmsfs::keys::write_only`):
//! the slot-wrapped data key in a file header and the slot file.

use super::{FIXED_DEK, mode};
use kms_engine::context::context_from;
use kmsfs::crypto::SivKey;
use kmsfs::keys::DataKeyBytes;
use kmsfs::keys::write_only::{
    SLOT_ID_LEN, check_slot_plaintext, decode_slot_file, encode_slot_file, open_data_key,
    seal_data_key, slot_plaintext, wrapped_slot_id,
};

/// The slot key every write-only check uses.
pub const FIXED_SLOT_KEY: [u8; 32] = [0x66; 32];
/// The volume id every write-only check uses.
pub const FIXED_VOLUME: &str = "0f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b";

fn slot_key() -> SivKey {
    match SivKey::new(&FIXED_SLOT_KEY) {
        Ok(k) => k,
        Err(e) => panic!("slot key: {e}"),
    }
}

fn id_of(data: &[u8]) -> [u8; SLOT_ID_LEN] {
    let mut id = [0u8; SLOT_ID_LEN];
    for (i, b) in data.iter().skip(5).take(SLOT_ID_LEN).enumerate() {
        id[i] = *b;
    }
    id
}

/// Mode 0: arbitrary bytes as a wrapped key (never opens under the fixed
/// slot key), as a slot file (what decodes re-encodes to the same bytes)
/// and as a slot plaintext (what checks out re-encodes to the same bytes).
/// Mode 1: a data key (from the input) sealed under the fixed slot key for
/// a path (from the input) opens to itself, and not under another path or
/// with one bit flipped (position from the input).
pub fn write_only(data: &[u8]) {
    let Some((m, rest)) = mode(data) else { return };
    let ctx = |path: &str| context_from([("kmsfs:path", path), ("kmsfs:volume", FIXED_VOLUME)]);
    if m % 2 == 0 {
        if wrapped_slot_id(rest).is_ok() {
            assert!(
                open_data_key(&slot_key(), rest, &ctx("/a")).is_err(),
                "random bytes opened as a wrapped data key"
            );
        }
        let id = id_of(rest);
        if let Ok(rsa) = decode_slot_file(rest, &id) {
            assert_eq!(encode_slot_file(&id, rsa), rest, "slot file round trip");
        }
        if let Ok(key) = check_slot_plaintext(rest, FIXED_VOLUME, &id) {
            assert_eq!(
                slot_plaintext(&key, FIXED_VOLUME, &id).as_slice(),
                rest,
                "slot plaintext round trip"
            );
        }
        return;
    }
    let mut dek = FIXED_DEK;
    for (d, b) in dek.iter_mut().zip(rest) {
        *d ^= *b;
    }
    let mut nonce = [0u8; 12];
    for (n, b) in nonce.iter_mut().zip(rest.iter().skip(32)) {
        *n = *b;
    }
    let id = id_of(rest);
    let tail = rest.get(44..).unwrap_or_default();
    let path = format!("/{}", String::from_utf8_lossy(tail));
    let dek = DataKeyBytes::new(dek);
    let wrapped = match seal_data_key(&slot_key(), &id, &nonce, &dek, &ctx(&path)) {
        Ok(w) => w,
        Err(e) => panic!("seal: {e}"),
    };
    match open_data_key(&slot_key(), &wrapped, &ctx(&path)) {
        Ok(k) => assert_eq!(*k, *dek, "wrapped key round trip"),
        Err(e) => panic!("a sealed key does not open: {e}"),
    }
    assert!(open_data_key(&slot_key(), &wrapped, &ctx(&format!("{path}x"))).is_err());
    let bit = rest.first().map_or(0, |b| usize::from(*b)) % (wrapped.len() * 8);
    let mut flipped = wrapped.clone();
    flipped[bit / 8] ^= 1 << (bit % 8);
    assert!(
        open_data_key(&slot_key(), &flipped, &ctx(&path)).is_err(),
        "a flipped bit {bit} opened"
    );
}
