//! The client: the queue, the exporter thread, and the global slot.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use vigil_core::queue::Slot;
use vigil_core::{
    export::{Abandoned, Deferred, MAX_REPLAYING},
    sample::{HeldTrace, SampleRate, TailSampler},
    transport::{Interrupt, Lookup},
    ConfigError, Counters, Exporter, Outcome, Poll, Producer, Request, RetryReason, SpanQueue,
    SpanSource, StatsSnapshot, TraceId, Transport,
};

use crate::config::{Config, Destination, EnvError};
use crate::console::ConsoleTransport;
use crate::split::Split;
use crate::sync::lock;
use crate::text::Text;
use crate::transport::BoxTransport;
use crate::Record;

type Slots = Box<[Slot<Record>]>;

/// Where a client's ended spans wait for its exporter.
pub(crate) type Spans = SpanQueue<Text, Slots>;

/// A handle to an initialised SDK: cheap to clone, shared by all threads.
///
/// ```
/// use vigil::{sink::NullTransport, Client, Config};
///
/// let client = Client::new(Config::builder().transport(NullTransport::default).build()?)?;
/// client.scope(|| vigil::trace("job", |_| ()));
/// client.flush(std::time::Duration::from_secs(1));
/// let report = client.shutdown();
/// assert_eq!((report.stats.spans_delivered, report.stats.dropped()), (1, 0));
/// # Ok::<(), vigil::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Handle>,
}

/// What `Client` clones share. When the last one goes, the exporter is told
/// to flush and stop (within `shutdown_timeout`), so a forgotten client does
/// not leave its thread behind.
struct Handle(Arc<Inner>);

impl std::ops::Deref for Handle {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let deadline = deadline_after(self.0.config.shutdown_timeout);
        for control in self.0.controls() {
            let mut state = lock(&control.state);
            if state.shutdown.is_none() {
                state.shutdown = Some(deadline);
            }
        }
        self.0.wake_now();
    }
}

struct Inner {
    config: Config,
    spans: Arc<Spans>,
    /// Which traces are recorded: all of them when tail rules decide at
    /// their end.
    head_rate: SampleRate,
    control: Control,
    /// With a second destination: the queue split into a buffer for each,
    /// and the second exporter's control.
    split: Option<Split>,
    second: Option<(Control, Destination)>,
}

impl Inner {
    /// Each exporter's control: the first, then the second destination's.
    fn controls(&self) -> impl Iterator<Item = &Control> {
        std::iter::once(&self.control).chain(self.second.as_ref().map(|(c, _)| c))
    }

    fn control_of(&self, side: usize) -> &Control {
        match (&self.second, side) {
            (Some((control, _)), 1) => control,
            _ => &self.control,
        }
    }
}

/// How application threads and flushers talk to the exporter thread.
struct Control {
    /// Set by the exporter before it sleeps, so a producer that fills a batch
    /// knows to wake it (and only then pays for the wake-up).
    sleeping: AtomicBool,
    state: Mutex<ControlState>,
    progress: Condvar,
    thread: OnceLock<Thread>,
    join: Mutex<Option<JoinHandle<()>>>,
    batch_size: usize,
    /// Cuts a request in progress short when a shutdown deadline passes.
    interrupt: OnceLock<Interrupt>,
}

impl Control {
    fn new(batch_size: usize) -> Control {
        Control {
            sleeping: AtomicBool::new(false),
            state: Mutex::new(ControlState::default()),
            progress: Condvar::new(),
            thread: OnceLock::new(),
            join: Mutex::new(None),
            batch_size,
            interrupt: OnceLock::new(),
        }
    }
}

#[derive(Default)]
struct ControlState {
    flush_requested: bool,
    /// Exporter stops after this instant (shutdown deadline).
    shutdown: Option<Instant>,
    finished: bool,
    /// What the exporter dropped because the shutdown deadline came first.
    abandoned: Abandoned,
    /// The shutdown deadline passed: nothing more is sent.
    interrupted: bool,
    /// The exporter is waiting for a request's outcome.
    in_request: bool,
    /// A request was in progress when the deadline passed.
    cut_short: bool,
    transport_panicked: bool,
}

/// What a shutdown achieved.
///
/// ```
/// let captured = vigil::sink::capture(|| vigil::trace("job", |_| ()));
/// let report = captured.report.unwrap();
/// assert!(report.completed);
/// assert_eq!(report.stats.spans_delivered, 1);
/// assert!(report.to_string().starts_with("delivered 1 of 1 spans"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Every counter at the end: `stats.spans_delivered` and the drop counters.
    pub stats: StatsSnapshot,
    /// True when the exporter finished before the deadline with nothing left
    /// undone: no span left unsent, no trace status (`PATCH`) left unsent.
    pub completed: bool,
    /// A request was still in progress at the deadline and was cut short.
    /// Its spans are counted in `dropped_at_shutdown`, but the server may
    /// have stored them before the connection closed.
    pub interrupted: bool,
    /// Where the spans were sent.
    pub destination: Destination,
    /// The second destination's part, when there is one
    /// ([`ConfigBuilder::also_transport`](crate::config::ConfigBuilder::also_transport)).
    pub also: Option<DestinationReport>,
}

