//! Binding a JSON body onto the function's parameters, then validating each argument against
//! its JSON Schema.
//!
//! An object is keyword arguments, an array positional ones — the rules of
//! `inspect.Signature.bind`, except that a positional-only parameter may be named in an object
//! (JSON clients have no other way to pass it); the result is shaped for the Python call.
//! Every problem is reported at once, each with a FastAPI-style `loc`: `["body", "x", 0]`.

use std::collections::HashMap;

use jsonschema::paths::LocationSegment;
use jsonschema::Validator;
use serde_json::{Map, Value};

use super::json::Json;
use super::params::{ManifestError, Param, ParamKind, Params};
use super::response::issue;

/// The arguments of one Python call, in call order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Args {
    pub positional: Vec<Json>,
    pub keywords: Vec<(String, Json)>,
}

/// A 422 carries at most this many details; the rest are noise.
const MAX_ISSUES: usize = 20;

pub(crate) struct Binder {
    params: Vec<Param>,
    /// One per parameter; `None` where the schema accepts any JSON.
    validators: Vec<Option<Validator>>,
    extra_keywords: Option<Validator>,
    has_var_keyword: bool,
}

impl Binder {
    pub(crate) fn new(sig: &Params) -> Result<Self, ManifestError> {
        let defs = sig.defs();
        let validators = sig
            .params
            .iter()
            .map(|p| compile(&p.name, &p.schema, defs))
            .collect::<Result<Vec<_>, _>>()?;
        let extra_keywords = match sig.extra_keywords_schema() {
            Some(schema) => compile("**kwargs", schema, defs)?,
            None => None,
        };
        Ok(Self {
            params: sig.params.clone(),
            validators,
            extra_keywords,
            has_var_keyword: sig.var_keyword().is_some(),
        })
    }

    /// Bind `body` (the whole `/call` body, or one `KServe` instance); `loc` prefixes every path.
    pub(crate) fn bind(&self, body: Json, loc: &[Value]) -> Result<Args, Vec<Value>> {
        let mut issues = Vec::new();
        let args = match body {
            Json::Object(members) => self.bind_object(members, loc, &mut issues),
            Json::Array(items) => self.bind_array(items, loc, &mut issues),
            // As `takeout call` does: a lone value is the argument of a one-parameter function.
            other if self.sole() => return self.bind_sole(other, loc),
            other => {
                issues.push(issue(
                    loc.to_vec(),
                    format!(
                        "the arguments must be a JSON object (keyword arguments) or an array \
                         (positional arguments), not {}",
                        other.kind()
                    ),
                    "body_type",
                ));
                Args::default()
            }
        };
        if issues.is_empty() {
            Ok(args)
        } else {
            issues.truncate(MAX_ISSUES);
            Err(issues)
        }
    }

    /// A single-parameter function's `KServe` instance: the instance is the argument.
    pub(crate) fn bind_sole(&self, value: Json, loc: &[Value]) -> Result<Args, Vec<Value>> {
        let mut issues = Vec::new();
        if let Some(v) = &self.validators[0] {
            check(v, &value, loc.to_vec(), &mut issues);
        }
        if issues.is_empty() {
            Ok(Args {
                positional: vec![value],
                keywords: Vec::new(),
            })
        } else {
            issues.truncate(MAX_ISSUES);
            Err(issues)
        }
    }

    fn bind_object(
        &self,
        members: Vec<(String, Json)>,
        loc: &[Value],
        issues: &mut Vec<Value>,
    ) -> Args {
        let mut given = dedupe(members);
        let mut args = Args::default();
        // A positional-only parameter left out before one that is given must still be filled.
        let mut pending_defaults: Vec<Json> = Vec::new();
        let mut gap: Option<&str> = None;
        for (i, p) in self.params.iter().enumerate() {
            let value = if p.kind.named() {
                take(&mut given, &p.name)
            } else {
                None
            };
            let Some(value) = value else {
                if p.kind.named() && p.required {
                    issues.push(missing(loc, &p.name));
                } else if p.kind == ParamKind::PositionalOnly {
                    match &p.default {
                        Some(d) if gap.is_none() => pending_defaults.push(Json::from_value(d)),
                        _ => gap = gap.or(Some(&p.name)),
                    }
                }
                continue;
            };
            self.check_param(i, &value, loc, issues);
            if p.kind == ParamKind::PositionalOnly {
                if let Some(skipped) = gap {
                    issues.push(issue(
                        at(loc, &p.name),
                        format!(
                            "`{}` is positional-only and comes after `{skipped}`, which was left \
                             out and has no JSON default; give `{skipped}` too",
                            p.name
                        ),
                        "missing",
                    ));
                }
                args.positional.append(&mut pending_defaults);
                args.positional.push(value);
            } else {
                args.keywords.push((p.name.clone(), value));
            }
        }
        for (name, value) in given {
            if self.has_var_keyword {
                if let Some(v) = &self.extra_keywords {
                    check(v, &value, at(loc, &name), issues);
                }
                args.keywords.push((name, value));
            } else {
                issues.push(issue(
                    at(loc, &name),
                    format!(
                        "unexpected argument `{name}`; the function takes {}",
                        self.names()
                    ),
                    "unexpected_argument",
                ));
            }
        }
        args
    }

