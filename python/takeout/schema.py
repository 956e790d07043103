"""The function's signature as the manifest records it: parameters and a JSON Schema
(draft 2020-12) derived from annotations, which the server validates against and
`/openapi.json` publishes.

Unannotated parameters accept any JSON (`{}`). Classes that need a name (dataclasses,
TypedDicts, pydantic models, enums) go to `$defs` and are referenced, so recursive types
terminate.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import datetime as dt
import decimal
import enum
import inspect
import json
import typing
import uuid
from pathlib import PurePath
from typing import Any, Callable

_SCALARS: dict[Any, dict[str, Any]] = {
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    float: {"type": "number"},
    complex: {},
    str: {"type": "string"},
    bytes: {"type": "string"},
    type(None): {"type": "null"},
    dt.datetime: {"type": "string", "format": "date-time"},
    dt.date: {"type": "string", "format": "date"},
    dt.time: {"type": "string", "format": "time"},
    dt.timedelta: {"type": "number", "description": "seconds"},
    decimal.Decimal: {"type": "number"},
    uuid.UUID: {"type": "string", "format": "uuid"},
}

# Nested arrays of numbers of any depth: what `ndarray.tolist()` produces.
_NDARRAY_DEF = {
    "type": "array",
    "items": {
        "anyOf": [
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
            {"$ref": "#/$defs/ndarray"},
        ]
    },
}


def describe(fn: Callable[..., Any]) -> dict[str, Any]:
    """The manifest's `function` entry (without qualname/module, which the caller adds)."""
    target = inspect.unwrap(fn) if inspect.isfunction(fn) else fn
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: describe what we can
        hints = {}
    builder = _Builder()
    parameters = []
    properties: dict[str, Any] = {}
    required: list[str] = []
    extra_keywords = False
    if signature is not None:
        for param in signature.parameters.values():
            schema = builder.schema(hints[param.name]) if param.name in hints else {}
            entry: dict[str, Any] = {
                "name": param.name,
                "kind": param.kind.name,
                "required": param.default is param.empty
                and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD),
                "schema": schema,
            }
            if param.default is not param.empty and _is_json(param.default):
                entry["default"] = param.default
            parameters.append(entry)
            if param.kind is param.VAR_KEYWORD:
                extra_keywords = True
            elif param.kind is param.VAR_POSITIONAL:
                continue
            elif param.kind is not param.POSITIONAL_ONLY:
                prop = dict(schema)
                if "default" in entry:
                    prop["default"] = entry["default"]
                properties[param.name] = prop
                if entry["required"]:
                    required.append(param.name)
    object_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        object_schema["required"] = required
    if not extra_keywords:
        object_schema["additionalProperties"] = False
    returns = builder.schema(hints["return"]) if "return" in hints else {}
    if builder.defs:
        object_schema["$defs"] = builder.defs
    return {
        "signature": str(signature) if signature is not None else "(...)",
        "doc": inspect.getdoc(target),
        "is_async": inspect.iscoroutinefunction(target),
        "is_generator": inspect.isgeneratorfunction(target),
        "parameters": parameters,
        "schema": object_schema,
        "returns": returns,
    }


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