/// What a shutdown achieved for a second destination: as in
/// [`ShutdownReport`], for the spans sent there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DestinationReport {
    /// Its counters: what it delivered and dropped (the application's side,
    /// spans started and ended, is the same for both destinations).
    pub stats: StatsSnapshot,
    /// Nothing was left unsent there.
    pub completed: bool,
    /// A request to it was cut short at the deadline.
    pub interrupted: bool,
    /// Where the spans were sent.
    pub destination: Destination,
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_report(
            f,
            &self.stats,
            self.destination,
            self.completed,
            self.interrupted,
        )?;
        if let Some(also) = &self.also {
            f.write_str("; also ")?;
            write_report(
                f,
                &also.stats,
                also.destination,
                also.completed,
                also.interrupted,
            )?;
        }
        Ok(())
    }
}

fn write_report(
    f: &mut fmt::Formatter<'_>,
    s: &StatsSnapshot,
    destination: Destination,
    completed: bool,
    interrupted: bool,
) -> fmt::Result {
    write!(
        f,
        "delivered {} of {} spans to {} in {} requests; dropped {} (queue full {}, rejected {}, after retries {}, oversize {}, at shutdown {}, after close {}); trace statuses set {}, not set {}",
        s.spans_delivered,
        s.spans_ended,
        destination,
        s.requests,
        s.dropped(),
        s.dropped_queue_full,
        s.spans_rejected,
        s.dropped_after_retries,
        s.dropped_oversize,
        s.dropped_at_shutdown,
        s.dropped_after_close,
        s.patches_delivered,
        s.patches_failed,
    )?;
    let repaired = s.nul_replaced + s.payloads_unserializable + s.mask_panics;
    if repaired > 0 {
        write!(
            f,
            "; payloads repaired: NUL replaced in {}, unserializable {}, mask panics {}",
            s.nul_replaced, s.payloads_unserializable, s.mask_panics
        )?;
    }
    let decided = s.traces_kept_for_errors
        + s.traces_kept_for_latency
        + s.traces_kept_for_cost
        + s.traces_kept_by_rate
        + s.traces_sampled_out;
    if decided > 0 {
        write!(
            f,
            "; tail sampling kept {} of {} traces (errors {}, slow {}, costly {}, at the sample rate {}), left out {} spans, decided {} traces early",
            decided - s.traces_sampled_out,
            decided,
            s.traces_kept_for_errors,
            s.traces_kept_for_latency,
            s.traces_kept_for_cost,
            s.traces_kept_by_rate,
            s.spans_sampled_out,
            s.traces_decided_early,
        )?;
    }
    let spool = s.spans_spooled
        + s.patches_spooled
        + s.spans_replayed
        + s.spool_dropped_size
        + s.spool_dropped_age
        + s.spool_dropped_corrupt
        + s.spool_dropped_rejected;
    if spool > 0 {
        write!(
            f,
            "; spooled {} spans and {} trace statuses, replayed {} spans, dropped from the spool {} spans for size, {} for age, {} rejected, {} corrupt records",
            s.spans_spooled,
            s.patches_spooled,
            s.spans_replayed,
            s.spool_dropped_size,
            s.spool_dropped_age,
            s.spool_dropped_rejected,
            s.spool_dropped_corrupt,
        )?;
    }
    if interrupted {
        f.write_str("; a request cut short at the deadline may have been stored")?;
    }
    if !completed {
        f.write_str("; not completed")?;
    }
    Ok(())
}

