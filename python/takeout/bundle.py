"""Bundles: `takeout.pack` writes one, `takeout.load` checks and loads it.

A bundle is a directory `NAME.takeout/`:

    manifest.json     format "takeout/1": what the function is, needs and returns; the sha256
                      of every other file; an optional HMAC-SHA256 signature
    function.pkl      cloudpickle, protocol 5, large buffers out-of-band
    buffers/NNNN.bin  each buffer of 1 MiB or more (numpy arrays), read into memory at load
    requirements.txt  the direct pins, each with its reasons
    pylock.toml       PEP 751 lock of the whole closure

Packing writes into a temporary sibling directory and renames it into place at the end, so an
error never leaves a half-written bundle behind. Loading checks the format, the signature and
every hash before a single byte is unpickled, on the bytes it then uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from . import _checks, _runtime
from ._names import BUNDLE_NAME, bundle_name
from .errors import BundleError, BundleIntegrityError, ExampleError, UsageError

if TYPE_CHECKING:
    from .batching import Batch

PathLike = Union[str, "os.PathLike[str]"]

#: Buffers at least this large leave the pickle stream for a file of their own.
OUT_OF_BAND_BYTES = 1 << 20
SIGNING_KEY_ENV = "TAKEOUT_SIGNING_KEY"


class Bundle:
    """A bundle on disk: its directory and its manifest.

    A plain class rather than a dataclass: importing dataclasses (and the inspect module it
    pulls in) would cost `takeout call` a few milliseconds of its start-up budget."""

    __slots__ = ("manifest", "path")

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    def __repr__(self) -> str:
        return f"<takeout.Bundle {self.name!r} at {str(self.path)!r}>"


# ── pack ──────────────────────────────────────────────────────────────────────────────────


def pack(
    fn: Callable[..., Any],
    path: Optional[PathLike] = None,
    *,
    name: Optional[str] = None,
    examples: Optional[Sequence[Any]] = None,
    require: Iterable[str] = (),
    exclude: Iterable[str] = (),
    signing_key: Union[str, bytes, None] = None,
    overwrite: bool = False,
    example_check: Optional[str] = None,
    batch: Optional[Batch] = None,
) -> Bundle:
    """Write `fn` as a bundle directory and return it.

    `path` is the bundle directory itself (default `./NAME.takeout`); `examples` are argument
    tuples or keyword dicts, run now and recorded with their outputs for `takeout verify`.
    `example_check` is how verify compares them: `exact`, `shape` or `type` (for results that
    vary); by default each example runs twice and one whose output changed is checked by
    shape (or by type when even its shape changed).

    `batch` (or `@takeout.batched` on `fn`) packs a batch function: it takes a list of items
    as its first parameter and returns one result per item; the server coalesces concurrent
    requests into one call, while the schema, examples and `takeout call` see one item.
    """
    from . import batching

    _checks.callable_or_fail(fn, "takeout.pack")
    require, exclude = _checks.strings(require, "require"), _checks.strings(exclude, "exclude")
    name = name if name is not None else bundle_name(fn)
    if not BUNDLE_NAME.match(name):
        raise UsageError(
            f"bundle name {name!r} is not usable in a URL; use letters, digits, `_`, `-` "
            "and `.` (pass name=...)"
        )
    target = Path(path) if path is not None else Path.cwd() / f"{name}.takeout"
    check_target(target, overwrite)
    if example_check is not None and example_check not in _runtime.EXAMPLE_CHECKS:
        raise UsageError(
            f"example_check `{example_check}` is not one of "
            f"{', '.join(_runtime.EXAMPLE_CHECKS)}; pass one of them or leave it out"
        )
    key = _signing_key(signing_key)
    chosen = batching.batch_of(fn, batch)
    batch_entry = chosen.to_manifest(batching.item_parameter(fn).name) if chosen else None
    recorded = _record_examples(fn, examples, example_check, batch_entry)

    with _resolved_annotations(fn), batching.unmarked(fn):
        return _pack(fn, target, name, recorded, require, exclude, key, overwrite, batch_entry)


def _pack(
    fn: Any,
    target: Path,
    name: str,
    recorded: list[dict[str, Any]],
    require: Iterable[str],
    exclude: Iterable[str],
    key: Optional[bytes],
    overwrite: bool,
    batch: Optional[dict[str, Any]],
) -> Bundle:
    import shutil
    import tempfile

    from . import analysis, schema

    found = analysis.analyse(
        fn,
        require=require,
        exclude=exclude,
        examples=[tuple(e["args"]) if e["args"] else e["kwargs"] for e in recorded] or None,
        call=_runtime.one_item(_runtime.converter(fn) or fn, batch),
    )
    report = found.report
    function = {
        "module": getattr(fn, "__module__", None),
        "qualname": getattr(fn, "__qualname__", None) or type(fn).__qualname__,
        **schema.describe(fn, batch=batch is not None),
    }
    manifest: dict[str, Any] = {
        "format": _runtime.FORMAT,
        "name": name,
        "created_by": f"takeout {_version()}",
        "function": function,
        # Only for batch functions: manifests of the others stay byte-for-byte as they were.
        **({"batch": batch} if batch else {}),
        "python": {**_runtime.python_facts(), "markers": _markers()},
        "requirements": [_requirement(d) for d in report.distributions if d.requirement],
        "shipped": [
            {"name": d.name, "kind": d.kind, "modules": list(d.modules)}
            for d in report.distributions
            if not d.requirement
        ],
        "lock": report.lock,
        "runtime": report.runtime,
        "loader_imports": report.loader_imports,
        "excluded": report.excluded,
        "missing": report.missing,
        "warnings": [*report.warnings, *filter(None, [schema.result_warning(fn)])],
        "examples": recorded,
    }

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(target)
        # The pid in the name tells a later pack whether this one is still running.
        prefix = f".{target.name}.{os.getpid()}."
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide it from a server user
    except OSError as err:
        raise _write_error(target, err) from None
    try:
        manifest["buffers"] = _write_payload(tmp, found, fn)
        (tmp / "requirements.txt").write_text(_requirements_txt(manifest), encoding="utf-8")
        (tmp / "pylock.toml").write_text(_pylock(manifest, report), encoding="utf-8")
        files = ["function.pkl", "requirements.txt", "pylock.toml"]
        files += [b["file"] for b in manifest["buffers"]]
        manifest["files"] = _core().hash_files(str(tmp), files)
        text = json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=False)
        if key is not None:
            manifest["signature"] = _core().sign_manifest(text, key)
            text = json.dumps(manifest, indent=2, ensure_ascii=False)
        (tmp / _runtime.MANIFEST).write_text(text + "\n", encoding="utf-8")
        move_into_place(tmp, target, overwrite)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise _write_error(target, err) from None
        raise
    return Bundle(target.resolve(), manifest)


def _write_error(target: Path, err: OSError) -> BundleError:
    where = f" at `{err.filename}`" if err.filename else ""
    return BundleError(
        f"could not write the bundle `{target}`: {err.strerror or err}{where}; check that "
        "the directory is writable and has space"
    )


def _remove_stale(target: Path) -> None:
    """Remove what packs to `target` that were killed left behind: their temporary
    directory (`.NAME.PID.XXXX.tmp`, often hundreds of MB) and an old bundle moved aside
    (`.NAME.PID.XXXX.old`), once the process PID is gone."""
    import glob
    import shutil

    head = f".{target.name}."
    for path in target.parent.glob(glob.escape(head) + "*"):
        # PID.RANDOM.tmp exactly: `.w.5.123.x.tmp` belongs to a bundle named `w.5`, not `w`.
        parts = path.name[len(head) :].split(".")
        if len(parts) != 3 or parts[2] not in ("tmp", "old") or not parts[0].isdigit():
            continue
        if _alive(int(parts[0])):
            continue
        if path.suffix == ".old" and not target.exists():
            # Killed between moving the old bundle aside and putting the new one in place.
            os.replace(path, target)
            continue
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: alive
        return True
    return True


@contextlib.contextmanager
def _resolved_annotations(fn: Any) -> Iterator[None]:
    """Ship evaluated annotations: string ones (`from __future__ import annotations`) name
    globals the function body may not use, which cloudpickle then leaves behind, and the
    loader could not resolve them to convert JSON arguments."""
    import types
    import typing

    annotations = getattr(fn, "__annotations__", None)
    if not isinstance(fn, types.FunctionType) or not annotations:
        yield
        return
    if not any(isinstance(v, str) for v in annotations.values()):
        yield
        return
    try:
        resolved = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # unresolvable: ship the strings, the schema says "any JSON"
        yield
        return
    fn.__annotations__ = {k: resolved.get(k, v) for k, v in annotations.items()}
    try:
        yield
    finally:
        fn.__annotations__ = annotations


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_target(target: Path, overwrite: bool) -> None:
    """`target` may become a bundle: it does not exist, or `overwrite` and it is one of ours
    (checked before any work, so a mistake costs nothing)."""
    if not target.exists():
        return
    if not overwrite:
        raise UsageError(
            f"`{target}` already exists; pass overwrite=True (or --force) to replace it, "
            "or choose another path"
        )
    try:  # a web app has a manifest.json too: only one of ours may be replaced
        found = json.loads((target / _runtime.MANIFEST).read_bytes()).get("format", "")
    except (OSError, ValueError, AttributeError):
        found = ""
    if not str(found).startswith("takeout/"):
        raise UsageError(
            f"`{target}` exists and is not a takeout bundle; refusing to replace it, "
            "choose another path"
        )


def move_into_place(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move the finished bundle into place; an old bundle is moved aside first and removed
    only once the new one is there. Without `overwrite` the place is claimed with a mkdir,
    which fails if anything got there since the first check (another pack, say): a rename
    alone would silently replace an empty directory, and a check before it could race."""
    import shutil
    import tempfile

    if not overwrite:
        try:
            os.mkdir(target)
        except FileExistsError:
            raise UsageError(
                f"`{target}` already exists (written while this ran); pass "
                "overwrite=True (or --force) to replace it, or choose another path"
            ) from None
        try:
            os.replace(tmp, target)  # onto the empty directory this pack just made
        except BaseException:
            os.rmdir(target)
            raise
        return
    if target.exists():
        prefix = f".{target.name}.{os.getpid()}."
        old = Path(tempfile.mkdtemp(prefix=prefix, suffix=".old", dir=target.parent))
        old.rmdir()  # a fresh unused name: os.replace needs the place free
        os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def _write_payload(tmp: Path, found: Any, fn: Any) -> list[dict[str, Any]]:
    from . import _pickling

    buffers: list[dict[str, Any]] = []
    (tmp / "buffers").mkdir()

    def keep_large_out_of_band(buffer: Any) -> bool:
        raw = buffer.raw()
        if raw.nbytes < OUT_OF_BAND_BYTES:
            return True  # in-band: small buffers are cheaper inside the stream
        rel = f"buffers/{len(buffers):04d}.bin"
        with open(tmp / rel, "wb") as fh:
            fh.write(raw)
        buffers.append({"file": rel, "size": raw.nbytes})
        return False

    with _pickling.by_value(found.by_value), open(tmp / "function.pkl", "wb") as fh:
        try:
            _pickling.TakeoutPickler(fh, buffer_callback=keep_large_out_of_band).dump(
                found.payload(fn)
            )
        except Exception as err:  # analysis pickled it already; only I/O can fail here
            raise BundleError(f"could not write function.pkl: {err}") from err
    if not buffers:
        (tmp / "buffers").rmdir()
    return buffers


