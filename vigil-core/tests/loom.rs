//! Model check of the queue: `RUSTFLAGS="--cfg loom" cargo test -p vigil-core --test loom --release`.
//!
//! loom explores every interleaving of producers racing a consumer that pops
//! and releases, and checks that each record is either popped exactly once or
//! handed back as dropped, that the capacity is never exceeded, that each
//! producer's records stay in order, and (through loom's `UnsafeCell`) that no
//! slot is ever read and written without a happens-before edge, for shared
//! pushes and for a single producer's. Every role runs on a spawned thread:
//! loom checks races between spawned threads.

#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use vigil_core::queue::{Queue, Slot};

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

#[test]
fn a_single_producer_wraps_around_without_a_ticket() {
    // The only producer pushes without claiming tickets, through two laps of
    // a two-slot queue, while the consumer pops and releases.
    model(|| {
        let q: Q = Arc::new(Queue::with_capacity(2));
        let c = consumer(&q, 3);
        let p = {
            let q = q.clone();
            thread::spawn(move || {
                // SAFETY: this thread is the queue's only producer.
                (0..4u32)
                    .filter(|v| unsafe { q.push_with_single(|| *v) }.is_err())
                    .count() as u32
            })
        };
        let dropped = p.join().unwrap();
        let mut got = c.join().unwrap();
        got.extend(drain(&q));
        assert_eq!(got.len() as u32 + dropped, 4);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
        assert_eq!(q.outstanding(), 0);
    });
}
