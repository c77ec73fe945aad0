//! The AWS JSON 1.1 protocol as AWS KMS speaks it, without I/O: which
//! operation a request names (`POST /`, `X-Amz-Target:
//! TrentService.<Operation>`, `Content-Type: application/x-amz-json-1.1`),
//! its JSON body, and the error a refused request gets (HTTP status,
//! `{"__type": ..., "message": ...}` and the `x-amzn-ErrorType` header).

use crate::KmsError;
use crate::ops::dispatch::OPERATIONS;
use hyper::header::{CONTENT_TYPE, HeaderMap};
use hyper::{Method, StatusCode};
use serde_json::Value;

/// The prefix of every `X-Amz-Target` of the AWS KMS API.
pub const TARGET_PREFIX: &str = "TrentService.";
/// The media type of AWS JSON 1.1 requests and responses.
pub const CONTENT_TYPE_JSON_11: &str = "application/x-amz-json-1.1";

/// AWS KMS operations the engine does not have (they get
/// UnsupportedOperationException, not UnknownOperationException).
const AWS_ONLY_OPERATIONS: &[&str] = &[
    "ConnectCustomKeyStore",
    "CreateCustomKeyStore",
    "DeleteCustomKeyStore",
    "DescribeCustomKeyStores",
    "DisconnectCustomKeyStore",
    "ReplicateKey",
    "UpdateCustomKeyStore",
    "UpdatePrimaryRegion",
];

/// A refused request or a failed operation, as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    pub status: StatusCode,
    /// The exception name (`__type` and `x-amzn-ErrorType`).
    pub exception: &'static str,
    pub message: String,
}

impl ErrorReply {
    /// An HTTP 400 client error.
    pub fn client(exception: &'static str, message: impl Into<String>) -> ErrorReply {
        ErrorReply {
            status: StatusCode::BAD_REQUEST,
            exception,
            message: message.into(),
        }
    }

