"""takeout on Ray Serve against a hand-written Ray Serve deployment and `takeout serve`.

    .venv/bin/python bench/ray.py [--duration 5] [--json]

For the seed's `km_predict_one` (scikit-learn) and a BLAS-heavy function (a 384×384 matrix
product per call), each packed into a bundle and served by 2 replicas (or workers), requests
per second and p50/p99 latency at 1, 8 and 64 keep-alive connections (wrk, as bench/serve.py
runs it) against:

- `takeout.ray.app` on Ray Serve: the bundle behind takeout's Rust request core;
- a hand-written deployment in the shape Ray's documentation teaches: a class that unpickles
  the model in `__init__` and parses the Starlette request in `async def __call__`;
- `takeout serve --workers 2` on the same machine, without Ray.

Both Ray variants go through the same Serve proxy on the same local cluster (started here, in
a temp dir of its own, and stopped at the end). Also measured: deploy → first 200 of
`POST /call` for both Ray variants (the bundle's upload to the object store included for
takeout). Tables to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This file is named ray.py: its folder must not be on the path, or `import ray` finds it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))


def _module(name: str, file: str) -> Any:
    """A module of this folder by its path (the folder itself is off `sys.path`, see above)."""
    spec = importlib.util.spec_from_file_location(name, HERE / file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_module("_util", "_util.py")  # what bench/serve.py imports
# bench/serve.py's load generator and HTTP probe, not a copy of them.
bench_serve = _module("bench_serve", "serve.py")
BODY, CONCURRENCY, log, post = bench_serve.BODY, (1, 8, 64), bench_serve.log, bench_serve.post

BLAS = """
import numpy as np

W = np.random.default_rng(0).normal(size=(384, 384))

def blas_heavy(sample: list) -> float:
    '''A matrix product per call: the time goes to BLAS, not to Python.'''
    return float(np.trace(W @ W) * sample[0])
