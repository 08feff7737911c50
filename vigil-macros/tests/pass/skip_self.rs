//! `skip(self)` is accepted (the receiver is never recorded), and `skip_all`
//! records no argument.

use serde_json::json;
use vigil_std::sink::capture;

struct Agent {
    name: String,
}

impl Agent {
    #[vigil_std::span(name = "step", input, skip(self))]
    fn step(&self, goal: &str) -> usize {
        self.name.len() + goal.len()
    }

    #[vigil_std::span(name = "plan", input, skip(self, secret))]
    fn plan(&mut self, goal: &str, secret: &str) -> usize {
        self.name.push_str(secret);
        goal.len()
    }

    #[vigil_std::span(name = "finish", input, skip(self))]
    async fn finish(self, answer: u32) -> u32 {
        answer
    }
}

#[vigil_std::span(name = "login", input, skip_all)]
fn login(user: &str, password: &str) -> bool {
    user != password
}

#[vigil_std::span(name = "quiet", skip_all)]
fn quiet(user: &str) -> usize {
    user.len()
}

fn main() {
    let c = capture(|| {
        vigil_std::trace("t", |_| {
            let mut agent = Agent { name: "a".into() };
            assert_eq!(agent.step("go"), 3);
            assert_eq!(agent.plan("go", "s"), 2);
            assert_eq!(block_on(agent.finish(7)), 7);
            assert!(login("ann", "hunter2"));
            assert_eq!(quiet("ann"), 3);
        })
    });
    assert_eq!(c.span("step").unwrap().input, json!({"goal": "go"}));
    assert_eq!(c.span("plan").unwrap().input, json!({"goal": "go"}));
    assert_eq!(c.span("finish").unwrap().input, json!({"answer": 7}));
    assert_eq!(c.span("login").unwrap().input, json!({}), "no argument");
    assert_eq!(c.span("quiet").unwrap().input, json!(null), "no `input`");
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
