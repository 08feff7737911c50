//! Anthropic messages as `llm` spans, with the keys the Vigil server replays from.

use serde_json::{json, Value};

/// The span name of an Anthropic message.
pub const SPAN_NAME: &str = "anthropic.messages";

/// The input of a request: the request itself, every field kept, with its
/// top-level `system` prompt also put first in `messages` as a
/// `role: "system"` message, since the server's replay takes the system
/// prompt only from such a message (and forwards `temperature`, `top_p`
/// and `stop_sequences` when present). A prompt given as content blocks
/// becomes their text, joined.
pub fn input(request: &Value) -> Value {
    let Value::Object(fields) = request else {
        return json!({ "value": request });
    };
    let mut input = fields.clone();
    let system = match fields.get("system") {
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
    if let (Some(system), Some(Value::Array(messages))) = (system, input.get_mut("messages")) {
        messages.insert(0, json!({ "role": "system", "content": system }));
    }
    Value::Object(input)
}

/// The output of a response: `model`, `content` (its text blocks), `role`,
/// `stop_reason`, `usage {input_tokens, output_tokens}`, and `tool_calls`
/// (the `tool_use` blocks) when the model called tools.
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
        "model": response.get("model").cloned().unwrap_or(Value::Null),
        "content": text,
        "role": response.get("role").cloned().unwrap_or(Value::Null),
        "stop_reason": response.get("stop_reason").cloned().unwrap_or(Value::Null),
        "usage": {
            "input_tokens": response["usage"].get("input_tokens").cloned().unwrap_or(Value::Null),
            "output_tokens": response["usage"].get("output_tokens").cloned().unwrap_or(Value::Null),
        },
    });
    if !tools.is_empty() {
        out["tool_calls"] = Value::Array(tools);
    }
    out
}

/// The provider's error message in an error body, if it has one.
pub fn error_message(body: &Value) -> Option<String> {
    body["error"]["message"].as_str().map(str::to_owned)
}

/// Builds the output of a streamed response from its server-sent events.
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
