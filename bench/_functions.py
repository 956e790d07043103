"""A corpus of notebook-style functions with hand-written ground truth, for `bench/deps.py`.

Each function is defined the way a notebook defines it: by exec'ing cell source in a namespace
whose `__name__` is "__main__", so cloudpickle (and MLflow, and takeout) see exactly what they
see in a Jupyter kernel. The cases live in two "notebooks": the seed's own notebook and a
second one with the patterns users write every day. All functions of a notebook share one
namespace, as they do in a kernel, so a tool that lists everything the notebook imported is
caught adding what the function does not need.

This module imports only the standard library at import time: the MLflow benchmark imports it
from inside a different virtual environment, and tests may import it without numpy.

Ground truth, per function:
- `needs`: the distributions any correct tool must list: those whose modules the function's
  code imports or reads (globals, body imports, `import_module` strings, attribute chains), and
  the libraries of the objects it captures;
- `optional`: distributions a tool may list without being wrong: dependencies of a needed
  distribution that the pickled artifact also names directly (the numpy arrays inside a pickled
  DataFrame or a fitted scaler). Listing them pins their version, which pickles care about.
"Nothing extra" means found ⊆ needs ∪ optional.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["CASES", "NOTEBOOKS", "Case", "build", "names", "namespace", "normalize"]

# The seed's notebook (examples/kmeans.ipynb), definition cells verbatim.
SEED_NOTEBOOK = """
import inspect

def module_frontier(f):
  worklist = [f]
  seen = set()
  mods = set()
  for fn in worklist:
    cvs = inspect.getclosurevars(fn)
    gvars = cvs.globals
    for k, v in gvars.items():
      if inspect.ismodule(v):
        mods.add(v.__name__)
      elif inspect.isfunction(v) and id(v) not in seen:
        seen.add(id(v))
        mods.add(v.__module__)
        worklist.append(v)
      elif hasattr(v, "__module__"):
        mods.add(v.__module__)
  return list(mods)

import numpy as np
from numpy import dot

def f(a, b):
    return np.dot(a, b)

def g(a, b):
    return dot(a, b)

def h(a, b):
    return f(a, b)

from sklearn.cluster import KMeans
import numpy as np

data = np.random.rand(1000, 2)

model = KMeans(random_state=0).fit(data)

def km_predict_one(sample):
    sample = np.array(sample).reshape(1,-1)
    return model.predict(sample)[0]

centers = model.cluster_centers_
from numpy.linalg import norm

def km_predict_two(sample):
    _, idx = min([(norm(sample - center), idx) for idx, center in enumerate(centers)])
    return idx
"""

# A second notebook: the patterns the naive frontier and import-hook tools get wrong.
PATTERNS_NOTEBOOK = """
import functools
import importlib
import json
import statistics

import numpy as np
import pandas as pd
import sklearn
from scipy.optimize import brentq
from scipy.spatial.distance import euclidean
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

def parse_config(text):
    import yaml
    return yaml.safe_load(text)

def year_of(stamp):
    from dateutil import parser
    return parser.isoparse(stamp).year

prices = pd.DataFrame({"sku": ["a", "b", "c"], "price": [1.5, 2.0, 3.25]})

def price_of(sku):
    return float(prices.loc[prices.sku == sku, "price"].iloc[0])

rng = np.random.default_rng(0)
X = rng.normal(size=(200, 3))
y = (X[:, 0] + X[:, 1] > 0).astype(int)
pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)

def classify(features):
    return int(pipe.predict(np.asarray(features, dtype=float).reshape(1, -1))[0])

def power(base, exp):
    return np.power(base, exp).tolist()

square = functools.partial(power, exp=2)

class Scorer:
    def __init__(self, weights):
        self.weights = np.asarray(weights, dtype=float)

    def __call__(self, features):
        return float(self.weights @ np.asarray(features, dtype=float))

score = Scorer([0.2, 0.3, 0.5])

def make_root_finder(target):
    def root(upper):
        return brentq(lambda x: x ** 3 - target, 0.0, upper)
    return root

cube_root = make_root_finder(27.0)

landmarks = {"home": (0.0, 0.0), "work": (3.0, 4.0)}

def distances(point):
    return {name: euclidean(point, where) for name, where in landmarks.items()}

def load_config(text):
    loader = importlib.import_module("yaml")
    return loader.safe_load(text)

# `import sklearn` alone: sklearn.metrics is loaded here only as a side effect of the imports
# above, and the function reaches it through an attribute chain.
def accuracy(y_true, y_pred):
    return float(sklearn.metrics.accuracy_score(y_true, y_pred))

def summarise(values):
    return json.dumps({"mean": statistics.fmean(values), "max": max(values)})

@functools.lru_cache(maxsize=None)
def norm_of_range(n):
    return float(np.linalg.norm(np.arange(n)))

registry = {"scaler": StandardScaler().fit(X)}

