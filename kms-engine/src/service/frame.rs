//! The engine socket's framing (specified byte by byte in
//! `docs/engine-protocol.md`): a length-prefixed, versioned frame per
//! request and per response, a request id so that many requests are in
//! flight on one connection and responses may come back in any order.
//!
//! Pure encode/decode, no I/O. Decoding is strict: every malformed,
//! truncated, oversized or unknown frame is a [`FrameError`], never a panic,
//! and no field may be followed by bytes it does not account for (the JSON
//! body takes the rest of the frame and must be exactly one JSON value).

use crate::KmsError;
use serde_json::Value;
use thiserror::Error;

/// The protocol version this build speaks (the first byte of every frame
/// after the length prefix).
pub const PROTOCOL_VERSION: u8 = 1;
/// Bytes of the big-endian length prefix in front of every frame.
pub const LEN_PREFIX: usize = 4;
/// Largest frame (the bytes after the length prefix) either side accepts:
/// 1 MiB, far above any engine request (AWS caps plaintext at 4 KiB and a
/// key policy at 32 KiB).
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Longest operation or exception name.
pub const MAX_NAME_LEN: usize = 64;
/// Most supplementary groups an on-behalf-of principal may carry (Linux's
/// `NGROUPS_MAX`).
pub const MAX_GROUPS: usize = 65_536;

/// Frame kind byte of a request.
pub const KIND_REQUEST: u8 = 1;
/// Frame kind byte of a successful response.
pub const KIND_OK: u8 = 2;
/// Frame kind byte of an error response.
pub const KIND_ERROR: u8 = 3;

/// Bytes of the common header: version, kind, request id.
const HEADER_LEN: usize = 1 + 1 + 8;
/// Request flag: an on-behalf-of principal follows.
const FLAG_ON_BEHALF_OF: u8 = 0x01;

/// The numeric identity a client names when it asks on behalf of someone
/// (a FUSE caller of a mount). Names are never sent: the server resolves
/// them itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnBehalfOf {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// One request frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Chosen by the client; echoed in the response. Unique among the
    /// client's requests in flight on the connection.
    pub id: u64,
    /// The AWS operation name, e.g. `"Decrypt"`.
    pub operation: String,
    pub on_behalf_of: Option<OnBehalfOf>,
    /// The operation's AWS-shaped JSON request.
    pub body: Value,
}

/// One response frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// The operation succeeded with this JSON response.
    Ok { id: u64, body: Value },
    /// The operation failed with this AWS exception name and message.
    Error {
        id: u64,
        exception: String,
        message: String,
    },
}

