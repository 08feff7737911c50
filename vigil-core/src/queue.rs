//! A fixed-capacity queue of finished records: many producers, one consumer.
//!
//! # Contract
//!
//! - [`Queue::push`] may be called from any number of threads at once. It never
//!   blocks, never allocates and never waits for the consumer: when the queue
//!   holds `capacity` records it hands the record back (`Err`) and the caller
//!   counts the drop.
//! - [`Queue::pop`] and [`Queue::release`] belong to the consumer. They are
//!   safe to call from several threads, but the queue is built for one.
//! - A popped record keeps its place in the capacity until the consumer calls
//!   [`Queue::release`] for it. The exporter releases a record only once it is
//!   delivered or given up, so records waiting for a retry still count and
//!   memory stays fixed while the server is down.
//!
//! # Design
//!
//! Dmitry Vyukov's bounded queue (one sequence number per slot, a ticket per
//! push) with admission control in front: a push claims a ticket only while
//! `pushed - released < capacity`. That bound also guarantees the claimed slot
//! is already free, so a producer never spins on a slow consumer. Slot
//! sequence numbers are stored relative to the slot's index, so a queue can be
//! built in a `const` context with no allocator (`static` queues).

use core::marker::PhantomData;
use core::mem::MaybeUninit;

use crate::sync::{spin_loop, AtomicUsize, Ordering, UnsafeCell};

/// Whether `slot` starts on a page of 4 KiB (the smallest page of common
/// targets; on larger pages some slots that are not first count as first).
#[inline(always)]
fn first_on_its_page<T>(slot: &Slot<T>) -> bool {
    let addr = (slot as *const Slot<T>).addr();
    addr % 4096 < core::mem::size_of::<Slot<T>>()
}

/// One cell of a [`Queue`]'s storage.
pub struct Slot<T> {
    /// `lap` when free for the push at `lap + index`, `lap + 1` when it holds
    /// that push's record.
    seq: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

impl<T> Slot<T> {
    /// An empty slot.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Slot {
            seq: AtomicUsize::new(0),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// An empty slot.
    #[cfg(loom)]
    pub fn new() -> Self {
        Slot {
            seq: AtomicUsize::new(0),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }
}

// SAFETY: a slot's value is only reached through a `Queue`, which grants one
// thread at a time access to it through the slot's sequence number; records
// cross threads, hence `T: Send`.
unsafe impl<T: Send> Sync for Slot<T> {}

impl<T> core::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
    }
}

mod sealed {
    /// The slots a queue owns; implemented for the storage types
    /// [`super::Storage`] lists and no others.
    pub trait Storage<T> {
        fn slots(&self) -> &[super::Slot<T>];
    }
}

/// What a [`Queue`] keeps its records in: `[Slot<T>; N]`, or (with the
/// `alloc` feature) `Box<[Slot<T>]>`.
///
/// Sealed: the queue owns its slots, so no second queue can see a record
/// the first one dropped.
///
/// ```compile_fail
/// use vigil_core::queue::{Queue, Slot};
///
/// // Borrowed slots are no storage: the first queue would drop "a" at the end
/// // of its life and leave the slot marked full for the second one.
/// let slots: [Slot<String>; 4] = Default::default();
/// let first = Queue::from_slots(&slots[..], 4);
/// let _ = first.push("a".to_owned());
/// drop(first);
/// let second = Queue::from_slots(&slots[..], 4);
/// let _ = second.pop();
/// ```
pub trait Storage<T>: sealed::Storage<T> {}

impl<T, const N: usize> sealed::Storage<T> for [Slot<T>; N] {
    fn slots(&self) -> &[Slot<T>] {
        self
    }
}
impl<T, const N: usize> Storage<T> for [Slot<T>; N] {}

#[cfg(feature = "alloc")]
impl<T> sealed::Storage<T> for alloc::boxed::Box<[Slot<T>]> {
    fn slots(&self) -> &[Slot<T>] {
        self
    }
}
#[cfg(feature = "alloc")]
impl<T> Storage<T> for alloc::boxed::Box<[Slot<T>]> {}

/// Keeps a hot counter on a cache line (pair) of its own.
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), repr(align(128)))]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    repr(align(64))
)]
struct Padded<T>(T);

