//! Model check of the queue: `RUSTFLAGS="--cfg loom" cargo test -p vigil-core --test loom --release`.
//!
//! loom explores every interleaving of producers racing a consumer that pops
//! and releases, and checks that each record is either popped exactly once or
//! handed back as dropped, that the capacity is never exceeded, that each
//! producer's records stay in order, and (through loom's `UnsafeCell`) that no
//! slot is ever read and written without a happens-before edge. The same for
//! a span queue's producers, which push into lanes of their own without
//! claiming tickets, count their starts there with plain stores, take places from a shared budget and hand
//! their lanes over, racing the exporter's release of places. Every role runs on a
//! spawned thread: loom checks races between spawned threads.

#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use vigil_core::queue::{Queue, Slot};
use vigil_core::{Span, SpanId, SpanKind, SpanQueue, SpanSource, Timestamp, TraceId};

type Q = Arc<Queue<u32, Box<[Slot<u32>]>>>;

/// Explores `f` with at most three preemptions per execution (unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise): enough to reach every ordering
/// of these few operations that matters, including a consumer popping what
/// a producer is still publishing, in seconds rather than hours.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// Pops `attempts` times, releasing what it gets; returns the records.
fn consumer(q: &Q, attempts: usize) -> thread::JoinHandle<Vec<u32>> {
    let q = q.clone();
    thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..attempts {
            match q.pop() {
                Some(v) => {
                    got.push(v);
                    q.release(1);
                }
                // Lets loom run the producers before the next attempt.
                None => thread::yield_now(),
            }
            assert!(q.outstanding() <= q.capacity());
        }
        got
    })
}

/// Pops and releases what is left once every thread has joined.
fn drain(q: &Q) -> Vec<u32> {
    std::iter::from_fn(|| {
        let v = q.pop()?;
        q.release(1);
        Some(v)
    })
    .collect()
}

fn producer(q: &Q, values: std::ops::Range<u32>) -> thread::JoinHandle<u32> {
    let q = q.clone();
    thread::spawn(move || values.filter(|v| q.push(*v).is_err()).count() as u32)
}

#[test]
fn two_producers_one_consumer() {
    model(|| {
        let q: Q = Arc::new(Queue::with_capacity(2));
        let c = consumer(&q, 2);
        let p1 = producer(&q, 0..2);
        let p2 = producer(&q, 10..11);
        let dropped = p1.join().unwrap() + p2.join().unwrap();
        let mut popped = c.join().unwrap();
        popped.extend(drain(&q));
        assert_eq!(popped.len() as u32 + dropped, 3);
        let mine: Vec<_> = popped.iter().filter(|v| **v < 10).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "FIFO per producer");
        assert_eq!(q.outstanding(), 0);
    });
}

#[test]
fn wraparound_reuses_slots_safely() {
    model(|| {
        let q: Q = Arc::new(Queue::with_capacity(2));
        let c = consumer(&q, 3);
        let p = producer(&q, 0..4);
        let dropped = p.join().unwrap();
        let mut got = c.join().unwrap();
        got.extend(drain(&q));
        assert_eq!(got.len() as u32 + dropped, 4);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    });
}

#[test]
fn a_preempted_producer_never_sees_a_false_full_queue() {
    // Two records, room for two: no push may fail, even when a producer's
    // view of the tail is older than the consumer's releases.
    model(|| {
        let q: Q = Arc::new(Queue::with_capacity(2));
        let c = consumer(&q, 2);
        let p1 = producer(&q, 0..1);
        let p2 = producer(&q, 10..11);
        assert_eq!(
            p1.join().unwrap() + p2.join().unwrap(),
            0,
            "nothing dropped"
        );
        let mut popped = c.join().unwrap();
        popped.extend(drain(&q));
        assert_eq!(popped.len(), 2);
    });
}

/// A span queue of several lanes, with room for two spans: a producer
/// takes its places one at a time.
type Spans = Arc<SpanQueue<Text, Box<[Slot<Span<Text>>]>>>;
type Text = heapless::String<8>;

