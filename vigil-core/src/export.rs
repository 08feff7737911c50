//! The export state machine: from the queue to requests, one trace at a time.
//!
//! Pure and synchronous: time comes in as an argument, bytes go out through a
//! [`Transport`], and [`Exporter::poll`] says when to call again. `vigil-std`
//! drives it from a background thread; an embedded main loop can drive it too.
//!
//! Each poll sends at most one request, so the caller can stop at a deadline
//! between any two. A batch is taken from the queue, sorted by trace, and sent
//! trace by trace (the server files every span of a request under the first
//! span's trace), a large trace over several requests; once a trace's root
//! span is stored, a `PATCH` sets the trace's final status and metadata.
//!
//! No request holds back the others. A request that failed in a way that may
//! pass (`5xx`, a timeout, a `PATCH` racing its spans) is *deferred*: kept,
//! encoded, with a backoff of its own, while other traces are sent. When
//! such a request may already have been stored, the server is asked
//! ([`Transport::lookup`]) before it is sent again, so a stored request whose
//! answer was lost is counted as delivered rather than retried into a `500`
//! for duplicate span ids. Only a `429` or an unreachable server pauses all
//! sending.

use core::time::Duration;

use crate::buffer::Buffer;
use crate::config::ExportSettings;
use crate::encode::{encode_ingest, encode_patch, Envelope};
use crate::id::{IdGenerator, TraceId};
use crate::span::Span;
use crate::span_queue::{count_marks, SpanSource};
use crate::stats::add;
use crate::transport::{Lookup, Outcome, Request, RequestKind, RetryReason, Transport};

/// Where the exporter keeps the batch it is sending, and the requests that
/// wait for a retry of their own.
///
/// `heapless::Vec<T, N>` with no allocator (`N` bounds it), `Vec<T>` with
/// the `alloc` feature.
pub trait BatchStorage<T>: Default {
    /// Adds `value`, or hands it back when full.
    fn push(&mut self, value: T) -> Result<(), T>;
    /// The contents.
    fn as_slice(&self) -> &[T];
    /// The contents, to sort or update.
    fn as_mut_slice(&mut self) -> &mut [T];
    /// Removes and returns the element at `index`, keeping the order of the rest.
    fn remove(&mut self, index: usize) -> T;
    /// Whether another element would fit.
    fn has_room(&self) -> bool;
    /// Drops everything.
    fn clear(&mut self);
    /// How many elements are held.
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    /// Whether nothing is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T, const N: usize> BatchStorage<T> for heapless::Vec<T, N> {
    fn push(&mut self, value: T) -> Result<(), T> {
        heapless::Vec::push(self, value)
    }
    fn as_slice(&self) -> &[T] {
        self
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }
    fn remove(&mut self, index: usize) -> T {
        heapless::Vec::remove(self, index)
    }
    fn has_room(&self) -> bool {
        !self.is_full()
    }
    fn clear(&mut self) {
        heapless::Vec::clear(self);
    }
}

#[cfg(feature = "alloc")]
impl<T> BatchStorage<T> for alloc::vec::Vec<T> {
    fn push(&mut self, value: T) -> Result<(), T> {
        alloc::vec::Vec::push(self, value);
        Ok(())
    }
    fn as_slice(&self) -> &[T] {
        self
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }
    fn remove(&mut self, index: usize) -> T {
        alloc::vec::Vec::remove(self, index)
    }
    fn has_room(&self) -> bool {
        true
    }
    fn clear(&mut self) {
        alloc::vec::Vec::clear(self);
    }
}

/// A request that failed and waits for a retry of its own while other
/// traces' requests go on. It holds its encoded body, so the spans it
/// carries no longer hold places in the queue.
#[derive(Debug)]
pub struct Deferred<B> {
    kind: RequestKind,
    trace_id: TraceId,
    body: B,
    spans: usize,
    attempts: u32,
    not_before: Duration,
    /// An earlier attempt may have been stored (it timed out or got a
    /// `5xx`): the server is asked before the body is sent again.
    maybe_stored: bool,
    /// Where it came from in a spool ([`Exporter::adopt`]), if it did.
    ticket: Option<u64>,
}

impl<B: Buffer> Deferred<B> {
    /// The request to send (or spool) again, within `timeout`.
    fn request(&self, timeout: Duration) -> Request<'_> {
        Request {
            kind: self.kind,
            trace_id: self.trace_id,
            body: self.body.as_str().as_bytes(),
            spans: self.spans,
            timeout,
        }
    }
}

/// A request read back from a spool, for [`Exporter::adopt`].
#[derive(Clone, Copy, Debug)]
pub struct Replay<'a> {
    /// Ingest or PATCH.
    pub kind: RequestKind,
    /// The trace it is about.
    pub trace_id: TraceId,
    /// The JSON body, as it was spooled.
    pub body: &'a str,
    /// Spans in it (0 for a PATCH).
    pub spans: usize,
    /// Attempts made before it was spooled. A request never attempted (the
    /// server was unreachable) cannot be stored: the server is not asked.
    pub attempts: u32,
    /// What the spool knows it by; handed back by [`Exporter::take_settled`].
    pub ticket: u64,
}

