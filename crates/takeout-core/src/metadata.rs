//! Reading one installed distribution's metadata directory (`*.dist-info` / `*.egg-info`):
//! METADATA/PKG-INFO headers, RECORD (or installed-files.txt/SOURCES.txt), `top_level.txt`,
//! `direct_url.json`, INSTALLER.
//!
//! Everything here is lexical: RECORD paths are joined onto the site directory and normalised
//! as strings, never `canonicalize`d, because an environment holds tens of thousands of files
//! and one syscall per file would dominate the whole index build.

use std::path::{Component, Path, PathBuf};

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
    /// Top-level import names: `top_level.txt` if present, else derived from RECORD.
    pub top_level: Vec<String>,
    /// Dotted names of the modules and regular packages RECORD (or installed-files.txt)
    /// installs under `location`, e.g. `sklearn.cluster._kmeans`, `yaml`, in RECORD order.
    pub modules: Vec<String>,
    /// Files the distribution installed, absolute and lexically normalised.
    pub files: FileList,
    /// For editable installs: the project directory (from `direct_url.json`).
    pub editable_root: Option<PathBuf>,
    /// `direct_url.json` `url`, when present.
    pub direct_url: Option<String>,
    pub installer: Option<String>,
}

#[derive(Debug, Error)]
pub enum MetadataError {
    /// fs-err's message already names the file.
    #[error("{source}")]
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

/// PEP 503 normalisation: runs of `-`, `_`, `.` become one `-`, lowercased.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
                in_run = true;
            }
        } else {
            out.push(c.to_ascii_lowercase());
            in_run = false;
        }
    }
    out
}

/// Resolve `.` and `..` components without touching the filesystem. `..` at the root stays
/// at the root; `..` leading a relative path is kept.
pub fn normalize_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::with_capacity(path.as_os_str().len());
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                Some(Component::ParentDir | Component::CurDir) | None => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Absolute, lexically normalised paths (as UTF-8, lossily), packed into one buffer: an
/// environment lists tens of thousands of files, and one allocation per path was a fifth
/// of the time it takes to index one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileList {
    text: String,
    ends: Vec<usize>,
}

