//! The queue under real threads: every record is popped or counted as dropped.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use vigil_core::queue::{Queue, Slot};

#[test]
fn pushed_equals_popped_plus_dropped_under_contention() {
    const PRODUCERS: u64 = 4;
    // Under miri, few enough to run in seconds, into a queue small enough to fill.
    const PER: u64 = if cfg!(miri) { 300 } else { 200_000 };
    const CAPACITY: usize = if cfg!(miri) { 16 } else { 1000 };
    let q: Arc<Queue<u64, Box<[Slot<u64>]>>> = Arc::new(Queue::with_capacity(CAPACITY));
    let done = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (q, done) = (q.clone(), done.clone());
        thread::spawn(move || {
            let mut last = [None::<u64>; PRODUCERS as usize];
            let mut popped = 0u64;
            loop {
                match q.pop() {
                    Some(v) => {
                        let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                        assert!(last[p].is_none_or(|l| l < i), "FIFO per producer");
                        last[p] = Some(i);
                        popped += 1;
                        q.release(1);
                    }
                    None if done.load(Ordering::Acquire) && q.is_empty() => return popped,
                    None => thread::yield_now(),
                }
            }
        })
    };
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = q.clone();
            thread::spawn(move || {
                (0..PER).filter(|i| q.push((p << 32) | i).is_err()).count() as u64
            })
        })
        .collect();
    let dropped: u64 = producers.into_iter().map(|h| h.join().unwrap()).sum();
    done.store(true, Ordering::Release);
    let popped = consumer.join().unwrap();
    assert_eq!(popped + dropped, PRODUCERS * PER);
    assert!(popped > 0);
    assert_eq!(q.outstanding(), 0);
}

#[test]
fn capacity_is_exact_even_when_not_a_power_of_two() {
    let q: Queue<u32, Box<[Slot<u32>]>> = Queue::with_capacity(5);
    assert_eq!(q.capacity(), 5);
    assert_eq!((0..9).filter(|i| q.push(*i).is_ok()).count(), 5);
    assert_eq!(q.pop(), Some(0));
    q.release(7); // more than popped: only one place comes back
    assert_eq!(q.outstanding(), 4);
    assert!(q.push(10).is_ok());
    assert!(q.push(11).is_err());
    let rest: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
    assert_eq!(rest, [1, 2, 3, 4, 10]);
}

#[test]
fn records_left_in_the_queue_are_dropped_with_it() {
    let marker = Arc::new(());
    {
        let q: Queue<Arc<()>, [Slot<Arc<()>>; 8]> = Queue::new();
        for _ in 0..6 {
            q.push(marker.clone()).unwrap();
        }
        drop(q.pop());
        assert_eq!(Arc::strong_count(&marker), 6);
    }
    assert_eq!(Arc::strong_count(&marker), 1);
}

#[test]
fn slots_that_are_not_a_power_of_two_keep_working_lap_after_lap() {
    // Six slots: the queue uses four of them and must not confuse laps.
    let queue: Queue<u32, [Slot<u32>; 6]> = Queue::from_slots([const { Slot::new() }; 6], 4);
    for lap in 0..10 {
        for i in 0..4 {
            assert!(queue.push(lap * 4 + i).is_ok(), "lap {lap}, push {i}");
        }
        assert!(queue.push(99).is_err(), "full at the capacity");
        for i in 0..4 {
            assert_eq!(queue.pop(), Some(lap * 4 + i));
        }
        queue.release(4);
    }
}

#[test]
fn push_with_builds_the_value_only_once_it_has_a_place() {
    let q: Queue<String, [Slot<String>; 2]> = Queue::new();
    let made = std::cell::Cell::new(0);
    for i in 0..3 {
        let pushed = q.push_with(|| {
            made.set(made.get() + 1);
            i.to_string()
        });
        assert_eq!(pushed.is_ok(), i < 2, "push {i}");
        if let Err(make) = pushed {
            // Handed back uncalled: the caller still owns what it would move.
            assert_eq!(made.get(), 2);
            assert_eq!(make(), "2");
        }
    }
    assert_eq!(q.pop().as_deref(), Some("0"));
    assert_eq!(q.pop().as_deref(), Some("1"));
}
