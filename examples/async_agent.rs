//! An async agent traced with `#[vigil::trace]` and `#[vigil::span]`, run by
//! a minimal hand-written executor: no tokio, no async-std.
//!
//! ```text
//! cargo run --example async_agent
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use serde_json::json;

#[vigil::trace(name = "async-agent", kind = "agent", metadata = json!({"executor": "hand-written"}))]
async fn run_agent(question: String) -> Result<String, String> {
    let plan = think(&question).await?;
    // Fan out: both tools run concurrently in the same task, each in its own span.
    let (weather, calendar) = join(
        call_tool("weather", json!({"city": "Lisbon"})),
        call_tool("calendar", json!({"day": "tomorrow"})),
    )
    .await;
    vigil::log_event("tools-joined", &json!({"tools": 2}));
    answer(&plan, &weather?, &calendar?).await
}

#[vigil::span(kind = "llm", input, output)]
async fn think(question: &str) -> Result<String, String> {
    sleep(Duration::from_millis(5)).await;
    Ok(format!("check weather and calendar for: {question}"))
}

#[vigil::span(kind = "tool", input, output)]
async fn call_tool(tool: &str, args: serde_json::Value) -> Result<String, String> {
    sleep(Duration::from_millis(if tool == "weather" { 8 } else { 4 })).await;
    vigil::log_event("tool-finished", &json!({ "tool": tool, "args": args }));
    Ok(format!("{tool}: ok"))
}

#[vigil::span(kind = "llm", output)]
async fn answer(plan: &str, weather: &str, calendar: &str) -> Result<String, String> {
    sleep(Duration::from_millis(6)).await;
    Ok(format!("{plan} -> {weather}, {calendar}"))
}

fn main() {
    let client = vigil::init_from_env().unwrap_or_else(|e| {
        eprintln!("vigil: {e}");
        std::process::exit(2);
    });
    let answer = block_on(run_agent("Should I go to the beach tomorrow?".into()));
    println!("answer: {answer:?}\n");
    println!("{}", client.shutdown());
}

// ---- a minimal executor: enough to show the spans need no runtime ----

/// Polls `future` on this thread until it completes, parking between wake-ups.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park_timeout(Duration::from_millis(1)),
        }
    }
}

/// A timer future that wakes its task from a helper thread.
fn sleep(d: Duration) -> Sleep {
    Sleep {
        until: Instant::now() + d,
        armed: false,
    }
}

struct Sleep {
    until: Instant,
    armed: bool,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        if now >= self.until {
            return Poll::Ready(());
        }
        if !self.armed {
            self.armed = true;
            let (waker, wait) = (cx.waker().clone(), self.until - now);
            std::thread::spawn(move || {
                std::thread::sleep(wait);
                waker.wake();
            });
        }
        Poll::Pending
    }
}

/// Runs two futures concurrently and returns both outputs.
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (Box::pin(a), Box::pin(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(move |cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready((ra.take().unwrap(), rb.take().unwrap()))
        } else {
            Poll::Pending
        }
    })
    .await
}
