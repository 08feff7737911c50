//! The current-span stack of each thread, and how spans start and end.
//!
//! Live spans are owned by a thread-local stack, so starting a span with a
//! static name and no payload allocates nothing once the stack has grown, and
//! `current_span()` can reach the innermost span from anywhere in the thread.
//! Guards remove their own entry by id, so dropping them out of order is safe.
//! A [`Context`] carries the ids of the current span to another thread or
//! future, where new spans become its children.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use vigil_core::{IdGenerator, Name, SpanId, SpanKind, SpanStatus, Timestamp, TraceId};

use crate::client::{get_client, Client, ClientProducer, GENERATION};
use crate::config::Field;
use crate::span::{set_mailed, Payload};
use crate::text::{self, Text};
use crate::Record;

/// A span being recorded, owned by the stack of the thread it runs on.
pub(crate) struct Frame {
    pub(crate) span: Record,
    /// The client when it is not the global one (explicit or scoped).
    pub(crate) client: Option<Client>,
    pub(crate) sampled: bool,
    /// Set explicitly: kept as is when the span ends.
    pub(crate) status_set: bool,
    /// Started while the thread was already unwinding (in a `Drop`): that
    /// panic is not this span's failure.
    pub(crate) started_panicking: bool,
    /// Updates from threads and tasks that reach this span only through a
    /// [`Context`]; made when the first such context is taken.
    pub(crate) mailbox: Option<Arc<Mailbox>>,
}

/// An update for a span, sent from where only its [`Context`] is known.
pub(crate) enum Mail {
    Metadata(String, Payload),
    Event(String, Timestamp, Payload),
    Input(Payload),
    Output(Payload),
    Status(SpanStatus),
    Error(String),
}

/// Where [`Mail`] waits for the span's own thread, which applies it before
/// each update it makes itself (so the order of a hand-off holds) and when
/// the span ends. Closed from then on: later mail is refused, and counted.
pub(crate) struct Mailbox(Mutex<Option<Vec<Mail>>>);

/// Most updates waiting for one span; more are refused and counted, so a
/// long-lived span fed by many threads cannot grow without bound.
const MAX_WAITING_MAIL: usize = 1024;

impl Mailbox {
    fn new() -> Self {
        Mailbox(Mutex::new(Some(Vec::new())))
    }

    /// Leaves `mail` for the span; `false` if the span has ended or too much
    /// is waiting.
    fn post(&self, mail: Mail) -> bool {
        match &mut *crate::sync::lock(&self.0) {
            Some(waiting) if waiting.len() < MAX_WAITING_MAIL => {
                waiting.push(mail);
                true
            }
            _ => false,
        }
    }

    /// Whether the span still takes updates (it has not ended).
    fn is_open(&self) -> bool {
        crate::sync::lock(&self.0).is_some()
    }

    /// What is waiting; with `close`, also refuses what comes later.
    fn take(&self, close: bool) -> Vec<Mail> {
        let mut waiting = crate::sync::lock(&self.0);
        if close {
            waiting.take().unwrap_or_default()
        } else {
            waiting.as_mut().map(std::mem::take).unwrap_or_default()
        }
    }
}

/// Applies what other threads and tasks sent to `frame`, in order, through
/// the same masking and limits as updates made here; `close` when the span
/// is ending.
#[inline(always)]
fn deliver_mail(frame: &mut Frame, client: Option<&Client>, close: bool) {
    if let Some(mailbox) = &frame.mailbox {
        let mail = mailbox.take(close);
        if close {
            frame.mailbox = None;
        }
        if !mail.is_empty() {
            apply_mail(frame, client, mail);
        }
    }
}

#[cold]
fn apply_mail(frame: &mut Frame, client: Option<&Client>, mail: Vec<Mail>) {
    for mail in mail {
        match mail {
            Mail::Metadata(key, value) => {
                set_mailed(frame, client, Field::Metadata(&key), value, None);
            }
            Mail::Event(name, at, value) => {
                set_mailed(frame, client, Field::Event(&name), value, Some(at));
            }
            Mail::Input(value) => set_mailed(frame, client, Field::Input, value, None),
            Mail::Output(value) => set_mailed(frame, client, Field::Output, value, None),
            Mail::Status(status) => {
                frame.span.set_status(status);
                frame.status_set = true;
            }
            Mail::Error(message) => {
                frame.span.set_status(SpanStatus::Error);
                frame.status_set = true;
                let _ = frame.span.set_metadata("error", &message);
            }
        }
    }
}

