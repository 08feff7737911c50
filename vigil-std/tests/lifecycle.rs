//! The global client's life: init, get_client, second init, flush, shutdown,
//! and an exporter that survives a bad transport. One test, because the
//! global client is shared by every test in a binary.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_std::sink::MemoryTransport;
use vigil_std::{
    config::EnvError,
    transport::{Outcome, Request},
    Config, SpanKind, Transport,
};

struct Panicking(Arc<AtomicUsize>);
impl Transport for Panicking {
    fn send(&mut self, _: &Request<'_>) -> Outcome {
        if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
            panic!("transport bug");
        }
        Outcome::Delivered
    }
}

/// Accepts the connection and never answers, ignoring the timeout.
struct BlackHole;
impl Transport for BlackHole {
    fn send(&mut self, _: &Request<'_>) -> Outcome {
        std::thread::sleep(Duration::from_secs(3600));
        Outcome::Delivered
    }
}

#[test]
fn global_lifecycle() {
    // No client: get_client is None and shutdown reports nothing.
    assert!(vigil_std::get_client().is_none());
    assert!(vigil_std::shutdown().is_none());
    assert!(vigil_std::flush(Duration::from_millis(10)));

    // Invalid configuration names the field.
    let err = Config::builder().batch_size(0).build().unwrap_err();
    assert_eq!(err.field(), "batch_size");
    assert_eq!(
        Config::builder()
            .flush_interval_ms(5)
            .build()
            .unwrap_err()
            .field(),
        "flush_interval_ms"
    );
    assert_eq!(
        Config::builder()
            .timeout_seconds(f64::NAN)
            .build()
            .unwrap_err()
            .field(),
        "timeout_seconds"
    );
    assert_eq!(
        Config::builder()
            .endpoint("ftp://x")
            .build()
            .unwrap_err()
            .field(),
        "endpoint"
    );
    assert_eq!(
        Config::builder()
            .max_queue_size(5)
            .batch_size(10)
            .build()
            .unwrap_err()
            .field(),
        "max_queue_size"
    );
    assert_eq!(
        Config::builder()
            .sample_rate(1.5)
            .build()
            .unwrap_err()
            .field(),
        "sample_rate"
    );
    // Timeouts that would time out at once or overflow clock arithmetic.
    for t in [1e-10, 0.0, 1e19, f64::INFINITY] {
        let err = Config::builder().timeout_seconds(t).build().unwrap_err();
        assert_eq!(err.field(), "timeout_seconds", "{t}");
    }
    // A key with a line break cannot be a header, and is never shown.
    let err = Config::builder().api_key("k-secret\n").build().unwrap_err();
    assert_eq!(err.field(), "api_key");
    assert!(!err.to_string().contains("k-secret"));

    // Environment: a malformed value names its variable.
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let err = Config::from_env_with(env(&[("VIGIL_BATCH_SIZE", "lots")])).unwrap_err();
    assert!(matches!(
        err,
        EnvError::Malformed {
            var: "VIGIL_BATCH_SIZE",
            ..
        }
    ));
    assert!(err.to_string().contains("VIGIL_BATCH_SIZE"));
    let err = Config::from_env_with(env(&[("VIGIL_ENABLED", "maybe")])).unwrap_err();
    assert!(err.to_string().contains("VIGIL_ENABLED"));
    let err = Config::from_env_with(env(&[("VIGIL_FLUSH_INTERVAL_MS", "1")])).unwrap_err();
    assert!(matches!(err, EnvError::Invalid(e) if e.field() == "flush_interval_ms"));
    let c = Config::from_env_with(env(&[
        ("VIGIL_ENDPOINT", "https://vigil.example.com/"),
        // As read from a secrets file: the newline is not part of the key.
        ("VIGIL_API_KEY", "k-secret\n"),
        ("VIGIL_PROJECT_ID", "p"),
        ("VIGIL_ENABLED", "false"),
        ("VIGIL_BATCH_SIZE", "7"),
        ("VIGIL_FLUSH_INTERVAL_MS", "250"),
        ("VIGIL_MAX_QUEUE_SIZE", "70"),
        ("VIGIL_TIMEOUT_SECONDS", "2.5"),
    ]))
    .unwrap();
    assert_eq!(
        (c.endpoint(), c.api_key(), c.project_id(), c.enabled()),
        ("https://vigil.example.com/", "k-secret", "p", false)
    );
    assert_eq!(c.timeout(), Duration::from_millis(2500));
    assert!(
        !format!("{c:?}").contains("k-secret"),
        "the key never shows in Debug"
    );
    let d = Config::default();
    assert_eq!(
        (d.endpoint(), d.project_id(), d.enabled()),
        ("http://localhost:8000", "default", true)
    );

    // init installs a global client; spans go to it.
    let (t1, store1) = MemoryTransport::new();
    let first = vigil_std::init(
        Config::builder()
            .transport(move || t1.clone())
            .build()
            .unwrap(),
    )
    .unwrap();
    vigil_std::trace("one", |_| vigil_std::span("s", SpanKind::Tool, |_| ()));
    assert!(vigil_std::flush(Duration::from_secs(10)));
    assert_eq!(store1.captured().spans().count(), 2);

    // A second init replaces the first, which flushes and stops in the background.
    let (t2, store2) = MemoryTransport::new();
    vigil_std::trace("pending-on-first", |_| ());
    let second = vigil_std::init(
        Config::builder()
            .transport(move || t2.clone())
            .build()
            .unwrap(),
    )
    .unwrap();
    assert!(vigil_std::get_client().is_some_and(|c| format!("{c:?}") == format!("{second:?}")));
    vigil_std::trace("two", |_| ());
    let report = vigil_std::shutdown().unwrap();
    assert!(report.completed);
    assert_eq!(store2.captured().traces.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while store1.captured().trace("pending-on-first").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        store1.captured().trace("pending-on-first").is_some(),
        "the replaced client flushed"
    );
    assert!(first.shutdown().completed);
    assert!(vigil_std::get_client().is_none());

    // A panicking transport: caught, counted as a failed attempt, retried.
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let client = vigil_std::init(
        Config::builder()
            .transport(move || Panicking(c2.clone()))
            .build()
            .unwrap(),
    )
    .unwrap();
    vigil_std::trace("survives", |_| ());
    let report = client.shutdown_timeout(Duration::from_secs(20));
    assert!(report.completed, "{report}");
    assert_eq!(report.stats.spans_delivered, 1);
    assert!(report.stats.retries >= 2);

    // A transport that never returns: shutdown still returns near its deadline.
    let client =
        vigil_std::init(Config::builder().transport(|| BlackHole).build().unwrap()).unwrap();
    vigil_std::trace("lost", |_| ());
    let started = Instant::now();
    let report = vigil_std::shutdown_timeout(Duration::from_millis(300)).unwrap();
    let took = started.elapsed();
    assert!(!report.completed);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(report.stats.spans_delivered, 0);
    drop(client);

    // The guard shuts down on drop.
    let (t3, store3) = MemoryTransport::new();
    {
        let _guard = vigil_std::init(
            Config::builder()
                .transport(move || t3.clone())
                .build()
                .unwrap(),
        )
        .unwrap()
        .shutdown_on_drop();
        vigil_std::trace("guarded", |_| ());
    }
    assert!(store3.captured().trace("guarded").is_some());
    assert!(vigil_std::get_client().is_none());
}