impl FileList {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`th path as a string, exactly as stored (what the index hashes).
    pub fn get_str(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.text[start..end])
    }

    pub fn get(&self, i: usize) -> Option<&Path> {
        self.get_str(i).map(Path::new)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Path> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.iter().any(|file| file == path)
    }

    fn reserve(&mut self, paths: usize, bytes: usize) {
        self.ends.reserve(paths);
        self.text.reserve(bytes);
    }

    /// Append `base` joined with the `/`-separated `rel` (or `rel` itself when absolute),
    /// lexically normalised; `base` must already be normalised. Returns the stored path.
    fn push_resolved(&mut self, base: &str, rel: &str) -> &str {
        let start = self.text.len();
        if cfg!(unix) && is_plain(rel) {
            // The common case (`numpy/core/__init__.py`) needs no component walk. The bytes
            // come out exactly as `normalize_path` would write them, which the index's
            // hashed file map relies on.
            self.text.push_str(base);
            if !base.ends_with('/') {
                self.text.push('/');
            }
            self.text.push_str(rel);
        } else {
            let joined = normalize_path(&Path::new(base).join(rel));
            self.text.push_str(&joined.to_string_lossy());
        }
        self.ends.push(self.text.len());
        &self.text[start..]
    }
}

/// The import system compares extension-module suffixes case-sensitively
/// (`importlib.machinery.EXTENSION_SUFFIXES`), so `X.SO` is not a module, even on a
/// case-insensitive file system.
#[allow(clippy::case_sensitive_file_extension_comparisons)]
fn has_extension_suffix(file: &str) -> bool {
    file.ends_with(".so") || file.ends_with(".pyd")
}

/// Whether `rel` is relative, `/`-separated, and free of empty, `.` and `..` components,
/// so that joining needs no normalisation. Conservative: any component starting with a dot
/// (`.hidden`) takes the slow path too. Written as branch-free folds over byte pairs so the
/// compiler vectorises it: this runs once per installed file.
#[allow(
    clippy::needless_bitwise_bool,
    reason = "`||` and `any` short-circuit, which stops vectorisation"
)]
fn is_plain(rel: &str) -> bool {
    let bytes = rel.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    let backslash = bytes
        .iter()
        .fold(false, |found, &byte| found | (byte == b'\\'));
    let bad_pair = bytes[..bytes.len() - 1]
        .iter()
        .zip(&bytes[1..])
        .fold(false, |found, (&a, &b)| {
            found | ((a == b'/') & ((b == b'/') | (b == b'.')))
        });
    !(backslash || bad_pair || first == b'/' || first == b'.' || last == b'/')
}

/// Read the metadata directory `metadata_dir` (or legacy single-file `*.egg-info`, or an
/// `.egg`'s `EGG-INFO`) found in the search-path entry `location`. Both paths must be
/// absolute and normalised.
pub fn read_distribution(
    location: &Path,
    metadata_dir: &Path,
) -> Result<Distribution, MetadataError> {
    let file_name = metadata_dir
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    if file_name.ends_with(".dist-info") {
        read_dist_info(location, metadata_dir)
    } else if file_name.ends_with(".egg-info") || file_name == "EGG-INFO" {
        read_egg_info(location, metadata_dir)
    } else {
        Err(MetadataError::Malformed {
            path: metadata_dir.to_path_buf(),
            reason: "not a `.dist-info`, `.egg-info` or `EGG-INFO` directory".into(),
        })
    }
}

fn read_required(path: PathBuf) -> Result<(Vec<u8>, PathBuf), MetadataError> {
    match fs_err::read(&path) {
        Ok(bytes) => Ok((bytes, path)),
        Err(source) => Err(MetadataError::Io { path, source }),
    }
}

/// `Ok(None)` when the file does not exist: most metadata files are optional.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, MetadataError> {
    match fs_err::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MetadataError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn read_dist_info(location: &Path, dir: &Path) -> Result<Distribution, MetadataError> {
    let (metadata, metadata_path) = read_required(dir.join("METADATA"))?;
    let mut dist = from_headers(location, dir, &metadata, &metadata_path)?;

    if let Some(record) = read_optional(&dir.join("RECORD"))? {
        let base = location.to_string_lossy();
        // A RECORD row (path, hash, size) is about as long as the absolute path it becomes.
        dist.files
            .reserve(record.len() / 64, record.len() + record.len() / 4);
        let mut derived = DerivedNames::default();
        parse_record(&record, &dir.join("RECORD"), |rel| {
            derived.add(rel);
            dist.files.push_resolved(&base, rel);
        })?;
        derived.finish(&mut dist);
    }
    if let Some(top_level) = read_optional(&dir.join("top_level.txt"))? {
        dist.top_level = lines(&String::from_utf8_lossy(&top_level))
            .map(str::to_owned)
            .collect();
    }
    if let Some(installer) = read_optional(&dir.join("INSTALLER"))? {
        dist.installer = lines(&String::from_utf8_lossy(&installer))
            .next()
            .map(str::to_owned);
    }
    if let Some(direct_url) = read_optional(&dir.join("direct_url.json"))? {
        apply_direct_url(&mut dist, &direct_url, &dir.join("direct_url.json"))?;
    }
    Ok(dist)
}

fn read_egg_info(location: &Path, dir: &Path) -> Result<Distribution, MetadataError> {
    // Pre-setuptools distutils installs wrote PKG-INFO itself as a `*.egg-info` file.
    // Only on this (rare) error path do we pay for a stat.
    let (pkg_info, pkg_info_path) = match read_required(dir.join("PKG-INFO")) {
        Err(MetadataError::Io { .. }) if dir.is_file() => read_required(dir.to_path_buf())?,
        other => other?,
    };
    let mut dist = from_headers(location, dir, &pkg_info, &pkg_info_path)?;
    if pkg_info_path == dir {
        return Ok(dist);
    }

    // Same precedence as importlib.metadata: installed-files.txt (relative to the egg-info
    // directory) lists what was installed; SOURCES.txt (relative to the location) only what
    // was in the sdist, so it gives files but no module names (it lists `setup.py`, `src/...`).
    if let Some(installed) = read_optional(&dir.join("installed-files.txt"))? {
        let (base, location) = (dir.to_string_lossy(), location.to_string_lossy());
        let installed = String::from_utf8_lossy(&installed);
        let mut derived = DerivedNames::default();
        for rel in lines(&installed) {
            let file = dist.files.push_resolved(&base, rel);
            if let Some(under_location) = file
                .strip_prefix(location.as_ref())
                .and_then(|rest| rest.strip_prefix(std::path::MAIN_SEPARATOR))
            {
                derived.add(under_location);
            }
        }
        derived.finish(&mut dist);
    } else if let Some(sources) = read_optional(&dir.join("SOURCES.txt"))? {
        let base = location.to_string_lossy();
        for rel in lines(&String::from_utf8_lossy(&sources)) {
            dist.files.push_resolved(&base, rel);
        }
    }
    if let Some(top_level) = read_optional(&dir.join("top_level.txt"))? {
        dist.top_level = lines(&String::from_utf8_lossy(&top_level))
            .map(str::to_owned)
            .collect();
    }
    // Requires-Dist in PKG-INFO, when a recent setuptools wrote it, wins over requires.txt
    // (importlib.metadata's order).
    if dist.requires_dist.is_empty() {
        if let Some(requires) = read_optional(&dir.join("requires.txt"))? {
            let (requires_dist, extras) = convert_requires_txt(&String::from_utf8_lossy(&requires));
            dist.requires_dist = requires_dist;
            for extra in extras {
                if !dist.provides_extra.contains(&extra) {
                    dist.provides_extra.push(extra);
                }
            }
        }
    }
    Ok(dist)
}

fn from_headers(
    location: &Path,
    dir: &Path,
    bytes: &[u8],
    path: &Path,
) -> Result<Distribution, MetadataError> {
    let headers = parse_headers(
        bytes,
        &["Name", "Version", "Requires-Dist", "Provides-Extra"],
    );
    let first = |field: &str| {
        headers
            .iter()
            .find(|(key, value)| *key == field && !value.is_empty())
            .map(|(_, value)| value.clone())
    };
    let all = |field: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|(key, value)| *key == field && !value.is_empty())
            .map(|(_, value)| value.clone())
            .collect()
    };
    let name = first("Name").ok_or_else(|| MetadataError::MissingField {
        path: path.to_path_buf(),
        field: "Name",
    })?;
    let version = first("Version").ok_or_else(|| MetadataError::MissingField {
        path: path.to_path_buf(),
        field: "Version",
    })?;
    Ok(Distribution {
        normalized: normalize_name(&name),
        name,
        version,
        kind: DistKind::Index,
        location: location.to_path_buf(),
        metadata_dir: dir.to_path_buf(),
        requires_dist: all("Requires-Dist"),
        provides_extra: all("Provides-Extra"),
        top_level: Vec::new(),
        modules: Vec::new(),
        files: FileList::default(),
        editable_root: None,
        direct_url: None,
        installer: None,
    })
}

/// The RFC 822 header block of METADATA/PKG-INFO, unfolded, in order.
///
/// Hand-written rather than a mail crate: we need a handful of headers and never the body
/// (often a long README), so we stop at the first empty line and skip MIME handling entirely.
fn parse_headers<'k>(bytes: &[u8], wanted: &[&'k str]) -> Vec<(&'k str, String)> {
    let mut headers: Vec<(&str, String)> = Vec::new();
    // Whether the header being continued is one we keep.
    let mut keeping = false;
    for line in bytes.split(|&byte| byte == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        // Decoding line by line keeps the (often long, never needed) body out of UTF-8
        // validation; Classifier and Description lines are skipped undecoded.
        if line[0] == b' ' || line[0] == b'\t' {
            // Unfolding keeps the whitespace and drops only the line break (RFC 822 3.1.1).
            if let (true, Some((_, value))) = (keeping, headers.last_mut()) {
                value.push_str(&String::from_utf8_lossy(line));
            }
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            // Python's email parser starts the body at a line that is not a header.
            break;
        };
        let key = line[..colon].trim_ascii();
        keeping = false;
        if let Some(&name) = wanted
            .iter()
            .find(|name| key.eq_ignore_ascii_case(name.as_bytes()))
        {
            headers.push((
                name,
                String::from_utf8_lossy(&line[colon + 1..]).into_owned(),
            ));
            keeping = true;
        }
    }
    for (_, value) in &mut headers {
        let trimmed = value.trim();
        if trimmed.len() != value.len() {
            *value = trimmed.to_owned();
        }
    }
    headers
}

/// Call `each` with the path column of every RECORD row.
fn parse_record(
    bytes: &[u8],
    path: &Path,
    mut each: impl FnMut(&str),
) -> Result<(), MetadataError> {
    if memchr::memchr(b'"', bytes).is_none() {
        // Without a quote character, CSV is just records split at line breaks and fields at
        // commas, so the path is whatever precedes the first comma. Nearly every RECORD is
        // like that, and setting up a csv reader per RECORD (it builds a DFA) plus running
        // it cost over 40% of indexing an environment. Anything quoted goes to the csv crate.
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        let mut start = 0;
        for end in memchr::memchr2_iter(b'\n', b'\r', text.as_bytes()).chain([text.len()]) {
            // Line breaks and commas are ASCII, so these slices fall on char boundaries.
            let line = &text[start..end];
            start = end + 1;
            let field = match memchr::memchr(b',', line.as_bytes()) {
                Some(comma) => &line[..comma],
                None => line,
            };
            if !field.is_empty() {
                each(field);
            }
        }
        return Ok(());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut row = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut row) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                if let Some(field) = row.get(0).filter(|field| !field.is_empty()) {
                    each(&String::from_utf8_lossy(field));
                }
            }
            Err(err) => {
                return Err(MetadataError::Malformed {
                    path: path.to_path_buf(),
                    reason: err.to_string(),
                })
            }
        }
    }
}

/// Non-empty, trimmed lines of a small text file.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|line| !line.is_empty())
}

fn apply_direct_url(
    dist: &mut Distribution,
    bytes: &[u8],
    path: &Path,
) -> Result<(), MetadataError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|err| MetadataError::Malformed {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
    let url = value.get("url").and_then(|url| url.as_str());
    dist.direct_url = url.map(str::to_owned);
    let editable = value
        .pointer("/dir_info/editable")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    if editable {
        dist.kind = DistKind::Editable;
        dist.editable_root = url.and_then(file_url_to_path);
    }
    Ok(())
}

/// `file:///home/me/my%20proj` -> `/home/me/my proj`; `None` for other schemes.
fn file_url_to_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("file://")?;
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    let bytes = rest.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                decoded.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    let path = String::from_utf8_lossy(&decoded).into_owned();
    Some(normalize_path(Path::new(&path)))
}

