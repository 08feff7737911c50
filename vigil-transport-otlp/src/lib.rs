//! OTLP/HTTP export for the Vigil SDK: Vigil's traces in any OpenTelemetry
//! backend (a Collector, Jaeger, Tempo, Langfuse, Arize Phoenix...).
//!
//! [`OtlpTransport`] is a [`Transport`]: the exporter hands it the same
//! requests it would send to the Vigil server, from the same queue with the
//! same batching and backoff, and it posts each as one OTLP
//! `ExportTraceServiceRequest` to `{endpoint}/v1/traces`, protobuf
//! (`application/x-protobuf`) or, with the `json` feature, OTLP/JSON,
//! gzipped if asked. It is blocking, on the exporter thread, over the ureq
//! client of `vigil-transport-ureq` ([`vigil_transport_ureq::HttpAgent`]:
//! timeouts, TLS, no redirects, header values kept out of logs).
//!
//! ```no_run
//! use vigil_transport_otlp::{OtlpConfig, OtlpTransport};
//!
//! let otlp = OtlpConfig::builder("http://localhost:4318")
//!     .service_name("support-agent")
//!     .build()
//!     .unwrap();
//! let config = vigil::Config::builder()
//!     .transport(move || OtlpTransport::new(&otlp))
//!     .build()
//!     .unwrap();
//! let _guard = vigil::init(config).unwrap().shutdown_on_drop();
//! ```
//!
//! With the `vigil` crate's `otlp` feature, `vigil::init_from_env()` does
//! this when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set
//! ([`OtlpConfig::from_env`]), besides the Vigil server when `VIGIL_ENDPOINT`
//! is set too. To ship to both from code, give the OTLP transport to
//! `ConfigBuilder::also_transport`: each destination then has its own
//! exporter, retries and counters.
//!
//! # Mapping
//!
//! The transport takes the spans of many traces per request
//! ([`Transport::takes_many_traces`]): the exporter sends a whole batch
//! (`batch_size` spans, 100 by default) at once, as far as
//! `max_request_bytes` of Vigil's encoding allows, and sends no trace
//! `PATCH`. Each request becomes one `ResourceSpans`:
//!
//! - resource: `service.name` (configured, `OTEL_SERVICE_NAME`, else
//!   `unknown_service:<executable>`), `telemetry.sdk.{name,language,version}` (`vigil`,
//!   `rust`), `vigil.project_id` and `openinference.project.name` (the
//!   project id: Phoenix files spans by it), `service.version` and
//!   `deployment.environment.name` from the `release` and `environment`
//!   options, and `OTEL_RESOURCE_ATTRIBUTES` (which win);
//! - ids: the trace id's 16 bytes as they are; a span id's 16 bytes folded
//!   to 8 ([`span_id_bytes`]), parents folded the same way, and the Vigil id
//!   kept as `vigil.span_id`;
//! - kind: `CLIENT` for `llm` and `retriever` spans (a call out of the
//!   process, as the GenAI conventions say for inference and retrieval),
//!   `INTERNAL` for the rest (the Vigil kind is `openinference.span.kind`'s
//!   value, which maps to it one to one);
//! - status: `ok` → `OK`, `error` → `ERROR` with the output's `error`
//!   message, `unset` → unset;
//! - events with their times and attributes; metadata as attributes, typed
//!   (strings, ints, doubles, bools, arrays of one type; objects and mixed
//!   arrays as JSON text);
//! - `openinference.span.kind` on every span, `input.value`/`output.value`
//!   (JSON text) when there is content; on `llm`, `tool`, `agent` and
//!   `retriever` spans `gen_ai.operation.name`; on `llm` spans
//!   `gen_ai.provider.name`, `gen_ai.request.*` from the input's parameters,
//!   `gen_ai.response.model`, `gen_ai.usage.{input,output}_tokens`,
//!   `llm.model_name`, `llm.token_count.{prompt,completion,total}`,
//!   `llm.cost.{prompt,completion,total}` from Vigil's price (`vigil.cost`), and, when
//!   [`OtlpConfigBuilder::capture_content`] is on (the default), the messages as
//!   `gen_ai.input.messages`/`gen_ai.output.messages` and OpenInference's
//!   flattened `llm.{input,output}_messages`; on `tool` spans
//!   `gen_ai.tool.name` and the call's arguments and result.
//!
//! There is no `PATCH` (the trace's final status, for the Vigil server's
//! trace row): OTLP has no trace entity, and the root span already carries
//! that status and metadata. One that reaches the transport anyway is
//! answered as delivered without a request.
//!
//! # The OTLP rules
//!
//! | answer | outcome |
//! |---|---|
//! | `2xx` | delivered; spans a `partial_success` names as rejected are counted ([`OtlpStats::rejected_spans`]) and logged once, not retried |
//! | `429`, `502`, `503`, `504` | retried, after `Retry-After` when given |
//! | connection refused, DNS, TLS, timeouts | retried (as the Vigil transport does) |
//! | any other status (`400`, `401`, `404`, `413`, `500`...) | rejected, logged once per status |
//!
//! A request whose OTLP body exceeds [`OtlpConfigBuilder::max_request_bytes`]
//! (4 MiB by default) is sent in several, by spans; a span that alone
//! exceeds it goes without its content attributes, marked
//! `vigil.truncated = ["oversize"]`. If a later part fails and is retried,
//! the parts already delivered are not sent again.
//!
//! # Features
//!
//! - `gzip` (default): `compression = gzip`, with flate2's pure-Rust backend.
//! - `json`: OTLP/JSON bodies (`http/json`).
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message;
use vigil_core::transport::RequestKind;
use vigil_core::{Outcome, Request, RetryReason, Transport};
use vigil_transport_ureq::HttpAgent;

