"""The one conformance table: every supported result type, through every path a result takes
to JSON, with the same answer. The paths are `_runtime.to_json` (what `takeout.call`, pack's
recorded outputs and `verify` use), `takeout call` (the CLI, a real process), `takeout serve`
(a real server process on loopback, the Rust encoder) and the ASGI adapter
(`takeout.asgi.app`, the same Rust encoder behind an ASGI server), and `takeout serve` of a
batch function returning the rows its items name (the batcher's per-item split). One bundle,
whose function returns the value its argument names, serves every row.

Where the encoders used to disagree, the answer chosen and why is said at the row; the
reasons live in `takeout/_types.py`, beside the rule itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import takeout
import takeout.asgi
from takeout import _runtime

from .support import run_cells
from .test_serve import Served, serve

pytestmark = pytest.mark.slow

# Each row's value is built inside the packed function, and imports its library there, so a
# `takeout call` row pays only for the libraries it uses.
CELL = '''
import collections, dataclasses, datetime as dt, decimal, enum, pathlib, types, uuid
import typing

class Color(enum.Enum):
    RED = "red"

class Level(enum.IntEnum):
    HIGH = 3

@dataclasses.dataclass
class Point:
    x: float
    y: float

@dataclasses.dataclass
class Track:
    name: str
    points: list
    when: dt.date

class Pair(typing.NamedTuple):
    a: int
    b: str

def _np():
    import numpy
    return numpy

def _pd():
    import pandas
    return pandas

def _pl():
    import polars
    return polars

def _price():
    import pydantic

    class Price(pydantic.BaseModel):
        amount: decimal.Decimal
        at: dt.date

    return Price(amount=decimal.Decimal("1.10"), at=dt.date(2024, 1, 2))

def _display():
    import IPython.display
    return IPython.display

class Drawn:
    """What a plotting library's result looks like to IPython: `_repr_*_` methods, each of
    which may decline with None."""

    def __init__(self, kind):
        self.kind = kind

    def _repr_png_(self):
        # IPython reads a str from `_repr_png_` as base64 already.
        return "iVBORw0KGgo=" if self.kind == "png-text" else None

    def _repr_svg_(self):
        return '<svg xmlns="http://www.w3.org/2000/svg"/>' if self.kind == "svg" else None

    def _repr_html_(self):
        return ("<p>html</p>", {"isolated": True}) if self.kind == "html-only" else None

def _cycle():
    loop = []
    loop.append(loop)
    return loop

def _squares():
    return (i * i for i in range(3))

ROWS = {
    # JSON's own types, and what is close to them
    "text": lambda: 'naïve "quoted" \\n \\u2028 \\U0001f600',
    "floats": lambda: [float("nan"), float("inf"), -float("inf"), 1e300, -0.0],
    "bigint": lambda: 2**80,
    "tuple": lambda: (1, "a", None),
    "namedtuple": lambda: Pair(1, "x"),
    "set": lambda: {3, 1, 2},
    "frozenset": lambda: frozenset({"b", "a"}),
    "ordered": lambda: collections.OrderedDict([("z", 1), ("a", 2)]),
    "counter": lambda: collections.Counter("aab"),
    "mapping_proxy": lambda: types.MappingProxyType({"a": 1}),
    "chain_map": lambda: collections.ChainMap({"a": 1}, {"b": 2}),
    "keys": lambda: {1: "a", None: "b", False: "c", 2.5: "d"},
    "date_keys": lambda: {dt.date(2024, 1, 1): 1, Color.RED: 2, uuid.UUID(int=0): 3},
    "number_keys": lambda: {Level.HIGH: "a", float("nan"): "b", 1e300: "c"},
    "enum_set": lambda: {Color.RED},
    "generator": _squares,
    "generator_nested": lambda: {"squares": _squares()},
    "bytes": lambda: b"abc",
    "bytes_binary": lambda: b"\\xff\\x00\\x89PNG",
    "bytearray": lambda: bytearray(b"ab"),
    # the standard library's scalars
    "datetime": lambda: dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    "date": lambda: dt.date(2024, 1, 2),
    "time": lambda: dt.time(3, 4, 5),
    "timedelta": lambda: dt.timedelta(minutes=1, microseconds=500_000),
    "decimal": lambda: decimal.Decimal("1.10"),
    "decimal_big": lambda: decimal.Decimal("12345678901234567.89"),
    "decimal_nan": lambda: decimal.Decimal("NaN"),
    "decimal_inf": lambda: decimal.Decimal("-Infinity"),
    "enum": lambda: Color.RED,
    "int_enum": lambda: Level.HIGH,
    "uuid": lambda: uuid.UUID(int=1),
    "path": lambda: pathlib.PurePosixPath("data/x.csv"),
    # classes
    "dataclass": lambda: Track("p", [Point(1.0, 2.0)], dt.date(2024, 1, 2)),
    "pydantic": _price,
    # numpy
    "np_int": lambda: _np().int64(7),
    "np_float": lambda: _np().float32(0.5),
    "np_bool": lambda: _np().bool_(True),
    "np_str": lambda: _np().str_("s"),
    "np_array": lambda: _np().array([[1.0, _np().nan], [_np().inf, -2.5]]),
    "np_int_array": lambda: _np().arange(3, dtype=_np().int32),
    "np_datetime64_array": lambda: _np().array(["2024-01-01T10:00", "NaT"], "datetime64[ns]"),
    "np_datetime64": lambda: _np().datetime64("2024-01-01T10:00", "ns"),
    "np_timedelta64_array": lambda: _np().array([90, 1], "timedelta64[s]"),
    "np_keys": lambda: {_np().int64(1): "a", _np().float64(0.5): "b"},
    # pandas
    "dataframe": lambda: _pd().DataFrame({"b": [1, 2], "a": [0.5, None]}),
    "dataframe_by_day": lambda: _pd().DataFrame(
        {"x": [1, 2]}, index=_pd().DatetimeIndex(["2024-01-01", "2024-01-02"], name="day")
    ),
    "dataframe_unnamed_index": lambda: _pd().DataFrame({"x": [1, 2]}, index=["a", "b"]),
    "dataframe_index_is_a_column": lambda: _pd().DataFrame({"k": ["a", "b"], "x": [1, 2]})
    .set_index("k", drop=False),
    "dataframe_filtered": lambda: _pd().DataFrame({"x": [1, 2, 3]}).iloc[1:],
    "series": lambda: _pd().Series([1.5, float("nan")]),
    "series_labelled": lambda: _pd().Series([1, 2], index=["a", "b"], name="n"),
    "series_value_counts": lambda: _pd().Series(["x", "y", "x"]).value_counts(),
    "series_repeated_labels": lambda: _pd().Series([1, 2], index=["a", "a"]),
    "series_two_levels": lambda: _pd().Series(
        [1, 2], index=_pd().MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "n"])
    ),
    "series_datetimes": lambda: _pd().Series(_pd().to_datetime(["2024-01-01", None])),
    "series_nullable_ints": lambda: _pd().Series([1, None], dtype="Int64"),
    "timestamp": lambda: _pd().Timestamp("2024-01-02T03:04:05"),
    "pd_timedelta": lambda: _pd().Timedelta(seconds=90),
    "nat": lambda: _pd().NaT,
    "pd_na": lambda: _pd().NA,
    "categorical": lambda: _pd().Categorical(["a", "b", "a"]),
    # polars
    "polars_frame": lambda: _pl().DataFrame({"b": [1, 2], "a": [0.5, None]}),
    "polars_series": lambda: _pl().Series("s", [1, None, 3]),
    "polars_times": lambda: _pl().DataFrame(
        {"day": [dt.date(2024, 1, 2)], "at": [dt.datetime(2024, 1, 2, 3)],
         "took": [dt.timedelta(seconds=1.5)]}
    ),
    # rich results: `{"media_type", "data"}` with the bytes in base64
    "ipython_html": lambda: _display().HTML("<b>naïve</b>"),
    "ipython_markdown": lambda: _display().Markdown("# title"),
    "repr_svg": lambda: Drawn("svg"),
    "repr_png_base64": lambda: Drawn("png-text"),
    "repr_png_declines": lambda: Drawn("html-only"),
    "rich_nested": lambda: {"chart": Drawn("svg")},
    "repr_declines_all": lambda: Drawn("nothing"),
    # no JSON form: the same error, naming the type and the place, on every path
    "complex": lambda: complex(1, 2),
    "nested_object": lambda: {"a": [1, {"b c": object()}]},
    "tuple_key": lambda: {(1, 2): "tuple key"},
    "cycle": _cycle,
}

def result(kind: str):
    """The value named `kind`."""
    return ROWS[kind]()
'''

# The JSON of each row; a row marked CHOSEN is where `takeout call` and `takeout serve` used to
# answer differently.
EXPECTED: dict[str, Any] = {
    "text": 'naïve "quoted" \n \u2028 \U0001f600',
    "floats": [None, None, None, 1e300, -0.0],
    "bigint": 2**80,
    "tuple": [1, "a", None],
    "namedtuple": [1, "x"],
    "set": [1, 2, 3],
    "frozenset": ["a", "b"],
    "ordered": {"z": 1, "a": 2},
    "counter": {"a": 2, "b": 1},
    # CHOSEN: any Mapping is an object (call refused it; serve wrote an object).
    "mapping_proxy": {"a": 1},
    "chain_map": {"a": 1, "b": 2},
    "keys": {"1": "a", "null": "b", "false": "c", "2.5": "d"},
    # CHOSEN: a key whose JSON form is a string or scalar is that text (serve refused dates).
    "date_keys": {"2024-01-01": 1, "red": 2, "00000000-0000-0000-0000-000000000000": 3},
    # CHOSEN: an IntEnum key is its value on every Python (serve wrote `Level.HIGH` before
    # 3.11), a float key is written as json.dumps writes it (serve wrote `nan`).
    "number_keys": {"3": "a", "NaN": "b", "1e+300": "c"},
    "enum_set": ["red"],
    "generator": [0, 1, 4],
    # CHOSEN: a generator anywhere in a result is collected (call refused a nested one).
    "generator_nested": {"squares": [0, 1, 4]},
    # CHOSEN: bytes are base64, whatever they hold (serve wrote UTF-8 text or refused it;
    # call refused all bytes).
    "bytes": "YWJj",
    "bytes_binary": "/wCJUE5H",
    "bytearray": "YWI=",
    "datetime": "2024-01-02T03:04:05+00:00",
    "date": "2024-01-02",
    "time": "03:04:05",
    "timedelta": 60.5,
    # CHOSEN: a Decimal is the string of its own digits (call wrote the float 1.1, serve the
    # number 1.10): lossless, writable by Python's json, and what pydantic writes.
    "decimal": "1.10",
    "decimal_big": "12345678901234567.89",
    "decimal_nan": None,
    "decimal_inf": None,
    "enum": "red",
    "int_enum": 3,
    "uuid": "00000000-0000-0000-0000-000000000001",
    "path": "data/x.csv",
    "dataclass": {"name": "p", "points": [{"x": 1.0, "y": 2.0}], "when": "2024-01-02"},
    "pydantic": {"amount": "1.10", "at": "2024-01-02"},
    "np_int": 7,
    "np_float": 0.5,
    "np_bool": True,
    "np_str": "s",
    "np_array": [[1.0, None], [None, -2.5]],
    "np_int_array": [0, 1, 2],
    # CHOSEN: datetime64 values are ISO strings like every other date-time (serve wrote
    # integer nanoseconds); NaT is null.
    "np_datetime64_array": ["2024-01-01T10:00:00", None],
    "np_datetime64": "2024-01-01T10:00:00",
    "np_timedelta64_array": [90.0, 1.0],
    "np_keys": {"1": "a", "0.5": "b"},
    "dataframe": [{"b": 1, "a": 0.5}, {"b": 2, "a": None}],
    # An index that carries information is kept, as the leading fields of each row.
    "dataframe_by_day": [
        {"day": "2024-01-01T00:00:00", "x": 1},
        {"day": "2024-01-02T00:00:00", "x": 2},
    ],
    "dataframe_unnamed_index": [{"index": "a", "x": 1}, {"index": "b", "x": 2}],
    "dataframe_index_is_a_column": [{"k": "a", "x": 1}, {"k": "b", "x": 2}],
    "dataframe_filtered": [{"index": 1, "x": 2}, {"index": 2, "x": 3}],
    "series": [1.5, None],
    "series_labelled": {"a": 1, "b": 2},
    "series_value_counts": {"x": 2, "y": 1},
    "series_repeated_labels": [{"index": "a", "value": 1}, {"index": "a", "value": 2}],
    "series_two_levels": [{"k": "a", "n": 1, "value": 1}, {"k": "b", "n": 2, "value": 2}],
    "series_datetimes": ["2024-01-01T00:00:00", None],
    "series_nullable_ints": [1, None],
    "timestamp": "2024-01-02T03:04:05",
    "pd_timedelta": 90.0,
    "nat": None,
    # CHOSEN: pandas' NA is null like NaN and NaT (call refused it).
    "pd_na": None,
    "categorical": ["a", "b", "a"],
    "polars_frame": [{"b": 1, "a": 0.5}, {"b": 2, "a": None}],
    "polars_series": [1, None, 3],
    "polars_times": [{"day": "2024-01-02", "at": "2024-01-02T03:00:00", "took": 1.5}],
    "ipython_html": {"media_type": "text/html", "data": "PGI+bmHDr3ZlPC9iPg=="},
    "ipython_markdown": {"media_type": "text/markdown", "data": "IyB0aXRsZQ=="},
    "repr_svg": {
        "media_type": "image/svg+xml",
        "data": "PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=",
    },
    "repr_png_base64": {"media_type": "image/png", "data": "iVBORw0KGgo="},
    "repr_png_declines": {"media_type": "text/html", "data": "PHA+aHRtbDwvcD4="},
    "rich_nested": {
        "chart": {
            "media_type": "image/svg+xml",
            "data": "PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=",
        }
    },
}

# The place and type each path names (the message is the same sentence on every path).
REFUSED: dict[str, str] = {
    "complex": "`complex` at `result`",
    "nested_object": '`object` at `result.a[1]["b c"]`',
    # CHOSEN: a tuple key is refused everywhere (call wrote the text "[1, 2]"): JSON keys are
    # strings, a tuple has no one text, and json.dumps refuses it too.
    "tuple_key": "`tuple as a dict key` at `result{key}`",
    "cycle": "`list nested deeper than 200 levels (a cycle?)` at `result[0][0][0]",
    "repr_declines_all": "`__main__.Drawn whose display methods all returned None` at `result`",
}

KINDS = sorted([*EXPECTED, *REFUSED])


@pytest.fixture(scope="module")
def cell() -> dict[str, Any]:
    return run_cells(CELL)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, cell: dict[str, Any]) -> Path:
    root = tmp_path_factory.mktemp("conformance")
    return takeout.pack(cell["result"], root / "result.takeout", examples=[("date",)]).path


def test_every_row_has_an_answer(cell: dict[str, Any]) -> None:
    assert sorted(cell["ROWS"]) == KINDS


# ── the paths ───────────────────────────────────────────────────────────────────────────────


def by_to_json(cell: dict[str, Any], kind: str) -> tuple[str, Any]:
    try:
        return "ok", _runtime.to_json(cell["result"](kind))
    except _runtime.NotJSON as err:
        return "refused", str(err)


def by_cli(bundle: Path, kind: str) -> tuple[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "takeout.cli", "call", str(bundle), json.dumps({"kind": kind})],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode == 0:
        return "ok", json.loads(out.stdout)
    assert "Traceback" not in out.stderr, out.stderr
    prefix = "takeout: error: "
    assert out.stderr.startswith(prefix), out.stderr
    return "refused", out.stderr[len(prefix) :].strip()


def by_http(response: httpx.Response) -> tuple[str, Any]:
    if response.status_code == 200:
        return "ok", response.json()["result"]
    assert response.status_code == 500, response.text
    error = response.json()["error"]
    assert error["type"] == "unserializable_result", error
    return "refused", error["message"]


@pytest.fixture(scope="module")
def cli_answers(bundle: Path) -> dict[str, tuple[str, Any]]:
    # One process per row, a few at once: start-up dominates, not the call.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return dict(zip(KINDS, pool.map(lambda kind: by_cli(bundle, kind), KINDS)))


@pytest.fixture(scope="module")
def served(bundle: Path) -> Iterator[Served]:
    server = serve("takeout", bundle)
    yield server
    assert server.stop() == 0, server.log


# A batch function returning every row: each item's result is encoded on its own, by the same
# encoder, so a batched bundle answers each row as the unbatched one does.
BATCHED = """
def results(kinds: list) -> list:
    return [result(kind) for kind in kinds]
