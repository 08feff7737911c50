//! Transports for people and tests: in-memory capture, JSON lines, console trees.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use vigil_core::{Outcome, Request, RequestKind, Transport};

use crate::client::{lock, Client, ShutdownReport};
use crate::config::Config;
use crate::context;

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

/// A span as it was sent.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     vigil::trace("job", |_| vigil::span("step", vigil::SpanKind::Tool, |_| ()));
/// });
/// let step = captured.span("step").unwrap();
/// assert_eq!((step.kind.as_str(), step.status.as_str()), ("tool", "ok"));
/// assert_eq!(step.parent_span_id, Some(captured.span("job").unwrap().span_id.clone()));
/// assert!(step.duration() < std::time::Duration::from_secs(1));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CapturedSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 32 hex digits.
    pub span_id: String,
    /// The parent's id; `None` for a trace's root span.
    pub parent_span_id: Option<String>,
    /// Name.
    pub name: String,
    /// Kind (`llm`, `tool`, ...).
    pub kind: String,
    /// Status (`ok`, `error`, `unset`).
    pub status: String,
    /// Input object, or `null`.
    pub input: Value,
    /// Output object, or `null`.
    pub output: Value,
    /// Metadata object.
    pub metadata: Value,
    /// Events (`name`, `timestamp`, `attributes`).
    pub events: Vec<Value>,
    /// RFC 3339 start time.
    pub start_time: String,
    /// RFC 3339 end time.
    pub end_time: Option<String>,
}

impl CapturedSpan {
    fn from_json(v: &Value) -> Option<CapturedSpan> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(CapturedSpan {
            trace_id: s("trace_id")?,
            span_id: s("span_id")?,
            parent_span_id: s("parent_span_id"),
            name: s("name")?,
            kind: s("kind")?,
            status: s("status")?,
            input: v.get("input").cloned().unwrap_or(Value::Null),
            output: v.get("output").cloned().unwrap_or(Value::Null),
            metadata: v.get("metadata").cloned().unwrap_or(Value::Null),
            events: v
                .get("events")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            start_time: s("start_time")?,
            end_time: s("end_time"),
        })
    }

    /// Duration from start to end (zero if it has not ended).
    pub fn duration(&self) -> Duration {
        let start = parse_rfc3339_micros(&self.start_time);
        let end = self.end_time.as_deref().and_then(parse_rfc3339_micros);
        match (start, end) {
            (Some(s), Some(e)) if e >= s => Duration::from_micros(e - s),
            _ => Duration::ZERO,
        }
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
pub fn capture_with<R>(builder: crate::ConfigBuilder, f: impl FnOnce() -> R) -> (R, Captured) {
    let (client, store) = capture_client(builder);
    let out = context::with_scoped_client(&client, f);
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
    builder: crate::ConfigBuilder,
    future: F,
) -> (F::Output, Captured) {
    let (client, store) = capture_client(builder);
    let mut future = std::pin::pin!(future);
    let out = std::future::poll_fn(|cx| {
        context::with_scoped_client(&client, || future.as_mut().poll(cx))
    })
    .await;
    (out, finish_capture(&client, &store))
}

fn capture_client(builder: crate::ConfigBuilder) -> (Client, MemoryStore) {
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

/// Traces the console holds while waiting for their root span; past this,
/// the oldest is printed as it is.
const MAX_PENDING_TRACES: usize = 1000;

/// Prints each finished trace as an indented tree: name, kind, duration,
/// status (with the error of a failed span), and a short view of input,
/// output, metadata and event names.
///
/// ```
/// let config = vigil::Config::builder()
///     .transport(vigil::sink::ConsoleTransport::stderr)
///     .build()
///     .unwrap();
/// let client = vigil::Client::new(config).unwrap();
/// client.scope(|| vigil::trace("job", |_| vigil::span("step", vigil::SpanKind::Tool, |_| ())));
/// client.shutdown();
/// // stderr:
/// // job [chain] 41µs ok
/// // └─ step [tool] 3µs ok
/// ```
pub struct ConsoleTransport {
    out: Box<dyn Write + Send>,
    pending: HashMap<String, Vec<CapturedSpan>>,
    /// Trace ids in `pending`, oldest first.
    arrival: std::collections::VecDeque<String>,
}

impl ConsoleTransport {
    /// Prints to standard error.
    pub fn stderr() -> Self {
        Self::new(Box::new(io::stderr()))
    }

    /// Prints to standard output.
    pub fn stdout() -> Self {
        Self::new(Box::new(io::stdout()))
    }

    /// Prints to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        ConsoleTransport {
            out,
            pending: HashMap::new(),
            arrival: std::collections::VecDeque::new(),
        }
    }
}