/// A bounded multi-producer queue over the slots in `S` (see [`Storage`]),
/// which it owns: `[Slot<T>; N]` for a queue with no allocator (`N` a power
/// of two, at least 2), or `Box<[Slot<T>]>` with the `alloc` feature.
///
/// ```
/// use vigil_core::queue::{Queue, Slot};
///
/// static QUEUE: Queue<u32, [Slot<u32>; 4]> = Queue::new();
///
/// for i in 0..5 {
///     let _ = QUEUE.push(i); // the fifth is handed back: the queue is full
/// }
/// assert_eq!(QUEUE.push(9), Err(9));
/// assert_eq!(QUEUE.pop(), Some(0));
/// assert_eq!(QUEUE.push(9), Err(9), "0 still counts until released");
/// QUEUE.release(1);
/// assert_eq!(QUEUE.push(9), Ok(4), "held now: 1, 2, 3 and 9");
/// ```
pub struct Queue<T, S: Storage<T>> {
    tail: Padded<AtomicUsize>,
    head: Padded<AtomicUsize>,
    /// Pops completed (slot handed back), so `release` can never run ahead.
    /// Padded like the rest: the consumer writes it on every pop, and the
    /// line it would otherwise share holds what every push reads.
    freed: Padded<AtomicUsize>,
    released: Padded<AtomicUsize>,
    capacity: usize,
    mask: usize,
    slots: S,
    _records: PhantomData<T>,
}

#[cfg(not(loom))]
impl<T, const N: usize> Queue<T, [Slot<T>; N]> {
    /// An empty queue holding up to `N` records, usable in a `static`.
    pub const fn new() -> Self {
        const {
            assert!(
                N >= 2 && N.is_power_of_two(),
                "N must be a power of two, at least 2"
            )
        };
        Queue {
            tail: Padded(AtomicUsize::new(0)),
            head: Padded(AtomicUsize::new(0)),
            freed: Padded(AtomicUsize::new(0)),
            released: Padded(AtomicUsize::new(0)),
            capacity: N,
            mask: N - 1,
            slots: [const { Slot::new() }; N],
            _records: PhantomData,
        }
    }
}

#[cfg(not(loom))]
impl<T, const N: usize> Default for Queue<T, [Slot<T>; N]> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "alloc")]
impl<T> Queue<T, alloc::boxed::Box<[Slot<T>]>> {
    /// An empty queue holding up to `capacity` records (at least 1).
    ///
    /// Its slots are zeroed memory from the allocator (fresh pages, for a
    /// large queue and most allocators), which become resident as the ring is
    /// first filled rather than all at once.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let size = capacity.next_power_of_two().max(2);
        Self::from_slots(empty_slots(size), capacity)
    }
}

/// `n` empty slots, as zeroed memory: an empty slot is all zeros (sequence
/// number 0, value uninitialised), and the allocator hands out fresh zeroed
/// pages without touching them.
#[cfg(all(feature = "alloc", not(loom)))]
fn empty_slots<T>(n: usize) -> alloc::boxed::Box<[Slot<T>]> {
    use alloc::alloc::{alloc_zeroed, handle_alloc_error, Layout};
    let layout = match Layout::array::<Slot<T>>(n) {
        Ok(layout) if layout.size() > 0 => layout,
        // Nothing to allocate, or too much (which `collect` reports).
        _ => return (0..n).map(|_| Slot::new()).collect(),
    };
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { alloc_zeroed(layout) }.cast::<Slot<T>>();
    if ptr.is_null() {
        handle_alloc_error(layout);
    }
    // SAFETY: `ptr` holds `n` slots allocated with the layout `Box` uses for
    // `[Slot<T>]`, and all-zero bytes are a valid empty slot: an `AtomicUsize`
    // of 0 and a `MaybeUninit`.
    unsafe { alloc::boxed::Box::from_raw(core::ptr::slice_from_raw_parts_mut(ptr, n)) }
}

/// `n` empty slots (loom's atomics are not plain memory).
#[cfg(all(feature = "alloc", loom))]
fn empty_slots<T>(n: usize) -> alloc::boxed::Box<[Slot<T>]> {
    (0..n).map(|_| Slot::new()).collect()
}

