//! OpenAI-style embeddings calls (`POST .../embeddings`) as `retriever`
//! spans (the GenAI conventions' `embeddings` operation). The vectors are
//! not recorded: their count and dimensions are.

use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{json, Value};

use super::keys;

/// The span name of an embeddings call.
pub const SPAN_NAME: &str = "openai.embeddings";

/// The input of a request: the request itself (`model`, `input`,
/// `dimensions`...).
///
/// ```
/// use serde_json::json;
/// use vigil::llm::embeddings;
///
/// let request = json!({ "model": "text-embedding-3-small", "input": ["a", "b"] });
/// assert_eq!(embeddings::input(&request), request);
/// ```
pub fn input(request: &Value) -> Value {
    super::openai::input(request)
}

/// The output of a response: `model`, `count` (vectors), `dimensions` (of
/// the first; `null` for base64-encoded vectors) and `usage
/// {prompt_tokens, total_tokens}`.
///
/// ```
/// use serde_json::json;
/// use vigil::llm::embeddings;
///
/// let response = json!({
///     "object": "list", "model": "text-embedding-3-small",
///     "data": [{ "index": 0, "embedding": [0.1, 0.2, 0.3] }, { "index": 1, "embedding": [0.0, 0.5, 0.1] }],
///     "usage": { "prompt_tokens": 4, "total_tokens": 4 }
/// });
/// assert_eq!(embeddings::output(&response), json!({
///     "model": "text-embedding-3-small", "count": 2, "dimensions": 3,
///     "usage": { "prompt_tokens": 4, "total_tokens": 4 }
/// }));
/// ```
pub fn output(response: &Value) -> Value {
    let data = response["data"].as_array().map_or(&[][..], Vec::as_slice);
    let dimensions = data
        .first()
        .and_then(|d| d["embedding"].as_array())
        .map(Vec::len);
    let get = |k: &str| response[keys::USAGE].get(k).cloned().unwrap_or(Value::Null);
    json!({
        keys::MODEL: response.get(keys::MODEL).cloned().unwrap_or(Value::Null),
        keys::COUNT: data.len(),
        keys::DIMENSIONS: dimensions,
        keys::USAGE: { keys::PROMPT_TOKENS: get(keys::PROMPT_TOKENS), keys::TOTAL_TOKENS: get(keys::TOTAL_TOKENS) },
    })
}

/// The provider's error message in an error body.
pub fn error_message(body: &Value) -> Option<String> {
    super::openai::error_message(body)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn base64_vectors_and_odd_bodies_have_no_dimensions() {
        let out = output(&json!({ "data": [{ "embedding": "AAAA" }] }));
        assert_eq!(out[keys::COUNT], 1);
        assert_eq!(out[keys::DIMENSIONS], Value::Null);
        let out = output(&json!("odd"));
        assert_eq!(out[keys::COUNT], 0);
        assert_eq!(out[keys::USAGE][keys::PROMPT_TOKENS], Value::Null);
    }
}