enum Entry {
    Span(Frame),
    /// A parent from another thread or task, attached here.
    Remote(ContextInner),
}

impl Entry {
    fn ids(&self) -> (TraceId, SpanId, bool) {
        match self {
            Entry::Span(f) => (f.span.trace_id(), f.span.span_id(), f.sampled),
            Entry::Remote(c) => (c.trace_id, c.span_id, c.sampled),
        }
    }

    fn client(&self) -> Option<&Client> {
        match self {
            Entry::Span(f) => f.client.as_ref(),
            Entry::Remote(c) => c.client.as_ref(),
        }
    }
}

struct Local {
    stack: Vec<Entry>,
    /// This thread's id generator.
    ids: Option<IdGenerator>,
    /// The global client as this thread last found it, and its generation,
    /// with this thread's producer for its queue.
    global: Option<(u64, Option<ClientProducer>)>,
    scoped: Vec<Client>,
}

thread_local! {
    static LOCAL: RefCell<Local> = const {
        RefCell::new(Local {
            stack: Vec::new(),
            ids: None,
            global: None,
            scoped: Vec::new(),
        })
    };
}

/// Runs `f` on this thread's state; `None` while it is already in use (a
/// `Serialize` impl calling back into the SDK) or being torn down.
fn with_local<R>(f: impl FnOnce(&mut Local) -> R) -> Option<R> {
    LOCAL
        .try_with(|l| l.try_borrow_mut().ok().map(|mut l| f(&mut l)))
        .ok()
        .flatten()
}

impl Local {
    fn ids(&mut self) -> &mut IdGenerator {
        self.ids
            .get_or_insert_with(|| IdGenerator::from_seed(crate::seed::entropy()))
    }

    /// The client new spans go to when no parent names one.
    fn default_client(&mut self) -> Option<Client> {
        if let Some(c) = self.scoped.last() {
            return Some(c.clone());
        }
        self.global_client().cloned()
    }

    fn global_client(&mut self) -> Option<&Client> {
        self.global_producer().map(|p| p.client())
    }

    /// The global client as it is now, with this thread's producer for it
    /// (the one for an earlier global client, dropped here, gives back its
    /// places and lane).
    fn global_producer(&mut self) -> Option<&mut ClientProducer> {
        let generation = GENERATION.load(Ordering::Acquire);
        if self.global.as_ref().is_none_or(|(g, _)| *g != generation) {
            self.global = None;
            self.global = Some((generation, get_client().map(ClientProducer::new)));
        }
        self.global.as_mut().and_then(|(_, p)| p.as_mut())
    }
}

impl Drop for Local {
    /// The thread is exiting with spans still open (a guard that was leaked,
    /// or kept in a thread-local destroyed after this one): they end now,
    /// innermost first, marked so, rather than vanish uncounted.
    fn drop(&mut self) {
        while let Some(entry) = self.stack.pop() {
            if let Entry::Span(mut frame) = entry {
                let _ = frame.span.set_metadata("vigil.ended_at_thread_exit", &true);
                finish(self, frame);
            }
        }
    }
}

pub(crate) use crate::clock::now;

/// Whether a trace with this id is recorded, given the client's threshold.
fn sampled(trace: TraceId, client: &Client) -> bool {
    let threshold = client.inner.sample_threshold;
    if threshold == u64::MAX {
        return true;
    }
    sample_key(trace) < threshold
}

/// A trace's random bits as a number: bytes 0-5 and 9-10, little-endian
/// (in a UUIDv4, 6 and 8 hold version and variant bits). Read as one
/// number, not byte by byte, which would make the compiler split every
/// copy of the id into bytes.
#[inline]
fn sample_key(trace: TraceId) -> u64 {
    let id = u128::from_le_bytes(trace.to_bytes());
    (id as u64 & 0xffff_ffff_ffff) | (((id >> 72) as u64 & 0xffff) << 48)
}

/// How a new span relates to what is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// A child of the current span, or the root of a new trace if none.
    Child,
    /// Always the root of a new trace.
    Trace,
}

/// Builds a span (not yet on any stack). `None` when nothing is recorded:
/// no client, a disabled one, or re-entrant use.
pub(crate) fn open(
    name: Name<String>,
    kind: SpanKind,
    start: Start,
    explicit: Option<&Client>,
) -> Option<Frame> {
    with_local(|l| build(l, name, kind, start, explicit)).flatten()
}

