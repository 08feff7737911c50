//! The SDK's options, their defaults (those of the Python SDK) and validation.

use core::fmt;
use core::time::Duration;

/// Default server URL.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:8000";
/// Default project.
pub const DEFAULT_PROJECT_ID: &str = "default";
/// Default spans per request batch.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// Default time between flushes, in milliseconds.
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 500;
/// Default most spans held at once (queued or awaiting a retry).
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 10_000;
/// Default HTTP timeout, in seconds.
pub const DEFAULT_TIMEOUT_SECONDS: f64 = 10.0;
/// Default attempts per request before its spans are dropped.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The SDK's options, borrowing their text so no allocator is needed.
///
/// `vigil-std` keeps an owned form and validates through this one. The API key
/// never appears in `Debug` output.
///
/// ```
/// use vigil_core::{Settings, ConfigError};
///
/// let config = Settings { batch_size: 0, ..Settings::default() };
/// assert_eq!(config.validate(), Err(ConfigError::BatchSize(0)));
/// assert_eq!(ConfigError::BatchSize(0).field(), "batch_size");
/// ```
#[derive(Clone, Copy)]
pub struct Settings<'a> {
    /// Server base URL (`http://` or `https://`); a trailing `/` is ignored.
    pub endpoint: &'a str,
    /// Sent as `Authorization: Bearer <api_key>` when not empty.
    pub api_key: &'a str,
    /// Sent as `project_id` with every ingest request.
    pub project_id: &'a str,
    /// Spans per request batch; also the queue length that triggers a flush.
    pub batch_size: usize,
    /// Longest time a span waits in the queue before a flush, in milliseconds.
    pub flush_interval_ms: u64,
    /// Most spans held at once, counting those awaiting a retry.
    ///
    /// The queue holds them in up to four lanes (one shared, three that
    /// threads own), each of `max_queue_size.next_power_of_two()` slots of
    /// `size_of::<Span<B>>() + 8` bytes (128 for the std SDK's spans on a
    /// 64-bit target; a span's text lives in buffers of its own). A lane
    /// costs memory once a thread has used it, all of its slots once it has
    /// carried that many spans: 2 MiB a lane and 8 MiB at most at the
    /// default 10,000, whatever the number of threads.
    pub max_queue_size: usize,
    /// Timeout of one HTTP request, in seconds.
    pub timeout_seconds: f64,
    /// When false the SDK records nothing.
    pub enabled: bool,
    /// Attempts per request before its spans are dropped.
    pub max_attempts: u32,
    /// Extra HTTP headers sent with every request.
    pub headers: &'a [(&'a str, &'a str)],
}

impl Default for Settings<'_> {
    fn default() -> Self {
        Settings {
            endpoint: DEFAULT_ENDPOINT,
            api_key: "",
            project_id: DEFAULT_PROJECT_ID,
            batch_size: DEFAULT_BATCH_SIZE,
            flush_interval_ms: DEFAULT_FLUSH_INTERVAL_MS,
            max_queue_size: DEFAULT_MAX_QUEUE_SIZE,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            enabled: true,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            headers: &[],
        }
    }
}

impl fmt::Debug for Settings<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &RedactedUrl(self.endpoint))
            .field("api_key", &Redacted(self.api_key))
            .field("project_id", &self.project_id)
            .field("batch_size", &self.batch_size)
            .field("flush_interval_ms", &self.flush_interval_ms)
            .field("max_queue_size", &self.max_queue_size)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("enabled", &self.enabled)
            .field("max_attempts", &self.max_attempts)
            .field("headers", &HeaderNames(self.headers))
            .finish()
    }
}

/// A URL with any `user:password@` shown as `<redacted>@`.
pub struct RedactedUrl<'a>(pub &'a str);

impl fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0;
        let start = url.find("://").map_or(0, |i| i + 3);
        let authority_end = url[start..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| start + i);
        match url[start..authority_end].rfind('@') {
            Some(at) => write!(
                f,
                "\"{}<redacted>@{}\"",
                &url[..start],
                &url[start + at + 1..]
            ),
            None => write!(f, "{url:?}"),
        }
    }
}

