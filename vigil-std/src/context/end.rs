//! How a span ends, wherever it is: on top of this thread's stack (the
//! usual way, ended where it lies), deeper in the stack, carried by a
//! future, or still open when its thread exits.
//!
//! Every way goes through [`end`], which stamps the end time and the status,
//! then [`Recipient::submit_from`], which queues the span for its client.

use std::sync::atomic::Ordering;

use vigil_core::{SpanId, SpanStatus};

use super::frame::{deliver_mail, Frame};
use super::stack::{with_local, Entry, Local};
use crate::client::{get_client, Client, ClientProducer, GENERATION};
use crate::clock::now;
use crate::Record;

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
        finish_without_local(frame);
    }
}

/// A span id as two words, its bytes in memory order: how the guard hands
/// its span's id over when it drops. `open_current` writes the id with two
/// 8-byte stores, and a 16-byte load of them cannot be forwarded from the
/// store buffer: it waits until every older store has reached the cache.
#[inline(always)]
pub(crate) fn id_words(id: &SpanId) -> (u64, u64) {
    let bytes = id.to_bytes();
    let word = |at: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    (word(0), word(8))
}

/// [`close_current`] for an id as [`id_words`] gives it (two words travel
/// in two registers; an array of them would go through memory again).
#[inline(never)]
pub(crate) fn close_current_words((first, second): (u64, u64)) {
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&first.to_ne_bytes());
    bytes[8..].copy_from_slice(&second.to_ne_bytes());
    close_current(SpanId::from_bytes(bytes));
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

/// Stamps the end time and the status a span ends with: the one set
/// explicitly, else `error` when its thread began panicking since it
/// started, else `ok`.
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
    if frame.span.is_root() {
        crate::cost::close_trace(&mut frame.span);
    }
    frame.span.end(now(), status);
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

    /// Queues the span `make` moves out of where it lives; gives `make`
    /// back, uncalled, if the queue refuses the span.
    #[inline(always)]
    fn submit_from<F: FnOnce() -> Record>(self, make: F) -> Result<(), F> {
        match self {
            Recipient::Pinned(client) => client.submit_from(make),
            Recipient::Global(global) => global.submit_from(make),
        }
    }
}

/// Ends `frame`, off the stack, and hands it to its client: the one it was
/// pinned to, or the global one through this thread's producer.
fn finish(l: &mut Local, mut frame: Frame) {
    if !frame.sampled {
        return;
    }
    let recipient = match frame.client.take() {
        Some(client) => Some(Recipient::Pinned(client)),
        None => l.global_producer().map(Recipient::Global),
    };
    end_and_submit(frame, recipient);
}

/// [`finish`] on a thread whose state is busy or gone: the span goes to the
/// global client without this thread's producer.
#[cold]
fn finish_without_local(mut frame: Frame) {
    if !frame.sampled {
        return;
    }
    let recipient = frame.client.take().or_else(get_client);
    end_and_submit(frame, recipient.map(Recipient::Pinned));
}

/// Applies the mail waiting for `frame` and closes its mailbox, ends it, and
/// hands it to `recipient` (with none, no client records it: it is dropped).
#[inline(always)]
fn end_and_submit(mut frame: Frame, recipient: Option<Recipient<'_>>) {
    deliver_mail(&mut frame, recipient.as_ref().map(Recipient::client), true);
    end(&mut frame);
    if let Some(recipient) = recipient {
        let _ = recipient.submit_from(|| frame.span);
    }
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
    // SAFETY: `record` is the span of the top entry of `stack`, a frame
    // whose client was taken just above and whose mailbox `deliver_mail`
    // closed and dropped (or that never had one).
    unsafe { submit_top(stack, record, recipient) };
}

/// [`finish_top`] for the usual span, with nothing to call out for: recorded,
/// going to the global client as this thread last found it, with no client
/// of its own and no mail. `false` (and nothing done) for anything else.
#[inline(always)]
fn finish_usual_top(l: &mut Local) -> bool {
    let Some((generation, Some(global))) = &mut l.global else {
        return false;
    };
    let Some(Entry::Span(frame)) = l.stack.last_mut() else {
        return false;
    };
    if !frame.sampled
        || frame.client.is_some()
        || frame.mailbox.is_some()
        || *generation != GENERATION.load(Ordering::Acquire)
    {
        return false;
    }
    end(frame);
    let record: *mut Record = &mut frame.span;
    // SAFETY: `record` is the span of the top entry of the stack, a frame
    // with no client and no mailbox (both checked above).
    unsafe { submit_top(&mut l.stack, record, Recipient::Global(global)) };
    true
}

/// Moves the ended span on top of `stack` into `recipient`'s queue: the
/// entry leaves the stack first, then its record is read out once, straight
/// into the queue, or dropped where it lies if the queue refuses it.
///
/// # Safety
///
/// `stack` is not empty, and `record` points to the record of its top entry,
/// an [`Entry::Span`] whose frame has no client and no mailbox.
#[inline(always)]
unsafe fn submit_top(stack: &mut Vec<Entry>, record: *mut Record, recipient: Recipient<'_>) {
    let top = stack.len() - 1;
    // SAFETY: `top` is within the stack's initialised length. The top entry
    // leaves the stack first, so whatever happens next it is never dropped
    // or reached through the stack again; its memory stays allocated and
    // untouched until the next push. Apart from its record, which is dealt
    // with below, the entry holds nothing that needs a drop: the caller
    // promises no client and no mailbox, and the rest are flags.
    unsafe { stack.set_len(top) };
    // SAFETY: `record` points to the record of the entry just taken off the
    // stack (the caller's promise), which nothing else reaches now; the queue
    // calls `make` at most once, so the record is read out at most once.
    let make = || unsafe { std::ptr::read(record) };
    if recipient.submit_from(make).is_err() {
        // SAFETY: refused, so `make` was not called: the record, still where
        // it lies and never read out, is dropped here, once.
        unsafe { std::ptr::drop_in_place(record) };
    }
}