/// What became of a replayed request ([`Exporter::take_settled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The server stores it, or refused it for good: remove it from the spool.
    Done,
    /// It used up its attempts (or shutdown came): it stays in the spool
    /// for a later replay.
    Again,
}

/// Replayed requests in flight at once, at most.
pub const MAX_REPLAYING: usize = 16;

/// What the driver should do after a [`poll`](Exporter::poll).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// A request was sent; poll again right away.
    Again,
    /// Sending is paused (backoff, `Retry-After`, or a record still being
    /// written) until this time.
    Wait(Duration),
    /// Nothing to send; poll at this time (the next flush interval) or when
    /// asked to flush.
    Idle(Duration),
}

/// What [`Exporter::abandon`] dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Abandoned {
    /// Spans held, deferred or queued, counted in `dropped_at_shutdown`.
    pub spans: usize,
    /// Trace statuses (`PATCH`es) never sent, counted in `patches_failed`.
    pub patches: usize,
}

/// Traces cut by a batch whose remaining queued spans the batch follows.
const FOLLOWED: usize = 8;

/// How long to wait for a producer to finish writing a record it claimed.
const NOT_READY_PAUSE: Duration = Duration::from_millis(1);

/// The longest `Retry-After` honoured: a server asking for more is asked
/// again after this, while spans wait in the (bounded) queue.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// What `refill` found.
enum Refill {
    Taken,
    Nothing,
    NotReady,
}

/// Where the exporter is in the current trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Spans,
    Patch,
}

/// Drains a [`SpanSource`] into a [`Transport`] (see the module docs).
///
/// `L` holds the batch being sent; `D` the requests deferred for a retry of
/// their own (at most [`ExportSettings::max_deferred`] of them, whose bodies
/// take at most [`ExportSettings::max_deferred_bytes`]). When `D` is full, or
/// a body does not fit in a `B`, a failed request is retried in place and
/// the batch waits for it, as it would with no room to defer at all.
pub struct Exporter<
    B: Buffer,
    L: BatchStorage<Span<B>>,
    D: BatchStorage<Deferred<B>> = heapless::Vec<Deferred<B>, 8>,
> {
    settings: ExportSettings,
    project_id: B,
    batch: L,
    len: usize,
    cursor: usize,
    phase: Phase,
    /// Attempts of the batch's current request retried in place.
    attempts: u32,
    /// The batch's current request (retried in place) may have been stored.
    maybe_stored: bool,
    /// When the batch's current request may be retried in place.
    retry_at: Duration,
    deferred: D,
    deferred_bytes: usize,
    /// Consecutive pauses for an unreachable server, for the backoff.
    outage: u32,
    /// All sending waits until then (`429`, server unreachable).
    paused_until: Duration,
    last_flush: Duration,
    flush_requested: bool,
    rng: IdGenerator,
    /// Metadata members every trace gets (release, environment), before its own.
    trace_defaults: B,
    /// The defaults and a root's own members, joined.
    members: B,
    /// Replayed requests settled, for the spool to learn.
    settled: heapless::Deque<(u64, Settled), MAX_REPLAYING>,
    /// Shutting down: what cannot be sent goes to the spool.
    closing: bool,
    /// The current trace's spans went to the spool: so does its status.
    spool_patch: bool,
}

impl<B: Buffer, L: BatchStorage<Span<B>>, D: BatchStorage<Deferred<B>>> core::fmt::Debug
    for Exporter<B, L, D>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Exporter")
            .field("batch", &self.len)
            .field("sent", &self.cursor)
            .field("phase", &self.phase)
            .field("deferred", &self.deferred.len())
            .field("paused_until", &self.paused_until)
            .finish_non_exhaustive()
    }
}

impl<B: Buffer, L: BatchStorage<Span<B>>, D: BatchStorage<Deferred<B>>> Exporter<B, L, D> {
    /// An exporter with `settings`, sending `project_id`, whose backoff jitter
    /// comes from `seed`.
    pub fn new(settings: ExportSettings, project_id: &str, seed: u64) -> Self {
        let mut project = B::default();
        let _ = project.push_str(crate::buffer::byte_prefix(project_id, project.max_len()));
        Exporter {
            settings,
            project_id: project,
            batch: L::default(),
            len: 0,
            cursor: 0,
            phase: Phase::Spans,
            attempts: 0,
            maybe_stored: false,
            retry_at: Duration::ZERO,
            deferred: D::default(),
            deferred_bytes: 0,
            outage: 0,
            paused_until: Duration::ZERO,
            last_flush: Duration::ZERO,
            flush_requested: false,
            rng: IdGenerator::from_seed(seed),
            trace_defaults: B::default(),
            members: B::default(),
            settled: heapless::Deque::new(),
            closing: false,
            spool_patch: false,
        }
    }

    /// Gives every trace the metadata `members` (encoded JSON object members
    /// without the braces, `"release":"1.2"`), sent before the trace's own,
    /// which win on a repeated key. Refused when they do not fit a `B`.
    pub fn set_trace_metadata(&mut self, members: &str) -> Result<(), crate::Full> {
        let mut defaults = B::default();
        defaults.push_str(members)?;
        self.trace_defaults = defaults;
        Ok(())
    }

