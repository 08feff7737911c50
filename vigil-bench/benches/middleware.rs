//! `cargo bench --manifest-path vigil-bench/Cargo.toml --bench middleware`
//!
//! What vigil-reqwest adds to an LLM call, in the same run:
//!
//! - "in process": `LlmLayer` around a Tower service that answers at once
//!   with a canned chat completion (no network, so only the layer's work
//!   differs between rows): the call with and without the layer, and a
//!   request the layer ignores (`GET /v1/models`) with and without it; a
//!   `json` row parses the request and the answer into `serde_json::Value`,
//!   the JSON the layer must read.
//! - "loopback": one non-streaming chat completion over HTTP to the fake
//!   provider (`vigil_test_server::llm`), with `reqwest_middleware` alone and
//!   with `LlmMiddleware` in it, and an ignored request the same two ways.
//!
//! A Vigil client is current (its spans go to a transport that discards
//! them), and every call is a child of one open trace.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use criterion::{criterion_group, Criterion};
use serde_json::{json, Value};
use tower::{Service, ServiceExt};
use vigil::Config;
use vigil_test_server::llm::FakeLlm;

const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1764633600,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"It will be sunny in Lisbon tomorrow, 24 degrees, with a light breeze from the north-west."},"finish_reason":"stop"}],"usage":{"prompt_tokens":42,"completion_tokens":21,"total_tokens":63}}"#;

fn chat_request() -> Value {
    json!({"model": "gpt-4o-mini", "temperature": 0.2, "messages": [
        {"role": "system", "content": "You are a travel agent. Answer in one sentence."},
        {"role": "user", "content": "Is it beach weather in Lisbon tomorrow?"},
    ]})
}

