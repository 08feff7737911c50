//! The blocking HTTP transport of the Vigil SDK, on [`ureq`] 3.
//!
//! One keep-alive [`ureq::Agent`] carries `POST {endpoint}/v1/traces` (one
//! trace's spans) and `PATCH {endpoint}/v1/traces/{id}` (its final status),
//! with `Authorization: Bearer <api_key>`, any extra headers, and a
//! `User-Agent` naming the SDK. Every request has a whole-request timeout: the
//! configured one, or what is left of the caller's flush deadline if shorter.
//!
//! Outcomes, as the exporter needs them:
//!
//! | answer | outcome |
//! |---|---|
//! | `2xx` | delivered |
//! | connection refused, DNS failure, connect timeout, TLS failure | retry, server unreachable (costs no attempt; a TLS failure is logged once) |
//! | `429` | retry after `Retry-After` (seconds or HTTP-date; costs no attempt) |
//! | timeout after connecting, connection reset, `408`, `5xx` | retry, one attempt used |
//! | `404` on a PATCH (its spans not stored yet) | retry, one attempt used |
//! | `400`, `401`, `403`, `404`, `413`, `422`, other `4xx` | rejected, logged once per status with the server's message |
//! | a pooled connection the server had closed (reset or closed before any answer) | sent again at once on a new connection, costing nothing |
//!
//! An ingest whose earlier attempt may have been stored is looked up with
//! `GET {endpoint}/v1/traces/{id}` before it is sent again
//! ([`Transport::lookup`]), and a request in progress can be cut short from
//! another thread ([`Transport::interrupter`]: the shutdown deadline).
//!
//! The API key never reaches a log line: ureq formats the `Authorization`
//! header, and logs the request head at `TRACE`, with a placeholder of the
//! same length, which is replaced by the key only as the bytes are handed
//! to the socket (or to TLS).
//!
//! ```no_run
//! use vigil_core::Settings;
//! use vigil_transport_ureq::UreqTransport;
//!
//! let settings = Settings { endpoint: "https://vigil.example.com", api_key: "k", ..Settings::default() };
//! let transport = UreqTransport::new(&settings);
//! ```
//!
//! # Features
//!
//! - `tls` (default): HTTPS, through rustls (with the ring provider) and the
//!   webpki root certificates. Without it only `http://` endpoints are
//!   reached: a request to an `https://` one fails as unreachable, and the
//!   failure is logged once.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]

use std::collections::HashSet;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ureq::http::Response;
use ureq::unversioned::transport::{Connector, DefaultConnector};
use ureq::{Agent, Body};

mod coalesce;
mod resolver;
mod sealed;
use coalesce::Coalesce;
use resolver::CachingResolver;
use sealed::SealedKey;
use vigil_core::{
    transport::{Interrupt, Lookup, RequestKind},
    Outcome, Request, RetryReason, Settings, Transport,
};

/// Largest response body read (error messages are short; the rest is skipped).
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;
/// Largest response body read through and dropped to keep the connection;
/// past it the connection is closed instead (a new one is cheaper).
const MAX_DRAINED_BYTES: u64 = 1 << 20;
/// Largest trace read back to see which spans the server holds.
const MAX_LOOKUP_BYTES: u64 = 64 << 20;

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("vigil-rust/", env!("CARGO_PKG_VERSION"));

/// The HTTP client of [`UreqTransport`], for other transports that ship
/// over ureq (the OTLP one): a keep-alive [`Agent`] with a whole-request and
/// connect timeout, no redirects, HTTP statuses as answers rather than
/// errors, a resolver that looks a name up once a minute (not on a new
/// thread per request), secret header values kept out of ureq's logs, and
/// each request's head sent in one write with its body.
///
/// ```
/// use std::time::Duration;
/// use vigil_transport_ureq::HttpAgent;
///
/// let http = HttpAgent::new(Duration::from_secs(10), vec!["Bearer sk-1".into()]);
/// // Give ureq the placeholder: the value replaces it on the way to the socket.
/// assert_eq!(http.placeholder(0).len(), "Bearer sk-1".len());
/// assert!(!http.placeholder(0).contains("sk-1"));
/// let _request = http.agent().post("http://localhost:4318/v1/traces")
///     .header("Authorization", http.placeholder(0));
/// ```
pub struct HttpAgent {
    agent: Agent,
    resolver: CachingResolver,
    placeholders: Vec<String>,
}

