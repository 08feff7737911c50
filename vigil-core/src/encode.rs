//! The Vigil wire format: ingest bodies (one trace per request) and trace PATCH bodies.
//!
//! Everything the server would reject is fixed here, before sending: names
//! cut to 256 characters on a character boundary, kinds and statuses only
//! from their enums, input/output always objects or `null` (see [`Span`]),
//! and a span too large for a request is sent without its payloads rather than
//! cut in the middle.

use core::fmt;

use crate::buffer::{char_prefix, Buffer, Full};
use crate::json::{write_str, Output, SliceOutput};
use crate::model::SpanStatus;
use crate::span::{Span, Truncated, MAX_NAME_CHARS};
use crate::time::RFC3339_LEN;

/// The parts of an ingest request that are not spans.
#[derive(Clone, Copy, Debug, Default)]
pub struct Envelope<'a> {
    /// Sent as `project_id` when not empty.
    pub project_id: &'a str,
    /// The trace's root span, when it is among the spans: its name becomes
    /// `trace_name` and its metadata `trace_metadata`.
    pub trace_name: Option<&'a str>,
    /// Metadata members (without braces) for `trace_metadata`, sent with
    /// the trace's name, or alone when there is no name and they are not
    /// empty (a request of several traces: the members every trace gets).
    pub trace_metadata: &'a str,
}

/// What [`encode_ingest`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// Bytes of the body, from the start of the buffer.
    pub len: usize,
    /// How many spans from the front of the slice the body holds.
    pub spans: usize,
}

/// Why nothing could be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// No spans were given.
    NoSpans,
    /// The buffer cannot hold even the first span stripped of its payloads.
    BufferTooSmall,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::NoSpans => "an ingest request needs at least one span",
            EncodeError::BufferTooSmall => {
                "the request buffer cannot hold the span even without its payloads"
            }
        })
    }
}

impl core::error::Error for EncodeError {}

/// Counts bytes instead of writing them.
struct Count(usize);

impl Output for Count {
    fn put(&mut self, s: &str) -> Result<(), Full> {
        self.0 += s.len();
        Ok(())
    }
}

/// Writes an ingest body with as many of `spans` (all of one trace) as fit in
/// `buf`, never cutting a span. The first span always goes in: if it alone is
/// too large, it is sent without input, output, events and metadata, marked
/// `"vigil.truncated": ["oversize"]`.
pub fn encode_ingest<B: Buffer>(
    spans: &[Span<B>],
    envelope: &Envelope<'_>,
    buf: &mut [u8],
) -> Result<Encoded, EncodeError> {
    if spans.is_empty() {
        return Err(EncodeError::NoSpans);
    }
    let mut tail = Count(0);
    let _ = write_tail(&mut tail, envelope);
    let room = buf
        .len()
        .checked_sub(tail.0)
        .ok_or(EncodeError::BufferTooSmall)?;
    let (front, _) = buf.split_at_mut(room);
    let mut out = SliceOutput { buf: front, len: 0 };
    out.put("{\"spans\":[")
        .map_err(|_| EncodeError::BufferTooSmall)?;
    let mut count = 0;
    for span in spans {
        let mark = out.len;
        let sep = if count == 0 { "" } else { "," };
        let fits = out
            .put(sep)
            .and_then(|()| write_span(&mut out, span, false));
        if fits.is_err() {
            out.len = mark;
            if count > 0 {
                break;
            }
            write_span(&mut out, span, true).map_err(|_| EncodeError::BufferTooSmall)?;
        }
        count += 1;
    }
    let written = out.len;
    let mut out = SliceOutput { buf, len: written };
    write_tail(&mut out, envelope).map_err(|_| EncodeError::BufferTooSmall)?;
    Ok(Encoded {
        len: out.len,
        spans: count,
    })
}

