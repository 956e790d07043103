//! The one place where core errors become Python exceptions. The hierarchy itself lives in
//! `python/takeout/errors.py` (so it can use builtin bases such as `ValueError`); here each
//! core error enum maps onto one of its classes.

use pyo3::import_exception;
use pyo3::PyErr;

import_exception!(takeout.errors, PickleScanError);
import_exception!(takeout.errors, BytecodeError);
import_exception!(takeout.errors, EnvironmentIndexError);
import_exception!(takeout.errors, RequirementError);
import_exception!(takeout.errors, LockError);
import_exception!(takeout.errors, BundleIntegrityError);
import_exception!(takeout.errors, NotebookError);
import_exception!(takeout.errors, ServeError);

pub(crate) fn pickle_error(err: takeout_core::pickle_scan::PickleError) -> PyErr {
    PickleScanError::new_err(err.to_string())
}

pub(crate) fn bytecode_error(err: takeout_core::bytecode::BytecodeError) -> PyErr {
    BytecodeError::new_err(err.to_string())
}

pub(crate) fn index_error(err: takeout_core::env_index::EnvIndexError) -> PyErr {
    EnvironmentIndexError::new_err(err.to_string())
}

pub(crate) fn lock_error(err: takeout_core::lock::LockError) -> PyErr {
    LockError::new_err(err.to_string())
}

pub(crate) fn requirement_error(message: String) -> PyErr {
    RequirementError::new_err(message)
}

pub(crate) fn bundle_error(err: takeout_core::bundle::BundleError) -> PyErr {
    BundleIntegrityError::new_err(err.to_string())
}

pub(crate) fn serve_error(message: String) -> PyErr {
    ServeError::new_err(message)
}

pub(crate) fn notebook_error(err: takeout_core::notebook::NotebookError) -> PyErr {
    NotebookError::new_err(err.to_string())
}
