//! Writes the seed corpora in `fuzz/corpus/<target>/` from real encodings
//! made by the project's own code (a real file header around a real engine
//! blob, real volume configs, real sealed content blocks and names, real
//! store files and state, a real signed audit trail, real policies), in the
//! input layout each check in `src/checks/` expects.
//!
//! Run from `fuzz/`: `cargo run --example gen_corpus` (add `-- --force` to
//! overwrite). Seeds are random where the format is (nonces, ids), so a
//! rerun writes different bytes; the committed corpus is one such run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kms_engine::audit::{AuditEvent, FileAuditTrail, NullSink, TrailOptions};
use kms_engine::blob::{self, BlobHeader};
use kms_engine::context::context_from;
use kms_engine::ops::dispatch::OPERATIONS;
use kms_engine::store::format::{StoreHeader, open_file};
use kms_engine::store::root::KdfParams;
use kms_engine::{Engine, KeyId, ManualClock, Principal, RootKeySource};
use kmsfs::content::{BlockMark, ContentCipher};
use kmsfs::format::{FileHeader, FileId, NamesMode, VolumeConfig};
use kmsfs::names::{BackingName, DirIv, NameTransform};
use kmsfs_fuzz::checks::{
    AUDIT_PART_SEPARATOR, FIXED_AUDIT_SEED, FIXED_DIR_IV, FIXED_NAMES_KEY, FIXED_NOW,
    FIXED_ROOT_KEY,
};
use serde_json::json;
use zeroize::Zeroizing;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Out {
    root: PathBuf,
    force: bool,
}

impl Out {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) -> Res<()> {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir)?;
        let p = dir.join(name);
        if p.exists() && !self.force {
            return Ok(());
        }
        std::fs::write(p, bytes)?;
        Ok(())
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn main() -> Res<()> {
    let force = std::env::args().any(|a| a == "--force");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let out = Out { root, force };
    headers_and_blobs(&out)?;
    configs(&out)?;
    content(&out)?;
    names(&out)?;
    store(&out)?;
    dispatch(&out)?;
    audit(&out)?;
    policies(&out)?;
    wildcards(&out)?;
    sigv4(&out)?;
    frames(&out)?;
    write_only(&out)?;
    println!("corpus written to {}", out.root.display());
    Ok(())
}

/// A real engine blob under a key that is NOT the checks' fixed blob key.
fn real_blob(plain: &[u8]) -> Res<Vec<u8>> {
    let key = blob::aead_key(&[0x21; 32])?;
    let header = BlobHeader {
        key_id: KeyId::parse("00112233-4455-4677-8899-aabbccddeeff").ok_or("key id")?,
        key_version: 1,
    };
    let ctx = context_from([("kmsfs:volume", "v"), ("kmsfs:path", "/a")]);
    Ok(blob::seal(&key, header, plain, &ctx)?)
}

