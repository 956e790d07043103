//! The forward pass: what each statement changes, given what every name is bound to at that
//! point of the notebook.
//!
//! A call's effect depends on its callee. A `def` from the notebook is summarised (the
//! globals it assigns through `global`, what its body changes, which parameters it changes)
//! and that summary is applied at each call site, transitively. A receiver changes under a
//! method call unless the method is known to be pure (`df.head()`, `model.predict(x)`) or
//! the receiver is an imported module, which changes only through configuration calls
//! (`np.random.seed`, `pd.set_option`). Library functions are trusted not to change their
//! arguments, except the in-place ones (`random.shuffle`, `nn.init.zeros_`); anything else
//! called with a name as argument may change it.
//!
//! Objects are shared: `trainer = Trainer(model)` makes `model` part of what `trainer`
//! holds, `X = df[cols]` may be a view into `df`. These "part of" edges decide what a change
//! reaches. A *shallow* change (`x[k] = v`, `lst.append(v)`) changes the object and
//! everything that holds it; a *deep* one (`trainer.train()`, an unknown call) may also
//! change everything the object holds, and whatever holds those.

use rustc_hash::{FxHashMap, FxHashSet};

use super::facts::{Call, Callee, DefKind, FnSummary, Interner, NameHint, Sym};
use super::names::{
    is_builtin, is_config_call, is_container_method, is_pure_method, mutates_arguments,
    ARG_MUTATING_BUILTINS,
};
use super::Unit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    Import,
    /// `(unit, index into its facts.functions)`.
    Function(usize, usize),
    Class,
    /// `cat = ''.join`: calling it calls that method on that receiver (`None`: a literal).
    Method(Option<Sym>, Sym),
    Value,
}

/// One binding of a name: from the statement that binds it to the next one that rebinds it.
/// Sharing is tracked between bindings, not names, so `_ = a.predict(1)` and, ten cells
/// later, `_ = b.predict(1)` do not make `a` and `b` share anything.
pub(crate) type Node = u32;

#[derive(Debug, Clone, Copy)]
struct Span {
    sym: Sym,
    /// The unit that made the binding (0 for names bound before the notebook starts).
    start: usize,
    /// The unit that replaces it (exclusive); `usize::MAX` while it is the latest.
    end: usize,
}

/// What a statement does once its calls are resolved.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    /// Bindings whose objects may change, and `true` when the change may reach what they hold.
    pub(crate) mods: Vec<(Node, bool)>,
    /// Globals read by the notebook functions it calls, as it runs.
    pub(crate) reads: Vec<Sym>,
    /// Reads names the parser cannot see as it runs (`globals()[key]` here, or in a notebook
    /// function it calls); a function body that does so when called later does not count.
    pub(crate) reads_any: bool,
    /// What those dynamic reads may look up: the strings of the statement and of the
    /// notebook functions it calls (see [`NameHint`]).
    pub(crate) hints: Vec<NameHint>,
    /// Calls `exec`/`eval`/`globals()` itself, as it runs: may bind any name.
    pub(crate) any_name: bool,
}

#[derive(Debug, Default)]
struct Effects {
    mods: Vec<(Sym, bool)>,
    reads: Vec<Sym>,
    /// `(part, whole)` edges made by calls (`models.append(m)`).
    edges: Vec<(Sym, Sym)>,
    reads_any: bool,
    hints: Vec<NameHint>,
}

#[derive(Debug, Default)]
struct FnEffects {
    global_mods: Vec<(Sym, bool)>,
    param_mods: Vec<(Sym, bool)>,
    reads: Vec<Sym>,
    reads_any: bool,
    hints: Vec<NameHint>,
}

/// "Part of" edges: `up[a]` may hold `a`, `down[a]` may be held by `a`.
#[derive(Debug, Default)]
pub(crate) struct Sharing<K: Copy + Eq + std::hash::Hash = Node> {
    up: FxHashMap<K, Vec<K>>,
    down: FxHashMap<K, Vec<K>>,
}

impl<K: Copy + Eq + std::hash::Hash> Sharing<K> {
    fn new() -> Self {
        Self {
            up: FxHashMap::default(),
            down: FxHashMap::default(),
        }
    }

