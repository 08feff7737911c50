//! The export state machine with a transport that spools: what it gives
//! up on, what it does while the server is unreachable, at shutdown, and
//! replays, on a fake clock.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use vigil_core::export::{Deferred, Replay, Settled};
use vigil_core::queue::Slot;
use vigil_core::transport::{Lookup, RequestKind};
use vigil_core::{
    ExportSettings, Exporter, IdGenerator, Outcome, Poll, Request, RetryReason, Span, SpanKind,
    SpanQueue, SpanStatus, Timestamp, Trace, TraceId, Transport,
};

type Text = String;
type Pipe = SpanQueue<Text, Box<[Slot<Span<Text>>]>>;
type Exp = Exporter<Text, Vec<Span<Text>>, Vec<Deferred<Text>>>;

/// A kept request, as a spool would hold it.
#[derive(Clone, Debug)]
struct Kept {
    kind: RequestKind,
    trace_id: TraceId,
    body: String,
    spans: usize,
    attempts: u32,
}

/// Answers from a script (then `Delivered`), spooling what it is given
/// while `room` lasts.
#[derive(Default)]
struct Spooling {
    script: VecDeque<Outcome>,
    sent: Vec<(RequestKind, TraceId)>,
    lookups: usize,
    kept: Vec<Kept>,
    room: usize,
}

impl Transport for Spooling {
    fn send(&mut self, r: &Request<'_>) -> Outcome {
        self.sent.push((r.kind, r.trace_id));
        self.script.pop_front().unwrap_or(Outcome::Delivered)
    }
    fn lookup(&mut self, _: &Request<'_>) -> Lookup {
        self.lookups += 1;
        Lookup::Missing
    }
    fn spools(&self) -> bool {
        true
    }
    fn spool(&mut self, r: &Request<'_>, attempts: u32) -> bool {
        if self.kept.len() >= self.room {
            return false;
        }
        self.kept.push(Kept {
            kind: r.kind,
            trace_id: r.trace_id,
            body: String::from_utf8(r.body.to_vec()).unwrap(),
            spans: r.spans,
            attempts,
        });
        true
    }
}

fn transport(room: usize) -> Spooling {
    Spooling {
        room,
        ..Spooling::default()
    }
}

fn exporter() -> Exp {
    let settings = ExportSettings {
        batch_size: 10,
        flush_interval: Duration::from_millis(100),
        max_attempts: 3,
        backoff_base: Duration::from_millis(10),
        ..ExportSettings::default()
    };
    Exp::new(settings, "p", 1)
}

fn drive(exp: &mut Exp, p: &Pipe, t: &mut Spooling, ms: u64) -> Poll {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match exp.poll(Duration::from_millis(ms), p, t, &mut buf) {
            Poll::Again => continue,
            other => return other,
        }
    }
}

/// Polls at every time the exporter asks for, up to `until` ms.
fn run(exp: &mut Exp, p: &Pipe, t: &mut Spooling, until: u64) {
    let mut now = 0;
    while now <= until {
        let next = match drive(exp, p, t, now) {
            Poll::Wait(at) | Poll::Idle(at) => at.as_millis() as u64,
            Poll::Again => unreachable!(),
        };
        now = next.max(now + 1);
    }
}

/// A trace of one child and its root, queued.
fn trace(p: &Pipe, ids: &mut IdGenerator) -> TraceId {
    let t: Trace<Text> = Trace::new(
        ids.trace_id(),
        ids.span_id(),
        "job",
        Timestamp::from_unix_nanos(1),
    );
    let mut child = t.child(
        ids.span_id(),
        "step",
        SpanKind::Tool,
        Timestamp::from_unix_nanos(2),
    );
    child.end(Timestamp::from_unix_nanos(3), SpanStatus::Ok);
    p.submit(child).unwrap();
    let id = t.id();
    p.submit(t.end(Timestamp::from_unix_nanos(4), SpanStatus::Ok))
        .unwrap();
    id
}

const FAILED: Outcome = Outcome::Retry {
    after: None,
    reason: RetryReason::Failed,
};
const UNREACHABLE: Outcome = Outcome::Retry {
    after: None,
    reason: RetryReason::Unreachable,
};

