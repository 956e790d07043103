//! The call path with a real interpreter: [`PyInvoker`] on the GIL-backed pool, the event
//! loop of `takeout/_aio.py`, and errors raised by the function. The pool's own scheduling is
//! tested without Python in `takeout_core::server::pool`.

use std::ffi::CString;
use std::path::Path;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::oneshot;

use takeout_core::server::json::Json;
use takeout_core::server::{Args, CallError, Invoke, Outcome};

use super::invoke::PyInvoker;

const FUNCTIONS: &str = r#"
import threading

event = threading.Event()

def add(x, y=1):
    return x + y

def wait_or_set(what):
    # `Event.wait` releases the GIL, like `time.sleep` or socket I/O in a served function.
    if what == "wait":
        return event.wait(10)
    event.set()
    return True

async def double(x):
    return 2 * x

async def count(n):
    for i in range(n):
        yield i

def fail():
    raise ValueError("the input is `bad`")
"#;

/// `name` from [`FUNCTIONS`] behind a started invoker, with the repository's `python/` on
/// `sys.path` so that the Rust side imports `takeout._aio` from the source tree.
fn invoker(name: &str) -> PyInvoker {
    Python::initialize();
    Python::attach(|py| {
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python");
        py.import("sys")
            .and_then(|sys| sys.getattr("path"))
            .and_then(|path| path.call_method1("insert", (0, python.to_str().unwrap())))
            .unwrap();
        let globals = PyDict::new(py);
        py.run(&CString::new(FUNCTIONS).unwrap(), Some(&globals), None)
            .unwrap();
        let function = globals.get_item(name).unwrap().unwrap().unbind();
        let invoker = PyInvoker::new(function, 4, false, false);
        invoker.start().unwrap();
        invoker
    })
}

fn args(positional: Vec<Json>) -> Args {
    Args {
        positional,
        keywords: Vec::new(),
    }
}

fn send(invoker: &PyInvoker, calls: Vec<Args>) -> oneshot::Receiver<Outcome> {
    let (reply, outcome) = oneshot::channel();
    invoker.invoke(calls, Box::new(reply));
    outcome
}

fn texts(outcome: Outcome) -> Vec<String> {
    outcome
        .unwrap()
        .into_iter()
        .map(|bytes| String::from_utf8(bytes).unwrap())
        .collect()
}

#[test]
fn calls_run_on_the_pool_and_come_back_as_json() {
    let invoker = invoker("add");
    let mut y = args(vec![Json::Int(1)]);
    y.keywords.push(("y".into(), Json::Float(0.5)));
    let outcome = send(&invoker, vec![args(vec![Json::Int(1), Json::Int(2)]), y]);
    assert_eq!(texts(outcome.blocking_recv().unwrap()), ["3", "1.5"]);
    invoker.close();
}

#[test]
fn a_call_waiting_without_the_gil_does_not_hold_up_the_next() {
    let invoker = invoker("wait_or_set");
    let start = Instant::now();
    let waiting = send(&invoker, vec![args(vec![Json::Str("wait".into())])]);
    let setting = send(&invoker, vec![args(vec![Json::Str("set".into())])]);
    assert_eq!(texts(setting.blocking_recv().unwrap()), ["true"]);
    // `true`: the event was set while the first call waited, not after its 10 s ran out.
    assert_eq!(texts(waiting.blocking_recv().unwrap()), ["true"]);
    assert!(start.elapsed() < Duration::from_secs(5));
    invoker.close();
}

#[test]
fn coroutines_and_async_generators_finish_on_the_event_loop() {
    let double = invoker("double");
    let outcome = send(
        &double,
        vec![args(vec![Json::Int(2)]), args(vec![Json::Int(5)])],
    );
    assert_eq!(texts(outcome.blocking_recv().unwrap()), ["4", "10"]);
    double.close();

    let count = invoker("count");
    let outcome = send(&count, vec![args(vec![Json::Int(3)])]);
    assert_eq!(texts(outcome.blocking_recv().unwrap()), ["[0,1,2]"]);
    count.close();
}

#[test]
fn an_exception_becomes_its_type_and_message() {
    let invoker = invoker("fail");
    let outcome = send(&invoker, vec![args(Vec::new())])
        .blocking_recv()
        .unwrap();
    assert_eq!(
        outcome,
        Err(CallError::Raised {
            kind: "ValueError".into(),
            message: "the input is `bad`".into(),
            traceback: None,
        })
    );
    invoker.close();
}
