//! Where ended spans wait for the exporter, and the counters that account
//! for them.
//!
//! A pipeline made by [`Pipeline::new`] is one [`Queue`]. One made by
//! [`Pipeline::with_capacity`] (the `alloc` feature) has [`LANES`] queues,
//! so that threads ending spans at the same time do not all claim places at
//! the tail of one queue: on two cores that one cache line, passed back and
//! forth, cost as much as the rest of a span. The threads that own
//! `spans_started` shards 1 to `LANES - 1` have lanes of their own
//! ([`Lane::of`]), where a span is queued without a locked instruction
//! ([`Pipeline::submit_owned`]); all other threads share lane 0.
//!
//! The lanes share one bound. Each holds all `capacity` places, and a
//! budget of `capacity` free places says how many may still be taken in
//! all of them together. A thread takes places from the budget a few at a
//! time into a [`Reserve`] of its own (32 at a time from a bound of 8,192,
//! fewer below: one per 256 places, at least one), so the budget's cache
//! line is touched once per few spans rather than once per span; the
//! exporter gives places back as the spans it delivered are released.
//! Places in the reserves of threads that are not ending spans just then are
//! not free for others, so a pipeline that refuses spans as full may hold
//! fewer than `capacity`; it never holds more, as long as each reserve only
//! ever holds places of its own pipeline. A submit without a reserve
//! ([`Pipeline::submit_with`], [`Pipeline::submit_owned_once`]) takes its
//! one place from the budget itself, a locked instruction on a shared line.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::buffer::Buffer;
use crate::queue::{Queue, Slot};
use crate::span::{Repaired, Span};
use crate::stats::{add, StartedShard, Stats, StatsSnapshot, STARTED_SHARDS};

/// A lane past the first: boxed slots.
#[cfg(feature = "alloc")]
type BoxedLane<B> = Queue<Span<B>, alloc::boxed::Box<[Slot<Span<B>>]>>;

/// Queues in a pipeline made by [`Pipeline::with_capacity`].
pub const LANES: usize = 4;

/// Most places a [`Reserve`] takes from the budget at once.
#[cfg(feature = "alloc")]
const MAX_RESERVE: usize = 32;

/// One of a pipeline's queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lane(usize);

impl Lane {
    /// The lane any thread may use; the only one of [`Pipeline::new`].
    pub const SHARED: Lane = Lane(0);

    /// The lane of a thread that counts its starts in `shard`: owned shards
    /// 1 to `LANES - 1` have lanes of their own (exclusive, like the shard),
    /// and every other shard, the shared one included, has lane 0.
    pub const fn of(shard: StartedShard) -> Lane {
        match shard.index() {
            n if n < LANES => Lane(n),
            _ => Lane(0),
        }
    }

    /// Whether the lane belongs to one thread at a time (the owner of its
    /// shard), which queues in it without a locked instruction. Lane 0 takes
    /// any thread.
    pub const fn is_exclusive(self) -> bool {
        self.0 != 0
    }
}

const _: () = assert!(LANES >= 2 && STARTED_SHARDS >= LANES);

/// Places a thread took from a pipeline's budget and has not used yet (see
/// the module docs). Made empty; give what is left back with
/// [`Pipeline::give_back`] before dropping it, or the places stay taken.
/// A reserve belongs to the pipeline it took from.
#[derive(Debug, Default)]
pub struct Reserve(usize);

impl Reserve {
    /// An empty reserve.
    pub const fn new() -> Self {
        Reserve(0)
    }

    /// Places held.
    pub fn places(&self) -> usize {
        self.0
    }
}

/// How far each lane had been filled at some moment (see
/// [`Pipeline::marks`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marks([usize; LANES]);

/// Where finished spans wait, with the counters that account for them.
///
/// Application threads [`submit`](Pipeline::submit); the exporter drains.
pub struct Pipeline<B: Buffer, S: AsRef<[Slot<Span<B>>]>> {
    /// Lane 0.
    queue: Queue<Span<B>, S>,
    /// Lanes 1 and up: empty (no slots) in a one-queue pipeline.
    #[cfg(feature = "alloc")]
    lanes: [BoxedLane<B>; LANES - 1],
    /// Places free in all lanes together; unused by a one-queue pipeline,
    /// which the queue's own bound serves.
    budget: Padded<AtomicUsize>,
    /// Read by every submit and (almost) never written: kept off the lines
    /// the exporter writes.
    shape: Padded<Shape>,
    /// Written by the exporter on every span it takes.
    taken: Padded<Taken>,
    /// Requests the exporter deferred for a retry of their own: what a
    /// flush waits for besides the lanes' release marks.
    deferred: AtomicUsize,
    pub(crate) stats: Stats,
}

