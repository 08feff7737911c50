//! Functions under `#[span]` with a static or default name (a method's
//! `Type::method` too), sync or async, allocate nothing per call on the
//! application thread once it has warmed up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use vigil_std::Config;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on unchanged to the system allocator, which
// upholds `GlobalAlloc`'s contract; counting touches no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: the caller's `layout`, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: `ptr` came from `System`, with `layout`, as the caller promises.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

struct Agent;

impl Agent {
    #[vigil_std::span(kind = "tool")]
    fn step(&self, n: u32) -> u32 {
        n + 1
    }

    #[vigil_std::span(kind = "llm")]
    async fn ask(&self, n: u32) -> u32 {
        n * 2
    }
}

#[vigil_std::span("static-name")]
fn named(n: u32) -> u32 {
    n
}

#[vigil_std::span]
async fn free_async(n: u32) -> u32 {
    Agent.ask(n).await
}

/// Polls `future` to completion with `waker`.
fn run<F: Future>(future: F, waker: &Waker) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(waker);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn instrumented_calls_make_no_heap_allocation() {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let config = Config::builder()
        .transport(vigil_std::sink::NullTransport::default)
        .max_queue_size(100_000)
        .build()
        .unwrap();
    let client = vigil_std::init(config).unwrap();
    let trace = vigil_std::start_trace("warm-up");
    let calls = |waker: &Waker| {
        let mut sum = Agent.step(1) + named(2);
        sum += run(Agent.ask(3), waker);
        sum += run(free_async(4), waker);
        sum
    };
    for _ in 0..10 {
        calls(&waker);
    }
    let before = allocations();
    for _ in 0..250 {
        assert_eq!(calls(&waker), 2 + 2 + 6 + 8);
    }
    let made = allocations() - before;
    drop(trace);
    let report = client.shutdown();
    assert_eq!(made, 0, "allocations for 1000 calls");
    assert_eq!(report.stats.spans_started, 1 + 10 * 5 + 250 * 5);
}
