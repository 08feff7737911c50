//! Where ended spans wait for the exporter: a [`SpanQueue`], and the
//! [`Producer`] through which one thread queues its spans.
//!
//! A span queue made by [`SpanQueue::new`] is one [`Queue`]. One made by
//! [`SpanQueue::with_capacity`] (the `alloc` feature) has a few queues
//! (lanes), so that threads ending spans at the same time do not all claim
//! places at the tail of one queue: on two cores that one cache line, passed
//! back and forth, cost as much as the rest of a span. The first threads to
//! ask for a [`Producer`] get lanes of their own, where a span is queued
//! without a compare-and-swap and its start counted with a plain store
//! rather than a locked instruction; every other producer, and
//! [`SpanQueue::submit`], shares lane 0. A producer is `!Send`: holding it is
//! what makes its lane, and its counter, its thread's alone.
//!
//! The lanes share one bound. Each holds all `capacity` places, and a budget
//! of `capacity` free places says how many may still be taken in all of them
//! together. A producer takes places from the budget a few at a time (32 at
//! a time from a bound of 8,192, fewer below: one per 256 places, at least
//! one), so the budget's cache line is touched once per few spans rather
//! than once per span; it gives back what it has not used when dropped, and
//! the exporter gives places back as it releases what it delivered. Places
//! held by producers that are not ending spans just then are not free for
//! others, so a queue that refuses spans as full may hold fewer than
//! `capacity`; it never holds more.

use core::marker::PhantomData;
use core::ops::Deref;

use crate::buffer::Buffer;
#[cfg(feature = "alloc")]
use crate::queue::Slot;
use crate::queue::{Queue, Storage};
use crate::span::{Repaired, Span};
use crate::stats::{add, Counters, StatsSnapshot};
use crate::sync::{AtomicBool, AtomicUsize, Ordering};

/// Queues in a span queue made by [`SpanQueue::with_capacity`]: lane 0,
/// shared, and `LANES - 1` that producers own.
const LANES: usize = 4;

/// Most places a producer takes from the budget at once.
#[cfg(feature = "alloc")]
const MAX_RESERVE: usize = 32;

/// A lane past the first: boxed slots.
#[cfg(feature = "alloc")]
type BoxedLane<B> = Queue<Span<B>, alloc::boxed::Box<[Slot<Span<B>>]>>;

/// Where ended spans wait for the exporter, with the counters that account
/// for every one of them (see the module docs).
///
/// Application threads queue spans through a [`Producer`] of their own, or
/// [`SpanQueue::submit`]; the exporter takes them through [`SpanSource`].
pub struct SpanQueue<B: Buffer, S: Storage<Span<B>>> {
    /// Lane 0.
    queue: Queue<Span<B>, S>,
    /// Lanes 1 and up: empty (no slots) in a one-queue span queue.
    #[cfg(feature = "alloc")]
    lanes: [BoxedLane<B>; LANES - 1],
    /// Places free in all lanes together; unused by a one-queue span queue,
    /// which the queue's own bound serves.
    budget: Padded<AtomicUsize>,
    /// Read by every submit and (almost) never written: kept off the lines
    /// the exporter writes.
    shape: Padded<Shape>,
    /// Which lanes producers hold (bit `n` for lane `n`; bit 0 never set).
    owners: Padded<AtomicUsize>,
    /// Spans started, per lane: lane 0's by any thread, the others' by
    /// their owner alone.
    started: [Padded<AtomicUsize>; LANES],
    /// Written by the exporter on every span it takes.
    taken: Padded<Taken>,
    counters: Counters,
}

struct Shape {
    /// Places a producer takes at once: 0 for a one-queue span queue.
    reserve: usize,
    /// Lanes producers may own: 0 for a one-queue span queue.
    owned_lanes: usize,
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

/// How far a [`SpanQueue`] had been filled at some moment (see
/// [`SpanQueue::mark`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark([usize; LANES]);

impl<B: Buffer, S: Storage<Span<B>>> SpanQueue<B, S> {
    /// A span queue of one queue.
    pub fn new(queue: Queue<Span<B>, S>) -> Self {
        SpanQueue {
            queue,
            #[cfg(feature = "alloc")]
            lanes: core::array::from_fn(|_| Queue::from_slots(alloc::boxed::Box::from([]), 0)),
            budget: Padded(AtomicUsize::new(0)),
            shape: Padded(Shape {
                reserve: 0,
                owned_lanes: 0,
                closed: AtomicBool::new(false),
            }),
            owners: Padded(AtomicUsize::new(0)),
            started: core::array::from_fn(|_| Padded(AtomicUsize::new(0))),
            taken: Padded(Taken {
                popped: core::array::from_fn(|_| AtomicUsize::new(0)),
                next: AtomicUsize::new(0),
            }),
            counters: Counters::new(),
        }
    }

