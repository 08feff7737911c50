//! The three contenders, set up the same way: a trace (or parent span) open,
//! and a child span started and ended per iteration.
#![allow(dead_code)]

use std::hint::black_box;

use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, InMemorySpanExporter, SdkTracerProvider,
};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;
use vigil::{Config, SpanKind};

pub const KIB: &str = include_str!("kib.txt");

pub fn vigil_client() -> vigil::Client {
    let config = Config::builder()
        .transport(vigil::sink::NullTransport::default)
        // Room for the largest criterion sample on two threads (the benches
        // flush between samples): every span measured is a span queued.
        .max_queue_size(QUEUE)
        .batch_size(BATCH)
        .build()
        .unwrap();
    vigil::init(config).unwrap()
}

pub struct Otel {
    pub provider: SdkTracerProvider,
    pub tracer: opentelemetry_sdk::trace::SdkTracer,
    pub exporter: InMemorySpanExporter,
}

/// Spans per batch and most spans queued, the same for both SDKs.
pub const QUEUE: usize = 1 << 21;
pub const BATCH: usize = 1000;

pub fn otel() -> Otel {
    let exporter = InMemorySpanExporter::default();
    // opentelemetry's default queue (2,048) drops most spans of a criterion
    // sample, and a dropped span costs less than a queued one: give it the
    // room Vigil has.
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(QUEUE)
        .with_max_export_batch_size(BATCH)
        .build();
    let processor = BatchSpanProcessor::builder(exporter.clone())
        .with_batch_config(config)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("bench");
    Otel {
        provider,
        tracer,
        exporter,
    }
}

/// Which span shape to make.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    Bare,
    FourAttributes,
    KibPayloads,
}

pub fn vigil_span(shape: Shape) {
    let s = vigil::start_span("step", SpanKind::Tool);
    match shape {
        Shape::Bare => {}
        Shape::FourAttributes => {
            s.set_metadata("user_id", &42);
            s.set_metadata("model", "gpt-4o");
            s.set_metadata("temperature", &0.2);
            s.set_metadata("cached", &true);
        }
        Shape::KibPayloads => {
            s.set_input(&[("prompt", KIB)]);
            s.set_output(&[("content", KIB)]);
        }
    }
}

#[vigil::span(name = "step", kind = "tool")]
pub fn vigil_macro_span() {
    black_box(());
}

pub fn otel_span(tracer: &opentelemetry_sdk::trace::SdkTracer, parent: &Context, shape: Shape) {
    let mut s = tracer.start_with_context("step", parent);
    match shape {
        Shape::Bare => {}
        Shape::FourAttributes => {
            s.set_attribute(KeyValue::new("user_id", 42));
            s.set_attribute(KeyValue::new("model", "gpt-4o"));
            s.set_attribute(KeyValue::new("temperature", 0.2));
            s.set_attribute(KeyValue::new("cached", true));
        }
        Shape::KibPayloads => {
            s.set_attribute(KeyValue::new("input.prompt", KIB.to_owned()));
            s.set_attribute(KeyValue::new("output.content", KIB.to_owned()));
        }
    }
    s.end();
}

pub fn otel_parent(tracer: &opentelemetry_sdk::trace::SdkTracer) -> Context {
    let span = tracer.start("trace");
    Context::current_with_span(span)
}

pub fn tracing_span(shape: Shape) {
    let span = match shape {
        Shape::Bare => tracing::info_span!("step"),
        Shape::FourAttributes => tracing::info_span!(
            "step",
            user_id = 42,
            model = "gpt-4o",
            temperature = 0.2,
            cached = true
        ),
        Shape::KibPayloads => tracing::info_span!("step", prompt = KIB, content = KIB),
    };
    let _entered = span.enter();
    black_box(&_entered);
}

/// The span of the "tracing span, 2 fields" group: two fields, entered and
/// dropped (its parent is whatever `tracing` span is entered).
pub fn tracing_two_fields() {
    let span = tracing::info_span!("step", user = "ada", attempt = 3u64);
    let _entered = span.enter();
    black_box(&_entered);
}

/// `tracing_subscriber`'s registry with no layer: what every layer's span
/// costs before the layer does anything.
pub fn registry_dispatch() -> Dispatch {
    Dispatch::new(tracing_subscriber::registry())
}

/// The registry with Vigil's layer, recording to the client initialised
/// when the layer's spans are made.
pub fn vigil_layer_dispatch() -> Dispatch {
    Dispatch::new(tracing_subscriber::registry().with(vigil_tracing::layer()))
}

/// The registry with tracing-opentelemetry's layer on `tracer`.
///
/// Its defaults add attributes Vigil's layer does not record: the source
/// location (`code.file.path`, `code.module.name`, `code.line.number`), the
/// thread (`thread.id`, `thread.name`), the busy and idle times (timed at
/// every enter and exit) and the span's `target`. For a fair comparison all
/// four are off here, so both layers record the span's name, times, parent
/// and its own fields. Context activation stays on, as Vigil's layer makes
/// an entered span current too. (It records a `u64` field as text, through
/// `Debug`, where Vigil's keeps it a number: that is its own behaviour, left
/// as it is.)
pub fn otel_layer_dispatch(tracer: opentelemetry_sdk::trace::SdkTracer) -> Dispatch {
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false);
    Dispatch::new(tracing_subscriber::registry().with(layer))
}

/// What any span that records its start and end time must do, and nothing
/// else: two reads of the clock Vigil uses (the TSC on x86-64, `Instant`
/// elsewhere), and a 128-byte record written to the next slot of a ring
/// (about the size of Vigil's record) whose ticket is taken with one atomic
/// add. The floor under every contender that times its spans.
pub struct Floor {
    ring: Vec<[u64; 16]>,
    ticket: std::sync::atomic::AtomicUsize,
}

impl Default for Floor {
    fn default() -> Floor {
        // 2 MiB: more than L2, like a queue the exporter drains behind.
        Floor {
            ring: vec![[1; 16]; 1 << 14],
            ticket: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl Floor {
    #[inline(never)]
    pub fn span(&mut self, name: &'static str) {
        let start = clock();
        let end = clock();
        let at = self
            .ticket
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let len = self.ring.len();
        let slot = &mut self.ring[at & (len - 1)];
        *slot = [
            start,
            end,
            at as u64,
            name.as_ptr() as u64,
            name.len() as u64,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        black_box(slot);
    }
}

/// The two clock reads of [`Floor::span`] alone.
#[inline(never)]
pub fn clock_pair() -> (u64, u64) {
    (clock(), clock())
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn clock() -> u64 {
    // SAFETY: `rdtsc` exists on every x86-64 CPU.
    unsafe { std::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn clock() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}
