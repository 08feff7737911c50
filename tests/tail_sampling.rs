//! Tail sampling end to end: traces made on four threads, sent over
//! loopback HTTP to the local Vigil server, kept or left out whole.

use std::collections::HashMap;
use std::time::Duration;

use vigil::core::sample::SampleRate;
use vigil::{Client, Config, SpanKind};
use vigil_test_server::TestServer;

#[test]
fn every_failing_trace_is_stored_whole_and_about_a_tenth_of_the_rest() {
    let server = TestServer::builder().no_rate_limit().start();
    let config = Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .project_id("tail")
        .flush_interval_ms(20)
        .batch_size(100)
        .sample_rate(0.1)
        .keep_errors(true)
        .build()
        .unwrap();
    let client = Client::new(config).unwrap();
    // 1,000 traces of four spans; traces 0, 1 and 2 of every 100 fail.
    let made: Vec<(vigil::TraceId, bool)> = client.scope(|| {
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                vigil::spawn(move || {
                    (0..250)
                        .map(|n| {
                            let failing = (thread * 250 + n) % 100 < 3;
                            vigil::trace("request", |t| {
                                t.set_metadata("n", &n);
                                vigil::span("search", SpanKind::Retriever, |_| ());
                                vigil::span("answer", SpanKind::Llm, |_| ());
                                vigil::span("tool", SpanKind::Tool, |s| {
                                    if failing {
                                        s.record_error(&"the tool timed out");
                                    }
                                });
                                (t.trace_id().unwrap(), failing)
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    let report = client.shutdown_timeout(Duration::from_secs(30));
    assert!(report.completed, "{report}");

    let stored: HashMap<String, _> = server
        .traces()
        .into_iter()
        .map(|t| (t.trace_id.clone(), t))
        .collect();
    let rate = SampleRate::new(0.1);
    let mut kept_by_rate = 0;
    for (id, failing) in &made {
        let trace = stored.get(&id.to_string());
        if *failing || rate.keeps(*id) {
            let trace = trace.unwrap_or_else(|| panic!("{id} (failing: {failing}) is missing"));
            let mut names: Vec<_> = trace
                .spans
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_owned())
                .collect();
            names.sort();
            assert_eq!(names, ["answer", "request", "search", "tool"], "whole");
            assert!(trace.status.is_some(), "its status was set");
            kept_by_rate += usize::from(!failing);
        } else {
            assert!(trace.is_none(), "{id} should have been sampled out");
        }
    }
    assert_eq!(made.len(), 1000);
    assert_eq!(made.iter().filter(|(_, f)| *f).count(), 30);
    assert!(
        (60..=140).contains(&kept_by_rate),
        "about a tenth of 970: {kept_by_rate}"
    );

    let s = report.stats;
    let kept = 30 + kept_by_rate as u64;
    assert_eq!(s.spans_started, 4000);
    assert_eq!(s.traces_kept_for_errors, 30);
    assert_eq!(s.traces_kept_by_rate, kept_by_rate as u64);
    assert_eq!(s.traces_sampled_out, 1000 - kept);
    assert_eq!(s.spans_delivered, 4 * kept);
    assert_eq!(s.spans_sampled_out, 4 * (1000 - kept));
    assert_eq!(s.spans_delivered + s.spans_sampled_out, s.spans_started);
    assert_eq!((s.dropped(), s.in_flight()), (0, 0));
    assert_eq!(s.traces_decided_early, 0);
    assert_eq!(s.patches_delivered, kept);
    assert_eq!(server.span_count() as u64, s.spans_delivered);
}

#[test]
fn without_tail_rules_the_sample_rate_is_decided_when_a_trace_starts() {
    let config = Config::builder().sample_rate(0.0).build().unwrap();
    let client = Client::new(config).unwrap();
    client.scope(|| {
        vigil::trace("request", |t| assert!(!t.is_recording()));
    });
    let config = Config::builder()
        .sample_rate(0.0)
        .keep_slower_than(Duration::from_secs(1))
        .build()
        .unwrap();
    let client = Client::new(config).unwrap();
    client.scope(|| {
        vigil::trace("request", |t| {
            assert!(t.is_recording(), "recorded, decided at its end");
        });
    });
}

#[test]
fn at_a_shutdown_deadline_every_span_is_delivered_sampled_out_or_counted_dropped() {
    let server = TestServer::builder().no_rate_limit().start();
    server.blackhole(true);
    let config = Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .flush_interval_ms(20)
        .timeout_seconds(0.2)
        .sample_rate(0.5)
        .keep_errors(true)
        .build()
        .unwrap();
    let client = Client::new(config).unwrap();
    client.scope(|| {
        for n in 0..50 {
            vigil::trace("request", |_| {
                vigil::span("tool", SpanKind::Tool, |s| {
                    if n % 10 == 0 {
                        s.record_error(&"failed");
                    }
                });
            });
        }
        // A trace still open at shutdown: its span is held, then dropped.
        let open = vigil::start_trace("open");
        vigil::span("step", SpanKind::Tool, |_| ());
        std::mem::forget(open);
    });
    let report = client.shutdown_timeout(Duration::from_millis(500));
    let s = report.stats;
    assert!(!report.completed);
    assert_eq!(
        (s.spans_started, s.spans_ended),
        (102, 101),
        "the open root never ended"
    );
    assert_eq!(s.traces_kept_for_errors, 5);
    assert_eq!(
        s.spans_delivered + s.dropped() + s.spans_sampled_out,
        s.spans_ended,
        "{report}"
    );
    assert_eq!(s.in_flight(), 0, "{report}");
    assert!(s.dropped_at_shutdown > 0, "{report}");
}
