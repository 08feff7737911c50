//! The keys Vigil writes on an `llm` span: the integrations write them, the
//! Vigil server reads them, and translations into other vocabularies
//! ([`super::genai`], [`super::openinference`]) start from them.
//!
//! The input is the request as sent: the server's replay re-runs a call
//! from its [`MODEL`], [`MESSAGES`] and, when present, [`TEMPERATURE`],
//! [`MAX_TOKENS`], [`TOP_P`] and [`STOP`] (Anthropic: [`STOP_SEQUENCES`], and
//! the system prompt only from a [`SYSTEM_ROLE`] message in [`MESSAGES`]).
//! The output is [`MODEL`], [`CONTENT`], [`ROLE`], [`USAGE`] (Anthropic
//! also [`STOP_REASON`]) and, when the model called tools, [`TOOL_CALLS`];
//! a failed call's output is `{ERROR: message}`.
//!
//! ```
//! use serde_json::json;
//! use vigil::llm::{keys, openai};
//!
//! let response = json!({
//!     "model": "gpt-4o",
//!     "choices": [{ "message": { "role": "assistant", "content": "Hi!" } }],
//!     "usage": { "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5 }
//! });
//! let output = openai::output(&response);
//! assert_eq!(output[keys::CONTENT], "Hi!");
//! assert_eq!(output[keys::USAGE][keys::TOTAL_TOKENS], 5);
//! ```

// The input (the request).

/// The model asked for (input) or that answered (output).
pub const MODEL: &str = "model";
/// The conversation sent, an array of `{ROLE, CONTENT}` messages.
pub const MESSAGES: &str = "messages";
/// The sampling temperature, a replay parameter.
pub const TEMPERATURE: &str = "temperature";
/// The most tokens to generate, a replay parameter.
pub const MAX_TOKENS: &str = "max_tokens";
/// The nucleus-sampling cut-off, a replay parameter.
pub const TOP_P: &str = "top_p";
/// OpenAI's stop sequences (a string or an array), a replay parameter.
pub const STOP: &str = "stop";
/// Anthropic's stop sequences, forwarded by replay when present.
pub const STOP_SEQUENCES: &str = "stop_sequences";
/// Anthropic's top-level system prompt, kept as sent; replay reads the
/// copy put first in [`MESSAGES`] with role [`SYSTEM_ROLE`].
pub const SYSTEM: &str = "system";
/// Whether the request asked for a streamed answer (`true`).
pub const STREAM: &str = "stream";
/// A message's author (input messages), or the answer's (output).
pub const ROLE: &str = "role";
/// A message's text (input), or the answer's (output: a string for
/// OpenAI, the text blocks for Anthropic).
pub const CONTENT: &str = "content";
/// The role of the system prompt's message, the only place replay takes a
/// system prompt from.
pub const SYSTEM_ROLE: &str = "system";
/// The key under which a request or response that is not a JSON object is
/// kept: `{VALUE: body}`.
pub const VALUE: &str = "value";

// The output (the response).

/// The tokens used: `{PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS}` for
/// OpenAI, `{INPUT_TOKENS, OUTPUT_TOKENS}` for Anthropic.
pub const USAGE: &str = "usage";
/// OpenAI: tokens in the prompt.
pub const PROMPT_TOKENS: &str = "prompt_tokens";
/// OpenAI: tokens in the answer.
pub const COMPLETION_TOKENS: &str = "completion_tokens";
/// OpenAI: prompt and answer tokens together.
pub const TOTAL_TOKENS: &str = "total_tokens";
/// Anthropic: tokens in the prompt.
pub const INPUT_TOKENS: &str = "input_tokens";
/// Anthropic: tokens in the answer.
pub const OUTPUT_TOKENS: &str = "output_tokens";
/// OpenAI usage: the details of `prompt_tokens` (`cached_tokens`).
pub const PROMPT_TOKENS_DETAILS: &str = "prompt_tokens_details";
/// OpenAI usage: the details of `completion_tokens` (`reasoning_tokens`).
pub const COMPLETION_TOKENS_DETAILS: &str = "completion_tokens_details";
/// Anthropic usage: input tokens read from the prompt cache.
pub const CACHE_READ_INPUT_TOKENS: &str = "cache_read_input_tokens";
/// Anthropic usage: input tokens written to the prompt cache.
pub const CACHE_CREATION_INPUT_TOKENS: &str = "cache_creation_input_tokens";
/// Embeddings output: how many vectors came back.
pub const COUNT: &str = "count";
/// Embeddings output: the length of a vector.
pub const DIMENSIONS: &str = "dimensions";
/// Anthropic: why the model stopped (`end_turn`, `max_tokens`, `tool_use`...).
pub const STOP_REASON: &str = "stop_reason";
/// The tools the model called, when it called any.
pub const TOOL_CALLS: &str = "tool_calls";
/// A failed call's message: the whole output is `{ERROR: message}`, or the
/// partial output of a broken stream with it added.
pub const ERROR: &str = "error";

// Metadata and events.

/// Metadata: the provider's integration name (`openai`, `anthropic`).
pub const PROVIDER: &str = "provider";
/// Metadata, `true`: the stream ended before the provider's end marker.
pub const STREAM_INCOMPLETE: &str = "vigil.stream_incomplete";
/// Metadata: why a call's output has no usage although the provider could
/// have sent it (a stream that was not asked for its usage, or that ended,
/// or was dropped by its reader, before the usage came).
pub const USAGE_MISSING: &str = "vigil.usage_missing";
/// Metadata: why the output was not recorded (a body too large to keep).
pub const OUTPUT_NOT_RECORDED: &str = "vigil.output_not_recorded";
/// Metadata: the host the call went to (the GenAI conventions' name), which
/// tells apart OpenAI-compatible servers (Ollama, vLLM, OpenRouter...).
pub const SERVER_ADDRESS: &str = "server.address";
/// The event stamped when a stream's first content arrives.
pub const FIRST_TOKEN: &str = "first_token";
/// The [`FIRST_TOKEN`] event's attribute: milliseconds since the call started.
pub const TIME_TO_FIRST_TOKEN_MS: &str = "time_to_first_token_ms";

/// The keys of an OpenAI-style input that the server's replay forwards to
/// the provider: [`MODEL`] and [`MESSAGES`] always, the parameters whenever
/// the key is present (even as `null`, so a parameter the application did
/// not send must stay absent).
pub const OPENAI_REPLAY_KEYS: [&str; 6] = [MODEL, MESSAGES, TEMPERATURE, MAX_TOKENS, TOP_P, STOP];

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's protocol spells these out; a change here breaks replay
    /// and every span already stored.
    #[test]
    fn the_keys_are_the_protocol_s() {
        assert_eq!(
            OPENAI_REPLAY_KEYS,
            [
                "model",
                "messages",
                "temperature",
                "max_tokens",
                "top_p",
                "stop"
            ]
        );
        assert_eq!(
            [USAGE, PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS],
            [
                "usage",
                "prompt_tokens",
                "completion_tokens",
                "total_tokens"
            ]
        );
        assert_eq!(
            [
                INPUT_TOKENS,
                OUTPUT_TOKENS,
                STOP_REASON,
                STOP_SEQUENCES,
                SYSTEM
            ],
            [
                "input_tokens",
                "output_tokens",
                "stop_reason",
                "stop_sequences",
                "system"
            ]
        );
        assert_eq!(
            [CONTENT, ROLE, TOOL_CALLS, ERROR],
            ["content", "role", "tool_calls", "error"]
        );
        assert_eq!(SYSTEM_ROLE, "system");
    }
}
