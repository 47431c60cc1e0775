//! Framing and body encodings of runner protocol v2 (RUNNER_PROTOCOL.md §2, §4, §11).
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of body. The body is one
//! envelope `{type, payload}` encoded as compact JSON or as MessagePack. This module works on
//! generic [`serde_json::Value`]s (key order preserved); [`crate::protocol::Frame`] adds the
//! typed layer on top.

use std::fmt;

use serde_json::Value;

use crate::msgpack::{self, TOO_DEEP};

/// Largest allowed frame body: 16 MiB.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Deepest allowed nesting of arrays and maps in a body, the envelope map being level 1
/// (RUNNER_PROTOCOL.md §4). Deeper bodies are `malformed_payload` on read and not encodable on
/// write.
pub const MAX_NESTING_DEPTH: usize = 100;

/// Deepest nesting a request's params may have (`{}` is 1): they sit at level 3 of the body.
pub const MAX_PARAMS_DEPTH: usize = MAX_NESTING_DEPTH - 2;

/// Body encoding of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encoding {
    /// UTF-8 JSON text (RRQ 0.11's encoding, the default).
    #[default]
    Json,
    /// MessagePack restricted to the JSON data model (rrqkit extension).
    Msgpack,
}

impl Encoding {
    /// The name used on the command line and in configuration (`json`, `msgpack`).
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Msgpack => "msgpack",
        }
    }

    /// Parses `json` or `msgpack`.
    pub fn parse(name: &str) -> Option<Encoding> {
        match name {
            "json" => Some(Encoding::Json),
            "msgpack" => Some(Encoding::Msgpack),
            _ => None,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stable decode error codes of RUNNER_PROTOCOL.md §11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeErrorCode {
    FrameEmpty,
    FrameTooLarge,
    FrameTruncated,
    InvalidUtf8,
    MalformedPayload,
    InvalidEnvelope,
    UnknownFrameType,
    InvalidFrame,
}

impl DecodeErrorCode {
    /// The wire-stable code string, e.g. `frame_too_large`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeErrorCode::FrameEmpty => "frame_empty",
            DecodeErrorCode::FrameTooLarge => "frame_too_large",
            DecodeErrorCode::FrameTruncated => "frame_truncated",
            DecodeErrorCode::InvalidUtf8 => "invalid_utf8",
            DecodeErrorCode::MalformedPayload => "malformed_payload",
            DecodeErrorCode::InvalidEnvelope => "invalid_envelope",
            DecodeErrorCode::UnknownFrameType => "unknown_frame_type",
            DecodeErrorCode::InvalidFrame => "invalid_frame",
        }
    }
}

impl fmt::Display for DecodeErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoding failure. Fatal to the connection it happened on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DecodeError {
    code: DecodeErrorCode,
    message: String,
}

impl DecodeError {
    pub fn new(code: DecodeErrorCode, message: impl Into<String>) -> Self {
        DecodeError {
            code,
            message: message.into(),
        }
    }

    /// The §11 code.
    pub fn code(&self) -> DecodeErrorCode {
        self.code
    }

    /// Human-readable detail (not stable).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A frame that cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The body exceeds [`MAX_FRAME_BYTES`]; nothing was written.
    #[error("frame body is {0} bytes; the limit is 16777216")]
    TooLarge(usize),
    /// The value cannot be represented in the JSON data model.
    #[error("value cannot be encoded: {0}")]
    Unencodable(String),
}

/// Incremental frame splitter: feed bytes as they arrive, take complete bodies out.
///
/// Errors are reported as soon as they are detectable (an oversized length prefix right after
/// the 4 header bytes). After an error the decoder must not be used again.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Returns the next complete frame body, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        Ok(self.next_frame_ref()?.map(<[u8]>::to_vec))
    }

    /// The next complete frame body, borrowed from the decoder's buffer (no copy); `Ok(None)`
    /// when more bytes are needed.
    pub fn next_frame_ref(&mut self) -> Result<Option<&[u8]>, DecodeError> {
        let avail = &self.buf[self.start..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if len == 0 {
            return Err(DecodeError::new(
                DecodeErrorCode::FrameEmpty,
                "length prefix is 0",
            ));
        }
        if len > MAX_FRAME_BYTES {
            return Err(DecodeError::new(
                DecodeErrorCode::FrameTooLarge,
                format!("length prefix {len} exceeds 16777216"),
            ));
        }
        if avail.len() < 4 + len {
            // Make room once for the whole body instead of growing step by step.
            let missing = 4 + len - avail.len();
            self.buf.reserve(missing);
            return Ok(None);
        }
        let body = self.start + 4..self.start + 4 + len;
        self.start = body.end;
        // The consumed bytes are dropped by the next push or read.
        Ok(Some(&self.buf[body]))
    }

    /// Drops consumed bytes and returns the buffer with room for at least `min` more bytes, to
    /// read into directly (append to it; bytes past its length are not looked at).
    pub fn read_buffer(&mut self, min: usize) -> &mut Vec<u8> {
        self.compact();
        self.buf.reserve(min);
        &mut self.buf
    }

    fn compact(&mut self) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Call at end of stream: a clean close between frames is `Ok`, anything buffered is
    /// `frame_truncated`.
    pub fn finish(&self) -> Result<(), DecodeError> {
        let left = self.buffered();
        if left == 0 {
            Ok(())
        } else if left < 4 {
            Err(DecodeError::new(
                DecodeErrorCode::FrameTruncated,
                format!("stream ended after {left} of 4 header bytes"),
            ))
        } else {
            Err(DecodeError::new(
                DecodeErrorCode::FrameTruncated,
                "stream ended inside a frame body",
            ))
        }
    }
}

