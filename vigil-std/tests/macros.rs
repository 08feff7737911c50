//! `#[trace]` and `#[span]` on every shape of function, checked through the
//! in-memory capture.

use std::fmt;

mod common;

use common::{block_on, YieldOnce};
use serde_json::json;
use vigil_std::sink::capture;

#[vigil_std::trace(name = "pipeline", metadata = json!({"version": "1.0"}))]
fn pipeline(question: &str) -> usize {
    let docs = retrieve(question, 3);
    let agent = Agent { calls: 0 };
    agent.describe().len() + docs.len()
}

#[vigil_std::span(kind = "retriever", input, output)]
fn retrieve(query: &str, top_k: usize) -> Vec<String> {
    (0..top_k).map(|i| format!("{query}-{i}")).collect()
}

#[derive(Debug)]
struct Failure(&'static str);
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[vigil_std::span(kind = "tool")]
fn may_fail(fail: bool) -> Result<u32, Failure> {
    if fail {
        return Err(Failure("tool broke"));
    }
    Ok(7)
}

#[vigil_std::span(kind = "tool")]
fn question_mark(fail: bool) -> Result<u32, Failure> {
    let v = may_fail(fail)?;
    Ok(v + 1)
}

struct Agent {
    calls: u32,
}

impl Agent {
    #[vigil_std::span(name = "agent.describe", kind = "agent")]
    fn describe(&self) -> &'static str {
        "agent"
    }

    #[vigil_std::span(kind = "agent", input, skip(secret))]
    fn step(&mut self, goal: &str, secret: &str) -> u32 {
        let _ = secret;
        self.calls += 1;
        self.calls
    }

    #[vigil_std::span]
    fn into_calls(self) -> u32 {
        self.calls
    }

    #[vigil_std::span(output)]
    fn first<'a>(&self, items: &'a [String]) -> &'a str {
        &items[0]
    }

    #[vigil_std::span]
    fn calls_mut(&mut self) -> &mut u32 {
        &mut self.calls
    }
}

/// In a generic function a value is recorded when the bounds make it
/// `Serialize`; `other`, which is not, must be skipped.
#[vigil_std::span(kind = "chain", input, output, skip(other))]
fn generic<T: serde::Serialize + Clone, U: Clone>(value: T, other: U) -> Vec<T> {
    let _ = other.clone();
    vec![value.clone(), value]
}

#[vigil_std::span]
fn opaque(n: u32) -> impl Iterator<Item = u32> {
    0..n
}

/// An argument with no `Serialize`, skipped (recording it is a compile error).
struct NotSerialize;

#[vigil_std::span(input, skip(_opaque))]
fn mixed(n: u32, _opaque: NotSerialize) -> u32 {
    n
}

#[vigil_std::span]
unsafe fn raw_read(p: *const u32) -> u32 {
    unsafe { *p }
}

#[vigil_std::span(kind = "llm", input, output)]
async fn call_llm(prompt: String) -> Result<String, Failure> {
    YieldOnce(false).await;
    vigil_std::log_event("first-token", &());
    if prompt.is_empty() {
        return Err(Failure("empty prompt"));
    }
    Ok(format!("echo: {prompt}"))
}

#[vigil_std::trace(name = "async-agent", kind = "agent")]
async fn async_agent() -> Result<usize, Failure> {
    let a = call_llm("hi".to_owned()).await?;
    let b = call_llm(String::new()).await.unwrap_or_default();
    Ok(a.len() + b.len())
}

