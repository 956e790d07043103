"""Images built by `takeout export --to container`, run the way a hardened cluster runs them:
podman, a Debian base made with mmdebstrap (`containers/base_image.py`), read-only root,
no capabilities, non-root. Skipped without podman, except under CI, where it fails.

One image per lock is built and shared by the tests of this module; the base image and the
build cache stay in podman's storage between runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import takeout
from takeout.export import _engine, _verify

from .support import ROOT, run_cells

pytestmark = pytest.mark.slow

BASE = "localhost/bookworm-python:3.11"
TAKEOUT = [sys.executable, "-m", "takeout.cli"]


@pytest.fixture(scope="module")
def podman() -> _engine.Engine:
    if shutil.which("podman") is None:
        if os.environ.get("CI"):
            pytest.fail("podman is not installed; .ci/run installs it before make test")
        pytest.skip("podman is not installed (apt-get install podman buildah mmdebstrap runc)")
    os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "containers" / "containers.conf"))
    subprocess.run([sys.executable, str(ROOT / "containers" / "base_image.py")], check=True)
    return _engine.find("podman")


def export(bundle: Path, out: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [*TAKEOUT, "export", str(bundle), "--to", "container", "-o", str(out),
         "--base-image", BASE, "--json", *args],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.stdout, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    result["returncode"] = done.returncode
    result["stderr"] = done.stderr
    return result


@pytest.fixture(scope="module")
def km(
    podman: _engine.Engine, seed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("km-image")
    bundle = takeout.pack(
        seed["km_predict_one"], work / "km_predict_one.takeout",
        examples=[([0.5, 0.5],), ([9.0, -3.0],)],
    ).path  # fmt: skip
    result = export(bundle, work / "context", "--verify")
    result["bundle"] = bundle
    result["work"] = work
    yield result
    if result.get("image"):
        podman.run("rmi", "--force", result["image"])


def test_seed_image_passes_verify(km: dict[str, Any]) -> None:
    assert km["returncode"] == 0, km["stderr"]
    check = km["verify"]
    assert check["ok"], check["problems"]
    assert [e["ok"] for e in check["examples"]["examples"]] == [True, True]
    assert check["exit_status"] == 0  # SIGTERM drained and exited cleanly
    assert check["user"] == "10001"
    assert check["size"] > 0 and check["ready_seconds"] > 0 and check["rss"] > 0
    assert check["load_requests"] > 0


def test_seed_image_serves_call_and_kserve_v1_read_only_as_non_root(
    podman: _engine.Engine, km: dict[str, Any], seed: dict[str, Any]
) -> None:
    fn = seed["km_predict_one"]
    with _verify.run(podman, km["image"]) as running:
        _verify.wait_ready(running)
        assert _verify.request(running.port, "POST", "/call", [[0.5, 0.5]]) == (
            200, {"result": int(fn([0.5, 0.5]))},
        )  # fmt: skip
        status, body = _verify.request(
            running.port, "POST", "/v1/models/km_predict_one:predict",
            {"instances": [[0.5, 0.5], [9.0, -3.0]]},
        )  # fmt: skip
        assert status == 200
        assert body == {"predictions": [int(fn([0.5, 0.5])), int(fn([9.0, -3.0]))]}
        assert {v.split()[0] for v in running.status("Uid")} == {"10001"}
        # the root filesystem refuses writes; /tmp takes them
        denied = podman.run("exec", running.name, "/opt/venv/bin/python", "-c",
                            "open('/srv/bundle/x', 'w')")  # fmt: skip
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr
        allowed = podman.run("exec", running.name, "/opt/venv/bin/python", "-c",
                             "open('/tmp/x', 'w')")  # fmt: skip
        assert allowed.returncode == 0, allowed.stderr
        assert running.stop() == 0


def test_seed_image_answers_kserve_v2_with_tritonclient(
    podman: _engine.Engine, km: dict[str, Any], seed: dict[str, Any]
) -> None:
    import numpy as np

    fn = seed["km_predict_one"]
    with _verify.run(podman, km["image"]) as running:
        _verify.wait_ready(running)
        _, document = _verify.request(running.port, "GET", "/openapi.json")
        if not any(path.startswith("/v2") for path in document.get("paths", {})):
            pytest.skip("this takeout serves no KServe v2 routes yet")
        import tritonclient.http as triton

        client = triton.InferenceServerClient(f"127.0.0.1:{running.port}")
        assert client.is_server_live() and client.is_model_ready("km_predict_one")
        metadata = client.get_model_metadata("km_predict_one")
        (param,) = metadata["inputs"]
        tensor = triton.InferInput(param["name"], [2], param["datatype"])
        tensor.set_data_from_numpy(np.array([0.5, 0.5], dtype=np.float64))
        answer = client.infer("km_predict_one", [tensor])
        output = metadata["outputs"][0]["name"]
        assert answer.as_numpy(output).tolist() in ([int(fn([0.5, 0.5]))], int(fn([0.5, 0.5])))


def test_save_writes_an_oci_archive_of_the_same_image(
    podman: _engine.Engine, km: dict[str, Any]
) -> None:
    archive = km["work"] / "km.tar"
    again = export(km["bundle"], km["work"] / "again", "--save", str(archive))
    assert again["returncode"] == 0, again["stderr"]
    assert again["image"] == km["image"]  # the same context: the same tag
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"oci-layout", "index.json"} <= names


def test_base_image_with_another_python_fails_early_in_one_sentence(
    podman: _engine.Engine, tmp_path: Path
) -> None:
    ns = run_cells("def double(x: int) -> int:\n    return 2 * x")
    bundle = takeout.pack(ns["double"], tmp_path / "double.takeout", examples=[(2,)]).path
    # as packed with CPython 3.12: its only pin, cloudpickle, is a py3 wheel either way
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["python"]["minor"] = "3.12"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    result = subprocess.run(
        [*TAKEOUT, "export", str(bundle), "--to", "container", "-o", str(tmp_path / "c"),
         "--base-image", BASE, "--build", "--tag", "localhost/takeout-test-py312:1"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "takeout: error: podman build failed: the base image has Python 3.11 but bundle "
        "`double` needs 3.12; pass --base-image with Python 3.12"
    ], result.stderr


def test_missing_local_base_image_is_one_sentence(
    podman: _engine.Engine, km: dict[str, Any], tmp_path: Path
) -> None:
    result = subprocess.run(
        [*TAKEOUT, "export", str(km["bundle"]), "--to", "container", "-o", str(tmp_path / "c"),
         "--base-image", "localhost/no-such-base:1", "--build"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "takeout: error: base image `localhost/no-such-base:1` is not in podman's local "
        "storage; build it first (`make base-image` in takeout's repository builds a Debian "
        "one) or pass another --base-image"
    )


@pytest.fixture(scope="module")
def numpy_bundles(
    podman: _engine.Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Path]]:
    """Two numpy-only bundles (one lock: one venv layer built, then cached): a function using a
    local helper module, and one closing over a 100 MB array."""
    work = tmp_path_factory.mktemp("numpy-bundles")
    helpers = work / "src"
    helpers.mkdir()
    (helpers / "feature_helpers.py").write_text(
        "import numpy as np\n\ndef scaled(x):\n    return (np.asarray(x) * 2.0).tolist()\n"
    )
    sys.path.insert(0, str(helpers))
    try:
        ns = run_cells(
            "from feature_helpers import scaled",
            "def featurize(x: list) -> list:\n    return scaled(x) + [len(x)]",
            "import numpy as np\nbig = np.arange(12_500_000, dtype=np.float64)",
            "def lookup(i: int) -> float:\n    return float(big[i] * 0.5)",
        )
        bundles = {
            "helper": takeout.pack(
                ns["featurize"], work / "featurize.takeout", examples=[([1.0, 2.5],)]
            ).path,
            "buffer": takeout.pack(
                ns["lookup"], work / "lookup.takeout", examples=[(7,), (12_499_999,)]
            ).path,
        }
    finally:
        sys.path.remove(str(helpers))
        sys.modules.pop("feature_helpers", None)
    shutil.rmtree(helpers)  # the image must not need the helper's file
    yield bundles
    for line in podman.run("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split():
        if line.startswith(("localhost/takeout-featurize:", "localhost/takeout-lookup:")):
            podman.run("rmi", "--force", line)


@pytest.mark.parametrize("which", ["helper", "buffer"])
def test_helper_module_and_100_mb_buffer_bundles_build_and_verify(
    podman: _engine.Engine, numpy_bundles: dict[str, Path], tmp_path: Path, which: str
) -> None:
    bundle = numpy_bundles[which]
    result = export(bundle, tmp_path / "context", "--verify")
    # images are removed with the fixture: the two share the numpy venv layer
    assert result["returncode"] == 0, result["stderr"]
    assert result["verify"]["ok"], result["verify"]["problems"]
    assert result["verify"]["exit_status"] == 0
    if which == "buffer":
        manifest = json.loads((bundle / "manifest.json").read_text())
        (buffer,) = manifest["buffers"]
        assert buffer["size"] == 100_000_000
        # the buffer travels in the last layer, the bundle's own
        history = podman.run("history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}",
                             result["image"]).stdout.splitlines()  # fmt: skip
        assert "COPY" in history[1] and "/srv/bundle" in history[1], history[:3]
        assert history[1].split("\t")[0].endswith("MB"), history[:3]
        with _verify.run(podman, result["image"]) as running:
            _verify.wait_ready(running)
            assert _verify.request(running.port, "POST", "/call", {"i": 3}) == (
                200, {"result": 1.5},
            )  # fmt: skip
            maps = "".join(Path(f"/proc/{pid}/maps").read_text() for pid in running.pids)
            # read once into private memory while hashed (the loader never maps a bundle
            # file, so a write to it after the check cannot change what is served)
            assert f"/srv/bundle/{buffer['file']}" not in maps
            assert running.rss() < (90 << 20) + buffer["size"], running.rss()