"""


class Handwritten:
    """What Ray Serve's documentation shows: load a pickled model, parse the request, call,
    return a dict for Serve to encode."""

    def __init__(self, model_path: str) -> None:
        import pickle

        with open(model_path, "rb") as fh:
            self.model = pickle.load(fh)

    async def __call__(self, request: Any) -> dict[str, Any]:
        body = await request.json()
        result = self.model(body["sample"])
        return {"result": result.item() if hasattr(result, "item") else result}


def first_200(url: str, started: float, limit: float = 300) -> float:
    while time.perf_counter() - started < limit:
        if post(url, BODY)[0] == 200:
            return time.perf_counter() - started
        time.sleep(0.01)
    raise RuntimeError(f"{url} gave no 200 within {limit:.0f} s")


def load(generator: Any, url: str, duration: float) -> dict[int, dict[str, Any]]:
    out = {}
    for c in CONCURRENCY:
        generator.run(url, c, 1)  # warm the connections and the replicas
        figures = generator.run(url, c, duration)
        if figures["non_2xx"] or figures["socket_errors"]:
            raise RuntimeError(f"{url} at c={c}: errors during the run: {figures}")
        out[c] = figures
        log(f"  c={c}: {figures['rps']:,.0f} req/s, p99 {figures['p99_ms']:.1f} ms")
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from tests._ray_cluster import Cluster

    # Before anything imports Ray: importing it changes this process's environment, which
    # `ray start` would inherit, and reads the token settings once, which `join` sets.
    log("starting a local Ray cluster")
    cluster = Cluster()
    work = Path(tempfile.mkdtemp(prefix="takeout-bench-ray-"))
    try:
        cluster.join()
        result = _measure(cluster, args, work)
    finally:
        import ray

        ray.shutdown()
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    return result


def _measure(cluster: Any, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import cloudpickle
    from tests.support import EXAMPLES, notebook_cells, run_cells

    import takeout
    import takeout.ray
    from ray import serve

    generator = bench_serve.LoadGenerator(work)
    # Ray's proxy queues: at c=64 a call waits seconds, past wrk's 2 s, and is still answered.
    generator.request_timeout = 30
    seed = run_cells(*notebook_cells(EXAMPLES / "kmeans.ipynb"))
    functions = {
        "km_predict_one": seed["km_predict_one"],
        "blas_heavy": run_cells(BLAS)["blas_heavy"],
    }
    result: dict[str, Any] = {"duration_s": args.duration, "functions": {}}
    proxy = f"http://127.0.0.1:{cluster.http_port}"
    # The first deployments on a new cluster wait for Serve's proxy, the worker pool and the
    # page cache (Ray's, sklearn's, takeout's modules): one of each variant, not timed, so
    # neither pays that for the other.
    warm = work / "warm.pkl"
    warm.write_bytes(cloudpickle.dumps(functions["km_predict_one"]))
    warm_bundle = takeout.pack(functions["km_predict_one"], work / "warm.takeout").path
    for application, path in (
        (serve.deployment(Handwritten, name="warm-up").bind(str(warm)), "/w"),
        (takeout.ray.app(warm_bundle, name="warm-up"), "/w/call"),
    ):
        serve._run(application, _blocking=False, name="warm-up", route_prefix="/w")
        first_200(proxy + path, time.perf_counter())
        serve.delete("warm-up")
    takeout.ray._release("warm-up", keep=None)
    for name, fn in functions.items():
        bundle = takeout.pack(fn, work / f"{name}.takeout", examples=[([0.5, 0.5],)]).path
        model = work / f"{name}.pkl"
        model.write_bytes(cloudpickle.dumps(takeout.load(bundle)))
        figures: dict[str, Any] = {}

        log(f"{name}: takeout serve --workers 2")
        port = bench_serve.free_port()
        argv = [sys.executable, "-m", "takeout.cli", "serve", str(bundle), f"--port={port}"]
        server = bench_serve.Server("takeout serve", [*argv, "--workers=2"], port, {}, work)
        try:
            alone = load(generator, server.url + "/call", args.duration)
            figures["takeout serve ×2"] = {"load": alone}
        finally:
            server.stop()

        log(f"{name}: takeout.ray.app on Ray Serve, 2 replicas")
        started = time.perf_counter()
        application = takeout.ray.app(bundle, num_replicas=2, name=f"takeout-{name}")
        serve._run(application, _blocking=False, name=f"takeout-{name}", route_prefix="/t")
        ready = first_200(proxy + "/t/call", started)
        figures["takeout on Ray Serve"] = {
            "deploy_to_first_200_s": ready,
            "load": load(generator, proxy + "/t/call", args.duration),
        }
        serve.delete(f"takeout-{name}")
        takeout.ray._release(f"takeout-{name}", keep=None)

        log(f"{name}: hand-written Ray Serve deployment, 2 replicas")
        started = time.perf_counter()
        deployment = serve.deployment(Handwritten, name=f"hand-{name}", num_replicas=2)
        serve._run(
            deployment.bind(str(model)), _blocking=False, name=f"hand-{name}", route_prefix="/h"
        )
        ready = first_200(proxy + "/h", started)
        figures["hand-written Ray Serve"] = {
            "deploy_to_first_200_s": ready,
            "load": load(generator, proxy + "/h", args.duration),
        }
        serve.delete(f"hand-{name}")
        result["functions"][name] = figures
    return result


def report(result: dict[str, Any]) -> str:
    lines = [
        f"bench/ray.py · 2 replicas or workers · wrk, {result['duration_s']:g} s per run, "
        "loopback, the same 2 cores",
        "",
    ]
    for name, figures in result["functions"].items():
        lines += [
            f"{name}",
            "| server | c=1 req/s | c=8 | c=64 | p99 c=1 | p99 c=64 | deploy → first 200 |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, f in figures.items():
            load = f["load"]
            first = f.get("deploy_to_first_200_s")
            lines.append(
                f"| {label} | {load[1]['rps']:,.0f} | {load[8]['rps']:,.0f} | "
                f"{load[64]['rps']:,.0f} | {load[1]['p99_ms']:.1f} ms | "
                f"{load[64]['p99_ms']:.1f} ms | {f'{first:.1f} s' if first else '–'} |"
            )
        ours, theirs = figures["takeout on Ray Serve"], figures["hand-written Ray Serve"]
        alone = figures["takeout serve ×2"]
        ratio = ours["load"][64]["rps"] / theirs["load"][64]["rps"]
        proxy = alone["load"][64]["rps"] / ours["load"][64]["rps"]
        lines += [
            "",
            f"takeout on Ray / hand-written at c=64: {ratio:.2f}× the throughput; "
            f"takeout serve ×2 / takeout on Ray: {proxy:.1f}× (what Ray's proxy costs)",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    result = measure(args)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
