//! A pipeline of several lanes: one bound over all of them, places held in
//! reserves and given back, the exporter taking from every lane.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vigil_core::queue::Slot;
use vigil_core::{
    ExportSettings, Exporter, IdGenerator, Lane, Outcome, Pipeline, Poll, Request, Reserve, Span,
    SpanKind, StartedShard, Timestamp, Transport, LANES, STARTED_SHARDS,
};

type Text = String;
type Pipe = Pipeline<Text, Box<[Slot<Span<Text>>]>>;

fn span(ids: &mut IdGenerator) -> Span<Text> {
    let at = Timestamp::from_unix_nanos(1);
    Span::new(ids.trace_id(), ids.span_id(), None, "s", SpanKind::Tool, at)
}

fn lane(n: usize) -> Lane {
    Lane::of(StartedShard::owned(n).unwrap_or(StartedShard::SHARED))
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

/// Submits into `lane` on `reserve`.
fn owned(p: &Pipe, lane: Lane, reserve: &mut Reserve, ids: &mut IdGenerator) -> bool {
    // SAFETY: every test submits to an exclusive lane from one thread only.
    unsafe { p.submit_owned(lane, reserve, || span(ids)) }.is_ok()
}

#[test]
fn the_first_owned_shards_have_lanes_of_their_own_and_the_rest_share_lane_0() {
    assert_eq!(Lane::of(StartedShard::SHARED), Lane::SHARED);
    assert!(!Lane::SHARED.is_exclusive());
    let lanes: Vec<Lane> = (1..STARTED_SHARDS).map(lane).collect();
    for (i, l) in lanes.iter().enumerate() {
        let own = i + 1 < LANES;
        assert_eq!(l.is_exclusive(), own, "shard {}", i + 1);
        assert_eq!(*l == Lane::SHARED, !own);
        assert!(
            !own || lanes[..i].iter().all(|m| m != l),
            "one lane a shard"
        );
    }
}

#[test]
fn lanes_share_one_bound() {
    // 100 places: reserves of one place each, so none is held back.
    let (p, mut ids): (Pipe, _) = (Pipeline::with_capacity(100), IdGenerator::from_seed(1));
    let mut reserves: Vec<Reserve> = (0..LANES).map(|_| Reserve::new()).collect();
    let mut accepted = 0;
    for i in 0..150 {
        let n = i % LANES;
        accepted += usize::from(owned(&p, lane(n), &mut reserves[n], &mut ids));
    }
    assert_eq!(accepted, 100);
    assert_eq!(p.outstanding(), 100);
    let stats = p.snapshot();
    assert_eq!((stats.spans_queued, stats.dropped_queue_full), (100, 50));
}

#[test]
fn a_reserve_holds_places_until_given_back() {
    // 10,000 places: a reserve takes 32 at a time.
    let (p, mut ids): (Pipe, _) = (Pipeline::with_capacity(10_000), IdGenerator::from_seed(2));
    let mut reserve = Reserve::new();
    assert!(owned(&p, lane(1), &mut reserve, &mut ids));
    assert_eq!(reserve.places(), 31);
    let mut others = 0;
    while p.submit_with(|| span(&mut ids)).is_ok() {
        others += 1;
    }
    assert_eq!(
        others,
        10_000 - 32,
        "the reserve's places are not free for others"
    );
    p.give_back(&mut reserve);
    assert_eq!(reserve.places(), 0);
    while p.submit_with(|| span(&mut ids)).is_ok() {
        others += 1;
    }
    assert_eq!(others, 10_000 - 1, "given back, they are");
    assert_eq!(p.outstanding(), 10_000);
}

#[test]
fn the_exporter_takes_from_every_lane_and_frees_their_places() {
    let (p, mut ids): (Pipe, _) = (Pipeline::with_capacity(8), IdGenerator::from_seed(3));
    let mut reserves: Vec<Reserve> = (0..LANES).map(|_| Reserve::new()).collect();
    for (n, reserve) in reserves.iter_mut().enumerate() {
        for _ in 0..2 {
            assert!(owned(&p, lane(n), reserve, &mut ids));
        }
    }
    assert!(p.submit_with(|| span(&mut ids)).is_err(), "full");
    let marks = p.marks();
    assert!(!p.reached(&marks));
    let mut t = Accepting::default();
    drain(&p, &mut t);
    assert_eq!(t.spans, 8);
    assert!(p.reached(&marks));
    assert_eq!((p.outstanding(), p.snapshot().spans_delivered), (0, 8));
    // Every place is free again, in any lane.
    for _ in 0..8 {
        assert!(owned(&p, lane(3), &mut reserves[3], &mut ids));
    }
    assert!(!p.reached(&p.marks()), "later spans are behind later marks");
    assert!(p.reached(&marks), "and not behind earlier ones");
}

#[test]
fn threads_in_lanes_never_exceed_the_bound_nor_lose_a_place() {
    const CAPACITY: usize = 1_000;
    const PER_THREAD: usize = 50_000;
    let p: Pipe = Pipeline::with_capacity(CAPACITY);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        // One thread in each exclusive lane and two in lane 0.
        let producers: Vec<_> = (0..=LANES)
            .map(|n| {
                let p = &p;
                s.spawn(move || {
                    let mut ids = IdGenerator::from_seed(n as u64);
                    let mut reserve = Reserve::new();
                    for _ in 0..PER_THREAD {
                        owned(p, lane(n % LANES), &mut reserve, &mut ids);
                    }
                    p.give_back(&mut reserve);
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
    let made = ((LANES + 1) * PER_THREAD) as u64;
    assert_eq!(stats.spans_queued + stats.dropped_queue_full, made);
    assert_eq!(stats.dropped_at_shutdown, stats.spans_queued);
    assert_eq!(p.outstanding(), 0);
    // No place was lost on the way: the whole bound is free again.
    let mut ids = IdGenerator::from_seed(9);
    for _ in 0..CAPACITY {
        assert!(p.submit_with(|| span(&mut ids)).is_ok());
    }
    assert!(p.submit_with(|| span(&mut ids)).is_err());
}

#[test]
fn spans_that_batch_storage_cannot_hold_are_counted_and_their_places_freed() {
    let (p, mut ids): (Pipe, _) = (Pipeline::with_capacity(8), IdGenerator::from_seed(4));
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
    assert!(p.reached(&p.marks()));
}
