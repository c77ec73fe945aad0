//! Checks of the engine socket's frame codec (`kms_engine::service::frame`).

use super::{be_u64, mode};
use kms_engine::service::frame::{self, LEN_PREFIX, MAX_FRAME_LEN, OnBehalfOf, Request, Response};

/// Mode 0: the input is a byte stream as a server or client reads it:
/// length prefix, frame, length prefix, frame ...; each frame is decoded as
/// a request and as a response. Whatever decodes must re-encode to a frame
/// that decodes to the same value and re-encodes to the same bytes (JSON
/// bodies may be reformatted once, then the encoding is a fixed point).
/// Mode 1: a request and a response built from the input round-trip
/// exactly.
pub fn service_frame(data: &[u8]) {
    match mode(data) {
        Some((0, rest)) => stream(rest),
        Some((_, rest)) => built(rest),
        None => {}
    }
}

/// The value of a codec call that must succeed; its error as the panic.
fn must<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn stream(mut data: &[u8]) {
    while data.len() >= LEN_PREFIX {
        let prefix = [data[0], data[1], data[2], data[3]];
        let Ok(len) = frame::frame_len(prefix, MAX_FRAME_LEN) else {
            return;
        };
        let body = &data[LEN_PREFIX..];
        let f = &body[..len.min(body.len())];
        if let Ok(r) = Request::decode(f) {
            let once = must(r.encode(), "a decoded request encodes");
            let again = must(
                Request::decode(&once[LEN_PREFIX..]),
                "re-encoded request decodes",
            );
            assert_eq!(again, r, "request changed through encode/decode");
            assert_eq!(
                must(again.encode(), "encodes"),
                once,
                "request encoding not stable"
            );
        }
        if let Ok(r) = Response::decode(f) {
            let once = must(r.encode(), "a decoded response encodes");
            let again = must(
                Response::decode(&once[LEN_PREFIX..]),
                "re-encoded response decodes",
            );
            assert_eq!(again, r, "response changed through encode/decode");
            assert_eq!(
                must(again.encode(), "encodes"),
                once,
                "response encoding not stable"
            );
        }
        if body.len() < len {
            return;
        }
        data = &body[len..];
    }
}

/// An operation or exception name (1..=64 ASCII letters and digits) from
/// input bytes.
fn name(b: &[u8]) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let n = b.len().clamp(1, frame::MAX_NAME_LEN);
    (0..n)
        .map(|i| ALNUM[*b.get(i).unwrap_or(&0) as usize % ALNUM.len()] as char)
        .collect()
}

fn built(data: &[u8]) {
    let (id, rest) = be_u64(data);
    let (op, rest) = rest.split_at(rest.len().min(rest.first().map_or(0, |b| *b as usize % 65)));
    let text = String::from_utf8_lossy(rest).into_owned();
    let groups: Vec<u32> = rest
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let on_behalf_of = (id % 2 == 1).then_some(OnBehalfOf {
        uid: (id >> 32) as u32,
        gid: id as u32,
        groups,
    });
    let req = Request {
        id,
        operation: name(op),
        on_behalf_of,
        body: serde_json::json!({"CiphertextBlob": text, "N": id, "L": [id % 7, null, true]}),
    };
    let f = must(req.encode(), "a built request encodes");
    assert_eq!(must(Request::decode(&f[LEN_PREFIX..]), "decodes"), req);
    let resp = if id % 3 == 0 {
        Response::Ok {
            id,
            body: serde_json::Value::String(text),
        }
    } else {
        Response::Error {
            id,
            exception: name(op),
            message: text,
        }
    };
    let f = must(resp.encode(), "a built response encodes");
    assert_eq!(must(Response::decode(&f[LEN_PREFIX..]), "decodes"), resp);
}