impl std::fmt::Debug for HttpAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAgent").finish_non_exhaustive()
    }
}

impl HttpAgent {
    /// A client whose requests time out after `timeout` (each request may
    /// set a shorter one), sending each of `secrets` only where its
    /// [`HttpAgent::placeholder`] is given as a header value.
    pub fn new(timeout: Duration, secrets: Vec<String>) -> HttpAgent {
        let agent_config = Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(USER_AGENT)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout))
            .max_redirects(0)
            .max_idle_connections_per_host(4)
            .build();
        let resolver = CachingResolver::default();
        let sealed = SealedKey::many(secrets);
        let placeholders = sealed.placeholders().map(str::to_owned).collect();
        let connector = DefaultConnector::new().chain(sealed).chain(Coalesce);
        let agent = Agent::with_parts(agent_config, connector, resolver.clone());
        HttpAgent {
            agent,
            resolver,
            placeholders,
        }
    }

    /// The agent.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The header value that stands for secret `index` (empty past the last one).
    pub fn placeholder(&self, index: usize) -> &str {
        self.placeholders.get(index).map_or("", String::as_str)
    }

    /// Looks the host up again on the next request (call it when a request
    /// failed without an answer: the name may point elsewhere now).
    pub fn forget_resolved(&self) {
        self.resolver.forget();
    }
}

/// Sends Vigil requests over HTTP(S); see the crate docs.
pub struct UreqTransport {
    agent: Agent,
    base: String,
    /// What ureq puts in the `Authorization` header: a placeholder, replaced
    /// by the key on the way to the socket.
    authorization: Option<String>,
    headers: Vec<(String, String)>,
    /// Statuses already logged, so a misconfiguration is reported once, not per request.
    logged: Mutex<HashSet<u16>>,
    /// The agent's resolver (they share a cache).
    resolver: CachingResolver,
    /// Requests are failing without an answer: said once, until one is answered.
    failing: bool,
}

