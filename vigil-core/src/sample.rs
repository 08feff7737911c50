//! Which traces are kept: the sample rate, decided from a trace's id when it
//! starts, and tail rules, decided from what happened in it when it ends.
//!
//! A [`TailSampler`] stands between a [`SpanSource`] (the queue) and the
//! [`Exporter`](crate::Exporter): the exporter polls a [`TailSource`], a view
//! of the queue through the sampler, and sees only the spans of traces it
//! keeps. The sampler holds each trace's spans until its root ends, then
//! keeps the whole trace if a rule asks for it (a span in error, a duration,
//! a cost) and otherwise at the sample rate; a trace left out is left out
//! whole, and counted.
//!
//! Held spans keep their places in the queue ([`SpanSource::release_except`]),
//! so the queue's bound covers them: memory never grows past it. A trace
//! that cannot be held (its root has not come within
//! [`TailRules::hold_timeout`], the sampler holds [`TailRules::max_held`]
//! spans, or a flush is asked for) is *decided early*, from what has come
//! so far, and counted.
//!
//! ```
//! use core::time::Duration;
//! use vigil_core::queue::{Queue, Slot};
//! use vigil_core::sample::{HeldTrace, SampleRate, TailRules, TailSampler};
//! use vigil_core::{IdGenerator, Span, SpanKind, SpanQueue, SpanSource, SpanStatus, Timestamp, Trace};
//!
//! type Text = heapless::String<256>;
//! type Record = Span<Text>;
//! let queue: SpanQueue<Text, [Slot<Record>; 8]> = SpanQueue::new(Queue::new());
//! let rules = TailRules { keep_errors: true, rate: SampleRate::new(0.0), ..TailRules::default() };
//! let mut sampler: TailSampler<Text, heapless::Vec<Record, 8>, heapless::Vec<HeldTrace, 4>> =
//!     TailSampler::new(rules);
//!
//! let mut ids = IdGenerator::from_seed(7);
//! let t = Timestamp::from_unix_nanos(1_795_514_400_000_000_000);
//! for fails in [true, false] {
//!     let trace: Trace<Text> = Trace::new(ids.trace_id(), ids.span_id(), "job", t);
//!     let mut tool = trace.child(ids.span_id(), "tool", SpanKind::Tool, t);
//!     tool.end(t, if fails { SpanStatus::Error } else { SpanStatus::Ok });
//!     queue.submit(tool);
//!     queue.submit(trace.end(t, SpanStatus::Ok));
//! }
//!
//! // The rate keeps no trace, but the failed one is kept whole.
//! let view = sampler.over(&queue, Duration::ZERO);
//! let kept: Vec<Record> = std::iter::from_fn(|| view.pop()).collect();
//! assert_eq!(kept.len(), 2);
//! assert_eq!(kept[0].trace_id(), kept[1].trace_id());
//! assert_eq!(queue.snapshot().spans_sampled_out, 2);
//! //! ```

use core::marker::PhantomData;
use core::time::Duration;

use crate::buffer::Buffer;
use crate::export::BatchStorage;
use crate::id::TraceId;
use crate::model::SpanStatus;
use crate::span::Span;
use crate::span_queue::SpanSource;
use crate::stats::{add, Counters};

/// A share of traces kept, decided from the trace id alone, so that every
/// span of a trace, in every process it crosses, is decided the same way.
///
/// ```
/// use vigil_core::{sample::SampleRate, TraceId};
///
/// let trace = TraceId::from_bytes([7; 16]);
/// assert!(SampleRate::ALL.keeps(trace));
/// assert!(!SampleRate::new(0.0).keeps(trace));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleRate(u64);

impl SampleRate {
    /// Every trace.
    pub const ALL: SampleRate = SampleRate(u64::MAX);

    /// `rate` of the traces, from 0.0 (none) to 1.0 (all); a rate outside
    /// that range is taken as the nearest end of it, NaN as none.
    pub fn new(rate: f64) -> SampleRate {
        if rate >= 1.0 {
            SampleRate::ALL
        } else if rate > 0.0 {
            SampleRate((rate * u64::MAX as f64) as u64)
        } else {
            SampleRate(0)
        }
    }

