//! What the exporter thread promises: it wakes for a full batch, shutdown
//! ends as soon as everything is handled (its timeout is a limit, not a
//! wait), no timeout overflows, and spans ending after shutdown are counted.

use std::time::{Duration, Instant};

use vigil_std::sink::NullTransport;
use vigil_std::{Client, Config, SpanKind};

#[test]
fn shutdown_returns_once_everything_is_delivered_not_at_its_deadline() {
    let deadline = Duration::from_secs(30);
    for round in 0..20 {
        // A long interval: only the flush and the shutdown wake the exporter.
        let config = Config::builder()
            .transport(NullTransport::default)
            .flush_interval_ms(60_000)
            .build()
            .unwrap();
        let client = Client::new(config).unwrap();
        client.scope(|| {
            for _ in 0..150 {
                let _span = vigil_std::start_span("step", SpanKind::Tool);
            }
        });
        assert!(client.flush(deadline));
        client.scope(|| {
            for _ in 0..150 {
                let _span = vigil_std::start_span("step", SpanKind::Tool);
            }
        });
        let started = Instant::now();
        let report = client.shutdown_timeout(deadline);
        let took = started.elapsed();
        assert!(report.completed, "round {round}: {report}");
        assert_eq!(report.stats.spans_delivered, 300, "round {round}");
        // Far from the deadline, however slow the machine.
        assert!(took < deadline / 3, "round {round}: shutdown took {took:?}");
    }
}

fn client(batch: usize, queue: usize) -> Client {
    // A long interval: only a full batch, a flush or shutdown wake the exporter.
    let config = Config::builder()
        .transport(NullTransport::default)
        .batch_size(batch)
        .max_queue_size(queue)
        .flush_interval_ms(600_000)
        .build()
        .unwrap();
    Client::new(config).unwrap()
}

fn spans(client: &Client, n: usize) {
    client.scope(|| {
        for _ in 0..n {
            let _span = vigil_std::start_span("step", SpanKind::Tool);
        }
    });
}

/// Waits (up to a generous limit) for `f` to hold.
fn eventually(f: impl Fn() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}

#[test]
fn a_full_batch_wakes_the_exporter_whatever_went_before() {
    // A queue that holds exactly one batch: after a partial flush, the batch
    // fills at a ticket that is not a multiple of the batch size.
    let client = client(100, 100);
    spans(&client, 30);
    assert!(client.flush(Duration::from_secs(10)));
    spans(&client, 100);
    assert!(
        eventually(|| client.stats().spans_delivered == 130),
        "{:?}",
        client.stats()
    );
    assert_eq!(client.stats().dropped(), 0);
    spans(&client, 100);
    assert!(eventually(|| client.stats().spans_delivered == 230));
    client.shutdown();
}

#[test]
fn endless_timeouts_mean_no_deadline_rather_than_a_panic() {
    let client = client(10, 100);
    spans(&client, 5);
    assert!(client.flush(Duration::MAX));
    let report = client.shutdown_timeout(Duration::MAX);
    assert!(report.completed, "{report}");
    assert_eq!(report.stats.spans_delivered, 5);
}

#[test]
fn spans_that_end_after_shutdown_are_counted_as_dropped() {
    let client = client(10, 100);
    spans(&client, 3);
    assert!(client.shutdown().completed);
    spans(&client, 2);
    let stats = client.stats();
    assert_eq!(stats.spans_ended, 5);
    assert_eq!(stats.spans_delivered, 3);
    assert_eq!(stats.dropped_after_close, 2);
    assert_eq!(stats.in_flight(), 0, "nothing left unaccounted");
}
