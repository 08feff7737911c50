//! The spool end to end: what the server could not take is kept on disk
//! and delivered by the next client (or process) that opens the same
//! directory, over loopback HTTP to the local Vigil server.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use vigil::{Client, Config, SpanKind, StatsSnapshot};
use vigil_test_server::TestServer;

fn spool_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-spool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn client(
    server: &TestServer,
    dir: &Path,
    tweak: impl FnOnce(vigil::config::ConfigBuilder) -> vigil::config::ConfigBuilder,
) -> Client {
    let builder = Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .project_id("spool")
        .flush_interval_ms(20)
        .timeout_seconds(0.5)
        .retry_backoff(Duration::from_millis(10))
        .spool_dir(dir);
    Client::new(tweak(builder).build().unwrap()).unwrap()
}

/// `n` traces of a root and two children, the second child failing in
/// every third trace; their names.
fn make(client: &Client, run: &str, n: usize) -> Vec<String> {
    client.scope(|| {
        (0..n)
            .map(|i| {
                let name = format!("{run}-{i}");
                vigil::trace(name.clone(), |_| {
                    vigil::span("search", SpanKind::Retriever, |_| ());
                    vigil::span("tool", SpanKind::Tool, |s| {
                        if i % 3 == 0 {
                            s.record_error(&"failed");
                        }
                    });
                });
                name
            })
            .collect()
    })
}

/// A server that is down, and a spool `name` that a first client
/// (configured by `tweak`) filled with `traces` traces named `name-<i>`
/// before it shut down: the server, the spool, the names, the report.
fn spooled_while_down(
    name: &str,
    traces: usize,
    tweak: impl FnOnce(vigil::config::ConfigBuilder) -> vigil::config::ConfigBuilder,
) -> (TestServer, PathBuf, Vec<String>, vigil::ShutdownReport) {
    let server = TestServer::builder().no_rate_limit().start();
    let dir = spool_dir(name);
    server.go_down();
    let first = client(&server, &dir, tweak);
    let made = make(&first, name, traces);
    let report = first.shutdown_timeout(Duration::from_secs(5));
    (server, dir, made, report)
}

/// What a new client on `dir` did before its shutdown: the replays.
fn replay(server: &TestServer, dir: &Path) -> vigil::ShutdownReport {
    client(server, dir, |b| b).shutdown_timeout(Duration::from_secs(30))
}

/// Every span on the server, by trace name, and each trace's status.
fn stored(server: &TestServer) -> HashMap<String, (usize, Option<String>)> {
    let traces = server.traces();
    let ids: Vec<String> = traces
        .iter()
        .flat_map(|t| {
            t.spans
                .iter()
                .map(|s| s["span_id"].as_str().unwrap().to_owned())
        })
        .collect();
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a span stored twice");
    traces
        .into_iter()
        .map(|t| {
            (
                t.name.clone().unwrap_or_default(),
                (t.spans.len(), t.status),
            )
        })
        .collect()
}

/// Everything ended is delivered, spooled or counted dropped.
fn accounted(s: &StatsSnapshot) {
    assert_eq!(s.in_flight(), 0, "{s:?}");
}

#[test]
fn a_run_while_the_server_is_down_is_delivered_by_the_next() {
    let (server, dir, made_first, report) = spooled_while_down("down", 20, |b| b);
    let s = report.stats;
    assert_eq!((s.spans_spooled, s.patches_spooled), (60, 20), "{report}");
    assert_eq!(s.dropped(), 0, "{report}");
    accounted(&s);

    server.come_up();
    let second = client(&server, &dir, |b| b);
    let made_second = make(&second, "second", 5);
    let report = second.shutdown_timeout(Duration::from_secs(10));
    assert!(report.completed, "{report}");
    let s = report.stats;
    assert_eq!((s.spans_replayed, s.spans_delivered), (60, 15), "{report}");
    accounted(&s);

    let on_server = stored(&server);
    assert_eq!(on_server.len(), 25);
    for name in made_first.iter().chain(&made_second) {
        let (spans, status) = &on_server[name];
        assert_eq!(*spans, 3, "{name} whole");
        assert_eq!(status.as_deref(), Some("ok"), "{name}: its status was set");
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "only the lock file is left"
    );
}

