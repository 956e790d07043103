//! Slicer tests: each notebook is a list of code cells; assertions name the lines kept.

use super::*;

fn notebook(cells: &[&str]) -> Notebook {
    Notebook {
        cells: cells
            .iter()
            .enumerate()
            .map(|(i, source)| Cell {
                number: i + 1,
                execution_count: None,
                source: (*source).to_owned(),
            })
            .collect(),
        total_cells: cells.len(),
        kernel_name: None,
        language: None,
    }
}

fn slice_of(cells: &[&str], function: &str) -> Slice {
    slice(
        &notebook(cells),
        function,
        &SliceOptions::default(),
        "test.ipynb",
    )
    .unwrap_or_else(|err| panic!("{err}"))
}

/// The non-blank lines the kernel would run, in order.
fn kept(cells: &[&str], function: &str) -> Vec<String> {
    slice_of(cells, function)
        .cells
        .iter()
        .flat_map(|c| c.source.lines().map(str::to_owned).collect::<Vec<_>>())
        // `#` holds the first line of a cell whose first statements were left out.
        .filter(|l| !l.trim().is_empty() && l.trim() != "#")
        .collect()
}

#[test]
fn seed_notebook() {
    let cells = [
        "import inspect\n\ndef module_frontier(f):\n    return inspect.getclosurevars(f)",
        "import numpy as np\nfrom numpy import dot\n\ndef f(a, b):\n    return np.dot(a, b)\n\ndef g(a, b):\n    return dot(a, b)\n\ndef h(a, b):\n    return f(a, b)",
        "{k.__name__ : module_frontier(k) for k in [f,g,h]}",
        "from sklearn.cluster import KMeans\n\ndata = np.random.rand(1000, 2)\n\nmodel = KMeans(random_state=0).fit(data)\n\ndef km_predict_one(sample):\n    sample = np.array(sample).reshape(1,-1)\n    return model.predict(sample)[0]",
        "km_predict_one([0.5, 0.5])",
        "module_frontier(km_predict_one)",
        "centers = model.cluster_centers_\nfrom numpy.linalg import norm\n\n\ndef km_predict_two(sample):\n    _, idx = min([(norm(sample - center), idx) for idx, center in enumerate(centers)])\n    return idx",
        "km_predict_two([0.5, 0.5])",
    ];
    let one = slice_of(&cells, "km_predict_one");
    assert_eq!(
        one.cells.iter().map(|c| c.number).collect::<Vec<_>>(),
        [2, 4]
    );
    let two = slice_of(&cells, "km_predict_two");
    assert_eq!(
        two.cells.iter().map(|c| c.number).collect::<Vec<_>>(),
        [2, 4, 7]
    );
    assert_eq!(
        kept(&cells, "km_predict_two"),
        [
            "import numpy as np",
            "from sklearn.cluster import KMeans",
            "data = np.random.rand(1000, 2)",
            "model = KMeans(random_state=0).fit(data)",
            "centers = model.cluster_centers_",
            "from numpy.linalg import norm",
            "def km_predict_two(sample):",
            "    _, idx = min([(norm(sample - center), idx) for idx, center in enumerate(centers)])",
            "    return idx",
        ]
    );
}

fn cells_of(cells: &[&str], function: &str) -> Vec<usize> {
    slice_of(cells, function)
        .cells
        .iter()
        .map(|c| c.number)
        .collect()
}

fn error_of(cells: &[&str], function: &str) -> String {
    slice(
        &notebook(cells),
        function,
        &SliceOptions::default(),
        "test.ipynb",
    )
    .expect_err("the slice should fail")
    .to_string()
}

// ── definitions ─────────────────────────────────────────────────────────────────────────────

#[test]
fn the_last_definition_wins() {
    let cells = [
        "a = 1\nb = 2",
        "def predict(x):\n    return x + a",
        "def predict(x):\n    return x + b",
        "predict(3)",
    ];
    assert_eq!(
        kept(&cells, "predict"),
        ["b = 2", "def predict(x):", "    return x + b"]
    );
}

#[test]
fn helpers_spread_over_cells_even_after_the_function() {
    let cells = [
        "def helper_one(x):\n    return helper_two(x) + 1",
        "unrelated = [1, 2, 3]",
        "def predict(x):\n    return helper_one(x) * SCALE",
        "def helper_two(x):\n    return x * 2",
        "SCALE = 10",
        "predict(1)",
    ];
    assert_eq!(cells_of(&cells, "predict"), [1, 3, 4, 5]);
}

