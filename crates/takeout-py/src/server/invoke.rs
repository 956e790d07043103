//! Running the Python function for the request core: a bounded pool of threads for sync
//! functions, an asyncio loop on its own thread for coroutines.
//!
//! One thread at a time runs calls while they are short. It keeps its interpreter thread
//! state and the GIL from one queued call to the next, so a busy server pays for no GIL
//! hand-off between calls; other threads sleep. Only when no call has started or finished for
//! [`STALL`] while work waits (the function sleeps, does I/O, or runs long numpy code without
//! the GIL) does a watchdog wake another thread, and so on up to the pool size. Handing every
//! call to whichever thread is free instead cost a GIL hand-off per call: half the
//! throughput at 8 concurrent clients on two cores (18,500 against 36,000-48,000 req/s).
//!
//! Threads start with the server (after a worker process forks) and stop on
//! [`PyInvoker::close`]; they are never woken during interpreter shutdown, which would make
//! them take the GIL of a dying interpreter.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::{intern, IntoPyObjectExt};

use takeout_core::server::{Args, CallError, Invoke, Outcome, Reply};

use crate::convert::{self, EncodeError};

/// No progress for this long with calls waiting: wake one more thread. CPython's switch
/// interval: a thread that holds the GIL but is merely descheduled by the OS rarely stays
/// still that long, and a second thread contending for the GIL would cost the first one a
/// switch interval per hand-off.
const STALL: Duration = Duration::from_millis(5);

/// How long a thread that ran out of calls looks for the next one before it sleeps. At low
/// concurrency the next call is about one client round trip away, and waking a sleeping
/// thread costs tens of microseconds on a virtual CPU.
const SPIN: Duration = Duration::from_micros(100);

struct Task {
    calls: Vec<Args>,
    reply: Box<dyn Reply>,
}

struct Shared {
    function: Py<PyAny>,
    debug: bool,
    aio: PyOnceLock<Aio>,
}

#[derive(Default)]
struct QueueState {
    tasks: VecDeque<Task>,
    /// Threads running calls (or woken to).
    active: usize,
    /// Threads asleep, waiting for a signal.
    idle: usize,
    /// Wake-ups sent and not yet taken.
    signals: usize,
    started: bool,
    closed: bool,
    /// The watchdog sleeps until notified (the queue has been empty for a while).
    watchdog_parked: bool,
}

