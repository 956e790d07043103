"""The main job on the shipped example, as a user would run it.

1. In a real Jupyter kernel, run the seed notebook (`examples/kmeans.ipynb`) and ask takeout
   what each of its functions needs, next to the seed's naive `module_frontier`.
2. From the shell: `takeout slice`, then `takeout pack NOTEBOOK FUNCTION` for the two
   predictors (only the cells they need run, in a fresh kernel), `takeout verify` (a clean venv
   holding only each bundle's lock), `takeout call`.
3. `takeout serve` one bundle, call it over HTTP (`POST /call` and KServe v1), stop it with
   SIGTERM as Kubernetes would.

Bundles go to `.demo/` at the repository root.
"""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / ".demo"
TAKEOUT = str(Path(sys.executable).with_name("takeout"))
NOTEBOOK = "examples/kmeans.ipynb"

REPORT_CELL = """
import takeout
for fn in [f, g, h, km_predict_one, km_predict_two, module_frontier]:
    print(takeout.deps(fn))
    print("  naive module_frontier:", sorted(module_frontier(fn)))
    print()
"""


def in_kernel() -> None:
    nb = nbformat.read(HERE / "kmeans.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(REPORT_CELL))
    print(f"── running the {len(nb.cells)} cells of {NOTEBOOK} in a Jupyter kernel", flush=True)
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


def shell(*args: str) -> int:
    shown = " ".join(shlex.quote(a) for a in args)
    print(f"\n$ takeout {shown}", flush=True)
    return subprocess.run([TAKEOUT, *args], cwd=ROOT).returncode


def http(url: str, body: object | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    return json.loads(text) if "json" in response.headers.get("Content-Type", "") else text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_and_call(bundle: str) -> int:
    port = free_port()
    print(f"\n$ takeout serve {bundle} --port {port} &", flush=True)
    server = subprocess.Popen([TAKEOUT, "serve", bundle, "--port", str(port)], cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                http(f"{base}/readyz")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    print("the server did not become ready", file=sys.stderr)
                    return 1
                time.sleep(0.05)
        for path, body in [
            ("/call", [[0.5, 0.5]]),
            ("/call", {"sample": [9.0, -3.0]}),
            ("/v1/models/km_predict_one:predict", {"instances": [[0.5, 0.5], [9.0, -3.0]]}),
        ]:
            header = "-H 'content-type: application/json'"
            print(f"$ curl -s {base}{path} {header} -d '{json.dumps(body)}'")
            print(json.dumps(http(base + path, body)), flush=True)
    finally:
        print("$ kill -TERM %1", flush=True)
        server.send_signal(signal.SIGTERM)
        status = server.wait(timeout=60)
    print(f"server exited with status {status}")
    return status


def main() -> int:
    in_kernel()
    status = shell("slice", NOTEBOOK, "km_predict_one")
    for name in ("km_predict_one", "km_predict_two"):
        bundle = f".demo/{name}.takeout"
        status |= shell(
            "pack", NOTEBOOK, name, "-o", bundle, "--force",
            "--example", "[[0.5, 0.5]]", "--example", "[[9.0, -3.0]]",
        )  # fmt: skip
        status |= shell("verify", bundle)
        status |= shell("call", bundle, "[[0.5, 0.5]]")
    status |= serve_and_call(".demo/km_predict_one.takeout")
    print("\ndemo " + ("ok" if status == 0 else "FAILED"))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
