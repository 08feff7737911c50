//! Vigil's spans through the OTLP transport to a loopback receiver that
//! decodes them with the generated OTLP types.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::{any_value::Value as V, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind as OtlpKind;
use serde_json::{json, Value};
use vigil::transport::{Outcome, Request, RequestKind};
use vigil::{SpanKind, SpanStatus, Transport};
use vigil_test_server::otlp::{OtlpReceiver, ReceivedSpan};
use vigil_transport_otlp::{span_id_bytes, Compression, OtlpConfig, OtlpStats, OtlpTransport};

/// Keeps the Vigil body of every ingest request, then sends it on as OTLP:
/// the ground truth to compare the receiver's spans with.
struct Tee {
    otlp: OtlpTransport,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Transport for Tee {
    fn send(&mut self, request: &Request<'_>) -> Outcome {
        if request.kind == RequestKind::Ingest {
            let body = serde_json::from_slice(request.body).unwrap();
            self.bodies.lock().unwrap().push(body);
        }
        self.otlp.send(request)
    }
}

struct Setup {
    client: vigil::Client,
    bodies: Arc<Mutex<Vec<Value>>>,
    stats: OtlpStats,
}

fn client(config: OtlpConfig) -> Setup {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let stats = Arc::new(Mutex::new(None));
    let (b, s) = (bodies.clone(), stats.clone());
    let vigil = vigil::Config::builder()
        .project_id("otlp-tests")
        .release("1.2.3")
        .flush_interval_ms(10)
        .retry_backoff(Duration::from_millis(5))
        .transport(move || {
            let otlp = OtlpTransport::new(&config);
            *s.lock().unwrap() = Some(otlp.stats());
            Tee {
                otlp,
                bodies: b.clone(),
            }
        })
        .build()
        .unwrap();
    let client = vigil::Client::new(vigil).unwrap();
    let stats = stats.lock().unwrap().clone().unwrap();
    Setup {
        client,
        bodies,
        stats,
    }
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a V> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn str_attr<'a>(attributes: &'a [KeyValue], key: &str) -> &'a str {
    match attr(attributes, key) {
        Some(V::StringValue(s)) => s,
        other => panic!("{key}: {other:?}"),
    }
}

fn int_attr(attributes: &[KeyValue], key: &str) -> i64 {
    match attr(attributes, key) {
        Some(V::IntValue(i)) => *i,
        other => panic!("{key}: {other:?}"),
    }
}

fn hex_bytes(hex: &str) -> [u8; 16] {
    vigil::SpanId::parse_hex(hex).unwrap().to_bytes()
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A small agent: a root, an LLM call with usage, a tool with an event, a
/// failing step.
fn agent() {
    vigil::trace("answer-question", |trace| {
        trace.set_input(&json!({ "question": "why?" }));
        trace.set_session_id("conv-7");
        vigil::span("llm:gpt-4o-mini", SpanKind::Llm, |span| {
            span.set_input(&json!({
                "model": "gpt-4o-mini",
                "messages": [{ "role": "user", "content": "Say hi" }],
                "temperature": 0.2,
                "stop": "END",
            }));
            span.set_metadata("provider", &"openai");
            std::thread::sleep(Duration::from_millis(3));
            span.set_output(&json!({
                "model": "gpt-4o-mini-2024",
                "content": "Hi!",
                "role": "assistant",
                "usage": { "prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19 },
            }));
            span.record_usage(
                Some("gpt-4o-mini"),
                &json!({ "prompt_tokens": 12, "completion_tokens": 7 }),
            );
        });
        vigil::span("tool:search", SpanKind::Tool, |span| {
            span.set_input(&json!({ "query": "rust" }));
            span.set_metadata("hits", &3);
            span.set_metadata("score", &0.75);
            span.set_metadata("cached", &false);
            span.set_metadata("tags", &["a", "b"]);
            span.set_metadata("nested", &json!({ "k": [1, 2] }));
            vigil::log_event("cache-miss", &json!({ "key": "rust", "n": 2 }));
            span.set_output(&["ureq"]);
        });
        vigil::span("check", SpanKind::Custom, |span| {
            span.set_output(&json!({ "error": "the check failed" }));
            span.set_status(SpanStatus::Error);
        });
    });
}

fn by_vigil_id<'a>(spans: &'a [ReceivedSpan], id: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| matches!(attr(&s.span.attributes, "vigil.span_id"), Some(V::StringValue(v)) if v == id))
        .collect()
}

