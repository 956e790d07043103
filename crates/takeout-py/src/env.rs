//! Bindings for `takeout_core::env_index`, `metadata` and `lock`. (TODO: environment-index work item.)

use pyo3::prelude::*;

#[pyclass(name = "Distribution", module = "takeout._core", frozen, get_all)]
pub(crate) struct PyDistribution {
    pub name: String,
}

#[pyclass(name = "Lock", module = "takeout._core", frozen, get_all)]
pub(crate) struct PyLock {}

#[pyclass(name = "EnvIndex", module = "takeout._core", frozen)]
pub(crate) struct PyEnvIndex {}

#[pyfunction]
pub(crate) fn parse_requirement(spec: &str) -> PyResult<(String, Vec<String>, String, Option<String>)> {
    let _ = spec;
    Err(crate::errors::requirement_error("todo".into()))
}
