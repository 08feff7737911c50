//! OpenAI and Anthropic auto-instrumentation, and the registry that turns it
//! on and off, with the seed's names.
//!
//! Rust has no monkey-patching, so the SDK hooks in where programs make these
//! calls: HTTP middleware (`ureq`'s [`crate::ureq::VigilMiddleware`] with the
//! `ureq` feature; `reqwest`, `reqwest-middleware` and Tower stacks such as
//! `async-openai`'s with the `vigil-reqwest` crate) records every call to the
//! APIs of [`crate::llm::Api`] while its provider's integration is active,
//! and [`LlmCall`] does the same for any other HTTP client, fed with the
//! request and response JSON (or the lines of a stream). What such a call's
//! span holds comes from [`crate::llm`]: its parsers, and its keys.
//!
//! Installing a middleware is what turns the recording on, so every
//! integration starts active; [`deactivate_integration`] stops an
//! integration's middleware from recording (at run time, say, for a tenant
//! whose prompts must not be kept) and [`activate_integration`] resumes it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::{json, Value};

use crate::client::{get_client, Client};
use crate::config::Field;
use crate::context::{self, Frame, Start};
use crate::cost::record_call;
use crate::llm::pricing::TokenUsage;
use crate::llm::{keys, Api, Provider, StreamAccumulator};
use crate::SpanStatus;

const NAMES: [&str; 2] = [Provider::OpenAi.name(), Provider::Anthropic.name()];
static ACTIVE: [AtomicBool; 2] = [AtomicBool::new(true), AtomicBool::new(true)];

/// The integrations this build knows: `["openai", "anthropic"]`.
///
/// ```
/// assert_eq!(vigil::available_integrations(), ["openai", "anthropic"]);
/// ```
pub fn available_integrations() -> &'static [&'static str] {
    &NAMES
}

/// Turns on the integration called `name` (each starts on).
///
/// ```
/// vigil::integrations::deactivate_integration("openai");
/// vigil::activate_integration("openai").unwrap();
/// assert!(vigil::integrations::is_integration_active("openai"));
/// let err = vigil::activate_integration("cohere").unwrap_err();
/// assert_eq!(err.to_string(), "unknown integration \"cohere\"; available: openai, anthropic");
/// ```
pub fn activate_integration(name: &str) -> Result<(), UnknownIntegration> {
    let at = NAMES
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| UnknownIntegration(name.to_owned()))?;
    ACTIVE[at].store(true, Ordering::Relaxed);
    Ok(())
}

/// Turns on every integration (each starts on).
///
/// ```
/// vigil::integrations::deactivate_integration("anthropic");
/// vigil::activate_all_integrations();
/// assert!(vigil::integrations::is_integration_active("anthropic"));
/// ```
pub fn activate_all_integrations() {
    ACTIVE.iter().for_each(|a| a.store(true, Ordering::Relaxed));
}

/// Turns off the integration called `name` (unknown names are ignored).
///
/// ```
/// vigil::activate_integration("openai").unwrap();
/// vigil::integrations::deactivate_integration("openai");
/// assert!(!vigil::integrations::is_integration_active("openai"));
/// ```
pub fn deactivate_integration(name: &str) {
    if let Some(at) = NAMES.iter().position(|n| *n == name) {
        ACTIVE[at].store(false, Ordering::Relaxed);
    }
}

/// Whether the integration called `name` is on.
///
/// ```
/// assert!(vigil::integrations::is_integration_active("openai"), "on until deactivated");
/// assert!(!vigil::integrations::is_integration_active("cohere"));
/// ```
pub fn is_integration_active(name: &str) -> bool {
    NAMES
        .iter()
        .position(|n| *n == name)
        .is_some_and(|at| ACTIVE[at].load(Ordering::Relaxed))
}

/// An integration name that is not in [`available_integrations`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownIntegration(pub String);

impl fmt::Display for UnknownIntegration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown integration {:?}; available: {}",
            self.0,
            NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownIntegration {}

