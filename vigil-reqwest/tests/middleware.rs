//! The middleware and the Tower layer over real loopback HTTP, against the
//! fake OpenAI and Anthropic server, under tokio's multi-thread runtime:
//! what the application gets is what it would get without them, and what
//! the spans hold is what the provider answered.

use futures_util::StreamExt;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::{json, Value};
use tower::{Service, ServiceExt};
use vigil::sink::{capture_async, Captured};
use vigil::{InstrumentExt, SpanKind};
use vigil_reqwest::{LlmLayer, LlmMiddleware};
use vigil_test_server::llm::FakeLlm;

fn instrumented() -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(LlmMiddleware::default())
        .build()
}

/// What the application sees of a response.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    url: String,
    content_length: Option<u64>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn seen(response: reqwest::Response) -> Seen {
    let mut headers: Vec<_> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    headers.sort();
    Seen {
        status: response.status().as_u16(),
        url: response.url().to_string(),
        content_length: response.content_length(),
        headers,
        body: response.bytes().await.unwrap().to_vec(),
    }
}

/// Sends `body` to `url` with a plain client and with the middleware, and
/// checks that the application sees the same; returns what was recorded.
async fn unchanged(calls: &[(String, Value)]) -> Captured {
    let plain = reqwest::Client::new();
    let client = instrumented();
    let mut expected = Vec::new();
    for (url, body) in calls {
        let r = plain.post(url).json(body).send().await.unwrap();
        expected.push(seen(r).await);
    }
    let calls = calls.to_vec();
    let captured = capture_async(async move {
        for ((url, body), expected) in calls.iter().zip(&expected) {
            let r = client.post(url).json(body).send().await.unwrap();
            assert_eq!(&seen(r).await, expected, "{url} {body}");
        }
    })
    .await;
    captured
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.2,
           "max_tokens": 50, "stream": stream})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_answers_become_llm_spans_and_reach_the_application_unchanged() {
    let fake = FakeLlm::start();
    let c = unchanged(&[
        (
            format!("{}/v1/chat/completions", fake.url()),
            chat("gpt-4o-tools", false),
        ),
        (
            format!("{}/v1/messages", fake.url()),
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "system": "Be brief.",
                   "messages": [{"role": "user", "content": "Hi"}]}),
        ),
        (
            format!("{}/v1/responses", fake.url()),
            json!({"model": "gpt-4.1", "instructions": "Be brief.", "input": "Hi"}),
        ),
        (
            format!("{}/v1/embeddings", fake.url()),
            json!({"model": "text-embedding-3-small", "input": ["a", "b", "c"]}),
        ),
    ])
    .await;
    assert_eq!(c.spans().count(), 4);
    let o = c.span("openai.chat.completions").unwrap();
    assert_eq!((o.kind.as_str(), o.status.as_str()), ("llm", "ok"));
    assert_eq!(o.input, chat("gpt-4o-tools", false), "the request as sent");
    assert_eq!(o.output["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(o.output["usage"]["total_tokens"], 17);
    assert_eq!(o.metadata["provider"], "openai");
    assert_eq!(o.metadata["server.address"], "127.0.0.1");
    let a = c.span("anthropic.messages").unwrap();
    assert_eq!(
        a.input["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(a.output["content"], json!(["Hello from the fake."]));
    assert_eq!(
        a.output["usage"],
        json!({"input_tokens": 12, "output_tokens": 5})
    );
    let r = c.span("openai.responses").unwrap();
    assert_eq!(r.output["content"], "Hello from the fake.");
    assert_eq!(r.output["usage"]["prompt_tokens"], 12);
    let e = c.span("openai.embeddings").unwrap();
    assert_eq!(e.kind, "retriever");
    assert_eq!(
        (&e.output["count"], &e.output["dimensions"]),
        (&json!(3), &json!(8))
    );
    assert!(
        !e.output.to_string().contains("0.05"),
        "no vectors: {}",
        e.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_recorded_as_the_application_reads_them() {
    let fake = FakeLlm::start();
    let mut with_usage = chat("gpt-4o-tools", true);
    with_usage["stream_options"] = json!({"include_usage": true});
    let c = unchanged(&[
        (format!("{}/v1/chat/completions", fake.url()), with_usage),
        (
            format!("{}/v1/chat/completions", fake.url()),
            chat("gpt-4o-plain", true),
        ),
        (
            format!("{}/v1/messages", fake.url()),
            json!({"model": "claude-x", "max_tokens": 64, "stream": true, "messages": []}),
        ),
        (
            format!("{}/v1/responses", fake.url()),
            json!({"model": "gpt-4.1", "input": "Hi", "stream": true}),
        ),
    ])
    .await;
    let by_model = |m: &str| c.spans().find(|s| s.input["model"] == m).unwrap();
    let o = by_model("gpt-4o-tools");
    assert_eq!(o.output["content"], "Hello stream");
    assert_eq!(
        o.output["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Lisbon\"}"
    );
    assert_eq!(o.output["usage"]["total_tokens"], 15);
    assert_eq!(o.events[0]["name"], "first_token");
    assert!(
        o.events[0]["attributes"]["time_to_first_token_ms"]
            .as_f64()
            .unwrap()
            >= 0.0
    );
    assert!(o.metadata.get("vigil.usage_missing").is_none());
    assert!(o.metadata.get("vigil.stream_incomplete").is_none());
    let plain = by_model("gpt-4o-plain");
    assert_eq!(plain.output["content"], "Hello stream");
    assert_eq!(
        plain.metadata["vigil.usage_missing"],
        "not asked for: stream_options.include_usage was not set"
    );
    let a = by_model("claude-x");
    assert_eq!(
        a.output["usage"],
        json!({"input_tokens": 12, "output_tokens": 7})
    );
    let r = by_model("gpt-4.1");
    assert_eq!(
        (r.name.as_str(), &r.output["content"]),
        ("openai.responses", &json!("Hello stream"))
    );
    assert_eq!(r.output["usage"]["total_tokens"], 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_after_its_first_chunk_ends_its_span_marked() {
    let fake = FakeLlm::start();
    let client = instrumented();
    let url = format!("{}/v1/chat/completions", fake.url());
    let mut body = chat("gpt-4o-slow", true);
    body["stream_options"] = json!({"include_usage": true});
    let c = capture_async(async move {
        let response = client.post(&url).json(&body).send().await.unwrap();
        let mut chunks = response.bytes_stream();
        let mut read = Vec::new();
        // The role chunk, then the first words.
        for _ in 0..2 {
            read.extend_from_slice(&chunks.next().await.unwrap().unwrap());
        }
        assert!(String::from_utf8_lossy(&read).contains("Hel"));
        // The application stops reading here.
    })
    .await;
    let s = c.span("openai.chat.completions").unwrap();
    assert_eq!(s.status, "ok");
    assert_eq!(s.output["content"], "Hel", "what the application read");
    assert_eq!(s.metadata["vigil.stream_incomplete"], true);
    assert_eq!(
        s.metadata["vigil.usage_missing"],
        "the reader dropped the stream before it came"
    );
    assert_eq!(s.events[0]["name"], "first_token");
    assert!(s.end_time.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_read_to_its_end_is_whole_and_timed_from_the_request() {
    let fake = FakeLlm::start();
    let client = instrumented();
    let url = format!("{}/v1/messages", fake.url());
    let body = json!({"model": "claude-slow", "max_tokens": 64, "stream": true, "messages": []});
    let c = capture_async(async move {
        let response = client.post(&url).json(&body).send().await.unwrap();
        let mut chunks = response.bytes_stream();
        let mut n = 0;
        while let Some(chunk) = chunks.next().await {
            chunk.unwrap();
            n += 1;
        }
        assert!(n >= 8, "one chunk per event: {n}");
    })
    .await;
    let s = c.span("anthropic.messages").unwrap();
    assert_eq!(s.output["content"], json!(["Hello stream"]));
    assert!(s.metadata.get("vigil.stream_incomplete").is_none());
    let first = s.events[0]["timestamp"].as_str().unwrap();
    assert!(s.start_time.as_str() < first && first < s.end_time.as_deref().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_and_refused_connections_fail_the_span_and_reach_the_application() {
    let fake = FakeLlm::start();
    let c = unchanged(&[
        (
            format!("{}/v1/chat/completions", fake.url()),
            chat("fail-429", false),
        ),
        (
            format!("{}/v1/messages", fake.url()),
            json!({"model": "fail-500", "max_tokens": 1, "messages": []}),
        ),
        (
            format!("{}/v1/chat/completions", fake.url()),
            chat("malformed", false),
        ),
    ])
    .await;
    let by_model = |m: &str| c.spans().find(|s| s.input["model"] == m).unwrap();
    let limited = by_model("fail-429");
    assert_eq!(limited.status, "error");
    assert_eq!(limited.output["error"], "Rate limit reached for requests");
    let failed = by_model("fail-500");
    assert_eq!(
        failed.output["error"],
        "The server had an error while processing your request"
    );
    assert!(by_model("malformed").output["error"]
        .as_str()
        .unwrap()
        .starts_with("the response is not JSON"));

    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let client = instrumented();
    let c = capture_async(async move {
        let err = client
            .post(&url)
            .json(&chat("gpt-4o", false))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err:?}");
    })
    .await;
    let s = c.span("openai.chat.completions").unwrap();
    assert_eq!(s.status, "error");
    assert!(!s.output["error"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_requests_pass_untouched() {
    let fake = FakeLlm::start();
    let plain = reqwest::Client::new();
    let client = instrumented();
    let models = format!("{}/v1/models", fake.url());
    let chat_url = format!("{}/v1/chat/completions", fake.url());
    let expected_get = seen(plain.get(&chat_url).send().await.unwrap()).await;
    let expected_models = seen(plain.post(&models).body("{}").send().await.unwrap()).await;
    let c = capture_async(async move {
        // A GET on a completion path lists stored completions: not a call.
        assert_eq!(
            seen(client.get(&chat_url).send().await.unwrap()).await,
            expected_get
        );
        assert_eq!(
            seen(client.post(&models).body("{}").send().await.unwrap()).await,
            expected_models
        );
    })
    .await;
    assert_eq!(c.spans().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_layer_records_calls_under_the_span_current_at_the_call() {
    let fake = FakeLlm::start();
    let url = format!("{}/v1/chat/completions", fake.url());
    let c = capture_async(async move {
        let mut service = tower::ServiceBuilder::new()
            .layer(LlmLayer::default())
            .service(reqwest::Client::new());
        async {
            let request = reqwest::Client::new()
                .post(&url)
                .json(&chat("gpt-4o", false))
                .build()
                .unwrap();
            let response = service.ready().await.unwrap().call(request).await.unwrap();
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body["choices"][0]["message"]["content"],
                "Hello from the fake."
            );
        }
        .in_span("agent-step", SpanKind::Agent)
        .await;
    })
    .await;
    let step = c.span("agent-step").unwrap();
    let llm = c.span("openai.chat.completions").unwrap();
    assert_eq!(llm.parent_span_id.as_ref(), Some(&step.span_id));
    assert_eq!(llm.output["content"], "Hello from the fake.");
    assert!(llm.start_time >= step.start_time);
    assert!(llm.end_time <= step.end_time);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_read_from_their_text_are_costed() {
    let fake = FakeLlm::start();
    let c = unchanged(&[
        (
            format!("{}/v1/chat/completions", fake.url()),
            chat("gpt-4.1-2025-04-14", false),
        ),
        (
            format!("{}/v1/embeddings", fake.url()),
            json!({"model": "text-embedding-3-small", "input": ["a", "b", "c"]}),
        ),
    ])
    .await;
    let chat = c.span("openai.chat.completions").unwrap();
    assert_eq!(chat.metadata["vigil.cost"]["model"], "gpt-4.1");
    let total = chat.metadata["vigil.cost"]["total_usd"].as_f64().unwrap();
    assert!(
        (total - (12.0 * 2.0 + 5.0 * 8.0) / 1e6).abs() < 1e-12,
        "{total}"
    );
    let e = c.span("openai.embeddings").unwrap();
    assert_eq!(e.metadata["vigil.tokens"]["input_tokens"], 9);
    let total = e.metadata["vigil.cost"]["total_usd"].as_f64().unwrap();
    assert!((total - 9.0 * 0.02 / 1e6).abs() < 1e-15, "{total}");
}
