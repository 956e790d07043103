"""What a bundle costs at run time, measured in one run.

    .venv/bin/python bench/bundle.py [--json] [--big-mb 1024] [--repeat 15] [--workers 4]

1. Cold start of `takeout call BUNDLE JSON` (process start to printed result), each run a new
   process, minus the import time of the function's own dependencies (a process that only
   unpickles function.pkl, which imports exactly what the function's objects need), for a
   stdlib-only function and the seed's `km_predict_two` (numpy) and `km_predict_one` (scikit-learn).
2. Loading a bundle whose closure holds a `--big-mb` array (default 1 GiB), in a fresh process
   (numpy and cloudpickle imported before the clock starts, on both sides), against
   `pickle.load` of the same closure (cloudpickle, protocol 5, in-band) from a file in the page
   cache. Every load reads the buffer once into private memory and hashes what it read (no
   cache: nothing but the bytes themselves can vouch for them), so two anchors are timed in
   the same run: hashlib's sha256 of the file alone, and reading it into memory alone.
3. `--workers` processes forked after one load, as `takeout serve --workers` does, each
   reading every element: the summed PSS (proportional set size: shared pages split between
   the processes that map them) and RSS of the loader and its workers.

Targets (issue: bundles): cold start overhead ≤ 50 ms; load ≥ 10× faster than pickle.load
(met only by the former unsafe cache; see the README); four workers well under 2 GB together.
"""

from __future__ import annotations

import argparse
import json
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

from _util import log, wall  # noqa: E402  (after the path is set)

TAKEOUT = str(Path(sys.executable).with_name("takeout"))


# ── 1. cold start ─────────────────────────────────────────────────────────────────────────


def cold_start(work: Path, repeat: int) -> list[dict[str, Any]]:
    from tests.support import EXAMPLES, notebook_cells, run_cells

    import takeout

    seed = run_cells(*notebook_cells(EXAMPLES / "kmeans.ipynb"))
    cases = [
        ("add (stdlib only)", run_cells("def add(a, b):\n    return a + b")["add"], "[1, 2]"),
        ("km_predict_two (numpy)", seed["km_predict_two"], "[[0.5, 0.5]]"),
        ("km_predict_one (scikit-learn)", seed["km_predict_one"], "[[0.5, 0.5]]"),
    ]
    bare = wall([sys.executable, "-I", "-c", "pass"], repeat)
    rows = []
    for label, fn, args in cases:
        bundle = takeout.pack(fn, work / f"{fn.__name__}.takeout", overwrite=True)
        log(f"cold start: {label}")
        call = wall([TAKEOUT, "call", str(bundle.path), args], repeat)
        # The function's own imports: a process that only unpickles function.pkl, which
        # imports exactly the modules the function's objects live in.
        imports = wall([sys.executable, "-c", UNPICKLE, str(bundle.path / "function.pkl")], repeat)
        rows.append(
            {
                "function": label,
                "takeout_call_ms": call * 1e3,
                "deps_import_ms": imports * 1e3,
                "overhead_ms": (call - imports) * 1e3,
                "python_startup_ms": bare * 1e3,
            }
        )
    return rows


# ── 2 and 3. a 1 GiB closure ──────────────────────────────────────────────────────────────

UNPICKLE = "import pickle, sys\nwith open(sys.argv[1], 'rb') as fh: pickle.load(fh)"

# Both sides import what they share (numpy, cloudpickle) before the clock starts: the figure
# is the load itself, not an import that both pay alike.
LOAD_TAKEOUT = """
import sys, time
import cloudpickle, numpy, takeout.bundle
start = time.perf_counter()
fn = takeout.load(sys.argv[1])
print(time.perf_counter() - start)
"""

LOAD_PICKLE = """
import sys, time, pickle
import cloudpickle, numpy
start = time.perf_counter()
with open(sys.argv[1], "rb") as fh:
    fn = pickle.load(fh)
print(time.perf_counter() - start)
"""

HASH_ONLY = """
import hashlib, sys, time
start = time.perf_counter()
digest = hashlib.sha256()
with open(sys.argv[1], "rb", buffering=0) as fh:
    for block in iter(lambda: fh.read(8 << 20), b""):
        digest.update(block)
print(time.perf_counter() - start)
"""

READ_ONLY = """
import mmap, os, sys, time
start = time.perf_counter()
with open(sys.argv[1], "rb", buffering=0) as fh:
    size = os.fstat(fh.fileno()).st_size
    view = memoryview(mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS))
    pos = 0
    while pos < size:
        pos += fh.readinto(view[pos : pos + (8 << 20)])
print(time.perf_counter() - start)
"""

