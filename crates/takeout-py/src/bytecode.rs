//! Bindings for `takeout_core::bytecode`: the opcode table, code object conversion and the
//! findings. The scan itself runs without the GIL.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyInt, PyString, PyTuple, PyType};

use takeout_core::bytecode::{self, CodeUnit, Const, Finding, Located, OpcodeTable};

use crate::errors::bytecode_error;

#[pyclass(name = "OpcodeTable", module = "takeout._core", frozen)]
pub(crate) struct PyOpcodeTable {
    inner: OpcodeTable,
}

#[pymethods]
impl PyOpcodeTable {
    #[new]
    fn new(
        version: (u8, u8),
        names: Vec<String>,
        has_arg: Vec<bool>,
        cache_entries: Vec<u8>,
    ) -> PyResult<Self> {
        let inner =
            OpcodeTable::new(version, names, has_arg, cache_entries).map_err(bytecode_error)?;
        Ok(Self { inner })
    }

    #[getter]
    fn version(&self) -> (u8, u8) {
        self.inner.version()
    }

    fn __repr__(&self) -> String {
        let (major, minor) = self.inner.version();
        format!("OpcodeTable(version=({major}, {minor}))")
    }
}

#[pyclass(name = "Finding", module = "takeout._core", frozen, get_all)]
pub(crate) struct PyFinding {
    pub(crate) qualname: String,
    pub(crate) kind: &'static str,
    pub(crate) module: Option<String>,
    pub(crate) level: u32,
    pub(crate) fromlist: Vec<String>,
    pub(crate) global_name: Option<String>,
    pub(crate) attrs: Vec<String>,
    pub(crate) callee: Option<String>,
}

impl From<Located> for PyFinding {
    fn from(located: Located) -> Self {
        let mut out = Self {
            qualname: located.qualname,
            kind: "",
            module: None,
            level: 0,
            fromlist: Vec::new(),
            global_name: None,
            attrs: Vec::new(),
            callee: None,
        };
        match located.finding {
            Finding::Import {
                module,
                level,
                fromlist,
            } => {
                out.kind = "import";
                out.module = Some(module);
                out.level = level;
                out.fromlist = fromlist;
            }
            Finding::GlobalChain { global, attrs } => {
                out.kind = "chain";
                out.global_name = Some(global);
                out.attrs = attrs;
            }
            Finding::DynamicImport { module, callee } => {
                out.kind = "dynamic";
                out.module = Some(module);
                out.callee = Some(callee);
            }
        }
        out
    }
}

#[pymethods]
impl PyFinding {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let text = |value: &Option<String>| -> PyResult<String> {
            match value {
                Some(value) => Ok(PyString::new(py, value).repr()?.to_string()),
                None => Ok("None".to_owned()),
            }
        };
        let list = |values: &[String]| -> PyResult<String> {
            let items = values
                .iter()
                .map(|v| text(&Some(v.clone())))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(format!("[{}]", items.join(", ")))
        };
        let fields = match self.kind {
            "import" => format!(
                "module={}, level={}, fromlist={}",
                text(&self.module)?,
                self.level,
                list(&self.fromlist)?
            ),
            "chain" => format!(
                "global_name={}, attrs={}",
                text(&self.global_name)?,
                list(&self.attrs)?
            ),
            _ => format!(
                "module={}, callee={}",
                text(&self.module)?,
                text(&self.callee)?
            ),
        };
        Ok(format!(
            "Finding(kind='{}', qualname={}, {fields})",
            self.kind,
            text(&Some(self.qualname.clone()))?
        ))
    }
}

#[pyfunction]
pub(crate) fn decode_bytecode(
    code: &[u8],
    table: &PyOpcodeTable,
) -> PyResult<Vec<(usize, u8, Option<u32>)>> {
    let instructions = bytecode::decode(code, &table.inner).map_err(bytecode_error)?;
    Ok(instructions
        .into_iter()
        .map(|i| (i.offset, i.opcode, i.arg))
        .collect())
}

#[pyfunction]
pub(crate) fn scan_code(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    table: &PyOpcodeTable,
) -> PyResult<Vec<PyFinding>> {
    let unit = convert(code)?;
    let located = py
        .detach(|| bytecode::scan(&unit, &table.inner))
        .map_err(bytecode_error)?;
    Ok(located.into_iter().map(PyFinding::from).collect())
}

