//! Payloads the server could not store, or that could not be written at all,
//! never fail a request or the application.

mod common;

use common::encode_one;
use serde_json::{json, Value};
use vigil_core::encode::{encode_ingest, Envelope};
use vigil_core::{
    json::JsonError,
    span::{Repaired, Truncated},
    IdGenerator, Name, Span, SpanKind, SpanStatus, Timestamp,
};

type S = Span<String>;

/// Something done to a span.
type Write = fn(&mut S);

fn span(name: &str) -> S {
    let mut ids = IdGenerator::from_seed(21);
    Span::new(
        ids.trace_id(),
        ids.span_id(),
        None,
        Name::copied(name),
        SpanKind::Tool,
        Timestamp::from_unix_nanos(1_000),
    )
}

#[test]
fn every_nul_is_sent_as_the_replacement_character() {
    let mut s = span("n\0ame");
    s.set_input(&json!({"k\0ey": "in\0put"})).unwrap();
    s.set_output(&"out\0put").unwrap();
    s.set_metadata("me\0ta", &json!(["va\0lue"])).unwrap();
    s.add_event(
        "ev\0ent",
        Timestamp::from_unix_nanos(2_000),
        &json!({"a": "\0"}),
    )
    .unwrap();
    s.end(Timestamp::from_unix_nanos(3_000), SpanStatus::Ok);
    assert!(s.repaired().contains(Repaired::NUL));

    let mut buf = vec![0u8; 4096];
    let env = Envelope {
        project_id: "p\0",
        trace_name: Some("t\0"),
        trace_metadata: s.metadata_members(),
    };
    let e = encode_ingest(std::slice::from_ref(&s), &env, &mut buf).unwrap();
    let text = std::str::from_utf8(&buf[..e.len]).unwrap();
    assert!(!text.contains("\\u0000") && !text.contains('\0'), "{text}");
    // Checks every string and key too.
    let body = common::check_ingest(&buf[..e.len]);
    let got = &body["spans"][0];
    assert_eq!(got["name"], "n\u{fffd}ame");
    assert_eq!(got["input"], json!({"k\u{fffd}ey": "in\u{fffd}put"}));
    assert_eq!(got["output"], json!({"value": "out\u{fffd}put"}));
    assert_eq!(got["metadata"], json!({"me\u{fffd}ta": ["va\u{fffd}lue"]}));
    assert_eq!(got["events"][0]["name"], "ev\u{fffd}ent");
    assert_eq!(got["events"][0]["attributes"], json!({"a": "\u{fffd}"}));
    assert_eq!(body["project_id"], "p\u{fffd}");
    assert_eq!(body["trace_name"], "t\u{fffd}");
}

#[test]
fn each_place_a_nul_can_hide_marks_the_span() {
    const AT: Timestamp = Timestamp::from_unix_nanos(2_000);
    let writes: [(&str, Write); 9] = [
        ("input", |s| s.set_input(&"\0").unwrap()),
        ("input key", |s| s.set_input(&json!({"\0": 1})).unwrap()),
        ("output", |s| s.set_output(&json!({"o": "\0"})).unwrap()),
        ("metadata key", |s| s.set_metadata("\0", &1).unwrap()),
        ("metadata value", |s| s.set_metadata("k", &"\0").unwrap()),
        ("event name", |s| s.add_event("\0", AT, &()).unwrap()),
        ("event attributes", |s| {
            s.add_event("e", AT, &json!({"\0": "\0"})).unwrap()
        }),
        // Through `collect_str` (a `Display` value) and a `char`.
        ("display", |s| {
            s.set_metadata("k", &[format_args!("a{}", '\0')]).unwrap()
        }),
        ("char", |s| s.set_output(&'\0').unwrap()),
    ];
    for (place, write) in writes {
        let mut s = span("clean");
        write(&mut s);
        assert!(s.repaired().contains(Repaired::NUL), "{place}");
        let (body, _) = encode_one(&[s], 4096);
        let text = body.to_string();
        assert!(text.contains('\u{fffd}'), "{place}: {text}");
    }
    let mut clean = span("clean");
    clean.set_input(&json!({"a": "\u{1}\t\"\\"})).unwrap();
    clean.set_metadata("k", &"v").unwrap();
    assert!(clean.repaired().is_empty(), "other escapes are no repair");
    let (body, _) = encode_one(&[clean], 4096);
    assert_eq!(body["spans"][0]["input"], json!({"a": "\u{1}\t\"\\"}));
}

