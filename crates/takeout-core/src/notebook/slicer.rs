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
use super::facts::{DefKind, NameHint, Sym};
use super::names::is_builtin;
use super::render;
use super::{parse_cells, Notebook, NotebookError, Parsed, Unit};

#[derive(Debug, Clone, Default)]
pub struct SliceOptions {
    /// Keep every code cell whole: run the notebook as it is.
    pub all_cells: bool,
    /// Give the function the notebook's last value of every name it reads (the state after
    /// running everything), instead of the values it was written against.
    pub state_end: bool,
    /// Slice from the definition in this cell (1-based, as the slice prints it), not the
    /// last one; also written `FUNCTION@CELL`.
    pub cell: Option<usize>,
}

/// A name the function reads when called, and the binding the slice gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub name: String,
    /// The cell and line of the binding kept, if a cell binds it.
    pub cell: Option<usize>,
    pub line: u32,
    /// Which rule chose that binding.
    pub rule: String,
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
    /// The cell and line of the definition sliced from.
    pub target_cell: usize,
    pub target_line: u32,
    /// Each name the function reads when called, with the binding it gets.
    pub captured: Vec<Captured>,
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
    let (function, cell) = match function.rsplit_once('@') {
        Some((name, cell)) => match cell.trim().parse::<usize>() {
            Ok(cell) if options.cell.is_none_or(|c| c == cell) => (name, Some(cell)),
            _ => {
                return Err(NotebookError::FunctionNotFound(format!(
                    "`{function}` names no cell: write FUNCTION@CELL with the cell's number, \
                     e.g. `{name}@3`, or pass --cell N"
                )))
            }
        },
        None => (function, options.cell),
    };
    let parsed = parse_cells(notebook);
    let Some(target) = find_target(&parsed, function) else {
        return Err(not_found(notebook, &parsed, function, label));
    };
    let target = match cell {
        None => target,
        Some(number) => chosen_definition(notebook, &parsed, target.1, number, function, label)?,
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

    let numbers: Vec<usize> = notebook.cells.iter().map(|c| c.number).collect();
    let (kept, unresolved, captured) = if options.all_cells {
        (
            parsed
                .units
                .iter()
                .map(|_| Some("--all-cells".to_owned()))
                .collect(),
            Vec::new(),
            Vec::new(),
        )
    } else {
        let (resolved, bindings) = effects::resolve(&parsed.units, &parsed.names);
        let backward = Backward::new(&parsed, &resolved, &bindings, &numbers, function);
        let outcome = backward.run(target, options.state_end);
        if outcome.dynamic {
            warnings.push(format!(
                "the slice reads names the parser cannot see (`eval`, `exec`, `globals()`), so \
                 every statement that defines or changes a name is kept; `{function}` may \
                 still need more"
            ));
        }
        backward.dynamic_when_called(&outcome, &mut warnings);
        let captured = backward.captured(&outcome, target, options.state_end, &mut warnings);
        (outcome.kept, outcome.unresolved, captured)
    };

    // Bound by a kept statement, only conditionally (`for`, `if` without `else`): the slice
    // runs it, as the notebook does.
    let unresolved: Vec<Sym> = unresolved
        .into_iter()
        .filter(|&sym| {
            !parsed
                .units
                .iter()
                .zip(&kept)
                .any(|(unit, k)| k.is_some() && unit.facts.defs.iter().any(|d| d.name == sym))
        })
        .collect();
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
            // `--all-cells` is a fix only where every cell can run: not with one that
            // does not parse.
            let fix = if parsed.unparsable.is_empty() {
                "run it before packing, or pack with `--all-cells`"
            } else {
                "run it in the notebook's folder before packing"
            };
            warnings.push(format!(
                "left out {}{more}: a shell command cannot change Python names; if the \
                 function needs files or packages one provides, {fix}",
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
        target_cell: notebook.cells[parsed.units[target.0].cell].number,
        target_line: parsed.units[target.0].line,
        captured,
    })
}