    fn add(&mut self, part: K, whole: K) {
        if part == whole {
            return;
        }
        let ups = self.up.entry(part).or_default();
        if !ups.contains(&whole) {
            ups.push(whole);
            self.down.entry(whole).or_default().push(part);
        }
    }

    /// Everything whose object a change to `start` may reach (`start` included): what holds
    /// it, and with `deep`, also what it holds and whatever holds those.
    pub(crate) fn reach(&self, start: K, deep: bool) -> Vec<K> {
        let mut seen = FxHashSet::default();
        seen.insert(start);
        let mut found = vec![start];
        if deep {
            let mut i = 0;
            while i < found.len() {
                for &part in self.down.get(&found[i]).into_iter().flatten() {
                    if seen.insert(part) {
                        found.push(part);
                    }
                }
                i += 1;
            }
        }
        let mut i = 0;
        while i < found.len() {
            for &whole in self.up.get(&found[i]).into_iter().flatten() {
                if seen.insert(whole) {
                    found.push(whole);
                }
            }
            i += 1;
        }
        found
    }
}

/// The bindings of the whole notebook and the sharing between them.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    nodes: Vec<Span>,
    pub(crate) sharing: Sharing,
}

impl Bindings {
    pub(crate) fn sym(&self, node: Node) -> Sym {
        self.nodes[node as usize].sym
    }

    /// Is `node` the binding its name has right after unit `u` ran?
    pub(crate) fn live_after(&self, node: Node, u: usize) -> bool {
        let b = &self.nodes[node as usize];
        b.start <= u && u < b.end
    }

    fn push(&mut self, sym: Sym, start: usize, end: usize) -> Node {
        let node = Node::try_from(self.nodes.len()).expect("fewer than 2^32 bindings");
        self.nodes.push(Span { sym, start, end });
        node
    }
}

/// Resolves every unit in notebook order: per-unit effects, and the bindings they share.
pub(crate) fn resolve(units: &[Unit], names: &Interner) -> (Vec<Resolved>, Bindings) {
    let mut pass = Forward {
        units,
        names,
        bindings: FxHashMap::default(),
    };
    let mut graph = Bindings::default();
    let mut current: FxHashMap<Sym, Node> = FxHashMap::default();
    let mut resolved = Vec::with_capacity(units.len());
    for (u, unit) in units.iter().enumerate() {
        let mut effects = Effects::default();
        let mut visiting = Vec::new();
        for call in &unit.facts.calls {
            pass.call(call, None, &mut effects, &mut visiting);
        }
        let mut reads = effects.reads;
        reads.sort_unstable();
        reads.dedup();

        // New bindings first: what the statement binds, its edges and changes refer to.
        for def in &unit.facts.defs {
            let node = graph.push(def.name, u, usize::MAX);
            if let Some(old) = current.insert(def.name, node) {
                graph.nodes[old as usize].end = u;
                if !def.strong {
                    // The old value may survive a conditional binding.
                    graph.sharing.add(old, node);
                    graph.sharing.add(node, old);
                }
            }
            let binding = match def.kind {
                DefKind::Import => Binding::Import,
                DefKind::Function(index) => Binding::Function(u, index),
                DefKind::Class => Binding::Class,
                DefKind::Value => unit
                    .facts
                    .method_aliases
                    .iter()
                    .find(|(name, _, _)| *name == def.name)
                    .map_or(Binding::Value, |&(_, root, method)| {
                        Binding::Method(root, method)
                    }),
                DefKind::Delete => {
                    pass.bindings.remove(&def.name);
                    continue;
                }
            };
            pass.bindings.insert(def.name, binding);
        }
        let mut scratch: FxHashMap<Sym, Node> = FxHashMap::default();
        for &sym in &unit.facts.scratch {
            scratch.insert(sym, graph.push(sym, usize::MAX, 0));
        }
        let mut node_of = |sym: Sym, graph: &mut Bindings| -> Node {
            if let Some(&node) = scratch.get(&sym) {
                return node;
            }
            *current
                .entry(sym)
                .or_insert_with(|| graph.push(sym, 0, usize::MAX))
        };
        for &(part, whole) in unit.facts.aliases.iter().chain(&effects.edges) {
            if pass.may_hold_objects(part) && pass.may_hold_objects(whole) {
                let (part, whole) = (node_of(part, &mut graph), node_of(whole, &mut graph));
                graph.sharing.add(part, whole);
            }
        }
        let mut mods: Vec<(Node, bool)> = unit
            .facts
            .mutated
            .iter()
            .map(|&m| (m, false))
            .chain(effects.mods)
            .map(|(m, deep)| (node_of(m, &mut graph), deep))
            .collect();
        mods.sort_unstable();
        // A deep change subsumes a shallow one of the same binding.
        mods.dedup_by(|later, earlier| {
            later.0 == earlier.0 && {
                earlier.1 |= later.1;
                true
            }
        });
        let reads_any = pass.any_dynamic(&unit.facts.dynamic_now, None) || effects.reads_any;
        // Only a dynamic read needs them; most statements have none.
        let hints = if reads_any {
            unit.facts
                .hints
                .iter()
                .chain(&effects.hints)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        resolved.push(Resolved {
            mods,
            reads,
            reads_any,
            hints,
            any_name: pass.any_dynamic(&unit.facts.dynamic_now, None),
        });
    }
    (resolved, graph)
}

struct Forward<'u> {
    units: &'u [Unit],
    names: &'u Interner,
    bindings: FxHashMap<Sym, Binding>,
}

