//! A span queue of several lanes: one bound over all of them, lanes and
//! places held by producers and given back when they are dropped, the
//! exporter taking from every lane.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vigil_core::queue::Slot;
use vigil_core::{
    ExportSettings, Exporter, IdGenerator, Outcome, Poll, Producer, Request, Span, SpanKind,
    SpanQueue, SpanSource, Timestamp, Transport,
};

type Text = String;
type Pipe = SpanQueue<Text, Box<[Slot<Span<Text>>]>>;

fn span(ids: &mut IdGenerator) -> Span<Text> {
    let at = Timestamp::from_unix_nanos(1);
    Span::new(ids.trace_id(), ids.span_id(), None, "s", SpanKind::Tool, at)
}

/// Delivers everything, counting the spans it was sent.
#[derive(Default)]
struct Accepting {
    spans: usize,
}

impl Transport for Accepting {
    fn send(&mut self, r: &Request<'_>) -> Outcome {
        let body: serde_json::Value = serde_json::from_slice(r.body).unwrap();
        self.spans += body["spans"].as_array().map_or(0, Vec::len);
        Outcome::Delivered
    }
}

/// Runs an exporter until the pipeline is empty and nothing is held.
fn drain(p: &Pipe, t: &mut Accepting) {
    let settings = ExportSettings {
        batch_size: 3,
        ..ExportSettings::default()
    };
    let mut exp: Exporter<Text, Vec<Span<Text>>> = Exporter::new(settings, "", 1);
    exp.request_flush();
    let mut buf = vec![0; 1 << 16];
    for _ in 0..10_000 {
        let poll = exp.poll(Duration::from_secs(1), p, t, &mut buf);
        if matches!(poll, Poll::Idle(_)) && p.is_empty() && exp.is_idle() {
            return;
        }
    }
    panic!("the exporter did not drain the pipeline");
}

/// Submits a new span through `producer`.
fn submit(producer: &mut Producer<&Pipe>, ids: &mut IdGenerator) -> bool {
    producer.submit_with(|| span(ids)).is_ok()
}

#[test]
fn the_first_producers_own_lanes_and_the_rest_share_lane_0() {
    let p: Pipe = SpanQueue::with_capacity(100);
    let producers: Vec<_> = (0..5).map(|_| SpanQueue::producer(&p)).collect();
    let owned: Vec<bool> = producers.iter().map(Producer::owns_lane).collect();
    assert_eq!(owned, [true, true, true, false, false]);
    let mut producers = producers.into_iter();
    drop(producers.next());
    assert!(
        SpanQueue::producer(&p).owns_lane(),
        "a lane let go is taken again"
    );
    // A span queue of one queue has no lanes to own.
    let one: SpanQueue<Text, [Slot<Span<Text>>; 4]> = SpanQueue::new(Default::default());
    assert!(!SpanQueue::producer(&one).owns_lane());
}

#[test]
fn lanes_share_one_bound() {
    // 100 places: one place taken at a time, so none is held back.
    let (p, mut ids): (Pipe, _) = (SpanQueue::with_capacity(100), IdGenerator::from_seed(1));
    let mut producers: Vec<_> = (0..4).map(|_| SpanQueue::producer(&p)).collect();
    let mut accepted = 0;
    for i in 0..150 {
        accepted += usize::from(submit(&mut producers[i % 4], &mut ids));
    }
    assert_eq!(accepted, 100);
    assert_eq!(p.outstanding(), 100);
    let stats = p.snapshot();
    assert_eq!((stats.spans_queued, stats.dropped_queue_full), (100, 50));
}

#[test]
fn a_producer_holds_places_until_it_is_dropped() {
    // A producer takes 1 place per 256 of the bound at a time, at most 32:
    // 32 of 10,000 (4 of 1,024 under miri, where 10,000 take minutes).
    const CAPACITY: usize = if cfg!(miri) { 1_024 } else { 10_000 };
    const TAKEN: usize = if cfg!(miri) { 4 } else { 32 };
    let (p, mut ids): (Pipe, _) = (
        SpanQueue::with_capacity(CAPACITY),
        IdGenerator::from_seed(2),
    );
    let mut producer = SpanQueue::producer(&p);
    assert!(submit(&mut producer, &mut ids));
    assert_eq!(producer.places(), TAKEN - 1);
    let mut others = 0;
    while p.submit_with(|| span(&mut ids)).is_ok() {
        others += 1;
    }
    assert_eq!(
        others,
        CAPACITY - TAKEN,
        "the producer's places are not free for others"
    );
    drop(producer);
    while p.submit_with(|| span(&mut ids)).is_ok() {
        others += 1;
    }
    assert_eq!(others, CAPACITY - 1, "given back, they are");
    assert_eq!(p.outstanding(), CAPACITY);
}