/// Starts a span and makes it current; returns its id. The span is built
/// where it will live, on the stack: a record is over a hundred bytes, and
/// copying it between temporaries cost more than the rest of the work.
pub(crate) fn open_current(
    name: Name<String>,
    kind: SpanKind,
    start: Start,
    explicit: Option<&Client>,
) -> Option<SpanId> {
    // What calls out comes first, so nothing is held across a call.
    let name = text::name(name);
    let started_panicking = std::thread::panicking();
    let at = now();
    with_local(|l| {
        // Room first, so the frame can be written in place (`push` would
        // build it aside in case the vector had to grow).
        l.stack.reserve(1);
        // The usual case is written on its own, so that its plan stays in
        // registers rather than merge with the general one in memory.
        let usual = match (start, explicit) {
            (Start::Child, None) => usual_plan(l),
            _ => None,
        };
        let plan = match usual {
            Some(plan) => plan,
            None => {
                let plan = any_plan(l, start, explicit)?;
                return Some(push(l, plan, name, kind, started_panicking, at));
            }
        };
        Some(push(l, plan, name, kind, started_panicking, at))
    })
    .flatten()
}

/// Writes the frame `plan` describes on top of the stack, which has room.
#[inline(always)]
fn push(
    l: &mut Local,
    plan: Plan,
    name: Name<Text>,
    kind: SpanKind,
    started_panicking: bool,
    at: Timestamp,
) -> SpanId {
    let id = plan.span_id;
    let len = l.stack.len();
    if let Some(slot) = l.stack.spare_capacity_mut().first_mut() {
        plan.write(slot, name, kind, started_panicking, at);
        // SAFETY: the entry at `len` was initialised just above.
        unsafe { l.stack.set_len(len + 1) };
    }
    id
}

#[inline(always)]
fn build(
    l: &mut Local,
    name: Name<String>,
    kind: SpanKind,
    start: Start,
    explicit: Option<&Client>,
) -> Option<Frame> {
    Some(plan(l, start, explicit)?.frame(name, kind))
}

/// Everything a new span needs besides its name and kind.
struct Plan {
    trace_id: TraceId,
    span_id: SpanId,
    parent_id: Option<SpanId>,
    sampled: bool,
    pinned: Option<Client>,
    field_limit: usize,
}

impl Plan {
    #[inline(always)]
    fn frame(self, name: Name<String>, kind: SpanKind) -> Frame {
        let mut frame = std::mem::MaybeUninit::uninit();
        let name = text::name(name);
        self.write(&mut frame, name, kind, std::thread::panicking(), now());
        // SAFETY: `write` initialised it.
        unsafe { frame.assume_init() }
    }

    /// Writes the new span's frame into `slot`, straight rather than through
    /// temporaries: the callers work out beforehand what calls out (the
    /// name, the clock).
    #[inline(always)]
    fn write<T: From<Frame>>(
        self,
        slot: &mut std::mem::MaybeUninit<T>,
        name: Name<Text>,
        kind: SpanKind,
        started_panicking: bool,
        at: Timestamp,
    ) {
        let mut span = Record::new(self.trace_id, self.span_id, self.parent_id, name, kind, at);
        span.set_root(self.parent_id.is_none());
        span.set_field_limit(self.field_limit);
        slot.write(T::from(Frame {
            span,
            client: self.pinned,
            sampled: self.sampled,
            status_set: false,
            started_panicking,
            mailbox: None,
        }));
    }
}

impl From<Frame> for Entry {
    #[inline(always)]
    fn from(frame: Frame) -> Entry {
        Entry::Span(frame)
    }
}

/// Works out a new span's ids, client and sampling, and counts its start;
/// `None` when nothing is to be recorded.
#[inline(always)]
fn plan(l: &mut Local, start: Start, explicit: Option<&Client>) -> Option<Plan> {
    match (start, explicit) {
        (Start::Child, None) => usual_plan(l).or_else(|| any_plan(l, start, explicit)),
        _ => any_plan(l, start, explicit),
    }
}

/// [`plan`] for the usual span, with nothing to call out for: a recorded
/// child of a span of this thread, going to the global client as this
/// thread last found it. `None` for anything else, which [`any_plan`] sees to.
#[inline(always)]
fn usual_plan(l: &mut Local) -> Option<Plan> {
    let Some(Entry::Span(parent)) = l.stack.last() else {
        return None;
    };
    if !parent.sampled || parent.client.is_some() || !l.scoped.is_empty() {
        return None;
    }
    let (generation, Some(global)) = l.global.as_ref()? else {
        return None;
    };
    let client = global.client();
    if *generation != GENERATION.load(Ordering::Acquire) || !client.is_enabled() {
        return None;
    }
    let ids = l.ids.as_mut()?;
    global.span_started();
    Some(Plan {
        trace_id: parent.span.trace_id(),
        span_id: ids.span_id(),
        parent_id: Some(parent.span.span_id()),
        sampled: true,
        pinned: None,
        field_limit: client.config().max_field_bytes,
    })
}

