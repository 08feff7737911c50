//! The hot path alone, for instruction-level profiling: `n` bare spans
//! inside one trace, with the exporter draining to a null transport.
//!
//! ```sh
//! cargo build --release -p vigil-std --example hot_path
//! valgrind --tool=callgrind --callgrind-out-file=hot.out target/release/examples/hot_path 100000
//! callgrind_annotate --inclusive=yes hot.out | grep -E 'hot_path::bare|encode_ingest'
//! ```
//!
//! Divide by `n` for instructions per span: `hot_path::bare` is the
//! application thread's share, `encode_ingest` the exporter's.

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
    let config = Config::builder()
        .transport(NullTransport::default)
        .max_queue_size(1 << 20)
        .batch_size(1000)
        .build()
        .expect("a valid config");
    let client = vigil_std::init(config).expect("no client yet");
    {
        let _trace = vigil_std::start_trace("bench");
        for _ in 0..n {
            bare();
        }
    }
    println!("{}", client.shutdown());
}
