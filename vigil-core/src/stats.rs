//! Counters of everything that happens to spans, so no loss goes unseen.

use core::sync::atomic::Ordering::Relaxed;

#[cfg(target_has_atomic = "64")]
type Counter = core::sync::atomic::AtomicU64;
#[cfg(not(target_has_atomic = "64"))]
type Counter = core::sync::atomic::AtomicU32;

macro_rules! stats {
    ($($(#[$doc:meta])* $field:ident),* $(,)?) => {
        /// Live counters, updated with relaxed atomics from any thread.
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub(crate) $field: Counter,)*
        }

        /// A copy of [`Stats`] at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct StatsSnapshot {
            $($(#[$doc])* pub $field: u64,)*
        }

        impl Stats {
            /// The counters as they are now.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($field: self.$field.load(Relaxed).into(),)* }
            }
        }
    };
}

stats! {
    /// Spans started.
    spans_started,
    /// Spans ended (each is then queued or dropped).
    spans_ended,
    /// Spans accepted into the queue.
    spans_queued,
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
    /// Payload fields or entries cut to fit their limit.
    payloads_truncated,
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
    /// All counters at zero.
    pub const fn new() -> Self {
        macro_rules! zero {
            () => {
                Counter::new(0)
            };
        }
        Stats {
            spans_started: zero!(),
            spans_ended: zero!(),
            spans_queued: zero!(),
            dropped_queue_full: zero!(),
            spans_delivered: zero!(),
            spans_rejected: zero!(),
            dropped_after_retries: zero!(),
            dropped_oversize: zero!(),
            dropped_at_shutdown: zero!(),
            payloads_truncated: zero!(),
            patches_failed: zero!(),
            requests: zero!(),
            retries: zero!(),
            bytes_sent: zero!(),
        }
    }

    /// Counts a span start.
    pub fn span_started(&self) {
        add(&self.spans_started, 1);
    }

    /// Counts a payload field cut to its limit.
    pub fn payload_truncated(&self) {
        add(&self.payloads_truncated, 1);
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
    }

    /// Spans ended and not yet delivered or dropped.
    pub fn in_flight(&self) -> u64 {
        self.spans_ended
            .saturating_sub(self.spans_delivered + self.dropped())
    }
}
