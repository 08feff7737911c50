//! `OTEL_*` variables read by `vigil::Config::from_env_with` (the `otlp` feature).

use std::time::Duration;

use vigil::config::Destination;
use vigil_test_server::otlp::OtlpReceiver;

fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[test]
fn the_otlp_endpoint_alone_selects_otlp_export() {
    let receiver = OtlpReceiver::start();
    let url = receiver.url();
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=t%201"),
        ("OTEL_SERVICE_NAME", "env-agent"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team=ml"),
        ("VIGIL_PROJECT_ID", "env-project"),
        ("VIGIL_FLUSH_INTERVAL_MS", "10"),
    ];
    let config = vigil::Config::from_env_with(env(&vars)).unwrap();
    assert_eq!(config.destination(), Destination::Otlp);
    let client = vigil::Client::new(config).unwrap();
    client.scope(|| vigil::trace("job", |_| ()));
    let report = client.shutdown_timeout(Duration::from_secs(5));
    assert_eq!(report.stats.spans_delivered, 1, "{report}");
    assert!(report.to_string().contains("the OTLP endpoint"), "{report}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].content_encoding.as_deref(), Some("gzip"));
    assert!(requests[0]
        .headers
        .contains(&("x-tenant".to_owned(), "t 1".to_owned())));
    let span = &receiver.spans()[0];
    let resource: Vec<(&str, String)> = span
        .resource
        .iter()
        .map(|kv| (kv.key.as_str(), format!("{:?}", kv.value)))
        .collect();
    for (key, value) in [
        ("service.name", "env-agent"),
        ("team", "ml"),
        ("vigil.project_id", "env-project"),
    ] {
        assert!(
            resource.iter().any(|(k, v)| *k == key && v.contains(value)),
            "{key}: {resource:?}"
        );
    }
}

#[test]
fn vigil_endpoint_keeps_the_vigil_server_first() {
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ("VIGIL_ENDPOINT", "http://127.0.0.1:8000"),
    ];
    let config = vigil::Config::from_env_with(env(&vars)).unwrap();
    assert_eq!(config.destination(), Destination::Server);
}

#[test]
fn a_bad_otlp_variable_is_an_error_naming_it() {
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ];
    let error = vigil::Config::from_env_with(env(&vars)).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\": must be http/protobuf"),
        "{error}"
    );
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=sk-secret,broken"),
    ];
    let error = vigil::Config::from_env_with(env(&vars)).unwrap_err();
    assert!(!error.to_string().contains("sk-secret"), "{error}");
}
