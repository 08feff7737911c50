//! OpenAI chat completions (and compatible servers: Azure, Ollama, vLLM,
//! OpenRouter) as `llm` spans, with the keys the Vigil server replays from.

use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::keys;
use super::pricing::TokenUsage;
use super::view::{model_of, object_view, usage_value, Piece};

/// The span name of an OpenAI chat completion.
pub const SPAN_NAME: &str = "openai.chat.completions";

/// The input of a request: the request itself, every field kept (`tools`,
/// `tool_choice`, `response_format`, `seed`...). The server replays from
/// `model`, `messages` and, when present, `temperature`, `max_tokens`,
/// `top_p`, `stop`: a parameter the application did not send stays absent
/// (the server would forward a `null`).
///
/// ```
/// use serde_json::json;
/// use vigil::llm::openai;
///
/// let request = json!({ "model": "gpt-4o", "messages": [], "seed": 7 });
/// assert_eq!(openai::input(&request), request);
/// assert_eq!(openai::input(&json!("odd")), json!({ "value": "odd" }));
/// ```
pub fn input(request: &Value) -> Value {
    match request {
        Value::Object(_) => request.clone(),
        other => json!({ keys::VALUE: other }),
    }
}

/// The output of a (non-streamed) response: `model`, `content`, `role`,
/// `usage {prompt_tokens, completion_tokens, total_tokens}`, and
/// `tool_calls` when the model called tools.
///
/// ```
/// use serde_json::json;
/// use vigil::llm::openai;
///
/// let response = json!({
///     "id": "chatcmpl-1", "model": "gpt-4o-2024-08-06",
///     "choices": [{ "message": { "role": "assistant", "content": "Hello!" } }],
///     "usage": { "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5 }
/// });
/// assert_eq!(openai::output(&response), json!({
///     "model": "gpt-4o-2024-08-06", "content": "Hello!", "role": "assistant",
///     "usage": { "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5 }
/// }));
/// ```
pub fn output(response: &Value) -> Value {
    let message = &response["choices"][0]["message"];
    let field = |v: &Value, k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    assemble(
        field(response, keys::MODEL),
        field(message, keys::CONTENT),
        field(message, keys::ROLE),
        usage(&response[keys::USAGE]),
        field(message, keys::TOOL_CALLS),
    )
}

/// [`output`] of a response the caller owns: what the output keeps is
/// moved out of it.
pub fn into_output(mut response: Value) -> Value {
    let model = response.get_mut(keys::MODEL).map(Value::take);
    let mut message = response
        .get_mut("choices")
        .and_then(|c| c.get_mut(0))
        .and_then(|c| c.get_mut("message"));
    let mut take = |key: &str| {
        let field = message.as_deref_mut().and_then(|m| m.get_mut(key));
        field.map(Value::take).unwrap_or(Value::Null)
    };
    let (content, role, tool_calls) = (
        take(keys::CONTENT),
        take(keys::ROLE),
        take(keys::TOOL_CALLS),
    );
    let usage = usage(&response[keys::USAGE]);
    assemble(
        model.unwrap_or(Value::Null),
        content,
        role,
        usage,
        tool_calls,
    )
}

/// [`output`] read straight from a response's JSON text: the output's
/// fields are found in the text and serialized from it, and the rest of the
/// response is skipped, so no tree of values is built for it. `None` when
/// the text is not JSON in a chat completion's shape; then parse it and
/// call [`output`], which makes the same output of any shape.
///
/// ```
/// use serde_json::json;
/// use vigil::llm::openai;
///
/// let body = br#"{"id":"c1","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"}}],
///                 "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
/// let view = openai::output_view(body).unwrap();
/// let response: serde_json::Value = serde_json::from_slice(body).unwrap();
/// assert_eq!(serde_json::to_value(&view).unwrap(), openai::output(&response));
/// assert!(openai::output_view(br#"{"choices": 5}"#).is_none());
/// ```
pub fn output_view(body: &[u8]) -> Option<OutputView<'_>> {
    serde_json::from_slice(body).ok()
}

