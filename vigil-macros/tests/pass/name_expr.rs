//! `name = <expr>` names the span at each call; `#[span("answer")]` is short
//! for `name = "answer"`.

use std::borrow::Cow;

use vigil_std::sink::capture;

#[vigil_std::span(name = format!("tool:{}", tool), kind = "tool")]
fn call_tool(tool: &str) -> usize {
    tool.len()
}

#[vigil_std::span("answer")]
fn answer() {}

#[vigil_std::span("fetch", kind = "retriever", input)]
fn fetch(url: &str) -> usize {
    url.len()
}

#[vigil_std::trace("pipeline")]
fn pipeline() {
    call_tool("search");
    call_tool("weather");
    answer();
    fetch("https://example.com");
    Step { id: 3 }.run();
    block_on(llm(if true { "gpt" } else { "claude" }));
}

const STEP_NAME: &str = "step";

struct Step {
    id: u32,
}

impl Step {
    #[vigil_std::span(name = format!("{STEP_NAME}-{}", self.id))]
    fn run(&self) {}
}

#[vigil_std::span(name = Cow::Borrowed(model), kind = "llm")]
async fn llm(model: &'static str) -> usize {
    model.len()
}

#[vigil_std::trace("async-trace", kind = "agent")]
async fn async_trace() {}

fn main() {
    let c = capture(|| {
        pipeline();
        block_on(async_trace());
    });
    assert!(c.trace("pipeline").is_some());
    for name in ["tool:search", "tool:weather", "answer", "step-3", "gpt"] {
        assert!(c.span(name).is_some(), "{name}");
    }
    let fetch = c.span("fetch").unwrap();
    assert_eq!(fetch.kind, "retriever");
    assert_eq!(fetch.input["url"], "https://example.com");
    assert_eq!(c.span("async-trace").unwrap().kind, "agent");
}

/// Polls `future` on this thread until it is ready.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
