"""The main job on the shipped example.

Runs the seed notebook (`examples/kmeans.ipynb`) in a real Jupyter kernel, asks takeout,
inside that kernel, what each of its functions needs (next to the naive `module_frontier`),
packs `km_predict_one` and `km_predict_two` into bundles under `.demo/`, then, from the shell
as a user would: `takeout verify` (a clean venv holding only each bundle's lock) and
`takeout call`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / ".demo"
TAKEOUT = str(Path(sys.executable).with_name("takeout"))

REPORT_CELL = """
import takeout
for fn in [f, g, h, km_predict_one, km_predict_two, module_frontier]:
    report = takeout.deps(fn)
    print(report)
    print("  naive module_frontier:", sorted(module_frontier(fn)))
    print()
for fn in [km_predict_one, km_predict_two]:
    bundle = takeout.pack(fn, OUT / f"{fn.__name__}.takeout", overwrite=True,
                          examples=[([0.5, 0.5],), ([9.0, -3.0],)])
    print(f"packed {bundle.path.name}: " + ", ".join(bundle.manifest["lock"]))
"""


def main() -> int:
    nb = nbformat.read(HERE / "kmeans.ipynb", as_version=4)
    setup = f"from pathlib import Path\nOUT = Path({str(OUT)!r})\n"
    nb.cells.append(nbformat.v4.new_code_cell(setup + REPORT_CELL))
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
    status = 0
    for name in ("km_predict_one", "km_predict_two"):
        bundle = str(OUT / f"{name}.takeout")
        print(f"\n$ takeout verify .demo/{name}.takeout", flush=True)
        status |= subprocess.run([TAKEOUT, "verify", bundle]).returncode
        print(f"$ takeout call .demo/{name}.takeout '[[0.5, 0.5]]'", flush=True)
        status |= subprocess.run([TAKEOUT, "call", bundle, "[[0.5, 0.5]]"]).returncode
    return status


if __name__ == "__main__":
    raise SystemExit(main())
