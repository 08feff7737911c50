//! `cargo bench --manifest-path vigil-bench/Cargo.toml --bench tracing_allocs`
//!
//! Heap allocations per `tracing` span on the application thread (a counting
//! global allocator; 10,000 spans after a warm-up, each entered and dropped
//! inside an outer span), through `tracing_subscriber`'s registry alone, the
//! registry with Vigil's layer, and the registry with tracing-opentelemetry's
//! layer (set up as in the peers bench).
//!
//! With `TRACE_ALLOCS=1`, it also prints a backtrace of every allocation
//! made by one span of each after the warm-up (build with debug info, as the
//! bench profile does, for file and line numbers).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use common::*;
use tracing::Dispatch;

struct Counting;
thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
    /// Print a backtrace of each allocation.
    static TRACE: Cell<bool> = const { Cell::new(false) };
    /// Inside the allocator's own backtrace printing: neither counted nor
    /// traced.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

fn counted(size: usize) {
    let hooked = IN_HOOK.try_with(Cell::get).unwrap_or(true);
    if hooked {
        return;
    }
    let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    if TRACE.try_with(Cell::get).unwrap_or(false) {
        IN_HOOK.set(true);
        let n = COUNT.with(Cell::get);
        eprintln!(
            "--- allocation {n}, {size} bytes:\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        IN_HOOK.set(false);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold for this allocator; the counting
// beside it (and the backtrace `TRACE_ALLOCS` prints, under a re-entry
// guard) never touches the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        counted(l.size());
        // SAFETY: the caller's contract for `alloc`, passed on as is.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from this allocator, that is from `System`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        counted(n);
        // SAFETY: `p` came from `System` with layout `l`, as the caller vouches.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const SPANS: u64 = 10_000;

fn bare() {
    let span = tracing::info_span!("bare");
    let _entered = span.enter();
    std::hint::black_box(&_entered);
}

/// Allocations per call of `span` through `dispatch`, inside an outer span,
/// after a warm-up; with `trace`, one more call with each allocation's
/// backtrace printed.
fn per_span(dispatch: &Dispatch, span: fn(), trace: bool) -> f64 {
    tracing::dispatcher::with_default(dispatch, || {
        let outer = tracing::info_span!("trace");
        let _outer = outer.enter();
        for _ in 0..1_000 {
            span();
        }
        let before = COUNT.with(Cell::get);
        for _ in 0..SPANS {
            span();
        }
        let per = (COUNT.with(Cell::get) - before) as f64 / SPANS as f64;
        if trace {
            TRACE.set(true);
            span();
            TRACE.set(false);
        }
        per
    })
}

fn main() {
    let trace = std::env::var_os("TRACE_ALLOCS").is_some_and(|v| v == "1");
    let vigil = vigil_client();
    let otel = otel();
    let subscribers = [
        ("registry (floor)", registry_dispatch()),
        ("registry + vigil layer", vigil_layer_dispatch()),
        (
            "registry + tracing-opentelemetry",
            otel_layer_dispatch(otel.tracer.clone()),
        ),
    ];
    let shapes: [(&str, fn()); 2] = [
        ("info_span!(\"bare\")", bare),
        ("2 fields", tracing_two_fields),
    ];
    println!("heap allocations per tracing span on the application thread");
    print!("{:<34}", "subscriber");
    for (shape, _) in &shapes {
        print!(" {shape:>20}");
    }
    println!();
    let queued_before = vigil.stats().spans_queued;
    for (name, dispatch) in &subscribers {
        print!("{name:<34}");
        for (shape, span) in &shapes {
            if trace {
                eprintln!("=== {name}, {shape}");
            }
            let per = per_span(dispatch, *span, trace);
            print!(" {per:>20.3}");
            vigil::flush(Duration::from_secs(10));
            let _ = otel.provider.force_flush();
            otel.exporter.reset();
        }
        println!();
    }
    // Every span through the vigil layer, and its outer spans, must be
    // queued: a layer with no client records (and allocates) nothing.
    let per_shape = 1_000 + SPANS + u64::from(trace) + 1;
    let expected = per_shape * shapes.len() as u64;
    let queued = vigil.stats().spans_queued - queued_before;
    println!("vigil layer: {expected} spans made, {queued} queued");
    if queued != expected {
        println!("WARNING: the vigil layer did not queue every span");
    }
    drop(subscribers);
    vigil.shutdown();
    let _ = otel.provider.shutdown();
}
