//! Carrying the current span to other threads and futures: [`Context`],
//! attached where it arrives; the spans a future keeps open between polls;
//! and the client a thread's spans go to ([`Client::scope`]).

use std::sync::Arc;

use vigil_core::{SpanId, TraceId};

use super::end::close;
use super::frame::Frame;
use super::mail::{Mail, Mailbox};
use super::stack::{current_id, with_local, ContextInner, Entry};
use super::start::Start;
use crate::client::{get_client, Client};

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
    /// scoped client such as the one `sink::capture` makes follows threads).
    client: Option<Client>,
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

    /// The context of `frame`, a span on no stack (its mailbox made if
    /// needed, so updates sent under the context reach it).
    pub(crate) fn of_frame(frame: &mut Frame) -> Context {
        let mailbox = frame.sampled.then(|| {
            frame
                .mailbox
                .get_or_insert_with(|| Arc::new(Mailbox::new()))
                .clone()
        });
        Context {
            parent: Some(ContextInner {
                trace_id: frame.span.trace_id(),
                span_id: frame.span.span_id(),
                sampled: frame.sampled,
                client: frame.client.clone(),
                mailbox,
            }),
            client: frame.client.clone(),
        }
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

impl std::fmt::Debug for ContextGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextGuard").finish_non_exhaustive()
    }
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
            client.count_refused_update();
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

impl Client {
    /// Runs `f` with this client as the current thread's client: spans that
    /// `f` starts (and their children, on any thread or future they are
    /// carried to) go to this client rather than the global one.
    ///
    /// ```
    /// # let client = vigil::Client::new(vigil::Config::builder().transport(vigil::sink::NullTransport::default).build().unwrap()).unwrap();
    /// client.scope(|| {
    ///     vigil::trace("job", |_| vigil::span("step", vigil::SpanKind::Tool, |_| ()));
    /// });
    /// assert_eq!(client.stats().spans_started, 2);
    /// ```
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Unscope<'a>(&'a Client);
        impl Drop for Unscope<'_> {
            fn drop(&mut self) {
                let _ = with_local(|l| l.unscope(self.0));
            }
        }
        let _ = with_local(|l| l.scoped.push(self.clone()));
        let _unscope = Unscope(self);
        f()
    }
}
