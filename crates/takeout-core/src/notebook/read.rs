//! Reading an `.ipynb` file: nbformat 4 JSON, code cells only.
//!
//! Only what slicing and running need is kept: each code cell's source and where it sits,
//! and the kernel the notebook asks for. Everything else (outputs, widgets, attachments) is
//! skipped without being validated, so a notebook with odd outputs still slices.

use serde_json::Value;

use super::NotebookError;

/// One code cell.
#[derive(Debug, Clone)]
pub struct Cell {
    /// 1-based position among all the notebook's cells (markdown included): what a reader
    /// counts from the top, and stable across runs, unlike execution counts.
    pub number: usize,
    pub execution_count: Option<u64>,
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct Notebook {
    pub cells: Vec<Cell>,
    /// Every cell of any type, for "cell 6 of 11".
    pub total_cells: usize,
    /// `metadata.kernelspec.name`, when the notebook names one.
    pub kernel_name: Option<String>,
    /// `metadata.kernelspec.language`, or `metadata.language_info.name`.
    pub language: Option<String>,
}

impl Notebook {
    /// Parses nbformat 4 JSON. `label` names the file in error messages.
    pub fn parse(text: &str, label: &str) -> Result<Self, NotebookError> {
        let malformed = |reason: String| NotebookError::Malformed {
            label: label.to_owned(),
            reason,
        };
        let root: Value = serde_json::from_str(text).map_err(|err| {
            malformed(format!(
                "it is not valid JSON (line {}, column {}: {})",
                err.line(),
                err.column(),
                json_reason(&err)
            ))
        })?;
        let Some(root) = root.as_object() else {
            return Err(malformed("its top level is not a JSON object".into()));
        };
        match root.get("nbformat").and_then(Value::as_u64) {
            Some(4) => {}
            Some(version) => {
                return Err(NotebookError::Version {
                    label: label.to_owned(),
                    version: version.to_string(),
                })
            }
            None => return Err(malformed("it has no integer `nbformat` field".into())),
        }
        let Some(cells) = root.get("cells").and_then(Value::as_array) else {
            return Err(malformed("it has no `cells` list".into()));
        };
        let metadata = root.get("metadata");
        let kernelspec = metadata.and_then(|m| m.get("kernelspec"));
        let kernel_name = kernelspec
            .and_then(|k| k.get("name"))
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .map(str::to_owned);
        let language = kernelspec
            .and_then(|k| k.get("language"))
            .or_else(|| metadata.and_then(|m| m.get("language_info")?.get("name")))
            .and_then(Value::as_str)
            .map(str::to_owned);

        let mut code = Vec::new();
        for (index, cell) in cells.iter().enumerate() {
            let number = index + 1;
            let cell_type = cell
                .get("cell_type")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(format!("cell {number} has no `cell_type`")))?;
            if cell_type != "code" {
                continue;
            }
            let source = match cell.get("source") {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Array(parts)) => {
                    let mut text = String::new();
                    for part in parts {
                        let Some(part) = part.as_str() else {
                            return Err(malformed(format!(
                                "cell {number} has a `source` list with a non-string item"
                            )));
                        };
                        text.push_str(part);
                    }
                    text
                }
                _ => {
                    return Err(malformed(format!(
                        "cell {number} has no `source` string or list of strings"
                    )))
                }
            };
            code.push(Cell {
                number,
                execution_count: cell.get("execution_count").and_then(Value::as_u64),
                source,
            });
        }
        Ok(Self {
            cells: code,
            total_cells: cells.len(),
            kernel_name,
            language,
        })
    }
}

fn json_reason(err: &serde_json::Error) -> String {
    // serde_json appends " at line L column C" to its message; the position is given already.
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}
