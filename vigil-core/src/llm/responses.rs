//! OpenAI Responses API calls (`POST .../responses`) as `llm` spans, in the
//! same output shape as a chat completion, so that the server, the console
//! and usage read them alike.

use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{json, Map, Value};

use super::keys;

/// The span name of a Responses API call.
pub const SPAN_NAME: &str = "openai.responses";

/// The input of a request: the request itself, every field kept, with
/// `messages` added (unless it has one) from its `instructions` (a
/// `system` message) and `input` (a string is one `user` message; items
/// with a `role` keep it, their text parts joined), since the server's
/// replay reads `messages`.
///
/// ```
/// use serde_json::json;
/// use vigil::llm::responses;
///
/// let request = json!({ "model": "gpt-4.1", "instructions": "Be brief.", "input": "Hi" });
/// let input = responses::input(&request);
/// assert_eq!(input["input"], "Hi", "kept as sent");
/// assert_eq!(input["messages"], json!([
///     { "role": "system", "content": "Be brief." },
///     { "role": "user", "content": "Hi" },
/// ]));
/// ```
pub fn input(request: &Value) -> Value {
    let Value::Object(fields) = request else {
        return json!({ keys::VALUE: request });
    };
    let mut input = fields.clone();
    if !fields.contains_key(keys::MESSAGES) {
        let mut messages = Vec::new();
        if let Some(system) = fields.get("instructions").and_then(Value::as_str) {
            messages.push(message(keys::SYSTEM_ROLE, system.into()));
        }
        match fields.get("input") {
            Some(Value::String(text)) => messages.push(message("user", text.as_str().into())),
            Some(Value::Array(items)) => messages.extend(items.iter().filter_map(|item| {
                let role = item.get(keys::ROLE)?.as_str()?;
                Some(message(role, text_of(item.get(keys::CONTENT)?)))
            })),
            _ => {}
        }
        input.insert(keys::MESSAGES.to_owned(), Value::Array(messages));
    }
    Value::Object(input)
}

fn message(role: &str, content: Value) -> Value {
    json!({ keys::ROLE: role, keys::CONTENT: content })
}