/// Prepends the 4-byte length to `body`, refusing bodies over 16 MiB.
pub fn frame_bytes(body: &[u8]) -> Result<Vec<u8>, EncodeError> {
    if body.len() > MAX_FRAME_BYTES {
        return Err(EncodeError::TooLarge(body.len()));
    }
    if body.is_empty() {
        return Err(EncodeError::Unencodable("empty body".into()));
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Encodes a value as a complete frame (length prefix included).
pub fn encode_frame_value(value: &Value, encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
    let body = encode_body(value, encoding)?;
    frame_bytes(&body)
}

/// Decodes one body into a generic value (no envelope checks).
pub fn decode_body(body: &[u8], encoding: Encoding) -> Result<Value, DecodeError> {
    match encoding {
        Encoding::Json => {
            let value = decode_json(body)?;
            if nests_deeper_than(&value, MAX_NESTING_DEPTH) {
                return Err(malformed(TOO_DEEP));
            }
            Ok(value)
        }
        // The MessagePack reader checks the depth as it goes.
        Encoding::Msgpack => msgpack::decode(body),
    }
}

/// True when `value` nests arrays or objects more than `levels` deep (a scalar is 0 levels,
/// `{}` is 1). Stops at the limit, so the recursion is bounded by `levels`.
pub fn nests_deeper_than(value: &Value, levels: usize) -> bool {
    match value {
        Value::Array(items) => {
            levels == 0 || items.iter().any(|c| nests_deeper_than(c, levels - 1))
        }
        Value::Object(map) => levels == 0 || map.values().any(|c| nests_deeper_than(c, levels - 1)),
        _ => false,
    }
}

/// Encodes a generic value as a body in the given encoding.
pub fn encode_body(value: &Value, encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
    if nests_deeper_than(value, MAX_NESTING_DEPTH) {
        return Err(EncodeError::Unencodable(format!(
            "value is nested deeper than {MAX_NESTING_DEPTH} levels"
        )));
    }
    match encoding {
        Encoding::Json => {
            serde_json::to_vec(value).map_err(|e| EncodeError::Unencodable(e.to_string()))
        }
        Encoding::Msgpack => {
            let mut out = Vec::new();
            msgpack::write(&mut out, value);
            Ok(out)
        }
    }
}

fn decode_json(body: &[u8]) -> Result<Value, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        DecodeError::new(
            DecodeErrorCode::InvalidUtf8,
            format!("body is not UTF-8: {e}"),
        )
    })?;
    serde_json::from_str::<Value>(text).map_err(|e| {
        DecodeError::new(
            DecodeErrorCode::MalformedPayload,
            format!("body is not one JSON value: {e}"),
        )
    })
}

fn malformed(msg: &str) -> DecodeError {
    DecodeError::new(DecodeErrorCode::MalformedPayload, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decoder_splits_and_reports_truncation() {
        let a = frame_bytes(b"{}").unwrap();
        let mut d = FrameDecoder::new();
        d.push(&a[..3]);
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(
            d.finish().unwrap_err().code(),
            DecodeErrorCode::FrameTruncated
        );
        d.push(&a[3..]);
        assert_eq!(d.next_frame().unwrap().unwrap(), b"{}");
        assert!(d.finish().is_ok());
    }

    #[test]
    fn oversize_detected_from_header() {
        let mut d = FrameDecoder::new();
        d.push(&((MAX_FRAME_BYTES as u32) + 1).to_be_bytes());
        assert_eq!(
            d.next_frame().unwrap_err().code(),
            DecodeErrorCode::FrameTooLarge
        );
    }

    #[test]
    fn max_size_frame_is_valid() {
        let body = vec![b' '; MAX_FRAME_BYTES];
        let framed = frame_bytes(&body).unwrap();
        let mut d = FrameDecoder::new();
        d.push(&framed);
        assert_eq!(d.next_frame().unwrap().unwrap().len(), MAX_FRAME_BYTES);
        assert!(frame_bytes(&vec![b' '; MAX_FRAME_BYTES + 1]).is_err());
    }

    #[test]
    fn msgpack_integral_float_is_integer() {
        let v = json!({"a": 2.0, "b": -3.0, "c": 0.5});
        let bytes = encode_body(&v, Encoding::Msgpack).unwrap();
        let back = decode_body(&bytes, Encoding::Msgpack).unwrap();
        assert_eq!(back, json!({"a": 2, "b": -3, "c": 0.5}));
    }
}
