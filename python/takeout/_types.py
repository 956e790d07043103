"""The one table of types: for each type takeout supports, its JSON Schema, how a JSON value
becomes an argument of that type, and how a result of that type becomes JSON.

Every direction is a lookup in `TABLE`: `schema.describe` builds JSON Schemas with `Builder`,
`_runtime.converter` turns JSON arguments into annotated types with `plan`, `_runtime.to_json`
(`takeout call`, pack's recorded outputs, `verify`) walks results with `plain`, and the Rust
encoder of `takeout serve` and ASGI writes JSON's own types itself and asks `plain` (and `key`)
for everything else, so the two encoders cannot give different answers. Adding a type is one
`Entry` here; the conformance table in the tests runs each result type through every path.

Standard library only, and nothing optional is imported here: `takeout verify` copies this
file beside `_runtime.py` into a clean venv. numpy, pandas, polars and pydantic are recognised
by the module of a value's or annotation's class, which means the library is already imported.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Callable, NamedTuple, Optional

#: Deeper than this, a result is almost surely a cycle (`a = []; a.append(a)`); the Rust
#: encoder has the same limit.
MAX_DEPTH = 200

Plan = Callable[[Any], Any]


class NotJSON(TypeError):
    """A value with no JSON form. `kind` is its type, `why` what is wrong with it there,
    `path` where it sits (`[2]`, `.x`, `["b c"]`), `root` what the path starts from."""

    def __init__(self, kind: str, why: str = "", suffix: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.why = why
        self.path: list[Any] = []
        self.suffix = suffix  # `{key}` when the key, not the value, has no JSON form
        self.root = "result"

    def where(self) -> str:
        text = "".join(_segment(s) for s in self.path)
        if len(text) > 80:  # the same cut as the Rust encoder's
            text = text[:80] + "…"
        return self.root + text + self.suffix

    def __str__(self) -> str:
        if self.root == "result":
            return (
                f"the function returned `{self.kind}{self.why}` at `{self.where()}`, which has "
                "no JSON form; return lists, dicts, numbers, strings, numpy or pandas objects, "
                "or dataclasses"
            )
        return f"`{self.kind}{self.why}` at `{self.where()}` has no JSON form"


def _segment(seg: Any) -> str:
    if isinstance(seg, int):
        return f"[{seg}]"
    if seg.isidentifier():
        return f".{seg}"
    import json

    return f"[{json.dumps(seg, ensure_ascii=False)}]"


def type_name(cls: type) -> str:
    """`module.QualName`, `builtins` left out: how errors name a type on every path."""
    module = getattr(cls, "__module__", "builtins")
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _library(cls: Any) -> str:
    return str(getattr(cls, "__module__", "") or "").split(".")[0]


# ── the table ─────────────────────────────────────────────────────────────────────────────


class Entry(NamedTuple):
    """One supported type. `annotation(tp)` and `value(cls)` say whether the entry applies to
    an annotation or to a result's class; `schema(tp, builder)` is its JSON Schema,
    `argument(tp)` turns a JSON value into it (None: JSON values already are fine), and
    `result(value)` takes one step toward JSON (the walk goes on with what it returns)."""

    name: str
    annotation: Callable[[Any], bool]
    schema: Callable[[Any, Builder], dict[str, Any]]
    argument: Callable[[Any], Optional[Plan]]
    value: Callable[[type], bool]
    result: Callable[[Any], Any]


def _never(_: Any) -> bool:
    return False


def _no_plan(_: Any) -> Optional[Plan]:
    return None


def _no_result(value: Any) -> Any:
    raise NotJSON(type_name(type(value)))


def _any_schema(_tp: Any, _builder: Builder) -> dict[str, Any]:
    return {}


def _fixed(schema: dict[str, Any]) -> Callable[[Any, Builder], dict[str, Any]]:
    return lambda _tp, _builder: dict(schema)


def _is(*names: str) -> Callable[[Any], bool]:
    """An annotation that is one of the named classes (`module.name`) or a subclass."""

    def test(tp: Any) -> bool:
        return _is_class(tp) and any(_qual(c) in names for c in tp.__mro__)

    return test


def _is_class(tp: Any) -> bool:
    # `list[int]` passes `isinstance(tp, type)` on 3.9 and 3.10; it is a generic, not a class.
    return isinstance(tp, type) and _origin(tp) is None


def _qual(cls: type) -> str:
    return f"{cls.__module__}.{cls.__name__}"


def _origin(tp: Any) -> Any:
    import typing

    return typing.get_origin(tp)


def _args(tp: Any) -> tuple[Any, ...]:
    import typing

    return typing.get_args(tp)


def _finite(number: float) -> Optional[float]:
    return number if math.isfinite(number) else None


def _missing(value: Any) -> bool:
    # NaT, NaN Decimals and pandas' NA are not equal to themselves (NA's == is NA: falsy).
    try:
        return not bool(value == value)
    except TypeError:
        return True


def _unless_typed(cls: Any, convert: Plan) -> Plan:
    """`convert` for JSON values; values already of the class pass through, so a converting
    wrapper is harmless for Python callers."""
    return lambda v: v if isinstance(v, cls) else convert(v)


# Scalars of the standard library: one row each (JSON Schema, JSON → value, value → JSON).


def _iso_row(name: str, form: str) -> Entry:
    """`datetime.datetime`, `.date`, `.time`: ISO 8601 text both ways."""
    return Entry(
        name,
        _is(f"datetime.{name}"),
        _fixed({"type": "string", "format": form}),
        _iso_in,
        _result_of(f"datetime.{name}"),
        _iso_out,
    )


def _iso_in(tp: Any) -> Plan:
    return lambda v: tp.fromisoformat(_z(v)) if isinstance(v, str) else v


def _z(text: str) -> str:
    # fromisoformat accepts a trailing Z only from 3.11 on.
    return text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text


def _iso_out(value: Any) -> Any:
    return None if _missing(value) else value.isoformat()  # pandas' NaT too


def _seconds_out(value: Any) -> Any:  # pandas.Timedelta too: seconds, as the schema says
    return None if _missing(value) else _finite(value.total_seconds())


def _seconds_in(tp: Any) -> Plan:
    import datetime as dt

    return lambda v: dt.timedelta(seconds=v) if isinstance(v, (int, float)) else v


def _decimal_in(tp: Any) -> Plan:
    import decimal

    return lambda v: decimal.Decimal(str(v)) if isinstance(v, (int, float, str)) else v


def _decimal_out(value: Any) -> Any:
    # A string of the Decimal's own digits (`"1.10"`), NaN and ±Infinity as null. Chosen over
    # a JSON number because a Decimal exists to keep its digits: as a float it would round
    # past 17 digits, and Python's json cannot write a number's own digits, so `takeout call`
    # could never match a server that did. It is also what pydantic writes for a Decimal
    # field, so a Decimal reads the same alone and inside a model.
    return str(value) if value.is_finite() else None


_DECIMAL_SCHEMA = {
    "anyOf": [
        {"type": "number"},
        {"type": "string", "pattern": r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$"},
    ]
}


def _bytes_in(tp: Any) -> Plan:
    import base64

    return lambda v: tp(base64.b64decode(v, validate=True)) if isinstance(v, str) else v


def _bytes_out(value: Any) -> Any:
    # Base64, whatever the bytes: as UTF-8 text (what the server used to write) the same
    # type would be a string for some values and an error for others (any PNG, any pickle),
    # and base64 is what JSON Schema's `contentEncoding` and OpenAPI 3.1 describe.
    import base64

    return base64.b64encode(bytes(value)).decode("ascii")


def _enum_schema(tp: Any, builder: Builder) -> dict[str, Any]:
    return builder.ref(tp, lambda: _enum(list(tp)))


def _enum(values: Any) -> dict[str, Any]:
    """`{"enum": [...]}` of the values' JSON forms, or any JSON when some value has none."""
    try:
        return {"enum": [to_json(v) for v in values]}
    except NotJSON:
        return {}


