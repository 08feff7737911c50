//! A small simulated agent, traced end to end.
//!
//! ```text
//! cargo run --example quickstart                      # prints the trace tree
//! VIGIL_ENDPOINT=http://localhost:8000 VIGIL_API_KEY=... cargo run --example quickstart
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run --features otlp --example quickstart
//! ```

use std::time::Duration;

use serde_json::json;
use vigil::SpanKind;

fn main() {
    let client = match vigil::init_from_env() {
        Ok(client) => client,
        Err(e) => {
            eprintln!("vigil: {e}");
            std::process::exit(2);
        }
    };

    let answer = vigil::trace("answer-question", |trace| {
        let question = "Which crate should I use for HTTP in a sync Rust program?";
        trace.set_input(&json!({ "question": question }));
        vigil::attach_metadata("user_id", "u-123");
        let answer = agent(question);
        trace.set_output(&json!({ "answer": answer }));
        answer
    });
    println!("answer: {answer}\n");

    let report = client.shutdown_timeout(Duration::from_secs(5));
    println!("{report}");
}

fn agent(question: &str) -> String {
    vigil::span("plan", SpanKind::Agent, |plan| {
        plan.set_input(&json!({ "goal": question }));
        let docs = retrieve(question);
        let draft = llm("gpt-4o-mini", &format!("Answer using {docs:?}: {question}"));
        let checked = vigil::span("tool:crates-io-search", SpanKind::Tool, |tool| {
            tool.set_input(&json!({ "query": "http client sync" }));
            std::thread::sleep(Duration::from_millis(4));
            vigil::log_event("cache-miss", &json!({ "key": "http client sync" }));
            let hits = vec!["ureq", "attohttpc"];
            tool.set_output(&hits);
            hits
        });
        plan.set_metadata("tools_used", &1);
        llm(
            "gpt-4o-mini",
            &format!("Polish {draft:?} knowing {checked:?}"),
        )
    })
}

fn retrieve(query: &str) -> Vec<&'static str> {
    vigil::span("retrieve-docs", SpanKind::Retriever, |span| {
        span.set_input(&json!({ "query": query, "top_k": 2 }));
        std::thread::sleep(Duration::from_millis(3));
        let docs = vec!["ureq README", "Rust HTTP client survey"];
        span.set_output(&docs);
        docs
    })
}

fn llm(model: &str, prompt: &str) -> String {
    vigil::span(format!("llm:{model}"), SpanKind::Llm, |span| {
        span.set_input(&json!({
            "model": model,
            "messages": [{ "role": "user", "content": prompt }],
            "temperature": 0.2,
        }));
        std::thread::sleep(Duration::from_millis(6));
        vigil::log_event("first-token", &());
        let text = "Use ureq: small, blocking, no async runtime needed.".to_owned();
        let usage = json!({ "prompt_tokens": 42, "completion_tokens": 12, "total_tokens": 54 });
        span.set_output(&json!({
            "model": model,
            "content": text,
            "role": "assistant",
            "usage": usage,
        }));
        // Its tokens and cost (the integrations do this for their calls).
        span.record_usage(Some(model), &usage);
        span.set_metadata("provider", "simulated");
        text
    })
}
