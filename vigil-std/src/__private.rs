//! Support for the `#[trace]`/`#[span]` expansions; not a public API.

use std::borrow::Cow;
use std::future::Future;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::span::{to_json, InstrumentExt, Instrumented, SpanHandle, SpanName};
use crate::SpanKind;

/// What a span's name can be made of (`name = ..` in the macros). Implemented
/// for each type rather than for every `Into<SpanName>`, so that the compiler
/// reports a wrong type with this message.
#[diagnostic::on_unimplemented(
    message = "a span's name is a `&'static str`, a `String` or a `Cow<'static, str>`, not `{Self}`",
    label = "not a span name"
)]
pub trait IntoSpanName {
    /// The name.
    fn into_span_name(self) -> SpanName;
}

impl IntoSpanName for &'static str {
    #[inline(always)]
    fn into_span_name(self) -> SpanName {
        SpanName::Static(self)
    }
}

impl IntoSpanName for String {
    #[inline(always)]
    fn into_span_name(self) -> SpanName {
        self.into()
    }
}

impl IntoSpanName for Cow<'static, str> {
    #[inline(always)]
    fn into_span_name(self) -> SpanName {
        self.into()
    }
}

impl IntoSpanName for SpanName {
    #[inline(always)]
    fn into_span_name(self) -> SpanName {
        self
    }
}

/// The span's name, from a `name = ..` option.
#[inline(always)]
pub fn span_name(name: impl IntoSpanName) -> SpanName {
    name.into_span_name()
}

/// Adds each entry of `metadata` (an object) to the span's metadata.
pub fn set_metadata_object<T: Serialize + ?Sized>(span: &SpanHandle, metadata: &T) {
    match to_json(metadata) {
        Ok((Value::Object(map), _)) => map.iter().for_each(|(k, v)| span.set_metadata(k, v)),
        Ok((Value::Null, _)) | Err(_) => {}
        Ok((other, _)) => span.set_metadata("metadata", &other),
    }
}

/// An argument, recorded if its type is `Serialize`, skipped otherwise.
pub struct Arg<'a, T: ?Sized>(pub &'a T);

/// Picked for `Serialize` arguments (autoref specialisation).
pub trait RecordArg {
    /// The argument as JSON.
    fn vigil_value(&self) -> Option<Value>;
}

impl<T: Serialize + ?Sized> RecordArg for Arg<'_, T> {
    fn vigil_value(&self) -> Option<Value> {
        to_json(self.0).ok().map(|(value, _)| value)
    }
}

/// Picked for every other argument.
pub trait SkipArg {
    /// Nothing.
    fn vigil_value(&self) -> Option<Value>;
}

impl<T: ?Sized> SkipArg for &Arg<'_, T> {
    fn vigil_value(&self) -> Option<Value> {
        None
    }
}

/// The recorded arguments as one object.
pub fn object<const N: usize>(fields: [(&str, Option<Value>); N]) -> Value {
    let map: Map<String, Value> = fields
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v?)))
        .collect();
    Value::Object(map)
}

/// Runs a sync instrumented body (an `FnOnce`, unlike a closure called in
/// place, which may be inferred `FnMut` and then cannot hand out borrows).
#[inline(always)]
pub fn call_once<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// Pins down a future's output type, so `?` inside an `async` body infers.
pub fn typed_future<T, F: Future<Output = T>>(future: F) -> F {
    future
}

/// The future as a span of `kind`, child of the current span.
pub fn in_span<F: Future>(future: F, name: impl Into<SpanName>, kind: SpanKind) -> Instrumented<F> {
    future.in_span(name, kind)
}

/// The future as a new trace whose root span has `kind`.
pub fn in_trace<F: Future>(
    future: F,
    name: impl Into<SpanName>,
    kind: SpanKind,
) -> Instrumented<F> {
    crate::span::instrument(future, name.into(), kind, crate::context::Start::Trace)
}