mod convert;
mod env;

pub use convert::{span_id_bytes, VIGIL_PROJECT_ID, VIGIL_SPAN_ID};
pub use env::OtlpEnvError;

/// Trace metadata keys read into resource and span attributes (the same
/// names as `vigil::keys`).
const RELEASE: &str = "release";
const ENVIRONMENT: &str = "environment";
const SESSION_ID: &str = "session_id";
const USER_ID: &str = "user_id";

/// Default cap on one OTLP request body.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 << 20;
/// Smallest [`OtlpConfigBuilder::max_request_bytes`] accepted.
pub const MIN_REQUEST_BYTES: usize = 4096;
/// Default timeout of one request (`OTEL_EXPORTER_OTLP_TIMEOUT`'s default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read (a `partial_success` is short).
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// The body encoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// `http/protobuf`: `application/x-protobuf` (the default).
    #[default]
    HttpProtobuf,
    /// `http/json`: OTLP/JSON, `application/json` (needs the `json` feature).
    #[cfg(feature = "json")]
    HttpJson,
}

/// The body compression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Bodies as they are (the default).
    #[default]
    None,
    /// `Content-Encoding: gzip` (needs the `gzip` feature).
    #[cfg(feature = "gzip")]
    Gzip,
}

/// Where and how to send OTLP, built by [`OtlpConfig::builder`] or read
/// from the environment ([`OtlpConfig::from_env`]). Header values never
/// appear in `Debug`.
///
/// ```
/// use std::time::Duration;
/// use vigil_transport_otlp::OtlpConfig;
///
/// let config = OtlpConfig::builder("https://otel.example.com:4318/")
///     .header("x-api-key", "secret")
///     .service_name("support-agent")
///     .timeout(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// assert_eq!(config.traces_url(), "https://otel.example.com:4318/v1/traces");
/// assert_eq!(config.timeout(), Duration::from_secs(5));
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct OtlpConfig {
    traces_url: String,
    headers: Vec<(String, String)>,
    protocol: Protocol,
    compression: Compression,
    timeout: Duration,
    service_name: Option<String>,
    resource: Vec<(String, String)>,
    max_request_bytes: usize,
    capture_content: bool,
}

impl fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpConfig")
            .field(
                "traces_url",
                &vigil_core::config::RedactedUrl(&self.traces_url),
            )
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("protocol", &self.protocol)
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .field("service_name", &self.service_name)
            .field("resource", &self.resource)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("capture_content", &self.capture_content)
            .finish()
    }
}

