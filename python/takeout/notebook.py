"""Notebooks as files: run only what one function needs, in a real kernel, and pack it there.

    takeout slice NOTEBOOK FUNCTION          the statements FUNCTION depends on (Rust slicer)
    takeout deps  NOTEBOOK FUNCTION          run the slice in a kernel, `takeout.deps` there
    takeout deps  NOTEBOOK FUNCTION --static no execution: the slice's imports, mapped offline
    takeout pack  NOTEBOOK FUNCTION          run the slice in a kernel, `takeout.pack` there

The slice runs in the kernel the notebook names (default `python3`) with the notebook's folder
as working directory, cell by cell, each cell cut down to the statements that matter but with
every kept line at its original line number, so an error names the cell and line the user
sees. Then, in that same kernel, `takeout.pack(FUNCTION, ...)` runs exactly as a user would
call it, and its result comes back as one JSON line on the kernel's stdout.

jupyter_client is imported only when a kernel is started, so `import takeout.notebook` (which
the kernel itself does to pack) stays cheap.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional, Union

from . import _core, _env, _markers
from ._names import clip, first_informative_line
from .errors import NotebookError, TakeoutError
from .report import ModuleInfo, Provider, Report, group_modules, in_report_order

PathLike = Union[str, "os.PathLike[str]"]
Progress = Callable[[str], None]

DEFAULT_KERNEL = "python3"
#: Starts the line on which the kernel hands back the result of a takeout call.
_MARKER = "\x1etakeout-result:"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _silent(message: str) -> None:
    """The default progress callback: say nothing."""


# ── slicing ─────────────────────────────────────────────────────────────────────────────────


def slice_notebook(
    path: PathLike,
    function: str,
    *,
    all_cells: bool = False,
    state_end: bool = False,
    cell: Optional[int] = None,
) -> _core.NotebookSlice:
    """The statements of the notebook at `path` that `function` depends on (Rust slicer).

    `function` may be `NAME@CELL` (or pass `cell`) to slice from an earlier definition. Each
    name the function reads gets its last binding before the definition (the first after it
    when no cell binds it before); `state_end` gives it the notebook's last binding instead.
    """
    notebook = Path(path)
    try:
        text = notebook.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotebookError(f"`{path}` does not exist; give the path of an .ipynb file") from None
    except IsADirectoryError:
        raise NotebookError(f"`{path}` is a directory; give the path of an .ipynb file") from None
    except UnicodeDecodeError as err:
        raise NotebookError(
            f"`{path}` is not a valid notebook: it is not UTF-8 text ({err.reason})"
        ) from None
    return _core.slice_notebook(text, function, str(path), all_cells, state_end, cell)


def slice_to_dict(sliced: _core.NotebookSlice) -> dict[str, Any]:
    """What `takeout slice --json` prints."""
    return {
        "notebook": sliced.label,
        "function": sliced.function,
        "defined_in": {"cell": sliced.target_cell, "line": sliced.target_line},
        "captured": [
            {"name": name, "cell": cell, "line": line, "rule": rule}
            for name, cell, line, rule in sliced.captured
        ],
        "kernel": sliced.kernel_name or DEFAULT_KERNEL,
        "all_cells": sliced.all_cells,
        "cells": [
            {
                "cell": cell.number,
                "execution_count": cell.execution_count,
                "statements": [
                    {"line": line, "end_line": end, "why": why}
                    for line, end, why in cell.statements
                ],
                "source": cell.source,
            }
            for cell in sliced.cells
        ],
        "total_cells": sliced.total_cells,
        "imports": [_import_dict(i) for i in sliced.imports],
        "unresolved": list(sliced.unresolved),
        "warnings": list(sliced.warnings),
    }


def _import_dict(item: tuple[str, int, list[str], int, int, bool]) -> dict[str, Any]:
    module, level, names, cell, line, deferred = item
    return {
        "module": module,
        "level": level,
        "names": names,
        "cell": cell,
        "line": line,
        "in_function": deferred,
    }


# ── running the slice in a kernel ───────────────────────────────────────────────────────────


class Kernel:
    """A Jupyter kernel started for one notebook, shut down on exit."""

    def __init__(
        self,
        name: str,
        cwd: Path,
        progress: Progress = _silent,
        *,
        fallback: bool = False,
    ) -> None:
        self.name = name
        self.cwd = cwd
        self.progress = progress
        #: The notebook's own kernel, not one the user asked for: when it is not installed,
        #: run in this interpreter's kernel (with a warning) rather than stop.
        self.fallback = fallback
        self.warnings: list[str] = []
        self._manager: Any = None
        self._client: Any = None

    def __enter__(self) -> Kernel:
        try:
            from jupyter_client.kernelspec import NoSuchKernel
            from jupyter_client.manager import KernelManager
        except ImportError:
            raise NotebookError(
                "running a notebook needs jupyter_client and ipykernel; install them with "
                "`pip install 'takeout[notebook]'`"
            ) from None
        started = time.perf_counter()
        self.progress(f"starting kernel `{self.name}` in {self.cwd}")
        manager = KernelManager(kernel_name=self.name)
        try:
            try:
                spec = manager.kernel_spec
            except NoSuchKernel:
                if not (self.fallback and _own_kernel_available()):
                    raise
                self.warnings.append(
                    f"the notebook's kernel `{self.name}` is not installed here (installed: "
                    f"{', '.join(_kernel_names()) or 'none'}); running in `{DEFAULT_KERNEL}`, "
                    f"the interpreter takeout runs in ({sys.executable}); pass --kernel NAME "
                    "for another"
                )
                self.progress(f"warning: {self.warnings[-1]}")
                self.name = DEFAULT_KERNEL
                manager = KernelManager(kernel_name=self.name)
                spec = manager.kernel_spec
            argv = spec.argv if spec else []
            # ipykernel's start-up warnings (TCP transport) are not the user's business.
            quiet = ["--IPKernelApp.log_level=ERROR"] if "ipykernel_launcher" in argv else []
            manager.start_kernel(cwd=str(self.cwd), extra_arguments=quiet)
        except NoSuchKernel:
            raise NotebookError(
                f"the notebook runs in kernel `{self.name}`, which is not installed here "
                f"(installed: {', '.join(_kernel_names()) or 'none'}); pass --kernel NAME"
            ) from None
        except (OSError, RuntimeError) as err:
            raise NotebookError(f"kernel `{self.name}` could not start: {err}") from None
        self._manager = manager
        client = manager.client()
        client.start_channels()
        self._client = client
        try:
            client.wait_for_ready(timeout=120)
        except RuntimeError as err:
            self.__exit__(None, None, None)
            raise NotebookError(f"kernel `{self.name}` did not start: {err}") from None
        self.progress(f"kernel ready in {time.perf_counter() - started:.1f} s")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.stop_channels()
            self._client = None
        if self._manager is not None:
            self._manager.shutdown_kernel(now=True)
            self._manager = None

    def execute(self, code: str, what: str) -> tuple[Optional[int], str, Optional[dict[str, Any]]]:
        """Run `code`; return its execution count, its stdout, and the error content if it
        raised. `what` names the code in the message when the kernel dies."""
        client, manager = self._client, self._manager
        msg_id = client.execute(code, store_history=True, allow_stdin=False, stop_on_error=True)
        count: Optional[int] = None
        stdout: list[str] = []
        stderr: list[str] = []
        error: Optional[dict[str, Any]] = None
        while True:
            try:
                msg = client.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                if not manager.is_alive():
                    raise NotebookError(
                        f"the kernel died while running {what}; it may have run out of memory"
                    ) from None
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "execute_input":
                count = content.get("execution_count")
            elif kind == "stream" and content.get("name") == "stdout":
                stdout.append(content.get("text", ""))
            elif kind == "stream" and content.get("name") == "stderr":
                stderr.append(content.get("text", ""))
            elif kind == "error":
                error = content
            elif kind == "status" and content.get("execution_state") == "idle":
                return count, "".join(stdout), error or self._reply_error(msg_id, stderr)

    def _reply_error(self, msg_id: str, stderr: list[str]) -> Optional[dict[str, Any]]:
        """An error the kernel reported without an `error` message: IPython prints a
        `UsageError` (an unknown magic, bad magic arguments) to stderr and answers with an
        error status."""
        reply: dict[str, Any] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                msg = self._client.get_shell_msg(timeout=1)
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                reply = msg["content"]
                break
        text = _ANSI.sub("", "".join(stderr))
        usage = re.search(r"^UsageError: (.*)$", text, re.M)
        if usage:
            return {"ename": "UsageError", "evalue": usage.group(1).strip(), "traceback": []}
        if reply.get("status") == "error":
            return {
                "ename": reply.get("ename") or "Error",
                "evalue": reply.get("evalue") or (text.strip() or "the kernel reported an error"),
                "traceback": reply.get("traceback") or [],
            }
        return None

    def interrupt(self) -> None:
        if self._manager is not None:
            self._manager.interrupt_kernel()


def _own_kernel_available() -> bool:
    """Can this interpreter start a kernel of its own (ipykernel installed here)?"""
    import importlib.util

    return importlib.util.find_spec("ipykernel") is not None


def _kernel_names() -> list[str]:
    from jupyter_client.kernelspec import KernelSpecManager

    return sorted(KernelSpecManager().find_kernel_specs())


def run_slice(
    kernel: Kernel, sliced: _core.NotebookSlice, progress: Progress = _silent
) -> list[dict[str, Any]]:
    """Execute each cell of `sliced` in `kernel`, in order; a cell that raises stops the run
    with an error naming the cell, the line and the exception. Right after the cell that
    defines the function, the function object is held, so a later cell that rebinds the name
    does not change which definition is packed."""
    ran = []
    total = len(sliced.cells)
    for i, cell in enumerate(sliced.cells, 1):
        progress(f"running cell {cell.number} ({i} of {total})")
        started = time.perf_counter()
        try:
            count, _, error = kernel.execute(cell.source, f"cell {cell.number}")
        except KeyboardInterrupt:
            kernel.interrupt()
            raise
        seconds = time.perf_counter() - started
        if error is not None:
            raise NotebookError(_cell_error(cell, count, error))
        progress(f"cell {cell.number} done in {seconds:.2f} s")
        ran.append({"cell": cell.number, "seconds": round(seconds, 3)})
        if cell.number == sliced.target_cell and not sliced.all_cells:
            _call_in_kernel(kernel, "hold", {"function": sliced.function})
    return ran


def _cell_error(cell: _core.SlicedCell, count: Optional[int], error: dict[str, Any]) -> str:
    ename = error.get("ename", "Error")
    # Without colour codes (IPython's, a library's): the message is printed as plain text.
    evalue = first_informative_line(_ANSI.sub("", str(error.get("evalue", ""))))
    what = f"{ename}: {evalue}" if evalue else ename
    line = _error_line(error.get("traceback", []), count)
    if line is None and ename == "UsageError":
        line = _magic_line(cell.source, evalue)
    if line is None:
        return f"cell {cell.number} raised {what}"
    source = cell.source.splitlines()
    text = source[line - 1].strip() if 0 < line <= len(source) else ""
    shown = f" (`{clip(text)}`)" if text else ""
    return f"cell {cell.number}, line {line}{shown}: {what}"


def _magic_line(source: str, message: str) -> Optional[int]:
    """The line of the magic a `UsageError` is about, which IPython reports without a
    traceback: the one its message names (`` Line magic function `%autotime` not found``),
    else the cell magic's first line."""
    named = re.search(r"`(%%?[\w.]+)`", message)
    lines = source.splitlines()
    if named:
        at = re.compile(r"(?<![%\w])" + re.escape(named.group(1)) + r"(?![\w.])")
        for number, text in enumerate(lines, 1):
            if at.search(text):
                return number
    for number, text in enumerate(lines, 1):
        if text.lstrip().startswith("%%"):
            return number
    return None


