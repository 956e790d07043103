"""How `takeout.deps` compares with the tools it must beat, measured in one run.

    .venv/bin/python bench/deps.py [--no-mlflow] [--json] [--big-mb 1024] [--repeat 15]

1. Dependency inference on a corpus of notebook-style functions with hand-written ground truth
   (bench/_functions.py): takeout.deps, the seed's naive `module_frontier` (module names mapped
   to distributions with `importlib.metadata.packages_distributions()`), and MLflow's
   requirement inference, run in its own venv (.bench-venvs/mlflow, created on first use).
2. The environment index: `takeout._core.EnvIndex(sys.path)` against
   `importlib.metadata.packages_distributions()`.
3. A closure over a 1 GiB array against the same closure over a small one.
4. The targets from the project's anchor figures (ANCHORS.md), PASS or FAIL.

Tables go to stdout, progress to stderr. Times are medians of `time.perf_counter` repetitions.
The same file runs inside the MLflow venv as `deps.py --mlflow-child ...`, which is why the
imports at the top are the standard library and the corpus only.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import _functions as corpus
from _util import ensure_venv, log, median_time, table, versions_here

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MLFLOW_VENV = ROOT / ".bench-venvs" / "mlflow"

# The distributions the MLflow venv pins to the versions of this interpreter, so both sides
# analyse the same libraries (the corpus needs all of them; mlflow brings the rest).
MLFLOW_PINNED = (
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "pyyaml",
    "python-dateutil",
    "cloudpickle",
)
MLFLOW_EXTRA = ("scikit-learn", "numpy", "pandas", "pyyaml", "python-dateutil")

# What loading a saved function needs from the tool's own runtime, not from the function:
# never counted as "extra" for any tool.
RUNTIME = frozenset({"mlflow", "mlflow-skinny", "mlflow-tracing", "cloudpickle", "takeout"})

# Marks the MLflow child's result lines on stdout, which mlflow and its libraries share.
CHILD_PREFIX = "takeout-bench-row "

TARGET_WARM_MS = 20.0
TARGET_VS_MLFLOW = 50.0
TARGET_INDEX_SPEEDUP = 10.0
TARGET_BIG_RATIO = 2.0


def cpu_idle_share(seconds: float = 1.0) -> float | None:
    """Share of all CPUs left idle over `seconds` (Linux), the best quick sign of a quiet box;
    the load average lags by minutes and would count our own previous build."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (idle1 - idle0) / max(total1 - total0, 1)


def adaptive_repeat(first_seconds: float, repeat: int, budget: float = 1.0) -> int:
    # Keep a slow case to about `budget` seconds, but never below 3 samples for a median.
    return max(3, min(repeat, int(budget / max(first_seconds, 1e-6))))


# ── verdicts ──────────────────────────────────────────────────────────────────────────────────


def verdict(case: corpus.Case, found: set[str] | None) -> dict[str, Any]:
    """`found` None means the tool raised or did not run on this case."""
    if found is None:
        return {"all_found": False, "nothing_extra": False, "missed": [], "extra": []}
    missed = sorted(case.needs - found)
    extra = sorted(found - case.needs - case.optional - RUNTIME)
    return {"all_found": not missed, "nothing_extra": not extra, "missed": missed, "extra": extra}


