//! Bindings for `takeout_core::bytecode`. (TODO: bytecode-scanner work item.)

use pyo3::prelude::*;

#[pyclass(name = "OpcodeTable", module = "takeout._core", frozen)]
pub(crate) struct PyOpcodeTable {}

#[pyclass(name = "Finding", module = "takeout._core", frozen, get_all)]
pub(crate) struct PyFinding {
    pub qualname: String,
}

#[pyfunction]
pub(crate) fn decode_bytecode(code: &[u8], table: &PyOpcodeTable) -> PyResult<Vec<(usize, u8, Option<u32>)>> {
    let _ = (code, table);
    todo!()
}

#[pyfunction]
pub(crate) fn scan_code(code: &Bound<'_, PyAny>, table: &PyOpcodeTable) -> PyResult<Vec<PyFinding>> {
    let _ = (code, table);
    todo!()
}
