//! An unreachable server is said once, at `warn`, with the reason, and its
//! return is said once too.

use std::sync::Mutex;
use std::time::Duration;

use vigil::{Client, Config};
use vigil_test_server::TestServer;

static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) && record.target().starts_with("vigil") {
            WARNINGS.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn said(what: &str) -> usize {
    WARNINGS
        .lock()
        .unwrap()
        .iter()
        .filter(|w| w.contains(what))
        .count()
}

#[test]
fn an_unreachable_server_is_said_once_and_its_return_too() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let server = TestServer::builder().no_rate_limit().start();
    let client = Client::new(
        Config::builder()
            .endpoint(server.url())
            .api_key(server.api_key())
            .flush_interval_ms(10)
            .retry_backoff(Duration::from_millis(10))
            .build()
            .unwrap(),
    )
    .unwrap();
    server.go_down();
    for i in 0..5 {
        client.scope(|| vigil::trace(format!("t{i}"), |_| ()));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        said("cannot be reached"),
        1,
        "{:?}",
        WARNINGS.lock().unwrap()
    );
    let line = WARNINGS.lock().unwrap()[0].clone();
    assert!(line.contains(&server.url()), "{line}");
    server.come_up();
    assert!(client.flush(Duration::from_secs(10)));
    assert_eq!(said("answers again"), 1, "{:?}", WARNINGS.lock().unwrap());
    assert_eq!(client.shutdown().stats.spans_delivered, 5);
}