/// A frame that cannot be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("frame ends early: {field} needs {need} bytes, {have} left")]
    Truncated {
        field: &'static str,
        need: usize,
        have: usize,
    },
    #[error("unsupported protocol version {0} (this engine speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u8),
    #[error("frame kind {found} where {expected} was expected")]
    UnexpectedKind { found: u8, expected: &'static str },
    #[error("{0} is empty, longer than 64 bytes or not ASCII letters and digits")]
    BadName(&'static str),
    #[error("unknown request flags {0:#04x}")]
    BadFlags(u8),
    #[error("{0} supplementary groups exceed the maximum of {MAX_GROUPS}")]
    TooManyGroups(u32),
    #[error("JSON body is invalid ({0})")]
    BadJson(String),
    #[error("error message is not UTF-8")]
    BadUtf8,
}

impl FrameError {
    /// The engine error a client reports for a frame it could not use.
    pub fn into_kms(self) -> KmsError {
        KmsError::Unavailable(format!("engine protocol error: {self}"))
    }
}

/// The frame length a 4-byte prefix announces, checked against `max`
/// (at most [`MAX_FRAME_LEN`]) and against the shortest frame.
pub fn frame_len(prefix: [u8; LEN_PREFIX], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    let max = max.min(MAX_FRAME_LEN);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if len < HEADER_LEN {
        return Err(FrameError::Truncated {
            field: "header",
            need: HEADER_LEN,
            have: len,
        });
    }
    Ok(len)
}

/// A reader over one frame's bytes.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], FrameError> {
        if self.rest.len() < n {
            return Err(FrameError::Truncated {
                field,
                need: n,
                have: self.rest.len(),
            });
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, FrameError> {
        Ok(self.take(1, field)?[0])
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, FrameError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, FrameError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn name(&mut self, field: &'static str) -> Result<String, FrameError> {
        let n = self.u8(field)? as usize;
        let b = self.take(n, field)?;
        check_name(b, field)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }
    /// The common header; returns (kind, id).
    fn header(&mut self) -> Result<(u8, u64), FrameError> {
        let version = self.u8("version")?;
        if version != PROTOCOL_VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let kind = self.u8("kind")?;
        let id = self.u64("request id")?;
        Ok((kind, id))
    }
}

fn check_name(b: &[u8], field: &'static str) -> Result<(), FrameError> {
    if b.is_empty() || b.len() > MAX_NAME_LEN || !b.iter().all(u8::is_ascii_alphanumeric) {
        return Err(FrameError::BadName(field));
    }
    Ok(())
}

/// The JSON body: exactly one JSON value filling the rest of the frame.
/// The error names the kind of defect and where, never the body's content.
fn json_body(b: &[u8]) -> Result<Value, FrameError> {
    serde_json::from_slice(b).map_err(|e| {
        FrameError::BadJson(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

/// Starts a frame: room for the length prefix, then the header.
fn start(kind: u8, id: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&[0; LEN_PREFIX]);
    out.push(PROTOCOL_VERSION);
    out.push(kind);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

fn push_name(name: &str, field: &'static str, out: &mut Vec<u8>) -> Result<(), FrameError> {
    check_name(name.as_bytes(), field)?;
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

fn push_json(body: &Value, out: &mut Vec<u8>) -> Result<(), FrameError> {
    serde_json::to_writer(&mut *out, body).map_err(|e| FrameError::BadJson(e.to_string()))
}

/// Writes the length prefix of a finished frame.
fn finish(mut out: Vec<u8>) -> Result<Vec<u8>, FrameError> {
    let len = out.len() - LEN_PREFIX;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    out[..LEN_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

impl Request {
    /// The whole frame, length prefix included.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = start(KIND_REQUEST, self.id);
        push_name(&self.operation, "operation", &mut out)?;
        match &self.on_behalf_of {
            None => out.push(0),
            Some(p) => {
                if p.groups.len() > MAX_GROUPS {
                    return Err(FrameError::TooManyGroups(
                        u32::try_from(p.groups.len()).unwrap_or(u32::MAX),
                    ));
                }
                out.push(FLAG_ON_BEHALF_OF);
                out.extend_from_slice(&p.uid.to_be_bytes());
                out.extend_from_slice(&p.gid.to_be_bytes());
                out.extend_from_slice(&(p.groups.len() as u32).to_be_bytes());
                for g in &p.groups {
                    out.extend_from_slice(&g.to_be_bytes());
                }
            }
        }
        push_json(&self.body, &mut out)?;
        finish(out)
    }

    /// Decodes one request frame (the bytes after the length prefix).
    pub fn decode(frame: &[u8]) -> Result<Request, FrameError> {
        check_len(frame)?;
        let mut c = Cursor { rest: frame };
        let (kind, id) = c.header()?;
        if kind != KIND_REQUEST {
            return Err(FrameError::UnexpectedKind {
                found: kind,
                expected: "a request",
            });
        }
        let operation = c.name("operation")?;
        let flags = c.u8("flags")?;
        let on_behalf_of = match flags {
            0 => None,
            FLAG_ON_BEHALF_OF => Some(on_behalf_of(&mut c)?),
            other => return Err(FrameError::BadFlags(other)),
        };
        let body = json_body(c.rest)?;
        Ok(Request {
            id,
            operation,
            on_behalf_of,
            body,
        })
    }
}

fn on_behalf_of(c: &mut Cursor<'_>) -> Result<OnBehalfOf, FrameError> {
    let uid = c.u32("uid")?;
    let gid = c.u32("gid")?;
    let n = c.u32("group count")?;
    if n as usize > MAX_GROUPS {
        return Err(FrameError::TooManyGroups(n));
    }
    // Checked against the bytes present before anything is allocated.
    let raw = c.take(n as usize * 4, "groups")?;
    let groups = raw
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(OnBehalfOf { uid, gid, groups })
}

fn check_len(frame: &[u8]) -> Result<(), FrameError> {
    if frame.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len: frame.len(),
            max: MAX_FRAME_LEN,
        });
    }
    Ok(())
}

impl Response {
    /// The request id this response answers.
    pub fn id(&self) -> u64 {
        match self {
            Response::Ok { id, .. } | Response::Error { id, .. } => *id,
        }
    }

    /// The response to request `id` carrying an engine result.
    pub fn from_result(id: u64, result: Result<Value, KmsError>) -> Response {
        match result {
            Ok(body) => Response::Ok { id, body },
            Err(e) => Response::Error {
                id,
                exception: e.exception_name().to_string(),
                message: e.message(),
            },
        }
    }

    /// The engine result this response carries (a remote error rebuilt by
    /// [`KmsError::from_exception`]).
    pub fn into_result(self) -> Result<Value, KmsError> {
        match self {
            Response::Ok { body, .. } => Ok(body),
            Response::Error {
                exception, message, ..
            } => Err(KmsError::from_exception(&exception, message)),
        }
    }

    /// The whole frame, length prefix included.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        match self {
            Response::Ok { id, body } => {
                let mut out = start(KIND_OK, *id);
                push_json(body, &mut out)?;
                finish(out)
            }
            Response::Error {
                id,
                exception,
                message,
            } => {
                let mut out = start(KIND_ERROR, *id);
                push_name(exception, "exception name", &mut out)?;
                out.extend_from_slice(message.as_bytes());
                finish(out)
            }
        }
    }

    /// Decodes one response frame (the bytes after the length prefix).
    pub fn decode(frame: &[u8]) -> Result<Response, FrameError> {
        check_len(frame)?;
        let mut c = Cursor { rest: frame };
        let (kind, id) = c.header()?;
        match kind {
            KIND_OK => Ok(Response::Ok {
                id,
                body: json_body(c.rest)?,
            }),
            KIND_ERROR => {
                let exception = c.name("exception name")?;
                let message = std::str::from_utf8(c.rest)
                    .map_err(|_| FrameError::BadUtf8)?
                    .to_string();
                Ok(Response::Error {
                    id,
                    exception,
                    message,
                })
            }
            found => Err(FrameError::UnexpectedKind {
                found,
                expected: "a response",
            }),
        }
    }
}

#[cfg(test)]
mod tests;
