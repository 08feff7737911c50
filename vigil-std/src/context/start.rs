//! How a span starts: its ids, its client and whether it is recorded, and
//! its frame, built where it will live.

use std::sync::atomic::Ordering;

use vigil_core::{Name, SpanId, SpanKind, Timestamp, TraceId};

use super::frame::Frame;
use super::stack::{with_local, Entry, Local};
use crate::client::{Client, GENERATION};
use crate::clock::now;
use crate::text::{self, Text};
use crate::Record;

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
        field_limit: client.field_limit(),
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
        (None, Some(trace)) => (trace, None, client.is_sampled(trace)),
        (None, None) => return None,
    };
    if sampled {
        match global {
            Some(g) => g.span_started(),
            None => client.count_span_started(),
        }
    }
    let field_limit = client.field_limit();
    Some(Plan {
        trace_id,
        span_id,
        parent_id,
        sampled,
        pinned,
        field_limit,
    })
}
