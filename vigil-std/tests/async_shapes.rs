//! Every shape of `async fn` signature compiles under `#[span]` and
//! `#[trace]` as it does without them (borrowed arguments and results,
//! receivers, patterns, trait impls), its future stays `Send` when the
//! function's would be, and it keeps its arguments until it completes.
#![deny(warnings)]

use std::fmt::Display;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

mod common;

use common::{block_on, YieldOnce};
use serde_json::json;
use vigil_std::sink::capture;

struct Agent<'a> {
    name: &'a str,
    calls: u32,
}

impl<'a> Agent<'a> {
    #[vigil_std::span]
    async fn name(&self) -> &str {
        YieldOnce(false).await;
        self.name
    }

    #[vigil_std::span]
    async fn calls(&mut self) -> &mut u32 {
        self.calls += 1;
        &mut self.calls
    }

    /// Several borrowed arguments: the result borrows from `self`.
    #[vigil_std::span(input)]
    async fn pick(&self, other: &str, n: &usize) -> &'a str {
        let _ = (other, n);
        self.name
    }

    #[vigil_std::span]
    async fn longest<'b>(&self, a: &'b str, b: &'b str) -> &'b str {
        if a.len() >= b.len() {
            a
        } else {
            b
        }
    }

    #[vigil_std::span]
    async fn pinned(self: Pin<&mut Self>) -> u32 {
        self.calls
    }

    #[vigil_std::span]
    async fn boxed(self: Box<Self>) -> u32 {
        self.calls
    }

    #[vigil_std::trace(input)]
    async fn run(mut self, steps: u32) -> u32 {
        for _ in 0..steps {
            *self.calls().await += 1;
        }
        self.calls
    }
}

struct Named<'a>(&'a str);

impl Named<'_> {
    #[vigil_std::span]
    async fn get(&self) -> &str {
        self.0
    }
}

/// An `async fn` in a trait, implemented with the macro.
trait Tool {
    async fn call(&self, query: &str) -> usize;
}

struct Search;

impl Tool for Search {
    #[vigil_std::span(kind = "tool", input)]
    async fn call(&self, query: &str) -> usize {
        YieldOnce(false).await;
        query.len()
    }
}

/// A default `async fn`, instrumented in the trait.
trait Retriever {
    #[vigil_std::span(kind = "retriever")]
    async fn retrieve(&self, query: &str) -> Vec<String> {
        vec![query.to_owned()]
    }
}

impl Retriever for Search {}

impl Named<'static> {
    #[vigil_std::span]
    async fn make(name: &'static str) -> Self {
        Named(name)
    }
}

#[vigil_std::span(input)]
async fn patterns((a, b): (u32, u32), mut c: u32, _: u32, r#type: u32) -> u32 {
    c += 1;
    a + b + c + r#type
}

#[vigil_std::span]
async fn closures(
    f: impl Fn(&str) -> usize,
    g: fn(&str) -> usize,
    h: impl for<'x> Fn(&'x str) -> &'x str,
    tool: &dyn Display,
) -> usize {
    f("ab") + g("abc") + h("").len() + tool.to_string().len()
}

#[vigil_std::span]
async fn generic<T, U>(value: T, other: &U) -> String
where
    T: Display,
    U: Display + ?Sized,
{
    format!("{value}{other}")
}

#[vigil_std::span]
async fn opaque(n: u32) -> impl Display {
    n
}

#[vigil_std::span]
async fn question_mark(text: &str) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = text.parse()?;
    Ok(n)
}

/// # Safety
/// `p` is valid.
#[vigil_std::span]
async unsafe fn read(p: *const u32) -> u32 {
    // SAFETY: the caller's promise that `p` is valid.
    unsafe { *p }
}

/// Counts its drops.
struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[vigil_std::span]
async fn keeps(_guard: Guard, _: Guard) {
    YieldOnce(false).await;
}