#[test]
fn every_span_arrives_once_as_recorded() {
    let receiver = OtlpReceiver::start();
    let setup = client(
        OtlpConfig::builder(&receiver.url())
            .service_name("otlp-test-service")
            .build()
            .unwrap(),
    );
    let before = now_nanos();
    setup.client.scope(agent);
    let report = setup.client.shutdown();
    let after = now_nanos();
    assert!(report.completed, "{report}");
    assert_eq!(report.stats.spans_delivered, 4, "{report}");

    let spans = receiver.spans();
    assert_eq!(spans.len(), 4);
    let bodies = setup.bodies.lock().unwrap().clone();
    let vigil_spans: Vec<&Value> = bodies
        .iter()
        .flat_map(|b| b["spans"].as_array().unwrap())
        .collect();
    assert_eq!(vigil_spans.len(), 4);
    for vs in &vigil_spans {
        let id = vs["span_id"].as_str().unwrap();
        let found = by_vigil_id(&spans, id);
        assert_eq!(found.len(), 1, "span {id} arrives once");
        let s = &found[0].span;
        assert_eq!(s.span_id, span_id_bytes(hex_bytes(id)));
        assert_eq!(s.trace_id, hex_bytes(vs["trace_id"].as_str().unwrap()));
        match vs["parent_span_id"].as_str() {
            Some(parent) => assert_eq!(s.parent_span_id, span_id_bytes(hex_bytes(parent))),
            None => assert!(s.parent_span_id.is_empty()),
        }
        assert_eq!(s.name, vs["name"].as_str().unwrap());
        assert!(before <= s.start_time_unix_nano && s.start_time_unix_nano <= s.end_time_unix_nano);
        assert!(s.end_time_unix_nano <= after);
        let kind = str_attr(&s.attributes, "openinference.span.kind");
        let kind = vigil::llm::openinference::kind_of_span_kind(kind).unwrap();
        assert_eq!(kind.as_str(), vs["kind"]);
        let resource = &found[0].resource;
        assert_eq!(str_attr(resource, "service.name"), "otlp-test-service");
        assert_eq!(str_attr(resource, "telemetry.sdk.name"), "vigil");
        assert_eq!(str_attr(resource, "telemetry.sdk.language"), "rust");
        assert_eq!(str_attr(resource, "vigil.project_id"), "otlp-tests");
        assert_eq!(
            str_attr(resource, "openinference.project.name"),
            "otlp-tests"
        );
        assert_eq!(str_attr(resource, "service.version"), "1.2.3");
    }
    let named = |name: &str| &spans.iter().find(|s| s.span.name == name).unwrap().span;

    // Parents: every child under the root, in one trace.
    let root = named("answer-question");
    for child in ["llm:gpt-4o-mini", "tool:search", "check"] {
        assert_eq!(named(child).parent_span_id, root.span_id, "{child}");
        assert_eq!(named(child).trace_id, root.trace_id);
    }
    assert_eq!(
        str_attr(&root.attributes, "openinference.span.kind"),
        "CHAIN"
    );
    assert_eq!(str_attr(&root.attributes, "session.id"), "conv-7");
    assert_eq!(root.status.as_ref().unwrap().code, 1, "ok");

    // The LLM span: GenAI and OpenInference.
    let llm = named("llm:gpt-4o-mini");
    let a = &llm.attributes;
    assert_eq!(llm.kind, OtlpKind::Client as i32);
    assert!(llm.end_time_unix_nano - llm.start_time_unix_nano >= 3_000_000);
    assert_eq!(str_attr(a, "gen_ai.operation.name"), "chat");
    assert_eq!(str_attr(a, "gen_ai.provider.name"), "openai");
    assert_eq!(str_attr(a, "gen_ai.request.model"), "gpt-4o-mini");
    assert_eq!(str_attr(a, "gen_ai.response.model"), "gpt-4o-mini-2024");
    assert_eq!(
        attr(a, "gen_ai.request.temperature"),
        Some(&V::DoubleValue(0.2))
    );
    let Some(V::ArrayValue(stop)) = attr(a, "gen_ai.request.stop_sequences") else {
        panic!("stop sequences are an array")
    };
    assert_eq!(stop.values.len(), 1);
    assert_eq!(int_attr(a, "gen_ai.usage.input_tokens"), 12);
    assert_eq!(int_attr(a, "gen_ai.usage.output_tokens"), 7);
    assert_eq!(str_attr(a, "openinference.span.kind"), "LLM");
    assert_eq!(str_attr(a, "llm.model_name"), "gpt-4o-mini");
    assert_eq!(int_attr(a, "llm.token_count.prompt"), 12);
    assert_eq!(int_attr(a, "llm.token_count.completion"), 7);
    assert_eq!(int_attr(a, "llm.token_count.total"), 19);
    // The price Vigil put on the call, as OpenInference's cost.
    let vigil_llm = vigil_spans.iter().find(|s| s["kind"] == "llm").unwrap();
    let cost = &vigil_llm["metadata"]["vigil.cost"];
    assert!(cost["total_usd"].as_f64().unwrap() > 0.0, "{vigil_llm}");
    assert_eq!(
        attr(a, "llm.cost.total"),
        Some(&V::DoubleValue(cost["total_usd"].as_f64().unwrap()))
    );
    assert_eq!(
        attr(a, "llm.cost.completion"),
        Some(&V::DoubleValue(cost["output_usd"].as_f64().unwrap()))
    );
    assert_eq!(str_attr(a, "llm.input_messages.0.message.role"), "user");
    assert_eq!(
        str_attr(a, "llm.input_messages.0.message.content"),
        "Say hi"
    );
    assert_eq!(str_attr(a, "llm.output_messages.0.message.content"), "Hi!");
    let input: Value = serde_json::from_str(str_attr(a, "input.value")).unwrap();
    assert_eq!(input["model"], "gpt-4o-mini");
    assert_eq!(str_attr(a, "input.mime_type"), "application/json");
    let messages: Value = serde_json::from_str(str_attr(a, "gen_ai.input.messages")).unwrap();
    assert_eq!(
        messages,
        json!([{ "role": "user", "parts": [{ "type": "text", "content": "Say hi" }] }])
    );
    let answer: Value = serde_json::from_str(str_attr(a, "gen_ai.output.messages")).unwrap();
    assert_eq!(answer[0]["parts"][0]["content"], "Hi!");
    assert_eq!(answer[0]["role"], "assistant");

    // The tool span: typed metadata and its event.
    let tool = named("tool:search");
    let a = &tool.attributes;
    assert_eq!(tool.kind, OtlpKind::Internal as i32);
    assert_eq!(str_attr(a, "gen_ai.operation.name"), "execute_tool");
    assert_eq!(str_attr(a, "gen_ai.tool.name"), "search");
    assert_eq!(str_attr(a, "openinference.span.kind"), "TOOL");
    assert_eq!(int_attr(a, "hits"), 3);
    assert_eq!(attr(a, "score"), Some(&V::DoubleValue(0.75)));
    assert_eq!(attr(a, "cached"), Some(&V::BoolValue(false)));
    let Some(V::ArrayValue(tags)) = attr(a, "tags") else {
        panic!("an array of strings")
    };
    assert_eq!(tags.values.len(), 2);
    assert_eq!(str_attr(a, "nested"), r#"{"k":[1,2]}"#);
    assert_eq!(tool.events.len(), 1);
    let event = &tool.events[0];
    assert_eq!(event.name, "cache-miss");
    assert!(tool.start_time_unix_nano <= event.time_unix_nano);
    assert!(event.time_unix_nano <= tool.end_time_unix_nano);
    assert_eq!(str_attr(&event.attributes, "key"), "rust");
    assert_eq!(int_attr(&event.attributes, "n"), 2);

    // The failing step: its status and message.
    let check = named("check");
    let status = check.status.as_ref().unwrap();
    assert_eq!(status.code, 2, "error");
    assert_eq!(status.message, "the check failed");
    assert_eq!(
        str_attr(&check.attributes, "openinference.span.kind"),
        "UNKNOWN"
    );

    // Protobuf, one request per trace, none for the trace's status.
    let requests = receiver.requests();
    assert_eq!(requests.len(), bodies.len());
    assert!(requests
        .iter()
        .all(|r| r.content_type == "application/x-protobuf" && r.content_encoding.is_none()));
    assert_eq!(setup.stats.rejected_spans(), 0);
}

#[test]
fn gzip_bodies_decode() {
    let receiver = OtlpReceiver::start();
    let setup = client(
        OtlpConfig::builder(&receiver.url())
            .compression(Compression::Gzip)
            .build()
            .unwrap(),
    );
    setup.client.scope(agent);
    let report = setup.client.shutdown();
    assert_eq!(report.stats.spans_delivered, 4, "{report}");
    let requests = receiver.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(r.status, 200);
    }
    assert_eq!(receiver.span_count(), 4);
}

