//! `#[trace]` and `#[span]`: the Vigil SDK's decorators as attribute macros.
//!
//! Use them through `vigil` or `vigil-std` (`#[vigil::span(kind = "llm")]`).
//! The expansion refers to whichever of the two the calling crate's
//! Cargo.toml names, by the name it gives it there, renamed or not
//! (`vigil-std` if both), or to the `crate = "..."` option. The options are
//! described on [`macro@span`].
//!
//! # Features
//!
//! This crate has no cargo features.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use proc_macro_crate::FoundCrate;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{parse_macro_input, Expr, FnArg, Ident, ItemFn, LitStr, Pat, ReturnType, Token, Type};

const KINDS: [&str; 6] = ["llm", "tool", "chain", "retriever", "agent", "custom"];

/// Records every call of the function as a new trace: its root span, even
/// when a span is current.
///
/// The options are those of [`macro@span`]; `kind` defaults to `chain`, and
/// `metadata` becomes the trace's metadata. Three more group traces, each
/// an expression evaluated at each call, often an argument:
/// `session_id = ..` and `user_id = ..` (anything `AsRef<str>`) and
/// `tags = ..` (a slice or array of strings), stored in the trace's
/// metadata under `vigil::keys`. An `async fn`'s trace goes to the
/// client current where the function is called (a scoped one, as in
/// `vigil::sink::capture`, follows the future to the thread that polls it).
///
/// ```
/// use serde_json::json;
/// use vigil::sink::capture;
///
/// #[vigil::trace("answer", metadata = json!({"version": "1.0"}), input)]
/// fn answer(question: &str) -> usize {
///     retrieve(question).len()
/// }
///
/// #[vigil::span(kind = "retriever")]
/// fn retrieve(query: &str) -> Vec<String> {
///     vec![format!("{query}: rust-lang.org")]
/// }
///
/// let captured = capture(|| answer("What is Rust?"));
/// let trace = captured.trace("answer").unwrap();
/// assert_eq!(trace.metadata["version"], "1.0");
/// let root = captured.span("answer").unwrap();
/// assert_eq!((root.kind.as_str(), root.parent_span_id.clone()), ("chain", None));
/// assert_eq!(root.input["question"], "What is Rust?");
/// let retrieve = captured.spans().find(|s| s.name.ends_with("::retrieve")).unwrap();
/// assert_eq!(retrieve.parent_span_id, Some(root.span_id.clone()));
/// ```
///
/// Sessions, users and tags:
///
/// ```
/// #[vigil::trace("chat-turn", session_id = conversation, user_id = user, tags = ["beta"])]
/// fn chat_turn(conversation: &str, user: String, message: &str) -> usize {
///     message.len()
/// }
///
/// let captured = vigil::sink::capture(|| chat_turn("conv-7", "user-3".into(), "Hi"));
/// let trace = captured.trace("chat-turn").unwrap();
/// assert_eq!(trace.metadata[vigil::keys::SESSION_ID], "conv-7");
/// assert_eq!(trace.metadata[vigil::keys::USER_ID], "user-3");
/// assert_eq!(trace.metadata[vigil::keys::TAGS][0], "beta");
/// ```
#[proc_macro_attribute]
pub fn trace(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr, item, true)
}

