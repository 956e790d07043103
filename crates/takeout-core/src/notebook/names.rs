//! Name tables the slicer's heuristics rest on. Each table errs towards keeping a statement:
//! a method missing from `PURE_METHODS` only makes a slice longer, never wrong.

/// Names a notebook can read without defining them: Python's builtins (3.9-3.14) and what
/// `IPython` injects into the user namespace.
const BUILTINS: &[&str] = &[
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BaseException",
    "BaseExceptionGroup",
    "BlockingIOError",
    "BrokenPipeError",
    "BufferError",
    "BytesWarning",
    "ChildProcessError",
    "ConnectionAbortedError",
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "DeprecationWarning",
    "EOFError",
    "Ellipsis",
    "EncodingWarning",
    "EnvironmentError",
    "Exception",
    "ExceptionGroup",
    "False",
    "FileExistsError",
    "FileNotFoundError",
    "FloatingPointError",
    "FutureWarning",
    "GeneratorExit",
    "IOError",
    "ImportError",
    "ImportWarning",
    "In",
    "IndentationError",
    "IndexError",
    "InterruptedError",
    "IsADirectoryError",
    "KeyError",
    "KeyboardInterrupt",
    "LookupError",
    "MemoryError",
    "ModuleNotFoundError",
    "NameError",
    "None",
    "NotADirectoryError",
    "NotImplemented",
    "NotImplementedError",
    "OSError",
    "Out",
    "OverflowError",
    "PendingDeprecationWarning",
    "PermissionError",
    "ProcessLookupError",
    "PythonFinalizationError",
    "RecursionError",
    "ReferenceError",
    "ResourceWarning",
    "RuntimeError",
    "RuntimeWarning",
    "StopAsyncIteration",
    "StopIteration",
    "SyntaxError",
    "SyntaxWarning",
    "SystemError",
    "SystemExit",
    "TabError",
    "TimeoutError",
    "True",
    "TypeError",
    "UnboundLocalError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "UnicodeError",
    "UnicodeTranslateError",
    "UnicodeWarning",
    "UserWarning",
    "ValueError",
    "Warning",
    "ZeroDivisionError",
    "_",
    "__",
    "___",
    "__build_class__",
    "__builtins__",
    "__debug__",
    "__doc__",
    "__import__",
    "__loader__",
    "__name__",
    "__package__",
    "__spec__",
    "_dh",
    "_i",
    "_ih",
    "_ii",
    "_iii",
    "_oh",
    "abs",
    "aiter",
    "all",
    "anext",
    "any",
    "ascii",
    "bin",
    "bool",
    "breakpoint",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "compile",
    "complex",
    "copyright",
    "credits",
    "delattr",
    "dict",
    "dir",
    "display",
    "divmod",
    "enumerate",
    "eval",
    "exec",
    "exit",
    "filter",
    "float",
    "format",
    "frozenset",
    "get_ipython",
    "getattr",
    "globals",
    "hasattr",
    "hash",
    "help",
    "hex",
    "id",
    "input",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "license",
    "list",
    "locals",
    "map",
    "max",
    "memoryview",
    "min",
    "next",
    "object",
    "oct",
    "open",
    "ord",
    "pow",
    "print",
    "property",
    "quit",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "setattr",
    "slice",
    "sorted",
    "staticmethod",
    "str",
    "sum",
    "super",
    "tuple",
    "type",
    "vars",
    "zip",
];

pub(crate) fn is_builtin(name: &str) -> bool {
    BUILTINS.binary_search(&name).is_ok()
}

/// Builtins that change the object passed as their first argument.
pub(crate) const ARG_MUTATING_BUILTINS: &[&str] = &["anext", "delattr", "next", "setattr"];

/// Builtins through which code reads or writes names the parser cannot see.
pub(crate) const DYNAMIC_BUILTINS: &[&str] = &["eval", "exec", "globals", "locals", "vars"];

