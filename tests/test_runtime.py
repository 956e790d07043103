"""`takeout._runtime`, the standalone loader's conversions: JSON to arguments by annotation,
results to JSON."""

from __future__ import annotations

import pytest

from takeout import _runtime

from .support import run_cells


def test_conversions_round_trip() -> None:
    ns = run_cells(
        """
        import datetime
        def wait(d: datetime.timedelta, pair: tuple[int, int], at: datetime.time):
            return d.total_seconds(), pair, at.isoformat()
        """
    )
    call = _runtime.converter(ns["wait"])
    assert call is not None
    assert call(90, [1, 2], "12:00:00Z") == (90.0, (1, 2), "12:00:00+00:00")
    with pytest.raises(TypeError, match="expected 2 items, got 3"):
        call(1, [1, 2, 3], "12:00:00")