/// [`plan`] for any span.
#[inline(never)]
fn any_plan(l: &mut Local, start: Start, explicit: Option<&Client>) -> Option<Plan> {
    let parent = match start {
        Start::Child => l.stack.last(),
        Start::Trace => None,
    };
    let parent_ids = parent.map(Entry::ids);
    // A client other than the global one is carried by the span (and its
    // children); the global one is looked up again when the span ends,
    // so the common case clones no `Arc`.
    let pinned = explicit
        .or_else(|| parent.and_then(Entry::client))
        .or(l.scoped.last())
        .cloned();
    let (span_id, new_trace) = {
        let ids = l.ids();
        let new_trace = parent_ids.is_none().then(|| ids.trace_id());
        (ids.span_id(), new_trace)
    };
    let global = match &pinned {
        Some(_) => None,
        None => Some(&*l.global_producer()?),
    };
    let client = match (&pinned, global) {
        (Some(c), _) => c,
        (None, Some(g)) => g.client(),
        (None, None) => return None,
    };
    if !client.is_enabled() {
        return None;
    }
    let (trace_id, parent_id, sampled) = match (parent_ids, new_trace) {
        (Some((trace, parent, sampled)), _) => (trace, Some(parent), sampled),
        (None, Some(trace)) => (trace, None, self::sampled(trace, client)),
        (None, None) => return None,
    };
    if sampled {
        match global {
            Some(g) => g.span_started(),
            None => client.inner.spans.span_started(),
        }
    }
    let field_limit = client.config().max_field_bytes;
    Some(Plan {
        trace_id,
        span_id,
        parent_id,
        sampled,
        pinned,
        field_limit,
    })
}

/// Spans (and attached contexts) a future's poll left open above the
/// future's own span: a guard held across an `.await`. The future keeps them
/// between polls, so other tasks on the thread do not see them as current.
#[derive(Default)]
pub(crate) struct Held(Vec<Entry>);

impl Drop for Held {
    /// Dropped with their future, not put back: the spans end now, marked
    /// cancelled (their guards, dropped later, find nothing to end).
    fn drop(&mut self) {
        for entry in self.0.drain(..).rev() {
            if let Entry::Span(mut frame) = entry {
                let _ = frame.span.set_metadata("vigil.cancelled", &true);
                close(frame);
            }
        }
    }
}

/// Makes `frame` the current span of this thread, with what its future's
/// last poll left open above it.
pub(crate) fn push_with_held(frame: Frame, held: &mut Held) {
    let mut frame = Some(frame);
    let _ = with_local(|l| {
        l.stack.extend(frame.take().map(Entry::Span));
        l.stack.append(&mut held.0);
    });
    if let Some(frame) = frame {
        // This thread's state is busy or gone: the span ends here.
        close(frame);
    }
}

/// Puts back on this thread's stack what a finished future left open.
pub(crate) fn push_held(mut held: Held) {
    if held.0.is_empty() {
        return;
    }
    let _ = with_local(|l| l.stack.append(&mut held.0));
}

/// Takes the span `id` off this thread's stack (wherever it is), with
/// everything still open above it.
pub(crate) fn pop_with_held(id: SpanId) -> Option<(Frame, Held)> {
    with_local(|l| {
        let at = l
            .stack
            .iter()
            .rposition(|e| matches!(e, Entry::Span(f) if f.span.span_id() == id))?;
        let above = l.stack.split_off(at + 1);
        match l.stack.pop()? {
            Entry::Span(frame) => Some((frame, Held(above))),
            Entry::Remote(_) => None,
        }
    })
    .flatten()
}

impl Local {
    /// Removes the innermost scoping of `client` (scopes may end out of order).
    fn unscope(&mut self, client: &Client) {
        if let Some(at) = self.scoped.iter().rposition(|c| c.same(client)) {
            self.scoped.remove(at);
        }
    }

