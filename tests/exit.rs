//! Spans still queued when the process exits are sent: by
//! `std::process::exit`, or by returning from `main` without `shutdown`.
//! Each case runs this test binary again as the application.

use std::process::Command;

use vigil_test_server::TestServer;

const ROLE: &str = "VIGIL_EXIT_TEST_ROLE";

/// The application: 100 traces of two spans, then exit without shutdown.
fn application(how: &str) {
    let url = std::env::var("VIGIL_ENDPOINT").unwrap();
    let config = vigil::Config::builder()
        .endpoint(url)
        .api_key("test-key")
        .flush_interval_ms(60_000)
        .build()
        .unwrap();
    let _client = vigil::init(config).unwrap();
    for i in 0..100 {
        vigil::trace(format!("t{i}"), |_| {
            vigil::span("step", vigil::SpanKind::Tool, |_| ())
        });
    }
    if how == "exit" {
        std::process::exit(0);
    }
}

#[test]
fn as_the_application() {
    // Run only as the child of the tests below.
    if let Ok(how) = std::env::var(ROLE) {
        application(&how);
    }
}

/// Runs this binary as the application, sending to `url`.
fn run_application(how: &str, url: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "as_the_application",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, how)
        .env("VIGIL_ENDPOINT", url)
        .output()
        .unwrap()
}

/// The application against a live server, which it leaves behind.
fn run_against_server(how: &str) -> TestServer {
    let server = TestServer::builder().no_rate_limit().start();
    let output = run_application(how, &server.url());
    assert!(output.status.success(), "{output:?}");
    server
}

#[test]
fn spans_queued_at_process_exit_are_sent() {
    let server = run_against_server("exit");
    assert_eq!(server.span_count(), 200);
}

#[test]
fn spans_queued_when_main_returns_are_sent() {
    let server = run_against_server("return");
    assert_eq!(server.span_count(), 200);
}

#[test]
fn spans_that_cannot_be_sent_at_exit_are_reported_once() {
    let server = TestServer::builder().no_rate_limit().start();
    let url = server.url();
    drop(server); // nothing listens there now
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "as_the_application",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "exit")
        .env("VIGIL_ENDPOINT", &url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("still queued at process exit").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("200 spans"), "{stderr}");
}
