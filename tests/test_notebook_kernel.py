"""`takeout pack NOTEBOOK FUNCTION` and `takeout deps NOTEBOOK FUNCTION` from the shell: the
slice runs in a real Jupyter kernel (ipykernel from the test dependencies), the bundle is
packed inside it, then loaded here or verified in a clean venv."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import takeout

from .support import EXAMPLES
from .test_notebook_slice import write_notebook

pytestmark = pytest.mark.slow

TAKEOUT = [sys.executable, "-m", "takeout.cli"]
KMEANS = EXAMPLES / "kmeans.ipynb"


def takeout_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TAKEOUT, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("name", ["km_predict_one", "km_predict_two"])
def test_seed_functions_pack_from_the_shell_and_verify(tmp_path: Path, name: str) -> None:
    out = takeout_cli("pack", str(KMEANS), name, "--example", "[[0.5, 0.5]]", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    bundle = tmp_path / f"{name}.takeout"
    cells = {"km_predict_one": "3, 6", "km_predict_two": "3, 6, 9"}[name]
    assert out.stdout.startswith(f"packed `{name}` into {bundle} (")
    assert f"from cells {cells} of {KMEANS}" in out.stdout
    # Progress, one line per cell, on stderr.
    assert "takeout: running cell 6 (2 of " in out.stderr
    assert "WARNING" not in out.stderr  # the kernel's own start-up chatter stays out
    result = takeout.verify(bundle)
    assert result.ok, str(result)
    pins = [p.split("==")[0] for p in result.installed]
    assert ("scikit-learn" in pins) == (name == "km_predict_one")


def test_an_expensive_unrelated_cell_does_not_run(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "slow.ipynb",
        "import time\nimport numpy as np\nfrom sklearn.linear_model import LinearRegression",
        "X = np.arange(20.0).reshape(-1, 1)\ny = 3 * X.ravel() + 1",
        "model = LinearRegression()",
        # The marker says whether the cell ran; the time alone would not, on a loaded machine.
        f"open({str(tmp_path / 'ran')!r}, 'w').close()\ntime.sleep(60)",
        "model.fit(X, y)",
        "def predict(x):\n    return round(float(model.predict(np.array([[x]]))[0]), 6)",
    )
    out = takeout_cli("pack", str(nb), "predict", "-o", "p.takeout", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "ran").exists(), "the sleeping cell ran"
    result = json.loads(out.stdout)
    assert [c["cell"] for c in result["cells"]] == [1, 2, 3, 5, 6]
    assert takeout.load(tmp_path / "p.takeout")(2.0) == 7.0  # trained: the fit cell ran


FEATURES = (
    "%matplotlib inline\n!echo hello from the shell\nimport numpy as np",
    "def scale(x):\n    return x * FACTOR",
    "class Counter:\n    def __init__(self):\n        self.n = 0\n"
    "    def add(self, k):\n        self.n += k\n\ncounter = Counter()",
    "counter.add(5)\nprint(counter.n)",
    "%%capture out\nFACTOR = 10\nprint('captured, not shown')",
    "def predict(x):\n    return -1",
    "def offset():\n    return counter.n",
    "%time counter.add(2)",
    "def predict(x):\n    return scale(x) + offset() + int(np.sign(x))",
    "predict(1)",
    "%%html\n<b>not python</b>",
)


def test_redefinitions_helpers_method_calls_and_magics(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "features.ipynb", *FEATURES)
    out = takeout_cli("pack", str(nb), "predict", "--example", "[1]", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # The first `predict`, the bare call and the HTML cell stay out; both helpers, the class,
    # both `counter.add` calls and the magic cells that define FACTOR are in.
    assert [c["cell"] for c in result["cells"]] == [1, 2, 3, 4, 5, 7, 8, 9]
    assert result["manifest"]["examples"][0]["output"] == 18
    predict = takeout.load(result["path"])
    assert predict(1) == 10 + 7 + 1  # last definition, both counter.add calls ran
    assert any("`!echo hello from the shell`" in w for w in result["warnings"])


def test_a_cell_that_raises_names_the_cell_and_line(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "raises.ipynb",
        "# md setup",
        "import numpy as np",
        "total = 1\n\nratio = total / 0\n",
        "def f():\n    return ratio",
    )
    out = takeout_cli("pack", str(nb), "f", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines()[-1] == (
        "takeout: error: cell 3, line 3 (`ratio = total / 0`): ZeroDivisionError: division by zero"
    )
    assert not (tmp_path / "f.takeout").exists()


def test_a_dying_kernel_is_named(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "dies.ipynb",
        "import os\nvalue = 1",
        "value = os._exit(3) or 2",
        "def f():\n    return value",
    )
    out = takeout_cli("pack", str(nb), "f", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines()[-1] == (
        "takeout: error: the kernel died while running cell 2; it may have run out of memory"
    )


def test_all_cells_runs_what_the_slice_leaves_out(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "unrelated.ipynb",
        "def f():\n    return 1",
        "raise RuntimeError('an unrelated cell that fails')",
    )
    assert takeout_cli("pack", str(nb), "f", cwd=tmp_path).returncode == 0
    out = takeout_cli("pack", str(nb), "f", "--all-cells", "--force", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines()[-1] == (
        "takeout: error: cell 2, line 1 (`raise RuntimeError('an unrelated cell that fails')`): "
        "RuntimeError: an unrelated cell that fails"
    )


def test_deps_from_a_file_runs_the_slice(tmp_path: Path) -> None:
    out = takeout_cli("deps", str(KMEANS), "km_predict_two", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [r.split("==")[0] for r in report["requirements"]] == ["numpy"]
    out = takeout_cli("deps", str(KMEANS), "km_predict_one", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("takeout deps · km_predict_one · ")
    assert "scikit-learn" in out.stdout


def test_an_unknown_kernel_the_user_asked_for_is_named(tmp_path: Path) -> None:
    # The notebook's own missing kernel falls back to ours (tests/test_notebook_real.py); a
    # kernel named on the command line is what the user asked for, so it is an error.
    nb = write_notebook(tmp_path / "k.ipynb", "def f():\n    return 1")
    out = takeout_cli("pack", str(nb), "f", "--kernel", "no-such-kernel", cwd=tmp_path)
    assert out.returncode == 1
    assert "kernel `no-such-kernel`, which is not installed here" in out.stderr
    assert takeout_cli("pack", str(nb), "f", "--kernel", "python3", cwd=tmp_path).returncode == 0
