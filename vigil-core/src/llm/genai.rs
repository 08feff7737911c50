//! The OpenTelemetry GenAI semantic conventions: the `gen_ai.*` attribute
//! names other tools give the calls Vigil records, and how their
//! `gen_ai.operation.name` values map to [`SpanKind`]s.
//!
//! The names are the conventions' current ones ([`PROVIDER_NAME`],
//! [`INPUT_MESSAGES`]...), plus the [`legacy`] ones older instrumentations
//! still emit. The conventions are still at Development stability: read
//! both generations, write the current one.
//!
//! ```
//! use vigil::llm::genai;
//! use vigil::SpanKind;
//!
//! assert_eq!(genai::kind_of_operation("chat"), Some(SpanKind::Llm));
//! assert_eq!(genai::operation_of_kind(SpanKind::Tool), genai::operation::EXECUTE_TOOL);
//! assert_eq!(genai::REQUEST_MODEL, "gen_ai.request.model");
//! ```

use crate::SpanKind;

use super::keys;

/// The operation a span records (values in [`operation`]); required on
/// every GenAI span.
pub const OPERATION_NAME: &str = "gen_ai.operation.name";
/// The provider as the instrumentation knows it: `openai`, `anthropic`,
/// `aws.bedrock`... (the same names as [`super::Provider::name`]).
pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
/// The model a request asked for.
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
/// The request's temperature.
pub const REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
/// The most tokens the request lets the model generate.
pub const REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
/// The request's top-p sampling setting.
pub const REQUEST_TOP_P: &str = "gen_ai.request.top_p";
/// The request's stop sequences, an array of strings.
pub const REQUEST_STOP_SEQUENCES: &str = "gen_ai.request.stop_sequences";
/// The model that generated the response.
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
/// The response's id (`chatcmpl-123`, `msg_01...`).
pub const RESPONSE_ID: &str = "gen_ai.response.id";
/// Why the model stopped, one reason per choice: an array of strings.
pub const RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// Tokens in the input (prompt).
pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// Tokens in the output (completion).
pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// The chat history sent to the model, as structured messages
/// (`[{"role", "parts": [...]}]`) or their JSON text.
pub const INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// The messages the model returned, one per choice.
pub const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
/// System instructions given apart from the chat history (Anthropic's
/// `system`); instructions inside the history stay in [`INPUT_MESSAGES`].
pub const SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
/// The name of the tool a span executes.
pub const TOOL_NAME: &str = "gen_ai.tool.name";
/// The id of the tool call a span executes (`call_...`, `toolu_...`).
pub const TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
/// The arguments of the tool call a span executes (content: recorded only
/// when content capture is on).
pub const TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
/// What the tool call a span executes returned (content, as the arguments).
pub const TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";
/// The human-readable name of the agent.
pub const AGENT_NAME: &str = "gen_ai.agent.name";
/// The conversation (session, thread) a span belongs to.
pub const CONVERSATION_ID: &str = "gen_ai.conversation.id";

/// The names older instrumentations still emit, replaced in the current
/// conventions: read them, write the replacements.
///
/// ```
/// use vigil::llm::genai::{self, legacy};
///
/// // A reader accepts both generations.
/// let input_tokens = [genai::USAGE_INPUT_TOKENS, legacy::USAGE_PROMPT_TOKENS];
/// assert!(input_tokens.contains(&"gen_ai.usage.prompt_tokens"));
/// ```
pub mod legacy {
    /// The provider; renamed to [`super::PROVIDER_NAME`].
    pub const SYSTEM: &str = "gen_ai.system";
    /// The prompt's content as one string; replaced by
    /// [`super::INPUT_MESSAGES`].
    pub const PROMPT: &str = "gen_ai.prompt";
    /// The completion's content as one string; replaced by
    /// [`super::OUTPUT_MESSAGES`].
    pub const COMPLETION: &str = "gen_ai.completion";
    /// Tokens in the prompt; renamed to [`super::USAGE_INPUT_TOKENS`].
    pub const USAGE_PROMPT_TOKENS: &str = "gen_ai.usage.prompt_tokens";
    /// Tokens in the completion; renamed to [`super::USAGE_OUTPUT_TOKENS`].
    pub const USAGE_COMPLETION_TOKENS: &str = "gen_ai.usage.completion_tokens";
}

