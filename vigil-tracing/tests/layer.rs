//! Real `tracing` spans through `tracing-subscriber`'s registry and the
//! Vigil layer, checked with `vigil::sink::capture`.

use serde_json::json;
use tracing::field::Empty;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;
use vigil::sink::{capture, capture_with, Captured};
use vigil::SpanKind;

/// Runs `f` with the Vigil layer as the only layer, capturing what it records.
fn traced(f: impl FnOnce()) -> Captured {
    let subscriber = tracing_subscriber::registry().with(vigil_tracing::layer());
    capture(|| tracing::subscriber::with_default(subscriber, f))
}

#[test]
fn fields_are_typed_metadata_and_events_carry_level_target_and_fields() {
    let captured = traced(|| {
        let span = tracing::info_span!(
            "handle",
            user = "ada",
            attempt = 3i64,
            bytes = 18_446_744_073_709_551_615u64,
            ratio = 0.5f64,
            cached = true,
            path = ?std::path::Path::new("/tmp/x"),
            later = Empty,
        );
        let _entered = span.enter();
        span.record("later", 7u64);
        tracing::warn!(retries = 2u64, "slow answer");
    });
    let span = captured.span("handle").unwrap();
    assert_eq!(span.kind, "custom");
    assert_eq!(span.status, "ok");
    assert_eq!(
        span.metadata,
        json!({"user": "ada", "attempt": 3, "bytes": 18_446_744_073_709_551_615u64,
               "ratio": 0.5, "cached": true, "path": "\"/tmp/x\"", "later": 7})
    );
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.events[0]["name"], "slow answer");
    assert_eq!(
        span.events[0]["attributes"],
        json!({"retries": 2, "level": "WARN", "target": "layer"})
    );
}

#[test]
fn an_error_event_or_an_error_field_marks_the_span_failed() {
    let captured = traced(|| {
        let a = tracing::info_span!("by-event");
        a.in_scope(|| tracing::error!("disk full"));
        let _b = tracing::info_span!("by-field", error = "timed out").entered();
        drop(_b);
        let _c = tracing::info_span!("by-otel-status", otel.status_code = "ERROR").entered();
        drop(_c);
        let _d = tracing::info_span!("by-exception", exception.message = "boom").entered();
        drop(_d);
        let _e = tracing::info_span!("fine", otel.status_code = "OK").entered();
    });
    for name in ["by-event", "by-field", "by-otel-status", "by-exception"] {
        assert_eq!(captured.span(name).unwrap().status, "error", "{name}");
    }
    assert_eq!(
        captured.span("by-field").unwrap().metadata["error"],
        "timed out"
    );
    assert_eq!(
        captured.span("by-exception").unwrap().metadata["error"],
        "boom"
    );
    assert_eq!(captured.span("fine").unwrap().status, "ok");
}

#[test]
fn tracing_and_vigil_spans_make_one_tree_both_ways_and_across_threads() {
    let captured = traced(|| {
        vigil::trace("request", |_| {
            let outer = tracing::info_span!("plan");
            let _in = outer.enter();
            vigil::span("retrieve", SpanKind::Retriever, |_| {
                tracing::info_span!("rank").in_scope(|| ());
            });
            // The tracing span entered on another thread is current there.
            let moved = outer.clone();
            std::thread::spawn(move || {
                let _entered = moved.enter();
                vigil::span("worker", SpanKind::Tool, |_| ());
            })
            .join()
            .unwrap();
            // An explicit parent wins over the current span.
            tracing::info_span!(parent: None, "detached-root").in_scope(|| ());
            tracing::info_span!(parent: &outer, "explicit-child").in_scope(|| ());
        });
    });
    let id = |name: &str| captured.span(name).unwrap().span_id.clone();
    let parent = |name: &str| captured.span(name).unwrap().parent_span_id.clone();
    assert_eq!(parent("plan"), Some(id("request")));
    assert_eq!(parent("retrieve"), Some(id("plan")));
    assert_eq!(parent("rank"), Some(id("retrieve")));
    assert_eq!(parent("worker"), Some(id("plan")));
    assert_eq!(parent("explicit-child"), Some(id("plan")));
    // A `tracing` root made inside a Vigil trace stays in it.
    assert_eq!(parent("detached-root"), Some(id("plan")));
    let trace = &captured.span("request").unwrap().trace_id;
    assert!(captured.spans().all(|s| &s.trace_id == trace), "one trace");
}

#[test]
fn a_root_outside_any_trace_starts_one_unless_roots_are_off() {
    let captured = traced(|| {
        tracing::info_span!("job").in_scope(|| tracing::info_span!("step").in_scope(|| ()));
    });
    let job = captured.span("job").unwrap();
    assert_eq!(job.parent_span_id, None, "the root of its own trace");
    assert_eq!(
        captured.span("step").unwrap().parent_span_id,
        Some(job.span_id.clone())
    );

    let subscriber =
        tracing_subscriber::registry().with(vigil_tracing::layer().record_roots(false));
    let captured = capture(|| {
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("outside").in_scope(|| ());
            vigil::trace("inside", |_| tracing::info_span!("kept").in_scope(|| ()));
        })
    });
    assert!(captured.span("outside").is_none());
    let kept = captured.span("kept").unwrap();
    assert_eq!(
        kept.parent_span_id,
        Some(captured.span("inside").unwrap().span_id.clone())
    );
}

