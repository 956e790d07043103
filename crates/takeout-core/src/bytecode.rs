//! Bytecode scanner: what a code object imports, and which module attributes it walks.
//!
//! Opcode numbers, which opcodes take an argument and how many inline cache units follow
//! each one are *not* hard-coded: the caller builds an [`OpcodeTable`] from the running
//! interpreter's `dis`/`opcode` modules, so the same scanner decodes CPython 3.9 to 3.13.
//! (TODO: implemented by the bytecode-scanner work item.)

use thiserror::Error;

/// The running interpreter's opcode facts, as `dis`/`opcode` state them.
#[derive(Debug, Clone)]
pub struct OpcodeTable {
    /// `(major, minor)` of the interpreter, e.g. `(3, 11)`: selects argument encodings
    /// (3.11+: `LOAD_GLOBAL` name index is `arg >> 1`; 3.12+: same for `LOAD_ATTR`;
    /// `LOAD_SUPER_ATTR` is `arg >> 2`).
    pub version: (u8, u8),
    /// `opname[op]` for op in 0..256 (`"<123>"` or empty for unused numbers).
    pub names: Vec<String>,
    /// `has_arg[op]`: `op in dis.hasarg` (3.12+) or `op >= HAVE_ARGUMENT`.
    pub has_arg: Vec<bool>,
    /// Inline cache code units following each opcode (3.11+; zeros before).
    pub cache_entries: Vec<u8>,
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
    Tuple(Vec<Const>),
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
    pub consts: Vec<Const>,
}

/// What a code object tells about its needs.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Decode `code` into instructions the way `dis.get_instructions` does.
pub fn decode(code: &[u8], table: &OpcodeTable) -> Result<Vec<Instruction>, BytecodeError> {
    let _ = (code, table);
    todo!("bytecode decoder")
}

/// Scan a code object and, recursively through `co_consts`, every nested one.
pub fn scan(unit: &CodeUnit, table: &OpcodeTable) -> Result<Vec<Located>, BytecodeError> {
    let _ = (unit, table);
    todo!("bytecode scanner")
}
