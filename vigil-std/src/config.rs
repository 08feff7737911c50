//! Configuration: the seed's options and defaults, a builder, and the environment.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use vigil_core::{
    config::{Redacted, RedactedUrl},
    ConfigError, Transport,
};

use crate::llm::pricing::PriceTable;
use crate::spool::{SpoolSettings, MIN_SPOOL_BYTES};
use crate::transport::BoxTransport;

/// Which payload a [`ConfigBuilder::mask`] hook is looking at.
///
/// ```
/// use vigil::Field;
///
/// let builder = vigil::Config::builder().mask(|field, value| {
///     if matches!(field, Field::Metadata("email")) {
///         *value = serde_json::json!("<redacted>");
///     }
/// });
/// let (_, captured) = vigil::sink::capture_with(builder, || {
///     vigil::trace("signup", |t| t.set_metadata("email", &"a@example.com"));
/// });
/// assert_eq!(captured.span("signup").unwrap().metadata["email"], "<redacted>");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field<'a> {
    /// A span's input.
    Input,
    /// A span's output.
    Output,
    /// The metadata entry with this key.
    Metadata(&'a str),
    /// The attributes of the event with this name.
    Event(&'a str),
}

/// A hook that may rewrite any payload before it is recorded (to mask secrets
/// or personal data).
pub type MaskFn = dyn Fn(Field<'_>, &mut Value) + Send + Sync;

/// The SDK's options. Build one with [`Config::builder`] or read the
/// environment with [`Config::from_env`].
///
/// ```
/// let config = vigil::Config::builder()
///     .endpoint("https://vigil.example.com")
///     .api_key("secret")
///     .batch_size(50)
///     .build()
///     .unwrap();
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) endpoint: String,
    pub(crate) api_key: String,
    pub(crate) project_id: String,
    pub(crate) batch_size: usize,
    pub(crate) flush_interval_ms: u64,
    pub(crate) max_queue_size: usize,
    pub(crate) timeout_seconds: f64,
    pub(crate) enabled: bool,
    pub(crate) max_attempts: u32,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) sample_rate: f64,
    pub(crate) capture_content: bool,
    pub(crate) release: String,
    pub(crate) environment: String,
    pub(crate) max_field_bytes: usize,
    pub(crate) max_request_bytes: usize,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) keep_errors: bool,
    pub(crate) keep_slower_than: Option<Duration>,
    pub(crate) keep_costlier_than: Option<f64>,
    pub(crate) tail_hold_timeout: Duration,
    /// Where undeliverable requests are kept ([`ConfigBuilder::spool_dir`]).
    pub(crate) spool: Option<SpoolSettings>,
    pub(crate) mask: Option<Arc<MaskFn>>,
    /// The built-in prices with the application's over them; `None`: the
    /// built-in ones alone.
    pub(crate) prices: Option<Arc<PriceTable>>,
    pub(crate) transport: Option<Arc<dyn Fn() -> BoxTransport + Send + Sync>>,
    /// Where spans go, as [`Config::destination`] tells.
    pub(crate) destination: Destination,
    /// A second destination, with its own exporter ([`ConfigBuilder::also_transport`]).
    pub(crate) also: Option<(Arc<dyn Fn() -> BoxTransport + Send + Sync>, Destination)>,
}

