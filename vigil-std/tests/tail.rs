//! Tail rules through the client: configured from code or the environment,
//! deciding on what the SDK records (errors, durations, LLM costs).

use std::time::Duration;

use serde_json::json;
use vigil_std::sink::capture_with;
use vigil_std::{Config, SpanKind};

/// Sample rate 0: only what a rule keeps is kept.
fn only_rules() -> vigil_std::config::ConfigBuilder {
    Config::builder().sample_rate(0.0)
}

#[test]
fn a_trace_costing_more_than_the_limit_is_kept_by_its_priced_calls() {
    let builder = only_rules().keep_costlier_than(0.01);
    let ((), captured) = capture_with(builder, || {
        for (name, prompt_tokens) in [("cheap", 100), ("costly", 10_000)] {
            vigil_std::trace(name, |_| {
                // gpt-4o: $2.50 per million input tokens, $10 per million output.
                let usage = json!({ "prompt_tokens": prompt_tokens, "completion_tokens": 100 });
                vigil_std::log_llm_call("gpt-4o", &json!({}), &json!({ "usage": usage }));
            });
        }
    });
    assert!(captured.span("cheap").is_none());
    let costly = captured.span("costly").expect("kept: $0.026 > $0.01");
    let total = costly.metadata["vigil.totals"]["total_usd"]
        .as_f64()
        .unwrap();
    assert!((total - 0.026).abs() < 1e-9, "{total}");
    assert_eq!(captured.spans().count(), 2, "the costly trace and its call");
    let stats = captured.report.unwrap().stats;
    assert_eq!(
        (stats.traces_kept_for_cost, stats.traces_sampled_out),
        (1, 1)
    );
    assert_eq!(stats.spans_sampled_out, 2);
}

#[test]
fn a_trace_slower_than_the_limit_is_kept() {
    let builder = only_rules().keep_slower_than(Duration::from_millis(30));
    let ((), captured) = capture_with(builder, || {
        vigil_std::trace("quick", |_| vigil_std::span("step", SpanKind::Tool, |_| ()));
        vigil_std::trace("slow", |_| {
            vigil_std::span("wait", SpanKind::Tool, |_| {
                std::thread::sleep(Duration::from_millis(40))
            })
        });
    });
    assert!(captured.span("quick").is_none() && captured.span("step").is_none());
    assert!(captured.span("slow").is_some() && captured.span("wait").is_some());
    let stats = captured.report.unwrap().stats;
    assert_eq!(
        (stats.traces_kept_for_latency, stats.traces_sampled_out),
        (1, 1)
    );
}

#[test]
fn a_span_failing_in_another_thread_keeps_its_trace() {
    let builder = only_rules().keep_errors(true);
    let ((), captured) = capture_with(builder, || {
        vigil_std::trace("fan-out", |_| {
            let worker = vigil_std::spawn(|| {
                vigil_std::span("worker", SpanKind::Tool, |s| s.record_error(&"failed"))
            });
            worker.join().unwrap();
        });
        vigil_std::trace("calm", |_| ());
    });
    assert!(captured.span("fan-out").is_some() && captured.span("worker").is_some());
    assert!(captured.span("calm").is_none());
}

#[test]
fn the_rules_come_from_the_environment_too() {
    let vars = [
        ("VIGIL_KEEP_ERRORS", "true"),
        ("VIGIL_KEEP_SLOWER_THAN_MS", "1500"),
        ("VIGIL_KEEP_COSTLIER_THAN_USD", "0.25"),
        ("VIGIL_TAIL_HOLD_TIMEOUT_MS", "90000"),
        ("VIGIL_SAMPLE_RATE", "0.2"),
        ("VIGIL_MAX_QUEUE_SIZE", "4000"),
    ];
    let env = |name: &str| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    };
    let rules = Config::from_env_with(env).unwrap().tail_rules();
    assert!(rules.any() && rules.keep_errors);
    assert_eq!(rules.keep_slower_than, Some(Duration::from_millis(1500)));
    assert_eq!(rules.keep_costlier_than_usd, Some(0.25));
    assert_eq!(rules.hold_timeout, Duration::from_secs(90));
    assert_eq!(rules.rate, vigil_core::sample::SampleRate::new(0.2));
    assert_eq!(rules.max_held, 2000, "half the queue");
    assert!(!Config::default().tail_rules().any(), "no rule by default");
}

#[test]
fn bad_rules_are_refused_naming_the_option() {
    let err = |name: &'static str, value: &'static str| {
        Config::from_env_with(move |n| (n == name).then(|| value.into()))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err("VIGIL_KEEP_ERRORS", "maybe"),
        "VIGIL_KEEP_ERRORS=\"maybe\": must be true or false"
    );
    assert_eq!(
        err("VIGIL_KEEP_COSTLIER_THAN_USD", "-1"),
        "VIGIL_KEEP_COSTLIER_THAN_USD: must be a number of US dollars, 0 or more (got -1)"
    );
    assert_eq!(
        err("VIGIL_TAIL_HOLD_TIMEOUT_MS", "0"),
        "VIGIL_TAIL_HOLD_TIMEOUT_MS: must be from 1 ms to 1 hour (got 0ns)"
    );
    let nan = Config::builder().keep_costlier_than(f64::NAN).build();
    assert_eq!(
        nan.unwrap_err().to_string(),
        "invalid `keep_costlier_than`: must be a number of US dollars, 0 or more (got NaN)"
    );
}
