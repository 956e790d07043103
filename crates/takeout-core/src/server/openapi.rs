//! `OpenAPI` 3.1 from the manifest. The function's `$defs` move to `components/schemas` and every
//! `#/$defs/X` reference is rewritten to point there, as `FastAPI` does, so tools that resolve
//! references against the document root (Swagger UI, schemathesis) find them.

use serde_json::{json, Map, Value};

use super::negotiate::MEDIA;
use super::params::{ParamKind, Params};

const ERROR_CODES: [(&str, &str); 8] = [
    ("400", "Malformed JSON, or JSON nested too deeply"),
    ("401", "Missing or wrong bearer token"),
    ("413", "Body larger than `--max-body`"),
    ("415", "Body is not `application/json`"),
    (
        "422",
        "Arguments do not bind to the signature or fail its schema",
    ),
    ("500", "The function raised, or its result has no JSON form"),
    (
        "503",
        "More calls in flight than `--max-concurrency`, request bodies past `--body-budget`, or \
         connections past `--max-connections`; see `Retry-After`",
    ),
    ("504", "The function did not return within `--timeout`"),
];

pub(crate) fn document(sig: &Params, predict_path: &str, model_path: &str, token: bool) -> Value {
    let mut components = Map::new();
    let defs = sig.defs().cloned().unwrap_or_default();
    for (name, schema) in &defs {
        components.insert(name.clone(), rewrite(schema));
    }
    let own = |base: &str| -> String {
        if defs.contains_key(base) {
            format!("takeout.{base}")
        } else {
            base.to_owned()
        }
    };
    let (arguments, positional, error) =
        (own("Arguments"), own("PositionalArguments"), own("Error"));

    components.insert(arguments.clone(), keyword_schema(sig));
    let positional_form = positional_schema(sig);
    let mut body_forms = vec![json!({"$ref": format!("#/components/schemas/{arguments}")})];
    if let Some(schema) = positional_form {
        components.insert(positional.clone(), schema);
        body_forms.push(json!({"$ref": format!("#/components/schemas/{positional}")}));
    }
    if let Some(p) = sig.sole_param() {
        // A lone value (neither object nor array) is the one parameter's argument.
        body_forms.push(json!({
            "allOf": [rewrite(&p.schema)],
            "not": {"type": ["object", "array"]},
        }));
    }
    components.insert(error.clone(), error_schema());
    let call_body = if body_forms.len() == 1 {
        body_forms.remove(0)
    } else {
        json!({"anyOf": body_forms})
    };
    let instance = match sig.sole_param() {
        Some(p) => rewrite(&p.schema),
        None => call_body.clone(),
    };
    // Results travel in their output form: NaN and ±Infinity become null, so every number a
    // result may hold is nullable there (FastAPI's `-Output` schemas solve the same problem).
    let returns = output(&sig.returns);
    let mut pending: Vec<String> = Vec::new();
    refs(&sig.returns, &mut pending);
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = pending.pop() {
        if let Some(def) = defs.get(&name) {
            if seen.insert(name.clone()) {
                refs(def, &mut pending);
                components.insert(format!("{name}-Output"), output(def));
            }
        }
    }
    let error_ref = json!({"$ref": format!("#/components/schemas/{error}")});
    let security = if token {
        json!([{"bearer": []}])
    } else {
        json!([])
    };

    let mut call_content = json!({"schema": call_body});
    let examples = request_examples(sig);
    if !examples.is_empty() {
        call_content["examples"] = Value::Object(examples);
    }
    let description = match &sig.doc {
        Some(doc) => format!("`{}{}`\n\n{doc}", sig.qualname, sig.text),
        None => format!("`{}{}`", sig.qualname, sig.text),
    };

    let mut paths = Map::new();
    paths.insert(
        "/call".into(),
        json!({"post": {
            "operationId": "call",
            "summary": format!("Call `{}`", sig.qualname),
            "description": description,
            "security": security,
            "requestBody": {"required": true, "content": {"application/json": call_content}},
            "responses": call_responses(
                sig,
                json!({"type": "object", "required": ["result"],
                       "properties": {"result": returns}}),
                &error_ref,
            ),
        }}),
    );
    paths.insert(
        predict_path.to_owned(),
        json!({"post": {
            "operationId": "predict",
            "summary": "KServe v1 prediction: one call per instance",
            "security": security,
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["instances"],
                "properties": {"instances": {"type": "array", "items": instance}},
            }}}},
            "responses": responses(
                json!({"type": "object", "required": ["predictions"],
                       "properties": {"predictions": {"type": "array", "items": returns}}}),
                &error_ref,
            ),
        }}),
    );
    paths.insert(
        model_path.to_owned(),
        get_json(
            "model",
            "KServe v1 model metadata",
            json!({"type": "object", "properties": {
                "name": {"type": "string"}, "ready": {"type": "boolean"}}}),
        ),
    );
    let status = json!({"type": "object", "properties": {"status": {"type": "string"}}});
    let mut healthz = get_json("healthz", "Liveness", status.clone());
    healthz["get"]["responses"]["503"] = json!({
        "description": "Every call thread stuck past `--timeout` for `--stuck-restart` more \
                        (`calls_stuck`): restart the worker",
        "content": {"application/json": {"schema": error_ref.clone()}}});
    paths.insert("/healthz".into(), healthz);
    let mut readyz = get_json("readyz", "Readiness", status);
    readyz["get"]["responses"]["503"] = json!({
        "description": "Shutting down (`shutting_down`), or every call thread stuck past \
                        `--timeout` (`calls_stuck`)",
        "content": {"application/json": {"schema": error_ref.clone()}}});
    paths.insert("/readyz".into(), readyz);
    paths.insert(
        "/metrics".into(),
        json!({"get": {"operationId": "metrics", "summary": "Prometheus metrics",
            "security": security,
            "responses": {"200": {"description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}}}}}}),
    );
    paths.insert(
        "/openapi.json".into(),
        get_json("openapi", "This document", json!({"type": "object"})),
    );
    paths.insert(
        "/".into(),
        json!({"get": {"operationId": "index", "summary": "A page to try the function",
            "responses": {"200": {"description": "HTML",
                "content": {"text/html": {"schema": {"type": "string"}}}}}}}),
    );

    let mut doc = json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": sig.name,
            "version": "1",
            "description": description,
        },
        "paths": paths,
        "components": {"schemas": components},
    });
    if token {
        doc["components"]["securitySchemes"] =
            json!({"bearer": {"type": "http", "scheme": "bearer"}});
    }
    doc
}

fn responses(ok: Value, error_ref: &Value) -> Value {
    let mut out = Map::new();
    out.insert(
        "200".into(),
        json!({"description": "The result", "content": {"application/json": {"schema": ok}}}),
    );
    for (code, text) in ERROR_CODES {
        out.insert(
            code.into(),
            json!({"description": text, "content": {"application/json": {"schema": error_ref}}}),
        );
    }
    Value::Object(out)
}

/// `/call`'s responses: a rich result (a figure, an image, HTML) is also its own media type,
/// by `Accept` (see `negotiate`), for every media type the return annotation or a recorded
/// example says it has.
fn call_responses(sig: &Params, ok: Value, error_ref: &Value) -> Value {
    let mut out = responses(ok, error_ref);
    let media = media_types(sig);
    if media.is_empty() {
        return out;
    }
    out["200"]["description"] = format!(
        "The result: JSON, or the result's own bytes ({}) when `Accept` prefers them;          in JSON a rich result is `{{\"media_type\": ..., \"data\": <base64>}}`",
        media.join(", ")
    )
    .into();
    for m in media {
        out["200"]["content"][m] = json!({"schema": {"type": "string", "contentMediaType": m}});
    }
    out
}

fn media_types(sig: &Params) -> Vec<&'static str> {
    let mut named: Vec<&str> = Vec::new();
    let declared = sig.returns.pointer("/properties/media_type/enum");
    for m in declared.and_then(Value::as_array).into_iter().flatten() {
        named.extend(m.as_str());
    }
    for example in &sig.examples {
        let output = example.output.as_ref();
        named.extend(output.and_then(|o| o.get("media_type")?.as_str()));
    }
    let mut out = Vec::new();
    for (m, _) in MEDIA {
        if named.iter().any(|n| n.eq_ignore_ascii_case(m)) {
            out.push(m);
        }
    }
    out
}