    /// A producer for the calling thread, holding the span queue through
    /// `queue` (a reference, an `Arc`, ...). It owns a lane if one is free.
    pub fn producer<Q: Deref<Target = Self>>(queue: Q) -> Producer<Q> {
        let lane = queue.claim_lane();
        Producer {
            queue,
            lane,
            reserve: 0,
            _one_thread: PhantomData,
        }
    }

    /// The lowest free lane past 0, now held; 0 if none is free.
    fn claim_lane(&self) -> usize {
        let owned = self.shape.0.owned_lanes;
        let free = |held: usize| ((!held) & !1).trailing_zeros() as usize;
        // Acquire: the lane's last owner let go of it with Release, so its
        // pushes and counts happen before this producer's.
        self.owners
            .0
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |held| {
                let lane = free(held);
                (lane <= owned).then(|| held | 1 << lane)
            })
            .map_or(0, free)
    }

    /// Refuses spans from now on: nobody will send them. Each one submitted
    /// after this is counted in `dropped_after_close`.
    pub fn close(&self) {
        self.shape.0.closed.store(true, Ordering::Release);
    }

    /// Counts a span start made without a producer.
    pub fn span_started(&self) {
        self.started[0].0.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an update sent to a span that could not take it (it had ended,
    /// or too many were waiting).
    pub fn refused_update(&self) {
        add(&self.counters.refused_updates, 1);
    }

    /// Counts a payload left out because the mask hook panicked (or could
    /// not be called).
    pub fn mask_panicked(&self) {
        add(&self.counters.mask_panics, 1);
    }

    /// Hands an ended span to the exporter from any thread, and returns how
    /// many spans its lane holds now (see [`Queue::push`]). Never blocks:
    /// when the queue is full, or closed, the span is dropped, counted, and
    /// `None` returned. A thread that ends many spans does better through a
    /// [`Producer`].
    #[inline]
    pub fn submit(&self, span: Span<B>) -> Option<usize> {
        self.submit_with(|| span).ok()
    }

    /// [`SpanQueue::submit`] for a span that `make` moves out of where it
    /// lives once it has a place (see [`Queue::push_with`]). When the span is
    /// refused, `make` comes back uncalled: the caller drops the span, and
    /// the drop is already counted. `make` must not panic (see
    /// [`Queue::push_with`]).
    #[inline]
    pub fn submit_with<F: FnOnce() -> Span<B>>(&self, make: F) -> Result<usize, F> {
        let mut one = 0;
        let submitted = self.submit_in(0, &mut one, 1, make);
        self.give_back(&mut one);
        submitted
    }

    /// Queues the span in `lane` on a place from `reserve`, refilled by up to
    /// `refill` places when empty. Lane 0 takes any thread; any other lane
    /// only the producer that owns it.
    #[inline(always)]
    fn submit_in<F: FnOnce() -> Span<B>>(
        &self,
        lane: usize,
        reserve: &mut usize,
        refill: usize,
        make: F,
    ) -> Result<usize, F> {
        if self.shape.0.closed.load(Ordering::Acquire) {
            add(&self.counters.dropped_after_close, 1);
            return Err(make);
        }
        if self.shape.0.reserve == 0 {
            // One queue: its own bound is the span queue's.
            return self.queue.push_with(make).or_else(|make| self.refuse(make));
        }
        if *reserve == 0 && !self.take_places(reserve, refill) {
            return self.refuse(make);
        }
        let pushed = match self.owned_lane(lane) {
            // SAFETY: only the producer that owns lane `lane` passes it here
            // (every other caller passes 0), and a producer is neither `Send`
            // nor `Sync`, so its pushes are made one after another by the
            // one thread that holds it. A lane passes to its next owner
            // through the release and acquire of `owners`.
            Some(queue) => unsafe { queue.push_with_single(make) },
            None => self.queue.push_with(make),
        };
        match pushed {
            Ok(held) => {
                *reserve -= 1;
                Ok(held)
            }
            // Not reached: every lane has room for the whole budget.
            Err(make) => self.refuse(make),
        }
    }

    /// Lane `lane` when it is not lane 0.
    #[cfg(feature = "alloc")]
    #[inline(always)]
    fn owned_lane(&self, lane: usize) -> Option<&BoxedLane<B>> {
        self.lanes.get(lane.checked_sub(1)?)
    }

    #[cfg(not(feature = "alloc"))]
    #[inline(always)]
    fn owned_lane(&self, _lane: usize) -> Option<&Queue<Span<B>, S>> {
        None
    }

    /// Moves up to `want` places from the budget to `reserve`; false if there
    /// were none.
    #[cold]
    fn take_places(&self, reserve: &mut usize, want: usize) -> bool {
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
                *reserve += free.min(want);
                true
            }
            Err(_) => false,
        }
    }

