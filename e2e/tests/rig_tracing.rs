//! End to end with a real LLM crate: a rig agent calls a fake OpenAI server
//! over HTTP inside a Vigil trace; the `tracing` spans rig emits go through
//! vigil-tracing's layer to the global Vigil client, which delivers them to a
//! local Vigil server. What the server stored is compared with what the fake
//! answered and what rig handed the application.
//!
//! Set `E2E_RIG_FMT=1` to also print rig's spans and events on stderr.

use std::sync::Once;
use std::time::Duration;

use futures::StreamExt;
use rig_agent::agent::MultiTurnStreamItem;
use rig_agent::{Agent, AgentBuilder};
use rig_core::providers::openai::OpenAIConfig;
use rig_core::streaming::{Item, StreamEvent};
use serde_json::{json, Value};
use tracing_subscriber::layer::SubscriberExt;
use vigil::Config;
use vigil_test_server::llm::FakeLlm;
use vigil_test_server::{StoredTrace, TestServer};

const MODEL: &str = "gpt-4o-mini";
const AGENT: &str = "weather-agent";
const PREAMBLE: &str = "You are terse.";
const PROMPT: &str = "Is it beach weather in Lisbon?";

/// One test at a time: each has the global Vigil client to itself.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process's subscriber: global, because the runtime's worker threads
/// poll rig's futures.
fn install_subscriber() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let fmt = std::env::var_os("E2E_RIG_FMT").map(|_| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        });
        let subscriber = tracing_subscriber::registry()
            .with(vigil_tracing::layer())
            .with(fmt);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    });
}

/// A Vigil server, the fake provider, and the global client sending to the server.
struct Rig {
    server: TestServer,
    llm: FakeLlm,
    _client: vigil::Client,
}

fn start() -> Rig {
    install_subscriber();
    let server = TestServer::start();
    let llm = FakeLlm::start();
    let config = Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .project_id("e2e-rig")
        .flush_interval_ms(20)
        .build()
        .unwrap();
    let client = vigil::init(config).unwrap();
    Rig {
        server,
        llm,
        _client: client,
    }
}

fn agent(llm_url: &str) -> Agent {
    let openai = OpenAIConfig::new("sk-fake")
        .with_base_url(format!("{llm_url}/v1"))
        .client();
    // `chat`: the Chat Completions API, which the fake serves (rig's
    // default for OpenAI is the Responses API).
    AgentBuilder::new(openai.chat(MODEL))
        .name(AGENT)
        .preamble(PREAMBLE)
        .record_content_telemetry(true)
        .build()
}

/// What ran inside the Vigil trace.
#[derive(Debug)]
struct Ran {
    trace_id: String,
    root_id: String,
    answer: String,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

fn ids() -> (String, String) {
    let root = vigil::current_span();
    (
        root.trace_id().expect("recording").to_string(),
        root.id().expect("recording").to_string(),
    )
}

#[vigil::trace(name = "rig-unary")]
async fn ask(llm_url: String) -> Ran {
    let (trace_id, root_id) = ids();
    let response = agent(&llm_url).prompt(PROMPT).await.expect("rig's answer");
    let usage = response.usage();
    Ran {
        trace_id,
        root_id,
        answer: response.output(),
        prompt_tokens: usage.input_tokens,
        completion_tokens: usage.output_tokens,
    }
}

#[vigil::trace(name = "rig-streamed")]
async fn ask_streamed(llm_url: String) -> Ran {
    let (trace_id, root_id) = ids();
    let agent = agent(&llm_url);
    let mut stream = agent.prompt(PROMPT).stream();
    let mut text = String::new();
    let mut last = None;
    while let Some(item) = stream.next().await {
        match item.expect("a stream item") {
            MultiTurnStreamItem::FinalResponse(response) => last = Some(response),
            MultiTurnStreamItem::StreamAssistantItem(Item::Event(StreamEvent::Text {
                text: piece,
                ..
            })) => text.push_str(&piece),
            _ => {}
        }
    }
    drop(stream);
    let response = last.expect("a final response");
    assert_eq!(text, response.output(), "the pieces make the answer");
    let usage = response.usage();
    Ran {
        trace_id,
        root_id,
        answer: response.output(),
        prompt_tokens: usage.input_tokens,
        completion_tokens: usage.output_tokens,
    }
}

/// Runs `traced` on a worker thread of the runtime, flushes, and returns
/// what ran and the trace the server stored.
async fn run<F>(rig: &Rig, traced: impl FnOnce(String) -> F) -> (Ran, StoredTrace)
where
    F: std::future::Future<Output = Ran> + Send + 'static,
{
    let ran = tokio::spawn(traced(rig.llm.url())).await.expect("no panic");
    assert!(vigil::flush(Duration::from_secs(10)), "delivered in time");
    let traces = rig.server.traces();
    assert_eq!(traces.len(), 1, "one trace: {traces:#?}");
    let trace = traces.into_iter().next().unwrap();
    assert_eq!(trace.trace_id, ran.trace_id);
    (ran, trace)
}

fn by_id<'a>(trace: &'a StoredTrace, id: &str) -> &'a Value {
    trace
        .spans
        .iter()
        .find(|s| s["span_id"] == id)
        .unwrap_or_else(|| panic!("span {id} in the trace: {:#?}", trace.spans))
}

fn named<'a>(trace: &'a StoredTrace, name: &str) -> &'a Value {
    let mut found = trace.spans.iter().filter(|s| s["name"] == name);
    let span = found
        .next()
        .unwrap_or_else(|| panic!("a span named {name}: {:#?}", trace.spans));
    assert!(found.next().is_none(), "one span named {name}");
    span
}

