//! A crate that depends on the SDK under another name only
//! (`observability = { package = "...", .. }` in its Cargo.toml): the macros
//! find it there, without `crate = ".."`. Built and run by `tests/renamed.rs`.

#[observability::span(kind = "tool", input, output)]
fn lookup(id: u32) -> u32 {
    id + 1
}

#[observability::trace("renamed-root")]
fn answer() -> u32 {
    lookup(1)
}

struct Agent;

impl Agent {
    #[observability::span(kind = "agent")]
    async fn step(&self) -> u32 {
        answer()
    }
}

fn main() {
    let captured = observability::sink::capture(|| block_on(Agent.step()));
    let root = captured.span("renamed-root").expect("the #[trace] span");
    assert_eq!(root.kind, "chain");
    let lookup = captured.spans().find(|s| s.name.ends_with("::lookup")).expect("the #[span] span");
    assert_eq!((lookup.kind.as_str(), lookup.parent_span_id.as_ref()), ("tool", Some(&root.span_id)));
    assert_eq!(lookup.input["id"], 1);
    assert_eq!(lookup.output["value"], 2);
    assert_eq!(captured.span("Agent::step").expect("the async span").kind, "agent");
    println!("renamed SDK: 3 spans");
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = Waker::from(std::sync::Arc::new(Noop));
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return value;
        }
    }
}
