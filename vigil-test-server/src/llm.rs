//! A fake OpenAI and Anthropic API on loopback, for the integration tests.
//!
//! `POST /v1/chat/completions`, `/v1/responses`, `/v1/embeddings` and
//! `/v1/messages` answer like the real APIs, streamed (server-sent events)
//! when the request says `"stream": true`; a chat completion stream carries
//! its usage only when `stream_options.include_usage` is set, as OpenAI's
//! does. Any other path answers `404` with an OpenAI-style error. The model name picks a behaviour: `fail-401`,
//! `fail-429`, `fail-500` answer with the provider's error body, `malformed`
//! with a body that is not JSON, and a name containing `tools` with a tool call.
//! A streamed answer for a name containing `overloaded` ends with the
//! provider's error event; one containing `cut` stops before its end marker;
//! one containing `always-stream` is streamed even when not asked for; one
//! containing `slow` is sent event by event (chunked), 20 ms apart, as a
//! real model streams, so that a reader can stop in the middle.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{json, Value};

use crate::{read_request, respond_raw, Incoming};

/// The fake provider; stops when dropped.
#[derive(Debug)]
pub struct FakeLlm {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeLlm {
    /// Starts on an ephemeral port.
    pub fn start() -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let flag = flag.clone();
                    thread::spawn(move || serve(stream, &flag));
                }
            }
        });
        FakeLlm {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` (append `/v1/chat/completions` or `/v1/messages`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let alive = || !stop.load(Ordering::SeqCst);
    loop {
        let request = match read_request(&mut reader, &alive) {
            Incoming::Request(r) => r,
            _ => return,
        };
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let model = body["model"].as_str().unwrap_or("model").to_owned();
        let stream = body["stream"] == true;
        let path = request.path.split('?').next().unwrap_or("");
        let api = match path.trim_end_matches('/') {
            p if p.ends_with("/chat/completions") => Api::Chat,
            p if p.ends_with("/responses") => Api::Responses,
            p if p.ends_with("/embeddings") => Api::Embeddings,
            p if p.ends_with("/v1/messages") => Api::Messages,
            _ => Api::Unknown,
        };
        let openai = api != Api::Messages;
        let usage = body["stream_options"]["include_usage"] == true;
        let (status, content_type, payload, extra) = match model.as_str() {
            _ if api == Api::Unknown => (
                404,
                "application/json",
                json!({"error": {"message": format!("Unknown path {path}"), "type": "invalid_request_error"}})
                    .to_string()
                    .into_bytes(),
                "",
            ),
            "fail-401" | "fail-429" | "fail-500" => {
                let status: u16 = model[5..].parse().unwrap_or(500);
                let message = match status {
                    401 => "Incorrect API key provided",
                    429 => "Rate limit reached for requests",
                    _ => "The server had an error while processing your request",
                };
                let body = if openai {
                    json!({"error": {"message": message, "type": "api_error", "code": null}})
                } else {
                    json!({"type": "error", "error": {"type": "api_error", "message": message}})
                };
                let extra = if status == 429 {
                    "Retry-After: 1\r\n"
                } else {
                    ""
                };
                (
                    status,
                    "application/json",
                    body.to_string().into_bytes(),
                    extra,
                )
            }
            "malformed" => (200, "application/json", b"{\"choices\": [".to_vec(), ""),
            _ if api == Api::Embeddings => (
                200,
                "application/json",
                embeddings_body(&model, &body["input"]).to_string().into_bytes(),
                "",
            ),
            _ if api == Api::Responses && (stream || model.contains("always-stream")) => (
                200,
                "text/event-stream",
                responses_stream(&model),
                "",
            ),
            _ if api == Api::Responses => (
                200,
                "application/json",
                responses_body(&model).to_string().into_bytes(),
                "",
            ),
            _ if stream || model.contains("always-stream") => (
                200,
                "text/event-stream",
                stream_body(openai, &model, usage),
                "",
            ),
            _ => (
                200,
                "application/json",
                whole_body(openai, &model).to_string().into_bytes(),
                "",
            ),
        };
        if content_type == "text/event-stream" && model.contains("slow") {
            if send_slowly(&mut writer, &payload).is_err() {
                return;
            }
            continue;
        }
        if respond_raw(&mut writer, status, content_type, &payload, extra, false).is_err() {
            return;
        }
        let _ = writer.flush();
    }
}

/// A stream in chunked encoding, one event per chunk, 20 ms apart.
fn send_slowly(w: &mut TcpStream, events: &[u8]) -> std::io::Result<()> {
    w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n")?;
    let text = String::from_utf8_lossy(events);
    for event in text.split_inclusive("\n\n") {
        write!(w, "{:x}\r\n{event}\r\n", event.len())?;
        w.flush()?;
        thread::sleep(Duration::from_millis(20));
    }
    w.write_all(b"0\r\n\r\n")?;
    w.flush()
}

/// The `created` time of every answer (clients such as async-openai need one).
const CREATED: u64 = 1_764_633_600;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Chat,
    Responses,
    Embeddings,
    Messages,
    Unknown,
}

/// Dimensions of the fake's embeddings.
pub const EMBEDDING_DIMENSIONS: usize = 8;

/// One vector of [`EMBEDDING_DIMENSIONS`] per input (a string or a list).
fn embeddings_body(model: &str, input: &Value) -> Value {
    let count = input.as_array().map_or(1, Vec::len);
    let data: Vec<Value> = (0..count)
        .map(|i| {
            let v: Vec<f64> = (0..EMBEDDING_DIMENSIONS)
                .map(|d| ((i * 31 + d) % 17) as f64 / 17.0)
                .collect();
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    json!({"object": "list", "model": model, "data": data,
           "usage": {"prompt_tokens": 3 * count, "total_tokens": 3 * count}})
}

/// The Responses API's answer.
fn responses_body(model: &str) -> Value {
    let mut output = vec![
        json!({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                                 "content": [{"type": "output_text", "text": "Hello from the fake.", "annotations": []}]}),
    ];
    if model.contains("tools") {
        output = vec![
            json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
                             "arguments": "{\"city\":\"Lisbon\"}", "status": "completed"}),
        ];
    }
    json!({"id": "resp_1", "object": "response", "status": "completed", "model": model, "output": output,
           "usage": {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17}})
}

/// The Responses API's stream: typed events, the last carrying the whole
/// response with its usage.
fn responses_stream(model: &str) -> Vec<u8> {
    let mut events = vec![
        json!({"type": "response.created", "response": {"id": "resp_1", "model": model, "status": "in_progress", "output": []}}),
    ];
    for piece in ["Hel", "lo ", "stream"] {
        events.push(json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": piece}));
    }
    if model.contains("overloaded") {
        events.push(json!({"type": "error", "code": "server_error", "message": "Overloaded", "param": null}));
    } else if !model.contains("cut") {
        let mut done = responses_body(model);
        done["output"][0]["content"][0]["text"] = json!("Hello stream");
        done["usage"] = json!({"input_tokens": 12, "output_tokens": 3, "total_tokens": 15});
        events.push(json!({"type": "response.completed", "response": done}));
    }
    let mut out = String::new();
    for e in events {
        out.push_str(&format!(
            "event: {}\ndata: {e}\n\n",
            e["type"].as_str().unwrap_or("")
        ));
    }
    out.into_bytes()
}

fn whole_body(openai: bool, model: &str) -> Value {
    let tools = model.contains("tools");
    if openai {
        let mut message = json!({"role": "assistant", "content": "Hello from the fake."});
        if tools {
            message = json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Lisbon\"}"}}]});
        }
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": CREATED, "model": model,
               "choices": [{"index": 0, "message": message, "finish_reason": if tools { "tool_calls" } else { "stop" }}],
               "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}})
    } else {
        let mut content = vec![json!({"type": "text", "text": "Hello from the fake."})];
        if tools {
            content.push(json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Lisbon"}}));
        }
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": content,
               "stop_reason": if tools { "tool_use" } else { "end_turn" }, "usage": {"input_tokens": 12, "output_tokens": 5}})
    }
}

fn stream_body(openai: bool, model: &str, usage: bool) -> Vec<u8> {
    let mut out = String::new();
    let tools = model.contains("tools");
    let overloaded = model.contains("overloaded");
    let cut = model.contains("cut");
    if openai {
        let chunk = |delta: Value| json!({"id": "c", "object": "chat.completion.chunk", "created": CREATED, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
        let mut chunks = vec![chunk(json!({"role": "assistant", "content": ""}))];
        for piece in ["Hel", "lo ", "stream"] {
            chunks.push(chunk(json!({"content": piece})));
        }
        if tools {
            chunks.push(chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":"}}]})));
            chunks.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Lisbon\"}"}}]}),
            ));
        }
        // As the real API: the last choice chunk names the finish reason,
        // then (`stream_options.include_usage`) a chunk with no choices
        // carries the usage.
        let reason = if tools { "tool_calls" } else { "stop" };
        chunks.push(
            json!({"id": "c", "object": "chat.completion.chunk", "created": CREATED, "model": model,
                   "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}),
        );
        if usage {
            chunks.push(json!({"id": "c", "object": "chat.completion.chunk", "created": CREATED, "model": model, "choices": [],
                               "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}));
        }
        if overloaded {
            // The error comes in place of the end of the answer.
            chunks.truncate(chunks.len() - 1 - usize::from(usage));
            chunks.push(json!({"error": {"message": "Overloaded", "type": "server_error"}}));
        }
        for c in chunks {
            out.push_str(&format!("data: {c}\n\n"));
        }
        if !overloaded && !cut {
            out.push_str("data: [DONE]\n\n");
        }
    } else {
        let mut events = vec![
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
        ];
        for piece in ["Hel", "lo ", "stream"] {
            events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})));
        }
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        if tools {
            events.push(("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}})));
            events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})));
            events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Lisbon\"}"}})));
        }
        if overloaded {
            events.push(("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})));
        } else if !cut {
            events.push(("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}})));
            events.push(("message_stop", json!({"type": "message_stop"})));
        }
        for (name, data) in events {
            out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
        }
    }
    out.into_bytes()
}
