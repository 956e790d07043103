//! No cell may take the interpreter down: a panic inside ruff's parser becomes an error for
//! that cell, and nesting deep enough to exhaust a stack is refused before our walkers see it.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{Expr, Stmt};
use ruff_text_size::Ranged;

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic into its message. The panic hook is told to stay silent while
/// this thread is inside `f`, so a panicking cell prints nothing; other threads' panics are
/// reported by the hook that was installed before.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    outcome.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "an internal error".to_owned())
    })
}

/// The offset of the first bracket nested deeper than `limit`, counting every `(`, `[` and
/// `{` (those inside strings too: only a cell with `limit` unclosed brackets in its strings
/// is refused wrongly, and CPython stops at 200 real ones).
pub(crate) fn bracket_too_deep(text: &str, limit: u32) -> Option<usize> {
    let mut depth: u32 = 0;
    for (at, byte) in text.bytes().enumerate() {
        match byte {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(at);
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The offset of the first node nested deeper than `limit`, if any. The walk itself stops
/// descending at the limit, so it is bounded however deep the tree is.
pub(crate) fn too_deep(body: &[Stmt], limit: u32) -> Option<usize> {
    let mut depth = Depth {
        level: 0,
        limit,
        at: None,
    };
    depth.visit_body(body);
    depth.at
}

struct Depth {
    level: u32,
    limit: u32,
    at: Option<usize>,
}

impl Depth {
    fn enter(&mut self, offset: usize) -> bool {
        if self.at.is_some() {
            return false;
        }
        if self.level >= self.limit {
            self.at = Some(offset);
            return false;
        }
        self.level += 1;
        true
    }
}

impl<'a> Visitor<'a> for Depth {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        if self.enter(stmt.start().to_usize()) {
            visitor::walk_stmt(self, stmt);
            self.level -= 1;
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        if self.enter(expr.start().to_usize()) {
            visitor::walk_expr(self, expr);
            self.level -= 1;
        }
    }
}
