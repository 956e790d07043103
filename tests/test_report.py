"""The report: one builder groups modules into distributions, local trees and editable installs
for `takeout.deps` and `deps --static` alike, and `Report.from_dict` reads what `to_dict` wrote."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

import takeout
from takeout.notebook import static_deps
from takeout.report import DistributionInfo, Provider, Report, group_modules, in_report_order

from .test_notebook_slice import write_notebook


def test_modules_are_grouped_by_a_typed_provider() -> None:
    numpy = Provider("index", "numpy", "2.1.3", dist_id=7)
    mine = Provider("editable", "my-project", "0.1", dist_id=9)
    utils = Provider("local", "utils")
    grouped = group_modules(
        [
            ("utils", ("cell 1",), utils),
            ("numpy", ("import numpy", "np.mean"), numpy),
            ("my_project.io", ("import my_project.io",), mine),
            ("numpy.linalg", ("np.mean", "np.linalg.norm"), numpy),
            ("utils.text", ("cell 2",), utils),
        ]
    )
    assert grouped[numpy] == DistributionInfo(
        "numpy",
        "2.1.3",
        "index",
        ("numpy", "numpy.linalg"),
        ("import numpy", "np.mean", "np.linalg.norm"),
        "numpy==2.1.3",
    )
    assert grouped[mine].requirement is None
    assert grouped[mine].reasons[-1] == "editable install: its code travels by value"
    assert grouped[utils].modules == ("utils", "utils.text")
    assert grouped[utils].reasons == ("cell 1", "cell 2", "local code: travels by value")
    # Requirements first, then code by value, each by PEP 503 name (`Foo_Bar` is `foo-bar`).
    order = in_report_order(
        [
            grouped[utils],
            DistributionInfo("foo-baz", "1", "index", (), ()),
            grouped[numpy],
            DistributionInfo("Foo_Bar", "1", "index", (), ()),
        ]
    )
    assert [d.name for d in order] == ["Foo_Bar", "foo-baz", "numpy", "utils"]


def test_from_dict_reads_what_to_dict_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "utils_for_report.py").write_text("def scale(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import numpy as np
    import utils_for_report

    def predict(x: float) -> float:
        return float(np.mean([utils_for_report.scale(x)]))

    report = takeout.deps(predict, require=["pyyaml"])
    assert {d.kind for d in report.distributions} == {"index", "local"}
    data = json.loads(json.dumps(report.to_dict()))
    again = Report.from_dict(data)
    assert again == report
    assert json.loads(json.dumps(again.to_dict())) == data


def test_live_and_static_reports_group_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same imports give the same distributions, kinds, pins and by-value reasons from a
    live function and from the notebook read without running it."""
    (tmp_path / "utils_for_static.py").write_text("def scale(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    source = textwrap.dedent(
        """\
        import numpy as np
        import utils_for_static

        def f(x):
            return float(np.sum([utils_for_static.scale(x)]))
        """
    )
    nb = write_notebook(tmp_path / "n.ipynb", source)
    static = static_deps(nb, "f", python=sys.executable).report
    ns: dict[str, object] = {}
    exec(source, ns)
    live = takeout.deps(ns["f"])  # type: ignore[arg-type]

    def shape(report: Report) -> list[tuple[str, str, object, object]]:
        return [
            (d.name, d.kind, d.requirement, d.reasons[-1] if d.kind != "index" else None)
            for d in report.distributions
        ]

    assert shape(live) == shape(static)
    assert [d.kind for d in live.distributions] == ["index", "local"]
