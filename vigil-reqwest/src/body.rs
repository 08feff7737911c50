//! A response body that passes every frame through unchanged while its call
//! reads along.

use std::fmt::Display;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use vigil_std::integrations::LlmCall;

pin_project! {
    /// The body of a recorded call's response. The call ends when the body
    /// ends or breaks; dropped before that, the call ends with what came
    /// (its own `Drop`).
    pub(crate) struct Tap<B> {
        #[pin]
        inner: B,
        call: Option<LlmCall>,
        status: u16,
    }
}

impl<B> Tap<B> {
    pub(crate) fn new(inner: B, call: LlmCall, status: u16) -> Self {
        Tap {
            inner,
            call: Some(call),
            status,
        }
    }
}

impl<B> Body for Tap<B>
where
    B: Body<Data = Bytes>,
    B::Error: Display,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(call), Some(data)) = (this.call.as_mut(), frame.data_ref()) {
                    call.feed(data);
                }
                // A reader may stop at the end of the data without polling
                // for `None` (hyper's body knows it from `Content-Length`).
                if this.inner.is_end_stream() {
                    if let Some(call) = this.call.take() {
                        call.finish_response(*this.status);
                    }
                }
            }
            Some(Err(error)) => {
                if let Some(call) = this.call.take() {
                    call.fail_response(&error.to_string());
                }
            }
            None => {
                if let Some(call) = this.call.take() {
                    call.finish_response(*this.status);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