impl Default for Config {
    fn default() -> Self {
        let core = vigil_core::Settings::default();
        Config {
            endpoint: core.endpoint.to_owned(),
            api_key: String::new(),
            project_id: core.project_id.to_owned(),
            batch_size: core.batch_size,
            flush_interval_ms: core.flush_interval_ms,
            max_queue_size: core.max_queue_size,
            timeout_seconds: core.timeout_seconds,
            enabled: core.enabled,
            max_attempts: core.max_attempts,
            headers: Vec::new(),
            sample_rate: 1.0,
            capture_content: true,
            release: String::new(),
            environment: String::new(),
            max_field_bytes: vigil_core::span::DEFAULT_FIELD_LIMIT,
            max_request_bytes: 1 << 20,
            shutdown_timeout: Duration::from_secs(5),
            retry_backoff: vigil_core::ExportSettings::default().backoff_base,
            keep_errors: false,
            keep_slower_than: None,
            keep_costlier_than: None,
            tail_hold_timeout: vigil_core::sample::DEFAULT_HOLD_TIMEOUT,
            spool: None,
            mask: None,
            prices: None,
            transport: None,
            destination: Destination::Server,
            also: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("endpoint", &RedactedUrl(&self.endpoint))
            .field("api_key", &Redacted(&self.api_key))
            .field("project_id", &self.project_id)
            .field("batch_size", &self.batch_size)
            .field("flush_interval_ms", &self.flush_interval_ms)
            .field("max_queue_size", &self.max_queue_size)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("enabled", &self.enabled)
            .field("max_attempts", &self.max_attempts)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("sample_rate", &self.sample_rate)
            .field("keep_errors", &self.keep_errors)
            .field("keep_slower_than", &self.keep_slower_than)
            .field("keep_costlier_than", &self.keep_costlier_than)
            .field("tail_hold_timeout", &self.tail_hold_timeout)
            .field("spool", &self.spool)
            .field("capture_content", &self.capture_content)
            .field("prices", &self.prices().len())
            .field("custom_transport", &self.transport.is_some())
            .field("also", &self.also.as_ref().map(|(_, d)| d))
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A builder starting from the defaults.
    ///
    /// ```
    /// let config = vigil::Config::builder().project_id("support-agent").build().unwrap();
    /// assert_eq!(config.project_id(), "support-agent");
    /// assert_eq!(config.endpoint(), "http://localhost:8000");
    /// ```
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder(Config::default())
    }

    /// The defaults overridden by `VIGIL_*` environment variables (see
    /// [`Config::from_env_with`] for the list).
    ///
    /// ```
    /// // With VIGIL_ENDPOINT=https://vigil.example.com and VIGIL_API_KEY=... set:
    /// match vigil::Config::from_env() {
    ///     Ok(config) => println!("sending to {}", config.endpoint()),
    ///     Err(e) => eprintln!("{e}"), // e.g. `VIGIL_SAMPLE_RATE: must be from 0.0 to 1.0 (got 2)`
    /// }
    /// ```
    pub fn from_env() -> Result<Config, EnvError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], reading variables through `var`:
    /// `VIGIL_ENDPOINT`, `VIGIL_API_KEY`, `VIGIL_PROJECT_ID`, `VIGIL_ENABLED`,
    /// `VIGIL_BATCH_SIZE`, `VIGIL_FLUSH_INTERVAL_MS`, `VIGIL_MAX_QUEUE_SIZE`,
    /// `VIGIL_TIMEOUT_SECONDS`, `VIGIL_SAMPLE_RATE`, `VIGIL_RELEASE`,
    /// `VIGIL_ENVIRONMENT`, `VIGIL_PRICES`, and the tail rules'
    /// `VIGIL_KEEP_ERRORS`, `VIGIL_KEEP_SLOWER_THAN_MS`,
    /// `VIGIL_KEEP_COSTLIER_THAN_USD`, `VIGIL_TAIL_HOLD_TIMEOUT_MS`, and the
    /// spool's `VIGIL_SPOOL_DIR`, `VIGIL_SPOOL_MAX_BYTES`,
    /// `VIGIL_SPOOL_MAX_AGE_SECS`.
    ///
    /// With the `otlp` feature, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, spans go over OTLP/HTTP
    /// too (besides the server when `VIGIL_ENDPOINT` is set, instead of it
    /// when it is not: [`ConfigBuilder::also_transport`]), configured by the OpenTelemetry
    /// variables (`OTEL_EXPORTER_OTLP_HEADERS`, `_PROTOCOL`, `_COMPRESSION`,
    /// `_TIMEOUT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`; see
    /// `vigil_transport_otlp::OtlpConfig::from_env_with`).
    ///
    /// ```
    /// let config = vigil::Config::from_env_with(|name| match name {
    ///     "VIGIL_ENDPOINT" => Some("https://vigil.example.com/v1".into()),
    ///     "VIGIL_BATCH_SIZE" => Some("50".into()),
    ///     _ => None,
    /// })
    /// .unwrap();
    /// assert_eq!(config.endpoint(), "https://vigil.example.com/v1");
    ///
    /// let error = vigil::Config::from_env_with(|name| {
    ///     (name == "VIGIL_SAMPLE_RATE").then(|| "2".into())
    /// })
    /// .unwrap_err();
    /// assert_eq!(error.to_string(), "VIGIL_SAMPLE_RATE: must be from 0.0 to 1.0 (got 2)");
    /// ```
    pub fn from_env_with(var: impl Fn(&str) -> Option<String>) -> Result<Config, EnvError> {
        let mut c = Config::default();
        // Values from secrets files and manifests often end in a newline.
        let var = |name: &str| var(name).map(|v| v.trim().to_owned());
        if let Some(v) = var("VIGIL_ENDPOINT") {
            c.endpoint = v;
        }
        if let Some(v) = var("VIGIL_API_KEY") {
            c.api_key = v;
        }
        if let Some(v) = var("VIGIL_PROJECT_ID") {
            c.project_id = v;
        }
        if let Some(v) = var("VIGIL_ENABLED") {
            c.enabled = parse_bool("VIGIL_ENABLED", v)?;
        }
        parse(
            &var,
            "VIGIL_BATCH_SIZE",
            "a whole number",
            &mut c.batch_size,
        )?;
        parse(
            &var,
            "VIGIL_FLUSH_INTERVAL_MS",
            "a whole number of milliseconds",
            &mut c.flush_interval_ms,
        )?;
        parse(
            &var,
            "VIGIL_MAX_QUEUE_SIZE",
            "a whole number",
            &mut c.max_queue_size,
        )?;
        parse(
            &var,
            "VIGIL_TIMEOUT_SECONDS",
            "a number of seconds",
            &mut c.timeout_seconds,
        )?;
        parse(
            &var,
            "VIGIL_SAMPLE_RATE",
            "a number from 0.0 to 1.0",
            &mut c.sample_rate,
        )?;
        if let Some(v) = var("VIGIL_KEEP_ERRORS") {
            c.keep_errors = parse_bool("VIGIL_KEEP_ERRORS", v)?;
        }
        let ms = read::<u64>(
            &var,
            "VIGIL_KEEP_SLOWER_THAN_MS",
            "a whole number of milliseconds",
        )?;
        if let Some(ms) = ms {
            c.keep_slower_than = Some(Duration::from_millis(ms));
        }
        let usd = read(
            &var,
            "VIGIL_KEEP_COSTLIER_THAN_USD",
            "a number of US dollars",
        )?;
        c.keep_costlier_than = usd.or(c.keep_costlier_than);
        let ms = read::<u64>(
            &var,
            "VIGIL_TAIL_HOLD_TIMEOUT_MS",
            "a whole number of milliseconds",
        )?;
        if let Some(ms) = ms {
            c.tail_hold_timeout = Duration::from_millis(ms);
        }
        if let Some(dir) = var("VIGIL_SPOOL_DIR").filter(|d| !d.is_empty()) {
            c.spool = Some(SpoolSettings::new(dir.into()));
        }
        let bytes = read(&var, "VIGIL_SPOOL_MAX_BYTES", "a whole number of bytes")?;
        let secs = read::<u64>(
            &var,
            "VIGIL_SPOOL_MAX_AGE_SECS",
            "a whole number of seconds",
        )?;
        if let Some(spool) = &mut c.spool {
            spool.max_bytes = bytes.unwrap_or(spool.max_bytes);
            spool.max_age = secs.map_or(spool.max_age, Duration::from_secs);
        }
        if let Some(v) = var("VIGIL_RELEASE") {
            c.release = v;
        }
        if let Some(v) = var("VIGIL_ENVIRONMENT") {
            c.environment = v;
        }
        if let Some(path) = var("VIGIL_PRICES").filter(|p| !p.is_empty()) {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| EnvError::Prices(format!("{path}: {e}")))?;
            let table = PriceTable::from_json(&text)
                .map_err(|e| EnvError::Prices(format!("{path}: {e}")))?;
            c.prices = Some(Arc::new(with_builtin(table)));
        }
        #[cfg(feature = "otlp")]
        otlp_from_env(&mut c, &var)?;
        c.validate().map_err(EnvError::Invalid)?;
        Ok(c)
    }

    /// The prices LLM calls are costed at: the built-in table, with the
    /// application's over it ([`ConfigBuilder::prices`], `VIGIL_PRICES`).
    pub fn prices(&self) -> &PriceTable {
        match &self.prices {
            Some(table) => table,
            None => builtin_prices(),
        }
    }

    /// Checks every option, reporting the first at fault.
    ///
    /// ```
    /// let config = vigil::Config::builder().build().unwrap();
    /// assert!(config.validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        self.as_core(&headers).validate()?;
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(ConfigError::SampleRate(self.sample_rate));
        }
        if !(vigil_core::config::MIN_REQUEST_BYTES..=vigil_core::config::MAX_REQUEST_BYTES)
            .contains(&self.max_request_bytes)
        {
            return Err(ConfigError::RequestBytes(self.max_request_bytes));
        }
        let cap = vigil_core::ExportSettings::default().backoff_cap;
        if !(vigil_core::config::MIN_RETRY_BACKOFF..=cap).contains(&self.retry_backoff) {
            return Err(ConfigError::RetryBackoff(self.retry_backoff));
        }
        if let Some(usd) = self
            .keep_costlier_than
            .filter(|usd| !(usd.is_finite() && *usd >= 0.0))
        {
            return Err(ConfigError::CostLimit(usd));
        }
        let hold = Duration::from_millis(1)..=vigil_core::config::MAX_HOLD_TIMEOUT;
        if !hold.contains(&self.tail_hold_timeout) {
            return Err(ConfigError::HoldTimeout(self.tail_hold_timeout));
        }
        if let Some(spool) = &self.spool {
            if spool.max_bytes < MIN_SPOOL_BYTES {
                return Err(ConfigError::SpoolBytes(spool.max_bytes));
            }
            if spool.max_age < Duration::from_secs(1) {
                return Err(ConfigError::SpoolAge(spool.max_age));
            }
        }
        Ok(())
    }

    /// The tail rules ([`ConfigBuilder::keep_errors`] and the others), with
    /// `sample_rate` for the traces they do not keep. With no rule set,
    /// [`TailRules::any`](vigil_core::sample::TailRules::any) is false and
    /// `sample_rate` is decided when a trace starts.
    pub fn tail_rules(&self) -> vigil_core::sample::TailRules {
        vigil_core::sample::TailRules {
            keep_errors: self.keep_errors,
            keep_slower_than: self.keep_slower_than,
            keep_costlier_than_usd: self.keep_costlier_than,
            rate: vigil_core::sample::SampleRate::new(self.sample_rate),
            hold_timeout: self.tail_hold_timeout,
            // The other half of the queue is for spans on their way.
            max_held: self.max_queue_size / 2,
        }
    }

    /// The borrowed form the core works with.
    pub fn as_core<'a>(&'a self, headers: &'a [(&'a str, &'a str)]) -> vigil_core::Settings<'a> {
        vigil_core::Settings {
            endpoint: &self.endpoint,
            api_key: &self.api_key,
            project_id: &self.project_id,
            batch_size: self.batch_size,
            flush_interval_ms: self.flush_interval_ms,
            max_queue_size: self.max_queue_size,
            timeout_seconds: self.timeout_seconds,
            enabled: self.enabled,
            max_attempts: self.max_attempts,
            headers,
        }
    }

    /// The server URL (see [`Config::destination`]: spans go elsewhere
    /// when a transport is set).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
    /// Where spans go: the server at [`Config::endpoint`], the console, or
    /// a transport of the application's.
    pub fn destination(&self) -> Destination {
        self.destination
    }
    /// The API key (empty when none).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }
    /// The project id.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }
    /// Extra headers sent with every request.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
    /// The HTTP timeout.
    pub fn timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.timeout_seconds).unwrap_or_default()
    }
    /// Whether the SDK records anything.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

