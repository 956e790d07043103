//! The part of a bundle manifest the server needs: the name, the parameters with their JSON
//! Schemas, the result's schema and the recorded examples. (The manifest's HMAC signature is
//! checked by [`crate::bundle`], never here.)

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the manifest's `name` is empty; pack the function again with a name")]
    NoName,
    #[error("the manifest's `name` `{0}` cannot be a URL path segment; use letters, digits, `-`, `_` or `.`")]
    BadName(String),
    #[error("the schema of parameter `{name}` is not a valid JSON Schema: {reason}")]
    BadSchema { name: String, reason: String },
    #[error("the manifest's `batch` is not usable: {0}; pack the function again")]
    BadBatch(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParamKind {
    PositionalOnly,
    PositionalOrKeyword,
    VarPositional,
    KeywordOnly,
    VarKeyword,
}

impl ParamKind {
    pub fn positional(self) -> bool {
        matches!(self, Self::PositionalOnly | Self::PositionalOrKeyword)
    }

    pub fn named(self) -> bool {
        !matches!(self, Self::VarPositional | Self::VarKeyword)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Param {
    pub name: String,
    pub kind: ParamKind,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default = "any_schema")]
    pub schema: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Example {
    #[serde(default)]
    pub args: Vec<Value>,
    #[serde(default)]
    pub kwargs: Map<String, Value>,
    #[serde(default)]
    pub output: Option<Value>,
}

/// The served function as its manifest describes it.
#[derive(Debug, Clone)]
pub struct Params {
    pub name: String,
    pub qualname: String,
    /// As `inspect.signature` prints it: `(x: float, y: float) -> int`.
    pub text: String,
    pub doc: Option<String>,
    pub is_async: bool,
    pub params: Vec<Param>,
    /// Draft 2020-12 schema of the keyword-argument object; `$defs` live at its root.
    pub schema: Value,
    pub returns: Value,
    pub examples: Vec<Example>,
    /// Set for a batch function: its first parameter takes a list of items, and `params` and
    /// `returns` describe one item.
    pub batch: Option<BatchSpec>,
}

/// The manifest's `batch`: how many requests one call may take, and how long one may wait.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSpec {
    pub max_size: usize,
    pub max_wait: std::time::Duration,
    /// The list parameter (the function's first).
    pub parameter: String,
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    name: String,
    #[serde(default)]
    function: RawFunction,
    #[serde(default)]
    examples: Vec<Example>,
    #[serde(default)]
    batch: Option<RawBatch>,
}

#[derive(Deserialize)]
struct RawBatch {
    max_size: usize,
    max_wait_ms: f64,
    parameter: String,
}

#[derive(Default, Deserialize)]
struct RawFunction {
    #[serde(default)]
    qualname: String,
    #[serde(default)]
    signature: String,
    #[serde(default)]
    doc: Option<String>,
    #[serde(default)]
    is_async: bool,
    #[serde(default)]
    parameters: Option<Vec<Param>>,
    #[serde(default)]
    schema: Option<Value>,
    #[serde(default = "any_schema")]
    returns: Value,
}

fn any_schema() -> Value {
    Value::Object(Map::new())
}

impl Params {
    pub fn from_manifest(text: &str) -> Result<Self, ManifestError> {
        let raw: RawManifest = serde_json::from_str(text)?;
        if raw.name.is_empty() {
            return Err(ManifestError::NoName);
        }
        if !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(ManifestError::BadName(raw.name));
        }
        let f = raw.function;
        let schema = f.schema.unwrap_or(Value::Null);
        let params = match f.parameters {
            Some(params) => params,
            None => params_from_schema(&schema),
        };
        let schema = if schema.is_object() {
            schema
        } else {
            schema_from_params(&params)
        };
        let qualname = if f.qualname.is_empty() {
            raw.name.clone()
        } else {
            f.qualname
        };
        let text = if f.signature.is_empty() {
            signature_text(&params)
        } else {
            f.signature
        };
        let batch = raw.batch.map(|b| check_batch(b, &params)).transpose()?;
        Ok(Self {
            batch,
            name: raw.name,
            qualname,
            text,
            doc: f.doc.filter(|d| !d.trim().is_empty()),
            is_async: f.is_async,
            params,
            schema,
            returns: f.returns,
            examples: raw.examples,
        })
    }

    /// The parameter the single-argument `KServe` form binds an instance to, if there is one.
    pub fn sole_param(&self) -> Option<&Param> {
        match self.params.as_slice() {
            [only] if only.kind.positional() => Some(only),
            _ => None,
        }
    }

    pub fn var_positional(&self) -> Option<&Param> {
        self.params
            .iter()
            .find(|p| p.kind == ParamKind::VarPositional)
    }

    pub fn var_keyword(&self) -> Option<&Param> {
        self.params.iter().find(|p| p.kind == ParamKind::VarKeyword)
    }

    /// `$defs` of the function's schema, which parameter schemas refer to as `#/$defs/...`.
    pub fn defs(&self) -> Option<&Map<String, Value>> {
        self.schema.get("$defs").and_then(Value::as_object)
    }

    /// The schema each extra keyword argument (`**kwargs`) must satisfy, when the manifest
    /// says: the object schema's `additionalProperties`, else the `**kwargs` parameter's own.
    pub fn extra_keywords_schema(&self) -> Option<&Value> {
        let var_keyword = self.var_keyword()?;
        match self.schema.get("additionalProperties") {
            Some(s @ Value::Object(map)) if !map.is_empty() => Some(s),
            _ => Some(&var_keyword.schema),
        }
    }
}

