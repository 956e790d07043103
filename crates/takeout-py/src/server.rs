//! Bindings for `takeout_core::server`: `App` (the request core bound to one Python function),
//! `Server` (the hyper transport) and `Exchange` (one request driven by the ASGI adapter).
//! The function is any callable plus its manifest as JSON text, so nothing here knows bundles.

mod aio;
mod gil;
mod invoke;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use pyo3::IntoPyObjectExt;

use takeout_core::server::batch::Batcher;
use takeout_core::server::http::{self, ServerHandle};
use takeout_core::server::{
    ApiError, Head, Invoke, Outcome, Response, Route, Service, Start, Step, Ticket,
};

use crate::config::ServeConfig;
use crate::errors::serve_error;
use invoke::{PyInvoker, SlotReply};

struct Inner {
    service: Arc<Service>,
    invoker: Arc<PyInvoker>,
    /// What requests go to: the batcher in front of `invoker` for a batch function, else
    /// `invoker` itself.
    front: Arc<dyn Invoke>,
    batcher: Option<Arc<Batcher>>,
}

#[pyclass(name = "App", module = "takeout._core", frozen)]
pub(crate) struct PyApp {
    inner: Arc<Inner>,
}

#[pymethods]
impl PyApp {
    #[new]
    fn new(
        py: Python<'_>,
        function: Py<PyAny>,
        manifest_json: &str,
        config: ServeConfig,
    ) -> PyResult<Self> {
        if !function.bind(py).is_callable() {
            return Err(serve_error("the function to serve is not callable".into()));
        }
        let service = Service::new(manifest_json, config.options()?, config.logger()?)
            .map_err(|err| serve_error(format!("cannot serve this manifest: {err}")))?;
        crate::convert::warm_up(py)?;
        let batch = service.params().batch.is_some();
        let invoker = Arc::new(PyInvoker::new(
            function,
            config.threads,
            config.debug,
            batch,
        ));
        let service = service.with_call_threads(invoker.clone());
        let batcher = service.batcher(invoker.clone()).map(Arc::new);
        let front: Arc<dyn Invoke> = match &batcher {
            Some(b) => b.clone(),
            None => invoker.clone(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                service: Arc::new(service),
                invoker,
                front,
                batcher,
            }),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        self.inner.service.name()
    }

    #[getter]
    fn max_body(&self) -> usize {
        self.inner.service.options().max_body
    }

    #[getter]
    fn timeout(&self) -> f64 {
        self.inner.service.options().timeout.as_secs_f64()
    }

    /// Answer a request from its head, or return an `Exchange` that needs the body.
    fn start<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        path: &str,
        headers: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let started = Instant::now();
        let mut content_type = None;
        let mut authorization = None;
        let mut content_length = None;
        let mut inference_header_length = None;
        let mut accept = None;
        for pair in headers.try_iter()? {
            let (name, value): (Vec<u8>, Vec<u8>) = pair?.extract()?;
            if name.eq_ignore_ascii_case(b"content-type") {
                content_type = Some(value);
            } else if name.eq_ignore_ascii_case(b"authorization") {
                authorization = Some(value);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                content_length = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
            } else if name.eq_ignore_ascii_case(b"accept") {
                accept = Some(value);
            } else if name.eq_ignore_ascii_case(b"inference-header-content-length") {
                inference_header_length = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
            }
        }
        let head = Head {
            method,
            path,
            content_type: content_type.as_deref(),
            authorization: authorization.as_deref(),
            content_length,
            inference_header_length,
            accept: accept.as_deref(),
        };
        match self.inner.service.start(&head, started) {
            Start::Respond(r) => response_tuple(py, r),
            Start::NeedBody(route) => PyExchange {
                inner: self.inner.clone(),
                route,
                started,
                state: Mutex::new(State::Fresh),
            }
            .into_bound_py_any(py),
        }
    }

    /// In forked worker number `slot`: count metrics into its share of the shared block, so a
    /// scrape of any worker shows them all. False when `workers` was 1 or `slot` is past it.
    fn set_worker(&self, slot: usize) -> bool {
        self.inner.service.metrics().set_worker(slot)
    }

    /// `(slot, pid)` of each forked worker whose every call thread has been stuck past
    /// `--stuck-restart`, as the workers last wrote it in the shared metrics.
    fn wedged_workers(&self) -> Vec<(usize, u32)> {
        self.inner.service.metrics().wedged_workers()
    }

    /// Every call thread has been stuck past `--stuck-restart`: those calls will not return.
    #[getter]
    fn wedged(&self) -> bool {
        self.inner.service.health().stuck_too_long
    }

    /// Calls running or queued in this process's threads (stuck ones, once stopped).
    #[getter]
    fn calls_running(&self) -> usize {
        self.inner.invoker.busy()
    }

    /// `/readyz` answers 503 from now on (ASGI lifespan shutdown).
    fn drain(&self) {
        self.inner.service.drain();
    }

    /// Stop the call threads once their queued work is done (the batcher's queue included).
    fn close(&self) {
        if let Some(batcher) = &self.inner.batcher {
            batcher.close();
        }
        self.inner.invoker.close();
    }

    fn __repr__(&self) -> String {
        format!("App(name={:?})", self.inner.service.name())
    }
}

