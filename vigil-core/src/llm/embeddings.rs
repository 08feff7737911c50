//! OpenAI-style embeddings calls (`POST .../embeddings`) as `retriever`
//! spans (the GenAI conventions' `embeddings` operation). The vectors are
//! not recorded: their count and dimensions are.

use alloc::string::String;
use alloc::vec::Vec;
use core::marker::PhantomData;

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::keys;
use super::view::{object_view, Length, Piece};

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

/// [`output`] read straight from a response's JSON text: the vectors are
/// counted and skipped, never parsed into values. `None` when the text is
/// not JSON in an embeddings response's shape; then parse it and call
/// [`output`].
///
/// ```
/// use vigil::llm::embeddings;
///
/// let body = br#"{"object":"list","model":"m","data":[{"embedding":[0.1,0.2]},{"embedding":[0.3,0.4]}],
///                 "usage":{"prompt_tokens":2,"total_tokens":2}}"#;
/// let view = embeddings::output_view(body).unwrap();
/// let response: serde_json::Value = serde_json::from_slice(body).unwrap();
/// assert_eq!(serde_json::to_value(&view).unwrap(), embeddings::output(&response));
/// ```
pub fn output_view(body: &[u8]) -> Option<OutputView<'_>> {
    serde_json::from_slice(body).ok()
}

/// What [`output_view`] found; serializes as [`output`] would.
#[derive(Debug, Default)]
pub struct OutputView<'a> {
    model: Option<&'a RawValue>,
    data: Option<Data>,
    usage: Option<UsageView<'a>>,
}

impl OutputView<'_> {
    /// The output's `usage`, as [`output`] records it.
    pub fn usage(&self) -> Value {
        let view = self.usage.as_ref();
        serde_json::to_value(view.unwrap_or(&UsageView::default())).unwrap_or(Value::Null)
    }

    /// The model that answered, if the answer names one.
    pub fn model(&self) -> Option<String> {
        self.model.and_then(|m| serde_json::from_str(m.get()).ok())
    }
}

#[derive(Debug, Default)]
struct UsageView<'a> {
    prompt_tokens: Option<&'a RawValue>,
    total_tokens: Option<&'a RawValue>,
}

#[derive(Debug, Default)]
struct ItemView<'a> {
    embedding: Option<Length>,
    _text: PhantomData<&'a ()>,
}

object_view!(OutputView { model, data, usage });
object_view!(UsageView {
    prompt_tokens,
    total_tokens
});
object_view!(ItemView { embedding });

/// The `data` array: how many items, and the length of the first's vector.
#[derive(Debug, Default)]
struct Data {
    count: usize,
    dimensions: Option<usize>,
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Items;
        impl<'de> Visitor<'de> for Items {
            type Value = Data;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data, A::Error> {
                let Some(first) = seq.next_element::<ItemView<'de>>()? else {
                    return Ok(Data::default());
                };
                let mut count = 1;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    count += 1;
                }
                let dimensions = first.embedding.and_then(|l| l.0);
                Ok(Data { count, dimensions })
            }
        }
        d.deserialize_seq(Items)
    }
}

impl Serialize for OutputView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let data = self.data.as_ref();
        let usage = self.usage.as_ref();
        // Keys in `output`'s order (a map sorted by key).
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry(keys::COUNT, &data.map_or(0, |d| d.count))?;
        map.serialize_entry(keys::DIMENSIONS, &data.and_then(|d| d.dimensions))?;
        map.serialize_entry(keys::MODEL, &Piece(self.model))?;
        map.serialize_entry(keys::USAGE, usage.unwrap_or(&UsageView::default()))?;
        map.end()
    }
}

impl Serialize for UsageView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry(keys::PROMPT_TOKENS, &Piece(self.prompt_tokens))?;
        map.serialize_entry(keys::TOTAL_TOKENS, &Piece(self.total_tokens))?;
        map.end()
    }
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
    fn the_view_and_the_output_agree() {
        let bodies = [
            r#"{"object":"list","model":"m","data":[{"index":0,"embedding":[0.5,-1e-3,2]},{"index":1,"embedding":[1,2,3]}],"usage":{"prompt_tokens":4,"total_tokens":4}}"#,
            r#"{"data":[{"embedding":"AAAAAA=="}],"usage":null}"#,
            r#"{"data":[],"model":null}"#,
            r#"{"data":[{"embedding":null},7,"x"]}"#,
            r#"{"data":[{"embedding":{"a":1}}]}"#,
            r#"{}"#,
        ];
        for body in bodies {
            let view = output_view(body.as_bytes()).unwrap_or_else(|| panic!("{body}"));
            let value: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                serde_json::to_value(&view).unwrap(),
                output(&value),
                "{body}"
            );
        }
        for declined in [
            r#"{"data":5}"#,
            r#"{"data":[5]}"#,
            r#"{"usage":[1]}"#,
            "[]",
            "{",
        ] {
            assert!(output_view(declined.as_bytes()).is_none(), "{declined}");
        }
    }

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
