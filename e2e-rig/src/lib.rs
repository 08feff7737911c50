//! The end-to-end test of vigil-tracing with rig, an LLM crate that emits
//! OpenTelemetry GenAI spans through `tracing`: see `tests/rig.rs`. This
//! library is empty.
