//! Payloads on a span's record: made JSON, passed through the client's
//! `mask` hook and `capture_content` switch, cut to the field limit.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde_json::Value;
use vigil_core::{
    json::{Changes, JsonError},
    span::{Truncated, UNSERIALIZABLE_KEY},
    Timestamp,
};

use crate::client::Client;
use crate::clock::now;
use crate::config::{Field, MaskFn};
use crate::Record;

/// Records `value` as `field` of `span`, through the `mask` hook and
/// `capture_content` switch of `client`, the span's client; `at` is when an
/// event happened (`None`: now). The span is a recorded one (sampled).
pub(crate) fn set<T: Serialize + ?Sized>(
    span: &mut Record,
    client: Option<&Client>,
    field: Field<'_>,
    value: &T,
    at: Option<Timestamp>,
) {
    if !captured(client, field) {
        return;
    }
    let result = match masking(client) {
        Some((client, mask)) => masked(span, client, mask, field, || to_json(value), at),
        None => write_field(span, field, value, at),
    };
    report(result);
}

/// The client's mask hook, if it has one.
fn masking(client: Option<&Client>) -> Option<(&Client, &MaskFn)> {
    let client = client?;
    Some((client, client.config().mask.as_deref()?))
}

/// Records the value `json` makes on the span, through `mask`.
///
/// The hook is user code: a panic in it is caught, and the field recorded as
/// [`MASK_PANICKED`] instead (and counted), so that the application and the
/// span go on. On a thread already unwinding from a panic (a span ending in
/// a `Drop`), the hook is not called at all, since a second panic there
/// would abort the process: the field is recorded and counted the same way.
fn masked(
    span: &mut Record,
    client: &Client,
    mask: &MaskFn,
    field: Field<'_>,
    json: impl FnOnce() -> Payload,
    at: Option<Timestamp>,
) -> Result<(), JsonError> {
    if std::thread::panicking() {
        return mask_failed(span, client, field, at);
    }
    let (mut value, changes) = match json() {
        Ok(json) => json,
        Err(e) => return write_unserializable(span, field, e, at),
    };
    // What making it JSON cut is marked; a U+0000 it kept is replaced, and
    // counted, as the value is written.
    let _ = span.note(part(field), Ok(changes));
    match panic::catch_unwind(AssertUnwindSafe(|| mask(field, &mut value))) {
        Ok(()) => write_field(span, field, &value, at),
        Err(payload) => {
            // Dropping what the panic carries runs user code too.
            if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(again);
            }
            mask_failed(span, client, field, at)
        }
    }
}

/// The key and text of what stands in for a field the mask hook did not
/// return: `{"vigil.masked": "the mask hook panicked"}`.
const MASK_PANICKED: (&str, &str) = ("vigil.masked", "the mask hook panicked");

/// Records [`MASK_PANICKED`] in place of `field`, and counts it.
fn mask_failed(
    span: &mut Record,
    client: &Client,
    field: Field<'_>,
    at: Option<Timestamp>,
) -> Result<(), JsonError> {
    client.count_mask_panic();
    write_field(span, field, &BTreeMap::from([MASK_PANICKED]), at)
}

/// Records a payload made JSON on another thread (a span's mail) as [`set`]
/// would have.
pub(crate) fn set_mailed(
    span: &mut Record,
    client: Option<&Client>,
    field: Field<'_>,
    payload: Payload,
    at: Option<Timestamp>,
) {
    if !captured(client, field) {
        return;
    }
    let result = match (masking(client), payload) {
        (Some((client, mask)), payload) => masked(span, client, mask, field, || payload, at),
        (None, Ok((value, changes))) => {
            let _ = span.note(part(field), Ok(changes));
            write_field(span, field, &value, at)
        }
        (None, Err(e)) => write_unserializable(span, field, e, at),
    };
    report(result);
}

