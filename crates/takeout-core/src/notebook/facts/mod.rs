//! What one top-level statement does to the notebook's namespace.
//!
//! A walk over ruff's AST with Python's own scoping rules: function bodies see their
//! parameters and whatever they bind anywhere (a compile-time decision, so they are resolved
//! after the walk), class bodies are invisible to the functions nested in them,
//! comprehensions bind their targets in a scope of their own while their first iterable is
//! evaluated outside it, a walrus binds in the nearest enclosing function, and `global`
//! sends a name straight to the module.
//!
//! Reads are split by *when* they happen: `uses_now` are read as the statement runs (an
//! assignment's value, decorators, defaults, class bodies); `uses_later` are the globals that
//! function bodies read when they are eventually called. Calls are recorded as call sites,
//! not judged here: whether `f(x)` changes `x` depends on what `f` is bound to at that point
//! of the notebook, which only the slicer's forward pass knows.
//!
//! - [`scope`]: the walker's scopes, bindings and reads, resolved after the walk.
//! - [`sharing`]: assignments, and which names may share objects after one.
//! - [`visit`]: the statements and expressions themselves, calls, imports, `IPython` escapes.

mod scope;
mod sharing;
mod visit;

use ruff_python_ast::visitor::Visitor;
use ruff_python_ast::Stmt;
use ruff_text_size::TextRange;
use rustc_hash::{FxHashMap, FxHashSet};

use super::ipython::{self, Effect};
use scope::Walker;

/// An interned name.
pub(crate) type Sym = u32;

#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: FxHashMap<Box<str>, Sym>,
    names: Vec<Box<str>>,
}

impl Interner {
    pub(crate) fn intern(&mut self, name: &str) -> Sym {
        if let Some(&sym) = self.ids.get(name) {
            return sym;
        }
        let sym = Sym::try_from(self.names.len()).expect("fewer than 2^32 names");
        self.names.push(name.into());
        self.ids.insert(name.into(), sym);
        sym
    }

    pub(crate) fn get(&self, name: &str) -> Option<Sym> {
        self.ids.get(name).copied()
    }

    pub(crate) fn name(&self, sym: Sym) -> &str {
        &self.names[sym as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefKind {
    Import,
    /// Index into [`Facts::functions`].
    Function(usize),
    Class,
    Value,
    Delete,
}

/// A module-level binding.
#[derive(Debug, Clone)]
pub(crate) struct Def {
    pub(crate) name: Sym,
    /// Unconditional: once the statement ran, earlier values of the name are gone.
    pub(crate) strong: bool,
    pub(crate) kind: DefKind,
}

/// How a bound value relates to a name it was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rel {
    /// Possibly the same object (`a = b`, `a = b or c`).
    Same,
    /// Possibly part of it, or a view into it (`a = b.attr`, `a = b[i]`, `a = b.method()`).
    Part,
    /// Possibly holding it (`a = [b]`, `a = Trainer(b)`).
    Holds,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Callee {
    /// `f(...)`
    Name(Sym),
    /// `root.….method(...)`, through attributes and subscripts (`models[0].fit(X)`).
    Method { root: Sym, method: Sym },
    /// Anything else (`make()(x)`, `KMeans().fit(X)`: the receiver is a fresh object).
    Other,
}

#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) callee: Callee,
    /// Bare-name positional arguments, by position.
    pub(crate) positional: Vec<Option<Sym>>,
    /// `keyword=name` arguments.
    pub(crate) keywords: Vec<(Sym, Sym)>,
    /// `*name` and `**name`.
    pub(crate) starred: Vec<Sym>,
    /// Every name an argument may hand over a reference to (`f(model.coef_)` -> `model`).
    pub(crate) arg_roots: Vec<Sym>,
    /// `inplace=True` (pandas): the receiver changes, whatever the method.
    pub(crate) inplace: bool,
}

impl Call {
    pub(crate) fn bare_args(&self) -> impl Iterator<Item = Sym> + '_ {
        self.positional
            .iter()
            .flatten()
            .copied()
            .chain(self.keywords.iter().map(|&(_, value)| value))
            .chain(self.starred.iter().copied())
    }
}

/// A module-level `def`, summarised for the call sites that run it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FnSummary {
    pub(crate) name: Sym,
    /// Positional parameters in order (positional-only first).
    pub(crate) params: Vec<Sym>,
    pub(crate) kwonly: Vec<Sym>,
    /// Names local to the function (parameters included).
    pub(crate) locals: FxHashSet<Sym>,
    /// Globals the body reads (nested functions and comprehensions included).
    pub(crate) free: Vec<Sym>,
    /// Globals declared `global` and bound in the body.
    pub(crate) global_writes: Vec<Sym>,
    /// Roots of attribute/subscript stores in the body (`cache[k] = v` -> `cache`).
    pub(crate) stores: Vec<Sym>,
    pub(crate) calls: Vec<Call>,
    /// `(part, whole)` edges from the body's assignments, as in [`Facts::aliases`].
    pub(crate) aliases: Vec<(Sym, Sym)>,
    /// The builtins it calls that read names the parser cannot see (`eval` of a computed
    /// string, `globals()`): dynamic only while the name is not the notebook's own.
    pub(crate) dynamic: Vec<Sym>,
    /// The names its strings may spell, for its dynamic reads.
    pub(crate) hints: Vec<NameHint>,
}

