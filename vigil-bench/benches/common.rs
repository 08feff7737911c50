//! The three contenders, set up the same way: a trace (or parent span) open,
//! and a child span started and ended per iteration.
#![allow(dead_code)]

use std::hint::black_box;

use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use vigil::{Config, SpanKind};

pub const KIB: &str = include_str!("kib.txt");

pub fn vigil_client() -> vigil::Client {
    let config = Config::builder()
        .transport(vigil::sink::NullTransport::default)
        // Room for the largest criterion sample on two threads (the benches
        // flush between samples): every span measured is a span queued.
        .max_queue_size(1 << 21)
        .batch_size(1000)
        .build()
        .unwrap();
    vigil::init(config).unwrap()
}

pub struct Otel {
    pub provider: SdkTracerProvider,
    pub tracer: opentelemetry_sdk::trace::SdkTracer,
    pub exporter: InMemorySpanExporter,
}

pub fn otel() -> Otel {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("bench");
    Otel { provider, tracer, exporter }
}

/// Which span shape to make.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    Bare,
    FourAttributes,
    KibPayloads,
}

pub fn vigil_span(shape: Shape) {
    let s = vigil::start_span(black_box("step"), SpanKind::Tool);
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
    let mut s = tracer.start_with_context(black_box("step"), parent);
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
        Shape::FourAttributes => tracing::info_span!("step", user_id = 42, model = "gpt-4o", temperature = 0.2, cached = true),
        Shape::KibPayloads => tracing::info_span!("step", prompt = KIB, content = KIB),
    };
    let _entered = span.enter();
    black_box(&_entered);
}
