//! Delivery that no single request stalls, and a report that tells every
//! loss: the SDK against the local Vigil server's faults, over loopback.

use std::time::{Duration, Instant};

use vigil::{Client, Config, SpanKind};
use vigil_test_server::TestServer;

/// A client with the default backoff (500 ms) and attempts (5), as users have.
fn client(server: &TestServer) -> Client {
    let config = Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .flush_interval_ms(50)
        .build()
        .unwrap();
    Client::new(config).unwrap()
}

/// `n` traces of a root and two children, `per_second` of them a second.
fn make_traces(client: &Client, n: usize, per_second: u64) {
    let pause = Duration::from_micros(1_000_000 / per_second);
    client.scope(|| {
        for i in 0..n {
            vigil::trace(format!("t{i}"), |_| {
                vigil::span("retrieve", SpanKind::Retriever, |_| ());
                vigil::span("answer", SpanKind::Llm, |_| ());
            });
            std::thread::sleep(pause);
        }
    });
}

#[test]
fn failing_patches_hold_back_no_ingest() {
    let server = TestServer::builder().no_rate_limit().start();
    server.fail_patches_at_random(1.0, 500, 7);
    let client = client(&server);
    make_traces(&client, 150, 50);
    let report = client.shutdown();
    let s = report.stats;
    // Every span arrives although no trace status ever does.
    assert_eq!(s.spans_delivered, 450, "{report}");
    assert_eq!(server.span_count(), 450);
    assert_eq!(s.patches_delivered, 0, "{report}");
    assert_eq!(s.patches_failed, 150, "{report}");
    assert!(!report.completed, "statuses were left unset: {report}");
    assert!(report.to_string().contains("not set 150"), "{report}");
}

#[test]
fn a_patch_racing_its_spans_costs_neither_the_status_nor_throughput() {
    let server = TestServer::builder().no_rate_limit().start();
    // The real server answers before it commits: a PATCH right after its
    // ingest is sometimes a 404.
    server.fail_next_patches(5, 404);
    let client = client(&server);
    make_traces(&client, 40, 200);
    let report = client.shutdown();
    assert!(report.completed, "{report}");
    assert_eq!(report.stats.spans_delivered, 120, "{report}");
    assert_eq!(report.stats.patches_delivered, 40, "{report}");
    let traces = server.traces();
    assert_eq!(traces.len(), 40);
    assert!(traces.iter().all(|t| t.status.as_deref() == Some("ok")));
}

#[test]
fn a_pooled_connection_closed_after_its_answer_costs_no_attempt() {
    let server = TestServer::builder().no_rate_limit().start();
    server.close_after_answer(usize::MAX / 2);
    let client = client(&server);
    make_traces(&client, 60, 50);
    let report = client.shutdown();
    assert!(report.completed, "{report}");
    assert_eq!(report.stats.spans_delivered, 180, "{report}");
    assert_eq!(report.stats.retries, 0, "no request was retried: {report}");
    let traces = server.traces();
    assert!(traces.iter().all(|t| t.status.as_deref() == Some("ok")));
}

#[test]
fn nothing_is_sent_after_shutdown_returns_and_the_report_says_what_happened() {
    let server = TestServer::builder().no_rate_limit().start();
    // Stored at once, answered 3 s later: in progress when shutdown's
    // 500 ms deadline passes.
    server.commit_then_timeout(1, Duration::from_secs(3));
    let config = Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .flush_interval_ms(10)
        .timeout_seconds(10.0)
        .build()
        .unwrap();
    let client = Client::new(config).unwrap();
    client.scope(|| vigil::trace("slow", |_| ()));
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let report = client.shutdown_timeout(Duration::from_millis(500));
    let returned = Instant::now();
    assert!(
        returned - started < Duration::from_millis(1200),
        "took {:?}",
        returned - started
    );
    assert!(report.interrupted, "{report}");
    assert!(!report.completed, "{report}");
    assert!(
        report.to_string().contains("may have been stored"),
        "{report}"
    );
    std::thread::sleep(Duration::from_secs(3));
    // The exporter did nothing more: no request, no change of any count.
    let stats = client.stats();
    assert_eq!(stats.spans_delivered, report.stats.spans_delivered);
    assert_eq!(stats.requests, report.stats.requests);
    assert!(server.requests().iter().all(|r| r.at < returned));
}

#[test]
fn the_report_names_every_kind_of_loss() {
    let server = TestServer::builder().no_rate_limit().start();
    let client = client(&server);
    let report = client.shutdown();
    // A span ended after its client shut down is counted and named.
    client.scope(|| vigil::trace("late", |_| ()));
    let stats = client.stats();
    assert_eq!(stats.dropped_after_close, 1);
    let text = vigil::ShutdownReport::to_string(&report);
    for part in [
        "queue full",
        "rejected",
        "after retries",
        "oversize",
        "at shutdown",
        "after close",
        "trace statuses set",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
}

#[test]
fn an_endpoint_given_with_its_v1_prefix_reaches_the_server() {
    let server = TestServer::builder().no_rate_limit().start();
    let config = Config::builder()
        .endpoint(format!("{}/v1", server.url()))
        .api_key(server.api_key())
        .build()
        .unwrap();
    let client = Client::new(config).unwrap();
    client.scope(|| vigil::trace("t", |_| ()));
    let report = client.shutdown();
    assert_eq!(report.stats.spans_delivered, 1, "{report}");
    assert_eq!(server.span_count(), 1);
}

#[test]
fn sessions_users_tags_release_and_environment_reach_the_trace() {
    let server = TestServer::builder().no_rate_limit().start();
    let config = Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .release("1.4.2")
        .environment("staging")
        .build()
        .unwrap();
    let client = Client::new(config).unwrap();
    client.scope(|| {
        vigil::trace("chat-turn", |trace| {
            trace.set_session_id("conv-7");
            trace.set_tags(&["beta", "support"]);
            vigil::span("answer", SpanKind::Llm, |_| {
                vigil::current_trace().set_user_id("user-3");
            });
        })
    });
    let report = client.shutdown();
    assert!(report.completed, "{report}");
    let trace = &server.traces()[0];
    let m = &trace.metadata;
    assert_eq!(m[vigil::keys::SESSION_ID], "conv-7", "{m:?}");
    assert_eq!(m[vigil::keys::USER_ID], "user-3");
    assert_eq!(m[vigil::keys::TAGS], serde_json::json!(["beta", "support"]));
    assert_eq!(m[vigil::keys::RELEASE], "1.4.2");
    assert_eq!(m[vigil::keys::ENVIRONMENT], "staging");
}