enum State {
    Fresh,
    Waiting {
        ticket: Ticket,
        slot: Arc<Mutex<Option<Outcome>>>,
        cancelled: Arc<AtomicBool>,
    },
    Done,
}

/// One request of the ASGI adapter, from its body to its response.
#[pyclass(name = "Exchange", module = "takeout._core", frozen)]
pub(crate) struct PyExchange {
    inner: Arc<Inner>,
    route: Route,
    started: Instant,
    state: Mutex<State>,
}

impl PyExchange {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[pymethods]
impl PyExchange {
    /// Hand over the body. Returns the response at once when there is nothing to call;
    /// otherwise `None`, and `notify()` is called from another thread when `response()` is ready.
    fn submit<'py>(
        &self,
        py: Python<'py>,
        body: &[u8],
        notify: Py<PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut state = self.state();
        if !matches!(*state, State::Fresh) {
            return Err(PyRuntimeError::new_err("this request already has its body"));
        }
        let service = &self.inner.service;
        // Small bodies parse faster than a GIL release costs.
        let step = if body.len() > 64 * 1024 {
            py.detach(|| service.begin(self.route, body, self.started))
        } else {
            service.begin(self.route, body, self.started)
        };
        match step {
            Step::Respond(r) => {
                *state = State::Done;
                response_tuple(py, r).map(Some)
            }
            Step::Call(ticket, calls) => {
                let slot = Arc::new(Mutex::new(None));
                let cancelled = Arc::new(AtomicBool::new(false));
                let reply = SlotReply {
                    slot: slot.clone(),
                    notify,
                    cancelled: cancelled.clone(),
                };
                *state = State::Waiting {
                    ticket,
                    slot,
                    cancelled,
                };
                drop(state);
                self.inner.front.invoke(calls, Box::new(reply));
                Ok(None)
            }
        }
    }

    /// The response once `notify()` has been called.
    fn response<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut state = self.state();
        let outcome = match &*state {
            State::Waiting { slot, .. } => slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
            _ => None,
        };
        let Some(outcome) = outcome else {
            return Err(PyRuntimeError::new_err("the call has not finished"));
        };
        let State::Waiting { ticket, .. } = std::mem::replace(&mut *state, State::Done) else {
            unreachable!("checked above");
        };
        let r = self.inner.service.finish(ticket, outcome);
        response_tuple(py, r)
    }

    /// Give up on the call (past the timeout): a 504; the call is skipped if not yet started.
    fn timeout<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut state = self.state();
        match std::mem::replace(&mut *state, State::Done) {
            State::Waiting {
                ticket, cancelled, ..
            } => {
                cancelled.store(true, std::sync::atomic::Ordering::Release);
                response_tuple(py, self.inner.service.timed_out(ticket))
            }
            other => {
                *state = other;
                Err(PyRuntimeError::new_err("no call is waiting"))
            }
        }
    }

    /// The body did not arrive in time: a 408 that closes the connection.
    fn body_timeout<'py>(&self, py: Python<'py>, seconds: f64) -> PyResult<Bound<'py, PyAny>> {
        *self.state() = State::Done;
        let err = ApiError::body_timeout(seconds);
        response_tuple(py, self.inner.service.reject(self.route, err, self.started))
    }

    #[getter]
    fn max_body(&self) -> usize {
        self.inner.service.options().max_body
    }
}

