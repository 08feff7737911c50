//! OpenAI chat completions (and compatible servers: Azure, Ollama, vLLM,
//! OpenRouter) as `llm` spans, with the keys the Vigil server replays from.

use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{json, Value};

use super::keys;

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
    let mut out = json!({
        keys::MODEL: response.get("model").cloned().unwrap_or(Value::Null),
        keys::CONTENT: message.get("content").cloned().unwrap_or(Value::Null),
        keys::ROLE: message.get("role").cloned().unwrap_or(Value::Null),
        keys::USAGE: usage(&response["usage"]),
    });
    if let Some(calls) = message.get("tool_calls").filter(|c| !c.is_null()) {
        out[keys::TOOL_CALLS] = calls.clone();
    }
    out
}

fn usage(u: &Value) -> Value {
    json!({
        keys::PROMPT_TOKENS: u.get("prompt_tokens").cloned().unwrap_or(Value::Null),
        keys::COMPLETION_TOKENS: u.get("completion_tokens").cloned().unwrap_or(Value::Null),
        keys::TOTAL_TOKENS: u.get("total_tokens").cloned().unwrap_or(Value::Null),
    })
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
