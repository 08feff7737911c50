//! Records the LLM calls an async program makes through [`reqwest`] as
//! Vigil spans, with one line where the HTTP client is built.
//!
//! - [`LlmMiddleware`] for [`reqwest_middleware`] (feature `middleware`, on
//!   by default): `rig-core`'s `ReqwestMiddlewareClient` and any client built
//!   with `reqwest_middleware::ClientBuilder`.
//! - [`LlmLayer`], a Tower layer for services over `reqwest::Request`, and
//!   (feature `async-openai`, versions 0.37 to 0.43) for `async-openai`'s
//!   Tower stack, installed with `Client::with_http_service`.
//!
//! Each OpenAI-style `…/chat/completions` (OpenAI, Azure, Ollama, vLLM,
//! OpenRouter, Groq, Together), OpenAI `…/responses`, `…/embeddings` and
//! Anthropic `…/v1/messages` call becomes a span, child of the span current
//! where the request is made (in a task that carries its context, too):
//! `llm` for completions, with the keys the Vigil server replays from,
//! usage, tool calls and the `server.address`; `retriever` for embeddings,
//! with their count and dimensions. A streamed answer is recorded as the
//! application reads it, with a `first_token` event, and the span ends when
//! the stream ends, breaks, or is dropped unread (then marked
//! `vigil.stream_incomplete`); a stream that brought no usage says why in
//! `vigil.usage_missing`. The parsers are `vigil::llm`'s, the ones the
//! `ureq` middleware and the `tracing` bridge use.
//!
//! The application gets exactly the response it would get without the
//! middleware: status, headers, URL, extensions and every byte of the body,
//! at its own pace; the middleware keeps a stream's current line and, for
//! a whole answer, the body (up to [`vigil::integrations::MAX_BODY`]) until
//! it has been read. Every other request passes through untouched, and so
//! does every request when no Vigil client is current or the provider's
//! integration is deactivated (`vigil::integrations::deactivate_integration`).
//!
//! ```no_run
//! # async fn run() -> Result<(), reqwest_middleware::Error> {
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(vigil_reqwest::LlmMiddleware::default())
//!     .build();
//! let answer = client
//!     .post("http://localhost:11434/v1/chat/completions") // Ollama's OpenAI API
//!     .body(r#"{"model":"llama3.2","messages":[{"role":"user","content":"Hi"}]}"#)
//!     .send()
//!     .await?
//!     .text()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! It is runtime-agnostic: no executor of its own, it runs in whatever
//! polls `reqwest`'s futures.
//!
//! A crate that also emits GenAI `tracing` spans (rig does) recorded through
//! `vigil-tracing` gets both: its own `llm` span, and under it the HTTP
//! call's. Use one of the two for a client, or keep both to see the
//! provider's raw request and answer under the crate's view of the call.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod body;
mod layer;
#[cfg(feature = "middleware")]
mod middleware;
mod record;

pub use layer::{LlmLayer, LlmService};
#[cfg(feature = "middleware")]
pub use middleware::LlmMiddleware;
