//! The API key never reaches a log line, at any level, even in the HTTP
//! client's wire dump (16 bytes a line, in hex and as text), whose lines
//! are joined back here before they are searched.

use std::sync::Mutex;
use std::time::Duration;

use vigil::{Client, Config, SpanKind};
use vigil_test_server::TestServer;

const KEY: &str = "sk-live-0123456789abcdefSECRET";

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES
            .lock()
            .unwrap()
            .push(format!("{} {}", record.target(), record.args()));
    }
    fn flush(&self) {}
}

/// The bytes of a wire-dump line (`4854 5450 ... HTTP/1.1 ...`), if it is one.
fn dumped_bytes(line: &str) -> Option<Vec<u8>> {
    let (_, dump) = line.split_once(' ')?;
    let hex: String = dump.get(..40)?.split_whitespace().collect();
    if hex.len() != 32 && !hex.contains("--") {
        return None;
    }
    let mut bytes = Vec::new();
    for pair in hex.as_bytes().chunks(2) {
        let pair = std::str::from_utf8(pair).ok()?;
        if pair == "--" {
            break;
        }
        bytes.push(u8::from_str_radix(pair, 16).ok()?);
    }
    Some(bytes)
}

#[test]
fn no_log_line_nor_the_wire_dump_joined_holds_the_key() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let server = TestServer::builder().api_key(KEY).no_rate_limit().start();
    let config = Config::builder()
        .endpoint(server.url())
        .api_key(KEY)
        .flush_interval_ms(10)
        .build()
        .unwrap();
    let client = Client::new(config).unwrap();
    client.scope(|| {
        vigil::trace("t", |_| vigil::span("c", SpanKind::Tool, |_| ()));
    });
    assert!(client.flush(Duration::from_secs(5)));
    let report = client.shutdown();
    assert_eq!(report.stats.spans_delivered, 2, "{report}");
    assert_eq!(server.span_count(), 2, "the key did reach the server");

    let lines = LINES.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| dumped_bytes(l).is_some()),
        "the wire dump was logged"
    );
    for pair in lines.windows(2) {
        let joined = format!("{}{}", pair[0], pair[1]);
        assert!(!joined.contains(KEY), "{joined}");
    }
    let wire: Vec<u8> = lines
        .iter()
        .filter_map(|l| dumped_bytes(l))
        .flatten()
        .collect();
    let wire = String::from_utf8_lossy(&wire);
    assert!(
        wire.contains("uthorization: Bearer "),
        "the header was dumped"
    );
    assert!(!wire.contains(KEY), "the key is in the wire dump");
    // The dumps' text columns, joined, do not spell it either.
    let text: String = lines
        .iter()
        .filter(|l| dumped_bytes(l).is_some())
        .filter_map(|l| l.split_once(' ').and_then(|(_, d)| d.get(41..)))
        .collect();
    assert!(!text.contains(&KEY[..20]), "{text}");
}
