//! Settings that cannot work are refused, naming the option and its bound;
//! secrets in settings never show.

use std::time::Duration;

use vigil_std::{Config, ConfigError};

fn refused(builder: vigil_std::config::ConfigBuilder) -> ConfigError {
    builder.build().expect_err("must be refused")
}

#[test]
fn settings_that_would_spin_or_abort_are_refused_with_their_bound() {
    let e = refused(Config::builder().retry_backoff(Duration::ZERO));
    assert_eq!(e, ConfigError::RetryBackoff(Duration::ZERO));
    assert_eq!(e.field(), "retry_backoff");
    assert!(e.to_string().contains("1 ms"), "{e}");

    let e = refused(Config::builder().max_queue_size(1 << 40));
    assert_eq!(e, ConfigError::QueueTooLarge(1 << 40));
    assert!(e.to_string().contains("16777216"), "{e}");

    for bytes in [1 << 40, usize::MAX, 100] {
        let e = refused(Config::builder().max_request_bytes(bytes));
        assert_eq!(e, ConfigError::RequestBytes(bytes));
        assert_eq!(e.field(), "max_request_bytes");
    }
    // The bounds themselves are accepted.
    Config::builder()
        .retry_backoff(Duration::from_millis(1))
        .max_queue_size(vigil_core::config::MAX_QUEUE_SIZE)
        .max_request_bytes(vigil_core::config::MAX_REQUEST_BYTES)
        .build()
        .unwrap();
}

#[test]
fn credentials_in_the_endpoint_are_refused_and_never_shown() {
    let builder = Config::builder().endpoint("http://user:hunter2@vigil.example.com:8000/x");
    assert!(!format!("{builder:?}").contains("hunter2"), "{builder:?}");
    let e = refused(builder);
    assert_eq!(e, ConfigError::EndpointCredentials);
    assert!(!e.to_string().contains("hunter2"));
    assert!(!format!("{e:?}").contains("hunter2"));
    // An `@` after the host is a path, not credentials.
    Config::builder()
        .endpoint("http://vigil.example.com/a@b")
        .build()
        .unwrap();
}

#[test]
fn headers_the_transport_owns_are_refused() {
    for (name, value) in [
        ("Content-Length", "5"),
        ("authorization", "Bearer x"),
        ("Content-Type", "text/plain"),
        ("Transfer-Encoding", "chunked"),
        ("Content-Encoding", "gzip"),
        ("Host", "elsewhere"),
        ("Connection", "close"),
    ] {
        let e = refused(Config::builder().header(name, value));
        assert_eq!(e, ConfigError::ReservedHeader, "{name}");
        assert_eq!(e.field(), "headers");
    }
    Config::builder()
        .header("X-Team", "agents")
        .build()
        .unwrap();
}
