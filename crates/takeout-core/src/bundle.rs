//! Bundle integrity: sha256 of every file listed in `manifest.json`, and the optional
//! HMAC-SHA256 signature over the canonical manifest. Everything here runs before a single
//! byte of `function.pkl` is unpickled, so a failure must stop loading, never warn.

use fs_err::File;
use std::io::{self, Read};
use std::path::{Component, Path};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Prefix of every value in the manifest's `files` map.
pub const SHA256_PREFIX: &str = "sha256:";
/// Prefix of the manifest's `signature` value.
pub const SIGNATURE_PREFIX: &str = "hmac-sha256:";
/// The manifest key that holds the signature (and is left out of what is signed).
pub const SIGNATURE_KEY: &str = "signature";

/// 1 MiB: large enough that syscall overhead disappears next to hashing, small enough to
/// stay in L2 on most machines while SHA-NI chews through it.
const READ_BUFFER: usize = 1 << 20;
/// Hashing is CPU-bound with SHA-NI and the bundle usually has one large buffer, so more
/// threads mostly contend for memory bandwidth and for the cores the caller also needs.
const MAX_THREADS: usize = 2;

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("`{path}` is missing from the bundle; pack it again")]
    Missing { path: String },
    #[error(
        "`{path}` in the bundle is a symbolic link; a bundle holds regular files only and \
         links are never followed, replace it with the file itself or pack again"
    )]
    Symlink { path: String },
    #[error(
        "`{path}` in the bundle is {kind}, not a regular file; a bundle holds regular files \
         only, pack it again"
    )]
    NotRegular { path: String, kind: &'static str },
    #[error("`{path}` could not be read ({source}); check that the bundle is readable")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "`{path}` does not match its sha256 in manifest.json: the bundle was modified after \
         packing; pack it again"
    )]
    HashMismatch { path: String },
    #[error(
        "`{path}` in manifest.json is not a relative path inside the bundle; refusing to read \
         outside the bundle directory, pack it again"
    )]
    PathEscape { path: String },
    #[error(
        "the hash of `{path}` in manifest.json is not of the form sha256:<64 hex digits>; \
         pack the bundle again"
    )]
    MalformedHash { path: String },
    #[error("`manifest.json` is not valid JSON ({0}); pack the bundle again")]
    MalformedManifest(String),
    #[error(
        "the bundle is signed but no signing key was given; pass signing_key= or set \
         TAKEOUT_SIGNING_KEY"
    )]
    SignedWithoutKey,
    #[error(
        "the bundle is not signed but a signing key was given; pack it again with \
         signing_key= or load it without one"
    )]
    UnsignedWithKey,
    #[error(
        "the signature in `manifest.json` is not of the form hmac-sha256:<64 hex digits>; \
         pack the bundle again"
    )]
    MalformedSignature,
    #[error("the signature does not match: the manifest was modified or the key is wrong")]
    SignatureMismatch,
}

// ── hashing ──────────────────────────────────────────────────────────────────────────────

/// Lowercase hex sha256 of a file, streamed so a multi-GiB buffer never sits in memory.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    sha256_read(File::open(path)?).map(hex::encode)
}

fn sha256_read(mut file: File) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(hasher.finalize().into())
}

