"""Unpicklable captures give one sentence naming the path; hostile objects never crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import takeout
from takeout.errors import ExampleError, TakeoutError, UnpicklableError, UsageError

from .support import run_cells


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (
            "import threading\nclass Model:\n    pass\nmodel = Model()\n"
            "model.conn = threading.Lock()",
            r"^predict → model\.conn: cannot pickle '_thread\.lock'",
        ),
        (
            # cloudpickle copies files open for reading; one open for writing cannot travel.
            "import tempfile\nmodel = {'log': tempfile.TemporaryFile('w')}",
            r"^predict → model\['log'\]: pickling it raised PicklingError: "
            "Cannot pickle files that are not opened for reading",
        ),
        (
            "import socket\nmodel = [socket.socket()]",
            r"^predict → model\[0\]: cannot pickle 'socket'",
        ),
        ("model = (i for i in range(3))", r"^predict → model: cannot pickle 'generator'"),
    ],
    ids=["lock", "file", "socket", "generator"],
)
def test_unpicklable_capture_names_the_path(setup: str, expected: str) -> None:
    ns = run_cells(setup, "def predict(x):\n    return model, x")
    try:
        with pytest.raises(UnpicklableError, match=expected) as info:
            takeout.deps(ns["predict"])
        assert "\n" not in str(info.value)
    finally:
        model = ns["model"]
        parts = model.values() if isinstance(model, dict) else model
        for value in parts if isinstance(model, (dict, list)) else ():
            if hasattr(value, "close"):
                value.close()


HOSTILE = {
    "getattr-raises": """
        class Weird:
            def __getattr__(self, name):
                raise RuntimeError("no attributes here: " + name)
        thing = Weird()
    """,
    "lying-module": """
        class Liar:
            pass
        Liar.__module__ = "numpy"
        thing = Liar()
    """,
    "missing-module": """
        class NoModule:
            pass
        NoModule.__module__ = "does_not_exist_anywhere"
        thing = NoModule()
    """,
    "reduce-raises": """
        class Refuses:
            def __reduce__(self):
                raise ValueError("I refuse to be pickled")
        thing = Refuses()
    """,
    "cycle": """
        thing = {"self": None}
        thing["self"] = thing
        other = [thing]
        thing["other"] = other
    """,
    "deep-nesting": """
        thing = []
        for _ in range(100_000):
            thing = [thing]
    """,
}


@pytest.mark.parametrize("setup", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_objects_never_crash(setup: str) -> None:
    ns = run_cells(setup, "def predict(x):\n    return thing, x")
    try:
        report = takeout.deps(ns["predict"])
    except TakeoutError as exc:
        message = str(exc)
        assert message.startswith("predict → thing"), message
        assert "\n" not in message
    else:
        assert isinstance(report.requirements, list)


def test_reduce_that_raises_is_reported_with_its_message() -> None:
    ns = run_cells(
        "class Refuses:\n    def __reduce__(self):\n        raise ValueError('nope')",
        "thing = Refuses()",
        "def predict(x):\n    return thing",
    )
    with pytest.raises(
        UnpicklableError, match=r"predict → thing: pickling it raised ValueError: nope"
    ):
        takeout.deps(ns["predict"])


def test_not_callable_is_a_clear_error() -> None:
    with pytest.raises(TakeoutError, match="is not callable"):
        takeout.deps(42)  # type: ignore[arg-type]


def _inverse(x: float) -> float:
    return 1 / x


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda api, tmp: api(42), UsageError, r"^`42` is not callable; pass the function"),
        (
            lambda api, tmp: api(_inverse, require="numpy"),
            UsageError,
            r"^`require` takes a list of strings, not one string; write `require=\['numpy'\]`",
        ),
        (
            lambda api, tmp: api(_inverse, exclude="numpy"),
            UsageError,
            r"^`exclude` takes a list of strings",
        ),
        (lambda api, tmp: api(_inverse, examples="1"), ExampleError, r"^examples takes a list"),
        (lambda api, tmp: api(_inverse, examples=[1.0]), ExampleError, r"^example 1 is a float"),
        (
            lambda api, tmp: api(_inverse, examples=[(1,), (0,)]),
            ExampleError,
            r"^example 2 raised ZeroDivisionError: division by zero; fix the example or",
        ),
    ],
)
@pytest.mark.parametrize("api", ["deps", "pack"])
def test_one_mistake_is_one_exception_from_deps_and_pack(
    api: str, call: Any, error: type[Exception], message: str, tmp_path: Path
) -> None:
    def run(*args: Any, **kwargs: Any) -> Any:
        if api == "pack":
            kwargs.setdefault("examples", None)
            return takeout.pack(args[0], tmp_path / "b.takeout", **kwargs)
        return takeout.deps(*args, **kwargs)

    with pytest.raises(error, match=message) as raised:
        call(run, tmp_path)
    assert type(raised.value) is error
    # A usage mistake: the CLI exits 2 for it (1 is a failed check).
    assert isinstance(raised.value, UsageError)
    assert not (tmp_path / "b.takeout").exists()


def test_an_example_error_shows_its_first_informative_line() -> None:
    # nltk's resource errors open with a line of asterisks.
    def tokenize(text: str) -> list[str]:
        raise LookupError("\n" + "*" * 70 + "\n  Resource punkt not found.\n" + "*" * 70)

    with pytest.raises(ExampleError) as err:
        takeout.deps(tokenize, examples=[("a b",)])
    assert "example 1 raised LookupError: Resource punkt not found.; " in str(err.value)


def test_a_namedtuple_a_library_makes_is_part_of_that_library() -> None:
    import numpy as np

    def singular_values(rows: list[list[float]]) -> list[float]:
        return [float(s) for s in np.linalg.svd(np.array(rows)).S]

    report = takeout.deps(singular_values, examples=[([[1.0, 0.0], [0.0, 2.0]],)])
    assert not [w for w in report.warnings if "namedtuple" in w], report.warnings
    assert [r.split("==")[0] for r in report.requirements] == ["numpy"]
