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
//! Faults can be injected: failing statuses, latency, a black hole, a
//! connection closed mid-response, a commit followed by a timeout, and going
//! down and coming back on the same port.
#![deny(missing_docs)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

pub mod llm;

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
    commit_then_sleep: VecDeque<Duration>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct RateLimit {
    capacity: f64,
    per_second: f64,
}

#[derive(Default)]
struct Store {
    traces: Vec<StoredTrace>,
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

    /// Starts listening.
    pub fn start(self) -> TestServer {
        let shared = Arc::new(Shared {
            api_key: self.api_key,
            rate: self.rate,
            store: Mutex::new(Store::default()),
            faults: Mutex::new(Faults::default()),
            stopping: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let accept = spawn_acceptor(listener, shared.clone());
        TestServer {
            addr,
            shared,
            accept: Mutex::new(Some(accept)),
        }
    }
}

/// The server; stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl TestServer {
    /// A server with the defaults: key `test-key`, 100 requests per 60 s.
    pub fn start() -> TestServer {
        Self::builder().start()
    }

    /// Options.
    pub fn builder() -> Builder {
        Builder {
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
        lock(&self.shared.store).traces.clone()
    }

    /// One trace.
    pub fn trace(&self, id: &str) -> Option<StoredTrace> {
        let store = lock(&self.shared.store);
        store.index.get(id).map(|&i| store.traces[i].clone())
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
        let (latency, blackhole, close_mid) = {
            let mut f = lock(&shared.faults);
            let close = f.close_mid_response > 0 && request.path.starts_with("/v1/");
            if close {
                f.close_mid_response -= 1;
            }
            (f.latency, f.blackhole, close)
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
        if respond(&mut writer, status, &body, retry_after, close).is_err() || close {
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
    if r.method == "GET" && segments == ["health"] {
        return (200, json!({"status": "ok"}).to_string(), None, None);
    }
    let expected = format!("Bearer {}", shared.api_key);
    if r.header("authorization") != Some(expected.as_str()) {
        return error(401, "Invalid or missing API key");
    }
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
        ("POST", ["v1", "traces"]) => match body() {
            Ok(v) => ingest(v, shared),
            Err(e) => error(400, format!("malformed JSON: {e}")),
        },
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

/// The trace as GET and PATCH answer it, serialized straight from the store
/// (a large trace's spans are not copied first).
fn trace_json(t: &StoredTrace) -> String {
    fn put<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, key: &str, value: &T) {
        out.extend_from_slice(if out.is_empty() { b"{\"" } else { b",\"" });
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        // Writing to a `Vec` fails only for maps with non-string keys, which
        // stored JSON never has.
        let _ = serde_json::to_writer(&mut *out, value);
    }
    let mut out = Vec::with_capacity(256);
    // The order `json!` gives: keys sorted.
    put(&mut out, "metadata", &t.metadata);
    put(&mut out, "name", &t.name);
    put(&mut out, "spans", &t.spans);
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

fn ingest(mut body: Value, shared: &Shared) -> Answer {
    // Taken out of the body: stored as they are, without a copy.
    let Some(Value::Array(spans)) = body.get_mut("spans").map(Value::take) else {
        return invalid(vec![json!("body"), json!("spans")], "field required");
    };
    if spans.is_empty() {
        return invalid(vec![json!("body"), json!("spans")], "at least one span");
    }
    for (i, s) in spans.iter().enumerate() {
        if let Err(answer) = validate_span(i, s) {
            return answer;
        }
    }
    for f in ["trace_name", "project_id", "external_id"] {
        if !matches!(
            body.get(f),
            None | Some(Value::Null) | Some(Value::String(_))
        ) {
            return invalid(vec![json!("body"), json!(f)], "must be a string or null");
        }
    }
    if !matches!(
        body.get("trace_metadata"),
        None | Some(Value::Null) | Some(Value::Object(_))
    ) {
        return invalid(
            vec![json!("body"), json!("trace_metadata")],
            "must be an object or null",
        );
    }
    // The server's quirk: everything goes under the first span's trace.
    let trace_id = spans[0]["trace_id"].as_str().unwrap_or_default().to_owned();
    let mut store = lock(&shared.store);
    let mut seen = HashSet::new();
    for s in &spans {
        let id = s["span_id"].as_str().unwrap_or_default();
        if store.span_ids.contains(id) || !seen.insert(id) {
            return error(
                500,
                format!("duplicate key value violates unique constraint: span_id={id}"),
            );
        }
    }
    let at = match store.index.get(&trace_id) {
        Some(&i) => i,
        None => {
            let metadata = body
                .get("trace_metadata")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            store.traces.push(StoredTrace {
                trace_id: trace_id.clone(),
                metadata,
                ..StoredTrace::default()
            });
            let i = store.traces.len() - 1;
            store.index.insert(trace_id.clone(), i);
            i
        }
    };
    if let Some(name) = body
        .get("trace_name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        store.traces[at].name = Some(name.to_owned());
    }
    let count = spans.len();
    for mut s in spans {
        let id = s["span_id"].as_str().unwrap_or_default().to_owned();
        s["filed_under"] = json!(trace_id);
        store.span_ids.insert(id);
        store.traces[at].spans.push(s);
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
        .find(|s| s["span_id"] == span)
    else {
        return error(404, format!("Span '{span}' not found"));
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let stamp =
        vigil_core::Timestamp::from_unix_nanos(u64::try_from(now.as_nanos()).unwrap_or(u64::MAX));
    let event = json!({"name": name, "timestamp": stamp.to_string(), "attributes": attributes});
    if let Some(events) = s.get_mut("events").and_then(Value::as_array_mut) {
        events.push(event.clone());
    } else {
        s["events"] = json!([event.clone()]);
    }
    (201, event.to_string(), None, None)
}
