"""Worker processes serving one bundle share its big buffers instead of copying them."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

import takeout

from .support import run_cells
from .test_serve import serve


def _pss_rss_kb(pid: int) -> tuple[int, int]:
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        values[key] = rest.split()[0] if rest.split() else "0"
    return int(values["Pss"]), int(values["Rss"])


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
@pytest.mark.skipif(sys.platform != "linux", reason="forked workers with SO_REUSEPORT")
def test_four_workers_share_one_gigabyte_array(tmp_path: Path) -> None:
    """The buffer is read (and hashed) once into private memory by the process that loads
    the bundle; `--workers` forks after that, so the pages are shared copy-on-write."""
    ns = run_cells("def total():\n    return float(weights.sum())")
    ns["weights"] = np.ones((1 << 30) // 8)  # 1 GiB
    bundle = takeout.pack(ns["total"], tmp_path / "big.takeout")
    del ns
    assert bundle.manifest["buffers"] == [{"file": "buffers/0000.bin", "size": 1 << 30}]
    server = serve("takeout", bundle.path, "--workers=4")
    try:
        deadline = time.monotonic() + 60
        while len(_children(server.proc.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        # Enough calls that every worker (SO_REUSEPORT spreads connections) read the array.
        for _ in range(16):
            r = httpx.post(server.url + "/call", json=[], timeout=60)
            assert r.json() == {"result": float(1 << 27)}
        pids = [server.proc.pid, *_children(server.proc.pid)]
        assert len(pids) == 5
        pss, rss = (sum(v) for v in zip(*(_pss_rss_kb(p) for p in pids)))
    finally:
        server.stop()
    # PSS splits each shared page between the processes that map it: the five together hold
    # one copy of the array plus five interpreters. RSS counts the shared copy in each.
    assert pss < 1.5 * (1 << 20), f"PSS of supervisor and 4 workers: {pss / 1024:.0f} MiB"
    assert rss > 4 * (1 << 20), "each worker should hold the whole array"
