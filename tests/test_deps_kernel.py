"""takeout.deps inside a real Jupyter kernel (ipykernel driven by nbclient), on the seed."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

from .support import EXAMPLES

pytestmark = pytest.mark.slow

CELL = """
import json, takeout
from takeout._names import normalize
print(json.dumps({
    fn.__name__: sorted(normalize(d.name) for d in takeout.deps(fn).distributions)
    for fn in [f, g, h, km_predict_one, km_predict_two, module_frontier]
}))
"""


def test_seed_notebook_in_a_real_kernel() -> None:
    nb = nbformat.read(EXAMPLES / "kmeans.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CELL))
    NotebookClient(nb, kernel_name="python3", timeout=300).execute()
    (output,) = [o for o in nb.cells[-1].outputs if o.get("output_type") == "stream"]
    found = json.loads(output["text"])
    assert found == {
        "f": ["numpy"],
        "g": ["numpy"],
        "h": ["numpy"],
        "km_predict_one": ["numpy", "scikit-learn"],
        "km_predict_two": ["numpy"],
        "module_frontier": [],
    }