    /// Removes the span `id` from the stack, however deep (guards may be
    /// dropped out of order); the common case, the top, is a plain pop.
    fn take(&mut self, id: SpanId) -> Option<Frame> {
        let at = self
            .stack
            .iter()
            .rposition(|e| matches!(e, Entry::Span(f) if f.span.span_id() == id))?;
        let entry = if at + 1 == self.stack.len() {
            self.stack.pop()?
        } else {
            self.stack.remove(at)
        };
        match entry {
            Entry::Span(f) => Some(f),
            Entry::Remote(_) => None,
        }
    }
}

/// Ends `frame` now and hands it to its client (a span carried outside the
/// stack, by a future).
pub(crate) fn close(frame: Frame) {
    let mut frame = Some(frame);
    let _ = with_local(|l| {
        if let Some(frame) = frame.take() {
            finish(l, frame);
        }
    });
    if let Some(frame) = frame {
        // This thread's state is busy or gone: hand the span over directly.
        let global = crate::client::get_client();
        match frame.client.clone().or(global) {
            Some(client) => submit(&client, frame),
            None => drop(frame.mailbox.map(|m| m.take(true))),
        }
    }
}

/// Ends the span `id` of this thread's stack, wherever it is in the stack.
pub(crate) fn close_current(id: SpanId) {
    let _ = with_local(|l| {
        if matches!(l.stack.last(), Some(Entry::Span(f)) if f.span.span_id() == id) {
            finish_top(l);
        } else if let Some(frame) = l.take(id) {
            finish(l, frame);
        }
    });
}

/// [`finish`] for the span on top of the stack, ended where it lies so that
/// the record is copied once, straight into the queue.
#[inline(always)]
fn finish_top(l: &mut Local) {
    if finish_usual_top(l) {
        return;
    }
    match l.stack.last() {
        Some(Entry::Span(frame)) if frame.sampled => {}
        Some(Entry::Span(_)) => {
            l.stack.pop();
            return;
        }
        _ => return,
    }
    // A thread may end spans before it has started one (a future's, moved
    // here between polls): it takes its producer now, so that all its spans
    // go to one lane.
    l.global_producer();
    let Local { stack, global, .. } = l;
    let mut global = global.as_mut().and_then(|(_, p)| p.as_mut());
    let Some(Entry::Span(frame)) = stack.last_mut() else {
        return;
    };
    if frame.mailbox.is_some() {
        // Rare (a context was taken): clone the client, so the span keeps
        // its own even if a `mask` hook panics while the mail is applied.
        let client = (frame.client.clone()).or_else(|| global.as_ref().map(|g| g.client().clone()));
        deliver_mail(frame, client.as_ref(), true);
    }
    end(frame);
    let recipient = match (frame.client.take(), global.take()) {
        (Some(client), _) => Recipient::Pinned(client),
        (None, Some(global)) => Recipient::Global(global),
        (None, None) => {
            stack.pop();
            return;
        }
    };
    debug_assert!(frame.client.is_none() && frame.mailbox.is_none());
    let record: *mut Record = &mut frame.span;
    let top = stack.len() - 1;
    // SAFETY: the top entry is taken out of the stack first (`set_len`),
    // so whatever happens next it is never dropped or reached through the
    // stack again; its memory stays allocated and untouched until the next
    // push. Its record is then either read out into the queue (by `make`,
    // called at most once) or, if refused, dropped in place. What else the
    // entry holds needs no drop: the client and the mailbox were taken
    // above, the rest are flags.
    unsafe { stack.set_len(top) };
    // SAFETY: as above, the record is read out at most once.
    if recipient
        .submit_from(|| unsafe { std::ptr::read(record) })
        .is_err()
    {
        // SAFETY: refused, so never read out: dropped here, once.
        unsafe { std::ptr::drop_in_place(record) };
    }
}

/// Where a thread's ended span goes: the client it was pinned to, or the
/// global one through this thread's producer.
enum Recipient<'a> {
    Pinned(Client),
    Global(&'a mut ClientProducer),
}

impl Recipient<'_> {
    fn client(&self) -> &Client {
        match self {
            Recipient::Pinned(client) => client,
            Recipient::Global(global) => global.client(),
        }
    }

    #[inline(always)]
    fn submit_from<F: FnOnce() -> Record>(self, make: F) -> Result<(), F> {
        match self {
            Recipient::Pinned(client) => client.submit_from(make),
            Recipient::Global(global) => global.submit_from(make),
        }
    }
}

