//! Environment index: every distribution installed on a search path, and which one
//! provides a given file or module.
//!
//! Files first, names second: a module's file is looked up in the RECORDs, so namespace
//! packages resolve exactly (`google/protobuf/__init__.py` -> protobuf, not every `google-*`);
//! only a module with no known file falls back to dotted names derived from RECORD and
//! `top_level.txt`. Import names that differ from distribution names (sklearn, PIL, yaml) come
//! out right because they come from the metadata, never from a hand-written table.

use std::collections::hash_map::Entry;
use std::ffi::OsString;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use rustc_hash::{FxBuildHasher, FxHashMap};
use thiserror::Error;

use crate::metadata::{
    normalize_name, normalize_path, read_distribution, Distribution, MetadataError,
};

/// Index into [`EnvIndex::distributions`].
pub type DistId = usize;

#[derive(Debug, Default)]
pub struct EnvIndex {
    dists: Vec<Distribution>,
    by_name: FxHashMap<String, DistId>,
    /// Keys are `Distribution::files` entries.
    by_file: StrIndex,
    /// Keys are `Distribution::modules` entries.
    by_module: StrIndex,
    by_top_level: FxHashMap<String, DistId>,
    editable_roots: Vec<(PathBuf, DistId)>,
    /// Search-path entries that hold at least one indexed distribution.
    site_dirs: Vec<PathBuf>,
    skipped: Vec<(PathBuf, String)>,
}

/// A string -> distribution map whose keys live in the distributions themselves: the table
/// holds a key's hash and where the key is stored, and the stored key is compared on
/// lookup. An environment has tens of thousands of files and modules, and copying each
/// into a map of its own cost more than reading all the metadata. Fx rather than `SipHash`:
/// the keys are the environment's own metadata, not attacker-chosen.
#[derive(Debug, Default)]
struct StrIndex {
    /// Hash of a key -> (distribution, position of the key in that distribution's list).
    slots: FxHashMap<u64, (DistId, usize)>,
    /// Keys whose hash collided with a different key's (in practice, none).
    collisions: Vec<(String, DistId)>,
}

impl StrIndex {
    /// First insertion of a key wins, as for distributions themselves.
    fn insert<'a>(
        &mut self,
        key: &str,
        at: (DistId, usize),
        stored: impl Fn((DistId, usize)) -> Option<&'a str>,
    ) {
        match self.slots.entry(FxBuildHasher.hash_one(key)) {
            Entry::Vacant(slot) => {
                slot.insert(at);
            }
            Entry::Occupied(slot) => {
                if stored(*slot.get()) != Some(key) {
                    self.collisions.push((key.to_owned(), at.0));
                }
            }
        }
    }

    fn get<'a>(
        &self,
        key: &str,
        stored: impl Fn((DistId, usize)) -> Option<&'a str>,
    ) -> Option<DistId> {
        match self.slots.get(&FxBuildHasher.hash_one(key)) {
            Some(&at) if stored(at) == Some(key) => Some(at.0),
            _ => self
                .collisions
                .iter()
                .find(|(known, _)| known == key)
                .map(|&(_, id)| id),
        }
    }
}

#[derive(Debug, Error)]
pub enum EnvIndexError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// Below this many metadata directories a second thread costs more than it saves.
const PARALLEL_THRESHOLD: usize = 16;