struct Queue {
    state: Mutex<QueueState>,
    work: Condvar,
    watch: Condvar,
    epoch: Instant,
    /// When a call last started or finished, in ns since `epoch`.
    progress: AtomicU64,
    /// `tasks.len()`, readable without the lock by a spinning thread.
    queued: AtomicUsize,
    /// Look for the next call a while before sleeping (`Server(spin=...)`).
    spin: AtomicBool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.progress.store(now, Ordering::Release);
    }

    fn since_progress(&self) -> Duration {
        let last = Duration::from_nanos(self.progress.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(last)
    }

    fn push(&self, task: Task) -> Result<(), Task> {
        let mut st = self.lock();
        if st.closed || !st.started {
            return Err(task);
        }
        st.tasks.push_back(task);
        self.queued.store(st.tasks.len(), Ordering::Release);
        if st.active == 0 && st.signals == 0 {
            st.signals += 1;
            self.work.notify_one();
            // A thread is on its way: not a stall.
            self.touch();
        }
        if st.watchdog_parked {
            st.watchdog_parked = false;
            self.watch.notify_one();
        }
        Ok(())
    }

    /// The next call, for a thread that holds the GIL.
    fn pop(&self) -> Option<Task> {
        if self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut st = self.lock();
        let task = st.tasks.pop_front();
        self.queued.store(st.tasks.len(), Ordering::Release);
        task
    }

    /// Busy-wait (without the GIL) for a call, at most `budget`; true if one is queued.
    fn spin(&self, budget: Duration) -> bool {
        if !self.spin.load(Ordering::Relaxed) {
            return false;
        }
        let start = Instant::now();
        while self.queued.load(Ordering::Acquire) == 0 {
            if start.elapsed() > budget {
                return false;
            }
            // Yield rather than spin: with more busy threads than cores (several workers),
            // a pure spin would hold a core that another runnable thread is waiting for.
            thread::yield_now();
        }
        true
    }

    /// Sleep (without the GIL) until signalled; false once closed with nothing left to do.
    fn park(&self) -> bool {
        let mut st = self.lock();
        if !st.tasks.is_empty() {
            return true;
        }
        st.active -= 1;
        st.idle += 1;
        loop {
            while st.signals == 0 && !st.closed {
                st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            // Woken by the watchdog, but the running thread has moved on since: it was only
            // descheduled, and taking the GIL from it would slow both down.
            if st.closed || st.active == 0 || self.since_progress() >= STALL {
                break;
            }
            st.signals -= 1;
        }
        st.idle -= 1;
        if st.closed && st.tasks.is_empty() {
            return false;
        }
        st.signals = st.signals.saturating_sub(1);
        st.active += 1;
        true
    }

    /// Polls every [`STALL`] while calls come and go (a notification per call would cost a
    /// wake-up per call); after a quiet spell it sleeps until `push` wakes it.
    fn watchdog(&self) {
        const QUIET: Duration = Duration::from_millis(100);
        let mut st = self.lock();
        let mut busy = Instant::now();
        let mut last_wake = Instant::now();
        loop {
            if st.closed {
                return;
            }
            if st.tasks.is_empty() {
                if busy.elapsed() > QUIET {
                    st.watchdog_parked = true;
                    while st.watchdog_parked && !st.closed {
                        st = self.watch.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    busy = Instant::now();
                } else {
                    st = self
                        .watch
                        .wait_timeout(st, STALL)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                continue;
            }
            busy = Instant::now();
            // One more thread per STALL at most, and only while no call moves.
            let stalled = self.since_progress().min(last_wake.elapsed());
            let wait = if stalled >= STALL {
                if st.idle > st.signals {
                    st.signals += 1;
                    self.work.notify_one();
                }
                last_wake = Instant::now();
                STALL
            } else {
                STALL - stalled
            };
            st = self
                .watch
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

pub(crate) struct PyInvoker {
    shared: Arc<Shared>,
    threads: usize,
    queue: Arc<Queue>,
}

impl PyInvoker {
    pub(crate) fn new(function: Py<PyAny>, threads: usize, debug: bool) -> PyInvoker {
        PyInvoker {
            shared: Arc::new(Shared {
                function,
                debug,
                aio: PyOnceLock::new(),
            }),
            threads: threads.max(1),
            queue: Arc::new(Queue {
                state: Mutex::new(QueueState::default()),
                work: Condvar::new(),
                watch: Condvar::new(),
                epoch: Instant::now(),
                progress: AtomicU64::new(0),
                queued: AtomicUsize::new(0),
                spin: AtomicBool::new(true),
            }),
        }
    }

    /// Start the threads (once; before any call).
    pub(crate) fn start(&self) -> std::io::Result<()> {
        let mut st = self.queue.lock();
        if st.started || st.closed {
            return Ok(());
        }
        for i in 0..self.threads {
            let queue = self.queue.clone();
            let shared = self.shared.clone();
            thread::Builder::new()
                .name(format!("takeout-call-{i}"))
                .spawn(move || worker(&shared, &queue))?;
            // Counted active until it first finds the queue empty and parks.
            st.active += 1;
        }
        let queue = self.queue.clone();
        thread::Builder::new()
            .name("takeout-watchdog".into())
            .spawn(move || queue.watchdog())?;
        st.started = true;
        Ok(())
    }

    pub(crate) fn set_spin(&self, spin: bool) {
        self.queue.spin.store(spin, Ordering::Relaxed);
    }

    /// Let the threads finish what is queued, then exit. Later calls fail with a 500.
    pub(crate) fn close(&self) {
        let mut st = self.queue.lock();
        st.closed = true;
        self.queue.work.notify_all();
        self.queue.watch.notify_all();
    }
}

impl Invoke for PyInvoker {
    fn invoke(&self, calls: Vec<Args>, reply: Box<dyn Reply>) {
        let mut task = Task { calls, reply };
        if !self.queue.lock().started {
            if let Err(err) = self.start() {
                let msg = format!("cannot start the call threads: {err}");
                return task.reply.send(Err(CallError::Internal(msg)));
            }
        }
        task = match self.queue.push(task) {
            Ok(()) => return,
            Err(task) => task,
        };
        task.reply.send(Err(CallError::Internal(
            "the server is shutting down".into(),
        )));
    }
}

fn worker(shared: &Shared, queue: &Queue) {
    Python::attach(|py| loop {
        if let Some(task) = queue.pop() {
            queue.touch();
            run(py, shared, task);
            queue.touch();
        } else if !py.detach(|| queue.spin(SPIN) || queue.park()) {
            break;
        }
    });
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
        let result = match call(py, function, args) {
            Ok(result) => result,
            Err(err) => return reply.send(Err(raised(py, &err, shared.debug))),
        };
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
        keywords.set_item(PyString::new(py, name), convert::json_to_py(py, value)?)?;
    }
    function.call(positional, Some(&keywords))
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

fn encode(result: &Bound<'_, PyAny>, call: usize, debug: bool) -> Result<Vec<u8>, CallError> {
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
pub(crate) fn raised(py: Python<'_>, err: &PyErr, debug: bool) -> CallError {
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

// ── coroutines ──────────────────────────────────────────────────────────────────────────────

struct Aio {
    event_loop: Py<PyAny>,
    resolve: Py<PyAny>,
    submit: Py<PyAny>,
}

const AIO: &std::ffi::CStr = c"
import asyncio, threading

async def resolve(value):
    if hasattr(value, '__anext__'):
        return [item async for item in value]
    return await value

def start():
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name='takeout-asyncio', daemon=True).start()
    return loop
";

fn aio<'a>(py: Python<'_>, shared: &'a Shared) -> PyResult<&'a Aio> {
    shared.aio.get_or_try_init(py, || {
        let module = PyModule::from_code(py, AIO, c"takeout_serve_aio.py", c"takeout_serve_aio")?;
        Ok(Aio {
            event_loop: module.getattr("start")?.call0()?.unbind(),
            resolve: module.getattr("resolve")?.unbind(),
            submit: py
                .import("asyncio")?
                .getattr("run_coroutine_threadsafe")?
                .unbind(),
        })
    })
}

/// Results of one request's calls, some of which are still running on the event loop.
struct Gather {
    slots: Mutex<Vec<Option<Vec<u8>>>>,
    remaining: AtomicUsize,
    reply: Mutex<Option<Box<dyn Reply>>>,
}

impl Gather {
    fn complete(&self, index: usize, result: Result<Vec<u8>, CallError>) {
        let reply = || self.reply.lock().unwrap_or_else(|e| e.into_inner()).take();
        match result {
            Err(err) => {
                if let Some(reply) = reply() {
                    reply.send(Err(err));
                }
            }
            Ok(bytes) => {
                self.slots.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(bytes);
                if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    if let Some(reply) = reply() {
                        let slots = std::mem::take(
                            &mut *self.slots.lock().unwrap_or_else(|e| e.into_inner()),
                        );
                        reply.send(Ok(slots.into_iter().flatten().collect()));
                    }
                }
            }
        }
    }
}

fn gather(
    py: Python<'_>,
    shared: &Shared,
    done: Vec<Option<Vec<u8>>>,
    pending: Vec<(usize, Bound<'_, PyAny>)>,
    reply: Box<dyn Reply>,
) -> PyResult<()> {
    let aio = match aio(py, shared) {
        Ok(aio) => aio,
        Err(err) => {
            let msg = format!("cannot start the event loop: {err}");
            reply.send(Err(CallError::Internal(msg)));
            return Ok(());
        }
    };
    let gather = Arc::new(Gather {
        slots: Mutex::new(done),
        remaining: AtomicUsize::new(pending.len()),
        reply: Mutex::new(Some(reply)),
    });
    for (index, awaitable) in pending {
        let scheduled = aio
            .resolve
            .bind(py)
            .call1((awaitable,))
            .and_then(|coro| aio.submit.bind(py).call1((coro, aio.event_loop.bind(py))));
        match scheduled {
            Ok(future) => {
                let callback = Done {
                    gather: gather.clone(),
                    index,
                    debug: shared.debug,
                }
                .into_bound_py_any(py)?;
                future.call_method1(intern!(py, "add_done_callback"), (callback,))?;
            }
            Err(err) => gather.complete(index, Err(raised(py, &err, shared.debug))),
        }
    }
    Ok(())
}

/// Called by `concurrent.futures.Future` on the loop's thread when a coroutine finishes.
#[pyclass(frozen)]
struct Done {
    gather: Arc<Gather>,
    index: usize,
    debug: bool,
}

#[pymethods]
impl Done {
    fn __call__(&self, future: &Bound<'_, PyAny>) {
        let py = future.py();
        let result = if future
            .call_method0(intern!(py, "cancelled"))
            .and_then(|c| c.is_truthy())
            .unwrap_or(false)
        {
            Err(CallError::Internal("the coroutine was cancelled".into()))
        } else {
            match future.call_method0(intern!(py, "result")) {
                Ok(value) => encode(&value, self.index, self.debug),
                Err(err) => Err(raised(py, &err, self.debug)),
            }
        };
        self.gather.complete(self.index, result);
    }
}

/// Collects the outcome for the ASGI adapter and wakes its event loop.
pub(crate) struct SlotReply {
    pub(crate) slot: Arc<Mutex<Option<Outcome>>>,
    pub(crate) notify: Py<PyAny>,
    pub(crate) cancelled: Arc<std::sync::atomic::AtomicBool>,
}

impl Reply for SlotReply {
    fn send(self: Box<Self>, outcome: Outcome) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
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
