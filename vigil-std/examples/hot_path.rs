//! The hot path alone, for profiling: `rounds` rounds of `n` bare spans
//! inside a trace, with the exporter draining to a null transport.
//!
//! ```sh
//! cargo build --release -p vigil-std --example hot_path
//! valgrind --tool=callgrind --callgrind-out-file=hot.out target/release/examples/hot_path 100000
//! callgrind_annotate --inclusive=yes hot.out | grep -E 'hot_path::bare|encode_ingest'
//! target/release/examples/hot_path 100000 40   # time per span: first, min, median round
//! target/release/examples/hot_path 4096 400 16384   # the same through a 16,384-span queue
//! ```
//!
//! Divide by `n` for instructions per span: `hot_path::bare` is the
//! application thread's share, `encode_ingest` the exporter's. Under
//! valgrind the clock is `Instant` (no invariant TSC is reported), so the
//! application's count includes two `clock_gettime` calls that a real run
//! replaces with TSC reads.

use std::hint::black_box;

use vigil_std::{sink::NullTransport, Config, SpanKind};

#[inline(never)]
fn bare() {
    let _span = vigil_std::start_span(black_box("step"), SpanKind::Tool);
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let queue: usize = std::env::args()
        .nth(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 20);
    let config = Config::builder()
        .transport(NullTransport::default)
        .max_queue_size(queue)
        .batch_size(1000)
        .build()
        .expect("a valid config");
    let client = vigil_std::init(config).expect("no client yet");
    // Each round is timed on its own and the queue drained after it; the
    // first pays for mapping the queue's memory and calibrating the clock.
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let trace = vigil_std::start_trace("bench");
        let started = std::time::Instant::now();
        for _ in 0..n {
            bare();
        }
        times.push(started.elapsed().as_nanos() as f64 / n as f64);
        drop(trace);
        client.flush(std::time::Duration::from_secs(60));
    }
    let first = times[0];
    times.sort_by(f64::total_cmp);
    eprintln!(
        "ns per span over {rounds} round(s) of {n}: first {first:.1}, min {:.1}, median {:.1}",
        times[0],
        times[rounds / 2]
    );
    println!("{}", client.shutdown());
}
