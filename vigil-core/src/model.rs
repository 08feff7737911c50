//! Span kinds and statuses: the closed sets the Vigil server accepts.

use core::fmt;
use core::str::FromStr;

/// What a span represents. The server accepts exactly these six.
///
/// ```
/// use vigil::SpanKind;
///
/// let kind: SpanKind = "retriever".parse().unwrap();
/// assert_eq!(kind, SpanKind::Retriever);
/// assert_eq!(SpanKind::Llm.as_str(), "llm");
/// assert!("database".parse::<SpanKind>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SpanKind {
    /// A call to a language model.
    Llm,
    /// A tool or function invocation.
    Tool,
    /// A sequential processing step; the kind of a trace's root span.
    #[default]
    Chain,
    /// A retrieval (RAG) operation.
    Retriever,
    /// An agent's decision point.
    Agent,
    /// Anything else.
    Custom,
}

impl SpanKind {
    /// Every kind, in the order the server documents them.
    pub const ALL: [SpanKind; 6] = [
        SpanKind::Llm,
        SpanKind::Tool,
        SpanKind::Chain,
        SpanKind::Retriever,
        SpanKind::Agent,
        SpanKind::Custom,
    ];

    /// The wire name: `llm`, `tool`, `chain`, `retriever`, `agent` or `custom`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SpanKind::Llm => "llm",
            SpanKind::Tool => "tool",
            SpanKind::Chain => "chain",
            SpanKind::Retriever => "retriever",
            SpanKind::Agent => "agent",
            SpanKind::Custom => "custom",
        }
    }
}

/// How a span ended, as the server stores it.
///
/// ```
/// let captured = vigil::sink::capture(|| {
///     vigil::span("check", vigil::SpanKind::Tool, |s| s.set_status(vigil::SpanStatus::Error));
/// });
/// assert_eq!(captured.span("check").unwrap().status, vigil::SpanStatus::Error.as_str());
/// assert_eq!("ok".parse::<vigil::SpanStatus>(), Ok(vigil::SpanStatus::Ok));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SpanStatus {
    /// Finished successfully.
    Ok,
    /// Failed.
    Error,
    /// Not (yet) decided.
    #[default]
    Unset,
}

impl SpanStatus {
    /// Every status.
    pub const ALL: [SpanStatus; 3] = [SpanStatus::Ok, SpanStatus::Error, SpanStatus::Unset];

    /// The wire name: `ok`, `error` or `unset`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SpanStatus::Ok => "ok",
            SpanStatus::Error => "error",
            SpanStatus::Unset => "unset",
        }
    }
}

/// A kind or status name that the server would reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownName {
    expected: &'static str,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown name: expected one of {}", self.expected)
    }
}

impl core::error::Error for UnknownName {}

impl FromStr for SpanKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        SpanKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(UnknownName {
                expected: "llm, tool, chain, retriever, agent, custom",
            })
    }
}

impl FromStr for SpanStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        SpanStatus::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(UnknownName {
                expected: "ok, error, unset",
            })
    }
}

impl fmt::Display for SpanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SpanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_fail() {
        for kind in SpanKind::ALL {
            assert_eq!(kind.as_str().parse::<SpanKind>(), Ok(kind));
        }
        for status in SpanStatus::ALL {
            assert_eq!(status.as_str().parse::<SpanStatus>(), Ok(status));
        }
        assert!("LLM".parse::<SpanKind>().is_err());
        assert!("bogus".parse::<SpanStatus>().is_err());
    }
}
