//! Spans that belong to no thread's stack: started in one place, updated and
//! ended from any thread, for bridges from other instrumentation (a
//! `tracing` layer, an HTTP middleware) whose spans outlive a stack frame.

use std::fmt::{self, Display};

use serde::Serialize;
use vigil_core::{SpanId, SpanKind, SpanStatus, TraceId};

use crate::client::{get_client, Client};
use crate::config::Field;
use crate::context::{self, Context, Frame, Start};
use crate::span::SpanName;

/// A span not on any thread's span stack: it is current nowhere until its
/// [`context`](DetachedSpan::context) is attached, it may move between
/// threads, and it ends when [`end`](DetachedSpan::end) is called or it is
/// dropped.
///
/// Payloads go through the client's `mask` hook and `capture_content`
/// switch, as on any span. When nothing is recorded (no client, sampled out)
/// every method does nothing.
///
/// ```
/// use vigil::{sink::capture, DetachedSpan, SpanKind};
///
/// let captured = capture(|| {
///     vigil::trace("job", |_| {
///         let mut call = DetachedSpan::start("llm-call", SpanKind::Llm);
///         let context = call.context();
///         std::thread::spawn(move || {
///             call.set_output(&serde_json::json!({"content": "Hello"}));
///             call.end();
///         })
///         .join()
///         .unwrap();
///         // Spans started under its context are its children.
///         let _attached = context.attach();
///         vigil::span("after", SpanKind::Tool, |_| ());
///     });
/// });
/// let call = captured.span("llm-call").unwrap();
/// assert_eq!(call.parent_span_id, Some(captured.span("job").unwrap().span_id.clone()));
/// assert_eq!(call.output["content"], "Hello");
/// assert_eq!(captured.span("after").unwrap().parent_span_id, Some(call.span_id.clone()));
/// ```
#[must_use = "the span ends as soon as it is dropped"]
pub struct DetachedSpan {
    frame: Option<Frame>,
}

impl DetachedSpan {
    /// Starts a span that is a child of the current span of this thread, or
    /// the root of a new trace if there is none.
    pub fn start(name: impl Into<SpanName>, kind: SpanKind) -> DetachedSpan {
        DetachedSpan {
            frame: context::open(name.into(), kind, Start::Child, None),
        }
    }

    /// Starts a span that is a child of `parent`'s span (or, for an empty
    /// context, of the current span of this thread).
    pub fn start_in(parent: &Context, name: impl Into<SpanName>, kind: SpanKind) -> DetachedSpan {
        let _attached = parent.attach_for(Start::Child);
        DetachedSpan::start(name, kind)
    }

    /// Starts the root span of a new trace, even when a span is current.
    pub fn start_trace(name: impl Into<SpanName>, kind: SpanKind) -> DetachedSpan {
        DetachedSpan {
            frame: context::open(name.into(), kind, Start::Trace, None),
        }
    }

    /// Whether it is being recorded: a client took it and its trace is sampled.
    pub fn is_recording(&self) -> bool {
        self.frame.as_ref().is_some_and(|f| f.sampled)
    }

    /// Its id, if it is recorded.
    pub fn span_id(&self) -> Option<SpanId> {
        self.frame.as_ref().map(|f| f.span.span_id())
    }

    /// Its trace, if it is recorded.
    pub fn trace_id(&self) -> Option<TraceId> {
        self.frame.as_ref().map(|f| f.span.trace_id())
    }

    /// Where its children attach: attach it on a thread (or in a future) to
    /// make the span current there. Updates made through
    /// [`current_span`](crate::current_span) under it reach it.
    pub fn context(&mut self) -> Context {
        match &mut self.frame {
            Some(frame) => Context::of_frame(frame),
            None => Context::default(),
        }
    }

    fn record<T: Serialize + ?Sized>(&mut self, field: Field<'_>, value: &T) {
        if let Some(frame) = &mut self.frame {
            let client = client_of(frame);
            frame.set_payload(client.as_ref(), field, value);
        }
    }

