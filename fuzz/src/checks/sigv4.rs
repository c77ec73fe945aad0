//! Checks of the HTTPS endpoint's SigV4 verifier.

use super::{FIXED_NOW, mode};
use kms_engine::service::http::sigv4::{
    self, AccessKeyCredential, AccessKeyLookup, AuthError, SignedRequest,
};
use kms_engine::{KmsError, Principal};
use zeroize::Zeroizing;

/// The one access key the checks know.
pub const FUZZ_ACCESS_KEY_ID: &str = "AKIAFUZZFUZZFUZZFUZZ";
const FUZZ_SECRET: &str = "fuzz/secret/fuzz/secret/fuzz/secret/fuzz";
const REGION: &str = "local";
/// `FIXED_NOW` as `X-Amz-Date`.
const AMZ_DATE: &str = "20260101T000000Z";

struct OneKey;

impl AccessKeyLookup for OneKey {
    fn access_key(&self, id: &str) -> Result<Option<AccessKeyCredential>, KmsError> {
        Ok((id == FUZZ_ACCESS_KEY_ID).then(|| AccessKeyCredential {
            secret: Zeroizing::new(FUZZ_SECRET.to_string()),
            active: true,
            principal: Principal::from_ids(1000, 1000, vec![]),
        }))
    }
}

/// Mode 0: the input as an HTTP request (`METHOD PATH?QUERY`, header lines
/// `name: value`, an empty line, the body) through `verify`: it may refuse
/// (it all but always must), never panic. Mode 1: a request built from the
/// input (header names and values made printable, the body as given) and
/// signed with the known key is accepted as that key; the same request
/// with one body bit flipped is refused as InvalidSignatureException.
pub fn sigv4_verify(data: &[u8]) {
    match mode(data) {
        Some((m, rest)) if m % 2 == 0 => raw(rest),
        Some((_, rest)) => signed(rest),
        None => {}
    }
}

fn raw(data: &[u8]) {
    let text_end = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(data.len());
    let (head, body) = data.split_at(text_end);
    let body = body.get(2..).unwrap_or(&[]);
    let mut lines = head.split(|b| *b == b'\n');
    let first = String::from_utf8_lossy(lines.next().unwrap_or(&[])).into_owned();
    let (method, target) = first.split_once(' ').unwrap_or((&first, "/"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let owned: Vec<(String, Vec<u8>)> = lines
        .filter_map(|l| {
            let i = l.iter().position(|b| *b == b':')?;
            Some((
                String::from_utf8_lossy(&l[..i]).into_owned(),
                l[i + 1..].to_vec(),
            ))
        })
        .collect();
    let headers: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let req = SignedRequest {
        method,
        path,
        query,
        headers: &headers,
        body,
    };
    let _ = sigv4::claimed_access_key_id(&req);
    if let Ok(ok) = sigv4::verify(&req, FIXED_NOW, REGION, &OneKey) {
        assert_eq!(ok.access_key_id, FUZZ_ACCESS_KEY_ID);
    }
}

fn signed(data: &[u8]) {
    // Up to 4 extra headers from the first bytes, then the body.
    let n = usize::from(data.first().copied().unwrap_or(0) % 5);
    let mut rest = data.get(1..).unwrap_or(&[]);
    let mut extra: Vec<(String, String)> = Vec::new();
    for i in 0..n {
        let len = usize::from(rest.first().copied().unwrap_or(0) % 16);
        let take = rest.len().min(1 + len);
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let value: String = chunk
            .iter()
            .skip(1)
            .map(|b| char::from(b' ' + b % 95))
            .collect();
        extra.push((format!("x-fuzz-{i}"), value.trim().to_string()));
    }
    let body = rest;
    let mut owned: Vec<(String, String)> = vec![
        ("host".into(), "localhost:4443".into()),
        ("x-amz-date".into(), AMZ_DATE.into()),
        ("x-amz-target".into(), "TrentService.Decrypt".into()),
    ];
    owned.extend(extra);
    let names: Vec<&str> = owned.iter().map(|(n, _)| n.as_str()).collect();
    let unsigned_auth = format!(
        "AWS4-HMAC-SHA256 Credential={FUZZ_ACCESS_KEY_ID}/20260101/{REGION}/kms/aws4_request, \
         SignedHeaders={}, Signature={}",
        names.join(";"),
        "0".repeat(64)
    );
    let Ok(auth) = sigv4::parse_authorization(&unsigned_auth) else {
        return;
    };
    let view = |owned: &[(String, String)], auth_value: &str| -> Vec<(String, Vec<u8>)> {
        let mut h: Vec<(String, Vec<u8>)> = owned
            .iter()
            .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
            .collect();
        h.push(("authorization".into(), auth_value.as_bytes().to_vec()));
        h
    };
    let headers_owned = view(&owned, &unsigned_auth);
    let headers: Vec<(&str, &[u8])> = headers_owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let req = SignedRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body,
    };
    let hash = sigv4::body_sha256_hex(body);
    let Ok(signature) = sigv4::expected_signature(&req, &auth, FUZZ_SECRET, FIXED_NOW, &hash)
    else {
        return;
    };
    let signed_auth = unsigned_auth.replace(&"0".repeat(64), &signature);
    let headers_owned = view(&owned, &signed_auth);
    let headers: Vec<(&str, &[u8])> = headers_owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let req = SignedRequest {
        headers: &headers,
        ..req
    };
    let ok = sigv4::verify(&req, FIXED_NOW, REGION, &OneKey)
        .unwrap_or_else(|e| panic!("a correctly signed request was refused: {e}"));
    assert_eq!(ok.access_key_id, FUZZ_ACCESS_KEY_ID);
    if let Some(last) = body.len().checked_sub(1) {
        let mut flipped = body.to_vec();
        flipped[last] ^= 1;
        let tampered = SignedRequest {
            body: &flipped,
            ..req
        };
        let r = sigv4::verify(&tampered, FIXED_NOW, REGION, &OneKey);
        assert!(matches!(r, Err(AuthError::InvalidSignature(_))), "{r:?}");
    }
    // Twenty minutes later the same request has expired.
    let r = sigv4::verify(&req, FIXED_NOW + 1200, REGION, &OneKey);
    assert!(matches!(r, Err(AuthError::InvalidSignature(_))), "{r:?}");
}
