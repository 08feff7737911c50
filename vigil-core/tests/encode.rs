//! The wire format: every rule of the Vigil server holds for any input.

mod common;

use common::{check_ingest, encode_one, without_nul};
use proptest::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use vigil_core::encode::{encode_ingest, encode_patch, EncodeError, Envelope};
use vigil_core::{
    json::JsonError,
    span::{Repaired, TRUNCATED_MARKER},
    IdGenerator, Span, SpanKind, SpanStatus, Timestamp, Trace,
};

type S = Span<String>;

fn span(ids: &mut IdGenerator, name: &str) -> S {
    let trace = ids.trace_id();
    Span::new(
        trace,
        ids.span_id(),
        None,
        vigil_core::Name::copied(name),
        SpanKind::Tool,
        Timestamp::from_unix_nanos(1_000_000_000),
    )
}

#[test]
fn a_span_encodes_to_the_documented_shape() {
    let mut ids = IdGenerator::from_seed(3);
    let mut trace: Trace<String> = Trace::new(
        ids.trace_id(),
        ids.span_id(),
        "pipeline",
        Timestamp::from_unix_nanos(0),
    );
    let mut child = trace.child(
        ids.span_id(),
        "search",
        SpanKind::Retriever,
        Timestamp::from_unix_nanos(1_500),
    );
    child.set_input(&json!({"query": "rust"})).unwrap();
    child.set_output(&vec!["a", "b"]).unwrap();
    child.set_metadata("hits", &2).unwrap();
    child
        .add_event(
            "cache-miss",
            Timestamp::from_unix_nanos(2_000),
            &json!({"key": "q"}),
        )
        .unwrap();
    child.end(Timestamp::from_unix_nanos(3_000_000), SpanStatus::Ok);
    trace.root().set_metadata("version", "1.0").unwrap();
    let root = trace.end(Timestamp::from_unix_nanos(4_000_000), SpanStatus::Error);

    let (body, n) = encode_one(&[child.clone(), root], 4096);
    assert_eq!(n, 2);
    let c = &body["spans"][0];
    assert_eq!(c["name"], "search");
    assert_eq!(c["kind"], "retriever");
    assert_eq!(c["status"], "ok");
    assert_eq!(c["input"], json!({"query": "rust"}));
    assert_eq!(c["output"], json!({"value": ["a", "b"]}));
    assert_eq!(c["metadata"], json!({"hits": 2}));
    assert_eq!(
        c["events"],
        json!([{"name": "cache-miss", "timestamp": "1970-01-01T00:00:00.000002Z", "attributes": {"key": "q"}}])
    );
    assert_eq!(c["start_time"], "1970-01-01T00:00:00.000001Z");
    assert_eq!(c["end_time"], "1970-01-01T00:00:00.003000Z");
    assert_eq!(c["parent_span_id"], body["spans"][1]["span_id"]);
    let r = &body["spans"][1];
    assert_eq!(r["parent_span_id"], Value::Null);
    assert_eq!(r["kind"], "chain");
    assert_eq!(r["status"], "error");
    assert_eq!(r["metadata"], json!({"version": "1.0"}));
}

#[test]
fn envelope_carries_project_and_trace_fields() {
    let mut ids = IdGenerator::from_seed(4);
    let s = span(&mut ids, "x");
    let mut buf = [0u8; 2048];
    let env = Envelope {
        project_id: "proj",
        trace_name: Some("my-pipeline"),
        trace_metadata: "\"v\":1",
    };
    let e = encode_ingest(&[s], &env, &mut buf).unwrap();
    let v = check_ingest(&buf[..e.len]);
    assert_eq!(v["project_id"], "proj");
    assert_eq!(v["trace_name"], "my-pipeline");
    assert_eq!(v["trace_metadata"], json!({"v": 1}));
    let e = encode_ingest(&[span(&mut ids, "y")], &Envelope::default(), &mut buf).unwrap();
    let v = check_ingest(&buf[..e.len]);
    assert!(v.get("project_id").is_none() && v.get("trace_name").is_none());
}