impl EnvIndex {
    /// Index every `*.dist-info`/`*.egg-info` directly inside each entry of `search_path`
    /// (in order: the first distribution of a given normalised name wins, as in
    /// `importlib.metadata`). Entries that are missing or are not directories are skipped.
    /// A metadata directory too broken to read is skipped, not fatal: see [`Self::skipped`].
    pub fn build(search_path: &[PathBuf]) -> Result<Self, EnvIndexError> {
        let mut index = Self::default();
        let entries = absolute_entries(search_path, &mut index.skipped);

        let mut candidates: Vec<(usize, PathBuf)> = Vec::new();
        for (entry_id, entry) in entries.iter().enumerate() {
            let read_dir = match fs_err::read_dir(entry) {
                Ok(read_dir) => read_dir,
                // Missing entries and zip files on sys.path are normal; anything else is not.
                Err(err) => {
                    if entry.is_dir() {
                        index.skipped.push((
                            entry.clone(),
                            // fs-err's message names the directory.
                            err.to_string(),
                        ));
                    }
                    continue;
                }
            };
            // An `.egg` directory on the path keeps its metadata in `EGG-INFO`, as
            // importlib.metadata knows.
            let is_egg = entry.extension().is_some_and(|ext| ext == "egg");
            let mut names: Vec<OsString> = read_dir
                .filter_map(Result::ok)
                .map(|dir_entry| dir_entry.file_name())
                .filter(|name| {
                    let name = name.to_string_lossy();
                    name.ends_with(".dist-info")
                        || name.ends_with(".egg-info")
                        || (is_egg && name == "EGG-INFO")
                })
                .collect();
            // read_dir order is arbitrary; sorting makes "first wins" within one directory
            // reproducible.
            names.sort_unstable();
            candidates.extend(names.into_iter().map(|name| (entry_id, entry.join(name))));
        }

        let results = read_all(&entries, &candidates);

        // Sized once: growing a table by rehashing, dist after dist, was a tenth of the build.
        let (files, modules) = results
            .iter()
            .flatten()
            .fold((0, 0), |(files, modules), dist| {
                (files + dist.files.len(), modules + dist.modules.len())
            });
        index.by_file.slots.reserve(files);
        index.by_module.slots.reserve(modules);

        let mut has_dists = vec![false; entries.len()];
        for ((entry_id, metadata_dir), result) in candidates.into_iter().zip(results) {
            match result {
                Ok(dist) => {
                    if !index.by_name.contains_key(&dist.normalized) {
                        has_dists[entry_id] = true;
                        index.add(dist);
                    }
                }
                Err(err) => index.skipped.push((metadata_dir, err.to_string())),
            }
        }
        index.site_dirs = entries
            .into_iter()
            .zip(has_dists)
            .filter_map(|(entry, has)| has.then_some(entry))
            .collect();
        Ok(index)
    }

    fn add(&mut self, dist: Distribution) {
        let id = self.dists.len();
        self.dists.push(dist);
        let Self {
            dists,
            by_name,
            by_file,
            by_module,
            by_top_level,
            editable_roots,
            ..
        } = self;
        let dist = &dists[id];
        by_name.insert(dist.normalized.clone(), id);
        // Files, modules and top-level names shared by several distributions (old-style
        // `google/__init__.py`) go to the first, like distributions themselves.
        for file_id in 0..dist.files.len() {
            let file = dist.files.get_str(file_id).unwrap_or_default();
            by_file.insert(file, (id, file_id), |(d, i)| dists[d].files.get_str(i));
        }
        for (module_id, module) in dist.modules.iter().enumerate() {
            by_module.insert(module, (id, module_id), |(d, i)| {
                dists[d].modules.get(i).map(String::as_str)
            });
        }
        for top in &dist.top_level {
            by_top_level.entry(top.clone()).or_insert(id);
        }
        if let Some(root) = &dist.editable_root {
            editable_roots.push((root.clone(), id));
        }
    }

    pub fn distributions(&self) -> &[Distribution] {
        &self.dists
    }

    /// Metadata directories (or search-path entries) that could not be read, with why.
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }

    /// The distribution that installed `file` (absolute path), or whose editable project
    /// directory contains it.
    pub fn find_by_file(&self, file: &Path) -> Option<DistId> {
        let file = if file.is_absolute() {
            normalize_path(file)
        } else {
            normalize_path(&std::env::current_dir().ok()?.join(file))
        };
        let key = file.to_string_lossy();
        if let Some(id) = self
            .by_file
            .get(&key, |(d, i)| self.dists[d].files.get_str(i))
        {
            return Some(id);
        }
        // A project often keeps its virtualenv inside itself (`proj/.venv`): a file in a site
        // directory nested in an editable root belongs to that site directory, not to the
        // project, even when no RECORD lists it (a `.pyc` written later, say).
        self.editable_roots
            .iter()
            .filter(|(root, _)| file.starts_with(root))
            .filter(|(root, _)| {
                !self
                    .site_dirs
                    .iter()
                    .any(|site| site != root && site.starts_with(root) && file.starts_with(site))
            })
            .max_by_key(|(root, _)| root.components().count())
            .map(|&(_, id)| id)
    }

    /// The distribution providing dotted module `module`, by the longest dotted prefix
    /// among the modules its RECORD installs, then by `top_level.txt`.
    pub fn find_by_module(&self, module: &str) -> Option<DistId> {
        let mut prefix = module;
        loop {
            let stored = |(d, i): (DistId, usize)| self.dists[d].modules.get(i).map(String::as_str);
            if let Some(id) = self.by_module.get(prefix, stored) {
                return Some(id);
            }
            match prefix.rfind('.') {
                Some(dot) => prefix = &prefix[..dot],
                None => break,
            }
        }
        self.by_top_level.get(prefix).copied()
    }

    /// Look a distribution up by (any spelling of) its name.
    pub fn find_by_name(&self, name: &str) -> Option<DistId> {
        self.by_name.get(&normalize_name(name)).copied()
    }
}

