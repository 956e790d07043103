//! The backward pass: from the function to every statement it depends on.
//!
//! Walking from the last statement of the notebook up, a statement is kept when it binds a
//! name that is still needed, changes an object a needed name may share (a method call, a
//! store into an attribute or item, a call that assigns a `global`), or may touch any name
//! at all (an opaque magic, a star import) while a needed name is still unaccounted for.
//! A kept statement's unconditional bindings satisfy those names (earlier values no longer
//! matter); its reads become needed. Reads inside function bodies happen when the function
//! is called, after the whole slice ran, so they are needed *at the end*: the pass restarts
//! from the bottom whenever kept functions add such names, until nothing new appears.

use std::fmt::Write as _;

use rustc_hash::{FxHashMap, FxHashSet};

use super::effects::{self, Bindings, Node, Resolved};
use super::facts::{DefKind, Sym};
use super::names::is_builtin;
use super::render;
use super::{parse_cells, Notebook, NotebookError, Parsed, Unit};

#[derive(Debug, Clone, Default)]
pub struct SliceOptions {
    /// Keep every code cell whole: run the notebook as it is.
    pub all_cells: bool,
}

/// One kept statement, for the record (`takeout slice --json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptStatement {
    pub line: u32,
    pub end_line: u32,
    pub reason: String,
}

/// A code cell of the slice.
#[derive(Debug, Clone)]
pub struct SlicedCell {
    /// 1-based position among all the notebook's cells.
    pub number: usize,
    pub execution_count: Option<u64>,
    /// What the kernel executes: the cell with left-out statements removed, every kept
    /// line at its original line number.
    pub source: String,
    pub statements: Vec<KeptStatement>,
}

/// An import the slice reaches, for the static dependency estimate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticImport {
    pub module: String,
    pub level: u32,
    pub names: Vec<String>,
    pub cell: usize,
    pub line: u32,
    /// Inside a function body (runs when the function is called).
    pub deferred: bool,
}

#[derive(Debug, Clone)]
pub struct Slice {
    pub function: String,
    pub label: String,
    pub kernel_name: Option<String>,
    pub language: Option<String>,
    pub total_cells: usize,
    pub code_cells: usize,
    pub all_cells: bool,
    pub cells: Vec<SlicedCell>,
    pub imports: Vec<StaticImport>,
    pub warnings: Vec<String>,
    /// Names the slice reads that no statement defines (and that are not builtins).
    pub unresolved: Vec<String>,
}

impl Slice {
    /// The script `takeout slice` prints: each kept cell under a comment naming it.
    pub fn script(&self) -> String {
        render::script(self)
    }
}

