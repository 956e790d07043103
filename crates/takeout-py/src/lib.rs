//! `takeout._core`: the thin `PyO3` layer over `takeout-core`. Each file converts the types of
//! one core module; `errors.rs` maps every core error onto `takeout.errors` in one place.

mod bundle;
mod bytecode;
mod config;
mod convert;
mod env;
mod errors;
mod notebook;
mod pickle;
mod server;

use pyo3::prelude::*;

#[pymodule]
mod _core {
    #[pymodule_export]
    use crate::pickle::{scan_pickle, PyPickleScan};

    #[pymodule_export]
    use crate::bytecode::{decode_bytecode, scan_code, PyFinding, PyOpcodeTable};

    #[pymodule_export]
    use crate::env::{parse_requirement, PyDistribution, PyEnvIndex, PyLock};

    #[pymodule_export]
    use crate::bundle::{canonical_json, check_signature, hash_files, sign_manifest, verify_files};

    #[pymodule_export]
    use crate::notebook::{slice_notebook, PyNotebookSlice, PySlicedCell};

    #[pymodule_export]
    use crate::server::{PyApp, PyExchange, PyServer};

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
