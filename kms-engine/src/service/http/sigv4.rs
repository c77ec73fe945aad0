//! AWS Signature Version 4 verification for the HTTPS endpoint: every
//! request must carry an `Authorization: AWS4-HMAC-SHA256 ...` header signed
//! with an access key the engine issued (`kmsfs kms create-access-key`);
//! [`verify`] checks it and names the principal the access key maps to.
//!
//! Checks, in order, each failing with the exception AWS sends:
//!
//! 1. an `Authorization` header is present (else
//!    MissingAuthenticationTokenException), it is `AWS4-HMAC-SHA256` with
//!    `Credential=AKID/YYYYMMDD/REGION/kms/aws4_request`, `SignedHeaders=`
//!    and `Signature=` (else IncompleteSignatureException), and
//!    `X-Amz-Date` is present and well formed;
//! 2. `host` and `x-amz-date` are among the signed headers; the scope's date
//!    is `X-Amz-Date`'s date, its service `kms` and its region the
//!    configured one (InvalidSignatureException with AWS's messages);
//! 3. `X-Amz-Date` is within [`MAX_CLOCK_SKEW`] of now (InvalidSignatureException
//!    `Signature expired: ...` / `Signature not yet current: ...`);
//! 4. the access key exists and is Active, and no session token is sent
//!    (UnrecognizedClientException: "The security token included in the
//!    request is invalid.");
//! 5. `X-Amz-Content-Sha256`, when present, is the body's SHA-256;
//! 6. the signature equals the one computed over the canonical request with
//!    the key's secret, compared in constant time (InvalidSignatureException).
//!
//! [`SigV4Authenticator`] is the endpoint's [`Authenticator`]: [`verify`]
//! against the engine's access keys in the region of the process's ARNs
//! ([`crate::ids::set_arn_scope`]), at the engine clock's time.
//!
//! The expected signature is computed by the `aws-sigv4` crate (the AWS
//! SDK's own signer): the request is re-signed with the looked-up secret at
//! the request's own `X-Amz-Date`, given exactly the headers the client
//! listed in `SignedHeaders`. Headers the client did not sign (user-agent,
//! content-length ...) never enter the computation, so a proxy may change
//! them. The one request shape AWS SDKs send to KMS (path `/`, no query,
//! sorted signed headers) is signed directly instead, with a cached
//! signing key (`sigv4/direct.rs`, checked against `aws-sigv4` by the
//! tests): the same signature at a fifth of the cost.

use super::auth::{AuthRefusal, Authenticated, Authenticator, RequestParts};
use crate::audit::chain::hex;
use crate::{Engine, KmsError, Principal};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign as sigv4_sign};
use aws_sigv4::sign::v4;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use thiserror::Error;
use zeroize::Zeroizing;

mod direct;
pub use direct::{SigningKeyCache, derive_signing_key};

/// How far `X-Amz-Date` may be from the server's clock (AWS: 15 minutes).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
/// The signing algorithm, the only one accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name in the credential scope.
pub const SERVICE: &str = "kms";
/// AWS's message for an unknown or inactive access key.
pub const INVALID_TOKEN_MESSAGE: &str = "The security token included in the request is invalid.";
/// AWS's message for a signature that does not match.
pub const SIGNATURE_MISMATCH_MESSAGE: &str = "The request signature we calculated does not \
     match the signature you provided. Check your AWS Secret Access Key and signing method. \
     Consult the service documentation for details.";

/// The parts of an HTTP request a signature covers, as received.
#[derive(Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `POST`, `GET` ...
    pub method: &'a str,
    /// The request target's path, as sent (still percent-encoded).
    pub path: &'a str,
    /// The query string without `?` (empty when none), as sent.
    pub query: &'a str,
    /// Every header in the order received; names in any case, values as
    /// bytes (a repeated header appears once per occurrence).
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The whole body.
    pub body: &'a [u8],
}

impl fmt::Debug for SignedRequest<'_> {
    /// Header names only: values (the signature) and the body (plaintext)
    /// stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// An access key as the verifier needs it.
