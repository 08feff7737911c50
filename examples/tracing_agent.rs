//! An app already instrumented with `tracing` (and printing it with `fmt`)
//! adds one layer, and its `tracing` spans, the GenAI spans of its LLM crate
//! and Vigil's own spans arrive as one tree.
//!
//! ```text
//! cargo run --example tracing_agent                   # prints the Vigil trace tree
//! VIGIL_ENDPOINT=http://localhost:8000 VIGIL_API_KEY=... cargo run --example tracing_agent
//! ```

use std::time::Duration;

use tracing::field::Empty;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use vigil::SpanKind;

fn main() {
    let client = match vigil::init_from_env() {
        Ok(client) => client,
        Err(e) => {
            eprintln!("vigil: {e}");
            std::process::exit(2);
        }
    };
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_target(false))
        .with(vigil_tracing::layer()) // the one line
        .init();

    let answer = handle_request("What is a lifetime?");
    println!("answer: {answer}\n");
    println!("{}", client.shutdown_timeout(Duration::from_secs(5)));
}

/// The app's own `tracing` instrumentation.
#[tracing::instrument]
fn handle_request(question: &str) -> String {
    tracing::info!(chars = question.len(), "request received");
    let context = vigil::span("retrieve", SpanKind::Retriever, |span| {
        std::thread::sleep(Duration::from_millis(2));
        span.set_output(&["doc.rust-lang.org/book/ch10-03"]);
        "lifetimes are scopes of validity"
    });
    chat("gpt-4o-mini", question, context)
}

/// What an LLM crate emits for a chat call (rig-core, genai): a span in the
/// OpenTelemetry GenAI conventions, filled in as the answer comes.
fn chat(model: &str, question: &str, context: &str) -> String {
    let span = tracing::info_span!(
        "chat",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = "openai",
        gen_ai.request.model = model,
        gen_ai.input.messages = Empty,
        gen_ai.output.messages = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
    );
    let _entered = span.enter();
    let messages = serde_json::json!([{"role": "user", "parts": [
        {"type": "text", "content": format!("{question} (context: {context})")}]}]);
    span.record("gen_ai.input.messages", messages.to_string());
    std::thread::sleep(Duration::from_millis(5));
    let answer = "A lifetime names how long a reference is valid.";
    let output =
        serde_json::json!([{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]);
    span.record("gen_ai.output.messages", output.to_string());
    span.record("gen_ai.usage.input_tokens", 24u64);
    span.record("gen_ai.usage.output_tokens", 11u64);
    answer.to_owned()
}
