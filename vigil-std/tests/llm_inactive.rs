//! A deactivated integration's middleware records nothing, and the
//! registry names what it knows.

use vigil_std::integrations::{deactivate_integration, is_integration_active};
use vigil_std::sink::capture;
use vigil_test_server::llm::FakeLlm;

#[test]
fn deactivated_integrations_record_nothing_and_unknown_names_are_errors() {
    let fake = FakeLlm::start();
    let agent = vigil_std::ureq::instrumented_agent();
    let call = || {
        let body = r#"{"model":"gpt-4o","messages":[]}"#;
        agent
            .post(format!("{}/v1/chat/completions", fake.url()))
            .send(body)
            .unwrap();
    };
    assert!(is_integration_active("openai"), "on until deactivated");
    assert_eq!(capture(call).spans().count(), 1);
    deactivate_integration("openai");
    assert_eq!(capture(call).spans().count(), 0);
    vigil_std::activate_integration("openai").unwrap();
    assert_eq!(capture(call).spans().count(), 1);
    assert_eq!(vigil_std::available_integrations(), ["openai", "anthropic"]);
    let err = vigil_std::activate_integration("cohere").unwrap_err();
    assert!(err.to_string().contains("openai, anthropic"));
}