#[test]
fn sync_shapes_record_spans_with_names_kinds_inputs_and_outputs() {
    let c = capture(|| {
        assert_eq!(pipeline("rust"), 8);
        vigil_std::trace("shapes", |_| {
            let mut agent = Agent { calls: 0 };
            assert_eq!(agent.step("plan", "hunter2"), 1);
            assert_eq!(agent.first(&["x".to_owned()]), "x");
            *agent.calls_mut() += 1;
            assert_eq!(agent.into_calls(), 2);
            assert_eq!(generic(2u8, 'x'), vec![2, 2]);
            assert_eq!(opaque(3).sum::<u32>(), 3);
            assert_eq!(mixed(5, NotSerialize), 5);
            assert_eq!(unsafe { raw_read(&9) }, 9);
        });
    });
    let trace = c.trace("pipeline").expect("named trace");
    assert_eq!(trace.metadata["version"], "1.0");
    let retrieve = c
        .span("macros::retrieve")
        .expect("default name is module::function");
    assert_eq!(retrieve.kind, "retriever");
    assert_eq!(retrieve.input, json!({"query": "rust", "top_k": 3}));
    assert_eq!(
        retrieve.output,
        json!({"value": ["rust-0", "rust-1", "rust-2"]})
    );
    assert_eq!(c.span("agent.describe").unwrap().kind, "agent");
    let step = c.span("Agent::step").unwrap();
    assert_eq!(step.input, json!({"goal": "plan"}), "skip(secret), no self");
    assert_eq!(
        c.span("Agent::first").unwrap().output,
        json!({"value": "x"})
    );
    let generic = c.span("macros::generic").unwrap();
    assert_eq!(generic.output, json!({"value": [2, 2]}));
    assert_eq!(generic.input, json!({"value": 2}), "`other: U` is skipped");
    assert_eq!(c.span("macros::mixed").unwrap().input, json!({"n": 5}));
    for name in [
        "Agent::into_calls",
        "Agent::calls_mut",
        "macros::opaque",
        "macros::raw_read",
    ] {
        assert_eq!(c.span(name).unwrap().kind, "custom", "{name}");
    }
    let root = &c
        .trace("shapes")
        .unwrap()
        .spans
        .iter()
        .find(|s| s.parent_span_id.is_none())
        .unwrap()
        .span_id;
    assert!(c
        .trace("shapes")
        .unwrap()
        .spans
        .iter()
        .filter(|s| s.parent_span_id.is_some())
        .all(|s| s.parent_span_id.as_ref() == Some(root)));
}

/// A generic type: its methods' spans are named without the arguments.
struct Wrapper<T>(T);

impl<T: Clone> Wrapper<T> {
    #[vigil_std::span]
    fn new(value: T) -> Self {
        Wrapper(value)
    }

    #[vigil_std::span]
    fn get(&self) -> T {
        self.0.clone()
    }

    /// Neither `self` nor `Self`: indistinguishable from a free function.
    #[vigil_std::span]
    fn helper() -> u8 {
        1
    }

    #[vigil_std::span]
    async fn fetch(&self) -> T {
        YieldOnce(false).await;
        self.0.clone()
    }
}

/// A default method: named after each implementor.
trait Tool {
    #[vigil_std::span(kind = "tool")]
    fn call(&self) -> u32 {
        1
    }
}

struct Search;
struct Weather;
impl Tool for Search {}
impl Tool for Weather {}

mod tools {
    pub struct Calculator;

    impl Calculator {
        #[vigil_std::span]
        pub fn add(&self, a: u32, b: u32) -> u32 {
            a + b
        }
    }
}

#[test]
fn method_spans_are_named_after_their_type() {
    let c = capture(|| {
        vigil_std::trace("methods", |_| {
            let w = Wrapper::new(String::from("x"));
            assert_eq!(w.get(), "x");
            assert_eq!(Wrapper::<u8>::new(3).get(), 3);
            assert_eq!(Wrapper::<u8>::helper(), 1);
            assert_eq!(block_on(w.fetch()), "x");
            for _ in 0..2 {
                assert_eq!(Search.call() + Weather.call(), 2);
            }
            assert_eq!(tools::Calculator.add(1, 2), 3);
        });
    });
    let names: Vec<_> = c.spans().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Wrapper::new",
            "Wrapper::get",
            "Wrapper::new",
            "Wrapper::get",
            "macros::helper",
            "Wrapper::fetch",
            "Search::call",
            "Weather::call",
            "Search::call",
            "Weather::call",
            "Calculator::add",
            "methods",
        ]
    );
}

#[test]
fn results_and_panics_set_the_status() {
    let c = capture(|| {
        vigil_std::trace("t", |_| {
            assert!(may_fail(true).is_err());
            assert_eq!(question_mark(false).unwrap(), 8);
            assert!(question_mark(true).is_err());
            #[vigil_std::span(name = "boom")]
            fn boom() {
                panic!("boom");
            }
            assert!(std::panic::catch_unwind(boom).is_err());
        })
    });
    let statuses: Vec<_> = c
        .spans()
        .filter(|s| s.name == "macros::may_fail")
        .map(|s| s.status.as_str())
        .collect();
    assert_eq!(statuses, ["error", "ok", "error"]);
    let failed = c.spans().find(|s| s.name == "macros::may_fail").unwrap();
    assert_eq!(failed.metadata["error"], "tool broke");
    let qm: Vec<_> = c
        .spans()
        .filter(|s| s.name == "macros::question_mark")
        .map(|s| s.status.as_str())
        .collect();
    assert_eq!(qm, ["ok", "error"]);
    assert_eq!(c.span("boom").unwrap().status, "error");
}

