//! A thread's spans leave in the order they ended, whichever path each took
//! (a status set sends a span down the general path, a plain span down the
//! usual one): a trace's root, ended last, is never shipped, and its status
//! `PATCH`ed, before children that ended before it. Its own binary, because
//! it installs the global client.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use vigil_std::sink::{MemoryStore, MemoryTransport};
use vigil_std::{
    transport::{Outcome, Request, RequestKind},
    Config, SpanKind, SpanStatus, Transport,
};

/// Holds the first request until opened, then passes everything on.
#[derive(Clone)]
struct Gate {
    open: Arc<(Mutex<bool>, Condvar)>,
    inner: MemoryTransport,
}

impl Transport for Gate {
    fn send(&mut self, r: &Request<'_>) -> Outcome {
        let (open, opened) = &*self.open;
        let mut is_open = open.lock().unwrap();
        while !*is_open {
            is_open = opened.wait(is_open).unwrap();
        }
        drop(is_open);
        self.inner.send(r)
    }
}

fn init() -> (Arc<(Mutex<bool>, Condvar)>, MemoryStore) {
    let (inner, store) = MemoryTransport::new();
    let gate = Gate {
        open: Arc::default(),
        inner,
    };
    let open = gate.open.clone();
    vigil_std::init(
        Config::builder()
            .transport(move || gate.clone())
            .batch_size(3)
            .build()
            .unwrap(),
    )
    .unwrap();
    (open, store)
}

#[test]
fn a_root_with_its_status_set_leaves_after_the_children_that_ended_first() {
    let (open, store) = init();
    // The exporter takes this trace and waits at the gate with it.
    vigil_std::trace("first", |_| ());
    std::thread::sleep(Duration::from_millis(200));
    // Meanwhile a whole trace is queued: nine plain children, then a root
    // whose status was set.
    vigil_std::trace("second", |root| {
        for _ in 0..9 {
            vigil_std::span("child", SpanKind::Tool, |_| ());
        }
        root.set_status(SpanStatus::Error);
    });
    *open.0.lock().unwrap() = true;
    open.1.notify_all();
    assert!(vigil_std::flush(Duration::from_secs(30)));

    let requests = store.requests();
    let second = store.captured().trace("second").unwrap().trace_id.clone();
    let of_second: Vec<(usize, RequestKind)> = requests
        .iter()
        .enumerate()
        .filter(|(_, r)| r.trace_id == second)
        .map(|(i, r)| (i, r.kind))
        .collect();
    let patch = of_second
        .iter()
        .find(|(_, kind)| *kind == RequestKind::Patch)
        .map(|(i, _)| *i)
        .expect("the trace's status is sent");
    let ingests: Vec<usize> = of_second
        .iter()
        .filter(|(_, kind)| *kind == RequestKind::Ingest)
        .map(|(i, _)| *i)
        .collect();
    assert!(ingests.len() > 1, "the trace took several batches");
    assert!(
        ingests.iter().all(|i| *i < patch),
        "every span of the trace is sent before its status: {of_second:?}"
    );
    assert_eq!(store.captured().trace("second").unwrap().spans.len(), 10);
    assert_eq!(
        store.captured().trace("second").unwrap().status.as_deref(),
        Some("error")
    );
}
