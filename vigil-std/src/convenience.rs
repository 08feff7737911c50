//! The seed's convenience functions: silent no-ops when no client is active.

use serde::Serialize;
use vigil_core::SpanKind;

use crate::context;
use crate::span::{current_span, current_trace, start_span};

/// Adds an event to the current span.
pub fn log_event<T: Serialize + ?Sized>(name: &str, attributes: &T) {
    current_span().add_event(name, attributes);
}

/// Attaches `key: value` to the current span, or else to the current trace.
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
pub fn log_llm_call<I, O>(model: &str, input: &I, output: &O)
where
    I: Serialize + ?Sized,
    O: Serialize + ?Sized,
{
    log_call("llm:", model, SpanKind::Llm, input, output);
}

/// Records a tool call that already happened as an ended `tool` span named
/// `tool:{name}`.
pub fn log_tool_call<I, O>(name: &str, input: &I, output: &O)
where
    I: Serialize + ?Sized,
    O: Serialize + ?Sized,
{
    log_call("tool:", name, SpanKind::Tool, input, output);
}

fn log_call<I, O>(prefix: &str, name: &str, kind: SpanKind, input: &I, output: &O)
where
    I: Serialize + ?Sized,
    O: Serialize + ?Sized,
{
    if context::current_client().is_none() {
        return;
    }
    let span = start_span(format!("{prefix}{name}"), kind);
    span.set_input(input);
    span.set_output(output);
}
