//! `cargo bench --bench delivery`: spans per second delivered over loopback
//! HTTP to the local Vigil server, with zero loss, and requests per 1,000
//! spans, at batch sizes 100 and 1,000, for short and long traces, and the
//! application's peak resident memory (the server runs in a child process).
//! The queue holds a whole run (`max_queue_size` = spans per run), since the
//! producers are not throttled and zero loss is the point. Bare spans, and
//! spans with 1 KiB of input and 1 KiB of output; for each run, the CPU of
//! the whole process (application threads, exporter, encoding and HTTP) per
//! delivered span.

use std::time::{Duration, Instant};

use vigil::{Client, Config, SpanKind};

mod support;
use support::{memory_kib, process_cpu, thread_cpu, RemoteServer};

/// 1 KiB of text, for the payload shape.
const KIB: &str = include_str!("../vigil-bench/benches/kib.txt");

fn run(batch_size: usize, spans_per_trace: usize, total_spans: usize, threads: usize, kib: bool) {
    let mut server = RemoteServer::start();
    let client = Client::new(
        Config::builder()
            .endpoint(server.url())
            .api_key(server.api_key())
            .batch_size(batch_size)
            .max_queue_size(total_spans + threads * spans_per_trace)
            .build()
            .unwrap(),
    )
    .unwrap();
    let traces_per_thread = total_spans / spans_per_trace / threads;
    let cpu_before = process_cpu();
    let started = Instant::now();
    client.scope(|| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                vigil::spawn(move || {
                    for _ in 0..traces_per_thread {
                        let _trace = vigil::start_trace("bench-trace");
                        for _ in 1..spans_per_trace {
                            let s = vigil::start_span("step", SpanKind::Tool);
                            if kib {
                                s.set_input(&[("prompt", KIB)]);
                                s.set_output(&[("content", KIB)]);
                            }
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
    });
    let made = started.elapsed();
    assert!(client.flush(Duration::from_secs(300)), "flush timed out");
    let elapsed = started.elapsed();
    let (exporter_cpu, server_cpu) = (thread_cpu("vigil-exporter"), server.cpu());
    let process = process_cpu() - cpu_before;
    let report = client.shutdown();
    let spans = report.stats.spans_ended;
    assert_eq!(report.stats.dropped(), 0, "{report}");
    assert_eq!(server.span_count(), spans, "zero loss");
    let (_, peak) = memory_kib();
    let shape = if kib { "1 KiB in + out" } else { "bare" };
    println!(
        "{shape:<14} batch {batch_size:>5}, {spans_per_trace:>3} spans/trace: {:>9.0} spans/s delivered ({spans} spans in {elapsed:.2?}, made in {made:.2?}); {:>6.1} requests per 1,000 spans ({} requests, {:.1} KiB/request); peak RSS so far {:.1} MiB",
        spans as f64 / elapsed.as_secs_f64(),
        report.stats.requests as f64 * 1000.0 / spans as f64,
        report.stats.requests,
        report.stats.bytes_sent as f64 / report.stats.requests as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
    // What bounds the rate: the exporter's CPU per span says how many spans
    // one core could ship; the server shares the same two cores.
    println!(
        "    CPU: whole process {process:.2?} ({:.2} µs per delivered span), exporter thread {exporter_cpu:.2?} ({:.2} µs/span, so {:.0} spans/s per core), server process {server_cpu:.2?} ({:.2} µs/span), wall {elapsed:.2?}",
        process.as_secs_f64() * 1e6 / spans as f64,
        exporter_cpu.as_secs_f64() * 1e6 / spans as f64,
        spans as f64 / exporter_cpu.as_secs_f64().max(1e-9),
        server_cpu.as_secs_f64() * 1e6 / spans as f64,
    );
}

fn main() {
    support::serve_if_child();
    // `cargo bench` passes `--bench`; a number sets the spans per run, and
    // `bare`, `kib`, `short` (4 spans a trace) or `long` (100) pick runs.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let total: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(200_000);
    let picked = |word: &str, other: &str| {
        let has = |w: &str| args.iter().any(|a| a == w);
        has(word) || !has(other)
    };
    println!("delivery over loopback HTTP to the local Vigil server ({total} spans per run, 2 producer threads)");
    for kib in [false, true] {
        if !picked(
            if kib { "kib" } else { "bare" },
            if kib { "bare" } else { "kib" },
        ) {
            continue;
        }
        for spans_per_trace in [4, 100] {
            let (word, other) = if spans_per_trace == 4 {
                ("short", "long")
            } else {
                ("long", "short")
            };
            if !picked(word, other) {
                continue;
            }
            for batch in [100, 1000] {
                run(batch, spans_per_trace, total, 2, kib);
            }
        }
    }
}
