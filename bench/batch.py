"""Adaptive batching: takeout's batcher against takeout unbatched, BentoML and Ray Serve.

    .venv/bin/python bench/batch.py [--duration 5] [--json] [--no-bentoml] [--no-ray]

The seed's fitted `KMeans` served two ways: `km_predict_one` (the seed's function, one sample
per call) and `km_predict_batch` (a list of samples, one `model.predict` call for all of
them), by:

- `takeout serve` of the batch function packed with `takeout.Batch(max_size=64,
  max_wait_ms=2)`: the Rust batcher coalesces concurrent requests into one call;
- `takeout serve` of `km_predict_one`, unbatched;
- BentoML, the same batch function behind `@bentoml.api(batchable=True, max_batch_size=64)`
  (its adaptive batcher picks the wait itself);
- Ray Serve, the same batch function behind `@serve.batch(max_batch_size=64,
  batch_wait_timeout_s=0.002)` on a real local cluster (started here in a temp dir of its own;
  only its own processes are stopped at the end).

1 and 2 workers (BentoML workers, Ray replicas), wrk at 1, 8 and 64 keep-alive connections
(bench/serve.py's load generator), every client sending one sample per request; every server's
answers are checked against `model.predict` before the clock starts. Targets from the issue, at
the same worker count: at c=64 ≥ 5× takeout unbatched and ≥ 2× the better of BentoML and Ray
Serve; p99 at c=1 no worse than unbatched + `max_wait`.

Tables go to stdout, progress to stderr; `--json` prints the raw figures instead. The load
generator runs on the same 2 cores as the servers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from _util import (  # noqa: E402  (after the path is set)
    ensure_venv,
    log,
    median_time,
    table,
    verdicts,
    versions_here,
)
from serve import (  # noqa: E402
    CONCURRENCY,
    LoadGenerator,
    Server,
    free_port,
    post,
)

# This folder holds bench/ray.py: off the path now, or `import ray` finds it (here, and in
# Ray's workers, which are handed the driver's `sys.path`).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

BENTOML_VENV = ROOT / ".bench-venvs" / "bentoml"
# BentoML's pins clash with Ray's (its OpenTelemetry pins break Ray's dashboard), so it runs in
# a venv of its own, with the libraries the pickled model needs at this interpreter's versions.
BENTOML_PINNED = ("numpy", "scipy", "scikit-learn", "joblib", "threadpoolctl", "cloudpickle")

MAX_SIZE = 64
MAX_WAIT_MS = 2.0
SAMPLE = [0.5, 0.5]
# A JSON array is the positional arguments, whatever the parameter is called.
TAKEOUT_BODY = json.dumps([SAMPLE])
BENTO_BODY = json.dumps({"samples": [SAMPLE]})
RAY_BODY = json.dumps({"sample": SAMPLE})
# Samples whose answers are checked on every server before it is measured.
CHECKS = [[0.5, 0.5], [0.05, 0.95], [0.9, 0.1], [0.3, 0.7]]

# The unbatched twin's batch form, as a notebook would write it next to the seed's cells.
BATCH_CELL = """
def km_predict_batch(samples):
    return model.predict(np.asarray(samples, dtype=float).reshape(len(samples), -1))
"""

# BentoML as its adaptive-batching guide shows it: a service class, a batchable API taking an
# array whose first dimension is the batch. Access logs off, as in production: per-request
# INFO logging is what costs BentoML most (ANCHORS.md).
BENTO_SERVICE = f"""
import os
import pickle

import bentoml
import numpy as np


@bentoml.service(
    workers=int(os.environ["BENCH_WORKERS"]),
    logging={{"access": {{"enabled": False}}}},
    traffic={{"timeout": 60}},
)
class KMeansBatch:
    def __init__(self):
        with open(os.environ["BENCH_MODEL"], "rb") as fh:
            self.predict_batch = pickle.load(fh)

    @bentoml.api(batchable=True, max_batch_size={MAX_SIZE})
    def predict(self, samples: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict_batch(samples))