def _error_line(traceback: Sequence[str], count: Optional[int]) -> Optional[int]:
    """The line of the executed cell where the exception left it, from IPython's traceback
    (`Cell In[7], line 3` since IPython 8; `<ipython-input-7-…>` with `---->` before)."""
    text = _ANSI.sub("", "\n".join(traceback))
    for match in re.finditer(r"Cell In\[(\d+)\], line (\d+)", text):
        if count is None or int(match.group(1)) == count:
            return int(match.group(2))
    old = re.search(r"<ipython-input-(\d+)-[0-9a-f]+>.*?\n-+> ?(\d+)", text, re.S)
    if old and (count is None or int(old.group(1)) == count):
        return int(old.group(2))
    return None


# ── what runs inside the kernel ─────────────────────────────────────────────────────────────


def _kernel_code(action: str, options: dict[str, Any]) -> str:
    """One line for the kernel: import this module there and call `_in_kernel`, leaving no
    name behind in the user's namespace."""
    payload = json.dumps(options)
    module = "__import__('takeout.notebook', fromlist=['_in_kernel'])"
    return f"{module}._in_kernel({action!r}, {payload!r})"


def _in_kernel(action: str, payload: str) -> None:
    """Runs in the kernel: look the function up in the user namespace, call `takeout.pack` or
    `takeout.deps` on it the way a user would, print the outcome as one marked JSON line."""
    options = json.loads(payload)
    try:
        result = _kernel_action(action, options)
        out: dict[str, Any] = {"ok": True, **result}
    except TakeoutError as err:
        out = {"ok": False, "type": type(err).__name__, "message": str(err)}
    sys.stdout.write("\n" + _MARKER + json.dumps(out, default=str) + "\n")
    sys.stdout.flush()


