//! A span with a `&'static str` name and no payload allocates nothing on the
//! application thread (once the thread's span stack has grown).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use vigil_std::{Config, SpanKind};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn a_static_span_without_payload_makes_no_heap_allocation() {
    let config = Config::builder()
        .transport(vigil_std::sink::NullTransport::default)
        .max_queue_size(100_000)
        .build()
        .unwrap();
    let client = vigil_std::init(config).unwrap();
    let trace = vigil_std::start_trace("warm-up");
    for _ in 0..10 {
        let _s = vigil_std::start_span("warm", SpanKind::Tool);
    }
    let before = allocations();
    for _ in 0..1000 {
        let _s = vigil_std::start_span("static-name", SpanKind::Tool);
    }
    let made = allocations() - before;
    drop(trace);
    client.shutdown();
    assert_eq!(made, 0, "allocations for 1000 spans");
}

/// Spans with metadata and input reuse the buffers of spans already shipped:
/// in a steady stream, none of them allocates on the application thread.
#[test]
fn payload_buffers_are_recycled_once_spans_have_shipped() {
    // The exporter runs only when flushed, so what the first spans allocate
    // is all back in circulation before the measured ones start.
    let config = Config::builder()
        .transport(vigil_std::sink::NullTransport::default)
        .max_queue_size(100_000)
        .batch_size(1000)
        .flush_interval_ms(60_000)
        .build()
        .unwrap();
    let client = vigil_std::Client::new(config).unwrap();
    let prompt = "p".repeat(150);
    let span = |i: u64| {
        let s = vigil_std::start_span("call", SpanKind::Llm);
        s.set_metadata("user_id", &i);
        s.set_metadata("session", "abc-123");
        s.set_input(&[("prompt", prompt.as_str())]);
    };
    let measured = client.scope(|| {
        let _trace = vigil_std::start_trace("stream");
        let before = allocations();
        (0..200).for_each(span);
        let first = allocations() - before;
        assert!(client.flush(std::time::Duration::from_secs(10)));
        let before = allocations();
        (0..100).for_each(span);
        (first, allocations() - before)
    });
    client.shutdown();
    let (first, steady) = measured;
    assert!(first >= 200, "the first spans allocate ({first})");
    assert_eq!(
        steady, 0,
        "allocations for 100 spans after the first shipped"
    );
}
