//! Guards, closures and futures that record spans and traces.

use std::fmt::{self, Display};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use serde::Serialize;
use serde_json::Value;
use vigil_core::{Name, SpanId, SpanKind, SpanStatus, TraceId};

use crate::client::Client;
use crate::clock::now;
use crate::config::Field;
use crate::context::{self, Frame, Held, Mail, Start};
use crate::payload::to_json;

/// A span's name: a `&'static str` (no copy), a `String` or a `Cow`.
pub type SpanName = Name<String>;

/// Reaches a live span from anywhere on its thread (or in its future).
///
/// On a thread or task that reaches the span through an attached
/// [`crate::Context`] (inside [`crate::spawn`], say), payloads, metadata,
/// events and status are sent to the span, which applies them before its own
/// next update and when it ends; one arriving after the span ended, or beyond
/// 1,024 waiting, is counted in `refused_updates`. Renaming and
/// changing the kind work only where the span lives. Otherwise every method
/// does nothing when the span is not recorded, and when it has ended or
/// lives where this thread cannot reach it (another thread, a future not
/// being polled) the update is counted in `refused_updates`:
/// instrumentation never fails the program, and loses nothing unsaid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanHandle {
    id: Option<SpanId>,
}

impl SpanHandle {
    /// A handle to nothing: every method is a no-op.
    pub const NONE: SpanHandle = SpanHandle { id: None };

    pub(crate) fn new(id: Option<SpanId>) -> Self {
        SpanHandle { id }
    }

    /// The span's id, if it is being recorded.
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::span("step", vigil::SpanKind::Tool, |s| assert!(s.id().is_some()));
    /// });
    /// assert!(vigil::current_span().id().is_none(), "no span outside");
    /// # drop(captured);
    /// ```
    pub fn id(&self) -> Option<SpanId> {
        self.id
    }

    /// The span's trace, if it is being recorded here (or reached through an
    /// attached [`crate::Context`]).
    pub fn trace_id(&self) -> Option<TraceId> {
        self.with(|f| f.span.trace_id())
            .or_else(|| Some(context::remote_ids(self.id?)?.0))
    }