#: Functions held right after the cell that defines them ran (`run_slice`).
_HELD: dict[str, Any] = {}


def _kernel_action(action: str, options: dict[str, Any]) -> dict[str, Any]:
    import takeout

    name = options["function"]
    if action == "hold":
        if name in _user_namespace():
            _HELD[name] = _user_namespace()[name]
        return {}
    fn = _HELD.get(name, _user_namespace().get(name))
    if fn is None:
        raise NotebookError(
            f"`{name}` is not defined after running the slice; its definition may not have "
            "run (inside an `if` that was false?)"
        )
    require, exclude = options.get("require", ()), options.get("exclude", ())
    if action == "deps":
        return {"report": takeout.deps(fn, require=require, exclude=exclude).to_dict()}
    examples = [tuple(e) if isinstance(e, list) else e for e in options.get("examples") or ()]
    bundle = takeout.pack(
        fn,
        options["path"],
        name=options.get("name"),
        examples=examples or None,
        require=require,
        exclude=exclude,
        overwrite=options.get("overwrite", False),
        example_check=options.get("example_check"),
    )
    return {"path": str(bundle.path), "manifest": bundle.manifest}


def _user_namespace() -> dict[str, Any]:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - the kernel is IPython
        shell = None
    if shell is not None:
        namespace: dict[str, Any] = shell.user_ns
        return namespace
    return vars(sys.modules["__main__"])