#[test]
fn async_functions_keep_their_span_current_across_polls() {
    let c = capture(|| {
        assert_eq!(block_on(async_agent()).unwrap(), 8);
    });
    let trace = c.trace("async-agent").unwrap();
    let root = trace
        .spans
        .iter()
        .find(|s| s.parent_span_id.is_none())
        .unwrap();
    assert_eq!(root.kind, "agent");
    let llms: Vec<_> = trace
        .spans
        .iter()
        .filter(|s| s.name == "macros::call_llm")
        .collect();
    assert_eq!(llms.len(), 2);
    for s in &llms {
        assert_eq!(s.parent_span_id.as_ref(), Some(&root.span_id));
        assert_eq!(s.events[0]["name"], "first-token", "logged while polled");
    }
    assert_eq!(llms[0].input, json!({"prompt": "hi"}));
    assert_eq!(llms[0].output, json!({"value": "echo: hi"}), "the Ok value");
    assert_eq!(llms[1].status, "error");
}

#[test]
fn without_a_client_functions_run_unchanged() {
    assert_eq!(pipeline("x"), 8);
    assert_eq!(block_on(async_agent()).unwrap(), 8);
    assert!(question_mark(true).is_err());
}

#[vigil_std::trace(name = "task")]
async fn task(id: u32) -> u32 {
    let mut sum = 0;
    for step in 0..3 {
        sum += task_step(id, step).await;
    }
    sum
}

#[vigil_std::span(kind = "tool", input)]
async fn task_step(id: u32, step: u32) -> u32 {
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    vigil_std::current_span().set_metadata("owner", &id);
    id * 10 + step
}

#[test]
fn concurrent_tokio_tasks_never_see_each_others_spans() {
    use vigil_std::InstrumentExt;
    let c = capture(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let context = vigil_std::Context::current();
        rt.block_on(async move {
            let handles: Vec<_> = (0..12)
                .map(|id| tokio::spawn(task(id).with_context(context.clone())))
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        });
    });
    assert_eq!(c.traces.len(), 12);
    for trace in &c.traces {
        assert_eq!(trace.spans.len(), 4);
        let root = trace
            .spans
            .iter()
            .find(|s| s.parent_span_id.is_none())
            .unwrap();
        let steps: Vec<_> = trace
            .spans
            .iter()
            .filter(|s| s.parent_span_id.is_some())
            .collect();
        let owner = &steps[0].input["id"];
        for s in &steps {
            assert_eq!(s.parent_span_id.as_ref(), Some(&root.span_id));
            assert_eq!(&s.input["id"], owner, "a span of another task");
            assert_eq!(&s.metadata["owner"], owner);
        }
    }
}

mod my_impl {
    pub type Out = Result<u32, String>;
}

/// A path that merely contains `impl` in a name keeps its type annotation,
/// so `?` still infers inside the async body.
#[vigil_std::span]
async fn named_like_impl(x: u32) -> my_impl::Out {
    let y = Ok::<u32, String>(x)?;
    Ok(y + 1)
}

#[test]
fn return_types_named_like_impl_keep_working() {
    let c = capture(|| assert_eq!(common::block_on(named_like_impl(1)), Ok(2)));
    assert_eq!(c.span("macros::named_like_impl").unwrap().status, "ok");
}

#[vigil_std::trace("turn", session_id = session, user_id = "user-9", tags = ["async", "beta"])]
async fn chat_turn(session: String) -> usize {
    YieldOnce(false).await;
    session.len()
}

#[test]
fn trace_options_set_session_user_and_tags_on_async_traces_too() {
    let captured = capture(|| block_on(chat_turn("conv-1".into())));
    let trace = captured.trace("turn").unwrap();
    assert_eq!(trace.metadata["session_id"], "conv-1");
    assert_eq!(trace.metadata["user_id"], "user-9");
    assert_eq!(trace.metadata["tags"], json!(["async", "beta"]));
}
