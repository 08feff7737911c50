//! A Vigil server in-process, for tests and examples.
//!
//! Real HTTP/1.1 (keep-alive, `Content-Length` bodies) on `127.0.0.1` with an
//! ephemeral port, implementing the ingest contract exactly as the real
//! server behaves, quirks included:
//!
//! - `POST /v1/traces` files **every** span under the first span's trace id;
//!   `trace_metadata` is kept only from the request that creates the trace;
//! - a duplicate span id fails the whole request with `500`, nothing stored;
//! - `PATCH /v1/traces/{id}` merges metadata and sets status, `404` before
//!   the trace has a span;
//! - `422` with a `detail` naming the field for anything invalid, `400` for
//!   malformed JSON or a gzip body, `401` for a missing or wrong key;
//! - a token bucket per client IP answering `429` with `Retry-After`.
//!
//! - the rate limit counts every request, `/health` and unauthenticated
//!   ones included; reads (`GET`) need no key.
//!
//! Faults can be injected: failing statuses, failing `PATCH`es (a number of
//! them, or a share at random), latency, a black hole, a connection closed
//! mid-response or right after an answer, a commit followed by a timeout,
//! and going down and coming back on the same port.
//!
//! # Features
//!
//! - `otlp`: `otlp::OtlpReceiver`, a loopback OTLP/HTTP trace receiver
//!   that decodes with the generated OTLP types.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

pub mod llm;
#[cfg(feature = "otlp")]
pub mod otlp;

const KINDS: [&str; 6] = ["llm", "tool", "chain", "retriever", "agent", "custom"];
const STATUSES: [&str; 3] = ["ok", "error", "unset"];

/// A trace as the server stores it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredTrace {
    /// The id spans were filed under.
    pub trace_id: String,
    /// `trace_name`, if any request gave one.
    pub name: Option<String>,
    /// `trace_metadata` of the creating request, merged with PATCHes.
    pub metadata: Map<String, Value>,
    /// Set by PATCH.
    pub status: Option<String>,
    /// Spans as received, in arrival order.
    pub spans: Vec<Value>,
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct RequestLog {
    /// `GET`, `POST`, `PATCH`.
    pub method: String,
    /// The path.
    pub path: String,
    /// The status answered (0 when no answer was sent).
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
    /// Body bytes.
    pub body_len: usize,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// Index of the connection it came on (keep-alive shows as reuse).
    pub connection: u64,
}

#[derive(Default)]
struct Faults {
    fail_next: VecDeque<(u16, Option<u64>)>,
    latency: Duration,
    blackhole: bool,
    close_mid_response: usize,
    close_after_answer: usize,
    commit_then_sleep: VecDeque<Duration>,
    fail_patches: VecDeque<u16>,
    /// Share of PATCHes failed at random, with the status, and the generator.
    patch_failure: Option<(f64, u16)>,
    rng: u64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct RateLimit {
    capacity: f64,
    per_second: f64,
}

/// A trace in the store: spans kept as the JSON text they arrived as (with
/// `filed_under` added), parsed only when a test asks for them, so the
/// server costs little per span and is not what a throughput bench measures.
#[derive(Clone, Default)]
struct Trace {
    trace_id: String,
    name: Option<String>,
    metadata: Map<String, Value>,
    status: Option<String>,
    spans: Vec<String>,
}

impl Trace {
    fn to_stored(&self) -> StoredTrace {
        StoredTrace {
            trace_id: self.trace_id.clone(),
            name: self.name.clone(),
            metadata: self.metadata.clone(),
            status: self.status.clone(),
            spans: self.spans.iter().map(|s| parse_stored(s)).collect(),
        }
    }
}

/// A stored span's text, parsed (the server wrote it, so it is JSON).
fn parse_stored(span: &str) -> Value {
    serde_json::from_str(span).unwrap_or(Value::Null)
}

#[derive(Default)]
struct Store {
    traces: Vec<Trace>,
    index: HashMap<String, usize>,
    span_ids: HashSet<String>,
    log: Vec<RequestLog>,
    buckets: HashMap<IpAddr, Bucket>,
}

struct Shared {
    api_key: String,
    rate: Option<RateLimit>,
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    stopping: AtomicBool,
    /// Bumped by `go_down`: connections of an older epoch close.
    epoch: AtomicU64,
    connections: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Options for [`TestServer`].
pub struct Builder {
    api_key: String,
    rate: Option<RateLimit>,
    port: u16,
}

/// Shows the options but the API key.
impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("api_key", &"<redacted>")
            .field("rate", &self.rate)
            .field("port", &self.port)
            .finish()
    }
}

impl Builder {
    /// The accepted API key (default `test-key`).
    pub fn api_key(mut self, key: &str) -> Self {
        self.api_key = key.to_owned();
        self
    }

    /// `capacity` requests, refilled evenly over `per` (default 100 per 60 s).
    pub fn rate_limit(mut self, capacity: u32, per: Duration) -> Self {
        self.rate = Some(RateLimit {
            capacity: f64::from(capacity),
            per_second: f64::from(capacity) / per.as_secs_f64().max(1e-9),
        });
        self
    }

