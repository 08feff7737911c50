//! The export state machine, driven by a fake clock and a scripted transport.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use common::check_ingest;
use serde_json::Value;
use vigil_core::queue::Slot;
use vigil_core::{
    transport::RequestKind, ExportSettings, Exporter, IdGenerator, Outcome, Poll, Request,
    RetryReason, Span, SpanKind, SpanQueue, SpanStatus, Timestamp, Trace, TraceId, Transport,
};

type Text = String;
type Pipe = SpanQueue<Text, Box<[Slot<Span<Text>>]>>;
type Exp = Exporter<Text, Vec<Span<Text>>>;

#[derive(Debug, Clone)]
struct Sent {
    at: Duration,
    kind: RequestKind,
    trace: TraceId,
    body: Value,
}

/// Answers from a script (then `Delivered`), recording every request.
#[derive(Default)]
struct Scripted {
    script: VecDeque<Outcome>,
    sent: Vec<Sent>,
    now: Duration,
}

impl Transport for Scripted {
    fn send(&mut self, r: &Request<'_>) -> Outcome {
        let body = match r.kind {
            RequestKind::Ingest => check_ingest(r.body),
            RequestKind::Patch => serde_json::from_slice(r.body).unwrap(),
        };
        self.sent.push(Sent {
            at: self.now,
            kind: r.kind,
            trace: r.trace_id,
            body,
        });
        self.script.pop_front().unwrap_or(Outcome::Delivered)
    }
}

fn settings(batch: usize, interval_ms: u64) -> ExportSettings {
    ExportSettings {
        batch_size: batch,
        flush_interval: Duration::from_millis(interval_ms),
        ..ExportSettings::default()
    }
}

fn pipe(cap: usize) -> Pipe {
    SpanQueue::with_capacity(cap)
}

/// Polls until the exporter must wait; returns what it asked for.
fn drive(exp: &mut Exp, p: &Pipe, t: &mut Scripted, now: Duration) -> Poll {
    t.now = now;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match exp.poll(now, p, t, &mut buf) {
            Poll::Again => continue,
            other => return other,
        }
    }
}

