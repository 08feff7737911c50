//! Many threads making many traces at once, shipped to a Vigil server.
//!
//! ```text
//! cargo run --example concurrent_traces [THREADS] [TRACES_PER_THREAD]
//! VIGIL_ENDPOINT=http://localhost:8000 VIGIL_API_KEY=... cargo run --example concurrent_traces
//! ```
//!
//! Without `VIGIL_ENDPOINT` it starts a local Vigil server in-process (the
//! one the tests use) and checks what it stored. The last line reads
//! `made T traces, S spans`, S counting every span sent, root spans included.

use std::time::{Duration, Instant};

use serde_json::json;
use vigil::{Config, SpanKind};
use vigil_test_server::TestServer;

const SPANS_PER_TRACE: usize = 4; // the root span and three steps

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let threads = args.next().and_then(Result::ok).unwrap_or(4);
    let per_thread = args.next().and_then(Result::ok).unwrap_or(25);

    // A local server unless one is configured.
    let local = std::env::var_os("VIGIL_ENDPOINT")
        .is_none()
        .then(|| TestServer::builder().no_rate_limit().start());
    let config = match &local {
        Some(server) => Config::builder()
            .endpoint(server.url())
            .api_key(server.api_key())
            .build()
            .map_err(|e| e.to_string()),
        None => Config::from_env().map_err(|e| e.to_string()),
    };
    let client = match config.and_then(|c| vigil::init(c).map_err(|e| e.to_string())) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("vigil: {e}");
            std::process::exit(2);
        }
    };

    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                for n in 0..per_thread {
                    vigil::trace(format!("request-{t}-{n}"), |trace| {
                        trace.set_input(&json!({ "thread": t, "n": n }));
                        vigil::span("retrieve", SpanKind::Retriever, |s| {
                            s.set_output(&json!({ "docs": 3 }))
                        });
                        vigil::span("llm:gpt-4o-mini", SpanKind::Llm, |s| {
                            s.set_input(&json!({ "model": "gpt-4o-mini", "messages": [] }));
                            vigil::log_event("first-token", &());
                        });
                        vigil::span("tool:search", SpanKind::Tool, |_| ());
                    });
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let made_in = started.elapsed();

    let report = client.shutdown_timeout(Duration::from_secs(60));
    println!("{report}");
    println!(
        "spans made in {made_in:?}; shipped by {:?}",
        started.elapsed()
    );
    if let Some(server) = &local {
        println!(
            "local server stored {} traces, {} spans",
            server.traces().len(),
            server.span_count()
        );
    }
    let traces = threads * per_thread;
    println!("made {traces} traces, {} spans", traces * SPANS_PER_TRACE);
}