/// Whether the integration of `provider` is active.
///
/// ```
/// use vigil::llm::Provider;
///
/// vigil::activate_integration("anthropic").unwrap();
/// assert!(vigil::integrations::is_provider_active(Provider::Anthropic));
/// ```
pub fn is_provider_active(provider: Provider) -> bool {
    is_integration_active(provider.name())
}

/// One model call being recorded as a span (an `llm` span, or a
/// `retriever` span for embeddings), child of the span current when it
/// starts, whatever HTTP client makes it.
///
/// ```
/// use serde_json::json;
/// use vigil::integrations::LlmCall;
/// use vigil::llm::Provider;
///
/// let captured = vigil::sink::capture(|| {
///     let request = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]});
///     let call = LlmCall::start(Provider::OpenAi, &request);
///     // ... send `request` with any client ...
///     let response = json!({"model": "gpt-4o", "choices": [{"message": {"role": "assistant", "content": "Hello"}}],
///                           "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}});
///     call.finish(&response);
/// });
/// let span = captured.span("openai.chat.completions").unwrap();
/// assert_eq!(span.output["content"], "Hello");
/// assert_eq!(span.input["temperature"], serde_json::Value::Null);
/// ```
///
/// It is `Send` and `Sync`, so an async middleware can hold it across
/// `.await`s and inside a response body.
pub struct LlmCall {
    frame: Option<Frame>,
    api: Api,
    started: Instant,
    stream: Option<StreamAccumulator>,
    /// The request set `stream_options.include_usage`.
    asked_for_usage: bool,
    /// The model the request asked for.
    model: Option<String>,
    /// What [`feed`](LlmCall::feed) has kept: the body so far, or a stream's
    /// unfinished line.
    held: Vec<u8>,
    /// The body outgrew [`MAX_BODY`] (or a line [`MAX_LINE`]).
    overflowed: bool,
}

/// Largest response body [`LlmCall::feed`] keeps to parse; a larger one
/// is passed on whole but not recorded (the span says so).
pub const MAX_BODY: usize = 16 << 20;

/// Longest stream line [`LlmCall::feed`] keeps; the rest of a longer one is
/// not recorded (the application still reads it all).
pub const MAX_LINE: usize = 1 << 20;

impl std::fmt::Debug for LlmCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmCall")
            .field("api", &self.api)
            .field("recorded", &self.frame.is_some())
            .field("stream", &self.stream.is_some())
            .finish_non_exhaustive()
    }
}

impl LlmCall {
    /// Starts recording a call to `api` (a [`Provider`] means its main API)
    /// whose request body is `request`.
    ///
    /// ```
    /// use serde_json::json;
    /// use vigil::integrations::LlmCall;
    /// use vigil::llm::Api;
    ///
    /// let captured = vigil::sink::capture(|| {
    ///     let call = LlmCall::start(Api::Embeddings, &json!({"model": "text-embedding-3-small", "input": "Hi"}));
    ///     call.finish(&json!({"model": "text-embedding-3-small", "data": [{"embedding": [0.5, 0.1]}],
    ///                         "usage": {"prompt_tokens": 1, "total_tokens": 1}}));
    /// });
    /// let span = captured.span("openai.embeddings").unwrap();
    /// assert_eq!(span.kind, "retriever");
    /// assert_eq!(span.output["dimensions"], 2);
    /// ```
    pub fn start(api: impl Into<Api>, request: &Value) -> LlmCall {
        let api = api.into();
        let asked = Asked {
            stream: request[keys::STREAM] == true,
            usage: request["stream_options"]["include_usage"] == true,
            model: request[keys::MODEL].as_str().map(str::to_owned),
        };
        LlmCall::open(api, asked, &*api.input(request))
    }

