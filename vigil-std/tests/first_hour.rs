//! What cost a new user time: a shut-down client left installed, errors that
//! reached `main` as `Debug` noise, an endpoint ending in `/v1`.

use std::collections::HashMap;
use std::future::Future;

use vigil_std::{sink::NullTransport, Config};

fn from_env(vars: &[(&str, &str)]) -> Result<Config, vigil_std::config::EnvError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_env_with(|name| vars.get(name).cloned())
}

#[test]
fn a_shut_down_client_is_no_longer_the_global_one_and_the_console_says_it_is_the_console() {
    let client = vigil_std::init(
        Config::builder()
            .transport(NullTransport::default)
            .build()
            .unwrap(),
    )
    .unwrap();
    assert!(vigil_std::get_client().is_some());
    client.shutdown();
    assert!(vigil_std::get_client().is_none());
    // Spans made now find no client: not counted as dropped anywhere.
    vigil_std::trace("after", |_| ());
    assert_eq!(client.stats().dropped_after_close, 0);

    // Without VIGIL_ENDPOINT, `init_from_env` prints trees, and says so.
    std::env::remove_var("VIGIL_ENDPOINT");
    let client = vigil_std::init_from_env().unwrap();
    assert_eq!(
        client.config().destination(),
        vigil_std::config::Destination::Console
    );
    let report = client.shutdown();
    assert_eq!(report.destination, vigil_std::config::Destination::Console);
    assert!(report.to_string().contains("to the console"), "{report}");
}

#[test]
fn errors_returned_from_main_read_as_sentences_naming_the_variable() {
    // `main` prints an error with `{:?}`.
    let e = from_env(&[("VIGIL_SAMPLE_RATE", "2")]).unwrap_err();
    assert_eq!(
        format!("{e:?}"),
        "VIGIL_SAMPLE_RATE: must be from 0.0 to 1.0 (got 2)"
    );
    let e = from_env(&[("VIGIL_BATCH_SIZE", "many")]).unwrap_err();
    assert_eq!(
        format!("{e:?}"),
        "VIGIL_BATCH_SIZE=\"many\": must be a whole number"
    );
    let e = from_env(&[("VIGIL_ENDPOINT", "ftp://x")]).unwrap_err();
    assert_eq!(
        format!("{e:?}"),
        "VIGIL_ENDPOINT: must be an http:// or https:// URL with a host"
    );
    let e = Config::builder().batch_size(0).build().unwrap_err();
    assert_eq!(
        format!("{e:?}"),
        "invalid `batch_size`: must be at least 1 (got 0)"
    );
}

#[test]
fn an_endpoint_ending_in_v1_is_the_same_server() {
    for endpoint in ["http://h:8000/v1", "http://h:8000/v1/", "http://h:8000/"] {
        let headers = [];
        let c = Config::builder().endpoint(endpoint).build().unwrap();
        assert_eq!(
            c.as_core(&headers).base_url(),
            "http://h:8000",
            "{endpoint}"
        );
    }
}

#[test]
fn a_client_crosses_catch_unwind_without_assert_unwind_safe() {
    let client = vigil_std::Client::new(
        Config::builder()
            .transport(NullTransport::default)
            .build()
            .unwrap(),
    )
    .unwrap();
    let result = std::panic::catch_unwind(|| client.stats().spans_started);
    assert_eq!(result.unwrap(), 0);
}

#[test]
fn capture_has_an_async_form_for_any_executor() {
    use vigil_std::{InstrumentExt, SpanKind};
    // A future polled on another thread than the one that made it.
    let future =
        vigil_std::sink::capture_async(async { async { 7 }.in_span("step", SpanKind::Tool).await });
    let captured = std::thread::spawn(move || {
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: std::sync::Arc<Self>) {}
        }
        let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let std::task::Poll::Ready(c) = future.as_mut().poll(&mut cx) {
                break c;
            }
        }
    })
    .join()
    .unwrap();
    assert_eq!(captured.span("step").unwrap().kind, "tool");
}