"""


@pytest.fixture(scope="module")
def batched_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    fn = run_cells(CELL, BATCHED)["results"]
    root = tmp_path_factory.mktemp("conformance-batched")
    bundle = takeout.pack(fn, root / "results.takeout", batch=takeout.Batch()).path
    server = serve("takeout", bundle)
    yield server
    assert server.stop() == 0, server.log


@pytest.fixture(scope="module")
def asgi_answers(bundle: Path) -> dict[str, tuple[str, Any]]:
    app = takeout.asgi.app(bundle)

    async def ask() -> dict[str, tuple[str, Any]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://asgi") as http:
            answers = {}
            for kind in KINDS:
                answers[kind] = by_http(await http.post("/call", json={"kind": kind}))
            return answers

    return asyncio.run(ask())


def expected(kind: str) -> tuple[str, Any]:
    return ("ok", EXPECTED[kind]) if kind in EXPECTED else ("refused", REFUSED[kind])


def check(kind: str, got: tuple[str, Any], where: str) -> None:
    want = expected(kind)
    if want[0] == "ok":
        assert got == want, f"{where} answered {got!r} for {kind!r}"
    else:
        status, message = got
        assert status == "refused", f"{where} answered {got!r} for {kind!r}"
        assert f"the function returned {want[1]}" in message, message
        assert "which has no JSON form" in message, message


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_json_on_every_path(
    kind: str,
    cell: dict[str, Any],
    cli_answers: dict[str, tuple[str, Any]],
    served: Served,
    batched_served: Served,
    asgi_answers: dict[str, tuple[str, Any]],
) -> None:
    answers = {
        "_runtime.to_json": by_to_json(cell, kind),
        "takeout call": cli_answers[kind],
        "takeout serve": by_http(httpx.post(served.url + "/call", json={"kind": kind}, timeout=30)),
        "takeout.asgi": asgi_answers[kind],
        "takeout serve, batched": by_http(
            httpx.post(batched_served.url + "/call", json={"kinds": kind}, timeout=30)
        ),
    }
    for where, got in answers.items():
        check(kind, got, where)
    # Refusals are one sentence, and the same sentence on every path.
    assert len({json.dumps(got, sort_keys=True) for got in answers.values()}) == 1, answers
