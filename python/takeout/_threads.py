"""How many BLAS/OpenMP threads a worker may run, and setting it.

A numpy/scipy/scikit-learn call that reaches BLAS starts one thread per core by default; with
several workers (or several calls) at once those threads fight over the same cores and a server
collapses under load. Each worker gets its share of the CPUs the process may really use (its
affinity mask and its cgroup's CPU quota: a container's `--cpus`, a pod's CPU limit; not the
host's core count), less one CPU for the server's own threads. Ray's replicas call
`limit(num_cpus)` the same way.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

__all__ = ["ENV", "available_cpus", "default_threads", "for_replica", "limit"]

ENV = "TAKEOUT_BLAS_THREADS"
# Read by OpenBLAS, MKL, OpenMP runtimes (libgomp, libomp), numexpr and Apple's Accelerate when
# they load; a library already loaded is limited at run time by `limit` instead.
_LIBRARY_ENV = (
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OMP_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def available_cpus() -> int:
    """CPUs this process may use: the affinity mask, capped by the cgroup v2/v1 CPU quota.

    Hand-written because nothing in the standard library reads the cgroup quota
    (`os.process_cpu_count` is the affinity alone, and 3.13+); loky's `cpu_count` does, but it
    comes with joblib, which a bundle need not have.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def default_threads(workers: int = 1, cpus: Optional[int] = None) -> int:
    """Each worker's share of the CPUs but one: `max(1, (cpus - 1) // workers)`.

    The CPU left over is for the server's own threads (HTTP, and a second call thread while a
    long call runs without the GIL). BLAS threads wait for each other inside every product, so
    one that loses its core to those threads stalls the whole call: one worker on two cores
    with two BLAS threads served 7–150 req/s where one thread served 1,240–2,080
    (`bench/serve.py --blas`).
    """
    cpus = available_cpus() if cpus is None else cpus
    return max(1, (cpus - 1) // max(1, workers))


def limit(threads: int) -> str:
    """Limit BLAS and OpenMP to `threads` threads in this process (and the processes it forks
    or starts); returns how it was applied, for the log line.

    Environment variables first: a library that has not loaded yet reads them at start-up, the
    only moment some (OpenBLAS sizing its pool, OpenMP runtimes) look. A bundle is loaded before
    the workers fork, so numpy is usually loaded already; for what is loaded, threadpoolctl
    (when importable) sets each library's own limit, else ctypes calls OpenBLAS's
    `openblas_set_num_threads` and OpenMP's `omp_set_num_threads` in the libraries already
    mapped into the process.
    """
    for name in _LIBRARY_ENV:
        os.environ[name] = str(threads)
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:
        return "env+ctypes" if _ctypes_limit(threads) else "env"
    threadpool_limits(limits=threads)
    return "env+threadpoolctl"


def _ctypes_limit(threads: int) -> bool:
    import ctypes

    done = False
    for path in _mapped_libraries():
        name = Path(path).name
        calls = []
        if "openblas" in name:
            calls = ["openblas_set_num_threads", "openblas_set_num_threads64_"]
        elif "gomp" in name or "libomp" in name or "iomp" in name:
            calls = ["omp_set_num_threads"]
        elif "mkl_rt" in name:
            calls = ["MKL_Set_Num_Threads"]
        if not calls:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for call in calls:
            fn = getattr(lib, call, None)
            if fn is not None:
                fn(ctypes.c_int(threads))
                done = True
                break
    return done


def _mapped_libraries() -> list[str]:
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    seen: dict[str, None] = {}
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and ".so" in parts[5]:
            seen.setdefault(parts[5].strip(), None)
    return list(seen)


def _cgroup_quota(root: str = "/sys/fs/cgroup", proc: str = "/proc/self/cgroup") -> Optional[float]:
    """CPUs allowed by the tightest CFS quota on this process's cgroup path, or None."""
    try:
        lines = Path(proc).read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2: `0::/path`, quota in cpu.max as "QUOTA PERIOD"
            for directory in _ancestors(Path(root), path):
                quotas.append(_read_v2(directory / "cpu.max"))
        elif "cpu" in controllers.split(","):  # v1: cfs_quota_us and cfs_period_us
            for mount in (controllers, "cpu,cpuacct", "cpu"):
                for directory in _ancestors(Path(root) / mount, path):
                    quotas.append(_read_v1(directory))
    found = [q for q in quotas if q is not None]
    return min(found) if found else None


def _ancestors(base: Path, path: str) -> list[Path]:
    """The cgroup's directory and each parent up to the mount (a container sees `/`)."""
    parts = [p for p in path.strip("/").split("/") if p and p != ".."]
    return [base.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _read_v2(path: Path) -> Optional[float]:
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _read_v1(directory: Path) -> Optional[float]:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def for_replica(num_cpus: float) -> str:
    """Ray Serve: limit this replica to its `num_cpus` (at least one thread)."""
    return limit(max(1, int(num_cpus)))
