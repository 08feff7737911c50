//! The OpenInference semantic conventions (Arize Phoenix and the tools that
//! read its traces): the attribute names for a span's kind, input, output,
//! model and token counts, and how its span kinds map to [`SpanKind`]s.
//!
//! ```
//! use vigil::llm::openinference;
//! use vigil::SpanKind;
//!
//! assert_eq!(openinference::SPAN_KIND, "openinference.span.kind");
//! assert_eq!(openinference::span_kind_of_kind(SpanKind::Retriever), "RETRIEVER");
//! assert_eq!(openinference::kind_of_span_kind("EMBEDDING"), Some(SpanKind::Retriever));
//! ```

use crate::SpanKind;

use super::keys;

/// The kind of operation a span records (values in [`span_kind`]);
/// required on every OpenInference span.
pub const SPAN_KIND: &str = "openinference.span.kind";
/// The span's input, as text (JSON text when [`INPUT_MIME_TYPE`] says so).
pub const INPUT_VALUE: &str = "input.value";
/// The format of [`INPUT_VALUE`]: `text/plain` (the default) or [`JSON`].
pub const INPUT_MIME_TYPE: &str = "input.mime_type";
/// The span's output, as text (JSON text when [`OUTPUT_MIME_TYPE`] says so).
pub const OUTPUT_VALUE: &str = "output.value";
/// The format of [`OUTPUT_VALUE`]: `text/plain` (the default) or [`JSON`].
pub const OUTPUT_MIME_TYPE: &str = "output.mime_type";
/// The MIME type of a value that is JSON text.
pub const JSON: &str = "application/json";
/// The name of the model an LLM span called.
pub const LLM_MODEL_NAME: &str = "llm.model_name";
/// Tokens in the prompt.
pub const LLM_TOKEN_COUNT_PROMPT: &str = "llm.token_count.prompt";
/// Tokens in the completion.
pub const LLM_TOKEN_COUNT_COMPLETION: &str = "llm.token_count.completion";
/// Prompt and completion tokens together.
pub const LLM_TOKEN_COUNT_TOTAL: &str = "llm.token_count.total";

/// The provider of the model an LLM span called (`openai`, `anthropic`).
pub const LLM_PROVIDER: &str = "llm.provider";
/// An LLM call's parameters other than the model and messages, as JSON text.
pub const LLM_INVOCATION_PARAMETERS: &str = "llm.invocation_parameters";
/// The prefix of the messages sent to the model, flattened:
/// `llm.input_messages.{i}.message.role` and `...message.content`.
pub const LLM_INPUT_MESSAGES: &str = "llm.input_messages";
/// The prefix of the messages the model returned, flattened as
/// [`LLM_INPUT_MESSAGES`].
pub const LLM_OUTPUT_MESSAGES: &str = "llm.output_messages";
/// A flattened message's role, after its `{prefix}.{i}.`.
pub const MESSAGE_ROLE: &str = "message.role";
/// A flattened message's text, after its `{prefix}.{i}.`.
pub const MESSAGE_CONTENT: &str = "message.content";
/// The name of the tool a span executes.
pub const TOOL_NAME: &str = "tool.name";
/// The conversation a span belongs to.
pub const SESSION_ID: &str = "session.id";
/// Whom a span served.
pub const USER_ID: &str = "user.id";

/// What the prompt cost, in US dollars.
pub const LLM_COST_PROMPT: &str = "llm.cost.prompt";
/// What the completion cost, in US dollars.
pub const LLM_COST_COMPLETION: &str = "llm.cost.completion";
/// What the call cost, in US dollars.
pub const LLM_COST_TOTAL: &str = "llm.cost.total";

/// The values of [`SPAN_KIND`] Vigil reads and writes, in capitals as the
/// conventions spell them (they also define `RERANKER`, `GUARDRAIL`,
/// `EVALUATOR` and `PROMPT`, which have no Vigil kind).
pub mod span_kind {
    /// A call to a language model.
    pub const LLM: &str = "LLM";
    /// A tool's execution.
    pub const TOOL: &str = "TOOL";
    /// An agent's reasoning block, around its LLM and tool calls.
    pub const AGENT: &str = "AGENT";
    /// A retrieval: a vector store or database lookup.
    pub const RETRIEVER: &str = "RETRIEVER";
    /// An embeddings call.
    pub const EMBEDDING: &str = "EMBEDDING";
    /// A starting point, or glue between the steps of an application.
    pub const CHAIN: &str = "CHAIN";
    /// A span of no known kind.
    pub const UNKNOWN: &str = "UNKNOWN";
}