/// [`finish_top`] for the usual span, with nothing to call out for: recorded,
/// going to the global client as this thread last found it, with no status
/// set, no mail and no panic under way. `false` (and nothing done) for
/// anything else.
#[inline(always)]
fn finish_usual_top(l: &mut Local) -> bool {
    let Some((generation, Some(global))) = &mut l.global else {
        return false;
    };
    let Some(Entry::Span(frame)) = l.stack.last_mut() else {
        return false;
    };
    if !frame.sampled
        || frame.status_set
        || frame.client.is_some()
        || frame.mailbox.is_some()
        || *generation != GENERATION.load(Ordering::Acquire)
        || std::thread::panicking()
    {
        return false;
    }
    frame.span.end(now(), SpanStatus::Ok);
    let record: *mut Record = &mut frame.span;
    // SAFETY: as in `finish_top`: the entry leaves the stack first, and its
    // record is then read out once or dropped in place; the rest of the
    // entry needs no drop (no client, no mailbox, flags).
    unsafe { l.stack.set_len(l.stack.len() - 1) };
    // SAFETY: as in `finish_top`, the record is read out at most once.
    if global
        .submit_from(|| unsafe { std::ptr::read(record) })
        .is_err()
    {
        // SAFETY: refused, so never read out: dropped here, once.
        unsafe { std::ptr::drop_in_place(record) };
    }
    true
}

/// Unless its status was set explicitly, a span ends `error` when its thread
/// began panicking since it started, else `ok`; then it goes to its
/// client's queue.
fn finish(l: &mut Local, mut frame: Frame) {
    if !frame.sampled {
        return;
    }
    let recipient = match frame.client.take() {
        Some(client) => Some(Recipient::Pinned(client)),
        None => l.global_producer().map(Recipient::Global),
    };
    deliver_mail(&mut frame, recipient.as_ref().map(Recipient::client), true);
    end(&mut frame);
    if let Some(recipient) = recipient {
        let _ = recipient.submit_from(|| frame.span);
    }
}

/// Stamps the end time and the status a span ends with.
#[inline(always)]
fn end(frame: &mut Frame) {
    let status = if frame.status_set {
        frame.span.status()
    } else if std::thread::panicking() && !frame.started_panicking {
        let _ = frame
            .span
            .set_metadata("error", &crate::panic::description());
        SpanStatus::Error
    } else {
        SpanStatus::Ok
    };
    frame.span.end(now(), status);
}

fn submit(client: &Client, mut frame: Frame) {
    deliver_mail(&mut frame, Some(client), true);
    let status = if frame.status_set {
        frame.span.status()
    } else {
        SpanStatus::Ok
    };
    frame.span.end(now(), status);
    if frame.sampled {
        client.submit(frame.span);
    }
}

/// Runs `f` on the live span `id` of this thread, if it is here, with the
/// client it will go to (no `Arc` clone for the global one).
pub(crate) fn with_frame<R>(
    id: SpanId,
    f: impl FnOnce(&mut Frame, Option<&Client>) -> R,
) -> Option<R> {
    with_local(|l| {
        l.global_client();
        let global = l
            .global
            .as_ref()
            .and_then(|(_, p)| p.as_ref().map(|p| p.client()));
        let frame = l.stack.iter_mut().rev().find_map(|e| match e {
            Entry::Span(f) if f.span.span_id() == id => Some(f),
            _ => None,
        })?;
        let client = frame.client.clone();
        let client = client.as_ref().or(global);
        // Updates handed over from elsewhere came first.
        deliver_mail(frame, client, false);
        Some(f(frame, client))
    })
    .flatten()
}

/// The innermost span of this thread: a local one, or the span of an
/// attached [`Context`].
pub(crate) fn current_id() -> Option<SpanId> {
    with_local(|l| l.stack.last().map(|e| e.ids().1)).flatten()
}

/// Sends `mail` to the span `id` of a [`Context`] attached on this thread
/// (the innermost one with that span), to be applied when the span ends on
/// its own thread. `false` if no such context is attached here; the update
/// is counted as late if the span has already ended.
pub(crate) fn post(id: SpanId, mail: impl FnOnce() -> Option<Mail>) -> bool {
    let target = with_local(|l| {
        l.stack.iter().rev().find_map(|e| match e {
            Entry::Remote(c) if c.span_id == id => Some((c.mailbox.clone(), c.client.clone())),
            _ => None,
        })
    })
    .flatten();
    let Some((mailbox, client)) = target else {
        return false;
    };
    // Not recorded (sampled out): nothing to update, nothing lost.
    let (Some(mailbox), Some(mail)) = (mailbox, mail()) else {
        return true;
    };
    if !mailbox.post(mail) {
        if let Some(client) = client.or_else(get_client) {
            client.inner.spans.refused_update();
        }
    }
    true
}

