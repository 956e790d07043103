"""What a bundle needs at run time: read its manifest, map its buffers, unpickle it, convert
arguments and results to and from JSON.

This module must import nothing but the standard library: `takeout verify` copies it into a
clean virtual environment that holds only the bundle's lock (and cloudpickle, which the pickle
stream imports by itself), and runs it there as a script. `takeout.load` and the servers use
the same functions, after checking hashes and signature with the Rust core.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import mmap
import os
import pickle
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    import inspect

# Only what every load needs is imported up front: `takeout call` is a fresh process each
# time, and its start-up is budgeted. Modules for rarer types are imported where used.

FORMAT = "takeout/1"
MANIFEST = "manifest.json"
PAYLOAD = "function.pkl"
#: The file name `verify` gives this module in the clean venv; the type table keeps its own
#: name there, beside it, where the standalone copy looks for it.
RUNTIME_FILE = "takeout_runtime.py"
TYPES_FILE = "_types.py"

#: A manifest is a few kB (examples included, tens of kB); past this it is refused unread.
MANIFEST_MAX_BYTES = 16 << 20
#: How deep a manifest's JSON may nest: packing writes at most the depth of an example's
#: arguments, and `json` recurses per level (a RecursionError past about 1,000).
MANIFEST_MAX_DEPTH = 200

try:  # inside takeout; the standalone copy in a clean venv has no takeout to import
    from takeout import _types
    from takeout.errors import BundleError as _BundleError
    from takeout.errors import BundleIntegrityError as _IntegrityError
except ImportError:  # pragma: no cover - exercised by `takeout verify` in the clean venv

    class _BundleError(Exception):  # type: ignore[no-redef]
        pass

    class _IntegrityError(_BundleError):  # type: ignore[no-redef]
        pass

    def _beside(file: str) -> Any:
        # `verify` copies the type table next to this file; `-I` keeps the script's own
        # directory off sys.path, so it is loaded by path.
        import importlib.util

        name = "takeout_types"
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(file))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its NamedTuple and classes resolve their module by name
        spec.loader.exec_module(module)
        return module

    _types = _beside(TYPES_FILE)

NotJSON = _types.NotJSON
to_json = _types.to_json


# ── manifest ──────────────────────────────────────────────────────────────────────────────


def parse_manifest(text: bytes, where: str) -> dict[str, Any]:
    """The manifest as a dict, after checking that it is one of ours and a version we read."""
    depth = _json_depth(text)
    if depth > MANIFEST_MAX_DEPTH:
        raise _IntegrityError(
            f"`{where}/{MANIFEST}` is damaged: its JSON nests {depth} levels deep, more than "
            f"the {MANIFEST_MAX_DEPTH} a manifest can have; pack the bundle again"
        )
    try:
        manifest = json.loads(text)
    except ValueError as err:
        raise _BundleError(
            f"`{where}/{MANIFEST}` is not valid JSON ({err}); pack the bundle again"
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format"), str):
        raise _BundleError(
            f"`{where}` is not a takeout bundle ({MANIFEST} has no `format`); "
            "pass a directory written by `takeout pack`"
        )
    found = manifest["format"]
    if found != FORMAT:
        family, _, _ = found.partition("/")
        if family == "takeout":
            raise _BundleError(
                f"`{where}` has bundle format {found!r} but this takeout reads {FORMAT!r}; "
                "install the takeout version that wrote it, or pack the function again"
            )
        raise _BundleError(
            f"`{where}` is not a takeout bundle (format {found!r}); "
            "pass a directory written by `takeout pack`"
        )
    return manifest


def _json_depth(text: bytes) -> int:
    """The deepest nesting of brackets outside strings: checked before `json.loads`, whose
    recursion would otherwise end in a RecursionError traceback."""
    depth = deepest = 0
    in_string = escaped = False
    # A byte loop over a few kB; the common case (no deep nesting) is decided by the count.
    if text.count(b"[") + text.count(b"{") <= MANIFEST_MAX_DEPTH:
        return 0
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MANIFEST_MAX_DEPTH:
                    return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def python_facts() -> dict[str, Any]:
    """What the manifest records of the interpreter, and what loading compares."""
    impl = sys.implementation.name
    return {
        "implementation": impl,
        "version": "{}.{}.{}".format(*sys.version_info[:3]),
        "minor": f"{sys.version_info[0]}.{sys.version_info[1]}",
    }


_IMPL_NAMES = {"cpython": "CPython", "pypy": "PyPy"}


def check_python(manifest: dict[str, Any]) -> None:
    """Refuse another implementation or minor version: the pickled code objects and C
    extension wheels of the lock are both tied to them."""
    want = manifest.get("python")
    if not (
        isinstance(want, dict)
        and isinstance(want.get("implementation"), str)
        and isinstance(want.get("minor"), str)
    ):
        raise _IntegrityError(
            f"`{MANIFEST}` is damaged: its `python` does not name the implementation and minor "
            "version that packed the bundle; pack the bundle again"
        )
    have = python_facts()
    if (want.get("implementation"), want.get("minor")) != (have["implementation"], have["minor"]):
        want_name = _IMPL_NAMES.get(want.get("implementation", ""), want.get("implementation"))
        have_name = _IMPL_NAMES.get(have["implementation"], have["implementation"])
        raise _BundleError(
            f"bundle `{manifest.get('name')}` was packed with {want_name} {want.get('minor')} "
            f"but this is {have_name} {have['minor']}; load it with {want_name} "
            f"{want.get('minor')}"
        )


# ── loading ───────────────────────────────────────────────────────────────────────────────
#
# Every file is opened once, and what is hashed is exactly what is used: the bytes of
# function.pkl that were hashed are the bytes unpickled, and each buffer is read into private
# anonymous memory while it is hashed. Mapping the file itself (even copy-on-write) would not
# do: on Linux a private mapping's untouched pages still show later writes to the file, so a
# worker's weights could change after their check.

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    # A FIFO opened for reading blocks until a writer comes; non-blocking, the open returns
    # and the type check below refuses it.
    | getattr(os, "O_NONBLOCK", 0)
)
_ROOT_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = _ROOT_FLAGS | getattr(os, "O_NOFOLLOW", 0)
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)
_READ_CHUNK = 8 << 20


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def open_member(root: Path, rel: str) -> int:
    """A descriptor of the regular file `rel` inside the bundle directory `root`.

    Each directory on the way is opened from its parent's descriptor without following a
    symbolic link, and so is the file, so nothing outside the bundle can be reached however
    the tree is changed meanwhile; anything but a regular file (a FIFO, a device, a link) is
    refused in one sentence instead of hanging the loader."""
    parts = rel.split("/")
    if "\0" in rel or any(p in ("", ".", "..") for p in parts):
        raise _IntegrityError(
            f"`{rel!r}` in {MANIFEST} is not a relative path inside the bundle; refusing to "
            "read it, pack the bundle again"
        )
    if os.open not in os.supports_dir_fd:  # pragma: no cover - Windows: no openat
        return _open_checked(str(root / rel), rel, None)
    # The bundle directory itself may be reached through a link (`current -> v3.takeout`):
    # the user named it; what must not be followed is a link inside it.
    parent = os.open(root, _ROOT_FLAGS)
    try:
        for depth, part in enumerate(parts[:-1]):
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=parent)
            except OSError as err:
                raise _member_error("/".join(parts[: depth + 1]), part, parent, err) from None
            os.close(parent)
            parent = child
        return _open_checked(parts[-1], rel, parent)
    finally:
        os.close(parent)


def _open_checked(name: str, rel: str, dir_fd: Optional[int]) -> int:
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        raise _member_error(rel, name, dir_fd, err) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _IntegrityError(
            f"`{rel}` in the bundle is {_kind(mode)}, not a regular file; a bundle holds "
            "regular files only, pack it again"
        )
    return fd


def _member_error(rel: str, name: str, dir_fd: Optional[int], err: OSError) -> Exception:
    import errno

    if err.errno == errno.ENOENT:
        return _IntegrityError(f"`{rel}` is missing from the bundle; pack it again")
    try:
        mode = os.lstat(name, dir_fd=dir_fd).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode):
        return _IntegrityError(
            f"`{rel}` in the bundle is a symbolic link; a bundle holds regular files only "
            "and links are never followed, replace it with the file itself or pack again"
        )
    if err.errno == errno.ENOTDIR:
        return _IntegrityError(
            f"`{rel}` in the bundle is {_kind(mode)}, not a directory; pack the bundle again"
        )
    return _IntegrityError(
        f"`{rel}` could not be read ({err.strerror}); check that the bundle is readable"
    )


def _expected_digest(manifest: dict[str, Any], rel: str) -> str:
    digest = (manifest.get("files") or {}).get(rel)
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise _IntegrityError(
            f"{MANIFEST} lists no sha256 for `{rel}`; every file the loader reads must have "
            "one, pack the bundle again"
        )
    return digest


def _mismatch(rel: str) -> Exception:
    return _IntegrityError(
        f"`{rel}` does not match its sha256 in manifest.json: the bundle was modified after "
        "packing; pack it again"
    )


def read_member(root: Path, rel: str, *, limit: Optional[int] = None) -> bytes:
    """The whole content of `rel`, opened as `open_member` does; past `limit` bytes it is
    refused before it is read."""
    fd = open_member(root, rel)
    with open(fd, "rb", buffering=0, closefd=True) as fh:
        size = os.fstat(fh.fileno()).st_size
        if limit is not None and size > limit:
            raise _IntegrityError(
                f"`{root}/{rel}` has {size:,} bytes, more than the {limit:,} it may have; "
                "pack the bundle again"
            )
        data = fh.read() if limit is None else fh.read(limit + 1)
    if limit is not None and len(data) > limit:  # grew after the fstat
        raise _IntegrityError(f"`{root}/{rel}` is larger than {limit:,} bytes")
    return data


def read_verified(root: Path, rel: str, digest: str) -> bytes:
    """The content of `rel` after checking it against `digest` ("sha256:<hex>"): the very
    bytes that were hashed."""
    data = read_member(root, rel)
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise _mismatch(rel)
    return data


def read_manifest_bytes(root: Path) -> bytes:
    """The bytes of `manifest.json`, opened as every other file of the bundle, and at most
    `MANIFEST_MAX_BYTES` of them."""
    return read_member(root, MANIFEST, limit=MANIFEST_MAX_BYTES)


def _private_memory(size: int) -> Any:
    """Zeroed anonymous memory, page-aligned for numpy, private to this process (a worker
    forked after loading shares the pages until it writes)."""
    flags = getattr(mmap, "MAP_PRIVATE", None)
    if flags is None:  # pragma: no cover - Windows
        return bytearray(size)
    return mmap.mmap(-1, size, flags=flags | getattr(mmap, "MAP_ANONYMOUS", 0x20))


def _read_hashed(fh: Any, view: memoryview, rel: str) -> str:
    """Fill `view` from `fh` and return the sha256 of what was read. Reading the next chunk
    and hashing the last both release the GIL, so a reader thread runs ahead of the hashing
    and a large buffer costs about its hashing time rather than read plus hash."""
    import queue
    import threading

    size = len(view)
    filled: queue.Queue[Any] = queue.Queue()

    def reader() -> None:
        pos = 0
        try:
            while pos < size:
                n = fh.readinto(view[pos : pos + _READ_CHUNK])
                if not n:
                    raise _IntegrityError(
                        f"`{rel}` became shorter while it was read; pack the bundle again"
                    )
                filled.put((pos, n))
                pos += n
            filled.put(None)
        except BaseException as err:  # handed to the hashing side, which raises it
            filled.put(err)

    digest = hashlib.sha256()
    thread = threading.Thread(target=reader, name="takeout-read", daemon=True)
    thread.start()
    try:
        while True:
            item = filled.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            pos, n = item
            digest.update(view[pos : pos + n])
    finally:
        thread.join()
    return "sha256:" + digest.hexdigest()


def map_buffers(root: Path, manifest: dict[str, Any]) -> list[Any]:
    """The out-of-band buffers, each read once into private memory and hashed as it is read;
    the hash is checked against the manifest before the buffer is handed to the unpickler."""
    views: list[Any] = []
    for entry in manifest.get("buffers", ()):
        rel = entry["file"]
        digest = _expected_digest(manifest, rel)
        fd = open_member(root, rel)
        with open(fd, "rb", buffering=0, closefd=True) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size != entry["size"]:
                raise _IntegrityError(
                    f"`{rel}` has {size} bytes but the manifest says "
                    f"{entry['size']}; pack the bundle again"
                )
            memory = _private_memory(size) if size else bytearray()
            view = memoryview(memory)
            if _read_hashed(fh, view, rel) != digest:
                raise _mismatch(rel)
        views.append(view)
    return views


def load_function(root: Path, manifest: dict[str, Any]) -> Callable[..., Any]:
    """Unpickle the payload after checking its sha256 and those of its buffers (on the bytes
    read, not on a second open), register the local modules shipped in it and import the
    submodules the function reaches by attribute."""
    data = read_verified(root, PAYLOAD, _expected_digest(manifest, PAYLOAD))
    payload = pickle.loads(data, buffers=map_buffers(root, manifest))
    fn = payload
    if isinstance(payload, tuple):
        fn, modules = payload
        for module in modules:
            sys.modules.setdefault(module.__name__, module)
    for name in manifest.get("loader_imports", ()):
        importlib.import_module(name)
    if not callable(fn):
        raise _BundleError(
            f"the payload of bundle `{manifest.get('name')}` is a "
            f"{type(fn).__name__}, not a callable; pack a function"
        )
    return fn


def loaded_files(manifest: dict[str, Any]) -> set[str]:
    """The files `load_function` reads, and checks itself on the bytes it reads."""
    return {PAYLOAD, *(b["file"] for b in manifest.get("buffers", ()))}


# ── JSON in: arguments ────────────────────────────────────────────────────────────────────


def bind_json(fn: Callable[..., Any], value: Any) -> tuple[list[Any], dict[str, Any]]:
    """A JSON array is positional arguments, an object keyword arguments, as over HTTP."""
    if isinstance(value, list):
        return value, {}
    if isinstance(value, dict):
        return [], as_identifiers(fn, value)
    params = _parameters(fn)
    if len(params) == 1:
        return [value], {}
    raise _BundleError(
        "arguments must be a JSON array (positional) or object (keyword), "
        f"not {type(value).__name__}"
    )


def as_identifiers(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keywords matched as Python matches identifiers: the source's `𝑥` is the parameter
    `x` (NFKC), so a key spelled as in the source reaches it. Keys that name no parameter
    that way (`**kwargs` extras) stay as given; the server binds by the same rule."""
    if all(k.isascii() for k in kwargs):
        return kwargs
    import unicodedata

    names = {p.name for p in _parameters(fn) if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    out = {}
    for key, value in kwargs.items():
        normal = unicodedata.normalize("NFKC", key)
        out[normal if normal in names else key] = value
    return out


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    import inspect

    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []


def converter(fn: Callable[..., Any]) -> Optional[Callable[..., Any]]:
    """A wrapper that turns JSON-shaped arguments into what `fn` expects, by the type table:
    the annotated types (lists into numpy arrays or tuples, objects into dataclasses or
    pydantic models, ISO strings into datetimes), and tuples where a parameter's default is
    a tuple. Values already of the right type pass through, so the wrapper is harmless for
    Python callers. None for a function without parameters."""
    if not getattr(fn, "__annotations__", None) and not hasattr(fn, "__wrapped__"):
        # Nothing annotated: no need to import inspect and typing (start-up is budgeted).
        if not _has_tuple_default(fn):
            return _hinting(fn) if _takes_arguments(fn) else None
    import inspect
    import typing

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return _hinting(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: defaults still say tuple
        hints = {}
    plans: dict[str, Callable[[Any], Any]] = {}
    var_positional = None
    for param in signature.parameters.values():
        plan = _types.plan(hints[param.name]) if param.name in hints else None
        if plan is None and isinstance(param.default, tuple):
            plan = _like(param.default)
        if plan is None:
            continue
        if param.kind is param.VAR_POSITIONAL:
            var_positional = plan
        elif param.kind is param.VAR_KEYWORD:
            continue
        else:
            plans[param.name] = plan
    if not plans and var_positional is None:
        return _hinting(fn) if signature.parameters else None

    import functools

    @functools.wraps(fn)
    def converting(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            if name in plans:
                bound.arguments[name] = plans[name](value)
            elif var_positional is not None and signature.parameters[name].kind is (
                inspect.Parameter.VAR_POSITIONAL
            ):
                bound.arguments[name] = tuple(var_positional(v) for v in value)
        try:
            return fn(*bound.args, **bound.kwargs)
        except TypeError as err:
            raise _unhashable_hint(fn, err, bound.args, bound.kwargs) from None

    converting.__takeout_wrapped__ = fn  # type: ignore[attr-defined]
    return converting


def _has_tuple_default(fn: Callable[..., Any]) -> bool:
    defaults = (*(getattr(fn, "__defaults__", None) or ()),)
    defaults += (*(getattr(fn, "__kwdefaults__", None) or {}).values(),)
    return any(isinstance(d, tuple) for d in defaults)


def _takes_arguments(fn: Callable[..., Any]) -> bool:
    code = getattr(fn, "__code__", None)
    if code is None:
        return True  # a class, a callable object, a C function: assume so
    has_star = code.co_flags & 0x0C  # CO_VARARGS | CO_VARKEYWORDS
    return bool(code.co_argcount or code.co_kwonlyargcount or has_star)


def _like(default: tuple[Any, ...]) -> Callable[[Any], Any]:
    """A JSON array as a tuple, nested arrays too where the default nests tuples."""
    inner = next((x for x in default if isinstance(x, tuple)), None)
    item = _like(inner) if inner is not None else None
    return lambda v: tuple(item(x) if item else x for x in v) if isinstance(v, list) else v


def _hinting(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, with the hint for a list that reached a hash (a dict key, `lru_cache`)."""
    import functools

    @functools.wraps(fn)
    def hinting(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TypeError as err:
            raise _unhashable_hint(fn, err, args, kwargs) from None

    hinting.__takeout_wrapped__ = fn  # type: ignore[attr-defined]
    return hinting


def _unhashable_hint(
    fn: Callable[..., Any], err: TypeError, args: Any, kwargs: dict[str, Any]
) -> TypeError:
    """JSON has no tuple, so a parameter that is hashed receives a list and fails; name the
    parameters that received arrays and the annotation that makes them tuples."""
    if "unhashable type: 'list'" not in str(err):
        return err
    import inspect

    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return err
    names, fixes = [], []
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            value = next((v for v in value if _holds_list(v)), None)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            continue
        if _holds_list(value):
            names.append(f"`{name}`")
            fixes.append(f"`{name}: {_annotation_for(value)}`")
    if not fixes:
        return err
    if len(names) == 1:
        said = f"parameter {names[0]} received a JSON array, which arrives as a list"
        fix = f"annotate it {fixes[0]} (or give it a tuple default) so it arrives as a tuple"
    else:
        said = f"parameters {', '.join(names)} received JSON arrays, which arrive as lists"
        fix = f"annotate them {', '.join(fixes)} so they arrive as tuples"
    return TypeError(f"{err}: {said}; {fix}")


def _holds_list(value: Any) -> bool:
    if isinstance(value, list):
        return True
    if isinstance(value, dict):
        return any(_holds_list(v) for v in value.values())
    return False


def _annotation_for(value: Any) -> str:
    """The annotation of a JSON value, arrays as tuples: `[[1, 2]]` is
    `tuple[tuple[int, ...], ...]`."""
    if isinstance(value, list):
        items = {_annotation_for(v) for v in value}
        return f"tuple[{items.pop() if len(items) == 1 else 'Any'}, ...]"
    if isinstance(value, dict):
        values = {_annotation_for(v) for v in value.values()}
        return f"dict[str, {values.pop() if len(values) == 1 else 'Any'}]"
    return "None" if value is None else type(value).__name__


# ── JSON out: results ─────────────────────────────────────────────────────────────────────


def same(got: Any, want: Any, rel: float = 1e-6, abs_: float = 1e-9) -> bool:
    """JSON values equal, numbers within a tolerance (bit-for-bit float equality across
    BLAS builds is not something a user can promise)."""
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(got, want, rel_tol=rel, abs_tol=abs_)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(same(g, w, rel, abs_) for g, w in zip(got, want))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(same(got[k], want[k], rel, abs_) for k in want)
    return bool(got == want)


#: How `verify` compares an example's output with the recorded one: `exact` (numbers within
#: a tolerance), `shape` (the same JSON kinds, list lengths and object keys all the way down:
#: for results that vary, such as random simulations) or `type` (the same JSON kind).
EXAMPLE_CHECKS = ("exact", "shape", "type")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return repr(value) if value is None else "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def matches(got: Any, want: Any, check: str = "exact") -> bool:
    """`got` passes the example check `check` against the recorded `want`."""
    if check == "exact":
        return same(got, want)
    if _json_kind(got) != _json_kind(want):
        return False
    if check == "type":
        return True
    if isinstance(want, list):
        return len(got) == len(want) and all(matches(g, w, check) for g, w in zip(got, want))
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(matches(got[k], want[k], check) for k in want)
    return True


def settle(result: Any) -> Any:
    """What a call returns once it is done, as the server sees it: an `async def` function's
    coroutine is awaited, a generator's items (sync or async) are collected into a list."""
    import inspect

    if inspect.iscoroutine(result):
        return _run_async(result)
    if inspect.isasyncgen(result):

        async def collect() -> list[Any]:
            return [item async for item in result]

        return _run_async(collect())
    if inspect.isgenerator(result):
        return list(result)
    return result


def _run_async(coro: Any) -> Any:
    """Run a coroutine to completion; in a thread of its own when this thread already runs an
    event loop (a Jupyter cell does), where `asyncio.run` refuses."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def call_example(fn: Callable[..., Any], example: dict[str, Any]) -> Any:
    """Call with an example's JSON arguments, as the server would, and return JSON."""
    kwargs = as_identifiers(fn, example.get("kwargs", {}))
    return to_json(settle(fn(*example.get("args", ()), **kwargs)))


# ── batch functions, one item at a time ──────────────────────────────────────────────────


class BatchResultError(Exception):
    """A batch function returned something other than one result per item."""


def batch_results(result: Any, items: int) -> list[Any]:
    """The per-item results of a batch call (a list, tuple, numpy array, pandas Series...):
    the same rule, and the same sentences, as the server's batcher."""
    if isinstance(result, (str, bytes, dict)) or not hasattr(result, "__len__"):
        raise BatchResultError(
            f"the batch function returned `{type(result).__name__}`, not a sequence; return "
            "a list (or numpy array, pandas Series) with one result per item"
        )
    got = len(result)
    if got != items:
        raise BatchResultError(
            f"the batch function returned {_count(got, 'result')} for {_count(items, 'item')}; "
            "return one result per item, in order"
        )
    return list(result)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def one_item(fn: Callable[..., Any], batch: Optional[dict[str, Any]]) -> Callable[..., Any]:
    """`fn` as a function of one item when the manifest's `batch` says it takes a list: what
    `takeout call`, the recorded examples and verify call, so they see the API clients see."""
    if not batch:
        return fn
    import functools

    name = batch.get("parameter")

    # `wraps`: the signature seen through it is the function's, whose first parameter now
    # takes one item, so a lone JSON value still binds to a one-parameter function.
    @functools.wraps(fn)
    def single(*args: Any, **kwargs: Any) -> Any:
        if args:
            args = ([args[0]], *args[1:])
        elif name in kwargs:
            kwargs[name] = [kwargs[name]]
        return batch_results(fn(*args, **kwargs), 1)[0]

    return single


# ── standalone: `python -I _runtime.py BUNDLE` in a clean venv ───────────────────────────


def _standalone(root: Path) -> dict[str, Any]:
    manifest = parse_manifest(read_manifest_bytes(root), str(root))
    loaded = loaded_files(manifest)
    for rel, expected in sorted(manifest.get("files", {}).items()):
        if rel not in loaded:  # those are checked by load_function as it reads them
            read_verified(root, rel, expected)
    check_python(manifest)
    fn = load_function(root, manifest)
    fn = one_item(converter(fn) or fn, manifest.get("batch"))
    results = []
    for index, example in enumerate(manifest.get("examples", ())):
        try:
            got = call_example(fn, example)
        except Exception as err:
            results.append({"index": index, "ok": False, "error": _describe(err)})
            continue
        ok = matches(got, example.get("output"), example.get("check", "exact"))
        results.append({"index": index, "ok": ok, "output": got})
    return {"loaded": True, "examples": results}


def _describe(err: BaseException) -> dict[str, Any]:
    described: dict[str, Any] = {"type": type(err).__name__, "message": str(err)}
    if isinstance(err, ImportError) and err.name:
        described["module"] = err.name
    return described


def main(argv: list[str]) -> int:
    """`python -I _runtime.py BUNDLE RESULT.json`: the result goes to a file of its own, so
    whatever the function prints cannot garble it."""
    try:
        out = _standalone(Path(argv[1]))
    except BaseException as err:  # report, never a traceback: the parent explains it
        out = {"loaded": False, "error": _describe(err)}
    Path(argv[2]).write_text(json.dumps(out), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