def _clip(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def short_verdict(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "not run"
    if entry.get("error"):
        return f"raised {entry['error'].split(':')[0]}"
    parts = [f"-{m}" for m in entry["missed"]] + [f"+{e}" for e in entry["extra"]]
    return " ".join(parts) or "ok"


# ── takeout.deps ──────────────────────────────────────────────────────────────────────────────


def _takeout_deps() -> Callable[..., Any]:
    import takeout

    return takeout.deps  # resolves the lazy attribute (an import) outside any timed call


def run_takeout(repeat: int) -> dict[str, Any]:
    per: dict[str, Any] = {}
    process_first_ms: float | None = None
    for case in corpus.CASES:
        fn = corpus.build(case)
        entry: dict[str, Any] = {"name": case.name}
        try:
            deps = _takeout_deps()  # inside the try: an unbuilt extension fails every case
            start = time.perf_counter()
            report = deps(fn)
            first = time.perf_counter() - start
            reps = adaptive_repeat(first, repeat)
            warm = median_time(lambda fn=fn, deps=deps: deps(fn), reps)
        except Exception as exc:
            entry.update(error=f"{type(exc).__name__}: {exc}", found=None, **verdict(case, None))
            per[case.name] = entry
            log(f"  takeout  {case.name:<16} raised {type(exc).__name__}: {exc}")
            continue
        # Local code travels by value; only index distributions are requirements to compare.
        found = {corpus.normalize(d.name) for d in report.distributions if d.kind == "index"}
        local = sorted(d.name for d in report.distributions if d.kind != "index")
        if process_first_ms is None:
            process_first_ms = first * 1e3
        entry.update(
            found=sorted(found),
            local=local,
            requirements=report.requirements,
            warnings=list(report.warnings),
            first_ms=first * 1e3,
            warm_ms=warm * 1e3,
            repeat=reps,
            **verdict(case, found),
        )
        per[case.name] = entry
        log(f"  takeout  {case.name:<16} {warm * 1e3:8.2f} ms  {short_verdict(entry)}")
    return {"per_function": per, "process_first_ms": process_first_ms}


# ── the seed's module_frontier ────────────────────────────────────────────────────────────────


def run_frontier(repeat: int) -> dict[str, Any]:
    import importlib.metadata

    module_frontier = corpus.namespace("seed")["module_frontier"]

    def to_dists(modules: list[str], mapping: dict[str, list[str]]) -> set[str]:
        # Top-level name lookup, the usual way of turning module names into distributions.
        out = set()
        for module in modules:
            for dist in mapping.get(module.partition(".")[0], ()):
                out.add(corpus.normalize(dist))
        return out

    # The first call builds the mapping, as a tool without a cached index would on every call.
    start = time.perf_counter()
    mapping = importlib.metadata.packages_distributions()
    first_fn = corpus.build(corpus.CASES[0])
    to_dists(module_frontier(first_fn), mapping)
    process_first_ms = (time.perf_counter() - start) * 1e3

    per: dict[str, Any] = {}
    for case in corpus.CASES:
        fn = corpus.build(case)
        entry: dict[str, Any] = {"name": case.name}
        try:
            found = to_dists(module_frontier(fn), mapping)
        except Exception as exc:
            entry.update(error=f"{type(exc).__name__}: {exc}", found=None, **verdict(case, None))
            per[case.name] = entry
            continue
        warm = median_time(lambda fn=fn: to_dists(module_frontier(fn), mapping), repeat)
        entry.update(found=sorted(found), warm_ms=warm * 1e3, **verdict(case, found))
        per[case.name] = entry
    return {"per_function": per, "process_first_ms": process_first_ms}


# ── MLflow, in its own venv ───────────────────────────────────────────────────────────────────


def ensure_mlflow_venv() -> tuple[Path | None, str]:
    """The MLflow venv's interpreter (created on first use), or None and the reason."""
    # Same versions as here where the resolver allows, else whatever mlflow accepts.
    attempts = [
        ("pinned", ["mlflow", *versions_here(MLFLOW_PINNED)]),
        ("unpinned", ["mlflow", *MLFLOW_EXTRA]),
    ]
    probe = "import mlflow, sklearn, scipy, pandas, yaml, dateutil"
    return ensure_venv(MLFLOW_VENV, probe, attempts)


def run_mlflow(budget: float) -> dict[str, Any]:
    try:
        python, how = ensure_mlflow_venv()
    except Exception as exc:  # a missing uv, no network, a timeout: skip, do not fail the run
        python, how = None, f"{type(exc).__name__}: {exc}"
    if python is None:
        return {"skipped": f"MLflow venv unavailable ({how})"}
    version = subprocess.run(
        [str(python), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Seed cases first, so that a budget cut still covers the seed.
    order = [c.name for c in corpus.CASES if c.seed] + [c.name for c in corpus.CASES if not c.seed]
    env = dict(os.environ)
    # Our repository has a pyproject.toml; MLflow would otherwise try `uv export` on it.
    env["MLFLOW_UV_AUTO_DETECT"] = "false"
    env.pop("VIRTUAL_ENV", None)
    log(f"MLflow {version} ({how}): inferring requirements, budget {budget:.0f} s")
    per: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="takeout-bench-mlflow-") as tmp:
        stderr_path = Path(tmp) / "stderr.txt"
        with open(stderr_path, "w") as stderr:
            proc = subprocess.Popen(
                [str(python), str(Path(__file__).resolve()), "--mlflow-child", str(budget), *order],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=tmp,
                env=env,
            )
            assert proc.stdout is not None
            # A hung inference must not hang the benchmark: kill the child after the budget
            # plus a generous margin for the seed cases that always run.
            watchdog = threading.Timer(budget + 300, proc.kill)
            watchdog.start()
            for line in proc.stdout:
                if not line.startswith(CHILD_PREFIX):
                    continue  # anything a library printed
                row = json.loads(line[len(CHILD_PREFIX) :])
                case = next(c for c in corpus.CASES if c.name == row["name"])
                if row.get("skipped"):
                    continue
                if row.get("error"):
                    row.update(found=None, **verdict(case, None))
                    log(f"  mlflow   {case.name:<16} raised {row['error']}")
                else:
                    found = {corpus.normalize(_req_name(r)) for r in row["requirements"]}
                    row.update(found=sorted(found), **verdict(case, found))
                    log(
                        f"  mlflow   {case.name:<16} {row['seconds']:8.2f} s   {short_verdict(row)}"
                    )
                per[case.name] = row
            proc.wait()
            watchdog.cancel()
        tail = stderr_path.read_text()[-2000:]
    result: dict[str, Any] = {"version": version, "venv": how, "per_function": per}
    skipped = [n for n in order if n not in per]
    if skipped:
        result["not_run"] = skipped
    if proc.returncode not in (0, None) and not per:
        result["skipped"] = f"the MLflow child failed (exit {proc.returncode}): {tail[-500:]}"
    return result


def _req_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return match.group(1) if match else requirement


def mlflow_child(budget: float, names: list[str]) -> None:
    """Inside the MLflow venv: save each function as a pyfunc model, time the inference."""
    import logging
    import warnings

    import mlflow.pyfunc
    from mlflow.models import infer_pip_requirements

    warnings.simplefilter("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    # Defined in __main__, like a notebook's wrapper class, so cloudpickle ships it by value.
    class Wrapper(mlflow.pyfunc.PythonModel):
        def __init__(self, fn: Any) -> None:
            self.fn = fn

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return self.fn(model_input)

    spent = 0.0
    cases = {c.name: c for c in corpus.CASES}
    for name in names:
        if spent > budget and not cases[name].seed:
            print(CHILD_PREFIX + json.dumps({"name": name, "skipped": True}), flush=True)
            continue
        row: dict[str, Any] = {"name": name}
        stage = "building the function"
        path = os.path.join(os.getcwd(), f"model-{name}")
        try:
            # pip_requirements=[] stops save_model from running the inference itself.
            model = Wrapper(corpus.build(cases[name]))
            stage = "save_model"
            mlflow.pyfunc.save_model(path, python_model=model, pip_requirements=[])
            stage = "infer_pip_requirements"
            start = time.perf_counter()
            requirements = infer_pip_requirements(path, "python_function")
            row["seconds"] = time.perf_counter() - start
            row["requirements"] = list(requirements)
        except Exception as exc:
            row["seconds"] = None
            row["error"] = f"{type(exc).__name__} in {stage}: {str(exc)[:300]}"
        spent += row["seconds"] or 0.0
        print(CHILD_PREFIX + json.dumps(row), flush=True)


# ── environment index ─────────────────────────────────────────────────────────────────────────


def run_index(repeat: int) -> dict[str, Any]:
    import importlib.metadata

    result: dict[str, Any] = {}
    path = list(sys.path)
    try:
        from takeout import _core

        result["rust_entries"] = len(_core.EnvIndex(path))  # also warms the OS file cache
        result["rust_ms"] = median_time(lambda: _core.EnvIndex(path), repeat) * 1e3
    except Exception as exc:
        result["rust_error"] = f"{type(exc).__name__}: {exc}"
    result["python_entries"] = len(importlib.metadata.packages_distributions())
    result["python_ms"] = median_time(importlib.metadata.packages_distributions, repeat) * 1e3
    if "rust_ms" in result:
        result["speedup"] = result["python_ms"] / result["rust_ms"]
    result["repeat"] = repeat
    return result


# ── a closure over a big array ────────────────────────────────────────────────────────────────

BIG_CELL = """
import numpy as np
array = np.ones({count})
def head(i):
    return float(array[i])
"""


def _max_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def run_big(big_mb: int, repeat: int) -> dict[str, Any]:
    result: dict[str, Any] = {"big_mb": big_mb}
    small_ns: dict[str, Any] = {"__name__": "__main__"}
    exec(BIG_CELL.format(count=16), small_ns)
    try:
        deps = _takeout_deps()
        deps(small_ns["head"])
        result["small_ms"] = median_time(lambda: deps(small_ns["head"]), repeat) * 1e3
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    big_ns: dict[str, Any] = {"__name__": "__main__"}
    try:
        exec(BIG_CELL.format(count=big_mb * 1024 * 1024 // 8), big_ns)
        # The peak RSS after allocating says whether the analysis copied the array.
        before = _max_rss_mb()
        start = time.perf_counter()
        deps(big_ns["head"])
        result["big_first_ms"] = (time.perf_counter() - start) * 1e3
        reps = adaptive_repeat(result["big_first_ms"] / 1e3, repeat, budget=5.0)
        result["big_ms"] = median_time(lambda: deps(big_ns["head"]), reps) * 1e3
        after = _max_rss_mb()
        if before is not None and after is not None:
            result["peak_rss_growth_mb"] = after - before
        result["ratio"] = result["big_ms"] / result["small_ms"]
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        big_ns.clear()  # give the array back before anything else runs
        gc.collect()
    return result


# ── summary and printing ──────────────────────────────────────────────────────────────────────


def summarise_tool(per: dict[str, Any], time_key: str, scale: float) -> dict[str, Any]:
    ran = list(per.values())
    times = [e[time_key] * scale for e in ran if e.get(time_key) is not None]
    return {
        "functions": len(ran),
        "all_found_pct": 100.0 * sum(e["all_found"] for e in ran) / len(ran) if ran else None,
        "nothing_extra_pct": 100.0 * sum(e["nothing_extra"] for e in ran) / len(ran)
        if ran
        else None,
        "raised": sum(1 for e in ran if e.get("error")),
        "median_ms": statistics.median(times) if times else None,
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    km = results["tools"]["takeout"]["per_function"].get("km_predict_one", {})
    value = km.get("warm_ms")
    rows.append(
        {
            "target": "deps(km_predict_one) warm",
            "measured": value,
            "value": f"{value:.2f} ms" if value is not None else _clip(km.get("error", "n/a")),
            "goal": f"<= {TARGET_WARM_MS:.0f} ms",
            "pass": value is not None and value <= TARGET_WARM_MS,
        }
    )
    vs = results.get("vs_mlflow")
    rows.append(
        {
            "target": "faster than MLflow inference (median per function)",
            "measured": vs["ratio"] if vs else None,
            "value": f"{vs['ratio']:.0f}x on {vs['functions']} functions" if vs else "not measured",
            "goal": f">= {TARGET_VS_MLFLOW:.0f}x",
            "pass": vs["ratio"] >= TARGET_VS_MLFLOW if vs else None,
        }
    )
    idx = results["env_index"]
    rows.append(
        {
            "target": "EnvIndex vs packages_distributions()",
            "measured": idx.get("speedup"),
            "value": f"{idx['speedup']:.1f}x" if "speedup" in idx else _clip(idx["rust_error"]),
            "goal": f">= {TARGET_INDEX_SPEEDUP:.0f}x",
            "pass": "speedup" in idx and idx["speedup"] >= TARGET_INDEX_SPEEDUP,
        }
    )
    big = results["big_closure"]
    rows.append(
        {
            "target": f"{big['big_mb']} MB closure vs small",
            "measured": big.get("ratio"),
            "value": f"{big['ratio']:.2f}x" if "ratio" in big else _clip(big.get("error", "n/a")),
            "goal": f"<= {TARGET_BIG_RATIO:.0f}x",
            "pass": "ratio" in big and big["ratio"] <= TARGET_BIG_RATIO,
        }
    )
    return rows


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}%"


def print_report(results: dict[str, Any]) -> None:
    tools = results["tools"]
    n_seed = sum(c.seed for c in corpus.CASES)
    print(
        f"takeout deps benchmark — {results['python']}, {results['cpus']} CPUs, "
        f"{len(corpus.CASES)} functions ({n_seed} from the seed; ground truth: bench/_functions.py)"
    )
    idle = results.get("cpu_idle_before")
    if idle is not None:
        print(
            f"CPU idle in the second before the run: {idle:.0%} (below ~90%, other work competed)"
        )
    print()
    print(
        "1. Dependency inference (found all: needs ⊆ found; nothing extra: found ⊆ needs+optional)"
    )
    rows = []
    labels = {
        "takeout": "takeout.deps (warm)",
        "frontier": "seed module_frontier + packages_distributions()",
        "mlflow": f"MLflow {tools.get('mlflow', {}).get('version', '')} infer_pip_requirements",
    }
    for key, label in labels.items():
        tool = tools.get(key)
        if tool is None or "summary" not in tool:
            continue
        s = tool["summary"]
        ran = f"{s['functions']}/{len(corpus.CASES)}"
        rows.append(
            [
                label,
                ran,
                pct(s["all_found_pct"]),
                pct(s["nothing_extra_pct"]),
                str(s["raised"]),
                fmt(s["median_ms"], 3 if (s["median_ms"] or 0) < 1 else 1),
                fmt(tool.get("process_first_ms"), 1),
            ]
        )
    print(
        table(
            [
                "tool",
                "functions",
                "found all",
                "nothing extra",
                "raised",
                "median ms/fn",
                "first call ms",
            ],
            rows,
            right=frozenset({1, 2, 3, 4, 5, 6}),
        )
    )
    ml = tools.get("mlflow", {})
    if ml.get("skipped"):
        print(f"   MLflow: skipped — {ml['skipped']}")
    elif ml.get("not_run"):
        print(
            f"   MLflow ran on {len(ml['per_function'])} of {len(corpus.CASES)} functions (time "
            f"budget; --mlflow-budget); not run: {', '.join(ml['not_run'])}"
        )
    print(
        "   first call: takeout's first deps() of the process (builds the environment index); "
        "module_frontier's includes packages_distributions(). MLflow spawns a process per call."
    )
    if results.get("vs_mlflow"):
        vs = results["vs_mlflow"]
        print(
            f"   on the {vs['functions']} functions MLflow ran: takeout {vs['takeout_ms']:.2f} ms, "
            f"MLflow {vs['mlflow_ms'] / 1e3:.2f} s median per function → {vs['ratio']:.0f}x"
        )
        first = tools["takeout"].get("process_first_ms")
        if first:
            # MLflow pays a fresh process on every call; compare with takeout's coldest call too.
            print(
                f"   even takeout's first call of the process ({first:.1f} ms) is "
                f"{vs['mlflow_ms'] / first:.0f}x faster than MLflow's median"
            )
    print()

    print("   per function (ok, -missed, +extra, raised):")
    rows = []
    for case in corpus.CASES:
        t = tools["takeout"]["per_function"].get(case.name)
        fr = tools["frontier"]["per_function"].get(case.name)
        m = ml.get("per_function", {}).get(case.name) if "per_function" in ml else None
        rows.append(
            [
                case.name,
                ",".join(sorted(case.needs)) or "(none)",
                fmt(t.get("warm_ms") if t else None),
                fmt(t.get("first_ms") if t else None),
                short_verdict(t),
                short_verdict(fr),
                fmt(m.get("seconds") if m else None) if m else "—",
                short_verdict(m) if "per_function" in ml else "not run",
            ]
        )
    print(
        table(
            [
                "function",
                "needs",
                "takeout ms",
                "1st call",
                "takeout",
                "module_frontier",
                "MLflow s",
                "MLflow",
            ],
            rows,
            right=frozenset({2, 3, 6}),
        )
    )
    failures = []
    for key in labels:
        per = tools.get(key, {}).get("per_function", {})
        # One line for an error every function hit (typically an unfinished build).
        errors = {e.get("error") for e in per.values()}
        if len(per) > 2 and len(errors) == 1 and None not in errors:
            failures.append(f"   {key:<8} every function raised {errors.pop()}")
            continue
        for case in corpus.CASES:
            e = per.get(case.name)
            if e and (e.get("error") or e["missed"] or e["extra"]):
                got = "raised " + e["error"] if e.get("error") else f"found {e['found']}"
                failures.append(f"   {key:<8} {case.name:<16} ({case.why}): {got}")
    if failures:
        print()
        print("   failures:")
        print("\n".join(failures))
    print()

    idx = results["env_index"]
    print(f"2. Environment index (median of {idx['repeat']} fresh builds over sys.path)")
    rows = [
        [
            "takeout._core.EnvIndex(sys.path)",
            fmt(idx.get("rust_ms")),
            str(idx.get("rust_entries", _clip(idx.get("rust_error", "")))),
        ],
        [
            "importlib.metadata.packages_distributions()",
            fmt(idx["python_ms"]),
            str(idx["python_entries"]),
        ],
    ]
    print(table(["index", "ms", "entries"], rows, right=frozenset({1, 2})))
    if "speedup" in idx:
        print(
            f"   EnvIndex is {idx['speedup']:.1f}x faster (entries: distributions, top-level names)"
        )
    print()

    big = results["big_closure"]
    print(f"3. Closure over a {big['big_mb']} MB float64 array vs a 16-element one (takeout.deps)")
    if "ratio" in big:
        rows = [
            ["small (16 floats)", fmt(big["small_ms"])],
            [f"big ({big['big_mb']} MB), first call", fmt(big["big_first_ms"])],
            [f"big ({big['big_mb']} MB), median", fmt(big["big_ms"])],
        ]
        print(table(["closure", "ms"], rows, right=frozenset({1})))
        growth = big.get("peak_rss_growth_mb")
        print(
            f"   ratio {big['ratio']:.2f}x; peak RSS grew {fmt(growth, 0)} MB during the analysis "
            "(a copy of the array would add its size)"
        )
    else:
        print(f"   error: {big.get('error')}")
    print()

    print("Targets")
    rows = [
        [
            t["target"],
            t["value"],
            t["goal"],
            "PASS" if t["pass"] else ("—" if t["pass"] is None else "FAIL"),
        ]
        for t in results["targets"]
    ]
    print(table(["target", "measured", "goal", "result"], rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow's inference")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    parser.add_argument("--big-mb", type=int, default=1024, help="size of the big closure (MB)")
    parser.add_argument("--repeat", type=int, default=15, help="repetitions per median")
    parser.add_argument(
        "--mlflow-budget",
        type=float,
        default=150.0,
        help="seconds of MLflow inference after which only seed functions still run",
    )
    parser.add_argument("--mlflow-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mlflow_child:
        budget, *names = args.mlflow_child
        mlflow_child(float(budget), names)
        return 0

    results: dict[str, Any] = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpus": os.cpu_count(),
        # Other work on a 2-core machine moves every figure; say how quiet it was.
        "cpu_idle_before": cpu_idle_share(),
        "corpus": [
            {"name": c.name, "needs": sorted(c.needs), "optional": sorted(c.optional), "why": c.why}
            for c in corpus.CASES
        ],
        "tools": {},
    }
    log("building the corpus (fits KMeans and a Pipeline, as the notebooks do)")
    for case in corpus.CASES:
        corpus.build(case)(*case.example)  # every case must really run

    log("takeout.deps on the corpus")
    tools = results["tools"]
    tools["takeout"] = run_takeout(args.repeat)
    log("the seed's module_frontier on the corpus")
    tools["frontier"] = run_frontier(args.repeat)
    log("environment index")
    results["env_index"] = run_index(args.repeat)
    log(f"closure over a {args.big_mb} MB array")
    results["big_closure"] = run_big(args.big_mb, args.repeat)
    if args.no_mlflow:
        tools["mlflow"] = {"skipped": "--no-mlflow"}
    else:
        tools["mlflow"] = run_mlflow(args.mlflow_budget)

    tools["takeout"]["summary"] = summarise_tool(tools["takeout"]["per_function"], "warm_ms", 1)
    tools["frontier"]["summary"] = summarise_tool(tools["frontier"]["per_function"], "warm_ms", 1)
    ml = tools["mlflow"]
    if "per_function" in ml:
        ml["summary"] = summarise_tool(ml["per_function"], "seconds", 1e3)
        both = [
            n
            for n, e in ml["per_function"].items()
            if e.get("seconds") is not None
            and tools["takeout"]["per_function"][n].get("warm_ms") is not None
        ]
        if both:
            t_ms = statistics.median(tools["takeout"]["per_function"][n]["warm_ms"] for n in both)
            m_ms = statistics.median(ml["per_function"][n]["seconds"] * 1e3 for n in both)
            results["vs_mlflow"] = {
                "functions": len(both),
                "takeout_ms": t_ms,
                "mlflow_ms": m_ms,
                "ratio": m_ms / t_ms,
            }
    results["targets"] = targets(results)

    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
