#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failure is a test failure

use super::*;
use aws_lc_rs::hmac;
use std::collections::HashMap;
use std::path::Path;

const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const REGION: &str = "eu-west-3";
/// 2026-12-03T12:00:00Z.
const NOW: i64 = 1_796_299_200;

struct Keys(HashMap<String, (String, bool, Principal)>);

impl Keys {
    fn one(id: &str, secret: &str, active: bool) -> Keys {
        let mut m = HashMap::new();
        m.insert(
            id.to_string(),
            (
                secret.to_string(),
                active,
                Principal::from_ids(1000, 1000, vec![]),
            ),
        );
        Keys(m)
    }
}

impl AccessKeyLookup for Keys {
    fn access_key(&self, id: &str) -> Result<Option<AccessKeyCredential>, KmsError> {
        Ok(self.0.get(id).map(|(s, active, p)| AccessKeyCredential {
            secret: Zeroizing::new(s.clone()),
            active: *active,
            principal: p.clone(),
        }))
    }
}

/// An owned request, borrowed as a [`SignedRequest`] by `check`.
#[derive(Clone)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Req {
    fn check(
        &self,
        now: i64,
        region: &str,
        service: &str,
        keys: &Keys,
    ) -> Result<Authenticated, AuthError> {
        let headers: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let r = SignedRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &headers,
            body: &self.body,
        };
        verify_for_service(&r, now, region, service, keys, &SigningKeyCache::new())
    }

    fn verify(&self, now: i64, keys: &Keys) -> Result<Authenticated, AuthError> {
        let headers: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let r = SignedRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &headers,
            body: &self.body,
        };
        verify(&r, now, REGION, keys)
    }

    fn set(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers
            .push((name.to_string(), value.as_bytes().to_vec()));
    }

    fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    fn header(&self, name: &str) -> String {
        let v = &self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap()
            .1;
        String::from_utf8(v.clone()).unwrap()
    }
}