// A client can be used across `catch_unwind`: its shared state is atomics,
// and mutexes whose poisoning every lock ignores (`lock`), so a panic in the
// middle of any call leaves nothing another call could see half-done.
impl std::panic::UnwindSafe for Client {}
impl std::panic::RefUnwindSafe for Client {}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config` with its own exporter thread, not installed
    /// globally (see [`init`]).
    ///
    /// If the OS cannot start a thread, the error is logged and spans are
    /// queued until the queue is full, then dropped and counted.
    pub fn new(config: Config) -> Result<Client, ConfigError> {
        config.validate()?;
        crate::panic::install_hook();
        let capacity = if config.enabled {
            config.max_queue_size
        } else {
            1
        };
        let head_rate = if config.tail_rules().any() {
            SampleRate::ALL
        } else {
            SampleRate::new(config.sample_rate)
        };
        let second = config
            .also
            .as_ref()
            .filter(|_| config.enabled)
            .map(|(_, destination)| (Control::new(config.batch_size), *destination));
        let inner = Arc::new(Inner {
            spans: Arc::new(SpanQueue::with_capacity(capacity)),
            head_rate,
            control: Control::new(config.batch_size),
            split: second.as_ref().map(|_| Split::new(config.max_queue_size)),
            second,
            config,
        });
        if inner.config.enabled {
            let first = match &inner.config.transport {
                Some(make) => make(),
                None => default_transport(&inner.config),
            };
            start_exporter(&inner, first, 0, "vigil-exporter");
            if let (Some((make, _)), Some(_)) = (&inner.config.also, &inner.second) {
                start_exporter(&inner, make(), 1, "vigil-exporter-2");
            }
        }
        Ok(Client {
            inner: Arc::new(Handle(inner)),
        })
    }

    /// The configuration.
    #[inline]
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether this client records anything.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.inner.config.enabled
    }

    /// The counters as they are now.
    ///
    /// ```
    /// # let client = vigil::Client::new(vigil::Config::builder().transport(vigil::sink::NullTransport::default).build().unwrap()).unwrap();
    /// client.scope(|| vigil::trace("job", |_| ()));
    /// let stats = client.stats();
    /// assert_eq!(stats.spans_started, 1);
    /// assert_eq!(stats.dropped(), 0);
    /// ```
    pub fn stats(&self) -> StatsSnapshot {
        self.stats_of(0)
    }

    /// Each destination and its counters: the one [`Client::stats`] counts
    /// for, then the second one, if any
    /// ([`ConfigBuilder::also_transport`](crate::config::ConfigBuilder::also_transport)).
    ///
    /// ```
    /// # let client = vigil::Client::new(vigil::Config::builder().transport(vigil::sink::NullTransport::default).build().unwrap()).unwrap();
    /// for (destination, stats) in client.destinations() {
    ///     println!("{destination}: {} spans delivered", stats.spans_delivered);
    /// }
    /// ```
    pub fn destinations(&self) -> Vec<(Destination, StatsSnapshot)> {
        let mut all = vec![(self.inner.config.destination, self.stats_of(0))];
        if let Some((_, destination)) = &self.inner.second {
            all.push((*destination, self.stats_of(1)));
        }
        all
    }

    fn stats_of(&self, side: usize) -> StatsSnapshot {
        let queue = self.inner.spans.snapshot();
        match &self.inner.split {
            Some(split) => split.counters(side).snapshot_over(&queue),
            None => queue,
        }
    }

    /// Sends everything ended so far and waits until it is delivered or
    /// dropped, or `timeout` passes. Returns true if everything was handled.
    ///
    /// ```
    /// # let client = vigil::Client::new(vigil::Config::builder().transport(vigil::sink::NullTransport::default).build().unwrap()).unwrap();
    /// client.scope(|| vigil::trace("job", |_| ()));
    /// assert!(client.flush(std::time::Duration::from_secs(5)));
    /// assert_eq!(client.stats().spans_delivered, 1);
    /// ```
    pub fn flush(&self, timeout: Duration) -> bool {
        if !self.is_enabled() {
            return true;
        }
        let spans = &self.inner.spans;
        let target = spans.mark();
        let deadline = deadline_after(timeout);
        let control = &self.inner.control;
        // With two destinations: how far each buffer must be released once
        // the queue is split past the mark.
        let mut buffered: Option<[usize; 2]> = None;
        let mut state = lock(&control.state);
        loop {
            // Spans whose requests wait for a retry have left the queue: the
            // exporter counts those requests before it frees their places.
            let handled = match &self.inner.split {
                None => spans.reached(&target) && spans.deferred_requests() == 0,
                Some(split) => {
                    if buffered.is_none() && spans.reached(&target) {
                        buffered = Some(split.pushed());
                    }
                    buffered.is_some_and(|pushed| {
                        let released = split.released();
                        (0..2).all(|side| {
                            let done = released[side] >= pushed[side]
                                && split.counters(side).deferred_requests() == 0;
                            // A destination whose exporter stopped has nothing more to do.
                            done || (side == 1 && self.second_finished())
                        })
                    })
                }
            };
            if handled || state.finished {
                return handled;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state.flush_requested = true;
            if let Some((second, _)) = &self.inner.second {
                lock(&second.state).flush_requested = true;
            }
            self.inner.wake_now();
            state = control
                .progress
                .wait_timeout(state, (deadline - now).min(Duration::from_millis(50)))
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Whether the second exporter stopped (or never started).
    fn second_finished(&self) -> bool {
        self.inner
            .second
            .as_ref()
            .is_some_and(|(c, _)| lock(&c.state).finished || lock(&c.join).is_none())
    }

    /// Flushes within the configured `shutdown_timeout`, stops the exporter
    /// and reports what was delivered and dropped.
    ///
    /// ```
    /// # let client = vigil::Client::new(vigil::Config::builder().transport(vigil::sink::NullTransport::default).build().unwrap()).unwrap();
    /// let report = client.shutdown();
    /// assert!(report.completed);
    /// println!("{report}"); // delivered 0 of 0 spans to the configured transport in 0 requests; ...
    /// ```
    pub fn shutdown(&self) -> ShutdownReport {
        self.shutdown_timeout(self.inner.config.shutdown_timeout)
    }

    /// Flushes within `timeout`, stops the exporter, and reports. Never takes
    /// much longer than `timeout`, even when the server does not answer:
    /// spans still held then are counted as dropped.
    ///
    /// ```
    /// # let client = vigil::Client::new(vigil::Config::builder().transport(vigil::sink::NullTransport::default).build().unwrap()).unwrap();
    /// let report = client.shutdown_timeout(std::time::Duration::from_secs(1));
    /// assert_eq!(report.stats.dropped_at_shutdown, 0);
    /// ```
    pub fn shutdown_timeout(&self, timeout: Duration) -> ShutdownReport {
        // A client shut down is no longer the global one: spans made from
        // now on find no client rather than one that drops them.
        uninstall(self);
        let deadline = deadline_after(timeout);
        for control in self.inner.controls() {
            let mut state = lock(&control.state);
            if state.shutdown.is_none() {
                state.shutdown = Some(deadline);
            }
            state.flush_requested = true;
        }
        self.inner.wake_now();
        let (completed, interrupted) = self.wait_stopped(0, deadline);
        let also = self.inner.second.as_ref().map(|(_, destination)| {
            let (completed, interrupted) = self.wait_stopped(1, deadline);
            DestinationReport {
                stats: self.stats_of(1),
                completed,
                interrupted,
                destination: *destination,
            }
        });
        let mut stats = self.stats();
        if !completed {
            // The exporter is stuck in a request past the deadline: whatever it
            // still holds is lost to this program.
            stats.dropped_at_shutdown += stats.in_flight();
        }
        ShutdownReport {
            completed,
            stats,
            interrupted,
            destination: self.inner.config.destination,
            also: also.map(|mut also| {
                if !also.completed {
                    also.stats.dropped_at_shutdown += also.stats.in_flight();
                }
                also
            }),
        }
    }

    /// Waits for exporter `side` to stop, cutting its request short at
    /// `deadline`; whether it finished with nothing left undone, and
    /// whether a request was cut short.
    fn wait_stopped(&self, side: usize, deadline: Instant) -> (bool, bool) {
        let control = self.inner.control_of(side);
        let mut state = lock(&control.state);
        let running = lock(&control.join).is_some();
        // A little grace past the deadline for the exporter to count its
        // losses; a transport that ignores its timeout and its interrupter
        // is left behind.
        let grace = deadline + Duration::from_millis(100);
        while !state.finished && running {
            let now = Instant::now();
            if now >= grace {
                break;
            }
            if now >= deadline && !state.interrupted {
                // Whatever is in progress ends now, so that nothing is sent
                // after this returns.
                state.interrupted = true;
                if let Some(interrupt) = control.interrupt.get() {
                    interrupt();
                }
            }
            let until = if state.interrupted { grace } else { deadline };
            state = control
                .progress
                .wait_timeout(state, until.saturating_duration_since(now))
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let completed = state.finished || !running;
        let abandoned = state.abandoned;
        let interrupted = state.in_request || state.cut_short;
        drop(state);
        if completed {
            if let Some(handle) = lock(&control.join).take() {
                let _ = handle.join();
            }
        }
        let completed =
            completed && abandoned == Abandoned::default() && self.stats_of(side).in_flight() == 0;
        (completed, interrupted)
    }

    /// Shuts down when the returned guard is dropped (and removes the client
    /// from the global slot if it is there).
    ///
    /// ```
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let _guard = vigil::init_from_env()?.shutdown_on_drop();
    ///     vigil::trace("job", |_| ());
    ///     Ok(()) // flushed here
    /// }
    /// ```
    pub fn shutdown_on_drop(self) -> ShutdownGuard {
        ShutdownGuard(Some(self))
    }

    /// Queues the span `make` moves out of where it lives, from any thread
    /// (see [`ClientProducer`] for the way of a thread that ends many);
    /// gives `make` back, uncalled, if the queue refuses the span.
    #[inline(always)]
    pub(crate) fn submit_from<F: FnOnce() -> Record>(&self, make: F) -> Result<(), F> {
        let submitted = self.inner.spans.submit_with(make);
        // The place came straight from the budget, whose line this thread
        // has just written: seeing whether it was the last costs little.
        self.inner.after_submit(submitted, true)
    }

    pub(crate) fn same(&self, other: &Client) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether a trace with this id is recorded, given the sample rate.
    #[inline]
    pub(crate) fn is_sampled(&self, trace: TraceId) -> bool {
        self.inner.head_rate.keeps(trace)
    }

    /// The most bytes a span's input, output or metadata may take.
    #[inline(always)]
    pub(crate) fn field_limit(&self) -> usize {
        self.inner.config.max_field_bytes
    }

    /// Counts a recorded span's start on a thread that holds no producer for
    /// this client's queue.
    #[inline]
    pub(crate) fn count_span_started(&self) {
        self.inner.spans.span_started();
    }

    /// Counts an update that reached no live span.
    pub(crate) fn count_refused_update(&self) {
        self.inner.spans.refused_update();
    }

    /// Counts a `mask` hook that panicked.
    pub(crate) fn count_mask_panic(&self) {
        self.inner.spans.mask_panicked();
    }
}

/// A client with a thread's [`Producer`] for its queue, made together so
/// that the producer's spans always go to the client whose exporter is
/// woken for them.
pub(crate) struct ClientProducer {
    client: Client,
    producer: Producer<Arc<Spans>>,
}

impl ClientProducer {
    pub(crate) fn new(client: Client) -> Self {
        let producer = SpanQueue::producer(client.inner.spans.clone());
        ClientProducer { client, producer }
    }

    #[inline]
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Counts a span start in this thread's share of the counter.
    #[inline(always)]
    pub(crate) fn span_started(&self) {
        self.producer.span_started();
    }

    /// Queues the span `make` moves out of where it lives, in this thread's
    /// lane, on a place it holds. Inlined: it is the end of every span.
    #[inline(always)]
    pub(crate) fn submit_from<F: FnOnce() -> Record>(&mut self, make: F) -> Result<(), F> {
        // Only a submit that finds no place held takes places from the
        // budget, and so may take its last.
        let refilled = self.producer.places() == 0;
        let submitted = self.producer.submit_with(make);
        self.client.inner.after_submit(submitted, refilled)
    }
}

impl Inner {
    /// A span was queued in a lane that holds `held` now. The span that
    /// brings a lane to a full batch wakes a sleeping exporter, so the batch
    /// goes out without waiting for the interval. A lane's count rises by one
    /// per push and only falls when the exporter frees places, so it meets
    /// `batch_size` exactly on the way up; an exporter about to sleep checks
    /// for a full batch itself. Other spans pay one compare of the count the
    /// push computed anyway. Spans spread over several lanes, none of them
    /// holding a batch, wait for the interval, or for the queue to fill (see
    /// [`Inner::after_submit`]).
    #[inline(always)]
    fn queued(&self, held: usize) {
        if held == self.control.batch_size {
            self.wake_if_asleep();
        }
    }

    /// Wakes the exporter as a submit calls for: at a full batch in a lane
    /// (`queued`), when the span took the last free place (checked with
    /// `may_be_full`), and when it was refused.
    #[inline(always)]
    fn after_submit<F>(&self, submitted: Result<usize, F>, may_be_full: bool) -> Result<(), F> {
        match submitted {
            Ok(held) => {
                self.queued(held);
                // A submit that took the queue's last free place wakes the
                // exporter: a full queue is due, batch or not, rather than
                // let the spans after it be refused until the interval.
                if may_be_full && self.spans.is_full() {
                    self.wake_if_asleep();
                }
                Ok(())
            }
            Err(make) => {
                // Refused: the queue is full (or closed). No fence, since every
                // span refused looks again; an exporter waiting to retry does
                // not say it sleeps, so a server that stopped answering wakes
                // nobody.
                if self.controls().any(|c| c.sleeping.load(Ordering::Relaxed)) {
                    self.wake();
                }
                Err(make)
            }
        }
    }

    #[cold]
    fn wake_if_asleep(&self) {
        // Pairs with the fence in `run_exporter`: either it sees this span
        // in the queue, or this sees it asleep.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.controls().any(|c| c.sleeping.load(Ordering::Relaxed)) {
            self.wake();
        }
    }

    fn wake(&self) {
        for control in self.controls() {
            // Only the first waker pays for the unpark.
            if control.sleeping.swap(false, Ordering::Relaxed) {
                if let Some(t) = control.thread.get() {
                    t.unpark();
                }
            }
        }
    }

    /// Wakes the exporters whether or not they say they sleep (flush, shutdown).
    fn wake_now(&self) {
        for control in self.controls() {
            control.sleeping.store(false, Ordering::Relaxed);
            if let Some(t) = control.thread.get() {
                t.unpark();
            }
        }
    }
}

/// Shuts the client down when dropped; see [`Client::shutdown_on_drop`].
#[must_use = "the client shuts down as soon as the guard is dropped"]
#[derive(Debug)]
pub struct ShutdownGuard(Option<Client>);

impl ShutdownGuard {
    /// The client.
    ///
    /// ```
    /// let config = vigil::Config::builder().transport(vigil::sink::NullTransport::default).build().unwrap();
    /// let guard = vigil::Client::new(config).unwrap().shutdown_on_drop();
    /// assert!(guard.client().unwrap().is_enabled());
    /// ```
    pub fn client(&self) -> Option<&Client> {
        self.0.as_ref()
    }
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            // Uninstall first, so no span can reach a client being shut down.
            uninstall(&client);
            let report = client.shutdown();
            if !report.completed {
                log::warn!("vigil: shutdown did not finish in time: {report}");
            }
        }
    }
}

