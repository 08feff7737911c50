//! A queue that fills wakes the exporter however its spans are spread over
//! the lanes: two threads that each end half of a queue that holds one batch,
//! in lanes of their own (so neither lane holds a batch), get it shipped long
//! before the flush interval, and nothing is refused. Its own binary, so
//! that these two threads are the first to own start shards (and lanes).

use std::time::{Duration, Instant};

use vigil_std::sink::MemoryTransport;
use vigil_std::{Client, Config, SpanKind};

#[test]
fn half_a_queue_in_each_of_two_lanes_wakes_the_exporter() {
    let (transport, store) = MemoryTransport::new();
    let client = Client::new(
        Config::builder()
            .transport(move || transport.clone())
            .batch_size(100)
            .max_queue_size(100)
            .flush_interval_ms(600_000)
            .build()
            .unwrap(),
    )
    .unwrap();
    // Let the exporter find nothing to do and go to sleep until the interval.
    std::thread::sleep(Duration::from_millis(500));
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                client.scope(|| {
                    vigil_std::trace("half", |_| {
                        for _ in 0..49 {
                            vigil_std::span("s", SpanKind::Tool, |_| ());
                        }
                    })
                })
            });
        }
    });
    // No flush: only the wake-up can ship these before the interval.
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.stats().spans_delivered < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(client.stats().spans_delivered, 100);
    assert_eq!(client.stats().dropped(), 0);
    assert_eq!(store.captured().spans().count(), 100);
    assert!(client.shutdown().completed);
}
