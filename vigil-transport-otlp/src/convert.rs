//! A Vigil ingest body (PROTOCOL.md) as an OTLP `ExportTraceServiceRequest`.

use std::borrow::Cow;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::{Event, SpanKind as OtlpKind},
    status::StatusCode,
    ResourceSpans, ScopeSpans, Span, Status,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use vigil_core::llm::{genai, keys, openinference, pricing};
use vigil_core::SpanKind;

/// The instrumentation scope and `telemetry.sdk.name` of every span.
pub(crate) const SDK_NAME: &str = "vigil";
const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The attribute that keeps a span's own 32-hex Vigil id.
pub const VIGIL_SPAN_ID: &str = "vigil.span_id";
/// The resource attribute that names the Vigil project.
pub const VIGIL_PROJECT_ID: &str = "vigil.project_id";

#[derive(Deserialize)]
struct Ingest<'a> {
    #[serde(borrow)]
    spans: Vec<VigilSpan<'a>>,
    #[serde(default, borrow)]
    project_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    trace_metadata: Option<Members<'a>>,
}

/// A span as Vigil encodes it. Payloads stay JSON text, borrowed from the
/// body: most become attributes as they are, and only an `llm` span's are
/// parsed.
#[derive(Deserialize)]
struct VigilSpan<'a> {
    #[serde(borrow)]
    span_id: Cow<'a, str>,
    #[serde(borrow)]
    trace_id: Cow<'a, str>,
    #[serde(default, borrow)]
    parent_span_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
    #[serde(default, borrow)]
    output: Option<&'a RawValue>,
    #[serde(default, borrow)]
    metadata: Members<'a>,
    #[serde(default, borrow)]
    events: Vec<VigilEvent<'a>>,
    #[serde(borrow)]
    start_time: Cow<'a, str>,
    #[serde(default, borrow)]
    end_time: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct VigilEvent<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(default, borrow)]
    attributes: Members<'a>,
}

/// A JSON object's members in order, values as their JSON text.
#[derive(Default)]
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Members<'a> {
    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    fn get_str(&self, key: &str) -> Option<Cow<'a, str>> {
        self.get(key).and_then(raw_str)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Members<'a>, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((Key(key), value)) = map.next_entry::<Key<'a>, &'a RawValue>()? {
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// A key borrowed from the body unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Visit(std::marker::PhantomData))
    }
}

/// The string a JSON text holds, if it is one.
fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// A JSON text as a typed attribute, parsing only what must be: strings,
/// bools and numbers read directly, objects kept as their (compact) text,
/// arrays parsed to see whether their elements share a type.
fn any_raw(raw: &RawValue) -> Option<AnyValue> {
    let text = raw.get();
    match text.as_bytes().first()? {
        b'n' => None,
        b't' => Some(boolean(true)),
        b'f' => Some(boolean(false)),
        b'"' => raw_str(raw).map(|s| string(&s)),
        b'{' => Some(string(text)),
        b'[' => serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| any(&v)),
        _ => {
            let integral = !text.contains(['.', 'e', 'E']);
            match text.parse::<i64>() {
                Ok(i) if integral => Some(int(i)),
                _ => text.parse::<f64>().ok().map(double),
            }
        }
    }
}

fn parsed(raw: Option<&RawValue>) -> Option<Value> {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
}

/// What stays the same for every request: the resource.
#[derive(Clone, Debug)]
pub(crate) struct ResourceTemplate {
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) capture_content: bool,
}

impl ResourceTemplate {
    pub(crate) fn new(
        service_name: &str,
        extra: &[(String, String)],
        capture_content: bool,
    ) -> Self {
        let mut attributes = vec![
            kv("service.name", string(service_name)),
            kv("telemetry.sdk.name", string(SDK_NAME)),
            kv("telemetry.sdk.language", string("rust")),
            kv("telemetry.sdk.version", string(SDK_VERSION)),
        ];
        for (key, value) in extra {
            set(&mut attributes, key, string(value));
        }
        ResourceTemplate {
            attributes,
            capture_content,
        }
    }
}

