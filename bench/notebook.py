"""Notebooks: how fast the slicer is, and what slicing saves when packing from a file.

    .venv/bin/python bench/notebook.py [--json] [--repeat 25] [--runs 2] [--sleep 5]
        [--demo-seconds 60] [--no-expensive] [--no-pack]

1. Parse + slice (Rust, `takeout._core.slice_notebook`: JSON, ruff's parser in IPython mode,
   scopes, the forward and backward passes) of a generated 500-cell notebook that looks like
   real work: pandas frames, feature functions, comprehensions, classes, plots, prints,
   magics and shell lines, markdown. Median of `--repeat` runs after a warm-up. For scale, the
   same cells through CPython's own `ast.parse` (magic lines dropped), which only parses.
2. A notebook whose cells unrelated to the function are expensive (a `--sleep` second wait,
   standing for a download; a random forest and a batch of SVDs, CPU-bound): wall time of
   `takeout pack NOTEBOOK predict` from the shell against executing the whole notebook with
   nbclient (what "Run All" costs before anyone can pack), and `takeout pack --all-cells`.
   Each includes its kernel's start-up. Medians of `--runs` runs.

3. A solver notebook whose demo, test and timing cells (`print(solve(puzzle))`, `assert
   solve(puzzle) == ...`, `timeit`) call the function for `--demo-seconds` in all: wall time
   of `takeout pack NOTEBOOK solve` against `takeout pack` of a notebook holding only the
   cells the function needs (the anchor, same kernel start-up and pack). Every cell once with
   nbclient, for scale.

Targets (issue: notebooks): parse + slice of 500 cells ≤ 50 ms; case 3 ≤ 1.2× its anchor.
Tables go to stdout, progress to stderr; `--json` prints the raw figures instead.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import log, median_time, table

TAKEOUT = [sys.executable, "-m", "takeout.cli"]
TARGET_SLICE_MS = 50.0
TARGET_DEMO_RATIO = 1.2


def notebook_json(cells: list[str]) -> str:
    """nbformat 4 text; a cell starting with `# md` is markdown."""
    out = []
    for index, source in enumerate(cells):
        kind = "markdown" if source.startswith("# md") else "code"
        cell: dict[str, Any] = {
            "id": f"cell-{index}",
            "cell_type": kind,
            "metadata": {},
            "source": source,
        }
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "cells": out,
    }
    return json.dumps(nb, indent=1)


# ── 1. a large notebook ─────────────────────────────────────────────────────────────────────


def large_notebook(n_cells: int = 500) -> list[str]:
    cells = [
        "import numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt\nresults = {}",
        "%matplotlib inline\n%load_ext autoreload",
    ]
    i = 0
    while len(cells) < n_cells - 1:
        cells += [
            f"# md ## Experiment {i}\nA frame, a feature, a model and a plot.",
            f"df_{i} = pd.DataFrame({{'a': np.arange(100), 'b': np.arange(100) * {i}}})\n"
            f"df_{i}['c'] = df_{i}['a'] * 2 + df_{i}['b']\ndf_{i}.head()",
            f"def feature_{i}(frame, scale={i}):\n    out = frame.copy()\n"
            f"    out['d'] = [v * scale for v in out['c'] if v is not None]\n    return out",
            f"features_{i} = feature_{i}(df_{i})\nprint(features_{i}.shape)",
            f"plt.plot(features_{i}['d'])\nplt.title('experiment {i}')\nplt.show()",
            f"class Model{i}:\n    def __init__(self, k={i}):\n        self.k = k\n"
            f"    def fit(self, X):\n        self.mean_ = float(np.mean(X)) * self.k\n"
            f"        return self\n    def predict(self, x):\n        return x * self.mean_",
            f"model_{i} = Model{i}()\nmodel_{i}.fit(features_{i}['d'])",
            f"for j in range(3):\n    scores_{i} = [model_{i}.predict(v) for v in range(j)]\n"
            f"results[{i}] = scores_{i}",
            f"!echo experiment {i} done\n%time _ = model_{i}.predict(1.0)",
            f"summary_{i} = {{k: len(v) for k, v in results.items()}}\nsummary_{i}",
        ]
        i += 1
    cells = cells[: n_cells - 1]
    last = max(int(c.split("_", 1)[1].split(" ")[0]) for c in cells if c.startswith("model_"))
    cells.append(f"def predict(x):\n    return model_3.predict(x) + model_{last}.predict(x)")
    return cells


def without_magics(source: str) -> str:
    if source.startswith("%%"):
        return ""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")
    )


def run_slice(repeat: int) -> dict[str, Any]:
    from takeout import _core

    cells = large_notebook()
    text = notebook_json(cells)
    code = [c for c in cells if not c.startswith("# md")]
    sliced = _core.slice_notebook(text, "predict", "large.ipynb")  # warm-up
    seconds = median_time(lambda: _core.slice_notebook(text, "predict", "large.ipynb"), repeat)
    plain = [without_magics(c) for c in code]
    ast_seconds = median_time(lambda: [ast.parse(c) for c in plain], repeat)
    return {
        "cells": len(cells),
        "code_cells": len(code),
        "bytes": len(text),
        "kept_cells": len(sliced.cells),
        "kept_statements": sum(len(c.statements) for c in sliced.cells),
        "slice_ms": seconds * 1000,
        "ast_parse_ms": ast_seconds * 1000,
        "target_ms": TARGET_SLICE_MS,
    }


# ── 2. packing from a file against running everything ───────────────────────────────────────


def expensive_notebook(sleep: float) -> list[str]:
    return [
        "# md # A regression model, and work that has nothing to do with it",
        "import time\nimport numpy as np\nfrom sklearn.datasets import make_regression\n"
        "from sklearn.linear_model import Ridge",
        "X, y = make_regression(n_samples=2000, n_features=20, noise=0.1, random_state=0)",
        f"time.sleep({sleep})  # stands for downloading another dataset",
        "model = Ridge(alpha=1.0)\nmodel.fit(X, y)",
        "from sklearn.ensemble import RandomForestRegressor\n"
        "forest = RandomForestRegressor(n_estimators=150, random_state=0).fit(X, y)\n"
        "forest.score(X, y)",
        "rng = np.random.default_rng(0)\n"
        "spectra = [np.linalg.svd(rng.random((300, 300)))[1][:3] for _ in range(40)]",
        "def predict(features):\n"
        "    return float(model.predict(np.asarray(features, dtype=float).reshape(1, -1))[0])",
        "predict(X[0])",
    ]


def pack_seconds(path: Path, function: str, bundle: Path, *extra: str) -> float:
    """Wall time of `takeout pack` from the shell, kernel start-up included."""
    start = time.perf_counter()
    out = subprocess.run(
        [*TAKEOUT, "pack", str(path), function, "-o", str(bundle), "--force", *extra],
        capture_output=True,
        text=True,
        cwd=path.parent,
    )
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"takeout pack failed: {out.stderr.strip().splitlines()[-1]}")
    return seconds


def run_all_seconds(path: Path) -> float:
    """Wall time of executing every cell with nbclient (what "Run All" costs)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(path.parent)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    ).execute()
    return time.perf_counter() - start


