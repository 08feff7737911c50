//! `cargo bench --manifest-path vigil-bench/Cargo.toml --bench peers`
//!
//! The application-thread cost of one span (start + end, inside a trace) for
//! Vigil (guard API and `#[span]`), `opentelemetry_sdk` (batch span processor,
//! in-memory exporter) and `tracing` with no subscriber (the cost of a span
//! that records nothing), on 1 and 2 threads, in the same run. For the bare
//! span, a `floor` row times what any span that records its times must do:
//! two clock reads and one record written to a ring; a `clock` row, the two
//! reads alone.
//!
//! The "vigil guard, tail rules" row makes the guard's spans for a client
//! with tail rules on (`keep_errors`, `keep_slower_than`): the exporter holds
//! each trace until its root ends, and the application's thread should not
//! notice. The "fastrace" row (bare and four-attribute spans) makes fastrace
//! local spans under a root, collected by a reporter that counts them.
//!
//! The "llm call, 1 thread" group times one recorded LLM call (a 2 KiB
//! prompt of two messages, a 1 KiB answer with its token counts):
//! `vigil::log_llm_call`, a `#[vigil::span(input, output)]` function, and an
//! opentelemetry span with the GenAI attributes, the messages serialized to
//! JSON text in the loop.
//!
//! The "tracing span, 2 fields" group times one `tracing` span (two fields,
//! entered and dropped, inside an outer span, one thread) through three
//! subscribers: `tracing_subscriber`'s registry alone (the floor), the
//! registry with `vigil_tracing::layer()`, and the registry with
//! `tracing_opentelemetry`'s layer over the same opentelemetry_sdk pipeline
//! as the rows above.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier, LazyLock};
use std::time::{Duration, Instant};

use common::*;
use criterion::{criterion_group, Criterion};

/// Most spans a thread makes between two drains: both SDKs' queues
/// (`QUEUE`) hold what two threads make, so a long criterion sample never
/// overflows them, and a dropped span, cheaper than a queued one, is never
/// timed.
const CHUNK: u64 = (QUEUE / 4) as u64;

/// Runs `f` `iters` times on each of `threads` threads, in chunks of at most
/// `CHUNK` calls with `drain` run between them, untimed; mean time per
/// thread spent in `f`.
fn on_threads(
    threads: usize,
    iters: u64,
    f: Arc<dyn Fn(u64) + Send + Sync>,
    drain: impl Fn(),
) -> Duration {
    let chunks = iters.div_ceil(CHUNK).max(1);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (barrier, f) = (barrier.clone(), f.clone());
            std::thread::spawn(move || {
                let mut spent = Duration::ZERO;
                for chunk in 0..chunks {
                    let n = CHUNK.min(iters - chunk * CHUNK);
                    barrier.wait();
                    let start = Instant::now();
                    f(n);
                    spent += start.elapsed();
                    barrier.wait();
                }
                spent
            })
        })
        .collect();
    for _ in 0..chunks {
        barrier.wait();
        barrier.wait();
        drain();
    }
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum::<Duration>()
        / threads as u32
}

/// Spans of a trace in the Vigil rows: traces of an agent's size, whose
/// end lets tail sampling decide them (a new root costs one span in 1,000).
const TRACE_SPANS: u64 = 1000;

/// `span` `iters` times per thread, inside traces of [`TRACE_SPANS`].
fn vigil_run(
    threads: usize,
    iters: u64,
    span: impl Fn() + Copy + Send + Sync + 'static,
) -> Duration {
    on_threads(
        threads,
        iters,
        Arc::new(move |n| {
            let mut left = n;
            while left > 0 {
                let _trace = vigil::start_trace("trace");
                let spans = left.min(TRACE_SPANS);
                for _ in 0..spans {
                    span();
                }
                left -= spans;
            }
        }),
        || {
            vigil::flush(Duration::from_secs(30));
        },
    )
}