    /// Returns the places left in `reserve` to the budget.
    fn give_back(&self, reserve: &mut usize) {
        let places = core::mem::take(reserve);
        if places > 0 {
            self.budget.0.fetch_add(places, Ordering::Release);
        }
    }

    #[cold]
    fn refuse<F>(&self, make: F) -> Result<usize, F> {
        add(&self.counters.dropped_queue_full, 1);
        Err(make)
    }

    /// The lanes, lane 0 first.
    fn each_lane(&self, mut f: impl FnMut(usize, &dyn LaneView)) {
        f(0, &self.queue);
        #[cfg(feature = "alloc")]
        for (i, lane) in self.lanes.iter().enumerate() {
            f(i + 1, lane);
        }
    }

    /// The counters as they are now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut queued = 0;
        self.each_lane(|_, lane| queued += lane.pushed());
        let started = self
            .started
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed) as u64);
        self.counters.snapshot(queued as u64, started.sum())
    }

    /// Spans queued and not yet taken by the exporter, in all lanes.
    pub fn len(&self) -> usize {
        let mut len = 0;
        self.each_lane(|_, lane| len += lane.len());
        len
    }

    /// Whether no span waits to be taken by the exporter.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether no place is free: the next submit from a producer that holds
    /// none is refused. The exporter ships then, full batch or not.
    pub fn is_full(&self) -> bool {
        if self.shape.0.reserve == 0 {
            self.queue.outstanding() >= self.queue.capacity()
        } else {
            self.budget.0.load(Ordering::Relaxed) == 0
        }
    }

    /// Spans queued and not yet released: what counts against the bound.
    pub fn outstanding(&self) -> usize {
        let mut held = 0;
        self.each_lane(|_, lane| held += lane.outstanding());
        held
    }

    /// How far the queue has been filled: every span queued before this call
    /// is behind the mark.
    pub fn mark(&self) -> Mark {
        let mut mark = Mark([0; LANES]);
        self.each_lane(|i, lane| mark.0[i] = lane.pushed());
        mark
    }

    /// Whether every span behind `mark` has been delivered or dropped.
    /// Each lane is taken from, and released, in order.
    pub fn reached(&self, mark: &Mark) -> bool {
        let mut reached = true;
        self.each_lane(|i, lane| reached &= lane.released() >= mark.0[i]);
        reached
    }

    /// Spans released so far, in all lanes: it changes whenever a batch is
    /// done with.
    pub fn released(&self) -> usize {
        let mut released = 0;
        self.each_lane(|_, lane| released += lane.released());
        released
    }

    /// Drops every queued span, counting each in `dropped_at_shutdown`;
    /// returns how many. For when no exporter will take them.
    pub fn discard_queued(&self) -> usize {
        crate::export::discard_queued(self)
    }

    /// Requests the exporter deferred for a retry of their own (see
    /// [`crate::Exporter`]): what a flush waits for besides the lanes.
    /// Set before the places of their spans are released, so whoever sees
    /// those places released sees the request deferred.
    pub fn deferred_requests(&self) -> usize {
        self.counters.deferred.load(Ordering::Acquire)
    }
}

#[cfg(feature = "alloc")]
impl<B: Buffer> SpanQueue<B, alloc::boxed::Box<[Slot<Span<B>>]>> {
    /// A span queue of several lanes holding up to `capacity` spans in all
    /// (at least 1; see the module docs). The lanes' slots are zeroed memory
    /// from the allocator (fresh pages, for a large queue and most
    /// allocators), which become resident as a lane's ring is first filled:
    /// a lane never used costs no memory, one that has carried as many spans
    /// as it has slots costs all of its slots.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let mut spans = SpanQueue::new(Queue::with_capacity(capacity));
        spans.lanes = core::array::from_fn(|_| Queue::with_capacity(capacity));
        spans.budget = Padded(AtomicUsize::new(capacity));
        // A few places per thread: little held back from a small queue, and
        // the budget touched once per 32 spans in a large one.
        spans.shape.0.reserve = (capacity / 256).clamp(1, MAX_RESERVE);
        spans.shape.0.owned_lanes = LANES - 1;
        spans
    }
}