def run_pack(runs: int, sleep: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="takeout-bench-nb-"))
    path = work / "expensive.ipynb"
    path.write_text(notebook_json(expensive_notebook(sleep)), encoding="utf-8")

    def pack(*extra: str) -> float:
        return pack_seconds(path, "predict", work / "p.takeout", *extra)

    def run_all() -> float:
        return run_all_seconds(path)

    results: dict[str, list[float]] = {"pack": [], "run_all": [], "pack_all_cells": []}
    for r in range(runs):
        log(f"  run {r + 1}/{runs}: takeout pack (slice)")
        results["pack"].append(pack())
        log(f"  run {r + 1}/{runs}: nbclient, every cell")
        results["run_all"].append(run_all())
        log(f"  run {r + 1}/{runs}: takeout pack --all-cells")
        results["pack_all_cells"].append(pack("--all-cells"))
    from takeout import _core

    sliced = _core.slice_notebook(path.read_text(), "predict", "expensive.ipynb")
    return {
        "sleep_s": sleep,
        "kept_cells": [c.number for c in sliced.cells],
        "total_cells": sliced.total_cells,
        **{f"{k}_s": statistics.median(v) for k, v in results.items()},
        "samples": results,
    }


# ── 3. demo, test and timing cells of the function itself ─────────────────────────────────