/// Why a body could not be read as a Vigil ingest request.
#[derive(Debug)]
pub(crate) struct BadBody(pub(crate) String);

/// One `ResourceSpans` holding every span of `body`.
pub(crate) fn convert(
    body: &[u8],
    resource: &ResourceTemplate,
) -> Result<ExportTraceServiceRequest, BadBody> {
    // Checked as UTF-8 once, not string by string.
    let body = std::str::from_utf8(body).map_err(|e| BadBody(format!("not UTF-8: {e}")))?;
    let ingest: Ingest<'_> =
        serde_json::from_str(body).map_err(|e| BadBody(format!("not a Vigil ingest body: {e}")))?;
    let mut attributes = resource.attributes.clone();
    if let Some(project) = ingest.project_id.as_deref().filter(|p| !p.is_empty()) {
        set_absent(&mut attributes, VIGIL_PROJECT_ID, string(project));
        // Phoenix files spans by this project name.
        set_absent(
            &mut attributes,
            "openinference.project.name",
            string(project),
        );
    }
    if let Some(meta) = &ingest.trace_metadata {
        for (key, attribute) in [
            (crate::RELEASE, "service.version"),
            (crate::ENVIRONMENT, "deployment.environment.name"),
        ] {
            if let Some(v) = meta.get_str(key) {
                set_absent(&mut attributes, attribute, string(&v));
            }
        }
    }
    let spans = ingest
        .spans
        .into_iter()
        .map(|s| span(s, resource.capture_content))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SDK_NAME.into(),
                    version: SDK_VERSION.into(),
                    ..InstrumentationScope::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    })
}

/// The 8-byte OTLP span id of a 16-byte Vigil span id: its two halves
/// XORed. Vigil's ids are 122 random bits (UUIDv4), and the fixed version
/// and variant bits of one half meet random bits of the other, so the result
/// is 64 uniformly random bits: two spans of a trace share one with odds of
/// about n²/2⁶⁵ (one in 10¹¹ for a trace of 10,000 spans). An id imported
/// from W3C trace context (8 bytes, zero-padded) keeps its value. The
/// all-zero id, invalid in OTLP, becomes 1.
pub fn span_id_bytes(id: [u8; 16]) -> [u8; 8] {
    let mut out = [0; 8];
    for (i, b) in out.iter_mut().enumerate() {
        *b = id[i] ^ id[i + 8];
    }
    if out == [0; 8] {
        out[7] = 1;
    }
    out
}

fn hex16(text: &str, what: &str) -> Result<[u8; 16], BadBody> {
    vigil_core::TraceId::parse_hex(text)
        .map(vigil_core::TraceId::to_bytes)
        .ok_or_else(|| BadBody(format!("{what} {text:?} is not 32 hex digits")))
}