/// Parses a vector file: request line, `Name:value` lines, blank line, body.
fn parse_vector(text: &str) -> Req {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let mut first = lines.next().unwrap().split(' ');
    let method = first.next().unwrap().to_string();
    let target = first.next().unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_string(), v.as_bytes().to_vec())
        })
        .collect();
    Req {
        method,
        path: path.into(),
        query: query.into(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn vectors() -> Vec<(String, Req)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sigv4");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "txt") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((name, parse_vector(&std::fs::read_to_string(&p).unwrap())));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// AWS's published vectors verify with AWS's example secret at their own
/// time, for the service in their scope; a `fail_` vector is refused.
#[test]
fn aws_test_suite_vectors() {
    let keys = Keys::one("AKIDEXAMPLE", SECRET, true);
    let at = parse_amz_date("20150830T123600Z").unwrap();
    let all = vectors();
    assert!(all.len() >= 19, "{} vectors", all.len());
    for (name, req) in &all {
        let auth = parse_authorization(&req.header("Authorization")).unwrap();
        let got = req.check(at, "us-east-1", &auth.service, &keys);
        if name.starts_with("fail_unrecognized") {
            assert_eq!(
                got.unwrap_err().exception_name(),
                "UnrecognizedClientException",
                "{name}"
            );
            continue;
        }
        let ok = got.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ok.access_key_id, "AKIDEXAMPLE");
        // One changed bit of the secret: refused.
        let other = Keys::one(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz",
            true,
        );
        let e = req
            .check(at, "us-east-1", &auth.service, &other)
            .unwrap_err();
        assert_eq!(e.exception_name(), "InvalidSignatureException", "{name}");
    }
}

/// The documentation's example, through the signature function alone.
#[test]
fn aws_documentation_example_signature() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sigv4/iam-listusers-docs.txt"),
    )
    .unwrap();
    let req = parse_vector(&text);
    let auth = parse_authorization(&req.header("Authorization")).unwrap();
    let headers: Vec<(&str, &[u8])> = req
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let r = SignedRequest {
        method: &req.method,
        path: &req.path,
        query: &req.query,
        headers: &headers,
        body: &req.body,
    };
    let empty = hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"").as_ref());
    let sig = expected_signature(
        &r,
        &auth,
        SECRET,
        parse_amz_date("20150830T123600Z").unwrap(),
        &empty,
    )
    .unwrap();
    assert_eq!(
        sig,
        "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    );
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        .as_ref()
        .to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

/// An independent SigV4 signer for `POST /` (no query), written from AWS's
/// description (AWS-KMS-NOTES.md "SigV4, as a server verifies it"): signs
/// `signed` (lower-case names, sorted) of `req`'s headers.
fn reference_sign(
    req: &mut Req,
    akid: &str,
    secret: &str,
    at: i64,
    scope: (&str, &str),
    signed: &[&str],
) {
    let amz = amz_date(at);
    req.set("X-Amz-Date", &amz);
    let mut canon = String::new();
    for name in signed {
        let v = req.header(name);
        canon.push_str(&format!(
            "{name}:{}\n",
            v.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    let signed_list = signed.join(";");
    let creq = format!(
        "{}\n{}\n{}\n{canon}\n{signed_list}\n{}",
        req.method,
        req.path,
        req.query,
        sha256_hex(&req.body)
    );
    let day = &amz[..8];
    let (region, service) = scope;
    let scope_s = format!("{day}/{region}/{service}/aws4_request");
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz}\n{scope_s}\n{}",
        sha256_hex(creq.as_bytes())
    );
    let mut k = hmac_sha256(format!("AWS4{secret}").as_bytes(), day);
    for part in [region, service, "aws4_request"] {
        k = hmac_sha256(&k, part);
    }
    let sig = hex(&hmac_sha256(&k, &sts));
    req.set(
        "Authorization",
        &format!(
            "AWS4-HMAC-SHA256 Credential={akid}/{scope_s}, SignedHeaders={signed_list}, Signature={sig}"
        ),
    );
}

const SIGNED: &[&str] = &["content-type", "host", "x-amz-date", "x-amz-target"];

/// A KMS Decrypt request as boto3 sends it, signed at `at`.
fn kms_request(secret: &str, at: i64) -> Req {
    let mut r = Req {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: Vec::new(),
        body: br#"{"CiphertextBlob": "AQID", "EncryptionContext": {"a": "b"}}"#.to_vec(),
    };
    r.set("Host", "127.0.0.1:8443");
    r.set("Content-Type", "application/x-amz-json-1.1");
    r.set("X-Amz-Target", "TrentService.Decrypt");
    r.set("User-Agent", "Boto3/1.34 md/Botocore#1.34");
    r.set("Content-Length", &r.body.len().to_string());
    reference_sign(&mut r, AKID, secret, at, (REGION, "kms"), SIGNED);
    r
}

/// Signs `r` again at `NOW` with `X-Amz-Content-Sha256` set and signed
/// too, as the Rust SDK sends it.
fn sign_with_content_hash(r: &mut Req) {
    r.set("X-Amz-Content-Sha256", &sha256_hex(&r.body));
    let signed = [
        "content-type",
        "host",
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-target",
    ];
    reference_sign(r, AKID, SECRET, NOW, (REGION, "kms"), &signed);
}

fn keys() -> Keys {
    Keys::one(AKID, SECRET, true)
}

fn refused(r: &Req, now: i64, keys: &Keys) -> (String, String) {
    let e = r.verify(now, keys).unwrap_err();
    assert_eq!(e.http_status(), 400, "{e}");
    (e.exception_name().to_string(), e.message())
}

#[test]
fn a_correctly_signed_kms_request_is_accepted() {
    let r = kms_request(SECRET, NOW);
    let ok = r.verify(NOW, &keys()).unwrap();
    assert_eq!(ok.access_key_id, AKID);
    assert_eq!(ok.principal.uid, 1000);
    // With X-Amz-Content-Sha256 signed too, as the Rust SDK sends it.
    let mut r = kms_request(SECRET, NOW);
    sign_with_content_hash(&mut r);
    r.verify(NOW, &keys()).unwrap();
    // 14 minutes either way is within the allowed skew.
    let r = kms_request(SECRET, NOW - 14 * 60);
    r.verify(NOW, &keys()).unwrap();
    let r = kms_request(SECRET, NOW + 14 * 60);
    r.verify(NOW, &keys()).unwrap();
}

#[test]
fn a_wrong_secret_is_refused() {
    let r = kms_request("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz", NOW);
    let (name, msg) = refused(&r, NOW, &keys());
    assert_eq!(name, "InvalidSignatureException");
    assert_eq!(msg, SIGNATURE_MISMATCH_MESSAGE);
}

#[test]
fn a_changed_body_is_refused() {
    let mut r = kms_request(SECRET, NOW);
    r.body = br#"{"CiphertextBlob": "AQIE", "EncryptionContext": {"a": "b"}}"#.to_vec();
    assert_eq!(refused(&r, NOW, &keys()).1, SIGNATURE_MISMATCH_MESSAGE);
    // With a content hash header that no longer matches the body.
    let mut r = kms_request(SECRET, NOW);
    sign_with_content_hash(&mut r);
    r.body.push(b' ');
    let (name, msg) = refused(&r, NOW, &keys());
    assert_eq!(name, "InvalidSignatureException");
    assert!(msg.contains("x-amz-content-sha256"), "{msg}");
}

#[test]
fn a_changed_signed_header_is_refused_an_unsigned_one_is_not() {
    let mut r = kms_request(SECRET, NOW);
    r.set("X-Amz-Target", "TrentService.Encrypt");
    assert_eq!(refused(&r, NOW, &keys()).1, SIGNATURE_MISMATCH_MESSAGE);
    let mut r = kms_request(SECRET, NOW);
    r.set("Host", "127.0.0.1:8444");
    assert_eq!(refused(&r, NOW, &keys()).1, SIGNATURE_MISMATCH_MESSAGE);
    // A signed header removed.
    let mut r = kms_request(SECRET, NOW);
    r.remove("Content-Type");
    assert_eq!(refused(&r, NOW, &keys()).1, SIGNATURE_MISMATCH_MESSAGE);
    // A signed header sent twice.
    let mut r = kms_request(SECRET, NOW);
    r.headers
        .push(("X-Amz-Target".into(), b"TrentService.Encrypt".to_vec()));
    assert_eq!(refused(&r, NOW, &keys()).1, SIGNATURE_MISMATCH_MESSAGE);
    // Headers outside SignedHeaders may change or appear.
    let mut r = kms_request(SECRET, NOW);
    r.set("User-Agent", "aws-cli/2.15");
    r.set("X-Forwarded-For", "10.0.0.1");
    r.set("Content-Length", "999");
    r.verify(NOW, &keys()).unwrap();
}

#[test]
fn old_and_future_dates_are_refused_with_aws_messages() {
    let r = kms_request(SECRET, NOW - 16 * 60);
    let (name, msg) = refused(&r, NOW, &keys());
    assert_eq!(name, "InvalidSignatureException");
    assert_eq!(
        msg,
        "Signature expired: 20261203T114400Z is now earlier than 20261203T114500Z \
         (20261203T120000Z - 15 min.)"
    );
    let r = kms_request(SECRET, NOW + 16 * 60);
    let (name, msg) = refused(&r, NOW, &keys());
    assert_eq!(name, "InvalidSignatureException");
    assert_eq!(
        msg,
        "Signature not yet current: 20261203T121600Z is still later than 20261203T121500Z \
         (20261203T120000Z + 15 min.)"
    );
}

#[test]
fn inactive_and_unknown_keys_are_unrecognized() {
    let r = kms_request(SECRET, NOW);
    let inactive = Keys::one(AKID, SECRET, false);
    assert_eq!(
        refused(&r, NOW, &inactive),
        (
            "UnrecognizedClientException".into(),
            INVALID_TOKEN_MESSAGE.into()
        )
    );
    let other = Keys::one("AKIAOTHERKEY00000000", SECRET, true);
    assert_eq!(
        refused(&r, NOW, &other),
        (
            "UnrecognizedClientException".into(),
            INVALID_TOKEN_MESSAGE.into()
        )
    );
    // A session token: the engine issues none.
    let mut r = kms_request(SECRET, NOW);
    r.set("X-Amz-Security-Token", "FQoGZXIvYXdzE");
    assert_eq!(refused(&r, NOW, &keys()).0, "UnrecognizedClientException");
}

#[test]
fn missing_or_malformed_authorization_is_refused() {
    let mut r = kms_request(SECRET, NOW);
    r.remove("Authorization");
    assert_eq!(
        refused(&r, NOW, &keys()),
        (
            "MissingAuthenticationTokenException".into(),
            "Missing Authentication Token".into()
        )
    );
    let good = kms_request(SECRET, NOW).header("Authorization");
    let cases = [
        good.replace(", Signature=", ", Sig="),
        good.split(", Signature=").next().unwrap().to_string(),
        good.replace("SignedHeaders=", "Signed="),
        good.replace("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA512 "),
        good.replace("/aws4_request", "/aws5_request"),
        good.replace(&format!("{AKID}/"), ""),
        good.replace("Credential=", "Credential=/"),
        format!("{good}, Signature=00"),
        good.replace("SignedHeaders=content-type", "SignedHeaders=Content-Type"),
        "Basic dXNlcjpwYXNz".to_string(),
        String::new(),
    ];
    for auth in cases {
        let mut r = kms_request(SECRET, NOW);
        r.set("Authorization", &auth);
        assert_eq!(
            refused(&r, NOW, &keys()).0,
            "IncompleteSignatureException",
            "{auth}"
        );
    }
    // Two Authorization headers.
    let mut r = kms_request(SECRET, NOW);
    r.headers
        .push(("authorization".into(), good.as_bytes().to_vec()));
    assert_eq!(refused(&r, NOW, &keys()).0, "IncompleteSignatureException");
    // No or a malformed X-Amz-Date.
    let mut r = kms_request(SECRET, NOW);
    r.remove("X-Amz-Date");
    assert_eq!(refused(&r, NOW, &keys()).0, "IncompleteSignatureException");
    let mut r = kms_request(SECRET, NOW);
    r.set("X-Amz-Date", "2026-12-03T12:00:00Z");
    assert_eq!(refused(&r, NOW, &keys()).0, "IncompleteSignatureException");
}

#[test]
fn wrong_scope_is_refused() {
    // Another service.
    let mut r = kms_request(SECRET, NOW);
    reference_sign(&mut r, AKID, SECRET, NOW, (REGION, "s3"), SIGNED);
    let (name, msg) = refused(&r, NOW, &keys());
    assert_eq!(name, "InvalidSignatureException");
    assert_eq!(
        msg,
        "Credential should be scoped to correct service: 'kms'. "
    );
    // Another region.
    let mut r = kms_request(SECRET, NOW);
    reference_sign(&mut r, AKID, SECRET, NOW, ("us-east-1", "kms"), SIGNED);
    let (name, msg) = refused(&r, NOW, &keys());
    assert_eq!(name, "InvalidSignatureException");
    assert!(msg.contains("'us-east-1'"), "{msg}");
    // A scope date other than X-Amz-Date's.
    let mut r = kms_request(SECRET, NOW);
    let auth = r
        .header("Authorization")
        .replace("/20261203/", "/20261202/");
    r.set("Authorization", &auth);
    let (name, msg) = refused(&r, NOW, &keys());
    assert_eq!(name, "InvalidSignatureException");
    assert!(
        msg.starts_with("Date in Credential scope does not match"),
        "{msg}"
    );
    // host or x-amz-date not signed.
    for signed in [
        &["content-type", "x-amz-date", "x-amz-target"][..],
        &["content-type", "host", "x-amz-target"][..],
    ] {
        let mut r = kms_request(SECRET, NOW);
        reference_sign(&mut r, AKID, SECRET, NOW, (REGION, "kms"), signed);
        let (name, msg) = refused(&r, NOW, &keys());
        assert_eq!(name, "InvalidSignatureException");
        assert!(msg.contains("must be signed"), "{msg}");
    }
}

#[test]
fn claimed_key_id_is_read_from_a_parseable_header_only() {
    let r = kms_request(SECRET, NOW);
    let headers: Vec<(&str, &[u8])> = r
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let sr = SignedRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: &r.body,
    };
    assert_eq!(claimed_access_key_id(&sr).as_deref(), Some(AKID));
    assert!(!format!("{sr:?}").contains("Signature="));
    let none = SignedRequest { headers: &[], ..sr };
    assert_eq!(claimed_access_key_id(&none), None);
}

/// `f` on `r` borrowed as a [`SignedRequest`].
fn with_signed<T>(r: &Req, f: impl FnOnce(&SignedRequest<'_>) -> T) -> T {
    let headers: Vec<(&str, &[u8])> = r
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    f(&SignedRequest {
        method: &r.method,
        path: &r.path,
        query: &r.query,
        headers: &headers,
        body: &r.body,
    })
}

/// The direct signature of `r` (None: not the direct shape) and
/// aws-sigv4's, both with `secret`.
fn both_signatures(r: &Req, secret: &str) -> (Option<String>, String) {
    let auth = parse_authorization(&r.header("Authorization")).unwrap();
    let amz = r.header("X-Amz-Date");
    let hash = sha256_hex(&r.body);
    with_signed(r, |sr| {
        let direct = direct::canonical_request(sr, &auth, &amz, &hash).map(|creq| {
            let key = derive_signing_key(secret, &auth.date, &auth.region, &auth.service);
            direct::signature(&key, &auth, &amz, &creq)
        });
        let reference =
            expected_signature(sr, &auth, secret, parse_amz_date(&amz).unwrap(), &hash).unwrap();
        (direct, reference)
    })
}

/// The direct path signs exactly as aws-sigv4 does, on KMS requests and on
/// AWS's vectors of that shape; other shapes are left to aws-sigv4.
#[test]
fn direct_signatures_equal_aws_sigv4() {
    let mut direct = Vec::new();
    direct.push(kms_request(SECRET, NOW));
    let mut r = kms_request(SECRET, NOW);
    r.set("X-Amz-Target", "  TrentService.Decrypt   with  spaces ");
    sign_with_content_hash(&mut r);
    direct.push(r);
    let mut r = kms_request(SECRET, NOW);
    r.method = "GET".into();
    r.body.clear();
    reference_sign(&mut r, AKID, SECRET, NOW, (REGION, "kms"), SIGNED);
    direct.push(r);
    for (name, v) in vectors() {
        if v.path == "/" && v.query.is_empty() && !name.starts_with("fail_") {
            let (d, _) = both_signatures(&v, SECRET);
            if d.is_some() {
                direct.push(v);
            }
        }
    }
    assert!(
        direct.len() >= 8,
        "{} requests of the direct shape",
        direct.len()
    );
    for r in &direct {
        let (d, reference) = both_signatures(r, SECRET);
        assert_eq!(
            d.as_deref(),
            Some(reference.as_str()),
            "{}",
            r.header("Authorization")
        );
        // And that is the signature the client sent.
        let auth = parse_authorization(&r.header("Authorization")).unwrap();
        assert_eq!(reference, auth.signature);
    }
    // Shapes left to aws-sigv4.
    let mut query = kms_request(SECRET, NOW);
    query.query = "a=b".into();
    let mut path = kms_request(SECRET, NOW);
    path.path = "/x".into();
    // Signed as SigV4 says (sorted), listed unsorted in SignedHeaders.
    let mut unsorted = kms_request(SECRET, NOW);
    let listed = unsorted.header("Authorization").replace(
        "SignedHeaders=content-type;host;",
        "SignedHeaders=host;content-type;",
    );
    unsorted.set("Authorization", &listed);
    let mut repeated = kms_request(SECRET, NOW);
    repeated
        .headers
        .push(("X-Amz-Target".into(), b"TrentService.Encrypt".to_vec()));
    let mut non_ascii = kms_request(SECRET, NOW);
    non_ascii.set("X-Amz-Target", "TrentService.D\u{e9}crypt");
    reference_sign(&mut non_ascii, AKID, SECRET, NOW, (REGION, "kms"), SIGNED);
    for r in [&query, &path, &unsorted, &repeated, &non_ascii] {
        assert_eq!(both_signatures(r, SECRET).0, None, "{:?}", r.path);
    }
    // Those still verify (through aws-sigv4) when signed correctly.
    unsorted.verify(NOW, &keys()).unwrap();
    non_ascii.verify(NOW, &keys()).unwrap();
}

/// A cached signing key changes nothing a client can see: a wrong secret,
/// an inactive key, a replaced secret, another day or region are refused
/// as without the cache.
#[test]
fn the_signing_key_cache_refuses_what_verify_refuses() {
    let cache = SigningKeyCache::new();
    let check = |r: &Req, now: i64, keys: &Keys| {
        with_signed(r, |sr| verify_cached(sr, now, REGION, keys, &cache))
    };
    let exception = |r: Result<Authenticated, AuthError>| r.unwrap_err().exception_name();
    let good = kms_request(SECRET, NOW);
    check(&good, NOW, &keys()).unwrap();
    check(&good, NOW, &keys()).unwrap();
    assert_eq!(cache.len(), 1);
    // A wrong secret, with the right key cached.
    let wrong = kms_request("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz", NOW);
    assert_eq!(
        exception(check(&wrong, NOW, &keys())),
        "InvalidSignatureException"
    );
    // The key made inactive, then deleted.
    let inactive = Keys::one(AKID, SECRET, false);
    assert_eq!(
        exception(check(&good, NOW, &inactive)),
        "UnrecognizedClientException"
    );
    let none = Keys(HashMap::new());
    assert_eq!(
        exception(check(&good, NOW, &none)),
        "UnrecognizedClientException"
    );
    // The same id with another secret: the old one no longer signs.
    let new_secret = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let replaced = Keys::one(AKID, new_secret, true);
    assert_eq!(
        exception(check(&good, NOW, &replaced)),
        "InvalidSignatureException"
    );
    check(&kms_request(new_secret, NOW), NOW, &replaced).unwrap();
    // Back to the first secret: derived again, accepted.
    check(&good, NOW, &keys()).unwrap();
    // The next day: another scope, another key.
    let tomorrow = NOW + 86_400;
    check(&kms_request(SECRET, tomorrow), tomorrow, &keys()).unwrap();
    assert_eq!(cache.len(), 2);
    // Signed with yesterday's signing key under today's scope: refused.
    let mut r = kms_request(SECRET, tomorrow);
    let auth = parse_authorization(&r.header("Authorization")).unwrap();
    let amz = r.header("X-Amz-Date");
    let creq = with_signed(&r, |sr| {
        direct::canonical_request(sr, &auth, &amz, &sha256_hex(&r.body)).unwrap()
    });
    let yesterday = derive_signing_key(SECRET, &amz_date(NOW)[..8], REGION, "kms");
    let forged = direct::signature(&yesterday, &auth, &amz, &creq);
    r.set(
        "Authorization",
        &r.header("Authorization").replace(&auth.signature, &forged),
    );
    assert_eq!(
        exception(check(&r, tomorrow, &keys())),
        "InvalidSignatureException"
    );
    // Another region, correctly signed for it: refused.
    let mut r = kms_request(SECRET, NOW);
    reference_sign(&mut r, AKID, SECRET, NOW, ("us-east-1", "kms"), SIGNED);
    assert_eq!(
        exception(check(&r, NOW, &keys())),
        "InvalidSignatureException"
    );
}

/// A request target that is not a path (`*`, an authority, a bare query)
/// cannot have been signed for this endpoint: refused as a signature
/// mismatch, never a panic in the signer (an authority as the target, a
/// URI with no path and query at all, made aws-sigv4's query writer panic;
/// found by the sigv4_verify fuzzer).
#[test]
fn a_request_target_without_a_path_is_refused() {
    for (path, query) in [
        ("", "&"),
        ("", "X-Amz-Signature=1"),
        ("", ""),
        ("", "a=b"),
        ("*", ""),
        ("127.0.0.1:8443", ""),
        ("x", "y"),
    ] {
        let mut r = kms_request(SECRET, NOW);
        r.path = path.into();
        r.query = query.into();
        let (name, msg) = refused(&r, NOW, &keys());
        assert_eq!(name, "InvalidSignatureException", "{path:?} {query:?}");
        assert_eq!(msg, SIGNATURE_MISMATCH_MESSAGE, "{path:?} {query:?}");
    }
}
