//! A GenAI span's attributes as other instrumentation sends them (the
//! OpenTelemetry GenAI conventions, current and legacy, and OpenInference),
//! read into the input, output and usage of a Vigil span, in the same keys
//! Vigil's own OpenAI integration writes.
//!
//! ```
//! use serde_json::json;
//! use vigil::llm::attributes::GenAiAttributes;
//! use vigil::SpanKind;
//!
//! let mut call = GenAiAttributes::default();
//! assert!(call.record("gen_ai.operation.name", &json!("chat")));
//! call.record("gen_ai.request.model", &json!("gpt-4o"));
//! call.record("gen_ai.input.messages", &json!(r#"[{"role":"user","parts":[{"type":"text","content":"Hi"}]}]"#));
//! call.record("gen_ai.output.messages", &json!(r#"[{"role":"assistant","parts":[{"type":"text","content":"Hello"}]}]"#));
//! call.record("gen_ai.usage.input_tokens", &json!(5));
//! call.record("gen_ai.usage.output_tokens", &json!(1));
//! assert!(!call.record("user.id", &json!(7)), "not GenAI: the caller keeps it");
//!
//! assert_eq!(call.kind(), Some(SpanKind::Llm));
//! assert_eq!(call.input().unwrap(), json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}));
//! let output = call.output().unwrap();
//! assert_eq!((output["content"].clone(), output["role"].clone()), (json!("Hello"), json!("assistant")));
//! assert_eq!(output["usage"], json!({"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}));
//! ```

use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{Map, Value};

use super::{genai, keys, openinference};
use crate::SpanKind;

/// The GenAI attributes of one span, gathered as they arrive.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenAiAttributes {
    kind: Option<SpanKind>,
    provider: Option<Value>,
    request_model: Option<Value>,
    response_model: Option<Value>,
    parameters: Vec<(&'static str, Value)>,
    system: Option<Value>,
    input_messages: Option<Value>,
    output_messages: Option<Value>,
    input_value: Option<Value>,
    output_value: Option<Value>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    total_tokens: Option<u64>,
    tool_arguments: Option<Value>,
    tool_result: Option<Value>,
}

impl GenAiAttributes {
    /// Takes the attribute `key` if it belongs to the vocabulary and returns
    /// true; false (and nothing kept) for any other key.
    pub fn record(&mut self, key: &str, value: &Value) -> bool {
        let kept = |slot: &mut Option<Value>| *slot = Some(value.clone());
        match key {
            genai::OPERATION_NAME => {
                if let Some(kind) = value.as_str().and_then(genai::kind_of_operation) {
                    self.kind = Some(kind);
                }
            }
            openinference::SPAN_KIND => {
                if let Some(kind) = value.as_str().and_then(openinference::kind_of_span_kind) {
                    self.kind = Some(kind);
                }
            }
            genai::PROVIDER_NAME | genai::legacy::SYSTEM => kept(&mut self.provider),
            genai::REQUEST_MODEL | openinference::LLM_MODEL_NAME => kept(&mut self.request_model),
            genai::RESPONSE_MODEL => kept(&mut self.response_model),
            genai::TOOL_CALL_ARGUMENTS => kept(&mut self.tool_arguments),
            genai::TOOL_CALL_RESULT => kept(&mut self.tool_result),
            genai::SYSTEM_INSTRUCTIONS => kept(&mut self.system),
            genai::INPUT_MESSAGES => kept(&mut self.input_messages),
            genai::OUTPUT_MESSAGES => kept(&mut self.output_messages),
            genai::legacy::PROMPT | openinference::INPUT_VALUE => kept(&mut self.input_value),
            genai::legacy::COMPLETION | openinference::OUTPUT_VALUE => kept(&mut self.output_value),
            genai::USAGE_INPUT_TOKENS
            | genai::legacy::USAGE_PROMPT_TOKENS
            | openinference::LLM_TOKEN_COUNT_PROMPT => self.input_tokens = count(value),
            genai::USAGE_OUTPUT_TOKENS
            | genai::legacy::USAGE_COMPLETION_TOKENS
            | openinference::LLM_TOKEN_COUNT_COMPLETION => self.output_tokens = count(value),
            openinference::LLM_TOKEN_COUNT_TOTAL => self.total_tokens = count(value),
            _ => match parameter(key) {
                Some(name) => {
                    self.parameters.retain(|(n, _)| *n != name);
                    self.parameters.push((name, value.clone()));
                }
                None => return false,
            },
        }
        true
    }

    /// The kind its operation names, if it named one the vocabulary knows.
    pub fn kind(&self) -> Option<SpanKind> {
        self.kind
    }

    /// The provider (`gen_ai.provider.name`, or the legacy `gen_ai.system`).
    pub fn provider(&self) -> Option<&Value> {
        self.provider.as_ref()
    }

    /// Whether no attribute of the vocabulary was recorded.
    pub fn is_empty(&self) -> bool {
        *self == GenAiAttributes::default()
    }

