//! Pattern matching over decoded instructions: imports, global attribute chains and
//! `import_module("m")`-style calls.

use std::collections::HashSet;

use super::decode::decode_named;
use super::{BytecodeError, CodeUnit, Const, Finding, Located, OpcodeTable, Role};

/// Callee names (last dotted segment) that make a call a dynamic import.
const IMPORTERS: &[&str] = &["import_module", "__import__"];

/// Scan a code object and, recursively through `co_consts`, every nested one.
///
/// Findings come per code object in pre-order (a code object before the ones nested in it,
/// nested ones in `co_consts` order), each code object's in bytecode order without duplicates.
pub fn scan(unit: &CodeUnit, table: &OpcodeTable) -> Result<Vec<Located>, BytecodeError> {
    let mut out = Vec::new();
    // An explicit stack: nesting depth is up to the input, the call stack is not.
    let mut pending = vec![unit];
    while let Some(unit) = pending.pop() {
        let findings = UnitScan::new(unit, table)?.findings()?;
        out.extend(findings.into_iter().map(|finding| Located {
            qualname: unit.qualname.clone(),
            finding,
        }));
        let mut nested = nested_units(unit);
        nested.reverse();
        pending.extend(nested);
    }
    Ok(out)
}

/// Code objects among `unit`'s constants, in order (tuples searched too).
fn nested_units(unit: &CodeUnit) -> Vec<&CodeUnit> {
    let mut found = Vec::new();
    let mut pending: Vec<&Const> = unit.consts.iter().rev().collect();
    while let Some(constant) = pending.pop() {
        match constant {
            Const::Code(inner) => found.push(&**inner),
            Const::Tuple(items) => pending.extend(items.iter().rev()),
            _ => {}
        }
    }
    found
}

/// An instruction that matters to the patterns.
#[derive(Debug, Clone, Copy)]
struct Op {
    offset: usize,
    opcode: u8,
    role: Role,
    /// 0 for opcodes without argument (their role never reads it).
    arg: u32,
}

struct UnitScan<'a> {
    unit: &'a CodeUnit,
    table: &'a OpcodeTable,
    /// Instructions without the transparent ones, so that patterns match by adjacency.
    ops: Vec<Op>,
}

impl<'a> UnitScan<'a> {
    fn new(unit: &'a CodeUnit, table: &'a OpcodeTable) -> Result<Self, BytecodeError> {
        let ops = decode_named(&unit.code, table, &unit.qualname)?
            .into_iter()
            .filter_map(|ins| {
                let role = match table.role(ins.opcode) {
                    Role::Transparent | Role::ExtendedArg => return None,
                    // Unreachable with a table from `OpcodeTable::new`; kept panic-free.
                    role if role.needs_arg() && ins.arg.is_none() => Role::Other,
                    role => role,
                };
                Some(Op {
                    offset: ins.offset,
                    opcode: ins.opcode,
                    role,
                    arg: ins.arg.unwrap_or(0),
                })
            })
            .collect();
        Ok(Self { unit, table, ops })
    }