/// OTLP export when the OpenTelemetry variables name an endpoint: instead
/// of the Vigil server when `VIGIL_ENDPOINT` is not set, besides it when it is.
#[cfg(feature = "otlp")]
fn otlp_from_env(c: &mut Config, var: &impl Fn(&str) -> Option<String>) -> Result<(), EnvError> {
    let otlp =
        vigil_transport_otlp::OtlpConfig::from_env_with(var).map_err(|e| EnvError::Malformed {
            var: e.var(),
            value: e.value().to_owned(),
            expected: e.expected(),
        })?;
    let Some(otlp) = otlp else {
        return Ok(());
    };
    // Without `capture_content`, no content is recorded for OTLP to carry.
    let make: Arc<dyn Fn() -> BoxTransport + Send + Sync> =
        Arc::new(move || Box::new(vigil_transport_otlp::OtlpTransport::new(&otlp)) as BoxTransport);
    if var("VIGIL_ENDPOINT").is_some() {
        // Both at once: the Vigil server first, OTLP besides.
        c.also = Some((make, Destination::Otlp));
    } else {
        c.transport = Some(make);
        c.destination = Destination::Otlp;
    }
    Ok(())
}

fn parse_bool(name: &'static str, value: String) -> Result<bool, EnvError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(EnvError::malformed(name, value, "true or false")),
    }
}