    fn open(api: Api, asked: Asked, input: &(impl serde::Serialize + ?Sized)) -> LlmCall {
        let mut frame = context::open(api.span_name().into(), api.kind(), Start::Child, None);
        if let Some(f) = frame.as_mut() {
            set_payload(f, Field::Input, input);
            set_payload(f, Field::Metadata(keys::PROVIDER), api.provider().name());
        }
        let stream = (api.streams() && asked.stream).then(|| StreamAccumulator::new(api));
        LlmCall {
            frame,
            api,
            started: Instant::now(),
            stream,
            asked_for_usage: asked.usage,
            model: asked.model,
            held: Vec::new(),
            overflowed: false,
        }
    }

    /// What an HTTP middleware calls for each request: when `method` and
    /// `path` are a call to one of the [`Api`]s, its provider's integration
    /// is active and a client is current, parses `body` (the request's JSON)
    /// and starts recording. `None`, cheaply, for everything else.
    ///
    /// ```
    /// use vigil::integrations::LlmCall;
    ///
    /// let captured = vigil::sink::capture(|| {
    ///     assert!(LlmCall::for_request("GET", "/v1/models", b"").is_none());
    ///     let body = br#"{"model":"gpt-4o","messages":[]}"#;
    ///     let mut call = LlmCall::for_request("POST", "/v1/chat/completions", body).unwrap();
    ///     call.feed(br#"{"model":"gpt-4o","choices":[{"message":{"role":"assistant","content":"Hi"}}]}"#);
    ///     call.finish_response(200);
    /// });
    /// assert_eq!(captured.span("openai.chat.completions").unwrap().output["content"], "Hi");
    /// ```
    pub fn for_request(method: &str, path: &str, body: &[u8]) -> Option<LlmCall> {
        if method != "POST" {
            return None;
        }
        let api = Api::from_path(path).filter(|api| is_provider_active(api.provider()))?;
        crate::context::current_client()?;
        let call = match serde_json::from_slice::<AskedFields>(body) {
            // The request's text is its input: recorded from the text, with
            // no tree of values built and dropped on the way.
            Ok(fields) if api.input_is_request() => {
                LlmCall::open(api, fields.asked(), &JsonText(body))
            }
            _ => LlmCall::start(api, &serde_json::from_slice(body).unwrap_or(Value::Null)),
        };
        call.is_recording().then_some(call)
    }