fn span(s: VigilSpan<'_>, capture: bool) -> Result<Span, BadBody> {
    let trace_id = hex16(&s.trace_id, "trace_id")?;
    let span_id = hex16(&s.span_id, "span_id")?;
    let parent = match s.parent_span_id.as_deref() {
        Some(p) => span_id_bytes(hex16(p, "parent_span_id")?).to_vec(),
        None => Vec::new(),
    };
    let kind: SpanKind = s.kind.parse().unwrap_or(SpanKind::Custom);
    let start = parse_rfc3339(&s.start_time)
        .ok_or_else(|| BadBody(format!("start_time {:?} is not RFC 3339", s.start_time)))?;
    // A span sent before it ended (none is, today) shows as instant.
    let end = s
        .end_time
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or(start)
        .max(start);
    let mut attributes = Vec::with_capacity(6 + s.metadata.0.len());
    attributes.push(kv(VIGIL_SPAN_ID, string(&s.span_id)));
    // The OpenInference kind names the Vigil kind too: they map one to one.
    attributes.push(kv(
        openinference::SPAN_KIND,
        string(openinference::span_kind_of_kind(kind)),
    ));
    if parent.is_empty() {
        if let Some(session) = s.metadata.get_str(crate::SESSION_ID) {
            attributes.push(kv(openinference::SESSION_ID, string(&session)));
            attributes.push(kv(genai::CONVERSATION_ID, string(&session)));
        }
        if let Some(user) = s.metadata.get_str(crate::USER_ID) {
            attributes.push(kv(openinference::USER_ID, string(&user)));
        }
    }
    if matches!(
        kind,
        SpanKind::Llm | SpanKind::Tool | SpanKind::Agent | SpanKind::Retriever
    ) {
        attributes.push(kv(
            genai::OPERATION_NAME,
            string(genai::operation_of_kind(kind)),
        ));
    }
    match kind {
        SpanKind::Llm => llm_attributes(&mut attributes, &s, capture),
        SpanKind::Tool => {
            let name = s.name.strip_prefix("tool:").unwrap_or(&s.name);
            attributes.push(kv(genai::TOOL_NAME, string(name)));
            if capture {
                if let Some(input) = s.input {
                    attributes.push(kv(genai::TOOL_CALL_ARGUMENTS, string(input.get())));
                }
                if let Some(output) = s.output {
                    attributes.push(kv(genai::TOOL_CALL_RESULT, string(output.get())));
                }
            }
        }
        SpanKind::Agent => attributes.push(kv(genai::AGENT_NAME, string(&s.name))),
        _ => {}
    }
    if capture {
        for (value, key, mime) in [
            (
                s.input,
                openinference::INPUT_VALUE,
                openinference::INPUT_MIME_TYPE,
            ),
            (
                s.output,
                openinference::OUTPUT_VALUE,
                openinference::OUTPUT_MIME_TYPE,
            ),
        ] {
            if let Some(value) = value {
                attributes.push(kv(key, string(value.get())));
                attributes.push(kv(mime, string(openinference::JSON)));
            }
        }
    }
    for (key, value) in &s.metadata.0 {
        if let Some(v) = any_raw(value) {
            attributes.push(kv(key, v));
        }
    }
    let events = s
        .events
        .iter()
        .map(|e| Event {
            time_unix_nano: parse_rfc3339(&e.timestamp).unwrap_or(start),
            name: e.name.clone().into_owned(),
            attributes: e
                .attributes
                .0
                .iter()
                .filter_map(|(k, v)| any_raw(v).map(|v| kv(k, v)))
                .collect(),
            dropped_attributes_count: 0,
        })
        .collect();
    let status = match s.status.as_ref() {
        "ok" => Some(Status {
            message: String::new(),
            code: StatusCode::Ok as i32,
        }),
        "error" => Some(Status {
            message: parsed(s.output)
                .as_ref()
                .and_then(|o| o.get(keys::ERROR))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            code: StatusCode::Error as i32,
        }),
        _ => None,
    };
    // GenAI: a model call is a client call to another service; a retrieval
    // reaches a store; tools, agents and steps run in the process.
    let otlp_kind = match kind {
        SpanKind::Llm | SpanKind::Retriever => OtlpKind::Client,
        _ => OtlpKind::Internal,
    };
    Ok(Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id_bytes(span_id).to_vec(),
        parent_span_id: parent,
        name: s.name.into_owned(),
        kind: otlp_kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        events,
        status,
        ..Span::default()
    })
}

