//! Spans and traces: the records the SDK builds and ships.
//!
//! Payloads (input, output, metadata, events) are encoded to JSON once, when
//! they are set, into the span's own [`Buffer`]s; shipping a span later only
//! copies text. Each payload field is capped (see [`Span::set_field_limit`]);
//! a value that does not fit is replaced by a marker and the span's metadata
//! says which field was cut (`"vigil.truncated": ["input"]`), as does one
//! nested deeper than [`MAX_DEPTH`](crate::json::MAX_DEPTH). U+0000, which the server cannot store,
//! is sent as U+FFFD (see [`Span`]).

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::buffer::{char_prefix, Buffer};
use crate::id::{SpanId, TraceId};
use crate::json::{self, Changes, JsonError, Limited, Output};
use crate::model::{SpanKind, SpanStatus};
use crate::time::{Timestamp, RFC3339_LEN};

/// Most characters of a span name the server stores; longer names are cut.
pub const MAX_NAME_CHARS: usize = 256;

/// Default cap, in bytes, on each encoded payload field of a span.
pub const DEFAULT_FIELD_LIMIT: usize = 64 * 1024;

/// What stands in for a payload field that exceeded its cap.
pub const TRUNCATED_MARKER: &str = "{\"vigil.truncated\":true}";

/// The key of the object that stands in for a value that could not be
/// written: `{"vigil.unserializable": "<why>"}`, the reason being the
/// [`JsonError`]'s `Display` text.
pub const UNSERIALIZABLE_KEY: &str = "vigil.unserializable";

/// `is_empty`, `contains` and `union` for a set of flags in a `u8`.
macro_rules! flag_set {
    ($set:ident) => {
        impl $set {
            /// Whether no flag is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// Whether every flag of `other` is set.
            pub const fn contains(self, other: $set) -> bool {
                self.0 & other.0 == other.0
            }

            /// Both sets together.
            #[must_use]
            pub const fn union(self, other: $set) -> $set {
                $set(self.0 | other.0)
            }
        }
    };
}

/// Which parts of a span were cut to fit a limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Truncated(u8);

flag_set!(Truncated);

impl Truncated {
    /// The name was longer than [`MAX_NAME_CHARS`].
    pub const NAME: Truncated = Truncated(1);
    /// The input exceeded the field limit.
    pub const INPUT: Truncated = Truncated(2);
    /// The output exceeded the field limit.
    pub const OUTPUT: Truncated = Truncated(4);
    /// Some metadata entries were left out.
    pub const METADATA: Truncated = Truncated(8);
    /// Some events were left out.
    pub const EVENTS: Truncated = Truncated(16);
    /// The whole span was larger than a request; its payloads were left out.
    pub const OVERSIZE: Truncated = Truncated(32);

    const NAMES: [(Truncated, &'static str); 6] = [
        (Self::NAME, "name"),
        (Self::INPUT, "input"),
        (Self::OUTPUT, "output"),
        (Self::METADATA, "metadata"),
        (Self::EVENTS, "events"),
        (Self::OVERSIZE, "oversize"),
    ];

    /// The names of the parts cut, as they appear in `vigil.truncated`.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(flag, _)| self.contains(*flag))
            .map(|(_, name)| name)
    }
}

/// Where [`Repaired`] sits in a span's marks byte, above [`Truncated`].
const REPAIRED_SHIFT: u32 = 6;
const TRUNCATED_BITS: u8 = (1 << REPAIRED_SHIFT) - 1;
const _: () = assert!(Truncated::OVERSIZE.0 < 1 << REPAIRED_SHIFT);

/// What was changed in a span's content so that the server stores it, besides
/// the cuts to fit a limit ([`Truncated`]). Not listed in `vigil.truncated`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Repaired(u8);

impl Repaired {
    /// A U+0000 in a payload, a metadata key or an event name was replaced
    /// by U+FFFD. (One in the span's name is replaced when the span is sent.)
    pub const NUL: Repaired = Repaired(1);
    /// A value could not be written (its `Serialize` failed, or a map key had
    /// no string form): `{"vigil.unserializable": "<why>"}` stands in for it.
    pub const UNSERIALIZABLE: Repaired = Repaired(2);
}

flag_set!(Repaired);