    /// The settings.
    pub fn settings(&self) -> &ExportSettings {
        &self.settings
    }

    /// Sends everything waiting, without waiting for a full batch or the
    /// interval, until the queue is empty.
    pub fn request_flush(&mut self) {
        self.flush_requested = true;
    }

    /// Whether nothing is held, in progress or deferred (the queue may still
    /// hold spans).
    pub fn is_idle(&self) -> bool {
        self.len == 0 && self.deferred.is_empty()
    }

    /// Whether, at `now`, the exporter holds no batch and sending is not
    /// paused, so a full batch in the queue is worth waking it for.
    pub fn is_ready_for_spans(&self, now: Duration) -> bool {
        self.len == 0 && now >= self.paused_until
    }

    /// Requests deferred for a retry of their own.
    pub fn deferred(&self) -> usize {
        self.deferred.len()
    }

    /// Replayed requests in flight ([`Exporter::adopt`]).
    pub fn replaying(&self) -> usize {
        self.deferred
            .as_slice()
            .iter()
            .filter(|d| d.ticket.is_some())
            .count()
    }

    /// Whether [`Exporter::adopt`] has room for another replay in flight.
    pub fn has_room_for_replay(&self) -> bool {
        self.replaying() + self.settled.len() < MAX_REPLAYING
    }

    /// Whether nothing but replays is held, in progress or deferred: what
    /// is left is safe in its spool.
    pub fn is_idle_but_replays(&self) -> bool {
        self.len == 0 && self.deferred.len() == self.replaying()
    }

    /// Whether sending is paused at `now`: the server asked to wait, or is
    /// unreachable. A spool's records are best replayed when it is not.
    pub fn is_paused(&self, now: Duration) -> bool {
        now < self.paused_until
    }

    /// Whether the server was unreachable at the last attempt (and nothing
    /// has reached it since).
    pub fn is_unreachable(&self) -> bool {
        self.outage > 0
    }

    /// Takes a request read back from a spool, to be sent as a deferred
    /// request is (with the same attempts, backoff and rate limits, asking
    /// the server first whether an ingest is stored already, and a `PATCH`
    /// only once its trace's spans are). Refused (false) when
    /// [`MAX_REPLAYING`] replays are in flight or settled and not taken, or
    /// there is no room to defer it. Its fate comes back through
    /// [`Exporter::take_settled`].
    pub fn adopt(&mut self, replay: Replay<'_>) -> bool {
        if !self.has_room_for_replay() {
            return false;
        }
        let full = self.deferred.len() >= self.settings.max_deferred
            || self.deferred_bytes.saturating_add(replay.body.len())
                > self.settings.max_deferred_bytes;
        let mut body = B::default();
        if full || body.push_str(replay.body).is_err() {
            return false;
        }
        let deferred = Deferred {
            kind: replay.kind,
            trace_id: replay.trace_id,
            body,
            spans: replay.spans,
            attempts: 0,
            not_before: Duration::ZERO,
            maybe_stored: replay.kind == RequestKind::Ingest && replay.attempts > 0,
            ticket: Some(replay.ticket),
        };
        if self.deferred.push(deferred).is_err() {
            return false;
        }
        self.deferred_bytes += replay.body.len();
        true
    }

    /// The next replayed request settled: delivered or refused for good
    /// ([`Settled::Done`]), or to be kept ([`Settled::Again`]).
    pub fn take_settled(&mut self) -> Option<(u64, Settled)> {
        self.settled.pop_front()
    }

    /// Advances the state machine at time `now` (monotonic, from any origin),
    /// sending at most one request through `transport`, encoded in `buf`.
    pub fn poll<P, T>(
        &mut self,
        now: Duration,
        source: &P,
        transport: &mut T,
        buf: &mut [u8],
    ) -> Poll
    where
        P: SpanSource<B> + ?Sized,
        T: Transport + ?Sized,
    {
        let poll = self.step(now, source, transport, buf);
        // Before the next poll frees any place of a batch whose requests
        // were deferred.
        self.publish_deferred(source);
        poll
    }

    fn step<P, T>(&mut self, now: Duration, source: &P, transport: &mut T, buf: &mut [u8]) -> Poll
    where
        P: SpanSource<B> + ?Sized,
        T: Transport + ?Sized,
    {
        // While the server is unreachable, or at shutdown, requests go to
        // the transport's spool rather than wait.
        let spooling =
            transport.spools() && (self.closing || (self.outage > 0 && now < self.paused_until));
        loop {
            if now < self.paused_until && !spooling {
                return Poll::Wait(self.paused_until);
            }
            // A deferred request that is due goes first: it is the oldest.
            if let Some(i) = self.due_deferred(now).filter(|_| !spooling) {
                return self.send_deferred(i, now, source, transport);
            }
            if self.len == 0 {
                match self.refill(now, source) {
                    Refill::Taken => {}
                    Refill::Nothing => {
                        let next_flush = self.last_flush + self.settings.flush_interval;
                        // While spooling, deferred requests wait for the server.
                        let next_deferred = self.next_deferred().filter(|_| !spooling);
                        return match next_deferred {
                            Some(at) => Poll::Wait(at.min(next_flush)),
                            None => Poll::Idle(next_flush),
                        };
                    }
                    Refill::NotReady => return Poll::Wait(now + NOT_READY_PAUSE),
                }
            }
            if self.cursor == self.len && self.phase == Phase::Spans {
                self.finish_batch(source);
                continue;
            }
            if now < self.retry_at && !spooling {
                let at = self
                    .next_deferred()
                    .map_or(self.retry_at, |d| d.min(self.retry_at));
                return Poll::Wait(at);
            }
            return match self.phase {
                Phase::Spans => self.send_spans(now, source, transport, buf, spooling),
                Phase::Patch => {
                    let spooling = spooling || self.spool_patch;
                    self.send_patch(now, source, transport, buf, spooling)
                }
            };
        }
    }

