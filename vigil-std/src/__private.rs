//! Support for the `#[trace]`/`#[span]` expansions; not a public API.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::context::Start;
use crate::payload::to_json;
use crate::span::{InstrumentExt, Instrumented, SpanHandle, SpanName};
use crate::{Context, SpanKind};

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

/// The default name of a method's span, `Type::method`, made once for each
/// type (`Self`) it is called on and then kept, so that calls allocate and
/// format nothing.
#[derive(Debug)]
pub struct MethodName {
    method: &'static str,
    /// The first type's name (from `type_name`) and the span name made for it.
    first: OnceLock<(&'static str, &'static str)>,
}

impl MethodName {
    /// The name of `method`'s spans.
    pub const fn new(method: &'static str) -> Self {
        MethodName {
            method,
            first: OnceLock::new(),
        }
    }

    /// The span name for `Self`, of which `type_name` is `type_name::<Self>()`.
    #[inline]
    pub fn get(&self, type_name: &'static str) -> &'static str {
        match self.first.get() {
            Some(&(ty, name)) if same(ty, type_name) => name,
            _ => self.make(type_name),
        }
    }

    /// The first call, or a call on another type than the first (a trait's
    /// default method, a blanket impl): the names made for those are kept
    /// in one map for the process.
    #[cold]
    #[inline(never)]
    fn make(&self, type_name: &'static str) -> &'static str {
        let make = || -> &'static str {
            let name = format!("{}::{}", short_type_name(type_name), self.method);
            Box::leak(name.into_boxed_str())
        };
        let &(ty, name) = self.first.get_or_init(|| (type_name, make()));
        if same(ty, type_name) {
            return name;
        }
        static OTHERS: Mutex<BTreeMap<(&'static str, &'static str), &'static str>> =
            Mutex::new(BTreeMap::new());
        let mut others = OTHERS.lock().unwrap_or_else(PoisonError::into_inner);
        others.entry((type_name, self.method)).or_insert_with(make)
    }
}

/// Whether two names from `type_name` are the same (usually the same string).
#[inline(always)]
fn same(a: &'static str, b: &'static str) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// A type's name without module paths or generic arguments:
/// `Agent` for `my_app::agents::Agent<alloc::string::String>`,
/// `&Agent` for `&my_app::Agent`, `(A, B)` for `(my_app::A, my_app::B)`.
fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut depth = 0usize;
    // The start in `out` of the path segment being written.
    let mut segment = 0;
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            ':' if chars.peek() == Some(&':') => {
                chars.next();
                out.truncate(segment);
            }
            c => {
                if !(c.is_alphanumeric() || c == '_') {
                    segment = out.len() + c.len_utf8();
                }
                out.push(c);
            }
        }
    }
    out
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
#[derive(Debug)]
pub struct Arg<'a, T: ?Sized>(pub &'a T);

/// What [`RecordArg::vigil_check`] finds: the argument's type is `Serialize`.
#[derive(Debug)]
pub struct Serializable;

/// What [`SkipArg::vigil_check`] finds: the argument's type, `T`, is not
/// `Serialize`. The macros make that an error for an argument recorded as
/// input.
#[derive(Debug)]
pub struct NotSerializable<T: ?Sized>(PhantomData<T>);

/// What `vigil_check` found, and of which argument type.
pub trait Checked {
    /// The argument's type if it is not `Serialize`, else `()`.
    type Arg: ?Sized;
}

impl Checked for Serializable {
    type Arg = ();
}

impl<T: ?Sized> Checked for NotSerializable<T> {
    type Arg = T;
}

/// Picked for `Serialize` arguments (autoref specialisation).
pub trait RecordArg {
    /// The argument as JSON.
    fn vigil_value(&self) -> Option<Value>;
    /// [`Serializable`].
    fn vigil_check(&self) -> Serializable {
        Serializable
    }
}

impl<T: Serialize + ?Sized> RecordArg for Arg<'_, T> {
    fn vigil_value(&self) -> Option<Value> {
        to_json(self.0).ok().map(|(value, _)| value)
    }
}

/// Picked for every other argument.
pub trait SkipArg {
    /// The argument's type.
    type Arg: ?Sized;
    /// Nothing.
    fn vigil_value(&self) -> Option<Value>;
    /// [`NotSerializable`].
    fn vigil_check(&self) -> NotSerializable<Self::Arg> {
        NotSerializable(PhantomData)
    }
}

impl<T: ?Sized> SkipArg for &Arg<'_, T> {
    type Arg = T;
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

/// Names lifetimes that the future of an instrumented `async fn` captures
/// (`impl Future + Captures<(&'a (), ..)>`), as the `async fn` would.
pub trait Captures<T: ?Sized> {}

impl<T: ?Sized, U: ?Sized> Captures<T> for U {}

/// Where the span of a future made now (by an instrumented `async fn`) is to
/// start: the current span, and client.
#[inline]
pub fn context_for_span() -> Context {
    Context::for_future(Start::Child)
}

/// Where the trace of a future made now is to start: the current client.
#[inline]
pub fn context_for_trace() -> Context {
    Context::for_future(Start::Trace)
}

/// The future as a span of `kind`, child of the span of `context` (taken
/// where the future was made), started now, at its first poll.
#[inline(always)]
pub fn in_span_from<F: Future>(
    context: Context,
    future: F,
    name: impl Into<SpanName>,
    kind: SpanKind,
) -> Instrumented<F> {
    let _attached = context.attach_for(Start::Child);
    future.in_span(name, kind)
}

/// The future as a new trace whose root span has `kind`, recorded by the
/// client of `context` (taken where the future was made).
#[inline(always)]
pub fn in_trace_from<F: Future>(
    context: Context,
    future: F,
    name: impl Into<SpanName>,
    kind: SpanKind,
) -> Instrumented<F> {
    let _attached = context.attach_for(Start::Trace);
    crate::span::instrument(future, name.into(), kind, Start::Trace)
}