    /// Records the input (any `Serialize`; a non-object is wrapped as `{"value": ...}`).
    pub fn set_input<T: Serialize + ?Sized>(&mut self, value: &T) {
        self.record(Field::Input, value);
    }

    /// Records the output (any `Serialize`; a non-object is wrapped as `{"value": ...}`).
    pub fn set_output<T: Serialize + ?Sized>(&mut self, value: &T) {
        self.record(Field::Output, value);
    }

    /// Sets the metadata entry `key`.
    pub fn set_metadata<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        self.record(Field::Metadata(key), value);
    }

    /// Records an LLM call's tokens and their cost at the client's prices
    /// (`vigil.tokens` and `vigil.cost`, or `vigil.unpriced` for a `model`
    /// with no price), from `usage` in OpenAI's or Anthropic's names, as the
    /// integrations do for their calls. Nothing when it has no token counts.
    ///
    /// ```
    /// use serde_json::json;
    /// use vigil::{DetachedSpan, SpanKind};
    ///
    /// let captured = vigil::sink::capture(|| {
    ///     let mut call = DetachedSpan::start("chat", SpanKind::Llm);
    ///     call.record_usage(Some("gpt-4o"), &json!({ "prompt_tokens": 1000, "completion_tokens": 100 }));
    /// });
    /// let cost = &captured.span("chat").unwrap().metadata["vigil.cost"];
    /// assert!((cost["total_usd"].as_f64().unwrap() - 0.0035).abs() < 1e-9);
    /// ```
    pub fn record_usage(&mut self, model: Option<&str>, usage: &serde_json::Value) {
        let Some(frame) = &self.frame else {
            return;
        };
        let (client, trace) = (client_of(frame), frame.span.trace_id());
        let tokens = crate::llm::pricing::TokenUsage::from_usage(usage);
        crate::cost::record_call(client.as_ref(), trace, tokens, model, |key, value| {
            self.set_metadata(key, value);
        });
    }

    /// Records an event named `name` with `attributes`, now.
    pub fn log_event<T: Serialize + ?Sized>(&mut self, name: &str, attributes: &T) {
        self.record(Field::Event(name), attributes);
    }

    /// Sets the status now (otherwise it ends `ok`, or `error` when its
    /// thread is unwinding from a panic as it ends).
    pub fn set_status(&mut self, status: SpanStatus) {
        if let Some(frame) = &mut self.frame {
            frame.span.set_status(status);
            frame.status_set = true;
        }
    }

    /// Marks it failed with `message` (kept in metadata as `error`).
    pub fn record_error(&mut self, message: &dyn Display) {
        self.set_status(SpanStatus::Error);
        if self.frame.is_some() {
            self.set_metadata("error", &message.to_string());
        }
    }

    /// Renames it.
    pub fn set_name(&mut self, name: impl Into<SpanName>) {
        if let Some(frame) = &mut self.frame {
            frame.span.set_name(crate::text::name(name.into()));
        }
    }

    /// Changes its kind.
    pub fn set_kind(&mut self, kind: SpanKind) {
        if let Some(frame) = &mut self.frame {
            frame.span.set_kind(kind);
        }
    }

    /// Ends it now and hands it to its client.
    pub fn end(mut self) {
        if let Some(frame) = self.frame.take() {
            context::close(frame);
        }
    }
}

/// The client a detached span goes to: its own, or the global one.
fn client_of(frame: &Frame) -> Option<Client> {
    frame.client.clone().or_else(get_client)
}

impl Drop for DetachedSpan {
    fn drop(&mut self) {
        if let Some(frame) = self.frame.take() {
            context::close(frame);
        }
    }
}

impl fmt::Debug for DetachedSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetachedSpan")
            .field("span_id", &self.span_id())
            .field("recording", &self.is_recording())
            .finish()
    }
}