/// What Vigil's clients did, summed over the clients of the run (the bench
/// makes one for each tail-rules row, and a plain one again after it).
#[derive(Default)]
struct Tally {
    clients: u64,
    queued: u64,
    delivered: u64,
    dropped: u64,
    sampled_out: u64,
    kept_by_rate: u64,
    decided_early: u64,
    incomplete: u64,
}

impl Tally {
    fn add(&mut self, report: &vigil::ShutdownReport) {
        let s = &report.stats;
        self.clients += 1;
        self.queued += s.spans_queued;
        self.delivered += s.spans_delivered;
        self.dropped += s.dropped();
        self.sampled_out += s.spans_sampled_out;
        self.kept_by_rate += s.traces_kept_by_rate;
        self.decided_early += s.traces_decided_early;
        self.incomplete += u64::from(!report.completed);
    }

    /// Prints the sums, and a warning if a span was not delivered: a dropped
    /// span costs less than a queued one.
    fn print(&self, what: &str) {
        println!(
            "{what}: {} clients, {} spans queued, {} delivered, {} dropped, {} sampled out; tail sampling kept {} traces at the sample rate, decided {} early; {} shutdowns not completed",
            self.clients,
            self.queued,
            self.delivered,
            self.dropped,
            self.sampled_out,
            self.kept_by_rate,
            self.decided_early,
            self.incomplete
        );
        if self.dropped > 0 || self.sampled_out > 0 || self.delivered != self.queued {
            println!("WARNING: {what} did not deliver every span; its figures above are not all delivered spans");
        }
    }
}

/// `FASTRACE_SPANS_PER_ROOT`-span runs of `fastrace_span(shape)`, each under
/// a root made the thread's local parent, `n` spans in all.
fn fastrace_spans(n: u64, shape: Shape) {
    let mut left = n;
    while left > 0 {
        let k = left.min(FASTRACE_SPANS_PER_ROOT);
        let root = fastrace::Span::root("trace", fastrace::collector::SpanContext::random());
        let _parent = root.set_local_parent();
        for _ in 0..k {
            fastrace_span(shape);
        }
        left -= k;
    }
}

/// `tracing_two_fields` `iters` times on one thread through `dispatch`, inside
/// an outer `tracing` span per chunk.
fn tracing_run(dispatch: &tracing::Dispatch, iters: u64, drain: impl Fn()) -> Duration {
    let dispatch = dispatch.clone();
    on_threads(
        1,
        iters,
        Arc::new(move |n| {
            tracing::dispatcher::with_default(&dispatch, || {
                let outer = tracing::info_span!("trace");
                let _outer = outer.enter();
                for _ in 0..n {
                    tracing_two_fields();
                }
            })
        }),
        drain,
    )
}