/// Turn setuptools' requires.txt (`[extra:marker]` sections) into Requires-Dist strings and
/// the extras its sections name.
fn convert_requires_txt(text: &str) -> (Vec<String>, Vec<String>) {
    let mut requires = Vec::new();
    let mut extras = Vec::new();
    let mut section_marker: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            let (extra, marker) = section.split_once(':').unwrap_or((section, ""));
            let (extra, marker) = (extra.trim(), marker.trim());
            let mut clauses = Vec::new();
            if !marker.is_empty() {
                clauses.push(format!("({marker})"));
            }
            if !extra.is_empty() {
                clauses.push(format!("extra == \"{extra}\""));
                if !extras.iter().any(|known| known == extra) {
                    extras.push(extra.to_owned());
                }
            }
            section_marker = (!clauses.is_empty()).then(|| clauses.join(" and "));
            continue;
        }
        let (requirement, own_marker) = match line.split_once(';') {
            Some((requirement, marker)) => (requirement.trim(), Some(marker.trim())),
            None => (line, None),
        };
        let marker = match (own_marker, &section_marker) {
            (Some(own), Some(section)) => Some(format!("({own}) and {section}")),
            (Some(own), None) => Some(own.to_owned()),
            (None, Some(section)) => Some(section.clone()),
            (None, None) => None,
        };
        requires.push(match marker {
            Some(marker) => format!("{requirement} ; {marker}"),
            None => requirement.to_owned(),
        });
    }
    (requires, extras)
}