/// Slices `notebook` backwards from `function`. `label` names the notebook in messages.
pub fn slice(
    notebook: &Notebook,
    function: &str,
    options: &SliceOptions,
    label: &str,
) -> Result<Slice, NotebookError> {
    if let Some(language) = &notebook.language {
        let lower = language.to_ascii_lowercase();
        if !(lower.starts_with("python") || lower == "ipython") {
            return Err(NotebookError::Language {
                label: label.to_owned(),
                language: language.clone(),
            });
        }
    }
    let parsed = parse_cells(notebook);
    let Some(target) = find_target(&parsed, function) else {
        return Err(not_found(notebook, &parsed, function, label));
    };
    let mut warnings: Vec<String> = parsed
        .unparsable
        .iter()
        .map(|(cell, error)| {
            format!(
                "cell {} does not parse ({error}); it is left out, as running it would define nothing",
                notebook.cells[*cell].number
            )
        })
        .collect();

    let (kept, unresolved) = if options.all_cells {
        (
            parsed
                .units
                .iter()
                .map(|_| Some("--all-cells".to_owned()))
                .collect(),
            Vec::new(),
        )
    } else {
        let (resolved, bindings) = effects::resolve(&parsed.units, &parsed.names);
        let outcome = Backward::new(&parsed, &resolved, &bindings).run(target);
        if outcome.dynamic {
            warnings.push(format!(
                "the slice reads names the parser cannot see (`eval`, `exec`, `globals()`), so \
                 every statement that defines or changes a name is kept; `{function}` may \
                 still need more"
            ));
        }
        (outcome.kept, outcome.unresolved)
    };

    let mut undefined = Vec::new();
    for &sym in &unresolved {
        let name = parsed.names.name(sym);
        let later: Vec<String> = parsed
            .units
            .iter()
            .filter(|unit| unit.facts.defs.iter().any(|d| d.name == sym))
            .map(|unit| notebook.cells[unit.cell].number.to_string())
            .collect();
        if let Some(last) = later.last() {
            warnings.push(format!(
                "`{name}` is read before cell {last} defines it; run from the top, the \
                 notebook fails there too"
            ));
        } else {
            undefined.push(format!("`{name}`"));
        }
    }
    if !undefined.is_empty() {
        warnings.push(format!(
            "no cell defines {}, which the slice reads; running it will fail unless a magic or \
             a star import provides it",
            undefined.join(", ")
        ));
    }
    let unresolved: Vec<String> = unresolved
        .into_iter()
        .map(|sym| parsed.names.name(sym).to_owned())
        .collect();
    if let Some(last_kept) = kept.iter().rposition(Option::is_some) {
        let shell: Vec<String> = parsed.units[..last_kept]
            .iter()
            .zip(&kept)
            .filter(|(_, reason)| reason.is_none())
            .filter_map(|(unit, _)| {
                let why = unit.facts.shell.as_ref()?;
                Some(format!("{why} (cell {})", notebook.cells[unit.cell].number))
            })
            .collect();
        if !shell.is_empty() {
            let more = if shell.len() > 3 {
                format!(" and {} more", shell.len() - 3)
            } else {
                String::new()
            };
            warnings.push(format!(
                "left out {}{more}: a shell command cannot change Python names; if the \
                 function needs files or packages one provides, pack with `--all-cells`",
                shell[..shell.len().min(3)].join(", ")
            ));
        }
    }

    let cells = render::cells(notebook, &parsed, &kept, options.all_cells);
    let mut imports = Vec::new();
    for (unit, reason) in parsed.units.iter().zip(&kept) {
        if reason.is_none() {
            continue;
        }
        let source = &notebook.cells[unit.cell].source;
        let lines = super::LineIndex::new(source);
        for import in &unit.facts.imports {
            imports.push(StaticImport {
                module: import.module.clone(),
                level: import.level,
                names: import.names.clone(),
                cell: notebook.cells[unit.cell].number,
                line: lines.line(import.range.start().to_usize()),
                deferred: import.deferred,
            });
        }
    }
    Ok(Slice {
        function: function.to_owned(),
        label: label.to_owned(),
        kernel_name: notebook.kernel_name.clone(),
        language: notebook.language.clone(),
        total_cells: notebook.total_cells,
        code_cells: notebook.cells.len(),
        all_cells: options.all_cells,
        cells,
        imports,
        warnings,
        unresolved,
    })
}

/// The last statement that binds `function`, and its symbol.
fn find_target(parsed: &Parsed, function: &str) -> Option<(usize, Sym)> {
    let sym = parsed.names.get(function)?;
    parsed
        .units
        .iter()
        .rposition(|unit| {
            unit.facts
                .defs
                .iter()
                .any(|d| d.name == sym && d.kind != DefKind::Delete)
        })
        .map(|unit| (unit, sym))
}

/// Module-level `def` names in notebook order.
fn defined_functions(parsed: &Parsed) -> Vec<&str> {
    let mut seen = FxHashSet::default();
    let mut found = Vec::new();
    for unit in &parsed.units {
        for f in &unit.facts.functions {
            if seen.insert(f.name) {
                found.push(parsed.names.name(f.name));
            }
        }
    }
    found
}

