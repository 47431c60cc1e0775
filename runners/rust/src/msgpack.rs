//! MessagePack restricted to the JSON data model (RUNNER_PROTOCOL.md §4), read straight into
//! and written straight from [`serde_json::Value`]s.
//!
//! The reader builds the value tree in one pass over the body: no intermediate `rmpv` tree, no
//! second walk for the depth limit. Errors come out in the order the former two-pass decoder
//! (read the whole MessagePack value, then convert it) reported them, so a body gets the same
//! §11 code: a structural problem (truncation, an unknown marker, trailing bytes, nesting past
//! the limit while reading) wins over a problem of the data model (a `bin` or `ext` value, a
//! non-string key, a non-finite float, a string that is not UTF-8), and of those the first in
//! the body is reported.

use serde_json::{Map, Number, Value};

use crate::codec::{DecodeError, DecodeErrorCode, MAX_NESTING_DEPTH};

/// The message of a body nested deeper than [`MAX_NESTING_DEPTH`].
pub(crate) const TOO_DEEP: &str = "body is nested deeper than 100 levels";

/// Reading stops at this depth (a structural error); a body one level past the limit is read
/// whole and reported after any data-model problem, as the former decoder did.
const ABORT_DEPTH: usize = MAX_NESTING_DEPTH + 2;

fn malformed(msg: impl Into<String>) -> DecodeError {
    DecodeError::new(DecodeErrorCode::MalformedPayload, msg)
}

/// Decodes one body: exactly one MessagePack value in the JSON data model, at most
/// [`MAX_NESTING_DEPTH`] levels deep.
pub(crate) fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    let mut reader = Reader {
        bytes: body,
        pos: 0,
        model_error: None,
        deepest: 0,
    };
    let value = reader
        .value(1)
        .map_err(|e| malformed(format!("body is not one MessagePack value: {e}")))
        .map_err(|e| match reader.deepest > ABORT_DEPTH {
            true => malformed(TOO_DEEP),
            false => e,
        })?;
    if reader.pos != body.len() {
        return Err(malformed(format!(
            "{} bytes follow the MessagePack value",
            body.len() - reader.pos
        )));
    }
    if let Some(e) = reader.model_error {
        return Err(e);
    }
    if reader.deepest > MAX_NESTING_DEPTH {
        return Err(malformed(TOO_DEEP));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The first value outside the JSON data model (reported if the body is otherwise sound).
    model_error: Option<DecodeError>,
    /// Deepest container level seen (the body's top value is level 1 when it is a container).
    deepest: usize,
}

