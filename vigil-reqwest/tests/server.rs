//! 100 concurrent calls from spawned tokio tasks, each under a parent span
//! of its own, delivered by the global client to the local Vigil server:
//! every call is stored once, under its own parent, inside its parent's time.

use std::time::Duration;

use reqwest_middleware::ClientBuilder;
use serde_json::{json, Value};
use vigil::instrument::InstrumentExt;
use vigil::{Config, Context, SpanKind};
use vigil_reqwest::LlmMiddleware;
use vigil_test_server::llm::FakeLlm;
use vigil_test_server::TestServer;

const TASKS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_from_spawned_tasks_each_land_under_their_own_parent() {
    let server = TestServer::builder()
        .rate_limit(10_000, Duration::from_secs(60))
        .start();
    let fake = FakeLlm::start();
    let config = Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .project_id("vigil-reqwest")
        .flush_interval_ms(20)
        .build()
        .unwrap();
    let client = vigil::init(config).unwrap();
    let http = ClientBuilder::new(reqwest::Client::new())
        .with(LlmMiddleware::default())
        .build();
    let url = format!("{}/v1/chat/completions", fake.url());

    let run = async {
        let mut tasks = Vec::new();
        for i in 0..TASKS {
            let (http, url) = (http.clone(), url.clone());
            let task = async move {
                let stream = i % 2 == 1;
                let body = json!({"model": format!("gpt-4o-{i}"), "stream": stream,
                                  "messages": [{"role": "user", "content": format!("question {i}")}]});
                let response = http.post(&url).json(&body).send().await.unwrap();
                // Streams are read in pieces, with the runtime free to move
                // the task between polls.
                let text = response.text().await.unwrap();
                assert!(text.contains(if stream { "stream" } else { "fake" }));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            .in_span(format!("task-{i}"), SpanKind::Agent);
            tasks.push(tokio::spawn(task.with_context(Context::current())));
        }
        for t in tasks {
            t.await.unwrap();
        }
    };
    run.in_trace("fan-out").await;
    let report = client.shutdown();
    assert!(report.completed, "{report:?}");
    assert_eq!(
        report.stats.spans_delivered,
        1 + 2 * TASKS as u64,
        "{report:?}"
    );

    let traces = server.traces();
    assert_eq!(traces.len(), 1, "one trace");
    let spans = &traces[0].spans;
    assert_eq!(spans.len(), 1 + 2 * TASKS, "root, tasks, calls: each once");
    let by_name = |name: &str| -> &Value {
        let mut found = spans.iter().filter(|s| s["name"] == name);
        let one = found.next().unwrap_or_else(|| panic!("{name} missing"));
        assert!(found.next().is_none(), "{name} twice");
        one
    };
    let root = by_name("fan-out");
    for i in 0..TASKS {
        let task = by_name(&format!("task-{i}"));
        assert_eq!(task["parent_span_id"], root["span_id"]);
        let call = spans
            .iter()
            .find(|s| s["input"]["model"] == format!("gpt-4o-{i}"))
            .unwrap_or_else(|| panic!("call {i} missing"));
        assert_eq!(call["name"], "openai.chat.completions");
        assert_eq!(
            call["parent_span_id"], task["span_id"],
            "call {i} under its task"
        );
        assert_eq!(
            call["input"]["messages"][0]["content"],
            format!("question {i}")
        );
        let content = if i % 2 == 1 {
            "Hello stream"
        } else {
            "Hello from the fake."
        };
        assert_eq!(call["output"]["content"], content, "call {i}");
        assert_eq!(call["status"], "ok");
        let time = |s: &Value, k: &str| s[k].as_str().unwrap().to_owned();
        assert!(
            time(call, "start_time") >= time(task, "start_time"),
            "call {i} starts in its task"
        );
        assert!(
            time(call, "end_time") <= time(task, "end_time"),
            "call {i} ends in its task"
        );
    }
}