impl std::fmt::Debug for UreqTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UreqTransport")
            .field("base", &vigil_core::config::RedactedUrl(&self.base))
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl UreqTransport {
    /// A transport for the endpoint, key, headers and timeout of `config`.
    pub fn new(config: &Settings<'_>) -> Self {
        let bearer = (!config.api_key.is_empty()).then(|| format!("Bearer {}", config.api_key));
        let has_key = bearer.is_some();
        let http = HttpAgent::new(config.timeout(), bearer.into_iter().collect());
        let authorization = has_key.then(|| http.placeholder(0).to_owned());
        let HttpAgent {
            agent, resolver, ..
        } = http;
        let base = config.base_url().to_owned();
        if !config.api_key.is_empty() && base.starts_with("http://") && !is_loopback(&base) {
            log::warn!(
                "vigil: the API key is sent over plain http to {:?}; use https for anything but a local server",
                vigil_core::config::RedactedUrl(&base)
            );
        }
        UreqTransport {
            agent,
            authorization,
            headers: config
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            base,
            logged: Mutex::new(HashSet::new()),
            resolver,
            failing: false,
        }
    }

    fn url(&self, request: &Request<'_>) -> String {
        match request.kind {
            RequestKind::Ingest => format!("{}/v1/traces", self.base),
            RequestKind::Patch => format!("{}/v1/traces/{}", self.base, request.trace_id),
        }
    }

    fn call(&self, request: &Request<'_>) -> Result<Response<Body>, ureq::Error> {
        let url = self.url(request);
        let mut builder = match request.kind {
            RequestKind::Ingest => self.agent.post(&url),
            RequestKind::Patch => self.agent.patch(&url),
        }
        .header("Content-Type", "application/json");
        if let Some(auth) = &self.authorization {
            builder = builder.header("Authorization", auth);
        }
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        builder
            .config()
            .timeout_global(Some(request.timeout))
            .build()
            .send(request.body)
    }

    /// [`UreqTransport::call`], sent once more at once when a pooled
    /// connection turns out to have been closed by the server (it answered
    /// the previous request and hung up): the request never reached it.
    fn call_fresh(&self, request: &Request<'_>) -> Result<Response<Body>, ureq::Error> {
        match self.call(request) {
            Err(error) if closed_before_answer(&error) => {
                log::debug!("vigil: a pooled connection was closed by the server; sending again on a new one");
                self.call(request)
            }
            other => other,
        }
    }

    /// Logs a refusal once per status, with the server's own words.
    fn log_rejection(&self, status: u16, kind: RequestKind, message: &str) {
        let first = self
            .logged
            .lock()
            .map(|mut seen| seen.insert(status))
            .unwrap_or(false);
        if first {
            log::error!(
                "vigil: the server refused a {} request with {status} and will not be asked again for it: {message}",
                match kind {
                    RequestKind::Ingest => "trace",
                    RequestKind::Patch => "trace status",
                }
            );
        }
    }
}

impl Transport for UreqTransport {
    fn send(&mut self, request: &Request<'_>) -> Outcome {
        let mut response = match self.call_fresh(request) {
            Ok(response) => response,
            Err(error) => {
                // The name may point elsewhere now: look it up again.
                self.resolver.forget();
                let outcome = outcome_of_error(&error);
                if !self.failing && matches!(outcome, Outcome::Retry { .. }) {
                    self.failing = true;
                    log::warn!(
                        "vigil: the Vigil server at {:?} cannot be reached: {error}; spans wait in the queue and are sent when it answers",
                        vigil_core::config::RedactedUrl(&self.base)
                    );
                }
                return outcome;
            }
        };
        if std::mem::take(&mut self.failing) {
            log::warn!(
                "vigil: the Vigil server at {:?} answers again",
                vigil_core::config::RedactedUrl(&self.base)
            );
        }
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let outcome = outcome_of_status(status, request.kind, retry_after);
        if outcome == Outcome::Rejected {
            let body = response
                .body_mut()
                .with_config()
                .limit(MAX_RESPONSE_BYTES)
                .read_to_string()
                .unwrap_or_default();
            self.log_rejection(status, request.kind, &server_message(&body));
        } else {
            // Read to the end, only so the connection can be reused: a PATCH
            // answers with the whole trace, which nothing here needs.
            let mut body = response
                .body_mut()
                .with_config()
                .limit(MAX_DRAINED_BYTES)
                .reader();
            let _ = io::copy(&mut body, &mut io::sink());
        }
        outcome
    }

    fn lookup(&mut self, request: &Request<'_>) -> Lookup {
        if request.kind != RequestKind::Ingest {
            return Lookup::Unknown;
        }
        let url = format!("{}/v1/traces/{}", self.base, request.trace_id);
        let mut builder = self.agent.get(&url);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let response = builder
            .config()
            .timeout_global(Some(request.timeout))
            .build()
            .call();
        let mut response = match response {
            Ok(response) => response,
            Err(_) => return Lookup::Unknown,
        };
        match response.status().as_u16() {
            200 => {}
            404 => return Lookup::Missing,
            _ => return Lookup::Unknown,
        }
        let Ok(stored) = response
            .body_mut()
            .with_config()
            .limit(MAX_LOOKUP_BYTES)
            .read_to_string()
        else {
            return Lookup::Unknown;
        };
        let stored: HashSet<&str> = span_ids(&stored).collect();
        let Ok(sent) = std::str::from_utf8(request.body) else {
            return Lookup::Unknown;
        };
        let mut sent = span_ids(sent).peekable();
        if sent.peek().is_none() {
            return Lookup::Unknown;
        }
        if sent.all(|id| stored.contains(id)) {
            Lookup::Stored
        } else {
            Lookup::Missing
        }
    }

