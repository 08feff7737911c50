//! Transports for people and tests: in-memory capture, JSON lines, console trees.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use vigil_core::{transport::RequestKind, Outcome, Request, Transport};

use crate::client::{Client, ShutdownReport};
use crate::config::{Config, ConfigBuilder};
pub use crate::console::{render_tree, CapturedSpan, ConsoleTransport};
use crate::sync::lock;

/// Accepts every request and keeps nothing.
///
/// ```
/// let config = vigil::Config::builder()
///     .transport(vigil::sink::NullTransport::default)
///     .build()
///     .unwrap();
/// let client = vigil::Client::new(config).unwrap();
/// client.scope(|| vigil::trace("benchmark-run", |_| ()));
/// assert_eq!(client.shutdown().stats.spans_delivered, 1);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NullTransport;

impl Transport for NullTransport {
    fn send(&mut self, _: &Request<'_>) -> Outcome {
        Outcome::Delivered
    }
}

/// One request as a transport received it.
#[derive(Clone, Debug)]
pub struct SentRequest {
    /// Ingest or PATCH.
    pub kind: RequestKind,
    /// The trace it is about.
    pub trace_id: String,
    /// The JSON body.
    pub body: Value,
}

/// Keeps every request in memory, shared with the [`MemoryStore`] it came with.
///
/// ```
/// use vigil::sink::MemoryTransport;
///
/// let (transport, store) = MemoryTransport::new();
/// let config = vigil::Config::builder().transport(move || transport.clone()).build().unwrap();
/// let client = vigil::Client::new(config).unwrap();
/// client.scope(|| vigil::trace("job", |_| ()));
/// client.shutdown();
/// assert_eq!(store.requests().len(), 2, "the ingest and the trace's status");
/// assert_eq!(store.captured().span("job").unwrap().status, "ok");
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryTransport {
    store: MemoryStore,
}

/// What a [`MemoryTransport`] received.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    requests: Arc<Mutex<Vec<SentRequest>>>,
}

impl MemoryTransport {
    /// A transport and the store it writes to.
    pub fn new() -> (MemoryTransport, MemoryStore) {
        let t = MemoryTransport::default();
        let store = t.store.clone();
        (t, store)
    }
}

impl Transport for MemoryTransport {
    fn send(&mut self, r: &Request<'_>) -> Outcome {
        match serde_json::from_slice(r.body) {
            Ok(body) => {
                lock(&self.store.requests).push(SentRequest {
                    kind: r.kind,
                    trace_id: r.trace_id.to_string(),
                    body,
                });
                Outcome::Delivered
            }
            Err(_) => Outcome::Rejected,
        }
    }
}

impl MemoryStore {
    /// Every request so far.
    pub fn requests(&self) -> Vec<SentRequest> {
        lock(&self.requests).clone()
    }

    /// The traces and spans received so far, as the server would store them.
    pub fn captured(&self) -> Captured {
        Captured::from_requests(&lock(&self.requests))
    }
}

/// A trace as it was sent: its spans, and the name, metadata and status that
/// its requests gave it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CapturedTrace {
    /// 32 hex digits.
    pub trace_id: String,
    /// From `trace_name`.
    pub name: Option<String>,
    /// `trace_metadata`, merged with PATCHed metadata.
    pub metadata: serde_json::Map<String, Value>,
    /// The PATCHed status.
    pub status: Option<String>,
    /// Every span, in the order sent.
    pub spans: Vec<CapturedSpan>,
}

/// Everything a [`capture`] saw.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    /// Traces in the order their first request was sent.
    pub traces: Vec<CapturedTrace>,
    /// Requests sent.
    pub requests: usize,
    /// The client's shutdown report, for [`capture`].
    pub report: Option<ShutdownReport>,
}

