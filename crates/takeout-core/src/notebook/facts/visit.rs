//! The statements and expressions themselves: definitions and their scopes, calls, imports
//! and `IPython` escapes.

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{self as ast, Expr, ExprContext, IpyEscapeKind, Pattern, PySourceType, Stmt};
use ruff_python_parser::{parse_expression, parse_unchecked_source};
use ruff_text_size::{Ranged, TextRange};

use super::super::ipython::{self, Effect};
use super::super::names::DYNAMIC_BUILTINS;
use super::scope::{ScopeKind, Walker, MODULE};
use super::{Call, Callee, DefKind, FnSummary, Import, NameHint, Rel, Sym};

impl Walker<'_> {
    // ── scopes ─────────────────────────────────────────────────────────────────────────────

    pub(super) fn parameters(&mut self, params: &ast::Parameters) {
        let scope = self.cur;
        for p in params.posonlyargs.iter().chain(&params.args) {
            let sym = self.sym(&p.parameter.name);
            self.scopes[scope].params.push(sym);
            self.scopes[scope].bound.insert(sym);
        }
        for p in &params.kwonlyargs {
            let sym = self.sym(&p.parameter.name);
            self.scopes[scope].kwonly.push(sym);
            self.scopes[scope].bound.insert(sym);
        }
        for p in params.vararg.iter().chain(&params.kwarg) {
            let sym = self.sym(&p.name);
            self.scopes[scope].bound.insert(sym);
        }
    }

    pub(super) fn parameter_defaults(&mut self, params: &ast::Parameters) {
        for p in params
            .posonlyargs
            .iter()
            .chain(&params.args)
            .chain(&params.kwonlyargs)
        {
            if let Some(default) = &p.default {
                self.visit_expr(default);
            }
        }
    }

    pub(super) fn parameter_annotations(&mut self, params: &ast::Parameters) {
        for p in params
            .posonlyargs
            .iter()
            .chain(&params.args)
            .chain(&params.kwonlyargs)
        {
            if let Some(annotation) = &p.parameter.annotation {
                self.visit_expr(annotation);
            }
        }
        for p in params.vararg.iter().chain(&params.kwarg) {
            if let Some(annotation) = &p.annotation {
                self.visit_expr(annotation);
            }
        }
    }

    /// Opens the annotation scope of PEP 695 type parameters, binding them in it.
    pub(super) fn type_params(&mut self, type_params: Option<&ast::TypeParams>) {
        let Some(type_params) = type_params else {
            return;
        };
        self.push_scope(ScopeKind::Comprehension);
        for param in &type_params.type_params {
            let (name, bound, default) = match param {
                ast::TypeParam::TypeVar(tv) => {
                    (&tv.name, tv.bound.as_deref(), tv.default.as_deref())
                }
                ast::TypeParam::TypeVarTuple(tv) => (&tv.name, None, tv.default.as_deref()),
                ast::TypeParam::ParamSpec(ps) => (&ps.name, None, ps.default.as_deref()),
            };
            let sym = self.sym(name);
            self.scopes[self.cur].bound.insert(sym);
            for expr in bound.into_iter().chain(default) {
                self.visit_expr(expr);
            }
        }
    }

    pub(super) fn function_def(&mut self, def: &ast::StmtFunctionDef) {
        let outer = self.cur;
        for decorator in &def.decorator_list {
            self.visit_expr(&decorator.expression);
        }
        self.parameter_defaults(&def.parameters);
        self.type_params(def.type_params.as_deref());
        self.parameter_annotations(&def.parameters);
        if let Some(returns) = &def.returns {
            self.visit_expr(returns);
        }
        let scope = self.push_scope(ScopeKind::Function);
        self.parameters(&def.parameters);
        let kind = if outer == MODULE {
            let index = self.facts.functions.len();
            self.facts.functions.push(FnSummary::default());
            self.scopes[scope].summary = Some(index);
            DefKind::Function(index)
        } else {
            DefKind::Value
        };
        self.visit_body(&def.body);
        self.cur = outer;
        if let DefKind::Function(index) = kind {
            let name = self.sym(&def.name);
            self.facts.functions[index].name = name;
        }
        self.bind(&def.name, kind);
    }

    pub(super) fn class_def(&mut self, def: &ast::StmtClassDef) {
        let outer = self.cur;
        for decorator in &def.decorator_list {
            self.visit_expr(&decorator.expression);
        }
        self.type_params(def.type_params.as_deref());
        if let Some(arguments) = &def.arguments {
            self.visit_arguments(arguments);
        }
        self.push_scope(ScopeKind::Class);
        self.visit_body(&def.body);
        self.cur = outer;
        self.bind(&def.name, DefKind::Class);
    }

    pub(super) fn comprehension(&mut self, generators: &[ast::Comprehension], elts: &[&Expr]) {
        let outer = self.cur;
        let Some(first) = generators.first() else {
            return;
        };
        self.visit_expr(&first.iter);
        self.push_scope(ScopeKind::Comprehension);
        for (i, generator) in generators.iter().enumerate() {
            if i > 0 {
                self.visit_expr(&generator.iter);
            }
            self.loop_target(&generator.target, &generator.iter);
            for cond in &generator.ifs {
                self.visit_expr(cond);
            }
        }
        for elt in elts {
            self.visit_expr(elt);
        }
        self.cur = outer;
    }

    /// Visits one branch of an `if` or `try` as conditional code; returns the module-level
    /// names it binds, each with the kind of its last binding.
    pub(super) fn branch(&mut self, bodies: &[&[Stmt]]) -> Vec<(Sym, DefKind)> {
        let before = self.facts.defs.len();
        for body in bodies {
            self.conditional_body(body);
        }
        self.facts.defs[before..]
            .iter()
            .filter(|d| d.kind != DefKind::Delete)
            .map(|d| (d.name, d.kind))
            .collect()
    }

    /// Names bound on every branch of a statement that takes one branch for sure are bound
    /// unconditionally by it (when the statement itself is).
    pub(super) fn bound_on_every_path(&mut self, branches: Vec<Vec<(Sym, DefKind)>>) {
        if self.conditional > 0 || self.cur != MODULE {
            return;
        }
        let Some((first, rest)) = branches.split_first() else {
            return;
        };
        let mut seen = Vec::new();
        for &(name, kind) in first.iter().rev() {
            if seen.contains(&name) || !rest.iter().all(|b| b.iter().any(|(n, _)| *n == name)) {
                continue;
            }
            seen.push(name);
            self.facts.defs.push(super::Def {
                name,
                strong: true,
                kind,
            });
        }
    }

    pub(super) fn conditional_body(&mut self, body: &[Stmt]) {
        self.conditional += 1;
        self.visit_body(body);
        self.conditional -= 1;
    }

    // ── calls and imports ──────────────────────────────────────────────────────────────────

    pub(super) fn call(&mut self, call: &ast::ExprCall) {
        let callee = match &*call.func {
            Expr::Name(name) => {
                if DYNAMIC_BUILTINS.contains(&name.id.as_str()) {
                    self.dynamic_call(&name.id, call);
                }
                Callee::Name(self.sym(&name.id))
            }
            Expr::Attribute(attr) => match self.chain_root(&attr.value) {
                Some(root) if attr.attr.as_str() == "chdir" && self.effect_scope() == MODULE => {
                    self.facts.chdir = Some("`chdir(…)`".into());
                    Callee::Method {
                        root,
                        method: self.sym(&attr.attr),
                    }
                }
                Some(root) => Callee::Method {
                    root,
                    method: self.sym(&attr.attr),
                },
                None => Callee::Other,
            },
            _ => Callee::Other,
        };
        let mut record = Call {
            callee,
            positional: Vec::new(),
            keywords: Vec::new(),
            starred: Vec::new(),
            arg_roots: Vec::new(),
            inplace: false,
        };
        for arg in &call.arguments.args {
            match arg {
                Expr::Name(name) => {
                    let sym = self.sym(&name.id);
                    record.positional.push(Some(sym));
                }
                Expr::Starred(starred) => {
                    if let Expr::Name(name) = &*starred.value {
                        let sym = self.sym(&name.id);
                        record.starred.push(sym);
                    }
                    record.positional.push(None);
                }
                _ => record.positional.push(None),
            }
            let mut roots = Vec::new();
            self.ref_roots(arg, Rel::Same, &mut roots);
            record
                .arg_roots
                .extend(roots.into_iter().map(|(name, _)| name));
        }
        for kw in &call.arguments.keywords {
            match (&kw.arg, &kw.value) {
                (Some(arg), Expr::Name(name)) => {
                    let pair = (self.sym(arg), self.sym(&name.id));
                    record.keywords.push(pair);
                }
                (None, Expr::Name(name)) => {
                    let sym = self.sym(&name.id);
                    record.starred.push(sym);
                }
                (Some(arg), Expr::BooleanLiteral(b)) if arg.as_str() == "inplace" && b.value => {
                    record.inplace = true;
                }
                _ => {}
            }
            let mut roots = Vec::new();
            self.ref_roots(&kw.value, Rel::Same, &mut roots);
            record
                .arg_roots
                .extend(roots.into_iter().map(|(name, _)| name));
        }
        self.dynamic_import(call);
        let s = self.effect_scope();
        if s == MODULE {
            self.facts.calls.push(record);
        } else {
            self.scopes[s].calls.push(record);
        }
    }

    /// `eval`/`exec` of a literal are read as the code they run; of anything else, and
    /// `globals()`/`locals()`/`vars()` without arguments, read names the parser cannot see.
    /// `vars(obj)` only reads `obj`; `eval(code, namespace)` reads only the namespace it is
    /// given (its own argument, read as such); `locals()`/`vars()` in a function body read
    /// that function's locals.
    pub(super) fn dynamic_call(&mut self, builtin: &str, call: &ast::ExprCall) {
        let args = &call.arguments;
        let sym = self.sym(builtin);
        let given_globals = args.args.len() > 1
            || args
                .keywords
                .iter()
                .any(|k| k.arg.as_deref() == Some("globals"));
        match builtin {
            "eval" | "exec" if given_globals => {}
            "locals" | "vars" if self.effect_scope() != MODULE => {}
            "eval" | "exec" => {
                if let Some(Expr::StringLiteral(code)) = args.args.first() {
                    let code = code.value.to_str().to_owned();
                    if builtin == "eval" {
                        if let Ok(parsed) = parse_expression(code.trim()) {
                            self.visit_expr(&parsed.syntax().body);
                            return;
                        }
                    } else {
                        let parsed = parse_unchecked_source(&code, PySourceType::Python);
                        if parsed.errors().is_empty() {
                            let saved = self.escape_range.replace(call.range());
                            for stmt in &parsed.syntax().body {
                                self.visit_stmt(stmt);
                            }
                            self.escape_range = saved;
                            return;
                        }
                    }
                }
                self.mark_dynamic(sym);
            }
            _ if args.args.is_empty() && args.keywords.is_empty() => self.mark_dynamic(sym),
            _ => {}
        }
    }

    /// A string that may be a name (`"solve_bfs"`), or a template of one (`"solve_{}"`,
    /// `"solve_%s"`): what a dynamic read could look up with it.
    pub(super) fn string_hint(&mut self, text: &str) {
        if is_identifier(text) {
            self.hint(NameHint::Exact(text.to_owned()));
        } else if let Some(at) = text.find(['{', '%']) {
            self.affix_hint(&text[..at], true);
            // `%s` ends anywhere, so only a `{}` template has a known literal end.
            if let Some(end) = text.rfind('}').filter(|&e| e > at) {
                self.affix_hint(&text[end + 1..], false);
            }
        }
    }

    /// The literal start (or end) of a string built at run time.
    pub(super) fn affix_hint(&mut self, text: &str, start: bool) {
        let ok = if start {
            is_identifier(text)
        } else {
            !text.is_empty() && text.chars().all(|c| c == '_' || c.is_alphanumeric())
        };
        if ok {
            self.hint(if start {
                NameHint::Prefix(text.to_owned())
            } else {
                NameHint::Suffix(text.to_owned())
            });
        }
    }

    /// `importlib.import_module("m")`, `import_module("m")`, `__import__("m")`.
    pub(super) fn dynamic_import(&mut self, call: &ast::ExprCall) {
        let name = match &*call.func {
            Expr::Name(name) => name.id.as_str(),
            Expr::Attribute(attr) => attr.attr.as_str(),
            _ => return,
        };
        if !matches!(name, "import_module" | "__import__") {
            return;
        }
        if let Some(Expr::StringLiteral(module)) = call.arguments.args.first() {
            let module = module.value.to_str().to_owned();
            self.import(module, 0, Vec::new(), call.range());
        }
    }

    pub(super) fn import(
        &mut self,
        module: String,
        level: u32,
        names: Vec<String>,
        range: TextRange,
    ) {
        let deferred = self.effect_scope() != MODULE;
        self.facts.imports.push(Import {
            module,
            level,
            names,
            range: self.escape_range.unwrap_or(range),
            deferred,
        });
    }

    // ── IPython ────────────────────────────────────────────────────────────────────────────

    pub(super) fn escape(
        &mut self,
        kind: IpyEscapeKind,
        value: &str,
        range: TextRange,
        statement: bool,
    ) {
        match kind {
            IpyEscapeKind::Help | IpyEscapeKind::Help2 => {}
            IpyEscapeKind::Magic | IpyEscapeKind::Magic2 => match ipython::line_magic(value) {
                Effect::Display => {}
                Effect::Python(code) => self.python_text(code, range),
                Effect::Opaque => {
                    self.interpolated(value);
                    self.any_name(format!("`%{}`", short(value)));
                    let name = value.split_whitespace().next().unwrap_or("");
                    if ipython::is_unknown_magic(name) && self.effect_scope() == MODULE {
                        self.facts.unknown_magic = Some(format!("`%{name}`"));
                    }
                }
                Effect::Extension => {
                    if self.effect_scope() == MODULE {
                        self.facts.loads_extension = true;
                    }
                }
                Effect::Chdir => {
                    self.interpolated(value);
                    if self.effect_scope() == MODULE {
                        self.facts.chdir = Some(format!("`%{}`", short(value)));
                    }
                }
                Effect::Shell => {
                    self.interpolated(value);
                    if statement {
                        self.shell(format!("`%{}`", short(value)));
                    }
                }
            },
            IpyEscapeKind::Shell | IpyEscapeKind::ShCap => {
                self.interpolated(value);
                // `files = !ls` is an assignment like any other.
                if statement {
                    self.shell(format!("`!{}`", short(value)));
                }
            }
            IpyEscapeKind::Quote | IpyEscapeKind::Quote2 | IpyEscapeKind::Paren => {
                // `/f a b` calls `f`: what it does is unknown.
                if let Some(callee) = value.split_whitespace().next() {
                    if let Ok(parsed) = parse_expression(callee) {
                        self.visit_expr(&parsed.syntax().body);
                    }
                }
                self.any_name(format!("`{}`", short(value)));
            }
        }
    }

    pub(super) fn interpolated(&mut self, text: &str) {
        for (snippet, dollar) in ipython::interpolations(text) {
            if dollar {
                let sym = self.sym(snippet);
                if self.effect_scope() == MODULE && !self.module_bound.contains(&sym) {
                    self.facts.soft_uses.push(sym);
                }
            } else if let Ok(parsed) = parse_expression(snippet.trim()) {
                self.visit_expr(&parsed.syntax().body);
            }
        }
    }

    pub(super) fn shell(&mut self, why: String) {
        if self.effect_scope() == MODULE && self.facts.shell.is_none() {
            self.facts.shell = Some(why);
        }
    }

    /// Python code carried by a magic (`%time x = f()`), analysed in place.
    pub(super) fn python_text(&mut self, code: &str, range: TextRange) {
        let parsed = parse_unchecked_source(code.trim(), PySourceType::Ipynb);
        if !parsed.errors().is_empty() {
            self.any_name(format!("`%{}`", short(code)));
            return;
        }
        let saved = self.escape_range.replace(range);
        for stmt in &parsed.syntax().body {
            self.visit_stmt(stmt);
        }
        self.escape_range = saved;
    }
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

