//! Spans of the global client from many threads, some at once and some one
//! after another: the first threads to own a start-counter shard queue in
//! lanes of their own, without a locked instruction, and a lane passes to
//! the next owner of its shard when a thread exits. Every span arrives once,
//! in its trace, under its parent. One test, because the global client is
//! shared by every test in a binary.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use vigil_std::sink::MemoryTransport;
use vigil_std::{Config, SpanKind};

/// `traces` traces of a root and `children` children, each child with a
/// grandchild, made on this thread.
fn work(traces: usize, children: usize) {
    for _ in 0..traces {
        vigil_std::trace("t", |_| {
            for _ in 0..children {
                vigil_std::span("child", SpanKind::Tool, |_| {
                    vigil_std::span("grandchild", SpanKind::Llm, |_| ());
                });
            }
        });
    }
}

#[test]
fn spans_from_threads_that_come_and_go_arrive_once_under_their_parents() {
    const AT_ONCE: usize = 8;
    const AFTER: usize = 20;
    let (transport, store) = MemoryTransport::new();
    let client = vigil_std::init(
        Config::builder()
            .transport(move || transport.clone())
            .max_queue_size(1 << 17)
            .batch_size(1000)
            .build()
            .unwrap(),
    )
    .unwrap();
    let barrier = Arc::new(Barrier::new(AT_ONCE));
    let at_once: Vec<_> = (0..AT_ONCE)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                work(200, 10);
            })
        })
        .collect();
    at_once.into_iter().for_each(|t| t.join().unwrap());
    // Each of these takes a shard (and its lane) the last one gave back.
    for _ in 0..AFTER {
        std::thread::spawn(|| work(50, 5)).join().unwrap();
    }
    assert!(client.flush(Duration::from_secs(60)));

    let made = AT_ONCE * 200 * 21 + AFTER * 50 * 11;
    let stats = client.stats();
    assert_eq!(stats.spans_started, made as u64);
    assert_eq!(stats.spans_delivered, made as u64);
    let captured = store.captured();
    let mut ids = HashSet::new();
    assert_eq!(captured.traces.len(), AT_ONCE * 200 + AFTER * 50);
    for trace in &captured.traces {
        let by_id: HashMap<&str, &str> = trace
            .spans
            .iter()
            .map(|s| (s.span_id.as_str(), s.name.as_str()))
            .collect();
        for span in &trace.spans {
            assert!(ids.insert(span.span_id.clone()), "each span once");
            assert_eq!(span.trace_id, trace.trace_id);
            let parent = span.parent_span_id.as_deref().map(|p| by_id[p]);
            let expected = match span.name.as_str() {
                "t" => None,
                "child" => Some("t"),
                _ => Some("child"),
            };
            assert_eq!(parent, expected, "{} under its parent", span.name);
        }
    }
    assert_eq!(ids.len(), made);
    assert!(client.shutdown().completed);
}