    /// Feeds bytes of the response body as the application reads them: a
    /// stream's lines go to [`feed_line`](LlmCall::feed_line), a whole
    /// body is kept (up to [`MAX_BODY`]) for
    /// [`finish_response`](LlmCall::finish_response).
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.stream.is_none() {
            if self.held.len() + bytes.len() > MAX_BODY {
                self.overflowed = true;
                self.held = Vec::new();
            } else if !self.overflowed {
                self.held.extend_from_slice(bytes);
            }
            return;
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(end);
            self.hold_line_part(line);
            let line = std::mem::take(&mut self.held);
            self.feed_line(String::from_utf8_lossy(&line).trim_end_matches('\r'));
            self.held = line;
            self.held.clear();
            bytes = &rest[1..];
        }
        self.hold_line_part(bytes);
    }

    fn hold_line_part(&mut self, part: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.held.len());
        self.held.extend_from_slice(&part[..part.len().min(room)]);
    }

    /// Ends the call once the response body has been read to its end
    /// (`status` is the HTTP status): a stream with what it brought, a
    /// whole body parsed as the API's answer, or its error.
    pub fn finish_response(mut self, status: u16) {
        if self.stream.is_some() {
            if !self.held.is_empty() {
                let line = std::mem::take(&mut self.held);
                self.feed_line(String::from_utf8_lossy(&line).trim_end_matches('\r'));
            }
            return self.finish_stream();
        }
        let body = std::mem::take(&mut self.held);
        if self.overflowed {
            let note = format!(
                "the response is over {} MiB and was not recorded",
                MAX_BODY >> 20
            );
            self.set_metadata(keys::OUTPUT_NOT_RECORDED, &note);
            self.end(
                &Value::Null,
                if (200..300).contains(&status) {
                    SpanStatus::Ok
                } else {
                    SpanStatus::Error
                },
            );
        } else if (200..300).contains(&status) {
            if !self.end_from_text(&body) {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(v) => {
                        let output = self.api.into_output(v);
                        self.end_answered(&output);
                    }
                    Err(e) => self.fail(&format!("the response is not JSON: {e}")),
                }
            }
        } else {
            self.fail_with_body(status, &body);
        }
    }

    /// Ends the call with its output read straight from the answer's text,
    /// for the APIs that have a view of it (the usual answers: chat
    /// completions, and embeddings, whose vectors are then never parsed);
    /// false, and the call still open, otherwise.
    fn end_from_text(&mut self, body: &[u8]) -> bool {
        use crate::llm::{embeddings, openai};
        match self.api {
            Api::ChatCompletions => openai::output_view(body).map(|v| {
                self.record_tokens(v.token_usage(), v.model().as_deref());
                self.end(&v, SpanStatus::Ok);
            }),
            Api::Embeddings => embeddings::output_view(body).map(|v| {
                self.record_cost(&v.usage(), v.model().as_deref());
                self.end(&v, SpanStatus::Ok);
            }),
            _ => None,
        }
        .is_some()
    }

    /// Ends the call as failed when reading the response broke (`message`),
    /// keeping what a stream brought before.
    pub fn fail_response(self, message: &str) {
        if self.stream.is_some() {
            self.fail_stream(message);
        } else {
            self.fail(message);
        }
    }

    /// Whether the request asked for a stream (`"stream": true`).
    pub fn is_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// Whether the call is being recorded (a client took it and its trace
    /// is sampled); when not, the rest is free.
    pub fn is_recording(&self) -> bool {
        self.frame.as_ref().is_some_and(|f| f.sampled)
    }

    /// Adds metadata to the call's span, such as [`keys::SERVER_ADDRESS`].
    pub fn set_metadata<T: serde::Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        if let Some(f) = self.frame.as_mut() {
            set_payload(f, Field::Metadata(key), value);
        }
    }

    /// Records the response as a stream even though the request did not ask
    /// for one (a server that streams anyway).
    pub fn expect_stream(&mut self) {
        let api = self.api;
        self.stream
            .get_or_insert_with(|| StreamAccumulator::new(api));
    }

    /// Ends the span with the output of a (non-streamed) response body.
    pub fn finish(mut self, response: &Value) {
        let output = self.api.output(response);
        self.end_answered(&output);
    }

    /// Ends the span as failed, with output `{"error": message}`.
    pub fn fail(mut self, message: &str) {
        self.end(&json!({ keys::ERROR: message }), SpanStatus::Error);
    }

    /// Ends the span as failed from an error answer's body (`status` is the
    /// HTTP status), using the provider's own message when it has one.
    pub fn fail_with_body(self, status: u16, body: &[u8]) {
        let parsed = serde_json::from_slice::<Value>(body).ok();
        let message = parsed.as_ref().and_then(|b| self.api.error_message(b));
        let message = message.unwrap_or_else(|| format!("HTTP {status}"));
        self.fail(&message);
    }

    /// Feeds one line of a streamed response (server-sent events). The
    /// first content is stamped as a `first_token` event with the time since
    /// the call started.
    pub fn feed_line(&mut self, line: &str) {
        let Some(acc) = self.stream.as_mut() else {
            return;
        };
        if acc.feed_line(line) {
            if let Some(f) = self.frame.as_mut() {
                let ms = self.started.elapsed().as_secs_f64() * 1000.0;
                set_payload(
                    f,
                    Field::Event(keys::FIRST_TOKEN),
                    &json!({ keys::TIME_TO_FIRST_TOKEN_MS: ms }),
                );
            }
        }
    }

    /// Ends a streamed call with what the stream brought: failed if the
    /// stream carried an error event, marked incomplete if it stopped before
    /// the provider's end marker, and marked [`keys::USAGE_MISSING`] (with
    /// the reason) if it brought no usage.
    pub fn finish_stream(mut self) {
        let error = self
            .stream
            .as_ref()
            .and_then(StreamAccumulator::error)
            .map(str::to_owned);
        match error {
            Some(message) => self.fail_stream(&message),
            None => {
                let output = self.stream_output(Ended::Read);
                self.end_answered(&output);
            }
        }
    }

    /// Ends a streamed call as failed (`message`), keeping what came before.
    pub fn fail_stream(mut self, message: &str) {
        let mut output = self.stream_output(Ended::Failed);
        match output.as_object_mut() {
            Some(fields) => {
                fields.insert(keys::ERROR.to_owned(), json!(message));
            }
            None => output = json!({ keys::ERROR: message }),
        }
        self.end(&output, SpanStatus::Error);
    }

    /// The stream's output so far; marks the span if the stream's end
    /// marker has not been seen, or its usage did not come.
    fn stream_output(&mut self, ended: Ended) -> Value {
        let Some(stream) = self.stream.as_ref() else {
            return Value::Null;
        };
        let complete = stream.is_done();
        let missing = (!stream.has_usage()).then(|| match (complete, ended) {
            (true, _) if self.api == Api::ChatCompletions && !self.asked_for_usage => {
                "not asked for: stream_options.include_usage was not set"
            }
            (true, _) => "the stream ended without it",
            (false, Ended::Dropped) => "the reader dropped the stream before it came",
            (false, _) => "the stream stopped before it came",
        });
        let output = stream.output();
        if let Some(f) = self.frame.as_mut() {
            if !complete {
                set_payload(f, Field::Metadata(keys::STREAM_INCOMPLETE), &true);
            }
            if let Some(reason) = missing {
                set_payload(f, Field::Metadata(keys::USAGE_MISSING), reason);
            }
        }
        output
    }

    /// Ends the span with an answer's output (a `Value` in the shape of
    /// [`Api::output`]), costed from its usage.
    fn end_answered(&mut self, output: &Value) {
        self.record_cost(&output[keys::USAGE], output[keys::MODEL].as_str());
        self.end(output, SpanStatus::Ok);
    }

    /// Records the call's tokens and their cost (or that its model has no
    /// price) from its output's `usage`, priced by the model that
    /// answered or else the one asked for, at the client's prices.
    fn record_cost(&mut self, usage: &Value, answered_by: Option<&str>) {
        self.record_tokens(TokenUsage::from_usage(usage), answered_by);
    }

    /// [`record_cost`](LlmCall::record_cost) of tokens already counted.
    fn record_tokens(&mut self, tokens: Option<TokenUsage>, answered_by: Option<&str>) {
        let Some(trace) = self.frame.as_ref().map(|f| f.span.trace_id()) else {
            return;
        };
        let client = self.client();
        let model = answered_by
            .map(str::to_owned)
            .or_else(|| self.model.clone());
        record_call(
            client.as_ref(),
            trace,
            tokens,
            model.as_deref(),
            |key, value| {
                self.set_metadata(key, value);
            },
        );
    }

    fn end<T: serde::Serialize + ?Sized>(&mut self, output: &T, status: SpanStatus) {
        let client = self.client();
        if let Some(mut f) = self.frame.take() {
            f.set_payload(client.as_ref(), Field::Output, output);
            f.span.set_status(status);
            f.status_set = true;
            context::close(f);
        }
    }
}