WORKERS = """
import os, sys, takeout
fn = takeout.load(sys.argv[1])
pids = []
for _ in range(int(sys.argv[2])):
    pid = os.fork()
    if pid == 0:
        print(os.getpid(), fn(), flush=True)
        sys.stdin.read()
        os._exit(0)
    pids.append(pid)
sys.stdin.read()
"""


def timed(script: str, path: Path, repeat: int, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def memory_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in kB from /proc/PID/smaps_rollup."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Pss", "Rss"):
            values[key] = int(rest.split()[0])
    return values["Pss"], values["Rss"]


def big_closure(work: Path, mb: int, repeat: int, workers: int) -> dict[str, Any]:
    import cloudpickle
    import numpy as np
    from tests.support import run_cells

    import takeout

    ns = run_cells("def total():\n    return float(weights.sum())")
    ns["weights"] = np.ones(mb * (1 << 20) // 8)
    log(f"packing a closure over a {mb} MiB array")
    start = time.perf_counter()
    bundle = takeout.pack(ns["total"], work / "big.takeout", overwrite=True)
    pack_s = time.perf_counter() - start
    pickled = work / "big.pkl"
    with open(pickled, "wb") as fh:
        cloudpickle.dump(ns["total"], fh, protocol=5)
    expected = ns["total"]()
    del ns

    log("timing loads")
    load = timed(LOAD_TAKEOUT, bundle.path, max(3, repeat // 3))
    buffer = bundle.path / "buffers" / "0000.bin"
    hash_only = timed(HASH_ONLY, buffer, max(3, repeat // 3))
    read_only = timed(READ_ONLY, buffer, max(3, repeat // 3))
    plain = timed(LOAD_PICKLE, pickled, max(3, repeat // 3))

    log(f"{workers} worker processes forked after one load")
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKERS, str(bundle.path), str(workers)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline().split() for _ in range(workers)]
        assert all(float(r) == expected for _, r in lines), lines
        pids = [proc.pid, *(int(pid) for pid, _ in lines)]
        pss, rss = map(sum, zip(*(memory_kb(pid) for pid in pids)))
    finally:
        proc.stdin.close()
        proc.wait()
        proc.stdout.close()
    return {
        "array_mib": mb,
        "pack_s": pack_s,
        "load_ms": load * 1e3,
        "sha256_only_ms": hash_only * 1e3,
        "read_only_ms": read_only * 1e3,
        "pickle_load_ms": plain * 1e3,
        "speedup": plain / load,
        "workers": workers,
        "workers_pss_mib": pss / 1024,
        "workers_rss_mib": rss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="takeout-bench-"))
    try:
        cold = cold_start(work, args.repeat)
        big = big_closure(work, args.big_mb, args.repeat, args.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({"cold_start": cold, "big": big}, indent=2))
        return 0
    print("Cold start of `takeout call` (median of fresh processes)")
    print(f"  {'function':32} {'call':>9} {'deps import':>12} {'overhead':>9}")
    for row in cold:
        print(
            f"  {row['function']:32} {row['takeout_call_ms']:7.1f}ms "
            f"{row['deps_import_ms']:10.1f}ms {row['overhead_ms']:7.1f}ms"
        )
    print(f"  (bare `python -I -c pass`: {cold[0]['python_startup_ms']:.1f} ms)")
    print(f"\nA closure over a {big['array_mib']} MiB array (packed in {big['pack_s']:.1f} s)")
    print(f"  pickle.load (in-band)            {big['pickle_load_ms']:9.1f} ms")
    print(
        f"  takeout.load (read + sha256)     {big['load_ms']:9.1f} ms"
        f"   {big['speedup']:6.2f}x pickle.load"
    )
    print(f"  anchor: sha256 of the file alone {big['sha256_only_ms']:9.1f} ms")
    print(f"  anchor: reading it into memory   {big['read_only_ms']:9.1f} ms")
    print(
        f"  loader + {big['workers']} forked workers: PSS "
        f"{big['workers_pss_mib']:.0f} MiB together "
        f"(RSS {big['workers_rss_mib']:.0f} MiB, shared pages counted in each)"
    )
    worst = max(r["overhead_ms"] for r in cold)
    print("\nTargets")
    for ok, text in (
        (worst <= 50, f"cold start overhead ≤ 50 ms: worst {worst:.1f} ms"),
        (big["speedup"] >= 10, f"load ≥ 10x pickle.load: {big['speedup']:.2f}x"),
        (
            big["workers_pss_mib"] < 2048,
            f"{big['workers']} workers < 2 GB: {big['workers_pss_mib']:.0f} MiB",
        ),
    ):
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
