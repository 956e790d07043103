//! Assignments, and which names may share objects after one: `trainer = Trainer(model)`
//! makes `model` part of what `trainer` holds, `X = df[cols]` may be a view into `df`.

use ruff_python_ast::visitor::Visitor;
use ruff_python_ast::{self as ast, Expr};

use super::scope::{Walker, MODULE};
use super::{DefKind, Rel, Sym};

impl Walker<'_> {
    /// Records that the object of `part` may be reachable from the object of `whole`.
    pub(super) fn part_of(&mut self, part: Sym, whole: Sym) {
        if part == whole {
            return;
        }
        let s = self.effect_scope();
        if s == MODULE {
            self.facts.aliases.push((part, whole));
        } else {
            self.scopes[s].aliases.push((part, whole));
        }
    }

    /// `target` is now bound to a value related to each root as `Rel` says.
    pub(super) fn relate(&mut self, target: Sym, roots: &[(Sym, Rel)]) {
        for &(root, rel) in roots {
            match rel {
                Rel::Same => {
                    self.part_of(target, root);
                    self.part_of(root, target);
                }
                Rel::Part => self.part_of(target, root),
                Rel::Holds => self.part_of(root, target),
            }
        }
    }

    /// `a.b[c].d` -> `a`.
    pub(super) fn chain_root(&mut self, expr: &Expr) -> Option<Sym> {
        match expr {
            Expr::Name(name) => Some(self.sym(&name.id)),
            Expr::Attribute(attr) => self.chain_root(&attr.value),
            Expr::Subscript(sub) => self.chain_root(&sub.value),
            _ => None,
        }
    }

    /// Names the value of `expr` may be, be part of, or hold (`rel` is how the value of the
    /// whole expression relates to the names it is built from, so far). Arithmetic makes new
    /// objects and contributes nothing; views, receivers, containers and call arguments do.
    pub(super) fn ref_roots(&mut self, expr: &Expr, rel: Rel, out: &mut Vec<(Sym, Rel)>) {
        let part = if rel == Rel::Holds {
            Rel::Holds
        } else {
            Rel::Part
        };
        match expr {
            Expr::Name(name) => out.push((self.sym(&name.id), rel)),
            // `X = df[cols]` and `w = model.coef_` may be views into what they come from.
            Expr::Attribute(ast::ExprAttribute { value, .. })
            | Expr::Subscript(ast::ExprSubscript { value, .. }) => self.ref_roots(value, part, out),
            Expr::Starred(ast::ExprStarred { value, .. })
            | Expr::Await(ast::ExprAwait { value, .. })
            | Expr::Named(ast::ExprNamed { value, .. }) => self.ref_roots(value, rel, out),
            Expr::Call(call) => {
                // `model.fit(X)` returns the model itself; a method's result may be part of
                // its receiver. Whatever is passed in may be kept (`Trainer(model)`).
                if let Expr::Attribute(attr) = &*call.func {
                    self.ref_roots(&attr.value, part, out);
                }
                for arg in &call.arguments.args {
                    self.ref_roots(arg, Rel::Holds, out);
                }
                for kw in &call.arguments.keywords {
                    self.ref_roots(&kw.value, Rel::Holds, out);
                }
            }
            Expr::Tuple(ast::ExprTuple { elts, .. })
            | Expr::List(ast::ExprList { elts, .. })
            | Expr::Set(ast::ExprSet { elts, .. }) => {
                for elt in elts {
                    self.ref_roots(elt, Rel::Holds, out);
                }
            }
            Expr::Dict(dict) => {
                for item in &dict.items {
                    if let Some(key) = &item.key {
                        self.ref_roots(key, Rel::Holds, out);
                    }
                    self.ref_roots(&item.value, Rel::Holds, out);
                }
            }
            Expr::BoolOp(ast::ExprBoolOp { values, .. }) => {
                for value in values {
                    self.ref_roots(value, rel, out);
                }
            }
            Expr::If(ast::ExprIf { body, orelse, .. }) => {
                self.ref_roots(body, rel, out);
                self.ref_roots(orelse, rel, out);
            }
            Expr::ListComp(ast::ExprListComp { generators, .. })
            | Expr::SetComp(ast::ExprSetComp { generators, .. })
            | Expr::DictComp(ast::ExprDictComp { generators, .. })
            | Expr::Generator(ast::ExprGenerator { generators, .. }) => {
                for generator in generators {
                    self.ref_roots(&generator.iter, Rel::Holds, out);
                }
            }
            _ => {}
        }
    }

    /// An assignment target: names are bound, attributes and subscripts change their root.
    pub(super) fn target(&mut self, target: &Expr, kind: DefKind) {
        match target {
            Expr::Name(name) => self.bind(&name.id, kind),
            Expr::Tuple(ast::ExprTuple { elts, .. }) | Expr::List(ast::ExprList { elts, .. }) => {
                for elt in elts {
                    self.target(elt, kind);
                }
            }
            Expr::Starred(starred) => self.target(&starred.value, kind),
            Expr::Attribute(attr) => {
                self.visit_expr(&attr.value);
                self.store_on(target);
            }
            Expr::Subscript(sub) => {
                self.visit_expr(&sub.value);
                self.visit_expr(&sub.slice);
                self.store_on(target);
            }
            other => self.visit_expr(other),
        }
    }

    /// Binds `target` to `value` (already visited) and records what it may share.
    pub(super) fn assign(&mut self, target: &Expr, value: Option<&Expr>) {
        self.target(target, DefKind::Value);
        if let Some(value) = value {
            self.relate_target(target, value, Rel::Same);
        }
    }

    /// `for target in iter` (and comprehension targets): each element is part of the
    /// iterable, or of what a wrapper (`enumerate`, `zip`, `.items()`) iterates over; the
    /// relation is kept both ways rather than worked out.
    pub(super) fn loop_target(&mut self, target: &Expr, iter: &Expr) {
        self.target(target, DefKind::Value);
        let mut roots = Vec::new();
        self.ref_roots(iter, Rel::Same, &mut roots);
        let mut targets = Vec::new();
        self.target_syms(target, &mut targets);
        for t in targets {
            for &(root, _) in &roots {
                self.part_of(t, root);
                self.part_of(root, t);
            }
        }
    }

    pub(super) fn target_syms(&mut self, target: &Expr, out: &mut Vec<Sym>) {
        match target {
            Expr::Name(name) => out.push(self.sym(&name.id)),
            Expr::Tuple(ast::ExprTuple { elts, .. }) | Expr::List(ast::ExprList { elts, .. }) => {
                for elt in elts {
                    self.target_syms(elt, out);
                }
            }
            Expr::Starred(starred) => self.target_syms(&starred.value, out),
            _ => {}
        }
    }

    pub(super) fn relate_target(&mut self, target: &Expr, value: &Expr, rel: Rel) {
        match (target, value) {
            // `a, b = x, y`: pairwise.
            (
                Expr::Tuple(ast::ExprTuple { elts: targets, .. })
                | Expr::List(ast::ExprList { elts: targets, .. }),
                Expr::Tuple(ast::ExprTuple { elts: values, .. })
                | Expr::List(ast::ExprList { elts: values, .. }),
            ) if targets.len() == values.len() && !targets.iter().any(Expr::is_starred_expr) => {
                for (t, v) in targets.iter().zip(values) {
                    self.relate_target(t, v, rel);
                }
            }
            (
                Expr::Tuple(ast::ExprTuple { elts: targets, .. })
                | Expr::List(ast::ExprList { elts: targets, .. }),
                _,
            ) => {
                // Unpacking hands out parts of the value.
                let rel = if rel == Rel::Holds { rel } else { Rel::Part };
                for t in targets {
                    self.relate_target(t, value, rel);
                }
            }
            (Expr::Starred(starred), _) => self.relate_target(&starred.value, value, rel),
            (Expr::Name(name), _) => {
                let mut roots = Vec::new();
                self.ref_roots(value, rel, &mut roots);
                let sym = self.sym(&name.id);
                self.relate(sym, &roots);
            }
            (Expr::Attribute(_) | Expr::Subscript(_), _) => {
                // `obj.attr = value`: `obj` now holds whatever `value` is made of.
                if let Some(root) = self.chain_root(target) {
                    let mut roots = Vec::new();
                    self.ref_roots(value, rel, &mut roots);
                    for (name, _) in roots {
                        self.part_of(name, root);
                    }
                }
            }
            _ => {}
        }
    }
}