struct Owner(#[allow(dead_code)] Guard);

impl Owner {
    #[vigil_std::span]
    async fn keeps(self) {
        YieldOnce(false).await;
    }
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[test]
fn every_signature_shape_compiles_and_records_its_span() {
    let c = capture(|| {
        vigil_std::trace("shapes", |_| {
            let text = String::from("agent");
            let mut agent = Agent {
                name: &text,
                calls: 0,
            };
            assert_eq!(block_on(agent.name()), "agent");
            *block_on(agent.calls()) += 1;
            assert_eq!(block_on(agent.pick("x", &1)), "agent");
            assert_eq!(block_on(agent.longest("aa", "b")), "aa");
            assert_eq!(block_on(Pin::new(&mut agent).pinned()), 2);
            let boxed = Agent {
                name: &text,
                calls: 2,
            };
            assert_eq!(block_on(Box::new(boxed).boxed()), 2);
            assert_eq!(block_on(agent.run(2)), 6);
            assert_eq!(block_on(Named("n").get()), "n");
            assert_eq!(block_on(Search.call("rust")), 4);
            assert_eq!(block_on(Search.retrieve("q")), ["q"]);
            assert_eq!(block_on(Named::make("m")).0, "m");
            assert_eq!(block_on(patterns((1, 2), 3, 4, 5)), 12);
            assert_eq!(block_on(closures(|s| s.len(), |s| s.len(), |s| s, &7)), 6);
            assert_eq!(block_on(generic(1, "x")), "1x");
            assert_eq!(block_on(opaque(3)).to_string(), "3");
            assert!(block_on(question_mark("x")).is_err());
            // SAFETY: a reference to a live value is a valid pointer.
            assert_eq!(unsafe { block_on(read(&5)) }, 5);
        })
    });
    for name in [
        "Agent::name",
        "Agent::calls",
        "Agent::pick",
        "Agent::longest",
        "Agent::pinned",
        "Agent::boxed",
        "Agent::run",
        "Named::get",
        "Search::call",
        "Search::retrieve",
        "Named::make",
        "async_shapes::patterns",
        "async_shapes::closures",
        "async_shapes::generic",
        "async_shapes::opaque",
        "async_shapes::read",
    ] {
        assert!(c.span(name).is_some(), "{name}");
    }
    assert_eq!(
        c.span("Agent::pick").unwrap().input,
        json!({"other": "x", "n": 1})
    );
    assert_eq!(c.span("Agent::run").unwrap().input, json!({"steps": 2}));
    assert_eq!(
        c.span("Search::call").unwrap().input,
        json!({"query": "rust"})
    );
    assert_eq!(
        c.span("async_shapes::patterns").unwrap().input,
        json!({"c": 3, "type": 5}),
        "arguments bound to names"
    );
    assert_eq!(
        c.span("async_shapes::question_mark").unwrap().status,
        "error"
    );
}

#[test]
fn futures_are_send_when_the_functions_would_be() {
    let text = String::from("agent");
    let mut agent = Agent {
        name: &text,
        calls: 1,
    };
    drop(assert_send(agent.name()));
    drop(assert_send(agent.calls()));
    drop(assert_send(patterns((1, 2), 3, 4, 5)));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let c = capture(|| {
        vigil_std::trace("root", |_| {
            let task = rt.spawn(assert_send(Search.call("query")));
            assert_eq!(rt.block_on(task).unwrap(), 5);
        })
    });
    let root = c.span("root").unwrap();
    let search = c.span("Search::call").unwrap();
    assert_eq!(search.parent_span_id.as_ref(), Some(&root.span_id));
}

#[test]
fn arguments_live_as_long_as_the_future() {
    let drops = Arc::new(AtomicUsize::new(0));
    let future = keeps(Guard(drops.clone()), Guard(drops.clone()));
    let owner = Owner(Guard(drops.clone())).keeps();
    assert_eq!(drops.load(Ordering::SeqCst), 0, "kept by the futures");
    block_on(future);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    drop(owner);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}