/// The GenAI and OpenInference attributes of an `llm` span's input
/// (`model`, `messages`, parameters), output (`model`, `content`, `role`,
/// `usage`) and metadata (`provider`).
fn llm_attributes(out: &mut Vec<KeyValue>, s: &VigilSpan<'_>, capture: bool) {
    let (input, output) = (parsed(s.input), parsed(s.output));
    let input = input.as_ref().and_then(Value::as_object);
    let output = output.as_ref().and_then(Value::as_object);
    if let Some(provider) = s.metadata.get_str(keys::PROVIDER) {
        out.push(kv(genai::PROVIDER_NAME, string(&provider)));
        out.push(kv(openinference::LLM_PROVIDER, string(&provider)));
    }
    // The price Vigil put on the call (`vigil.cost`), as OpenInference's costs.
    if let Some(cost) = parsed(s.metadata.get(pricing::COST_KEY)) {
        let usd = |keys: &[&str]| -> Option<f64> {
            let found: Vec<f64> = keys.iter().filter_map(|k| cost.get(*k)?.as_f64()).collect();
            (!found.is_empty()).then(|| found.iter().sum())
        };
        for (attribute, fields) in [
            (
                openinference::LLM_COST_PROMPT,
                &["input_usd", "cached_input_usd", "cache_write_usd"][..],
            ),
            (openinference::LLM_COST_COMPLETION, &["output_usd"][..]),
            (openinference::LLM_COST_TOTAL, &["total_usd"][..]),
        ] {
            if let Some(v) = usd(fields) {
                out.push(kv(attribute, double(v)));
            }
        }
    }
    if let Some(input) = input {
        for (key, attribute) in genai::REQUEST_PARAMETERS {
            let Some(value) = input.get(key).filter(|v| !v.is_null()) else {
                continue;
            };
            // The conventions' stop sequences are an array of strings.
            let value = match value {
                Value::String(_) if attribute == genai::REQUEST_STOP_SEQUENCES => {
                    Value::Array(vec![value.clone()])
                }
                _ => value.clone(),
            };
            if let Some(v) = any(&value) {
                out.push(kv(attribute, v));
            }
        }
        if let Some(Value::String(model)) = input.get(keys::MODEL) {
            out.push(kv(openinference::LLM_MODEL_NAME, string(model)));
        }
        let parameters: Map<String, Value> = input
            .iter()
            .filter(|(k, _)| *k != keys::MODEL && *k != keys::MESSAGES)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !parameters.is_empty() {
            out.push(kv(
                openinference::LLM_INVOCATION_PARAMETERS,
                string(&Value::Object(parameters).to_string()),
            ));
        }
        if capture {
            if let Some(Value::Array(messages)) = input.get(keys::MESSAGES) {
                let parts: Vec<Value> = messages.iter().map(|m| genai_message(m, None)).collect();
                out.push(kv(
                    genai::INPUT_MESSAGES,
                    string(&Value::Array(parts).to_string()),
                ));
                for (i, m) in messages.iter().enumerate() {
                    flat_message(out, openinference::LLM_INPUT_MESSAGES, i, m);
                }
            }
        }
    }
    if let Some(output) = output {
        if let Some(Value::String(model)) = output.get(keys::MODEL) {
            out.push(kv(genai::RESPONSE_MODEL, string(model)));
        }
        if let Some(usage) = output.get(keys::USAGE).and_then(Value::as_object) {
            let mut total = None;
            let (mut prompt, mut completion) = (None, None);
            for (key, attribute) in openinference::TOKEN_COUNTS {
                if let Some(n) = usage.get(key).and_then(Value::as_i64) {
                    match attribute {
                        openinference::LLM_TOKEN_COUNT_PROMPT => prompt = Some(n),
                        openinference::LLM_TOKEN_COUNT_COMPLETION => completion = Some(n),
                        _ => total = Some(n),
                    }
                }
            }
            let total = total.or(match (prompt, completion) {
                (None, None) => None,
                (p, c) => Some(p.unwrap_or(0).saturating_add(c.unwrap_or(0))),
            });
            for (n, names) in [
                (
                    prompt,
                    [
                        genai::USAGE_INPUT_TOKENS,
                        openinference::LLM_TOKEN_COUNT_PROMPT,
                    ],
                ),
                (
                    completion,
                    [
                        genai::USAGE_OUTPUT_TOKENS,
                        openinference::LLM_TOKEN_COUNT_COMPLETION,
                    ],
                ),
            ] {
                if let Some(n) = n {
                    for name in names {
                        out.push(kv(name, int(n)));
                    }
                }
            }
            if let Some(total) = total {
                out.push(kv(openinference::LLM_TOKEN_COUNT_TOTAL, int(total)));
            }
        }
        if let Some(reason) = output.get(keys::STOP_REASON).and_then(Value::as_str) {
            out.push(kv(
                genai::RESPONSE_FINISH_REASONS,
                array(vec![string(reason)]),
            ));
        }
        if capture && output.contains_key(keys::CONTENT) {
            let reason = output.get(keys::STOP_REASON).and_then(Value::as_str);
            let answer = Value::Object(output.clone());
            let message = genai_message(&answer, Some(reason.unwrap_or("stop")));
            out.push(kv(
                genai::OUTPUT_MESSAGES,
                string(&Value::Array(vec![message]).to_string()),
            ));
            flat_message(out, openinference::LLM_OUTPUT_MESSAGES, 0, &answer);
        }
    }
}