/// The parent id of a root span: all zeros, which no generated id is.
const NO_PARENT: SpanId = SpanId::from_bytes([0; 16]);

/// The end time of a span still running.
const NOT_ENDED: Timestamp = Timestamp::from_unix_nanos(u64::MAX);

/// A span's name: borrowed for the common `'static` case so no copy is made.
#[derive(Clone, Debug)]
pub enum Name<B> {
    /// A string literal or other `'static` text.
    Static(&'static str),
    /// Text copied into the span's own buffer.
    Owned(B),
}

impl<B: Buffer> Name<B> {
    /// A name copied from `text`, cut to what the buffer and the server hold.
    pub fn copied(text: &str) -> Self {
        let mut buf = B::default();
        let (text, _) = char_prefix(text, MAX_NAME_CHARS);
        let text = crate::buffer::byte_prefix(text, buf.max_len());
        // `text` fits by construction.
        let _ = buf.push_str(text);
        Name::Owned(buf)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            Name::Static(s) => s,
            Name::Owned(b) => b.as_str(),
        }
    }
}

#[cfg(feature = "alloc")]
impl From<alloc::string::String> for Name<alloc::string::String> {
    fn from(s: alloc::string::String) -> Self {
        Name::Owned(s)
    }
}

#[cfg(feature = "alloc")]
impl From<alloc::borrow::Cow<'static, str>> for Name<alloc::string::String> {
    fn from(s: alloc::borrow::Cow<'static, str>) -> Self {
        match s {
            alloc::borrow::Cow::Borrowed(s) => Name::Static(s),
            alloc::borrow::Cow::Owned(s) => Name::Owned(s),
        }
    }
}

impl<B> From<&'static str> for Name<B> {
    fn from(s: &'static str) -> Self {
        Name::Static(s)
    }
}

/// One unit of work inside a trace, ready to be shipped once it has ended.
///
/// `B` stores the name and the encoded payloads: `heapless::String<N>` with no
/// allocator, `String` with the `alloc` feature.
///
/// Every U+0000 in what a span sends (its name, event names, metadata keys
/// and values, input, output, event attributes) is sent as U+FFFD, the
/// replacement character: the server's PostgreSQL database cannot store
/// U+0000, and one would fail the whole request. Such a span is marked
/// ([`Repaired::NUL`], for its payloads) and counted in `nul_replaced`.
///
/// A value that cannot be written as JSON (its `Serialize` fails, or a map
/// key has no string form) is recorded as `{"vigil.unserializable": "<why>"}`
/// in its place, and the setter returns the error; the span is marked
/// ([`Repaired::UNSERIALIZABLE`]) and counted in `payloads_unserializable`.
///
/// ```
/// use vigil_core::{IdGenerator, Span, SpanKind, SpanStatus, Timestamp};
///
/// let mut ids = IdGenerator::from_seed(1);
/// let start = Timestamp::from_unix_nanos(1_000);
/// let mut span: Span<heapless::String<256>> =
///     Span::new(ids.trace_id(), ids.span_id(), None, "search", SpanKind::Tool, start);
/// span.set_input(&[("query", "rust")]).unwrap();
/// span.set_output(&42).unwrap(); // not an object: stored as {"value":42}
/// span.end(Timestamp::from_unix_nanos(5_000), SpanStatus::Ok);
/// assert_eq!(span.output(), Some("{\"value\":42}"));
/// ```
#[derive(Clone, Debug)]
pub struct Span<B> {
    trace_id: TraceId,
    span_id: SpanId,
    /// All zeros for a root span (no valid id is): an `Option` would pad
    /// the record by 8 bytes, and every span copies it.
    parent_id: SpanId,
    name: Name<B>,
    kind: SpanKind,
    status: SpanStatus,
    root: bool,
    /// [`Truncated`] in the low six bits, [`Repaired`] in the top two: one
    /// byte, so that `vigil-std`'s record stays 120 bytes and its queue slot
    /// two cache lines. A byte more pads the slot to 136 bytes, which puts
    /// the span a thread writes and the one the exporter takes on one line:
    /// `hot_path` on two threads then took a median 900 ns a span, not 130.
    marks: u8,
    field_limit: u32,
    start: Timestamp,
    /// [`NOT_ENDED`] until the span ends.
    end: Timestamp,
    input: B,
    output: B,
    /// Object members without the braces: `"k":v,"k2":v2`.
    metadata: B,
    /// Array elements without the brackets: `{...},{...}`.
    events: B,
}