/// What a request asked of its answer.
struct Asked {
    /// `"stream": true`.
    stream: bool,
    /// `"stream_options": {"include_usage": true}`.
    usage: bool,
    /// `"model"`.
    model: Option<String>,
}

/// The fields of a request [`Asked`] reads, parsed from its text (the rest
/// is skipped, unparsed); an error if the text is not a JSON object.
#[derive(serde::Deserialize)]
struct AskedFields {
    #[serde(default)]
    stream: Value,
    #[serde(default)]
    stream_options: Value,
    #[serde(default)]
    model: Value,
}

impl AskedFields {
    fn asked(self) -> Asked {
        Asked {
            stream: self.stream == true,
            usage: self.stream_options["include_usage"] == true,
            model: match self.model {
                Value::String(model) => Some(model),
                _ => None,
            },
        }
    }
}

/// Valid JSON text, serialized as the value it holds (parsed again each
/// time it is serialized, into whatever serializer asks).
struct JsonText<'a>(&'a [u8]);

impl serde::Serialize for JsonText<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut json = serde_json::Deserializer::from_slice(self.0);
        serde_transcode::transcode(&mut json, serializer)
    }
}

/// How a stream came to its end.
#[derive(Clone, Copy)]
enum Ended {
    /// Read to its end.
    Read,
    /// Broke, or carried an error.
    Failed,
    /// Dropped by its reader before its end.
    Dropped,
}

