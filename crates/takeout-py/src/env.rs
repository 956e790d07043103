//! Bindings for `takeout_core::env_index`, `metadata` and `lock`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use takeout_core::env_index::{DistId, EnvIndex};
use takeout_core::lock::{self, LockError, MarkerValues, Root};
use takeout_core::metadata::{DistKind, Distribution};

use crate::errors::{index_error, lock_error, requirement_error};

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// One installed distribution, as its metadata describes it (its file list stays in Rust).
#[pyclass(name = "Distribution", module = "takeout._core", frozen, get_all)]
pub(crate) struct PyDistribution {
    pub(crate) name: String,
    pub(crate) normalized: String,
    pub(crate) version: String,
    pub(crate) kind: &'static str,
    pub(crate) location: String,
    pub(crate) metadata_dir: String,
    pub(crate) requires_dist: Vec<String>,
    pub(crate) provides_extra: Vec<String>,
    pub(crate) top_level: Vec<String>,
    pub(crate) editable_root: Option<String>,
    pub(crate) direct_url: Option<String>,
    pub(crate) installer: Option<String>,
}

impl From<&Distribution> for PyDistribution {
    fn from(dist: &Distribution) -> Self {
        Self {
            name: dist.name.clone(),
            normalized: dist.normalized.clone(),
            version: dist.version.clone(),
            kind: match dist.kind {
                DistKind::Index => "index",
                DistKind::Editable => "editable",
            },
            location: path_str(&dist.location),
            metadata_dir: path_str(&dist.metadata_dir),
            requires_dist: dist.requires_dist.clone(),
            provides_extra: dist.provides_extra.clone(),
            top_level: dist.top_level.clone(),
            editable_root: dist.editable_root.as_deref().map(path_str),
            direct_url: dist.direct_url.clone(),
            installer: dist.installer.clone(),
        }
    }
}

#[pymethods]
impl PyDistribution {
    fn __repr__(&self) -> String {
        format!(
            "Distribution(name='{}', version='{}', kind='{}')",
            self.name, self.version, self.kind
        )
    }
}

/// The closure of some roots over Requires-Dist, pinned to what is installed.
#[pyclass(name = "Lock", module = "takeout._core", frozen, get_all)]
pub(crate) struct PyLock {
    /// `(dist_id, extras, required_by)`.
    pub(crate) packages: Vec<(DistId, Vec<String>, Vec<String>)>,
    /// `(requirement, required_by, installed_version)`.
    pub(crate) missing: Vec<(String, String, Option<String>)>,
    /// `(requirement, required_by, reason)` for installed `Requires-Dist` values PEP 508 rejects.
    pub(crate) unparsable: Vec<(String, String, String)>,
}

#[pymethods]
impl PyLock {
    fn __repr__(&self) -> String {
        format!(
            "Lock(packages={}, missing={})",
            self.packages.len(),
            self.missing.len()
        )
    }
}

/// Every distribution on a search path (`sys.path` order; first of a name wins).
#[pyclass(name = "EnvIndex", module = "takeout._core", frozen)]
pub(crate) struct PyEnvIndex {
    index: EnvIndex,
    /// Converted once: callers ask for the same few distributions again and again.
    dists: Vec<Py<PyDistribution>>,
}

impl PyEnvIndex {
    fn check_id(&self, dist_id: isize) -> PyResult<usize> {
        usize::try_from(dist_id)
            .ok()
            .filter(|&id| id < self.dists.len())
            .ok_or_else(|| {
                PyIndexError::new_err(format!(
                    "distribution id `{dist_id}` is out of range: the index holds {} distributions",
                    self.dists.len()
                ))
            })
    }
}

#[pymethods]
impl PyEnvIndex {
    #[new]
    fn new(py: Python<'_>, search_path: Vec<PathBuf>) -> PyResult<Self> {
        let index = py
            .detach(|| EnvIndex::build(&search_path))
            .map_err(index_error)?;
        let dists = index
            .distributions()
            .iter()
            .map(|dist| Py::new(py, PyDistribution::from(dist)))
            .collect::<PyResult<_>>()?;
        Ok(Self { index, dists })
    }

