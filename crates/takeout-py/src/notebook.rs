//! Bindings for `takeout_core::notebook`: read and slice an `.ipynb` text without the GIL.

use pyo3::prelude::*;
use takeout_core::notebook::{self, Notebook, SliceOptions, SlicedCell};

use crate::errors::notebook_error;

/// A code cell of the slice.
#[pyclass(name = "SlicedCell", module = "takeout._core", frozen, get_all)]
pub(crate) struct PySlicedCell {
    number: usize,
    execution_count: Option<u64>,
    source: String,
    /// `(line, end_line, reason)` of each kept statement.
    statements: Vec<(u32, u32, String)>,
}

impl From<SlicedCell> for PySlicedCell {
    fn from(cell: SlicedCell) -> Self {
        Self {
            number: cell.number,
            execution_count: cell.execution_count,
            source: cell.source,
            statements: cell
                .statements
                .into_iter()
                .map(|s| (s.line, s.end_line, s.reason))
                .collect(),
        }
    }
}

#[pymethods]
impl PySlicedCell {
    fn __repr__(&self) -> String {
        format!(
            "SlicedCell(number={}, statements={})",
            self.number,
            self.statements.len()
        )
    }
}

/// The statements of a notebook that one function depends on.
#[pyclass(name = "NotebookSlice", module = "takeout._core", frozen, get_all)]
pub(crate) struct PyNotebookSlice {
    function: String,
    label: String,
    kernel_name: Option<String>,
    language: Option<String>,
    total_cells: usize,
    code_cells: usize,
    all_cells: bool,
    cells: Vec<Py<PySlicedCell>>,
    /// `(module, level, names, cell, line, deferred)`.
    imports: Vec<(String, u32, Vec<String>, usize, u32, bool)>,
    warnings: Vec<String>,
    unresolved: Vec<String>,
    script: String,
    target_cell: usize,
    target_line: u32,
    /// `(name, cell, line, rule)`.
    captured: Vec<(String, Option<usize>, u32, String)>,
}

#[pymethods]
impl PyNotebookSlice {
    fn __repr__(&self) -> String {
        let cells: Vec<String> = Python::attach(|py| {
            self.cells
                .iter()
                .map(|c| c.borrow(py).number.to_string())
                .collect()
        });
        format!(
            "NotebookSlice(function='{}', cells=[{}])",
            self.function,
            cells.join(", ")
        )
    }
}

/// Parses nbformat 4 `text` and slices it backwards from `function`.
#[pyfunction]
#[pyo3(signature = (text, function, label, all_cells = false, state_end = false, cell = None))]
pub(crate) fn slice_notebook(
    py: Python<'_>,
    text: &str,
    function: &str,
    label: &str,
    all_cells: bool,
    state_end: bool,
    cell: Option<usize>,
) -> PyResult<PyNotebookSlice> {
    let options = SliceOptions {
        all_cells,
        state_end,
        cell,
    };
    let sliced = py
        .detach(|| {
            let nb = Notebook::parse(text, label)?;
            notebook::slice(&nb, function, &options, label)
        })
        .map_err(notebook_error)?;
    let script = sliced.script();
    let cells = sliced
        .cells
        .into_iter()
        .map(|cell| Py::new(py, PySlicedCell::from(cell)))
        .collect::<PyResult<_>>()?;
    Ok(PyNotebookSlice {
        function: sliced.function,
        label: sliced.label,
        kernel_name: sliced.kernel_name,
        language: sliced.language,
        total_cells: sliced.total_cells,
        code_cells: sliced.code_cells,
        all_cells: sliced.all_cells,
        cells,
        imports: sliced
            .imports
            .into_iter()
            .map(|i| (i.module, i.level, i.names, i.cell, i.line, i.deferred))
            .collect(),
        warnings: sliced.warnings,
        unresolved: sliced.unresolved,
        script,
        target_cell: sliced.target_cell,
        target_line: sliced.target_line,
        captured: sliced
            .captured
            .into_iter()
            .map(|c| (c.name, c.cell, c.line, c.rule))
            .collect(),
    })
}