fn get_json(id: &str, summary: &str, schema: Value) -> Value {
    json!({"get": {"operationId": id, "summary": summary,
        "responses": {"200": {"description": summary,
            "content": {"application/json": {"schema": schema}}}}}})
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["type", "message", "details"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }},
    })
}

/// The object form of the arguments. Built from the parameters rather than taken from the
/// manifest's object schema, which leaves out positional-only parameters: the server accepts
/// those by name too.
fn keyword_schema(sig: &Params) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for p in sig.params.iter().filter(|p| p.kind.named()) {
        let mut schema = rewrite(&p.schema);
        if let (Value::Object(map), Some(default)) = (&mut schema, &p.default) {
            map.entry("default").or_insert_with(|| default.clone());
        }
        properties.insert(p.name.clone(), schema);
        if p.required {
            required.push(Value::String(p.name.clone()));
        }
    }
    let extra = match sig.extra_keywords_schema() {
        Some(schema) => rewrite(schema),
        None if sig.var_keyword().is_some() => json!({}),
        None => Value::Bool(false),
    };
    json!({
        "type": "object",
        "title": "Arguments",
        "properties": properties,
        "required": required,
        "additionalProperties": extra,
    })
}

/// The array form of the arguments, or `None` when a required keyword-only parameter makes
/// it impossible.
fn positional_schema(sig: &Params) -> Option<Value> {
    if sig
        .params
        .iter()
        .any(|p| p.kind == ParamKind::KeywordOnly && p.required)
    {
        return None;
    }
    let positional: Vec<_> = sig.params.iter().filter(|p| p.kind.positional()).collect();
    let min = positional.iter().take_while(|p| p.required).count();
    let prefix: Vec<Value> = positional.iter().map(|p| rewrite(&p.schema)).collect();
    let items = match sig.var_positional() {
        Some(p) => rewrite(&p.schema),
        None => Value::Bool(false),
    };
    let mut schema =
        json!({"type": "array", "title": "PositionalArguments", "minItems": min, "items": items});
    if !prefix.is_empty() {
        schema["prefixItems"] = Value::Array(prefix);
    }
    Some(schema)
}