/// Records a payload on a span held outside the stack.
fn set_payload<T: serde::Serialize + ?Sized>(f: &mut Frame, field: Field<'_>, value: &T) {
    let client = f.client.clone().or_else(get_client);
    f.set_payload(client.as_ref(), field, value);
}

impl LlmCall {
    fn client(&self) -> Option<Client> {
        self.frame
            .as_ref()
            .and_then(|f| f.client.clone())
            .or_else(get_client)
    }
}

impl Drop for LlmCall {
    /// A stream dropped before its end keeps what was received, marked; a
    /// call dropped before its answer (a cancelled future) is marked too.
    fn drop(&mut self) {
        if self.frame.is_none() {
            return;
        }
        if self.stream.is_some() {
            let output = self.stream_output(Ended::Dropped);
            self.end_answered(&output);
        } else {
            let output = json!({ keys::ERROR: "cancelled: dropped before its answer was read" });
            self.end(&output, SpanStatus::Error);
        }
    }
}

/// Records an OpenAI chat completion made with any client: `request` and
/// `response` are the JSON bodies (`Err` with the error's message on failure).
///
/// ```
/// use serde_json::json;
///
/// let request = json!({ "model": "gpt-4o", "messages": [{ "role": "user", "content": "Hi" }], "seed": 7 });
/// let response = json!({
///     "model": "gpt-4o-2024-08-06",
///     "choices": [{ "message": { "role": "assistant", "content": "Hello!" } }],
///     "usage": { "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5 }
/// });
/// let captured = vigil::sink::capture(|| {
///     vigil::integrations::record_openai_chat(&request, Ok(&response));
/// });
/// let llm = captured.span("openai.chat.completions").unwrap();
/// assert_eq!(llm.input, request, "the whole request, replay keys as sent");
/// assert_eq!(llm.output["content"], "Hello!");
/// assert_eq!(llm.output["usage"]["total_tokens"], 5);
/// ```
pub fn record_openai_chat(request: &Value, response: Result<&Value, &str>) {
    record(Provider::OpenAi, request, response);
}

/// Records an Anthropic message made with any client; see [`record_openai_chat`].
///
/// ```
/// use serde_json::json;
///
/// let request = json!({
///     "model": "claude-sonnet-4-5", "max_tokens": 100, "system": "Be brief.",
///     "messages": [{ "role": "user", "content": "Hi" }]
/// });
/// let captured = vigil::sink::capture(|| {
///     vigil::integrations::record_anthropic_message(&request, Err("overloaded"));
/// });
/// let llm = captured.span("anthropic.messages").unwrap();
/// assert_eq!(llm.status, "error");
/// // The system prompt also comes first in `messages`, where replay reads it.
/// assert_eq!(llm.input["messages"][0], json!({ "role": "system", "content": "Be brief." }));
/// ```
pub fn record_anthropic_message(request: &Value, response: Result<&Value, &str>) {
    record(Provider::Anthropic, request, response);
}

fn record(provider: Provider, request: &Value, response: Result<&Value, &str>) {
    let call = LlmCall::start(provider, request);
    match response {
        Ok(body) => call.finish(body),
        Err(message) => call.fail(message),
    }
}
