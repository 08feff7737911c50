//! `cargo bench --manifest-path vigil-bench/Cargo.toml --bench spool`
//!
//! What the spool costs the process: `N` spans (traces of `S` spans, a root
//! and `S - 1` children with 1 KiB payloads) made while the Vigil server is
//! down go to the spool directory; a second client then replays them to the
//! server once it is up. The local Vigil server runs in a child process (its
//! CPU is not counted). For each phase the bench prints the wall time, the
//! CPU of the whole process (`getrusage(RUSAGE_SELF)`: every thread) per
//! span, and the spool's bytes per second of wall time, next to the same
//! spans delivered straight to a server that is up.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::{process_cpu, vigil_span, Shape};
use vigil::{Client, Config};

const N: usize = 100_000;
const S: usize = 10;

/// The Vigil server, in a child process: prints its URL, then obeys `up`,
/// `down` and `count` (answering with the spans it holds) on stdin.
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    url: String,
    key: String,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("VIGIL_BENCH_SPOOL_SERVER", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let (url, key) = line.trim().split_once(' ').unwrap();
        let (url, key) = (url.to_owned(), key.to_owned());
        Server {
            child,
            stdin,
            stdout,
            url,
            key,
        }
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() {
    let server = vigil_test_server::TestServer::builder()
        .no_rate_limit()
        .start();
    println!("{} {}", server.url(), server.api_key());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.as_str() {
            "up" => server.come_up(),
            "down" => server.go_down(),
            _ => {}
        }
        println!("{}", server.span_count());
    }
}

fn client(server: &Server, spool: Option<&Path>) -> Client {
    let mut builder = Config::builder()
        .endpoint(&server.url)
        .api_key(&server.key)
        .max_queue_size(20_000)
        .batch_size(1000)
        .flush_interval_ms(50)
        .timeout_seconds(5.0)
        .shutdown_timeout(Duration::from_secs(300));
    if let Some(dir) = spool {
        builder = builder.spool_dir(dir).spool_max_bytes(1 << 30);
    }
    Client::new(builder.build().unwrap()).unwrap()
}

/// Makes the `N` spans on `client`, flushing every 1,000 traces so that the
/// queue never overflows, then shuts it down.
fn make(client: &Client) -> vigil::ShutdownReport {
    client.scope(|| {
        for t in 0..N / S {
            vigil::trace("job", |_| {
                for _ in 1..S {
                    vigil_span(Shape::KibPayloads);
                }
            });
            if t % 1000 == 999 {
                client.flush(Duration::from_secs(60));
            }
        }
    });
    client.shutdown()
}

struct Phase {
    wall: Duration,
    cpu: Duration,
}

/// Runs `f`, timing it.
fn phase(f: impl FnOnce()) -> Phase {
    let (wall, cpu) = (Instant::now(), process_cpu());
    f();
    Phase {
        wall: wall.elapsed(),
        cpu: process_cpu() - cpu,
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    if std::env::var_os("VIGIL_BENCH_SPOOL_SERVER").is_some() {
        return serve();
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut server = Server::start();
    let dir = std::env::temp_dir().join(format!("vigil-bench-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    // Straight to the server, for comparison.
    let direct = phase(|| {
        let report = make(&client(&server, None));
        assert_eq!(report.stats.spans_delivered, N as u64, "{report}");
    });
    let stored = server.ask("down");
    assert_eq!(stored, N.to_string());

    let mut spooled_bytes = 0;
    let spooling = phase(|| {
        let report = make(&client(&server, Some(&dir)));
        assert_eq!(report.stats.spans_spooled, N as u64, "{report}");
        spooled_bytes = dir_bytes(&dir);
    });
    server.ask("up");
    let replay = phase(|| {
        let report = client(&server, Some(&dir)).shutdown();
        assert_eq!(report.stats.spans_replayed, N as u64, "{report}");
    });
    assert_eq!(
        server.ask("count"),
        (2 * N).to_string(),
        "each span stored once"
    );
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "{N} spans in traces of {S} (1 KiB input and output each), {:.1} MB spooled:",
        spooled_bytes as f64 / 1e6
    );
    let row = |what: &str, p: &Phase, bytes: Option<u64>| {
        let rate = bytes.map_or(String::new(), |b| {
            format!(", {:.1} MB/s", b as f64 / 1e6 / p.wall.as_secs_f64())
        });
        println!(
            "  {what:<44} wall {:>7.2?}, {:>5.2} µs CPU per span{rate}",
            p.wall,
            p.cpu.as_secs_f64() * 1e6 / N as f64
        );
    };
    row("made and delivered to a server that is up", &direct, None);
    row(
        "made and spooled, the server down",
        &spooling,
        Some(spooled_bytes),
    );
    row(
        "replayed from the spool by the next client",
        &replay,
        Some(spooled_bytes),
    );
    println!(
        "  spooling over delivering: {:.2}x the CPU",
        spooling.cpu.as_secs_f64() / direct.cpu.as_secs_f64()
    );
}
