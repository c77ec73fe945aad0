use super::*;
use proptest::prelude::*;
use serde_json::json;

fn payload(frame: &[u8]) -> &[u8] {
    let len = frame_len(frame[..4].try_into().unwrap(), MAX_FRAME_LEN).unwrap();
    assert_eq!(len, frame.len() - LEN_PREFIX);
    &frame[LEN_PREFIX..]
}

fn request() -> Request {
    Request {
        id: 0x0102_0304_0506_0708,
        operation: "Decrypt".into(),
        on_behalf_of: Some(OnBehalfOf {
            uid: 1000,
            gid: 100,
            groups: vec![4, 27],
        }),
        body: json!({"CiphertextBlob": "AAAA"}),
    }
}

/// The byte layout of docs/engine-protocol.md, pinned.
#[test]
fn request_known_answer() {
    let f = Request {
        id: 7,
        operation: "ListKeys".into(),
        on_behalf_of: None,
        body: json!({}),
    }
    .encode()
    .unwrap();
    let want: &[u8] = b"\x00\x00\x00\x16\x01\x01\x00\x00\x00\x00\x00\x00\x00\x07\x08ListKeys\x00{}";
    assert_eq!(f, want);
    let f = request().encode().unwrap();
    assert_eq!(&f[14..15], b"\x07");
    assert_eq!(&f[15..22], b"Decrypt");
    assert_eq!(
        &f[22..43],
        b"\x01\x00\x00\x03\xe8\x00\x00\x00\x64\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00\x00\x1b"
    );
    assert_eq!(&f[43..], br#"{"CiphertextBlob":"AAAA"}"#);
}

#[test]
fn response_known_answer() {
    let ok = Response::Ok {
        id: 1,
        body: json!({"A": 1}),
    };
    assert_eq!(
        ok.encode().unwrap(),
        b"\x00\x00\x00\x11\x01\x02\x00\x00\x00\x00\x00\x00\x00\x01{\"A\":1}"
    );
    let err = Response::Error {
        id: 2,
        exception: "NotFoundException".into(),
        message: "no key".into(),
    };
    let f = err.encode().unwrap();
    assert_eq!(&f[4..14], b"\x01\x03\x00\x00\x00\x00\x00\x00\x00\x02");
    assert_eq!(&f[14..], b"\x11NotFoundExceptionno key");
}

#[test]
fn round_trips() {
    let r = request();
    assert_eq!(Request::decode(payload(&r.encode().unwrap())).unwrap(), r);
    for resp in [
        Response::Ok {
            id: u64::MAX,
            body: json!(null),
        },
        Response::Error {
            id: 0,
            exception: "AccessDeniedException".into(),
            message: String::new(),
        },
        // Found by fuzz-smoke: a number beyond u64 is a float that must
        // print back to the same value (serde_json's `float_roundtrip`).
        Response::Ok {
            id: 1,
            body: serde_json::from_str("11100000000000000000000220239368627898846464").unwrap(),
        },
    ] {
        assert_eq!(
            Response::decode(payload(&resp.encode().unwrap())).unwrap(),
            resp
        );
    }
}

#[test]
fn errors_map_to_and_from_kms_errors() {
    let e = KmsError::AccessDenied("no".into());
    let r = Response::from_result(3, Err(e.clone()));
    assert_eq!(r.id(), 3);
    let back = Response::decode(payload(&r.encode().unwrap())).unwrap();
    assert_eq!(back.into_result(), Err(e));
}

#[test]
fn every_truncation_is_refused() {
    let f = request().encode().unwrap();
    let p = payload(&f);
    // Every strict prefix fails (the JSON body must be complete).
    for n in 0..p.len() {
        assert!(Request::decode(&p[..n]).is_err(), "prefix {n} accepted");
    }
    let f = Response::Error {
        id: 1,
        exception: "E".into(),
        message: "m".into(),
    }
    .encode()
    .unwrap();
    let p = payload(&f);
    for n in 0..p.len() - 1 {
        assert!(Response::decode(&p[..n]).is_err(), "prefix {n} accepted");
    }
}

#[test]
fn malformed_frames_are_typed_errors() {
    let f = request().encode().unwrap();
    let p = payload(&f).to_vec();
    let with = |i: usize, b: u8| {
        let mut q = p.clone();
        q[i] = b;
        q
    };
    assert_eq!(
        Request::decode(&with(0, 2)),
        Err(FrameError::UnsupportedVersion(2))
    );
    assert!(matches!(
        Request::decode(&with(1, KIND_OK)),
        Err(FrameError::UnexpectedKind { found: 2, .. })
    ));
    assert!(matches!(
        Response::decode(&with(1, KIND_REQUEST)),
        Err(FrameError::UnexpectedKind { found: 1, .. })
    ));
    assert_eq!(
        Request::decode(&with(10, 0)),
        Err(FrameError::BadName("operation"))
    );
    assert_eq!(
        Request::decode(&with(11, b'.')),
        Err(FrameError::BadName("operation"))
    );
    assert_eq!(
        Request::decode(&with(18, 0x03)),
        Err(FrameError::BadFlags(3))
    );
    // A group count larger than the bytes present, and larger than allowed.
    assert!(matches!(
        Request::decode(&with(30, 0x10)),
        Err(FrameError::Truncated { .. })
    ));
    let mut huge = p.clone();
    huge[27..31].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        Request::decode(&huge),
        Err(FrameError::TooManyGroups(u32::MAX))
    );
    // Trailing bytes after the JSON value, and non-UTF-8 messages.
    let mut trailing = p.clone();
    trailing.extend_from_slice(b" x");
    assert!(matches!(
        Request::decode(&trailing),
        Err(FrameError::BadJson(_))
    ));
    let mut msg = Response::Error {
        id: 1,
        exception: "E".into(),
        message: String::new(),
    }
    .encode()
    .unwrap();
    msg.push(0xff);
    assert_eq!(
        Response::decode(&msg[LEN_PREFIX..]),
        Err(FrameError::BadUtf8)
    );
}

