//! Golden vectors of protocol/vectors: decode, chunked decode, byte-identical re-encode, and
//! the error code of every invalid vector.

mod common;

use rrqkit::codec::{decode_body, encode_frame_value, DecodeError, Encoding, FrameDecoder};
use rrqkit::Frame;
use serde_json::Value;

use common::{manifest, vectors_dir};

fn encoding_of(v: &Value) -> Encoding {
    Encoding::parse(v["encoding"].as_str().unwrap()).expect("encoding")
}

/// Splits `bytes` into frames fed `chunk` bytes at a time, decoding each into a checked frame.
fn decode_stream(bytes: &[u8], chunk: usize, enc: Encoding) -> Result<Vec<Value>, DecodeError> {
    let mut dec = FrameDecoder::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        dec.push(piece);
        while let Some(body) = dec.next_frame()? {
            let value = decode_body(&body, enc)?;
            Frame::from_value(value.clone())?;
            out.push(value);
        }
    }
    dec.finish()?;
    Ok(out)
}

fn same_json(a: &Value, b: &Value) -> bool {
    // Compares values and key order.
    serde_json::to_string(a).unwrap() == serde_json::to_string(b).unwrap()
}

#[test]
fn valid_vectors_decode_and_reencode() {
    let m = manifest();
    let vectors = m["vectors"].as_array().unwrap();
    let mut checked = 0;
    for v in vectors.iter().filter(|v| v["kind"] == "valid") {
        let name = format!("{}/{}", v["encoding"], v["name"]);
        let enc = encoding_of(v);
        let bytes = std::fs::read(vectors_dir().join(v["file"].as_str().unwrap())).unwrap();
        let expected = v["frames"].as_array().unwrap();
        for chunk in [bytes.len(), 1, 2, 3, 7, 64] {
            let frames = decode_stream(&bytes, chunk, enc)
                .unwrap_or_else(|e| panic!("{name} (chunk {chunk}): {e}"));
            assert_eq!(frames.len(), expected.len(), "{name}: frame count");
            for (got, want) in frames.iter().zip(expected) {
                assert!(
                    same_json(got, want),
                    "{name} (chunk {chunk}):\n got {got}\nwant {want}"
                );
            }
        }
        // Generic re-encode gives the file back.
        let frames = decode_stream(&bytes, bytes.len(), enc).unwrap();
        let mut again = Vec::new();
        for f in &frames {
            again.extend(encode_frame_value(f, enc).unwrap());
        }
        assert_eq!(again, bytes, "{name}: generic re-encode differs");
        // Typed writers emit every field in schema order: vectors that carry every field come
        // back byte for byte through the typed layer too.
        let complete = ![
            "request-absent-optionals",
            "request-unknown-fields",
            "response-omitted-nulls",
        ]
        .contains(&v["name"].as_str().unwrap());
        if complete {
            let mut typed = Vec::new();
            for f in &frames {
                let frame = Frame::from_value(f.clone()).unwrap();
                typed.extend(frame.encode(enc).unwrap());
            }
            assert_eq!(typed, bytes, "{name}: typed re-encode differs");
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} valid vectors");
}

#[test]
fn absent_fields_read_as_null() {
    let m = manifest();
    let v = m["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "request-absent-optionals" && v["encoding"] == "json")
        .unwrap();
    let bytes = std::fs::read(vectors_dir().join(v["file"].as_str().unwrap())).unwrap();
    let frames = decode_stream(&bytes, bytes.len(), Encoding::Json).unwrap();
    let Frame::Request(req) = Frame::from_value(frames[0].clone()).unwrap() else {
        panic!("not a request")
    };
    assert_eq!(req.protocol_version, "2");
    assert!(req.params.is_empty());
    assert_eq!(req.context.deadline, None);
    assert_eq!(req.context.worker_id, None);
    // Written back, every field is present with null for none.
    let out = Frame::Request(req).to_value();
    assert_eq!(out["payload"]["context"]["trace_context"], Value::Null);
    assert_eq!(out["payload"]["context"].as_object().unwrap().len(), 8);
}

#[test]
fn invalid_vectors_report_their_codes() {
    let m = manifest();
    let vectors = m["vectors"].as_array().unwrap();
    let mut checked = 0;
    for v in vectors.iter().filter(|v| v["kind"] == "invalid") {
        let name = format!("{}/{}", v["encoding"], v["name"]);
        let enc = encoding_of(v);
        let bytes = std::fs::read(vectors_dir().join(v["file"].as_str().unwrap())).unwrap();
        for chunk in [bytes.len(), 1, 5] {
            let result = decode_stream(&bytes, chunk, enc);
            match v["error"].as_str() {
                Some(code) => {
                    let err = result.expect_err(&format!("{name}: decoded but should fail"));
                    assert_eq!(err.code().as_str(), code, "{name} (chunk {chunk}): {err}");
                }
                None => {
                    let frames = result.unwrap_or_else(|e| panic!("{name} should decode: {e}"));
                    assert_eq!(frames.len(), 1);
                    let frame = Frame::from_value(frames[0].clone()).unwrap();
                    match v["action"].as_str().unwrap() {
                        "reply_error" => {
                            let Frame::Request(r) = frame else {
                                panic!("{name}: expected a request")
                            };
                            assert_ne!(r.protocol_version, "2");
                        }
                        "ignore" => {
                            let Frame::Cancel(c) = frame else {
                                panic!("{name}: expected a cancel")
                            };
                            assert_ne!(c.protocol_version, "2");
                        }
                        other => panic!("{name}: unexpected action {other}"),
                    }
                }
            }
        }
        // Oversized prefixes fail from the 4 header bytes alone.
        if v["error"] == "frame_too_large" {
            let mut dec = FrameDecoder::new();
            dec.push(&bytes[..4]);
            assert_eq!(
                dec.next_frame().unwrap_err().code().as_str(),
                "frame_too_large"
            );
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} invalid vectors");
}

#[test]
fn max_frame_size_is_accepted_in_memory() {
    let m = manifest();
    let max = m["max_frame_bytes"].as_u64().unwrap() as usize;
    assert_eq!(max, rrqkit::codec::MAX_FRAME_BYTES);
    for enc in [Encoding::Json, Encoding::Msgpack] {
        // Build a ping whose body is exactly `max` bytes.
        let probe = serde_json::json!({"type": "ping", "payload": {"nonce": ""}});
        let base = rrqkit::codec::encode_body(&probe, enc).unwrap().len();
        let mut nonce_len = max - base;
        let frame = loop {
            let v =
                serde_json::json!({"type": "ping", "payload": {"nonce": "n".repeat(nonce_len)}});
            let body = rrqkit::codec::encode_body(&v, enc).unwrap();
            if body.len() == max {
                break v;
            }
            nonce_len -= body.len() - max;
        };
        let bytes = encode_frame_value(&frame, enc).unwrap();
        assert_eq!(bytes.len(), max + 4);
        let frames = decode_stream(&bytes, 1 << 20, enc).unwrap();
        assert_eq!(frames.len(), 1);
        // One byte more is refused by the writer.
        let bigger =
            serde_json::json!({"type": "ping", "payload": {"nonce": "n".repeat(nonce_len + 1)}});
        assert!(encode_frame_value(&bigger, enc).is_err());
    }
}
