"""The fixtures every test file may use."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import EXAMPLES, notebook_cells, run_cells


@pytest.fixture(scope="session")
def seed() -> dict[str, Any]:
    """The seed notebook's namespace, executed in-process."""
    return run_cells(*notebook_cells(EXAMPLES / "kmeans.ipynb"))


@pytest.fixture
def local_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A notebook folder on sys.path, whose modules are forgotten after the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]
