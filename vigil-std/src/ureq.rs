//! Auto-instrumentation of OpenAI and Anthropic calls made through `ureq`:
//! the APIs of [`crate::llm::Api`] (chat completions, responses, embeddings,
//! messages).
//!
//! ```no_run
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

use crate::integrations::{is_provider_active, LlmCall};
use crate::llm::{keys, Api};

/// The `ureq` middleware that records LLM calls; see the module docs.
///
/// ```no_run
/// use vigil::ureq::{ureq, VigilMiddleware};
///
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
        let recorded = request.method() == ::ureq::http::Method::POST
            && Api::from_path(request.uri().path())
                .is_some_and(|api| is_provider_active(api.provider()))
            && crate::context::current_client().is_some();
        if !recorded {
            return next.handle(request);
        }
        let host = request.uri().host().map(str::to_owned);
        let path = request.uri().path().to_owned();
        let (parts, body) = request.into_parts();
        let mut bytes = Vec::new();
        body.into_reader().read_to_end(&mut bytes)?;
        let Some(mut call) = LlmCall::for_request("POST", &path, &bytes) else {
            let mut sent: &[u8] = &bytes;
            return next.handle(Request::from_parts(parts, sent.as_body()));
        };
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
                status: status.as_u16(),
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
        call.feed(&bytes);
        call.finish_response(status.as_u16());
        Ok(Response::from_parts(parts, builder.data(bytes)))
    }
}

fn call_fail(call: LlmCall, error: &::ureq::Error) {
    call.fail(&error.to_string());
}

/// Passes a streamed body through unchanged while the call's span reads
/// along; the span ends at the end of the stream, or when the application
/// drops the body early (then marked incomplete).
struct StreamTap<R> {
    inner: R,
    call: Option<LlmCall>,
    status: u16,
}

impl<R: Read> Read for StreamTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(error) => {
                // The stream broke: the span ends failed, with what came.
                if let Some(call) = self.call.take() {
                    call.fail_response(&error.to_string());
                }
                return Err(error);
            }
        };
        if n == 0 && !buf.is_empty() {
            if let Some(call) = self.call.take() {
                call.finish_response(self.status);
            }
        } else if let Some(call) = self.call.as_mut() {
            call.feed(&buf[..n]);
        }
        Ok(n)
    }
}