impl OtlpConfig {
    /// A builder sending to `{endpoint}/v1/traces` (`http://localhost:4318`
    /// is a local Collector), protobuf, uncompressed, with a 10 s timeout.
    pub fn builder(endpoint: &str) -> OtlpConfigBuilder {
        OtlpConfigBuilder(OtlpConfig {
            traces_url: format!("{}/v1/traces", endpoint.trim_end_matches('/')),
            headers: Vec::new(),
            protocol: Protocol::default(),
            compression: Compression::default(),
            timeout: DEFAULT_TIMEOUT,
            service_name: None,
            resource: Vec::new(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            capture_content: true,
        })
    }

    /// The URL requests are posted to.
    pub fn traces_url(&self) -> &str {
        &self.traces_url
    }

    /// The extra headers.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body encoding.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The body compression.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The resource's `service.name`, as configured (`None`:
    /// `unknown_service:<executable>`).
    pub fn service_name(&self) -> Option<&str> {
        self.service_name.as_deref()
    }

    /// The extra resource attributes.
    pub fn resource_attributes(&self) -> &[(String, String)] {
        &self.resource
    }

    /// The largest body sent in one request.
    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }

    /// Whether content travels as attributes.
    pub fn capture_content(&self) -> bool {
        self.capture_content
    }
}

/// Sets [`OtlpConfig`]'s options one by one; [`OtlpConfigBuilder::build`]
/// checks them.
#[derive(Clone, Debug)]
pub struct OtlpConfigBuilder(OtlpConfig);

impl OtlpConfigBuilder {
    /// Sends to exactly `url` (as `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    pub fn traces_endpoint(mut self, url: &str) -> Self {
        self.0.traces_url = url.to_owned();
        self
    }

    /// Adds a header to every request (an API key, a tenant id). Headers the
    /// transport sets itself (`Content-Type`, `Content-Encoding`,
    /// `Content-Length`, `Host`...) are refused by [`OtlpConfigBuilder::build`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.headers.push((name.into(), value.into()));
        self
    }

    /// The body encoding.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.0.protocol = protocol;
        self
    }

    /// The body compression.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.0.compression = compression;
        self
    }

    /// The longest a request may take (the exporter may give it less, at a
    /// shutdown deadline; at least 1 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.0.timeout = timeout;
        self
    }

    /// The resource's `service.name`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.0.service_name = Some(name.into());
        self
    }

    /// Adds a string attribute to the resource.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.resource.push((key.into(), value.into()));
        self
    }

    /// The largest body sent in one request (4 MiB by default, at least
    /// [`MIN_REQUEST_BYTES`]); a larger one is sent in parts.
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.0.max_request_bytes = bytes;
        self
    }

    /// Whether LLM messages and tool arguments and results travel as
    /// attributes (`gen_ai.input.messages`, `input.value`...; default true).
    /// Vigil records no content at all when its own `capture_content` is off.
    pub fn capture_content(mut self, on: bool) -> Self {
        self.0.capture_content = on;
        self
    }

    /// Checks the options and returns the configuration.
    ///
    /// ```
    /// use vigil_transport_otlp::{OtlpConfig, OtlpConfigError};
    ///
    /// let error = OtlpConfig::builder("localhost:4318").build().unwrap_err();
    /// assert_eq!(error, OtlpConfigError::Endpoint);
    /// let error = OtlpConfig::builder("http://localhost:4318")
    ///     .header("Content-Encoding", "br")
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(error.to_string(), "invalid OTLP header `Content-Encoding`: the transport sets it");
    /// ```
    pub fn build(self) -> Result<OtlpConfig, OtlpConfigError> {
        let c = self.0;
        let rest = c
            .traces_url
            .strip_prefix("http://")
            .or_else(|| c.traces_url.strip_prefix("https://"));
        if !rest.is_some_and(|host| !host.is_empty() && !host.starts_with('/')) {
            return Err(OtlpConfigError::Endpoint);
        }
        for (name, value) in &c.headers {
            if !env::is_token(name) || value.chars().any(char::is_control) {
                return Err(OtlpConfigError::Header(
                    name.clone(),
                    "not a valid HTTP header",
                ));
            }
            if RESERVED_HEADERS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
            {
                return Err(OtlpConfigError::Header(
                    name.clone(),
                    "the transport sets it",
                ));
            }
        }
        if c.timeout < Duration::from_millis(1) {
            return Err(OtlpConfigError::Timeout(c.timeout));
        }
        if c.max_request_bytes < MIN_REQUEST_BYTES {
            return Err(OtlpConfigError::RequestBytes(c.max_request_bytes));
        }
        Ok(c)
    }
}