#[test]
fn names_are_cut_to_256_characters_on_a_char_boundary_with_a_marker() {
    let mut ids = IdGenerator::from_seed(5);
    let long = "é".repeat(300);
    let (body, _) = encode_one(&[span(&mut ids, &long)], 8192);
    let name = body["spans"][0]["name"].as_str().unwrap();
    assert_eq!(name.chars().count(), 256);
    assert!(name.chars().all(|c| c == 'é'));
    let s: S = Span::new(
        ids.trace_id(),
        ids.span_id(),
        None,
        leak(&"n".repeat(400)),
        SpanKind::Llm,
        Timestamp::default(),
    );
    let (body, _) = encode_one(&[s], 8192);
    assert_eq!(body["spans"][0]["name"].as_str().unwrap().len(), 256);
    assert_eq!(
        body["spans"][0]["metadata"]["vigil.truncated"],
        json!(["name"])
    );
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

#[test]
fn non_objects_are_wrapped_and_unit_is_empty() {
    let mut ids = IdGenerator::from_seed(6);
    let mut s = span(&mut ids, "x");
    for (value, expected) in [
        (json!("text"), json!({"value": "text"})),
        (json!(1.5), json!({"value": 1.5})),
        (json!([1, 2]), json!({"value": [1, 2]})),
        (json!(null), json!({})),
        (json!({"a": {"b": [true]}}), json!({"a": {"b": [true]}})),
    ] {
        s.set_input(&value).unwrap();
        let (body, _) = encode_one(std::slice::from_ref(&s), 4096);
        assert_eq!(body["spans"][0]["input"], expected);
    }
}

#[test]
fn non_finite_floats_become_null_and_odd_serde_shapes_are_valid_json() {
    #[derive(Serialize)]
    enum E {
        Tuple(u8, char),
        Struct { x: f32 },
        Unit,
    }
    let mut ids = IdGenerator::from_seed(7);
    let mut s = span(&mut ids, "x");
    let mut map = BTreeMap::new();
    map.insert(7u32, f64::NAN);
    map.insert(8u32, f64::INFINITY);
    s.set_input(&(
        map,
        E::Tuple(1, '"'),
        E::Struct {
            x: f32::NEG_INFINITY,
        },
        E::Unit,
        'c',
        u128::MAX,
        i128::MIN,
        b"ab".as_slice(),
    ))
    .unwrap();
    let (body, _) = encode_one(&[s], 4096);
    assert_eq!(
        body["spans"][0]["input"],
        json!({"value": [{"7": null, "8": null}, {"Tuple": [1, "\""]}, {"Struct": {"x": null}}, "Unit", "c",
            u128::MAX.to_string(), i128::MIN.to_string(), [97, 98]]})
    );
}

#[test]
fn keys_without_a_string_form_are_an_error_and_leave_a_marker() {
    let mut ids = IdGenerator::from_seed(8);
    let mut s = span(&mut ids, "x");
    let mut map = BTreeMap::new();
    map.insert(vec![1], 2);
    let marker = "{\"vigil.unserializable\":\"a map key has no string form\"}";
    assert_eq!(s.set_input(&map), Err(JsonError::KeyMustBeString));
    assert_eq!(s.input(), Some(marker));
    assert_eq!(s.set_metadata("k", &map), Err(JsonError::KeyMustBeString));
    assert_eq!(s.metadata_members(), format!("\"k\":{marker}"));
    assert!(s.repaired().contains(Repaired::UNSERIALIZABLE));
}

#[test]
fn oversized_payloads_become_markers_with_a_visible_note() {
    let mut ids = IdGenerator::from_seed(9);
    let mut s = span(&mut ids, "x");
    s.set_field_limit(64);
    assert_eq!(s.set_input(&"x".repeat(100)), Err(JsonError::Full));
    assert_eq!(s.input(), Some(TRUNCATED_MARKER));
    s.set_output(&"short").unwrap();
    s.set_metadata("a", &1).unwrap();
    assert_eq!(
        s.set_metadata("big", &"y".repeat(100)),
        Err(JsonError::Full)
    );
    assert_eq!(
        s.add_event("e", Timestamp::default(), &"z".repeat(100)),
        Err(JsonError::Full)
    );
    let (body, _) = encode_one(&[s], 4096);
    let span = &body["spans"][0];
    assert_eq!(span["input"], json!({"vigil.truncated": true}));
    assert_eq!(span["output"], json!({"value": "short"}));
    assert_eq!(
        span["metadata"],
        json!({"a": 1, "vigil.truncated": ["input", "metadata", "events"]})
    );
    assert_eq!(span["events"], json!([]));
}

#[test]
fn a_trace_too_big_for_one_buffer_is_split_between_spans() {
    let mut ids = IdGenerator::from_seed(10);
    let trace = ids.trace_id();
    let spans: Vec<S> = (0..50)
        .map(|i| {
            let mut s = Span::new(
                trace,
                ids.span_id(),
                None,
                "s",
                SpanKind::Tool,
                Timestamp::default(),
            );
            s.set_input(&json!({"i": i, "pad": "p".repeat(200)}))
                .unwrap();
            s
        })
        .collect();
    let mut buf = vec![0u8; 2000];
    let mut rest = &spans[..];
    let mut seen = Vec::new();
    while !rest.is_empty() {
        let e = encode_ingest(rest, &Envelope::default(), &mut buf).unwrap();
        assert!(e.spans >= 1 && e.len <= 2000);
        let v = check_ingest(&buf[..e.len]);
        assert_eq!(v["spans"].as_array().unwrap().len(), e.spans);
        for s in v["spans"].as_array().unwrap() {
            seen.push(s["input"]["i"].as_u64().unwrap());
        }
        rest = &rest[e.spans..];
    }
    assert_eq!(seen, (0..50).collect::<Vec<u64>>());
}

#[test]
fn a_single_span_larger_than_the_buffer_goes_bare_or_errors() {
    let mut ids = IdGenerator::from_seed(11);
    let mut s = span(&mut ids, "x");
    s.set_input(&"p".repeat(5000)).unwrap();
    let (body, n) = encode_one(std::slice::from_ref(&s), 1024);
    assert_eq!(n, 1);
    assert_eq!(body["spans"][0]["input"], Value::Null);
    assert_eq!(
        body["spans"][0]["metadata"],
        json!({"vigil.truncated": ["oversize"]})
    );
    let mut tiny = [0u8; 64];
    assert_eq!(
        encode_ingest(&[s], &Envelope::default(), &mut tiny),
        Err(EncodeError::BufferTooSmall)
    );
    assert_eq!(
        encode_ingest::<String>(&[], &Envelope::default(), &mut tiny),
        Err(EncodeError::NoSpans)
    );
}

#[test]
fn patch_body_has_status_and_metadata() {
    let mut buf = [0u8; 128];
    let n = encode_patch(SpanStatus::Error, "\"k\":\"v\"", &mut buf).unwrap();
    let v: Value = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(v, json!({"status": "error", "metadata": {"k": "v"}}));
    assert_eq!(
        encode_patch(SpanStatus::Ok, "", &mut [0u8; 8]),
        Err(EncodeError::BufferTooSmall)
    );
}

#[test]
fn heapless_buffers_hold_what_fits_and_mark_the_rest() {
    let mut ids = IdGenerator::from_seed(12);
    let mut s: Span<heapless::String<32>> = Span::new(
        ids.trace_id(),
        ids.span_id(),
        None,
        vigil_core::Name::copied(&"n".repeat(100)),
        SpanKind::Agent,
        Timestamp::default(),
    );
    assert_eq!(s.name().len(), 32);
    assert_eq!(s.set_input(&"x".repeat(40)), Err(JsonError::Full));
    assert_eq!(s.input(), Some(TRUNCATED_MARKER));
    s.set_output(&7).unwrap();
    let (body, _) = encode_one(&[s], 2048);
    assert_eq!(body["spans"][0]["output"], json!({"value": 7}));
}

/// Arbitrary JSON-ish values, including the awkward ones.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        "[\\x00-\\x1f\"\\\\/é😀]{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// What the encoder promises to keep of a value set as input/output.
fn as_object(v: &Value) -> Value {
    match v {
        Value::Object(_) => v.clone(),
        Value::Null => json!({}),
        other => json!({"value": other}),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_content_encodes_to_valid_protocol_json_and_round_trips(
        name in any::<String>(),
        input in value(),
        output in value(),
        meta_key in any::<String>(),
        meta in value(),
        event_name in any::<String>(),
        attrs in value(),
        floats in prop::collection::vec(any::<f64>(), 0..4),
        cap in 256usize..8192,
    ) {
        let mut ids = IdGenerator::from_seed(1);
        let mut s = span(&mut ids, &name);
        s.set_input(&input).unwrap();
        s.set_output(&output).unwrap();
        s.set_metadata(&meta_key, &meta).unwrap();
        s.set_metadata("floats", &floats).unwrap();
        s.add_event(&event_name, Timestamp::from_unix_nanos(5), &attrs).unwrap();
        s.end(Timestamp::from_unix_nanos(9), SpanStatus::Ok);
        let mut buf = vec![0u8; cap];
        match encode_ingest(std::slice::from_ref(&s), &Envelope { project_id: &name, trace_name: Some(&name), trace_metadata: "" }, &mut buf) {
            Ok(e) => {
                let body = check_ingest(&buf[..e.len]);
                let got = &body["spans"][0];
                let expected_name: String = name.chars().take(256).collect::<String>().replace('\0', "\u{fffd}");
                prop_assert_eq!(got["name"].as_str().unwrap(), expected_name.as_str());
                if got["metadata"].get("vigil.truncated").is_none() {
                    prop_assert_eq!(&got["input"], &as_object(&without_nul(&input)));
                    prop_assert_eq!(&got["output"], &as_object(&without_nul(&output)));
                    prop_assert_eq!(&got["events"][0]["attributes"], &as_object(&without_nul(&attrs)));
                    prop_assert_eq!(got["events"][0]["name"].as_str().unwrap(), event_name.chars().take(256).collect::<String>().replace('\0', "\u{fffd}"));
                    let floats_back: Vec<Value> = floats.iter().map(|f| serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)).collect();
                    prop_assert_eq!(&got["metadata"]["floats"], &Value::Array(floats_back));
                    let meta_key = meta_key.replace('\0', "\u{fffd}");
                    if meta_key != "floats" {
                        prop_assert_eq!(&got["metadata"][&meta_key], &without_nul(&meta));
                    }
                } else {
                    prop_assert!(got["metadata"]["vigil.truncated"].as_array().unwrap().iter().any(|v| v == "oversize" || v == "name"));
                }
            }
            Err(e) => prop_assert_eq!(e, EncodeError::BufferTooSmall),
        }
    }
}

/// Text dense in what JSON escapes, around the 8- and 32-byte strides of the
/// escaper and across multi-byte characters.
fn escape_heavy() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1}", "\u{8}", "\u{c}", "\u{1f}", " ", "~",
        "\u{7f}", "a", "é", "日", "😀", "xxxxxxxx",
    ]);
    prop::collection::vec(piece, 0..80).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn strings_round_trip_through_the_escaper(text in escape_heavy(), pad in 0usize..150) {
        let text = format!("{}{text}", "p".repeat(pad));
        let mut span = span(&mut IdGenerator::from_seed(1), "s");
        span.set_input(&text).unwrap();
        let input: Value = serde_json::from_str(span.input().unwrap()).unwrap();
        let sent = text.replace('\0', "\u{fffd}");
        prop_assert_eq!(input["value"].as_str(), Some(sent.as_str()));
        prop_assert_eq!(span.input().unwrap(), serde_json::to_string(&json!({"value": sent})).unwrap());
        prop_assert_eq!(span.repaired().contains(Repaired::NUL), text.contains('\0'));
    }
}