impl<B: Buffer, S: Storage<Span<B>>> core::fmt::Debug for SpanQueue<B, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SpanQueue")
            .field("len", &self.len())
            .field("outstanding", &self.outstanding())
            .field("closed", &self.shape.0.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// One thread's way into a [`SpanQueue`]: a lane of its own if one was free
/// (lane 0, shared, otherwise), the places it took from the queue's budget,
/// and its share of the `spans_started` counter.
///
/// Neither `Send` nor `Sync`: the thread that made it is the only one that
/// queues in its lane and counts in its counter, which is what lets it do
/// both without a locked instruction. Dropping it gives back its places and its
/// lane.
///
/// ```
/// use vigil_core::queue::Slot;
/// use vigil_core::{IdGenerator, Span, SpanKind, SpanQueue, SpanSource, Timestamp};
///
/// type Text = heapless::String<64>;
/// let queue: SpanQueue<Text, [Slot<Span<Text>>; 4]> = SpanQueue::new(Default::default());
/// let mut producer = SpanQueue::producer(&queue);
/// let mut ids = IdGenerator::from_seed(1);
/// producer.span_started();
/// let span = Span::new(ids.trace_id(), ids.span_id(), None, "step", SpanKind::Tool, Timestamp::from_unix_nanos(0));
/// assert_eq!(producer.submit(span), Some(1));
/// drop(producer);
/// assert_eq!(queue.snapshot().spans_started, 1);
/// assert_eq!(queue.pop().map(|s| s.name().to_owned()).as_deref(), Some("step"));
/// ```
///
/// ```compile_fail
/// use vigil_core::queue::Slot;
/// use vigil_core::{Span, SpanQueue};
///
/// type Text = heapless::String<64>;
/// static QUEUE: std::sync::LazyLock<SpanQueue<Text, [Slot<Span<Text>>; 4]>> =
///     std::sync::LazyLock::new(|| SpanQueue::new(Default::default()));
/// let producer = SpanQueue::producer(&*QUEUE);
/// // A producer stays on its thread.
/// std::thread::spawn(move || drop(producer));
/// ```
pub struct Producer<Q>
where
    Q: Deref,
    Q::Target: sealed::Lanes,
{
    queue: Q,
    /// The lane it queues in: its own, or 0.
    lane: usize,
    /// Places taken from the budget and not used yet.
    reserve: usize,
    /// `!Send` and `!Sync`.
    _one_thread: PhantomData<*const ()>,
}

impl<B, S, Q> Producer<Q>
where
    B: Buffer,
    S: Storage<Span<B>>,
    Q: Deref<Target = SpanQueue<B, S>>,
{
    /// The span queue it queues in.
    pub fn queue(&self) -> &Q {
        &self.queue
    }

    /// Places it took from the queue's budget and has not used yet: the
    /// next submit takes more (a locked instruction) when there are none.
    pub fn places(&self) -> usize {
        self.reserve
    }

    /// Whether it has a lane of its own rather than sharing lane 0.
    pub fn owns_lane(&self) -> bool {
        self.lane != 0
    }

    /// Counts a span start.
    #[inline]
    pub fn span_started(&self) {
        let counter = &self.queue.started[self.lane].0;
        if self.lane == 0 {
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            // This producer alone writes its lane's counter.
            counter.store(
                counter.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
        }
    }

    /// [`SpanQueue::submit`] through this producer's lane and places.
    #[inline]
    pub fn submit(&mut self, span: Span<B>) -> Option<usize> {
        self.submit_with(|| span).ok()
    }

    /// [`SpanQueue::submit_with`] through this producer's lane and places.
    #[inline(always)]
    pub fn submit_with<F: FnOnce() -> Span<B>>(&mut self, make: F) -> Result<usize, F> {
        let refill = self.queue.shape.0.reserve;
        self.queue
            .submit_in(self.lane, &mut self.reserve, refill, make)
    }
}

impl<Q> Drop for Producer<Q>
where
    Q: Deref,
    Q::Target: sealed::Lanes,
{
    fn drop(&mut self) {
        sealed::Lanes::let_go(&*self.queue, self.lane, core::mem::take(&mut self.reserve));
    }
}

mod sealed {
    /// What a [`super::Producer`] gives back when dropped; implemented by
    /// [`super::SpanQueue`] alone.
    pub trait Lanes {
        /// Returns `reserve` places to the budget and frees `lane`.
        fn let_go(&self, lane: usize, reserve: usize);
    }
}

impl<B: Buffer, S: Storage<Span<B>>> sealed::Lanes for SpanQueue<B, S> {
    fn let_go(&self, lane: usize, mut reserve: usize) {
        self.give_back(&mut reserve);
        if lane != 0 {
            // Release: this owner's pushes and counts happen before the
            // next owner's (which acquires the lane).
            self.owners.0.fetch_and(!(1 << lane), Ordering::Release);
        }
    }
}

impl<Q> core::fmt::Debug for Producer<Q>
where
    Q: Deref,
    Q::Target: sealed::Lanes,
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Producer")
            .field("lane", &self.lane)
            .field("reserve", &self.reserve)
            .finish_non_exhaustive()
    }
}

