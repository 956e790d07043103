//! Coroutines, futures and async generators: scheduled on an event loop that runs on a
//! thread of its own, their outcomes gathered back into the request's reply.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::{intern, IntoPyObjectExt};

use takeout_core::server::{CallError, Reply};

use super::invoke::{encode, raised, Shared};

pub(super) struct Aio {
    event_loop: Py<PyAny>,
    resolve: Py<PyAny>,
    submit: Py<PyAny>,
}

fn aio<'a>(py: Python<'_>, shared: &'a Shared) -> PyResult<&'a Aio> {
    shared.aio.get_or_try_init(py, || {
        let module = py.import("takeout._aio")?;
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
        let reply = || {
            self.reply
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
        };
        match result {
            Err(err) => {
                if let Some(reply) = reply() {
                    reply.send(Err(err));
                }
            }
            Ok(bytes) => {
                self.slots
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)[index] = Some(bytes);
                if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    if let Some(reply) = reply() {
                        let slots = std::mem::take(
                            &mut *self
                                .slots
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner),
                        );
                        reply.send(Ok(slots.into_iter().flatten().collect()));
                    }
                }
            }
        }
    }
}

pub(super) fn gather(
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
