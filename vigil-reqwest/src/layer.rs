//! The Tower entry point: services over `reqwest::Request` (a
//! `reqwest::Client` is one) and, with the `async-openai` feature,
//! `async-openai`'s stack.

use std::fmt::{self, Display};
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use vigil_std::integrations::LlmCall;

use crate::record;

/// A Tower layer that records the model calls of the service it wraps; see
/// the crate docs.
///
/// Over a `reqwest::Client` (or any `Service<reqwest::Request>`):
///
/// ```no_run
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # async fn run() -> Result<(), reqwest::Error> {
/// let mut client = ServiceBuilder::new()
///     .layer(vigil_reqwest::LlmLayer::default())
///     .service(reqwest::Client::new());
/// let request = reqwest::Client::new()
///     .post("https://api.openai.com/v1/chat/completions")
///     .bearer_auth("sk-...")
///     .body(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#)
///     .build()?;
/// let response = client.ready().await?.call(request).await?;
/// # Ok(()) }
/// ```
///
/// For `async-openai` (feature `async-openai`), innermost, so that each
/// attempt of its retry layer is a span of its own, or outermost for one
/// span per call:
///
#[cfg_attr(feature = "async-openai", doc = "```no_run")]
#[cfg_attr(not(feature = "async-openai"), doc = "```text")]
/// use async_openai::middleware::ReqwestService;
///
/// let service = tower::ServiceBuilder::new()
///     .layer(vigil_reqwest::LlmLayer::default())
///     .service(ReqwestService::new(reqwest::Client::new()));
/// let client = async_openai::Client::new().with_http_service(service);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct LlmLayer {
    _private: (),
}

impl<S> Layer<S> for LlmLayer {
    type Service = LlmService<S>;

    fn layer(&self, inner: S) -> LlmService<S> {
        LlmService { inner }
    }
}

/// The service [`LlmLayer`] makes: `S`, with its model calls recorded.
#[derive(Clone, Debug)]
pub struct LlmService<S> {
    inner: S,
}

impl<S> Service<reqwest::Request> for LlmService<S>
where
    S: Service<reqwest::Request, Response = reqwest::Response>,
    S::Error: Display,
{
    type Response = reqwest::Response;
    type Error = S::Error;
    type Future = Recorded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: reqwest::Request) -> Recorded<S::Future> {
        // Started here, where the caller's span is current.
        let call = record::start(&request);
        Recorded {
            inner: self.inner.call(request),
            call,
        }
    }
}

pin_project! {
    /// The future of [`LlmService`]'s response: the inner service's, with
    /// the call recorded when it completes (and ended as cancelled if it is
    /// dropped before that).
    pub struct Recorded<F> {
        #[pin]
        inner: F,
        call: Option<LlmCall>,
    }
}

impl<F> fmt::Debug for Recorded<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorded")
            .field("recording", &self.call.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, E> Future for Recorded<F>
where
    F: Future<Output = Result<reqwest::Response, E>>,
    E: Display,
{
    type Output = Result<reqwest::Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = ready!(this.inner.poll(cx));
        Poll::Ready(match this.call.take() {
            Some(call) => record::respond(call, outcome),
            None => outcome,
        })
    }
}

#[cfg(feature = "async-openai")]
mod async_openai_stack {
    use std::fmt::Display;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use async_openai::middleware::HttpRequestFactory;
    use tower_service::Service;

    use super::LlmService;
    use crate::record;

    type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

    /// `async-openai` hands its stack a factory that builds the request:
    /// the layer builds it once to see it, and gives the inner service a
    /// factory whose first build returns that very request (and whose
    /// later builds, a retry's, build afresh).
    impl<S> Service<HttpRequestFactory> for LlmService<S>
    where
        S: Service<HttpRequestFactory, Response = reqwest::Response> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Display + Send + 'static,
    {
        type Response = reqwest::Response;
        type Error = S::Error;
        type Future = BoxFuture<Result<reqwest::Response, S::Error>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
            // The service made ready is the one to call; a clone takes its place.
            let ready = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, ready);
            let context = vigil_std::Context::current();
            Box::pin(async move {
                let request = match factory.build().await {
                    Ok(request) => request,
                    // The inner service builds it again and fails its own way.
                    Err(_) => return inner.call(factory).await,
                };
                let call = {
                    let _current = context.attach();
                    record::start(&request)
                };
                let first = Mutex::new(Some(request));
                let handed = Arc::new((first, factory));
                let replay = HttpRequestFactory::new(move || {
                    let handed = Arc::clone(&handed);
                    async move {
                        let first = handed.0.lock().ok().and_then(|mut f| f.take());
                        match first {
                            Some(request) => Ok(request),
                            None => handed.1.build().await,
                        }
                    }
                });
                let outcome = inner.call(replay).await;
                match call {
                    Some(call) => record::respond(call, outcome),
                    None => outcome,
                }
            })
        }
    }
}
