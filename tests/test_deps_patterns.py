"""One test per way a notebook function can reach a module."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import takeout
from takeout._names import normalize

from .support import run_cells


def needed(report: takeout.Report) -> set[str]:
    return {normalize(d.name) for d in report.distributions if d.kind == "index"}


def deps_of(*cells: str, name: str = "fn", **kwargs: object) -> takeout.Report:
    return takeout.deps(run_cells(*cells)[name], **kwargs)


def test_module_global() -> None:
    assert needed(deps_of("import numpy as np\ndef fn(x):\n    return np.sum(x)")) == {"numpy"}


def test_from_import() -> None:
    report = deps_of("from numpy import cumsum\ndef fn(x):\n    return cumsum(x)")
    assert needed(report) == {"numpy"}


def test_calls_other_notebook_functions() -> None:
    report = deps_of(
        "import yaml",
        "def helper(x):\n    return yaml.safe_dump(x)",
        "def fn(x):\n    return helper(x).upper()",
    )
    assert needed(report) == {"pyyaml"}


def test_nested_code_two_levels_deep() -> None:
    report = deps_of(
        "from numpy.linalg import norm",
        "def fn(rows):\n    return [[norm(v) for v in row] for row in rows]",
    )
    assert needed(report) == {"numpy"}


def test_generator_expression_and_lambda() -> None:
    report = deps_of(
        "import yaml\nfrom numpy import sqrt",
        "def fn(xs):\n    k = lambda v: yaml.safe_dump(v)\n    return sum(sqrt(x) for x in xs), k",
    )
    assert needed(report) == {"numpy", "pyyaml"}


def test_closure_cells() -> None:
    report = deps_of(
        "def make():\n    import yaml\n    dump = yaml.safe_dump\n"
        "    def inner(x):\n        return dump(x)\n    return inner",
        "fn = make()",
    )
    assert needed(report) == {"pyyaml"}
    assert any(r.startswith("dump (yaml") for r in report.distributions[0].reasons)


def test_defaults_and_keyword_only_defaults() -> None:
    report = deps_of(
        "import numpy as np\nfrom sklearn.preprocessing import StandardScaler",
        "def fn(x, scaler=StandardScaler(), *, dtype=np.float32):\n    return scaler, dtype",
    )
    assert needed(report) == {"numpy", "scikit-learn"}
    sk = next(d for d in report.distributions if d.name == "scikit-learn")
    assert any(r.startswith("default of scaler") for r in sk.reasons)


def test_import_in_body_absolute_and_from() -> None:
    report = deps_of(
        "def fn(x):\n    import yaml\n    from dateutil import parser\n"
        "    return yaml.safe_dump(parser.parse(x))"
    )
    assert needed(report) == {"pyyaml", "python-dateutil"}
    mods = {m.name for m in report.modules}
    assert {"yaml", "dateutil", "dateutil.parser"} <= mods


def test_relative_import_in_a_local_package(local_dir: Path) -> None:
    pkg = local_dir / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "util.py").write_text("import yaml\n\ndef helper(x):\n    return yaml.safe_dump(x)\n")
    (pkg / "core.py").write_text("def fn(x):\n    from .util import helper\n    return helper(x)\n")
    report = deps_of("from mypkg.core import fn")
    assert needed(report) == {"pyyaml"}
    local = next(d for d in report.distributions if d.kind == "local")
    assert local.name == "mypkg" and "mypkg.util" in local.modules


def test_importlib_import_module_with_constant() -> None:
    report = deps_of(
        "import importlib\ndef fn(x):\n    return importlib.import_module('yaml').safe_dump(x)"
    )
    assert needed(report) == {"pyyaml"}
    assert any("import_module('yaml')" in r for r in report.distributions[0].reasons)


def test_dunder_import_with_constant() -> None:
    assert needed(deps_of("def fn(x):\n    return __import__('yaml').safe_dump(x)")) == {"pyyaml"}


def test_module_attribute_chain_to_submodule() -> None:
    report = deps_of(
        "import sklearn.metrics\nimport sklearn",
        "def fn(y, p):\n    return sklearn.metrics.accuracy_score(y, p)",
    )
    assert needed(report) == {"scikit-learn"}
    assert "sklearn.metrics" in report.loader_imports


def test_notebook_class_with_library_base_and_every_kind_of_method() -> None:
    ns = run_cells(
        """
        import numpy as np, yaml, pandas as pd
        from dateutil import parser
        from sklearn.base import BaseEstimator

        class Model(BaseEstimator):
            def __init__(self, k=2):
                self.k = k
            def predict(self, x):
                return np.asarray(x) * self.k
            @staticmethod
            def dump(x):
                return yaml.safe_dump(x)
            @classmethod
            def when(cls, s):
                return parser.parse(s)
            @property
            def frame(self):
                return pd.DataFrame({"k": [self.k]})

        m = Model(3)
        def fn(x):
            return m.predict(x)
        """
    )
    report = takeout.deps(ns["fn"])
    assert needed(report) == {"numpy", "pyyaml", "python-dateutil", "pandas", "scikit-learn"}
    assert needed(takeout.deps(ns["m"].predict)) >= {"numpy", "scikit-learn"}


def test_callable_instance() -> None:
    ns = run_cells(
        """
        from sklearn.cluster import KMeans
        import numpy as np
        class Predictor:
            def __init__(self, model):
                self.model = model
            def __call__(self, x):
                return self.model.predict(np.asarray(x))
        fn = Predictor(KMeans(n_clusters=2, n_init=1).fit(np.eye(4)))
        """
    )
    assert needed(takeout.deps(ns["fn"])) == {"scikit-learn", "numpy"}


def test_functools_partial() -> None:
    ns = run_cells(
        "import functools, yaml\ndef dump(x, style):\n    return yaml.safe_dump(x)",
        "fn = functools.partial(dump, style=None)",
    )
    assert needed(takeout.deps(ns["fn"])) == {"pyyaml"}


def test_bound_method() -> None:
    ns = run_cells(
        "import numpy as np\nclass A:\n    def go(self, x):\n        return np.sum(x)",
        "fn = A().go",
    )
    assert needed(takeout.deps(ns["fn"])) == {"numpy"}


def test_functools_wraps_decorator() -> None:
    report = deps_of(
        """
        import functools, numpy as np
        def logged(f):
            @functools.wraps(f)
            def wrapper(*a):
                return f(*a)
            return wrapper
        @logged
        def fn(x):
            return np.sqrt(x)
        """
    )
    assert needed(report) == {"numpy"}


def test_lru_cache() -> None:
    ns = run_cells(
        "import functools, numpy as np\n@functools.lru_cache(maxsize=7)\n"
        "def fn(x):\n    return float(np.sqrt(x))"
    )
    report = takeout.deps(ns["fn"])
    assert needed(report) == {"numpy"}


def test_objects_nested_in_containers() -> None:
    report = deps_of(
        "import numpy as np\nfrom sklearn.preprocessing import StandardScaler",
        "config = {'steps': [(StandardScaler(),)], 'offset': np.float64(1)}",
        "def fn(x):\n    return config['steps'][0][0], x",
    )
    assert needed(report) == {"scikit-learn", "numpy"}


def test_pandas_dataframe() -> None:
    report = deps_of(
        "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})",
        "def fn(i):\n    return df.iloc[i].to_dict()",
    )
    assert "pandas" in needed(report)
    assert needed(report) <= {"pandas", "numpy"}


def test_numpy_ufunc() -> None:
    report = deps_of("import numpy as np\nop = np.add", "def fn(a, b):\n    return op(a, b)")
    assert needed(report) == {"numpy"}


def test_async_function() -> None:
    report = deps_of("import numpy as np\nasync def fn(x):\n    return float(np.sum(x))")
    assert needed(report) == {"numpy"}


def test_recursion() -> None:
    report = deps_of(
        "import numpy as np\ndef fn(n):\n    return np.int64(1) if n <= 1 else n * fn(n - 1)"
    )
    assert needed(report) == {"numpy"}


def test_local_helper_module(local_dir: Path) -> None:
    (local_dir / "helpers.py").write_text(
        "import yaml\n\ndef dump(x):\n    return yaml.safe_dump(x)\n"
    )
    report = deps_of("from helpers import dump", "def fn(x):\n    return dump(x)")
    assert needed(report) == {"pyyaml"}
    (helpers,) = [d for d in report.distributions if d.kind == "local"]
    assert helpers.name == "helpers" and helpers.requirement is None
    assert report.requirements == [
        d.requirement for d in report.distributions if d.name == "PyYAML"
    ]


def test_local_module_imported_in_the_body_is_shipped(local_dir: Path) -> None:
    (local_dir / "lazyhelp.py").write_text(
        "import yaml\n\ndef dump(x):\n    return yaml.safe_dump(x)\n"
    )
    analysis = takeout.analysis.analyse(
        run_cells("def fn(x):\n    import lazyhelp\n    return lazyhelp.dump(x)")["fn"]
    )
    assert analysis.shipped_modules == ["lazyhelp"]
    assert needed(analysis.report) == {"pyyaml"}


def _write_dist(site: Path, name: str, files: dict[str, str], requires: str = "") -> None:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n{requires}")
    records = [f"{info.name}/METADATA,,"]
    for rel, text in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        records.append(f"{rel},,")
    (info / "RECORD").write_text("\n".join(records) + f"\n{info.name}/RECORD,,\n")


def test_namespace_package_resolves_per_file(local_dir: Path) -> None:
    site = local_dir / "site"
    _write_dist(site, "nsdemo-alpha", {"nsdemo/alpha/__init__.py": "VALUE = 1\n"})
    _write_dist(site, "nsdemo-beta", {"nsdemo/beta/__init__.py": "VALUE = 2\n"})
    sys.path.insert(0, str(site))
    try:
        report = deps_of("import nsdemo.alpha", "def fn():\n    return nsdemo.alpha.VALUE")
    finally:
        sys.path.remove(str(site))
    assert needed(report) == {"nsdemo-alpha"}


def test_broken_requires_dist_of_an_installed_package_is_a_warning(local_dir: Path) -> None:
    site = local_dir / "site"
    _write_dist(
        site,
        "shoddy",
        {"shoddy/__init__.py": "VALUE = 1\n"},
        requires="Requires-Dist: numpy>=\nRequires-Dist: pyyaml\n",
    )
    sys.path.insert(0, str(site))
    try:
        report = deps_of("import shoddy", "def fn():\n    return shoddy.VALUE")
    finally:
        sys.path.remove(str(site))
    assert needed(report) == {"shoddy"}
    assert any(pin.lower().startswith("pyyaml==") for pin in report.lock)
    assert any(w.startswith("`numpy>=` (Requires-Dist of shoddy)") for w in report.warnings)


@pytest.mark.parametrize("requirement", ["foo_ >=1", "a_ >=1", "foo[b-]"])
def test_a_requires_dist_that_panics_the_parser_is_skipped_with_a_warning(
    local_dir: Path, tmp_path: Path, requirement: str
) -> None:
    """pep508_rs panics on these; one such installed package once broke deps and pack for
    every function that reached it."""
    site = local_dir / "site"
    _write_dist(
        site,
        "shoddy",
        {"shoddy/__init__.py": "VALUE = 1\n"},
        requires=f"Requires-Dist: {requirement}\nRequires-Dist: pyyaml\n",
    )
    sys.path.insert(0, str(site))
    try:
        report = deps_of("import shoddy", "def fn():\n    return shoddy.VALUE")
        ns = run_cells("import shoddy", "def fn():\n    return shoddy.VALUE")
        bundle = takeout.pack(ns["fn"], tmp_path / "fn.takeout")
    finally:
        sys.path.remove(str(site))
    assert needed(report) == {"shoddy"}
    assert any(pin.lower().startswith("pyyaml==") for pin in report.lock)
    warning = f"`{requirement}` (Requires-Dist of shoddy) is not a valid requirement"
    assert any(w.startswith(warning) for w in report.warnings), report.warnings
    assert any(w.startswith(warning) for w in bundle.manifest["warnings"])
    with pytest.raises(takeout.errors.RequirementError, match=r"^`a_ >=1` is not a valid"):
        takeout.deps(ns["fn"], require=["a_ >=1"])


def test_import_names_differ_from_distribution_names() -> None:
    report = deps_of(
        "import yaml, sklearn, dateutil.parser",
        "def fn(s):\n    return yaml, sklearn, dateutil.parser.parse(s)",
    )
    assert needed(report) == {"pyyaml", "scikit-learn", "python-dateutil"}


@pytest.mark.parametrize(
    "source",
    [
        "import json, re, collections\n"
        "def fn(s):\n    return json.dumps(collections.Counter(re.findall('a', s)))",
        "def fn(xs):\n    return sorted(len(x) for x in xs)",
    ],
    ids=["stdlib-only", "builtins-only"],
)
def test_no_requirements(source: str) -> None:
    report = deps_of(source)
    assert report.requirements == [] and report.lock == []
    assert all(m.origin in ("stdlib", "builtin") for m in report.modules)


def test_require_and_exclude_win() -> None:
    source = "import numpy as np\nimport yaml\ndef fn(x):\n    return yaml.safe_dump(np.sum(x))"
    report = deps_of(source, require=["pandas"], exclude=["pyyaml"])
    assert needed(report) == {"numpy", "pandas"}
    pandas = next(d for d in report.distributions if d.name == "pandas")
    assert pandas.reasons[-1] == "required by the user (`pandas`)"
    assert any(e.startswith("PyYAML — excluded by the user") for e in report.excluded)


def test_malformed_requirement_is_one_clear_error() -> None:
    with pytest.raises(takeout.errors.RequirementError, match="`numpy>=`"):
        deps_of("def fn():\n    pass", require=["numpy>="])


def test_trace_adds_what_only_runs_at_call_time(local_dir: Path) -> None:
    # A library that picks its backend lazily, by a name the bytecode never shows.
    (local_dir / "lazylib.py").write_text(
        textwrap.dedent(
            """
            import importlib
            BACKEND = "ya" + "ml"
            def dump(x):
                return importlib.import_module(BACKEND).safe_dump(x)
            """
        )
    )
    source = "from lazylib import dump\ndef fn(x):\n    return dump(x)"
    assert needed(deps_of(source)) == set()
    assert needed(deps_of(source, examples=[({"a": 1},)])) == {"pyyaml"}