fn not_found(notebook: &Notebook, parsed: &Parsed, function: &str, label: &str) -> NotebookError {
    let functions = defined_functions(parsed);
    let mut message = if functions.is_empty() {
        format!("`{label}` defines no function named `{function}` (it defines no functions at all)")
    } else {
        let list = functions
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("`{label}` defines no function named `{function}`; it defines {list}")
    };
    let close = closest(function, &functions);
    if !close.is_empty() {
        let close: Vec<String> = close.iter().map(|c| format!("`{c}`")).collect();
        let _ = write!(message, " (did you mean {}?)", close.join(" or "));
    }
    if !parsed.unparsable.is_empty() {
        let cells = parsed
            .unparsable
            .iter()
            .map(|(cell, _)| notebook.cells[*cell].number.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(message, "; cells {cells} do not parse and were not read");
    }
    NotebookError::FunctionNotFound(message)
}

/// The nearest name by edit distance, else the names that extend the one asked for
/// (`km_predict` -> `km_predict_one` or `km_predict_two`).
fn closest<'a>(name: &str, candidates: &[&'a str]) -> Vec<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    let nearest = candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d);
    if let Some((_, c)) = nearest {
        return vec![c];
    }
    candidates
        .iter()
        .filter(|c| c.starts_with(name))
        .take(3)
        .copied()
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The names still needed at some point of the backward walk.
struct Needed<'c> {
    set: FxHashSet<Sym>,
    /// Needed only as `$name` in a shell line: never reported, never a reason to keep an
    /// opaque statement.
    soft: FxHashSet<Sym>,
    builtin: &'c [bool],
    /// Needed names that are not builtins: what an opaque statement could provide.
    non_builtin: usize,
}

impl<'c> Needed<'c> {
    fn new(builtin: &'c [bool]) -> Self {
        Needed {
            set: FxHashSet::default(),
            soft: FxHashSet::default(),
            builtin,
            non_builtin: 0,
        }
    }

    fn insert(&mut self, sym: Sym) {
        if !self.set.insert(sym) && !self.soft.remove(&sym) {
            return;
        }
        if !self.builtin[sym as usize] {
            self.non_builtin += 1;
        }
    }

    fn insert_soft(&mut self, sym: Sym) {
        if self.set.insert(sym) {
            self.soft.insert(sym);
        }
    }

    fn remove(&mut self, sym: Sym) {
        if self.set.remove(&sym) && !self.soft.remove(&sym) && !self.builtin[sym as usize] {
            self.non_builtin -= 1;
        }
    }
}

struct Outcome {
    kept: Vec<Option<String>>,
    unresolved: Vec<Sym>,
    dynamic: bool,
}

struct Backward<'p> {
    parsed: &'p Parsed,
    resolved: &'p [Resolved],
    bindings: &'p Bindings,
    /// Per unit: `(changed binding, every binding the change may reach)`.
    reaches: Vec<Vec<(Node, Vec<Node>)>>,
    builtin: Vec<bool>,
}

impl<'p> Backward<'p> {
    fn new(parsed: &'p Parsed, resolved: &'p [Resolved], bindings: &'p Bindings) -> Self {
        let builtin = (0..parsed.names.len())
            .map(|s| is_builtin(parsed.names.name(s as Sym)))
            .collect();
        let mut memo: FxHashMap<(Node, bool), Vec<Node>> = FxHashMap::default();
        let reaches = resolved
            .iter()
            .map(|r| {
                r.mods
                    .iter()
                    .map(|&(node, deep)| {
                        let reach = memo
                            .entry((node, deep))
                            .or_insert_with(|| bindings.sharing.reach(node, deep));
                        (node, reach.clone())
                    })
                    .collect()
            })
            .collect();
        Backward {
            parsed,
            resolved,
            bindings,
            reaches,
            builtin,
        }
    }

    fn run(&self, (target_unit, target): (usize, Sym)) -> Outcome {
        let mut at_end: FxHashSet<Sym> = FxHashSet::default();
        at_end.insert(target);
        let mut dynamic = false;
        loop {
            let pass = self.pass(&at_end, target_unit, target, dynamic);
            if pass.dynamic && !dynamic {
                dynamic = true;
                continue;
            }
            let before = at_end.len();
            at_end.extend(pass.later);
            if at_end.len() == before {
                let mut unresolved: Vec<Sym> = pass
                    .remaining
                    .into_iter()
                    .filter(|&s| !self.builtin[s as usize])
                    .collect();
                unresolved
                    .sort_by(|a, b| self.parsed.names.name(*a).cmp(self.parsed.names.name(*b)));
                return Outcome {
                    kept: pass.kept,
                    unresolved,
                    dynamic,
                };
            }
        }
    }