    /// Gives up at shutdown (time `now`) on everything held, deferred and
    /// queued. A transport that [spools](Transport::spools) gets all of it,
    /// as requests encoded in `buf`, while it takes them; the rest is
    /// dropped, the spans counted as dropped at shutdown and the trace
    /// statuses as failed patches. Replays in flight stay in their spool.
    pub fn abandon<P, T>(
        &mut self,
        now: Duration,
        source: &P,
        transport: &mut T,
        buf: &mut [u8],
    ) -> Abandoned
    where
        P: SpanSource<B> + ?Sized,
        T: Transport + ?Sized,
    {
        if transport.spools() {
            self.spool_all(now, source, transport, buf);
        }
        let mut lost = Abandoned {
            spans: self.len - self.cursor,
            patches: usize::from(self.phase == Phase::Patch),
        };
        for d in self
            .deferred
            .as_slice()
            .iter()
            .filter(|d| d.ticket.is_none())
        {
            match d.kind {
                RequestKind::Ingest => lost.spans += d.spans,
                RequestKind::Patch => lost.patches += 1,
            }
        }
        self.deferred.clear();
        self.deferred_bytes = 0;
        self.publish_deferred(source);
        self.finish_batch(source);
        add(&source.counters().dropped_at_shutdown, lost.spans);
        add(&source.counters().patches_failed, lost.patches);
        lost.spans += discard_queued(source);
        lost
    }

    /// Puts back the replayed statuses of `trace_id` unsent.
    fn settle_patches_again(&mut self, trace_id: TraceId) {
        let mut i = 0;
        while let Some(d) = self.deferred.as_slice().get(i) {
            if d.kind == RequestKind::Patch && d.trace_id == trace_id && d.ticket.is_some() {
                self.settle(i, Settled::Again);
            } else {
                i += 1;
            }
        }
    }

    /// Spools the deferred statuses of `trace_id` (not replays), whose spans
    /// just went to the spool: sent now, they would come before them.
    fn spool_patches<P, T>(&mut self, trace_id: TraceId, source: &P, transport: &mut T)
    where
        P: SpanSource<B> + ?Sized,
        T: Transport + ?Sized,
    {
        let mut i = 0;
        while let Some(d) = self.deferred.as_slice().get(i) {
            let ours = d.kind == RequestKind::Patch && d.trace_id == trace_id && d.ticket.is_none();
            if !ours {
                i += 1;
                continue;
            }
            let request = d.request(self.settings.timeout);
            give_up(&request, d.attempts, source, transport);
            self.remove_deferred(i);
        }
    }

    /// Spools the deferred requests (the oldest), then the batch and the
    /// queue's spans, until the spool refuses one.
    fn spool_all<P, T>(&mut self, now: Duration, source: &P, transport: &mut T, buf: &mut [u8])
    where
        P: SpanSource<B> + ?Sized,
        T: Transport + ?Sized,
    {
        let mut i = 0;
        while let Some(d) = self.deferred.as_slice().get(i) {
            if d.ticket.is_some() {
                i += 1;
                continue;
            }
            let request = d.request(self.settings.timeout);
            if !transport.spool(&request, d.attempts) {
                return;
            }
            count_spooled(&request, source.counters());
            self.remove_deferred(i);
        }
        self.closing = true;
        self.flush_requested = true;
        while self.closing && self.step(now, source, transport, buf) == Poll::Again {}
        self.closing = false;
    }

