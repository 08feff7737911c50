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

use core::time::Duration;

use crate::buffer::Buffer;
use crate::config::ExportSettings;
use crate::encode::{encode_ingest, encode_patch, Envelope};
use crate::id::IdGenerator;
use crate::pipeline::Pipeline;
use crate::queue::Slot;
use crate::span::Span;
use crate::stats::add;
use crate::transport::{Outcome, Request, RequestKind, RetryReason, Transport};

/// Where the exporter keeps the batch it is sending.
///
/// `heapless::Vec<Span<B>, N>` with no allocator (`N` bounds the batch size),
/// `Vec<Span<B>>` with the `alloc` feature.
pub trait BatchStorage<T>: Default {
    /// Adds `value`, or hands it back when full.
    fn push(&mut self, value: T) -> Result<(), T>;
    /// The contents.
    fn as_slice(&self) -> &[T];
    /// The contents, to sort.
    fn as_mut_slice(&mut self) -> &mut [T];
    /// Drops everything.
    fn clear(&mut self);
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
    fn clear(&mut self) {
        alloc::vec::Vec::clear(self);
    }
}

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

/// Drains a [`Pipeline`] into a [`Transport`] (see the module docs).
pub struct Exporter<B: Buffer, L: BatchStorage<Span<B>>> {
    settings: ExportSettings,
    project_id: B,
    batch: L,
    len: usize,
    cursor: usize,
    phase: Phase,
    attempts: u32,
    /// Consecutive pauses for an unreachable server, for the backoff.
    outage: u32,
    not_before: Duration,
    last_flush: Duration,
    flush_requested: bool,
    rng: IdGenerator,
}