/// Runs the clock forward, always jumping to the time the exporter asks for.
fn run_to_end(
    exp: &mut Exp,
    p: &Pipe,
    t: &mut Scripted,
    mut now: Duration,
    limit: usize,
) -> Duration {
    // A deferred retry is waited for in flush-interval steps.
    for _ in 0..limit * 1000 {
        match drive(exp, p, t, now) {
            Poll::Wait(at) => now = at,
            Poll::Idle(_) if p.is_empty() && exp.is_idle() => return now,
            Poll::Idle(at) => now = at,
            Poll::Again => unreachable!(),
        }
    }
    panic!("did not settle");
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Gen(IdGenerator);

impl Gen {
    fn trace(&mut self, name: &'static str) -> Trace<Text> {
        Trace::new(
            self.0.trace_id(),
            self.0.span_id(),
            name,
            Timestamp::from_unix_nanos(1),
        )
    }
    fn child(&mut self, t: &Trace<Text>) -> Span<Text> {
        let mut s = t.child(
            self.0.span_id(),
            "step",
            SpanKind::Tool,
            Timestamp::from_unix_nanos(2),
        );
        s.end(Timestamp::from_unix_nanos(3), SpanStatus::Ok);
        s
    }
    fn lone(&mut self) -> Span<Text> {
        let t = self.trace("lone");
        self.child(&t)
    }
}

fn gen() -> Gen {
    Gen(IdGenerator::from_seed(99))
}

#[test]
fn flushes_when_a_batch_is_full() {
    let (p, mut t, mut g) = (pipe(100), Scripted::default(), gen());
    let mut exp = Exp::new(settings(3, 10_000), "", 1);
    p.submit(g.lone());
    p.submit(g.lone());
    assert_eq!(drive(&mut exp, &p, &mut t, ms(1)), Poll::Idle(ms(10_000)));
    assert!(t.sent.is_empty());
    p.submit(g.lone());
    drive(&mut exp, &p, &mut t, ms(2));
    assert_eq!(t.sent.len(), 3, "three traces, three requests");
    assert_eq!(p.snapshot().spans_delivered, 3);
}

#[test]
fn flushes_when_the_interval_passes() {
    let (p, mut t, mut g) = (pipe(100), Scripted::default(), gen());
    let mut exp = Exp::new(settings(100, 500), "", 1);
    p.submit(g.lone());
    assert_eq!(drive(&mut exp, &p, &mut t, ms(499)), Poll::Idle(ms(500)));
    assert!(t.sent.is_empty());
    drive(&mut exp, &p, &mut t, ms(500));
    assert_eq!(t.sent.len(), 1);
    p.submit(g.lone());
    assert_eq!(
        drive(&mut exp, &p, &mut t, ms(700)),
        Poll::Idle(ms(1000)),
        "next interval counts from the last flush"
    );
    drive(&mut exp, &p, &mut t, ms(1000));
    assert_eq!(t.sent.len(), 2);
}

#[test]
fn a_flush_request_sends_everything_now() {
    let (p, mut t, mut g) = (pipe(1000), Scripted::default(), gen());
    let mut exp = Exp::new(settings(10, 60_000), "", 1);
    for _ in 0..25 {
        p.submit(g.lone());
    }
    exp.request_flush();
    drive(&mut exp, &p, &mut t, ms(1));
    assert_eq!(t.sent.len(), 25);
    assert!(p.is_empty() && exp.is_idle());
    assert_eq!(p.outstanding(), 0, "all released");
}

#[test]
fn interleaved_traces_are_sent_one_trace_per_request() {
    let (p, mut t, mut g) = (pipe(100), Scripted::default(), gen());
    let mut exp = Exp::new(settings(100, 10), "proj", 1);
    let traces: Vec<_> = (0..3).map(|_| g.trace("t")).collect();
    for _ in 0..4 {
        for tr in &traces {
            p.submit(g.child(tr));
        }
    }
    run_to_end(&mut exp, &p, &mut t, ms(10), 100);
    assert_eq!(t.sent.len(), 3);
    for s in &t.sent {
        let spans = s.body["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 4);
        assert!(spans.iter().all(|sp| sp["trace_id"] == s.trace.to_string()));
        assert_eq!(s.body["project_id"], "proj");
        assert!(
            s.body.get("trace_name").is_none(),
            "no root in this request"
        );
    }
}

#[test]
fn the_trace_patch_follows_its_stored_spans_and_never_precedes_them() {
    let (p, mut t, mut g) = (pipe(100), Scripted::default(), gen());
    let mut exp = Exp::new(settings(100, 10), "", 1);
    let mut tr = g.trace("pipeline");
    tr.root().set_metadata("version", "1.0").unwrap();
    p.submit(g.child(&tr));
    p.submit(tr.end(Timestamp::from_unix_nanos(9), SpanStatus::Error));
    t.script = [
        Outcome::Retry {
            after: None,
            reason: RetryReason::Failed,
        },
        Outcome::Retry {
            after: None,
            reason: RetryReason::Failed,
        },
    ]
    .into();
    run_to_end(&mut exp, &p, &mut t, ms(10), 100);
    let kinds: Vec<_> = t.sent.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            RequestKind::Ingest,
            RequestKind::Ingest,
            RequestKind::Ingest,
            RequestKind::Patch
        ]
    );
    let ingest = &t.sent[2].body;
    assert_eq!(ingest["trace_name"], "pipeline");
    assert_eq!(ingest["trace_metadata"]["version"], "1.0");
    assert_eq!(
        ingest["spans"][1]["parent_span_id"],
        Value::Null,
        "root last"
    );
    assert_eq!(
        t.sent[3].body,
        serde_json::json!({"status": "error", "metadata": {"version": "1.0"}})
    );
    assert_eq!(t.sent[3].trace, t.sent[2].trace);
}

