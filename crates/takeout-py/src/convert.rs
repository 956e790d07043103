//! JSON ↔ Python at the server's boundary, walked in Rust.
//!
//! Arguments arrive as plain JSON-derived objects (dict, list, str, int, float, bool, None);
//! richer types are the bundle loader's business. Results go the other way straight into JSON
//! bytes: exact builtins on a fast path, then numpy, pandas, dataclasses, datetimes, Decimal,
//! sets, tuples, enums and generators; NaN and ±Infinity become `null`. Anything else is an
//! error that names the type and where in the result it sits.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString,
    PyTuple, PyType,
};
use pyo3::{intern, IntoPyObjectExt};

use takeout_core::server::json::Json;

/// Deeper than this, a result is almost surely a cycle (`a = []; a.append(a)`).
const MAX_DEPTH: usize = 200;

pub(crate) fn json_to_py<'py>(py: Python<'py>, value: &Json) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Json::Null => py.None().into_bound(py),
        Json::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Json::Int(i) => i.into_bound_py_any(py)?,
        Json::UInt(u) => u.into_bound_py_any(py)?,
        Json::Float(f) => PyFloat::new(py, *f).into_any(),
        Json::Str(s) => PyString::new(py, s).into_any(),
        Json::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Json::Object(members) => {
            let dict = PyDict::new(py);
            for (k, v) in members {
                dict.set_item(PyString::new(py, k), json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Why a result could not be written.
pub(crate) enum EncodeError {
    /// User code raised while producing the result (a generator's body, `tolist()`).
    Raised(PyErr),
    /// `kind` (the type, qualified) at `path` (`[2].x`) has no JSON form.
    Unserializable { kind: String, path: String },
}

impl From<PyErr> for EncodeError {
    fn from(err: PyErr) -> Self {
        Self::Raised(err)
    }
}

enum Seg {
    Index(usize),
    Key(String),
}

/// Types looked up once per interpreter.
struct Types {
    datetime: Py<PyType>,
    date: Py<PyType>,
    time: Py<PyType>,
    timedelta: Py<PyType>,
    decimal: Py<PyType>,
    enum_: Py<PyType>,
    uuid: Py<PyType>,
    pure_path: Py<PyType>,
    generator: Py<PyType>,
    mapping: Py<PyType>,
    fields: Py<PyAny>,
}

static TYPES: PyOnceLock<Types> = PyOnceLock::new();

fn types(py: Python<'_>) -> PyResult<&Types> {
    TYPES.get_or_try_init(py, || {
        let get = |module: &str, name: &str| -> PyResult<Py<PyType>> {
            Ok(py
                .import(module)?
                .getattr(name)?
                .cast_into::<PyType>()
                .map_err(PyErr::from)?
                .unbind())
        };
        Ok(Types {
            datetime: get("datetime", "datetime")?,
            date: get("datetime", "date")?,
            time: get("datetime", "time")?,
            timedelta: get("datetime", "timedelta")?,
            decimal: get("decimal", "Decimal")?,
            enum_: get("enum", "Enum")?,
            uuid: get("uuid", "UUID")?,
            pure_path: get("pathlib", "PurePath")?,
            generator: get("types", "GeneratorType")?,
            mapping: get("collections.abc", "Mapping")?,
            fields: py.import("dataclasses")?.getattr("fields")?.unbind(),
        })
    })
}

/// Import what the encoder needs now, so the first request does not pay for it.
pub(crate) fn warm_up(py: Python<'_>) -> PyResult<()> {
    types(py).map(|_| ())
}

/// `module.QualName` of an object's type (`builtins` left out).
pub(crate) fn type_name(ty: &Bound<'_, PyType>) -> String {
    let qualname = ty.qualname().map_or_else(|_| "?".into(), |q| q.to_string());
    match ty.module().map(|m| m.to_string()) {
        Ok(m) if m != "builtins" => format!("{m}.{qualname}"),
        _ => qualname,
    }
}

/// Write `obj` as JSON onto `out`.
pub(crate) fn encode(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut path = Vec::new();
    Encoder {
        types: types(obj.py())?,
        path: &mut path,
    }
    .value(obj, out, 0)
}

struct Encoder<'a> {
    types: &'a Types,
    path: &'a mut Vec<Seg>,
}

impl Encoder<'_> {
    fn value(
        &mut self,
        obj: &Bound<'_, PyAny>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), EncodeError> {
        if depth > MAX_DEPTH {
            let why = format!(" nested deeper than {MAX_DEPTH} levels (a cycle?)");
            return Err(self.unserializable(obj, &why));
        }
        // Exact builtins first: the common results never reach the slower checks.
        if obj.is_none() {
            out.extend_from_slice(b"null");
        } else if obj.is_exact_instance_of::<PyBool>() {
            out.extend_from_slice(if obj.is_truthy()? { b"true" } else { b"false" });
        } else if obj.is_exact_instance_of::<PyInt>() {
            write_int(obj, out)?;
        } else if obj.is_exact_instance_of::<PyFloat>() {
            write_float(obj.extract::<f64>()?, out);
        } else if let Ok(s) = obj.cast_exact::<PyString>() {
            write_str(&s.to_string_lossy(), out);
        } else if let Ok(list) = obj.cast_exact::<PyList>() {
            self.seq(list.iter(), out, depth)?;
        } else if let Ok(dict) = obj.cast_exact::<PyDict>() {
            self.dict(dict, out, depth)?;
        } else if let Ok(tuple) = obj.cast_exact::<PyTuple>() {
            self.seq(tuple.iter(), out, depth)?;
        } else {
            self.other(obj, out, depth)?;
        }
        Ok(())
    }

    fn other(
        &mut self,
        obj: &Bound<'_, PyAny>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), EncodeError> {
        let py = obj.py();
        let t = self.types;
        if obj.is_instance(t.enum_.bind(py))? {
            return self.value(&obj.getattr(intern!(py, "value"))?, out, depth + 1);
        }
        if obj.is_instance_of::<PyBool>() {
            out.extend_from_slice(if obj.is_truthy()? { b"true" } else { b"false" });
            return Ok(());
        }
        if obj.is_instance_of::<PyInt>() {
            return write_int(obj, out);
        }
        // numpy's float64 is a float subclass; so it lands here with its NaN handling.
        if obj.is_instance_of::<PyFloat>() {
            write_float(obj.extract::<f64>()?, out);
            return Ok(());
        }
        if let Ok(s) = obj.cast::<PyString>() {
            write_str(&s.to_string_lossy(), out);
            return Ok(());
        }
        if let Ok(list) = obj.cast::<PyList>() {
            return self.seq(list.iter(), out, depth);
        }
        if let Ok(tuple) = obj.cast::<PyTuple>() {
            return self.seq(tuple.iter(), out, depth);
        }
        if let Ok(dict) = obj.cast::<PyDict>() {
            return self.dict(dict, out, depth);
        }
        let ty = obj.get_type();
        let module = ty.module().map(|m| m.to_string()).unwrap_or_default();
        if module == "numpy" || module.starts_with("numpy.") {
            // `tolist()` turns arrays into nested lists and scalars into Python scalars.
            if obj.hasattr(intern!(py, "tolist"))? {
                let plain = obj.call_method0(intern!(py, "tolist"))?;
                return self.value(&plain, out, depth + 1);
            }
        }
        if module == "pandas" || module.starts_with("pandas.") {
            let name = ty.name().map(|n| n.to_string()).unwrap_or_default();
            match name.as_str() {
                "NaTType" | "NAType" => {
                    out.extend_from_slice(b"null");
                    return Ok(());
                }
                "DataFrame" => {
                    let kwargs = PyDict::new(py);
                    kwargs.set_item("orient", "records")?;
                    let records = obj.call_method(intern!(py, "to_dict"), (), Some(&kwargs))?;
                    return self.value(&records, out, depth + 1);
                }
                _ => {}
            }
            if !obj.is_instance(t.datetime.bind(py))?
                && !obj.is_instance(t.timedelta.bind(py))?
                && obj.hasattr(intern!(py, "tolist"))?
            {
                let plain = obj.call_method0(intern!(py, "tolist"))?;
                return self.value(&plain, out, depth + 1);
            }
        }
        // `datetime` before `date`: it is a subclass.
        if obj.is_instance(t.datetime.bind(py))?
            || obj.is_instance(t.date.bind(py))?
            || obj.is_instance(t.time.bind(py))?
        {
            let iso = obj.call_method0(intern!(py, "isoformat"))?;
            write_str(&iso.str()?.to_string_lossy(), out);
            return Ok(());
        }
        if obj.is_instance(t.timedelta.bind(py))? {
            let seconds = obj.call_method0(intern!(py, "total_seconds"))?;
            write_float(seconds.extract::<f64>()?, out);
            return Ok(());
        }
        if obj.is_instance(t.decimal.bind(py))? {
            if obj.call_method0(intern!(py, "is_finite"))?.is_truthy()? {
                // `str(Decimal)` is a valid JSON number (`1.10`, `1E+2`): no float rounding.
                out.extend_from_slice(obj.str()?.to_string_lossy().as_bytes());
            } else {
                out.extend_from_slice(b"null");
            }
            return Ok(());
        }
        if obj.is_instance(t.uuid.bind(py))? || obj.is_instance(t.pure_path.bind(py))? {
            write_str(&obj.str()?.to_string_lossy(), out);
            return Ok(());
        }
        if obj.is_instance_of::<PySet>() || obj.is_instance_of::<PyFrozenSet>() {
            // Sorted when the items allow it, so the same set gives the same bytes.
            let items = match py
                .import(intern!(py, "builtins"))?
                .getattr(intern!(py, "sorted"))?
                .call1((obj,))
            {
                Ok(sorted) => sorted,
                Err(_) => {
                    PyList::new(py, obj.try_iter()?.collect::<PyResult<Vec<_>>>()?)?.into_any()
                }
            };
            return self.value(&items, out, depth + 1);
        }
        if obj.is_instance(t.generator.bind(py))? {
            let items = PyList::empty(py);
            for item in obj.try_iter()? {
                items.append(item?)?;
            }
            return self.value(items.as_any(), out, depth + 1);
        }
        if !obj.is_instance_of::<PyType>() && ty.hasattr(intern!(py, "__dataclass_fields__"))? {
            return self.dataclass(obj, out, depth);
        }
        if obj.hasattr(intern!(py, "model_dump"))? && !obj.is_instance_of::<PyType>() {
            let kwargs = PyDict::new(py);
            kwargs.set_item("mode", "json")?;
            let dumped = obj.call_method(intern!(py, "model_dump"), (), Some(&kwargs))?;
            return self.value(&dumped, out, depth + 1);
        }
        if obj.is_instance(t.mapping.bind(py))? {
            let dict = PyDict::new(py);
            for item in obj.call_method0(intern!(py, "items"))?.try_iter()? {
                let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
                dict.set_item(k, v)?;
            }
            return self.dict(&dict, out, depth);
        }
        if let Ok(b) = obj.cast::<PyBytes>() {
            return self.utf8(obj, b.as_bytes(), out);
        }
        if let Ok(b) = obj.cast::<PyByteArray>() {
            return self.utf8(obj, &b.to_vec(), out);
        }
        Err(self.unserializable(obj, ""))
    }

    fn utf8(
        &mut self,
        obj: &Bound<'_, PyAny>,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                write_str(s, out);
                Ok(())
            }
            Err(_) => Err(self.unserializable(obj, " (not UTF-8)")),
        }
    }

    fn seq<'py>(
        &mut self,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), EncodeError> {
        out.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.path.push(Seg::Index(i));
            self.value(&item, out, depth + 1)?;
            self.path.pop();
        }
        out.push(b']');
        Ok(())
    }

    fn dict(
        &mut self,
        dict: &Bound<'_, PyDict>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), EncodeError> {
        out.push(b'{');
        for (i, (k, v)) in dict.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let key = self.key(&k)?;
            write_str(&key, out);
            out.push(b':');
            self.path.push(Seg::Key(key.into_owned()));
            self.value(&v, out, depth + 1)?;
            self.path.pop();
        }
        out.push(b'}');
        Ok(())
    }

    fn dataclass(
        &mut self,
        obj: &Bound<'_, PyAny>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), EncodeError> {
        let py = obj.py();
        out.push(b'{');
        let fields = self.types.fields.bind(py).call1((obj,))?;
        for (i, field) in fields.try_iter()?.enumerate() {
            let name = field?.getattr(intern!(py, "name"))?;
            let name = name.cast::<PyString>().map_err(PyErr::from)?;
            if i > 0 {
                out.push(b',');
            }
            let key = name.to_string_lossy().into_owned();
            write_str(&key, out);
            out.push(b':');
            let value = obj.getattr(name)?;
            self.path.push(Seg::Key(key));
            self.value(&value, out, depth + 1)?;
            self.path.pop();
        }
        out.push(b'}');
        Ok(())
    }

    /// Object keys as `json.dumps` writes them: strings, and numbers, booleans and None as text.
    fn key<'k>(&mut self, k: &'k Bound<'_, PyAny>) -> Result<Cow<'k, str>, EncodeError> {
        if let Ok(s) = k.cast::<PyString>() {
            return Ok(Cow::Owned(s.to_string_lossy().into_owned()));
        }
        if k.is_none() {
            return Ok(Cow::Borrowed("null"));
        }
        if k.is_instance_of::<PyBool>() {
            return Ok(Cow::Borrowed(if k.is_truthy()? { "true" } else { "false" }));
        }
        let py = k.py();
        if k.is_instance_of::<PyInt>() || k.is_instance_of::<PyFloat>() {
            return Ok(Cow::Owned(k.str()?.to_string_lossy().into_owned()));
        }
        if k.is_instance(self.types.enum_.bind(py))? {
            let value = k.getattr(intern!(py, "value"))?;
            return Ok(Cow::Owned(self.key(&value)?.into_owned()));
        }
        let module = k
            .get_type()
            .module()
            .map(|m| m.to_string())
            .unwrap_or_default();
        if module == "numpy" || module.starts_with("numpy.") {
            let plain = k.call_method0(intern!(py, "tolist"))?;
            return Ok(Cow::Owned(self.key(&plain)?.into_owned()));
        }
        let mut err = self.unserializable(k, " as a dict key");
        if let EncodeError::Unserializable { path, .. } = &mut err {
            path.push_str("{key}");
        }
        Err(err)
    }

    fn unserializable(&self, obj: &Bound<'_, PyAny>, why: &str) -> EncodeError {
        let mut path = String::new();
        for seg in self.path.iter() {
            match seg {
                Seg::Index(i) => {
                    let _ = write!(path, "[{i}]");
                }
                Seg::Key(k) if is_identifier(k) => {
                    path.push('.');
                    path.push_str(k);
                }
                Seg::Key(k) => {
                    path.push('[');
                    path.push_str(&serde_json::to_string(k).unwrap_or_default());
                    path.push(']');
                }
            }
        }
        if path.chars().count() > 80 {
            path = path.chars().take(80).collect::<String>() + "…";
        }
        EncodeError::Unserializable {
            kind: format!("{}{why}", type_name(&obj.get_type())),
            path,
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

fn write_int(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if let Ok(i) = obj.extract::<i64>() {
        let _ = write!(out, "{i}");
    } else {
        // Past 64 bits: Python's own digits are exact, and a JSON number has no size limit.
        let int = obj.py().get_type::<PyInt>().call1((obj,))?;
        out.extend_from_slice(int.str()?.to_string_lossy().as_bytes());
    }
    Ok(())
}

fn write_float(f: f64, out: &mut Vec<u8>) {
    if f.is_finite() {
        // serde_json writes the shortest text that reads back as the same f64, like `repr`.
        let _ = serde_json::to_writer(&mut *out, &f);
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, s);
}