#[test]
fn what_a_shutdown_deadline_leaves_unsent_is_replayed_next_time() {
    let server = TestServer::builder().no_rate_limit().start();
    let dir = spool_dir("deadline");
    server.blackhole(true);
    let first = client(&server, &dir, |b| b.timeout_seconds(0.2));
    let made = make(&first, "held", 10);
    let report = first.shutdown_timeout(Duration::from_millis(600));
    let s = report.stats;
    assert!(s.spans_spooled > 0, "{report}");
    assert!(report.to_string().contains("; spooled "), "{report}");
    assert_eq!(
        s.spans_spooled + s.spans_delivered + s.dropped(),
        30,
        "{report}"
    );
    accounted(&s);

    server.blackhole(false);
    let report = replay(&server, &dir);
    assert!(report.completed, "{report}");
    let on_server = stored(&server);
    for name in &made {
        assert_eq!(on_server[name].0, 3, "{name} whole, once");
        assert!(on_server[name].1.is_some(), "{name}: status set");
    }
}

#[test]
fn a_record_corrupted_in_the_middle_is_skipped_and_the_rest_replayed() {
    let (server, dir, made, _) = spooled_while_down("c", 9, |b| b);
    let segment = segments(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    // A byte of the body of the fifth trace's ingest request.
    let at = find(&bytes, b"\"name\":\"c-4\"").expect("c-4 is spooled");
    bytes[at + 3] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();

    server.come_up();
    let report = replay(&server, &dir);
    let s = report.stats;
    assert_eq!(s.spool_dropped_corrupt, 1, "{report}");
    assert_eq!(
        s.spool_dropped_rejected, 0,
        "nothing garbled reached the server"
    );
    let on_server = stored(&server);
    for name in made.iter().filter(|n| *n != "c-4") {
        assert_eq!(on_server[name].0, 3, "{name}");
    }
    assert!(!on_server.contains_key("c-4"));
}

#[test]
fn the_size_cap_drops_the_oldest_and_the_rest_is_replayed() {
    let server = TestServer::builder().no_rate_limit().start();
    let dir = spool_dir("size");
    server.go_down();
    let first = client(&server, &dir, |b| b.spool_max_bytes(8 * 1024));
    for round in 0..10 {
        make(&first, &format!("r{round}"), 3);
        first.flush(Duration::from_millis(200));
    }
    let report = first.shutdown_timeout(Duration::from_secs(5));
    let s = report.stats;
    assert!(s.spool_dropped_size > 0, "{report}");
    let on_disk: u64 = segments(&dir)
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(on_disk <= 8 * 1024, "{on_disk} bytes");
    let kept = s.spans_spooled - s.spool_dropped_size;

    server.come_up();
    let second = client(&server, &dir, |b| b.spool_max_bytes(8 * 1024));
    let report = second.shutdown_timeout(Duration::from_secs(5));
    assert_eq!(report.stats.spans_replayed, kept, "{report}");
    assert_eq!(server.span_count() as u64, kept);
}

#[test]
fn records_past_the_age_cap_are_dropped_not_replayed() {
    let server = TestServer::builder().no_rate_limit().start();
    let dir = spool_dir("age");
    server.go_down();
    let first = client(&server, &dir, |b| b.spool_max_age(Duration::from_secs(1)));
    make(&first, "old", 4);
    let spooled = first
        .shutdown_timeout(Duration::from_secs(5))
        .stats
        .spans_spooled;
    assert_eq!(spooled, 12);
    std::thread::sleep(Duration::from_millis(2100));
    server.come_up();
    let second = client(&server, &dir, |b| b.spool_max_age(Duration::from_secs(1)));
    let report = second.shutdown_timeout(Duration::from_secs(5));
    let s = report.stats;
    assert_eq!((s.spool_dropped_age, s.spans_replayed), (12, 0), "{report}");
    assert_eq!(server.span_count(), 0);
}

#[test]
fn a_directory_that_cannot_be_used_leaves_the_client_working() {
    let server = TestServer::builder().no_rate_limit().start();
    // A file where the directory should be.
    let dir = spool_dir("file");
    std::fs::write(&dir, b"not a directory").unwrap();
    let c = client(&server, &dir, |b| b);
    make(&c, "plain", 3);
    let report = c.shutdown_timeout(Duration::from_secs(5));
    assert!(report.completed, "{report}");
    assert_eq!(
        (report.stats.spans_delivered, report.stats.spans_spooled),
        (9, 0)
    );
    std::fs::remove_file(&dir).unwrap();
}

#[test]
fn two_clients_never_share_a_spool() {
    let server = TestServer::builder().no_rate_limit().start();
    let dir = spool_dir("shared");
    server.go_down();
    let first = client(&server, &dir, |b| b);
    let second = client(&server, &dir, |b| b);
    make(&first, "one", 2);
    make(&second, "two", 2);
    // Both exporters have tried the server, so both opened (or failed to
    // open) the directory, before either lets go of it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while first.stats().requests == 0 || second.stats().requests == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the exporters never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let one = first.shutdown_timeout(Duration::from_secs(5)).stats;
    let two = second.shutdown_timeout(Duration::from_secs(2)).stats;
    // Whichever opened it first spools; the other counts its spans dropped.
    assert_eq!(one.spans_spooled + two.spans_spooled, 6);
    assert_eq!(one.dropped() + two.dropped(), 6);
    server.come_up();
    assert_eq!(replay(&server, &dir).stats.spans_replayed, 6);
    assert_eq!(server.span_count(), 6, "replayed once");
}

/// The spool's segment files, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    paths.sort();
    paths
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Set in the child processes of the kill test: the spool directory.
const CHILD: &str = "VIGIL_SPOOL_TEST_CHILD";

#[test]
fn processes_killed_while_they_spool_leave_nothing_corrupt_to_replay() {
    if let Ok(dir) = std::env::var(CHILD) {
        // The child: spans made without end against a server that is not
        // there, spooled until the parent kills the process.
        let endpoint = std::env::var("VIGIL_SPOOL_TEST_ENDPOINT").unwrap();
        let config = Config::builder()
            .endpoint(endpoint)
            .flush_interval_ms(10)
            .spool_dir(dir)
            .build()
            .unwrap();
        let c = Client::new(config).unwrap();
        for n in 0.. {
            make(&c, &format!("{}-{n}", std::process::id()), 2);
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let server = TestServer::builder().no_rate_limit().start();
    let dir = spool_dir("killed");
    server.go_down();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..50 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "processes_killed_while_they_spool_leave_nothing_corrupt_to_replay",
                "--nocapture",
            ])
            .env(CHILD, &dir)
            .env("VIGIL_SPOOL_TEST_ENDPOINT", server.url())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(40 + seed % 120));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let spooled: u64 = segments(&dir)
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(spooled > 0, "the children spooled");

    server.come_up();
    let report = replay(&server, &dir);
    assert!(report.completed, "{report}");
    let s = report.stats;
    assert!(s.spans_replayed > 0, "{report}");
    assert_eq!(
        s.spool_dropped_rejected, 0,
        "nothing garbled was sent: {report}"
    );
    let on_server = stored(&server); // asserts no span id twice
    assert_eq!(server.span_count() as u64, s.spans_replayed, "{report}");
    assert!(on_server.values().all(|(spans, _)| *spans <= 3));
    // A status replayed just after its spans can find them not yet
    // committed (the server answers first) until its attempts run out; it
    // then waits in the spool for the next process, which sends it.
    let next = replay(&server, &dir);
    assert_eq!(next.stats.spans_replayed, 0, "{next}");
    assert_eq!(
        segments(&dir),
        Vec::<PathBuf>::new(),
        "all replayed and acknowledged"
    );
}

