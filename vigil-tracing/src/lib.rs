//! `tracing` spans in Vigil: a [`tracing_subscriber::Layer`] that records
//! each `tracing` span as a Vigil span on the active client, in one tree
//! with Vigil's own spans.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let subscriber = tracing_subscriber::registry().with(vigil_tracing::layer());
//! let captured = vigil::sink::capture(|| {
//!     tracing::subscriber::with_default(subscriber, || {
//!         vigil::trace("answer", |_| {
//!             let span = tracing::info_span!("chat", gen_ai.operation.name = "chat",
//!                 gen_ai.request.model = "gpt-4o", gen_ai.usage.input_tokens = 12u64,
//!                 gen_ai.usage.output_tokens = tracing::field::Empty);
//!             let _entered = span.enter();
//!             span.record("gen_ai.usage.output_tokens", 3u64);
//!             vigil::span("parse", vigil::SpanKind::Tool, |_| ());
//!         });
//!     });
//! });
//! let chat = captured.span("chat").unwrap();
//! assert_eq!(chat.kind, "llm");
//! assert_eq!(chat.input["model"], "gpt-4o");
//! assert_eq!(chat.output["usage"]["total_tokens"], 15);
//! assert_eq!(chat.parent_span_id, Some(captured.span("answer").unwrap().span_id.clone()));
//! assert_eq!(captured.span("parse").unwrap().parent_span_id, Some(chat.span_id.clone()));
//! ```
//!
//! # What a `tracing` span becomes
//!
//! - A Vigil span named after it (or its `otel.name` field), of kind
//!   `custom`, or the kind its GenAI operation names
//!   (`gen_ai.operation.name`, OpenInference's `openinference.span.kind`):
//!   `chat`/`text_completion`/`generate_content` are `llm`, `execute_tool`
//!   is `tool`, `invoke_agent`/`create_agent` are `agent`,
//!   `embeddings`/`retrieval` are `retriever`, workflows are `chain`.
//! - Its fields are metadata, typed as JSON values (integers of every width,
//!   floats, booleans, strings; other values as their `Debug` text). GenAI
//!   fields become the span's input (`model`, `messages`, parameters) and
//!   output (`model`, `content`, `role`, `usage`), in the keys Vigil's own
//!   OpenAI integration writes ([`vigil_core::llm::attributes`]).
//! - Its events at `INFO` and above ([`VigilLayer::event_level`]) are Vigil
//!   events, named after their message, with `level`, `target` and their
//!   fields. An `ERROR` event, an `error` or
//!   `exception.*` field, or `otel.status_code = "ERROR"` marks it `error`.
//! - It starts when it is created and ends when it closes (its last handle
//!   dropped), whatever it was entered and exited in between.
//! - `tracing` spans and events made by the `mask` hook (or a `Serialize`
//!   impl) while the layer records a span are left out: the layer holds that
//!   span's extensions then.
//!
//! # One tree
//!
//! While a recorded `tracing` span is entered, on any thread (an
//! `Instrument`ed future is entered at each poll), it is the current Vigil
//! span there: Vigil spans and `tracing` spans created then are its
//! children, or the children of Vigil spans started inside it. A `tracing`
//! span with an explicit parent is that parent's child. A `tracing` root
//! (`parent: None`) made inside a Vigil trace stays in it, under the current
//! span. A `tracing` span with no Vigil span current starts a new trace, unless
//! [`VigilLayer::record_roots`] is off. The client's sampling, `mask` hook
//! and `capture_content(false)` apply as to any Vigil span.
//!
//! Filtering is `tracing-subscriber`'s: `vigil_tracing::layer().with_filter(..)`
//! with an `EnvFilter`, `Targets` or any per-layer filter.
//!
//! # Features
//!
//! - `log` (default): `log` records, turned into `tracing` events by
//!   `tracing-log`'s `LogTracer` (which `tracing_subscriber`'s `init()`
//!   installs), are Vigil events with the record's own level and target.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]

mod fields;

use std::cell::{Cell, RefCell};

use serde_json::{Map, Value};
use tracing_core::span::{Attributes, Id, Record};
pub use tracing_core::Level;
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;
use vigil_core::llm::attributes::GenAiAttributes;
use vigil_core::llm::keys;
use vigil_std::{Context, ContextGuard, DetachedSpan, SpanKind, SpanStatus};

use fields::{role, FieldSink, FieldValue, Role, Visitor};

/// The layer: `tracing_subscriber::registry().with(vigil_tracing::layer())`.
pub fn layer() -> VigilLayer {
    VigilLayer {
        record_roots: true,
        event_level: Level::INFO,
    }
}

/// Records `tracing` spans and events as Vigil spans and events (see the
/// crate docs). Made by [`layer`].
#[derive(Debug, Clone)]
pub struct VigilLayer {
    record_roots: bool,
    event_level: Level,
}

