//! `cargo bench --manifest-path vigil-bench/Cargo.toml --bench otlp`
//!
//! OTLP/HTTP export of the same spans by Vigil (`vigil-transport-otlp`,
//! protobuf) and by opentelemetry (`opentelemetry-otlp`'s HTTP/protobuf
//! exporter with reqwest's blocking client, behind `opentelemetry_sdk`'s
//! batch span processor), to the same loopback receiver
//! (`vigil_test_server::otlp`, decoding every request, in a child process
//! so that its CPU is not counted), in one run.
//!
//! Each run makes `N` spans on 2 threads, as traces of `S` spans (a root and
//! `S - 1` children with 4 attributes each), then flushes and shuts the SDK
//! down, and checks the receiver holds all `N` (no loss). It reports spans
//! delivered per second (from the first span made to the last one
//! acknowledged) and the CPU of the whole process per delivered span
//! (`getrusage(RUSAGE_SELF)`: every thread, the application's included).
//! Both SDKs batch up to 1,000 spans, hold the whole run in their queues
//! and flush every 500 ms.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::{otel_span, process_cpu, vigil_span, Shape};
use opentelemetry::trace::{TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};

const THREADS: usize = 2;
const BATCH: usize = 1000;

/// The receiver, in a child process: prints its URL, then answers each
/// line on stdin with the number of spans it holds.
struct Receiver {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    url: String,
}

impl Receiver {
    fn start() -> Receiver {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("VIGIL_BENCH_OTLP_RECEIVER", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut url = String::new();
        stdout.read_line(&mut url).unwrap();
        Receiver {
            child,
            stdin,
            stdout,
            url: url.trim().to_owned(),
        }
    }

    fn span_count(&mut self) -> usize {
        writeln!(self.stdin, "count").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().parse().unwrap()
    }

    /// Waits until the receiver holds `n` spans; the time it took.
    fn wait_for(&mut self, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.span_count() < n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() {
    let receiver = vigil_test_server::otlp::OtlpReceiver::start();
    println!("{}", receiver.url());
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
        println!("{}", receiver.span_count());
    }
}

struct Measured {
    spans: usize,
    wall: Duration,
    cpu: Duration,
}

impl Measured {
    fn print(&self, who: &str) {
        println!(
            "  {who:<13} {:>8.0} spans/s delivered, {:>6.2} µs CPU per delivered span ({} spans, wall {:.2?}, process CPU {:.2?})",
            self.spans as f64 / self.wall.as_secs_f64(),
            self.cpu.as_secs_f64() * 1e6 / self.spans as f64,
            self.spans,
            self.wall,
            self.cpu,
        );
    }
}

fn vigil_run(receiver: &mut Receiver, total: usize, per_trace: usize) -> Measured {
    let before = receiver.span_count();
    let otlp = vigil_transport_otlp::OtlpConfig::builder(&receiver.url)
        .service_name("bench")
        .build()
        .unwrap();
    let client = vigil::Client::new(
        vigil::Config::builder()
            .transport(move || vigil_transport_otlp::OtlpTransport::new(&otlp))
            .batch_size(BATCH)
            .max_queue_size(total + THREADS * per_trace)
            .flush_interval_ms(500)
            .build()
            .unwrap(),
    )
    .unwrap();
    let traces = total / per_trace / THREADS;
    let (cpu0, started) = (process_cpu(), Instant::now());
    client.scope(|| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                vigil::spawn(move || {
                    for _ in 0..traces {
                        let _trace = vigil::start_trace("bench-trace");
                        for _ in 1..per_trace {
                            vigil_span(Shape::FourAttributes);
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
    });
    let report = client.shutdown_timeout(Duration::from_secs(300));
    let spans = traces * per_trace * THREADS;
    assert!(receiver.wait_for(before + spans), "Vigil: spans lost");
    let (wall, cpu) = (started.elapsed(), process_cpu() - cpu0);
    assert_eq!(report.stats.dropped(), 0, "{report}");
    assert_eq!(report.stats.spans_delivered as usize, spans, "{report}");
    assert_eq!(
        receiver.span_count(),
        before + spans,
        "Vigil: each span once"
    );
    Measured { spans, wall, cpu }
}

fn otel_run(receiver: &mut Receiver, total: usize, per_trace: usize) -> Measured {
    let before = receiver.span_count();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", receiver.url))
        .build()
        .unwrap();
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(total + THREADS * per_trace)
        .with_max_export_batch_size(BATCH)
        .with_scheduled_delay(Duration::from_millis(500))
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(config)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let traces = total / per_trace / THREADS;
    let (cpu0, started) = (process_cpu(), Instant::now());
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let tracer = provider.tracer("bench");
            scope.spawn(move || {
                for _ in 0..traces {
                    let cx = Context::current_with_span(tracer.start("bench-trace"));
                    for _ in 1..per_trace {
                        otel_span(&tracer, &cx, Shape::FourAttributes);
                    }
                    cx.span().end();
                }
            });
        }
    });
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();
    let spans = traces * per_trace * THREADS;
    assert!(
        receiver.wait_for(before + spans),
        "opentelemetry: spans lost"
    );
    let (wall, cpu) = (started.elapsed(), process_cpu() - cpu0);
    assert_eq!(
        receiver.span_count(),
        before + spans,
        "opentelemetry: each span once"
    );
    Measured { spans, wall, cpu }
}

fn main() {
    if std::env::var_os("VIGIL_BENCH_OTLP_RECEIVER").is_some() {
        serve();
        return;
    }
    // `cargo bench` passes `--bench`; a number sets the spans per run.
    let total: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut receiver = Receiver::start();
    println!(
        "OTLP/HTTP protobuf to one loopback receiver (child process), {total} spans per run, {THREADS} producer threads, 4 attributes per span"
    );
    // For profiling one side: `VIGIL_BENCH_OTLP_ONLY=vigil` (or `opentelemetry`).
    if let Ok(side) = std::env::var("VIGIL_BENCH_OTLP_ONLY") {
        for _ in 0..3 {
            match side.as_str() {
                "vigil" => vigil_run(&mut receiver, total, 100).print("vigil"),
                _ => otel_run(&mut receiver, total, 100).print("opentelemetry"),
            }
        }
        return;
    }
    for per_trace in [10, 100] {
        println!("{per_trace} spans per trace:");
        // Alternated, so that neither side always runs on a warmer machine.
        let v1 = vigil_run(&mut receiver, total, per_trace);
        let o1 = otel_run(&mut receiver, total, per_trace);
        let v2 = vigil_run(&mut receiver, total, per_trace);
        let o2 = otel_run(&mut receiver, total, per_trace);
        for (v, o) in [(&v1, &o1), (&v2, &o2)] {
            v.print("vigil");
            o.print("opentelemetry");
            let per = |m: &Measured| m.cpu.as_secs_f64() / m.spans as f64;
            println!(
                "  CPU per span, Vigil / opentelemetry: {:.2}",
                per(v) / per(o)
            );
        }
    }
}