/// The manifest's examples as request bodies: an object when every positional argument has
/// a name to go by, else an array.
fn request_examples(sig: &Params) -> Map<String, Value> {
    let names: Vec<&str> = sig
        .params
        .iter()
        .filter(|p| p.kind.positional())
        .map(|p| p.name.as_str())
        .collect();
    let mut out = Map::new();
    for (i, ex) in sig.examples.iter().enumerate().take(10) {
        let body = if ex.args.len() <= names.len() {
            let mut obj = Map::new();
            for (name, v) in names.iter().zip(&ex.args) {
                obj.insert((*name).to_owned(), v.clone());
            }
            for (k, v) in &ex.kwargs {
                obj.insert(k.clone(), v.clone());
            }
            Value::Object(obj)
        } else if ex.kwargs.is_empty() {
            Value::Array(ex.args.clone())
        } else {
            continue;
        };
        let mut example = json!({"value": body});
        if let Some(out) = &ex.output {
            example["summary"] = Value::String(format!(
                "returns {}",
                super::response::clip(&out.to_string(), 80)
            ));
        }
        out.insert(format!("example{}", i + 1), example);
    }
    out
}

/// A request body the index page pre-fills: the first example, else nulls for each parameter.
pub(crate) fn first_example(sig: &Params) -> Value {
    if let Some((_, ex)) = request_examples(sig).into_iter().next() {
        return ex["value"].clone();
    }
    let mut obj = Map::new();
    for p in sig.params.iter().filter(|p| p.kind.named()) {
        let v = p.default.clone().unwrap_or(Value::Null);
        if p.required || p.default.is_some() {
            obj.insert(p.name.clone(), v);
        }
    }
    Value::Object(obj)
}

/// A response schema: `$ref`s to output variants, numbers (and dates, which pandas' `NaT`
/// turns into null) nullable.
fn output(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => (k.clone(), component_ref(r, "-Output")),
                    ("type", Value::String(t)) if nullable(t, map.get("format")) => {
                        (k.clone(), json!([t, "null"]))
                    }
                    ("type", Value::Array(types))
                        if types.iter().any(|t| {
                            t.as_str().is_some_and(|t| nullable(t, map.get("format")))
                        }) && !types.contains(&Value::from("null")) =>
                    {
                        let mut types = types.clone();
                        types.push(Value::from("null"));
                        (k.clone(), Value::Array(types))
                    }
                    _ => (k.clone(), output(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(output).collect()),
        other => other.clone(),
    }
}