/// The well-known values of [`OPERATION_NAME`].
pub mod operation {
    /// A chat completion (OpenAI chat completions, Anthropic messages).
    pub const CHAT: &str = "chat";
    /// A legacy text completion.
    pub const TEXT_COMPLETION: &str = "text_completion";
    /// Multimodal content generation (Gemini's `generateContent`).
    pub const GENERATE_CONTENT: &str = "generate_content";
    /// An embeddings call.
    pub const EMBEDDINGS: &str = "embeddings";
    /// A retrieval: a vector store search, a framework's retriever.
    pub const RETRIEVAL: &str = "retrieval";
    /// A tool's execution.
    pub const EXECUTE_TOOL: &str = "execute_tool";
    /// An agent's creation.
    pub const CREATE_AGENT: &str = "create_agent";
    /// An agent's invocation.
    pub const INVOKE_AGENT: &str = "invoke_agent";
    /// A workflow's invocation: steps chained by the application.
    pub const INVOKE_WORKFLOW: &str = "invoke_workflow";
}

/// The Vigil span kind of a span with this `gen_ai.operation.name`; `None`
/// for a value the conventions do not define (the caller decides, usually
/// [`SpanKind::Custom`]). `custom`, which [`operation_of_kind`] writes for
/// a custom span, reads back as [`SpanKind::Custom`].
///
/// ```
/// use vigil::llm::genai::kind_of_operation;
/// use vigil::SpanKind;
///
/// assert_eq!(kind_of_operation("text_completion"), Some(SpanKind::Llm));
/// assert_eq!(kind_of_operation("invoke_agent"), Some(SpanKind::Agent));
/// assert_eq!(kind_of_operation("embeddings"), Some(SpanKind::Retriever));
/// assert_eq!(kind_of_operation("invoke_workflow"), Some(SpanKind::Chain));
/// assert_eq!(kind_of_operation("Chat"), None, "values are case-sensitive");
/// ```
pub fn kind_of_operation(op: &str) -> Option<SpanKind> {
    use operation::*;
    match op {
        CHAT | TEXT_COMPLETION | GENERATE_CONTENT => Some(SpanKind::Llm),
        EXECUTE_TOOL => Some(SpanKind::Tool),
        INVOKE_AGENT | CREATE_AGENT => Some(SpanKind::Agent),
        EMBEDDINGS | RETRIEVAL => Some(SpanKind::Retriever),
        INVOKE_WORKFLOW => Some(SpanKind::Chain),
        _ if op == SpanKind::Custom.as_str() => Some(SpanKind::Custom),
        _ => None,
    }
}

/// The `gen_ai.operation.name` for a span of this kind: [`operation::CHAT`]
/// for an LLM call, [`operation::EXECUTE_TOOL`], [`operation::INVOKE_AGENT`],
/// [`operation::RETRIEVAL`], [`operation::INVOKE_WORKFLOW`] for a chain,
/// and `custom` for a custom span (no defined value fits; the conventions
/// allow a custom one).
///
/// ```
/// use vigil::llm::genai::{kind_of_operation, operation_of_kind};
/// use vigil::SpanKind;
///
/// assert_eq!(operation_of_kind(SpanKind::Llm), "chat");
/// for kind in SpanKind::ALL {
///     assert_eq!(kind_of_operation(operation_of_kind(kind)), Some(kind));
/// }
/// ```
pub const fn operation_of_kind(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Llm => operation::CHAT,
        SpanKind::Tool => operation::EXECUTE_TOOL,
        SpanKind::Agent => operation::INVOKE_AGENT,
        SpanKind::Retriever => operation::RETRIEVAL,
        SpanKind::Chain => operation::INVOKE_WORKFLOW,
        SpanKind::Custom => SpanKind::Custom.as_str(),
    }
}

/// The request parameters of an `llm` span's input ([`keys`]) and the
/// attributes that carry them: `(Vigil key, gen_ai attribute)`. OpenAI's
/// `stop` and Anthropic's `stop_sequences` both become
/// [`REQUEST_STOP_SEQUENCES`], an array of strings in the conventions (so
/// a `stop` given as one string goes as a one-element array).
///
/// ```
/// use serde_json::json;
/// use vigil::llm::genai;
///
/// let input = json!({ "model": "gpt-4o", "temperature": 0.2, "messages": [] });
/// let attributes: Vec<(&str, &serde_json::Value)> = genai::REQUEST_PARAMETERS
///     .iter()
///     .filter_map(|(key, attribute)| input.get(*key).map(|v| (*attribute, v)))
///     .collect();
/// assert_eq!(attributes, [("gen_ai.request.model", &json!("gpt-4o")),
///                         ("gen_ai.request.temperature", &json!(0.2))]);
/// ```
pub const REQUEST_PARAMETERS: [(&str, &str); 6] = [
    (keys::MODEL, REQUEST_MODEL),
    (keys::TEMPERATURE, REQUEST_TEMPERATURE),
    (keys::MAX_TOKENS, REQUEST_MAX_TOKENS),
    (keys::TOP_P, REQUEST_TOP_P),
    (keys::STOP, REQUEST_STOP_SEQUENCES),
    (keys::STOP_SEQUENCES, REQUEST_STOP_SEQUENCES),
];