impl<B: Buffer> Span<B> {
    /// A span started at `start`; `parent_id` is `None` for a root span (the
    /// all-zero id, which no generator makes, counts as none).
    #[inline]
    pub fn new(
        trace_id: TraceId,
        span_id: SpanId,
        parent_id: Option<SpanId>,
        name: impl Into<Name<B>>,
        kind: SpanKind,
        start: Timestamp,
    ) -> Self {
        Span {
            trace_id,
            span_id,
            parent_id: parent_id.unwrap_or(NO_PARENT),
            name: name.into(),
            kind,
            status: SpanStatus::Unset,
            root: false,
            marks: 0,
            field_limit: DEFAULT_FIELD_LIMIT as u32,
            start,
            end: NOT_ENDED,
            input: B::default(),
            output: B::default(),
            metadata: B::default(),
            events: B::default(),
        }
    }

    /// Sets the cap, in bytes, on each payload field set from now on.
    pub fn set_field_limit(&mut self, bytes: usize) {
        self.field_limit = u32::try_from(bytes).unwrap_or(u32::MAX);
    }

    /// The trace this span belongs to.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    /// This span's id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }
    /// The enclosing span, `None` for a trace's root span.
    pub fn parent_id(&self) -> Option<SpanId> {
        (self.parent_id != NO_PARENT).then_some(self.parent_id)
    }
    /// The name as given (the encoder cuts it to [`MAX_NAME_CHARS`] and
    /// writes U+0000 as U+FFFD).
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
    /// The kind.
    pub fn kind(&self) -> SpanKind {
        self.kind
    }
    /// The status.
    pub fn status(&self) -> SpanStatus {
        self.status
    }
    /// When it started.
    pub fn start(&self) -> Timestamp {
        self.start
    }
    /// When it ended, if it has.
    pub fn end_time(&self) -> Option<Timestamp> {
        (self.end != NOT_ENDED).then_some(self.end)
    }
    /// Whether this span stands for its whole trace.
    pub fn is_root(&self) -> bool {
        self.root
    }
    /// The parts cut to fit their limits so far.
    pub fn truncated(&self) -> Truncated {
        Truncated(self.marks & TRUNCATED_BITS)
    }
    /// What was changed in the payloads so far so that the server stores them.
    pub fn repaired(&self) -> Repaired {
        Repaired(self.marks >> REPAIRED_SHIFT)
    }
    /// The input as a JSON object, if set.
    pub fn input(&self) -> Option<&str> {
        non_empty(&self.input)
    }
    /// The output as a JSON object, if set.
    pub fn output(&self) -> Option<&str> {
        non_empty(&self.output)
    }
    /// The metadata members, without braces (`"k":1,"j":2`).
    pub fn metadata_members(&self) -> &str {
        self.metadata.as_str()
    }
    /// The events, encoded, without brackets.
    pub fn event_elements(&self) -> &str {
        self.events.as_str()
    }

    /// Renames the span.
    pub fn set_name(&mut self, name: impl Into<Name<B>>) {
        self.name = name.into();
    }
    /// Changes the kind.
    pub fn set_kind(&mut self, kind: SpanKind) {
        self.kind = kind;
    }
    /// Sets the status.
    pub fn set_status(&mut self, status: SpanStatus) {
        self.status = status;
    }
    /// Marks the span as its trace's root (the span that stands for the trace).
    pub fn set_root(&mut self, root: bool) {
        self.root = root;
    }

    /// Ends the span at `at` with `status`.
    pub fn end(&mut self, at: Timestamp, status: SpanStatus) {
        // The far future itself stands for "not ended": one nanosecond short.
        let last = Timestamp::from_unix_nanos(u64::MAX - 1);
        self.end = at.max(self.start).min(last);
        self.status = status;
    }