    /// No rate limit.
    pub fn no_rate_limit(mut self) -> Self {
        self.rate = None;
        self
    }

    /// Listens on `port` of 127.0.0.1 (default 0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Starts listening.
    ///
    /// # Panics
    ///
    /// When the port cannot be bound; [`Builder::try_start`] returns the error.
    pub fn start(self) -> TestServer {
        self.try_start().expect("bind 127.0.0.1")
    }

    /// Starts listening, or says why it cannot.
    pub fn try_start(self) -> io::Result<TestServer> {
        let shared = Arc::new(Shared {
            api_key: self.api_key,
            rate: self.rate,
            store: Mutex::new(Store::default()),
            faults: Mutex::new(Faults::default()),
            stopping: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let listener = TcpListener::bind(("127.0.0.1", self.port))?;
        let addr = listener.local_addr()?;
        let accept = spawn_acceptor(listener, shared.clone());
        Ok(TestServer {
            addr,
            shared,
            accept: Mutex::new(Some(accept)),
        })
    }
}

/// The server; stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

/// Shows the address (the API key, the store and the faults are left out).
impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// A server with the defaults: key `test-key`, 100 requests per 60 s.
    pub fn start() -> TestServer {
        Self::builder().start()
    }

    /// Options.
    pub fn builder() -> Builder {
        Builder {
            port: 0,
            api_key: "test-key".to_owned(),
            rate: Some(RateLimit {
                capacity: 100.0,
                per_second: 100.0 / 60.0,
            }),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The accepted API key.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// Every trace, in creation order.
    pub fn traces(&self) -> Vec<StoredTrace> {
        lock(&self.shared.store)
            .traces
            .iter()
            .map(Trace::to_stored)
            .collect()
    }

    /// One trace.
    pub fn trace(&self, id: &str) -> Option<StoredTrace> {
        let store = lock(&self.shared.store);
        store.index.get(id).map(|&i| store.traces[i].to_stored())
    }

    /// Spans stored.
    pub fn span_count(&self) -> usize {
        lock(&self.shared.store).span_ids.len()
    }

    /// Every request received.
    pub fn requests(&self) -> Vec<RequestLog> {
        lock(&self.shared.store).log.clone()
    }

    /// Answers the next `n` API requests with `status` (storing nothing).
    /// A `429` carries `Retry-After: 1`.
    pub fn fail_next(&self, n: usize, status: u16) {
        let after = (status == 429).then_some(1);
        self.fail_next_with(n, status, after);
    }

    /// Like [`TestServer::fail_next`] with an explicit `Retry-After`.
    pub fn fail_next_with(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let mut f = lock(&self.shared.faults);
        f.fail_next
            .extend(std::iter::repeat_n((status, retry_after), n));
    }

    /// Waits `d` before answering each request.
    pub fn set_latency(&self, d: Duration) {
        lock(&self.shared.faults).latency = d;
    }

    /// Reads requests and never answers them while on.
    pub fn blackhole(&self, on: bool) {
        lock(&self.shared.faults).blackhole = on;
    }

    /// The next `n` requests get half a status line, then the connection closes.
    pub fn close_mid_response(&self, n: usize) {
        lock(&self.shared.faults).close_mid_response += n;
    }

    /// The next `n` API requests are answered in full, as keep-alive (no
    /// `Connection: close`), and then the server closes the connection, as
    /// a server behind a proxy with a short idle timeout does.
    pub fn close_after_answer(&self, n: usize) {
        lock(&self.shared.faults).close_after_answer += n;
    }

    /// The next `n` `PATCH` requests are answered with `status`, changing nothing.
    pub fn fail_next_patches(&self, n: usize, status: u16) {
        lock(&self.shared.faults)
            .fail_patches
            .extend(std::iter::repeat_n(status, n));
    }

    /// Answers a share `rate` (0 to 1) of `PATCH` requests, chosen at random
    /// (from `seed`), with `status`, changing nothing; `rate` 0 stops it.
    pub fn fail_patches_at_random(&self, rate: f64, status: u16, seed: u64) {
        let mut f = lock(&self.shared.faults);
        f.patch_failure = (rate > 0.0).then_some((rate, status));
        f.rng = seed | 1;
    }

    /// The next `n` ingest requests are stored, then answered only after `d`.
    pub fn commit_then_timeout(&self, n: usize, d: Duration) {
        lock(&self.shared.faults)
            .commit_then_sleep
            .extend(std::iter::repeat_n(d, n));
    }

    /// Stops listening (connections are refused) and closes open connections.
    pub fn go_down(&self) {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(handle) = lock(&self.accept).take() {
            let _ = handle.join();
        }
    }

    /// Listens again on the same port.
    pub fn come_up(&self) {
        let mut accept = lock(&self.accept);
        if accept.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() > deadline => panic!("rebind {}: {e}", self.addr),
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        };
        *accept = Some(spawn_acceptor(listener, self.shared.clone()));
    }

    /// Clears stored data, logs, faults and rate-limit buckets.
    pub fn reset(&self) {
        *lock(&self.shared.store) = Store::default();
        *lock(&self.shared.faults) = Faults::default();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(handle) = lock(&self.accept).take() {
            let _ = handle.join();
        }
    }
}

fn spawn_acceptor(listener: TcpListener, shared: Arc<Shared>) -> JoinHandle<()> {
    let epoch = shared.epoch.load(Ordering::SeqCst);
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    thread::spawn(move || {
        while shared.epoch.load(Ordering::SeqCst) == epoch {
            match listener.accept() {
                Ok((stream, peer)) => {
                    let shared = shared.clone();
                    let id = shared.connections.fetch_add(1, Ordering::SeqCst);
                    thread::spawn(move || serve(stream, peer, id, epoch, &shared));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(1))
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

struct HttpRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

enum Incoming {
    Request(HttpRequest),
    Closed,
    Bad(&'static str),
}

/// Runs a read that may time out, again while the server is alive; `None`
/// when it fails or the server stops.
fn retry<T>(alive: &dyn Fn() -> bool, mut read: impl FnMut() -> io::Result<T>) -> Option<T> {
    loop {
        match read() {
            Ok(v) => return Some(v),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if !alive() {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
}

/// Reads one request, waking up regularly to see whether to stop.
fn read_request(reader: &mut BufReader<TcpStream>, alive: &dyn Fn() -> bool) -> Incoming {
    let mut line = String::new();
    if matches!(retry(alive, || reader.read_line(&mut line)), None | Some(0)) {
        return Incoming::Closed;
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Incoming::Bad("malformed request line");
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if matches!(retry(alive, || reader.read_line(&mut h)), None | Some(0)) {
            return Incoming::Closed;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        match h.split_once(':') {
            Some((n, v)) => headers.push((n.trim().to_owned(), v.trim().to_owned())),
            None => return Incoming::Bad("malformed header"),
        }
    }
    let mut request = HttpRequest {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if request.header("transfer-encoding").is_some() {
        return Incoming::Bad("chunked bodies are not supported");
    }
    let len: usize = match request.header("content-length").map(str::parse) {
        None => 0,
        Some(Ok(n)) if n <= 64 << 20 => n,
        Some(_) => return Incoming::Bad("bad content-length"),
    };
    request.body.resize(len, 0);
    let mut got = 0;
    while got < len {
        match retry(alive, || reader.read(&mut request.body[got..])) {
            None | Some(0) => return Incoming::Closed,
            Some(n) => got += n,
        }
    }
    Incoming::Request(request)
}

fn serve(stream: TcpStream, peer: SocketAddr, connection: u64, epoch: u64, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let alive = || shared.epoch.load(Ordering::SeqCst) == epoch;
    while alive() {
        let request = match read_request(&mut reader, &alive) {
            Incoming::Request(r) => r,
            Incoming::Closed => break,
            Incoming::Bad(why) => {
                let body = json!({ "error": why }).to_string();
                let _ = respond(&mut writer, 400, &body, None, true);
                break;
            }
        };
        let at = Instant::now();
        let (latency, blackhole, close_mid, close_after) = {
            let mut f = lock(&shared.faults);
            let api = request.path.starts_with("/v1/");
            let close = f.close_mid_response > 0 && api;
            if close {
                f.close_mid_response -= 1;
            }
            let close_after = f.close_after_answer > 0 && api;
            if close_after {
                f.close_after_answer -= 1;
            }
            (f.latency, f.blackhole, close, close_after)
        };
        let mut log = RequestLog {
            method: request.method.clone(),
            path: request.path.clone(),
            status: 0,
            at,
            body_len: request.body.len(),
            user_agent: request.header("user-agent").map(str::to_owned),
            connection,
        };
        if blackhole {
            lock(&shared.store).log.push(log);
            while alive() && lock(&shared.faults).blackhole {
                thread::sleep(Duration::from_millis(10));
            }
            break;
        }
        if !latency.is_zero() {
            thread::sleep(latency);
        }
        let (status, body, retry_after, sleep_after) = handle(&request, peer.ip(), shared);
        log.status = status;
        lock(&shared.store).log.push(log);
        if close_mid {
            let _ = writer.write_all(b"HTTP/1.1 20");
            let _ = writer.flush();
            let _ = writer.shutdown(Shutdown::Both);
            break;
        }
        if let Some(d) = sleep_after {
            thread::sleep(d);
        }
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if respond(&mut writer, status, &body, retry_after, close).is_err() || close || close_after
        {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

fn respond(
    w: &mut TcpStream,
    status: u16,
    body: &str,
    retry_after: Option<u64>,
    close: bool,
) -> io::Result<()> {
    let extra = retry_after
        .map(|a| format!("Retry-After: {a}\r\n"))
        .unwrap_or_default();
    respond_raw(
        w,
        status,
        "application/json",
        body.as_bytes(),
        &extra,
        close,
    )
}

/// Writes a whole response; `extra` holds more header lines.
fn respond_raw(
    w: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    extra: &str,
    close: bool,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n{extra}\r\n",
        body.len(),
        if close { "close" } else { "keep-alive" }
    );
    // One write: a response split over two segments wakes the client twice.
    let mut response = head.into_bytes();
    response.extend_from_slice(body);
    w.write_all(&response)?;
    w.flush()
}

/// Status, JSON body, `Retry-After` seconds, and a pause after committing.
type Answer = (u16, String, Option<u64>, Option<Duration>);

fn error(status: u16, message: impl Into<String>) -> Answer {
    (
        status,
        json!({ "error": message.into() }).to_string(),
        None,
        None,
    )
}

fn handle(r: &HttpRequest, ip: IpAddr, shared: &Shared) -> Answer {
    let segments: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    // Every path counts against the rate limit, answered or refused.
    if let Some(rate) = &shared.rate {
        let mut store = lock(&shared.store);
        let now = Instant::now();
        let bucket = store.buckets.entry(ip).or_insert(Bucket {
            tokens: rate.capacity,
            at: now,
        });
        bucket.tokens = (bucket.tokens
            + now.duration_since(bucket.at).as_secs_f64() * rate.per_second)
            .min(rate.capacity);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            let wait = ((1.0 - bucket.tokens) / rate.per_second).ceil().max(1.0) as u64;
            return (
                429,
                json!({"error": "Too many requests"}).to_string(),
                Some(wait),
                None,
            );
        }
        bucket.tokens -= 1.0;
    }
    if r.method == "GET" && segments == ["health"] {
        return (200, json!({"status": "ok"}).to_string(), None, None);
    }
    // Reads need no key; every write does.
    let expected = format!("Bearer {}", shared.api_key);
    if r.method != "GET" && r.header("authorization") != Some(expected.as_str()) {
        return error(401, "Invalid or missing API key");
    }
    if r.method == "PATCH" {
        let mut f = lock(&shared.faults);
        let status = f.fail_patches.pop_front().or_else(|| {
            let (rate, status) = f.patch_failure?;
            // xorshift64*: reproducible from the seed.
            f.rng ^= f.rng >> 12;
            f.rng ^= f.rng << 25;
            f.rng ^= f.rng >> 27;
            let draw =
                (f.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
            (draw < rate).then_some(status)
        });
        if let Some(status) = status {
            return error(status, "injected PATCH failure");
        }
    }
    if let Some((status, after)) = lock(&shared.faults).fail_next.pop_front() {
        return (
            status,
            json!({"error": "injected failure"}).to_string(),
            after,
            None,
        );
    }
    if r.header("content-encoding")
        .is_some_and(|v| !v.eq_ignore_ascii_case("identity"))
    {
        return error(400, "compressed request bodies are not accepted");
    }
    let body = || serde_json::from_slice::<Value>(&r.body);
    match (r.method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "traces"]) => ingest(&r.body, shared),
        ("PATCH", ["v1", "traces", id]) => match body() {
            Ok(v) => patch(id, &v, shared),
            Err(e) => error(400, format!("malformed JSON: {e}")),
        },
        ("POST", ["v1", "traces", id, "events", span]) => match body() {
            Ok(v) => add_event(id, span, &v, shared),
            Err(e) => error(400, format!("malformed JSON: {e}")),
        },
        ("GET", ["v1", "traces", id]) => {
            let store = lock(&shared.store);
            match store.index.get(*id) {
                Some(&i) => (200, trace_json(&store.traces[i]), None, None),
                None => error(404, format!("Trace '{id}' not found")),
            }
        }
        _ => error(404, format!("no route for {} {}", r.method, r.path)),
    }
}

/// The trace as GET and PATCH answer it, written from the stored text of its
/// spans.
fn trace_json(t: &Trace) -> String {
    fn put<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, key: &str, value: &T) {
        out.extend_from_slice(if out.is_empty() { b"{\"" } else { b",\"" });
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        // Writing to a `Vec` fails only for maps with non-string keys, which
        // stored JSON never has.
        let _ = serde_json::to_writer(&mut *out, value);
    }
    let spans: usize = t.spans.iter().map(|s| s.len() + 1).sum();
    let mut out = Vec::with_capacity(256 + spans);
    // The order `json!` gives: keys sorted.
    put(&mut out, "metadata", &t.metadata);
    put(&mut out, "name", &t.name);
    out.extend_from_slice(b",\"spans\":[");
    for (i, span) in t.spans.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(span.as_bytes());
    }
    out.push(b']');
    put(&mut out, "status", &t.status);
    put(&mut out, "trace_id", &t.trace_id);
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

/// A validation failure, as FastAPI reports it.
fn invalid(loc: Vec<Value>, msg: &str) -> Answer {
    (
        422,
        json!({"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]}).to_string(),
        None,
        None,
    )
}

fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (s.ends_with('Z') || s[19..].contains('+') || s[19..].contains('-'))
}

fn validate_span(i: usize, s: &Value) -> Result<(), Answer> {
    let loc = |field: &str| vec![json!("body"), json!("spans"), json!(i), json!(field)];
    let Some(obj) = s.as_object() else {
        return Err(invalid(
            vec![json!("body"), json!("spans"), json!(i)],
            "must be an object",
        ));
    };
    let string = |f: &str| obj.get(f).and_then(Value::as_str);
    match string("span_id") {
        Some(id) if !id.is_empty() && id.chars().count() <= 64 => {}
        _ => {
            return Err(invalid(
                loc("span_id"),
                "required non-empty string of at most 64 characters",
            ))
        }
    }
    if string("trace_id").is_none_or(str::is_empty) {
        return Err(invalid(loc("trace_id"), "required string"));
    }
    match obj.get("parent_span_id") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        _ => return Err(invalid(loc("parent_span_id"), "must be a string or null")),
    }
    match string("name") {
        Some(n) if n.chars().count() <= 256 => {}
        Some(_) => return Err(invalid(loc("name"), "at most 256 characters")),
        None => return Err(invalid(loc("name"), "required string")),
    }
    if !string("kind").is_some_and(|k| KINDS.contains(&k)) {
        return Err(invalid(
            loc("kind"),
            "must be one of llm, tool, chain, retriever, agent, custom",
        ));
    }
    if !string("status").is_none_or(|k| STATUSES.contains(&k))
        || obj.get("status").is_some_and(|v| !v.is_string())
    {
        return Err(invalid(loc("status"), "must be one of ok, error, unset"));
    }
    for f in ["input", "output"] {
        if !matches!(
            obj.get(f),
            None | Some(Value::Null) | Some(Value::Object(_))
        ) {
            return Err(invalid(loc(f), "must be an object or null"));
        }
    }
    if !matches!(obj.get("metadata"), None | Some(Value::Object(_))) {
        return Err(invalid(loc("metadata"), "must be an object"));
    }
    match obj.get("events") {
        None => {}
        Some(Value::Array(events)) => {
            for (j, e) in events.iter().enumerate() {
                let ok = e.get("name").is_some_and(Value::is_string)
                    && e.get("timestamp")
                        .and_then(Value::as_str)
                        .is_some_and(is_rfc3339)
                    && matches!(e.get("attributes"), None | Some(Value::Object(_)));
                if !ok {
                    let mut l = loc("events");
                    l.push(json!(j));
                    return Err(invalid(
                        l,
                        "each event needs name, an RFC 3339 timestamp and object attributes",
                    ));
                }
            }
        }
        Some(_) => return Err(invalid(loc("events"), "must be an array")),
    }
    for f in ["start_time", "end_time"] {
        match obj.get(f) {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if is_rfc3339(t) => {}
            _ => return Err(invalid(loc(f), "must be an RFC 3339 date-time or null")),
        }
    }
    Ok(())
}

/// An ingest request that passed validation, ready to store.
struct Accepted {
    /// The first span's trace, which every span is filed under.
    trace_id: String,
    /// `(span_id, span JSON)` in request order.
    spans: Vec<(String, String)>,
    trace_name: Option<String>,
    trace_metadata: Option<Map<String, Value>>,
}

/// `POST /v1/traces`. Well-formed requests take [`fast`]'s path: the body is
/// checked without building a `Value` per span, and spans are stored as the
/// text they arrived as. Anything that path does not vouch for (an odd
/// type, a duplicate key, an escape where a literal is expected) is judged
/// by the `Value` rules below, which alone word the errors.
fn ingest(body: &[u8], shared: &Shared) -> Answer {
    let accepted = match serde_json::from_slice::<fast::Body<'_>>(body) {
        Ok(parsed) => fast::accept(parsed),
        Err(_) => match serde_json::from_slice::<Value>(body) {
            Ok(v) => accept(v),
            Err(e) => return error(400, format!("malformed JSON: {e}")),
        },
    };
    match accepted {
        Ok(accepted) => commit(accepted, shared),
        Err(answer) => answer,
    }
}

/// The request's rules, applied to its `Value`.
fn accept(mut body: Value) -> Result<Accepted, Answer> {
    let Some(Value::Array(spans)) = body.get_mut("spans").map(Value::take) else {
        return Err(invalid(
            vec![json!("body"), json!("spans")],
            "field required",
        ));
    };
    if spans.is_empty() {
        return Err(no_spans());
    }
    for (i, s) in spans.iter().enumerate() {
        validate_span(i, s)?;
    }
    for f in ["trace_name", "project_id", "external_id"] {
        if !matches!(
            body.get(f),
            None | Some(Value::Null) | Some(Value::String(_))
        ) {
            return Err(invalid(
                vec![json!("body"), json!(f)],
                "must be a string or null",
            ));
        }
    }
    if !matches!(
        body.get("trace_metadata"),
        None | Some(Value::Null) | Some(Value::Object(_))
    ) {
        return Err(invalid(
            vec![json!("body"), json!("trace_metadata")],
            "must be an object or null",
        ));
    }
    Ok(Accepted {
        trace_id: trace_of(&spans[0]),
        spans: spans.iter().map(stored_form).collect(),
        trace_name: body
            .get("trace_name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        trace_metadata: body
            .get("trace_metadata")
            .and_then(Value::as_object)
            .cloned(),
    })
}

/// The answer to a request with an empty `spans`.
fn no_spans() -> Answer {
    invalid(vec![json!("body"), json!("spans")], "at least one span")
}

/// A valid span's id and text.
fn stored_form(span: &Value) -> (String, String) {
    let id = span["span_id"].as_str().unwrap_or_default().to_owned();
    (id, span.to_string())
}

/// A valid span's trace id.
fn trace_of(span: &Value) -> String {
    span["trace_id"].as_str().unwrap_or_default().to_owned()
}

/// Stores an accepted request, with the server's quirks: every span goes
/// under the first span's trace, and a span id seen before fails the whole
/// request with 500, storing nothing.
fn commit(accepted: Accepted, shared: &Shared) -> Answer {
    let Accepted {
        trace_id,
        spans,
        trace_name,
        trace_metadata,
    } = accepted;
    let mut store = lock(&shared.store);
    let mut seen = HashSet::new();
    for (id, _) in &spans {
        if store.span_ids.contains(id) || !seen.insert(id.as_str()) {
            return error(
                500,
                format!("duplicate key value violates unique constraint: span_id={id}"),
            );
        }
    }
    let at = match store.index.get(&trace_id) {
        Some(&i) => i,
        None => {
            store.traces.push(Trace {
                trace_id: trace_id.clone(),
                metadata: trace_metadata.unwrap_or_default(),
                ..Trace::default()
            });
            let i = store.traces.len() - 1;
            store.index.insert(trace_id.clone(), i);
            i
        }
    };
    if let Some(name) = trace_name.filter(|n| !n.is_empty()) {
        store.traces[at].name = Some(name);
    }
    let count = spans.len();
    let filed_under = Value::String(trace_id.clone()).to_string();
    for (id, text) in spans {
        let text = file_under(text, &filed_under);
        store.span_ids.insert(id);
        store.traces[at].spans.push(text);
    }
    drop(store);
    let sleep = lock(&shared.faults).commit_then_sleep.pop_front();
    (
        201,
        json!({"trace_id": trace_id, "span_count": count}).to_string(),
        None,
        sleep,
    )
}

/// A span object's text with `"filed_under": trace` set (`trace` already
/// JSON): appended in place, unless the span has that key already.
fn file_under(mut span: String, trace: &str) -> String {
    if span.contains("\"filed_under\"") || !span.ends_with('}') {
        let mut v = parse_stored(&span);
        v["filed_under"] = serde_json::from_str(trace).unwrap_or(Value::Null);
        return v.to_string();
    }
    span.pop();
    span.push_str(",\"filed_under\":");
    span.push_str(trace);
    span.push('}');
    span
}

/// The cheap path of ingest: a typed, borrowing parse of the request.
mod fast {
    use std::borrow::Cow;

    use serde::{Deserialize, Deserializer};
    use serde_json::value::RawValue;
    use serde_json::{Map, Value};

    use super::{is_rfc3339, validate_span, Accepted, Answer, KINDS};

    /// The body; any field of another type fails the parse, and the request
    /// goes the `Value` way.
    #[derive(Deserialize)]
    pub(super) struct Body<'a> {
        #[serde(borrow)]
        spans: Vec<&'a RawValue>,
        #[serde(default)]
        trace_name: Option<String>,
        #[serde(rename = "project_id", default, borrow)]
        _project_id: Option<Cow<'a, str>>,
        #[serde(rename = "external_id", default, borrow)]
        _external_id: Option<Cow<'a, str>>,
        #[serde(default)]
        trace_metadata: Option<Map<String, Value>>,
    }

    /// A span's fields, borrowed where no escape forces a copy. Fields whose
    /// `null` and absence differ are kept raw.
    #[derive(Deserialize)]
    pub(super) struct Span<'a> {
        #[serde(borrow)]
        span_id: Cow<'a, str>,
        #[serde(borrow)]
        trace_id: Cow<'a, str>,
        #[serde(rename = "parent_span_id", default, borrow)]
        _parent_span_id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        name: Cow<'a, str>,
        #[serde(borrow)]
        kind: Cow<'a, str>,
        #[serde(default, borrow, deserialize_with = "present")]
        status: Option<&'a RawValue>,
        #[serde(default, borrow, deserialize_with = "present")]
        input: Option<&'a RawValue>,
        #[serde(default, borrow, deserialize_with = "present")]
        output: Option<&'a RawValue>,
        #[serde(default, borrow, deserialize_with = "present")]
        metadata: Option<&'a RawValue>,
        #[serde(default, borrow, deserialize_with = "present")]
        events: Option<&'a RawValue>,
        #[serde(default, borrow)]
        start_time: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        end_time: Option<Cow<'a, str>>,
    }

    /// A field that is present, `null` included.
    fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
        <&RawValue>::deserialize(d).map(Some)
    }

    impl Span<'_> {
        /// Whether the span certainly passes `validate_span` (false is not a
        /// verdict: the span is then judged by it).
        pub(super) fn passes(&self) -> bool {
            let object_or_null = |v: Option<&RawValue>| {
                v.is_none_or(|v| v.get() == "null" || v.get().starts_with('{'))
            };
            let time = |t: &Option<Cow<'_, str>>| t.as_deref().is_none_or(is_rfc3339);
            !self.span_id.is_empty()
                && self.span_id.chars().count() <= 64
                && !self.trace_id.is_empty()
                && self.name.chars().count() <= 256
                && KINDS.contains(&&*self.kind)
                && self
                    .status
                    .is_none_or(|s| matches!(s.get(), "\"ok\"" | "\"error\"" | "\"unset\""))
                && object_or_null(self.input)
                && object_or_null(self.output)
                && self.metadata.is_none_or(|m| m.get().starts_with('{'))
                && self.events.is_none_or(|e| {
                    e.get()
                        .strip_prefix('[')
                        .is_some_and(|rest| rest.trim_start() == "]")
                })
                && time(&self.start_time)
                && time(&self.end_time)
        }
    }

    /// Validates every span, the quick way where it can vouch for one.
    pub(super) fn accept(body: Body<'_>) -> Result<Accepted, Answer> {
        if body.spans.is_empty() {
            return Err(super::no_spans());
        }
        let mut trace_id = String::new();
        let mut spans = Vec::with_capacity(body.spans.len());
        for (i, raw) in body.spans.iter().enumerate() {
            match serde_json::from_str::<Span<'_>>(raw.get()) {
                Ok(s) if s.passes() => {
                    if i == 0 {
                        trace_id = s.trace_id.into_owned();
                    }
                    spans.push((s.span_id.into_owned(), raw.get().to_owned()));
                }
                _ => {
                    let value: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                    validate_span(i, &value)?;
                    if i == 0 {
                        trace_id = super::trace_of(&value);
                    }
                    spans.push(super::stored_form(&value));
                }
            }
        }
        Ok(Accepted {
            trace_id,
            spans,
            trace_name: body.trace_name,
            trace_metadata: body.trace_metadata,
        })
    }
}

fn patch(id: &str, body: &Value, shared: &Shared) -> Answer {
    if !matches!(body.get("status"), None | Some(Value::Null))
        && !body["status"]
            .as_str()
            .is_some_and(|s| STATUSES.contains(&s))
    {
        return invalid(
            vec![json!("body"), json!("status")],
            "must be one of ok, error, unset",
        );
    }
    if !matches!(
        body.get("metadata"),
        None | Some(Value::Null) | Some(Value::Object(_))
    ) {
        return invalid(vec![json!("body"), json!("metadata")], "must be an object");
    }
    let mut store = lock(&shared.store);
    let Some(&i) = store.index.get(id) else {
        return error(404, format!("Trace '{id}' not found"));
    };
    let trace = &mut store.traces[i];
    if let Some(s) = body.get("status").and_then(Value::as_str) {
        trace.status = Some(s.to_owned());
    }
    if let Some(m) = body.get("metadata").and_then(Value::as_object) {
        trace.metadata.extend(m.clone());
    }
    (200, trace_json(trace), None, None)
}

fn add_event(trace: &str, span: &str, body: &Value, shared: &Shared) -> Answer {
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return invalid(vec![json!("body"), json!("name")], "field required");
    };
    let attributes = body.get("attributes").cloned().unwrap_or_else(|| json!({}));
    if !attributes.is_object() {
        return invalid(
            vec![json!("body"), json!("attributes")],
            "must be an object",
        );
    }
    let mut store = lock(&shared.store);
    let Some(&i) = store.index.get(trace) else {
        return error(404, format!("Trace '{trace}' not found"));
    };
    let Some(s) = store.traces[i]
        .spans
        .iter_mut()
        .find(|s| parse_stored(s)["span_id"] == span)
    else {
        return error(404, format!("Span '{span}' not found"));
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let stamp =
        vigil_core::Timestamp::from_unix_nanos(u64::try_from(now.as_nanos()).unwrap_or(u64::MAX));
    let event = json!({"name": name, "timestamp": stamp.to_string(), "attributes": attributes});
    let mut stored = parse_stored(s);
    if let Some(events) = stored.get_mut("events").and_then(Value::as_array_mut) {
        events.push(event.clone());
    } else {
        stored["events"] = json!([event.clone()]);
    }
    *s = stored.to_string();
    (201, event.to_string(), None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the `Value` rules alone make of a request.
    fn by_value(body: &[u8]) -> Result<Accepted, Answer> {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => accept(v),
            Err(e) => Err(error(400, format!("malformed JSON: {e}"))),
        }
    }

    /// What `ingest` makes of it (the quick path where it applies).
    fn as_served(body: &[u8]) -> Result<Accepted, Answer> {
        match serde_json::from_slice::<fast::Body<'_>>(body) {
            Ok(parsed) => fast::accept(parsed),
            Err(_) => by_value(body),
        }
    }

    fn comparable(r: Result<Accepted, Answer>) -> Result<(Vec<Value>, Value), Answer> {
        r.map(|a| {
            let spans = a
                .spans
                .iter()
                .map(|(id, text)| json!([id, parse_stored(text)]))
                .collect();
            (spans, json!([a.trace_id, a.trace_name, a.trace_metadata]))
        })
    }

    const SPAN: &str = r#"{"span_id":"s1","trace_id":"t1","parent_span_id":null,"name":"step","kind":"tool","status":"ok","start_time":"2026-11-25T10:00:00.000001Z","end_time":"2026-11-25T10:00:00.000002Z","input":{"q":1},"output":null,"metadata":{},"events":[]}"#;

    #[test]
    fn the_quick_path_vouches_for_what_the_sdk_sends() {
        let span: fast::Span<'_> = serde_json::from_str(SPAN).unwrap();
        assert!(span.passes());
    }

    #[test]
    fn the_quick_path_judges_every_request_as_the_value_rules_do() {
        let spans: Vec<String> = [
            ("", ""),
            ("\"status\":\"ok\"", "\"status\":null"),
            ("\"status\":\"ok\"", "\"status\":\"bogus\""),
            ("\"status\":\"ok\"", "\"status\":\"\\u006fk\""),
            ("\"status\":\"ok\"", "\"status\":1"),
            ("\"metadata\":{}", "\"metadata\":null"),
            ("\"metadata\":{}", "\"metadata\":[]"),
            ("\"input\":{\"q\":1}", "\"input\":5"),
            ("\"input\":{\"q\":1}", "\"input\":null"),
            ("\"input\":{\"q\":1}", "\"input\" : { }"),
            ("\"events\":[]", "\"events\":[{\"name\":\"e\",\"timestamp\":\"2026-11-25T10:00:00Z\",\"attributes\":{}}]"),
            ("\"events\":[]", "\"events\":[{\"name\":\"e\",\"timestamp\":\"yesterday\"}]"),
            ("\"events\":[]", "\"events\":{}"),
            ("\"events\":[]", "\"events\":[ ]"),
            ("\"start_time\":\"2026-11-25T10:00:00.000001Z\"", "\"start_time\":\"soon\""),
            ("\"start_time\":\"2026-11-25T10:00:00.000001Z\"", "\"start_time\":null"),
            ("\"start_time\":\"2026-11-25T10:00:00.000001Z\"", "\"start_time\":7"),
            ("\"span_id\":\"s1\"", "\"span_id\":\"\""),
            ("\"span_id\":\"s1\"", &format!("\"span_id\":\"{}\"", "x".repeat(65))),
            ("\"span_id\":\"s1\"", "\"span_id\":1"),
            ("\"span_id\":\"s1\"", "\"span_id\":\"s1\",\"span_id\":\"s2\""),
            ("\"trace_id\":\"t1\",", ""),
            ("\"trace_id\":\"t1\"", "\"trace_id\":\"\""),
            ("\"name\":\"step\"", &format!("\"name\":\"{}\"", "é".repeat(257))),
            ("\"name\":\"step\"", "\"name\":\"st\\\"ep\""),
            ("\"kind\":\"tool\"", "\"kind\":\"bogus\""),
            ("\"kind\":\"tool\"", "\"kind\":\"TOOL\""),
            ("\"parent_span_id\":null", "\"parent_span_id\":5"),
            ("\"parent_span_id\":null", "\"parent_span_id\":\"p\""),
            ("\"parent_span_id\":null", "\"parent_span_id\":null,\"extra\":[1]"),
            ("\"parent_span_id\":null", "\"parent_span_id\":null,\"filed_under\":\"x\""),
        ]
        .iter()
        .map(|(from, to)| SPAN.replacen(from, to, 1))
        .chain(["5".to_owned(), "{}".to_owned()])
        .collect();
        let mut bodies: Vec<String> = spans
            .iter()
            .map(|s| {
                format!(
                    "{{\"spans\":[{SPAN2},{s}]}}",
                    SPAN2 = SPAN.replace("s1", "s0")
                )
            })
            .collect();
        bodies.extend(
            [
                r#"{"spans":[]}"#,
                r#"{"trace_name":"n"}"#,
                r#"{"spans":{}}"#,
                r#"[]"#,
                r#"{"spans":["#,
            ]
            .map(str::to_owned),
        );
        for outer in [
            r#""trace_name":"agent""#,
            r#""trace_name":5"#,
            r#""trace_name":null"#,
            r#""project_id":[]"#,
            r#""external_id":"e""#,
            r#""trace_metadata":{"k":[1]}"#,
            r#""trace_metadata":[]"#,
            r#""trace_metadata":null"#,
        ] {
            bodies.push(format!("{{\"spans\":[{SPAN}],{outer}}}"));
        }
        let mut accepted = 0;
        for body in &bodies {
            let served = comparable(as_served(body.as_bytes()));
            accepted += usize::from(served.is_ok());
            assert_eq!(served, comparable(by_value(body.as_bytes())), "{body}");
        }
        assert!(accepted > 10 && accepted < bodies.len() - 10, "{accepted}");
    }

    #[test]
    fn a_stored_span_is_filed_under_its_trace() {
        let filed = file_under(SPAN.to_owned(), "\"t9\"");
        let v = parse_stored(&filed);
        assert_eq!(v["filed_under"], "t9");
        assert_eq!(v["span_id"], "s1");
        let again = parse_stored(&file_under(filed, "\"t8\""));
        assert_eq!(again["filed_under"], "t8");
    }
}
