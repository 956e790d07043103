//! JSON ↔ Python at the server's boundary, walked in Rust.
//!
//! Arguments arrive as plain JSON-derived objects (dict, list, str, int, float, bool, None);
//! richer types are the bundle loader's business. Results go the other way straight into JSON
//! bytes: JSON's own types here, on a fast path; every other type (numpy, pandas, polars,
//! dataclasses, datetimes, Decimal, sets, enums, generators…) by the one type table that
//! `takeout call` and `verify` use too (`takeout._types`), so the answers cannot differ. NaN
//! and ±Infinity become `null`. Anything without a JSON form is an error that names the type
//! and where in the result it sits.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
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
        Json::BigInt(text) => py.get_type::<PyInt>().call1((text.as_str(),))?,
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

/// The type table (`takeout._types`), looked up once per interpreter: the answer for every
/// type that is not one of JSON's own, so this encoder and `_runtime.to_json` cannot differ.
struct Table {
    plain: Py<PyAny>,
    key: Py<PyAny>,
    not_json: Py<PyType>,
}

static TABLE: PyOnceLock<Table> = PyOnceLock::new();

fn table(py: Python<'_>) -> PyResult<&Table> {
    TABLE.get_or_try_init(py, || {
        let module = py.import("takeout._types")?;
        Ok(Table {
            plain: module.getattr("plain")?.unbind(),
            key: module.getattr("key")?.unbind(),
            not_json: module
                .getattr("NotJSON")?
                .cast_into::<PyType>()
                .map_err(PyErr::from)?
                .unbind(),
        })
    })
}

/// Import what the encoder needs now, so the first request does not pay for it.
pub(crate) fn warm_up(py: Python<'_>) -> PyResult<()> {
    table(py).map(|_| ())
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
        table: table(obj.py())?,
        path: &mut path,
    }
    .value(obj, out, 0)
}

struct Encoder<'a> {
    table: &'a Table,
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

    /// Subclasses of JSON's own types (numpy's float64, an `IntEnum`, a named tuple, an
    /// `OrderedDict`) are written as what they are; anything else is one step of the type
    /// table (`_types.plain`: a dataclass into a dict, an array into lists) and written on.
    fn other(
        &mut self,
        obj: &Bound<'_, PyAny>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), EncodeError> {
        let py = obj.py();
        if obj.is_instance_of::<PyInt>() {
            return write_int(obj, out);
        }
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
        if let Some(plain) = numeric_numpy(obj)? {
            return self.value(&plain, out, depth + 1);
        }
        match self.table.plain.bind(py).call1((obj,)) {
            Ok(plain) => self.value(&plain, out, depth + 1),
            Err(err) => Err(self.refused(obj, err, "")),
        }
    }

    /// A `NotJSON` from the table is a value with no JSON form, named with its place; any
    /// other exception was raised by user code (a generator's body) and is reported as such.
    fn refused(&self, obj: &Bound<'_, PyAny>, err: PyErr, suffix: &str) -> EncodeError {
        let py = obj.py();
        if !err.is_instance(py, self.table.not_json.bind(py)) {
            return EncodeError::Raised(err);
        }
        let why = err
            .value(py)
            .getattr(intern!(py, "why"))
            .and_then(|w| w.extract::<String>())
            .unwrap_or_default();
        let mut refused = self.unserializable(obj, &why);
        if let EncodeError::Unserializable { path, .. } = &mut refused {
            path.push_str(suffix);
        }
        refused
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

    /// Object keys as `json.dumps` writes them; past strings, None, booleans and ints, the
    /// type table's `key` says (a date as ISO text, a float as json writes it, a tuple never).
    fn key<'k>(&mut self, k: &'k Bound<'_, PyAny>) -> Result<Cow<'k, str>, EncodeError> {
        if let Ok(s) = k.cast_exact::<PyString>() {
            return Ok(Cow::Owned(s.to_string_lossy().into_owned()));
        }
        if k.is_none() {
            return Ok(Cow::Borrowed("null"));
        }
        if k.is_exact_instance_of::<PyBool>() {
            return Ok(Cow::Borrowed(if k.is_truthy()? { "true" } else { "false" }));
        }
        if k.is_exact_instance_of::<PyInt>() {
            return Ok(Cow::Owned(k.str()?.to_string_lossy().into_owned()));
        }
        match self.table.key.bind(k.py()).call1((k,)) {
            Ok(text) => {
                let text = text.cast_into::<PyString>().map_err(PyErr::from)?;
                Ok(Cow::Owned(text.to_string_lossy().into_owned()))
            }
            Err(err) => Err(self.refused(k, err, "{key}")),
        }
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

/// A numpy array or scalar of booleans or numbers as Python's own values (`tolist()`): what
/// the type table makes of it (`_types._numpy_out`), without a call into Python's table per
/// value. That call was most of the encoding of a numpy result (a batch's array of labels is
/// 64 of them). Other dtypes (dates, objects, strings) are the table's to answer.
pub(crate) fn numeric_numpy<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    let ty = obj.get_type();
    let numpy = ty
        .getattr(intern!(py, "__module__"))
        .and_then(|m| m.eq(intern!(py, "numpy")))
        .unwrap_or(false);
    if !numpy {
        return Ok(None);
    }
    let Ok(kind) = obj
        .getattr(intern!(py, "dtype"))
        .and_then(|dtype| dtype.getattr(intern!(py, "kind")))
    else {
        return Ok(None);
    };
    let mut numeric = false;
    for k in [
        intern!(py, "b"),
        intern!(py, "i"),
        intern!(py, "u"),
        intern!(py, "f"),
    ] {
        numeric = numeric || kind.eq(k).unwrap_or(false);
    }
    if !numeric {
        return Ok(None);
    }
    let plain = obj.call_method0(intern!(py, "tolist"))?;
    // `longdouble` stays itself (no Python float holds it): the table says what it is.
    Ok((!plain.get_type().is(&ty)).then_some(plain))
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
