//! Proof that `vigil-core` needs neither `std` nor an allocator.
//!
//! This crate is `#![no_std]`, has its own panic handler and no global
//! allocator, and is built as a static library with `panic = "abort"`: if
//! anything in `vigil-core`'s dependency tree linked `std`, the build would
//! fail with a duplicate `panic_impl` lang item; if anything needed `alloc`,
//! it would fail for want of a global allocator.
//!
//! [`vigil_nostd_proof`] runs the whole pipeline: a trace with spans carrying
//! input, output, metadata and events, the bounded queue, and the export state
//! machine sending into a transport that copies each request into a fixed
//! array. It returns the number of spans delivered (3) or 0 on failure.
#![no_std]

use core::cell::Cell;
use core::time::Duration;

use vigil_core::queue::{Queue, Slot};
use vigil_core::{
    Clock, ExportSettings, Exporter, IdGenerator, Outcome, SpanQueue, Poll, Request, SpanKind,
    SpanStatus, Timestamp, Trace, Transport,
};

type Text = heapless::String<256>;
type Record = vigil_core::Span<Text>;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// The precompiled `core` refers to an unwinding personality even though
/// this library aborts; linking it into a C program needs the symbol.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

/// A clock that advances 1 ms per reading.
struct FakeClock(Cell<u64>);

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        let t = self.0.get() + 1_000_000;
        self.0.set(t);
        Timestamp::from_unix_nanos(1_795_514_400_000_000_000 + t)
    }
}

/// Copies each request body into a fixed array, as a UART or a radio would.
struct ArrayTransport {
    sent: [u8; 8192],
    len: usize,
    requests: usize,
}

impl Transport for ArrayTransport {
    fn send(&mut self, request: &Request<'_>) -> Outcome {
        let end = self.len + request.body.len();
        match self.sent.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(request.body);
                self.len = end;
                self.requests += 1;
                Outcome::Delivered
            }
            None => Outcome::Rejected,
        }
    }
}

/// Runs a trace through the core; returns spans delivered (3 when all is well).
#[no_mangle]
pub extern "C" fn vigil_nostd_proof() -> u32 {
    let clock = FakeClock(Cell::new(0));
    let mut ids = IdGenerator::from_seed(0x5eed);
    let pipeline: SpanQueue<Text, [Slot<Record>; 16]> = SpanQueue::new(Queue::new());

    let mut trace: Trace<Text> =
        Trace::new(ids.trace_id(), ids.span_id(), "nostd-agent", clock.now());
    let _ = trace.root().set_metadata("device", "mcu-7");

    let mut llm = trace.child(ids.span_id(), "llm:tiny", SpanKind::Llm, clock.now());
    let _ = llm.set_input(&[("prompt", "hello")]);
    let _ = llm.set_output(&"hi there");
    let _ = llm.add_event("first-token", clock.now(), &[("ms", 12u32)]);
    let _ = llm.set_metadata("temperature", &0.5f32);
    llm.end(clock.now(), SpanStatus::Ok);

    let mut tool = trace.child(ids.span_id(), "tool:sensor", SpanKind::Tool, clock.now());
    let _ = tool.set_input(&[("channel", 3u8)]);
    let _ = tool.set_output(&f32::NAN); // not JSON: sent as {"value":null}
    tool.end(clock.now(), SpanStatus::Error);

    pipeline.submit(llm);
    pipeline.submit(tool);
    pipeline.submit(trace.end(clock.now(), SpanStatus::Ok));

    let mut exporter: Exporter<Text, heapless::Vec<Record, 16>> =
        Exporter::new(ExportSettings::default(), "embedded", 7);
    exporter.request_flush();
    let mut transport = ArrayTransport {
        sent: [0; 8192],
        len: 0,
        requests: 0,
    };
    let mut buf = [0u8; 4096];
    let mut now = Duration::ZERO;
    for _ in 0..16 {
        match exporter.poll(now, &pipeline, &mut transport, &mut buf) {
            Poll::Again => {}
            Poll::Wait(at) | Poll::Idle(at) => {
                if exporter.is_idle() && pipeline.is_empty() {
                    break;
                }
                now = at;
            }
        }
    }
    let stats = pipeline.snapshot();
    // One ingest request (the trace's three spans) and its PATCH.
    if transport.requests != 2 || !transport.sent[..transport.len].starts_with(b"{\"spans\":[") {
        return 0;
    }
    stats.spans_delivered as u32
}