    /// The reply for an engine error: HTTP 400 for the client's errors,
    /// 500 for the engine's own failures (KMSInternalException and the
    /// store's errors, which a client cannot fix).
    pub fn of(e: &KmsError) -> ErrorReply {
        let status = match e {
            KmsError::Internal(_)
            | KmsError::Io { .. }
            | KmsError::Unavailable(_)
            | KmsError::WrongPassphrase
            | KmsError::StoreCorrupted(_)
            | KmsError::StoreNotFound(_)
            | KmsError::StoreRolledBack(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ErrorReply {
            status,
            exception: e.exception_name(),
            message: e.message(),
        }
    }

    /// ThrottlingException (HTTP 400, which AWS clients retry with backoff).
    pub fn throttled() -> ErrorReply {
        ErrorReply::client("ThrottlingException", "Rate exceeded")
    }

    /// The JSON body: `{"__type": ..., "message": ...}`.
    pub fn body(&self) -> Vec<u8> {
        let v = serde_json::json!({"__type": self.exception, "message": self.message});
        v.to_string().into_bytes()
    }
}

/// Checks the method, path, `X-Amz-Target` and `Content-Type` of a request
/// and returns the operation it names (one [`OPERATIONS`] has).
pub fn operation_of(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<&'static str, ErrorReply> {
    if path != "/" {
        return Err(ErrorReply {
            status: StatusCode::NOT_FOUND,
            exception: "UnknownOperationException",
            message: format!("no AWS KMS operation at path {}", printable(path)),
        });
    }
    if method != Method::POST {
        return Err(ErrorReply {
            status: StatusCode::METHOD_NOT_ALLOWED,
            exception: "UnknownOperationException",
            message: format!("AWS KMS operations are POST requests, not {method}"),
        });
    }
    let target = header_str(headers, "x-amz-target")
        .ok_or_else(|| ErrorReply::client("UnknownOperationException", "missing X-Amz-Target"))?;
    let name = target.strip_prefix(TARGET_PREFIX).ok_or_else(|| {
        ErrorReply::client(
            "UnknownOperationException",
            format!("unknown target {}", printable(target)),
        )
    })?;
    let op = match OPERATIONS.iter().find(|o| **o == name) {
        Some(op) => *op,
        None if AWS_ONLY_OPERATIONS.contains(&name) => {
            return Err(ErrorReply::client(
                "UnsupportedOperationException",
                format!("{name} is not supported by this engine"),
            ));
        }
        None => {
            return Err(ErrorReply::client(
                "UnknownOperationException",
                format!("unknown operation {}", printable(name)),
            ));
        }
    };
    let content_type = header_str(headers, CONTENT_TYPE.as_str()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(CONTENT_TYPE_JSON_11) {
        return Err(ErrorReply::client(
            "SerializationException",
            format!(
                "Content-Type must be {CONTENT_TYPE_JSON_11}, not {}",
                printable(content_type)
            ),
        ));
    }
    Ok(op)
}

/// The request body as a JSON object (an empty body is `{}`); anything
/// else is SerializationException, as AWS answers a body it cannot parse.
pub fn parse_body(body: &[u8]) -> Result<Value, ErrorReply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ErrorReply::client(
            "SerializationException",
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ErrorReply::client(
            "SerializationException",
            format!(
                "the request body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )),
    }
}

/// A header's value when it is visible ASCII.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `s` cut to 64 characters with control characters replaced, for
/// echoing client input in a message.
fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(target: Option<&str>, ct: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = target {
            h.insert("x-amz-target", HeaderValue::from_str(t).unwrap());
        }
        if let Some(c) = ct {
            h.insert(CONTENT_TYPE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn every_engine_operation_is_a_target() {
        for op in OPERATIONS {
            let h = headers(
                Some(&format!("TrentService.{op}")),
                Some(CONTENT_TYPE_JSON_11),
            );
            assert_eq!(operation_of(&Method::POST, "/", &h), Ok(*op));
            assert!(!AWS_ONLY_OPERATIONS.contains(op), "{op}");
        }
        let h = headers(
            Some("TrentService.Decrypt"),
            Some("application/x-amz-json-1.1; charset=utf-8"),
        );
        assert_eq!(operation_of(&Method::POST, "/", &h), Ok("Decrypt"));
    }

    #[test]
    fn refusals_name_the_aws_exception() {
        let ok_ct = Some(CONTENT_TYPE_JSON_11);
        let cases: Vec<(Method, &str, HeaderMap, u16, &str)> = vec![
            (
                Method::POST,
                "/",
                headers(None, ok_ct),
                400,
                "UnknownOperationException",
            ),
            (
                Method::POST,
                "/",
                headers(Some("TrentService.Nope"), ok_ct),
                400,
                "UnknownOperationException",
            ),
            (
                Method::POST,
                "/",
                headers(Some("DynamoDB_20120810.Scan"), ok_ct),
                400,
                "UnknownOperationException",
            ),
            (
                Method::POST,
                "/",
                headers(Some("TrentService.ReplicateKey"), ok_ct),
                400,
                "UnsupportedOperationException",
            ),
            (
                Method::POST,
                "/",
                headers(Some("TrentService.Decrypt"), Some("application/json")),
                400,
                "SerializationException",
            ),
            (
                Method::POST,
                "/",
                headers(Some("TrentService.Decrypt"), None),
                400,
                "SerializationException",
            ),
            (
                Method::GET,
                "/",
                headers(Some("TrentService.Decrypt"), ok_ct),
                405,
                "UnknownOperationException",
            ),
            (
                Method::POST,
                "/x",
                headers(Some("TrentService.Decrypt"), ok_ct),
                404,
                "UnknownOperationException",
            ),
        ];
        for (m, path, h, status, exc) in cases {
            let e = operation_of(&m, path, &h).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.exception),
                (status, exc),
                "{m} {path} {h:?}"
            );
        }
    }

    #[test]
    fn bodies_parse_as_objects_or_serialization_errors() {
        assert_eq!(parse_body(b"").unwrap(), serde_json::json!({}));
        assert_eq!(parse_body(b" \n").unwrap(), serde_json::json!({}));
        assert_eq!(parse_body(b"{\"KeyId\":\"k\"}").unwrap()["KeyId"], "k");
        for bad in [&b"{"[..], b"[1]", b"\"s\"", b"{\"a\":1}x", b"\xff"] {
            let e = parse_body(bad).unwrap_err();
            assert_eq!(e.exception, "SerializationException", "{bad:?}");
        }
    }

    #[test]
    fn engine_errors_keep_their_names_and_internal_ones_are_500() {
        let nf = ErrorReply::of(&KmsError::NotFound("Key 'x' does not exist".into()));
        assert_eq!(
            (nf.status.as_u16(), nf.exception),
            (400, "NotFoundException")
        );
        let body: Value = serde_json::from_slice(&nf.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"__type": "NotFoundException", "message": "Key 'x' does not exist"})
        );
        let internal = ErrorReply::of(&KmsError::Internal("disk".into()));
        assert_eq!(
            (internal.status.as_u16(), internal.exception),
            (500, "KMSInternalException")
        );
        assert_eq!(ErrorReply::throttled().exception, "ThrottlingException");
    }
}
