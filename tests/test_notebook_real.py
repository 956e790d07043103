"""Patterns from real notebooks, run in real kernels: loud magic failures, a kernel that is not
installed, an earlier definition chosen, the binding a function was written against."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import takeout

from .test_notebook_slice import write_notebook

pytestmark = pytest.mark.slow

TAKEOUT = [sys.executable, "-m", "takeout.cli"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TAKEOUT, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_a_failing_magic_is_an_error_with_its_cell(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "m.ipynb",
        "%load_ext no_such_extension_here",
        "%no_such_magic_here",
        "def f():\n    return missing",
    )
    out = cli("pack", str(nb), "f", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "cell 1" in out.stderr and "done" not in out.stderr.split("error:")[-1]
    assert not (tmp_path / "f.takeout").exists()
    # The slice's warnings come with the failure.
    assert "takeout: warning: no cell defines `missing`" in out.stderr


def test_a_missing_kernel_falls_back_to_this_interpreter_and_an_earlier_definition_packs(
    tmp_path: Path,
) -> None:
    nb = write_notebook(
        tmp_path / "k.ipynb",
        "import math\nK = 2",
        "def area(r):\n    return round(math.pi * r * r * K / 2, 6)",
        "K = 100",
        "def area(r):\n    return math.no_such_function(r)",
        kernel="npbook_py310",
    )
    out = cli("pack", str(nb), "area@2", "--example", "[1.0]", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "`npbook_py310` is not installed here" in out.stderr
    # The binding before the definition (K = 2), not the notebook's last one.
    assert takeout.load(tmp_path / "area.takeout")(1.0) == round(3.141592653589793, 6)
    assert "cell 3 rebinds or changes `K`" in out.stderr


def test_printing_and_a_library_warning_in_the_kernel_add_no_requirement(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "w.ipynb",
        "import pandas as pd\nfrom sklearn.linear_model import LinearRegression",
        "frame = pd.DataFrame({'a': [0.0, 1.0, 2.0, 3.0]})\n"
        "model = LinearRegression().fit(frame, [1.0, 3.0, 5.0, 7.0])",
        "def shout(x):\n    print('got', x)\n    return x + 1",
        # Fitted on named columns, called with an array: scikit-learn warns about feature names.
        "def predict(x):\n    return round(float(model.predict([[x]])[0]), 6)",
    )

    def requirements(function: str, example: str) -> list[str]:
        out = cli("pack", str(nb), function, "--example", example, "--json", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        manifest = json.loads(out.stdout)["manifest"]
        return sorted(r["name"] for r in manifest["requirements"])

    assert requirements("predict", "[1.0]") == ["numpy", "scikit-learn"]
    assert requirements("shout", "[1]") == []


def test_a_random_simulation_packs_with_a_shape_check_and_verifies(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "sim.ipynb",
        "import numpy as np\nrng = np.random.default_rng()",
        "def simulate(n):\n    return rng.normal(size=(n, 2)).round(6).tolist()",
    )
    out = cli(
        "pack",
        str(nb),
        "simulate",
        "--example",
        "[3]",
        "--example-check",
        "shape",
        "--json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["manifest"]["examples"][0]["check"] == "shape"
    out = cli("verify", "simulate.takeout", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "example 1: ok (same shape: its result varies)" in out.stdout
    out = cli("pack", str(nb), "simulate", "--example-check", "close", cwd=tmp_path)
    assert out.returncode == 2
    assert "--example-check: invalid choice: 'close'" in out.stderr
