//! `cargo bench -p vigil-std --bench overhead`: what a span costs the
//! application thread (start + end + queue push), inside a trace.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use vigil_std::sink::NullTransport;
use vigil_std::{Config, SpanKind};

fn client() -> vigil_std::Client {
    let config = Config::builder()
        .transport(NullTransport::default)
        .max_queue_size(1 << 21)
        .batch_size(1000)
        .build()
        .unwrap();
    vigil_std::init(config).unwrap()
}

/// Runs `per_span` `iters` times on each of `threads` threads inside a
/// trace; returns the wall time per span per thread.
fn run(threads: usize, iters: u64, per_span: fn()) -> Duration {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let _trace = vigil_std::start_trace("bench");
                per_span(); // warm the thread's span stack
                barrier.wait();
                let start = Instant::now();
                for _ in 0..iters {
                    per_span();
                }
                start.elapsed()
            })
        })
        .collect();
    barrier.wait();
    let total: Duration = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total / threads as u32
}

fn bare() {
    let _s = vigil_std::start_span("step", SpanKind::Tool);
}

#[vigil_std::span(name = "step", kind = "tool")]
fn macro_span() {
    black_box(());
}

fn one_attribute() {
    let s = vigil_std::start_span("step", SpanKind::Tool);
    s.set_metadata("user_id", &black_box(42));
}

fn payload_1k() {
    thread_local! {
        static TEXT: String = "x".repeat(1000);
    }
    TEXT.with(|text| {
        let s = vigil_std::start_span("llm", SpanKind::Llm);
        s.set_input(&json!({ "prompt": text }));
        s.set_output(&json!({ "content": text }));
    });
}

fn payload_1k_str() {
    thread_local! {
        static TEXT: String = "x".repeat(1000);
    }
    TEXT.with(|text| {
        let s = vigil_std::start_span("llm", SpanKind::Llm);
        s.set_input(&[("prompt", text.as_str())]);
        s.set_output(&[("content", text.as_str())]);
    });
}

fn overhead(c: &mut Criterion) {
    let client = client();
    let mut g = c.benchmark_group("span start+end in a trace");
    let cases: [(&str, fn()); 5] = [
        ("bare (static name)", bare),
        ("bare, #[span] macro", macro_span),
        ("1 small attribute", one_attribute),
        ("1 KiB input + 1 KiB output (serde_json::Value)", payload_1k),
        ("1 KiB input + 1 KiB output (borrowed)", payload_1k_str),
    ];
    for threads in [1, 2] {
        for (name, f) in cases {
            g.bench_function(format!("{name}, {threads} thread(s)"), |b| {
                b.iter_custom(|iters| {
                    let t = run(threads, iters, f);
                    // Keep the queue from filling: let the exporter drain.
                    vigil_std::flush(Duration::from_secs(10));
                    t
                })
            });
        }
    }
    g.finish();
    let report = client.shutdown();
    // A dropped span costs less than a queued one: say so if any was.
    println!("vigil: {report}");
    if report.stats.dropped() > 0 {
        println!("WARNING: spans were dropped; the figures above are not all queued spans");
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = overhead }
criterion_main!(benches);
