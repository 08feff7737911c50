//! Counters of everything that happens to spans, so no loss goes unseen.
//!
//! The hot path touches no shared counter: spans queued are the queue's own
//! push count, spans ended are those plus the drops, and spans started are
//! counted per lane of the [`crate::SpanQueue`], by the producer that owns it.

use core::sync::atomic::Ordering::Relaxed;

#[cfg(target_has_atomic = "64")]
pub(crate) type Counter = core::sync::atomic::AtomicU64;
#[cfg(not(target_has_atomic = "64"))]
pub(crate) type Counter = core::sync::atomic::AtomicU32;

macro_rules! stats {
    ($($(#[$doc:meta])* $field:ident),* $(,)?) => {
        /// The live counters of what became of the spans of a
        /// [`crate::SpanSource`], updated by the exporter and the queue with
        /// relaxed atomics. Read them through [`crate::SpanQueue::snapshot`].
        #[derive(Debug, Default)]
        pub struct Counters {
            $(pub(crate) $field: Counter,)*
            /// Requests deferred for a retry of their own: a gauge.
            pub(crate) deferred: core::sync::atomic::AtomicUsize,
        }

        /// A copy of the counters at one moment.
        ///
        /// ```
        /// let captured = vigil::sink::capture(|| vigil::trace("job", |_| ()));
        /// let stats = captured.report.unwrap().stats;
        /// assert_eq!((stats.spans_started, stats.spans_delivered), (1, 1));
        /// assert_eq!((stats.dropped(), stats.in_flight()), (0, 0));
        /// ```
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct StatsSnapshot {
            /// Spans started (sampled ones).
            pub spans_started: u64,
            /// Spans ended: queued or dropped because the queue was full.
            pub spans_ended: u64,
            /// Spans accepted into the queue.
            pub spans_queued: u64,
            $($(#[$doc])* pub $field: u64,)*
        }

        impl Counters {
            /// All counters at zero.
            pub const fn new() -> Self {
                Counters {
                    $($field: Counter::new(0),)*
                    deferred: core::sync::atomic::AtomicUsize::new(0),
                }
            }

            /// These counters as the view of one destination among several,
            /// each taking the queue's spans through a buffer of its own:
            /// what happened on the application's side (spans started,
            /// ended, queued or refused by the full queue, updates refused,
            /// mask panics) from `queue`, the queue's own snapshot, and the
            /// rest from these, where spans dropped because the buffer was
            /// full count as `dropped_queue_full` too.
            pub fn snapshot_over(&self, queue: &StatsSnapshot) -> StatsSnapshot {
                let mut s = self.snapshot(queue.spans_queued, queue.spans_started);
                s.spans_ended = queue.spans_ended;
                s.dropped_queue_full += queue.dropped_queue_full;
                s.dropped_after_close = queue.dropped_after_close;
                s.refused_updates = queue.refused_updates;
                s.mask_panics = queue.mask_panics;
                s
            }

            /// Counts `n` spans dropped because a buffer of the consumer's
            /// own, past the queue, was full.
            pub fn count_dropped_queue_full(&self, n: usize) {
                add(&self.dropped_queue_full, n);
            }

            /// Counts `n` spans dropped unsent at shutdown by a consumer that
            /// keeps buffers of its own past the queue.
            pub fn count_dropped_at_shutdown(&self, n: usize) {
                add(&self.dropped_at_shutdown, n);
            }

            /// Counts `spans` dropped from a spool, for `reason`.
            pub fn count_spool_dropped(&self, reason: SpoolDrop, spans: usize) {
                let counter = match reason {
                    SpoolDrop::Size => &self.spool_dropped_size,
                    SpoolDrop::Age => &self.spool_dropped_age,
                    SpoolDrop::Corrupt => &self.spool_dropped_corrupt,
                };
                add(counter, spans);
            }

            /// Requests deferred for a retry of their own (see
            /// [`crate::SpanQueue::deferred_requests`]).
            pub fn deferred_requests(&self) -> usize {
                self.deferred.load(core::sync::atomic::Ordering::Acquire)
            }

            pub(crate) fn snapshot(&self, queued: u64, started: u64) -> StatsSnapshot {
                let mut s = StatsSnapshot {
                    spans_started: started,
                    spans_queued: queued,
                    $($field: self.$field.load(Relaxed).into(),)*
                    ..StatsSnapshot::default()
                };
                s.spans_ended = queued + s.dropped_queue_full + s.dropped_after_close;
                s
            }
        }
    };
}

stats! {
    /// Spans dropped because the queue was full.
    dropped_queue_full,
    /// Spans the server accepted.
    spans_delivered,
    /// Spans in requests the server rejected (4xx other than 408/429).
    spans_rejected,
    /// Spans dropped after their request used up its attempts.
    dropped_after_retries,
    /// Spans dropped because not even their bare form fits a request.
    dropped_oversize,
    /// Spans dropped unsent at shutdown (deadline reached or server away).
    dropped_at_shutdown,
    /// Spans that ended after their pipeline was closed (client shut down).
    dropped_after_close,
    /// Spans with a payload field or entry cut to fit its limit (counted as
    /// the exporter takes them from the queue).
    payloads_truncated,
    /// Metadata, events, payloads or statuses sent to a span from another
    /// thread or task (through a `Context`) and not applied: the span had
    /// ended, or 1,024 updates were already waiting for it.
    refused_updates,
    /// Trace status/metadata updates (PATCH) that failed for good, or were
    /// never sent because shutdown came first.
    patches_failed,
    /// Trace status/metadata updates (PATCH) the server accepted: traces
    /// completed on the server.
    patches_delivered,
    /// Requests whose answer was lost but which the server had stored, found
    /// by asking it ([`crate::Transport::lookup`]) before sending them again.
    found_stored,
    /// Requests sent, retries and look-ups included.
    requests,
    /// Requests that had to be retried.
    retries,
    /// Request body bytes sent.
    bytes_sent,
    /// Spans in which a U+0000 (which the server cannot store) was sent as
    /// U+FFFD (counted as the exporter takes them from the queue).
    nul_replaced,
    /// Spans with a payload field or entry that could not be written as JSON
    /// (its `Serialize` failed, or a map key had no string form), recorded as
    /// `{"vigil.unserializable": "<why>"}` (counted as the exporter takes
    /// them from the queue).
    payloads_unserializable,
    /// Payloads (input, output, a metadata entry or an event's attributes)
    /// left out because the `mask` hook panicked on them, or because their
    /// span's thread was already unwinding from a panic (the hook is not
    /// called then: a second panic would abort the process). Each is
    /// recorded as `{"vigil.masked": "the mask hook panicked"}`.
    mask_panics,
    /// Spans left out by tail sampling: their trace was kept by no rule,
    /// nor by the sample rate (see [`crate::sample`]). Not a loss.
    spans_sampled_out,
    /// Traces left out by tail sampling.
    traces_sampled_out,
    /// Traces tail sampling kept because a span of theirs failed.
    traces_kept_for_errors,
    /// Traces tail sampling kept because they took longer than the limit.
    traces_kept_for_latency,
    /// Traces tail sampling kept because they cost more than the limit.
    traces_kept_for_cost,
    /// Traces tail sampling kept at the sample rate (no rule kept them).
    traces_kept_by_rate,
    /// Traces tail sampling decided before their root ended: held past the
    /// hold timeout, or past the most spans held, or at a flush. Each is
    /// counted by its decision too.
    traces_decided_early,
    /// Spans of the traces decided early.
    spans_decided_early,
    /// Spans in requests kept in the spool directory, not delivered: the
    /// server was unreachable, their attempts ran out, or shutdown came
    /// first. A later replay (by this process or the next) delivers them.
    spans_spooled,
    /// Trace statuses (`PATCH`es) kept in the spool directory.
    patches_spooled,
    /// Spans from the spool (this process's or an earlier one's) that the
    /// server now stores.
    spans_replayed,
    /// Spans dropped from the spool to keep it under its size cap, the
    /// oldest first.
    spool_dropped_size,
    /// Spans dropped from the spool because they were older than its age cap.
    spool_dropped_age,
    /// Records of the spool found corrupt (a torn write, a damaged file)
    /// and skipped, never replayed.
    spool_dropped_corrupt,
    /// Spans from the spool the server rejected (4xx other than 408/429).
    spool_dropped_rejected,
}

/// Why spans left a spool undelivered (see [`Counters::count_spool_dropped`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpoolDrop {
    /// To keep the spool under its size cap.
    Size,
    /// Older than the spool's age cap.
    Age,
    /// A corrupt record (counted in records, its spans unknown).
    Corrupt,
}

#[inline]
pub(crate) fn add(counter: &Counter, n: usize) {
    // Truncation only matters on 32-bit targets past 4 billion.
    counter.fetch_add(n as _, Relaxed);
}

impl StatsSnapshot {
    /// Every span lost, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.spans_rejected
            + self.dropped_after_retries
            + self.dropped_oversize
            + self.dropped_at_shutdown
            + self.dropped_after_close
    }

    /// Spans ended and not yet delivered, dropped, sampled out or spooled.
    pub fn in_flight(&self) -> u64 {
        self.spans_ended.saturating_sub(
            self.spans_delivered + self.dropped() + self.spans_sampled_out + self.spans_spooled,
        )
    }
}