/// Polls a future that never waits (the canned service's) to its end.
fn ready<F: Future>(f: F) -> F::Output {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// An embeddings answer of `count` vectors of `dims` numbers (what a
/// batch of documents brings back; about 20 bytes a number).
fn embeddings_answer(count: usize, dims: usize) -> String {
    let vector: Vec<String> = (0..dims)
        .map(|i| format!("{:.9}", (i as f64 * 0.618).sin() / 7.0))
        .collect();
    let vector = vector.join(",");
    let data: Vec<String> = (0..count)
        .map(|i| format!(r#"{{"object":"embedding","index":{i},"embedding":[{vector}]}}"#))
        .collect();
    format!(
        r#"{{"object":"list","model":"text-embedding-3-small","data":[{}],"usage":{{"prompt_tokens":{},"total_tokens":{}}}}}"#,
        data.join(","),
        count * 8,
        count * 8
    )
}

/// A service that answers every request at once with `answer`.
fn answering(
    answer: &'static str,
) -> impl Service<
    reqwest::Request,
    Response = reqwest::Response,
    Error = reqwest::Error,
    Future = std::future::Ready<Result<reqwest::Response, reqwest::Error>>,
> + Clone {
    tower::service_fn(move |_request: reqwest::Request| {
        let response = http::Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(answer)
            .expect("a response");
        std::future::ready(Ok(reqwest::Response::from(response)))
    })
}

/// A service that answers every request at once with the canned answer.
fn canned() -> impl Service<
    reqwest::Request,
    Response = reqwest::Response,
    Error = reqwest::Error,
    Future = std::future::Ready<Result<reqwest::Response, reqwest::Error>>,
> + Clone {
    tower::service_fn(|_request: reqwest::Request| {
        let response = http::Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(ANSWER)
            .expect("a response");
        std::future::ready(Ok(reqwest::Response::from(response)))
    })
}

/// One call through `service`, its answer read to the end as the
/// application would.
fn call<S>(service: &mut S, request: reqwest::Request) -> usize
where
    S: Service<reqwest::Request, Response = reqwest::Response, Error = reqwest::Error>,
{
    ready(async {
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        response.bytes().await.unwrap().len()
    })
}

fn in_process(c: &mut Criterion) {
    let client = reqwest::Client::new();
    let body = serde_json::to_vec(&chat_request()).unwrap();
    let chat = || {
        client
            .post("http://127.0.0.1:9/v1/chat/completions")
            .header("content-type", "application/json")
            .body(body.clone())
            .build()
            .unwrap()
    };
    let ignored = || client.get("http://127.0.0.1:9/v1/models").build().unwrap();
    let mut plain = canned();
    let mut layered = tower::ServiceBuilder::new()
        .layer(vigil_reqwest::LlmLayer::default())
        .service(canned());

    let mut g = c.benchmark_group("LLM call, in process");
    g.bench_function("chat, no layer", |b| b.iter(|| call(&mut plain, chat())));
    g.bench_function("chat, LlmLayer", |b| b.iter(|| call(&mut layered, chat())));
    g.bench_function("ignored, no layer", |b| {
        b.iter(|| call(&mut plain, ignored()))
    });
    g.bench_function("ignored, LlmLayer", |b| {
        b.iter(|| call(&mut layered, ignored()))
    });
    let batch: &'static str = Box::leak(embeddings_answer(64, 1536).into_boxed_str());
    let embed_body = br#"{"model":"text-embedding-3-small","input":["a document"]}"#.to_vec();
    let embed = || {
        client
            .post("http://127.0.0.1:9/v1/embeddings")
            .body(embed_body.clone())
            .build()
            .unwrap()
    };
    let mut plain_embed = answering(batch);
    let mut layered_embed = tower::ServiceBuilder::new()
        .layer(vigil_reqwest::LlmLayer::default())
        .service(answering(batch));
    eprintln!("embeddings answer: {} KiB", batch.len() >> 10);
    g.bench_function("embeddings 64x1536, no layer", |b| {
        b.iter(|| call(&mut plain_embed, embed()))
    });
    g.bench_function("embeddings 64x1536, LlmLayer", |b| {
        b.iter(|| call(&mut layered_embed, embed()))
    });
    g.bench_function("embeddings 64x1536: parse into a value", |b| {
        b.iter(|| serde_json::from_str::<Value>(black_box(batch)).unwrap())
    });
    g.bench_function("json: parse request and answer", |b| {
        b.iter(|| {
            let request: Value = serde_json::from_slice(black_box(&body)).unwrap();
            let answer: Value = serde_json::from_str(black_box(ANSWER)).unwrap();
            (request, answer)
        })
    });
    g.finish();
}

fn loopback(c: &mut Criterion) {
    let fake = FakeLlm::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plain = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build();
    let recorded = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(vigil_reqwest::LlmMiddleware::default())
        .build();
    let chat_url = format!("{}/v1/chat/completions", fake.url());
    let models_url = format!("{}/v1/models", fake.url());
    let body = serde_json::to_vec(&chat_request()).unwrap();
    let send = |client: &reqwest_middleware::ClientWithMiddleware, url: &str, post: bool| {
        runtime.block_on(async {
            let request = if post {
                client.post(url).body(body.clone())
            } else {
                client.get(url)
            };
            request.send().await.unwrap().bytes().await.unwrap().len()
        })
    };

    let mut g = c.benchmark_group("LLM call, loopback");
    g.bench_function("chat, reqwest-middleware", |b| {
        b.iter(|| send(&plain, &chat_url, true))
    });
    g.bench_function("chat, + LlmMiddleware", |b| {
        b.iter(|| send(&recorded, &chat_url, true))
    });
    g.bench_function("ignored, reqwest-middleware", |b| {
        b.iter(|| send(&plain, &models_url, false))
    });
    g.bench_function("ignored, + LlmMiddleware", |b| {
        b.iter(|| send(&recorded, &models_url, false))
    });
    g.finish();
}

fn middleware(c: &mut Criterion) {
    let config = Config::builder()
        .transport(vigil::sink::NullTransport::default)
        .max_queue_size(1 << 20)
        .build()
        .unwrap();
    let client = vigil::init(config).unwrap();
    vigil::trace("bench", |_| {
        in_process(c);
        loopback(c);
    });
    let report = client.shutdown();
    eprintln!(
        "spans: {} made, {} dropped because the queue was full",
        report.stats.spans_started, report.stats.dropped_queue_full
    );
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! { name = benches; config = config(); targets = middleware }

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