/// What [`output_view`] found; serializes as [`output`] would.
#[derive(Debug, Default)]
pub struct OutputView<'a> {
    model: Option<&'a RawValue>,
    choices: Option<Vec<ChoiceView<'a>>>,
    usage: Option<UsageView<'a>>,
}

impl OutputView<'_> {
    /// The output's `usage`, as [`output`] records it.
    pub fn usage(&self) -> Value {
        usage_value(self.usage.as_ref())
    }

    /// The model that answered, if the answer names one.
    pub fn model(&self) -> Option<String> {
        model_of(self.model)
    }

    /// The answer's tokens, as [`TokenUsage::from_usage`] reads
    /// [`usage`](OutputView::usage), read from the text's pieces.
    pub fn token_usage(&self) -> Option<TokenUsage> {
        let u = self.usage.as_ref()?;
        let value =
            |raw: Option<&RawValue>| raw.and_then(|r| serde_json::from_str::<Value>(r.get()).ok());
        let number = |v: &Value| {
            v.as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        };
        TokenUsage::from_counts(|path| match path {
            [key] if *key == keys::PROMPT_TOKENS => {
                value(u.prompt_tokens).as_ref().and_then(number)
            }
            [key] if *key == keys::COMPLETION_TOKENS => {
                value(u.completion_tokens).as_ref().and_then(number)
            }
            [details, count] => {
                let raw = match *details {
                    keys::PROMPT_TOKENS_DETAILS => u.prompt_tokens_details,
                    keys::COMPLETION_TOKENS_DETAILS => u.completion_tokens_details,
                    _ => None,
                };
                value(raw)?.get(*count).and_then(number)
            }
            _ => None,
        })
    }
}

#[derive(Debug, Default)]
struct ChoiceView<'a> {
    message: Option<MessageView<'a>>,
}

#[derive(Debug, Default)]
struct MessageView<'a> {
    content: Option<&'a RawValue>,
    role: Option<&'a RawValue>,
    tool_calls: Option<&'a RawValue>,
}

#[derive(Debug, Default)]
struct UsageView<'a> {
    prompt_tokens: Option<&'a RawValue>,
    completion_tokens: Option<&'a RawValue>,
    total_tokens: Option<&'a RawValue>,
    prompt_tokens_details: Option<&'a RawValue>,
    completion_tokens_details: Option<&'a RawValue>,
}

object_view!(OutputView {
    model,
    choices,
    usage
});
object_view!(ChoiceView { message });
object_view!(MessageView {
    content,
    role,
    tool_calls
});
object_view!(UsageView {
    prompt_tokens,
    completion_tokens,
    total_tokens,
    prompt_tokens_details,
    completion_tokens_details
});

impl Serialize for UsageView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Keys in `usage`'s order (a map sorted by key).
        let details = [
            (keys::COMPLETION_TOKENS, Some(self.completion_tokens)),
            (
                keys::COMPLETION_TOKENS_DETAILS,
                self.completion_tokens_details.map(Some),
            ),
            (keys::PROMPT_TOKENS, Some(self.prompt_tokens)),
            (
                keys::PROMPT_TOKENS_DETAILS,
                self.prompt_tokens_details.map(Some),
            ),
            (keys::TOTAL_TOKENS, Some(self.total_tokens)),
        ];
        let mut map = serializer.serialize_map(None)?;
        for (key, piece) in details {
            if let Some(piece) = piece {
                map.serialize_entry(key, &Piece(piece))?;
            }
        }
        map.end()
    }
}