def _call_in_kernel(kernel: Kernel, action: str, options: dict[str, Any]) -> dict[str, Any]:
    _, stdout, error = kernel.execute(_kernel_code(action, options), f"`takeout.{action}`")
    if error is not None:
        ename, evalue = error.get("ename", "Error"), str(error.get("evalue", ""))
        if ename in ("ModuleNotFoundError", "ImportError") and "takeout" in evalue:
            raise NotebookError(
                f"kernel `{kernel.name}` cannot import takeout; install takeout in the "
                "kernel's environment, or pass --kernel NAME"
            )
        raise NotebookError(
            f"`takeout.{action}` failed in the kernel: {ename}: {first_informative_line(evalue)}"
        )
    # Not `splitlines()`: it splits on the marker's own record separator.
    at = stdout.rfind(_MARKER)
    if at < 0:
        raise NotebookError(f"`takeout.{action}` printed no result in the kernel")
    result: dict[str, Any] = json.loads(stdout[at + len(_MARKER) :].split("\n", 1)[0])
    if not result.pop("ok"):
        from . import errors

        cls = getattr(errors, result["type"], None)
        if not (isinstance(cls, type) and issubclass(cls, TakeoutError)):
            cls = NotebookError
        raise cls(result["message"])
    return result


@contextmanager
def _kernel_for(
    sliced: _core.NotebookSlice, path: PathLike, kernel: Optional[str], progress: Progress
) -> Iterator[Kernel]:
    """The kernel to run the slice in. A failure inside carries the slice's warnings (as
    `err.warnings`): they are usually what explains it."""
    name = kernel or sliced.kernel_name or DEFAULT_KERNEL
    k = Kernel(name, Path(path).resolve().parent, progress, fallback=kernel is None)
    try:
        with k:
            yield k
    except TakeoutError as err:
        err.warnings = [*k.warnings, *sliced.warnings]  # type: ignore[attr-defined]
        raise


