//! Lock: the transitive closure of the direct distributions through `Requires-Dist`,
//! markers and extras evaluated for the target interpreter, pinned to installed versions.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::str::FromStr;

use pep440_rs::Version;
use pep508_rs::{
    ExtraName, MarkerEnvironment, MarkerEnvironmentBuilder, Requirement, VerbatimUrl, VersionOrUrl,
};
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
    /// Extras activated on it by the closure (normalised), sorted.
    pub extras: Vec<String>,
    /// Normalised names of the packages whose requirements pulled it in, sorted (empty for
    /// a root nothing else requires; a package requiring itself for its extras is not listed).
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
    /// Sorted by the requirement's normalised name, then requirer.
    pub missing: Vec<Missing>,
    /// `Requires-Dist` values of installed distributions that PEP 508 rejects. They are
    /// skipped and reported, not fatal: one broken package must not stop every analysis.
    pub unparsable: Vec<Unparsable>,
}

/// An installed distribution's `Requires-Dist` value that is not valid PEP 508.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unparsable {
    pub requirement: String,
    pub required_by: String,
    pub reason: String,
}

#[derive(Debug, Error)]
pub enum LockError {
    #[error("the marker environment is invalid: {0}")]
    Markers(String),
    #[error("`{extra}` (asked of `{dist}`) is not a valid extra name: {reason}")]
    BadExtra {
        extra: String,
        dist: String,
        reason: String,
    },
    #[error("distribution id `{0}` is not in the index")]
    UnknownDist(DistId),
}

impl MarkerValues {
    fn environment(&self) -> Result<MarkerEnvironment, LockError> {
        // The builder reports a bad version without saying which field held it.
        for (field, value) in [
            ("implementation_version", &self.implementation_version),
            ("python_full_version", &self.python_full_version),
            ("python_version", &self.python_version),
        ] {
            if let Err(err) = Version::from_str(value) {
                return Err(LockError::Markers(format!("`{field}` is `{value}`: {err}")));
            }
        }
        // pep508_rs evaluates `python_version` markers through `python_full_version`, so
        // two values that disagree would silently answer for the wrong interpreter.
        let full: Vec<&str> = self.python_full_version.split('.').take(2).collect();
        if full.join(".") != self.python_version {
            return Err(LockError::Markers(format!(
                "`python_version` is `{}` but `python_full_version` is `{}`",
                self.python_version, self.python_full_version
            )));
        }
        MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: &self.implementation_name,
            implementation_version: &self.implementation_version,
            os_name: &self.os_name,
            platform_machine: &self.platform_machine,
            platform_python_implementation: &self.platform_python_implementation,
            platform_release: &self.platform_release,
            platform_system: &self.platform_system,
            platform_version: &self.platform_version,
            python_full_version: &self.python_full_version,
            python_version: &self.python_version,
            sys_platform: &self.sys_platform,
        })
        .map_err(|err| LockError::Markers(err.to_string()))
    }
}

#[derive(Default)]
struct Reached {
    extras: BTreeSet<ExtraName>,
    required_by: BTreeSet<String>,
}