impl Serialize for OutputView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let empty = MessageView::default();
        let message = self
            .choices
            .as_ref()
            .and_then(|c| c.first())
            .and_then(|c| c.message.as_ref())
            .unwrap_or(&empty);
        // `null` tool calls are left out, as `output` leaves them.
        let tool_calls = message.tool_calls.filter(|t| t.get() != "null");
        // Keys in `output`'s order (a map sorted by key).
        let mut map = serializer.serialize_map(Some(4 + usize::from(tool_calls.is_some())))?;
        map.serialize_entry(keys::CONTENT, &Piece(message.content))?;
        map.serialize_entry(keys::MODEL, &Piece(self.model))?;
        map.serialize_entry(keys::ROLE, &Piece(message.role))?;
        if let Some(calls) = tool_calls {
            map.serialize_entry(keys::TOOL_CALLS, &Piece(Some(calls)))?;
        }
        map.serialize_entry(
            keys::USAGE,
            self.usage.as_ref().unwrap_or(&UsageView::default()),
        )?;
        map.end()
    }
}

fn assemble(model: Value, content: Value, role: Value, usage: Value, tool_calls: Value) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(keys::MODEL.to_owned(), model);
    out.insert(keys::CONTENT.to_owned(), content);
    out.insert(keys::ROLE.to_owned(), role);
    out.insert(keys::USAGE.to_owned(), usage);
    if !tool_calls.is_null() {
        out.insert(keys::TOOL_CALLS.to_owned(), tool_calls);
    }
    Value::Object(out)
}

/// The usage's token counts, and their details (cached and reasoning
/// tokens, which pricing reads) when the provider sent them.
fn usage(u: &Value) -> Value {
    let mut out = json!({
        keys::PROMPT_TOKENS: u.get("prompt_tokens").cloned().unwrap_or(Value::Null),
        keys::COMPLETION_TOKENS: u.get("completion_tokens").cloned().unwrap_or(Value::Null),
        keys::TOTAL_TOKENS: u.get("total_tokens").cloned().unwrap_or(Value::Null),
    });
    for key in [keys::PROMPT_TOKENS_DETAILS, keys::COMPLETION_TOKENS_DETAILS] {
        if let Some(details) = u.get(key).filter(|d| !d.is_null()) {
            out[key] = details.clone();
        }
    }
    out
}

/// The provider's error message in an error body, if it has one.
///
/// ```
/// use serde_json::json;
/// use vigil::llm::openai;
///
/// let body = json!({ "error": { "message": "Rate limit reached", "type": "requests" } });
/// assert_eq!(openai::error_message(&body).as_deref(), Some("Rate limit reached"));
/// assert_eq!(openai::error_message(&json!({})), None);
/// ```
pub fn error_message(body: &Value) -> Option<String> {
    body["error"]["message"]
        .as_str()
        .or_else(|| body["error"].as_str())
        .map(str::to_owned)
}

/// Builds the output of a streamed response from its server-sent events.
///
/// ```
/// use vigil::llm::openai::StreamAccumulator;
///
/// let mut stream = StreamAccumulator::default();
/// assert!(!stream.feed_line(r#"data: {"model":"gpt-4o","choices":[{"delta":{"role":"assistant"}}]}"#));
/// assert!(stream.feed_line(r#"data: {"choices":[{"delta":{"content":"Hel"}}]}"#), "first content");
/// assert!(!stream.feed_line(r#"data: {"choices":[{"delta":{"content":"lo"}}]}"#));
/// stream.feed_line("data: [DONE]");
/// assert!(stream.is_done());
/// assert_eq!(stream.output()["content"], "Hello");
/// ```
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    model: Option<String>,
    role: Option<String>,
    content: String,
    saw_content: bool,
    tool_calls: Vec<Value>,
    usage: Value,
    done: bool,
    error: Option<String>,
}