    /// Whether the trace `trace` is kept.
    #[inline]
    pub fn keeps(self, trace: TraceId) -> bool {
        self.0 == u64::MAX || key(trace) < self.0
    }
}

/// A trace's random bits as a number: bytes 0-5 and 9-10, little-endian
/// (in a UUIDv4, 6 and 8 hold version and variant bits). Read as one
/// number, not byte by byte, which would make the compiler split every
/// copy of the id into bytes.
#[inline]
fn key(trace: TraceId) -> u64 {
    let id = u128::from_le_bytes(trace.to_bytes());
    (id as u64 & 0xffff_ffff_ffff) | (((id >> 72) as u64 & 0xffff) << 48)
}

/// The metadata key, on a trace's root, of the totals of its LLM calls;
/// its `total_usd` member is the trace's cost for
/// [`TailRules::keep_costlier_than_usd`].
pub const TOTALS_KEY: &str = "vigil.totals";

/// How long a trace's spans are held for its root by default.
pub const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(60);

/// What decides, when a trace ends, whether it is kept.
///
/// A trace is kept if any rule that is set keeps it, and otherwise at
/// `rate`. With no rule set ([`TailRules::any`] false) nothing is held.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TailRules {
    /// Keep every trace with a span that ended in error.
    pub keep_errors: bool,
    /// Keep every trace whose root span took longer than this.
    pub keep_slower_than: Option<Duration>,
    /// Keep every trace whose LLM calls cost more than this, in US dollars:
    /// the `total_usd` of its root's [`TOTALS_KEY`] metadata.
    pub keep_costlier_than_usd: Option<f64>,
    /// The share of the other traces kept.
    pub rate: SampleRate,
    /// The longest a trace's spans wait for its root before the trace is
    /// decided early.
    pub hold_timeout: Duration,
    /// The most spans held at once; past it, the trace held longest is
    /// decided early.
    pub max_held: usize,
}

impl Default for TailRules {
    /// No rule; every trace kept; held up to [`DEFAULT_HOLD_TIMEOUT`]; at
    /// most half the default queue held.
    fn default() -> Self {
        TailRules {
            keep_errors: false,
            keep_slower_than: None,
            keep_costlier_than_usd: None,
            rate: SampleRate::ALL,
            hold_timeout: DEFAULT_HOLD_TIMEOUT,
            max_held: crate::config::DEFAULT_MAX_QUEUE_SIZE / 2,
        }
    }
}

impl TailRules {
    /// Whether any rule is set, so that traces are held to their end.
    pub fn any(&self) -> bool {
        self.keep_errors || self.keep_slower_than.is_some() || self.keep_costlier_than_usd.is_some()
    }

    /// Why `trace` is kept, or that it is not.
    fn verdict(&self, trace: &HeldTrace, cost: Option<f64>) -> Verdict {
        let slow = self
            .keep_slower_than
            .is_some_and(|limit| trace.duration() > limit);
        let costly = match (self.keep_costlier_than_usd, cost) {
            (Some(limit), Some(cost)) => cost > limit,
            _ => false,
        };
        if self.keep_errors && trace.failed {
            Verdict::Error
        } else if slow {
            Verdict::Slow
        } else if costly {
            Verdict::Costly
        } else if self.rate.keeps(trace.id) {
            Verdict::Rate
        } else {
            Verdict::Out
        }
    }
}

/// Why a trace was kept, or that it was not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Error,
    Slow,
    Costly,
    Rate,
    Out,
}

/// What the sampler knows of a trace whose spans it holds.
#[derive(Clone, Copy, Debug)]
pub struct HeldTrace {
    id: TraceId,
    /// When its first span was taken (the exporter's clock).
    since: Duration,
    /// Spans held.
    spans: usize,
    failed: bool,
    /// Earliest start and latest end of its spans, in Unix nanoseconds.
    first_start: u64,
    last_end: u64,
}

impl HeldTrace {
    fn new(id: TraceId, since: Duration) -> Self {
        HeldTrace {
            id,
            since,
            spans: 0,
            failed: false,
            first_start: u64::MAX,
            last_end: 0,
        }
    }

