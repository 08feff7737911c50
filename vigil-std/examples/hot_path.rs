//! The hot path alone, for profiling: `rounds` rounds of `n` bare spans
//! inside a trace, with the exporter draining to a null transport.
//!
//! ```sh
//! cargo build --release -p vigil-std --example hot_path
//! valgrind --tool=callgrind --callgrind-out-file=hot.out target/release/examples/hot_path 100000
//! callgrind_annotate --inclusive=yes hot.out | grep -E 'hot_path::bare|encode_ingest'
//! target/release/examples/hot_path 100000 40   # time per span: first, min, median round
//! target/release/examples/hot_path 4096 400 16384   # the same through a 16,384-span queue
//! target/release/examples/hot_path 100000 40 1048576 2   # on 2 threads at once
//! ```
//!
//! Arguments: spans per round and thread, rounds, `max_queue_size`,
//! threads. `VIGIL_BATCH` sets the batch size (1,000): a batch as large as
//! the queue keeps the exporter asleep until the flush after each round.
//! `VIGIL_SHAPE=four` gives each span the peers bench's four metadata
//! entries, `VIGIL_SHAPE=kib` 1 KiB of input and 1 KiB of output (the
//! function is then `hot_path::four` or `hot_path::kib`).
//!
//! Divide by `n` for instructions per span: `hot_path::bare` is the
//! application thread's share, `encode_ingest` the exporter's. Under
//! valgrind the clock is `Instant` (no invariant TSC is reported), so the
//! application's count includes two `clock_gettime` calls that a real run
//! replaces with TSC reads.

use vigil_std::{sink::NullTransport, Config, SpanKind};

#[inline(never)]
fn bare() {
    let _span = vigil_std::start_span("step", SpanKind::Tool);
}

#[inline(never)]
fn four() {
    let span = vigil_std::start_span("step", SpanKind::Tool);
    span.set_metadata("user_id", &42);
    span.set_metadata("model", "gpt-4o");
    span.set_metadata("temperature", &0.2);
    span.set_metadata("cached", &true);
}

/// 1 KiB of `x` (as in the peers bench), or of `VIGIL_TEXT` repeated
/// (`VIGIL_TEXT='He said "no".\n'` for text with escapes).
static KIB: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let line = std::env::var("VIGIL_TEXT").unwrap_or_else(|_| "x".into());
    line.repeat(1024 / line.len().max(1) + 1)[..1024].to_owned()
});

#[inline(never)]
fn kib() {
    let span = vigil_std::start_span("step", SpanKind::Tool);
    span.set_input(&[("prompt", KIB.as_str())]);
    span.set_output(&[("content", KIB.as_str())]);
}

/// The `i`th command-line argument, or `default`.
fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (n, rounds, queue, threads): (u64, usize, usize, usize) =
        (arg(1, 100_000), arg(2, 1), arg(3, 1 << 20), arg(4, 1));
    let batch = std::env::var("VIGIL_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let span: fn() = match std::env::var("VIGIL_SHAPE").as_deref() {
        Ok("four") => four,
        Ok("kib") => kib,
        _ => bare,
    };
    let config = Config::builder()
        .transport(NullTransport::default)
        .max_queue_size(queue)
        .batch_size(batch)
        .build()
        .expect("a valid config");
    let client = vigil_std::init(config).expect("no client yet");
    // Each round is timed on its own and the queue drained after it; the
    // first pays for mapping the queue's memory and calibrating the clock.
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let barrier = std::sync::Barrier::new(threads);
        let per_thread = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let trace = vigil_std::start_trace("bench");
                        barrier.wait();
                        let started = std::time::Instant::now();
                        for _ in 0..n {
                            span();
                        }
                        let spent = started.elapsed();
                        drop(trace);
                        spent
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .sum::<std::time::Duration>()
                / threads as u32
        });
        times.push(per_thread.as_nanos() as f64 / n as f64);
        client.flush(std::time::Duration::from_secs(60));
    }
    let first = times[0];
    times.sort_by(f64::total_cmp);
    eprintln!(
        "ns per span over {rounds} round(s) of {n} on {threads} thread(s): first {first:.1}, min {:.1}, median {:.1}",
        times[0],
        times[rounds / 2]
    );
    println!("{}", client.shutdown());
}
