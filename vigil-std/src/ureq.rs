//! Auto-instrumentation of OpenAI and Anthropic calls made through `ureq`:
//! the APIs of [`crate::llm::Api`] (chat completions, responses, embeddings,
//! messages).
//!
//! ```no_run
//! vigil::activate_all_integrations();
//! let agent = vigil::ureq::instrumented_agent();
//! let response = agent
//!     .post("https://api.openai.com/v1/chat/completions")
//!     .header("Authorization", "Bearer sk-...")
//!     .send(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#)?;
//! // An `openai.chat.completions` span was recorded under the current span.
//! # Ok::<_, ureq::Error>(())
//! ```
//!
//! The middleware passes every other request through untouched, and gives
//! the application exactly the response it would get without it: same status,
//! headers and body bytes, streamed bodies still streamed. One difference: a
//! request body given as a reader goes out with a `Content-Length`, since the
//! middleware reads it to record it.

use std::io::{self, Read};

/// The `ureq` this middleware is built for: build agents with it (and its
/// `config_builder` for timeouts), so that versions match.
///
/// ```no_run
/// use std::time::Duration;
/// use vigil::ureq::ureq;
///
/// let agent: ureq::Agent = ureq::Agent::config_builder()
///     .timeout_global(Some(Duration::from_secs(30)))
///     .middleware(vigil::ureq::VigilMiddleware)
///     .build()
///     .into();
/// ```
pub use ::ureq;

use ::ureq::http::{Request, Response};
use ::ureq::middleware::{Middleware, MiddlewareNext};
use ::ureq::{AsSendBody, Body, SendBody};
use serde_json::Value;

use crate::integrations::{is_provider_active, LlmCall};
use crate::llm::{keys, Api};

/// The `ureq` middleware that records LLM calls; see the module docs.
///
/// ```no_run
/// use vigil::ureq::{ureq, VigilMiddleware};
///
/// vigil::activate_integration("openai").unwrap();
/// let agent: ureq::Agent = ureq::Agent::config_builder()
///     .middleware(VigilMiddleware)
///     .build()
///     .into();
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct VigilMiddleware;

/// A `ureq` agent with [`VigilMiddleware`] and otherwise default settings.
///
/// ```no_run
/// vigil::activate_all_integrations();
/// let agent = vigil::ureq::instrumented_agent();
/// let answer = agent
///     .post("http://localhost:11434/v1/chat/completions") // Ollama's OpenAI API
///     .send(r#"{"model":"llama3","messages":[{"role":"user","content":"Hi"}]}"#)?;
/// # Ok::<_, vigil::ureq::ureq::Error>(())
/// ```
pub fn instrumented_agent() -> ::ureq::Agent {
    ::ureq::Agent::config_builder()
        .middleware(VigilMiddleware)
        .build()
        .into()
}

impl Middleware for VigilMiddleware {
    fn handle(
        &self,
        request: Request<SendBody>,
        next: MiddlewareNext,
    ) -> Result<Response<Body>, ::ureq::Error> {
        // Only calls that create a completion: a GET on the same path lists
        // stored ones.
        let api = Api::from_path(request.uri().path()).filter(|api| {
            is_provider_active(api.provider()) && request.method() == ::ureq::http::Method::POST
        });
        let Some(api) = api.filter(|_| crate::context::current_client().is_some()) else {
            return next.handle(request);
        };
        let host = request.uri().host().map(str::to_owned);
        let (parts, body) = request.into_parts();
        let mut bytes = Vec::new();
        body.into_reader().read_to_end(&mut bytes)?;
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut call = LlmCall::start(api, &json);
        if let Some(host) = host {
            call.set_metadata(keys::SERVER_ADDRESS, &host);
        }
        let mut sent: &[u8] = &bytes;
        let request = Request::from_parts(parts, sent.as_body());
        let response = match next.handle(request) {
            Ok(response) => response,
            Err(error) => {
                call_fail(call, &error);
                return Err(error);
            }
        };
        let status = response.status();
        let (parts, body) = response.into_parts();
        let mime = body.mime_type().map(str::to_owned);
        let charset = body.charset().map(str::to_owned);
        let mut builder = Body::builder();
        if let Some(m) = mime.as_deref() {
            builder = builder.mime_type(m);
        }
        if let Some(c) = charset {
            builder = builder.charset(c);
        }
        let event_stream = mime.as_deref() == Some("text/event-stream");
        if status.is_success() && (call.is_stream() || event_stream) {
            // A stream the request did not ask for is recorded all the same.
            call.expect_stream();
            let tap = StreamTap {
                inner: body.into_reader(),
                call: Some(call),
                line: Vec::new(),
            };
            return Ok(Response::from_parts(parts, builder.reader(tap)));
        }
        let bytes = match body.into_with_config().limit(u64::MAX).read_to_vec() {
            Ok(bytes) => bytes,
            Err(error) => {
                call_fail(call, &error);
                return Err(error);
            }
        };
        if status.is_success() {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => call.finish(&v),
                Err(e) => call.fail(&format!("the response is not JSON: {e}")),
            }
        } else {
            call.fail_with_body(status.as_u16(), &bytes);
        }
        Ok(Response::from_parts(parts, builder.data(bytes)))
    }
}

fn call_fail(call: LlmCall, error: &::ureq::Error) {
    call.fail(&error.to_string());
}

/// Passes a streamed body through unchanged while the call's span reads
/// along, line by line; the span ends at the end of the stream, or when the
/// application drops the body early (then marked incomplete).
struct StreamTap<R> {
    inner: R,
    call: Option<LlmCall>,
    line: Vec<u8>,
}

/// Longest line the tap keeps; the rest of a longer one is not recorded
/// (the application still reads it all).
const MAX_LINE: usize = 1 << 20;

impl<R: Read> Read for StreamTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(error) => {
                // The stream broke: the span ends failed, with what came.
                if let Some(call) = self.call.take() {
                    call.fail_stream(&error.to_string());
                }
                return Err(error);
            }
        };
        if let Some(call) = self.call.as_mut() {
            for &b in &buf[..n] {
                if b == b'\n' {
                    call.feed_line(String::from_utf8_lossy(&self.line).trim_end_matches('\r'));
                    self.line.clear();
                } else if self.line.len() < MAX_LINE {
                    self.line.push(b);
                }
            }
            if n == 0 && !buf.is_empty() {
                if !self.line.is_empty() {
                    call.feed_line(&String::from_utf8_lossy(&self.line));
                }
                if let Some(call) = self.call.take() {
                    call.finish_stream();
                }
            }
        }
        Ok(n)
    }
}