#[test]
fn starts_are_counted_in_every_lane_and_kept_when_a_lane_changes_hands() {
    const UNIT: usize = if cfg!(miri) { 10 } else { 1_000 };
    let p: Pipe = SpanQueue::with_capacity(100);
    std::thread::scope(|s| {
        for n in 1..=6 {
            let p = &p;
            s.spawn(move || {
                for round in 0..3 {
                    // A new producer each round: lanes change hands.
                    let producer = SpanQueue::producer(p);
                    for _ in 0..n * UNIT + round {
                        producer.span_started();
                    }
                }
            });
        }
    });
    p.span_started();
    let made: u64 = (1..=6).map(|n| 3 * n * UNIT as u64 + 3).sum::<u64>() + 1;
    assert_eq!(p.snapshot().spans_started, made);
}

#[test]
fn the_exporter_takes_from_every_lane_and_frees_their_places() {
    let (p, mut ids): (Pipe, _) = (SpanQueue::with_capacity(8), IdGenerator::from_seed(3));
    let mut producers: Vec<_> = (0..4).map(|_| SpanQueue::producer(&p)).collect();
    for producer in &mut producers {
        for _ in 0..2 {
            assert!(submit(producer, &mut ids));
        }
    }
    assert!(p.submit_with(|| span(&mut ids)).is_err(), "full");
    let mark = p.mark();
    assert!(!p.reached(&mark));
    let mut t = Accepting::default();
    drain(&p, &mut t);
    assert_eq!(t.spans, 8);
    assert!(p.reached(&mark));
    assert_eq!((p.outstanding(), p.snapshot().spans_delivered), (0, 8));
    // Every place is free again, in any lane.
    for _ in 0..8 {
        assert!(submit(&mut producers[3], &mut ids));
    }
    assert!(!p.reached(&p.mark()), "later spans are behind later marks");
    assert!(p.reached(&mark), "and not behind earlier ones");
}

#[test]
fn threads_in_lanes_never_exceed_the_bound_nor_lose_a_place() {
    // Under miri, few enough to run in seconds, into a bound small enough to fill.
    const CAPACITY: usize = if cfg!(miri) { 16 } else { 1_000 };
    const PER_THREAD: usize = if cfg!(miri) { 200 } else { 50_000 };
    const THREADS: usize = 5; // three in lanes of their own, two in lane 0
    let p: Pipe = SpanQueue::with_capacity(CAPACITY);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let producers: Vec<_> = (0..THREADS)
            .map(|n| {
                let p = &p;
                s.spawn(move || {
                    let mut ids = IdGenerator::from_seed(n as u64);
                    let mut producer = SpanQueue::producer(p);
                    for _ in 0..PER_THREAD {
                        submit(&mut producer, &mut ids);
                    }
                })
            })
            .collect();
        s.spawn(|| {
            let mut most = 0;
            while !done.load(Ordering::Acquire) {
                most = most.max(p.outstanding());
                p.discard_queued();
            }
            assert!(most <= CAPACITY, "held {most}");
        });
        for producer in producers {
            producer.join().unwrap();
        }
        done.store(true, Ordering::Release);
    });
    p.discard_queued();
    let stats = p.snapshot();
    let made = (THREADS * PER_THREAD) as u64;
    assert_eq!(stats.spans_queued + stats.dropped_queue_full, made);
    assert_eq!(stats.dropped_at_shutdown, stats.spans_queued);
    assert_eq!(p.outstanding(), 0);
    assert!(p.is_empty() && SpanSource::is_empty(&p));
    // No place was lost on the way: the whole bound is free again.
    let mut ids = IdGenerator::from_seed(9);
    for _ in 0..CAPACITY {
        assert!(p.submit_with(|| span(&mut ids)).is_ok());
    }
    assert!(p.submit_with(|| span(&mut ids)).is_err());
}

#[test]
fn spans_that_batch_storage_cannot_hold_are_counted_and_their_places_freed() {
    let (p, mut ids): (Pipe, _) = (SpanQueue::with_capacity(8), IdGenerator::from_seed(4));
    let settings = ExportSettings {
        batch_size: 5,
        ..ExportSettings::default()
    };
    let mut buf = vec![0; 1 << 16];
    let mut t = Accepting::default();
    // Storage for no span at all, then for two of a batch of five.
    let mut none: Exporter<Text, heapless::Vec<Span<Text>, 0>> = Exporter::new(settings, "", 1);
    let mut two: Exporter<Text, heapless::Vec<Span<Text>, 2>> = Exporter::new(settings, "", 1);
    for _ in 0..3 {
        assert!(p.submit_with(|| span(&mut ids)).is_ok());
    }
    none.request_flush();
    for _ in 0..10 {
        none.poll(Duration::from_secs(1), &p, &mut t, &mut buf);
    }
    assert_eq!((p.snapshot().dropped_oversize, p.outstanding()), (3, 0));
    for _ in 0..5 {
        assert!(p.submit_with(|| span(&mut ids)).is_ok());
    }
    two.request_flush();
    for _ in 0..20 {
        two.poll(Duration::from_secs(1), &p, &mut t, &mut buf);
    }
    assert_eq!(t.spans, 4, "two batches of two");
    assert_eq!((p.snapshot().dropped_oversize, p.outstanding()), (4, 0));
    assert!(p.reached(&p.mark()));
}