/// Where the [`crate::Exporter`] takes spans from: pop them in order, release
/// their places once they are delivered or given up, and say how many wait.
/// The exporter knows nothing more of the queue, nor of threads.
pub trait SpanSource<B: Buffer> {
    /// Takes the next span, if one is ready. Its place stays taken until
    /// [`SpanSource::release`].
    fn pop(&self) -> Option<Span<B>>;
    /// Frees the places of every span popped so far.
    fn release(&self) {
        self.release_except(0);
    }
    /// Frees the places of every span popped so far but `held` of them,
    /// which stay taken: spans a consumer keeps past this release (a
    /// [`crate::sample::TailSampler`] waiting for their trace's end), so
    /// the queue's bound covers them too. `held` is at most the spans popped
    /// and not released.
    fn release_except(&self, held: usize);
    /// Spans waiting to be popped.
    fn len(&self) -> usize;
    /// Whether no place is free, so the exporter should ship what it has.
    fn is_full(&self) -> bool;
    /// Where the exporter counts what becomes of the spans.
    fn counters(&self) -> &Counters;
    /// Whether no span waits to be popped.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<B: Buffer, S: Storage<Span<B>>> SpanSource<B> for SpanQueue<B, S> {
    /// Takes from each lane in turn.
    fn pop(&self) -> Option<Span<B>> {
        let first = self.taken.0.next.load(Ordering::Relaxed);
        for k in 0..LANES {
            let lane = (first + k) % LANES;
            let span = match self.owned_lane(lane) {
                Some(queue) => queue.pop(),
                None if lane == 0 => self.queue.pop(),
                None => None,
            };
            if let Some(span) = span {
                self.taken.0.next.store(lane + 1, Ordering::Relaxed);
                self.taken.0.popped[lane].fetch_add(1, Ordering::Relaxed);
                return Some(span);
            }
        }
        None
    }

    fn release_except(&self, held: usize) {
        let mut freed = 0;
        let mut held = held;
        let popped = &self.taken.0.popped;
        self.each_lane(|i, lane| {
            // The held places stay counted in the first lanes that have
            // them: places are counts, and the records left their slots
            // when popped, so which lane keeps them does not matter.
            let unreleased = popped[i].load(Ordering::Relaxed);
            let kept = unreleased.min(held);
            held -= kept;
            popped[i].store(kept, Ordering::Relaxed);
            let n = unreleased - kept;
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

    fn len(&self) -> usize {
        SpanQueue::len(self)
    }

    fn is_full(&self) -> bool {
        SpanQueue::is_full(self)
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// Counts what the exporter's pop found in a span: truncation and repairs
/// are counted off the application threads (a U+0000 in a span's name is
/// replaced only when the span is sent).
pub(crate) fn count_marks<B: Buffer>(counters: &Counters, span: &Span<B>) {
    if !span.truncated().is_empty() {
        add(&counters.payloads_truncated, 1);
    }
    let repaired = span.repaired();
    if repaired.contains(Repaired::NUL) || span.name().contains('\0') {
        add(&counters.nul_replaced, 1);
    }
    if repaired.contains(Repaired::UNSERIALIZABLE) {
        add(&counters.payloads_unserializable, 1);
    }
}

/// What the span queue reads of a lane, whatever its storage.
trait LaneView {
    fn release(&self, n: usize);
    fn len(&self) -> usize;
    fn pushed(&self) -> usize;
    fn released(&self) -> usize;
    fn outstanding(&self) -> usize;
}

impl<T, S: Storage<T>> LaneView for Queue<T, S> {
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
