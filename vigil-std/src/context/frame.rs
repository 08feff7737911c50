//! A span being recorded, and how updates reach it: made where it lives, or
//! mailed from elsewhere.

use std::sync::Arc;

use serde::Serialize;
use vigil_core::{SpanStatus, Timestamp};

use super::mail::{Mail, Mailbox};
use crate::client::Client;
use crate::config::Field;
use crate::payload::{self, Payload};
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
    /// `Context`; made when the first such context is taken.
    pub(crate) mailbox: Option<Arc<Mailbox>>,
}

impl Frame {
    /// Records a payload on the span, through the `mask` hook and
    /// `capture_content` switch of `client`, the span's client.
    pub(crate) fn set_payload<T: Serialize + ?Sized>(
        &mut self,
        client: Option<&Client>,
        field: Field<'_>,
        value: &T,
    ) {
        self.set_payload_at(client, field, value, None);
    }

    /// [`Frame::set_payload`], with the time an event happened (`None`: now).
    pub(crate) fn set_payload_at<T: Serialize + ?Sized>(
        &mut self,
        client: Option<&Client>,
        field: Field<'_>,
        value: &T,
        at: Option<Timestamp>,
    ) {
        if self.sampled {
            payload::set(&mut self.span, client, field, value, at);
        }
    }

    /// Records a payload made JSON on another thread, as
    /// [`Frame::set_payload_at`] would have.
    fn set_mailed(
        &mut self,
        client: Option<&Client>,
        field: Field<'_>,
        payload: Payload,
        at: Option<Timestamp>,
    ) {
        if self.sampled {
            payload::set_mailed(&mut self.span, client, field, payload, at);
        }
    }
}

/// Applies what other threads and tasks sent to `frame`, in order, through
/// the same masking and limits as updates made here; `close` when the span
/// is ending.
#[inline(always)]
pub(super) fn deliver_mail(frame: &mut Frame, client: Option<&Client>, close: bool) {
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
                frame.set_mailed(client, Field::Metadata(&key), value, None);
            }
            Mail::Event(name, at, value) => {
                frame.set_mailed(client, Field::Event(&name), value, Some(at));
            }
            Mail::Input(value) => frame.set_mailed(client, Field::Input, value, None),
            Mail::Output(value) => frame.set_mailed(client, Field::Output, value, None),
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