# ── the public entry points ─────────────────────────────────────────────────────────────────


def pack_notebook(
    path: PathLike,
    function: str,
    bundle: Optional[PathLike] = None,
    *,
    name: Optional[str] = None,
    examples: Optional[Sequence[Any]] = None,
    require: Iterable[str] = (),
    exclude: Iterable[str] = (),
    all_cells: bool = False,
    overwrite: bool = False,
    kernel: Optional[str] = None,
    progress: Progress = _silent,
    state_end: bool = False,
    cell: Optional[int] = None,
    example_check: Optional[str] = None,
) -> dict[str, Any]:
    """Run the slice of `function` in a kernel and `takeout.pack` it there (`example_check`
    as in `takeout.pack`).

    `bundle` is the bundle directory (default `./NAME.takeout`, relative to the current
    directory, not the notebook's). Returns `{"path", "manifest", "cells", "seconds", ...}`.
    """
    from .bundle import check_target

    started = time.perf_counter()
    sliced = slice_notebook(path, function, all_cells=all_cells, state_end=state_end, cell=cell)
    function = sliced.function  # without its `@CELL`
    target = Path(bundle) if bundle is not None else Path(f"{name or function}.takeout")
    # Before the kernel runs what may be minutes of training, not after.
    check_target(target, overwrite)
    options = {
        "function": function,
        "path": str(target.resolve()),
        "name": name,
        "examples": list(examples or ()),
        "require": list(require),
        "exclude": list(exclude),
        "overwrite": overwrite,
        "example_check": example_check,
    }
    with _kernel_for(sliced, path, kernel, progress) as k:
        ran = run_slice(k, sliced, progress)
        progress(f"packing `{function}` in the kernel")
        result = _call_in_kernel(k, "pack", options)
    result.update(
        function=function,
        notebook=str(path),
        cells=ran,
        # The kernel's, the slice's, then the manifest's own (a result type with no JSON form).
        warnings=[*k.warnings, *sliced.warnings, *result.get("manifest", {}).get("warnings", ())],
        seconds=round(time.perf_counter() - started, 3),
    )
    return result


def deps_notebook(
    path: PathLike,
    function: str,
    *,
    require: Iterable[str] = (),
    exclude: Iterable[str] = (),
    all_cells: bool = False,
    kernel: Optional[str] = None,
    progress: Progress = _silent,
    state_end: bool = False,
    cell: Optional[int] = None,
) -> Report:
    """Run the slice of `function` in a kernel and return `takeout.deps` of it from there."""
    sliced = slice_notebook(path, function, all_cells=all_cells, state_end=state_end, cell=cell)
    options = {"function": sliced.function, "require": list(require), "exclude": list(exclude)}
    with _kernel_for(sliced, path, kernel, progress) as k:
        run_slice(k, sliced, progress)
        result = _call_in_kernel(k, "deps", options)
    report = Report.from_dict(result["report"])
    report.warnings.extend(w for w in [*k.warnings, *sliced.warnings] if w not in report.warnings)
    return report