    /// The span's input: for a model call, the request as Vigil's replay
    /// reads it (`model`, `messages` as `{role, content}`, the parameters
    /// sent); for a tool call, `{"arguments": ..}`; otherwise the input
    /// value, if any.
    pub fn input(&self) -> Option<Value> {
        let mut input = Map::new();
        if let Some(arguments) = &self.tool_arguments {
            input.insert("arguments".into(), parsed(arguments));
        }
        if let Some(model) = &self.request_model {
            input.insert(keys::MODEL.into(), model.clone());
        }
        let mut messages = Vec::new();
        let listed = self
            .input_messages
            .as_ref()
            .map(|l| messages_of(&parsed(l)));
        let opens_with_system = listed
            .as_ref()
            .and_then(|l| l.first())
            .is_some_and(|m| m.get(keys::ROLE).and_then(Value::as_str) == Some(keys::SYSTEM_ROLE));
        // Instrumentations that send the instructions apart may also list
        // them as the first message (rig-core does): written once.
        if let Some(system) = self
            .system
            .as_ref()
            .map(parsed)
            .filter(|_| !opens_with_system)
        {
            let content = text_of(&system).map_or(system, Value::String);
            messages.push(message(keys::SYSTEM_ROLE, content));
        }
        match (listed, &self.input_value) {
            (Some(list), _) => messages.extend(list),
            (None, Some(value)) => match parsed(value) {
                Value::Array(list) if list.iter().all(|m| m.get(keys::ROLE).is_some()) => {
                    messages.extend(list)
                }
                other => messages.push(message("user", other)),
            },
            (None, None) => {}
        }
        if !messages.is_empty() {
            input.insert(keys::MESSAGES.into(), Value::Array(messages));
        }
        for (name, value) in &self.parameters {
            input.insert((*name).into(), value.clone());
        }
        (!input.is_empty()).then_some(Value::Object(input))
    }

    /// The span's output: `model`, `content`, `role` and `usage`
    /// (`prompt_tokens`, `completion_tokens`, `total_tokens`) as far as they
    /// were recorded; for a tool call, `{"result": ..}`.
    pub fn output(&self) -> Option<Value> {
        let mut output = Map::new();
        if let Some(result) = &self.tool_result {
            output.insert("result".into(), parsed(result));
        }
        if let Some(model) = self.response_model.as_ref().or(self.request_model.as_ref()) {
            output.insert(keys::MODEL.into(), model.clone());
        }
        let answer = match (&self.output_messages, &self.output_value) {
            (Some(list), _) => messages_of(&parsed(list)).into_iter().last(),
            (None, Some(value)) => Some(message("assistant", parsed(value))),
            (None, None) => None,
        };
        if let Some(answer) = answer {
            let role = answer.get(keys::ROLE).cloned().unwrap_or(Value::Null);
            let content = answer.get(keys::CONTENT).cloned().unwrap_or(Value::Null);
            output.insert(keys::CONTENT.into(), content);
            output.insert(keys::ROLE.into(), role);
        }
        if self.input_tokens.is_some() || self.output_tokens.is_some() {
            let total = self
                .total_tokens
                .or_else(|| Some(self.input_tokens.unwrap_or(0) + self.output_tokens.unwrap_or(0)));
            let mut usage = Map::new();
            usage.insert(keys::PROMPT_TOKENS.into(), self.input_tokens.into());
            usage.insert(keys::COMPLETION_TOKENS.into(), self.output_tokens.into());
            usage.insert(keys::TOTAL_TOKENS.into(), total.into());
            output.insert(keys::USAGE.into(), Value::Object(usage));
        }
        (!output.is_empty()).then_some(Value::Object(output))
    }
}

/// The input key a request-parameter attribute is kept under.
fn parameter(attribute: &str) -> Option<&'static str> {
    genai::REQUEST_PARAMETERS
        .iter()
        .find(|(name, a)| *a == attribute && *name != keys::MODEL && *name != keys::STOP_SEQUENCES)
        .map(|(name, _)| *name)
}