    /// Records `value` as the input; a non-object value is stored as `{"value": ...}`.
    ///
    /// A value larger than the field limit is replaced by [`TRUNCATED_MARKER`],
    /// the span is marked, and `Err(JsonError::Full)` returned. Arrays and
    /// objects nested deeper than [`MAX_DEPTH`](crate::json::MAX_DEPTH) (64) levels are replaced by the
    /// string [`DEPTH_MARKER`](crate::json::DEPTH_MARKER) (`"vigil.truncated: nested deeper than 64"`),
    /// without being looked into, and the span is marked. A value that
    /// cannot be written (see [`UNSERIALIZABLE_KEY`]) is replaced by
    /// `{"vigil.unserializable": "<why>"}`, the span is marked, and the error
    /// returned.
    pub fn set_input<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        let limit = self.field_limit();
        let result = write_object(&mut self.input, limit, value);
        self.note(Truncated::INPUT, result)
    }

    /// Records `value` as the output; same rules as [`Span::set_input`].
    pub fn set_output<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        let limit = self.field_limit();
        let result = write_object(&mut self.output, limit, value);
        self.note(Truncated::OUTPUT, result)
    }

    /// Sets the input to an already-encoded JSON object (not checked).
    pub fn set_input_json(&mut self, object: &str) -> Result<(), JsonError> {
        let limit = self.field_limit();
        let result = copy_raw(&mut self.input, limit, object);
        self.note(Truncated::INPUT, result)
    }

    /// Sets the output to an already-encoded JSON object (not checked).
    pub fn set_output_json(&mut self, object: &str) -> Result<(), JsonError> {
        let limit = self.field_limit();
        let result = copy_raw(&mut self.output, limit, object);
        self.note(Truncated::OUTPUT, result)
    }

    /// Adds `key: value` to the metadata. A later value for the same key wins
    /// when the server parses it. An entry that would exceed the field limit
    /// is left out and the span is marked. A value that cannot be written is
    /// recorded as `key: {"vigil.unserializable": "<why>"}`, the span is
    /// marked, and the error returned.
    pub fn set_metadata<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<(), JsonError> {
        let limit = self.field_limit();
        let result = append(&mut self.metadata, limit, |out, first| {
            metadata_entry(out, first, key, value)
        });
        if let Some(e) = unserializable(&result) {
            let marked = append(&mut self.metadata, limit, |out, first| {
                metadata_entry(out, first, key, &Unserializable(e))
            });
            // A marker that does not fit is left out too, and marked as such.
            let _ = self.note(Truncated::METADATA, marked);
        }
        self.note(Truncated::METADATA, result)
    }

    /// Adds an event named `name` at `at` with `attributes`, which are stored
    /// as an object (`()` or `None` as `{}`, another non-object as
    /// `{"value": ...}`). An event that would exceed the field limit is left
    /// out and the span is marked. Attributes that cannot be written are
    /// recorded as `{"vigil.unserializable": "<why>"}` (the event keeps its
    /// name and time), the span is marked, and the error returned.
    pub fn add_event<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        at: Timestamp,
        attributes: &T,
    ) -> Result<(), JsonError> {
        let limit = self.field_limit();
        let result = append(&mut self.events, limit, |out, first| {
            event_entry(out, first, name, at, attributes)
        });
        if let Some(e) = unserializable(&result) {
            let marked = append(&mut self.events, limit, |out, first| {
                event_entry(out, first, name, at, &Unserializable(e))
            });
            let _ = self.note(Truncated::EVENTS, marked);
        }
        self.note(Truncated::EVENTS, result)
    }

    /// The cap, in bytes, on each payload field.
    pub fn field_limit(&self) -> usize {
        self.field_limit as usize
    }

    /// Marks the span for what writing its `part` changed or cut: `result`
    /// is what [`write_object`] returned for text then set with
    /// [`Span::set_input_json`] or [`Span::set_output_json`]. Returns the
    /// result without the changes.
    pub fn note(
        &mut self,
        part: Truncated,
        result: Result<Changes, JsonError>,
    ) -> Result<(), JsonError> {
        match result {
            Ok(changes) => {
                if changes.contains(Changes::NUL_REPLACED) {
                    self.marks |= Repaired::NUL.0 << REPAIRED_SHIFT;
                }
                if changes.contains(Changes::DEPTH_CUT) {
                    self.marks |= part.0;
                }
                Ok(())
            }
            Err(e) => {
                if e == JsonError::Full {
                    self.marks |= part.0;
                } else {
                    self.marks |= Repaired::UNSERIALIZABLE.0 << REPAIRED_SHIFT;
                }
                Err(e)
            }
        }
    }
}

