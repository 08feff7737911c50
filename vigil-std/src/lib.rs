// Module layers, bottom to top; a module imports only from layers below it
// (and, inside `context/`, only from siblings listed before it):
//
//   clock  transport  config  keys  panic  seed  sync  text  console
//   split                    two destinations' buffers over one queue
//   client                   Client, its exporter threads, the global slot
//   payload                  a span's payloads: JSON, mask, field limit
//   context/                 mail < frame < stack < start, end < propagation
//   span  detached  convenience  integrations  ureq  __private    the tracing API
//   sink                     capture and the in-memory transports

//! The Vigil SDK for Rust applications.
//!
//! Records what an AI agent does (LLM calls, tool calls, retrieval, agent
//! decisions) as traces and spans, and ships them in batches to the Vigil
//! server from a background thread, without an async runtime and without ever
//! blocking the program: spans go into a bounded queue, and when it is full
//! they are dropped and counted rather than waited for.
//!
//! ```
//! use vigil::{sink::capture, SpanKind};
//!
//! let captured = capture(|| {
//!     vigil::trace("answer-question", |trace| {
//!         trace.set_input(&serde_json::json!({"question": "What is Rust?"}));
//!         let docs = vigil::span("retrieve", SpanKind::Retriever, |span| {
//!             span.set_output(&["rust-lang.org"]);
//!             1
//!         });
//!         vigil::log_event("docs-found", &serde_json::json!({"count": docs}));
//!     });
//! });
//! assert_eq!(captured.traces.len(), 1);
//! assert_eq!(captured.span("retrieve").unwrap().kind, "retriever");
//! ```
//!
//! In an application, call [`init`] (or [`init_from_env`]) once at start and
//! [`shutdown`] (or drop the guard from [`Client::shutdown_on_drop`]) at exit.
//!
//! # Where things are
//!
//! The root holds what instrumented code calls: [`init`] and [`shutdown`],
//! [`trace()`], [`span()`] and their guards and handles, the convenience
//! functions, [`Context`] and the `#[trace]` / `#[span]` macros. The
//! modules hold the rest: [`config`] (the builder, the environment, the mask
//! hook), [`transport`] (for writing a transport), [`instrument`] (futures
//! that carry a span), [`integrations`] and [`llm`] (LLM calls), [`sink`]
//! (capture, console and file sinks), [`keys`].
//!
//! # Features
//!
//! - `ureq` (default): ships to the Vigil server over HTTP(S) with
//!   `vigil-transport-ureq`, and instruments `ureq` agents ([`ureq`]).
//!   Without it, [`init`] needs a transport from
//!   [`ConfigBuilder::transport`](config::ConfigBuilder::transport), or
//!   prints traces to stderr.
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]

#[doc(hidden)]
pub mod __private;
mod client;
mod clock;
pub mod config;
mod console;
mod context;
mod convenience;
mod cost;
mod detached;
pub mod integrations;
mod panic;
mod payload;
mod seed;
pub mod sink;
mod span;
mod split;
mod spool;
mod sync;
mod text;
pub mod transport;
#[cfg(feature = "ureq")]
pub mod ureq;

pub use client::{
    flush, get_client, init, init_from_env, shutdown, shutdown_timeout, Client, DestinationReport,
    ShutdownGuard, ShutdownReport,
};
pub use config::{Config, Field};
pub use context::{spawn, Context, ContextGuard};
pub use convenience::{attach_metadata, log_event, log_llm_call, log_tool_call};
pub use detached::DetachedSpan;
pub use integrations::{activate_all_integrations, activate_integration, available_integrations};
pub use span::{
    current_span, current_trace, span, start_span, start_trace, trace, trace_context, try_span,
    try_trace, with_trace_context, InstrumentExt, SpanGuard, SpanHandle, SpanName,
};
pub use transport::Transport;
pub use vigil_core::llm;
pub use vigil_core::{
    ConfigError, SpanId, SpanKind, SpanStatus, StatsSnapshot, Timestamp, TraceId,
};

/// Futures that carry a span or a [`Context`] across their polls.
pub mod instrument {
    pub use crate::span::{InstrumentExt, Instrumented, WithContext};
}
pub use vigil_macros::{span, trace};

/// The metadata keys under which a trace's session, user, tags, release and
/// environment travel (the server has no fields of its own for them), as
/// Langfuse and the OpenTelemetry GenAI conventions group traces.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     vigil::trace("chat-turn", |t| t.set_session_id("conv-7"));
/// });
/// let trace = captured.trace("chat-turn").unwrap();
/// assert_eq!(trace.metadata[vigil::keys::SESSION_ID], "conv-7");
/// ```
pub mod keys {
    /// The conversation a trace belongs to ([`crate::SpanHandle::set_session_id`]).
    pub const SESSION_ID: &str = "session_id";
    /// Whom a trace served ([`crate::SpanHandle::set_user_id`]).
    pub const USER_ID: &str = "user_id";
    /// A trace's labels, an array of strings ([`crate::SpanHandle::set_tags`]).
    pub const TAGS: &str = "tags";
    /// The application's version (`release` in the configuration, `VIGIL_RELEASE`).
    pub const RELEASE: &str = "release";
    /// Where the application runs (`environment`, `VIGIL_ENVIRONMENT`).
    pub const ENVIRONMENT: &str = "environment";
}

/// The record type the std flavour ships: a span with recycled heap buffers.
pub(crate) type Record = vigil_core::Span<text::Text>;

#[cfg(test)]
mod tests {
    /// A queue slot that is a whole number of cache lines is never shared by
    /// the span a thread is writing and the one the exporter is taking; a
    /// slot 8 bytes longer (136 bytes) made `hot_path` on two threads cost a
    /// median 900 ns a span instead of 130.
    #[test]
    fn a_queue_slot_is_whole_cache_lines() {
        let slot = std::mem::size_of::<vigil_core::queue::Slot<crate::Record>>();
        assert_eq!(slot % 64, 0, "{slot}");
    }
}
