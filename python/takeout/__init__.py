"""takeout: take one function out of a notebook and ship it as a service.

    >>> import takeout
    >>> report = takeout.deps(predict)
    >>> report.requirements
    ['numpy==2.1.3', 'scikit-learn==1.5.2']

Names are imported lazily so that `import takeout` stays cheap for the bundle loader and CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import TakeoutError

if TYPE_CHECKING:
    from .analysis import deps
    from .batching import Batch, batched
    from .bundle import Bundle, load, pack
    from .report import Report
    from .serving import serve
    from .verification import verify

__all__ = [
    "Batch",
    "Bundle",
    "Report",
    "TakeoutError",
    "batched",
    "deps",
    "load",
    "pack",
    "serve",
    "verify",
]

_LAZY = {
    "deps": ("analysis", "deps"),
    "Batch": ("batching", "Batch"),
    "batched": ("batching", "batched"),
    "Report": ("report", "Report"),
    "pack": ("bundle", "pack"),
    "load": ("bundle", "load"),
    "Bundle": ("bundle", "Bundle"),
    "verify": ("verification", "verify"),
    "serve": ("serving", "serve"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'takeout' has no attribute {name!r}") from None
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext takeout`: registers the `%takeout` magic (imported only now, with IPython)."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext takeout`: stops the servers `%takeout serve` started."""
    from .magics import unload_ipython_extension as unload

    unload(ipython)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
