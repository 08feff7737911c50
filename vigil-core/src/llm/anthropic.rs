//! Anthropic messages as `llm` spans, with the keys the Vigil server replays from.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{json, Value};

use super::keys;

/// The span name of an Anthropic message.
pub const SPAN_NAME: &str = "anthropic.messages";

/// The input of a request: the request itself, every field kept, with its
/// top-level `system` prompt also put first in `messages` as a
/// `role: "system"` message, since the server's replay takes the system
/// prompt only from such a message (and forwards `temperature`, `top_p`
/// and `stop_sequences` when present). A prompt given as content blocks
/// becomes their text, joined.
///
/// ```
/// use serde_json::json;
/// use vigil::llm::anthropic;
///
/// let request = json!({
///     "model": "claude-sonnet-4-5", "max_tokens": 100, "system": "Be brief.",
///     "messages": [{ "role": "user", "content": "Hi" }]
/// });
/// let input = anthropic::input(&request);
/// assert_eq!(input["system"], "Be brief.", "kept as sent");
/// assert_eq!(input["messages"][0], json!({ "role": "system", "content": "Be brief." }));
/// assert_eq!(input["messages"][1]["content"], "Hi");
/// ```
pub fn input(request: &Value) -> Value {
    let Value::Object(fields) = request else {
        return json!({ keys::VALUE: request });
    };
    let mut input = fields.clone();
    let system = match fields.get(keys::SYSTEM) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Array(blocks)) => Some(
            blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => None,
    };
    if let (Some(system), Some(Value::Array(messages))) = (system, input.get_mut(keys::MESSAGES)) {
        messages.insert(
            0,
            json!({ keys::ROLE: keys::SYSTEM_ROLE, keys::CONTENT: system }),
        );
    }
    Value::Object(input)
}

/// The output of a response: `model`, `content` (its text blocks), `role`,
/// `stop_reason`, `usage {input_tokens, output_tokens}`, and `tool_calls`
/// (the `tool_use` blocks) when the model called tools.
///
/// ```
/// use serde_json::json;
/// use vigil::llm::anthropic;
///
/// let response = json!({
///     "model": "claude-sonnet-4-5", "role": "assistant", "stop_reason": "tool_use",
///     "content": [
///         { "type": "text", "text": "Let me look." },
///         { "type": "tool_use", "id": "toolu_1", "name": "search", "input": { "q": "rust" } }
///     ],
///     "usage": { "input_tokens": 12, "output_tokens": 7 }
/// });
/// let output = anthropic::output(&response);
/// assert_eq!(output["content"], json!(["Let me look."]));
/// assert_eq!(output["tool_calls"][0], json!({ "id": "toolu_1", "name": "search", "input": { "q": "rust" } }));
/// assert_eq!(output["usage"], json!({ "input_tokens": 12, "output_tokens": 7 }));
/// ```
pub fn output(response: &Value) -> Value {
    let blocks = response["content"].as_array().cloned().unwrap_or_default();
    let text: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .map(|b| b["text"].clone())
        .collect();
    let tools: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| json!({"id": b["id"], "name": b["name"], "input": b["input"]}))
        .collect();
    let mut out = json!({
        keys::MODEL: response.get("model").cloned().unwrap_or(Value::Null),
        keys::CONTENT: text,
        keys::ROLE: response.get("role").cloned().unwrap_or(Value::Null),
        keys::STOP_REASON: response.get("stop_reason").cloned().unwrap_or(Value::Null),
        keys::USAGE: {
            keys::INPUT_TOKENS: response["usage"].get("input_tokens").cloned().unwrap_or(Value::Null),
            keys::OUTPUT_TOKENS: response["usage"].get("output_tokens").cloned().unwrap_or(Value::Null),
        },
    });
    for key in [
        keys::CACHE_READ_INPUT_TOKENS,
        keys::CACHE_CREATION_INPUT_TOKENS,
    ] {
        if let Some(n) = response["usage"].get(key).filter(|n| !n.is_null()) {
            out[keys::USAGE][key] = n.clone();
        }
    }
    if !tools.is_empty() {
        out[keys::TOOL_CALLS] = Value::Array(tools);
    }
    out
}

/// The provider's error message in an error body, if it has one.
///
/// ```
/// use serde_json::json;
/// use vigil::llm::anthropic;
///
/// let body = json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } });
/// assert_eq!(anthropic::error_message(&body).as_deref(), Some("Overloaded"));
/// ```
pub fn error_message(body: &Value) -> Option<String> {
    body["error"]["message"].as_str().map(str::to_owned)
}

