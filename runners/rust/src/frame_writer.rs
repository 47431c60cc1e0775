//! Outgoing frames written straight into a buffer: length prefix, envelope and payload in one
//! pass, without building a [`serde_json::Value`] tree of the frame first.
//!
//! The bytes are exactly those of the generic path (`to_value` then
//! [`crate::codec::encode_body`]): same field order, same null fields, same number forms. The
//! vector tests check it (the typed re-encode of every valid vector), and so does
//! `response_frames_match_the_generic_encoding` below.

use serde_json::Value;

use crate::codec::{nests_deeper_than, EncodeError, Encoding, MAX_FRAME_BYTES, MAX_NESTING_DEPTH};
use crate::msgpack;
use crate::protocol::{seconds_value, ExecutionOutcome, Frame, OutcomeError};

/// Appends `frame` (length prefix included) to `out`. On error `out` is left as it was.
pub(crate) fn write_frame(
    out: &mut Vec<u8>,
    frame: &Frame,
    encoding: Encoding,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let written = match frame {
        Frame::Response(outcome) => write_response(out, outcome, encoding),
        other => write_generic(out, other, encoding),
    };
    let body = out.len() - start - 4;
    let checked = written.and_then(|()| match body {
        0 => Err(EncodeError::Unencodable("empty body".into())),
        n if n > MAX_FRAME_BYTES => Err(EncodeError::TooLarge(n)),
        _ => Ok(()),
    });
    if let Err(e) = checked {
        out.truncate(start);
        return Err(e);
    }
    out[start..start + 4].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(())
}

fn write_generic(out: &mut Vec<u8>, frame: &Frame, encoding: Encoding) -> Result<(), EncodeError> {
    let body = crate::codec::encode_body(&frame.to_value(), encoding)?;
    out.extend_from_slice(&body);
    Ok(())
}

/// The envelope is level 1 and the payload level 2, so a result may nest this deep.
const RESULT_DEPTH: usize = MAX_NESTING_DEPTH - 2;
/// `error.details` sits one level below the result.
const DETAILS_DEPTH: usize = MAX_NESTING_DEPTH - 3;

fn too_deep() -> EncodeError {
    EncodeError::Unencodable(format!(
        "value is nested deeper than {MAX_NESTING_DEPTH} levels"
    ))
}

fn check_depth(o: &ExecutionOutcome) -> Result<(), EncodeError> {
    let result_deep = o
        .result
        .as_ref()
        .is_some_and(|r| nests_deeper_than(r, RESULT_DEPTH));
    let details_deep = o
        .error
        .as_ref()
        .and_then(|e| e.details.as_ref())
        .is_some_and(|d| nests_deeper_than(d, DETAILS_DEPTH));
    if result_deep || details_deep {
        return Err(too_deep());
    }
    Ok(())
}

fn write_response(
    out: &mut Vec<u8>,
    o: &ExecutionOutcome,
    encoding: Encoding,
) -> Result<(), EncodeError> {
    check_depth(o)?;
    match encoding {
        Encoding::Msgpack => {
            response_msgpack(out, o);
            Ok(())
        }
        Encoding::Json => response_json(out, o),
    }
}

fn opt_str_msgpack(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => msgpack::write_str(out, s),
        None => msgpack::write_nil(out),
    }
}

fn response_msgpack(out: &mut Vec<u8>, o: &ExecutionOutcome) {
    msgpack::write_map_len(out, 2);
    msgpack::write_str(out, "type");
    msgpack::write_str(out, "response");
    msgpack::write_str(out, "payload");
    msgpack::write_map_len(out, if o.snooze { 7 } else { 6 });
    msgpack::write_str(out, "job_id");
    msgpack::write_str(out, &o.job_id);
    msgpack::write_str(out, "request_id");
    opt_str_msgpack(out, o.request_id.as_deref());
    msgpack::write_str(out, "status");
    msgpack::write_str(out, o.status.as_str());
    msgpack::write_str(out, "result");
    match &o.result {
        Some(v) => msgpack::write(out, v),
        None => msgpack::write_nil(out),
    }
    msgpack::write_str(out, "error");
    match &o.error {
        Some(e) => error_msgpack(out, e),
        None => msgpack::write_nil(out),
    }
    msgpack::write_str(out, "retry_after_seconds");
    match o.retry_after_seconds {
        Some(f) => msgpack::write(out, &seconds_value(f)),
        None => msgpack::write_nil(out),
    }
    if o.snooze {
        msgpack::write_str(out, "snooze");
        msgpack::write(out, &Value::Bool(true));
    }
}

fn error_msgpack(out: &mut Vec<u8>, e: &OutcomeError) {
    msgpack::write_map_len(out, if e.traceback.is_some() { 5 } else { 4 });
    msgpack::write_str(out, "message");
    msgpack::write_str(out, &e.message);
    msgpack::write_str(out, "type");
    opt_str_msgpack(out, e.error_type.as_deref());
    msgpack::write_str(out, "code");
    opt_str_msgpack(out, e.code.as_deref());
    msgpack::write_str(out, "details");
    match &e.details {
        Some(v) => msgpack::write(out, v),
        None => msgpack::write_nil(out),
    }
    if let Some(traceback) = &e.traceback {
        msgpack::write_str(out, "traceback");
        msgpack::write_str(out, traceback);
    }
}

