//! An async agent on tokio and `async-openai`: one layer on the client
//! records every model call; `#[vigil::span]` async fns make the agent's
//! steps. With no Vigil endpoint configured the trace is printed as a tree.
//!
//! ```text
//! cargo run --manifest-path e2e/Cargo.toml --example async_openai_agent   # a local fake of the API
//! OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-... \
//!     cargo run --manifest-path e2e/Cargo.toml --example async_openai_agent
//! ```

use async_openai::config::OpenAIConfig;
use async_openai::middleware::ReqwestService;
use async_openai::types::chat::{CreateChatCompletionRequest, CreateChatCompletionResponse};
use async_openai::types::embeddings::CreateEmbeddingRequest;
use futures::StreamExt;
use serde_json::json;
use vigil_test_server::llm::FakeLlm;

type OpenAi = async_openai::Client<OpenAIConfig>;

#[tokio::main]
async fn main() {
    let vigil = vigil::init_from_env().unwrap_or_else(|e| {
        eprintln!("vigil: {e}");
        std::process::exit(2);
    });

    // A real endpoint when configured, else a local fake of the API.
    let fake = std::env::var_os("OPENAI_BASE_URL")
        .is_none()
        .then(FakeLlm::start);
    let base = std::env::var("OPENAI_BASE_URL")
        .unwrap_or_else(|_| format!("{}/v1", fake.as_ref().map(FakeLlm::url).unwrap_or_default()));
    let config = OpenAIConfig::new()
        .with_api_base(base)
        .with_api_key(std::env::var("OPENAI_API_KEY").unwrap_or_default());

    // The one line: Vigil's layer in async-openai's Tower stack.
    let service = tower::ServiceBuilder::new()
        .layer(vigil_reqwest::LlmLayer::default())
        .service(ReqwestService::new(reqwest::Client::new()));
    let openai = async_openai::Client::with_config(config).with_http_service(service);

    let answer = travel_agent(openai, "Is it beach weather in Lisbon tomorrow?").await;
    println!("answer: {answer}");
    vigil.shutdown();
}

#[vigil::trace(input, skip(openai))]
async fn travel_agent(openai: OpenAi, question: &str) -> String {
    let context = retrieve(&openai, question).await;
    let plan = plan(&openai, question, &context).await;
    // Two cities at once, each in a task of its own, under this trace.
    let tasks = ["Lisbon", "Porto"].map(|city| {
        let openai = openai.clone();
        tokio::spawn(vigil::InstrumentExt::with_context(
            forecast(openai, city),
            vigil::Context::current(),
        ))
    });
    let mut forecasts = Vec::new();
    for task in tasks {
        forecasts.push(task.await.unwrap_or_default());
    }
    format!("{plan} {}", forecasts.join(" "))
}

#[vigil::span(kind = "retriever", input, skip(openai))]
async fn retrieve(openai: &OpenAi, question: &str) -> Vec<usize> {
    let request: CreateEmbeddingRequest =
        serde_json::from_value(json!({"model": "text-embedding-3-small", "input": question}))
            .unwrap();
    match openai.embeddings().create(request).await {
        Ok(response) => response.data.iter().map(|d| d.embedding.len()).collect(),
        Err(e) => {
            eprintln!("embeddings: {e}");
            Vec::new()
        }
    }
}

#[vigil::span(kind = "agent", input, skip(openai))]
async fn plan(openai: &OpenAi, question: &str, context: &[usize]) -> String {
    let request: CreateChatCompletionRequest = serde_json::from_value(json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": format!("Plan briefly. {} documents found.", context.len())},
            {"role": "user", "content": question},
        ],
    }))
    .unwrap();
    let response: Result<CreateChatCompletionResponse, _> = openai.chat().create(request).await;
    match response {
        Ok(r) => r
            .choices
            .first()
            .and_then(|c| c.message.content.clone())
            .unwrap_or_default(),
        Err(e) => format!("(no plan: {e})"),
    }
}

#[vigil::span(kind = "tool", input, skip(openai))]
async fn forecast(openai: OpenAi, city: &'static str) -> String {
    let request: CreateChatCompletionRequest = serde_json::from_value(json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": format!("Tomorrow's weather in {city}, in five words.")}],
        "stream": true,
        "stream_options": {"include_usage": true},
    }))
    .unwrap();
    let mut text = String::new();
    match openai.chat().create_stream(request).await {
        Ok(mut stream) => {
            while let Some(Ok(chunk)) = stream.next().await {
                for choice in &chunk.choices {
                    text.push_str(choice.delta.content.as_deref().unwrap_or(""));
                }
            }
        }
        Err(e) => text = format!("(no forecast: {e})"),
    }
    format!("{city}: {text}.")
}
