"""The seed's functions: the first acceptance tests (and where `module_frontier` fails)."""

from __future__ import annotations

from typing import Any

import takeout
from takeout._names import normalize


def needed(report: takeout.Report) -> set[str]:
    return {normalize(d.name) for d in report.distributions if d.kind == "index"}


def test_numpy_functions(seed: dict[str, Any]) -> None:
    for name in ("f", "g", "h"):
        report = takeout.deps(seed[name])
        assert needed(report) == {"numpy"}, name
        (numpy,) = report.distributions
        assert report.requirements == [f"numpy=={numpy.version}"]


def test_h_reaches_numpy_through_f(seed: dict[str, Any]) -> None:
    report = takeout.deps(seed["h"])
    (numpy,) = report.distributions
    assert any(reason.startswith("f → np") for reason in numpy.reasons), numpy.reasons


def test_km_predict_one_needs_scikit_learn_and_numpy(seed: dict[str, Any]) -> None:
    report = takeout.deps(seed["km_predict_one"])
    assert needed(report) == {"scikit-learn", "numpy"}
    sklearn = next(d for d in report.distributions if d.name == "scikit-learn")
    assert "model (sklearn.cluster._kmeans.KMeans)" in sklearn.reasons
    locked = {normalize(pin.split("==")[0]) for pin in report.lock}
    assert {"scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl"} <= locked
    assert not report.missing


def test_km_predict_two_needs_numpy_not_scikit_learn(seed: dict[str, Any]) -> None:
    report = takeout.deps(seed["km_predict_two"])
    assert needed(report) == {"numpy"}
    numpy = report.distributions[0]
    # `norm` is read inside the list comprehension: the naive frontier misses it.
    assert any(r.startswith("norm (numpy.linalg") for r in numpy.reasons), numpy.reasons
    assert all("sklearn" not in m.name for m in report.modules)


def test_module_frontier_is_stdlib_only(seed: dict[str, Any]) -> None:
    report = takeout.deps(seed["module_frontier"])
    assert report.requirements == []
    assert report.lock == []
    assert {m.name for m in report.modules if m.origin == "stdlib"} >= {"inspect"}


def test_report_renders(seed: dict[str, Any]) -> None:
    report = takeout.deps(seed["km_predict_one"])
    text = str(report)
    assert "scikit-learn" in text and "model (sklearn.cluster._kmeans.KMeans)" in text
    html = report._repr_html_()
    assert "<table>" in html and "scikit-learn" in html
    data = report.to_dict()
    assert data["requirements"] == report.requirements
    assert data["lock"][0].keys() == {"name", "version", "required_by"}
