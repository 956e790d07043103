//! The HTTP serving layer. [`Service`] is the transport-free request core (routes, errors,
//! binding, validation, metrics, `OpenAPI`, the index page); [`http`] serves it with hyper; the
//! ASGI adapter drives the same `Service` from Python. The function itself is behind
//! [`Invoke`], so everything here is tested without an interpreter.

pub mod batch;
mod bind;
pub mod host;
pub mod http;
mod idle;
pub mod json;
mod kserve_v2;
mod limits;
pub mod log;
mod malloc;
mod metrics;
mod negotiate;
mod openapi;
mod page;
pub mod params;
pub mod pool;
pub mod response;
mod service;
mod shm;

#[cfg(test)]
mod tests;

pub use bind::Args;
pub use log::{LogFormat, Logger};
pub use metrics::{InFlight, Metrics};
pub use negotiate::Accept;
pub use params::{BatchSpec, ManifestError, Params};
pub use response::{ApiError, Response};
pub use service::{CallError, Head, Health, Options, Outcome, Route, Service, Start, Step, Ticket};

/// Where an outcome goes once the calls are done.
pub trait Reply: Send + 'static {
    fn send(self: Box<Self>, outcome: Outcome);

    /// True once nobody waits for the outcome (the request timed out or its client left):
    /// calls that have not started yet are skipped.
    fn abandoned(&self) -> bool {
        false
    }
}

impl Reply for tokio::sync::oneshot::Sender<Outcome> {
    fn send(self: Box<Self>, outcome: Outcome) {
        // The receiver is gone only when the request already has its answer (a 504).
        let _ = (*self).send(outcome);
    }

    fn abandoned(&self) -> bool {
        self.is_closed()
    }
}

/// Runs the function. Implementations return at once and answer through `reply` later, from
/// any thread: a Python worker pool, an event loop, or a test double.
pub trait Invoke: Send + Sync + 'static {
    fn invoke(&self, calls: Vec<Args>, reply: Box<dyn Reply>);
}

/// The threads that run calls, as the probes and metrics see them: a function that never
/// returns keeps its thread, and once every thread is kept so the server cannot answer.
pub trait CallThreads: Send + Sync + 'static {
    fn threads(&self) -> usize;

    /// Calls that have been running for longer than `age` and have not returned.
    fn running_longer_than(&self, age: std::time::Duration) -> usize;
}