impl VigilLayer {
    /// Whether a `tracing` span with no recorded parent, created where no
    /// Vigil span is current, starts a Vigil trace (the default), or is left
    /// out (with its children): only what runs inside Vigil traces is
    /// recorded then.
    pub fn record_roots(mut self, record: bool) -> Self {
        self.record_roots = record;
        self
    }

    /// The most verbose level of the events kept (`INFO` by default): HTTP
    /// and LLM crates log at `DEBUG` and `TRACE` per request, often with the
    /// bodies (prompts and answers) that `capture_content(false)` keeps out
    /// of a span's input and output. Spans of every level are recorded;
    /// choose them with a per-layer filter.
    pub fn event_level(mut self, level: Level) -> Self {
        self.event_level = level;
        self
    }
}

/// What the layer keeps in a recorded span's extensions.
struct Recorded {
    span: DetachedSpan,
    /// Made at the first enter (or child): a context takes an allocation.
    context: Option<Context>,
    /// Made at the first GenAI field.
    genai: Option<Box<GenAiAttributes>>,
}

impl Recorded {
    fn context(&mut self) -> Context {
        self.context
            .get_or_insert_with(|| self.span.context())
            .clone()
    }
}

impl FieldSink for Recorded {
    fn field(&mut self, name: &'static str, value: FieldValue<'_>) {
        match role(name) {
            Role::Name => {
                if let Some(text) = value.as_str() {
                    self.span.set_name(text.to_owned());
                }
            }
            Role::Failure => {
                let failed = match (name, value) {
                    ("otel.status_code", _) => value
                        .as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case("error")),
                    (_, FieldValue::Bool(failed)) => failed,
                    _ => true,
                };
                if name != "otel.status_code" {
                    self.span.set_metadata(name, &value);
                }
                if failed {
                    self.span.set_status(SpanStatus::Error);
                }
                if name == "error" || name == "exception.message" {
                    self.span.set_metadata(keys::ERROR, &value);
                }
            }
            Role::Ignored => {}
            Role::GenAi => {
                let json = value.to_json();
                let genai = self.genai.get_or_insert_with(Default::default);
                if genai.record(name, &json) {
                    if let Some(kind) = genai.kind() {
                        self.span.set_kind(kind);
                    }
                } else {
                    self.span.set_metadata(name, &value);
                }
            }
            Role::Metadata => self.span.set_metadata(name, &value),
        }
    }
}