/// A string as is; content parts as their text, joined (other parts, such as
/// images, are left out of the message but kept in the input as sent).
fn text_of(content: &Value) -> Value {
    match content {
        Value::Array(parts) => Value::String(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        other => other.clone(),
    }
}

/// The output of a (non-streamed) response: `model`, `content` (its
/// `output_text` parts joined; `null` if it only called tools), `role`,
/// `usage` in the chat completion's names (`prompt_tokens` from
/// `input_tokens`, and so on), and `tool_calls` (its `function_call` items,
/// as chat completion tool calls) when the model called tools.
///
/// ```
/// use serde_json::json;
/// use vigil::llm::responses;
///
/// let response = json!({
///     "id": "resp_1", "model": "gpt-4.1-2025-04-14", "status": "completed",
///     "output": [{ "type": "message", "role": "assistant",
///                  "content": [{ "type": "output_text", "text": "Hello!" }] }],
///     "usage": { "input_tokens": 3, "output_tokens": 2, "total_tokens": 5 }
/// });
/// assert_eq!(responses::output(&response), json!({
///     "model": "gpt-4.1-2025-04-14", "content": "Hello!", "role": "assistant",
///     "usage": { "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5 }
/// }));
/// ```
pub fn output(response: &Value) -> Value {
    let items = response["output"].as_array().map_or(&[][..], Vec::as_slice);
    let mut text = String::new();
    let mut saw_text = false;
    let mut tool_calls = Vec::new();
    for item in items {
        match item["type"].as_str() {
            Some("message") => {
                for part in item[keys::CONTENT].as_array().into_iter().flatten() {
                    if let Some(t) = part["text"]
                        .as_str()
                        .filter(|_| part["type"] == "output_text")
                    {
                        text.push_str(t);
                        saw_text = true;
                    }
                }
            }
            Some("function_call") => tool_calls.push(tool_call(
                &item["call_id"],
                &item["name"],
                item["arguments"].as_str().unwrap_or(""),
            )),
            _ => {}
        }
    }
    let mut out = json!({
        keys::MODEL: response.get(keys::MODEL).cloned().unwrap_or(Value::Null),
        keys::CONTENT: if saw_text || tool_calls.is_empty() { json!(text) } else { Value::Null },
        keys::ROLE: "assistant",
        keys::USAGE: usage(&response[keys::USAGE]),
    });
    if !tool_calls.is_empty() {
        out[keys::TOOL_CALLS] = Value::Array(tool_calls);
    }
    out
}

fn tool_call(id: &Value, name: &Value, arguments: &str) -> Value {
    json!({ "id": id, "type": "function", "function": { "name": name, "arguments": arguments } })
}

/// The Responses API's usage in the chat completion's names.
fn usage(u: &Value) -> Value {
    let get = |k: &str| u.get(k).cloned().unwrap_or(Value::Null);
    let mut out = json!({
        keys::PROMPT_TOKENS: get(keys::INPUT_TOKENS),
        keys::COMPLETION_TOKENS: get(keys::OUTPUT_TOKENS),
        keys::TOTAL_TOKENS: get(keys::TOTAL_TOKENS),
    });
    // The details keep their inner names (`cached_tokens`, `reasoning_tokens`).
    for (theirs, ours) in [
        ("input_tokens_details", keys::PROMPT_TOKENS_DETAILS),
        ("output_tokens_details", keys::COMPLETION_TOKENS_DETAILS),
    ] {
        if let Some(details) = u.get(theirs).filter(|d| !d.is_null()) {
            out[ours] = details.clone();
        }
    }
    out
}

/// The provider's error message in an error body or a failed response.
///
/// ```
/// use serde_json::json;
/// use vigil::llm::responses;
///
/// let body = json!({ "error": { "message": "Invalid model", "type": "invalid_request_error" } });
/// assert_eq!(responses::error_message(&body).as_deref(), Some("Invalid model"));
/// ```
pub fn error_message(body: &Value) -> Option<String> {
    super::openai::error_message(body)
}

/// Builds the output of a streamed response from its server-sent events:
/// text and function-call arguments as they arrive, then the final
/// `response.completed` event's response, which is taken as the output.
///
/// ```
/// use vigil::llm::responses::StreamAccumulator;
///
/// let mut stream = StreamAccumulator::default();
/// stream.feed_line(r#"data: {"type":"response.created","response":{"model":"gpt-4.1"}}"#);
/// assert!(stream.feed_line(r#"data: {"type":"response.output_text.delta","delta":"Hi"}"#));
/// assert_eq!(stream.output()["content"], "Hi", "what came so far");
/// assert!(!stream.has_usage());
/// stream.feed_line(r#"data: {"type":"response.completed","response":{"model":"gpt-4.1","output":[{"type":"message","content":[{"type":"output_text","text":"Hi"}]}],"usage":{"input_tokens":2,"output_tokens":1,"total_tokens":3}}}"#);
/// assert!(stream.is_done() && stream.has_usage());
/// assert_eq!(stream.output()["usage"]["total_tokens"], 3);
/// ```
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    model: Option<String>,
    content: String,
    saw_content: bool,
    /// Function calls by output index: call id, name, arguments so far.
    calls: Vec<(u64, Value, Value, String)>,
    /// The output of the final response, once it came.
    finished: Option<Value>,
    done: bool,
    error: Option<String>,
}