/// The search path made absolute and normalised (`""` is the working directory, as in
/// `sys.path`), without repeats: reading an entry twice could only find shadowed duplicates.
fn absolute_entries(search_path: &[PathBuf], skipped: &mut Vec<(PathBuf, String)>) -> Vec<PathBuf> {
    let mut cwd: Option<std::io::Result<PathBuf>> = None;
    let mut entries: Vec<PathBuf> = Vec::with_capacity(search_path.len());
    for entry in search_path {
        let absolute = if entry.is_absolute() {
            normalize_path(entry)
        } else {
            match cwd.get_or_insert_with(std::env::current_dir) {
                Ok(cwd) => normalize_path(&cwd.join(entry)),
                Err(err) => {
                    let reason = format!(
                        "cannot resolve the relative entry `{}`: {err}",
                        entry.display()
                    );
                    skipped.push((entry.clone(), reason));
                    continue;
                }
            }
        };
        if !entries.contains(&absolute) {
            entries.push(absolute);
        }
    }
    entries
}

type ReadResult = Result<Distribution, MetadataError>;

/// Read every candidate, on two threads when there are enough: the work is small reads
/// plus RECORD parsing, and the machines this runs on have few cores to spare.
fn read_all(entries: &[PathBuf], candidates: &[(usize, PathBuf)]) -> Vec<ReadResult> {
    let read_one = |(entry_id, dir): &(usize, PathBuf)| read_distribution(&entries[*entry_id], dir);
    if candidates.len() < PARALLEL_THRESHOLD {
        return candidates.iter().map(read_one).collect();
    }
    // Alternate candidates between the threads rather than halving the list: the big RECORDs
    // (numpy, pandas, scipy, scikit-learn) sit together in a sorted listing.
    let (mut even, odd) = std::thread::scope(|scope| {
        let odd = scope.spawn(|| {
            candidates
                .iter()
                .skip(1)
                .step_by(2)
                .map(read_one)
                .collect::<Vec<_>>()
        });
        let even: Vec<_> = candidates.iter().step_by(2).map(read_one).collect();
        match odd.join() {
            Ok(odd) => (even, odd),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    let mut results = Vec::with_capacity(candidates.len());
    let mut odd = odd.into_iter();
    for result in even.drain(..) {
        results.push(result);
        results.extend(odd.next());
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::test_support::dist_info;
    use crate::metadata::DistKind;
    use fs_err as fs;

    fn name_of(index: &EnvIndex, id: Option<DistId>) -> Option<&str> {
        id.map(|id| index.distributions()[id].normalized.as_str())
    }

    #[test]
    fn first_distribution_of_a_name_wins_across_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
        dist_info(&first, "Foo_Bar", "2.0", &[], &["foo_bar/__init__.py"], &[]);
        dist_info(
            &second,
            "foo-bar",
            "1.0",
            &[],
            &["foo_bar/__init__.py", "foo_bar/old.py"],
            &[],
        );
        dist_info(&second, "other", "1.0", &[], &["other.py"], &[]);
        let index = EnvIndex::build(&[
            tmp.path().join("missing"),
            first.clone(),
            first.join("../first"),
            second.clone(),
            first.join("foo_bar/__init__.py"),
        ])
        .unwrap();
        let names: Vec<(&str, &str)> = index
            .distributions()
            .iter()
            .map(|dist| (dist.normalized.as_str(), dist.version.as_str()))
            .collect();
        assert_eq!(names, [("foo-bar", "2.0"), ("other", "1.0")]);
        assert_eq!(
            name_of(&index, index.find_by_name("FOO.bar")),
            Some("foo-bar")
        );
        assert_eq!(index.find_by_name("foo-bar-baz"), None);
        // The shadowed copy's files belong to nobody.
        assert_eq!(index.find_by_file(&second.join("foo_bar/old.py")), None);
        assert_eq!(
            name_of(
                &index,
                index.find_by_file(&first.join("foo_bar/__init__.py"))
            ),
            Some("foo-bar")
        );
        assert!(index.skipped().is_empty(), "{:?}", index.skipped());
    }

    #[test]
    fn hash_collisions_fall_back_to_comparing_keys() {
        let stored_keys = [["alpha"], ["beta"]];
        let stored = |(d, i): (DistId, usize)| Some(stored_keys[d][i]);
        let mut index = StrIndex::default();
        // Pretend "alpha" hashed to where "beta" does.
        index.slots.insert(FxBuildHasher.hash_one("beta"), (0, 0));
        index.insert("beta", (1, 0), stored);
        index.insert("beta", (2, 0), stored);
        assert_eq!(index.get("beta", stored), Some(1));
        assert_eq!(index.get("gamma", stored), None);
        // A repeated key is not a collision: the first holder keeps it.
        index.insert("alpha-2", (0, 0), |_| Some("alpha-2"));
        index.insert("alpha-2", (1, 0), |_| Some("alpha-2"));
        assert_eq!(index.get("alpha-2", |_| Some("alpha-2")), Some(0));
        assert_eq!(index.collisions.len(), 2);
    }

    #[test]
    fn broken_metadata_is_skipped_and_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path();
        dist_info(site, "good", "1.0", &[], &["good.py"], &[]);
        fs::create_dir_all(site.join("broken-1.0.dist-info")).unwrap();
        let index = EnvIndex::build(&[site.to_path_buf()]).unwrap();
        assert_eq!(index.distributions().len(), 1);
        let [(path, reason)] = index.skipped() else {
            panic!("{:?}", index.skipped());
        };
        assert!(path.ends_with("broken-1.0.dist-info"));
        assert!(reason.contains("METADATA`"), "{reason}");
    }

    #[test]
    fn namespace_packages_resolve_to_the_longest_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().to_path_buf();
        dist_info(
            &site,
            "ns-alpha",
            "1.0",
            &[],
            &["ns/alpha/__init__.py", "ns/alpha/core.py"],
            &[],
        );
        dist_info(
            &site,
            "ns-beta",
            "1.0",
            &[],
            &[
                "ns/beta/__init__.py",
                "ns/beta/_fast.cpython-311-x86_64-linux-gnu.so",
                "ns/beta/sub/mod.py",
            ],
            &[],
        );
        let index = EnvIndex::build(std::slice::from_ref(&site)).unwrap();
        let by_module = |module| name_of(&index, index.find_by_module(module));
        assert_eq!(by_module("ns.alpha"), Some("ns-alpha"));
        assert_eq!(by_module("ns.alpha.core.Thing"), Some("ns-alpha"));
        assert_eq!(by_module("ns.beta._fast"), Some("ns-beta"));
        assert_eq!(by_module("ns.beta.sub.mod"), Some("ns-beta"));
        assert_eq!(by_module("ns.beta.generated"), Some("ns-beta"));
        // The namespace itself belongs to no one dist; top_level breaks the tie (first).
        assert_eq!(by_module("ns"), Some("ns-alpha"));
        assert_eq!(by_module("elsewhere"), None);
        for dist in index.distributions() {
            assert_eq!(dist.top_level, ["ns"]);
        }
        let by_file = |rel: &str| name_of(&index, index.find_by_file(&site.join(rel)));
        assert_eq!(by_file("ns/beta/sub/mod.py"), Some("ns-beta"));
        assert_eq!(
            by_file("ns/beta/sub/../../alpha/./core.py"),
            Some("ns-alpha")
        );
        assert_eq!(by_file("ns/gamma.py"), None);
    }

    #[test]
    fn top_level_txt_is_the_fallback_for_unlisted_modules() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().to_path_buf();
        // A RECORD that lists no Python files (an installer that dropped them) still has
        // top_level.txt to go on.
        dist_info(
            &site,
            "PyYAML",
            "6.0",
            &[],
            &[],
            &[("top_level.txt", "_yaml\nyaml\n")],
        );
        let index = EnvIndex::build(&[site]).unwrap();
        assert_eq!(
            name_of(&index, index.find_by_module("yaml.loader")),
            Some("pyyaml")
        );
        assert_eq!(
            name_of(&index, index.find_by_module("_yaml")),
            Some("pyyaml")
        );
        assert_eq!(index.find_by_module("yamlx"), None);
    }

    #[test]
    fn scripts_outside_the_site_dir_map_back() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().join("lib/python3.11/site-packages");
        dist_info(
            &site,
            "tool",
            "1.0",
            &[],
            &["tool.py", "../../../bin/tool"],
            &[],
        );
        let index = EnvIndex::build(&[site]).unwrap();
        assert_eq!(
            name_of(&index, index.find_by_file(&tmp.path().join("bin/tool"))),
            Some("tool")
        );
        assert_eq!(name_of(&index, index.find_by_module("tool")), Some("tool"));
    }

    #[test]
    fn editable_roots_contain_project_files_but_not_a_nested_venv() {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("my proj");
        let site = project.join(".venv/lib/python3.11/site-packages");
        let url = format!("file://{}", project.display()).replace(' ', "%20");
        dist_info(
            &site,
            "mine",
            "0.1",
            &[],
            &["__editable__.mine-0.1.pth"],
            &[(
                "direct_url.json",
                &format!(r#"{{"url": "{url}", "dir_info": {{"editable": true}}}}"#),
            )],
        );
        dist_info(&site, "dep", "1.0", &[], &["dep/__init__.py"], &[]);
        let index = EnvIndex::build(&[project.join("src"), site.clone()]).unwrap();
        let mine = index.find_by_name("mine").unwrap();
        assert_eq!(index.distributions()[mine].kind, DistKind::Editable);
        assert_eq!(
            index.find_by_file(&project.join("src/mine/app.py")),
            Some(mine)
        );
        assert_eq!(
            name_of(&index, index.find_by_file(&site.join("dep/__init__.py"))),
            Some("dep")
        );
        assert_eq!(
            index.find_by_file(&site.join("dep/__pycache__/x.cpython-311.pyc")),
            None
        );
        assert_eq!(index.find_by_file(&tmp.path().join("elsewhere.py")), None);
    }

    #[test]
    fn egg_info_directories_are_indexed() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().to_path_buf();
        let egg = site.join("legacy-0.5-py3.11.egg-info");
        fs::create_dir_all(&egg).unwrap();
        fs::write(egg.join("PKG-INFO"), "Name: legacy\nVersion: 0.5\n").unwrap();
        fs::write(egg.join("installed-files.txt"), "../legacy/__init__.py\n").unwrap();
        fs::write(egg.join("top_level.txt"), "legacy\n").unwrap();
        let index = EnvIndex::build(std::slice::from_ref(&site)).unwrap();
        let legacy = index.find_by_name("legacy");
        assert!(legacy.is_some());
        assert_eq!(index.find_by_file(&site.join("legacy/__init__.py")), legacy);
        assert_eq!(index.find_by_module("legacy.sub"), legacy);
    }

    #[test]
    fn egg_directories_on_the_path_are_indexed() {
        let tmp = tempfile::tempdir().unwrap();
        let egg = tmp.path().join("old-1.0-py3.11.egg");
        fs::create_dir_all(egg.join("EGG-INFO")).unwrap();
        fs::create_dir_all(egg.join("old")).unwrap();
        fs::write(egg.join("EGG-INFO/PKG-INFO"), "Name: old\nVersion: 1.0\n").unwrap();
        fs::write(egg.join("EGG-INFO/SOURCES.txt"), "old/__init__.py\n").unwrap();
        fs::write(egg.join("EGG-INFO/top_level.txt"), "old\n").unwrap();
        // Outside an `.egg`, a directory named EGG-INFO is nobody's metadata.
        fs::create_dir_all(tmp.path().join("EGG-INFO")).unwrap();
        let index = EnvIndex::build(&[tmp.path().to_path_buf(), egg.clone()]).unwrap();
        let old = index.find_by_name("old");
        assert!(old.is_some());
        assert_eq!(index.find_by_file(&egg.join("old/__init__.py")), old);
        assert_eq!(index.find_by_module("old.sub"), old);
        assert!(index.skipped().is_empty(), "{:?}", index.skipped());
    }

    #[test]
    fn many_distributions_are_read_in_parallel_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().to_path_buf();
        for i in 0..3 * PARALLEL_THRESHOLD {
            let file = format!("pkg{i:03}.py");
            dist_info(
                &site,
                &format!("pkg{i:03}"),
                "1.0",
                &[],
                &[file.as_str()],
                &[],
            );
        }
        let index = EnvIndex::build(&[site]).unwrap();
        let names: Vec<&str> = index
            .distributions()
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        let expected: Vec<String> = (0..3 * PARALLEL_THRESHOLD)
            .map(|i| format!("pkg{i:03}"))
            .collect();
        assert_eq!(names, expected);
        assert_eq!(
            name_of(&index, index.find_by_module("pkg017")),
            Some("pkg017")
        );
    }
}
