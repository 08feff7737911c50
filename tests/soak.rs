//! A minute against the local server at its default rules (100 requests a
//! minute, every path counted) with 5 % of PATCHes failing: every span made
//! is delivered or counted by reason, the server holds exactly what the SDK
//! says it delivered, and every trace status the SDK says it set is set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::{Client, Config, SpanKind};
use vigil_test_server::TestServer;

const THREADS: usize = 8;
const RUN: Duration = Duration::from_secs(60);

#[test]
fn eight_threads_for_a_minute_lose_nothing_uncounted() {
    let server = TestServer::start();
    server.fail_patches_at_random(0.05, 500, 0x5eed);
    let config = Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .build()
        .unwrap();
    let client = Client::new(config).unwrap();
    let made = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (client, made) = (client.clone(), made.clone());
            std::thread::spawn(move || {
                client.scope(|| {
                    let mut n = 0u64;
                    while started.elapsed() < RUN {
                        vigil::trace(format!("soak-{t}-{n}"), |trace| {
                            trace.set_metadata("thread", &t);
                            for step in 0..3 {
                                vigil::span(format!("step-{step}"), SpanKind::Tool, |s| {
                                    s.set_input(&serde_json::json!({ "n": n }));
                                });
                            }
                        });
                        made.fetch_add(4, Ordering::Relaxed);
                        n += 1;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let report = client.shutdown();
    let s = report.stats;
    let made = made.load(Ordering::Relaxed);
    assert_eq!(s.spans_ended, made, "{report}");
    assert_eq!(
        s.spans_delivered + s.dropped(),
        made,
        "every span counted: {report}"
    );
    assert_eq!(s.in_flight(), 0, "{report}");
    assert!(s.spans_delivered > 0, "{report}");
    // A request cut short at the shutdown deadline is counted as lost, but
    // the server may have stored it as the connection closed: the report
    // says so (`interrupted`), and it is one request at the most.
    let stored = server.span_count() as u64;
    let traces = server.traces();
    let with_status = traces.iter().filter(|t| t.status.is_some()).count() as u64;
    if report.interrupted {
        assert!(
            (s.spans_delivered..=s.spans_delivered + s.dropped_at_shutdown).contains(&stored),
            "{stored} stored: {report}"
        );
        let late = with_status - s.patches_delivered.min(with_status);
        assert!(
            late <= 1 && with_status >= s.patches_delivered,
            "{with_status}: {report}"
        );
        assert!(
            stored == s.spans_delivered || late == 0,
            "one request cut short, not two: {report}"
        );
    } else {
        assert_eq!(stored, s.spans_delivered, "{report}");
        assert_eq!(with_status, s.patches_delivered, "{report}");
    }
    for trace in &traces {
        for span in &trace.spans {
            assert_eq!(span["trace_id"], trace.trace_id.as_str(), "misfiled span");
        }
        if trace.status.is_some() {
            assert_eq!(
                trace.spans.len(),
                4,
                "a completed trace holds all its spans"
            );
        }
    }
    println!("soak: made {made}; {report}");
}