/// Records every call of the function as a span, child of the current span
/// (or the root of a new trace when none is current).
///
/// ```
/// use vigil::sink::capture;
///
/// #[vigil::span(kind = "tool", input, output)]
/// fn search(query: &str, limit: usize) -> Vec<String> {
///     (0..limit).map(|i| format!("{query} #{i}")).collect()
/// }
///
/// let captured = capture(|| vigil::trace("pipeline", |_| search("rust", 2)));
/// let span = captured.spans().find(|s| s.name.ends_with("::search")).unwrap();
/// assert_eq!(span.kind, "tool");
/// assert_eq!(span.input, serde_json::json!({"query": "rust", "limit": 2}));
/// assert_eq!(span.output["value"][1], "rust #1");
/// ```
///
/// # Options
///
/// Options are separated by commas, in any order, except the name in
/// quotes, which comes first.
///
/// - `"answer"`: the span's name; short for `name = "answer"`.
/// - `name = ..`: the span's name, a string literal or any expression of
///   type `&'static str`, `String` or `Cow<'static, str>`, evaluated at
///   each call when the span starts (it may use the arguments). A static
///   name costs nothing per call.
/// - Without a name, a free function's span is named `module::function`
///   (`module_path!()` and the function's name), and a method's
///   `Type::method`: the type's name without its path or generic arguments
///   (`Agent::run` for `Agent<T>::run`), made once per type. A method is a
///   function with a `self` receiver or `Self` in its signature; an
///   associated function with neither cannot be told from a free one, and
///   is named like one.
/// - `kind = "llm"`: one of `llm`, `tool`, `chain`, `retriever`, `agent`,
///   `custom` (another string is a compile error), or `kind = SpanKind::Llm`,
///   a path to a `vigil::SpanKind` (`kind = vigil::SpanKind::Tool`, or with
///   `SpanKind` imported). Default: `custom`, and `chain` for
///   [`macro@trace`].
/// - `input`: records the arguments as the span's input, one object with
///   each argument by name; `self` is never recorded. Each recorded argument
///   must be `Serialize`: another is a compile error at the argument, which
///   suggests `skip`.
/// - `skip(a, b)`: leaves those arguments out of the input; `skip(self)` is
///   accepted. `skip_all` leaves them all out (with `input`, the input is
///   `{}`).
/// - `output`: records the return value as the span's output
///   (`{"value": ..}` when it is not an object); of a `Result`, the `Ok`
///   value. A type that is not `Serialize` is left out.
/// - `metadata = ..`: any `Serialize` object, evaluated at each call, whose
///   entries are added to the span's metadata.
/// - `crate = "path"`: where the SDK is, when the crate's Cargo.toml does
///   not say: renamed in the code (`extern crate vigil as my_vigil;`), or
///   reached through another crate (`crate = "my_platform::vigil"`). A
///   dependency renamed in Cargo.toml (`my_vigil = { package = "vigil", .. }`)
///   is found without it.
///
/// ```
/// use serde_json::json;
/// use vigil::{sink::capture, SpanKind};
///
/// struct SupportAgent {
///     model: &'static str,
/// }
///
/// impl SupportAgent {
///     // Named `SupportAgent::retrieve`; `self` is not recorded.
///     #[vigil::span(kind = SpanKind::Retriever, input, skip(self), output)]
///     fn retrieve(&self, query: &str) -> Vec<&'static str> {
///         vec!["rust-lang.org"]
///     }
///
///     #[vigil::span(name = format!("llm:{}", self.model), kind = vigil::SpanKind::Llm)]
///     fn complete(&self, prompt: &str) -> String {
///         format!("echo: {prompt}")
///     }
///
///     #[vigil::span("login", kind = "tool", input, skip_all)]
///     fn login(&self, user: &str, password: &str) -> bool {
///         !user.is_empty() && !password.is_empty()
///     }
///
///     #[vigil::span(kind = "agent", metadata = json!({"team": "support"}))]
///     fn answer(&self, question: &str) -> String {
///         self.login("ann", "hunter2");
///         let docs = self.retrieve(question);
///         self.complete(&format!("{question} {docs:?}"))
///     }
/// }
///
/// let agent = SupportAgent { model: "gpt-4o" };
/// let captured = capture(|| vigil::trace("support", |_| agent.answer("refund?")));
///
/// let retrieve = captured.span("SupportAgent::retrieve").unwrap();
/// assert_eq!(retrieve.kind, "retriever");
/// assert_eq!(retrieve.input, json!({"query": "refund?"}));
/// assert_eq!(retrieve.output, json!({"value": ["rust-lang.org"]}));
/// assert_eq!(captured.span("llm:gpt-4o").unwrap().kind, "llm");
/// assert_eq!(captured.span("login").unwrap().input, json!({}));
/// let answer = captured.span("SupportAgent::answer").unwrap();
/// assert_eq!(answer.metadata["team"], "support");
/// ```
///
/// With the SDK renamed in the code, `crate` names it:
///
/// ```
/// extern crate vigil as observability;
///
/// #[observability::span(crate = "observability", kind = "tool")]
/// fn lookup(id: u32) -> u32 {
///     id
/// }
///
/// let captured = observability::sink::capture(|| lookup(7));
/// assert_eq!(captured.spans().next().unwrap().kind, "tool");
/// ```
///
/// An argument recorded as input must be `Serialize`; one that is not
/// (here `conn`) is a compile error that suggests `skip(conn)`:
///
/// ```compile_fail,E0277
/// struct Connection;
///
/// #[vigil::span(input)]
/// fn query(sql: &str, conn: &Connection) -> usize {
///     sql.len()
/// }
/// ```
///
/// # Results and panics
///
/// A function returning `Result` ends its span with status `error` and the
/// error's message in its metadata (`error`) when it returns `Err` (the
/// error type must implement `Display`); a panic marks it `error` and
/// propagates.
///
/// # Async functions
///
/// `async fn` works on any executor. The span is a child of the span current
/// where the function is called, even when the future is spawned (on tokio,
/// say) or moved to another thread before it is first polled; it starts at
/// the first poll, and it is current during every poll, on whichever thread
/// polls it. The function becomes a `fn` returning `impl Future` (which is
/// what its documentation shows), with the same arguments, borrowing what
/// the `async fn` borrowed, and `Send` when it would be.
///
/// ```
/// use vigil::sink::capture;
///
/// #[vigil::span(kind = "llm", input, output)]
/// async fn call_llm(prompt: String) -> Result<String, std::io::Error> {
///     Ok(format!("echo: {prompt}"))
/// }
///
/// let captured = capture(|| {
///     vigil::trace("chat", |_| {
///         // Made here, polled on another thread: still a child of `chat`.
///         let future = call_llm("hi".to_owned());
///         std::thread::spawn(move || block_on(future)).join().unwrap()
///     })
/// });
/// let llm = captured.spans().find(|s| s.name.ends_with("::call_llm")).unwrap();
/// assert_eq!(llm.parent_span_id, Some(captured.span("chat").unwrap().span_id.clone()));
/// assert_eq!(llm.output["value"], "echo: hi");
///
/// # fn block_on<F: std::future::Future>(future: F) -> F::Output {
/// #     use std::task::{Context, Poll, Wake, Waker};
/// #     struct Noop;
/// #     impl Wake for Noop {
/// #         fn wake(self: std::sync::Arc<Self>) {}
/// #     }
/// #     let waker = Waker::from(std::sync::Arc::new(Noop));
/// #     let mut future = std::pin::pin!(future);
/// #     loop {
/// #         if let Poll::Ready(v) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
/// #             return v;
/// #         }
/// #     }
/// # }
/// ```
///
/// A plain `fn` that returns a future (`impl Future`, or a boxed one as
/// `#[async_trait]` writes) is timed while it builds the future, not while
/// the future runs: instrument the future itself with
/// `vigil::InstrumentExt::in_span` there.
#[proc_macro_attribute]
pub fn span(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr, item, false)
}