#[test]
fn per_layer_filters_choose_the_spans_and_parents_skip_the_rest() {
    let filter = Targets::new()
        .with_target("noisy", LevelFilter::OFF)
        .with_default(LevelFilter::INFO);
    let subscriber =
        tracing_subscriber::registry().with(vigil_tracing::layer().with_filter(filter));
    let captured = capture(|| {
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("agent").in_scope(|| {
                tracing::info_span!(target: "noisy", "poll").in_scope(|| {
                    tracing::info_span!("tool").in_scope(|| ());
                    tracing::debug_span!("too-fine").in_scope(|| ());
                });
            });
        })
    });
    assert!(captured.span("poll").is_none() && captured.span("too-fine").is_none());
    let agent = captured.span("agent").unwrap();
    assert_eq!(
        captured.span("tool").unwrap().parent_span_id,
        Some(agent.span_id.clone())
    );
}

/// What rig-core 0.44 emits for a chat turn: the GenAI fields declared
/// empty and recorded as the answer comes, messages as JSON text.
fn rig_like_chat() {
    let span = tracing::info_span!(
        target: "rig::completions",
        "chat",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = "openai",
        gen_ai.request.model = "gpt-4o-mini",
        gen_ai.system_instructions = r#"[{"type":"text","content":"Be terse."}]"#,
        gen_ai.request.temperature = 0.2f64,
        gen_ai.response.id = Empty,
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.input.messages = Empty,
        gen_ai.output.messages = Empty,
    );
    let _entered = span.enter();
    span.record(
        "gen_ai.input.messages",
        r#"[{"role":"user","parts":[{"type":"text","content":"Hi"}]}]"#,
    );
    span.record("gen_ai.response.id", "chatcmpl-1");
    span.record("gen_ai.response.model", "gpt-4o-mini-2024-07-18");
    span.record("gen_ai.usage.input_tokens", 9u64);
    span.record("gen_ai.usage.output_tokens", 2u64);
    span.record(
        "gen_ai.output.messages",
        r#"[{"role":"assistant","parts":[{"type":"text","content":"Hello!"}],"finish_reason":"stop"}]"#,
    );
}

#[test]
fn genai_spans_look_like_vigils_own_llm_spans() {
    let captured = traced(|| {
        vigil::trace("turn", |_| {
            tracing::info_span!(
                "invoke_agent",
                gen_ai.operation.name = "invoke_agent",
                gen_ai.agent.name = "helper"
            )
            .in_scope(|| {
                rig_like_chat();
                tracing::info_span!(
                    "execute_tool",
                    gen_ai.operation.name = "execute_tool",
                    gen_ai.tool.name = "search"
                )
                .in_scope(|| ());
                tracing::info_span!("embed", gen_ai.operation.name = "embeddings").in_scope(|| ());
            });
        });
    });
    let chat = captured.span("chat").unwrap();
    assert_eq!(chat.kind, "llm");
    assert_eq!(
        chat.input,
        json!({"model": "gpt-4o-mini", "temperature": 0.2, "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Hi"},
        ]})
    );
    assert_eq!(
        chat.output,
        json!({"model": "gpt-4o-mini-2024-07-18", "content": "Hello!", "role": "assistant",
               "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}})
    );
    assert_eq!(chat.metadata["provider"], "openai");
    assert_eq!(chat.metadata["gen_ai.response.id"], "chatcmpl-1");
    // The same keys as the ureq integration's output for the same answer.
    let ureq_shaped = vigil::llm::openai::output(&json!({
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"message": {"role": "assistant", "content": "Hello!"}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }));
    assert_eq!(chat.output, ureq_shaped);
    // Costed as the integrations cost their calls.
    assert_eq!(chat.metadata["vigil.cost"]["model"], "gpt-4o-mini");
    let total = chat.metadata["vigil.cost"]["total_usd"].as_f64().unwrap();
    assert!(
        (total - (9.0 * 0.15 + 2.0 * 0.6) / 1e6).abs() < 1e-15,
        "{total}"
    );
    assert_eq!(chat.metadata["vigil.tokens"]["output_tokens"], 2);
    let agent = captured.span("invoke_agent").unwrap();
    assert_eq!(
        (agent.kind.as_str(), &agent.metadata["gen_ai.agent.name"]),
        ("agent", &json!("helper"))
    );
    assert_eq!(chat.parent_span_id, Some(agent.span_id.clone()));
    assert_eq!(captured.span("execute_tool").unwrap().kind, "tool");
    assert_eq!(captured.span("embed").unwrap().kind, "retriever");
}

#[test]
fn legacy_and_openinference_attributes_are_read_too() {
    let captured = traced(|| {
        tracing::info_span!(
            "old",
            gen_ai.system = "openai",
            gen_ai.request.model = "gpt-4",
            gen_ai.prompt = "Hi",
            gen_ai.completion = "Hello",
            gen_ai.usage.prompt_tokens = 3u64,
            gen_ai.usage.completion_tokens = 1u64
        )
        .in_scope(|| ());
        tracing::info_span!(
            "oi",
            openinference.span.kind = "LLM",
            llm.model_name = "gpt-4",
            input.value = "Hi",
            output.value = "Hello",
            llm.token_count.prompt = 3u64,
            llm.token_count.completion = 1u64
        )
        .in_scope(|| ());
    });
    let (old, oi) = (captured.span("old").unwrap(), captured.span("oi").unwrap());
    assert_eq!(oi.kind, "llm");
    assert_eq!(
        old.input,
        json!({"model": "gpt-4", "messages": [{"role": "user", "content": "Hi"}]})
    );
    assert_eq!(old.input, oi.input);
    assert_eq!(old.output, oi.output);
    assert_eq!(old.output["usage"]["total_tokens"], 4);
}

#[test]
fn capture_content_off_and_the_mask_hook_apply_to_what_comes_through_the_layer() {
    let subscriber = tracing_subscriber::registry().with(vigil_tracing::layer());
    let builder = vigil::Config::builder().capture_content(false);
    let ((), captured) = capture_with(builder, || {
        tracing::subscriber::with_default(subscriber, rig_like_chat)
    });
    let chat = captured.span("chat").unwrap();
    assert!(
        chat.input.is_null() && chat.output.is_null(),
        "no content: {chat:?}"
    );

    let subscriber = tracing_subscriber::registry().with(vigil_tracing::layer());
    let builder = vigil::Config::builder().mask(|field, value| {
        if field == vigil::Field::Metadata("user") {
            *value = json!("<redacted>");
        }
        if field == vigil::Field::Input {
            value["messages"] = json!("<redacted>");
        }
    });
    let ((), captured) = capture_with(builder, || {
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("handle", user = "ada").in_scope(rig_like_chat);
        })
    });
    assert_eq!(
        captured.span("handle").unwrap().metadata["user"],
        "<redacted>"
    );
    assert_eq!(
        captured.span("chat").unwrap().input["messages"],
        "<redacted>"
    );
}

