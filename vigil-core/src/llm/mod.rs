//! What an LLM call looks like, in one place, for every integration.
//!
//! - [`openai`] and [`anthropic`] turn a provider's request, response, error
//!   body and stream into the input and output of an `llm` span;
//! - [`Provider`] and [`StreamAccumulator`] do the same for a provider
//!   chosen at run time (from a URL path, say);
//! - [`keys`] names the keys Vigil writes on an `llm` span, the ones the
//!   Vigil server replays from;
//! - [`genai`] and [`openinference`] are the OpenTelemetry GenAI and
//!   OpenInference names for the same things, and their span kinds.
//!
//! It needs the `llm` feature (an allocator and `serde_json`). `vigil-std`
//! turns it on and re-exports it as `vigil::llm`; its `LlmCall` and the
//! `ureq` middleware are built on it.
//!
//! ```
//! use serde_json::json;
//! use vigil::llm::{keys, Provider};
//!
//! let provider = Provider::from_path("/v1/messages").unwrap();
//! let request = json!({ "model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [] });
//! assert_eq!(provider.input(&request)[keys::MODEL], "claude-sonnet-4-5");
//! assert_eq!(provider.span_name(), "anthropic.messages");
//! ```

use alloc::string::String;

use serde_json::Value;

pub mod anthropic;
pub mod attributes;
pub mod genai;
pub mod keys;
pub mod openai;
pub mod openinference;

/// How far past the last tool call or content block a stream's `index` may
/// jump; beyond that it is ignored rather than allocated for.
const MAX_INDEX_GAP: usize = 64;

/// An LLM provider the SDK knows.
///
/// ```
/// use vigil::llm::Provider;
///
/// assert_eq!(Provider::from_path("/v1/chat/completions?api-version=1"), Some(Provider::OpenAi));
/// assert_eq!(Provider::from_path("/v1/messages/"), Some(Provider::Anthropic));
/// assert_eq!(Provider::from_path("/v1/embeddings"), None);
/// assert_eq!(Provider::OpenAi.name(), "openai");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI chat completions and compatible servers.
    OpenAi,
    /// Anthropic messages.
    Anthropic,
}

impl Provider {
    /// The provider an HTTP call goes to, judged by its URL path:
    /// `.../chat/completions` or `.../v1/messages`.
    pub fn from_path(path: &str) -> Option<Provider> {
        let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
        if path.ends_with("/chat/completions") {
            Some(Provider::OpenAi)
        } else if path.ends_with("/v1/messages") {
            Some(Provider::Anthropic)
        } else {
            None
        }
    }

    /// The integration's name: `openai` or `anthropic` (also the provider's
    /// value of [`genai::PROVIDER_NAME`]).
    pub const fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    /// The name of the span of one call: [`openai::SPAN_NAME`] or
    /// [`anthropic::SPAN_NAME`].
    pub const fn span_name(self) -> &'static str {
        match self {
            Provider::OpenAi => openai::SPAN_NAME,
            Provider::Anthropic => anthropic::SPAN_NAME,
        }
    }

    /// The span input of a request body: [`openai::input`] or [`anthropic::input`].
    pub fn input(self, request: &Value) -> Value {
        match self {
            Provider::OpenAi => openai::input(request),
            Provider::Anthropic => anthropic::input(request),
        }
    }

    /// The span output of a (non-streamed) response body: [`openai::output`]
    /// or [`anthropic::output`].
    pub fn output(self, response: &Value) -> Value {
        match self {
            Provider::OpenAi => openai::output(response),
            Provider::Anthropic => anthropic::output(response),
        }
    }

    /// The provider's message in an error body: [`openai::error_message`]
    /// or [`anthropic::error_message`].
    pub fn error_message(self, body: &Value) -> Option<String> {
        match self {
            Provider::OpenAi => openai::error_message(body),
            Provider::Anthropic => anthropic::error_message(body),
        }
    }
}

/// Builds the output of a streamed response, line by line, for the
/// provider it was made for.
///
/// ```
/// use vigil::llm::{Provider, StreamAccumulator};
///
/// let mut stream = StreamAccumulator::new(Provider::OpenAi);
/// let first = stream.feed_line(r#"data: {"model":"gpt-4o","choices":[{"delta":{"content":"Hi"}}]}"#);
/// assert!(first, "the first content: where time to first token is measured");
/// assert!(!stream.is_done(), "no [DONE] yet");
/// stream.feed_line("data: [DONE]");
/// assert!(stream.is_done());
/// assert_eq!(stream.output()["content"], "Hi");
/// assert_eq!(stream.provider(), Provider::OpenAi);
/// ```
#[derive(Debug)]
pub enum StreamAccumulator {
    /// An OpenAI stream.
    OpenAi(openai::StreamAccumulator),
    /// An Anthropic stream.
    Anthropic(anthropic::StreamAccumulator),
}