/// The trace of the attached [`Context`] span `id`, if any, and whether
/// that span is being recorded: sampled, and not yet ended.
pub(crate) fn remote_ids(id: SpanId) -> Option<(TraceId, bool)> {
    with_local(|l| {
        l.stack.iter().rev().find_map(|e| match e {
            Entry::Remote(c) if c.span_id == id => {
                let live = c.mailbox.as_ref().is_some_and(|m| m.is_open());
                Some((c.trace_id, c.sampled && live))
            }
            _ => None,
        })
    })
    .flatten()
}

/// The root span of the current trace, if it lives on this thread.
pub(crate) fn current_root_id() -> Option<SpanId> {
    with_local(|l| {
        let (trace, _, _) = l.stack.last()?.ids();
        l.stack.iter().rev().find_map(|e| match e {
            Entry::Span(f) if f.span.is_root() && f.span.trace_id() == trace => {
                Some(f.span.span_id())
            }
            _ => None,
        })
    })
    .flatten()
}

/// Runs `f` with `client` as this thread's default client.
pub(crate) fn with_scoped_client<R>(client: &Client, f: impl FnOnce() -> R) -> R {
    struct Unscope<'a>(&'a Client);
    impl Drop for Unscope<'_> {
        fn drop(&mut self) {
            let _ = with_local(|l| l.unscope(self.0));
        }
    }
    let _ = with_local(|l| l.scoped.push(client.clone()));
    let _unscope = Unscope(client);
    f()
}

/// The client that a span started here would go to.
pub(crate) fn current_client() -> Option<Client> {
    with_local(|l| match l.stack.last().and_then(Entry::client) {
        Some(c) => Some(c.clone()),
        None => l.default_client(),
    })
    .flatten()
}

/// Where new spans attach: the current span's ids, to carry to another
/// thread or future.
///
/// ```
/// use vigil::{sink::capture, Context, SpanKind};
///
/// let captured = capture(|| {
///     vigil::trace("parent", |_| {
///         let context = Context::current();
///         std::thread::spawn(move || {
///             let _attached = context.attach();
///             vigil::span("in-thread", SpanKind::Tool, |_| ());
///         })
///         .join()
///         .unwrap();
///     });
/// });
/// let child = captured.span("in-thread").unwrap();
/// assert_eq!(child.parent_span_id, Some(captured.span("parent").unwrap().span_id.clone()));
/// ```
#[derive(Clone, Default)]
pub struct Context {
    parent: Option<ContextInner>,
    /// The client spans go to (carried even when there is no span, so a
    /// scoped client such as [`crate::sink::capture`]'s follows threads).
    client: Option<Client>,
}

#[derive(Clone)]
struct ContextInner {
    trace_id: TraceId,
    span_id: SpanId,
    sampled: bool,
    client: Option<Client>,
    /// Where updates for the span go (recorded spans only).
    mailbox: Option<Arc<Mailbox>>,
}

impl Context {
    /// The current span's context (with no span, just the current client).
    ///
    /// ```
    /// let captured = vigil::sink::capture(|| {
    ///     vigil::trace("job", |_| assert!(!vigil::Context::current().is_empty()));
    /// });
    /// assert!(vigil::Context::current().is_empty(), "no span here");
    /// # drop(captured);
    /// ```
    pub fn current() -> Context {
        with_local(|l| {
            let client = l
                .stack
                .last()
                .and_then(Entry::client)
                .cloned()
                .or_else(|| l.scoped.last().cloned());
            let parent = l.stack.last_mut().map(|entry| {
                let (trace_id, span_id, sampled) = entry.ids();
                let mailbox = match entry {
                    Entry::Span(f) if f.sampled => Some(
                        f.mailbox
                            .get_or_insert_with(|| Arc::new(Mailbox::new()))
                            .clone(),
                    ),
                    Entry::Span(_) => None,
                    Entry::Remote(c) => c.mailbox.clone(),
                };
                ContextInner {
                    trace_id,
                    span_id,
                    sampled,
                    client: client.clone(),
                    mailbox,
                }
            });
            Context { parent, client }
        })
        .unwrap_or_default()
    }