struct Shape {
    /// Places a reserve takes at once: 0 for a one-queue pipeline.
    reserve: usize,
    closed: AtomicBool,
}

struct Taken {
    /// Spans popped from each lane and not released yet.
    popped: [AtomicUsize; LANES],
    /// The lane to take from next, in turn.
    next: AtomicUsize,
}

#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), repr(align(128)))]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    repr(align(64))
)]
struct Padded<T>(T);

impl<B: Buffer, S: AsRef<[Slot<Span<B>>]>> Pipeline<B, S> {
    /// A pipeline of one queue.
    pub fn new(queue: Queue<Span<B>, S>) -> Self {
        Pipeline {
            queue,
            #[cfg(feature = "alloc")]
            lanes: core::array::from_fn(|_| Queue::from_slots(alloc::boxed::Box::from([]), 0)),
            budget: Padded(AtomicUsize::new(0)),
            shape: Padded(Shape {
                reserve: 0,
                closed: AtomicBool::new(false),
            }),
            taken: Padded(Taken {
                popped: [const { AtomicUsize::new(0) }; LANES],
                next: AtomicUsize::new(0),
            }),
            deferred: AtomicUsize::new(0),
            stats: Stats::new(),
        }
    }

    /// Refuses spans from now on: nobody will send them. Each one submitted
    /// after this is counted in `dropped_after_close`.
    pub fn close(&self) {
        self.shape.0.closed.store(true, Ordering::Release);
    }

    /// Hands an ended span to the exporter and returns how many spans its lane
    /// holds now (see [`Queue::push`]). Never blocks: when the pipeline is
    /// full, or closed, the span is dropped, counted, and `None` returned.
    /// Any thread may submit; the span goes to lane 0.
    #[inline]
    pub fn submit(&self, span: Span<B>) -> Option<usize> {
        self.submit_with(|| span).ok()
    }

    /// [`Pipeline::submit`] for a span that `make` moves out of where it
    /// lives once it has a place (see [`Queue::push_with`]). When the span is
    /// refused, `make` comes back uncalled: the caller drops the span, and
    /// the drop is already counted. `make` must not panic (see
    /// [`Queue::push_with`]).
    #[inline(always)]
    pub fn submit_with<F: FnOnce() -> Span<B>>(&self, make: F) -> Result<usize, F> {
        // SAFETY: lane 0 takes submits from any thread at once.
        unsafe { self.submit_owned_once(Lane::SHARED, make) }
    }

    /// [`Pipeline::submit_with`] into `lane`, the lane of a shard the calling
    /// thread owns ([`Lane::of`]), taking the span's place from `reserve`,
    /// which is refilled from the budget when it runs out: the way for a
    /// thread that ends many spans. In a lane of its own, the span is queued
    /// without a locked instruction ([`Queue::push_with_single`]).
    ///
    /// `reserve` must only ever hold places of this pipeline (see
    /// [`Pipeline::give_back`]).
    ///
    /// # Safety
    ///
    /// If `lane` [is exclusive](Lane::is_exclusive), no other thread submits
    /// to it, in this pipeline, while this call runs, and each submit to it
    /// happens before the next: the lane belongs to one thread, as the shard
    /// it was made from does (see [`StartedShard`]).
    #[inline(always)]
    pub unsafe fn submit_owned<F: FnOnce() -> Span<B>>(
        &self,
        lane: Lane,
        reserve: &mut Reserve,
        make: F,
    ) -> Result<usize, F> {
        // SAFETY: the caller's promise.
        unsafe { self.submit_in(lane, reserve, self.shape.0.reserve, make) }
    }

    /// [`Pipeline::submit_owned`] for a span of its own: its place comes
    /// straight from the budget (for spans off a thread's usual path, which
    /// go to the thread's lane too, so that its spans leave in the order they
    /// ended).
    ///
    /// # Safety
    ///
    /// As for [`Pipeline::submit_owned`].
    #[inline]
    pub unsafe fn submit_owned_once<F: FnOnce() -> Span<B>>(
        &self,
        lane: Lane,
        make: F,
    ) -> Result<usize, F> {
        let mut one = Reserve(0);
        // SAFETY: the caller's promise.
        let submitted = unsafe { self.submit_in(lane, &mut one, 1, make) };
        self.give_back(&mut one);
        submitted
    }

    /// Returns the places left in `reserve` to the budget. The reserve must
    /// have taken them from this pipeline: places of another would let this
    /// one hold more than its bound.
    pub fn give_back(&self, reserve: &mut Reserve) {
        let places = core::mem::take(&mut reserve.0);
        if places > 0 {
            self.budget.0.fetch_add(places, Ordering::Release);
        }
    }