    /// Takes a batch from the queue if one is due.
    fn refill<P: SpanSource<B> + ?Sized>(&mut self, now: Duration, source: &P) -> Refill {
        let waiting = source.len();
        if waiting == 0 {
            self.flush_requested = false;
            if now >= self.last_flush + self.settings.flush_interval {
                self.last_flush = now;
            }
            return Refill::Nothing;
        }
        let due = self.flush_requested
            || waiting >= self.settings.batch_size
            || source.is_full()
            || now >= self.last_flush + self.settings.flush_interval;
        if !due {
            return Refill::Nothing;
        }
        while self.len < self.settings.batch_size {
            if !self.take(source) {
                break;
            }
        }
        // One request per trace: bring each trace's spans together, root last
        // so its request (which names the trace) comes after its children.
        let key = |s: &Span<B>| (s.trace_id(), s.is_root(), s.start());
        self.batch.as_mut_slice().sort_unstable_by_key(key);
        // Keep each trace's queued spans in one request: past the batch
        // size, take up to one batch more while a trace cut by it still has
        // its root to come and the queue holds spans. Only the first few
        // such traces are followed, so each span taken costs a few compares.
        let sorted = self.len;
        let mut open = self.open_traces();
        let limit = self.settings.batch_size.saturating_mul(2);
        while !open.is_empty() && self.len < limit && self.batch.has_room() {
            if !self.take(source) {
                break;
            }
            let last = &self.batch.as_slice()[self.len - 1];
            if last.is_root() {
                open.retain(|id| *id != last.trace_id());
            }
        }
        if self.len > sorted {
            self.batch.as_mut_slice().sort_unstable_by_key(key);
        }
        self.cursor = 0;
        self.phase = Phase::Spans;
        self.attempts = 0;
        self.maybe_stored = false;
        if self.len == 0 {
            // Whatever was taken was left out (tail sampling): its places
            // are free now, there being no batch to free them with.
            source.release();
            if source.is_empty() {
                return Refill::Nothing;
            }
            // Claimed by a producer that has not finished writing it.
            return Refill::NotReady;
        }
        self.last_flush = now;
        Refill::Taken
    }

    /// Moves one span from the queue into the batch; false when there was
    /// none to take or no room for it.
    fn take<P: SpanSource<B> + ?Sized>(&mut self, source: &P) -> bool {
        let Some(span) = source.pop() else {
            return false;
        };
        count_marks(source.counters(), &span);
        match self.batch.push(span) {
            Ok(()) => {
                self.len += 1;
                true
            }
            Err(_) => {
                // Storage smaller than batch_size, a configuration error of
                // the embedding code: count the loss. Its place is freed with
                // the batch's, or now if there is no batch (storage that
                // holds nothing), which would otherwise never end.
                add(&source.counters().dropped_oversize, 1);
                if self.len == 0 {
                    source.release();
                }
                false
            }
        }
    }

    /// Up to [`FOLLOWED`] traces in the (sorted) batch whose root is not in
    /// it: the last span of a trace's run is its root if it has one.
    fn open_traces(&self) -> heapless::Vec<TraceId, FOLLOWED> {
        let spans = &self.batch.as_slice()[..self.len];
        let last_of_run = |(i, s): &(usize, &Span<B>)| {
            spans
                .get(i + 1)
                .is_none_or(|n| n.trace_id() != s.trace_id())
        };
        spans
            .iter()
            .enumerate()
            .filter(|e| last_of_run(e) && !e.1.is_root())
            .map(|(_, s)| s.trace_id())
            .take(FOLLOWED)
            .collect()
    }

    fn finish_batch<P: SpanSource<B> + ?Sized>(&mut self, source: &P) {
        self.spool_patch = false;
        // Free the records before their places: once a flush sees them
        // released, their memory is gone too.
        self.batch.clear();
        source.release();
        self.len = 0;
        self.cursor = 0;
        self.phase = Phase::Spans;
        self.attempts = 0;
        self.maybe_stored = false;
    }

    /// End of the current trace's run of spans in the batch.
    fn group_end(&self) -> usize {
        let spans = &self.batch.as_slice()[..self.len];
        let trace = spans[self.cursor].trace_id();
        spans[self.cursor..]
            .iter()
            .position(|s| s.trace_id() != trace)
            .map_or(self.len, |n| self.cursor + n)
    }

    fn send_spans<P, T>(
        &mut self,
        now: Duration,
        source: &P,
        transport: &mut T,
        buf: &mut [u8],
        spooling: bool,
    ) -> Poll
    where
        P: SpanSource<B> + ?Sized,
        T: Transport + ?Sized,
    {
        // A transport that takes many traces gets the rest of the batch in
        // one request (as much as fits), and no PATCH.
        let many = transport.takes_many_traces();
        let end = if many { self.len } else { self.group_end() };
        let spans = &self.batch.as_slice()[self.cursor..end];
        let root = spans.last().filter(|s| s.is_root() && !many);
        let has_root = root.is_some();
        let members = match root {
            Some(r) => join_members(
                &mut self.members,
                self.trace_defaults.as_str(),
                r.metadata_members(),
            ),
            None if many => self.trace_defaults.as_str(),
            None => "",
        };
        let envelope = Envelope {
            project_id: self.project_id.as_str(),
            trace_name: root.map(|r| r.name()),
            trace_metadata: members,
        };
        let trace_id = spans[0].trace_id();
        let encoded = encode_ingest(spans, &envelope, buf).or_else(|e| {
            // Metadata too big to travel with the spans still reaches the
            // trace through the PATCH that follows its root.
            if envelope.trace_metadata.is_empty() {
                return Err(e);
            }
            let lean = Envelope {
                trace_metadata: "",
                ..envelope
            };
            encode_ingest(spans, &lean, buf)
        });
        let encoded = match encoded {
            Ok(encoded) => encoded,
            Err(_) => {
                add(&source.counters().dropped_oversize, 1);
                self.advance(1, end);
                return Poll::Again;
            }
        };
        let n = encoded.spans;
        let request = Request {
            kind: RequestKind::Ingest,
            trace_id,
            body: &buf[..encoded.len],
            spans: n,
            timeout: self.settings.timeout,
        };
        let delivered = |this: &mut Self| {
            this.advance(n, end);
            if this.cursor == end && has_root {
                this.phase = Phase::Patch;
            }
        };
        if spooling {
            if !transport.spool(&request, self.attempts) {
                return self.spool_refused(now);
            }
            count_spooled(&request, source.counters());
            delivered(self);
            return Poll::Again;
        }
        let outcome = if self.maybe_stored {
            ask_then_send(&request, source, transport)
        } else {
            send(&request, source, transport)
        };
        match outcome {
            Outcome::Delivered => {
                add(&source.counters().spans_delivered, n);
                self.outage = 0;
                delivered(self);
            }
            Outcome::Rejected => {
                add(&source.counters().spans_rejected, n);
                self.advance(n, end);
            }
            Outcome::Retry {
                after,
                reason: RetryReason::Failed,
            } => {
                add(&source.counters().retries, 1);
                let body = &buf[..encoded.len];
                if self.defer(RequestKind::Ingest, trace_id, body, n, now, after) {
                    // The spans travel on in the deferred request.
                    delivered(self);
                } else if self.retry_in_place(now, after) {
                    if give_up(&request, self.settings.max_attempts, source, transport) {
                        delivered(self);
                        // Its trace's status follows it into the spool.
                        self.spool_patch = self.phase == Phase::Patch;
                    } else {
                        self.advance(n, end);
                    }
                } else {
                    self.maybe_stored = true;
                }
            }
            Outcome::Retry { after, reason } => self.pause(now, after, reason, source),
        }
        Poll::Again
    }