    /// Whether the span is live and recorded on this thread (or reached
    /// through an attached [`crate::Context`]).
    ///
    /// ```
    /// let builder = vigil::Config::builder().sample_rate(0.0);
    /// let (recording, _) = vigil::sink::capture_with(builder, || {
    ///     vigil::trace("job", |t| t.is_recording())
    /// });
    /// assert!(!recording, "sampled out");
    /// ```
    pub fn is_recording(&self) -> bool {
        self.with(|f| f.sampled)
            .or_else(|| Some(context::remote_ids(self.id?)?.1))
            .unwrap_or(false)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Frame) -> R) -> Option<R> {
        context::with_frame(self.id?, |frame, _| f(frame))
    }

    /// Runs `f` on the span if it lives on this thread; otherwise, if it is
    /// the span of an attached [`crate::Context`], sends it what `mail`
    /// makes, to be applied when it ends.
    fn update(
        &self,
        f: impl FnOnce(&mut Frame, Option<&Client>),
        mail: impl FnOnce() -> Option<Mail>,
    ) {
        let Some(id) = self.id else { return };
        if context::with_frame(id, f).is_none() && !context::post(id, mail) {
            // The span has ended, or lives where this thread cannot reach it
            // (another thread, a future not being polled): not applied.
            if let Some(client) = context::current_client() {
                client.count_refused_update();
            }
        }
    }

    /// Records the input (any `Serialize`; a non-object is wrapped as `{"value": ...}`).
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::span("search", vigil::SpanKind::Retriever, |s| {
    ///         s.set_input(&serde_json::json!({ "query": "rust" }));
    ///         s.set_output(&["rust-lang.org"]); // a non-object is stored as {"value": ...}
    ///     });
    /// });
    /// let span = captured.span("search").unwrap();
    /// assert_eq!(span.input["query"], "rust");
    /// assert_eq!(span.output["value"][0], "rust-lang.org");
    /// ```
    pub fn set_input<T: Serialize + ?Sized>(&self, value: &T) {
        self.update(
            |f, c| f.set_payload(c, Field::Input, value),
            || Some(Mail::Input(to_json(value))),
        );
    }

    /// Records the output (any `Serialize`; a non-object is wrapped as `{"value": ...}`).
    pub fn set_output<T: Serialize + ?Sized>(&self, value: &T) {
        self.update(
            |f, c| f.set_payload(c, Field::Output, value),
            || Some(Mail::Output(to_json(value))),
        );
    }

    /// Adds `key: value` to the span's metadata.
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::span("call", vigil::SpanKind::Llm, |s| s.set_metadata("temperature", &0.2));
    /// });
    /// assert_eq!(captured.span("call").unwrap().metadata["temperature"], 0.2);
    /// ```
    pub fn set_metadata<T: Serialize + ?Sized>(&self, key: &str, value: &T) {
        self.update(
            |f, c| f.set_payload(c, Field::Metadata(key), value),
            || Some(Mail::Metadata(key.to_owned(), to_json(value))),
        );
    }

    /// Records an LLM call's tokens and their cost (`vigil.tokens` and
    /// `vigil.cost`, or `vigil.unpriced` for a `model` with no price), from
    /// `usage` in OpenAI's or Anthropic's names, at the prices of the client
    /// current here, as the integrations do for their calls. Nothing when
    /// `usage` has no token counts.
    ///
    /// ```
    /// use serde_json::json;
    /// use vigil::SpanKind;
    ///
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::span("llm:claude", SpanKind::Llm, |span| {
    ///         span.record_usage(Some("claude-sonnet-4-5-20250929"), &json!({ "input_tokens": 1000, "output_tokens": 100 }));
    ///     });
    /// });
    /// let cost = &captured.span("llm:claude").unwrap().metadata["vigil.cost"];
    /// assert_eq!(cost["model"], "claude-sonnet-4-5");
    /// assert!((cost["total_usd"].as_f64().unwrap() - 0.0045).abs() < 1e-9);
    /// ```
    pub fn record_usage(&self, model: Option<&str>, usage: &serde_json::Value) {
        let Some(trace) = self.trace_id() else {
            return;
        };
        let client = context::current_client();
        let tokens = crate::llm::pricing::TokenUsage::from_usage(usage);
        crate::cost::record_call(client.as_ref(), trace, tokens, model, |key, value| {
            self.set_metadata(key, value);
        });
    }

    /// Puts the trace in a conversation: `session_id` in its metadata
    /// ([`keys::SESSION_ID`](crate::keys::SESSION_ID)). Meant for a trace's
    /// handle ([`current_trace`], a trace's guard); on a span's, it is the
    /// span's metadata.
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::trace("chat-turn", |t| {
    ///         t.set_session_id("conv-7");
    ///         t.set_user_id("user-3");
    ///         t.set_tags(&["beta", "support"]);
    ///     });
    /// });
    /// let trace = captured.trace("chat-turn").unwrap();
    /// assert_eq!(trace.metadata["session_id"], "conv-7");
    /// assert_eq!(trace.metadata["user_id"], "user-3");
    /// assert_eq!(trace.metadata["tags"][1], "support");
    /// ```
    pub fn set_session_id(&self, id: &str) {
        self.set_metadata(crate::keys::SESSION_ID, id);
    }

    /// Says whom the trace served: `user_id` in its metadata
    /// ([`keys::USER_ID`](crate::keys::USER_ID)); see [`SpanHandle::set_session_id`].
    pub fn set_user_id(&self, id: &str) {
        self.set_metadata(crate::keys::USER_ID, id);
    }

    /// Labels the trace: `tags`, an array of strings, in its metadata
    /// ([`keys::TAGS`](crate::keys::TAGS)); a later call replaces the tags.
    pub fn set_tags<S: AsRef<str>>(&self, tags: &[S]) {
        let tags: Vec<&str> = tags.iter().map(AsRef::as_ref).collect();
        self.set_metadata(crate::keys::TAGS, &tags);
    }

    /// Adds an event named `name`, stamped now, with `attributes` (an
    /// object; `()` for none).
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::span("stream", vigil::SpanKind::Llm, |s| s.add_event("first_token", &()));
    /// });
    /// assert_eq!(captured.span("stream").unwrap().events[0]["name"], "first_token");
    /// ```
    pub fn add_event<T: Serialize + ?Sized>(&self, name: &str, attributes: &T) {
        let at = now();
        self.update(
            |f, c| f.set_payload_at(c, Field::Event(name), attributes, Some(at)),
            || Some(Mail::Event(name.to_owned(), at, to_json(attributes))),
        );
    }

    /// Sets the status now (otherwise it is decided when the span ends).
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::span("check", vigil::SpanKind::Tool, |s| s.set_status(vigil::SpanStatus::Error));
    /// });
    /// assert_eq!(captured.span("check").unwrap().status, "error");
    /// ```
    pub fn set_status(&self, status: SpanStatus) {
        self.update(
            |f, _| {
                f.span.set_status(status);
                f.status_set = true;
            },
            || Some(Mail::Status(status)),
        );
    }

    /// Marks the span failed with `message` (kept in metadata as `error`).
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::span("fetch", vigil::SpanKind::Tool, |s| s.record_error(&"timed out"));
    /// });
    /// let span = captured.span("fetch").unwrap();
    /// assert_eq!((span.status.as_str(), &span.metadata["error"]), ("error", &serde_json::json!("timed out")));
    /// ```
    pub fn record_error(&self, message: &dyn Display) {
        let message = message.to_string();
        self.update(
            |f, _| {
                f.span.set_status(SpanStatus::Error);
                f.status_set = true;
                let _ = f.span.set_metadata("error", &message);
            },
            || Some(Mail::Error(message.clone())),
        );
    }

    /// Records `result`: an `Err` marks the span failed with its message.
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::span("parse", vigil::SpanKind::Tool, |s| s.record_result(&"x".parse::<u8>()));
    /// });
    /// assert_eq!(captured.span("parse").unwrap().status, "error");
    /// ```
    pub fn record_result<T, E: Display>(&self, result: &Result<T, E>) {
        if let Err(e) = result {
            self.record_error(e);
        }
    }

    /// Renames the span.
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::span("tool", vigil::SpanKind::Tool, |s| s.set_name(format!("tool:{}", "search")));
    /// });
    /// assert!(captured.span("tool:search").is_some());
    /// ```
    pub fn set_name(&self, name: impl Into<SpanName>) {
        let name = name.into();
        self.with(|f| f.span.set_name(crate::text::name(name)));
    }

    /// Changes the span's kind.
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::span("step", vigil::SpanKind::Custom, |s| s.set_kind(vigil::SpanKind::Agent));
    /// });
    /// assert_eq!(captured.span("step").unwrap().kind, "agent");
    /// ```
    pub fn set_kind(&self, kind: SpanKind) {
        self.with(|f| f.span.set_kind(kind));
    }
}

/// A span that is current until dropped, then ends and is queued.
///
/// Ends with status `error` if dropped during a panic, else `ok` unless set.
/// A span whose guard is leaked (or outlives its thread in a thread-local)
/// ends when the thread exits, with `"vigil.ended_at_thread_exit": true` in
/// its metadata (threads other than `main`, whose thread-locals the process
/// may not tear down). Not `Send`: it belongs to the thread's span stack. For async code use
/// [`InstrumentExt::in_span`].
#[must_use = "the span ends as soon as the guard is dropped"]
#[derive(Debug)]
pub struct SpanGuard {
    handle: SpanHandle,
    _not_send: PhantomData<*const ()>,
}

impl SpanGuard {
    fn start(name: SpanName, kind: SpanKind, start: Start, client: Option<&Client>) -> Self {
        let id = context::open_current(name, kind, start, client);
        SpanGuard {
            handle: SpanHandle::new(id),
            _not_send: PhantomData,
        }
    }

    /// The span's handle.
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| {
    ///     let guard = vigil::start_span("step", vigil::SpanKind::Tool);
    ///     let handle = guard.handle(); // Copy: can be kept after the guard moves
    ///     handle.set_output(&"done");
    ///     guard.end();
    /// });
    /// assert_eq!(captured.span("step").unwrap().output["value"], "done");
    /// ```
    pub fn handle(&self) -> SpanHandle {
        self.handle
    }

    /// Ends the span now (the same as dropping the guard).
    pub fn end(self) {}
}

impl std::ops::Deref for SpanGuard {
    type Target = SpanHandle;
    fn deref(&self) -> &SpanHandle {
        &self.handle
    }
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        if let Some(id) = &self.handle.id {
            context::close_current_words(context::id_words(id));
        }
    }
}

/// Starts a span as a child of the current one (or as the root of a new trace
/// when there is none); it ends when the guard drops.
///
/// ```
/// use vigil::{sink::capture, SpanKind};
///
/// let captured = capture(|| {
///     let _trace = vigil::start_trace("pipeline");
///     let search = vigil::start_span("search", SpanKind::Tool);
///     search.set_input(&serde_json::json!({"query": "rust"}));
/// });
/// assert_eq!(captured.span("search").unwrap().input["query"], "rust");
/// ```
pub fn start_span(name: impl Into<SpanName>, kind: SpanKind) -> SpanGuard {
    SpanGuard::start(name.into(), kind, Start::Child, None)
}

/// Starts a new trace (its root span, kind `chain`); it ends when the guard drops.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     let trace = vigil::start_trace("nightly-job");
///     trace.set_metadata("run", &42);
/// });
/// assert_eq!(captured.trace("nightly-job").unwrap().metadata["run"], 42);
/// ```
pub fn start_trace(name: impl Into<SpanName>) -> SpanGuard {
    SpanGuard::start(name.into(), SpanKind::Chain, Start::Trace, None)
}

/// Runs `f` inside a new span; returns what `f` returns.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     let n = vigil::span("count", vigil::SpanKind::Tool, |s| {
///         s.set_input(&"three words here");
///         3
///     });
///     assert_eq!(n, 3);
/// });
/// assert_eq!(captured.span("count").unwrap().status, "ok");
/// ```
pub fn span<R>(name: impl Into<SpanName>, kind: SpanKind, f: impl FnOnce(&SpanHandle) -> R) -> R {
    let guard = start_span(name, kind);
    f(&guard)
}

/// Runs `f` inside a new span, marking it failed if `f` returns `Err`.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     let parsed: Result<u8, _> = vigil::try_span("parse", vigil::SpanKind::Tool, |_| "300".parse::<u8>());
///     assert!(parsed.is_err());
/// });
/// let span = captured.span("parse").unwrap();
/// assert_eq!(span.status, "error");
/// assert_eq!(span.metadata["error"], "number too large to fit in target type");
/// ```
pub fn try_span<T, E: Display>(
    name: impl Into<SpanName>,
    kind: SpanKind,
    f: impl FnOnce(&SpanHandle) -> Result<T, E>,
) -> Result<T, E> {
    let guard = start_span(name, kind);
    let result = f(&guard);
    guard.record_result(&result);
    result
}

/// Runs `f` inside a new trace; returns what `f` returns.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     vigil::trace("answer-question", |t| {
///         t.set_input(&serde_json::json!({ "question": "What is Rust?" }));
///         vigil::span("retrieve", vigil::SpanKind::Retriever, |_| ());
///     });
/// });
/// let trace = captured.trace("answer-question").unwrap();
/// assert_eq!((trace.spans.len(), trace.status.as_deref()), (2, Some("ok")));
/// ```
pub fn trace<R>(name: impl Into<SpanName>, f: impl FnOnce(&SpanHandle) -> R) -> R {
    let guard = start_trace(name);
    f(&guard)
}

/// Runs `f` inside a new trace, marking it failed if `f` returns `Err`.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     let _ = vigil::try_trace("job", |_| Err::<(), _>("no input"));
/// });
/// assert_eq!(captured.trace("job").unwrap().status.as_deref(), Some("error"));
/// ```
pub fn try_trace<T, E: Display>(
    name: impl Into<SpanName>,
    f: impl FnOnce(&SpanHandle) -> Result<T, E>,
) -> Result<T, E> {
    let guard = start_trace(name);
    let result = f(&guard);
    guard.record_result(&result);
    result
}

/// Starts a trace on `client` with `metadata` (an object, or `()`), as the
/// Python SDK's `trace_context`; the trace ends when the guard drops, with
/// status `error` if that happens during a panic.
///
/// ```
/// let config = vigil::Config::builder().transport(vigil::sink::NullTransport::default).build().unwrap();
/// let client = vigil::Client::new(config).unwrap();
/// {
///     let trace = vigil::trace_context(&client, "pipeline", &serde_json::json!({ "version": "1.0" }));
///     trace.set_session_id("conv-7");
///     vigil::span("step", vigil::SpanKind::Tool, |_| ()); // a child, sent to `client`
/// }
/// assert_eq!(client.shutdown().stats.spans_delivered, 2);
/// ```
pub fn trace_context<M: Serialize + ?Sized>(
    client: &Client,
    name: impl Into<SpanName>,
    metadata: &M,
) -> SpanGuard {
    let guard = SpanGuard::start(name.into(), SpanKind::Chain, Start::Trace, Some(client));
    if let Ok((Value::Object(map), _)) = to_json(metadata) {
        for (k, v) in map {
            guard.set_metadata(&k, &v);
        }
    }
    guard
}

/// [`trace_context`] around a closure; an `Err` result marks the trace failed.
///
/// ```
/// let config = vigil::Config::builder().transport(vigil::sink::NullTransport::default).build().unwrap();
/// let client = vigil::Client::new(config).unwrap();
/// let answer = vigil::with_trace_context(&client, "pipeline", &(), |_| Ok::<_, std::io::Error>(42));
/// assert_eq!(answer.unwrap(), 42);
/// ```
pub fn with_trace_context<M, T, E>(
    client: &Client,
    name: impl Into<SpanName>,
    metadata: &M,
    f: impl FnOnce(&SpanHandle) -> Result<T, E>,
) -> Result<T, E>
where
    M: Serialize + ?Sized,
    E: Display,
{
    let guard = trace_context(client, name, metadata);
    let result = f(&guard);
    guard.record_result(&result);
    result
}

/// The innermost span of this thread (or of the future being polled), or
/// the span of the [`crate::Context`] attached here.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     vigil::span("outer", vigil::SpanKind::Agent, |_| {
///         vigil::current_span().set_metadata("step", &1); // on "outer"
///     });
/// });
/// assert_eq!(captured.span("outer").unwrap().metadata["step"], 1);
/// ```
pub fn current_span() -> SpanHandle {
    SpanHandle::new(context::current_id())
}

/// The root span of the current trace, which holds the trace's name,
/// metadata and status; a no-op handle if the root lives on another thread.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     vigil::trace("chat-turn", |_| {
///         vigil::span("llm", vigil::SpanKind::Llm, |_| {
///             vigil::current_trace().set_user_id("user-3"); // on the trace, from a child
///         });
///     });
/// });
/// assert_eq!(captured.trace("chat-turn").unwrap().metadata["user_id"], "user-3");
/// ```
pub fn current_trace() -> SpanHandle {
    SpanHandle::new(context::current_root_id())
}

pin_project! {
    /// A future that records a span around every poll of the future it wraps;
    /// made by [`InstrumentExt::in_span`].
    ///
    /// ```
    /// use vigil::{InstrumentExt, SpanKind};
    ///
    /// let captured = vigil::sink::capture(|| {
    ///     let task = async { 1 }.in_span("task", SpanKind::Agent);
    ///     drop(task); // a future dropped unpolled still ends its span
    /// });
    /// assert_eq!(captured.span("task").unwrap().kind, "agent");
    /// ```
    ///
    /// Spans the wrapped future leaves open between polls (a [`SpanGuard`] held
    /// across an `.await`) are kept with it, not on the thread, so other tasks
    /// polled on the thread meanwhile do not see them as current.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Instrumented<F> {
        // Dropped after `PinnedDrop::drop` has put the span back on the
        // stack, so inside it; fields drop in order, so before `span`.
        #[pin]
        future: F,
        span: FutureSpan,
    }

    impl<F> PinnedDrop for Instrumented<F> {
        // Back on the stack while the future drops, so the guards it holds
        // end their own spans, as children of this one; `span`, dropped
        // after the future (even if that panics), then ends it.
        fn drop(this: Pin<&mut Self>) {
            this.project().span.enter_for_drop();
        }
    }
}

/// The span of an [`Instrumented`] future, kept with it between polls.
struct FutureSpan {
    /// Off the stack between polls; `None` once ended.
    frame: Option<Frame>,
    /// What the future's last poll left open above its span.
    held: Held,
    /// The span put back on the stack while the future drops: it ends when
    /// this drops, after the future.
    dropping: Option<SpanId>,
}

impl FutureSpan {
    fn id(&self) -> Option<SpanId> {
        self.frame.as_ref().map(|f| f.span.span_id())
    }

    /// Puts the span, if it has not ended, back on the stack for the
    /// future's drop.
    fn enter_for_drop(&mut self) {
        self.dropping = self.id();
        if let Some(frame) = self.frame.take() {
            context::push_with_held(frame, &mut self.held);
        }
    }
}

impl Drop for FutureSpan {
    /// Ends the span the future's drop ran in, so it does not stay current
    /// on this thread.
    fn drop(&mut self) {
        if let Some((mut frame, held)) = self.dropping.and_then(context::pop_with_held) {
            drop(held);
            // Dropped before completion: the task was cancelled.
            let _ = frame.span.set_metadata("vigil.cancelled", &true);
            context::close(frame);
        }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let span = this.span;
        let id = span.id();
        if let Some(frame) = span.frame.take() {
            context::push_with_held(frame, &mut span.held);
        }
        // Put the span (and what is open above it) back even if the future
        // panics.
        struct Restore<'a>(&'a mut FutureSpan, Option<SpanId>);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let Some((mut frame, held)) = self.1.and_then(context::pop_with_held) else {
                    return;
                };
                // The poll panicked: whenever the future is dropped (the
                // executor may catch the panic and drop it later), the span
                // ends failed.
                if std::thread::panicking() && !frame.status_set && !frame.started_panicking {
                    let _ = frame
                        .span
                        .set_metadata("error", &crate::panic::description());
                    frame.span.set_status(SpanStatus::Error);
                    frame.status_set = true;
                }
                self.0.frame = Some(frame);
                self.0.held = held;
            }
        }
        let restore = Restore(&mut *span, id);
        let poll = this.future.poll(cx);
        drop(restore);
        if poll.is_ready() {
            if let Some(frame) = span.frame.take() {
                context::close(frame);
            }
            // A guard that outlives the future (returned in its output)
            // stays current here until it drops, as outside a future.
            context::push_held(std::mem::take(&mut span.held));
        }
        poll
    }
}

impl<F> Instrumented<F> {
    /// The span's handle (usable inside the future while it is polled).
    pub fn handle(&self) -> SpanHandle {
        SpanHandle::new(self.span.id())
    }
}

/// The wrapped future, and the span's id (`None` when not recorded, or
/// once ended).
///
/// ```
/// use vigil::{InstrumentExt, SpanKind};
///
/// let task = std::future::ready(1).in_span("task", SpanKind::Tool);
/// assert_eq!(format!("{task:?}"), "Instrumented { future: Ready(Some(1)), span_id: None }");
/// ```
impl<F: fmt::Debug> fmt::Debug for Instrumented<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumented")
            .field("future", &self.future)
            .field("span_id", &self.span.id())
            .finish()
    }
}

