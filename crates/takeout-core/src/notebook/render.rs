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
            keep_first_line(without(&cell.source, &dropped))
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

/// IPython strips the leading blank lines of a cell before running it, which would shift
/// every line number in an error: a comment holds the first line in place.
fn keep_first_line(source: String) -> String {
    match source.lines().next() {
        Some(first) if first.trim().is_empty() && source.trim_start() != source => {
            let rest = &source[first.len()..];
            format!("#{rest}")
        }
        _ => source,
    }
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
        "# takeout: {what} of `{}` for `{}` (defined in cell {}): cells {numbers} of {}",
        slice.label, slice.function, slice.target_cell, slice.total_cells
    );
    for captured in &slice.captured {
        let from = captured.cell.map_or_else(
            || "no cell binds it".to_owned(),
            |cell| format!("cell {cell}, line {}", captured.line),
        );
        let _ = writeln!(
            out,
            "# `{}` reads `{}` from {from}: {}",
            slice.function, captured.name, captured.rule
        );
    }
    for warning in &slice.warnings {
        let _ = writeln!(out, "# warning: {warning}");
    }
    for cell in &slice.cells {
        let count = cell
            .execution_count
            .map(|n| format!(" (In [{n}])"))
            .unwrap_or_default();
        let _ = writeln!(out, "\n# ── cell {}{count} ──", cell.number);
        let lines: Vec<&str> = cell.source.lines().collect();
        if slice.all_cells {
            for line in lines.iter().filter(|l| !l.trim().is_empty()) {
                out.push_str(line.trim_end());
                out.push('\n');
            }
            continue;
        }
        let mut last_end = 0;
        for statement in &cell.statements {
            let (start, end) = (statement.line as usize, statement.end_line as usize);
            if start > last_end + 1 && last_end > 0 {
                out.push('\n');
            }
            let mut first = true;
            for line in lines
                .get(start - 1..end.min(lines.len()))
                .unwrap_or_default()
            {
                if line.trim().is_empty() {
                    continue;
                }
                out.push_str(line.trim_end());
                if first {
                    // Why it runs, on the statement's first line.
                    let _ = write!(out, "  # {}", statement.reason);
                    first = false;
                }
                out.push('\n');
            }
            last_end = end;
        }
    }
    out
}
