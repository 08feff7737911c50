//! `cargo bench --manifest-path vigil-bench/Cargo.toml --bench allocations`
//!
//! Heap allocations per span on the application thread, for each contender
//! and shape (a counting global allocator; 10,000 spans after a warm-up).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;

struct Counting;
thread_local! { static COUNT: Cell<u64> = const { Cell::new(0) }; }

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn per_span(mut f: impl FnMut()) -> f64 {
    for _ in 0..100 {
        f();
    }
    let before = COUNT.with(Cell::get);
    for _ in 0..10_000 {
        f();
    }
    (COUNT.with(Cell::get) - before) as f64 / 10_000.0
}

fn main() {
    let vigil = vigil_client();
    let otel = otel();
    println!("heap allocations per span on the application thread");
    println!(
        "{:<16} {:>12} {:>14} {:>14} {:>10}",
        "shape", "vigil guard", "vigil #[span]", "otel sdk", "tracing"
    );
    for shape in [Shape::Bare, Shape::FourAttributes, Shape::KibPayloads] {
        let v = {
            let _t = vigil::start_trace("trace");
            per_span(|| vigil_span(shape))
        };
        let m = {
            let _t = vigil::start_trace("trace");
            per_span(vigil_macro_span)
        };
        let parent = otel_parent(&otel.tracer);
        let o = per_span(|| otel_span(&otel.tracer, &parent, shape));
        let t = per_span(|| tracing_span(shape));
        let m = if matches!(shape, Shape::Bare) {
            format!("{m:.2}")
        } else {
            "-".into()
        };
        println!(
            "{:<16} {v:>12.2} {m:>14} {o:>14.2} {t:>10.2}",
            format!("{shape:?}")
        );
        vigil::flush(std::time::Duration::from_secs(10));
        let _ = otel.provider.force_flush();
        otel.exporter.reset();
    }
    vigil.shutdown();
}