    fn interrupter(&mut self) -> Option<Interrupt> {
        let agent = self.agent.clone();
        // Shutting the agent down closes its sockets, so a request blocked on
        // one returns at once; the agent refuses new requests afterwards.
        Some(Box::new(move || agent.clone().shutdown()))
    }
}

/// The values of every `"span_id"` key in a JSON text (the SDK's bodies and
/// the server's answers hold 32-hex ids, which need no unescaping).
fn span_ids(json: &str) -> impl Iterator<Item = &str> {
    json.match_indices("\"span_id\"")
        .filter_map(move |(at, key)| {
            let rest = json[at + key.len()..].trim_start();
            let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
            rest.split_once('"').map(|(id, _)| id)
        })
}

/// Whether a call failed because its connection was closed before any
/// answer came: a pooled connection that the server had already closed.
fn closed_before_answer(error: &ureq::Error) -> bool {
    matches!(error, ureq::Error::Io(e) if matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    ))
}

/// What an HTTP status means for the request (see the crate docs).
pub fn outcome_of_status(status: u16, kind: RequestKind, retry_after: Option<Duration>) -> Outcome {
    let retry = |reason| Outcome::Retry {
        after: retry_after,
        reason,
    };
    match status {
        200..=299 => Outcome::Delivered,
        429 => retry(RetryReason::RateLimited),
        408 | 500..=599 => retry(RetryReason::Failed),
        // A PATCH can race its own spans: they may not be stored yet.
        404 if kind == RequestKind::Patch => retry(RetryReason::Failed),
        _ => Outcome::Rejected,
    }
}

/// What a failed call means: nothing sent, or maybe processed.
pub fn outcome_of_error(error: &ureq::Error) -> Outcome {
    static BAD_REQUEST: AtomicBool = AtomicBool::new(false);
    static TLS: AtomicBool = AtomicBool::new(false);
    let reason = match error {
        ureq::Error::ConnectionFailed
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectProxyFailed(_)
        | ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => {
            RetryReason::Unreachable
        }
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            RetryReason::Unreachable
        }
        // The handshake failed, or TLS is not built in: nothing was sent, and
        // retrying costs no attempt while someone fixes it.
        ureq::Error::Tls(_) | ureq::Error::TlsRequired => {
            log_once(
                &TLS,
                format_args!("vigil: TLS to the endpoint failed: {error}"),
            );
            RetryReason::Unreachable
        }
        #[cfg(feature = "tls")]
        ureq::Error::Rustls(_) => {
            log_once(
                &TLS,
                format_args!("vigil: TLS to the endpoint failed: {error}"),
            );
            RetryReason::Unreachable
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) | ureq::Error::InvalidProxyUrl => {
            log_once(
                &BAD_REQUEST,
                format_args!("vigil: cannot send to the configured endpoint: {error}"),
            );
            return Outcome::Rejected;
        }
        // Timeouts, resets and protocol errors: the server may have seen it.
        _ => RetryReason::Failed,
    };
    Outcome::Retry {
        after: None,
        reason,
    }
}

/// The server's explanation: `detail` of a 422, `error` of other answers,
/// else the body itself (cut short).
fn server_message(body: &str) -> String {
    for key in ["\"detail\":", "\"error\":"] {
        if let Some(at) = body.find(key) {
            let rest = body[at + key.len()..].trim();
            return rest.trim_end_matches('}').chars().take(500).collect();
        }
    }
    body.chars().take(500).collect()
}