/// Headers the transport writes itself, compared without case.
const RESERVED_HEADERS: [&str; 8] = [
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "host",
    "connection",
    "te",
    "upgrade",
];

/// An [`OtlpConfig`] option the transport cannot work with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtlpConfigError {
    /// The endpoint is not an `http://` or `https://` URL with a host.
    Endpoint,
    /// A header (named) is not a valid HTTP header, or one the transport sets.
    Header(String, &'static str),
    /// The timeout is below 1 ms.
    Timeout(Duration),
    /// `max_request_bytes` is below [`MIN_REQUEST_BYTES`].
    RequestBytes(usize),
}

impl fmt::Display for OtlpConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtlpConfigError::Endpoint => {
                f.write_str("invalid OTLP endpoint: must be an http:// or https:// URL with a host")
            }
            OtlpConfigError::Header(name, why) => write!(f, "invalid OTLP header `{name}`: {why}"),
            OtlpConfigError::Timeout(t) => {
                write!(f, "invalid OTLP timeout: must be at least 1 ms (got {t:?})")
            }
            OtlpConfigError::RequestBytes(n) => write!(
                f,
                "invalid OTLP max_request_bytes: must be at least {MIN_REQUEST_BYTES} (got {n})"
            ),
        }
    }
}

impl std::error::Error for OtlpConfigError {}

/// Counts an [`OtlpTransport`] keeps that the exporter's `Stats` cannot
/// hold; a handle that stays valid after the transport moved to the
/// exporter thread.
#[derive(Clone, Debug, Default)]
pub struct OtlpStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    rejected_spans: AtomicU64,
    oversize_spans: AtomicU64,
}

impl OtlpStats {
    /// HTTP requests answered `2xx`.
    pub fn requests(&self) -> u64 {
        self.0.requests.load(Ordering::Relaxed)
    }

    /// Spans a receiver accepted the request of but refused
    /// (`partial_success.rejected_spans`), or dropped here because even
    /// without content they exceed `max_request_bytes`. The exporter counts
    /// them as delivered: their request was answered, and OTLP says not to
    /// retry them.
    pub fn rejected_spans(&self) -> u64 {
        self.0.rejected_spans.load(Ordering::Relaxed)
    }

    /// Spans sent without their content attributes because they alone
    /// exceeded `max_request_bytes`.
    pub fn oversize_spans(&self) -> u64 {
        self.0.oversize_spans.load(Ordering::Relaxed)
    }
}

/// Posts Vigil's requests as OTLP; see the crate docs.
pub struct OtlpTransport {
    http: HttpAgent,
    url: String,
    /// Header names and what ureq is given as their values (placeholders).
    headers: Vec<(String, String)>,
    protocol: Protocol,
    compression: Compression,
    resource: convert::ResourceTemplate,
    max_request_bytes: usize,
    stats: OtlpStats,
    /// A request sent in parts that failed part way: which, and how many
    /// parts were delivered.
    resume: Option<(u64, usize)>,
    /// Statuses already logged, so a misconfiguration is reported once.
    logged: HashSet<u16>,
    /// A `partial_success` rejection was logged.
    warned_partial: bool,
    /// Requests are failing without an answer: said once, until one is answered.
    failing: bool,
}

