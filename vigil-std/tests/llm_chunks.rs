//! A body fed to `LlmCall` in any chunking is recorded the same: lines
//! split across chunks (`\r\n` split too, a character split between its
//! bytes) are put back together, for streams and whole answers alike.

use proptest::prelude::*;
use serde_json::{json, Value};
use vigil_std::integrations::LlmCall;
use vigil_std::sink::capture;

const STREAM: &str = "data: {\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\r\n\r\n\
data: {\"choices\":[{\"delta\":{\"content\":\"Ol\u{e1}, \u{1f600} \"}}]}\r\n\r\n\
data: {\"choices\":[{\"delta\":{\"content\":\"Lisboa\"}}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}\n\n\
data: [DONE]\n\n";

const WHOLE: &str = r#"{"model":"gpt-4o","choices":[{"message":{"role":"assistant","content":"Olá 😀"}}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;

/// What one call records when its body arrives cut at `cuts`.
fn recorded(stream: bool, body: &str, cuts: &[usize]) -> (Value, Value) {
    let request = json!({"model": "gpt-4o", "messages": [], "stream": stream,
                         "stream_options": {"include_usage": true}});
    let text = request.to_string();
    let c = capture(|| {
        let mut call =
            LlmCall::for_request("POST", "/v1/chat/completions", text.as_bytes()).unwrap();
        let bytes = body.as_bytes();
        let mut at = 0;
        for &cut in cuts {
            let cut = cut.clamp(at, bytes.len());
            call.feed(&bytes[at..cut]);
            at = cut;
        }
        call.feed(&bytes[at..]);
        call.finish_response(200);
    });
    let span = c.spans().next().unwrap();
    (span.output.clone(), span.metadata.clone())
}

proptest! {
    #[test]
    fn any_chunking_records_the_same(mut cuts in proptest::collection::vec(0..STREAM.len(), 0..24)) {
        cuts.sort_unstable();
        let whole = recorded(true, STREAM, &[]);
        prop_assert_eq!(&whole.0["content"], "Olá, 😀 Lisboa");
        prop_assert_eq!(&whole.0["usage"]["total_tokens"], 8);
        prop_assert_eq!(recorded(true, STREAM, &cuts), whole);
    }

    #[test]
    fn a_whole_answer_in_any_chunking_is_the_same(mut cuts in proptest::collection::vec(0..WHOLE.len(), 0..12)) {
        cuts.sort_unstable();
        let whole = recorded(false, WHOLE, &[]);
        prop_assert_eq!(&whole.0["content"], "Olá 😀");
        prop_assert_eq!(recorded(false, WHOLE, &cuts), whole);
    }
}
