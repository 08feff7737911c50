//! The local server enforces the Vigil server's rules, quirks included.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use vigil_test_server::TestServer;

/// One request on a fresh connection: (status, headers, body).
fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> (u16, Vec<String>, Value) {
    let mut stream = TcpStream::connect(server.url().trim_start_matches("http://")).unwrap();
    let body = body.to_string();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !extra.iter().any(|(n, _)| *n == "Authorization") {
        head.push_str(&format!("Authorization: Bearer {}\r\n", server.api_key()));
    }
    for (n, v) in extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    stream
        .write_all(format!("{head}\r\n{body}").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        headers.push(h.trim().to_owned());
    }
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    let code = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        code,
        headers,
        serde_json::from_str(&rest).unwrap_or(Value::Null),
    )
}

fn span(trace: &str, id: &str) -> Value {
    json!({"span_id": id, "trace_id": trace, "parent_span_id": null, "name": "s", "kind": "tool",
           "status": "ok", "input": null, "output": {"a": 1}, "metadata": {}, "events": [],
           "start_time": "2026-11-24T10:00:00.000001Z", "end_time": "2026-11-24T10:00:00.000002Z"})
}

#[test]
fn validation_names_the_field() {
    let server = TestServer::builder().no_rate_limit().start();
    let mut bad = span("t1", "s1");
    bad["kind"] = json!("bogus");
    let (status, _, body) = call(&server, "POST", "/v1/traces", &json!({"spans": [bad]}), &[]);
    assert_eq!(status, 422);
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "spans", 0, "kind"])
    );
    let mut bad = span("t1", "s1");
    bad["input"] = json!("text");
    let (status, _, body) = call(&server, "POST", "/v1/traces", &json!({"spans": [bad]}), &[]);
    assert_eq!(
        (status, body["detail"][0]["loc"][3].clone()),
        (422, json!("input"))
    );
    let (status, _, _) = call(&server, "POST", "/v1/traces", &json!({"spans": []}), &[]);
    assert_eq!(status, 422);
    assert_eq!(server.span_count(), 0);
}

#[test]
fn auth_gzip_and_health() {
    let server = TestServer::builder().no_rate_limit().start();
    let body = json!({"spans": [span("t", "s")]});
    assert_eq!(
        call(
            &server,
            "POST",
            "/v1/traces",
            &body,
            &[("Authorization", "Bearer nope")]
        )
        .0,
        401
    );
    assert_eq!(
        call(
            &server,
            "POST",
            "/v1/traces",
            &body,
            &[("Content-Encoding", "gzip")]
        )
        .0,
        400
    );
    assert_eq!(
        call(
            &server,
            "GET",
            "/health",
            &Value::Null,
            &[("Authorization", "none")]
        )
        .0,
        200
    );
}

#[test]
fn every_span_goes_under_the_first_spans_trace() {
    let server = TestServer::builder().no_rate_limit().start();
    let body = json!({"spans": [span("a", "s1"), span("b", "s2")], "trace_name": "n", "trace_metadata": {"v": 1}});
    assert_eq!(call(&server, "POST", "/v1/traces", &body, &[]).0, 201);
    let traces = server.traces();
    assert_eq!(traces.len(), 1);
    assert_eq!(
        (traces[0].trace_id.as_str(), traces[0].spans.len()),
        ("a", 2)
    );
    // trace_metadata is kept only from the creating request.
    let again =
        json!({"spans": [span("a", "s3")], "trace_name": "renamed", "trace_metadata": {"v": 2}});
    call(&server, "POST", "/v1/traces", &again, &[]);
    let t = server.trace("a").unwrap();
    assert_eq!(
        (t.name.as_deref(), &t.metadata["v"]),
        (Some("renamed"), &json!(1))
    );
}

#[test]
fn duplicates_fail_whole_and_patch_needs_spans() {
    let server = TestServer::builder().no_rate_limit().start();
    assert_eq!(
        call(
            &server,
            "PATCH",
            "/v1/traces/a",
            &json!({"status": "ok"}),
            &[]
        )
        .0,
        404
    );
    call(
        &server,
        "POST",
        "/v1/traces",
        &json!({"spans": [span("a", "s1")]}),
        &[],
    );
    let (status, _, _) = call(
        &server,
        "POST",
        "/v1/traces",
        &json!({"spans": [span("a", "s2"), span("a", "s1")]}),
        &[],
    );
    assert_eq!(status, 500);
    assert_eq!(
        server.span_count(),
        1,
        "nothing of the failed request stored"
    );
    let (status, _, body) = call(
        &server,
        "PATCH",
        "/v1/traces/a",
        &json!({"status": "error", "metadata": {"k": "v"}}),
        &[],
    );
    assert_eq!(
        (
            status,
            body["status"].clone(),
            body["metadata"]["k"].clone()
        ),
        (200, json!("error"), json!("v"))
    );
    assert_eq!(
        call(
            &server,
            "PATCH",
            "/v1/traces/a",
            &json!({"status": "done"}),
            &[]
        )
        .0,
        422
    );
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let server = TestServer::builder()
        .rate_limit(2, Duration::from_secs(10))
        .start();
    let ok = |i: u32| {
        call(
            &server,
            "POST",
            "/v1/traces",
            &json!({"spans": [span("t", &format!("s{i}"))]}),
            &[],
        )
    };
    assert_eq!(ok(1).0, 201);
    assert_eq!(ok(2).0, 201);
    let (status, headers, body) = ok(3);
    assert_eq!(status, 429);
    assert_eq!(body["error"], "Too many requests");
    let after: u64 = headers
        .iter()
        .find_map(|h| h.strip_prefix("Retry-After: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&after), "{after}");
}

#[test]
fn down_means_refused_and_up_is_the_same_port() {
    let server = TestServer::builder().no_rate_limit().start();
    let addr = server.url().trim_start_matches("http://").to_owned();
    server.go_down();
    assert!(TcpStream::connect(&addr).is_err());
    server.come_up();
    assert_eq!(call(&server, "GET", "/health", &Value::Null, &[]).0, 200);
}

#[test]
fn the_binary_prints_its_url_and_key_and_serves_there() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil-test-server"))
        .args(["--port", "0", "--api-key", "k1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first.rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    let second = lines.next().unwrap().unwrap();
    assert_eq!(second, format!("VIGIL_ENDPOINT={url} VIGIL_API_KEY=k1"));
    let mut stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn debug_shows_the_address_never_the_api_key() {
    let builder = TestServer::builder()
        .api_key("sk-secret-123")
        .port(0)
        .rate_limit(5, Duration::from_secs(1));
    let shown = format!("{builder:?}");
    assert!(!shown.contains("sk-secret-123"), "{shown}");
    assert!(
        shown.contains("<redacted>") && shown.contains("capacity: 5.0"),
        "{shown}"
    );

    let server = builder.start();
    let shown = format!("{server:?}");
    assert!(!shown.contains("sk-secret-123"), "{shown}");
    assert!(
        shown.contains(server.url().trim_start_matches("http://")),
        "{shown}"
    );

    let llm = vigil_test_server::llm::FakeLlm::start();
    assert!(format!("{llm:?}").contains("FakeLlm"));
}