/// Methods that return something new and leave their receiver as it was. Used only for
/// receivers that are not modules: `df.head()` shows, `model.predict(x)` computes, neither
/// changes `df` or `model`. `inplace=True` overrides this (pandas).
const PURE_METHODS: &[&str] = &[
    "agg",
    "aggregate",
    "all",
    "any",
    "apply",
    "argmax",
    "argmin",
    "astype",
    "corr",
    "count",
    "cov",
    "cpu",
    "cumsum",
    "decision_function",
    "describe",
    "detach",
    "drop",
    "drop_duplicates",
    "dropna",
    "endswith",
    "fillna",
    "filter",
    "find",
    "flatten",
    "format",
    "get",
    "get_feature_names_out",
    "get_params",
    "groupby",
    "head",
    "hist",
    "info",
    "inverse_transform",
    "isin",
    "isna",
    "isnull",
    "item",
    "items",
    "join",
    "keys",
    "lower",
    "map",
    "max",
    "mean",
    "median",
    "melt",
    "merge",
    "min",
    "notna",
    "notnull",
    "numpy",
    "nunique",
    "pivot",
    "pivot_table",
    "plot",
    "predict",
    "predict_log_proba",
    "predict_proba",
    "quantile",
    "query",
    "ravel",
    "rename",
    "replace",
    "reset_index",
    "reshape",
    "round",
    "sample",
    "score",
    "score_samples",
    "select_dtypes",
    "set_index",
    "show",
    "sort_index",
    "sort_values",
    "split",
    "squeeze",
    "startswith",
    "std",
    "strip",
    "sum",
    "summary",
    "tail",
    "to_csv",
    "to_dict",
    "to_frame",
    "to_json",
    "to_list",
    "to_numpy",
    "to_string",
    "tolist",
    "transform",
    "transpose",
    "unique",
    "upper",
    "value_counts",
    "values",
    "var",
];

pub(crate) fn is_pure_method(name: &str) -> bool {
    PURE_METHODS.binary_search(&name).is_ok()
}

/// Methods that change their receiver and nothing it holds (`models.append(m)` leaves `m`
/// as it was), unlike `trainer.train()`, which may change everything the trainer holds.
pub(crate) fn is_container_method(name: &str) -> bool {
    matches!(
        name,
        "add"
            | "append"
            | "appendleft"
            | "clear"
            | "discard"
            | "extend"
            | "extendleft"
            | "insert"
            | "pop"
            | "popitem"
            | "popleft"
            | "remove"
            | "reverse"
            | "rotate"
            | "setdefault"
            | "sort"
            | "update"
            | "__setitem__"
            | "__delitem__"
    )
}

/// Calls on a module (or on something imported) that change the module's own state:
/// seeding its random generator, setting options, choosing a backend.
pub(crate) fn is_config_call(name: &str) -> bool {
    name.starts_with("set")
        || name.contains("seed")
        || matches!(
            name,
            "use"
                | "register"
                | "enable"
                | "disable"
                | "filterwarnings"
                | "simplefilter"
                | "resetwarnings"
                | "basicConfig"
                | "configure"
                | "update"
                | "init"
                | "reset_option"
        )
}

/// Library functions that change the objects passed to them. A trailing underscore is
/// `PyTorch`'s in-place convention (`nn.init.zeros_(w)`).
pub(crate) fn mutates_arguments(name: &str) -> bool {
    (name.ends_with('_') && !name.starts_with("__"))
        || matches!(
            name,
            "shuffle"
                | "heappush"
                | "heappop"
                | "heapify"
                | "heapreplace"
                | "heappushpop"
                | "insort"
                | "insort_left"
                | "insort_right"
                | "copyto"
                | "put"
                | "place"
                | "putmask"
                | "fill_diagonal"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_for_binary_search() {
        assert!(BUILTINS.windows(2).all(|w| w[0] < w[1]));
        assert!(PURE_METHODS.windows(2).all(|w| w[0] < w[1]));
    }
}