/// The Vigil span kind of a span with this `openinference.span.kind`,
/// read regardless of case; `None` for a kind Vigil has no match for
/// (`RERANKER`, `GUARDRAIL`...: the caller decides, usually
/// [`SpanKind::Custom`]).
///
/// ```
/// use vigil::llm::openinference::kind_of_span_kind;
/// use vigil::SpanKind;
///
/// assert_eq!(kind_of_span_kind("LLM"), Some(SpanKind::Llm));
/// assert_eq!(kind_of_span_kind("tool"), Some(SpanKind::Tool), "any case");
/// assert_eq!(kind_of_span_kind("UNKNOWN"), Some(SpanKind::Custom));
/// assert_eq!(kind_of_span_kind("GUARDRAIL"), None);
/// ```
pub fn kind_of_span_kind(value: &str) -> Option<SpanKind> {
    use span_kind::*;
    let is = |name: &str| value.eq_ignore_ascii_case(name);
    if is(LLM) {
        Some(SpanKind::Llm)
    } else if is(TOOL) {
        Some(SpanKind::Tool)
    } else if is(AGENT) {
        Some(SpanKind::Agent)
    } else if is(RETRIEVER) || is(EMBEDDING) {
        Some(SpanKind::Retriever)
    } else if is(CHAIN) {
        Some(SpanKind::Chain)
    } else if is(UNKNOWN) {
        Some(SpanKind::Custom)
    } else {
        None
    }
}

/// The `openinference.span.kind` for a span of this kind; a custom span is
/// [`span_kind::UNKNOWN`].
///
/// ```
/// use vigil::llm::openinference::{kind_of_span_kind, span_kind_of_kind};
/// use vigil::SpanKind;
///
/// assert_eq!(span_kind_of_kind(SpanKind::Agent), "AGENT");
/// for kind in SpanKind::ALL {
///     assert_eq!(kind_of_span_kind(span_kind_of_kind(kind)), Some(kind));
/// }
/// ```
pub const fn span_kind_of_kind(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Llm => span_kind::LLM,
        SpanKind::Tool => span_kind::TOOL,
        SpanKind::Agent => span_kind::AGENT,
        SpanKind::Retriever => span_kind::RETRIEVER,
        SpanKind::Chain => span_kind::CHAIN,
        SpanKind::Custom => span_kind::UNKNOWN,
    }
}

/// The token counts of an `llm` span's output `usage` ([`keys`]) and the
/// attributes that carry them: `(Vigil key, OpenInference attribute)`, for
/// both providers' names.
///
/// ```
/// use serde_json::json;
/// use vigil::llm::openinference;
///
/// let usage = json!({ "input_tokens": 12, "output_tokens": 7 });
/// let counts: Vec<(&str, u64)> = openinference::TOKEN_COUNTS
///     .iter()
///     .filter_map(|(key, attribute)| usage[*key].as_u64().map(|n| (*attribute, n)))
///     .collect();
/// assert_eq!(counts, [("llm.token_count.prompt", 12), ("llm.token_count.completion", 7)]);
/// ```
pub const TOKEN_COUNTS: [(&str, &str); 5] = [
    (keys::PROMPT_TOKENS, LLM_TOKEN_COUNT_PROMPT),
    (keys::INPUT_TOKENS, LLM_TOKEN_COUNT_PROMPT),
    (keys::COMPLETION_TOKENS, LLM_TOKEN_COUNT_COMPLETION),
    (keys::OUTPUT_TOKENS, LLM_TOKEN_COUNT_COMPLETION),
    (keys::TOTAL_TOKENS, LLM_TOKEN_COUNT_TOTAL),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vigil_kind_round_trips() {
        for kind in SpanKind::ALL {
            let value = span_kind_of_kind(kind);
            assert_eq!(kind_of_span_kind(value), Some(kind), "{value}");
            assert_eq!(value, value.to_ascii_uppercase(), "written in capitals");
        }
    }

    #[test]
    fn other_kinds_are_read_or_left_to_the_caller() {
        assert_eq!(kind_of_span_kind("embedding"), Some(SpanKind::Retriever));
        assert_eq!(kind_of_span_kind("Chain"), Some(SpanKind::Chain));
        for value in ["RERANKER", "GUARDRAIL", "EVALUATOR", "PROMPT", "", "LLM "] {
            assert_eq!(kind_of_span_kind(value), None, "{value:?}");
        }
    }

    #[test]
    fn every_usage_key_has_a_count() {
        for key in [
            keys::PROMPT_TOKENS,
            keys::COMPLETION_TOKENS,
            keys::TOTAL_TOKENS,
            keys::INPUT_TOKENS,
            keys::OUTPUT_TOKENS,
        ] {
            assert!(TOKEN_COUNTS.iter().any(|(k, _)| *k == key), "{key}");
        }
    }
}
