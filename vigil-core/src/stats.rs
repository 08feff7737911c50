//! Counters of everything that happens to spans, so no loss goes unseen.
//!
//! The hot path touches no shared counter: spans queued are the queue's own
//! push count, spans ended are those plus the drops, and spans started are
//! counted in shards that threads pick apart from each other.

use core::sync::atomic::Ordering::Relaxed;

#[cfg(target_has_atomic = "64")]
pub(crate) type Counter = core::sync::atomic::AtomicU64;
#[cfg(not(target_has_atomic = "64"))]
pub(crate) type Counter = core::sync::atomic::AtomicU32;

/// Shards of the `spans_started` counter.
pub const STARTED_SHARDS: usize = 8;

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
    /// Trace status/metadata updates (PATCH) that failed for good.
    patches_failed,
    /// Requests sent, retries included.
    requests,
    /// Requests that had to be retried.
    retries,
    /// Request body bytes sent.
    bytes_sent,
}

impl Stats {
    /// Counts an update sent to a span that could not take it.
    pub fn refused_update(&self) {
        add(&self.refused_updates, 1);
    }

    /// Counts a span start in shard `shard` (any number; threads that use
    /// different shards never contend).
    #[inline]
    pub fn span_started(&self, shard: usize) {
        add(&self.started[shard % STARTED_SHARDS].0, 1);
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
