//! Reading one installed distribution's metadata directory (`*.dist-info` / `*.egg-info`):
//! METADATA/PKG-INFO headers, RECORD (or installed-files.txt/SOURCES.txt), top_level.txt,
//! direct_url.json, INSTALLER. (TODO: implemented by the environment-index work item.)

use std::path::PathBuf;

use thiserror::Error;

/// How the distribution got there, which decides how the bundle can carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistKind {
    /// Installed from a package index (or an archive): installable by name==version.
    Index,
    /// `pip install -e` / PEP 660: the user's own project; its code travels by value.
    Editable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// `Name:` exactly as METADATA spells it (e.g. `scikit-learn`, `PyYAML`).
    pub name: String,
    /// PEP 503 normalised name (`pyyaml`, `scikit-learn`).
    pub normalized: String,
    pub version: String,
    pub kind: DistKind,
    /// The `sys.path` entry the metadata directory sits in.
    pub location: PathBuf,
    /// The `*.dist-info` / `*.egg-info` directory.
    pub metadata_dir: PathBuf,
    /// `Requires-Dist:` values, verbatim PEP 508 strings.
    pub requires_dist: Vec<String>,
    pub provides_extra: Vec<String>,
    /// Top-level import names: top_level.txt if present, else derived from RECORD.
    pub top_level: Vec<String>,
    /// Files the distribution installed, absolute and lexically normalised.
    pub files: Vec<PathBuf>,
    /// For editable installs: the project directory (from direct_url.json).
    pub editable_root: Option<PathBuf>,
    /// direct_url.json `url`, when present.
    pub direct_url: Option<String>,
    pub installer: Option<String>,
}

#[derive(Debug, Error)]
pub enum MetadataError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` has no `{field}` field")]
    MissingField { path: PathBuf, field: &'static str },
    #[error("`{path}` is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
}