pub(crate) fn instrument<F>(
    future: F,
    name: SpanName,
    kind: SpanKind,
    start: Start,
) -> Instrumented<F> {
    Instrumented {
        span: FutureSpan {
            frame: context::open(name, kind, start, None),
            held: Held::default(),
            dropping: None,
        },
        future,
    }
}

/// Runs futures inside spans, with no runtime dependency.
pub trait InstrumentExt: Future + Sized {
    /// Records this future as a span, child of the span current now. The span
    /// is current during every poll, on whichever thread polls it, and ends
    /// when the future completes (or is dropped).
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct Noop;
    /// #     impl std::task::Wake for Noop { fn wake(self: std::sync::Arc<Self>) {} }
    /// #     let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
    /// # }
    /// use vigil::{InstrumentExt, SpanKind};
    ///
    /// let captured = vigil::sink::capture(|| {
    ///     block_on(async {
    ///         let docs = async { vec!["rust-lang.org"] }.in_span("retrieve", SpanKind::Retriever).await;
    ///         assert_eq!(docs.len(), 1);
    ///     })
    /// });
    /// assert_eq!(captured.span("retrieve").unwrap().kind, "retriever");
    /// ```
    fn in_span(self, name: impl Into<SpanName>, kind: SpanKind) -> Instrumented<Self> {
        instrument(self, name.into(), kind, Start::Child)
    }

