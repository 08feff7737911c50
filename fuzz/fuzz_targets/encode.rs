//! Fuzzes the encoder: any names, payloads and buffer sizes must give valid
//! protocol JSON or a typed error, never a panic.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run encode -- -max_total_time=600`
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vigil_core::encode::{encode_ingest, encode_patch, Envelope};
use vigil_core::{IdGenerator, Name, Span, SpanKind, SpanStatus, Timestamp, span::MAX_NAME_CHARS};

/// Splits the input into strings at 0xFF bytes (lossy UTF-8).
fn pieces(data: &[u8]) -> Vec<String> {
    data.split(|b| *b == 0xff)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let cap = usize::from(u16::from_le_bytes([data[0], data[1]])) % 8192;
    let flags = data[2];
    let limit = 16 + usize::from(data[3]) * 64;
    let parts = pieces(&data[4..]);
    let mut ids = IdGenerator::from_seed(u64::from(flags));
    let trace = ids.trace_id();
    let mut spans: Vec<Span<String>> = Vec::new();
    for (i, chunk) in parts.chunks(4).enumerate() {
        let get = |k: usize| chunk.get(k).cloned().unwrap_or_default();
        let kind = SpanKind::ALL[i % 6];
        let parent = (i > 0).then(|| ids.span_id());
        let mut s = Span::new(trace, ids.span_id(), parent, Name::copied(&get(0)), kind, Timestamp::from_unix_nanos(i as u64));
        s.set_field_limit(limit);
        let f = f64::from_bits(u64::from_le_bytes(
            get(1).bytes().chain(std::iter::repeat(0)).take(8).collect::<Vec<_>>().try_into().unwrap(),
        ));
        let _ = match flags % 4 {
            0 => s.set_input(&get(1)),
            1 => s.set_input(&f),
            2 => s.set_input(&serde_json::json!({ get(1): [f, get(2)] })),
            _ => s.set_input(&(get(1).chars().collect::<Vec<char>>(), f, i as u128)),
        };
        let _ = s.set_output(&get(2));
        let _ = s.set_metadata(&get(3), &f);
        let _ = s.add_event(&get(2), Timestamp::from_unix_nanos(u64::MAX - i as u64), &get(3));
        s.end(Timestamp::from_unix_nanos(i as u64 + 10), SpanStatus::ALL[i % 3]);
        spans.push(s);
    }
    if spans.is_empty() {
        return;
    }
    let name = parts.first().cloned().unwrap_or_default();
    let mut buf = vec![0u8; cap];
    let envelope = Envelope { project_id: &name, trace_name: Some(&name), trace_metadata: spans[0].metadata_members() };
    if let Ok(e) = encode_ingest(&spans, &envelope, &mut buf) {
        assert!(e.len <= cap && e.spans >= 1 && e.spans <= spans.len());
        let v: Value = serde_json::from_slice(&buf[..e.len]).expect("valid JSON");
        let got = v["spans"].as_array().expect("spans");
        assert_eq!(got.len(), e.spans);
        for s in got {
            assert_eq!(s["span_id"].as_str().unwrap().len(), 32);
            assert_eq!(s["trace_id"].as_str().unwrap(), trace.to_string());
            assert!(s["name"].as_str().unwrap().chars().count() <= MAX_NAME_CHARS);
            assert!(["llm", "tool", "chain", "retriever", "agent", "custom"].contains(&s["kind"].as_str().unwrap()));
            assert!(["ok", "error", "unset"].contains(&s["status"].as_str().unwrap()));
            assert!(s["input"].is_null() || s["input"].is_object());
            assert!(s["output"].is_null() || s["output"].is_object());
            assert!(s["metadata"].is_object());
            assert!(s["events"].as_array().unwrap().iter().all(|e| e["attributes"].is_object()));
        }
    }
    if let Ok(n) = encode_patch(SpanStatus::Error, spans[0].metadata_members(), &mut buf) {
        let v: Value = serde_json::from_slice(&buf[..n]).expect("valid PATCH JSON");
        assert!(v["metadata"].is_object());
    }
});