    fn add<B: Buffer>(&mut self, span: &Span<B>) {
        self.spans += 1;
        self.failed |= span.status() == SpanStatus::Error;
        let start = span.start().unix_nanos();
        let end = span.end_time().map_or(start, |t| t.unix_nanos());
        self.first_start = self.first_start.min(start);
        self.last_end = self.last_end.max(end);
    }

    /// From the earliest start to the latest end of its spans so far.
    fn duration(&self) -> Duration {
        Duration::from_nanos(self.last_end.saturating_sub(self.first_start))
    }
}

/// Traces decided, remembered for their spans that end after the decision
/// (a child ending after its root).
const DECIDED: usize = 512;

/// Holds traces' spans to their end and keeps or leaves out each trace
/// whole, by [`TailRules`] (see the module docs).
///
/// `S` stores the spans held (`heapless::Vec<Span<B>, N>` with no
/// allocator, `Vec` with one); it is used twice, for the spans waiting for
/// their trace's end and for those of kept traces not yet taken, which
/// together never pass its capacity or [`TailRules::max_held`]. `T` stores
/// the traces held.
pub struct TailSampler<B: Buffer, S: BatchStorage<Span<B>>, T: BatchStorage<HeldTrace>> {
    rules: TailRules,
    /// Spans of undecided traces.
    held: S,
    /// Spans of kept traces, to be taken; the last is taken first.
    ready: S,
    /// Undecided traces, the one held longest first.
    traces: T,
    /// Where the last span's trace was found in `traces`.
    hint: usize,
    decided: heapless::Deque<(TraceId, bool), DECIDED>,
    flushing: bool,
    /// Shutting down: a trace is decided as soon as a span of it comes.
    closing: bool,
    _text: PhantomData<B>,
}

impl<B: Buffer, S: BatchStorage<Span<B>>, T: BatchStorage<HeldTrace>> core::fmt::Debug
    for TailSampler<B, S, T>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TailSampler")
            .field("rules", &self.rules)
            .field("held", &self.held.len())
            .field("ready", &self.ready.len())
            .field("traces", &self.traces.len())
            .finish_non_exhaustive()
    }
}

impl<B: Buffer, S: BatchStorage<Span<B>>, T: BatchStorage<HeldTrace>> TailSampler<B, S, T> {
    /// A sampler deciding by `rules`.
    pub fn new(rules: TailRules) -> Self {
        TailSampler {
            rules,
            held: S::default(),
            ready: S::default(),
            traces: T::default(),
            hint: 0,
            decided: heapless::Deque::new(),
            flushing: false,
            closing: false,
            _text: PhantomData,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &TailRules {
        &self.rules
    }

    /// Spans the sampler holds, decided or not: their places in the queue
    /// stay taken.
    pub fn held(&self) -> usize {
        self.held.len() + self.ready.len()
    }

    /// When the trace held longest is decided early, if any is held: the
    /// driver polls again by then.
    pub fn next_deadline(&self) -> Option<Duration> {
        let first = self.traces.as_slice().first()?;
        Some(first.since.saturating_add(self.rules.hold_timeout))
    }

    /// While a flush (or shutdown) is asked for, each [`over`](Self::over)
    /// takes in what is queued (so that traces whose roots are there are
    /// decided by them) and decides early every trace still held, so that
    /// the flush ends. Off again, traces are held to their end.
    pub fn set_flushing(&mut self, flushing: bool) {
        self.flushing = flushing;
    }

    /// The view of `inner` through this sampler at time `now` (the
    /// exporter's clock), for [`Exporter::poll`](crate::Exporter::poll).
    /// Traces held past their timeout are decided first (and, during a
    /// flush, every trace held, after what is queued is taken in).
    pub fn over<'a, P: SpanSource<B> + ?Sized>(
        &'a mut self,
        inner: &'a P,
        now: Duration,
    ) -> TailSource<'a, B, S, T, P> {
        if self.flushing && self.rules.any() {
            let counters = inner.counters();
            while self.held() < self.rules.max_held && self.ready.has_room() {
                let Some(span) = inner.pop() else {
                    break;
                };
                if let Some(span) = self.route(span, now, counters) {
                    self.push_ready(span, counters);
                }
            }
            while !self.traces.is_empty() {
                self.settle(0, None, true, 0, counters);
            }
        }
        let timeout = self.rules.hold_timeout;
        while self
            .traces
            .as_slice()
            .first()
            .is_some_and(|t| now >= t.since.saturating_add(timeout))
        {
            self.settle(0, None, true, 0, inner.counters());
        }
        TailSource {
            sampler: core::cell::RefCell::new(self),
            inner,
            now,
        }
    }

