//! The OpenTelemetry environment variables.

use std::fmt;
use std::time::Duration;

use crate::{Compression, OtlpConfig, Protocol};

/// An `OTEL_*` variable the SDK cannot use. Its `Debug` is its `Display`.
///
/// ```
/// use vigil_transport_otlp::OtlpConfig;
///
/// let error = OtlpConfig::from_env_with(|name| match name {
///     "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://localhost:4318".into()),
///     "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".into()),
///     _ => None,
/// })
/// .unwrap_err();
/// assert_eq!(error.var(), "OTEL_EXPORTER_OTLP_PROTOCOL");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct OtlpEnvError {
    var: &'static str,
    value: String,
    expected: &'static str,
}

impl OtlpEnvError {
    /// The variable at fault.
    pub fn var(&self) -> &'static str {
        self.var
    }

    /// Its value (`<redacted>` for the headers variables: they hold keys).
    pub fn value(&self) -> &str {
        if self.var.contains("HEADERS") {
            "<redacted>"
        } else {
            &self.value
        }
    }

    /// What it should hold.
    pub fn expected(&self) -> &'static str {
        self.expected
    }
}

impl fmt::Display for OtlpEnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?}: must be {}",
            self.var,
            self.value(),
            self.expected
        )
    }
}

impl fmt::Debug for OtlpEnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for OtlpEnvError {}

impl OtlpConfig {
    /// The configuration the OpenTelemetry environment variables describe,
    /// or `None` when neither `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` nor
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set (see [`OtlpConfig::from_env_with`]).
    pub fn from_env() -> Result<Option<OtlpConfig>, OtlpEnvError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Like [`OtlpConfig::from_env`], reading variables through `var`:
    ///
    /// - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is) or
    ///   `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended);
    /// - `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`: `name=value,...`, values
    ///   percent-decoded;
    /// - `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`: `http/protobuf` (default)
    ///   or `http/json` (with the `json` feature); `grpc` is not supported;
    /// - `OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION`: `gzip` or `none`;
    /// - `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`: milliseconds (default 10000);
    /// - `OTEL_SERVICE_NAME`, and `OTEL_RESOURCE_ATTRIBUTES`
    ///   (`key=value,...`, percent-decoded; its `service.name` yields to
    ///   `OTEL_SERVICE_NAME`).
    ///
    /// The signal-specific (`TRACES_`) variable wins over the general one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use vigil_transport_otlp::OtlpConfig;
    ///
    /// let config = OtlpConfig::from_env_with(|name| match name {
    ///     "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318/".into()),
    ///     "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-api-key=abc%3D%3D,x-team=agents".into()),
    ///     "OTEL_EXPORTER_OTLP_TIMEOUT" => Some("2500".into()),
    ///     "OTEL_RESOURCE_ATTRIBUTES" => Some("service.name=ignored,team=ml".into()),
    ///     "OTEL_SERVICE_NAME" => Some("support-agent".into()),
    ///     _ => None,
    /// })
    /// .unwrap()
    /// .unwrap();
    /// assert_eq!(config.traces_url(), "http://collector:4318/v1/traces");
    /// assert_eq!(config.headers()[0], ("x-api-key".to_owned(), "abc==".to_owned()));
    /// assert_eq!(config.timeout(), Duration::from_millis(2500));
    /// assert_eq!(config.service_name(), Some("support-agent"));
    /// assert_eq!(config.resource_attributes(), [("team".to_owned(), "ml".to_owned())]);
    ///
    /// assert!(OtlpConfig::from_env_with(|_| None).unwrap().is_none());
    /// ```
    pub fn from_env_with(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpConfig>, OtlpEnvError> {
        let var = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let pick = |traces: &'static str, general: &'static str| {
            var(traces)
                .map(|v| (traces, v))
                .or_else(|| var(general).map(|v| (general, v)))
        };
        let mut config = match (
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(url), _) => {
                check_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &url)?;
                OtlpConfig::builder("").traces_endpoint(&url)
            }
            (None, Some(base)) => {
                check_url("OTEL_EXPORTER_OTLP_ENDPOINT", &base)?;
                OtlpConfig::builder(&base)
            }
            (None, None) => return Ok(None),
        };
        if let Some((name, v)) = pick(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ) {
            for (key, value) in pairs(name, &v, "name=value pairs separated by commas")? {
                let reserved = crate::RESERVED_HEADERS
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&key));
                if !is_token(&key) || value.chars().any(char::is_control) || reserved {
                    return Err(malformed(
                        name,
                        v,
                        "name=value pairs of valid HTTP headers the transport does not set itself",
                    ));
                }
                config = config.header(key, value);
            }
        }
        if let Some((name, v)) = pick(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ) {
            config.0.protocol = match v.as_str() {
                "http/protobuf" => Protocol::HttpProtobuf,
                #[cfg(feature = "json")]
                "http/json" => Protocol::HttpJson,
                #[cfg(feature = "json")]
                _ => return Err(malformed(name, v, "http/protobuf or http/json")),
                #[cfg(not(feature = "json"))]
                _ => {
                    return Err(malformed(
                        name,
                        v,
                        "http/protobuf (http/json needs the `json` feature)",
                    ))
                }
            };
        }
        if let Some((name, v)) = pick(
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        ) {
            config.0.compression = match v.as_str() {
                "none" => Compression::None,
                #[cfg(feature = "gzip")]
                "gzip" => Compression::Gzip,
                _ => return Err(malformed(name, v, "gzip or none")),
            };
        }
        if let Some((name, v)) = pick(
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ) {
            match v.parse::<u64>() {
                Ok(ms) if ms > 0 => config.0.timeout = Duration::from_millis(ms),
                _ => return Err(malformed(name, v, "a whole number of milliseconds above 0")),
            }
        }
        if let Some(v) = var("OTEL_RESOURCE_ATTRIBUTES") {
            for (key, value) in pairs(
                "OTEL_RESOURCE_ATTRIBUTES",
                &v,
                "key=value pairs separated by commas",
            )? {
                if key == "service.name" {
                    config.0.service_name.get_or_insert(value);
                } else {
                    config = config.resource_attribute(key, value);
                }
            }
        }
        if let Some(name) = var("OTEL_SERVICE_NAME") {
            config.0.service_name = Some(name);
        }
        // Every option was checked as it was read.
        config.build().map(Some).map_err(|e| OtlpEnvError {
            var: "OTEL_EXPORTER_OTLP_ENDPOINT",
            value: e.to_string(),
            expected: "a valid OTLP configuration",
        })
    }
}

