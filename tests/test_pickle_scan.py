"""`takeout._core.scan_pickle` against a reference scanner built on `pickletools.genops`.

The reference derives every stack effect from `pickletools`' own opcode table
(`stack_before`/`stack_after`), so it shares no code or opcode knowledge with the Rust
scanner; only the few opcodes that move shapes around (memo, DUP, tuples, STACK_GLOBAL,
REDUCE) get special handling.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import functools
import pickle
import pickletools
import sys
import textwrap
import time
import types
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cloudpickle
import pytest

import takeout.errors
from takeout._core import scan_pickle

# ── reference scanner ───────────────────────────────────────────────────────────────────────

_MARK = object()
_OTHER = object()


@dataclass(frozen=True)
class _Str:
    value: str


@dataclass(frozen=True)
class _Global:
    module: str
    name: str


@dataclass(frozen=True)
class _Tuple:
    first: object


@dataclass
class Reference:
    protocol: int = 0
    globals: list[tuple[str, str, str, int]] = field(default_factory=list)
    subimports: list[tuple[str, bool, int]] = field(default_factory=list)
    extension_codes: list[int] = field(default_factory=list)
    out_of_band_buffers: int = 0


def _is_cloudpickle(module: str) -> bool:
    return "cloudpickle" in module.split(".")


def reference_scan(data: bytes) -> Reference:
    out = Reference()
    stack: list[object] = []
    memo: dict[int, object] = {}
    for op, arg, pos in pickletools.genops(data):
        name = op.name
        if name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name == "DUP":
            stack.append(stack[-1])
        elif name == "GLOBAL":
            module, attr = arg.split(" ", 1)
            out.globals.append((module, attr, name, pos))
            stack.append(_Global(module, attr))
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            assert isinstance(module, _Str) and isinstance(attr, _Str), (pos, module, attr)
            out.globals.append((module.value, attr.value, name, pos))
            stack.append(_Global(module.value, attr.value))
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            if (
                isinstance(func, _Global)
                and func.name in ("subimport", "dynamic_subimport")
                and _is_cloudpickle(func.module)
                and isinstance(args, _Tuple)
                and isinstance(args.first, _Str)
            ):
                out.subimports.append((args.first.value, func.name == "dynamic_subimport", pos))
            stack.append(_OTHER)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            items = stack[-len(op.stack_before) :]
            del stack[-len(op.stack_before) :]
            stack.append(_Tuple(items[0]))
        elif name == "TUPLE":
            at = len(stack) - 1 - stack[::-1].index(_MARK)
            items = stack[at + 1 :]
            del stack[at:]
            stack.append(_Tuple(items[0] if items else _OTHER))
        else:
            _generic_effect(op, arg, pos, stack, out)
        if name == "STOP":
            break
    return out


def _generic_effect(op: Any, arg: Any, pos: int, stack: list[object], out: Reference) -> None:
    before, after = op.stack_before, op.stack_after
    if pickletools.markobject in before:
        at = len(stack) - 1 - stack[::-1].index(_MARK)
        del stack[at:]
        below = before.index(pickletools.markobject)
    else:
        below = len(before)
    if below:
        del stack[-below:]
    if op.name == "INST":
        module, attr = arg.split(" ", 1)
        out.globals.append((module, attr, op.name, pos))
    elif op.name == "PROTO":
        out.protocol = arg
    elif op.name == "NEXT_BUFFER":
        out.out_of_band_buffers += 1
    elif op.name in ("EXT1", "EXT2", "EXT4"):
        out.extension_codes.append(arg)
    for produced in after:
        if produced is pickletools.markobject:
            stack.append(_MARK)
        elif produced.name in ("str", "bytes_or_str") and isinstance(arg, str):
            stack.append(_Str(arg))
        else:
            stack.append(_OTHER)


def assert_matches_reference(data: bytes) -> Any:
    expected = reference_scan(data)
    got = scan_pickle(data)
    assert got.globals == expected.globals
    assert got.subimports == expected.subimports
    assert got.extension_codes == expected.extension_codes
    assert got.out_of_band_buffers == expected.out_of_band_buffers
    assert got.protocol == expected.protocol
    return got


# ── corpus ──────────────────────────────────────────────────────────────────────────────────

Point = collections.namedtuple("Point", "x y")


def _stdlib_objects() -> object:
    return {
        "when": datetime.datetime(2024, 5, 17, 12, 30, tzinfo=datetime.timezone.utc),
        "day": datetime.date(2020, 2, 29),
        "span": datetime.timedelta(days=3, seconds=7),
        "money": decimal.Decimal("12.50"),
        "ratio": fractions.Fraction(3, 7),
        "ordered": collections.OrderedDict([("b", 1), ("a", [1, 2])]),
        "counts": collections.Counter("mississippi"),
        "point": Point(1, 2),
        "partial": functools.partial(max, key=abs),
        "set": {1, 2, 3},
        "frozen": frozenset({"x", "y"}),
        "blob": bytearray(b"\x00\x01\xff"),
        "bytes": b"\x80\x95not opcodes.",
        "text": "caf\u00e9 \u2603 \U0001f600 back\\slash\nnewline",
        "nested": [(1, (2, [3, {"k": (None, True, 1.5)}])), [], (), {}],
        "big": 2**100,
        "uuid": uuid.UUID(int=12345),
        "types": (int, str, collections.deque, types.SimpleNamespace),
        "deque": collections.deque([1, 2]),
        "ns": types.SimpleNamespace(a=1),
    }


def _numpy_objects() -> object:
    np = pytest.importorskip("numpy")
    return {
        "ints": np.arange(12, dtype=np.int32).reshape(3, 4),
        "floats": np.linspace(0.0, 1.0, 5),
        "fortran": np.asfortranarray(np.ones((2, 3))),
        "records": np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
        "objects": np.array([None, "x", 3], dtype=object),
        "scalar": np.float64(2.5),
        "int_scalar": np.int16(7),
        "ufunc": np.add,
        "dtype": np.dtype("datetime64[ns]"),
    }


def _kmeans() -> object:
    np = pytest.importorskip("numpy")
    cluster = pytest.importorskip("sklearn.cluster")
    points = np.array([[0.0, 0.0], [0.1, 0.2], [5.0, 5.0], [5.1, 4.9]])
    return cluster.KMeans(n_clusters=2, n_init=1, random_state=0).fit(points)


def _dataframe() -> object:
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(
        {
            "n": [1, 2, 3],
            "x": [0.5, 1.5, None],
            "s": ["a", "b", "c"],
            "when": pd.date_range("2024-01-01", periods=3, freq="D"),
            "cat": pd.Categorical(["u", "v", "u"]),
        },
        index=pd.Index(["r1", "r2", "r3"], name="row"),
    )


PLAIN: dict[str, tuple[Callable[[], object], range]] = {
    "stdlib": (_stdlib_objects, range(6)),
    "numpy": (_numpy_objects, range(2, 6)),
    "kmeans": (_kmeans, range(2, 6)),
    "dataframe": (_dataframe, range(2, 6)),
}


@pytest.mark.parametrize(
    ("case", "protocol"),
    [(case, protocol) for case, (_, protocols) in PLAIN.items() for protocol in protocols],
)
def test_plain_pickles_match_reference(case: str, protocol: int) -> None:
    make, _ = PLAIN[case]
    data = pickle.dumps(make(), protocol=protocol)
    got = assert_matches_reference(data)
    assert got.globals, "every corpus object names at least one global"
    assert got.protocol == (protocol if protocol >= 2 else 0)


@pytest.mark.parametrize("case", ["numpy", "dataframe", "kmeans"])
def test_out_of_band_buffers_match_reference(case: str) -> None:
    make, _ = PLAIN[case]
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(make(), protocol=5, buffer_callback=buffers.append)
    got = assert_matches_reference(data)
    assert got.out_of_band_buffers == len(buffers) > 0


# Source run as a notebook cell: `__main__` functions and classes are pickled by value.
NOTEBOOK_CELL = textwrap.dedent(
    """
    import os
    import json
    import collections.abc
    import numpy as np

    SCALE = 3

    def scaled(xs):
        return np.asarray(xs) * SCALE

    def make_counter(start):
        count = start
        def bump(step=1):
            nonlocal count
            count += step
            return count, os.sep
        return bump

    class Model:
        def __init__(self, weights):
            self.weights = weights
        def predict(self, x):
            is_sequence = isinstance(x, collections.abc.Sequence)
            return json.dumps({"y": float(scaled(x).sum())}), is_sequence
    """
)


def _notebook() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(NOTEBOOK_CELL, "<cell>", "exec"), namespace)
    return namespace


CLOUD: dict[str, Callable[[dict[str, Any]], object]] = {
    "lambda": lambda nb: lambda x: x + 1,
    "closure": lambda nb: nb["make_counter"](10),
    "module_function": lambda nb: nb["scaled"],
    "class": lambda nb: nb["Model"],
    "instance": lambda nb: nb["Model"]([1.0, 2.0]),
    "bound_method": lambda nb: nb["Model"]([1.0]).predict,
    "module_object": lambda nb: collections,
}


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("case", sorted(CLOUD))
def test_cloudpickle_matches_reference(case: str, protocol: int) -> None:
    obj = CLOUD[case](_notebook())
    got = assert_matches_reference(cloudpickle.dumps(obj, protocol=protocol))
    modules = {module for module, dynamic, _ in got.subimports if not dynamic}
    if case == "module_object":
        assert modules == {"collections"}
    elif case != "lambda":
        assert modules, "functions that use imported modules reach them through subimport"


def test_subimport_names_the_imported_modules() -> None:
    got = assert_matches_reference(cloudpickle.dumps(_notebook()["Model"], protocol=5))
    modules = {module for module, dynamic, _ in got.subimports if not dynamic}
    assert {"json", "collections.abc", "numpy"} <= modules


def test_pickle_by_value_module_is_a_dynamic_subimport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "takeout_byvalue_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("FACTOR = 2\n")
    (package / "api.py").write_text(
        "import os\nfrom takeout_byvalue_pkg import helpers\n\n"
        "def double(x):\n    return helpers.FACTOR * x, os.getcwd\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    # Recording the absent entries makes monkeypatch drop the imported modules afterwards.
    for name in ("takeout_byvalue_pkg", "takeout_byvalue_pkg.helpers", "takeout_byvalue_pkg.api"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import takeout_byvalue_pkg  # type: ignore[import-not-found]
    import takeout_byvalue_pkg.api  # type: ignore[import-not-found]

    cloudpickle.register_pickle_by_value(takeout_byvalue_pkg)
    try:
        data = cloudpickle.dumps(takeout_byvalue_pkg.api.double, protocol=5)
    finally:
        cloudpickle.unregister_pickle_by_value(takeout_byvalue_pkg)
    got = assert_matches_reference(data)
    assert ("takeout_byvalue_pkg.helpers", True) in {(m, d) for m, d, _ in got.subimports}
    assert ("os", False) in {(m, d) for m, d, _ in got.subimports}
    assert not any(module.startswith("takeout_byvalue_pkg") for module, *_ in got.globals)


def test_text_opcodes_match_reference() -> None:
    data = pickle.dumps({"text": "\u00e9\\", "float": 1.25, "long": 2**70}, protocol=0)
    assert_matches_reference(data + b"trailing bytes are not part of the stream")
    # Hand-written: INST, and STACK_GLOBAL fed by protocol-0 UNICODE strings and PUT/GET.
    inst = b"(S'arg'\nicollections\nOrderedDict\np0\n."
    stack_global = b"Vcollections\np0\nVdeque\np1\n0g0\ng1\n\x93)R."
    for data in (inst, stack_global):
        assert_matches_reference(data)
    offset = inst.index(b"icollections")
    assert scan_pickle(inst).globals == [("collections", "OrderedDict", "INST", offset)]
    assert [g[:3] for g in scan_pickle(stack_global).globals] == [
        ("collections", "deque", "STACK_GLOBAL")
    ]


def test_extension_codes_are_reported() -> None:
    data = b"\x80\x02\x82\x07\x83\x00\x01\x84\x01\x00\x01\x00\x87."
    got = assert_matches_reference(data)
    assert got.extension_codes == [7, 256, 65537]


# ── the binding ─────────────────────────────────────────────────────────────────────────────


def test_accepts_bytes_like_inputs() -> None:
    data = pickle.dumps([datetime.date(2020, 1, 1)], protocol=4)
    expected = scan_pickle(data).globals
    assert scan_pickle(bytearray(data)).globals == expected
    assert scan_pickle(memoryview(data)).globals == expected
    with pytest.raises(TypeError):
        scan_pickle(data.decode("latin-1"))  # type: ignore[arg-type]


def test_repr_names_the_modules() -> None:
    got = scan_pickle(pickle.dumps(collections.OrderedDict(), protocol=2))
    assert "collections" in repr(got)
    assert repr(got).startswith("PickleScan(")


def test_large_payloads_are_skipped_not_copied() -> None:
    # 100 MB of BINBYTES8 payloads inside one list: one opcode per megabyte.
    item = b"\x8e" + (1 << 20).to_bytes(8, "little") + b"\x00" * (1 << 20)
    data = b"\x80\x04(" + item * 100 + b"l."
    start = time.perf_counter()
    got = scan_pickle(data)
    elapsed = time.perf_counter() - start
    assert got.protocol == 4
    assert elapsed < 0.1, f"scanning 100 MB took {elapsed:.3f}s"


# ── malformed input ─────────────────────────────────────────────────────────────────────────


def test_every_truncation_raises_pickle_scan_error() -> None:
    data = pickle.dumps(_stdlib_objects(), protocol=4)
    for end in range(len(data)):
        with pytest.raises(takeout.errors.PickleScanError):
            scan_pickle(data[:end])
    assert issubclass(takeout.errors.PickleScanError, ValueError)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "without a STOP"),
        (b"\xff.", "0xff at byte 0"),
        (b"N\x8c\x05os.", "`SHORT_BINUNICODE` at byte 1"),
        (b"\x80\x04K\x01N\x93.", "`STACK_GLOBAL` at byte 5"),
        (b"h\x05.", "memo key 5"),
        (b"N0.", "`STOP` at byte 2"),
        (b"Ne.", "`APPENDS` at byte 1"),
        (b"\x80\x06N.", "`PROTO` at byte 0"),
        (b"\x8e" + (1 << 60).to_bytes(8, "little") + b".", "`BINBYTES8` at byte 0"),
    ],
)
def test_malformed_input_raises_pickle_scan_error(data: bytes, message: str) -> None:
    with pytest.raises(takeout.errors.PickleScanError, match=message):
        scan_pickle(data)


def test_opcode_table_matches_pickletools() -> None:
    # A lone opcode byte is always malformed; the message tells whether the byte was known.
    for byte in range(256):
        with pytest.raises(takeout.errors.PickleScanError) as info:
            scan_pickle(bytes([byte]))
        message = str(info.value)
        known = pickletools.code2op.get(chr(byte))
        if known is None:
            assert f"unknown pickle opcode 0x{byte:02x}" in message
        else:
            assert "unknown" not in message
            if "`" in message:
                assert f"`{known.name}`" in message