fn write_tail<O: Output>(out: &mut O, envelope: &Envelope<'_>) -> Result<(), Full> {
    out.put("]")?;
    if !envelope.project_id.is_empty() {
        out.put(",\"project_id\":")?;
        write_str(out, envelope.project_id)?;
    }
    if let Some(name) = envelope.trace_name {
        out.put(",\"trace_name\":")?;
        write_str(out, char_prefix(name, MAX_NAME_CHARS).0)?;
        out.put(",\"trace_metadata\":{")?;
        out.put(envelope.trace_metadata)?;
        out.put("}")?;
    } else if !envelope.trace_metadata.is_empty() {
        out.put(",\"trace_metadata\":{")?;
        out.put(envelope.trace_metadata)?;
        out.put("}")?;
    }
    out.put("}")
}

fn write_span<O: Output, B: Buffer>(out: &mut O, span: &Span<B>, bare: bool) -> Result<(), Full> {
    let mut id = [0; 32];
    let (name, name_cut) = char_prefix(span.name(), MAX_NAME_CHARS);
    let mut truncated = span.truncated();
    if name_cut {
        truncated = truncated.union(Truncated::NAME);
    }
    if bare {
        truncated = truncated.union(Truncated::OVERSIZE);
    }
    out.put("{\"span_id\":\"")?;
    out.put(span.span_id().to_hex(&mut id))?;
    out.put("\",\"trace_id\":\"")?;
    out.put(span.trace_id().to_hex(&mut id))?;
    out.put("\",\"parent_span_id\":")?;
    match span.parent_id() {
        Some(parent) => {
            out.put("\"")?;
            out.put(parent.to_hex(&mut id))?;
            out.put("\"")?;
        }
        None => out.put("null")?,
    }
    out.put(",\"name\":")?;
    write_str(out, name)?;
    out.put(",\"kind\":\"")?;
    out.put(span.kind().as_str())?;
    out.put("\",\"status\":\"")?;
    out.put(span.status().as_str())?;
    out.put("\",\"input\":")?;
    out.put(span.input().filter(|_| !bare).unwrap_or("null"))?;
    out.put(",\"output\":")?;
    out.put(span.output().filter(|_| !bare).unwrap_or("null"))?;
    out.put(",\"metadata\":{")?;
    let members = if bare { "" } else { span.metadata_members() };
    out.put(members)?;
    if !truncated.is_empty() {
        out.put(if members.is_empty() { "" } else { "," })?;
        write_truncated(out, truncated)?;
    }
    out.put("},\"events\":[")?;
    out.put(if bare { "" } else { span.event_elements() })?;
    out.put("],\"start_time\":\"")?;
    let mut time = [0; RFC3339_LEN];
    out.put(span.start().to_rfc3339(&mut time))?;
    out.put("\",\"end_time\":")?;
    match span.end_time() {
        Some(end) => {
            out.put("\"")?;
            out.put(end.to_rfc3339(&mut time))?;
            out.put("\"}")
        }
        None => out.put("null}"),
    }
}

fn write_truncated<O: Output>(out: &mut O, truncated: Truncated) -> Result<(), Full> {
    out.put("\"vigil.truncated\":[")?;
    for (i, name) in truncated.names().enumerate() {
        out.put(if i == 0 { "\"" } else { ",\"" })?;
        out.put(name)?;
        out.put("\"")?;
    }
    out.put("]")
}

/// Writes the `PATCH /v1/traces/{id}` body: the trace's final status and its
/// metadata members (merged by the server into what it has). Returns the length.
pub fn encode_patch(
    status: SpanStatus,
    metadata_members: &str,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let mut out = SliceOutput { buf, len: 0 };
    let write = |out: &mut SliceOutput<'_>| -> Result<(), Full> {
        out.put("{\"status\":\"")?;
        out.put(status.as_str())?;
        out.put("\",\"metadata\":{")?;
        out.put(metadata_members)?;
        out.put("}}")
    };
    write(&mut out).map_err(|_| EncodeError::BufferTooSmall)?;
    Ok(out.len)
}
