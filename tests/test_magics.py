"""`%load_ext takeout` and `%takeout` in a real ipykernel (driven cell by cell by nbclient),
end to end: deps, pack, serve, a call to the served URL from here, stop."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

DEFINE = """
import numpy as np
weights = np.array([1.0, 2.0])

def score(x: list) -> float:
    return float(weights @ np.asarray(x))
"""


class Session:
    """One kernel; `run(source)` executes a cell and returns its outputs."""

    def __init__(self, client: NotebookClient, nb: Any) -> None:
        self.client = client
        self.nb = nb

    def run(self, source: str) -> list[dict[str, Any]]:
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        self.client.execute_cell(cell, len(self.nb.cells) - 1)
        return list(cell.outputs)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("magics")
    nb = nbformat.v4.new_notebook()
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        allow_errors=True,
        resources={"metadata": {"path": str(folder)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    with client.setup_kernel():
        s = Session(client, nb)
        assert s.run("%load_ext takeout") == []
        assert s.run(DEFINE) == []
        s.folder = folder  # type: ignore[attr-defined]
        yield s


def stream(outputs: list[dict[str, Any]], name: str) -> str:
    return "".join(o["text"] for o in outputs if o["output_type"] == "stream" and o["name"] == name)


def test_deps_shows_a_table(session: Session) -> None:
    (out,) = session.run("%takeout deps score")
    assert out["output_type"] == "display_data"
    html, text = out["data"]["text/html"], out["data"]["text/plain"]
    assert "<table>" in html and "<td>numpy</td>" in html
    # What a terminal IPython prints: the text report, not a repr.
    assert text.startswith("takeout deps · score · ") and "numpy" in text
    data = json.loads(stream(session.run("%takeout deps score --json"), "stdout"))
    assert [r.split("==")[0] for r in data["requirements"]] == ["numpy"]


def test_errors_are_one_line_without_traceback(session: Session) -> None:
    for line, message in [
        ("%takeout deps nothing_here", "`nothing_here` is not defined in this notebook"),
        ("%takeout pack score --example '{oops'", "--example is not valid JSON"),
        ("%takeout frobnicate", "invalid choice: 'frobnicate'"),
        ("%takeout deps score --require 'numpy>>1'", "numpy>>1"),
    ]:
        outputs = session.run(line)
        assert [o["output_type"] for o in outputs] == ["stream"], outputs
        err = stream(outputs, "stderr")
        assert err.startswith("UsageError: ") and message in err, err
        assert err.count("\n") == 1, err


def test_pack_serve_call_stop(session: Session) -> None:
    bundle = session.folder / "score.takeout"  # type: ignore[attr-defined]
    out = stream(session.run(f"%takeout pack score -o {bundle} --example '[[1, 1]]'"), "stdout")
    assert out == f"packed `score` into {bundle} (numpy=={_numpy_version()})\n"
    err = stream(session.run(f"%takeout pack score -o {bundle}"), "stderr")
    assert err.startswith("UsageError: ") and "already exists" in err

    # Every `takeout serve` flag is also the magic's.
    out = stream(session.run(f"%takeout serve {bundle} --port 0 --token s3cret"), "stdout")
    match = re.fullmatch(
        r"serving `score` at (http://127\.0\.0\.1:\d+) \(stop it with %takeout stop\)\n", out
    )
    assert match, out
    url = match.group(1)
    request = urllib.request.Request(
        f"{url}/call",
        data=json.dumps([[2, 3]]).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as unauthorized:
        urllib.request.urlopen(request, timeout=30)
    assert unauthorized.value.code == 401
    unauthorized.value.close()  # it holds the connection
    request.add_header("Authorization", "Bearer s3cret")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read()) == {"result": 8.0}

    out = stream(session.run("%takeout stop"), "stdout")
    assert out == f"stopped `score` at {url}\n"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/healthz", timeout=5)
    assert stream(session.run("%takeout stop"), "stdout").startswith("no server")


def test_terminal_ipython_prints_text(tmp_path: Path) -> None:
    script = tmp_path / "session.ipy"
    script.write_text(f"%load_ext takeout\n{DEFINE}\n%takeout deps score\n")
    out = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "takeout deps · score · " in out.stdout
    assert "<table>" not in out.stdout


def _numpy_version() -> str:
    import numpy

    return numpy.__version__


def test_pack_with_the_batch_flags(session: Session) -> None:
    folder = session.folder  # type: ignore[attr-defined]
    session.run("def score_all(xs: list) -> list:\n    return [score(x) for x in xs]")
    bundle = folder / "score_all.takeout"
    line = f"%takeout pack score_all -o {bundle} --batch 8 --batch-wait 1ms --example '[[1, 1]]'"
    out = stream(session.run(line), "stdout")
    assert out.startswith(f"packed `score_all` into {bundle} ("), out
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["batch"] == {"max_size": 8, "max_wait_ms": 1.0, "parameter": "xs"}
    assert manifest["examples"][0]["output"] == 3.0  # one item: score([1, 1])
    err = stream(session.run(f"%takeout pack score_all -o {folder}/b.takeout --batch 0"), "stderr")
    assert err.startswith("UsageError: Batch max_size `0` is not a whole number"), err
    assert not (folder / "b.takeout").exists()