impl fmt::Debug for OtlpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpTransport")
            .field("url", &vigil_core::config::RedactedUrl(&self.url))
            .field("protocol", &self.protocol)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl OtlpTransport {
    /// A transport for `config`.
    pub fn new(config: &OtlpConfig) -> Self {
        let secrets = config.headers.iter().map(|(_, v)| v.clone()).collect();
        let http = HttpAgent::new(config.timeout, secrets);
        let headers = config
            .headers
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), http.placeholder(i).to_owned()))
            .collect();
        if !config.headers.is_empty()
            && config.traces_url.starts_with("http://")
            && !vigil_transport_ureq::is_loopback(&config.traces_url)
        {
            log::warn!(
                "vigil: OTLP headers are sent over plain http to {:?}; use https for anything but a local receiver",
                vigil_core::config::RedactedUrl(&config.traces_url)
            );
        }
        // The resource conventions' default: `unknown_service:<executable>`.
        let service = config.service_name.clone().unwrap_or_else(|| {
            let exe = std::env::current_exe().ok();
            match exe.as_ref().and_then(|p| p.file_stem()) {
                Some(name) => format!("unknown_service:{}", name.to_string_lossy()),
                None => "unknown_service".to_owned(),
            }
        });
        OtlpTransport {
            http,
            url: config.traces_url.clone(),
            headers,
            protocol: config.protocol,
            compression: config.compression,
            resource: convert::ResourceTemplate::new(
                &service,
                &config.resource,
                config.capture_content,
            ),
            max_request_bytes: config.max_request_bytes,
            stats: OtlpStats::default(),
            resume: None,
            logged: HashSet::new(),
            warned_partial: false,
            failing: false,
        }
    }

    /// A handle on this transport's counts.
    pub fn stats(&self) -> OtlpStats {
        self.stats.clone()
    }

    /// The request as one or more bodies within the size cap.
    fn parts(&self, request: ExportTraceServiceRequest) -> Vec<ExportTraceServiceRequest> {
        if self.encoded_len(&request) <= self.max_request_bytes {
            return vec![request];
        }
        let Some(mut rs) = request.resource_spans.into_iter().next() else {
            return Vec::new();
        };
        let Some(mut scope) = rs.scope_spans.pop() else {
            return Vec::new();
        };
        let spans = std::mem::take(&mut scope.spans);
        let empty = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![scope],
                ..rs
            }],
        };
        // Room for spans: the cap less the envelope, with slack for the
        // length prefixes a fuller request needs.
        let room = self
            .max_request_bytes
            .saturating_sub(self.encoded_len(&empty) + 16);
        let mut parts = Vec::new();
        let mut current: Vec<Span> = Vec::new();
        let mut used = 0;
        for mut span in spans {
            let mut len = span_len(&span);
            if len > room {
                strip_content(&mut span);
                self.stats.0.oversize_spans.fetch_add(1, Ordering::Relaxed);
                len = span_len(&span);
                if len > room {
                    self.stats.0.rejected_spans.fetch_add(1, Ordering::Relaxed);
                    log::warn!("vigil: a span exceeds the OTLP request size even without its content; dropped");
                    continue;
                }
            }
            if used + len > room && !current.is_empty() {
                parts.push(std::mem::take(&mut current));
                used = 0;
            }
            used += len;
            current.push(span);
        }
        if !current.is_empty() {
            parts.push(current);
        }
        parts
            .into_iter()
            .map(|spans| {
                let mut part = empty.clone();
                part.resource_spans[0].scope_spans[0].spans = spans;
                part
            })
            .collect()
    }

    fn encoded_len(&self, request: &ExportTraceServiceRequest) -> usize {
        match self.protocol {
            Protocol::HttpProtobuf => request.encoded_len(),
            #[cfg(feature = "json")]
            Protocol::HttpJson => serde_json::to_vec(request).map_or(usize::MAX, |b| b.len()),
        }
    }

    fn body(&self, request: &ExportTraceServiceRequest) -> Vec<u8> {
        let plain = match self.protocol {
            Protocol::HttpProtobuf => request.encode_to_vec(),
            #[cfg(feature = "json")]
            Protocol::HttpJson => serde_json::to_vec(request).unwrap_or_default(),
        };
        match self.compression {
            Compression::None => plain,
            #[cfg(feature = "gzip")]
            Compression::Gzip => {
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(
                    Vec::with_capacity(plain.len() / 4),
                    flate2::Compression::fast(),
                );
                // Writing to a Vec cannot fail.
                let _ = gz.write_all(&plain);
                gz.finish().unwrap_or_default()
            }
        }
    }

    /// Posts one body; the outcome as the table in the crate docs says.
    fn post(&mut self, body: &[u8], timeout: Duration) -> Outcome {
        let content_type = match self.protocol {
            Protocol::HttpProtobuf => "application/x-protobuf",
            #[cfg(feature = "json")]
            Protocol::HttpJson => "application/json",
        };
        let mut builder = self
            .http
            .agent()
            .post(&self.url)
            .header("Content-Type", content_type);
        #[cfg(feature = "gzip")]
        if self.compression == Compression::Gzip {
            builder = builder.header("Content-Encoding", "gzip");
        }
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let result = builder
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(body);
        let mut response = match result {
            Ok(response) => response,
            Err(error) => {
                self.http.forget_resolved();
                let outcome = vigil_transport_ureq::outcome_of_error(&error);
                if !self.failing && matches!(outcome, Outcome::Retry { .. }) {
                    self.failing = true;
                    log::warn!(
                        "vigil: the OTLP endpoint {:?} cannot be reached: {error}; spans wait in the queue and are sent when it answers",
                        vigil_core::config::RedactedUrl(&self.url)
                    );
                }
                return outcome;
            }
        };
        if std::mem::take(&mut self.failing) {
            log::warn!(
                "vigil: the OTLP endpoint {:?} answers again",
                vigil_core::config::RedactedUrl(&self.url)
            );
        }
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| vigil_transport_ureq::parse_retry_after(v, SystemTime::now()));
        let json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let mut answer = Vec::new();
        let _ = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .reader()
            .read_to_end(&mut answer);
        let outcome = outcome_of_status(status, retry_after);
        match outcome {
            Outcome::Delivered => {
                self.stats.0.requests.fetch_add(1, Ordering::Relaxed);
                self.count_partial(&answer, json);
            }
            Outcome::Rejected if self.logged.insert(status) => {
                let message = String::from_utf8_lossy(&answer);
                log::error!(
                    "vigil: the OTLP endpoint refused spans with {status} and will not be asked again for them: {}",
                    message.chars().take(500).collect::<String>()
                );
            }
            _ => {}
        }
        outcome
    }

    fn count_partial(&mut self, answer: &[u8], json: bool) {
        let response = if json {
            decode_json_response(answer)
        } else {
            ExportTraceServiceResponse::decode(answer).ok()
        };
        let Some(partial) = response.and_then(|r| r.partial_success) else {
            return;
        };
        if partial.rejected_spans > 0 {
            let rejected = u64::try_from(partial.rejected_spans).unwrap_or(0);
            self.stats
                .0
                .rejected_spans
                .fetch_add(rejected, Ordering::Relaxed);
            // Once, not per request: the count keeps the rest.
            if !std::mem::replace(&mut self.warned_partial, true) {
                log::warn!(
                    "vigil: the OTLP endpoint rejected {rejected} spans of a request: {}",
                    partial.error_message
                );
            }
        }
    }
}

