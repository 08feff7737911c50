//! The `no_std` core of the Vigil SDK.
//!
//! Everything here is synchronous, free of globals and threads, and needs no
//! allocator: the span model ([`Span`], [`Trace`], [`SpanKind`],
//! [`SpanStatus`]), ids and timestamps supplied from outside ([`IdGenerator`],
//! [`Clock`]), the bounded multi-producer [`queue`] and the [`SpanQueue`]
//! that threads fill through [`Producer`]s of their own, the Vigil JSON
//! encoding ([`encode`]), the export state machine ([`Exporter`], which takes
//! spans from any [`SpanSource`]) and the [`Transport`] seam. `vigil-std` adds
//! threads, a global client and HTTP on top.
//!
//! # Features
//!
//! - `alloc` (off by default): growable payloads (`alloc::string::String` as
//!   a span [`Buffer`]), boxed queue storage (`Queue::with_capacity`)
//!   and the span queue of several lanes (`SpanQueue::with_capacity`), and
//!   `Vec` as batch storage.
//! - `llm` (off by default; implies `alloc`, adds `serde_json` without `std`):
//!   the `llm` module, what an LLM call looks like: the OpenAI and Anthropic request
//!   and response parsers and the OpenTelemetry GenAI and OpenInference
//!   vocabulary, shared by every integration.
//!
//! With no feature the crate needs neither `std` nor an allocator.
//!
//! # End to end, with no allocator
//!
//! ```
//! use core::time::Duration;
//! use vigil_core::queue::{Queue, Slot};
//! use vigil_core::{
//!     ExportSettings, Exporter, IdGenerator, Outcome, Poll, Request, SpanKind, SpanQueue,
//!     SpanStatus, Timestamp, Trace, Transport,
//! };
//!
//! type Text = heapless::String<512>;
//! type Record = vigil_core::Span<Text>;
//!
//! struct Sent(usize);
//! impl Transport for Sent {
//!     fn send(&mut self, request: &Request<'_>) -> Outcome {
//!         self.0 += request.spans;
//!         Outcome::Delivered
//!     }
//! }
//!
//! let queue: SpanQueue<Text, [Slot<Record>; 8]> = SpanQueue::new(Queue::new());
//! let mut ids = IdGenerator::from_seed(42);
//! let t = |ms: u64| Timestamp::from_unix_nanos(ms * 1_000_000);
//!
//! let mut trace: Trace<Text> = Trace::new(ids.trace_id(), ids.span_id(), "answer", t(0));
//! let mut llm = trace.child(ids.span_id(), "llm:gpt-4", SpanKind::Llm, t(1));
//! llm.set_input(&[("prompt", "Hi")]).unwrap();
//! llm.end(t(2), SpanStatus::Ok);
//! queue.submit(llm);
//! queue.submit(trace.end(t(3), SpanStatus::Ok));
//!
//! let mut exporter: Exporter<Text, heapless::Vec<Record, 8>> =
//!     Exporter::new(ExportSettings::default(), "default", 7);
//! exporter.request_flush();
//! let mut buf = [0u8; 4096];
//! let mut transport = Sent(0);
//! while exporter.poll(Duration::ZERO, &queue, &mut transport, &mut buf) == Poll::Again {}
//! assert_eq!(transport.0, 2);
//! assert_eq!(queue.snapshot().spans_delivered, 2);
//! ```
#![no_std]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

mod buffer;
pub mod config;
pub mod encode;
pub mod export;
mod id;
pub mod json;
#[cfg(feature = "llm")]
pub mod llm;
mod model;
pub mod queue;
pub mod sample;
pub mod span;
pub mod span_queue;
mod stats;
mod sync;
pub mod time;
pub mod transport;

pub use buffer::{Buffer, Full};
pub use config::{ConfigError, ExportSettings, Settings};
pub use export::{Exporter, Poll};
pub use id::{IdGenerator, SpanId, TraceId};
pub use model::{SpanKind, SpanStatus, UnknownName};
pub use span::{Name, Span, Trace};
pub use span_queue::{Producer, SpanQueue, SpanSource};
pub use stats::{Counters, SpoolDrop, StatsSnapshot};
pub use time::{Clock, Timestamp};
pub use transport::{Outcome, Request, RetryReason, Transport};