/// Module names and top-level names derived from installed paths relative to the location.
#[derive(Default)]
struct DerivedNames {
    modules: Vec<String>,
    top_level: Vec<String>,
    /// The directory part of the previous module path and its dotted form: RECORD lists a
    /// directory's files together, so most paths reuse the previous validation.
    last_dirs: Option<(String, Option<String>)>,
}

impl DerivedNames {
    fn add(&mut self, rel: &str) {
        let Some((dirs, stem)) = split_module_path(rel) else {
            return;
        };
        let cached = match &mut self.last_dirs {
            Some((last, prefix)) if last == dirs => prefix,
            slot => &mut slot.insert((dirs.to_owned(), dotted_dirs(dirs))).1,
        };
        let Some(module) = cached
            .as_deref()
            .and_then(|prefix| join_module(prefix, stem))
        else {
            return;
        };
        let top = module.split('.').next().unwrap_or(&module);
        // RECORD lists a package's files together, so the last one is almost always the
        // duplicate; `finish` removes the rest.
        if self.top_level.last().map(String::as_str) != Some(top) {
            self.top_level.push(top.to_owned());
        }
        self.modules.push(module);
    }

    fn finish(mut self, dist: &mut Distribution) {
        self.top_level.sort_unstable();
        self.top_level.dedup();
        dist.top_level = self.top_level;
        dist.modules = self.modules;
    }
}

