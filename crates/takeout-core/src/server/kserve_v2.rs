//! `KServe`'s Open Inference Protocol (v2, the REST form Triton and `KServe` share): the model's
//! tensor description from the manifest, an infer request decoded into the function's keyword
//! arguments, and its result encoded as one output tensor.
//!
//! Inputs are named after the parameters. A parameter's `datatype` and `shape` come from its
//! JSON Schema: numbers, integers, booleans and strings are scalars (a shape-`[1]` tensor),
//! arrays of them (a numpy array, `list[float]`) are tensors of any length (`-1` per
//! dimension), and anything else (objects, dataclasses) is one `BYTES` element holding the
//! value's JSON text. An unannotated parameter is described by the manifest's first example.
//! Both the JSON form of tensor data and Triton's binary tensor extension
//! (`Inference-Header-Content-Length`, `binary_data_size`) are read and written, since
//! `tritonclient` sends binary data unless told otherwise.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::json::{self, Json};
use super::params::Params as Signature;
use super::response::{clip, ApiError, Response};

/// The one output a function has; `KServe`'s own model servers name theirs the same way.
pub(crate) const OUTPUT: &str = "output-0";
/// Functions have no versions; clients that ask for one get this.
pub(crate) const VERSION: &str = "1";
pub(crate) const HEADER_LENGTH: &str = "inference-header-content-length";
const OCTET_STREAM: &str = "application/octet-stream";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// One element: a shape-`[1]` tensor (or any shape holding one element).
    Scalar,
    /// The tensor itself, as nested lists.
    Tensor,
    /// One `BYTES` element whose text is the value's JSON.
    JsonText,
}

#[derive(Debug, Clone)]
struct Spec {
    name: String,
    datatype: &'static str,
    shape: Vec<i64>,
    form: Form,
}

impl Spec {
    /// A leading `-1` dimension, one row per item; false (and unchanged) for a value sent as
    /// JSON text, which holds one item.
    fn batch_dimension(&mut self) -> bool {
        match self.form {
            Form::JsonText => false,
            Form::Scalar => {
                self.shape = vec![-1];
                self.form = Form::Tensor;
                true
            }
            Form::Tensor => {
                self.shape.insert(0, -1);
                true
            }
        }
    }

    fn metadata(&self) -> Value {
        json!({"name": self.name, "datatype": self.datatype, "shape": self.shape})
    }
}

/// What the v2 routes know of the function, built once from the manifest.
pub(crate) struct Model {
    name: String,
    /// A batch function's list parameter, when its item is a scalar or a tensor: that input
    /// carries a leading batch dimension, one row per item.
    batch_input: Option<String>,
    inputs: Vec<Spec>,
    output: Spec,
    metadata: Vec<u8>,
}

impl Model {
    pub(crate) fn new(sig: &Signature) -> Self {
        let defs = sig.defs();
        let example = sig.examples.first();
        let positional: Vec<&str> = sig
            .params
            .iter()
            .filter(|p| p.kind.positional())
            .map(|p| p.name.as_str())
            .collect();
        let inputs: Vec<Spec> = sig
            .params
            .iter()
            .filter(|p| p.kind.named())
            .map(|p| {
                let sample = example.and_then(|ex| {
                    positional
                        .iter()
                        .position(|n| *n == p.name)
                        .and_then(|i| ex.args.get(i))
                        .or_else(|| ex.kwargs.get(&p.name))
                });
                spec(&p.name, &p.schema, defs, sample)
            })
            .collect();
        let sample = example.and_then(|ex| ex.output.as_ref());
        let mut output = spec(OUTPUT, &sig.returns, defs, sample);
        let mut inputs = inputs;
        let mut batch_input = None;
        if let Some(batch) = &sig.batch {
            if let Some(first) = inputs.iter_mut().find(|s| s.name == batch.parameter) {
                if first.batch_dimension() {
                    batch_input = Some(first.name.clone());
                    output.batch_dimension();
                }
            }
        }
        let metadata = json!({
            "name": sig.name,
            "versions": [VERSION],
            "platform": "takeout",
            "inputs": inputs.iter().map(Spec::metadata).collect::<Vec<_>>(),
            "outputs": [output.metadata()],
        });
        Self {
            name: sig.name.clone(),
            batch_input,
            metadata: serde_json::to_vec(&metadata).expect("a JSON value serialises"),
            inputs,
            output,
        }
    }

    pub(crate) fn metadata(&self) -> Vec<u8> {
        self.metadata.clone()
    }

    pub(crate) fn batch_input(&self) -> Option<&str> {
        self.batch_input.as_deref()
    }