impl Captured {
    fn from_requests(requests: &[SentRequest]) -> Captured {
        let mut traces: Vec<CapturedTrace> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for r in requests {
            let at = *index.entry(r.trace_id.clone()).or_insert_with(|| {
                traces.push(CapturedTrace {
                    trace_id: r.trace_id.clone(),
                    ..CapturedTrace::default()
                });
                traces.len() - 1
            });
            let trace = &mut traces[at];
            match r.kind {
                RequestKind::Ingest => {
                    if let Some(name) = r.body.get("trace_name").and_then(Value::as_str) {
                        trace.name = Some(name.to_owned());
                    }
                    if let Some(Value::Object(m)) = r.body.get("trace_metadata") {
                        for (k, v) in m {
                            trace.metadata.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                    let spans = r.body.get("spans").and_then(Value::as_array);
                    trace.spans.extend(
                        spans
                            .into_iter()
                            .flatten()
                            .filter_map(CapturedSpan::from_json),
                    );
                }
                RequestKind::Patch => {
                    if let Some(status) = r.body.get("status").and_then(Value::as_str) {
                        trace.status = Some(status.to_owned());
                    }
                    if let Some(Value::Object(m)) = r.body.get("metadata") {
                        trace.metadata.extend(m.clone());
                    }
                }
            }
        }
        Captured {
            traces,
            requests: requests.len(),
            report: None,
        }
    }

    /// Every span of every trace.
    pub fn spans(&self) -> impl Iterator<Item = &CapturedSpan> {
        self.traces.iter().flat_map(|t| t.spans.iter())
    }

    /// The first span named `name`.
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| vigil::trace("job", |_| ()));
    /// assert_eq!(captured.span("job").unwrap().kind, "chain");
    /// assert!(captured.span("nothing").is_none());
    /// ```
    pub fn span(&self, name: &str) -> Option<&CapturedSpan> {
        self.spans().find(|s| s.name == name)
    }

    /// The first trace named `name`.
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::trace("job", |t| t.set_metadata("run", &7));
    /// });
    /// let trace = captured.trace("job").unwrap();
    /// assert_eq!((trace.status.as_deref(), &trace.metadata["run"]), (Some("ok"), &serde_json::json!(7)));
    /// ```
    pub fn trace(&self, name: &str) -> Option<&CapturedTrace> {
        self.traces.iter().find(|t| t.name.as_deref() == Some(name))
    }
}

/// Runs `f` with a private in-memory client (no global state touched, so tests
/// may run in parallel) and returns every trace and span it recorded.
///
/// ```
/// use vigil::{sink::capture, SpanKind};
///
/// let captured = capture(|| {
///     vigil::trace("answer", |_| {
///         vigil::log_llm_call("gpt-4", &serde_json::json!({"prompt": "Hi"}), &"Hello");
///     })
/// });
/// let llm = captured.span("llm:gpt-4").unwrap();
/// assert_eq!(llm.kind, "llm");
/// assert_eq!(llm.output["value"], "Hello");
/// assert_eq!(captured.trace("answer").unwrap().status.as_deref(), Some("ok"));
/// ```
pub fn capture<R>(f: impl FnOnce() -> R) -> Captured {
    capture_with(Config::builder(), f).1
}

/// [`capture`] with options (batch size, sampling, masking...), also returning
/// what `f` returned.
///
/// ```
/// let builder = vigil::Config::builder().capture_content(false);
/// let (answer, captured) = vigil::sink::capture_with(builder, || {
///     vigil::span("llm", vigil::SpanKind::Llm, |s| {
///         s.set_input(&"a private prompt");
///         42
///     })
/// });
/// assert_eq!(answer, 42);
/// assert!(captured.span("llm").unwrap().input.is_null(), "content not captured");
/// ```
pub fn capture_with<R>(builder: ConfigBuilder, f: impl FnOnce() -> R) -> (R, Captured) {
    let (client, store) = capture_client(builder);
    let out = client.scope(f);
    (out, finish_capture(&client, &store))
}

/// [`capture`] for async code, in any executor: what `future` records
/// while it is polled (on whatever thread polls it) is captured.
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
/// use vigil::{sink::capture_async, InstrumentExt, SpanKind};
///
/// let captured = block_on(capture_async(async {
///     async { 42 }.in_span("answer", SpanKind::Agent).await
/// }));
/// assert!(captured.span("answer").is_some());
/// ```
///
/// When the future is done, the spans are flushed with a short blocking
/// wait (as [`capture`] does), which is fine in a test.
pub async fn capture_async<F: Future>(future: F) -> Captured {
    capture_async_with(Config::builder(), future).await.1
}

/// [`capture_async`] with options, also returning the future's output.
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
/// let builder = vigil::Config::builder().sample_rate(1.0);
/// let (n, captured) = block_on(vigil::sink::capture_async_with(builder, async {
///     vigil::trace("job", |_| 3)
/// }));
/// assert_eq!(n, 3);
/// assert!(captured.trace("job").is_some());
/// ```
pub async fn capture_async_with<F: Future>(
    builder: ConfigBuilder,
    future: F,
) -> (F::Output, Captured) {
    let (client, store) = capture_client(builder);
    let mut future = std::pin::pin!(future);
    let out = std::future::poll_fn(|cx| client.scope(|| future.as_mut().poll(cx))).await;
    (out, finish_capture(&client, &store))
}

fn capture_client(builder: ConfigBuilder) -> (Client, MemoryStore) {
    let (transport, store) = MemoryTransport::new();
    let config = builder
        .flush_interval_ms(10)
        .transport(move || transport.clone())
        .build();
    match config.and_then(Client::new) {
        Ok(c) => (c, store),
        Err(e) => panic!("capture: invalid configuration: {e}"),
    }
}

fn finish_capture(client: &Client, store: &MemoryStore) -> Captured {
    let report = client.shutdown_timeout(Duration::from_secs(60));
    let mut captured = store.captured();
    captured.report = Some(report);
    captured
}

/// Appends each ingest request's body as one line of JSON to a file.
///
/// ```
/// let path = std::env::temp_dir().join(format!("vigil-doc-{}.jsonl", std::process::id()));
/// let p = path.clone();
/// let config = vigil::Config::builder()
///     .transport(move || vigil::sink::JsonLinesTransport::create(&p).unwrap())
///     .build()
///     .unwrap();
/// let client = vigil::Client::new(config).unwrap();
/// client.scope(|| vigil::trace("job", |_| ()));
/// client.shutdown();
/// let line = std::fs::read_to_string(&path).unwrap();
/// assert!(line.contains("\"trace_name\":\"job\""));
/// # std::fs::remove_file(path).unwrap();
/// ```
pub struct JsonLinesTransport {
    out: BufWriter<File>,
}

impl std::fmt::Debug for JsonLinesTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesTransport").finish_non_exhaustive()
    }
}

impl JsonLinesTransport {
    /// Appends to (or creates) the file at `path`.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = File::options().create(true).append(true).open(path)?;
        Ok(JsonLinesTransport {
            out: BufWriter::new(file),
        })
    }
}

impl Transport for JsonLinesTransport {
    fn send(&mut self, r: &Request<'_>) -> Outcome {
        if r.kind != RequestKind::Ingest {
            return Outcome::Delivered;
        }
        let written = self
            .out
            .write_all(r.body)
            .and_then(|()| self.out.write_all(b"\n"))
            .and_then(|()| self.out.flush());
        match written {
            Ok(()) => Outcome::Delivered,
            // Part of the line may be in the file: a retry would write the
            // body again after it, so the request is given up (and counted).
            Err(_) => Outcome::Rejected,
        }
    }
}