def _record_examples(
    fn: Any,
    examples: Optional[Sequence[Any]],
    check: Optional[str],
    batch: Optional[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each example as JSON arguments, and the output of calling `fn` with exactly those JSON
    arguments, converted as the server converts them: what verify and clients will send; with
    the check verify makes (`check`, or found by calling a second time). An example of a batch
    function is one item."""
    call = _runtime.one_item(_runtime.converter(fn) or fn, batch)
    recorded = []
    for index, example in enumerate(_checks.examples_or_fail(examples), 1):
        args, kwargs = _checks.split_example(example, index)
        kwargs = _runtime.as_identifiers(fn, kwargs)  # recorded as the server binds them
        try:
            entry = {
                "args": _runtime.to_json(args, root="args"),
                "kwargs": _runtime.to_json(kwargs, root="kwargs"),
            }
        except TypeError as err:
            raise ExampleError(f"example {index} cannot be written as JSON: {err}") from None
        try:
            entry["output"] = _runtime.call_example(call, entry)
            entry["check"] = check or _varying_check(
                entry["output"], _runtime.call_example(call, entry)
            )
        except _runtime.NotJSON as err:
            raise ExampleError(f"example {index}: {err}") from None
        except Exception as err:
            raise _checks.example_failed(index, err) from None
        recorded.append(entry)
    return recorded


def _varying_check(first: Any, second: Any) -> str:
    """The strictest check two calls with the same arguments both pass."""
    checks = _runtime.EXAMPLE_CHECKS
    return next((c for c in checks if _runtime.matches(second, first, c)), checks[-1])


def _requirement(dist: Any) -> dict[str, Any]:
    return {
        "name": dist.name,
        "version": dist.version,
        "requirement": dist.requirement,
        "kind": dist.kind,
        "modules": list(dist.modules),
        # What the code shows first, what tracing saw last.
        "reasons": sorted(dist.reasons, key=lambda r: r.startswith("ran during example")),
    }


def _requirements_txt(manifest: dict[str, Any]) -> str:
    lines = [
        f"# {manifest['name']}: direct requirements, pinned to the packing environment.",
        "# The whole closure is in pylock.toml.",
    ]
    for req in manifest["requirements"]:
        reason = "; ".join(req["reasons"][:3]) or "imported by the function"
        lines.append(f"{req['requirement']}  # {_one_line(reason)}")
    for pin in manifest["runtime"]:
        lines.append(f"{pin}  # loads function.pkl")
    return "\n".join(lines) + "\n"


def _pylock(manifest: dict[str, Any], report: Any) -> str:
    """PEP 751 lock of the closure, with the wheel URLs and hashes of each pin.

    The pins are ours (from the installed metadata); uv only looks up their files on the
    configured index (`--no-deps`: it adds nothing). Without an index, the lock keeps names
    and versions and says so in the manifest's warnings.
    """
    pins = list(dict.fromkeys([*manifest["lock"], *manifest["runtime"]]))
    minor = manifest["python"]["minor"]
    if not pins:
        return f'lock-version = "1.0"\ncreated-by = "takeout"\nrequires-python = "=={minor}.*"\n'
    import subprocess

    from ._uv import uv_bin

    cmd = ["uv", "pip", "compile", "-", "-q", "--no-deps", "--no-header"]
    cmd += ["--format", "pylock.toml", "--python-version", minor]
    try:
        cmd[0] = uv_bin()
        out = subprocess.run(
            cmd, input="\n".join(pins), capture_output=True, text=True, timeout=300
        )
    except (OSError, ImportError, subprocess.TimeoutExpired) as err:
        out = subprocess.CompletedProcess(cmd, 1, "", str(err))
    if out.returncode == 0 and "[[packages]]" in out.stdout:
        return out.stdout
    reason = (out.stderr.strip().splitlines() or ["no output"])[-1]
    manifest["warnings"].append(
        f"pylock.toml has names and versions but no file hashes: the index could not be "
        f"reached ({reason}); requirements.txt installs the same pins"
    )
    required_by = {e.pin: ", ".join(e.required_by) for e in report.lock_entries}
    lines = ['lock-version = "1.0"', 'created-by = "takeout"', f'requires-python = "=={minor}.*"']
    for pin in sorted(pins, key=str.lower):
        name, _, version = pin.partition("==")
        lines += [
            "",
            "[[packages]]",
            f"name = {_toml_str(name)}",
            f"version = {_toml_str(version)}",
        ]
        if pin in required_by:
            lines.append(f"# required by: {_one_line(required_by[pin])}")
    return "\n".join(lines) + "\n"


def _toml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _markers() -> dict[str, str]:
    from . import _env

    return dict(_env.marker_values())


def _version() -> str:
    return _core().__version__


def _core() -> Any:
    from . import _core

    return _core


# ── load ──────────────────────────────────────────────────────────────────────────────────


def _signing_key(key: Union[str, bytes, None]) -> Optional[bytes]:
    if key is None:
        env = os.environ.get(SIGNING_KEY_ENV)
        return env.encode() if env else None
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise UsageError(
            "signing_key must be a non-empty str or bytes; pass the key or leave it unset"
        )
    return bytes(key)


def bundle_dir(path: PathLike) -> Path:
    """The bundle directory at `path`, or a one-sentence error saying what `path` is."""
    root = Path(path)
    if not root.exists():
        raise UsageError(f"`{root}` does not exist; pass the directory written by takeout pack")
    if not root.is_dir():
        raise UsageError(
            f"`{root}` is a file, not a bundle directory; pass the directory written by "
            "takeout pack"
        )
    if not (root / _runtime.MANIFEST).is_file():
        raise BundleError(
            f"`{root}` is not a takeout bundle (no {_runtime.MANIFEST}); pass the directory "
            "written by takeout pack"
        )
    return root


def read_manifest(path: PathLike, *, signing_key: Union[str, bytes, None] = None) -> dict[str, Any]:
    """The manifest after checking format, signature and every file's sha256."""
    return _checked_manifest(bundle_dir(path), signing_key, loading=False)


def _checked_manifest(
    root: Path, signing_key: Union[str, bytes, None], *, loading: bool
) -> dict[str, Any]:
    """`read_manifest`; when `loading`, without the hashes of the files that
    `_runtime.load_function` reads, which it checks on the very bytes it reads (checked
    here, through another open, they could be other bytes by the time they are used)."""
    text = _runtime.read_manifest_bytes(root)
    manifest = _runtime.parse_manifest(text, str(root))
    core = _core()
    core.check_signature(text.decode("utf-8", "replace"), _signing_key(signing_key))
    _check_shape(root, manifest)
    files = manifest["files"]
    large = {b["file"] for b in manifest.get("buffers", ())}
    unlisted = sorted(f for f in large if f not in files)
    if unlisted:
        # Every file the loader opens must be one whose sha256 is checked.
        raise BundleError(
            f"`{root}/{_runtime.MANIFEST}` lists buffers without a sha256 "
            f"({', '.join(unlisted)}); pack the bundle again"
        )
    skipped = _runtime.loaded_files(manifest) if loading else set()
    core.verify_files(str(root), {k: v for k, v in files.items() if k not in skipped})
    return manifest


_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _check_shape(root: Path, manifest: dict[str, Any]) -> None:
    """The parts of the manifest that loading reads have the types loading expects, so a
    damaged manifest is one sentence, never a TypeError from deep inside."""

    def bad(what: str) -> BundleError:
        return BundleIntegrityError(
            f"`{root}/{_runtime.MANIFEST}` is damaged: {what}; pack the bundle again"
        )

    files = manifest.get("files")
    if not isinstance(files, dict) or "function.pkl" not in files:
        raise bad("it does not list the sha256 of function.pkl")
    for rel, digest in files.items():
        parts = rel.split("/") if isinstance(rel, str) else [""]
        if any(p in ("", ".", "..") for p in parts) or "\\" in rel or rel.startswith("/"):
            raise bad(f"`{rel}` is not a relative path inside the bundle")
        if "\0" in rel:
            raise bad(f"the path {rel!r} holds a NUL byte")
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise bad(f"the hash of `{rel}` is not of the form sha256:<64 hex digits>")
    buffers = manifest.get("buffers", [])
    if not isinstance(buffers, list) or not all(
        isinstance(b, dict)
        and isinstance(b.get("file"), str)
        and isinstance(b.get("size"), int)
        and b["size"] >= 0
        for b in buffers
    ):
        raise bad("`buffers` is not a list of {file, size} entries")
    for key, kind in (("python", dict), ("loader_imports", list), ("examples", list)):
        if key in manifest and not isinstance(manifest[key], kind):
            raise bad(f"`{key}` is not a {kind.__name__}")


def load(path: PathLike, *, signing_key: Union[str, bytes, None] = None) -> Callable[..., Any]:
    """The bundle's function, ready to call, after every check `read_manifest` makes and a
    check of the Python implementation and minor version.

    Arguments in their JSON shape (lists for annotated numpy arrays, dicts for dataclasses,
    ISO strings for datetimes) are converted to the annotated types; values that already
    have those types pass through.
    """
    fn, _ = load_with_manifest(path, signing_key=signing_key)
    return fn


def load_with_manifest(
    path: PathLike, *, signing_key: Union[str, bytes, None] = None
) -> tuple[Callable[..., Any], dict[str, Any]]:
    """`load`, also returning the verified manifest (for servers and the CLI)."""
    root = bundle_dir(path)
    manifest = _checked_manifest(root, signing_key, loading=True)
    _runtime.check_python(manifest)
    try:
        fn = _runtime.load_function(root, manifest)
    except BundleError:
        raise
    except ImportError as err:
        raise BundleError(
            f"loading bundle `{manifest.get('name')}` failed ({err}); install the bundle's "
            "requirements.txt"
        ) from err
    return (_runtime.converter(fn) or fn), manifest


def cache_root() -> Path:
    """takeout's cache directory: `$TAKEOUT_CACHE_DIR`, else `$XDG_CACHE_HOME/takeout`, else
    `~/.cache/takeout` (the wheels an export fetched)."""
    base = os.environ.get("TAKEOUT_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    home = Path(xdg) if xdg else Path.home() / ".cache"
    return home / "takeout"


def call(path: PathLike, arguments: Any, *, signing_key: Union[str, bytes, None] = None) -> Any:
    """Load the bundle and call it once with JSON arguments (one item of a batch function);
    the JSON result."""
    fn, manifest = load_with_manifest(path, signing_key=signing_key)
    fn = _runtime.one_item(fn, manifest.get("batch"))
    args, kwargs = _runtime.bind_json(fn, arguments)
    return _runtime.to_json(_runtime.settle(fn(*args, **kwargs)))


__all__ = [
    "Bundle",
    "bundle_dir",
    "call",
    "load",
    "load_with_manifest",
    "pack",
    "read_manifest",
]