def _enum_in(tp: Any) -> Plan:
    by_json = _by_json_form(tp)
    return _unless_typed(tp, lambda v: by_json.get(v) or tp(v) if _hashable(v) else tp(v))


def _by_json_form(members: Any) -> dict[Any, Any]:
    """Members (of an enum, a Literal) by the JSON form they are published with, so the
    value that arrives is the one `/openapi.json` listed (a date member as its ISO text)."""
    found = {}
    for member in members:
        try:
            form = to_json(member)
            found[form] = member
        except (NotJSON, TypeError):  # no JSON form, or an unhashable one (a list)
            continue
    return found


def _hashable(v: Any) -> bool:
    return isinstance(v, (str, int, float)) or v is None


def _sorted(items: Any) -> list[Any]:
    """A set's items sorted when they compare (so the same set gives the same JSON), in
    iteration order otherwise."""
    try:
        return sorted(items)
    except TypeError:
        return list(items)


# Containers: their items' plans and schemas are lookups in the table too.

_SEQUENCES = (
    "list",
    "collections.abc.Sequence",
    "collections.abc.MutableSequence",
    "collections.abc.Iterable",
    "collections.abc.Collection",
)
_SETS = ("set", "frozenset", "collections.abc.Set", "collections.abc.MutableSet")
_MAPPINGS = ("dict", "collections.abc.Mapping", "collections.abc.MutableMapping")