/// Compact JSON as `serde_json::to_vec` writes a `Value`.
struct Json<'a>(&'a mut Vec<u8>);

impl Json<'_> {
    fn raw(&mut self, text: &str) {
        self.0.extend_from_slice(text.as_bytes());
    }

    fn value<T: serde::Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        serde_json::to_writer(&mut *self.0, v).map_err(|e| EncodeError::Unencodable(e.to_string()))
    }

    /// `,"key":` (no comma before the first field).
    fn key(&mut self, key: &str, first: bool) {
        if !first {
            self.raw(",");
        }
        self.raw("\"");
        self.raw(key); // field names are plain ASCII: nothing to escape
        self.raw("\":");
    }

    fn opt<T: serde::Serialize + ?Sized>(&mut self, v: Option<&T>) -> Result<(), EncodeError> {
        match v {
            Some(v) => self.value(v),
            None => {
                self.raw("null");
                Ok(())
            }
        }
    }
}

fn response_json(out: &mut Vec<u8>, o: &ExecutionOutcome) -> Result<(), EncodeError> {
    let mut j = Json(out);
    j.raw("{\"type\":\"response\",\"payload\":{");
    j.key("job_id", true);
    j.value(o.job_id.as_str())?;
    j.key("request_id", false);
    j.opt(o.request_id.as_deref())?;
    j.key("status", false);
    j.value(o.status.as_str())?;
    j.key("result", false);
    j.opt(o.result.as_ref())?;
    j.key("error", false);
    match &o.error {
        Some(e) => error_json(&mut j, e)?,
        None => j.raw("null"),
    }
    j.key("retry_after_seconds", false);
    j.opt(o.retry_after_seconds.map(seconds_value).as_ref())?;
    if o.snooze {
        j.key("snooze", false);
        j.raw("true");
    }
    j.raw("}}");
    Ok(())
}

fn error_json(j: &mut Json<'_>, e: &OutcomeError) -> Result<(), EncodeError> {
    j.raw("{");
    j.key("message", true);
    j.value(e.message.as_str())?;
    j.key("type", false);
    j.opt(e.error_type.as_deref())?;
    j.key("code", false);
    j.opt(e.code.as_deref())?;
    j.key("details", false);
    j.opt(e.details.as_ref())?;
    if let Some(traceback) = &e.traceback {
        j.key("traceback", false);
        j.value(traceback.as_str())?;
    }
    j.raw("}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode_body, frame_bytes};
    use serde_json::json;

    fn generic(frame: &Frame, enc: Encoding) -> Result<Vec<u8>, EncodeError> {
        frame_bytes(&encode_body(&frame.to_value(), enc)?)
    }

    fn direct(frame: &Frame, enc: Encoding) -> Result<Vec<u8>, EncodeError> {
        let mut out = b"prefix".to_vec();
        let r = write_frame(&mut out, frame, enc);
        if r.is_err() {
            assert_eq!(out, b"prefix", "left as it was");
        }
        r.map(|()| out[6..].to_vec())
    }

    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!([]), |v, _| json!([v]))
    }

    #[test]
    fn response_frames_match_the_generic_encoding() {
        let mut with_all = ExecutionOutcome::error("bad \"input\"\n ü")
            .with_error_type("ValueError")
            .with_error_code("E1")
            .with_error_details(json!({"field": [1, 2.5, null, -3]}))
            .with_ids("job-1", "req-1");
        with_all.error.as_mut().unwrap().traceback = Some("Error: x\n  at a.rs:1:2".into());
        let outcomes = [
            ExecutionOutcome::success(json!({"i": 1, "s": "é", "f": 2.0, "n": null}))
                .with_ids("j", "r"),
            ExecutionOutcome::success(json!(null)),
            ExecutionOutcome::retry(None, Some(2.5)).with_ids("j", "r"),
            ExecutionOutcome::retry(Some("later"), Some(30.0)),
            ExecutionOutcome::retry(None, Some(f64::NAN)),
            ExecutionOutcome::snooze(1.0).with_ids("j", "r"),
            ExecutionOutcome::timeout(None),
            ExecutionOutcome::cancelled().with_ids("j", "r"),
            with_all,
            ExecutionOutcome::success(nested(RESULT_DEPTH - 1)),
            ExecutionOutcome::success(nested(RESULT_DEPTH)),
            ExecutionOutcome::error("x").with_error_details(nested(DETAILS_DEPTH - 1)),
            ExecutionOutcome::error("x").with_error_details(nested(DETAILS_DEPTH)),
        ];
        for o in outcomes {
            let frame = Frame::Response(o);
            for enc in [Encoding::Json, Encoding::Msgpack] {
                assert_eq!(direct(&frame, enc), generic(&frame, enc), "{frame:?} {enc}");
            }
        }
    }

    #[test]
    fn oversized_outcome_is_refused() {
        let big = ExecutionOutcome::success(json!("x".repeat(MAX_FRAME_BYTES)));
        for enc in [Encoding::Json, Encoding::Msgpack] {
            let e = direct(&Frame::Response(big.clone()), enc).unwrap_err();
            assert!(matches!(e, EncodeError::TooLarge(_)), "{e}");
        }
    }
}
