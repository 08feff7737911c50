//! Payloads the server could not store, or that could not be written at all,
//! never fail a request or the application; each case is counted.

use serde_json::json;
use vigil_std::sink::{capture, capture_with};
use vigil_std::{Config, SpanKind};

#[test]
fn nuls_are_replaced_and_the_spans_counted() {
    let c = capture(|| {
        vigil_std::trace("t", |_| {
            vigil_std::span("clean", SpanKind::Tool, |s| s.set_input(&"no nul"));
            // Only the name: replaced, and counted, as the span is sent.
            vigil_std::span(String::from("na\0me"), SpanKind::Tool, |_| ());
            vigil_std::span("input", SpanKind::Tool, |s| {
                s.set_input(&json!({"q": "a\0b"}));
            });
            vigil_std::span("several", SpanKind::Tool, |s| {
                s.set_output(&"\0");
                s.set_metadata("k\0", &1);
                s.add_event("e\0", &json!({"a": "\0"}));
            });
        })
    });
    assert_eq!(c.span("na\u{fffd}me").unwrap().kind, "tool");
    assert_eq!(c.span("input").unwrap().input, json!({"q": "a\u{fffd}b"}));
    let several = c.span("several").unwrap();
    assert_eq!(several.output, json!({"value": "\u{fffd}"}));
    assert_eq!(several.metadata, json!({"k\u{fffd}": 1}));
    assert_eq!(several.events[0]["name"], "e\u{fffd}");
    assert_eq!(several.events[0]["attributes"], json!({"a": "\u{fffd}"}));
    let stats = c.report.unwrap().stats;
    assert_eq!(stats.spans_delivered, 5);
    assert_eq!(stats.nul_replaced, 3, "spans, not characters");
}

/// A value whose `Serialize` fails.
struct Failing;

impl serde::Serialize for Failing {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("no"))
    }
}

const FAILED: &str = "the value's Serialize implementation failed";

#[test]
fn unserializable_values_leave_a_marker_and_are_counted() {
    let c = capture(|| {
        vigil_std::trace("t", |_| {
            vigil_std::span("input", SpanKind::Tool, |s| s.set_input(&Failing));
            vigil_std::span("output", SpanKind::Tool, |s| {
                let mut keys = std::collections::BTreeMap::new();
                keys.insert((1, 2), 3);
                s.set_output(&keys);
            });
            vigil_std::span("metadata", SpanKind::Tool, |s| {
                s.set_metadata("k", &Failing);
                s.add_event("e", &Failing);
            });
            vigil_std::span("fine", SpanKind::Tool, |s| s.set_input(&1));
        })
    });
    let marker = json!({"vigil.unserializable": FAILED});
    assert_eq!(c.span("input").unwrap().input, marker);
    assert_eq!(
        c.span("output").unwrap().output,
        json!({"vigil.unserializable": "a map key has no string form"})
    );
    let s = c.span("metadata").unwrap();
    assert_eq!(s.metadata, json!({"k": marker}));
    assert_eq!(s.events[0]["name"], "e");
    assert_eq!(s.events[0]["attributes"], marker);
    let stats = c.report.unwrap().stats;
    assert_eq!(stats.spans_delivered, 5);
    assert_eq!(stats.payloads_unserializable, 3);
}

#[test]
fn unserializable_values_with_a_mask_or_from_another_thread_leave_a_marker() {
    let masked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = masked.clone();
    let config = Config::builder().mask(move |_, _| {
        seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let (_, c) = capture_with(config, || {
        vigil_std::trace("t", |_| {
            vigil_std::span("masked", SpanKind::Tool, |s| s.set_input(&Failing));
            vigil_std::span("mailed", SpanKind::Tool, |_| {
                vigil_std::spawn(|| {
                    vigil_std::current_span().set_output(&Failing);
                    vigil_std::current_span().set_metadata("k", &Failing);
                })
                .join()
                .unwrap();
            });
        })
    });
    let marker = json!({"vigil.unserializable": FAILED});
    assert_eq!(c.span("masked").unwrap().input, marker);
    let mailed = c.span("mailed").unwrap();
    assert_eq!(mailed.output, marker);
    assert_eq!(mailed.metadata, json!({"k": marker}));
    assert_eq!(
        masked.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a marker is not masked"
    );
    assert_eq!(c.report.unwrap().stats.payloads_unserializable, 2);
}
