//! Counters of everything that happens to spans, so no loss goes unseen.
//!
//! The hot path touches no shared counter: spans queued are the queue's own
//! push count, spans ended are those plus the drops, and spans started are
//! counted in shards that threads own (see [`StartedShard`]).

use core::sync::atomic::Ordering::Relaxed;

#[cfg(target_has_atomic = "64")]
pub(crate) type Counter = core::sync::atomic::AtomicU64;
#[cfg(not(target_has_atomic = "64"))]
pub(crate) type Counter = core::sync::atomic::AtomicU32;

/// Shards of the `spans_started` counter: [`StartedShard::SHARED`] and
/// `STARTED_SHARDS - 1` that threads may own.
pub const STARTED_SHARDS: usize = 16;

/// Where a thread counts the spans it starts.
///
/// An owned shard is written by one thread only, so counting is a plain
/// load and store rather than a locked read-modify-write (a full barrier on
/// x86, and most of a counter's cost); any number of threads may count in
/// the shared one at once. Whoever hands out owned shards sees to it that
/// one thread holds each at a time, and that a shard passes to its next
/// owner through a release and acquire, so no count is lost in between. If
/// two threads did count in one owned shard at once, some of their counts
/// could be lost; nothing worse.
///
/// ```
/// use vigil_core::{Stats, StartedShard};
///
/// let stats = Stats::new();
/// stats.span_started(StartedShard::SHARED);
/// stats.span_started(StartedShard::owned(3).unwrap());
/// assert!(StartedShard::owned(0).is_none(), "0 is the shared shard");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartedShard(usize);

impl StartedShard {
    /// The shard every thread may count in at once.
    pub const SHARED: StartedShard = StartedShard(0);

    /// Shard `n` (`1..STARTED_SHARDS`), for the sole use of one thread.
    pub const fn owned(n: usize) -> Option<StartedShard> {
        if n > 0 && n < STARTED_SHARDS {
            Some(StartedShard(n))
        } else {
            None
        }
    }

    /// The shard's number: 0 for the shared one.
    pub const fn index(self) -> usize {
        self.0
    }
}

#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), repr(align(128)))]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    repr(align(64))
)]
#[derive(Debug, Default)]
struct Shard(Counter);

macro_rules! stats {
    ($($(#[$doc:meta])* $field:ident),* $(,)?) => {
        /// Live counters, updated with relaxed atomics from any thread. Read
        /// them through [`crate::Pipeline::snapshot`].
        #[derive(Debug, Default)]
        pub struct Stats {
            started: [Shard; STARTED_SHARDS],
            $(pub(crate) $field: Counter,)*
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

        impl Stats {
            /// All counters at zero.
            pub const fn new() -> Self {
                Stats {
                    started: [const { Shard(Counter::new(0)) }; STARTED_SHARDS],
                    $($field: Counter::new(0),)*
                }
            }

            pub(crate) fn snapshot(&self, queued: u64) -> StatsSnapshot {
                let mut s = StatsSnapshot {
                    spans_started: self.started.iter().map(|c| u64::from(c.0.load(Relaxed))).sum(),
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
}

impl Stats {
    /// Counts an update sent to a span that could not take it.
    pub fn refused_update(&self) {
        add(&self.refused_updates, 1);
    }

    /// Counts a payload left out because the mask hook panicked (or could
    /// not be called).
    pub fn mask_panicked(&self) {
        add(&self.mask_panics, 1);
    }

    /// Counts a span start in `shard`.
    #[inline]
    pub fn span_started(&self, shard: StartedShard) {
        let Some(counter) = self.started.get(shard.0).map(|s| &s.0) else {
            return;
        };
        if shard == StartedShard::SHARED {
            add(counter, 1);
        } else {
            // This thread alone writes an owned shard.
            counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
        }
    }
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

    /// Spans ended and not yet delivered or dropped.
    pub fn in_flight(&self) -> u64 {
        self.spans_ended
            .saturating_sub(self.spans_delivered + self.dropped())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_in_every_shard_are_summed() {
        let stats = Stats::new();
        stats.span_started(StartedShard::SHARED);
        for n in 1..STARTED_SHARDS {
            for _ in 0..n {
                stats.span_started(StartedShard::owned(n).unwrap());
            }
        }
        let owned = (STARTED_SHARDS * (STARTED_SHARDS - 1) / 2) as u64;
        assert_eq!(stats.snapshot(0).spans_started, 1 + owned);
        assert_eq!(StartedShard::owned(STARTED_SHARDS), None);
    }
}
