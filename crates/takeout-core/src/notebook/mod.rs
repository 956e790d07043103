//! Notebooks: read an `.ipynb` file and slice it backwards from one function.
//!
//! The slice is the smallest run of the notebook's statements, in the notebook's order,
//! after which the function and everything it reads are as they would be after running the
//! whole notebook. Statements are the unit: a cell may be cut down to the lines that matter,
//! and the text to execute keeps every kept line at its original line number, so an error
//! in the kernel points at the line the user sees.
//!
//! - [`read`]: nbformat 4 JSON -> code cells.
//! - [`ipython`]: what magics, shell lines and help requests do to the namespace.
//! - [`facts`]: per statement, with ruff's parser: what it binds, reads now, reads later
//!   (function bodies), changes in place, calls, imports.
//! - [`effects`]: forward pass resolving each call against what its callee is bound to.
//! - [`slicer`]: backward pass from the function to every statement it depends on.
//! - [`render`]: the text each kept cell executes, and the script `takeout slice` prints.

mod effects;
mod facts;
mod guard;
mod ipython;
mod names;
mod read;
mod render;
mod slicer;

#[cfg(test)]
mod tests;

use ruff_python_ast::PySourceType;
use ruff_python_parser::parse_unchecked_source;
use ruff_text_size::Ranged;
use thiserror::Error;

pub use read::{Cell, Notebook};
pub use slicer::{slice, Captured, KeptStatement, Slice, SliceOptions, SlicedCell, StaticImport};

use facts::{Facts, Interner};

#[derive(Debug, Error)]
pub enum NotebookError {
    #[error("`{label}` is not a valid notebook: {reason}; check the file, or save it again from Jupyter")]
    Malformed { label: String, reason: String },
    #[error(
        "`{label}` is an nbformat {version} notebook and takeout reads version 4; save it \
         from a current Jupyter, or convert it with `jupyter nbconvert --to notebook \
         --nbformat 4 {label}`"
    )]
    Version { label: String, version: String },
    #[error("`{label}` is a {language} notebook; takeout slices Python notebooks only")]
    Language { label: String, language: String },
    #[error("{0}")]
    FunctionNotFound(String),
}

/// One top-level statement of a code cell: the unit the slicer keeps or leaves out.
#[derive(Debug)]
pub(crate) struct Unit {
    /// Index into [`Notebook::cells`].
    pub(crate) cell: usize,
    /// Byte range in the cell's source.
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// 1-based lines in the cell.
    pub(crate) line: u32,
    pub(crate) end_line: u32,
    /// The `%%magic` line of a cell whose body is Python: kept whenever the cell is.
    pub(crate) header: bool,
    pub(crate) facts: Facts,
}

/// Every code cell split into statements, with their facts.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) units: Vec<Unit>,
    pub(crate) names: Interner,
    /// `(cell index, first syntax error)` for cells that do not parse.
    pub(crate) unparsable: Vec<(usize, String)>,
}

/// Deeper nesting than this (expressions in expressions, statements in blocks) makes a cell
/// "unparsable": CPython's own compiler gives up far earlier (its parser stops at 200 nested
/// brackets, its compiler at its recursion limit), and our walkers recurse once per level.
pub(crate) const MAX_DEPTH: u32 = 1_000;

/// Stack for the thread that parses: ruff's parser recurses once per nesting level before
/// [`MAX_DEPTH`] can be checked, and dropping a deep tree recurses again. Only the pages a
/// cell really uses are touched; the rest is address space.
const PARSE_STACK: usize = 1 << 30;

pub(crate) fn parse_cells(notebook: &Notebook) -> Parsed {
    // A thread of our own, because no input may overflow the caller's stack (a SIGSEGV kills
    // the interpreter, which no `catch_unwind` can turn into an error).
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("takeout-notebook-parse".into())
            .stack_size(PARSE_STACK)
            .spawn_scoped(scope, || parse_cells_here(notebook));
        match worker {
            Ok(handle) => handle.join().unwrap_or_default(),
            // No thread to be had: parse here, the depth check still bounds our own walk.
            Err(_) => parse_cells_here(notebook),
        }
    })
}

fn parse_cells_here(notebook: &Notebook) -> Parsed {
    let mut parsed = Parsed::default();
    for (index, cell) in notebook.cells.iter().enumerate() {
        if cell.source.trim().is_empty() {
            continue;
        }
        let units_before = parsed.units.len();
        let outcome = guard::quietly(|| parse_cell(index, cell, &mut parsed));
        let error = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => error,
            Err(panic) => format!("the Python parser failed on it: {panic}"),
        };
        // A cell that does not compile runs nothing at all, a `%%magic` header included.
        parsed.units.truncate(units_before);
        parsed.unparsable.push((index, error));
    }
    parsed
}

/// Splits one cell into units; `Err` is why it does not parse.
fn parse_cell(index: usize, cell: &Cell, parsed: &mut Parsed) -> Result<(), String> {
    let lines = LineIndex::new(&cell.source);
    let unit = |start: usize, end: usize, header: bool, facts: Facts| Unit {
        cell: index,
        start,
        end,
        line: lines.line(start),
        end_line: lines.line(end.saturating_sub(1).max(start)),
        header,
        facts,
    };
    let magic = ipython::cell_magic(&cell.source);
    let python: std::borrow::Cow<'_, str> = match &magic {
        None => cell.source.as_str().into(),
        Some(magic) => {
            let header = facts::cell_magic_header(magic, &mut parsed.names);
            if !matches!(magic.effect, ipython::Effect::Python(_)) {
                // A body in another language (or only shown): one opaque unit.
                parsed
                    .units
                    .push(unit(magic.line.0, cell.source.len(), false, header));
                return Ok(());
            }
            parsed
                .units
                .push(unit(magic.line.0, magic.line.1, true, header));
            // Blank the magic line so offsets in the body stay offsets in the cell.
            let mut text = cell.source.clone();
            text.replace_range(
                magic.line.0..magic.line.1,
                &" ".repeat(magic.line.1 - magic.line.0),
            );
            text.into()
        }
    };
    if let Some(at) = guard::bracket_too_deep(&python, MAX_DEPTH) {
        // Before ruff sees it: its f-string lexer slows down with each nested level.
        let line = lines.line(at);
        return Err(format!(
            "line {line}: it nests more than {MAX_DEPTH} levels deep, which CPython does not \
             compile either"
        ));
    }
    let module = parse_unchecked_source(&python, PySourceType::Ipynb);
    if let Some(error) = module.errors().first() {
        let line = lines.line(error.location.start().to_usize());
        return Err(format!("line {line}: {}", error.error));
    }
    if let Some(at) = guard::too_deep(&module.syntax().body, MAX_DEPTH) {
        let line = lines.line(at);
        return Err(format!(
            "line {line}: it nests more than {MAX_DEPTH} levels deep, which CPython does not \
             compile either"
        ));
    }
    for stmt in &module.syntax().body {
        let facts = facts::statement(stmt, &mut parsed.names);
        let range = stmt.range();
        parsed.units.push(unit(
            range.start().to_usize(),
            range.end().to_usize(),
            false,
            facts,
        ));
    }
    Ok(())
}

/// Byte offset -> 1-based line.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|at| at + 1));
        Self { starts }
    }

    pub(crate) fn line(&self, offset: usize) -> u32 {
        let line = self.starts.partition_point(|&start| start <= offset);
        u32::try_from(line).unwrap_or(u32::MAX)
    }
}