fn headers_and_blobs(out: &Out) -> Res<()> {
    let wrapped = real_blob(&[7; 32])?;
    let h = FileHeader::new(FileId::random()?, wrapped.clone())?;
    out.put("file_header", "real-header", &h.encode()?)?;
    let mut with_content = h.encode()?.to_vec();
    with_content.extend_from_slice(&[0xAA; 64]);
    out.put("file_header", "real-header-with-content", &with_content)?;
    let h = FileHeader::new(FileId([0; 16]), vec![1])?;
    out.put("file_header", "short-wrapped-key", &h.encode()?)?;
    let h = FileHeader::new(FileId([0xff; 16]), vec![2; 102])?;
    out.put("file_header", "longest-wrapped-key", &h.encode()?)?;

    out.put("engine_blob", "real-blob-32", &cat(&[&[0], &wrapped]))?;
    out.put(
        "engine_blob",
        "real-blob-1",
        &cat(&[&[0], &real_blob(b"x")?]),
    )?;
    let mut seal_in = vec![1u8];
    seal_in.extend_from_slice(&[0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x46, 0x77]);
    seal_in.extend_from_slice(&[0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
    seal_in.extend_from_slice(&2u32.to_be_bytes());
    seal_in.extend_from_slice(b"a data key of thirty-two bytes!!");
    out.put("engine_blob", "seal-data-key", &seal_in)?;
    Ok(())
}

/// A real slot-wrapped data key (under another slot key than the checks'
/// fixed one), a real slot file and slot plaintext, and seal inputs.
fn write_only(out: &Out) -> Res<()> {
    use kmsfs::keys::write_only::{encode_slot_file, seal_data_key, slot_plaintext};
    let ctx = context_from([
        ("kmsfs:path", "/a"),
        ("kmsfs:volume", "0f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b"),
    ]);
    let key = kmsfs::crypto::SivKey::new(&[0x21; 32])?;
    let id = [0x77; 16];
    let dek = kmsfs::keys::DataKeyBytes::new([7; 32]);
    let wrapped = seal_data_key(&key, &id, &[9; 12], &dek, &ctx)?;
    out.put("write_only", "real-wrapped-key", &cat(&[&[0], &wrapped]))?;
    let rsa: Vec<u8> = (0..=255u8).collect();
    out.put(
        "write_only",
        "real-slot-file",
        &cat(&[&[0], &encode_slot_file(&id, &rsa)]),
    )?;
    let pt = slot_plaintext(&[0x33; 32], "0f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b", &id);
    // The check takes the slot id from bytes 5..21 of a slot file; a
    // plaintext only checks out for the id found there, so this seed
    // exercises the refusal path.
    out.put("write_only", "real-slot-plaintext", &cat(&[&[0], &pt]))?;
    out.put(
        "write_only",
        "seal-short-path",
        &cat(&[&[1], &[0x5a; 44], b"dir/file"]),
    )?;
    out.put("write_only", "seal-empty", &[1])?;
    Ok(())
}

fn configs(out: &Out) -> Res<()> {
    for (i, (bs, mode)) in [
        (4096, NamesMode::Encrypted),
        (512, NamesMode::Plaintext),
        (65536, NamesMode::Encrypted),
    ]
    .into_iter()
    .enumerate()
    {
        let wrapped = real_blob(&[9; 32])?;
        let cfg = VolumeConfig::new("alias/kmsfs".into(), wrapped, bs, mode, 1_700_000_000)?;
        out.put("volume_config", &format!("real-config-{i}"), &cfg.encode()?)?;
    }
    let compact = br#"{"format_version":2,"volume_id":"0f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b","feature_flags":[],"block_size":1024,"names_mode":"plaintext","master_key_id":"k","wrapped_names_key":"AQ==","created_unix_secs":0}"#;
    out.put("volume_config", "compact-config", compact)?;
    let compact_v1 = br#"{"format_version":1,"volume_id":"0f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b","feature_flags":["content-aes256-gcm-siv","path-bound-data-keys"],"block_size":1024,"names_mode":"plaintext","master_key_id":"k","wrapped_names_key":"AQ==","created_unix_secs":0}"#;
    out.put("volume_config", "compact-config-v1", compact_v1)?;
    Ok(())
}

fn content(out: &Out) -> Res<()> {
    // Mode 0: blocks sealed under another file's key: must be refused.
    for (bs_byte, bs, len) in [(3u8, 4096u32, 4096usize), (0, 512, 100), (7, 65536, 1)] {
        let other = ContentCipher::new(&[0x43; 32], FileId([0x12; 16]), bs)?;
        let block = other.seal_block(2, BlockMark::V1, &vec![b'k'; len])?;
        let input = cat(&[&[0, bs_byte], &2u64.to_be_bytes(), &block]);
        out.put(
            "content_block",
            &format!("foreign-block-{bs}-{len}"),
            &input,
        )?;
    }
    let sizes = [0u64, 128, 129, 156, 157, 128 + 4124, 128 + 4124 + 29];
    for s in sizes {
        let input = cat(&[&[0, 3], &s.to_be_bytes()]);
        out.put("content_block", &format!("backing-size-{s}"), &input)?;
    }
    // Mode 1: plaintext to seal and open.
    out.put(
        "content_block",
        "seal-short",
        &cat(&[&[1, 3], &5u64.to_be_bytes(), &[17], b"hello, kmsfs"]),
    )?;
    out.put(
        "content_block",
        "seal-full-512",
        &cat(&[&[1, 0], &0u64.to_be_bytes(), &[255], &[b'z'; 512]]),
    )?;
    Ok(())
}

fn names(out: &Out) -> Res<()> {
    let iv = DirIv(FIXED_DIR_IV);
    let t = NameTransform::new(&FIXED_NAMES_KEY, NamesMode::Encrypted)?;
    for (i, name) in [&b"file.txt"[..], b"a", &[0xff, 0xfe, b'x'], &[b'n'; 103]]
        .into_iter()
        .enumerate()
    {
        if let BackingName::Short(b) = t.encode_name(&iv, name)? {
            out.put("names", &format!("encrypted-name-{i}"), &cat(&[&[0], &b]))?;
        }
    }
    out.put("names", "plaintext-name", b"\x00notes.md")?;
    out.put("names", "reserved-name", b"\x00kmsfs.diriv")?;
    if let BackingName::Long { encoded, name, .. } = t.encode_name(&iv, &[b'L'; 200])? {
        out.put(
            "names",
            "long-name-side-file",
            &cat(&[&[1], encoded.as_bytes()]),
        )?;
        let split = cat(&[&[1], name.as_bytes(), b"\n", encoded.as_bytes()]);
        out.put("names", "long-name-split", &split)?;
    }
    let link = t.encrypt_symlink(&iv, b"../target/of/link")?;
    out.put("names", "symlink", &cat(&[&[2], link.as_bytes()]))?;
    // An encrypted symlink under another directory IV: must be refused.
    let other = t.encrypt_symlink(&DirIv([0x45; 16]), b"/etc/passwd")?;
    out.put(
        "names",
        "symlink-other-dir",
        &cat(&[&[2], other.as_bytes()]),
    )?;
    out.put("names", "encode-short", b"\x03hello world")?;
    out.put("names", "encode-long", &cat(&[&[3], &[b'q'; 180]]))?;
    Ok(())
}

fn new_engine(dir: &Path, root: RootKeySource) -> Res<Engine> {
    Ok(Engine::create(
        dir,
        root,
        KdfParams::insecure_for_tests(),
        Arc::new(ManualClock::new(FIXED_NOW)),
        Arc::new(NullSink),
    )?)
}

fn populate(e: &Engine) -> Res<()> {
    let who = Principal::from_ids(1000, 1000, vec![]);
    let k = e.dispatch(&who, "CreateKey", json!({"Description": "seed"}))?;
    let id = k["KeyMetadata"]["KeyId"].clone();
    e.dispatch(
        &who,
        "CreateAlias",
        json!({"AliasName": "alias/seed", "TargetKeyId": id}),
    )?;
    e.dispatch(&who, "EnableKeyRotation", json!({"KeyId": id}))?;
    e.dispatch(&who, "RotateKeyOnDemand", json!({"KeyId": id}))?;
    e.dispatch(
        &who,
        "TagResource",
        json!({"KeyId": id, "Tags": [{"TagKey": "team", "TagValue": "fs"}]}),
    )?;
    let k2 = e.dispatch(&who, "CreateKey", json!({}))?;
    e.dispatch(
        &who,
        "ScheduleKeyDeletion",
        json!({"KeyId": k2["KeyMetadata"]["KeyId"], "PendingWindowInDays": 7}),
    )?;
    Ok(())
}

fn store(out: &Out) -> Res<()> {
    let tmp = tempfile::tempdir()?;
    // Stores under other root keys: must be refused (WrongPassphrase).
    let d1 = tmp.path().join("other-key");
    populate(&new_engine(
        &d1,
        RootKeySource::Key(Zeroizing::new([0x99; 32])),
    )?)?;
    let f1 = std::fs::read(d1.join(kms_engine::store::STATE_FILE))?;
    out.put("engine_store", "store-other-key", &cat(&[&[0], &f1]))?;
    let d2 = tmp.path().join("passphrase");
    new_engine(
        &d2,
        RootKeySource::Passphrase(Zeroizing::new("correct horse".into())),
    )?;
    let f2 = std::fs::read(d2.join(kms_engine::store::STATE_FILE))?;
    out.put("engine_store", "store-passphrase", &cat(&[&[0], &f2]))?;
    // The plaintext state of a store under the fixed root key (mode 1).
    let d3 = tmp.path().join("fixed");
    let e = new_engine(&d3, RootKeySource::Key(Zeroizing::new(FIXED_ROOT_KEY)))?;
    let f3 = std::fs::read(d3.join(kms_engine::store::STATE_FILE))?;
    let store_key = StoreHeader::decode(&f3)?.unlock(&FIXED_ROOT_KEY)?;
    let empty = open_file(&store_key, &f3)?;
    out.put("engine_store", "state-empty", &cat(&[&[1], &empty]))?;
    populate(&e)?;
    let f3 = std::fs::read(d3.join(kms_engine::store::STATE_FILE))?;
    let full = open_file(&store_key, &f3)?;
    out.put("engine_store", "state-populated", &cat(&[&[1], &full]))?;
    Ok(())
}

fn dispatch(out: &Out) -> Res<()> {
    let ec = json!({"a": "b"});
    let reqs = [
        (
            "CreateKey",
            json!({"Description": "d", "Tags": [{"TagKey": "k", "TagValue": "v"}]}),
        ),
        ("DescribeKey", json!({"KeyId": "@key1"})),
        ("ListKeys", json!({"Limit": 1})),
        ("EnableKey", json!({"KeyId": "@key2"})),
        ("DisableKey", json!({"KeyId": "@key2"})),
        (
            "UpdateKeyDescription",
            json!({"KeyId": "@key1", "Description": "new"}),
        ),
        (
            "ScheduleKeyDeletion",
            json!({"KeyId": "@key2", "PendingWindowInDays": 7}),
        ),
        ("CancelKeyDeletion", json!({"KeyId": "@key2"})),
        (
            "CreateAlias",
            json!({"AliasName": "alias/x", "TargetKeyId": "@key1"}),
        ),
        (
            "UpdateAlias",
            json!({"AliasName": "alias/fuzz", "TargetKeyId": "@key2"}),
        ),
        ("DeleteAlias", json!({"AliasName": "alias/fuzz"})),
        ("ListAliases", json!({"KeyId": "@key1"})),
        (
            "TagResource",
            json!({"KeyId": "@key1", "Tags": [{"TagKey": "a", "TagValue": "b"}]}),
        ),
        ("UntagResource", json!({"KeyId": "@key1", "TagKeys": ["a"]})),
        ("ListResourceTags", json!({"KeyId": "@key1"})),
        (
            "Encrypt",
            json!({"KeyId": "alias/fuzz", "Plaintext": "aGk=", "EncryptionContext": ec}),
        ),
        (
            "Decrypt",
            json!({"CiphertextBlob": "@blob", "EncryptionContext": ec}),
        ),
        (
            "ReEncrypt",
            json!({"CiphertextBlob": "@blob", "SourceEncryptionContext": ec, "DestinationKeyId": "@key2"}),
        ),
        (
            "GenerateDataKey",
            json!({"KeyId": "@key1", "KeySpec": "AES_256", "EncryptionContext": ec}),
        ),
        (
            "GenerateDataKeyWithoutPlaintext",
            json!({"KeyId": "@key1", "NumberOfBytes": 32}),
        ),
        ("GenerateRandom", json!({"NumberOfBytes": 16})),
        (
            "EnableKeyRotation",
            json!({"KeyId": "@key1", "RotationPeriodInDays": 90}),
        ),
        ("DisableKeyRotation", json!({"KeyId": "@key1"})),
        ("GetKeyRotationStatus", json!({"KeyId": "@key1"})),
        ("RotateKeyOnDemand", json!({"KeyId": "@key1"})),
        ("ListKeyRotations", json!({"KeyId": "@key1", "Limit": 2})),
    ];
    for (op, req) in reqs {
        let idx = OPERATIONS
            .iter()
            .position(|o| *o == op)
            .ok_or("unknown operation")?;
        let idx = u8::try_from(idx)?;
        out.put(
            "engine_dispatch",
            op,
            &cat(&[&[idx], req.to_string().as_bytes()]),
        )?;
    }
    out.put(
        "engine_dispatch",
        "unknown-op",
        b"\xffPutKeyPolicy\n{\"KeyId\":\"@key1\"}",
    )?;
    Ok(())
}

fn event(n: u32) -> AuditEvent {
    AuditEvent {
        event_time: "2026-01-01T00:00:00Z".into(),
        event_name: if n.is_multiple_of(2) {
            "Decrypt"
        } else {
            "GenerateDataKey"
        }
        .into(),
        principal: "uid:1000".into(),
        invoked_by: None,
        access_key_id: None,
        source_ip_address: None,
        event_id: None,
        key_id: Some("00112233-4455-4677-8899-aabbccddeeff".into()),
        encryption_context: Some(context_from([("kmsfs:path", "/a")])),
        request_id: format!("req-{n}"),
        error_code: (n == 3).then(|| "AccessDeniedException".into()),
        error_message: None,
        request_parameters: Some(json!({"keySpec": "AES_256"})),
    }
}

fn audit(out: &Out) -> Res<()> {
    let tmp = tempfile::tempdir()?;
    let opts = TrailOptions {
        background: false,
        digest_every_records: 1_000_000,
        digest_every: Duration::from_secs(1_000_000),
        clock: Arc::new(ManualClock::new(FIXED_NOW)),
        ..TrailOptions::default()
    };
    let trail = FileAuditTrail::open(tmp.path(), Zeroizing::new(FIXED_AUDIT_SEED), opts)?;
    for n in 0..3 {
        trail.append(&event(n))?;
    }
    trail.seal()?;
    for n in 3..5 {
        trail.append(&event(n))?;
    }
    trail.close()?;
    let listing = kms_engine::audit::segment::list(tmp.path())?;
    let mut segs = Vec::new();
    for (_, p) in &listing.segments {
        segs.push(std::fs::read(p)?);
    }
    let mut digests = Vec::new();
    for (_, p) in &listing.digests {
        digests.push(std::fs::read(p)?);
    }
    let first = segs.first().ok_or("no segment")?;
    let mut input = cat(&[&[0], first]);
    for d in &digests {
        input.extend_from_slice(AUDIT_PART_SEPARATOR);
        input.push(b'D');
        input.extend_from_slice(d);
    }
    out.put("audit_verify", "real-trail", &input)?;
    // The same with re-linking and re-signing on (flags 3).
    input[0] = 3;
    out.put("audit_verify", "real-trail-relinked", &input)?;
    let torn = cat(&[&[1], first, b"{\"sequenceNumber\":6"]);
    out.put("audit_verify", "torn-tail", &torn)?;
    // Records 4.. moved to a second segment.
    let text = String::from_utf8_lossy(first);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.len() >= 5 {
        let (a, b) = lines.split_at(3);
        let two = cat(&[
            &[0],
            a.concat().as_bytes(),
            AUDIT_PART_SEPARATOR,
            b"S\x04",
            b.concat().as_bytes(),
        ]);
        out.put("audit_verify", "two-segments", &two)?;
    }
    Ok(())
}

fn policies(out: &Out) -> Res<()> {
    out.put(
        "policy_parse",
        "default-policy",
        kms_engine::key::default_policy("uid:1000").as_bytes(),
    )?;
    let docs = [
        json!({"Version": "2012-10-17", "Id": "p", "Statement": [
            {"Sid": "Shared", "Effect": "Allow", "Principal": {"AWS": ["uid:1000", "group:staff"]},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
             "Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": "/shared/*"}}},
            {"Effect": "Deny", "NotPrincipal": {"AWS": "user:alice"}, "NotAction": "kms:Describe?ey",
             "NotResource": "arn:aws:kms:*:*:key/0011*",
             "Condition": {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"},
                           "DateGreaterThan": {"aws:CurrentTime": "2026-01-31T12:00:00Z"}}}
        ]}),
        json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": "*",
        "Action": "kms:*",
        "Condition": {
            "ForAnyValue:StringEquals": {"kms:GrantOperations": ["Decrypt", "Encrypt"]},
            "NumericLessThanEquals": {"kms:CallerUid": "1000"},
            "StringEqualsIgnoreCase": {"kms:RequestAlias": "alias/Fuzz"},
            "Null": {"kms:GranteePrincipal": "false"},
            "ForAllValues:StringLike": {"kms:EncryptionContextKeys": "kmsfs:*"},
            "NumericGreaterThan": {"aws:EpochTime": "0"},
            "StringNotEqualsIfExists": {"kms:KeySpec": "RSA_2048"}
        }}}),
    ];
    for (i, d) in docs.iter().enumerate() {
        out.put(
            "policy_parse",
            &format!("policy-{i}"),
            d.to_string().as_bytes(),
        )?;
    }
    Ok(())
}

