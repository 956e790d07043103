//! The GIL as the call pool's [`Interpreter`]: the pool's logic lives (and is tested) in
//! `takeout_core::server::pool`.

use pyo3::prelude::*;

use takeout_core::server::pool::Interpreter;

pub(crate) struct Gil;

impl Interpreter for Gil {
    type Token<'py> = Python<'py>;

    fn attach<R>(&self, body: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
        Python::attach(body)
    }

    fn detach<R: Send>(&self, py: Python<'_>, body: impl FnOnce() -> R + Send) -> R {
        py.detach(body)
    }
}