#[test]
fn a_nul_in_a_long_string_is_found_at_any_offset() {
    // Around the 8- and 32-byte strides of the escaper's fast path.
    for at in 0..80 {
        let mut text: Vec<u8> = vec![b'x'; 80];
        text[at] = 0;
        let text = String::from_utf8(text).unwrap();
        let mut s = span("s");
        s.set_input(&text).unwrap();
        let input: Value = serde_json::from_str(s.input().unwrap()).unwrap();
        let expected = text.replace('\0', "\u{fffd}");
        assert_eq!(input["value"].as_str(), Some(expected.as_str()), "at {at}");
        assert!(s.repaired().contains(Repaired::NUL));
    }
}

/// A value whose `Serialize` fails after writing part of itself.
struct Failing;

impl serde::Serialize for Failing {
    fn serialize<Se: serde::Serializer>(&self, s: Se) -> Result<Se::Ok, Se::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(None)?;
        seq.serialize_element(&1)?;
        Err(Se::Error::custom("no"))
    }
}

fn marker(why: &str) -> Value {
    json!({ "vigil.unserializable": why })
}

#[test]
fn a_value_that_cannot_be_written_leaves_a_marker_in_its_place() {
    const CUSTOM: &str = "the value's Serialize implementation failed";
    const KEY: &str = "a map key has no string form";
    let mut bad_keys = std::collections::BTreeMap::new();
    bad_keys.insert(vec![1], 2);
    let at = Timestamp::from_unix_nanos(2_000);

    let mut s = span("s");
    assert!(s.repaired().is_empty());
    assert_eq!(s.set_input(&Failing), Err(JsonError::Custom));
    assert_eq!(s.set_output(&bad_keys), Err(JsonError::KeyMustBeString));
    s.set_metadata("before", &1).unwrap();
    assert_eq!(s.set_metadata("k", &Failing), Err(JsonError::Custom));
    assert_eq!(
        s.set_metadata("keys", &bad_keys),
        Err(JsonError::KeyMustBeString)
    );
    s.set_metadata("after", &2).unwrap();
    s.add_event("first", at, &()).unwrap();
    assert_eq!(s.add_event("e", at, &Failing), Err(JsonError::Custom));
    assert!(s.repaired().contains(Repaired::UNSERIALIZABLE));
    assert!(s.truncated().is_empty(), "nothing was cut");

    let (body, _) = encode_one(&[s], 4096);
    let got = &body["spans"][0];
    assert_eq!(got["input"], marker(CUSTOM));
    assert_eq!(got["output"], marker(KEY));
    assert_eq!(
        got["metadata"],
        json!({"before": 1, "k": marker(CUSTOM), "keys": marker(KEY), "after": 2})
    );
    assert_eq!(got["events"][1]["name"], "e");
    assert_eq!(got["events"][1]["timestamp"], "1970-01-01T00:00:00.000002Z");
    assert_eq!(got["events"][1]["attributes"], marker(CUSTOM));
}

#[test]
fn a_marker_that_does_not_fit_is_cut_like_any_value() {
    let mut s = span("s");
    s.set_field_limit(20);
    assert_eq!(s.set_input(&Failing), Err(JsonError::Custom));
    assert_eq!(s.input(), None, "too small for the marker: null");
    assert_eq!(s.set_metadata("k", &Failing), Err(JsonError::Custom));
    // Room for the event up to its attributes, not for the marker.
    s.set_field_limit(100);
    assert_eq!(
        s.add_event("e", Timestamp::default(), &Failing),
        Err(JsonError::Custom)
    );
    assert!(s.repaired().contains(Repaired::UNSERIALIZABLE));
    assert!(s
        .truncated()
        .contains(Truncated::METADATA.union(Truncated::EVENTS)));
    let (body, _) = encode_one(&[s], 4096);
    assert_eq!(
        body["spans"][0]["metadata"],
        json!({"vigil.truncated": ["metadata", "events"]})
    );
}

#[test]
fn write_object_leaves_the_marker_in_the_buffer() {
    let mut buf = String::from("old");
    assert_eq!(
        vigil_core::span::write_object(&mut buf, 1024, &Failing),
        Err(JsonError::Custom)
    );
    let written: Value = serde_json::from_str(&buf).unwrap();
    assert_eq!(
        written,
        marker("the value's Serialize implementation failed")
    );
    let mut span = span("s");
    span.set_input_json(&buf).unwrap();
    assert_eq!(
        span.note(Truncated::INPUT, Err(JsonError::Custom)),
        Err(JsonError::Custom)
    );
    assert!(span.repaired().contains(Repaired::UNSERIALIZABLE));
}

