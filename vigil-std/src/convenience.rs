//! The seed's convenience functions: silent no-ops when no client is active.

use serde::Serialize;
use vigil_core::SpanKind;

use crate::context;
use crate::llm::keys;
use crate::span::{current_span, current_trace, start_span, SpanGuard};

/// Adds an event to the current span.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     vigil::span("fetch", vigil::SpanKind::Tool, |_| {
///         vigil::log_event("cache-miss", &serde_json::json!({ "key": "doc-7" }));
///     });
/// });
/// assert_eq!(captured.span("fetch").unwrap().events[0]["name"], "cache-miss");
/// ```
pub fn log_event<T: Serialize + ?Sized>(name: &str, attributes: &T) {
    current_span().add_event(name, attributes);
}

/// Attaches `key: value` to the current span, or else to the current trace.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     vigil::trace("answer", |_| vigil::attach_metadata("version", &"1.2"));
/// });
/// assert_eq!(captured.span("answer").unwrap().metadata["version"], "1.2");
/// ```
pub fn attach_metadata<T: Serialize + ?Sized>(key: &str, value: &T) {
    let span = current_span();
    if span.id().is_some() {
        span.set_metadata(key, value);
    } else {
        current_trace().set_metadata(key, value);
    }
}

/// Records an LLM call that already happened as an ended `llm` span named
/// `llm:{model}`.
///
/// ```
/// use serde_json::json;
///
/// let captured = vigil::sink::capture(|| {
///     vigil::trace("answer", |_| {
///         let input = json!({ "model": "gpt-4o", "messages": [{ "role": "user", "content": "Hi" }] });
///         vigil::log_llm_call("gpt-4o", &input, &json!({ "content": "Hello!" }));
///     });
/// });
/// let llm = captured.span("llm:gpt-4o").unwrap();
/// assert_eq!((llm.kind.as_str(), llm.output["content"].as_str()), ("llm", Some("Hello!")));
/// ```
///
/// An output with `usage` (OpenAI's or Anthropic's names) is costed as the
/// integrations' calls are: `vigil.tokens` and `vigil.cost`, or
/// `vigil.unpriced` for a model with no price.
///
/// ```
/// use serde_json::json;
///
/// let captured = vigil::sink::capture(|| {
///     let output = json!({ "content": "Hi", "usage": { "prompt_tokens": 1000, "completion_tokens": 100 } });
///     vigil::log_llm_call("gpt-4o-2024-08-06", &json!({}), &output);
/// });
/// let cost = &captured.span("llm:gpt-4o-2024-08-06").unwrap().metadata["vigil.cost"];
/// assert_eq!(cost["model"], "gpt-4o");
/// assert!((cost["total_usd"].as_f64().unwrap() - 0.0035).abs() < 1e-9);
/// ```
pub fn log_llm_call<I, O>(model: &str, input: &I, output: &O)
where
    I: Serialize + ?Sized,
    O: Serialize + ?Sized,
{
    let Some(span) = log_call("llm:", model, SpanKind::Llm, input, output) else {
        return;
    };
    let Ok(output) = serde_json::to_value(output) else {
        return;
    };
    let model = output[keys::MODEL].as_str().unwrap_or(model);
    span.record_usage(Some(model), &output[keys::USAGE]);
}

/// Records a tool call that already happened as an ended `tool` span named
/// `tool:{name}`.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     vigil::log_tool_call("search", &serde_json::json!({ "q": "rust" }), &["rust-lang.org"]);
/// });
/// assert_eq!(captured.span("tool:search").unwrap().output["value"][0], "rust-lang.org");
/// ```
pub fn log_tool_call<I, O>(name: &str, input: &I, output: &O)
where
    I: Serialize + ?Sized,
    O: Serialize + ?Sized,
{
    drop(log_call("tool:", name, SpanKind::Tool, input, output));
}

/// Starts the span, records its payloads and hands it back to end when
/// dropped; `None` when nothing is recorded.
fn log_call<I, O>(
    prefix: &str,
    name: &str,
    kind: SpanKind,
    input: &I,
    output: &O,
) -> Option<SpanGuard>
where
    I: Serialize + ?Sized,
    O: Serialize + ?Sized,
{
    context::current_client()?;
    let span = start_span(format!("{prefix}{name}"), kind);
    span.set_input(input);
    span.set_output(output);
    Some(span)
}