pub struct AccessKeyCredential {
    /// The 40-character secret access key.
    pub secret: Zeroizing<String>,
    /// False for an Inactive key: refused like an unknown one.
    pub active: bool,
    /// The principal requests signed with this key act as.
    pub principal: Principal,
}

impl fmt::Debug for AccessKeyCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKeyCredential")
            .field("secret", &"<redacted>")
            .field("active", &self.active)
            .field("principal", &self.principal)
            .finish()
    }
}

/// Where the verifier looks access keys up (the engine implements it over
/// its store; tests over a map).
pub trait AccessKeyLookup {
    /// The key `access_key_id`, or `None` when no such key exists. An `Err`
    /// is a failure of the lookup itself (the store, the account database),
    /// answered as an internal error, never as a refusal.
    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyCredential>, KmsError>;
}

/// Why a request was refused, as AWS answers ([`AuthError::exception_name`],
/// [`AuthError::message`], HTTP status [`AuthError::http_status`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("MissingAuthenticationTokenException: {0}")]
    MissingAuthenticationToken(String),
    /// A malformed `Authorization` header, or no `X-Amz-Date`.
    #[error("IncompleteSignatureException: {0}")]
    IncompleteSignature(String),
    /// A signature that does not match, a scope for another date, service
    /// or region, a date more than 15 minutes off, a content hash that is
    /// not the body's.
    #[error("InvalidSignatureException: {0}")]
    InvalidSignature(String),
    /// An unknown or inactive access key, or a session token.
    #[error("UnrecognizedClientException: {0}")]
    UnrecognizedClient(String),
    /// The lookup failed (store or account database).
    #[error("{0}")]
    Internal(KmsError),
}

impl AuthError {
    /// The AWS exception name (`__type` and `x-amzn-ErrorType`).
    pub fn exception_name(&self) -> &'static str {
        match self {
            AuthError::MissingAuthenticationToken(_) => "MissingAuthenticationTokenException",
            AuthError::IncompleteSignature(_) => "IncompleteSignatureException",
            AuthError::InvalidSignature(_) => "InvalidSignatureException",
            AuthError::UnrecognizedClient(_) => "UnrecognizedClientException",
            AuthError::Internal(e) => e.exception_name(),
        }
    }

    /// The message without the exception name.
    pub fn message(&self) -> String {
        match self {
            AuthError::MissingAuthenticationToken(m)
            | AuthError::IncompleteSignature(m)
            | AuthError::InvalidSignature(m)
            | AuthError::UnrecognizedClient(m) => m.clone(),
            AuthError::Internal(e) => e.message(),
        }
    }

    /// The HTTP status AWS answers with: 400 for every refusal (AWS JSON
    /// services send these as client errors), 500 for an internal failure.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::Internal(_) => 500,
            _ => 400,
        }
    }

    /// The endpoint's form of this refusal, naming the access key id the
    /// request claimed (for its audit record).
    pub fn into_refusal(self, access_key_id: Option<String>) -> AuthRefusal {
        AuthRefusal {
            exception: self.exception_name(),
            message: self.message(),
            access_key_id,
        }
    }
}

/// The region every credential scope must name: the one of this process's
/// ARNs (`local` unless [`crate::ids::set_arn_scope`] chose another).
pub fn arn_region() -> &'static str {
    crate::ids::arn_prefix()
        .strip_prefix("arn:aws:kms:")
        .and_then(|r| r.split(':').next())
        .unwrap_or(crate::ids::DEFAULT_REGION)
}

/// The HTTPS endpoint's authenticator: SigV4 against the engine's access
/// keys (see the module documentation). An accepted request updates its
/// key's last-used time (to the hour).
#[derive(Debug)]
pub struct SigV4Authenticator {
    engine: Arc<Engine>,
    region: String,
    keys: SigningKeyCache,
}

impl SigV4Authenticator {
    /// Verifies for the region of the process's ARNs ([`arn_region`]).
    pub fn new(engine: Arc<Engine>) -> SigV4Authenticator {
        SigV4Authenticator::for_region(engine, arn_region())
    }

