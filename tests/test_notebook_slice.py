"""`takeout slice` and `takeout deps --static`: reading and slicing .ipynb files, no kernel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from takeout import _core
from takeout.cli import main
from takeout.errors import NotebookError
from takeout.notebook import slice_notebook, static_deps

from .support import EXAMPLES

KMEANS = EXAMPLES / "kmeans.ipynb"


def write_notebook(path: Path, *cells: str, kernel: str = "python3") -> Path:
    """An nbformat 4 notebook whose cells are `cells`; a cell starting with `# md` is markdown."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    for source in cells:
        if source.startswith("# md"):
            nb.cells.append(nbformat.v4.new_markdown_cell(source[4:].strip()))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source))
    nbformat.write(nb, path)
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def kept_cells(sliced: _core.NotebookSlice) -> list[int]:
    return [cell.number for cell in sliced.cells]


# ── the seed notebook ────────────────────────────────────────────────────────────────────────


def test_seed_slices_keep_only_what_each_function_reads() -> None:
    one = slice_notebook(KMEANS, "km_predict_one")
    two = slice_notebook(KMEANS, "km_predict_two")
    assert kept_cells(one) == [3, 6]
    assert kept_cells(two) == [3, 6, 9]
    assert one.kernel_name == "python3"
    assert one.warnings == [] and one.unresolved == []
    model_cell = one.cells[1]
    assert [why for _, _, why in model_cell.statements] == [
        "defines `KMeans`, which cell 6 reads",
        "defines `data`, which cell 6 reads",
        "defines `model`, which `km_predict_one` reads",
        "defines `km_predict_one`, the function",
    ]


def test_slice_prints_the_script_with_cell_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(capsys, "slice", str(KMEANS), "km_predict_two")
    assert status == 0 and err == ""
    assert out.startswith(
        f"# takeout: the slice of `{KMEANS}` for `km_predict_two` (defined in cell 9): "
        "cells 3, 6, 9"
    )
    # Each kept statement says which name made it necessary.
    assert (
        "# ── cell 9 ──\ncenters = model.cluster_centers_  # defines `centers`, which "
        "`km_predict_two` reads\nfrom numpy.linalg import norm  # defines `norm`, which "
        "`km_predict_two` reads\n" in out
    )
    assert "# `km_predict_two` reads `centers` from cell 9, line 1: the last binding before" in out
    assert "module_frontier" not in out  # cells 2, 4, 5, 7, 8, 10 and 11 stay out


def test_slice_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, "slice", str(KMEANS), "km_predict_one", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["function"] == "km_predict_one" and data["kernel"] == "python3"
    assert [c["cell"] for c in data["cells"]] == [3, 6]
    assert data["cells"][1]["statements"][2] == {
        "line": 5,
        "end_line": 5,
        "why": "defines `model`, which `km_predict_one` reads",
    }
    assert [i["module"] for i in data["imports"]] == ["numpy", "sklearn.cluster"]


def test_all_cells_keeps_every_code_cell() -> None:
    sliced = slice_notebook(KMEANS, "km_predict_one", all_cells=True)
    assert kept_cells(sliced) == list(range(2, 12))


# ── what the slicer must get right, end to end through the file ─────────────────────────────


def test_an_expensive_unrelated_cell_is_left_out(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "slow.ipynb",
        "# md A notebook with a slow cell that has nothing to do with the model",
        "import time\nimport numpy as np\nfrom sklearn.linear_model import LinearRegression",
        "X = np.arange(20.0).reshape(-1, 1)\ny = 3 * X.ravel() + 1",
        "model = LinearRegression()",
        "time.sleep(60)\nsummary = 'slow'",
        "model.fit(X, y)",
        "print(model.coef_)",
        "def predict(x):\n    return float(model.predict(np.array([[x]]))[0])",
    )
    sliced = slice_notebook(nb, "predict")
    assert kept_cells(sliced) == [2, 3, 4, 6, 8]
    assert "time.sleep" not in sliced.script
    assert "model.fit(X, y)" in sliced.script
    assert sliced.cells[0].source == (
        "#\nimport numpy as np\nfrom sklearn.linear_model import LinearRegression"
    )


