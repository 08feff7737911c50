//! With no integration active, the middleware records nothing.

use vigil_std::sink::capture;
use vigil_test_server::llm::FakeLlm;

#[test]
fn inactive_integrations_record_nothing_and_unknown_names_are_errors() {
    let fake = FakeLlm::start();
    let agent = vigil_std::ureq::instrumented_agent();
    let c = capture(|| {
        let body = r#"{"model":"gpt-4o","messages":[]}"#;
        agent
            .post(format!("{}/v1/chat/completions", fake.url()))
            .send(body)
            .unwrap();
    });
    assert_eq!(c.spans().count(), 0);
    assert_eq!(vigil_std::available_integrations(), ["openai", "anthropic"]);
    let err = vigil_std::activate_integration("cohere").unwrap_err();
    assert!(err.to_string().contains("openai, anthropic"));
}