    fn send_patch<P, T>(
        &mut self,
        now: Duration,
        source: &P,
        transport: &mut T,
        buf: &mut [u8],
        spooling: bool,
    ) -> Poll
    where
        P: SpanSource<B> + ?Sized,
        T: Transport + ?Sized,
    {
        // The root is the span just before the cursor.
        let root = &self.batch.as_slice()[self.cursor - 1];
        let trace_id = root.trace_id();
        let members = join_members(
            &mut self.members,
            self.trace_defaults.as_str(),
            root.metadata_members(),
        );
        let len = encode_patch(root.status(), members, buf)
            .or_else(|_| encode_patch(root.status(), "", buf))
            .unwrap_or(0);
        if self.ingest_deferred(trace_id) {
            // Its spans wait for a retry: the status follows them.
            if self.defer(RequestKind::Patch, trace_id, &buf[..len], 0, now, None) {
                self.patch_done();
                return Poll::Again;
            }
        }
        let request = Request {
            kind: RequestKind::Patch,
            trace_id,
            body: &buf[..len],
            spans: 0,
            timeout: self.settings.timeout,
        };
        if spooling {
            if !transport.spool(&request, self.attempts) {
                return self.spool_refused(now);
            }
            count_spooled(&request, source.counters());
            self.patch_done();
            return Poll::Again;
        }
        match send(&request, source, transport) {
            Outcome::Delivered => {
                add(&source.counters().patches_delivered, 1);
                self.outage = 0;
                self.patch_done();
            }
            Outcome::Rejected => {
                add(&source.counters().patches_failed, 1);
                self.patch_done();
            }
            Outcome::Retry {
                after,
                reason: RetryReason::Failed,
            } => {
                add(&source.counters().retries, 1);
                if self.defer(RequestKind::Patch, trace_id, &buf[..len], 0, now, after) {
                    self.patch_done();
                } else if self.retry_in_place(now, after) {
                    give_up(&request, self.settings.max_attempts, source, transport);
                    self.patch_done();
                }
            }
            Outcome::Retry { after, reason } => self.pause(now, after, reason, source),
        }
        Poll::Again
    }

    fn patch_done(&mut self) {
        self.spool_patch = false;
        self.phase = Phase::Spans;
        self.attempts = 0;
        self.retry_at = Duration::ZERO;
    }

