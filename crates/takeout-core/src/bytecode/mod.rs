//! Bytecode scanner: what a code object imports, and which module attributes it walks.
//!
//! Opcode numbers, which opcodes take an argument and how many inline cache units follow
//! each one are *not* hard-coded: the caller builds an [`OpcodeTable`] from the running
//! interpreter's `dis`/`opcode` modules, so the same scanner decodes `CPython` 3.9 to 3.14.
//! Opcodes are recognised by name, looked up once when the table is built; a name the
//! running version lacks (`LOAD_METHOD` on 3.12, `PRECALL` on 3.10) is simply never matched.

mod decode;
mod scan;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use thiserror::Error;

pub use decode::decode;
pub use scan::scan;

/// Number of opcode numbers: opcodes are one byte; pseudo-instructions (256 and up on 3.12+)
/// never appear in `co_code`.
pub const OPCODE_COUNT: usize = 256;

/// The running interpreter's opcode facts, as `dis`/`opcode` state them.
///
/// Fields are private so that the opcode roles derived from the names in [`OpcodeTable::new`]
/// cannot go stale.
#[derive(Debug, Clone)]
pub struct OpcodeTable {
    /// `(major, minor)` of the interpreter, e.g. `(3, 11)`: selects argument encodings
    /// (3.11+: `LOAD_GLOBAL` name index is `arg >> 1`; 3.12+: same for `LOAD_ATTR`).
    version: (u8, u8),
    /// `opname[op]` for op in 0..256 (`"<123>"` or empty for unused numbers).
    names: Vec<String>,
    /// `has_arg[op]`: `op in dis.hasarg` (3.12+) or `op >= HAVE_ARGUMENT`.
    has_arg: Vec<bool>,
    /// Inline cache code units following each opcode (3.11+; zeros before).
    cache_entries: Vec<u8>,
    /// What the scanner makes of each opcode number.
    roles: Vec<Role>,
}

/// The part an opcode plays for the scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Other,
    /// Carries no meaning for the patterns: `EXTENDED_ARG` (already folded into the next
    /// argument), `NOP`, `CACHE`, and `PUSH_NULL` (its position relative to the callee
    /// moved between versions).
    Transparent,
    ExtendedArg,
    LoadConst,
    /// 3.14: `LOAD_SMALL_INT n` pushes `n` itself (used for an import's level).
    LoadSmallInt,
    ImportName,
    LoadGlobal,
    /// `LOAD_NAME` (class bodies, module code) and `LOAD_FROM_DICT_OR_GLOBALS` (3.12
    /// annotation scopes): `co_names[arg]`, looked up in globals when not local.
    LoadName,
    LoadAttr,
    LoadMethod,
    /// A plain local (`co_varnames[arg]`): only a callee root for dynamic imports, e.g.
    /// `import importlib` inside the function, then `importlib.import_module("m")`.
    LoadFast,
    KwNames,
    Call,
}

impl Role {
    /// Roles whose instructions must carry an argument for the scanner to read them.
    fn needs_arg(self) -> bool {
        matches!(
            self,
            Self::ExtendedArg
                | Self::LoadConst
                | Self::LoadSmallInt
                | Self::ImportName
                | Self::LoadGlobal
                | Self::LoadName
                | Self::LoadAttr
                | Self::LoadMethod
                | Self::LoadFast
        )
    }
}

/// Opcode names the scanner understands, across `CPython` 3.9 to 3.14.
const ROLES: &[(&str, Role)] = &[
    ("EXTENDED_ARG", Role::ExtendedArg),
    ("NOP", Role::Transparent),
    ("CACHE", Role::Transparent),
    ("PUSH_NULL", Role::Transparent),
    ("LOAD_CONST", Role::LoadConst),
    ("LOAD_SMALL_INT", Role::LoadSmallInt),
    ("IMPORT_NAME", Role::ImportName),
    ("LOAD_GLOBAL", Role::LoadGlobal),
    ("LOAD_NAME", Role::LoadName),
    ("LOAD_FROM_DICT_OR_GLOBALS", Role::LoadName),
    ("LOAD_ATTR", Role::LoadAttr),
    ("LOAD_METHOD", Role::LoadMethod),
    ("LOAD_FAST", Role::LoadFast),
    ("LOAD_FAST_CHECK", Role::LoadFast),
    ("LOAD_FAST_BORROW", Role::LoadFast),
    ("KW_NAMES", Role::KwNames),
    ("PRECALL", Role::Call),
    ("CALL", Role::Call),
    ("CALL_KW", Role::Call),
    ("CALL_FUNCTION", Role::Call),
    ("CALL_FUNCTION_KW", Role::Call),
    ("CALL_METHOD", Role::Call),
];