thread_local! {
    /// The recorded `tracing` spans entered on this thread, with the guards
    /// that make them current for Vigil: innermost last.
    static ENTERED: RefCell<Vec<(Id, ContextGuard)>> = const { RefCell::new(Vec::new()) };
    /// Set while this thread is inside one of the layer's callbacks that can
    /// run application code (the `mask` hook, a `Serialize` impl).
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread inside a callback, or `None` if it already is: a
/// `tracing` span or event made by the `mask` hook while the layer holds a
/// span's extensions is left out rather than deadlock on them.
struct Busy;

impl Busy {
    fn enter() -> Option<Busy> {
        // Made only when the flag was clear: a `Busy` made and dropped on
        // the nested call would clear the flag the outer one holds.
        let was_busy = BUSY.try_with(|busy| busy.replace(true)).ok()?;
        if was_busy {
            None
        } else {
            Some(Busy)
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = BUSY.try_with(|busy| busy.set(false));
    }
}

impl<S> Layer<S> for VigilLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let Some(_busy) = Busy::enter() else {
            return;
        };
        let Some(span) = ctx.span(id) else {
            return;
        };
        // A span with an explicit parent goes under that parent's Vigil span
        // (the nearest recorded ancestor: the registry skips those this
        // layer's filter left out). Any other goes under the Vigil span
        // current here, which is its `tracing` parent, entered on this
        // thread, or a Vigil span started inside that one.
        let explicit = !attrs.is_contextual() && !attrs.is_root();
        let parent = explicit.then(|| span.parent()).flatten().and_then(|p| {
            let mut extensions = p.extensions_mut();
            extensions.get_mut::<Recorded>().map(Recorded::context)
        });
        let name = span.metadata().name();
        let detached = match parent {
            Some(parent) => DetachedSpan::start_in(&parent, name, SpanKind::Custom),
            None if self.record_roots || !Context::current().is_empty() => {
                DetachedSpan::start(name, SpanKind::Custom)
            }
            None => return,
        };
        if detached.span_id().is_none() {
            // No client records it: keep nothing.
            return;
        }
        let mut recorded = Recorded {
            span: detached,
            context: None,
            genai: None,
        };
        attrs.record(&mut Visitor(&mut recorded));
        span.extensions_mut().insert(recorded);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let Some(_busy) = Busy::enter() else {
            return;
        };
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(recorded) = extensions.get_mut::<Recorded>() {
            values.record(&mut Visitor(recorded));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        if *event.metadata().level() > self.event_level {
            return;
        }
        let Some(_busy) = Busy::enter() else {
            return;
        };
        let mut record = EventRecord::new(event);
        event.record(&mut Visitor(&mut record));
        let failed = *record.level == Level::ERROR;
        let (name, attributes) = record.finish();
        match ctx.event_span(event) {
            Some(span) => {
                let mut extensions = span.extensions_mut();
                if let Some(recorded) = extensions.get_mut::<Recorded>() {
                    recorded.span.log_event(&name, &attributes);
                    if failed {
                        recorded.span.record_error(&name);
                    }
                    return;
                }
                // A span this layer does not record: the event goes to the
                // Vigil span current here, if any.
                log_on_current(&name, &attributes, failed);
            }
            None if !event.is_root() => log_on_current(&name, &attributes, failed),
            None => {}
        }
    }

    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let context = match span.extensions_mut().get_mut::<Recorded>() {
            Some(recorded) => recorded.context(),
            None => return,
        };
        let guard = context.attach();
        let _ = ENTERED.try_with(|entered| entered.borrow_mut().push((id.clone(), guard)));
    }

    fn on_exit(&self, id: &Id, _ctx: LayerContext<'_, S>) {
        let _ = ENTERED.try_with(|entered| {
            let mut entered = entered.borrow_mut();
            if let Some(at) = entered.iter().rposition(|(e, _)| e == id) {
                let (_, guard) = entered.remove(at);
                drop(entered);
                drop(guard);
            }
        });
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        let Some(_busy) = Busy::enter() else {
            return;
        };
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let removed = span.extensions_mut().remove::<Recorded>();
        let Some(mut recorded) = removed else {
            return;
        };
        if let Some(genai) = recorded.genai.take() {
            if let Some(input) = genai.input() {
                recorded.span.set_input(&input);
            }
            if let Some(output) = genai.output() {
                recorded.span.set_output(&output);
                let model = output[keys::MODEL].as_str();
                recorded.span.record_usage(model, &output[keys::USAGE]);
            }
            if let Some(provider) = genai.provider() {
                recorded.span.set_metadata(keys::PROVIDER, provider);
            }
        }
        recorded.span.end();
    }
}

/// Logs an event on the Vigil span current on this thread (nothing if none).
fn log_on_current(name: &str, attributes: &Value, failed: bool) {
    vigil_std::log_event(name, attributes);
    if failed {
        vigil_std::current_span().record_error(&name);
    }
}

/// An event's fields gathered into a Vigil event.
struct EventRecord {
    level: &'static Level,
    target: String,
    message: Option<String>,
    fields: Map<String, Value>,
}

impl EventRecord {
    fn new(event: &Event<'_>) -> Self {
        #[cfg(feature = "log")]
        let normalized = tracing_log::NormalizeEvent::normalized_metadata(event);
        #[cfg(feature = "log")]
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        #[cfg(not(feature = "log"))]
        let metadata = event.metadata();
        EventRecord {
            level: level_ref(*metadata.level()),
            target: metadata.target().to_owned(),
            message: None,
            fields: Map::new(),
        }
    }

    /// The event's name (its message, else `event`) and attributes.
    fn finish(self) -> (String, Value) {
        let mut fields = self.fields;
        fields.insert("level".into(), Value::String(self.level.as_str().into()));
        fields.insert("target".into(), Value::String(self.target));
        let name = self.message.unwrap_or_else(|| "event".to_owned());
        (name, Value::Object(fields))
    }
}

impl FieldSink for EventRecord {
    fn field(&mut self, name: &'static str, value: FieldValue<'_>) {
        match name {
            "message" => self.message = value.as_str().map(str::to_owned),
            // `tracing-log`'s own fields, already in the level and target.
            "log.target" | "log.module_path" | "log.file" | "log.line" => {}
            _ => {
                self.fields.insert(name.to_owned(), value.to_json());
            }
        }
    }
}

fn level_ref(level: Level) -> &'static Level {
    match level {
        Level::ERROR => &Level::ERROR,
        Level::WARN => &Level::WARN,
        Level::INFO => &Level::INFO,
        Level::DEBUG => &Level::DEBUG,
        _ => &Level::TRACE,
    }
}

#[cfg(test)]
mod tests {
    use super::Busy;

    #[test]
    fn busy_stays_set_through_any_number_of_nested_calls() {
        let outer = Busy::enter();
        assert!(outer.is_some());
        // Refused twice: a refusal must not clear what the outer call holds.
        assert!(Busy::enter().is_none());
        assert!(Busy::enter().is_none());
        drop(outer);
        assert!(Busy::enter().is_some());
    }
}