#[test]
fn headers_are_sent() {
    let receiver = OtlpReceiver::start();
    let setup = client(
        OtlpConfig::builder(&receiver.url())
            .header("x-api-key", "k-123")
            .build()
            .unwrap(),
    );
    setup.client.scope(|| vigil::trace("job", |_| ()));
    setup.client.shutdown();
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0]
        .headers
        .contains(&("x-api-key".to_owned(), "k-123".to_owned())));
}

#[test]
fn a_429_is_retried_after_its_retry_after() {
    let receiver = OtlpReceiver::start();
    receiver.fail_next(1, 429, Some(1));
    let setup = client(OtlpConfig::builder(&receiver.url()).build().unwrap());
    setup.client.scope(|| vigil::trace("job", |_| ()));
    let report = setup.client.shutdown_timeout(Duration::from_secs(10));
    assert_eq!(report.stats.spans_delivered, 1, "{report}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!((requests[0].status, requests[1].status), (429, 200));
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert_eq!(receiver.span_count(), 1);
}

#[test]
fn only_502_503_504_are_retried() {
    for status in [502, 503, 504] {
        let receiver = OtlpReceiver::start();
        receiver.fail_next(1, status, None);
        let setup = client(OtlpConfig::builder(&receiver.url()).build().unwrap());
        setup.client.scope(|| vigil::trace("job", |_| ()));
        let report = setup.client.shutdown();
        assert_eq!(report.stats.spans_delivered, 1, "{status}: {report}");
        assert_eq!(receiver.requests().len(), 2, "{status}");
    }
    for status in [400, 401, 404, 413, 500] {
        let receiver = OtlpReceiver::start();
        receiver.fail_next(1, status, None);
        let setup = client(OtlpConfig::builder(&receiver.url()).build().unwrap());
        setup.client.scope(|| vigil::trace("job", |_| ()));
        let report = setup.client.shutdown();
        assert_eq!(report.stats.spans_rejected, 1, "{status}: {report}");
        assert_eq!(receiver.requests().len(), 1, "{status}: not retried");
        assert_eq!(receiver.span_count(), 0);
    }
}

#[test]
fn a_rejection_does_not_stop_later_traces() {
    let receiver = OtlpReceiver::start();
    receiver.fail_next(1, 400, None);
    let setup = client(OtlpConfig::builder(&receiver.url()).build().unwrap());
    setup.client.scope(|| vigil::trace("first", |_| ()));
    assert!(setup.client.flush(Duration::from_secs(5)));
    setup.client.scope(|| vigil::trace("second", |_| ()));
    let report = setup.client.shutdown();
    assert_eq!(
        (report.stats.spans_rejected, report.stats.spans_delivered),
        (1, 1)
    );
    assert_eq!(receiver.spans()[0].span.name, "second");
}

#[test]
fn partial_success_is_counted() {
    let receiver = OtlpReceiver::start();
    receiver.reject_partially(3, "spans too old");
    let setup = client(OtlpConfig::builder(&receiver.url()).build().unwrap());
    setup.client.scope(agent);
    let report = setup.client.shutdown();
    assert_eq!(report.stats.spans_delivered, 4, "{report}");
    assert_eq!(setup.stats.rejected_spans(), 3);
    assert_eq!(receiver.requests().len(), 1, "not retried");
}

#[test]
fn a_large_trace_goes_in_parts_within_the_cap() {
    let receiver = OtlpReceiver::start();
    let setup = client(
        OtlpConfig::builder(&receiver.url())
            .max_request_bytes(8192)
            .build()
            .unwrap(),
    );
    let text = "x".repeat(600);
    setup.client.scope(|| {
        vigil::trace("big", |_| {
            for i in 0..40 {
                vigil::span(format!("step-{i}"), SpanKind::Tool, |s| {
                    s.set_input(&json!({ "text": text }))
                });
            }
            // One span larger than the cap on its own: sent without content.
            vigil::span("huge", SpanKind::Llm, |s| {
                s.set_input(&json!({ "text": "y".repeat(20_000) }))
            });
        })
    });
    let report = setup.client.shutdown();
    assert_eq!(report.stats.spans_delivered, 42, "{report}");
    let requests = receiver.requests();
    assert!(requests.len() > 2, "{} requests", requests.len());
    assert!(requests
        .iter()
        .all(|r| r.body_len <= 8192 && r.status == 200));
    let spans = receiver.spans();
    assert_eq!(spans.len(), 42);
    let mut names: Vec<&str> = spans.iter().map(|s| s.span.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 42, "each once");
    let huge = &spans.iter().find(|s| s.span.name == "huge").unwrap().span;
    assert!(attr(&huge.attributes, "input.value").is_none());
    assert!(matches!(
        attr(&huge.attributes, "vigil.truncated"),
        Some(V::ArrayValue(_))
    ));
    assert_eq!(setup.stats.oversize_spans(), 1);
}

#[test]
fn a_part_delivered_before_a_retry_is_not_sent_again() {
    let spans: Vec<Value> = (0..12)
        .map(|i| {
            json!({
                "span_id": format!("{:032x}", i + 1), "trace_id": "0123456789abcdef0123456789abcdef",
                "parent_span_id": null, "name": format!("s{i}"), "kind": "tool", "status": "ok",
                "input": { "text": "z".repeat(500) }, "output": null, "metadata": {}, "events": [],
                "start_time": "2026-11-24T10:00:00.000001Z", "end_time": "2026-11-24T10:00:00.000002Z",
            })
        })
        .collect();
    let body = serde_json::to_vec(&json!({ "spans": spans, "project_id": "p" })).unwrap();
    let request = Request {
        kind: RequestKind::Ingest,
        trace_id: vigil::TraceId::parse_hex("0123456789abcdef0123456789abcdef").unwrap(),
        body: &body,
        spans: 12,
        timeout: Duration::from_secs(5),
    };
    let config = |url: &str| {
        OtlpConfig::builder(url)
            .max_request_bytes(4096)
            .build()
            .unwrap()
    };
    let parts = {
        let probe = OtlpReceiver::start();
        let mut t = OtlpTransport::new(&config(&probe.url()));
        assert_eq!(t.send(&request), Outcome::Delivered);
        assert_eq!(probe.span_count(), 12);
        probe.requests().len()
    };
    assert!(parts >= 2, "{parts} parts");

    let receiver = OtlpReceiver::start();
    let mut transport = OtlpTransport::new(&config(&receiver.url()));
    let patch = Request {
        kind: RequestKind::Patch,
        ..request
    };
    assert_eq!(transport.send(&patch), Outcome::Delivered);
    assert!(receiver.requests().is_empty(), "a PATCH sends nothing");
    // Every part but the last goes through; the last answers 503.
    receiver.fail_after(parts - 1, 503);
    assert!(matches!(transport.send(&request), Outcome::Retry { .. }));
    let before = receiver.span_count();
    assert!(0 < before && before < 12);
    assert_eq!(transport.send(&request), Outcome::Delivered);
    assert_eq!(receiver.span_count(), 12, "each span once");
    assert_eq!(receiver.requests().len(), parts + 1);
}

#[cfg(feature = "json")]
#[test]
fn otlp_json_bodies_decode() {
    let receiver = OtlpReceiver::start();
    receiver.reject_partially(1, "one too many");
    let setup = client(
        OtlpConfig::builder(&receiver.url())
            .protocol(vigil_transport_otlp::Protocol::HttpJson)
            .compression(Compression::Gzip)
            .build()
            .unwrap(),
    );
    setup.client.scope(agent);
    let report = setup.client.shutdown();
    assert_eq!(report.stats.spans_delivered, 4, "{report}");
    let requests = receiver.requests();
    assert!(requests
        .iter()
        .all(|r| r.content_type == "application/json"));
    let spans = receiver.spans();
    let llm = &spans
        .iter()
        .find(|s| s.span.name == "llm:gpt-4o-mini")
        .unwrap()
        .span;
    assert_eq!(int_attr(&llm.attributes, "gen_ai.usage.input_tokens"), 12);
    assert_eq!(llm.span_id.len(), 8);
    assert_eq!(setup.stats.rejected_spans(), 1);
}

#[test]
fn several_traces_share_a_request() {
    let receiver = OtlpReceiver::start();
    let otlp = OtlpConfig::builder(&receiver.url()).build().unwrap();
    let config = vigil::Config::builder()
        .flush_interval_ms(60_000)
        .transport(move || OtlpTransport::new(&otlp))
        .build()
        .unwrap();
    let client = vigil::Client::new(config).unwrap();
    client.scope(|| {
        for _ in 0..3 {
            vigil::trace("job", |_| vigil::span("step", SpanKind::Tool, |_| ()));
        }
    });
    let report = client.shutdown();
    assert_eq!(report.stats.spans_delivered, 6, "{report}");
    assert_eq!(report.stats.requests, 1, "one request, no PATCH: {report}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let spans = receiver.spans();
    let traces: std::collections::HashSet<&[u8]> =
        spans.iter().map(|s| s.span.trace_id.as_slice()).collect();
    assert_eq!((spans.len(), traces.len()), (6, 3));
}
