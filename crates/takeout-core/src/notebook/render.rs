//! Text out of a slice: what each kept cell executes, and the script `takeout slice` prints.

use std::fmt::Write as _;

use super::slicer::{KeptStatement, Slice, SlicedCell};
use super::{Notebook, Parsed};

/// The kept cells, each with the text the kernel runs.
pub(crate) fn cells(
    notebook: &Notebook,
    parsed: &Parsed,
    kept: &[Option<String>],
    all_cells: bool,
) -> Vec<SlicedCell> {
    let mut out = Vec::new();
    for (index, cell) in notebook.cells.iter().enumerate() {
        if cell.source.trim().is_empty() {
            continue;
        }
        let units: Vec<_> = parsed
            .units
            .iter()
            .zip(kept)
            .filter(|(unit, _)| unit.cell == index)
            .collect();
        let statements: Vec<KeptStatement> = units
            .iter()
            .filter_map(|(unit, reason)| {
                reason.as_ref().map(|reason| KeptStatement {
                    line: unit.line,
                    end_line: unit.end_line,
                    reason: reason.clone(),
                })
            })
            .collect();
        let source = if all_cells {
            // The notebook as it is, cells that do not parse included: they fail as they
            // would in Jupyter.
            cell.source.clone()
        } else if statements.is_empty() {
            continue;
        } else {
            let dropped: Vec<(usize, usize)> = units
                .iter()
                .filter(|(_, reason)| reason.is_none())
                .map(|(unit, _)| (unit.start, unit.end))
                .collect();
            without(&cell.source, &dropped)
        };
        out.push(SlicedCell {
            number: cell.number,
            execution_count: cell.execution_count,
            source,
            statements,
        });
    }
    out
}

/// `source` with the byte ranges `dropped` removed, newlines kept so that every remaining
/// line keeps its number. A `;` after a removed statement goes with it, so `print(a); b = 2`
/// becomes `b = 2` and not an indented `; b = 2`.
pub(crate) fn without(source: &str, dropped: &[(usize, usize)]) -> String {
    let bytes = source.as_bytes();
    let mut remove = vec![false; bytes.len()];
    for &(start, end) in dropped {
        let mut end = end.min(bytes.len());
        let mut probe = end;
        while probe < bytes.len() && matches!(bytes[probe], b' ' | b'\t') {
            probe += 1;
        }
        if probe < bytes.len() && bytes[probe] == b';' {
            probe += 1;
            while probe < bytes.len() && matches!(bytes[probe], b' ' | b'\t') {
                probe += 1;
            }
            end = probe;
        }
        for flag in &mut remove[start..end] {
            *flag = true;
        }
    }
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &byte) in bytes.iter().enumerate() {
        if !remove[i] || byte == b'\n' || byte == b'\r' {
            out.push(byte);
        }
    }
    // Only whole UTF-8 sequences were removed: statement boundaries are char boundaries.
    String::from_utf8(out)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

pub(crate) fn script(slice: &Slice) -> String {
    let mut out = String::new();
    let numbers = slice
        .cells
        .iter()
        .map(|c| c.number.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let what = if slice.all_cells {
        "every code cell"
    } else {
        "the slice"
    };
    let _ = writeln!(
        out,
        "# takeout: {what} of `{}` for `{}`: cells {numbers} of {}",
        slice.label, slice.function, slice.total_cells
    );
    for warning in &slice.warnings {
        let _ = writeln!(out, "# warning: {warning}");
    }
    for cell in &slice.cells {
        let count = cell
            .execution_count
            .map(|n| format!(" (In [{n}])"))
            .unwrap_or_default();
        let _ = writeln!(out, "\n# ── cell {}{count} ──", cell.number);
        let mut blank = false;
        let mut started = false;
        for line in cell.source.lines() {
            if line.trim().is_empty() {
                blank = started;
                continue;
            }
            if blank {
                out.push('\n');
                blank = false;
            }
            started = true;
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}