    /// Queues the span in `lane` on a place from `reserve`, refilled by up to
    /// `refill` places when empty.
    ///
    /// # Safety
    ///
    /// As for [`Pipeline::submit_owned`].
    #[inline(always)]
    unsafe fn submit_in<F: FnOnce() -> Span<B>>(
        &self,
        lane: Lane,
        reserve: &mut Reserve,
        refill: usize,
        make: F,
    ) -> Result<usize, F> {
        if self.shape.0.closed.load(Ordering::Acquire) {
            add(&self.stats.dropped_after_close, 1);
            return Err(make);
        }
        if self.shape.0.reserve == 0 {
            // One queue: its own bound is the pipeline's.
            return self.queue.push_with(make).or_else(|make| self.refuse(make));
        }
        if reserve.0 == 0 && !self.take_places(reserve, refill) {
            return self.refuse(make);
        }
        let pushed = match self.extra_lane(lane) {
            // SAFETY: an extra lane is exclusive, and the caller promised
            // that this thread alone submits to it.
            Some(queue) => unsafe { queue.push_with_single(make) },
            None => self.queue.push_with(make),
        };
        match pushed {
            Ok(held) => {
                reserve.0 -= 1;
                Ok(held)
            }
            // Not reached: every lane has room for the whole budget.
            Err(make) => self.refuse(make),
        }
    }

    /// Lane `lane` when it is not lane 0.
    #[cfg(feature = "alloc")]
    #[inline(always)]
    fn extra_lane(&self, lane: Lane) -> Option<&BoxedLane<B>> {
        self.lanes.get(lane.0.checked_sub(1)?)
    }

    #[cfg(not(feature = "alloc"))]
    #[inline(always)]
    fn extra_lane(&self, _lane: Lane) -> Option<&Queue<Span<B>, S>> {
        None
    }