fn check_batch(raw: RawBatch, params: &[Param]) -> Result<BatchSpec, ManifestError> {
    if raw.max_size == 0 {
        return Err(ManifestError::BadBatch("`max_size` is 0".into()));
    }
    if !(raw.max_wait_ms.is_finite() && raw.max_wait_ms >= 0.0) {
        return Err(ManifestError::BadBatch(format!(
            "`max_wait_ms` is `{}`",
            raw.max_wait_ms
        )));
    }
    match params.first() {
        Some(first) if first.name == raw.parameter && first.kind.positional() => {}
        _ => {
            return Err(ManifestError::BadBatch(format!(
                "`parameter` `{}` is not the function's first positional parameter",
                raw.parameter
            )))
        }
    }
    Ok(BatchSpec {
        max_size: raw.max_size,
        max_wait: std::time::Duration::from_secs_f64(raw.max_wait_ms / 1000.0),
        parameter: raw.parameter,
    })
}

fn params_from_schema(schema: &Value) -> Vec<Param> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut params: Vec<Param> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, s)| Param {
                    name: name.clone(),
                    kind: ParamKind::PositionalOrKeyword,
                    required: required.contains(&name.as_str()),
                    default: s.get("default").cloned(),
                    schema: s.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    // Python wants required parameters first; a schema's properties are unordered.
    params.sort_by_key(|p| !p.required);
    if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
        params.push(Param {
            name: "kwargs".into(),
            kind: ParamKind::VarKeyword,
            required: false,
            default: None,
            schema: any_schema(),
        });
    }
    params
}

fn schema_from_params(params: &[Param]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for p in params.iter().filter(|p| p.kind.named()) {
        properties.insert(p.name.clone(), p.schema.clone());
        if p.required {
            required.push(Value::String(p.name.clone()));
        }
    }
    let mut schema = Map::new();
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), Value::Object(properties));
    schema.insert("required".into(), Value::Array(required));
    let extra = match params.iter().find(|p| p.kind == ParamKind::VarKeyword) {
        Some(p) => p.schema.clone(),
        None => Value::Bool(false),
    };
    schema.insert("additionalProperties".into(), extra);
    Value::Object(schema)
}

fn signature_text(params: &[Param]) -> String {
    let parts: Vec<String> = params
        .iter()
        .map(|p| match p.kind {
            ParamKind::VarPositional => format!("*{}", p.name),
            ParamKind::VarKeyword => format!("**{}", p.name),
            _ => p.name.clone(),
        })
        .collect();
    format!("({})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_manifest_fields() {
        let text = r#"{"name": "add", "function": {"qualname": "add", "signature": "(x: float, y: float = 1.0) -> float",
            "doc": "Add.", "is_async": false, "is_generator": false,
            "parameters": [
              {"name": "x", "kind": "POSITIONAL_OR_KEYWORD", "required": true, "schema": {"type": "number"}},
              {"name": "y", "kind": "KEYWORD_ONLY", "required": false, "default": 1.0, "schema": {"type": "number"}}],
            "schema": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                       "required": ["x"], "additionalProperties": false},
            "returns": {"type": "number"}},
          "examples": [{"args": [1.0], "kwargs": {"y": 2.0}, "output": 3.0}], "other": 1}"#;
        let sig = Params::from_manifest(text).unwrap();
        assert_eq!(sig.name, "add");
        assert_eq!(sig.params.len(), 2);
        assert_eq!(sig.params[1].kind, ParamKind::KeywordOnly);
        assert_eq!(sig.params[1].default, Some(serde_json::json!(1.0)));
        assert_eq!(sig.examples[0].kwargs["y"], serde_json::json!(2.0));
        assert!(sig.sole_param().is_none());
        assert!(sig.extra_keywords_schema().is_none());
    }

    #[test]
    fn fills_in_what_a_minimal_manifest_lacks() {
        let sig = Params::from_manifest(
            r#"{"name": "f", "function": {"schema": {"type": "object",
                "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": false}}}"#,
        )
        .unwrap();
        assert_eq!(sig.params.len(), 1);
        assert!(sig.params[0].required);
        assert_eq!(sig.sole_param().unwrap().name, "a");
        assert_eq!(sig.text, "(a)");

        let sig = Params::from_manifest(r#"{"name": "g", "function": {"parameters": [
            {"name": "a", "kind": "POSITIONAL_ONLY", "required": true, "schema": {}},
            {"name": "kw", "kind": "VAR_KEYWORD", "required": false, "schema": {"type": "integer"}}]}}"#)
        .unwrap();
        assert_eq!(sig.schema["required"], serde_json::json!(["a"]));
        assert_eq!(
            sig.extra_keywords_schema(),
            Some(&serde_json::json!({"type": "integer"}))
        );
    }

    #[test]
    fn refuses_names_that_cannot_be_a_path() {
        let err = Params::from_manifest(r#"{"name": "a/b"}"#).unwrap_err();
        assert!(err.to_string().contains("`a/b`"), "{err}");
        assert!(matches!(
            Params::from_manifest(r#"{"name": ""}"#),
            Err(ManifestError::NoName)
        ));
    }
}