def _generic(*names: str) -> Callable[[Any], bool]:
    """A parametrised (`list[int]`) or bare (`list`) standard container."""

    def test(tp: Any) -> bool:
        target = _origin(tp) or tp
        if not isinstance(target, type):
            return False
        name = target.__name__ if target.__module__ == "builtins" else _qual(target)
        return name in names

    return test


def _sequence_schema(tp: Any, builder: Builder) -> dict[str, Any]:
    if _origin(tp) is None:
        return {"type": "array"}
    args = _args(tp)
    return {"type": "array", "items": builder.schema(args[0]) if args else {}}


def _sequence_in(tp: Any) -> Optional[Plan]:
    args = _args(tp)
    item = plan(args[0]) if args else None
    if item is None:
        return None  # a JSON array already is a list
    return lambda v: [item(x) for x in v] if isinstance(v, list) else v


def _set_schema(tp: Any, builder: Builder) -> dict[str, Any]:
    if _origin(tp) is None:
        return {"type": "array"}
    args = _args(tp)
    return {"type": "array", "uniqueItems": True, "items": builder.schema(args[0]) if args else {}}


def _set_in(tp: Any) -> Plan:
    args = _args(tp)
    item = plan(args[0]) if args else None
    container = frozenset if (_origin(tp) or tp) is frozenset else set
    return lambda v: container(item(x) if item else x for x in v) if isinstance(v, list) else v


def _tuple_schema(tp: Any, builder: Builder) -> dict[str, Any]:
    args = _args(tp)
    if not args:
        return {"type": "array"}
    if args[-1] is Ellipsis:
        return {"type": "array", "items": builder.schema(args[0])}
    if args == ((),):
        return {"type": "array", "maxItems": 0}
    return {
        "type": "array",
        "prefixItems": [builder.schema(a) for a in args],
        "minItems": len(args),
        "maxItems": len(args),
    }


def _tuple_in(tp: Any) -> Plan:
    """JSON has no tuple: an array becomes one where the annotation says tuple."""
    args = _args(tp)
    if args and args[-1] is not Ellipsis and args != ((),):  # tuple[int, str]
        plans = [plan(a) for a in args]

        def fixed(v: Any) -> Any:
            if not isinstance(v, list):
                return v
            if len(v) != len(plans):
                raise TypeError(f"expected {len(plans)} items, got {len(v)}")
            return tuple(p(x) if p else x for p, x in zip(plans, v))

        return fixed
    item = plan(args[0]) if args and args != ((),) else None
    return lambda v: tuple(item(x) if item else x for x in v) if isinstance(v, list) else v


def _mapping_schema(tp: Any, builder: Builder) -> dict[str, Any]:
    args = _args(tp)
    if _origin(tp) is None:
        return {"type": "object"}
    return {"type": "object", "additionalProperties": builder.schema(args[1]) if args else {}}


def _mapping_in(tp: Any) -> Optional[Plan]:
    args = _args(tp)
    value_plan = plan(args[1]) if len(args) == 2 else None
    if value_plan is None:
        return None
    return lambda v: {k: value_plan(x) for k, x in v.items()} if isinstance(v, dict) else v


