//! Lock: the transitive closure of the direct distributions through `Requires-Dist`,
//! markers and extras evaluated for the target interpreter, pinned to installed versions.
//! (TODO: implemented by the environment-index work item.)

use thiserror::Error;

use crate::env_index::{DistId, EnvIndex};

/// The marker values of the interpreter the bundle will run on (PEP 508 names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerValues {
    pub implementation_name: String,
    pub implementation_version: String,
    pub os_name: String,
    pub platform_machine: String,
    pub platform_python_implementation: String,
    pub platform_release: String,
    pub platform_system: String,
    pub platform_version: String,
    pub python_full_version: String,
    pub python_version: String,
    pub sys_platform: String,
}

/// A root of the closure: an installed distribution and the extras asked of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub dist: DistId,
    pub extras: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPackage {
    pub dist: DistId,
    /// Extras activated on it by the closure, sorted.
    pub extras: Vec<String>,
    /// Normalised names of the packages whose requirements pulled it in, sorted
    /// (empty for a root).
    pub required_by: Vec<String>,
}

/// A requirement (with its marker true) that no installed distribution satisfies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub requirement: String,
    pub required_by: String,
    /// Installed version that does not satisfy the specifier, if one is installed.
    pub installed: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lock {
    /// Sorted by normalised name; roots included.
    pub packages: Vec<LockedPackage>,
    pub missing: Vec<Missing>,
}

#[derive(Debug, Error)]
pub enum LockError {
    #[error("the marker environment is invalid: {0}")]
    Markers(String),
    #[error("`{requirement}` (required by `{required_by}`) is not a valid PEP 508 requirement: {reason}")]
    BadRequirement {
        requirement: String,
        required_by: String,
        reason: String,
    },
}

/// Close `roots` over `Requires-Dist`.
pub fn lock(index: &EnvIndex, roots: &[Root], markers: &MarkerValues) -> Result<Lock, LockError> {
    let _ = (index, roots, markers);
    todo!("lock closure")
}