/// `(status, [(name, value), ...], body)`, headers as bytes, ready for ASGI.
fn response_tuple(py: Python<'_>, r: Response) -> PyResult<Bound<'_, PyAny>> {
    let headers = PyList::empty(py);
    let pair = |name: &[u8], value: &[u8]| -> PyResult<()> {
        headers.append(PyTuple::new(
            py,
            [PyBytes::new(py, name), PyBytes::new(py, value)],
        )?)
    };
    pair(b"content-type", r.content_type.as_bytes())?;
    pair(b"content-length", r.body.len().to_string().as_bytes())?;
    for (name, value) in &r.headers {
        pair(name.as_bytes(), value.as_bytes())?;
    }
    if r.close {
        pair(b"connection", b"close")?;
    }
    (r.status, headers, PyBytes::new(py, &r.body)).into_bound_py_any(py)
}

#[pyclass(name = "Server", module = "takeout._core", frozen)]
pub(crate) struct PyServer {
    handle: ServerHandle,
    host: String,
}

#[pymethods]
impl PyServer {
    /// Bind `config.host`:`config.port` and start serving at once, on threads of its own.
    #[new]
    #[pyo3(signature = (app, config, *, reuse_port=false))]
    fn new(py: Python<'_>, app: &PyApp, config: ServeConfig, reuse_port: bool) -> PyResult<Self> {
        let (host, port) = (config.host.as_str(), config.port);
        let listener = http::bind(host, port, reuse_port).map_err(|err| {
            serve_error(format!(
                "cannot listen on {host}:{port}: {err}; pick another `--port` or stop what uses it"
            ))
        })?;
        let bound = listener
            .local_addr()
            .map_err(|err| serve_error(format!("cannot start the server: {err}")))?;
        let http_config = config.http(bound.ip())?;
        let inner = &app.inner;
        inner.invoker.set_spin(http_config.spin);
        inner
            .invoker
            .start()
            .map_err(|err| serve_error(format!("cannot start the call threads: {err}")))?;
        let invoker = inner.front.clone();
        let service = inner.service.clone();
        let handle = py
            .detach(|| http::spawn(listener, service, invoker, http_config))
            .map_err(|err| serve_error(format!("cannot start the server: {err}")))?;
        Ok(Self {
            handle,
            host: host.to_owned(),
        })
    }

    #[getter]
    fn host(&self) -> &str {
        &self.host
    }

    #[getter]
    fn port(&self) -> u16 {
        self.handle.local_addr().port()
    }

    #[getter]
    fn url(&self) -> String {
        let addr = self.handle.local_addr();
        match addr {
            std::net::SocketAddr::V6(v6) => format!("http://[{}]:{}", v6.ip(), v6.port()),
            std::net::SocketAddr::V4(v4) => format!("http://{}:{}", v4.ip(), v4.port()),
        }
    }

    #[getter]
    fn running(&self) -> bool {
        !self.handle.is_finished()
    }

    /// Calls the grace period cut off: still running when it ended, their clients unanswered.
    #[getter]
    fn dropped_calls(&self) -> usize {
        self.handle.dropped_calls()
    }

    /// Begin a graceful shutdown and return at once (safe in a signal handler).
    fn shutdown(&self) {
        self.handle.shutdown();
    }

    /// Block until the server stops (or `timeout` passes); Python signal handlers still run.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        loop {
            let mut step = Duration::from_millis(50);
            if let Some(deadline) = deadline {
                step = step.min(deadline.saturating_duration_since(Instant::now()));
            }
            if py.detach(|| self.handle.wait(Some(step))) {
                return Ok(true);
            }
            if let Err(err) = py.check_signals() {
                self.handle.shutdown();
                return Err(err);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// Shut down gracefully and wait for it; true once stopped.
    #[pyo3(signature = (timeout=None))]
    fn stop(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        self.handle.shutdown();
        self.wait(py, timeout)
    }

    fn __repr__(&self) -> String {
        format!("Server(url={:?})", self.url())
    }
}

#[cfg(test)]
mod tests;