fn wildcards(out: &Out) -> Res<()> {
    let pairs: [&[u8]; 5] = [
        b"kms:*\0kms:Decrypt",
        b"arn:*:key/?bc\0arn:aws:kms:local:0:key/abc",
        b"a*b*c\0aXbYbZc",
        "?\u{e9}*\0x\u{e9}\u{e9}".as_bytes(),
        b"*?*?\0ab",
    ];
    for (i, p) in pairs.iter().enumerate() {
        out.put("policy_wildcard", &format!("pair-{i}"), p)?;
    }
    Ok(())
}

fn sigv4(out: &Out) -> Res<()> {
    // Mode 0: a request as boto3 sends it (a signature that does not match).
    let raw = format!(
        "POST /\nhost: localhost:4443\nx-amz-date: 20260101T000000Z\n\
         x-amz-target: TrentService.ListKeys\n\
         content-type: application/x-amz-json-1.1\n\
         authorization: AWS4-HMAC-SHA256 Credential=AKIAFUZZFUZZFUZZFUZZ/20260101/local/kms/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}\n\n{{}}",
        "ab".repeat(32)
    );
    out.put("sigv4_verify", "raw-request", &cat(&[&[0], raw.as_bytes()]))?;
    out.put(
        "sigv4_verify",
        "raw-no-authorization",
        b"\x00POST /?a=b\nhost: x\n\n{}",
    )?;
    // Mode 1: two extra signed headers and a JSON body.
    let mut signed = vec![1u8, 2, 5, b'a', b'b', b'c', b'd', b'e', 3, b'x', b'y', b'z'];
    signed.extend_from_slice(br#"{"KeyId":"alias/a","Plaintext":"aGk="}"#);
    out.put("sigv4_verify", "signed-request", &signed)?;
    out.put("sigv4_verify", "signed-empty-body", &[1, 0])?;
    Ok(())
}

/// Engine socket frames: streams of real request and response frames
/// (mode 0) and inputs the check builds frames from (mode 1).
fn frames(out: &Out) -> Res<()> {
    use kms_engine::service::frame::{OnBehalfOf, Request, Response};
    let requests = [
        Request {
            id: 1,
            operation: "ListKeys".into(),
            on_behalf_of: None,
            body: json!({}),
        },
        Request {
            id: 2,
            operation: "Decrypt".into(),
            on_behalf_of: Some(OnBehalfOf {
                uid: 1000,
                gid: 1000,
                groups: vec![4, 27, 100],
            }),
            body: json!({"CiphertextBlob": "AQIDBA==", "EncryptionContext": {"kmsfs:path": "/a"}}),
        },
    ];
    let responses = [
        Response::Ok {
            id: 2,
            body: json!({"Plaintext": "AAAA", "KeyId": "arn:aws:kms:local:000000000000:key/k"}),
        },
        Response::Error {
            id: 1,
            exception: "AccessDeniedException".into(),
            message: "User: uid:1000 is not authorized".into(),
        },
    ];
    let mut stream = vec![0u8];
    for r in &requests {
        stream.extend(r.encode()?);
    }
    out.put("service_frame", "requests", &stream)?;
    let mut stream = vec![0u8];
    for r in &responses {
        stream.extend(r.encode()?);
    }
    out.put("service_frame", "responses", &stream)?;
    out.put(
        "service_frame",
        "built-obo",
        &cat(&[&[1], &[0, 0, 3, 232, 0, 0, 3, 233], b"\x07Decrypt groups"]),
    )?;
    out.put(
        "service_frame",
        "built-ok",
        &cat(&[&[1], &[0, 0, 0, 0, 0, 0, 0, 3], b"\x04Okay"]),
    )?;
    Ok(())
}
