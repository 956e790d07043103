"""takeout.verify and the bundle CLI, with real clean venvs built by uv (real installs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import takeout

from .support import run_cells

pytestmark = pytest.mark.slow

TAKEOUT = [sys.executable, "-m", "takeout.cli"]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TAKEOUT, *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("name", ["km_predict_one", "km_predict_two"])
def test_seed_functions_verify_in_a_clean_venv(
    seed: dict[str, Any], tmp_path: Path, name: str
) -> None:
    bundle = takeout.pack(
        seed[name], tmp_path / f"{name}.takeout", examples=[([0.5, 0.5],), ([9.0, -3.0],)]
    )
    result = takeout.verify(bundle.path)
    assert result.ok, str(result)
    assert [e.ok for e in result.examples] == [True, True]
    assert set(result.installed) == {*bundle.manifest["lock"], *bundle.manifest["runtime"]}
    wanted = {"km_predict_one": "scikit-learn", "km_predict_two": "numpy"}[name]
    assert any(pin.startswith(f"{wanted}==") for pin in result.installed)
    if name == "km_predict_two":  # the seed's point: no scikit-learn for this one
        assert not any(pin.startswith("scikit-learn==") for pin in result.installed)
        # --offline reaches uv: the first run put every wheel in uv's cache.
        assert takeout.verify(bundle.path, offline=True).ok


def test_local_helper_module_verifies_without_its_file(local_dir: Path, tmp_path: Path) -> None:
    (local_dir / "helpers_vf.py").write_text(
        "import yaml\n\ndef dump(x):\n    return yaml.safe_dump(x)\n"
    )
    ns = run_cells(
        "from helpers_vf import dump",
        "def describe(x):\n    import helpers_vf\n    return dump(x) + helpers_vf.dump([1])",
    )
    bundle = takeout.pack(ns["describe"], tmp_path / "d.takeout", examples=[({"a": 1},)])
    assert [r["name"] for r in bundle.manifest["requirements"]] == ["PyYAML"]
    (local_dir / "helpers_vf.py").unlink()  # the file is nowhere now, not even here
    result = takeout.verify(bundle.path)
    assert result.ok, str(result)
    assert result.examples[0].output == "a: 1\n- 1\n"


def test_excluding_a_needed_distribution_fails_with_the_fix(
    local_dir: Path, tmp_path: Path
) -> None:
    ns = run_cells("import yaml", "def to_yaml(x):\n    return yaml.safe_dump(x)")
    bundle = takeout.pack(
        ns["to_yaml"], tmp_path / "y.takeout", exclude=["pyyaml"], examples=[([1, 2],)]
    )
    assert bundle.manifest["requirements"] == []
    result = takeout.verify(bundle.path)
    assert not result.ok
    assert result.problems == ["loading failed: No module named 'yaml' — add --require pyyaml"], (
        result.problems
    )

    out = _cli("verify", str(bundle.path))
    assert out.returncode == 1
    assert "No module named 'yaml' — add --require pyyaml" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_an_example_that_changed_is_a_failed_check(tmp_path: Path) -> None:
    ns = run_cells("def add(a, b):\n    return a + b")
    bundle = takeout.pack(ns["add"], tmp_path / "a.takeout", examples=[(1, 2), {"a": 2, "b": 2}])
    assert [e["check"] for e in bundle.manifest["examples"]] == ["exact", "exact"]
    assert takeout.verify(bundle.path).ok
    # Rewrite the recorded output (and re-hash nothing: the manifest is not in `files`).
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    manifest["examples"][1]["output"] = 5
    (bundle.path / "manifest.json").write_text(json.dumps(manifest))
    out = _cli("verify", str(bundle.path), "--json")
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["ok"] is False
    assert [e["ok"] for e in report["examples"]] == [True, False]
    assert report["problems"] == ["example 2 returned 4 but 5 was recorded at pack time"]
    assert out.stderr == ""  # --json: nothing but the document, no progress lines


def test_cli_call_prints_json(seed: dict[str, Any], tmp_path: Path) -> None:
    bundle = takeout.pack(seed["km_predict_one"], tmp_path / "one.takeout")
    expected = int(seed["km_predict_one"]([0.5, 0.5]))
    out = _cli("call", str(bundle.path), "[[0.5, 0.5]]")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == expected
    out = _cli("call", str(bundle.path), '{"sample": [0.5, 0.5]}')
    assert json.loads(out.stdout) == expected


def test_install_failures_are_one_sentence(tmp_path: Path) -> None:
    ns = run_cells("def f():\n    return 1")
    bundle = takeout.pack(ns["f"], tmp_path / "f.takeout", require=["cloudpickle"])
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    manifest["lock"] = ["takeout-no-such-distribution-xyz==1.0"]
    (bundle.path / "manifest.json").write_text(json.dumps(manifest))
    out = _cli("verify", str(bundle.path), "--offline")
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("takeout: error: installing the lock failed: ")
    assert "takeout-no-such-distribution-xyz" in last


def test_cli_errors_are_one_sentence(tmp_path: Path) -> None:
    ns = run_cells("def inv(x):\n    return 1 / x")
    bundle = takeout.pack(ns["inv"], tmp_path / "inv.takeout")
    cases = [
        (("call", str(bundle.path), "[0]"), 1, "the function raised ZeroDivisionError"),
        (("call", str(bundle.path), "[0"), 2, "JSON is not valid JSON"),
        (("call", str(tmp_path / "nope"), "[1]"), 2, "does not exist"),
        (("verify", str(tmp_path)), 1, "is not a takeout bundle"),
    ]
    for args, status, message in cases:
        out = _cli(*args)
        assert out.returncode == status, (args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], out.stderr
        assert lines[0].startswith("takeout: error: ")
    assert _cli("call", str(bundle.path), "[4]").stdout.strip() == "0.25"


@pytest.mark.slow
def test_verify_a_chatty_signed_function(tmp_path: Path) -> None:
    ns = run_cells("import sys\ndef f(x):\n    sys.stdout.write('working...')\n    return x + 1")
    bundle = takeout.pack(ns["f"], tmp_path / "f.takeout", examples=[(1,)], signing_key="k")
    result = takeout.verify(bundle.path, signing_key="k")
    assert result.ok, str(result)
    out = subprocess.run(
        [sys.executable, "-m", "takeout.cli", "verify", str(bundle.path), "--signing-key", "k"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


def test_results_that_vary_are_checked_by_shape_or_type(tmp_path: Path) -> None:
    ns = run_cells(
        "import random",
        "def simulate(n):\n    return {'draws': [random.random() for _ in range(n)], 'n': n}",
        "def walk():\n    return [random.random() for _ in range(random.randint(1, 1000))]",
    )
    # Found at pack time: the second call gave other numbers of the same shape.
    bundle = takeout.pack(ns["simulate"], tmp_path / "s.takeout", examples=[(3,)])
    assert [e["check"] for e in bundle.manifest["examples"]] == ["shape"]
    out = _cli("verify", str(bundle.path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "example 1: ok (same shape: its result varies) → " in out.stdout
    # A shape check still fails when the shape changed.
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    manifest["examples"][0]["output"]["draws"] = [0.5, 0.5]
    (bundle.path / "manifest.json").write_text(json.dumps(manifest))
    report = json.loads(_cli("verify", str(bundle.path), "--json").stdout)
    assert report["ok"] is False
    assert ", whose shape differs, was recorded at pack time" in report["problems"][0]

    # Marked by the user: only the type of a list of any length is checked.
    walk = takeout.pack(ns["walk"], tmp_path / "w.takeout", examples=[()], example_check="type")
    assert walk.manifest["examples"][0]["check"] == "type"
    assert takeout.verify(walk.path).ok
    exact = takeout.pack(ns["walk"], tmp_path / "x.takeout", examples=[()], example_check="exact")
    result = takeout.verify(exact.path)
    assert not result.ok and "was recorded at pack time" in result.problems[0]


def test_an_unknown_example_check_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(takeout.errors.UsageError) as err:
        takeout.pack(len, tmp_path / "l.takeout", examples=[("ab",)], example_check="close")
    assert str(err.value) == (
        "example_check `close` is not one of exact, shape, type; pass one of them or leave it out"
    )
    assert not (tmp_path / "l.takeout").exists()
