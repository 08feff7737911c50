//! The console transport: each finished trace printed as a tree.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use serde_json::Value;
use vigil_core::{transport::RequestKind, Outcome, Request, Transport};

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
    /// The span of a request body's `spans` array, if it has every field.
    pub(crate) fn from_json(v: &Value) -> Option<CapturedSpan> {
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

impl std::fmt::Debug for ConsoleTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleTransport")
            .field("pending_traces", &self.pending.len())
            .finish_non_exhaustive()
    }
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
            let cost = &s.metadata[crate::llm::pricing::COST_KEY];
            if let Some(usd) = cost["total_usd"].as_f64() {
                let _ = write!(out, "  cost=${usd:.6}");
            } else if let Some(model) = s.metadata[crate::llm::pricing::UNPRICED_KEY].as_str() {
                let _ = write!(out, "  cost=unpriced ({})", shorten(model, 40));
            }
            let totals = &s.metadata[crate::llm::pricing::TOTALS_KEY];
            if let (Some(usd), Some(calls)) =
                (totals["total_usd"].as_f64(), totals["calls"].as_u64())
            {
                let tokens = [
                    "input_tokens",
                    "cached_input_tokens",
                    "cache_write_tokens",
                    "output_tokens",
                ]
                .iter()
                .filter_map(|k| totals[*k].as_u64())
                .sum::<u64>();
                let unpriced = totals["unpriced_calls"].as_u64().unwrap_or(0);
                let unpriced = if unpriced > 0 {
                    format!(", {unpriced} unpriced")
                } else {
                    String::new()
                };
                let _ = write!(
                    out,
                    "  total=${usd:.6} ({calls} calls, {tokens} tokens{unpriced})"
                );
            }
            // The error is shown after the status already; tokens and cost
            // are shown above.
            let shown = [
                "error",
                crate::llm::pricing::TOTALS_KEY,
                crate::llm::pricing::TOKENS_KEY,
                crate::llm::pricing::COST_KEY,
                crate::llm::pricing::UNPRICED_KEY,
            ];
            let meta: serde_json::Map<String, Value> = s
                .metadata
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !shown.contains(&k.as_str()))
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
    let days = vigil_core::time::days_from_civil(y, m, d)?;
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
