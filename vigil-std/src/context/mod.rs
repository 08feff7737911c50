//! The current-span stack of each thread, and how spans start and end.
//!
//! Live spans are owned by a thread-local stack, so starting a span with a
//! static name and no payload allocates nothing once the stack has grown, and
//! `current_span()` can reach the innermost span from anywhere in the thread.
//! Guards remove their own entry by id, so dropping them out of order is safe.
//! A [`Context`] carries the ids of the current span to another thread or
//! future, where new spans become its children.
//!
//! Bottom to top: `mail` (updates sent from elsewhere), `frame` (a live span
//! and how updates reach it), `stack` (the thread's stack), `start` and `end`
//! (a span's life), `propagation` (contexts, futures' held spans, scoping).

mod end;
mod frame;
mod mail;
mod propagation;
mod stack;
mod start;

pub(crate) use end::{close, close_current_words, id_words};
pub(crate) use frame::Frame;
pub(crate) use mail::Mail;
pub(crate) use propagation::{pop_with_held, post, push_held, push_with_held, remote_ids, Held};
pub use propagation::{spawn, Context, ContextGuard};
pub(crate) use stack::{current_client, current_id, current_root_id, with_frame};
pub(crate) use start::{open, open_current, Start};