/// A `{role, content}` message as the GenAI conventions structure it:
/// `{"role", "parts": [{"type": "text", "content"}]}` (content that is not
/// text goes as it is, in a part of its own).
fn genai_message(message: &Value, finish_reason: Option<&str>) -> Value {
    let role = message
        .get(keys::ROLE)
        .and_then(Value::as_str)
        .unwrap_or("assistant");
    let parts: Vec<Value> = match message.get(keys::CONTENT) {
        Some(Value::String(text)) => vec![text_part(text)],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => text_part(text),
                Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("text") => {
                    text_part(o.get("text").and_then(Value::as_str).unwrap_or_default())
                }
                other => other.clone(),
            })
            .collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.clone()],
    };
    let mut out = Map::new();
    out.insert("role".into(), role.into());
    out.insert("parts".into(), Value::Array(parts));
    if let Some(reason) = finish_reason {
        out.insert("finish_reason".into(), reason.into());
    }
    Value::Object(out)
}

fn text_part(text: &str) -> Value {
    let mut part = Map::new();
    part.insert("type".into(), "text".into());
    part.insert("content".into(), text.into());
    Value::Object(part)
}

/// OpenInference's flattened message: `{prefix}.{i}.message.role` and `.content`.
fn flat_message(out: &mut Vec<KeyValue>, prefix: &str, i: usize, message: &Value) {
    if let Some(role) = message.get(keys::ROLE).and_then(Value::as_str) {
        out.push(kv(
            &format!("{prefix}.{i}.{}", openinference::MESSAGE_ROLE),
            string(role),
        ));
    }
    let content = match message.get(keys::CONTENT) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    };
    if let Some(content) = content {
        out.push(kv(
            &format!("{prefix}.{i}.{}", openinference::MESSAGE_CONTENT),
            string(&content),
        ));
    }
}

/// A JSON value as a typed attribute: strings, bools, integers (those past
/// `i64` as doubles), doubles, arrays of one primitive type; an object or a
/// mixed array as its JSON text; `None` for `null`.
pub(crate) fn any(value: &Value) -> Option<AnyValue> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => AnyValue {
            value: Some(any_value::Value::BoolValue(*b)),
        },
        Value::Number(n) => match n.as_i64() {
            Some(i) => int(i),
            None => AnyValue {
                value: Some(any_value::Value::DoubleValue(
                    n.as_f64().unwrap_or(f64::NAN),
                )),
            },
        },
        Value::String(s) => string(s),
        Value::Array(items) => {
            let same_type = items.windows(2).all(|w| {
                std::mem::discriminant(&w[0]) == std::mem::discriminant(&w[1])
                    && (!w[0].is_number() || w[0].is_i64() == w[1].is_i64())
            });
            let primitive = items
                .iter()
                .all(|v| matches!(v, Value::Bool(_) | Value::Number(_) | Value::String(_)));
            if same_type && primitive {
                array(items.iter().filter_map(any).collect())
            } else {
                string(&value.to_string())
            }
        }
        Value::Object(_) => string(&value.to_string()),
    })
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value),
        ..KeyValue::default()
    }
}

fn string(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    }
}

fn boolean(b: bool) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::BoolValue(b)),
    }
}

fn double(d: f64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::DoubleValue(d)),
    }
}

fn int(i: i64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::IntValue(i)),
    }
}

fn array(values: Vec<AnyValue>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
    }
}

