//! What the end-to-end benches share: the local Vigil server in a child
//! process (so the application's memory figures hold only the application),
//! and readings of this process's memory.

// Each bench uses a part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use vigil_test_server::TestServer;

const SERVE: &str = "VIGIL_BENCH_SERVE";

/// Call first in `main`: in the child started by [`RemoteServer::start`] this
/// runs the server until its parent says `quit`, then exits.
pub fn serve_if_child() {
    if std::env::var_os(SERVE).is_none() {
        return;
    }
    let server = TestServer::builder().no_rate_limit().start();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {}", server.url(), server.api_key()).unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        match line.trim() {
            "spans" => writeln!(out, "{}", server.span_count()).unwrap(),
            "stall" => {
                server.blackhole(true);
                writeln!(out, "ok").unwrap();
            }
            "resume" => {
                server.blackhole(false);
                writeln!(out, "ok").unwrap();
            }
            _ => break,
        }
        out.flush().unwrap();
    }
    std::process::exit(0);
}

/// The local Vigil server, running in a child process of this bench.
pub struct RemoteServer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    url: String,
    api_key: String,
}

impl RemoteServer {
    /// Starts this bench binary again as the server.
    pub fn start() -> RemoteServer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(SERVE, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server process");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let (url, api_key) = line.trim().split_once(' ').expect("url and key");
        RemoteServer {
            url: url.to_owned(),
            api_key: api_key.to_owned(),
            child,
            stdin,
            stdout,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key the server accepts.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }

    /// Spans the server has stored.
    pub fn span_count(&mut self) -> u64 {
        self.ask("spans").parse().expect("a count")
    }

    /// Accept connections and never answer, until [`RemoteServer::resume`].
    pub fn stall(&mut self) {
        self.ask("stall");
    }

    /// Answer again.
    pub fn resume(&mut self) {
        self.ask("resume");
    }

    /// CPU time the server process has used so far.
    pub fn cpu(&self) -> Duration {
        cpu_time(&format!("/proc/{}/stat", self.child.id()))
    }
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

/// This process's resident set and its peak so far, in KiB, from
/// `/proc/self/status` (Linux; zeros elsewhere).
pub fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU time from a `/proc/.../stat` file (Linux; zero
/// elsewhere), at the kernel's tick resolution (10 ms).
fn cpu_time(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised name; utime and stime are the 14th and 15th.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let ticks = fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0);
    Duration::from_millis(ticks * 10)
}

/// CPU time used so far by this whole process: every thread, ended ones too.
pub fn process_cpu() -> Duration {
    cpu_time("/proc/self/stat")
}

/// CPU time used so far by this process's threads named `name` (live ones).
pub fn thread_cpu(name: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .map(|t| cpu_time(&t.path().join("stat").to_string_lossy()))
        .sum()
}
