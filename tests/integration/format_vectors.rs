//! Decodes the frozen test vectors in `tests/vectors/` (written by an
//! independent Python implementation, `generate.py`) with the Rust format
//! code: `*_ok_*` vectors must decode to the stated plaintext, `fail_*`
//! vectors must fail in the stated way. `config_*` vectors hold a volume
//! config of each format version with its digest input and names-key
//! encryption context.

// Test helpers: a malformed vector file should abort the test loudly.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use kmsfs::content::{BlockLayout, ContentCipher, ContentError, Opened};
use kmsfs::format::{ConfigError, FileHeader, HEADER_FORMAT_V1, HEADER_LEN, VolumeConfig};
use kmsfs::names::{DirIv, NameError, NamesCipher};

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap_or((l.trim_end_matches(':'), ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// What the filesystem does on read: decode the header, size the file from
/// the backing length, open every block by the rules of the header's
/// format version (format 2: end mark on the last block, holes only when
/// that mark allows them).
fn read_backing(block_size: u32, dek: &[u8; 32], backing: &[u8]) -> Result<Vec<u8>, String> {
    let header = FileHeader::decode(backing).map_err(|_| "header".to_string())?;
    let cipher = ContentCipher::new(dek, header.file_id, block_size).unwrap();
    let layout = cipher.layout();
    let size = layout
        .check_size(header.version, backing.len() as u64)
        .map_err(|e| match e {
            ContentError::MissingEnd { .. } => "end".to_string(),
            _ => "truncated".to_string(),
        })?;
    let tampered = |e: ContentError| match e {
        ContentError::Tampered { block } => format!("tampered block {block}"),
        other => format!("{other}"),
    };
    let mut out = Vec::new();
    if header.version == HEADER_FORMAT_V1 {
        cipher
            .open_blocks_append_v1(0, &backing[HEADER_LEN..], &mut out)
            .map_err(tampered)?;
        assert_eq!(out.len() as u64, size);
        return Ok(out);
    }
    let blocks = layout.block_count(size).max(1);
    let (mut sparse, mut holes) = (None, Vec::new());
    let mut buf = vec![0u8; block_size as usize];
    for i in 0..blocks {
        let at = layout.block_cipher_offset(i) as usize;
        let len = BlockLayout::stored_len(layout.block_plain_len(i, size));
        match cipher
            .open_at(
                header.version,
                i,
                blocks - 1,
                &backing[at..at + len],
                &mut buf,
            )
            .map_err(tampered)?
        {
            Opened::Data { len, sparse: s } => {
                sparse = sparse.or(s);
                out.extend_from_slice(&buf[..len]);
            }
            Opened::Hole { len } => {
                holes.push(i);
                out.extend_from_slice(&buf[..len]);
            }
        }
    }
    if let (Some(false), Some(first)) = (sparse, holes.first()) {
        return Err(format!("zero block {first}"));
    }
    assert_eq!(out.len() as u64, size);
    Ok(out)
}

/// A volume config: `ok` ones decode, encode to the same bytes, and give
/// the stated digest input and names-key context; `fail` ones are refused
/// for the stated reason.
fn check_config(name: &str, v: &BTreeMap<String, String>) {
    let bytes = unhex(&v["config"]);
    let cfg = match VolumeConfig::decode(&bytes) {
        Ok(cfg) => cfg,
        Err(e) => {
            let reason = match &e {
                ConfigError::UnknownFeatureFlag { flag } => format!("unknown feature flag {flag}"),
                ConfigError::MissingFeatureFlag { flag } => format!("missing feature flag {flag}"),
                ConfigError::FlagNeedsEncryptedNames { flag } => {
                    format!("{flag} needs encrypted names")
                }
                other => format!("{other}"),
            };
            assert_eq!(format!("fail {reason}"), v["expect"], "{name}");
            return;
        }
    };
    assert_eq!(v["expect"], "ok", "{name}: decoded");
    assert_eq!(cfg.encode().unwrap(), bytes, "{name}: encoding differs");
    assert_eq!(
        cfg.is_authenticated(),
        v.contains_key("digest_input"),
        "{name}"
    );
    if let Some(input) = v.get("digest_input") {
        assert_eq!(cfg.digest_input(), unhex(input), "{name}");
    }
    let ctx: Vec<String> = cfg
        .names_key_context()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(ctx.join(","), v["names_key_context"], "{name}");
}

fn check(name: &str, v: &BTreeMap<String, String>) {
    let expect = v["expect"].as_str();
    if v.contains_key("config") {
        check_config(name, v);
        return;
    }
    if let Some(backing) = v.get("backing") {
        let dek: [u8; 32] = unhex(&v["dek"]).try_into().unwrap();
        let res = read_backing(v["block_size"].parse().unwrap(), &dek, &unhex(backing));
        match expect {
            "ok" => assert_eq!(res.unwrap(), unhex(&v["plain"]), "{name}"),
            fail => assert_eq!(
                res.map(|p| p.len()),
                Err(fail.trim_start_matches("fail ").to_string()),
                "{name}"
            ),
        }
        return;
    }
    let key: [u8; 32] = unhex(&v["names_key"]).try_into().unwrap();
    let iv = DirIv::decode(&unhex(&v["dir_iv"])).unwrap();
    let c = NamesCipher::new(&key).unwrap();
    let encoded = v["encoded"].as_bytes();
    if let Some(target) = v.get("target") {
        assert_eq!(
            c.decrypt_symlink(&iv, encoded).unwrap(),
            unhex(target),
            "{name}"
        );
        return;
    }
    match expect {
        "ok" => {
            let plain = unhex(&v["name"]);
            assert_eq!(c.decrypt_name(&iv, encoded).unwrap(), plain, "{name}");
            assert_eq!(
                c.encrypt_name(&iv, &plain).unwrap().as_bytes(),
                encoded,
                "{name}"
            );
        }
        "fail auth" => assert_eq!(
            c.decrypt_name(&iv, encoded),
            Err(NameError::AuthFailed),
            "{name}"
        ),
        other => panic!("{name}: unknown expectation {other}"),
    }
}

#[test]
fn frozen_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "txt") {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let v = parse(&std::fs::read_to_string(&path).unwrap());
            assert_eq!(
                name.starts_with("fail_"),
                v["expect"].starts_with("fail"),
                "{name}: file name and expectation disagree"
            );
            check(&name, &v);
            seen += 1;
        }
    }
    assert!(seen >= 28, "only {seen} vectors found");
}