impl<T, S: Storage<T>> Queue<T, S> {
    /// A queue over `slots` (length a power of two, at least 2) holding up to
    /// `capacity` records (at most `slots` long). Out-of-range values are
    /// clamped rather than rejected.
    ///
    /// ```
    /// use vigil_core::queue::{Queue, Slot};
    ///
    /// let slots: [Slot<String>; 4] = Default::default();
    /// let queue = Queue::from_slots(slots, 3);
    /// assert_eq!(queue.capacity(), 3);
    /// assert_eq!(queue.push("a".to_owned()), Ok(1));
    /// ```
    pub fn from_slots(slots: S, capacity: usize) -> Self {
        let len = sealed::Storage::slots(&slots).len();
        // The largest power of two not above `len`.
        let size = if len == 0 {
            0
        } else {
            1 << (usize::BITS - 1 - len.leading_zeros())
        };
        Queue {
            tail: Padded(AtomicUsize::new(0)),
            head: Padded(AtomicUsize::new(0)),
            freed: Padded(AtomicUsize::new(0)),
            released: Padded(AtomicUsize::new(0)),
            capacity: capacity.clamp(usize::from(size > 0), size.max(1)),
            mask: size.saturating_sub(1),
            slots,
            _records: PhantomData,
        }
    }

    /// Most records held at once, counting popped ones not yet released.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records pushed and not yet popped.
    pub fn len(&self) -> usize {
        let head = self.head.0.load(Ordering::Acquire);
        self.tail.0.load(Ordering::Acquire).saturating_sub(head)
    }

    /// Whether no record is waiting to be popped.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records ever pushed.
    pub fn pushed(&self) -> usize {
        self.tail.0.load(Ordering::Acquire)
    }

    /// Records ever released. Records are popped in order and the exporter
    /// releases a batch only when done with it, so `released() >= n` means the
    /// first `n` records pushed are all delivered or dropped.
    pub fn released(&self) -> usize {
        self.released.0.load(Ordering::Acquire)
    }

    /// Records pushed and not yet released: what counts against the capacity.
    pub fn outstanding(&self) -> usize {
        let released = self.released.0.load(Ordering::Acquire);
        self.tail.0.load(Ordering::Acquire).saturating_sub(released)
    }

    /// Adds `value` at the back and returns how many records the queue holds
    /// now, this one included (popped ones count until released), or hands
    /// it back if the queue is full.
    #[inline]
    pub fn push(&self, value: T) -> Result<usize, T> {
        self.push_with(|| value).map_err(|make| make())
    }

    /// [`Queue::push`] for a value that `make` produces once a place is
    /// claimed, so a large record is moved straight into its slot rather than
    /// through temporaries. When the queue is full, `make` is handed back
    /// uncalled.
    ///
    /// `make` must not panic: the place it was given would stay claimed and
    /// never filled, and the consumer would wait at it for good. Move a value
    /// that already exists, as [`Queue::push`] does.
    #[inline(always)]
    pub fn push_with<F: FnOnce() -> T>(&self, make: F) -> Result<usize, F> {
        let slots = sealed::Storage::slots(&self.slots);
        if slots.len() < 2 {
            return Err(make);
        }
        let mut tail = self.tail.0.load(Ordering::Relaxed);
        let held = loop {
            let released = self.released.0.load(Ordering::Acquire);
            let outstanding = tail.wrapping_sub(released);
            if outstanding > usize::MAX / 2 {
                // Our `tail` is older than the releases we see (this thread
                // was preempted meanwhile): look again rather than wrap.
                tail = self.tail.0.load(Ordering::Relaxed);
                continue;
            }
            if outstanding >= self.capacity {
                return Err(make);
            }
            match self.tail.0.compare_exchange_weak(
                tail,
                tail.wrapping_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break outstanding + 1,
                Err(now) => tail = now,
            }
        };
        self.fill(slots, tail, make);
        Ok(held)
    }

    /// [`Queue::push_with`] for the queue's only producer: no ticket is
    /// claimed with a compare-and-swap (a locked instruction, and on a line
    /// other producers would write), the tail is simply advanced.
    ///
    /// # Safety
    ///
    /// No other push, of either kind, runs on this queue at the same time as
    /// this one; pushes are ordered (one happens before the next), as they are
    /// when one thread makes them all.
    #[inline(always)]
    pub(crate) unsafe fn push_with_single<F: FnOnce() -> T>(&self, make: F) -> Result<usize, F> {
        let slots = sealed::Storage::slots(&self.slots);
        if slots.len() < 2 {
            return Err(make);
        }
        // Only this producer writes the tail.
        let tail = self.tail.0.load(Ordering::Relaxed);
        let outstanding = tail.wrapping_sub(self.released.0.load(Ordering::Acquire));
        if outstanding >= self.capacity {
            return Err(make);
        }
        // The caller's promise makes the ticket `tail` this push's alone.
        self.tail.0.store(tail.wrapping_add(1), Ordering::Relaxed);
        self.fill(slots, tail, make);
        Ok(outstanding + 1)
    }

