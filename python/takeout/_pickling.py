"""Pickling the way the bundle will, for analysis.

The analysis pickles with the same cloudpickle settings as `takeout.pack` (protocol 5), but
hands every out-of-band buffer to a callback that drops it: a closure holding a 1 GB array
costs the analysis a few bytes of stream, not a copy of the array. Along the way it records
every function cloudpickle serialises *by value*; those are the code objects whose bytecode
the Rust scanner reads.
"""

from __future__ import annotations

import contextlib
import functools
import io
import pickle
import types
from collections.abc import Iterator
from typing import Any, Callable, Optional

import cloudpickle

from .errors import UnpicklableError

PROTOCOL = 5

try:  # cloudpickle >= 2.0; the one function that says "by value or by reference"
    from cloudpickle.cloudpickle import _should_pickle_by_reference as _by_reference
except ImportError:  # pragma: no cover - older cloudpickle is refused by our requirements
    _by_reference = None
try:
    from cloudpickle.cloudpickle import _extract_code_globals
except ImportError:  # pragma: no cover
    _extract_code_globals = None


def _drop_buffer(_buffer: pickle.PickleBuffer) -> bool:
    # Falsy: the buffer goes out-of-band, i.e. it is not copied into the stream.
    return False


class TakeoutPickler(cloudpickle.Pickler):
    """cloudpickle, plus what notebooks need and cloudpickle refuses.

    `functools.lru_cache`/`functools.cache` wrappers defined in a notebook reduce to a global
    reference (`__main__.fn`) that the loading process cannot resolve, so a wrapper whose
    function travels by value is rebuilt from that function instead (the cache starts empty,
    as it would in a fresh process).
    """

    def __init__(self, file: Any, **kwargs: Any) -> None:
        super().__init__(file, protocol=PROTOCOL, **kwargs)

    def reducer_override(self, obj: Any) -> Any:
        if obj is functools._CacheInfo:
            # A namedtuple whose __qualname__ ("CacheInfo") is not its attribute name, so
            # cloudpickle would copy the class by value; fetch it by attribute instead.
            return (getattr, (functools, "_CacheInfo"))
        if type(obj) is functools._lru_cache_wrapper:
            wrapped = getattr(obj, "__wrapped__", None)
            if isinstance(wrapped, types.FunctionType) and not _pickled_by_reference(obj):
                params = obj.cache_parameters()
                state = {k: v for k, v in obj.__dict__.items()}
                return (
                    functools._lru_cache_wrapper,
                    (wrapped, params["maxsize"], params["typed"], functools._CacheInfo),
                    state,
                )
        return super().reducer_override(obj)


def _pickled_by_reference(obj: Any) -> bool:
    """Would plain pickle find `obj` again by its module and qualname?"""
    import sys

    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    if module is None or getattr(module, "__name__", None) == "__main__":
        return False
    if cloudpickle.cloudpickle._is_registered_pickle_by_value(module):
        return False
    target: Any = module
    for part in str(getattr(obj, "__qualname__", "")).split("."):
        target = getattr(target, part, None)
    return target is obj


class _AnalysisPickler(TakeoutPickler):
    """The takeout pickler, dropping out-of-band buffers and remembering by-value functions."""

    def __init__(self, file: io.BytesIO, by_value: dict[int, types.FunctionType]) -> None:
        super().__init__(file, buffer_callback=_drop_buffer)
        self._by_value = by_value

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is types.FunctionType and id(obj) not in self._by_value:
            if _by_reference is None or not _by_reference(obj):
                self._by_value[id(obj)] = obj
        return super().reducer_override(obj)


def dumps_for_analysis(obj: Any, by_value: Optional[dict[int, types.FunctionType]] = None) -> bytes:
    """Pickle `obj` as the bundle would, without copying out-of-band buffers."""
    buf = io.BytesIO()
    _AnalysisPickler(buf, by_value if by_value is not None else {}).dump(obj)
    return buf.getvalue()


@contextlib.contextmanager
def by_value(module_names: list[str]) -> Iterator[None]:
    """Pickle these (already imported) modules' functions and classes by value, then undo."""
    import sys

    registered = []
    try:
        for name in module_names:
            module = sys.modules[name]
            try:
                cloudpickle.register_pickle_by_value(module)
            except ValueError:  # already registered by the user: leave it to them
                continue
            registered.append(module)
        yield
    finally:
        for module in registered:
            with contextlib.suppress(ValueError):
                cloudpickle.unregister_pickle_by_value(module)


# ── finding what cannot be pickled ──────────────────────────────────────────────────────────


def _can_pickle(obj: Any) -> Optional[BaseException]:
    try:
        dumps_for_analysis(obj)
    except RecursionError as exc:
        return exc
    except Exception as exc:
        return exc
    return None


