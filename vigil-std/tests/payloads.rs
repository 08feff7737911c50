//! Payloads the server could not store, or that could not be written at all,
//! never fail a request or the application; each case is counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;
use vigil_std::sink::{capture, capture_with};
use vigil_std::{config::ConfigBuilder, Config, SpanKind};

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
    let masked = Arc::new(AtomicUsize::new(0));
    let seen = masked.clone();
    let config = Config::builder().mask(move |_, _| {
        seen.fetch_add(1, Ordering::Relaxed);
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

/// `levels` arrays, each holding the next, around `0`.
struct Nest(usize);

impl serde::Serialize for Nest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        if self.0 == 0 {
            return s.serialize_u8(0);
        }
        let mut seq = s.serialize_seq(Some(1))?;
        seq.serialize_element(&Nest(self.0 - 1))?;
        seq.end()
    }
}

/// Levels of single-element arrays and objects around the innermost value,
/// and that value.
fn depth_of(mut v: &serde_json::Value) -> (usize, &serde_json::Value) {
    let mut depth = 0;
    loop {
        let inner = match v {
            serde_json::Value::Array(items) if items.len() == 1 => &items[0],
            serde_json::Value::Object(map) if map.len() == 1 => map.values().next().unwrap(),
            _ => return (depth, v),
        };
        depth += 1;
        v = inner;
    }
}

#[test]
fn a_payload_nested_200_deep_reaches_capture_cut_with_a_marker() {
    let c = capture(|| {
        vigil_std::trace("t", |_| {
            vigil_std::span("deep", SpanKind::Tool, |s| {
                s.set_input(&Nest(200));
                s.set_metadata("m", &Nest(200));
            });
        })
    });
    let deep = c.span("deep").expect("the request was kept");
    let marker = json!(DEPTH_MARKER);
    assert_eq!(depth_of(&deep.input), (65, &marker));
    assert_eq!(depth_of(&deep.metadata["m"]), (64, &marker));
    assert_eq!(
        deep.metadata["vigil.truncated"],
        json!(["input", "metadata"])
    );
    let stats = c.report.unwrap().stats;
    assert_eq!(stats.spans_delivered, 2);
    assert_eq!(stats.payloads_truncated, 1);
}

/// What stands in for what is nested deeper than 64 levels.
const DEPTH_MARKER: &str = "vigil.truncated: nested deeper than 64";

#[test]
fn the_console_keeps_a_request_with_a_deep_payload() {
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Shared::default();
    let printed = out.clone();
    let config = Config::builder()
        .transport(move || vigil_std::sink::ConsoleTransport::new(Box::new(out.clone())))
        .build()
        .unwrap();
    let client = vigil_std::Client::new(config).unwrap();
    client.scope(|| {
        vigil_std::trace("deep-trace", |t| t.set_input(&Nest(200)));
    });
    let report = client.shutdown();
    assert_eq!(report.stats.spans_delivered, 1, "{report}");
    assert_eq!(report.stats.spans_rejected, 0);
    let text = String::from_utf8(printed.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("deep-trace"), "{text}");
}

#[test]
fn a_mask_hook_survives_a_payload_nested_100_000_deep() {
    let run = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let config = Config::builder().mask(|_, v| {
                if let Some(items) = v.as_array_mut() {
                    items.push(json!("seen by the mask"));
                }
            });
            let (_, c) = capture_with(config, || {
                vigil_std::trace("t", |_| {
                    vigil_std::span("deep", SpanKind::Tool, |s| s.set_input(&Nest(100_000)));
                    // And from another thread, through the span's context.
                    vigil_std::span("mailed", SpanKind::Tool, |_| {
                        let context = vigil_std::Context::current();
                        std::thread::Builder::new()
                            .stack_size(2 << 20)
                            .spawn(move || {
                                let _attached = context.attach();
                                vigil_std::current_span().set_output(&Nest(100_000));
                            })
                            .unwrap()
                            .join()
                            .unwrap();
                    });
                })
            });
            c
        })
        .unwrap();
    let c = run.join().expect("no stack overflow");
    let deep = c.span("deep").unwrap();
    let outer = deep.input["value"].as_array().unwrap();
    assert_eq!(outer[1], "seen by the mask");
    assert_eq!(depth_of(&outer[0]), (63, &json!(DEPTH_MARKER)));
    assert_eq!(deep.metadata["vigil.truncated"], json!(["input"]));
    let mailed = c.span("mailed").unwrap();
    assert_eq!(mailed.metadata["vigil.truncated"], json!(["output"]));
    assert_eq!(c.report.unwrap().stats.payloads_truncated, 2);
}

