//! Spans that go to the global client take the SDK's usual paths: a child
//! of a recorded span of the same thread is planned and ended without the
//! general checks. Everything those paths skip must still be seen to: a
//! status set, updates sent through a `Context`, a panic under way, and a
//! client replaced by a second `init`. One test, because the global client is
//! shared by every test in a binary.

use std::time::Duration;

use vigil_std::sink::{Captured, MemoryStore, MemoryTransport};
use vigil_std::{Config, Context, SpanKind, SpanStatus};

fn init() -> (vigil_std::Client, MemoryStore) {
    let (transport, store) = MemoryTransport::new();
    let client = vigil_std::init(
        Config::builder()
            .transport(move || transport.clone())
            .build()
            .unwrap(),
    )
    .unwrap();
    (client, store)
}

fn flushed(store: &MemoryStore) -> Captured {
    assert!(vigil_std::flush(Duration::from_secs(10)));
    store.captured()
}

#[test]
fn the_usual_paths_keep_what_they_skip() {
    let (first, store) = init();

    // Nesting: ids, parents and times.
    vigil_std::trace("nested", |_| {
        vigil_std::span("outer", SpanKind::Agent, |_| {
            vigil_std::span("inner", SpanKind::Tool, |_| ())
        })
    });
    let captured = flushed(&store);
    let trace = captured.trace("nested").unwrap();
    let [root, outer, inner] = ["nested", "outer", "inner"].map(|n| captured.span(n).unwrap());
    assert_eq!(trace.spans.len(), 3);
    assert!(trace.spans.iter().all(|s| s.trace_id == root.trace_id));
    assert_eq!(root.parent_span_id, None);
    assert_eq!(outer.parent_span_id.as_ref(), Some(&root.span_id));
    assert_eq!(inner.parent_span_id.as_ref(), Some(&outer.span_id));
    assert!(trace.spans.iter().all(|s| s.status == "ok"));
    assert!(inner.end_time.as_deref() >= Some(inner.start_time.as_str()));

    // A status set on the span is kept.
    vigil_std::trace("statuses", |_| {
        vigil_std::span("set", SpanKind::Tool, |s| s.set_status(SpanStatus::Error));
        vigil_std::span("recorded", SpanKind::Tool, |s| s.record_error(&"no route"));
    });
    let captured = flushed(&store);
    assert_eq!(captured.span("set").unwrap().status, "error");
    let recorded = captured.span("recorded").unwrap();
    assert_eq!(
        (recorded.status.as_str(), &recorded.metadata["error"]),
        ("error", &serde_json::json!("no route"))
    );

    // Updates sent from another thread are applied when the span ends.
    vigil_std::trace("mail", |_| {
        vigil_std::span("receiver", SpanKind::Agent, |_| {
            let context = Context::current();
            std::thread::spawn(move || {
                let _attached = context.attach();
                vigil_std::current_span().set_metadata("from", "elsewhere");
            })
            .join()
            .unwrap();
        })
    });
    let captured = flushed(&store);
    assert_eq!(
        captured.span("receiver").unwrap().metadata["from"],
        "elsewhere"
    );

    // A span that ends during a panic failed; one started during the
    // unwinding (in a `Drop`) did not.
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            vigil_std::span("cleanup", SpanKind::Tool, |_| ());
        }
    }
    let _trace = vigil_std::start_trace("panics");
    let unwound = std::panic::catch_unwind(|| {
        let _cleanup = Cleanup;
        vigil_std::span("panicking", SpanKind::Tool, |_| panic!("tool broke"));
    });
    assert!(unwound.is_err());
    drop(_trace);
    let captured = flushed(&store);
    let panicking = captured.span("panicking").unwrap();
    assert_eq!(panicking.status, "error");
    // The panic's message and where it happened, as Rust prints them.
    let error = panicking.metadata["error"].as_str().unwrap();
    assert!(error.starts_with("panicked at "), "{error}");
    assert!(error.contains("global_client.rs:"), "{error}");
    assert!(error.ends_with(": tool broke"), "{error}");
    assert_eq!(captured.span("cleanup").unwrap().status, "ok");

    // Every span started was ended and delivered.
    let stats = first.stats();
    assert_eq!(stats.spans_started, 11);
    assert_eq!(stats.spans_ended, 11);
    assert_eq!(stats.spans_delivered, 11);

    // A span open across a second `init` goes, when it ends, to the client
    // that is global then.
    let across = vigil_std::start_trace("across");
    let open = vigil_std::start_span("open-across", SpanKind::Tool);
    let (second, store2) = init();
    drop(open);
    drop(across);
    let captured = flushed(&store2);
    assert!(captured.span("open-across").is_some());
    assert!(store.captured().span("open-across").is_none());
    assert_eq!(first.stats().spans_started, 13);

    // A span started after a third `init`, under a trace begun before it,
    // is counted by the new client.
    let across = vigil_std::start_trace("across-again");
    let (third, store3) = init();
    vigil_std::span("child-after", SpanKind::Tool, |_| ());
    drop(across);
    assert!(flushed(&store3).span("child-after").is_some());
    assert_eq!(second.stats().spans_started, 1);
    assert_eq!(third.stats().spans_started, 1);
    assert!(third.shutdown().completed);
}