    fn send_deferred<P, T>(
        &mut self,
        i: usize,
        now: Duration,
        source: &P,
        transport: &mut T,
    ) -> Poll
    where
        P: SpanSource<B> + ?Sized,
        T: Transport + ?Sized,
    {
        let d = &self.deferred.as_slice()[i];
        let (kind, spans, maybe_stored, ticket) = (d.kind, d.spans, d.maybe_stored, d.ticket);
        let request = d.request(self.settings.timeout);
        let outcome = if maybe_stored {
            ask_then_send(&request, source, transport)
        } else {
            send(&request, source, transport)
        };
        let ingest = kind == RequestKind::Ingest;
        let counters = source.counters();
        match outcome {
            Outcome::Delivered => {
                self.outage = 0;
                match (ingest, ticket) {
                    (true, None) => add(&counters.spans_delivered, spans),
                    (true, Some(_)) => add(&counters.spans_replayed, spans),
                    (false, _) => add(&counters.patches_delivered, 1),
                }
                self.settle(i, Settled::Done);
            }
            Outcome::Rejected => {
                match (ingest, ticket) {
                    (true, None) => add(&counters.spans_rejected, spans),
                    (true, Some(_)) => add(&counters.spool_dropped_rejected, spans),
                    (false, _) => add(&counters.patches_failed, 1),
                }
                self.settle(i, Settled::Done);
            }
            Outcome::Retry {
                after,
                reason: RetryReason::Failed,
            } => {
                add(&source.counters().retries, 1);
                let attempts = self.deferred.as_slice()[i].attempts + 1;
                if attempts >= self.settings.max_attempts {
                    let trace_id = request.trace_id;
                    let spooled =
                        ticket.is_none() && give_up(&request, attempts, source, transport);
                    // A replay stays in its spool for the next one, and so
                    // do its trace's replayed statuses: sent now, they would
                    // come before its spans.
                    self.settle(i, Settled::Again);
                    if ticket.is_some() && ingest {
                        self.settle_patches_again(trace_id);
                    }
                    if spooled && ingest {
                        // Its trace's status follows it, in order.
                        self.spool_patches(trace_id, source, transport);
                    }
                } else {
                    let at = now.saturating_add(self.delay(attempts, after));
                    let d = &mut self.deferred.as_mut_slice()[i];
                    d.attempts = attempts;
                    d.not_before = at;
                    d.maybe_stored = ingest;
                }
            }
            Outcome::Retry { after, reason } => self.pause(now, after, reason, source),
        }
        Poll::Again
    }

    /// Keeps a failed request for a retry of its own, after one attempt;
    /// false when there is no room for it.
    fn defer(
        &mut self,
        kind: RequestKind,
        trace_id: TraceId,
        body: &[u8],
        spans: usize,
        now: Duration,
        after: Option<Duration>,
    ) -> bool {
        let full = self.deferred.len() >= self.settings.max_deferred
            || self.deferred_bytes.saturating_add(body.len()) > self.settings.max_deferred_bytes;
        let Ok(text) = core::str::from_utf8(body) else {
            return false;
        };
        let mut copy = B::default();
        if full || text.len() > copy.max_len() || copy.push_str(text).is_err() {
            return false;
        }
        // A status waiting for its spans is sent as soon as they are stored.
        let first = spans > 0 || !self.ingest_deferred(trace_id);
        let (attempts, not_before) = if first {
            (1, now.saturating_add(self.delay(1, after)))
        } else {
            (0, Duration::ZERO)
        };
        let deferred = Deferred {
            kind,
            trace_id,
            body: copy,
            spans,
            attempts,
            not_before,
            maybe_stored: kind == RequestKind::Ingest,
            ticket: None,
        };
        if self.deferred.push(deferred).is_err() {
            return false;
        }
        self.deferred_bytes += body.len();
        true
    }

    /// Tells flushers how many requests are deferred (replays aside: they
    /// are safe in their spool).
    fn publish_deferred<P: SpanSource<B> + ?Sized>(&self, source: &P) {
        let own = self.deferred.len() - self.replaying();
        source
            .counters()
            .deferred
            .store(own, core::sync::atomic::Ordering::Release);
    }

    fn remove_deferred(&mut self, i: usize) -> Deferred<B> {
        let d = self.deferred.remove(i);
        self.deferred_bytes = self.deferred_bytes.saturating_sub(d.body.len());
        d
    }

    /// Removes deferred request `i`, telling its spool what became of it if
    /// it is a replay.
    fn settle(&mut self, i: usize, settled: Settled) {
        if let Some(ticket) = self.remove_deferred(i).ticket {
            // Room is kept for it: `adopt` counts the settled ones.
            let _ = self.settled.push_back((ticket, settled));
        }
    }

    /// The spool refused a request: sending waits as it would without one
    /// (and shutdown drops what is left); a status that was to follow its
    /// spans there is sent as any other.
    fn spool_refused(&mut self, now: Duration) -> Poll {
        self.closing = false;
        if self.spool_patch {
            self.spool_patch = false;
            return Poll::Again;
        }
        Poll::Wait(self.paused_until.max(now + NOT_READY_PAUSE))
    }

    fn ingest_deferred(&self, trace_id: TraceId) -> bool {
        self.deferred
            .as_slice()
            .iter()
            .any(|d| d.kind == RequestKind::Ingest && d.trace_id == trace_id)
    }

    /// A deferred request may go when its time has come, and a status only
    /// once no request with its trace's spans is deferred.
    fn sendable(&self, d: &Deferred<B>) -> bool {
        d.kind == RequestKind::Ingest || !self.ingest_deferred(d.trace_id)
    }

    /// The oldest deferred request that may go at `now`.
    fn due_deferred(&self, now: Duration) -> Option<usize> {
        self.deferred
            .as_slice()
            .iter()
            .position(|d| d.not_before <= now && self.sendable(d))
    }

    /// When the next deferred request may go.
    fn next_deferred(&self) -> Option<Duration> {
        self.deferred
            .as_slice()
            .iter()
            .filter(|d| self.sendable(d))
            .map(|d| d.not_before)
            .min()
    }

    fn advance(&mut self, n: usize, end: usize) {
        self.cursor = (self.cursor + n).min(end);
        self.attempts = 0;
        self.maybe_stored = false;
        self.retry_at = Duration::ZERO;
    }