fn malformed(var: &'static str, value: String, expected: &'static str) -> OtlpEnvError {
    OtlpEnvError {
        var,
        value,
        expected,
    }
}

fn check_url(var: &'static str, url: &str) -> Result<(), OtlpEnvError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(malformed(var, url.to_owned(), "an http:// or https:// URL")),
    }
}

/// `key=value,...` (W3C baggage-like), keys trimmed, values percent-decoded.
fn pairs(
    var: &'static str,
    text: &str,
    expected: &'static str,
) -> Result<Vec<(String, String)>, OtlpEnvError> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(malformed(var, text.to_owned(), expected));
        };
        let (key, value) = (key.trim(), percent_decode(value.trim()));
        match value {
            Some(value) if !key.is_empty() => out.push((key.to_owned(), value)),
            _ => return Err(malformed(var, text.to_owned(), expected)),
        }
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            // The last one given wins.
            vars.iter()
                .rfind(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_traces_variables_win() {
        let config = OtlpConfig::from_env_with(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:9999/custom"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "100"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "200"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(config.traces_url(), "http://b:9999/custom");
        assert_eq!(config.timeout(), Duration::from_millis(200));
        assert_eq!(config.compression(), Compression::Gzip);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318");
        for (var, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "bad name=1"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "content-type=text/plain"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "k=%zz"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
            ("OTEL_RESOURCE_ATTRIBUTES", "=x"),
        ] {
            let vars = [base, (var, value)];
            let error = OtlpConfig::from_env_with(env(&vars)).unwrap_err();
            assert_eq!(error.var(), var, "{value}");
        }
        let vars = [base, ("OTEL_EXPORTER_OTLP_HEADERS", "k=secret,bad")];
        let error = OtlpConfig::from_env_with(env(&vars)).unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%e2%82%ac").as_deref(), Some("€"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }
}
