"""The main job on the shipped example.

Runs the seed notebook (`examples/kmeans.ipynb`) in a real Jupyter kernel, then asks takeout,
inside that kernel, what each of its functions needs, next to the naive `module_frontier`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

REPORT_CELL = """
import takeout
for fn in [f, g, h, km_predict_one, km_predict_two, module_frontier]:
    report = takeout.deps(fn)
    print(report)
    print("  naive module_frontier:", sorted(module_frontier(fn)))
    print()
"""


def main() -> int:
    nb = nbformat.read(HERE / "kmeans.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(REPORT_CELL))
    print(f"running {len(nb.cells)} cells of kmeans.ipynb in a Jupyter kernel ...", flush=True)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(HERE)}},
        # The kernel's start-up warnings (TCP transport) are not the demo's business.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    client.execute()
    for output in nb.cells[-1].outputs:
        if output.get("output_type") == "stream":
            sys.stdout.write(output["text"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