    fn pass(
        &self,
        at_end: &FxHashSet<Sym>,
        target_unit: usize,
        target: Sym,
        dynamic: bool,
    ) -> Pass {
        let units = &self.parsed.units;
        let mut needed = Needed::new(&self.builtin);
        for &sym in at_end {
            needed.insert(sym);
        }
        let mut kept = vec![None; units.len()];
        let mut later = FxHashSet::default();
        let mut reads_any = false;
        for u in (0..units.len()).rev() {
            let unit = &units[u];
            let resolved = &self.resolved[u];
            let reason = if u == target_unit {
                Some(format!(
                    "defines `{}`, the function",
                    self.parsed.names.name(target)
                ))
            } else {
                self.relevance(u, unit, resolved, &needed, dynamic)
            };
            let Some(reason) = reason else {
                continue;
            };
            kept[u] = Some(reason);
            for def in &unit.facts.defs {
                if def.strong {
                    needed.remove(def.name);
                }
            }
            for &sym in unit.facts.uses_now.iter().chain(&resolved.reads) {
                needed.insert(sym);
            }
            for &sym in &unit.facts.soft_uses {
                needed.insert_soft(sym);
            }
            later.extend(unit.facts.uses_later.iter().copied());
            reads_any |= resolved.reads_any;
        }
        self.keep_headers(&mut kept);
        Pass {
            kept,
            later,
            remaining: needed.set.difference(&needed.soft).copied().collect(),
            dynamic: reads_any,
        }
    }

    /// Why `unit` must run, if it must.
    fn relevance(
        &self,
        u: usize,
        unit: &Unit,
        resolved: &Resolved,
        needed: &Needed<'_>,
        dynamic: bool,
    ) -> Option<String> {
        let names = &self.parsed.names;
        let defined: Vec<&str> = unit
            .facts
            .defs
            .iter()
            .filter(|d| needed.set.contains(&d.name))
            .map(|d| names.name(d.name))
            .collect();
        if !defined.is_empty() {
            let mut defined = defined;
            defined.dedup();
            return Some(format!("defines {}", quoted(&defined)));
        }
        let bindings = self.bindings;
        for (changed, reach) in &self.reaches[u] {
            let hit = reach
                .iter()
                .find(|&&n| needed.set.contains(&bindings.sym(n)) && bindings.live_after(n, u));
            if let Some(&hit) = hit {
                let (hit, changed) = (bindings.sym(hit), bindings.sym(*changed));
                return Some(if hit == changed {
                    format!("changes `{}`", names.name(hit))
                } else {
                    format!(
                        "changes `{}` through `{}`",
                        names.name(hit),
                        names.name(changed)
                    )
                });
            }
        }
        if let Some(why) = &unit.facts.any_name {
            if needed.non_builtin > 0 {
                return Some(format!("{why} may define or change any name"));
            }
        }
        let has_effect = !unit.facts.defs.is_empty()
            || !resolved.mods.is_empty()
            || unit.facts.any_name.is_some();
        if dynamic && has_effect {
            return Some("defines or changes names, and the slice reads names dynamically".into());
        }
        None
    }

    /// A `%%time` line runs with its cell: kept whenever a statement of its body is.
    fn keep_headers(&self, kept: &mut [Option<String>]) {
        let units = &self.parsed.units;
        for u in 0..units.len() {
            if !units[u].header || kept[u].is_some() {
                continue;
            }
            let cell = units[u].cell;
            let body_kept = units[u + 1..]
                .iter()
                .zip(&kept[u + 1..])
                .take_while(|(unit, _)| unit.cell == cell)
                .any(|(_, reason)| reason.is_some());
            if body_kept {
                kept[u] = Some("the cell magic its body runs under".into());
            }
        }
    }
}

struct Pass {
    kept: Vec<Option<String>>,
    later: FxHashSet<Sym>,
    remaining: Vec<Sym>,
    dynamic: bool,
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