/// A mask hook that panics on every payload, and how often it was called.
fn panicking_mask() -> (ConfigBuilder, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let config = Config::builder().mask(move |_, _| {
        seen.fetch_add(1, Ordering::Relaxed);
        panic!("the mask hook fails");
    });
    (config, calls)
}

fn masked_marker() -> serde_json::Value {
    json!({"vigil.masked": "the mask hook panicked"})
}

#[test]
fn a_mask_hook_that_panics_leaves_a_marker_and_the_span_goes_on() {
    let (config, calls) = panicking_mask();
    let (after, c) = capture_with(config, || {
        vigil_std::trace("t", |t| {
            t.set_input(&json!({"secret": "hunter2"}));
            "the application goes on"
        })
    });
    assert_eq!(after, "the application goes on");
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    let t = c.span("t").expect("the span is kept");
    assert_eq!(t.input, masked_marker(), "the value is left out");
    assert_eq!(t.status, "ok", "the caught panic is not the span's");
    let stats = c.report.unwrap().stats;
    assert_eq!(stats.spans_delivered, 1);
    assert_eq!(stats.mask_panics, 1);
}

#[test]
fn a_mask_hook_that_panics_on_metadata_events_and_output_leaves_markers() {
    let (config, _) = panicking_mask();
    let (_, c) = capture_with(config, || {
        vigil_std::trace("t", |t| {
            t.set_output(&"secret");
            t.set_metadata("k", &"secret");
            t.add_event("e", &json!({"secret": 1}));
        })
    });
    let t = c.span("t").unwrap();
    assert_eq!(t.output, masked_marker());
    assert_eq!(t.metadata, json!({"k": masked_marker()}));
    assert_eq!(t.events[0]["name"], "e");
    assert_eq!(t.events[0]["attributes"], masked_marker());
    assert_eq!(c.report.unwrap().stats.mask_panics, 3);
}

#[test]
fn a_mask_hook_that_panics_on_an_update_from_another_thread_keeps_the_span() {
    let (config, calls) = panicking_mask();
    let (_, c) = capture_with(config, || {
        vigil_std::trace("t", |_| {
            // Applied (and masked) when the span ends, on this thread.
            vigil_std::spawn(|| vigil_std::current_span().set_input(&"secret"))
                .join()
                .unwrap();
        })
    });
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(c.span("t").unwrap().input, masked_marker());
    let stats = c.report.unwrap().stats;
    assert_eq!(stats.spans_started, 1);
    assert_eq!(stats.spans_ended, 1);
    assert_eq!(stats.spans_delivered, 1);
    assert_eq!(stats.mask_panics, 1);
}

#[test]
fn a_span_ending_while_its_thread_unwinds_does_not_call_the_mask_hook() {
    let (config, calls) = panicking_mask();
    let (_, c) = capture_with(config, || {
        vigil_std::trace("t", |_| {
            let unwinding = vigil_std::spawn(|| {
                let _span = vigil_std::start_span("unwinding", SpanKind::Tool);
                // Waits for the span, to be applied as it ends.
                vigil_std::spawn(|| vigil_std::current_span().set_input(&"secret"))
                    .join()
                    .unwrap();
                panic!("the application fails");
            });
            assert!(unwinding.join().is_err(), "the thread's own panic");
        })
    });
    assert_eq!(
        calls.load(Ordering::Relaxed),
        0,
        "not called while unwinding"
    );
    let s = c.span("unwinding").expect("the span is kept");
    assert_eq!(s.input, masked_marker());
    assert_eq!(s.status, "error");
    let stats = c.report.unwrap().stats;
    assert_eq!(stats.spans_delivered, 2);
    assert_eq!(stats.mask_panics, 1);
}