/// Reads `name` into `slot`, if it is set.
fn parse<T: std::str::FromStr>(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    expected: &'static str,
    slot: &mut T,
) -> Result<(), EnvError> {
    if let Some(v) = read(var, name, expected)? {
        *slot = v;
    }
    Ok(())
}

/// The value of `name`, if it is set.
fn read<T: std::str::FromStr>(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    expected: &'static str,
) -> Result<Option<T>, EnvError> {
    let Some(v) = var(name) else {
        return Ok(None);
    };
    match v.trim().parse() {
        Ok(value) => Ok(Some(value)),
        Err(_) => Err(EnvError::malformed(name, v, expected)),
    }
}

/// Where a client's spans go.
///
/// ```
/// let config = vigil::Config::builder().build().unwrap();
/// assert_eq!(config.destination(), vigil::config::Destination::Server);
/// let config = vigil::Config::builder()
///     .transport(vigil::sink::NullTransport::default)
///     .build()
///     .unwrap();
/// assert_eq!(config.destination(), vigil::config::Destination::Custom);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destination {
    /// The Vigil server at the configured endpoint.
    Server,
    /// Printed as trees (`init_from_env` without `VIGIL_ENDPOINT`).
    Console,
    /// A transport the application set.
    Custom,
    /// An OpenTelemetry backend over OTLP/HTTP (`init_from_env` with
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` set).
    Otlp,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Destination::Server => "the server",
            Destination::Console => "the console",
            Destination::Custom => "the configured transport",
            Destination::Otlp => "the OTLP endpoint",
        })
    }
}

/// Sets options one by one; [`ConfigBuilder::build`] validates them.
#[derive(Clone, Debug)]
pub struct ConfigBuilder(Config);

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.0.$name = value.into();
                self
            }
        )*
    };
}

impl ConfigBuilder {
    setters! {
        /// Server base URL (default `http://localhost:8000`).
        endpoint: impl Into<String>,
        /// API key sent as a bearer token (default none).
        api_key: impl Into<String>,
        /// Project id (default `default`).
        project_id: impl Into<String>,
        /// Spans per batch (default 100).
        batch_size: usize,
        /// Longest wait before queued spans are sent, in ms (default 500).
        flush_interval_ms: u64,
        /// Most spans held at once, counting those awaiting a retry (default 10,000).
        max_queue_size: usize,
        /// HTTP timeout in seconds (default 10.0).
        timeout_seconds: f64,
        /// When false, nothing is recorded and every call is a no-op (default true).
        enabled: bool,
        /// Attempts per request before its spans are dropped (default 5).
        max_attempts: u32,
        /// Fraction of traces recorded, decided once per trace from its id (default 1.0).
        sample_rate: f64,
        /// When false, input and output are never recorded (default true).
        capture_content: bool,
        /// The application's version, in every trace's metadata as
        /// `release` (default none; `VIGIL_RELEASE`).
        release: impl Into<String>,
        /// Where the application runs (`production`, `staging`...), in every
        /// trace's metadata as `environment` (default none; `VIGIL_ENVIRONMENT`).
        environment: impl Into<String>,
        /// Cap on each encoded payload field of a span, in bytes (default 64 KiB).
        max_field_bytes: usize,
        /// Largest request body, in bytes (default 1 MiB); bigger traces are split.
        max_request_bytes: usize,
        /// How long `shutdown` and the guard's drop may take (default 5 s).
        shutdown_timeout: Duration,
        /// First retry delay; it doubles per attempt, jittered, up to 30 s (default 500 ms).
        retry_backoff: Duration,
    }

    /// Adds a header sent with every request. Headers the transport sets
    /// itself (`Authorization`, `Content-Type`, `Content-Length`, `Host`...)
    /// are refused by [`ConfigBuilder::build`].
    ///
    /// ```
    /// let config = vigil::Config::builder().header("X-Team", "agents").build().unwrap();
    /// assert_eq!(config.headers()[0].0, "X-Team");
    /// assert!(vigil::Config::builder().header("Content-Length", "5").build().is_err());
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.headers.push((name.into(), value.into()));
        self
    }

    /// Installs a hook that may rewrite input, output, metadata and event
    /// attributes before they are recorded.
    ///
    /// The hook sees each value as JSON, nested at most
    /// [`vigil_core::json::MAX_DEPTH`] levels deep (deeper levels are cut before it
    /// sees them). A panic in the hook is caught: that payload is recorded as
    /// `{"vigil.masked": "the mask hook panicked"}` and counted in
    /// `mask_panics`, and the span goes on. On a thread already unwinding
    /// from a panic (a span ending in a `Drop`), where a second panic would
    /// abort the process, the hook is not called, and its payloads are
    /// recorded and counted the same way.
    ///
    /// ```
    /// use vigil::Field;
    ///
    /// let builder = vigil::Config::builder().mask(|field, value| {
    ///     if let (Field::Input, Some(object)) = (field, value.as_object_mut()) {
    ///         object.remove("api_key");
    ///     }
    /// });
    /// let (_, captured) = vigil::sink::capture_with(builder, || {
    ///     vigil::span("call", vigil::SpanKind::Tool, |s| {
    ///         s.set_input(&serde_json::json!({ "q": "hi", "api_key": "sk-1" }));
    ///     })
    /// });
    /// assert_eq!(captured.span("call").unwrap().input, serde_json::json!({ "q": "hi" }));
    /// ```
    pub fn mask(mut self, hook: impl Fn(Field<'_>, &mut Value) + Send + Sync + 'static) -> Self {
        self.0.mask = Some(Arc::new(hook));
        self
    }

    /// Adds prices to the built-in table, or replaces its prices for the
    /// same models (also `VIGIL_PRICES`: the path of a file in the table's
    /// JSON format, [`crate::llm::pricing::BUILTIN_PRICES`]).
    ///
    /// ```
    /// use vigil::llm::pricing::{Price, PriceTable};
    ///
    /// let mut ours = PriceTable::default();
    /// ours.insert("our-fine-tune", Price { input: 4.0, output: 16.0, cached_input: None, cache_write: None });
    /// let config = vigil::Config::builder().prices(ours).build().unwrap();
    /// assert_eq!(config.prices().find("our-fine-tune-2026-01-01").unwrap().1.output, 16.0);
    /// assert!(config.prices().find("gpt-4o").is_some(), "the built-in prices stay");
    /// ```
    pub fn prices(mut self, table: PriceTable) -> Self {
        self.0.prices = Some(Arc::new(with_builtin(table)));
        self
    }

    /// Keeps every trace with a span that ended in error, whatever
    /// `sample_rate` says (also `VIGIL_KEEP_ERRORS`). A tail rule: see
    /// [Tail sampling](#tail-sampling).
    ///
    /// # Tail sampling
    ///
    /// With any of [`keep_errors`](Self::keep_errors),
    /// [`keep_slower_than`](Self::keep_slower_than) or
    /// [`keep_costlier_than`](Self::keep_costlier_than) set, every trace is
    /// recorded, and the exporter thread holds each trace's spans until its
    /// root ends. It then sends the whole trace if a rule keeps it, else
    /// keeps it at `sample_rate` (by trace id, as the head decision would
    /// have); a trace left out is left out whole. Nothing changes on the
    /// application's threads.
    ///
    /// Held spans keep their places in the queue, and at most half of
    /// `max_queue_size` are held: memory stays within the queue's bound. A
    /// trace whose root has not ended after
    /// [`tail_hold_timeout`](Self::tail_hold_timeout) (default 60 s), or
    /// that would pass that half, or that is held when a flush or shutdown
    /// comes, is *decided early* from what came so far; a span of it ending
    /// later follows that decision. [`crate::StatsSnapshot`] counts traces kept by
    /// each rule, those sampled out, and those decided early.
    ///
    /// ```
    /// use vigil::{sink::capture_with, SpanKind};
    ///
    /// let builder = vigil::Config::builder().sample_rate(0.0).keep_errors(true);
    /// let ((), captured) = capture_with(builder, || {
    ///     vigil::trace("fine", |_| ());
    ///     vigil::trace("failing", |_| {
    ///         vigil::span("tool", SpanKind::Tool, |s| s.record_error(&"timed out"));
    ///     });
    /// });
    /// assert!(captured.span("fine").is_none(), "sampled out");
    /// assert!(captured.span("tool").is_some() && captured.span("failing").is_some());
    /// let stats = captured.report.unwrap().stats;
    /// assert_eq!((stats.traces_kept_for_errors, stats.traces_sampled_out), (1, 1));
    /// ```
    pub fn keep_errors(mut self, keep: bool) -> Self {
        self.0.keep_errors = keep;
        self
    }

    /// Keeps every trace whose root span took longer than `limit` (also
    /// `VIGIL_KEEP_SLOWER_THAN_MS`). A tail rule: see
    /// [`keep_errors`](Self::keep_errors).
    pub fn keep_slower_than(mut self, limit: Duration) -> Self {
        self.0.keep_slower_than = Some(limit);
        self
    }

    /// Keeps every trace whose priced LLM calls cost more than `usd` US
    /// dollars in all (the `total_usd` of its root's `vigil.totals`; also
    /// `VIGIL_KEEP_COSTLIER_THAN_USD`). A tail rule: see
    /// [`keep_errors`](Self::keep_errors).
    pub fn keep_costlier_than(mut self, usd: f64) -> Self {
        self.0.keep_costlier_than = Some(usd);
        self
    }

    /// Keeps what the server cannot take on disk in `dir`, and replays it
    /// (also `VIGIL_SPOOL_DIR`): requests whose attempts ran out, those made
    /// while the server is unreachable, and what is still unsent when
    /// shutdown's deadline passes. They are replayed in order, with the
    /// same retries and rate limits, as soon as the server answers again,
    /// or by the next process to open `dir`; a replayed request the server
    /// already stored is found by asking it, never stored twice.
    ///
    /// One process uses a directory at a time (it holds a lock on
    /// `dir/lock`; another gets no spool, logged). Bounded by
    /// [`spool_max_bytes`](Self::spool_max_bytes) (64 MiB by default) and
    /// [`spool_max_age`](Self::spool_max_age) (7 days), the oldest dropped
    /// first; [`crate::StatsSnapshot`] counts spans spooled, replayed and dropped
    /// from the spool by reason. The spool survives a crash of the process
    /// (a torn last record is detected and skipped); records are written
    /// to disk (`fsync`) when the process shuts down.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("vigil-spool-doc");
    /// let config = vigil::Config::builder().spool_dir(&dir).build().unwrap();
    /// assert!(format!("{config:?}").contains("vigil-spool-doc"));
    /// ```
    pub fn spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        let settings = SpoolSettings::new(dir.into());
        self.0.spool = Some(match self.0.spool.take() {
            Some(old) => SpoolSettings {
                dir: settings.dir,
                ..old
            },
            None => settings,
        });
        self
    }

    /// Most bytes the spool takes on disk (default 64 MiB, at least 1 KiB;
    /// also `VIGIL_SPOOL_MAX_BYTES`); past it, the oldest records are
    /// dropped and counted. Applies with [`spool_dir`](Self::spool_dir).
    pub fn spool_max_bytes(mut self, bytes: u64) -> Self {
        if let Some(spool) = &mut self.0.spool {
            spool.max_bytes = bytes;
        }
        self
    }

    /// Oldest a spooled record may be when it comes up for replay (default
    /// 7 days, at least 1 s; also `VIGIL_SPOOL_MAX_AGE_SECS`); older ones
    /// are dropped and counted. Applies with [`spool_dir`](Self::spool_dir).
    pub fn spool_max_age(mut self, age: Duration) -> Self {
        if let Some(spool) = &mut self.0.spool {
            spool.max_age = age;
        }
        self
    }

    /// How long a trace's spans may wait for its root before the trace is
    /// decided early (default 60 s, at most an hour; also
    /// `VIGIL_TAIL_HOLD_TIMEOUT_MS`).
    pub fn tail_hold_timeout(mut self, timeout: Duration) -> Self {
        self.0.tail_hold_timeout = timeout;
        self
    }

    /// Sends through transports made by `make` instead of the default one
    /// (called once per client).
    ///
    /// ```
    /// use vigil::{Transport, transport::{Outcome, Request}};
    ///
    /// /// Counts spans instead of sending them.
    /// #[derive(Default)]
    /// struct Counting(usize);
    ///
    /// impl Transport for Counting {
    ///     fn send(&mut self, request: &Request<'_>) -> Outcome {
    ///         self.0 += request.spans;
    ///         Outcome::Delivered
    ///     }
    /// }
    ///
    /// let config = vigil::Config::builder().transport(Counting::default).build().unwrap();
    /// let client = vigil::Client::new(config).unwrap();
    /// client.scope(|| vigil::trace("job", |_| ()));
    /// assert_eq!(client.shutdown().stats.spans_delivered, 1);
    /// ```
    pub fn transport<T: Transport + Send + 'static>(
        mut self,
        make: impl Fn() -> T + Send + Sync + 'static,
    ) -> Self {
        self.0.transport = Some(Arc::new(move || Box::new(make()) as BoxTransport));
        self.0.destination = Destination::Custom;
        self
    }

    /// Also ships every span through a transport made by `make`: a second
    /// destination (an OpenTelemetry backend besides the Vigil server, say)
    /// with its own exporter thread, retries and counters, so one that is
    /// down or slow never delays or drops the other's spans. Each takes the
    /// queue's spans into a buffer of its own of up to `max_queue_size`
    /// spans. [`Client::destinations`](crate::Client::destinations) and the
    /// shutdown report count for each.
    ///
    /// ```
    /// use vigil::sink::MemoryTransport;
    ///
    /// let ((first, a), (second, b)) = (MemoryTransport::new(), MemoryTransport::new());
    /// let config = vigil::Config::builder()
    ///     .transport(move || first.clone())
    ///     .also_transport(move || second.clone())
    ///     .build()
    ///     .unwrap();
    /// let client = vigil::Client::new(config).unwrap();
    /// client.scope(|| vigil::trace("job", |_| ()));
    /// let report = client.shutdown();
    /// assert_eq!(report.stats.spans_delivered, 1);
    /// assert_eq!(report.also.unwrap().stats.spans_delivered, 1);
    /// assert!(a.captured().span("job").is_some() && b.captured().span("job").is_some());
    /// ```
    pub fn also_transport<T: Transport + Send + 'static>(
        mut self,
        make: impl Fn() -> T + Send + Sync + 'static,
    ) -> Self {
        self.0.also = Some((
            Arc::new(move || Box::new(make()) as BoxTransport),
            Destination::Custom,
        ));
        self
    }

    /// Validates and returns the configuration.
    ///
    /// ```
    /// let error = vigil::Config::builder().batch_size(0).build().unwrap_err();
    /// assert_eq!(error.field(), "batch_size");
    /// assert_eq!(error.to_string(), "invalid `batch_size`: must be at least 1 (got 0)");
    /// ```
    pub fn build(self) -> Result<Config, ConfigError> {
        self.0.validate()?;
        Ok(self.0)
    }
}