/// The definition of `sym` in cell `number` (its last one there).
fn chosen_definition(
    notebook: &Notebook,
    parsed: &Parsed,
    sym: Sym,
    number: usize,
    function: &str,
    label: &str,
) -> Result<(usize, Sym), NotebookError> {
    let defines = |unit: &Unit| {
        unit.facts
            .defs
            .iter()
            .any(|d| d.name == sym && d.kind != DefKind::Delete)
    };
    let chosen = parsed
        .units
        .iter()
        .rposition(|unit| notebook.cells[unit.cell].number == number && defines(unit));
    if let Some(unit) = chosen {
        return Ok((unit, sym));
    }
    let mut cells: Vec<String> = parsed
        .units
        .iter()
        .filter(|unit| defines(unit))
        .map(|unit| notebook.cells[unit.cell].number.to_string())
        .collect();
    cells.dedup();
    Err(NotebookError::FunctionNotFound(format!(
        "cell {number} of `{label}` does not define `{function}`; cells {} do, so write \
         `{function}@{}` for the last of them",
        cells.join(", "),
        cells.last().map_or("N", String::as_str)
    )))
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
    /// Who reads each needed name, nearest first: what a kept statement is kept for.
    by: FxHashMap<Sym, String>,
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
            by: FxHashMap::default(),
            soft: FxHashSet::default(),
            builtin,
            non_builtin: 0,
        }
    }

    fn insert_by(&mut self, sym: Sym, by: &str) {
        self.by.insert(sym, by.to_owned());
        self.insert(sym);
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
    /// Each name the function reads when called, and the unit from which walking back
    /// started for it (see [`Backward::position`]).
    seeds: Vec<(usize, Sym)>,
}

struct Backward<'p> {
    parsed: &'p Parsed,
    resolved: &'p [Resolved],
    bindings: &'p Bindings,
    /// Per unit: `(changed binding, every binding the change may reach)`.
    reaches: Vec<Vec<(Node, Vec<Node>)>>,
    builtin: Vec<bool>,
    /// Per cell index: the cell's number.
    numbers: &'p [usize],
    function: &'p str,
}

/// What the statements kept so far (all after the current one) need from earlier ones,
/// besides names.
#[derive(Default)]
struct After {
    any_kept: bool,
    /// Files a kept import may load (`helpers.py`), each with the import that needs it.
    files: FxHashMap<String, String>,
    /// A kept magic that only an extension defines.
    magic: Option<String>,
}