#[test]
fn no_patch_when_the_spans_are_rejected_and_a_404_patch_is_retried() {
    let (p, mut t, mut g) = (pipe(100), Scripted::default(), gen());
    let mut exp = Exp::new(settings(100, 10), "", 1);
    let tr = g.trace("a");
    p.submit(tr.end(Timestamp::from_unix_nanos(9), SpanStatus::Ok));
    t.script = [Outcome::Rejected].into();
    run_to_end(&mut exp, &p, &mut t, ms(10), 100);
    assert_eq!(t.sent.len(), 1);
    assert_eq!(p.snapshot().spans_rejected, 1);

    let tr = g.trace("b");
    p.submit(tr.end(Timestamp::from_unix_nanos(9), SpanStatus::Ok));
    // A transport maps a PATCH racing its spans (404) to a retry.
    t.script = [
        Outcome::Delivered,
        Outcome::Retry {
            after: None,
            reason: RetryReason::Failed,
        },
    ]
    .into();
    run_to_end(&mut exp, &p, &mut t, ms(20), 100);
    let kinds: Vec<_> = t.sent[1..].iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [RequestKind::Ingest, RequestKind::Patch, RequestKind::Patch]
    );
    assert_eq!(p.snapshot().patches_failed, 0);
}

#[test]
fn attempts_are_bounded_then_the_spans_are_dropped_and_counted() {
    let (p, mut t, mut g) = (pipe(100), Scripted::default(), gen());
    let mut exp = Exp::new(settings(100, 10), "", 1);
    let tr = g.trace("x");
    for _ in 0..3 {
        p.submit(g.child(&tr));
    }
    t.script = std::iter::repeat_n(
        Outcome::Retry {
            after: None,
            reason: RetryReason::Failed,
        },
        100,
    )
    .collect();
    run_to_end(&mut exp, &p, &mut t, ms(10), 100);
    assert_eq!(t.sent.len(), 5, "default max_attempts");
    let s = p.snapshot();
    assert_eq!(
        (
            s.dropped_after_retries,
            s.spans_delivered,
            s.retries,
            s.requests
        ),
        (3, 0, 5, 5)
    );
    assert_eq!(p.outstanding(), 0);
}

#[test]
fn backoff_doubles_with_jitter_in_its_upper_half_and_is_capped() {
    let mut exp = Exp::new(
        ExportSettings {
            max_attempts: 20,
            ..settings(10, 10)
        },
        "",
        1,
    );
    let base = Duration::from_millis(500);
    for n in 1..=12u32 {
        let nominal = (base * 2u32.pow(n - 1)).min(Duration::from_secs(30));
        let samples: Vec<_> = (0..200).map(|_| exp.backoff(n)).collect();
        assert!(
            samples.iter().all(|d| *d >= nominal / 2 && *d <= nominal),
            "attempt {n}"
        );
        assert!(samples.iter().any(|d| *d != samples[0]), "jittered");
    }
    assert!((0..1000).all(|_| exp.backoff(40) <= Duration::from_secs(30)));
}

#[test]
fn retries_wait_for_the_backoff_before_sending_again() {
    let (p, mut t, mut g) = (pipe(100), Scripted::default(), gen());
    let mut exp = Exp::new(
        ExportSettings {
            max_attempts: 8,
            ..settings(100, 10)
        },
        "",
        1,
    );
    p.submit(g.lone());
    t.script = std::iter::repeat_n(
        Outcome::Retry {
            after: None,
            reason: RetryReason::Failed,
        },
        7,
    )
    .collect();
    run_to_end(&mut exp, &p, &mut t, ms(10), 100);
    assert_eq!(t.sent.len(), 8);
    for (i, pair) in t.sent.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let nominal = (ms(500) * 2u32.pow(i as u32)).min(Duration::from_secs(30));
        assert!(gap >= nominal / 2 && gap <= nominal, "gap {i}: {gap:?}");
    }
    assert_eq!(p.snapshot().spans_delivered, 1);
}

#[test]
fn retry_after_is_honoured_and_rate_limits_cost_no_attempt() {
    let (p, mut t, mut g) = (pipe(100), Scripted::default(), gen());
    let mut exp = Exp::new(settings(100, 10), "", 1);
    p.submit(g.lone());
    p.submit(g.lone());
    let limited = Outcome::Retry {
        after: Some(Duration::from_secs(7)),
        reason: RetryReason::RateLimited,
    };
    t.script = std::iter::repeat_n(limited, 10).collect();
    assert!(matches!(drive(&mut exp, &p, &mut t, ms(10)), Poll::Wait(at) if at == ms(7010)));
    assert_eq!(
        drive(&mut exp, &p, &mut t, ms(7009)),
        Poll::Wait(ms(7010)),
        "nothing before Retry-After"
    );
    assert_eq!(t.sent.len(), 1);
    run_to_end(&mut exp, &p, &mut t, ms(7010), 100);
    assert_eq!(t.sent.len(), 12, "ten 429s, then both traces");
    for pair in t.sent[..11].windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_secs(7));
    }
    assert_eq!(p.snapshot().spans_delivered, 2);
}