/// Starts the exporter of destination `side` on a thread of its own.
fn start_exporter(inner: &Arc<Inner>, mut transport: BoxTransport, side: usize, name: &str) {
    let control = inner.control_of(side);
    if let Some(interrupt) = transport.interrupter() {
        let _ = control.interrupt.set(interrupt);
    }
    let worker = inner.clone();
    match thread::Builder::new().name(name.into()).spawn(move || {
        let inner = worker.clone();
        let run = std::panic::AssertUnwindSafe(|| run_exporter(worker, transport, side));
        if std::panic::catch_unwind(run).is_err() {
            stop_after_panic(&inner, side);
        }
    }) {
        Ok(handle) => {
            let _ = control.thread.set(handle.thread().clone());
            *lock(&control.join) = Some(handle);
        }
        Err(e) => log::error!("vigil: cannot start the exporter thread: {e}"),
    }
}

/// HTTP to the configured endpoint when the `ureq` feature is on (the default).
#[cfg(feature = "ureq")]
fn default_transport(config: &Config) -> BoxTransport {
    let headers: Vec<(&str, &str)> = config
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    Box::new(vigil_transport_ureq::UreqTransport::new(
        &config.as_core(&headers),
    ))
}

/// Without an HTTP transport compiled in, spans are printed.
#[cfg(not(feature = "ureq"))]
fn default_transport(_config: &Config) -> BoxTransport {
    log::warn!("vigil: built without the `ureq` feature and no transport configured; printing traces to stderr");
    Box::new(ConsoleTransport::stderr())
}