#[test]
fn json_errors_do_not_echo_the_body() {
    let mut f = Request {
        id: 1,
        operation: "Encrypt".into(),
        on_behalf_of: None,
        body: json!({}),
    }
    .encode()
    .unwrap();
    f.truncate(f.len() - 2);
    f.extend_from_slice(b"{\"Plaintext\": secret-words}");
    let e = Request::decode(&f[LEN_PREFIX..]).unwrap_err().to_string();
    assert!(!e.contains("secret"), "{e}");
}

#[test]
fn length_prefix_limits() {
    assert_eq!(
        frame_len((MAX_FRAME_LEN as u32 + 1).to_be_bytes(), usize::MAX),
        Err(FrameError::TooLarge {
            len: MAX_FRAME_LEN + 1,
            max: MAX_FRAME_LEN
        })
    );
    assert_eq!(
        frame_len(100u32.to_be_bytes(), 50),
        Err(FrameError::TooLarge { len: 100, max: 50 })
    );
    assert!(matches!(
        frame_len(9u32.to_be_bytes(), MAX_FRAME_LEN),
        Err(FrameError::Truncated { .. })
    ));
    assert_eq!(frame_len(10u32.to_be_bytes(), MAX_FRAME_LEN), Ok(10));
    // An encoder never writes what a decoder refuses.
    let big = Request {
        id: 1,
        operation: "Encrypt".into(),
        on_behalf_of: None,
        body: json!("x".repeat(MAX_FRAME_LEN)),
    };
    assert!(matches!(big.encode(), Err(FrameError::TooLarge { .. })));
    let bad = Request {
        operation: "Bad Name".into(),
        ..request()
    };
    assert_eq!(bad.encode(), Err(FrameError::BadName("operation")));
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[A-Za-z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn request_round_trip(
        id in any::<u64>(),
        op in "[A-Za-z0-9]{1,64}",
        obo in prop::option::of((any::<u32>(), any::<u32>(), prop::collection::vec(any::<u32>(), 0..40))),
        body in json_value(),
    ) {
        let r = Request {
            id,
            operation: op,
            on_behalf_of: obo.map(|(uid, gid, groups)| OnBehalfOf { uid, gid, groups }),
            body,
        };
        let f = r.encode().unwrap();
        prop_assert_eq!(Request::decode(payload(&f)).unwrap(), r);
    }

    #[test]
    fn response_round_trip(id in any::<u64>(), ok in any::<bool>(), name in "[A-Za-z]{1,64}",
                           msg in ".{0,80}", body in json_value()) {
        let r = if ok {
            Response::Ok { id, body }
        } else {
            Response::Error { id, exception: name, message: msg }
        };
        let f = r.encode().unwrap();
        prop_assert_eq!(Response::decode(payload(&f)).unwrap(), r);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Request::decode(&bytes);
        let _ = Response::decode(&bytes);
        if bytes.len() >= 4 {
            let _ = frame_len([bytes[0], bytes[1], bytes[2], bytes[3]], MAX_FRAME_LEN);
        }
    }
}
