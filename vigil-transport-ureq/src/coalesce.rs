//! A request's head and body in one write.
//!
//! ureq hands a request's head to the connection in one write and its body
//! in the next. Over loopback, or to a server on the same host, each write
//! wakes the server's reader: two wake-ups (and, on a virtual machine, two
//! costly context switches) for what the server reads as one request. The
//! last connector of the chain holds a small write back, and has ureq
//! format what follows it right behind it in the same buffer, so the head
//! and the start of the body leave in one write. Whatever is held goes out
//! before the connection waits for an answer, so nothing is ever left
//! unsent.

use std::fmt;

use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};
use ureq::Error;

/// The connector that makes [`Coalescing`] connections; last in the chain.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Coalesce;

impl<In: Transport> Connector<In> for Coalesce {
    type Out = Coalescing<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        Ok(chained.map(Coalescing::new))
    }
}

/// A connection that sends a small write together with the next one.
pub(crate) struct Coalescing<T> {
    inner: T,
    /// Bytes written and not sent yet: they go out in front of the next
    /// write, or before the connection waits for input.
    held: Vec<u8>,
    /// Where the part of a write that no longer fits behind what was held
    /// is kept (so neither buffer is allocated again).
    spare: Vec<u8>,
}

/// The largest write held back: a request head is a few hundred bytes.
const MAX_HELD: usize = 4096;

impl<T> fmt::Debug for Coalescing<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalescing")
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Coalescing<T> {
    fn new(inner: T) -> Self {
        Coalescing {
            inner,
            held: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Sends what is held.
    fn release(&mut self, timeout: NextTimeout) -> Result<(), Error> {
        let held = self.held.len();
        if held == 0 {
            return Ok(());
        }
        self.inner.buffers().output()[..held].copy_from_slice(&self.held);
        self.held.clear();
        self.inner.transmit_output(held, timeout)
    }
}

impl<T: Transport> Transport for Coalescing<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let out = self.inner.buffers().output();
        let amount = amount.min(out.len());
        if self.held.is_empty() {
            if amount == 0 || amount > MAX_HELD.min(out.len() / 2) {
                return self.inner.transmit_output(amount, timeout);
            }
            self.held.extend_from_slice(&out[..amount]);
            return Ok(());
        }
        // What was held, then this write, as far as the buffer holds them;
        // the rest of this write is held in turn.
        let held = self.held.len();
        let sent = (held + amount).min(out.len());
        let fits = sent - held;
        self.spare.clear();
        self.spare.extend_from_slice(&out[fits..amount]);
        out.copy_within(..fits, held);
        out[..held].copy_from_slice(&self.held);
        std::mem::swap(&mut self.held, &mut self.spare);
        self.inner.transmit_output(sent, timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        // Before looking at the input at all: an answer is only awaited once
        // the whole request is out.
        self.release(timeout)?;
        self.inner.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.release(timeout)?;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use ureq::unversioned::transport::LazyBuffers;

    use super::*;

    /// A connection that records each write it is asked to send.
    #[derive(Debug)]
    struct Recorder {
        buffers: LazyBuffers,
        sent: Vec<Vec<u8>>,
    }

    impl Transport for Recorder {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }
        fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), Error> {
            self.sent.push(self.buffers.output()[..amount].to_vec());
            Ok(())
        }
        fn await_input(&mut self, _: NextTimeout) -> Result<bool, Error> {
            Ok(false)
        }
        fn is_open(&mut self) -> bool {
            true
        }
    }

    fn connection(output: usize) -> Coalescing<Recorder> {
        let inner = Recorder {
            buffers: LazyBuffers::new(64, output),
            sent: Vec::new(),
        };
        Coalescing::new(inner)
    }

    /// Writes `bytes` the way ureq does: into the output buffer, then sent.
    fn write(c: &mut Coalescing<Recorder>, bytes: &[u8]) {
        c.buffers().output()[..bytes.len()].copy_from_slice(bytes);
        c.transmit_output(bytes.len(), NextTimeout::default())
            .unwrap();
    }

    fn sent(c: &Coalescing<Recorder>) -> &[Vec<u8>] {
        &c.inner.sent
    }

    #[test]
    fn a_head_and_its_body_leave_in_one_write() {
        let mut c = connection(1024);
        write(&mut c, b"POST / HTTP/1.1\r\n\r\n");
        assert!(sent(&c).is_empty(), "the head waits for its body");
        write(&mut c, b"{\"spans\":[]}");
        assert_eq!(
            sent(&c),
            [b"POST / HTTP/1.1\r\n\r\n{\"spans\":[]}".to_vec()]
        );
        // The next request starts afresh.
        write(&mut c, b"PATCH");
        write(&mut c, b"{}");
        assert_eq!(sent(&c)[1], b"PATCH{}");
    }

    #[test]
    fn what_is_held_goes_out_before_an_answer_is_awaited() {
        let mut c = connection(1024);
        write(&mut c, b"GET /v1/traces/1 HTTP/1.1\r\n\r\n");
        c.maybe_await_input(NextTimeout::default()).unwrap();
        assert_eq!(sent(&c), [b"GET /v1/traces/1 HTTP/1.1\r\n\r\n".to_vec()]);
        write(&mut c, b"GET /health HTTP/1.1\r\n\r\n");
        c.await_input(NextTimeout::default()).unwrap();
        assert_eq!(sent(&c)[1], b"GET /health HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn a_body_that_fills_the_buffer_is_sent_whole_and_in_order() {
        let mut c = connection(16);
        write(&mut c, b"head:");
        // Two writes that fill the buffer: each goes out behind what was
        // held, and what no longer fits is held in turn.
        write(&mut c, b"0123456789abcdef");
        write(&mut c, b"ghijklmnopqrstuv");
        c.await_input(NextTimeout::default()).unwrap();
        let all: Vec<u8> = sent(&c).concat();
        assert_eq!(all, b"head:0123456789abcdefghijklmnopqrstuv");
        assert!(sent(&c).iter().all(|w| w.len() <= 16));
        assert_eq!(sent(&c).len(), 3);
    }

    #[test]
    fn a_large_first_write_is_not_held() {
        let mut c = connection(16);
        write(&mut c, b"0123456789");
        assert_eq!(sent(&c), [b"0123456789".to_vec()]);
    }
}