# ── deps --static: no execution at all ──────────────────────────────────────────────────────

STATIC_LABEL = (
    "static estimate: the imports the slice reaches, mapped through the target interpreter's "
    "installed distributions; nothing was executed, so objects the function captures "
    "(a model, a DataFrame) are not analysed"
)

# Runs in the target interpreter (any Python >= 3.9, takeout not needed): where each module
# would be imported from, found without importing anything but finders. It runs after the
# source of `_markers.py`, which defines `marker_values()`: one definition for both.
_PROBE = r"""
import importlib.machinery, importlib.util, json, os, platform, sys, sysconfig
modules = json.loads(sys.stdin.read())
found = {}
for name in modules:
    top = name.partition(".")[0]
    if top in sys.builtin_module_names:
        found[name] = ["builtin", None]
        continue
    if top in getattr(sys, "stdlib_module_names", ()):
        found[name] = ["stdlib", None]
        continue
    try:
        spec = importlib.util.find_spec(top)
    except Exception:
        spec = None
    if spec is None:
        found[name] = ["missing", None]
        continue
    prefix = top
    for part in name.split(".")[1:]:
        if spec.origin not in (None, "namespace") or not spec.submodule_search_locations:
            break
        prefix += "." + part
        where = list(spec.submodule_search_locations)
        sub = importlib.machinery.PathFinder.find_spec(prefix, where)
        if sub is None:
            break
        spec = sub
    origin = spec.origin if spec.has_location else None
    found[name] = ["file" if origin else "namespace", origin]
paths = sysconfig.get_paths()
def dirs(*keys):
    return sorted({os.path.abspath(paths[k]) for k in keys if paths.get(k)})
print(json.dumps({
    "modules": found,
    "sys_path": [os.path.abspath(p or ".") for p in sys.path],
    "stdlib": dirs("stdlib", "platstdlib"),
    "site": dirs("purelib", "platlib"),
    "python": "%s %s" % (platform.python_implementation(), platform.python_version()),
    "markers": marker_values(),
}))
"""


class StaticReport:
    """`takeout deps NOTEBOOK FUNCTION --static`: a `Report` built from imports alone."""

    def __init__(self, report: Report, interpreter: str) -> None:
        self.report = report
        self.interpreter = interpreter

    @property
    def requirements(self) -> list[str]:
        return self.report.requirements

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimate": "static",
            "note": STATIC_LABEL,
            "interpreter": self.interpreter,
            **self.report.to_dict(),
        }

    def __str__(self) -> str:
        return f"{self.report}\nnote: {STATIC_LABEL}"

    def _repr_html_(self) -> str:
        return self.report._repr_html_() + f"<p><i>{STATIC_LABEL}</i></p>"


def static_deps(
    path: PathLike,
    function: str,
    *,
    python: Optional[str] = None,
    kernel: Optional[str] = None,
    all_cells: bool = False,
) -> StaticReport:
    """The distributions the slice's imports come from, in the target interpreter (default:
    the notebook's kernel's), without running any of the notebook."""
    sliced = slice_notebook(path, function, all_cells=all_cells)
    interpreter = python or _kernel_python(kernel or sliced.kernel_name or DEFAULT_KERNEL)
    imports = [i for i in sliced.imports if i[1] == 0 and i[0]]
    modules = list(dict.fromkeys(i[0] for i in imports))
    facts = _probe(interpreter, modules, Path(path).resolve().parent)
    report = _static_report(sliced, imports, facts)
    return StaticReport(report, interpreter)