def _children(obj: Any) -> Iterator[tuple[str, Any]]:
    """Named parts of `obj`, as a person would write the path to them."""
    if isinstance(obj, dict):
        for key, value in list(obj.items())[:10_000]:
            yield f"[{key!r}]", value
        return
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj[:10_000]):
            yield f"[{i}]", value
        return
    if isinstance(obj, (set, frozenset)):
        for value in list(obj)[:10_000]:
            yield f"{{{type(value).__name__}}}", value
        return
    if isinstance(obj, types.FunctionType):
        for name, value in function_parts(obj):
            yield f" → {name}", value
        return
    try:
        attrs = object.__getattribute__(obj, "__dict__")
    except Exception:
        attrs = None
    if isinstance(attrs, dict):
        for key, value in list(attrs.items()):
            yield f".{key}", value
    for attr in ("func", "args", "keywords", "__self__", "__func__", "__wrapped__"):
        try:
            value = object.__getattribute__(obj, attr)
        except Exception:
            continue
        yield f".{attr}", value


def locate_unpicklable(
    roots: list[tuple[str, Any]], prefix: str, failure: BaseException
) -> UnpicklableError:
    """Turn a pickling failure into one sentence that names the path to the culprit."""
    path, exc = prefix, failure
    for label, value in roots:
        err = _can_pickle(value)
        if err is not None:
            path, exc = f"{prefix} → {label}", err
            path, exc = _descend(value, path, exc, depth=0)
            break
    return UnpicklableError(f"{path}: {_describe(exc)}; {_advice(exc)}")


def _descend(obj: Any, path: str, exc: BaseException, depth: int) -> tuple[str, BaseException]:
    if depth >= 50 or isinstance(exc, RecursionError):
        return path, exc
    seen: set[int] = set()
    for label, child in _children(obj):
        if id(child) in seen or child is obj:
            continue
        seen.add(id(child))
        err = _can_pickle(child)
        if err is not None:
            return _descend(child, path + label, err, depth + 1)
    return path, exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deeply to pickle (RecursionError)"
    message = str(exc).strip() or type(exc).__name__
    if isinstance(exc, (TypeError, pickle.PicklingError)) and message.startswith("cannot pickle"):
        return message.replace(" object", "")
    return f"pickling it raised {type(exc).__name__}: {message}"


def _advice(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "flatten the structure or raise sys.setrecursionlimit before packing"
    return "create it inside the function, or capture something picklable instead"


# ── the parts of a function that travel with it ─────────────────────────────────────────────


def function_parts(fn: types.FunctionType) -> Iterator[tuple[str, Any]]:
    """`(label, value)` for every object a by-value function carries: the globals its code
    reads, closure cells, defaults, keyword-only defaults, annotations and attributes."""
    code = fn.__code__
    fn_globals = fn.__globals__
    for name in global_names(code):
        if name in fn_globals:
            yield name, fn_globals[name]
    if fn.__closure__:
        for name, cell in zip(code.co_freevars, fn.__closure__):
            try:
                yield name, cell.cell_contents
            except ValueError:  # an empty cell (a name assigned later)
                continue
    if fn.__defaults__:
        params = code.co_varnames[: code.co_argcount]
        names = params[len(params) - len(fn.__defaults__) :]
        for name, value in zip(names, fn.__defaults__):
            yield f"default of {name}", value
    for name, value in (fn.__kwdefaults__ or {}).items():
        yield f"default of {name}", value
    for name, value in (getattr(fn, "__annotations__", None) or {}).items():
        if not isinstance(value, str):
            yield f"annotation of {name}", value
    for name, value in fn.__dict__.items():
        yield name, value


def global_names(code: types.CodeType) -> list[str]:
    """Names the code (and nested code) reads as globals: the set cloudpickle keeps in the
    pickled function's globals, so reasons name exactly what travels."""
    if _extract_code_globals is not None:
        return list(_extract_code_globals(code))
    # Fallback: every name the code mentions, a superset (attribute names included).
    seen: dict[str, None] = {}
    stack = [code]
    while stack:
        co = stack.pop()
        for name in co.co_names:
            seen.setdefault(name, None)
        stack.extend(c for c in reversed(co.co_consts) if isinstance(c, types.CodeType))
    return list(seen)


def callable_parts(obj: Any) -> list[tuple[str, Any]]:
    """How a non-function callable breaks into parts for reasons: a partial's function and
    arguments, a bound method's instance and function, a wrapper's wrapped function."""
    parts: list[tuple[str, Any]] = []
    getters: list[tuple[str, Callable[[Any], Any]]] = [
        ("func", lambda o: o.func),  # functools.partial
        ("args", lambda o: o.args),
        ("keywords", lambda o: o.keywords),
        ("self", lambda o: o.__self__),  # bound methods
        ("method", lambda o: o.__func__),
        ("wrapped", lambda o: o.__wrapped__),  # functools.wraps, lru_cache
    ]
    for label, get in getters:
        try:
            parts.append((label, get(obj)))
        except Exception:
            continue
    if not parts:
        try:
            attrs = object.__getattribute__(obj, "__dict__")
        except Exception:
            attrs = None
        if isinstance(attrs, dict):
            parts.extend((f".{k}", v) for k, v in attrs.items())
    return parts