    /// `/v2/models/NAME/versions/1...` → `/v2/models/NAME...`: the one version is the model.
    pub(crate) fn unversioned<'a>(&self, path: &'a str) -> Cow<'a, str> {
        let versioned = || {
            let rest = path
                .strip_prefix("/v2/models/")?
                .strip_prefix(self.name.as_str())?
                .strip_prefix("/versions/")?
                .strip_prefix(VERSION)?;
            (rest.is_empty() || rest.starts_with('/')).then_some(rest)
        };
        match versioned() {
            Some(rest) => Cow::Owned(format!("/v2/models/{}{rest}", self.name)),
            None => Cow::Borrowed(path),
        }
    }
}

/// The server metadata of `GET /v2`.
pub(crate) fn server_metadata() -> Vec<u8> {
    json!({"name": "takeout", "version": env!("CARGO_PKG_VERSION"),
           "extensions": ["binary_tensor_data"]})
    .to_string()
    .into_bytes()
}

/// `{"error": "..."}`, the Open Inference Protocol's error body.
pub(crate) fn error_response(err: ApiError) -> Response {
    let body = json!({"error": err.message}).to_string().into_bytes();
    Response {
        status: err.status,
        content_type: super::response::JSON,
        body,
        headers: err.headers,
        close: err.close,
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "invalid_inference_request", message)
}

// ── schema → tensor description ─────────────────────────────────────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Scalar(&'static str),
    /// Arrays nested `Some(rank)` deep, or of any depth (a numpy array's schema).
    Array(&'static str, Option<usize>),
    /// A scalar or deeper arrays: the items of an array of unknown rank.
    Nested(&'static str),
    Recursive,
    Null,
    Other,
    Any,
}

fn spec(
    name: &str,
    schema: &Value,
    defs: Option<&Map<String, Value>>,
    sample: Option<&Value>,
) -> Spec {
    let kind = match classify(schema, defs, &mut Vec::new()) {
        Kind::Any => sample.map_or(Kind::Array("FP64", None), kind_of_value),
        kind => kind,
    };
    let (datatype, shape, form) = match kind {
        Kind::Scalar(t) => (t, vec![1], Form::Scalar),
        Kind::Array(t, rank) => (t, vec![-1; rank.unwrap_or(1)], Form::Tensor),
        Kind::Nested(t) => (t, vec![-1], Form::Tensor),
        _ => ("BYTES", vec![1], Form::JsonText),
    };
    Spec {
        name: name.to_owned(),
        datatype,
        shape,
        form,
    }
}

fn widen(a: &'static str, b: &'static str) -> &'static str {
    match (a, b) {
        _ if a == b => a,
        ("INT64" | "BOOL" | "FP64", "INT64" | "BOOL" | "FP64") => "FP64",
        _ => "BYTES",
    }
}

fn classify(schema: &Value, defs: Option<&Map<String, Value>>, seen: &mut Vec<String>) -> Kind {
    let Value::Object(map) = schema else {
        return Kind::Any;
    };
    if let Some(Value::String(r)) = map.get("$ref") {
        let Some(name) = r.strip_prefix("#/$defs/") else {
            return Kind::Other;
        };
        if seen.iter().any(|s| s == name) {
            return Kind::Recursive;
        }
        let Some(def) = defs.and_then(|d| d.get(name)) else {
            return Kind::Other;
        };
        seen.push(name.to_owned());
        let kind = classify(def, defs, seen);
        seen.pop();
        return kind;
    }
    if let Some(Value::Array(branches)) = map.get("anyOf").or_else(|| map.get("oneOf")) {
        return union(branches.iter().map(|b| classify(b, defs, seen)));
    }
    match map.get("type") {
        Some(Value::String(t)) => by_type(t, map, defs, seen),
        Some(Value::Array(types)) => union(
            types
                .iter()
                .filter_map(Value::as_str)
                .map(|t| by_type(t, map, defs, seen)),
        ),
        _ if map.contains_key("enum") || map.contains_key("const") => Kind::Other,
        _ if map.keys().any(|k| {
            !matches!(
                k.as_str(),
                "title" | "description" | "default" | "examples" | "$defs"
            )
        }) =>
        {
            Kind::Other
        }
        _ => Kind::Any,
    }
}

fn by_type(
    t: &str,
    map: &Map<String, Value>,
    defs: Option<&Map<String, Value>>,
    seen: &mut Vec<String>,
) -> Kind {
    match t {
        "integer" => Kind::Scalar("INT64"),
        "number" => Kind::Scalar("FP64"),
        "boolean" => Kind::Scalar("BOOL"),
        "string" => Kind::Scalar("BYTES"),
        "null" => Kind::Null, // absorbed by `union`: `Optional[float]` is a float
        "array" => match map.get("items").map(|i| classify(i, defs, seen)) {
            Some(Kind::Scalar(t)) => Kind::Array(t, Some(1)),
            Some(Kind::Array(t, Some(r))) => Kind::Array(t, Some(r + 1)),
            Some(Kind::Array(t, None) | Kind::Nested(t)) => Kind::Array(t, None),
            _ => Kind::Other,
        },
        _ => Kind::Other,
    }
}