    /// Where the span of a future made now is to start, when first polled
    /// (see [`Context::attach_for`]): as [`Context::current`], or for a new
    /// trace (`Start::Trace`) only the current client. The future does not
    /// update that span, so no mailbox is made for it.
    pub(crate) fn for_future(start: Start) -> Context {
        with_local(|l| {
            let top = l.stack.last();
            let client = top.and_then(Entry::client).or(l.scoped.last()).cloned();
            let parent = match (top, start) {
                (Some(entry), Start::Child) => {
                    let (trace_id, span_id, sampled) = entry.ids();
                    Some(ContextInner {
                        trace_id,
                        span_id,
                        sampled,
                        client: client.clone(),
                        mailbox: None,
                    })
                }
                _ => None,
            };
            Context { parent, client }
        })
        .unwrap_or_default()
    }

    /// Attaches a context from [`Context::for_future`] while the future's
    /// span starts, unless that changes nothing: its span is the current one
    /// (the future is polled where it was made), or it has no span, and for
    /// a child, a span is current (which is then the parent), or there is no
    /// client either.
    pub(crate) fn attach_for(&self, start: Start) -> Option<ContextGuard> {
        let attach = match (&self.parent, start) {
            (Some(parent), _) => current_id() != Some(parent.span_id),
            (None, Start::Child) => self.client.is_some() && current_id().is_none(),
            (None, Start::Trace) => self.client.is_some(),
        };
        attach.then(|| self.attach())
    }

    /// Whether there is a span to attach to.
    pub fn is_empty(&self) -> bool {
        self.parent.is_none()
    }

    /// The trace, if any.
    pub fn trace_id(&self) -> Option<TraceId> {
        self.parent.as_ref().map(|c| c.trace_id)
    }

    /// Makes this context current on this thread until the guard drops: spans
    /// started meanwhile become children of the context's span.
    pub fn attach(&self) -> ContextGuard {
        let attached = with_local(|l| match (&self.parent, &self.client) {
            (Some(parent), _) => {
                l.stack.push(Entry::Remote(parent.clone()));
                Attached::Parent(parent.span_id)
            }
            (None, Some(client)) => {
                l.scoped.push(client.clone());
                Attached::Client(client.clone())
            }
            (None, None) => Attached::Nothing,
        })
        .unwrap_or(Attached::Nothing);
        ContextGuard {
            attached,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.parent {
            Some(c) => f
                .debug_struct("Context")
                .field("trace_id", &c.trace_id)
                .field("span_id", &c.span_id)
                .finish(),
            None => f.write_str("Context(empty)"),
        }
    }
}

enum Attached {
    Parent(SpanId),
    Client(Client),
    Nothing,
}

/// Detaches a [`Context`] when dropped.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     let context = vigil::trace("job", |_| vigil::Context::current());
///     let guard = context.attach(); // spans started now are the context's children
///     vigil::span("follow-up", vigil::SpanKind::Tool, |_| ());
///     drop(guard); // and from here on they are not
/// });
/// let job = captured.span("job").unwrap();
/// assert_eq!(captured.span("follow-up").unwrap().parent_span_id, Some(job.span_id.clone()));
/// ```
#[must_use = "the context is detached when the guard is dropped"]
pub struct ContextGuard {
    attached: Attached,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        let _ = with_local(|l| match &self.attached {
            &Attached::Parent(id) => {
                let found = l
                    .stack
                    .iter()
                    .rposition(|e| matches!(e, Entry::Remote(c) if c.span_id == id));
                if let Some(at) = found {
                    l.stack.remove(at);
                }
            }
            Attached::Client(client) => l.unscope(client),
            Attached::Nothing => {}
        });
    }
}

/// Spawns a thread that runs `f` inside the current context.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     vigil::trace("fan-out", |_| {
///         let workers: Vec<_> = (0..2)
///             .map(|i| vigil::spawn(move || vigil::span(format!("worker-{i}"), vigil::SpanKind::Tool, |_| ())))
///             .collect();
///         workers.into_iter().for_each(|w| w.join().unwrap());
///     })
/// });
/// let root = captured.span("fan-out").unwrap();
/// assert_eq!(captured.span("worker-1").unwrap().parent_span_id, Some(root.span_id.clone()));
/// ```
pub fn spawn<F, T>(f: F) -> std::thread::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let context = Context::current();
    std::thread::spawn(move || {
        let _attached = context.attach();
        f()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_key_is_the_random_bytes_of_the_trace_id() {
        let mut ids = IdGenerator::from_seed(3);
        for _ in 0..1_000 {
            let trace = ids.trace_id();
            let b = trace.to_bytes();
            let bytes = [b[0], b[1], b[2], b[3], b[4], b[5], b[9], b[10]];
            assert_eq!(sample_key(trace), u64::from_le_bytes(bytes));
        }
    }
}
