//! Tail sampling: each rule, the hold timeout, the hold bound and the
//! counters, driven by a fake clock through the export state machine.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::check_ingest;
use vigil_core::queue::Slot;
use vigil_core::sample::{HeldTrace, SampleRate, TailRules, TailSampler, TOTALS_KEY};
use vigil_core::{
    transport::RequestKind, ExportSettings, Exporter, IdGenerator, Outcome, Poll, Request, Span,
    SpanKind, SpanQueue, SpanStatus, Timestamp, Trace, TraceId, Transport,
};

type Text = String;
type Pipe = SpanQueue<Text, Box<[Slot<Span<Text>>]>>;
type Exp = Exporter<Text, Vec<Span<Text>>>;
type Sampler = TailSampler<Text, Vec<Span<Text>>, Vec<HeldTrace>>;

/// Spans received per trace, by name.
#[derive(Default)]
struct Server {
    spans: BTreeMap<TraceId, Vec<String>>,
    patches: usize,
}

impl Transport for Server {
    fn send(&mut self, r: &Request<'_>) -> Outcome {
        match r.kind {
            RequestKind::Ingest => {
                let body = check_ingest(r.body);
                for span in body["spans"].as_array().unwrap() {
                    let name = span["name"].as_str().unwrap().to_owned();
                    self.spans.entry(r.trace_id).or_default().push(name);
                }
            }
            RequestKind::Patch => self.patches += 1,
        }
        Outcome::Delivered
    }
}

fn exporter() -> Exp {
    let settings = ExportSettings {
        batch_size: 50,
        flush_interval: Duration::from_millis(100),
        ..ExportSettings::default()
    };
    Exp::new(settings, "p", 1)
}

fn rules() -> TailRules {
    TailRules {
        rate: SampleRate::new(0.0),
        hold_timeout: Duration::from_secs(10),
        max_held: 100,
        ..TailRules::default()
    }
}

/// A queue, an exporter polling it through a sampler, the server it sends
/// to, and the ids of the spans made.
struct Run {
    p: Pipe,
    sampler: Sampler,
    exp: Exp,
    server: Server,
    g: Gen,
}

impl Run {
    fn new(capacity: usize, rules: TailRules) -> Self {
        Run {
            p: SpanQueue::with_capacity(capacity),
            sampler: Sampler::new(rules),
            exp: exporter(),
            server: Server::default(),
            g: Gen::new(),
        }
    }

    /// Polls the exporter through the sampler at `ms` until it must wait.
    fn drive(&mut self, ms: u64) {
        let now = Duration::from_millis(ms);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let view = self.sampler.over(&self.p, now);
            if self.exp.poll(now, &view, &mut self.server, &mut buf) != Poll::Again {
                return;
            }
        }
    }

    /// Polls with a flush asked for, at `ms`.
    fn flush(&mut self, ms: u64) {
        self.exp.request_flush();
        self.drive(ms);
    }
}

fn ns(ms: u64) -> Timestamp {
    Timestamp::from_unix_nanos(1_795_514_400_000_000_000 + ms * 1_000_000)
}

struct Gen(IdGenerator);

impl Gen {
    fn new() -> Self {
        Gen(IdGenerator::from_seed(5))
    }
    fn trace(&mut self) -> Trace<Text> {
        Trace::new(self.0.trace_id(), self.0.span_id(), "root", ns(0))
    }
    fn child(&mut self, t: &Trace<Text>, status: SpanStatus) -> Span<Text> {
        let mut s = t.child(self.0.span_id(), "step", SpanKind::Tool, ns(1));
        s.end(ns(2), status);
        s
    }
    /// A trace of `children` spans and its root, ended after `ms`.
    fn whole(&mut self, p: &Pipe, children: usize, failed: bool, ms: u64) -> TraceId {
        let t = self.trace();
        for i in 0..children {
            let status = if failed && i == 0 {
                SpanStatus::Error
            } else {
                SpanStatus::Ok
            };
            p.submit(self.child(&t, status)).unwrap();
        }
        let id = t.id();
        p.submit(t.end(ns(ms), SpanStatus::Ok)).unwrap();
        id
    }
}

