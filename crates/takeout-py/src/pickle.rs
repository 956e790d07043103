//! Bindings for `takeout_core::pickle_scan`.

use std::collections::BTreeSet;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView};
use takeout_core::pickle_scan::{self, PickleScan};

use crate::errors::pickle_error;

/// Every module an unpickler imports when it loads one stream.
#[pyclass(name = "PickleScan", module = "takeout._core", frozen, get_all)]
pub(crate) struct PyPickleScan {
    pub(crate) protocol: u8,
    /// `(module, name, opcode, offset)`.
    pub(crate) globals: Vec<(String, String, &'static str, usize)>,
    /// `(module, dynamic, offset)`.
    pub(crate) subimports: Vec<(String, bool, usize)>,
    pub(crate) extension_codes: Vec<u32>,
    pub(crate) out_of_band_buffers: usize,
}

impl From<PickleScan> for PyPickleScan {
    fn from(scan: PickleScan) -> Self {
        Self {
            protocol: scan.protocol,
            globals: scan
                .globals
                .into_iter()
                .map(|g| (g.module, g.name, g.kind.opcode_name(), g.offset))
                .collect(),
            subimports: scan
                .subimports
                .into_iter()
                .map(|s| (s.module, s.dynamic, s.offset))
                .collect(),
            extension_codes: scan.extension_codes,
            out_of_band_buffers: scan.out_of_band_buffers,
        }
    }
}

#[pymethods]
impl PyPickleScan {
    /// Counts plus the distinct modules, which is what a reader usually wants to see.
    fn __repr__(&self) -> String {
        let modules: BTreeSet<&str> = self
            .globals
            .iter()
            .map(|(module, ..)| module.as_str())
            .chain(self.subimports.iter().map(|(module, ..)| module.as_str()))
            .collect();
        let modules: Vec<String> = modules.iter().map(|m| format!("'{m}'")).collect();
        format!(
            "PickleScan(protocol={}, modules=[{}], globals={}, subimports={}, \
             extension_codes={}, out_of_band_buffers={})",
            self.protocol,
            modules.join(", "),
            self.globals.len(),
            self.subimports.len(),
            self.extension_codes.len(),
            self.out_of_band_buffers,
        )
    }
}

/// `bytes` is scanned in place without the GIL; `bytearray` and `memoryview` are copied
/// first, because without the GIL nothing stops another thread from resizing them (and
/// the abi3 API has no buffer protocol to pin a memoryview's exporter).
#[pyfunction]
pub(crate) fn scan_pickle(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<PyPickleScan> {
    let result = if let Ok(bytes) = data.cast::<PyBytes>() {
        let slice = bytes.as_bytes();
        py.detach(|| pickle_scan::scan(slice))
    } else if let Ok(array) = data.cast::<PyByteArray>() {
        let owned = array.to_vec();
        py.detach(|| pickle_scan::scan(&owned))
    } else if data.is_instance_of::<PyMemoryView>() {
        let copy = data.call_method0("tobytes")?;
        let copy = copy.cast::<PyBytes>()?;
        let slice = copy.as_bytes();
        py.detach(|| pickle_scan::scan(slice))
    } else {
        return Err(PyTypeError::new_err(format!(
            "scan_pickle() takes bytes, bytearray or memoryview, not {}",
            data.get_type().name()?
        )));
    };
    result.map(PyPickleScan::from).map_err(pickle_error)
}