/// The kinds of `anyOf` branches as one: `null` and self-references drop out; scalars and
/// arrays together are the items of an array of any depth.
fn union(kinds: impl Iterator<Item = Kind>) -> Kind {
    let mut out: Option<Kind> = None;
    let mut recursive = false;
    for kind in kinds {
        if matches!(kind, Kind::Recursive | Kind::Null) {
            recursive |= kind == Kind::Recursive;
            continue;
        }
        out = Some(match (out, kind) {
            (None, k) => k,
            (Some(Kind::Scalar(a)), Kind::Scalar(b)) => Kind::Scalar(widen(a, b)),
            (Some(Kind::Scalar(a) | Kind::Nested(a)), Kind::Array(b, _) | Kind::Nested(b))
            | (Some(Kind::Array(a, _)), Kind::Scalar(b) | Kind::Nested(b)) => {
                Kind::Nested(widen(a, b))
            }
            (Some(Kind::Nested(a)), Kind::Scalar(b)) => Kind::Nested(widen(a, b)),
            (Some(Kind::Array(a, ra)), Kind::Array(b, rb)) => {
                Kind::Array(widen(a, b), if ra == rb { ra } else { None })
            }
            _ => Kind::Other,
        });
    }
    match out {
        // `{"anyOf": [{"type": "number"}, {"$ref": <itself>}]}`: a number or nested lists.
        Some(Kind::Scalar(t)) if recursive => Kind::Nested(t),
        Some(kind) => kind,
        None => Kind::Any,
    }
}

fn kind_of_value(value: &Value) -> Kind {
    match value {
        Value::Bool(_) => Kind::Scalar("BOOL"),
        Value::Number(n) if n.is_f64() => Kind::Scalar("FP64"),
        Value::Number(_) => Kind::Scalar("INT64"),
        Value::String(_) => Kind::Scalar("BYTES"),
        Value::Array(_) => match tensor_of(value) {
            Some((dims, leaves)) => Kind::Array(datatype_of(&leaves), Some(dims.len())),
            None => Kind::Other,
        },
        _ => Kind::Other,
    }
}

// ── request ─────────────────────────────────────────────────────────────────────────────────

/// What the response needs from its request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pending {
    id: Option<Value>,
    binary: bool,
    /// The request's rows went to a batch function as one call each: the output joins their
    /// results.
    pub(crate) batched: bool,
}

/// The infer request as keyword arguments (a JSON object the binder checks like `/call`'s).
pub(crate) fn decode(
    model: &Model,
    body: &[u8],
    header_length: Option<u64>,
    max_depth: usize,
) -> Result<(Json, Pending), ApiError> {
    let split = match header_length {
        Some(n) if n > body.len() as u64 => {
            return Err(bad(format!(
                "`Inference-Header-Content-Length` is {n} but the body has only {} bytes",
                body.len()
            )))
        }
        Some(n) => n as usize,
        None => body.len(),
    };
    let (header, mut binary) = body.split_at(split);
    let request = json::parse(header, max_depth).map_err(|err| bad(err.to_string()))?;
    let Json::Object(members) = request else {
        return Err(bad(format!(
            "an inference request is an object `{{\"inputs\": [...]}}`, not {}",
            request.kind()
        )));
    };
    let mut pending = Pending::default();
    let mut inputs = None;
    for (key, value) in members {
        match key.as_str() {
            "id" => pending.id = Some(value.to_value()),
            "inputs" => inputs = Some(value),
            "outputs" => pending.binary |= requested_outputs(value)?,
            "parameters" => pending.binary |= flag(&value, "binary_data_output"),
            _ => {}
        }
    }
    let inputs = match inputs {
        Some(Json::Array(items)) => items,
        Some(other) => {
            return Err(bad(format!(
                "`inputs` must be an array, not {}",
                other.kind()
            )))
        }
        None => {
            return Err(bad(
                "the request has no `inputs`; send `{\"inputs\": [...]}`",
            ))
        }
    };
    let mut args = Vec::with_capacity(inputs.len());
    for input in inputs {
        let (name, value) = decode_input(model, input, &mut binary)?;
        args.push((name, value));
    }
    if !binary.is_empty() {
        return Err(bad(format!(
            "{} bytes of binary data follow the inputs that no `binary_data_size` accounts for",
            binary.len()
        )));
    }
    Ok((Json::Object(args), pending))
}

fn flag(parameters: &Json, name: &str) -> bool {
    matches!(parameters, Json::Object(m) if m.iter().any(|(k, v)| k == name && *v == Json::Bool(true)))
}

