//! What an LLM call looks like, in one place, for every integration.
//!
//! - [`openai`] (chat completions), [`responses`] (OpenAI's Responses API),
//!   [`embeddings`] and [`anthropic`] turn a request, response, error body
//!   and stream into the input and output of a span;
//! - [`Api`] and [`StreamAccumulator`] do the same for an API chosen at run
//!   time (from a URL path, say), and [`Provider`] names whose API it is;
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
//! use vigil::llm::{keys, Api, Provider};
//!
//! let api = Api::from_path("/v1/messages").unwrap();
//! let request = json!({ "model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [] });
//! assert_eq!(api.input(&request)[keys::MODEL], "claude-sonnet-4-5");
//! assert_eq!(api.span_name(), "anthropic.messages");
//! assert_eq!(api.provider(), Provider::Anthropic);
//! ```

use alloc::borrow::Cow;
use alloc::string::String;

use serde_json::Value;

pub mod anthropic;
pub mod attributes;
pub mod embeddings;
pub mod genai;
pub mod keys;
pub mod openai;
pub mod openinference;
pub mod pricing;
pub mod responses;
mod view;

use crate::SpanKind;

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
/// assert_eq!(Provider::from_path("/v1/embeddings"), Some(Provider::OpenAi));
/// assert_eq!(Provider::from_path("/v1/models"), None);
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
    /// The provider whose API an HTTP call goes to, judged by its URL path
    /// (see [`Api::from_path`]).
    pub fn from_path(path: &str) -> Option<Provider> {
        Api::from_path(path).map(Api::provider)
    }

    /// The integration's name: `openai` or `anthropic` (also the provider's
    /// value of [`genai::PROVIDER_NAME`]).
    pub const fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    /// The name of the span of a call to its main API ([`Api::from`]).
    pub const fn span_name(self) -> &'static str {
        match self {
            Provider::OpenAi => openai::SPAN_NAME,
            Provider::Anthropic => anthropic::SPAN_NAME,
        }
    }

    /// The span input of a request body to its main API.
    pub fn input(self, request: &Value) -> Value {
        Api::from(self).input(request).into_owned()
    }

    /// The span output of a (non-streamed) response body from its main API.
    pub fn output(self, response: &Value) -> Value {
        Api::from(self).output(response)
    }

    /// The provider's message in an error body.
    pub fn error_message(self, body: &Value) -> Option<String> {
        Api::from(self).error_message(body)
    }
}

/// An API that makes model calls, recognised by the path it is served at.
///
/// ```
/// use vigil::llm::{Api, Provider};
/// use vigil::SpanKind;
///
/// assert_eq!(Api::from_path("/openai/deployments/gpt4/chat/completions?api-version=2024-10-21"),
///            Some(Api::ChatCompletions), "Azure");
/// assert_eq!(Api::from_path("/v1/responses"), Some(Api::Responses));
/// assert_eq!(Api::from_path("/v1/responses/resp_1/cancel"), None);
/// assert_eq!(Api::from_path("/v1/messages/count_tokens"), None);
/// assert_eq!(Api::Embeddings.kind(), SpanKind::Retriever);
/// assert_eq!(Api::Embeddings.operation(), "embeddings");
/// assert_eq!(Api::Messages.provider(), Provider::Anthropic);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// `.../chat/completions`: OpenAI and the servers that speak its API
    /// (Azure, Ollama, vLLM, OpenRouter, Groq, Together...).
    ChatCompletions,
    /// `.../responses`: OpenAI's Responses API.
    Responses,
    /// `.../embeddings`: OpenAI-style embeddings.
    Embeddings,
    /// `.../v1/messages`: Anthropic messages.
    Messages,
}

impl Api {
    /// Every API, in the order [`from_path`](Api::from_path) tries them.
    pub const ALL: [Api; 4] = [
        Api::ChatCompletions,
        Api::Responses,
        Api::Embeddings,
        Api::Messages,
    ];

    /// The API an HTTP call goes to, judged by its URL path (query and
    /// trailing slash ignored): `.../chat/completions`, `.../responses`,
    /// `.../embeddings`, `.../v1/messages`. Anything else is `None`.
    pub fn from_path(path: &str) -> Option<Api> {
        let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
        Api::ALL
            .into_iter()
            .find(|api| path.ends_with(api.path_suffix()))
    }