#[test]
fn an_unreachable_server_pauses_sending_without_using_up_attempts() {
    let (p, mut t, mut g) = (pipe(100), Scripted::default(), gen());
    let mut exp = Exp::new(settings(100, 10), "", 1);
    p.submit(g.lone());
    t.script = std::iter::repeat_n(
        Outcome::Retry {
            after: None,
            reason: RetryReason::Unreachable,
        },
        30,
    )
    .collect();
    let end = run_to_end(&mut exp, &p, &mut t, ms(10), 200);
    assert_eq!(t.sent.len(), 31);
    assert_eq!(p.snapshot().spans_delivered, 1);
    let max_gap = t.sent.windows(2).map(|w| w[1].at - w[0].at).max().unwrap();
    assert!(max_gap <= Duration::from_secs(30), "capped: {max_gap:?}");
    assert!(end > Duration::from_secs(60), "backed off: {end:?}");
}

#[test]
fn spans_awaiting_retry_count_against_the_queue_so_memory_stays_fixed() {
    let (p, mut t, mut g) = (pipe(10), Scripted::default(), gen());
    let mut exp = Exp::new(settings(5, 10), "", 1);
    for _ in 0..5 {
        p.submit(g.lone());
    }
    t.script = std::iter::repeat_n(
        Outcome::Retry {
            after: None,
            reason: RetryReason::Unreachable,
        },
        1000,
    )
    .collect();
    drive(&mut exp, &p, &mut t, ms(10));
    assert_eq!(p.len(), 0, "all five taken into the batch");
    let accepted = (0..20).filter(|_| p.submit(g.lone()).is_some()).count();
    assert_eq!(accepted, 5, "only capacity minus the five held");
    let s = p.snapshot();
    assert_eq!((s.spans_queued, s.dropped_queue_full), (10, 15));
    let mut buf = vec![0u8; 4096];
    assert_eq!(exp.abandon(ms(20), &p, &mut t, &mut buf).spans, 10);
    let s = p.snapshot();
    assert_eq!(s.dropped_at_shutdown, 10);
    assert_eq!(s.spans_ended, s.spans_delivered + s.dropped());
}

#[test]
fn a_span_that_cannot_fit_any_request_is_dropped_and_counted() {
    let (p, mut t, mut g) = (pipe(10), Scripted::default(), gen());
    let mut exp = Exp::new(settings(5, 10), "", 1);
    p.submit(g.lone());
    let mut tiny = [0u8; 32];
    t.now = ms(10);
    while exp.poll(ms(10), &p, &mut t, &mut tiny) == Poll::Again {}
    assert!(t.sent.is_empty());
    assert_eq!(p.snapshot().dropped_oversize, 1);
    assert_eq!(p.outstanding(), 0);
}

#[test]
fn an_absurd_retry_after_is_capped_rather_than_overflowing() {
    let (p, mut t, mut g) = (pipe(10), Scripted::default(), gen());
    let mut exp = Exp::new(settings(5, 10), "", 1);
    p.submit(g.lone());
    t.script.push_back(Outcome::Retry {
        after: Some(Duration::MAX),
        reason: RetryReason::RateLimited,
    });
    assert_eq!(
        drive(&mut exp, &p, &mut t, ms(10)),
        Poll::Wait(ms(10) + vigil_core::export::MAX_RETRY_AFTER)
    );
    run_to_end(
        &mut exp,
        &p,
        &mut t,
        ms(10) + vigil_core::export::MAX_RETRY_AFTER,
        10,
    );
    assert_eq!(p.snapshot().spans_delivered, 1);
}