/// The token counts of an `llm` span's output `usage` ([`keys`]) and the
/// attributes that carry them: `(Vigil key, gen_ai attribute)`, for both
/// providers' names. The conventions have no total.
pub const USAGE: [(&str, &str); 4] = [
    (keys::PROMPT_TOKENS, USAGE_INPUT_TOKENS),
    (keys::INPUT_TOKENS, USAGE_INPUT_TOKENS),
    (keys::COMPLETION_TOKENS, USAGE_OUTPUT_TOKENS),
    (keys::OUTPUT_TOKENS, USAGE_OUTPUT_TOKENS),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Provider;

    #[test]
    fn every_defined_operation_has_a_kind() {
        use operation::*;
        let expected = [
            (CHAT, SpanKind::Llm),
            (TEXT_COMPLETION, SpanKind::Llm),
            (GENERATE_CONTENT, SpanKind::Llm),
            (EMBEDDINGS, SpanKind::Retriever),
            (RETRIEVAL, SpanKind::Retriever),
            (EXECUTE_TOOL, SpanKind::Tool),
            (CREATE_AGENT, SpanKind::Agent),
            (INVOKE_AGENT, SpanKind::Agent),
            (INVOKE_WORKFLOW, SpanKind::Chain),
        ];
        for (op, kind) in expected {
            assert_eq!(kind_of_operation(op), Some(kind), "{op}");
        }
        for op in ["", "chat ", "CHAT", "workflow", "llm"] {
            assert_eq!(kind_of_operation(op), None, "{op:?}");
        }
    }

    #[test]
    fn every_kind_round_trips_through_its_operation() {
        for kind in SpanKind::ALL {
            assert_eq!(kind_of_operation(operation_of_kind(kind)), Some(kind));
        }
    }

    #[test]
    fn names_are_the_conventions() {
        let all = [
            OPERATION_NAME,
            PROVIDER_NAME,
            REQUEST_MODEL,
            REQUEST_TEMPERATURE,
            REQUEST_MAX_TOKENS,
            REQUEST_TOP_P,
            REQUEST_STOP_SEQUENCES,
            RESPONSE_MODEL,
            RESPONSE_ID,
            RESPONSE_FINISH_REASONS,
            USAGE_INPUT_TOKENS,
            USAGE_OUTPUT_TOKENS,
            INPUT_MESSAGES,
            OUTPUT_MESSAGES,
            SYSTEM_INSTRUCTIONS,
            TOOL_NAME,
            TOOL_CALL_ID,
            AGENT_NAME,
            legacy::SYSTEM,
            legacy::PROMPT,
            legacy::COMPLETION,
            legacy::USAGE_PROMPT_TOKENS,
            legacy::USAGE_COMPLETION_TOKENS,
        ];
        for (i, name) in all.iter().enumerate() {
            assert!(name.starts_with("gen_ai."), "{name}");
            assert!(!all[..i].contains(name), "{name} twice");
        }
        // The provider names are the registry's `gen_ai.provider.name` values.
        assert_eq!(Provider::OpenAi.name(), "openai");
        assert_eq!(Provider::Anthropic.name(), "anthropic");
    }

    #[test]
    fn the_tables_map_vigil_keys_to_attributes() {
        let attribute = |table: &[(&str, &'static str)], key: &str| {
            table.iter().find(|(k, _)| *k == key).map(|(_, a)| *a)
        };
        assert_eq!(
            attribute(&REQUEST_PARAMETERS, "max_tokens"),
            Some(REQUEST_MAX_TOKENS)
        );
        assert_eq!(
            attribute(&REQUEST_PARAMETERS, "stop"),
            Some(REQUEST_STOP_SEQUENCES)
        );
        assert_eq!(attribute(&REQUEST_PARAMETERS, "messages"), None);
        assert_eq!(attribute(&USAGE, "prompt_tokens"), Some(USAGE_INPUT_TOKENS));
        assert_eq!(
            attribute(&USAGE, "output_tokens"),
            Some(USAGE_OUTPUT_TOKENS)
        );
        assert_eq!(attribute(&USAGE, "total_tokens"), None);
    }
}