    const fn path_suffix(self) -> &'static str {
        match self {
            Api::ChatCompletions => "/chat/completions",
            Api::Responses => "/responses",
            Api::Embeddings => "/embeddings",
            Api::Messages => "/v1/messages",
        }
    }

    /// Whose API it is; its integration turns its recording on and off.
    pub const fn provider(self) -> Provider {
        match self {
            Api::Messages => Provider::Anthropic,
            _ => Provider::OpenAi,
        }
    }

    /// The name of the span of one call.
    pub const fn span_name(self) -> &'static str {
        match self {
            Api::ChatCompletions => openai::SPAN_NAME,
            Api::Responses => responses::SPAN_NAME,
            Api::Embeddings => embeddings::SPAN_NAME,
            Api::Messages => anthropic::SPAN_NAME,
        }
    }

    /// The kind of the span of one call: [`SpanKind::Llm`], or
    /// [`SpanKind::Retriever`] for embeddings (as [`genai::kind_of_operation`]
    /// maps them).
    pub const fn kind(self) -> SpanKind {
        match self {
            Api::Embeddings => SpanKind::Retriever,
            _ => SpanKind::Llm,
        }
    }

    /// The call's [`genai::OPERATION_NAME`]: `chat` or `embeddings`.
    pub const fn operation(self) -> &'static str {
        match self {
            Api::Embeddings => genai::operation::EMBEDDINGS,
            _ => genai::operation::CHAT,
        }
    }

    /// Whether its answers can be streamed (embeddings cannot).
    pub const fn streams(self) -> bool {
        !matches!(self, Api::Embeddings)
    }

    /// The span input of a request body: the request itself, borrowed, for
    /// the APIs whose input it is (chat completions and embeddings send an
    /// object).
    ///
    /// ```
    /// use std::borrow::Cow;
    /// use serde_json::json;
    /// use vigil::llm::Api;
    ///
    /// let request = json!({ "model": "gpt-4o", "messages": [] });
    /// assert!(matches!(Api::ChatCompletions.input(&request), Cow::Borrowed(_)));
    /// assert!(Api::Messages.input(&request)["messages"].is_array());
    /// ```
    pub fn input(self, request: &Value) -> Cow<'_, Value> {
        match self {
            Api::ChatCompletions | Api::Embeddings if request.is_object() => Cow::Borrowed(request),
            Api::ChatCompletions => Cow::Owned(openai::input(request)),
            Api::Responses => Cow::Owned(responses::input(request)),
            Api::Embeddings => Cow::Owned(embeddings::input(request)),
            Api::Messages => Cow::Owned(anthropic::input(request)),
        }
    }

    /// Whether a request's input is the request itself when it is an object
    /// ([`input`](Api::input) borrows it), so that a caller holding the
    /// request's JSON text may record that text as it is.
    pub const fn input_is_request(self) -> bool {
        matches!(self, Api::ChatCompletions | Api::Embeddings)
    }

    /// [`output`](Api::output) of a response the caller owns: what the
    /// output keeps is moved out of it rather than copied.
    ///
    /// ```
    /// use serde_json::json;
    /// use vigil::llm::Api;
    ///
    /// let response = json!({ "model": "gpt-4o", "choices": [{ "message": { "role": "assistant", "content": "Hi" } }] });
    /// assert_eq!(Api::ChatCompletions.into_output(response.clone()), Api::ChatCompletions.output(&response));
    /// ```
    pub fn into_output(self, response: Value) -> Value {
        match self {
            Api::ChatCompletions => openai::into_output(response),
            _ => self.output(&response),
        }
    }

    /// The span output of a (non-streamed) response body.
    pub fn output(self, response: &Value) -> Value {
        match self {
            Api::ChatCompletions => openai::output(response),
            Api::Responses => responses::output(response),
            Api::Embeddings => embeddings::output(response),
            Api::Messages => anthropic::output(response),
        }
    }

    /// The provider's message in an error body.
    pub fn error_message(self, body: &Value) -> Option<String> {
        match self {
            Api::ChatCompletions | Api::Responses | Api::Embeddings => openai::error_message(body),
            Api::Messages => anthropic::error_message(body),
        }
    }
}

/// A provider's main API: chat completions for OpenAI, messages for Anthropic.
impl From<Provider> for Api {
    fn from(provider: Provider) -> Api {
        match provider {
            Provider::OpenAi => Api::ChatCompletions,
            Provider::Anthropic => Api::Messages,
        }
    }
}

/// Builds the output of a streamed response, line by line, for the
/// API it was made for.
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
    /// A Responses API stream.
    Responses(responses::StreamAccumulator),
}

impl StreamAccumulator {
    /// An empty accumulator for a stream from `api` (a [`Provider`] means
    /// its main API).
    pub fn new(api: impl Into<Api>) -> Self {
        match api.into() {
            Api::ChatCompletions | Api::Embeddings => StreamAccumulator::OpenAi(Default::default()),
            Api::Responses => StreamAccumulator::Responses(Default::default()),
            Api::Messages => StreamAccumulator::Anthropic(Default::default()),
        }
    }

    /// The provider whose stream this reads.
    pub fn provider(&self) -> Provider {
        match self {
            StreamAccumulator::OpenAi(_) | StreamAccumulator::Responses(_) => Provider::OpenAi,
            StreamAccumulator::Anthropic(_) => Provider::Anthropic,
        }
    }

    /// Feeds one line of the stream (without its line ending). Returns true
    /// when this line brought the first content (or tool call).
    pub fn feed_line(&mut self, line: &str) -> bool {
        match self {
            StreamAccumulator::OpenAi(a) => a.feed_line(line),
            StreamAccumulator::Anthropic(a) => a.feed_line(line),
            StreamAccumulator::Responses(a) => a.feed_line(line),
        }
    }

    /// Whether the provider's end marker was seen (`[DONE]`, `message_stop`).
    pub fn is_done(&self) -> bool {
        match self {
            StreamAccumulator::OpenAi(a) => a.is_done(),
            StreamAccumulator::Anthropic(a) => a.is_done(),
            StreamAccumulator::Responses(a) => a.is_done(),
        }
    }

    /// Whether the stream brought the call's token usage (an OpenAI chat
    /// stream does only when asked, with `stream_options.include_usage`).
    pub fn has_usage(&self) -> bool {
        match self {
            StreamAccumulator::OpenAi(a) => a.has_usage(),
            StreamAccumulator::Anthropic(a) => a.has_usage(),
            StreamAccumulator::Responses(a) => a.has_usage(),
        }
    }

    /// The output so far, in the shape of the provider's non-streamed output.
    pub fn output(&self) -> Value {
        match self {
            StreamAccumulator::OpenAi(a) => a.output(),
            StreamAccumulator::Anthropic(a) => a.output(),
            StreamAccumulator::Responses(a) => a.output(),
        }
    }

    /// The message of an error event the stream carried.
    pub fn error(&self) -> Option<&str> {
        match self {
            StreamAccumulator::OpenAi(a) => a.error(),
            StreamAccumulator::Anthropic(a) => a.error(),
            StreamAccumulator::Responses(a) => a.error(),
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
