"""What a bundle needs at run time: read its manifest, map its buffers, unpickle it, convert
arguments and results to and from JSON.

This module must import nothing but the standard library: `takeout verify` copies it into a
clean virtual environment that holds only the bundle's lock (and cloudpickle, which the pickle
stream imports by itself), and runs it there as a script. `takeout.load` and the servers use
the same functions, after checking hashes and signature with the Rust core.
"""

from __future__ import annotations

import importlib
import json
import math
import mmap
import os
import pickle
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

try:  # inside takeout; the standalone copy in a clean venv has no takeout to import
    from takeout import _types
    from takeout.errors import BundleError as _BundleError
except ImportError:  # pragma: no cover - exercised by `takeout verify` in the clean venv

    class _BundleError(Exception):  # type: ignore[no-redef]
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
    want = manifest.get("python") or {}
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


def map_buffers(root: Path, manifest: dict[str, Any]) -> list[Any]:
    """The out-of-band buffers, memory-mapped copy-on-write: processes that load the same
    bundle share the pages until one of them writes, and nothing is read until touched."""
    views: list[Any] = []
    for entry in manifest.get("buffers", ()):
        path = root / entry["file"]
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size != entry["size"]:
                raise _BundleError(
                    f"`{entry['file']}` has {size} bytes but the manifest says "
                    f"{entry['size']}; pack the bundle again"
                )
            if size == 0:
                views.append(bytearray())
                continue
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
        views.append(memoryview(mapped))
    return views


def load_function(root: Path, manifest: dict[str, Any]) -> Callable[..., Any]:
    """Unpickle the payload (hashes already checked), register the local modules shipped in
    it and import the submodules the function reaches by attribute."""
    data = (root / PAYLOAD).read_bytes()
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


# ── JSON in: arguments ────────────────────────────────────────────────────────────────────


def bind_json(fn: Callable[..., Any], value: Any) -> tuple[list[Any], dict[str, Any]]:
    """A JSON array is positional arguments, an object keyword arguments, as over HTTP."""
    if isinstance(value, list):
        return value, {}
    if isinstance(value, dict):
        return [], value
    params = _parameters(fn)
    if len(params) == 1:
        return [value], {}
    raise _BundleError(
        "arguments must be a JSON array (positional) or object (keyword), "
        f"not {type(value).__name__}"
    )


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
    return to_json(settle(fn(*example.get("args", ()), **example.get("kwargs", {}))))


# ── standalone: `python -I _runtime.py BUNDLE` in a clean venv ───────────────────────────


def _standalone(root: Path) -> dict[str, Any]:
    import hashlib

    manifest = parse_manifest((root / MANIFEST).read_bytes(), str(root))
    for rel, expected in sorted(manifest.get("files", {}).items()):
        digest = hashlib.sha256()
        with open(root / rel, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        if f"sha256:{digest.hexdigest()}" != expected:
            raise _BundleError(f"`{rel}` does not match its sha256 in manifest.json")
    check_python(manifest)
    fn = load_function(root, manifest)
    fn = converter(fn) or fn
    results = []
    for index, example in enumerate(manifest.get("examples", ())):
        try:
            got = call_example(fn, example)
        except Exception as err:
            results.append({"index": index, "ok": False, "error": _describe(err)})
            continue
        ok = same(got, example.get("output"))
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