/// Whether binary output is asked for; any output name but ours is refused.
fn requested_outputs(outputs: Json) -> Result<bool, ApiError> {
    let Json::Array(items) = outputs else {
        return Err(bad(format!(
            "`outputs` must be an array, not {}",
            outputs.kind()
        )));
    };
    let mut binary = false;
    for item in items {
        let Json::Object(members) = item else {
            return Err(bad("each of `outputs` must be an object with a `name`"));
        };
        for (k, v) in &members {
            match (k.as_str(), v) {
                ("name", Json::Str(name)) if name != OUTPUT => {
                    return Err(bad(format!(
                        "unknown output `{}`; this model has one output, `{OUTPUT}`",
                        clip(name, 100)
                    )))
                }
                ("parameters", p) => binary |= flag(p, "binary_data"),
                _ => {}
            }
        }
    }
    Ok(binary)
}

fn decode_input(
    model: &Model,
    input: Json,
    binary: &mut &[u8],
) -> Result<(String, Json), ApiError> {
    let Json::Object(members) = input else {
        return Err(bad(format!(
            "each of `inputs` must be an object with `name`, `shape`, `datatype` and `data`, not {}",
            input.kind()
        )));
    };
    let (mut name, mut shape, mut datatype, mut data, mut size) = (None, None, None, None, None);
    for (k, v) in members {
        match (k.as_str(), v) {
            ("name", Json::Str(s)) => name = Some(s),
            ("datatype", Json::Str(s)) => datatype = Some(s),
            ("shape", v) => shape = Some(v),
            ("data", v) => data = Some(v),
            ("parameters", Json::Object(p)) => {
                size = p
                    .into_iter()
                    .find(|(k, _)| k == "binary_data_size")
                    .map(|(_, v)| v);
            }
            _ => {}
        }
    }
    let name = name.ok_or_else(|| bad("an input has no `name`"))?;
    let at = |what: String| bad(format!("input `{}`: {what}", clip(&name, 100)));
    let datatype = datatype.ok_or_else(|| at("no `datatype`; say e.g. `FP64`".into()))?;
    let width = width(&datatype).ok_or_else(|| {
        at(format!(
            "datatype `{}` is unknown; use BOOL, INT8–INT64, UINT8–UINT64, FP16, FP32, FP64 or BYTES",
            clip(&datatype, 20)
        ))
    })?;
    let dims = match shape {
        Some(Json::Array(dims)) => dims
            .iter()
            .map(|d| match d {
                Json::Int(n) if *n >= 0 => {
                    usize::try_from(*n).map_err(|_| at("a dimension is too large".into()))
                }
                Json::UInt(n) => {
                    usize::try_from(*n).map_err(|_| at("a dimension is too large".into()))
                }
                other => Err(at(format!(
                    "`shape` holds `{}`; dimensions are integers of 0 or more",
                    clip(&other.to_value().to_string(), 40)
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(at("no `shape`; say e.g. `[1]` for one value".into())),
    };
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| at("the shape holds more elements than memory".into()))?;
    let leaves = match (data, size) {
        (Some(data), _) => {
            let mut leaves = Vec::with_capacity(count);
            flatten(data, &mut leaves);
            for leaf in &leaves {
                if !fits(&datatype, leaf) {
                    return Err(at(format!(
                        "`{}` in `data` is not a {datatype} element",
                        clip(&leaf.to_value().to_string(), 40)
                    )));
                }
            }
            leaves
        }
        (None, Some(size)) => {
            let size = match size {
                Json::Int(n) => usize::try_from(n)
                    .map_err(|_| at("`binary_data_size` must be a byte count".into()))?,
                Json::UInt(n) => {
                    usize::try_from(n).map_err(|_| at("`binary_data_size` is too large".into()))?
                }
                _ => return Err(at("`binary_data_size` must be a byte count".into())),
            };
            if size > binary.len() {
                return Err(at(format!(
                    "`binary_data_size` is {size} but only {} bytes of binary data are left",
                    binary.len()
                )));
            }
            let (bytes, rest) = binary.split_at(size);
            *binary = rest;
            read_binary(&datatype, width, bytes).map_err(at)?
        }
        (None, None) => return Err(at("no `data` and no `binary_data_size`".into())),
    };
    if leaves.len() != count {
        return Err(at(format!(
            "shape {:?} holds {count} elements but {} were sent",
            dims,
            leaves.len()
        )));
    }
    let form = model
        .inputs
        .iter()
        .find(|s| s.name == name)
        .map_or(Form::Tensor, |s| s.form);
    let value = match form {
        Form::Scalar if count == 1 => leaves.into_iter().next().unwrap_or(Json::Null),
        Form::Scalar => {
            return Err(at(format!(
                "the parameter takes one value; send a shape-[1] tensor, not shape {dims:?}"
            )))
        }
        Form::JsonText if count == 1 => match leaves.into_iter().next() {
            Some(Json::Str(text)) => json::parse(text.as_bytes(), 64).map_err(|err| {
                at(format!(
                    "the BYTES element must be the value's JSON text: {err}"
                ))
            })?,
            Some(other) => other,
            None => Json::Null,
        },
        Form::JsonText => {
            return Err(at(format!(
                "the parameter takes one BYTES element holding its JSON text, not shape {dims:?}"
            )))
        }
        Form::Tensor => nest(leaves, &dims),
    };
    Ok((name, value))
}

/// Bytes per element; 0 for BYTES (length-prefixed).
fn width(datatype: &str) -> Option<usize> {
    Some(match datatype {
        "BOOL" | "INT8" | "UINT8" => 1,
        "INT16" | "UINT16" | "FP16" => 2,
        "INT32" | "UINT32" | "FP32" => 4,
        "INT64" | "UINT64" | "FP64" => 8,
        "BYTES" => 0,
        _ => return None,
    })
}

fn fits(datatype: &str, leaf: &Json) -> bool {
    match (datatype, leaf) {
        ("BOOL", Json::Bool(_)) | ("BYTES", Json::Str(_)) => true,
        (t, Json::Int(_) | Json::UInt(_)) => {
            t.starts_with("INT") || t.starts_with("UINT") || t.starts_with("FP")
        }
        (t, Json::Float(_) | Json::Null) => t.starts_with("FP"),
        _ => false,
    }
}

/// Row-major elements, whether the client nested them or sent them flat (both are allowed).
fn flatten(value: Json, out: &mut Vec<Json>) {
    match value {
        Json::Array(items) => items.into_iter().for_each(|v| flatten(v, out)),
        other => out.push(other),
    }
}

fn nest(leaves: Vec<Json>, dims: &[usize]) -> Json {
    match dims {
        [] => leaves.into_iter().next().unwrap_or(Json::Null),
        [_] => Json::Array(leaves),
        [_, inner @ ..] => {
            let step: usize = inner.iter().product();
            if step == 0 {
                return Json::Array(vec![nest(Vec::new(), inner); dims[0]]);
            }
            let mut rows = Vec::with_capacity(dims[0]);
            let mut leaves = leaves.into_iter();
            for _ in 0..dims[0] {
                rows.push(nest(leaves.by_ref().take(step).collect(), inner));
            }
            Json::Array(rows)
        }
    }
}

fn read_binary(datatype: &str, width: usize, bytes: &[u8]) -> Result<Vec<Json>, String> {
    if width == 0 {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or("a BYTES element is cut short before its 4-byte length")?;
            let len = u32::from_le_bytes(*len) as usize;
            if len > tail.len() {
                return Err("a BYTES element is longer than the data left".into());
            }
            let (text, tail) = tail.split_at(len);
            let text = std::str::from_utf8(text)
                .map_err(|_| "a BYTES element is not UTF-8 text; send text, or base64 it")?;
            out.push(Json::Str(text.to_owned()));
            rest = tail;
        }
        return Ok(out);
    }
    if !bytes.len().is_multiple_of(width) {
        return Err(format!(
            "{} bytes of binary data are no whole number of {width}-byte {datatype} elements",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(width)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..width].copy_from_slice(c);
            match datatype {
                "BOOL" => Json::Bool(c[0] != 0),
                "INT8" => Json::Int(i64::from(i8::from_le_bytes([c[0]]))),
                "INT16" => Json::Int(i64::from(i16::from_le_bytes([c[0], c[1]]))),
                "INT32" => Json::Int(i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
                "INT64" => Json::Int(i64::from_le_bytes(b)),
                "UINT8" | "UINT16" | "UINT32" | "UINT64" => Json::UInt(u64::from_le_bytes(b)),
                "FP16" => float(f64::from(half(u16::from_le_bytes([c[0], c[1]])))),
                "FP32" => float(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
                _ => float(f64::from_le_bytes(b)),
            }
        })
        .collect())
}

/// NaN and ±Infinity have no JSON form: they reach the function as `None`, as in `/call`.
fn float(f: f64) -> Json {
    if f.is_finite() {
        Json::Float(f)
    } else {
        Json::Null
    }
}

/// IEEE 754 half precision; written out because no dependency of ours has it.
fn half(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f32::from(bits & 0x3ff);
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

// ── response ────────────────────────────────────────────────────────────────────────────────

/// The function's result (its JSON bytes) as the response's one output tensor.
pub(crate) fn encode(model: &Model, pending: &Pending, result: &[u8]) -> Response {
    let value: Value = serde_json::from_slice(result).unwrap_or(Value::Null);
    let (datatype, shape, leaves) = match tensor_of(&value) {
        Some((dims, leaves)) if !matches!(value, Value::Object(_)) => {
            let inferred = datatype_of(&leaves);
            // `-> float` returning `2` is still FP64; otherwise the values say what they are.
            let datatype = if inferred == "INT64" && model.output.datatype == "FP64" {
                "FP64"
            } else {
                inferred
            };
            let shape = if dims.is_empty() { vec![1] } else { dims };
            (datatype, shape, leaves)
        }
        _ => ("BYTES", vec![1], vec![Value::String(value.to_string())]),
    };
    let mut output = json!({"name": OUTPUT, "datatype": datatype, "shape": shape});
    let mut header = json!({"model_name": model.name, "model_version": VERSION});
    if let Some(id) = &pending.id {
        header["id"] = id.clone();
    }
    if !pending.binary {
        output["data"] = Value::Array(leaves);
        header["outputs"] = json!([output]);
        return Response::json(200, header.to_string().into_bytes());
    }
    let raw = write_binary(datatype, &leaves);
    output["parameters"] = json!({"binary_data_size": raw.len()});
    header["outputs"] = json!([output]);
    let mut body = header.to_string().into_bytes();
    let length = body.len();
    body.extend_from_slice(&raw);
    Response {
        status: 200,
        content_type: OCTET_STREAM,
        body,
        headers: vec![(HEADER_LENGTH, length.to_string())],
        close: false,
    }
}

/// Dimensions and row-major elements of a rectangular nesting of scalars; `None` when ragged
/// or holding objects.
fn tensor_of(value: &Value) -> Option<(Vec<i64>, Vec<Value>)> {
    fn walk(v: &Value, depth: usize, dims: &mut Vec<i64>, out: &mut Vec<Value>) -> Option<()> {
        match v {
            Value::Array(items) => {
                match dims.get(depth) {
                    Some(&d) if usize::try_from(d) != Ok(items.len()) => return None,
                    Some(_) => {}
                    None if depth == dims.len() && out.is_empty() => {
                        dims.push(i64::try_from(items.len()).ok()?);
                    }
                    None => return None,
                }
                items.iter().try_for_each(|i| walk(i, depth + 1, dims, out))
            }
            Value::Object(_) => None,
            scalar if depth == dims.len() => {
                out.push(scalar.clone());
                Some(())
            }
            _ => None,
        }
    }
    let (mut dims, mut out) = (Vec::new(), Vec::new());
    walk(value, 0, &mut dims, &mut out)?;
    Some((dims, out))
}

fn datatype_of(leaves: &[Value]) -> &'static str {
    let mut t: Option<&'static str> = None;
    for leaf in leaves {
        let this = match leaf {
            Value::Bool(_) => "BOOL",
            Value::Number(n) if n.is_f64() => "FP64",
            Value::Number(_) => "INT64",
            Value::Null => "FP64", // a NaN the result conversion turned into null
            _ => "BYTES",
        };
        t = Some(t.map_or(this, |t| widen(t, this)));
    }
    t.unwrap_or("FP64")
}

fn write_binary(datatype: &str, leaves: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(leaves.len() * 8);
    for leaf in leaves {
        match datatype {
            "BOOL" => out.push(u8::from(leaf.as_bool().unwrap_or(false))),
            "INT64" => out.extend_from_slice(&leaf.as_i64().unwrap_or(0).to_le_bytes()),
            "FP64" => out.extend_from_slice(&leaf.as_f64().unwrap_or(f64::NAN).to_le_bytes()),
            _ => {
                let text = match leaf {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.extend_from_slice(&(text.len() as u32).to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    out
}

// ── OpenAPI ─────────────────────────────────────────────────────────────────────────────────

/// The v2 routes and `GET /v1/models`, for `/openapi.json`.
pub(crate) fn openapi_paths(name: &str, model_list_path: &str) -> Vec<(String, Value)> {
    let tensor = json!({"type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string"}, "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "parameters": {"type": "object"}, "data": {"type": "array"}}});
    let error = json!({"description": "Open Inference Protocol error",
        "content": {"application/json": {"schema": {"type": "object", "required": ["error"],
            "properties": {"error": {"type": "string"}}}}}});
    let get = |id: &str, summary: &str, schema: Value| {
        json!({"get": {"operationId": id, "summary": summary, "responses": {
            "200": {"description": summary, "content": {"application/json": {"schema": schema}}},
            "404": error.clone(), "503": error.clone()}}})
    };
    let flag = |key: &str| json!({"type": "object", "properties": {key: {"type": "boolean"}}});
    vec![
        (
            model_list_path.to_owned(),
            get(
                "models",
                "KServe v1: the models served",
                json!({"type": "object",
                "properties": {"models": {"type": "array", "items": {"type": "string"}}}}),
            ),
        ),
        (
            "/v2".to_owned(),
            get(
                "v2_server",
                "Open Inference Protocol: server metadata",
                json!({"type": "object",
                "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                    "extensions": {"type": "array", "items": {"type": "string"}}}}),
            ),
        ),
        (
            "/v2/health/live".to_owned(),
            get("v2_live", "Server liveness", flag("live")),
        ),
        (
            "/v2/health/ready".to_owned(),
            get("v2_ready", "Server readiness", flag("ready")),
        ),
        (
            format!("/v2/models/{name}"),
            get(
                "v2_model",
                "Model metadata: inputs named after the parameters",
                json!({
                "type": "object", "properties": {"name": {"type": "string"},
                    "versions": {"type": "array", "items": {"type": "string"}},
                    "platform": {"type": "string"},
                    "inputs": {"type": "array", "items": tensor},
                    "outputs": {"type": "array", "items": tensor}}}),
            ),
        ),
        (
            format!("/v2/models/{name}/ready"),
            get("v2_model_ready", "Model readiness", flag("ready")),
        ),
        (
            format!("/v2/models/{name}/infer"),
            json!({"post": {"operationId": "v2_infer",
                "summary": "Open Inference Protocol inference: one call, one output tensor",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["inputs"], "properties": {
                        "id": {"type": "string"}, "parameters": {"type": "object"},
                        "inputs": {"type": "array", "items": tensor},
                        "outputs": {"type": "array", "items": {"type": "object"}}}}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": {
                    "200": {"description": "The output tensor", "content": {"application/json": {
                        "schema": {"type": "object", "properties": {
                            "model_name": {"type": "string"}, "model_version": {"type": "string"},
                            "id": {"type": "string"},
                            "outputs": {"type": "array", "items": tensor}}}}}},
                    "400": error.clone(), "401": error.clone(), "413": error.clone(),
                    "500": error.clone(), "503": error.clone(), "504": error}}}),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(manifest: &str) -> Model {
        Model::new(&Signature::from_manifest(manifest).unwrap())
    }

    const TYPED: &str = r##"{"name": "f", "function": {"parameters": [
        {"name": "x", "kind": "POSITIONAL_OR_KEYWORD", "required": true, "schema": {"$ref": "#/$defs/ndarray"}},
        {"name": "k", "kind": "POSITIONAL_OR_KEYWORD", "required": true, "schema": {"type": "integer"}},
        {"name": "w", "kind": "POSITIONAL_OR_KEYWORD", "required": false, "schema": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}},
        {"name": "p", "kind": "KEYWORD_ONLY", "required": false, "schema": {"$ref": "#/$defs/P"}},
        {"name": "o", "kind": "KEYWORD_ONLY", "required": false, "schema": {"anyOf": [{"type": "number"}, {"type": "null"}]}}],
      "returns": {"type": "number"},
      "schema": {"type": "object", "$defs": {
        "ndarray": {"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "null"}, {"$ref": "#/$defs/ndarray"}]}},
        "P": {"type": "object", "properties": {"a": {"type": "integer"}}}}}}}"##;

    #[test]
    fn describes_parameters_as_tensors() {
        let m = model(TYPED);
        let meta: Value = serde_json::from_slice(&m.metadata()).unwrap();
        assert_eq!(
            meta["inputs"],
            json!([
                {"name": "x", "datatype": "FP64", "shape": [-1]},
                {"name": "k", "datatype": "INT64", "shape": [1]},
                {"name": "w", "datatype": "FP64", "shape": [-1, -1]},
                {"name": "p", "datatype": "BYTES", "shape": [1]},
                {"name": "o", "datatype": "FP64", "shape": [1]},
            ])
        );
        assert_eq!(
            meta["outputs"],
            json!([{"name": OUTPUT, "datatype": "FP64", "shape": [1]}])
        );
        // An unannotated parameter and result go by the first example.
        let m = model(
            r#"{"name": "km", "function": {"parameters": [
            {"name": "sample", "kind": "POSITIONAL_OR_KEYWORD", "required": true, "schema": {}}]},
            "examples": [{"args": [[0.5, 0.5]], "kwargs": {}, "output": 5}]}"#,
        );
        let meta: Value = serde_json::from_slice(&m.metadata()).unwrap();
        assert_eq!(
            meta["inputs"],
            json!([{"name": "sample", "datatype": "FP64", "shape": [-1]}])
        );
        assert_eq!(meta["outputs"][0]["datatype"], "INT64");
    }

    #[test]
    fn decodes_json_and_binary_inputs() {
        let m = model(TYPED);
        let body = br#"{"id": "r1", "inputs": [
            {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2.5, 3, 4]},
            {"name": "k", "shape": [1], "datatype": "INT64", "data": [[7]]},
            {"name": "p", "shape": [1], "datatype": "BYTES", "data": ["{\"a\": 1}"]}]}"#;
        let (args, pending) = decode(&m, body, None, 64).unwrap();
        assert_eq!(pending.id, Some(json!("r1")));
        assert_eq!(
            args.to_value(),
            json!({"x": [[1, 2.5], [3, 4]], "k": 7, "p": {"a": 1}})
        );
        // The binary extension: the JSON header, then each input's bytes in order.
        let header = br#"{"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "parameters": {"binary_data_size": 12}},
            {"name": "k", "shape": [1], "datatype": "INT32", "parameters": {"binary_data_size": 4}}],
            "outputs": [{"name": "output-0", "parameters": {"binary_data": true}}]}"#;
        let mut body = header.to_vec();
        for f in [1.0f32, -2.0, 0.5] {
            body.extend_from_slice(&f.to_le_bytes());
        }
        body.extend_from_slice(&9i32.to_le_bytes());
        let (args, pending) = decode(&m, &body, Some(header.len() as u64), 64).unwrap();
        assert!(pending.binary);
        assert_eq!(args.to_value(), json!({"x": [1.0, -2.0, 0.5], "k": 9}));
        assert!((half(0x3c00) - 1.0).abs() < f32::EPSILON);
        assert!((half(0xc000) + 2.0).abs() < f32::EPSILON);
    }

    #[test]
    fn refuses_bad_requests_in_one_sentence() {
        let m = model(TYPED);
        let cases: [(&[u8], &str); 6] = [
            (br#"{"inputs": [{"name": "k", "shape": [2], "datatype": "INT64", "data": [1, 2]}]}"#, "send a shape-[1] tensor"),
            (br#"{"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1, 2]}]}"#, "holds 3 elements but 2 were sent"),
            (br#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": ["a"]}]}"#, "`\"a\"` in `data` is not a FP64 element"),
            (br#"{"inputs": [{"name": "x", "shape": [1], "datatype": "BF16", "data": [1]}]}"#, "datatype `BF16` is unknown"),
            (br#"{"inputs": {}}"#, "`inputs` must be an array"),
            (br#"{"inputs": [], "outputs": [{"name": "y"}]}"#, "unknown output `y`"),
        ];
        for (body, want) in cases {
            let err = decode(&m, body, None, 64).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(err.message.contains(want), "{} ≠ {want}", err.message);
        }
        let err = decode(&m, b"{}", Some(10), 64).unwrap_err();
        assert!(
            err.message
                .contains("`Inference-Header-Content-Length` is 10"),
            "{}",
            err.message
        );
        let body = error_response(err).body;
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].is_string(), "{v}");
    }

    #[test]
    fn encodes_results_as_one_output_tensor() {
        let m = model(TYPED);
        let pending = Pending {
            id: Some(json!("r1")),
            binary: false,
            batched: false,
        };
        let r = encode(&m, &pending, b"2");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            json!({"model_name": "f", "model_version": "1", "id": "r1", "outputs": [
                {"name": OUTPUT, "datatype": "FP64", "shape": [1], "data": [2]}]})
        );
        let r = encode(&m, &pending, b"[[1, 2, 3], [4, 5, 6]]");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["outputs"][0]["shape"], json!([2, 3]));
        let r = encode(&m, &pending, br"[[1, 2], [3]]");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["outputs"][0]["datatype"], "BYTES");
        assert_eq!(v["outputs"][0]["data"], json!(["[[1,2],[3]]"]));
        let binary = Pending {
            id: None,
            binary: true,
            batched: false,
        };
        let r = encode(&m, &binary, b"[true, false]");
        let split: usize = r.headers[0].1.parse().unwrap();
        let v: Value = serde_json::from_slice(&r.body[..split]).unwrap();
        assert_eq!(v["outputs"][0]["datatype"], "BOOL");
        assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 2);
        assert_eq!(&r.body[split..], &[1, 0]);
        let r = encode(&m, &binary, b"[1.5, 2]");
        assert_eq!(
            &r.body[r.body.len() - 16..r.body.len() - 8],
            &1.5f64.to_le_bytes()
        );
    }

    #[test]
    fn paths_with_and_without_versions() {
        let m = model(TYPED);
        assert_eq!(m.unversioned("/v2/models/f/infer"), "/v2/models/f/infer");
        assert_eq!(m.unversioned("/v2/models/f/versions/1"), "/v2/models/f");
        assert_eq!(
            m.unversioned("/v2/models/f/versions/1/ready"),
            "/v2/models/f/ready"
        );
        // Another version, or a name that only starts with ours, stays as it is: a 404.
        let other = "/v2/models/f/versions/2/ready";
        assert_eq!(m.unversioned(other), other);
        assert_eq!(
            m.unversioned("/v2/models/fg/versions/1"),
            "/v2/models/fg/versions/1"
        );
        assert_eq!(
            m.unversioned("/v2/models/f/versions/10"),
            "/v2/models/f/versions/10"
        );
    }
}
