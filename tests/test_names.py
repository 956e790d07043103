"""The naming rules every module shares: PEP 503 names and the one bundle-name rule, which
`pack`, serving a live function and the background launcher all answer alike."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import takeout
from takeout import serving
from takeout._names import bundle_name, normalize
from takeout.errors import UsageError

from .support import run_cells


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("scikit-learn", "scikit-learn"),
        ("Scikit_Learn", "scikit-learn"),
        ("zope.interface", "zope-interface"),
        ("Foo__Bar..baz", "foo-bar-baz"),  # runs of separators collapse to one `-`
        ("a-_.-b", "a-b"),
    ],
)
def test_pep_503_normalize(name: str, normalized: str) -> None:
    assert normalize(name) == normalized


def test_bundle_names() -> None:
    ns = run_cells("def prédire(x):\n    return x\nsquare = lambda x: x * x")
    assert bundle_name(ns["prédire"]) == "pr_dire"
    assert bundle_name(ns["square"]) == "function"
    assert bundle_name(len) == "len"


@pytest.mark.slow
def test_pack_serve_and_the_launcher_give_one_name(tmp_path: Path) -> None:
    ns = run_cells("def prédire(x: float) -> float:\n    return 2 * x")
    fn = ns["prédire"]
    # The directory's name is not the bundle's.
    bundle = takeout.pack(fn, tmp_path / "elsewhere.takeout")
    assert bundle.name == "pr_dire"
    with takeout.serve(fn, port=0, background=True) as live:
        assert live is not None
        assert live.name == "pr_dire"
    # `serve_function` takes `serve`'s arguments, positional ones included, and the manifest
    # it is given: the function is served under that manifest's name.
    manifest = {**bundle.manifest, "name": "twice"}
    with serving.serve_function(fn, manifest, "127.0.0.1", 0, 1, True) as given:
        assert given is not None
        assert given.name == "twice"
        answer = httpx.post(given.url + "/call", json=[1.5], timeout=30)
        assert answer.json() == {"result": 3.0}
    with pytest.raises(TypeError, match="`manifest=` is for serving a function"):
        takeout.serve(bundle.path, manifest=manifest)
    with takeout.serve(bundle.path, port=0, workers=2, background=True) as served:
        assert served is not None
        assert served.name == "pr_dire"
        assert httpx.get(served.url + "/v1/models/pr_dire").status_code == 200
    with pytest.raises(UsageError, match="is not usable in a URL"):
        takeout.pack(fn, tmp_path / "x.takeout", name="pré")