    /// Takes `span` in: returns it if its trace is kept already, else holds
    /// it (or drops it, for a trace left out) and returns `None`.
    fn route(&mut self, span: Span<B>, now: Duration, counters: &Counters) -> Option<Span<B>> {
        if !self.rules.any() {
            return Some(span);
        }
        let id = span.trace_id();
        if self.find(id).is_none() {
            if let Some(kept) = self.decision(id) {
                return follow(kept, span, counters);
            }
        }
        // Room for one more, made by deciding early the traces held longest.
        while self.held.len() >= self.rules.max_held && !self.traces.is_empty() {
            self.settle(0, None, true, 0, counters);
        }
        let at = match self.find(id) {
            Some(at) => at,
            None => {
                // Its trace may have been decided just above.
                if let Some(kept) = self.decision(id) {
                    return follow(kept, span, counters);
                }
                if !self.traces.has_room() && !self.traces.is_empty() {
                    self.settle(0, None, true, 0, counters);
                }
                if self.traces.push(HeldTrace::new(id, now)).is_err() {
                    // No storage for traces at all.
                    return self.decide_alone(span, counters);
                }
                self.traces.len() - 1
            }
        };
        self.traces.as_mut_slice()[at].add(&span);
        if span.is_root() {
            let cost = self
                .rules
                .keep_costlier_than_usd
                .and_then(|_| cost_of(&span));
            return self.finish(at, span, cost, counters);
        }
        if self.held.len() >= self.rules.max_held {
            // Nowhere to hold it: its trace is decided now.
            return self.finish(at, span, None, counters);
        }
        if self.closing {
            return self.finish(at, span, None, counters);
        }
        if let Err(span) = self.held.push(span) {
            return self.finish(at, span, None, counters);
        }
        None
    }

    /// Decides the trace at `at` with `last`, its latest span, not held:
    /// early unless `last` is its root.
    fn finish(
        &mut self,
        at: usize,
        last: Span<B>,
        cost: Option<f64>,
        counters: &Counters,
    ) -> Option<Span<B>> {
        let base = self.ready.len();
        let keep = self.settle(at, cost, !last.is_root(), 1, counters);
        if keep {
            // Under the trace's other spans, so taken after them: a root's
            // request names its trace, and its children's go first.
            if self.push_ready(last, counters) {
                let top = self.ready.len() - 1;
                self.ready.as_mut_slice().swap(base.min(top), top);
            }
        } else {
            add(&counters.spans_sampled_out, 1);
        }
        None
    }

    /// A span whose trace cannot be held at all, decided early on its own.
    fn decide_alone(&mut self, span: Span<B>, counters: &Counters) -> Option<Span<B>> {
        let mut trace = HeldTrace::new(span.trace_id(), Duration::ZERO);
        trace.add(&span);
        let verdict = self.rules.verdict(&trace, None);
        count(verdict, 1, true, counters);
        self.remember(trace.id, verdict != Verdict::Out);
        follow(verdict != Verdict::Out, span, counters)
    }

    /// Decides the trace at `at` (`early`: before its root came), moving
    /// its held spans to the ready ones or dropping them; `outside` of its
    /// spans are not held (the caller has them). Returns whether it is kept.
    fn settle(
        &mut self,
        at: usize,
        cost: Option<f64>,
        early: bool,
        outside: usize,
        counters: &Counters,
    ) -> bool {
        let trace = self.traces.remove(at);
        self.hint = 0;
        let verdict = self.rules.verdict(&trace, cost);
        let keep = verdict != Verdict::Out;
        count(verdict, trace.spans, early, counters);
        self.remember(trace.id, keep);
        let mut left = trace.spans - outside;
        let mut i = self.held.len();
        while left > 0 && i > 0 {
            i -= 1;
            if self.held.as_slice()[i].trace_id() != trace.id {
                continue;
            }
            left -= 1;
            let last = self.held.len() - 1;
            self.held.as_mut_slice().swap(i, last);
            let span = self.held.remove(last);
            if keep {
                self.push_ready(span, counters);
            } else {
                add(&counters.spans_sampled_out, 1);
            }
        }
        keep
    }