"""


def ray_batch_class() -> type:
    """Ray Serve's dynamic request batching as its guide shows it: an async batch method under
    `@serve.batch`, awaited once per request from `__call__`. Made in a function because
    `ray.serve` may only be imported once the cluster is up."""
    from ray import serve

    class RayBatch:
        def __init__(self, model_path: str) -> None:
            import pickle

            with open(model_path, "rb") as fh:
                self.predict_batch = pickle.load(fh)

        @serve.batch(max_batch_size=MAX_SIZE, batch_wait_timeout_s=MAX_WAIT_MS / 1e3)
        async def predict(self, samples: list) -> list:
            return [int(x) for x in self.predict_batch(samples)]

        async def __call__(self, request: Any) -> dict[str, Any]:
            body = await request.json()
            return {"result": await self.predict(body["sample"])}

    return RayBatch


# ── servers ─────────────────────────────────────────────────────────────────────────────────


class Endpoint:
    """What the load generator and the answer check need of a running server."""

    def __init__(
        self,
        url: str,
        body: str,
        request: Callable[[list[float]], str],
        answer: Callable[[Any], Any],
        stop: Callable[[], None],
    ) -> None:
        self.url, self.body, self.request, self.answer, self.stop = url, body, request, answer, stop


def takeout_endpoint(bundle: Path, workers: int, work: Path) -> Endpoint:
    port = free_port()
    argv = [sys.executable, "-m", "takeout.cli", "serve", str(bundle), f"--port={port}"]
    argv.append(f"--workers={workers}")
    server = Server("takeout serve", argv, port, {}, work, probe=("/call", TAKEOUT_BODY))
    return Endpoint(
        server.url + "/call",
        TAKEOUT_BODY,
        lambda s: json.dumps([s]),
        lambda reply: reply["result"],
        server.stop,
    )


def ensure_bentoml() -> tuple[Optional[Path], str]:
    """`bentoml` in `.bench-venvs/bentoml` (made with uv on first use), or None and why not."""
    attempts = [
        ("pinned", ["bentoml>=1.4", *versions_here(BENTOML_PINNED)]),
        ("unpinned", ["bentoml>=1.4", "scikit-learn", "cloudpickle"]),
    ]
    python, how = ensure_venv(BENTOML_VENV, "import bentoml, sklearn, cloudpickle", attempts)
    if python is None:
        return None, how
    return python.parent / "bentoml", how


def bentoml_endpoint(bentoml: Path, model: Path, workers: int, work: Path) -> Endpoint:
    port = free_port()
    argv = [str(bentoml), "serve", "bento_service:KMeansBatch", "--host=127.0.0.1"]
    argv.append(f"--port={port}")
    env = {"BENCH_MODEL": str(model), "BENCH_WORKERS": str(workers), "BENTOML_DO_NOT_TRACK": "1"}
    server = Server(f"BentoML ×{workers}", argv, port, env, work, probe=("/predict", BENTO_BODY))
    return Endpoint(
        server.url + "/predict",
        BENTO_BODY,
        lambda s: json.dumps({"samples": [s]}),
        lambda reply: reply[0],
        server.stop,
    )


def ray_endpoint(cluster: Any, model: Path, workers: int) -> Endpoint:
    from ray import serve

    name = f"batch-{workers}"
    # Ray's default of 5 ongoing requests per replica would cap every batch at 5.
    deployment = serve.deployment(
        ray_batch_class(), name=name, num_replicas=workers, max_ongoing_requests=4 * MAX_SIZE
    )
    serve._run(deployment.bind(str(model)), _blocking=False, name=name, route_prefix=f"/{name}")
    url = f"http://127.0.0.1:{cluster.http_port}/{name}"
    deadline = time.perf_counter() + 300
    while post(url, RAY_BODY)[0] != 200:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"Ray Serve deployment `{name}` gave no 200 within 300 s")
        time.sleep(0.05)
    return Endpoint(
        url,
        RAY_BODY,
        lambda s: json.dumps({"sample": s}),
        lambda reply: reply["result"],
        lambda: serve.delete(name),
    )


# ── measurements ────────────────────────────────────────────────────────────────────────────


def check_answers(label: str, endpoint: Endpoint, expected: list[int]) -> None:
    for sample, want in zip(CHECKS, expected):
        status, reply = post(endpoint.url, endpoint.request(sample))
        got = endpoint.answer(reply) if status == 200 else None
        if got != want:
            raise RuntimeError(f"{label}: `{sample}` answered {status} {reply}, not {want}")


def batch_totals(base: str) -> Optional[tuple[float, float, float, float]]:
    """(items, batches, queue wait in s, waits) so far, from takeout's `/metrics` (every
    worker's series summed), or None where it counts no batches."""
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None

    def total(name: str) -> float:
        found = re.findall(rf"^{name}(?:{{[^}}]*}})? ([\d.e+-]+)$", text, re.M)
        return sum(map(float, found))

    totals = tuple(
        total(f"takeout_batch_{name}")
        for name in ("size_sum", "size_count", "queue_wait_seconds_sum", "queue_wait_seconds_count")
    )
    return totals if totals[1] else None