    fn __len__(&self) -> usize {
        self.dists.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "EnvIndex(distributions={}, skipped={})",
            self.dists.len(),
            self.index.skipped().len()
        )
    }

    #[getter]
    fn distributions(&self, py: Python<'_>) -> Vec<Py<PyDistribution>> {
        self.dists.iter().map(|dist| dist.clone_ref(py)).collect()
    }

    /// `(path, reason)` for each metadata directory (or search-path entry) that could not
    /// be read.
    #[getter]
    fn skipped(&self) -> Vec<(String, String)> {
        self.index
            .skipped()
            .iter()
            .map(|(path, reason)| (path_str(path), reason.clone()))
            .collect()
    }

    fn distribution(&self, py: Python<'_>, dist_id: isize) -> PyResult<Py<PyDistribution>> {
        let id = self.check_id(dist_id)?;
        Ok(self.dists[id].clone_ref(py))
    }

    fn find_by_file(&self, path: PathBuf) -> Option<DistId> {
        self.index.find_by_file(&path)
    }

    fn find_by_files(&self, py: Python<'_>, paths: Vec<PathBuf>) -> Vec<Option<DistId>> {
        let index = &self.index;
        py.detach(|| paths.iter().map(|path| index.find_by_file(path)).collect())
    }

    fn find_by_module(&self, module: &str) -> Option<DistId> {
        self.index.find_by_module(module)
    }

    fn find_by_name(&self, name: &str) -> Option<DistId> {
        self.index.find_by_name(name)
    }

    fn lock(
        &self,
        py: Python<'_>,
        roots: Vec<(isize, Vec<String>)>,
        markers: HashMap<String, String>,
    ) -> PyResult<PyLock> {
        let roots = roots
            .into_iter()
            .map(|(dist_id, extras)| {
                Ok(Root {
                    dist: self.check_id(dist_id)?,
                    extras,
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let markers = marker_values(markers).map_err(lock_error)?;
        let index = &self.index;
        let locked = py
            .detach(|| lock::lock(index, &roots, &markers))
            .map_err(lock_error)?;
        Ok(PyLock {
            packages: locked
                .packages
                .into_iter()
                .map(|package| (package.dist, package.extras, package.required_by))
                .collect(),
            missing: locked
                .missing
                .into_iter()
                .map(|missing| (missing.requirement, missing.required_by, missing.installed))
                .collect(),
            unparsable: locked
                .unparsable
                .into_iter()
                .map(|bad| (bad.requirement, bad.required_by, bad.reason))
                .collect(),
        })
    }
}

/// Every PEP 508 marker name must be present, and nothing else: a typo'd key silently
/// ignored would evaluate markers against the wrong interpreter.
fn marker_values(mut markers: HashMap<String, String>) -> Result<MarkerValues, LockError> {
    let mut take = |name: &str| {
        markers.remove(name).ok_or_else(|| {
            LockError::Markers(format!(
                "`{name}` is missing; pass every PEP 508 marker name, as \
                 `packaging.markers.default_environment()` returns them"
            ))
        })
    };
    let values = MarkerValues {
        implementation_name: take("implementation_name")?,
        implementation_version: take("implementation_version")?,
        os_name: take("os_name")?,
        platform_machine: take("platform_machine")?,
        platform_python_implementation: take("platform_python_implementation")?,
        platform_release: take("platform_release")?,
        platform_system: take("platform_system")?,
        platform_version: take("platform_version")?,
        python_full_version: take("python_full_version")?,
        python_version: take("python_version")?,
        sys_platform: take("sys_platform")?,
    };
    let mut unknown: Vec<String> = markers.into_keys().collect();
    unknown.sort();
    match unknown.first() {
        Some(name) => Err(LockError::Markers(format!(
            "`{name}` is not a PEP 508 marker name"
        ))),
        None => Ok(values),
    }
}

/// `(name, extras, version_specifier, marker)` of a PEP 508 string.
#[pyfunction]
pub(crate) fn parse_requirement(
    spec: &str,
) -> PyResult<(String, Vec<String>, String, Option<String>)> {
    let parts = lock::parse_requirement(spec).map_err(|err| requirement_error(err.to_string()))?;
    Ok((parts.name, parts.extras, parts.specifier, parts.marker))
}
