//! Observability for AI agents.
//!
//! `vigil` is the facade most applications depend on: it re-exports
//! [`vigil_std`] (the client, the tracing API, the sinks) and the core types.
//! Start with [`init_from_env`] and [`trace()`]/[`span()`] (or the
//! [`macro@trace`]/[`macro@span`] attributes); see the crate README
//! for the whole tour.
//!
//! ```
//! use vigil::{sink::capture, SpanKind};
//!
//! let captured = capture(|| {
//!     vigil::trace("pipeline", |_| {
//!         vigil::span("search", SpanKind::Tool, |s| s.set_output(&"found"));
//!     })
//! });
//! assert_eq!(captured.span("search").unwrap().output["value"], "found");
//! ```
//!
//! # Features
//!
//! - `ureq` (default): HTTP(S) delivery. The client sends to the configured
//!   endpoint with `vigil-transport-ureq` (blocking, on ureq, with rustls
//!   for `https`) unless the config names another transport, and the
//!   `vigil::ureq` module instruments the OpenAI and Anthropic calls an
//!   application makes through ureq. Without it, pass a transport to
//!   [`config::ConfigBuilder::transport`]; a client with none prints its traces to
//!   stderr.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]

pub use vigil_std::*;

/// The `no_std` core: span model, queue, encoder, export state machine.
#[doc(inline)]
pub use vigil_core as core;

/// The README's examples, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