def _mapping_out(value: Any) -> Any:
    # Any Mapping is a JSON object (a `MappingProxyType`, a `ChainMap`, a custom class), as a
    # dict subclass always was: the protocol promises keys and values, which is all JSON has.
    return dict(value.items())


# Typing forms: annotations only.


def _is_union(tp: Any) -> bool:
    import typing

    return _origin(tp) is typing.Union or type(tp).__name__ == "UnionType"


def _union_schema(tp: Any, builder: Builder) -> dict[str, Any]:
    return {"anyOf": [builder.schema(a) for a in _args(tp)]}


def _union_in(tp: Any) -> Optional[Plan]:
    real = [a for a in _args(tp) if a is not type(None)]
    if len(real) != 1:
        return None  # which member a JSON value means is not ours to guess
    one = plan(real[0])
    if one is None:
        return None
    return lambda v: None if v is None else one(v)


def _is_literal(tp: Any) -> bool:
    import typing

    return _origin(tp) is typing.Literal


def _literal_schema(tp: Any, _builder: Builder) -> dict[str, Any]:
    return _enum(_args(tp))  # an enum member as its value, bytes as base64: their JSON forms


def _literal_in(tp: Any) -> Optional[Plan]:
    """`Literal[Color.RED, b"x"]`: the member whose JSON form arrived (JSON's own scalars
    arrive as themselves)."""
    by_json = {k: m for k, m in _by_json_form(_args(tp)).items() if k is not m}
    if not by_json:
        return None
    return lambda v: by_json.get(v, v) if _hashable(v) else v


def _is_annotated(tp: Any) -> bool:
    return hasattr(tp, "__metadata__") and _origin(tp) is not None


def _is_any(tp: Any) -> bool:
    import typing

    inspect = sys.modules.get("inspect")
    empty = inspect.Parameter.empty if inspect else None
    return tp is typing.Any or tp is object or (empty is not None and tp is empty)


# Classes the user defines.


def _is_dataclass_type(tp: Any) -> bool:
    import dataclasses

    return _is_class(tp) and dataclasses.is_dataclass(tp)


def _dataclass_schema(tp: Any, builder: Builder) -> dict[str, Any]:
    def build() -> dict[str, Any]:
        import dataclasses

        hints = _hints(tp)
        properties = {}
        required = []
        for f in dataclasses.fields(tp):
            if not f.init:
                continue
            properties[f.name] = builder.schema(hints.get(f.name, Any))
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

    return builder.ref(tp, build)


_BUILDING: dict[Any, dict[str, Any]] = {}


def _dataclass_in(tp: Any) -> Plan:
    import dataclasses

    if tp in _BUILDING:  # a recursive type (`children: list[Node]`): the plan being built
        fields_of_outer = _BUILDING[tp]
        return lambda v: _build_dataclass(tp, fields_of_outer, v)
    fields: dict[str, Any] = {}
    _BUILDING[tp] = fields
    try:
        hints = _hints(tp)
        for f in dataclasses.fields(tp):
            fields[f.name] = plan(hints.get(f.name, Any))
    finally:
        del _BUILDING[tp]
    return lambda v: _build_dataclass(tp, fields, v)


def _build_dataclass(tp: Any, fields: dict[str, Any], v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    return tp(**{k: fields[k](x) if fields.get(k) else x for k, x in v.items()})


def _dataclass_out(value: Any) -> Any:
    import dataclasses

    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def _hints(tp: Any) -> dict[str, Any]:
    import typing

    try:
        # The class itself as a local name: a recursive string annotation resolves even when
        # its module is not where it was defined (a notebook cell's namespace).
        return typing.get_type_hints(tp, localns={tp.__name__: tp})
    except Exception:  # unresolvable forward references: fields known, values any JSON
        return dict.fromkeys(getattr(tp, "__annotations__", {}), Any)


def _is_typeddict(tp: Any) -> bool:
    return _is_class(tp) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _typeddict_schema(tp: Any, builder: Builder) -> dict[str, Any]:
    def build() -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "object",
            "title": tp.__name__,
            "properties": {k: builder.schema(v) for k, v in _hints(tp).items()},
            "additionalProperties": False,
        }
        required = sorted(tp.__required_keys__)
        if required:
            out["required"] = required
        return out

    return builder.ref(tp, build)