/// `levels` arrays, each holding the next, around `0`: written without any
/// allocation or recursion of its own beyond what the writer asks for.
struct Nest(usize);

impl serde::Serialize for Nest {
    fn serialize<Se: serde::Serializer>(&self, s: Se) -> Result<Se::Ok, Se::Error> {
        use serde::ser::SerializeSeq;
        if self.0 == 0 {
            return s.serialize_u8(0);
        }
        let mut seq = s.serialize_seq(Some(1))?;
        seq.serialize_element(&Nest(self.0 - 1))?;
        seq.end()
    }
}

/// The same with the other shapes that nest: maps, struct and tuple
/// variants, newtype variants, and `Some`s and newtype structs (no level).
struct Shapes(usize);

impl serde::Serialize for Shapes {
    fn serialize<Se: serde::Serializer>(&self, s: Se) -> Result<Se::Ok, Se::Error> {
        use serde::ser::{SerializeMap, SerializeStructVariant, SerializeTupleVariant};
        let next = Shapes(self.0.saturating_sub(1));
        match self.0 % 6 {
            _ if self.0 == 0 => s.serialize_unit(),
            0 => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("m", &next)?;
                map.end()
            }
            1 => {
                let mut v = s.serialize_struct_variant("S", 0, "sv", 1)?;
                v.serialize_field("f", &next)?;
                v.end()
            }
            2 => {
                let mut v = s.serialize_tuple_variant("S", 1, "tv", 1)?;
                v.serialize_field(&next)?;
                v.end()
            }
            3 => s.serialize_newtype_variant("S", 2, "nv", &next),
            4 => s.serialize_some(&next),
            _ => s.serialize_newtype_struct("N", &next),
        }
    }
}

/// Levels of arrays and objects around the innermost non-container value,
/// and that value.
fn depth_of(mut v: &Value) -> (usize, &Value) {
    let mut depth = 0;
    loop {
        let inner = match v {
            Value::Array(items) if items.len() == 1 => &items[0],
            Value::Object(map) if map.len() == 1 => map.values().next().unwrap(),
            _ => return (depth, v),
        };
        depth += 1;
        v = inner;
    }
}

#[test]
fn values_nested_deeper_than_the_limit_are_cut_with_a_marker() {
    assert_eq!(vigil_core::json::MAX_DEPTH, 64);
    assert!(vigil_core::json::DEPTH_MARKER.ends_with(" 64"));
    let at = Timestamp::from_unix_nanos(2_000);
    let mut s = span("s");
    s.set_input(&Nest(64)).unwrap();
    assert!(s.truncated().is_empty(), "64 levels fit");
    s.set_input(&Nest(65)).unwrap();
    s.set_output(&Nest(1_000)).unwrap();
    s.set_metadata("deep", &Nest(100)).unwrap();
    s.set_metadata("shallow", &Nest(3)).unwrap();
    s.add_event("e", at, &Nest(100)).unwrap();
    assert!(s.truncated().contains(
        Truncated::INPUT
            .union(Truncated::OUTPUT)
            .union(Truncated::METADATA)
            .union(Truncated::EVENTS)
    ));
    let (body, _) = encode_one(&[s], 1 << 16);
    let got = &body["spans"][0];
    let marker = json!(vigil_core::json::DEPTH_MARKER);
    // The wrapping object, then the 64 arrays kept, then the marker for the
    // 65th.
    assert_eq!(depth_of(&got["input"]), (65, &marker));
    assert_eq!(depth_of(&got["output"]), (65, &marker));
    assert_eq!(depth_of(&got["metadata"]["deep"]), (64, &marker));
    assert_eq!(got["metadata"]["shallow"], json!([[[0]]]));
    assert_eq!(
        got["metadata"]["vigil.truncated"],
        json!(["input", "output", "metadata", "events"])
    );
    assert_eq!(depth_of(&got["events"][0]["attributes"]), (65, &marker));

    let mut kept = span("s");
    kept.set_input(&Nest(64)).unwrap();
    let (body, _) = encode_one(&[kept], 1 << 16);
    assert_eq!(depth_of(&body["spans"][0]["input"]), (65, &json!(0)));
}

