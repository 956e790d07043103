//! Running the Python function for the request core: sync functions on the [`Pool`], a
//! coroutine's remainder on an event loop ([`aio`](super::aio)); results encoded to JSON while
//! the GIL is held anyway.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use takeout_core::server::pool::{Pool, Run};
use takeout_core::server::{Args, CallError, CallThreads, Invoke, Outcome, Reply};

use super::aio::{gather, Aio};
use super::gil::Gil;
use crate::convert::{self, EncodeError};

pub(super) struct Task {
    calls: Vec<Args>,
    reply: Box<dyn Reply>,
}

pub(super) struct Shared {
    function: Py<PyAny>,
    pub(super) debug: bool,
    /// A batch function: each call's first argument is a list of items, and its result is
    /// split into one encoded result per item.
    batch: bool,
    pub(super) aio: PyOnceLock<Aio>,
    /// Keyword names as Python strings, made once: the binder only ever names parameters.
    names: Mutex<Vec<(String, Py<PyString>)>>,
}

pub(crate) struct PyInvoker {
    shared: Arc<Shared>,
    pool: Pool<Gil, Task>,
}

impl PyInvoker {
    pub(crate) fn new(function: Py<PyAny>, threads: usize, debug: bool, batch: bool) -> Self {
        Self {
            shared: Arc::new(Shared {
                function,
                debug,
                batch,
                aio: PyOnceLock::new(),
                names: Mutex::new(Vec::new()),
            }),
            pool: Pool::new(Gil, threads),
        }
    }

    /// Start the threads now rather than on the first call.
    pub(crate) fn start(&self) -> std::io::Result<()> {
        Python::attach(watch_forks).map_err(|err| std::io::Error::other(err.to_string()))?;
        let shared = self.shared.clone();
        let run: Run<Gil, Task> = Arc::new(move |py, task| run(py, &shared, task));
        self.pool.start(&run)
    }

    pub(crate) fn set_spin(&self, spin: bool) {
        self.pool.set_spin(spin);
    }

    /// Let the threads finish what is queued, then exit. Later calls fail with a 500.
    pub(crate) fn close(&self) {
        self.pool.close();
    }

    /// Calls running or queued: once the server has stopped, any left are stuck ones.
    pub(crate) fn busy(&self) -> usize {
        self.pool.busy()
    }
}

impl CallThreads for PyInvoker {
    fn threads(&self) -> usize {
        self.pool.threads()
    }

    fn running_longer_than(&self, age: std::time::Duration) -> usize {
        self.pool.running_longer_than(age)
    }
}

impl Invoke for PyInvoker {
    fn invoke(&self, calls: Vec<Args>, reply: Box<dyn Reply>) {
        let task = Task { calls, reply };
        if !self.pool.started() {
            if let Err(err) = self.start() {
                let msg = format!("cannot start the call threads: {err}");
                return task.reply.send(Err(CallError::Internal(msg)));
            }
        }
        if let Err(task) = self.pool.push(task) {
            task.reply.send(Err(CallError::Internal(
                "the server is shutting down".into(),
            )));
        }
    }
}

/// Set in the child of an `os.fork` made after the call threads started: the function forked.
static FORKED: AtomicBool = AtomicBool::new(false);

/// Have Python's `os.fork` tell us in the child (once per process). A flag read after each
/// call, where comparing `getpid()` with the server's pid cost a system call per request.
fn watch_forks(py: Python<'_>) -> PyResult<()> {
    static WATCHING: Once = Once::new();
    let mut result = Ok(());
    WATCHING.call_once(|| {
        result = (|| {
            let flag = pyo3::types::PyCFunction::new_closure(py, None, None, |_, _| {
                FORKED.store(true, Ordering::Release);
            })?;
            let kwargs = PyDict::new(py);
            kwargs.set_item(intern!(py, "after_in_child"), flag)?;
            py.import(intern!(py, "os"))?
                .getattr(intern!(py, "register_at_fork"))?
                .call((), Some(&kwargs))
                .map(drop)
        })();
    });
    result
}

fn run(py: Python<'_>, shared: &Shared, task: Task) {
    let Task { calls, reply } = task;
    if reply.abandoned() {
        // Timed out while queued: nobody will read the result.
        return;
    }
    let function = shared.function.bind(py);
    let mut done: Vec<Option<Vec<u8>>> = Vec::with_capacity(calls.len());
    let mut pending = Vec::new();
    for (i, args) in calls.iter().enumerate() {
        let result = call(py, shared, function, args);
        if FORKED.load(Ordering::Acquire) {
            // The function forked and this is the child coming back: it must not answer, nor
            // live on holding the listening socket and the clients' connections. `os._exit`,
            // not `exit`: the parent's atexit handlers and buffers are not the child's to run.
            let _ = py
                .import(intern!(py, "os"))
                .and_then(|os| os.call_method1(intern!(py, "_exit"), (0,)));
        }
        let result = match result {
            Ok(result) => result,
            Err(err) => return reply.send(Err(raised(py, &err, shared.debug))),
        };
        if shared.batch {
            return reply.send(split_batch(&result, shared.debug));
        }
        if is_awaitable(&result) {
            pending.push((i, result));
            done.push(None);
            continue;
        }
        match encode(&result, i, shared.debug) {
            Ok(bytes) => done.push(Some(bytes)),
            Err(err) => return reply.send(Err(err)),
        }
    }
    if pending.is_empty() {
        reply.send(Ok(done.into_iter().flatten().collect()));
        return;
    }
    if let Err(err) = gather(py, shared, done, pending, reply) {
        // `gather` has already answered unless the loop could not even be reached.
        err.print(py);
    }
}

