"""takeout.pack / takeout.load: the bundle format, its checks, and every refusal."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import takeout
from takeout import _runtime
from takeout.errors import (
    BundleError,
    BundleIntegrityError,
    ExampleError,
    TakeoutError,
    UsageError,
)

from .support import run_cells


@pytest.fixture
def seed_bundle(seed: dict[str, Any], tmp_path: Path) -> takeout.Bundle:
    return takeout.pack(seed["km_predict_two"], tmp_path / "two.takeout", examples=[([0.5, 0.5],)])


class Marker:
    """Loading a pickle of this writes a file: the proof that something was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.write_text, (self.path, "unpickled"))


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps(Marker(marker), protocol=5)


# ── what pack writes ───────────────────────────────────────────────────────────────────────


def test_pack_writes_the_documented_files(seed_bundle: takeout.Bundle) -> None:
    root = seed_bundle.path
    assert sorted(p.name for p in root.iterdir()) == [
        "function.pkl",
        "manifest.json",
        "pylock.toml",
        "requirements.txt",
    ]
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest == seed_bundle.manifest
    assert manifest["format"] == "takeout/1"
    assert manifest["name"] == "km_predict_two"
    assert manifest["function"]["qualname"] == "km_predict_two"
    assert [p["name"] for p in manifest["function"]["parameters"]] == ["sample"]
    assert manifest["python"]["minor"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert manifest["python"]["markers"]["sys_platform"] == sys.platform
    assert [r["requirement"] for r in manifest["requirements"]] == [f"numpy=={np.__version__}"]
    assert all(r["reasons"] for r in manifest["requirements"])
    assert f"numpy=={np.__version__}" in manifest["lock"]
    assert set(manifest["files"]) == {"function.pkl", "requirements.txt", "pylock.toml"}
    local = seed_bundle.manifest["examples"][0]
    assert local["args"] == [[0.5, 0.5]]
    assert isinstance(local["output"], int)


def test_requirements_txt_has_a_reason_per_pin(seed_bundle: takeout.Bundle) -> None:
    lines = [
        line
        for line in (seed_bundle.path / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0].startswith(f"numpy=={np.__version__}  # ")
    assert any(line.startswith("cloudpickle==") for line in lines)


def test_pylock_is_installable_pep751(seed_bundle: takeout.Bundle) -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    lock = tomllib.loads((seed_bundle.path / "pylock.toml").read_text())
    assert lock["lock-version"] == "1.0"
    packages = {p["name"]: p for p in lock["packages"]}
    assert packages["numpy"]["version"] == np.__version__
    assert "cloudpickle" in packages
    wheel = packages["numpy"]["wheels"][0]
    assert wheel["hashes"]["sha256"] and wheel["url"].endswith(".whl")


def test_load_returns_the_function(seed: dict[str, Any], seed_bundle: takeout.Bundle) -> None:
    fn = takeout.load(seed_bundle.path)
    assert fn([0.5, 0.5]) == seed["km_predict_two"]([0.5, 0.5])


def test_default_path_is_name_dot_takeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ns = run_cells("def double(x: int) -> int:\n    return 2 * x")
    bundle = takeout.pack(ns["double"])
    assert bundle.path == (tmp_path / "double.takeout").resolve()
    assert takeout.pack(ns["double"], name="twice").path.name == "twice.takeout"
    assert takeout.load("double.takeout")(4) == 8


def test_overwrite_replaces_only_with_consent(tmp_path: Path) -> None:
    ns = run_cells("def one():\n    return 1", "def two():\n    return 2")
    path = tmp_path / "f.takeout"
    takeout.pack(ns["one"], path)
    with pytest.raises(UsageError, match="already exists; pass overwrite=True"):
        takeout.pack(ns["two"], path)
    assert takeout.load(path)() == 1
    takeout.pack(ns["two"], path, overwrite=True)
    assert takeout.load(path)() == 2
    assert [p.name for p in tmp_path.iterdir()] == ["f.takeout"]  # no temp dirs left


def test_overwrite_never_deletes_a_directory_that_is_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("years of work")
    ns = run_cells("def one():\n    return 1")
    with pytest.raises(UsageError, match="is not a takeout bundle; refusing to replace it"):
        takeout.pack(ns["one"], tmp_path / "precious", overwrite=True)
    assert (tmp_path / "precious" / "thesis.tex").read_text() == "years of work"


def test_an_error_leaves_no_half_written_bundle(tmp_path: Path) -> None:
    ns = run_cells("def inverse(x):\n    return 1 / x")
    with pytest.raises(ExampleError, match=r"example 2 raised ZeroDivisionError"):
        takeout.pack(ns["inverse"], tmp_path / "inv.takeout", examples=[(1,), (0,)])
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not callable"):
        takeout.pack(42, tmp_path / "x.takeout")  # type: ignore[arg-type]
    ns = run_cells("def f(x):\n    return x")
    with pytest.raises(UsageError, match="not usable in a URL"):
        takeout.pack(ns["f"], tmp_path / "x.takeout", name="has space")
    with pytest.raises(UsageError, match="cannot be written as JSON"):
        takeout.pack(ns["f"], tmp_path / "x.takeout", examples=[(object(),)])
    with pytest.raises(UsageError, match="list of argument tuples"):
        takeout.pack(ns["f"], tmp_path / "x.takeout", examples={"x": 1})
    assert list(tmp_path.iterdir()) == []


def test_examples_record_outputs_in_json_form(tmp_path: Path) -> None:
    ns = run_cells(
        """
        import numpy as np
        import datetime as dt
        def stats(values: np.ndarray, when: dt.date, *, scale: float = 1.0) -> dict:
            return {"mean": values.mean() * scale, "nan": float("nan"),
                    "day": when + dt.timedelta(days=1), "pair": (1, 2), "set": {3}}
        """
    )
    bundle = takeout.pack(
        ns["stats"],
        tmp_path / "s.takeout",
        examples=[([1.0, 2.0, 3.0], "2024-02-28"), {"values": [4, 6], "when": "2024-01-01"}],
    )
    outputs = [e["output"] for e in bundle.manifest["examples"]]
    assert outputs[0] == {
        "mean": 2.0,
        "nan": None,
        "day": "2024-02-29",
        "pair": [1, 2],
        "set": [3],
    }
    assert outputs[1]["mean"] == 5.0
    assert bundle.manifest["examples"][1]["kwargs"] == {"values": [4, 6], "when": "2024-01-01"}
    fn = takeout.load(bundle.path)  # the loader converts JSON arguments like the server will
    assert fn([2.0, 4.0], "2024-12-31")["day"].isoformat() == "2025-01-01"


def test_async_functions_and_generators_are_settled(tmp_path: Path) -> None:
    ns = run_cells(
        """
        import asyncio
        async def slow_double(x):
            await asyncio.sleep(0)
            return 2 * x
        def countdown(n):
            yield from range(n, 0, -1)
        async def ticks(n):
            for i in range(n):
                yield i
        """
    )
    for name, args, output in [
        ("slow_double", (21,), 42),
        ("countdown", (3,), [3, 2, 1]),
        ("ticks", (2,), [0, 1]),
    ]:
        bundle = takeout.pack(ns[name], tmp_path / f"{name}.takeout", examples=[args])
        assert bundle.manifest["examples"][0]["output"] == output
        from takeout.bundle import call

        assert call(bundle.path, list(args)) == output


# ── large buffers: out-of-band, read into private memory ─────────────────────────────────────


def _mapped_file(address: int) -> str:
    """The file mapped at `address` in this process ("" for anonymous memory)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc/self/maps to read the mappings from")
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if low <= address < high:
            return fields[5] if len(fields) == 6 else ""
    return ""


def test_large_arrays_go_to_buffer_files_and_load_into_private_memory(tmp_path: Path) -> None:
    ns = run_cells(
        """
        import numpy as np
        weights = np.arange(300_000, dtype=np.float64)   # 2.4 MB: out of band
        bias = np.ones(10)                               # small: stays in the stream
        def score(i):
            return float(weights[i] + bias[0])
        """
    )
    bundle = takeout.pack(ns["score"], tmp_path / "b.takeout", examples=[(7,)])
    assert bundle.manifest["buffers"] == [{"file": "buffers/0000.bin", "size": 2_400_000}]
    assert "buffers/0000.bin" in bundle.manifest["files"]
    assert (tmp_path / "b.takeout" / "function.pkl").stat().st_size < 100_000
    fn = takeout.load(bundle.path)
    assert fn(7) == 8.0
    weights = fn.__wrapped__.__globals__["weights"]  # load wraps it: the JSON conversions
    # The array's memory is private anonymous memory the checked bytes were read into, not
    # a mapping of the file, whose untouched pages would show later writes to it.
    assert _mapped_file(weights.ctypes.data) == ""
    weights[0] = -1.0  # the process may write, the file does not change
    assert takeout.load(bundle.path)(0) == 1.0


# ── refusals before a single byte is unpickled ─────────────────────────────────────────────


def _load_refused(path: Path, marker: Path, match: str, **kwargs: Any) -> None:
    with pytest.raises(TakeoutError, match=match):
        takeout.load(path, **kwargs)
    assert not marker.exists(), "the pickle was loaded before the check"


def test_a_tampered_payload_is_refused_unloaded(
    seed_bundle: takeout.Bundle, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    (seed_bundle.path / "function.pkl").write_bytes(_evil_pickle(marker))
    _load_refused(seed_bundle.path, marker, r"`function.pkl` does not match its sha256")


def test_a_rehashed_payload_fails_the_signature(seed: dict[str, Any], tmp_path: Path) -> None:
    bundle = takeout.pack(seed["km_predict_two"], tmp_path / "s.takeout", signing_key="k1")
    assert bundle.manifest["signature"].startswith("hmac-sha256:")
    marker = tmp_path / "pwned"
    evil = _evil_pickle(marker)
    (bundle.path / "function.pkl").write_bytes(evil)
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    import hashlib

    manifest["files"]["function.pkl"] = "sha256:" + hashlib.sha256(evil).hexdigest()
    (bundle.path / "manifest.json").write_text(json.dumps(manifest))
    _load_refused(bundle.path, marker, "signature does not match", signing_key="k1")
    _load_refused(bundle.path, marker, "is signed but no signing key")
    _load_refused(bundle.path, marker, "signature does not match", signing_key="other")


def test_signing_key_from_the_environment(
    seed: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unsigned = takeout.pack(seed["km_predict_two"], tmp_path / "u.takeout")
    monkeypatch.setenv("TAKEOUT_SIGNING_KEY", "secret")
    signed = takeout.pack(seed["km_predict_two"], tmp_path / "s.takeout")
    assert "signature" in signed.manifest
    expected = seed["km_predict_two"]([0.0, 0.0])
    assert takeout.load(signed.path)([0.0, 0.0]) == expected
    with pytest.raises(BundleIntegrityError, match="not signed but a signing key was given"):
        takeout.load(unsigned.path)
    with pytest.raises(UsageError, match="non-empty"):
        takeout.load(signed.path, signing_key="")


def test_missing_file_is_named(seed_bundle: takeout.Bundle) -> None:
    (seed_bundle.path / "pylock.toml").unlink()
    with pytest.raises(BundleIntegrityError, match=r"`pylock\.toml` is missing"):
        takeout.load(seed_bundle.path)


def test_a_changed_buffer_is_refused(tmp_path: Path) -> None:
    ns = run_cells("import numpy as np\nw = np.zeros(200_000)\ndef f():\n    return float(w[0])")
    bundle = takeout.pack(ns["f"], tmp_path / "b.takeout")
    assert takeout.load(bundle.path)() == 0.0  # also fills the verification cache
    buf = bundle.path / "buffers" / "0000.bin"
    data = bytearray(buf.read_bytes())
    data[0] ^= 1
    buf.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match=r"`buffers/0000\.bin` does not match"):
        takeout.load(bundle.path)


def test_unknown_format_version(seed_bundle: takeout.Bundle, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (seed_bundle.path / "function.pkl").write_bytes(_evil_pickle(marker))
    manifest = json.loads((seed_bundle.path / "manifest.json").read_text())
    manifest["format"] = "takeout/9"
    (seed_bundle.path / "manifest.json").write_text(json.dumps(manifest))
    _load_refused(seed_bundle.path, marker, r"format 'takeout/9' but this takeout reads")


def test_another_python_is_refused_with_the_one_to_use(seed_bundle: takeout.Bundle) -> None:
    manifest = json.loads((seed_bundle.path / "manifest.json").read_text())
    manifest["python"]["minor"] = "3.99"
    (seed_bundle.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        BundleError, match=r"packed with CPython 3\.99 .* load it with CPython 3\.99"
    ):
        takeout.load(seed_bundle.path)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        takeout.load(tmp_path / "nope.takeout")
    (tmp_path / "dir").mkdir()
    with pytest.raises(BundleError, match="is not a takeout bundle"):
        takeout.load(tmp_path / "dir")
    (tmp_path / "dir" / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="is not valid JSON"):
        takeout.load(tmp_path / "dir")
    (tmp_path / "dir" / "manifest.json").write_text('{"name": "x"}')
    with pytest.raises(BundleError, match="is not a takeout bundle"):
        takeout.load(tmp_path / "dir")


def test_a_manifest_path_cannot_escape_the_bundle(seed_bundle: takeout.Bundle) -> None:
    manifest = json.loads((seed_bundle.path / "manifest.json").read_text())
    manifest["files"]["../../etc/passwd"] = "sha256:" + "0" * 64
    (seed_bundle.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleIntegrityError, match="not a relative path inside the bundle"):
        takeout.load(seed_bundle.path)


def test_a_buffer_must_be_a_hashed_file(tmp_path: Path) -> None:
    ns = run_cells("import numpy as np\nw = np.zeros(200_000)\ndef f():\n    return float(w[0])")
    bundle = takeout.pack(ns["f"], tmp_path / "b.takeout")
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    manifest["buffers"][0]["file"] = "../../outside.bin"
    (bundle.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"lists buffers without a sha256 \(\.\./\.\./outside"):
        takeout.load(bundle.path)


# ── the runtime stays standalone ───────────────────────────────────────────────────────────


def test_runtime_imports_only_the_standard_library() -> None:
    # -S: no site-packages, as in the clean venv where takeout itself is not installed; the
    # runtime loads the type table from beside itself (and nothing else).
    # A module is the standard library's if it is built in or frozen or lives in the stdlib
    # folders (3.9 has no `sys.stdlib_module_names`).
    code = (
        "import sys, sysconfig, runpy; before = set(sys.modules);"
        f"runpy.run_path({_runtime.__file__!r});"
        "std = tuple(sysconfig.get_paths()[k] for k in ('stdlib', 'platstdlib'));"
        "new = {m.split('.')[0] for m in set(sys.modules) - before};"
        "spec = lambda m: getattr(sys.modules[m], '__spec__', None);"
        "ours = lambda m: spec(m) is not None and spec(m).origin not in ('built-in', 'frozen')"
        " and not str(spec(m).origin).startswith(std);"
        "print(sorted(m for m in new if ours(m)))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "['takeout_types']"


def test_pack_does_not_leave_cwd_files(tmp_path: Path) -> None:
    ns = run_cells("def f():\n    return 1")
    before = set(os.listdir(tmp_path))
    takeout.pack(ns["f"], tmp_path / "f.takeout")
    assert set(os.listdir(tmp_path)) - before == {"f.takeout"}


def test_pack_an_async_function_inside_a_running_event_loop(tmp_path: Path) -> None:
    ns = run_cells("async def double(x):\n    return 2 * x")

    async def in_a_cell() -> takeout.Bundle:  # a Jupyter cell runs inside an event loop
        return takeout.pack(ns["double"], tmp_path / "d.takeout", examples=[(21,)])

    bundle = asyncio.run(in_a_cell())
    assert bundle.manifest["examples"][0]["output"] == 42


def test_overwrite_keeps_a_directory_with_someone_elses_manifest(tmp_path: Path) -> None:
    webapp = tmp_path / "webapp"
    webapp.mkdir()
    (webapp / "manifest.json").write_text('{"name": "my pwa", "start_url": "/"}')
    (webapp / "index.html").write_text("<html></html>")
    ns = run_cells("def f():\n    return 1")
    with pytest.raises(UsageError, match="is not a takeout bundle; refusing to replace it"):
        takeout.pack(ns["f"], webapp, overwrite=True)
    assert (webapp / "index.html").exists()
