"""`takeout export`: the build context, the manifests and every bad input, without building
an image (tests/test_export_container.py builds and runs them with podman)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import takeout
from takeout.export import _yaml, kserve

pytestmark = pytest.mark.slow

TAKEOUT = [sys.executable, "-m", "takeout.cli"]
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
KEY = "s3cret-key-never-in-files"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TAKEOUT, *args], capture_output=True, text=True, env=env)


def one_sentence(out: subprocess.CompletedProcess[str]) -> str:
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("takeout: error: "), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


@pytest.fixture(scope="module")
def km(seed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("km") / "km_predict_one.takeout"
    return takeout.pack(seed["km_predict_one"], out, examples=[([0.5, 0.5],)]).path


def tree(root: Path) -> dict[str, tuple[str, int, float]]:
    return {
        str(p.relative_to(root)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mode,
            p.stat().st_mtime,
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ── the build context ───────────────────────────────────────────────────────────────────────


def test_context_is_complete_checked_and_deterministic(km: Path, tmp_path: Path) -> None:
    first = cli("export", str(km), "--to", "container", "-o", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    second = cli("export", str(km), "--to", "container", "-o", str(tmp_path / "b"))
    assert second.returncode == 0, second.stderr
    a, b = tmp_path / "a", tmp_path / "b"
    assert tree(a) == tree(b)  # same bundle and options: same bytes and modes

    manifest = json.loads((km / "manifest.json").read_text())
    pins = {*manifest["lock"], *manifest["runtime"]}
    requirements = (a / "wheels" / "requirements.txt").read_text().splitlines()[1:]
    pinned = {line.split()[0] for line in requirements}
    assert pinned == pins | {f"takeout=={takeout._core.__version__}"}
    # every wheel's sha256 is the one pylock.toml records (takeout's own is not in the lock)
    locked = (km / "pylock.toml").read_text()
    for line in requirements:
        pin, digest = line.split(" --hash=sha256:")
        wheel = next((a / "wheels").glob(pin.split("==")[0].replace("-", "_") + "-*.whl"), None)
        assert wheel is not None, pin
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() == digest
        if not pin.startswith("takeout=="):
            assert digest in locked
            assert "cp311-cp311" in wheel.name or "py3-none-any" in wheel.name
    # the bundle exactly as its manifest lists it, loadable from the context
    assert sorted(tree(a / "bundle")) == sorted(["manifest.json", *manifest["files"]])
    assert takeout.load(a / "bundle")([0.5, 0.5]) == manifest["examples"][0]["output"]

    text = (a / "Containerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert stages == [
        "FROM docker.io/library/python:3.11-slim AS venv",
        "FROM docker.io/library/python:3.11-slim",
    ]
    final = text.split("\n" + stages[1] + "\n")[1]
    assert "COPY wheels" not in final and "pip install" not in final  # no wheels, no pip
    assert final.strip().splitlines()[-2].startswith("COPY bundle/")  # the last layer
    assert "USER 10001:10001" in final and "PORT=8080" in final
    assert json.loads(final.strip().splitlines()[-1].split(" ", 1)[1])[:3] == [
        "/opt/venv/bin/takeout",
        "serve",
        "/srv/bundle",
    ]


def test_wheelhouse_gives_an_export_without_network_and_blas_setting(
    km: Path, tmp_path: Path
) -> None:
    first = cli("export", str(km), "--to", "container", "-o", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    # a fresh cache and no reachable index: the wheelhouse alone must do
    env = {
        **os.environ,
        "TAKEOUT_CACHE_DIR": str(tmp_path / "cache"),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "TAKEOUT_WHEEL": str(next((tmp_path / "a" / "wheels").glob("takeout-*.whl"))),
    }
    out = cli(
        "export", str(km), "--to", "container", "-o", str(tmp_path / "b"),
        "--wheelhouse", str(tmp_path / "a" / "wheels"), "--blas-threads", "2", env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert tree(tmp_path / "a" / "wheels") == tree(tmp_path / "b" / "wheels")
    assert "TAKEOUT_BLAS_THREADS=2" in (tmp_path / "b" / "Containerfile").read_text()
    # and without the wheelhouse (nor a cache), the download failure is one sentence
    env["TAKEOUT_CACHE_DIR"] = str(tmp_path / "empty-cache")
    out = cli("export", str(km), "--to", "container", "-o", str(tmp_path / "c"), env=env)
    assert out.returncode == 1
    assert "could not download `" in one_sentence(out)
    assert not (tmp_path / "c").exists()


# ── bad input: one sentence, nothing lost ───────────────────────────────────────────────────


def test_unknown_target(km: Path, tmp_path: Path) -> None:
    out = cli("export", str(km), "--to", "heroku", "-o", str(tmp_path / "x"))
    assert out.returncode == 2
    assert "export target `heroku` is unknown; use --to container" in one_sentence(out)
    assert not (tmp_path / "x").exists()


def test_existing_output_needs_force_and_a_foreign_directory_is_never_replaced(
    km: Path, tmp_path: Path
) -> None:
    args = ["export", str(km), "--to", "kubernetes", "--image", "r.example/km:1"]
    target = tmp_path / "k8s"
    assert cli(*args, "-o", str(target)).returncode == 0
    out = cli(*args, "-o", str(target))
    assert out.returncode == 2
    assert f"`{target}` already exists; pass --force" in one_sentence(out)
    assert cli(*args, "-o", str(target), "--force", "--replicas", "3").returncode == 0
    assert "replicas: 3" in (target / "deployment.yaml").read_text()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    out = cli(*args, "-o", str(mine), "--force")
    assert out.returncode == 2
    assert "is not a takeout export; refusing to replace it" in one_sentence(out)
    assert (mine / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k8s", "mine"]  # no leftovers


def test_no_engine_is_one_sentence_saying_what_to_install(km: Path, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    out = cli("export", str(km), "--to", "container", "-o", str(tmp_path / "x"), "--build", env=env)
    assert out.returncode == 2
    assert "no container engine found (podman, docker or buildah); install podman" in (
        one_sentence(out)
    )
    out = cli("export", str(km), "--to", "container", "--engine", "docker", "--build",
              "-o", str(tmp_path / "x"), env=env)  # fmt: skip
    assert "engine `docker` is not installed" in one_sentence(out)
    assert not (tmp_path / "x").exists()


def _rewrite(bundle: Path, name: str, text: str) -> None:
    """Change one file of a bundle and record its new sha256, as a bundle packed elsewhere
    would have it."""
    (bundle / name).write_text(text)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][name] = "sha256:" + hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))


def test_a_pin_without_a_wheel_for_the_target_is_named(km: Path, tmp_path: Path) -> None:
    import shutil

    bundle = tmp_path / "b.takeout"
    shutil.copytree(km, bundle)
    # the lock as uv writes it on Windows: numpy's one wheel is a win_amd64 one
    lock = (bundle / "pylock.toml").read_text()
    start = lock.index('name = "numpy"')
    end = lock.index("[[packages]]", start)
    block = lock[start:end]
    assert block.count(".whl") == 1
    windows = re.sub(r"(numpy-[^/]*-cp311-cp311-)[^/]*?\.whl", r"\1win_amd64.whl", block)
    lock = lock[:start] + windows + lock[end:]
    _rewrite(bundle, "pylock.toml", lock)
    numpy_pin = next(p for p in json.loads((bundle / "manifest.json").read_text())["lock"]
                     if p.startswith("numpy=="))  # fmt: skip
    out = cli("export", str(bundle), "--to", "container", "-o", str(tmp_path / "x"))
    assert out.returncode == 1
    sentence = one_sentence(out)
    assert f"`{numpy_pin}` has no wheel for CPython 3.11 on manylinux x86_64" in sentence
    assert "--wheelhouse" in sentence and "--base-image" in sentence
    assert not (tmp_path / "x").exists()


def test_signed_bundle_needs_its_key_which_lands_in_no_file(
    seed: dict[str, Any], tmp_path: Path
) -> None:
    bundle = takeout.pack(
        seed["km_predict_two"], tmp_path / "s.takeout", examples=[([0.5, 0.5],)], signing_key=KEY
    ).path
    out = cli("export", str(bundle), "--to", "kubernetes", "--image", "r/x:1",
              "-o", str(tmp_path / "k"))  # fmt: skip
    assert out.returncode == 2
    assert "is signed; pass --signing-key" in one_sentence(out)
    assert not (tmp_path / "k").exists()
    env = {**os.environ, "TAKEOUT_SIGNING_KEY": KEY}
    for to, extra in (("kubernetes", ["--image", "r/x:1"]), ("kserve", ["--image", "r/x:1"]),
                      ("container", [])):  # fmt: skip
        out = cli("export", str(bundle), "--to", to, "-o", str(tmp_path / to), *extra, env=env)
        assert out.returncode == 0, out.stderr
        for path in (tmp_path / to).rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path
    deployment = (tmp_path / "kubernetes" / "deployment.yaml").read_text()
    assert 'name: "TAKEOUT_SIGNING_KEY"' in deployment and "secretKeyRef" in deployment
    # a wrong key is refused before anything is written
    env["TAKEOUT_SIGNING_KEY"] = "wrong"
    out = cli("export", str(bundle), "--to", "kserve", "--image", "r/x:1", "-o",
              str(tmp_path / "w"), env=env)  # fmt: skip
    assert out.returncode != 0 and not (tmp_path / "w").exists()
    one_sentence(out)


def test_cluster_targets_need_an_image(km: Path, tmp_path: Path) -> None:
    out = cli("export", str(km), "--to", "kserve", "-o", str(tmp_path / "x"))
    assert out.returncode == 2
    assert "--to kserve needs --image IMAGE" in one_sentence(out)


def test_ray_is_dispatched_to_takeout_ray(km: Path, tmp_path: Path) -> None:
    out = cli("export", str(km), "--to", "ray", "-o", str(tmp_path / "r"), "--image", "r/x:1")
    try:
        import takeout.ray  # noqa: F401
    except ImportError:
        assert out.returncode == 2
        assert "--to ray is not available yet" in one_sentence(out)
        assert not (tmp_path / "r").exists()
    else:
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "r" / "takeout-export.json").is_file()


# ── manifests, schema-checked offline ───────────────────────────────────────────────────────


def load_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text())


def validate(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_manifests_validate_and_harden(km: Path, tmp_path: Path) -> None:
    out = cli("export", str(km), "--to", "kubernetes", "--image", "registry.example/km:1",
              "--namespace", "ml", "--service-monitor", "-o", str(tmp_path / "k"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    k = tmp_path / "k"
    kustomization = load_yaml(k / "kustomization.yaml")
    assert kustomization["namespace"] == "ml"
    assert set(kustomization["resources"]) == {
        "deployment.yaml", "service.yaml", "pdb.yaml", "hpa.yaml", "servicemonitor.yaml"
    }  # fmt: skip
    kinds = {}
    for name in kustomization["resources"]:
        doc = load_yaml(k / name)
        kinds[doc["kind"]] = doc
        if doc["kind"] != "ServiceMonitor":  # a custom resource: no schema to check against
            validate(doc)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert server["image"] == "registry.example/km:1"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = server["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert server["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"name": "tmp", "mountPath": "/tmp"} in server["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in pod["volumes"]
    # the grace period covers the preStop sleep and the drain
    assert pod["terminationGracePeriodSeconds"] >= 5 + 30
    env = {e["name"]: e.get("value") for e in server["env"]}
    cpu = server["resources"]["requests"]["cpu"]
    assert env["PORT"] == "8080"
    assert env["TAKEOUT_BLAS_THREADS"] == str(max(1, int(cpu.rstrip("m")) // 1000))
    annotations = kinds["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert (
        kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
        == (kinds["Deployment"]["metadata"]["name"])
    )


@pytest.mark.parametrize("mode", ["raw", "serverless"])
def test_kserve_inference_service_validates(km: Path, tmp_path: Path, mode: str) -> None:
    out = cli("export", str(km), "--to", "kserve", "--image", "registry.example/km:1",
              "--mode", mode, "-o", str(tmp_path / "s"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    isvc = load_yaml(tmp_path / "s" / "inferenceservice.yaml")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert (
        isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == (kserve.MODES[mode])
    )
    predictor = isvc["spec"]["predictor"]
    (server,) = predictor["containers"]
    assert server["ports"][0]["containerPort"] == 8080
    assert ("startupProbe" in server) is (mode == "raw")  # Knative gates on its own readiness
    # a custom resource: its pod template checked as a v1 PodTemplate
    spec = {k: v for k, v in predictor.items() if k not in kserve.PREDICTOR_ONLY}
    validate(
        {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": isvc["metadata"]["name"]},
            "template": {"metadata": {"labels": isvc["metadata"]["labels"]}, "spec": spec},
        }
    )


def test_kubernetes_requests_come_from_verify_when_it_ran(km: Path, tmp_path: Path) -> None:
    from takeout.export import _verify

    env = {**os.environ, "TAKEOUT_CACHE_DIR": str(tmp_path / "cache")}
    args = ["export", str(km), "--to", "kubernetes", "--image", "r/x:1"]
    out = cli(*args, "-o", str(tmp_path / "a"), env=env)
    assert "estimated from the bundle's size" in out.stdout
    check = _verify.ImageCheck(image="x", ok=True, rss=100 << 20, rss_peak=200 << 20,
                               cpu_per_second=1.7)  # fmt: skip
    os.environ["TAKEOUT_CACHE_DIR"] = env["TAKEOUT_CACHE_DIR"]
    try:
        _verify.record(km / "manifest.json", check)
    finally:
        del os.environ["TAKEOUT_CACHE_DIR"]
    out = cli(*args, "-o", str(tmp_path / "b"), env=env)
    assert "measured by --verify" in out.stdout, out.stdout
    server = load_yaml(tmp_path / "b" / "deployment.yaml")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert server["resources"]["requests"] == {"cpu": "1000m", "memory": "304Mi"}
    assert {"name": "TAKEOUT_BLAS_THREADS", "value": "1"} in server["env"]


def test_yaml_writer_round_trips_through_a_real_parser() -> None:
    import yaml

    doc = {
        "a": {"b": [{"c": "8080", "d": [1, 2.5, True, None]}, []], "e": {}},
        "true": "on",
        "k.with/slash": ["x", {"y": "z: w"}],
    }
    assert yaml.safe_load(_yaml.dump(doc)) == doc


def test_with_ray_adds_ray_serve_resolved_around_the_lock(km: Path, tmp_path: Path) -> None:
    out = cli("export", str(km), "--to", "container", "-o", str(tmp_path / "r"),
              "--with-ray", "ray[serve]==2.60.0")  # fmt: skip
    assert out.returncode == 0, out.stderr
    requirements = (tmp_path / "r" / "wheels" / "requirements.txt").read_text()
    pinned = {line.split()[0].lower() for line in requirements.splitlines()[1:]}
    manifest = json.loads((km / "manifest.json").read_text())
    assert {p.lower() for p in manifest["lock"]} <= pinned  # the bundle's pins, unchanged
    assert "ray==2.60.0" in pinned
    assert any(p.startswith(("fastapi==", "starlette==")) for p in pinned)  # serve's extra
    for line in requirements.splitlines()[1:]:
        pin, digest = line.split(" --hash=sha256:")
        matches = [w for w in (tmp_path / "r" / "wheels").glob("*.whl")
                   if hashlib.sha256(w.read_bytes()).hexdigest() == digest]  # fmt: skip
        assert matches, pin
    out = cli("export", str(km), "--to", "container", "-o", str(tmp_path / "x"),
              "--with-ray", "numpy")  # fmt: skip
    assert out.returncode == 2
    assert "--with-ray `numpy` does not name ray" in one_sentence(out)
