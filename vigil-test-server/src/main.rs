//! A local Vigil server to point an application at:
//! `cargo run -p vigil-test-server -- --port 8000`.
//!
//! It prints its URL and API key, enforces the real server's rules (and its
//! rate limit, unless `--no-rate-limit`), and prints each trace it stores.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use vigil_test_server::TestServer;

const USAGE: &str = "usage: vigil-test-server [--port PORT] [--api-key KEY] [--no-rate-limit]";

fn main() -> ExitCode {
    let mut builder = TestServer::builder();
    let mut key = String::from("test-key");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => match args.next().and_then(|p| p.parse().ok()) {
                Some(port) => builder = builder.port(port),
                None => return fail("--port takes a number"),
            },
            "--api-key" => match args.next() {
                Some(k) => key = k,
                None => return fail("--api-key takes a key"),
            },
            "--no-rate-limit" => builder = builder.no_rate_limit(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return fail(&format!("unknown argument {other}")),
        }
    }
    let server = match builder.api_key(&key).try_start() {
        Ok(server) => server,
        Err(e) => return fail(&format!("cannot listen: {e}")),
    };
    println!("Vigil test server at {}", server.url());
    println!(
        "VIGIL_ENDPOINT={} VIGIL_API_KEY={}",
        server.url(),
        server.api_key()
    );
    let mut shown = HashSet::new();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        for trace in server.traces() {
            let status = trace.status.clone().unwrap_or_else(|| "unset".into());
            let line = format!(
                "trace {} {:?}: {} spans, {status}",
                trace.trace_id,
                trace.name.as_deref().unwrap_or(""),
                trace.spans.len()
            );
            if shown.insert(line.clone()) {
                println!("{line}");
            }
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("vigil-test-server: {message}\n{USAGE}");
    ExitCode::from(2)
}
