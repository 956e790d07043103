"""The whole takeout exception hierarchy, in one place.

Every error a user can cause derives from `TakeoutError` and carries one sentence that says
what is wrong and what to do; builtin bases are added where the meaning matches, so
`except ValueError` keeps working for callers who do not know takeout.
"""

from __future__ import annotations


class TakeoutError(Exception):
    """Base of every error takeout raises on purpose."""


class AnalysisError(TakeoutError):
    """The function cannot be analysed or shipped as it is."""


class UnpicklableError(AnalysisError, TypeError):
    """Something the function captures cannot be pickled; the message names the path to it."""


class RequirementError(TakeoutError, ValueError):
    """A `require=`/`--require` value is not a valid PEP 508 requirement."""


class PickleScanError(TakeoutError, ValueError):
    """A pickle stream is malformed."""


class BytecodeError(TakeoutError, ValueError):
    """A code object could not be decoded with the running interpreter's opcode table."""


class EnvironmentIndexError(TakeoutError, OSError):
    """The installed distributions could not be read."""


class LockError(TakeoutError):
    """The requirement closure could not be computed."""


class BundleError(TakeoutError):
    """A bundle cannot be written or loaded."""


class BundleIntegrityError(BundleError):
    """A bundle's files or signature do not match its manifest."""


class UsageError(TakeoutError, ValueError):
    """The command line or an argument is wrong (exit status 2 in the CLI)."""


class ExampleError(UsageError):
    """An example given to `deps` or `pack` is malformed, cannot be written as JSON, or
    raised when called."""


class ServeError(TakeoutError):
    """A bundle cannot be served: a bad manifest or option, or the port cannot be bound."""


class DeployError(TakeoutError):
    """A bundle cannot be deployed: no cluster at the address, another Python there, or a
    replica that failed to start (with that replica's own error)."""


class NotebookError(TakeoutError):
    """A notebook cannot be read, sliced or run: a malformed file, an unknown function, a
    cell that raised."""
