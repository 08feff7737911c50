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
