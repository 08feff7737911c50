//! Shutdown ends as soon as everything is handled: its timeout is a limit,
//! not a wait.

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
