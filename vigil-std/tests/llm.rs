//! OpenAI and Anthropic calls through an instrumented ureq agent, against a
//! fake provider on loopback.

use std::io::Read;

use serde_json::{json, Value};
use vigil_std::integrations::LlmCall;
use vigil_std::llm::Provider;
use vigil_std::sink::capture;
use vigil_test_server::llm::FakeLlm;

fn agents() -> (ureq::Agent, ureq::Agent) {
    vigil_std::activate_all_integrations();
    let plain: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let instrumented: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .middleware(vigil_std::ureq::VigilMiddleware)
        .build()
        .into();
    (plain, instrumented)
}

/// (status, content-type, body bytes) of one call.
fn call(agent: &ureq::Agent, url: &str, body: &Value) -> (u16, Option<String>, Vec<u8>) {
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    let ct = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let mut bytes = Vec::new();
    response
        .body_mut()
        .as_reader()
        .read_to_end(&mut bytes)
        .unwrap();
    (response.status().as_u16(), ct, bytes)
}

/// Makes each call with and without the middleware, checks the application
/// gets the same bytes both ways, and returns what was recorded.
fn capture_unchanged(calls: &[(&str, Value)]) -> vigil_std::sink::Captured {
    let (plain, instrumented) = agents();
    capture(|| {
        for (url, request) in calls {
            let expected = call(&plain, url, request);
            assert_eq!(
                call(&instrumented, url, request),
                expected,
                "bytes unchanged"
            );
        }
    })
}

fn openai_request(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.2,
           "max_tokens": 50, "stream": stream, "tools": [{"type": "function"}], "user": "u1"})
}

fn anthropic_request(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 50,
           "system": "Be brief.", "stream": stream, "temperature": 0.5})
}