/// The dotted module a path relative to the site directory installs, if it is one:
/// `a/b/c.py` -> `a.b.c`, `a/b/__init__.py` -> `a.b`,
/// `a/_x.cpython-311-x86_64-linux-gnu.so` -> `a._x`. Paths outside the site directory
/// (`../../bin/...`), metadata, `*.data` and `__pycache__` are not modules; neither is
/// anything under a directory that is not an identifier (`numpy.libs/`).
pub fn module_name(rel: &str) -> Option<String> {
    let (dirs, stem) = split_module_path(rel)?;
    join_module(&dotted_dirs(dirs)?, stem)
}

/// `(directories, module stem)` of a `.py`/extension-module path. Most RECORD entries are
/// not modules (.pyc, data, metadata), so this rejects them without allocating.
fn split_module_path(rel: &str) -> Option<(&str, &str)> {
    let (dirs, file) = match memchr::memrchr2(b'/', b'\\', rel.as_bytes()) {
        Some(slash) => (&rel[..slash], &rel[slash + 1..]),
        None => ("", rel),
    };
    let stem = if let Some(stem) = file.strip_suffix(".py") {
        stem
    } else if has_extension_suffix(file) {
        // Extension modules carry their ABI tag between the name and the suffix.
        file.split('.').next().unwrap_or(file)
    } else {
        return None;
    };
    is_identifier(stem).then_some((dirs, stem))
}

/// `a/b` -> `a.b`; `None` when a directory is not an importable name.
fn dotted_dirs(dirs: &str) -> Option<String> {
    let mut dotted = String::with_capacity(dirs.len());
    for part in dirs.split(['/', '\\']) {
        if part.is_empty() || part == "." {
            continue;
        }
        if part == "__pycache__" || !is_identifier(part) {
            return None;
        }
        if !dotted.is_empty() {
            dotted.push('.');
        }
        dotted.push_str(part);
    }
    Some(dotted)
}

fn join_module(prefix: &str, stem: &str) -> Option<String> {
    match (prefix.is_empty(), stem == "__init__") {
        (true, true) => None,
        (false, true) => Some(prefix.to_owned()),
        (true, false) => Some(stem.to_owned()),
        (false, false) => {
            // Not `format!`: its machinery costs more than the copy, once per module.
            let mut module = String::with_capacity(prefix.len() + 1 + stem.len());
            module.push_str(prefix);
            module.push('.');
            module.push_str(stem);
            Some(module)
        }
    }
}