fn expand(attr: TokenStream, item: TokenStream, is_trace: bool) -> TokenStream {
    let options = parse_macro_input!(attr as Options);
    let function = match syn::parse::<syn::Item>(item) {
        Ok(syn::Item::Fn(function)) => function,
        Ok(other) => {
            let what = if is_trace { "#[trace]" } else { "#[span]" };
            return syn::Error::new(
                other.span(),
                format!("{what} applies to functions only (free functions and methods)"),
            )
            .to_compile_error()
            .into();
        }
        Err(error) => return error.to_compile_error().into(),
    };
    match instrument(options, function, is_trace) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// The `kind` option: a string checked here, or a path to a `SpanKind`
/// (`SpanKind::Llm`), left to the compiler.
enum Kind {
    Named(String),
    Path(syn::Path),
}

#[derive(Default)]
struct Options {
    krate: Option<syn::Path>,
    /// A string literal, or any expression convertible to a `SpanName`.
    name: Option<Expr>,
    kind: Option<Kind>,
    metadata: Option<Expr>,
    /// `session_id`, `user_id` and `tags`: the trace's grouping keys.
    grouping: Vec<(Ident, Expr)>,
    input: bool,
    output: bool,
    skip: Vec<Ident>,
    skip_all: Option<Ident>,
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = Options::default();
        // `#[span("answer")]`: the name, first.
        if input.peek(LitStr) {
            let name: LitStr = input.parse()?;
            options.name = Some(syn::parse_quote!(#name));
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        while !input.is_empty() {
            if input.peek(LitStr) {
                return Err(input.error(
                    "a name in quotes comes first (`#[span(\"answer\", ..)]`); elsewhere, write `name = \"answer\"`",
                ));
            }
            // `parse_any`: `crate` is a keyword.
            let key = Ident::parse_any(input)?;
            match key.to_string().as_str() {
                "name" => {
                    input.parse::<Token![=]>()?;
                    if options.name.is_some() {
                        return Err(syn::Error::new(
                            key.span(),
                            "the span's name is given twice",
                        ));
                    }
                    options.name = Some(input.parse()?);
                }
                "kind" => {
                    input.parse::<Token![=]>()?;
                    if !input.peek(LitStr) {
                        let path = input.parse::<syn::Path>().map_err(|e| {
                            syn::Error::new(
                                e.span(),
                                "expected the kind as a string (`kind = \"llm\"`) or a path (`kind = SpanKind::Llm`)",
                            )
                        })?;
                        options.kind = Some(Kind::Path(path));
                    } else {
                        let kind: LitStr = input.parse()?;
                        let value = kind.value();
                        if !KINDS.contains(&value.as_str()) {
                            return Err(syn::Error::new(
                                kind.span(),
                                format!(
                                    "unknown span kind {value:?}; expected one of: {}",
                                    KINDS.join(", ")
                                ),
                            ));
                        }
                        options.kind = Some(Kind::Named(value));
                    }
                }
                "metadata" => {
                    input.parse::<Token![=]>()?;
                    options.metadata = Some(input.parse()?);
                }
                "session_id" | "user_id" | "tags" => {
                    input.parse::<Token![=]>()?;
                    options.grouping.push((key.clone(), input.parse()?));
                }
                "crate" => {
                    input.parse::<Token![=]>()?;
                    let path: LitStr = input.parse()?;
                    options.krate = Some(path.parse()?);
                }
                "input" => options.input = true,
                "output" => options.output = true,
                "skip" => {
                    let content;
                    syn::parenthesized!(content in input);
                    let names: Punctuated<Ident, Token![,]> =
                        content.parse_terminated(Ident::parse_any, Token![,])?;
                    options.skip.extend(names);
                }
                "skip_all" => options.skip_all = Some(key),
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown option `{other}`; expected `name`, `kind`, `metadata`, `session_id`, `user_id`, `tags`, `input`, `output`, `skip(...)`, `skip_all` or `crate`"
                        ),
                    ))
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(options)
    }
}

/// The path of the SDK in the calling crate: the `crate = "..."` option, else
/// `vigil-std` or `vigil` as the crate's Cargo.toml names it, under its own
/// name or renamed (`vigil-std` if both).
fn sdk_path(explicit: Option<&syn::Path>) -> TokenStream2 {
    if let Some(path) = explicit {
        return quote!(#path);
    }
    resolve_sdk(|package| proc_macro_crate::crate_name(package).ok())
}

/// [`sdk_path`] without the option, `find` being how the calling crate names
/// a package it depends on (`None` if it does not).
///
/// `FoundCrate::Itself` is the calling crate being the SDK package itself,
/// which `proc-macro-crate` reports for its library and for every target
/// compiled like it but its integration tests and benchmarks: its doc tests
/// and examples, separate crates where `crate` would name the wrong one. The
/// package's own name works in all of those; inside the SDK's library it
/// needs an `extern crate self as vigil_std;` (or `crate = "crate"`).
///
/// Without a Cargo.toml to read (or naming neither package), `::vigil_std`,
/// for a crate built without Cargo that links the SDK under that name.
fn resolve_sdk(find: impl Fn(&str) -> Option<FoundCrate>) -> TokenStream2 {
    for (package, own_name) in [("vigil-std", "vigil_std"), ("vigil", "vigil")] {
        let name = match find(package) {
            Some(FoundCrate::Name(name)) => name,
            Some(FoundCrate::Itself) => own_name.to_owned(),
            None => continue,
        };
        let ident = quote::format_ident!("{}", name);
        return quote!(::#ident);
    }
    quote!(::vigil_std)
}

fn kind_tokens(kind: &str) -> TokenStream2 {
    let variant = match kind {
        "llm" => quote!(Llm),
        "tool" => quote!(Tool),
        "chain" => quote!(Chain),
        "retriever" => quote!(Retriever),
        "agent" => quote!(Agent),
        _ => quote!(Custom),
    };
    quote!(SpanKind::#variant)
}

/// Turns `async fn f(args) -> T` into `fn f(args) -> impl Future<Output = T>`
/// (whose body, written by the caller, takes the context at the call and
/// returns an `async move` block): names the elided lifetimes of the
/// arguments and of the return type, so that the future can capture them, and
/// binds each argument in the block, returning those bindings. An argument
/// bound to a name is moved under that name (taking its `mut`); a pattern is
/// taken as `__vigil_argN` and destructured in the block.
fn desugar_async(function: &mut ItemFn, sdk: &TokenStream2) -> Vec<TokenStream2> {
    let sig = &mut function.sig;
    let mut named = NameElided::default();
    for arg in &mut sig.inputs {
        named.visit_fn_arg_mut(arg);
    }
    if let (Some(lifetime), ReturnType::Type(_, ty)) = (output_lifetime(sig), &mut sig.output) {
        FillElided(lifetime).visit_type_mut(ty);
    }
    let mut rebind = Vec::new();
    for (i, arg) in sig.inputs.iter_mut().enumerate() {
        let FnArg::Typed(arg) = arg else { continue };
        match &mut *arg.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                let (mutability, ident) = (p.mutability.take(), &p.ident);
                rebind.push(quote!(let #mutability #ident = #ident;));
            }
            pat => {
                let taken = quote::format_ident!("__vigil_arg{i}");
                let original = std::mem::replace(
                    pat,
                    Pat::Ident(syn::PatIdent {
                        attrs: Vec::new(),
                        by_ref: None,
                        mutability: None,
                        ident: taken.clone(),
                        subpat: None,
                    }),
                );
                rebind.push(match original {
                    // Kept to the end, as in an `async fn`.
                    Pat::Wild(_) => quote!(let #taken = #taken;),
                    original => quote!(let #original = #taken;),
                });
            }
        }
    }
    let declared = sig.generics.lifetimes().count();
    for (at, lifetime) in named.fresh.iter().enumerate() {
        let param = syn::GenericParam::Lifetime(syn::LifetimeParam::new(lifetime.clone()));
        sig.generics.params.insert(declared + at, param);
    }
    // Every lifetime the signature names (the function's, the impl's), and
    // those of `Self`, as an `async fn` would capture them.
    let mut lifetimes = Lifetimes::default();
    lifetimes.visit_signature(sig);
    let mut captured: Vec<_> = lifetimes
        .free()
        .filter(|l| l.ident != "static")
        .map(|l| quote!(&#l ()))
        .collect();
    if is_associated(sig) {
        captured.push(quote!(::core::marker::PhantomData<Self>));
    }
    let captures =
        (!captured.is_empty()).then(|| quote!(+ #sdk::__private::Captures<(#(#captured,)*)>));
    let output = match &sig.output {
        ReturnType::Type(_, ty) => quote!(#ty),
        ReturnType::Default => quote!(()),
    };
    sig.asyncness = None;
    sig.output = syn::parse_quote!(-> impl ::core::future::Future<Output = #output> #captures);
    // In a trait impl, the `Captures` bound refines the trait's `async fn`.
    function
        .attrs
        .push(syn::parse_quote!(#[allow(refining_impl_trait)]));
    rebind
}

/// Names each elided lifetime of the arguments (`&T`, `&self`, `'_`) with a
/// fresh one; not those of `fn(&T)` and `Fn(&T)`, which are their own.
#[derive(Default)]
struct NameElided {
    fresh: Vec<syn::Lifetime>,
}

impl NameElided {
    fn fresh(&mut self) -> syn::Lifetime {
        let name = format!("'__vigil_life{}", self.fresh.len());
        let lifetime = syn::Lifetime::new(&name, proc_macro2::Span::call_site());
        self.fresh.push(lifetime.clone());
        lifetime
    }

    fn name(&mut self, lifetime: &mut Option<syn::Lifetime>) {
        match lifetime {
            Some(l) if l.ident != "_" => {}
            _ => *lifetime = Some(self.fresh()),
        }
    }
}

impl VisitMut for NameElided {
    fn visit_receiver_mut(&mut self, receiver: &mut syn::Receiver) {
        if receiver.colon_token.is_some() {
            // `self: Type`
            return self.visit_type_mut(&mut receiver.ty);
        }
        // `&self`: the type (`&Self`) is printed from `reference`, and kept
        // the same.
        if let Some((_, lifetime)) = &mut receiver.reference {
            self.name(lifetime);
            if let Type::Reference(ty) = &mut *receiver.ty {
                ty.lifetime = lifetime.clone();
            }
        }
    }

    fn visit_type_reference_mut(&mut self, ty: &mut syn::TypeReference) {
        self.name(&mut ty.lifetime);
        self.visit_type_mut(&mut ty.elem);
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut syn::Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = self.fresh();
        }
    }

    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}

    fn visit_parenthesized_generic_arguments_mut(
        &mut self,
        _: &mut syn::ParenthesizedGenericArguments,
    ) {
    }
}

/// The lifetime that elided ones in the return type stand for, once those of
/// the arguments are named: the only one of the arguments, else that of a
/// `&self` (or of a reference in the type of `self`); `None` if elision does
/// not apply (then the return type is left as written, and the compiler
/// says what it would have said).
fn output_lifetime(sig: &syn::Signature) -> Option<syn::Lifetime> {
    let mut inputs = Lifetimes::default();
    for arg in &sig.inputs {
        inputs.visit_fn_arg(arg);
    }
    let named: Vec<_> = inputs.free().collect();
    if let [only] = &named[..] {
        return Some((*only).clone());
    }
    let receiver = sig.receiver()?;
    if let Some((_, lifetime)) = &receiver.reference {
        return lifetime.clone();
    }
    let mut in_self = Lifetimes::default();
    in_self.visit_type(&receiver.ty);
    in_self.0.into_iter().next()
}

/// The lifetimes named in what is visited, each once, but for those of a
/// `for<'x>` binder.
#[derive(Default)]
struct Lifetimes(Vec<syn::Lifetime>, Vec<syn::Lifetime>);

impl Lifetimes {
    fn free(&self) -> impl Iterator<Item = &syn::Lifetime> {
        self.0.iter().filter(|l| !self.1.contains(l))
    }
}

impl<'a> Visit<'a> for Lifetimes {
    fn visit_lifetime(&mut self, lifetime: &'a syn::Lifetime) {
        if !self.0.contains(lifetime) {
            self.0.push(lifetime.clone());
        }
    }

    fn visit_bound_lifetimes(&mut self, binder: &'a syn::BoundLifetimes) {
        for param in &binder.lifetimes {
            if let syn::GenericParam::Lifetime(param) = param {
                self.1.push(param.lifetime.clone());
            }
        }
    }
}

/// Fills the elided lifetimes of a return type with `.0`.
struct FillElided(syn::Lifetime);

impl VisitMut for FillElided {
    fn visit_type_reference_mut(&mut self, ty: &mut syn::TypeReference) {
        if ty.lifetime.as_ref().is_none_or(|l| l.ident == "_") {
            ty.lifetime = Some(self.0.clone());
        }
        self.visit_type_mut(&mut ty.elem);
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut syn::Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = self.0.clone();
        }
    }

    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}

    fn visit_parenthesized_generic_arguments_mut(
        &mut self,
        _: &mut syn::ParenthesizedGenericArguments,
    ) {
    }
}

/// Fails to compile, pointing at the argument, unless its type is
/// `Serialize`: an argument recorded as input must be (or be skipped). A
/// trait of its own per argument, so that the message can name it.
fn serializable_check(ident: &Ident, sdk: &TokenStream2) -> TokenStream2 {
    let name = ident.unraw().to_string();
    let message = format!(
        "the argument `{name}` is recorded as input, but its type `{{T}}` does not implement `serde::Serialize`"
    );
    let note = format!(
        "leave it out of the input with `skip({name})` (or `skip_all`), or make its type `serde::Serialize` (derive it, or add the bound)"
    );
    quote_spanned! {ident.span()=> {
        #[diagnostic::on_unimplemented(message = #message, label = "not `Serialize`", note = #note)]
        trait RecordedAsInput<T: ?::core::marker::Sized> {}
        impl RecordedAsInput<()> for #sdk::__private::Serializable {}
        fn recorded_as_input<C>(_: C)
        where
            C: #sdk::__private::Checked + RecordedAsInput<<C as #sdk::__private::Checked>::Arg>,
        {
        }
        recorded_as_input((&#sdk::__private::Arg(&#ident)).vigil_check());
    }}
}

/// Whether the function is surely an associated function, where `Self` can
/// be named: it has a `self` receiver or mentions `Self` in its signature. An
/// associated function that does neither cannot be told from a free one.
fn is_associated(sig: &syn::Signature) -> bool {
    fn mentions_self(tokens: TokenStream2) -> bool {
        tokens.into_iter().any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => i == "Self",
            proc_macro2::TokenTree::Group(g) => mentions_self(g.stream()),
            _ => false,
        })
    }
    let (inputs, output, generics) = (&sig.inputs, &sig.output, &sig.generics);
    let where_clause = &generics.where_clause;
    sig.receiver().is_some() || mentions_self(quote!(#inputs #output #generics #where_clause))
}

/// Whether the declared return type is spelled `Result<..>` (any path ending so).
fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

/// Whether `ty` contains an `impl Trait`.
fn mentions_impl(ty: &Type) -> bool {
    fn walk(tokens: TokenStream2) -> bool {
        tokens.into_iter().any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => i == "impl",
            proc_macro2::TokenTree::Group(g) => walk(g.stream()),
            _ => false,
        })
    }
    walk(quote!(#ty))
}

fn instrument(options: Options, mut function: ItemFn, is_trace: bool) -> syn::Result<TokenStream2> {
    let sig = &function.sig.clone();
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new(
            constness.span(),
            "a `const fn` cannot be instrumented: recording a span is not a const operation",
        ));
    }
    if let (Some(all), Some(_)) = (&options.skip_all, options.skip.first()) {
        return Err(syn::Error::new(
            all.span(),
            "`skip_all` already leaves every argument out: remove `skip(...)` or `skip_all`",
        ));
    }
    for name in &options.skip {
        let known = sig.inputs.iter().any(|arg| match arg {
            FnArg::Typed(t) => matches!(&*t.pat, Pat::Ident(p) if p.ident == *name),
            FnArg::Receiver(_) => name == "self",
        });
        if !known {
            return Err(syn::Error::new(
                name.span(),
                format!("`skip({name})`: the function has no argument `{name}`"),
            ));
        }
    }
    let sdk = sdk_path(options.krate.as_ref());
    let fn_name = sig.ident.unraw().to_string();
    let name = match &options.name {
        Some(expr) => quote_spanned!(expr.span()=> #sdk::__private::span_name(#expr)),
        // `Type::method`, made once per type (a trait's default method has
        // one `Self` per implementor).
        None if is_associated(sig) => quote!({
            static NAME: #sdk::__private::MethodName = #sdk::__private::MethodName::new(#fn_name);
            NAME.get(::core::any::type_name::<Self>())
        }),
        None => quote!(::core::concat!(::core::module_path!(), "::", #fn_name)),
    };
    let default_kind = if is_trace { "chain" } else { "custom" };
    let kind = match &options.kind {
        // The user's path, as written: the compiler checks it is a `SpanKind`.
        Some(Kind::Path(path)) => quote_spanned!(path.span()=> {
            let kind: #sdk::SpanKind = #path;
            kind
        }),
        Some(Kind::Named(kind)) => {
            let kind = kind_tokens(kind);
            quote!(#sdk::#kind)
        }
        None => {
            let kind = kind_tokens(default_kind);
            quote!(#sdk::#kind)
        }
    };

    let metadata = options.metadata.as_ref().map(|expr| {
        quote_spanned!(expr.span()=> #sdk::__private::set_metadata_object(&__vigil_span, &(#expr));)
    });
    let grouping = options.grouping.iter().map(|(key, expr)| match key.to_string().as_str() {
        "tags" => quote_spanned!(expr.span()=> __vigil_span.set_tags(&(#expr));),
        "session_id" => quote_spanned!(expr.span()=> __vigil_span.set_session_id(::core::convert::AsRef::<str>::as_ref(&(#expr)));),
        _ => quote_spanned!(expr.span()=> __vigil_span.set_user_id(::core::convert::AsRef::<str>::as_ref(&(#expr)));),
    });
    let metadata = quote!(#metadata #(#grouping)*);
    let input = options.input.then(|| {
        let recorded: Vec<&Ident> = sig
            .inputs
            .iter()
            .filter_map(|arg| match arg {
                FnArg::Typed(t) => match &*t.pat {
                    Pat::Ident(p)
                        if options.skip_all.is_none() && !options.skip.contains(&p.ident) =>
                    {
                        Some(&p.ident)
                    }
                    _ => None,
                },
                FnArg::Receiver(_) => None,
            })
            .collect();
        let checks = recorded.iter().map(|ident| serializable_check(ident, &sdk));
        let fields = recorded.iter().map(|ident| {
            let key = ident.unraw().to_string();
            quote!((#key, (&#sdk::__private::Arg(&#ident)).vigil_value()))
        });
        quote!({
            #[allow(unused_imports)]
            use #sdk::__private::{RecordArg as _, SkipArg as _};
            #(#checks)*
            __vigil_span.set_input(&#sdk::__private::object([#(#fields),*]));
        })
    });
    let record_result =
        returns_result(&sig.output).then(|| quote!(__vigil_span.record_result(&__vigil_result);));
    // Output needs `Serialize`; other types are left out (autoref
    // specialisation picks the recording impl only when it applies). Of a
    // `Result`, the `Ok` value is the output; an `Err` goes to the status.
    let record_output = options.output.then(|| {
        let value = if returns_result(&sig.output) {
            quote!(match &__vigil_result {
                Ok(v) => (&#sdk::__private::Arg(v)).vigil_value(),
                Err(_) => None,
            })
        } else {
            quote!((&#sdk::__private::Arg(&__vigil_result)).vigil_value())
        };
        quote!({
            #[allow(unused_imports)]
            use #sdk::__private::{RecordArg as _, SkipArg as _};
            if let Some(value) = #value {
                __vigil_span.set_output(&value);
            }
        })
    });
    // The return type pins down `?` conversions in the body, unless it is an
    // `impl Trait`, which cannot be named here.
    let ret = match &sig.output {
        ReturnType::Type(_, ty) if !mentions_impl(ty) => Some(quote!(#ty)),
        ReturnType::Type(..) => None,
        ReturnType::Default => Some(quote!(())),
    };
    let annotated = ret.as_ref().map(|ty| quote!(: #ty));
    let typed = |future: TokenStream2| match &ret {
        Some(ty) => quote!(#sdk::__private::typed_future::<#ty, _>(#future)),
        None => future,
    };
    let closure_ret = ret.as_ref().map(|ty| quote!(-> #ty));
    let block = &function.block.clone();
    let body = if sig.asyncness.is_some() {
        let (context, start) = if is_trace {
            (quote!(context_for_trace), quote!(in_trace_from))
        } else {
            (quote!(context_for_span), quote!(in_span_from))
        };
        let inner = typed(quote!(async move #block));
        let outer = typed(quote!(async move {
            let __vigil_span = #sdk::current_span();
            #metadata
            #input
            let __vigil_result #annotated = #inner.await;
            #record_result
            #record_output
            __vigil_result
        }));
        // The future keeps the arguments, as the `async fn`'s would, even
        // those the body does not use.
        let keep_self = sig.receiver().map(|_| quote!(let _ = &self;));
        let rebind = desugar_async(&mut function, &sdk);
        // The context is taken at the call; the span starts in it at the
        // first poll, wherever that is.
        quote! {
            let __vigil_context = #sdk::__private::#context();
            async move {
                #keep_self
                #(#rebind)*
                let __vigil_future = #outer;
                #sdk::__private::#start(__vigil_context, __vigil_future, #name, #kind).await
            }
        }
    } else {
        let start = if is_trace {
            quote!(#sdk::start_trace(#name))
        } else {
            quote!(#sdk::start_span(#name, #kind))
        };
        let set_kind = is_trace.then(|| quote!(__vigil_span.set_kind(#kind);));
        quote! {
            let __vigil_span = #start;
            #set_kind
            #metadata
            #input
            // Called through a function taking `FnOnce`, so a body may return
            // what it borrows from a `&mut` argument.
            let __vigil_result #annotated =
                #sdk::__private::call_once(move || #closure_ret #block);
            #record_result
            #record_output
            __vigil_result
        }
    };
    function.block = syn::parse2(quote!({ #body }))?;
    Ok(quote!(#function))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDK's path in a crate whose Cargo.toml names those packages so.
    fn resolved(deps: &[(&str, FoundCrate)]) -> String {
        let find = |package: &str| {
            deps.iter()
                .find(|(p, _)| *p == package)
                .map(|(_, found)| found.clone())
        };
        resolve_sdk(find).to_string()
    }

    fn named(name: &str) -> FoundCrate {
        FoundCrate::Name(name.to_owned())
    }

    #[test]
    fn either_package_under_its_name() {
        assert_eq!(resolved(&[("vigil", named("vigil"))]), ":: vigil");
        assert_eq!(
            resolved(&[("vigil-std", named("vigil_std"))]),
            ":: vigil_std"
        );
    }

    #[test]
    fn vigil_std_when_both() {
        let both = [("vigil", named("vigil")), ("vigil-std", named("vigil_std"))];
        assert_eq!(resolved(&both), ":: vigil_std");
        let both_renamed = [("vigil", named("facade")), ("vigil-std", named("sdk"))];
        assert_eq!(resolved(&both_renamed), ":: sdk");
    }

    #[test]
    fn a_renamed_dependency_by_its_new_name() {
        assert_eq!(
            resolved(&[("vigil", named("observability"))]),
            ":: observability"
        );
        assert_eq!(resolved(&[("vigil-std", named("sdk"))]), ":: sdk");
    }

    #[test]
    fn the_sdk_package_itself_by_its_own_name() {
        // Its doc tests and examples are compiled as `Itself`, where `crate`
        // would name the doc test or the example.
        assert_eq!(
            resolved(&[("vigil-std", FoundCrate::Itself)]),
            ":: vigil_std"
        );
        let facade = [
            ("vigil", FoundCrate::Itself),
            ("vigil-std", named("vigil_std")),
        ];
        assert_eq!(resolved(&facade), ":: vigil_std");
        assert_eq!(resolved(&[("vigil", FoundCrate::Itself)]), ":: vigil");
    }

    #[test]
    fn neither_falls_back_to_vigil_std() {
        assert_eq!(resolved(&[]), ":: vigil_std");
        assert_eq!(resolved(&[("serde", named("serde"))]), ":: vigil_std");
    }

    #[test]
    fn the_crate_option_wins() {
        let path: syn::Path = syn::parse_quote!(my::sdk);
        assert_eq!(sdk_path(Some(&path)).to_string(), "my :: sdk");
    }
}