impl StreamAccumulator {
    /// An empty accumulator for a stream from `provider`.
    pub fn new(provider: Provider) -> Self {
        match provider {
            Provider::OpenAi => StreamAccumulator::OpenAi(Default::default()),
            Provider::Anthropic => StreamAccumulator::Anthropic(Default::default()),
        }
    }

    /// The provider whose stream this reads.
    pub fn provider(&self) -> Provider {
        match self {
            StreamAccumulator::OpenAi(_) => Provider::OpenAi,
            StreamAccumulator::Anthropic(_) => Provider::Anthropic,
        }
    }

    /// Feeds one line of the stream (without its line ending). Returns true
    /// when this line brought the first content (or tool call).
    pub fn feed_line(&mut self, line: &str) -> bool {
        match self {
            StreamAccumulator::OpenAi(a) => a.feed_line(line),
            StreamAccumulator::Anthropic(a) => a.feed_line(line),
        }
    }

    /// Whether the provider's end marker was seen (`[DONE]`, `message_stop`).
    pub fn is_done(&self) -> bool {
        match self {
            StreamAccumulator::OpenAi(a) => a.is_done(),
            StreamAccumulator::Anthropic(a) => a.is_done(),
        }
    }

    /// The output so far, in the shape of the provider's non-streamed output.
    pub fn output(&self) -> Value {
        match self {
            StreamAccumulator::OpenAi(a) => a.output(),
            StreamAccumulator::Anthropic(a) => a.output(),
        }
    }

    /// The message of an error event the stream carried.
    pub fn error(&self) -> Option<&str> {
        match self {
            StreamAccumulator::OpenAi(a) => a.error(),
            StreamAccumulator::Anthropic(a) => a.error(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{keys, Provider, StreamAccumulator};

    #[test]
    fn a_provider_dispatches_to_its_parsers() {
        let request = json!({ "model": "m", "system": "S", "messages": [] });
        assert_eq!(Provider::OpenAi.input(&request), request);
        assert_eq!(
            Provider::Anthropic.input(&request)[keys::MESSAGES][0][keys::ROLE],
            keys::SYSTEM_ROLE
        );
        let body = json!({ "error": "plain" });
        assert_eq!(
            Provider::OpenAi.error_message(&body).as_deref(),
            Some("plain")
        );
        assert_eq!(Provider::Anthropic.error_message(&body), None);
        for provider in [Provider::OpenAi, Provider::Anthropic] {
            assert_eq!(StreamAccumulator::new(provider).provider(), provider);
        }
    }

    #[test]
    fn outputs_have_the_replay_shape_even_when_empty() {
        let openai = Provider::OpenAi.output(&json!({}));
        assert_eq!(
            openai,
            json!({ "model": null, "content": null, "role": null,
                    "usage": { "prompt_tokens": null, "completion_tokens": null, "total_tokens": null } })
        );
        let anthropic = Provider::Anthropic.output(&json!(null));
        assert_eq!(
            anthropic,
            json!({ "model": null, "content": [], "role": null, "stop_reason": null,
                    "usage": { "input_tokens": null, "output_tokens": null } })
        );
    }

    #[test]
    fn streams_keep_errors_tool_calls_and_the_end_marker() {
        let mut openai = StreamAccumulator::new(Provider::OpenAi);
        for line in [
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"get","arguments":"{\"a\""}}]}}]}"#,
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}"#,
            r#"data: {"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6},"choices":[]}"#,
        ] {
            openai.feed_line(line);
        }
        let out = openai.output();
        assert_eq!(
            out[keys::TOOL_CALLS][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert_eq!(out[keys::CONTENT], "", "no text, only a tool call");
        assert_eq!(out[keys::USAGE][keys::TOTAL_TOKENS], 6);
        assert!(!openai.is_done());

        let mut anthropic = StreamAccumulator::new(Provider::Anthropic);
        anthropic.feed_line(
            r#"data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(anthropic.error(), Some("Overloaded"));
        assert_eq!(openai.error(), None);
    }
}
