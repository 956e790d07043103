"""What the tests share besides fixtures (those stay in `conftest.py`): running source the way
a notebook cell runs it, and where the examples are. Benchmarks import it too."""

from __future__ import annotations

import json
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_cells(*cells: str) -> dict[str, Any]:
    """Execute cells in a fresh namespace named `__main__`, as IPython does: functions and
    classes defined there have `__module__ == "__main__"` and travel by value."""
    ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    for i, cell in enumerate(cells):
        # dont_inherit: cells must not inherit this file's `from __future__ import annotations`.
        code = compile(textwrap.dedent(cell), f"<cell {i}>", "exec", dont_inherit=True)
        exec(code, ns)
    return ns


def notebook_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def answers_under_load(url: str, bodies: list[Any], clients: int = 32) -> list[Any]:
    """POST every body to `url`/call from `clients` keep-alive clients at once: the results in
    the order of `bodies` (a failed call gives its response text, so a mismatch shows why)."""
    import httpx

    def client(chunk: list[int]) -> list[tuple[int, Any]]:
        with httpx.Client(base_url=url, timeout=30) as http:
            out = []
            for i in chunk:
                r = http.post("/call", json=bodies[i])
                out.append((i, r.json()["result"] if r.status_code == 200 else r.text))
            return out

    chunks = [list(range(k, len(bodies), clients)) for k in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        got = dict(pair for part in pool.map(client, chunks) for pair in part)
    return [got[i] for i in range(len(bodies))]