/// Close `roots` over `Requires-Dist`.
///
/// A package is (re-)expanded whenever it is first reached or gains an extra, with all its
/// extras active, so cycles terminate (nothing new to add) and `b[x]` reached late still
/// pulls in b's `extra == "x"` requirements.
pub fn lock(index: &EnvIndex, roots: &[Root], markers: &MarkerValues) -> Result<Lock, LockError> {
    let env = markers.environment()?;
    let dists = index.distributions();

    let mut reached: HashMap<DistId, Reached> = HashMap::new();
    let mut queue: VecDeque<DistId> = VecDeque::new();
    for root in roots {
        let dist = dists
            .get(root.dist)
            .ok_or(LockError::UnknownDist(root.dist))?;
        let state = reached.entry(root.dist).or_default();
        for extra in &root.extras {
            let extra = ExtraName::from_str(extra).map_err(|err| LockError::BadExtra {
                extra: extra.clone(),
                dist: dist.name.clone(),
                reason: err.to_string(),
            })?;
            state.extras.insert(extra);
        }
        if !queue.contains(&root.dist) {
            queue.push_back(root.dist);
        }
    }

    let mut parsed: HashMap<DistId, Vec<(&str, Requirement)>> = HashMap::new();
    let mut missing: BTreeSet<(String, String, String, Option<String>)> = BTreeSet::new();
    let mut unparsable: BTreeSet<Unparsable> = BTreeSet::new();
    while let Some(id) = queue.pop_front() {
        let requirer = &dists[id];
        let extras: Vec<ExtraName> = reached[&id].extras.iter().cloned().collect();
        let requirements = match parsed.entry(id) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(parse_requires_dist(requirer, &mut unparsable)),
        };
        for (text, requirement) in requirements.iter() {
            if !requirement.evaluate_markers(&env, &extras) {
                continue;
            }
            let wanted = requirement.name.as_ref();
            let Some(target) = index.find_by_name(wanted) else {
                missing.insert((
                    wanted.to_owned(),
                    requirer.normalized.clone(),
                    text.to_string(),
                    None,
                ));
                continue;
            };
            let installed = &dists[target];
            if !satisfies(requirement, &installed.version) {
                missing.insert((
                    wanted.to_owned(),
                    requirer.normalized.clone(),
                    text.to_string(),
                    Some(installed.version.clone()),
                ));
                continue;
            }
            let is_new = !reached.contains_key(&target);
            let state = reached.entry(target).or_default();
            if target != id {
                state.required_by.insert(requirer.normalized.clone());
            }
            let before = state.extras.len();
            state.extras.extend(requirement.extras.iter().cloned());
            if (is_new || state.extras.len() > before) && !queue.contains(&target) {
                queue.push_back(target);
            }
        }
    }

    let mut packages: Vec<LockedPackage> = reached
        .into_iter()
        .map(|(dist, state)| LockedPackage {
            dist,
            extras: state.extras.iter().map(ToString::to_string).collect(),
            required_by: state.required_by.into_iter().collect(),
        })
        .collect();
    packages.sort_by(|a, b| dists[a.dist].normalized.cmp(&dists[b.dist].normalized));
    let missing = missing
        .into_iter()
        .map(|(_, required_by, requirement, installed)| Missing {
            requirement,
            required_by,
            installed,
        })
        .collect();
    Ok(Lock {
        packages,
        missing,
        unparsable: unparsable.into_iter().collect(),
    })
}

/// A PEP 508 requirement taken apart, for callers that do not link `pep508_rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequirementParts {
    /// PEP 503 normalised.
    pub name: String,
    /// Normalised, in the order written.
    pub extras: Vec<String>,
    /// `>=1.2, <2` (normalised spacing); `@ <url>` for a direct reference; empty when absent.
    pub specifier: String,
    pub marker: Option<String>,
}

/// A requirement a user wrote (`require=`, `--require`) that PEP 508 rejects.
#[derive(Debug, Error)]
#[error(
    "`{spec}` is not a valid requirement: {reason}; write it as in requirements.txt, \
     e.g. `numpy==2.1.3`"
)]
pub struct InvalidRequirement {
    pub spec: String,
    pub reason: String,
}

/// `Requirement::from_str`, with a panic inside `pep508_rs` caught here, at the boundary, and
/// turned into an ordinary parse failure: `pep508_rs` 0.9 panics on inputs such as `a_ >=1`,
/// `foo[b-]` and `foo_ >=1` (a name or extra ending in `_`/`-` followed by more text), and
/// one installed package with such a `Requires-Dist` must not make every lock fail. The
/// panic's message is kept from stderr: the caller reports the entry as one warning.
fn parse_pep508<T: pep508_rs::Pep508Url>(text: &str) -> Result<Requirement<T>, String> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    thread_local!(static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET.with(|quiet| quiet.set(true));
    let parsed = std::panic::catch_unwind(|| Requirement::<T>::from_str(text));
    QUIET.with(|quiet| quiet.set(false));
    match parsed {
        Ok(Ok(requirement)) => Ok(requirement),
        Ok(Err(err)) => Err(sentence_fragment(&err.message.to_string())),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            Err(format!(
                "the PEP 508 parser (pep508_rs) failed on it ({})",
                sentence_fragment(message)
            ))
        }
    }
}

pub fn parse_requirement(spec: &str) -> Result<RequirementParts, InvalidRequirement> {
    let requirement = parse_pep508::<VerbatimUrl>(spec).map_err(|reason| InvalidRequirement {
        spec: spec.to_owned(),
        reason,
    })?;
    let specifier = match &requirement.version_or_url {
        None => String::new(),
        Some(VersionOrUrl::VersionSpecifier(specifiers)) => specifiers.to_string(),
        Some(VersionOrUrl::Url(url)) => format!("@ {url}"),
    };
    Ok(RequirementParts {
        name: requirement.name.to_string(),
        extras: requirement.extras.iter().map(ToString::to_string).collect(),
        specifier,
        marker: requirement.marker.try_to_string(),
    })
}