    /// Verifies for `region`.
    pub fn for_region(engine: Arc<Engine>, region: &str) -> SigV4Authenticator {
        SigV4Authenticator {
            engine,
            region: region.to_string(),
            keys: SigningKeyCache::new(),
        }
    }
}

impl Authenticator for SigV4Authenticator {
    fn authenticate(&self, req: &RequestParts<'_>) -> Result<Authenticated, AuthRefusal> {
        let headers: Vec<(&str, &[u8])> = req
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        let signed = SignedRequest {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: &headers,
            body: req.body,
        };
        let now = self.engine.clock.now_unix();
        match verify_cached(&signed, now, &self.region, &*self.engine, &self.keys) {
            Ok(ok) => {
                self.engine.note_access_key_use(&ok.access_key_id, now);
                Ok(ok)
            }
            Err(e) => Err(e.into_refusal(claimed_access_key_id(&signed))),
        }
    }
}

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationHeader {
    pub access_key_id: String,
    /// `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case names, in the client's order.
    pub signed_headers: Vec<String>,
    /// Hex, as sent.
    pub signature: String,
}

/// The access key id a request claims, when its `Authorization` header
/// parses (for the audit record of a refused request).
pub fn claimed_access_key_id(req: &SignedRequest<'_>) -> Option<String> {
    let value = single_header(req, "authorization").ok()??;
    parse_authorization(value).ok().map(|a| a.access_key_id)
}

/// Verifies `req`'s signature at time `now` (Unix seconds) for `region`,
/// looking access keys up in `keys`. See the module documentation for the
/// checks and their errors.
pub fn verify(
    req: &SignedRequest<'_>,
    now: i64,
    region: &str,
    keys: &dyn AccessKeyLookup,
) -> Result<Authenticated, AuthError> {
    verify_for_service(req, now, region, SERVICE, keys, &SigningKeyCache::new())
}

/// [`verify`] keeping derived signing keys in `cache` (see
/// [`SigningKeyCache`]): the access key is still looked up, and an
/// inactive one refused, for every request.
pub fn verify_cached(
    req: &SignedRequest<'_>,
    now: i64,
    region: &str,
    keys: &dyn AccessKeyLookup,
    cache: &SigningKeyCache,
) -> Result<Authenticated, AuthError> {
    verify_for_service(req, now, region, SERVICE, keys, cache)
}

/// [`verify_cached`] for another service name in the scope (AWS's
/// test-suite vectors are signed for `service` and `iam`).
fn verify_for_service(
    req: &SignedRequest<'_>,
    now: i64,
    region: &str,
    service: &str,
    keys: &dyn AccessKeyLookup,
    cache: &SigningKeyCache,
) -> Result<Authenticated, AuthError> {
    let auth = match single_header(req, "authorization")? {
        Some(v) => parse_authorization(v)?,
        None => {
            return Err(AuthError::MissingAuthenticationToken(
                "Missing Authentication Token".into(),
            ));
        }
    };
    let amz_date = single_header(req, "x-amz-date")?.ok_or_else(|| {
        AuthError::IncompleteSignature(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' \
             header."
                .into(),
        )
    })?;
    let signed_at = parse_amz_date(amz_date)?;
    check_scope(&auth, amz_date, region, service)?;
    check_skew(amz_date, signed_at, now)?;
    if single_header(req, "x-amz-security-token")?.is_some() {
        return Err(AuthError::UnrecognizedClient(INVALID_TOKEN_MESSAGE.into()));
    }
    let key = keys
        .access_key(&auth.access_key_id)
        .map_err(AuthError::Internal)?
        .filter(|k| k.active)
        .ok_or_else(|| AuthError::UnrecognizedClient(INVALID_TOKEN_MESSAGE.into()))?;
    let payload_hash = payload_hash(req)?;
    let expected = match direct::canonical_request(req, &auth, amz_date, &payload_hash) {
        Some(creq) => {
            let signing_key = cache.signing_key(&auth, &key.secret);
            direct::signature(&signing_key, &auth, amz_date, &creq)
        }
        None => expected_signature(req, &auth, &key.secret, signed_at, &payload_hash)?,
    };
    aws_lc_rs::constant_time::verify_slices_are_equal(
        expected.as_bytes(),
        auth.signature.as_bytes(),
    )
    .map_err(|_| AuthError::InvalidSignature(SIGNATURE_MISMATCH_MESSAGE.into()))?;
    Ok(Authenticated {
        access_key_id: auth.access_key_id,
        principal: key.principal,
    })
}

