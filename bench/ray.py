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
takeout), and what each variant runs inside a replica, timed outside Ray in one asyncio loop
(`takeout.asgi`, the hand-written handler as Serve runs it, the function alone). Tables to
stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

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


bench_util = _module("_util", "_util.py")  # what bench/serve.py imports too
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


def replica_cost(bundle: Path, model: Path, calls: int = 3000, rounds: int = 3) -> dict[str, float]:
    """µs per call of what each variant runs inside a replica, outside Ray: `takeout.asgi`
    (which hands the call to a request-core thread, so that a slow call still gets its 504
    and the replica keeps answering) against the hand-written class as Serve runs it (a
    Starlette request in, a JSON response out, the call on the event loop itself) and the
    function alone. Medians of `rounds` interleaved runs in one asyncio loop."""
    import asyncio

    from starlette.requests import Request
    from starlette.responses import JSONResponse

    import takeout.asgi

    body = BODY.encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/call",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    ours = takeout.asgi.app(bundle)
    theirs = Handwritten(str(model))
    fn = theirs.model  # the bundle's function, unpickled once
    sample = json.loads(BODY)["sample"]

    async def handwritten(scope: dict[str, Any], receive: Any, send: Any) -> None:
        result = await theirs(Request(scope, receive, send))
        await JSONResponse(result)(scope, receive, send)

    async def alone(scope: dict[str, Any], receive: Any, send: Any) -> None:
        fn(sample)

    variants: dict[str, Callable[..., Any]] = {
        "takeout.asgi": ours,
        "hand-written handler": handwritten,
        "function alone": alone,
    }

    async def run() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(rounds):
            for label, asgi in variants.items():
                for _ in range(calls // 10):  # warm
                    await asgi(scope, receive, send)
                started = time.perf_counter()
                for _ in range(calls):
                    await asgi(scope, receive, send)
                times[label].append((time.perf_counter() - started) / calls * 1e6)
        return times

    return {label: statistics.median(v) for label, v in asyncio.run(run()).items()}


def first_200(url: str, started: float, limit: float = 300) -> float:
    while time.perf_counter() - started < limit:
        if post(url, BODY)[0] == 200:
            return time.perf_counter() - started
        time.sleep(0.01)
    raise RuntimeError(f"{url} gave no 200 within {limit:.0f} s")


def load(
    generator: Any, url: str, duration: float, processes: Callable[[], list[Any]]
) -> dict[int, dict[str, Any]]:
    """wrk at each concurrency, with the CPU time `processes` (the server's, not wrk's) spent
    per answered request: on 2 cores shared by the proxy, the replicas and wrk, a steadier
    figure than req/s, which moves ±20 % between minutes."""
    out = {}
    for c in CONCURRENCY:
        generator.run(url, c, 1)  # warm the connections and the replicas
        watched = processes()
        before = _cpu(watched)
        figures = generator.run(url, c, duration)
        spent = _cpu(watched) - before
        if figures["non_2xx"] or figures["socket_errors"]:
            raise RuntimeError(f"{url} at c={c}: errors during the run: {figures}")
        figures["cpu_ms_per_request"] = 1e3 * spent / max(1.0, figures["rps"] * duration)
        out[c] = figures
        log(
            f"  c={c}: {figures['rps']:,.0f} req/s, p99 {figures['p99_ms']:.1f} ms, "
            f"{figures['cpu_ms_per_request']:.2f} ms CPU a request"
        )
    return out


def _tree(pid: int) -> list[Any]:
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _cpu(processes: list[Any]) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
        except Exception:  # gone meanwhile (a replica of the last deployment)
            continue
        total += times.user + times.system
    return total


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
    result: dict[str, Any] = {
        "duration_s": args.duration,
        "rounds": args.rounds,
        "deploy_rounds": args.deploy_rounds,
        "functions": {},
    }
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
        figures: dict[str, list[dict[str, Any]]] = {}
        log(f"{name}: each variant's call outside Ray")
        result.setdefault("replica_cost_us", {})[name] = replica_cost(bundle, model)

        log(f"{name}: takeout serve --workers 2")
        port = bench_serve.free_port()
        argv = [sys.executable, "-m", "takeout.cli", "serve", str(bundle), f"--port={port}"]
        server = bench_serve.Server("takeout serve", [*argv, "--workers=2"], port, {}, work)
        try:
            figures[ALONE] = [
                {
                    "load": load(
                        generator,
                        server.url + "/call",
                        args.duration,
                        functools.partial(_tree, server.proc.pid),
                    )
                }
            ]
        finally:
            server.stop()

        # Rounds interleaved, each in another order: the machine's drift between minutes
        # (steal time, other work) falls on every variant alike. Deploy → first 200 varies
        # most (a replica's Python start is seconds of imports): more rounds of it alone.
        for round_ in range(args.rounds + args.deploy_rounds):
            labels = [OURS, THEIRS, THEIRS_64]
            for label in labels[round_ % 3 :] + labels[: round_ % 3]:
                loaded = round_ < args.rounds
                log(
                    f"{name}, round {round_ + 1}: {label}, 2 replicas{'' if loaded else ', deploy'}"
                )
                started = time.perf_counter()
                application, path = _application(label, bundle, model)
                serve._run(application, _blocking=False, name="bench", route_prefix="/r")
                ready = first_200(proxy + "/r" + path, started)
                log(f"  first 200 after {ready:.1f} s")
                figures.setdefault(label, []).append({"deploy_to_first_200_s": ready})
                if loaded:
                    # The load once every replica runs, not while the second one is still
                    # importing scikit-learn on the cores the first one serves from.
                    takeout.ray._wait_running("bench", 300, None, None)
                    figures[label][-1]["load"] = load(
                        generator, proxy + "/r" + path, args.duration, cluster.processes
                    )
                serve.delete("bench")
                if label == OURS:
                    takeout.ray._release("bench", keep=None)
        result["functions"][name] = figures
    return result


ALONE, OURS = "takeout serve ×2", "takeout on Ray Serve"
THEIRS, THEIRS_64 = "hand-written Ray Serve", "hand-written, max_ongoing_requests=64"


def _application(label: str, bundle: Path, model: Path) -> tuple[Any, str]:
    """The Serve application of a variant on 2 replicas, and the path of its calls."""
    import takeout.ray
    from ray import serve

    if label == OURS:
        return takeout.ray.app(bundle, num_replicas=2, name="bench"), "/call"
    # Serve's default `max_ongoing_requests`, as the documentation's examples leave it, and
    # takeout's: which of the difference at c=64 that setting alone makes.
    options = {"max_ongoing_requests": 64} if label == THEIRS_64 else {}
    deployment = serve.deployment(Handwritten, name="bench", num_replicas=2, **options)
    return deployment.bind(str(model)), ""


Figure = Callable[[dict[str, Any]], Optional[float]]


def _values(rounds: list[dict[str, Any]], figure: Figure) -> list[float]:
    return [v for v in map(figure, rounds) if v is not None]


def _median(rounds: list[dict[str, Any]], figure: Figure) -> float:
    return statistics.median(_values(rounds, figure))


def _cell(rounds: list[dict[str, Any]], figure: Figure, fmt: str, unit: str = "") -> str:
    """The median over the rounds, with their range when there are several."""
    values = _values(rounds, figure)
    if not values:
        return "–"
    text = fmt.format(statistics.median(values)) + unit
    if len(values) > 1:
        text += f" ({fmt.format(min(values))}–{fmt.format(max(values))})"
    return text


def _rps(c: int) -> Figure:
    return lambda r: float(r["load"][c]["rps"]) if "load" in r else None


def _p99(c: int) -> Figure:
    return lambda r: float(r["load"][c]["p99_ms"]) if "load" in r else None


def _cpu_ms(c: int) -> Figure:
    return lambda r: float(r["load"][c]["cpu_ms_per_request"]) if "load" in r else None


def _first(r: dict[str, Any]) -> Optional[float]:
    return r.get("deploy_to_first_200_s")


def report(result: dict[str, Any]) -> str:
    # JSON turns the concurrency keys into strings: the same figures either way.
    for figures in result["functions"].values():
        for rounds in figures.values():
            for r in rounds:
                if "load" in r:
                    r["load"] = {int(c): v for c, v in r["load"].items()}
    lines = [
        f"bench/ray.py · 2 replicas or workers · wrk, {result['duration_s']:g} s per run, "
        f"loopback, the same 2 cores · the Ray variants in {result['rounds']} interleaved "
        f"rounds (deploy → first 200: {result['rounds'] + result['deploy_rounds']}): median "
        "(lowest–highest) · CPU/request: the server's processes, every one (Ray's: proxy, "
        "replicas, controller, raylet, GCS...), not wrk's",
        "",
    ]
    targets: list[tuple[str, str, Optional[bool]]] = []
    for name, figures in result["functions"].items():
        lines += [
            f"{name}",
            "| server | c=1 req/s | c=8 | c=64 | p99 c=1 | p99 c=8 | p99 c=64 | "
            "CPU/request c=8 | deploy → first 200 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for label, rounds in figures.items():
            cells = [_cell(rounds, _rps(c), "{:,.0f}") for c in CONCURRENCY]
            cells += [_cell(rounds, _p99(c), "{:,.0f}", " ms") for c in CONCURRENCY]
            cells.append(_cell(rounds, _cpu_ms(8), "{:.1f}", " ms"))
            cells.append(_cell(rounds, _first, "{:.1f}", " s"))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        ours, theirs = figures[OURS], figures[THEIRS]
        for c in CONCURRENCY:
            mine, other = _median(ours, _rps(c)), _median(theirs, _rps(c))
            targets.append(
                (
                    f"{name} c={c} req/s ≥ hand-written",
                    f"{mine:,.0f} vs {other:,.0f}",
                    mine >= other,
                )
            )
        for c in CONCURRENCY:
            mine, other = _median(ours, _p99(c)), _median(theirs, _p99(c))
            targets.append(
                (f"{name} c={c} p99 ≤ hand-written", f"{mine:.1f} vs {other:.1f} ms", mine <= other)
            )
        mine, other = _median(ours, _first), _median(theirs, _first)
        targets.append(
            (
                f"{name} deploy → first 200 ≤ hand-written",
                f"{mine:.1f} vs {other:.1f} s",
                mine <= other,
            )
        )
        proxy = _median(figures[ALONE], _rps(64)) / _median(ours, _rps(64))
        lines += ["", f"takeout serve ×2 / takeout on Ray at c=64: {proxy:.1f}× (Ray's proxy)"]
        cost = result.get("replica_cost_us", {}).get(name)
        if cost:
            lines.append(
                "a call outside Ray (one asyncio loop, median µs): "
                + ", ".join(f"{label} {us:,.0f}" for label, us in cost.items())
            )
        lines.append("")
    return "\n".join(lines + bench_util.verdicts(targets)[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of the Ray variants"
    )
    parser.add_argument(
        "--deploy-rounds",
        type=int,
        default=4,
        help="more rounds of deploy → first 200 alone, after those with load",
    )
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    result = measure(args)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