/// Integers of every width, as values and as map keys: the same text
/// serde_json writes; a float: text that reads back as the same value, or
/// `null` when it is not finite.
fn numbers_are_written_as_serde_json_writes_them(i: i64, u: u64, small: i8, f: f64) {
    let mut s = span(&mut IdGenerator::from_seed(1), "s");
    let keys = BTreeMap::from([(i, u)]);
    let value = (i, u, small, u8::MAX, i32::MIN, u128::from(u), i128::from(i));
    s.set_input(&value).unwrap();
    s.set_output(&keys).unwrap();
    s.set_metadata("f", &f).unwrap();
    let expected = json!({ "value": [i, u, small, u8::MAX, i32::MIN, u, i] });
    assert_eq!(
        s.input().unwrap(),
        serde_json::to_string(&expected).unwrap()
    );
    assert_eq!(s.output().unwrap(), format!("{{\"{i}\":{u}}}"));
    let read: Value = serde_json::from_str(&format!("{{{}}}", s.metadata_members())).unwrap();
    match read["f"].as_f64() {
        Some(back) => assert_eq!(back.to_bits(), f.to_bits(), "{f}"),
        None => assert!(!f.is_finite() && read["f"].is_null()),
    }
}

proptest! {
    #[test]
    fn any_number_is_written_as_serde_json_writes_it(i in any::<i64>(), u in any::<u64>(), small in any::<i8>(), f in any::<f64>()) {
        numbers_are_written_as_serde_json_writes_them(i, u, small, f);
    }
}