#[test]
fn a_value_rebound_after_the_function_is_the_one_it_sees_only_with_state_end() {
    let cells = [
        "THRESHOLD = 1",
        "def over(x):\n    return x > THRESHOLD",
        "THRESHOLD = 5",
    ];
    // The value the function was written against: the binding before its definition.
    let s = slice_of(&cells, "over");
    assert_eq!(s.cells.iter().map(|c| c.number).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        s.captured,
        [Captured {
            name: "THRESHOLD".into(),
            cell: Some(1),
            line: 1,
            rule: "the last binding before `over` is defined (cell 2)".into(),
        }]
    );
    assert_eq!(
        s.warnings,
        [
            "cell 3 rebinds or changes `THRESHOLD` after `over` is defined (cell 2); the bundle \
          keeps `THRESHOLD` as it was when `over` was defined; pack with `--state end` for the \
          notebook's last value"
        ]
    );
    let end = slice(
        &notebook(&cells),
        "over",
        &SliceOptions {
            state_end: true,
            ..SliceOptions::default()
        },
        "test.ipynb",
    )
    .unwrap();
    assert_eq!(
        end.cells.iter().map(|c| c.number).collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(end.captured[0].cell, Some(3));
    assert!(end.captured[0].rule.contains("--state end"));
    assert!(end.warnings.is_empty(), "{:?}", end.warnings);
}

#[test]
fn defaults_and_decorators_are_read_when_the_def_runs() {
    let cells = [
        "SCALE = 1\nLIMIT = 128",
        "from functools import lru_cache\ndef traced(fn):\n    return fn",
        "@traced\n@lru_cache(maxsize=LIMIT)\ndef predict(x, scale=SCALE):\n    return x * scale",
        "SCALE = 2\nLIMIT = 7",
    ];
    assert_eq!(
        kept(&cells, "predict"),
        [
            "SCALE = 1",
            "LIMIT = 128",
            "from functools import lru_cache",
            "def traced(fn):",
            "    return fn",
            "@traced",
            "@lru_cache(maxsize=LIMIT)",
            "def predict(x, scale=SCALE):",
            "    return x * scale",
        ]
    );
}

#[test]
fn any_binding_form_can_be_the_function() {
    let cells = [
        "import numpy as np\nmodel = object()",
        "predict = lambda x: model.predict(np.asarray(x))",
        "other = 1",
    ];
    assert_eq!(cells_of(&cells, "predict"), [1, 2]);
}

#[test]
fn del_ends_a_binding() {
    let cells = ["x = 1", "del x", "x = 2", "def f():\n    return x"];
    assert_eq!(kept(&cells, "f"), ["x = 2", "def f():", "    return x"]);
}

#[test]
fn conditional_definitions_keep_earlier_ones() {
    let cells = [
        "mode = 'fast'",
        "if fast_enabled():\n    mode = 'faster'",
        "def fast_enabled():\n    return True",
        "def f():\n    return mode",
    ];
    // The `if` may not bind `mode`, so the first assignment stays. The `if` calls
    // `fast_enabled` as it runs, before cell 3 defines it: run from the top, the notebook
    // fails there, and the slice says so instead of hiding it.
    let s = slice_of(&cells, "f");
    assert_eq!(
        s.cells.iter().map(|c| c.number).collect::<Vec<_>>(),
        [1, 2, 4]
    );
    assert_eq!(
        s.warnings,
        ["`fast_enabled` is read before cell 3 defines it; run from the top, the notebook fails there too"]
    );
}

// ── changes in place ────────────────────────────────────────────────────────────────────────

#[test]
fn a_method_call_after_the_assignment_changes_the_name() {
    let cells = [
        "def load():\n    return [[1]], [1]",
        "from sklearn.linear_model import LinearRegression\nmodel = LinearRegression()",
        "X, y = load()",
        "model.fit(X, y)",
        "model.predict(X)\nprint(model)\nmodel",
        "def predict(x):\n    return model.predict(x)",
    ];
    assert_eq!(
        kept(&cells, "predict"),
        [
            "def load():",
            "    return [[1]], [1]",
            "from sklearn.linear_model import LinearRegression",
            "model = LinearRegression()",
            "X, y = load()",
            "model.fit(X, y)",
            "def predict(x):",
            "    return model.predict(x)",
        ]
    );
}

#[test]
fn stores_augmented_assignments_and_del_items_change_their_root() {
    let cells = [
        "config = {}\ncounter = 0\nunrelated = {}",
        "config['alpha'] = 0.5\nconfig.beta = 2\ndel config['gamma']\ncounter += 1\nunrelated['x'] = 1",
        "config['delta'] += 1",
        "def f():\n    return config, counter",
    ];
    assert_eq!(
        kept(&cells, "f"),
        [
            "config = {}",
            "counter = 0",
            "config['alpha'] = 0.5",
            "config.beta = 2",
            "del config['gamma']",
            "counter += 1",
            "config['delta'] += 1",
            "def f():",
            "    return config, counter",
        ]
    );
}

#[test]
fn pandas_inplace_changes_the_receiver() {
    let cells = [
        "import pandas as pd\ndf = pd.DataFrame()",
        "df.dropna(inplace=True)\ndf.dropna()\ndf.head()",
        "def f():\n    return df",
    ];
    assert_eq!(
        kept(&cells, "f"),
        [
            "import pandas as pd",
            "df = pd.DataFrame()",
            "df.dropna(inplace=True)",
            "def f():",
            "    return df",
        ]
    );
}

#[test]
fn global_declarations_make_a_call_define_the_name() {
    let cells = [
        "def setup():\n    global model\n    model = build()",
        "def build():\n    return 42",
        "setup()",
        "def other():\n    return 1\nother()",
        "def predict(x):\n    return model + x",
    ];
    assert_eq!(cells_of(&cells, "predict"), [1, 2, 3, 5]);
}

#[test]
fn a_function_that_changes_a_global_makes_its_call_sites_count() {
    let cells = [
        "class Model:\n    def fit(self, X):\n        self.w = X",
        "import numpy as np\nmodel = Model()\nX = np.zeros(3)",
        "def train():\n    model.fit(X)",
        "def report():\n    print(model.score(X))",
        "train()\nreport()",
        "def predict(x):\n    return model.predict(x)",
    ];
    assert_eq!(
        kept(&cells, "predict"),
        [
            "class Model:",
            "    def fit(self, X):",
            "        self.w = X",
            "import numpy as np",
            "model = Model()",
            "X = np.zeros(3)",
            "def train():",
            "    model.fit(X)",
            "train()",
            "def predict(x):",
            "    return model.predict(x)",
        ]
    );
}

#[test]
fn a_function_that_changes_its_parameter_changes_the_argument() {
    let cells = [
        "model = Model()\ndata = [1]",
        "def train(m, rows):\n    m.fit(rows)\ndef show(m):\n    print(m.coef_)",
        "train(model, data)\nshow(model)",
        "def predict(x):\n    return model.predict(x)",
    ];
    let lines = kept(&cells, "predict");
    assert!(
        lines.contains(&"train(model, data)".to_owned()),
        "{lines:?}"
    );
    assert!(!lines.contains(&"show(model)".to_owned()), "{lines:?}");
}

#[test]
fn objects_shared_through_assignments_count_as_changed() {
    let cells = [
        "model = Net()\nopt = SGD(model.parameters(), lr=0.1)\ntrainer = Trainer(model=model)",
        "trainer.train()",
        "for epoch in range(3):\n    loss = step()\n    opt.step()",
        "def predict(x):\n    return model(x)",
    ];
    assert_eq!(cells_of(&cells, "predict"), [1, 2, 3, 4]);
}

#[test]
fn modules_change_only_through_configuration_calls() {
    let cells = [
        "import numpy as np\nimport matplotlib.pyplot as plt",
        "np.random.seed(0)\nplt.plot([1, 2])\nnp.mean([1, 2])",
        "weights = np.random.rand(3)",
        "plt.show()",
        "def predict(x):\n    return weights @ x",
    ];
    assert_eq!(
        kept(&cells, "predict"),
        [
            "import numpy as np",
            "np.random.seed(0)",
            "weights = np.random.rand(3)",
            "def predict(x):",
            "    return weights @ x",
        ]
    );
}

#[test]
fn in_place_library_functions_change_their_arguments() {
    let cells = [
        "import random\nimport torch.nn as nn\nitems = [3, 1, 2]\nw = make()",
        "random.shuffle(items)\nnn.init.zeros_(w)\nsorted(items)\nlen(w)",
        "def f():\n    return items, w",
    ];
    assert_eq!(
        kept(&cells, "f"),
        [
            "import random",
            "import torch.nn as nn",
            "items = [3, 1, 2]",
            "w = make()",
            "random.shuffle(items)",
            "nn.init.zeros_(w)",
            "def f():",
            "    return items, w",
        ]
    );
}

// ── display and unrelated work ──────────────────────────────────────────────────────────────

#[test]
fn display_and_plots_are_left_out() {
    let cells = [
        "import time\nimport matplotlib.pyplot as plt\nimport pandas as pd\ndf = pd.read_csv('x.csv')",
        "df.head()\ndf.describe()\nprint(df.shape)\ndisplay(df)\ndf\ndf.plot()\nplt.title('x')",
        "time.sleep(60)",
        "df.columns",
        "def f():\n    return len(df)",
    ];
    assert_eq!(cells_of(&cells, "f"), [1, 5]);
    assert_eq!(
        kept(&cells, "f"),
        [
            "import pandas as pd",
            "df = pd.read_csv('x.csv')",
            "def f():",
            "    return len(df)"
        ]
    );
}

#[test]
fn calling_the_function_itself_is_left_out() {
    let cells = [
        "import numpy as np\nmodel = make()",
        "def predict(x):\n    return model.predict(np.array(x))",
        "predict([1])\nresult = predict([2])\nprint(result)",
    ];
    assert_eq!(cells_of(&cells, "predict"), [1, 2]);
}

// ── scopes ──────────────────────────────────────────────────────────────────────────────────

#[test]
fn comprehension_variables_are_not_globals() {
    let cells = [
        "x = 99\nrow = 1\nk = 'k'",
        "factor = 3",
        "def f(xs):\n    return [x * factor for x in xs] + [k2 for k2 in {k: v for k, v in xs}]",
    ];
    assert_eq!(kept(&cells, "f")[0], "factor = 3");
    assert_eq!(cells_of(&cells, "f"), [2, 3]);
}

#[test]
fn the_first_iterable_of_a_comprehension_is_read_outside_it() {
    let cells = ["x = [1, 2]", "y = [x for x in x]", "def f():\n    return y"];
    assert_eq!(cells_of(&cells, "f"), [1, 2, 3]);
}

#[test]
fn nested_functions_close_over_locals_and_read_globals() {
    let cells = [
        "k = 1\noffset = 2",
        "def predict(x):\n    k = 3\n    def inner():\n        return k + offset\n    return inner() + x",
    ];
    assert_eq!(kept(&cells, "predict")[0], "offset = 2");
    assert_eq!(kept(&cells, "predict").len(), 6);
}

#[test]
fn nonlocal_names_belong_to_the_enclosing_function() {
    let cells = [
        "count = 0\nstep = 1",
        "def counter():\n    count = 0\n    def bump():\n        nonlocal count\n        count += step\n        return count\n    return bump",
    ];
    assert_eq!(kept(&cells, "counter")[0], "step = 1");
}

#[test]
fn class_bodies_run_now_and_methods_later() {
    let cells = [
        "SCALE = 2\nOFFSET = 1\nhelper = 5",
        "class Model:\n    scale = SCALE\n    helper = 0\n    def predict(self, x):\n        return x * self.scale + OFFSET + helper",
        "SCALE = 3\nOFFSET = 4",
        "model = Model()",
        "def predict(x):\n    return model.predict(x)",
    ];
    assert_eq!(
        kept(&cells, "predict"),
        [
            "SCALE = 2",
            "helper = 5",
            "class Model:",
            "    scale = SCALE",
            "    helper = 0",
            "    def predict(self, x):",
            "        return x * self.scale + OFFSET + helper",
            "OFFSET = 4",
            "model = Model()",
            "def predict(x):",
            "    return model.predict(x)",
        ]
    );
}

#[test]
fn walrus_binds_outside_comprehensions() {
    let cells = [
        "values = [1, 2, 3]",
        "total = [(last := v) for v in values]",
        "if (n := len(values)) > 2:\n    pass",
        "def f():\n    return last, n",
    ];
    assert_eq!(cells_of(&cells, "f"), [1, 2, 3, 4]);
}

#[test]
fn match_captures_bind_names() {
    let cells = [
        "config = {'k': 3}",
        "match config:\n    case {'k': value, **rest}:\n        threshold = value\n    case [first, *others]:\n        threshold = first\n    case Point(x=px):\n        threshold = px\n    case _:\n        threshold = 0",
        "def f(x):\n    return x > threshold",
    ];
    assert_eq!(cells_of(&cells, "f"), [1, 2, 3]);
    assert!(!slice_of(&cells, "f")
        .warnings
        .iter()
        .any(|w| w.contains("value")));
}

#[test]
fn try_with_and_for_targets_bind() {
    let cells = [
        "try:\n    import ujson as json\nexcept ImportError as err:\n    import json\n    print(err)",
        "with open('config.json') as fh:\n    config = json.load(fh)",
        "table = {}\nfor i, row in enumerate(config['rows']):\n    table[i] = row",
        "for i in range(3):\n    print(i)",
        "def f(i):\n    return table[i]",
    ];
    assert_eq!(cells_of(&cells, "f"), [1, 2, 3, 5]);
}

#[test]
fn a_loop_variable_read_inside_its_own_loop_is_not_needed_from_earlier_cells() {
    let cells = [
        "i = 100",
        "acc = []\nfor i in range(3):\n    acc.append(i * 2)",
        "def f():\n    return acc",
    ];
    assert_eq!(cells_of(&cells, "f"), [2, 3]);
}

#[test]
fn type_parameters_are_not_globals() {
    let cells = [
        "def helper(x):\n    return x",
        "class Base:\n    pass",
        "type Pair[T] = tuple[T, T]",
        "def first[T: Base](items: list[T]) -> T:\n    return helper(items[0])",
    ];
    let s = slice_of(&cells, "first");
    assert!(s.unresolved.is_empty(), "{:?}", s.unresolved);
    assert_eq!(
        s.cells.iter().map(|c| c.number).collect::<Vec<_>>(),
        [1, 2, 4]
    );
}

// ── dynamic names, star imports, magics ─────────────────────────────────────────────────────

#[test]
fn star_imports_may_define_anything_still_needed() {
    let cells = [
        "from math import *",
        "import numpy as np",
        "def f(x):\n    return sqrt(np.abs(x))",
    ];
    assert_eq!(cells_of(&cells, "f"), [1, 2, 3]);
    let cells = [
        "from math import *",
        "import numpy as np",
        "def f(x):\n    return np.abs(x)",
    ];
    assert_eq!(cells_of(&cells, "f"), [2, 3]);
}

#[test]
fn a_function_reading_names_dynamically_when_called_keeps_what_its_code_names() {
    // In the bundle, `globals()` holds only the globals the pickled code names (cloudpickle
    // keeps no others): `f('a')` cannot find `a` there, whatever the slice keeps.
    let cells = [
        "a = 1\nprint(a)",
        "b = 2",
        "def helper():\n    return b",
        "def f(name):\n    helper()\n    return globals()[name]",
    ];
    let s = slice_of(&cells, "f");
    assert_eq!(cells_of(&cells, "f"), [2, 3, 4]);
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(
        s.warnings[0].starts_with("`f` looks names up by string (`globals()`)"),
        "{:?}",
        s.warnings
    );
    // What its strings spell but its code does not name is called out by name.
    let cells = [
        "def solve_bfs(p):\n    return p",
        "def solve_dfs(p):\n    return p[::-1]",
        "def solve(p, method='bfs'):\n    return globals()[f'solve_{method}'](p)",
    ];
    let s = slice_of(&cells, "solve");
    assert_eq!(cells_of(&cells, "solve"), [3]);
    assert!(
        s.warnings[0]
            .contains("`solve_bfs`, `solve_dfs` (spelled by its strings) will not be found"),
        "{:?}",
        s.warnings
    );
}

#[test]
fn a_dynamic_read_as_the_notebook_runs_keeps_what_its_strings_spell() {
    let cells = [
        "import time\nt0 = time.time()",
        "def build_standard():\n    return {'scale': 2}",
        "def build_minmax():\n    return {'scale': 10}",
        "def unrelated():\n    return 0",
        "def make(kind):\n    return globals()['build_' + kind]()",
        "scaler = make('standard')",
        "results = [scaler['scale'] * i for i in range(3)]\nelapsed = time.time() - t0",
        "def predict(x):\n    return x / scaler['scale']",
        "print(predict(3))\nassert predict(4) == 2",
    ];
    let s = slice_of(&cells, "predict");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(cells_of(&cells, "predict"), [2, 3, 5, 6, 8]);
    assert_eq!(
        s.cells[0].statements[0].reason,
        "defines `build_standard`, which cell 6 (by a name its strings spell) reads"
    );
    // `"build_{}".format(kind)` and `f"build_{kind}"` spell the same names.
    for call in [
        "globals()['build_{}'.format(kind)]()",
        "globals()[f'build_{kind}']()",
    ] {
        let make = format!("def make(kind):\n    return {call}");
        let mut cells = cells;
        cells[4] = &make;
        assert_eq!(cells_of(&cells, "predict"), [2, 3, 5, 6, 8], "{call}");
    }
}

#[test]
fn a_dynamic_read_whose_strings_spell_no_name_keeps_everything_that_defines() {
    let cells = [
        "a = 1\nprint(a)",
        "b = 2",
        "key = input()\nvalue = globals()[key]",
        "def f():\n    return value",
    ];
    let s = slice_of(&cells, "f");
    assert_eq!(cells_of(&cells, "f"), [1, 2, 3, 4]);
    assert!(s.warnings.iter().any(|w| w.contains("globals()")));
    assert!(!s.cells[0].source.contains("print"));
}

#[test]
fn namespaces_given_to_eval_and_a_function_s_own_locals_are_not_dynamic() {
    let cells = [
        "import numpy as np\nunrelated = 1",
        "def f(expr):\n    return eval(expr, {'np': np})",
        "def g(x):\n    return '{x}'.format(**locals()) + str(vars())",
    ];
    for function in ["f", "g"] {
        let s = slice_of(&cells, function);
        assert!(s.warnings.is_empty(), "{function}: {:?}", s.warnings);
        assert!(!kept(&cells, function).contains(&"unrelated = 1".to_owned()));
    }
}

#[test]
fn magics_shell_lines_and_help_are_understood() {
    let cells = [
        "%matplotlib inline\n!pip install numpy\n%load_ext autoreload\n%pip install pandas",
        "import numpy as np\nnp.sum?\n?np.mean\nfrom model import Model\ndata_dir = 'data'",
        "model = Model()\n%time model.fit(np.ones(3))\n%timeit model.predict(1)",
        "files = !ls {data_dir} $HOME\n!echo $HOME",
        "%%capture output\nprint('noise')\nextra = 1",
        "%%html\n<b>hello</b>",
        "%%bash\nsleep 60",
        "def predict(x):\n    return model.predict(x) + len(files)",
    ];
    assert_eq!(
        kept(&cells, "predict"),
        [
            "import numpy as np",
            "from model import Model",
            "data_dir = 'data'",
            "model = Model()",
            "%time model.fit(np.ones(3))",
            "files = !ls {data_dir} $HOME",
            "def predict(x):",
            "    return model.predict(x) + len(files)",
        ]
    );
    let s = slice_of(&cells, "predict");
    assert!(s.unresolved.is_empty(), "{:?}", s.unresolved);
    assert_eq!(
        s.warnings,
        [
            "left out `!pip install numpy` (cell 1), `%pip install pandas` (cell 1), \
          `!echo $HOME` (cell 4) and 1 more: a shell command cannot change Python names; if \
          the function needs files or packages one provides, run it before packing, or pack with `--all-cells`"
        ]
    );
}

#[test]
fn opaque_magics_are_kept_while_a_name_is_unaccounted_for() {
    let cells = [
        "%run helpers.py\n%cd data",
        "!wget -q https://example.com/x.csv",
        "import numpy as np",
        "def predict(x):\n    return helper(np.asarray(x))",
    ];
    let s = slice_of(&cells, "predict");
    assert_eq!(
        s.cells.iter().map(|c| c.number).collect::<Vec<_>>(),
        [1, 3, 4]
    );
    assert!(s.cells[0].statements[0].reason.contains("%run helpers.py"));
    assert_eq!(s.unresolved, ["helper"]);

    // Once everything is accounted for, earlier opaque lines no longer matter.
    let cells = [
        "!pip install numpy\n%run setup.py",
        "import numpy as np",
        "def f(x):\n    return np.abs(x)",
    ];
    assert_eq!(cells_of(&cells, "f"), [2, 3]);
}

#[test]
fn an_opaque_magic_between_definition_and_use_is_kept() {
    let cells = ["model = 1", "%store -r model", "def f():\n    return model"];
    assert_eq!(cells_of(&cells, "f"), [1, 2, 3]);
}

#[test]
fn python_cell_magics_keep_their_first_line() {
    let cells = [
        "%%time\nimport numpy as np\nslow = expensive()\nweights = np.ones(3)",
        "def f():\n    return weights",
    ];
    let s = slice_of(&cells, "f");
    assert_eq!(
        s.cells[0].source,
        "%%time\nimport numpy as np\n\nweights = np.ones(3)"
    );
    let cells = [
        "%%bash\necho hi > data.txt",
        "%%writefile helpers.py\ndef g(): pass",
        "import helpers",
        "def f():\n    return helpers.g()",
    ];
    // The helper module the kept import loads is written first.
    let s = slice_of(&cells, "f");
    assert_eq!(
        s.cells.iter().map(|c| c.number).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert_eq!(
        s.cells[0].statements[0].reason,
        "writes `helpers.py`, which `import helpers` (cell 3) imports"
    );
    let cells = ["%%sql\nSELECT 1", "def f():\n    return missing"];
    assert_eq!(cells_of(&cells, "f"), [1, 2]);
}

#[test]
fn magics_inside_functions_are_read_as_python() {
    let cells = [
        "scale = 2",
        "def f(x):\n    %time y = x * scale\n    return y",
    ];
    assert_eq!(cells_of(&cells, "f"), [1, 2]);
}

// ── text to execute ─────────────────────────────────────────────────────────────────────────

#[test]
fn left_out_statements_leave_blank_lines_so_line_numbers_hold() {
    let cells = [
        "print('a'); x = 1; print(x)\ny = 2\n\nz = x  # keep\nprint(z)",
        "def f():\n    return z",
    ];
    let s = slice_of(&cells, "f");
    assert_eq!(s.cells[0].source, "x = 1; \n\n\nz = x  # keep\n");
    assert_eq!(
        s.cells[0]
            .statements
            .iter()
            .map(|k| k.line)
            .collect::<Vec<_>>(),
        [1, 4]
    );
}

#[test]
fn the_script_names_the_cells() {
    let cells = ["import numpy as np", "print(1)", "def f():\n    return np"];
    let script = slice_of(&cells, "f").script();
    assert!(
        script.contains("# ── cell 1 ──\nimport numpy as np  # defines `np`, which `f` reads\n"),
        "{script}"
    );
    assert!(
        script.contains("# ── cell 3 ──\ndef f():  # defines `f`, the function\n    return np\n"),
        "{script}"
    );
    assert!(!script.contains("cell 2 ──"), "{script}");
}

#[test]
fn all_cells_runs_the_notebook_as_it_is() {
    let cells = [
        "import time\ntime.sleep(60)",
        "x = (",
        "def f():\n    return 1",
    ];
    let s = slice(
        &notebook(&cells),
        "f",
        &SliceOptions {
            all_cells: true,
            ..SliceOptions::default()
        },
        "t.ipynb",
    )
    .unwrap();
    assert_eq!(s.cells.len(), 3);
    assert_eq!(s.cells[1].source, "x = (");
}

// ── static imports ──────────────────────────────────────────────────────────────────────────

#[test]
fn imports_the_slice_reaches_include_function_bodies() {
    let cells = [
        "import os\nimport numpy as np\nfrom sklearn.cluster import KMeans",
        "import pandas as pd",
        "def f(x):\n    import scipy.linalg\n    from . import local\n    mod = importlib.import_module('yaml')\n    return np.abs(x)",
    ];
    let s = slice_of(&cells, "f");
    let found: Vec<(&str, u32, usize, u32, bool)> = s
        .imports
        .iter()
        .map(|i| (i.module.as_str(), i.level, i.cell, i.line, i.deferred))
        .collect();
    assert_eq!(
        found,
        [
            ("numpy", 0, 1, 2, false),
            ("scipy.linalg", 0, 3, 2, true),
            ("", 1, 3, 3, true),
            ("yaml", 0, 3, 4, true),
        ]
    );
}

// ── errors and warnings ─────────────────────────────────────────────────────────────────────

#[test]
fn a_missing_function_lists_the_ones_that_exist() {
    let cells = [
        "def predict_one(x):\n    return x",
        "def predict_two(x):\n    return x",
        "value = 1",
    ];
    let message = error_of(&cells, "predict_on");
    assert_eq!(
        message,
        "`test.ipynb` defines no function named `predict_on`; it defines `predict_one`, \
         `predict_two` (did you mean `predict_one`?)"
    );
    assert!(error_of(&["x = 1"], "f").contains("it defines no functions at all"));
    assert!(error_of(&cells, "predict").ends_with("(did you mean `predict_one` or `predict_two`?)"));
}

#[test]
fn cells_that_do_not_parse_are_left_out_with_a_warning() {
    let cells = ["x = 1", "def broken(:\n    pass", "def f():\n    return x"];
    let s = slice_of(&cells, "f");
    assert_eq!(s.cells.iter().map(|c| c.number).collect::<Vec<_>>(), [1, 3]);
    assert!(
        s.warnings[0].starts_with("cell 2 does not parse (line 1:"),
        "{:?}",
        s.warnings
    );
    assert!(error_of(&cells, "broken").contains("cells 2 do not parse"));
}

#[test]
fn names_no_cell_defines_are_reported() {
    let s = slice_of(&["def f():\n    return len(undefined_thing)"], "f");
    assert_eq!(s.unresolved, ["undefined_thing"]);
    assert!(s.warnings.iter().any(|w| w.contains("`undefined_thing`")));
}

#[test]
fn notebook_files_are_validated() {
    let err = |text: &str| Notebook::parse(text, "nb.ipynb").unwrap_err().to_string();
    assert!(err("{").starts_with(
        "`nb.ipynb` is not a valid notebook: it is not valid JSON (line 1, column 1:"
    ));
    assert!(err("[]").contains("its top level is not a JSON object"));
    assert!(err(r#"{"nbformat": 3, "worksheets": []}"#).contains("nbformat 3 notebook"));
    assert!(err(r#"{"nbformat": 4}"#).contains("no `cells` list"));
    assert!(
        err(r#"{"nbformat": 4, "cells": [{"source": "x"}]}"#).contains("cell 1 has no `cell_type`")
    );
    assert!(
        err(r#"{"nbformat": 4, "cells": [{"cell_type": "code", "source": 3}]}"#)
            .contains("cell 1 has no `source`")
    );

    let nb = Notebook::parse(
        r##"{"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "ir", "language": "R"}},
            "cells": [{"cell_type": "markdown", "source": "# t"},
                      {"cell_type": "code", "execution_count": 3, "source": ["x = 1\n", "y = 2"], "outputs": []}]}"##,
        "nb.ipynb",
    )
    .unwrap();
    assert_eq!(nb.cells[0].number, 2);
    assert_eq!(nb.cells[0].source, "x = 1\ny = 2");
    assert_eq!(nb.cells[0].execution_count, Some(3));
    assert_eq!(nb.kernel_name.as_deref(), Some("ir"));
    let err = slice(&nb, "f", &SliceOptions::default(), "nb.ipynb").unwrap_err();
    assert_eq!(
        err.to_string(),
        "`nb.ipynb` is a R notebook; takeout slices Python notebooks only"
    );
}

#[test]
fn the_seed_notebook_file() {
    let text = include_str!("../../../../examples/kmeans.ipynb");
    let nb = Notebook::parse(text, "kmeans.ipynb").unwrap();
    let cells = |f: &str| -> Vec<usize> {
        slice(&nb, f, &SliceOptions::default(), "kmeans.ipynb")
            .unwrap()
            .cells
            .iter()
            .map(|c| c.number)
            .collect()
    };
    // Calling `module_frontier(...)` on a function reads it; it changes nothing.
    assert_eq!(cells("km_predict_one"), [3, 6]);
    assert_eq!(cells("km_predict_two"), [3, 6, 9]);
    assert_eq!(cells("module_frontier"), [2]);
    assert_eq!(cells("h"), [3]);
}

#[test]
fn a_container_change_does_not_reach_its_elements() {
    let cells = [
        "a = Model()\nb = Model()\nmodels = [a]",
        "models.append(b)",
        "def f():\n    return a",
        "def g():\n    return models",
    ];
    assert_eq!(cells_of(&cells, "f"), [1, 3]);
    assert_eq!(cells_of(&cells, "g"), [1, 2, 4]);
}

#[test]
fn a_change_through_a_view_reaches_what_it_views() {
    let cells = [
        "import numpy as np\ndata = np.zeros((3, 3))",
        "head = data[:2]\nhead[0, 0] = 1.0",
        "copy = data.sum()",
        "def f():\n    return data",
    ];
    assert_eq!(
        kept(&cells, "f"),
        [
            "import numpy as np",
            "data = np.zeros((3, 3))",
            "head = data[:2]",
            "head[0, 0] = 1.0",
            "def f():",
            "    return data",
        ]
    );
}

#[test]
fn training_a_model_changes_what_holds_it() {
    let cells = [
        "from sklearn.pipeline import make_pipeline\nmodel = Ridge()\npipe = make_pipeline(model)",
        "model.fit(X, y)",
        "X, y = load()",
        "def predict(x):\n    return pipe.predict(x)",
    ];
    let s = slice_of(&cells, "predict");
    assert_eq!(
        s.cells.iter().map(|c| c.number).collect::<Vec<_>>(),
        [1, 2, 4]
    );
    assert_eq!(
        s.cells[1].statements[0].reason,
        "changes `pipe` through `model`, which `predict` reads"
    );
}

#[test]
fn a_reused_name_does_not_join_what_it_was_bound_to_before() {
    let cells = [
        "a = Model()\nb = Model()\nX = [1]",
        "_ = a.predict(1)\nscores = [m.predict(v) for v in X for m in [a]]",
        "_ = b.predict(1)\nothers = [m.predict(v) for v in X for m in [b]]",
        "b.fit(X)",
        "def f():\n    return a",
    ];
    assert_eq!(cells_of(&cells, "f"), [1, 5]);
}

#[test]
fn a_conditional_binding_keeps_sharing_with_the_old_value() {
    let cells = [
        "model = Model()\nbackup = model",
        "if retrain:\n    model = Model()",
        "backup.fit(X)",
        "def f():\n    return model",
    ];
    assert_eq!(cells_of(&cells, "f"), [1, 2, 3, 4]);
}

// ── inputs that must not kill the interpreter (each is reported as an unparsable cell) ─────

fn unparsable_warning(cell: &str) -> String {
    let sliced = slice_of(
        &["import math", cell, "def f(x):\n    return math.sqrt(x)"],
        "f",
    );
    assert_eq!(
        sliced.cells.iter().map(|c| c.number).collect::<Vec<_>>(),
        [1, 3]
    );
    let warning = sliced
        .warnings
        .iter()
        .find(|w| w.starts_with("cell 2 does not parse"))
        .unwrap_or_else(|| panic!("no warning for cell 2: {:?}", sliced.warnings));
    warning.clone()
}

#[test]
fn fifteen_thousand_chained_calls_are_an_unparsable_cell() {
    let cell = format!("x = f{}", "()".repeat(15_000));
    assert!(cell.len() >= 30_000);
    assert!(unparsable_warning(&cell).contains("nests more than 1000 levels"));
}

#[test]
fn seventeen_thousand_nested_lambdas_are_an_unparsable_cell() {
    let cell = format!("g = {}0", "lambda: ".repeat(17_000));
    assert!(unparsable_warning(&cell).contains("levels"));
}

#[test]
fn seventy_five_thousand_nested_fstrings_are_an_unparsable_cell() {
    let depth = 75_000;
    let cell = format!("s = {}1{}", "f'{".repeat(depth), "}'".repeat(depth));
    let warning = unparsable_warning(&cell);
    assert!(warning.contains("line 1"), "{warning}");
}

#[test]
fn a_cell_that_panics_the_parser_is_an_unparsable_cell() {
    let warning = unparsable_warning("lambda\n;");
    assert!(warning.contains("does not parse"), "{warning}");
}

// ── real notebooks (issues 14 and 15) ───────────────────────────────────────────────────────

#[test]
fn demo_test_and_timing_calls_only_use_what_they_call() {
    let cells = [
        "import time\nfrom timeit import timeit\ncat = ''.join",
        "def normalize(word):\n    return cat(sorted(word))",
        "WORDS = ['listen', 'silent', 'enlist', 'google']",
        "def anagrams(word):\n    return [w for w in WORDS if normalize(w) == normalize(word)]",
        "print(anagrams('listen'))",
        "assert anagrams('google') == ['google']",
        "timeit(lambda: anagrams('listen'), number=1000)",
        "def bench(fn, n):\n    return [fn('listen') for _ in range(n)]",
        "bench(anagrams, 10_000)",
        "%time anagrams('enlist')",
    ];
    assert_eq!(cells_of(&cells, "anagrams"), [1, 2, 3, 4]);
    // A call that does change what the function reads is still kept.
    let cells = [
        "WORDS = []",
        "def add(word):\n    WORDS.append(word)",
        "add('x')",
        "def count():\n    return len(WORDS)",
    ];
    assert_eq!(cells_of(&cells, "count"), [1, 2, 3, 4]);
    let s = slice_of(&cells, "count");
    assert_eq!(
        s.cells[2].statements[0].reason,
        "changes `WORDS`, which `count` reads"
    );
}

#[test]
fn only_the_builtins_read_names_dynamically() {
    let cells = [
        "a = 1\nb = 2\nunrelated = 3",
        "class P:\n    x = 1\nprint(vars(P()), getattr(P(), 'x'))",
        "def eval(expr):\n    return expr",
        "eval('unrelated')",
        "def f():\n    return eval('a') + b",
    ];
    let s = slice_of(&cells, "f");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert!(!kept(&cells, "f").contains(&"unrelated = 3".to_owned()));
    assert_eq!(cells_of(&cells, "f"), [1, 3, 5]);
    // `eval` of a literal reads what the literal names.
    let cells = ["a = 1\nb = 2", "def f():\n    return eval('a * 2')"];
    assert_eq!(
        kept(&cells, "f"),
        ["a = 1", "def f():", "    return eval('a * 2')"]
    );
    let s = slice_of(&cells, "f");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn names_bound_in_top_level_blocks_are_not_read_before_defined() {
    let cells = [
        "try:\n    import ujson as json\nexcept ImportError:\n    import json",
        "if True:\n    mode = 'a'\nelse:\n    mode = 'b'",
        "for i in range(3):\n    last = i",
        "with open('x.txt') as fh:\n    text = 'x'",
        "def f():\n    return json.dumps([mode, last, text])",
    ];
    let s = slice_of(&cells, "f");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert!(s.unresolved.is_empty(), "{:?}", s.unresolved);
    assert_eq!(s.cells.len(), 5);
}

#[test]
fn an_extension_and_its_magic_go_together() {
    let cells = [
        "%load_ext nosuch_ext",
        "%load_ext autoreload",
        "%nosuch_magic",
        "def f():\n    return value",
    ];
    let s = slice_of(&cells, "f");
    assert_eq!(
        s.cells.iter().map(|c| c.number).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(
        s.cells[0].statements[0].reason,
        "loads an extension, which may define `%nosuch_magic` (cell 3)"
    );
    // Neither, when the magic is not needed.
    let cells = [
        "%load_ext nosuch_ext",
        "%nosuch_magic",
        "x = 1",
        "def f():\n    return x",
    ];
    assert_eq!(cells_of(&cells, "f"), [3, 4]);
}

#[test]
fn changing_directory_before_kept_statements_is_kept() {
    let cells = [
        "import os\nos.chdir('data')",
        "%cd sub",
        "text = open('x.txt').read()",
        "print('done')",
        "def f():\n    return text",
        "os.chdir('..')",
    ];
    let s = slice_of(&cells, "f");
    assert_eq!(
        s.cells.iter().map(|c| c.number).collect::<Vec<_>>(),
        [1, 2, 3, 5]
    );
    assert!(s.cells[1].statements[0]
        .reason
        .contains("changes the working directory"));
}

#[test]
fn a_cell_whose_first_lines_are_left_out_keeps_its_line_numbers() {
    let cells = ["\nprint('a')\nx = 1 / 0", "def f():\n    return x"];
    let s = slice_of(&cells, "f");
    // IPython strips leading blank lines: a comment keeps line 3 at line 3.
    assert_eq!(s.cells[0].source, "#\n\nx = 1 / 0");
    assert_eq!(s.cells[0].statements[0].line, 3);
}

#[test]
fn an_earlier_definition_can_be_chosen() {
    let cells = [
        "import math",
        "def area(r):\n    return math.pi * r * r",
        "def area(r):\n    return math.nosuch(r)",
    ];
    for (function, cell) in [("area@2", None), ("area", Some(2))] {
        let s = slice(
            &notebook(&cells),
            function,
            &SliceOptions {
                cell,
                ..SliceOptions::default()
            },
            "test.ipynb",
        )
        .unwrap();
        assert_eq!(s.function, "area");
        assert_eq!(s.target_cell, 2);
        assert_eq!(s.cells.iter().map(|c| c.number).collect::<Vec<_>>(), [1, 2]);
    }
    let err = slice(
        &notebook(&cells),
        "area@1",
        &SliceOptions::default(),
        "t.ipynb",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "cell 1 of `t.ipynb` does not define `area`; cells 2, 3 do, so write `area@3` for the \
         last of them"
    );
}

#[test]
fn a_name_bound_only_after_the_definition_takes_its_first_binding_after() {
    let cells = [
        "import numpy as np\nfrom scipy.interpolate import interp1d",
        "Y = interp1d([0, 1], [0, 1])",
        "def obj(x):\n    return Y(x) * scale(model)",
        "def scale(m):\n    return m * 2",
        "model = 3\nmodel += 1",
        "Y = np.zeros(3)",
        "model = 100",
    ];
    let s = slice_of(&cells, "obj");
    assert_eq!(
        s.cells.iter().map(|c| c.number).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let rules: Vec<(&str, Option<usize>, &str)> = s
        .captured
        .iter()
        .map(|c| (c.name.as_str(), c.cell, c.rule.as_str()))
        .collect();
    assert_eq!(
        rules,
        [
            (
                "Y",
                Some(2),
                "the last binding before `obj` is defined (cell 3)"
            ),
            (
                "model",
                Some(5),
                "the first binding after `obj` is defined (cell 3): no cell binds it before"
            ),
            (
                "scale",
                Some(4),
                "the first binding after `obj` is defined (cell 3): no cell binds it before"
            ),
        ]
    );
    assert!(
        s.warnings
            .iter()
            .any(|w| w.starts_with("cell 6 rebinds or changes `Y`")),
        "{:?}",
        s.warnings
    );
    let script = s.script();
    assert!(
        script.contains("# `obj` reads `Y` from cell 2, line 1: the last binding before"),
        "{script}"
    );
}
