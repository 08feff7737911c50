//! Each thread's stack of live spans and attached contexts, and what can be
//! asked of it.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use vigil_core::{IdGenerator, SpanId, TraceId};

use super::frame::{deliver_mail, Frame};
use super::mail::Mailbox;
use crate::client::{get_client, Client, ClientProducer, GENERATION};

pub(super) enum Entry {
    Span(Frame),
    /// A parent from another thread or task, attached here.
    Remote(ContextInner),
}

/// The span a `Context` carries, as it is attached.
#[derive(Clone)]
pub(super) struct ContextInner {
    pub(super) trace_id: TraceId,
    pub(super) span_id: SpanId,
    pub(super) sampled: bool,
    pub(super) client: Option<Client>,
    /// Where updates for the span go (recorded spans only).
    pub(super) mailbox: Option<Arc<Mailbox>>,
}

impl Entry {
    pub(super) fn ids(&self) -> (TraceId, SpanId, bool) {
        match self {
            Entry::Span(f) => (f.span.trace_id(), f.span.span_id(), f.sampled),
            Entry::Remote(c) => (c.trace_id, c.span_id, c.sampled),
        }
    }

    pub(super) fn client(&self) -> Option<&Client> {
        match self {
            Entry::Span(f) => f.client.as_ref(),
            Entry::Remote(c) => c.client.as_ref(),
        }
    }
}

impl From<Frame> for Entry {
    #[inline(always)]
    fn from(frame: Frame) -> Entry {
        Entry::Span(frame)
    }
}

pub(super) struct Local {
    pub(super) stack: Vec<Entry>,
    /// This thread's id generator.
    pub(super) ids: Option<IdGenerator>,
    /// The global client as this thread last found it, and its generation,
    /// with this thread's producer for its queue.
    pub(super) global: Option<(u64, Option<ClientProducer>)>,
    pub(super) scoped: Vec<Client>,
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
/// `Serialize` impl calling back into the SDK) or being torn down. Inlined:
/// every span's start and end goes through it.
#[inline(always)]
pub(super) fn with_local<R>(f: impl FnOnce(&mut Local) -> R) -> Option<R> {
    LOCAL
        .try_with(|l| l.try_borrow_mut().ok().map(|mut l| f(&mut l)))
        .ok()
        .flatten()
}

impl Local {
    pub(super) fn ids(&mut self) -> &mut IdGenerator {
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
    pub(super) fn global_producer(&mut self) -> Option<&mut ClientProducer> {
        let generation = GENERATION.load(Ordering::Acquire);
        if self.global.as_ref().is_none_or(|(g, _)| *g != generation) {
            self.global = None;
            self.global = Some((generation, get_client().map(ClientProducer::new)));
        }
        self.global.as_mut().and_then(|(_, p)| p.as_mut())
    }

    /// Removes the innermost scoping of `client` (scopes may end out of order).
    pub(super) fn unscope(&mut self, client: &Client) {
        if let Some(at) = self.scoped.iter().rposition(|c| c.same(client)) {
            self.scoped.remove(at);
        }
    }

    /// Removes the span `id` from the stack, however deep (guards may be
    /// dropped out of order); the common case, the top, is a plain pop.
    pub(super) fn take(&mut self, id: SpanId) -> Option<Frame> {
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
/// attached `Context`.
pub(crate) fn current_id() -> Option<SpanId> {
    with_local(|l| l.stack.last().map(|e| e.ids().1)).flatten()
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

/// The client that a span started here would go to.
pub(crate) fn current_client() -> Option<Client> {
    with_local(|l| match l.stack.last().and_then(Entry::client) {
        Some(c) => Some(c.clone()),
        None => l.default_client(),
    })
    .flatten()
}
