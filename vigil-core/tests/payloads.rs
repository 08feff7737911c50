//! Payloads the server could not store, or that could not be written at all,
//! never fail a request or the application.

mod common;

use common::encode_one;
use serde_json::{json, Value};
use vigil_core::encode::{encode_ingest, Envelope};
use vigil_core::{
    IdGenerator, JsonError, Name, Repaired, Span, SpanKind, SpanStatus, Timestamp, Truncated,
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
        vigil_core::write_object(&mut buf, 1024, &Failing),
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