impl<'p> Backward<'p> {
    fn new(
        parsed: &'p Parsed,
        resolved: &'p [Resolved],
        bindings: &'p Bindings,
        numbers: &'p [usize],
        function: &'p str,
    ) -> Self {
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
            numbers,
            function,
        }
    }

    fn cell(&self, u: usize) -> usize {
        self.numbers[self.parsed.units[u].cell]
    }

    fn defines(&self, u: usize, sym: Sym) -> bool {
        self.parsed.units[u]
            .facts
            .defs
            .iter()
            .any(|d| d.name == sym)
    }

    /// The names bound somewhere in the notebook that one of `hints` spells.
    fn spelled(&self, hints: &[NameHint]) -> Vec<Sym> {
        let mut found: Vec<Sym> = self
            .parsed
            .units
            .iter()
            .flat_map(|unit| &unit.facts.defs)
            .map(|d| d.name)
            .filter(|&sym| {
                let name = self.parsed.names.name(sym);
                hints.iter().any(|h| h.matches(name))
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// A kept function that reads names dynamically when called: cloudpickle carries only
    /// the globals the pickled code names, so in the bundle such a read finds those and
    /// nothing else, and the slice need not keep more. Warns about the notebook names its
    /// strings spell that the code does not name: found in the notebook, missing in the
    /// bundle.
    fn dynamic_when_called(&self, outcome: &Outcome, warnings: &mut Vec<String>) {
        let names = &self.parsed.names;
        let bound: FxHashSet<Sym> = self
            .parsed
            .units
            .iter()
            .flat_map(|unit| unit.facts.defs.iter().map(|d| d.name))
            .collect();
        // What the function reads when called, itself included: the code that is pickled.
        let pickled: FxHashSet<Sym> = outcome.seeds.iter().map(|&(_, s)| s).collect();
        for (unit, kept) in self.parsed.units.iter().zip(&outcome.kept) {
            if kept.is_none() {
                continue;
            }
            for f in unit
                .facts
                .functions
                .iter()
                .filter(|f| pickled.contains(&f.name))
            {
                let Some(&builtin) = f.dynamic.iter().find(|b| !bound.contains(b)) else {
                    continue;
                };
                let call = match names.name(builtin) {
                    "eval" | "exec" => format!("`{}`", names.name(builtin)),
                    other => format!("`{other}()`"),
                };
                let missing: Vec<&str> = self
                    .spelled(&f.hints)
                    .into_iter()
                    .filter(|s| !pickled.contains(s))
                    .map(|s| names.name(s))
                    .collect();
                let function = names.name(f.name);
                let mut warning = format!(
                    "`{function}` looks names up by string ({call}); the slice keeps only the \
                     globals its code names, which are all a bundle carries (cloudpickle keeps \
                     no others)"
                );
                if !missing.is_empty() {
                    let _ = write!(
                        warning,
                        ", so {} (spelled by its strings) will not be found there; name them \
                         in its code, e.g. in a dict of name to value",
                        quoted(&missing)
                    );
                }
                warnings.push(warning);
            }
        }
    }

    /// Where walking back starts for a name the function reads when called: the function's
    /// definition when a statement before it binds the name (the value the function was
    /// written and tried against); otherwise the first binding after it, with whatever
    /// changes that binding until the next one. `--state end`: the end of the notebook.
    fn position(&self, sym: Sym, target_unit: usize, state_end: bool) -> usize {
        let last = self.parsed.units.len() - 1;
        if state_end {
            return last;
        }
        if self.builtin[sym as usize] || (0..=target_unit).any(|u| self.defines(u, sym)) {
            return target_unit;
        }
        let Some(first) = (target_unit + 1..=last).find(|&u| self.defines(u, sym)) else {
            return target_unit;
        };
        let next = (first + 1..=last).find(|&u| {
            self.parsed.units[u]
                .facts
                .defs
                .iter()
                .any(|d| d.name == sym && d.strong)
        });
        next.map_or(last, |n| n - 1)
    }

    fn run(&self, (target_unit, target): (usize, Sym), state_end: bool) -> Outcome {
        let mut seeds: Vec<(usize, Sym)> = vec![(target_unit, target)];
        let mut dynamic = false;
        loop {
            seeds.sort_unstable_by(|a, b| b.cmp(a));
            let pass = self.pass(&seeds, target_unit, target, dynamic);
            if pass.dynamic && !dynamic {
                dynamic = true;
                continue;
            }
            let mut new: Vec<Sym> = pass
                .later
                .into_iter()
                .filter(|&s| !seeds.iter().any(|&(_, t)| t == s))
                .collect();
            if new.is_empty() {
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
                    seeds,
                };
            }
            new.sort_unstable();
            for sym in new {
                seeds.push((self.position(sym, target_unit, state_end), sym));
            }
        }
    }

    /// One walk from the last statement up; `seeds` (position, name), latest first, become
    /// needed when the walk reaches their position.
    fn pass(&self, seeds: &[(usize, Sym)], target_unit: usize, target: Sym, dynamic: bool) -> Pass {
        let units = &self.parsed.units;
        let mut needed = Needed::new(&self.builtin);
        let reader = format!("`{}`", self.function);
        let mut next_seed = 0;
        let mut kept = vec![None; units.len()];
        let mut later = FxHashSet::default();
        let mut reads_any = false;
        let mut after = After::default();
        for u in (0..units.len()).rev() {
            while next_seed < seeds.len() && seeds[next_seed].0 >= u {
                needed.insert_by(seeds[next_seed].1, &reader);
                next_seed += 1;
            }
            let unit = &units[u];
            let resolved = &self.resolved[u];
            let reason = if u == target_unit {
                Some(format!(
                    "defines `{}`, the function",
                    self.parsed.names.name(target)
                ))
            } else {
                self.relevance(u, unit, resolved, &needed, &after, dynamic)
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
            let by = format!("cell {}", self.cell(u));
            for &sym in unit.facts.uses_now.iter().chain(&resolved.reads) {
                needed.insert_by(sym, &by);
            }
            for &sym in &unit.facts.soft_uses {
                needed.insert_soft(sym);
            }
            later.extend(unit.facts.uses_later.iter().copied());
            if resolved.reads_any {
                // What it may look up by string is what its strings spell; with no string
                // that spells a notebook name, the key comes from elsewhere: anything.
                let spelled = self.spelled(&resolved.hints);
                if spelled.is_empty() {
                    reads_any = true;
                }
                let by = format!("cell {} (by a name its strings spell)", self.cell(u));
                for sym in spelled {
                    needed.insert_by(sym, &by);
                }
            }
            after.any_kept = true;
            for import in unit.facts.imports.iter().filter(|i| i.level == 0) {
                let statement = if import.names.is_empty() {
                    format!("`import {}` (cell {})", import.module, self.cell(u))
                } else {
                    format!("`from {} import …` (cell {})", import.module, self.cell(u))
                };
                for file in module_files(&import.module, &import.names) {
                    after.files.entry(file).or_insert_with(|| statement.clone());
                }
            }
            if let Some(magic) = &unit.facts.unknown_magic {
                after.magic = Some(format!("{magic} (cell {})", self.cell(u)));
            }
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
        after: &After,
        dynamic: bool,
    ) -> Option<String> {
        let names = &self.parsed.names;
        let reader = |sym: Sym| {
            needed
                .by
                .get(&sym)
                .map(|by| format!(", which {by} reads"))
                .unwrap_or_default()
        };
        let mut defined: Vec<Sym> = unit
            .facts
            .defs
            .iter()
            .filter(|d| needed.set.contains(&d.name))
            .map(|d| d.name)
            .collect();
        if !defined.is_empty() {
            defined.dedup();
            let list: Vec<&str> = defined.iter().map(|&d| names.name(d)).collect();
            return Some(format!("defines {}{}", quoted(&list), reader(defined[0])));
        }
        let bindings = self.bindings;
        for (changed, reach) in &self.reaches[u] {
            let hit = reach
                .iter()
                .find(|&&n| needed.set.contains(&bindings.sym(n)) && bindings.live_after(n, u));
            if let Some(&hit) = hit {
                let (hit, changed) = (bindings.sym(hit), bindings.sym(*changed));
                return Some(if hit == changed {
                    format!("changes `{}`{}", names.name(hit), reader(hit))
                } else {
                    format!(
                        "changes `{}` through `{}`{}",
                        names.name(hit),
                        names.name(changed),
                        reader(hit)
                    )
                });
            }
        }
        let any_name = unit.facts.any_name.clone().or_else(|| {
            resolved
                .any_name
                .then(|| "`exec`/`eval`/`globals()`".to_owned())
        });
        if let Some(why) = &any_name {
            if needed.non_builtin > 0 {
                return Some(format!("{why} may define or change any name"));
            }
        }
        if let Some(why) = &unit.facts.chdir {
            if after.any_kept {
                return Some(format!(
                    "{why} changes the working directory the statements kept after it run in"
                ));
            }
        }
        if let Some(file) = &unit.facts.writes {
            let file = file.trim_start_matches("./");
            if let Some(import) = after.files.get(file) {
                return Some(format!("writes `{file}`, which {import} imports"));
            }
        }
        if unit.facts.loads_extension {
            if let Some(magic) = &after.magic {
                return Some(format!("loads an extension, which may define {magic}"));
            }
        }
        let has_effect =
            !unit.facts.defs.is_empty() || !resolved.mods.is_empty() || any_name.is_some();
        if dynamic && has_effect {
            return Some("defines or changes names, and the slice reads names dynamically".into());
        }
        None
    }

    /// Which binding each name the function reads gets, and why; warnings where a later
    /// statement rebinds or changes it.
    fn captured(
        &self,
        outcome: &Outcome,
        (target_unit, target): (usize, Sym),
        state_end: bool,
        warnings: &mut Vec<String>,
    ) -> Vec<Captured> {
        let names = &self.parsed.names;
        let units = &self.parsed.units;
        let function = self.function;
        let defined_in = self.cell(target_unit);
        let mut seeds: Vec<(usize, Sym)> = outcome
            .seeds
            .iter()
            .copied()
            .filter(|&(_, s)| s != target && !self.builtin[s as usize])
            .collect();
        seeds.sort_by(|a, b| names.name(a.1).cmp(names.name(b.1)));
        let mut out = Vec::new();
        for (position, sym) in seeds {
            let name = names.name(sym);
            let kept = |u: usize| outcome.kept[u].is_some();
            let binding = (0..=position)
                .rev()
                .find(|&u| kept(u) && self.defines(u, sym));
            let rule = if state_end {
                "the last binding in the notebook (`--state end`)".to_owned()
            } else if position == target_unit {
                format!("the last binding before `{function}` is defined (cell {defined_in})")
            } else {
                format!(
                    "the first binding after `{function}` is defined (cell {defined_in}): no \
                     cell binds it before"
                )
            };
            out.push(Captured {
                name: name.to_owned(),
                cell: binding.map(|u| self.cell(u)),
                line: binding.map_or(0, |u| units[u].line),
                rule,
            });
            // A statement kept for another name that rebinds this one after its position
            // wins when the bundle is made.
            if let Some(u) = (position + 1..units.len()).find(|&u| kept(u) && self.defines(u, sym))
            {
                warnings.push(format!(
                    "cell {} rebinds `{name}` and runs for another name, so `{function}` gets \
                     that value, not the one from cell {}",
                    self.cell(u),
                    binding.map_or_else(|| "?".to_owned(), |b| self.cell(b).to_string())
                ));
                continue;
            }
            if state_end || position != target_unit {
                continue;
            }
            let changes = |u: usize| {
                self.defines(u, sym)
                    || units[u].facts.mutated.contains(&sym)
                    || self.resolved[u]
                        .mods
                        .iter()
                        .any(|&(node, _)| self.bindings.sym(node) == sym)
            };
            if let Some(u) = (target_unit + 1..units.len()).find(|&u| !kept(u) && changes(u)) {
                warnings.push(format!(
                    "cell {} rebinds or changes `{name}` after `{function}` is defined (cell \
                     {defined_in}); the bundle keeps `{name}` as it was when `{function}` was \
                     defined; pack with `--state end` for the notebook's last value",
                    self.cell(u)
                ));
            }
        }
        out
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

/// The files `import module` (or `from module import names`) may load from the working
/// directory: `a/b.py` or `a/b/__init__.py` for every prefix `a.b` of the dotted path.
fn module_files(module: &str, names: &[String]) -> Vec<String> {
    let mut paths = Vec::new();
    let mut prefix = String::new();
    for part in module.split('.') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        paths.push(prefix.clone());
    }
    for name in names {
        paths.push(format!("{prefix}/{name}"));
    }
    paths
        .into_iter()
        .flat_map(|p| [format!("{p}.py"), format!("{p}/__init__.py")])
        .collect()
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
