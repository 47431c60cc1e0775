//! Byte-exact encodings shared by every rrqkit producer (PRODUCER.md §4).

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::Value;

/// Canonical JSON: compact, object keys sorted by code point at every depth, only `"`, `\` and
/// U+0000–U+001F escaped, non-ASCII raw, integral numbers without a fraction.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&canonical_number(n)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Rust's str ordering is byte order of UTF-8, which is code-point order.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

/// A number in canonical form: integers as integers (also integral floats below 1e21),
/// other floats in shortest round-trip form.
pub fn canonical_number(n: &serde_json::Number) -> String {
    if n.is_u64() || n.is_i64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f == 0.0 {
        return "0".to_string();
    }
    if f.fract() == 0.0 && f.abs() < 1e21 {
        return format!("{f:.0}");
    }
    // serde_json prints finite floats in shortest round-trip form.
    n.to_string()
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// RFC 3339 in UTC with `+00:00` and 0, 3, 6 or 9 fraction digits (chrono's `to_rfc3339`).
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// Parses RFC 3339; a value without offset is taken as UTC.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(n.and_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorting_and_escapes() {
        let v = json!({"b": 1, "a": {"z": [1.0, 1.5, -0.0], "é": "x\u{1}\n\"\\/"}, "A": true, "\u{e000}": 1, "\u{1f600}": 2});
        assert_eq!(
            canonical_json(&v),
            "{\"A\":true,\"a\":{\"z\":[1,1.5,0],\"é\":\"x\\u0001\\n\\\"\\\\/\"},\"b\":1,\"\u{e000}\":1,\"\u{1f600}\":2}"
        );
    }

    #[test]
    fn timestamps() {
        let t = parse_timestamp("2026-01-01T12:00:00Z").unwrap();
        assert_eq!(format_timestamp(&t), "2026-01-01T12:00:00+00:00");
        let t = parse_timestamp("2026-01-01T12:00:00.12Z").unwrap();
        assert_eq!(format_timestamp(&t), "2026-01-01T12:00:00.120+00:00");
        let t = parse_timestamp("2026-01-01T13:00:00.123456+01:00").unwrap();
        assert_eq!(format_timestamp(&t), "2026-01-01T12:00:00.123456+00:00");
        let t = parse_timestamp("2026-01-01T12:00:00.123456789").unwrap();
        assert_eq!(format_timestamp(&t), "2026-01-01T12:00:00.123456789+00:00");
        assert!(parse_timestamp("yesterday").is_none());
    }
}
