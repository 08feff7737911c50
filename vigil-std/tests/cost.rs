//! Calls recorded by the integrations and `log_llm_call` carry their
//! tokens and cost, at the built-in prices or the application's.

use serde_json::{json, Value};
use vigil_std::integrations::LlmCall;
use vigil_std::llm::pricing::{Price, PriceTable};
use vigil_std::llm::Provider;
use vigil_std::sink::{capture, capture_with, CapturedSpan};
use vigil_std::Config;
use vigil_test_server::llm::FakeLlm;

fn post(url: &str, body: Value) {
    let agent = vigil_std::ureq::instrumented_agent();
    let mut response = agent.post(url).send(body.to_string()).unwrap();
    response.body_mut().read_to_string().unwrap();
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

fn cost(span: &CapturedSpan) -> f64 {
    span.metadata["vigil.cost"]["total_usd"].as_f64().unwrap()
}

#[test]
fn calls_are_costed_by_the_model_that_answered() {
    let fake = FakeLlm::start();
    let openai = format!("{}/v1/chat/completions", fake.url());
    let anthropic = format!("{}/v1/messages", fake.url());
    let c = capture(|| {
        post(
            &openai,
            json!({"model": "gpt-4o-mini-2024-07-18", "messages": []}),
        );
        post(
            &anthropic,
            json!({"model": "claude-3-5-sonnet-20241022", "max_tokens": 9, "messages": []}),
        );
        post(&openai, json!({"model": "our-own-model", "messages": []}));
        post(
            &openai,
            json!({"model": "gpt-4o", "messages": [], "stream": true}),
        );
    });
    let by_model = |m: &str| c.spans().find(|s| s.input["model"] == m).unwrap();

    // The fake answers 12 prompt and 5 completion tokens.
    let mini = by_model("gpt-4o-mini-2024-07-18");
    assert_eq!(mini.metadata["vigil.cost"]["model"], "gpt-4o-mini");
    assert!(
        close(cost(mini), (12.0 * 0.15 + 5.0 * 0.6) / 1e6),
        "{}",
        mini.metadata
    );
    assert_eq!(
        mini.metadata["vigil.tokens"],
        json!({"input_tokens": 12, "output_tokens": 5}),
        "parts that are 0 are left out"
    );
    assert_eq!(
        mini.metadata["vigil.cost"]["prices_as_of"],
        PriceTable::builtin().as_of()
    );

    let sonnet = by_model("claude-3-5-sonnet-20241022");
    assert!(close(cost(sonnet), (12.0 * 3.0 + 5.0 * 15.0) / 1e6));

    let ours = by_model("our-own-model");
    assert_eq!(ours.metadata["vigil.unpriced"], "our-own-model");
    assert!(
        ours.metadata.get("vigil.cost").is_none(),
        "never costed at 0"
    );
    assert_eq!(ours.metadata["vigil.tokens"]["output_tokens"], 5);

    // A stream not asked for its usage has nothing to price.
    let streamed = by_model("gpt-4o");
    assert!(streamed.metadata.get("vigil.tokens").is_none());
    assert!(streamed.metadata.get("vigil.unpriced").is_none());
}

#[test]
fn the_application_s_prices_override_and_add_to_the_built_in_ones() {
    let mut ours = PriceTable::default();
    ours.insert(
        "gpt-4o",
        Price {
            input: 1.0,
            output: 1.0,
            cached_input: None,
            cache_write: None,
        },
    );
    ours.insert(
        "our-own-model",
        Price {
            input: 10.0,
            output: 20.0,
            cached_input: None,
            cache_write: None,
        },
    );
    let usage = json!({"model": "m", "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 10}});
    let (_, c) = capture_with(Config::builder().prices(ours), || {
        for model in ["gpt-4o", "our-own-model"] {
            LlmCall::start(Provider::OpenAi, &json!({"model": model, "messages": []}))
                .finish(&json!({"model": model, "choices": [], "usage": usage["usage"]}));
        }
        // log_llm_call, with Anthropic's names and cache tokens.
        let output = json!({"usage": {"input_tokens": 10, "output_tokens": 2,
                                      "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}});
        vigil_std::log_llm_call("claude-haiku-4-5", &json!({}), &output);
    });
    let by_model = |m: &str| c.spans().find(|s| s.input["model"] == m).unwrap();
    assert!(close(cost(by_model("gpt-4o")), 110.0 / 1e6));
    assert!(close(
        cost(by_model("our-own-model")),
        (100.0 * 10.0 + 10.0 * 20.0) / 1e6
    ));
    let haiku = c.span("llm:claude-haiku-4-5").unwrap();
    let expected = (10.0 * 1.0 + 100.0 * 0.1 + 20.0 * 1.25 + 2.0 * 5.0) / 1e6;
    assert!(close(cost(haiku), expected), "{}", haiku.metadata);
    assert_eq!(haiku.metadata["vigil.tokens"]["cached_input_tokens"], 100);
}

#[test]
fn vigil_prices_names_a_file_of_prices() {
    let path = std::env::temp_dir().join(format!("vigil-prices-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"{"as_of": "2026-12-01", "models": {"ours": {"input": 2, "output": 3}}}"#,
    )
    .unwrap();
    let file = path.to_string_lossy().into_owned();
    let config = Config::from_env_with(|v| (v == "VIGIL_PRICES").then(|| file.clone())).unwrap();
    assert_eq!(config.prices().find("ours").unwrap().1.output, 3.0);
    assert!(config.prices().find("gpt-4o").is_some());
    assert_eq!(config.prices().as_of(), "2026-12-01");
    std::fs::write(&path, r#"{"models": {"ours": {"input": "2"}}}"#).unwrap();
    let err = Config::from_env_with(|v| (v == "VIGIL_PRICES").then(|| file.clone())).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("VIGIL_PRICES: {file}: not a price table")),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
    let err =
        Config::from_env_with(|v| (v == "VIGIL_PRICES").then(|| "/no/such/prices.json".into()))
            .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("VIGIL_PRICES: /no/such/prices.json: "),
        "{err}"
    );
}

#[test]
fn a_trace_s_final_patch_carries_the_totals_of_its_calls() {
    let server = vigil_test_server::TestServer::start();
    let fake = FakeLlm::start();
    let config = Config::builder()
        .endpoint(server.url())
        .api_key(server.api_key())
        .flush_interval_ms(20)
        .build()
        .unwrap();
    let client = vigil_std::init(config).unwrap();
    let openai = format!("{}/v1/chat/completions", fake.url());
    let anthropic = format!("{}/v1/messages", fake.url());
    vigil_std::trace("agent-turn", |_| {
        post(
            &openai,
            json!({"model": "gpt-4o-mini-2024-07-18", "messages": []}),
        );
        // A call on another thread, in the trace's context.
        let context = vigil_std::Context::current();
        let url = anthropic.clone();
        std::thread::spawn(move || {
            let _attached = context.attach();
            post(
                &url,
                json!({"model": "claude-3-5-sonnet-20241022", "max_tokens": 9, "messages": []}),
            );
        })
        .join()
        .unwrap();
        post(&openai, json!({"model": "our-own-model", "messages": []}));
    });
    let report = client.shutdown();
    assert!(report.completed, "{report:?}");
    let traces = server.traces();
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].status.as_deref(), Some("ok"), "the PATCH arrived");
    let totals = &traces[0].metadata["vigil.totals"];
    let usd = totals["total_usd"].as_f64().unwrap();
    assert!(
        close(
            usd,
            (12.0 * 0.15 + 5.0 * 0.6 + 12.0 * 3.0 + 5.0 * 15.0) / 1e6
        ),
        "{totals}"
    );
    assert_eq!(
        (
            &totals["calls"],
            &totals["unpriced_calls"],
            &totals["input_tokens"],
            &totals["output_tokens"]
        ),
        (&json!(3), &json!(1), &json!(36), &json!(15))
    );
}
