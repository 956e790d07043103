"""Batch functions: `takeout.Batch`, `@takeout.batched` and how pack reads them.

A batch function takes a list as its first parameter (one item per request) and returns a
sequence of the same length. The server coalesces concurrent requests into one call of it (in
Rust, `crates/takeout-core/src/server/batch.rs`); everything else (`takeout call`, verify, the
recorded examples, the schema) sees one item, so clients see the API of the unbatched function.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import re
from collections.abc import Iterator
from typing import Any, Callable, Optional, TypeVar

from .errors import UsageError

__all__ = ["Batch", "batch_of", "batched", "parse_wait"]

#: Where `@takeout.batched` leaves its settings on the function; pickled with it, so a
#: function packed in a notebook keeps its mark.
MARK = "__takeout_batch__"

#: Larger batches buy nothing a server can use, and a typo (`640000`) would hold requests.
MAX_SIZE = 65536
#: A request may wait at most this long for others: a minute is already past `--timeout`.
MAX_WAIT_MS = 60_000.0

F = TypeVar("F", bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True)
class Batch:
    """Serve a batch function: at most `max_size` requests per call, and none held back more
    than `max_wait_ms` milliseconds for others (a lone request on an idle server is not held
    back at all)."""

    max_size: int = 64
    max_wait_ms: float = 2.0

    def __post_init__(self) -> None:
        size = self.max_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
            raise UsageError(
                f"Batch max_size `{size!r}` is not a whole number from 1 to {MAX_SIZE}; "
                "pass e.g. max_size=64"
            )
        wait = self.max_wait_ms
        if (
            isinstance(wait, bool)
            or not isinstance(wait, (int, float))
            or not math.isfinite(wait)
            or not 0 <= wait <= MAX_WAIT_MS
        ):
            raise UsageError(
                f"Batch max_wait_ms `{wait!r}` is not a number of milliseconds from 0 to "
                f"{MAX_WAIT_MS:g}; pass e.g. max_wait_ms=2"
            )
        object.__setattr__(self, "max_wait_ms", float(wait))

    def to_manifest(self, parameter: str) -> dict[str, Any]:
        """The manifest's `batch` entry: the settings and the name of the list parameter."""
        return {"max_size": self.max_size, "max_wait_ms": self.max_wait_ms, "parameter": parameter}


def batched(*, max_size: int = 64, max_wait_ms: float = 2.0) -> Callable[[F], F]:
    """Mark `fn` as a batch function for `takeout.pack`; `fn` itself is returned unchanged, so
    calling it directly with a list still works.

        @takeout.batched(max_size=64, max_wait_ms=2)
        def predict(samples: list[list[float]]) -> list[int]:
            return model.predict(np.array(samples)).tolist()
    """
    batch = Batch(max_size=max_size, max_wait_ms=max_wait_ms)

    def mark(fn: F) -> F:
        if not callable(fn):
            raise UsageError(
                f"`@takeout.batched` decorates a function, not `{type(fn).__name__}`; put it "
                "on the line above `def`"
            )
        try:
            setattr(fn, MARK, batch)
        except (AttributeError, TypeError):
            raise UsageError(
                f"`@takeout.batched` cannot mark `{type(fn).__name__}` objects; pass "
                "batch=takeout.Batch(...) to takeout.pack instead"
            ) from None
        return fn

    return mark


def batch_of(fn: Any, batch: Optional[Batch]) -> Optional[Batch]:
    """The batch settings pack uses: `batch=` wins over the decorator's mark; checked against
    `fn`'s signature."""
    if batch is not None and not isinstance(batch, Batch):
        raise UsageError(
            f"batch `{batch!r}` is not a takeout.Batch; pass batch=takeout.Batch(max_size=64)"
        )
    chosen = batch if batch is not None else _mark(fn)
    if chosen is not None:
        item_parameter(fn)
    return chosen


@contextlib.contextmanager
def unmarked(fn: Any) -> Iterator[None]:
    """Without the decorator's mark while `fn` is analysed and pickled: the manifest carries
    the settings, and a pickled `Batch` would make every loader import takeout."""
    mark = vars(fn).pop(MARK, None) if hasattr(fn, "__dict__") else None
    try:
        yield
    finally:
        if mark is not None:
            setattr(fn, MARK, mark)


def _mark(fn: Any) -> Optional[Batch]:
    seen = fn
    for _ in range(16):  # through functools.wraps layers, without looping on a cycle
        mark = getattr(seen, MARK, None)
        if isinstance(mark, Batch):
            return mark
        seen = getattr(seen, "__wrapped__", None)
        if seen is None:
            break
    return None


def item_parameter(fn: Any) -> inspect.Parameter:
    """The list parameter of a batch function (its first), or one sentence on why `fn` is not
    one."""
    name = getattr(fn, "__name__", type(fn).__name__)
    target = inspect.unwrap(fn) if inspect.isfunction(fn) else fn
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        raise UsageError(
            f"batch function `{name}` is `async def`, which the batcher does not run; make it "
            "a plain `def`"
        )
    if inspect.isgeneratorfunction(target):
        raise UsageError(
            f"batch function `{name}` is a generator; return a list with one result per item"
        )
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        raise UsageError(
            f"the signature of batch function `{name}` cannot be read; pack a plain function"
        ) from None
    first = params[0] if params else None
    if first is None or first.kind not in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD):
        raise UsageError(
            f"batch function `{name}` must take the list of items as its first parameter, as "
            "in `def predict(items, ...)`"
        )
    if first.default is not first.empty:
        raise UsageError(
            f"the item list `{first.name}` of batch function `{name}` has a default; every "
            "request gives one item, remove the default"
        )
    return first


_WAIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|us|µs)?\s*$")
_SCALE = {"ms": 1.0, None: 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001}


def parse_wait(text: str) -> float:
    """`--batch-wait 2ms` (also `500us`, `0.01s`; a bare number is milliseconds) in ms."""
    found = _WAIT.match(text)
    if not found:
        raise UsageError(
            f"--batch-wait `{text}` is not a duration; write milliseconds such as `2ms`, "
            "or `500us`, `0.01s`"
        )
    return float(found.group(1)) * _SCALE[found.group(2)]