    /// Schedules another attempt of the batch's current request. Returns true
    /// when it has used up its attempts and must be dropped.
    fn retry_in_place(&mut self, now: Duration, after: Option<Duration>) -> bool {
        self.attempts += 1;
        if self.attempts >= self.settings.max_attempts {
            self.attempts = 0;
            self.retry_at = Duration::ZERO;
            return true;
        }
        self.retry_at = now.saturating_add(self.delay(self.attempts, after));
        false
    }

    /// Pauses all sending: the server asked to slow down or is unreachable.
    /// Costs the request no attempt.
    fn pause<P: SpanSource<B> + ?Sized>(
        &mut self,
        now: Duration,
        after: Option<Duration>,
        reason: RetryReason,
        source: &P,
    ) {
        add(&source.counters().retries, 1);
        let n = match reason {
            RetryReason::Unreachable => {
                self.outage = self.outage.saturating_add(1);
                self.outage
            }
            _ => 1,
        };
        self.paused_until = now.saturating_add(self.delay(n, after));
    }

    /// The backoff before attempt `n + 1`, or the server's `Retry-After` if longer.
    fn delay(&mut self, n: u32, after: Option<Duration>) -> Duration {
        let delay = self.backoff(n);
        after.map_or(delay, |after| after.min(MAX_RETRY_AFTER).max(delay))
    }

    /// The delay before attempt `n + 1`: `base * 2^(n-1)`, capped, then
    /// jittered into its upper half ("equal jitter"), so retries from many
    /// clients spread out yet never come sooner than half the nominal delay.
    pub fn backoff(&mut self, n: u32) -> Duration {
        let nominal = self
            .settings
            .backoff_base
            .saturating_mul(1u32 << n.saturating_sub(1).min(20))
            .min(self.settings.backoff_cap);
        let half = nominal / 2;
        let jitter_nanos = match u64::try_from(half.as_nanos()) {
            Ok(0) | Err(_) => 0,
            Ok(h) => self.rng.next_u64() % (h + 1),
        };
        nominal - half + Duration::from_nanos(jitter_nanos)
    }
}

/// `defaults` and `own` metadata members as one list, in `scratch` when both
/// are there (or `own` alone when they do not fit).
fn join_members<'a, B: Buffer>(scratch: &'a mut B, defaults: &str, own: &'a str) -> &'a str {
    if defaults.is_empty() {
        return own;
    }
    scratch.clear();
    let joined = scratch.push_str(defaults).is_ok()
        && (own.is_empty() || (scratch.push_str(",").is_ok() && scratch.push_str(own).is_ok()));
    if joined {
        scratch.as_str()
    } else {
        own
    }
}

/// Drops every queued span, counting each in `dropped_at_shutdown`;
/// returns how many.
pub(crate) fn discard_queued<B: Buffer, P: SpanSource<B> + ?Sized>(source: &P) -> usize {
    let mut dropped = 0;
    while let Some(span) = source.pop() {
        count_marks(source.counters(), &span);
        dropped += 1;
    }
    source.release();
    add(&source.counters().dropped_at_shutdown, dropped);
    dropped
}

/// A request that used up its attempts: spooled if the transport keeps
/// such requests, else dropped; counted either way. Returns whether it was
/// spooled.
fn give_up<B, P, T>(request: &Request<'_>, attempts: u32, source: &P, transport: &mut T) -> bool
where
    B: Buffer,
    P: SpanSource<B> + ?Sized,
    T: Transport + ?Sized,
{
    let counters = source.counters();
    let kept = transport.spools() && transport.spool(request, attempts);
    match (request.kind, kept) {
        (_, true) => count_spooled(request, counters),
        (RequestKind::Ingest, false) => add(&counters.dropped_after_retries, request.spans),
        (RequestKind::Patch, false) => add(&counters.patches_failed, 1),
    }
    kept
}

/// Counts `request` as spooled.
fn count_spooled(request: &Request<'_>, counters: &crate::stats::Counters) {
    match request.kind {
        RequestKind::Ingest => add(&counters.spans_spooled, request.spans),
        RequestKind::Patch => add(&counters.patches_spooled, 1),
    }
}

/// Sends one request, counting it.
fn send<B, P, T>(request: &Request<'_>, source: &P, transport: &mut T) -> Outcome
where
    B: Buffer,
    P: SpanSource<B> + ?Sized,
    T: Transport + ?Sized,
{
    let outcome = transport.send(request);
    add(&source.counters().requests, 1);
    add(&source.counters().bytes_sent, request.body.len());
    outcome
}

/// For a request whose earlier attempt may have been stored: asks the
/// server, and sends only if it does not hold the spans yet.
fn ask_then_send<B, P, T>(request: &Request<'_>, source: &P, transport: &mut T) -> Outcome
where
    B: Buffer,
    P: SpanSource<B> + ?Sized,
    T: Transport + ?Sized,
{
    match transport.lookup(request) {
        Lookup::Stored => {
            add(&source.counters().requests, 1);
            add(&source.counters().found_stored, 1);
            Outcome::Delivered
        }
        Lookup::Missing => {
            add(&source.counters().requests, 1);
            send(request, source, transport)
        }
        Lookup::Unknown => send(request, source, transport),
    }
}