/// Turns a panicking transport into a failed attempt, bounds each request
/// by the shutdown deadline, and sends nothing once it has passed.
struct Guarded<'a> {
    inner: &'a mut BoxTransport,
    control: &'a Control,
    deadline: Option<Instant>,
    panicked: bool,
    /// Where requests the exporter gives up on go, with the counters of
    /// what the spool drops.
    spool: Option<(&'a mut Spool, &'a Counters)>,
}

impl<'a> Guarded<'a> {
    fn new(
        inner: &'a mut BoxTransport,
        control: &'a Control,
        deadline: Option<Instant>,
        spool: &'a mut Option<Spool>,
        source: &'a dyn SpanSource<Text>,
    ) -> Self {
        Guarded {
            inner,
            control,
            deadline,
            panicked: false,
            spool: spool.as_mut().map(|s| (s, source.counters())),
        }
    }

    fn call<R>(
        &mut self,
        request: &Request<'_>,
        fallback: R,
        f: fn(&mut BoxTransport, &Request<'_>) -> R,
    ) -> R {
        let mut request = *request;
        if let Some(deadline) = self.deadline {
            request.timeout = request
                .timeout
                .min(deadline.saturating_duration_since(Instant::now()));
        }
        {
            let mut state = lock(&self.control.state);
            if state.interrupted {
                return fallback;
            }
            state.in_request = true;
        }
        let inner = &mut *self.inner;
        let result = catch_unwind(AssertUnwindSafe(|| f(inner, &request)));
        {
            let mut state = lock(&self.control.state);
            state.in_request = false;
            state.cut_short |= state.interrupted;
        }
        result.unwrap_or_else(|_| {
            self.panicked = true;
            fallback
        })
    }
}

impl Transport for Guarded<'_> {
    fn send(&mut self, request: &Request<'_>) -> Outcome {
        let failed = Outcome::Retry {
            after: None,
            reason: RetryReason::Failed,
        };
        self.call(request, failed, |t, r| t.send(r))
    }

