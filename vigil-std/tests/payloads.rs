//! Payloads the server could not store, or that could not be written at all,
//! never fail a request or the application; each case is counted.

use serde_json::json;
use vigil_std::sink::capture;
use vigil_std::SpanKind;

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
