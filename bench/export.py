"""`takeout export --to container`, measured: the seed's `km_predict_one` (scikit-learn).

- build time, cold (empty wheel cache, no build cache; the base image present) and cached
  (a second export of the same bundle: wheels from the cache, layers from the build cache),
  and again after the model changed (only the bundle layer rebuilds);
- image size against the base image plus the lock's wheels;
- `podman run` to the first 200 on /readyz (median of 3), RSS after a short load;
- requests/s with wrk at c=1 and c=64, in the container (published on 127.0.0.1) against
  `takeout serve` of the same bundle on the host, in the same run.

Needs podman and the base image (`make base-image`). BentoML and MLflow cannot build here (they
pull their base images from Docker Hub), so their published figures are quoted in the README.

    python bench/export.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "containers" / "containers.conf"))

import takeout  # noqa: E402
from takeout.export import _engine, _verify, export  # noqa: E402

BASE = "localhost/bookworm-python:3.11"
SAMPLE = [0.5, 0.5]


def log(message: str) -> None:
    print(f"bench/export: {message}", file=sys.stderr, flush=True)


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run")
    args = parser.parse_args()
    from serve import LoadGenerator  # bench/serve.py's wrk/oha driver, same body shape

    podman = _engine.find("podman")
    subprocess.run([sys.executable, str(ROOT / "containers" / "base_image.py")], check=True)
    from tests.support import EXAMPLES, notebook_cells, run_cells

    work = Path(tempfile.mkdtemp(prefix="takeout-bench-export-"))
    images: list[str] = []
    try:
        seed = run_cells(*notebook_cells(EXAMPLES / "kmeans.ipynb"))
        bundle = takeout.pack(
            seed["km_predict_one"], work / "km_predict_one.takeout", examples=[(SAMPLE,)]
        ).path
        os.environ["TAKEOUT_CACHE_DIR"] = str(work / "cache")  # cold: no wheel cached

        def build(out: str, *extra: str) -> Any:
            result = export(bundle, "container", work / out, base_image=BASE)
            tag = f"localhost/takeout-bench:{out}"
            done = podman.run("build", *extra, "-q", "-t", tag, str(result.path))
            assert done.returncode == 0, done.stderr
            images.append(tag)
            return result, tag

        cold, (context, image) = timed(lambda: build("cold", "--no-cache"))
        # --no-cache keeps no layers to reuse: this one has the wheels cached, not the layers
        wheels_cached, _ = timed(lambda: build("wheels-cached"))
        cached, _ = timed(lambda: build("cached"))
        # a new model: the same lock, another bundle; only its layer is rebuilt
        bundle = takeout.pack(
            seed["km_predict_one"], work / "km2.takeout", examples=[(SAMPLE,), ([1.0, 1.0],)]
        ).path
        new_model, _ = timed(lambda: build("new-model"))

        wheels = sum(p.stat().st_size for p in (context.path / "wheels").glob("*.whl"))
        size, base_size = podman.size(image), podman.size(BASE)

        ready = []
        for _ in range(3):
            with _verify.run(podman, image) as running:
                ready.append(_verify.wait_ready(running))
                running.stop()
        check = _verify.verify_image(podman, image, json.loads(
            (context.path / "bundle" / "manifest.json").read_text()))  # fmt: skip

        load = LoadGenerator(work)
        figures: dict[str, dict[int, dict[str, Any]]] = {}
        with _verify.run(podman, image) as running:
            _verify.wait_ready(running)
            figures["container (podman, published port)"] = {
                c: load.run(f"{running.url}/call", c, args.seconds) for c in (1, 64)
            }
            running.stop()
        port = _verify.free_port()
        host = subprocess.Popen(
            [sys.executable, "-m", "takeout.cli", "serve", str(context.path / "bundle"),
             "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if _verify.request(port, "GET", "/readyz", timeout=1)[0] == 200:
                        break
                except OSError:
                    time.sleep(0.05)
            figures["takeout serve on the host"] = {
                c: load.run(f"http://127.0.0.1:{port}/call", c, args.seconds) for c in (1, 64)
            }
        finally:
            host.terminate()
            host.wait(timeout=60)
    finally:
        for tag in images:
            podman.run("rmi", "--force", tag)
        shutil.rmtree(work, ignore_errors=True)

    print("| measure | km_predict_one (scikit-learn) |")
    print("|---|---:|")
    print(f"| build, cold (wheels downloaded, no layer cache) | {cold:.1f} s |")
    print(f"| build, wheels cached, no layer cache | {wheels_cached:.1f} s |")
    print(f"| build, cached (same bundle again) | {cached:.1f} s |")
    print(f"| build, new model (same lock: one layer) | {new_model:.1f} s |")
    print(f"| image size | {size / 1e6:.0f} MB |")
    print(f"| base image + the lock's wheels (compressed) | {base_size / 1e6:.0f} MB + "
          f"{wheels / 1e6:.0f} MB |")  # fmt: skip
    print(f"| run → first 200 on /readyz (median of 3) | {statistics.median(ready):.2f} s |")
    print(f"| RSS after {check.load_requests} requests | {check.rss / 2**20:.0f} MiB |")
    print()
    print("| server | c=1 req/s | c=64 req/s | p99 c=64 |")
    print("|---|---:|---:|---:|")
    for name, runs in figures.items():
        print(f"| {name} | {runs[1]['rps']:,.0f} | {runs[64]['rps']:,.0f} | "
              f"{runs[64]['p99_ms']:.1f} ms |")  # fmt: skip
    host_rps = figures["takeout serve on the host"][64]["rps"]
    box_rps = figures["container (podman, published port)"][64]["rps"]
    print(f"\ncontainer / host at c=64: {box_rps / host_rps:.2f}")


if __name__ == "__main__":
    main()