def measure_endpoint(
    label: str, workers: int, endpoint: Endpoint, work: Path, duration: float, batches: bool
) -> list[dict[str, Any]]:
    """wrk at each concurrency; with `batches`, the mean batch size and queue wait of each run
    from the server's metrics."""
    script = re.sub(r"\W+", "_", label) + f"_{workers}.lua"
    load = LoadGenerator(work, endpoint.body, script)
    runs = []
    for c in CONCURRENCY:
        load.run(endpoint.url, c, 1)
        base = endpoint.url.rsplit("/", 1)[0]
        before = batch_totals(base) if batches else None
        figures = load.run(endpoint.url, c, duration)
        after = batch_totals(base) if batches else None
        if after is not None:
            items, calls, wait, waits = (a - b for a, b in zip(after, before or (0, 0, 0, 0)))
            figures["mean_batch"] = items / calls if calls else 0.0
            figures["mean_queue_wait_ms"] = wait / waits * 1e3 if waits else 0.0
        log(
            f"{label} ×{workers} · c={c}: {figures['rps']:,.0f} req/s, "
            f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms"
            + (" (errors)" if figures["non_2xx"] or figures["socket_errors"] else "")
        )
        runs.append({"server": label, "workers": workers, "c": c, **figures})
    return runs


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support import EXAMPLES, notebook_cells, run_cells

    import takeout

    work = Path(tempfile.mkdtemp(prefix="takeout-bench-batch-"))
    cluster = None
    if not args.no_ray:
        from tests._ray_cluster import Cluster

        # Before anything imports Ray: `ray start` must not inherit what `import ray` sets.
        # Stopped by ending its own processes only (see `Cluster.stop`).
        log("starting a local Ray cluster")
        cluster = Cluster()
    seed = run_cells(*notebook_cells(EXAMPLES / "kmeans.ipynb"), BATCH_CELL)
    one, batch = seed["km_predict_one"], seed["km_predict_batch"]
    expected = [int(x) for x in seed["model"].predict(seed["np"].asarray(CHECKS))]
    assert [int(one(s)) for s in CHECKS] == expected == [int(x) for x in batch(CHECKS)]
    result: dict[str, Any] = {
        "duration_s": args.duration,
        "max_size": MAX_SIZE,
        "max_wait_ms": MAX_WAIT_MS,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "bare_us": {
            "km_predict_one": median_time(lambda: one(SAMPLE), 2000) * 1e6,
            "km_predict_batch(1)": median_time(lambda: batch([SAMPLE]), 2000) * 1e6,
            f"km_predict_batch({MAX_SIZE})": median_time(lambda: batch([SAMPLE] * MAX_SIZE), 500)
            * 1e6,
        },
        "runs": [],
        "missing": {},
    }
    log("bare calls: " + ", ".join(f"{k} {v:.1f} µs" for k, v in result["bare_us"].items()))
    try:
        import cloudpickle

        model = work / "km_predict_batch.pkl"
        model.write_bytes(cloudpickle.dumps(batch))
        unbatched = takeout.pack(one, work / "km_predict_one.takeout").path
        batched: Optional[Path] = None
        if hasattr(takeout, "Batch"):
            policy = takeout.Batch(max_size=MAX_SIZE, max_wait_ms=MAX_WAIT_MS)
            batched = takeout.pack(batch, work / "km_predict_batch.takeout", batch=policy).path
        else:
            result["missing"]["takeout batched"] = "this takeout has no `takeout.Batch` yet"
        (work / "bento_service.py").write_text(BENTO_SERVICE)
        bentoml: Optional[Path] = None
        if args.no_bentoml:
            result["missing"]["BentoML (batchable)"] = "--no-bentoml"
        else:
            bentoml, how = ensure_bentoml()
            log(f"BentoML venv: {how}")
            if bentoml is None:
                result["missing"]["BentoML (batchable)"] = how
        for workers in (1, 2):
            plan: list[tuple[str, Callable[[], Endpoint]]] = []
            if batched is not None:
                plan.append(("takeout batched", partial(takeout_endpoint, batched, workers, work)))
            plan.append(("takeout unbatched", partial(takeout_endpoint, unbatched, workers, work)))
            if bentoml is not None:
                start = partial(bentoml_endpoint, bentoml, model, workers, work)
                plan.append(("BentoML (batchable)", start))
            if cluster is not None:
                if workers == 1:
                    cluster.join()
                plan.append(
                    ("Ray Serve (@serve.batch)", partial(ray_endpoint, cluster, model, workers))
                )
            for label, start in plan:
                log(f"{label} ×{workers}: starting")
                endpoint = start()
                try:
                    check_answers(label, endpoint, expected)
                    batches = label == "takeout batched"
                    result["runs"] += measure_endpoint(
                        label, workers, endpoint, work, args.duration, batches
                    )
                finally:
                    endpoint.stop()
        if args.no_ray:
            result["missing"]["Ray Serve (@serve.batch)"] = "--no-ray"
    finally:
        if cluster is not None:
            try:
                import ray

                ray.shutdown()
            finally:
                cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    return result


