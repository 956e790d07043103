"""`takeout._runtime`, the standalone loader's conversions: JSON to arguments by annotation,
results to JSON."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pandas as pd
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


def test_results_of_time_types_become_json() -> None:
    stamps = pd.Series(pd.to_datetime(["2024-01-01", None]))
    assert _runtime.to_json(stamps) == ["2024-01-01T00:00:00", None]
    assert _runtime.to_json(pd.NaT) is None
    assert _runtime.to_json(pd.Timedelta(seconds=90)) == 90.0
    assert _runtime.to_json(np.array(["2024-01-01T10:00"], dtype="datetime64[ns]")) == [
        "2024-01-01T10:00:00"
    ]
    assert _runtime.to_json(decimal.Decimal("sNaN")) is None
    assert _runtime.to_json(dt.timedelta(minutes=1)) == 60.0
