//! A thread takes places in the global client's queue a few at a time (a
//! a producer's reserve, see `vigil_core::Producer`). What it has not used comes back when
//! the thread exits and when the global client changes, so a queue that
//! refuses spans as full holds all `max_queue_size` of them. One test, because
//! the global client is shared by every test in a binary.

use std::time::Duration;

use vigil_std::{
    transport::{Outcome, Request, RetryReason},
    Config, SpanKind, Transport,
};

/// Never delivers: every span stays in the queue, and counts against it.
struct Unreachable;

impl Transport for Unreachable {
    fn send(&mut self, _: &Request<'_>) -> Outcome {
        std::thread::sleep(Duration::from_millis(1));
        Outcome::Retry {
            after: None,
            reason: RetryReason::Unreachable,
        }
    }
}

const PLACES: usize = 10_000; // 32 places a reserve

fn init() -> vigil_std::Client {
    let config = Config::builder()
        .transport(|| Unreachable)
        .max_queue_size(PLACES)
        .shutdown_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    vigil_std::init(config).unwrap()
}

/// A trace and `children` spans, which end on the thread's reserve.
fn trace(children: usize) {
    vigil_std::trace("t", |_| {
        for _ in 0..children {
            vigil_std::span("s", SpanKind::Tool, |_| ());
        }
    });
}

#[test]
fn places_not_used_come_back_at_thread_exit_and_when_the_client_changes() {
    // A thread ends two spans, the child on a reserve of 32, and exits.
    let first = init();
    std::thread::spawn(|| trace(1)).join().unwrap();
    // Here, spans until many more than the queue holds were refused.
    for _ in 0..PLACES / 50 + 100 {
        trace(99);
    }
    let stats = first.stats();
    assert_eq!(
        stats.spans_queued, PLACES as u64,
        "the exited thread's places came back"
    );
    assert!(stats.dropped_queue_full > 0);

    // This thread holds a reserve of the second client when a third is
    // installed; its next span gives the reserve back to the second.
    let second = init();
    trace(1);
    assert_eq!(second.stats().spans_queued, 2);
    let third = init();
    trace(1);
    assert_eq!(third.stats().spans_queued, 2);
    // Fill the second through a scope (one place a span, no reserve).
    second.scope(|| {
        for _ in 0..PLACES / 50 + 100 {
            trace(99);
        }
    });
    assert_eq!(
        second.stats().spans_queued,
        PLACES as u64,
        "the reserve came back"
    );
    for client in [first, second, third] {
        let _ = client.shutdown();
    }
}