    fn lookup(&mut self, request: &Request<'_>) -> Lookup {
        self.call(request, Lookup::Unknown, |t, r| t.lookup(r))
    }

    fn takes_many_traces(&self) -> bool {
        self.inner.takes_many_traces()
    }

    fn spools(&self) -> bool {
        self.spool.is_some()
    }

    fn spool(&mut self, request: &Request<'_>, attempts: u32) -> bool {
        match &mut self.spool {
            Some((spool, counters)) => spool.put(request, attempts, counters),
            None => false,
        }
    }
}

use crate::spool::Spool;

/// The exporter thread's tail sampler, when tail rules are set.
type Sampler = TailSampler<Text, Vec<Record>, Vec<HeldTrace>>;

fn run_exporter(inner: Arc<Inner>, mut transport: BoxTransport, side: usize) {
    let config = &inner.config;
    let headers: Vec<(&str, &str)> = Vec::new();
    let mut settings = config.as_core(&headers).export_settings();
    settings.backoff_base = config.retry_backoff;
    let seed = crate::seed::entropy();
    let mut exporter: Exporter<Text, Vec<Record>, Vec<Deferred<Text>>> =
        Exporter::new(settings, &config.project_id, seed);
    let defaults = trace_defaults(config);
    if exporter.set_trace_metadata(&defaults).is_err() {
        log::warn!("vigil: release and environment are too long to send with traces");
    }
    let mut buf = vec![0u8; config.max_request_bytes.max(4096)];
    let origin = Instant::now();
    let control = inner.control_of(side);
    let split = inner
        .split
        .as_ref()
        .map(|split| split.side(&inner.spans, side));
    let source: &dyn SpanSource<Text> = match &split {
        Some(side) => side,
        None => &*inner.spans,
    };
    let rules = config.tail_rules();
    let mut tail = rules.any().then(|| Sampler::new(rules));
    // The second destination's requests are its own: they keep apart.
    let mut spool = config.spool.as_ref().and_then(|settings| {
        let mut settings = settings.clone();
        if side == 1 {
            settings.dir.push("also");
        }
        Spool::open(settings, source.counters())
    });
    // A flush holds nothing back until it has sent what it could.
    let mut flushing = false;
    let mut warned_panic = false;
    let mut last_released = 0;
    loop {
        // Every pass, not only before sleeping: an exporter that never
        // catches up must still hand the application the cheap clock.
        crate::clock::calibrate();
        let (flush, shutdown) = {
            let mut state = lock(&control.state);
            (std::mem::take(&mut state.flush_requested), state.shutdown)
        };
        if flush || shutdown.is_some() {
            exporter.request_flush();
        }
        flushing |= flush || shutdown.is_some();
        let now = Instant::now();
        let view = tail.as_mut().map(|tail| {
            tail.set_flushing(flushing);
            tail.over(source, now - origin)
        });
        let source: &dyn SpanSource<Text> = match &view {
            Some(view) => view,
            None => source,
        };
        let mut replaying = false;
        if let Some(spool) = &mut spool {
            while let Some((ticket, settled)) = exporter.take_settled() {
                spool.settle(ticket, settled, source.counters());
            }
            // Replays go while the server answers; while it is away, one
            // at a time finds out when it is back.
            let probe = exporter.replaying() == 0;
            let go = !exporter.is_paused(now - origin) && (!exporter.is_unreachable() || probe);
            let most = if exporter.is_unreachable() {
                1
            } else {
                MAX_REPLAYING
            };
            let mut adopted = 0;
            while go && adopted < most && exporter.has_room_for_replay() {
                let Some(record) = spool.next(now, source.counters()) else {
                    break;
                };
                if !exporter.adopt(record.as_replay()) {
                    break;
                }
                spool.claim(record.ticket);
                adopted += 1;
                replaying = true;
            }
        }
        if let Some(deadline) = shutdown {
            // Shutdown waits for the spool's replays, unless the server is
            // away: then they wait for the next process.
            let replays_left =
                spool.as_ref().is_some_and(|s| s.has_due(now)) || exporter.replaying() > 0;
            let replays_wait = replays_left && !exporter.is_unreachable();
            let drained = exporter.is_idle_but_replays() && source.is_empty() && !replays_wait;
            if drained || now >= deadline {
                let mut guarded =
                    Guarded::new(&mut transport, control, shutdown, &mut spool, source);
                if let Some(view) = &view {
                    // What comes out of the queue from now on is decided at once.
                    view.close();
                }
                stop(&inner, side, || {
                    let mut abandoned =
                        exporter.abandon(now - origin, source, &mut guarded, &mut buf);
                    if let Some(view) = &view {
                        abandoned.spans += view.abandon();
                    }
                    abandoned
                });
                if let Some(spool) = spool {
                    spool.close(source.counters());
                }
                return;
            }
        }
        let mut guarded = Guarded::new(&mut transport, control, shutdown, &mut spool, source);
        let poll = exporter.poll(now - origin, source, &mut guarded, &mut buf);
        if guarded.panicked {
            lock(&control.state).transport_panicked = true;
            if !warned_panic {
                warned_panic = true;
                log::error!(
                    "vigil: the transport panicked; the request counts as a failed attempt"
                );
            }
        }
        // Wake flushers only when a batch finished, not after every request.
        let released = match &inner.split {
            Some(split) => split.released()[side] + inner.spans.released(),
            None => inner.spans.released(),
        };
        if released != last_released {
            last_released = released;
            // Under the lock, so a flusher between its check and its wait
            // cannot miss it; flushers wait on the first exporter's.
            for c in [control, &inner.control] {
                let _state = lock(&c.state);
                c.progress.notify_all();
            }
            // Spans this exporter moved into the other's buffer: wake it.
            if let Some(split) = &inner.split {
                let other = 1 - side;
                let other_control = inner.control_of(other);
                if split.buffered(other) > 0 && other_control.sleeping.load(Ordering::Relaxed) {
                    other_control.sleeping.store(false, Ordering::Relaxed);
                    if let Some(t) = other_control.thread.get() {
                        t.unpark();
                    }
                }
            }
        }
        flushing &= poll == Poll::Again;
        let wake_at = match poll {
            // Replays just taken in: send them, and take in more.
            Poll::Again | Poll::Wait(_) | Poll::Idle(_) if replaying => continue,
            Poll::Again => continue,
            // Shutting down and nothing left: finish now, not at the deadline.
            Poll::Idle(_) if shutdown.is_some() => continue,
            Poll::Wait(at) | Poll::Idle(at) => origin
                .checked_add(at)
                .unwrap_or_else(|| deadline_after(Duration::MAX)),
        };
        let wake_at = shutdown.map_or(wake_at, |d| wake_at.min(d));
        // A trace held for its root is decided at its timeout.
        let wake_at = match view.as_ref().and_then(|view| view.next_deadline()) {
            Some(at) => wake_at.min(origin.checked_add(at).unwrap_or(wake_at)),
            None => wake_at,
        };
        // Sleep until the next flush time, a retry time, a full batch or a
        // flush request, whichever comes first. Only an idle exporter says it
        // sleeps: one holding a batch waits for its retry time whatever is
        // queued, and woken by every span refused meanwhile (a full queue
        // while the server is away) it would only sleep again.
        let idle = exporter.is_ready_for_spans(Instant::now() - origin);
        control.sleeping.store(idle, Ordering::Relaxed);
        // Pairs with the fence in `Inner::wake_if_asleep`.
        std::sync::atomic::fence(Ordering::SeqCst);
        let pending = lock(&control.state).flush_requested;
        let batch_ready = idle && (source.len() >= control.batch_size || source.is_full());
        if !pending && !batch_ready {
            let now = Instant::now();
            if wake_at > now {
                thread::park_timeout(wake_at - now);
            }
        }
        control.sleeping.store(false, Ordering::Relaxed);
    }
}