/// Opens the regular file `rel` (already checked by [`check_relative`]) inside `root`: each
/// directory from its parent's descriptor and the file last, none through a symbolic link,
/// so no rename or link made meanwhile can lead outside the bundle. Non-blocking, so a FIFO
/// is refused by the type check instead of hanging the open until a writer comes.
#[cfg(unix)]
fn open_member(root: &Path, rel: &str) -> Result<File, BundleError> {
    use rustix::fs::{fstat, openat, FileType, Mode, OFlags, CWD};

    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let describe = |shown: &str, err: rustix::io::Errno, parent: &std::os::fd::OwnedFd| {
        let name = shown.rsplit('/').next().unwrap_or(shown);
        let is_link = rustix::fs::statat(parent, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
        if err == rustix::io::Errno::NOENT {
            BundleError::Missing {
                path: rel.to_owned(),
            }
        } else if is_link {
            BundleError::Symlink {
                path: shown.to_owned(),
            }
        } else {
            BundleError::Io {
                path: shown.to_owned(),
                source: err.into(),
            }
        }
    };
    let mut dir = openat(CWD, root, dir_flags, Mode::empty()).map_err(|err| BundleError::Io {
        path: root.display().to_string(),
        source: err.into(),
    })?;
    let parts: Vec<&str> = rel.split('/').collect();
    let (last, dirs) = parts.split_last().expect("split yields at least one part");
    for (depth, part) in dirs.iter().enumerate() {
        let shown = parts[..=depth].join("/");
        dir = openat(&dir, *part, dir_flags | OFlags::NOFOLLOW, Mode::empty())
            .map_err(|err| describe(&shown, err, &dir))?;
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = openat(&dir, *last, flags, Mode::empty()).map_err(|err| describe(rel, err, &dir))?;
    let kind = fstat(&fd).map(|st| FileType::from_raw_mode(st.st_mode));
    match kind {
        // fs_err wraps a std file; the descriptor is already ours, opened as above.
        #[allow(clippy::disallowed_types)]
        Ok(FileType::RegularFile) => Ok(File::from_parts(std::fs::File::from(fd), root.join(rel))),
        Ok(other) => Err(BundleError::NotRegular {
            path: rel.to_owned(),
            kind: match other {
                FileType::Directory => "a directory",
                FileType::Fifo => "a FIFO",
                FileType::CharacterDevice => "a character device",
                FileType::BlockDevice => "a block device",
                FileType::Socket => "a socket",
                _ => "a special file",
            },
        }),
        Err(err) => Err(BundleError::Io {
            path: rel.to_owned(),
            source: err.into(),
        }),
    }
}

#[cfg(not(unix))]
fn open_member(root: &Path, rel: &str) -> Result<File, BundleError> {
    let path = root.join(rel);
    let meta = fs_err::symlink_metadata(&path).map_err(|source| io_error(rel, source))?;
    if meta.file_type().is_symlink() {
        return Err(BundleError::Symlink {
            path: rel.to_owned(),
        });
    }
    if !meta.is_file() {
        return Err(BundleError::NotRegular {
            path: rel.to_owned(),
            kind: "a special file",
        });
    }
    File::open(&path).map_err(|source| io_error(rel, source))
}

fn io_error(rel: &str, source: io::Error) -> BundleError {
    if source.kind() == io::ErrorKind::NotFound {
        BundleError::Missing {
            path: rel.to_owned(),
        }
    } else {
        BundleError::Io {
            path: rel.to_owned(),
            source,
        }
    }
}

/// Refuses anything that could resolve outside the bundle: absolute paths, `..`, drive
/// prefixes, backslashes (a separator on Windows only, so the same manifest would mean
/// different files on different machines) and empty or `.` components (not canonical, so
/// two spellings could name one file).
fn check_relative(rel: &str) -> Result<(), BundleError> {
    let escape = || BundleError::PathEscape {
        path: rel.to_owned(),
    };
    if rel.is_empty() || rel.contains('\\') || rel.contains('\0') || Path::new(rel).is_absolute() {
        return Err(escape());
    }
    if rel
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(escape());
    }
    if !Path::new(rel)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(escape());
    }
    Ok(())
}

type DigestResult = Result<[u8; 32], BundleError>;

/// Hashes `rel_paths` (already checked) on up to [`MAX_THREADS`] threads, comparing each
/// with `expected[i]` when given. On failure returns the error of the lowest index that
/// failed, so the report does not depend on scheduling: work is handed out in index order,
/// hence every lower index has been taken by the time a failure is recorded, and higher
/// ones are skipped.
fn digest_all(
    root: &Path,
    rel_paths: &[&str],
    expected: Option<&[[u8; 32]]>,
) -> Result<Vec<[u8; 32]>, BundleError> {
    let hash_one = |index: usize| {
        let rel = rel_paths[index];
        let digest =
            sha256_read(open_member(root, rel)?).map_err(|source| io_error(rel, source))?;
        match expected {
            Some(expected) if expected[index] != digest => Err(BundleError::HashMismatch {
                path: rel.to_owned(),
            }),
            _ => Ok(digest),
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(MAX_THREADS)
        .min(rel_paths.len());
    if threads <= 1 {
        return (0..rel_paths.len()).map(hash_one).collect();
    }

    let next = AtomicUsize::new(0);
    let first_failure = AtomicUsize::new(usize::MAX);
    // `None` marks an index skipped because a lower one already failed.
    let results: Mutex<Vec<Option<DigestResult>>> =
        Mutex::new((0..rel_paths.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= rel_paths.len() || index > first_failure.load(Ordering::SeqCst) {
                    break;
                }
                let result = hash_one(index);
                if result.is_err() {
                    first_failure.fetch_min(index, Ordering::SeqCst);
                }
                results
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)[index] = Some(result);
            });
        }
    });
    let results = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let failure = first_failure.into_inner();
    let mut digests = Vec::with_capacity(rel_paths.len());
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Some(Ok(digest)) => digests.push(digest),
            Some(Err(err)) if index == failure => return Err(err),
            // Only reachable past the first failure, which returned above.
            Some(Err(_)) | None => unreachable!("index {index} skipped before failure {failure}"),
        }
    }
    Ok(digests)
}