    /// Moves up to `want` places from the budget to `reserve`; false if there
    /// were none.
    #[cold]
    fn take_places(&self, reserve: &mut Reserve, want: usize) -> bool {
        // Acquire: pairs with the release that freed the places, so the
        // lane's own count of them is seen as well.
        let taken = self
            .budget
            .0
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |free| {
                (free > 0).then(|| free - free.min(want))
            });
        match taken {
            Ok(free) => {
                reserve.0 += free.min(want);
                true
            }
            Err(_) => false,
        }
    }

    #[cold]
    fn refuse<F>(&self, make: F) -> Result<usize, F> {
        add(&self.stats.dropped_queue_full, 1);
        Err(make)
    }

    /// The lanes, lane 0 first, as the exporter sees them.
    fn each_lane(&self, mut f: impl FnMut(usize, &dyn LaneView<Span<B>>)) {
        f(0, &self.queue);
        #[cfg(feature = "alloc")]
        for (i, lane) in self.lanes.iter().enumerate() {
            f(i + 1, lane);
        }
    }

    /// Takes the next span for the exporter, from each lane in turn.
    /// Truncation and repairs are counted here, off the application threads
    /// (a U+0000 in a span's name is replaced only when the span is sent).
    pub(crate) fn pop(&self) -> Option<Span<B>> {
        let first = self.taken.0.next.load(Ordering::Relaxed);
        let mut found = None;
        for k in 0..LANES {
            let lane = (first + k) % LANES;
            let span = match self.extra_lane(Lane(lane)) {
                Some(queue) => queue.pop(),
                None if lane == 0 => self.queue.pop(),
                None => None,
            };
            if let Some(span) = span {
                found = Some((lane, span));
                break;
            }
        }
        let (lane, span) = found?;
        self.taken.0.next.store(lane + 1, Ordering::Relaxed);
        self.taken.0.popped[lane].fetch_add(1, Ordering::Relaxed);
        if !span.truncated().is_empty() {
            add(&self.stats.payloads_truncated, 1);
        }
        let repaired = span.repaired();
        if repaired.contains(Repaired::NUL) || span.name().contains('\0') {
            add(&self.stats.nul_replaced, 1);
        }
        if repaired.contains(Repaired::UNSERIALIZABLE) {
            add(&self.stats.payloads_unserializable, 1);
        }
        Some(span)
    }

    /// Frees the places of every span popped so far (they were delivered or
    /// given up), for new spans.
    pub(crate) fn release_popped(&self) {
        let mut freed = 0;
        let popped = &self.taken.0.popped;
        self.each_lane(|i, lane| {
            let n = popped[i].swap(0, Ordering::Relaxed);
            // A lane with nothing to release is left alone: its producers
            // read the count on every push.
            if n > 0 {
                lane.release(n);
                freed += n;
            }
        });
        if self.shape.0.reserve > 0 && freed > 0 {
            // After the lanes' own releases: whoever takes these places sees
            // them free in the lanes too.
            self.budget.0.fetch_add(freed, Ordering::Release);
        }
    }

    /// Drops every queued span, counting each in `dropped_at_shutdown`;
    /// returns how many.
    pub fn discard_queued(&self) -> usize {
        let mut dropped = 0;
        while self.pop().is_some() {
            dropped += 1;
        }
        self.release_popped();
        add(&self.stats.dropped_at_shutdown, dropped);
        dropped
    }

    /// The live counters (to count span starts).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The counters as they are now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut pushed = 0;
        self.each_lane(|_, lane| pushed += lane.pushed());
        self.stats.snapshot(pushed as u64)
    }

    /// Spans queued and not yet taken by the exporter, in all lanes.
    pub fn len(&self) -> usize {
        let mut len = 0;
        self.each_lane(|_, lane| len += lane.len());
        len
    }

    /// Whether no place is free: the next submit without a reserve that
    /// holds one is refused. The exporter ships then, full batch or not.
    pub fn is_full(&self) -> bool {
        if self.shape.0.reserve == 0 {
            self.queue.outstanding() >= self.queue.capacity()
        } else {
            self.budget.0.load(Ordering::Relaxed) == 0
        }
    }

    /// Whether no span waits to be taken by the exporter.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Spans queued and not yet released: what counts against the bound.
    pub fn outstanding(&self) -> usize {
        let mut held = 0;
        self.each_lane(|_, lane| held += lane.outstanding());
        held
    }

    /// How far each lane has been filled: every span queued before this call
    /// is behind these marks.
    pub fn marks(&self) -> Marks {
        let mut marks = Marks::default();
        self.each_lane(|i, lane| marks.0[i] = lane.pushed());
        marks
    }

    /// Whether every span behind `marks` has been delivered or dropped.
    /// Each lane is taken from, and released, in order.
    pub fn reached(&self, marks: &Marks) -> bool {
        let mut reached = true;
        self.each_lane(|i, lane| reached &= lane.released() >= marks.0[i]);
        reached
    }

    /// Requests deferred for a retry of their own (see [`crate::Exporter`]).
    /// Set before the places of their spans are released, so whoever sees
    /// those places released sees the request deferred.
    pub fn deferred_requests(&self) -> usize {
        self.deferred.load(Ordering::Acquire)
    }

    pub(crate) fn set_deferred_requests(&self, n: usize) {
        self.deferred.store(n, Ordering::Release);
    }

    /// Spans released so far, in all lanes: it changes whenever a batch is
    /// done with.
    pub fn released(&self) -> usize {
        let mut released = 0;
        self.each_lane(|_, lane| released += lane.released());
        released
    }
}

#[cfg(feature = "alloc")]
impl<B: Buffer> Pipeline<B, alloc::boxed::Box<[Slot<Span<B>>]>> {
    /// A pipeline of [`LANES`] queues holding up to `capacity` spans in all
    /// (at least 1; see the module docs). The lanes' slots are zeroed memory
    /// from the allocator (fresh pages, for a large queue and most
    /// allocators), which become resident as a lane's ring is first filled:
    /// a lane never used costs no memory, one that has carried as many spans
    /// as it has slots costs all of its slots.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let mut pipeline = Pipeline::new(Queue::with_capacity(capacity));
        pipeline.lanes = core::array::from_fn(|_| Queue::with_capacity(capacity));
        pipeline.budget = Padded(AtomicUsize::new(capacity));
        // A few places per thread: little held back from a small queue, and
        // the budget touched once per 32 spans in a large one.
        pipeline.shape.0.reserve = (capacity / 256).clamp(1, MAX_RESERVE);
        pipeline
    }
}

/// What the exporter reads of a lane, whatever its storage.
trait LaneView<T> {
    fn release(&self, n: usize);
    fn len(&self) -> usize;
    fn pushed(&self) -> usize;
    fn released(&self) -> usize;
    fn outstanding(&self) -> usize;
}

impl<T, S: AsRef<[Slot<T>]>> LaneView<T> for Queue<T, S> {
    fn release(&self, n: usize) {
        Queue::release(self, n);
    }
    fn len(&self) -> usize {
        Queue::len(self)
    }
    fn pushed(&self) -> usize {
        Queue::pushed(self)
    }
    fn released(&self) -> usize {
        Queue::released(self)
    }
    fn outstanding(&self) -> usize {
        Queue::outstanding(self)
    }
}
