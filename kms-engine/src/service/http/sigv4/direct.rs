//! The expected signature of a plain AWS JSON request computed here, with
//! the signing key cached per access key and scope, instead of through
//! `aws-sigv4` (whose canonical request, string to sign and four-HMAC key
//! derivation cost ~25 µs per request, a quarter of the endpoint's CPU per
//! Decrypt).
//!
//! Only the request shape every AWS SDK sends to KMS takes this path
//! ([`canonical_request`] answers `None` otherwise and the caller uses
//! `aws-sigv4`): path `/`, no query, `SignedHeaders` strictly sorted, each
//! signed header present once with a value of printable ASCII,
//! `X-Amz-Date` in its basic form. For that shape the canonical request is
//! fixed by the SigV4 specification (names, values trimmed with runs of
//! spaces collapsed, as `aws-sigv4` does); the tests check this path against
//! `aws-sigv4` on the same requests.
//!
//! The cache keys a derived signing key by access key id and credential
//! scope (date, region, service) and keeps the secret it was derived from:
//! a lookup whose secret differs (constant-time comparison) derives again.
//! The caller looks the access key up (and refuses an inactive one) before
//! every use, so deactivating or deleting a key takes effect at once.
//! Secrets and keys are zeroized when dropped.

use super::AuthorizationHeader;
use crate::audit::chain::{hex, sha256_hex};
use aws_lc_rs::hmac;
use std::collections::HashMap;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// At most this many signing keys are kept (one per access key and day in
/// the steady state); a full cache is emptied.
const MAX_ENTRIES: usize = 256;

/// A signing key and the secret it came from.
struct Entry {
    secret: Zeroizing<Vec<u8>>,
    key: Zeroizing<[u8; 32]>,
}

/// Derived SigV4 signing keys (see the module documentation).
#[derive(Default)]
pub struct SigningKeyCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.lock().map_or(0, |m| m.len());
        f.debug_struct("SigningKeyCache")
            .field("entries", &n)
            .finish_non_exhaustive()
    }
}

impl SigningKeyCache {
    pub fn new() -> SigningKeyCache {
        SigningKeyCache::default()
    }

    /// The signing key of `secret` for `auth`'s scope: cached when the same
    /// access key, scope and secret were seen before, derived otherwise.
    pub fn signing_key(&self, auth: &AuthorizationHeader, secret: &str) -> Zeroizing<[u8; 32]> {
        let id = format!(
            "{}/{}/{}/{}",
            auth.access_key_id, auth.date, auth.region, auth.service
        );
        let mut map = match self.entries.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(e) = map.get(&id)
            && e.secret.len() == secret.len()
            && aws_lc_rs::constant_time::verify_slices_are_equal(&e.secret, secret.as_bytes())
                .is_ok()
        {
            return e.key.clone();
        }
        let key = derive_signing_key(secret, &auth.date, &auth.region, &auth.service);
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            id,
            Entry {
                secret: Zeroizing::new(secret.as_bytes().to_vec()),
                key: key.clone(),
            },
        );
        key
    }

    /// How many keys are cached (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().map_or(0, |m| m.len())
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(tag.as_ref());
    out
}

/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn derive_signing_key(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
) -> Zeroizing<[u8; 32]> {
    let mut k0 = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    k0.extend_from_slice(b"AWS4");
    k0.extend_from_slice(secret.as_bytes());
    let k = hmac_sha256(&k0, date.as_bytes());
    let k = hmac_sha256(&*k, region.as_bytes());
    let k = hmac_sha256(&*k, service.as_bytes());
    hmac_sha256(&*k, b"aws4_request")
}

/// `X-Amz-Date` exactly as `aws-sigv4` formats it: `YYYYMMDDTHHMMSSZ`.
fn is_basic_date(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 16
        && b.iter().enumerate().all(|(i, c)| match i {
            8 => *c == b'T',
            15 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// `value` trimmed of spaces with every run of spaces made one (SigV4's
/// header value normalization); `None` unless every byte is printable
/// ASCII or a space.
fn push_trimmed(out: &mut String, value: &[u8]) -> Option<()> {
    if !value.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?.trim_matches(' ');
    let mut prev_space = false;
    for c in text.chars() {
        if c == ' ' {
            if prev_space {
                continue;
            }
            prev_space = true;
        } else {
            prev_space = false;
        }
        out.push(c);
    }
    Some(())
}

/// The canonical request of `req` when it has the shape this module
/// handles (see the module documentation), else `None`.
pub fn canonical_request(
    req: &super::SignedRequest<'_>,
    auth: &AuthorizationHeader,
    amz_date: &str,
    payload_hash: &str,
) -> Option<String> {
    if req.path != "/" || !req.query.is_empty() || !is_basic_date(amz_date) {
        return None;
    }
    if !auth.signed_headers.windows(2).all(|w| w[0] < w[1]) {
        return None;
    }
    let mut out = String::with_capacity(512);
    out.push_str(req.method);
    out.push_str("\n/\n\n");
    for name in &auth.signed_headers {
        out.push_str(name);
        out.push(':');
        if name == "x-amz-date" {
            out.push_str(amz_date);
        } else {
            let mut found = None;
            for (n, v) in req.headers {
                if n.eq_ignore_ascii_case(name) {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(*v);
                }
            }
            push_trimmed(&mut out, found?)?;
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, name) in auth.signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name);
    }
    out.push('\n');
    out.push_str(payload_hash);
    Some(out)
}

/// The signature (lower-case hex) of `canonical_request` under `key` for
/// `auth`'s scope at `amz_date`.
pub fn signature(
    key: &[u8; 32],
    auth: &AuthorizationHeader,
    amz_date: &str,
    canonical_request: &str,
) -> String {
    let hashed = sha256_hex(canonical_request.as_bytes());
    let to_sign = format!(
        "{}\n{amz_date}\n{}/{}/{}/aws4_request\n{hashed}",
        super::ALGORITHM,
        auth.date,
        auth.region,
        auth.service
    );
    hex(hmac_sha256(key, to_sign.as_bytes()).as_ref())
}