/// `(path, "sha256:<hex>")` for each of `rel_paths` under `root`, sorted by path and without
/// duplicates: exactly the entries of the manifest's `files` map.
pub fn hash_files(root: &Path, rel_paths: &[&str]) -> Result<Vec<(String, String)>, BundleError> {
    let mut sorted: Vec<&str> = rel_paths.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    for rel in &sorted {
        check_relative(rel)?;
    }
    let digests = digest_all(root, &sorted, None)?;
    Ok(sorted
        .into_iter()
        .zip(digests)
        .map(|(rel, digest)| {
            (
                rel.to_owned(),
                format!("{SHA256_PREFIX}{}", hex::encode(digest)),
            )
        })
        .collect())
}

/// Checks every `(path, "sha256:<hex>")` of the manifest against the files under `root`.
/// Paths and hash formats are all checked before any file is opened; then the first
/// failure in path order is reported.
pub fn verify_files(root: &Path, expected: &[(String, String)]) -> Result<(), BundleError> {
    let mut sorted: Vec<(&str, [u8; 32])> = Vec::with_capacity(expected.len());
    let mut entries: Vec<&(String, String)> = expected.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (rel, hash) in entries {
        check_relative(rel)?;
        let digest = hash
            .strip_prefix(SHA256_PREFIX)
            .and_then(|hex_digest| {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(hex_digest, &mut digest).ok()?;
                Some(digest)
            })
            .ok_or_else(|| BundleError::MalformedHash { path: rel.clone() })?;
        sorted.push((rel, digest));
    }
    let (rel_paths, digests): (Vec<&str>, Vec<[u8; 32]>) = sorted.into_iter().unzip();
    digest_all(root, &rel_paths, Some(&digests)).map(drop)
}

// ── canonical JSON and signing ───────────────────────────────────────────────────────────

/// Parses `manifest.json` text, mapping a syntax error to a [`BundleError`].
pub fn parse_manifest(text: &str) -> Result<Value, BundleError> {
    serde_json::from_str(text).map_err(|err| BundleError::MalformedManifest(err.to_string()))
}

/// Compact UTF-8 JSON with object keys sorted by code point at every level. Keys are sorted
/// here rather than relying on `serde_json`'s `Map` being a `BTreeMap`: any crate in a
/// downstream build enabling `preserve_order` would silently change what is signed.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(key.as_str(), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing a scalar into a Vec cannot fail: no I/O, no map keys, no NaN in a `Value`.
    serde_json::to_writer(out, value).expect("a JSON scalar always serialises");
}

fn signed_bytes(manifest: &Value) -> Vec<u8> {
    match manifest {
        Value::Object(map) if map.contains_key(SIGNATURE_KEY) => {
            let mut unsigned = map.clone();
            unsigned.remove(SIGNATURE_KEY);
            canonical_json(&Value::Object(unsigned))
        }
        other => canonical_json(other),
    }
}

fn mac(manifest: &Value, key: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(&signed_bytes(manifest));
    mac
}

/// `"hmac-sha256:<hex>"` over the canonical manifest without its `signature` key, so a
/// manifest can be re-signed in place and signing is idempotent.
pub fn sign(manifest: &Value, key: &[u8]) -> String {
    let tag = mac(manifest, key).finalize().into_bytes();
    format!("{SIGNATURE_PREFIX}{}", hex::encode(tag))
}