    /// Puts a kept span with those to be taken; false if there was no room.
    fn push_ready(&mut self, span: Span<B>, counters: &Counters) -> bool {
        // Room is there unless `S` holds fewer than the spans held, a
        // configuration error of the embedding code: the loss is counted.
        let pushed = self.ready.push(span).is_ok();
        if !pushed {
            add(&counters.dropped_oversize, 1);
        }
        pushed
    }

    /// Where `id` is among the traces held.
    fn find(&mut self, id: TraceId) -> Option<usize> {
        let traces = self.traces.as_slice();
        if traces.get(self.hint).is_some_and(|t| t.id == id) {
            return Some(self.hint);
        }
        let at = traces.iter().position(|t| t.id == id)?;
        self.hint = at;
        Some(at)
    }

    /// Whether `id` was kept, if it was decided lately.
    fn decision(&self, id: TraceId) -> Option<bool> {
        self.decided
            .iter()
            .rev()
            .find(|(decided, _)| *decided == id)
            .map(|(_, kept)| *kept)
    }

    fn remember(&mut self, id: TraceId, kept: bool) {
        if self.decided.is_full() {
            self.decided.pop_front();
        }
        let _ = self.decided.push_back((id, kept));
    }
}

/// `span`, of a trace decided already: returned if kept, else counted.
fn follow<B: Buffer>(kept: bool, span: Span<B>, counters: &Counters) -> Option<Span<B>> {
    if kept {
        return Some(span);
    }
    add(&counters.spans_sampled_out, 1);
    None
}

/// Counts a decision on a trace of `spans` spans.
fn count(verdict: Verdict, spans: usize, early: bool, counters: &Counters) {
    let counter = match verdict {
        Verdict::Error => &counters.traces_kept_for_errors,
        Verdict::Slow => &counters.traces_kept_for_latency,
        Verdict::Costly => &counters.traces_kept_for_cost,
        Verdict::Rate => &counters.traces_kept_by_rate,
        Verdict::Out => &counters.traces_sampled_out,
    };
    add(counter, 1);
    if early {
        add(&counters.traces_decided_early, 1);
        add(&counters.spans_decided_early, spans);
    }
}

/// The cost of a root's trace: `total_usd` in its [`TOTALS_KEY`] metadata.
fn cost_of<B: Buffer>(root: &Span<B>) -> Option<f64> {
    let totals = member(root.metadata_members(), TOTALS_KEY)?;
    let members = totals.strip_prefix('{')?.strip_suffix('}')?;
    member(members, "total_usd")?.parse().ok()
}

/// The raw value of the last member `key` among encoded object `members`
/// (`"a":1,"b":{"c":2}`, as the SDK writes them: no spaces), at the top
/// level only; `None` if there is none or the text is not such members.
fn member<'a>(members: &'a str, key: &str) -> Option<&'a str> {
    let bytes = members.as_bytes();
    let mut found = None;
    let mut at = 0;
    while at < bytes.len() {
        let name_end = string_end(bytes, at)?;
        let name = &members[at + 1..name_end - 1];
        if bytes.get(name_end) != Some(&b':') {
            return None;
        }
        let start = name_end + 1;
        let end = value_end(bytes, start)?;
        if name == key {
            found = Some(&members[start..end]);
        }
        match bytes.get(end) {
            Some(b',') => at = end + 1,
            None => break,
            Some(_) => return None,
        }
    }
    found
}

/// Just past the string that starts at `at`.
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// Where the value that starts at `at` ends: at the `,` after it, or the end.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = at;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                i = string_end(bytes, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    (depth == 0).then_some(i)
}

/// A [`SpanSource`] seen through a [`TailSampler`]: it gives only the spans
/// of traces kept, and keeps the places of the spans held taken. Made by
/// [`TailSampler::over`] for one poll.
pub struct TailSource<'a, B, S, T, P>
where
    B: Buffer,
    S: BatchStorage<Span<B>>,
    T: BatchStorage<HeldTrace>,
    P: SpanSource<B> + ?Sized,
{
    sampler: core::cell::RefCell<&'a mut TailSampler<B, S, T>>,
    inner: &'a P,
    now: Duration,
}

