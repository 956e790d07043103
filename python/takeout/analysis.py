"""`takeout.deps`: every module and distribution a live function needs, and why.

Analyse the artifact we ship. The function is pickled exactly as the bundle will pickle it;
the Rust pickle scanner lists every module the unpickler will import, and the Rust bytecode
scanner reads every function that travels by value for what it imports when called. Module
names become distributions through the Rust environment index (files first), and the
distributions close over `Requires-Dist` into a lock. Local code (a `helpers.py` beside the
notebook, an editable install of the user's project) is pickled by value, so its own imports
count and the bundle needs none of its files.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import importlib.util
import platform
import sys
import types
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from . import _bytecode, _checks, _core, _env, _pickling, _runtime
from ._names import normalize
from .errors import AnalysisError, RequirementError
from .report import (
    DistributionInfo,
    LockEntry,
    ModuleInfo,
    Provider,
    Report,
    group_modules,
    in_report_order,
)

# cloudpickle's own reconstructors: loading needs cloudpickle, which takeout's runtime brings,
# so they are not the *function's* requirement (but they are recorded as `runtime`).
_RUNTIME_MODULES = frozenset(
    {"cloudpickle", "cloudpickle.cloudpickle", "cloudpickle.cloudpickle_fast"}
)
_MAX_ROUNDS = 32


def _is_runtime_ref(module: str, name: str) -> bool:
    return module in _RUNTIME_MODULES and (name.startswith("_") or name.endswith("subimport"))


@dataclass
class _Needs:
    """Modules found so far, each with its reasons in first-seen order."""

    reasons: dict[str, dict[str, None]] = field(default_factory=dict)

    #: Modules imported when the function runs (import statements, import_module calls).
    call_time: dict[str, None] = field(default_factory=dict)

    def add(self, module: str, reason: str, *, call_time: bool = False) -> None:
        self.reasons.setdefault(module, {})[reason] = None
        if call_time:
            self.call_time[module] = None

    def __contains__(self, module: str) -> bool:
        return module in self.reasons


@dataclass
class Analysis:
    """Everything `pack` needs besides the report: how to pickle the payload."""

    report: Report
    #: Top-level modules to pickle by value (local code and editable installs).
    by_value: list[str]
    #: Local modules the function imports at call time; shipped inside the payload.
    shipped_modules: list[str]

    def payload(self, fn: Any) -> Any:
        return build_payload(fn, self.shipped_modules)


def build_payload(fn: Any, shipped_modules: Sequence[str]) -> Any:
    """The object the bundle pickles: the function alone, or the function and the local
    modules it imports at call time (the loader registers those in `sys.modules`)."""
    if not shipped_modules:
        return fn
    return (fn, tuple(sys.modules[m] for m in shipped_modules))


def deps(
    fn: Callable[..., Any],
    *,
    require: Iterable[str] = (),
    exclude: Iterable[str] = (),
    examples: Optional[Sequence[Any]] = None,
) -> Report:
    """Find every module and PyPI distribution `fn` needs, with the reason for each."""
    return analyse(fn, require=require, exclude=exclude, examples=examples).report


def analyse(
    fn: Callable[..., Any],
    *,
    require: Iterable[str] = (),
    exclude: Iterable[str] = (),
    examples: Optional[Sequence[Any]] = None,
    call: Optional[Callable[..., Any]] = None,
) -> Analysis:
    """`deps`, plus what `pack` needs to pickle the payload. `call` is what examples are run
    through when it is not `fn` itself (pack's JSON-argument converter)."""
    _checks.callable_or_fail(fn, "takeout.deps")
    require, exclude = _checks.strings(require, "require"), _checks.strings(exclude, "exclude")
    return _Analyzer(fn, require, exclude).run(_checks.examples_or_fail(examples), call)


class _Analyzer:
    def __init__(self, fn: Any, require: list[str], exclude: list[str]) -> None:
        self.fn = fn
        self.name = _callable_name(fn)
        self.env = _env.current()
        self.required = [_parse_requirement(spec) for spec in require]
        self.excluded = {normalize(e) for e in exclude}
        self.warnings: dict[str, None] = {}
        self.needs = _Needs()
        self.runtime_refs = False
        self.loader_imports: dict[str, None] = {}
        self.by_value: list[str] = []  # top-level names registered by value
        self.shipped: list[str] = []  # local modules imported at call time
        self.by_value_functions: dict[int, types.FunctionType] = {}

    # ── the pipeline ────────────────────────────────────────────────────────────────────────

    def run(
        self, examples: Optional[Sequence[Any]], call: Optional[Callable[..., Any]] = None
    ) -> Analysis:
        traced = _trace(call or self.fn, examples, self.name) if examples else {}
        with ExitStack() as stack:
            # Each round pickles with every local module found so far registered by value, which
            # can reveal more local code; findings accumulate because a module pickled by
            # value stops appearing in the stream by name.
            for _ in range(_MAX_ROUNDS):
                data = self._pickle_payload()
                self._scan_pickle(data, None)
                self._scan_bytecode()
                for module, reasons in traced.items():
                    for reason in reasons:
                        self.needs.add(module, reason)
                new_by_value, new_shipped = self._local_code()
                if not new_by_value and not new_shipped:
                    break
                self.shipped.extend(new_shipped)
                if new_by_value:
                    stack.enter_context(_pickling.by_value(new_by_value))
                    self.by_value.extend(new_by_value)
            else:  # pragma: no cover - each round adds a module, so this needs 32 local trees
                raise AnalysisError(f"`{self.name}` pulls in too many local modules to analyse")
            self._attribute_reasons()
            report = self._report()
        return Analysis(report, list(self.by_value), list(self.shipped))

    def _pickle_payload(self) -> bytes:
        payload = build_payload(self.fn, self.shipped)
        try:
            return _pickling.dumps_for_analysis(payload, self.by_value_functions)
        except Exception as exc:
            raise _pickling.locate_unpicklable(_top_parts(self.fn), self.name, exc) from None

    # ── the pickle stream ──────────────────────────────────────────────────────────────────

    def _scan_pickle(self, data: bytes, label: Optional[str]) -> None:
        """Record the modules a pickle imports. With `label` None this is the shipped stream
        (reasons come later, per part); otherwise `label` names the part it came from."""
        scan = _core.scan_pickle(data)
        for module, name, _opcode, _offset in scan.globals:
            if scan.protocol < 3:  # the unpickler maps Python 2 names (`__builtin__`) back
                module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            if _is_runtime_ref(module, name):
                self.runtime_refs = True
                continue
            if module == "__main__":
                continue
            self.needs.add(module, f"{label} ({module}.{name})" if label else "")
        for module, dynamic, _offset in scan.subimports:
            if not dynamic:
                self.needs.add(module, f"{label} (module {module})" if label else "")

    # ── bytecode of the functions that travel by value ─────────────────────────────────────

    def _scan_bytecode(self) -> None:
        for fn in list(self.by_value_functions.values()):
            try:
                findings = _bytecode.scan(fn.__code__)
            except _core_errors() as exc:
                self.warnings[f"could not read the bytecode of `{fn.__qualname__}`: {exc}"] = None
                continue
            owner = self._owner(fn)
            for finding in findings:
                if finding.kind == "import":
                    self._import_finding(fn, owner, finding)
                elif finding.kind == "chain":
                    self._chain_finding(fn, owner, finding)
                elif finding.kind == "dynamic" and finding.module:
                    if finding.module.startswith("."):
                        continue
                    self.needs.add(
                        finding.module,
                        f"{owner}{finding.callee}({finding.module!r})",
                        call_time=True,
                    )

    def _owner(self, fn: types.FunctionType) -> str:
        return "" if fn is self.fn else f"{fn.__qualname__} → "

    def _import_finding(self, fn: types.FunctionType, owner: str, finding: Any) -> None:
        module = finding.module or ""
        if finding.level:
            package = fn.__globals__.get("__package__") or ""
            try:
                module = importlib.util.resolve_name("." * finding.level + module, package)
            except (ImportError, ValueError):
                self.warnings[
                    f"`{fn.__qualname__}` has a relative import (`{'.' * finding.level}{module}`)"
                    " outside a package; it cannot run anywhere else"
                ] = None
                return
        fromlist = [x for x in finding.fromlist if x != "*"]
        statement = (
            f"from {module} import {', '.join(fromlist)}" if fromlist else f"import {module}"
        )
        self.needs.add(module, f"{owner}{statement}", call_time=True)
        base = self.env.resolve(module)
        for name in fromlist:
            candidate = f"{module}.{name}"
            if candidate in sys.modules or (
                base.origin not in ("distribution", "stdlib", "builtin")
                and self.env.index.find_by_module(candidate) is not None
            ):
                self.needs.add(candidate, f"{owner}{statement}", call_time=True)

    def _chain_finding(self, fn: types.FunctionType, owner: str, finding: Any) -> None:
        value = fn.__globals__.get(finding.global_name)
        if not isinstance(value, types.ModuleType):
            return
        path = finding.global_name
        for attr in finding.attrs:
            try:
                child = getattr(value, attr)
            except Exception:
                child = sys.modules.get(f"{value.__name__}.{attr}")
            if not isinstance(child, types.ModuleType):
                return
            path += f".{attr}"
            self.needs.add(child.__name__, f"{owner}{path} (submodule of {value.__name__})")
            self.loader_imports[child.__name__] = None
            value = child

    # ── local code travels by value ────────────────────────────────────────────────────────

    def _local_code(self) -> tuple[list[str], list[str]]:
        """Local modules found this round that are not yet pickled by value or shipped."""
        new_by_value: dict[str, None] = {}
        new_shipped: dict[str, None] = {}
        for module in list(self.needs.reasons):
            res = self.env.resolve(module)
            top = module.partition(".")[0]
            if top == "__main__" or normalize(top) in self.excluded:
                continue
            if res.origin == "distribution" and res.dist_id is not None:
                if self.env.distribution(res.dist_id).kind != "editable":
                    continue
            elif res.origin != "local":
                continue
            if module not in sys.modules:
                # Imported in the function body only: import it so it can be shipped.
                try:
                    importlib.import_module(module)
                except Exception as exc:
                    self.warnings[
                        f"local module `{module}` could not be imported for shipping: "
                        f"{type(exc).__name__}: {exc}"
                    ] = None
                    continue
            if top not in self.by_value and top in sys.modules:
                new_by_value[top] = None
            # The pickle holds no reference to a module the body imports, and one pickled
            # by value is not registered in sys.modules at load: the bundle carries it.
            if module not in self.shipped and module in self.needs.call_time:
                new_shipped[module] = None
        return list(new_by_value), list(new_shipped)

    # ── reasons: which captured object pulled each module in ───────────────────────────────

    def _attribute_reasons(self) -> None:
        # Keyed by id: the function itself is usually among the by-value ones too.
        for fn in {id(self.fn): self.fn, **self.by_value_functions}.values():
            if isinstance(fn, types.FunctionType) and id(fn) in self.by_value_functions:
                parts = list(_pickling.function_parts(fn))
            elif fn is self.fn:
                parts = _pickling.callable_parts(fn) or [("the callable itself", fn)]
            else:
                continue
            owner = self._owner(fn) if isinstance(fn, types.FunctionType) else ""
            for label, value in parts:
                self._attribute_part(f"{owner}{label}", value)

    def _attribute_part(self, label: str, value: Any) -> None:
        if isinstance(value, (str, bytes, int, float, complex, bool, type(None))):
            return
        if isinstance(value, types.ModuleType):
            self.needs.add(value.__name__, f"{label} (module {value.__name__})")
            return
        if type(value) is types.FunctionType and id(value) in self.by_value_functions:
            return  # its own parts are attributed under its name
        try:
            data = _pickling.dumps_for_analysis(value)
        except Exception:
            return
        self._scan_pickle(data, label)

    # ── the report ──────────────────────────────────────────────────────────────────────────

    def _report(self) -> Report:
        env = self.env
        modules: list[ModuleInfo] = []
        needed: list[tuple[str, tuple[str, ...], Provider]] = []
        excluded: dict[str, None] = {}
        for name in sorted(self.needs.reasons):
            reasons = tuple(r for r in self.needs.reasons[name] if r) or ("the function itself",)
            res = env.resolve(name)
            top = name.partition(".")[0]
            dist_name = None
            if res.origin == "distribution" and res.dist_id is not None:
                dist = env.distribution(res.dist_id)
                dist_name = dist.name
                if dist.normalized in self.excluded or normalize(top) in self.excluded:
                    excluded[f"{dist.name} — excluded by the user (needed by {reasons[0]})"] = None
                else:
                    provider = Provider(dist.kind, dist.name, dist.version, res.dist_id)
                    needed.append((name, reasons, provider))
            elif res.origin == "local" and top != "__main__":
                if normalize(top) in self.excluded:
                    excluded[f"{top} — excluded by the user (needed by {reasons[0]})"] = None
                else:
                    needed.append((name, reasons, Provider("local", top)))
            elif res.origin == "unresolved":
                self.warnings[
                    f"`{name}` ({reasons[0]}) is not installed here, so no distribution "
                    "provides it; install it, or add it with `require=`"
                ] = None
            modules.append(ModuleInfo(name, res.origin, dist_name, reasons))

        grouped = group_modules(needed)
        dists = {normalize(info.name): info for info in grouped.values()}
        roots: dict[int, set[str]] = {
            p.dist_id: set() for p in grouped if p.kind == "index" and p.dist_id is not None
        }
        self._apply_requirements(dists, roots)
        self._drop_traced_dependencies(dists, roots)
        lock_entries, missing = self._lock(roots)
        ordered = in_report_order(dists.values())
        runtime = []
        if self.runtime_refs:
            cp = env.index.find_by_name("cloudpickle")
            if cp is not None:
                runtime.append(f"cloudpickle=={env.distribution(cp).version}")
        return Report(
            function=self.name,
            python=f"{platform.python_implementation()} {platform.python_version()}",
            distributions=ordered,
            modules=modules,
            lock_entries=lock_entries,
            missing=missing,
            excluded=list(excluded),
            runtime=runtime,
            loader_imports=sorted(self.loader_imports),
            warnings=list(self.warnings),
        )

    def _apply_requirements(
        self, dists: dict[str, DistributionInfo], roots: dict[int, set[str]]
    ) -> None:
        for spec, (name, extras, specifier, _marker) in self.required:
            key = normalize(name)
            dist_id = self.env.index.find_by_name(name)
            reason = f"required by the user (`{spec}`)"
            if dist_id is None:
                self.warnings[
                    f"`{spec}` is required by the user but not installed here, so the lock "
                    "cannot include its dependencies"
                ] = None
                dists[key] = DistributionInfo(name, None, "index", (), (reason,), spec)
                continue
            d = self.env.distribution(dist_id)
            extra = f"[{','.join(sorted(extras))}]" if extras else ""
            line = f"{d.name}{extra}{specifier}" if specifier else f"{d.name}{extra}=={d.version}"
            old = dists.get(key)
            dists[key] = DistributionInfo(
                d.name,
                d.version,
                "index",
                old.modules if old else (),
                (*(old.reasons if old else ()), reason),
                line,
            )
            roots.setdefault(dist_id, set()).update(extras)

    def _drop_traced_dependencies(
        self, dists: dict[str, DistributionInfo], roots: dict[int, set[str]]
    ) -> None:
        """A distribution seen only while tracing examples, and already in the closure of the
        others, ran because one of them imported it: it stays in the lock, not in the direct
        requirements (scikit-learn's predict runs threadpoolctl, which scikit-learn requires)."""
        traced_only = {
            dist_id
            for dist_id in roots
            if (d := dists.get(self.env.distribution(dist_id).normalized)) is not None
            and d.reasons
            and all(r.startswith(_TRACED) for r in d.reasons)
        }
        static = {
            dist_id: extras for dist_id, extras in roots.items() if dist_id not in traced_only
        }
        if not traced_only or not static:
            return
        closure = self.env.index.lock(
            [(dist_id, sorted(extras)) for dist_id, extras in sorted(static.items())],
            _env.marker_values(),
        )
        reached = {dist_id for dist_id, _extras, _by in closure.packages}
        for dist_id in traced_only & reached:
            del roots[dist_id]
            del dists[self.env.distribution(dist_id).normalized]

    def _lock(self, roots: dict[int, set[str]]) -> tuple[list[LockEntry], list[str]]:
        entries, missing, unreadable = _env.lock(
            self.env.index, list(sorted(roots.items())), _env.marker_values(), self.excluded
        )
        self.warnings.update(dict.fromkeys(unreadable))
        return entries, missing


# ── optional trace of recorded examples ────────────────────────────────────────────────────


_TRACED = "ran during example "


def _trace(fn: Any, examples: Sequence[Any], name: str) -> dict[str, list[str]]:
    """Call `fn` on each example under a profile hook; return the modules whose code ran
    (and the modules first imported during the call), each with the example that ran it.

    Code reached through the output streams, display hook and warning display that the host
    installed (a Jupyter kernel's `OutStream`, IPython's hooks) runs because of where the
    function runs, not because of what it needs: those frames and everything they call or
    import are left out."""
    ambient = _ambient_code()
    found: dict[str, list[str]] = {}
    for i, example in enumerate(examples, 1):
        args, kwargs = _checks.split_example(example, i)
        kwargs = _runtime.as_identifiers(fn, kwargs)
        ran: dict[str, None] = {}
        hidden: dict[str, None] = {}
        # The host frame being skipped and how many modules were loaded when it was entered;
        # sys.modules only grows at its end while a subtree imports.
        skip: list[Any] = [None, 0]

        def hook(
            frame: Any,
            event: str,
            arg: Any,
            ran: dict[str, None] = ran,
            hidden: dict[str, None] = hidden,
            skip: list[Any] = skip,
        ) -> None:
            if skip[0] is not None:
                if event == "return" and frame is skip[0]:
                    hidden.update(dict.fromkeys(list(sys.modules)[skip[1] :]))
                    skip[0] = None
                return
            if event == "call":
                if frame.f_code in ambient:
                    skip[0], skip[1] = frame, len(sys.modules)
                    return
                mod = frame.f_globals.get("__name__")
                # A name with no module behind it is code a library made with exec (the
                # `__new__` of `namedtuple_SVDResult`): it belongs to its caller's library.
                if isinstance(mod, str) and mod in sys.modules:
                    ran[mod] = None
            elif event == "c_call":
                mod = getattr(arg, "__module__", None)
                if isinstance(mod, str):
                    ran[mod] = None

        before = set(sys.modules)
        old = sys.getprofile()
        sys.setprofile(hook)
        try:
            # Awaited or drained here, under the hook: what an async or generator function
            # imports while running counts too.
            _runtime.settle(fn(*args, **kwargs))
        except Exception as exc:
            raise _checks.example_failed(i, exc) from None
        finally:
            sys.setprofile(old)
        for mod in [*ran, *(set(sys.modules) - before - hidden.keys())]:
            if mod and mod != "__main__" and not mod.startswith("takeout"):
                found.setdefault(mod, []).append(f"{_TRACED}{i}")
    return found


def _ambient_code() -> set[Any]:
    """The code objects of the output streams, display and exception hooks and warning
    display installed in this interpreter, where they are Python code (a kernel's)."""
    import warnings

    codes: set[Any] = set()
    for hook in (sys.excepthook, warnings.showwarning):
        func = getattr(hook, "__func__", hook)
        if isinstance(func, types.FunctionType):
            codes.add(func.__code__)
    for obj in (sys.stdout, sys.stderr, sys.displayhook):
        if getattr(type(obj), "__module__", "builtins") in ("builtins", "_io", "io"):
            continue
        # IPython wraps a stream's `write` in a closure set on the instance itself.
        owners: list[Any] = [*type(obj).__mro__, getattr(obj, "__dict__", {})]
        for owner in owners:
            for value in dict(vars(owner) if isinstance(owner, type) else owner).values():
                code = getattr(getattr(value, "__func__", value), "__code__", None)
                if isinstance(code, types.CodeType):
                    codes.add(code)
    return codes


# ── helpers ─────────────────────────────────────────────────────────────────────────────────


def _parse_requirement(spec: str) -> tuple[str, tuple[str, list[str], str, Optional[str]]]:
    if not isinstance(spec, str):
        raise RequirementError(f"`{spec!r}` is not a requirement string; write e.g. `numpy==2.1.3`")
    return spec, _core.parse_requirement(spec)


def _top_parts(fn: Any) -> list[tuple[str, Any]]:
    if isinstance(fn, types.FunctionType):
        return list(_pickling.function_parts(fn))
    return _pickling.callable_parts(fn) or [("the callable itself", fn)]


def _callable_name(fn: Any) -> str:
    for attr in ("__qualname__", "__name__"):
        try:
            value = getattr(fn, attr)
        except Exception:
            continue
        if isinstance(value, str):
            return value
    try:
        return type(fn).__qualname__
    except Exception:  # pragma: no cover - a type always has a qualname
        return "function"


def _core_errors() -> tuple[type[BaseException], ...]:
    from .errors import BytecodeError

    return (BytecodeError,)
