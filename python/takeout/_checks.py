"""The checks of the Python API's arguments that `deps` and `pack` share: one exception class
and one sentence per mistake, whichever function was called."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Optional

from ._names import first_informative_line, short
from .errors import ExampleError, UsageError

__all__ = ["callable_or_fail", "example_failed", "examples_or_fail", "split_example", "strings"]


def callable_or_fail(fn: Any, api: str) -> None:
    """`fn` must be callable: `api` (e.g. `takeout.pack`) names the call in the hint."""
    if not callable(fn):
        raise UsageError(
            f"`{short(fn)}` is not callable; pass the function itself, e.g. `{api}(predict)`"
        )


def strings(values: Iterable[str], what: str) -> list[str]:
    """`require=` and `exclude=` take a list of strings; one string would be split into
    letters."""
    if isinstance(values, (str, bytes)):
        raise UsageError(
            f"`{what}` takes a list of strings, not one string; write `{what}=[{values!r}]`"
        )
    return list(values)


def examples_or_fail(examples: Optional[Sequence[Any]]) -> list[Any]:
    if examples is None:
        return []
    if isinstance(examples, (str, bytes, dict)):
        raise ExampleError(
            "examples takes a list of argument tuples or keyword dicts, e.g. "
            "examples=[(1.0, 2.0)] or examples=[{'x': 1.0}]"
        )
    return list(examples)


def split_example(example: Any, index: int) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments of example number `index` (from 1)."""
    if isinstance(example, dict):
        return [], dict(example)
    if isinstance(example, (tuple, list)):
        return list(example), {}
    raise ExampleError(
        f"example {index} is a {type(example).__name__}; give a tuple of positional arguments "
        "or a dict of keyword arguments"
    )


def example_failed(index: int, err: BaseException) -> ExampleError:
    return ExampleError(
        f"example {index} raised {type(err).__name__}: {first_informative_line(str(err))}; "
        "fix the example or the function"
    )