    fn findings(&self) -> Result<Vec<Finding>, BytecodeError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut push = |finding: Finding| {
            if seen.insert(finding.clone()) {
                out.push(finding);
            }
        };
        let mut i = 0;
        while i < self.ops.len() {
            let op = self.ops[i];
            match op.role {
                Role::ImportName => push(self.import(i)?),
                Role::LoadGlobal | Role::LoadName | Role::LoadFast => {
                    let (findings, next) = self.chain(i)?;
                    findings.into_iter().for_each(&mut push);
                    i = next;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        Ok(out)
    }

    /// `IMPORT_NAME` at `ops[i]`, with level and fromlist pushed by the two instructions
    /// before it. Should those not be constants (hand-made bytecode), the import is still
    /// reported, as absolute without fromlist.
    fn import(&self, i: usize) -> Result<Finding, BytecodeError> {
        let op = self.ops[i];
        let module = self.name(&op, op.arg)?.to_owned();
        let fromlist = match i.checked_sub(1) {
            Some(j) => self.fromlist_operand(&self.ops[j])?,
            None => None,
        };
        let level = match i.checked_sub(2) {
            Some(j) if fromlist.is_some() => self.level_operand(&self.ops[j])?,
            _ => None,
        };
        Ok(Finding::Import {
            module,
            level: level.unwrap_or(0),
            fromlist: fromlist.unwrap_or_default(),
        })
    }

    /// The root load at `ops[i]` and the attribute loads after it; returns the findings and
    /// the index of the first instruction after the chain.
    fn chain(&self, i: usize) -> Result<(Vec<Finding>, usize), BytecodeError> {
        let op = self.ops[i];
        let root = if op.role == Role::LoadFast {
            // In 3.11+ the index is into all fast locals, cells included; a slot past
            // `co_varnames` is not a plain local, so not an importer we could name.
            match self.unit.varnames.get(op.arg as usize) {
                Some(name) => name.as_str(),
                None => return Ok((Vec::new(), i + 1)),
            }
        } else {
            self.name(&op, self.name_index(&op))?
        };
        let mut attrs = Vec::new();
        let mut next = i + 1;
        while let Some(attr) = self
            .ops
            .get(next)
            .filter(|o| matches!(o.role, Role::LoadAttr | Role::LoadMethod))
        {
            attrs.push(self.name(attr, self.name_index(attr))?.to_owned());
            next += 1;
        }

        let mut findings = Vec::new();
        let last = attrs.last().map_or(root, String::as_str);
        // Chains report attributes of globals, which may be modules pickled by reference; a
        // local root only matters as the callee of a dynamic import.
        let dynamic = if IMPORTERS.contains(&last) {
            self.dynamic_argument(next)?
                .map(|module| Finding::DynamicImport {
                    module,
                    callee: std::iter::once(root)
                        .chain(attrs.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join("."),
                })
        } else {
            None
        };
        if op.role != Role::LoadFast && !attrs.is_empty() {
            findings.push(Finding::GlobalChain {
                global: root.to_owned(),
                attrs,
            });
        }
        findings.extend(dynamic);
        Ok((findings, next))
    }

    /// The constant string pushed at `ops[i]` if a call follows it with only constant
    /// arguments in between (e.g. `import_module("m", "pkg")`, keyword names included).
    /// Anything else may consume the string otherwise, so it is not reported.
    fn dynamic_argument(&self, i: usize) -> Result<Option<String>, BytecodeError> {
        let Some(first) = self.ops.get(i).filter(|o| o.role == Role::LoadConst) else {
            return Ok(None);
        };
        let Const::Str(module) = self.constant(first, first.arg)? else {
            return Ok(None);
        };
        let call = self.ops[i + 1..]
            .iter()
            .find(|o| !matches!(o.role, Role::LoadConst | Role::LoadSmallInt | Role::KwNames));
        Ok(call
            .filter(|o| o.role == Role::Call)
            .map(|_| module.clone()))
    }

    fn level_operand(&self, op: &Op) -> Result<Option<u32>, BytecodeError> {
        Ok(match op.role {
            Role::LoadSmallInt => Some(op.arg),
            Role::LoadConst => match self.constant(op, op.arg)? {
                Const::Int(level) => u32::try_from(*level).ok(),
                _ => None,
            },
            _ => None,
        })
    }

    fn fromlist_operand(&self, op: &Op) -> Result<Option<Vec<String>>, BytecodeError> {
        if op.role != Role::LoadConst {
            return Ok(None);
        }
        Ok(match self.constant(op, op.arg)? {
            Const::None => Some(Vec::new()),
            Const::Tuple(items) => items
                .iter()
                .map(|item| match item {
                    Const::Str(name) => Some(name.clone()),
                    _ => None,
                })
                .collect(),
            _ => None,
        })
    }

    /// The `co_names` index an instruction refers to; the low bits of some arguments are
    /// flags (push NULL / method load) since 3.11 and 3.12.
    fn name_index(&self, op: &Op) -> u32 {
        let version = self.table.version();
        match op.role {
            Role::LoadGlobal if version >= (3, 11) => op.arg >> 1,
            Role::LoadAttr if version >= (3, 12) => op.arg >> 1,
            _ => op.arg,
        }
    }

    fn name(&self, op: &Op, index: u32) -> Result<&'a str, BytecodeError> {
        self.unit
            .names
            .get(index as usize)
            .map(String::as_str)
            .ok_or_else(|| self.out_of_range(op, "name", index))
    }

    fn constant(&self, op: &Op, index: u32) -> Result<&'a Const, BytecodeError> {
        self.unit
            .consts
            .get(index as usize)
            .ok_or_else(|| self.out_of_range(op, "const", index))
    }

    fn out_of_range(&self, op: &Op, what: &'static str, index: u32) -> BytecodeError {
        BytecodeError::IndexOutOfRange {
            qualname: self.unit.qualname.clone(),
            opname: self.table.name(op.opcode).to_owned(),
            offset: op.offset,
            what,
            index,
        }
    }
}
