//! rig's OpenAI client sending through a `reqwest_middleware` client with
//! vigil-reqwest's middleware (rig accepts one through
//! `rig_reqwest::ReqwestMiddlewareClient`): the HTTP call itself is recorded,
//! with no `tracing` subscriber installed, and delivered to a Vigil server.

use std::time::Duration;

use rig_agent::AgentBuilder;
use rig_core::providers::openai::OpenAIConfig;
use rig_reqwest::ReqwestMiddlewareClient;
use serde_json::Value;
use vigil::Config;
use vigil_reqwest::LlmMiddleware;
use vigil_test_server::llm::FakeLlm;
use vigil_test_server::TestServer;

#[vigil::trace(name = "rig-over-middleware")]
async fn ask(llm_url: String) -> String {
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(LlmMiddleware::default())
        .build();
    let openai = OpenAIConfig::new("sk-fake")
        .with_base_url(format!("{llm_url}/v1"))
        .connect(ReqwestMiddlewareClient::from(http));
    let agent = AgentBuilder::new(openai.chat("gpt-4o-mini"))
        .preamble("You are terse.")
        .build();
    agent
        .prompt("Is it beach weather in Lisbon?")
        .await
        .expect("rig's answer")
        .output()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rig_calls_through_the_middleware_are_llm_spans() {
    let server = TestServer::start();
    let llm = FakeLlm::start();
    let config = Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .project_id("e2e-rig-middleware")
        .flush_interval_ms(20)
        .build()
        .unwrap();
    let _client = vigil::init(config).unwrap();
    let answer = tokio::spawn(ask(llm.url())).await.expect("no panic");
    assert!(vigil::flush(Duration::from_secs(10)));

    let traces = server.traces();
    assert_eq!(traces.len(), 1, "{traces:#?}");
    let spans = &traces[0].spans;
    assert_eq!(spans.len(), 2, "the trace and its one call: {spans:#?}");
    let root = spans
        .iter()
        .find(|s| s["name"] == "rig-over-middleware")
        .unwrap();
    let llm: &Value = spans
        .iter()
        .find(|s| s["name"] == "openai.chat.completions")
        .unwrap();
    assert_eq!(llm["parent_span_id"], root["span_id"]);
    assert_eq!(llm["output"]["content"], answer.as_str());
    assert_eq!(llm["input"]["model"], "gpt-4o-mini");
    // The request exactly as rig sent it (content as parts).
    assert_eq!(llm["input"]["messages"][0]["role"], "system");
    assert_eq!(
        llm["input"]["messages"][0]["content"][0]["text"],
        "You are terse."
    );
    assert_eq!(llm["output"]["usage"]["total_tokens"], 17);
}
