//! 8 threads × 50,000 spans: every span accounted for, none misfiled.

use std::collections::{HashMap, HashSet};

use vigil_std::sink::capture_with;
use vigil_std::{Config, SpanKind};

const THREADS: usize = 8;
const SPANS_PER_THREAD: usize = 50_000;
const SPANS_PER_TRACE: usize = 10; // the root and nine children

fn run(max_queue_size: usize) -> vigil_std::sink::Captured {
    let config = Config::builder()
        .max_queue_size(max_queue_size)
        .batch_size(1000);
    capture_with(config, || {
        let context = vigil_std::Context::current();
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let context = context.clone();
                std::thread::spawn(move || {
                    let _scope = context.attach();
                    for _ in 0..SPANS_PER_THREAD / SPANS_PER_TRACE {
                        let _trace = vigil_std::start_trace("t");
                        for i in 0..SPANS_PER_TRACE - 1 {
                            let _s = vigil_std::start_span(
                                if i % 2 == 0 { "a" } else { "b" },
                                SpanKind::Tool,
                            );
                        }
                    }
                    t
                })
            })
            .collect();
        handles.into_iter().for_each(|h| {
            h.join().unwrap();
        });
    })
    .1
}

#[test]
fn every_span_is_delivered_or_counted_and_none_is_misfiled() {
    let c = run(THREADS * SPANS_PER_THREAD);
    let stats = c.report.unwrap().stats;
    let total = (THREADS * SPANS_PER_THREAD) as u64;
    assert_eq!(stats.spans_started, total);
    assert_eq!(stats.spans_ended, total);
    assert_eq!(stats.spans_delivered + stats.dropped(), stats.spans_ended);
    assert_eq!(stats.dropped(), 0, "the queue holds everything");
    assert_eq!(c.spans().count() as u64, total);

    let mut ids = HashSet::new();
    for trace in &c.traces {
        assert_eq!(trace.spans.len(), SPANS_PER_TRACE);
        let in_trace: HashSet<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
        for s in &trace.spans {
            assert_eq!(
                s.trace_id, trace.trace_id,
                "no span filed under another trace"
            );
            assert!(ids.insert(s.span_id.clone()), "unique span ids");
            if let Some(p) = &s.parent_span_id {
                assert!(in_trace.contains(p.as_str()), "parent exists in the trace");
            }
        }
        assert_eq!(trace.status.as_deref(), Some("ok"));
    }
}

#[test]
fn a_small_queue_drops_and_counts_exactly() {
    let c = run(2_000);
    let stats = c.report.unwrap().stats;
    assert_eq!(stats.spans_started, (THREADS * SPANS_PER_THREAD) as u64);
    assert_eq!(stats.spans_ended, (THREADS * SPANS_PER_THREAD) as u64);
    assert_eq!(stats.spans_delivered + stats.dropped(), stats.spans_ended);
    assert_eq!(stats.dropped(), stats.dropped_queue_full);
    assert_eq!(c.spans().count() as u64, stats.spans_delivered);
    let per_trace: HashMap<&str, usize> = c
        .traces
        .iter()
        .map(|t| (t.trace_id.as_str(), t.spans.len()))
        .collect();
    assert!(per_trace.values().all(|n| *n <= SPANS_PER_TRACE));
}

/// More threads at once than there are owned shards of the start counter
/// (some count in the shared one), then threads one after another (each
/// takes a shard the last one gave back): every start is counted.
#[test]
fn every_start_is_counted_however_threads_come_and_go() {
    const AT_ONCE: usize = 40;
    const SPANS: usize = 5_000;
    let (_, c) = capture_with(Config::builder().max_queue_size(1 << 18), || {
        let context = vigil_std::Context::current();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(AT_ONCE));
        let handles: Vec<_> = (0..AT_ONCE)
            .map(|_| {
                let (context, barrier) = (context.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let _scope = context.attach();
                    let _trace = vigil_std::start_trace("t");
                    barrier.wait(); // all hold their shards now
                    for _ in 0..SPANS {
                        let _s = vigil_std::start_span("s", SpanKind::Tool);
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        for _ in 0..AT_ONCE {
            let context = context.clone();
            std::thread::spawn(move || {
                let _scope = context.attach();
                let _trace = vigil_std::start_trace("t");
                for _ in 0..SPANS / 10 {
                    let _s = vigil_std::start_span("s", SpanKind::Tool);
                }
            })
            .join()
            .unwrap();
        }
    });
    let stats = c.report.unwrap().stats;
    let total = (AT_ONCE * (SPANS + 1) + AT_ONCE * (SPANS / 10 + 1)) as u64;
    assert_eq!(stats.spans_started, total);
    assert_eq!(stats.spans_ended, total);
    assert_eq!(stats.dropped(), 0);
}
