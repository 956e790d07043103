//! The walker's state: a tree of scopes, module-level bindings and reads, and after the walk
//! the resolution of every function's free names (a compile-time decision in Python: a name
//! bound anywhere in a function is local to all of it).

use rustc_hash::FxHashSet;

use super::{Call, Def, DefKind, Facts, Interner, NameHint, Sym};
use ruff_python_ast::Expr;
use ruff_text_size::TextRange;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScopeKind {
    Module,
    Function,
    Lambda,
    Class,
    /// Comprehensions, and the annotation scope of PEP 695 type parameters.
    Comprehension,
}

#[derive(Debug)]
pub(super) struct Scope {
    pub(super) kind: ScopeKind,
    pub(super) parent: usize,
    pub(super) bound: FxHashSet<Sym>,
    pub(super) globals: FxHashSet<Sym>,
    pub(super) nonlocals: FxHashSet<Sym>,
    /// Function scopes only: reads, resolved once every binding of the body is known.
    pub(super) reads: Vec<Sym>,
    pub(super) stores: Vec<Sym>,
    pub(super) calls: Vec<Call>,
    pub(super) aliases: Vec<(Sym, Sym)>,
    pub(super) params: Vec<Sym>,
    pub(super) kwonly: Vec<Sym>,
    pub(super) dynamic: Vec<Sym>,
    pub(super) hints: Vec<NameHint>,
    /// Index into `Facts::functions` for a module-level `def`.
    pub(super) summary: Option<usize>,
}

impl Scope {
    pub(super) fn new(kind: ScopeKind, parent: usize) -> Self {
        Self {
            kind,
            parent,
            bound: FxHashSet::default(),
            globals: FxHashSet::default(),
            nonlocals: FxHashSet::default(),
            reads: Vec::new(),
            stores: Vec::new(),
            calls: Vec::new(),
            aliases: Vec::new(),
            params: Vec::new(),
            kwonly: Vec::new(),
            dynamic: Vec::new(),
            hints: Vec::new(),
            summary: None,
        }
    }

    pub(super) fn is_function(&self) -> bool {
        matches!(self.kind, ScopeKind::Function | ScopeKind::Lambda)
    }
}

pub(super) const MODULE: usize = 0;

pub(super) struct Walker<'n> {
    pub(super) names: &'n mut Interner,
    pub(super) scopes: Vec<Scope>,
    pub(super) cur: usize,
    /// Depth of `if`/`for`/`while`/`try`/`match` bodies around the current module-level code.
    pub(super) conditional: u32,
    /// Module-level names bound so far by this statement: reading one later is not a use.
    pub(super) module_bound: FxHashSet<Sym>,
    pub(super) facts: Facts,
    /// The range reported for imports found inside a magic's Python text.
    pub(super) escape_range: Option<TextRange>,
}

impl<'n> Walker<'n> {
    pub(super) fn new(names: &'n mut Interner) -> Self {
        Walker {
            names,
            scopes: vec![Scope::new(ScopeKind::Module, MODULE)],
            cur: MODULE,
            conditional: 0,
            module_bound: FxHashSet::default(),
            facts: Facts::default(),
            escape_range: None,
        }
    }

    pub(super) fn sym(&mut self, name: &str) -> Sym {
        self.names.intern(name)
    }

    pub(super) fn push_scope(&mut self, kind: ScopeKind) -> usize {
        self.scopes.push(Scope::new(kind, self.cur));
        self.cur = self.scopes.len() - 1;
        self.cur
    }

    /// The nearest function scope, or the module: where calls and stores take effect.
    pub(super) fn effect_scope(&self) -> usize {
        self.effect_scope_of(self.cur)
    }

    pub(super) fn effect_scope_of(&self, mut s: usize) -> usize {
        while s != MODULE && !self.scopes[s].is_function() {
            s = self.scopes[s].parent;
        }
        s
    }

    // ── names ──────────────────────────────────────────────────────────────────────────────

    pub(super) fn bind(&mut self, name: &str, kind: DefKind) {
        let sym = self.sym(name);
        self.bind_sym_in(self.cur, sym, kind, false);
    }

    pub(super) fn bind_sym_in(&mut self, scope: usize, sym: Sym, kind: DefKind, weak: bool) {
        self.scopes[scope].bound.insert(sym);
        if scope == MODULE {
            self.module_bound.insert(sym);
            self.facts.defs.push(Def {
                name: sym,
                strong: self.conditional == 0 && !weak,
                kind,
            });
        }
    }

    pub(super) fn load(&mut self, name: &str) {
        let sym = self.sym(name);
        self.load_sym(sym);
    }

    pub(super) fn load_sym(&mut self, sym: Sym) {
        let mut s = self.cur;
        loop {
            let scope = &mut self.scopes[s];
            match scope.kind {
                ScopeKind::Module => {
                    if !self.module_bound.contains(&sym) {
                        self.facts.uses_now.push(sym);
                    }
                    return;
                }
                ScopeKind::Function | ScopeKind::Lambda => {
                    scope.reads.push(sym);
                    return;
                }
                ScopeKind::Class | ScopeKind::Comprehension => {
                    if scope.bound.contains(&sym) {
                        return;
                    }
                    s = scope.parent;
                }
            }
        }
    }