def demo_notebook(seconds: float) -> tuple[list[str], list[str]]:
    """A solver notebook, as puzzle notebooks are written: the cells the function needs, and
    the same notebook with demo, test and timing cells calling it for `seconds` in all. Each
    of those only uses `solve` and `puzzle`, so the slice leaves them out."""
    third = seconds / 3
    needed = [
        "import itertools\nimport time\nimport timeit",
        "def score(order):\n    return sum(i * v for i, v in enumerate(order))",
        "def solve(items):\n    return max(itertools.permutations(items), key=score)",
    ]
    demos = [
        f"_end = time.time() + {third:.1f}\nwhile time.time() < _end:\n"
        "    answer = solve(puzzle)\nprint(answer)",
        f"_end = time.time() + {third:.1f}\nwhile time.time() < _end:\n"
        "    assert solve(puzzle) == tuple(sorted(puzzle)), 'sorted order scores best'",
        f"_end, times = time.time() + {third:.1f}, []\nwhile time.time() < _end:\n"
        "    times.append(timeit.timeit(lambda: solve(puzzle), number=1))\nprint(min(times))",
    ]
    puzzle = "puzzle = list(range(2, 9))"
    full = [needed[0], puzzle, needed[1], needed[2], demos[0], "solve([3, 1, 2])", *demos[1:]]
    return needed, full


def run_demo(runs: int, seconds: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="takeout-bench-demo-"))
    needed, full = demo_notebook(seconds)
    needed_path, full_path = work / "needed.ipynb", work / "demos.ipynb"
    needed_path.write_text(notebook_json(needed), encoding="utf-8")
    full_path.write_text(notebook_json(full), encoding="utf-8")
    example = ["--example", "[[3, 1, 2]]"]
    results: dict[str, list[float]] = {"pack_needed": [], "pack_demos": []}
    for r in range(runs):
        log(f"  run {r + 1}/{runs}: takeout pack of the needed cells alone")
        results["pack_needed"].append(
            pack_seconds(needed_path, "solve", work / "n.takeout", *example)
        )
        log(f"  run {r + 1}/{runs}: takeout pack of the notebook with its demo cells")
        results["pack_demos"].append(pack_seconds(full_path, "solve", work / "d.takeout", *example))
    log("  once: nbclient, every cell of the notebook with its demo cells")
    from takeout import _core

    sliced = _core.slice_notebook(full_path.read_text(), "solve", "demos.ipynb")
    medians = {f"{k}_s": statistics.median(v) for k, v in results.items()}
    return {
        "demo_s": seconds,
        "kept_cells": [c.number for c in sliced.cells],
        "total_cells": sliced.total_cells,
        "run_all_s": run_all_seconds(full_path),
        **medians,
        "ratio": medians["pack_demos_s"] / medians["pack_needed_s"],
        "target_ratio": TARGET_DEMO_RATIO,
        "samples": results,
    }


# ── report ──────────────────────────────────────────────────────────────────────────────────


def numbers_table(headers: list[str], rows: list[list[str]]) -> str:
    """A table whose first column is text and the others figures (aligned right)."""
    return table(headers, rows, right=frozenset(range(1, len(headers))))


