//! An agent calling OpenAI and Anthropic through an instrumented `ureq`
//! agent: both calls are recorded as `llm` spans without any manual code.
//!
//! ```text
//! cargo run --example openai_agent         # against a local fake of both APIs
//! OPENAI_BASE_URL=https://api.openai.com OPENAI_API_KEY=sk-... \
//! ANTHROPIC_BASE_URL=https://api.anthropic.com ANTHROPIC_API_KEY=sk-ant-... \
//!     cargo run --example openai_agent
//! ```

use std::io::{BufRead, BufReader};

use serde_json::{json, Value};
use vigil_test_server::llm::FakeLlm;

fn main() {
    let client = vigil::init_from_env().unwrap_or_else(|e| {
        eprintln!("vigil: {e}");
        std::process::exit(2);
    });

    // Real endpoints when configured, else a local fake of both APIs.
    let fake = (std::env::var_os("OPENAI_BASE_URL").is_none()
        || std::env::var_os("ANTHROPIC_BASE_URL").is_none())
    .then(FakeLlm::start);
    let base = |var: &str| {
        std::env::var(var)
            .ok()
            .or_else(|| fake.as_ref().map(FakeLlm::url))
            .unwrap_or_default()
    };
    let (openai, anthropic) = (base("OPENAI_BASE_URL"), base("ANTHROPIC_BASE_URL"));
    let openai_key = std::env::var("OPENAI_API_KEY").unwrap_or_default();
    let anthropic_key = std::env::var("ANTHROPIC_API_KEY").unwrap_or_default();
    let http = vigil::ureq::instrumented_agent();

    vigil::trace("travel-agent", |trace| {
        trace.set_input(&json!({ "question": "Is it beach weather in Lisbon?" }));

        // OpenAI, streamed: the application reads the events as they come.
        let mut answer = String::new();
        let response = http
            .post(format!("{openai}/v1/chat/completions"))
            .header("Authorization", format!("Bearer {openai_key}"))
            .send(
                json!({
                    "model": "gpt-4o-mini",
                    "messages": [{ "role": "user", "content": "Weather in Lisbon tomorrow?" }],
                    "stream": true,
                    "stream_options": { "include_usage": true },
                })
                .to_string(),
            );
        match response {
            Ok(mut response) => {
                for line in BufReader::new(response.body_mut().as_reader())
                    .lines()
                    .map_while(Result::ok)
                {
                    if let Some(chunk) = line
                        .strip_prefix("data: ")
                        .and_then(|d| serde_json::from_str::<Value>(d).ok())
                    {
                        answer.push_str(
                            chunk["choices"][0]["delta"]["content"]
                                .as_str()
                                .unwrap_or(""),
                        );
                    }
                }
            }
            Err(e) => eprintln!("openai: {e}"),
        }

        // Anthropic, in one piece.
        let response = http
            .post(format!("{anthropic}/v1/messages"))
            .header("x-api-key", &anthropic_key)
            .header("anthropic-version", "2023-06-01")
            .send(json!({
                "model": "claude-3-5-haiku-latest",
                "max_tokens": 100,
                "system": "Answer in one sentence.",
                "messages": [{ "role": "user", "content": format!("Given: {answer}. Beach weather?") }],
            }).to_string());
        let verdict = response
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|body| serde_json::from_str::<Value>(&body).ok())
            .and_then(|v| v["content"][0]["text"].as_str().map(str::to_owned))
            .unwrap_or_default();
        trace.set_output(&json!({ "verdict": verdict }));
    });

    println!("{}", client.shutdown());
}