/// The value of header `name` (lower-case) if it occurs once; `None` if
/// absent; IncompleteSignature if repeated or not text.
fn single_header<'a>(req: &SignedRequest<'a>, name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut found = None;
    for (n, v) in req.headers {
        if n.eq_ignore_ascii_case(name) {
            if found.is_some() {
                return Err(AuthError::IncompleteSignature(format!(
                    "the {name} header occurs more than once"
                )));
            }
            let text = std::str::from_utf8(v).map_err(|_| {
                AuthError::IncompleteSignature(format!("the {name} header is not text"))
            })?;
            found = Some(text.trim());
        }
    }
    Ok(found)
}

/// Parses `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
pub fn parse_authorization(value: &str) -> Result<AuthorizationHeader, AuthError> {
    let incomplete = |what: &str| {
        AuthError::IncompleteSignature(format!(
            "{what} Authorization={}",
            value.split_whitespace().next().unwrap_or("")
        ))
    };
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| {
            incomplete("Authorization header requires the AWS4-HMAC-SHA256 algorithm.")
        })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        let Some((k, v)) = part.split_once('=') else {
            return Err(incomplete(&format!(
                "Authorization header requires each component in the format key=value: \
                 {part:?}."
            )));
        };
        let slot = match k {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return Err(incomplete(&format!(
                "Authorization header names '{k}' more than once."
            )));
        }
    }
    fn need<'v>(
        v: Option<&'v str>,
        k: &str,
        incomplete: impl Fn(&str) -> AuthError,
    ) -> Result<&'v str, AuthError> {
        v.filter(|v| !v.is_empty())
            .ok_or_else(|| incomplete(&format!("Authorization header requires '{k}' parameter.")))
    }
    let credential = need(credential, "Credential", incomplete)?;
    let signed = need(signed, "SignedHeaders", incomplete)?;
    let signature = need(signature, "Signature", incomplete)?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = scope[..] else {
        return Err(incomplete(&format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{credential}'."
        )));
    };
    if akid.is_empty() || terminator != "aws4_request" {
        return Err(incomplete(&format!(
            "Credential must be keyid/date/region/service/aws4_request, got '{credential}'."
        )));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(incomplete(
            "Signature must be 64 hexadecimal digits (HMAC-SHA256).",
        ));
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_string).collect();
    if signed_headers
        .iter()
        .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(incomplete(
            "SignedHeaders must be lower-case header names separated by ';'.",
        ));
    }
    Ok(AuthorizationHeader {
        access_key_id: akid.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// `YYYYMMDDTHHMMSSZ` as Unix seconds.
fn parse_amz_date(v: &str) -> Result<i64, AuthError> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(v, format)
        .ok()
        .filter(|_| v.len() == 16)
        .map(|t| t.assume_utc().unix_timestamp())
        .ok_or_else(|| {
            AuthError::IncompleteSignature(format!(
                "X-Amz-Date must be in the ISO-8601 basic format YYYYMMDD'T'HHMMSS'Z', got \
                 '{v}'."
            ))
        })
}

/// `YYYYMMDDTHHMMSSZ` for Unix seconds.
fn amz_date(unix: i64) -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| unix.to_string())
}

fn check_scope(
    auth: &AuthorizationHeader,
    amz_date: &str,
    region: &str,
    service: &str,
) -> Result<(), AuthError> {
    let missing: Vec<&str> = ["host", "x-amz-date"]
        .into_iter()
        .filter(|h| !auth.signed_headers.iter().any(|s| s == h))
        .collect();
    if !missing.is_empty() {
        return Err(AuthError::InvalidSignature(format!(
            "The header(s) {} must be signed (listed in SignedHeaders).",
            missing.join(", ")
        )));
    }
    let day = &amz_date[..8];
    if auth.date != day {
        return Err(AuthError::InvalidSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{day}', from '{amz_date}'.",
            auth.date
        )));
    }
    if auth.service != service {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped to correct service: '{service}'. "
        )));
    }
    if auth.region != region {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            auth.region
        )));
    }
    Ok(())
}

