//! A `tracing` field, typed, and where each one goes on a Vigil span.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;
use tracing_core::field::{Field, Visit};

/// One field's value, as typed as `tracing` gave it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldValue<'a> {
    Str(&'a str),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Bool(bool),
}

impl Serialize for FieldValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            FieldValue::Str(v) => s.serialize_str(v),
            FieldValue::I64(v) => s.serialize_i64(v),
            FieldValue::U64(v) => s.serialize_u64(v),
            FieldValue::I128(v) => s.serialize_i128(v),
            FieldValue::U128(v) => s.serialize_u128(v),
            FieldValue::F64(v) => s.serialize_f64(v),
            FieldValue::Bool(v) => s.serialize_bool(v),
        }
    }
}

impl FieldValue<'_> {
    pub(crate) fn to_json(self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Receives each field of a span, a record or an event.
pub(crate) trait FieldSink {
    fn field(&mut self, name: &'static str, value: FieldValue<'_>);
}

/// A `tracing` visitor that hands every field to a [`FieldSink`] with its
/// type kept: numbers stay numbers (`u64` included, which `tracing`'s
/// default would turn into text), `Debug` values become their text.
pub(crate) struct Visitor<'a, S>(pub(crate) &'a mut S);

impl<S: FieldSink> Visit for Visitor<'_, S> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.field(field.name(), FieldValue::Str(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.field(field.name(), FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.field(field.name(), FieldValue::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.0.field(field.name(), FieldValue::I128(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.0.field(field.name(), FieldValue::U128(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.field(field.name(), FieldValue::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.field(field.name(), FieldValue::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = value.to_string();
        self.0.field(field.name(), FieldValue::Str(&text));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.0.field(field.name(), FieldValue::Str(&text));
    }
}

/// What a field means to a Vigil span.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// `otel.name`: the span's name.
    Name,
    /// `otel.status_code`, `error`, `exception.*`: the span failed (when
    /// the value says so).
    Failure,
    /// `otel.kind` and the like: about OpenTelemetry export, not kept.
    Ignored,
    /// `gen_ai.*`, OpenInference's: for [`vigil_core::llm::attributes`].
    GenAi,
    /// Anything else: kept as metadata.
    Metadata,
}

pub(crate) fn role(name: &str) -> Role {
    match name {
        "otel.name" => Role::Name,
        "otel.status_code" | "otel.status_description" | "otel.status_message" | "error" => {
            Role::Failure
        }
        "otel.kind" => Role::Ignored,
        _ if name.starts_with("exception.") => Role::Failure,
        _ if name.starts_with("gen_ai.")
            || name.starts_with("llm.")
            || name.starts_with("openinference.")
            || name == "input.value"
            || name == "output.value" =>
        {
            Role::GenAi
        }
        _ => Role::Metadata,
    }
}
