//! A loopback OTLP/HTTP trace receiver: `POST /v1/traces` with protobuf or
//! OTLP/JSON bodies, gzipped or not, decoded with the generated OTLP types
//! (`opentelemetry-proto`) and kept for the test to read.
//!
//! Faults can be injected: failing statuses with `Retry-After`, and
//! `partial_success` answers rejecting some spans.
//!
//! ```
//! use vigil_test_server::otlp::OtlpReceiver;
//!
//! let receiver = OtlpReceiver::start();
//! assert!(receiver.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(receiver.span_count(), 0);
//! ```

use std::io::{BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::{lock, read_request, respond_raw, HttpRequest, Incoming};

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// Its `Content-Type`.
    pub content_type: String,
    /// Its `Content-Encoding`, if any.
    pub content_encoding: Option<String>,
    /// Its headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body's length on the wire.
    pub body_len: usize,
    /// The status answered.
    pub status: u16,
    /// The decoded body, when it decoded.
    pub request: Option<ExportTraceServiceRequest>,
}

/// A span as received, with the attributes of the resource it came under.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// The resource's attributes.
    pub resource: Vec<KeyValue>,
    /// The span.
    pub span: Span,
}

#[derive(Default)]
struct Faults {
    /// For the next requests in turn: answered as usual (`None`), or
    /// failed with a status (and `Retry-After` seconds).
    fail: Vec<Option<(u16, Option<u64>)>>,
    /// `partial_success` answers for the next accepted requests.
    partial: Vec<(i64, String)>,
    latency: Duration,
}

#[derive(Default)]
struct State {
    received: Mutex<Vec<Received>>,
    faults: Mutex<Faults>,
    stop: AtomicBool,
}

/// The receiver; stops when dropped.
pub struct OtlpReceiver {
    url: String,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl OtlpReceiver {
    /// Starts on `127.0.0.1` with an ephemeral port.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound (a test cannot go on then).
    pub fn start() -> OtlpReceiver {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let state = Arc::new(State::default());
        let shared = state.clone();
        let acceptor = thread::spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let shared = shared.clone();
                        thread::spawn(move || serve(stream, &shared));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        OtlpReceiver {
            url,
            state,
            acceptor: Some(acceptor),
        }
    }

    /// The base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`); traces go to `{url}/v1/traces`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// Every span of the requests answered `2xx`, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let received = lock(&self.state.received);
        let mut out = Vec::new();
        for r in received.iter().filter(|r| r.status == 200) {
            for rs in r.request.iter().flat_map(|q| &q.resource_spans) {
                let resource = rs
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.clone())
                    .unwrap_or_default();
                for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                    out.push(ReceivedSpan {
                        resource: resource.clone(),
                        span: span.clone(),
                    });
                }
            }
        }
        out
    }

    /// How many spans were accepted.
    pub fn span_count(&self) -> usize {
        let received = lock(&self.state.received);
        received
            .iter()
            .filter(|r| r.status == 200)
            .flat_map(|r| r.request.iter().flat_map(|q| &q.resource_spans))
            .flat_map(|rs| &rs.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    }

    /// Answers the next `n` requests with `status` (and `Retry-After`), storing nothing.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let mut faults = lock(&self.state.faults);
        faults
            .fail
            .extend(std::iter::repeat_n(Some((status, retry_after)), n));
    }

    /// Answers the next `n` requests as usual, then fails one with `status`.
    pub fn fail_after(&self, n: usize, status: u16) {
        let mut faults = lock(&self.state.faults);
        faults.fail.extend(std::iter::repeat_n(None, n));
        faults.fail.push(Some((status, None)));
    }

    /// Answers the next accepted request with a `partial_success` rejecting
    /// `rejected` spans (the spans are kept all the same).
    pub fn reject_partially(&self, rejected: i64, message: &str) {
        lock(&self.state.faults)
            .partial
            .push((rejected, message.to_owned()));
    }

    /// Waits before answering each request.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.state.faults).latency = latency;
    }

    /// Waits up to `timeout` until `n` spans were accepted; whether they were.
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.span_count() < n {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(2));
        }
        true
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn serve(stream: TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let alive = || !state.stop.load(Ordering::SeqCst);
    while alive() {
        let request = match read_request(&mut reader, &alive) {
            Incoming::Request(r) => r,
            Incoming::Closed => break,
            Incoming::Bad(why) => {
                let _ = respond_raw(&mut writer, 400, "text/plain", why.as_bytes(), "", true);
                break;
            }
        };
        let latency = lock(&state.faults).latency;
        if !latency.is_zero() {
            thread::sleep(latency);
        }
        let (status, content_type, body, extra) = answer(&request, state);
        if respond_raw(&mut writer, status, content_type, &body, &extra, false).is_err() {
            break;
        }
    }
}

fn answer(r: &HttpRequest, state: &State) -> (u16, &'static str, Vec<u8>, String) {
    let content_type = r.header("content-type").unwrap_or("").to_owned();
    let content_encoding = r.header("content-encoding").map(str::to_owned);
    let mut received = Received {
        at: Instant::now(),
        content_type: content_type.clone(),
        content_encoding: content_encoding.clone(),
        headers: r
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect(),
        body_len: r.body.len(),
        status: 0,
        request: None,
    };
    let json = content_type.starts_with("application/json");
    let reply = |status: u16, body: Vec<u8>, extra: String| {
        let ct = if json {
            "application/json"
        } else {
            "application/x-protobuf"
        };
        (status, ct, body, extra)
    };
    let result = if r.method != "POST" || r.path != "/v1/traces" {
        (404, "text/plain", b"not found".to_vec(), String::new())
    } else if let Some((status, after)) = {
        let mut faults = lock(&state.faults);
        if faults.fail.is_empty() {
            None
        } else {
            faults.fail.remove(0)
        }
    } {
        let extra = after
            .map(|a| format!("Retry-After: {a}\r\n"))
            .unwrap_or_default();
        (status, "text/plain", b"injected".to_vec(), extra)
    } else {
        match decode(&r.body, content_encoding.as_deref(), json) {
            Ok(request) => {
                received.request = Some(request);
                let partial = {
                    let mut faults = lock(&state.faults);
                    (!faults.partial.is_empty()).then(|| faults.partial.remove(0))
                };
                let response = ExportTraceServiceResponse {
                    partial_success: partial.map(|(rejected_spans, error_message)| {
                        ExportTracePartialSuccess {
                            rejected_spans,
                            error_message,
                        }
                    }),
                };
                let body = if json {
                    serde_json::to_vec(&response).unwrap_or_default()
                } else {
                    response.encode_to_vec()
                };
                reply(200, body, String::new())
            }
            Err(why) => (400, "text/plain", why.into_bytes(), String::new()),
        }
    };
    received.status = result.0;
    lock(&state.received).push(received);
    result
}

fn decode(
    body: &[u8],
    encoding: Option<&str>,
    json: bool,
) -> Result<ExportTraceServiceRequest, String> {
    let plain;
    let bytes = match encoding {
        None | Some("identity") => body,
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .map_err(|e| format!("bad gzip body: {e}"))?;
            plain = out;
            &plain
        }
        Some(other) => return Err(format!("unsupported Content-Encoding {other}")),
    };
    if json {
        serde_json::from_slice(bytes).map_err(|e| format!("bad OTLP/JSON body: {e}"))
    } else {
        ExportTraceServiceRequest::decode(bytes).map_err(|e| format!("bad protobuf body: {e}"))
    }
}