#[test]
fn keep_errors_keeps_failing_traces_whole_and_leaves_the_rest_out() {
    let mut r = Run::new(
        1000,
        TailRules {
            keep_errors: true,
            ..rules()
        },
    );
    let failed = r.g.whole(&r.p, 3, true, 5);
    let clean = r.g.whole(&r.p, 3, false, 5);
    r.flush(0);
    assert_eq!(r.server.spans.len(), 1);
    assert_eq!(
        r.server.spans[&failed].len(),
        4,
        "three children and the root"
    );
    assert!(!r.server.spans.contains_key(&clean));
    assert_eq!(r.server.patches, 1, "the kept trace's status is set");
    let s = r.p.snapshot();
    assert_eq!((s.traces_kept_for_errors, s.traces_sampled_out), (1, 1));
    assert_eq!((s.spans_delivered, s.spans_sampled_out), (4, 4));
    assert_eq!((s.traces_decided_early, s.in_flight()), (0, 0));
    assert_eq!(r.p.outstanding(), 0, "every place freed");
}

#[test]
fn keep_slower_than_keeps_traces_whose_root_took_longer() {
    let mut r = Run::new(
        1000,
        TailRules {
            keep_slower_than: Some(Duration::from_millis(500)),
            ..rules()
        },
    );
    let slow = r.g.whole(&r.p, 2, false, 501);
    let quick = r.g.whole(&r.p, 2, false, 500);
    r.drive(200);
    assert_eq!(r.server.spans[&slow].len(), 3);
    assert!(
        !r.server.spans.contains_key(&quick),
        "not longer than the limit"
    );
    let s = r.p.snapshot();
    assert_eq!((s.traces_kept_for_latency, s.traces_sampled_out), (1, 1));
}

#[test]
fn keep_costlier_than_reads_the_roots_totals() {
    let mut r = Run::new(
        1000,
        TailRules {
            keep_costlier_than_usd: Some(0.05),
            ..rules()
        },
    );
    let mut ids = Vec::new();
    for (usd, nested_decoy) in [(0.06, false), (0.05, false), (0.0, true)] {
        let mut t = r.g.trace();
        let child = r.g.child(&t, SpanStatus::Ok);
        r.p.submit(child).unwrap();
        let root = t.root();
        root.set_metadata("user", &"ada").unwrap();
        if nested_decoy {
            // Only the root's own top-level totals count.
            root.set_metadata("note", &BTreeMap::from([(TOTALS_KEY, 9.0)]))
                .unwrap();
        }
        root.set_metadata(
            TOTALS_KEY,
            &BTreeMap::from([("calls", 2.0), ("total_usd", usd)]),
        )
        .unwrap();
        ids.push(t.id());
        r.p.submit(t.end(ns(3), SpanStatus::Ok)).unwrap();
    }
    r.flush(0);
    assert_eq!(r.server.spans.keys().collect::<Vec<_>>(), [&ids[0]]);
    let s = r.p.snapshot();
    assert_eq!((s.traces_kept_for_cost, s.traces_sampled_out), (1, 2));
}

#[test]
fn the_rest_are_kept_at_the_sample_rate_by_trace_id() {
    let rate = SampleRate::new(0.3);
    let rules = TailRules {
        keep_errors: true,
        rate,
        ..rules()
    };
    let mut r = Run::new(2000, rules);
    let mut expected = Vec::new();
    for i in 0..300 {
        let failed = i % 10 == 0;
        let id = r.g.whole(&r.p, 2, failed, 1);
        if failed || rate.keeps(id) {
            expected.push(id);
        }
        if i % 50 == 49 {
            r.drive(i);
        }
    }
    r.flush(1000);
    expected.sort();
    assert_eq!(r.server.spans.keys().copied().collect::<Vec<_>>(), expected);
    assert!(r.server.spans.values().all(|spans| spans.len() == 3));
    let s = r.p.snapshot();
    let by_rate = s.traces_kept_by_rate;
    assert!((60..=120).contains(&by_rate), "about 30% of 270: {by_rate}");
    assert_eq!(s.traces_kept_for_errors, 30);
    assert_eq!(
        s.traces_kept_for_errors + by_rate + s.traces_sampled_out,
        300
    );
    assert_eq!(s.spans_delivered + s.spans_sampled_out, 900);
    assert_eq!(s.spans_sampled_out, 3 * s.traces_sampled_out);
}