def print_report(data: dict[str, Any]) -> None:
    s = data["slice"]
    kept = f"takeout slice (Rust): keeps {s['kept_cells']} cells, {s['kept_statements']} statements"
    verdict = "PASS" if s["slice_ms"] <= s["target_ms"] else "FAIL"
    print(
        f"\n1. Parse + slice of a generated notebook ({s['cells']} cells, {s['bytes'] // 1024} KiB)"
    )
    print(
        numbers_table(
            ["what", "median", "goal"],
            [
                [
                    kept,
                    f"{s['slice_ms']:.1f} ms",
                    f"≤ {s['target_ms']:.0f} ms {verdict}",
                ],
                [
                    "for scale: CPython ast.parse of the same cells, parsing only",
                    f"{s['ast_parse_ms']:.1f} ms",
                    "",
                ],
            ],
        )
    )
    p = data.get("pack")
    if p:
        print(
            f"\n2. Packing from a file, unrelated cells expensive (a {p['sleep_s']:.0f} s wait, a "
            f"random forest, 40 SVDs); the slice runs cells {p['kept_cells']} of {p['total_cells']}"
        )
        base = p["run_all_s"]
        print(
            numbers_table(
                ["what (kernel start-up included)", "median", "vs running everything"],
                [
                    ["nbclient: execute every cell (no pack)", f"{base:.1f} s", "1.0×"],
                    [
                        "takeout pack NOTEBOOK predict",
                        f"{p['pack_s']:.1f} s",
                        f"{base / p['pack_s']:.1f}× faster",
                    ],
                    [
                        "takeout pack --all-cells",
                        f"{p['pack_all_cells_s']:.1f} s",
                        f"{base / p['pack_all_cells_s']:.2f}×",
                    ],
                ],
            )
        )
    d = data.get("demo")
    if d:
        verdict = "PASS" if d["ratio"] <= d["target_ratio"] else "FAIL"
        print(
            f"\n3. A solver with demo, test and timing cells ({d['demo_s']:.0f} s of calls); the "
            f"slice runs cells {d['kept_cells']} of {d['total_cells']}"
        )
        print(
            numbers_table(
                ["what (kernel start-up included)", "median", "vs the needed cells alone"],
                [
                    [
                        "takeout pack of a notebook of the needed cells",
                        f"{d['pack_needed_s']:.1f} s",
                        "1.00×",
                    ],
                    [
                        "takeout pack of the notebook with its demo cells",
                        f"{d['pack_demos_s']:.1f} s",
                        f"{d['ratio']:.2f}× (goal ≤ {d['target_ratio']}×) {verdict}",
                    ],
                    ["nbclient: execute every cell (no pack), once", f"{d['run_all_s']:.1f} s", ""],
                ],
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print raw figures as JSON")
    parser.add_argument("--repeat", type=int, default=25, help="slice timing repetitions")
    parser.add_argument("--runs", type=int, default=2, help="runs of each packing variant")
    parser.add_argument("--sleep", type=float, default=5.0, help="seconds of the waiting cell")
    parser.add_argument("--no-pack", action="store_true", help="only time the slicer")
    parser.add_argument("--no-expensive", action="store_true", help="skip case 2")
    parser.add_argument(
        "--demo-seconds", type=float, default=60.0, help="seconds of demo/test/timing calls (3.)"
    )
    args = parser.parse_args(argv)

    log("1. slicing a 500-cell notebook")
    data: dict[str, Any] = {"slice": run_slice(args.repeat)}
    if not args.no_pack:
        if not args.no_expensive:
            log("2. packing from a file vs running every cell")
            data["pack"] = run_pack(args.runs, args.sleep)
        log("3. packing a function with its demo cells vs the needed cells alone")
        data["demo"] = run_demo(args.runs, args.demo_seconds)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_report(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