def test_magics_and_shell_lines(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "magics.ipynb",
        "%matplotlib inline\n!echo warming up\n%load_ext autoreload",
        "%%capture captured\nimport numpy as np\nweights = np.ones(3)\nprint('noise')",
        "%time weights *= 2\nweights?",
        "%%bash\necho not python",
        "files = !ls\nn_files = len(files)",
        "def score(x):\n    return float(weights.sum() * x + n_files * 0)",
    )
    sliced = slice_notebook(nb, "score")
    assert kept_cells(sliced) == [2, 3, 5, 6]
    assert sliced.cells[0].source.startswith("%%capture captured\n")
    assert sliced.cells[1].source == "%time weights *= 2\n"
    assert any("`!echo warming up` (cell 1)" in w for w in sliced.warnings)


def test_a_malformed_notebook_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"nbformat": 4, "cells": [', encoding="utf-8")
    status, out, err = run_cli(capsys, "slice", str(bad), "f")
    assert (status, out) == (1, "")
    assert err.startswith(f"takeout: error: `{bad}` is not a valid notebook: it is not valid JSON")
    assert err.count("\n") == 1

    old = tmp_path / "old.ipynb"
    old.write_text(json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": []}))
    with pytest.raises(NotebookError, match="nbformat 3 notebook and takeout reads version 4"):
        slice_notebook(old, "f")
    with pytest.raises(NotebookError, match="does not exist"):
        slice_notebook(tmp_path / "missing.ipynb", "f")
    r_nb = write_notebook(tmp_path / "r.ipynb", "f <- function(x) x", kernel="ir")
    r_nb.write_text(r_nb.read_text().replace('"language": "python"', '"language": "R"'))
    with pytest.raises(NotebookError, match="is a R notebook"):
        slice_notebook(r_nb, "f")


def test_an_unknown_function_lists_the_ones_that_exist(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, "pack", str(KMEANS), "km_predict_on")
    assert status == 1
    assert err == (
        f"takeout: error: `{KMEANS}` defines no function named `km_predict_on`; it defines "
        "`module_frontier`, `f`, `g`, `h`, `km_predict_one`, `km_predict_two` "
        "(did you mean `km_predict_one`?)\n"
    )


# ── deps --static ────────────────────────────────────────────────────────────────────────────


def test_static_deps_maps_the_slices_imports(capsys: pytest.CaptureFixture[str]) -> None:
    report = static_deps(KMEANS, "km_predict_one")
    assert report.requirements == [
        r for r in report.requirements if r.split("==")[0] in ("numpy", "scikit-learn")
    ]
    assert [r.split("==")[0] for r in report.requirements] == ["numpy", "scikit-learn"]
    status, out, _ = run_cli(capsys, "deps", str(KMEANS), "km_predict_one", "--static")
    assert status == 0
    assert out.splitlines()[0].startswith("takeout deps · km_predict_one (static estimate) · ")
    assert "note: static estimate" in out
    status, out, _ = run_cli(capsys, "deps", str(KMEANS), "module_frontier", "--static", "--json")
    data: dict[str, Any] = json.loads(out)
    assert data["estimate"] == "static"
    assert data["requirements"] == []
    assert [m["origin"] for m in data["modules"]] == ["stdlib"]


def test_static_deps_reports_local_and_missing_modules(tmp_path: Path) -> None:
    (tmp_path / "helpers_static.py").write_text("def double(x):\n    return 2 * x\n")
    nb = write_notebook(
        tmp_path / "local.ipynb",
        "import helpers_static\nimport yaml",
        "def f(x):\n    import no_such_module_here\n"
        "    return helpers_static.double(yaml.safe_dump(x))",
    )
    report = static_deps(nb, "f")
    kinds = {d.name: d.kind for d in report.report.distributions}
    assert kinds == {"PyYAML": "index", "helpers_static": "local"}
    assert any("`no_such_module_here`" in w for w in report.report.warnings)