/// A `VIGIL_*` environment variable the SDK cannot use. Its `Debug` is its
/// `Display`, naming the variable, so that an error returned from `main`
/// reads as a sentence.
///
/// ```
/// let error = vigil::Config::from_env_with(|name| {
///     (name == "VIGIL_BATCH_SIZE").then(|| "many".into())
/// })
/// .unwrap_err();
/// assert_eq!(format!("{error:?}"), r#"VIGIL_BATCH_SIZE="many": must be a whole number"#);
/// ```
#[derive(Clone, PartialEq)]
pub enum EnvError {
    /// The variable does not parse.
    Malformed {
        /// The variable's name.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// The variables parse but make an invalid configuration.
    Invalid(ConfigError),
    /// `VIGIL_PRICES` names a file that cannot be read as a price table.
    Prices(String),
}

impl EnvError {
    fn malformed(var: &'static str, value: String, expected: &'static str) -> Self {
        EnvError::Malformed {
            var,
            value,
            expected,
        }
    }
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvError::Malformed {
                var,
                value,
                expected,
            } => write!(f, "{var}={value:?}: must be {expected}"),
            EnvError::Invalid(e) => {
                let text = e.to_string();
                let reason = text.split_once(": ").map_or(text.as_str(), |(_, r)| r);
                match env_var_of(e.field()) {
                    Some(var) => write!(f, "{var}: {reason}"),
                    None => write!(f, "configuration from the environment: {text}"),
                }
            }
            EnvError::Prices(e) => write!(f, "VIGIL_PRICES: {e}"),
        }
    }
}