#[cfg(feature = "json")]
fn decode_json_response(answer: &[u8]) -> Option<ExportTraceServiceResponse> {
    serde_json::from_slice(answer).ok()
}

/// Without the `json` feature, a JSON answer is read for its rejected count only.
#[cfg(not(feature = "json"))]
fn decode_json_response(answer: &[u8]) -> Option<ExportTraceServiceResponse> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
    let value: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let partial = value.get("partialSuccess")?;
    let rejected = match partial.get("rejectedSpans")? {
        serde_json::Value::String(s) => s.parse().ok()?,
        n => n.as_i64()?,
    };
    Some(ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: rejected,
            error_message: partial
                .get("errorMessage")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        }),
    })
}

fn span_len(span: &Span) -> usize {
    // The span's bytes and its field tag and length prefix.
    let len = span.encoded_len();
    len + prost::length_delimiter_len(len) + 1
}

/// Drops the attributes that carry content, and the events, and marks the
/// span `vigil.truncated = ["oversize"]`.
fn strip_content(span: &mut Span) {
    use vigil_core::llm::{genai, openinference};
    const CONTENT: [&str; 7] = [
        openinference::INPUT_VALUE,
        openinference::OUTPUT_VALUE,
        genai::INPUT_MESSAGES,
        genai::OUTPUT_MESSAGES,
        genai::TOOL_CALL_ARGUMENTS,
        genai::TOOL_CALL_RESULT,
        openinference::LLM_INVOCATION_PARAMETERS,
    ];
    span.attributes.retain(|a| {
        !CONTENT.contains(&a.key.as_str())
            && !a.key.starts_with(openinference::LLM_INPUT_MESSAGES)
            && !a.key.starts_with(openinference::LLM_OUTPUT_MESSAGES)
            && !a
                .value
                .as_ref()
                .and_then(|v| v.value.as_ref())
                .is_some_and(|v| matches!(v, any_value::Value::StringValue(s) if s.len() > 1024))
    });
    span.events.clear();
    span.attributes.push(KeyValue {
        key: "vigil.truncated".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::ArrayValue(
                opentelemetry_proto::tonic::common::v1::ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::StringValue("oversize".into())),
                    }],
                },
            )),
        }),
        ..KeyValue::default()
    });
}

