//! What every entry point shares: deciding whether a request is a model
//! call, and handing the response back with its body tapped.

use std::fmt::Display;

use vigil_std::integrations::LlmCall;
use vigil_std::llm::keys;

use crate::body::Tap;

/// Starts recording `request` if it is a model call; `None`, after a method
/// and path check, for everything else.
pub(crate) fn start(request: &reqwest::Request) -> Option<LlmCall> {
    let url = request.url();
    // A body given as a stream cannot be read without taking it from the
    // request: such a call is recorded without its input.
    let body = request.body().and_then(reqwest::Body::as_bytes);
    let mut call =
        LlmCall::for_request(request.method().as_str(), url.path(), body.unwrap_or(&[]))?;
    if let Some(host) = url.host_str() {
        call.set_metadata(keys::SERVER_ADDRESS, host);
    }
    Some(call)
}

/// Ends `call` with the outcome of sending its request: an error ends it
/// failed; a response goes back to the application with its body tapped,
/// and the call ends when that body has been read.
pub(crate) fn respond<E: Display>(
    call: LlmCall,
    outcome: Result<reqwest::Response, E>,
) -> Result<reqwest::Response, E> {
    match outcome {
        Ok(response) => Ok(tap(call, response)),
        Err(error) => {
            call.fail(&error.to_string());
            Err(error)
        }
    }
}

fn tap(mut call: LlmCall, response: reqwest::Response) -> reqwest::Response {
    let status = response.status();
    let event_stream = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if status.is_success() && event_stream {
        // A stream the request did not ask for is recorded all the same.
        call.expect_stream();
    }
    // `reqwest` keeps the URL outside the `http` response: carry it over.
    let url = response.url().clone();
    let (mut parts, body) = http::Response::from(response).into_parts();
    if let Ok(with_url) = reqwest::ResponseBuilderExt::url(http::Response::builder(), url).body(())
    {
        parts.extensions.extend(with_url.into_parts().0.extensions);
    }
    let body = reqwest::Body::wrap(Tap::new(body, call, status.as_u16()));
    reqwest::Response::from(http::Response::from_parts(parts, body))
}
