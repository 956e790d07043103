"""Patterns from real notebooks, run in real kernels: loud magic failures, a kernel that is not
installed, an earlier definition chosen, the binding a function was written against, names
read dynamically, messages that start with a banner."""

from __future__ import annotations

import json
import subprocess
import sys
import time
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


@pytest.mark.parametrize(
    ("cell", "line", "message"),
    [
        (
            "scale = 2\n%no_such_magic_here --verbose",
            2,
            "Line magic function `%no_such_magic_here` not found.",
        ),
        ("%%no_such_cell_magic\nprint(1)", 1, "Cell magic `%%no_such_cell_magic` not found."),
    ],
)
def test_an_unknown_magic_is_an_error_with_its_cell_and_line(
    tmp_path: Path, cell: str, line: int, message: str
) -> None:
    # Point 14.4: IPython answers an unknown magic with a `UsageError` and no traceback; the
    # pack stops there, naming the notebook's cell and line, and makes no bundle.
    nb = write_notebook(
        tmp_path / "magic.ipynb",
        "import math",
        cell,
        "scale = 2",
        "def f(x):\n    return math.sqrt(x) * scale",
    )
    out = cli("pack", str(nb), "f", "--example", "[4.0]", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    shown = cell.splitlines()[line - 1]
    assert f"error: cell 2, line {line} (`{shown}`): UsageError: {message}" in out.stderr, (
        out.stderr
    )
    assert "cell 2 done" not in out.stderr
    assert not (tmp_path / "f.takeout").exists()


def test_a_banner_message_shows_its_first_informative_line(tmp_path: Path) -> None:
    # Point 15.4: nltk's missing-resource error opens with a line of asterisks.
    nb = write_notebook(
        tmp_path / "nltk.ipynb",
        "import nltk",
        "\n\nstop = nltk.data.find('corpora/takeout_no_such_corpus')",
        "def f():\n    return str(stop)",
    )
    out = cli("pack", str(nb), "f", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    error = out.stderr.split("error: ", 1)[1]
    assert error.startswith(
        "cell 2, line 3 (`stop = nltk.data.find('corpora/takeout_no_such_corpus')`): "
        "LookupError: Resource 'takeout_no_such_corpus' not found."
    ), error
    assert "***" not in error


DYNAMIC = (
    "import time\nimport numpy as np",
    # A stale first try, replaced by the next cell.
    "def build_standard(values):\n    raise NotImplementedError('first try')",
    "def build_standard(values):\n    return {'mean': np.mean(values), 'scale': np.std(values)}",
    "def build_minmax(values):\n"
    "    return {'mean': float(np.min(values)), 'scale': float(np.ptp(values))}",
    # A timing cell left from exploring, and a stale experiment: each binds names.
    "t0 = time.time()\ntime.sleep(40)\nwarm = [i * i for i in range(10)]",
    "def make(kind, values):\n    return globals()['build_' + kind](values)",
    "data = np.array([1.0, 2.0, 3.0, 4.0])\nscaler = make('standard', data)",
    "%timeit make('minmax', data)",
    "time.sleep(40)\nprint(scaler, time.time() - t0)",
    "def standardize(x: float) -> float:\n"
    "    return round(float((x - scaler['mean']) / scaler['scale']), 6)",
    "assert standardize(2.5) == 0.0",
)


def test_a_dynamic_read_keeps_what_its_strings_spell_and_the_bundle_runs(tmp_path: Path) -> None:
    # `make` looks its builder up by string as cell 7 runs: the slice keeps the two builders
    # its strings spell (`'build_' + kind`), not every cell that binds a name, so neither
    # sleeping cell runs.
    nb = write_notebook(tmp_path / "dyn.ipynb", *DYNAMIC)
    sliced = cli("slice", str(nb), "standardize", "--json", cwd=tmp_path)
    assert sliced.returncode == 0, sliced.stderr
    report = json.loads(sliced.stdout)
    assert [c["cell"] for c in report["cells"]] == [1, 3, 4, 6, 7, 10]
    assert report["warnings"] == []
    why = {c["cell"]: c["statements"][0]["why"] for c in report["cells"]}
    assert why[3] == "defines `build_standard`, which cell 7 (by a name its strings spell) reads"
    started = time.perf_counter()
    out = cli("pack", str(nb), "standardize", "--example", "[3.5]", "--json", cwd=tmp_path)
    seconds = time.perf_counter() - started
    assert out.returncode == 0, out.stderr
    assert seconds < 35, f"took {seconds:.1f} s: a sleeping cell ran"
    packed = json.loads(out.stdout)
    assert [c["cell"] for c in packed["cells"]] == [1, 3, 4, 6, 7, 10]
    assert [r["name"] for r in packed["manifest"]["requirements"]] == ["numpy"]
    # A clean venv with only the lock: the scaler `make` built in the kernel travels, with
    # the numpy its values need.
    result = takeout.verify(tmp_path / "standardize.takeout")
    assert result.ok, str(result)
    assert takeout.load(tmp_path / "standardize.takeout")(3.5) == round(1.0 / 1.25**0.5, 6)