impl Transport for OtlpTransport {
    fn send(&mut self, request: &Request<'_>) -> Outcome {
        if request.kind == RequestKind::Patch {
            // OTLP has no trace to update: the root span carried the status.
            return Outcome::Delivered;
        }
        let converted = match convert::convert(request.body, &self.resource) {
            Ok(converted) => converted,
            Err(convert::BadBody(why)) => {
                log::error!("vigil: cannot export a request as OTLP: {why}");
                return Outcome::Rejected;
            }
        };
        let parts = self.parts(converted);
        let fingerprint = (parts.len() > 1).then(|| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            request.trace_id.hash(&mut h);
            request.body.hash(&mut h);
            h.finish()
        });
        let mut first = 0;
        if let (Some(fp), Some((seen, done))) = (fingerprint, self.resume) {
            if fp == seen {
                first = done;
            }
        }
        self.resume = None;
        for (i, part) in parts.iter().enumerate().skip(first) {
            let outcome = self.post(&self.body(part), request.timeout);
            if outcome != Outcome::Delivered {
                if let (Some(fp), Outcome::Retry { .. }) = (fingerprint, outcome) {
                    self.resume = Some((fp, i));
                }
                return outcome;
            }
        }
        Outcome::Delivered
    }

    /// OTLP has no trace of its own to name or close: spans of many traces
    /// travel together, and a trace's status is its root span's.
    fn takes_many_traces(&self) -> bool {
        true
    }

    fn interrupter(&mut self) -> Option<vigil_core::transport::Interrupt> {
        let agent = self.http.agent().clone();
        Some(Box::new(move || agent.clone().shutdown()))
    }
}

/// What an HTTP status means for an OTLP export: retried only for `429`,
/// `502`, `503` and `504` (OTLP/HTTP's retryable statuses), delivered for
/// `2xx`, rejected for anything else.
///
/// ```
/// use vigil_core::{Outcome, RetryReason};
/// use vigil_transport_otlp::outcome_of_status;
///
/// assert_eq!(outcome_of_status(200, None), Outcome::Delivered);
/// assert_eq!(outcome_of_status(400, None), Outcome::Rejected);
/// assert_eq!(outcome_of_status(500, None), Outcome::Rejected);
/// assert!(matches!(outcome_of_status(503, None), Outcome::Retry { reason: RetryReason::Failed, .. }));
/// ```
pub fn outcome_of_status(status: u16, retry_after: Option<Duration>) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        429 => Outcome::Retry {
            after: retry_after,
            reason: RetryReason::RateLimited,
        },
        502..=504 => Outcome::Retry {
            after: retry_after,
            reason: RetryReason::Failed,
        },
        _ => Outcome::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_refuses_what_cannot_work() {
        let base = || OtlpConfig::builder("http://127.0.0.1:4318");
        assert!(base().build().is_ok());
        assert_eq!(
            base().timeout(Duration::ZERO).build().unwrap_err(),
            OtlpConfigError::Timeout(Duration::ZERO)
        );
        assert_eq!(
            base().max_request_bytes(100).build().unwrap_err(),
            OtlpConfigError::RequestBytes(100)
        );
        for (name, value) in [("bad name", "1"), ("x-key", "a\r\nb"), ("Host", "h")] {
            assert!(
                matches!(
                    base().header(name, value).build(),
                    Err(OtlpConfigError::Header(..))
                ),
                "{name}"
            );
        }
        for url in ["ftp://x", "http://", "http:///v1/traces", ""] {
            let built = OtlpConfig::builder("http://h").traces_endpoint(url).build();
            assert_eq!(built.unwrap_err(), OtlpConfigError::Endpoint, "{url}");
        }
    }

    #[test]
    fn only_the_otlp_retryable_statuses_are_retried() {
        for status in 100..600u16 {
            let outcome = outcome_of_status(status, None);
            match status {
                200..=299 => assert_eq!(outcome, Outcome::Delivered),
                429 | 502 | 503 | 504 => assert!(matches!(outcome, Outcome::Retry { .. })),
                _ => assert_eq!(outcome, Outcome::Rejected, "{status}"),
            }
        }
    }
}
