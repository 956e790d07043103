"""Several processes that load one bundle share its big buffers instead of copying them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import takeout

from .support import run_cells

WORKER = """
import sys, takeout
fn = takeout.load(sys.argv[1])
print(fn(), flush=True)
sys.stdin.read()
"""


def _pss_rss_kb(pid: int) -> tuple[int, int]:
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        values[key] = rest.split()[0] if rest.split() else "0"
    return int(values["Pss"]), int(values["Rss"])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
def test_four_workers_share_one_gigabyte_array(tmp_path: Path) -> None:
    ns = run_cells("def total():\n    return float(weights.sum())")
    ns["weights"] = np.ones((1 << 30) // 8)  # 1 GiB
    bundle = takeout.pack(ns["total"], tmp_path / "big.takeout")
    del ns
    assert bundle.manifest["buffers"] == [{"file": "buffers/0000.bin", "size": 1 << 30}]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(bundle.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        # Each worker has read every element of the array before it answers.
        assert [float(p.stdout.readline()) for p in procs] == [float(1 << 27)] * 4
        pss, rss = (sum(v) for v in zip(*(_pss_rss_kb(p.pid) for p in procs)))
    finally:
        for p in procs:
            p.kill()
            p.wait()
            p.stdin.close()  # type: ignore[union-attr]
            p.stdout.close()  # type: ignore[union-attr]
    # PSS splits each shared page between the processes that map it: the four together hold
    # one copy of the array plus four interpreters. RSS counts the shared copy in each.
    assert pss < 1.5 * (1 << 20), f"PSS of 4 workers: {pss / 1024:.0f} MiB"
    assert rss > 4 * (1 << 20), "each worker should have the whole array mapped"