/// Logs the first time only (per `flag`): a broken setup must not flood logs.
fn log_once(flag: &AtomicBool, message: std::fmt::Arguments<'_>) {
    if !flag.swap(true, std::sync::atomic::Ordering::Relaxed) {
        log::error!("{message}");
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
fn parse_http_date(s: &str) -> Option<u64> {
    let mut parts = s.split_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: u64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    // In range, the arithmetic below cannot overflow or go below zero.
    let valid =
        (1..=31).contains(&day) && (1970..=9999).contains(&year) && h < 24 && m < 60 && sec <= 60;
    if parts.next()? != "GMT" || !valid {
        return None;
    }
    let days = vigil_core::time::days_from_civil(year, month, day)?;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// Whether `url`'s host is this machine (`localhost`, `127.x.x.x`, `[::1]`):
/// where a key may travel over plain `http`.
pub fn is_loopback(url: &str) -> bool {
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    // `user:pass@host`: only what follows the last `@` is the host.
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let ipv4_loopback = host
        .parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback());
    host == "localhost" || ipv4_loopback || host == "[::1]"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        use RequestKind::*;
        assert_eq!(outcome_of_status(201, Ingest, None), Outcome::Delivered);
        for s in [400, 401, 403, 404, 413, 422] {
            assert_eq!(outcome_of_status(s, Ingest, None), Outcome::Rejected, "{s}");
        }
        let after = Some(Duration::from_secs(3));
        assert_eq!(
            outcome_of_status(429, Ingest, after),
            Outcome::Retry {
                after,
                reason: RetryReason::RateLimited
            }
        );
        for s in [408, 500, 502, 503] {
            assert!(matches!(
                outcome_of_status(s, Ingest, None),
                Outcome::Retry {
                    reason: RetryReason::Failed,
                    ..
                }
            ));
        }
        assert!(matches!(
            outcome_of_status(404, Patch, None),
            Outcome::Retry { .. }
        ));
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        // Out-of-range fields are not dates (and must not panic).
        for bad in [
            "Sun, 00 Mar 2025 00:00:00 GMT",
            "Sun, 32 Mar 2025 00:00:00 GMT",
            "Sun, 01 Mar 99999999999999 00:00:00 GMT",
            "Sun, 01 Mar 2025 99999999999:00:00 GMT",
            "Sun, 01 Mar 1969 00:00:00 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("http://localhost:8000"));
        assert!(is_loopback("http://127.0.0.1:9/x"));
        assert!(is_loopback("http://[::1]:80"));
        assert!(!is_loopback("http://vigil.example.com"));
        assert!(!is_loopback("http://localhost.example.com"));
        assert!(!is_loopback("http://127.evil.com/"));
        assert!(!is_loopback("http://127.0.0.1@vigil.example.com/"));
        assert!(is_loopback("http://user:pw@127.0.0.1:8000/"));
    }

    #[test]
    fn failures_before_anything_was_sent_cost_no_attempt() {
        for e in [
            ureq::Error::TlsRequired,
            ureq::Error::Tls("handshake"),
            ureq::Error::Timeout(ureq::Timeout::Connect),
            ureq::Error::Timeout(ureq::Timeout::Resolve),
            ureq::Error::HostNotFound,
        ] {
            assert!(
                matches!(
                    outcome_of_error(&e),
                    Outcome::Retry {
                        reason: RetryReason::Unreachable,
                        ..
                    }
                ),
                "{e}"
            );
        }
        assert!(matches!(
            outcome_of_error(&ureq::Error::Timeout(ureq::Timeout::Global)),
            Outcome::Retry {
                reason: RetryReason::Failed,
                ..
            }
        ));
    }

    #[test]
    fn the_key_is_not_in_debug() {
        let config = Settings {
            api_key: "sekrit",
            ..Settings::default()
        };
        assert!(!format!("{:?}", UreqTransport::new(&config)).contains("sekrit"));
    }
}