/// The spans both tests expect: the Vigil root, rig's `invoke_agent` as an
/// agent span under it (rig makes it a `tracing` root; the layer keeps it in
/// the Vigil trace it ran in), and rig's `chat` turn as an `llm` span under
/// the agent. Returns the agent and the llm span.
fn chain<'a>(ran: &Ran, trace: &'a StoredTrace, root_name: &str) -> (&'a Value, &'a Value) {
    let mut names: Vec<&str> = trace
        .spans
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["chat", "invoke_agent", root_name],
        "{:#?}",
        trace.spans
    );

    let root = by_id(trace, &ran.root_id);
    assert_eq!(root["name"], root_name);
    assert_eq!(root["parent_span_id"], Value::Null);
    assert_eq!(trace.name.as_deref(), Some(root_name));
    assert_eq!(trace.status.as_deref(), Some("ok"));

    let agent = named(trace, "invoke_agent");
    let llm = named(trace, "chat");
    for span in [root, agent, llm] {
        assert_eq!(span["trace_id"], ran.trace_id.as_str(), "{span:#}");
        assert_eq!(span["status"], "ok", "{span:#}");
    }
    assert_eq!(agent["kind"], "agent");
    assert_eq!(
        agent["parent_span_id"],
        ran.root_id.as_str(),
        "agent under the root"
    );
    assert_eq!(llm["kind"], "llm");
    assert_eq!(
        llm["parent_span_id"], agent["span_id"],
        "llm under the agent"
    );

    // Each inside its parent in time (the server keeps the SDK's RFC 3339
    // UTC text, which sorts as time).
    for (outer, inner) in [(root, agent), (agent, llm)] {
        let time = |s: &Value, k: &str| s[k].as_str().unwrap().to_owned();
        assert!(time(outer, "start_time") <= time(inner, "start_time"));
        assert!(time(inner, "end_time") <= time(outer, "end_time"));
    }
    (agent, llm)
}

/// The model call's input as Vigil's OpenAI integration records the same
/// request: the model and the messages sent, the preamble once as the
/// system message. (rig sends the preamble both as
/// `gen_ai.system_instructions` and as the first of `gen_ai.input.messages`.)
fn llm_input() -> Value {
    json!({"model": MODEL, "messages": [
        {"role": "system", "content": PREAMBLE},
        {"role": "user", "content": PROMPT},
    ]})
}

/// The agent run's input: its instructions and the prompt
/// (`gen_ai.system_instructions`, `gen_ai.prompt`).
fn agent_input() -> Value {
    json!({"messages": [
        {"role": "system", "content": PREAMBLE},
        {"role": "user", "content": PROMPT},
    ]})
}

/// rig's event at the end of a one-turn run, on the agent span.
fn assert_one_turn(agent: &Value) {
    let events = agent["events"].as_array().unwrap();
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["name"] == "Agent run finished")
        .collect();
    assert_eq!(finished.len(), 1, "{events:#?}");
    let attributes = &finished[0]["attributes"];
    assert_eq!(attributes["turn"], 1);
    assert_eq!(attributes["max_turns"], 1);
    assert_eq!(attributes["level"], "INFO");
    assert_eq!(attributes["target"], "rig_agent::agent::engine");
}

/// What both tests check of the agent and `llm` spans, for an answer with
/// these usage counts, streamed or not, with this response id.
fn assert_turn(
    agent: &Value,
    llm: &Value,
    answer: &str,
    usage: (u64, u64),
    stream: bool,
    id: &str,
) {
    let usage = json!({"prompt_tokens": usage.0, "completion_tokens": usage.1,
                       "total_tokens": usage.0 + usage.1});
    assert_eq!(
        llm["output"],
        json!({"model": MODEL, "content": answer, "role": "assistant", "usage": usage})
    );
    assert_eq!(llm["metadata"]["provider"], "openai");
    assert_eq!(llm["metadata"]["gen_ai.request.stream"], stream);
    assert_eq!(llm["metadata"]["gen_ai.response.id"], id);
    assert_eq!(llm["metadata"]["gen_ai.agent.name"], AGENT);

    assert_eq!(agent["metadata"]["gen_ai.agent.name"], AGENT);
    assert_eq!(agent["input"], agent_input());
    assert_eq!(
        agent["output"],
        json!({"content": answer, "role": "assistant", "usage": usage})
    );
    assert_one_turn(agent);

    assert_eq!(llm["input"], llm_input());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_is_an_llm_span_with_model_messages_answer_and_usage_under_its_agent() {
    let _serial = SERIAL.lock().await;
    let rig = start();
    let (ran, trace) = run(&rig, ask).await;
    // What the fake answers a non-streamed chat completion.
    assert_eq!(ran.answer, "Hello from the fake.");
    assert_eq!(
        (ran.prompt_tokens, ran.completion_tokens),
        (Some(12), Some(5))
    );
    let (agent, llm) = chain(&ran, &trace, "rig-unary");
    assert_turn(
        agent,
        llm,
        "Hello from the fake.",
        (12, 5),
        false,
        "chatcmpl-1",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_prompt_is_an_llm_span_with_the_streamed_answer_and_its_usage() {
    let _serial = SERIAL.lock().await;
    let rig = start();
    let (ran, trace) = run(&rig, ask_streamed).await;
    // What the fake streams: three pieces, then usage in a last chunk.
    assert_eq!(ran.answer, "Hello stream");
    assert_eq!(
        (ran.prompt_tokens, ran.completion_tokens),
        (Some(12), Some(3))
    );
    let (agent, llm) = chain(&ran, &trace, "rig-streamed");
    assert_turn(agent, llm, "Hello stream", (12, 3), true, "c");
}
