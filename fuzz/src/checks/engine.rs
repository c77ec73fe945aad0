//! Checks of the engine parsers: the ciphertext blob, the store file and
//! state, and the JSON operation dispatcher.

use std::sync::{Arc, Mutex};

use super::{
    FIXED_BLOB_KEY, FIXED_ROOT_KEY, caller, clear_dir, fixed_root, manual_clock, mode, scratch,
    scratch_dir, write,
};
use kms_engine::audit::NullSink;
use kms_engine::blob::{self, BlobHeader};
use kms_engine::context::context_from;
use kms_engine::store::format::{RootParams, StoreHeader, open_file, seal_file};
use kms_engine::store::root::{KdfParams, RootKind};
use kms_engine::{Engine, KeyId};
use serde_json::Value;

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

static STORE_DIR: Mutex<Option<tempfile::TempDir>> = Mutex::new(None);

/// The engine store file. Mode 0: the input is a whole store file:
/// `StoreHeader::decode`, unlocking the store key with a fixed root key and
/// `open_file`, then `Engine::open` on it in a real directory; all must refuse
/// (random bytes never authenticate) without panicking, and a passphrase
/// header that decodes has Argon2id costs within the caps. Mode 1: the input is
/// the *plaintext state*, sealed properly under the fixed root key, so the
/// state decoder and `Engine::open` see arbitrary authenticated state; the
/// engine may open it or refuse it, and when it opens, listing and
/// describing every key must not panic.
pub fn engine_store(data: &[u8]) {
    let Some((m, rest)) = mode(data) else {
        return;
    };
    let file = if m % 2 == 0 {
        // The header is read before anything is authenticated: one that
        // decodes never asks Argon2id for more than the caps (a tampered
        // header must not make `open` exhaust memory or hang).
        if let Ok(h) = StoreHeader::decode(rest)
            && h.root().kind == RootKind::Passphrase
            && let Err(e) = h.root().kdf.validate()
        {
            panic!("a decoded store header asks for {e}");
        }
        if let Ok(h) = StoreHeader::decode(rest)
            && h.root().kind == RootKind::KeyFile
            && let Ok(store_key) = h.unlock(&FIXED_ROOT_KEY)
        {
            assert!(
                open_file(&store_key, rest).is_err(),
                "random store authenticated"
            );
        }
        rest.to_vec()
    } else {
        let store_key = [0x77; 32];
        let header = match RootParams::fresh(RootKind::KeyFile, KdfParams::default())
            .and_then(|p| StoreHeader::wrap(p, &FIXED_ROOT_KEY, &store_key))
        {
            Ok(h) => h,
            Err(e) => panic!("wrapping the store key failed: {e}"),
        };
        match seal_file(&header, &store_key, rest) {
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
