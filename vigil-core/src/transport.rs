//! The seam between the exporter and the network.

use core::time::Duration;

use crate::id::TraceId;

/// Which call a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// `POST {endpoint}/v1/traces` with spans of one trace.
    Ingest,
    /// `PATCH {endpoint}/v1/traces/{trace_id}` with the trace's status and metadata.
    Patch,
}

/// One request for the transport to carry.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// Ingest or PATCH.
    pub kind: RequestKind,
    /// The trace the request is about (every span in it belongs to it).
    pub trace_id: TraceId,
    /// The JSON body.
    pub body: &'a [u8],
    /// Spans in the body (0 for a PATCH).
    pub spans: usize,
    /// How long the transport may take, at most: the configured timeout or
    /// what is left of the caller's flush deadline, whichever is shorter.
    pub timeout: Duration,
}

/// Why a request should be tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryReason {
    /// Nothing reached the server (connection refused, DNS, TLS setup).
    /// Pauses all sending with backoff; does not use up the request's attempts.
    Unreachable,
    /// The server asked to slow down (`429`). Pauses all sending until
    /// `after`; does not use up the request's attempts.
    RateLimited,
    /// The request may have reached the server and failed (`5xx`, `408`, a
    /// timeout). Uses up one of the request's attempts.
    Failed,
}

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored by the server (`2xx`).
    Delivered,
    /// Not stored; try again, not before `after` if the server said so (`Retry-After`).
    Retry {
        /// The server's `Retry-After`, if any.
        after: Option<Duration>,
        /// What went wrong.
        reason: RetryReason,
    },
    /// Refused for good (`400`, `401`, `403`, `404`, `413`, `422`); not retried.
    Rejected,
}

/// What the server holds of an ingest request whose earlier attempt may have
/// been stored (see [`Transport::lookup`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Every span of the request is stored: it counts as delivered.
    Stored,
    /// Not every span is stored: the request is sent again.
    Missing,
    /// The transport cannot tell (or did not ask): the request is sent again.
    Unknown,
}

/// Makes a request in progress on a transport return at once; called from
/// another thread when a shutdown deadline passes (see
/// [`Transport::interrupter`]).
#[cfg(feature = "alloc")]
pub type Interrupt = alloc::boxed::Box<dyn Fn() + Send + Sync>;

/// Carries requests to the Vigil server (or anywhere else).
///
/// Synchronous and object-safe: the exporter calls it from its own thread (or
/// main loop) and waits for the outcome, so an implementation may block up to
/// [`Request::timeout`]. It must not panic; `vigil-std` catches panics anyway
/// and counts them as failed attempts.
///
/// ```
/// use vigil::{Transport, transport::{Outcome, Request, RequestKind, RetryReason}};
///
/// /// Hands each request body to a queue of the application's, which may be full.
/// struct ToQueue(std::sync::mpsc::SyncSender<Vec<u8>>);
///
/// impl Transport for ToQueue {
///     fn send(&mut self, request: &Request<'_>) -> Outcome {
///         if request.kind == RequestKind::Patch {
///             return Outcome::Delivered; // statuses are not kept here
///         }
///         match self.0.try_send(request.body.to_vec()) {
///             Ok(()) => Outcome::Delivered,
///             Err(_) => Outcome::Retry { after: None, reason: RetryReason::Unreachable },
///         }
///     }
/// }
///
/// let (tx, rx) = std::sync::mpsc::sync_channel(16);
/// let config = vigil::Config::builder()
///     .transport(move || ToQueue(tx.clone()))
///     .build()
///     .unwrap();
/// let client = vigil::Client::new(config).unwrap();
/// client.scope(|| vigil::trace("job", |_| ()));
/// client.shutdown();
/// let body: serde_json::Value = serde_json::from_slice(&rx.recv().unwrap()).unwrap();
/// assert_eq!(body["trace_name"], "job");
/// ```
pub trait Transport {
    /// Sends `request` and reports the outcome.
    fn send(&mut self, request: &Request<'_>) -> Outcome;

    /// Whether the server already stores every span of `request`, an ingest
    /// whose earlier attempt timed out or failed after it may have been
    /// stored (the Vigil server answers before it commits, and a duplicate
    /// span id fails a whole request with `500`). The Vigil transport asks
    /// `GET /v1/traces/{id}`. By default the transport cannot tell, and the
    /// request is sent again.
    fn lookup(&mut self, request: &Request<'_>) -> Lookup {
        let _ = request;
        Lookup::Unknown
    }

    /// Whether one ingest request may hold the spans of several traces,
    /// with no `PATCH` after them: true for a backend that keeps no trace
    /// row of its own, where a trace's status is its root span's (OTLP).
    /// False by default: the Vigil server files every span of a request
    /// under the first span's trace, so requests go one trace at a time and
    /// each trace's status follows its root. A request that holds several
    /// traces has no `trace_name`; its `trace_metadata`, when present, holds
    /// only the members every trace gets (`release`, `environment`), and
    /// [`Request::trace_id`] is its first span's trace.
    fn takes_many_traces(&self) -> bool {
        false
    }

    /// A handle that interrupts a request in progress, so that a shutdown
    /// deadline holds even while a request waits for its timeout; after it
    /// is called, the transport may refuse every request. `None` (the
    /// default) when the transport cannot be interrupted.
    #[cfg(feature = "alloc")]
    fn interrupter(&mut self) -> Option<Interrupt> {
        None
    }

    /// Whether [`Transport::spool`] keeps requests: the exporter then hands
    /// it what it cannot deliver instead of dropping it. False by default.
    fn spools(&self) -> bool {
        false
    }

    /// Keeps `request`, which the exporter gives up on after `attempts`
    /// failed attempts (or could not send at all: the server is
    /// unreachable, or shutdown came first), for a later replay: `vigil-std`
    /// writes it to its spool directory. Returns whether it was kept; a
    /// request not kept is dropped and counted. Never called unless
    /// [`Transport::spools`].
    fn spool(&mut self, request: &Request<'_>, attempts: u32) -> bool {
        let _ = (request, attempts);
        false
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn send(&mut self, request: &Request<'_>) -> Outcome {
        (**self).send(request)
    }
    fn lookup(&mut self, request: &Request<'_>) -> Lookup {
        (**self).lookup(request)
    }
    fn takes_many_traces(&self) -> bool {
        (**self).takes_many_traces()
    }
    fn spools(&self) -> bool {
        (**self).spools()
    }
    fn spool(&mut self, request: &Request<'_>, attempts: u32) -> bool {
        (**self).spool(request, attempts)
    }
    #[cfg(feature = "alloc")]
    fn interrupter(&mut self) -> Option<Interrupt> {
        (**self).interrupter()
    }
}

#[cfg(feature = "alloc")]
impl<T: Transport + ?Sized> Transport for alloc::boxed::Box<T> {
    fn send(&mut self, request: &Request<'_>) -> Outcome {
        (**self).send(request)
    }
    fn lookup(&mut self, request: &Request<'_>) -> Lookup {
        (**self).lookup(request)
    }
    fn takes_many_traces(&self) -> bool {
        (**self).takes_many_traces()
    }
    fn spools(&self) -> bool {
        (**self).spools()
    }
    fn spool(&mut self, request: &Request<'_>, attempts: u32) -> bool {
        (**self).spool(request, attempts)
    }
    fn interrupter(&mut self) -> Option<Interrupt> {
        (**self).interrupter()
    }
}