    /// Writes `make()` into the slot of ticket `tail`, which this push alone
    /// holds, and publishes it to the consumer.
    #[inline(always)]
    fn fill<F: FnOnce() -> T>(&self, slots: &[Slot<T>], tail: usize, make: F) {
        let slot = &slots[tail & self.mask];
        let lap = tail & !self.mask;
        // Admission guarantees the previous lap's record was popped and its
        // release observed (Acquire on `released`); this loop does not spin
        // unless the consumer broke the contract.
        let mut seq = if first_on_its_page(slot) {
            // A write (a compare-and-swap, which writes even when it
            // fails; an idempotent `fetch_add(0)` is compiled to a load) is
            // the page's first touch, so the kernel maps it writable at
            // once. A load would map the shared zero page and the write then
            // copy it, which flushes the TLB of every core the process runs
            // on by interrupt, once per page of fresh zeroed slots.
            match slot
                .seq
                .compare_exchange(lap, lap, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(seq) | Err(seq) => seq,
            }
        } else {
            slot.seq.load(Ordering::Acquire)
        };
        while seq != lap {
            spin_loop();
            seq = slot.seq.load(Ordering::Acquire);
        }
        // SAFETY: the ticket `tail` gives this thread sole access to the slot
        // until the sequence number is published below.
        slot.value.with_mut(|cell| unsafe { (*cell).write(make()) });
        slot.seq.store(lap.wrapping_add(1), Ordering::Release);
    }

    /// Takes the record at the front, if one is ready.
    ///
    /// A record whose producer is still writing it is not ready yet; `pop`
    /// returns `None` rather than waiting.
    pub fn pop(&self) -> Option<T> {
        let slots = sealed::Storage::slots(&self.slots);
        if slots.len() < 2 {
            return None;
        }
        let mut head = self.head.0.load(Ordering::Relaxed);
        loop {
            let slot = &slots[head & self.mask];
            let lap = head & !self.mask;
            let seq = slot.seq.load(Ordering::Acquire);
            if seq != lap.wrapping_add(1) {
                return None;
            }
            match self.head.0.compare_exchange_weak(
                head,
                head.wrapping_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // SAFETY: the sequence number says the slot holds a
                    // record, and the successful CAS makes it ours alone.
                    let value = slot
                        .value
                        .with(|cell| unsafe { (*cell).assume_init_read() });
                    // The next lap's push sees `lap + size`; `size` may be
                    // below `slots.len()` when the slots are not a power of two.
                    slot.seq
                        .store(lap.wrapping_add(self.mask + 1), Ordering::Release);
                    self.freed.0.fetch_add(1, Ordering::Release);
                    return Some(value);
                }
                Err(now) => head = now,
            }
        }
    }

    /// Gives back the places of `n` popped records, so new ones can be pushed.
    /// Never releases more than has been popped.
    pub fn release(&self, n: usize) {
        let freed = self.freed.0.load(Ordering::Acquire);
        let _ = self
            .released
            .0
            .fetch_update(Ordering::Release, Ordering::Relaxed, |released| {
                Some(released.wrapping_add(n.min(freed.wrapping_sub(released))))
            });
    }
}

impl<T, S: Storage<T>> core::fmt::Debug for Queue<T, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Queue")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .field("outstanding", &self.outstanding())
            .finish_non_exhaustive()
    }
}

impl<T, S: Storage<T>> Drop for Queue<T, S> {
    fn drop(&mut self) {
        // Records pushed and never popped are still initialised.
        let slots = sealed::Storage::slots(&self.slots);
        let mut head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Relaxed);
        while head != tail && slots.len() >= 2 {
            let slot = &slots[head & self.mask];
            if slot.seq.load(Ordering::Relaxed) == (head & !self.mask).wrapping_add(1) {
                // SAFETY: the slot holds an initialised record nobody popped.
                slot.value
                    .with_mut(|cell| unsafe { (*cell).assume_init_drop() });
            }
            head = head.wrapping_add(1);
        }
    }
}