/// Checks the manifest's signature with `key`. A signed bundle needs a key and an unsigned
/// one must not get one: silently skipping the check in either case would let a stripped
/// or unsigned bundle pass where the caller asked for authenticity.
pub fn check_signature(manifest: &Value, key: Option<&[u8]>) -> Result<(), BundleError> {
    let signature = match manifest.get(SIGNATURE_KEY) {
        None | Some(Value::Null) => {
            return match key {
                Some(_) => Err(BundleError::UnsignedWithKey),
                None => Ok(()),
            }
        }
        Some(Value::String(signature)) => signature,
        Some(_) => return Err(BundleError::MalformedSignature),
    };
    let key = key.ok_or(BundleError::SignedWithoutKey)?;
    let tag = signature
        .strip_prefix(SIGNATURE_PREFIX)
        .filter(|hex_tag| hex_tag.len() == 64)
        .and_then(|hex_tag| hex::decode(hex_tag).ok())
        .ok_or(BundleError::MalformedSignature)?;
    // verify_slice compares in constant time, so timing does not leak the expected tag.
    mac(manifest, key)
        .verify_slice(&tag)
        .map_err(|_| BundleError::SignatureMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fs_err as fs;
    use serde_json::json;
    use std::io::Write;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn bundle() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("buffers")).unwrap();
        fs::write(dir.path().join("function.pkl"), b"abc").unwrap();
        fs::write(
            dir.path().join("buffers/0000.bin"),
            vec![7u8; 3 * READ_BUFFER + 5],
        )
        .unwrap();
        fs::write(dir.path().join("buffers/0001.bin"), b"").unwrap();
        fs::write(dir.path().join("requirements.txt"), b"numpy==2.0\n").unwrap();
        dir
    }

    const FILES: [&str; 4] = [
        "function.pkl",
        "buffers/0000.bin",
        "buffers/0001.bin",
        "requirements.txt",
    ];

    #[test]
    fn bundle_known_vectors() {
        let dir = bundle();
        assert_eq!(
            sha256_file(&dir.path().join("buffers/0001.bin")).unwrap(),
            EMPTY_SHA256
        );
        assert_eq!(
            sha256_file(&dir.path().join("function.pkl")).unwrap(),
            ABC_SHA256
        );
        // Crosses buffer boundaries; compared with the one-shot digest of the same bytes.
        let big = vec![7u8; 3 * READ_BUFFER + 5];
        assert_eq!(
            sha256_file(&dir.path().join("buffers/0000.bin")).unwrap(),
            hex::encode(Sha256::digest(&big))
        );
    }

    #[test]
    fn bundle_hash_files_sorted_with_prefix() {
        let dir = bundle();
        let mut paths = FILES.to_vec();
        paths.push("function.pkl");
        let files = hash_files(dir.path(), &paths).unwrap();
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "buffers/0000.bin",
                "buffers/0001.bin",
                "function.pkl",
                "requirements.txt"
            ]
        );
        assert_eq!(files[1].1, format!("sha256:{EMPTY_SHA256}"));
        assert_eq!(files[2].1, format!("sha256:{ABC_SHA256}"));
        verify_files(dir.path(), &files).unwrap();
    }

    #[test]
    fn bundle_tamper_detected() {
        let dir = bundle();
        let files = hash_files(dir.path(), &FILES).unwrap();
        let path = dir.path().join("buffers/0000.bin");
        let mut bytes = fs::read(&path).unwrap();
        bytes[2 * READ_BUFFER + 1] ^= 1;
        fs::write(&path, bytes).unwrap();
        let err = verify_files(dir.path(), &files).unwrap_err();
        assert!(matches!(&err, BundleError::HashMismatch { path } if path == "buffers/0000.bin"));
        assert_eq!(
            err.to_string(),
            "`buffers/0000.bin` does not match its sha256 in manifest.json: the bundle was \
             modified after packing; pack it again"
        );
    }

    #[test]
    fn bundle_first_failure_in_path_order() {
        let dir = bundle();
        let files = hash_files(dir.path(), &FILES).unwrap();
        fs::write(dir.path().join("requirements.txt"), b"changed").unwrap();
        fs::remove_file(dir.path().join("buffers/0001.bin")).unwrap();
        for _ in 0..20 {
            let err = verify_files(dir.path(), &files).unwrap_err();
            assert_eq!(
                err.to_string(),
                "`buffers/0001.bin` is missing from the bundle; pack it again"
            );
        }
        // A mismatch before a missing file in path order is the one reported.
        fs::write(dir.path().join("buffers/0000.bin"), b"changed").unwrap();
        for _ in 0..20 {
            let err = verify_files(dir.path(), &files).unwrap_err();
            assert!(
                matches!(&err, BundleError::HashMismatch { path } if path == "buffers/0000.bin")
            );
        }
    }

    #[test]
    fn bundle_missing_file() {
        let dir = bundle();
        let err = hash_files(dir.path(), &["function.pkl", "buffers/0002.bin"]).unwrap_err();
        assert!(matches!(&err, BundleError::Missing { path } if path == "buffers/0002.bin"));
    }

    #[test]
    fn bundle_path_escape_refused() {
        let dir = bundle();
        let outside = dir.path().parent().unwrap().join("x");
        for rel in [
            "../x",
            "buffers/../../x",
            "/etc/passwd",
            outside.to_str().unwrap(),
            "",
            "./function.pkl",
            "buffers//0000.bin",
            "buffers\\0000.bin",
        ] {
            let err = hash_files(dir.path(), &[rel]).unwrap_err();
            assert!(
                matches!(&err, BundleError::PathEscape { .. }),
                "{rel}: {err}"
            );
            let expected = vec![(rel.to_owned(), format!("sha256:{EMPTY_SHA256}"))];
            let err = verify_files(dir.path(), &expected).unwrap_err();
            assert!(
                matches!(&err, BundleError::PathEscape { .. }),
                "{rel}: {err}"
            );
        }
    }

    /// A FIFO would hang a blocking open until a writer came; a link could lead anywhere.
    #[cfg(unix)]
    #[test]
    fn bundle_odd_files_refused() {
        let dir = bundle();
        let files = hash_files(dir.path(), &FILES).unwrap();
        let outside = tempfile::tempdir().unwrap();
        // The same bytes outside the bundle: the hash would match, the link must not be read.
        fs::write(outside.path().join("function.pkl"), b"abc").unwrap();
        fs::remove_file(dir.path().join("function.pkl")).unwrap();
        fs_err::os::unix::fs::symlink(
            outside.path().join("function.pkl"),
            dir.path().join("function.pkl"),
        )
        .unwrap();
        let err = verify_files(dir.path(), &files).unwrap_err();
        assert!(
            matches!(&err, BundleError::Symlink { path } if path == "function.pkl"),
            "{err}"
        );

        fs::remove_file(dir.path().join("function.pkl")).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(dir.path().join("function.pkl"))
            .status()
            .unwrap();
        assert!(status.success());
        let err = verify_files(dir.path(), &files).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`function.pkl` in the bundle is a FIFO, not a regular file; a bundle holds regular \
             files only, pack it again"
        );

        // A linked directory on the way is refused as well, though its files are regular.
        let moved = outside.path().join("buffers");
        fs::rename(dir.path().join("buffers"), &moved).unwrap();
        fs_err::os::unix::fs::symlink(&moved, dir.path().join("buffers")).unwrap();
        let only_buffers: Vec<(String, String)> = files
            .iter()
            .filter(|(p, _)| p.starts_with("buffers/"))
            .cloned()
            .collect();
        let err = verify_files(dir.path(), &only_buffers).unwrap_err();
        assert!(
            matches!(&err, BundleError::Symlink { path } if path == "buffers"),
            "{err}"
        );
    }

    #[test]
    fn bundle_malformed_hash_refused() {
        let dir = bundle();
        for hash in [
            EMPTY_SHA256.to_owned(),
            "sha256:abc".to_owned(),
            format!("md5:{EMPTY_SHA256}"),
        ] {
            let expected = vec![("buffers/0001.bin".to_owned(), hash)];
            let err = verify_files(dir.path(), &expected).unwrap_err();
            assert!(matches!(err, BundleError::MalformedHash { .. }));
        }
    }

    #[test]
    fn bundle_canonical_json_sorted_and_compact() {
        let value: Value = serde_json::from_str(
            r#"{ "z": 1, "a": {"y": [3, {"b": 2, "a": 1}], "x": null},
                 "é": "ü\n\"", "B": true, "n": -1.5 }"#,
        )
        .unwrap();
        let text = String::from_utf8(canonical_json(&value)).unwrap();
        assert_eq!(
            text,
            r#"{"B":true,"a":{"x":null,"y":[3,{"a":1,"b":2}]},"n":-1.5,"z":1,"é":"ü\n\""}"#
        );
        assert_eq!(canonical_json(&json!([])), b"[]");
        assert_eq!(canonical_json(&json!({})), b"{}");
    }

    fn manifest() -> Value {
        json!({
            "format": "takeout/1",
            "name": "predict",
            "files": {"function.pkl": format!("sha256:{ABC_SHA256}")},
        })
    }

    fn signed(key: &[u8]) -> Value {
        let mut m = manifest();
        let signature = sign(&m, key);
        m["signature"] = Value::String(signature);
        m
    }

    #[test]
    fn bundle_signature_round_trip() {
        let m = signed(b"secret");
        let signature = m["signature"].as_str().unwrap();
        assert!(signature.starts_with("hmac-sha256:"));
        assert_eq!(signature.len(), "hmac-sha256:".len() + 64);
        // The signature field itself is excluded, so re-signing is idempotent.
        assert_eq!(sign(&m, b"secret"), signature);
        check_signature(&m, Some(b"secret")).unwrap();
        // Key order in the text does not matter, only the content.
        let reparsed: Value = serde_json::from_slice(&canonical_json(&m)).unwrap();
        check_signature(&reparsed, Some(b"secret")).unwrap();
    }

    #[test]
    fn bundle_wrong_key() {
        let m = signed(b"secret");
        let err = check_signature(&m, Some(b"secreT")).unwrap_err();
        assert!(matches!(err, BundleError::SignatureMismatch));
        assert_eq!(
            err.to_string(),
            "the signature does not match: the manifest was modified or the key is wrong"
        );
    }

    #[test]
    fn bundle_manifest_modified_after_signing() {
        let mut m = signed(b"secret");
        m["files"]["function.pkl"] = Value::String(format!("sha256:{EMPTY_SHA256}"));
        assert!(matches!(
            check_signature(&m, Some(b"secret")),
            Err(BundleError::SignatureMismatch)
        ));
        let mut m = signed(b"secret");
        m["extra"] = json!(1);
        assert!(matches!(
            check_signature(&m, Some(b"secret")),
            Err(BundleError::SignatureMismatch)
        ));
    }

    #[test]
    fn bundle_signed_without_key_and_unsigned_with_key() {
        let err = check_signature(&signed(b"secret"), None).unwrap_err();
        assert!(matches!(err, BundleError::SignedWithoutKey));
        assert!(err.to_string().contains("TAKEOUT_SIGNING_KEY"));
        let err = check_signature(&manifest(), Some(b"secret")).unwrap_err();
        assert!(matches!(err, BundleError::UnsignedWithKey));
        check_signature(&manifest(), None).unwrap();
    }

    #[test]
    fn bundle_malformed_signature() {
        for bad in [json!("sha256:00"), json!("hmac-sha256:zz"), json!(5)] {
            let mut m = manifest();
            m["signature"] = bad;
            assert!(matches!(
                check_signature(&m, Some(b"k")),
                Err(BundleError::MalformedSignature)
            ));
        }
    }

    /// `cargo test --release -p takeout-core bundle_throughput -- --ignored --nocapture`
    #[test]
    #[ignore = "writes a 1 GiB temporary file; run by hand in release mode"]
    #[allow(clippy::print_stderr, reason = "run by hand to print its figure")]
    fn bundle_throughput_1gib() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let chunk: Vec<u8> = (0..READ_BUFFER).map(|i| (i * 31 % 251) as u8).collect();
        let mut file = File::create(&path).unwrap();
        for _ in 0..1024 {
            file.write_all(&chunk).unwrap();
        }
        drop(file);
        // Once to warm the page cache, so the figure is hashing speed, not disk speed.
        sha256_file(&path).unwrap();
        let start = std::time::Instant::now();
        sha256_file(&path).unwrap();
        let seconds = start.elapsed().as_secs_f64();
        eprintln!(
            "sha256 of 1 GiB: {seconds:.3} s, {:.2} GB/s",
            (1u64 << 30) as f64 / seconds / 1e9
        );
    }
}