/// Shows whether a secret is set, never its value.
pub struct Redacted<'a>(pub &'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

/// Shortest `timeout_seconds` accepted.
pub const MIN_TIMEOUT_SECONDS: f64 = 0.001;
/// Longest `timeout_seconds` accepted.
pub const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;

/// Header names only: values may hold credentials.
struct HeaderNames<'a>(&'a [(&'a str, &'a str)]);

impl fmt::Debug for HeaderNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// An option with a value the SDK cannot work with. [`ConfigError::field`]
/// names the option. Its `Debug` is its `Display`, so that an error returned
/// from `main` reads as a sentence.
#[derive(Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `endpoint` is empty.
    EmptyEndpoint,
    /// `endpoint` does not start with `http://` or `https://`, or has no host.
    EndpointScheme,
    /// `batch_size` is below 1.
    BatchSize(usize),
    /// `flush_interval_ms` is below 10.
    FlushInterval(u64),
    /// `timeout_seconds` is not a number from 0.001 (1 ms) to 86,400 (a day).
    Timeout(f64),
    /// `max_queue_size` is below `batch_size`.
    MaxQueueSize {
        /// The queue size given.
        max_queue_size: usize,
        /// The batch size it must reach.
        batch_size: usize,
    },
    /// `max_attempts` is 0.
    MaxAttempts,
    /// A header name is not an HTTP token, or its value holds a line break or
    /// other control character.
    Header,
    /// `sample_rate` is not a number from 0.0 to 1.0.
    SampleRate(f64),
    /// `api_key` holds a control character (a trailing newline from a secrets
    /// file, say), so it cannot travel in a header.
    ApiKey,
    /// `endpoint` holds a user name or password (`http://user:pass@host`):
    /// credentials go in `api_key`, never in the URL, where logs and
    /// `Debug` output would show them.
    EndpointCredentials,
    /// A header the transport sets itself (`Authorization`, `Content-Type`,
    /// `Content-Length`, `Transfer-Encoding`, `Content-Encoding`, `Host`,
    /// `Connection` and the other hop-by-hop headers) was given as an extra
    /// header.
    ReservedHeader,
    /// `max_queue_size` is above [`MAX_QUEUE_SIZE`].
    QueueTooLarge(usize),
    /// `max_request_bytes` is not from [`MIN_REQUEST_BYTES`] to [`MAX_REQUEST_BYTES`].
    RequestBytes(usize),
    /// `retry_backoff` is below [`MIN_RETRY_BACKOFF`] or above the 30 s cap.
    RetryBackoff(Duration),
    /// `keep_costlier_than` is not a finite number of dollars, 0 or more.
    CostLimit(f64),
    /// `tail_hold_timeout` is not from 1 ms to [`MAX_HOLD_TIMEOUT`].
    HoldTimeout(Duration),
    /// `spool_max_bytes` is below 1 KiB.
    SpoolBytes(u64),
    /// `spool_max_age` is below 1 s.
    SpoolAge(Duration),
}

/// Longest `tail_hold_timeout` accepted: spans held longer take places in
/// the queue that new spans need.
pub const MAX_HOLD_TIMEOUT: Duration = Duration::from_secs(3600);

/// Largest `max_queue_size` accepted: its slots are allocated up front.
pub const MAX_QUEUE_SIZE: usize = 1 << 24;
/// Smallest `max_request_bytes` accepted: one span with its envelope.
pub const MIN_REQUEST_BYTES: usize = 4096;
/// Largest `max_request_bytes` accepted: the request buffer is allocated up front.
pub const MAX_REQUEST_BYTES: usize = 64 << 20;
/// Shortest `retry_backoff` accepted: a shorter one retries an unreachable
/// server in a busy loop.
pub const MIN_RETRY_BACKOFF: Duration = Duration::from_millis(1);