    pub(super) fn store_on(&mut self, target: &Expr) {
        if let Some(root) = self.chain_root(target) {
            let s = self.effect_scope();
            if s == MODULE {
                self.facts.mutated.push(root);
            } else {
                self.scopes[s].stores.push(root);
            }
        }
    }

    pub(super) fn any_name(&mut self, why: String) {
        if self.effect_scope() == MODULE && self.facts.any_name.is_none() {
            self.facts.any_name = Some(why);
        }
    }

    /// A call of `builtin` (`eval`, `globals`, ...) that reads names the parser cannot see,
    /// unless the notebook binds that name itself (decided in the forward pass).
    pub(super) fn mark_dynamic(&mut self, builtin: Sym) {
        let s = self.effect_scope();
        if s == MODULE {
            self.facts.dynamic_now.push(builtin);
        } else {
            self.scopes[s].dynamic.push(builtin);
        }
    }

    /// A string that may spell a name (see [`NameHint`]); kept where the code runs.
    pub(super) fn hint(&mut self, hint: NameHint) {
        let s = self.effect_scope();
        let hints = if s == MODULE {
            &mut self.facts.hints
        } else {
            &mut self.scopes[s].hints
        };
        // Deduplicated once, in `finish`: a cell may hold thousands of strings.
        hints.push(hint);
    }

    // ── after the walk: resolve function scopes ────────────────────────────────────────────

    pub(super) fn finish(mut self) -> Facts {
        for s in 1..self.scopes.len() {
            if matches!(
                self.scopes[s].kind,
                ScopeKind::Class | ScopeKind::Comprehension
            ) && self.effect_scope_of(s) == MODULE
            {
                self.facts
                    .scratch
                    .extend(self.scopes[s].bound.iter().copied());
            }
        }
        // Children were created after their parents, so walking backwards resolves every
        // nested function before the scope its free names flow into.
        for s in (1..self.scopes.len()).rev() {
            if !self.scopes[s].is_function() {
                continue;
            }
            let top = self.top_function(s);
            let summary = self.scopes[top].summary;
            let scope = &self.scopes[s];
            let locals: FxHashSet<Sym> = scope
                .bound
                .iter()
                .filter(|n| !scope.globals.contains(n) && !scope.nonlocals.contains(n))
                .copied()
                .collect();
            let mut free: Vec<Sym> = scope
                .reads
                .iter()
                .filter(|n| !locals.contains(n))
                .copied()
                .collect();
            free.sort_unstable();
            free.dedup();
            let global_writes: Vec<Sym> = scope
                .globals
                .iter()
                .filter(|n| scope.bound.contains(n))
                .copied()
                .collect();
            let parent = scope.parent;
            let declared_global = scope.globals.clone();
            if let Some(index) = summary {
                let scope = &mut self.scopes[s];
                let stores = std::mem::take(&mut scope.stores);
                let calls = std::mem::take(&mut scope.calls);
                let aliases = std::mem::take(&mut scope.aliases);
                let dynamic = scope.dynamic.clone();
                let hints = std::mem::take(&mut scope.hints);
                let f = &mut self.facts.functions[index];
                f.hints.extend(hints);
                f.global_writes.extend(global_writes);
                f.stores.extend(stores);
                f.calls.extend(calls);
                f.aliases.extend(aliases);
                f.dynamic.extend(dynamic);
                if s == top {
                    f.params.clone_from(&scope.params);
                    f.kwonly.clone_from(&scope.kwonly);
                    f.locals = locals;
                }
            }
            for name in free {
                if declared_global.contains(&name) {
                    self.deliver_global(name, summary);
                } else {
                    self.propagate(name, parent, summary);
                }
            }
        }
        let mut facts = self.facts;
        for f in &mut facts.functions {
            f.free.sort_unstable();
            f.free.dedup();
            f.hints.sort_unstable();
            f.hints.dedup();
        }
        facts.hints.sort_unstable();
        facts.hints.dedup();
        facts.uses_now.sort_unstable();
        facts.uses_now.dedup();
        facts.uses_later.sort_unstable();
        facts.uses_later.dedup();
        facts.scratch.sort_unstable();
        facts.scratch.dedup();
        facts
    }

    /// The outermost function scope that contains `s` (itself included).
    pub(super) fn top_function(&self, mut s: usize) -> usize {
        let mut top = s;
        while s != MODULE {
            if self.scopes[s].is_function() {
                top = s;
            }
            s = self.scopes[s].parent;
        }
        top
    }

    /// A free name of a function, looked up from the scope around it.
    pub(super) fn propagate(&mut self, name: Sym, mut s: usize, summary: Option<usize>) {
        loop {
            let scope = &mut self.scopes[s];
            match scope.kind {
                ScopeKind::Module => return self.deliver_global(name, summary),
                ScopeKind::Class => s = scope.parent,
                ScopeKind::Comprehension => {
                    if scope.bound.contains(&name) {
                        return;
                    }
                    s = scope.parent;
                }
                ScopeKind::Function | ScopeKind::Lambda => {
                    // Resolved when that scope's turn comes (a closure if it binds the name).
                    scope.reads.push(name);
                    return;
                }
            }
        }
    }

    pub(super) fn deliver_global(&mut self, name: Sym, summary: Option<usize>) {
        self.facts.uses_later.push(name);
        if let Some(index) = summary {
            self.facts.functions[index].free.push(name);
        }
    }
}