def standardise(row):
    return registry["scaler"].transform([row])[0].tolist()
"""

NOTEBOOKS = {"seed": SEED_NOTEBOOK, "patterns": PATTERNS_NOTEBOOK}


@dataclass(frozen=True)
class Case:
    name: str
    notebook: str
    #: Distributions (PEP 503 normalised) any correct tool must list.
    needs: frozenset[str]
    #: What makes the case hard, shown next to failures.
    why: str
    #: Arguments of one call that must succeed (proves the case is real, and serves MLflow).
    example: tuple[Any, ...]
    #: Distributions a tool may list without being wrong (see the module docstring).
    optional: frozenset[str] = frozenset()

    @property
    def seed(self) -> bool:
        return self.notebook == "seed"


def _sample(x: int) -> int:
    """An argument for `module_frontier`'s example call (it takes a function)."""
    return x


def _case(
    name: str,
    notebook: str,
    needs: set[str],
    why: str,
    example: tuple[Any, ...],
    optional: set[str] = frozenset(),  # type: ignore[assignment]
) -> Case:
    return Case(name, notebook, frozenset(needs), why, example, frozenset(optional))


CASES: tuple[Case, ...] = (
    _case("f", "seed", {"numpy"}, "module global", ((1.0, 2.0), (3.0, 4.0))),
    _case("g", "seed", {"numpy"}, "from-imported function", ((1.0, 2.0), (3.0, 4.0))),
    _case("h", "seed", {"numpy"}, "calls another notebook function", ((1.0, 2.0), (3.0, 4.0))),
    _case(
        "km_predict_one",
        "seed",
        {"numpy", "scikit-learn"},
        "captured fitted KMeans",
        ((0.5, 0.5),),
    ),
    _case(
        "km_predict_two",
        "seed",
        {"numpy"},
        "`norm` read inside a list comprehension",
        ((0.5, 0.5),),
    ),
    _case("module_frontier", "seed", set(), "stdlib only (inspect)", (_sample,)),
    _case("parse_config", "patterns", {"pyyaml"}, "`import yaml` in the body", ("a: 1",)),
    _case(
        "year_of",
        "patterns",
        {"python-dateutil"},
        "`from dateutil import parser` in the body",
        ("2024-05-01",),
    ),
    _case(
        "price_of",
        "patterns",
        {"pandas"},
        "captured pandas DataFrame",
        ("b",),
        optional={"numpy"},
    ),
    _case(
        "classify",
        "patterns",
        {"numpy", "scikit-learn"},
        "captured sklearn Pipeline (StandardScaler + LogisticRegression)",
        ((0.1, 0.2, 0.3),),
    ),
    _case("square", "patterns", {"numpy"}, "functools.partial of a notebook function", (3,)),
    _case(
        "score",
        "patterns",
        {"numpy"},
        "callable instance of a notebook class",
        ((1.0, 2.0, 3.0),),
    ),
    _case(
        "cube_root",
        "patterns",
        {"scipy"},
        "closure (cell) around a lambda calling a from-imported scipy function",
        (10.0,),
    ),
    _case(
        "distances",
        "patterns",
        {"scipy"},
        "from-imported function called inside a dict comprehension",
        ((1.0, 1.0),),
    ),
    _case(
        "load_config",
        "patterns",
        {"pyyaml"},
        'importlib.import_module("yaml")',
        ("a: 1",),
    ),
    _case(
        "accuracy",
        "patterns",
        {"scikit-learn"},
        "sklearn.metrics.accuracy_score via a module attribute chain",
        ((1, 0, 1), (1, 1, 1)),
    ),
    _case("summarise", "patterns", set(), "stdlib only (json, statistics)", ((1.0, 2.0),)),
    _case("norm_of_range", "patterns", {"numpy"}, "functools.lru_cache wrapper", (5,)),
    _case(
        "standardise",
        "patterns",
        {"scikit-learn"},
        "fitted scaler inside a captured dict",
        ((0.1, 0.2, 0.3),),
        optional={"numpy"},
    ),
)

_NAMESPACES: dict[str, dict[str, Any]] = {}


def namespace(notebook: str) -> dict[str, Any]:
    """The notebook's namespace after running all its cells (once per process)."""
    ns = _NAMESPACES.get(notebook)
    if ns is None:
        ns = {"__name__": "__main__", "__builtins__": builtins}
        # A file name like IPython's cell names, so nothing can be imported by reference.
        exec(compile(NOTEBOOKS[notebook], f"<notebook {notebook}>", "exec"), ns)
        _NAMESPACES[notebook] = ns
    return ns


def build(case: Case) -> Any:
    """The live callable of `case`."""
    return namespace(case.notebook)[case.name]


def names(cases: tuple[Case, ...] = CASES) -> list[str]:
    return [c.name for c in cases]


def normalize(name: str) -> str:
    """PEP 503 normalisation of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()