def _typeddict_in(tp: Any) -> Optional[Plan]:
    plans = {k: p for k, p in ((k, plan(t)) for k, t in _hints(tp).items()) if p}
    if not plans:
        return None
    return lambda v: (
        {k: plans[k](x) if k in plans else x for k, x in v.items()} if isinstance(v, dict) else v
    )


def _is_pydantic_model(tp: Any) -> bool:
    return (
        _is_class(tp)
        and hasattr(tp, "model_validate")
        and hasattr(tp, "model_json_schema")
        and any(_library(c) == "pydantic" for c in tp.__mro__[1:])
    )


def _pydantic_schema(tp: Any, builder: Builder) -> dict[str, Any]:
    # pydantic's own generator knows its validators and aliases; lift its $defs into ours so
    # every $ref resolves from the schema root.
    schema = tp.model_json_schema(ref_template="#/$defs/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        builder.defs.setdefault(name, sub)
    builder.defs.setdefault(tp.__name__, schema)
    return {"$ref": f"#/$defs/{tp.__name__}"}


def _pydantic_value(cls: type) -> bool:
    return callable(getattr(cls, "model_dump", None)) and any(
        _library(c) == "pydantic" for c in cls.__mro__[1:]
    )


# numpy: recognised by module; numpy itself is never imported here.

_NDARRAY_DEF = {  # nested arrays of numbers of any depth: what `ndarray.tolist()` produces
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


def _ndarray_target(tp: Any) -> tuple[Any, Any]:
    """(`numpy.ndarray` or None, the dtype's scalar class or None) of an annotation:
    `np.ndarray`, `npt.NDArray[np.float32]`, `np.ndarray[Any, np.dtype[np.int64]]`."""
    origin = _origin(tp) or tp
    args = _args(tp)
    alias = getattr(origin, "__value__", None)
    if alias is not None:  # a 3.12 `type` alias (numpy's NDArray there): NDArray[np.float32]
        origin = _origin(alias) or alias
        dtype = args[0] if args and isinstance(args[0], type) else None
    else:
        dtype = None
        if len(args) == 2:
            dtype_args = _args(args[1])
            if dtype_args and isinstance(dtype_args[0], type):
                dtype = dtype_args[0]
    if isinstance(origin, type) and _qual(origin) == "numpy.ndarray":
        return origin, dtype
    return None, None


def _is_ndarray(tp: Any) -> bool:
    return _ndarray_target(tp)[0] is not None


def _ndarray_in(tp: Any) -> Plan:
    ndarray, dtype = _ndarray_target(tp)
    numpy = sys.modules["numpy"]
    return _unless_typed(ndarray, lambda v: numpy.asarray(v, dtype=dtype))


def _is_numpy_scalar(tp: Any) -> bool:
    return _is("numpy.generic")(tp)


def _numpy_scalar_schema(tp: Any, _builder: Builder) -> dict[str, Any]:
    numpy = sys.modules["numpy"]
    if issubclass(tp, numpy.bool_):
        return {"type": "boolean"}
    if issubclass(tp, numpy.integer):
        return {"type": "integer"}
    if issubclass(tp, numpy.datetime64):
        return {"type": "string", "format": "date-time"}
    if issubclass(tp, numpy.timedelta64):
        return {"type": "number", "description": "seconds"}
    return {"type": "number"}


def _numpy_out(value: Any) -> Any:
    kind = getattr(getattr(value, "dtype", None), "kind", "")
    # datetime64: ISO strings like every other date-time result (`tolist()` of a
    # datetime64[ns] array gives integer nanoseconds, which read as a number no schema
    # promised); timedelta64: seconds like a timedelta. NaT becomes null either way.
    if kind == "M":
        return value.astype("datetime64[us]").tolist()
    if kind == "m":
        return value.astype("timedelta64[us]").tolist()
    return value.tolist()  # arrays into nested lists, scalars into Python scalars


# pandas: recognised by module; a labelled index is kept.


def _pandas_schema(tp: Any, _builder: Builder) -> dict[str, Any]:
    if tp.__name__ == "DataFrame":
        return {"type": "array", "items": {"type": "object"}}
    return {"type": ["array", "object"]}  # values, or {label: value} (see _pandas_out)


def _pandas_in(tp: Any) -> Plan:
    return _unless_typed(tp, tp)


def _default_index(index: Any) -> bool:
    """A default RangeIndex (0, 1, 2, … unnamed) says nothing a list's order does not."""
    start, stop, step = (getattr(index, a, None) for a in ("start", "stop", "step"))
    return (
        type(index).__name__ == "RangeIndex"
        and start == 0
        and step == 1
        and stop is not None
        and index.name is None
    )


def _pandas_out(value: Any) -> Any:
    name = type(value).__name__
    if name in ("NaTType", "NAType"):
        return None
    if name == "DataFrame":
        # Rows as objects; an index that carries information becomes the leading fields
        # (named as `reset_index` names them: the level names, else `index`), so a frame
        # indexed by date keeps its dates. Levels whose name already is a column are the
        # same data twice (`set_index(..., drop=False)`): the column stays, the level goes.
        if not _default_index(value.index):
            dup = [n for n in value.index.names if n is not None and n in value.columns]
            if dup:
                value = value.reset_index(level=dup, drop=True)
            if not _default_index(value.index):
                value = value.reset_index()
        return value.to_dict(orient="records")
    if name == "Series":
        if _default_index(value.index):
            return value.tolist()
        # A labelled Series is the object {label: value} (what `to_dict()` and pandas' own
        # `to_json()` give); when labels repeat or have several levels an object would lose
        # or mangle them, so it becomes rows like a DataFrame's, the values under its name.
        if value.index.nlevels == 1 and value.index.is_unique:
            return value.to_dict()
        return _pandas_out(value.to_frame(value.name if value.name is not None else "value"))
    if hasattr(value, "tolist"):  # Index, Categorical, extension arrays
        return value.tolist()
    return _no_result(value)


def _pandas_value(cls: type) -> bool:
    # Timestamps and Timedeltas are datetimes and timedeltas: their rows come first.
    return _library(cls) == "pandas"


# polars: recognised by module; the proof that a library type is one entry.


def _polars_in(tp: Any) -> Plan:
    return _unless_typed(tp, tp)


def _polars_schema(tp: Any, _builder: Builder) -> dict[str, Any]:
    if tp.__name__ == "DataFrame":
        return {"type": "array", "items": {"type": "object"}}
    return {"type": "array"}  # a polars Series has no index


def _polars_out(value: Any) -> Any:
    name = type(value).__name__
    if name == "DataFrame":
        return value.to_dicts()  # rows as objects, like a pandas DataFrame
    if name == "Series":
        return value.to_list()
    return _no_result(value)


def _result_of(*names: str) -> Callable[[type], bool]:
    return lambda cls: any(_qual(c) in names for c in cls.__mro__)


def _is_polars(tp: Any) -> bool:
    return _is("polars.dataframe.frame.DataFrame", "polars.series.series.Series")(tp)


def _polars_value(cls: type) -> bool:
    return _library(cls) == "polars" and cls.__name__ in ("DataFrame", "Series")


def _is_pandas(tp: Any) -> bool:
    return _is_class(tp) and _library(tp) == "pandas" and tp.__name__ in _PANDAS_CLASSES


_PANDAS_CLASSES = ("DataFrame", "Series")

_STRING = {"type": "string"}

#: Order matters twice: the first entry whose `annotation` (or `value`) test passes is the
#: answer, so enums come before the builtins they may subclass, datetime before date, and
#: pandas' Timestamp/Timedelta reach the datetime rows before the pandas one.
TABLE: list[Entry] = [
    Entry("any", _is_any, _any_schema, _no_plan, _never, _no_result),
    Entry("union", _is_union, _union_schema, _union_in, _never, _no_result),
    Entry("literal", _is_literal, _literal_schema, _literal_in, _never, _no_result),
    Entry(
        "annotated",
        _is_annotated,
        lambda tp, b: b.schema(_args(tp)[0]),
        lambda tp: plan(_args(tp)[0]),
        _never,
        _no_result,
    ),
    Entry(
        "enum",
        _is("enum.Enum"),
        _enum_schema,
        _enum_in,
        _result_of("enum.Enum"),
        lambda v: v.value,
    ),
    Entry(
        "null",
        lambda tp: tp is type(None),
        _fixed({"type": "null"}),
        _no_plan,
        _never,
        _no_result,
    ),
    # Subclasses of JSON's own types (numpy's float64, a str subclass) are their JSON value.
    Entry("bool", _is("builtins.bool"), _fixed({"type": "boolean"}), _no_plan, _never, _no_result),
    Entry(
        "int",
        _is("builtins.int"),
        _fixed({"type": "integer"}),
        _no_plan,
        _result_of("builtins.int"),
        int,
    ),
    Entry(
        "float",
        _is("builtins.float"),
        _fixed({"type": "number"}),
        _no_plan,
        _result_of("builtins.float"),
        lambda v: _finite(float(v)),
    ),
    Entry("str", _is("builtins.str"), _fixed(_STRING), _no_plan, _result_of("builtins.str"), str),
    Entry(
        "bytes",
        _is("builtins.bytes", "builtins.bytearray"),
        _fixed({"type": "string", "contentEncoding": "base64"}),
        _bytes_in,
        _result_of("builtins.bytes", "builtins.bytearray", "builtins.memoryview"),
        _bytes_out,
    ),
    # `datetime` before `date`: it is a subclass.
    _iso_row("datetime", "date-time"),
    _iso_row("date", "date"),
    _iso_row("time", "time"),
    Entry(
        "timedelta",
        _is("datetime.timedelta"),
        _fixed({"type": "number", "description": "seconds"}),
        _seconds_in,
        _result_of("datetime.timedelta"),
        _seconds_out,
    ),
    Entry(
        "decimal",
        _is("decimal.Decimal"),
        _fixed(_DECIMAL_SCHEMA),
        _decimal_in,
        _result_of("decimal.Decimal"),
        _decimal_out,
    ),
    Entry(
        "uuid",
        _is("uuid.UUID"),
        _fixed({"type": "string", "format": "uuid"}),
        lambda tp: _unless_typed(tp, tp),
        _result_of("uuid.UUID"),
        str,
    ),
    Entry(
        "path",
        _is("pathlib.PurePath"),
        _fixed(_STRING),
        lambda tp: lambda v: tp(v) if isinstance(v, str) else v,
        _result_of("pathlib.PurePath"),
        str,
    ),
    Entry(
        "sequence",
        _generic(*_SEQUENCES),
        _sequence_schema,
        _sequence_in,
        _result_of("builtins.list"),
        list,
    ),
    Entry(
        "tuple",
        _generic("tuple"),
        _tuple_schema,
        _tuple_in,
        _result_of("builtins.tuple"),  # named tuples too
        list,
    ),
    Entry(
        "set",
        _generic(*_SETS),
        _set_schema,
        _set_in,
        _result_of("builtins.set", "builtins.frozenset"),
        _sorted,
    ),
    Entry(
        "typeddict",
        _is_typeddict,
        _typeddict_schema,
        _typeddict_in,
        _never,  # its instances are dicts
        _no_result,
    ),
    Entry(
        "mapping",
        _generic(*_MAPPINGS),
        _mapping_schema,
        _mapping_in,
        lambda cls: _is("collections.abc.Mapping")(cls) or _abc_mapping(cls),
        _mapping_out,
    ),
    Entry(
        "generator",
        _never,
        _any_schema,
        _no_plan,
        # A generator anywhere in a result is collected, as a function's own generator is.
        _result_of("builtins.generator"),
        list,
    ),
    Entry(
        "numpy.ndarray",
        _is_ndarray,
        lambda _tp, b: b.ref("ndarray", lambda: _NDARRAY_DEF),
        _ndarray_in,
        lambda cls: _library(cls) == "numpy" and hasattr(cls, "tolist"),
        _numpy_out,
    ),
    Entry(
        "numpy.generic",
        _is_numpy_scalar,
        _numpy_scalar_schema,
        _no_plan,
        _never,  # its results are the row above's
        _no_result,
    ),
    Entry("pandas", _is_pandas, _pandas_schema, _pandas_in, _pandas_value, _pandas_out),
    Entry("polars", _is_polars, _polars_schema, _polars_in, _polars_value, _polars_out),
    Entry(
        "dataclass",
        _is_dataclass_type,
        _dataclass_schema,
        _dataclass_in,
        lambda cls: hasattr(cls, "__dataclass_fields__"),
        _dataclass_out,
    ),
    Entry(
        "pydantic",
        _is_pydantic_model,
        _pydantic_schema,
        lambda tp: _unless_typed(tp, tp.model_validate),
        _pydantic_value,
        lambda v: v.model_dump(mode="json"),
    ),
]


def _abc_mapping(cls: type) -> bool:
    # Registered (not inherited) Mappings such as `types.MappingProxyType`.
    abc = sys.modules.get("collections.abc")
    return abc is not None and issubclass(cls, abc.Mapping)


# ── lookups ───────────────────────────────────────────────────────────────────────────────


def entry_for_annotation(tp: Any) -> Optional[Entry]:
    for entry in TABLE:
        if entry.annotation(tp):
            return entry
    return None


_BY_CLASS: dict[type, Optional[Entry]] = {}


def entry_for_value(cls: type) -> Optional[Entry]:
    """The entry for a result's class; looked up once per class."""
    try:
        return _BY_CLASS[cls]
    except KeyError:
        pass
    found = None
    for entry in TABLE:
        if entry.value(cls):
            found = entry
            break
    _BY_CLASS[cls] = found
    return found


def plan(tp: Any) -> Optional[Plan]:
    """How to turn a JSON value into `tp`, or None when JSON values already are fine."""
    entry = entry_for_annotation(tp)
    return entry.argument(tp) if entry is not None else None


def plain(value: Any) -> Any:
    """One step of `value` toward JSON: what its entry makes of it (a walk goes on with the
    result). Raises `NotJSON` for a type the table has no entry for."""
    entry = entry_for_value(type(value))
    if entry is None:
        raise NotJSON(type_name(type(value)))
    return entry.result(value)


def key(k: Any) -> str:
    """The text of a dict key, as `json.dumps` writes keys: strings as they are, numbers,
    booleans and None as their JSON, anything else as its JSON form when that is a string or
    a scalar (a date as ISO, an enum as its value). A tuple key has no single text (`"1,2"`?
    `"[1, 2]"`?) and json.dumps refuses it too: return a list of records instead."""
    if type(k) is str:
        return k
    if k is None or k is True or k is False or type(k) is int:
        import json

        return json.dumps(k)
    if type(k) is float:
        import json

        return json.dumps(k)  # NaN and Infinity as json.dumps writes them, never `nan`
    try:
        converted = _walk(plain(k), 1)
    except NotJSON:
        converted = []
    if isinstance(converted, str):
        return converted
    if converted is None or isinstance(converted, (int, float, bool)):
        return key(converted)
    raise NotJSON(type_name(type(k)), " as a dict key", "{key}")


def to_json(value: Any, root: str = "result") -> Any:
    """A JSON-ready copy of `value`; NotJSON names the type and where it sits under `root`."""
    try:
        return _walk(value, 0)
    except NotJSON as err:
        err.root = root
        raise


def _walk(value: Any, depth: int) -> Any:
    cls = type(value)
    if value is None or cls is str or cls is bool or cls is int:
        return value
    if cls is float:
        return value if math.isfinite(value) else None
    if depth > MAX_DEPTH:
        raise NotJSON(type_name(cls), f" nested deeper than {MAX_DEPTH} levels (a cycle?)")
    deeper = depth + 1
    if cls is dict:
        out = {}
        for k, v in value.items():
            name = key(k)
            try:
                out[name] = _walk(v, deeper)
            except NotJSON as err:
                err.path.insert(0, name)
                raise
        return out
    if cls is list or cls is tuple:
        items = []
        for i, v in enumerate(value):
            try:
                items.append(_walk(v, deeper))
            except NotJSON as err:
                err.path.insert(0, i)
                raise
        return items
    return _walk(plain(value), deeper)


# ── JSON Schema ───────────────────────────────────────────────────────────────────────────


class Builder:
    """JSON Schemas of annotations; classes that need a name (dataclasses, TypedDicts,
    pydantic models, enums) go to `defs` and are referenced, so recursive types terminate."""

    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}
        self.names: dict[Any, str] = {}

    def schema(self, tp: Any) -> dict[str, Any]:
        entry = entry_for_annotation(tp)
        return entry.schema(tp, self) if entry is not None else {}

    def ref(self, key: Any, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
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
