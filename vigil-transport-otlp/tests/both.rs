//! One client shipping to the Vigil server and to OTLP at once: each
//! destination with its own exporter, retries and counters.

use std::time::{Duration, Instant};

use vigil::config::Destination;
use vigil_test_server::otlp::OtlpReceiver;
use vigil_test_server::TestServer;
use vigil_transport_otlp::{OtlpConfig, OtlpTransport};

fn client(server: &TestServer, otlp: OtlpConfig) -> vigil::Client {
    let config = vigil::Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .flush_interval_ms(10)
        .retry_backoff(Duration::from_millis(5))
        .also_transport(move || OtlpTransport::new(&otlp))
        .build()
        .unwrap();
    vigil::Client::new(config).unwrap()
}

fn traces(client: &vigil::Client, n: usize) {
    client.scope(|| {
        for _ in 0..n {
            vigil::trace("job", |_| {
                vigil::span("step", vigil::SpanKind::Tool, |_| ());
            });
        }
    });
}

/// Waits until `done`, up to `timeout`; how long it took.
fn within(timeout: Duration, done: impl Fn() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Some(start.elapsed())
}

#[test]
fn both_destinations_get_every_span_once() {
    let (server, receiver) = (TestServer::start(), OtlpReceiver::start());
    let client = client(
        &server,
        OtlpConfig::builder(&receiver.url()).build().unwrap(),
    );
    traces(&client, 20);
    assert!(client.flush(Duration::from_secs(5)));
    let destinations = client.destinations();
    assert_eq!(destinations.len(), 2);
    assert_eq!(destinations[0].0, Destination::Server);
    assert_eq!(destinations[0].1.spans_delivered, 40);
    assert_eq!(destinations[1].1.spans_delivered, 40);
    let report = client.shutdown();
    assert!(report.completed, "{report}");
    let also = report.also.unwrap();
    assert!(also.completed, "{report}");
    assert_eq!(
        (report.stats.spans_delivered, also.stats.spans_delivered),
        (40, 40)
    );
    assert_eq!(also.stats.spans_ended, 40);
    assert_eq!(
        report.stats.patches_delivered, 20,
        "the server gets the statuses"
    );
    assert_eq!(also.stats.patches_delivered, 0, "OTLP needs none");
    assert_eq!(server.span_count(), 40);
    assert_eq!(receiver.span_count(), 40);
    let line = report.to_string();
    assert!(
        line.contains("to the server")
            && line.contains("; also delivered 40 of 40 spans to the configured transport"),
        "{line}"
    );
}

#[test]
fn a_stuck_otlp_endpoint_does_not_delay_the_vigil_server() {
    let (server, receiver) = (TestServer::start(), OtlpReceiver::start());
    receiver.set_latency(Duration::from_secs(3));
    let client = client(
        &server,
        OtlpConfig::builder(&receiver.url()).build().unwrap(),
    );
    traces(&client, 5);
    // The server has every span long before the OTLP receiver answers once.
    let took = within(Duration::from_secs(2), || server.span_count() == 10);
    assert!(
        took.is_some(),
        "the server got {} spans",
        server.span_count()
    );
    traces(&client, 5);
    assert!(within(Duration::from_secs(2), || server.span_count() == 20).is_some());
    assert_eq!(receiver.span_count(), 0);
    let report = client.shutdown_timeout(Duration::from_millis(500));
    assert_eq!(report.stats.spans_delivered, 20, "{report}");
    assert!(report.completed, "{report}");
    let also = report.also.unwrap();
    assert!(!also.completed, "{report}");
    assert_eq!(also.stats.spans_delivered, 0, "{report}");
    assert_eq!(
        also.stats.dropped(),
        20,
        "counted, not lost silently: {report}"
    );
}

#[test]
fn a_vigil_server_that_is_down_does_not_delay_otlp() {
    let (server, receiver) = (TestServer::start(), OtlpReceiver::start());
    server.go_down();
    let client = client(
        &server,
        OtlpConfig::builder(&receiver.url()).build().unwrap(),
    );
    traces(&client, 10);
    assert!(within(Duration::from_secs(2), || receiver.span_count() == 20).is_some());
    assert!(
        !client.flush(Duration::from_millis(100)),
        "the server's spans wait"
    );
    server.come_up();
    assert!(client.flush(Duration::from_secs(10)));
    let report = client.shutdown();
    assert!(report.completed, "{report}");
    assert_eq!(report.stats.spans_delivered, 20, "{report}");
    assert_eq!(report.also.unwrap().stats.spans_delivered, 20);
    assert_eq!((server.span_count(), receiver.span_count()), (20, 20));
}

#[test]
fn both_variables_ship_to_both() {
    let (server, receiver) = (TestServer::start(), OtlpReceiver::start());
    let (url, otlp, key) = (server.url(), receiver.url(), server.api_key().to_owned());
    let config = vigil::Config::from_env_with(|name| match name {
        "VIGIL_ENDPOINT" => Some(url.clone()),
        "VIGIL_API_KEY" => Some(key.clone()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(otlp.clone()),
        _ => None,
    })
    .unwrap();
    assert_eq!(config.destination(), Destination::Server);
    let client = vigil::Client::new(config).unwrap();
    traces(&client, 3);
    let report = client.shutdown();
    let also = report.also.unwrap();
    assert_eq!(also.destination, Destination::Otlp);
    assert_eq!(
        (report.stats.spans_delivered, also.stats.spans_delivered),
        (6, 6)
    );
    assert_eq!((server.span_count(), receiver.span_count()), (6, 6));
}

#[test]
fn a_stuck_destination_drops_only_its_own_spans() {
    // Some 200 requests: more than the server's default rate limit allows.
    let server = TestServer::builder().no_rate_limit().start();
    let receiver = OtlpReceiver::start();
    receiver.set_latency(Duration::from_secs(3));
    let otlp = OtlpConfig::builder(&receiver.url()).build().unwrap();
    let config = vigil::Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .batch_size(10)
        .max_queue_size(50)
        .flush_interval_ms(10)
        .also_transport(move || OtlpTransport::new(&otlp))
        .build()
        .unwrap();
    let client = vigil::Client::new(config).unwrap();
    // 200 spans, a few traces at a time, so the server keeps up with the queue.
    for _ in 0..20 {
        traces(&client, 5);
        assert!(within(Duration::from_secs(5), || client.stats().in_flight() == 0).is_some());
    }
    assert_eq!(server.span_count(), 200);
    let report = client.shutdown_timeout(Duration::from_millis(200));
    assert_eq!(report.stats.spans_delivered, 200, "{report}");
    assert_eq!(report.stats.dropped(), 0, "{report}");
    let also = report.also.unwrap();
    // The stuck destination held at most its buffer (50) and one request.
    assert!(also.stats.dropped_queue_full >= 100, "{report}");
    assert_eq!(
        also.stats.dropped() + also.stats.spans_delivered,
        200,
        "{report}"
    );
}
