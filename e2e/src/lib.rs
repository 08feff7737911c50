//! End-to-end tests with real LLM crates (see `tests/`) and the
//! `async_openai_agent` example. This library is empty.