impl OpcodeTable {
    /// Check the three per-opcode lists (256 entries each) and find the opcodes the scanner
    /// recognises by name.
    pub fn new(
        version: (u8, u8),
        names: Vec<String>,
        has_arg: Vec<bool>,
        cache_entries: Vec<u8>,
    ) -> Result<Self, BytecodeError> {
        for (what, len) in [
            ("names", names.len()),
            ("has_arg", has_arg.len()),
            ("cache_entries", cache_entries.len()),
        ] {
            if len != OPCODE_COUNT {
                return Err(BytecodeError::BadTable(format!(
                    "`{what}` has {len} entries, expected {OPCODE_COUNT}"
                )));
            }
        }
        let wanted: HashMap<&str, Role> = ROLES.iter().copied().collect();
        let mut roles = vec![Role::Other; OPCODE_COUNT];
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (op, name) in names.iter().enumerate() {
            let Some(&role) = wanted.get(name.as_str()) else {
                continue;
            };
            // Two numbers for one recognised name would make the role ambiguous.
            if let Some(first) = seen.insert(name.as_str(), op) {
                return Err(BytecodeError::BadTable(format!(
                    "opcode name `{name}` is given to both {first} and {op}"
                )));
            }
            if role.needs_arg() && !has_arg[op] {
                return Err(BytecodeError::BadTable(format!(
                    "`{name}` ({op}) is marked as taking no argument"
                )));
            }
            roles[op] = role;
        }
        Ok(Self {
            version,
            names,
            has_arg,
            cache_entries,
            roles,
        })
    }

    pub fn version(&self) -> (u8, u8) {
        self.version
    }

    /// `dis.opname[op]`.
    pub fn name(&self, op: u8) -> &str {
        &self.names[usize::from(op)]
    }

    /// The number of the opcode called `name`, if this version has one.
    pub fn opcode(&self, name: &str) -> Option<u8> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|op| u8::try_from(op).ok())
    }

    pub fn has_arg(&self, op: u8) -> bool {
        self.has_arg[usize::from(op)]
    }

    pub fn cache_entries(&self, op: u8) -> u8 {
        self.cache_entries[usize::from(op)]
    }

    pub(crate) fn role(&self, op: u8) -> Role {
        self.roles[usize::from(op)]
    }
}

/// One decoded instruction, as `dis.get_instructions` reports it (caches skipped,
/// `EXTENDED_ARG` kept as its own instruction, `arg` including the extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction {
    pub offset: usize,
    pub opcode: u8,
    pub arg: Option<u32>,
}

/// The constants a scan needs to see; everything else is `Other`.
#[derive(Debug, Clone, PartialEq)]
pub enum Const {
    None,
    Int(i64),
    Str(String),
    Tuple(Vec<Self>),
    /// A nested code object (comprehension, lambda, inner function, class body).
    Code(Box<CodeUnit>),
    Other,
}

/// A code object, converted field by field by the binding layer.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeUnit {
    pub qualname: String,
    pub filename: String,
    pub firstlineno: u32,
    /// `co_code` (de-specialised, as the interpreter returns it).
    pub code: Vec<u8>,
    pub names: Vec<String>,
    /// `co_varnames`: lets a local such as `importlib` (imported inside the function) be the
    /// root of a dynamic-import callee.
    pub varnames: Vec<String>,
    pub consts: Vec<Const>,
}

impl Drop for CodeUnit {
    /// The derived drop would recurse once per nesting level of code objects and tuples;
    /// flattening keeps deeply nested input (code objects can be built by hand) off the stack.
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.consts);
        while let Some(constant) = pending.pop() {
            match constant {
                Const::Code(mut unit) => pending.append(&mut unit.consts),
                Const::Tuple(mut items) => pending.append(&mut items),
                _ => {}
            }
        }
    }
}

/// What a code object tells about its needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Finding {
    /// `import a.b` (fromlist empty), `from a import b, c` (fromlist = [b, c]),
    /// `from .x import y` (level 1). Relative names are resolved by the caller, who knows
    /// the function's package.
    Import {
        module: String,
        level: u32,
        fromlist: Vec<String>,
    },
    /// `LOAD_GLOBAL g` (or `LOAD_NAME g`) followed by attribute loads `a.b.c`:
    /// if `g` is a module, `g.a`, `g.a.b` ... may be submodules the loader must import.
    GlobalChain { global: String, attrs: Vec<String> },
    /// `importlib.import_module("m")`, `import_module("m")` or `__import__("m")` with a
    /// constant string first argument. `callee` is the dotted callee as written.
    DynamicImport { module: String, callee: String },
}

/// A finding and the qualname of the code object it was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub qualname: String,
    pub finding: Finding,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BytecodeError {
    #[error("the opcode table is malformed: {0}")]
    BadTable(String),
    #[error("code object `{qualname}` has odd-length bytecode ({len} bytes)")]
    OddLength { qualname: String, len: usize },
    #[error("code object `{qualname}`: `{opname}` at offset {offset} refers to {what} index {index}, past the end")]
    IndexOutOfRange {
        qualname: String,
        opname: String,
        offset: usize,
        what: &'static str,
        index: u32,
    },
}