/// A name a string in the code may spell: what `globals()[key]` or `eval(key)` can look up
/// when `key` is built from that string. A name a caller passes in spells nothing here.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum NameHint {
    /// `"solve_bfs"`
    Exact(String),
    /// `f"solve_{method}"`, `"solve_" + method`, `"solve_{}".format(method)`
    Prefix(String),
    /// `f"{kind}_model"`, `kind + "_model"`
    Suffix(String),
}

impl NameHint {
    pub(crate) fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(exact) => name == exact,
            Self::Prefix(prefix) => name.len() > prefix.len() && name.starts_with(prefix.as_str()),
            Self::Suffix(suffix) => name.len() > suffix.len() && name.ends_with(suffix.as_str()),
        }
    }
}

/// An import statement anywhere in the statement, for the static dependency estimate.
#[derive(Debug, Clone)]
pub(crate) struct Import {
    pub(crate) module: String,
    pub(crate) level: u32,
    pub(crate) names: Vec<String>,
    pub(crate) range: TextRange,
    /// Inside a function body: runs when the function is called.
    pub(crate) deferred: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub(crate) defs: Vec<Def>,
    pub(crate) uses_now: Vec<Sym>,
    pub(crate) uses_later: Vec<Sym>,
    /// `$name` in a shell line: read if such a Python variable exists, else left to the shell.
    pub(crate) soft_uses: Vec<Sym>,
    /// Module-level names changed in place (`x.a = 1`, `x[i] += 1`, `del x[k]`).
    pub(crate) mutated: Vec<Sym>,
    /// Calls evaluated as the statement runs.
    pub(crate) calls: Vec<Call>,
    /// `(part, whole)`: the object of `part` may be reachable from the object of `whole`.
    pub(crate) aliases: Vec<(Sym, Sym)>,
    pub(crate) functions: Vec<FnSummary>,
    pub(crate) imports: Vec<Import>,
    /// Why the statement may define or change any name (`%run x.py`, `from m import *`).
    pub(crate) any_name: Option<String>,
    /// A shell command (`!wget ...`, `%pip`, `%%bash`): changes files, not names.
    pub(crate) shell: Option<String>,
    /// Names bound in class bodies and comprehensions that run now: local to this
    /// statement, even when a global of the same name exists.
    pub(crate) scratch: Vec<Sym>,
    /// Reads names the parser cannot see as the statement runs (`exec(code)` may bind any
    /// name): the builtins called, as in [`FnSummary::dynamic`]. In a function body, such a
    /// call is the function's (see `slicer::Backward::dynamic_when_called`).
    pub(crate) dynamic_now: Vec<Sym>,
    /// The names the strings evaluated as the statement runs may spell (see [`NameHint`]).
    pub(crate) hints: Vec<NameHint>,
    /// `name = receiver.method` at module level (`cat = ''.join`): calling `name` is calling
    /// that method. `(name, receiver's root, method)`; no root for a literal receiver.
    pub(crate) method_aliases: Vec<(Sym, Option<Sym>, Sym)>,
    /// `%load_ext`/`%reload_ext`: may define the magics that later cells use.
    pub(crate) loads_extension: bool,
    /// A magic IPython does not define by itself (`%autotime`): an extension's.
    pub(crate) unknown_magic: Option<String>,
    /// `%cd DIR`, `os.chdir(DIR)`: later relative paths depend on it.
    pub(crate) chdir: Option<String>,
    /// The file a `%%writefile`/`%%file` cell writes (a helper module, often).
    pub(crate) writes: Option<String>,
}

/// The facts of one top-level statement.
pub(crate) fn statement(stmt: &Stmt, names: &mut Interner) -> Facts {
    let mut walker = Walker::new(names);
    walker.visit_stmt(stmt);
    walker.finish()
}

/// The facts of a cell magic's first line (`%%capture out`): only what it binds.
pub(crate) fn cell_magic_header(magic: &ipython::CellMagic<'_>, names: &mut Interner) -> Facts {
    let mut facts = Facts::default();
    if let Some(var) = magic.defines {
        facts.defs.push(Def {
            name: names.intern(var),
            strong: true,
            kind: DefKind::Value,
        });
    }
    if matches!(magic.name, "writefile" | "file") {
        facts.writes = magic
            .args
            .split_whitespace()
            .rfind(|a| !a.starts_with('-'))
            .map(str::to_owned);
    }
    match magic.effect {
        Effect::Opaque => {
            facts.any_name = Some(format!("`%%{}`", magic.name));
            facts.unknown_magic = facts.any_name.clone();
        }
        Effect::Shell => facts.shell = Some(format!("`%%{}`", magic.name)),
        Effect::Display | Effect::Python(_) | Effect::Extension | Effect::Chdir => {}
    }
    facts
}
