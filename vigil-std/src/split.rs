//! Two destinations from one queue: the queue's spans split into a buffer
//! per destination, each drained by an exporter of its own.
//!
//! Whichever exporter finds its buffer empty moves everything queued into
//! both buffers (a copy for the other), so neither waits for the other: an
//! exporter stuck in a request or paused by its backend leaves the other
//! free to drain the queue and send. A buffer holds at most
//! `max_queue_size` spans; past it, that destination drops the span and
//! counts it as `dropped_queue_full`, and the other still gets it.

use std::collections::VecDeque;

use vigil_core::{Counters, SpanSource};

use crate::sync::lock;
use crate::text::Text;
use crate::Record;

use super::client::Spans;

#[derive(Default)]
struct Buffer {
    spans: VecDeque<Record>,
    /// Spans put in the buffer, ever.
    pushed: usize,
    /// Spans taken by the exporter, ever.
    popped: usize,
    /// Spans the exporter is done with, ever.
    released: usize,
}

/// The two buffers and each destination's counters.
pub(crate) struct Split {
    buffers: std::sync::Mutex<[Buffer; 2]>,
    capacity: usize,
    counters: [Counters; 2],
}

impl Split {
    pub(crate) fn new(capacity: usize) -> Self {
        Split {
            buffers: Default::default(),
            capacity: capacity.max(1),
            counters: [Counters::new(), Counters::new()],
        }
    }

    /// Destination `side`'s view of the queue.
    pub(crate) fn side<'a>(&'a self, queue: &'a Spans, side: usize) -> Side<'a> {
        Side {
            split: self,
            queue,
            side,
        }
    }

    pub(crate) fn counters(&self, side: usize) -> &Counters {
        &self.counters[side]
    }

    /// Spans put in each buffer so far.
    pub(crate) fn pushed(&self) -> [usize; 2] {
        let b = lock(&self.buffers);
        [b[0].pushed, b[1].pushed]
    }

    /// Spans each exporter is done with so far.
    pub(crate) fn released(&self) -> [usize; 2] {
        let b = lock(&self.buffers);
        [b[0].released, b[1].released]
    }

    /// Spans waiting in `side`'s buffer.
    pub(crate) fn buffered(&self, side: usize) -> usize {
        lock(&self.buffers)[side].spans.len()
    }

    /// Drops what waits for `side`'s exporter, in its buffer and in the
    /// queue (the other still gets the queue's spans), counting each as
    /// dropped at shutdown; returns how many.
    pub(crate) fn discard(&self, queue: &Spans, side: usize) -> usize {
        let mut buffers = lock(&self.buffers);
        self.drain(queue, &mut buffers);
        let buffer = &mut buffers[side];
        let n = buffer.spans.len();
        buffer.spans.clear();
        buffer.pushed -= n;
        self.counters[side].count_dropped_at_shutdown(n);
        n
    }

    /// Moves everything queued into both buffers and frees its places.
    fn drain(&self, queue: &Spans, buffers: &mut [Buffer; 2]) {
        let mut moved = false;
        while let Some(span) = queue.pop() {
            moved = true;
            let [first, second] = &mut *buffers;
            if second.spans.len() < self.capacity {
                second.spans.push_back(span.clone());
                second.pushed += 1;
            } else {
                self.counters[1].count_dropped_queue_full(1);
            }
            if first.spans.len() < self.capacity {
                first.spans.push_back(span);
                first.pushed += 1;
            } else {
                self.counters[0].count_dropped_queue_full(1);
            }
        }
        if moved {
            queue.release();
        }
    }
}

/// One destination's source of spans: its buffer, refilled from the queue.
pub(crate) struct Side<'a> {
    split: &'a Split,
    queue: &'a Spans,
    side: usize,
}

impl SpanSource<Text> for Side<'_> {
    fn pop(&self) -> Option<Record> {
        let mut buffers = lock(&self.split.buffers);
        if buffers[self.side].spans.is_empty() {
            self.split.drain(self.queue, &mut buffers);
        }
        let buffer = &mut buffers[self.side];
        let span = buffer.spans.pop_front()?;
        buffer.popped += 1;
        Some(span)
    }

    fn release_except(&self, held: usize) {
        let mut buffers = lock(&self.split.buffers);
        let buffer = &mut buffers[self.side];
        buffer.released = buffer.popped.saturating_sub(held).max(buffer.released);
    }

    fn len(&self) -> usize {
        self.split.buffered(self.side) + self.queue.len()
    }

    fn is_full(&self) -> bool {
        self.queue.is_full() || self.split.buffered(self.side) >= self.split.capacity
    }

    fn counters(&self) -> &Counters {
        &self.split.counters[self.side]
    }
}