fn nullable(json_type: &str, format: Option<&Value>) -> bool {
    json_type == "number"
        || (json_type == "string"
            && matches!(
                format.and_then(Value::as_str),
                Some("date-time" | "date" | "time")
            ))
}

/// Names of the `$defs` a schema refers to.
fn refs(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/$defs/") {
                            out.push(name.to_owned());
                        }
                    }
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// A `$ref` into the schema's `$defs`, pointed at the component of that name plus `suffix`
/// (`OpenAPI` keeps the definitions under `components`); any other `$ref` as it is.
fn component_ref(reference: &str, suffix: &str) -> Value {
    Value::String(match reference.strip_prefix("#/$defs/") {
        Some(name) => format!("#/components/schemas/{name}{suffix}"),
        None => reference.to_owned(),
    })
}

fn rewrite(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => (k.clone(), component_ref(r, "")),
                    _ => (k.clone(), rewrite(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(rewrite).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(text: &str) -> Params {
        Params::from_manifest(text).unwrap()
    }

    #[test]
    fn moves_defs_to_components_and_rewrites_refs() {
        let s = sig(r##"{"name": "f", "function": {"parameters": [
            {"name": "p", "kind": "POSITIONAL_OR_KEYWORD", "required": true, "schema": {"$ref": "#/$defs/Point"}}],
            "schema": {"type": "object", "properties": {"p": {"$ref": "#/$defs/Point"}}, "required": ["p"],
                "additionalProperties": false,
                "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}}}}},
            "examples": [{"args": [{"x": 1}], "kwargs": {}, "output": 2}]}"##);
        let doc = document(&s, "/v1/models/f:predict", "/v1/models/f", false);
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "f");
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["Point"]["properties"]["x"]["type"], "number");
        assert_eq!(
            schemas["Arguments"]["properties"]["p"]["$ref"],
            "#/components/schemas/Point"
        );
        assert!(schemas["Arguments"].get("$defs").is_none());
        assert_eq!(
            doc["paths"]["/v1/models/f:predict"]["post"]["requestBody"]["content"]
                ["application/json"]["schema"]["properties"]["instances"]["items"]["$ref"],
            "#/components/schemas/Point"
        );
        let ex = &doc["paths"]["/call"]["post"]["requestBody"]["content"]["application/json"]
            ["examples"]["example1"];
        assert_eq!(ex["value"], json!({"p": {"x": 1}}));
        assert_eq!(first_example(&s), json!({"p": {"x": 1}}));
        assert_eq!(schemas["PositionalArguments"]["minItems"], 1);
        assert_eq!(schemas["PositionalArguments"]["items"], json!(false));
    }

    #[test]
    fn results_are_documented_in_their_output_form() {
        let s = sig(r##"{"name": "f", "function": {"parameters": [],
            "returns": {"type": "array", "items": {"$ref": "#/$defs/P"}},
            "schema": {"type": "object", "properties": {}, "$defs": {
                "P": {"type": "object", "properties": {"x": {"type": "number"},
                      "at": {"type": "string", "format": "date-time"}, "q": {"$ref": "#/$defs/Q"}}},
                "Q": {"type": ["integer", "number"]}}}}}"##);
        let doc = document(&s, "/p", "/m", false);
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            doc["paths"]["/call"]["post"]["responses"]["200"]["content"]["application/json"]
                ["schema"]["properties"]["result"]["items"]["$ref"],
            "#/components/schemas/P-Output"
        );
        let p = &schemas["P-Output"]["properties"];
        assert_eq!(p["x"]["type"], json!(["number", "null"]));
        assert_eq!(p["at"]["type"], json!(["string", "null"]));
        assert_eq!(p["q"]["$ref"], "#/components/schemas/Q-Output");
        assert_eq!(
            schemas["Q-Output"]["type"],
            json!(["integer", "number", "null"])
        );
        // Requests keep the exact schema.
        assert_eq!(schemas["P"]["properties"]["x"]["type"], "number");
    }

    #[test]
    fn security_only_with_a_token() {
        let s = sig(r#"{"name": "f"}"#);
        let open = document(&s, "/p", "/m", false);
        assert!(open["components"].get("securitySchemes").is_none());
        let closed = document(&s, "/p", "/m", true);
        assert_eq!(
            closed["paths"]["/call"]["post"]["security"],
            json!([{"bearer": []}])
        );
    }
}
