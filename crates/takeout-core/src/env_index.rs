//! Environment index: every distribution installed on a search path, and which one
//! provides a given file or module. (TODO: implemented by the environment-index work item.)
//!
//! Files first, names second: a module's file is looked up in the RECORDs, so namespace
//! packages resolve exactly (`google/protobuf/__init__.py` -> protobuf, not every `google-*`);
//! only a module with no known file falls back to dotted names derived from RECORD and
//! top_level.txt. Import names that differ from distribution names (sklearn, PIL, yaml) come
//! out right because they come from the metadata, never from a hand-written table.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::metadata::{Distribution, MetadataError};

/// Index into [`EnvIndex::distributions`].
pub type DistId = usize;

#[derive(Debug, Default)]
pub struct EnvIndex {
    dists: Vec<Distribution>,
}

#[derive(Debug, Error)]
pub enum IndexError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

impl EnvIndex {
    /// Index every `*.dist-info`/`*.egg-info` directly inside each entry of `search_path`
    /// (in order: the first distribution of a given normalised name wins, as in
    /// `importlib.metadata`). Entries that are missing or are not directories are skipped.
    /// A metadata directory too broken to read is skipped, not fatal.
    pub fn build(search_path: &[PathBuf]) -> Result<Self, IndexError> {
        let _ = search_path;
        todo!("environment index")
    }

    pub fn distributions(&self) -> &[Distribution] {
        &self.dists
    }

    /// The distribution that installed `file` (absolute path), or whose editable project
    /// directory contains it.
    pub fn find_by_file(&self, file: &Path) -> Option<DistId> {
        let _ = file;
        todo!()
    }

    /// The distribution providing dotted module `module`, by the longest dotted prefix
    /// among the modules its RECORD installs, then by top_level.txt.
    pub fn find_by_module(&self, module: &str) -> Option<DistId> {
        let _ = module;
        todo!()
    }

    /// Look a distribution up by (any spelling of) its name.
    pub fn find_by_name(&self, name: &str) -> Option<DistId> {
        let _ = name;
        todo!()
    }
}