impl Transport for ConsoleTransport {
    fn send(&mut self, r: &Request<'_>) -> Outcome {
        if r.kind != RequestKind::Ingest {
            return Outcome::Delivered;
        }
        let Ok(body) = serde_json::from_slice::<Value>(r.body) else {
            return Outcome::Rejected;
        };
        let spans = body.get("spans").and_then(Value::as_array);
        let spans: Vec<CapturedSpan> = spans
            .into_iter()
            .flatten()
            .filter_map(CapturedSpan::from_json)
            .collect();
        let trace_id = r.trace_id.to_string();
        let has_root = spans.iter().any(|s| s.parent_span_id.is_none());
        if !self.pending.contains_key(&trace_id) {
            self.arrival.push_back(trace_id.clone());
        }
        self.pending
            .entry(trace_id.clone())
            .or_default()
            .extend(spans);
        if has_root {
            self.print(&trace_id);
        }
        // A root that never comes (dropped, or a guard leaked) must not make
        // the console hold spans forever.
        while self.pending.len() > MAX_PENDING_TRACES {
            match self.arrival.pop_front() {
                Some(oldest) => self.print(&oldest),
                None => break,
            }
        }
        Outcome::Delivered
    }
}

impl ConsoleTransport {
    fn print(&mut self, trace_id: &str) {
        let Some(spans) = self.pending.remove(trace_id) else {
            return;
        };
        self.arrival.retain(|t| t != trace_id);
        let _ = self.out.write_all(render_tree(&spans).as_bytes());
        let _ = self.out.flush();
    }
}

/// The tree view of one trace's spans.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     vigil::trace("job", |_| vigil::span("step", vigil::SpanKind::Tool, |_| ()));
/// });
/// let spans: Vec<_> = captured.spans().cloned().collect();
/// let tree = vigil::sink::render_tree(&spans);
/// assert!(tree.starts_with("job [chain] "));
/// assert!(tree.lines().nth(1).unwrap().starts_with("└─ step [tool] "));
/// ```
pub fn render_tree(spans: &[CapturedSpan]) -> String {
    let mut out = String::new();
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<Option<&str>, Vec<&CapturedSpan>> = HashMap::new();
    for s in spans {
        // Spans whose parent is missing are shown at the top level.
        let parent = s.parent_span_id.as_deref().filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(s);
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| a.start_time.cmp(&b.start_time));
    }
    fn walk(
        out: &mut String,
        children: &HashMap<Option<&str>, Vec<&CapturedSpan>>,
        parent: Option<&str>,
        prefix: &str,
        top: bool,
    ) {
        let Some(list) = children.get(&parent) else {
            return;
        };
        for (i, s) in list.iter().enumerate() {
            let last = i + 1 == list.len();
            let (branch, next) = match (top, last) {
                (true, _) => ("", String::new()),
                (false, true) => ("└─ ", format!("{prefix}   ")),
                (false, false) => ("├─ ", format!("{prefix}│  ")),
            };
            let _ = write!(
                out,
                "{prefix}{branch}{} [{}] {} {}",
                s.name,
                s.kind,
                format_duration(s.duration()),
                s.status
            );
            if let Some(error) = error_message(s) {
                let _ = write!(out, ": {}", shorten(&error, 80));
            }
            for (label, v) in [("in", &s.input), ("out", &s.output)] {
                if !v.is_null() {
                    let _ = write!(out, "  {label}={}", short(v));
                }
            }
            if let Some(usage) = s.output.get("usage").filter(|u| u.is_object()) {
                let _ = write!(out, "  usage={usage}");
            }
            // The error is shown after the status already.
            let meta: serde_json::Map<String, Value> = s
                .metadata
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.as_str() != "error")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !meta.is_empty() {
                let _ = write!(out, "  meta={}", short(&Value::Object(meta)));
            }
            if !s.events.is_empty() {
                let names: Vec<String> = s
                    .events
                    .iter()
                    .take(3)
                    .map(|e| shorten(e.get("name").and_then(Value::as_str).unwrap_or("?"), 24))
                    .collect();
                let more = s.events.len().saturating_sub(names.len());
                let more = if more > 0 {
                    format!(" +{more}")
                } else {
                    String::new()
                };
                let _ = write!(out, "  events=[{}{more}]", names.join(", "));
            }
            out.push('\n');
            walk(out, children, Some(&s.span_id), &next, false);
        }
    }
    walk(&mut out, &children, None, "", true);
    out
}

fn short(v: &Value) -> String {
    shorten(&v.to_string(), 60)
}

/// `text` cut to `chars` characters, with `…` when cut.
fn shorten(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Why a failed span failed: its `error` metadata, or its output's `error`.
fn error_message(s: &CapturedSpan) -> Option<String> {
    if s.status != "error" {
        return None;
    }
    let error = s.metadata.get("error").or_else(|| s.output.get("error"))?;
    Some(match error {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    })
}

fn format_duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros >= 1_000_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else if micros >= 1_000 {
        format!("{:.1}ms", micros as f64 / 1000.0)
    } else {
        format!("{micros}µs")
    }
}

/// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn parse_rfc3339_micros(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let secs = num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?;
    let frac = s.get(20..s.len() - 1).unwrap_or("");
    let micros = format!("{frac:0<6}").get(..6)?.parse::<u64>().ok()?;
    // Days from civil (Howard Hinnant).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + secs) * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sdk_timestamp_form() {
        let t = vigil_core::Timestamp::from_unix_nanos(1_795_514_400_123_456_000);
        assert_eq!(
            parse_rfc3339_micros(&t.to_string()),
            Some(1_795_514_400_123_456)
        );
    }
}