/// Whether `field` is recorded: content (input and output) only when the
/// client captures it.
fn captured(client: Option<&Client>, field: Field<'_>) -> bool {
    let content = matches!(field, Field::Input | Field::Output);
    !(content && client.is_some_and(|c| !c.config().capture_content))
}

/// The part of a span `field` is, as [`Truncated`] names it.
fn part(field: Field<'_>) -> Truncated {
    match field {
        Field::Input => Truncated::INPUT,
        Field::Output => Truncated::OUTPUT,
        Field::Metadata(_) => Truncated::METADATA,
        Field::Event(_) => Truncated::EVENTS,
    }
}

/// Records `{"vigil.unserializable": "<why>"}` in place of a value that
/// could not be written, and marks the span; returns the error.
fn write_unserializable(
    span: &mut Record,
    field: Field<'_>,
    error: JsonError,
    at: Option<Timestamp>,
) -> Result<(), JsonError> {
    let marker = BTreeMap::from([(UNSERIALIZABLE_KEY, error.to_string())]);
    // A marker over the limit is cut, and marked so, like any value.
    let _ = write_field(span, field, &marker, at);
    span.note(part(field), Err(error))
}

fn write_field<T: Serialize + ?Sized>(
    span: &mut Record,
    field: Field<'_>,
    value: &T,
    at: Option<Timestamp>,
) -> Result<(), JsonError> {
    match field {
        Field::Input | Field::Output => with_scratch(|scratch| {
            // Encode once into a reused buffer, then copy: one allocation of
            // the exact size instead of a buffer growing by doubling.
            let limit = span.field_limit();
            let encoded = vigil_core::span::write_object(scratch, limit, value);
            let copied = match field {
                Field::Input => span.set_input_json(scratch),
                _ => span.set_output_json(scratch),
            };
            // What was cut or changed on the way is marked on the span.
            let noted = span.note(part(field), encoded);
            copied.and(noted)
        }),
        Field::Metadata(key) => span.set_metadata(key, value),
        Field::Event(name) => span.add_event(name, at.unwrap_or_else(now), value),
    }
}

/// Runs `f` with this thread's scratch buffer, emptied (a fresh one if a
/// nested call holds it).
fn with_scratch<R>(f: impl FnOnce(&mut String) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::Cell<String> = const { std::cell::Cell::new(String::new()) };
    }
    let mut scratch = SCRATCH.try_with(std::cell::Cell::take).unwrap_or_default();
    scratch.clear();
    let out = f(&mut scratch);
    // Keep the buffer for next time, unless one huge payload made it huge.
    if scratch.capacity() <= 1 << 20 {
        let _ = SCRATCH.try_with(|cell| cell.set(scratch));
    }
    out
}

/// A value made JSON (by [`to_json`]) for a mask hook or a span that lives
/// elsewhere, with what was cut to make it; `Err` if it could not be made,
/// which the span records as it would a value set where it lives.
pub(crate) type Payload = Result<(Value, Changes), JsonError>;

/// `value` as a JSON value, without the risk of `serde_json::to_value`,
/// which recurses as deep as the value goes (a value nested 10,000 deep
/// overflowed a 2 MiB stack): the SDK's writer encodes it, cutting what is
/// nested deeper than [`vigil_core::json::MAX_DEPTH`] without looking into it, and
/// serde_json parses the text, which is then well within its nesting limit.
/// U+0000 is kept, to be replaced when the value is written to a span.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Payload {
    with_scratch(|scratch| {
        let changes = vigil_core::span::write_json(scratch, usize::MAX, value)?;
        let value = serde_json::from_str(scratch).map_err(|_| JsonError::Custom)?;
        Ok((value, changes))
    })
}

/// Payload overflow is counted when the span is submitted; anything else is
/// a value JSON cannot hold (recorded as a marker, and counted), logged once.
fn report(result: Result<(), JsonError>) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = result {
        if e != JsonError::Full && !WARNED.swap(true, Ordering::Relaxed) {
            log::warn!("vigil: a payload could not be written as JSON: {e}");
        }
    }
}