/// A structural failure: the body cannot be read as one MessagePack value.
type Structural = &'static str;

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Structural> {
        let end = self.pos.checked_add(n).ok_or("length overflows")?;
        let bytes = self
            .bytes
            .get(self.pos..end)
            .ok_or("unexpected end of body")?;
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, Structural> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], Structural> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len8(&mut self) -> Result<usize, Structural> {
        Ok(self.u8()? as usize)
    }

    fn len16(&mut self) -> Result<usize, Structural> {
        Ok(u16::from_be_bytes(self.be()?) as usize)
    }

    fn len32(&mut self) -> Result<usize, Structural> {
        Ok(u32::from_be_bytes(self.be()?) as usize)
    }

    fn model(&mut self, e: DecodeError) -> Value {
        self.model_error.get_or_insert(e);
        Value::Null
    }

    /// A value at container level `depth` (the level a container read here would have).
    fn value(&mut self, depth: usize) -> Result<Value, Structural> {
        let marker = self.u8()?;
        Ok(match marker {
            0x00..=0x7f => Value::from(marker),
            0xe0..=0xff => Value::from(marker as i8),
            0x80..=0x8f => self.map((marker & 0x0f) as usize, depth)?,
            0x90..=0x9f => self.array((marker & 0x0f) as usize, depth)?,
            0xa0..=0xbf => self.string((marker & 0x1f) as usize)?,
            0xc0 => Value::Null,
            0xc1 => return Err("reserved marker 0xc1"),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = match marker {
                    0xc4 => self.len8()?,
                    0xc5 => self.len16()?,
                    _ => self.len32()?,
                };
                self.take(n)?;
                self.model(malformed("bin values are outside the JSON data model"))
            }
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                let n = match marker {
                    0xc7 => self.len8()?,
                    0xc8 => self.len16()?,
                    0xc9 => self.len32()?,
                    _ => 1 << (marker - 0xd4),
                };
                self.take(n + 1)?; // the type byte, then the data
                self.model(malformed("ext values are outside the JSON data model"))
            }
            0xca => {
                let f = f32::from_be_bytes(self.be()?);
                self.float(f as f64)
            }
            0xcb => {
                let f = f64::from_be_bytes(self.be()?);
                self.float(f)
            }
            0xcc => Value::from(self.u8()?),
            0xcd => Value::from(u16::from_be_bytes(self.be()?)),
            0xce => Value::from(u32::from_be_bytes(self.be()?)),
            0xcf => Value::from(u64::from_be_bytes(self.be()?)),
            0xd0 => Value::from(i8::from_be_bytes(self.be()?)),
            0xd1 => Value::from(i16::from_be_bytes(self.be()?)),
            0xd2 => Value::from(i32::from_be_bytes(self.be()?)),
            0xd3 => Value::from(i64::from_be_bytes(self.be()?)),
            0xd9 => {
                let n = self.len8()?;
                self.string(n)?
            }
            0xda => {
                let n = self.len16()?;
                self.string(n)?
            }
            0xdb => {
                let n = self.len32()?;
                self.string(n)?
            }
            0xdc => {
                let n = self.len16()?;
                self.array(n, depth)?
            }
            0xdd => {
                let n = self.len32()?;
                self.array(n, depth)?
            }
            0xde => {
                let n = self.len16()?;
                self.map(n, depth)?
            }
            0xdf => {
                let n = self.len32()?;
                self.map(n, depth)?
            }
        })
    }

    fn float(&mut self, f: f64) -> Value {
        match Number::from_f64(f) {
            Some(n) => Value::Number(n),
            None => self.model(malformed("non-finite float")),
        }
    }

    fn str_bytes(&mut self, n: usize) -> Result<Option<String>, Structural> {
        let bytes = self.take(n)?;
        Ok(std::str::from_utf8(bytes).ok().map(str::to_owned))
    }

    fn string(&mut self, n: usize) -> Result<Value, Structural> {
        Ok(match self.str_bytes(n)? {
            Some(s) => Value::String(s),
            None => self.model(DecodeError::new(
                DecodeErrorCode::InvalidUtf8,
                "MessagePack str is not UTF-8",
            )),
        })
    }

    fn enter(&mut self, depth: usize) -> Result<(), Structural> {
        self.deepest = self.deepest.max(depth);
        if depth > ABORT_DEPTH {
            return Err("nested too deep");
        }
        Ok(())
    }

    /// Room for `n` items, bounded by what the rest of the body could hold (a hostile length
    /// prefix must not allocate gigabytes).
    fn capacity(&self, n: usize) -> usize {
        n.min(self.bytes.len() - self.pos)
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value, Structural> {
        self.enter(depth)?;
        let mut items = Vec::with_capacity(self.capacity(n));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, Structural> {
        self.enter(depth)?;
        let mut map = Map::with_capacity(self.capacity(n));
        for _ in 0..n {
            let key = self.key(depth)?;
            let value = self.value(depth + 1)?;
            if let Some(key) = key {
                map.insert(key, value);
            }
        }
        Ok(Value::Object(map))
    }

    /// A map key: a string, else a data-model error (the key's value is still read).
    fn key(&mut self, depth: usize) -> Result<Option<String>, Structural> {
        let marker = *self.bytes.get(self.pos).ok_or("unexpected end of body")?;
        let n = match marker {
            0xa0..=0xbf => {
                self.pos += 1;
                (marker & 0x1f) as usize
            }
            0xd9 => {
                self.pos += 1;
                self.len8()?
            }
            0xda => {
                self.pos += 1;
                self.len16()?
            }
            0xdb => {
                self.pos += 1;
                self.len32()?
            }
            _ => {
                self.value(depth + 1)?;
                self.model(malformed("map keys must be strings"));
                return Ok(None);
            }
        };
        match self.str_bytes(n)? {
            Some(s) => Ok(Some(s)),
            None => {
                self.model(DecodeError::new(
                    DecodeErrorCode::InvalidUtf8,
                    "MessagePack map key is not UTF-8",
                ));
                Ok(None)
            }
        }
    }
}

/// Largest magnitude for which an integral float is written as a MessagePack integer.
const INT_FLOAT_LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63

/// Appends `value` as MessagePack: integral numbers as integers in their smallest form (§4).
pub(crate) fn write(out: &mut Vec<u8>, value: &Value) {
    use rmp::encode;
    // Writing into a Vec cannot fail.
    match value {
        Value::Null => encode::write_nil(out).expect("vec write"),
        Value::Bool(b) => encode::write_bool(out, *b).expect("vec write"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                encode::write_uint(out, u).expect("vec write");
            } else if let Some(i) = n.as_i64() {
                encode::write_sint(out, i).expect("vec write");
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 && f.abs() < INT_FLOAT_LIMIT {
                    if f >= 0.0 {
                        encode::write_uint(out, f as u64).expect("vec write");
                    } else {
                        encode::write_sint(out, f as i64).expect("vec write");
                    }
                } else {
                    encode::write_f64(out, f).expect("vec write");
                }
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            encode::write_array_len(out, items.len() as u32).expect("vec write");
            for item in items {
                write(out, item);
            }
        }
        Value::Object(map) => {
            write_map_len(out, map.len());
            for (k, v) in map {
                write_str(out, k);
                write(out, v);
            }
        }
    }
}

/// Appends a MessagePack str.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    rmp::encode::write_str(out, s).expect("vec write");
}