fn short(text: &str) -> String {
    let text = text.trim();
    let first = text.lines().next().unwrap_or("");
    if first.chars().count() > 60 || first.len() < text.len() {
        format!("{}…", first.chars().take(57).collect::<String>())
    } else {
        first.to_owned()
    }
}

impl<'a> Visitor<'a> for Walker<'_> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::FunctionDef(def) => self.function_def(def),
            Stmt::ClassDef(def) => self.class_def(def),
            Stmt::Assign(assign) => {
                if let ([Expr::Name(target)], Expr::Attribute(attr)) =
                    (assign.targets.as_slice(), &*assign.value)
                {
                    if self.cur == MODULE {
                        let root = self.chain_root(&attr.value);
                        let (name, method) = (self.sym(&target.id), self.sym(&attr.attr));
                        self.facts.method_aliases.push((name, root, method));
                    }
                }
                self.visit_expr(&assign.value);
                for target in &assign.targets {
                    self.assign(target, Some(&assign.value));
                }
            }
            Stmt::AnnAssign(assign) => {
                self.visit_expr(&assign.annotation);
                if let Some(value) = &assign.value {
                    self.visit_expr(value);
                    self.assign(&assign.target, Some(value));
                } else if let Expr::Name(name) = &*assign.target {
                    // `x: int` makes `x` local to a function without binding it.
                    if self.cur != MODULE {
                        let sym = self.sym(&name.id);
                        self.scopes[self.cur].bound.insert(sym);
                    }
                }
            }
            Stmt::AugAssign(assign) => {
                match &*assign.target {
                    Expr::Name(name) => self.load(&name.id),
                    Expr::Attribute(_) | Expr::Subscript(_) => {}
                    other => self.visit_expr(other),
                }
                self.visit_expr(&assign.value);
                self.assign(&assign.target, Some(&assign.value));
            }
            Stmt::Delete(delete) => {
                for target in &delete.targets {
                    match target {
                        Expr::Name(name) => self.bind(&name.id, DefKind::Delete),
                        other => self.target(other, DefKind::Delete),
                    }
                }
            }
            Stmt::TypeAlias(alias) => {
                let outer = self.cur;
                // The value is evaluated lazily, like a function body.
                self.push_scope(ScopeKind::Lambda);
                self.type_params(alias.type_params.as_deref());
                self.visit_expr(&alias.value);
                self.cur = outer;
                if let Expr::Name(name) = &*alias.name {
                    self.bind(&name.id, DefKind::Value);
                }
            }
            Stmt::For(stmt) => {
                self.visit_expr(&stmt.iter);
                self.conditional += 1;
                self.loop_target(&stmt.target, &stmt.iter);
                self.visit_body(&stmt.body);
                self.visit_body(&stmt.orelse);
                self.conditional -= 1;
            }
            Stmt::While(stmt) => {
                self.visit_expr(&stmt.test);
                self.conditional_body(&stmt.body);
                self.conditional_body(&stmt.orelse);
            }
            Stmt::If(stmt) => {
                self.visit_expr(&stmt.test);
                let mut branches = vec![self.branch(&[&stmt.body])];
                for clause in &stmt.elif_else_clauses {
                    if let Some(test) = &clause.test {
                        self.visit_expr(test);
                    }
                    branches.push(self.branch(&[&clause.body]));
                }
                let exhaustive = stmt
                    .elif_else_clauses
                    .last()
                    .is_some_and(|c| c.test.is_none());
                if exhaustive {
                    self.bound_on_every_path(branches);
                }
            }
            Stmt::With(stmt) => {
                for item in &stmt.items {
                    self.visit_expr(&item.context_expr);
                    if let Some(vars) = &item.optional_vars {
                        self.assign(vars, Some(&item.context_expr));
                    }
                }
                self.visit_body(&stmt.body);
            }
            Stmt::Try(stmt) => {
                // `try: import ujson as json` / `except ImportError: import json`: bound
                // either way, so as good as unconditional.
                let mut branches = vec![self.branch(&[&stmt.body, &stmt.orelse])];
                self.conditional += 1;
                for handler in &stmt.handlers {
                    let ast::ExceptHandler::ExceptHandler(handler) = handler;
                    if let Some(type_) = &handler.type_ {
                        self.visit_expr(type_);
                    }
                    if let Some(name) = &handler.name {
                        // Unbound again when the handler ends: no module-level definition.
                        let sym = self.sym(name);
                        if self.cur == MODULE {
                            self.module_bound.insert(sym);
                        } else {
                            self.scopes[self.cur].bound.insert(sym);
                        }
                    }
                    self.conditional -= 1;
                    branches.push(self.branch(&[&handler.body]));
                    self.conditional += 1;
                }
                self.visit_body(&stmt.finalbody);
                self.conditional -= 1;
                if !stmt.handlers.is_empty() {
                    self.bound_on_every_path(branches);
                }
            }
            Stmt::Match(stmt) => {
                self.visit_expr(&stmt.subject);
                self.conditional += 1;
                for case in &stmt.cases {
                    self.visit_pattern(&case.pattern);
                    if let Some(guard) = &case.guard {
                        self.visit_expr(guard);
                    }
                    self.visit_body(&case.body);
                }
                self.conditional -= 1;
            }
            Stmt::Import(import) => {
                for alias in &import.names {
                    let module = alias.name.as_str();
                    let bound = alias.asname.as_ref().map_or_else(
                        || module.split('.').next().unwrap_or(module),
                        |a| a.as_str(),
                    );
                    self.bind(bound, DefKind::Import);
                    self.import(module.to_owned(), 0, Vec::new(), import.range);
                }
            }
            Stmt::ImportFrom(import) => {
                let module = import.module.as_ref().map_or("", |m| m.as_str()).to_owned();
                let mut names = Vec::new();
                for alias in &import.names {
                    if alias.name.as_str() == "*" {
                        self.any_name(format!("`from {module} import *`"));
                    } else {
                        let bound = alias.asname.as_ref().unwrap_or(&alias.name).as_str();
                        self.bind(bound, DefKind::Import);
                    }
                    names.push(alias.name.to_string());
                }
                self.import(module, import.level, names, import.range);
            }
            Stmt::Global(global) => {
                if self.cur != MODULE {
                    for name in &global.names {
                        let sym = self.sym(name);
                        self.scopes[self.cur].globals.insert(sym);
                    }
                }
            }
            Stmt::Nonlocal(nonlocal) => {
                for name in &nonlocal.names {
                    let sym = self.sym(name);
                    self.scopes[self.cur].nonlocals.insert(sym);
                }
            }
            Stmt::IpyEscapeCommand(escape) => {
                self.escape(escape.kind, &escape.value, escape.range, true);
            }
            _ => visitor::walk_stmt(self, stmt),
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Name(name) => match name.ctx {
                ExprContext::Load | ExprContext::Invalid => self.load(&name.id),
                ExprContext::Store => self.bind(&name.id, DefKind::Value),
                ExprContext::Del => self.bind(&name.id, DefKind::Delete),
            },
            Expr::Named(named) => {
                self.visit_expr(&named.value);
                if let Expr::Name(name) = &*named.target {
                    // PEP 572: binds in the nearest enclosing non-comprehension scope.
                    let mut s = self.cur;
                    while self.scopes[s].kind == ScopeKind::Comprehension && s != MODULE {
                        s = self.scopes[s].parent;
                    }
                    let sym = self.sym(&name.id);
                    self.bind_sym_in(s, sym, DefKind::Value, true);
                    let mut roots = Vec::new();
                    self.ref_roots(&named.value, Rel::Same, &mut roots);
                    self.relate(sym, &roots);
                }
            }
            Expr::Lambda(lambda) => {
                if let Some(params) = &lambda.parameters {
                    self.parameter_defaults(params);
                }
                let outer = self.cur;
                self.push_scope(ScopeKind::Lambda);
                if let Some(params) = &lambda.parameters {
                    self.parameters(params);
                }
                self.visit_expr(&lambda.body);
                self.cur = outer;
            }
            Expr::ListComp(comp) => self.comprehension(&comp.generators, &[&comp.elt]),
            Expr::SetComp(comp) => self.comprehension(&comp.generators, &[&comp.elt]),
            Expr::Generator(comp) => self.comprehension(&comp.generators, &[&comp.elt]),
            Expr::DictComp(comp) => match &comp.key {
                Some(key) => self.comprehension(&comp.generators, &[key, &comp.value]),
                None => self.comprehension(&comp.generators, &[&comp.value]),
            },
            Expr::Call(call) => {
                self.call(call);
                visitor::walk_expr(self, expr);
            }
            Expr::IpyEscapeCommand(escape) => {
                self.escape(escape.kind, &escape.value, escape.range, false);
            }
            Expr::StringLiteral(literal) => self.string_hint(literal.value.to_str()),
            Expr::FString(fstring) => {
                let mut parts = fstring.value.elements();
                if let Some(ast::InterpolatedStringElement::Literal(first)) = parts.next() {
                    self.affix_hint(&first.value, true);
                }
                if let Some(ast::InterpolatedStringElement::Literal(last)) =
                    fstring.value.elements().last()
                {
                    self.affix_hint(&last.value, false);
                }
                visitor::walk_expr(self, expr);
            }
            Expr::BinOp(binop) if binop.op == ast::Operator::Add => {
                if let Expr::StringLiteral(left) = &*binop.left {
                    self.affix_hint(left.value.to_str(), true);
                }
                if let Expr::StringLiteral(right) = &*binop.right {
                    self.affix_hint(right.value.to_str(), false);
                }
                visitor::walk_expr(self, expr);
            }
            _ => visitor::walk_expr(self, expr),
        }
    }

    fn visit_pattern(&mut self, pattern: &'a Pattern) {
        match pattern {
            Pattern::MatchAs(ast::PatternMatchAs {
                name: Some(name), ..
            })
            | Pattern::MatchStar(ast::PatternMatchStar {
                name: Some(name), ..
            })
            | Pattern::MatchMapping(ast::PatternMatchMapping {
                rest: Some(name), ..
            }) => self.bind(name, DefKind::Value),
            _ => {}
        }
        visitor::walk_pattern(self, pattern);
    }
}
