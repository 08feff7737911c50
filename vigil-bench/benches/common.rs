//! The contenders, set up the same way: a trace (or parent span) open, and
//! a child span started and ended per iteration.
#![allow(dead_code)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

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
    vigil::init(vigil_config().build().unwrap()).unwrap()
}

/// [`vigil_client`]'s configuration with tail rules on: every trace with an
/// error, or whose root took longer than 5 s, is kept (the bench's traces
/// have neither: they are kept at the sample rate, 1). The exporter holds
/// each trace's spans until its root ends; the application's threads do
/// what they do without rules. Made the global client, as `vigil_client`'s
/// is (a client given through `Client::scope` takes another path to start a
/// span): the previous global client must be shut down first.
pub fn vigil_tail_client() -> vigil::Client {
    let config = vigil_config()
        .keep_errors(true)
        .keep_slower_than(Duration::from_secs(5))
        .build()
        .unwrap();
    vigil::init(config).unwrap()
}

/// [`vigil_client`]'s configuration with a spool directory: what the
/// transport cannot take would go to disk, on the exporter thread (the
/// bench's transport takes everything, so nothing does). Made the global
/// client, as [`vigil_tail_client`]'s is.
pub fn vigil_spool_client() -> vigil::Client {
    let dir = std::env::temp_dir().join(format!("vigil-bench-spool-{}", std::process::id()));
    let config = vigil_config().spool_dir(dir).build().unwrap();
    vigil::init(config).unwrap()
}

fn vigil_config() -> vigil::config::ConfigBuilder {
    Config::builder()
        .transport(vigil::sink::NullTransport::default)
        // Room for the largest criterion sample on two threads (the benches
        // flush between samples): every span measured is a span queued.
        .max_queue_size(QUEUE)
        .batch_size(BATCH)
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

/// Spans fastrace's reporter was handed, its roots (named "trace") left out.
pub struct FastraceCount(pub Arc<AtomicU64>);

impl fastrace::collector::Reporter for FastraceCount {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        let measured = spans.iter().filter(|s| s.name != "trace").count();
        self.0.fetch_add(measured as u64, Relaxed);
    }
}

/// Sets fastrace's reporter to one that keeps count of every span it is
/// handed; the count.
pub fn fastrace_reporter() -> Arc<AtomicU64> {
    let reported = Arc::new(AtomicU64::new(0));
    fastrace::set_reporter(
        FastraceCount(reported.clone()),
        fastrace::collector::Config::default(),
    );
    reported
}

/// Most local spans made under one fastrace root: the thread's buffer of a
/// local parent holds 10,240 spans, and drops the later ones (a dropped span
/// costs less than a kept one).
pub const FASTRACE_SPANS_PER_ROOT: u64 = 10_000;

/// A fastrace local span, child of the thread's local parent (the fast path
/// fastrace recommends). Its properties are strings: the other SDKs' four
/// attributes, written as static text.
pub fn fastrace_span(shape: Shape) {
    let span = fastrace::local::LocalSpan::enter_with_local_parent("step");
    let _span = match shape {
        Shape::Bare => span,
        Shape::FourAttributes => span.with_properties(|| {
            [
                ("user_id", "42"),
                ("model", "gpt-4o"),
                ("temperature", "0.2"),
                ("cached", "true"),
            ]
        }),
        Shape::KibPayloads => span.with_properties(|| {
            [
                ("input.prompt", KIB.to_owned()),
                ("output.content", KIB.to_owned()),
            ]
        }),
    };
    black_box(&_span);
}

/// The model of the "llm call" rows.
pub const MODEL: &str = "gpt-4o";
/// The prompt's and the answer's tokens, as the model would report them.
pub const PROMPT_TOKENS: i64 = 512;
pub const ANSWER_TOKENS: i64 = 256;

/// The prompt of the "llm call" rows: a system and a user message, 1 KiB of
/// text each.
pub static MESSAGES: LazyLock<serde_json::Value> = LazyLock::new(|| {
    serde_json::json!([
        { "role": "system", "content": KIB },
        { "role": "user", "content": KIB },
    ])
});

/// The model's answer: 1 KiB of text, with its usage.
pub static ANSWER: LazyLock<serde_json::Value> = LazyLock::new(|| {
    serde_json::json!({
        "role": "assistant",
        "content": KIB,
        "usage": { "prompt_tokens": PROMPT_TOKENS, "completion_tokens": ANSWER_TOKENS },
    })
});

/// An LLM call that already happened, recorded with `log_llm_call`.
pub fn vigil_log_llm_call() {
    vigil::log_llm_call(MODEL, &*MESSAGES, &*ANSWER);
}

/// An LLM call as an annotated function: the arguments recorded as the
/// span's input, the answer it returns as its output.
#[vigil::span(name = "llm:gpt-4o", kind = "llm", input, output)]
pub fn vigil_llm_span(model: &str, messages: &serde_json::Value) -> &'static serde_json::Value {
    black_box((model, messages));
    &ANSWER
}

/// The same call as an opentelemetry span with the GenAI attributes, the
/// messages serialized to JSON text, as an application does.
pub fn otel_llm_call(
    tracer: &opentelemetry_sdk::trace::SdkTracer,
    parent: &Context,
    messages: &serde_json::Value,
    answer: &serde_json::Value,
) {
    let mut s = tracer.start_with_context("chat gpt-4o", parent);
    s.set_attribute(KeyValue::new("gen_ai.operation.name", "chat"));
    s.set_attribute(KeyValue::new("gen_ai.request.model", MODEL));
    s.set_attribute(KeyValue::new(
        "gen_ai.input.messages",
        serde_json::to_string(messages).unwrap(),
    ));
    s.set_attribute(KeyValue::new(
        "gen_ai.output.messages",
        serde_json::to_string(answer).unwrap(),
    ));
    s.set_attribute(KeyValue::new("gen_ai.usage.input_tokens", PROMPT_TOKENS));
    s.set_attribute(KeyValue::new("gen_ai.usage.output_tokens", ANSWER_TOKENS));
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

/// The process's user + system CPU time, every thread.
pub fn process_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