    fn bind_array(&self, items: Vec<Json>, loc: &[Value], issues: &mut Vec<Value>) -> Args {
        let positional: Vec<usize> = (0..self.params.len())
            .filter(|&i| self.params[i].kind.positional())
            .collect();
        let var_positional = self
            .params
            .iter()
            .position(|p| p.kind == ParamKind::VarPositional);
        if items.len() > positional.len() && var_positional.is_none() {
            let n = positional.len();
            issues.push(issue(
                at_index(loc, n),
                format!(
                    "the function takes {n} positional argument{} but {} were given",
                    if n == 1 { "" } else { "s" },
                    items.len()
                ),
                "too_many_positional",
            ));
        }
        for (&i, value) in positional.iter().zip(&items) {
            self.check_param(i, value, loc, issues);
        }
        if let Some(vp) = var_positional {
            let extra = items.get(positional.len()..).unwrap_or_default();
            // The `*args` schema is that of each item, as the annotation `*args: int` means.
            if let Some(v) = &self.validators[vp] {
                for (k, item) in extra.iter().enumerate() {
                    check(v, item, at_index(loc, positional.len() + k), issues);
                }
            }
        }
        for p in &self.params {
            let given = positional
                .iter()
                .take(items.len())
                .any(|&i| self.params[i].name == p.name);
            if p.required && p.kind.named() && !given {
                if p.kind == ParamKind::KeywordOnly {
                    issues.push(issue(
                        at(loc, &p.name),
                        format!(
                            "missing required keyword-only argument `{}`; send a JSON object \
                             to pass it by name",
                            p.name
                        ),
                        "missing",
                    ));
                } else {
                    issues.push(missing(loc, &p.name));
                }
            }
        }
        Args {
            positional: items,
            keywords: Vec::new(),
        }
    }

    fn sole(&self) -> bool {
        matches!(self.params.as_slice(), [only] if only.kind.positional())
    }

    fn check_param(&self, i: usize, value: &Json, loc: &[Value], issues: &mut Vec<Value>) {
        if let Some(v) = &self.validators[i] {
            check(v, value, at(loc, &self.params[i].name), issues);
        }
    }

    fn names(&self) -> String {
        let names: Vec<String> = self
            .params
            .iter()
            .filter(|p| p.kind.named())
            .map(|p| format!("`{}`", p.name))
            .collect();
        if names.is_empty() {
            "no named arguments".into()
        } else {
            names.join(", ")
        }
    }
}

fn compile(
    name: &str,
    schema: &Value,
    defs: Option<&Map<String, Value>>,
) -> Result<Option<Validator>, ManifestError> {
    let accepts_anything = match schema {
        Value::Bool(true) => true,
        Value::Object(map) => map.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    };
    if accepts_anything {
        return Ok(None);
    }
    // Parameter schemas point at the function schema's `$defs` as `#/$defs/...`: give each
    // one a copy at its own root so those references resolve.
    let schema = match (schema, defs) {
        (Value::Object(map), Some(defs)) if !map.contains_key("$defs") => {
            let mut map = map.clone();
            map.insert("$defs".into(), Value::Object(defs.clone()));
            Value::Object(map)
        }
        _ => schema.clone(),
    };
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .map(Some)
        .map_err(|err| ManifestError::BadSchema {
            name: name.to_owned(),
            reason: err.to_string(),
        })
}

/// Keywords that never reject a value.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
    "$defs",
];

fn check(validator: &Validator, value: &Json, loc: Vec<Value>, issues: &mut Vec<Value>) {
    let instance = value.to_value();
    for err in validator.iter_errors(&instance).take(MAX_ISSUES) {
        let mut path = loc.clone();
        for segment in err.instance_path() {
            path.push(match segment {
                LocationSegment::Property(name) => Value::String(name.into_owned()),
                LocationSegment::Index(i) => Value::from(i),
            });
        }
        let kind = format!("schema.{}", err.kind().keyword());
        issues.push(issue(path, err.to_string(), &kind));
    }
}

fn dedupe(members: Vec<(String, Json)>) -> Vec<(String, Json)> {
    // Hashing, not a scan: a body of many distinct keys must not cost quadratic time.
    let mut index: HashMap<String, usize> = HashMap::with_capacity(members.len());
    let mut out: Vec<(String, Json)> = Vec::with_capacity(members.len());
    for (k, v) in members {
        if let Some(&i) = index.get(&k) {
            out[i].1 = v;
        } else {
            index.insert(k.clone(), out.len());
            out.push((k, v));
        }
    }
    out
}

fn take(given: &mut Vec<(String, Json)>, name: &str) -> Option<Json> {
    let i = given.iter().position(|(k, _)| k == name)?;
    Some(given.remove(i).1)
}

fn at(loc: &[Value], name: &str) -> Vec<Value> {
    let mut path = loc.to_vec();
    path.push(Value::String(name.to_owned()));
    path
}

fn at_index(loc: &[Value], index: usize) -> Vec<Value> {
    let mut path = loc.to_vec();
    path.push(Value::from(index));
    path
}

fn missing(loc: &[Value], name: &str) -> Value {
    issue(
        at(loc, name),
        format!("missing required argument `{name}`"),
        "missing",
    )
}