/// AWS's `Signature expired` / `Signature not yet current` refusals.
fn check_skew(amz_date_text: &str, signed_at: i64, now: i64) -> Result<(), AuthError> {
    let skew = i64::try_from(MAX_CLOCK_SKEW.as_secs()).unwrap_or(i64::MAX);
    if signed_at < now.saturating_sub(skew) {
        return Err(AuthError::InvalidSignature(format!(
            "Signature expired: {amz_date_text} is now earlier than {} ({} - 15 min.)",
            amz_date(now - skew),
            amz_date(now)
        )));
    }
    if signed_at > now.saturating_add(skew) {
        return Err(AuthError::InvalidSignature(format!(
            "Signature not yet current: {amz_date_text} is still later than {} ({} + 15 min.)",
            amz_date(now + skew),
            amz_date(now)
        )));
    }
    Ok(())
}

/// The body's SHA-256 (hex), checked against `X-Amz-Content-Sha256` when
/// the client sent one.
fn payload_hash(req: &SignedRequest<'_>) -> Result<String, AuthError> {
    let computed = body_sha256_hex(req.body);
    if let Some(claimed) = single_header(req, "x-amz-content-sha256")?
        && !claimed.eq_ignore_ascii_case(&computed)
    {
        return Err(AuthError::InvalidSignature(
            "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
        ));
    }
    Ok(computed)
}

/// The SHA-256 of `body` in lower-case hex: the canonical request's payload
/// hash.
pub fn body_sha256_hex(body: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body).as_ref())
}

/// The signature the client should have sent: `req` re-signed by
/// `aws-sigv4` with `secret` at `signed_at`, over the headers
/// `auth.signed_headers` names (their values as received) and the payload
/// hash `payload_hash`.
pub fn expected_signature(
    req: &SignedRequest<'_>,
    auth: &AuthorizationHeader,
    secret: &str,
    signed_at: i64,
    payload_hash: &str,
) -> Result<String, AuthError> {
    let mismatch = || AuthError::InvalidSignature(SIGNATURE_MISMATCH_MESSAGE.into());
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        // The signer writes x-amz-date itself, from `signed_at`.
        if name == "x-amz-date" {
            continue;
        }
        let mut any = false;
        for (n, v) in req.headers {
            if n.eq_ignore_ascii_case(name) {
                // A signed header must be text (the client hashed it as such).
                headers.push((
                    name.as_str(),
                    std::str::from_utf8(v).map_err(|_| mismatch())?,
                ));
                any = true;
            }
        }
        if !any {
            return Err(mismatch());
        }
    }
    // A client signs a path (`/` for KMS); a request target that is not one
    // (`*`, an authority, a bare `?query`) cannot match, and aws-sigv4's
    // query writer panics on a URI without path and query (an authority).
    if !req.path.starts_with('/') {
        return Err(mismatch());
    }
    let uri = if req.query.is_empty() {
        req.path.to_string()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let time = UNIX_EPOCH + Duration::from_secs(u64::try_from(signed_at).map_err(|_| mismatch())?);
    let body = SignableBody::Precomputed(payload_hash.to_string());
    let signable =
        SignableRequest::new(req.method, uri, headers.into_iter(), body).map_err(|_| mismatch())?;
    let mut settings = SigningSettings::default();
    // Exactly the headers the client signed, none left out by the signer's
    // default exclusion list.
    settings.excluded_headers = None;
    let identity = aws_credential_types::Credentials::new(
        &auth.access_key_id,
        secret,
        None,
        None,
        "kmsfs-access-key",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&auth.region)
        .name(&auth.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| AuthError::Internal(KmsError::Internal(format!("SigV4 parameters: {e}"))))?
        .into();
    let (_, signature) = sigv4_sign(signable, &params)
        .map_err(|_| mismatch())?
        .into_parts();
    Ok(signature)
}

#[cfg(test)]
mod tests;