fn call<'py>(
    py: Python<'py>,
    shared: &Shared,
    function: &Bound<'py, PyAny>,
    args: &Args,
) -> PyResult<Bound<'py, PyAny>> {
    let positional = args
        .positional
        .iter()
        .map(|v| convert::json_to_py(py, v))
        .collect::<PyResult<Vec<_>>>()?;
    let positional = PyTuple::new(py, positional)?;
    if args.keywords.is_empty() {
        return function.call1(positional);
    }
    let keywords = PyDict::new(py);
    for (name, value) in &args.keywords {
        keywords.set_item(shared.name(py, name), convert::json_to_py(py, value)?)?;
    }
    function.call(positional, Some(&keywords))
}

impl Shared {
    fn name<'py>(&self, py: Python<'py>, name: &str) -> Bound<'py, PyString> {
        let mut names = self
            .names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, s)) = names.iter().find(|(n, _)| n == name) {
            return s.bind(py).clone();
        }
        let s = PyString::intern(py, name);
        // A few parameters in practice; the bound keeps a stream of odd names from growing it.
        if names.len() < 64 {
            names.push((name.to_owned(), s.clone().unbind()));
        }
        s
    }
}

fn is_awaitable(result: &Bound<'_, PyAny>) -> bool {
    if result.is_none()
        || result.is_exact_instance_of::<PyInt>()
        || result.is_exact_instance_of::<PyFloat>()
        || result.is_exact_instance_of::<PyString>()
        || result.is_exact_instance_of::<PyList>()
        || result.is_exact_instance_of::<PyDict>()
        || result.is_exact_instance_of::<PyTuple>()
        || result.is_exact_instance_of::<PyBool>()
    {
        return false;
    }
    let py = result.py();
    let ty = result.get_type();
    // Coroutines, futures and async generators (whose items are collected into a list).
    ty.hasattr(intern!(py, "__await__")).unwrap_or(false)
        || ty.hasattr(intern!(py, "__anext__")).unwrap_or(false)
}

/// A batch call's result, one encoded JSON value per element: a list, a tuple, a numpy array
/// (its rows), a pandas Series (its values), any sized iterable but a string, bytes or a dict.
/// The batcher checks that there is one per item.
fn split_batch(result: &Bound<'_, PyAny>, debug: bool) -> Outcome {
    // A numeric numpy array: its rows as Python values at once, not one numpy scalar each.
    let plain = convert::numeric_numpy(result)
        .map_err(|err| raised(result.py(), &err, debug))?
        .filter(PyAnyMethods::is_instance_of::<PyList>);
    let result = plain.as_ref().unwrap_or(result);
    let not_sequence = result.is_instance_of::<PyString>()
        || result.is_instance_of::<PyDict>()
        || result.is_instance_of::<pyo3::types::PyBytes>()
        || result.len().is_err();
    let items = if not_sequence {
        None
    } else {
        result.try_iter().ok()
    };
    let Some(items) = items else {
        return Err(CallError::BatchResult(format!(
            "the batch function returned `{}`, not a sequence; return a list (or numpy array, \
             pandas Series) with one result per item",
            convert::type_name(&result.get_type())
        )));
    };
    let mut out = Vec::with_capacity(result.len().unwrap_or(0));
    for (i, item) in items.enumerate() {
        let item = item.map_err(|err| raised(result.py(), &err, debug))?;
        out.push(encode(&item, i, debug)?);
    }
    Ok(out)
}

pub(super) fn encode(
    result: &Bound<'_, PyAny>,
    call: usize,
    debug: bool,
) -> Result<Vec<u8>, CallError> {
    let mut out = Vec::with_capacity(32);
    match convert::encode(result, &mut out) {
        Ok(()) => Ok(out),
        Err(EncodeError::Raised(err)) => Err(raised(result.py(), &err, debug)),
        Err(EncodeError::Unserializable { kind, path }) => {
            Err(CallError::Unserializable { kind, path, call })
        }
    }
}

/// What a client learns when the function raised: the exception's type and message, and the
/// traceback only in debug mode.
pub(super) fn raised(py: Python<'_>, err: &PyErr, debug: bool) -> CallError {
    let kind = convert::type_name(&err.get_type(py));
    let message = err
        .value(py)
        .str()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let message = if message.is_empty() {
        kind.clone()
    } else {
        message
    };
    let traceback = if debug {
        format_traceback(py, err)
    } else {
        None
    };
    CallError::Raised {
        kind,
        message,
        traceback,
    }
}

fn format_traceback(py: Python<'_>, err: &PyErr) -> Option<String> {
    let lines = py
        .import("traceback")
        .ok()?
        .call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )
        .ok()?;
    let lines: Vec<String> = lines.extract().ok()?;
    Some(lines.concat())
}

/// Collects the outcome for the ASGI adapter and wakes its event loop.
pub(crate) struct SlotReply {
    pub(crate) slot: Arc<Mutex<Option<Outcome>>>,
    pub(crate) notify: Py<PyAny>,
    pub(crate) cancelled: Arc<AtomicBool>,
}

impl Reply for SlotReply {
    fn send(self: Box<Self>, outcome: Outcome) {
        *self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(outcome);
        Python::attach(|py| {
            let notify = self.notify;
            // Fails only when the loop has closed, and then nobody waits for this request.
            let _ = notify.call0(py);
            drop(notify);
        });
    }

    fn abandoned(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}
