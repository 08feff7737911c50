//! What a transport implements and sees: the seam between the exporter and
//! the network (or a file, a test, another backend).
//!
//! The exporter hands a transport one encoded [`Request`] at a time and acts
//! on the [`Outcome`]: delivered, retried (with the [`RetryReason`] and any
//! `Retry-After`), or rejected. Install one with
//! [`ConfigBuilder::transport`](crate::config::ConfigBuilder::transport).

pub use vigil_core::{
    transport::{Lookup, RequestKind},
    Outcome, Request, RetryReason, Transport,
};

#[cfg(feature = "ureq")]
#[doc(no_inline)]
pub use vigil_transport_ureq::UreqTransport;

#[cfg(feature = "otlp")]
#[doc(no_inline)]
pub use vigil_transport_otlp::{OtlpConfig, OtlpTransport};

/// A transport as the client keeps it.
pub type BoxTransport = Box<dyn Transport + Send>;