fn non_empty<B: Buffer>(b: &B) -> Option<&str> {
    (!b.is_empty()).then(|| b.as_str())
}

/// Writes one metadata member, `"key":value`, after a comma unless `first`.
fn metadata_entry<B: Buffer, T: Serialize + ?Sized>(
    out: &mut Limited<'_, B>,
    first: bool,
    key: &str,
    value: &T,
) -> Result<(), JsonError> {
    if !first {
        out.put(",")?;
    }
    json::write_str(out, key)?;
    out.put(":")?;
    json::write_value(out, value)
}

/// Writes one event object, after a comma unless `first`.
fn event_entry<B: Buffer, T: Serialize + ?Sized>(
    out: &mut Limited<'_, B>,
    first: bool,
    name: &str,
    at: Timestamp,
    attributes: &T,
) -> Result<(), JsonError> {
    if !first {
        out.put(",")?;
    }
    out.put("{\"name\":")?;
    json::write_str(out, char_prefix(name, MAX_NAME_CHARS).0)?;
    out.put(",\"timestamp\":\"")?;
    out.put(at.to_rfc3339(&mut [0; RFC3339_LEN]))?;
    out.put("\",\"attributes\":")?;
    write_object_into(out, attributes)?;
    out.put("}")?;
    Ok(())
}

/// Stands in for a value that could not be written:
/// `{"vigil.unserializable": "<why>"}`.
struct Unserializable(JsonError);

impl Serialize for Unserializable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(UNSERIALIZABLE_KEY, &format_args!("{}", self.0))?;
        map.end()
    }
}

/// The error of `result` if it is one of a value that could not be written
/// (not of a size limit reached).
fn unserializable<T>(result: &Result<T, JsonError>) -> Option<JsonError> {
    match result {
        Err(e) if *e != JsonError::Full => Some(*e),
        _ => None,
    }
}