/// Sets `key`, replacing an earlier value.
fn set(attributes: &mut Vec<KeyValue>, key: &str, value: AnyValue) {
    attributes.retain(|a| a.key != key);
    attributes.push(kv(key, value));
}

/// Sets `key` unless it is set already (the configuration wins).
fn set_absent(attributes: &mut Vec<KeyValue>, key: &str, value: AnyValue) {
    if !attributes.iter().any(|a| a.key == key) {
        attributes.push(kv(key, value));
    }
}

/// Nanoseconds since the epoch of an RFC 3339 UTC time as Vigil writes it,
/// `2026-11-24T10:00:00.123456Z` (any number of fraction digits, `Z` or an
/// offset); `None` for anything else, or before 1970.
pub(crate) fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, m, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || sec > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in fraction[..digits].bytes().enumerate().take(9) {
            nanos += u64::from(c - b'0') * 10u64.pow(8 - i as u32);
        }
        rest = &fraction[digits..];
    }
    let offset: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = rest[1..].split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            let (oh, om): (i64, i64) = (oh.parse().ok()?, om.parse().ok()?);
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = vigil_core::time::days_from_civil(year, month, day)?;
    let secs = i64::try_from(days * 86_400 + h * 3600 + m * 60 + sec).ok()? - offset;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_to_nanoseconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-11-24T10:00:00.123456Z"),
            Some(1_795_514_400_123_456_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-24T12:00:00.5+02:00"),
            Some(1_795_514_400_500_000_000)
        );
        for bad in [
            "",
            "2026-11-24",
            "2026-13-24T10:00:00Z",
            "2026-11-24T10:00:00",
            "2026-11-24T10:00:00.Z",
            "1969-12-31T23:59:59Z",
            "2026-11-24T1a:00:00Z",
            "２026-11-24T10:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn span_ids_fold_to_eight_random_bytes() {
        let mut ids = vigil_core::IdGenerator::from_seed(3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            assert!(seen.insert(span_id_bytes(ids.span_id().to_bytes())));
        }
        let mut w3c = [0u8; 16];
        w3c[8..].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(span_id_bytes(w3c), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(span_id_bytes([0; 16]), [0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn json_values_become_typed_attributes() {
        use any_value::Value as V;
        let v = |j: Value| any(&j).and_then(|a| a.value);
        assert_eq!(v(serde_json::json!(3)), Some(V::IntValue(3)));
        assert_eq!(v(serde_json::json!(0.5)), Some(V::DoubleValue(0.5)));
        assert_eq!(
            v(serde_json::json!(u64::MAX)),
            Some(V::DoubleValue(u64::MAX as f64))
        );
        assert_eq!(v(serde_json::json!(true)), Some(V::BoolValue(true)));
        assert_eq!(v(Value::Null), None);
        assert_eq!(
            v(serde_json::json!({"a": [1]})),
            Some(V::StringValue(r#"{"a":[1]}"#.into()))
        );
        assert_eq!(
            v(serde_json::json!([1, "x"])),
            Some(V::StringValue(r#"[1,"x"]"#.into()))
        );
        assert_eq!(
            v(serde_json::json!([1, 2.5])),
            Some(V::StringValue("[1,2.5]".into())),
            "ints and doubles are two types"
        );
        let Some(V::ArrayValue(a)) = v(serde_json::json!(["x", "y"])) else {
            panic!("an array of strings")
        };
        assert_eq!(a.values.len(), 2);
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        let r = ResourceTemplate::new("svc", &[], true);
        for body in [
            &b"not json"[..],
            br#"{"spans":[{"span_id":"x","trace_id":"y","name":"n","kind":"llm","status":"ok","start_time":"2026-01-01T00:00:00Z"}]}"#,
            br#"{"spans":[{"span_id":"0123456789abcdef0123456789abcdef","trace_id":"0123456789abcdef0123456789abcdef","name":"n","kind":"llm","status":"ok","start_time":"yesterday"}]}"#,
        ] {
            assert!(convert(body, &r).is_err());
        }
    }
}