/// Appends a MessagePack map header.
pub(crate) fn write_map_len(out: &mut Vec<u8>, len: usize) {
    rmp::encode::write_map_len(out, len as u32).expect("vec write");
}

/// Appends a MessagePack nil.
pub(crate) fn write_nil(out: &mut Vec<u8>) {
    rmp::encode::write_nil(out).expect("vec write");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(body: &[u8]) -> DecodeErrorCode {
        decode(body).unwrap_err().code()
    }

    #[test]
    fn round_trips_the_json_data_model() {
        let v = json!({"a": [1, -1, 300, -300, 70000, -70000, 5_000_000_000u64, -5_000_000_000i64,
            u64::MAX, i64::MIN, 0.5, "é", null, true, false, {}, []], "b": {"c": "x".repeat(70000)}});
        let mut out = Vec::new();
        write(&mut out, &v);
        assert_eq!(decode(&out).unwrap(), v);
    }

    #[test]
    fn errors_keep_their_codes_and_order() {
        assert_eq!(code(&[0xc1]), DecodeErrorCode::MalformedPayload);
        assert_eq!(code(&[0x92, 0x01]), DecodeErrorCode::MalformedPayload);
        assert_eq!(code(&[0xc0, 0xc0]), DecodeErrorCode::MalformedPayload);
        assert_eq!(code(&[0xa1, 0xff]), DecodeErrorCode::InvalidUtf8);
        assert_eq!(
            code(&[0x81, 0xa1, 0xff, 0x01]),
            DecodeErrorCode::InvalidUtf8
        );
        assert_eq!(code(&[0x81, 0x01, 0x01]), DecodeErrorCode::MalformedPayload);
        assert_eq!(code(&[0xc4, 0x01, 0x00]), DecodeErrorCode::MalformedPayload);
        assert_eq!(code(&[0xd4, 0x01, 0x00]), DecodeErrorCode::MalformedPayload);
        // A structural problem wins over an earlier data-model one.
        assert_eq!(code(&[0x92, 0xa1, 0xff]), DecodeErrorCode::MalformedPayload);
        assert_eq!(code(&[0xa1, 0xff, 0xc0]), DecodeErrorCode::MalformedPayload);
        // A hostile length does not allocate: it is a truncation.
        assert_eq!(
            code(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
            DecodeErrorCode::MalformedPayload
        );
    }

    #[test]
    fn depth_limit() {
        let nested = |levels: usize| {
            let mut body = vec![0x91; levels - 1];
            body.push(0x90);
            body
        };
        assert!(decode(&nested(MAX_NESTING_DEPTH)).is_ok());
        for levels in [MAX_NESTING_DEPTH + 1, MAX_NESTING_DEPTH + 5, 100_000] {
            let e = decode(&nested(levels)).unwrap_err();
            assert_eq!(e.code(), DecodeErrorCode::MalformedPayload);
            assert_eq!(e.message(), TOO_DEEP, "{levels}");
        }
    }
}