#[test]
fn a_torn_last_record_is_detected_and_skipped() {
    let (server, dir, made, _) = spooled_while_down("t", 4, |b| b);
    // Power lost in the middle of the last write: the trace's last PATCH.
    let segment = segments(&dir).pop().unwrap();
    let len = segment.metadata().unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 7)
        .unwrap();

    server.come_up();
    let report = replay(&server, &dir);
    let s = report.stats;
    assert_eq!(
        (s.spool_dropped_corrupt, s.spans_replayed),
        (1, 12),
        "{report}"
    );
    let on_server = stored(&server);
    for name in &made {
        assert_eq!(on_server[name].0, 3, "{name}");
    }
    let statuses = on_server
        .values()
        .filter(|(_, status)| status.is_some())
        .count();
    assert_eq!(statuses, 3, "the torn status is not replayed");
}

#[test]
fn an_outage_longer_than_the_queue_goes_to_disk_not_to_drops() {
    let server = TestServer::builder().no_rate_limit().start();
    let dir = spool_dir("outage");
    server.go_down();
    let c = client(&server, &dir, |b| b.max_queue_size(200).batch_size(50));
    for round in 0..20 {
        make(&c, &format!("o{round}"), 30);
        // Each round fits the queue; the exporter moves it to disk.
        assert!(c.flush(Duration::from_secs(5)));
    }
    let s = c.stats();
    assert_eq!((s.spans_spooled, s.dropped()), (1800, 0), "{s:?}");
    server.come_up();
    // Replayed while running, once the server answers again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while c.stats().spans_replayed < 1800 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = c.shutdown_timeout(Duration::from_secs(10));
    assert_eq!(report.stats.spans_replayed, 1800, "{report}");
    assert_eq!(stored(&server).len(), 600);
}

/// Set in the child processes of the two-run test: `dir` and the run's name.
const RUN: &str = "VIGIL_SPOOL_TEST_RUN";

