//! End to end with the real `async-openai` client: its Tower stack with
//! vigil-reqwest's layer, against the fake OpenAI server, the spans
//! delivered by the global client to a local Vigil server. What the server
//! stored is compared with what async-openai handed the application.

use async_openai::config::OpenAIConfig;
use async_openai::middleware::ReqwestService;
use async_openai::types::chat::{CreateChatCompletionResponse, CreateChatCompletionStreamResponse};
use async_openai::types::embeddings::CreateEmbeddingRequest;
use futures::StreamExt;
use serde_json::{json, Value};
use vigil::{Config, SpanKind};
use vigil_reqwest::LlmLayer;
use vigil_test_server::llm::FakeLlm;
use vigil_test_server::{StoredTrace, TestServer};

/// One test at a time: each has the global Vigil client to itself.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Setup {
    server: TestServer,
    llm: FakeLlm,
    client: vigil::Client,
}

fn start() -> Setup {
    let server = TestServer::start();
    let llm = FakeLlm::start();
    let config = Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .project_id("e2e-async-openai")
        .flush_interval_ms(20)
        .build()
        .unwrap();
    let client = vigil::init(config).unwrap();
    Setup {
        server,
        llm,
        client,
    }
}

/// async-openai with the layer, the one line an application adds.
fn openai(base: &str) -> async_openai::Client<OpenAIConfig> {
    let service = tower::ServiceBuilder::new()
        .layer(LlmLayer::default())
        .service(ReqwestService::new(reqwest::Client::new()));
    let config = OpenAIConfig::new()
        .with_api_base(format!("{base}/v1"))
        .with_api_key("sk-fake");
    async_openai::Client::with_config(config).with_http_service(service)
}

fn request<T: serde::de::DeserializeOwned>(body: Value) -> T {
    serde_json::from_value(body).expect("a request async-openai accepts")
}

/// The one trace the server holds, once the client has delivered it.
fn stored(setup: Setup) -> StoredTrace {
    let report = setup.client.shutdown();
    assert!(report.completed, "{report:?}");
    let mut traces = setup.server.traces();
    assert_eq!(traces.len(), 1, "{traces:?}");
    traces.remove(0)
}

fn span<'a>(trace: &'a StoredTrace, name: &str) -> &'a Value {
    let mut found = trace.spans.iter().filter(|s| s["name"] == name);
    let one = found.next().unwrap_or_else(|| panic!("no {name}"));
    assert!(found.next().is_none(), "{name} twice");
    one
}

#[vigil::span(name = "answer", kind = "agent")]
async fn answer(base: String) -> CreateChatCompletionResponse {
    openai(&base)
        .chat()
        .create(request(json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Lisbon?"}],
            "temperature": 0.2,
        })))
        .await
        .expect("async-openai's answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completions_are_llm_spans_under_the_caller() {
    let _serial = SERIAL.lock().await;
    let setup = start();
    let base = setup.llm.url();
    let response = vigil::InstrumentExt::in_trace(answer(base), "chat-turn").await;
    let content = response.choices[0].message.content.clone().unwrap();
    let usage = response.usage.clone().unwrap();

    let trace = stored(setup);
    let agent = span(&trace, "answer");
    let llm = span(&trace, "openai.chat.completions");
    assert_eq!(llm["parent_span_id"], agent["span_id"]);
    assert_eq!(llm["kind"], "llm");
    assert_eq!(llm["status"], "ok");
    assert_eq!(llm["input"]["model"], "gpt-4o-mini");
    assert_eq!(llm["input"]["messages"][1]["content"], "Weather in Lisbon?");
    assert_eq!(llm["input"]["temperature"], 0.2);
    assert!(
        llm["input"].get("max_tokens").is_none(),
        "absent stays absent"
    );
    assert_eq!(llm["output"]["content"], content.as_str());
    assert_eq!(llm["output"]["usage"]["prompt_tokens"], usage.prompt_tokens);
    assert_eq!(llm["output"]["usage"]["total_tokens"], usage.total_tokens);
    assert_eq!(llm["metadata"]["server.address"], "127.0.0.1");
    assert_eq!(trace.status.as_deref(), Some("ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_chat_is_recorded_as_the_application_reads_it() {
    let _serial = SERIAL.lock().await;
    let setup = start();
    let base = setup.llm.url();
    let run = async move {
        let mut stream = openai(&base)
            .chat()
            .create_stream(request(json!({
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "Weather in Lisbon?"}],
                "stream": true,
                "stream_options": {"include_usage": true},
            })))
            .await
            .expect("a stream");
        let mut text = String::new();
        let mut usage = None;
        while let Some(chunk) = stream.next().await {
            let chunk: CreateChatCompletionStreamResponse = chunk.expect("a chunk");
            for choice in &chunk.choices {
                text.push_str(choice.delta.content.as_deref().unwrap_or(""));
            }
            usage = usage.or(chunk.usage);
        }
        (text, usage.expect("the usage chunk"))
    };
    let (text, usage) = vigil::InstrumentExt::in_span(run, "stream-turn", SpanKind::Agent).await;

    let trace = stored(setup);
    let turn = span(&trace, "stream-turn");
    let llm = span(&trace, "openai.chat.completions");
    assert_eq!(llm["parent_span_id"], turn["span_id"]);
    assert_eq!(llm["output"]["content"], text.as_str());
    assert_eq!(text, "Hello stream");
    assert_eq!(
        llm["output"]["usage"]["completion_tokens"],
        usage.completion_tokens
    );
    assert_eq!(llm["events"][0]["name"], "first_token");
    assert!(llm["metadata"].get("vigil.stream_incomplete").is_none());
    assert!(llm["metadata"].get("vigil.usage_missing").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_are_retriever_spans_without_their_vectors() {
    let _serial = SERIAL.lock().await;
    let setup = start();
    let base = setup.llm.url();
    let run = async move {
        openai(&base)
            .embeddings()
            .create(request::<CreateEmbeddingRequest>(json!({
                "model": "text-embedding-3-small",
                "input": ["Lisbon", "Porto"],
            })))
            .await
            .expect("embeddings")
    };
    let response = vigil::InstrumentExt::in_trace(run, "index").await;
    assert_eq!(response.data.len(), 2);

    let trace = stored(setup);
    let e = span(&trace, "openai.embeddings");
    assert_eq!(e["kind"], "retriever");
    assert_eq!(e["input"]["input"], json!(["Lisbon", "Porto"]));
    assert_eq!(e["output"]["count"], 2);
    assert_eq!(e["output"]["dimensions"], response.data[0].embedding.len());
    assert_eq!(
        e["output"]["usage"]["prompt_tokens"],
        response.usage.prompt_tokens
    );
    assert!(e["output"].get("data").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_error_reaches_async_openai_and_fails_the_span() {
    let _serial = SERIAL.lock().await;
    let setup = start();
    let base = setup.llm.url();
    let run = async move {
        openai(&base)
            .chat()
            .create(request(
                json!({"model": "fail-401", "messages": [{"role": "user", "content": "Hi"}]}),
            ))
            .await
            .expect_err("a 401")
    };
    let error = vigil::InstrumentExt::in_trace(run, "denied").await;
    assert!(error.to_string().contains("Incorrect API key"), "{error}");

    let trace = stored(setup);
    let llm = span(&trace, "openai.chat.completions");
    assert_eq!(llm["status"], "error");
    assert_eq!(llm["output"]["error"], "Incorrect API key provided");
}