impl fmt::Debug for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The variable [`Config::from_env`] reads an option from.
fn env_var_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "endpoint" => "VIGIL_ENDPOINT",
        "api_key" => "VIGIL_API_KEY",
        "batch_size" => "VIGIL_BATCH_SIZE",
        "flush_interval_ms" => "VIGIL_FLUSH_INTERVAL_MS",
        "max_queue_size" => "VIGIL_MAX_QUEUE_SIZE",
        "timeout_seconds" => "VIGIL_TIMEOUT_SECONDS",
        "sample_rate" => "VIGIL_SAMPLE_RATE",
        "keep_costlier_than" => "VIGIL_KEEP_COSTLIER_THAN_USD",
        "spool_max_bytes" => "VIGIL_SPOOL_MAX_BYTES",
        "spool_max_age" => "VIGIL_SPOOL_MAX_AGE_SECS",
        "tail_hold_timeout" => "VIGIL_TAIL_HOLD_TIMEOUT_MS",
        _ => return None,
    })
}

impl std::error::Error for EnvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EnvError::Invalid(e) => Some(e),
            EnvError::Malformed { .. } | EnvError::Prices(_) => None,
        }
    }
}

/// The built-in price table, parsed once.
pub(crate) fn builtin_prices() -> &'static PriceTable {
    static BUILTIN: std::sync::OnceLock<PriceTable> = std::sync::OnceLock::new();
    BUILTIN.get_or_init(PriceTable::builtin)
}

/// The built-in table with `ours` over it.
fn with_builtin(ours: PriceTable) -> PriceTable {
    let mut table = builtin_prices().clone();
    table.extend(ours);
    table
}
