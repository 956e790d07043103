"""Rich results (issue 14, point 12) and keywords matched as identifiers (point 14): a notebook
function that returns a matplotlib figure, a PIL image or an IPython display object is served
as its media type by `Accept`, and as `{"media_type", "data": <base64>}` in JSON, the same on
every path; pack says so when a return annotation has no JSON form at all. Real matplotlib and
Pillow, real server processes on loopback.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import takeout
import takeout.asgi
from takeout import _runtime
from takeout.bundle import call

from .support import run_cells
from .test_serve import Served, serve

pytestmark = pytest.mark.slow

# What a browser sends for a navigation or an <img> (both rank `image/*` above `*/*`), and
# what `fetch`, curl and httpx send by default.
BROWSER = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/*,*/*;q=0.8"
)
FETCH = "*/*"

PLOT = '''
import matplotlib
from matplotlib.figure import Figure

def plot(n: int = 3, width: float = 4.0) -> Figure:
    """A bar chart of the first `n` squares, as a notebook cell would draw it."""
    fig = Figure(figsize=(width, 3), dpi=50)
    ax = fig.subplots()
    ax.bar(range(n), [i * i for i in range(n)])
    ax.set_title(f"{n} squares")
    return fig

def thumbnail(size: int = 8):
    from PIL import Image
    return Image.new("RGB", (size, size // 2), (200, 30, 30))

def page(title: str):
    import IPython.display
    return IPython.display.HTML(f"<h1>{title}</h1><script>alert(1)</script>")

def twice(𝑥: int) -> int:
    return 2 * 𝑥

def broken() -> complex:
    return 1j
'''


@pytest.fixture(scope="module")
def cell() -> dict[str, Any]:
    return run_cells(PLOT)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, cell: dict[str, Any]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rich")
    examples = {"plot": [(2,)], "thumbnail": [(8,)], "page": [("hi",)], "twice": [{"𝑥": 2}]}
    return {
        name: takeout.pack(cell[name], root / f"{name}.takeout", examples=ex).path
        for name, ex in examples.items()
    }


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def media(result: Any) -> tuple[str, bytes]:
    assert set(result) == {"media_type", "data"}, result
    return result["media_type"], base64.b64decode(result["data"], validate=True)


# ── the JSON form, on every path ────────────────────────────────────────────────────────────


def test_a_figure_is_the_png_the_notebook_shows(cell: dict[str, Any]) -> None:
    kind, data = media(_runtime.to_json(cell["plot"](3, 4.0)))
    assert kind == "image/png"
    width, height = png_size(data)
    # `bbox_inches="tight"` trims the margins of the 200 x 150 canvas, as the inline backend.
    assert 100 < width <= 200 and 100 < height <= 150, (width, height)
    wider = png_size(media(_runtime.to_json(cell["plot"](3, 8.0)))[1])
    assert wider[0] > width


def test_images_and_display_objects(cell: dict[str, Any]) -> None:
    kind, data = media(_runtime.to_json(cell["thumbnail"](8)))
    assert (kind, png_size(data)) == ("image/png", (8, 4))
    kind, data = media(_runtime.to_json(cell["page"]("hi")))
    assert (kind, data) == ("text/html", b"<h1>hi</h1><script>alert(1)</script>")
    import IPython.display

    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'
    kind, data = media(_runtime.to_json(IPython.display.SVG(svg)))
    assert kind == "image/svg+xml" and b"<svg" in data
    raw = _runtime.to_json(cell["thumbnail"](8))["data"]
    shown = IPython.display.Image(data=base64.b64decode(raw))
    assert media(_runtime.to_json(shown)) == ("image/png", base64.b64decode(raw))


def test_the_annotation_documents_the_media_type(bundles: dict[str, Path]) -> None:
    manifest = json.loads((bundles["plot"] / "manifest.json").read_text())
    returns = manifest["function"]["returns"]
    assert returns["properties"]["media_type"] == {"enum": ["image/png"]}
    assert returns["properties"]["data"]["contentMediaType"] == "image/png"


def test_takeout_call_prints_the_json_form(bundles: dict[str, Path], cell: dict[str, Any]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "takeout.cli", "call", str(bundles["plot"]), '{"n": 3}'],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    kind, data = media(json.loads(out.stdout))
    assert kind == "image/png"
    assert data == media(_runtime.to_json(cell["plot"](3)))[1]


def test_verify_replays_the_figure_in_a_clean_venv(bundles: dict[str, Path]) -> None:
    # The recorded PNG is compared with the one the clean venv's matplotlib draws.
    result = takeout.verify(bundles["plot"])
    assert result.ok, result


# ── pack refuses or warns ───────────────────────────────────────────────────────────────────


def test_pack_warns_when_the_annotation_has_no_json_form(
    tmp_path: Path, cell: dict[str, Any]
) -> None:
    bundle = takeout.pack(cell["broken"], tmp_path / "broken.takeout")
    warnings = bundle.manifest["warnings"]
    assert any(
        "`broken` is annotated to return `complex`, which has no JSON form" in w for w in warnings
    ), warnings
    for fine in ("plot", "twice"):
        manifest = takeout.pack(cell[fine], tmp_path / f"{fine}.takeout").manifest
        assert not any("annotated to return" in w for w in manifest["warnings"]), fine


def test_pack_refuses_an_example_whose_result_cannot_be_converted(
    tmp_path: Path, cell: dict[str, Any]
) -> None:
    with pytest.raises(takeout.TakeoutError, match=r"example 1: .*`complex` at `result`"):
        takeout.pack(cell["broken"], tmp_path / "refused.takeout", examples=[()])
    assert not (tmp_path / "refused.takeout").exists()


# ── negotiation over HTTP: takeout serve and ASGI ───────────────────────────────────────────


@pytest.fixture(scope="module")
def served(bundles: dict[str, Path]) -> Iterator[dict[str, Served]]:
    servers = {name: serve("takeout", bundles[name]) for name in ("plot", "page", "twice")}
    yield servers
    for server in servers.values():
        assert server.stop() == 0, server.log


def test_serve_answers_png_to_a_browser_and_json_otherwise(served: dict[str, Served]) -> None:
    url = served["plot"].url + "/call"
    image = httpx.post(url, json={"n": 4}, headers={"Accept": BROWSER}, timeout=30)
    assert image.status_code == 200, image.text
    assert image.headers["content-type"] == "image/png"
    assert image.headers["vary"] == "accept"
    width, height = png_size(image.content)
    for accept in (FETCH, "application/json", None):
        headers = {"Accept": accept} if accept else {}
        if accept is None:
            # httpx adds `*/*` unless told otherwise: send no Accept at all.
            client = httpx.Client(headers={"Accept": ""})
            answer = client.post(url, json={"n": 4}, timeout=30)
            client.close()
        else:
            answer = httpx.post(url, json={"n": 4}, headers=headers, timeout=30)
        assert answer.headers["content-type"] == "application/json", accept
        assert answer.headers["vary"] == "accept"
        kind, data = media(answer.json()["result"])
        # The same picture either way.
        assert (kind, data) == ("image/png", image.content), accept
    assert png_size(data) == (width, height)


def test_html_results_are_sandboxed(served: dict[str, Served]) -> None:
    answer = httpx.post(
        served["page"].url + "/call", json={"title": "hi"}, headers={"Accept": BROWSER}, timeout=30
    )
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.text == "<h1>hi</h1><script>alert(1)</script>"
    assert answer.headers["content-security-policy"] == "sandbox"


def test_openapi_and_the_page_know_the_media_type(served: dict[str, Served]) -> None:
    doc = httpx.get(served["plot"].url + "/openapi.json", timeout=30).json()
    ok = doc["paths"]["/call"]["post"]["responses"]["200"]
    assert set(ok["content"]) == {"application/json", "image/png"}
    assert "base64" in ok["description"]
    # Unannotated, the recorded example says what the result is.
    doc = httpx.get(served["page"].url + "/openapi.json", timeout=30).json()
    assert "text/html" in doc["paths"]["/call"]["post"]["responses"]["200"]["content"]
    page = httpx.get(served["plot"].url + "/", timeout=30).text
    assert '"data:" + type + ";base64,"' in page  # the page draws `{"media_type", "data"}`


def _chrome() -> Any:
    """Debian's headless Chromium, driven by Debian's chromedriver through Selenium (which
    downloads nothing when given the driver's path). Missing, the test skips; under CI it
    fails: `.ci/run` installs both."""
    driver, browser = shutil.which("chromedriver"), shutil.which("chromium")
    if driver is None or browser is None:
        missing = "chromedriver" if driver is None else "chromium"
        if os.environ.get("CI"):
            pytest.fail(f"`{missing}` is not installed; `.ci/run` installs chromium-driver")
        pytest.skip(f"`{missing}` is not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1000,1200")
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_page_shows_the_figure_in_a_browser(served: dict[str, Served]) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _chrome()
    try:
        browser.get(served["plot"].url + "/")
        # What a person does: the page offers the recorded example; ask for 5 bars, press Call.
        assert json.loads(browser.find_element(By.ID, "args").get_attribute("value")) == {"n": 2}
        browser.find_element(By.ID, "args").clear()
        browser.find_element(By.ID, "args").send_keys('{"n": 5}')
        browser.find_element(By.ID, "go").click()
        img = WebDriverWait(browser, 60).until(
            lambda b: b.execute_script(
                "var i = document.querySelector('#media img');"
                "return i && i.complete && i.naturalWidth > 0 ? i : null;"
            )
        )
        shown = browser.execute_script(
            "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img
        )
        source = img.get_attribute("src")
        status = browser.find_element(By.ID, "status").text
        picture = img.screenshot_as_png
    finally:
        browser.quit()
    assert status.startswith("200 · "), status
    # The browser decoded the very figure `/call` draws for `n=5`.
    figure = httpx.post(
        served["plot"].url + "/call", json={"n": 5}, headers={"Accept": BROWSER}, timeout=30
    )
    assert source == "data:image/png;base64," + base64.b64encode(figure.content).decode()
    assert tuple(shown) == png_size(figure.content)
    # And painted it: the screenshot of the <img> is a chart (white, axes, bars), not blank.
    with Image.open(io.BytesIO(picture)) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16) or []
    assert len(colours) > 10, colours
    bar_blue = sum(n for n, (r, g, b) in colours if b > 150 and r < 100)
    assert bar_blue > 200, "no bars in the screenshot"


def test_asgi_negotiates_the_same(bundles: dict[str, Path]) -> None:
    import asyncio

    app = takeout.asgi.app(bundles["plot"])

    async def ask() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://asgi") as http:
            image = await http.post("/call", json={"n": 2}, headers={"Accept": BROWSER})
            plain = await http.post("/call", json={"n": 2})
            return image, plain

    image, plain = asyncio.run(ask())
    assert image.headers["content-type"] == "image/png"
    assert plain.headers["content-type"] == "application/json"
    assert media(plain.json()["result"]) == ("image/png", image.content)


# ── point 14: keywords are matched as Python matches identifiers (NFKC) ─────────────────────


def test_keywords_spelled_as_in_the_source(
    bundles: dict[str, Path], served: dict[str, Served], cell: dict[str, Any]
) -> None:
    # Python stored the parameter `𝑥` (math italic) as `x`.
    assert list(cell["twice"].__code__.co_varnames) == ["x"]
    manifest = json.loads((bundles["twice"] / "manifest.json").read_text())
    assert manifest["examples"][0] == {
        "args": [],
        "kwargs": {"x": 2},
        "output": 4,
        "check": "exact",
    }
    assert call(bundles["twice"], {"𝑥": 5}) == 10
    url = served["twice"].url + "/call"
    assert httpx.post(url, json={"𝑥": 5}, timeout=30).json() == {"result": 10}
    assert httpx.post(url, json={"x": 5}, timeout=30).json() == {"result": 10}
    refused = httpx.post(url, json={"𝑥": "five"}, timeout=30)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["loc"] == ["body", "x"]
