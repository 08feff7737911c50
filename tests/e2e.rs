//! End to end: the SDK, its HTTP transport, and a local Vigil server that
//! enforces the real server's rules, over loopback sockets.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use vigil::{Client, Config, SpanKind, SpanStatus};
use vigil_test_server::TestServer;

fn client(
    server: &TestServer,
    tweak: impl FnOnce(vigil::config::ConfigBuilder) -> vigil::config::ConfigBuilder,
) -> Client {
    let builder = Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .project_id("e2e")
        .flush_interval_ms(20)
        .timeout_seconds(2.0)
        .retry_backoff(Duration::from_millis(20));
    Client::new(tweak(builder).build().unwrap()).unwrap()
}

/// What the application made, to compare with what the server stored.
#[derive(Debug, Clone, PartialEq)]
struct Made {
    trace: String,
    span: String,
    parent: Option<String>,
    name: String,
    kind: &'static str,
}

#[test]
fn concurrent_traces_arrive_intact() {
    let server = TestServer::builder().no_rate_limit().start();
    let client = client(&server, |b| b.batch_size(50));
    let made = Arc::new(Mutex::new(Vec::new()));
    client.scope(|| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let made = made.clone();
                vigil::spawn(move || {
                    for n in 0..25 {
                        let name = format!("trace-{t}-{n}");
                        let trace = vigil::start_trace(name.clone());
                        trace.set_metadata("thread", &t);
                        trace.set_input(&json!({"n": n}));
                        let root = trace.id().unwrap().to_string();
                        let trace_id = trace.trace_id().unwrap().to_string();
                        let mut mine = vec![Made {
                            trace: trace_id.clone(),
                            span: root.clone(),
                            parent: None,
                            name: name.clone(),
                            kind: "chain",
                        }];
                        for (i, kind) in [SpanKind::Retriever, SpanKind::Llm, SpanKind::Tool]
                            .into_iter()
                            .enumerate()
                        {
                            let s = vigil::start_span(format!("{name}/step-{i}"), kind);
                            s.add_event("progress", &json!({"i": i}));
                            if i == 2 && n % 5 == 0 {
                                s.set_status(SpanStatus::Error);
                            }
                            std::thread::sleep(Duration::from_micros(200));
                            mine.push(Made {
                                trace: trace_id.clone(),
                                span: s.id().unwrap().to_string(),
                                parent: Some(root.clone()),
                                name: format!("{name}/step-{i}"),
                                kind: kind.as_str(),
                            });
                        }
                        made.lock().unwrap().extend(mine);
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
    });
    let report = client.shutdown_timeout(Duration::from_secs(30));
    assert!(report.completed, "{report}");
    assert_eq!(report.stats.dropped(), 0);

    let made = made.lock().unwrap();
    let traces = server.traces();
    assert_eq!(traces.len(), 100);
    assert_eq!(server.span_count(), made.len());
    let by_span: HashMap<&str, &Made> = made.iter().map(|m| (m.span.as_str(), m)).collect();
    for trace in &traces {
        let name = trace.name.clone().expect("named trace");
        assert!(name.starts_with("trace-"));
        assert_eq!(trace.status.as_deref(), Some("ok"));
        assert!(trace.metadata.contains_key("thread"));
        assert_eq!(trace.spans.len(), 4);
        for s in &trace.spans {
            let m = by_span[s["span_id"].as_str().unwrap()];
            assert_eq!(m.trace, trace.trace_id, "no trace holds another's span");
            assert_eq!(s["trace_id"], trace.trace_id.as_str());
            assert_eq!(s["name"], m.name.as_str());
            assert_eq!(s["kind"], m.kind);
            assert_eq!(s["parent_span_id"].as_str().map(str::to_owned), m.parent);
            let (start, end) = (
                s["start_time"].as_str().unwrap(),
                s["end_time"].as_str().unwrap(),
            );
            assert!(start <= end);
            if m.parent.is_some() {
                assert_eq!(s["events"][0]["name"], "progress");
                let n: u32 = name.rsplit('-').next().unwrap().parse().unwrap();
                let expected = if m.name.ends_with("step-2") && n.is_multiple_of(5) {
                    "error"
                } else {
                    "ok"
                };
                assert_eq!(s["status"], expected);
            } else {
                assert_eq!(
                    s["input"]["n"],
                    name.rsplit('-').next().unwrap().parse::<u32>().unwrap()
                );
            }
        }
    }
    // Keep-alive: far fewer connections than requests.
    let requests = server.requests();
    let connections: HashSet<u64> = requests.iter().map(|r| r.connection).collect();
    assert!(
        connections.len() < requests.len() / 4,
        "{} connections for {} requests",
        connections.len(),
        requests.len()
    );
    assert!(requests.iter().all(|r| r
        .user_agent
        .as_deref()
        .is_some_and(|ua| ua.starts_with("vigil-rust/"))));
}

#[test]
fn a_server_down_at_start_gets_everything_once_it_is_up() {
    let server = TestServer::builder().no_rate_limit().start();
    server.go_down();
    let client = client(&server, |b| b);
    client.scope(|| {
        for i in 0..20 {
            vigil::trace(format!("t{i}"), |_| {
                vigil::span("child", SpanKind::Tool, |_| ())
            });
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.span_count(), 0);
    server.come_up();
    assert!(client.flush(Duration::from_secs(30)));
    let report = client.shutdown();
    assert_eq!(report.stats.spans_delivered, 40, "{report}");
    assert_eq!(server.traces().len(), 20);
    assert!(server
        .traces()
        .iter()
        .all(|t| t.status.as_deref() == Some("ok")));
}

#[test]
fn a_429_storm_is_waited_out_and_everything_arrives() {
    let server = TestServer::builder().no_rate_limit().start();
    server.fail_next_with(4, 429, Some(1));
    let client = client(&server, |b| b);
    client.scope(|| {
        for i in 0..3 {
            vigil::trace(format!("t{i}"), |_| ());
        }
    });
    assert!(client.flush(Duration::from_secs(30)));
    let report = client.shutdown();
    assert_eq!(report.stats.spans_delivered, 3, "{report}");
    let log = server.requests();
    for pair in log.windows(2).filter(|w| w[0].status == 429) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(950),
            "asked again after {gap:?}, before Retry-After"
        );
    }
    assert_eq!(log.iter().filter(|r| r.status == 429).count(), 4);
}

#[test]
fn a_real_token_bucket_slows_the_sdk_without_losing_anything() {
    let server = TestServer::builder()
        .rate_limit(4, Duration::from_secs(2))
        .start();
    let client = client(&server, |b| b);
    client.scope(|| {
        for i in 0..4 {
            vigil::trace(format!("t{i}"), |_| ());
        }
    });
    assert!(client.flush(Duration::from_secs(60)));
    let report = client.shutdown();
    assert_eq!(report.stats.spans_delivered, 4, "{report}");
    assert_eq!(
        server
            .traces()
            .iter()
            .filter(|t| t.status.is_some())
            .count(),
        4,
        "every PATCH landed too"
    );
}

#[test]
fn a_wrong_key_is_rejected_once_per_request_without_retries() {
    let server = TestServer::builder().no_rate_limit().start();
    let client = client(&server, |b| b.api_key("wrong"));
    client.scope(|| {
        for i in 0..5 {
            vigil::trace(format!("t{i}"), |_| {
                vigil::span("c", SpanKind::Tool, |_| ())
            });
        }
    });
    let report = client.shutdown_timeout(Duration::from_secs(10));
    assert_eq!(report.stats.spans_rejected, 10, "{report}");
    assert_eq!(report.stats.retries, 0);
    assert_eq!(
        server.requests().len(),
        5,
        "one request per trace, none repeated"
    );
    assert!(server.requests().iter().all(|r| r.status == 401));
}

#[test]
fn a_422_is_rejected_and_counted() {
    let server = TestServer::builder().no_rate_limit().start();
    server.fail_next(1, 422);
    let client = client(&server, |b| b);
    client.scope(|| vigil::trace("t", |_| vigil::span("c", SpanKind::Tool, |_| ())));
    let report = client.shutdown();
    assert_eq!(
        (report.stats.spans_rejected, report.stats.retries),
        (2, 0),
        "{report}"
    );
}

#[test]
fn a_server_failing_forever_gets_bounded_attempts() {
    let server = TestServer::builder().no_rate_limit().start();
    server.fail_next(1000, 500);
    let client = client(&server, |b| b.max_attempts(3));
    client.scope(|| {
        for i in 0..2 {
            vigil::trace(format!("t{i}"), |_| {
                vigil::span("c", SpanKind::Tool, |_| ())
            });
        }
    });
    let report = client.shutdown_timeout(Duration::from_secs(20));
    assert!(report.completed, "{report}");
    assert_eq!(report.stats.dropped_after_retries, 4);
    let posts = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 6, "3 attempts per trace");
}

#[test]
fn shutdown_returns_within_its_deadline_against_a_black_hole() {
    let server = TestServer::builder().no_rate_limit().start();
    server.blackhole(true);
    let client = client(&server, |b| b.timeout_seconds(30.0));
    client.scope(|| vigil::trace("t", |_| ()));
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let report = client.shutdown_timeout(Duration::from_millis(500));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
    assert_eq!(report.stats.spans_delivered, 0);
    assert_eq!(report.stats.dropped(), 1, "{report}");
    server.blackhole(false);
}

#[test]
fn a_request_stored_before_its_timeout_is_not_retried_forever() {
    let server = TestServer::builder().no_rate_limit().start();
    // The first request is stored, then answered after the client gave up.
    server.commit_then_timeout(1, Duration::from_millis(1500));
    let client = client(&server, |b| b.timeout_seconds(0.3).max_attempts(3));
    client.scope(|| {
        vigil::trace("first", |_| ());
        for i in 0..5 {
            vigil::trace(format!("other-{i}"), |_| ());
        }
    });
    let report = client.shutdown_timeout(Duration::from_secs(20));
    assert!(report.completed, "{report}");
    // The retry asks the server first, finds the trace stored, and counts it
    // delivered instead of retrying into the duplicate-id 500.
    assert_eq!(report.stats.dropped(), 0, "{report}");
    assert_eq!(report.stats.found_stored, 1, "{report}");
    assert_eq!(report.stats.spans_delivered, 6, "{report}");
    assert_eq!(report.stats.patches_delivered, 6, "{report}");
    assert!(
        server
            .traces()
            .iter()
            .all(|t| t.status.as_deref() == Some("ok")),
        "every trace got its status"
    );
    let names: HashSet<_> = server
        .traces()
        .iter()
        .filter_map(|t| t.name.clone())
        .collect();
    assert_eq!(
        names.len(),
        6,
        "the first trace was stored once, the others all arrived"
    );
    assert_eq!(server.span_count(), 6);
}

#[test]
fn an_outage_longer_than_the_queue_drops_exactly_and_never_blocks() {
    let server = TestServer::builder().no_rate_limit().start();
    server.go_down();
    let client = client(&server, |b| b.max_queue_size(1000).batch_size(100));
    let mut worst = Duration::ZERO;
    let mut latencies = Vec::with_capacity(5000);
    client.scope(|| {
        for _ in 0..5000 {
            let started = Instant::now();
            vigil::span("s", SpanKind::Tool, |_| ());
            let took = started.elapsed();
            worst = worst.max(took);
            latencies.push(took);
        }
    });
    latencies.sort();
    let stats = client.stats();
    assert_eq!(stats.spans_ended, 5000);
    assert_eq!(stats.dropped_queue_full, 4000, "exactly what did not fit");
    assert_eq!(stats.spans_queued, 1000);
    server.come_up();
    let report = client.shutdown_timeout(Duration::from_secs(30));
    assert_eq!(report.stats.spans_delivered, 1000, "{report}");
    assert_eq!(server.span_count(), 1000);
    eprintln!(
        "span start+end during the outage: p50 {:?}, p99 {:?}, max {worst:?}",
        latencies[2500], latencies[4950]
    );
}

#[test]
fn late_metadata_and_status_arrive_by_patch() {
    let server = TestServer::builder().no_rate_limit().start();
    let client = client(&server, |b| b);
    client.scope(|| {
        let trace = vigil::start_trace("late");
        vigil::span("early-child", SpanKind::Tool, |_| ());
        // Let the child ship (creating the trace) before the trace ends.
        std::thread::sleep(Duration::from_millis(200));
        vigil::current_trace().set_metadata("decided", &"late");
        trace.set_status(SpanStatus::Error);
    });
    let report = client.shutdown();
    assert!(report.completed);
    let t = &server.traces()[0];
    assert_eq!(t.name.as_deref(), Some("late"));
    assert_eq!(t.status.as_deref(), Some("error"));
    assert_eq!(t.metadata["decided"], json!("late"));
    assert!(server.requests().len() >= 3, "child, root, PATCH");
}

#[test]
fn large_trace_answers_do_not_cost_a_new_connection() {
    let server = TestServer::builder().no_rate_limit().start();
    let client = client(&server, |b| b.batch_size(1000).max_queue_size(10_000));
    for t in 0..3 {
        client.scope(|| {
            let _trace = vigil::start_trace(format!("big-{t}"));
            for _ in 0..400 {
                vigil::span("step", SpanKind::Tool, |s| {
                    s.set_input(&json!({"q": "some text to make the span larger"}))
                });
            }
        });
        assert!(client.flush(Duration::from_secs(10)));
    }
    let report = client.shutdown();
    assert_eq!(report.stats.spans_delivered, 3 * 401);
    // Each PATCH answers with its whole trace (well over 64 KiB here); the
    // transport reads it through, so one connection carries everything.
    let requests = server.requests();
    assert!(requests.iter().any(|r| r.method == "PATCH"));
    let connections: HashSet<u64> = requests.iter().map(|r| r.connection).collect();
    assert_eq!(connections.len(), 1, "{} requests", requests.len());
}