/// A float is written byte for byte as serde_json writes it: the shortest
/// decimal that reads back as it, in plain notation or with an exponent
/// (written `1e16` where serde_json writes `1e+16`, as ryu does).
fn a_float_is_written_as_serde_json_writes_it(f: f64) {
    let mut s = span(&mut IdGenerator::from_seed(1), "s");
    s.set_metadata("f", &f).unwrap();
    let expected = serde_json::to_string(&f).unwrap().replace("e+", "e");
    assert_eq!(s.metadata_members(), format!("\"f\":{expected}"), "{f:?}");
}

#[test]
fn floats_of_every_kind_are_written_as_serde_json_writes_them() {
    for f in [
        0.2,
        -0.2,
        0.1 + 0.2,
        1e-4,
        9.9e-5,
        1e-5,
        1e-7,
        0.5,
        1.0,
        -1.0,
        100.0,
        1234.5678,
        0.000123456789,
        999_999_999.0,
        999_999_999.5,
        1e9,
        1e15,
        1e16,
        1.5e300,
        3.0e-300,
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::EPSILON,
        12_345.678_901_234,
        123_456_789.123_456_7,
        0.1,
        0.7,
        2.675,
        1.005,
    ] {
        a_float_is_written_as_serde_json_writes_it(f);
    }
}

