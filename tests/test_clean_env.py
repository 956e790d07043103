"""Ground truth: each function runs in a fresh venv holding only the lock takeout found.

This is how takeout is judged: nothing missing (the call succeeds in the clean environment)
and nothing extra (the requirement sets are asserted exactly). Real installs with `uv`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import takeout
from takeout import _runtime
from takeout._names import normalize

from .support import run_cells

pytestmark = pytest.mark.slow


def _uv() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def run_in_clean_venv(fn: Any, args: list[Any], tmp: Path) -> Any:
    """Pack `fn` with `args` as its example, install exactly the bundle's lock in a fresh
    venv and run the loader the bundle ships with (`takeout/_runtime.py` itself, in isolated
    mode, from an empty directory): what it returns there."""
    bundle = takeout.pack(fn, tmp / "fn.takeout", examples=[tuple(args)])
    venv = tmp / "venv"
    subprocess.run([_uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    pins = [*bundle.manifest["lock"], *bundle.manifest["runtime"]]
    subprocess.run([_uv(), "pip", "install", "-q", "--python", str(python), *pins], check=True)
    empty = tmp / "empty"
    empty.mkdir()
    result = tmp / "result.json"
    out = subprocess.run(
        [str(python), "-I", _runtime.__file__, str(bundle.path), str(result)],
        capture_output=True,
        text=True,
        cwd=empty,
    )
    assert out.returncode == 0, out.stderr
    ran = json.loads(result.read_text())
    assert ran["loaded"], ran
    (example,) = ran["examples"]
    assert example["ok"], example
    return example["output"]


def _same(fn: Any, args: list[Any], tmp: Path) -> None:
    local = _runtime.to_json(fn(*args))
    assert run_in_clean_venv(fn, args, tmp) == json.loads(json.dumps(local))


def test_seed_km_predict_one(seed: dict[str, Any], tmp_path: Path) -> None:
    _same(seed["km_predict_one"], [[0.5, 0.5]], tmp_path)


def test_seed_km_predict_two(seed: dict[str, Any], tmp_path: Path) -> None:
    _same(seed["km_predict_two"], [[0.5, 0.5]], tmp_path)


def test_local_helper_without_its_file(local_dir: Path, tmp_path: Path) -> None:
    (local_dir / "helpers_ce.py").write_text(
        "import yaml\n\ndef dump(x):\n    return yaml.safe_dump(x)\n"
    )
    ns = run_cells(
        "from helpers_ce import dump",
        "def fn(x):\n    import helpers_ce\n    return dump(x) + helpers_ce.dump([1])",
    )
    work = tmp_path / "work"  # the helper file is nowhere on the clean venv's path
    work.mkdir()
    _same(ns["fn"], [{"a": 1}], work)
    assert {normalize(r.split("==")[0]) for r in takeout.deps(ns["fn"]).requirements} == {"pyyaml"}


def test_pandas_and_a_submodule_chain(tmp_path: Path) -> None:
    ns = run_cells(
        "import pandas as pd, numpy as np, sklearn.metrics, sklearn",
        "df = pd.DataFrame({'y': [0, 1, 1], 'p': [0, 1, 0]})",
        "def fn(k):\n    return float(sklearn.metrics.accuracy_score(df.y, df.p)) + k",
    )
    _same(ns["fn"], [1], tmp_path)