impl<B, S, T, P> TailSource<'_, B, S, T, P>
where
    B: Buffer,
    S: BatchStorage<Span<B>>,
    T: BatchStorage<HeldTrace>,
    P: SpanSource<B> + ?Sized,
{
    /// [`TailSampler::next_deadline`].
    pub fn next_deadline(&self) -> Option<Duration> {
        self.sampler.borrow().next_deadline()
    }

    /// At shutdown, before the exporter's last pass: every trace held is
    /// decided now, and each trace after it as soon as a span of it comes,
    /// so that nothing is left held for [`TailSource::abandon`].
    pub fn close(&self) {
        let mut sampler = self.sampler.borrow_mut();
        sampler.closing = true;
        while !sampler.traces.is_empty() {
            sampler.settle(0, None, true, 0, self.inner.counters());
        }
    }

    /// Drops every span the sampler holds, decided or not, counting each in
    /// `dropped_at_shutdown`, and frees their places; returns how many. For
    /// after [`Exporter::abandon`](crate::Exporter::abandon), when nothing
    /// will be sent any more.
    pub fn abandon(&self) -> usize {
        let mut sampler = self.sampler.borrow_mut();
        let dropped = sampler.held();
        sampler.held.clear();
        sampler.ready.clear();
        sampler.traces.clear();
        drop(sampler);
        add(&self.inner.counters().dropped_at_shutdown, dropped);
        self.release();
        dropped
    }
}

impl<B, S, T, P> core::fmt::Debug for TailSource<'_, B, S, T, P>
where
    B: Buffer,
    S: BatchStorage<Span<B>>,
    T: BatchStorage<HeldTrace>,
    P: SpanSource<B> + ?Sized,
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TailSource")
            .field("sampler", &self.sampler)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl<B, S, T, P> SpanSource<B> for TailSource<'_, B, S, T, P>
where
    B: Buffer,
    S: BatchStorage<Span<B>>,
    T: BatchStorage<HeldTrace>,
    P: SpanSource<B> + ?Sized,
{
    fn pop(&self) -> Option<Span<B>> {
        let mut sampler = self.sampler.borrow_mut();
        loop {
            if !sampler.ready.is_empty() {
                let last = sampler.ready.len() - 1;
                return Some(sampler.ready.remove(last));
            }
            let span = self.inner.pop()?;
            if let Some(span) = sampler.route(span, self.now, self.inner.counters()) {
                return Some(span);
            }
        }
    }

    fn release_except(&self, held: usize) {
        let stored = self.sampler.borrow().held();
        self.inner.release_except(held + stored);
    }

    fn len(&self) -> usize {
        self.inner.len() + self.sampler.borrow().ready.len()
    }

    fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    fn counters(&self) -> &Counters {
        self.inner.counters()
    }
}

#[cfg(test)]
mod tests {
    use super::{key, member};

    #[test]
    fn the_sample_key_is_the_random_bytes_of_the_trace_id() {
        let mut ids = crate::IdGenerator::from_seed(3);
        for _ in 0..1_000 {
            let trace = ids.trace_id();
            let b = trace.to_bytes();
            let bytes = [b[0], b[1], b[2], b[3], b[4], b[5], b[9], b[10]];
            assert_eq!(key(trace), u64::from_le_bytes(bytes));
        }
    }

    #[test]
    fn member_finds_the_last_top_level_value_of_a_key() {
        let members = r#""a":{"b":1,"c":"x,}\"y"},"b":[1,{"b":2}],"b":3.5"#;
        assert_eq!(member(members, "b"), Some("3.5"));
        assert_eq!(member(members, "a"), Some(r#"{"b":1,"c":"x,}\"y"}"#));
        assert_eq!(member(members, "c"), None, "nested keys are not members");
        assert_eq!(member("", "a"), None);
        assert_eq!(member(r#""a":{"#, "a"), None, "not whole");
        assert_eq!(member(r#""a"1"#, "a"), None);
    }
}