fn peers(c: &mut Criterion) {
    let mut vigil = vigil_client();
    // The clients shut down: the plain ones, and those with tail rules.
    let (mut plain, mut tail, mut spooled) = (Tally::default(), Tally::default(), Tally::default());
    let otel = Arc::new(otel());
    // Spans opentelemetry was asked to make, and those it exported.
    let (otel_made, otel_exported) = (AtomicU64::new(0), AtomicU64::new(0));
    // Flushes the batch processor and counts the measured spans it exported
    // (not the chunks' parents).
    let otel_drain = || {
        let _ = otel.provider.force_flush();
        let exported = otel
            .exporter
            .get_finished_spans()
            .map_or(0, |s| s.iter().filter(|s| s.name != "trace").count());
        otel.exporter.reset();
        otel_exported.fetch_add(exported as u64, Relaxed);
    };
    // Spans fastrace was asked to make, and those its reporter was handed.
    let fastrace_made = AtomicU64::new(0);
    let fastrace_reported = fastrace_reporter();
    for threads in [1usize, 2] {
        for shape in [Shape::Bare, Shape::FourAttributes, Shape::KibPayloads] {
            let mut g = c.benchmark_group(format!("{shape:?} span, {threads} thread(s)"));
            g.bench_function("vigil guard", |b| {
                b.iter_custom(|iters| vigil_run(threads, iters, move || vigil_span(shape)))
            });
            if matches!(shape, Shape::Bare) {
                g.bench_function("vigil #[span]", |b| {
                    b.iter_custom(|iters| vigil_run(threads, iters, vigil_macro_span))
                });
            }
            // The same spans, to a client with tail rules made the global
            // client for this row; then a plain one again.
            plain.add(&vigil.shutdown());
            let tail_client = vigil_tail_client();
            g.bench_function(TAIL_RULES, |b| {
                b.iter_custom(|iters| vigil_run(threads, iters, move || vigil_span(shape)))
            });
            tail.add(&tail_client.shutdown());
            // And to a client with a spool directory.
            let spool_client = vigil_spool_client();
            g.bench_function(SPOOL, |b| {
                b.iter_custom(|iters| vigil_run(threads, iters, move || vigil_span(shape)))
            });
            spooled.add(&spool_client.shutdown());
            vigil = vigil_client();
            if !matches!(shape, Shape::KibPayloads) {
                g.bench_function("fastrace", |b| {
                    b.iter_custom(|iters| {
                        fastrace_made.fetch_add(iters * threads as u64, Relaxed);
                        on_threads(
                            threads,
                            iters,
                            Arc::new(move |n| fastrace_spans(n, shape)),
                            fastrace::flush,
                        )
                    })
                });
            }
            let o = otel.clone();
            g.bench_function("opentelemetry_sdk", |b| {
                b.iter_custom(|iters| {
                    otel_made.fetch_add(iters * threads as u64, Relaxed);
                    let o2 = o.clone();
                    on_threads(
                        threads,
                        iters,
                        Arc::new(move |n| {
                            let parent = otel_parent(&o2.tracer);
                            for _ in 0..n {
                                otel_span(&o2.tracer, &parent, shape);
                            }
                        }),
                        otel_drain,
                    )
                })
            });
            if matches!(shape, Shape::Bare) {
                g.bench_function("floor (2 clock reads + 128 B to a ring)", |b| {
                    b.iter_custom(|iters| {
                        on_threads(
                            threads,
                            iters,
                            Arc::new(move |n| {
                                let mut floor = Floor::default();
                                for _ in 0..n {
                                    floor.span("step");
                                }
                            }),
                            || {},
                        )
                    })
                });
            }
            if matches!(shape, Shape::Bare) {
                g.bench_function("clock (the floor's 2 reads alone)", |b| {
                    b.iter_custom(|iters| {
                        on_threads(
                            threads,
                            iters,
                            Arc::new(move |n| {
                                for _ in 0..n {
                                    black_box(clock_pair());
                                }
                            }),
                            || {},
                        )
                    })
                });
            }
            g.bench_function("tracing (no subscriber)", |b| {
                b.iter_custom(|iters| {
                    on_threads(
                        threads,
                        iters,
                        Arc::new(move |n| {
                            for _ in 0..n {
                                tracing_span(shape);
                            }
                        }),
                        || {},
                    )
                })
            });
            g.finish();
        }
    }
    {
        let mut g = c.benchmark_group(LLM_GROUP);
        LazyLock::force(&MESSAGES);
        LazyLock::force(&ANSWER);
        g.bench_function(LOG_LLM_CALL, |b| {
            b.iter_custom(|iters| vigil_run(1, iters, vigil_log_llm_call))
        });
        g.bench_function(LLM_SPAN, |b| {
            b.iter_custom(|iters| {
                vigil_run(1, iters, || {
                    black_box(vigil_llm_span(MODEL, &MESSAGES));
                })
            })
        });
        let o = otel.clone();
        g.bench_function("opentelemetry_sdk", |b| {
            b.iter_custom(|iters| {
                otel_made.fetch_add(iters, Relaxed);
                let o2 = o.clone();
                on_threads(
                    1,
                    iters,
                    Arc::new(move |n| {
                        let parent = otel_parent(&o2.tracer);
                        for _ in 0..n {
                            otel_llm_call(&o2.tracer, &parent, &MESSAGES, &ANSWER);
                        }
                    }),
                    otel_drain,
                )
            })
        });
        g.finish();
    }
    // After the groups above: once a `Dispatch` with a subscriber exists,
    // `tracing`'s global level filter and callsite interests let every span
    // through to the dispatcher, which would slow their no-subscriber rows.
    let vigil_layer_made = AtomicU64::new(0);
    let vigil_layer_queued = {
        let mut g = c.benchmark_group(TRACING_GROUP);
        let registry = registry_dispatch();
        g.bench_function(REGISTRY, |b| {
            b.iter_custom(|iters| tracing_run(&registry, iters, || {}))
        });
        let layered = vigil_layer_dispatch();
        let queued_before = vigil.stats().spans_queued;
        g.bench_function(VIGIL_LAYER, |b| {
            b.iter_custom(|iters| {
                // The measured spans and the chunks' parents.
                let parents = iters.div_ceil(CHUNK).max(1);
                vigil_layer_made.fetch_add(iters + parents, Relaxed);
                tracing_run(&layered, iters, || {
                    vigil::flush(Duration::from_secs(30));
                })
            })
        });
        let queued = vigil.stats().spans_queued - queued_before;
        let otel_layered = otel_layer_dispatch(otel.tracer.clone());
        g.bench_function(OTEL_LAYER, |b| {
            b.iter_custom(|iters| {
                otel_made.fetch_add(iters, Relaxed);
                tracing_run(&otel_layered, iters, otel_drain)
            })
        });
        g.finish();
        queued
    };
    let report = vigil.shutdown();
    // A dropped span costs less than a queued one: say so if any was.
    println!("vigil, last client: {report}");
    plain.add(&report);
    plain.print("vigil");
    tail.print("vigil, tail rules");
    spooled.print("vigil, spool");
    // The layer records nothing when no client takes its spans: count them.
    let made = vigil_layer_made.load(Relaxed);
    println!(
        "vigil layer: {made} spans made, {vigil_layer_queued} queued, {} not kept",
        made.saturating_sub(vigil_layer_queued)
    );
    if vigil_layer_queued != made {
        println!("WARNING: the vigil layer's figures above are not all queued spans");
    }
    let lost = otel_made.load(Relaxed) - otel_exported.load(Relaxed);
    println!("opentelemetry_sdk: {lost} spans not exported");
    if lost > 0 {
        println!(
            "WARNING: opentelemetry_sdk dropped spans; its figures above are not all queued spans"
        );
    }
    let _ = otel.provider.shutdown();
    fastrace::flush();
    let (made, reported) = (fastrace_made.load(Relaxed), fastrace_reported.load(Relaxed));
    println!("fastrace: {made} spans made, {reported} reported");
    if reported != made {
        println!("WARNING: fastrace did not report every span; its figures above are not all reported spans");
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

const TAIL_RULES: &str = "vigil guard, tail rules";
const SPOOL: &str = "vigil guard, spool";
const LLM_GROUP: &str = "llm call, 1 thread";
const LOG_LLM_CALL: &str = "vigil log_llm_call";
const LLM_SPAN: &str = "vigil #[span(input, output)]";
const TRACING_GROUP: &str = "tracing span, 2 fields";
const REGISTRY: &str = "registry (floor)";
const VIGIL_LAYER: &str = "registry + vigil layer";
const OTEL_LAYER: &str = "registry + tracing-opentelemetry";

criterion_group! { name = benches; config = config(); targets = peers }

fn main() {
    let started = std::time::SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios(started);
}

/// Vigil's time over opentelemetry_sdk's and fastrace's for each group
/// measured in this run, and the guard's with tail rules over without, from
/// criterion's estimates (the figure it prints: the slope, else the mean).
fn print_ratios(since: std::time::SystemTime) {
    let home = std::env::var_os("CRITERION_HOME").map_or_else(
        || {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
                Into::into,
            );
            target.join("criterion")
        },
        Into::into,
    );
    let estimate = |group: &str, contender: &str| -> Option<f64> {
        let path = home.join(group).join(contender).join("new/estimates.json");
        let fresh = std::fs::metadata(&path).ok()?.modified().ok()? >= since;
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        let typical = |key: &str| json[key]["point_estimate"].as_f64();
        fresh.then(|| typical("slope").or_else(|| typical("mean")))?
    };
    // `contender`'s time over `base`'s in `group`, or "-".
    let ratio = |group: &str, contender: &str, base: &str| {
        estimate(group, contender)
            .zip(estimate(group, base))
            .map_or("-".to_owned(), |(v, base)| format!("{:.3}", v / base))
    };
    let groups = || {
        [1, 2].into_iter().flat_map(|threads| {
            [Shape::Bare, Shape::FourAttributes, Shape::KibPayloads]
                .map(move |shape| (shape, format!("{shape:?} span, {threads} thread(s)")))
        })
    };
    println!("Vigil / opentelemetry_sdk, this run:");
    for (_, group) in groups() {
        if estimate(&group, "opentelemetry_sdk").is_none() {
            continue;
        }
        println!(
            "  {group:<34} guard {:>6}   #[span] {:>6}   guard, tail rules {:>6}",
            ratio(&group, "vigil guard", "opentelemetry_sdk"),
            ratio(&group, "vigil #[span]", "opentelemetry_sdk"),
            ratio(&group, TAIL_RULES, "opentelemetry_sdk"),
        );
    }
    println!("Vigil / fastrace, this run:");
    for (shape, group) in groups() {
        if matches!(shape, Shape::KibPayloads) || estimate(&group, "fastrace").is_none() {
            continue;
        }
        println!(
            "  {group:<34} guard {:>6}   #[span] {:>6}",
            ratio(&group, "vigil guard", "fastrace"),
            ratio(&group, "vigil #[span]", "fastrace"),
        );
    }
    println!("Vigil guard with tail rules, with a spool / without either, this run:");
    for (_, group) in groups() {
        if estimate(&group, TAIL_RULES).is_none() {
            continue;
        }
        println!(
            "  {group:<34} tail rules {:>6}   spool {:>6}",
            ratio(&group, TAIL_RULES, "vigil guard"),
            ratio(&group, SPOOL, "vigil guard"),
        );
    }
    if estimate(LLM_GROUP, "opentelemetry_sdk").is_some() {
        println!("{LLM_GROUP}, Vigil / opentelemetry_sdk, this run:");
        println!(
            "  log_llm_call {:>6}   #[span(input, output)] {:>6}",
            ratio(LLM_GROUP, LOG_LLM_CALL, "opentelemetry_sdk"),
            ratio(LLM_GROUP, LLM_SPAN, "opentelemetry_sdk"),
        );
    }
    let (Some(floor), Some(layer), Some(otel)) = (
        estimate(TRACING_GROUP, REGISTRY),
        estimate(TRACING_GROUP, VIGIL_LAYER),
        estimate(TRACING_GROUP, OTEL_LAYER),
    ) else {
        return;
    };
    println!("{TRACING_GROUP}, this run:");
    println!(
        "  registry {floor:.1} ns, vigil layer {layer:.1} ns, tracing-opentelemetry {otel:.1} ns"
    );
    println!("  vigil layer / tracing-opentelemetry: {:.3}", layer / otel);
    println!("  vigil layer - registry floor: {:.1} ns", layer - floor);
    println!(
        "  tracing-opentelemetry - registry floor: {:.1} ns",
        otel - floor
    );
}