#[test]
fn a_program_run_while_the_server_is_down_then_again_after_has_both_runs_stored() {
    if let Ok(run) = std::env::var(RUN) {
        // The program: ten traces, then a shutdown, as a CLI would.
        let (dir, name) = run.split_once('|').unwrap();
        let endpoint = std::env::var("VIGIL_SPOOL_TEST_ENDPOINT").unwrap();
        let key = std::env::var("VIGIL_SPOOL_TEST_KEY").unwrap();
        let config = Config::builder()
            .endpoint(endpoint)
            .api_key(key)
            .spool_dir(dir)
            .build()
            .unwrap();
        let c = Client::new(config).unwrap();
        make(&c, name, 10);
        let report = c.shutdown();
        println!(
            "{}",
            report.stats.spans_spooled + report.stats.spans_delivered
        );
        return;
    }
    let server = TestServer::builder().no_rate_limit().start();
    let dir = spool_dir("two-runs");
    let program = |name: &str| {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_program_run_while_the_server_is_down_then_again_after_has_both_runs_stored",
                "--nocapture",
            ])
            .env(RUN, format!("{}|{name}", dir.display()))
            .env("VIGIL_SPOOL_TEST_ENDPOINT", server.url())
            .env("VIGIL_SPOOL_TEST_KEY", server.api_key())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    server.go_down();
    program("down");
    assert_eq!(server.span_count(), 0);
    server.come_up();
    program("up");
    let on_server = stored(&server);
    assert_eq!(on_server.len(), 20, "both runs' traces");
    for run in ["down", "up"] {
        for i in 0..10 {
            let (spans, status) = &on_server[&format!("{run}-{i}")];
            assert_eq!((*spans, status.as_deref()), (3, Some("ok")), "{run}-{i}");
        }
    }
    assert_eq!(segments(&dir), Vec::<PathBuf>::new());
}

#[test]
fn a_record_replayed_twice_is_found_stored_not_stored_twice() {
    let (server, dir, made, _) = spooled_while_down("twice", 3, |b| b);
    // A copy of the spool as it was: a process that lost its
    // acknowledgements (it died right after the server took its replays).
    let copy = spool_dir("twice-copy");
    std::fs::create_dir_all(&copy).unwrap();
    for path in segments(&dir) {
        std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
    }
    server.come_up();
    assert_eq!(replay(&server, &dir).stats.spans_replayed, 9);
    let report = replay(&server, &copy);
    assert!(report.completed, "{report}");
    let s = report.stats;
    // The server refuses the duplicate ids; the retry asks it, and finds
    // every span stored.
    assert_eq!((s.spans_replayed, s.found_stored), (9, 3), "{report}");
    assert_eq!(server.span_count(), 9, "stored once");
    for name in &made {
        assert_eq!(stored(&server)[name].0, 3);
    }
    assert_eq!(
        segments(&copy),
        Vec::<PathBuf>::new(),
        "settled, not looping"
    );
}

#[test]
fn the_spool_is_configured_from_the_environment_too() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        Config::from_env_with(move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    };
    let config = env(&[
        ("VIGIL_SPOOL_DIR", "/var/spool/agent"),
        ("VIGIL_SPOOL_MAX_BYTES", "1048576"),
        ("VIGIL_SPOOL_MAX_AGE_SECS", "3600"),
    ])
    .unwrap();
    let shown = format!("{config:?}");
    assert!(
        shown.contains(r#"dir: "/var/spool/agent", max_bytes: 1048576, max_age: 3600s"#),
        "{shown}"
    );
    let err = env(&[
        ("VIGIL_SPOOL_DIR", "/tmp/s"),
        ("VIGIL_SPOOL_MAX_BYTES", "10"),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "VIGIL_SPOOL_MAX_BYTES: must be at least 1024 bytes (got 10)"
    );
    let err = Config::builder()
        .spool_dir("/tmp/s")
        .spool_max_age(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `spool_max_age`: must be at least 1 s (got 0ns)"
    );
}

#[test]
fn with_tail_rules_a_shutdown_spools_what_the_sampler_held() {
    let (server, dir, made, report) =
        spooled_while_down("tail", 9, |b| b.keep_errors(true).sample_rate(0.0));
    let s = report.stats;
    // Traces 0, 3 and 6 fail and are kept; the others are left out.
    assert_eq!(
        (s.traces_kept_for_errors, s.traces_sampled_out),
        (3, 6),
        "{report}"
    );
    assert_eq!((s.spans_spooled, s.dropped()), (9, 0), "{report}");
    accounted(&s);
    server.come_up();
    assert_eq!(replay(&server, &dir).stats.spans_replayed, 9);
    let on_server = stored(&server);
    for (i, name) in made.iter().enumerate() {
        assert_eq!(on_server.contains_key(name), i % 3 == 0, "{name}");
    }
}