/// `pep508_rs` reasons can span lines or end in a period; ours sit mid-sentence.
fn sentence_fragment(reason: &str) -> String {
    let joined = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    let trimmed = joined.trim_end_matches('.');
    let mut chars = trimmed.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "it is empty".to_owned(),
    }
}

fn parse_requires_dist<'a>(
    dist: &'a crate::metadata::Distribution,
    unparsable: &mut BTreeSet<Unparsable>,
) -> Vec<(&'a str, Requirement)> {
    let mut parsed = Vec::with_capacity(dist.requires_dist.len());
    for text in &dist.requires_dist {
        match parse_pep508(text) {
            Ok(requirement) => parsed.push((text.as_str(), requirement)),
            Err(reason) => {
                unparsable.insert(Unparsable {
                    requirement: text.clone(),
                    required_by: dist.normalized.clone(),
                    reason,
                });
            }
        }
    }
    parsed
}

/// Whether the installed `version` meets `requirement`. A direct URL reference cannot be
/// compared with what is installed, so presence is taken as enough; a legacy version that
/// PEP 440 cannot parse satisfies only an empty specifier.
fn satisfies(requirement: &Requirement, version: &str) -> bool {
    match &requirement.version_or_url {
        None | Some(VersionOrUrl::Url(_)) => true,
        Some(VersionOrUrl::VersionSpecifier(specifiers)) => {
            specifiers.is_empty()
                || Version::from_str(version).is_ok_and(|version| specifiers.contains(&version))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::test_support::dist_info;
    use std::path::Path;

    fn linux_311() -> MarkerValues {
        MarkerValues {
            implementation_name: "cpython".into(),
            implementation_version: "3.11.7".into(),
            os_name: "posix".into(),
            platform_machine: "x86_64".into(),
            platform_python_implementation: "CPython".into(),
            platform_release: "6.1.0".into(),
            platform_system: "Linux".into(),
            platform_version: "#1 SMP".into(),
            python_full_version: "3.11.7".into(),
            python_version: "3.11".into(),
            sys_platform: "linux".into(),
        }
    }

    fn dist(site: &Path, name: &str, version: &str, requires: &[&str]) {
        let headers: Vec<String> = requires
            .iter()
            .map(|r| format!("Requires-Dist: {r}"))
            .collect();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let module = format!("{}.py", name.replace('-', "_"));
        dist_info(site, name, version, &headers, &[module.as_str()], &[]);
    }

    fn root(index: &EnvIndex, name: &str, extras: &[&str]) -> Root {
        Root {
            dist: index.find_by_name(name).unwrap(),
            extras: extras
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
        }
    }

    /// `(name, extras, required_by)` per locked package.
    fn summary(index: &EnvIndex, lock: &Lock) -> Vec<(String, String, String)> {
        lock.packages
            .iter()
            .map(|p| {
                (
                    index.distributions()[p.dist].normalized.clone(),
                    p.extras.join(","),
                    p.required_by.join(","),
                )
            })
            .collect()
    }

    fn triples(items: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        items
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    }

    #[test]
    fn markers_select_requirements_for_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path();
        dist(
            site,
            "app",
            "1.0",
            &[
                "modern ; python_version >= \"3.10\"",
                "backport ; python_version < \"3.10\"",
                "winonly ; sys_platform == \"win32\"",
                "linuxonly>=1 ; sys_platform == \"linux\" and platform_machine == \"x86_64\"",
                "testing ; extra == \"test\"",
            ],
        );
        for name in ["modern", "backport", "winonly", "linuxonly", "testing"] {
            dist(site, name, "1.0", &[]);
        }
        let index = EnvIndex::build(&[site.to_path_buf()]).unwrap();
        let lock = lock(&index, &[root(&index, "app", &[])], &linux_311()).unwrap();
        assert_eq!(
            summary(&index, &lock),
            triples(&[
                ("app", "", ""),
                ("linuxonly", "", "app"),
                ("modern", "", "app")
            ])
        );
        assert!(lock.missing.is_empty());

        let mut inconsistent = linux_311();
        inconsistent.python_version = "3.9".into();
        let err = super::lock(&index, &[root(&index, "app", &[])], &inconsistent).unwrap_err();
        assert!(
            err.to_string().contains("`python_version` is `3.9` but"),
            "{err}"
        );

        let mut py39_windows = linux_311();
        py39_windows.python_version = "3.9".into();
        py39_windows.python_full_version = "3.9.18".into();
        py39_windows.sys_platform = "win32".into();
        let lock = super::lock(&index, &[root(&index, "app", &["Test"])], &py39_windows).unwrap();
        assert_eq!(
            summary(&index, &lock),
            triples(&[
                ("app", "test", ""),
                ("backport", "", "app"),
                ("testing", "", "app"),
                ("winonly", "", "app"),
            ])
        );
    }

    #[test]
    fn extras_chain_and_cycles_terminate() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path();
        dist(site, "a", "1.0", &["b[x]", "c[all]"]);
        dist(
            site,
            "b",
            "2.0",
            &["a", "d ; extra == \"x\"", "e ; extra == \"y\""],
        );
        dist(
            site,
            "c",
            "1.0",
            &["c[y] ; extra == \"all\"", "f ; extra == \"y\""],
        );
        for name in ["d", "e", "f"] {
            dist(site, name, "1.0", &[]);
        }
        let index = EnvIndex::build(&[site.to_path_buf()]).unwrap();
        let lock = lock(&index, &[root(&index, "a", &[])], &linux_311()).unwrap();
        assert_eq!(
            summary(&index, &lock),
            triples(&[
                ("a", "", "b"),
                ("b", "x", "a"),
                ("c", "all,y", "a"),
                ("d", "", "b"),
                ("f", "", "c"),
            ])
        );
    }

    #[test]
    fn an_extra_reached_late_re_expands_the_package() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path();
        // `lib` is reached plainly first (via `a`), then with `[gpu]` two levels down.
        dist(site, "app", "1.0", &["a", "b"]);
        dist(site, "a", "1.0", &["lib"]);
        dist(site, "b", "1.0", &["c"]);
        dist(site, "c", "1.0", &["lib[gpu]"]);
        dist(site, "lib", "1.0", &["cuda ; extra == \"gpu\""]);
        dist(site, "cuda", "12.0", &[]);
        let index = EnvIndex::build(&[site.to_path_buf()]).unwrap();
        let lock = lock(&index, &[root(&index, "app", &[])], &linux_311()).unwrap();
        let summary = summary(&index, &lock);
        assert!(
            summary.contains(&("lib".into(), "gpu".into(), "a,c".into())),
            "{summary:?}"
        );
        assert!(
            summary.contains(&("cuda".into(), String::new(), "lib".into())),
            "{summary:?}"
        );
    }

    #[test]
    fn missing_and_unsatisfied_requirements_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path();
        dist(
            site,
            "app",
            "1.0",
            &[
                "numpy>=2",
                "absent (>=1.0)",
                "old<2",
                "direct @ https://example.org/d.whl",
                "legacy>=1",
            ],
        );
        dist(site, "other", "1.0", &["numpy<2"]);
        dist(site, "numpy", "2.1.3", &[]);
        dist(site, "old", "2.5", &[]);
        dist(site, "direct", "0.1", &[]);
        dist(site, "legacy", "1.0-custom-build", &[]);
        let index = EnvIndex::build(&[site.to_path_buf()]).unwrap();
        let roots = [root(&index, "app", &[]), root(&index, "other", &[])];
        let lock = lock(&index, &roots, &linux_311()).unwrap();
        assert_eq!(
            summary(&index, &lock),
            triples(&[
                ("app", "", ""),
                ("direct", "", "app"),
                ("numpy", "", "app"),
                ("other", "", "")
            ])
        );
        let missing: Vec<(&str, &str, Option<&str>)> = lock
            .missing
            .iter()
            .map(|m| {
                (
                    m.requirement.as_str(),
                    m.required_by.as_str(),
                    m.installed.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            missing,
            [
                ("absent (>=1.0)", "app", None),
                ("legacy>=1", "app", Some("1.0-custom-build")),
                ("numpy<2", "other", Some("2.1.3")),
                ("old<2", "app", Some("2.5")),
            ]
        );
    }

    /// `pep508_rs` 0.9 panics on these (found by fuzzing); each must be an ordinary error.
    const PANICKING: [&str; 3] = ["a_ >=1", "foo[b-]", "foo_ >=1"];

    #[test]
    fn a_panic_in_the_requirement_parser_is_an_error() {
        for spec in PANICKING {
            let err = parse_requirement(spec).unwrap_err();
            assert_eq!(err.spec, spec);
            assert!(err.reason.contains("pep508_rs"), "{spec}: {err}");
        }
    }

    #[test]
    fn an_installed_requirement_that_panics_the_parser_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path();
        dist(site, "app", "1.0", &["foo_ >=1", "fine"]);
        dist(site, "fine", "1.0", &[]);
        let index = EnvIndex::build(&[site.to_path_buf()]).unwrap();
        let locked = lock(&index, &[root(&index, "app", &[])], &linux_311()).unwrap();
        assert_eq!(summary(&index, &locked).len(), 2, "app and fine are locked");
        let [bad] = locked.unparsable.as_slice() else {
            panic!("{:?}", locked.unparsable)
        };
        assert_eq!(
            (bad.requirement.as_str(), bad.required_by.as_str()),
            ("foo_ >=1", "app")
        );
    }

    #[test]
    fn errors_name_the_offending_value() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path();
        dist(site, "broken", "1.0", &["numpy>=", "fine"]);
        dist(site, "fine", "1.0", &[]);
        let index = EnvIndex::build(&[site.to_path_buf()]).unwrap();

        // A broken Requires-Dist of an installed package is reported and skipped; the rest of
        // that package's requirements still close.
        let locked = lock(&index, &[root(&index, "broken", &[])], &linux_311()).unwrap();
        assert_eq!(summary(&index, &locked).len(), 2);
        let [bad] = locked.unparsable.as_slice() else {
            panic!("{:?}", locked.unparsable)
        };
        assert_eq!(
            (bad.requirement.as_str(), bad.required_by.as_str()),
            ("numpy>=", "broken")
        );
        assert!(!bad.reason.is_empty());

        let mut markers = linux_311();
        markers.python_version = "three".into();
        let err = lock(&index, &[root(&index, "fine", &[])], &markers).unwrap_err();
        assert!(
            err.to_string().contains("`python_version` is `three`"),
            "{err}"
        );

        let err = lock(
            &index,
            &[root(&index, "fine", &["not an extra"])],
            &linux_311(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`not an extra` (asked of `fine`)"),
            "{err}"
        );

        let err = lock(
            &index,
            &[Root {
                dist: 99,
                extras: vec![],
            }],
            &linux_311(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`99`"), "{err}");
    }

    #[test]
    fn parses_requirements_into_parts() {
        let parts =
            parse_requirement("Scikit_Learn[Plot , tests]>=1.3,<2 ; python_version >= '3.9'")
                .unwrap();
        assert_eq!(parts.name, "scikit-learn");
        assert_eq!(parts.extras, ["plot", "tests"]);
        assert_eq!(parts.specifier, ">=1.3, <2");
        assert_eq!(
            parts.marker.as_deref(),
            Some("python_full_version >= '3.9'")
        );
        let bare = parse_requirement("numpy").unwrap();
        assert_eq!((bare.specifier.as_str(), bare.marker), ("", None));
        let url = parse_requirement("pkg @ https://example.org/pkg-1.0.tar.gz").unwrap();
        assert_eq!(url.specifier, "@ https://example.org/pkg-1.0.tar.gz");

        for bad in [
            "numpy>=",
            "",
            "numpy==2.*.1",
            "numpy; python_version >",
            "-x",
        ] {
            let message = parse_requirement(bad).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("`{bad}` is not a valid requirement: ")),
                "{message}"
            );
            assert!(
                message.ends_with("e.g. `numpy==2.1.3`") && !message.contains('\n'),
                "{message}"
            );
        }
    }

    #[test]
    fn egg_info_requires_txt_takes_part_in_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path();
        let egg = site.join("legacy-0.5.egg-info");
        fs_err::create_dir_all(&egg).unwrap();
        fs_err::write(egg.join("PKG-INFO"), "Name: legacy\nVersion: 0.5\n").unwrap();
        fs_err::write(
            egg.join("requires.txt"),
            "dep\n[:sys_platform == \"win32\"]\nwin\n[extra1:python_version >= \"3\"]\nopt\n",
        )
        .unwrap();
        for name in ["dep", "win", "opt"] {
            dist(site, name, "1.0", &[]);
        }
        let index = EnvIndex::build(&[site.to_path_buf()]).unwrap();
        let lock = lock(&index, &[root(&index, "legacy", &["extra1"])], &linux_311()).unwrap();
        assert_eq!(
            summary(&index, &lock),
            triples(&[
                ("dep", "", "legacy"),
                ("legacy", "extra1", ""),
                ("opt", "", "legacy")
            ])
        );
    }
}
