//! `kind` takes a path to a `SpanKind` as well as a string.

use vigil_std::sink::capture;
use vigil_std::SpanKind;

#[vigil_std::span(name = "full-path", kind = vigil_std::SpanKind::Tool)]
fn full_path() {}

#[vigil_std::span(name = "imported", kind = SpanKind::Llm)]
fn imported() {}

#[vigil_std::span(name = "string", kind = "retriever")]
fn string() {}

#[vigil_std::span(name = "async", kind = SpanKind::Agent)]
async fn in_async() {}

#[vigil_std::trace(name = "trace", kind = SpanKind::Agent)]
fn traced() {
    full_path();
    imported();
    string();
    block_on(in_async());
}

#[vigil_std::trace(name = "async-trace", kind = ::vigil_std::SpanKind::Retriever)]
async fn async_traced() {}

fn main() {
    let c = capture(|| {
        traced();
        block_on(async_traced());
    });
    for (name, kind) in [
        ("full-path", "tool"),
        ("imported", "llm"),
        ("string", "retriever"),
        ("async", "agent"),
        ("trace", "agent"),
        ("async-trace", "retriever"),
    ] {
        assert_eq!(c.span(name).unwrap().kind, kind, "{name}");
    }
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