#[test]
fn trace_metadata_too_big_for_a_request_goes_by_patch_alone() {
    let (p, mut t, mut g) = (pipe(10), Scripted::default(), gen());
    let mut exp = Exp::new(settings(5, 10), "", 1);
    let mut trace = g.trace("big-metadata");
    trace
        .root()
        .set_metadata("notes", &"n".repeat(3000))
        .unwrap();
    p.submit(g.child(&trace));
    p.submit(trace.end(Timestamp::from_unix_nanos(9), SpanStatus::Ok));
    // Room for the spans (the root carries the metadata as its own), not
    // for the metadata a second time in the envelope.
    let mut buf = vec![0u8; 4500];
    t.now = ms(10);
    while exp.poll(ms(10), &p, &mut t, &mut buf) == Poll::Again {}
    let stats = p.snapshot();
    assert_eq!(stats.spans_delivered, 2, "{stats:?}");
    assert_eq!(stats.dropped_oversize, 0);
    let patch = t
        .sent
        .iter()
        .find(|s| s.kind == RequestKind::Patch)
        .unwrap();
    assert_eq!(
        patch.body["metadata"]["notes"].as_str().map(str::len),
        Some(3000)
    );
}

#[test]
fn spans_submitted_after_close_are_counted_as_dropped() {
    let (p, mut g) = (pipe(10), gen());
    p.submit(g.lone());
    p.close();
    assert_eq!(p.submit(g.lone()), None);
    let stats = p.snapshot();
    assert_eq!(stats.spans_ended, 2);
    assert_eq!(stats.spans_queued, 1);
    assert_eq!(stats.dropped_after_close, 1);
    assert_eq!(stats.dropped(), 1);
}

#[test]
fn spans_with_cut_payloads_are_counted_whether_sent_or_discarded() {
    let (p, mut t, mut g) = (pipe(100), Scripted::default(), gen());
    let mut exp = Exp::new(settings(10, 10_000), "", 1);
    let cut = |g: &mut Gen| {
        let mut s = g.lone();
        s.set_field_limit(8);
        let _ = s.set_input(&[("prompt", "far longer than eight bytes")]);
        assert!(!s.truncated().is_empty());
        s
    };
    p.submit(cut(&mut g));
    p.submit(g.lone());
    exp.request_flush();
    drive(&mut exp, &p, &mut t, ms(1));
    assert_eq!(p.snapshot().spans_delivered, 2);
    assert_eq!(p.snapshot().payloads_truncated, 1);

    p.submit(cut(&mut g));
    assert_eq!(p.discard_queued(), 1);
    assert_eq!(p.snapshot().payloads_truncated, 2);
}

#[test]
fn a_refused_submit_hands_the_span_back_and_counts_the_drop() {
    let (p, mut g) = (pipe(1), gen());
    assert_eq!(p.submit_with(|| g.lone()).ok(), Some(1));
    let refused = p.submit_with(|| g.lone()).unwrap_err();
    assert_eq!(refused().name(), "step", "the span is still the caller's");
    assert_eq!(p.snapshot().dropped_queue_full, 1);
    p.close();
    assert!(p.submit_with(|| g.lone()).is_err());
    assert_eq!(p.snapshot().dropped_after_close, 1);
}

#[test]
fn a_traces_queued_spans_stay_in_one_request_past_the_batch_size() {
    let (p, mut t, mut g) = (pipe(100), Scripted::default(), gen());
    let mut exp = Exp::new(settings(10, 60_000), "", 1);
    let small = g.trace("small");
    for _ in 0..3 {
        p.submit(g.child(&small));
    }
    p.submit(small.end(Timestamp::from_unix_nanos(9), SpanStatus::Ok));
    // A trace whose 10 children and root are queued across the batch's cut.
    let big = g.trace("big");
    for _ in 0..10 {
        p.submit(g.child(&big));
    }
    p.submit(big.end(Timestamp::from_unix_nanos(9), SpanStatus::Ok));
    drive(&mut exp, &p, &mut t, ms(1));
    let ingests: Vec<usize> = t
        .sent
        .iter()
        .filter(|s| s.kind == RequestKind::Ingest)
        .map(|s| s.body["spans"].as_array().unwrap().len())
        .collect();
    assert_eq!(ingests, [4, 11], "one request per trace");
    assert_eq!(p.snapshot().spans_delivered, 15);
}

/// Fails the first attempt of every ingest after the server stored it, and
/// answers look-ups from what it stored.
#[derive(Default)]
struct StoredThenLost {
    stored: Vec<String>,
    posts: usize,
    lookups: usize,
}