/// The metadata members every trace gets: `release` and `environment`.
fn trace_defaults(config: &Config) -> String {
    let mut members = serde_json::Map::new();
    for (key, value) in [
        (crate::keys::RELEASE, &config.release),
        (crate::keys::ENVIRONMENT, &config.environment),
    ] {
        if !value.is_empty() {
            members.insert(key.to_owned(), value.as_str().into());
        }
    }
    let object = serde_json::Value::Object(members).to_string();
    object[1..object.len() - 1].to_owned()
}

/// The exporter loop panicked (an SDK bug; transport panics are caught per
/// request): refuse and count new spans, count the queued ones as dropped,
/// and let flush and shutdown return instead of waiting for a dead thread.
fn stop_after_panic(inner: &Inner, side: usize) {
    log::error!(
        "vigil: the exporter stopped after an internal error; spans are dropped and counted"
    );
    stop(inner, side, || Abandoned {
        spans: match &inner.split {
            Some(split) => split.discard(&inner.spans, side),
            None => inner.spans.discard_queued(),
        },
        patches: 0,
    });
}

/// Ends the exporter's work: spans that end from now on have nobody to send
/// them (counted as dropped), `drop_rest` drops and counts what is left, and
/// flush and shutdown may return.
///
/// The second destination's exporter leaves the queue open: the first may
/// still be sending.
fn stop(inner: &Inner, side: usize, drop_rest: impl FnOnce() -> Abandoned) {
    if side == 0 {
        inner.spans.close();
    }
    let abandoned = drop_rest();
    let control = inner.control_of(side);
    let mut state = lock(&control.state);
    state.abandoned.spans += abandoned.spans;
    state.abandoned.patches += abandoned.patches;
    state.finished = true;
    control.progress.notify_all();
    drop(state);
    if side == 1 {
        // A flusher waits on the first exporter's.
        let _state = lock(&inner.control.state);
        inner.control.progress.notify_all();
    }
}

/// `now + timeout`, or a time too far off to matter when that overflows
/// (`Duration::MAX` means no deadline).
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

// ---- the global client ----