#[test]
fn spans_wait_for_their_root_and_a_trace_without_one_is_decided_at_the_timeout() {
    let mut r = Run::new(
        1000,
        TailRules {
            keep_errors: true,
            ..rules()
        },
    );
    let failing = r.g.trace();
    let quiet = r.g.trace();
    let (failing_id, quiet_id) = (failing.id(), quiet.id());
    r.p.submit(r.g.child(&failing, SpanStatus::Error)).unwrap();
    r.p.submit(r.g.child(&quiet, SpanStatus::Ok)).unwrap();
    r.p.submit(r.g.child(&quiet, SpanStatus::Ok)).unwrap();
    r.drive(500);
    assert!(r.server.spans.is_empty(), "held for their roots");
    assert_eq!(r.sampler.held(), 3);
    assert_eq!(r.p.outstanding(), 3, "held spans keep their places");
    assert_eq!(
        r.sampler.next_deadline(),
        Some(Duration::from_millis(10_500))
    );
    r.drive(10_499);
    assert!(r.server.spans.is_empty());
    assert_eq!(r.sampler.held(), 3);
    r.drive(10_500);
    assert_eq!(
        r.sampler.held(),
        1,
        "decided; the kept span waits for the next batch"
    );
    assert_eq!(r.sampler.next_deadline(), None);
    r.drive(10_600);
    assert_eq!(r.server.spans[&failing_id].len(), 1, "kept for its error");
    assert!(!r.server.spans.contains_key(&quiet_id));
    let s = r.p.snapshot();
    assert_eq!((s.traces_decided_early, s.spans_decided_early), (2, 3));
    assert_eq!((s.traces_kept_for_errors, s.traces_sampled_out), (1, 1));
    assert_eq!((r.sampler.held(), r.p.outstanding()), (0, 0));

    // The root, coming after the decision, follows it.
    r.p.submit(failing.end(ns(3), SpanStatus::Ok)).unwrap();
    r.p.submit(quiet.end(ns(3), SpanStatus::Ok)).unwrap();
    r.flush(11000);
    assert_eq!(r.server.spans[&failing_id].len(), 2);
    assert!(!r.server.spans.contains_key(&quiet_id));
    let s = r.p.snapshot();
    assert_eq!((s.spans_delivered, s.spans_sampled_out), (2, 3));
    assert_eq!(s.traces_decided_early, 2, "a trace is decided once");
}

#[test]
fn a_child_ending_after_its_root_follows_the_decision() {
    let mut r = Run::new(
        1000,
        TailRules {
            keep_errors: true,
            ..rules()
        },
    );
    let (failed, clean) = (r.g.trace(), r.g.trace());
    let late_kept = r.g.child(&failed, SpanStatus::Ok);
    let late_dropped = r.g.child(&clean, SpanStatus::Error);
    r.p.submit(r.g.child(&failed, SpanStatus::Error)).unwrap();
    let (failed_id, clean_id) = (failed.id(), clean.id());
    r.p.submit(failed.end(ns(3), SpanStatus::Ok)).unwrap();
    r.p.submit(clean.end(ns(3), SpanStatus::Ok)).unwrap();
    r.drive(200);
    r.p.submit(late_kept).unwrap();
    r.p.submit(late_dropped).unwrap();
    r.flush(400);
    assert_eq!(r.server.spans[&failed_id].len(), 3);
    assert!(
        !r.server.spans.contains_key(&clean_id),
        "decided at its root: a later error does not bring back the rest"
    );
    assert_eq!(r.p.snapshot().spans_sampled_out, 2);
}

#[test]
fn past_the_most_spans_held_the_oldest_trace_is_decided_early() {
    let mut r = Run::new(
        20,
        TailRules {
            keep_errors: true,
            max_held: 4,
            ..rules()
        },
    );
    let (old, young) = (r.g.trace(), r.g.trace());
    r.p.submit(r.g.child(&old, SpanStatus::Error)).unwrap();
    for _ in 0..3 {
        r.p.submit(r.g.child(&old, SpanStatus::Ok)).unwrap();
    }
    r.drive(200);
    assert_eq!((r.sampler.held(), r.p.outstanding()), (4, 4));
    // The queue's bound covers what is held: 16 places are left.
    for _ in 0..16 {
        assert!(r.p.submit(r.g.child(&young, SpanStatus::Ok)).is_some());
    }
    assert!(
        r.p.submit(r.g.child(&young, SpanStatus::Ok)).is_none(),
        "full"
    );
    assert_eq!(r.p.snapshot().dropped_queue_full, 1);
    r.drive(400);
    assert_eq!(
        r.server.spans[&old.id()].len(),
        4,
        "decided early: kept for its error"
    );
    assert!(!r.server.spans.contains_key(&young.id()));
    let s = r.p.snapshot();
    // Old, for young's first span; then young, for its fifth, which
    // follows the decision with the rest.
    assert_eq!((s.traces_decided_early, s.spans_decided_early), (2, 8));
    assert_eq!((s.traces_kept_for_errors, s.traces_sampled_out), (1, 1));
    assert_eq!(s.spans_sampled_out, 16);
    assert_eq!((r.sampler.held(), r.p.outstanding()), (0, 0));
}