impl Transport for StoredThenLost {
    fn send(&mut self, r: &Request<'_>) -> Outcome {
        if r.kind == RequestKind::Patch {
            return Outcome::Delivered;
        }
        self.posts += 1;
        let body = std::str::from_utf8(r.body).unwrap().to_owned();
        if self.stored.contains(&body) {
            // Duplicate span ids: the whole request fails.
            return Outcome::Retry {
                after: None,
                reason: RetryReason::Failed,
            };
        }
        self.stored.push(body);
        // Stored, but the answer is lost (a timeout).
        Outcome::Retry {
            after: None,
            reason: RetryReason::Failed,
        }
    }

    fn lookup(&mut self, r: &Request<'_>) -> vigil_core::transport::Lookup {
        self.lookups += 1;
        let body = std::str::from_utf8(r.body).unwrap();
        if self.stored.iter().any(|b| b == body) {
            vigil_core::transport::Lookup::Stored
        } else {
            vigil_core::transport::Lookup::Missing
        }
    }
}

#[test]
fn a_stored_request_whose_answer_was_lost_is_found_and_counted_delivered() {
    let (p, mut g) = (pipe(100), gen());
    let mut t = StoredThenLost::default();
    let mut exp = Exp::new(settings(10, 60_000), "", 1);
    for _ in 0..3 {
        let trace = g.trace("t");
        p.submit(g.child(&trace));
        p.submit(trace.end(Timestamp::from_unix_nanos(9), SpanStatus::Ok));
    }
    exp.request_flush();
    let mut buf = vec![0u8; 64 * 1024];
    let mut now = ms(1);
    for _ in 0..100 {
        match exp.poll(now, &p, &mut t, &mut buf) {
            Poll::Again => {}
            Poll::Wait(at) | Poll::Idle(at) => {
                if p.is_empty() && exp.is_idle() {
                    break;
                }
                now = at;
            }
        }
    }
    let s = p.snapshot();
    assert_eq!((s.spans_delivered, s.dropped()), (6, 0), "{s:?}");
    assert_eq!(s.found_stored, 3);
    assert_eq!(s.patches_delivered, 3);
    assert_eq!((t.posts, t.lookups), (3, 3), "each sent once, asked once");
}

/// Takes many traces per request, as an OTLP backend does.
#[derive(Default)]
struct Many {
    sent: Vec<(RequestKind, Value)>,
}

impl Transport for Many {
    fn send(&mut self, r: &Request<'_>) -> Outcome {
        self.sent
            .push((r.kind, serde_json::from_slice(r.body).unwrap()));
        Outcome::Delivered
    }
    fn takes_many_traces(&self) -> bool {
        true
    }
}

#[test]
fn a_transport_that_takes_many_traces_gets_a_batch_per_request_and_no_patch() {
    let (p, mut g) = (pipe(100), gen());
    let mut t = Many::default();
    let mut exp = Exp::new(settings(100, 10), "proj", 1);
    exp.set_trace_metadata(r#""release":"1.2""#).unwrap();
    for _ in 0..3 {
        let tr = g.trace("t");
        p.submit(g.child(&tr));
        p.submit(g.child(&tr));
        p.submit(tr.end(Timestamp::from_unix_nanos(4), SpanStatus::Error));
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut now = ms(10);
    for _ in 0..100 {
        match exp.poll(now, &p, &mut t, &mut buf) {
            Poll::Again => {}
            Poll::Idle(_) if p.is_empty() && exp.is_idle() => break,
            Poll::Wait(at) | Poll::Idle(at) => now = at,
        }
    }
    assert_eq!(t.sent.len(), 1, "one request for three traces");
    let (kind, body) = &t.sent[0];
    assert_eq!(*kind, RequestKind::Ingest);
    let spans = body["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 9);
    let traces: std::collections::HashSet<&str> = spans
        .iter()
        .map(|s| s["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(traces.len(), 3);
    assert!(body.get("trace_name").is_none());
    assert_eq!(
        body["trace_metadata"],
        serde_json::json!({ "release": "1.2" })
    );
    let stats = p.snapshot();
    assert_eq!((stats.spans_delivered, stats.patches_delivered), (9, 0));
    assert_eq!(p.outstanding(), 0);
}
