//! The `reqwest-middleware` entry point.

use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use crate::record;

/// Records model calls made through a
/// [`reqwest_middleware::ClientWithMiddleware`]; see the crate docs.
///
/// ```no_run
/// use vigil_reqwest::LlmMiddleware;
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(LlmMiddleware::default())
///     .build();
/// ```
///
/// Put it after middleware that retries (`reqwest-retry`), so that each
/// attempt is its own span with its own outcome, or before it for one span
/// per call.
#[derive(Clone, Copy, Debug, Default)]
pub struct LlmMiddleware {
    _private: (),
}

#[async_trait::async_trait]
impl Middleware for LlmMiddleware {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        match record::start(&request) {
            None => next.run(request, extensions).await,
            Some(call) => record::respond(call, next.run(request, extensions).await),
        }
    }
}