/// Appends to `buf` through `write`, undoing a partial write on error.
fn append<B: Buffer>(
    buf: &mut B,
    limit: usize,
    write: impl FnOnce(&mut Limited<'_, B>, bool) -> Result<(), JsonError>,
) -> Result<Changes, JsonError> {
    let before = buf.len();
    if before == 0 {
        // Metadata and events grow entry by entry: start with room for a few.
        buf.reserve(96);
    }
    let mut out = Limited::new(buf, limit);
    let result = write(&mut out, before == 0);
    let changes = out.changes;
    if result.is_err() {
        buf.truncate(before);
    }
    result.map(|()| changes)
}

fn copy_raw<B: Buffer>(buf: &mut B, limit: usize, object: &str) -> Result<Changes, JsonError> {
    buf.clear();
    let result = Limited::new(buf, limit)
        .put(object)
        .map_err(JsonError::from);
    if result.is_err() {
        mark_truncated(buf);
    }
    result.map(|()| Changes::default())
}

/// Replaces `buf` with the JSON object form of `value` (objects as they are,
/// `null` as `{}`, anything else as `{"value": ...}`), at most `limit` bytes.
///
/// Returns what was changed on the way (a U+0000 replaced, what was nested
/// too deep cut). On `Err(JsonError::Full)` the buffer holds
/// [`TRUNCATED_MARKER`]; on any other error, `{"vigil.unserializable":
/// "<why>"}` (either marker only if `limit` holds it, else nothing). [`Span::set_input`] uses this; callers can use it
/// to encode once into a scratch buffer, then [`Span::set_input_json`] and
/// [`Span::note`] with the result.
pub fn write_object<B: Buffer, T: Serialize + ?Sized>(
    buf: &mut B,
    limit: usize,
    value: &T,
) -> Result<Changes, JsonError> {
    buf.clear();
    let mut out = Limited::new(buf, limit);
    let result = write_object_into(&mut out, value);
    let changes = out.changes;
    match result {
        Ok(()) => Ok(changes),
        Err(JsonError::Full) => {
            mark_truncated(buf);
            Err(JsonError::Full)
        }
        Err(e) => {
            buf.clear();
            let marked = write_object_into(&mut Limited::new(buf, limit), &Unserializable(e));
            if marked.is_err() {
                buf.clear();
            }
            Err(e)
        }
    }
}

/// Replaces `buf` with the JSON text of `value` as it is (not made an
/// object), at most `limit` bytes, for a value to be parsed back (into a
/// `serde_json::Value`, say) and set on a span later. Arrays and objects
/// nested deeper than [`MAX_DEPTH`](crate::json::MAX_DEPTH) are cut as always, so the text parses
/// with any parser's nesting limit of 128; U+0000 is kept (escaped), to be
/// replaced, and counted, when the value is set.
///
/// Returns what was changed ([`Changes::DEPTH_CUT`]); on error the buffer is
/// empty.
pub fn write_json<B: Buffer, T: Serialize + ?Sized>(
    buf: &mut B,
    limit: usize,
    value: &T,
) -> Result<Changes, JsonError> {
    buf.clear();
    let mut out = Limited::new(buf, limit);
    out.keep_nul = true;
    let result = json::write_value(&mut out, value);
    let changes = out.changes;
    if result.is_err() {
        buf.clear();
    }
    result.map(|()| changes)
}

fn mark_truncated<B: Buffer>(buf: &mut B) {
    buf.clear();
    // A buffer too small for the marker stays empty (the field reads as null).
    let _ = buf.push_str(TRUNCATED_MARKER);
}

/// Writes `value` as a JSON object: objects as they are, `null` as `{}`,
/// anything else as `{"value": ...}`.
fn write_object_into<B: Buffer, T: Serialize + ?Sized>(
    out: &mut Limited<'_, B>,
    value: &T,
) -> Result<(), JsonError> {
    const WRAP: &str = "{\"value\":";
    let start = out.buf.len();
    json::write_value(out, value)?;
    let written = &out.buf.as_str()[start..];
    if written.starts_with('{') {
        return Ok(());
    }
    if written == "null" {
        out.buf.truncate(start);
        return Ok(out.put("{}")?);
    }
    if out.buf.len() + WRAP.len() + 1 > out.limit {
        return Err(JsonError::Full);
    }
    if start == 0 {
        out.buf.prepend(WRAP)?;
    } else {
        // Inside an event: move the value after the prefix.
        let mut tail = B::default();
        tail.push_str(&out.buf.as_str()[start..])?;
        out.buf.truncate(start);
        out.buf.push_str(WRAP)?;
        out.buf.push_str(tail.as_str())?;
    }
    Ok(out.buf.push_str("}")?)
}

/// A trace: the root span that stands for it, named after the trace.
///
/// On the server a trace appears through its spans, so the SDK sends a root
/// span of its own (kind `chain` unless set) whose times and status are the
/// trace's; its metadata is the trace's metadata.
#[derive(Clone, Debug)]
pub struct Trace<B> {
    root: Span<B>,
}

impl<B: Buffer> Trace<B> {
    /// A trace started at `start`, with `root_span` as the id of its root span.
    pub fn new(
        trace_id: TraceId,
        root_span: SpanId,
        name: impl Into<Name<B>>,
        start: Timestamp,
    ) -> Self {
        let mut root = Span::new(trace_id, root_span, None, name, SpanKind::Chain, start);
        root.set_root(true);
        Trace { root }
    }

    /// The trace's id.
    pub fn id(&self) -> TraceId {
        self.root.trace_id()
    }

    /// The trace's name.
    pub fn name(&self) -> &str {
        self.root.name()
    }

    /// The root span, to set input, output, metadata, kind or events.
    pub fn root(&mut self) -> &mut Span<B> {
        &mut self.root
    }

    /// A new span directly under the root.
    pub fn child(
        &self,
        span_id: SpanId,
        name: impl Into<Name<B>>,
        kind: SpanKind,
        start: Timestamp,
    ) -> Span<B> {
        let mut span = Span::new(
            self.id(),
            span_id,
            Some(self.root.span_id()),
            name,
            kind,
            start,
        );
        span.set_field_limit(self.root.field_limit());
        span
    }

    /// Ends the trace, giving back its root span to ship.
    pub fn end(mut self, at: Timestamp, status: SpanStatus) -> Span<B> {
        self.root.end(at, status);
        self.root
    }
}