static GLOBAL: RwLock<Option<Client>> = RwLock::new(None);
/// Bumped whenever the global client changes, so threads can cache it.
pub(crate) static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Starts the SDK with `config` and installs it as the global client.
///
/// Calling `init` again replaces the global client: the previous one flushes
/// and stops in the background (within its `shutdown_timeout`), and spans
/// started afterwards go to the new one.
///
/// The global client is also shut down when the process exits, by
/// `std::process::exit` or by returning from `main` without calling
/// [`shutdown`]: what is still queued is sent within `shutdown_timeout`,
/// and if anything could not be, a warning says what (through `log`, or on
/// stderr when no logger is installed).
///
/// ```
/// # fn main() -> Result<(), vigil::ConfigError> {
/// let client = vigil::init(
///     vigil::Config::builder()
///         .endpoint("http://localhost:8000")
///         .api_key("my-key")
///         .project_id("support-agent")
///         .build()?,
/// )?;
/// assert!(vigil::get_client().is_some());
/// # client.shutdown_timeout(std::time::Duration::from_millis(100));
/// # Ok(()) }
/// ```
pub fn init(config: Config) -> Result<Client, ConfigError> {
    let client = Client::new(config)?;
    at_exit::register();
    let previous = {
        let mut global = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
        GENERATION.fetch_add(1, Ordering::Release);
        global.replace(client.clone())
    };
    if let Some(previous) = previous {
        thread::spawn(move || {
            previous.shutdown();
        });
    }
    Ok(client)
}

/// [`init`] with [`Config::from_env`]: `VIGIL_ENDPOINT`, `VIGIL_API_KEY`, ...
/// When `VIGIL_ENDPOINT` is not set, finished traces are printed to stdout as
/// trees, unless the `otlp` feature is on and `OTEL_EXPORTER_OTLP_ENDPOINT`
/// is set: then they go to that OTLP endpoint (and with `VIGIL_ENDPOINT` set
/// too, to both).
///
/// ```
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let _client = vigil::init_from_env()?; // an error here prints as a sentence
///     vigil::trace("job", |_| ());
///     if let Some(report) = vigil::shutdown() {
///         println!("{report}");
///     }
///     Ok(())
/// }
/// ```
pub fn init_from_env() -> Result<Client, EnvError> {
    let mut config = Config::from_env()?;
    if std::env::var_os("VIGIL_ENDPOINT").is_none() && config.transport.is_none() {
        config.transport = Some(Arc::new(|| {
            Box::new(ConsoleTransport::stdout()) as BoxTransport
        }));
        config.destination = Destination::Console;
    }
    init(config).map_err(EnvError::Invalid)
}

/// The global client, if [`init`] was called and [`shutdown`] was not.
///
/// ```
/// if let Some(client) = vigil::get_client() {
///     println!("{} spans delivered so far", client.stats().spans_delivered);
/// }
/// ```
pub fn get_client() -> Option<Client> {
    GLOBAL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Shuts down the global client (see [`Client::shutdown`]) and removes it.
/// Returns `None` when there was none.
///
/// ```
/// assert!(vigil::shutdown().is_none(), "no client was started");
/// ```
pub fn shutdown() -> Option<ShutdownReport> {
    let client = take_global()?;
    Some(client.shutdown())
}

/// [`shutdown`] with an explicit deadline.
///
/// ```
/// let report = vigil::shutdown_timeout(std::time::Duration::from_secs(2));
/// assert!(report.is_none(), "no client was started");
/// ```
pub fn shutdown_timeout(timeout: Duration) -> Option<ShutdownReport> {
    let client = take_global()?;
    Some(client.shutdown_timeout(timeout))
}

/// Sends everything ended so far through the global client, waiting up to
/// `timeout`. True if everything was handled (or there is no client).
///
/// ```
/// // At the end of a batch job's step, before a risky operation:
/// assert!(vigil::flush(std::time::Duration::from_secs(2)));
/// ```
pub fn flush(timeout: Duration) -> bool {
    get_client().is_none_or(|c| c.flush(timeout))
}

/// The global client's shutdown at process exit.
mod at_exit {
    use std::sync::Once;

    extern "C" {
        /// The C library's: runs `callback` at `exit`, which is also how
        /// Rust's `main` returns. Process-wide, so registered once.
        fn atexit(callback: extern "C" fn()) -> core::ffi::c_int;
    }

    pub(super) fn register() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: `atexit` takes a plain function pointer with no state;
            // `run` catches every panic, so none unwinds into C.
            let failed = unsafe { atexit(run) } != 0;
            if failed {
                log::warn!(
                    "vigil: cannot flush at process exit; call vigil::shutdown() before exiting"
                );
            }
        });
    }

    extern "C" fn run() {
        let _ = std::panic::catch_unwind(|| {
            let Some(client) = super::take_global() else {
                return;
            };
            let queued = client.stats().in_flight();
            let report = client.shutdown();
            if report.completed {
                return;
            }
            let message = format!(
                "vigil: {queued} spans were still queued at process exit and not all could be sent: {report}"
            );
            if log::log_enabled!(log::Level::Warn) {
                log::warn!("{message}");
            } else {
                eprintln!("{message}");
            }
        });
    }
}

fn take_global() -> Option<Client> {
    let mut global = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
    GENERATION.fetch_add(1, Ordering::Release);
    global.take()
}

fn uninstall(client: &Client) {
    let mut global = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
    if global.as_ref().is_some_and(|g| g.same(client)) {
        GENERATION.fetch_add(1, Ordering::Release);
        *global = None;
    }
}