    /// Like [`InstrumentExt::in_span`], as the root of a new trace.
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct Noop;
    /// #     impl std::task::Wake for Noop { fn wake(self: std::sync::Arc<Self>) {} }
    /// #     let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
    /// # }
    /// use vigil::InstrumentExt;
    ///
    /// let captured = vigil::sink::capture(|| block_on(async { 1 }.in_trace("job")));
    /// assert_eq!(captured.trace("job").unwrap().status.as_deref(), Some("ok"));
    /// ```
    fn in_trace(self, name: impl Into<SpanName>) -> Instrumented<Self> {
        instrument(self, name.into(), SpanKind::Chain, Start::Trace)
    }

    /// Polls this future inside `context` (see [`crate::Context`]).
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct Noop;
    /// #     impl std::task::Wake for Noop { fn wake(self: std::sync::Arc<Self>) {} }
    /// #     let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
    /// # }
    /// use vigil::{Context, InstrumentExt, SpanKind};
    ///
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::trace("parent", |_| {
    ///         let task = async { vigil::span("child", SpanKind::Tool, |_| ()) };
    ///         let task = task.with_context(Context::current());
    ///         std::thread::spawn(move || block_on(task)).join().unwrap();
    ///     })
    /// });
    /// let parent = captured.span("parent").unwrap();
    /// assert_eq!(captured.span("child").unwrap().parent_span_id, Some(parent.span_id.clone()));
    /// ```
    fn with_context(self, context: crate::Context) -> WithContext<Self> {
        WithContext {
            future: self,
            context,
        }
    }
}

impl<F: Future> InstrumentExt for F {}

pin_project! {
    /// A future polled inside a [`crate::Context`]; see [`InstrumentExt::with_context`].
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct WithContext<F> {
        #[pin]
        future: F,
        context: crate::Context,
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _attached = this.context.attach();
        this.future.poll(cx)
    }
}

/// The wrapped future and the context.
///
/// ```
/// use vigil::InstrumentExt;
///
/// let task = std::future::ready(1).with_context(vigil::Context::current());
/// assert_eq!(format!("{task:?}"), "WithContext { future: Ready(Some(1)), context: Context(empty) }");
/// ```
impl<F: fmt::Debug> fmt::Debug for WithContext<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithContext")
            .field("future", &self.future)
            .field("context", &self.context)
            .finish()
    }
}
