//! `cargo bench --bench stall`: what the application feels while the Vigil
//! server stalls for 10 s (accepts connections and never answers).
//!
//! One application thread makes 10 spans (a trace and 9 children) every
//! millisecond, before, during and after the stall, with the default config
//! (`max_queue_size` 10,000, `batch_size` 100, `timeout_seconds` 10). Printed:
//! span-end latency per phase, this process's resident memory every 500 ms
//! (the server runs in a child process), and the delivery report, checked:
//! every span made is delivered or counted as dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil::{Client, Config, SpanKind};

mod support;
use support::{memory_kib, RemoteServer};

const SPANS_PER_TICK: usize = 10;
const TICK: Duration = Duration::from_millis(1);
const BEFORE: Duration = Duration::from_secs(2);
const STALL: Duration = Duration::from_secs(10);
const AFTER: Duration = Duration::from_secs(2);

/// Makes spans at a steady pace for `length`, recording how long each span's
/// end (the guard's drop) took, in nanoseconds.
fn produce(length: Duration, ends: &mut Vec<u32>) -> u64 {
    let started = Instant::now();
    let mut next = started;
    let mut made = 0;
    while started.elapsed() < length {
        let root = vigil::start_trace("agent-run");
        for step in 1..SPANS_PER_TICK {
            let span = vigil::start_span("tool-call", SpanKind::Tool);
            span.set_metadata("step", &step);
            let at = Instant::now();
            drop(span);
            ends.push(at.elapsed().as_nanos().min(u32::MAX as u128) as u32);
        }
        let at = Instant::now();
        drop(root);
        ends.push(at.elapsed().as_nanos().min(u32::MAX as u128) as u32);
        made += SPANS_PER_TICK as u64;
        next += TICK;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    made
}

fn percentiles(ends: &mut [u32]) -> String {
    ends.sort_unstable();
    let at = |q: f64| ends[((ends.len() - 1) as f64 * q) as usize];
    format!(
        "p50 {:>6} ns  p99 {:>6} ns  p99.9 {:>7} ns  max {:>8} ns",
        at(0.5),
        at(0.99),
        at(0.999),
        ends[ends.len() - 1]
    )
}

fn main() {
    support::serve_if_child();
    let mut server = RemoteServer::start();
    let client = Client::new(
        Config::builder()
            .endpoint(server.url())
            .api_key(server.api_key())
            .build()
            .unwrap(),
    )
    .unwrap();
    let config = "max_queue_size 10000, batch_size 100, timeout_seconds 10";
    println!(
        "server stall: {} spans/s from 1 thread ({config}); server stalls {STALL:?}",
        SPANS_PER_TICK as u128 * 1000 / TICK.as_millis()
    );

    // Room for every figure up front, its pages touched, so that recording
    // the figures moves no memory.
    let room = |d: Duration| {
        let mut v = vec![1u32; d.as_millis() as usize * SPANS_PER_TICK * 11 / 10];
        std::hint::black_box(&mut v).clear();
        v
    };
    let mut phases = [
        ("before", room(BEFORE)),
        ("stall", room(STALL)),
        ("after", room(AFTER)),
    ];
    let samples = Arc::new(Mutex::new(Vec::with_capacity(1000)));
    let sampling = Arc::new(AtomicBool::new(true));
    let origin = Instant::now();
    let sampler = {
        let (samples, sampling) = (samples.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let (rss, _) = memory_kib();
                samples.lock().unwrap().push((origin.elapsed(), rss));
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };

    let mut made = 0;
    let mut stall_window = (Duration::ZERO, Duration::ZERO);
    client.scope(|| {
        made += produce(BEFORE, &mut phases[0].1);
        server.stall();
        stall_window.0 = origin.elapsed();
        made += produce(STALL, &mut phases[1].1);
        server.resume();
        stall_window.1 = origin.elapsed();
        made += produce(AFTER, &mut phases[2].1);
    });
    let report = client.shutdown_timeout(Duration::from_secs(60));
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();

    println!("span end (guard drop, including one clock read):");
    for (name, ends) in &mut phases {
        println!("  {name:<7} {:>7} spans  {}", ends.len(), percentiles(ends));
    }
    let samples = samples.lock().unwrap();
    let timeline: Vec<String> = samples
        .iter()
        .map(|(at, rss)| format!("{:.1}s {:.1}", at.as_secs_f64(), *rss as f64 / 1024.0))
        .collect();
    println!(
        "resident memory (MiB), stall from {:.1}s to {:.1}s:",
        stall_window.0.as_secs_f64(),
        stall_window.1.as_secs_f64()
    );
    for row in timeline.chunks(8) {
        println!("  {}", row.join("  "));
    }
    // After the first second of the stall the queue is full: from then on,
    // memory must not grow.
    let settled = stall_window.0 + Duration::from_secs(1);
    let stalled: Vec<u64> = samples
        .iter()
        .filter(|(at, _)| *at >= settled && *at <= stall_window.1)
        .map(|&(_, rss)| rss)
        .collect();
    let (low, high) = (stalled.iter().min().unwrap(), stalled.iter().max().unwrap());
    println!(
        "during the stall, from its 2nd second on: RSS {:.1}..{:.1} MiB (spread {} KiB); peak RSS of the run {:.1} MiB",
        *low as f64 / 1024.0,
        *high as f64 / 1024.0,
        high - low,
        memory_kib().1 as f64 / 1024.0
    );
    let stats = report.stats;
    println!("{report}");
    let stored = server.span_count();
    println!(
        "made {made} spans: delivered {}, dropped {} (queue full {}), stored by the server {stored}",
        stats.spans_delivered,
        stats.dropped(),
        stats.dropped_queue_full
    );
    assert_eq!(stats.spans_ended, made);
    assert_eq!(
        stats.spans_delivered + stats.dropped(),
        made,
        "every span accounted for"
    );
    assert_eq!(
        stored, stats.spans_delivered,
        "the server stored what was delivered"
    );
}
