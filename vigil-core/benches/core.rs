//! `cargo bench -p vigil-core --bench core`: queue push/pop and encoding speed.

use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil_core::encode::{encode_ingest, Envelope};
use vigil_core::queue::{Queue, Slot};
use vigil_core::{IdGenerator, Span, SpanKind, SpanStatus, Timestamp, Trace};

type Record = Span<String>;

fn record(ids: &mut IdGenerator) -> Record {
    let mut s = Span::new(
        ids.trace_id(),
        ids.span_id(),
        None,
        "bench",
        SpanKind::Tool,
        Timestamp::from_unix_nanos(1),
    );
    s.end(Timestamp::from_unix_nanos(2), SpanStatus::Ok);
    s
}

fn queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue");
    g.throughput(Throughput::Elements(1));
    let q: Queue<Record, Box<[Slot<Record>]>> = Queue::with_capacity(1024);
    let mut ids = IdGenerator::from_seed(1);
    let proto = record(&mut ids);
    g.bench_function("push uncontended", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(1000);
                let records: Vec<Record> = (0..n).map(|_| proto.clone()).collect();
                let start = Instant::now();
                for r in records {
                    let _ = q.push(black_box(r));
                }
                timed += start.elapsed();
                while q.pop().is_some() {
                    q.release(1);
                }
                left -= n;
            }
            timed
        })
    });
    g.bench_function("pop+release", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(1000);
                for _ in 0..n {
                    let _ = q.push(proto.clone());
                }
                let start = Instant::now();
                for _ in 0..n {
                    black_box(q.pop());
                    q.release(1);
                }
                timed += start.elapsed();
                left -= n;
            }
            timed
        })
    });
    g.bench_function("push+pop uncontended", |b| {
        b.iter(|| {
            let _ = q.push(black_box(proto.clone()));
            let r = q.pop();
            q.release(1);
            black_box(r)
        })
    });
    // Two producer threads pushing while one consumer drains: time per push.
    g.bench_function("push, 2 producers + consumer", |b| {
        b.iter_custom(|iters| {
            let q: Arc<Queue<Record, Box<[Slot<Record>]>>> =
                Arc::new(Queue::with_capacity(1 << 16));
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let consumer = {
                let (q, stop) = (q.clone(), stop.clone());
                thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        while q.pop().is_some() {
                            q.release(1);
                        }
                        std::hint::spin_loop();
                    }
                })
            };
            let per = iters / 2 + 1;
            let start = Instant::now();
            let producers: Vec<_> = (0..2)
                .map(|_| {
                    let (q, proto) = (q.clone(), proto.clone());
                    thread::spawn(move || {
                        for _ in 0..per {
                            let _ = q.push(proto.clone());
                        }
                    })
                })
                .collect();
            producers.into_iter().for_each(|h| h.join().unwrap());
            let elapsed = start.elapsed();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            consumer.join().unwrap();
            // Both producers ran in parallel: wall time per push across both.
            elapsed.mul_f64(iters as f64 / (2 * per) as f64)
        })
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut ids = IdGenerator::from_seed(2);
    let trace: Trace<String> = Trace::new(
        ids.trace_id(),
        ids.span_id(),
        "bench-trace",
        Timestamp::from_unix_nanos(1),
    );
    let small: Vec<Record> = (0..100)
        .map(|i| {
            let mut s = trace.child(
                ids.span_id(),
                "step",
                SpanKind::Tool,
                Timestamp::from_unix_nanos(10 + i),
            );
            s.end(Timestamp::from_unix_nanos(1_000 + i), SpanStatus::Ok);
            s
        })
        .collect();
    let rich: Vec<Record> = small
        .iter()
        .cloned()
        .map(|mut s| {
            s.set_input(&serde_json::json!({"messages": [{"role": "user", "content": "What is the capital of France?"}], "model": "gpt-4"})).unwrap();
            s.set_output(&serde_json::json!({"content": "Paris.", "usage": {"prompt_tokens": 12, "completion_tokens": 2}})).unwrap();
            s.set_metadata("user_id", "u123").unwrap();
            s
        })
        .collect();
    let mut buf = vec![0u8; 1 << 20];
    let mut g = c.benchmark_group("encode 100-span trace");
    for (name, spans) in [
        ("small spans", &small),
        ("spans with input/output/metadata", &rich),
    ] {
        let len = encode_ingest(spans, &Envelope::default(), &mut buf)
            .unwrap()
            .len;
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("{name} (MB/s)"), |b| {
            b.iter(|| encode_ingest(black_box(spans), &Envelope::default(), &mut buf).unwrap())
        });
        g.throughput(Throughput::Elements(100));
        g.bench_function(format!("{name} (spans/s)"), |b| {
            b.iter(|| encode_ingest(black_box(spans), &Envelope::default(), &mut buf).unwrap())
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = queue, encode }
criterion_main!(benches);