impl<B: Buffer, L: BatchStorage<Span<B>>> Exporter<B, L> {
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
            outage: 0,
            not_before: Duration::ZERO,
            last_flush: Duration::ZERO,
            flush_requested: false,
            rng: IdGenerator::from_seed(seed),
        }
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

    /// Whether nothing is held or in progress (the queue may still hold spans).
    pub fn is_idle(&self) -> bool {
        self.len == 0
    }

    /// Advances the state machine at time `now` (monotonic, from any origin),
    /// sending at most one request through `transport`, encoded in `buf`.
    pub fn poll<S, T>(
        &mut self,
        now: Duration,
        pipeline: &Pipeline<B, S>,
        transport: &mut T,
        buf: &mut [u8],
    ) -> Poll
    where
        S: AsRef<[Slot<Span<B>>]>,
        T: Transport + ?Sized,
    {
        loop {
            if self.len == 0 {
                match self.refill(now, pipeline) {
                    Refill::Taken => {}
                    Refill::Nothing => {
                        return Poll::Idle(self.last_flush + self.settings.flush_interval)
                    }
                    Refill::NotReady => return Poll::Wait(now + NOT_READY_PAUSE),
                }
            }
            if now < self.not_before {
                return Poll::Wait(self.not_before);
            }
            if self.cursor == self.len && self.phase == Phase::Spans {
                self.finish_batch(pipeline);
                continue;
            }
            return match self.phase {
                Phase::Spans => self.send_spans(now, pipeline, transport, buf),
                Phase::Patch => self.send_patch(now, pipeline, transport, buf),
            };
        }
    }

    /// Drops everything held and everything queued, counting it as dropped at
    /// shutdown. Returns how many spans that was.
    pub fn abandon<S: AsRef<[Slot<Span<B>>]>>(&mut self, pipeline: &Pipeline<B, S>) -> usize {
        let held = self.len - self.cursor;
        if self.phase == Phase::Patch {
            add(&pipeline.stats.patches_failed, 1);
        }
        self.finish_batch(pipeline);
        add(&pipeline.stats.dropped_at_shutdown, held);
        held + pipeline.discard_queued()
    }

    /// Takes a batch from the queue if one is due.
    fn refill<S: AsRef<[Slot<Span<B>>]>>(
        &mut self,
        now: Duration,
        pipeline: &Pipeline<B, S>,
    ) -> Refill {
        let waiting = pipeline.len();
        if waiting == 0 {
            self.flush_requested = false;
            if now >= self.last_flush + self.settings.flush_interval {
                self.last_flush = now;
            }
            return Refill::Nothing;
        }
        let due = self.flush_requested
            || waiting >= self.settings.batch_size
            || pipeline.is_full()
            || now >= self.last_flush + self.settings.flush_interval;
        if !due {
            return Refill::Nothing;
        }
        while self.len < self.settings.batch_size {
            let Some(span) = pipeline.pop() else {
                break;
            };
            match self.batch.push(span) {
                Ok(()) => self.len += 1,
                Err(span) => {
                    // Storage smaller than batch_size: put nothing back out of
                    // order; the span is held in a one-slot overflow instead.
                    self.overflow(span, pipeline);
                    break;
                }
            }
        }
        // One request per trace: bring each trace's spans together, root last
        // so its request (which names the trace) comes after its children.
        self.batch
            .as_mut_slice()
            .sort_unstable_by_key(|s| (s.trace_id(), s.is_root(), s.start()));
        self.cursor = 0;
        self.phase = Phase::Spans;
        self.attempts = 0;
        if self.len == 0 {
            // Claimed by a producer that has not finished writing it.
            return Refill::NotReady;
        }
        self.last_flush = now;
        Refill::Taken
    }

    fn overflow<S: AsRef<[Slot<Span<B>>]>>(&mut self, _span: Span<B>, pipeline: &Pipeline<B, S>) {
        // Only reachable when the batch storage holds fewer than `batch_size`
        // spans, a configuration error of the embedding code; count the loss.
        // Its place is freed with the batch's, or now if there is no batch
        // (storage that holds nothing), which would otherwise never end.
        add(&pipeline.stats.dropped_oversize, 1);
        if self.len == 0 {
            pipeline.release_popped();
        }
    }

    fn finish_batch<S: AsRef<[Slot<Span<B>>]>>(&mut self, pipeline: &Pipeline<B, S>) {
        // Free the records before their places: once a flush sees them
        // released, their memory is gone too.
        self.batch.clear();
        pipeline.release_popped();
        self.len = 0;
        self.cursor = 0;
        self.phase = Phase::Spans;
        self.attempts = 0;
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

    fn send_spans<S, T>(
        &mut self,
        now: Duration,
        pipeline: &Pipeline<B, S>,
        transport: &mut T,
        buf: &mut [u8],
    ) -> Poll
    where
        S: AsRef<[Slot<Span<B>>]>,
        T: Transport + ?Sized,
    {
        let end = self.group_end();
        let spans = &self.batch.as_slice()[self.cursor..end];
        let root = spans.last().filter(|s| s.is_root());
        let has_root = root.is_some();
        let envelope = Envelope {
            project_id: self.project_id.as_str(),
            trace_name: root.map(|r| r.name()),
            trace_metadata: root.map_or("", |r| r.metadata_members()),
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
                add(&pipeline.stats.dropped_oversize, 1);
                self.advance(1, end);
                return Poll::Again;
            }
        };
        let request = Request {
            kind: RequestKind::Ingest,
            trace_id,
            body: &buf[..encoded.len],
            spans: encoded.spans,
            timeout: self.settings.timeout,
        };
        let outcome = transport.send(&request);
        add(&pipeline.stats.requests, 1);
        add(&pipeline.stats.bytes_sent, encoded.len);
        let n = encoded.spans;
        match outcome {
            Outcome::Delivered => {
                add(&pipeline.stats.spans_delivered, n);
                self.outage = 0;
                self.advance(n, end);
                if self.cursor == end && has_root {
                    self.phase = Phase::Patch;
                }
            }
            Outcome::Rejected => {
                add(&pipeline.stats.spans_rejected, n);
                self.advance(n, end);
            }
            Outcome::Retry { after, reason } => {
                if self.retry(now, after, reason, pipeline) {
                    add(&pipeline.stats.dropped_after_retries, n);
                    self.advance(n, end);
                }
            }
        }
        Poll::Again
    }

    fn send_patch<S, T>(
        &mut self,
        now: Duration,
        pipeline: &Pipeline<B, S>,
        transport: &mut T,
        buf: &mut [u8],
    ) -> Poll
    where
        S: AsRef<[Slot<Span<B>>]>,
        T: Transport + ?Sized,
    {
        // The root is the span just before the cursor.
        let root = &self.batch.as_slice()[self.cursor - 1];
        let len = encode_patch(root.status(), root.metadata_members(), buf)
            .or_else(|_| encode_patch(root.status(), "", buf))
            .unwrap_or(0);
        let request = Request {
            kind: RequestKind::Patch,
            trace_id: root.trace_id(),
            body: &buf[..len],
            spans: 0,
            timeout: self.settings.timeout,
        };
        let outcome = transport.send(&request);
        add(&pipeline.stats.requests, 1);
        add(&pipeline.stats.bytes_sent, len);
        let done = match outcome {
            Outcome::Delivered => {
                self.outage = 0;
                true
            }
            Outcome::Rejected => {
                add(&pipeline.stats.patches_failed, 1);
                true
            }
            Outcome::Retry { after, reason } => {
                let gave_up = self.retry(now, after, reason, pipeline);
                if gave_up {
                    add(&pipeline.stats.patches_failed, 1);
                }
                gave_up
            }
        };
        if done {
            self.phase = Phase::Spans;
            self.attempts = 0;
        }
        Poll::Again
    }

    fn advance(&mut self, n: usize, end: usize) {
        self.cursor = (self.cursor + n).min(end);
        self.attempts = 0;
    }

    /// Schedules the next attempt. Returns true when the request has used up
    /// its attempts and must be dropped.
    fn retry<S: AsRef<[Slot<Span<B>>]>>(
        &mut self,
        now: Duration,
        after: Option<Duration>,
        reason: RetryReason,
        pipeline: &Pipeline<B, S>,
    ) -> bool {
        add(&pipeline.stats.retries, 1);
        let delay = match reason {
            RetryReason::Failed => {
                self.attempts += 1;
                if self.attempts >= self.settings.max_attempts {
                    self.attempts = 0;
                    return true;
                }
                self.backoff(self.attempts)
            }
            RetryReason::RateLimited => self.backoff(1),
            RetryReason::Unreachable => {
                self.outage = self.outage.saturating_add(1);
                self.backoff(self.outage)
            }
        };
        let wait = after.map_or(delay, |after| after.min(MAX_RETRY_AFTER).max(delay));
        self.not_before = now.saturating_add(wait);
        false
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