impl StreamAccumulator {
    /// Feeds one line of the stream (`data: {...}`; `event:` lines are
    /// ignored, the type is in the data). Returns true when this line brought
    /// the first content or function call.
    pub fn feed_line(&mut self, line: &str) -> bool {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            return false;
        };
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            return false;
        };
        let mut got = false;
        match event["type"].as_str().unwrap_or("") {
            "response.created" | "response.in_progress" => {
                if let Some(m) = event["response"][keys::MODEL].as_str() {
                    self.model = Some(m.to_owned());
                }
            }
            "response.output_text.delta" => {
                if let Some(text) = event["delta"].as_str().filter(|t| !t.is_empty()) {
                    self.content.push_str(text);
                    got = true;
                }
            }
            "response.output_item.added" if event["item"]["type"] == "function_call" => {
                let item = &event["item"];
                let at = event["output_index"].as_u64().unwrap_or(0);
                self.calls.push((
                    at,
                    item["call_id"].clone(),
                    item["name"].clone(),
                    String::new(),
                ));
                got = true;
            }
            "response.function_call_arguments.delta" => {
                let at = event["output_index"].as_u64().unwrap_or(0);
                let piece = event["delta"].as_str().unwrap_or("");
                if let Some(call) = self.calls.iter_mut().rev().find(|c| c.0 == at) {
                    call.3.push_str(piece);
                }
            }
            "response.completed" | "response.incomplete" => {
                self.finished = Some(output(&event["response"]));
                self.done = true;
            }
            "response.failed" => {
                let message = error_message(&event["response"]);
                self.error = Some(message.unwrap_or_else(|| "the response failed".to_owned()));
                self.done = true;
            }
            "error" => {
                let message = event["message"].as_str().map(str::to_owned);
                self.error = Some(
                    message
                        .or_else(|| error_message(&event))
                        .unwrap_or_else(|| event.to_string()),
                );
            }
            _ => {}
        }
        let first = got && !self.saw_content;
        self.saw_content |= got;
        first
    }

    /// Whether the final response (`response.completed`, `.incomplete` or
    /// `.failed`) was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the stream brought its usage (the final response carries it).
    pub fn has_usage(&self) -> bool {
        self.finished
            .as_ref()
            .is_some_and(|o| !o[keys::USAGE][keys::TOTAL_TOKENS].is_null())
    }

    /// The message of an error the stream carried.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The output, in the same shape as [`output`]: the final response's
    /// once it came, what arrived so far before.
    pub fn output(&self) -> Value {
        if let Some(done) = &self.finished {
            return done.clone();
        }
        let calls: Vec<Value> = self
            .calls
            .iter()
            .map(|(_, id, name, args)| tool_call(id, name, args))
            .collect();
        let mut out = Map::new();
        out.insert(keys::MODEL.to_owned(), json!(self.model));
        let content = if !self.content.is_empty() || calls.is_empty() {
            Value::String(self.content.clone())
        } else {
            Value::Null
        };
        out.insert(keys::CONTENT.to_owned(), content);
        out.insert(keys::ROLE.to_owned(), json!("assistant"));
        out.insert(keys::USAGE.to_owned(), usage(&Value::Null));
        if !calls.is_empty() {
            out.insert(keys::TOOL_CALLS.to_owned(), Value::Array(calls));
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn function_calls_come_out_as_chat_tool_calls() {
        let response = json!({ "model": "m", "output": [
            { "type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Lisbon\"}" }
        ], "usage": { "input_tokens": 1, "output_tokens": 2, "total_tokens": 3 } });
        let out = output(&response);
        assert_eq!(out[keys::CONTENT], Value::Null);
        assert_eq!(
            out[keys::TOOL_CALLS][0],
            json!({ "id": "call_1", "type": "function",
                    "function": { "name": "get_weather", "arguments": "{\"city\":\"Lisbon\"}" } })
        );

        let mut stream = StreamAccumulator::default();
        for line in [
            r#"data: {"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","call_id":"call_1","name":"get_weather"}}"#,
            r#"data: {"type":"response.function_call_arguments.delta","output_index":0,"delta":"{\"city\":"}"#,
            r#"data: {"type":"response.function_call_arguments.delta","output_index":0,"delta":"\"Lisbon\"}"}"#,
        ] {
            stream.feed_line(line);
        }
        assert_eq!(stream.output()[keys::TOOL_CALLS], out[keys::TOOL_CALLS]);
    }

    #[test]
    fn input_items_become_messages_and_odd_shapes_do_not_panic() {
        let request = json!({ "model": "m", "input": [
            { "role": "user", "content": [{ "type": "input_text", "text": "a" }, { "type": "input_image", "image_url": "x" }, { "type": "input_text", "text": "b" }] },
            { "type": "function_call_output", "call_id": "c", "output": "42" },
            { "role": "assistant", "content": "ok" },
        ] });
        assert_eq!(
            input(&request)[keys::MESSAGES],
            json!([{ "role": "user", "content": "a\nb" }, { "role": "assistant", "content": "ok" }])
        );
        let given = json!({ "messages": [], "input": "x" });
        assert_eq!(
            input(&given),
            given,
            "a request with messages is kept as is"
        );
        assert_eq!(input(&json!(3)), json!({ "value": 3 }));
        for odd in [
            json!(null),
            json!([]),
            json!({ "output": 7 }),
            json!({ "output": [7, {"type": "message", "content": 1}] }),
        ] {
            let _ = output(&odd);
        }
        let mut stream = StreamAccumulator::default();
        for line in [
            "data: [1]",
            r#"data: {"type":"response.function_call_arguments.delta","delta":7}"#,
            r#"data: {"type":"response.completed","response":3}"#,
        ] {
            stream.feed_line(line);
        }
        assert!(stream.is_done() && !stream.has_usage());
    }

    #[test]
    fn errors_and_failed_responses_are_kept() {
        let mut stream = StreamAccumulator::default();
        stream.feed_line(r#"data: {"type":"error","code":"server_error","message":"Overloaded"}"#);
        assert_eq!(stream.error(), Some("Overloaded"));
        let mut failed = StreamAccumulator::default();
        failed.feed_line(r#"data: {"type":"response.failed","response":{"error":{"code":"server_error","message":"boom"}}}"#);
        assert_eq!(failed.error(), Some("boom"));
        assert!(failed.is_done());
    }
}