#[test]
fn a_request_whose_attempts_run_out_is_spooled_not_dropped() {
    let p: Pipe = SpanQueue::with_capacity(100);
    let mut ids = IdGenerator::from_seed(1);
    let (mut exp, mut t) = (exporter(), transport(10));
    let id = trace(&p, &mut ids);
    t.script.extend([FAILED, FAILED, FAILED]);
    exp.request_flush();
    run(&mut exp, &p, &mut t, 5_000);
    let s = p.snapshot();
    assert_eq!((s.spans_spooled, s.dropped_after_retries), (2, 0));
    assert_eq!(s.in_flight(), 0);
    let kept = &t.kept[0];
    assert_eq!(
        (kept.kind, kept.trace_id, kept.spans, kept.attempts),
        (RequestKind::Ingest, id, 2, 3)
    );
    assert!(kept.body.contains(r#""trace_name":"job""#), "{}", kept.body);
    // Its status was deferred behind it, and follows it into the spool.
    assert_eq!(s.patches_spooled, 1);
    assert_eq!(t.kept[1].kind, RequestKind::Patch);
}

#[test]
fn with_no_room_to_defer_a_request_retried_in_place_is_spooled_with_its_status() {
    let p: Pipe = SpanQueue::with_capacity(100);
    let mut ids = IdGenerator::from_seed(4);
    let mut exp: Exporter<Text, Vec<Span<Text>>, heapless::Vec<Deferred<Text>, 0>> =
        Exporter::new(*exporter().settings(), "p", 1);
    let mut t = transport(10);
    trace(&p, &mut ids);
    t.script.extend([FAILED, FAILED, FAILED]);
    exp.request_flush();
    let mut buf = vec![0u8; 64 * 1024];
    let mut now = Duration::ZERO;
    for _ in 0..100 {
        match exp.poll(now, &p, &mut t, &mut buf) {
            Poll::Again => {}
            Poll::Wait(at) | Poll::Idle(at) => now = at.max(now + Duration::from_millis(1)),
        }
    }
    let kinds: Vec<_> = t.kept.iter().map(|k| k.kind).collect();
    assert_eq!(kinds, [RequestKind::Ingest, RequestKind::Patch]);
    assert_eq!(
        t.sent.len(),
        3,
        "the status was not sent ahead of its spans"
    );
    let s = p.snapshot();
    assert_eq!(
        (s.spans_spooled, s.patches_spooled, s.in_flight()),
        (2, 1, 0)
    );
}

#[test]
fn while_the_server_is_unreachable_batches_go_to_the_spool_unsent() {
    let p: Pipe = SpanQueue::with_capacity(100);
    let mut ids = IdGenerator::from_seed(2);
    let (mut exp, mut t) = (exporter(), transport(100));
    trace(&p, &mut ids);
    t.script.push_back(UNREACHABLE);
    drive(&mut exp, &p, &mut t, 100);
    assert!(exp.is_unreachable());
    let sent = t.sent.len();
    // More spans during the outage: to the spool, not to the network.
    for _ in 0..5 {
        trace(&p, &mut ids);
    }
    exp.request_flush();
    drive(&mut exp, &p, &mut t, 100);
    assert_eq!(t.sent.len(), sent, "nothing sent while away");
    let s = p.snapshot();
    assert_eq!((s.spans_spooled, s.patches_spooled), (12, 6));
    assert!(t.kept.iter().all(|k| k.attempts == 0), "never attempted");
    assert_eq!(p.outstanding(), 0, "the queue is free again");
}

#[test]
fn at_shutdown_what_is_deferred_batched_and_queued_is_spooled_while_it_takes_them() {
    let p: Pipe = SpanQueue::with_capacity(100);
    let mut ids = IdGenerator::from_seed(3);
    let (mut exp, mut t) = (exporter(), transport(4));
    trace(&p, &mut ids);
    t.script.push_back(FAILED);
    drive(&mut exp, &p, &mut t, 100);
    assert_eq!(exp.deferred(), 2, "the ingest and its status wait");
    for _ in 0..3 {
        trace(&p, &mut ids);
    }
    let mut buf = vec![0u8; 64 * 1024];
    let abandoned = exp.abandon(Duration::from_millis(150), &p, &mut t, &mut buf);
    // Room for four: the deferred two first, then the next trace's two.
    assert_eq!(t.kept.len(), 4);
    assert_eq!(t.kept[0].attempts, 1);
    let s = p.snapshot();
    assert_eq!((s.spans_spooled, s.patches_spooled), (4, 2));
    assert_eq!(abandoned.spans, 4, "the rest is dropped and counted");
    assert_eq!(s.dropped_at_shutdown, 4);
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn replays_are_sent_and_settled_and_a_failed_one_stays_for_later() {
    let p: Pipe = SpanQueue::with_capacity(100);
    let (mut exp, mut t) = (exporter(), transport(0));
    let trace_id = TraceId::from_bytes([9; 16]);
    let replay = |ticket, kind, attempts| Replay {
        kind,
        trace_id,
        body: "{}",
        spans: if kind == RequestKind::Ingest { 2 } else { 0 },
        attempts,
        ticket,
    };
    assert!(exp.adopt(replay(1, RequestKind::Ingest, 2)));
    assert!(exp.adopt(replay(2, RequestKind::Patch, 0)));
    assert_eq!(exp.replaying(), 2);
    drive(&mut exp, &p, &mut t, 10);
    // The ingest (asked about first: it was attempted) before its status.
    assert_eq!(t.lookups, 1);
    assert_eq!(
        t.sent,
        [
            (RequestKind::Ingest, trace_id),
            (RequestKind::Patch, trace_id)
        ]
    );
    assert_eq!(exp.take_settled(), Some((1, Settled::Done)));
    assert_eq!(exp.take_settled(), Some((2, Settled::Done)));
    let s = p.snapshot();
    assert_eq!(
        (s.spans_replayed, s.spans_delivered, s.patches_delivered),
        (2, 0, 1)
    );

    // Never attempted: not asked about before its first attempt (after a
    // failed one, it is). Failing three times: kept for later.
    assert!(exp.adopt(replay(3, RequestKind::Ingest, 0)));
    t.script.extend([FAILED, FAILED, FAILED]);
    drive(&mut exp, &p, &mut t, 20);
    assert_eq!(t.lookups, 1);
    run(&mut exp, &p, &mut t, 5_000);
    assert_eq!(t.lookups, 3);
    assert_eq!(exp.take_settled(), Some((3, Settled::Again)));
    let s = p.snapshot();
    assert_eq!(
        (s.spans_spooled, s.dropped_after_retries),
        (0, 0),
        "it is on disk already"
    );
    assert!(exp.is_idle());
}

#[test]
fn at_most_a_few_replays_are_in_flight() {
    let mut exp = exporter();
    let replay = |ticket| Replay {
        kind: RequestKind::Ingest,
        trace_id: TraceId::from_bytes([ticket as u8; 16]),
        body: "{}",
        spans: 1,
        attempts: 0,
        ticket,
    };
    let taken = (0..100).take_while(|&i| exp.adopt(replay(i))).count();
    assert_eq!(taken, vigil_core::export::MAX_REPLAYING);
}

#[test]
fn spooling_beside_a_deferred_request_waits_instead_of_spinning() {
    let p: Pipe = SpanQueue::with_capacity(100);
    let mut ids = IdGenerator::from_seed(5);
    let (mut exp, mut t) = (exporter(), transport(100));
    trace(&p, &mut ids);
    t.script.push_back(FAILED);
    exp.request_flush();
    drive(&mut exp, &p, &mut t, 0);
    assert!(exp.deferred() > 0);
    // The server is gone when the deferred request is due.
    t.script.extend([UNREACHABLE; 4]);
    drive(&mut exp, &p, &mut t, 1_000);
    assert!(exp.is_unreachable());
    trace(&p, &mut ids);
    for now in [1_001, 1_002] {
        match drive(&mut exp, &p, &mut t, now) {
            Poll::Wait(at) | Poll::Idle(at) => {
                assert!(
                    at > Duration::from_millis(now),
                    "asked to poll again at {at:?}, at {now} ms"
                )
            }
            Poll::Again => unreachable!(),
        }
    }
}

#[test]
fn a_replayed_status_waits_with_its_spans_when_their_replay_fails() {
    let p: Pipe = SpanQueue::with_capacity(100);
    let (mut exp, mut t) = (exporter(), transport(0));
    let trace_id = TraceId::from_bytes([4; 16]);
    let replay = |ticket, kind| Replay {
        kind,
        trace_id,
        body: "{}",
        spans: usize::from(kind == RequestKind::Ingest),
        attempts: 0,
        ticket,
    };
    assert!(exp.adopt(replay(1, RequestKind::Ingest)));
    assert!(exp.adopt(replay(2, RequestKind::Patch)));
    t.script.extend([FAILED, FAILED, FAILED]);
    run(&mut exp, &p, &mut t, 5_000);
    assert!(
        t.sent.iter().all(|(kind, _)| *kind == RequestKind::Ingest),
        "{:?}",
        t.sent
    );
    assert_eq!(exp.take_settled(), Some((1, Settled::Again)));
    assert_eq!(
        exp.take_settled(),
        Some((2, Settled::Again)),
        "unsent, for later"
    );
}

#[test]
fn a_status_the_spool_refuses_after_its_spans_is_sent_not_stuck() {
    let p: Pipe = SpanQueue::with_capacity(100);
    let mut ids = IdGenerator::from_seed(6);
    let mut exp: Exporter<Text, Vec<Span<Text>>, heapless::Vec<Deferred<Text>, 0>> =
        Exporter::new(*exporter().settings(), "p", 1);
    // Room for the spans, not for their status.
    let mut t = transport(1);
    trace(&p, &mut ids);
    let second = trace(&p, &mut ids);
    t.script.extend([FAILED, FAILED, FAILED]);
    exp.request_flush();
    let mut buf = vec![0u8; 64 * 1024];
    let mut now = Duration::ZERO;
    for _ in 0..200 {
        match exp.poll(now, &p, &mut t, &mut buf) {
            Poll::Again => {}
            Poll::Wait(at) | Poll::Idle(at) => now = at.max(now + Duration::from_millis(1)),
        }
    }
    assert_eq!(t.kept.len(), 1);
    assert!(
        t.sent.contains(&(RequestKind::Patch, t.kept[0].trace_id)),
        "sent instead"
    );
    assert!(
        t.sent.contains(&(RequestKind::Ingest, second)),
        "the next trace went on"
    );
    assert!(
        t.sent.contains(&(RequestKind::Patch, second)),
        "its status sent, not spooled"
    );
    assert_eq!(p.snapshot().in_flight(), 0);
}