def _kernel_python(name: str) -> str:
    """The interpreter a kernel spec launches (what jupyter_client itself would run)."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:
        return sys.executable
    try:
        argv = KernelSpecManager().get_kernel_spec(name).argv
    except NoSuchKernel:
        raise NotebookError(
            f"the notebook runs in kernel `{name}`, which is not installed here; pass "
            "--python PATH (or --kernel NAME) to choose the interpreter to map imports with"
        ) from None
    exe = argv[0] if argv else "python"
    major, minor = sys.version_info[:2]
    if exe in ("python", f"python{major}", f"python{major}.{minor}"):
        return sys.executable  # jupyter_client substitutes its own interpreter for these
    found = shutil.which(exe)
    if found is None:
        raise NotebookError(f"kernel `{name}` runs `{exe}`, which is not found; pass --python PATH")
    return found


def _probe(interpreter: str, modules: list[str], cwd: Path) -> dict[str, Any]:
    try:
        out = subprocess.run(
            [interpreter, "-c", Path(_markers.__file__).read_text() + _PROBE],
            input=json.dumps(modules),
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise NotebookError(f"could not run `{interpreter}`: {err}") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise NotebookError(f"`{interpreter}` could not inspect its environment: {last}")
    facts: dict[str, Any] = json.loads(out.stdout)
    return facts


def _static_report(
    sliced: _core.NotebookSlice,
    imports: list[tuple[str, int, list[str], int, int, bool]],
    facts: dict[str, Any],
) -> Report:
    index = _core.EnvIndex(facts["sys_path"])
    stdlib = tuple(os.path.join(p, "") for p in facts["stdlib"])
    site = tuple(os.path.join(p, "") for p in facts["site"])
    reasons: dict[str, dict[str, None]] = {}
    for module, _level, names, cell, line, deferred in imports:
        statement = f"from {module} import {', '.join(names)}" if names else f"import {module}"
        where = f"cell {cell}, line {line}" + (", in a function body" if deferred else "")
        reasons.setdefault(module, {})[f"{statement} ({where})"] = None

    warnings: list[str] = list(sliced.warnings)
    modules: list[ModuleInfo] = []
    needed: list[tuple[str, tuple[str, ...], Provider]] = []
    for module in sorted(reasons):
        why = tuple(reasons[module])
        kind, origin = facts["modules"].get(module, ["missing", None])
        dist_id: Optional[int] = None
        if kind in ("file", "namespace"):
            if origin:
                dist_id = index.find_by_file(os.path.normpath(origin))
            if dist_id is None:
                dist_id = index.find_by_module(module)
            if (
                dist_id is None
                and origin
                and origin.startswith(stdlib)
                and not origin.startswith(site)
            ):
                kind = "stdlib"
        if kind in ("builtin", "stdlib"):
            modules.append(ModuleInfo(module, kind, None, why))
        elif dist_id is not None:
            d = index.distribution(dist_id)
            modules.append(ModuleInfo(module, "distribution", d.name, why))
            needed.append((module, why, Provider(d.kind, d.name, d.version, dist_id)))
        elif kind == "missing":
            modules.append(ModuleInfo(module, "unresolved", None, why))
            warnings.append(
                f"`{module}` ({why[0]}) is not installed for the target interpreter, so no "
                "distribution provides it"
            )
        else:
            modules.append(ModuleInfo(module, "local", None, why))
            needed.append((module, why, Provider("local", module.partition(".")[0])))

    grouped = group_modules(needed)
    dists = in_report_order(grouped.values())
    roots = sorted(p.dist_id for p in grouped if p.kind == "index" and p.dist_id is not None)
    lock_entries, missing, unreadable = _env.lock(index, [(i, []) for i in roots], facts["markers"])
    warnings.extend(unreadable)
    return Report(
        function=f"{sliced.function} (static estimate)",
        python=facts["python"],
        distributions=dists,
        modules=modules,
        lock_entries=lock_entries,
        missing=missing,
        warnings=warnings,
    )