impl Forward<'_> {
    /// Modules, notebook functions, classes and builtins are shared by everyone: edges
    /// through them would connect every name of the notebook.
    fn may_hold_objects(&self, name: Sym) -> bool {
        match self.bindings.get(&name) {
            Some(Binding::Value) => true,
            Some(_) => false,
            None => !is_builtin(self.names.name(name)),
        }
    }

    /// Is one of these calls of `eval`/`globals()`/... a call of the builtin, not of a
    /// notebook function that happens to have its name?
    fn any_dynamic(&self, builtins: &[Sym], local: Option<&FnSummary>) -> bool {
        builtins.iter().any(|&b| self.binding(b, local).is_none())
    }

    /// Can a call change the object `arg` names? Functions, classes, modules and method
    /// aliases passed as arguments are called or read, not changed (`timeit(f)`,
    /// `map(normalize, words)`); a function's attributes change only through stores.
    fn changeable(&self, arg: Sym, local: Option<&FnSummary>) -> bool {
        match self.binding(arg, local) {
            Some(Binding::Value) => true,
            Some(_) => false,
            None => !is_builtin(self.names.name(arg)),
        }
    }

    fn binding(&self, name: Sym, local: Option<&FnSummary>) -> Option<Binding> {
        if local.is_some_and(|f| f.locals.contains(&name)) {
            return Some(Binding::Value);
        }
        self.bindings.get(&name).copied()
    }

    fn call(
        &self,
        call: &Call,
        local: Option<&FnSummary>,
        out: &mut Effects,
        visiting: &mut Vec<(usize, usize)>,
    ) {
        let all_args = |deep: bool| {
            call.bare_args()
                .filter(move |&arg| self.changeable(arg, local))
                .map(move |arg| (arg, deep))
        };
        let mods_before = out.mods.len();
        match call.callee {
            Callee::Name(name) => match self.binding(name, local) {
                Some(Binding::Function(u, i)) => {
                    let f = &self.units[u].facts.functions[i];
                    let fx = self.function(u, i, visiting);
                    out.mods.extend(&fx.global_mods);
                    out.reads.extend(&fx.reads);
                    out.reads_any |= fx.reads_any;
                    out.hints.extend(fx.hints);
                    let changed = |param: Sym| fx.param_mods.iter().find(|(p, _)| *p == param);
                    for (pos, arg) in call.positional.iter().enumerate() {
                        if let (Some(arg), Some(&param)) = (arg, f.params.get(pos)) {
                            if let Some(&(_, deep)) = changed(param) {
                                out.mods.push((*arg, deep));
                            }
                        }
                    }
                    for &(keyword, arg) in &call.keywords {
                        if let Some(&(_, deep)) = changed(keyword) {
                            out.mods.push((arg, deep));
                        }
                    }
                    if !fx.param_mods.is_empty() {
                        out.mods.extend(call.starred.iter().map(|&s| (s, true)));
                    }
                }
                Some(Binding::Import) => {
                    if mutates_arguments(self.names.name(name)) {
                        out.mods.extend(all_args(false));
                    }
                }
                Some(Binding::Class) => {}
                Some(Binding::Method(root, method)) => {
                    self.method_call(root, method, call, local, out);
                }
                Some(Binding::Value) => {
                    // A callable object (a torch module in training mode, a closure with
                    // state): it may change itself and what it is given.
                    out.mods.push((name, true));
                    out.mods.extend(all_args(true));
                }
                None => {
                    let text = self.names.name(name);
                    if ARG_MUTATING_BUILTINS.contains(&text) {
                        out.mods.extend(
                            call.positional
                                .first()
                                .copied()
                                .flatten()
                                .map(|a| (a, false)),
                        );
                    } else if !is_builtin(text) {
                        out.mods.extend(all_args(true));
                    }
                }
            },
            Callee::Method { root, method } => {
                self.method_call(Some(root), method, call, local, out);
            }
            Callee::Other => {}
        }
        // What the arguments are bound to decides, not just the callee: a function, a
        // class or a module handed to a call is not changed by it.
        let mut i = mods_before;
        while i < out.mods.len() {
            let (sym, _) = out.mods[i];
            let is_arg = call.bare_args().any(|a| a == sym);
            if is_arg && !self.changeable(sym, local) {
                out.mods.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// `root.….method(...)`; `root` is `None` for a literal receiver (`''.join`), which is a
    /// fresh object no name holds.
    fn method_call(
        &self,
        root: Option<Sym>,
        method: Sym,
        call: &Call,
        local: Option<&FnSummary>,
        out: &mut Effects,
    ) {
        let method = self.names.name(method);
        if let Some(root) = root {
            let change = match self.binding(root, local) {
                Some(Binding::Import) => (call.inplace || is_config_call(method)).then_some(false),
                _ if is_container_method(method) => Some(false),
                _ => (call.inplace || !is_pure_method(method)).then_some(true),
            };
            if let Some(deep) = change {
                out.mods.push((root, deep));
                out.edges
                    .extend(call.arg_roots.iter().map(|&arg| (arg, root)));
            }
        }
        if mutates_arguments(method) {
            out.mods.extend(
                call.bare_args()
                    .filter(|&arg| self.changeable(arg, local))
                    .map(|arg| (arg, false)),
            );
        }
    }

    /// What calling the notebook function `(unit, index)` does, as bound right now.
    fn function(&self, u: usize, i: usize, visiting: &mut Vec<(usize, usize)>) -> FnEffects {
        let f = &self.units[u].facts.functions[i];
        let mut fx = FnEffects {
            global_mods: f.global_writes.iter().map(|&g| (g, false)).collect(),
            param_mods: Vec::new(),
            reads: f.free.clone(),
            reads_any: self.any_dynamic(&f.dynamic, Some(f)),
            hints: Vec::new(),
        };
        // Recursion: the first visit accounts for the whole cycle.
        if visiting.contains(&(u, i)) {
            if fx.reads_any {
                fx.hints.clone_from(&f.hints);
            }
            return fx;
        }
        visiting.push((u, i));
        let mut effects = Effects::default();
        for call in &f.calls {
            self.call(call, Some(f), &mut effects, visiting);
        }
        visiting.pop();
        fx.reads.extend(effects.reads);
        fx.reads_any |= effects.reads_any;
        if fx.reads_any {
            fx.hints = f.hints.iter().cloned().chain(effects.hints).collect();
        }
        let mut local: Sharing<Sym> = Sharing::new();
        let holds = |name: Sym| f.locals.contains(&name) || self.may_hold_objects(name);
        for &(part, whole) in f.aliases.iter().chain(&effects.edges) {
            if holds(part) && holds(whole) {
                local.add(part, whole);
            }
        }
        let changes = f.stores.iter().map(|&s| (s, false)).chain(effects.mods);
        for (changed, deep) in changes {
            for name in local.reach(changed, deep) {
                let entry = (name, deep);
                if f.params.contains(&name) || f.kwonly.contains(&name) {
                    fx.param_mods.push(entry);
                } else if !f.locals.contains(&name) {
                    fx.global_mods.push(entry);
                }
            }
        }
        fx
    }
}