#[test]
fn log_records_inside_a_span_become_events_with_their_own_target() {
    tracing_log::LogTracer::init().unwrap();
    let captured = traced(|| {
        tracing::info_span!("import").in_scope(|| {
            log::info!(target: "my_app::db", "rows read: {}", 12);
        });
    });
    let import = captured.span("import").unwrap();
    assert_eq!(import.events.len(), 1, "{:?}", import.events);
    assert_eq!(import.events[0]["name"], "rows read: 12");
    assert_eq!(import.events[0]["attributes"]["target"], "my_app::db");
    assert_eq!(import.events[0]["attributes"]["level"], "INFO");
}

#[test]
fn tracing_used_inside_the_mask_hook_is_left_out_rather_than_deadlock() {
    let subscriber = tracing_subscriber::registry().with(vigil_tracing::layer());
    let builder = vigil::Config::builder().mask(|_, _| {
        tracing::info!("masking");
        tracing::info_span!("in-mask").in_scope(|| ());
    });
    let ((), captured) = capture_with(builder, || {
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("handle", user = "ada", later = Empty);
            let _entered = span.enter();
            span.record("later", 1u64);
            tracing::info!(n = 1u64, "inside");
        })
    });
    let handle = captured.span("handle").unwrap();
    assert_eq!(
        (
            handle.metadata["user"].clone(),
            handle.metadata["later"].clone()
        ),
        (json!("ada"), json!(1))
    );
    assert_eq!(handle.events.len(), 1, "{:?}", handle.events);
    assert!(captured.span("in-mask").is_none());
}

#[test]
fn genai_crates_otel_fields_name_the_span_and_are_not_metadata() {
    // What `genai` (its `otel` feature) emits for a chat call.
    let captured = traced(|| {
        tracing::info_span!(
            "genai.chat",
            otel.name = "chat gpt-4o",
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.request.model = "gpt-4o",
            gen_ai.request.stream = false,
            server.address = "api.openai.com"
        )
        .in_scope(|| ());
    });
    let chat = captured.span("chat gpt-4o").unwrap();
    assert_eq!(chat.kind, "llm");
    assert_eq!(chat.input, json!({"model": "gpt-4o"}));
    assert_eq!(
        chat.metadata,
        json!({"gen_ai.request.stream": false, "server.address": "api.openai.com"})
    );
}

#[test]
fn events_below_the_event_level_are_left_out() {
    let captured = traced(|| {
        tracing::info_span!("call").in_scope(|| {
            tracing::trace!(body = "the whole prompt", "request body");
            tracing::debug!("connection reused");
            tracing::info!("answered");
        });
    });
    let names: Vec<_> = captured
        .span("call")
        .unwrap()
        .events
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(names, [json!("answered")]);

    let subscriber = tracing_subscriber::registry()
        .with(vigil_tracing::layer().event_level(vigil_tracing::Level::TRACE));
    let captured = capture(|| {
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("call").in_scope(|| tracing::trace!("request body"));
        })
    });
    assert_eq!(captured.span("call").unwrap().events.len(), 1);
}