/// Headers the transport writes itself, compared without case.
const RESERVED_HEADERS: [&str; 12] = [
    "authorization",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

impl ConfigError {
    /// The option at fault, as named in the configuration table.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::EmptyEndpoint | ConfigError::EndpointScheme => "endpoint",
            ConfigError::BatchSize(_) => "batch_size",
            ConfigError::FlushInterval(_) => "flush_interval_ms",
            ConfigError::Timeout(_) => "timeout_seconds",
            ConfigError::MaxQueueSize { .. } => "max_queue_size",
            ConfigError::MaxAttempts => "max_attempts",
            ConfigError::Header => "headers",
            ConfigError::SampleRate(_) => "sample_rate",
            ConfigError::ApiKey => "api_key",
            ConfigError::EndpointCredentials => "endpoint",
            ConfigError::ReservedHeader => "headers",
            ConfigError::QueueTooLarge(_) => "max_queue_size",
            ConfigError::RequestBytes(_) => "max_request_bytes",
            ConfigError::RetryBackoff(_) => "retry_backoff",
            ConfigError::CostLimit(_) => "keep_costlier_than",
            ConfigError::HoldTimeout(_) => "tail_hold_timeout",
            ConfigError::SpoolBytes(_) => "spool_max_bytes",
            ConfigError::SpoolAge(_) => "spool_max_age",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: ", self.field())?;
        match self {
            ConfigError::EmptyEndpoint => f.write_str("must not be empty"),
            ConfigError::EndpointScheme => {
                f.write_str("must be an http:// or https:// URL with a host")
            }
            ConfigError::BatchSize(n) => write!(f, "must be at least 1 (got {n})"),
            ConfigError::FlushInterval(n) => write!(f, "must be at least 10 (got {n})"),
            ConfigError::Timeout(t) => {
                write!(f, "must be from 0.001 to 86400 seconds (got {t})")
            }
            ConfigError::MaxQueueSize {
                max_queue_size,
                batch_size,
            } => write!(
                f,
                "must be at least batch_size ({batch_size}) (got {max_queue_size})"
            ),
            ConfigError::MaxAttempts => f.write_str("must be at least 1 (got 0)"),
            ConfigError::Header => {
                f.write_str("names must be HTTP tokens and values must not hold control characters")
            }
            ConfigError::SampleRate(r) => write!(f, "must be from 0.0 to 1.0 (got {r})"),
            // The value itself is a secret: never shown.
            ConfigError::ApiKey => f.write_str("must not hold control characters"),
            ConfigError::EndpointCredentials => f.write_str(
                "must not hold a user name or password (`user:pass@`); put the key in `api_key`",
            ),
            ConfigError::ReservedHeader => f.write_str(
                "must not set Authorization, Content-Type, Content-Length, Content-Encoding, Transfer-Encoding, Host, Connection or other hop-by-hop headers: the transport sets them",
            ),
            ConfigError::QueueTooLarge(n) => {
                write!(f, "must be at most {MAX_QUEUE_SIZE} (got {n})")
            }
            ConfigError::RequestBytes(n) => write!(
                f,
                "must be from {MIN_REQUEST_BYTES} to {MAX_REQUEST_BYTES} bytes (got {n})"
            ),
            ConfigError::RetryBackoff(d) => {
                write!(f, "must be from 1 ms to 30 s (got {d:?})")
            }
            ConfigError::CostLimit(usd) => {
                write!(f, "must be a number of US dollars, 0 or more (got {usd})")
            }
            ConfigError::HoldTimeout(d) => write!(f, "must be from 1 ms to 1 hour (got {d:?})"),
            ConfigError::SpoolBytes(n) => write!(f, "must be at least 1024 bytes (got {n})"),
            ConfigError::SpoolAge(d) => write!(f, "must be at least 1 s (got {d:?})"),
        }
    }
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::error::Error for ConfigError {}

impl Settings<'_> {
    /// Checks every option, reporting the first at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let endpoint = self.endpoint.trim();
        if endpoint.is_empty() {
            return Err(ConfigError::EmptyEndpoint);
        }
        let host = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .ok_or(ConfigError::EndpointScheme)?;
        if host.is_empty() || host.starts_with('/') {
            return Err(ConfigError::EndpointScheme);
        }
        let authority = host.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(ConfigError::EndpointCredentials);
        }
        if self.batch_size < 1 {
            return Err(ConfigError::BatchSize(self.batch_size));
        }
        if self.flush_interval_ms < 10 {
            return Err(ConfigError::FlushInterval(self.flush_interval_ms));
        }
        // Below a millisecond every request would time out at once; above a
        // day the clock arithmetic of HTTP clients can overflow.
        if !(MIN_TIMEOUT_SECONDS..=MAX_TIMEOUT_SECONDS).contains(&self.timeout_seconds) {
            return Err(ConfigError::Timeout(self.timeout_seconds));
        }
        if self.max_queue_size < self.batch_size {
            return Err(ConfigError::MaxQueueSize {
                max_queue_size: self.max_queue_size,
                batch_size: self.batch_size,
            });
        }
        if self.max_queue_size > MAX_QUEUE_SIZE {
            return Err(ConfigError::QueueTooLarge(self.max_queue_size));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::MaxAttempts);
        }
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        let clean = |s: &str| s.bytes().all(|b| b == b'\t' || !(b < 0x20 || b == 0x7f));
        if !self.headers.iter().all(|(n, v)| token(n) && clean(v)) {
            return Err(ConfigError::Header);
        }
        let reserved = |n: &str| RESERVED_HEADERS.iter().any(|r| n.eq_ignore_ascii_case(r));
        if self.headers.iter().any(|(n, _)| reserved(n)) {
            return Err(ConfigError::ReservedHeader);
        }
        if !self.api_key.bytes().all(|b| !(b < 0x20 || b == 0x7f)) {
            return Err(ConfigError::ApiKey);
        }
        Ok(())
    }

    /// The endpoint without surrounding spaces, trailing `/`, or a trailing
    /// `/v1` (the API's own prefix, which requests add): `http://host/v1`
    /// and `http://host` are the same server.
    pub fn base_url(&self) -> &str {
        let url = self.endpoint.trim().trim_end_matches('/');
        url.strip_suffix("/v1").unwrap_or(url).trim_end_matches('/')
    }

    /// The timeout as a [`Duration`] (zero if invalid).
    pub fn timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.timeout_seconds).unwrap_or_default()
    }

    /// The numbers the exporter works with.
    pub fn export_settings(&self) -> ExportSettings {
        ExportSettings {
            batch_size: self.batch_size.max(1),
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            max_attempts: self.max_attempts.max(1),
            timeout: self.timeout(),
            ..ExportSettings::default()
        }
    }
}

/// The exporter's tuning: batching, retries and backoff.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExportSettings {
    /// Spans per batch; a batch is sent as soon as this many wait.
    pub batch_size: usize,
    /// Longest wait before waiting spans are sent.
    pub flush_interval: Duration,
    /// Attempts per request before its spans are dropped.
    pub max_attempts: u32,
    /// Timeout of one request.
    pub timeout: Duration,
    /// First backoff delay; each further attempt doubles it.
    pub backoff_base: Duration,
    /// Longest backoff delay (before `Retry-After`, which is honoured as given).
    pub backoff_cap: Duration,
    /// Most requests deferred for a retry of their own while others go on.
    pub max_deferred: usize,
    /// Most bytes the bodies of deferred requests take together.
    pub max_deferred_bytes: usize,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            batch_size: DEFAULT_BATCH_SIZE,
            flush_interval: Duration::from_millis(DEFAULT_FLUSH_INTERVAL_MS),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            max_deferred: 1024,
            max_deferred_bytes: 16 << 20,
        }
    }
}
