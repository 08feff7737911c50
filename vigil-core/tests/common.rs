//! Helpers shared by the core's integration tests.
#![allow(dead_code)]

use serde_json::Value;
use vigil_core::encode::{encode_ingest, Envelope};
use vigil_core::{span::MAX_NAME_CHARS, Span};

pub const KINDS: [&str; 6] = ["llm", "tool", "chain", "retriever", "agent", "custom"];
pub const STATUSES: [&str; 3] = ["ok", "error", "unset"];

/// Checks a body against every rule of PROTOCOL.md; returns it parsed.
pub fn check_ingest(body: &[u8]) -> Value {
    let text = std::str::from_utf8(body).expect("UTF-8");
    let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let spans = value["spans"].as_array().expect("spans array");
    assert!(!spans.is_empty(), "at least one span");
    let first_trace = spans[0]["trace_id"].clone();
    for span in spans {
        for id in ["span_id", "trace_id"] {
            let id = span[id].as_str().expect("id string");
            assert_eq!(id.len(), 32);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
        assert_eq!(span["trace_id"], first_trace, "one trace per request");
        assert!(
            span["parent_span_id"].is_null()
                || span["parent_span_id"].as_str().unwrap().len() == 32
        );
        assert!(span["name"].as_str().unwrap().chars().count() <= MAX_NAME_CHARS);
        assert!(KINDS.contains(&span["kind"].as_str().unwrap()));
        assert!(STATUSES.contains(&span["status"].as_str().unwrap()));
        for field in ["input", "output"] {
            assert!(
                span[field].is_null() || span[field].is_object(),
                "{field}: {}",
                span[field]
            );
        }
        assert!(span["metadata"].is_object());
        for event in span["events"].as_array().expect("events array") {
            assert!(event["name"].is_string());
            assert!(event["timestamp"].as_str().unwrap().ends_with('Z'));
            assert!(event["attributes"].is_object());
        }
        assert!(span["start_time"].as_str().unwrap().ends_with('Z'));
        assert!(span["end_time"].is_null() || span["end_time"].as_str().unwrap().ends_with('Z'));
    }
    assert_no_nul(&value);
    value
}

/// PostgreSQL cannot store U+0000: no string or key of a body may hold one.
pub fn assert_no_nul(value: &Value) {
    match value {
        Value::String(s) => assert!(!s.contains('\0'), "U+0000 in {s:?}"),
        Value::Array(items) => items.iter().for_each(assert_no_nul),
        Value::Object(map) => {
            for (k, v) in map {
                assert!(!k.contains('\0'), "U+0000 in the key {k:?}");
                assert_no_nul(v);
            }
        }
        _ => {}
    }
}

/// `value` with every U+0000 in its strings and keys replaced by U+FFFD, as
/// the encoder sends it.
pub fn without_nul(value: &Value) -> Value {
    let fix = |s: &str| s.replace('\0', "\u{fffd}");
    match value {
        Value::String(s) => Value::String(fix(s)),
        Value::Array(items) => Value::Array(items.iter().map(without_nul).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (fix(k), without_nul(v))).collect())
        }
        other => other.clone(),
    }
}

/// Encodes `spans` into one body of up to `cap` bytes and checks it.
pub fn encode_one<B: vigil_core::Buffer>(spans: &[Span<B>], cap: usize) -> (Value, usize) {
    let mut buf = vec![0u8; cap];
    let encoded = encode_ingest(spans, &Envelope::default(), &mut buf).expect("encodes");
    (check_ingest(&buf[..encoded.len]), encoded.spans)
}
