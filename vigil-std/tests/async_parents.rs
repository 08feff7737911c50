//! The span of an `async fn` under `#[span]` is a child of the span current
//! where the function is called, wherever and whenever the future is first
//! polled (a tokio worker, a blocking thread, another executor); its time
//! starts at that first poll.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

mod common;

use common::{block_on, YieldOnce};
use vigil_std::sink::{capture, Captured, CapturedSpan};

#[vigil_std::span(kind = "tool", input)]
async fn child(label: &'static str) -> &'static str {
    YieldOnce(false).await;
    vigil_std::log_event("polled", &());
    label
}

/// The span named `name`, which must exist.
fn span<'c>(c: &'c Captured, name: &str) -> &'c CapturedSpan {
    c.span(name)
        .unwrap_or_else(|| panic!("no span {name:?}: {:?}", names(c)))
}

fn names(c: &Captured) -> Vec<&str> {
    c.spans().map(|s| s.name.as_str()).collect()
}

/// `child`'s span is a child of `parent`'s, in its trace.
fn assert_child_of(c: &Captured, parent: &str) {
    let parent = span(c, parent);
    let child = span(c, "async_parents::child");
    assert_eq!(child.parent_span_id.as_ref(), Some(&parent.span_id));
    assert_eq!(child.trace_id, parent.trace_id);
    assert_eq!(child.kind, "tool");
    assert_eq!(child.events[0]["name"], "polled", "current while polled");
    assert_eq!(c.traces.len(), 1, "no trace of its own: {:?}", names(c));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

#[test]
fn spawned_on_tokio_from_a_sync_span() {
    let rt = runtime();
    let c = capture(|| {
        vigil_std::trace("root", |_| {
            let task = rt.spawn(child("spawned"));
            assert_eq!(rt.block_on(task).unwrap(), "spawned");
        })
    });
    assert_child_of(&c, "root");
}

#[vigil_std::trace("async-root")]
async fn spawns() -> &'static str {
    tokio::spawn(child("spawned")).await.unwrap()
}

#[test]
fn spawned_on_tokio_from_an_async_span() {
    let rt = runtime();
    let c = capture(|| assert_eq!(rt.block_on(spawns()), "spawned"));
    assert_child_of(&c, "async-root");
}

#[vigil_std::trace("blocking-root")]
async fn blocks() -> &'static str {
    let future = child("blocking");
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(future))
        .await
        .unwrap()
}

#[test]
fn run_by_block_on_in_spawn_blocking() {
    let rt = runtime();
    let c = capture(|| assert_eq!(rt.block_on(blocks()), "blocking"));
    assert_child_of(&c, "blocking-root");
}

/// An executor of its own on another thread: tasks are sent to it, and run
/// there until they complete.
struct Executor {
    tasks: mpsc::Sender<Task>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Executor {
    fn new() -> Executor {
        let (tasks, queue) = mpsc::channel::<Task>();
        let thread = std::thread::spawn(move || {
            struct Wakeup(Mutex<bool>);
            impl Wake for Wakeup {
                fn wake(self: Arc<Self>) {
                    *self.0.lock().unwrap() = true;
                }
            }
            let mut ready: VecDeque<Task> = VecDeque::new();
            loop {
                if ready.is_empty() {
                    match queue.recv() {
                        Ok(task) => ready.push_back(task),
                        Err(_) => return,
                    }
                }
                let mut task = ready.pop_front().unwrap();
                let wakeup = Arc::new(Wakeup(Mutex::new(false)));
                let waker = Waker::from(wakeup.clone());
                if task
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending()
                {
                    assert!(*wakeup.0.lock().unwrap(), "the tasks here wake themselves");
                    ready.push_back(task);
                }
            }
        });
        Executor {
            tasks,
            thread: Some(thread),
        }
    }

    fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> mpsc::Receiver<T> {
        let (done, result) = mpsc::channel();
        let task = async move {
            let _ = done.send(future.await);
        };
        self.tasks.send(Box::pin(task)).unwrap();
        result
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel();
        self.tasks = closed;
        let _ = self.thread.take().unwrap().join();
    }
}

#[test]
fn run_by_a_hand_written_executor_on_another_thread() {
    let executor = Executor::new();
    let c = capture(|| {
        vigil_std::trace("root", |_| {
            let result = executor.spawn(child("executor"));
            assert_eq!(result.recv().unwrap(), "executor");
        })
    });
    assert_child_of(&c, "root");
}

#[test]
fn moved_to_another_thread_before_its_first_poll() {
    let c = capture(|| {
        vigil_std::trace("root", |_| {
            let future = child("moved");
            let thread = std::thread::spawn(move || block_on(future));
            assert_eq!(thread.join().unwrap(), "moved");
        })
    });
    assert_child_of(&c, "root");
}

#[test]
fn polled_under_another_span_it_stays_a_child_of_its_callers() {
    let c = capture(|| {
        vigil_std::trace("root", |_| {
            let future = child("elsewhere");
            vigil_std::span("poller", vigil_std::SpanKind::Custom, |_| {
                assert_eq!(block_on(future), "elsewhere");
            });
        })
    });
    assert_child_of(&c, "root");
    assert_eq!(
        span(&c, "poller").parent_span_id.as_ref(),
        Some(&span(&c, "root").span_id)
    );
}

#[test]
fn its_time_starts_at_the_first_poll() {
    let c = capture(|| {
        vigil_std::trace("root", |_| {
            let future = child("later");
            vigil_std::span("waiting", vigil_std::SpanKind::Custom, |_| {
                std::thread::sleep(Duration::from_millis(20));
            });
            block_on(future);
        })
    });
    assert_child_of(&c, "root");
    let waited = span(&c, "waiting").end_time.clone().unwrap();
    assert!(span(&c, "async_parents::child").start_time >= waited);
}

#[test]
fn made_outside_any_span_it_is_a_child_of_the_span_that_polls_it() {
    let c = capture(|| {
        let future = child("unparented");
        vigil_std::trace("root", |_| assert_eq!(block_on(future), "unparented"));
    });
    assert_child_of(&c, "root");
}

#[vigil_std::trace("spawned-trace", input)]
async fn spawned_trace(n: u32) -> u32 {
    YieldOnce(false).await;
    n
}

#[test]
fn a_trace_spawned_on_tokio_goes_to_the_client_current_at_the_call() {
    let rt = runtime();
    let c = capture(|| {
        vigil_std::trace("root", |_| {
            let task = rt.spawn(spawned_trace(4));
            assert_eq!(rt.block_on(task).unwrap(), 4);
        })
    });
    assert_eq!(c.traces.len(), 2, "{:?}", names(&c));
    let trace = span(&c, "spawned-trace");
    assert_eq!(trace.parent_span_id, None, "a trace of its own");
    assert_eq!(trace.input["n"], 4);
}