# ── report ──────────────────────────────────────────────────────────────────────────────────

SERVERS = (
    "takeout batched",
    "takeout unbatched",
    "BentoML (batchable)",
    "Ray Serve (@serve.batch)",
)


def figure(result: dict[str, Any], server: str, workers: int, c: int) -> Optional[dict[str, Any]]:
    for r in result["runs"]:
        if r["server"] == server and r["workers"] == workers and r["c"] == c:
            return r
    return None


def targets(result: dict[str, Any]) -> list[tuple[str, str, Optional[bool]]]:
    out: list[tuple[str, str, Optional[bool]]] = []
    for workers in (1, 2):
        mine = figure(result, "takeout batched", workers, 64)
        plain = figure(result, "takeout unbatched", workers, 64)
        others = [figure(result, s, workers, 64) for s in SERVERS[2:]]
        best = max((o for o in others if o), key=lambda o: o["rps"], default=None)
        if mine and plain:
            ratio = mine["rps"] / plain["rps"]
            out.append((f"×{workers} c=64: ≥ 5× takeout unbatched", f"{ratio:.2f}×", ratio >= 5))
        if mine and best:
            ratio = mine["rps"] / best["rps"]
            what = f"{ratio:.2f}× ({best['server']}, {best['rps']:,.0f} req/s)"
            out.append(
                (f"×{workers} c=64: ≥ 2× the better of BentoML and Ray Serve", what, ratio >= 2)
            )
        one, plain1 = (
            figure(result, "takeout batched", workers, 1),
            figure(result, "takeout unbatched", workers, 1),
        )
        if one and plain1:
            limit = plain1["p99_ms"] + result["max_wait_ms"]
            out.append(
                (
                    f"×{workers} c=1: p99 ≤ unbatched p99 + max_wait",
                    f"{one['p99_ms']:.2f} ms vs {plain1['p99_ms']:.2f} ms"
                    f" + {result['max_wait_ms']:g} ms",
                    one["p99_ms"] <= limit,
                )
            )
    return out


def report(result: dict[str, Any]) -> str:
    bare = result["bare_us"]
    lines = [
        f"bench/batch.py · wrk, {result['duration_s']:g} s per run · "
        f"{result['machine']['cpus']} CPUs · CPython {result['machine']['python']} · "
        f"Batch(max_size={result['max_size']}, max_wait_ms={result['max_wait_ms']:g})",
        "bare calls: " + ", ".join(f"{k} {v:.1f} µs" for k, v in bare.items()),
        "",
    ]
    headers = ["server", "w"]
    for c in CONCURRENCY:
        headers += [f"c={c} req/s", "p50 ms", "p99 ms"]
    rows = []
    for workers in (1, 2):
        for server in SERVERS:
            cells = [server, str(workers)]
            for c in CONCURRENCY:
                f = figure(result, server, workers, c)
                if f is None:
                    cells += ["–", "–", "–"]
                    continue
                flag = "!" if f["non_2xx"] or f["socket_errors"] else ""
                cells += [f"{f['rps']:,.0f}{flag}", f"{f['p50_ms']:.2f}", f"{f['p99_ms']:.2f}"]
            if any(x != "–" for x in cells[2:]):
                rows.append(cells)
    lines.append(table(headers, rows, right=frozenset(range(1, len(headers)))))
    for what, why in result["missing"].items():
        lines.append(f"not measured: {what}: {why}")
    for r in result["runs"]:
        if "mean_batch" in r:
            lines.append(
                f"takeout batched ×{r['workers']} c={r['c']}: mean batch {r['mean_batch']:.1f} "
                f"items, mean queue wait {r['mean_queue_wait_ms']:.2f} ms"
            )
    lines += verdicts(targets(result))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    parser.add_argument("--no-bentoml", action="store_true", help="leave BentoML out")
    parser.add_argument("--no-ray", action="store_true", help="leave Ray Serve out")
    args = parser.parse_args()
    result = measure(args)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