proptest! {
    #[test]
    fn short_decimals_are_written_as_serde_json_writes_them(
        n in 0u64..100_000_000_000_000,
        point in 0i32..=14,
        negative in any::<bool>(),
    ) {
        let f = n as f64 / 10f64.powi(point);
        a_float_is_written_as_serde_json_writes_it(if negative { -f } else { f });
    }

    #[test]
    fn any_finite_float_is_written_as_serde_json_writes_it(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        a_float_is_written_as_serde_json_writes_it(f);
    }
}

#[test]
fn the_widest_and_narrowest_numbers_are_written_whole() {
    for (i, u) in [
        (i64::MIN, u64::MAX),
        (i64::MAX, 0),
        (0, 1),
        (-1, 9),
        (-10, 10),
        (99, 100),
        (-100, 1000),
    ] {
        numbers_are_written_as_serde_json_writes_them(i, u, i8::MIN, -0.0);
    }
}

#[test]
fn the_all_zero_parent_means_none_and_any_end_time_reads_back_as_ended() {
    let mut ids = IdGenerator::from_seed(3);
    let zero = vigil_core::SpanId::from_bytes([0; 16]);
    let mut s: S = Span::new(
        ids.trace_id(),
        ids.span_id(),
        Some(zero),
        "orphan",
        SpanKind::Tool,
        Timestamp::from_unix_nanos(5),
    );
    assert_eq!(s.parent_id(), None);
    assert_eq!(s.end_time(), None, "running");
    s.end(Timestamp::from_unix_nanos(u64::MAX), SpanStatus::Ok);
    let end = s.end_time().expect("ended, even at the far future");
    assert_eq!(end.unix_nanos(), u64::MAX - 1);
    let (body, _) = encode_one(std::slice::from_ref(&s), 4096);
    assert_eq!(body["spans"][0]["parent_span_id"], Value::Null);

    let parent = ids.span_id();
    let child: S = Span::new(
        ids.trace_id(),
        ids.span_id(),
        Some(parent),
        "child",
        SpanKind::Tool,
        Timestamp::from_unix_nanos(5),
    );
    assert_eq!(child.parent_id(), Some(parent));
}