/// A span whose id tells the order it was made in (`n` from 1).
fn span(n: u64) -> Span<Text> {
    let at = Timestamp::from_unix_nanos(n);
    let trace = TraceId::from_bytes([1; 16]);
    let id = SpanId::from_bytes(u128::from(n).to_be_bytes());
    Span::new(trace, id, None, "s", SpanKind::Tool, at)
}

fn order(span: &Span<Text>) -> u64 {
    u128::from_be_bytes(span.span_id().to_bytes()) as u64
}

/// Takes `attempts` times as the exporter does (pop, then release), and
/// checks the bound each time.
fn exporter(q: &Spans, attempts: usize) -> thread::JoinHandle<Vec<u64>> {
    let q = q.clone();
    thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..attempts {
            match q.pop() {
                Some(span) => {
                    got.push(order(&span));
                    q.release();
                }
                None => thread::yield_now(),
            }
            assert!(q.outstanding() <= 2);
        }
        got
    })
}

fn drain_spans(q: &Spans) -> Vec<u64> {
    let got = std::iter::from_fn(|| q.pop().map(|s| order(&s))).collect();
    q.release();
    got
}

/// Submits spans `values` through a producer of its own; returns how many
/// were refused.
fn span_producer(q: &Spans, values: std::ops::Range<u64>) -> thread::JoinHandle<u64> {
    let q = q.clone();
    thread::spawn(move || {
        let mut producer = SpanQueue::producer(&*q);
        values
            .filter(|n| producer.submit(span(*n)).is_none())
            .count() as u64
    })
}

#[test]
fn a_producer_in_a_lane_of_its_own_wraps_around_while_the_exporter_releases() {
    // The lane's only producer pushes without claiming tickets, through two
    // laps of the bound, while the exporter pops and releases.
    model(|| {
        let q: Spans = Arc::new(SpanQueue::with_capacity(2));
        let e = exporter(&q, 3);
        let p = span_producer(&q, 1..5);
        let refused = p.join().unwrap();
        let mut got = e.join().unwrap();
        got.extend(drain_spans(&q));
        assert_eq!(got.len() as u64 + refused, 4);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
        let stats = q.snapshot();
        assert_eq!(stats.spans_queued + stats.dropped_queue_full, 4);
        assert_eq!(q.outstanding(), 0);
    });
}

#[test]
fn producers_and_the_exporter_never_lose_nor_double_a_place() {
    // Two producers (a lane each) race the exporter for the two places.
    // Afterwards the whole bound is free again: no place was lost in a
    // producer's reserve or double-counted by a release.
    model(|| {
        let q: Spans = Arc::new(SpanQueue::with_capacity(2));
        let e = exporter(&q, 1);
        let p1 = span_producer(&q, 1..3);
        let p2 = span_producer(&q, 10..11);
        let refused = p1.join().unwrap() + p2.join().unwrap();
        let mut got = e.join().unwrap();
        got.extend(drain_spans(&q));
        assert_eq!(got.len() as u64 + refused, 3);
        assert_eq!(q.outstanding(), 0);
        assert!(q.submit(span(20)).is_some() && q.submit(span(21)).is_some());
        assert!(q.submit(span(22)).is_none(), "and no more than the bound");
    });
}

#[test]
fn a_lane_passes_to_its_next_owner_with_its_counts() {
    // One thread's producer lets go of its lane while another thread makes
    // one, which may take the same lane: the tail and the start counter
    // pass over through the lane claim, so no span or count is lost.
    model(|| {
        let q: Spans = Arc::new(SpanQueue::with_capacity(2));
        let handover = |n: u64| {
            let q = q.clone();
            thread::spawn(move || {
                let mut producer = SpanQueue::producer(&*q);
                producer.span_started();
                assert!(producer.submit(span(n)).is_some());
            })
        };
        let first = handover(1);
        let second = handover(2);
        first.join().unwrap();
        second.join().unwrap();
        let mut got = drain_spans(&q);
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert_eq!(q.snapshot().spans_started, 2);
    });
}