/// Python identifiers, approximately: non-ASCII letters are accepted without checking their
/// Unicode category, which only matters for names no RECORD contains.
fn is_identifier(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(b'0'..=b'9') | None => false,
        // Decoding chars is the slow part; nearly every name is ASCII.
        Some(_) if name.is_ascii() => bytes
            .iter()
            .all(|&byte| byte == b'_' || byte.is_ascii_alphanumeric()),
        Some(_) => {
            let mut chars = name.chars();
            chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Synthetic site directories for the tests of this crate.

    use fs_err as fs;
    use std::fmt::Write as _;
    use std::path::Path;

    /// Write `<site>/<name>-<version>.dist-info` with METADATA built from `headers`, a RECORD
    /// listing `files` (which are created too, unless they start with `..`), and `extra`
    /// metadata files.
    pub(crate) fn dist_info(
        site: &Path,
        name: &str,
        version: &str,
        headers: &[&str],
        files: &[&str],
        extra: &[(&str, &str)],
    ) {
        let dir = site.join(format!("{}-{version}.dist-info", name.replace('-', "_")));
        fs::create_dir_all(&dir).unwrap();
        let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
        for header in headers {
            metadata.push_str(header);
            metadata.push('\n');
        }
        metadata.push_str("\nThe body: Requires-Dist: not-a-header\n");
        fs::write(dir.join("METADATA"), metadata).unwrap();
        let mut record = String::new();
        for file in files {
            writeln!(record, "{file},sha256=abc,1").unwrap();
            if !file.starts_with("..") && !file.starts_with('"') {
                let path = site.join(file);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, "").unwrap();
            }
        }
        let dist_info_name = dir.file_name().unwrap().to_string_lossy().into_owned();
        write!(
            record,
            "{dist_info_name}/METADATA,,\n{dist_info_name}/RECORD,,\n"
        )
        .unwrap();
        fs::write(dir.join("RECORD"), record).unwrap();
        for (file, content) in extra {
            fs::write(dir.join(file), content).unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::dist_info;
    use super::*;

    #[test]
    fn normalises_names_per_pep_503() {
        assert_eq!(normalize_name("PyYAML"), "pyyaml");
        assert_eq!(normalize_name("scikit_learn"), "scikit-learn");
        assert_eq!(normalize_name("Foo.__-Bar"), "foo-bar");
        assert_eq!(normalize_name("zope.interface"), "zope-interface");
    }

    #[test]
    fn normalises_paths_lexically() {
        assert_eq!(
            normalize_path(Path::new("/venv/lib/py/site/../../../bin/./tool")),
            PathBuf::from("/venv/bin/tool")
        );
        assert_eq!(normalize_path(Path::new("/../x")), PathBuf::from("/x"));
        assert_eq!(
            normalize_path(Path::new("../a/../../b")),
            PathBuf::from("../../b")
        );
        let mut files = FileList::default();
        files.push_resolved("/s", "a/b.py");
        files.push_resolved("/s", "a//./b.py");
        files.push_resolved("/", "x");
        assert_eq!(files.get_str(0), Some("/s/a/b.py"));
        assert_eq!(files.get_str(1), Some("/s/a/b.py"));
        assert_eq!(files.get_str(2), Some("/x"));
        assert_eq!(files.get_str(3), None);
    }

    #[test]
    fn tells_plain_relative_paths() {
        for plain in ["a", "a/b.py", "a.b/c..d/e./f.", "a/b..", "x/y.../z"] {
            assert!(is_plain(plain), "{plain}");
        }
        for not_plain in [
            "", "/a", "a/", "a//b", ".", "..", "./a", "../a", "a/./b", "a/../b", "a/.", "a/..",
            "a\\b",
        ] {
            assert!(!is_plain(not_plain), "{not_plain}");
        }
    }

    #[test]
    fn derives_module_names() {
        assert_eq!(module_name("a/b/c.py").as_deref(), Some("a.b.c"));
        assert_eq!(module_name("a/b/__init__.py").as_deref(), Some("a.b"));
        assert_eq!(
            module_name("a/_x.cpython-311-x86_64-linux-gnu.so").as_deref(),
            Some("a._x")
        );
        assert_eq!(module_name("_cffi.abi3.so").as_deref(), Some("_cffi"));
        assert_eq!(
            module_name("pkg/_m.cp311-win_amd64.pyd").as_deref(),
            Some("pkg._m")
        );
        assert_eq!(module_name("six.py").as_deref(), Some("six"));
        for not_a_module in [
            "__init__.py",
            "../../bin/tool.py",
            "a/__pycache__/b.cpython-311.pyc",
            "a/__pycache__/b.py",
            "numpy.libs/libopenblas.so",
            "foo-1.0.dist-info/METADATA",
            "foo-1.0.data/scripts/x.py",
            "a/data.json",
            "a/libfoo.so.1",
            "a/my-script.py",
        ] {
            assert_eq!(module_name(not_a_module), None, "{not_a_module}");
        }
    }

    #[test]
    fn parses_folded_headers_and_stops_at_the_body() {
        let headers = parse_headers(
            b"Name: demo\r\nVersion: 1.0\r\nrequires-dist: a>=1;\r\n python_version < \"3.10\"\r\nLicense: x\r\n  y\r\nDescription: first\r\n        |\r\n        | more\r\nProvides-Extra: test\r\n\r\nRequires-Dist: body\r\n",
            &["Requires-Dist", "License", "Provides-Extra"],
        );
        let get = |key: &str| -> Vec<&str> {
            headers
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("Requires-Dist"), ["a>=1; python_version < \"3.10\""]);
        assert_eq!(get("License"), ["x  y"]);
        assert_eq!(get("Provides-Extra"), ["test"]);
    }

    #[test]
    fn reads_a_dist_info_with_quoted_and_escaping_record_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let site = normalize_path(&tmp.path().join("lib/site-packages"));
        dist_info(
            &site,
            "Demo.Pkg",
            "1.2",
            &["Requires-Dist: numpy>=1", "Provides-Extra: fast"],
            &[
                "demo/__init__.py",
                "\"demo/with,comma.py\"",
                "demo/_speed.cpython-311-x86_64-linux-gnu.so",
                "../../bin/demo",
            ],
            &[("INSTALLER", "uv\n")],
        );
        let dir = site.join("Demo.Pkg-1.2.dist-info");
        let dist = read_distribution(&site, &dir).unwrap();
        assert_eq!(dist.name, "Demo.Pkg");
        assert_eq!(dist.normalized, "demo-pkg");
        assert_eq!(dist.version, "1.2");
        assert_eq!(dist.requires_dist, ["numpy>=1"]);
        assert_eq!(dist.provides_extra, ["fast"]);
        assert_eq!(dist.installer.as_deref(), Some("uv"));
        assert_eq!(dist.kind, DistKind::Index);
        assert!(dist.files.contains(&site.join("demo/with,comma.py")));
        assert!(dist.files.contains(&tmp.path().join("bin/demo")));
        assert!(dist.files.contains(&dir.join("METADATA")));
        assert_eq!(dist.top_level, ["demo"]);
        assert_eq!(dist.modules, ["demo", "demo._speed"]);
    }

    #[test]
    fn top_level_txt_wins_over_derived_names() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path();
        dist_info(
            site,
            "pyyaml",
            "6.0",
            &[],
            &["yaml/__init__.py", "_yaml/__init__.py"],
            &[("top_level.txt", "_yaml\nyaml\n")],
        );
        let dist = read_distribution(site, &site.join("pyyaml-6.0.dist-info")).unwrap();
        assert_eq!(dist.top_level, ["_yaml", "yaml"]);
        assert_eq!(dist.modules, ["yaml", "_yaml"]);
    }

    #[test]
    fn detects_editable_installs_from_direct_url() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path();
        dist_info(
            site,
            "mine",
            "0.1",
            &[],
            &["__editable__.mine-0.1.pth"],
            &[(
                "direct_url.json",
                r#"{"url": "file:///home/me/my%20proj/./x/..", "dir_info": {"editable": true}}"#,
            )],
        );
        dist_info(
            site,
            "archived",
            "1.0",
            &[],
            &[],
            &[(
                "direct_url.json",
                r#"{"url": "https://example.org/a.whl", "archive_info": {}}"#,
            )],
        );
        let mine = read_distribution(site, &site.join("mine-0.1.dist-info")).unwrap();
        assert_eq!(mine.kind, DistKind::Editable);
        assert_eq!(mine.editable_root, Some(PathBuf::from("/home/me/my proj")));
        let archived = read_distribution(site, &site.join("archived-1.0.dist-info")).unwrap();
        assert_eq!(archived.kind, DistKind::Index);
        assert_eq!(
            archived.direct_url.as_deref(),
            Some("https://example.org/a.whl")
        );
        assert_eq!(archived.editable_root, None);
    }

    #[test]
    fn reads_egg_info_with_requires_txt_sections() {
        let tmp = tempfile::tempdir().unwrap();
        let site = normalize_path(tmp.path());
        let dir = site.join("old_pkg-0.5-py3.11.egg-info");
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(
            dir.join("PKG-INFO"),
            "Metadata-Version: 1.1\nName: old_pkg\nVersion: 0.5\n",
        )
        .unwrap();
        fs_err::write(
            dir.join("requires.txt"),
            "six\n\n[:sys_platform == \"win32\"]\ncolorama\n\n[fast]\ncython\n\n[Test:python_version < \"3.8\"]\nmock; os_name == \"nt\"\n",
        )
        .unwrap();
        fs_err::write(
            dir.join("installed-files.txt"),
            "../old_pkg/__init__.py\n../old_pkg/core.py\n../../../bin/old\nPKG-INFO\n",
        )
        .unwrap();
        fs_err::write(dir.join("top_level.txt"), "old_pkg\n").unwrap();
        let dist = read_distribution(&site, &dir).unwrap();
        assert_eq!(dist.normalized, "old-pkg");
        assert_eq!(
            dist.requires_dist,
            [
                "six",
                "colorama ; (sys_platform == \"win32\")",
                "cython ; extra == \"fast\"",
                "mock ; (os_name == \"nt\") and (python_version < \"3.8\") and extra == \"Test\"",
            ]
        );
        assert_eq!(dist.provides_extra, ["fast", "Test"]);
        assert!(dist.files.contains(&site.join("old_pkg/core.py")));
        assert!(dist.files.contains(&dir.join("PKG-INFO")));
        assert_eq!(dist.modules, ["old_pkg", "old_pkg.core"]);
        assert_eq!(dist.top_level, ["old_pkg"]);
    }

    #[test]
    fn reads_a_single_file_egg_info_and_sources_txt() {
        let tmp = tempfile::tempdir().unwrap();
        let site = normalize_path(tmp.path());
        fs_err::write(
            site.join("legacy-1.0.egg-info"),
            "Name: legacy\nVersion: 1.0\n",
        )
        .unwrap();
        let legacy = read_distribution(&site, &site.join("legacy-1.0.egg-info")).unwrap();
        assert_eq!(
            (legacy.name.as_str(), legacy.version.as_str()),
            ("legacy", "1.0")
        );
        assert!(legacy.files.is_empty());

        let dir = site.join("dev.egg-info");
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(
            dir.join("PKG-INFO"),
            "Name: dev\nVersion: 0.0\nRequires-Dist: a\n",
        )
        .unwrap();
        fs_err::write(dir.join("SOURCES.txt"), "setup.py\nsrc/dev/__init__.py\n").unwrap();
        fs_err::write(dir.join("requires.txt"), "ignored\n").unwrap();
        let dev = read_distribution(&site, &dir).unwrap();
        assert_eq!(dev.requires_dist, ["a"]);
        let files: Vec<&Path> = dev.files.iter().collect();
        assert_eq!(
            files,
            [site.join("setup.py"), site.join("src/dev/__init__.py")]
        );
        assert!(dev.modules.is_empty());
    }

    #[test]
    fn reports_broken_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path();
        let no_name = site.join("x-1.dist-info");
        fs_err::create_dir_all(&no_name).unwrap();
        fs_err::write(no_name.join("METADATA"), "Version: 1\n").unwrap();
        let err = read_distribution(site, &no_name).unwrap_err();
        assert!(
            matches!(err, MetadataError::MissingField { field: "Name", .. }),
            "{err}"
        );

        let no_metadata = site.join("y-1.dist-info");
        fs_err::create_dir_all(&no_metadata).unwrap();
        let err = read_distribution(site, &no_metadata)
            .unwrap_err()
            .to_string();
        assert!(err.contains("y-1.dist-info/METADATA`"), "{err}");

        let bad_json = site.join("z-1.dist-info");
        fs_err::create_dir_all(&bad_json).unwrap();
        fs_err::write(bad_json.join("METADATA"), "Name: z\nVersion: 1\n").unwrap();
        fs_err::write(bad_json.join("direct_url.json"), "{").unwrap();
        let err = read_distribution(site, &bad_json).unwrap_err();
        assert!(matches!(err, MetadataError::Malformed { .. }), "{err}");
    }
}
