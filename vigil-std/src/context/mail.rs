//! Updates for a span from threads and tasks that reach it only through a
//! `Context`, and the mailbox where they wait for it.

use std::sync::Mutex;

use vigil_core::{SpanStatus, Timestamp};

use crate::payload::Payload;
use crate::sync::lock;

/// An update for a span, sent from where only its `Context` is known.
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
    pub(super) fn new() -> Self {
        Mailbox(Mutex::new(Some(Vec::new())))
    }

    /// Leaves `mail` for the span; `false` if the span has ended or too much
    /// is waiting.
    pub(super) fn post(&self, mail: Mail) -> bool {
        match &mut *lock(&self.0) {
            Some(waiting) if waiting.len() < MAX_WAITING_MAIL => {
                waiting.push(mail);
                true
            }
            _ => false,
        }
    }

    /// Whether the span still takes updates (it has not ended).
    pub(super) fn is_open(&self) -> bool {
        lock(&self.0).is_some()
    }

    /// What is waiting; with `close`, also refuses what comes later.
    pub(super) fn take(&self, close: bool) -> Vec<Mail> {
        let mut waiting = lock(&self.0);
        if close {
            waiting.take().unwrap_or_default()
        } else {
            waiting.as_mut().map(std::mem::take).unwrap_or_default()
        }
    }
}
