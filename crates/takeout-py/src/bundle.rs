//! Bindings for `takeout_core::bundle`: manifests cross as JSON text so the exact bytes that
//! are signed are decided in one place (Rust), never re-serialised by Python's `json`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use pyo3::prelude::*;
use takeout_core::bundle;

use crate::errors::bundle_error;

/// `{path: "sha256:<hex>"}` for `paths` under `root`, hashed without the GIL.
#[pyfunction]
pub(crate) fn hash_files(
    py: Python<'_>,
    root: &str,
    paths: Vec<String>,
) -> PyResult<HashMap<String, String>> {
    let rel: Vec<&str> = paths.iter().map(String::as_str).collect();
    let files = py
        .detach(|| bundle::hash_files(Path::new(root), &rel))
        .map_err(bundle_error)?;
    Ok(files.into_iter().collect())
}

/// Checks every file of the manifest's `files` map, without the GIL.
#[pyfunction]
pub(crate) fn verify_files(
    py: Python<'_>,
    root: &str,
    files: BTreeMap<String, String>,
) -> PyResult<()> {
    let expected: Vec<(String, String)> = files.into_iter().collect();
    py.detach(|| bundle::verify_files(Path::new(root), &expected))
        .map_err(bundle_error)
}

#[pyfunction]
pub(crate) fn canonical_json(manifest_json: &str) -> PyResult<String> {
    let manifest = bundle::parse_manifest(manifest_json).map_err(bundle_error)?;
    Ok(String::from_utf8(bundle::canonical_json(&manifest)).expect("serde_json writes UTF-8"))
}

#[pyfunction]
pub(crate) fn sign_manifest(manifest_json: &str, key: &[u8]) -> PyResult<String> {
    let manifest = bundle::parse_manifest(manifest_json).map_err(bundle_error)?;
    Ok(bundle::sign(&manifest, key))
}

#[pyfunction]
#[pyo3(signature = (manifest_json, key))]
pub(crate) fn check_signature(manifest_json: &str, key: Option<&[u8]>) -> PyResult<()> {
    let manifest = bundle::parse_manifest(manifest_json).map_err(bundle_error)?;
    bundle::check_signature(&manifest, key).map_err(bundle_error)
}
