"""Property-based clients generated from `/openapi.json` (schemathesis): valid and invalid
bodies for every operation, against `takeout serve` and the ASGI adapter under uvicorn. No
response is a 5xx of the server layer, every response matches the document, and the server
is alive afterwards. A 500 is allowed only when it reports the function's own exception
(km_predict_two raises on samples of the wrong shape, as it should).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from .test_serve import TRANSPORTS, Served, bundles_fixture, serve  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow

SERVER_LAYER = {"internal_error", "overloaded", "shutting_down", "timeout"}


@pytest.fixture(
    scope="module",
    params=[(t, b) for t in TRANSPORTS for b in ("probe", "km")],
    ids=lambda p: "-".join(p),
)
def target(request: pytest.FixtureRequest, bundles: dict[str, Path]) -> Iterator[Served]:
    transport, which = request.param
    bundle = bundles["probe" if which == "probe" else "km_predict_two"]
    server = serve(transport, bundle, "--timeout=5")
    yield server
    assert _alive(server), server.log
    assert server.stop() == 0, server.log


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_no_server_layer_errors(target: Served, mode: Any) -> None:
    api = schemathesis.openapi.from_url(target.url + "/openapi.json")
    checks = [content_type_conformance, response_schema_conformance, status_code_conformance]

    @given(case=api.as_strategy(generation_mode=mode))
    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        body = case.body if isinstance(case.body, dict) else None
        if body and body.get("mode") in ("crash", "sleep"):
            return  # the probe's own misbehaviour, tested on purpose elsewhere
        response = case.call(base_url=target.url)
        case.validate_response(response, checks=checks, excluded_checks=[not_a_server_error])
        if response.status_code >= 500:
            error = response.json()["error"]
            assert response.status_code == 500, response.text
            assert error["type"] not in SERVER_LAYER, response.text

    run()


def _alive(server: Served) -> bool:
    try:
        return httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