/// Builds the output of a streamed response from its server-sent events.
///
/// ```
/// use serde_json::json;
/// use vigil::llm::anthropic::StreamAccumulator;
///
/// let mut stream = StreamAccumulator::default();
/// for line in [
///     "event: message_start",
///     r#"data: {"type":"message_start","message":{"model":"claude-sonnet-4-5","role":"assistant","usage":{"input_tokens":3}}}"#,
///     r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
///     r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
///     r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}"#,
///     r#"data: {"type":"message_stop"}"#,
/// ] {
///     stream.feed_line(line);
/// }
/// assert!(stream.is_done());
/// let output = stream.output();
/// assert_eq!(output["content"], json!(["Hi"]));
/// assert_eq!(output["usage"], json!({ "input_tokens": 3, "output_tokens": 1 }));
/// ```
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    message: Value,
    /// Content blocks by index: text so far, or a tool use with its JSON so far.
    blocks: Vec<Value>,
    partial_json: Vec<String>,
    saw_content: bool,
    done: bool,
    error: Option<String>,
}

impl StreamAccumulator {
    /// Feeds one line of the stream (`data: {...}`; `event:` lines are
    /// ignored, the type is in the data). Returns true when this line brought
    /// the first content.
    pub fn feed_line(&mut self, line: &str) -> bool {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            return false;
        };
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            return false;
        };
        let index = event["index"].as_u64().unwrap_or(0) as usize;
        let mut got = false;
        // Shapes are checked before anything is written: a provider or proxy
        // sending odd JSON must not panic inside the application's read.
        match event["type"].as_str().unwrap_or("") {
            "message_start" if event["message"].is_object() => {
                self.message = event["message"].clone();
            }
            "content_block_start"
                if event["content_block"].is_object()
                    && index <= self.blocks.len() + super::MAX_INDEX_GAP =>
            {
                while self.blocks.len() <= index {
                    self.blocks.push(Value::Null);
                    self.partial_json.push(String::new());
                }
                self.blocks[index] = event["content_block"].clone();
            }
            "content_block_delta" => {
                let delta = &event["delta"];
                if let Some(block) = self.blocks.get_mut(index).and_then(Value::as_object_mut) {
                    if let Some(text) = delta["text"].as_str() {
                        let so_far = block.get("text").and_then(Value::as_str).unwrap_or("");
                        let joined = format!("{so_far}{text}");
                        block.insert("text".to_owned(), json!(joined));
                        got = !text.is_empty();
                    }
                    if let Some(piece) = delta["partial_json"].as_str() {
                        if let Some(json) = self.partial_json.get_mut(index) {
                            json.push_str(piece);
                        }
                        got |= !piece.is_empty();
                    }
                }
            }
            "message_delta" => {
                if !self.message.is_object() {
                    self.message = json!({});
                }
                if let Some(message) = self.message.as_object_mut() {
                    if let Some(reason) = event["delta"].get("stop_reason") {
                        message.insert("stop_reason".to_owned(), reason.clone());
                    }
                    if let Some(out) = event["usage"].get("output_tokens") {
                        let usage = message.entry("usage").or_insert_with(|| json!({}));
                        if !usage.is_object() {
                            *usage = json!({});
                        }
                        usage["output_tokens"] = out.clone();
                    }
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                self.error =
                    Some(error_message(&event).unwrap_or_else(|| event["error"].to_string()));
            }
            _ => {}
        }
        let first = got && !self.saw_content;
        self.saw_content |= got;
        first
    }

    /// Whether `message_stop` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the output token count came (with `message_delta`, near the
    /// end; the input tokens come first, with `message_start`).
    pub fn has_usage(&self) -> bool {
        !self.message["usage"]["output_tokens"].is_null()
    }

    /// The message of an `error` event the stream carried.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The output, in the same shape as [`output`].
    pub fn output(&self) -> Value {
        let mut message = self.message.clone();
        if !message.is_object() {
            message = json!({});
        }
        let blocks: Vec<Value> = self
            .blocks
            .iter()
            .zip(&self.partial_json)
            .map(|(block, json)| {
                let mut block = block.clone();
                if block["type"] == "tool_use" && !json.is_empty() {
                    block["input"] = serde_json::from_str(json).unwrap_or_else(|_| json!(json));
                }
                block
            })
            .collect();
        message["content"] = Value::Array(blocks);
        output(&message)
    }
}