#[test]
fn openai_calls_become_llm_spans_with_the_replay_keys() {
    let fake = FakeLlm::start();
    let (plain, instrumented) = agents();
    let url = format!("{}/v1/chat/completions", fake.url());
    let c = capture(|| {
        vigil_std::trace("agent", |_| {
            let expected = call(&plain, &url, &openai_request("gpt-4o", false));
            let got = call(&instrumented, &url, &openai_request("gpt-4o", false));
            assert_eq!(got, expected, "the application sees the same response");
            call(&instrumented, &url, &openai_request("gpt-4o-tools", false));
        })
    });
    let spans: Vec<_> = c
        .spans()
        .filter(|s| s.name == "openai.chat.completions")
        .collect();
    assert_eq!(spans.len(), 2, "only the instrumented calls");
    let s = spans[0];
    assert_eq!((s.kind.as_str(), s.status.as_str()), ("llm", "ok"));
    assert_eq!(
        s.parent_span_id.as_ref(),
        Some(&c.span("agent").unwrap().span_id)
    );
    assert_eq!(
        s.input,
        // The whole request: replay keys as sent (no `null` for `top_p` or
        // `stop`, which were not), and every other field too.
        openai_request("gpt-4o", false)
    );
    assert_eq!(
        s.output,
        json!({"model": "gpt-4o", "content": "Hello from the fake.", "role": "assistant",
               "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}})
    );
    assert_eq!(
        spans[1].output["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
}

#[test]
fn anthropic_calls_become_llm_spans_with_the_replay_keys() {
    let fake = FakeLlm::start();
    let (plain, instrumented) = agents();
    let url = format!("{}/v1/messages", fake.url());
    let c = capture(|| {
        let expected = call(&plain, &url, &anthropic_request("claude-x-tools", false));
        assert_eq!(
            call(
                &instrumented,
                &url,
                &anthropic_request("claude-x-tools", false)
            ),
            expected
        );
    });
    let s = c.span("anthropic.messages").unwrap();
    assert_eq!(
        s.input,
        // The whole request, and the system prompt also as the first
        // message, where the server's replay reads it.
        json!({"model": "claude-x-tools",
               "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
               "max_tokens": 50, "system": "Be brief.", "stream": false, "temperature": 0.5})
    );
    assert_eq!(s.output["content"], json!(["Hello from the fake."]));
    assert_eq!(s.output["stop_reason"], "tool_use");
    assert_eq!(
        s.output["usage"],
        json!({"input_tokens": 12, "output_tokens": 5})
    );
    assert_eq!(
        s.output["tool_calls"],
        json!([{"id": "toolu_1", "name": "get_weather", "input": {"city": "Lisbon"}}])
    );
}

#[test]
fn streams_are_read_unchanged_while_the_span_accumulates() {
    let fake = FakeLlm::start();
    let openai = format!("{}/v1/chat/completions", fake.url());
    let anthropic = format!("{}/v1/messages", fake.url());
    let mut with_usage = openai_request("gpt-4o-tools", true);
    with_usage["stream_options"] = json!({"include_usage": true});
    let c = capture_unchanged(&[
        (&openai, with_usage),
        (&anthropic, anthropic_request("claude-x-tools", true)),
        (&openai, openai_request("gpt-4o-no-usage", true)),
    ]);
    let no_usage = c
        .spans()
        .find(|s| s.input["model"] == "gpt-4o-no-usage")
        .unwrap();
    assert_eq!(no_usage.output["content"], "Hello stream");
    assert_eq!(no_usage.output["usage"]["total_tokens"], Value::Null);
    assert_eq!(
        no_usage.metadata["vigil.usage_missing"],
        "not asked for: stream_options.include_usage was not set"
    );
    let o = c
        .spans()
        .find(|s| s.input["model"] == "gpt-4o-tools")
        .unwrap();
    assert!(o.metadata.get("vigil.usage_missing").is_none());
    assert_eq!(o.output["content"], "Hello stream");
    assert_eq!(o.output["usage"]["total_tokens"], 15);
    assert_eq!(
        o.output["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Lisbon\"}"
    );
    assert_eq!(o.events[0]["name"], "first_token");
    assert!(
        o.events[0]["attributes"]["time_to_first_token_ms"]
            .as_f64()
            .unwrap()
            >= 0.0
    );
    assert!(o.metadata.get("vigil.stream_incomplete").is_none());
    let a = c.span("anthropic.messages").unwrap();
    assert_eq!(a.output["content"], json!(["Hello stream"]));
    assert_eq!(
        a.output["usage"],
        json!({"input_tokens": 12, "output_tokens": 7})
    );
    assert_eq!(a.output["stop_reason"], "end_turn");
    assert_eq!(
        a.output["tool_calls"][0]["input"],
        json!({"city": "Lisbon"})
    );
    assert_eq!(a.events[0]["name"], "first_token");
}

#[test]
fn a_stream_dropped_early_ends_its_span_with_what_was_received() {
    let fake = FakeLlm::start();
    let (_, instrumented) = agents();
    let url = format!("{}/v1/chat/completions", fake.url());
    let c = capture(|| {
        let mut response = instrumented
            .post(&url)
            .send(openai_request("gpt-4o", true).to_string())
            .unwrap();
        let mut first = [0u8; 64];
        let n = response.body_mut().as_reader().read(&mut first).unwrap();
        assert!(n > 0);
        drop(response);
    });
    let s = c.span("openai.chat.completions").unwrap();
    assert_eq!(s.metadata["vigil.stream_incomplete"], true);
    assert_eq!(s.status, "ok");
}

#[test]
fn provider_errors_mark_the_span_and_reach_the_application_unchanged() {
    let fake = FakeLlm::start();
    let (plain, instrumented) = agents();
    let url = format!("{}/v1/chat/completions", fake.url());
    let c = capture(|| {
        for model in ["fail-401", "fail-429", "fail-500", "malformed"] {
            let request = openai_request(model, false);
            assert_eq!(
                call(&instrumented, &url, &request),
                call(&plain, &url, &request),
                "{model}"
            );
        }
    });
    let spans: Vec<_> = c
        .spans()
        .filter(|s| s.name == "openai.chat.completions")
        .collect();
    assert_eq!(spans.len(), 4);
    assert!(spans.iter().all(|s| s.status == "error"));
    // One trace per call, so compare by the model asked for.
    let error = |model: &str| {
        let span = spans.iter().find(|s| s.input["model"] == model).unwrap();
        span.output["error"].as_str().unwrap().to_owned()
    };
    assert_eq!(error("fail-401"), "Incorrect API key provided");
    assert_eq!(error("fail-429"), "Rate limit reached for requests");
    assert_eq!(
        error("fail-500"),
        "The server had an error while processing your request"
    );
    assert!(error("malformed").starts_with("the response is not JSON"));
}

#[test]
fn with_status_errors_on_the_application_gets_the_same_error() {
    let fake = FakeLlm::start();
    vigil_std::activate_all_integrations();
    let instrumented = vigil_std::ureq::instrumented_agent();
    let url = format!("{}/v1/messages", fake.url());
    let c = capture(|| {
        let err = instrumented
            .post(&url)
            .send(anthropic_request("fail-401", false).to_string())
            .unwrap_err();
        assert!(matches!(err, ureq::Error::StatusCode(401)), "{err}");
    });
    let s = c.span("anthropic.messages").unwrap();
    assert_eq!(s.status, "error");
    assert!(s.output["error"].as_str().unwrap().contains("401"));
}

#[test]
fn other_requests_pass_untouched_and_helpers_serve_any_client() {
    let fake = FakeLlm::start();
    let (_, instrumented) = agents();
    let c = capture(|| {
        let r = instrumented
            .post(format!("{}/v1/files", fake.url()))
            .send("{}");
        assert_eq!(r.unwrap().status(), 404);
        vigil_std::integrations::record_openai_chat(
            &openai_request("m", false),
            Err("connection reset"),
        );
        let mut call = LlmCall::start(Provider::Anthropic, &anthropic_request("c", true));
        for line in [
            "event: message_start",
            r#"data: {"type":"message_start","message":{"model":"c","role":"assistant","usage":{"input_tokens":3}}}"#,
            r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}}"#,
            r#"data: {"type":"message_stop"}"#,
        ] {
            call.feed_line(line);
        }
        call.finish_stream();
    });
    assert_eq!(c.spans().count(), 2, "no span for /v1/files");
    let failed = c.span("openai.chat.completions").unwrap();
    assert_eq!(
        (failed.status.as_str(), &failed.output["error"]),
        ("error", &json!("connection reset"))
    );
    let anthropic = c.span("anthropic.messages").unwrap();
    assert_eq!(anthropic.output["content"], json!(["ok"]));
    assert_eq!(
        anthropic.metadata["vigil.usage_missing"],
        "the stream ended without it"
    );
}

#[test]
fn stream_error_events_fail_the_span_and_cut_streams_are_marked() {
    let fake = FakeLlm::start();
    let openai = format!("{}/v1/chat/completions", fake.url());
    let anthropic = format!("{}/v1/messages", fake.url());
    let c = capture_unchanged(&[
        (&openai, openai_request("gpt-overloaded", true)),
        (&anthropic, anthropic_request("claude-overloaded", true)),
        (&openai, openai_request("gpt-cut", true)),
        (&anthropic, anthropic_request("claude-cut", true)),
    ]);
    for model in ["gpt-overloaded", "claude-overloaded"] {
        let s = c.spans().find(|s| s.input["model"] == model).unwrap();
        assert_eq!(s.status, "error", "{model}");
        assert_eq!(s.output["error"], "Overloaded", "{model}");
        assert!(
            s.output["content"].to_string().contains("Hello stream"),
            "{model}: kept what came"
        );
        assert_eq!(s.metadata["vigil.stream_incomplete"], true, "{model}");
    }
    for model in ["gpt-cut", "claude-cut"] {
        let s = c.spans().find(|s| s.input["model"] == model).unwrap();
        assert_eq!(s.status, "ok", "{model}");
        assert_eq!(s.metadata["vigil.stream_incomplete"], true, "{model}");
    }
}

#[test]
fn odd_stream_data_never_panics_or_allocates_for_absurd_indices() {
    use vigil_std::llm::{anthropic, openai};
    let mut a = anthropic::StreamAccumulator::default();
    for line in [
        r#"data: {"type":"message_start","message":"not an object"}"#,
        r#"data: {"type":"content_block_start","index":0,"content_block":5}"#,
        r#"data: {"type":"content_block_start","index":1000000000000,"content_block":{"type":"text","text":""}}"#,
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"data: {"type":"content_block_delta","index":0,"delta":{"text":"ok"}}"#,
        r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#,
        r#"data: {"type":"message_delta","usage":"odd"}"#,
        r#"data: {"type":"content_block_delta","index":0,"delta":{"partial_json":""}}"#,
    ] {
        a.feed_line(line);
    }
    let out = a.output();
    assert_eq!(out["content"], json!(["ok"]));
    assert_eq!(out["stop_reason"], "end_turn");
    assert_eq!(out["usage"]["output_tokens"], 3);

    let mut o = openai::StreamAccumulator::default();
    o.feed_line(r#"data: {"choices":[{"delta":{"tool_calls":[{"index":1000000000000,"function":{"name":"x"}}]}}]}"#);
    o.feed_line(r#"data: {"choices":[{"delta":{"content":"hi"}}]}"#);
    let out = o.output();
    assert_eq!(out["content"], "hi");
    assert!(
        out.get("tool_calls").is_none(),
        "the absurd index was ignored"
    );
}

#[test]
fn a_stream_nobody_asked_for_is_recorded_once() {
    let fake = FakeLlm::start();
    let url = format!("{}/v1/chat/completions", fake.url());
    let c = capture_unchanged(&[(&url, openai_request("gpt-always-stream", false))]);
    let spans: Vec<_> = c
        .spans()
        .filter(|s| s.name == "openai.chat.completions")
        .collect();
    assert_eq!(spans.len(), 1, "one span, not a phantom second one");
    assert_eq!(spans[0].output["content"], "Hello stream");
    assert!(spans[0].metadata.get("vigil.stream_incomplete").is_none());
}

#[test]
fn responses_and_embeddings_calls_are_recorded_through_the_same_parsers() {
    let fake = FakeLlm::start();
    let responses = format!("{}/v1/responses", fake.url());
    let embeddings = format!("{}/v1/embeddings", fake.url());
    let c = capture_unchanged(&[
        (
            &responses,
            json!({"model": "gpt-4.1", "instructions": "Be brief.", "input": "Hi"}),
        ),
        (
            &responses,
            json!({"model": "gpt-4.1-streamed", "input": "Hi", "stream": true}),
        ),
        (
            &embeddings,
            json!({"model": "text-embedding-3-small", "input": ["a", "b"]}),
        ),
    ]);
    let whole = c.spans().find(|s| s.input["model"] == "gpt-4.1").unwrap();
    assert_eq!(whole.name, "openai.responses");
    assert_eq!(whole.kind, "llm");
    assert_eq!(whole.input["messages"][0]["role"], "system");
    assert_eq!(whole.output["content"], "Hello from the fake.");
    assert_eq!(whole.output["usage"]["total_tokens"], 17);
    assert_eq!(whole.metadata["server.address"], "127.0.0.1");
    let streamed = c
        .spans()
        .find(|s| s.input["model"] == "gpt-4.1-streamed")
        .unwrap();
    assert_eq!(streamed.output["content"], "Hello stream");
    assert_eq!(streamed.output["usage"]["total_tokens"], 15);
    assert_eq!(streamed.events[0]["name"], "first_token");
    let e = c.span("openai.embeddings").unwrap();
    assert_eq!(e.kind, "retriever");
    assert_eq!(
        (&e.output["count"], &e.output["dimensions"]),
        (&json!(2), &json!(8))
    );
    assert_eq!(e.output["usage"]["prompt_tokens"], 6);
}

/// A middleware records a chat request's input from its text; the same
/// request given as a parsed value records the same input.
#[test]
fn an_input_recorded_from_the_text_is_the_input_of_the_value() {
    let bodies = [
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi \"there\"\n\u00e9\ud83d\ude00"}],"temperature":0.7,"seed":18446744073709551615,"n":1e2}"#,
        r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true},"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}"#,
        r#"{"model":"text-embedding-3-small","input":["a","b"],"dimensions":8}"#,
    ];
    for body in bodies {
        let value: Value = serde_json::from_str(body).unwrap();
        let path = if body.contains("embedding") {
            "/v1/embeddings"
        } else {
            "/v1/chat/completions"
        };
        let from_text = capture(|| {
            let call = LlmCall::for_request("POST", path, body.as_bytes()).unwrap();
            assert_eq!(call.is_stream(), value["stream"] == true);
        });
        let api = vigil_std::llm::Api::from_path(path).unwrap();
        let from_value = capture(|| drop(LlmCall::start(api, &value)));
        let (a, b) = (
            from_text.spans().next().unwrap(),
            from_value.spans().next().unwrap(),
        );
        assert_eq!(a.input, b.input, "{body}");
        assert_eq!(a.input, value, "{body}");
    }
    // Not JSON: recorded all the same, with no input.
    let c = capture(|| {
        drop(LlmCall::for_request(
            "POST",
            "/v1/chat/completions",
            b"{oops",
        ))
    });
    assert_eq!(c.spans().next().unwrap().input, json!({"value": null}));
}