class _Builder:
    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}
        self.names: dict[Any, str] = {}

    def schema(self, tp: Any) -> dict[str, Any]:
        if tp is Any or tp is object or tp is inspect.Parameter.empty:
            return {}
        if tp in _SCALARS:
            return dict(_SCALARS[tp])
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Union or type(tp).__name__ == "UnionType":
            return {"anyOf": [self.schema(a) for a in args]}
        if origin is typing.Literal:
            return _enum(args)
        if _is_annotated(tp):
            return self.schema(args[0])
        if origin in (list, cabc.Sequence, cabc.MutableSequence, cabc.Iterable, cabc.Collection):
            return {"type": "array", "items": self.schema(args[0]) if args else {}}
        if origin in (set, frozenset, cabc.Set, cabc.MutableSet):
            return {
                "type": "array",
                "uniqueItems": True,
                "items": self.schema(args[0]) if args else {},
            }
        if origin is tuple:
            if not args:
                return {"type": "array"}
            if args[-1] is Ellipsis:
                return {"type": "array", "items": self.schema(args[0])}
            if args == ((),):
                return {"type": "array", "maxItems": 0}
            return {
                "type": "array",
                "prefixItems": [self.schema(a) for a in args],
                "minItems": len(args),
                "maxItems": len(args),
            }
        if origin in (dict, cabc.Mapping, cabc.MutableMapping):
            return {
                "type": "object",
                "additionalProperties": self.schema(args[1]) if len(args) == 2 else {},
            }
        if tp in (list, tuple, set, frozenset):
            return {"type": "array"}
        if tp is dict:
            return {"type": "object"}
        if _numpy_array(tp):
            return self._ref("ndarray", lambda: _NDARRAY_DEF)
        if not isinstance(tp, type):
            return {}
        if issubclass(tp, enum.Enum):
            return self._ref(tp, lambda: _enum([m.value for m in tp]))
        if issubclass(tp, PurePath):
            return {"type": "string"}
        if dataclasses.is_dataclass(tp):
            return self._ref(tp, lambda: self._dataclass(tp))
        if issubclass(tp, dict) and hasattr(tp, "__required_keys__"):
            return self._ref(tp, lambda: self._typeddict(tp))
        if _is_pydantic(tp):
            return self._pydantic(tp)
        module = tp.__module__.split(".")[0]
        if module == "pandas" and tp.__name__ == "DataFrame":
            return {"type": "array", "items": {"type": "object"}}
        if module == "pandas" and tp.__name__ == "Series":
            return {"type": "array"}
        if module == "numpy" and issubclass(tp, _numpy_generic()):
            if issubclass(tp, _numpy_bool()):
                return {"type": "boolean"}
            if issubclass(tp, _numpy_integer()):
                return {"type": "integer"}
            return {"type": "number"}
        for base, schema in _SCALARS.items():  # subclasses such as IntEnum were taken above
            if isinstance(base, type) and issubclass(tp, base) and base is not object:
                return dict(schema)
        return {}

    def _ref(self, key: Any, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """A `$ref` to the definition of `key` (a class, or a fixed name), built once. Two
        classes with the same `__name__` get distinct names."""
        name = self.names.get(key)
        if name is None:
            base = key if isinstance(key, str) else key.__name__
            name, n = base, 1
            while name in self.defs:
                n += 1
                name = f"{base}{n}"
            self.names[key] = name
            self.defs[name] = {}  # placeholder first: a recursive type refers to itself
            self.defs[name] = build()
        return {"$ref": f"#/$defs/{name}"}

    def _dataclass(self, tp: type) -> dict[str, Any]:
        try:
            # The class itself as a local name: a recursive string annotation resolves even
            # when its module is not where it was defined (a notebook cell's namespace).
            hints = typing.get_type_hints(tp, localns={tp.__name__: tp})
        except Exception:
            hints = {}
        properties = {}
        required = []
        for f in dataclasses.fields(tp):
            if not f.init:
                continue
            properties[f.name] = self.schema(hints.get(f.name, Any))
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(f.name)
        out: dict[str, Any] = {
            "type": "object",
            "title": tp.__name__,
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            out["required"] = required
        return out

    def _typeddict(self, tp: Any) -> dict[str, Any]:
        try:
            # The class itself as a local name: a recursive string annotation resolves even
            # when its module is not where it was defined (a notebook cell's namespace).
            hints = typing.get_type_hints(tp, localns={tp.__name__: tp})
        except Exception:  # unresolvable forward references: keys known, values any JSON
            hints = dict.fromkeys(getattr(tp, "__annotations__", {}), Any)
        out: dict[str, Any] = {
            "type": "object",
            "title": tp.__name__,
            "properties": {k: self.schema(v) for k, v in hints.items()},
            "additionalProperties": False,
        }
        required = sorted(tp.__required_keys__)
        if required:
            out["required"] = required
        return out

    def _pydantic(self, tp: Any) -> dict[str, Any]:
        # pydantic's own generator knows its validators and aliases; lift its $defs into
        # ours so every $ref resolves from the schema root.
        schema = tp.model_json_schema(ref_template="#/$defs/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            self.defs.setdefault(name, sub)
        self.defs.setdefault(tp.__name__, schema)
        return {"$ref": f"#/$defs/{tp.__name__}"}


def _enum(values: Any) -> dict[str, Any]:
    """`{"enum": [...]}` of the values' JSON forms (an enum member as its value), or any JSON
    when some value has none."""
    from ._runtime import to_json

    try:
        return {"enum": [to_json(v.value if isinstance(v, enum.Enum) else v) for v in values]}
    except TypeError:
        return {}


def _is_annotated(tp: Any) -> bool:
    return hasattr(tp, "__metadata__") and typing.get_origin(tp) is not None


def _is_pydantic(tp: type) -> bool:
    return hasattr(tp, "model_json_schema") and any(
        c.__module__.startswith("pydantic") for c in tp.__mro__[1:]
    )


def _numpy_array(tp: Any) -> bool:
    target = typing.get_origin(tp) or tp
    alias = getattr(target, "__value__", None)  # a 3.12 `type` alias: numpy's NDArray there
    if alias is not None:
        target = typing.get_origin(alias) or alias
    return (
        isinstance(target, type)
        and target.__module__.split(".")[0] == "numpy"
        and target.__name__ == "ndarray"
    )


def _numpy_generic() -> type:
    import numpy

    return numpy.generic


def _numpy_integer() -> type:
    import numpy

    return numpy.integer


def _numpy_bool() -> type:
    import numpy

    return numpy.bool_