#[test]
fn every_shape_that_nests_counts_toward_the_limit() {
    let mut s = span("s");
    s.set_input(&Shapes(10_000)).unwrap();
    assert!(s.truncated().contains(Truncated::INPUT));
    // Parses (within serde_json's 128 levels), with the marker at the end.
    let input: Value = serde_json::from_str(s.input().unwrap()).unwrap();
    let (depth, last) = depth_of(&input);
    assert!(depth <= vigil_core::json::MAX_DEPTH + 1, "{depth}");
    assert_eq!(last, &json!(vigil_core::json::DEPTH_MARKER));

    // Wrappers alone add no level, but are not followed without end either.
    struct Wrappers(usize);
    impl serde::Serialize for Wrappers {
        fn serialize<Se: serde::Serializer>(&self, s: Se) -> Result<Se::Ok, Se::Error> {
            match self.0 {
                0 => s.serialize_bool(true),
                n => s.serialize_newtype_struct("W", &Wrappers(n - 1)),
            }
        }
    }
    let mut s = span("s");
    s.set_input(&Wrappers(vigil_core::json::MAX_WRAPPERS))
        .unwrap();
    assert_eq!(s.input(), Some("{\"value\":true}"));
    assert!(s.truncated().is_empty());
    s.set_input(&Wrappers(1_000_000)).unwrap();
    assert_eq!(
        s.input().unwrap(),
        format!("{{\"value\":\"{}\"}}", vigil_core::json::DEPTH_MARKER)
    );
    assert!(s.truncated().contains(Truncated::INPUT));
    // As a map key, too.
    let mut keys = std::collections::BTreeMap::new();
    keys.insert(WrappedKey(1_000_000), 1);
    s.set_metadata("keys", &keys).unwrap();
    assert!(s.truncated().contains(Truncated::METADATA));
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct WrappedKey(usize);

impl serde::Serialize for WrappedKey {
    fn serialize<Se: serde::Serializer>(&self, s: Se) -> Result<Se::Ok, Se::Error> {
        match self.0 {
            0 => s.serialize_str("k"),
            n => s.serialize_some(&WrappedKey(n - 1)),
        }
    }
}

#[test]
fn a_million_levels_do_not_overflow_a_small_stack() {
    let run = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let at = Timestamp::from_unix_nanos(2_000);
            let mut s = span("s");
            s.set_input(&Nest(1_000_000)).unwrap();
            s.set_output(&Shapes(1_000_000)).unwrap();
            s.set_metadata("m", &Nest(1_000_000)).unwrap();
            s.add_event("e", at, &Shapes(1_000_000)).unwrap();
            let mut buf = String::new();
            vigil_core::span::write_json(&mut buf, usize::MAX, &Nest(1_000_000)).unwrap();
            s
        })
        .unwrap();
    let s = run.join().expect("no stack overflow");
    let (body, _) = encode_one(&[s], 1 << 16);
    let got = &body["spans"][0];
    assert_eq!(
        depth_of(&got["input"]).1,
        &json!(vigil_core::json::DEPTH_MARKER)
    );
    assert_eq!(
        got["metadata"]["vigil.truncated"],
        json!(["input", "output", "metadata", "events"])
    );
}

#[test]
fn a_request_with_deep_payloads_parses_within_serde_jsons_limit() {
    // serde_json refuses more than 128 levels; the request adds its own.
    let mut s = span("s");
    s.set_input(&Nest(200)).unwrap();
    s.set_output(&Shapes(200)).unwrap();
    s.set_metadata("m", &Nest(200)).unwrap();
    s.add_event("e", Timestamp::from_unix_nanos(2_000), &Nest(200))
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let e = encode_ingest(&[s], &Envelope::default(), &mut buf).unwrap();
    let parsed: Result<Value, _> = serde_json::from_slice(&buf[..e.len]);
    assert!(parsed.is_ok(), "{parsed:?}");
}

#[test]
fn write_json_keeps_the_value_as_it_is_but_cut() {
    let mut buf = String::new();
    let changes = vigil_core::span::write_json(&mut buf, 1024, &json!({"a\0": ["\0"]})).unwrap();
    assert!(
        changes.is_empty(),
        "U+0000 is kept for the value's next write"
    );
    let back: Value = serde_json::from_str(&buf).unwrap();
    assert_eq!(back, json!({"a\0": ["\0"]}));
    let changes = vigil_core::span::write_json(&mut buf, usize::MAX, &Nest(70)).unwrap();
    assert!(changes.contains(vigil_core::json::Changes::DEPTH_CUT));
    let back: Value = serde_json::from_str(&buf).unwrap();
    assert_eq!(
        depth_of(&back),
        (64, &json!(vigil_core::json::DEPTH_MARKER))
    );
    assert_eq!(
        vigil_core::span::write_json(&mut buf, 1024, &Failing),
        Err(JsonError::Custom)
    );
    assert_eq!(buf, "");
}
