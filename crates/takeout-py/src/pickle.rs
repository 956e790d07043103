//! Bindings for `takeout_core::pickle_scan`. (TODO: pickle-scanner work item.)

use pyo3::prelude::*;

#[pyclass(name = "PickleScan", module = "takeout._core", frozen, get_all)]
pub(crate) struct PyPickleScan {
    pub protocol: u8,
}

#[pyfunction]
pub(crate) fn scan_pickle(py: Python<'_>, data: &[u8]) -> PyResult<PyPickleScan> {
    let _ = (py, data);
    todo!()
}
