//! While the server is away and the queue is full, the exporter waits for
//! its retry time without spinning: spans refused meanwhile do not wake it
//! (before, each one did, and it took a whole core). Linux only: it reads
//! the exporter thread's CPU time from `/proc`. Its own binary, so that one
//! exporter thread is running.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use vigil_std::{
    transport::{Outcome, Request, RetryReason},
    Client, Config, SpanKind, Transport,
};

struct Unreachable;

impl Transport for Unreachable {
    fn send(&mut self, _: &Request<'_>) -> Outcome {
        Outcome::Retry {
            after: None,
            reason: RetryReason::Unreachable,
        }
    }
}

/// User + system time of the thread named `vigil-exporter`, in clock ticks.
fn exporter_ticks() -> u64 {
    let tasks = std::fs::read_dir("/proc/self/task").expect("procfs");
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "vigil-exporter" {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap()
                .split_whitespace()
                .collect();
            // Fields 14 and 15 of stat(5), counted after the command name.
            return fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        }
    }
    panic!("no exporter thread");
}

#[test]
fn a_full_queue_during_an_outage_does_not_keep_the_exporter_busy() {
    let client = Client::new(
        Config::builder()
            .transport(|| Unreachable)
            .max_queue_size(100)
            .build()
            .unwrap(),
    )
    .unwrap();
    client.scope(|| {
        // Fill the queue and let the exporter take a batch and back off.
        for _ in 0..200 {
            vigil_std::span("s", SpanKind::Tool, |_| ());
        }
        std::thread::sleep(Duration::from_millis(200));
        let before = exporter_ticks();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) {
            vigil_std::span("refused", SpanKind::Tool, |_| ());
        }
        let used = exporter_ticks() - before;
        // A waiting exporter uses none of the second's 100 ticks; the one
        // that was woken by every refused span used a third of them in a
        // debug build, all of them in a release build.
        assert!(used < 10, "the exporter used {used} ticks of 100");
    });
    assert!(client.stats().dropped_queue_full > 0);
    let _ = client.shutdown_timeout(Duration::from_millis(100));
}