#[test]
fn a_flush_takes_in_what_is_queued_then_decides_what_is_still_held() {
    let mut r = Run::new(
        100,
        TailRules {
            keep_errors: true,
            ..rules()
        },
    );
    let (open, ending) = (r.g.trace(), r.g.trace());
    let ending_id = ending.id();
    r.p.submit(r.g.child(&open, SpanStatus::Ok)).unwrap();
    r.p.submit(r.g.child(&ending, SpanStatus::Ok)).unwrap();
    r.drive(200);
    assert_eq!(r.sampler.held(), 2);
    // The failure and the root come just before the flush: they decide.
    r.p.submit(r.g.child(&ending, SpanStatus::Error)).unwrap();
    r.p.submit(ending.end(ns(3), SpanStatus::Ok)).unwrap();
    r.sampler.set_flushing(true);
    r.flush(300);
    assert_eq!((r.sampler.held(), r.p.outstanding()), (0, 0));
    assert_eq!(
        r.server.spans[&ending_id].len(),
        3,
        "kept whole for its error"
    );
    assert!(!r.server.spans.contains_key(&open.id()));
    let s = r.p.snapshot();
    assert_eq!((s.traces_kept_for_errors, s.traces_sampled_out), (1, 1));
    assert_eq!(
        (s.traces_decided_early, s.spans_decided_early),
        (1, 1),
        "the open one"
    );
    r.sampler.set_flushing(false);
    let held = r.g.trace();
    r.p.submit(r.g.child(&held, SpanStatus::Ok)).unwrap();
    r.drive(400);
    assert_eq!(r.sampler.held(), 1, "held again once the flush is over");
}

#[test]
fn with_no_rule_nothing_is_held() {
    let mut r = Run::new(
        100,
        TailRules {
            rate: SampleRate::new(0.0),
            ..TailRules::default()
        },
    );
    assert!(!r.sampler.rules().any());
    let open = r.g.trace();
    r.p.submit(r.g.child(&open, SpanStatus::Ok)).unwrap();
    r.drive(200);
    assert_eq!(r.sampler.held(), 0);
    assert_eq!(r.server.spans[&open.id()].len(), 1, "head sampling decided");
    assert_eq!(r.p.snapshot().spans_sampled_out, 0);
}

#[test]
fn a_large_trace_is_kept_whole_across_batches_with_its_root_last() {
    let mut r = Run::new(
        1000,
        TailRules {
            keep_errors: true,
            max_held: 500,
            ..rules()
        },
    );
    let id = r.g.whole(&r.p, 120, true, 5);
    r.flush(200);
    let names = &r.server.spans[&id];
    assert_eq!(names.len(), 121);
    assert_eq!(names.last().map(String::as_str), Some("root"));
    assert_eq!(r.p.snapshot().in_flight(), 0);
}

#[test]
fn spans_held_at_the_end_are_counted_as_dropped_at_shutdown() {
    let mut r = Run::new(
        100,
        TailRules {
            keep_errors: true,
            ..rules()
        },
    );
    let open = r.g.trace();
    r.p.submit(r.g.child(&open, SpanStatus::Ok)).unwrap();
    r.p.submit(r.g.child(&open, SpanStatus::Ok)).unwrap();
    r.drive(200);
    assert_eq!(r.sampler.held(), 2);
    // A server that never answered: shutdown gives up on everything.
    r.p.submit(r.g.child(&open, SpanStatus::Ok)).unwrap();
    let view = r.sampler.over(&r.p, Duration::from_millis(300));
    let mut buf = vec![0u8; 4096];
    let abandoned = r
        .exp
        .abandon(Duration::from_millis(300), &view, &mut r.server, &mut buf);
    assert_eq!(abandoned.spans + view.abandon(), 3);
    let s = r.p.snapshot();
    assert_eq!((s.dropped_at_shutdown, s.in_flight()), (3, 0));
    assert_eq!((r.sampler.held(), r.p.outstanding()), (0, 0));
}

#[test]
fn the_places_of_spans_left_out_are_freed_though_nothing_is_kept() {
    // Nothing kept at all: no batch ever forms to free places with.
    let mut r = Run::new(
        20,
        TailRules {
            keep_errors: true,
            ..rules()
        },
    );
    for _ in 0..5 {
        r.g.whole(&r.p, 3, false, 1);
    }
    r.drive(200);
    let s = r.p.snapshot();
    assert_eq!((s.spans_sampled_out, s.spans_delivered), (20, 0));
    assert_eq!(r.p.outstanding(), 0, "every place free again");
    for _ in 0..5 {
        r.g.whole(&r.p, 3, false, 1);
    }
    assert_eq!(r.p.snapshot().dropped_queue_full, 0, "the queue takes them");
}