/// A count sent as a number or as its decimal text.
fn count(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Attributes that hold JSON arrive as text: the JSON it holds, else itself.
fn parsed(value: &Value) -> Value {
    match value {
        Value::String(text) if text.starts_with(['[', '{']) => {
            serde_json::from_str(text).unwrap_or_else(|_| value.clone())
        }
        other => other.clone(),
    }
}

fn message(role: &str, content: Value) -> Value {
    let mut m = Map::new();
    m.insert(keys::ROLE.into(), Value::String(role.into()));
    m.insert(keys::CONTENT.into(), content);
    Value::Object(m)
}

/// Messages in the conventions' shape (`{role, parts: [{type, content}]}`)
/// as `{role, content}`: the text of text-only parts joined, else the parts
/// kept as they are. Messages already in that shape pass unchanged.
fn messages_of(list: &Value) -> Vec<Value> {
    let Some(list) = list.as_array() else {
        return alloc::vec![message("user", list.clone())];
    };
    list.iter()
        .map(|m| match (m.get(keys::ROLE), m.get("parts")) {
            (Some(role), Some(parts)) => {
                let content = text_of(parts).map_or_else(|| parts.clone(), Value::String);
                let mut out = message(role.as_str().unwrap_or("user"), content);
                if let (Some(reason), Value::Object(o)) = (m.get("finish_reason"), &mut out) {
                    o.insert("finish_reason".into(), reason.clone());
                }
                out
            }
            _ => m.clone(),
        })
        .collect()
}

/// The text of a list of parts that are all text, joined.
fn text_of(parts: &Value) -> Option<String> {
    let parts = parts.as_array()?;
    let mut text = String::new();
    for part in parts {
        if part.get("type").and_then(Value::as_str) != Some("text") {
            return None;
        }
        text.push_str(part.get(keys::CONTENT)?.as_str()?);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn legacy_names_and_openinference_read_the_same() {
        let mut legacy = GenAiAttributes::default();
        legacy.record("gen_ai.system", &json!("openai"));
        legacy.record("gen_ai.request.model", &json!("gpt-4o"));
        legacy.record("gen_ai.prompt", &json!("Hi"));
        legacy.record("gen_ai.completion", &json!("Hello"));
        legacy.record("gen_ai.usage.prompt_tokens", &json!("5"));
        legacy.record("gen_ai.usage.completion_tokens", &json!(1u64));
        legacy.record("gen_ai.request.temperature", &json!(0.2));
        let mut oi = GenAiAttributes::default();
        oi.record("openinference.span.kind", &json!("LLM"));
        oi.record("llm.model_name", &json!("gpt-4o"));
        oi.record("input.value", &json!("Hi"));
        oi.record("output.value", &json!("Hello"));
        oi.record("llm.token_count.prompt", &json!(5));
        oi.record("llm.token_count.completion", &json!(1));
        oi.record("llm.token_count.total", &json!(6));
        assert_eq!(oi.kind(), Some(SpanKind::Llm));
        assert_eq!(legacy.provider(), Some(&json!("openai")));
        let expected_in =
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]});
        assert_eq!(oi.input().unwrap(), expected_in);
        let mut with_temperature = expected_in.clone();
        with_temperature["temperature"] = json!(0.2);
        assert_eq!(legacy.input().unwrap(), with_temperature);
        assert_eq!(legacy.output(), oi.output());
        assert_eq!(legacy.output().unwrap()["usage"]["total_tokens"], 6);
    }

    #[test]
    fn system_instructions_come_first_and_non_text_parts_are_kept() {
        let mut call = GenAiAttributes::default();
        call.record("gen_ai.operation.name", &json!("chat"));
        call.record(
            "gen_ai.system_instructions",
            &json!(r#"[{"type":"text","content":"Be terse."}]"#),
        );
        let tool_call = json!([{"type": "tool_call", "name": "search", "arguments": {"q": "x"}}]);
        let messages = json!([
            {"role": "user", "parts": [{"type": "text", "content": "Find x"}]},
            {"role": "assistant", "parts": tool_call.clone()},
        ]);
        call.record(
            "gen_ai.input.messages",
            &json!(serde_json::to_string(&messages).unwrap()),
        );
        let input = call.input().unwrap();
        assert_eq!(
            input["messages"],
            json!([
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Find x"},
                {"role": "assistant", "content": tool_call},
            ])
        );
        assert_eq!(call.output(), None, "no answer, no usage recorded yet");
        // The instructions listed again as the first message are written once.
        let mut listed = call.clone();
        let again =
            json!([{"role": "system", "parts": [{"type": "text", "content": "Be terse."}]}]);
        listed.record(
            "gen_ai.input.messages",
            &json!(serde_json::to_string(&again).unwrap()),
        );
        assert_eq!(
            listed.input().unwrap()["messages"],
            json!([{"role": "system", "content": "Be terse."}])
        );
    }

    #[test]
    fn a_tool_calls_arguments_and_result_are_its_input_and_output() {
        let mut call = GenAiAttributes::default();
        call.record("gen_ai.operation.name", &json!("execute_tool"));
        call.record("gen_ai.tool.call.arguments", &json!(r#"{"city":"Lisbon"}"#));
        call.record("gen_ai.tool.call.result", &json!("sunny"));
        assert_eq!(call.kind(), Some(SpanKind::Tool));
        assert_eq!(
            call.input().unwrap(),
            json!({"arguments": {"city": "Lisbon"}})
        );
        assert_eq!(call.output().unwrap(), json!({"result": "sunny"}));
    }

    #[test]
    fn operations_map_to_kinds_and_unknown_keys_are_left() {
        for (op, kind) in [
            ("chat", SpanKind::Llm),
            ("execute_tool", SpanKind::Tool),
            ("invoke_agent", SpanKind::Agent),
            ("embeddings", SpanKind::Retriever),
        ] {
            let mut call = GenAiAttributes::default();
            assert!(call.record("gen_ai.operation.name", &json!(op)));
            assert_eq!(call.kind(), Some(kind), "{op}");
        }
        let mut call = GenAiAttributes::default();
        assert!(!call.record("http.method", &json!("GET")));
        assert!(call.is_empty());
    }
}