fn code_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static CODE_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    CODE_TYPE.import(py, "types", "CodeType")
}

/// A code object or tuple whose constants are being converted.
struct Open<'py> {
    /// `None` for a tuple.
    unit: Option<CodeUnit>,
    /// Items still to convert, last first.
    todo: Vec<Bound<'py, PyAny>>,
    done: Vec<Const>,
}

impl Open<'_> {
    fn finish(self) -> Const {
        match self.unit {
            Some(mut unit) => {
                unit.consts = self.done;
                Const::Code(Box::new(unit))
            }
            None => Const::Tuple(self.done),
        }
    }
}

/// Convert a code object and everything nested in its constants. Iterative: nesting depth
/// is up to the input (code objects can be built by hand), the call stack is not.
fn convert(code: &Bound<'_, PyAny>) -> PyResult<CodeUnit> {
    let code_type = code_type(code.py())?;
    if !code.is_instance(code_type)? {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "expected a code object, got {}",
            code.get_type().name()?
        )));
    }
    let (mut root, mut root_todo) = open_code(code)?;
    let mut root_done = Vec::new();
    let mut stack: Vec<Open<'_>> = Vec::new();
    loop {
        let (todo, done) = match stack.last_mut() {
            Some(top) => (&mut top.todo, &mut top.done),
            None => (&mut root_todo, &mut root_done),
        };
        if let Some(item) = todo.pop() {
            if item.is_instance(code_type)? {
                let (unit, todo) = open_code(&item)?;
                stack.push(Open {
                    unit: Some(unit),
                    todo,
                    done: Vec::new(),
                });
            } else if let Ok(tuple) = item.cast::<PyTuple>() {
                stack.push(Open {
                    unit: None,
                    todo: tuple.iter().rev().collect(),
                    done: Vec::new(),
                });
            } else {
                done.push(scalar(&item));
            }
            continue;
        }
        if let Some(frame) = stack.pop() {
            let value = frame.finish();
            match stack.last_mut() {
                Some(parent) => parent.done.push(value),
                None => root_done.push(value),
            }
        } else {
            root.consts = root_done;
            return Ok(root);
        }
    }
}

/// The fields of a code object, and its constants (last first) for [`convert`] to fill in.
fn open_code<'py>(code: &Bound<'py, PyAny>) -> PyResult<(CodeUnit, Vec<Bound<'py, PyAny>>)> {
    let qualname = match code.getattr_opt("co_qualname")? {
        Some(qualname) => qualname,
        None => code.getattr("co_name")?, // before 3.11
    };
    let unit = CodeUnit {
        qualname: lossy(&qualname)?,
        filename: lossy(&code.getattr("co_filename")?)?,
        // Informational only: an odd value from `CodeType.replace` must not fail the scan.
        firstlineno: u32::try_from(code.getattr("co_firstlineno")?.extract::<i64>()?).unwrap_or(0),
        code: code
            .getattr("co_code")?
            .cast_into::<PyBytes>()?
            .as_bytes()
            .to_vec(),
        names: lossy_tuple(&code.getattr("co_names")?)?,
        varnames: lossy_tuple(&code.getattr("co_varnames")?)?,
        consts: Vec::new(),
    };
    let consts = code.getattr("co_consts")?;
    let todo = consts.cast::<PyTuple>()?.iter().rev().collect();
    Ok((unit, todo))
}

/// Names keep their positions (instructions index them) even if not valid UTF-8, e.g. a
/// filename decoded with `surrogateescape`.
fn lossy(value: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(value.cast::<PyString>()?.to_string_lossy().into_owned())
}

fn lossy_tuple(value: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    value.cast::<PyTuple>()?.iter().map(|v| lossy(&v)).collect()
}

fn scalar(value: &Bound<'_, PyAny>) -> Const {
    if value.is_none() {
        Const::None
    } else if value.is_instance_of::<PyBool>() {
        // `True` is an int to Python, but never an import level.
        Const::Other
    } else if value.is_instance_of::<PyInt>() {
        value.extract().map_or(Const::Other, Const::Int)
    } else if let Ok(text) = value.cast::<PyString>() {
        // A string that is not valid UTF-8 cannot be a module name.
        text.to_cow()
            .map_or(Const::Other, |text| Const::Str(text.into_owned()))
    } else {
        Const::Other
    }
}