impl StreamAccumulator {
    /// Feeds one line of the stream (`data: {...}`; other lines are ignored).
    /// Returns true when this line brought the first content or tool call.
    pub fn feed_line(&mut self, line: &str) -> bool {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            return false;
        };
        if data == "[DONE]" {
            self.done = true;
            return false;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return false;
        };
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            self.error = Some(error_message(&chunk).unwrap_or_else(|| error.to_string()));
            return false;
        }
        if let Some(m) = chunk["model"].as_str() {
            self.model.get_or_insert_with(|| m.to_owned());
        }
        if chunk["usage"].is_object() {
            self.usage = usage(&chunk["usage"]);
        }
        let first = !self.saw_content;
        let delta = &chunk["choices"][0]["delta"];
        if let Some(r) = delta["role"].as_str() {
            self.role = Some(r.to_owned());
        }
        let mut got = false;
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.content.push_str(text);
            got = true;
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(0) as usize;
            if index > self.tool_calls.len() + super::MAX_INDEX_GAP {
                continue; // not a real tool call index; never allocate for it
            }
            while self.tool_calls.len() <= index {
                self.tool_calls.push(json!({"id": null, "type": "function", "function": {"name": "", "arguments": ""}}));
            }
            let slot = &mut self.tool_calls[index];
            if let Some(id) = call["id"].as_str() {
                slot["id"] = json!(id);
            }
            for part in ["name", "arguments"] {
                if let Some(piece) = call["function"][part].as_str() {
                    let so_far = slot["function"][part].as_str().unwrap_or("").to_owned();
                    slot["function"][part] = json!(so_far + piece);
                }
            }
            got = true;
        }
        self.saw_content |= got;
        got && first
    }

    /// Whether the stream's end (`[DONE]`) was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether a chunk brought the usage (sent only when the request set
    /// `stream_options.include_usage`).
    pub fn has_usage(&self) -> bool {
        !self.usage.is_null()
    }

    /// The message of an error the stream carried (`data: {"error": ...}`).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The output, in the same shape as [`output`].
    pub fn output(&self) -> Value {
        let mut out = json!({
            keys::MODEL: self.model,
            keys::CONTENT: if self.saw_content || self.tool_calls.is_empty() { json!(self.content) } else { Value::Null },
            keys::ROLE: self.role.as_deref().unwrap_or("assistant"),
            keys::USAGE: if self.usage.is_null() { usage(&Value::Null) } else { self.usage.clone() },
        });
        if !self.tool_calls.is_empty() {
            out[keys::TOOL_CALLS] = Value::Array(self.tool_calls.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    /// The view read from the text and the output made from the parsed
    /// value agree on every shape the view takes; the others it declines.
    #[test]
    fn the_view_and_the_output_agree() {
        let bodies = [
            r#"{"model":"m","choices":[{"message":{"role":"assistant","content":"Hi \"there\"\n","tool_calls":null}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":0}}}"#,
            r#"{"choices":[{"message":{"content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}},{"message":{"content":"second"}}]}"#,
            r#"{"model":null,"choices":[],"usage":null,"extra":[1,{"a":2}]}"#,
            r#"{"choices":[{"index":0}],"usage":{"total_tokens":1.5e3}}"#,
            r#"{}"#,
            r#"{"choices":[{"message":{"content":[{"type":"text","text":"parts"}]}}]}"#,
            r#"{"model":"first","model":"last","\u006dodel":"escaped key"}"#,
            r#"{"usage":{"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":null}}"#,
            r#"{"usage":{"prompt_tokens":9.0,"completion_tokens":"x","completion_tokens_details":{"reasoning_tokens":3}}}"#,
        ];
        for body in bodies {
            let view = output_view(body.as_bytes()).unwrap_or_else(|| panic!("{body}"));
            let value: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                serde_json::to_value(&view).unwrap(),
                output(&value),
                "{body}"
            );
            assert_eq!(into_output(value.clone()), output(&value), "{body}");
        }
        let declined = vec![
            r#"{"choices":5}"#,
            r#"{"choices":[{"message":"x"}]}"#,
            r#"{"usage":7}"#,
            r#"{"usage":[1,2,3]}"#,
            r#"{"choices":[["m"]]}"#,
            "[1]",
            "{",
        ];
        for body in declined {
            assert!(output_view(body.as_bytes()).is_none(), "{body}");
            if let Ok(value) = serde_json::from_str::<Value>(body) {
                let _ = output(&value);
                let _ = into_output(value);
            }
        }
    }
}
