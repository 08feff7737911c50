//! The JSON-lines file sink and the console tree.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use vigil_std::sink::{ConsoleTransport, JsonLinesTransport};
use vigil_std::{Client, Config, SpanKind};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn agent() {
    vigil_std::trace("answer", |t| {
        t.set_input(&json!({"q": "why?"}));
        vigil_std::span("retrieve", SpanKind::Retriever, |s| s.set_output(&["doc"]));
        vigil_std::span("llm:gpt-4", SpanKind::Llm, |_| {
            vigil_std::log_event("token", &())
        });
    });
}

#[test]
fn json_lines_holds_one_ingest_body_per_line() {
    let path = std::env::temp_dir().join(format!("vigil-sink-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = path.clone();
    let config = Config::builder().transport(move || JsonLinesTransport::create(&p).unwrap());
    let client = Client::new(config.build().unwrap()).unwrap();
    client.scope(|| {
        agent();
        agent();
    });
    assert!(client.shutdown().completed);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one ingest body per trace");
    for body in &lines {
        assert_eq!(body["trace_name"], "answer");
        assert_eq!(body["spans"].as_array().unwrap().len(), 3);
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_console_prints_each_trace_as_a_tree() {
    let out = Shared::default();
    let sink = out.clone();
    let config = Config::builder().transport(move || ConsoleTransport::new(Box::new(sink.clone())));
    let client = Client::new(config.build().unwrap()).unwrap();
    client.scope(agent);
    assert!(client.shutdown().completed);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("answer [chain] ") && lines[0].contains(" ok"),
        "{text}"
    );
    assert!(lines[0].contains(r#"in={"q":"why?"}"#));
    assert!(lines[1].starts_with("├─ retrieve [retriever] "), "{text}");
    assert!(lines[1].contains(r#"out={"value":["doc"]}"#));
    assert!(
        lines[2].starts_with("└─ llm:gpt-4 [llm] ") && lines[2].ends_with("events=[token]"),
        "{text}"
    );
}

/// Traces whose root never arrives are printed as they are once too many
/// wait, so the console never holds spans without bound.
#[test]
fn the_console_holds_a_bounded_number_of_rootless_traces() {
    use vigil_std::{
        transport::{Outcome, Request, RequestKind},
        Transport,
    };
    let out = Shared::default();
    let mut console = ConsoleTransport::new(Box::new(out.clone()));
    let mut ids = vigil_core::IdGenerator::from_seed(7);
    for i in 0..1_100 {
        let trace_id = ids.trace_id();
        let body = json!({"spans": [{
            "span_id": ids.span_id().to_string(), "trace_id": trace_id.to_string(),
            "parent_span_id": ids.span_id().to_string(), "name": format!("orphan-{i}"),
            "kind": "tool", "status": "ok", "input": null, "output": null,
            "metadata": {}, "events": [],
            "start_time": "2026-11-24T10:00:00.000000Z", "end_time": "2026-11-24T10:00:00.000001Z"
        }]})
        .to_string();
        let request = Request {
            kind: RequestKind::Ingest,
            trace_id,
            body: body.as_bytes(),
            spans: 1,
            timeout: std::time::Duration::from_secs(1),
        };
        assert_eq!(console.send(&request), Outcome::Delivered);
    }
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.lines().count(), 100, "the 100 oldest were printed");
    assert!(
        text.lines().next().unwrap().starts_with("orphan-0 [tool]"),
        "{text}"
    );
}

#[test]
fn the_console_shows_errors_metadata_and_event_names() {
    let out = Shared::default();
    let sink = out.clone();
    let config = Config::builder().transport(move || ConsoleTransport::new(Box::new(sink.clone())));
    let client = Client::new(config.build().unwrap()).unwrap();
    client.scope(|| {
        vigil_std::trace("answer", |_| {
            let _ = vigil_std::try_span("fetch", SpanKind::Tool, |s| {
                s.set_metadata("url", &"https://example.com");
                vigil_std::log_event("connect", &());
                vigil_std::log_event("a-very-long-event-name-that-goes-on-and-on", &());
                for _ in 0..3 {
                    vigil_std::log_event("retry", &());
                }
                Err::<(), _>(std::io::Error::other("connection refused"))
            });
        });
    });
    client.shutdown();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let fetch = text.lines().find(|l| l.contains("fetch [tool]")).unwrap();
    assert!(fetch.contains(" error: connection refused"), "{fetch}");
    assert!(
        fetch.contains(r#"meta={"url":"https://example.com"}"#),
        "{fetch}"
    );
    assert!(
        fetch.contains("events=[connect, a-very-long-event-name-t…, retry +2]"),
        "{fetch}"
    );
}
